/* Unit tests of the benchmark's statistics: median (odd and even counts),
 * nearest-rank p99, min and max, whatever the input order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bench.h"

static void test_empty(void **state)
{
	struct bench_stats st;

	bench_stats_compute(NULL, 0, &st);
	assert_int_equal(st.n, 0);
	assert_true(st.median == 0 && st.p99 == 0 && st.min == 0 && st.max == 0);
}

static void test_odd_and_even(void **state)
{
	double odd[] = { 5, 1, 3 }, even[] = { 4, 1, 3, 2 };
	struct bench_stats st;

	bench_stats_compute(odd, 3, &st);
	assert_true(st.median == 3 && st.min == 1 && st.max == 5 && st.p99 == 5);
	bench_stats_compute(even, 4, &st);
	assert_true(st.median == 2.5 && st.min == 1 && st.max == 4);
}

/* 1..200 shuffled: the 99th percentile is the 198th value. */
static void test_p99_nearest_rank(void **state)
{
	double v[200];
	struct bench_stats st;

	for (int i = 0; i < 200; i++)
		v[i] = (double)((i * 7919) % 200 + 1);
	bench_stats_compute(v, 200, &st);
	assert_int_equal(st.n, 200);
	assert_true(st.p99 == 198);
	assert_true(st.median == 100.5);
	assert_true(st.min == 1 && st.max == 200);
}

static void test_single_sample(void **state)
{
	double v[] = { 42 };
	struct bench_stats st;

	bench_stats_compute(v, 1, &st);
	assert_true(st.median == 42 && st.p99 == 42 && st.min == 42 && st.max == 42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_odd_and_even),
		cmocka_unit_test(test_p99_nearest_rank),
		cmocka_unit_test(test_single_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
