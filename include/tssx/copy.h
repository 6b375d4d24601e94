/*
 * The ring's copies between the caller's buffers and shared memory, which
 * return -EFAULT where the caller's buffer cannot be accessed instead of
 * dying in the copy (docs/preload.md, "Bad buffers").
 *
 * On x86-64, tssx_copy() is a leaf in assembly (preload/core/copy_x86_64.S)
 * that never touches the stack: when one of its loads or stores faults,
 * the library's SIGSEGV/SIGBUS handler (preload/conn/fault.c) moves the
 * interrupted instruction pointer to its landing, which returns -EFAULT
 * to the caller, as the kernel's exception tables do for copy_to_user().
 * The copy costs nothing for the guard: no sigsetjmp(), no thread-local
 * pointer, no frame.  Elsewhere, and under AddressSanitizer (which must
 * see every access), it is memcpy() and the data path sets a
 * sigsetjmp() guard around it (TSSX_COPY_LANDS == 0).
 */
#ifndef TSSX_COPY_H
#define TSSX_COPY_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define TSSX_COPY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TSSX_COPY_ASAN 1
#endif
#endif

/* The sizes tssx_copy_inline() copies: small messages. */
#define TSSX_COPY_INLINE_MIN 4u
#define TSSX_COPY_INLINE_MAX 64u

#if defined(__x86_64__) && !defined(TSSX_COPY_ASAN)
#define TSSX_COPY_LANDS 1

/* The leaf in assembly and its landing (copy_x86_64.S). */
void tssx_copy_leaf(void);
void tssx_copy_landing(void);

/*
 * The leaf's call: 0, or -EFAULT when a load or store faulted (bytes
 * before it may have been copied).  The call is made from inline
 * assembly that names every register the leaf touches (rax, rcx, rdx,
 * rsi, rdi, xmm0-xmm3, the flags), so that the caller keeps its values
 * in the others across it instead of saving them as the ABI's call would
 * make it.  The stack pointer moves below the red zone, which the caller
 * may use, before the call pushes its return address.
 */
static inline long tssx_copy_call(void *dst, const void *src, size_t len)
{
	long r;

	__asm__ volatile("lea -128(%%rsp), %%rsp\n\t"
			 "call tssx_copy_leaf\n\t"
			 "lea 128(%%rsp), %%rsp"
			 : "=a"(r), "+D"(dst), "+S"(src), "+d"(len)
			 :
			 : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "cc", "memory");
	return r;
}

/*
 * A copy inline in its caller, for the sizes of small messages: the loads
 * and stores are a site (struct tssx_copy_site) in the section
 * tssx_copy_sites, so that a fault in one of them resumes at the site's
 * landing, a label of the caller that returns -EFAULT: the kernel's
 * exception tables again, without a call.  Each entry holds its three
 * addresses relative to itself (no relocation in a shared object).
 * Overlapping pairs of 4-, 8- or 16-byte moves, as the leaf's; all loads
 * before the first store.
 */
struct tssx_copy_site {
	int32_t from, to, landing;
};

#define TSSX_COPY_SITE(moves)                                                                          \
	"1:\n\t" moves "2:\n\t"                                                                         \
	".pushsection tssx_copy_sites, \"a\"\n\t"                                                        \
	".balign 4\n\t"                                                                                \
	".long 1b - ., 2b - ., %l[fault] - .\n\t"                                                      \
	".popsection"

/* len in [w, 2w]: the first and the last w bytes, through xmm0 and xmm1,
 * with `mov` (movd, movq, movdqu); a fault goes to the caller's label
 * `fault`. */
#define TSSX_COPY_ENDS(mov, w)                                                                         \
	__asm__ goto(TSSX_COPY_SITE(mov " (%[s]), %%xmm0\n\t" mov " -" #w "(%[s],%[n]), %%xmm1\n\t" mov        \
				    " %%xmm0, (%[d])\n\t" mov " %%xmm1, -" #w "(%[d],%[n])\n\t")                 \
		     :                                                                                 \
		     : [d] "r"(dst), [s] "r"(src), [n] "r"(len)                                       \
		     : "xmm0", "xmm1", "memory"                                                         \
		     : fault)

/* The inline copy, for len in [TSSX_COPY_INLINE_MIN, TSSX_COPY_INLINE_MAX]:
 * two comparisons for every class (a chain took one for 4-7 bytes, three
 * for 17-64). */
static inline __attribute__((always_inline)) long tssx_copy_inline(void *dst, const void *src, size_t len)
{
	if (len <= 16) {
		if (len < 8)
			TSSX_COPY_ENDS("movd", 4);
		else
			TSSX_COPY_ENDS("movq", 8);
	} else if (len <= 32) {
		TSSX_COPY_ENDS("movdqu", 16);
	} else {
		__asm__ goto(TSSX_COPY_SITE("movdqu (%[s]), %%xmm0\n\t"
					    "movdqu 16(%[s]), %%xmm1\n\t"
					    "movdqu -32(%[s],%[n]), %%xmm2\n\t"
					    "movdqu -16(%[s],%[n]), %%xmm3\n\t"
					    "movdqu %%xmm0, (%[d])\n\t"
					    "movdqu %%xmm1, 16(%[d])\n\t"
					    "movdqu %%xmm2, -32(%[d],%[n])\n\t"
					    "movdqu %%xmm3, -16(%[d],%[n])\n\t")
			     :
			     : [d] "r"(dst), [s] "r"(src), [n] "r"(len)
			     : "xmm0", "xmm1", "xmm2", "xmm3", "memory"
			     : fault);
	}
	return 0;
fault:
	return -EFAULT;
}

static inline __attribute__((always_inline)) long tssx_copy(void *dst, const void *src, size_t len)
{
	if (len < TSSX_COPY_INLINE_MIN || len > TSSX_COPY_INLINE_MAX)
		return tssx_copy_call(dst, src, len);
	return tssx_copy_inline(dst, src, len);
}

/* The inline copies' sites, from the linker. */
extern const struct tssx_copy_site __start_tssx_copy_sites[] __attribute__((visibility("hidden")));
extern const struct tssx_copy_site __stop_tssx_copy_sites[] __attribute__((visibility("hidden")));

/* Where a fault at pc resumes: the leaf's landing for a pc inside its
 * copying instructions, an inline site's landing for a pc inside its
 * moves, else 0. */
static inline uintptr_t tssx_copy_fault_landing(uintptr_t pc)
{
	if (pc >= (uintptr_t)tssx_copy_leaf && pc < (uintptr_t)tssx_copy_landing)
		return (uintptr_t)tssx_copy_landing;
	for (const struct tssx_copy_site *site = __start_tssx_copy_sites; site < __stop_tssx_copy_sites; site++) {
		uintptr_t from = (uintptr_t)&site->from + (uintptr_t)(intptr_t)site->from;
		uintptr_t to = (uintptr_t)&site->to + (uintptr_t)(intptr_t)site->to;

		if (pc >= from && pc < to)
			return (uintptr_t)&site->landing + (uintptr_t)(intptr_t)site->landing;
	}
	return 0;
}
#else
#define TSSX_COPY_LANDS 0

static inline long tssx_copy(void *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
	return 0;
}

static inline long tssx_copy_inline(void *dst, const void *src, size_t len)
{
	return tssx_copy(dst, src, len);
}
#endif

#endif
