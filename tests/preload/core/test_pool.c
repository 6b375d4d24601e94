/*
 * The bookkeeping of recycled segments (tssx/pool.h): items come back
 * only under their own key, only while usable and not idle too long, the
 * one idle longest first; the bounds per key and in all evict the oldest;
 * expiry and draining hand every item back exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tssx/pool.h"

static int items[64];

static void *put(struct tssx_pool *pool, const char *key, int i, uint64_t now)
{
	return tssx_pool_put(pool, key, strlen(key), &items[i], now);
}

static void *take(struct tssx_pool *pool, const char *key, uint64_t now)
{
	return tssx_pool_take(pool, key, strlen(key), now, NULL, NULL);
}

static void test_keys(void **state)
{
	struct tssx_pool pool;

	(void)state;
	tssx_pool_init(&pool, 4, 1000);
	assert_null(put(&pool, "/a", 0, 10));
	assert_null(put(&pool, "/b", 1, 11));
	/* A key that is a prefix of another is another key. */
	assert_null(take(&pool, "/", 12));
	assert_null(take(&pool, "/aa", 12));
	assert_ptr_equal(take(&pool, "/b", 12), &items[1]);
	assert_null(take(&pool, "/b", 12));
	assert_ptr_equal(take(&pool, "/a", 12), &items[0]);
	assert_int_equal(pool.count, 0);
	/* Abstract names hold NULs: keys are bytes, not strings. */
	assert_null(tssx_pool_put(&pool, "\0x", 2, &items[2], 20));
	assert_null(tssx_pool_take(&pool, "\0y", 2, 20, NULL, NULL));
	assert_ptr_equal(tssx_pool_take(&pool, "\0x", 2, 20, NULL, NULL), &items[2]);
	/* A key too long is not kept: the item comes back. */
	{
		char long_key[TSSX_POOL_KEY_MAX + 1];

		memset(long_key, 'k', sizeof(long_key));
		assert_ptr_equal(tssx_pool_put(&pool, long_key, sizeof(long_key), &items[3], 20), &items[3]);
		assert_int_equal(pool.count, 0);
	}
}

static void test_oldest_first(void **state)
{
	struct tssx_pool pool;

	(void)state;
	tssx_pool_init(&pool, 4, 1000);
	put(&pool, "/s", 0, 30);
	put(&pool, "/s", 1, 10);
	put(&pool, "/s", 2, 20);
	assert_ptr_equal(take(&pool, "/s", 40), &items[1]);
	assert_ptr_equal(take(&pool, "/s", 40), &items[2]);
	assert_ptr_equal(take(&pool, "/s", 40), &items[0]);
}

static bool odd_only(void *item, void *arg)
{
	int *calls = arg;

	(*calls)++;
	return ((int *)item - items) % 2 == 1;
}

static void test_usable(void **state)
{
	struct tssx_pool pool;
	int calls = 0;

	(void)state;
	tssx_pool_init(&pool, 8, 1000);
	put(&pool, "/s", 0, 10); /* not usable (a segment the server has not released) */
	put(&pool, "/s", 2, 11);
	put(&pool, "/s", 3, 12);
	put(&pool, "/s", 5, 13);
	assert_ptr_equal(tssx_pool_take(&pool, "/s", 2, 20, odd_only, &calls), &items[3]);
	assert_true(calls >= 1);
	assert_ptr_equal(tssx_pool_take(&pool, "/s", 2, 20, odd_only, &calls), &items[5]);
	assert_null(tssx_pool_take(&pool, "/s", 2, 20, odd_only, &calls));
	/* The unusable ones stay until taken otherwise, or expired. */
	assert_int_equal(pool.count, 2);
}

static void test_bounds(void **state)
{
	struct tssx_pool pool;
	void *evicted;

	(void)state;
	tssx_pool_init(&pool, 2, 1000);
	assert_null(put(&pool, "/s", 0, 10));
	assert_null(put(&pool, "/s", 1, 11));
	/* The third of a key evicts that key's oldest. */
	assert_ptr_equal(put(&pool, "/s", 2, 12), &items[0]);
	assert_int_equal(pool.count, 2);
	/* All slots full of other keys: the oldest of all goes. */
	for (int i = 0; i < (int)TSSX_POOL_SLOTS - 2; i++) {
		char key[8] = { '/', (char)('a' + i), 0 };

		assert_null(put(&pool, key, 10 + i, 20 + (uint64_t)i));
	}
	assert_int_equal(pool.count, TSSX_POOL_SLOTS);
	evicted = put(&pool, "/z", 40, 100);
	assert_ptr_equal(evicted, &items[1]);
	assert_int_equal(pool.count, TSSX_POOL_SLOTS);
	/* per_key 1 (a server's mappings): the newer replaces the older. */
	tssx_pool_init(&pool, 1, 1000);
	assert_null(put(&pool, "k", 0, 1));
	assert_ptr_equal(put(&pool, "k", 1, 2), &items[0]);
	assert_ptr_equal(take(&pool, "k", 3), &items[1]);
}

static void test_expiry(void **state)
{
	struct tssx_pool pool;
	int seen[3] = { 0 };
	void *item;

	(void)state;
	tssx_pool_init(&pool, 4, 100);
	put(&pool, "/s", 0, 1000);
	put(&pool, "/s", 1, 1050);
	put(&pool, "/t", 2, 1060);
	/* Idle past the limit: never taken, handed back by expiry. */
	assert_ptr_equal(take(&pool, "/s", 1140), &items[1]);
	put(&pool, "/s", 1, 1050);
	assert_null(tssx_pool_expired(&pool, 1100));
	assert_ptr_equal(tssx_pool_expired(&pool, 1101), &items[0]);
	assert_null(tssx_pool_expired(&pool, 1101));
	/* A clock that went back: not trusted, expired. */
	assert_null(take(&pool, "/t", 1059));
	assert_ptr_equal(tssx_pool_expired(&pool, 1059), &items[2]);
	assert_int_equal(pool.count, 1);
	/* Draining hands each item back once. */
	put(&pool, "/u", 0, 1300);
	put(&pool, "/v", 2, 1300);
	while ((item = tssx_pool_drain(&pool)))
		seen[(int *)item - items]++;
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 1);
	assert_int_equal(seen[2], 1);
	assert_int_equal(pool.count, 0);
	assert_null(take(&pool, "/u", 1300));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_oldest_first),
		cmocka_unit_test(test_usable),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_expiry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
