/* Unit tests of the wait module (preload/conn/wait.c): deadlines, the spin
 * and the pure parts of its policy. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn/bell.h"
#include "conn/wait.h"
#include "init.h"

/* wait.c reads the spin budget from the options; these tests give it
 * explicitly (tssx_spin_setup). */
struct tssx_options tssx_opts;

static void test_timeouts(void **state)
{
	struct tssx_deadline deadline;
	struct timespec ts, left;

	tssx_deadline_start_ms(&deadline, 0);
	assert_true(tssx_deadline_passed(&deadline));
	assert_non_null(tssx_deadline_left(&deadline, &left));
	assert_true(left.tv_sec == 0 && left.tv_nsec == 0);

	tssx_deadline_start_ms(&deadline, -1);
	assert_false(tssx_deadline_passed(&deadline));
	assert_null(tssx_deadline_left(&deadline, &left));

	tssx_deadline_start_ms(&deadline, 60000);
	assert_false(tssx_deadline_passed(&deadline));
	tssx_deadline_left(&deadline, &left);
	assert_true(left.tv_sec <= 60 && left.tv_sec >= 50);

	assert_null(tssx_timespec_from_ms(-1, &ts));
	assert_ptr_equal(tssx_timespec_from_ms(1500, &ts), &ts);
	assert_true(ts.tv_sec == 1 && ts.tv_nsec == 500000000L);

	assert_int_equal(tssx_timespec_to_ms(NULL), -1);
	ts = (struct timespec){ 0, 1 };
	assert_int_equal(tssx_timespec_to_ms(&ts), 1); /* never shorter */
	ts = (struct timespec){ 2, 0 };
	assert_int_equal(tssx_timespec_to_ms(&ts), 2000);
	ts = (struct timespec){ 1L << 40, 0 };
	assert_int_equal(tssx_timespec_to_ms(&ts), INT32_MAX);

	assert_true(tssx_timespec_valid(NULL));
	ts = (struct timespec){ 0, 999999999L };
	assert_true(tssx_timespec_valid(&ts));
	ts = (struct timespec){ 0, 1000000000L };
	assert_false(tssx_timespec_valid(&ts));
	ts = (struct timespec){ -1, 0 };
	assert_false(tssx_timespec_valid(&ts));
}

#define LONG_NS (10 * 1000000000ull) /* never over within a test */

static uint64_t monotonic_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void test_spin_not_started(void **state)
{
	struct tssx_deadline forever, zero;
	struct tssx_spin spin;

	tssx_deadline_start_ms(&forever, -1);
	tssx_deadline_start_ms(&zero, 0);
	assert_false(tssx_spin_setup(&spin, monotonic_ns(), 0, 0, &forever)); /* TSSX_SPIN_NS=0 */
	assert_true(spin.over);
	assert_false(tssx_spin_pause(&spin));
	assert_false(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, 0, &zero)); /* a zero timeout */
	assert_true(spin.over);
}

static void test_spin_lasts_its_budget(void **state)
{
	struct tssx_deadline forever;
	struct tssx_spin spin;
	uint64_t start = monotonic_ns();

	tssx_deadline_start_ms(&forever, -1);
	assert_true(tssx_spin_setup(&spin, monotonic_ns(), 50000, 0, &forever));
	while (tssx_spin_pause(&spin))
		;
	assert_true(spin.over);
	assert_true(monotonic_ns() - start >= 50000);
	assert_false(tssx_spin_pause(&spin));
}

/* A handler of the program that runs in this thread (the trampoline's
 * count, conn/interrupt.h) ends a spin of the call that began before it,
 * and no spin starts for a call it already interrupted; a call that
 * begins after it is not interrupted. */
static void test_spin_ends_at_a_handler(void **state)
{
	struct tssx_deadline call, later;
	struct tssx_spin spin;

	tssx_deadline_start_ms(&call, -1);
	assert_false(tssx_deadline_interrupted(&call));
	assert_true(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, 0, &call));
	assert_true(tssx_spin_pause(&spin));
	tssx_interrupts.handled++;
	assert_true(tssx_deadline_interrupted(&call));
	assert_false(tssx_spin_pause(&spin));
	assert_true(spin.over);
	assert_false(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, 0, &call));
	tssx_deadline_start_ms(&later, -1);
	assert_false(tssx_deadline_interrupted(&later));
	assert_true(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, 0, &later));
	assert_true(tssx_spin_pause(&spin));
	tssx_interrupts.handled = 0; /* the other tests' deadlines began at 0 */
}

static void test_spin_never_past_the_deadline(void **state)
{
	struct tssx_deadline deadline;
	struct tssx_spin spin;

	tssx_deadline_start_ms(&deadline, 2);
	assert_true(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, 0, &deadline));
	assert_int_equal(spin.end_ns, deadline.at_ns);
	while (tssx_spin_pause(&spin))
		;
	assert_true(spin.over);
	assert_true(tssx_deadline_passed(&deadline));
}

