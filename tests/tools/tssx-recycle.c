/*
 * tssx-recycle MODE PATH N: connections of one client process to one
 * server process, made one after another, for the recycled segments
 * (docs/data-path.md, "Segments recycled").  The server is this process,
 * the client a forked child; pipes keep them in step, so which
 * connection finds a released segment does not depend on timing.
 *
 *   seq      Two connections whose bytes the server reads only after the
 *            client closed both (the second made while the first's bytes
 *            are still unread: its segment must not be the first's), then
 *            N echo connections of 1 to 900 bytes and, every seventh, of
 *            3000 bytes (its rings grow), each closed by the client after
 *            the echo and then by the server.  Every byte is checked.
 *   hostile  The server keeps writing random bytes into the first page of
 *            every segment it maps (through /proc/self/mem, so that an
 *            unmapped one costs it nothing), also after each connection's
 *            close, while the client makes N connections that each write
 *            100 bytes and read what comes (data, EOF or an error: each
 *            ends); then the writer stops and one more connection must
 *            echo byte for byte.
 *   fork     One connection; then the client forks a child that connects
 *            (without its parent's pooled segment: none of its mappings
 *            or fds is a segment before it connects), and the server forks
 *            a child that checks the same; then the client connects again.
 *   workers  A worker the server forked accepts one connection; then the
 *            server accepts the next one, which reuses the segment (the
 *            same listener, so the same SO_PEERCRED), and the worker, still
 *            alive, must see none of its bytes in its mappings.
 *
 * Prints "client PID", "child PID" (fork) and "ok"; exits 1 on any
 * mismatch or error.  Run preloaded with TSSX_LOG=info: the log lines
 * "segment recycled" and "mapping recycled" tell what was reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "tools.h"

#define expect(cond) ((cond) ? (void)0 : die("%s:%d: expected %s (errno: %s)", __FILE__, __LINE__, #cond, strerror(errno)))

static int to_client[2], to_server[2];
static const char *path;

static void signal_peer(bool client)
{
	expect(write(client ? to_server[1] : to_client[1], "x", 1) == 1);
}

static void wait_peer(bool client)
{
	char c;

	expect(read(client ? to_client[0] : to_server[0], &c, 1) == 1);
}

/* Connection i's bytes: a stream of its own. */
static void fill(uint8_t *buf, size_t len, unsigned i)
{
	struct stream s = { .state = STREAM_SEED ^ ((uint64_t)i * 0x100000001b3ull) };

	stream_fill(&s, buf, len);
}

static size_t size_of(unsigned i)
{
	return i % 7 == 6 ? 3000 : 1 + (i * 131) % 900;
}

static void write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		expect(n > 0);
		buf += n;
		len -= (size_t)n;
	}
}

/* Reads until EOF, at most cap bytes; returns how many. */
static size_t read_to_eof(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		expect(n >= 0);
		if (n == 0)
			return got;
		got += (size_t)n;
		expect(got < cap);
	}
}

/* Receives connection i from the client and checks it byte for byte. */
static void check_received(int fd, unsigned i, size_t len)
{
	uint8_t want[4096], got[4096];
	size_t n;

	fill(want, len, i);
	n = read_to_eof(fd, got, sizeof(got));
	if (n != len || memcmp(want, got, len))
		die("connection %u: %zu bytes received, %zu sent, or other bytes", i, n, len);
}

/* ---- seq ---- */

static void seq_client(unsigned count)
{
	uint8_t buf[4096], echo[4096];
	int first, second;

	/* Both written and closed before the server reads either. */
	first = tool_connect(path);
	fill(buf, 800, 1000);
	write_all(first, buf, 800);
	expect(close(first) == 0);
	second = tool_connect(path);
	fill(buf, 900, 1001);
	write_all(second, buf, 900);
	expect(close(second) == 0);
	signal_peer(true);
	wait_peer(true);
	for (unsigned i = 0; i < count; i++) {
		size_t len = size_of(i);
		int fd = tool_connect(path);

		fill(buf, len, i);
		write_all(fd, buf, len);
		expect(shutdown(fd, SHUT_WR) == 0);
		if (read_to_eof(fd, echo, sizeof(echo)) != len || memcmp(buf, echo, len))
			die("connection %u: the echo differs", i);
		expect(close(fd) == 0);
		wait_peer(true); /* the server closed its end */
	}
}

