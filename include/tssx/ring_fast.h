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
static inline long tssx_ring_copy_area(uint8_t *area, uint64_t size, bool producer, uint64_t pos, uint8_t *buf,
				       size_t len)
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
 * One side's copy, in (producer) or out (consumer), `producer` a constant
 * at each call as in ring.c.  The peer's counter is loaded only when the
 * one this process saw last does not allow len bytes, with the count of
 * records of control data for a consumer, as ring.c's refresh() does.
 * The producer moves all of buf[len] or nothing (several writers' bytes
 * stay whole); the consumer up to len bytes, at most
 * TSSX_RING_PUBLISH_CHUNK.  Returns the bytes moved, their counter
 * published; 0 with nothing moved when the call is not this common case:
 * no room or no data, the ring is to grow or grew in a way this process
 * has not learnt yet, the bytes cross the growth point, records of
 * control data may concern them, the counters look wrong; -EFAULT with
 * nothing published when buf faulted.
 */
static inline __attribute__((always_inline)) ssize_t tssx_ring_move_fast(struct tssx_ring *ring, bool producer,
									   uint8_t *buf, size_t len)
{
	struct tssx_ring_ctl *ctl = ring->ctl;
	_Atomic uint64_t *own_at = producer ? &ctl->tail : &ctl->head;
	_Atomic uint64_t *own_seen = producer ? &ring->tail_seen : &ring->head_seen;
	_Atomic uint64_t *peer_seen = producer ? &ring->head_seen : &ring->tail_seen;
	/* Relaxed: only this side stores its counter, under its lock, whose
	 * acquire orders the previous holder's store before this load. */
	uint64_t own = atomic_load_explicit(own_at, memory_order_relaxed);
	/* Acquire pairs with the release of the seen value by another
	 * thread of this process (below, ring.c): what that thread saw of
	 * the peer (its bytes or its freed room) is visible here, and the
	 * growth it learnt before. */
	uint64_t seen = atomic_load_explicit(peer_seen, memory_order_acquire);
	uint64_t grown = atomic_load_explicit(&ring->grown_seen, memory_order_relaxed);
	uint64_t limit = tssx_ring_limit(ring, grown);
	uint64_t n = tssx_ring_window(producer, limit, own, seen);

	if (unlikely(n == UINT64_MAX) ||
	    unlikely(tssx_ring_went_backwards(own, atomic_load_explicit(own_seen, memory_order_relaxed))))
		return 0;
	/* A producer sibling in another process may have grown the ring
	 * (relaxed: its store precedes its unlock, which our lock acquired). */
	if (producer && !grown && unlikely(atomic_load_explicit(&ctl->grown, memory_order_relaxed)))
		return 0;
	if (n < len) {
		/* Acquire pairs with the peer's release of its counter: the
		 * producer's bytes below the tail are in memory, the
		 * consumer's copies out of the room below the head are done. */
		uint64_t peer = atomic_load_explicit(producer ? &ctl->head : &ctl->tail, memory_order_acquire);

		/* Bytes above the growth point are in the full area: ring.c
		 * learns it (relaxed: ordered after the tail's acquire). */
		if (!producer && !grown && unlikely(atomic_load_explicit(&ctl->grown, memory_order_relaxed)))
			return 0;
		n = tssx_ring_window(producer, limit, own, peer);
		if (unlikely(n == UINT64_MAX || tssx_ring_went_backwards(peer, seen)))
			return 0;
		/* After the tail: acquire pairs with the producer's release
		 * in tssx_ring_count_ancillary(); the release of tail_seen
		 * carries it to this process's next consumer. */
		if (!producer)
			atomic_store_explicit(&ring->ancillary_seen,
					      atomic_load_explicit(&ctl->ancillary_sent, memory_order_acquire),
					      memory_order_relaxed);
		/* Release pairs with the acquire of the seen value above. */
		atomic_store_explicit(peer_seen, peer, memory_order_release);
	}
	if (producer) {
		if (unlikely(n < len || len > TSSX_RING_PUBLISH_CHUNK))
			return 0;
		n = len;
	} else {
		if (n > len)
			n = len;
		/* Below the growth point the bytes start in the small area. */
		if (unlikely(!n || n > TSSX_RING_PUBLISH_CHUNK || (grown && own < grown - 1)) ||
		    unlikely(atomic_load_explicit(&ring->ancillary_seen, memory_order_relaxed) !=
			     atomic_load_explicit(&ctl->ancillary_taken, memory_order_relaxed)))
			return 0;
	}
	if (unlikely(tssx_ring_copy_area(grown ? ring->data : ring->small, limit, producer, own, buf, (size_t)n) < 0))
		return -EFAULT;
	/* Release pairs with the peer's acquire of this counter: the copy
	 * (in or out) is done before the peer sees the counter that covers
	 * it; the second with the acquire of own_seen in ring.c. */
	atomic_store_explicit(own_at, own + n, memory_order_release);
	atomic_store_explicit(own_seen, own + n, memory_order_release);
	return (ssize_t)n;
}

#endif