static void test_spin_looks_at_the_kernel(void **state)
{
	struct tssx_deadline forever;
	struct tssx_spin spin;

	tssx_deadline_start_ms(&forever, -1);
	assert_true(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, 1000, &forever));
	/* The first look at once, then one per interval, the spin going on. */
	assert_false(tssx_spin_pause(&spin));
	assert_false(spin.over);
	while (tssx_spin_pause(&spin))
		;
	assert_false(spin.over);
	assert_true(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, LONG_NS, &forever));
	assert_false(tssx_spin_pause(&spin));
	assert_true(tssx_spin_pause(&spin));
}


static void test_spin_pays_only_with_a_cpu_free(void **state)
{
	for (int apart = 0; apart < 2; apart++) {
		assert_true(tssx_spin_pays(0, 2, 2, apart)); /* unknown: the budget bounds it */
		assert_true(tssx_spin_pays(1, 2, 2, apart));
		assert_true(tssx_spin_pays(2, 2, 2, apart)); /* the spinner and its running peer */
	}
	assert_false(tssx_spin_pays(3, 2, 2, false)); /* someone waits for a CPU */
	assert_false(tssx_spin_pays(2, 1, 1, false));
	/* The peer on another CPU: up to TSSX_SPIN_APART_SHARE tasks a CPU,
	 * the peer and the spinner included (a pair apart, a CPU-bound task
	 * beside each end). */
	assert_true(tssx_spin_pays(3, 2, 2, true));
	assert_true(tssx_spin_pays(TSSX_SPIN_APART_SHARE * 2, 2, 2, true));
	assert_false(tssx_spin_pays(TSSX_SPIN_APART_SHARE * 2 + 1, 2, 2, true));
	assert_true(tssx_spin_pays(2, 1, 1, true));
	/* A process that may run on one CPU of two: the share is the
	 * machine's (its peer runs on the other CPU), the count alone the
	 * process's own. */
	assert_false(tssx_spin_pays(2, 1, 2, false));
	assert_true(tssx_spin_pays(TSSX_SPIN_APART_SHARE * 2, 1, 2, true));
	assert_false(tssx_spin_pays(TSSX_SPIN_APART_SHARE * 2 + 1, 1, 2, true));
	assert_false(tssx_spin_pays(UINT_MAX, UINT_MAX / 2 + 1, UINT_MAX / 2 + 1, false));
	assert_true(tssx_spin_pays(UINT_MAX, UINT_MAX / 2 + 1, UINT_MAX / 2 + 1, true)); /* no overflow */
}

static void test_spin_slots_one_per_cpu(void **state)
{
	assert_int_equal(tssx_spin_slots_for(0), 1);
	assert_int_equal(tssx_spin_slots_for(1), 1);
	assert_int_equal(tssx_spin_slots_for(2), 2);
	assert_int_equal(tssx_spin_slots_for(8), 8);
	assert_int_equal(tssx_spin_slots_for(1000), TSSX_SPIN_SLOTS_MAX);
}

static void test_spin_slot_claim_and_release(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_spin_slot slots[3] = { 0 };
	struct tssx_spin spin;

	assert_ptr_equal(tssx_spin_slot_claim(slots, 2, 0, 100, 200), &slots[0].end);
	assert_ptr_equal(tssx_spin_slot_claim(slots, 2, 0, 100, 300), &slots[1].end);
	assert_null(tssx_spin_slot_claim(slots, 2, 1, 150, 400)); /* both held */
	/* A spinner that never gave its slot back (killed): free once its
	 * spin would have ended. */
	assert_ptr_equal(tssx_spin_slot_claim(slots, 2, 1, 201, 500), &slots[0].end);
	assert_int_equal(slots[0].end, 500);
	/* The thread's own slot first, then the others, never past n. */
	assert_ptr_equal(tssx_spin_slot_claim(slots, 3, 2, 600, 700), &slots[2].end);
	assert_ptr_equal(tssx_spin_slot_claim(slots, 3, 2, 600, 800), &slots[0].end);
	assert_ptr_equal(tssx_spin_slot_claim(slots, 3, 2, 600, 900), &slots[1].end);
	assert_null(tssx_spin_slot_claim(slots, 3, 1, 600, 1000));
	/* Each on a line of its own. */
	assert_int_equal((char *)&slots[1] - (char *)&slots[0], 64);
	slots[0].end = 500;

	/* Stopping gives the slot back, unless another spinner took it over. */
	assert_true(tssx_spin_setup(&spin, 100, 400, 0, &forever));
	spin.slot = &slots[0].end;
	tssx_spin_stop(&spin);
	assert_int_equal(slots[0].end, 0);
	assert_null(spin.slot);
	slots[1].end = 999;
	assert_true(tssx_spin_setup(&spin, 0, 300, 0, &forever));
	spin.slot = &slots[1].end;
	tssx_spin_stop(&spin);
	assert_int_equal(slots[1].end, 999);
}

static void test_spin_over_frees_its_slot(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_spin_slot slot = { 0 };
	struct tssx_spin spin;

	assert_true(tssx_spin_setup(&spin, monotonic_ns(), 10000, 0, &forever));
	spin.slot = tssx_spin_slot_claim(&slot, 1, 0, monotonic_ns(), spin.end_ns);
	assert_ptr_equal(spin.slot, &slot.end);
	while (tssx_spin_pause(&spin))
		;
	assert_true(spin.over);
	assert_int_equal(slot.end, 0);
}

