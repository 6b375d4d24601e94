/*
 * The registry as the preload library uses it (registry_client.h).
 *
 * Speed: the first lookup of a name opens its registry file O_RDONLY and
 * keeps the fd in a small LRU cache; later lookups are one pread() that the
 * kernel serves from the page cache, which the daemon invalidates when the
 * bits change.  A missing name costs a failed openat() on a cached negative
 * dentry.  Neither reaches the daemon in the steady state.
 *
 * Liveness: the mount point counts as a registry only when its root answers
 * the "user.tssx.registry" attribute; otherwise, or once the daemon is gone
 * (ENOTCONN), every call fails fast and the next one checks again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <uthash.h>
#include <unistd.h>

#include "tssx/log.h"
#include "tssx/registry_client.h"
#include "tssx/registry_name.h"

#define CACHE_MAX 64
/* A concurrent release may remove a parent we just made: try again. */
#define CREATE_ATTEMPTS 3

struct cached_entry {
	UT_hash_handle hh;
	uint64_t last_use;
	int fd;    /* O_RDONLY, for lookups; -1 once the application closed it */
	int rw_fd; /* O_RDWR holding the client bit, or -1 */
	char name[];
};

static struct {
	pthread_mutex_t lock;
	struct tssx_registry_hooks hooks;
	char mountpoint[PATH_MAX];
	int dir_fd; /* the live registry's root, or -1 */
	struct cached_entry *entries;
	unsigned count;
	uint64_t clock;
} client = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.hooks = { .close = close },
	.dir_fd = -1,
};

static void keep_fd(int fd)
{
	if (client.hooks.fd_kept)
		client.hooks.fd_kept(fd);
}

static void drop_fd(int fd)
{
	if (fd < 0)
		return;
	if (client.hooks.fd_dropped)
		client.hooks.fd_dropped(fd);
	client.hooks.close(fd);
}

static void drop_entry(struct cached_entry *e)
{
	HASH_DEL(client.entries, e);
	client.count--;
	drop_fd(e->fd);
	drop_fd(e->rw_fd);
	free(e);
}

/* The daemon is gone or was replaced: start over at the next call. */
static void drop_registry(void)
{
	struct cached_entry *e, *tmp;

	HASH_ITER(hh, client.entries, e, tmp)
		drop_entry(e);
	drop_fd(client.dir_fd);
	client.dir_fd = -1;
}

static int fail(int err)
{
	if (err == -ENOTCONN || err == -ECONNABORTED)
		drop_registry();
	return err;
}

static bool is_registry(int dir_fd)
{
	char version[64];

	return fgetxattr(dir_fd, TSSX_REGISTRY_XATTR, version, sizeof(version)) > 0;
}

/* The registry's root fd, opening and checking it when needed. */
static int registry_dir(void)
{
	int fd;

	if (client.dir_fd >= 0)
		return client.dir_fd;
	if (client.mountpoint[0] == '\0')
		return -ENOTCONN;
	fd = openat(AT_FDCWD, client.mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!is_registry(fd)) {
		client.hooks.close(fd);
		return -ENOTCONN;
	}
	keep_fd(fd);
	client.dir_fd = fd;
	return fd;
}

static void lock_client(void)
{
	pthread_mutex_lock(&client.lock);
}

static void unlock_client(void)
{
	pthread_mutex_unlock(&client.lock);
}

static void register_atfork(void)
{
	pthread_atfork(lock_client, unlock_client, unlock_client);
}

int tssx_registry_client_init(const char *mountpoint, const struct tssx_registry_hooks *hooks)
{
	static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
	int r;

	if (!mountpoint || strlen(mountpoint) >= sizeof(client.mountpoint))
		return -EINVAL;
	lock_client();
	if (hooks) {
		client.hooks = *hooks;
		if (!client.hooks.close)
			client.hooks.close = close;
	}
	strcpy(client.mountpoint, mountpoint);
	drop_registry();
	r = registry_dir();
	unlock_client();
	/* A fork while another thread holds the lock must not leave it held. */
	pthread_once(&atfork_once, register_atfork);
	return r < 0 ? r : 0;
}

static int name_of(const struct sockaddr_un *addr, socklen_t len, char name[TSSX_REGISTRY_NAME_MAX])
{
	return tssx_registry_name_from_addr(addr, len, name, TSSX_REGISTRY_NAME_MAX);
}

static void evict_oldest(void)
{
	struct cached_entry *e, *tmp, *oldest = NULL;

	HASH_ITER(hh, client.entries, e, tmp)
		if (!oldest || e->last_use < oldest->last_use)
			oldest = e;
	if (oldest)
		drop_entry(oldest);
}

static int open_read_only(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	keep_fd(fd);
	return fd;
}

static struct cached_entry *new_entry(const char *name)
{
	struct cached_entry *e;

