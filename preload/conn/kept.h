/*
 * Where the library's own long-lived fds go (docs/preload.md, "Where the
 * library's fds go"): a connection's memfd, eventfds, wake fd and socket
 * copy, the side locks' arenas, the spin policy's /proc/loadavg, the
 * futex bell watcher's epoll fd, the registry client's copies.
 *
 * Not at the lowest free number, where they are made or received: that
 * may be a number the program has just closed (its poll() would find it
 * open), and they would push the numbers of the program's next fds up
 * (Redis never watches a socket numbered beyond its maxclients + 128).
 * Not at the top of the fd limit either: the kernel's fd table grows to
 * the power of two above the highest fd and is copied at every fork.
 * They go at or above a floor that follows the program: the first power
 * of two (at least 64) above twice the lowest free number, and when the
 * program's numbers reach half of it, every kept fd below a new floor is
 * moved up.
 */
#ifndef TSSX_PRELOAD_KEPT_H
#define TSSX_PRELOAD_KEPT_H

#include <stdatomic.h>

#include "conn/fd_table.h"

/* Held by every placement, renumbering and close of a connection's kept
 * fds and of the arenas' (connection.c), and by a move of the floor,
 * which so finds each where it is recorded. */
void tssx_kept_lock(void);
void tssx_kept_unlock(void);

/* fd, new to the process (made or received at the lowest free number),
 * moved to the kept numbers (and closed); fd itself when it cannot be
 * moved or is negative.  The first one sets the floor. */
int tssx_kept_place(int fd);

/* A copy of fd among the kept numbers (at the lowest free number when
 * they are full), or -1. */
int tssx_kept_copy(int fd);

/* Half the floor (INT_MAX while there is none, or it cannot move up):
 * where the program's numbers make it move (tssx_conn_note_program_fd). */
extern _Atomic int tssx_kept_watermark __attribute__((visibility("hidden")));

/* Under the lock: the floor moves up when fd reached half of it; returns
 * the new floor (every kept fd below it is the caller's to move), or 0. */
int tssx_kept_raise_floor(int fd);

/* Keeps fd, a process-wide fd of the library's (the load file, the
 * watcher's epoll fd, an arena), in the table under obj, which names
 * every fd of its kind: close-all loops leave it, a dup2() onto it moves
 * it.  Not when its number has a slot already, or fd is negative. */
void tssx_kept_alias(int fd, struct tssx_fd_object *obj);

#endif
