/*
 * The byte ring: one producer side, one consumer side (docs/design.md §3,
 * docs/data-path.md).
 *
 * Ordering in one sentence: the producer copies bytes in and then
 * release-stores tail; the consumer acquire-loads tail before copying them
 * out, copies, and then release-stores head; the producer acquire-loads
 * head before overwriting the space head gave back.  Everything else
 * (flags) is documented where it happens.
 *
 * The peer shares the control block and may write anything into it at any
 * time.  Every counter loaded from shared memory is checked against the
 * local capacity and the last value this process saw, and the index into
 * the data is always `counter & mask` with the local mask, so the worst a
 * peer can do is -EPROTO or garbage bytes, never an access outside the ring.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "tssx/log.h"
#include "tssx/ring_fast.h"

_Static_assert(sizeof(struct tssx_ring_ctl) == 2 * TSSX_LINE_PAIR,
	       "producer and consumer lines must each be alone in a pair of lines");
_Static_assert(offsetof(struct tssx_ring_ctl, head) == TSSX_LINE_PAIR,
	       "head must start the consumer's pair of lines");

/* Attempts at a consistent (head, tail) pair while siblings and the peer
 * move both counters; a peer scribbling for longer than this is hostile. */
#define SNAPSHOT_TRIES 64

bool tssx_ring_capacity_valid(uint64_t capacity)
{
	return capacity >= TSSX_RING_MIN_CAPACITY && capacity <= TSSX_RING_MAX_CAPACITY &&
	       (capacity & (capacity - 1)) == 0;
}

void tssx_ring_ctl_init(struct tssx_ring_ctl *ctl)
{
	/* The peer maps the segment only after the hello, whose sendmsg()
	 * orders these stores before anything the peer can see. */
	atomic_store_explicit(&ctl->tail, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->writer_waiting, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->write_shut, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->grown, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->head, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->reader_waiting, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->waiters, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->waiter_cpu, 0, memory_order_relaxed);
	for (int i = 0; i < 2; i++) {
		atomic_store_explicit(&ctl->reader_retired[i], 0, memory_order_relaxed);
		atomic_store_explicit(&ctl->writer_retired[i], 0, memory_order_relaxed);
	}
	atomic_store_explicit(&ctl->reader_bell, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->writer_bell, 0, memory_order_relaxed);
}

void tssx_ring_attach(struct tssx_ring *ring, struct tssx_ring_ctl *ctl, uint8_t *small,
		      uint8_t *data, uint64_t capacity)
{
	ring->ctl = ctl;
	ring->small = small;
	ring->data = data;
	ring->capacity = capacity;
	ring->mask = capacity - 1;
	atomic_init(&ring->grown_seen, 0);
	ring->area = small;
	ring->area_size = TSSX_RING_SMALL_CAPACITY;
	atomic_init(&ring->head_seen, 0);
	atomic_init(&ring->tail_seen, 0);
	atomic_init(&ring->ancillary_seen, 0);
	ring->chunked_from = 0;
}

static ssize_t corrupted(const struct tssx_ring *ring, uint64_t head, uint64_t tail)
{
	return log_error(-EPROTO, "ring corrupted by the peer: head %llu, tail %llu, capacity %llu",
			 (unsigned long long)head, (unsigned long long)tail,
			 (unsigned long long)ring->capacity);
}

/*
 * A consistent (head, tail) pair for callers that hold no lock (poll,
 * FIONREAD): siblings of the caller may move one counter and the peer the
 * other between the two loads, which can show a pair that never existed;
 * a pair that is inconsistent and does not move is corruption.
 */
static int load_counters(const struct tssx_ring *ring, uint64_t *head, uint64_t *tail)
{
	struct tssx_ring_ctl *ctl = ring->ctl;
	/* Acquire pairs with the releases of the seen values in available()
	 * and publish(): the counter loads below then return at least the
	 * values this process already saw. */
	uint64_t head_seen = atomic_load_explicit(&ring->head_seen, memory_order_acquire);
	uint64_t tail_seen = atomic_load_explicit(&ring->tail_seen, memory_order_acquire);
	uint64_t h = 0, t = 0;

	for (int try = 0; try < SNAPSHOT_TRIES; try++) {
		/* Acquire on both: a consumer that published head had loaded a
		 * tail >= head first, so the tail we load next is >= h. */
		h = atomic_load_explicit(&ctl->head, memory_order_acquire);
		t = atomic_load_explicit(&ctl->tail, memory_order_acquire);
		if (tssx_ring_went_backwards(h, head_seen) || tssx_ring_went_backwards(t, tail_seen))
			break;
		if (likely(t - h <= ring->capacity)) {
			*head = h;
			*tail = t;
			return 0;
		}
		if (atomic_load_explicit(&ctl->head, memory_order_relaxed) == h &&
		    atomic_load_explicit(&ctl->tail, memory_order_relaxed) == t)
			break;
	}
	return (int)corrupted(ring, h, t);
}

