/*
 * epoll over TSSX connections, without helper threads or signals.
 *
 * The kernel's epoll set keeps every real fd.  A TSSX connection is
 * registered there as EPOLLIN|EPOLLRDHUP|EPOLLET on its real socket, which carries only
 * doorbells (and EOF), under our tag instead of the application's data; its
 * events, data and edge-triggered / one-shot state live in events.h's
 * bookkeeping.  epoll_wait reports the connections that the rings say are
 * ready, merged with a zero-timeout real wait; when none is, it spins on
 * the rings for the spin budget (with zero-timeout real waits meanwhile when
 * the kernel's set holds other fds), then arms them all, re-checks, and
 * sleeps in the real wait, whose doorbells it drains and translates back.
 *
 * A Unix stream socket added before it connects may become a TSSX
 * connection later, and an epoll fd added to another may later hold
 * connections: both are "watched" (the kernel keeps the application's
 * events under our tag) and looked at again on every wait.  An epoll fd
 * that never held anything of ours costs epoll_wait one lookup.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utlist.h>

#include "config.h"
#include "conn/kept.h"
#include "conn/stream.h"
#include "conn/unseen.h"
#include "conn/wait.h"
#include "events/wrappers.h"
#include "real_slots.h"
#include "tssx/log.h"
#include "tssx/macros.h"


/* What the kernel accepts together with EPOLLEXCLUSIVE. */
#define EXCLUSIVE_OK (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

/* A set's counter, under its lock: no read-modify-write (events.h). */
static void stats_add(_Atomic uint64_t *counter, uint64_t n)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n, memory_order_relaxed);
}

static unsigned long long stats_of(_Atomic uint64_t *counter)
{
	return (unsigned long long)atomic_load_explicit(counter, memory_order_relaxed);
}

__attribute__((destructor)) static void epoll_stats_report(void)
{
	struct events_stats total = { 0 };
	uint64_t waits = 0;

	if (events_stats_total(&waits, &total) && waits)
		log_info("epoll: %llu waits, %llu looks at the rings of %llu entries in all; %llu went cold, "
			 "all made hot again %llu times; woken %llu times by an eventfd, %llu by a socket",
			 (unsigned long long)waits, stats_of(&total.looks), stats_of(&total.looked),
			 stats_of(&total.cooled), stats_of(&total.rescans), stats_of(&total.eventfd_reports),
			 stats_of(&total.socket_reports));
}

struct wait_call {
	int epfd;
	struct epoll_event *events;
	int maxevents;
	const sigset_t *sigmask;
	bool pwait2; /* nanosecond timeouts: sleep with epoll_pwait2 */
	bool recheck; /* a connection a doorbell may not wake (tssx_conn_arm()) */
	uint64_t id;  /* unique, for events_entry.reported_in; 0: a straight wait */
	struct tssx_deadline deadline;
};

/* Ids of tracked waits: a thread takes a block of 2^32 at its first
 * (and every 2^32nd) and numbers its calls in it, so that no shared
 * counter is written on the wait path. */
static _Atomic uint64_t wait_id_blocks;
static __thread __attribute__((tls_model("initial-exec"))) uint64_t wait_id_next;

/* The call's id, for a tracked wait: never 0, never another call's. */
static uint64_t wait_id(void)
{
	if (unlikely((uint32_t)wait_id_next == 0))
		wait_id_next = (atomic_fetch_add_explicit(&wait_id_blocks, 1, memory_order_relaxed) + 1) << 32;
	return wait_id_next++;
}

/* This thread, as pthread_self() names it (glibc: its thread pointer),
 * without a call into libc on every wait. */
static inline uintptr_t this_thread(void)
{
	return (uintptr_t)__builtin_thread_pointer();
}

static int real_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	return TSSX_REAL(epoll_ctl)(epfd, op, fd, event);
}

/* A connection's real socket: doorbells and the peer's close, edge-triggered.
 * EPOLLEXCLUSIVE does not go with EPOLLRDHUP. */
static uint32_t conn_kernel_events(uint32_t flags)
{
	return EPOLLIN | EPOLLET | (flags & EPOLLEXCLUSIVE ? 0 : EPOLLRDHUP);
}

static struct epoll_event kernel_event(const struct events_entry *entry, uint32_t flags)
{
	struct epoll_event event = { .data.u64 = events_tag(entry->fd) };

	event.events = entry->kind == EVENTS_CONN ? conn_kernel_events(flags) : entry->events;
	event.events |= flags;
	return event;
}

/*
 * The eventfd bell (docs/events.md): a connection's own eventfd, which
 * the peer writes instead of sending a byte on the socket, is added to
 * the kernel's set beside the socket, edge-triggered and never read,
 * under a tag of its own (events_bell_tag()): the bell the entry arms
 * with.  Where it cannot be, the socket's byte wakes the set as before:
 * no eventfd (an exec'd image, a peer at its fd limit), EPOLLEXCLUSIVE
 * (which wakes one waiter per event of each fd: two fds would wake two),
 * the eventfd in the set already under another fd of the connection.
 *
 * Added only by the set's own arming before it sleeps (may_add), once
 * the connection is ready: the eventfd is readable (its count is 1), so
 * the kernel reports it once as it is added, and that sleep takes the
 * report at once and drops it.  Added by an arming that does not sleep
 * on the set (a nested set armed through its parent or poll(), a silent
 * connection's arming), the report would wait in the set, and a poll()
 * of the epoll fd would find it readable with nothing to report; those
 * arm with the socket's bell until the set's own sleep added it.
 */
static uint32_t entry_bell(struct events_set *set, struct events_entry *entry, struct tssx_conn *conn, bool may_add)
{
	if (entry->bell == EVENTS_BELL_UNTRIED && may_add) {
		struct epoll_event event = { .events = EPOLLIN | EPOLLET, .data.u64 = events_bell_tag(entry->fd) };
		int fd = tssx_conn_own_bell(conn), saved_errno = errno;

		if (fd < 0 && !tssx_conn_is_ready(conn))
			return TSSX_BELL_SOCKET; /* the hello may bring one */
		entry->bell = EVENTS_BELL_SOCKET;
		if (fd >= 0 && !entry->kernel_flags && real_ctl(set->epfd, EPOLL_CTL_ADD, fd, &event) == 0) {
			entry->bell = EVENTS_BELL_EVENTFD;
			entry->bell_fd = fd;
		}
		errno = saved_errno;
	}
	return entry->bell == EVENTS_BELL_EVENTFD ? TSSX_BELL_EVENTFD : TSSX_BELL_SOCKET;
}

