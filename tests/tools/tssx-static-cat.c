/*
 * tssx-static-cat: cat(1) from stdin to stdout as a Go program built
 * without cgo (Go's default whenever it can) is to the library: a static
 * ELF image without PT_INTERP, no libc at all, its own entry point, every
 * read and write a raw system call.  No dynamic loader runs, so nothing
 * preloads the library into it whatever LD_PRELOAD says
 * (tests/preload/exec.sh: a connection exec'd into such an image).  Built
 * with -nostdlib -static, also in sanitizer builds (no runtime to load).
 *
 * Built a second time as tssx-go-cat (GO_LIKE): a Go program built with
 * cgo.  Dynamically linked, so the loader preloads the library, but its
 * I/O is the same raw system calls, around every wrapper, and it carries
 * the Go linker's build-ID note: the library is loaded and never called.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
/* The kernel enters with the stack 16-byte aligned, a C function expects
 * it 8 bytes off (a return address): realigned at _start. */
#define ENTRY_ALIGN force_align_arg_pointer,

static long raw_syscall3(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
#define ENTRY_ALIGN

static long raw_syscall3(long nr, long a, long b, long c)
{
	register long x8 __asm__("x8") = nr, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;

	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}
#else
#error "tssx-static-cat: no raw system calls for this CPU (tests/tools/meson.build builds it on x86-64 and arm64)"
#endif

/* The kernel returns -errno. */
static int cat(void)
{
	static char buf[65536];
	long n;

	while ((n = raw_syscall3(SYS_read, 0, (long)buf, sizeof(buf))) != 0) {
		if (n == -EINTR)
			continue;
		if (n < 0)
			return 1;
		for (long done = 0; done < n;) {
			long w = raw_syscall3(SYS_write, 1, (long)(buf + done), n - done);

			if (w < 0 && w != -EINTR)
				return 1;
			done += w > 0 ? w : 0;
		}
	}
	return 0;
}

#ifdef GO_LIKE
/* What the Go linker writes into .note.go.buildid (a PT_NOTE segment):
 * name "Go", type 4, the build ID as the descriptor. */
__attribute__((section(".note.go.buildid"), used, aligned(4))) static const struct {
	uint32_t namesz, descsz, type;
	char name[4];
	char desc[8];
} go_buildid = { 3, 8, 4, "Go", "tssxtest" };

int main(void)
{
	return cat();
}
#else
/* The kernel's entry: no libc to set anything up, as in Go's runtime. */
void _start(void);

__attribute__((ENTRY_ALIGN noreturn, used)) void _start(void)
{
	for (;;)
		raw_syscall3(SYS_exit_group, cat(), 0, 0);
}
#endif
