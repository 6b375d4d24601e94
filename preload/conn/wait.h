/*
 * Waiting, for every waiter of the library (docs/wait.md): the blocking
 * reads and writes of the data path, the server's wait for a hello, and
 * the poll/select/epoll wrappers.  One deadline type, one spin, one policy
 * that decides whether a spin may start.
 *
 * A waiter that finds nothing to do may poll shared memory for the spin
 * budget (TSSX_SPIN_NS, the upper bound; 0: never) before it arms its flags
 * and sleeps: a peer that answers within the budget finds it awake, and
 * neither side pays a doorbell or a wake-up.  That pays only while the peer
 * has a CPU of its own to answer on.  So a spin starts only when
 *   - no more tasks are runnable on the machine than the process has CPUs
 *     (the 4th field of /proc/loadavg, read at most every
 *     TSSX_LOAD_REFRESH_NS, counts the spinner itself and a running peer),
 *   - and one of the machine's spin slots is free: a page shared by the
 *     user's TSSX processes holds one slot per CPU, each the end time of
 *     the spin holding it, so that spinners never outnumber the CPUs (the
 *     load count alone is up to TSSX_LOAD_REFRESH_NS old) and a spinner
 *     killed mid-spin frees its slot when its budget ends.
 * Otherwise the waiter gives its CPU away at every turn (sched_yield) for
 * the yield budget (TSSX_YIELD_NS): a peer that waits for a CPU gets this
 * one and answers before the waiter sleeps, again with no doorbell and no
 * wake-up.  Where yields stall behind tasks that run long slices (a
 * CPU-bound job takes the CPU to the next tick; a sleeper woken by a
 * doorbell would preempt it) such spins pause for the process, longer
 * each time the stalls go on.
 * A thread whose recent spins of either kind mostly ended with nothing to
 * do (its peers answer later than a spin lasts) sleeps at once for its
 * next waits, more of them each time, and tries again now and then, or
 * as soon as one of those waits was answered within a spin's budget.
 */
#ifndef TSSX_PRELOAD_WAIT_H
#define TSSX_PRELOAD_WAIT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conn/interrupt.h"
#include "tssx/ring.h"

#define TSSX_NSEC_PER_SEC 1000000000L
/* A deadline that never passes. */
#define TSSX_FOREVER UINT64_MAX
/* How old the runnable count of /proc/loadavg may be. */
#define TSSX_LOAD_REFRESH_NS 1000000u
/* Most spin slots of a machine: one cache line each, and the runnable
 * count's, on one page. */
#define TSSX_SPIN_SLOTS_MAX 63u

static inline uint64_t tssx_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * (uint64_t)TSSX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* When a wait ends, on CLOCK_MONOTONIC (TSSX_FOREVER: never), and the
 * count of handled signals when its call started: a handler that runs
 * later ends it too (conn/interrupt.h). */
struct tssx_deadline {
	uint64_t at_ns;
	uint32_t interrupts;
};

/* A call's deadline, from now; NULL: forever. */
void tssx_deadline_start(struct tssx_deadline *deadline, const struct timespec *timeout);
/* Its time only, from now, for a call that learns its timeout late: the
 * count taken when the call started stays. */
void tssx_deadline_set(struct tssx_deadline *deadline, const struct timespec *timeout);
/* Whether a handler of the program ran since the call started. */
static inline bool tssx_deadline_interrupted(const struct tssx_deadline *deadline)
{
	return tssx_interrupted_since(deadline->interrupts);
}
/* Negative: forever. */
void tssx_deadline_start_ms(struct tssx_deadline *deadline, int timeout_ms);
bool tssx_deadline_passed(const struct tssx_deadline *deadline);
/* The time left into *left (zero once passed), or NULL for forever. */
struct timespec *tssx_deadline_left(const struct tssx_deadline *deadline, struct timespec *left);
/* The time left for poll(): -1 forever, 0 once passed, else rounded up to
 * whole milliseconds (never shorter), saturated at INT_MAX. */
int tssx_deadline_left_ms(const struct tssx_deadline *deadline);

/* Rounded up to whole milliseconds, -1 for NULL, saturated at INT_MAX. */
int tssx_timespec_to_ms(const struct timespec *timeout);
/* A poll() timeout as a timespec in *ts, or NULL (forever) when negative. */
const struct timespec *tssx_timespec_from_ms(int timeout_ms, struct timespec *ts);
/* What ppoll(), pselect() and epoll_pwait2() accept; NULL is forever. */
bool tssx_timespec_valid(const struct timespec *timeout);

