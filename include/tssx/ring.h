/*
 * A byte ring in shared memory with one producer side and one consumer side
 * (docs/design.md §3, docs/data-path.md).
 *
 * Free-running 64-bit counters: `tail` counts bytes ever written, `head`
 * bytes ever read; readable = tail - head, index = counter & mask.  The
 * producer and the consumer each own one cache line.  The capacity is taken
 * from the local, validated hello, never re-read from shared memory, and
 * every counter read from shared memory is checked: a peer that corrupts
 * them makes the calls return -EPROTO, never an out-of-bounds access.
 *
 * Several producers (threads, forked processes) serialise on a lock of
 * their own process (side_lock.h), never in the shared segment; so do
 * several consumers.
 */
#ifndef TSSX_RING_H
#define TSSX_RING_H

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "macros.h"

#define TSSX_RING_MIN_CAPACITY (4u * 1024)
#define TSSX_RING_MAX_CAPACITY (1ull << 30)
/* Every ring starts in a small area on the segment's first page and moves
 * to its full capacity the first time a write does not fit there. */
#define TSSX_RING_SMALL_CAPACITY 1024u

/* Lives in the shared segment. */
struct tssx_ring_ctl {
	/*
	 * Producer's line: written by the producer on every write, read by
	 * the consumer.  The flag the producer checks after every write lives
	 * here too, so that check hits the producer's own cache; the consumer
	 * writes it only when going to sleep.  Each line alone in its pair of
	 * lines (TSSX_LINE_PAIR): the consumer polls this one, and the line
	 * beside it must not be one the peer writes at every message.
	 */
	alignas(TSSX_LINE_PAIR) _Atomic uint64_t tail;
	_Atomic uint32_t reader_waiting; /* consumer sleeps for data: TSSX_BELL_* */
	_Atomic uint32_t write_shut;     /* producer did shutdown(SHUT_WR): TSSX_WRITE_* */
	_Atomic uint32_t ancillary_sent; /* control-data records put on the socket */
	/* Consumer did shutdown(SHUT_RD): writes fail.  The producer checks
	 * it at every write, the consumer writes it once. */
	_Atomic uint32_t read_shut;
	/* 0 while the ring is small; else 1 + the tail at which it grew: the
	 * bytes from there on are in the full data area. */
	_Atomic uint64_t grown;
	/* Retired, zero: the words with which protocol 8's wakers went
	 * without their fence (docs/data-path.md, "Wake-ups always
	 * fence").  Such a peer's waker drops its fence only when the first
	 * word is 1, which this library never writes. */
	_Atomic uint32_t reader_retired[2];
	/* The futex word a consumer asleep on the futex bell waits on: the
	 * producer (and this process's own wakers) add one before waking. */
	_Atomic uint32_t reader_bell;

	/* Consumer's line: the mirror image. */
	alignas(TSSX_LINE_PAIR) _Atomic uint64_t head;
	_Atomic uint32_t writer_waiting; /* producer sleeps for space: TSSX_BELL_* */
	/* On the rx ring of each end: the thread id of the one sleeper that
	 * owns this end's doorbells (conn/stream.c), 0 when none. */
	_Atomic uint32_t waiters;
	_Atomic uint32_t ancillary_taken; /* records the consumer reached */
	_Atomic uint32_t writer_retired[2]; /* reader_retired's mirror image */
	_Atomic uint32_t writer_bell;     /* reader_bell's mirror image */
	/* On the rx ring of each end: 1 + the CPU that end last started a
	 * wait on the connection on (its data path, an epoll wait whose only
	 * hot entry is the connection, or a poll or select whose only
	 * connection it is; sched_getcpu()), 0 unknown (none
	 * yet, or a peer whose library does not publish it).  Written by
	 * that end, only when it changed; read by the peer, whose waits may
	 * then spin beside other work when it names another CPU, and sleep
	 * instead of yielding when it names their own (docs/wait.md, "A peer
	 * on another CPU beside other work", "A peer on the same CPU").  Any
	 * value only steers those choices. */
	_Atomic uint32_t waiter_cpu;
};

/* write_shut: the stream ends (EOF), or ends in an error because the
 * producer's connection went to an image that cannot use it (exec). */
#define TSSX_WRITE_SHUT 1u
#define TSSX_WRITE_ABANDONED 2u

