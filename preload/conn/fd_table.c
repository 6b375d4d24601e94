/* The fd table (fd_table.h). */
#include <errno.h>
#include <stdlib.h>

#include "conn/fd_table.h"

struct tssx_fd_slot *_Atomic tssx_table_chunks[TSSX_TABLE_CHUNKS];
_Atomic int tssx_table_high = -1;

static struct tssx_fd_slot *chunk_create(int fd)
{
	struct tssx_fd_slot *chunk, *expected = NULL;

	chunk = calloc(TSSX_TABLE_CHUNK, sizeof(*chunk));
	if (!chunk)
		return NULL;
	/* Release pairs with the acquire in tssx_table_slot(). */
	if (atomic_compare_exchange_strong_explicit(&tssx_table_chunks[fd / TSSX_TABLE_CHUNK], &expected,
						    chunk, memory_order_release, memory_order_acquire))
		return chunk;
	free(chunk); /* another thread installed this chunk first */
	return expected;
}

struct tssx_fd_slot *tssx_table_slot_make(int fd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd), *chunk;
	int high;

	if (fd < 0 || fd >= TSSX_TABLE_MAX_FD)
		return NULL;
	if (!slot) {
		chunk = chunk_create(fd);
		if (!chunk)
			return NULL;
		slot = &chunk[fd % TSSX_TABLE_CHUNK];
	}
	high = atomic_load(&tssx_table_high);
	while (fd > high && !atomic_compare_exchange_weak(&tssx_table_high, &high, fd))
		;
	return slot;
}

static int slot_set(int fd, struct tssx_fd_object *obj)
{
	struct tssx_fd_slot *slot;

	if (fd < 0 || fd >= TSSX_TABLE_MAX_FD)
		return -EBADF;
	slot = tssx_table_slot_make(fd);
	if (!slot)
		return -ENOMEM;
	/* Release pairs with the acquire in tssx_table_get(). */
	atomic_store_explicit(&slot->obj, obj, memory_order_release);
	return 0;
}

int tssx_table_set(int fd, struct tssx_fd_object *obj)
{
	int ret;

	/* Counted before it is visible: a close of fd right after the store
	 * drops this reference, never one it did not take. */
	atomic_fetch_add(&obj->refs, 1);
	ret = slot_set(fd, obj);
	if (ret < 0)
		atomic_fetch_sub(&obj->refs, 1);
	return ret;
}

int tssx_table_set_alias(int fd, struct tssx_fd_object *obj)
{
	return slot_set(fd, obj);
}

struct tssx_fd_object *tssx_table_take(int fd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);

	if (!slot)
		return NULL;
	return atomic_exchange_explicit(&slot->obj, NULL, memory_order_acq_rel);
}

int tssx_table_find(const struct tssx_fd_object *obj)
{
	int high = tssx_table_high_fd();

	for (int fd = 0; fd <= high; fd++) {
		if (tssx_table_get(fd) == obj)
			return fd;
	}
	return -1;
}

