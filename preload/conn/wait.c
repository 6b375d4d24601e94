/* Waiting: deadlines, the spin and its policy (wait.h). */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn/fd_table.h"
#include "conn/kept.h"
#include "conn/user_shm.h"
#include "conn/wait.h"
#include "init.h"
#include "tssx/log.h"
#include "tssx/ring_fast.h"
#include "tssx/skip.h"

/* ---- Deadlines ---- */

static uint64_t timespec_ns(const struct timespec *ts)
{
	uint64_t sec = (uint64_t)ts->tv_sec;

	/* Far beyond any process's life: as good as forever, no overflow. */
	if (sec > (UINT64_MAX - TSSX_NSEC_PER_SEC) / TSSX_NSEC_PER_SEC / 2)
		return TSSX_FOREVER;
	return sec * (uint64_t)TSSX_NSEC_PER_SEC + (uint64_t)ts->tv_nsec;
}

/* Counted by the trampoline of shims/signal.c. */
__thread __attribute__((tls_model("initial-exec"))) volatile struct tssx_interrupts tssx_interrupts;

void tssx_deadline_set(struct tssx_deadline *deadline, const struct timespec *timeout)
{
	uint64_t span = timeout ? timespec_ns(timeout) : TSSX_FOREVER;

	deadline->at_ns = span == TSSX_FOREVER ? TSSX_FOREVER : tssx_now_ns() + span;
}

void tssx_deadline_start(struct tssx_deadline *deadline, const struct timespec *timeout)
{
	deadline->interrupts = tssx_interrupt_mark();
	tssx_deadline_set(deadline, timeout);
}

const struct timespec *tssx_timespec_from_ms(int timeout_ms, struct timespec *ts)
{
	if (timeout_ms < 0)
		return NULL;
	ts->tv_sec = timeout_ms / 1000;
	ts->tv_nsec = timeout_ms % 1000 * 1000000L;
	return ts;
}

void tssx_deadline_start_ms(struct tssx_deadline *deadline, int timeout_ms)
{
	struct timespec timeout;

	tssx_deadline_start(deadline, tssx_timespec_from_ms(timeout_ms, &timeout));
}

bool tssx_timespec_valid(const struct timespec *timeout)
{
	return !timeout || (timeout->tv_sec >= 0 && timeout->tv_nsec >= 0 && timeout->tv_nsec < TSSX_NSEC_PER_SEC);
}

static uint64_t deadline_left_ns(const struct tssx_deadline *deadline)
{
	uint64_t now = tssx_now_ns();

	return now >= deadline->at_ns ? 0 : deadline->at_ns - now;
}

struct timespec *tssx_deadline_left(const struct tssx_deadline *deadline, struct timespec *left)
{
	uint64_t ns;

	if (deadline->at_ns == TSSX_FOREVER)
		return NULL;
	ns = deadline_left_ns(deadline);
	left->tv_sec = (time_t)(ns / TSSX_NSEC_PER_SEC);
	left->tv_nsec = (long)(ns % TSSX_NSEC_PER_SEC);
	return left;
}

bool tssx_deadline_passed(const struct tssx_deadline *deadline)
{
	return deadline->at_ns != TSSX_FOREVER && deadline_left_ns(deadline) == 0;
}