ssize_t tssx_ring_readable(const struct tssx_ring *ring)
{
	uint64_t head, tail;
	int r = load_counters(ring, &head, &tail);

	return r < 0 ? r : (ssize_t)(tail - head);
}

ssize_t tssx_ring_writable(const struct tssx_ring *ring)
{
	uint64_t head, tail;
	int r = load_counters(ring, &head, &tail);

	return r < 0 ? r : (ssize_t)(ring->capacity - (tail - head));
}

/*
 * One side of the ring, seen from this process.  The producer owns tail and
 * moves into the space up to head + capacity; the consumer owns head and
 * moves into the data up to tail.  Writing both directions as one function
 * keeps the two mirror images from drifting apart; `producer` is a constant
 * at every call, so the compiler builds two straight-line copies.
 */
struct side {
	_Atomic uint64_t *own, *peer;           /* the counters in shared memory */
	_Atomic uint64_t *own_seen, *peer_seen; /* this process's views of them */
};

static inline struct side side_of(struct tssx_ring *ring, bool producer)
{
	struct tssx_ring_ctl *ctl = ring->ctl;

	return producer ? (struct side){ &ctl->tail, &ctl->head, &ring->tail_seen, &ring->head_seen }
			: (struct side){ &ctl->head, &ctl->tail, &ring->head_seen, &ring->tail_seen };
}

/* This process copies to and from the full data area from now on. */
static void move_to_data(struct tssx_ring *ring)
{
	ring->area = ring->data;
	ring->area_size = ring->capacity;
}

/* Keeps a growth value learnt from the segment (learn_growth()). */
static __attribute__((noinline)) int latch_growth(struct tssx_ring *ring, bool producer, uint64_t own, uint64_t g,
						   uint64_t *grown)
{
	if (producer && g - 1 > own)
		return log_error(-EPROTO, "ring corrupted by the peer: grown at %llu, tail %llu",
				 (unsigned long long)(g - 1), (unsigned long long)own);
	/* Relaxed: stored before this thread releases the counter it
	 * loaded next (publish(), peer_seen), which orders it for them. */
	move_to_data(ring);
	atomic_store_explicit(&ring->grown_seen, g, memory_order_relaxed);
	*grown = g;
	return 0;
}

/*
 * Learns that the ring grew (ctl->grown, which the peer may write at any
 * time) and keeps it in grown_seen for the threads of this process; only
 * ever once, a later value in shared memory is ignored.  The producer's
 * growth point is at or below its tail; the consumer copies at most the
 * small area's size from below it (copy_across()).  *grown is the value,
 * 0 while the ring is small; returns 0 or -EPROTO.  Inline: a producer
 * of a small ring asks on every call (a load of its own line).
 */
static inline __attribute__((always_inline)) int learn_growth(struct tssx_ring *ring, bool producer, uint64_t own,
							      uint64_t *grown)
{
	/* Relaxed: the producer's store of grown precedes its release of
	 * the first tail above the growth point, which the consumer has
	 * acquired before it gets here; a producer holds the side lock,
	 * whose acquire orders a sibling's store before this load. */
	uint64_t g = atomic_load_explicit(&ring->ctl->grown, memory_order_relaxed);

	*grown = 0;
	if (likely(!g))
		return 0;
	return latch_growth(ring, producer, own, g, grown);
}

/* The producer moves the ring to its full data area at its tail `own`:
 * a write that does not fit the small area. */
static uint64_t grow(struct tssx_ring *ring, uint64_t own)
{
	/* Relaxed: the release of the next tail (publish()) orders it
	 * before any byte the consumer may read past this point; the side
	 * lock's release orders it for the next producer. */
	atomic_store_explicit(&ring->ctl->grown, own + 1, memory_order_relaxed);
	move_to_data(ring);
	atomic_store_explicit(&ring->grown_seen, own + 1, memory_order_relaxed);
	log_info("a ring grew from %u to %llu bytes at byte %llu", TSSX_RING_SMALL_CAPACITY,
		 (unsigned long long)ring->capacity, (unsigned long long)own);
	return own + 1;
}

