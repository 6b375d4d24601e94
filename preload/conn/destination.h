/*
 * What this process's recent connections to one server were worth: a
 * client connection that moved data in fewer than TSSX_SHORT_CALLS calls
 * before it closed did not pay for its segment (a segment costs both ends
 * more than a whole plain connection of that kind), and when most recent
 * connections to a server were such, the next ones there stay plain, more
 * of them each time a connection through shared memory is short again
 * (tssx/skip.h; docs/preload.md, "Short-lived connections").
 *
 * Per process, keyed by the name connect() was given; a fork()ed child
 * starts with its parent's.  And per program, shared by the user's
 * processes: a process's first connection to a server follows what the
 * connections of its program's other processes there were worth.
 */
#ifndef TSSX_PRELOAD_DESTINATION_H
#define TSSX_PRELOAD_DESTINATION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* The most servers a process keeps a history for; connections to others
 * always use shared memory. */
#define TSSX_DESTINATIONS_MAX 256u

/* The skip rule of connections (tssx/skip.h): the share of short ones
 * runs over about the last 4; then 16 connections stay plain, doubling up
 * to 1024 while the connections that look again are short too. */
#define TSSX_DESTINATION_AVERAGE_OVER 4u
#define TSSX_DESTINATION_SKIP_MIN 16u
#define TSSX_DESTINATION_SKIP_MAX 1024u

struct tssx_destination;

/* The history of connections to addr; made when `make` (the first
 * connection through shared memory there), from the history this
 * program's processes share, else NULL until then.  NULL too when
 * TSSX_SHORT_CALLS is 0 or the table is full. */
struct tssx_destination *tssx_destination_of(const struct sockaddr_un *addr, socklen_t len, bool make);
/* Whether the next connection there stays plain. */
bool tssx_destination_skips(struct tssx_destination *dest);
/* The same for a process without a history there: whether the history
 * its program's processes share makes its next connection plain. */
bool tssx_destination_shared_skips(const struct sockaddr_un *addr, socklen_t len);
/* A client connection there through shared memory ended, long enough to
 * pay for its segment or not (tssx_conn_outlived_short()). */
void tssx_destination_record(struct tssx_destination *dest, bool paid);
/* The same into the history its program's processes share: by the
 * process that made the connection (a fork()ed child's view of one it
 * inherited, which it may have used little, stays its own), at its end
 * or at exit with it open.  No lock: an exit may come from anywhere. */
void tssx_destination_share(struct tssx_destination *dest, bool paid);

#endif