static void test_loadavg_runnable(void **state)
{
	assert_int_equal(tssx_loadavg_runnable("0.73 0.75 0.35 5/106 16284\n"), 5);
	assert_int_equal(tssx_loadavg_runnable("12.00 8.79 5.07 12/207 26784"), 12);
	assert_int_equal(tssx_loadavg_runnable(""), 0);
	assert_int_equal(tssx_loadavg_runnable("0.1 0.2 0.3 x/5 1"), 0);
	assert_int_equal(tssx_loadavg_runnable("0.1 0.2 0.3 7"), 0);
	assert_int_equal(tssx_loadavg_runnable("0.1 0.2 0.3 7/"), 0);
	assert_int_equal(tssx_loadavg_runnable("0.1 0.2"), 0);
	assert_int_equal(tssx_loadavg_runnable("0.1 0.2 0.3 99999999999/5 1"), 0);
	assert_int_equal(tssx_loadavg_runnable("0.1  0.2 0.3   4294967295/5 1"), 0);
	assert_int_equal(tssx_loadavg_runnable("0.1 0.2 0.3 429496729/5 1"), 429496729);
}

static void test_deadline_left_ms(void **state)
{
	struct tssx_deadline deadline;

	tssx_deadline_start_ms(&deadline, -1);
	assert_int_equal(tssx_deadline_left_ms(&deadline), -1);
	tssx_deadline_start_ms(&deadline, 0);
	assert_int_equal(tssx_deadline_left_ms(&deadline), 0);
	tssx_deadline_start_ms(&deadline, 5000);
	assert_true(tssx_deadline_left_ms(&deadline) > 4000 && tssx_deadline_left_ms(&deadline) <= 5000);
	/* Beyond any process's life: forever, without overflow. */
	tssx_deadline_start(&deadline, &(struct timespec){ .tv_sec = INT64_MAX });
	assert_int_equal(deadline.at_ns, TSSX_FOREVER);
}

static void test_yield_stalls_rare_and_common(void **state)
{
	struct tssx_yield_history history = { 0 };
	int i;

	/* Short yields never stop a spin. */
	for (i = 0; i < 100000; i++)
		assert_false(tssx_yield_stalls_often(&history, false, false));
	/* One stall in 64 (busy pairs: a scheduler hiccup) neither. */
	for (i = 0; i < 6400; i++)
		assert_false(tssx_yield_stalls_often(&history, i % 64 == 0, false));
	/* A CPU-bound task's whole slice at every other yield: stop, and
	 * start the history anew. */
	for (i = 0; i < 1000 && !tssx_yield_stalls_often(&history, i % 2 == 0, false); i++)
		;
	assert_true(i < 1000);
	assert_int_equal(history.stall_share, 0);
	assert_int_equal(history.yields, 0);
	/* From an empty history, stalls back to back stop once the history
	 * holds its least number of yields, and not before. */
	for (i = 0; i < 100 && !tssx_yield_stalls_often(&history, true, false); i++)
		;
	assert_int_equal(i, TSSX_YIELD_HISTORY_MIN - 1);
	/* On probation (right after a pause), short yields go on, and the
	 * first stall stops them, even with a fresh history. */
	for (i = 0; i < 1000; i++)
		assert_false(tssx_yield_stalls_often(&history, false, true));
	history = (struct tssx_yield_history){ 0 };
	assert_true(tssx_yield_stalls_often(&history, true, true));
	assert_int_equal(history.yields, 0);
}

/*
 * A long yield stalls only when the turns of TSSX waiters on its CPU do
 * not account for it.  Before, every yield of 1 ms or more stalled: with
 * 16 pairs on 2 CPUs the yields behind the other pairs (and behind those
 * of them that slept) did, the processes' yields paused for good, and the
 * pairs slept at every wait at plain sockets' speed (docs/wait.md,
 * "Yields behind other ping-pongs").
 */
static void test_yield_stalled_by_turns(void **state)
{
	const uint64_t stall = TSSX_YIELD_STALL_NS;

	(void)state;
	/* Short: never, whatever the turns. */
	assert_false(tssx_yield_stalled(stall - 1, stall, 0, false));
	assert_false(tssx_yield_stalled(stall - 1, stall, 0, true));
	/* A CPU-bound task's slice: no waits started meanwhile, or a few
	 * (the peer's) in 4 ms. */
	assert_true(tssx_yield_stalled(stall, stall, 0, false));
	assert_true(tssx_yield_stalled(4 * stall, stall, 3, false));
	/* Ping-pongs took their turns: one wait per TSSX_YIELD_TURN_NS or
	 * more accounts for the time. */
	assert_false(tssx_yield_stalled(stall, stall, stall / TSSX_YIELD_TURN_NS, false));
	assert_true(tssx_yield_stalled(stall + 1, stall, stall / TSSX_YIELD_TURN_NS, false));
	assert_false(tssx_yield_stalled(10 * stall, stall, 700, false));
	/* Back on another CPU: the count says nothing, the time decides. */
	assert_true(tssx_yield_stalled(10 * stall, stall, 700, true));
	/* A count that a process of the user wrote nonsense into: no
	 * overflow, and only a choice between a yield and a sleep. */
	assert_false(tssx_yield_stalled(3600 * (uint64_t)TSSX_NSEC_PER_SEC, stall, UINT32_MAX, false));
	assert_true(tssx_yield_stalled(UINT64_MAX, stall, UINT32_MAX, false));
}