int tssx_timespec_to_ms(const struct timespec *timeout)
{
	long long ms;

	if (!timeout)
		return -1;
	ms = (long long)timeout->tv_sec * 1000 + (timeout->tv_nsec + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

int tssx_deadline_left_ms(const struct tssx_deadline *deadline)
{
	struct timespec left;

	return tssx_timespec_to_ms(tssx_deadline_left(deadline, &left));
}

/* ---- The policy's pure parts ---- */

bool tssx_spin_pays(unsigned runnable, unsigned cpus, unsigned machine_cpus, bool peer_apart)
{
	/* 0: the count is unknown; spinning is bounded by the budget anyway. */
	return runnable == 0 || runnable <= cpus ||
	       (peer_apart && (uint64_t)runnable <= (uint64_t)TSSX_SPIN_APART_SHARE * machine_cpus);
}

unsigned tssx_spin_slots_for(unsigned cpus)
{
	if (cpus < 1)
		return 1;
	return cpus > TSSX_SPIN_SLOTS_MAX ? TSSX_SPIN_SLOTS_MAX : cpus;
}

_Atomic uint64_t *tssx_spin_slot_claim(struct tssx_spin_slot *slots, unsigned n, unsigned first, uint64_t now,
				       uint64_t until)
{
	for (unsigned k = 0; k < n; k++) {
		_Atomic uint64_t *end = &slots[(first + k) % n].end;
		/* Relaxed: a slot only counts spinners, it guards no data. */
		uint64_t held = atomic_load_explicit(end, memory_order_relaxed);

		if (held < now &&
		    atomic_compare_exchange_strong_explicit(end, &held, until, memory_order_relaxed,
							    memory_order_relaxed))
			return end;
	}
	return NULL;
}

/* Past the next field and the blanks after it. */
static const char *next_field(const char *p)
{
	while (*p && *p != ' ')
		p++;
	while (*p == ' ')
		p++;
	return p;
}

/* By hand, not sscanf(): a process refreshing the count every millisecond
 * spent more in sscanf()'s set-up than in the read of the file. */
unsigned tssx_loadavg_runnable(const char *line)
{
	const char *p = next_field(next_field(next_field(line)));
	unsigned runnable = 0;

	if (*p < '0' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (runnable > (UINT_MAX - 9) / 10)
			return 0;
		runnable = runnable * 10 + (unsigned)(*p - '0');
	}
	/* "runnable/total": anything else is not the file we know. */
	return *p == '/' && p[1] >= '0' && p[1] <= '9' ? runnable : 0;
}

uint32_t tssx_cpu_word(int cpu)
{
	return cpu >= 0 ? (uint32_t)cpu + 1 : 0;
}

bool tssx_peer_beside(uint32_t peer_word, int cpu)
{
	return cpu >= 0 && peer_word == tssx_cpu_word(cpu);
}

bool tssx_peer_apart(uint32_t peer_word, int cpu)
{
	return cpu >= 0 && peer_word != 0 && peer_word != tssx_cpu_word(cpu);
}

bool tssx_spin_apart(uint32_t peer_word, int cpu, uint32_t company)
{
	return company == 0 && tssx_peer_apart(peer_word, cpu);
}

bool tssx_sleep_beside(uint32_t peer_word, int cpu, uint32_t company)
{
	return company < TSSX_YIELD_COMPANY_MIN && tssx_peer_beside(peer_word, cpu);
}

uint64_t tssx_yield_stall_ns(unsigned runnable, unsigned cpus)
{
	uint64_t busy = cpus ? (uint64_t)TSSX_YIELD_STALL_PER_TASK_NS * runnable / cpus : 0;

	return busy > TSSX_YIELD_STALL_NS ? busy : TSSX_YIELD_STALL_NS;
}

bool tssx_yield_stalled(uint64_t took_ns, uint64_t stall_ns, uint32_t turns, bool moved)
{
	/* Turns of TSSX waiters on the CPU account for the time: the CPU
	 * went to ping-pongs, not to a task that runs long slices. */
	return took_ns >= stall_ns && (moved || took_ns > (uint64_t)turns * TSSX_YIELD_TURN_NS);
}

bool tssx_yield_stalls_often(struct tssx_yield_history *history, bool stalled, bool probation)
{
	/* A running average over about the last TSSX_YIELD_AVERAGE_OVER
	 * yields, in 1/65536ths. */
	history->stall_share -= history->stall_share / TSSX_YIELD_AVERAGE_OVER;
	if (stalled)
		history->stall_share += 65536u / TSSX_YIELD_AVERAGE_OVER;
	if (history->yields < TSSX_YIELD_HISTORY_MIN)
		history->yields++;
	if (!(probation && stalled) &&
	    (history->yields < TSSX_YIELD_HISTORY_MIN || history->stall_share <= 65536u / TSSX_YIELD_STALL_SHARE))
		return false;
	*history = (struct tssx_yield_history){ 0 };
	return true;
}

uint64_t tssx_yield_backoff(uint64_t previous_ns, uint64_t since_previous_ended_ns)
{
	uint64_t doubled = previous_ns * 2;

	/* Stalls again within the last pause's length of its end: the
	 * long-running tasks are still there, wait twice as long. */
	if (previous_ns == 0 || since_previous_ended_ns > previous_ns)
		return TSSX_YIELD_BACKOFF_MIN_NS;
	return doubled > TSSX_YIELD_BACKOFF_MAX_NS ? TSSX_YIELD_BACKOFF_MAX_NS : doubled;
}

/* ---- What the waits did ---- */

/* What this process's waits did before they slept, logged at exit at
 * TSSX_LOG=info.  Relaxed: counters, read only for that line. */
static struct {
	_Atomic uint64_t spins, spins_found;		/* on a CPU of their own */
	_Atomic uint64_t yielding, yielding_found;	/* spins that yielded */
	_Atomic uint64_t yields;			/* sched_yield() calls */
	_Atomic uint64_t skipped;			/* slept at once: spins failed lately */
	_Atomic uint64_t skips_ended;			/* by a skipped wait answered within a spin */
	_Atomic uint64_t refused;			/* slept at once: no CPU free, yields paused */
	_Atomic uint64_t beside;			/* slept at once: no CPU free, the peer on this one */
	_Atomic uint64_t sleeps, futex_sleeps;		/* of the data path, and on the futex bell */
	_Atomic uint64_t quick, quick_found;		/* tssx_spin_quick() */
	_Atomic uint64_t cpu_yields, cpu_yields_handed;	/* of spins on a CPU, and those that let a task run */
	/* Yields of yielding spins that let another task run (they took
	 * TSSX_SPIN_HANDED_NS or more), and those of them after which the
	 * waiter still found nothing: the CPU went to a task other than
	 * the peer, or the peer did not answer in its turn. */
	_Atomic uint64_t yields_long, yields_long_empty;
} wait_stats;

/* Without a locked instruction, which every sleeping wait would pay
 * once or twice for a line of statistics: threads that count at the
 * same moment may lose one of their counts. */
static void count(_Atomic uint64_t *counter)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static unsigned long long counted(_Atomic uint64_t *counter)
{
	return (unsigned long long)atomic_load_explicit(counter, memory_order_relaxed);
}

void tssx_wait_count_sleep(bool futex)
{
	count(futex ? &wait_stats.futex_sleeps : &wait_stats.sleeps);
}

__attribute__((destructor)) static void wait_stats_report(void)
{
	if (counted(&wait_stats.spins) || counted(&wait_stats.yielding) || counted(&wait_stats.skipped) ||
	    counted(&wait_stats.refused) || counted(&wait_stats.beside) || counted(&wait_stats.sleeps) ||
	    counted(&wait_stats.futex_sleeps) ||
	    counted(&wait_stats.quick))
		log_info("waits before sleeping: %llu quick spins (%llu found the answer), %llu spins (%llu found it), "
			 "%llu yielding spins (%llu found it, %llu yields), %llu skipped (spins failed lately; "
			 "%llu answered within a spin, which ended the skip), %llu refused (no CPU free, yields paused); data path sleeps: %llu on the futex bell, "
			 "%llu on the socket; yields of spins on a CPU: %llu (%llu let another task run); "
			 "yields of yielding spins that let another task run: %llu (%llu found nothing after it); "
			 "%llu slept at once (no CPU free, the peer waits on this one)",
			 counted(&wait_stats.quick), counted(&wait_stats.quick_found),
			 counted(&wait_stats.spins), counted(&wait_stats.spins_found), counted(&wait_stats.yielding),
			 counted(&wait_stats.yielding_found), counted(&wait_stats.yields), counted(&wait_stats.skipped),
			 counted(&wait_stats.skips_ended),
			 counted(&wait_stats.refused), counted(&wait_stats.futex_sleeps), counted(&wait_stats.sleeps),
			 counted(&wait_stats.cpu_yields), counted(&wait_stats.cpu_yields_handed),
			 counted(&wait_stats.yields_long), counted(&wait_stats.yields_long_empty),
			 counted(&wait_stats.beside));
}

/* ---- The machine's view ---- */

/* The page every TSSX process of the user maps.  Each slot on a line of
 * its own: with the slots on one line, every claim and release of both
 * ends of a round trip wrote that line, four transfers between the CPUs
 * per round trip (docs/benchmark.md, "The round trip against the raw
 * ring"). */
struct shared_page {
	struct tssx_spin_slot slots[TSSX_SPIN_SLOTS_MAX];
	/* The last runnable count read, and when: one read per
	 * TSSX_LOAD_REFRESH_NS for the whole machine, not per process. */
	alignas(64) _Atomic uint64_t load_read_at;
	_Atomic uint64_t load_runnable;
	/* The waits started on each CPU (its number modulo the count): a
	 * yield that took long while the count of its CPU moved gave the
	 * CPU to TSSX waiters (tssx_yield_stalled()).  A line each, written
	 * by the tasks that take turns on that CPU only. */
	struct {
		alignas(64) _Atomic uint32_t waits;
	} cpu_turns[TSSX_CPU_TURNS];
};

/* No yielding spin of this process starts before yields_after: its yields
 * stalled behind long-running tasks (yield_stalled()), the pause being
 * yield_backoff_ns.  Per process: one process's stalls (a busy start, a
 * CPU-bound neighbour on its CPU) do not stop the others' yields.
 * Relaxed: hints, each valid alone. */
static _Atomic uint64_t yields_after;
static _Atomic uint64_t yield_backoff_ns;

struct machine {
	unsigned cpus;			/* this process may run on */
	unsigned online;		/* the machine's, at least cpus */
	unsigned nslots;
	struct shared_page *page;	/* or this process's own */
	/* -1: unknown.  Kept in the fd table (kind TSSX_FD_LOADAVG): a
	 * close-all loop of the program leaves it open, a dup2() onto it
	 * moves it first (tssx_wait_move_loadavg).  Atomic: read without a
	 * lock by every waiter that finds the count stale. */
	_Atomic int loadavg_fd;
};

static struct machine machine;
static pthread_once_t machine_once = PTHREAD_ONCE_INIT;

static unsigned online_cpus(void)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	return online > 0 ? (unsigned)online : 1;
}

static unsigned allowed_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	return online_cpus();
}

