/* A small pool of idle items under keys (tssx/pool.h). */
#include <string.h>

#include "tssx/pool.h"

void tssx_pool_init(struct tssx_pool *pool, unsigned per_key, uint64_t max_idle_ms)
{
	memset(pool, 0, sizeof(*pool));
	pool->per_key = per_key < 1 ? 1 : per_key > TSSX_POOL_SLOTS ? TSSX_POOL_SLOTS : per_key;
	pool->max_idle_ms = max_idle_ms;
}

static bool has_key(const struct tssx_pool_slot *slot, const void *key, size_t key_len)
{
	return slot->item && slot->key_len == key_len && memcmp(slot->key, key, key_len) == 0;
}

/* Idle too long, or stamped in the future (a clock that went back): not
 * to be trusted either way. */
static bool stale(const struct tssx_pool *pool, const struct tssx_pool_slot *slot, uint64_t now_ms)
{
	return now_ms < slot->since_ms || now_ms - slot->since_ms > pool->max_idle_ms;
}

static void *remove_at(struct tssx_pool *pool, struct tssx_pool_slot *slot)
{
	void *item = slot->item;

	slot->item = NULL;
	pool->count--;
	return item;
}

/* The oldest slot in use, of key when key is not NULL; NULL if none. */
static struct tssx_pool_slot *oldest(struct tssx_pool *pool, const void *key, size_t key_len)
{
	struct tssx_pool_slot *found = NULL;

	for (unsigned i = 0; i < TSSX_POOL_SLOTS; i++) {
		struct tssx_pool_slot *slot = &pool->slot[i];

		if (!slot->item || (key && !has_key(slot, key, key_len)))
			continue;
		if (!found || slot->since_ms < found->since_ms)
			found = slot;
	}
	return found;
}

void *tssx_pool_put(struct tssx_pool *pool, const void *key, size_t key_len, void *item, uint64_t now_ms)
{
	struct tssx_pool_slot *free_slot = NULL;
	void *evicted = NULL;
	unsigned same = 0;

	if (!item || key_len > TSSX_POOL_KEY_MAX)
		return item;
	for (unsigned i = 0; i < TSSX_POOL_SLOTS; i++) {
		if (has_key(&pool->slot[i], key, key_len))
			same++;
	}
	if (same >= pool->per_key)
		evicted = remove_at(pool, oldest(pool, key, key_len));
	else if (pool->count == TSSX_POOL_SLOTS)
		evicted = remove_at(pool, oldest(pool, NULL, 0));
	for (unsigned i = 0; i < TSSX_POOL_SLOTS && !free_slot; i++) {
		if (!pool->slot[i].item)
			free_slot = &pool->slot[i];
	}
	free_slot->item = item;
	free_slot->since_ms = now_ms;
	free_slot->key_len = key_len;
	memcpy(free_slot->key, key, key_len);
	pool->count++;
	return evicted;
}

void *tssx_pool_take(struct tssx_pool *pool, const void *key, size_t key_len, uint64_t now_ms,
		     bool (*usable)(void *item, void *arg), void *arg)
{
	struct tssx_pool_slot *found = NULL;

	for (unsigned i = 0; i < TSSX_POOL_SLOTS; i++) {
		struct tssx_pool_slot *slot = &pool->slot[i];

		if (!has_key(slot, key, key_len) || stale(pool, slot, now_ms))
			continue;
		if (found && found->since_ms <= slot->since_ms)
			continue;
		if (usable && !usable(slot->item, arg))
			continue;
		found = slot;
	}
	return found ? remove_at(pool, found) : NULL;
}

void *tssx_pool_expired(struct tssx_pool *pool, uint64_t now_ms)
{
	for (unsigned i = 0; i < TSSX_POOL_SLOTS; i++) {
		if (pool->slot[i].item && stale(pool, &pool->slot[i], now_ms))
			return remove_at(pool, &pool->slot[i]);
	}
	return NULL;
}

void *tssx_pool_drain(struct tssx_pool *pool)
{
	for (unsigned i = 0; i < TSSX_POOL_SLOTS; i++) {
		if (pool->slot[i].item)
			return remove_at(pool, &pool->slot[i]);
	}
	return NULL;
}