static void test_yield_stall_grows_with_the_tasks(void **state)
{
	/* Few tasks, or the count unknown: the least. */
	assert_int_equal(tssx_yield_stall_ns(0, 2), TSSX_YIELD_STALL_NS);
	assert_int_equal(tssx_yield_stall_ns(4, 2), TSSX_YIELD_STALL_NS);
	assert_int_equal(tssx_yield_stall_ns(5, 0), TSSX_YIELD_STALL_NS);
	/* 64 clients and a server on 2 CPUs: a turn through them all is no
	 * stall. */
	assert_int_equal(tssx_yield_stall_ns(65, 2), 65u * TSSX_YIELD_STALL_PER_TASK_NS / 2);
	assert_true(tssx_yield_stall_ns(UINT_MAX, 1) > TSSX_YIELD_STALL_NS);
}

static void test_yield_backoff_doubles_while_stalls_go_on(void **state)
{
	uint64_t backoff = tssx_yield_backoff(0, UINT64_MAX);

	assert_int_equal(backoff, TSSX_YIELD_BACKOFF_MIN_NS);
	/* Stalls again right after the pause: twice as long, up to the most. */
	for (int i = 0; i < 40; i++) {
		uint64_t next = tssx_yield_backoff(backoff, 1000);

		assert_true(next == backoff * 2 || next == TSSX_YIELD_BACKOFF_MAX_NS);
		backoff = next;
	}
	assert_int_equal(backoff, TSSX_YIELD_BACKOFF_MAX_NS);
	/* Long after the last pause: the least again. */
	assert_int_equal(tssx_yield_backoff(backoff, backoff + 1), TSSX_YIELD_BACKOFF_MIN_NS);
}

/* TSSX_SPIN_NS=0 never polls on a CPU of its own, but still yields (only
 * TSSX_YIELD_NS=0 as well sleeps at once); no time left: neither. */
static void test_spin_start_budgets(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER }, zero = { 0 };
	struct tssx_options saved = tssx_opts;
	struct tssx_spin spin;

	tssx_opts.spin_ns = 0;
	tssx_opts.yield_ns = 50000;
	assert_true(tssx_spin_start(&spin, 0, &forever));
	assert_int_equal(spin.kind, TSSX_SPIN_YIELDING);
	tssx_spin_stop(&spin);
	assert_true(spin.over);
	assert_false(tssx_spin_start(&spin, 0, &zero));
	tssx_opts.yield_ns = 0;
	assert_false(tssx_spin_start(&spin, 0, &forever));
	assert_true(spin.over);
	assert_int_equal(spin.kind, TSSX_SPIN_NONE);
	tssx_opts = saved;
}

/* The CPU word a waiter publishes: 1 + the CPU, 0 unknown; a peer's word
 * names this CPU only when it is exactly that (a hostile or stale word
 * only chooses between a yield and a sleep). */
static void test_peer_beside(void **state)
{
	(void)state;
	assert_int_equal(tssx_cpu_word(-1), 0);
	assert_int_equal(tssx_cpu_word(0), 1);
	assert_int_equal(tssx_cpu_word(5), 6);
	assert_true(tssx_peer_beside(1, 0));
	assert_true(tssx_peer_beside(6, 5));
	assert_false(tssx_peer_beside(0, 0)); /* unknown: a peer that publishes nothing */
	assert_false(tssx_peer_beside(5, 5));
	assert_false(tssx_peer_beside(6, -1)); /* this thread's CPU unknown */
	assert_false(tssx_peer_beside(0, -1));
	assert_false(tssx_peer_beside(UINT32_MAX, 0));
	/* Apart: a known word that names another CPU, nonsense included
	 * (it only chooses between a spin and a sleep). */
	assert_true(tssx_peer_apart(2, 0));
	assert_true(tssx_peer_apart(1, 5));
	assert_true(tssx_peer_apart(UINT32_MAX, 0));
	assert_false(tssx_peer_apart(1, 0));
	assert_false(tssx_peer_apart(0, 0)); /* unknown */
	assert_false(tssx_peer_apart(2, -1));
	/* A spin for a peer apart: only while no other task's wait started
	 * on this CPU since the thread's last one. */
	assert_true(tssx_spin_apart(2, 0, 0));
	assert_false(tssx_spin_apart(2, 0, 1));
	assert_false(tssx_spin_apart(2, 0, UINT32_MAX));
	assert_false(tssx_spin_apart(1, 0, 0));
	assert_false(tssx_spin_apart(0, 0, 0));
	/* Sleep beside the peer only when the thread's last long yield saw
	 * no other ping-pong take a turn on the CPU. */
	assert_true(tssx_sleep_beside(1, 0, 0));
	assert_true(tssx_sleep_beside(1, 0, TSSX_YIELD_COMPANY_MIN - 1));
	assert_false(tssx_sleep_beside(1, 0, TSSX_YIELD_COMPANY_MIN));
	assert_false(tssx_sleep_beside(1, 0, UINT32_MAX));
	assert_false(tssx_sleep_beside(2, 0, 0));
	assert_false(tssx_sleep_beside(1, -1, 0));
}