/*
 * The entry goes, or stops being this connection's: its eventfd leaves
 * the kernel's set.  The kernel would drop it only with the eventfd's
 * file, which the peer holds open, and a peer left holding it could wake
 * the set when the connection is long gone.  Not when the number no
 * longer names the connection's eventfd (the application dup2()ed onto
 * it, which moved it), nor for a connection shared with a fork: the set
 * may be the fork's too (inherited), whose entry relies on it; the
 * registration then goes with the file, when both ends closed it.
 */
static void entry_bell_drop(struct events_set *set, struct events_entry *entry)
{
	struct tssx_conn *conn = tssx_conn_lookup(entry->fd);
	int saved_errno = errno;

	if (entry->bell == EVENTS_BELL_EVENTFD && conn && tssx_conn_own_bell(conn) == entry->bell_fd &&
	    conn->born_forks == tssx_unseen_forks())
		real_ctl(set->epfd, EPOLL_CTL_DEL, entry->bell_fd, NULL);
	entry->bell = EVENTS_BELL_UNTRIED;
	errno = saved_errno;
}

/* An entry leaves the set, with its eventfd. */
static void entry_remove(struct events_set *set, struct events_entry *entry)
{
	entry_bell_drop(set, entry);
	events_set_remove(set, entry);
}

/* Entry's registration in the kernel replaced by event (EPOLLEXCLUSIVE
 * ones cannot be modified, only deleted and added again). */
static int reregister(struct events_set *set, const struct events_entry *entry, struct epoll_event event)
{
	if (!entry->kernel_flags)
		return real_ctl(set->epfd, EPOLL_CTL_MOD, entry->fd, &event);
	if (real_ctl(set->epfd, EPOLL_CTL_DEL, entry->fd, NULL) < 0)
		return -1;
	event.events |= entry->kernel_flags;
	return real_ctl(set->epfd, EPOLL_CTL_ADD, entry->fd, &event);
}

/* A watched fd's registration as the application made it, its events and
 * data, in place of ours. */
static int register_as_own(struct events_set *set, const struct events_entry *entry)
{
	struct epoll_event own = kernel_event(entry, 0);

	own.data = entry->data;
	return reregister(set, entry, own);
}

/* A connection appeared on a watched fd, or one went away: register what
 * the kernel must now watch for it. */
static void entry_reclassify(struct events_set *set, struct events_entry *entry, enum events_kind kind)
{
	entry_bell_drop(set, entry);
	events_entry_set_kind(set, entry, kind);
	events_entry_heat(set, entry);
	entry->reported = false;
	if (reregister(set, entry, kernel_event(entry, 0)) < 0)
		log_warn(0, "epoll %d: cannot re-register fd %d: %m", set->epfd, entry->fd);
}

/*
 * The application closes entry's fd.  A registration in the kernel
 * belongs to the open file, not to the fd: while a copy of the fd keeps
 * the file open, it stays in the set and reports, to a plain program
 * with the program's data.  A watched fd's registration holds the
 * application's events, level-triggered ones too; left under our tag,
 * with no entry to translate it, a ready one (an unconnected socket's
 * EPOLLOUT|EPOLLHUP) woke every wait only to be dropped, a busy loop
 * until the wait's timeout.  So it becomes the application's own
 * registration again; one the kernel disabled (EPOLLONESHOT reported)
 * reports nothing until an EPOLL_CTL_MOD that no open fd can name, and
 * is deleted.  A connection's registration stays ours: edge-triggered
 * doorbells, each dropped once (docs/events.md, "Closed while a copy
 * keeps the file").
 */
void events_entry_release(struct events_set *set, struct events_entry *entry)
{
	int saved_errno = errno, rc;

	entry_bell_drop(set, entry);
	if (entry->kind != EVENTS_WATCHED)
		return;
	rc = entry->disabled ? real_ctl(set->epfd, EPOLL_CTL_DEL, entry->fd, NULL) : register_as_own(set, entry);
	if (rc < 0)
		log_warn(0, "epoll %d: closing fd %d: its registration keeps our tag: %m", set->epfd, entry->fd);
	errno = saved_errno;
}

/*
 * A watched socket connected plain: it never becomes a connection.  Its
 * registration becomes the application's own now, and the entry goes: one
 * system call at the connect, where watching it cost a translation of
 * each of its reports and, at its close, two calls (the check for a
 * vfork() child, then this one): an event loop that adds each upstream
 * socket before its connect (nginx) paid them at every request.  A
 * report of our tag already queued is dropped as a closed fd's, and the
 * kernel reports the readiness again under the application's data (an
 * EPOLL_CTL_MOD polls the file anew, edge-triggered too).  A one-shot
 * entry the kernel disabled stays watched: re-registered, it would fire
 * again.
 */
static void settle_watched(struct events_set *set, struct events_entry *entry)
{
	if (entry->kind == EVENTS_WATCHED && !entry->disabled && register_as_own(set, entry) == 0)
		events_set_remove(set, entry);
}

void tssx_events_fd_settled(int fd)
{
	int saved_errno = errno;

	if (tssx_table_watchers(fd) > 0)
		events_each_entry_of(fd, settle_watched);
	errno = saved_errno;
}

/* The entry's connection, after making its kind match what the fd is now. */
static struct tssx_conn *entry_conn(struct events_set *set, struct events_entry *entry)
{
	struct tssx_conn *conn = tssx_conn_lookup(entry->fd);
	enum events_kind kind = conn ? EVENTS_CONN : EVENTS_WATCHED;

	/* A parked entry keeps its registration until it is added again. */
	if (entry->kind != kind && !entry->parked)
		entry_reclassify(set, entry, kind);
	return conn;
}

/* Readiness of one entry from the rings (or the nested set), and its
 * generation. */
static uint32_t entry_readiness(struct events_set *set, struct events_entry *entry,
				uint64_t *generation)
{
	struct tssx_conn *conn = entry_conn(set, entry);
	struct events_set *inner;

	*generation = 0;
	if (conn) {
		*generation = tssx_conn_generation(conn);
		return events_conn_ready(conn, entry->events);
	}
	inner = events_set_of(entry->fd);
	if (inner && atomic_load(&inner->count) > 0)
		return events_set_probe(inner, generation);
	return 0;
}