	if (client.count >= CACHE_MAX)
		evict_oldest();
	e = malloc(sizeof(*e) + strlen(name) + 1);
	if (!e)
		return NULL;
	strcpy(e->name, name);
	e->fd = e->rw_fd = -1;
	HASH_ADD_STR(client.entries, name, e);
	client.count++;
	return e;
}

/*
 * The cache entry of `name`, with its read-only fd open; NULL and *err.
 * A name that does not exist takes no place in the cache: lookups of plain
 * sockets must not evict the entries of TSSX ones.
 */
static struct cached_entry *cached_entry(const char *name, int *err)
{
	struct cached_entry *e;
	int dir_fd = registry_dir(), fd;

	if (dir_fd < 0) {
		*err = dir_fd;
		return NULL;
	}
	HASH_FIND_STR(client.entries, name, e);
	if (!e || e->fd < 0) {
		fd = open_read_only(dir_fd, name);
		if (fd < 0) {
			*err = fail(fd); /* which may drop every entry */
			return NULL;
		}
		if (!e)
			e = new_entry(name);
		if (!e) {
			drop_fd(fd);
			*err = -ENOMEM;
			return NULL;
		}
		e->fd = fd;
	}
	e->last_use = ++client.clock;
	return e;
}

static int read_bits(int fd)
{
	char buf[2];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	if (n < 0)
		return -errno;
	if (n != 2 || buf[0] < '0' || buf[0] > '3' || buf[1] != '\n')
		return -EBADMSG;
	return buf[0] - '0';
}

static int write_bits(int fd, unsigned bits)
{
	char buf[2] = { (char)('0' + bits), '\n' };
	ssize_t n = pwrite(fd, buf, sizeof(buf), 0);

	if (n < 0)
		return -errno;
	return n == sizeof(buf) ? 0 : -EIO;
}

/* Runs `action` on the cache entry of the address, under the lock. */
static int with_cached_entry(const struct sockaddr_un *addr, socklen_t len,
			     int (*action)(struct cached_entry *e))
{
	char name[TSSX_REGISTRY_NAME_MAX];
	struct cached_entry *e;
	int r = name_of(addr, len, name);

	if (r < 0)
		return r;
	lock_client();
	e = cached_entry(name, &r);
	if (e)
		r = fail(action(e));
	unlock_client();
	return r;
}

static int read_entry_bits(struct cached_entry *e)
{
	return read_bits(e->fd);
}

int tssx_registry_lookup(const struct sockaddr_un *addr, socklen_t len)
{
	return with_cached_entry(addr, len, read_entry_bits);
}

/* mkdir -p of the directories above `name`, which live entries imply. */
static int make_parents(int dir_fd, const char *name)
{
	char path[TSSX_REGISTRY_NAME_MAX];

	strcpy(path, name);
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

/* Opens `name` read-write and sets `bits` as that handle's contribution. */
static int open_with_bits(int dir_fd, const char *name, unsigned bits)
{
	int fd = open_read_write(dir_fd, name);
	int r;

	if (fd < 0)
		return fd;
	r = write_bits(fd, bits);
	if (r < 0) {
		client.hooks.close(fd);
		return r;
	}
	return fd;
}

int tssx_registry_claim(const struct sockaddr_un *addr, socklen_t len, unsigned bits)
{
	char name[TSSX_REGISTRY_NAME_MAX];
	int r = name_of(addr, len, name);

	if (r < 0)
		return r;
	if (bits > (TSSX_BIT_SERVER | TSSX_BIT_CLIENT))
		return -EINVAL;
	lock_client();
	r = registry_dir();
	if (r >= 0)
		r = fail(open_with_bits(r, name, bits));
	unlock_client();
	return r;
}

/* The client bit lives on a second, read-write handle next to the cached
 * read-only one. */
static int set_client_bit(struct cached_entry *e)
{
	int fd;

	if (e->rw_fd >= 0)
		return 0;
	fd = open_with_bits(client.dir_fd, e->name, TSSX_BIT_CLIENT);
	if (fd < 0)
		return fd;
	keep_fd(fd);
	e->rw_fd = fd;
	return 0;
}

int tssx_registry_mark_client(const struct sockaddr_un *addr, socklen_t len)
{
	return with_cached_entry(addr, len, set_client_bit);
}

void tssx_registry_forget_fd(int fd)
{
	struct cached_entry *e, *tmp;

	if (fd < 0)
		return;
	lock_client();
	if (client.dir_fd == fd)
		client.dir_fd = -1;
	HASH_ITER(hh, client.entries, e, tmp) {
		if (e->fd == fd)
			e->fd = -1;
		if (e->rw_fd == fd)
			e->rw_fd = -1;
		if (e->fd < 0 && e->rw_fd < 0)
			drop_entry(e);
	}
	unlock_client();
}
