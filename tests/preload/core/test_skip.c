/*
 * Skipping what did not pay lately (tssx/skip.h), under two rules the
 * size of its users': spins (wait.h) and connections to one server
 * (destination.h); and the table of histories that processes share.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tssx/skip.h"

static const struct tssx_skip_rule spins = { 8, 4, 256 };
static const struct tssx_skip_rule connections = { 4, 16, 1024 };

/* Counts the attempts skipped before one is made again. */
static unsigned skips_in_a_row(struct tssx_skip_history *history)
{
	unsigned n = 0;

	while (tssx_skip_history_skips(history))
		n++;
	return n;
}

static void check_rule(const struct tssx_skip_rule *rule)
{
	struct tssx_skip_history history = { 0 };
	unsigned failures = 0, skip;

	/* Attempts that pay, or fail one time in three: no skip. */
	for (int i = 0; i < 3000; i++) {
		tssx_skip_history_record(&history, rule, i % 3 != 0);
		assert_false(tssx_skip_history_skips(&history));
	}
	/* Failures back to back: once more than half of the recent ones
	 * failed, the next skip_min attempts are skipped. */
	history = (struct tssx_skip_history){ 0 };
	do {
		tssx_skip_history_record(&history, rule, false);
		failures++;
	} while (history.skip_left == 0 && failures < 100);
	assert_true(failures > 1 && failures < rule->average_over);
	assert_int_equal(skips_in_a_row(&history), rule->skip_min);
	/* Each probe that fails again doubles the skip, up to the most. */
	for (skip = rule->skip_min * 2; skip <= rule->skip_max; skip *= 2) {
		tssx_skip_history_record(&history, rule, false);
		assert_int_equal(skips_in_a_row(&history), skip);
	}
	tssx_skip_history_record(&history, rule, false);
	assert_int_equal(skips_in_a_row(&history), rule->skip_max);
	/* A probe that pays halves the next skip, and makes none now. */
	tssx_skip_history_record(&history, rule, true);
	assert_int_equal(skips_in_a_row(&history), 0);
	tssx_skip_history_record(&history, rule, false);
	assert_int_equal(skips_in_a_row(&history), rule->skip_max / 2);
	/* Attempts that pay again bring the share down: no more skips. */
	for (int i = 0; i < 64; i++)
		tssx_skip_history_record(&history, rule, true);
	tssx_skip_history_record(&history, rule, false);
	assert_int_equal(skips_in_a_row(&history), 0);
	assert_int_equal(history.skip_next, rule->skip_min);
	/* A skipped attempt that would have paid ends the skip, as a probe
	 * that paid would: the next skip is half as long. */
	for (int i = 0; i < 64; i++)
		tssx_skip_history_record(&history, rule, false);
	assert_true(tssx_skip_history_skips(&history));
	tssx_skip_history_paid_anyway(&history, rule);
	assert_int_equal(skips_in_a_row(&history), 0);
	tssx_skip_history_record(&history, rule, false);
	assert_int_equal(skips_in_a_row(&history), rule->skip_max / 2);
}

static void test_spin_rule(void **state)
{
	(void)state;
	check_rule(&spins);
}

static void test_connection_rule(void **state)
{
	(void)state;
	check_rule(&connections);
}

#define TABLE_WORDS 64u

/* Keys of one index (the low bits) and different tags (the high ones). */
static uint64_t key_at(unsigned index, unsigned n)
{
	return (uint64_t)(n + 1) << 52 | index;
}

static unsigned table_skips_in_a_row(_Atomic uint64_t *table, uint64_t key)
{
	unsigned n = 0;

	while (tssx_skip_table_skips(table, TABLE_WORDS, key, &connections))
		n++;
	return n;
}

/* A key's history in the table goes as a private one does. */
static void test_table_as_private(void **state)
{
	_Atomic uint64_t table[TABLE_WORDS] = { 0 };
	struct tssx_skip_history history = { 0 }, read;
	uint64_t key = key_at(5, 0);

	(void)state;
	assert_false(tssx_skip_table_get(table, TABLE_WORDS, key, &connections, &read));
	assert_false(tssx_skip_table_skips(table, TABLE_WORDS, key, &connections));
	for (int i = 0; i < 40; i++) {
		bool paid = i % 7 == 6;

		tssx_skip_history_record(&history, &connections, paid);
		tssx_skip_table_record(table, TABLE_WORDS, key, &connections, paid);
		assert_true(tssx_skip_table_get(table, TABLE_WORDS, key, &connections, &read));
		assert_memory_equal(&read, &history, sizeof(read));
		assert_int_equal(table_skips_in_a_row(table, key), skips_in_a_row(&history));
	}
	/* Nothing else of the table was written. */
	for (unsigned i = 0; i < TABLE_WORDS; i++)
		if (i != 5)
			assert_int_equal(table[i], 0);
}