uint32_t events_set_probe(struct events_set *set, uint64_t *generation)
{
	struct events_entry *entry, *tmp;
	uint32_t ready = 0;

	*generation = 0;
	pthread_mutex_lock(&set->lock);
	HASH_ITER(hh, set->entries, entry, tmp) {
		uint64_t entry_generation;
		uint32_t entry_ready = entry_readiness(set, entry, &entry_generation);

		*generation += entry_generation;
		if (events_entry_peek(entry, entry_ready, entry_generation))
			ready = EPOLLIN;
	}
	pthread_mutex_unlock(&set->lock);
	return ready;
}

/*
 * The kick (docs/events.md, "Entries added while a thread sleeps"): one
 * eventfd of the process, never read, so readable from its start, added
 * edge-triggered under its own tag to a set the first time one is kicked,
 * which reports it once, and written at every later kick, which reports
 * it again.  A thread asleep in the set's kernel wait armed only the
 * connections it knew: one added, taken back or changed meanwhile rings
 * no doorbell it hears, and its bytes may be in the ring already.  The
 * kick wakes the thread, which drops the kick, looks at the entries and,
 * before it sleeps again, arms them all.  Kept in the fd table (kind
 * TSSX_FD_KICK): a close-all loop of the program leaves it, a dup2()
 * onto it moves it first (events_kick_renumber()).
 */
static struct tssx_fd_object kick_obj = { .kind = TSSX_FD_KICK };
static _Atomic int kick_fd = -1;
static pthread_once_t kick_once = PTHREAD_ONCE_INIT;

static void keep_kick_fd(int fd)
{
	tssx_kept_alias(fd, &kick_obj);
	atomic_store(&kick_fd, fd);
}

void events_kick_renumber(int old, int moved)
{
	/* The new number first; the sets' registrations belong to the
	 * file, not to the number, and go on reporting. */
	keep_kick_fd(moved);
	tssx_table_take(old);
}

static void kick_make(void)
{
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0) {
		log_warn(0, "epoll: no kick (%m): a connection added to a set while a thread sleeps there "
			    "is seen at that thread's next wait");
		return;
	}
	tssx_kept_lock();
	keep_kick_fd(tssx_kept_place(fd));
	tssx_kept_unlock();
}

/* Wakes one thread asleep in the set's kernel wait, if one may be there
 * (under the set's lock, after the entry's change). */
static void kick_sleepers(struct events_set *set)
{
	struct epoll_event event = { .events = EPOLLIN | EPOLLET, .data.u64 = EVENTS_KICK_TAG };
	uint64_t one = 1;
	int fd, saved_errno = errno;

	pthread_once(&kick_once, kick_make);
	fd = atomic_load(&kick_fd);
	if (fd >= 0 && !set->kicked) {
		/* Readable: added, it reports. */
		if (real_ctl(set->epfd, EPOLL_CTL_ADD, fd, &event) == 0)
			fd = -1;
		else if (errno != EEXIST)
			log_warn(0, "epoll %d: no kick (%m): a connection added while a thread sleeps there "
				    "is seen at that thread's next wait", set->epfd);
		/* EEXIST: the set of a fork that added it. */
		set->kicked = true;
	}
	if (fd >= 0)
		(void)!TSSX_REAL(write)(fd, &one, sizeof(one));
	errno = saved_errno;
}

/* A set's record of the threads that wait on it (events_set.waiters,
 * .nesters): none (0), one (its thread), or several.  A thread marks it
 * at its first wait, with a full barrier before the wait looks at the
 * set: a change after that look sees the mark (conn_entry_changed()). */
static __attribute__((noinline, cold)) void mark_thread_slow(_Atomic uintptr_t *threads, uintptr_t self)
{
	uintptr_t seen = 0;

	if (!atomic_compare_exchange_strong(threads, &seen, self) && seen != self)
		atomic_store(threads, EVENTS_WAITERS_MANY);
}

static inline void mark_thread(_Atomic uintptr_t *threads)
{
	uintptr_t seen = atomic_load_explicit(threads, memory_order_relaxed), self = this_thread();

	if (unlikely(seen != self && seen != EVENTS_WAITERS_MANY))
		mark_thread_slow(threads, self);
}

/* Whether a thread other than this one is in the record. */
static bool other_thread(_Atomic uintptr_t *threads)
{
	uintptr_t seen = atomic_load(threads);

	return seen && seen != this_thread();
}

/* An edge-triggered entry that waits for EPOLLOUT: owed room only after
 * a write found the ring full (docs/events.md, "Room only after a full
 * ring"). */
static bool edge_wants_room(const struct events_entry *entry)
{
	return (entry->events & (EPOLLOUT | EPOLLET)) == (EPOLLOUT | EPOLLET);
}

/* The events an entry arms its connection for: an edge-triggered one
 * leaves out EPOLLOUT while no room is owed to it (its connection's
 * writes never found the ring full, tssx_conn_room_unowed()), so that the
 * peer's reads ring no bell for room nobody waits for. */
static uint32_t armed_events(const struct events_entry *entry, struct tssx_conn *conn)
{
	if (edge_wants_room(entry) && tssx_conn_room_unowed(conn))
		return entry->events & ~(uint32_t)EPOLLOUT;
	return entry->events;
}

/*
 * A connection's entry was added, taken back or changed (under the lock)
 * while a thread may sleep in the set's kernel wait: that thread armed
 * only the entries it knew.  The entry is armed now (as a cold one is,
 * until its doorbell rings), so that the peer's next message wakes the
 * sleeper, and when it is ready already (or a doorbell may not come) the
 * sleeper is kicked.  A wait that began while the set tracked nothing went
 * straight to the kernel, uncounted: a connection that ends such a time
 * is treated so, unless no other thread than this one ever began a wait
 * on the set (a single-threaded event loop costs nothing here).
 */
