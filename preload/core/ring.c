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

#include "tssx/copy.h"
#include "tssx/log.h"
#include "tssx/ring.h"

_Static_assert(sizeof(struct tssx_ring_ctl) == 2 * TSSX_CACHELINE,
	       "producer and consumer lines must each be one cache line");
_Static_assert(offsetof(struct tssx_ring_ctl, head) == TSSX_CACHELINE,
	       "head must start the consumer's cache line");

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
	atomic_store_explicit(&ctl->head, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->reader_waiting, 0, memory_order_relaxed);
	atomic_store_explicit(&ctl->waiters, 0, memory_order_relaxed);
}

void tssx_ring_attach(struct tssx_ring *ring, struct tssx_ring_ctl *ctl,
		      uint8_t *data, uint64_t capacity)
{
	ring->ctl = ctl;
	ring->data = data;
	ring->capacity = capacity;
	ring->mask = capacity - 1;
	atomic_init(&ring->head_seen, 0);
	atomic_init(&ring->tail_seen, 0);
	atomic_init(&ring->ancillary_seen, 0);
}

static ssize_t corrupted(const struct tssx_ring *ring, uint64_t head, uint64_t tail)
{
	return log_error(-EPROTO, "ring corrupted by the peer: head %llu, tail %llu, capacity %llu",
			 (unsigned long long)head, (unsigned long long)tail,
			 (unsigned long long)ring->capacity);
}

/* A counter is never behind the value this process already saw.  Stale
 * seen values (a sibling thread or forked process moved on) are lower,
 * never higher, so they cannot trigger this. */
static inline bool went_backwards(uint64_t counter, uint64_t seen)
{
	return (int64_t)(counter - seen) < 0;
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
		if (went_backwards(h, head_seen) || went_backwards(t, tail_seen))
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

/* Bytes the side may move between its own and the peer's counter: free
 * space for the producer, data for the consumer; UINT64_MAX when the pair
 * is more than a capacity apart (or crossed), i.e. corrupted. */
static inline uint64_t window(const struct tssx_ring *ring, bool producer, uint64_t own, uint64_t peer)
{
	uint64_t filled = producer ? own - peer : peer - own;

	if (unlikely(filled > ring->capacity))
		return UINT64_MAX;
	return producer ? ring->capacity - filled : filled;
}

/*
 * Loads the peer's counter into this process's view, checked against our
 * own counter `own` and the view `seen`; the consumer loads the count of
 * records of control data with it.  -EPROTO when corrupted.
 */
static __attribute__((noinline)) int refresh(struct tssx_ring *ring, bool producer, uint64_t own, uint64_t seen, uint64_t *fresh)
{
	struct side s = side_of(ring, producer);
	/* Acquire pairs with the peer's release in publish(): the producer's
	 * bytes below tail are in memory before the consumer copies them
	 * out; the consumer's copies out of the space below head are done
	 * before the producer overwrites it. */
	uint64_t peer = atomic_load_explicit(s.peer, memory_order_acquire);

	if (unlikely(went_backwards(peer, seen) || window(ring, producer, own, peer) == UINT64_MAX))
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
 * otherwise the peer's counter is loaded and checked.  The caller holds
 * this side's lock (or is its only thread), so *pos cannot move under it.
 */
static inline __attribute__((always_inline)) ssize_t available(struct tssx_ring *ring, bool producer, size_t want, uint64_t *pos)
{
	struct side s = side_of(ring, producer);
	/* Our own counter: only this side stores it, serialised by its lock,
	 * whose acquire orders the previous holder's store before this load. */
	uint64_t own = atomic_load_explicit(s.own, memory_order_relaxed);
	/* Acquire pairs with the release in publish() or in refresh(), from
	 * another thread of this process: whatever that thread saw of the
	 * peer (its bytes or its freed space) is visible here. */
	uint64_t seen = atomic_load_explicit(s.peer_seen, memory_order_acquire);
	uint64_t n = window(ring, producer, own, seen);
	int r;

	if (unlikely(went_backwards(own, atomic_load_explicit(s.own_seen, memory_order_relaxed))))
		return producer ? corrupted(ring, seen, own) : corrupted(ring, own, seen);
	if (likely(n != UINT64_MAX && n >= want))
		goto done;
	r = refresh(ring, producer, own, seen, &seen);
	if (r < 0)
		return r;
	n = window(ring, producer, own, seen);
done:
	*pos = own;
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
	uint64_t tail;
	int r;

	if (likely(!records_seen_ahead(ring)))
		return 0;
	r = refresh(ring, false, pos, atomic_load_explicit(&ring->tail_seen, memory_order_acquire), &tail);
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

/* Copies `len` bytes at counter `pos` in or out: one span, or two when
 * they wrap.  0, or -EFAULT when the caller's buffer faulted (copy.h). */
static inline long copy(const struct tssx_ring *ring, bool producer, uint64_t pos, uint8_t *buf, size_t len)
{
	size_t offset = (size_t)(pos & ring->mask);
	size_t to_end = (size_t)ring->capacity - offset;
	size_t first = len < to_end ? len : to_end;
	uint8_t *at = ring->data + offset;
	long r = producer ? tssx_copy(at, buf, first) : tssx_copy(buf, at, first);

	if (likely(len == first) || r < 0)
		return r;
	return producer ? tssx_copy(ring->data, buf + first, len - first)
			: tssx_copy(buf + first, ring->data, len - first);
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
	uint64_t pos;
	ssize_t n;

	if (unlikely(want == 0))
		return 0;
	n = available(ring, producer, want + skip, &pos);
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
	for (int i = 0; done < limit; i++) {
		size_t len = iov[i].iov_len;

		if (len > limit - done)
			len = limit - done;
		/* A fault publishes nothing: the call fails whole. */
		if (len && unlikely(copy(ring, producer, pos + done, iov[i].iov_base, len) < 0))
			return -EFAULT;
		done += len;
	}
	if (!peek)
		publish(ring, producer, pos + done);
	return (ssize_t)done;
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
 * while the load runs), so without a full fence both sides could miss each
 * other: the sleeper sees no new data and sleeps, the waker sees no flag
 * and sends no doorbell.  With a seq_cst fence between the store and the
 * load on both sides, at least one of them sees the other's store: either
 * the sleeper sees the data and does not sleep, or the waker sees the flag
 * and rings.  The flag stays set when the sleeper finds data after all: a
 * spare doorbell costs one drained byte, a cleared flag another sleeper
 * still relies on would cost a hang.
 */
static ssize_t arm(const struct tssx_ring *ring, _Atomic uint32_t *flag,
		   ssize_t (*recheck)(const struct tssx_ring *))
{
	atomic_store_explicit(flag, 1, memory_order_relaxed);
	/* Pairs with the fence in tssx_ring_take_wakeup() (ring.h): flag
	 * store before counter load. */
	atomic_thread_fence(memory_order_seq_cst);
	return recheck(ring);
}

ssize_t tssx_ring_arm_reader(struct tssx_ring *ring)
{
	return arm(ring, &ring->ctl->reader_waiting, tssx_ring_readable);
}

ssize_t tssx_ring_arm_writer(struct tssx_ring *ring)
{
	return arm(ring, &ring->ctl->writer_waiting, tssx_ring_writable);
}
