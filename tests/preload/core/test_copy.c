/* Unit tests of the ring's copy (tssx/copy.h): every length up to a few
 * hundred bytes, at every alignment of either side within a word, copies
 * exactly its bytes and touches nothing around them (the assembly's
 * overlapping 8- and 16-byte moves, its byte loop and rep movsb). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tssx/copy.h"

#define MAX_LEN 300
#define GUARD 32
#define GUARD_BYTE 0xa5

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 13 + i / 7);
}

static void test_every_length_and_alignment(void **state)
{
	static uint8_t src[MAX_LEN + 2 * GUARD], dst[MAX_LEN + 2 * GUARD];

	(void)state;
	for (size_t len = 0; len <= MAX_LEN; len++) {
		for (size_t s_off = 0; s_off < 8; s_off++) {
			for (size_t d_off = 0; d_off < 8; d_off++) {
				uint8_t *from = src + GUARD + s_off, *to = dst + GUARD + d_off;

				fill(src, sizeof(src), (uint8_t)len);
				memset(dst, GUARD_BYTE, sizeof(dst));
				assert_int_equal(tssx_copy(to, from, len), 0);
				assert_memory_equal(to, from, len);
				for (uint8_t *p = dst; p < to; p++)
					assert_int_equal(*p, GUARD_BYTE);
				for (uint8_t *p = to + len; p < dst + sizeof(dst); p++)
					assert_int_equal(*p, GUARD_BYTE);
			}
		}
	}
}

/* Large copies, across what a ring moves at once. */
static void test_large(void **state)
{
	static uint8_t src[1 << 20], dst[(1 << 20) + GUARD];

	(void)state;
	fill(src, sizeof(src), 3);
	memset(dst, GUARD_BYTE, sizeof(dst));
	assert_int_equal(tssx_copy(dst, src, sizeof(src)), 0);
	assert_memory_equal(dst, src, sizeof(src));
	for (size_t i = sizeof(src); i < sizeof(dst); i++)
		assert_int_equal(dst[i], GUARD_BYTE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_length_and_alignment),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
