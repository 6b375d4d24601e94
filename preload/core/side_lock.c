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

static __thread __attribute__((tls_model("initial-exec"))) uint64_t self_id;

/* fork() copies the forking thread's cached id: the child is another
 * process and must not pass for its parent's thread. */
static void forget_self_in_child(void)
{
	self_id = 0;
}

__attribute__((constructor)) static void side_lock_init(void)
{
	pthread_atfork(NULL, NULL, forget_self_in_child);
}

uint64_t tssx_side_lock_self(void)
{
	if (unlikely(!self_id))
		self_id = (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)gettid();
	return self_id;
}

struct tssx_side_locks *tssx_side_locks_create(void)
{
	/* Zero-filled: both locks free. */
	void *page = mmap(NULL, sizeof(struct tssx_side_locks), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return page == MAP_FAILED ? NULL : page;
}

void tssx_side_locks_destroy(struct tssx_side_locks *locks)
{
	if (locks)
		munmap(locks, sizeof(*locks));
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
