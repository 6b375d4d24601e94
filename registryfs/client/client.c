/*
 * The registry as the preload library uses it (registry_client.h): the
 * callers' side.  Whatever may reach the daemon is done by the worker
 * (worker.c); a caller only answers from the kernel's caches or waits for
 * the worker, at most the bound.
 *
 * Speed: the first lookup of a name has the worker open its registry file,
 * read it and keep a shared read-only mapping of its page.  Later lookups
 * answer with the bits read then while the registry's generation (a
 * counter the daemon raises after every change of bits has reached the
 * kernel, in a page this process keeps mapped and locked) has not moved:
 * a load, no system call.  When it has, or the registry has none, a
 * mincore(2) tells whether the entry's page is still in the page cache
 * (the daemon drops it when the bits change) before a load from it.  A
 * missing name costs a failed openat2(RESOLVE_CACHED) on a cached negative
 * dentry the first time, and nothing while the generation stays where it
 * was then (struct cached_miss).  None of them reaches the daemon, nor the
 * worker, in the steady state.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utlist.h>

#include "tssx/log.h"
#include "tssx/macros.h"
#include "tssx/registry_name.h"
#include "tssx/thread_gone.h"
#include "state.h"

#define CACHE_MAX 64
/* Names remembered missing; beyond it the oldest is forgotten. */
#define MISSES_MAX 16

pthread_mutex_t client_lock TSSX_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
/* A fork() child that has not called the client since: what it holds of
 * its parent's (the generation page, the worker's state) goes at its
 * first call, not in the fork handler, so that a child that never names
 * a socket (or execs at once) pays nothing for it.  Under client_lock. */
static bool fork_unsettled TSSX_FORK_DATA;

struct client_state state = {
	.hooks = { .close = close },
	.timeout_ns = TSSX_REGISTRY_TIMEOUT_MS_DEFAULT * 1000000ull,
	.dir_fd = -1,
	.missing = -ENOTCONN,
	.wake_fd = -1,
	.mounts_fd = -1,
};

/* openat2 unavailable (old kernel, a seccomp filter): misses go to the
 * worker. */
static bool no_cached_open;

uint64_t monotonic_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

void keep_fd(int fd)
{
	if (state.hooks.fd_kept)
		state.hooks.fd_kept(fd);
}

void drop_fd(int fd)
{
	if (fd < 0)
		return;
	if (state.hooks.fd_dropped)
		state.hooks.fd_dropped(fd);
	state.hooks.close(fd);
}

static void drop_entry(struct cached_entry *e)
{
	HASH_DEL(state.entries, e);
	state.count--;
	munmap((void *)e->map, (size_t)sysconf(_SC_PAGESIZE));
	drop_fd(e->rw_fd);
	free(e);
}

static void forget_miss(struct cached_miss *m)
{
	HASH_DEL(state.misses, m);
	state.miss_count--;
	free(m);
}

void drop_generation(void)
{
	if (state.generation_page)
		munmap((void *)state.generation_page, (size_t)sysconf(_SC_PAGESIZE));
	state.generation_page = NULL;
}

bool current_generation(uint64_t *value)
{
	if (!state.generation_page)
		return false;
	/* Acquire: the loads and the mincore(2) of an entry's page that
	 * follow must not happen before this load.  The daemon stores a new
	 * value only after the kernel has dropped the changed pages, so a
	 * page still cached after this load holds bits at least as new. */
	*value = __atomic_load_n(state.generation_page, __ATOMIC_ACQUIRE);
	return true;
}

static void drop_claim_fd(struct tssx_registry_claim *claim)
{
	drop_fd(claim->fd);
	claim->fd = -1;
}

