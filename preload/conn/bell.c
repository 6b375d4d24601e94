/* The futex bell and its watcher (bell.h, docs/wait.md "The futex bell"). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conn/ancillary.h"
#include "conn/bell.h"
#include "conn/fd_table.h"
#include "conn/kept.h"
#include "conn/wait.h"
#include "init.h"
#include "real_slots.h"
#include "tssx/log.h"
#include "tssx/macros.h"
#include "tssx/thread_gone.h"

/* Events the watcher takes at once. */
#define WATCH_BATCH 16

/* ---- The futex ----
 *
 * Its calls go to libc's syscall(), not through the library's own wrapper
 * of it (shims/fd.c), which unpacks six variadic arguments and switches on
 * the number for the fd calls it must see: about 45 instructions at every
 * wake and every sleep that a futex never needs. */

/* Wakes every sleeper on word: op is FUTEX_WAKE for a word of the
 * segment, which the peer's process shares, FUTEX_WAKE_PRIVATE for one in
 * this process's memory. */
static void futex_wake(_Atomic uint32_t *word, int op)
{
	TSSX_REAL(syscall)(SYS_futex, word, op, INT_MAX, NULL, NULL, 0);
}

/* Whether this kernel waits on two words at once (FUTEX_WAITV, Linux
 * 5.16), asked once: a call with no word at all fails with EINVAL where
 * it exists, ENOSYS before, EPERM under a seccomp filter that forbids it. */
static bool waitv_works(void)
{
	static _Atomic int known; /* 0: not asked yet, 1: works, -1: not */
	int k = atomic_load_explicit(&known, memory_order_relaxed);

	if (!k) {
		int saved_errno = errno;

		k = TSSX_REAL(syscall)(SYS_futex_waitv, NULL, 0, 0, NULL, 0) < 0 && errno == EINVAL ? 1 : -1;
		errno = saved_errno;
		if (k < 0)
			tssx_log(TSSX_LOG_INFO, "futex bell: no FUTEX_WAITV: sleeps take the socket");
		atomic_store_explicit(&known, k, memory_order_relaxed);
	}
	return k > 0;
}

bool tssx_bell_may_sleep(void)
{
	return waitv_works();
}

int tssx_bell_sleep(_Atomic uint32_t *word, uint32_t seen, struct tssx_conn *conn, uint32_t own_seen,
		    const struct tssx_deadline *deadline)
{
	/* The ring's word shared (the peer's process wakes it), this
	 * process's own private, and the count of the thread's handled
	 * signals (conn/interrupt.h): a wake of the first two ends the
	 * sleep, and a change of any since its look makes it return at
	 * once.  A handler restarts the sleep under SA_RESTART (fails it
	 * with EINTR without, whatever the timeout), and the restart finds
	 * the count moved: the caller decides as for a handler in its spin. */
	struct futex_waitv words[3] = {
		{ .val = seen, .uaddr = (uintptr_t)word, .flags = FUTEX_32 },
		{ .val = own_seen, .uaddr = (uintptr_t)&conn->own_bell, .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG },
		{ .val = deadline->interrupts,
		  .uaddr = (uintptr_t)&tssx_interrupts.handled,
		  .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG },
	};
	/* Absolute, on CLOCK_MONOTONIC as the deadline (TSSX_FOREVER is
	 * later than any bound). */
	uint64_t bound = tssx_now_ns() + TSSX_BELL_RECHECK_NS;
	bool bounded = deadline->at_ns > bound;
	uint64_t until = bounded ? bound : deadline->at_ns;
	struct timespec at = { (time_t)(until / TSSX_NSEC_PER_SEC), (long)(until % TSSX_NSEC_PER_SEC) };

	if (TSSX_REAL(syscall)(SYS_futex_waitv, words, 3, 0, &at, CLOCK_MONOTONIC) >= 0)
		return 0;
	if (errno == ETIMEDOUT)
		return bounded ? TSSX_BELL_RECHECKED : -EAGAIN;
	if (errno == EINTR)
		return -EINTR;
	/* A word moved (EAGAIN), or nothing expected: a re-check is never
	 * wrong. */
	return 0;
}