/*
 * A process's local view of one ring.  It starts small: the first bytes
 * go to `small` (TSSX_RING_SMALL_CAPACITY bytes, on the page every
 * connection touches anyway); the first write that does not fit there
 * moves the ring to `data` for good, at the tail it had then (ctl->grown).
 * A connection that only ever exchanges small messages keeps one page.
 */
struct tssx_ring {
	struct tssx_ring_ctl *ctl;
	uint8_t *small;
	uint8_t *data;
	uint64_t capacity; /* of data: power of two, validated */
	uint64_t mask;
	/* ctl->grown as this process knows it (0: still small as far as
	 * this process knows), checked when it was learnt. */
	_Atomic uint64_t grown_seen;
	/* The area this process copies to or from, and its size
	 * (tssx_ring_limit()): small and TSSX_RING_SMALL_CAPACITY until it
	 * learns the growth, then data and capacity.  Set with grown_seen,
	 * before it, by the side lock's holder, and read by the next: two
	 * loads where the fast path computed them from grown_seen. */
	uint8_t *area;
	uint64_t area_size;
	/*
	 * The highest head and tail this process has loaded or published
	 * (process-local, never in shared memory; stale-low after a sibling
	 * moved on, never too high).  The cached peer counter saves a cache
	 * miss on the peer's line when it already allows the call, and a
	 * counter found below its seen value is corruption (-EPROTO).
	 */
	_Atomic uint64_t head_seen;
	_Atomic uint64_t tail_seen;
	/*
	 * Consumer: ancillary_sent as loaded right after the tail now in
	 * tail_seen, so it counts every record of control data for the bytes
	 * below tail_seen (the producer counts a record before it writes its
	 * bytes).  Equal to ancillary_taken, none of them concerns a read
	 * that the cached tail allows: the read touches no line of the peer's.
	 */
	_Atomic uint32_t ancillary_seen;
	/* 1 + the counter a transfer of more than 64 KiB started at while it
	 * copies and publishes chunk by chunk, else 0 (only the side lock's
	 * holder touches it): what a copy that faulted had moved. */
	uint64_t chunked_from;
};

/* A power of two within [TSSX_RING_MIN_CAPACITY, TSSX_RING_MAX_CAPACITY]. */
bool tssx_ring_capacity_valid(uint64_t capacity);

/* Creator side: zero the control block. */
void tssx_ring_ctl_init(struct tssx_ring_ctl *ctl);
/* small holds TSSX_RING_SMALL_CAPACITY bytes; capacity (of data) must be
 * a validated power of two. */
void tssx_ring_attach(struct tssx_ring *ring, struct tssx_ring_ctl *ctl, uint8_t *small,
		      uint8_t *data, uint64_t capacity);

/* Bytes ready to read / space to write, or -EPROTO on corrupted counters. */
ssize_t tssx_ring_readable(const struct tssx_ring *ring);
ssize_t tssx_ring_writable(const struct tssx_ring *ring);

/* Total length of an iovec, saturated at SIZE_MAX: the ring never moves
 * more than its capacity anyway. */
static inline size_t tssx_iov_total(const struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	if (likely(iovcnt == 1))
		return iov[0].iov_len;
	for (int i = 0; i < iovcnt; i++) {
		if (__builtin_add_overflow(total, iov[i].iov_len, &total))
			return SIZE_MAX;
	}
	return total;
}

/* Copy in as much of iov as fits (possibly 0); returns bytes, -EPROTO, or
 * -EFAULT with nothing published when the caller's buffer faulted
 * (tssx/copy.h: on x86-64 the copy returns it; elsewhere the caller's
 * guard catches the fault first).
 * read/write need the side's lock when several threads or processes share
 * that side; readable/writable/arm_* do not. */
ssize_t tssx_ring_write(struct tssx_ring *ring, const struct iovec *iov, int iovcnt);
/* The same, or nothing when fewer than `least` bytes fit: several
 * writers' bytes stay whole (least at most the capacity). */
ssize_t tssx_ring_write_whole(struct tssx_ring *ring, const struct iovec *iov, int iovcnt, size_t least);
/* Copy out up to the iov's length; with peek the head does not move.
 * A transfer of more than 64 KiB publishes its counter as it copies: one
 * whose copy faults (the caller's buffer) returns the bytes it published
 * before the fault, -EFAULT only when none (where a sigsetjmp guard jumps
 * out of the copy instead, copy.h: tssx_ring_fault_moved()). */
