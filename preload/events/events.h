/*
 * Bookkeeping of the epoll wrappers: which epoll fds hold TSSX connections
 * (or fds that may become one), with the events and data the application
 * registered, and the edge-triggered / one-shot state the kernel can no
 * longer keep for them.  Pure: no libc wrappers, no connection calls, so the
 * unit tests drive it directly.
 *
 * The kernel's epoll set holds every real fd.  For a tracked fd it holds our
 * tag (events_tag) instead of the application's data, so that epoll_wait can
 * tell which results to translate.
 */
#ifndef TSSX_PRELOAD_EVENTS_H
#define TSSX_PRELOAD_EVENTS_H

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>
#include <uthash.h>

#include "conn/fd_table.h"

enum events_kind {
	/* A TSSX connection: the kernel watches its doorbells (EPOLLIN|EPOLLET),
	 * its readiness comes from the rings. */
	EVENTS_CONN,
	/* Anything else worth watching (a Unix stream socket that may still
	 * connect over TSSX, an epoll fd that may hold connections): the kernel
	 * holds the application's events, we only restore its data. */
	EVENTS_WATCHED,
};

enum events_bell {
	EVENTS_BELL_UNTRIED, /* not added yet: at the entry's next arming */
	EVENTS_BELL_EVENTFD, /* added: the entry arms with TSSX_BELL_EVENTFD */
	EVENTS_BELL_SOCKET,  /* cannot be: the entry arms with TSSX_BELL_SOCKET */
};

struct events_entry {
	int fd;
	enum events_kind kind;
	uint32_t events;	/* as the application registered them */
	uint32_t kernel_flags;	/* EPOLLEXCLUSIVE, kept for our own registration */
	epoll_data_t data;	/* as the application registered it */
	bool disabled;		/* EPOLLONESHOT reported; re-armed by EPOLL_CTL_MOD */
	/* Deleted by the application (EPOLL_CTL_DEL of a connection), but
	 * kept, reporting nothing, with our registration in the kernel: an
	 * event loop that deletes and adds its connections' fds at every
	 * request (read interest, then write interest) adds them back
	 * without a system call.  parked_with is the connection it was, so
	 * that an fd that became another file is registered anew. */
	bool parked;
	const void *parked_with;
	/* A connection, or an epoll fd (its connections are asked through
	 * it): counted in the set's ring_entries. */
	bool has_rings;
	bool reported;		/* last_generation is valid */
	uint64_t last_generation;
	/* The epoll_wait call that last reported it (epoll.c's wait ids):
	 * a nested set that both its connections and the kernel report is
	 * reported once per call. */
	uint64_t reported_in;
	/* Hot: in the set's hot list, looked at by every wait.  A connection
	 * that was armed, re-checked and found with nothing to report goes
	 * cold (epoll.c): the doorbell its flag calls for makes the kernel
	 * report its socket, which heats it again.  may_cool: armed by the
	 * last arming pass of the set, since it last heated. */
	bool hot;
	bool may_cool;
	/* When it last reported, or was first looked at since it heated
	 * (0: not yet), in time and in the set's waits: a connection silent
	 * for EVENTS_COLD_AFTER_NS and EVENTS_COLD_AFTER_WAITS is armed even
	 * by a wait that does not sleep. */
	uint64_t active_ns;
	uint64_t active_wait;
	/* The eventfd bell (epoll.c): whether the connection's own eventfd
	 * (its number bell_fd) is in the kernel's set beside its socket, so
	 * that the entry arms with TSSX_BELL_EVENTFD. */
	enum events_bell bell;
	int bell_fd;
	struct events_entry *hot_prev, *hot_next;
	UT_hash_handle hh;
};

/* What a set's looks at the rings cost (epoll.c), for the TSSX_LOG=info
 * line at exit.  Written under the set's lock without a read-modify-write:
 * an event loop's looks pay no locked instruction for them. */
struct events_stats {
	_Atomic uint64_t looks;		/* passes over the hot entries */
	_Atomic uint64_t looked;	/* entries whose rings they looked at */
	_Atomic uint64_t cooled;	/* entries that went cold */
	_Atomic uint64_t rescans;	/* times every entry was made hot */
	/* Reports of a connection by the kernel: its eventfd's edges, and
	 * its socket's (doorbells drained, or the peer's close). */
	_Atomic uint64_t eventfd_reports;
	_Atomic uint64_t socket_reports;
};

