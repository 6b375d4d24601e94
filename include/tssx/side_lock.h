/*
 * Exclusion among the writers (or the readers) of one end of a connection:
 * the threads of this process and its forked children (docs/data-path.md,
 * "Several writers or readers").
 *
 * The lock words live in memory of this process, a sealed memfd (an
 * arena of pairs) mapped MAP_SHARED: fork() shares it with the children,
 * an exec'd image maps it again from the fd the hand-over passes on
 * (conn/handover.c), the peer never sees it, so no peer can hold a lock
 * of ours.  A word holds the
 * holder's process and thread id; a waiter that finds the holder dead (a
 * sibling killed in the middle of a copy) takes the lock over.  The ring's
 * counters are published only after a copy, so a holder that died left
 * the ring as it was before its call.
 *
 * Biased: a lock that one thread takes again and again (every
 * connection of an event loop, of a thread per connection) is handed to
 * that thread, while no other process uses the pair; the thread then
 * takes it with plain loads and stores, no locked instruction.  Any other
 * taker first takes the bias back: it clears it, has the kernel run a
 * memory barrier on every CPU that runs the owner's threads
 * (membarrier(2): PRIVATE_EXPEDITED for a thread of its own process,
 * GLOBAL for one of a forked sibling), and waits until the owner is out.
 * The barrier stands in for the fence the owner's path leaves out,
 * between its store of `inside` and its load of the bias: after it,
 * either the owner's store is seen or the owner sees the bias gone (the
 * asymmetric Dekker of liburcu's and folly's membarrier flavours).
 */
#ifndef TSSX_SIDE_LOCK_H
#define TSSX_SIDE_LOCK_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "macros.h"

/* A side lock.  `word` is taken by compare-and-swap; `bias`, when it
 * names the caller, lets it take the lock through `inside` instead,
 * which only that thread writes.  bias is written only by the holder of
 * word; streak_of and streak count the takes of word by one thread in a
 * row (under word), which earns that thread the bias, if it is the
 * lock's first (earned_by) or the thread that earned it first; every
 * bias taken back doubles the streak the next one needs (backoff, up to
 * TSSX_SIDE_LOCK_BACKOFF_MAX). */
struct tssx_side_lock {
	_Atomic uint64_t word;
	_Atomic uint64_t bias;
	_Atomic uint64_t inside;
	uint64_t streak_of;
	uint64_t earned_by;
	uint32_t streak;
	uint32_t backoff;
};

/* One pair per connection per process.  Each lock on a line of its own:
 * a writer and a reader of one end do not share a cache line. */
struct tssx_side_locks {
	alignas(TSSX_CACHELINE) struct tssx_side_lock producer; /* the tx ring's writers */
	/* The processes whose connection uses the pair: a fork() child that
	 * inherits the connection joins, a process whose connection ended
	 * (or that exits or execs) leaves.  Only a pair nobody uses is taken
	 * for another connection, by whichever process first claims it.
	 * Written at fork, close, exit and exec only. */
	_Atomic uint32_t users;
	alignas(TSSX_CACHELINE) struct tssx_side_lock consumer; /* the rx ring's readers */
};

/* Takes of word by one thread in a row that earn it a lock's first bias:
 * a lock that threads take in turn is never biased.  Taking a bias back
 * costs a system call and an interrupt of the owner's CPU (about 13 us
 * each, all told, for two threads writing one connection in bursts of
 * 100 in this project's VM: docs/benchmark.md, "Biased side locks"), so
 * each one doubles the streak the lock's next bias needs, up to 64 << 10
 * takes: threads that hand a connection to each other in bursts soon
 * take it by compare-and-swap only. */
#define TSSX_SIDE_LOCK_BIAS_STREAK 64u
#define TSSX_SIDE_LOCK_BACKOFF_MAX 10u

/* Pairs per arena: a process makes one more arena (one memfd, one
 * mapping) only every this many connections it has open at once. */
#define TSSX_SIDE_LOCKS_PER_ARENA 512u
#define TSSX_SIDE_LOCKS_ARENA_BYTES (TSSX_SIDE_LOCKS_PER_ARENA * sizeof(struct tssx_side_locks))
/* The arena memfd's name (/proc/PID/fd shows "/memfd:" NAME). */
#define TSSX_SIDE_LOCKS_MEMFD_NAME "tssx-locks"