/* Pins the calling thread to the CPU it runs on, which it returns (the
 * caller gives its old affinity back). */
static int pin_to_this_cpu(void)
{
	int cpu = sched_getcpu();
	cpu_set_t one;

	assert_true(cpu >= 0);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	return sched_getcpu();
}

/*
 * A wait of the data path publishes its CPU and, refused a spin on a CPU
 * (TSSX_SPIN_NS=0 here), yields unless the peer's word names its own CPU:
 * then it sleeps at once.  Before, it yielded whatever the peer's CPU:
 * with the two ends on one CPU beside other work, every yield let that
 * work run first (docs/wait.md, "A peer on the same CPU").  The thread is
 * pinned to its CPU meanwhile, so that the word it publishes stays true.
 */
static void test_no_yield_to_a_peer_on_this_cpu(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_options saved = tssx_opts;
	_Atomic uint32_t mine = 0, peers = 0;
	struct tssx_spin spin;
	cpu_set_t old;
	int cpu, tries;

	(void)state;
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	cpu = pin_to_this_cpu();
	tssx_opts.spin_ns = 0;
	tssx_opts.yield_ns = 50000;

	/* The peer's CPU unknown, another one, or nonsense: the wait yields. */
	for (uint32_t word = 0; word < 4; word++) {
		uint32_t other = word == 0 ? 0 : word == 1 ? tssx_cpu_word(cpu + 1) : word == 2 ? UINT32_MAX : 1u << 31;

		atomic_store(&peers, other);
		assert_true(tssx_spin_start_peer(&spin, 0, &forever, &mine, &peers));
		assert_int_equal(spin.kind, TSSX_SPIN_YIELDING);
		assert_int_equal(atomic_load(&mine), tssx_cpu_word(cpu));
		tssx_spin_stop(&spin); /* found the answer */
	}
	/* The peer waits on this CPU: no yield, the waiter sleeps.  Unless
	 * other tasks' waits started on the CPU since this thread's last
	 * one (tssx_sleep_beside()): the count is the machine's, and another
	 * TSSX process of the user that preempted this test there would
	 * count, so the test allows it twice. */
	atomic_store(&peers, tssx_cpu_word(cpu));
	for (tries = 0; tries < 3; tries++) {
		atomic_store(&mine, 0);
		if (!tssx_spin_start_peer(&spin, 0, &forever, &mine, &peers))
			break;
		tssx_spin_stop(&spin);
	}
	assert_true(tries < 3);
	assert_true(spin.over);
	assert_int_equal(spin.kind, TSSX_SPIN_NONE);
	assert_int_equal(atomic_load(&mine), tssx_cpu_word(cpu));
	/* The other waits know no peer's CPU: they yield. */
	assert_true(tssx_spin_start(&spin, 0, &forever));
	assert_int_equal(spin.kind, TSSX_SPIN_YIELDING);
	tssx_spin_stop(&spin);

	tssx_opts = saved;
	assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
}

static atomic_bool hogs_stop;
/* The CPUs the test process could run on at its start. */
static cpu_set_t start_cpus;

/* A CPU-bound thread on the CPU arg, until hogs_stop.  No cmocka check
 * here, outside the test's thread: a hog left unpinned only makes the
 * test's look at the count less likely to fall in range. */
static void *hog(void *arg)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET((int)(intptr_t)arg, &one);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	while (!atomic_load_explicit(&hogs_stop, memory_order_relaxed))
		;
	return NULL;
}

/* The machine's runnable tasks now, as the policy reads them; 0 unknown. */
static unsigned runnable_tasks(void)
{
	char line[128];
	int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, line, sizeof(line) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	line[n] = '\0';
	return tssx_loadavg_runnable(line);
}

/*
 * A wait of the data path whose peer last waited on another CPU spins on
 * its own though more tasks are runnable than CPUs, up to
 * TSSX_SPIN_APART_SHARE a CPU: here a CPU-bound thread per CPU beside the
 * test's.  Such a spin never yields (a yield would hand the CPU to that
 * work).  Before, such a wait was refused its spin, and a pair on two
 * CPUs beside a CPU-bound process each slept at every wait (docs/wait.md,
 * "A peer on another CPU beside other work").  A peer on this CPU is
 * still refused.  The count is the machine's (other tests may run, and
 * hold the spin slots): the test tries until a wait spins, and skips when
 * it saw few enough tasks to expect it fewer than three times.
 */