void tssx_bell_ring(_Atomic uint32_t *word)
{
	/* Seq_cst: after the flag the waker took, or the state it set for
	 * the sleeper to find (bell.h, tssx_bell_seen()). */
	atomic_fetch_add(word, 1);
	futex_wake(word, FUTEX_WAKE);
}

void tssx_bell_wake_own(struct tssx_conn *conn)
{
	/* This process's sleepers, whatever the peer writes to the rings'
	 * words: seq_cst, after what the waker set for them to find. */
	atomic_fetch_add(&conn->own_bell, 1);
	futex_wake(&conn->own_bell, FUTEX_WAKE_PRIVATE);
	/* A fork()ed child's, which share the rings but not this memory. */
	tssx_bell_ring(tssx_ring_reader_bell(conn->rx));
	tssx_bell_ring(tssx_ring_writer_bell(conn->tx));
}

/* ---- The watcher ---- */

/*
 * The watcher of this process.  Its lock orders everything: a connection
 * is watched (its bell_fd, bell_tag, bell_epoch) and forgotten under it,
 * and the watcher touches a connection only under it and only while the
 * registration an event carries is the connection's current one; the
 * connection ends only after tssx_bell_forget(), so it is alive and its
 * segment mapped whenever the watcher touches it.
 */
static struct {
	pthread_mutex_t lock;
	/* -1: none (yet, or since a fork).  Kept in the fd table (kind
	 * TSSX_FD_WATCHER, watch_obj): a close-all loop of the program leaves
	 * it open, a dup2() onto it moves it (tssx_bell_move_watcher). */
	int epoll_fd;
	bool running;		/* the thread, on epoll_fd */
	unsigned stops;		/* tssx_bell_pause()s: no thread until as many resumes */
	pthread_t thread;
	_Atomic pid_t tid;	/* the thread's, once it runs */
	int leave_fd;		/* -1, or the eventfd that wakes the thread to leave */
	uint16_t next_tag;
	/* Changes in a fork() child: the parent's registrations (bell_fd
	 * with another epoch) are not the child's, and the child has no
	 * watcher until its first futex sleep.  Atomic: read without the
	 * lock by a sleeper's look (tssx_bell_watch). */
	_Atomic uint32_t epoch;
} watcher TSSX_FORK_DATA = { .lock = PTHREAD_MUTEX_INITIALIZER, .epoll_fd = -1, .leave_fd = -1 };

/* The table's object for the watcher's epoll fd (fd_table.h). */
static struct tssx_fd_object watch_obj = { .kind = TSSX_FD_WATCHER };

/* Under the lock: the watcher's epoll fd is fd, kept from the program's
 * closes (without a slot, beyond the table or out of memory, a close-all
 * loop may take it: the watcher then stops, below). */
static void keep_epoll_fd(int fd)
{
	watcher.epoll_fd = fd;
	tssx_kept_alias(fd, &watch_obj);
}

/* Under the lock: the epoll fd goes (closed when close_it), and with it
 * every registration: the next futex sleeps make new ones. */
static void drop_epoll_fd(bool close_it)
{
	int fd = watcher.epoll_fd;

	if (fd < 0)
		return;
	if (tssx_table_get(fd) == &watch_obj)
		tssx_table_take(fd);
	if (close_it)
		TSSX_REAL(close)(fd);
	watcher.epoll_fd = -1;
	atomic_fetch_add(&watcher.epoch, 1);
}

/* Under the lock: the eventfd that woke the thread to leave (tssx_bell_pause()) goes, and its
 * registration with it. */
static void drop_leave_fd(void)
{
	if (watcher.leave_fd >= 0)
		TSSX_REAL(close)(watcher.leave_fd);
	watcher.leave_fd = -1;
}

/* Whether conn's socket is watched in this process.  Seq_cst: a sleeper
 * asks after it loaded its bell word, and tssx_bell_unwatch() rings the
 * bell after it changed the answer (bell.h, tssx_bell_seen()). */
