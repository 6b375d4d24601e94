/*
 * Spinning before sleeping (docs/design.md §3).  A waiter that finds nothing to
 * do polls shared memory for the spin budget (TSSX_SPIN_NS) before it arms
 * its flags and sleeps: a peer that answers within the budget finds it
 * awake, and neither side pays a doorbell or a wake-up.  One budget and one
 * pause for every waiter of the library: the data path's blocking calls
 * and the event-loop wrappers.
 */
#ifndef TSSX_PRELOAD_SPIN_H
#define TSSX_PRELOAD_SPIN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "init.h"
#include "tssx/ring.h"

#define TSSX_NSEC_PER_SEC 1000000000L

/* The spin budget in nanoseconds; 0: never spin.  Valid once a connection
 * exists (tssx_init() has run). */
static inline uint64_t tssx_spin_budget_ns(void)
{
	return tssx_opts.spin_ns;
}

static inline uint64_t tssx_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * (uint64_t)TSSX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* One turn of a spin that lasts until end_ns (CLOCK_MONOTONIC): the CPU's
 * pause, then whether there is time left.  The clock is vDSO, no system
 * call. */
static inline bool tssx_spin_pause_until(uint64_t end_ns)
{
	tssx_cpu_relax();
	return tssx_now_ns() < end_ns;
}

#endif
