/*
 * The client API (registry_client.h) against a live registry: run under
 * tests/lib/with-registry, which sets TSSX_REGISTRY and TSSX_REGISTRYFS_PID.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tssx/registry_client.h"
#include "tssx/registry_name.h"
#include "tssx/registry_protocol.h"

#define SUN_OFFSET offsetof(struct sockaddr_un, sun_path)
#define FDS_MAX 1024
/* Generous: the machine may be loaded; the stopped daemon waits it once. */
#define BOUND_MS 1000

static char work[] = "/tmp/tssx-client-XXXXXX";
static const char *mount;

/* What the hooks were told: which fds the client keeps. */
static bool kept[FDS_MAX];
static int last_kept = -1;
static int closes;

static void on_kept(int fd)
{
	assert_true(fd >= 0 && fd < FDS_MAX && !kept[fd]);
	kept[fd] = true;
	last_kept = fd;
}

static void on_dropped(int fd)
{
	assert_true(fd >= 0 && fd < FDS_MAX && kept[fd]);
	kept[fd] = false;
}

static int counting_close(int fd)
{
	closes++;
	return close(fd);
}

static const struct tssx_registry_hooks hooks = {
	.close = counting_close,
	.fd_kept = on_kept,
	.fd_dropped = on_dropped,
};

/* Claims the server bit and waits (bounded) until it is held. */
static struct tssx_registry_claim *claim_held(const struct sockaddr_un *addr, socklen_t len)
{
	int error = 0;
	struct tssx_registry_claim *claim = tssx_registry_claim(addr, len, &error);

	assert_non_null(claim);
	for (int i = 0; i < 500 && tssx_registry_claim_error(claim) < 0; i++)
		usleep(10000);
	assert_int_equal(tssx_registry_claim_error(claim), 0);
	return claim;
}

/* The refusal of a claim: NULL and the error. */
static int claim_refused(const struct sockaddr_un *addr, socklen_t len)
{
	int error = 0;

	assert_null(tssx_registry_claim(addr, len, &error));
	return error;
}

/* How many entries of the registry this process maps (the cache; not the
 * generation page). */
static int mapped_entries(void)
{
	char line[PATH_MAX + 256];
	FILE *maps = fopen("/proc/self/maps", "re");
	int n = 0;

	assert_non_null(maps);
	while (fgets(line, sizeof(line), maps))
		n += strstr(line, mount) && !strstr(line, TSSX_REGISTRY_GENERATION);
	fclose(maps);
	return n;
}

static int kept_count(void)
{
	int n = 0;

	for (int fd = 0; fd < FDS_MAX; fd++)
		n += kept[fd];
	return n;
}

static socklen_t path_addr(struct sockaddr_un *addr, const char *fmt, ...)
{
	va_list args;

	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	va_start(args, fmt);
	vsnprintf(addr->sun_path, sizeof(addr->sun_path), fmt, args);
	va_end(args);
	return (socklen_t)(SUN_OFFSET + strlen(addr->sun_path) + 1);
}

static int listen_on(const struct sockaddr_un *addr, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (const struct sockaddr *)addr, len), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

/* Changes reach a kept fd's page cache through the daemon's asynchronous
 * invalidation: wait (bounded) for the expected bits. */
static int lookup_until(const struct sockaddr_un *addr, socklen_t len, int expected)
{
	int r = tssx_registry_lookup(addr, len);

	for (int i = 0; i < 500 && r != expected; i++) {
		usleep(10000);
		r = tssx_registry_lookup(addr, len);
	}
	return r;
}