/*
 * The spin slots, shared by the user's processes (conn/user_shm.h): a
 * process of the same user that writes nonsense there can only stop
 * spins (slots that look held) or let more of them run, each still
 * bounded by its budget.  Without the file, spins are limited by the
 * load alone.  "-3": slots on lines of their own and the CPUs' turns (a
 * library of before keeps its own file: "-2" without the turns, no
 * number with all slots on one line).
 */
static struct shared_page *map_page(void)
{
	return tssx_user_shm_map("tssx-spin-3", sizeof(struct shared_page));
}

/* The table's object for the load file's fd (fd_table.h). */
static struct tssx_fd_object loadavg_obj = { .kind = TSSX_FD_LOADAVG };

/* The load file is fd from now on, kept from the program's closes
 * (without a slot, beyond the table or out of memory, a close-all loop
 * may take it: a read of it then fails, or reads the program's file that
 * took the number, and the count is only a hint). */
static void keep_loadavg_fd(int fd)
{
	tssx_kept_alias(fd, &loadavg_obj);
	atomic_store(&machine.loadavg_fd, fd);
}

void tssx_wait_renumber_loadavg(int old, int moved)
{
	/* The new number first: a waiter that read the old one before the
	 * program's dup2 at most parses the program's file once. */
	keep_loadavg_fd(moved);
	tssx_table_take(old);
}

