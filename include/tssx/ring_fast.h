/*
 * The ring's common case, inline in the data path (preload/conn/stream.c,
 * docs/data-path.md "The fast path"): one buffer that moves whole, in one
 * area, within what this process already knows of the peer's counter (a
 * reader loads the tail when that is not enough).  Anything else, a
 * counter that looks wrong included, makes these return 0 with nothing
 * moved, and the caller takes the general path (tssx_ring_write_whole(),
 * tssx_ring_read_unmarked()), which handles it and reports corruption.
 * The primitives below are also the general path's (preload/core/ring.c):
 * one definition of the window, the areas and the copy.
 *
 * The caller holds the side lock, as for the general calls.
 */
#ifndef TSSX_RING_FAST_H
#define TSSX_RING_FAST_H

#include "copy.h"
#include "ring.h"

/* A transfer larger than this publishes its counter after every chunk
 * (ring.c, copy_publishing()): never the fast path's. */
#define TSSX_RING_PUBLISH_CHUNK (64u * 1024)

/* A counter is never behind the value this process already saw.  Stale
 * seen values (a sibling thread or forked process moved on) are lower,
 * never higher, so they cannot trigger this. */
static inline bool tssx_ring_went_backwards(uint64_t counter, uint64_t seen)
{
	return (int64_t)(counter - seen) < 0;
}

/* Bytes the side may move between its own and the peer's counter: free
 * space for the producer, data for the consumer; UINT64_MAX when the pair
 * is more than `limit` apart (or crossed), i.e. corrupted. */
static inline uint64_t tssx_ring_window(bool producer, uint64_t limit, uint64_t own, uint64_t peer)
{
	uint64_t filled = producer ? own - peer : peer - own;

	if (unlikely(filled > limit))
		return UINT64_MAX;
	return producer ? limit - filled : filled;
}

/*
 * How far the two counters may be apart: the small area's size while the
 * ring is small; the full capacity once it grew (the producer counts the
 * bytes still in the small area as if they took room in the full one).
 */
static inline uint64_t tssx_ring_limit(const struct tssx_ring *ring, uint64_t grown)
{
	return grown ? ring->capacity : TSSX_RING_SMALL_CAPACITY;
}

/* Copies `len` bytes at counter `pos` of an area of `size` bytes (a power
 * of two, len at most size) in or out: one span, or two when they wrap.
 * 0, or -EFAULT when the caller's buffer faulted (copy.h). */
static inline __attribute__((always_inline)) long tssx_ring_copy_area(uint8_t *area, uint64_t size, bool producer,
								      uint64_t pos, uint8_t *buf, size_t len)
{
	size_t offset = (size_t)(pos & (size - 1));
	size_t to_end = (size_t)size - offset;
	size_t first = len < to_end ? len : to_end;
	uint8_t *at = area + offset;
	long r = producer ? tssx_copy(at, buf, first) : tssx_copy(buf, at, first);

	if (likely(len == first) || r < 0)
		return r;
	return producer ? tssx_copy(area, buf + first, len - first) : tssx_copy(buf + first, area, len - first);
}

/*
 * The producer's common case: all of buf[len] or nothing (several
 * writers' bytes stay whole), within the room this process saw last or,
 * when that is not enough, the room the consumer's head leaves.  0 with
 * nothing moved when the stream is shut either way (the general path
 * fails the call), the ring is to grow or a sibling process grew it, the
 * write is larger than a chunk or than the area, or the counters look
 * wrong; else len.
 */