static void test_not_a_registry(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = path_addr(&addr, "%s/s.sock", work);

	struct tssx_registry_claim *claim;
	int error = 0;

	/* init only remembers: the first call that needs the registry looks */
	assert_int_equal(tssx_registry_client_init(work, BOUND_MS, &hooks), 0);
	assert_int_equal(kept_count(), 0);
	assert_int_equal(tssx_registry_lookup(&addr, len), -ENOTCONN);
	/* asked again only a second later: fast failures meanwhile */
	assert_int_equal(tssx_registry_lookup(&addr, len), -ENOTCONN);
	claim = tssx_registry_claim(&addr, len, &error);
	assert_non_null(claim); /* pending: made when a registry answers */
	assert_int_equal(tssx_registry_claim_error(claim), -ENOTCONN);
	tssx_registry_release(claim);
	assert_int_equal(tssx_registry_client_init("/nonexistent-tssx", BOUND_MS, &hooks), 0);
	assert_int_equal(tssx_registry_lookup(&addr, len), -ENOENT);
	assert_int_equal(tssx_registry_client_init(mount, BOUND_MS, &hooks), 0);
	assert_int_equal(tssx_registry_lookup(&addr, len), -ENOENT); /* no entry */
	/* the registry's root, the helper thread's eventfd and mount table */
	assert_int_equal(kept_count(), 3);
}

#ifndef __SANITIZE_ADDRESS__ /* the sanitizer's allocator has no glibc arenas */
/* malloc arenas of the process: glibc's malloc_info() lists one heap
 * each. */
static int malloc_arenas(void)
{
	char *text = NULL;
	size_t size = 0;
	int n = 0;
	FILE *out = open_memstream(&text, &size);

	assert_non_null(out);
	assert_int_equal(malloc_info(0, out), 0);
	fclose(out);
	for (const char *at = text; (at = strstr(at, "<heap nr=")); at++)
		n++;
	free(text);
	return n;
}

/* The helper thread allocates nothing (the caller caches what it
 * mapped): a first malloc on it would give the process a malloc arena of
 * its own, 64 MiB of address space with page tables to make, in every
 * process whose first lookup found an entry. */
static void test_helper_allocates_nothing(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = path_addr(&addr, "%s/arena.sock", work);
	struct tssx_registry_claim *claim;
	int listener = listen_on(&addr, len), arenas = malloc_arenas();

	claim = claim_held(&addr, len);
	assert_int_equal(lookup_until(&addr, len, 1), 1);
	assert_int_equal(malloc_arenas(), arenas);
	tssx_registry_release(claim);
	close(listener);
}
#endif

static void test_claim_lookup_mark(void **state)
{
	struct sockaddr_un addr, missing;
	socklen_t len = path_addr(&addr, "%s/server.sock", work);
	socklen_t missing_len = path_addr(&missing, "%s/missing.sock", work);
	struct tssx_registry_claim *claim;
	int listener;

	assert_int_equal(tssx_registry_lookup(&addr, len), -ENOENT);
	listener = listen_on(&addr, len);
	claim = claim_held(&addr, len);
	assert_int_equal(lookup_until(&addr, len, 1), 1);
	assert_int_equal(tssx_registry_lookup(&missing, missing_len), -ENOENT);

	/* a relative name meets the absolute one */
	char cwd[PATH_MAX];
	struct sockaddr_un rel;
	socklen_t rel_len = path_addr(&rel, "./server.sock");

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(work), 0);
	assert_int_equal(tssx_registry_lookup(&rel, rel_len), 1);
	assert_int_equal(chdir(cwd), 0);

	assert_int_equal(tssx_registry_mark_client(&addr, len), 0);
	assert_int_equal(lookup_until(&addr, len, 3), 3);
	tssx_registry_release(claim);
	assert_int_equal(lookup_until(&addr, len, 2), 2);
	close(listener);
}

static void test_claims_refused(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = path_addr(&addr, "%s/plain", work);
	int fd = open(addr.sun_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(claim_refused(&addr, len), -EPERM);
	addr.sun_path[0] = '\0'; /* the empty abstract name is no name */
	assert_int_equal(claim_refused(&addr, (socklen_t)SUN_OFFSET + 1), -EINVAL);
	/* an abstract name this process does not listen on */
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	len = (socklen_t)(SUN_OFFSET + 1 + (size_t)sprintf(addr.sun_path + 1, "tssx-nolisten-%d", getpid()));
	assert_int_equal(claim_refused(&addr, len), -EPERM);
}

static void test_abstract_claim(void **state)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len = (socklen_t)(SUN_OFFSET + 1 +
				    (size_t)sprintf(addr.sun_path + 1, "tssx client %d", getpid()));
	int listener = listen_on(&addr, len);
	struct tssx_registry_claim *claim = claim_held(&addr, len);

	assert_int_equal(lookup_until(&addr, len, 1), 1);
	tssx_registry_release(claim);
	close(listener);
}

