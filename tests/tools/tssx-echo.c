/*
 * tssx-echo: the echo pair the preload tests drive.
 *
 *   tssx-echo server PATH [--clients N] [--chunk N] [--nonblock|--epoll|--poll]
 *   tssx-echo client PATH [--bytes N] [--chunk N] [--nonblock]
 *   tssx-echo listen-exec PATH CMD [ARG...]
 *   tssx-echo spawn PATH HOW CMD [ARG...]
 *
 * The client sends N pseudo-random bytes from one thread, shuts down its
 * writing side, and in another thread reads the echo until EOF, checking
 * every byte against the same stream.  The server echoes each connection
 * (one thread each) until EOF; with --clients N it exits after N, with 1
 * if any of them failed.  Both
 * print their byte counts and an FNV-1a checksum; any mismatch or error
 * exits 1.  --nonblock uses O_NONBLOCK and retries EAGAIN without poll();
 * --epoll (server) waits in epoll_wait() instead, in a set of the
 * connection alone, --poll (server) in poll() on the connection alone.
 * PATH starting with '@' is an abstract name, "fd:N" (server) the
 * listener inherited as fd N.  --rename (server) binds PATH.PID.tmp, renames it to
 * PATH, then listens, as servers that replace their socket atomically do;
 * --rename-after listens first, then renames.
 * listen-exec listens on PATH and execs CMD with the listener as fd 3.
 * --stdio (server) echoes through stdio streams that fdopen() made of the
 * connection and a dup of it, --stdio-std through stdin and stdout after
 * dup2()s of the connection onto fds 0 and 1 (one client at a time; its
 * messages then go to stderr): the first line with getline(), the next
 * bytes one by one with getc() and fprintf("%c"), the rest with fread()
 * and fwrite().
 * spawn listens on PATH, accepts one connection and lets CMD serve it as
 * its stdin and stdout, started with system() (HOW "system": the
 * connection on the server's own fds 0 and 1, CMD joined into one shell
 * line), posix_spawn() ("spawn": the same, no file actions) or
 * posix_spawnp() with file actions that dup2 the connection onto 0 and 1
 * ("actions"), or popen("CMD >&0", "r") with the connection on the
 * server's fds 0 and 1 ("popen": the pipe replaces the shell's stdout,
 * which it sends back to stdin); HOW with "-plain" appended starts CMD
 * without LD_PRELOAD.
 * It exits with CMD's status.
 * Sizes take K, M, G.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools.h"

static size_t chunk = 64 * 1024;
static bool nonblock;
/* How a non-blocking connection waits for EAGAIN to end. */
static enum { WAIT_YIELD, WAIT_EPOLL, WAIT_POLL } wait_kind;
static _Atomic bool failed; /* a connection of the server failed */

/* --epoll: the thread's epoll set, which holds its connection alone (an
 * event loop with one connection), and that connection. */
static __thread int epfd = -1, watched = -1;

