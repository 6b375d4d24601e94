/*
 * The registry client's helper thread: every call that may reach the
 * daemon (open, create, mkdir, read of an uncached page, write)
 * is made here, so that a daemon that is stopped or hung keeps this thread
 * waiting in the kernel and never the application, whose call waits for
 * this thread at most its bound (client.c).
 *
 * It sleeps in ppoll(2) on an eventfd, which callers write to when they
 * leave work, and on /proc/self/mountinfo, which the kernel marks with
 * POLLPRI whenever the mount table changes: a daemon restarted at the
 * mount point (a new mount, on another device) makes it drop what it holds
 * of the old one and make every claim again at once.
 *
 * Started on first need; signals blocked, detached.  It exits once it has
 * had nothing to do for WORKER_LINGER_NS and has no claim to watch over
 * and no client bit to set later (a process that only connects is
 * single-threaded again soon after its calls; its callers look at the
 * mount table themselves), and at once when tssx_registry_pause() asks,
 * for a call that needs a single-threaded process (unshare, setns).  A
 * fork() child starts its own (the thread does not come along); an
 * application that closes one of its fds (a close-all loop) makes it
 * exit, and the next call starts a new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <utlist.h>

#include "tssx/log.h"
#include "tssx/macros.h"
#include "tssx/registry_protocol.h"
#include "state.h"

/* A concurrent release may remove a parent we just made: try again. */
#define CREATE_ATTEMPTS 3

/* The inode number of a FUSE file system's root (FUSE_ROOT_ID). */
#define FUSE_ROOT_INO 1

static void unlock(void)
{
	pthread_mutex_unlock(&client_lock);
}

static void lock(void)
{
	pthread_mutex_lock(&client_lock);
}

/* The daemon is gone (ENOTCONN: killed; ECONNABORTED: aborted). */
static bool is_dead(int err)
{
	return err == -ENOTCONN || err == -ECONNABORTED;
}

static void finished(void)
{
	state.stuck = false;
	pthread_cond_broadcast(&state.progress);
}

/* Calls visit() with each mount of the mount table at fd.  No stdio, no
 * malloc: a first malloc on this thread would give the process a new
 * arena, a mapping that appears out of nowhere. */
static void each_mount(int fd, void (*visit)(const struct tssx_mount_line *m, void *arg), void *arg)
{
	char line[PATH_MAX + 512], chunk[4096];
	struct tssx_mount_line m;
	size_t len = 0;
	ssize_t n;
	off_t at = 0;

	while ((n = pread(fd, chunk, sizeof(chunk), at)) > 0) {
		at += n;
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] != '\n') {
				if (len < sizeof(line) - 1)
					line[len++] = chunk[i];
				continue;
			}
			line[len] = '\0';
			len = 0;
			if (tssx_mount_line_parse(line, &m))
				visit(&m, arg);
		}
	}
}

/* The later mount at a point hides the earlier ones. */
static void note_visible(const struct tssx_mount_line *m, void *arg)
{
	if (strcmp(m->point, state.mountpoint) == 0)
		*(dev_t *)arg = m->registry ? m->dev : 0;
}

/* The device of the visible mount at the mount point in the mount table
 * at fd, 0 when nothing or something else than a registry is mounted
 * there. */
static dev_t mounted_device(int fd)
{
	dev_t dev = 0;

	each_mount(fd, note_visible, &dev);
	return dev;
}

struct device_search {
	dev_t dev;
	bool found;
};

static void find_registry(const struct tssx_mount_line *m, void *arg)
{
	struct device_search *search = arg;

	search->found |= m->registry && m->dev == search->dev;
}

/* /proc/self/mountinfo, opened once and kept (lock held); -1 without it. */
static int mount_table(void)
{
	if (state.mounts_fd < 0 && !state.worker_fds_lost) {
		state.mounts_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
		if (state.mounts_fd >= 0)
			keep_fd(state.mounts_fd);
	}
	return state.mounts_fd;
}

void forget_mount_table(void)
{
	if (state.worker_running || state.dir_fd >= 0 || state.mounts_fd < 0)
		return;
	drop_fd(state.mounts_fd);
	state.mounts_fd = -1;
	state.none_listed = false;
}