/*
 * Loads the peer's counter into this process's view, checked against our
 * own counter `own` and the view `seen`; the consumer loads the count of
 * records of control data with it, and learns whether the ring grew
 * (*grown).  -EPROTO when corrupted.
 */
static __attribute__((noinline)) int refresh(struct tssx_ring *ring, bool producer, uint64_t own, uint64_t seen,
					     uint64_t *grown, uint64_t *fresh)
{
	struct side s = side_of(ring, producer);
	/* Acquire pairs with the peer's release in publish(): the producer's
	 * bytes below tail are in memory before the consumer copies them
	 * out; the consumer's copies out of the space below head are done
	 * before the producer overwrites it. */
	uint64_t peer = atomic_load_explicit(s.peer, memory_order_acquire);

	if (!producer && !*grown)
		(void)learn_growth(ring, false, own, grown); /* a consumer's never fails */
	if (unlikely(tssx_ring_went_backwards(peer, seen) || tssx_ring_window(producer, tssx_ring_limit(ring, *grown), own, peer) == UINT64_MAX))
		return producer ? (int)corrupted(ring, peer, own) : (int)corrupted(ring, own, peer);
	/* After the tail: acquire pairs with the producer's release in
	 * tssx_ring_count_ancillary(), made before it wrote the bytes below
	 * this tail.  Relaxed store: the release of tail_seen below carries
	 * it to the next holder of the consumer lock. */
	if (!producer)
		atomic_store_explicit(&ring->ancillary_seen,
				      atomic_load_explicit(&ring->ctl->ancillary_sent, memory_order_acquire),
				      memory_order_relaxed);
	/* Release pairs with the acquire in available() and load_counters(). */
	atomic_store_explicit(s.peer_seen, peer, memory_order_release);
	*fresh = peer;
	return 0;
}

/*
 * How many bytes this side can move at its own counter *pos, or -EPROTO.
 * The cached view of the peer answers when it already allows `want` bytes;
 * otherwise the peer's counter is loaded and checked.  A producer for whom
 * the small area is too small grows the ring.  The caller holds this
 * side's lock (or is its only thread), so *pos cannot move under it.
 * *grown is the growth value the copy goes by.
 */
static inline __attribute__((always_inline)) ssize_t available(struct tssx_ring *ring, bool producer, size_t want,
							      uint64_t *pos, uint64_t *grown)
{
	struct side s = side_of(ring, producer);
	/* Our own counter: only this side stores it, serialised by its lock,
	 * whose acquire orders the previous holder's store before this load. */
	uint64_t own = atomic_load_explicit(s.own, memory_order_relaxed);
	/* Acquire pairs with the release in publish() or in refresh(), from
	 * another thread of this process: whatever that thread saw of the
	 * peer (its bytes or its freed space) is visible here, and the
	 * growth it learnt before that. */
	uint64_t seen = atomic_load_explicit(s.peer_seen, memory_order_acquire);
	uint64_t g = atomic_load_explicit(&ring->grown_seen, memory_order_relaxed);
	uint64_t n;
	int r;

	if (unlikely(tssx_ring_went_backwards(own, atomic_load_explicit(s.own_seen, memory_order_relaxed))))
		return producer ? corrupted(ring, seen, own) : corrupted(ring, own, seen);
	/* A producer sibling in another process may have grown the ring. */
	if (producer && unlikely(!g) && learn_growth(ring, true, own, &g) < 0)
		return -EPROTO;
	n = tssx_ring_window(producer, tssx_ring_limit(ring, g), own, seen);
	if (likely(n != UINT64_MAX && n >= want))
		goto done;
	r = refresh(ring, producer, own, seen, &g, &seen);
	if (r < 0)
		return r;
	n = tssx_ring_window(producer, tssx_ring_limit(ring, g), own, seen);
	if (producer && !g && n < want) {
		g = grow(ring, own);
		n = tssx_ring_window(true, ring->capacity, own, seen);
	}
done:
	*pos = own;
	*grown = g;
	return (ssize_t)n;
}

/* Whether records of control data not yet reached by the consumer were
 * counted for the bytes below tail_seen (or later ones). */