struct events_set {
	int epfd;			/* one of the fds of the epoll instance */
	unsigned dups;			/* other fds of it (dup), under the sets lock */
	pthread_mutex_t lock;		/* entries; held while waiting is not */
	struct events_entry *entries;	/* by fd */
	/* The entries a wait looks at, reported ones moved to the end: a
	 * wait costs what its hot entries cost, not what the set holds. */
	struct events_entry *hot;
	atomic_uint hot_count;	/* written under the lock */
	/* tssx_unseen_changes() when the set last made every entry hot. */
	uint64_t unseen_seen;
	/* Its epoll_wait calls, roughly (concurrent ones may count once). */
	_Atomic uint64_t waits;
	struct events_stats stats;	/* kept when the set is reused */
	atomic_uint count;		/* entries, readable without the lock */
	/* Entries with rings behind them (events_entry.has_rings): without
	 * any, a wait has nothing to spin on and goes to the kernel at once. */
	atomic_uint ring_entries;
	/* Our tags were given to the kernel (stored before the system call
	 * that gives one): it may report them for an fd closed while a dup
	 * kept its file, or to a wait that began before the set tracked
	 * anything, so such waits must translate. */
	atomic_bool tagged;
	/* Threads between their arming and the end of their sleep in the
	 * kernel's wait: an entry added or changed meanwhile kicks them
	 * (epoll.c, kick_sleepers()). */
	atomic_uint sleepers;
	/* Which threads ever began a wait on the set: none (0), one
	 * (its pthread_t), or several (EVENTS_WAITERS_MANY).  A connection
	 * added to a set that tracked nothing may have a straight wait of
	 * another thread asleep to wake. */
	_Atomic uintptr_t waiters;
	/* The same, of the threads that waited on it through its epoll fd
	 * (poll(), the arming of another set): sleepers this set does not
	 * count (events_set_nest()). */
	_Atomic uintptr_t nesters;
	bool kicked;			/* the kick is in the kernel's set; under the lock */
	atomic_bool kernel_first;	/* the rings filled the last wait */
	/* The kernel's set may hold fds only it can report (plain or watched
	 * ones): spinning waits look at it now and then.  Never cleared. */
	atomic_bool kernel_fds;
	/* When a wait last looked at (or slept in) the kernel's set. */
	_Atomic uint64_t looked_ns;
	struct events_set *next;	/* in the live or the free list; never freed */
};

/* Lock-free and inline (every epoll_wait and epoll_ctl asks): the set of
 * an epoll fd, NULL if we never saw it. */
static inline struct events_set *events_set_of(int epfd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(epfd);

	/* Acquire pairs with the release of the set's install in the slot
	 * (events.c): the set is seen initialised. */
	return slot ? atomic_load_explicit(&slot->epoll_set, memory_order_acquire) : NULL;
}

/* The set of epfd, made on first use.  NULL with errno EBADF for a
 * negative fd, ENOMEM (also beyond the fds the table holds). */
struct events_set *events_set_open(int epfd);
/* Whether some set tracks fd (lock-free). */
static inline bool events_fd_is_tracked(int fd)
{
	return tssx_table_watchers(fd) > 0;
}

/* Calls visit() with each live set's entry for fd, under the set's lock
 * (the sets' list locked around it). */
void events_each_entry_of(int fd, void (*visit)(struct events_set *set, struct events_entry *entry));

/* These four need the set's lock. */
struct events_entry *events_set_find(struct events_set *set, int fd);
/* -EEXIST if fd is there already, -ENOMEM (also for fds beyond the table). */
int events_set_add(struct events_set *set, int fd, enum events_kind kind,
		   const struct epoll_event *event);
void events_set_remove(struct events_set *set, struct events_entry *entry);
/* A connection appeared on a watched fd, or went away from it. */
void events_entry_set_kind(struct events_set *set, struct events_entry *entry, enum events_kind kind);
/* Moves a reported (hot) entry behind the other hot ones, so a small
 * maxevents still reaches every ready entry in turn. */
void events_set_rotate(struct events_set *set, struct events_entry *entry);
/* Into the hot list (a no-op for a hot entry), its arming forgotten. */
void events_entry_heat(struct events_set *set, struct events_entry *entry);
/* Out of the hot list (a no-op for a cold entry). */
void events_entry_cool(struct events_set *set, struct events_entry *entry);
/* The waits and stats of every set so far; false when another thread
 * holds the sets' lock (at exit: the line is skipped, not waited for). */
bool events_stats_total(uint64_t *waits, struct events_stats *total);

/* Every entry hot: after a change that no kernel event reports. */
void events_set_heat_all(struct events_set *set);