/* Keys of one index take its ways; one more takes the first way over. */
static void test_table_ways(void **state)
{
	_Atomic uint64_t table[TABLE_WORDS] = { 0 };
	struct tssx_skip_history read;
	unsigned index = TABLE_WORDS - 2; /* the ways wrap to the start */

	(void)state;
	for (unsigned n = 0; n < TSSX_SKIP_TABLE_WAYS; n++)
		for (unsigned i = 0; i <= n; i++)
			tssx_skip_table_record(table, TABLE_WORDS, key_at(index, n), &connections, false);
	for (unsigned n = 0; n < TSSX_SKIP_TABLE_WAYS; n++) {
		struct tssx_skip_history history = { 0 };

		for (unsigned i = 0; i <= n; i++)
			tssx_skip_history_record(&history, &connections, false);
		assert_true(tssx_skip_table_get(table, TABLE_WORDS, key_at(index, n), &connections, &read));
		assert_memory_equal(&read, &history, sizeof(read));
	}
	tssx_skip_table_record(table, TABLE_WORDS, key_at(index, TSSX_SKIP_TABLE_WAYS), &connections, false);
	assert_false(tssx_skip_table_get(table, TABLE_WORDS, key_at(index, 0), &connections, &read));
	assert_true(tssx_skip_table_get(table, TABLE_WORDS, key_at(index, TSSX_SKIP_TABLE_WAYS), &connections, &read));
	assert_int_equal(read.fail_share, 16384u);
	for (unsigned n = 1; n <= TSSX_SKIP_TABLE_WAYS; n++)
		assert_true(tssx_skip_table_get(table, TABLE_WORDS, key_at(index, n), &connections, &read));
}

/* Whatever another process wrote, a history read back is within the
 * rule, and its skips end. */
static void test_table_written_by_anyone(void **state)
{
	_Atomic uint64_t table[TABLE_WORDS];
	struct tssx_skip_history read;
	uint64_t key = key_at(9, 3);

	(void)state;
	memset(table, 0xff, sizeof(table));
	/* All ones: every tag is the largest one, which key_at(9, 3) has not. */
	assert_false(tssx_skip_table_get(table, TABLE_WORDS, key, &connections, &read));
	table[9] = ~(uint64_t)0 << 20 | ((key >> 44) & 0xfffff);
	assert_true(tssx_skip_table_get(table, TABLE_WORDS, key, &connections, &read));
	assert_true(read.fail_share <= 65536u);
	assert_true(read.skip_left <= connections.skip_max && read.skip_next <= connections.skip_max);
	assert_int_equal(table_skips_in_a_row(table, key), connections.skip_max);
	tssx_skip_table_record(table, TABLE_WORDS, key, &connections, true);
	assert_true(tssx_skip_table_get(table, TABLE_WORDS, key, &connections, &read));
	assert_int_equal(read.skip_left, 0);
}

struct racer {
	_Atomic uint64_t *table;
	uint64_t key;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < 20000; i++) {
		if (!tssx_skip_table_skips(r->table, TABLE_WORDS, r->key, &connections))
			tssx_skip_table_record(r->table, TABLE_WORDS, r->key, &connections, i % 5 == 0);
		/* Another key of the same index, now and then. */
		if (i % 1000 == 0)
			tssx_skip_table_record(r->table, TABLE_WORDS, r->key + ((uint64_t)1 << 60), &connections, false);
	}
	return NULL;
}

/* Threads (as processes would) changing one key's history at once: every
 * word stays a history within the rule. */
static void test_table_races(void **state)
{
	_Atomic uint64_t table[TABLE_WORDS] = { 0 };
	struct racer r = { table, key_at(3, 1) };
	pthread_t threads[4];
	struct tssx_skip_history read;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, race, &r), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	assert_true(tssx_skip_table_get(table, TABLE_WORDS, r.key, &connections, &read));
	assert_true(read.fail_share <= 65536u && read.skip_left <= connections.skip_max);
	assert_true(read.skip_next >= connections.skip_min && read.skip_next <= connections.skip_max);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spin_rule),
		cmocka_unit_test(test_connection_rule),
		cmocka_unit_test(test_table_as_private),
		cmocka_unit_test(test_table_ways),
		cmocka_unit_test(test_table_written_by_anyone),
		cmocka_unit_test(test_table_races),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
