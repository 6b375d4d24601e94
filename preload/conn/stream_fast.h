/*
 * The data path's fast part, inline in the wrappers of read(), write(),
 * recv() and send() (preload/shims/io.c): a small message moves with no
 * call at all (docs/data-path.md, "The fast path").  What it falls back
 * to is out of line in stream.c.
 */
#ifndef TSSX_PRELOAD_CONN_STREAM_FAST_H
#define TSSX_PRELOAD_CONN_STREAM_FAST_H

#include <sys/socket.h>

#include "conn/connection.h"
#include "conn/interrupt.h"
#include "conn/stream.h"
#include "tssx/ring_fast.h"
#include "tssx/side_lock.h"

/* The out-of-line parts (stream.c), each with write(2)'s or read(2)'s
 * result: the end of a fast call that must look for a sleeping peer; the
 * general path of one buffer (`interrupts`: the count of handled signals
 * when the read began, conn/interrupt.h); the fast path of any size, then
 * the general one (`tried`: the small path found the ring empty). */
ssize_t tssx_conn_fast_wake(struct tssx_conn *conn, int fd, ssize_t n, bool writer);
ssize_t tssx_conn_send_general(struct tssx_conn *conn, int fd, const void *buf, size_t len, int flags);
ssize_t tssx_conn_recv_general(struct tssx_conn *conn, int fd, void *buf, size_t len, int flags,
			       uint32_t interrupts);
ssize_t tssx_conn_write_sized(int fd, const void *buf, size_t len, int flags, struct tssx_conn *conn);
ssize_t tssx_conn_read_sized(int fd, void *buf, size_t len, int flags, struct tssx_conn *conn, bool tried);

/*
 * A statistic only this process's holder of the ring lock updates; its
 * readers (the log line at close, `tssx connections`) load it relaxed.
 * On x86-64 one add to memory, which an aligned 8-byte load never sees
 * torn: GCC does not fuse the relaxed load and store into it, and the
 * fast path makes two of these per call.
 */
static inline void tssx_stat_add(_Atomic uint64_t *stat, uint64_t n)
{
#if defined(__x86_64__)
	__asm__("addq %1, %0" : "+m"(*(uint64_t *)stat) : "er"(n));
#else
	atomic_store_explicit(stat, atomic_load_explicit(stat, memory_order_relaxed) + n,
			      memory_order_relaxed);
#endif
}

/* A call moved n bytes (n > 0) through the rings: its side's statistics,
 * under that side's lock. */
static inline void tssx_conn_count_moved(struct tssx_conn *conn, bool writer, uint64_t n)
{
	tssx_stat_add(writer ? &conn->stats.ring_sent : &conn->stats.ring_received, n);
	tssx_stat_add(writer ? &conn->sends : &conn->receives, 1);
}

/*
 * The common case of write()/send() (writer) and read()/recv() (reader)
 * of one buffer, with the side lock held no longer than the copy
 * (tssx_ring_move_fast(): the room or the data there, in one area,
 * nothing of control data; `small`, a constant: tssx_ring_move_small(),
 * a small message copied inline).  The bytes moved; -EFAULT with nothing
 * moved, as the general path fails; or 0 with nothing moved: the call
 * takes the general path, which also reports what went wrong, and waits
 * for a side lock another thread or process holds.  No errno is touched,
 * no deadline set up, no reference taken unless the peer must be woken.
 * A reader with SO_PEEK_OFF set moves it back at every read: the general
 * path's.  With `small`, no call at all but the last (tssx_conn_fast_wake(),
 * rare): the compiler keeps the values in registers that need no saving.
 */
static inline __attribute__((always_inline)) ssize_t tssx_conn_move_fast(struct tssx_conn *conn,
									     struct tssx_fd_slot *slot, int fd,
									     bool writer, void *buf, size_t len,
									     bool small)
{
	struct tssx_side_lock *lock = writer ? &conn->locks->producer : &conn->locks->consumer;
	struct tssx_ring *ring = writer ? conn->tx : conn->rx;
	_Atomic uint64_t *held = tssx_side_trylock(lock);
	ssize_t n = 0;

	if (unlikely(!held))
		return 0;
	/* Under the lock: fd is still the connection's (stream.c's
	 * still_there()), and
	 * SO_PEEK_OFF moves only under the consumer lock. */
	if (likely(tssx_conn_still_at(conn, slot)) &&
	    (writer || likely(atomic_load_explicit(&conn->peek_off, memory_order_relaxed) < 0)))
		n = small ? tssx_ring_move_small(ring, writer, buf, len) : tssx_ring_move_fast(ring, writer, buf, len);
	if (likely(n > 0)) {
		tssx_conn_count_moved(conn, writer, (uint64_t)n);
		if (unlikely(tssx_ring_sleeper_raised(ring, writer))) {
			n = tssx_conn_fast_wake(conn, fd, n, writer);
			/* It returns n: the callers' checks of the result
			 * fold, and the call is their last (a jump). */
			if (n <= 0)
				__builtin_unreachable();
			return n;
		}
	}
	tssx_side_release(held);
	return n;
}