/* A fresh, unlocked pair with one user, from this process's current
 * arena; NULL with errno set when a new arena is needed and cannot be
 * made (memfd, size, seals or mmap).  A pair is never unmapped: an ended
 * connection keeps it for reuse. */
struct tssx_side_locks *tssx_side_locks_create(void);

/* The memfd of the arena that holds locks (its number may change:
 * tssx_side_locks_renumber) and the pair's index in it, for a hand-over
 * at exec; -1 when the pair is not in an arena this process knows.  No
 * malloc, no lock: a vfork() child runs it. */
int tssx_side_locks_where(const struct tssx_side_locks *locks, unsigned *index);

/* The arena fd old_fd is now new_fd (the application dup2()ed onto it). */
void tssx_side_locks_renumber(int old_fd, int new_fd);

/* New image of an exec: pair `index` of the arena on fd, handed over by
 * the old image.  fd must be a memfd sealed against shrinking and growing
 * of exactly TSSX_SIDE_LOCKS_ARENA_BYTES (else -EPERM/-EINVAL; one fd is
 * mapped once, its later pairs come from that mapping), index below
 * TSSX_SIDE_LOCKS_PER_ARENA (else -ERANGE).  A word that names a thread of
 * this process is stale: no thread of the new image has taken a lock
 * yet, so it was a thread of the old image, which the exec killed (its
 * main thread's id is the new image's, which would wait for itself for
 * good); it is freed.  Returns 0 and *locks, or -errno: the fd is the
 * caller's, kept open on success. */
int tssx_side_locks_adopt(int fd, unsigned index, struct tssx_side_locks **locks);

/* A process more uses the pair (a fork() child that inherited it). */
static inline void tssx_side_locks_join(struct tssx_side_locks *locks)
{
	atomic_fetch_add(&locks->users, 1);
}

/* This process no longer uses the pair. */
static inline void tssx_side_locks_leave(struct tssx_side_locks *locks)
{
	atomic_fetch_sub(&locks->users, 1);
}

/* Takes a pair that no process uses for a new connection; false while
 * one does (a fork()ed sibling's connection). */
static inline bool tssx_side_locks_claim(struct tssx_side_locks *locks)
{
	uint32_t none = 0;

	if (!atomic_compare_exchange_strong(&locks->users, &none, 1))
		return false;
	/* A new connection: no thread has earned its locks yet.  Nobody
	 * else uses the pair, so nobody is inside either. */
	locks->producer.bias = locks->consumer.bias = 0;
	locks->producer.streak = locks->consumer.streak = 0;
	locks->producer.backoff = locks->consumer.backoff = 0;
	locks->producer.earned_by = locks->consumer.earned_by = 0;
	return true;
}

/* The calling thread as a lock word: process id << 32 | thread id, cached
 * per thread (TSSX_SIDE_LOCK_NO_ID until first used; reset in a fork()ed
 * child).  Initial-exec: one load, no call (the library is preloaded,
 * never dlopen()ed).  NO_ID names no thread (process 0) and no lock word
 * holds it, not even a bias of 0 (none): the owner's path needs no check
 * of it. */
#define TSSX_SIDE_LOCK_NO_ID 1u
extern __thread __attribute__((tls_model("initial-exec"))) uint64_t tssx_side_lock_self_id;
uint64_t tssx_side_lock_self_slow(void);

static inline uint64_t tssx_side_lock_self(void)
{
	uint64_t self = tssx_side_lock_self_id;

	return likely(self != TSSX_SIDE_LOCK_NO_ID) ? self : tssx_side_lock_self_slow();
}

/* Whether this process may hold a bias: registered for
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED, so that its own threads can take a
 * bias back (1), refused (-1), not asked yet (0).  A fork() child
 * inherits the registration, an exec'd image asks again. */
extern _Atomic int tssx_side_bias_allowed;

/* Asks for that registration once per process, at a connection's setup:
 * a registration while threads run waits for an RCU grace period (2 ms
 * on a busy 2-CPU machine), which no data call should wait for. */
void tssx_side_bias_prepare(void);

