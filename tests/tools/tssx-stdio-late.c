/*
 * tssx-stdio-late: stdio streams made before their fd became a
 * connection (docs/preload.md, "stdio"), against a tssx-echo server or
 * client.
 *
 *   tssx-stdio-late fdopen PATH BYTES
 *   tssx-stdio-late dup2-first PATH BYTES
 *   tssx-stdio-late onto-stream PATH BYTES
 *   tssx-stdio-late saved-std PATH BYTES
 *   tssx-stdio-late stale-accept PATH
 *
 * fdopen: fdopen(s, "r+") of a socket before its connect(), then the
 * echo of BYTES through that stream.  dup2-first: a stream fopen()ed on
 * /dev/null whose fd a socket is dup2()ed onto before its connect(),
 * then the same.  Both expect every byte back: the stream works.
 *
 * onto-stream: a connection dup2()ed onto the fd of a stream fopen()ed
 * on /dev/null, which holds output not written yet.  saved-std: copies
 * of stdin and stdout taken before the connection is dup2()ed onto fds 0
 * and 1 (its report goes to stderr; a byte pushed back into stdin
 * before must be read from the new stdin first).  Both expect the old streams'
 * reads and writes to fail with EBADF rather than read the real socket
 * or write around the rings (also after a setvbuf() or setbuf() that
 * would make every read go to the fd), the unwritten output to reach the
 * peer, and the rest of BYTES to echo through the fd (onto-stream) or
 * through stdin and stdout (saved-std): nothing lost.
 *
 * stale-accept (a server): accepts one client onto the number of a
 * stream whose fd was closed under it, expects a read of that stream to
 * fail with EBADF (the connection non-blocking meanwhile: EAGAIN would
 * mean it read the real socket), and echoes with read() and write().
 *
 * The echo goes in chunks of several sizes, each written, flushed and
 * read back whole before the next.  A client prints "client: echoed N
 * bytes checksum X", the server "server: echoed N bytes checksum X";
 * any other outcome exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools.h"

/* Bytes the onto-stream stream holds unwritten when the connection
 * lands on its fd. */
#define PENDING 1000

static const size_t chunk_sizes[] = { 1, 100, 4095, 4096, 4097, 65536, 7 };

struct echo {
	struct stream gen;
	uint64_t done, sum;
	unsigned chunks;
	uint8_t *sent, *back;
};

static void echo_init(struct echo *e)
{
	*e = (struct echo){ .gen = { .state = STREAM_SEED }, .sum = FNV_INIT };
	e->sent = xmalloc(65536);
	e->back = xmalloc(65536);
}

/* The next chunk of the stream, at most left bytes. */
static size_t next_chunk(struct echo *e, uint64_t left)
{
	size_t n = chunk_sizes[e->chunks++ % ARRAY_LEN(chunk_sizes)];

	if (n > left)
		n = (size_t)left;
	stream_fill(&e->gen, e->sent, n);
	return n;
}

static void echo_free(struct echo *e)
{
	free(e->sent);
	free(e->back);
}

static void echoed(struct echo *e, size_t n)
{
	if (memcmp(e->sent, e->back, n))
		die("echoed bytes differ after offset %" PRIu64, e->done);
	e->sum = fnv1a(e->sum, e->back, n);
	e->done += n;
}

static void read_exact(int fd, uint8_t *buf, size_t n)
{
	while (n) {
		ssize_t got = read(fd, buf, n);

		if (got <= 0)
			die("read: %s", got ? strerror(errno) : "EOF before the echo");
		buf += got;
		n -= (size_t)got;
	}
}

/* Until e->done reaches bytes: through the streams, or with write() and
 * read() on fd when out is NULL. */
static void echo_until(struct echo *e, FILE *out, FILE *in, int fd, uint64_t bytes)
{
	while (e->done < bytes) {
		size_t n = next_chunk(e, bytes - e->done);

		if (!out) {
			if (write(fd, e->sent, n) != (ssize_t)n)
				die_errno("write");
			read_exact(fd, e->back, n);
		} else {
			if (fwrite(e->sent, 1, n, out) != n || fflush(out) != 0)
				die_errno("fwrite");
			if (fread(e->back, 1, n, in) != n)
				die("fread: %s after %" PRIu64 " bytes", ferror(in) ? strerror(errno) : "EOF",
				    e->done);
		}
		echoed(e, n);
	}
}

