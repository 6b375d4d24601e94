/*
 * Kernel cache invalidations (docs/design.md §6).  A notify_inval_* sent from
 * inside the handler of a request on the same inode can deadlock the kernel
 * against itself, so handlers only queue the table's events and hand them,
 * after replying, to this thread, which sends them, and then increments
 * the generation (fs_generation.c) once they have all reached the kernel.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>

#include "tssx/log.h"
#include "fs.h"

#define NOTIFIER_STOP_SECONDS 2

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct reg_event *events;
	size_t n;
	bool stopping;
	bool running;
	pthread_t thread;
} notifier = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
};

/*
 * No automatic invalidation of content: the notifier invalidates every
 * change itself.  With it, a read of an entry whose attributes an earlier
 * change invalidated would first ask for them (a GETATTR, a second round
 * trip to this daemon for every new process's first lookup), only to see
 * that the size never changes.
 */
void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

void registry_lock(void)
{
	pthread_mutex_lock(&registry.lock);
}

struct pending_inval registry_unlock(void)
{
	struct pending_inval pending;

	pending.n = table_take_events(registry.table, &pending.events);
	pthread_mutex_unlock(&registry.lock);
	return pending;
}

/* Appends to the queue; on ENOMEM the events are lost (caches stay stale
 * until their timeout) rather than blocking a handler. */
static void enqueue(struct pending_inval pending)
{
	struct reg_event *grown = realloc(notifier.events,
					  (notifier.n + pending.n) * sizeof(*grown));

	if (!grown) {
		log_error(0, "out of memory: %zu invalidations lost", pending.n);
		table_free_events(pending.events, pending.n);
		return;
	}
	memcpy(grown + notifier.n, pending.events, pending.n * sizeof(*grown));
	notifier.events = grown;
	notifier.n += pending.n;
	free(pending.events);
}

void notifier_send(struct pending_inval pending)
{
	if (pending.n == 0) {
		free(pending.events);
		return;
	}
	pthread_mutex_lock(&notifier.lock);
	enqueue(pending);
	pthread_cond_signal(&notifier.wake);
	pthread_mutex_unlock(&notifier.lock);
}

static void send_one(const struct reg_event *ev)
{
	int r;

	if (ev->kind == REG_INVAL_INODE)
		r = fuse_lowlevel_notify_inval_inode(registry.se, ev->ino, 0, 0);
	else
		r = fuse_lowlevel_notify_inval_entry(registry.se, ev->parent, ev->name,
						     strlen(ev->name));
	/* ENOENT: the kernel had nothing cached; EBADF: unmounting. */
	if (r < 0 && r != -ENOENT && r != -EBADF && r != -ENOTCONN)
		log_warn(0, "invalidation of inode %llu failed: %s",
			 (unsigned long long)(ev->kind == REG_INVAL_INODE ? ev->ino : ev->parent),
			 strerror(-r));
}

/* Whether any of them changed an entry's content. */
static bool send_all(const struct reg_event *events, size_t n)
{
	bool content = false;

	for (size_t i = 0; i < n; i++) {
		send_one(&events[i]);
		content |= events[i].kind == REG_INVAL_INODE;
	}
	return content;
}

static void *notifier_main(void *arg)
{
	pthread_mutex_lock(&notifier.lock);
	while (!notifier.stopping) {
		struct reg_event *events = notifier.events;
		size_t n = notifier.n;

		if (n == 0) {
			pthread_cond_wait(&notifier.wake, &notifier.lock);
			continue;
		}
		notifier.events = NULL;
		notifier.n = 0;
		pthread_mutex_unlock(&notifier.lock);
		if (send_all(events, n))
			generation_bump();
		table_free_events(events, n);
		pthread_mutex_lock(&notifier.lock);
	}
	pthread_mutex_unlock(&notifier.lock);
	return NULL;
}

int notifier_start(void)
{
	int r = pthread_create(&notifier.thread, NULL, notifier_main, NULL);

	if (r)
		return log_error(-r, "cannot start the notifier thread: %s", strerror(r));
	notifier.running = true;
	return 0;
}

/*
 * Once the loop has stopped, an invalidation can wait in the kernel for a
 * directory lock held by a request that nobody will answer any more.  A
 * forced unmount aborts the connection, which fails that request and frees
 * the lock.
 */
void notifier_stop(const char *mountpoint)
{
	struct timespec deadline;

	if (!notifier.running)
		return;
	pthread_mutex_lock(&notifier.lock);
	notifier.stopping = true;
	pthread_cond_signal(&notifier.wake);
	pthread_mutex_unlock(&notifier.lock);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += NOTIFIER_STOP_SECONDS;
	if (pthread_timedjoin_np(notifier.thread, NULL, &deadline) != 0) {
		log_warn(0, "an invalidation is stuck: aborting the connection");
		if (umount2(mountpoint, MNT_FORCE) < 0 && errno != EBUSY)
			log_warn(0, "forced unmount of %s failed: %m", mountpoint);
		pthread_join(notifier.thread, NULL);
	}
	notifier.running = false;
	table_free_events(notifier.events, notifier.n);
	notifier.events = NULL;
	notifier.n = 0;
}