/*
 * A spin: it lasts the budget and never past the deadline; when the waiter
 * also has fds only the kernel can report, a zero-timeout look at them is
 * due at once and then every `look_every_ns`, so that none waits longer
 * than that for the spin to notice it.
 */
enum tssx_spin_kind {
	TSSX_SPIN_NONE,		/* not started, or over and counted */
	TSSX_SPIN_CPU,		/* polls shared memory on a CPU of its own */
	TSSX_SPIN_YIELDING,	/* gives the CPU away at every turn */
};

struct tssx_spin {
	enum tssx_spin_kind kind;
	uint64_t end_ns;	/* CLOCK_MONOTONIC */
	uint64_t look_every_ns;
	uint64_t look_ns;	/* the next look at the kernel's fds */
	bool over;
	unsigned turns_left;	/* turns it takes even past end_ns */
	unsigned yields_left;	/* a yielding spin's yields before it ends */
	uint64_t deadline_ns;	/* never past it */
	uint32_t interrupts;	/* the deadline's: a handler ends the spin */
	uint64_t turn_ns;	/* when the last turn ended */
	uint64_t yield_ns;	/* a spin on a CPU: when it yields next */
	bool handed;		/* a spin on a CPU: one of its yields let another task run */
	bool yield_long;	/* a yielding spin: its last yield let another task run */
	_Atomic uint64_t *slot;	/* the spin slot held, or NULL */
};

/* Starts a spin of the budget (TSSX_SPIN_NS) for a wait that found nothing
 * to do, if the policy lets it; false, and no spin (spin->over), when the
 * budget is 0, the deadline has passed (a zero timeout never spins) or
 * spinning would not pay now.  look_every_ns 0: no look at the kernel
 * before the spin is over.  Every started spin ends with tssx_spin_stop(). */
bool tssx_spin_start(struct tssx_spin *spin, uint64_t look_every_ns, const struct tssx_deadline *deadline);
/*
 * tssx_spin_start() for a wait on one connection: a blocking read or
 * write, or an event wait whose only connection it is
 * (events_spin_start(): epoll, poll, select).  Publishes the CPU this thread runs on into *mine
 * (this end's waiter_cpu, tssx/ring.h; written only when it changed);
 * *peers is the peer's word.  When it names another CPU, a spin on this
 * one may run beside other work (tssx_spin_pays(), docs/wait.md "A peer
 * on another CPU beside other work"); when no spin on a CPU is allowed
 * and it names the same CPU, the wait sleeps at once instead of
 * yielding: a yield there hands the CPU to whatever else runs on it as
 * much as to the peer, and puts this waiter and its peer behind that
 * work, where a sleeper woken on its own CPU costs no more than the
 * yields (docs/wait.md, "A peer on the same CPU"); unless other
 * ping-pongs share the CPU (tssx_sleep_beside()).  The peer may write any
 * value there: it only chooses between a spin, a yield and a sleep.
 */
bool tssx_spin_start_peer(struct tssx_spin *spin, uint64_t look_every_ns, const struct tssx_deadline *deadline,
			  _Atomic uint32_t *mine, const _Atomic uint32_t *peers);
/* One turn: pauses the CPU (a spin on a CPU that found nothing for
 * TSSX_SPIN_YIELD_AFTER_NS yields it, tssx_spin_cpu_yielded()), then
 * false when a look at the kernel is due
 * or the spin is over (then spin->over stays true and its slot is free). */
bool tssx_spin_pause(struct tssx_spin *spin);
/* Moves the next look at the kernel's fds to at_ns (a waiter that looked
 * lately); no effect on a spin without looks. */
static inline void tssx_spin_look_at(struct tssx_spin *spin, uint64_t at_ns)
{
	if (spin->look_every_ns)
		spin->look_ns = at_ns;
}
/* Ends the spin: the caller found something to do unless the spin was
 * over already (its budget or deadline ran out), which the thread's
 * history (tssx/skip.h) and the statistics count.  Gives the
 * spin slot back; harmless on a spin that is over or never started. */
void tssx_spin_stop(struct tssx_spin *spin);
/* Ends a spin that a look at the kernel's fds ended with events of the
 * program's own fds and none of a connection: it did not pay (the kernel
 * wakes a sleeper for its own fds, and the look came up to a look's
 * interval late), so the thread's history and the statistics count a
 * spin that found nothing (docs/wait.md, "Spins that plain fds end"). */