/* The server's EOF after the shutdown of our writing side. */
static void expect_eof(int fd, FILE *in)
{
	char c;

	if (shutdown(fd, SHUT_WR) < 0)
		die_errno("shutdown");
	if (in ? fread(&c, 1, 1, in) != 0 || !feof(in) : read(fd, &c, 1) != 0)
		die("no EOF after the echo");
}

static void report(FILE *to, const char *who, const struct echo *e)
{
	fprintf(to, "%s: echoed %" PRIu64 " bytes checksum %016" PRIx64 "\n", who, e->done, e->sum);
}

/* A stream whose fd became a connection: its writes and reads fail with
 * EBADF, neither reads the real socket nor writes around the rings. */
static void expect_refused(FILE *f, const char *what)
{
	char big[8192];

	errno = 0;
	if (fputc('x', f) != EOF || fflush(f) != 0 || errno != EBADF || !ferror(f))
		die("%s: its write did not fail with EBADF (%s)", what, strerror(errno));
	clearerr(f);
	errno = 0;
	if (getc(f) != EOF || errno != EBADF || !ferror(f) || feof(f))
		die("%s: its read did not fail with EBADF (%s)", what, strerror(errno));
	clearerr(f);
	errno = 0;
	if (fread(big, 1, sizeof(big), f) != 0 || errno != EBADF || !ferror(f))
		die("%s: its large read did not fail with EBADF (%s)", what, strerror(errno));
	clearerr(f);
	/* Unbuffered, every read would go to the fd directly. */
	errno = 0;
	if (setvbuf(f, NULL, _IONBF, 0) == 0 || errno != EBADF)
		die("%s: setvbuf() did not fail with EBADF (%s)", what, strerror(errno));
	setbuf(f, NULL);
	if (fread(big, 1, 1, f) != 0 || errno != EBADF || !ferror(f))
		die("%s: its read after setbuf() did not fail with EBADF (%s)", what, strerror(errno));
	clearerr(f);
}

static int socket_for(const char *path, struct sockaddr_un *addr, unsigned *len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		die_errno("socket");
	*len = tool_addr(path, addr);
	return fd;
}

static void connect_to(int fd, const struct sockaddr_un *addr, unsigned len)
{
	if (connect(fd, (const struct sockaddr *)addr, len) < 0)
		die_errno("connect");
}

/* fdopen(s, "r+") before connect(s). */
static void run_fdopen(const char *path, uint64_t bytes)
{
	struct sockaddr_un addr;
	unsigned len;
	int fd = socket_for(path, &addr, &len);
	FILE *f = fdopen(fd, "r+");
	struct echo e;

	if (!f)
		die_errno("fdopen");
	connect_to(fd, &addr, len);
	echo_init(&e);
	echo_until(&e, f, f, fd, bytes);
	expect_eof(fd, f);
	report(stdout, "client", &e);
	echo_free(&e);
	if (fclose(f) != 0)
		die_errno("fclose");
}

/* A socket dup2()ed onto a stream's fd before connect(). */
static void run_dup2_first(const char *path, uint64_t bytes)
{
	struct sockaddr_un addr;
	unsigned len;
	int fd = socket_for(path, &addr, &len);
	FILE *f = fopen("/dev/null", "r+");
	struct echo e;

	if (!f || dup2(fd, fileno(f)) < 0 || close(fd) < 0)
		die_errno("fopen and dup2");
	connect_to(fileno(f), &addr, len);
	echo_init(&e);
	echo_until(&e, f, f, fileno(f), bytes);
	expect_eof(fileno(f), f);
	report(stdout, "client", &e);
	echo_free(&e);
	if (fclose(f) != 0)
		die_errno("fclose");
}