ssize_t tssx_ring_read(struct tssx_ring *ring, const struct iovec *iov, int iovcnt, bool peek);
/* What tssx_ring_read_unmarked() returns when records of control data
 * (preload/conn/ancillary.c) may concern the bytes it would read. */
#define TSSX_RING_MARKED (-ENOMSG)
/* tssx_ring_read(), or TSSX_RING_MARKED with nothing moved: the data path
 * of a connection without control data in flight, which then loads no
 * counter of the peer's as long as the bytes it saw allow the read. */
ssize_t tssx_ring_read_unmarked(struct tssx_ring *ring, const struct iovec *iov, int iovcnt, bool peek);
/* A peek that starts `skip` bytes into the data (SO_PEEK_OFF). */
ssize_t tssx_ring_peek_at(struct tssx_ring *ring, uint64_t skip, const struct iovec *iov, int iovcnt);
/* After a write or read whose copy faulted (a signal handler jumped out
 * of it): the bytes it had published, 0 if none.  The side lock's holder,
 * before it gives the lock back. */
size_t tssx_ring_fault_moved(struct tssx_ring *ring, bool producer);

/*
 * The end of the stream and the counters as the data path's readiness
 * needs them, so that the layout of the control block stays in the core.
 * The peer may write any of them at any time: the answers are what it
 * says, never an access outside the ring.
 */

/* The producer did shutdown(SHUT_WR): no byte follows what the ring
 * holds.  Release pairs with the acquire in tssx_ring_write_shut(): the
 * producer's last bytes are published before the end of the stream. */
static inline void tssx_ring_shut_write(struct tssx_ring *ring)
{
	atomic_store_explicit(&ring->ctl->write_shut, 1, memory_order_release);
}

static inline bool tssx_ring_write_shut(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->ctl->write_shut, memory_order_acquire);
}

/* The producer's connection went to an image that cannot use it (exec):
 * the stream ends in an error, not EOF (preload/conn/handover.c). */
static inline void tssx_ring_abandon_write(struct tssx_ring *ring)
{
	atomic_store_explicit(&ring->ctl->write_shut, TSSX_WRITE_ABANDONED, memory_order_release);
}

static inline bool tssx_ring_write_abandoned(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->ctl->write_shut, memory_order_acquire) == TSSX_WRITE_ABANDONED;
}

/* The consumer did shutdown(SHUT_RD): the producer's writes fail (EPIPE).
 * Release/acquire: the flag is a plain event, nothing else rides on it. */
static inline void tssx_ring_shut_read(struct tssx_ring *ring)
{
	atomic_store_explicit(&ring->ctl->read_shut, 1, memory_order_release);
}

static inline bool tssx_ring_read_shut(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->ctl->read_shut, memory_order_acquire);
}

/*
 * Records of control data placed in the stream (preload/conn/ancillary.c).
 * The producer counts a record once it is on the socket and before it
 * writes the message's bytes: release pairs with the consumer's acquire
 * in tssx_ring_ancillary_ahead(), which, loaded after the tail, counts
 * every record for the bytes below that tail.
 */
static inline void tssx_ring_count_ancillary(struct tssx_ring *ring)
{
	atomic_store_explicit(&ring->ctl->ancillary_sent,
			      atomic_load_explicit(&ring->ctl->ancillary_sent, memory_order_relaxed) + 1,
			      memory_order_release);
}

/* Records counted and not yet reached by the consumer (0: none). */
static inline uint32_t tssx_ring_ancillary_ahead(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->ctl->ancillary_sent, memory_order_acquire) -
	       atomic_load_explicit(&ring->ctl->ancillary_taken, memory_order_relaxed);
}

/* The consumer reached a record (only the consumer lock's holder). */
static inline void tssx_ring_take_ancillary(struct tssx_ring *ring)
{
	atomic_store_explicit(&ring->ctl->ancillary_taken,
			      atomic_load_explicit(&ring->ctl->ancillary_taken, memory_order_relaxed) + 1,
			      memory_order_release);
}

/* Bytes ever written into the ring and ever read out of it: each moves
 * whenever its side moved the ring (edge-triggered readiness).  Acquire
 * pairs with the release that publishes the counter (tssx_ring_write,
 * tssx_ring_read). */
static inline uint64_t tssx_ring_produced(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->ctl->tail, memory_order_acquire);
}

static inline uint64_t tssx_ring_consumed(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->ctl->head, memory_order_acquire);
}