static inline bool records_seen_ahead(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->ancillary_seen, memory_order_relaxed) !=
	       atomic_load_explicit(&ring->ctl->ancillary_taken, memory_order_relaxed);
}

/*
 * For a read that must stop before control data, with bytes readable at
 * `pos` below tail_seen: whether a record may concern them.  The count
 * seen with an older tail may include records taken since: it is loaded
 * again with a fresh tail before the answer is yes.  -EPROTO when the
 * reload finds the counters corrupted.
 */
static inline int records_ahead(struct tssx_ring *ring, uint64_t pos)
{
	uint64_t tail, grown = atomic_load_explicit(&ring->grown_seen, memory_order_relaxed);
	int r;

	if (likely(!records_seen_ahead(ring)))
		return 0;
	r = refresh(ring, false, pos, atomic_load_explicit(&ring->tail_seen, memory_order_acquire), &grown, &tail);
	return r < 0 ? r : records_seen_ahead(ring);
}

static inline void publish(struct tssx_ring *ring, bool producer, uint64_t pos)
{
	struct side s = side_of(ring, producer);

	/* Release pairs with the peer's acquire in available() and
	 * load_counters(): our copies (in or out) happen before the peer
	 * sees the counter that covers them. */
	atomic_store_explicit(s.own, pos, memory_order_release);
	/* Release pairs with the acquire in available() for the threads of
	 * this process. */
	atomic_store_explicit(s.own_seen, pos, memory_order_release);
}

/* A consumer's copy across the growth point `at`: the bytes below it from
 * the small area, at most its size (more is the peer's corruption: only
 * garbage, never an access outside it), the rest from the full one. */
static __attribute__((noinline)) long copy_across(const struct tssx_ring *ring, uint64_t at, uint64_t pos,
						    uint8_t *buf, size_t len)
{
	size_t small = at - pos < len ? (size_t)(at - pos) : len;
	long r;

	if (small > TSSX_RING_SMALL_CAPACITY)
		small = TSSX_RING_SMALL_CAPACITY;
	r = tssx_ring_copy_area(ring->small, TSSX_RING_SMALL_CAPACITY, false, pos, buf, small);
	if (small == len || r < 0)
		return r;
	return tssx_ring_copy_area(ring->data, ring->capacity, false, pos + small, buf + small, len - small);
}

/* Where the full area starts for this side: never while the ring is
 * small; for a producer at once when it grew; for the consumer at the
 * growth point (the bytes below it are still in the small area). */
static inline uint64_t full_from(bool producer, uint64_t grown)
{
	return !grown ? UINT64_MAX : producer ? 0 : grown - 1;
}

/* Where `len` bytes at counter `pos` live (full: full_from()); while the
 * ring is small the window kept them within the small area's size.  0, or
 * -EFAULT. */
static inline __attribute__((always_inline)) long copy(const struct tssx_ring *ring, bool producer, uint64_t full,
							 uint64_t pos, uint8_t *buf, size_t len)
{
	if (likely(pos >= full))
		return tssx_ring_copy_area(ring->data, ring->capacity, producer, pos, buf, len);
	if (full == UINT64_MAX)
		return tssx_ring_copy_area(ring->small, TSSX_RING_SMALL_CAPACITY, producer, pos, buf, len);
	return copy_across(ring, full, pos, buf, len);
}

/* The copy of a large transfer of `limit` bytes at `pos`, published
 * chunk by chunk (the caller publishes the end): `limit`, or after a
 * fault the bytes published before it (a published chunk is the peer's),
 * -EFAULT if none.  Out of line: small transfers stay as short as before. */
static __attribute__((noinline)) ssize_t copy_publishing(struct tssx_ring *ring, bool producer, uint64_t full,
							   uint64_t pos, const struct iovec *iov, size_t limit)
{
	size_t done = 0, published = 0;

	for (int i = 0; done < limit; i++) {
		uint8_t *base = iov[i].iov_base;
		size_t left = iov[i].iov_len < limit - done ? iov[i].iov_len : limit - done;

		while (left) {
			size_t len = TSSX_RING_PUBLISH_CHUNK - (done - published);

			if (len > left)
				len = left;
			if (unlikely(copy(ring, producer, full, pos + done, base, len) < 0))
				return published ? (ssize_t)published : -EFAULT;
			base += len;
			left -= len;
			done += len;
			if (done - published == TSSX_RING_PUBLISH_CHUNK) {
				publish(ring, producer, pos + done);
				published = done;
			}
		}
	}
	return (ssize_t)limit;
}