static void list_registry(const struct tssx_mount_line *m, void *arg)
{
	struct registry_list *list = arg;

	if (m->registry && list->count < LISTED_MAX)
		list->devs[list->count++] = m->dev;
}

/*
 * Any registry will do, wherever it is mounted: the mount point's path
 * may reach it through a symlink or a bind mount, which only the worker's
 * open and stat of the root can tell, and a stat of a FUSE root may wait
 * for its daemon.  A table without one is the common case of a library
 * without its daemon, where the open would only fail.  Until the table
 * changes (check_mounts() polls it), the answer stands without a read.
 */
int registry_listed(void)
{
	struct registry_list list = { 0 };
	int fd;

	if (state.worker_running || state.dir_fd >= 0)
		return 0;
	if (state.none_listed && state.mounts_fd >= 0)
		return -ENOENT;
	fd = mount_table();
	if (fd < 0)
		return 0; /* no table to read: the worker finds out */
	each_mount(fd, list_registry, &list);
	state.listed = list;
	if (list.count)
		return 0;
	state.none_listed = true;
	if (!state.none_logged) {
		state.none_logged = true;
		tssx_log(TSSX_LOG_INFO, "registry: none in the mount table (%s): plain sockets", state.mountpoint);
	}
	return -ENOENT;
}

/*
 * A copy of fd for this thread's own use, where the preload keeps its fds
 * (hooks.copy_fd): a dup() takes the lowest free number, often one that
 * the program has just closed, and for a moment a close()d fd would be
 * open again under the program's feet (its next call on it gets ENOTSOCK
 * instead of EBADF, its poll() no POLLNVAL).
 */
static int dup_away_from_program(int fd)
{
	return state.hooks.copy_fd ? state.hooks.copy_fd(fd) : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* Whether the directory fd is the root of a registry: the root inode
 * (FUSE's) of a device that the mount table (at mounts_fd) lists with the
 * registry's type, wherever it is mounted and however the mount point's
 * path reached it (a symlink, a bind mount).  Without a request to the
 * daemon, which every new process would pay for (a getxattr of the root
 * did it before): statx() answers from the kernel's cache. */
static bool is_registry_root(int fd, int mounts_fd, const struct registry_list *listed, dev_t *dev)
{
	struct device_search search = { 0 };
	struct statx stx;

	if (mounts_fd < 0 || statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &stx) < 0 ||
	    stx.stx_ino != FUSE_ROOT_INO)
		return false;
	search.dev = *dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	/* A caller's look of a moment ago, before this open, listed it. */
	for (unsigned i = 0; i < listed->count; i++)
		if (listed->devs[i] == search.dev)
			return true;
	each_mount(mounts_fd, find_registry, &search);
	return search.found;
}

/* The registry's root (lock held, dropped meanwhile), opening and checking
 * it when needed; -errno when there is none, and then callers wait a
 * retry time before asking again.  Opened, not only looked at: the open
 * is this process's first request to the daemon, and a request to a
 * stopped daemon waits killably, while a lookup in the root could wait
 * uninterruptibly for the directory's lock behind another process's
 * request (docs/registry.md, "Failure model"). */
static int registry_root(void)
{
	struct registry_list listed = state.listed;
	dev_t dev = 0;
	int mounts_fd, fd, r = 0;

	if (state.dir_fd >= 0)
		return state.dir_fd;
	/* Used once: a later open reads the table again. */
	state.listed.count = 0;
	/* Copied under the lock: the application may close it meanwhile. */
	mounts_fd = state.mounts_fd >= 0 ? dup_away_from_program(state.mounts_fd) : -1;
	unlock();
	fd = openat(AT_FDCWD, state.mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		r = -errno;
	else if (!is_registry_root(fd, mounts_fd, &listed, &dev))
		r = -ENOTCONN; /* a plain directory, or another mount */
	if (mounts_fd >= 0)
		state.hooks.close(mounts_fd);
	lock();
	if (r < 0 || state.dir_fd >= 0) {
		if (fd >= 0)
			state.hooks.close(fd);
		if (r < 0)
			drop_registry(r, RETRY_NS);
		return r < 0 ? r : state.dir_fd;
	}
	if (dev != state.dev)
		drop_registry(-ENOTCONN, 0); /* another registry than the one cached */
	keep_fd(fd);
	state.dir_fd = fd;
	state.dev = dev;
	state.retry_ns = 0;
	return fd;
}

/* A failure of a call to the daemon (lock held): a dead daemon drops the
 * registry, to be found again. */
static int failed(int err)
{
	if (is_dead(err))
		drop_registry(err, RETRY_NS);
	return err;
}

static int lookup_unlocked(int dir_fd, const char *name, const volatile char **map)
{
	char bits[2];
	void *page;
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0)
		return -errno;
	r = pread(fd, bits, sizeof(bits), 0) < 0 ? -errno : 0;
	if (r == 0) {
		page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_SHARED, fd, 0);
		if (page == MAP_FAILED)
			r = -errno;
		else
			*map = page;
	}
	state.hooks.close(fd); /* the mapping keeps the handle */
	return r;
}