static bool watched(struct tssx_conn *conn)
{
	return atomic_load(&conn->bell_fd) >= 0 && atomic_load(&conn->bell_epoch) == atomic_load(&watcher.epoch);
}

/* The socket hung up: the peer closed it (its last holder) or died, shut
 * it down, or failed the connection.  As a sleeper in recv() notes its
 * EOF (conn/stream.c): the peer closed, unless this side shut its reading
 * down, which the kernel reports alike. */
static void hung_up(struct tssx_conn *conn, uint32_t events)
{
	if ((events & (EPOLLHUP | EPOLLERR)) || !tssx_ring_read_shut(conn->rx))
		atomic_store(&conn->peer_closed, true);
	tssx_bell_wake_own(conn);
}

/* Under the lock: what an event of a current registration says. */
static void take_event(struct tssx_conn *conn, uint32_t events)
{
	/* Bytes came: doorbells for this process's event-loop waiters, a
	 * record of control data (its reader takes it), or bytes written
	 * around the library, which a sleeper in recv() would have found
	 * and failed the connection for, before it saw the hang-up behind
	 * them. */
	if (events & EPOLLIN)
		tssx_ancillary_check_bypass(conn, atomic_load(&conn->bell_fd));
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		hung_up(conn, events);
	else if (atomic_load(&conn->state) == TSSX_CONN_FAILED)
		tssx_bell_wake_own(conn);
}

static void *watcher_main(void *arg)
{
	int epoll_fd = (int)(intptr_t)arg;
	struct epoll_event events[WATCH_BATCH];

	atomic_store(&watcher.tid, gettid());
	for (;;) {
		int n = TSSX_REAL(epoll_wait)(epoll_fd, events, WATCH_BATCH, -1), error = errno;
		bool leave;

		pthread_mutex_lock(&watcher.lock);
		/* The set moved up with the library's kept fds
		 * (tssx_bell_renumber_watcher): the same set under another
		 * number; the old one may be closed already (EBADF). */
		if (watcher.epoll_fd >= 0 && watcher.epoll_fd != epoll_fd) {
			epoll_fd = watcher.epoll_fd;
			n = n < 0 ? 0 : n;
		}
		if (n < 0 && error != EINTR) {
			pthread_mutex_unlock(&watcher.lock);
			errno = error;
			break;
		}
		for (int i = 0; i < n; i++) {
			uint16_t tag;
			struct tssx_conn *conn = tssx_bell_unpack(events[i].data.u64, &tag);

			/* No connection: tssx_bell_pause()'s wake-up. */
			if (conn && watched(conn) && conn->bell_tag == tag)
				take_event(conn, events[i].events);
		}
		/* tssx_bell_pause() took the thread over, and joins it: it
		 * leaves with the events it took handled (edges the set will
		 * not report again). */
		leave = !watcher.running;
		pthread_mutex_unlock(&watcher.lock);
		if (leave)
			return NULL;
	}
	/* The fd is no epoll set any more: the number was closed around the
	 * library (a raw system call), or it had no slot in the table.  Every
	 * registration goes with it, and the next sleeps make new ones.
	 * Sleepers of now may sleep past the peer's death. */
	tssx_log(TSSX_LOG_WARN, "futex bell: the watcher stopped: %m");
	pthread_mutex_lock(&watcher.lock);
	/* Not when tssx_bell_pause() took it over (running is false): that
	 * one joins it. */
	if (watcher.running && watcher.epoll_fd == epoll_fd) {
		drop_epoll_fd(false);
		watcher.running = false;
		pthread_detach(pthread_self());
	}
	pthread_mutex_unlock(&watcher.lock);
	return NULL;
}

static void lock_for_fork(void)
{
	pthread_mutex_lock(&watcher.lock);
}

TSSX_FORK_HANDLER static void unlock_after_fork(void)
{
	pthread_mutex_unlock(&watcher.lock);
}

/* The child has the parent's epoll fd (the same set: never change it
 * here) and no watcher thread. */
