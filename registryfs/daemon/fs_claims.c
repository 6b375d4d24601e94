/*
 * The sockets behind server bits: how the daemon probes them (os_probes for
 * trust.c) and the watcher thread that voids claims whose socket went away.
 *
 * Path claims are watched with inotify on the socket's directory (unlink,
 * rename, a new bind); abstract names have no file to watch, so they are
 * polled once a second, and only while some exist.  The same thread removes
 * directories that stayed empty after their mkdir.  Probes never run under
 * the registry lock: a path can lead back into this very mount.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tssx/log.h"
#include "tssx/macros.h"
#include "fs.h"

#define ABSTRACT_POLL_MS 1000
/* How long a directory may stay empty after its mkdir. */
#define EMPTY_DIR_GRACE_SECONDS 5
#define LISTENERS_MAX 16
#define WATCH_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | \
		      IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* The whole of a /proc file open at fd, from its start, NUL-terminated,
 * malloc'd; NULL and errno. */
static char *read_proc_fd(int fd)
{
	__do_free char *text = NULL;
	size_t size = 0, cap = 0;

	for (;;) {
		ssize_t n;

		if (cap - size < 4096) {
			char *grown = realloc(text, cap = cap ? 2 * cap : 16384);

			if (!grown)
				return NULL;
			text = grown;
		}
		n = pread(fd, text + size, cap - size - 1, (off_t)size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		if (n == 0)
			break;
		size += (size_t)n;
	}
	text[size] = '\0';
	return move_ptr(text);
}

static char *read_proc_file(const char *path)
{
	__do_close int fd = open(path, O_RDONLY | O_CLOEXEC);

	return fd < 0 ? NULL : read_proc_fd(fd);
}

/*
 * Abstract names in other network namespaces (containers): the claim is
 * checked in the writer's /proc/PID/net/unix, and checked again later in
 * that namespace through a /proc/PID/net/unix kept open, which keeps
 * showing its namespace's sockets after the writer is gone.  One per
 * namespace, closed once no claim of it is left (recheck_all).
 */
#define NETNS_VIEWS_MAX 64
/* A view no claim uses is kept this long: its claim may be on its way
 * into the table. */
#define NETNS_VIEW_GRACE_SECONDS 5

static struct {
	pthread_mutex_t lock;
	struct netns_view {
		uint64_t ino;
		int fd;
		time_t used;
	} views[NETNS_VIEWS_MAX];
	size_t n;
} netns = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The inode of pid's network namespace (0 for the daemon itself), or 0. */
static uint64_t netns_of(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid > 0 ? (int)pid : (int)getpid());
	return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static struct netns_view *find_view(uint64_t ino)
{
	for (size_t i = 0; i < netns.n; i++)
		if (netns.views[i].ino == ino)
			return &netns.views[i];
	return NULL;
}

/* The unix socket table of namespace `ino`, opening its view through pid
 * (> 0) when there is none yet; NULL and errno. */
static char *read_netns_table(uint64_t ino, pid_t pid)
{
	struct netns_view *view;
	char path[64], *text = NULL;
	int fd;

	pthread_mutex_lock(&netns.lock);
	view = find_view(ino);
	if (!view && pid > 0 && netns.n < NETNS_VIEWS_MAX) {
		snprintf(path, sizeof(path), "/proc/%d/net/unix", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && netns_of(pid) == ino) {
			view = &netns.views[netns.n++];
			*view = (struct netns_view){ .ino = ino, .fd = fd };
		} else if (fd >= 0) {
			close(fd); /* it moved meanwhile: no view */
		}
	}
	if (view) {
		view->used = time(NULL);
		text = read_proc_fd(view->fd);
	} else {
		errno = pid > 0 && netns.n == NETNS_VIEWS_MAX ? ENOSPC : ENOENT;
	}
	pthread_mutex_unlock(&netns.lock);
	return text;
}

/* Closes the views no claim uses any more. */
static void prune_netns_views(const struct claim *claims, size_t n)
{
	time_t now = time(NULL);

	pthread_mutex_lock(&netns.lock);
	for (size_t i = 0; i < netns.n;) {
		bool used = now - netns.views[i].used < NETNS_VIEW_GRACE_SECONDS;

		for (size_t c = 0; c < n && !used; c++)
			used = claims[c].netns == netns.views[i].ino;
		if (used) {
			i++;
			continue;
		}
		close(netns.views[i].fd);
		netns.views[i] = netns.views[--netns.n];
	}
	pthread_mutex_unlock(&netns.lock);
}

static bool fd_is_socket_inode(int fd_dir, const char *fd_name, const unsigned long *inodes,
			       size_t n)
{
	char link[64];
	unsigned long inode;
	ssize_t len = readlinkat(fd_dir, fd_name, link, sizeof(link) - 1);

	if (len < 0)
		return false;
	link[len] = '\0';
	if (sscanf(link, "socket:[%lu]", &inode) != 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (inodes[i] == inode)
			return true;
	return false;
}

/* Whether `pid` (a thread id works too) holds one of the sockets. */
static bool holds_socket(pid_t pid, const unsigned long *inodes, size_t n)
{
	char path[64];
	struct dirent *d;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return false;
	while (!found && (d = readdir(dir)))
		found = d->d_name[0] != '.' && fd_is_socket_inode(dirfd(dir), d->d_name, inodes, n);
	closedir(dir);
	return found;
}

static int probe_abstract_listener(const char *name, size_t n, pid_t pid, uint64_t *ns)
{
	static uint64_t own; /* the daemon's namespace: the same for good */
	unsigned long inodes[LISTENERS_MAX];
	char *table;
	size_t found;

	if (!__atomic_load_n(&own, __ATOMIC_RELAXED))
		__atomic_store_n(&own, netns_of(0), __ATOMIC_RELAXED);
	if (pid > 0) {
		uint64_t ino = netns_of(pid);

		if (!ino)
			return -ESRCH;
		*ns = ino == __atomic_load_n(&own, __ATOMIC_RELAXED) ? 0 : ino;
	}
	table = *ns ? read_netns_table(*ns, pid) : read_proc_file("/proc/self/net/unix");

	if (!table)
		return -errno;
	found = unix_table_listeners(table, name, n, inodes, LISTENERS_MAX);
	free(table);
	if (found == 0)
		return 0;
	if (pid <= 0)
		return 1;
	return holds_socket(pid, inodes, found < LISTENERS_MAX ? found : LISTENERS_MAX);
}

static int probe_identify(pid_t pid, const char *path, struct file_identity *id)
{
	char in_root[PATH_MAX];
	struct statx stx;

	/* The writer's root: /proc/PID/root resolves the rest in its mount
	 * namespace and below its root (chroot, pivot_root). */
	if (pid > 0 && snprintf(in_root, sizeof(in_root), "/proc/%d/root%s", (int)pid, path) >=
			       (int)sizeof(in_root))
		return -ENAMETOOLONG;
	if (statx(AT_FDCWD, pid > 0 ? in_root : path, AT_SYMLINK_NOFOLLOW,
		  STATX_BASIC_STATS | STATX_BTIME, &stx) < 0)
		return -errno;
	*id = (struct file_identity){
		.mode = stx.stx_mode,
		.uid = stx.stx_uid,
		.dev = makedev(stx.stx_dev_major, stx.stx_dev_minor),
		.ino = stx.stx_ino,
	};
	if (stx.stx_mask & STATX_BTIME)
		id->born = (struct timespec){ stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec };
	else
		id->born = (struct timespec){ stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec };
	return 0;
}

const struct trust_probes os_probes = {
	.identify = probe_identify,
	.abstract_listener = probe_abstract_listener,
};

/* Probes the claims (no lock held) and voids those that no longer hold. */
static struct pending_inval void_gone_claims(struct claim *claims, size_t n, size_t *remaining)
{
	__do_free uint64_t *gone = malloc((n ? n : 1) * sizeof(*gone));
	size_t ngone = 0;

	*remaining = n;
	if (!gone)
		return (struct pending_inval){ 0 };
	for (size_t i = 0; i < n; i++)
		if (!trust_claim_holds(registry.probes, &claims[i]))
			gone[ngone++] = claims[i].id;
	*remaining = n - ngone;
	registry_lock();
	table_void_claims(registry.table, gone, ngone);
	return registry_unlock();
}

static ssize_t collect_claims(uint64_t ino, enum claim_kind kind, struct claim **claims)
{
	ssize_t n;

	registry_lock();
	n = table_collect_claims(registry.table, ino, kind, claims);
	notifier_send(registry_unlock());
	return n;
}

struct pending_inval claims_recheck(uint64_t ino, enum claim_kind kind, size_t *remaining)
{
	__do_free struct claim *claims = NULL;
	ssize_t n = collect_claims(ino, kind, &claims);

	*remaining = 0;
	if (n <= 0)
		return (struct pending_inval){ 0 };
	return void_gone_claims(claims, (size_t)n, remaining);
}

/* The watcher thread. */

struct watched_dir {
	char path[PATH_MAX];
	int wd;
	bool used;
	UT_hash_handle hh;
};

static struct {
	int inotify_fd;
	int wake_fd;
	bool stopping;
	bool running;
	pthread_t thread;
	struct watched_dir *dirs;
} watcher = { .inotify_fd = -1, .wake_fd = -1 };

static void watch_dir_of(const struct claim *claim)
{
	char copy[sizeof(claim->addr.sun_path) + 1];
	struct watched_dir *w;
	const char *dir;

	memcpy(copy, claim->addr.sun_path, sizeof(claim->addr.sun_path));
	copy[sizeof(claim->addr.sun_path)] = '\0';
	dir = dirname(copy);
	HASH_FIND_STR(watcher.dirs, dir, w);
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return;
		strcpy(w->path, dir);
		w->wd = inotify_add_watch(watcher.inotify_fd, dir, WATCH_EVENTS);
		if (w->wd < 0)
			log_warn(0, "cannot watch %s: %m", dir);
		HASH_ADD_STR(watcher.dirs, path, w);
	}
	w->used = true;
}

/* Watches exactly the directories of the current path claims. */
static void sync_watches(const struct claim *claims, size_t n)
{
	struct watched_dir *w, *tmp;

	HASH_ITER(hh, watcher.dirs, w, tmp)
		w->used = false;
	for (size_t i = 0; i < n; i++)
		watch_dir_of(&claims[i]);
	HASH_ITER(hh, watcher.dirs, w, tmp) {
		if (w->used)
			continue;
		if (w->wd >= 0)
			inotify_rm_watch(watcher.inotify_fd, w->wd);
		HASH_DEL(watcher.dirs, w);
		free(w);
	}
}

/* Removes directories left empty by a writer that died after its mkdir;
 * returns whether some may need removing later. */
static bool reap_empty_dirs(void)
{
	unsigned young;

	registry_lock();
	young = table_reap_empty_dirs(registry.table, time(NULL), EMPTY_DIR_GRACE_SECONDS);
	notifier_send(registry_unlock());
	return young > 0;
}

/* One round: watch, then probe, so that no change slips between them.
 * Returns whether something (abstract claims, young empty directories)
 * needs looking at again in a while. */
static bool recheck_all(void)
{
	__do_free struct claim *claims = NULL, *abstract = NULL;
	ssize_t n = collect_claims(0, CLAIM_PATH, &claims);
	ssize_t na = collect_claims(0, CLAIM_ABSTRACT, &abstract);
	size_t remaining = 0;

	sync_watches(claims, n > 0 ? (size_t)n : 0);
	if (n > 0)
		notifier_send(void_gone_claims(claims, (size_t)n, &remaining));
	prune_netns_views(abstract, na > 0 ? (size_t)na : 0);
	remaining = 0; /* path claims are watched: only abstract ones are polled */
	if (na > 0)
		notifier_send(void_gone_claims(abstract, (size_t)na, &remaining));
	return reap_empty_dirs() || remaining > 0;
}

static void drain(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void *watcher_main(void *arg)
{
	struct pollfd fds[2] = {
		{ .fd = watcher.inotify_fd, .events = POLLIN },
		{ .fd = watcher.wake_fd, .events = POLLIN },
	};

	while (!__atomic_load_n(&watcher.stopping, __ATOMIC_ACQUIRE)) {
		bool again = recheck_all();

		if (poll(fds, 2, again ? ABSTRACT_POLL_MS : -1) < 0 && errno != EINTR)
			break;
		drain(watcher.inotify_fd);
		drain(watcher.wake_fd);
	}
	return NULL;
}

void watcher_kick(void)
{
	uint64_t one = 1;

	if (watcher.wake_fd >= 0 && write(watcher.wake_fd, &one, sizeof(one)) < 0)
		log_warn(0, "cannot wake the claim watcher: %m");
}

int watcher_start(void)
{
	int r;

	watcher.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	watcher.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (watcher.inotify_fd < 0 || watcher.wake_fd < 0)
		return log_error(-errno, "cannot set up the claim watcher: %m");
	r = pthread_create(&watcher.thread, NULL, watcher_main, NULL);
	if (r)
		return log_error(-r, "cannot start the claim watcher: %s", strerror(r));
	watcher.running = true;
	return 0;
}

void watcher_stop(void)
{
	struct watched_dir *w, *tmp;

	if (watcher.running) {
		__atomic_store_n(&watcher.stopping, true, __ATOMIC_RELEASE);
		watcher_kick();
		pthread_join(watcher.thread, NULL);
		watcher.running = false;
	}
	HASH_ITER(hh, watcher.dirs, w, tmp) {
		HASH_DEL(watcher.dirs, w);
		free(w);
	}
	if (watcher.inotify_fd >= 0)
		close(watcher.inotify_fd);
	if (watcher.wake_fd >= 0)
		close(watcher.wake_fd);
	watcher.inotify_fd = watcher.wake_fd = -1;
}