/* The registry's generation page, mapped and locked (unlocked; NULL if
 * the registry has none, an older daemon, or the lock is refused, as
 * RLIMIT_MEMLOCK may: lookups then check the entry's page each time). */
static const uint64_t *map_generation(int dir_fd)
{
	size_t page_size = (size_t)sysconf(_SC_PAGESIZE);
	int fd = openat(dir_fd, TSSX_REGISTRY_GENERATION, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	void *page;

	if (fd < 0)
		return NULL;
	page = mmap(NULL, page_size, PROT_READ, MAP_SHARED, fd, 0);
	state.hooks.close(fd); /* the mapping keeps the handle */
	if (page == MAP_FAILED)
		return NULL;
	/* Faults the page in (from the daemon: this thread may wait) and
	 * keeps it: reclaim never takes a locked page. */
	if (mlock(page, page_size) < 0) {
		munmap(page, page_size);
		return NULL;
	}
	return page;
}

/* Maps the generation page of the registry at dir_fd, once per registry
 * (lock held, dropped meanwhile). */
static void open_generation(int dir_fd)
{
	unsigned generation = state.generation;
	const uint64_t *page;

	if (state.generation_tried)
		return;
	state.generation_tried = true;
	unlock();
	page = map_generation(dir_fd);
	lock();
	if (generation == state.generation && !state.generation_page)
		state.generation_page = page;
	else if (page)
		munmap((void *)page, (size_t)sysconf(_SC_PAGESIZE));
}

/* Reads the entry and maps its page (lock held, dropped meanwhile) for
 * the caller to cache. */
static void run_lookup(struct lookup_job *job)
{
	int dir_fd = registry_root(), r = dir_fd;

	if (dir_fd >= 0) {
		open_generation(dir_fd);
		/* Before the read: what it reads is at least that new. */
		job->known = current_generation(&job->before);
		job->generation = state.generation;
		unlock();
		r = lookup_unlocked(dir_fd, job->name, &job->map);
		lock();
		r = failed(r == 0 ? read_bits_of(job->map) : r);
	}
	job->result = r;
	job->done = true;
	if (job->abandoned)
		free_job(job);
}

/* mkdir -p of the directories above `name`, which live entries imply. */
static int make_parents(int dir_fd, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", name);
	for (char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdirat(dir_fd, path, 0755) < 0 && errno != EEXIST)
			return -errno;
		*slash = '/';
	}
	return 0;
}

static int open_read_write(int dir_fd, const char *name)
{
	for (int attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
		int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		int r;

		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			return -errno;
		r = make_parents(dir_fd, name);
		if (r < 0)
			return r;
	}
	return -ENOENT;
}

/* Opens `name` read-write and sets `bits` as that handle's contribution;
 * the fd or -errno.  Unlocked. */