static void machine_init(void)
{
	machine.cpus = allowed_cpus();
	machine.online = online_cpus();
	if (machine.online < machine.cpus)
		machine.online = machine.cpus;
	/* The machine's: every process of the user shares the slots, and
	 * two processes each pinned to a CPU of their own spin at once. */
	machine.nslots = tssx_spin_slots_for(machine.online);
	machine.page = map_page();
	keep_loadavg_fd(tssx_kept_place(open("/proc/loadavg", O_RDONLY | O_CLOEXEC)));
}

static struct shared_page *shared_page(void)
{
	static struct shared_page own; /* without /dev/shm: this process's view */

	pthread_once(&machine_once, machine_init);
	return machine.page ? machine.page : &own;
}

/* The count of the waits started on `cpu` (not negative). */
static _Atomic uint32_t *cpu_turns(int cpu)
{
	return &shared_page()->cpu_turns[(unsigned)cpu % TSSX_CPU_TURNS].waits;
}

/* The waits that other tasks started on this thread's CPU since its
 * previous wait started there (0: it was elsewhere, or unknown): more
 * than the peer's own means other ping-pongs share the CPU
 * (tssx_sleep_beside()).  The count after that wait, and its CPU. */
static __thread __attribute__((tls_model("initial-exec"))) uint32_t wait_company;
static __thread __attribute__((tls_model("initial-exec"))) uint32_t last_turns;
static __thread __attribute__((tls_model("initial-exec"))) int last_turn_cpu = -1;

/* Counts a wait started on `cpu` (negative: unknown).  Relaxed, a load
 * and a store: the tasks that share a CPU take turns on it, and a count
 * lost to a preemption between the two is only a hint less. */
static void count_turn(int cpu)
{
	_Atomic uint32_t *waits;
	uint32_t now;

	if (cpu < 0) {
		wait_company = 0;
		return;
	}
	waits = cpu_turns(cpu);
	now = atomic_load_explicit(waits, memory_order_relaxed) + 1;
	atomic_store_explicit(waits, now, memory_order_relaxed);
	wait_company = cpu == last_turn_cpu ? now - 1 - last_turns : 0;
	last_turns = now;
	last_turn_cpu = cpu;
}

/* Whether the runnable count in the page is at most TSSX_LOAD_REFRESH_NS
 * old.  Relaxed: the two words are a hint, each valid alone. */
