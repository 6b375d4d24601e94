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

/* A connection's readiness in poll/epoll bits, with the *NORM aliases a
 * socket reports, limited to what was asked plus HUP and ERR. */
uint32_t events_conn_ready(struct tssx_conn *conn, uint32_t events);
/* For an epoll fd inside poll() or inside another epoll set: EPOLLIN when
 * one of its tracked entries would report, and the sum of their generations
 * (edge-triggered nesting). */
uint32_t events_set_probe(struct events_set *set, uint64_t *generation);
/* Arms every tracked connection in the set before the caller sleeps. */
void events_set_arm(struct events_set *set);
/* poll() and ppoll() on a set holding TSSX connections or epoll fds that do. */
int events_poll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		const sigset_t *sigmask);
/* Whether poll() must look at fd: a TSSX connection or an epoll fd that
 * tracks something. */
bool events_poll_needed(int fd);

#endif