/* Whether the ring moved to its full data area, as this process learnt
 * or as the shared word says (which the peer may write: an answer only
 * for choices that a wrong one cannot harm). */
static inline bool tssx_ring_ever_grew(const struct tssx_ring *ring)
{
	return atomic_load_explicit(&ring->grown_seen, memory_order_relaxed) ||
	       atomic_load_explicit(&ring->ctl->grown, memory_order_relaxed);
}

/*
 * The owner of this end's doorbells (on its rx ring, conn/stream.c): the
 * thread id of the one sleeper that drains them, 0 when none.  A
 * compare-and-swap from *expected to owner (seq_cst), with the current
 * value in *expected when it fails.  The peer can write the word: a wrong
 * owner makes this end's sleepers guests, which re-check the ring every
 * TSSX_SHARED_WAIT_MS (docs/data-path.md, threat model).
 */
static inline bool tssx_ring_swap_owner(struct tssx_ring *ring, uint32_t *expected, uint32_t owner)
{
	return atomic_compare_exchange_strong(&ring->ctl->waiters, expected, owner);
}

/* The consumer's `waiter_cpu` word of this ring: on an end's rx ring its
 * own, which it publishes, on its tx ring the peer's (docs/wait.md, "A
 * peer on the same CPU").  The peer may write any value. */
static inline _Atomic uint32_t *tssx_ring_waiter_cpu(struct tssx_ring *ring)
{
	return &ring->ctl->waiter_cpu;
}

/*
 * Sleep/wake protocol.  A consumer about to sleep calls arm_reader() with
 * the bell that wakes it, which adds it to reader_waiting and returns the
 * re-checked readable count: if it is non-zero the consumer must not sleep
 * (the flag stays set, at worst one spare doorbell, unless the sleeper
 * holds it, below: it lowers it as it leaves).  A producer calls
 * take_reader_wakeup() after publishing: non-zero means "a reader was
 * asleep, the flag is now cleared, ring these bells" (tssx_bells_of()).
 * Symmetric for writers waiting for space.  Between each side's store and
 * its load, a fence on each side (ring.c has the reasoning).
 *
 * The bells: a byte on the real socket, which every sleeper in the kernel
 * (recv, poll, select, epoll) sees; a futex wake-up on the ring's bell
 * word (reader_bell, writer_bell), cheaper, for the data path's own
 * sleeps (preload/conn/bell.c); and a write to the sleeper's eventfd,
 * which its epoll sets watch beside the socket (docs/events.md, "The
 * eventfd bell").  Sleepers of every kind may wait on one ring at once:
 * each adds its bit.
 */
#define TSSX_BELL_SOCKET 1u
#define TSSX_BELL_FUTEX 2u
#define TSSX_BELL_EVENTFD 4u
#define TSSX_BELLS (TSSX_BELL_SOCKET | TSSX_BELL_FUTEX | TSSX_BELL_EVENTFD)

/* The bells a flag taken by a waker calls for: its bits; a value with
 * any other bit (the peer can write the flag) rings them all, which costs
 * a spurious wake-up at worst. */
static inline uint32_t tssx_bells_of(uint32_t flag)
{
	return flag & ~TSSX_BELLS ? TSSX_BELLS : flag;
}

ssize_t tssx_ring_arm_reader(struct tssx_ring *ring, uint32_t bell);
ssize_t tssx_ring_arm_writer(struct tssx_ring *ring, uint32_t bell);
/* The reader's (reader) or the writer's flag (with the bell of a sleeper
 * in the kernel: the event wrappers' socket or eventfd) and the fence
 * alone, for a caller that arms several rings before it re-checks them
 * all. */
void tssx_ring_raise(struct tssx_ring *ring, bool reader, uint32_t bell);

/*
 * Holds: lowering a flag its sleeper no longer needs.  A sleeper that
 * leaves (woken, or its re-check found the ring moved) used to leave its
 * bit raised, since another sleeper of the same bell may rely on it: the
 * peer then rang once more at its next message, for nothing (a doorbell
 * sent and drained, docs/benchmark.md).  Now a sleeper of an end that only
 * this process holds raises its bell as a counted hold and lowers it as
 * it leaves: the bit goes when the last counted holder of this process
 * leaves and no sticky one raised it.  The counts are in this process's
 * memory (struct tssx_ring_holds, below), so nothing the peer writes makes this
 * process lower a bit that a sleeper of its own relies on: a peer's value
 * in the flag only keeps its own bits (a spare wake-up), and the peer
 * could clear our bits itself anyway, as a peer that does not ring.  The
 * caller serialises hold and unhold of all rings with one lock of its
 * process, and calls them only for an end no other process holds (a
 * fork()ed sibling's sleepers are not counted here); conn/hold.c.
 */