/* Whether every thread of pid is stopped.  Until then a daemon thread woken
 * by SIGSTOP can still take one request before it stops: the request then
 * waits for an answer that no signal interrupts, not even the alarm. */
static bool all_threads_stopped(pid_t pid)
{
	char path[320], stat[512];
	struct dirent *task;
	bool stopped = true;
	DIR *tasks;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	tasks = opendir(path);
	assert_non_null(tasks);
	while (stopped && (task = readdir(tasks))) {
		FILE *f;
		char *end;

		if (task->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, task->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* the thread ended */
		end = fgets(stat, sizeof(stat), f) ? strrchr(stat, ')') : NULL;
		stopped = end && (end[2] == 'T' || end[2] == 't');
		fclose(f);
	}
	closedir(tasks);
	return stopped;
}

static void stop_daemon(pid_t daemon)
{
	assert_int_equal(kill(daemon, SIGSTOP), 0);
	/* a hang guard only: stopping takes microseconds when not loaded */
	for (int i = 0; i < 10000 && !all_threads_stopped(daemon); i++)
		usleep(1000);
	assert_true(all_threads_stopped(daemon));
}

/* In a child, with the daemon stopped: 0 if both lookups were answered
 * from the kernel's caches, else 1 (or killed by the alarm: a lookup that
 * waits for the daemon never returns). */
static bool lookups_without_daemon(pid_t daemon, const struct sockaddr_un *addr, socklen_t len,
				   const struct sockaddr_un *missing, socklen_t missing_len)
{
	pid_t child;
	int status;

	stop_daemon(daemon);
	child = fork();
	if (child == 0) {
		alarm(5);
		_exit(tssx_registry_lookup(addr, len) == 1 &&
		      tssx_registry_lookup(missing, missing_len) == -ENOENT ? 0 : 1);
	}
	assert_true(child > 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(kill(daemon, SIGCONT), 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Lookups of a cached entry and of a cached miss must be answered by the
 * kernel's caches alone.  An invalidation still on its way from the
 * daemon (after the claim) can empty a cache once: then the attempt is
 * repeated, from a settled state. */
static void test_no_daemon_round_trip(void **state)
{
	struct sockaddr_un addr, missing;
	socklen_t len = path_addr(&addr, "%s/steady.sock", work);
	socklen_t missing_len = path_addr(&missing, "%s/steady-missing.sock", work);
	const char *pid_text = getenv("TSSX_REGISTRYFS_PID");
	int listener = listen_on(&addr, len);
	struct tssx_registry_claim *claim;
	bool answered = false;

	assert_non_null(pid_text);
	claim = claim_held(&addr, len);
	for (int attempt = 0; attempt < 3 && !answered; attempt++) {
		assert_int_equal(lookup_until(&addr, len, 1), 1);
		assert_int_equal(tssx_registry_lookup(&missing, missing_len), -ENOENT);
		answered = lookups_without_daemon((pid_t)atoi(pid_text), &addr, len,
						  &missing, missing_len);
	}
	assert_true(answered);
	tssx_registry_release(claim);
	close(listener);
}

/* With the daemon stopped, calls that need it return within the bound
 * (the alarm catches one that does not), fail fast after the first, and
 * a claim made meanwhile is made once the daemon runs again. */
static void test_stopped_daemon(void **state)
{
	struct sockaddr_un addr, other;
	socklen_t len = path_addr(&addr, "%s/stopped.sock", work);
	socklen_t other_len = path_addr(&other, "%s/stopped-other.sock", work);
	const char *pid_text = getenv("TSSX_REGISTRYFS_PID");
	int listener = listen_on(&addr, len), error = 0;
	struct tssx_registry_claim *claim;
	pid_t daemon;

	assert_non_null(pid_text);
	daemon = (pid_t)atoi(pid_text);
	stop_daemon(daemon);
	alarm(20);
	claim = tssx_registry_claim(&addr, len, &error);
	assert_non_null(claim);
	assert_int_equal(tssx_registry_claim_error(claim), -ETIMEDOUT);
	/* the helper thread is still stuck: no second wait */
	assert_int_equal(tssx_registry_lookup(&other, other_len), -ETIMEDOUT);
	assert_int_equal(tssx_registry_mark_client(&other, other_len), -ENOENT);
	assert_int_equal(kill(daemon, SIGCONT), 0);
	alarm(0);
	for (int i = 0; i < 500 && tssx_registry_claim_error(claim) < 0; i++)
		usleep(10000);
	assert_int_equal(tssx_registry_claim_error(claim), 0);
	assert_int_equal(lookup_until(&addr, len, 1), 1);
	tssx_registry_release(claim);
	close(listener);
}

static void test_cache_is_bounded(void **state)
{
	enum { ENTRIES = 80 };
	struct tssx_registry_claim *claims[ENTRIES];
	int listener[ENTRIES];
	struct sockaddr_un addr;
	socklen_t len;

	for (int i = 0; i < ENTRIES; i++) {
		len = path_addr(&addr, "%s/many-%d.sock", work, i);
		listener[i] = listen_on(&addr, len);
		claims[i] = claim_held(&addr, len);
		assert_true(tssx_registry_lookup(&addr, len) >= 0);
	}
	/* 64 entries mapped at most; the rest unmapped */
	assert_true(mapped_entries() <= 64);
	assert_true(mapped_entries() >= 1);
	for (int i = 0; i < ENTRIES; i++) {
		tssx_registry_release(claims[i]);
		close(listener[i]);
	}
}

/* Lookups of names without an entry (plain sockets) evict nothing. */
static void test_misses_keep_the_cache(void **state)
{
	struct sockaddr_un addr;
	socklen_t len;
	int kept_before = kept_count(), mapped_before = mapped_entries();

	for (int i = 0; i < 100; i++) {
		len = path_addr(&addr, "%s/plain-%d.sock", work, i);
		assert_int_equal(tssx_registry_lookup(&addr, len), -ENOENT);
	}
	assert_int_equal(kept_count(), kept_before);
	assert_int_equal(mapped_entries(), mapped_before);
}

static void test_forget_fd(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = path_addr(&addr, "%s/forget.sock", work);
	int listener = listen_on(&addr, len);
	struct tssx_registry_claim *claim = claim_held(&addr, len);
	int fd, before;

	assert_int_equal(lookup_until(&addr, len, 1), 1);
	/* the last fd kept is the claim's: the application "closes" it */
	fd = last_kept;
	assert_true(fd >= 0 && kept[fd]);
	before = closes;
	kept[fd] = false;
	tssx_registry_forget_fd(fd);
	close(fd);
	assert_int_equal(closes, before); /* not closed by the client */
	assert_int_equal(tssx_registry_claim_error(claim), -EBADF);
	assert_int_equal(lookup_until(&addr, len, 0), 0);
	tssx_registry_release(claim);
	close(listener);
}

#if defined(__x86_64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef THIS_AUDIT_ARCH
/* The first system call the filtered thread tried, or -1. */
static volatile sig_atomic_t trapped_call = -1;

static void on_sigsys(int sig, siginfo_t *info, void *context)
{
	if (trapped_call < 0)
		trapped_call = info->si_syscall;
}

#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
		  BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* Traps every system call of the calling thread but what a mutex, a
 * semaphore and a signal handler's return need. */
static int trap_system_calls(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		ALLOW(SYS_futex), ALLOW(SYS_rt_sigreturn),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	struct sock_fprog program = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program);
}

struct filtered_lookup {
	const struct sockaddr_un *addr;
	socklen_t len;
	const volatile uint64_t *generation; /* the test's own mapping */
	uint64_t settled;
	bool moved; /* since it settled: no lookup made */
	int filter;
	int result;
	sem_t done;
};

/* Never returns: a thread's end makes system calls of its own (the
 * sanitizers' teardown); it waits on a futex until the process exits. */
static void *lookup_filtered(void *arg)
{
	static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
	static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
	struct filtered_lookup *l = arg;

	/* The thread's malloc arena and cache, made now: a lookup that the
	 * caches do not answer (the test then fails) allocates a job for
	 * the worker, and malloc's first call in a thread maps memory. */
	void *volatile warm = malloc(1);

	free(warm);
	l->filter = trap_system_calls();
	l->moved = *l->generation != l->settled;
	if (l->filter == 0 && !l->moved)
		l->result = tssx_registry_lookup(l->addr, l->len);
	sem_post(&l->done);
	pthread_mutex_lock(&mutex);
	for (;;)
		pthread_cond_wait(&never, &mutex);
	return NULL;
}

/* The generation page, mapped and locked like the client's. */
static const volatile uint64_t *map_generation(void)
{
	char path[PATH_MAX];
	void *page;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", mount, TSSX_REGISTRY_GENERATION);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_SHARED, fd, 0);
	assert_true(page != MAP_FAILED);
	assert_int_equal(mlock(page, (size_t)sysconf(_SC_PAGESIZE)), 0);
	close(fd);
	return page;
}

/* One lookup in a thread whose every system call traps; false if the
 * generation moved since it settled (an earlier test's release reaching
 * the daemon late), and then none was made. */
static bool lookup_trapping(struct filtered_lookup *l)
{
	struct sigaction trap = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	pthread_t thread;

	assert_int_equal(sigaction(SIGSYS, &trap, NULL), 0);
	assert_int_equal(sem_init(&l->done, 0, 0), 0);
	assert_int_equal(pthread_create(&thread, NULL, lookup_filtered, l), 0);
	while (sem_wait(&l->done) < 0)
		assert_int_equal(errno, EINTR);
	assert_int_equal(l->filter, 0);
	return !l->moved;
}

/* lookup_trapping() once the generation stayed put across a lookup that
 * answered `expected` (which thus saw the last change); false if it kept
 * moving. */
static bool settled_lookup_trapping(struct filtered_lookup *l, int expected)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		do {
			l->settled = *l->generation;
			assert_int_equal(tssx_registry_lookup(l->addr, l->len), expected);
		} while (*l->generation != l->settled);
		if (lookup_trapping(l))
			return true;
		usleep(20000);
	}
	return false;
}

/* A lookup of a name found missing before, with no change since, makes
 * no system call: the generation says no server bit appeared.  Before
 * the test of a hit: a trapped call leaves the client waiting for a
 * worker it could not wake. */
static void test_miss_makes_no_system_call(void **state)
{
	struct sockaddr_un addr, other;
	socklen_t len = path_addr(&addr, "%s/nosyscall-missing.sock", work);
	socklen_t other_len = path_addr(&other, "%s/nosyscall-other.sock", work);
	struct filtered_lookup lookup = { .addr = &addr, .len = len, .generation = map_generation() };
	int listener = listen_on(&other, other_len);
	/* A claim keeps the worker running: one that ended (its linger
	 * runs out on a loaded machine between two lookups) leaves the
	 * caller to look at the mount table itself, a system call. */
	struct tssx_registry_claim *claim = claim_held(&other, other_len);

	trapped_call = -1;
	/* The first lookup of a name the kernel never saw goes to the
	 * worker; the next one finds the negative dentry it left. */
	assert_int_equal(tssx_registry_lookup(&addr, len), -ENOENT);
	assert_true(settled_lookup_trapping(&lookup, -ENOENT));
	assert_int_equal(trapped_call, -1);
	assert_int_equal(lookup.result, -ENOENT);
	tssx_registry_release(claim);
	close(listener);
}

/* A lookup of an entry looked up before, with no change since, makes no
 * system call: a thread whose every system call traps (seccomp) gets the
 * answer.  It and the next run last: see above. */
static void test_hit_makes_no_system_call(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = path_addr(&addr, "%s/nosyscall.sock", work);
	int listener = listen_on(&addr, len);
	struct tssx_registry_claim *claim = claim_held(&addr, len);
	struct filtered_lookup lookup = { .addr = &addr, .len = len, .generation = map_generation() };

	trapped_call = -1;
	assert_int_equal(lookup_until(&addr, len, 1), 1);
	assert_true(settled_lookup_trapping(&lookup, 1));
	assert_int_equal(trapped_call, -1);
	assert_int_equal(lookup.result, 1);
	tssx_registry_release(claim);
	close(listener);
}

/* Sets a client bit of the entry through a handle of the test's own (the
 * fd returned; its close clears it) and waits until the registry counted
 * the change: the entry's page is dropped from the page cache, as a
 * loaded daemon's late invalidation of a claim drops it after a lookup
 * cached the entry. */
static int set_client_bit(const struct sockaddr_un *addr, socklen_t len, const volatile uint64_t *generation)
{
	char name[TSSX_REGISTRY_NAME_MAX], path[PATH_MAX + TSSX_REGISTRY_NAME_MAX];
	uint64_t before = *generation;
	int fd;

	assert_int_equal(tssx_registry_name_from_addr(addr, len, name, sizeof(name)), 0);
	snprintf(path, sizeof(path), "%s/%s", mount, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "2\n", 2, 0), 2);
	for (int i = 0; i < 500 && *generation == before; i++)
		usleep(10000);
	assert_true(*generation != before);
	return fd;
}