static bool runnable_fresh(struct shared_page *page, uint64_t now)
{
	return now - atomic_load_explicit(&page->load_read_at, memory_order_relaxed) < TSSX_LOAD_REFRESH_NS;
}

/* The runnable count in the page, fresh or not.  Relaxed: as above. */
static unsigned runnable_kept(struct shared_page *page)
{
	return (unsigned)atomic_load_explicit(&page->load_runnable, memory_order_relaxed);
}

/* The machine's runnable tasks, at most TSSX_LOAD_REFRESH_NS old; 0 when
 * unknown.  Processes and threads that race may all read the file:
 * harmless. */
static unsigned runnable_now(struct shared_page *page, uint64_t now)
{
	char line[128];
	unsigned runnable;
	ssize_t n;
	int fd;

	if (runnable_fresh(page, now))
		return runnable_kept(page);
	fd = atomic_load_explicit(&machine.loadavg_fd, memory_order_relaxed);
	if (fd < 0 || (n = pread(fd, line, sizeof(line) - 1, 0)) <= 0)
		return 0;
	line[n] = '\0';
	runnable = tssx_loadavg_runnable(line);
	atomic_store_explicit(&page->load_runnable, runnable, memory_order_relaxed);
	atomic_store_explicit(&page->load_read_at, now, memory_order_relaxed);
	return runnable;
}

/* tssx_spin_pays() at `runnable` tasks for a waiter on `cpu` whose peer
 * published its CPU in *peers (NULL: unknown); *for_apart when it pays
 * only because the peer is on another CPU and no other TSSX waiter takes
 * turns on this one (tssx_spin_apart()).  The peer's word is loaded only
 * when the count alone refuses: the peer writes the line it is on. */
static bool spin_pays(unsigned runnable, const _Atomic uint32_t *peers, int cpu, bool *for_apart)
{
	*for_apart = false;
	if (tssx_spin_pays(runnable, machine.cpus, machine.online, false))
		return true;
	*for_apart = peers && tssx_spin_pays(runnable, machine.cpus, machine.online,
					     tssx_spin_apart(atomic_load_explicit(peers, memory_order_relaxed), cpu,
							     wait_company));
	return *for_apart;
}

/* Whether a spin from now to end_ns may run, and the slot it then holds;
 * peers, cpu and for_apart as for spin_pays().  A fresh runnable count
 * that refuses is read first: on a busy machine every wait is refused,
 * and a claim and release of a slot would write the page's line that all
 * the waiters read.  Else the slot first: it costs no system call, where
 * a stale count costs a read of the file. */
static bool spin_allowed(uint64_t now, uint64_t end_ns, _Atomic uint64_t **slot, const _Atomic uint32_t *peers,
			 int cpu, bool *for_apart)
{
	/* The slot this thread held last. */
	static __thread __attribute__((tls_model("initial-exec"))) unsigned slot_hint;
	struct shared_page *page = shared_page();
	unsigned nslots = machine.page ? machine.nslots : TSSX_SPIN_SLOTS_MAX;

	*slot = NULL;
	/* The count straight from the page: runnable_now() and its buffer
	 * for the file cost a refused wait some twenty instructions more. */
	if (runnable_fresh(page, now) && !spin_pays(runnable_kept(page), peers, cpu, for_apart))
		return false;
	*slot = tssx_spin_slot_claim(page->slots, nslots, slot_hint % nslots, now, end_ns);
	if (*slot)
		slot_hint = (unsigned)((struct tssx_spin_slot *)*slot - page->slots);
	if (*slot && spin_pays(runnable_now(page, now), peers, cpu, for_apart))
		return true;
	if (*slot)
		atomic_store_explicit(*slot, 0, memory_order_relaxed);
	*slot = NULL;
	return false;
}

/* ---- The spin ---- */

/* This thread's last yield of a spin on a CPU let another task run
 * (tssx_spin_cpu_yielded()): its peer likely shares this CPU. */
static __thread __attribute__((tls_model("initial-exec"))) bool cpu_shared;

