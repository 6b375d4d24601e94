/*
 * The sleep/wake handshake's barrier made asymmetric (docs/data-path.md,
 * "Sleeping and waking"): a process registered for membarrier(2)'s
 * MEMBARRIER_CMD_GLOBAL_EXPEDITED can be made to run a full barrier on
 * every CPU that runs one of its threads, by whichever process issues
 * that command.  A sleeper that issues it after raising its flag and
 * before its re-check pairs with any store and later load of a waker of
 * a registered process, fence or not: the waker's every write needs no
 * locked instruction, and each sleep pays one system call instead.
 */
#ifndef TSSX_BARRIER_H
#define TSSX_BARRIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "macros.h"

/* 1 while this process is registered and can issue the barrier, else 0
 * (not yet, or the kernel refused: no such command, a seccomp filter):
 * the fence then stays on both sides.  Set by tssx_barrier_register(),
 * cleared after a failure of the barrier or of fork()'s registration.
 * A word the wake-up check tests with one instruction (hidden: reached
 * without going through the GOT). */
extern _Atomic uint32_t tssx_barrier_on __attribute__((visibility("hidden")));

/* Registers this process, once (two system calls the first time):
 * whether it is registered. */
bool tssx_barrier_register(void);

/* Whether this process's sleepers issue the barrier, and its wakers may
 * go without a fence where the peer's sleepers do too. */
static inline bool tssx_barrier_usable(void)
{
	return atomic_load_explicit(&tssx_barrier_on, memory_order_relaxed);
}

/* A sleeper's barrier between raising its flag (and its fence) and
 * re-checking the ring, for a waker that goes without fence: whether it
 * was issued.  False when this process is not registered, or the system
 * call failed (a seccomp filter installed since): the process then stops
 * using it for good, and its sleepers do not rely on a doorbell from
 * such a waker (tssx_ring_sleep_bounded()). */
bool tssx_barrier_issue(void);

#endif
