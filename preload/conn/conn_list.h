/*
 * The list of this process's Unix stream connections that `tssx
 * connections` reads (include/tssx/conn_table.h): a slot per TSSX
 * connection from its handshake to its close, and a record per plain
 * fallback.  Written only at set-up, failure and close; best effort (no
 * table, a full table: the connection works, unlisted).
 */
#ifndef TSSX_PRELOAD_CONN_LIST_H
#define TSSX_PRELOAD_CONN_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tssx/conn_table.h"

/* A TSSX connection on fd (socket inode socket_ino, 0 if not known; the
 * client's bound name as tssx_conn_list_name() writes it, NULL or "" if
 * not known) is ready: its slot, or NULL when not listed.  counters stay
 * where they are; the slot records their address. */
struct tssx_conn_slot *tssx_conn_list_add(int fd, bool server, uint64_t socket_ino, const char *client,
					  struct tssx_conn_counters *counters, unsigned hello_bytes);
/* A socket address as the list shows it: "/tmp/s.sock", or "@name" for
 * an abstract one (NUL bytes as '@'). */
void tssx_conn_list_name(char *dst, size_t size, const struct sockaddr_un *addr, socklen_t len);
/* The connection failed with error (lock-free: the data path's failures
 * call it, maybe in a signal handler). */
void tssx_conn_list_failed(struct tssx_conn_slot *slot, int error);
/* The connection is closed in this process. */
void tssx_conn_list_remove(struct tssx_conn_slot *slot);
/* The connected Unix stream socket fd stays plain, because of reason. */
void tssx_conn_list_plain(int fd, bool server, enum tssx_plain_reason reason, int error);

#endif