TSSX_FORK_HANDLER static void child_after_fork(void)
{
	drop_epoll_fd(true);
	drop_leave_fd();
	watcher.running = false;
	watcher.stops = 0;
	atomic_store(&watcher.tid, 0);
	pthread_mutex_unlock(&watcher.lock);
}

static void register_fork_handlers(void)
{
	pthread_atfork(lock_for_fork, unlock_after_fork, child_after_fork);
}

/* Under the lock: the thread, with every signal blocked (a signal is the
 * program's, and a thread asleep in epoll_wait() must not take it from
 * the thread it is for). */
static bool thread_start(void)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int r;

	pthread_attr_init(&attr);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits it */
	r = pthread_create(&watcher.thread, &attr, watcher_main, (void *)(intptr_t)watcher.epoll_fd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		tssx_log(TSSX_LOG_WARN, "futex bell: no watcher thread (%s): sleeps take the socket", strerror(r));
		return false;
	}
	watcher.running = true;
	return true;
}

/* Under the lock: the watcher of this process, started at its first
 * futex sleep. */
static bool watcher_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (watcher.running)
		return true;
	if (watcher.stops)
		return false;
	pthread_once(&once, register_fork_handlers);
	if (watcher.epoll_fd < 0) {
		keep_epoll_fd(tssx_kept_place(TSSX_REAL(epoll_create1)(EPOLL_CLOEXEC)));
		if (watcher.epoll_fd < 0) {
			tssx_log(TSSX_LOG_WARN, "futex bell: no epoll fd (%m): sleeps take the socket");
			return false;
		}
	}
	return thread_start();
}

/* Under the lock, the thread running: an eventfd, ready, added to its set
 * (the registration tagged 0, no connection), which wakes it to find
 * running false; 0, or -errno. */
