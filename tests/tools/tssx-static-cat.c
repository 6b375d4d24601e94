/*
 * tssx-static-cat: cat(1) from stdin to stdout, linked statically, so that
 * no dynamic loader preloads the library into it whatever LD_PRELOAD says
 * (tests/preload/exec.sh: a connection exec'd into a static image).
 *
 * Built a second time as tssx-go-cat (GO_LIKE): dynamically linked, so
 * the loader preloads the library, but doing its I/O by raw system calls
 * and carrying the Go linker's build-ID note, as a Go program built with
 * cgo does: the library is loaded and never called.
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#ifdef GO_LIKE
#include <sys/syscall.h>

/* What the Go linker writes into .note.go.buildid (a PT_NOTE segment):
 * name "Go", type 4, the build ID as the descriptor. */
__attribute__((section(".note.go.buildid"), used, aligned(4))) static const struct {
	uint32_t namesz, descsz, type;
	char name[4];
	char desc[8];
} go_buildid = { 3, 8, 4, "Go", "tssxtest" };

#define cat_read(fd, buf, len) syscall(SYS_read, fd, buf, len)
#define cat_write(fd, buf, len) syscall(SYS_write, fd, buf, len)
#else
#define cat_read read
#define cat_write write
#endif

int main(void)
{
	char buf[65536];
	ssize_t n;

	while ((n = cat_read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = cat_write(STDOUT_FILENO, buf + done, (size_t)(n - done));

			if (w < 0 && errno != EINTR)
				return 1;
			done += w > 0 ? w : 0;
		}
	}
	return 0;
}