/* Waits until fd is ready, in the thread's set. */
static void wait_epoll(int fd, bool writing)
{
	struct epoll_event ev = { .events = writing ? EPOLLOUT : EPOLLIN };

	if (epfd < 0 && (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die_errno("epoll_create1");
	if (epoll_ctl(epfd, watched == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
		die_errno("epoll_ctl");
	watched = fd;
	if (epoll_wait(epfd, &ev, 1, -1) < 0 && errno != EINTR)
		die_errno("epoll_wait");
}

/* Waits until fd is ready, in poll() on it alone (a client library's
 * wait: libpq, a Python socket with a timeout). */
static void wait_poll(int fd, bool writing)
{
	struct pollfd pfd = { .fd = fd, .events = writing ? POLLOUT : POLLIN };

	if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
		die_errno("poll");
}

static ssize_t io_retry(int fd, void *buf, size_t len, bool writing)
{
	for (;;) {
		ssize_t n = writing ? write(fd, buf, len) : read(fd, buf, len);

		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return n;
		if (wait_kind == WAIT_EPOLL && errno == EAGAIN)
			wait_epoll(fd, writing);
		else if (wait_kind == WAIT_POLL && errno == EAGAIN)
			wait_poll(fd, writing);
		else
			sched_yield();
	}
}

static bool write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = io_retry(fd, (void *)buf, len, true);

		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* How the server reads and writes its connections. */
enum echo_io { ECHO_FD, ECHO_FDOPEN, ECHO_STANDARD };
static enum echo_io echo_io = ECHO_FD;

struct echoed {
	uint64_t total, sum;
};

static void count(struct echoed *e, const void *buf, size_t len)
{
	e->sum = fnv1a(e->sum, buf, len);
	e->total += len;
}

/* With read() and write(); whether it ended at EOF. */
static bool echo_fd(int fd, uint8_t *buf, struct echoed *e)
{
	ssize_t n;

	while ((n = io_retry(fd, buf, chunk, false)) > 0) {
		count(e, buf, (size_t)n);
		if (!write_all(fd, buf, (size_t)n))
			break;
	}
	close(fd);
	return n == 0;
}

/* With stdio streams (--stdio, --stdio-std); whether it ended at EOF
 * with every byte written. */
static bool echo_stdio(int fd, uint8_t *buf, struct echoed *e)
{
	FILE *in, *out;
	char *line = NULL;
	size_t cap = 0, n;
	ssize_t len;
	int c;
	bool ok;

	if (echo_io == ECHO_STANDARD) {
		if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 || close(fd) < 0)
			die_errno("server: dup2");
		/* The streams the dup2()s made (preload/shims/stdio.c). */
		in = stdin;
		out = stdout;
	} else {
		int out_fd = dup(fd);

		if (out_fd < 0 || !(in = fdopen(fd, "r")) || !(out = fdopen(out_fd, "w")))
			die_errno("server: fdopen");
	}
	if ((len = getline(&line, &cap, in)) > 0) {
		count(e, line, (size_t)len);
		fwrite(line, 1, (size_t)len, out);
	}
	for (int i = 0; i < 4096 && (c = getc(in)) != EOF; i++) {
		count(e, &(uint8_t){ (uint8_t)c }, 1);
		fprintf(out, "%c", c);
	}
	while ((n = fread(buf, 1, chunk, in)) > 0) {
		count(e, buf, n);
		fwrite(buf, 1, n, out);
	}
	ok = !ferror(in) && !ferror(out);
	if (fclose(out) != 0 || fclose(in) != 0)
		ok = false;
	free(line);
	return ok;
}

static void *echo_connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t *buf = xmalloc(chunk);
	struct echoed e = { .sum = FNV_INIT };
	FILE *report = echo_io == ECHO_STANDARD ? stderr : stdout;

	if (!(echo_io == ECHO_FD ? echo_fd : echo_stdio)(fd, buf, &e)) {
		/* One broken connection does not stop the others. */
		fprintf(report, "server: connection failed after %" PRIu64 " bytes: %s\n", e.total, strerror(errno));
		failed = true;
	} else {
		fprintf(report, "server: echoed %" PRIu64 " bytes checksum %016" PRIx64 "\n", e.total, e.sum);
	}
	fflush(report);
	free(buf);
	if (epfd >= 0)
		close(epfd);
	return NULL;
}

/* Binds a temporary name, renames it into place and listens, or with
 * `after` listens first. */
static int listen_renamed(const char *path, bool after)
{
	struct sockaddr_un addr;
	char tmp[sizeof(addr.sun_path)];
	unsigned len;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		die_errno("socket");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= sizeof(tmp))
		die("socket name too long: %s", path);
	len = tool_addr(tmp, &addr);
	unlink(tmp);
	if (bind(fd, (struct sockaddr *)&addr, len) < 0)
		die_errno("bind");
	if (after && listen(fd, 64) < 0)
		die_errno("listen");
	if (rename(tmp, path) < 0)
		die_errno("rename");
	if (!after && listen(fd, 64) < 0)
		die_errno("listen");
	return fd;
}

/* How the server comes to listen on its name. */
enum naming { BOUND, RENAMED_BEFORE_LISTEN, RENAMED_AFTER_LISTEN };

static int server_listener(const char *path, enum naming naming)
{
	if (!strncmp(path, "fd:", 3))
		return (int)parse_size(path + 3);
	return naming == BOUND ? tool_listen(path) : listen_renamed(path, naming == RENAMED_AFTER_LISTEN);
}

static int run_server(const char *path, long clients, enum naming naming)
{
	pthread_t threads[64];
	int listener = server_listener(path, naming);
	long served = 0;

	if (clients > (long)ARRAY_LEN(threads))
		die("server: at most %zu clients", ARRAY_LEN(threads));
	printf("server: listening\n");
	fflush(stdout);
	while (clients == 0 || served < clients) {
		int fd = accept(listener, NULL, NULL);

		if (fd < 0)
			die_errno("server: accept");
		if (nonblock)
			set_nonblocking(fd);
		if (clients == 0) {
			pthread_t t;

			pthread_create(&t, NULL, echo_connection, (void *)(intptr_t)fd);
			pthread_detach(t);
		} else {
			pthread_create(&threads[served], NULL, echo_connection, (void *)(intptr_t)fd);
		}
		served++;
	}
	for (long i = 0; i < clients; i++)
		pthread_join(threads[i], NULL);
	close(listener);
	return failed ? 1 : 0;
}

struct client {
	int fd;
	uint64_t bytes;
	uint64_t sum;
};

static void *send_stream(void *arg)
{
	struct client *c = arg;
	uint8_t *buf = xmalloc(chunk);
	struct stream gen = { .state = STREAM_SEED };
	uint64_t left = c->bytes;

	c->sum = FNV_INIT;
	while (left) {
		size_t len = left < chunk ? (size_t)left : chunk;

		stream_fill(&gen, buf, len);
		c->sum = fnv1a(c->sum, buf, len);
		if (!write_all(c->fd, buf, len))
			die_errno("client: write");
		left -= len;
	}
	if (shutdown(c->fd, SHUT_WR) < 0)
		die_errno("client: shutdown");
	free(buf);
	return NULL;
}

static int run_client(const char *path, uint64_t bytes)
{
	struct client c = { .fd = tool_connect(path), .bytes = bytes };
	struct stream gen = { .state = STREAM_SEED };
	uint8_t *buf = xmalloc(chunk), *expect = xmalloc(chunk);
	uint64_t received = 0, sum = FNV_INIT;
	pthread_t writer;
	ssize_t n;

	if (nonblock)
		set_nonblocking(c.fd);
	pthread_create(&writer, NULL, send_stream, &c);
	while ((n = io_retry(c.fd, buf, chunk, false)) > 0) {
		stream_fill(&gen, expect, (size_t)n);
		if (memcmp(buf, expect, (size_t)n) != 0)
			die("client: echoed bytes differ after offset %" PRIu64, received);
		sum = fnv1a(sum, buf, (size_t)n);
		received += (uint64_t)n;
	}
	if (n < 0)
		die_errno("client: read");
	pthread_join(writer, NULL);
	printf("client: sent %" PRIu64 " received %" PRIu64 " checksum %016" PRIx64 "\n", bytes, received, sum);
	if (received != bytes || sum != c.sum)
		die("client: echo incomplete: %" PRIu64 " of %" PRIu64 " bytes", received, bytes);
	close(c.fd);
	free(buf);
	free(expect);
	return 0;
}

/* Listens on path and execs argv with the listener as fd 3. */
__attribute__((noreturn)) static void listen_exec(const char *path, char **argv)
{
	int listener = tool_listen(path);

	printf("server: listening\n");
	fflush(stdout);
	if (listener != 3 && (dup2(listener, 3) < 0 || close(listener) < 0))
		die_errno("dup2");
	execvp(argv[0], argv);
	die_errno("exec");
}

extern char **environ;

/* The environment without LD_PRELOAD: the child image is not preloaded. */
static char **unpreloaded(void)
{
	size_t n = 0, out = 0;
	char **env;

	while (environ[n])
		n++;
	env = xmalloc((n + 1) * sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			env[out++] = environ[i];
	}
	env[out] = NULL;
	return env;
}

/* CMD as one shell line for system(). */
static char *shell_line(char **argv)
{
	size_t len = 1;
	char *line;

	for (char **a = argv; *a; a++)
		len += strlen(*a) + 1;
	line = xmalloc(len);
	*line = '\0';
	for (char **a = argv; *a; a++) {
		strcat(line, *a);
		if (a[1])
			strcat(line, " ");
	}
	return line;
}

/* popen(LINE >&0, "r"): the shell's stdin and stdout are the connection,
 * its output goes to the pipe, which stays empty.  Returns pclose()'s. */
static int popen_server(const char *line, char **env)
{
	char *command = xmalloc(strlen(line) + sizeof(" >&0")), buf[64];
	FILE *out;

	strcpy(command, line);
	strcat(command, " >&0");
	environ = env;
	out = popen(command, "r");
	if (!out)
		die_errno("popen");
	if (fread(buf, 1, sizeof(buf), out) > 0)
		die("popen: the command wrote to the pipe");
	free(command);
	return pclose(out);
}

/* Accepts one connection on path and lets argv serve it (see the top). */
static int spawn_server(const char *path, const char *how, char **argv)
{
	bool plain = strstr(how, "-plain") != NULL, actions = !strncmp(how, "actions", 7);
	char **env = plain ? unpreloaded() : environ;
	int listener = tool_listen(path), conn, status, err;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	fprintf(stderr, "server: listening\n");
	conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		die_errno("accept");
	close(listener);
	if (!actions && (dup2(conn, STDIN_FILENO) < 0 || dup2(conn, STDOUT_FILENO) < 0 || close(conn) < 0))
		die_errno("dup2");
	if (!strncmp(how, "system", 6)) {
		if (plain)
			environ = env;
		status = system(shell_line(argv));
	} else if (!strncmp(how, "popen", 5)) {
		status = popen_server(shell_line(argv), plain ? env : environ);
	} else {
		posix_spawn_file_actions_init(&fa);
		if (actions) {
			posix_spawn_file_actions_adddup2(&fa, conn, STDIN_FILENO);
			posix_spawn_file_actions_adddup2(&fa, conn, STDOUT_FILENO);
		}
		err = actions ? posix_spawnp(&pid, argv[0], &fa, NULL, argv, env)
			      : posix_spawn(&pid, argv[0], NULL, NULL, argv, env);
		if (err)
			die("posix_spawn: %s", strerror(err));
		posix_spawn_file_actions_destroy(&fa);
		if (waitpid(pid, &status, 0) != pid)
			die_errno("waitpid");
	}
	fprintf(stderr, "server: %s status %d\n", how, status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
	uint64_t bytes = 1 << 20;
	long clients = 1;
	enum naming naming = BOUND;

	if (argc < 3)
		die("usage: tssx-echo server|client PATH [--bytes N] [--chunk N] [--clients N] [--nonblock|--epoll|--poll] [--rename|--rename-after]\n"
		    "           [--stdio|--stdio-std]\n"
		    "       tssx-echo listen-exec PATH CMD [ARG...]\n"
		    "       tssx-echo spawn PATH system|spawn|actions|popen[-plain] CMD [ARG...]");
	if (!strcmp(argv[1], "listen-exec")) {
		if (argc < 4)
			die("listen-exec: no command");
		listen_exec(argv[2], argv + 3);
	}
	if (!strcmp(argv[1], "spawn")) {
		if (argc < 5)
			die("spawn: no command");
		return spawn_server(argv[2], argv[3], argv + 4);
	}
	signal(SIGPIPE, SIG_IGN);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--nonblock"))
			nonblock = true;
		else if (!strcmp(argv[i], "--epoll"))
			nonblock = true, wait_kind = WAIT_EPOLL;
		else if (!strcmp(argv[i], "--poll"))
			nonblock = true, wait_kind = WAIT_POLL;
		else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
			bytes = parse_size(argv[++i]);
		else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
			chunk = (size_t)parse_size(argv[++i]);
		else if (!strcmp(argv[i], "--stdio"))
			echo_io = ECHO_FDOPEN;
		else if (!strcmp(argv[i], "--stdio-std"))
			echo_io = ECHO_STANDARD;
		else if (!strcmp(argv[i], "--rename"))
			naming = RENAMED_BEFORE_LISTEN;
		else if (!strcmp(argv[i], "--rename-after"))
			naming = RENAMED_AFTER_LISTEN;
		else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
			clients = (long)parse_size(argv[++i]);
		else
			die("unknown option %s", argv[i]);
	}
	if (chunk == 0)
		die("--chunk must be positive");
	if (!strcmp(argv[1], "server"))
		return run_server(argv[2], clients, naming);
	if (!strcmp(argv[1], "client"))
		return run_client(argv[2], bytes);
	die("unknown mode %s", argv[1]);
}