/* A cached entry whose page a change dropped is read again by the
 * worker, and the cache keeps what it read: the next lookup at the same
 * generation makes no system call.  The cache used to keep its old
 * mapping and its old generation, so that lookup made a mincore(2). */
static void test_changed_hit_makes_no_system_call(void **state)
{
	struct sockaddr_un addr;
	socklen_t len = path_addr(&addr, "%s/nosyscall-changed.sock", work);
	int listener = listen_on(&addr, len), client_fd;
	struct tssx_registry_claim *claim = claim_held(&addr, len);
	struct filtered_lookup lookup = { .addr = &addr, .len = len, .generation = map_generation() };

	trapped_call = -1;
	assert_int_equal(lookup_until(&addr, len, 1), 1);
	client_fd = set_client_bit(&addr, len, lookup.generation);
	assert_true(settled_lookup_trapping(&lookup, TSSX_BIT_SERVER | TSSX_BIT_CLIENT));
	assert_int_equal(trapped_call, -1);
	assert_int_equal(lookup.result, TSSX_BIT_SERVER | TSSX_BIT_CLIENT);
	close(client_fd);
	tssx_registry_release(claim);
	close(listener);
}
#else
static void test_miss_makes_no_system_call(void **state)
{
	skip();
}

static void test_hit_makes_no_system_call(void **state)
{
	skip();
}

static void test_changed_hit_makes_no_system_call(void **state)
{
	skip();
}
#endif

static int setup(void **state)
{
	mount = getenv("TSSX_REGISTRY");
	assert_non_null(mount);
	assert_non_null(mkdtemp(work));
	return 0;
}

static int teardown(void **state)
{
	char command[64];

	snprintf(command, sizeof(command), "rm -rf '%s'", work);
	return system(command) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_a_registry),
#ifndef __SANITIZE_ADDRESS__
		cmocka_unit_test(test_helper_allocates_nothing),
#endif
		cmocka_unit_test(test_claim_lookup_mark),
		cmocka_unit_test(test_claims_refused),
		cmocka_unit_test(test_abstract_claim),
		cmocka_unit_test(test_no_daemon_round_trip),
		cmocka_unit_test(test_stopped_daemon),
		cmocka_unit_test(test_cache_is_bounded),
		cmocka_unit_test(test_misses_keep_the_cache),
		cmocka_unit_test(test_forget_fd),
		/* last: see there */
		cmocka_unit_test(test_miss_makes_no_system_call),
		cmocka_unit_test(test_hit_makes_no_system_call),
		cmocka_unit_test(test_changed_hit_makes_no_system_call),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