void tssx_side_lock_slow(struct tssx_side_lock *lock, uint64_t self);

/* Returns once no thread of this process holds the lock (a fork()ed
 * sibling may, for as long as its own call takes): what a holder of ours
 * did under it is then visible. */
void tssx_side_lock_wait_own(struct tssx_side_lock *lock);

/* The owner's take: `inside`, then the bias checked again; the word to
 * give back, or NULL.  No fence between the store and the load: a taker
 * that clears the bias runs membarrier() before it reads `inside`, which
 * orders the two on this CPU.  Inside already set: a signal handler
 * that interrupted this thread's own call; it waits as a second taker
 * would. */
static inline _Atomic uint64_t *tssx_side_take_biased(struct tssx_side_lock *lock, uint64_t self)
{
	if (unlikely(atomic_load_explicit(&lock->inside, memory_order_relaxed)))
		return NULL;
	atomic_store_explicit(&lock->inside, self, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	/* Acquire: the call's accesses stay after the check (a compiler
	 * barrier on x86-64). */
	if (likely(atomic_load_explicit(&lock->bias, memory_order_acquire) == self))
		return &lock->inside;
	atomic_store_explicit(&lock->inside, 0, memory_order_relaxed);
	return NULL;
}

/* After a take of word (held): one take more in this thread's streak;
 * false once the streak is long enough to earn the bias, which the slow
 * path hands out (tssx_side_lock_slow(): no call on the fast path). */
static inline bool tssx_side_count_take(struct tssx_side_lock *lock, uint64_t self)
{
	if (lock->streak_of != self) {
		lock->streak_of = self;
		lock->streak = 0;
	}
	return likely(++lock->streak < TSSX_SIDE_LOCK_BIAS_STREAK << lock->backoff);
}

/* The lock when it is free (or biased to the caller) and this thread's
 * id known, with the acquire of tssx_side_lock(): the word its holder
 * gives back with tssx_side_release() (`inside` or `word`), or NULL,
 * taking nothing: for a caller that has a general path to fall back on,
 * which keeps no call (and no registers saved for it) on its fast one.
 * A lock biased to another thread, or one this thread has just earned
 * the bias of, is for the general path too. */
static inline _Atomic uint64_t *tssx_side_trylock(struct tssx_side_lock *lock)
{
	uint64_t self = tssx_side_lock_self_id, free = 0;

	if (likely(atomic_load_explicit(&lock->bias, memory_order_relaxed) == self))
		return tssx_side_take_biased(lock, self);
	if (unlikely(self == TSSX_SIDE_LOCK_NO_ID) ||
	    unlikely(!atomic_compare_exchange_strong_explicit(&lock->word, &free, self, memory_order_acquire,
							      memory_order_relaxed)))
		return NULL;
	if (unlikely(atomic_load_explicit(&lock->bias, memory_order_relaxed)) ||
	    unlikely(!tssx_side_count_take(lock, self))) {
		atomic_store_explicit(&lock->word, 0, memory_order_release);
		return NULL;
	}
	return &lock->word;
}

/* Gives back what tssx_side_trylock() took.  Release pairs with the
 * acquire of the next taker: of word, or of `inside` by a taker that
 * took the bias back. */
static inline void tssx_side_release(_Atomic uint64_t *held)
{
	atomic_store_explicit(held, 0, memory_order_release);
}

/* Acquire pairs with the release in tssx_side_unlock(): the previous
 * holder's counter and data stores are visible to the next holder. */
static inline void tssx_side_lock(struct tssx_side_lock *lock)
{
	if (likely(tssx_side_trylock(lock)))
		return;
	tssx_side_lock_slow(lock, tssx_side_lock_self());
}

/* Gives back a lock taken by tssx_side_lock() or tssx_side_trylock(),
 * the caller not knowing which word: `inside` names this thread only if
 * it came in through the bias (a former owner may set it for a moment
 * while another holds word, until it sees the bias gone). */
static inline void tssx_side_unlock(struct tssx_side_lock *lock)
{
	if (atomic_load_explicit(&lock->inside, memory_order_relaxed) == tssx_side_lock_self_id)
		tssx_side_release(&lock->inside);
	else
		tssx_side_release(&lock->word);
}

#endif