void drop_registry(int why, uint64_t retry_after_ns)
{
	struct cached_entry *e, *tmp;
	struct cached_miss *m, *next;
	struct tssx_registry_claim *claim;

	HASH_ITER(hh, state.entries, e, tmp)
		drop_entry(e);
	HASH_ITER(hh, state.misses, m, next)
		forget_miss(m);
	DL_FOREACH(state.claims, claim) {
		if (claim->state == CLAIM_HELD)
			drop_claim_fd(claim);
		claim->state = CLAIM_PENDING;
		claim->error = why;
	}
	drop_fd(state.dir_fd);
	state.dir_fd = -1;
	drop_generation();
	state.generation_tried = false;
	state.generation++;
	state.missing = why;
	state.retry_ns = monotonic_ns() + retry_after_ns;
}

int registry_unavailable(void)
{
	if (state.stuck)
		return -ETIMEDOUT;
	if (state.dir_fd < 0 && state.retry_ns && monotonic_ns() < state.retry_ns)
		return state.missing;
	return 0;
}

void note_stuck(void)
{
	state.stuck = true;
	if (state.warned)
		return;
	state.warned = true;
	tssx_log(TSSX_LOG_WARN, "registry %s did not answer within %llu ms: plain sockets until it does",
		 state.mountpoint, (unsigned long long)(state.timeout_ns / 1000000));
}

/* Lock held: a fork()ed child's first call drops what it inherited. */
static void settle_fork(void)
{
	if (likely(!fork_unsettled))
		return;
	fork_unsettled = false;
	/* Memory locks are not inherited: a page that may leave the cache
	 * cannot be trusted to load without the daemon. */
	drop_generation();
	worker_after_fork();
}

static void lock_client(void)
{
	pthread_mutex_lock(&client_lock);
	settle_fork();
}

TSSX_FORK_HANDLER static void unlock_client(void)
{
	pthread_mutex_unlock(&client_lock);
}

TSSX_FORK_HANDLER static void child_after_fork(void)
{
	worker_close_fds_after_fork();
	fork_unsettled = true;
	unlock_client();
}

static void init_once(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&state.progress, &attr);
	pthread_condattr_destroy(&attr);
	/* A fork while another thread holds the lock must not leave it held. */
	pthread_atfork(lock_client, unlock_client, child_after_fork);
}

/* Waits (lock held) until done() or the deadline; false when out of
 * time, and then the worker counts as stuck. */
static bool wait_for_worker(uint64_t deadline, bool (*done)(const void *arg), const void *arg)
{
	struct timespec until = {
		.tv_sec = (time_t)(deadline / 1000000000ull),
		.tv_nsec = (long)(deadline % 1000000000ull),
	};

	while (!done(arg))
		if (pthread_cond_timedwait(&state.progress, &client_lock, &until) == ETIMEDOUT && !done(arg)) {
			note_stuck();
			return false;
		}
	return true;
}

int tssx_registry_client_init(const char *mountpoint, unsigned timeout_ms,
			      const struct tssx_registry_hooks *hooks)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (!mountpoint || strlen(mountpoint) >= sizeof(state.mountpoint))
		return -EINVAL;
	pthread_once(&once, init_once);
	lock_client();
	if (hooks) {
		state.hooks = *hooks;
		if (!state.hooks.close)
			state.hooks.close = close;
	}
	state.timeout_ns = (uint64_t)timeout_ms * 1000000ull;
	strcpy(state.mountpoint, mountpoint);
	drop_registry(-ENOTCONN, 0);
	state.retry_ns = 0; /* the first call that needs the registry looks */
	unlock_client();
	return 0;
}

static int name_of(const struct sockaddr_un *addr, socklen_t len, char name[TSSX_REGISTRY_NAME_MAX])
{
	return tssx_registry_name_from_addr(addr, len, name, TSSX_REGISTRY_NAME_MAX);
}

int read_bits_of(const volatile char *map)
{
	char digit = map[0], newline = map[1];

	if (digit < '0' || digit > '3' || newline != '\n')
		return -EBADMSG;
	return digit - '0';
}

static bool page_cached(const volatile char *map)
{
	unsigned char resident = 0;

	return mincore((void *)map, 1, &resident) == 0 && (resident & 1);
}

/* Whether the registry has no entry of that name, from the kernel's dentry
 * cache alone: -ENOENT, else -EAGAIN (ask the worker). */
