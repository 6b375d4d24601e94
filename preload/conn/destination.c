/* The history of this process's connections per server (destination.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "conn/destination.h"
#include "conn/user_shm.h"
#include "init.h"
#include "tssx/macros.h"
#include "tssx/skip.h"

struct tssx_destination {
	char name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t name_len;	/* an abstract name holds NULs: not a string */
	uint64_t shared_key;	/* shared_key() of the name */
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

/* The server's name in addr: false when there is none to keep a history
 * for (or TSSX_SHORT_CALLS is 0). */
static bool destination_name(const struct sockaddr_un *addr, socklen_t len, size_t *name_len)
{
	*name_len = (size_t)len - offsetof(struct sockaddr_un, sun_path);
	if (!tssx_opts.short_calls || (size_t)len <= offsetof(struct sockaddr_un, sun_path) ||
	    *name_len > sizeof(addr->sun_path))
		return false;
	/* A path ends at its NUL (what follows may be anything); an abstract
	 * name is all of its bytes. */
	if (addr->sun_path[0])
		*name_len = strnlen(addr->sun_path, *name_len);
	return true;
}

/*
 * The histories the user's processes share (conn/user_shm.h), one word
 * per program and server (tssx/skip.h): a program run once per request
 * (a script's `redis-cli`, a CGI process) makes one connection per
 * process, which no history of its own can judge.  Keyed by the name the
 * program was run as, so that one program's short connections do not
 * send another's long ones to a server plain.  A process of the same user
 * that writes there can only make connections plain or not.
 */
#define SHARED_WORDS 512u
_Static_assert(TSSX_DESTINATION_SKIP_MAX <= TSSX_SKIP_TABLE_SKIP_MAX, "the rule's skips fit a shared word");
static _Atomic uint64_t *shared;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void shared_map(void)
{
	shared = tssx_user_shm_map("tssx-short-1", SHARED_WORDS * sizeof(*shared));
}

static _Atomic uint64_t *shared_table(void)
{
	pthread_once(&shared_once, shared_map);
	return shared;
}

/* FNV-1a of the program's name, a NUL and the server's. */
static uint64_t hash_bytes(uint64_t hash, const char *bytes, size_t len)
{
	for (size_t i = 0; i < len; i++)
		hash = (hash ^ (uint8_t)bytes[i]) * 0x100000001b3ull;
	return hash;
}

/* The program's part of the keys, from its name as the process first
 * connected (a fork()ed child keeps its parent's): servers that rewrite
 * their argv[0] as a status line (PostgreSQL's backends) would scatter
 * their keys otherwise.  0: not hashed yet (relaxed: any thread may
 * hash it, each the same while the name stays). */
static _Atomic uint64_t program_hash;

static uint64_t shared_key(const char *name, size_t name_len)
{
	uint64_t program = atomic_load_explicit(&program_hash, memory_order_relaxed);

	if (!program) {
		const char *argv0 = program_invocation_name ? program_invocation_name : "";

		program = hash_bytes(0xcbf29ce484222325ull, argv0, strlen(argv0) + 1);
		atomic_store_explicit(&program_hash, program, memory_order_relaxed);
	}
	return hash_bytes(program, name, name_len);
}

bool tssx_destination_shared_skips(const struct sockaddr_un *addr, socklen_t len)
{
	_Atomic uint64_t *table;
	size_t name_len;

	if (!destination_name(addr, len, &name_len) || !(table = shared_table()))
		return false;
	return tssx_skip_table_skips(table, SHARED_WORDS, shared_key(addr->sun_path, name_len), &short_rule);
}

struct tssx_destination *tssx_destination_of(const struct sockaddr_un *addr, socklen_t len, bool make)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct tssx_destination *dest;
	_Atomic uint64_t *table;
	size_t name_len;

	if (!destination_name(addr, len, &name_len))
		return NULL;
	if (is_named(last_found, addr->sun_path, name_len))
		return last_found;
	pthread_once(&once, register_fork_handlers);
	pthread_mutex_lock(&destinations_lock);
	HASH_FIND(hh, destinations, addr->sun_path, name_len, dest);
	if (!dest && make && destination_count < TSSX_DESTINATIONS_MAX && (dest = calloc(1, sizeof(*dest)))) {
		memcpy(dest->name, addr->sun_path, name_len);
		dest->name_len = name_len;
		dest->shared_key = shared_key(dest->name, name_len);
		/* What this program's other processes learnt there. */
		if ((table = shared_table()))
			tssx_skip_table_get(table, SHARED_WORDS, dest->shared_key, &short_rule, &dest->history);
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

void tssx_destination_share(struct tssx_destination *dest, bool paid)
{
	_Atomic uint64_t *table = shared_table();

	if (table)
		tssx_skip_table_record(table, SHARED_WORDS, dest->shared_key, &short_rule, paid);
}
