/* Unit tests of the hello: a valid one round-trips, each bad field is
 * refused with its own error and reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tssx/hello.h"
#include "tssx/segment.h"

static struct tssx_hello valid(void)
{
	struct tssx_hello hello;

	tssx_hello_init(&hello, 1 << 20, 64 * 1024);
	return hello;
}

static void assert_refused(const struct tssx_hello *hello, size_t len, int err)
{
	struct tssx_hello out;
	const char *why = NULL;

	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(tssx_hello_parse(hello, len, &out, &why), err);
	assert_non_null(why);
	assert_true(strlen(why) > 0);
	assert_int_equal(out.magic, 0xa5a5a5a5); /* untouched */
	assert_int_equal(tssx_hello_parse(hello, len, &out, NULL), err);
}

static void test_valid(void **state)
{
	struct tssx_hello hello = valid(), out;
	const char *why = NULL;

	assert_int_equal(hello.magic, TSSX_HELLO_MAGIC);
	assert_int_equal(hello.version, TSSX_PROTOCOL_VERSION);
	assert_int_equal(hello.length, sizeof(hello));
	assert_int_equal(hello.segment_size, tssx_segment_size(1 << 20, 64 * 1024));
	assert_int_equal(tssx_hello_parse(&hello, sizeof(hello), &out, &why), 0);
	assert_null(why);
	assert_memory_equal(&out, &hello, sizeof(hello));
	/* Extremes of the capacity range. */
	tssx_hello_init(&hello, TSSX_RING_MIN_CAPACITY, TSSX_RING_MAX_CAPACITY);
	assert_int_equal(tssx_hello_parse(&hello, sizeof(hello), &out, NULL), 0);
}

static void test_short(void **state)
{
	struct tssx_hello hello = valid();

	assert_refused(&hello, 0, -EBADMSG);
	assert_refused(&hello, sizeof(hello) - 1, -EBADMSG);
}

static void test_bad_magic(void **state)
{
	struct tssx_hello hello = valid();

	hello.magic ^= 1;
	assert_refused(&hello, sizeof(hello), -EBADMSG);
}

static void test_bad_version(void **state)
{
	struct tssx_hello hello = valid();

	hello.version = TSSX_PROTOCOL_VERSION + 1;
	assert_refused(&hello, sizeof(hello), -EPROTONOSUPPORT);
	hello.version = 0;
	assert_refused(&hello, sizeof(hello), -EPROTONOSUPPORT);
	/* Version 6's hello was 8 bytes shorter: refused for its version. */
	hello.version = 6;
	assert_refused(&hello, sizeof(hello) - 8, -EPROTONOSUPPORT);
}

static void test_bell_fds(void **state)
{
	struct tssx_hello hello = valid(), out;

	assert_int_equal(hello.bell_fds, 0);
	hello.bell_fds = TSSX_HELLO_BELL_FDS;
	assert_int_equal(tssx_hello_parse(&hello, sizeof(hello), &out, NULL), 0);
	assert_int_equal(out.bell_fds, TSSX_HELLO_BELL_FDS);
	hello.bell_fds = 1;
	assert_refused(&hello, sizeof(hello), -EINVAL);
	hello.bell_fds = 3;
	assert_refused(&hello, sizeof(hello), -EINVAL);
	hello.bell_fds = UINT32_MAX;
	assert_refused(&hello, sizeof(hello), -EINVAL);
	hello.bell_fds = 0;
	hello.reserved = 1;
	assert_refused(&hello, sizeof(hello), -EINVAL);
}

static void test_bad_length(void **state)
{
	struct tssx_hello hello = valid();

	hello.length = sizeof(hello) - 8;
	assert_refused(&hello, sizeof(hello), -EBADMSG);
	hello.length = sizeof(hello) + 8;
	assert_refused(&hello, sizeof(hello), -EBADMSG);
}

static void test_bad_capacity(void **state)
{
	const uint64_t bad[] = {
		0, 1, TSSX_RING_MIN_CAPACITY / 2, TSSX_RING_MIN_CAPACITY + 1,
		3 * TSSX_RING_MIN_CAPACITY, TSSX_RING_MAX_CAPACITY * 2, UINT64_MAX, 1ull << 63,
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int dir = TSSX_C2S; dir <= TSSX_S2C; dir++) {
			struct tssx_hello hello = valid();

			hello.ring_capacity[dir] = bad[i];
			assert_refused(&hello, sizeof(hello), -EINVAL);
		}
	}
}

static void test_bad_segment_size(void **state)
{
	struct tssx_hello hello = valid();

	hello.segment_size += 4096;
	assert_refused(&hello, sizeof(hello), -EINVAL);
	hello.segment_size = 0;
	assert_refused(&hello, sizeof(hello), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_short),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_bell_fds),
		cmocka_unit_test(test_bad_length),
		cmocka_unit_test(test_bad_capacity),
		cmocka_unit_test(test_bad_segment_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
