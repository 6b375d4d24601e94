/*
 * What the event-loop wrappers (poll.c, select.c, epoll.c) share: the
 * calls that look at connections, on top of the pure bookkeeping of
 * events/events.h.
 */
#ifndef TSSX_PRELOAD_EVENTS_WRAPPERS_H
#define TSSX_PRELOAD_EVENTS_WRAPPERS_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "events/events.h"

struct tssx_conn;
struct tssx_deadline;
struct tssx_spin;

/* A connection's readiness in poll/epoll bits, with the *NORM aliases a
 * socket reports, limited to what was asked plus HUP and ERR. */
uint32_t events_conn_ready(struct tssx_conn *conn, uint32_t events);
/* Starts the spin of a wait (tssx_spin_start()).  A wait whose only
 * connection is `only` (NULL: several or none) waits as that connection's
 * blocking read: it publishes this thread's CPU for the peer and may spin
 * for a peer on another CPU beside other work (tssx_spin_start_peer();
 * docs/wait.md, "A peer on another CPU beside other work"). */
bool events_spin_start(struct tssx_spin *spin, uint64_t look_every_ns, const struct tssx_deadline *deadline,
		       struct tssx_conn *only);
/* For an epoll fd inside poll() or inside another epoll set: EPOLLIN when
 * one of its tracked entries would report, and the sum of their generations
 * (edge-triggered nesting). */
uint32_t events_set_probe(struct events_set *set, uint64_t *generation);
/* Arms every tracked connection in the set before the caller sleeps; true
 * when one of them cannot be woken by a doorbell (tssx_conn_arm()). */
bool events_set_arm(struct events_set *set);
/* This thread waits on the set through its epoll fd (in poll(), in
 * another set's arming): from now on another thread's changes of it are
 * made as if a thread slept in it. */
void events_set_nest(struct events_set *set);
/* When a sleep ends: the call's deadline, or TSSX_SHARED_WAIT_MS from now
 * when `recheck` (a connection no doorbell can wake) if that is sooner. */
const struct tssx_deadline *events_sleep_until(const struct tssx_deadline *deadline, bool recheck,
					       struct tssx_deadline *buf);
/* poll() and ppoll() on a set holding TSSX connections or epoll fds that do,
 * until `deadline`, which the call started before anything else: a handler
 * that runs in a system call of its own before it waits ends it too. */
int events_poll(struct pollfd *fds, nfds_t nfds, const struct tssx_deadline *deadline,
		const sigset_t *sigmask);
/* Whether poll() must look at fd: a TSSX connection or an epoll fd that
 * tracks something. */
bool events_poll_needed(int fd);

#endif