bool tssx_spin_setup(struct tssx_spin *spin, uint64_t now, uint64_t budget_ns, uint64_t look_every_ns,
		     const struct tssx_deadline *deadline)
{
	spin->end_ns = now + budget_ns;
	if (deadline->at_ns < spin->end_ns)
		spin->end_ns = deadline->at_ns;
	spin->look_every_ns = look_every_ns;
	spin->look_ns = look_every_ns ? now : UINT64_MAX; /* the first at once */
	spin->slot = NULL;
	spin->kind = TSSX_SPIN_NONE;
	spin->turns_left = 0;
	spin->yields_left = 0;
	spin->deadline_ns = deadline->at_ns;
	spin->interrupts = deadline->interrupts;
	spin->turn_ns = now;
	spin->yield_ns = cpu_shared ? now : now + TSSX_SPIN_YIELD_AFTER_NS;
	spin->handed = false;
	spin->yield_long = false;
	spin->over = spin->end_ns <= now || tssx_deadline_interrupted(deadline);
	return !spin->over;
}

/* Whether yielding spins are paused: yields stalled lately (yield_stalled()). */
static bool yields_paused(uint64_t now)
{
	return now < atomic_load_explicit(&yields_after, memory_order_relaxed);
}

/* Whether this thread's last spin ran on a CPU of its own and found the
 * answer: its next blocking reads may spin quickly (tssx_spin_quick()). */
static __thread __attribute__((tls_model("initial-exec"))) bool spin_paid;

/* This thread's recent spins, and when they pay (wait.h). */
static __thread struct tssx_skip_history spin_history;
static const struct tssx_skip_rule spin_rule = { TSSX_SPIN_HISTORY_OVER, TSSX_SPIN_SKIP_MIN, TSSX_SPIN_SKIP_MAX };

/* The end of the spin on a CPU that this thread's last wait would have
 * made, had its history not sent it to sleep at once; 0: it was not so
 * sent (tssx_spin_skipped_ended()). */
static __thread __attribute__((tls_model("initial-exec"))) uint64_t skipped_spin_end_ns;

/* tssx_spin_start(); peers: the peer's published CPU word, or NULL
 * (unknown), and cpu this thread's. */
static bool spin_start(struct tssx_spin *spin, uint64_t look_every_ns, const struct tssx_deadline *deadline,
		       const _Atomic uint32_t *peers, int cpu)
{
	uint64_t now = tssx_now_ns();
	bool paused, beside, for_apart;
	bool may_spin = tssx_spin_setup(spin, now, tssx_opts.spin_ns, look_every_ns, deadline);

	/* Until this spin, if any, finds the answer on a CPU of its own. */
	spin_paid = false;
	skipped_spin_end_ns = 0;

	/* Both budgets 0 (TSSX_SPIN_NS=0 still yields unless TSSX_YIELD_NS=0
	 * too), or no time left: a wait that the history does not count. */
	if (!may_spin && !tssx_spin_setup(spin, now, tssx_opts.yield_ns, look_every_ns, deadline))
		return false;
	count_turn(cpu >= 0 ? cpu : sched_getcpu());
	if (tssx_skip_history_skips(&spin_history)) {
		count(&wait_stats.skipped);
		/* Only a spin on a CPU's budget: a yielding spin's is ten
		 * times as long, and its yields are capped anyway. */
		if (may_spin)
			skipped_spin_end_ns = spin->end_ns;
		spin->over = true;
		return false;
	}
	/* may_spin: the spin of the first setup stands (the second ran only
	 * without it). */
	if (may_spin && spin_allowed(now, spin->end_ns, &spin->slot, peers, cpu, &for_apart)) {
		spin->kind = TSSX_SPIN_CPU;
		/* Allowed only for a peer on another CPU, beside other work:
		 * a yield would hand this CPU to that work for its slice,
		 * not to the peer, and the answer would wait for it. */
		if (for_apart)
			spin->yield_ns = UINT64_MAX;
		return true;
	}
	/* No CPU to spin on: give it away at every turn instead, so that
	 * the peer may run on it and answer before this waiter sleeps;
	 * unless the peer waits on this CPU and no other ping-pong took
	 * turns on it lately (tssx_spin_start_peer()).  Its word loaded
	 * only here: the peer writes the line it is on. */
	paused = yields_paused(now);
	beside = !paused && peers &&
		 tssx_sleep_beside(atomic_load_explicit(peers, memory_order_relaxed), cpu, wait_company);
	if (!paused && !beside && tssx_spin_setup(spin, now, tssx_opts.yield_ns, look_every_ns, deadline)) {
		spin->kind = TSSX_SPIN_YIELDING;
		spin->turns_left = TSSX_YIELD_TURNS_MIN;
		spin->yields_left = TSSX_YIELD_TURNS_MAX;
		return true;
	}
	count(beside ? &wait_stats.beside : &wait_stats.refused);
	spin->over = true;
	return false;
}

bool tssx_spin_start(struct tssx_spin *spin, uint64_t look_every_ns, const struct tssx_deadline *deadline)
{
	return spin_start(spin, look_every_ns, deadline, NULL, -1);
}