/* A connection dup2()ed onto the fd of a stream with unwritten output. */
static void run_onto_stream(const char *path, uint64_t bytes)
{
	int fd = tool_connect(path);
	FILE *f = fopen("/dev/null", "r+");
	struct echo e;

	echo_init(&e);
	if (!f || bytes < PENDING)
		die("onto-stream: no stream, or fewer than %d bytes", PENDING);
	stream_fill(&e.gen, e.sent, PENDING);
	if (fwrite(e.sent, 1, PENDING, f) != PENDING || __fpending(f) != PENDING)
		die("onto-stream: the output is not pending");
	if (dup2(fd, fileno(f)) < 0)
		die_errno("dup2");
	expect_refused(f, "the stream");
	/* Its output went to the peer, and the stream's failed reads left
	 * the echo in the connection. */
	read_exact(fd, e.back, PENDING);
	echoed(&e, PENDING);
	echo_until(&e, NULL, NULL, fd, bytes);
	expect_eof(fd, NULL);
	report(stdout, "client", &e);
	echo_free(&e);
	/* Its fclose() would close the fd around the library. */
	close(fileno(f));
	close(fd);
}

/* Copies of stdin and stdout taken before the connection landed there. */
static void run_saved_std(const char *path, uint64_t bytes)
{
	FILE *saved_in = stdin, *saved_out = stdout;
	int fd = tool_connect(path);
	struct echo e;

	/* Pushed back before stdin was ever read: no buffer yet. */
	if (ungetc('u', stdin) != 'u')
		die_errno("ungetc");
	if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 || close(fd) < 0)
		die_errno("dup2");
	if (stdin == saved_in || stdout == saved_out)
		die("saved-std: the standard streams were not replaced");
	expect_refused(saved_out, "the old stdout");
	expect_refused(saved_in, "the old stdin");
	if (getc(stdin) != 'u')
		die("saved-std: the pushed-back byte did not move to the new stdin");
	echo_init(&e);
	echo_until(&e, stdout, stdin, STDIN_FILENO, bytes);
	expect_eof(STDOUT_FILENO, stdin);
	report(stderr, "client", &e);
	echo_free(&e);
}

/* Accepts one client onto a stale stream's number and echoes it. */
static void run_stale_accept(const char *path)
{
	int listener = tool_listen(path), fd, flags;
	FILE *stale = fopen("/dev/null", "r");
	struct echo e = { .sum = FNV_INIT };
	uint8_t buf[65536];
	ssize_t n;
	char c;

	printf("server: listening\n");
	fflush(stdout);
	if (!stale || close(fileno(stale)) < 0)
		die_errno("stale-accept: fopen and close");
	fd = accept(listener, NULL, NULL);
	if (fd != fileno(stale))
		die("stale-accept: accepted fd %d, not the stream's %d", fd, fileno(stale));
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		die_errno("fcntl");
	errno = 0;
	if (fread(&c, 1, 1, stale) != 0 || errno != EBADF)
		die("stale-accept: the stale stream's read did not fail with EBADF (%s)", strerror(errno));
	if (fcntl(fd, F_SETFL, flags) < 0)
		die_errno("fcntl");
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (write(fd, buf, (size_t)n) != n)
			die_errno("write");
		e.sum = fnv1a(e.sum, buf, (size_t)n);
		e.done += (uint64_t)n;
	}
	if (n < 0)
		die_errno("read");
	report(stdout, "server", &e);
	close(fd);
	close(listener);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "stale-accept")) {
		run_stale_accept(argv[2]);
		return 0;
	}
	if (argc != 4)
		die("usage: tssx-stdio-late fdopen|dup2-first|onto-stream|saved-std PATH BYTES\n"
		    "       tssx-stdio-late stale-accept PATH");
	if (!strcmp(argv[1], "fdopen"))
		run_fdopen(argv[2], parse_size(argv[3]));
	else if (!strcmp(argv[1], "dup2-first"))
		run_dup2_first(argv[2], parse_size(argv[3]));
	else if (!strcmp(argv[1], "onto-stream"))
		run_onto_stream(argv[2], parse_size(argv[3]));
	else if (!strcmp(argv[1], "saved-std"))
		run_saved_std(argv[2], parse_size(argv[3]));
	else
		die("unknown mode: %s", argv[1]);
	return 0;
}
