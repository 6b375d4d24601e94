/* The history of this process's connections per server (destination.h). */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "conn/destination.h"
#include "init.h"
#include "tssx/macros.h"
#include "tssx/skip.h"

struct tssx_destination {
	char name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t name_len;	/* an abstract name holds NULs: not a string */
	struct tssx_skip_history history;
	UT_hash_handle hh;
};

static const struct tssx_skip_rule short_rule = {
	TSSX_DESTINATION_AVERAGE_OVER, TSSX_DESTINATION_SKIP_MIN, TSSX_DESTINATION_SKIP_MAX
};

/* Entries are never freed: a connection keeps a pointer to its own. */
static struct tssx_destination *destinations;
static unsigned destination_count;
static pthread_mutex_t destinations_lock TSSX_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;

/* A fork() while another thread holds the lock would leave it held for
 * good in the child. */
static void lock_for_fork(void)
{
	pthread_mutex_lock(&destinations_lock);
}

TSSX_FORK_HANDLER static void unlock_after_fork(void)
{
	pthread_mutex_unlock(&destinations_lock);
}

static void register_fork_handlers(void)
{
	pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}

/* The destination this thread last found: a client connects to one
 * server again and again, and comparing the name costs a connect a
 * tenth of hashing it (a path of 40 bytes: about 20 instructions against
 * 240) and no lock.  Its name never changes once it is in the table, and
 * the thread found it under the lock. */
static __thread struct tssx_destination *last_found;

static bool is_named(const struct tssx_destination *dest, const char *name, size_t name_len)
{
	return dest && dest->name_len == name_len && memcmp(dest->name, name, name_len) == 0;
}

struct tssx_destination *tssx_destination_of(const struct sockaddr_un *addr, socklen_t len, bool make)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	size_t name_len = (size_t)len - offsetof(struct sockaddr_un, sun_path);
	struct tssx_destination *dest;

	if (!tssx_opts.short_calls || (size_t)len <= offsetof(struct sockaddr_un, sun_path) ||
	    name_len > sizeof(dest->name))
		return NULL;
	/* A path ends at its NUL (what follows may be anything); an abstract
	 * name is all of its bytes. */
	if (addr->sun_path[0])
		name_len = strnlen(addr->sun_path, name_len);
	if (is_named(last_found, addr->sun_path, name_len))
		return last_found;
	pthread_once(&once, register_fork_handlers);
	pthread_mutex_lock(&destinations_lock);
	HASH_FIND(hh, destinations, addr->sun_path, name_len, dest);
	if (!dest && make && destination_count < TSSX_DESTINATIONS_MAX && (dest = calloc(1, sizeof(*dest)))) {
		memcpy(dest->name, addr->sun_path, name_len);
		dest->name_len = name_len;
		HASH_ADD(hh, destinations, name, name_len, dest);
		destination_count++;
	}
	pthread_mutex_unlock(&destinations_lock);
	if (dest)
		last_found = dest;
	return dest;
}

bool tssx_destination_skips(struct tssx_destination *dest)
{
	bool skips;

	pthread_mutex_lock(&destinations_lock);
	skips = tssx_skip_history_skips(&dest->history);
	pthread_mutex_unlock(&destinations_lock);
	return skips;
}

void tssx_destination_record(struct tssx_destination *dest, bool paid)
{
	pthread_mutex_lock(&destinations_lock);
	tssx_skip_history_record(&dest->history, &short_rule, paid);
	pthread_mutex_unlock(&destinations_lock);
}
