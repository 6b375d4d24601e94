/*
 * What the event-loop wrappers (poll, select, epoll) need from a TSSX
 * connection.  Readiness values are poll/epoll bits: POLLIN == EPOLLIN,
 * POLLOUT == EPOLLOUT, POLLRDHUP == EPOLLRDHUP, POLLHUP, POLLERR.
 */
#ifndef TSSX_PRELOAD_CONN_H
#define TSSX_PRELOAD_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct tssx_conn;

/* The connection on fd, or NULL: not TSSX, pass through.  Lock-free;
 * costs one table lookup for fds that are not TSSX connections. */
struct tssx_conn *tssx_conn_lookup(int fd);

/* Readiness computed from the rings and the real socket's state, for the
 * requested events (POLLHUP and POLLERR are always reported).  A server
 * connection still waiting for its hello tries to complete it without
 * blocking and reports what a fresh socket would meanwhile. */
uint32_t tssx_conn_ready(struct tssx_conn *conn, uint32_t events);

/* Before sleeping on the real fd for `events`: arm the waiting flags so the
 * peer sends a doorbell.  Afterwards the caller re-checks tssx_conn_ready()
 * and sleeps only if it is still not ready. */
void tssx_conn_arm(struct tssx_conn *conn, uint32_t events);

/* After the real fd reported readable: consume pending doorbells without
 * blocking, so that level-triggered waits do not spin. */
void tssx_conn_drain(struct tssx_conn *conn);

/* Change counter for edge-triggered epoll: differs between two calls iff a
 * ring of this connection moved, or its state (EOF, shutdown, error) changed. */
uint64_t tssx_conn_generation(struct tssx_conn *conn);

/* Called by close/dup2/dup3/close_range before an fd is released, whatever
 * it is, so the event wrappers can forget it (an epoll set's entry for a
 * closed fd goes away). Implemented by the event-loop wrappers. */
void tssx_events_forget_fd(int fd);

#endif