void tssx_spin_stop_plain(struct tssx_spin *spin);
/*
 * Ends a wait that tssx_spin_start() refused because the thread's spins
 * failed lately (its history skips them), after the waiter slept:
 * `answered` when the wait found what it waited for.  An answer that came
 * before the spin would have ended counts as a spin that paid, and the
 * skip ends: the thread's next wait spins.  Without it, the two ends of a
 * ping-pong whose spins failed for a moment (a burst of other work, both
 * ends on one CPU) sleep on: each end's waits, its probes included, then
 * last as long as its peer's wake-up, and both histories keep skipping
 * for up to TSSX_SPIN_SKIP_MAX waits at a time (docs/wait.md, "Sleeping
 * because the peer slept").  No effect after any other wait; the event
 * wrappers' waits do not call it.
 */
void tssx_spin_skipped_ended(bool answered);
/* Whether the thread's last wait was so refused and not yet ended: the
 * look for `answered` is needed only then (tssx_spin_start() forgets a
 * pending one). */
bool tssx_spin_skipped_pending(void);

/*
 * The quick spin of a blocking read that found its ring empty, before the
 * general path and its wait (conn/stream.c): polls tssx_ring_data_came()
 * with the pause hint, the clock every TSSX_QUICK_SPIN_TURNS turns, for
 * at most TSSX_QUICK_SPIN_NS (and the spin budget).  No spin slot, no
 * locked instruction, nothing written that another process reads.  Only
 * in a thread whose last spin ran on a CPU of its own (the policy above
 * allowed it) and found the answer; a quick spin that finds nothing
 * clears that, so the thread's next waits go through the policy again.
 * True when something came (or the producer shut its end).
 */
#define TSSX_QUICK_SPIN_NS 5000u
#define TSSX_QUICK_SPIN_TURNS 16u
bool tssx_spin_quick(const struct tssx_ring *ring);

/* The load file's fd is moved (-1: gone) from old, which the program
 * dup2s onto or the kept numbers left (conn/kept.h). */
void tssx_wait_renumber_loadavg(int old, int moved);

/* A sleep of the data path, on the futex bell or on the socket
 * (conn/bell.h), for the statistics line. */
void tssx_wait_count_sleep(bool futex);

/* ---- The pure parts, for the unit tests ---- */

/* A yielding spin takes this many turns, even past its budget: when many
 * tasks share the CPUs one turn may outlast the whole budget. */
#define TSSX_YIELD_TURNS_MIN 8u
/* And at most this many, within its budget: a yielding spin that needs
 * more found a peer that answers too late for its yields to pay.  Each
 * is a system call and, where other tasks are runnable, two task switches
 * that the tasks with work to do wait through: pgbench's yielding spins
 * found the answer 79-95% of the time, but after 18-62 yields each
 * (docs/wait.md, "Yields that take too many turns").  A spin ended
 * so counts as failed, so that a thread whose answers come that late
 * sleeps at once (TSSX_SPIN_HISTORY_OVER below). */
#define TSSX_YIELD_TURNS_MAX 16u
/* A yield that took this long let a long-running task have the CPU: at
 * least TSSX_YIELD_STALL_NS, and TSSX_YIELD_STALL_PER_TASK_NS per task
 * runnable on each CPU (many short tasks make a long turn too). */
#define TSSX_YIELD_STALL_NS 1000000u
#define TSSX_YIELD_STALL_PER_TASK_NS 100000u
/* Yields stop when more than 1/TSSX_YIELD_STALL_SHARE of a thread's last
 * ~TSSX_YIELD_AVERAGE_OVER yields stalled, once it has made
 * TSSX_YIELD_HISTORY_MIN of them (a process's busy start alone does not
 * stop them).  A share of the yields, not of their time: with 16 busy
 * pairs on 2 CPUs a turn through all of them is long and now and then
 * much longer, and a share of the time stopped their yields for good. */
#define TSSX_YIELD_STALL_SHARE 8u
#define TSSX_YIELD_AVERAGE_OVER 16u
#define TSSX_YIELD_HISTORY_MIN 16u
/* For how long they stop: the first time, and at most. */
#define TSSX_YIELD_BACKOFF_MIN_NS 50000000u
#define TSSX_YIELD_BACKOFF_MAX_NS 2000000000u

/* How long a yield takes before it counts as stalled, with `runnable`
 * tasks on `cpus` CPUs (0: unknown). */