bool tssx_spin_start_peer(struct tssx_spin *spin, uint64_t look_every_ns, const struct tssx_deadline *deadline,
			  _Atomic uint32_t *mine, const _Atomic uint32_t *peers)
{
	/* From the thread's rseq area: no system call. */
	int cpu = sched_getcpu();
	uint32_t word = tssx_cpu_word(cpu);

	/* Relaxed: a hint, each word valid alone; written only when it
	 * changed, so that a thread that stays on its CPU writes nothing. */
	if (atomic_load_explicit(mine, memory_order_relaxed) != word)
		atomic_store_explicit(mine, word, memory_order_relaxed);
	return spin_start(spin, look_every_ns, deadline, peers, cpu);
}

/* Ends a spin, once: counts how it went and frees its slot. */
static void spin_finish(struct tssx_spin *spin, bool found)
{
	uint64_t held = spin->end_ns;

	if (spin->kind != TSSX_SPIN_NONE) {
		bool yielding = spin->kind == TSSX_SPIN_YIELDING;

		tssx_skip_history_record(&spin_history, &spin_rule, found);
		/* An answer that came only after a yield let the peer run
		 * came from this CPU: a quick spin would keep the peer from it. */
		spin_paid = found && !yielding && !spin->handed;
		count(yielding ? &wait_stats.yielding : &wait_stats.spins);
		if (found)
			count(yielding ? &wait_stats.yielding_found : &wait_stats.spins_found);
		spin->kind = TSSX_SPIN_NONE;
	}
	spin->over = true;
	if (spin->slot)
		atomic_compare_exchange_strong_explicit(spin->slot, &held, 0, memory_order_relaxed,
							memory_order_relaxed);
	spin->slot = NULL;
}

void tssx_spin_stop(struct tssx_spin *spin)
{
	spin_finish(spin, !spin->over);
}

void tssx_spin_stop_plain(struct tssx_spin *spin)
{
	spin_finish(spin, false);
}

bool tssx_spin_skipped_pending(void)
{
	return skipped_spin_end_ns != 0;
}

void tssx_spin_skipped_ended(bool answered)
{
	uint64_t spin_end = skipped_spin_end_ns;

	skipped_spin_end_ns = 0;
	if (spin_end && answered && tssx_now_ns() <= spin_end) {
		tssx_skip_history_paid_anyway(&spin_history, &spin_rule);
		count(&wait_stats.skips_ended);
	}
}

bool tssx_spin_quick(const struct tssx_ring *ring)
{
	uint64_t budget = tssx_opts.spin_ns < TSSX_QUICK_SPIN_NS ? tssx_opts.spin_ns : TSSX_QUICK_SPIN_NS;
	uint64_t end = 0;

	if (!spin_paid || !budget)
		return false;
	count(&wait_stats.quick);
	for (unsigned turn = 0;; turn++) {
		if (tssx_ring_data_came(ring)) {
			count(&wait_stats.quick_found);
			return true;
		}
		/* The clock after the first turns: an answer that comes at
		 * once costs no read of it. */
		if (turn % TSSX_QUICK_SPIN_TURNS == TSSX_QUICK_SPIN_TURNS - 1) {
			uint64_t now = tssx_now_ns();

			if (!end)
				end = now + budget;
			else if (now >= end)
				break;
		}
		tssx_cpu_relax();
	}
	spin_paid = false;
	return false;
}

/* A yield that let a long-running task have the CPU: the rest of this
 * wait, and likely the next waits, would pay the same, where a sleeper
 * woken by a doorbell would preempt it.  True when the yield stalled
 * (tssx_yield_stalled(): `turns` waits started on its CPU meanwhile, or
 * it `moved` to another); the wait then sleeps.  When stalls are common,
 * the process stops yielding for a while, longer each time it happens
 * again right away. */
static bool yield_stalled(uint64_t took_ns, uint64_t now, uint32_t turns, bool moved)
{
	static __thread struct tssx_yield_history history;
	struct shared_page *page = shared_page();
	uint64_t after, previous, backoff, stall_ns = TSSX_YIELD_STALL_NS;
	bool probation, stalled;

	/* The runnable count only for a long turn: it may cost a read. */
	if (took_ns >= stall_ns)
		stall_ns = tssx_yield_stall_ns(runnable_now(page, now), machine.cpus);
	stalled = tssx_yield_stalled(took_ns, stall_ns, turns, moved);
	after = atomic_load_explicit(&yields_after, memory_order_relaxed);
	previous = atomic_load_explicit(&yield_backoff_ns, memory_order_relaxed);
	/* Within the last pause's length of its end: one stall is enough. */
	probation = after && now - after <= previous;
	if (tssx_yield_stalls_often(&history, stalled, probation) && after <= now) {
		backoff = tssx_yield_backoff(previous, now - after);
		atomic_store_explicit(&yield_backoff_ns, backoff, memory_order_relaxed);
		atomic_store_explicit(&yields_after, now + backoff, memory_order_relaxed);
	}
	return stalled;
}