/*
 * The holders of one flag's bells in this process, kept by the caller in
 * its own memory (beside, not in, struct tssx_ring, whose layout the fast
 * path relies on): per bell, the sleepers that raised it and will lower
 * it when they leave (tssx_ring_unhold()), or TSSX_RING_HOLD_STICKY once
 * a holder raised it that never lowers (an epoll set's cold entries rely
 * on their flags across calls).  Indexed by the bell's bit position;
 * zero when the end is set up.
 */
#define TSSX_RING_HOLD_STICKY UINT16_MAX
struct tssx_ring_holds {
	_Atomic uint16_t of[3];
};

/* Raises bell (one TSSX_BELL_* bit) in the reader's (reader) or writer's
 * flag of ring for a holder counted in holds (that flag's): counted (it
 * calls tssx_ring_unhold() when it leaves) or not (sticky: the bit is
 * never lowered by this process again).  Then the fence, as
 * tssx_ring_raise(). */
void tssx_ring_hold(struct tssx_ring *ring, struct tssx_ring_holds *holds, bool reader, uint32_t bell,
		    bool counted);
/* A counted holder of bell leaves: true when it was the last, no sticky
 * holder raised the bell, and the bit was lowered. */
bool tssx_ring_unhold(struct tssx_ring *ring, struct tssx_ring_holds *holds, bool reader, uint32_t bell);
/* Whether bell is raised sticky (it stays so: a look without the lock is
 * enough). */
bool tssx_ring_hold_sticky(struct tssx_ring_holds *holds, uint32_t bell);

/*
 * Every write and read that moved the ring asks whether the reader
 * (reader) or the writer sleeps, after it published its counter (a
 * release store) and under its side lock.  Whether one raised its flag:
 */
static inline bool tssx_ring_sleeper_raised(const struct tssx_ring *ring, bool reader)
{
	/* Pairs with the fence of tssx_ring_raise() (ring.c): the counter's
	 * store before the flag's load. */
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(reader ? &ring->ctl->reader_waiting : &ring->ctl->writer_waiting,
				    memory_order_relaxed) != 0;
}

/* The bells that a flag found raised calls for (tssx_bells_of()), 0 when
 * another waker took it first: exactly one waker wins it and rings. */
static inline uint32_t tssx_ring_take_bells(struct tssx_ring *ring, bool reader)
{
	return tssx_bells_of(atomic_exchange_explicit(reader ? &ring->ctl->reader_waiting : &ring->ctl->writer_waiting,
						      0, memory_order_relaxed));
}

/* Whether bell is still raised in the reader's (reader) or the writer's
 * flag: no waker took the flag since (it may be on its way to ring when
 * it did). */
static inline bool tssx_ring_bell_raised(const struct tssx_ring *ring, bool reader, uint32_t bell)
{
	return atomic_load_explicit(reader ? &ring->ctl->reader_waiting : &ring->ctl->writer_waiting,
				    memory_order_relaxed) & bell;
}

/* Both: the bells to ring, 0: none. */
static inline uint32_t tssx_ring_take_wakeup(struct tssx_ring *ring, bool reader)
{
	return tssx_ring_sleeper_raised(ring, reader) ? tssx_ring_take_bells(ring, reader) : 0;
}

static inline uint32_t tssx_ring_take_reader_wakeup(struct tssx_ring *ring)
{
	return tssx_ring_take_wakeup(ring, true);
}

static inline uint32_t tssx_ring_take_writer_wakeup(struct tssx_ring *ring)
{
	return tssx_ring_take_wakeup(ring, false);
}

/* The futex words that the futex bell of a reader (for data) and of a
 * writer (for room) rings. */
static inline _Atomic uint32_t *tssx_ring_reader_bell(struct tssx_ring *ring)
{
	return &ring->ctl->reader_bell;
}

static inline _Atomic uint32_t *tssx_ring_writer_bell(struct tssx_ring *ring)
{
	return &ring->ctl->writer_bell;
}

#endif