static void test_spin_for_a_peer_apart_beside_work(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_options saved = tssx_opts;
	_Atomic uint32_t mine = 0, peers = 0;
	pthread_t hogs[64];
	unsigned nhogs, tries, in_range = 0;
	enum tssx_spin_kind kind;
	uint64_t yields_at = 0;
	struct tssx_spin spin;
	cpu_set_t old;
	int cpu;

	(void)state;
	assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
	atomic_store(&hogs_stop, false);
	nhogs = 0;
	for (int c = 0; c < CPU_SETSIZE && nhogs < sizeof(hogs) / sizeof(hogs[0]); c++)
		if (CPU_ISSET(c, &start_cpus))
			assert_int_equal(pthread_create(&hogs[nhogs++], NULL, hog, (void *)(intptr_t)c), 0);
	cpu = pin_to_this_cpu();
	tssx_opts.spin_ns = 50000;
	tssx_opts.yield_ns = 50000;
	/* Until every count the policy reads has the hogs in it. */
	usleep(10 * TSSX_LOAD_REFRESH_NS / 1000);

	/* The peer on this CPU: no spin, the CPUs all taken. */
	atomic_store(&peers, tssx_cpu_word(cpu));
	tssx_spin_start_peer(&spin, 0, &forever, &mine, &peers);
	assert_int_not_equal(spin.kind, TSSX_SPIN_CPU);
	tssx_spin_stop(&spin);

	atomic_store(&peers, tssx_cpu_word(cpu + 1));
	for (tries = 0; tries < 200; tries++) {
		unsigned runnable = runnable_tasks();

		in_range += runnable > nhogs && runnable <= TSSX_SPIN_APART_SHARE * nhogs;
		tssx_spin_start_peer(&spin, 0, &forever, &mine, &peers);
		kind = spin.kind;
		yields_at = spin.yield_ns;
		tssx_spin_stop(&spin);
		if (kind == TSSX_SPIN_CPU)
			break;
		usleep(2000); /* the next count (TSSX_LOAD_REFRESH_NS) */
	}

	atomic_store(&hogs_stop, true);
	for (unsigned i = 0; i < nhogs; i++)
		assert_int_equal(pthread_join(hogs[i], NULL), 0);
	tssx_opts = saved;
	assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
	/* Too few looks at few enough tasks to tell (few enough, the
	 * others hold at most one of the slots). */
	if (tries == 200 && in_range < 3)
		skip();
	assert_true(tries < 200);
	/* It never yields: the CPU would go to the CPU-bound work. */
	assert_int_equal(yields_at, UINT64_MAX);
}

/* A second spin, in a thread of its own, while the test's holds a slot. */
struct second_spin {
	_Atomic uint32_t mine, peers;
	enum tssx_spin_kind kind;
};

static void *start_second_spin(void *arg)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct second_spin *second = arg;
	struct tssx_spin spin;

	tssx_spin_start_peer(&spin, 0, &forever, &second->mine, &second->peers);
	second->kind = spin.kind;
	tssx_spin_stop(&spin);
	return NULL;
}

/*
 * Two spins at once each hold a slot in a process that may run on one CPU
 * of several: the slots are the machine's, one per CPU, shared by every
 * process of the user.  Before, such a process counted one slot, so that
 * of a client and its server started on a CPU each (taskset) only one
 * spun at a time.  Other tests may hold slots: it tries until both spin.
 */
static void test_spin_slots_are_the_machines(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_options saved = tssx_opts;
	_Atomic uint32_t mine = 0, peers = 0;
	struct second_spin second;
	struct tssx_spin first;
	unsigned tries;

	(void)state;
	if (CPU_COUNT(&start_cpus) < 2)
		skip();
	tssx_opts.spin_ns = 1000000000;
	/* Peers apart: rule 1 counts this process's one CPU. */
	atomic_store(&peers, tssx_cpu_word(sched_getcpu() + 1));
	for (tries = 0; tries < 200; tries++) {
		second = (struct second_spin){ .peers = atomic_load(&peers), .kind = TSSX_SPIN_NONE };
		tssx_spin_start_peer(&first, 0, &forever, &mine, &peers);
		if (first.kind == TSSX_SPIN_CPU) {
			pthread_t thread;

			assert_int_equal(pthread_create(&thread, NULL, start_second_spin, &second), 0);
			assert_int_equal(pthread_join(thread, NULL), 0);
		}
		tssx_spin_stop(&first);
		if (second.kind == TSSX_SPIN_CPU)
			break;
		usleep(2000);
	}
	tssx_opts = saved;
	assert_true(tries < 200);
}

/* A yielding spin ends at its TSSX_YIELD_TURNS_MAX-th yield however long
 * its budget (or earlier, at a yield that stalled), and counts as failed:
 * a thread whose spins end so sleeps at once for its next waits. */
static void test_yielding_spin_turns_max(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_options saved = tssx_opts;
	struct tssx_spin spin;
	unsigned spins = 0;

	(void)state;
	tssx_opts.spin_ns = 0;
	tssx_opts.yield_ns = LONG_NS;
	/* Until the thread sleeps at once: skipped, or (on a loaded machine)
	 * refused because its yields stalled. */
	while (tssx_spin_start(&spin, 0, &forever)) {
		unsigned turns = 1;

		assert_int_equal(spin.kind, TSSX_SPIN_YIELDING);
		while (tssx_spin_pause(&spin)) {
			assert_true(turns < TSSX_YIELD_TURNS_MAX);
			turns++;
		}
		assert_true(spin.over);
		tssx_spin_stop(&spin);
		assert_true(++spins <= TSSX_SPIN_HISTORY_OVER);
	}
	assert_true(spins > 0);
	assert_true(spin.over);
	tssx_opts = saved;
}

/* A spin that ended: found (true) or over, on a CPU of its own or yielding. */
static void spin_ended(enum tssx_spin_kind kind, bool found)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_spin spin;

	assert_true(tssx_spin_setup(&spin, monotonic_ns(), LONG_NS, 0, &forever));
	spin.kind = kind;
	spin.over = !found;
	tssx_spin_stop(&spin);
}

