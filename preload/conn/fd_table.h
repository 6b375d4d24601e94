/*
 * The fd table: one slot per fd of this process the library has an
 * interest in, holding what the fd is to the library (a connection, a
 * listener, a registry fd) and the epoll wrappers' bookkeeping of it
 * (events/events.h), so that close() and every I/O call find all of it
 * with one lookup.
 *
 * Lock-free lookup: a two-level array, chunks of TSSX_TABLE_CHUNK slots
 * allocated on first use and never freed, so a lookup is two acquire loads,
 * inline, and touches no lock, no malloc, no stdio (it runs inside read()
 * and write(), which signal handlers call).
 *
 * The table owns the reference counts of what its slots point to: every
 * slot set with tssx_table_set() counts one, and the object lives until
 * tssx_table_unref() drops the last.
 */
#ifndef TSSX_PRELOAD_TABLE_H
#define TSSX_PRELOAD_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "tssx/macros.h"

#define TSSX_TABLE_CHUNK 1024
#define TSSX_TABLE_CHUNKS 1024 /* fds up to 1M, the kernel's default nr_open */
#define TSSX_TABLE_MAX_FD (TSSX_TABLE_CHUNK * TSSX_TABLE_CHUNKS)

enum tssx_fd_kind {
	TSSX_FD_CONN = 1,  /* a TSSX connection (struct tssx_conn) */
	TSSX_FD_LISTENER,  /* a listening socket seen by listen()/accept() */
	TSSX_FD_REGISTRY,  /* an fd the registry client keeps open */
	TSSX_FD_SEGMENT,   /* a connection's memfd, kept for exec (conn/handover.c) */
	TSSX_FD_WAKE,      /* a connection's eventfd that wakes its writers (conn/stream.c) */
	TSSX_FD_HELD,      /* a copy of a connection's socket for calls in flight (connection.h) */
	TSSX_FD_LOCKS,     /* an arena of side-lock pairs, kept for exec (tssx/side_lock.h) */
	TSSX_FD_OWN_BELL,  /* a connection's eventfd that the peer writes to wake its epoll sets */
	TSSX_FD_PEER_BELL, /* the peer's eventfd of a connection, written to wake the peer's */
	TSSX_FD_WATCHER,   /* the futex bell watcher's epoll fd (conn/bell.h) */
	TSSX_FD_LOADAVG,   /* the spin policy's /proc/loadavg (conn/wait.c) */
	TSSX_FD_KICK,      /* the eventfd that wakes threads asleep in an epoll set (events/epoll.c) */
};

/* A connection's own fd (or its side locks' arena, the futex bell
 * watcher's epoll fd, the spin policy's /proc/loadavg, the epoll sets'
 * kick), which the application never opened: its closes
 * of the number (close-all loops) leave it open, a dup2() onto it moves it
 * first (shims/fd.c). */
static inline bool tssx_fd_kind_kept(enum tssx_fd_kind kind)
{
	return kind == TSSX_FD_SEGMENT || kind == TSSX_FD_WAKE || kind == TSSX_FD_HELD || kind == TSSX_FD_LOCKS ||
	       kind == TSSX_FD_OWN_BELL || kind == TSSX_FD_PEER_BELL || kind == TSSX_FD_WATCHER ||
	       kind == TSSX_FD_LOADAVG || kind == TSSX_FD_KICK;
}

/* What a slot points to: the first member of every tracked object.  refs
 * counts the slots that point to it (the fds of this process, dup). */
struct tssx_fd_object {
	enum tssx_fd_kind kind;
	_Atomic int refs; /* owned by the table */
};

struct events_set;

struct tssx_fd_slot {
	struct tssx_fd_object *_Atomic obj;
	/* The epoll wrappers' (events.c): the set of an epoll fd they saw,
	 * and how many sets track this fd. */
	struct events_set *_Atomic epoll_set;
	atomic_uint watchers;
	atomic_uint hints; /* enum tssx_fd_hint, below */
};

/* Hidden: the inline lookup reaches it without going through the GOT. */
extern struct tssx_fd_slot *_Atomic tssx_table_chunks[TSSX_TABLE_CHUNKS]
	__attribute__((visibility("hidden")));

/* fd's slot, or NULL when nothing was ever recorded near it. */
static inline struct tssx_fd_slot *tssx_table_slot(int fd)
{
	struct tssx_fd_slot *chunk;

	if (unlikely((unsigned)fd >= TSSX_TABLE_MAX_FD))
		return NULL;
	/* Acquire pairs with the release in slot_make()'s install: the
	 * chunk's zeroed slots are seen initialised. */
	chunk = atomic_load_explicit(&tssx_table_chunks[(unsigned)fd / TSSX_TABLE_CHUNK], memory_order_acquire);
	return chunk ? &chunk[(unsigned)fd % TSSX_TABLE_CHUNK] : NULL;
}

/* fd's slot, made on first use; NULL beyond the table or out of memory. */
struct tssx_fd_slot *tssx_table_slot_make(int fd);