uint64_t tssx_yield_stall_ns(unsigned runnable, unsigned cpus);
/*
 * Whether a yield that took took_ns stalled: it took stall_ns or more,
 * and the waits that other TSSX tasks started on its CPU meanwhile
 * (`turns`, counted in the page the user's TSSX processes share) number
 * fewer than one per TSSX_YIELD_TURN_NS of it, or it came back on
 * another CPU (`moved`: its CPU's count says nothing).  A yield behind
 * ping-pongs that take their turns on the CPU is long when they are many
 * or when some of them sleep (a sleeper woken gets a fresh virtual
 * deadline, a yielder's moved a slice later at every yield), but it
 * gave the CPU to work that answers someone: with 16 pairs on 2 CPUs
 * such yields, counted as stalls, paused every process's yields for good
 * and the pairs slept at every wait (docs/wait.md, "Yields behind other
 * ping-pongs").  A task that runs long slices takes no turns.
 */
#define TSSX_YIELD_TURN_NS 20000u
bool tssx_yield_stalled(uint64_t took_ns, uint64_t stall_ns, uint32_t turns, bool moved);
/* The CPUs whose turns the page counts (a CPU's number modulo it). */
#define TSSX_CPU_TURNS 256u
/* A thread's recent yields: the running share of stalled ones. */
struct tssx_yield_history {
	uint32_t stall_share;
	unsigned yields;	/* counted up to TSSX_YIELD_HISTORY_MIN */
};

/* Records one yield, `stalled` or not; true when stalls have become
 * common, or at the first stall while on probation (yields paused for
 * stalls lately: the CPU-bound tasks are likely still there), and then
 * the history starts anew. */
bool tssx_yield_stalls_often(struct tssx_yield_history *history, bool stalled, bool probation);
/* How long to stop yielding after stalls became common, given the last
 * such pause (0: none yet) and the time since it ended. */
uint64_t tssx_yield_backoff(uint64_t previous_ns, uint64_t since_previous_ended_ns);


/* A thread's recent spins (tssx/skip.h): when more than half of its last
 * ~8 ended with nothing to do (TSSX_SPIN_HISTORY_OVER), its next
 * TSSX_SPIN_SKIP_MIN waits sleep at once, twice as many after each further
 * failure up to TSSX_SPIN_SKIP_MAX, half as many after a spin that found
 * something.  A failed spin costs its budget and then the doorbell anyway;
 * one that found the answer saves a doorbell and a wake-up: about even,
 * so spins pay while at least half of them find it. */
#define TSSX_SPIN_HISTORY_OVER 8u
#define TSSX_SPIN_SKIP_MIN 4u
#define TSSX_SPIN_SKIP_MAX 256u

/*
 * A spin on a CPU of its own that found nothing for this long yields the
 * CPU once, and again every as long.  The policy allows such a spin when
 * no more tasks are runnable than CPUs, but that does not say where they
 * run: a futex wake-up may queue the peer on the waiter's own CPU while
 * the other CPU idles (the kernel puts a wakee near its waker), and a
 * spin there only keeps the peer from answering until the budget is over.
 * Every such spin failed, the thread's history then sent its waits to
 * sleep at once, each sleep's wake-up put the two on one CPU again, and
 * neither was ever runnable long enough for the kernel to move one to
 * the idle CPU: round trips of 5.7-7.5 us for whole cells instead of
 * 0.3 us (docs/wait.md, "Two ends on one CPU").  The yield hands the
 * CPU to the queued peer, which answers, and two waiters that stay
 * runnable show the kernel's balancer a CPU with two tasks beside an idle
 * one.  Where nothing else is queued the yield returns at once: one
 * system call per TSSX_SPIN_YIELD_AFTER_NS of a spin that waits that long
 * anyway.  A spin allowed only because the peer is on another CPU
 * (tssx_spin_pays()) never yields: its CPU is busy with other work, which
 * the yield would hand it to, not to the peer.
 */
#define TSSX_SPIN_YIELD_AFTER_NS 10000u
/* A yield that took this long let another task run (one that returns at
 * once takes 0.5-1 us on the VM of docs/benchmark.md). */
#define TSSX_SPIN_HANDED_NS 2000u
/* A yield of a spin on a CPU, made at from_ns, returned at now_ns: when it
 * took TSSX_SPIN_HANDED_NS or more it let another task run, likely the
 * peer on this CPU, and then true.  Such a spin does not count as one on
 * a CPU of its own for the quick spin, and the thread's next spins on a
 * CPU yield at their first turn until a yield returns at once. */
bool tssx_spin_cpu_yielded(struct tssx_spin *spin, uint64_t from_ns, uint64_t now_ns);

