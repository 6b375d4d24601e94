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

/* What the caller knows of a connection without asking its socket, as
 * tssx_conn_list_name() writes names; 0 and "" (or NULL) where not. */
struct tssx_conn_known {
	uint64_t socket_ino;
	const char *server; /* the server's address */
	const char *client; /* a TSSX client's bound name */
	pid_t peer_pid;     /* SO_PEERCRED's, 0: ask the socket */
};

/* A TSSX connection on fd is ready: its slot, or NULL when not listed.
 * counters stay where they are; the slot records their address. */
struct tssx_conn_slot *tssx_conn_list_add(int fd, bool server, const struct tssx_conn_known *known,
					  struct tssx_conn_counters *counters, unsigned hello_bytes);
/* A socket address as the list shows it: "/tmp/s.sock", or "@name" for
 * an abstract one (NUL bytes as '@'). */
void tssx_conn_list_name(char *dst, size_t size, const struct sockaddr_un *addr, socklen_t len);
/* The connection failed with error (lock-free: the data path's failures
 * call it, maybe in a signal handler). */
void tssx_conn_list_failed(struct tssx_conn_slot *slot, int error);
/* The connection is closed in this process. */
void tssx_conn_list_remove(struct tssx_conn_slot *slot);
/* The connected Unix stream socket fd stays plain, because of reason;
 * server: its address, NULL or "" if not known. */
void tssx_conn_list_plain(int fd, bool server, const char *server_path, enum tssx_plain_reason reason,
			  int error);

#endif