/* entry's fd is being closed (epoll.c; the set's lock held, before the
 * entry is removed): the kernel's registration, which outlives the fd
 * while a copy keeps its file open, is left as the application's own;
 * a connection's eventfd leaves the set. */
void events_entry_release(struct events_set *set, struct events_entry *entry);

/* EPOLL_CTL_MOD: new events and data, one-shot re-armed, and an
 * edge-triggered entry reports its current readiness again. */
void events_entry_modify(struct events_entry *entry, const struct epoll_event *event);
/* EPOLL_CTL_DEL of the connection conn: the entry stays, parked. */
void events_entry_park(struct events_entry *entry, const void *conn);
/* EPOLL_CTL_ADD of a parked entry: as a new entry would be. */
void events_entry_unpark(struct events_entry *entry, const struct epoll_event *event);

/* What the entry reports now, given its readiness and generation, without
 * changing its state. */
uint32_t events_entry_peek(const struct events_entry *entry, uint32_t ready, uint64_t generation);
/* The same, remembering the report (edge-triggered, one-shot). */
uint32_t events_entry_report(struct events_entry *entry, uint32_t ready, uint64_t generation);

/* The data we register with the kernel for a tracked fd, and for the
 * eventfd of a connection on fd, and back; inline: epoll_wait looks at
 * every result. */
#define EVENTS_TAG_HIGH 0x54535358u	 /* "TSSX": never the top of a pointer */
#define EVENTS_BELL_TAG_HIGH 0x54535342u /* "TSSB" */
#define EVENTS_KICK_TAG 0x5453534bffffffffull /* "TSSK", no fd */
#define EVENTS_WAITERS_MANY UINTPTR_MAX

static inline uint64_t events_tag(int fd)
{
	return (uint64_t)EVENTS_TAG_HIGH << 32 | (uint32_t)fd;
}

static inline uint64_t events_bell_tag(int fd)
{
	return (uint64_t)EVENTS_BELL_TAG_HIGH << 32 | (uint32_t)fd;
}

/* Whether data is one of our tags (any kind), and its fd (-1: the kick). */
static inline bool events_untag(uint64_t data, int *fd)
{
	if (data >> 32 != EVENTS_TAG_HIGH && data >> 32 != EVENTS_BELL_TAG_HIGH && data != EVENTS_KICK_TAG)
		return false;
	*fd = (int)(uint32_t)data;
	return true;
}

static inline bool events_tag_is_bell(uint64_t data)
{
	return data >> 32 == EVENTS_BELL_TAG_HIGH;
}

/* How often a waiter that finds connections ready, or spins for them,
 * looks at the kernel's fds when it has any (conn/wait.h's look_every_ns):
 * a plain fd that becomes ready meanwhile is reported at most this late.
 * Looking at every call cost a system call per request of a busy event
 * loop, where the rings alone need none. */
#define EVENTS_LOOK_EVERY_NS 20000u

/* A busy set may never sleep (some connection is always ready), and a
 * wait arms only before it sleeps: its idle connections go cold after
 * this long and this many of its waits without anything to report.
 * Their next message costs the peer a doorbell and the set a look at the
 * kernel, which a millisecond of silence dwarfs; the waits keep a busy
 * server's clients hot while they queue for its turns (64 clients on 2
 * CPUs: each reports every few waits, but may wait longer than 1 ms). */
#define EVENTS_COLD_AFTER_NS 1000000u
#define EVENTS_COLD_AFTER_WAITS 64u

/* Called by close/dup2/dup3/close_range before an fd is released, whatever
 * it is: an epoll set's entry for a closed fd goes away, and a closed epoll
 * fd's set with it. */
void tssx_events_forget_fd(int fd);
/* new_fd is a copy (dup, dup2, F_DUPFD) of old_fd: an epoll fd's copy
 * shares its set. */
void tssx_events_dup_fd(int old_fd, int new_fd);
/* The epoll sets' kick moved from old to moved (a kept fd's renumbering,
 * conn/kept.h). */
void events_kick_renumber(int old, int moved);
/* fd, which epoll sets may watch (added before its connect), became a
 * connection: a thread asleep in such a set is woken by its data. */
void tssx_events_conn_appeared(int fd);
/* A write on fd found its connection's ring full: its edge-triggered
 * entries that wait for EPOLLOUT arm for room (tssx_conn_room_unowed()),
 * a sleeper's at once. */
void tssx_events_room_owed(int fd);
/* fd, which epoll sets may watch (added before its connect), connected
 * plain: it never becomes a connection, and they stop watching it. */
void tssx_events_fd_settled(int fd);

#endif