static void conn_entry_changed(struct events_set *set, struct events_entry *entry, bool tracked_before)
{
	struct tssx_conn *conn;
	uint64_t generation;
	uint32_t ready;

	/* Seq_cst loads after the add's read-modify-write of the count (a
	 * full barrier): a wait that began later sees the entry. */
	if (!other_thread(&set->nesters) &&
	    (tracked_before ? !atomic_load(&set->sleepers) : !other_thread(&set->waiters)))
		return;
	conn = entry_conn(set, entry);
	if (!conn || entry->disabled || entry->parked)
		return;
	if (tssx_conn_arm(conn, armed_events(entry, conn), entry_bell(set, entry, conn, false), NULL) != TSSX_ARM_DOORBELL) {
		kick_sleepers(set);
		return;
	}
	ready = entry_readiness(set, entry, &generation);
	if (events_entry_peek(entry, ready, generation))
		kick_sleepers(set);
}

void events_set_nest(struct events_set *set)
{
	mark_thread(&set->nesters);
}

static void conn_appeared(struct events_set *set, struct events_entry *entry)
{
	conn_entry_changed(set, entry, true); /* entry_conn() makes it a connection's */
}

void tssx_events_conn_appeared(int fd)
{
	events_each_entry_of(fd, conn_appeared);
}

/* Heated first: a cold entry, armed without EPOLLOUT, is armed again by
 * the set's next wait (this thread's, in a single-threaded loop) or at
 * once when another thread sleeps there. */
static void room_owed(struct events_set *set, struct events_entry *entry)
{
	if (!edge_wants_room(entry))
		return;
	events_entry_heat(set, entry);
	conn_entry_changed(set, entry, true);
}

void tssx_events_room_owed(int fd)
{
	/* An fd no set watches takes no lock: a write of a blocking or
	 * poll()-driven program that filled the ring. */
	if (events_fd_is_tracked(fd))
		events_each_entry_of(fd, room_owed);
}

/* Arms the hot entries (a cold one is armed already); a connection that
 * will ring a doorbell may go cold once a look after this finds nothing
 * to report. */
static bool set_arm_locked(struct events_set *set, bool own_sleep)
{
	struct events_entry *entry, *tmp;
	bool recheck = false;

	DL_FOREACH_SAFE2(set->hot, entry, tmp, hot_next) {
		struct tssx_conn *conn = entry_conn(set, entry);
		struct events_set *inner;

		if (entry->disabled || entry->parked)
			continue;
		if (conn) {
			bool doorbell = tssx_conn_arm(conn, armed_events(entry, conn), entry_bell(set, entry, conn, own_sleep), NULL) ==
					TSSX_ARM_DOORBELL;

			recheck |= !doorbell;
			entry->may_cool = doorbell && tssx_unseen_may_cool(conn);
		} else if ((inner = events_set_of(entry->fd))) {
			/* This thread waits on the inner set too, before it
			 * looks at its count. */
			events_set_nest(inner);
			if (atomic_load(&inner->count) > 0)
				recheck |= events_set_arm(inner);
		}
	}
	return recheck;
}

bool events_set_arm(struct events_set *set)
{
	bool recheck;

	pthread_mutex_lock(&set->lock);
	recheck = set_arm_locked(set, false);
	pthread_mutex_unlock(&set->lock);
	return recheck;
}

/* The entry reported, or heated and is looked at for the first time. */
static void entry_active(struct events_set *set, struct events_entry *entry, uint64_t now)
{
	entry->active_ns = now;
	entry->active_wait = atomic_load_explicit(&set->waits, memory_order_relaxed);
}

/* The time of a look, read at its first need and kept for the rest of
 * it (*now 0: not read yet).  A look that reports nothing and cools
 * nothing reads no clock: most looks of a waiter that sleeps at every
 * wait (docs/events.md, "A sleeping wait's own work"). */
static uint64_t look_time(uint64_t *now)
{
	if (!*now)
		*now = tssx_now_ns();
	return *now;
}

/* Arms a connection silent for EVENTS_COLD_AFTER_NS and _WAITS, so that
 * its next look may let it go cold; true if it will ring a doorbell.  The
 * waits first: they need no clock. */
static bool arm_silent(struct events_set *set, struct events_entry *entry, uint64_t *now)
{
	struct tssx_conn *conn;

	if (!entry->active_ns)
		entry_active(set, entry, look_time(now));
	if (entry->kind != EVENTS_CONN ||
	    atomic_load_explicit(&set->waits, memory_order_relaxed) - entry->active_wait < EVENTS_COLD_AFTER_WAITS ||
	    look_time(now) - entry->active_ns < EVENTS_COLD_AFTER_NS ||
	    !(conn = tssx_conn_lookup(entry->fd)) || !tssx_unseen_may_cool(conn))
		return false;
	return tssx_conn_arm(conn, armed_events(entry, conn), entry_bell(set, entry, conn, false), NULL) == TSSX_ARM_DOORBELL;
}

/* Reports ready hot entries into events[0..max), each visited once,
 * reported ones moved behind the others for fairness.  An entry with
 * nothing to report goes cold when it may: armed, and looked at again
 * since (its doorbell will heat it), or unable to report before the
 * application's next epoll_ctl (one-shot fired, deleted).  *now: the
 * look's time (look_time()). */
static int collect_locked(struct events_set *set, struct epoll_event *events, int max, uint64_t *now,
			  uint64_t call_id)
{
	uint64_t unseen = tssx_unseen_changes();
	struct events_entry *entry, *next;
	unsigned int todo, looked = 0, cooled = 0;
	int count = 0;

	if (unseen != set->unseen_seen) {
		set->unseen_seen = unseen;
		events_set_heat_all(set);
		stats_add(&set->stats.rescans, 1);
	}
	todo = atomic_load_explicit(&set->hot_count, memory_order_relaxed);
	for (entry = set->hot; entry && todo > 0 && count < max; todo--, entry = next, looked++) {
		uint64_t generation;
		uint32_t ready;

		next = entry->hot_next;
		if (entry->reported_in == call_id)
			continue; /* a nested set the kernel reported in this call */
		ready = entry_readiness(set, entry, &generation);
		ready = events_entry_report(entry, ready, generation);
		if (ready) {
			entry->reported_in = call_id;
			events[count++] = (struct epoll_event){ .events = ready, .data = entry->data };
			events_set_rotate(set, entry);
			entry_active(set, entry, look_time(now));
		} else if (entry->may_cool || entry->disabled || entry->parked) {
			events_entry_cool(set, entry);
			cooled++;
		} else {
			entry->may_cool = arm_silent(set, entry, now);
		}
	}
	stats_add(&set->stats.looks, 1);
	stats_add(&set->stats.looked, looked);
	if (cooled)
		stats_add(&set->stats.cooled, cooled);
	return count;
}