/* Moves up to the iovec's length, or nothing when fewer than `least`
 * bytes can move; a peek starts `skip` bytes into the data; an `unmarked`
 * read moves nothing when records of control data may concern its bytes
 * (TSSX_RING_MARKED). */
static inline __attribute__((always_inline)) ssize_t
transfer(struct tssx_ring *ring, bool producer, const struct iovec *iov, int iovcnt, bool peek, size_t least,
	 uint64_t skip, bool unmarked)
{
	size_t want = tssx_iov_total(iov, iovcnt);
	size_t done = 0, limit;
	uint64_t pos, grown, full;
	ssize_t n;

	if (unlikely(want == 0))
		return 0;
	n = available(ring, producer, want + skip, &pos, &grown);
	if (unlikely(n <= 0 || (size_t)n < least || (uint64_t)n <= skip))
		return n < 0 ? n : 0;
	if (unmarked) {
		int ahead = records_ahead(ring, pos);

		if (unlikely(ahead))
			return ahead < 0 ? ahead : TSSX_RING_MARKED;
	}
	n -= (ssize_t)skip;
	pos += skip;
	limit = (size_t)n < want ? (size_t)n : want;
	full = full_from(producer, grown);
	if (unlikely(limit > TSSX_RING_PUBLISH_CHUNK) && !peek) {
		/* For a sigsetjmp guard (copy.h) that jumps out of it. */
		ring->chunked_from = pos + 1;
		n = copy_publishing(ring, producer, full, pos, iov, limit);
		ring->chunked_from = 0;
		if (n < 0 || (size_t)n < limit)
			return n; /* faulted: what was published moved */
		done = limit;
	}
	for (int i = 0; done < limit; i++) {
		size_t len = iov[i].iov_len;

		if (len > limit - done)
			len = limit - done;
		/* A fault publishes nothing: the call fails whole. */
		if (len && unlikely(copy(ring, producer, full, pos + done, iov[i].iov_base, len) < 0))
			return -EFAULT;
		done += len;
	}
	if (!peek)
		publish(ring, producer, pos + done);
	return (ssize_t)done;
}

size_t tssx_ring_fault_moved(struct tssx_ring *ring, bool producer)
{
	uint64_t from = ring->chunked_from;

	ring->chunked_from = 0;
	if (!from)
		return 0;
	return (size_t)(atomic_load_explicit(producer ? &ring->tail_seen : &ring->head_seen, memory_order_relaxed) -
			(from - 1));
}

ssize_t tssx_ring_write(struct tssx_ring *ring, const struct iovec *iov, int iovcnt)
{
	return transfer(ring, true, iov, iovcnt, false, 0, 0, false);
}

ssize_t tssx_ring_write_whole(struct tssx_ring *ring, const struct iovec *iov, int iovcnt, size_t least)
{
	return transfer(ring, true, iov, iovcnt, false, least, 0, false);
}

ssize_t tssx_ring_read(struct tssx_ring *ring, const struct iovec *iov, int iovcnt, bool peek)
{
	return transfer(ring, false, iov, iovcnt, peek, 0, 0, false);
}

ssize_t tssx_ring_read_unmarked(struct tssx_ring *ring, const struct iovec *iov, int iovcnt, bool peek)
{
	return transfer(ring, false, iov, iovcnt, peek, 0, 0, true);
}

ssize_t tssx_ring_peek_at(struct tssx_ring *ring, uint64_t skip, const struct iovec *iov, int iovcnt)
{
	/* Past the capacity there is never data: no overflow below. */
	if (skip >= ring->capacity)
		return 0;
	return transfer(ring, false, iov, iovcnt, true, 0, skip, false);
}

