/*
 * The side locks (side_lock.h).
 *
 * Fast path: one compare-and-swap to take, one release store to give back,
 * as cheap as the test-and-set lock the ring's control block used to hold
 * (where the peer could write it and hang us for good).  Slow path: spin
 * with the CPU's pause hint, yield so that a holder preempted on this CPU
 * can finish, and now and then ask the kernel whether the holder still
 * exists.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tssx/side_lock.h"

/* Spins before yielding the CPU to the holder. */
#define LOCK_SPINS 256
/* Yields between two checks whether the holder is alive. */
#define YIELDS_PER_CHECK 64
/* Lock pairs per shared mapping: a process maps one more only every this
 * many connections it has open at once. */
#define ARENA_SLOTS 512

__thread __attribute__((tls_model("initial-exec"))) uint64_t tssx_side_lock_self_id;

/* The current mapping that pairs are handed out from, and how many it
 * handed out.  Pairs are never given back: the connections that use them
 * are reused, not freed (preload/conn/connection.c). */
static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tssx_side_locks *arena;
static unsigned arena_used;

/* fork() copies the forking thread's cached id: the child is another
 * process and must not pass for its parent's thread.  It also shares the
 * parent's mapping: its new connections take pairs from a mapping of its
 * own, which the parent cannot hand out too. */
static void forget_parent_in_child(void)
{
	tssx_side_lock_self_id = 0;
	pthread_mutex_init(&arena_lock, NULL);
	arena = NULL;
}

__attribute__((constructor)) static void side_lock_init(void)
{
	pthread_atfork(NULL, NULL, forget_parent_in_child);
}

uint64_t tssx_side_lock_self_slow(void)
{
	tssx_side_lock_self_id = (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)gettid();
	return tssx_side_lock_self_id;
}

struct tssx_side_locks *tssx_side_locks_create(void)
{
	struct tssx_side_locks *locks = NULL;

	pthread_mutex_lock(&arena_lock);
	if (!arena || arena_used == ARENA_SLOTS) {
		/* Zero-filled: every lock free. */
		void *region = mmap(NULL, ARENA_SLOTS * sizeof(*locks), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (region != MAP_FAILED) {
			arena = region;
			arena_used = 0;
		}
	}
	if (arena && arena_used < ARENA_SLOTS) {
		locks = &arena[arena_used++];
		atomic_store(&locks->users, 1);
	}
	pthread_mutex_unlock(&arena_lock);
	return locks;
}

void tssx_side_lock_wait_own(_Atomic uint64_t *lock)
{
	uint32_t me = (uint32_t)(tssx_side_lock_self() >> 32);

	/* Acquire pairs with the release in tssx_side_unlock() of our
	 * holder, directly or through the release sequence that a sibling's
	 * take (a read-modify-write) continues. */
	while ((uint32_t)(atomic_load_explicit(lock, memory_order_acquire) >> 32) == me)
		sched_yield();
}

/* The holder's thread is gone: killed, or its process exited. */
static bool holder_dead(uint64_t holder)
{
	return syscall(SYS_tgkill, (pid_t)(holder >> 32), (pid_t)(uint32_t)holder, 0) < 0 && errno == ESRCH;
}

/* Acquire as in tssx_side_lock(); taking a dead holder's lock over is the
 * same exchange from its id instead of 0. */
static bool take(_Atomic uint64_t *lock, uint64_t holder, uint64_t self)
{
	return atomic_compare_exchange_strong_explicit(lock, &holder, self, memory_order_acquire,
						       memory_order_relaxed);
}

void tssx_side_lock_slow(_Atomic uint64_t *lock, uint64_t self)
{
	unsigned spins = 0, yields = 0;
	int saved_errno = errno;

	for (;;) {
		uint64_t holder = atomic_load_explicit(lock, memory_order_relaxed);

		if (holder == 0 && take(lock, 0, self))
			break;
		if (++spins < LOCK_SPINS) {
			tssx_cpu_relax();
			continue;
		}
		spins = 0;
		sched_yield();
		if (++yields % YIELDS_PER_CHECK == 0 && holder && holder_dead(holder) && take(lock, holder, self))
			break;
	}
	errno = saved_errno;
}
