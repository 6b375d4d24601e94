/* Segments recycled per server (recycle.h, docs/data-path.md). */
#include <errno.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "conn/connection.h"
#include "conn/kept.h"
#include "conn/recycle.h"
#include "conn/unseen.h"
#include "init.h"
#include "real_slots.h"
#include "tssx/log.h"
#include "tssx/pool.h"

/* A few segments per server: a client that keeps several connections to
 * one server open at once closes them in bursts. */
#define PER_SERVER 4
/* An item idle longer is not taken, and is freed by the next connect or
 * close that looks. */
#define IDLE_MS 10000

/* A client's segment whose connection ended. */
struct pooled {
	struct tssx_kept_fd memfd; /* first: the table's object is the record */
	struct tssx_segment seg;
	struct ucred cred;
};

/* A server's mapping of a memfd whose connection ended, with the memfd. */
struct cached {
	struct tssx_kept_fd memfd;
	void *base;
	size_t size;
};

struct cached_key {
	uint64_t dev, ino;
};

/* Both pools, in one allocation made at the first use; the lock and the
 * count of items in the page fork() touches (TSSX_FORK_DATA): a child of
 * a process whose pools are empty reads nothing else of them. */
struct pools {
	struct tssx_pool clients, servers;
};
static struct pools *pools;
static pthread_mutex_t pools_lock TSSX_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
static unsigned pooled_items TSSX_FORK_DATA;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
/* kcmp(2) answers for this process: -1 not known yet, 0 no, 1 yes. */
static _Atomic int kcmp_works = -1;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void lock_for_fork(void)
{
	pthread_mutex_lock(&pools_lock);
}

TSSX_FORK_HANDLER static void unlock_in_parent(void)
{
	pthread_mutex_unlock(&pools_lock);
}

/* The fd of a kept record, out of the table (a plain fd of the caller's
 * from now on), or -1.  The record is no longer in the table after it.
 * Under the kept lock unless the process has one thread (a fork() child). */
static int unkeep(struct tssx_kept_fd *kept)
{
	int fd = atomic_exchange(&kept->fd, -1);

	if (fd >= 0)
		tssx_table_take(fd);
	return fd;
}

/* Closes a kept record's fd, taking the kept lock unless the caller
 * holds it (or is a fork() child, alone). */
static void close_unkept(struct tssx_kept_fd *kept, bool locked)
{
	int fd;

	if (!locked)
		tssx_kept_lock();
	fd = unkeep(kept);
	if (!locked)
		tssx_kept_unlock();
	if (fd >= 0)
		TSSX_REAL(close)(fd);
}

static void free_pooled(struct pooled *p, bool locked)
{
	close_unkept(&p->memfd, locked);
	tssx_segment_detach(&p->seg);
	free(p);
}

static void free_cached(struct cached *c, bool locked)
{
	close_unkept(&c->memfd, locked);
	munmap(c->base, c->size);
	free(c);
}

/* A fork()ed child: its copies of the parent's pooled segments and
 * mappings are the parent's to recycle, never the child's.  It closes
 * and unmaps them (the kept lock is the forking thread's, this one: the
 * child has no other). */
TSSX_FORK_HANDLER static void drop_in_child(void)
{
	void *item;

	if (pooled_items) {
		while ((item = tssx_pool_drain(&pools->clients)))
			free_pooled(item, true);
		while ((item = tssx_pool_drain(&pools->servers)))
			free_cached(item, true);
		pooled_items = 0;
	}
	pthread_mutex_unlock(&pools_lock);
}

static void setup(void)
{
	pools = calloc(1, sizeof(*pools));
	if (!pools)
		return;
	tssx_pool_init(&pools->clients, PER_SERVER, IDLE_MS);
	tssx_pool_init(&pools->servers, 1, IDLE_MS);
	pthread_atfork(lock_for_fork, unlock_in_parent, drop_in_child);
}

bool tssx_recycle_enabled(void)
{
	if (!tssx_opts.recycle)
		return false;
	pthread_once(&setup_once, setup);
	return pools != NULL;
}

/* Whether this process may take an item of the pools now: they hold
 * some, and it is no vfork() child (which shares them with its parent,
 * but not its fds; asked only then: it costs a system call). */
static bool may_take(void)
{
	return tssx_recycle_enabled() && __atomic_load_n(&pooled_items, __ATOMIC_RELAXED) && !tssx_foreign_process();
}

