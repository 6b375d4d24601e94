/*
 * The registry client's state, shared by the callers' side (client.c) and
 * its helper thread (worker.c).  Everything here is guarded by client_lock;
 * nobody holds the lock across a call that may reach the daemon.
 */
#ifndef TSSX_REGISTRY_CLIENT_STATE_H
#define TSSX_REGISTRY_CLIENT_STATE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <uthash.h>

#include "tssx/registry_client.h"

/* One looked-up entry: a read-only shared mapping of its page, which also
 * keeps the daemon's handle (and so the entry) open.  No fd stays open.
 * `bits` were read at `generation` (valid when `seen`): while the registry's
 * generation stays there, they are the answer. */
struct cached_entry {
	UT_hash_handle hh;
	uint64_t last_use;
	const volatile char *map;
	uint64_t generation;
	int bits;
	bool seen;
	int rw_fd;               /* O_RDWR holding the client bit, or -1 */
	uint64_t client_due_ns;  /* when the worker is to open rw_fd; 0: not */
	char name[];
};

/* A name the kernel's dentry cache said is missing (a failed
 * openat2(RESOLVE_CACHED)) while the registry's generation was
 * `generation`: missing still while the generation stays there.  A server
 * bit only ever appears through a write whose invalidation raises the
 * generation, so a remembered miss never hides one for longer than a
 * cached hit hides a change. */
struct cached_miss {
	UT_hash_handle hh;
	uint64_t generation;
	char name[];
};

enum claim_state {
	CLAIM_PENDING, /* the worker is to make it */
	CLAIM_HELD,
	CLAIM_REFUSED, /* by the registry: error says why */
	CLAIM_LOST,    /* the application closed its fd */
};

struct tssx_registry_claim {
	struct tssx_registry_claim *prev, *next;
	enum claim_state state;
	int error; /* why not held */
	int fd;
	bool busy;     /* the worker is making it, unlocked */
	bool released; /* released while busy: the worker frees it */
	char name[];
};

/* A lookup the cache could not answer, for the worker.  The worker maps
 * the entry and the caller caches the mapping: an allocation on the
 * worker would give the process a malloc arena of its own. */
struct lookup_job {
	struct lookup_job *next;
	bool done;
	bool abandoned; /* the caller ran out of time: the worker frees it */
	int result;     /* the bits, or -errno */
	const volatile char *map; /* the entry's page, or NULL */
	bool known;               /* the generation before the read, if */
	uint64_t before;          /* known (current_generation()) */
	unsigned generation;      /* of the registry, to tell another one */
	char name[];
};

/* A registry found missing or dead is looked for again after this, or at
 * the next change of the mount table; a caller looks at the mount table
 * at most this often while no worker watches it. */
#define RETRY_NS 1000000000ull

/* Registries a caller's look at the mount table found, handed to the
 * worker's check of the root it then opens (worker.c, registry_listed()):
 * the table is read once for both.  A root beyond these is looked for in
 * the table again. */
#define LISTED_MAX 4

struct registry_list {
	unsigned count;
	dev_t devs[LISTED_MAX];
};

/* A worker with nothing left to do waits this long for more before it
 * ends (worker.c, linger_ns()). */
#define WORKER_LINGER_NS 500000000ull

struct client_state {
	pthread_cond_t progress; /* CLOCK_MONOTONIC; the worker finished something */
	struct tssx_registry_hooks hooks;
	char mountpoint[PATH_MAX];
	uint64_t timeout_ns;

	int dir_fd;  /* the live registry's root, or -1 */
	/* Its generation file's page, mapped and locked in memory (so a load
	 * never faults to the daemon), or NULL; generation_tried: opened
	 * once for this registry, not to be tried again. */
	const uint64_t *generation_page;
	bool generation_tried;
	dev_t dev;   /* and its device, to tell a new mount from it */
	unsigned generation; /* counts drop_registry(): what the worker made
			      * unlocked belongs to the registry of its start */
	int missing; /* why there is no registry (-errno), while retry_ns is ahead */
	uint64_t retry_ns;

