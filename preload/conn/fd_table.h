/*
 * The fd table: which fds of this process the library has an interest in.
 *
 * Lock-free lookup: a two-level array of atomic pointers, chunks of
 * TSSX_TABLE_CHUNK slots allocated on first use and never freed, so a
 * lookup is two acquire loads and touches no lock, no malloc, no stdio (it
 * runs inside read() and write(), which signal handlers call).
 */
#ifndef TSSX_PRELOAD_TABLE_H
#define TSSX_PRELOAD_TABLE_H

#include <stdatomic.h>
#include <stddef.h>

#define TSSX_TABLE_CHUNK 1024
#define TSSX_TABLE_CHUNKS 1024 /* fds up to 1M, the kernel's default nr_open */
#define TSSX_TABLE_MAX_FD (TSSX_TABLE_CHUNK * TSSX_TABLE_CHUNKS)

enum tssx_fd_kind {
	TSSX_FD_CONN = 1,  /* a TSSX connection (struct tssx_conn) */
	TSSX_FD_LISTENER,  /* a listening socket seen by listen()/accept() */
	TSSX_FD_REGISTRY,  /* an fd the registry client keeps open */
};

/* What a slot points to: the first member of every tracked object.  refs
 * counts the fds of this process that point to the object (dup). */
struct tssx_fd_object {
	enum tssx_fd_kind kind;
	_Atomic int refs;
};

struct tssx_fd_object *_Atomic *tssx_table_chunk_of(int fd);

static inline struct tssx_fd_object *tssx_table_get(int fd)
{
	struct tssx_fd_object *_Atomic *chunk;

	if ((unsigned)fd >= TSSX_TABLE_MAX_FD)
		return NULL;
	chunk = tssx_table_chunk_of(fd);
	if (!chunk)
		return NULL;
	return atomic_load_explicit(&chunk[fd % TSSX_TABLE_CHUNK], memory_order_acquire);
}

/* Points fd at obj (taking no reference).  Returns 0, or -EBADF for an fd
 * beyond the table, -ENOMEM: the caller then leaves the fd plain. */
int tssx_table_set(int fd, struct tssx_fd_object *obj);

/* Clears fd's slot and returns what it held (NULL if nothing). */
struct tssx_fd_object *tssx_table_take(int fd);

/* Some fd that points to obj, or -1.  Walks the table: for rare paths. */
int tssx_table_find(const struct tssx_fd_object *obj);

/* Highest fd that may have a slot, for walking ranges (close_range). */
int tssx_table_high_fd(void);

#endif
