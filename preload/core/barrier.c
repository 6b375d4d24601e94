/*
 * The sleeper's side of the asymmetric barrier (barrier.h).
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tssx/barrier.h"
#include "tssx/log.h"

_Atomic uint32_t tssx_barrier_on;
/* tssx_barrier_register() asked the kernel already. */
static _Atomic bool tried;

static int membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

/* Once per process image: a fork()ed child inherits the registration
 * with its parent's memory map (the kernel copies the mm's membarrier
 * state, as a private registration shows: a child's
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED succeeds without one of its own; only
 * an exec clears it), so no fork handler registers again. */
bool tssx_barrier_register(void)
{
	int commands;

	/* A thread that comes while another registers answers no: its
	 * connection's wakers keep their fence. */
	if (atomic_exchange_explicit(&tried, true, memory_order_relaxed))
		return tssx_barrier_usable();
	commands = membarrier(MEMBARRIER_CMD_QUERY);
	if (commands < 0 || !(commands & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
	    !(commands & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) ||
	    membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0) {
		log_debug("membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) unavailable: wake-ups keep their fence");
		return false;
	}
	/* Relaxed: the system call returned before; a thread that sees 1
	 * and skips its fence runs on a CPU the kernel now interrupts. */
	atomic_store_explicit(&tssx_barrier_on, 1, memory_order_relaxed);
	return true;
}

bool tssx_barrier_issue(void)
{
	if (tssx_barrier_usable()) {
		int saved_errno = errno;
		int r = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);

		errno = saved_errno;
		if (likely(r == 0))
			return true;
		/* A seccomp filter installed since: the peers that learnt
		 * our promise skip their fence, our sleepers must not rely
		 * on a doorbell (tssx_ring_sleep_bounded()). */
		atomic_store_explicit(&tssx_barrier_on, 0, memory_order_relaxed);
		tssx_log(TSSX_LOG_WARN, "membarrier() failed after it was registered: sleeps re-check the rings every few ms");
	}
	return false;
}