static int cached_miss(const char *name)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_CACHED | RESOLVE_BENEATH | RESOLVE_NO_XDEV,
	};
	long fd;

	if (state.dir_fd < 0 || no_cached_open)
		return -EAGAIN;
	fd = syscall(SYS_openat2, state.dir_fd, name, &how, sizeof(how));
	if (fd >= 0) {
		state.hooks.close((int)fd); /* an O_PATH fd: nothing reaches the daemon */
		return -EAGAIN;
	}
	if (errno == ENOSYS || errno == EPERM || errno == E2BIG)
		no_cached_open = true;
	return errno == ENOENT ? -ENOENT : -EAGAIN;
}

/* Remembers (m, or a new record) that name was missing at generation
 * `now`; the oldest record goes beyond MISSES_MAX.  Without memory it is
 * simply not remembered. */
static void remember_miss(struct cached_miss *m, const char *name, uint64_t now)
{
	if (!m) {
		if (state.miss_count >= MISSES_MAX)
			forget_miss(state.misses); /* the head: the oldest added */
		m = malloc(sizeof(*m) + strlen(name) + 1);
		if (!m)
			return;
		strcpy(m->name, name);
		HASH_ADD_STR(state.misses, name, m);
		state.miss_count++;
	}
	m->generation = now;
}

/* A name without a cached entry: missing while the generation has not
 * moved since it was found so, else what the dentry cache says (-ENOENT,
 * or -EAGAIN: ask the worker).  The generation is read before the
 * dentry cache is: a server bit that appears after that read moves it. */
static int missing(const char *name)
{
	struct cached_miss *m;
	uint64_t now = 0;
	bool known = current_generation(&now);
	int r;

	HASH_FIND_STR(state.misses, name, m);
	if (m && known && m->generation == now)
		return -ENOENT;
	r = cached_miss(name);
	if (r == -ENOENT && known)
		remember_miss(m, name, now);
	else if (m)
		forget_miss(m);
	return r;
}

/* What a lookup read from the entry's page, the generation being `now`
 * (when `known`) before it read. */
static void remember_bits(struct cached_entry *e, int bits, bool known, uint64_t now)
{
	e->bits = bits;
	e->generation = now;
	e->seen = known;
}

/* While no worker watches the mount table, a new registry at the mount
 * point is noticed here, at most once per retry time (lock held): a
 * clock read (vDSO), and a poll of the table once it is due. */
static void check_mounts(void)
{
	uint64_t now;

	if (state.worker_running || state.mounts_fd < 0)
		return;
	now = monotonic_ns();
	if (now < state.mounts_check_ns)
		return;
	state.mounts_check_ns = now + RETRY_NS;
	if (!mount_table_changed(state.mounts_fd))
		return;
	if (state.none_listed) {
		/* No registry to drop: the next lookup reads the table. */
		state.none_listed = false;
		state.retry_ns = 0;
		return;
	}
	state.mounts_changed = true;
	wake_worker();
}

/* The answer of the caches (lock held), or -EAGAIN. */
static int cached_lookup(const char *name)
{
	struct cached_entry *e;
	uint64_t now = 0;
	bool known;

	check_mounts();
	HASH_FIND_STR(state.entries, name, e);
	if (!e)
		return missing(name);
	e->last_use = ++state.clock;
	known = current_generation(&now);
	if (known && e->seen && e->generation == now)
		return e->bits;
	if (!page_cached(e->map))
		return -EAGAIN; /* changed: the daemon must be asked */
	remember_bits(e, read_bits_of(e->map), known, now);
	return e->bits;
}

static bool job_done(const void *arg)
{
	return ((const struct lookup_job *)arg)->done;
}

static struct cached_entry *new_entry(const char *name, const volatile char *map)
{
	struct cached_entry *e, *tmp, *oldest = NULL;

