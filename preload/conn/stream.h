/*
 * The data path of a ready TSSX connection (stream.c): send, receive,
 * shutdown and queue sizes for the shims, and readiness for the event-loop
 * wrappers (poll, select, epoll).  Readiness values are poll/epoll bits:
 * POLLIN == EPOLLIN, POLLOUT == EPOLLOUT, POLLRDHUP == EPOLLRDHUP, POLLHUP,
 * POLLERR.
 */
#ifndef TSSX_PRELOAD_CONN_STREAM_H
#define TSSX_PRELOAD_CONN_STREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "conn/connection.h"

/* The libc call's way of returning an internal result (the wrappers',
 * tssx_conn_write() and tssx_conn_read()'s): -errno sets errno. */
static inline ssize_t tssx_result(ssize_t ret)
{
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

/* flags are MSG_* flags; both honour O_NONBLOCK,
 * SO_RCVTIMEO / SO_SNDTIMEO, signals, EOF and a dead peer like a socket. */
ssize_t tssx_conn_send(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt, int flags);
ssize_t tssx_conn_recv(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt, int flags);
/* sendmsg()/recvmsg() with ancillary data (SCM_RIGHTS, SCM_CREDENTIALS)
 * in stream order (conn/ancillary.h); msg_name is the caller's business. */
ssize_t tssx_conn_sendmsg(struct tssx_conn *conn, int fd, const struct msghdr *msg, int flags);
ssize_t tssx_conn_recvmsg(struct tssx_conn *conn, int fd, struct msghdr *msg, int flags);
int tssx_conn_shutdown(struct tssx_conn *conn, int fd, int how);
/* Whether a call with MSG_* `flags` must not wait: MSG_DONTWAIT, or
 * O_NONBLOCK as this process last read or set it (read once). */
bool tssx_conn_nonblocking(struct tssx_conn *conn, int fd, int flags);
/* This process set or cleared O_NONBLOCK on the connection's socket
 * (fcntl F_SETFL, ioctl FIONBIO): the data path need not ask again. */
void tssx_conn_note_nonblock(struct tssx_conn *conn, bool nonblocking);
/* This process set an option of the connection's socket, maybe
 * SO_RCVTIMEO or SO_SNDTIMEO (each has several names): the data path
 * reads them again at its next sleep. */
void tssx_conn_forget_timeouts(struct tssx_conn *conn);
/* Bytes a write could take now without waiting (0 before the hello). */
ssize_t tssx_conn_room(struct tssx_conn *conn, int fd);
/* FIONREAD / SIOCOUTQ. */
ssize_t tssx_conn_inq(struct tssx_conn *conn, int fd);
ssize_t tssx_conn_outq(struct tssx_conn *conn, int fd);

/* ---- Readiness, for the event-loop wrappers ---- */

/* Readiness computed from the rings and the real socket's state, for the
 * requested events (POLLHUP and POLLERR are always reported; a broken
 * ring only when its direction is asked about).  A server
 * connection still waiting for its hello tries to complete it without
 * blocking and reports what a fresh socket would meanwhile. */
uint32_t tssx_conn_ready(struct tssx_conn *conn, uint32_t events);

/* Whether an edge-triggered waiter for POLLOUT may sleep without arming
 * for room: tx has room, so the last report of it stands, and no write
 * of this process found tx full since the connection was made, nor can
 * one of another process or through another fd (it is held alone and
 * not duplicated, conn/unseen.h).  Room then owes no edge until a write
 * finds tx full, which tells the sets (tssx_events_room_owed()), as TCP
 * and pipes wake a writer only after one found no room (docs/events.md,
 * "Room only after a full ring"). */
bool tssx_conn_room_unowed(struct tssx_conn *conn);

/* A write on fd found tx full and fails or comes up short (EAGAIN, a
 * timeout): every writer that returns so calls it. */
void tssx_conn_ring_found_full(struct tssx_conn *conn, int fd);

/* A sleeper that no doorbell may wake re-checks the rings this often: a
 * guest of the doorbell owner, or any waiter after its own SHUT_RD. */
#define TSSX_SHARED_WAIT_MS 10

/* What a sleeper on the real socket may rely on after tssx_conn_arm(). */
enum tssx_arm {
	TSSX_ARM_DOORBELL,	/* the peer's doorbell, or its close, wakes it */
	/* The hello is still to be taken, maybe by another thread while this
	 * one sleeps: the socket wakes it for the hello, but not for bytes
	 * that the peer wrote before the taker armed; it re-checks every
	 * TSSX_SHARED_WAIT_MS. */
	TSSX_ARM_RECHECK,
	/* This side shut its reading down: the real socket reads EOF for
	 * good and takes no doorbells; it watches for POLLHUP only and
	 * re-checks every TSSX_SHARED_WAIT_MS. */
	TSSX_ARM_NO_DOORBELL,
};

/* Before sleeping on the real fd for `events`: arm the waiting flags so the
 * peer rings `bell`: TSSX_BELL_SOCKET, or TSSX_BELL_EVENTFD for a sleeper
 * whose kernel wait watches the connection's own eventfd too
 * (tssx_conn_own_bell()); the peer rings the socket instead when it
 * cannot ring that.  TSSX_ARM_DOORBELL holds for either.  Afterwards the
 * caller re-checks tssx_conn_ready() and sleeps only if it is still not
 * ready, as the result says.
 * held: NULL for a caller whose flags stay raised after it (an epoll set's
 * entries, which rely on them across calls: the bells go sticky,
 * conn/hold.h); else whether the caller holds the bells already, false
 * the first time: the raise then takes a counted hold and sets it, and the
 * caller ends it with tssx_conn_disarm() as it returns, so that the peer
 * does not ring for a sleeper that left. */
enum tssx_arm tssx_conn_arm(struct tssx_conn *conn, uint32_t events, uint32_t bell, bool *held);

/* The end of the holds tssx_conn_arm() took for `events` and `bell`. */
void tssx_conn_disarm(struct tssx_conn *conn, uint32_t events, uint32_t bell);

/* The eventfd this end's epoll sets may watch beside the socket for the
 * eventfd bell, -1 when there is none (the connection is not ready, or
 * either end could not have it). */
static inline int tssx_conn_own_bell(struct tssx_conn *conn)
{
	return tssx_conn_is_ready(conn) ? atomic_load_explicit(&conn->own_eventfd.fd, memory_order_relaxed) : -1;
}

/* After the real fd reported readable: consume pending doorbells without
 * blocking, so that level-triggered waits do not spin.  revents: what the
 * kernel reported for the real socket, which was watched for POLLRDHUP too;
 * one receive then does unless POLLRDHUP, POLLHUP or POLLERR is in it (a
 * caller that could not watch POLLRDHUP passes it: the drain then reads
 * until the socket is empty, to see the EOF behind the last doorbell). */
void tssx_conn_drain(struct tssx_conn *conn, uint32_t revents);

/* Change counter for edge-triggered epoll: differs between two calls iff a
 * ring of this connection moved, or its state (EOF, shutdown, error) changed. */
uint64_t tssx_conn_generation(struct tssx_conn *conn);

#endif
