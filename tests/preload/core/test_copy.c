/* Unit tests of the ring's copy (tssx/copy.h): every length up to a few
 * hundred bytes, at every alignment of either side within a word, copies
 * exactly its bytes and touches nothing around them (the inline copies'
 * and the assembly's overlapping 8- and 16-byte moves, its byte loop and
 * rep movsb); a fault in any of them returns -EFAULT. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <cmocka.h>

#include "tssx/copy.h"
#include "tssx/macros.h"

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

#if TSSX_COPY_LANDS
/* What the library's handler does (preload/conn/fault.c): a fault in a
 * copy resumes at its landing; any other fault fails the test. */
static void on_fault(int sig, siginfo_t *info, void *context)
{
	ucontext_t *uc = context;
	uintptr_t landing = tssx_copy_fault_landing((uintptr_t)uc->uc_mcontext.gregs[REG_RIP]);

	(void)sig;
	(void)info;
	if (!landing)
		abort();
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)landing;
}

/* Every size class, the inline ones (4-7, 8-16, 17-32, 33-64 bytes) and the
 * leaf's, from and to a page without access, and from a buffer that
 * turns bad in the middle of the copy. */
static void test_faults_land(void **state)
{
	static const size_t lens[] = { 1, 3, 4, 5, 7, 8, 12, 16, 17, 24, 32, 33, 40, 64, 65, 100, 3000 };
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_NODEFER }, old;
	uint8_t *pages = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *bad = pages + 4096, good[4096] = { 0 };

	(void)state;
	assert_true(pages != MAP_FAILED);
	assert_int_equal(mprotect(bad, 4096, PROT_NONE), 0);
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGSEGV, &sa, &old), 0);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		size_t len = lens[i];

		assert_int_equal(tssx_copy(good, bad, len), -EFAULT);
		assert_int_equal(tssx_copy(bad, good, len), -EFAULT);
		if (len > 1) {
			assert_int_equal(tssx_copy(good, bad - len / 2, len), -EFAULT);
			assert_int_equal(tssx_copy(bad - len / 2, good, len), -EFAULT);
		}
		assert_int_equal(tssx_copy(good, pages, len), 0);
	}
	assert_int_equal(sigaction(SIGSEGV, &old, NULL), 0);
	munmap(pages, 3 * 4096);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_length_and_alignment),
		cmocka_unit_test(test_large),
#if TSSX_COPY_LANDS
		cmocka_unit_test(test_faults_land),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