/* What the rings say is ready, into events[offset..).  Before sleeping,
 * arm first, so that whatever happens from here on rings a doorbell (a
 * connection still waiting for its hello arms as the hello is taken).
 * *now: as in collect_locked(). */
static int collect(struct events_set *set, struct wait_call *call, int offset, bool arm, uint64_t *now)
{
	int count;

	pthread_mutex_lock(&set->lock);
	if (arm)
		call->recheck = set_arm_locked(set, true);
	count = collect_locked(set, call->events + offset, call->maxevents - offset, now, call->id);
	pthread_mutex_unlock(&set->lock);
	return count;
}

/* Doorbells whose report this set harvested: no other set of this process
 * needs them when it is the connection's only one (conn/unseen.h). */
static void drain_reported(struct tssx_conn *conn, const struct events_entry *entry, uint32_t events)
{
	tssx_unseen_by_sole_set = tssx_table_watchers(entry->fd) == 1;
	tssx_conn_drain(conn, events | (conn_kernel_events(entry->kernel_flags) & EPOLLRDHUP ? 0 : EPOLLRDHUP));
	tssx_unseen_by_sole_set = false;
}

/* A watched fd's result as the application registered it; a one-shot
 * one the kernel has now disabled (events_entry_release() must know). */
static struct epoll_event watched_result(struct events_entry *entry, uint32_t events)
{
	if (entry->events & EPOLLONESHOT)
		entry->disabled = true;
	return (struct epoll_event){ .events = events, .data = entry->data };
}

/* The index of the first result that carries one of our tags, or count:
 * the application's own entries before it pass as they are. */
static inline int first_tagged(const struct epoll_event *events, int count)
{
	int i = 0, fd;

	while (i < count && !events_untag(events[i].data.u64, &fd))
		i++;
	return i;
}

/* Real results from the first tagged one (kept) on back into the
 * application's terms: its own entries pass, doorbells are drained and
 * dropped (the rings tell on the next collect), watched fds get their
 * data back, once per call (call_id; 0: a straight wait). */
static int translate_from(struct events_set *set, struct epoll_event *events, int count, int kept,
			  uint64_t call_id)
{
	pthread_mutex_lock(&set->lock);
	for (int i = kept; i < count; i++) {
		struct events_entry *entry;
		struct tssx_conn *conn;
		int fd;

		if (!events_untag(events[i].data.u64, &fd)) {
			events[kept++] = events[i];
			continue;
		}
		if (events[i].data.u64 == EVENTS_KICK_TAG)
			continue; /* the rings tell what it was for */
		entry = events_set_find(set, fd);
		if (!entry)
			continue; /* a closed fd's last words */
		events_entry_heat(set, entry);
		/* The eventfd bell: nothing to drain, the rings tell. */
		if (events_tag_is_bell(events[i].data.u64)) {
			stats_add(&set->stats.eventfd_reports, 1);
			continue;
		}
		conn = entry_conn(set, entry);
		if (entry->parked && !conn)
			continue;
		if (conn) {
			stats_add(&set->stats.socket_reports, 1);
			drain_reported(conn, entry, events[i].events);
		} else if (!call_id || entry->reported_in != call_id) {
			entry->reported_in = call_id;
			events[kept++] = watched_result(entry, events[i].events);
		}
	}
	pthread_mutex_unlock(&set->lock);
	return kept;
}

/* All of them: without a tag among the results there is nothing to look
 * up, and no lock to take (an event loop whose clients all went plain). */
static int translate(struct events_set *set, struct wait_call *call, struct epoll_event *events, int count)
{
	int kept = first_tagged(events, count);

	return kept == count ? count : translate_from(set, events, count, kept, call->id);
}

static int real_wait(struct wait_call *call, struct epoll_event *events, int max, bool sleep)
{
	struct timespec left_buf = { 0 };
	struct tssx_deadline recheck;
	const struct timespec *left =
		sleep ? tssx_deadline_left(events_sleep_until(&call->deadline, call->recheck, &recheck), &left_buf)
		      : &left_buf;

	/* A handler ran while the call spun or looked: it ends the call, as
	 * it ends the kernel's epoll_wait (never restarted). */
	if (sleep && tssx_deadline_interrupted(&call->deadline)) {
		errno = EINTR;
		return -1;
	}

#ifdef HAVE_EPOLL_PWAIT2
	if (call->pwait2)
		return TSSX_REAL(epoll_pwait2)(call->epfd, events, max, left, call->sigmask);
#endif
	return TSSX_REAL(epoll_pwait)(call->epfd, events, max, tssx_timespec_to_ms(left), call->sigmask);
}

/* Adds the kernel's results, translated, to events[*count..); false when
 * its error is what the call returns.  *now: when the kernel answered,
 * for the look at the rings that follows. */
static bool add_kernel_results(struct events_set *set, struct wait_call *call, int *count, bool sleep,
			       uint64_t *now)
{
	int got;

	if (*count == call->maxevents)
		return true;
	got = real_wait(call, call->events + *count, call->maxevents - *count, sleep);
	*now = tssx_now_ns();
	/* Relaxed: a hint for how soon to look again, guarding nothing. */
	atomic_store_explicit(&set->looked_ns, *now, memory_order_relaxed);
	if (got < 0)
		return *count > 0;
	*count += translate(set, call, call->events + *count, got);
	return true;
}

/* When the kernel's fds are next due a look (EVENTS_LOOK_EVERY_NS after
 * the last). */
static uint64_t next_look_ns(struct events_set *set)
{
	return atomic_load_explicit(&set->looked_ns, memory_order_relaxed) + EVENTS_LOOK_EVERY_NS;
}

/* Without sleeping: the rings, and only when they have something and a
 * look is due, the kernel's fds for the slots left; after the rings filled
 * a whole call, the kernel first. */