/* How many epoll sets of this process track fd (events/; lock-free). */
static inline unsigned tssx_table_watchers(int fd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);

	return slot ? atomic_load_explicit(&slot->watchers, memory_order_acquire) : 0;
}

/* Whether the slot holds anything: an object or epoll bookkeeping. */
static inline bool tssx_table_slot_busy(struct tssx_fd_slot *slot)
{
	return atomic_load_explicit(&slot->obj, memory_order_relaxed) ||
	       atomic_load_explicit(&slot->epoll_set, memory_order_relaxed) ||
	       atomic_load_explicit(&slot->watchers, memory_order_relaxed);
}

static inline struct tssx_fd_object *tssx_table_get(int fd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);

	/* Acquire pairs with the release in tssx_table_set(): the object is
	 * seen initialised. */
	return slot ? atomic_load_explicit(&slot->obj, memory_order_acquire) : NULL;
}

/*
 * What the library learnt of a plain socket when it made, accepted or
 * connected it, so that it need not ask the kernel again: a hint is set
 * only while it is true and cleared whenever the number is closed or
 * replaced (tssx_fd_forget()), so a set hint is a fact; a missing one
 * means "ask".  An fd whose number changes hands around the library (a
 * close by inline assembly) can keep a stale hint, as it keeps a stale
 * slot.  Relaxed: the number reaches another thread through the
 * program's own synchronisation, and a close and the next socket() of
 * the same number are ordered by the kernel's fd table.
 */
enum tssx_fd_hint {
	TSSX_HINT_UNIX_STREAM = 1, /* an AF_UNIX SOCK_STREAM socket */
	TSSX_HINT_CONNECTED = 2,   /* connected: never becomes a connection later */
	TSSX_HINT_LISTENING = 4,   /* listening: never becomes a connection */
	TSSX_HINT_NEVER_CONN = 8,  /* asked by epoll_ctl: never becomes one */
};

/* Records hints of fd; only where its slot exists (no allocation: this
 * runs in socket() and accept()).  A load and a store, no locked
 * instruction (three per connection per request otherwise): the hints of
 * a number are set by the thread that made, accepted or connected it,
 * and one lost to another thread's at the same moment only means asking
 * the kernel. */
static inline void tssx_fd_hint_add(int fd, unsigned hints)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);
	unsigned had;

	if (!slot)
		return;
	had = atomic_load_explicit(&slot->hints, memory_order_relaxed);
	if ((had & hints) != hints)
		atomic_store_explicit(&slot->hints, had | hints, memory_order_relaxed);
}

/* fd's hints (0: none, or no slot). */
static inline unsigned tssx_fd_hints(int fd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);

	return slot ? atomic_load_explicit(&slot->hints, memory_order_relaxed) : 0;
}

static inline bool tssx_fd_hinted(int fd, enum tssx_fd_hint hint)
{
	return tssx_fd_hints(fd) & hint;
}

/* Sets the hints of a number the kernel just gave out (socket(), accept(),
 * dup(): none) to exactly `hints`: its slot may still hold those of a file closed
 * around the library (glibc's fclose() of an fdopen()ed socket closes
 * inside libc), which would describe another file.  Where the slot exists,
 * as tssx_fd_hint_add(). */
static inline void tssx_fd_hints_set(int fd, unsigned hints)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);

	if (slot && atomic_load_explicit(&slot->hints, memory_order_relaxed) != hints)
		atomic_store_explicit(&slot->hints, hints, memory_order_relaxed);
}

static inline void tssx_fd_hints_clear(struct tssx_fd_slot *slot)
{
	if (atomic_load_explicit(&slot->hints, memory_order_relaxed))
		atomic_store_explicit(&slot->hints, 0, memory_order_relaxed);
}

/* Points fd at obj and counts the reference.  Returns 0, or -EBADF for an
 * fd beyond the table, -ENOMEM: the caller then leaves the fd plain. */
int tssx_table_set(int fd, struct tssx_fd_object *obj);

/* Points fd at obj without counting it: an fd of the library's own that
 * names a static object (the registry client's fds). */
int tssx_table_set_alias(int fd, struct tssx_fd_object *obj);

/* Clears fd's slot and returns what it held (NULL if nothing); the
 * reference it counted is the caller's to drop. */
struct tssx_fd_object *tssx_table_take(int fd);

/* Drops one reference; true when it was the last: the caller frees obj. */
static inline bool tssx_table_unref(struct tssx_fd_object *obj)
{
	return atomic_fetch_sub(&obj->refs, 1) == 1;
}

/* Some fd that points to obj, or -1.  Walks the table: for rare paths. */
int tssx_table_find(const struct tssx_fd_object *obj);

/* Highest fd that may have a slot in use, for walking ranges (close_range).
 * Inline: a fork()ed child's handler walks the table, and each function
 * of the library's text it calls may cost it a page fault. */
extern _Atomic int tssx_table_high __attribute__((visibility("hidden")));

static inline int tssx_table_high_fd(void)
{
	return atomic_load(&tssx_table_high);
}

#endif
