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
 */
#ifndef TSSX_SIDE_LOCK_H
#define TSSX_SIDE_LOCK_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "macros.h"

/* One pair per connection per process.  Each word on a line of its own:
 * a writer and a reader of one end do not share a cache line. */
struct tssx_side_locks {
	alignas(TSSX_CACHELINE) _Atomic uint64_t producer; /* the tx ring's writers */
	/* The processes whose connection uses the pair: a fork() child that
	 * inherits the connection joins, a process whose connection ended
	 * (or that exits or execs) leaves.  Only a pair nobody uses is taken
	 * for another connection, by whichever process first claims it.
	 * Written at fork, close, exit and exec only. */
	_Atomic uint32_t users;
	alignas(TSSX_CACHELINE) _Atomic uint64_t consumer; /* the rx ring's readers */
};

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

	return atomic_compare_exchange_strong(&locks->users, &none, 1);
}

/* The calling thread as a lock word: process id << 32 | thread id, cached
 * per thread (0 until first used; reset in a fork()ed child).  Initial-exec:
 * one load, no call (the library is preloaded, never dlopen()ed). */
extern __thread __attribute__((tls_model("initial-exec"))) uint64_t tssx_side_lock_self_id;
uint64_t tssx_side_lock_self_slow(void);

static inline uint64_t tssx_side_lock_self(void)
{
	uint64_t self = tssx_side_lock_self_id;

	return likely(self) ? self : tssx_side_lock_self_slow();
}

void tssx_side_lock_slow(_Atomic uint64_t *lock, uint64_t self);

/* Returns once no thread of this process holds the lock (a fork()ed
 * sibling may, for as long as its own call takes): what a holder of ours
 * did under it is then visible. */
void tssx_side_lock_wait_own(_Atomic uint64_t *lock);

/* Acquire pairs with the release in tssx_side_unlock(): the previous
 * holder's counter and data stores are visible to the next holder. */
static inline void tssx_side_lock(_Atomic uint64_t *lock)
{
	uint64_t self = tssx_side_lock_self(), free = 0;

	if (likely(atomic_compare_exchange_strong_explicit(lock, &free, self, memory_order_acquire,
							   memory_order_relaxed)))
		return;
	tssx_side_lock_slow(lock, self);
}

/* The lock when it is free and this thread's id known, with the acquire
 * of tssx_side_lock(); false otherwise, taking nothing: for a caller
 * that has a general path to fall back on, which keeps no call (and no
 * registers saved for it) on its fast one. */
static inline bool tssx_side_trylock(_Atomic uint64_t *lock)
{
	uint64_t self = tssx_side_lock_self_id, free = 0;

	return likely(self) && likely(atomic_compare_exchange_strong_explicit(lock, &free, self, memory_order_acquire,
									      memory_order_relaxed));
}

static inline void tssx_side_unlock(_Atomic uint64_t *lock)
{
	/* Release pairs with the acquire in tssx_side_lock(). */
	atomic_store_explicit(lock, 0, memory_order_release);
}

#endif