static int poll_once(struct events_set *set, struct wait_call *call)
{
	bool kernel_first = atomic_exchange(&set->kernel_first, false);
	uint64_t now = 0;
	int count = kernel_first ? 0 : collect(set, call, 0, false, &now);
	bool look = kernel_first || (count > 0 && look_time(&now) >= next_look_ns(set));

	if (look && !add_kernel_results(set, call, &count, false, &now))
		return -1;
	if (kernel_first)
		count += collect(set, call, count, false, &now);
	if (count == call->maxevents)
		atomic_store(&set->kernel_first, !kernel_first);
	return count;
}

/* Waits in the kernel (or only looks), translates what woke it (doorbells
 * drained, EOF noticed) and asks the rings again at once.  The kernel's
 * wait also reports its own fds: *plain, how many of the results are the
 * program's own fds (translate() keeps only theirs). */
static int kernel_then_rings(struct events_set *set, struct wait_call *call, bool sleep, int *plain)
{
	uint64_t now = 0;

	*plain = 0;
	if (!add_kernel_results(set, call, plain, sleep, &now))
		return -1;
	return *plain + collect(set, call, *plain, false, &now);
}

/* Arms (when it may sleep) and re-checks, then waits in the kernel.  A
 * sleeper counts itself before its arming: an entry changed after the
 * arming's look kicks it (the set's lock orders the two). */
static int wait_once(struct events_set *set, struct wait_call *call, bool sleep)
{
	uint64_t now = 0;
	int count, plain;

	if (sleep)
		atomic_fetch_add(&set->sleepers, 1);
	count = collect(set, call, 0, sleep, &now);
	if (!count)
		count = kernel_then_rings(set, call, sleep, &plain);
	if (sleep)
		atomic_fetch_sub(&set->sleepers, 1);
	return count;
}

/*
 * Starts a spin of the set's wait: when its only hot entry is a
 * connection, as that connection's (events_spin_start()).  Under the
 * set's lock, as every look at its entries' connections.
 */
static bool spin_begin(struct events_set *set, struct tssx_spin *spin, uint64_t look_every_ns,
		       const struct tssx_deadline *deadline)
{
	struct tssx_conn *conn = NULL;
	bool started;

	/* Relaxed, without the lock: a set of several hot entries, the
	 * common case of a busy loop, takes no lock here. */
	if (atomic_load_explicit(&set->hot_count, memory_order_relaxed) != 1)
		return tssx_spin_start(spin, look_every_ns, deadline);
	pthread_mutex_lock(&set->lock);
	if (atomic_load_explicit(&set->hot_count, memory_order_relaxed) == 1 && set->hot)
		conn = tssx_conn_lookup(set->hot->fd);
	started = events_spin_start(spin, look_every_ns, deadline, conn);
	pthread_mutex_unlock(&set->lock);
	return started;
}

/* Before arming: spins on the rings for the spin budget, so that a peer
 * answering within it needs no doorbell; the kernel's other fds get a
 * zero-timeout look every EVENTS_LOOK_EVERY_NS meanwhile, the first when
 * one is due. */
static int spin(struct events_set *set, struct wait_call *call)
{
	struct tssx_spin spin;
	/* Cold connections are the kernel's to report, like plain fds. */
	bool kernel_fds = atomic_load(&set->kernel_fds) ||
			  atomic_load_explicit(&set->hot_count, memory_order_relaxed) < atomic_load(&set->count);
	int count = 0;

	if (!spin_begin(set, &spin, kernel_fds ? EVENTS_LOOK_EVERY_NS : 0, &call->deadline))
		return 0;
	if (kernel_fds)
		tssx_spin_look_at(&spin, next_look_ns(set));
	while (!count) {
		uint64_t now = 0;
		int plain;

		while (!(count = collect(set, call, 0, false, &now)) && tssx_spin_pause(&spin))
			now = 0;
		if (count || spin.over)
			break;
		count = kernel_then_rings(set, call, false, &plain);
		if (plain && count == plain) {
			tssx_spin_stop_plain(&spin);
			return count;
		}
	}
	tssx_spin_stop(&spin);
	return count;
}

/*
 * A set that tracks nothing (its connections closed: an event loop whose
 * clients all went plain, preload.md "Short-lived connections") has
 * nothing to collect, arm or spin on: the kernel's wait alone answers,
 * translated, as the general path would after locking the set three
 * times to find it empty.  *done false: something is tracked again and
 * the general path is to go on (a doorbell of a connection added
 * meanwhile woke the wait; translate() dropped it for the rings).
 */
static int wait_kernel_only(struct events_set *set, struct wait_call *call, bool *done)
{
	*done = true;
	for (;;) {
		/* The first wait is for the whole timeout (a zero one only
		 * looks); set->looked_ns is left alone: it paces the looks of
		 * a set with rings, which this one has none of. */
		int got = real_wait(call, call->events, call->maxevents, true);

		if (got < 0)
			return -1;
		got = translate(set, call, call->events, got);
		if (got || tssx_deadline_passed(&call->deadline))
			return got;
		/* Relaxed: a hint; the general path locks the set. */
		if (atomic_load_explicit(&set->count, memory_order_relaxed)) {
			*done = false;
			return 0;
		}
	}
}

static int wait_tracked(struct events_set *set, struct wait_call *call)
{
	int saved_errno = errno;
	bool done = false;
	int count = 0;

	/* Relaxed: as above. */
	if (!atomic_load_explicit(&set->count, memory_order_relaxed))
		count = wait_kernel_only(set, call, &done);
	if (done) {
		if (count >= 0)
			errno = saved_errno;
		return count;
	}
	/* Without the lock: a count for a heuristic and the statistics,
	 * which may miss one of two concurrent waits. */
	stats_add(&set->waits, 1);
	count = poll_once(set, call);
	if (count == 0 && atomic_load_explicit(&set->ring_entries, memory_order_relaxed))
		count = spin(set, call);
	while (count == 0) {
		bool passed = tssx_deadline_passed(&call->deadline);

		count = wait_once(set, call, !passed);
		if (passed)
			break;
	}
	if (count >= 0)
		errno = saved_errno;
	return count;
}

/* Whether a wait on set must look at its entries; otherwise it goes
 * straight to the kernel (an epoll fd we never saw, or whose set tracks
 * nothing now: an event loop whose connections all went plain). */
