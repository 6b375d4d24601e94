/*
 * The bookkeeping of a small pool of idle items, each under a key
 * (docs/data-path.md, "Segments recycled"): a client's segments per
 * server (preload/conn/recycle.c, the key the server's address), and a
 * server's mappings per memfd (the key the memfd's device and inode).
 *
 * Pure: the caller owns the items and their memory, the clock and the
 * lock; the pool holds pointers.  Bounded: at most per_key items of one
 * key and TSSX_POOL_SLOTS in all; a put over either bound evicts the
 * oldest (of the key, else of all) and hands it back to be freed.  An item
 * idle longer than max_idle_ms is never taken: tssx_pool_expired() hands
 * it back.
 */
#ifndef TSSX_POOL_H
#define TSSX_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TSSX_POOL_SLOTS 16u
/* A whole sun_path (108 bytes) fits. */
#define TSSX_POOL_KEY_MAX 128u

struct tssx_pool_slot {
	void *item; /* NULL: free */
	uint64_t since_ms;
	size_t key_len;
	unsigned char key[TSSX_POOL_KEY_MAX];
};

struct tssx_pool {
	unsigned per_key;     /* 1..TSSX_POOL_SLOTS */
	uint64_t max_idle_ms;
	unsigned count;
	struct tssx_pool_slot slot[TSSX_POOL_SLOTS];
};

/* An empty pool. */
void tssx_pool_init(struct tssx_pool *pool, unsigned per_key, uint64_t max_idle_ms);

/* Adds item (not NULL) under key (at most TSSX_POOL_KEY_MAX bytes, else
 * item itself comes back, not added) at now.  Returns the item evicted to
 * make room, or NULL. */
void *tssx_pool_put(struct tssx_pool *pool, const void *key, size_t key_len, void *item, uint64_t now_ms);

/* Takes an item of key idle for at most max_idle_ms that usable(item, arg)
 * accepts (NULL: any), the one idle longest first; NULL when none. */
void *tssx_pool_take(struct tssx_pool *pool, const void *key, size_t key_len, uint64_t now_ms,
		     bool (*usable)(void *item, void *arg), void *arg);

/* Removes and returns an item idle longer than max_idle_ms, or NULL: call
 * until NULL. */
void *tssx_pool_expired(struct tssx_pool *pool, uint64_t now_ms);

/* Removes and returns any item, or NULL: call until NULL to empty it. */
void *tssx_pool_drain(struct tssx_pool *pool);

#endif
