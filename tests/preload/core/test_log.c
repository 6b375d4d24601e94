/* Unit tests of the log line (tssx/log.h): written whole, with one write
 * each, and a line too long for it cut visibly, never passed for whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tssx/log.h"

static char written[2 * TSSX_LOG_LINE_MAX];
static size_t written_len;
static int writes;

static ssize_t capture(int fd, const void *buf, size_t len)
{
	(void)fd;
	assert_true(len <= sizeof(written));
	memcpy(written, buf, len);
	written_len = len;
	writes++;
	return (ssize_t)len;
}

static int setup(void **state)
{
	(void)state;
	tssx_log_write = capture;
	tssx_log_level = TSSX_LOG_INFO;
	writes = 0;
	written_len = 0;
	return 0;
}

static void test_line_whole(void **state)
{
	const char *colon;

	(void)state;
	tssx_log(TSSX_LOG_INFO, "fd %d: %s", 7, "shared memory, client");
	assert_int_equal(writes, 1);
	assert_memory_equal(written, "tssx[", 5);
	colon = memchr(written, ':', written_len);
	assert_non_null(colon);
	assert_int_equal(written_len - (size_t)(colon - written),
			 strlen(": info: fd 7: shared memory, client\n"));
	assert_memory_equal(colon, ": info: fd 7: shared memory, client\n", written_len - (size_t)(colon - written));
	/* Above the level: nothing. */
	tssx_log(TSSX_LOG_DEBUG, "not shown");
	assert_int_equal(writes, 1);
}

/* The statistics line at exit grew past the 512 bytes of the buffer
 * before: its end was cut off without a sign. */
static void test_long_line_fits_or_says_cut(void **state)
{
	char message[TSSX_LOG_LINE_MAX + 100];

	(void)state;
	memset(message, 'x', 700);
	message[700] = '\0';
	tssx_log(TSSX_LOG_INFO, "%s.", message);
	assert_int_equal(writes, 1);
	assert_true(written_len > 700);
	assert_memory_equal(written + written_len - 3, "x.\n", 3);

	memset(message, 'y', sizeof(message) - 1);
	message[sizeof(message) - 1] = '\0';
	tssx_log(TSSX_LOG_WARN, "%s", message);
	assert_int_equal(writes, 2);
	assert_true(written_len <= TSSX_LOG_LINE_MAX);
	assert_int_equal(written[written_len - 1], '\n');
	assert_memory_equal(written + written_len - 1 - strlen(TSSX_LOG_CUT), TSSX_LOG_CUT, strlen(TSSX_LOG_CUT));
	assert_int_equal(written[written_len - 2 - strlen(TSSX_LOG_CUT)], 'y');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_line_whole, setup),
		cmocka_unit_test_setup(test_long_line_fits_or_says_cut, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