static inline __attribute__((always_inline)) size_t tssx_ring_room_fast(struct tssx_ring *ring,
								       struct tssx_ring_ctl *ctl, uint64_t own,
								       uint64_t seen, uint64_t grown, uint64_t limit,
								       size_t len, bool small)
{
	/* Relaxed: the flags are events the general path orders and reports;
	 * grown: a sibling's store precedes its unlock, which our lock
	 * acquired.  One test for the three words of the producer's line. */
	if (unlikely(atomic_load_explicit(&ctl->write_shut, memory_order_relaxed) |
		     atomic_load_explicit(&ctl->read_shut, memory_order_relaxed) |
		     (!grown && atomic_load_explicit(&ctl->grown, memory_order_relaxed))))
		return 0;
	/* A small message fits any area (TSSX_RING_SMALL_CAPACITY). */
	if (!small && unlikely(len > limit || len > TSSX_RING_PUBLISH_CHUNK))
		return 0;
	/* Filled beyond limit - len: no room by what this process saw, or
	 * counters that crossed (more than limit apart). */
	if (unlikely(own - seen > limit - len)) {
		/* Acquire pairs with the consumer's release of head: its
		 * copies out of the room below it are done. */
		uint64_t head = atomic_load_explicit(&ctl->head, memory_order_acquire);

		if (unlikely(own - head > limit - len || tssx_ring_went_backwards(head, seen)))
			return 0;
		/* Release pairs with the acquire of the seen value above, in
		 * another thread of this process. */
		atomic_store_explicit(&ring->head_seen, head, memory_order_release);
	}
	return len;
}

/*
 * The consumer's common case: up to len bytes, at most a chunk, of what
 * this process saw of the tail or, when that is less than len, of the
 * tail now, with the count of records of control data that goes with it
 * (as ring.c's refresh()).  0 with nothing moved when there is nothing,
 * the bytes start below the growth point or the ring grew in a way this
 * process has not learnt, records of control data may concern them, or
 * the counters look wrong.
 */
static inline __attribute__((always_inline)) size_t tssx_ring_data_fast(struct tssx_ring *ring,
								       struct tssx_ring_ctl *ctl, uint64_t own,
								       uint64_t seen, uint64_t grown, uint64_t limit,
								       size_t len)
{
	uint64_t n = seen - own;

	if (n < len) {
		/* Acquire pairs with the producer's release of the tail: its
		 * bytes below it are in memory. */
		uint64_t tail = atomic_load_explicit(&ctl->tail, memory_order_acquire);

		/* Bytes above the growth point are in the full area: ring.c
		 * learns it (relaxed: ordered after the tail's acquire). */
		if (unlikely(!grown && atomic_load_explicit(&ctl->grown, memory_order_relaxed)) ||
		    unlikely(tail - own > limit || tssx_ring_went_backwards(tail, seen)))
			return 0;
		/* After the tail: acquire pairs with the producer's release
		 * in tssx_ring_count_ancillary(); the release of tail_seen
		 * carries it to this process's next consumer. */
		atomic_store_explicit(&ring->ancillary_seen,
				      atomic_load_explicit(&ctl->ancillary_sent, memory_order_acquire),
				      memory_order_relaxed);
		/* Release pairs with the acquire of the seen value above. */
		atomic_store_explicit(&ring->tail_seen, tail, memory_order_release);
		n = tail - own;
	}
	/* More than limit: the counters crossed (or the view is another
	 * consumer's, left behind: the general path loads the tail). */
	if (unlikely(n > limit))
		return 0;
	if (n > len)
		n = len;
	/* Below the growth point (grown - 1) the bytes start in the small
	 * area; own + 1 < grown is never true while grown is 0. */
	if (unlikely(!n || n > TSSX_RING_PUBLISH_CHUNK || own + 1 < grown) ||
	    unlikely(atomic_load_explicit(&ring->ancillary_seen, memory_order_relaxed) !=
		     atomic_load_explicit(&ctl->ancillary_taken, memory_order_relaxed)))
		return 0;
	return (size_t)n;
}

/*
 * For a consumer that found the ring empty and polls it: whether the tail
 * moved past what this process read, or the producer shut its end.  Loads
 * the producer's line only, which a poll keeps shared until the producer's
 * next store.  Relaxed: a hint; the read that follows loads the tail with
 * acquire and checks it (a made-up tail only ends the poll early).
 */
static inline bool tssx_ring_data_came(const struct tssx_ring *ring)
{
	const struct tssx_ring_ctl *ctl = ring->ctl;

	return atomic_load_explicit(&ctl->tail, memory_order_relaxed) !=
		       atomic_load_explicit(&ring->head_seen, memory_order_relaxed) ||
	       atomic_load_explicit(&ctl->write_shut, memory_order_relaxed);
}