static inline bool tracks(struct events_set *set, int maxevents)
{
	if (!set)
		return false;
	mark_thread(&set->waiters);
	/* Relaxed: a connection added after this look arms itself or kicks
	 * the straight wait, whose tag then brings it to the tracked one. */
	return maxevents > 0 && atomic_load_explicit(&set->count, memory_order_relaxed);
}

/*
 * The kernel's answer to a straight wait, with the application's own
 * timeout and nothing else (no deadline, no look at the set).  Once the
 * set was ever given a tag, the results may hold one: a connection added
 * meanwhile (its kick, its doorbell) or a closed connection whose file a
 * dup kept.  Translated in *got; false when every result was ours: the
 * call goes on as a tracked wait whose timeout starts anew (a wait that
 * began before the set's first connection may so last up to twice its
 * timeout, once).
 */
static inline bool straight_answered(struct events_set *set, struct epoll_event *events, int *got)
{
	int saved_errno, kept;

	/* Acquire pairs with the store before the tag's registration
	 * (ctl_add()), through the kernel's lock on its set. */
	if (likely(*got <= 0 || !set || !atomic_load_explicit(&set->tagged, memory_order_acquire)))
		return true;
	kept = first_tagged(events, *got);
	if (likely(kept == *got))
		return true;
	saved_errno = errno;
	*got = translate_from(set, events, *got, kept, 0);
	errno = saved_errno;
	return *got > 0;
}

/* epoll_wait and epoll_pwait (sigmask NULL for the first) as a tracked
 * wait; out of line, so that the straight path keeps a small frame. */
static __attribute__((noinline)) int wait_ms(struct events_set *set, int epfd, struct epoll_event *events,
					     int maxevents, int timeout, const sigset_t *sigmask)
{
	struct wait_call call = { .epfd = epfd, .events = events, .maxevents = maxevents, .sigmask = sigmask,
				  .id = wait_id() };

	tssx_deadline_start_ms(&call.deadline, timeout);
	return wait_tracked(set, &call);
}

TSSX_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	struct events_set *set = events_set_of(epfd);

	if (likely(!tracks(set, maxevents))) {
		int got = TSSX_REAL(epoll_wait)(epfd, events, maxevents, timeout);

		if (likely(straight_answered(set, events, &got)))
			return got;
	}
	return wait_ms(set, epfd, events, maxevents, timeout, NULL);
}

TSSX_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
			    const sigset_t *sigmask)
{
	struct events_set *set = events_set_of(epfd);

	if (likely(!tracks(set, maxevents))) {
		int got = TSSX_REAL(epoll_pwait)(epfd, events, maxevents, timeout, sigmask);

		if (likely(straight_answered(set, events, &got)))
			return got;
	}
	return wait_ms(set, epfd, events, maxevents, timeout, sigmask);
}

#ifdef HAVE_EPOLL_PWAIT2
/* epoll_pwait2 as a tracked wait, as wait_ms(). */
static __attribute__((noinline)) int wait_timespec(struct events_set *set, int epfd, struct epoll_event *events,
						   int maxevents, const struct timespec *timeout,
						   const sigset_t *sigmask)
{
	struct wait_call call = { .epfd = epfd, .events = events, .maxevents = maxevents, .sigmask = sigmask,
				  .pwait2 = true, .id = wait_id() };

	tssx_deadline_start(&call.deadline, timeout);
	return wait_tracked(set, &call);
}

TSSX_EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
			     const struct timespec *timeout, const sigset_t *sigmask)
{
	struct events_set *set = events_set_of(epfd);

	if (likely(!tracks(set, maxevents)) || !tssx_timespec_valid(timeout)) {
		int got = TSSX_REAL(epoll_pwait2)(epfd, events, maxevents, timeout, sigmask);

		if (likely(straight_answered(set, events, &got)))
			return got;
	}
	return wait_timespec(set, epfd, events, maxevents, timeout, sigmask);
}
#endif

/* Made here so that an epoll fd added to another is recognised. */
static int epoll_fd_made(int epfd)
{
	int saved_errno = errno;

	if (epfd >= 0 && !events_set_open(epfd))
		log_warn(0, "epoll %d: no bookkeeping (%m): TSSX connections in it will not be seen", epfd);
	errno = saved_errno;
	return epfd;
}

TSSX_EXPORT int epoll_create(int size)
{
	return epoll_fd_made(TSSX_REAL(epoll_create)(size));
}

TSSX_EXPORT int epoll_create1(int flags)
{
	return epoll_fd_made(TSSX_REAL(epoll_create1)(flags));
}

static int socket_option(int fd, int option)
{
	int value = -1;
	socklen_t len = sizeof(value);

	return getsockopt(fd, SOL_SOCKET, option, &value, &len) < 0 ? -1 : value;
}

/* Whether fd, which getpeername() found unconnected, may still connect
 * over TSSX; *settled when the answer holds for as long as the number
 * does (another family or type, a listener). */
static bool unconnected_may_become_conn(int fd, bool *settled)
{
	int domain = socket_option(fd, SO_DOMAIN), type, accepting;

	if (domain != AF_UNIX) {
		*settled = domain >= 0;
		return false;
	}
	type = socket_option(fd, SO_TYPE);
	if (type != SOCK_STREAM) {
		*settled = type >= 0;
		return false;
	}
	accepting = socket_option(fd, SO_ACCEPTCONN);
	*settled = accepting == 1;
	return accepting == 0;
}

/* An unconnected, non-listening Unix stream socket may connect over TSSX
 * after being added; any other fd that is no connection now never will. */
static bool may_become_conn(int fd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int saved_errno = errno;
	bool maybe = false, settled = false;

	/* A socket this process accepted or connected plain (a server's
	 * clients, a proxy's upstream connections), or an fd asked about
	 * before (a pipe, an eventfd added again): no question. */
	if (tssx_fd_hints(fd) & (TSSX_HINT_CONNECTED | TSSX_HINT_NEVER_CONN))
		return false;
	/* A Unix stream socket this process made and did not connect:
	 * unless it listens, it may (an event loop's upstream socket, added
	 * before its connect()).  A socket connected or listening around the
	 * library is watched for nothing, as one that never connects. */
	if (tssx_fd_hinted(fd, TSSX_HINT_UNIX_STREAM))
		return !tssx_fd_hinted(fd, TSSX_HINT_LISTENING);
	/* getpeername() first: it settles the common cases (a connected
	 * socket, an fd that is no socket) in one system call.  A settled
	 * answer is kept as a hint, which socket(), accept(), dup() and
	 * close() of the number reset (conn/fd_table.h). */
	if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0 || errno == ENOTSOCK)
		settled = true;
	else if (errno == ENOTCONN)
		maybe = unconnected_may_become_conn(fd, &settled);
	if (settled)
		tssx_fd_hint_add(fd, TSSX_HINT_NEVER_CONN);
	errno = saved_errno;
	return maybe;
}