/* The word a waiter on `cpu` publishes (tssx_spin_start_peer()): 1 + the
 * CPU, 0 when unknown (negative). */
uint32_t tssx_cpu_word(int cpu);
/* Whether a peer that published peer_word last waited on `cpu` (negative:
 * unknown, never). */
bool tssx_peer_beside(uint32_t peer_word, int cpu);
/* Whether it last waited on a CPU other than `cpu`: never when either is
 * unknown. */
bool tssx_peer_apart(uint32_t peer_word, int cpu);
/* Whether a wait on `cpu` may spin for its peer apart beside other work
 * (tssx_spin_pays()): the peer is on another CPU, and no wait of another
 * task started on this CPU since the thread's previous wait there
 * (`company`, as for tssx_sleep_beside()).  Such a wait means another
 * TSSX process takes turns here, one that may be the very process the
 * peer waits for (a proxy chain, three processes on two CPUs): a spin
 * that keeps it from this CPU delays the answer it spins for. */
bool tssx_spin_apart(uint32_t peer_word, int cpu, uint32_t company);
/* Whether a wait refused a spin on a CPU sleeps at once instead of
 * yielding: the peer waits on its CPU, and fewer than
 * TSSX_YIELD_COMPANY_MIN waits of other tasks started on it since the
 * thread's previous wait there (`company`; 0 when that was elsewhere):
 * the peer's alone, or none.  More means other ping-pongs take turns
 * there, and a yield hands the CPU to work that answers someone, not to
 * work that runs first at every turn. */
#define TSSX_YIELD_COMPANY_MIN 2u
bool tssx_sleep_beside(uint32_t peer_word, int cpu, uint32_t company);

/* tssx_spin_start() without the policy: a spin of budget_ns from now
 * (a spin on a CPU that yields at its first turn when the thread's last
 * such yield let another task run). */
bool tssx_spin_setup(struct tssx_spin *spin, uint64_t now, uint64_t budget_ns, uint64_t look_every_ns,
		     const struct tssx_deadline *deadline);

/*
 * Whether a spin can pay: `runnable` tasks on the machine, the caller
 * included, fit on the `cpus` the caller may run on; or, when the peer
 * last waited on another CPU (`peer_apart`), no more than
 * TSSX_SPIN_APART_SHARE of them share a CPU of the machine's
 * `machine_cpus`.  The machine's, not the caller's: the share estimates
 * the load on the peer's CPU, which the caller's affinity says nothing
 * about; a process started on one CPU (taskset, a cpuset, systemd's
 * CPUAffinity=) compared the machine's tasks with its one CPU and never
 * spun for a peer apart beside other work (Redis and its benchmark
 * started on CPUs 0 and 1 beside a hog each: 5,696-7,044 GETs a second,
 * plain 4,988-6,041; now 148,515-160,428).  A peer on a CPU of its own
 * beside one other task runs at least half the time, and answers a
 * spinner on another CPU within a turn; the spinner takes only its own
 * CPU's fair share from the task beside it.  Sleeping there instead made
 * every answer wait for a wake-up on a CPU busy with other work: a pair
 * on two CPUs beside a CPU-bound process each made 7,200-8,500 round
 * trips a second (plain sockets 5,600-5,900), and makes 157,000-197,000
 * spinning (docs/wait.md, "A peer on another CPU beside other work").
 */
#define TSSX_SPIN_APART_SHARE 2u
bool tssx_spin_pays(unsigned runnable, unsigned cpus, unsigned machine_cpus, bool peer_apart);
/* How many spin slots `cpus` CPUs have: one each, at least one, at most
 * TSSX_SPIN_SLOTS_MAX. */
unsigned tssx_spin_slots_for(unsigned cpus);
/* A spin slot: when the spin that holds it ends (0: free), on a cache
 * line of its own, so that spinners on different CPUs write different
 * lines. */
struct tssx_spin_slot {
	alignas(64) _Atomic uint64_t end;
};
/* Claims a free slot of slots[0..n) (one whose spin ended before now) for a
 * spin until `until`, looking from slots[first] on (the one the thread
 * held last: its line is likely still in this CPU's cache); NULL when
 * all are held. */
_Atomic uint64_t *tssx_spin_slot_claim(struct tssx_spin_slot *slots, unsigned n, unsigned first, uint64_t now,
				       uint64_t until);
/* The runnable tasks of a /proc/loadavg line ("0.10 0.20 0.30 3/120 456"),
 * or 0 when the line does not parse. */
unsigned tssx_loadavg_runnable(const char *line);

#endif
