/* Changes that no kernel event reports to an epoll set: see unseen.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "conn/connection.h"
#include "conn/fd_table.h"
#include "conn/unseen.h"
#include "tssx/macros.h"

/* Shared by fork() with every child, and theirs. */
struct family {
	_Atomic uint64_t changes;
	/* A connection of the family went to an exec'd image, whose drains
	 * this page cannot count. */
	_Atomic bool exec_shared;
};

/* NULL when the page could not be made: shared connections stay hot. */
static struct family *family;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
/* fork() calls since the page was made, in the parent and in the child
 * alike: a connection stamped with an older count is the fork's too. */
static _Atomic uint64_t forks TSSX_FORK_DATA;
/* Changes to connections only this process holds. */
static _Atomic uint64_t local_changes;
/* The family's changes this process made that only the others need (its
 * only set drained the connection itself). */
static _Atomic uint64_t own_family_changes;

__thread __attribute__((tls_model("initial-exec"))) bool tssx_unseen_by_sole_set;

TSSX_FORK_HANDLER static void forked(void)
{
	atomic_fetch_add_explicit(&forks, 1, memory_order_relaxed);
}

/* Before the first connection: a fork() before it shares none. */
static void setup(void)
{
	void *page = mmap(NULL, sizeof(struct family), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	family = page == MAP_FAILED ? NULL : page;
	pthread_atfork(NULL, forked, forked);
}

uint64_t tssx_unseen_forks(void)
{
	pthread_once(&setup_once, setup);
	return atomic_load_explicit(&forks, memory_order_relaxed);
}

static bool shared_by_fork(const struct tssx_conn *conn)
{
	return conn->born_forks != atomic_load_explicit(&forks, memory_order_relaxed);
}

bool tssx_unseen_held_alone(const struct tssx_conn *conn)
{
	return !atomic_load_explicit(&conn->unseen_unfit, memory_order_relaxed) && !shared_by_fork(conn);
}

bool tssx_unseen_may_cool(const struct tssx_conn *conn)
{
	if (atomic_load_explicit(&conn->unseen_unfit, memory_order_relaxed))
		return false;
	if (!shared_by_fork(conn))
		return true;
	return family && !atomic_load_explicit(&family->exec_shared, memory_order_relaxed);
}

/* Release: the drain (or change) before the count that announces it,
 * paired with the acquire in tssx_unseen_changes(). */
static void count(_Atomic uint64_t *counter)
{
	atomic_fetch_add_explicit(counter, 1, memory_order_release);
}

void tssx_unseen_doorbells_taken(const struct tssx_conn *conn)
{
	bool sole = tssx_unseen_by_sole_set;

	if (shared_by_fork(conn) && family) {
		/* A sibling's set may have it cold: it cannot be asked. */
		count(&family->changes);
		if (sole)
			atomic_fetch_add_explicit(&own_family_changes, 1, memory_order_relaxed);
	} else if (!sole && tssx_table_watchers(atomic_load_explicit(&conn->fd, memory_order_relaxed)) > 0) {
		count(&local_changes);
	}
}

void tssx_unseen_changed(void)
{
	count(&local_changes);
	if (family)
		count(&family->changes);
}

void tssx_unseen_exec_shares(void)
{
	pthread_once(&setup_once, setup);
	if (family)
		atomic_store(&family->exec_shared, true);
	tssx_unseen_changed();
}

uint64_t tssx_unseen_changes(void)
{
	uint64_t changes = atomic_load_explicit(&local_changes, memory_order_acquire);

	if (family)
		changes += atomic_load_explicit(&family->changes, memory_order_acquire) -
			   atomic_load_explicit(&own_family_changes, memory_order_relaxed);
	return changes;
}