/*
 * One side's copy, in (producer) or out (consumer), `producer` a constant
 * at each call as in ring.c: tssx_ring_room_fast() or
 * tssx_ring_data_fast() says how much.  Returns the bytes moved, their
 * counter published; 0 with nothing moved when the call is not this
 * common case; -EFAULT with nothing published when buf faulted.  `small`
 * (a constant), for len at most TSSX_COPY_INLINE_MAX: only a copy of at
 * least TSSX_COPY_INLINE_MIN bytes that does not wrap, inline
 * (tssx_copy_inline()), any other 0.
 */
static inline __attribute__((always_inline)) ssize_t tssx_ring_move_sized(struct tssx_ring *ring, bool producer,
									    uint8_t *buf, size_t len, bool small)
{
	struct tssx_ring_ctl *ctl = ring->ctl;
	_Atomic uint64_t *own_at = producer ? &ctl->tail : &ctl->head;
	_Atomic uint64_t *own_seen = producer ? &ring->tail_seen : &ring->head_seen;
	/* Relaxed: only this side stores its counter, under its lock, whose
	 * acquire orders the previous holder's store before this load. */
	uint64_t own = atomic_load_explicit(own_at, memory_order_relaxed);
	/* Acquire pairs with the release of the seen value by another
	 * thread of this process (below, ring.c): what that thread saw of
	 * the peer (its bytes or its freed room) is visible here, and the
	 * growth it learnt before, which is loaded after it. */
	uint64_t seen = atomic_load_explicit(producer ? &ring->head_seen : &ring->tail_seen, memory_order_acquire);
	uint64_t grown = atomic_load_explicit(&ring->grown_seen, memory_order_relaxed);
	uint64_t limit = ring->area_size;
	size_t n;

	/* Our own counter behind what this process published: the peer
	 * wrote it, the general path says so. */
	if (unlikely(tssx_ring_went_backwards(own, atomic_load_explicit(own_seen, memory_order_relaxed))))
		return 0;
	/* ctl passed down: loaded once, where each acquire below would
	 * make the compiler load ring->ctl again. */
	n = producer ? tssx_ring_room_fast(ring, ctl, own, seen, grown, limit, len, small)
		     : tssx_ring_data_fast(ring, ctl, own, seen, grown, limit, len);
	if (unlikely(!n))
		return 0;
	if (small) {
		uint8_t *at = ring->area + (own & (limit - 1));

		if (unlikely(n < TSSX_COPY_INLINE_MIN || (own & (limit - 1)) + n > limit))
			return 0;
		if (unlikely((producer ? tssx_copy_inline(at, buf, n) : tssx_copy_inline(buf, at, n)) < 0))
			return -EFAULT;
	} else if (unlikely(tssx_ring_copy_area(ring->area, limit, producer, own, buf, n) < 0)) {
		return -EFAULT;
	}
	/* Release pairs with the peer's acquire of this counter: the copy
	 * (in or out) is done before the peer sees the counter that covers
	 * it; the second with the acquire of own_seen in ring.c. */
	atomic_store_explicit(own_at, own + n, memory_order_release);
	atomic_store_explicit(own_seen, own + n, memory_order_release);
	return (ssize_t)n;
}

static inline __attribute__((always_inline)) ssize_t tssx_ring_move_fast(struct tssx_ring *ring, bool producer,
									   uint8_t *buf, size_t len)
{
	return tssx_ring_move_sized(ring, producer, buf, len, false);
}

/* tssx_ring_move_fast() of a small message, len at most
 * TSSX_COPY_INLINE_MAX: a copy of at least TSSX_COPY_INLINE_MIN bytes
 * that does not wrap, inline; any other 0 with nothing moved (the caller
 * then tries tssx_ring_move_fast()). */
static inline __attribute__((always_inline)) ssize_t tssx_ring_move_small(struct tssx_ring *ring, bool producer,
									    uint8_t *buf, size_t len)
{
	return tssx_ring_move_sized(ring, producer, buf, len, true);
}

#endif