/*
 * A thread whose spins failed (its peer slept, or ran on this CPU) sleeps
 * at once for its next waits, up to TSSX_SPIN_SKIP_MAX of them.  One of
 * those waits whose answer came before the spin it skipped would have
 * ended counts as a spin that paid: the next wait spins again.  One that
 * found nothing (a timeout, a signal) or whose answer came later leaves
 * the skip as it was.  Before the fix every wait of the skip slept, its
 * answers however quick, and the thread spun again only at its next
 * probe: in a ping-pong whose other end skipped too, that probe waited
 * for the peer's wake-up and failed, and both ends slept on.
 */
static void test_skip_ends_when_answered_within_a_spin(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_options saved = tssx_opts;
	struct tssx_spin spin;
	uint64_t start;

	(void)state;
	tssx_opts.spin_ns = LONG_NS;
	tssx_opts.yield_ns = LONG_NS;
	for (unsigned i = 0; i < 4 * TSSX_SPIN_HISTORY_OVER * 2; i++)
		spin_ended(TSSX_SPIN_CPU, false);
	assert_false(tssx_spin_start(&spin, 0, &forever)); /* skipped */
	tssx_spin_skipped_ended(false);			   /* slept, found nothing */
	assert_false(tssx_spin_start(&spin, 0, &forever));
	tssx_opts.spin_ns = 1000;
	start = monotonic_ns();
	assert_false(tssx_spin_start(&spin, 0, &forever));
	while (monotonic_ns() < start + 2 * tssx_opts.spin_ns)
		;
	tssx_spin_skipped_ended(true); /* answered, after the spin would have ended */
	tssx_opts.spin_ns = LONG_NS;
	assert_false(tssx_spin_start(&spin, 0, &forever));
	tssx_spin_skipped_ended(true); /* answered within the spin */
	/* The next wait spins: on a CPU, or yielding on a busy machine. */
	assert_true(tssx_spin_start(&spin, 0, &forever));
	assert_int_not_equal(spin.kind, TSSX_SPIN_NONE);
	tssx_spin_stop(&spin);
	/* After any other wait, no effect: a spin that fails again skips. */
	tssx_spin_skipped_ended(true);
	spin_ended(TSSX_SPIN_CPU, false);
	assert_false(tssx_spin_start(&spin, 0, &forever));
	/* The history as the next tests expect it: no skip, spins that pay. */
	tssx_spin_skipped_ended(true);
	for (unsigned i = 0; i < 4 * TSSX_SPIN_HISTORY_OVER * 2; i++)
		spin_ended(TSSX_SPIN_CPU, true);
	tssx_opts = saved;
}

/* The quick spin polls only in a thread whose last spin found the answer
 * on a CPU of its own, ends when the tail moved or the producer shut its
 * end, and one that found nothing sends the next waits to the policy. */
static void test_spin_quick(void **state)
{
	struct tssx_options saved = tssx_opts;
	struct tssx_ring_ctl ctl = { 0 };
	struct tssx_ring ring = { .ctl = &ctl };

	tssx_opts.spin_ns = 20000;
	atomic_store(&ctl.tail, 64);
	assert_false(tssx_spin_quick(&ring)); /* no spin yet */
	spin_ended(TSSX_SPIN_YIELDING, true);
	assert_false(tssx_spin_quick(&ring));
	spin_ended(TSSX_SPIN_CPU, false);
	assert_false(tssx_spin_quick(&ring));
	spin_ended(TSSX_SPIN_CPU, true);
	assert_true(tssx_spin_quick(&ring)); /* the tail moved */
	assert_true(tssx_spin_quick(&ring)); /* still allowed */
	atomic_store(&ring.head_seen, 64);
	assert_false(tssx_spin_quick(&ring)); /* nothing came within the budget */
	atomic_store(&ctl.write_shut, TSSX_WRITE_SHUT);
	assert_false(tssx_spin_quick(&ring)); /* the last one failed: the policy's turn */
	spin_ended(TSSX_SPIN_CPU, true);
	assert_true(tssx_spin_quick(&ring)); /* the producer shut its end */
	tssx_opts.spin_ns = 0;
	assert_false(tssx_spin_quick(&ring)); /* TSSX_SPIN_NS=0: never */
	tssx_opts = saved;
}

/* A spin on a CPU yields once it found nothing for TSSX_SPIN_YIELD_AFTER_NS.
 * A yield that let another task run (it took TSSX_SPIN_HANDED_NS or more:
 * the peer, queued on this CPU) leaves no quick spin to the thread, whose
 * answers come from its own CPU, and its next spins yield at their first
 * turn, until a yield returns at once (the two ends run apart again). */
