/*
 * Skipping what did not pay lately (tssx/skip.h), under two rules the
 * size of its users': spins (wait.h) and connections to one server
 * (destination.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spin_rule),
		cmocka_unit_test(test_connection_rule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