	struct cached_entry *entries;
	unsigned count;
	struct cached_miss *misses; /* in the order remembered */
	unsigned miss_count;
	uint64_t clock;
	struct tssx_registry_claim *claims;
	struct lookup_job *jobs; /* FIFO */

	/* The worker, running only while it has work, or claims to make
	 * again when the registry changes.  wake_fd (an eventfd) and
	 * mounts_fd (/proc/self/mountinfo) are the two things it waits on;
	 * they stay open between workers, and a caller polls mounts_fd at
	 * most once per retry time (mounts_check_ns) while none runs. */
	bool worker_running;
	unsigned long workers_started; /* logged at exit (worker.c) */
	bool worker_fds_lost; /* the application closed one: the worker exits */
	bool worker_exit;     /* tssx_registry_pause(): exit when idle */
	pid_t worker_tid;     /* of the last worker, 0 once it is gone */
	int wake_fd;
	int mounts_fd;
	bool mounts_changed;  /* a caller saw it: the worker is to look */
	uint64_t mounts_check_ns;
	/* A caller's last look at the mount table (registry_listed()):
	 * none_listed, no registry anywhere in it and no change of the table
	 * seen since; else the devices of up to LISTED_MAX registries it
	 * listed, for the next root the worker opens. */
	bool none_listed;
	bool none_logged; /* said so once, at info level */
	struct registry_list listed;
	bool stuck;  /* the worker overran a caller's bound and is not back */
	bool warned; /* about that, once per process */
};

extern struct client_state state;
/* Apart from the state: a fork writes it (tssx/macros.h, TSSX_FORK_DATA). */
extern pthread_mutex_t client_lock;

uint64_t monotonic_ns(void);
void keep_fd(int fd);
void drop_fd(int fd);

/* Drops everything made through the current registry: cached entries,
 * client bits, claim fds (the claims become pending); the next call looks
 * for a registry again after retry_after_ns. */
void drop_registry(int why, uint64_t retry_after_ns);

/* Wakes the worker, starting it when it does not run; -errno if it could
 * not be started. */
int wake_worker(void);

/* Why nothing is asked of the daemon now, or 0: the worker is stuck, or
 * the registry was missing and its retry time is still ahead. */
int registry_unavailable(void);

/* The worker overran a caller's bound: warn once. */
void note_stuck(void);

/* Whether the mount table changed since the last look (unlocked; the
 * file's poll consumes the change). */
bool mount_table_changed(int mounts_fd);

/* Whether the mount table lists a registry anywhere (lock held): 0, or
 * -ENOENT when it lists none (a daemon never started, or stopped), which
 * the caller learns without starting the worker.  Read by the caller
 * itself, since no call on /proc/self/mountinfo reaches a daemon; only
 * while no registry is open and no worker runs (else 0: the worker
 * knows). */
int registry_listed(void);

/* Closes the mount table's fd while no registry is open and no worker
 * watches it (lock held): after unshare()/setns() it would show the old
 * namespace's, and the next look opens it again. */
void forget_mount_table(void);

/* In a fork()ed child's fork handler: closes the worker's fds, leaving
 * the state as it was (worker_after_fork() forgets them). */
void worker_close_fds_after_fork(void);

/* A fork()ed child's first call (lock held): the worker did not come
 * along. */
void worker_after_fork(void);

/* Whether fd is one of the worker's own; forgets them if so. */
bool worker_forget_fd(int fd);

int read_bits_of(const volatile char *map);

/* The registry's generation, when it has one (lock held). */
bool current_generation(uint64_t *value);

/* Frees a job and the mapping it holds, if any. */
void free_job(struct lookup_job *job);

/* Unmaps the generation page (lock held). */
void drop_generation(void);

#endif
