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

#if defined(__x86_64__) && !defined(TSSX_COPY_ASAN)
#define TSSX_COPY_LANDS 1

/* The leaf in assembly and its landing (copy_x86_64.S). */
void tssx_copy_leaf(void);
void tssx_copy_landing(void);

/*
 * 0, or -EFAULT when a load or store faulted (bytes before it may have
 * been copied).  The call is made from inline assembly that names every
 * register the leaf touches (rax, rcx, rdx, rsi, rdi, xmm0-xmm3, the
 * flags), so that the caller keeps its values in the others across it
 * instead of saving them as the ABI's call would make it: the data
 * path's fast path (tssx/ring_fast.h) has no spills around its copy.
 * The stack pointer moves below the red zone, which the caller may use,
 * before the call pushes its return address.
 */
static inline long tssx_copy(void *dst, const void *src, size_t len)
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

/* Where a fault at pc resumes: the leaf's landing for a pc inside its
 * copying instructions, else 0. */
static inline uintptr_t tssx_copy_fault_landing(uintptr_t pc)
{
	return pc >= (uintptr_t)tssx_copy_leaf && pc < (uintptr_t)tssx_copy_landing ? (uintptr_t)tssx_copy_landing
										 : 0;
}
#else
#define TSSX_COPY_LANDS 0

static inline long tssx_copy(void *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
	return 0;
}
#endif

#endif