/* Items idle too long, out of both pools, to free after the lock. */
struct expired {
	void *client[TSSX_POOL_SLOTS], *server[TSSX_POOL_SLOTS];
	unsigned clients, servers;
};

static void collect_expired(struct expired *e, uint64_t now)
{
	void *item;

	while (e->clients < TSSX_POOL_SLOTS && (item = tssx_pool_expired(&pools->clients, now)))
		e->client[e->clients++] = item;
	while (e->servers < TSSX_POOL_SLOTS && (item = tssx_pool_expired(&pools->servers, now)))
		e->server[e->servers++] = item;
}

static void free_expired(const struct expired *e)
{
	for (unsigned i = 0; i < e->clients; i++)
		free_pooled(e->client[i], false);
	for (unsigned i = 0; i < e->servers; i++)
		free_cached(e->server[i], false);
}

static void count_items(void)
{
	__atomic_store_n(&pooled_items, pools->clients.count + pools->servers.count, __ATOMIC_RELAXED);
}

size_t tssx_recycle_key(const struct sockaddr_un *addr, socklen_t len, const char **key)
{
	size_t name_len;

	if ((size_t)len <= offsetof(struct sockaddr_un, sun_path))
		return 0;
	name_len = (size_t)len - offsetof(struct sockaddr_un, sun_path);
	if (name_len > sizeof(addr->sun_path))
		return 0;
	if (addr->sun_path[0])
		name_len = strnlen(addr->sun_path, name_len);
	*key = addr->sun_path;
	return name_len;
}

/* An item of key from pool that usable accepts, or NULL; and what idled
 * too long freed. */
static void *take(struct tssx_pool *pool, const void *key, size_t key_len, bool (*usable)(void *item, void *arg))
{
	struct expired expired = { 0 };
	uint64_t now = now_ms();
	void *item;

	pthread_mutex_lock(&pools_lock);
	item = tssx_pool_take(pool, key, key_len, now, usable, NULL);
	collect_expired(&expired, now);
	count_items();
	pthread_mutex_unlock(&pools_lock);
	free_expired(&expired);
	return item;
}

static bool released(void *item, void *arg)
{
	(void)arg;
	return tssx_segment_released(&((struct pooled *)item)->seg);
}

bool tssx_recycle_take(const struct sockaddr_un *addr, socklen_t len, struct tssx_segment *seg, int *memfd,
		       struct ucred *cred, struct tssx_hello *hello)
{
	const char *key = NULL;
	size_t key_len = tssx_recycle_key(addr, len, &key);
	struct pooled *p;

	if (!key_len || !may_take() || !(p = take(&pools->clients, key, key_len, released)))
		return false;
	if (tssx_segment_renew(&p->seg, tssx_opts.ring_size, tssx_opts.ring_size, hello) < 0) {
		free_pooled(p, false);
		return false;
	}
	tssx_kept_lock();
	*memfd = unkeep(&p->memfd);
	tssx_kept_unlock();
	if (*memfd < 0) {
		free_pooled(p, false);
		return false;
	}
	*seg = p->seg;
	*cred = p->cred;
	free(p);
	return true;
}

/* Whether kcmp(2) tells files apart here (a kernel without it, or a
 * seccomp filter that refuses it: no server mapping is kept).  Both
 * kcmp calls go to libc's syscall(), not the library's wrapper of it,
 * which looks for fd calls kcmp is not (as the futex's, conn/bell.c). */
static bool kcmp_usable(int fd)
{
	int works = atomic_load(&kcmp_works);

	if (works < 0) {
		pid_t self = tssx_owner_pid();

		works = TSSX_REAL(syscall)(SYS_kcmp, self, self, KCMP_FILE, fd, fd) == 0;
		atomic_store(&kcmp_works, works);
	}
	return works;
}

/* Moves the connection's kept memfd to the record to (its table slot
 * follows); false when it has none. */
static bool move_memfd(struct tssx_conn *conn, struct tssx_kept_fd *to)
{
	int fd;

	to->obj.kind = TSSX_FD_SEGMENT;
	atomic_init(&to->obj.refs, 0);
	tssx_kept_lock();
	fd = atomic_exchange(&conn->memfd.fd, -1);
	atomic_init(&to->fd, fd);
	if (fd >= 0 && tssx_table_set(fd, &to->obj) < 0) {
		tssx_table_take(fd);
		TSSX_REAL(close)(fd);
		atomic_store(&to->fd, -1);
		fd = -1;
	}
	tssx_kept_unlock();
	return fd >= 0;
}