static int wake_to_leave(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (TSSX_REAL(epoll_ctl)(watcher.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int error = errno;

		TSSX_REAL(close)(fd);
		return -error;
	}
	watcher.leave_fd = fd;
	return 0;
}

/*
 * The thread leaves by itself, woken through its set, never cancelled: a
 * cancelled thread unwinds past its instrumented frames, whose shadow
 * AddressSanitizer then finds poisoned at the thread's exit and reports
 * (a stack-buffer-overflow in sigaltstack, tssx-probe bellpause;
 * google/sanitizers#1399).  Its registrations stay in the set, and events
 * that come meanwhile wait there for the thread of tssx_bell_resume().
 */
int tssx_bell_pause(void)
{
	bool running;
	int woken = 0;

	pthread_mutex_lock(&watcher.lock);
	watcher.stops++;
	running = watcher.running;
	if (running) {
		woken = wake_to_leave();
		watcher.running = woken < 0;
	}
	pthread_mutex_unlock(&watcher.lock);
	if (!running)
		return 0;
	if (woken < 0) {
		/* Out of fds, or the set closed around the library: the
		 * thread runs on (a setns() that needs one thread fails). */
		tssx_log(TSSX_LOG_WARN, "futex bell: the watcher cannot be stopped: %s", strerror(-woken));
		return woken;
	}
	pthread_join(watcher.thread, NULL);
	/* The eventfd only now: closed before the thread woke, it would
	 * have taken the wake-up along. */
	pthread_mutex_lock(&watcher.lock);
	drop_leave_fd();
	pthread_mutex_unlock(&watcher.lock);
	return tssx_thread_gone(atomic_exchange(&watcher.tid, 0), tssx_now_ns() + TSSX_NSEC_PER_SEC);
}

void tssx_bell_resume(void)
{
	pthread_mutex_lock(&watcher.lock);
	if (watcher.stops)
		watcher.stops--;
	if (!watcher.stops && watcher.epoll_fd >= 0 && !watcher.running)
		thread_start();
	pthread_mutex_unlock(&watcher.lock);
}

void tssx_bell_move_watcher(int old)
{
	/* The thread leaves first: it must never wait on the number once
	 * the program's dup2() gave it to another file (an epoll set of the
	 * program's, whose events it would take). */
	tssx_bell_pause();
	pthread_mutex_lock(&watcher.lock);
	if (watcher.epoll_fd == old) {
		int moved = tssx_kept_copy(old);

		/* The set is the same file under the new number, its
		 * registrations too; without a copy they go with the number. */
		tssx_table_take(old);
		if (moved >= 0)
			keep_epoll_fd(moved);
		else
			drop_epoll_fd(false);
	}
	pthread_mutex_unlock(&watcher.lock);
	tssx_bell_resume();
}

bool tssx_bell_renumber_watcher(int old, int moved)
{
	bool its;

	pthread_mutex_lock(&watcher.lock);
	its = watcher.epoll_fd == old;
	if (its) {
		/* The thread, asleep on the old number, keeps the set's file
		 * and takes the new number when it wakes (watcher_main): no
		 * stop (an eventfd and a new thread for nothing). */
		tssx_table_take(old);
		keep_epoll_fd(moved);
	}
	pthread_mutex_unlock(&watcher.lock);
	return its;
}

bool tssx_bell_watch(struct tssx_conn *conn, int fd)
{
	/* Edge-triggered: the hang-up is reported once, and at once when it
	 * is there already as the socket is added (the kernel polls a file
	 * as it adds it): a peer that died before this registration wakes
	 * the sleeper too.  EPOLLIN for bytes that are not doorbells
	 * (take_event()): edges only, as bytes come. */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLET };
	bool ok = true;

	/* Watched: the parent's watcher also wakes a vfork() child, which
	 * shares its memory.  tssx_foreign_process() only then: it costs a
	 * getpid() per sleep otherwise. */
	if (watched(conn))
		return true;
	/* A vfork() child must not start a watcher in the parent's memory. */
	if (tssx_foreign_process())
		return false;
	pthread_mutex_lock(&watcher.lock);
	/* Watched on any fd of this process's: all refer to one socket. */
	if (watched(conn))
		goto out;
	ok = false;
	if (!watcher_start())
		goto out;
	ev.data.u64 = tssx_bell_pack(conn, watcher.next_tag + 1);
	if (!ev.data.u64 || TSSX_REAL(epoll_ctl)(watcher.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		goto out;
	watcher.next_tag++;
	conn->bell_tag = watcher.next_tag;
	atomic_store(&conn->bell_epoch, atomic_load(&watcher.epoch));
	atomic_store(&conn->bell_fd, fd);
	ok = true;
out:
	pthread_mutex_unlock(&watcher.lock);
	return ok;
}

/* Under the lock, conn watched: the registration goes. */
static void unwatch_locked(struct tssx_conn *conn)
{
	TSSX_REAL(epoll_ctl)(watcher.epoll_fd, EPOLL_CTL_DEL, atomic_load(&conn->bell_fd), NULL);
	atomic_store(&conn->bell_fd, -1);
}

void tssx_bell_unwatch(struct tssx_conn *conn, int fd)
{
	bool woken = false;

	/* Without the lock: only closes of the socket watched go on, and
	 * the watch of a number happens before its close. */
	if (atomic_load_explicit(&conn->bell_fd, memory_order_relaxed) != fd || tssx_foreign_process())
		return;
	pthread_mutex_lock(&watcher.lock);
	if (watched(conn) && atomic_load(&conn->bell_fd) == fd) {
		unwatch_locked(conn);
		woken = true;
	}
	pthread_mutex_unlock(&watcher.lock);
	/* Its futex sleepers go on with the copy of the socket kept for
	 * them (connection.h, held): they watch that one. */
	if (woken)
		tssx_bell_wake_own(conn);
}

void tssx_bell_forget(struct tssx_conn *conn)
{
	if (atomic_load_explicit(&conn->bell_fd, memory_order_relaxed) < 0 || tssx_foreign_process())
		return;
	pthread_mutex_lock(&watcher.lock);
	if (watched(conn))
		unwatch_locked(conn);
	atomic_store(&conn->bell_fd, -1);
	pthread_mutex_unlock(&watcher.lock);
}
