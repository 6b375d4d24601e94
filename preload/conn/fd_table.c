/* The fd table (table.h). */
#include <errno.h>
#include <stdlib.h>

#include "conn/fd_table.h"

static struct tssx_fd_object *_Atomic *_Atomic chunks[TSSX_TABLE_CHUNKS];
static _Atomic int high_fd = -1;

struct tssx_fd_object *_Atomic *tssx_table_chunk_of(int fd)
{
	return atomic_load_explicit(&chunks[fd / TSSX_TABLE_CHUNK], memory_order_acquire);
}

static struct tssx_fd_object *_Atomic *chunk_create(int fd)
{
	struct tssx_fd_object *_Atomic *chunk, *_Atomic *expected = NULL;

	chunk = calloc(TSSX_TABLE_CHUNK, sizeof(*chunk));
	if (!chunk)
		return NULL;
	if (atomic_compare_exchange_strong(&chunks[fd / TSSX_TABLE_CHUNK], &expected, chunk))
		return chunk;
	free(chunk); /* another thread installed this chunk first */
	return expected;
}

int tssx_table_set(int fd, struct tssx_fd_object *obj)
{
	struct tssx_fd_object *_Atomic *chunk;
	int high;

	if (fd < 0 || fd >= TSSX_TABLE_MAX_FD)
		return -EBADF;
	chunk = tssx_table_chunk_of(fd);
	if (!chunk)
		chunk = chunk_create(fd);
	if (!chunk)
		return -ENOMEM;
	atomic_store_explicit(&chunk[fd % TSSX_TABLE_CHUNK], obj, memory_order_release);
	high = atomic_load(&high_fd);
	while (fd > high && !atomic_compare_exchange_weak(&high_fd, &high, fd))
		;
	return 0;
}

struct tssx_fd_object *tssx_table_take(int fd)
{
	struct tssx_fd_object *_Atomic *chunk;

	if (fd < 0 || fd >= TSSX_TABLE_MAX_FD)
		return NULL;
	chunk = tssx_table_chunk_of(fd);
	if (!chunk)
		return NULL;
	return atomic_exchange_explicit(&chunk[fd % TSSX_TABLE_CHUNK], NULL, memory_order_acq_rel);
}

int tssx_table_high_fd(void)
{
	return atomic_load(&high_fd);
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