static void seq_server(int listener, unsigned count)
{
	uint8_t buf[4096];
	int fd;

	wait_peer(false);
	fd = accept(listener, NULL, NULL);
	expect(fd >= 0);
	check_received(fd, 1000, 800);
	expect(close(fd) == 0);
	fd = accept(listener, NULL, NULL);
	expect(fd >= 0);
	check_received(fd, 1001, 900);
	expect(close(fd) == 0);
	signal_peer(false);
	for (unsigned i = 0; i < count; i++) {
		size_t len = size_of(i);

		fd = accept(listener, NULL, NULL);
		expect(fd >= 0);
		check_received(fd, i, len);
		fill(buf, len, i);
		write_all(fd, buf, len);
		expect(close(fd) == 0);
		signal_peer(false);
	}
}

/* ---- hostile ---- */

static atomic_bool stop_writing;

/* The first page of every segment this process maps, as the maps show
 * it now. */
static size_t segments(uintptr_t *base, size_t max)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	size_t n = 0;

	expect(maps);
	while (n < max && fgets(line, sizeof(line), maps)) {
		void *start;

		if (strstr(line, "/memfd:tssx (deleted)") && sscanf(line, "%p", &start) == 1)
			base[n++] = (uintptr_t)start;
	}
	fclose(maps);
	return n;
}

static void *scribble(void *arg)
{
	struct stream s = { .state = STREAM_SEED };
	int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	uint8_t junk[256];

	(void)arg;
	expect(mem >= 0);
	while (!atomic_load(&stop_writing)) {
		uintptr_t base[64];
		size_t n = segments(base, 64);

		for (int round = 0; round < 50; round++) {
			for (size_t k = 0; k < n; k++) {
				uint64_t where;

				stream_fill(&s, (uint8_t *)&where, sizeof(where));
				stream_fill(&s, junk, sizeof(junk));
				/* Anywhere in the first page; an unmapped one: EIO. */
				(void)!pwrite(mem, junk, 1 + where % sizeof(junk),
					      (off_t)(base[k] + (where >> 8) % (4096 - sizeof(junk))));
			}
		}
	}
	close(mem);
	return NULL;
}

static void hostile_client(unsigned count)
{
	uint8_t buf[100], got[4096];

	for (unsigned i = 0; i < count; i++) {
		int fd = tool_connect(path);
		ssize_t n;

		fill(buf, sizeof(buf), i);
		/* Whatever comes: data, EOF or an error; every call ends. */
		(void)!write(fd, buf, sizeof(buf));
		(void)shutdown(fd, SHUT_WR);
		do
			n = read(fd, got, sizeof(got));
		while (n > 0);
		close(fd);
		wait_peer(true);
	}
	/* The writer stopped: a connection byte for byte. */
	signal_peer(true);
	wait_peer(true);
	{
		int fd = tool_connect(path);

		fill(buf, sizeof(buf), count);
		write_all(fd, buf, sizeof(buf));
		expect(shutdown(fd, SHUT_WR) == 0);
		if (read_to_eof(fd, got, sizeof(got)) != sizeof(buf) || memcmp(buf, got, sizeof(buf)))
			die("the connection after the attack differs");
		expect(close(fd) == 0);
	}
}

