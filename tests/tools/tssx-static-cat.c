/*
 * tssx-static-cat: cat(1) from stdin to stdout, linked statically, so that
 * no dynamic loader preloads the library into it whatever LD_PRELOAD says
 * (tests/preload/exec.sh: a connection exec'd into a static image).
 */
#include <errno.h>
#include <unistd.h>

int main(void)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(STDOUT_FILENO, buf + done, (size_t)(n - done));

			if (w < 0 && errno != EINTR)
				return 1;
			done += w > 0 ? w : 0;
		}
	}
	return 0;
}