static int open_with_bits(int dir_fd, const char *name, unsigned bits)
{
	char buf[2] = { (char)('0' + bits), '\n' };
	int fd = open_read_write(dir_fd, name);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = pwrite(fd, buf, sizeof(buf), 0);
	if (n == sizeof(buf))
		return fd;
	n = n < 0 ? -errno : -EIO;
	state.hooks.close(fd);
	return (int)n;
}

/* Makes one claim (lock held, dropped meanwhile). */
static void make_claim(struct tssx_registry_claim *claim)
{
	int dir_fd = registry_root(), fd = dir_fd;
	unsigned generation = state.generation;

	if (dir_fd >= 0) {
		claim->busy = true;
		unlock();
		fd = open_with_bits(dir_fd, claim->name, TSSX_BIT_SERVER);
		lock();
		claim->busy = false;
	}
	if (claim->released) {
		DL_DELETE(state.claims, claim);
		if (fd >= 0)
			state.hooks.close(fd);
		free(claim);
		return;
	}
	if (fd >= 0 && generation == state.generation) {
		keep_fd(fd);
		claim->fd = fd;
		claim->state = CLAIM_HELD;
		return;
	}
	if (fd >= 0) {
		state.hooks.close(fd); /* the registry went meanwhile */
		return;
	}
	claim->error = failed(fd);
	/* Refused by a live registry; else made when one is back. */
	if (state.dir_fd >= 0 && generation == state.generation)
		claim->state = CLAIM_REFUSED;
}

/* Sets the client bit of one entry (lock held, dropped meanwhile). */
static void mark_client(struct cached_entry *e)
{
	char name[PATH_MAX];
	struct cached_entry *again;
	int dir_fd = registry_root(), fd;
	unsigned generation = state.generation;

	e->client_due_ns = 0;
	if (dir_fd < 0)
		return;
	snprintf(name, sizeof(name), "%s", e->name);
	unlock();
	fd = open_with_bits(dir_fd, name, TSSX_BIT_CLIENT);
	lock();
	HASH_FIND_STR(state.entries, name, again); /* evicted meanwhile? */
	if (fd >= 0 && again && again->rw_fd < 0 && generation == state.generation) {
		keep_fd(fd);
		again->rw_fd = fd;
	} else if (fd >= 0) {
		state.hooks.close(fd);
	}
	failed(fd);
}

static void mounts_changed(void);

/* When the earliest client bit wanted is due (lock held), 0 when none is;
 * not before the registry is looked for again, if it is missing. */
static uint64_t client_bits_due(void)
{
	struct cached_entry *e, *tmp;
	uint64_t due = 0;

	HASH_ITER(hh, state.entries, e, tmp)
		if (e->client_due_ns && (!due || e->client_due_ns < due))
			due = e->client_due_ns;
	if (due && state.dir_fd < 0 && state.retry_ns > due)
		due = state.retry_ns;
	return due;
}

/* One piece of work, or false when there is none (lock held). */
static bool work_once(void)
{
	struct lookup_job *job = state.jobs;
	struct tssx_registry_claim *claim;
	struct cached_entry *e, *tmp;
	uint64_t now;

	if (job) {
		LL_DELETE(state.jobs, job);
		if (job->abandoned)
			free_job(job); /* its caller gave up before we started */
		else
			run_lookup(job);
		return true;
	}
	if (state.mounts_changed) {
		state.mounts_changed = false;
		mounts_changed();
		return true;
	}
	now = monotonic_ns();
	if (state.dir_fd < 0 && state.retry_ns && now < state.retry_ns)
		return false; /* claims and client bits wait for the registry */
	DL_FOREACH(state.claims, claim)
		if (claim->state == CLAIM_PENDING && !claim->busy) {
			make_claim(claim);
			return true;
		}
	HASH_ITER(hh, state.entries, e, tmp)
		if (e->client_due_ns && e->client_due_ns <= now) {
			mark_client(e);
			return true;
		}
	return false;
}

/* The mount table changed (lock held, dropped meanwhile): whether our
 * registry was replaced or went; if so, drop it, which makes every claim
 * pending again. */