/*
 * write() and send() (tssx_conn_write()), read() (tssx_conn_read(), for
 * len > 0: read() of nothing returns 0 before the socket is asked) and
 * recv() (tssx_conn_recv_one()) of one buffer on fd, whose table slot is
 * `slot` (tssx_conn_lookup_slot()).  They return as those calls do: the
 * bytes, or -1 with errno set.  Inline in the wrappers: their common case
 * (the room or the data there, the peer awake) makes no call.
 */
static inline __attribute__((always_inline)) ssize_t tssx_conn_write(int fd, const void *buf, size_t len, int flags,
								      struct tssx_conn *conn,
								      struct tssx_fd_slot *slot)
{
	/* send_stream()'s first checks: the general path fails these (the
	 * ring's shutdown flags are the fast path's, tssx_ring_move_fast()).
	 * Relaxed: a shutdown or close in another thread is ordered with
	 * this call by nothing either way.  A copy that may fault without
	 * landing (copy.h) needs the general path's guard.  A write of
	 * nothing is not a small message and moves nothing on the fast path
	 * of any size: the general path returns 0, as send_stream() does. */
	if (TSSX_COPY_LANDS && likely(tssx_conn_is_ready(conn)) &&
	    likely(!atomic_load_explicit(&conn->write_shut, memory_order_relaxed) &&
		   !atomic_load_explicit(&conn->peer_closed, memory_order_relaxed))) {
		if (likely(len - TSSX_COPY_INLINE_MIN <= TSSX_COPY_INLINE_MAX - TSSX_COPY_INLINE_MIN)) {
			ssize_t n = tssx_conn_move_fast(conn, slot, fd, true, (void *)buf, len, true);

			if (likely(n > 0))
				return n;
			if (n < 0)
				return tssx_result(n);
		}
		return tssx_conn_write_sized(fd, buf, len, flags, conn);
	}
	return tssx_conn_send_general(conn, fd, buf, len, flags);
}

/* recv() of one buffer, and read() (`unflagged`, a constant: no flags
 * and len > 0, which read() checked, so one comparison of len is left). */
static inline __attribute__((always_inline)) ssize_t tssx_conn_read_one(int fd, void *buf, size_t len, int flags,
							       struct tssx_conn *conn, struct tssx_fd_slot *slot,
							       bool unflagged)
{
	if (TSSX_COPY_LANDS && likely(tssx_conn_is_ready(conn)) &&
	    (unflagged || likely(len && !(flags & (MSG_PEEK | MSG_WAITALL))))) {
		/* Without flags (read()): none to keep for the fallback,
		 * one register more for the small path.  len - 1: read()'s
		 * len is not 0. */
		if (likely(unflagged ? len - 1 < TSSX_COPY_INLINE_MAX : len <= TSSX_COPY_INLINE_MAX && !flags)) {
			ssize_t n = tssx_conn_move_fast(conn, slot, fd, false, buf, len, true);

			if (likely(n > 0))
				return n;
			if (n < 0)
				return tssx_result(n);
			return tssx_conn_read_sized(fd, buf, len, 0, conn, true);
		}
		return tssx_conn_read_sized(fd, buf, len, flags, conn, false);
	}
	return tssx_conn_recv_general(conn, fd, buf, len, flags, tssx_interrupt_mark());
}

static inline __attribute__((always_inline)) ssize_t tssx_conn_read(int fd, void *buf, size_t len,
								     struct tssx_conn *conn,
								     struct tssx_fd_slot *slot)
{
	return tssx_conn_read_one(fd, buf, len, 0, conn, slot, true);
}

static inline __attribute__((always_inline)) ssize_t tssx_conn_recv_one(int fd, void *buf, size_t len, int flags,
									 struct tssx_conn *conn,
									 struct tssx_fd_slot *slot)
{
	return tssx_conn_read_one(fd, buf, len, flags, conn, slot, false);
}

#endif