bool tssx_spin_cpu_yielded(struct tssx_spin *spin, uint64_t from_ns, uint64_t now_ns)
{
	cpu_shared = now_ns - from_ns >= TSSX_SPIN_HANDED_NS;
	spin->handed |= cpu_shared;
	spin->yield_ns = now_ns + TSSX_SPIN_YIELD_AFTER_NS;
	return cpu_shared;
}

/* A turn of a spin on a CPU: the pause hint, or a yield when the spin has
 * found nothing for TSSX_SPIN_YIELD_AFTER_NS (wait.h).  Returns the time. */
static uint64_t cpu_turn(struct tssx_spin *spin)
{
	uint64_t now;

	if (spin->turn_ns < spin->yield_ns) {
		tssx_cpu_relax();
		return tssx_now_ns();
	}
	sched_yield();
	now = tssx_now_ns();
	count(&wait_stats.cpu_yields);
	if (tssx_spin_cpu_yielded(spin, spin->turn_ns, now))
		count(&wait_stats.cpu_yields_handed);
	return now;
}

/* A spin ends at its budget's end, or at the deadline while a yielding
 * one still has turns to take. */
static uint64_t spin_end_ns(const struct tssx_spin *spin)
{
	return spin->turns_left ? spin->deadline_ns : spin->end_ns;
}

/* A yield that returned at `now` counted (turns and moved as for
 * yield_stalled()); false when it stalled or was the spin's last
 * (TSSX_YIELD_TURNS_MAX): the spin ends. */
static bool yield_counted(struct tssx_spin *spin, uint64_t now, uint32_t turns, bool moved)
{
	if (yield_stalled(now - spin->turn_ns, now, turns, moved))
		return false;
	spin->turn_ns = now;
	if (spin->turns_left)
		spin->turns_left--;
	return --spin->yields_left > 0;
}

/* A yield of a yielding spin; returns the time.  *turns: the waits that
 * other tasks started on this thread's CPU meanwhile, *moved when it
 * came back on another CPU (or either is unknown). */
static uint64_t yield_turn(struct tssx_spin *spin, uint32_t *turns, bool *moved)
{
	int cpu = sched_getcpu();
	uint32_t before = cpu >= 0 ? atomic_load_explicit(cpu_turns(cpu), memory_order_relaxed) : 0;
	uint64_t now;

	/* Called again: the waiter found nothing after the last yield. */
	if (spin->yield_long)
		count(&wait_stats.yields_long_empty);
	sched_yield();
	count(&wait_stats.yields);
	now = tssx_now_ns();
	*moved = cpu < 0 || sched_getcpu() != cpu;
	*turns = *moved ? 0 : atomic_load_explicit(cpu_turns(cpu), memory_order_relaxed) - before;
	spin->yield_long = now - spin->turn_ns >= TSSX_SPIN_HANDED_NS;
	if (spin->yield_long)
		count(&wait_stats.yields_long);
	return now;
}

bool tssx_spin_pause(struct tssx_spin *spin)
{
	uint64_t now, until, end;

	if (spin->over)
		return false;
	/* A handler of the program ran: the call ends as the kernel's would
	 * (EINTR, or a restart that waits anew), which says nothing of
	 * whether spinning pays. */
	if (tssx_interrupted_since(spin->interrupts)) {
		spin->kind = TSSX_SPIN_NONE;
		spin_finish(spin, false);
		return false;
	}
	end = spin_end_ns(spin);
	until = spin->look_ns < end ? spin->look_ns : end;
	if (spin->kind != TSSX_SPIN_YIELDING) {
		now = cpu_turn(spin);
		spin->turn_ns = now;
	} else {
		uint32_t turns;
		bool moved;

		now = yield_turn(spin, &turns, &moved);
		if (!yield_counted(spin, now, turns, moved)) {
			spin_finish(spin, false);
			return false;
		}
	}
	if (now < until)
		return true;
	if (now >= spin_end_ns(spin))
		spin_finish(spin, false);
	if (spin->look_every_ns)
		spin->look_ns = now + spin->look_every_ns;
	return false;
}