static void *put(struct tssx_pool *pool, const void *key, size_t key_len, void *item)
{
	struct expired expired = { 0 };
	uint64_t now = now_ms();
	void *evicted;

	pthread_mutex_lock(&pools_lock);
	evicted = tssx_pool_put(pool, key, key_len, item, now);
	collect_expired(&expired, now);
	count_items();
	pthread_mutex_unlock(&pools_lock);
	free_expired(&expired);
	return evicted;
}

/*
 * Whether either ring of conn grew, as this process learnt it or as the
 * rings' grown words say (which the peer may write: a wrong value only
 * keeps a segment out of the pool).  A grown segment is not kept: idle,
 * its data areas would hold up to both rings' capacity, and neither end
 * may give them back before the other is done (the peer may still be
 * reading them).
 */
static bool grew(const struct tssx_conn *conn)
{
	for (int dir = TSSX_C2S; dir <= TSSX_S2C; dir++)
		if (tssx_ring_ever_grew(&conn->seg.ring[dir]))
			return true;
	return false;
}

static bool put_server(struct tssx_conn *conn)
{
	struct cached_key key = { conn->seg_dev, conn->seg_ino };
	struct cached *c, *evicted;
	int fd = atomic_load(&conn->memfd.fd);

	if (fd < 0 || !conn->listened_here || grew(conn) || !kcmp_usable(fd) || !(c = calloc(1, sizeof(*c))))
		return false;
	if (!move_memfd(conn, &c->memfd)) {
		free(c);
		return false;
	}
	c->base = conn->seg.base;
	c->size = conn->seg.size;
	memset(&conn->seg, 0, sizeof(conn->seg));
	evicted = put(&pools->servers, &key, sizeof(key), c);
	if (evicted)
		free_cached(evicted, false);
	return true;
}

static bool put_client(struct tssx_conn *conn)
{
	struct pooled *p, *evicted;

	if (!conn->recycle_key_len || grew(conn) || !(p = calloc(1, sizeof(*p))))
		return false;
	if (!move_memfd(conn, &p->memfd)) {
		free(p);
		return false;
	}
	p->seg = conn->seg;
	p->cred = conn->peer_cred;
	memset(&conn->seg, 0, sizeof(conn->seg));
	evicted = put(&pools->clients, conn->recycle_key, conn->recycle_key_len, p);
	if (evicted)
		free_pooled(evicted, false);
	return true;
}

bool tssx_recycle_put(struct tssx_conn *conn)
{
	/* Only a connection that was set up, and that no other process can
	 * hold: made after this process's last fork(), never handed to an
	 * exec'd image nor duplicated, not left at exit or exec.  (A vfork()
	 * child never ends a connection: its close leaves the parent's
	 * alone, shims/fd.c.) */
	if (!conn->seg.base || atomic_load(&conn->state) != TSSX_CONN_READY || !tssx_unseen_held_alone(conn) ||
	    conn->pair_left)
		return false;
	if (conn->server) {
		/* Every call of this process is done with the rings (the
		 * connection ends under both side locks, with no reference
		 * left): the client may have the segment back, whether the
		 * mapping stays here or not.  Before the pool has it, which
		 * may unmap it from another thread. */
		tssx_segment_release(&conn->seg);
		return tssx_recycle_enabled() && conn->seg_ino && put_server(conn);
	}
	return tssx_recycle_enabled() && put_client(conn);
}

void *tssx_recycle_mapping(int memfd, uint64_t dev, uint64_t ino, size_t size, int *kept)
{
	struct cached_key key = { dev, ino };
	struct cached *c;
	void *base;
	int fd;

	if (!may_take() || !(c = take(&pools->servers, &key, sizeof(key), NULL)))
		return NULL;
	/* The very file mapped before, not one that has its numbers. */
	fd = atomic_load(&c->memfd.fd);
	if (c->size != size || fd < 0 ||
	    TSSX_REAL(syscall)(SYS_kcmp, tssx_owner_pid(), tssx_owner_pid(), KCMP_FILE, fd, memfd) != 0) {
		free_cached(c, false);
		return NULL;
	}
	tssx_kept_lock();
	*kept = unkeep(&c->memfd);
	tssx_kept_unlock();
	base = c->base;
	if (*kept < 0) /* moved by a dup2() onto it, and lost */
		munmap(base, c->size);
	free(c);
	return *kept < 0 ? NULL : base;
}
