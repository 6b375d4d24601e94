/* Small helpers shared by every component: cleanup attributes, branch hints. */
#ifndef TSSX_MACROS_H
#define TSSX_MACROS_H

#include <stdlib.h>
#include <unistd.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define TSSX_CACHELINE 64
/* The pair of lines that the CPUs' adjacent-line prefetchers fetch
 * together (Intel's spatial prefetcher, AMD's): a word written by one
 * end on a line whose pair the other end polls moves between the CPUs
 * as if it shared that line (docs/data-path.md, "The segment"). */
#define TSSX_LINE_PAIR 128

/* The CPU's spin-wait hint, for loops that poll a shared line. */
static inline void tssx_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* What a pthread_atfork() handler writes in the parent or the child:
 * after fork() every private page is copy-on-write in both processes, and
 * each page written there costs a page fault and a copy per fork.  The
 * linker puts all of it in one section (one page; preload/init.c's first
 * variable aligns it), a cache line each (docs/preload.md, "What a fork costs"). */
#define TSSX_FORK_DATA __attribute__((section("tssx_fork_data"), aligned(TSSX_CACHELINE)))
/* A pthread_atfork() handler: cold, so that the compiler puts it with the
 * library's other rarely run code (.text.unlikely) and a fork()ed child
 * maps one window of the library's text for all of them, not one per
 * file (fork() copies no page table of a file's text). */
#define TSSX_FORK_HANDLER __attribute__((cold))

/* Symbols the preload library exports; everything else is hidden. */
#define TSSX_EXPORT __attribute__((visibility("default")))

static inline void tssx_freep(void *p)
{
	free(*(void **)p);
}

static inline void tssx_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

/* Variables freed / closed when they go out of scope (lxcfs style). */
#define __do_free __attribute__((cleanup(tssx_freep)))
#define __do_close __attribute__((cleanup(tssx_closep)))

/* Hands ownership out of a __do_* variable: `return move_fd(fd);`. */
#define move_ptr(p) ({ __typeof__(p) moved_ = (p); (p) = NULL; moved_; })
#define move_fd(fd) ({ int moved_ = (fd); (fd) = -1; moved_; })

#endif
