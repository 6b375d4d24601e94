/* Unit tests of the fd table (preload/conn/fd_table.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "conn/fd_table.h"

static struct tssx_fd_object a = { .kind = TSSX_FD_CONN }, b = { .kind = TSSX_FD_LISTENER };

static void test_empty_table_answers_null(void **state)
{
	(void)state;
	assert_null(tssx_table_get(0));
	assert_null(tssx_table_get(5000));
	assert_null(tssx_table_get(-1));
	assert_null(tssx_table_get(TSSX_TABLE_MAX_FD));
	assert_null(tssx_table_take(77));
}

static void test_set_get_take(void **state)
{
	(void)state;
	assert_int_equal(tssx_table_set(3, &a), 0);
	assert_int_equal(tssx_table_set(2048 + 5, &b), 0); /* another chunk */
	assert_ptr_equal(tssx_table_get(3), &a);
	assert_ptr_equal(tssx_table_get(2053), &b);
	assert_null(tssx_table_get(4));
	assert_ptr_equal(tssx_table_take(3), &a);
	assert_null(tssx_table_get(3));
	assert_null(tssx_table_take(3));
	assert_ptr_equal(tssx_table_take(2053), &b);
}

static void test_out_of_range(void **state)
{
	(void)state;
	assert_int_equal(tssx_table_set(-1, &a), -EBADF);
	assert_int_equal(tssx_table_set(TSSX_TABLE_MAX_FD, &a), -EBADF);
	assert_null(tssx_table_take(TSSX_TABLE_MAX_FD));
}

static void test_find_and_high_fd(void **state)
{
	(void)state;
	assert_int_equal(tssx_table_set(10, &a), 0);
	assert_int_equal(tssx_table_set(1500, &a), 0);
	assert_true(tssx_table_high_fd() >= 1500);
	assert_int_equal(tssx_table_find(&a), 10);
	tssx_table_take(10);
	assert_int_equal(tssx_table_find(&a), 1500);
	tssx_table_take(1500);
	assert_int_equal(tssx_table_find(&a), -1);
	/* The last slot of the table works like any other. */
	assert_int_equal(tssx_table_set(TSSX_TABLE_MAX_FD - 1, &b), 0);
	assert_ptr_equal(tssx_table_get(TSSX_TABLE_MAX_FD - 1), &b);
	assert_int_equal(tssx_table_high_fd(), TSSX_TABLE_MAX_FD - 1);
	tssx_table_take(TSSX_TABLE_MAX_FD - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_table_answers_null),
		cmocka_unit_test(test_set_get_take),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_find_and_high_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