	if (state.count >= CACHE_MAX) {
		HASH_ITER(hh, state.entries, e, tmp)
			if (!oldest || e->last_use < oldest->last_use)
				oldest = e;
		drop_entry(oldest);
	}
	e = malloc(sizeof(*e) + strlen(name) + 1);
	if (!e)
		return NULL;
	strcpy(e->name, name);
	e->map = map;
	e->rw_fd = -1;
	e->client_due_ns = 0;
	e->seen = false;
	e->last_use = ++state.clock;
	HASH_ADD_STR(state.entries, name, e);
	state.count++;
	return e;
}

/* The worker read `bits` of `name` through a new mapping (lock held),
 * the registry's generation `before` being as current_generation() said
 * (`known`): caches it.  An entry cached already (a change dropped its
 * page, which sent the lookup to the worker) takes the new mapping and
 * bits, unless a concurrent lookup read them at a later generation: kept
 * as it was, it would send the next lookup at this generation to
 * mincore(2) again.  False: the map is not kept. */
static bool cache_mapping(const char *name, const volatile char *map, int bits, bool known,
			  uint64_t before)
{
	struct cached_entry *e;

	HASH_FIND_STR(state.entries, name, e);
	if (e) {
		if (known && e->seen && e->generation > before)
			return false;
		munmap((void *)e->map, (size_t)sysconf(_SC_PAGESIZE));
		e->map = map;
		remember_bits(e, bits, known, before);
		return true;
	}
	e = new_entry(name, map);
	if (e)
		remember_bits(e, bits, known, before);
	return e;
}

void free_job(struct lookup_job *job)
{
	if (job->map)
		munmap((void *)job->map, (size_t)sysconf(_SC_PAGESIZE));
	free(job);
}

/* Hands the lookup to the worker and waits for it (lock held). */
static int worker_lookup(const char *name, uint64_t start)
{
	struct lookup_job *job;
	int r = registry_unavailable();

	if (r < 0)
		return r;
	/* Without a registry mounted, a thread would only find it missing. */
	r = registry_listed();
	if (r < 0) {
		drop_registry(r, RETRY_NS);
		return r;
	}
	job = malloc(sizeof(*job) + strlen(name) + 1);
	if (!job)
		return -ENOMEM;
	*job = (struct lookup_job){ 0 };
	strcpy(job->name, name);
	LL_APPEND(state.jobs, job);
	r = wake_worker();
	if (r < 0) {
		LL_DELETE(state.jobs, job);
		free(job);
		return r;
	}
	if (!wait_for_worker(start + state.timeout_ns, job_done, job)) {
		job->abandoned = true;
		return -ETIMEDOUT;
	}
	r = job->result;
	if (job->map && job->generation == state.generation &&
	    cache_mapping(job->name, job->map, r, job->known, job->before))
		job->map = NULL; /* the cache's now */
	free_job(job);
	return r;
}

int tssx_registry_lookup(const struct sockaddr_un *addr, socklen_t len)
{
	char name[TSSX_REGISTRY_NAME_MAX];
	uint64_t start;
	int r = name_of(addr, len, name);

	if (r < 0)
		return r;
	lock_client();
	r = cached_lookup(name);
	if (r == -EAGAIN) {
		start = monotonic_ns();
		r = worker_lookup(name, start);
	}
	unlock_client();
	return r;
}

/* Made, refused, or found to wait for a registry that is not there (the
 * worker's try set why): a listen() without a registry mounted does not
 * wait out the bound. */
static bool claim_settled(const void *arg)
{
	const struct tssx_registry_claim *claim = arg;

	return claim->state != CLAIM_PENDING || claim->error != -EINPROGRESS;
}

static void free_claim(struct tssx_registry_claim *claim)
{
	DL_DELETE(state.claims, claim);
	drop_claim_fd(claim);
	free(claim);
}