static void hostile_server(int listener, unsigned count)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	uint8_t buf[4096];
	pthread_t writer;
	int fd;

	expect(pthread_create(&writer, NULL, scribble, NULL) == 0);
	for (unsigned i = 0; i < count; i++) {
		ssize_t n;

		fd = accept(listener, NULL, NULL);
		expect(fd >= 0);
		/* A client whose bytes the attack lost must not keep it. */
		expect(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
		expect(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
		n = read(fd, buf, sizeof(buf));
		if (n > 0)
			(void)!write(fd, buf, (size_t)n);
		close(fd);
		signal_peer(false);
	}
	wait_peer(false);
	atomic_store(&stop_writing, true);
	expect(pthread_join(writer, NULL) == 0);
	signal_peer(false);
	fd = accept(listener, NULL, NULL);
	expect(fd >= 0);
	check_received(fd, count, 100);
	fill(buf, 100, count);
	write_all(fd, buf, 100);
	expect(close(fd) == 0);
}

/* ---- fork ---- */

/* Segments this process maps, and fds of this process that are one. */
static unsigned segments_held(void)
{
	uintptr_t base[64];
	unsigned n = (unsigned)segments(base, 64);

	for (int fd = 0; fd < 4096; fd++) {
		char link[64], target[128];
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		if (!strcmp(target, "/memfd:tssx (deleted)"))
			n++;
	}
	return n;
}

static void one_echo(unsigned i)
{
	uint8_t buf[500], got[4096];
	int fd = tool_connect(path);

	fill(buf, sizeof(buf), i);
	write_all(fd, buf, sizeof(buf));
	expect(shutdown(fd, SHUT_WR) == 0);
	if (read_to_eof(fd, got, sizeof(got)) != sizeof(buf) || memcmp(buf, got, sizeof(buf)))
		die("connection %u: the echo differs", i);
	expect(close(fd) == 0);
}

static void echo_one(int listener, unsigned i)
{
	uint8_t buf[500];
	int fd = accept(listener, NULL, NULL);

	expect(fd >= 0);
	check_received(fd, i, sizeof(buf));
	fill(buf, sizeof(buf), i);
	write_all(fd, buf, sizeof(buf));
	expect(close(fd) == 0);
}

static void fork_client(void)
{
	pid_t child;
	int status;

	one_echo(0);
	wait_peer(true); /* the server closed: the segment is released */
	fflush(stdout);
	child = fork();
	expect(child >= 0);
	if (child == 0) {
		printf("child %d\n", getpid());
		fflush(stdout);
		if (segments_held())
			die("the child holds %u of its parent's segments", segments_held());
		one_echo(1);
		_exit(0);
	}
	expect(waitpid(child, &status, 0) == child);
	expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	wait_peer(true);
	one_echo(2);
}

static void fork_server(int listener)
{
	pid_t child;
	int status;

	echo_one(listener, 0);
	signal_peer(false);
	child = fork();
	expect(child >= 0);
	if (child == 0) {
		if (segments_held())
			die("the server's child holds %u of its parent's mappings", segments_held());
		_exit(0);
	}
	expect(waitpid(child, &status, 0) == child);
	expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	echo_one(listener, 1);
	signal_peer(false);
	echo_one(listener, 2);
}

/* ---- workers ---- */

/* Whether a segment this process maps holds connection i's first bytes
 * on its first page (where a small ring keeps them). */
static bool sees(unsigned i)
{
	uint8_t want[64];
	uintptr_t base[64];
	size_t n = segments(base, 64);

	fill(want, sizeof(want), i);
	for (size_t k = 0; k < n; k++) {
		if (memmem((const void *)base[k], 4096, want, sizeof(want)))
			return true;
	}
	return false;
}

static void workers_client(void)
{
	one_echo(0);
	wait_peer(true); /* the worker closed: the segment is released */
	one_echo(1);
}

static void workers_server(int listener)
{
	int ended[2], look[2], status;
	pid_t worker;
	char c;

	expect(pipe(ended) == 0 && pipe(look) == 0);
	worker = fork();
	expect(worker >= 0);
	if (worker == 0) {
		echo_one(listener, 0);
		signal_peer(false);
		expect(write(ended[1], "x", 1) == 1);
		expect(read(look[0], &c, 1) == 1);
		if (sees(1))
			die("the worker sees the bytes of a connection the server accepted after it");
		_exit(0);
	}
	expect(read(ended[0], &c, 1) == 1);
	echo_one(listener, 1);
	expect(write(look[1], "x", 1) == 1);
	expect(waitpid(worker, &status, 0) == worker);
	expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
	unsigned count;
	pid_t child, server = getpid();
	int listener, status;

	if (argc != 4)
		die("usage: tssx-recycle seq|hostile|fork|workers PATH N");
	path = argv[2];
	/* A write to a connection the attack failed: EPIPE, not death. */
	signal(SIGPIPE, SIG_IGN);
	count = (unsigned)strtoul(argv[3], NULL, 10);
	listener = tool_listen(path);
	expect(pipe(to_client) == 0 && pipe(to_server) == 0);
	fflush(stdout);
	child = fork();
	expect(child >= 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != server)
			exit(1);
		close(listener);
		printf("client %d\n", getpid());
		fflush(stdout);
		if (!strcmp(argv[1], "seq"))
			seq_client(count);
		else if (!strcmp(argv[1], "hostile"))
			hostile_client(count);
		else if (!strcmp(argv[1], "fork"))
			fork_client();
		else if (!strcmp(argv[1], "workers"))
			workers_client();
		else
			die("unknown mode %s", argv[1]);
		exit(0);
	}
	if (!strcmp(argv[1], "seq"))
		seq_server(listener, count);
	else if (!strcmp(argv[1], "hostile"))
		hostile_server(listener, count);
	else if (!strcmp(argv[1], "fork"))
		fork_server(listener);
	else if (!strcmp(argv[1], "workers"))
		workers_server(listener);
	else
		die("unknown mode %s", argv[1]);
	expect(waitpid(child, &status, 0) == child);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("the client failed");
	printf("ok\n");
	return 0;
}