/*
 * The sleep/wake handshake is Dekker's: the sleeper stores its flag and
 * then loads the other side's counter; the waker stores its counter and
 * then loads the flag.  Release/acquire does not order a store before a
 * later load of another location (the store may sit in the store buffer
 * while the load runs), so without a full barrier between the store and
 * the load on both sides they could miss each other: the sleeper sees no
 * new data and sleeps, the waker sees no flag and sends no doorbell.
 * With one, at least one of them sees the other's store: either the
 * sleeper sees the data and does not sleep, or the waker sees the flag
 * and rings.  The flag stays set when the sleeper finds data after all,
 * unless its sleeper holds it (tssx_ring_hold(), below): a spare doorbell
 * costs one drained byte, a cleared flag another sleeper still relies on
 * would cost a hang.
 *
 * The barrier is a seq_cst fence on each side, always.  A waker without
 * it, whose sleeper issued membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)
 * instead, lost wake-ups (docs/data-path.md, "Wake-ups always fence"):
 * the kernel skips a CPU whose record of the waker's registration is
 * stale, and a waker whose counter store waits behind a large copy's
 * stores is not made visible in time.
 *
 * The flag holds a bit per bell (ring.h), added: a sleeper of the other
 * kind may have armed it already.
 */
void tssx_ring_raise(struct tssx_ring *ring, bool reader, uint32_t bell)
{
	atomic_fetch_or_explicit(reader ? &ring->ctl->reader_waiting : &ring->ctl->writer_waiting, bell,
				  memory_order_relaxed);
	/* Pairs with the fence of the waker's check
	 * (tssx_ring_sleeper_raised()): flag store before the counter's
	 * load. */
	atomic_thread_fence(memory_order_seq_cst);
}

ssize_t tssx_ring_arm_reader(struct tssx_ring *ring, uint32_t bell)
{
	tssx_ring_raise(ring, true, bell);
	return tssx_ring_readable(ring);
}

ssize_t tssx_ring_arm_writer(struct tssx_ring *ring, uint32_t bell)
{
	tssx_ring_raise(ring, false, bell);
	return tssx_ring_writable(ring);
}

/*
 * Holds (ring.h).  The caller holds its process's lock of the holds
 * (conn/hold.c) around both, so that a count and the bit it stands for
 * change together for this process: a holder that raises its bell after
 * the last one lowered it raises it again, one that raises it before
 * keeps the count above 0 and the bit up.  The waker's exchange
 * (tssx_ring_take_bells()) takes the bit whatever the counts: holders it
 * woke find it lowered already when they leave, and each later sleeper
 * raises it again.
 */
static _Atomic uint16_t *hold_count(struct tssx_ring_holds *holds, uint32_t bell)
{
	return &holds->of[__builtin_ctz(bell) % 3];
}

void tssx_ring_hold(struct tssx_ring *ring, struct tssx_ring_holds *holds, bool reader, uint32_t bell,
		    bool counted)
{
	_Atomic uint16_t *count = hold_count(holds, bell);
	uint16_t held = atomic_load_explicit(count, memory_order_relaxed);

	/* Relaxed: the lock orders the counts; a count that would reach
	 * the sticky value sticks (spare doorbells, never a lowered bit). */
	if (held != TSSX_RING_HOLD_STICKY)
		atomic_store_explicit(count, counted ? held + 1 : TSSX_RING_HOLD_STICKY, memory_order_relaxed);
	tssx_ring_raise(ring, reader, bell);
}

bool tssx_ring_unhold(struct tssx_ring *ring, struct tssx_ring_holds *holds, bool reader, uint32_t bell)
{
	_Atomic uint16_t *count = hold_count(holds, bell);
	uint16_t held = atomic_load_explicit(count, memory_order_relaxed);

	/* 0: no counted holder to leave (a caller's mistake): the bit stays. */
	if (held == TSSX_RING_HOLD_STICKY || held == 0)
		return false;
	atomic_store_explicit(count, held - 1, memory_order_relaxed);
	if (held > 1)
		return false;
	/* The last holder of this process, on an end no other process
	 * holds: no sleeper relies on the bit.  Relaxed: the lock orders it
	 * against this process's raises (a raise after it is a later
	 * modification of the flag, which then fences as ever); against the
	 * waker's exchange either order is right: the exchange first rang a
	 * bell nobody needs any more, the lowering first makes the waker
	 * ring none.  Only this bell's bit: a peer's other bits stay. */
	atomic_fetch_and_explicit(reader ? &ring->ctl->reader_waiting : &ring->ctl->writer_waiting, ~bell,
				  memory_order_relaxed);
	return true;
}

bool tssx_ring_hold_sticky(struct tssx_ring_holds *holds, uint32_t bell)
{
	return atomic_load_explicit(hold_count(holds, bell), memory_order_relaxed) == TSSX_RING_HOLD_STICKY;
}