struct tssx_registry_claim *tssx_registry_claim(const struct sockaddr_un *addr, socklen_t len,
						int *error)
{
	char name[TSSX_REGISTRY_NAME_MAX];
	struct tssx_registry_claim *claim;
	uint64_t start = monotonic_ns();
	int r = name_of(addr, len, name), listed = 0;

	if (r < 0) {
		*error = r;
		return NULL;
	}
	claim = malloc(sizeof(*claim) + strlen(name) + 1);
	if (!claim) {
		*error = -ENOMEM;
		return NULL;
	}
	*claim = (struct tssx_registry_claim){ .state = CLAIM_PENDING, .fd = -1 };
	strcpy(claim->name, name);
	lock_client();
	DL_APPEND(state.claims, claim);
	r = registry_unavailable();
	/* None mounted: the worker is started to watch for one, the caller
	 * does not wait for it to find none. */
	if (r == 0)
		listed = registry_listed();
	claim->error = r < 0 ? r : listed < 0 ? listed : -EINPROGRESS;
	/* Unavailable: the claim waits for the registry, the caller does not. */
	if (r == 0 && wake_worker() == 0 && listed == 0)
		wait_for_worker(start + state.timeout_ns, claim_settled, claim);
	if (claim->state == CLAIM_REFUSED) {
		*error = claim->error;
		free_claim(claim);
		claim = NULL;
	} else if (claim->state == CLAIM_PENDING && claim->error == -EINPROGRESS) {
		claim->error = -ETIMEDOUT;
	}
	unlock_client();
	return claim;
}

int tssx_registry_claim_error(const struct tssx_registry_claim *claim)
{
	int r;

	lock_client();
	r = claim->state == CLAIM_HELD ? 0 : claim->error;
	unlock_client();
	return r;
}

void tssx_registry_release(struct tssx_registry_claim *claim)
{
	if (!claim)
		return;
	lock_client();
	if (claim->busy)
		claim->released = true;
	else
		free_claim(claim);
	unlock_client();
}

int tssx_registry_mark_client(const struct sockaddr_un *addr, socklen_t len)
{
	char name[TSSX_REGISTRY_NAME_MAX];
	struct cached_entry *e;
	int r = name_of(addr, len, name);

	if (r < 0)
		return r;
	lock_client();
	HASH_FIND_STR(state.entries, name, e);
	r = e ? registry_unavailable() : -ENOENT;
	if (r == 0 && e->rw_fd < 0 && !e->client_due_ns) {
		e->client_due_ns = monotonic_ns() + TSSX_REGISTRY_CLIENT_DELAY_MS * 1000000ull;
		r = wake_worker();
	}
	unlock_client();
	return r;
}

static bool worker_stopped(const void *arg)
{
	(void)arg;
	return !state.worker_running;
}

int tssx_registry_pause(void)
{
	uint64_t deadline = monotonic_ns() + TSSX_REGISTRY_PAUSE_MS * 1000000ull;
	bool stopped = true;
	pid_t tid;
	int r;

	lock_client();
	if (state.worker_running) {
		state.worker_exit = true;
		eventfd_write(state.wake_fd, 1);
		stopped = wait_for_worker(deadline, worker_stopped, NULL);
	}
	tid = state.worker_tid;
	unlock_client();
	if (!stopped)
		return -EBUSY; /* in a call to the daemon, which does not answer */
	r = tid ? tssx_thread_gone(tid, deadline) : 0;
	lock_client();
	if (r == 0 && state.worker_tid == tid && !state.worker_running)
		state.worker_tid = 0;
	unlock_client();
	return r;
}

void tssx_registry_resume(void)
{
	lock_client();
	state.worker_exit = false;
	forget_mount_table(); /* perhaps another namespace's now */
	if (state.claims && !state.worker_running)
		wake_worker(); /* back to watching over the claims */
	unlock_client();
}

void tssx_registry_forget_fd(int fd)
{
	struct cached_entry *e, *tmp;
	struct tssx_registry_claim *claim;

	if (fd < 0)
		return;
	lock_client();
	if (state.dir_fd == fd)
		state.dir_fd = -1; /* opened again by the next call */
	HASH_ITER(hh, state.entries, e, tmp)
		if (e->rw_fd == fd)
			e->rw_fd = -1;
	DL_FOREACH(state.claims, claim)
		if (claim->fd == fd) {
			claim->fd = -1;
			claim->state = CLAIM_LOST;
			claim->error = -EBADF;
		}
	worker_forget_fd(fd);
	unlock_client();
}