static void test_spin_yields_to_a_peer_on_its_cpu(void **state)
{
	static const struct tssx_deadline forever = { .at_ns = TSSX_FOREVER };
	struct tssx_options saved = tssx_opts;
	struct tssx_ring_ctl ctl = { 0 };
	struct tssx_ring ring = { .ctl = &ctl };
	struct tssx_spin spin;
	uint64_t t = 1000000;

	(void)state;
	tssx_opts.spin_ns = 20000;
	atomic_store(&ctl.tail, 64); /* the quick spin finds bytes when it runs */
	assert_true(tssx_spin_setup(&spin, t, LONG_NS, 0, &forever));
	assert_int_equal(spin.yield_ns, t + TSSX_SPIN_YIELD_AFTER_NS);
	spin.kind = TSSX_SPIN_CPU;
	/* Nobody else wanted the CPU: the next yield as long after. */
	assert_false(tssx_spin_cpu_yielded(&spin, t, t + TSSX_SPIN_HANDED_NS - 1));
	assert_false(spin.handed);
	assert_int_equal(spin.yield_ns, t + TSSX_SPIN_HANDED_NS - 1 + TSSX_SPIN_YIELD_AFTER_NS);
	/* The peer ran meanwhile, and answered. */
	assert_true(tssx_spin_cpu_yielded(&spin, t, t + TSSX_SPIN_HANDED_NS));
	assert_true(spin.handed);
	tssx_spin_stop(&spin);
	assert_false(tssx_spin_quick(&ring));
	/* The next spin on a CPU yields at its first turn; its yield returns
	 * at once: the thread spins quickly again after it found the answer. */
	assert_true(tssx_spin_setup(&spin, t, LONG_NS, 0, &forever));
	assert_int_equal(spin.yield_ns, t);
	spin.kind = TSSX_SPIN_CPU;
	assert_false(tssx_spin_cpu_yielded(&spin, t, t + 1));
	tssx_spin_stop(&spin);
	assert_true(tssx_spin_quick(&ring));
	assert_true(tssx_spin_setup(&spin, t, LONG_NS, 0, &forever));
	assert_int_equal(spin.yield_ns, t + TSSX_SPIN_YIELD_AFTER_NS);
	tssx_opts = saved;
}

/* The futex bell's watcher tells a stale event from a current one by the
 * tag its registration carries beside the connection. */
static void test_bell_pack(void **state)
{
	static char conn;
	uint16_t tag;

	(void)state;
	assert_ptr_equal(tssx_bell_unpack(tssx_bell_pack(&conn, 7), &tag), &conn);
	assert_int_equal(tag, 7);
	assert_ptr_equal(tssx_bell_unpack(tssx_bell_pack(&conn, UINT16_MAX), &tag), &conn);
	assert_int_equal(tag, UINT16_MAX);
	assert_true(tssx_bell_pack(&conn, 1) != tssx_bell_pack(&conn, 2));
	/* Above the user half: nothing to pack, the sleeper takes the socket. */
	assert_int_equal(tssx_bell_pack((void *)(uintptr_t)(1ull << 48), 1), 0);
}

/*
 * --started-pinned: the process takes one CPU before the library counts
 * the CPUs it may use, as one started by taskset, in a cpuset or with
 * systemd's CPUAffinity= does: a wait for a peer on another CPU beside a
 * CPU-bound thread per CPU spins all the same (tssx_spin_pays() shares
 * the machine's CPUs, not the process's one), and the process has a
 * slot per CPU of the machine.  Before, such a process never spun beside
 * the CPU-bound threads, and held one slot at most.
 */
static int run_started_pinned(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spin_for_a_peer_apart_beside_work),
		cmocka_unit_test(test_spin_slots_are_the_machines),
	};
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return 1;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) < 0)
		return 1;
	return cmocka_run_group_tests_name("started pinned", tests, NULL, NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_deadline_left_ms),
		cmocka_unit_test(test_spin_not_started),
		cmocka_unit_test(test_spin_lasts_its_budget),
		cmocka_unit_test(test_spin_never_past_the_deadline),
		cmocka_unit_test(test_spin_ends_at_a_handler),
		cmocka_unit_test(test_spin_looks_at_the_kernel),
		cmocka_unit_test(test_spin_pays_only_with_a_cpu_free),
		cmocka_unit_test(test_spin_slots_one_per_cpu),
		cmocka_unit_test(test_spin_slot_claim_and_release),
		cmocka_unit_test(test_spin_over_frees_its_slot),
		cmocka_unit_test(test_loadavg_runnable),
		cmocka_unit_test(test_yield_stalls_rare_and_common),
		cmocka_unit_test(test_yield_stall_grows_with_the_tasks),
		cmocka_unit_test(test_yield_backoff_doubles_while_stalls_go_on),
		cmocka_unit_test(test_spin_start_budgets),
		cmocka_unit_test(test_peer_beside),
		cmocka_unit_test(test_no_yield_to_a_peer_on_this_cpu),
		cmocka_unit_test(test_spin_for_a_peer_apart_beside_work),
		/* Before any yield of the process: none has stalled, so a
		 * spin that rule 1 refuses yields instead of sleeping. */
		cmocka_unit_test(test_skip_ends_when_answered_within_a_spin),
		cmocka_unit_test(test_yielding_spin_turns_max),
		cmocka_unit_test(test_yield_stalled_by_turns),
		cmocka_unit_test(test_spin_quick),
		cmocka_unit_test(test_spin_yields_to_a_peer_on_its_cpu),
		cmocka_unit_test(test_bell_pack),
	};

	if (sched_getaffinity(0, sizeof(start_cpus), &start_cpus) < 0)
		return 1;
	if (argc > 1 && !strcmp(argv[1], "--started-pinned"))
		return run_started_pinned();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