static void mounts_changed(void)
{
	int fd = dup_away_from_program(state.mounts_fd); /* read unlocked: our own */
	dev_t dev;

	state.none_listed = false; /* callers read the table again */
	if (fd < 0)
		return;
	unlock();
	dev = mounted_device(fd);
	state.hooks.close(fd);
	lock();
	if (state.dir_fd >= 0 && dev != state.dev)
		drop_registry(-ENOTCONN, 0);
	else if (state.dir_fd < 0)
		state.retry_ns = 0; /* perhaps it is there now */
}

/* Sleeps until a caller leaves work or the mount table changes, or for
 * at most timeout_ns (0: no limit); returns the revents of both
 * (unlocked). */
static short wait_for_work(int wake_fd, int mounts_fd, uint64_t timeout_ns)
{
	struct pollfd fds[2] = {
		{ .fd = wake_fd, .events = POLLIN },
		{ .fd = mounts_fd, .events = POLLPRI },
	};
	struct timespec limit = {
		.tv_sec = (time_t)(timeout_ns / 1000000000ull),
		.tv_nsec = (long)(timeout_ns % 1000000000ull),
	};

	/* Not poll(): the preload wraps it. */
	if (syscall(SYS_ppoll, fds, mounts_fd >= 0 ? 2 : 1, timeout_ns ? &limit : NULL, NULL, _NSIG / 8) < 0)
		return 0;
	return (short)((fds[0].revents & POLLIN) | (fds[1].revents & (POLLPRI | POLLERR) ? POLLPRI : 0));
}

bool mount_table_changed(int mounts_fd)
{
	struct pollfd pfd = { .fd = mounts_fd, .events = POLLPRI };
	struct timespec now = { 0 };

	return syscall(SYS_ppoll, &pfd, 1, &now, NULL, _NSIG / 8) == 1 &&
	       (pfd.revents & (POLLPRI | POLLERR));
}

static bool any_claim_pending(void)
{
	struct tssx_registry_claim *claim;

	DL_FOREACH(state.claims, claim)
		if (claim->state == CLAIM_PENDING)
			return true;
	return false;
}

/* Whether the worker may end now that it has nothing to do (lock held):
 * asked to, or no claim to make again when the registry changes and no
 * client bit to set later. */
static bool may_exit(void)
{
	return state.worker_exit || (!state.claims && !client_bits_due());
}

/* The shorter of two waits, 0 being none. */
static uint64_t shorter(uint64_t a_ns, uint64_t b_ns)
{
	return !a_ns || (b_ns && b_ns < a_ns) ? b_ns : a_ns;
}

/* How long until the next client bit is due, 0 when none is wanted. */
static uint64_t client_bits_wait_ns(void)
{
	uint64_t due = client_bits_due(), now = monotonic_ns();

	return !due ? 0 : due > now ? due - now : 1;
}

/* How long a worker that may end waits for more work first (0: it ends
 * now).  A client asks in bursts (its lookups at its first connections,
 * its client bit a while later): a thread each time would cost a
 * creation and a hand-over each, which a busy machine makes milliseconds
 * each.  Asked to exit, it exits at once. */
static uint64_t linger_ns(bool lingered)
{
	return state.worker_exit || lingered ? 0 : WORKER_LINGER_NS;
}

static void *worker_main(void *arg)
{
	bool lingered = false;

	(void)arg;
	lock();
	state.worker_tid = gettid();
	while (!state.worker_fds_lost) {
		int wake_fd = state.wake_fd, mounts_fd = state.mounts_fd;
		uint64_t timeout_ns = 0;
		short events;

		if (work_once()) {
			finished();
			lingered = false;
			continue;
		}
		if (may_exit()) {
			timeout_ns = linger_ns(lingered);
			if (!timeout_ns)
				break;
		} else if (mounts_fd < 0 && any_claim_pending()) {
			timeout_ns = RETRY_NS; /* no mount table to tell: retried */
		}
		timeout_ns = shorter(timeout_ns, client_bits_wait_ns());
		unlock();
		events = wait_for_work(wake_fd, mounts_fd, timeout_ns);
		lock();
		/* Only a linger that ran out ends it: a wake-up may be the
		 * count left by the work just done. */
		lingered = may_exit() && !events;
		/* Only now, under the lock: the application may have closed
		 * them meanwhile, and the numbers may be someone else's. */
		if (state.worker_fds_lost)
			break;
		if (events & POLLIN) {
			eventfd_t count;

			eventfd_read(state.wake_fd, &count);
		}
		if (events & POLLPRI)
			mounts_changed();
	}
	if (state.worker_fds_lost) {
		/* The application closed one of our fds: the other goes too. */
		drop_fd(state.wake_fd);
		drop_fd(state.mounts_fd);
		state.wake_fd = state.mounts_fd = -1;
		state.worker_fds_lost = false;
	}
	state.worker_running = false;
	state.worker_exit = false;
	pthread_cond_broadcast(&state.progress); /* tssx_registry_pause() */
	unlock();
	return NULL;
}

