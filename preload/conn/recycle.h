/*
 * Segments recycled (docs/data-path.md, "Segments recycled"): a client
 * keeps the segment of a connection it closed, mapped and faulted in,
 * and gives it to its next connection to the same server once that
 * server released it; the server keeps its mapping of that memfd and
 * takes it again when the memfd comes back in a hello.  Neither end then
 * creates, maps, faults or unmaps anything per connection.
 *
 * What makes it safe:
 * - The server writes the release word (tssx/segment.h) only from its
 *   last user of the connection, after every call of it is done, and only
 *   when no other process can hold it (tssx_unseen_held_alone(): made
 *   after this process's last fork, never handed to an exec'd image nor
 *   duplicated); a client recycles only released segments, so nothing the
 *   server has still to read is overwritten.
 * - A client recycles a segment only for the same server address and the
 *   same server (its pid, uid and gid by SO_PEERCRED, checked again after
 *   the connect), and only one it held alone, then zeroes the first page
 *   and gives back the data areas of rings that grew.  A peer that keeps
 *   writing after its release writes only into its own next connection,
 *   whose every word the data path checks anyway.
 * - The server keeps a mapping only of a connection accepted on a listener
 *   whose last listen() was its own, the process the client's SO_PEERCRED
 *   names: a prefork worker's would show the client's next connection,
 *   which another worker may accept, to it.  It takes its mapping again
 *   only for the very file it mapped (kcmp(2) of the memfd it kept and the
 *   one the hello brings) and only while no connection uses that mapping.
 * - Bounded: TSSX_POOL_SLOTS segments per end, 4 per server, none idle
 *   longer than 10 s when the next connect or close looks; a fork()ed
 *   child drops its copies of both pools (closes, unmaps) before it
 *   returns from fork(); an exec drops them (O_CLOEXEC, mappings gone).
 */
#ifndef TSSX_PRELOAD_RECYCLE_H
#define TSSX_PRELOAD_RECYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tssx/hello.h"
#include "tssx/segment.h"

struct tssx_conn;

/* Whether recycling is on (TSSX_RECYCLE, default on). */
bool tssx_recycle_enabled(void);

/* The client's key of the server at addr: a path up to its NUL, an
 * abstract name whole (as conn/destination.c), in *key; its length, 0
 * when addr names nothing. */
size_t tssx_recycle_key(const struct sockaddr_un *addr, socklen_t len, const char **key);

/*
 * Client, before the connect to addr: a segment of an earlier connection
 * of this process to that address, which its server released, made new
 * (tssx_segment_renew()) into *seg with the hello in *hello; its memfd
 * (an fd of its own, out of the table, O_CLOEXEC) in *memfd and its
 * server's credentials in *cred.  false: none (nothing changed).
 */
bool tssx_recycle_take(const struct sockaddr_un *addr, socklen_t len, struct tssx_segment *seg, int *memfd,
		       struct ucred *cred, struct tssx_hello *hello);

/*
 * A connection's end (conn_free()): true when its segment and memfd went
 * to the pool (conn->seg is zeroed, conn->memfd is -1), false when the
 * caller unmaps and closes them as before.  The server releases the
 * segment here (true or false) when it may.
 */
bool tssx_recycle_put(struct tssx_conn *conn);

/* Server, with a hello's memfd that passed tssx_segment_check() (dev,
 * ino): this process's idle mapping of the same file, of size bytes, or
 * NULL.  On success *kept is the fd the pool kept for it (the same file as
 * memfd), which the caller keeps as the connection's, closing memfd. */
void *tssx_recycle_mapping(int memfd, uint64_t dev, uint64_t ino, size_t size, int *kept);

#endif