static bool should_track(int fd)
{
	return tssx_conn_lookup(fd) || events_set_of(fd) || may_become_conn(fd);
}

static int ctl_add(struct events_set *set, int fd, struct epoll_event *event)
{
	enum events_kind kind = tssx_conn_lookup(fd) ? EVENTS_CONN : EVENTS_WATCHED;
	struct events_entry probe = { .fd = fd, .kind = kind, .events = event->events };
	struct epoll_event kernel = kernel_event(&probe, event->events & EPOLLEXCLUSIVE);
	bool tracked_before = atomic_load(&set->count) > 0;
	struct events_entry *stale;
	int rc;

	if ((event->events & EPOLLEXCLUSIVE) && (event->events & ~EXCLUSIVE_OK)) {
		errno = EINVAL;
		return -1;
	}
	/* Before the kernel has the tag: a wait that gets it sees the flag
	 * (the kernel's lock on its set orders the two).  Once per set. */
	if (!atomic_load_explicit(&set->tagged, memory_order_relaxed))
		atomic_store(&set->tagged, true);
	if (real_ctl(set->epfd, EPOLL_CTL_ADD, fd, &kernel) < 0)
		return -1;
	stale = events_set_find(set, fd);
	if (stale)
		entry_remove(set, stale);
	rc = events_set_add(set, fd, kind, event);
	if (rc < 0) {
		real_ctl(set->epfd, EPOLL_CTL_DEL, fd, NULL);
		errno = -rc;
		return -1;
	}
	if (kind == EVENTS_CONN)
		conn_entry_changed(set, events_set_find(set, fd), tracked_before);
	return 0;
}

/* A connection's registration with the kernel is the same whatever the
 * application asks for (conn_kernel_events()), unless EPOLLEXCLUSIVE is in
 * play: then its changes need no system call. */
static bool kernel_keeps(const struct events_entry *entry, const struct epoll_event *event)
{
	return entry->kind == EVENTS_CONN && !entry->kernel_flags && !(event->events & EPOLLEXCLUSIVE);
}

static int ctl_mod(struct events_set *set, struct events_entry *entry, struct epoll_event *event)
{
	struct events_entry probe = { .fd = entry->fd, .kind = entry->kind, .events = event->events };
	struct epoll_event kernel = kernel_event(&probe, event->events & EPOLLEXCLUSIVE);

	if (!kernel_keeps(entry, event) && real_ctl(set->epfd, EPOLL_CTL_MOD, entry->fd, &kernel) < 0)
		return -1;
	events_entry_modify(entry, event);
	events_entry_heat(set, entry); /* to be armed for its new events */
	conn_entry_changed(set, entry, true);
	return 0;
}

/* EPOLL_CTL_DEL: a connection's entry is parked, anything else goes. */
static int ctl_del(struct events_set *set, struct events_entry *entry)
{
	struct tssx_conn *conn = entry_conn(set, entry);
	int rc;

	if (conn && !entry->kernel_flags) { /* entry_conn() made it EVENTS_CONN */
		events_entry_park(entry, conn);
		return 0;
	}
	rc = real_ctl(set->epfd, EPOLL_CTL_DEL, entry->fd, NULL);
	entry_remove(set, entry); /* whatever the kernel says: it is gone */
	return rc;
}

/* EPOLL_CTL_ADD over a parked entry: taken back without a system call
 * when the fd is still the connection it was parked with; otherwise (the
 * fd became another file, EPOLLEXCLUSIVE) registered anew. */
static int ctl_add_parked(struct events_set *set, struct events_entry *entry, struct epoll_event *event)
{
	int fd = entry->fd;

	if (kernel_keeps(entry, event) && tssx_conn_lookup(fd) == entry->parked_with) {
		events_entry_unpark(entry, event);
		events_entry_heat(set, entry);
		conn_entry_changed(set, entry, true);
		return 0;
	}
	real_ctl(set->epfd, EPOLL_CTL_DEL, fd, NULL); /* ENOENT: that file is gone */
	entry_remove(set, entry);
	return ctl_add(set, fd, event);
}

static int ctl_tracked(struct events_set *set, int op, int fd, struct epoll_event *event)
{
	struct events_entry *entry;
	int rc;

	if (op != EPOLL_CTL_DEL && !event) {
		errno = EFAULT;
		return -1;
	}
	pthread_mutex_lock(&set->lock);
	entry = events_set_find(set, fd);
	if (entry && entry->parked && op != EPOLL_CTL_ADD) {
		errno = ENOENT; /* as far as the application knows, it is gone */
		rc = -1;
	} else if (op == EPOLL_CTL_ADD) {
		rc = entry && entry->parked ? ctl_add_parked(set, entry, event) : ctl_add(set, fd, event);
	} else if (op == EPOLL_CTL_MOD && entry) {
		rc = ctl_mod(set, entry, event);
	} else if (op == EPOLL_CTL_DEL && entry) {
		rc = ctl_del(set, entry);
	} else {
		rc = real_ctl(set->epfd, op, fd, event);
	}
	pthread_mutex_unlock(&set->lock);
	return rc;
}

TSSX_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct events_set *set = events_set_of(epfd);

	if (op == EPOLL_CTL_ADD && should_track(fd)) {
		if (!set && (set = events_set_open(epfd)))
			atomic_store(&set->kernel_fds, true); /* made elsewhere: may hold anything */
		if (!set)
			return log_warn(real_ctl(epfd, op, fd, event),
					"epoll %d: no bookkeeping (%m): fd %d stays plain", epfd, fd);
	} else if (!set || !events_fd_is_tracked(fd)) {
		if (set && op == EPOLL_CTL_ADD)
			atomic_store_explicit(&set->kernel_fds, true, memory_order_relaxed);
		return real_ctl(epfd, op, fd, event);
	}
	return ctl_tracked(set, op, fd, event);
}