static int start_worker(void)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t thread;
	int r;

	if (state.wake_fd < 0) {
		state.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (state.wake_fd < 0)
			return log_warn(-errno, "registry: no eventfd: %s", strerror(errno));
		keep_fd(state.wake_fd);
	}
	/* Without it, restarts of the daemon are noticed only when a call
	 * finds the old registry dead. */
	mount_table();
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits it */
	r = -pthread_create(&thread, &attr, worker_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		drop_fd(state.wake_fd);
		drop_fd(state.mounts_fd);
		state.wake_fd = state.mounts_fd = -1;
		return log_warn(r, "registry: no helper thread: %s", strerror(-r));
	}
	state.worker_running = true;
	__atomic_store_n(&state.workers_started, state.workers_started + 1, __ATOMIC_RELAXED);
	return 0;
}

/* A client's first connection should start one thread, not one per call
 * (linger_ns()); tests/preload/single_thread.sh counts them. */
__attribute__((destructor)) static void report_workers(void)
{
	/* Without the lock: exit() may come while a thread holds it. */
	unsigned long started = __atomic_load_n(&state.workers_started, __ATOMIC_RELAXED);

	if (started)
		tssx_log(TSSX_LOG_INFO, "registry: helper threads started: %lu", started);
}

int wake_worker(void)
{
	int r;

	if (state.worker_fds_lost)
		return -EAGAIN; /* the old one is on its way out */
	if (!state.worker_running) {
		r = start_worker();
		if (r < 0)
			return r;
	}
	eventfd_write(state.wake_fd, 1);
	return 0;
}

bool worker_forget_fd(int fd)
{
	if (fd != state.wake_fd && fd != state.mounts_fd)
		return false;
	if (!state.worker_running) {
		/* No thread waits on it: the next one opens it again. */
		if (fd == state.wake_fd)
			state.wake_fd = -1;
		else
			state.mounts_fd = -1;
		return true;
	}
	/* Before the application's close: the eventfd is still ours. */
	eventfd_write(state.wake_fd, 1);
	if (fd == state.wake_fd)
		state.wake_fd = -1;
	else
		state.mounts_fd = -1;
	state.worker_fds_lost = true;
	return true;
}

TSSX_FORK_HANDLER void worker_close_fds_after_fork(void)
{
	/* The parent's eventfd would wake the parent's worker too, and two
	 * readers of one mountinfo file take each other's events.  At the
	 * fork, not later: the program sees its fds, and a close-all loop of
	 * its own must not find them closed under it. */
	drop_fd(state.wake_fd);
	drop_fd(state.mounts_fd);
}

void worker_after_fork(void)
{
	struct tssx_registry_claim *claim, *tmp;
	struct lookup_job *job, *next;

	state.wake_fd = state.mounts_fd = -1; /* closed at the fork */
	state.worker_running = state.worker_fds_lost = state.stuck = false;
	state.worker_exit = state.mounts_changed = false;
	state.worker_tid = 0;
	LL_FOREACH_SAFE(state.jobs, job, next)
		free(job); /* their callers are threads of the parent */
	state.jobs = NULL;
	DL_FOREACH_SAFE(state.claims, claim, tmp) {
		if (!claim->busy)
			continue;
		claim->busy = false;
		if (claim->released) {
			DL_DELETE(state.claims, claim);
			free(claim);
		}
	}
}
