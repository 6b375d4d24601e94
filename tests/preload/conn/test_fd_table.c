/* Unit tests of the fd table (preload/conn/fd_table.c): slots, references. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "conn/fd_table.h"

static struct tssx_fd_object a = { .kind = TSSX_FD_CONN }, b = { .kind = TSSX_FD_LISTENER };

/* Empties fd's slot and drops the reference it counted. */
static void drop(int fd)
{
	struct tssx_fd_object *obj = tssx_table_take(fd);

	assert_non_null(obj);
	tssx_table_unref(obj);
}

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
	drop(3);
	assert_null(tssx_table_get(3));
	assert_null(tssx_table_take(3));
	drop(2053);
	assert_int_equal(a.refs, 0);
	assert_int_equal(b.refs, 0);
}

/* Every slot set counts one reference, an alias none; the last unref says
 * so, and a failed set counts nothing. */
static void test_reference_counts(void **state)
{
	struct tssx_fd_object c = { .kind = TSSX_FD_CONN };

	(void)state;
	assert_int_equal(tssx_table_set(20, &c), 0);
	assert_int_equal(tssx_table_set(21, &c), 0); /* a dup */
	assert_int_equal(tssx_table_set_alias(22, &c), 0);
	assert_int_equal(tssx_table_set(TSSX_TABLE_MAX_FD, &c), -EBADF);
	assert_int_equal(c.refs, 2);
	assert_ptr_equal(tssx_table_get(22), &c);
	assert_ptr_equal(tssx_table_take(22), &c); /* the alias: no unref */
	assert_ptr_equal(tssx_table_take(20), &c);
	assert_false(tssx_table_unref(&c));
	assert_ptr_equal(tssx_table_take(21), &c);
	assert_true(tssx_table_unref(&c));
	assert_int_equal(c.refs, 0);
}

/* One slot per fd for the object and the epoll bookkeeping; a slot made
 * for bookkeeping alone counts for the high fd and is busy while any of
 * it is there. */
static void test_slot_holds_everything(void **state)
{
	struct tssx_fd_slot *slot;

	(void)state;
	assert_null(tssx_table_slot(-1));
	assert_null(tssx_table_slot_make(-1));
	assert_null(tssx_table_slot_make(TSSX_TABLE_MAX_FD));
	slot = tssx_table_slot_make(5000);
	assert_non_null(slot);
	assert_ptr_equal(tssx_table_slot(5000), slot);
	assert_true(tssx_table_high_fd() >= 5000);
	assert_false(tssx_table_slot_busy(slot));
	atomic_store(&slot->watchers, 1);
	assert_true(tssx_table_slot_busy(slot));
	assert_null(tssx_table_get(5000));
	assert_int_equal(tssx_table_set(5000, &a), 0);
	assert_ptr_equal(atomic_load(&slot->obj), &a);
	atomic_store(&slot->watchers, 0);
	assert_true(tssx_table_slot_busy(slot));
	drop(5000);
	assert_false(tssx_table_slot_busy(slot));
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
	drop(10);
	assert_int_equal(tssx_table_find(&a), 1500);
	drop(1500);
	assert_int_equal(tssx_table_find(&a), -1);
	/* The last slot of the table works like any other. */
	assert_int_equal(tssx_table_set(TSSX_TABLE_MAX_FD - 1, &b), 0);
	assert_ptr_equal(tssx_table_get(TSSX_TABLE_MAX_FD - 1), &b);
	assert_int_equal(tssx_table_high_fd(), TSSX_TABLE_MAX_FD - 1);
	drop(TSSX_TABLE_MAX_FD - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_table_answers_null),
		cmocka_unit_test(test_set_get_take),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_reference_counts),
		cmocka_unit_test(test_slot_holds_everything),
		cmocka_unit_test(test_find_and_high_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
