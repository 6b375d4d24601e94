/*
 * Integration tests of poll, select and epoll over TSSX connections, run
 * under LD_PRELOAD=libtssx.so with a temporary registry (TSSX_REGISTRY):
 *
 *   events-test CASE
 *
 * Every pair of connected sockets below is made through a listening Unix
 * socket, and checked to really be a TSSX connection (the client is bound
 * to the TSSX prefix, which raw system calls show).  No timing thresholds:
 * timeouts are checked by their results, idleness by counting wake-ups.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <ucontext.h>
#include <unistd.h>

#define TSSX_PREFIX "tssx-v1."

#define CHECK(cond) \
	do { if (!(cond)) fail(__LINE__, "%s", #cond); } while (0)
#define CHECK_EQ(a, b) \
	do { long long a_ = (long long)(a), b_ = (long long)(b); \
	     if (a_ != b_) fail(__LINE__, "%s == %lld, expected %s == %lld (errno %s)", \
				#a, a_, #b, b_, strerror(errno)); } while (0)

static __attribute__((noreturn, format(printf, 2, 3))) void fail(int line, const char *fmt, ...)
{
	va_list args;

	fprintf(stderr, "events-test:%d: ", line);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	exit(1);
}

static int listener = -1;
static struct sockaddr_un listen_addr;

static void listen_once(void)
{
	const char *dir = getenv("TSSX_TEST_DIR");

	CHECK(dir);
	listen_addr.sun_family = AF_UNIX;
	snprintf(listen_addr.sun_path, sizeof(listen_addr.sun_path), "%s/events.sock", dir);
	unlink(listen_addr.sun_path);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(listener >= 0);
	CHECK_EQ(bind(listener, (struct sockaddr *)&listen_addr, sizeof(listen_addr)), 0);
	CHECK_EQ(listen(listener, 4096), 0);
}

/* Whether the client end took the TSSX path: bound to the TSSX prefix,
 * as the raw system call (not the library's getsockname) shows. */
static bool bound_to_tssx(int fd)
{
	struct sockaddr_un addr = { 0 };
	socklen_t len = sizeof(addr);

	if (syscall(SYS_getsockname, fd, &addr, &len) < 0 || len <= sizeof(sa_family_t))
		return false;
	return addr.sun_path[0] == '\0' && strncmp(addr.sun_path + 1, TSSX_PREFIX, strlen(TSSX_PREFIX)) == 0;
}

static void connect_tssx(int client)
{
	CHECK_EQ(connect(client, (struct sockaddr *)&listen_addr, sizeof(listen_addr)), 0);
	CHECK(bound_to_tssx(client));
}

/* A TSSX connection: *client connected, *server accepted. */
static void tssx_pair(int *client, int *server)
{
	*client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(*client >= 0);
	connect_tssx(*client);
	*server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	CHECK(*server >= 0);
}

static void tcp_pair(int *client, int *server)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int tcp_listener = socket(AF_INET, SOCK_STREAM, 0);

	CHECK_EQ(bind(tcp_listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	CHECK_EQ(listen(tcp_listener, 1), 0);
	CHECK_EQ(getsockname(tcp_listener, (struct sockaddr *)&addr, &len), 0);
	*client = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_EQ(connect(*client, (struct sockaddr *)&addr, sizeof(addr)), 0);
	*server = accept(tcp_listener, NULL, NULL);
	CHECK(*server >= 0);
	close(tcp_listener);
}

static void put(int fd, const char *text)
{
	CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

static void get(int fd, const char *text)
{
	char buf[256] = { 0 };
	size_t len = strlen(text);

	CHECK(len < sizeof(buf));
	CHECK_EQ(recv(fd, buf, len, MSG_WAITALL), (ssize_t)len);
	CHECK(memcmp(buf, text, len) == 0);
}

static short poll_one(int fd, short events, int timeout)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n = poll(&pfd, 1, timeout);

	CHECK(n == 0 || n == 1);
	return n ? pfd.revents : 0;
}

/* ---- poll ---- */

/* One call over a TSSX connection, a pipe, TCP, a plain Unix socketpair,
 * an eventfd, a timerfd and a regular file. */
static void case_poll_mixed(void)
{
	int c, s, pipefd[2], tc, ts, pair[2], ev, tf, file;
	struct itimerspec soon = { .it_value = { 0, 1000000 } };
	char path[] = "/tmp/events-test-XXXXXX";

	tssx_pair(&c, &s);
	CHECK_EQ(pipe(pipefd), 0);
	tcp_pair(&tc, &ts);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	CHECK(!bound_to_tssx(pair[0]));
	ev = eventfd(0, 0);
	tf = timerfd_create(CLOCK_MONOTONIC, 0);
	file = mkstemp(path);
	CHECK(ev >= 0 && tf >= 0 && file >= 0);
	unlink(path);

	struct pollfd fds[] = {
		{ s, POLLIN, 0 }, { c, POLLOUT, 0 }, { pipefd[0], POLLIN, 0 }, { ts, POLLIN, 0 },
		{ pair[1], POLLIN, 0 }, { ev, POLLIN, 0 }, { tf, POLLIN, 0 }, { file, POLLIN, 0 },
		{ -1, POLLIN, 0 },
	};
	enum { S, C, PIPE, TCP, PAIR, EV, TF, FILE_, NONE };
	/* Not a constant: the fortified poll() then calls __poll_chk. */
	volatile nfds_t count = sizeof(fds) / sizeof(fds[0]);

	/* Timeout 0: only the writable TSSX end and the file. */
	CHECK_EQ(poll(fds, count, 0), 2);
	CHECK_EQ(fds[S].revents, 0);
	CHECK_EQ(fds[C].revents, POLLOUT);
	CHECK_EQ(fds[FILE_].revents, POLLIN);
	CHECK_EQ(fds[NONE].revents, 0);
	/* Each kind in turn becomes readable, seen by a call that may sleep. */
	put(c, "ring");
	CHECK_EQ(poll(fds, count, -1), 3);
	CHECK_EQ(fds[S].revents, POLLIN);
	get(s, "ring");
	CHECK_EQ(poll(fds, count, 0), 2);
	put(pipefd[1], "p");
	put(tc, "t");
	put(pair[0], "u");
	CHECK_EQ(write(ev, &(uint64_t){ 1 }, 8), 8);
	CHECK_EQ(timerfd_settime(tf, 0, &soon, NULL), 0);
	fds[C].events = 0; /* nothing asked: nothing but HUP/ERR reported */
	while (poll(fds, count, -1) < 6)
		; /* the timer may not have fired yet */
	CHECK_EQ(fds[S].revents, 0);
	CHECK_EQ(fds[C].revents, 0);
	for (int i = PIPE; i <= FILE_; i++)
		CHECK_EQ(fds[i].revents, POLLIN);
	/* N ms with nothing happening on a TSSX end: 0. */
	CHECK_EQ(poll_one(s, POLLIN, 20), 0);
}

static void case_poll_hangup(void)
{
	int c, s;

	tssx_pair(&c, &s);
	CHECK_EQ(poll_one(s, POLLIN | POLLRDHUP, 0), 0);
	CHECK_EQ(shutdown(c, SHUT_WR), 0);
	CHECK_EQ(poll_one(s, POLLIN | POLLRDHUP, -1), POLLIN | POLLRDHUP);
	CHECK_EQ(poll_one(s, POLLOUT, -1), POLLOUT);
	put(s, "x"); /* the other direction still works */
	get(c, "x");
	close(c);
	CHECK(poll_one(s, POLLIN, -1) & POLLHUP);
	CHECK(poll_one(s, 0, -1) & POLLHUP);
	char byte;
	CHECK_EQ(read(s, &byte, 1), 0);
}

/* A TSSX client whose hello has not come yet: the server's end reports
 * what a fresh socket would, then the failure of a bad hello. */
static void case_poll_handshake(void)
{
	struct sockaddr_un self = { .sun_family = AF_UNIX };
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 +
			(socklen_t)snprintf(self.sun_path + 1, sizeof(self.sun_path) - 1,
					    TSSX_PREFIX "test.%d", getpid());
	int raw = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	int s;

	CHECK_EQ(syscall(SYS_bind, raw, &self, len), 0);
	CHECK_EQ(syscall(SYS_connect, raw, &listen_addr, sizeof(listen_addr)), 0);
	s = accept(listener, NULL, NULL);
	CHECK(s >= 0);
	CHECK_EQ(poll_one(s, POLLIN | POLLOUT, 0), POLLOUT);
	CHECK_EQ(poll_one(s, POLLIN, 20), 0);
	CHECK_EQ(syscall(SYS_write, raw, "not a hello, not a hello, not a hello", 37), 37);
	CHECK(poll_one(s, POLLIN, -1) & (POLLERR | POLLHUP));
	close(s);
	close(raw);
}

/* ---- select ---- */

static void case_select(void)
{
	int c, s, pipefd[2];
	fd_set rd, wr;
	struct timeval tv = { 0, 0 };
	struct timespec zero = { 0, 0 };

	tssx_pair(&c, &s);
	CHECK_EQ(pipe(pipefd), 0);
	const int nfds = FD_SETSIZE; /* the whole sets */

	FD_ZERO(&rd); FD_ZERO(&wr);
	FD_SET(s, &rd); FD_SET(pipefd[0], &rd); FD_SET(c, &wr);
	CHECK_EQ(select(nfds, &rd, &wr, NULL, &tv), 1);
	CHECK(!FD_ISSET(s, &rd) && FD_ISSET(c, &wr));

	put(c, "sel");
	put(pipefd[1], "p");
	FD_ZERO(&rd); FD_ZERO(&wr);
	FD_SET(s, &rd); FD_SET(pipefd[0], &rd);
	CHECK_EQ(select(nfds, &rd, NULL, NULL, NULL), 2);
	CHECK(FD_ISSET(s, &rd) && FD_ISSET(pipefd[0], &rd));
	get(s, "sel");

	FD_ZERO(&rd);
	FD_SET(s, &rd);
	tv = (struct timeval){ 0, 20000 };
	CHECK_EQ(select(nfds, &rd, NULL, NULL, &tv), 0);
	CHECK(!FD_ISSET(s, &rd));
	CHECK(tv.tv_sec == 0 && tv.tv_usec == 0); /* Linux: the time not slept */

	FD_SET(s, &rd);
	CHECK_EQ(pselect(nfds, &rd, NULL, NULL, &zero, NULL), 0);
	put(c, "p2");
	FD_SET(s, &rd);
	CHECK_EQ(pselect(nfds, &rd, NULL, NULL, NULL, NULL), 1);
	get(s, "p2");

	/* A closed fd in the sets: EBADF, as select says. */
	FD_SET(s, &rd);
	FD_SET(pipefd[1], &rd);
	close(pipefd[1]);
	CHECK_EQ(select(nfds, &rd, NULL, NULL, NULL), -1);
	CHECK_EQ(errno, EBADF);
}

/* ---- epoll ---- */

static int epoll_add(int epfd, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event event = { .events = events, .data.u64 = data };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

static int epoll_mod(int epfd, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event event = { .events = events, .data.u64 = data };

	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event);
}

/* One epoll_wait that must report exactly (data, events), or nothing when
 * events is 0. */
static void expect_event(int epfd, int timeout, uint64_t data, uint32_t events)
{
	struct epoll_event got[4];
	int n = epoll_wait(epfd, got, 4, timeout);

	CHECK_EQ(n, events ? 1 : 0);
	if (events) {
		CHECK_EQ(got[0].data.u64, data);
		CHECK_EQ(got[0].events, events);
	}
}

/* With connection `busy` ready at every call, the kernel's fd `plain`
 * (ready too) is reported as well, at the latest a look interval later:
 * the kernel is looked at every EVENTS_LOOK_EVERY_NS, not at every call.
 * Never reporting it is the failure (the test's timeout ends the loop). */
static void expect_kernel_fd_too(int epfd, uint64_t busy, uint64_t plain)
{
	struct epoll_event got[4];
	bool seen = false;

	while (!seen) {
		int n = epoll_wait(epfd, got, 4, -1);

		CHECK(n == 1 || n == 2);
		CHECK_EQ(got[0].data.u64, n == 2 ? busy + plain - got[1].data.u64 : busy);
		seen = n == 2;
	}
}

static void case_epoll_level(void)
{
	int c, s, pipefd[2], epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event got[4];

	tssx_pair(&c, &s);
	CHECK_EQ(pipe(pipefd), 0);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN | EPOLLRDHUP, 1), 0);
	CHECK_EQ(epoll_add(epfd, pipefd[0], EPOLLIN, 2), 0);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 1), -1);
	CHECK_EQ(errno, EEXIST);
	expect_event(epfd, 0, 0, 0);
	expect_event(epfd, 20, 0, 0);
	put(c, "lt");
	expect_event(epfd, -1, 1, EPOLLIN);
	expect_event(epfd, -1, 1, EPOLLIN); /* level: again */
	put(pipefd[1], "p");
	expect_kernel_fd_too(epfd, 1, 2);
	/* maxevents 1: both ready entries still get their turn */
	CHECK_EQ(epoll_wait(epfd, got, 1, -1), 1);
	uint64_t first = got[0].data.u64;
	CHECK_EQ(epoll_wait(epfd, got, 1, -1), 1);
	CHECK(got[0].data.u64 != first);
	get(s, "lt");
	expect_event(epfd, -1, 2, EPOLLIN);
	CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, pipefd[0], NULL), 0);
	/* writable, then the peer's end */
	CHECK_EQ(epoll_mod(epfd, s, EPOLLOUT, 3), 0);
	expect_event(epfd, 0, 3, EPOLLOUT);
	CHECK_EQ(epoll_mod(epfd, s, EPOLLIN | EPOLLRDHUP, 4), 0);
	CHECK_EQ(shutdown(c, SHUT_WR), 0);
	expect_event(epfd, -1, 4, EPOLLIN | EPOLLRDHUP);
	close(c);
	/* Already reported readable, the entry may show the hang-up one call
	 * later: the wait that notices the EOF comes after the rings'. */
	CHECK_EQ(epoll_wait(epfd, got, 4, -1), 1);
	if (!(got[0].events & EPOLLHUP))
		CHECK_EQ(epoll_wait(epfd, got, 4, -1), 1);
	CHECK(got[0].events & EPOLLHUP);
	CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), 0);
	CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(epoll_mod(epfd, s, EPOLLIN, 5), -1);
	CHECK_EQ(errno, ENOENT);
	expect_event(epfd, 0, 0, 0);
}

static void case_epoll_edge(void)
{
	int c, s, epfd = epoll_create1(0);

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN | EPOLLET, 7), 0);
	expect_event(epfd, 0, 0, 0);
	put(c, "a");
	expect_event(epfd, -1, 7, EPOLLIN);
	/* nothing new: no event, however long we wait */
	expect_event(epfd, 0, 0, 0);
	expect_event(epfd, 20, 0, 0);
	put(c, "b");
	expect_event(epfd, -1, 7, EPOLLIN);
	get(s, "ab");
	/* MOD reports the current state again */
	put(c, "c");
	expect_event(epfd, -1, 7, EPOLLIN);
	CHECK_EQ(epoll_mod(epfd, s, EPOLLIN | EPOLLET, 8), 0);
	expect_event(epfd, -1, 8, EPOLLIN);
	expect_event(epfd, 0, 0, 0);
}

/* A connection deleted from a set and added again, as event loops do at
 * every request: while deleted it is never reported and delete or modify
 * say ENOENT; added again it is a fresh registration, level- and
 * edge-triggered. */
/* What the library registers with the kernel for a connection's socket
 * (preload/events: events_tag(), conn_kernel_events()). */
static struct epoll_event library_registration(int fd)
{
	return (struct epoll_event){ .events = EPOLLIN | EPOLLET | EPOLLRDHUP,
				     .data.u64 = (uint64_t)0x54535358u << 32 | (uint32_t)fd };
}

static void case_epoll_readd(void)
{
	int c, s, epfd = epoll_create1(EPOLL_CLOEXEC);

	tssx_pair(&c, &s);
	for (uint64_t round = 0; round < 100; round++) {
		uint32_t mode = round % 2 ? EPOLLET : 0;
		struct epoll_event registration;

		CHECK_EQ(epoll_add(epfd, s, EPOLLIN | mode, round), 0);
		CHECK_EQ(epoll_add(epfd, s, EPOLLIN, round), -1);
		CHECK_EQ(errno, EEXIST);
		expect_event(epfd, 0, 0, 0);
		put(c, "x");
		expect_event(epfd, -1, round, EPOLLIN);
		CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), 0);
		/* Parked: the kernel still holds the library's registration
		 * (its tag, the connection's fixed events), so that the add
		 * below needs no system call. */
		registration = library_registration(s);
		CHECK_EQ(syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_MOD, s, &registration), 0);
		put(c, "y"); /* its doorbell reaches the kernel's set */
		expect_event(epfd, 20, 0, 0);
		CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), -1);
		CHECK_EQ(errno, ENOENT);
		CHECK_EQ(epoll_mod(epfd, s, EPOLLIN, round), -1);
		CHECK_EQ(errno, ENOENT);
		CHECK_EQ(epoll_add(epfd, s, EPOLLIN | mode, round + 1000), 0);
		expect_event(epfd, -1, round + 1000, EPOLLIN);
		get(s, "xy");
		expect_event(epfd, 0, 0, 0);
		CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), 0);
	}
	/* EPOLLEXCLUSIVE after a delete: a registration of its own. */
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN | EPOLLEXCLUSIVE, 7), 0);
	put(c, "z");
	expect_event(epfd, -1, 7, EPOLLIN);
	get(s, "z");
	CHECK_EQ(epoll_mod(epfd, s, EPOLLIN, 8), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), 0);
	/* Closed while deleted, its number taken by a new connection. */
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 9), 0);
	CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), 0);
	close(s);
	close(c);
	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 10), 0);
	expect_event(epfd, 0, 0, 0);
	put(c, "w");
	expect_event(epfd, -1, 10, EPOLLIN);
	get(s, "w");
	close(c);
	close(s);
	close(epfd);
}

static void case_epoll_oneshot(void)
{
	int c, s, epfd = epoll_create1(0);

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN | EPOLLONESHOT, 9), 0);
	put(c, "a");
	expect_event(epfd, -1, 9, EPOLLIN);
	expect_event(epfd, 0, 0, 0);
	put(c, "b");
	expect_event(epfd, 20, 0, 0);
	CHECK_EQ(epoll_mod(epfd, s, EPOLLIN | EPOLLONESHOT, 10), 0);
	expect_event(epfd, -1, 10, EPOLLIN);
	expect_event(epfd, 0, 0, 0);
}

static void case_epoll_exclusive(void)
{
	int c, s, epfd = epoll_create1(0);

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 1), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN | EPOLLEXCLUSIVE, 11), 0);
	put(c, "x");
	expect_event(epfd, -1, 11, EPOLLIN);
	CHECK_EQ(epoll_mod(epfd, s, EPOLLIN, 12), -1);
	CHECK_EQ(errno, EINVAL);
}

/* A closed fd leaves the set, and its number can come back as another. */
static void case_epoll_close(void)
{
	int c, s, pipefd[2], epfd = epoll_create1(0);

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 13), 0);
	put(c, "x");
	expect_event(epfd, -1, 13, EPOLLIN);
	close(s);
	expect_event(epfd, 0, 0, 0);
	CHECK_EQ(dup2(listener, 1000), 1000); /* a TSSX fd closed by dup2 too */
	int c2, s2;
	tssx_pair(&c2, &s2);
	CHECK_EQ(epoll_add(epfd, s2, EPOLLIN, 14), 0);
	put(c2, "y");
	CHECK_EQ(dup2(c, s2), s2);
	expect_event(epfd, 0, 0, 0);
	CHECK_EQ(pipe(pipefd), 0);
	CHECK_EQ(epoll_add(epfd, pipefd[0], EPOLLIN, 15), 0);
	put(pipefd[1], "p");
	expect_event(epfd, -1, 15, EPOLLIN);
	/* Closed while a dup keeps the socket, so the kernel keeps our entry:
	 * what it still reports never reaches the application. */
	int c3, s3, kept;
	tssx_pair(&c3, &s3);
	kept = dup(s3);
	CHECK_EQ(epoll_add(epfd, s3, EPOLLIN, 16), 0);
	close(s3);
	put(c3, "z");
	close(c3);
	expect_event(epfd, -1, 15, EPOLLIN);
	close(kept);
}

/* socket, epoll_ctl ADD, then connect: it became a TSSX connection inside
 * the set. */
static void case_epoll_late_connect(void)
{
	int c = socket(AF_UNIX, SOCK_STREAM, 0), s, epfd = epoll_create1(0);

	CHECK_EQ(epoll_add(epfd, c, EPOLLIN, 16), 0);
	expect_event(epfd, 0, 16, EPOLLHUP); /* an unconnected socket says so */
	CHECK_EQ(epoll_mod(epfd, c, EPOLLIN, 17), 0);
	connect_tssx(c);
	s = accept(listener, NULL, NULL);
	CHECK(s >= 0);
	expect_event(epfd, 0, 0, 0);
	put(s, "late");
	expect_event(epfd, -1, 17, EPOLLIN);
	get(c, "late");
	expect_event(epfd, 0, 0, 0);
}

/*
 * Counting the getpeername() system calls of this thread: a seccomp
 * filter traps each one that does not carry a marker in its (unused)
 * fourth argument, and the handler counts it and makes it again with the
 * marker, so the caller gets the kernel's answer.
 */
#if defined(__x86_64__)
#define GETPEERNAME_MARK 0x7e55u
static _Atomic int getpeername_calls;

static void redo_getpeername(int sig, siginfo_t *info, void *context)
{
	greg_t *regs = ((ucontext_t *)context)->uc_mcontext.gregs;
	int saved_errno = errno;
	long r = syscall(SYS_getpeername, regs[REG_RDI], regs[REG_RSI], regs[REG_RDX], GETPEERNAME_MARK);

	getpeername_calls++;
	regs[REG_RAX] = r < 0 ? -errno : r;
	errno = saved_errno;
}

static bool count_getpeername(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpeername, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, GETPEERNAME_MARK, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog program = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
	struct sigaction trap = { .sa_sigaction = redo_getpeername, .sa_flags = SA_SIGINFO };

	CHECK_EQ(sigaction(SIGSYS, &trap, NULL), 0);
	CHECK_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0;
}
#else
static _Atomic int getpeername_calls;

static bool count_getpeername(void)
{
	return false;
}
#endif

/* EPOLL_CTL_ADD of fd: how many getpeername() it asked the kernel, or -1
 * where they are not counted. */
static int add_asking(bool counted, int epfd, int fd, uint64_t data)
{
	int before = getpeername_calls;

	CHECK_EQ(epoll_add(epfd, fd, EPOLLIN, data), 0);
	return counted ? getpeername_calls - before : -1;
}

/* The unconnected socket c, in the set as data, connects over TSSX:
 * the set must report its data (a set that did not track it sleeps on a
 * socket that only carries doorbells: the test's timeout fails it). */
static void connect_in_set(int epfd, int c, uint64_t data)
{
	int s;

	connect_tssx(c);
	s = accept(listener, NULL, NULL);
	CHECK(s >= 0);
	put(s, "late");
	expect_event(epfd, -1, data, EPOLLIN);
	get(c, "late");
	CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, c, NULL), 0);
	close(s);
	close(c);
}

/* A plain client of ours, accepted: the raw connect bypasses the
 * library, which would make it a TSSX client. */
static int accept_plain(int *client)
{
	int s;

	*client = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(syscall(SYS_connect, *client, &listen_addr, sizeof(listen_addr)), 0);
	s = accept(listener, NULL, NULL);
	CHECK(s >= 0);
	return s;
}

/* A socket the library accepted or connected plain joins a set without
 * a question to the kernel (the library's hint, conn/fd_table.h), and so
 * does a Unix stream socket that socket() made (an event loop's upstream
 * socket, added before its connect()); a number replaced by dup2() with
 * an unconnected socket is asked about again.  Each unconnected one is
 * followed when it connects over TSSX.
 * An fd that is no socket is asked about at its first add only. */
static void case_epoll_hints(void)
{
	bool counted = count_getpeername();
	int epfd = epoll_create1(0), client, s, c, unconnected;

	s = accept_plain(&client);
	CHECK(add_asking(counted, epfd, s, 10) <= 0);
	put(client, "plain");
	expect_event(epfd, -1, 10, EPOLLIN);
	get(s, "plain");
	CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL), 0);

	/* Closed: the next socket gets the number. */
	close(s);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(c, s);
	close(client);
	CHECK(add_asking(counted, epfd, c, 11) <= 0);
	connect_in_set(epfd, c, 11);

	/* Replaced by dup2(). */
	s = accept_plain(&client);
	unconnected = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(dup2(unconnected, s), s);
	close(unconnected);
	CHECK(add_asking(counted, epfd, s, 12) != 0);
	connect_in_set(epfd, s, 12);
	close(client);

	/* An fd that is no socket is asked about once, not at every add;
	 * its number, closed and made again by socket(), is a socket's. */
	{
		int pipe_fds[2];

		CHECK_EQ(pipe(pipe_fds), 0);
		CHECK(add_asking(counted, epfd, pipe_fds[0], 14) == (counted ? 1 : -1));
		CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, pipe_fds[0], NULL), 0);
		CHECK(add_asking(counted, epfd, pipe_fds[0], 14) <= 0);
		CHECK_EQ(epoll_ctl(epfd, EPOLL_CTL_DEL, pipe_fds[0], NULL), 0);
		close(pipe_fds[0]);
		close(pipe_fds[1]);
		c = socket(AF_UNIX, SOCK_STREAM, 0);
		CHECK_EQ(c, pipe_fds[0]);
		CHECK(add_asking(counted, epfd, c, 15) <= 0);
		connect_in_set(epfd, c, 15);
	}
	if (!counted)
		printf("getpeername() calls not counted on this machine\n");
}

/* The kernel's registration of fd in epfd (/proc/self/fdinfo of the epoll
 * fd lists each one): true when there is one, with its events and data. */
static bool kernel_registration(int epfd, int fd, uint32_t *events, uint64_t *data)
{
	char path[64], line[256];
	bool found = false;
	FILE *info;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	info = fopen(path, "re");
	CHECK(info != NULL);
	while (!found && fgets(line, sizeof(line), info)) {
		unsigned long long got_data;
		unsigned got_events;
		int tfd;

		found = sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &got_events, &got_data) == 3 && tfd == fd;
		if (found) {
			*events = got_events;
			*data = got_data;
		}
	}
	fclose(info);
	return found;
}

/* A Unix stream socket added before its connect() is watched under the
 * library's tag (it may become a connection); once it connected plain (to
 * a server without TSSX: this listen() bypasses the library) the kernel
 * holds the application's own registration, its events and data, and
 * reports them: the library watches it no more (its close then costs no
 * system call of the library's; until 2026-12-04 the tag stayed, and each
 * close re-registered it and asked whether it ran in a vfork() child).  A
 * one-shot registration the kernel disabled stays silent until the
 * application's EPOLL_CTL_MOD. */
static void case_epoll_settled(void)
{
	struct sockaddr_un addr = listen_addr;
	int epfd = epoll_create1(0), plain = socket(AF_UNIX, SOCK_STREAM, 0), c, s;
	uint32_t events;
	uint64_t data;

	CHECK(plain >= 0);
	strcpy(strrchr(addr.sun_path, '/') + 1, "plain.sock");
	unlink(addr.sun_path);
	CHECK_EQ(bind(plain, (struct sockaddr *)&addr, sizeof(addr)), 0);
	CHECK_EQ(syscall(SYS_listen, plain, 16), 0);

	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(epoll_add(epfd, c, EPOLLIN | EPOLLET, 50), 0);
	CHECK(kernel_registration(epfd, c, &events, &data));
	CHECK(data != 50); /* the library's tag */
	CHECK_EQ(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
	CHECK(!bound_to_tssx(c));
	CHECK(kernel_registration(epfd, c, &events, &data));
	CHECK_EQ(data, 50);
	CHECK_EQ(events & (EPOLLIN | EPOLLOUT | EPOLLET), EPOLLIN | EPOLLET);
	s = accept(plain, NULL, NULL);
	CHECK(s >= 0);
	expect_event(epfd, 0, 0, 0);
	put(s, "plain");
	expect_event(epfd, -1, 50, EPOLLIN);
	expect_event(epfd, 0, 0, 0); /* edge-triggered: once */
	get(c, "plain");
	close(c);
	CHECK(!kernel_registration(epfd, c, &events, &data));
	close(s);

	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(epoll_add(epfd, c, EPOLLOUT | EPOLLONESHOT, 51), 0);
	expect_event(epfd, 0, 51, EPOLLOUT | EPOLLHUP);
	CHECK_EQ(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
	expect_event(epfd, 0, 0, 0);
	CHECK_EQ(epoll_mod(epfd, c, EPOLLOUT, 52), 0);
	expect_event(epfd, 0, 52, EPOLLOUT);
	s = accept(plain, NULL, NULL);
	CHECK(s >= 0);
	close(s);
	close(c);
	close(plain);
	unlink(addr.sun_path);
	close(epfd);
}

/* A number that a close around the library freed (glibc's fclose() of an
 * fdopen()ed socket closes it inside libc) and socket() made again: the
 * accepted socket's hint ("connected", never a connection) must not stay
 * with the new socket, which is added unconnected and then connects over
 * TSSX (a set that did not track it sleeps on a socket that carries only
 * doorbells: the test's timeout fails it).  Nor may a vfork() child's
 * dup2() put it on a number of the parent. */
static void case_epoll_hint_stale(void)
{
	int epfd = epoll_create1(0), client, s, c;
	FILE *stream;

	s = accept_plain(&client);
	stream = fdopen(s, "r+");
	CHECK(stream != NULL);
	CHECK_EQ(fclose(stream), 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(c, s);
	close(client);
	CHECK_EQ(epoll_add(epfd, c, EPOLLIN, 13), 0);
	connect_in_set(epfd, c, 13);

	/* A vfork() child shares the fd table's memory, not the fds: its
	 * dup2() of an accepted socket onto the number of the parent's
	 * unconnected one must not leave "connected" there. */
	s = accept_plain(&client);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(c >= 0);
	if (vfork() == 0) {
		dup2(s, c);
		_exit(0);
	}
	close(s);
	close(client);
	CHECK_EQ(epoll_add(epfd, c, EPOLLIN, 14), 0);
	connect_in_set(epfd, c, 14);
	close(epfd);
}

/* A set whose connections all closed waits in the kernel alone: a plain
 * fd in it is reported with its data, a closed connection's
 * registration that a copy of its fd keeps in the kernel reports
 * nothing (the peer's close would show as our tag), and a connection
 * added later is followed again. */
static void case_epoll_emptied(void)
{
	int epfd = epoll_create1(0), pipe_fds[2], c, s, copy;
	char byte;

	CHECK_EQ(pipe(pipe_fds), 0);
	CHECK_EQ(epoll_add(epfd, pipe_fds[0], EPOLLIN, 30), 0);
	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 31), 0);
	put(c, "one");
	expect_event(epfd, -1, 31, EPOLLIN);
	get(s, "one");
	copy = dup(s);
	CHECK(copy >= 0);
	close(s);
	close(c);
	expect_event(epfd, 0, 0, 0);
	CHECK_EQ(write(pipe_fds[1], "p", 1), 1);
	expect_event(epfd, -1, 30, EPOLLIN);
	CHECK_EQ(read(pipe_fds[0], &byte, 1), 1);
	expect_event(epfd, 0, 0, 0);
	close(copy);

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 32), 0);
	put(c, "two");
	expect_event(epfd, -1, 32, EPOLLIN);
	get(s, "two");
	close(c);
	close(s);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	close(epfd);
}

/* One epoll_wait that must report exactly these (data, events) pairs, in
 * any order. */
static void expect_events(int epfd, int count, const struct epoll_event *want)
{
	struct epoll_event got[4];
	int n = epoll_wait(epfd, got, 4, 0);

	CHECK_EQ(n, count);
	for (int i = 0; i < count; i++) {
		int j = 0;

		while (j < n && (got[j].data.u64 != want[i].data.u64 || got[j].events != want[i].events))
			j++;
		if (j == n)
			fail(__LINE__, "no event {%llu, %#x} among %d", (unsigned long long)want[i].data.u64,
			     want[i].events, n);
		got[j] = got[--n];
	}
}

/* An unconnected socket in the set, closed while a copy keeps it open
 * (the number then reused by another socket, the copy then connected
 * plain, or over TSSX): the kernel's registration belongs to the open
 * file and stays, reporting with the program's data what the socket
 * shows, level-triggered: first EPOLLOUT|EPOLLHUP (unconnected), then
 * EPOLLOUT, then EPOLLIN too; a one-shot one that fired stays silent.
 * As a plain program sees it (checked without the library up to the
 * TSSX connect); the library's tag left there was dropped at every
 * wake-up, a busy loop that reported nothing. */
static void case_epoll_closed_copy(void)
{
	int epfd = epoll_create1(0), c = socket(AF_UNIX, SOCK_STREAM, 0), copy, reused, s;
	const struct epoll_event both[] = { { .events = EPOLLOUT | EPOLLHUP, .data.u64 = 40 },
					    { .events = EPOLLOUT | EPOLLHUP, .data.u64 = 41 } };

	CHECK_EQ(epoll_add(epfd, c, EPOLLIN | EPOLLOUT, 40), 0);
	copy = dup(c);
	CHECK(copy >= 0);
	close(c);
	expect_event(epfd, 0, 40, EPOLLOUT | EPOLLHUP);
	expect_event(epfd, -1, 40, EPOLLOUT | EPOLLHUP);

	reused = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(reused, c);
	CHECK_EQ(epoll_add(epfd, reused, EPOLLIN | EPOLLOUT, 41), 0);
	expect_events(epfd, 2, both);
	close(reused);
	expect_event(epfd, 0, 40, EPOLLOUT | EPOLLHUP);

	/* Connected plain (the raw system call bypasses the library). */
	CHECK_EQ(syscall(SYS_connect, copy, &listen_addr, sizeof(listen_addr)), 0);
	s = accept(listener, NULL, NULL);
	CHECK(s >= 0);
	expect_event(epfd, 0, 40, EPOLLOUT);
	put(s, "p");
	expect_event(epfd, 0, 40, EPOLLIN | EPOLLOUT);
	get(copy, "p");
	close(s);
	close(copy);
	expect_event(epfd, 0, 0, 0);

	/* Connected over TSSX: its real socket, writable, with our data;
	 * readable only from doorbells, which nothing in the set asks for
	 * any more (docs/events.md). */
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(epoll_add(epfd, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 42), 0);
	copy = dup(c);
	close(c);
	expect_event(epfd, 0, 42, EPOLLOUT | EPOLLHUP);
	connect_tssx(copy);
	s = accept(listener, NULL, NULL);
	CHECK(s >= 0);
	expect_event(epfd, 0, 42, EPOLLOUT);
	put(copy, "t");
	get(s, "t");
	close(copy);
	close(s);
	expect_event(epfd, 0, 0, 0);

	/* One-shot, reported: silent until a MOD that no fd can name now. */
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(epoll_add(epfd, c, EPOLLOUT | EPOLLONESHOT, 43), 0);
	expect_event(epfd, 0, 43, EPOLLOUT | EPOLLHUP);
	copy = dup(c);
	close(c);
	expect_event(epfd, 0, 0, 0);
	close(copy);
	/* EPOLLEXCLUSIVE (which EPOLL_CTL_MOD refuses). */
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(epoll_add(epfd, c, EPOLLOUT | EPOLLEXCLUSIVE, 44), 0);
	copy = dup(c);
	close(c);
	expect_event(epfd, 0, 44, EPOLLOUT | EPOLLHUP);
	close(copy);
	expect_event(epfd, 0, 0, 0);
	close(epfd);
}

/* epoll in epoll, epoll in poll. */
static void case_epoll_nested(void)
{
	int c, s, inner = epoll_create1(0), outer = epoll_create1(0);

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(inner, s, EPOLLIN, 18), 0);
	CHECK_EQ(epoll_add(outer, inner, EPOLLIN, 19), 0);
	expect_event(outer, 0, 0, 0);
	CHECK_EQ(poll_one(inner, POLLIN, 0), 0);
	put(c, "n");
	expect_event(outer, -1, 19, EPOLLIN);
	CHECK_EQ(poll_one(inner, POLLIN, -1), POLLIN);
	expect_event(inner, 0, 18, EPOLLIN);
	get(s, "n");
	expect_event(inner, 0, 0, 0);
	expect_event(outer, 0, 0, 0);
	CHECK_EQ(poll_one(inner, POLLIN, 20), 0);
	/* Added to the inner set after the inner set joined the outer one. */
	int c2, s2;
	tssx_pair(&c2, &s2);
	CHECK_EQ(epoll_add(inner, s2, EPOLLIN, 20), 0);
	put(c2, "m");
	expect_event(outer, -1, 19, EPOLLIN);
	expect_event(inner, 0, 20, EPOLLIN);
}

static void *drain_ring(void *arg)
{
	char buf[4096];
	int fd = *(int *)arg;

	/* whatever the writer filled the ring with */
	CHECK(recv(fd, buf, sizeof(buf), 0) > 0);
	return NULL;
}

/* A full ring is not writable; the reader freeing room wakes a writer
 * sleeping in poll, then one in epoll (edge-triggered). */
static void case_writable(void)
{
	int c, s, epfd = epoll_create1(0);
	char block[1024] = { 0 };
	pthread_t reader;

	tssx_pair(&c, &s);
	CHECK_EQ(fcntl(c, F_SETFL, O_NONBLOCK), 0);
	CHECK_EQ(epoll_add(epfd, c, EPOLLOUT | EPOLLET, 22), 0);
	expect_event(epfd, 0, 22, EPOLLOUT);
	while (write(c, block, sizeof(block)) > 0)
		;
	CHECK_EQ(errno, EAGAIN);
	CHECK_EQ(poll_one(c, POLLOUT, 0), 0);
	CHECK_EQ(poll_one(c, POLLOUT, 20), 0);
	CHECK_EQ(pthread_create(&reader, NULL, drain_ring, &s), 0);
	CHECK_EQ(poll_one(c, POLLOUT, -1), POLLOUT);
	CHECK_EQ(pthread_join(reader, NULL), 0);
	expect_event(epfd, -1, 22, EPOLLOUT);
	while (write(c, block, sizeof(block)) > 0)
		;
	expect_event(epfd, 0, 0, 0);
	CHECK_EQ(pthread_create(&reader, NULL, drain_ring, &s), 0);
	expect_event(epfd, -1, 22, EPOLLOUT);
	CHECK_EQ(pthread_join(reader, NULL), 0);
}

/* Room after a full ring (docs/events.md, "Room only after a full ring"):
 * an edge-triggered entry that asks for EPOLLOUT sleeps without asking
 * the peer for room while its writes find room, and hears of room once a
 * write found the ring full: after it went cold in the set (the writing
 * thread's next wait arms it), while another thread sleeps in the set
 * (armed at the EAGAIN of a sendfile(), which the library copies through a
 * buffer, as nginx sends a file), and when a fork made after that sleep
 * began fills the ring (the socket's bell).  Each wait is bounded, so a
 * lost edge fails the case instead of hanging it. */
#define ROOM_WAIT_MS 10000

static void fill_ring(int fd)
{
	char block[1024] = { 0 };

	while (write(fd, block, sizeof(block)) > 0)
		;
	CHECK_EQ(errno, EAGAIN);
}

static void fill_ring_from_file(int fd)
{
	char block[1024] = { 0 };
	int file = memfd_create("room", MFD_CLOEXEC);
	off_t offset = 0;

	CHECK(file >= 0);
	CHECK_EQ(write(file, block, sizeof(block)), (ssize_t)sizeof(block));
	for (;; offset = 0)
		if (sendfile(fd, file, &offset, sizeof(block)) <= 0)
			break;
	CHECK_EQ(errno, EAGAIN);
	close(file);
}

/* A non-blocking client whose first report (writable) was taken, in a
 * set of its own. */
static int room_pair(int *c, int *s)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	tssx_pair(c, s);
	CHECK_EQ(fcntl(*c, F_SETFL, O_NONBLOCK), 0);
	CHECK_EQ(epoll_add(epfd, *c, EPOLLIN | EPOLLOUT | EPOLLET, 24), 0);
	expect_event(epfd, 0, 24, EPOLLOUT);
	return epfd;
}

static long long monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The client's room, reported before the wait's bound: a wait that ran
 * out looks at the rings once more and would report it then, hiding a
 * wake-up that never came. */
static void expect_room(int epfd)
{
	long long start = monotonic_ms();

	expect_event(epfd, ROOM_WAIT_MS, 24, EPOLLOUT);
	if (monotonic_ms() - start >= ROOM_WAIT_MS)
		fail(__LINE__, "room reported only as the wait of %d ms ran out: no wake-up came", ROOM_WAIT_MS);
}

static void *room_sleeper(void *arg)
{
	expect_room(*(int *)arg);
	return NULL;
}

/* Gives room_sleeper() time to arm and sleep before the ring fills:
 * the case is about a sleep that began before; not a bound on anything. */
static void let_sleeper_sleep(void)
{
	usleep(100 * 1000);
}

static void case_epoll_room(void)
{
	int c, s, epfd, status;
	pthread_t reader, sleeper;
	pid_t child;

	epfd = room_pair(&c, &s);
	expect_event(epfd, 20, 0, 0); /* armed, nothing: cold */
	fill_ring(c);
	CHECK_EQ(pthread_create(&reader, NULL, drain_ring, &s), 0);
	expect_room(epfd);
	CHECK_EQ(pthread_join(reader, NULL), 0);

	epfd = room_pair(&c, &s);
	CHECK_EQ(pthread_create(&sleeper, NULL, room_sleeper, &epfd), 0);
	let_sleeper_sleep();
	fill_ring_from_file(c);
	drain_ring(&s);
	CHECK_EQ(pthread_join(sleeper, NULL), 0);

	epfd = room_pair(&c, &s);
	CHECK_EQ(pthread_create(&sleeper, NULL, room_sleeper, &epfd), 0);
	let_sleeper_sleep();
	child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		close(epfd); /* its writes reach no set of its own */
		fill_ring(c);
		_exit(0);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK_EQ(status, 0);
	drain_ring(&s);
	CHECK_EQ(pthread_join(sleeper, NULL), 0);
}

/* A forked child shares the epoll fd and the connection: it sees the data,
 * and its close takes the connection out of its set only. */
static void case_epoll_fork(void)
{
	int c, s, epfd = epoll_create1(0), status;
	pid_t child;

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 21), 0);
	put(c, "f");
	child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		expect_event(epfd, -1, 21, EPOLLIN);
		close(s);
		expect_event(epfd, 0, 0, 0);
		_exit(0);
	}
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expect_event(epfd, -1, 21, EPOLLIN);
	get(s, "f");
	expect_event(epfd, 0, 0, 0);
}

/* ---- one epoll fd, several threads ---- */

#define WAITERS 4
#define CONNS 32

static int shared_epfd, quit_pipe[2];
static int conn_server[CONNS];
static _Atomic int handled;

static void *waiter(void *arg)
{
	for (;;) {
		struct epoll_event event;
		char byte;
		int n = epoll_wait(shared_epfd, &event, 1, -1);

		CHECK(n == 1 || (n == -1 && errno == EINTR));
		if (n != 1)
			continue;
		if (event.data.u64 == CONNS)
			return NULL;
		/* One-shot: no other thread has this connection now. */
		CHECK_EQ(read(conn_server[event.data.u64], &byte, 1), 1);
		CHECK_EQ(byte, (char)event.data.u64);
		handled++;
		CHECK_EQ(epoll_mod(shared_epfd, conn_server[event.data.u64], EPOLLIN | EPOLLONESHOT,
				   event.data.u64), 0);
	}
}

static void case_epoll_threads(void)
{
	pthread_t threads[WAITERS];
	int clients[CONNS];

	shared_epfd = epoll_create1(0);
	CHECK_EQ(pipe(quit_pipe), 0);
	for (int i = 0; i < CONNS; i++) {
		tssx_pair(&clients[i], &conn_server[i]);
		CHECK_EQ(epoll_add(shared_epfd, conn_server[i], EPOLLIN | EPOLLONESHOT, (uint64_t)i), 0);
	}
	CHECK_EQ(epoll_add(shared_epfd, quit_pipe[0], EPOLLIN, CONNS), 0);
	for (int i = 0; i < WAITERS; i++)
		CHECK_EQ(pthread_create(&threads[i], NULL, waiter, NULL), 0);
	for (int round = 0; round < 50; round++)
		for (int i = 0; i < CONNS; i++)
			CHECK_EQ(write(clients[i], &(char){ (char)i }, 1), 1);
	while (handled < 50 * CONNS)
		usleep(1000);
	put(quit_pipe[1], "q");
	for (int i = 0; i < WAITERS; i++)
		pthread_join(threads[i], NULL);
	CHECK_EQ(handled, 50 * CONNS);
}

/* ---- timeouts and signals ---- */

static void on_signal(int sig)
{
	(void)sig;
}

static void catch_without_restart(int sig)
{
	struct sigaction sa = { .sa_handler = on_signal };

	CHECK_EQ(sigaction(sig, &sa, NULL), 0);
}

/* Blocking waits on an idle TSSX connection end with EINTR: a repeating
 * timer makes sure a signal comes while the call sleeps. */
static void case_eintr(void)
{
	struct itimerval every = { { 0, 10000 }, { 0, 10000 } }, off = { { 0, 0 }, { 0, 0 } };
	int c, s, epfd = epoll_create1(0);
	struct epoll_event event;
	struct pollfd pfd;
	fd_set rd;

	tssx_pair(&c, &s);
	pfd = (struct pollfd){ .fd = s, .events = POLLIN };
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 1), 0);
	catch_without_restart(SIGALRM);
	CHECK_EQ(setitimer(ITIMER_REAL, &every, NULL), 0);
	CHECK_EQ(poll(&pfd, 1, -1), -1);
	CHECK_EQ(errno, EINTR);
	FD_ZERO(&rd);
	FD_SET(s, &rd);
	CHECK_EQ(select(s + 1, &rd, NULL, NULL, NULL), -1);
	CHECK_EQ(errno, EINTR);
	CHECK_EQ(epoll_wait(epfd, &event, 1, -1), -1);
	CHECK_EQ(errno, EINTR);
	CHECK_EQ(setitimer(ITIMER_REAL, &off, NULL), 0);
}

static _Atomic int usr1_caught;

static void count_usr1(int sig)
{
	(void)sig;
	usr1_caught++;
}

/* The signal-mask variants: a signal blocked outside the call and pending
 * is delivered by the call that unblocks it, at once, however long the
 * timeout; with the mask keeping it blocked, it stays pending. */
static void case_sigmask(void)
{
	struct sigaction sa = { .sa_handler = count_usr1 };
	struct timespec zero = { 0, 0 };
	sigset_t usr1, open_mask, closed_mask;
	int c, s, epfd = epoll_create1(0), before;
	struct epoll_event event;
	struct pollfd pfd;
	fd_set rd;

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 1), 0);
	CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	CHECK_EQ(sigprocmask(SIG_BLOCK, &usr1, &open_mask), 0);
	sigdelset(&open_mask, SIGUSR1);
	closed_mask = open_mask;
	sigaddset(&closed_mask, SIGUSR1);

	for (int call = 0; call < 4; call++) {
		before = usr1_caught;
		CHECK_EQ(raise(SIGUSR1), 0);
		pfd = (struct pollfd){ .fd = s, .events = POLLIN };
		FD_ZERO(&rd);
		FD_SET(s, &rd);
		/* kept blocked: nothing happens, the signal waits */
		switch (call) {
		case 0: CHECK_EQ(ppoll(&pfd, 1, &zero, &closed_mask), 0); break;
		case 1: CHECK_EQ(pselect(s + 1, &rd, NULL, NULL, &zero, &closed_mask), 0); break;
		case 2: CHECK_EQ(epoll_pwait(epfd, &event, 1, 0, &closed_mask), 0); break;
		case 3: CHECK_EQ(epoll_pwait2(epfd, &event, 1, &zero, &closed_mask), 0); break;
		}
		CHECK_EQ(usr1_caught, before);
		FD_SET(s, &rd);
		/* unblocked by the call: delivered inside it */
		switch (call) {
		case 0: CHECK_EQ(ppoll(&pfd, 1, NULL, &open_mask), -1); break;
		case 1: CHECK_EQ(pselect(s + 1, &rd, NULL, NULL, NULL, &open_mask), -1); break;
		case 2: CHECK_EQ(epoll_pwait(epfd, &event, 1, -1, &open_mask), -1); break;
		case 3: CHECK_EQ(epoll_pwait2(epfd, &event, 1, NULL, &open_mask), -1); break;
		}
		CHECK_EQ(errno, EINTR);
		CHECK_EQ(usr1_caught, before + 1);
	}
}

/* ---- idle ---- */

#define IDLE_CONNS 1000
#define IDLE_SECONDS 15

static _Atomic pid_t idle_tid;

static void *idle_waiter(void *arg)
{
	struct epoll_event event;
	int epfd = *(int *)arg;

	idle_tid = (pid_t)syscall(SYS_gettid);
	CHECK_EQ(epoll_wait(epfd, &event, 1, -1), 1);
	return (void *)(uintptr_t)event.data.u64;
}

struct activity {
	long long switches, ticks;
};

/* Context switches and CPU ticks of one thread, from /proc. */
static struct activity thread_activity(pid_t tid)
{
	char path[64], line[256];
	long long switches = 0, utime, stime;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	f = fopen(path, "r");
	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		long long n;

		if (sscanf(line, "voluntary_ctxt_switches: %lld", &n) == 1 ||
		    sscanf(line, "nonvoluntary_ctxt_switches: %lld", &n) == 1)
			switches += n;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	CHECK(f);
	CHECK(fgets(line, sizeof(line), f));
	fclose(f);
	/* fields 14 and 15, after the parenthesised name */
	CHECK_EQ(sscanf(strrchr(line, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld",
			&utime, &stime), 2);
	return (struct activity){ switches, utime + stime };
}

/* 1000 idle TSSX connections in one epoll set: the waiting thread does not
 * wake up (no spinning, no polling timer) until one of them speaks. */
static void case_idle(void)
{
	static int clients[IDLE_CONNS], servers[IDLE_CONNS];
	struct rlimit files;
	int epfd = epoll_create1(0);
	struct activity before, after;
	pthread_t thread;
	void *which;

	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
	files.rlim_cur = files.rlim_max;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
	CHECK(files.rlim_cur > 2 * IDLE_CONNS + 100);
	for (int i = 0; i < IDLE_CONNS; i++) {
		tssx_pair(&clients[i], &servers[i]);
		CHECK_EQ(epoll_add(epfd, servers[i], EPOLLIN, (uint64_t)i), 0);
	}
	CHECK_EQ(pthread_create(&thread, NULL, idle_waiter, &epfd), 0);
	while (!idle_tid)
		usleep(1000);
	/* Once it has settled (handshakes done, however loaded the machine):
	 * a whole second without one wake-up and with at most a tick of CPU.
	 * A waiter that spins or polls on a timer never gets there. */
	for (int second = 0;; second++) {
		CHECK(second < IDLE_SECONDS);
		before = thread_activity(idle_tid);
		sleep(1);
		after = thread_activity(idle_tid);
		if (after.switches == before.switches && after.ticks - before.ticks <= 1)
			break;
	}
	put(clients[IDLE_CONNS / 2], "!");
	CHECK_EQ(pthread_join(thread, &which), 0);
	CHECK_EQ((uintptr_t)which, IDLE_CONNS / 2);
}

/* ---- idle connections cost nothing (docs/events.md) ---- */

/* A connection that went cold in an epoll set (a wait armed it and found
 * nothing) is reported even when its doorbell never reaches the set:
 * read first by poll() in this process, or by poll() in a fork that
 * shares the connection; and when this process's own shutdown changes
 * what it reports, which rings no doorbell to this side. */
static void case_epoll_cold(void)
{
	int c, s, epfd = epoll_create1(EPOLL_CLOEXEC), status;
	pid_t child;

	tssx_pair(&c, &s);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN | EPOLLRDHUP, 5), 0);
	expect_event(epfd, 20, 0, 0); /* armed, nothing: cold */
	put(c, "a");
	CHECK_EQ(poll_one(s, POLLIN, -1), POLLIN); /* takes the doorbell */
	expect_event(epfd, 1000, 5, EPOLLIN);
	get(s, "a");
	expect_event(epfd, 20, 0, 0);

	/* A fork reads the doorbell. */
	put(c, "b");
	child = fork();
	CHECK(child >= 0);
	if (child == 0)
		_exit(poll_one(s, POLLIN, -1) == POLLIN ? 0 : 1);
	CHECK_EQ(waitpid(child, &status, 0), child);
	CHECK_EQ(status, 0);
	expect_event(epfd, 1000, 5, EPOLLIN);
	get(s, "b");
	expect_event(epfd, 20, 0, 0);

	/* This side's shutdown of its reading side: EOF, as the kernel says. */
	CHECK_EQ(shutdown(s, SHUT_RD), 0);
	expect_event(epfd, 1000, 5, EPOLLIN | EPOLLRDHUP);
}

/* One epoll set with MANY_IDLE idle connections and one busy one: its
 * looks at the rings (a wait makes one or more) see the busy connection,
 * not every connection in the set (the statistics line of `many-work`, run with
 * TSSX_LOG=info in a child); the idle ones still answer when they speak. */
#define MANY_IDLE 500
#define MANY_ROUNDS 2000
#define MANY_LOOKED_PER_LOOK 20

static int many_epfd;

static void *many_echo(void *arg)
{
	(void)arg;
	for (;;) {
		struct epoll_event got[8];
		int n = epoll_wait(many_epfd, got, 8, -1);

		CHECK(n > 0);
		for (int i = 0; i < n; i++) {
			char buf[64];
			int fd = (int)got[i].data.u64;
			ssize_t len = read(fd, buf, sizeof(buf));

			if (len <= 0)
				return NULL; /* the busy client's close ends it */
			CHECK_EQ(write(fd, buf, (size_t)len), len);
		}
	}
}

static void case_many_work(void)
{
	static int clients[MANY_IDLE + 1], servers[MANY_IDLE + 1];
	struct rlimit files;
	pthread_t thread;
	char msg[32];

	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
	files.rlim_cur = files.rlim_max;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
	CHECK(files.rlim_cur > 2 * MANY_IDLE + 100);
	many_epfd = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i <= MANY_IDLE; i++) {
		tssx_pair(&clients[i], &servers[i]);
		CHECK_EQ(epoll_add(many_epfd, servers[i], EPOLLIN, (uint64_t)servers[i]), 0);
	}
	CHECK_EQ(pthread_create(&thread, NULL, many_echo, NULL), 0);
	for (int round = 0; round < MANY_ROUNDS; round++) {
		snprintf(msg, sizeof(msg), "round %d", round);
		put(clients[MANY_IDLE], msg);
		get(clients[MANY_IDLE], msg);
	}
	for (int i = 0; i < MANY_IDLE; i += MANY_IDLE / 5) {
		snprintf(msg, sizeof(msg), "idle %d", i);
		put(clients[i], msg);
		get(clients[i], msg);
	}
	close(clients[MANY_IDLE]);
	CHECK_EQ(pthread_join(thread, NULL), 0);
}

/* Runs `events-test WORK` in a child with TSSX_LOG=info and the given
 * environment, and returns its log (the statistics lines). */
static void run_logged(const char *work, char *out, size_t size, const char *const *env)
{
	int err[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t child;

	CHECK_EQ(pipe(err), 0);
	child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		dup2(err[1], STDERR_FILENO);
		setenv("TSSX_LOG", "info", 1);
		for (; env && env[0]; env += 2)
			setenv(env[0], env[1], 1);
		execl("/proc/self/exe", "events-test", work, (char *)NULL);
		_exit(127);
	}
	close(err[1]);
	while (len < size - 1 && (n = read(err[0], out + len, size - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(err[0]);
	CHECK_EQ(waitpid(child, &status, 0), child);
	if (status != 0)
		fail(__LINE__, "%s failed: %s", work, out);
}

static void case_epoll_many(void)
{
	static char out[1 << 20]; /* a line per connection, then the statistics */
	char *line;
	unsigned long long waits, looks, looked;

	run_logged("many-work", out, sizeof(out), NULL);
	CHECK(strstr(out, "shared memory, server"));
	line = strstr(out, "epoll: ");
	if (!line || sscanf(line, "epoll: %llu waits, %llu looks at the rings of %llu", &waits, &looks, &looked) != 3)
		fail(__LINE__, "no epoll statistics in: %s", out);
	CHECK(waits >= MANY_ROUNDS && looks >= waits);
	if (looked > MANY_LOOKED_PER_LOOK * looks)
		fail(__LINE__, "%llu entries looked at per look in a set of %d: %.*s", looked / looks,
		     MANY_IDLE + 1, (int)strcspn(line, "\n"), line);
}

/* An epoll ping-pong whose every wait sleeps (no spin, no yield: run by
 * `epoll-bell`): both ends wake by the eventfd bell, and neither sends
 * nor drains a byte on its socket beyond the hello, though the program
 * closed and dup2()ed over every fd it did not make first. */
#define BELL_ROUNDS 500

static int bell_server_epfd;
/* What both ends' entries ask for: EPOLLIN | EPOLLET (`bell-work`), and
 * EPOLLOUT too, as nginx registers its connections (`room-work`), whose
 * echo also waits between its read and its answer, as a server that
 * works on the request, so that a wake-up of the client for room cannot
 * fall together with the one for the answer. */
static uint32_t bell_events = EPOLLIN | EPOLLET;
static int bell_rounds = BELL_ROUNDS;
static useconds_t bell_work_us;

/* Until fd is readable: a report of room alone (EPOLLOUT, after the peer
 * read), which only entries that ask for it may get, is taken and waited
 * past. */
static void wait_readable(int epfd, int fd)
{
	struct epoll_event got;

	do {
		CHECK_EQ(epoll_wait(epfd, &got, 1, -1), 1);
		CHECK_EQ(got.data.u64, (uint64_t)fd);
		CHECK((got.events & EPOLLIN) || (bell_events & EPOLLOUT));
	} while (!(got.events & EPOLLIN));
}

static void *bell_echo(void *arg)
{
	int fd = *(int *)arg;
	char buf[64];

	for (;;) {
		ssize_t len;

		wait_readable(bell_server_epfd, fd);
		len = read(fd, buf, sizeof(buf));
		CHECK(len > 0);
		if (bell_work_us)
			usleep(bell_work_us);
		CHECK_EQ(write(fd, buf, (size_t)len), len);
		if (len == 4 && memcmp(buf, "quit", 4) == 0)
			return NULL;
	}
}

/* What a program does to fds it does not know: closes them (a close-all
 * loop) and dup2()s onto them.  The library's own (here the eventfds)
 * stay, moved away from a dup2. */
static void close_and_cover_others(const int *keep, int kept)
{
	char path[sizeof("/proc/self/fd/") + sizeof(((struct dirent *)0)->d_name)], link[64];
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC), eventfds[16], found = 0;
	DIR *dir;
	struct dirent *d;

	CHECK(null >= 0);
	for (int fd = 3; fd < 1024; fd++) {
		bool keeping = fd == null;

		for (int i = 0; i < kept; i++)
			keeping |= fd == keep[i];
		if (!keeping)
			close(fd);
	}
	dir = opendir("/proc/self/fd");
	CHECK(dir);
	while ((d = readdir(dir))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && (link[n] = '\0', strcmp(link, "anon_inode:[eventfd]") == 0) && found < 16)
			eventfds[found++] = atoi(d->d_name);
	}
	closedir(dir);
	CHECK_EQ(found, 4); /* both ends' own and peer's: still there */
	for (int i = 0; i < found; i++)
		CHECK_EQ(dup2(null, eventfds[i]), eventfds[i]);
	close(null);
}

static void case_bell_work(void)
{
	int client, server, epfd;
	pthread_t thread;
	char msg[32], buf[32];

	tssx_pair(&client, &server);
	close_and_cover_others((int[]){ client, server }, 2);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	bell_server_epfd = epoll_create1(EPOLL_CLOEXEC);
	/* Waited on while empty: a connection added by the thread that
	 * waited rings no doorbell for a wait of another thread. */
	expect_event(epfd, 0, 0, 0);
	expect_event(bell_server_epfd, 0, 0, 0);
	CHECK_EQ(epoll_add(bell_server_epfd, server, bell_events, (uint64_t)server), 0);
	CHECK_EQ(epoll_add(epfd, client, bell_events, (uint64_t)client), 0);
	CHECK_EQ(pthread_create(&thread, NULL, bell_echo, &server), 0);
	for (int round = 0; round <= bell_rounds; round++) {
		int len = round < bell_rounds ? snprintf(msg, sizeof(msg), "round %d", round)
					      : snprintf(msg, sizeof(msg), "quit");

		CHECK_EQ(write(client, msg, (size_t)len), len);
		wait_readable(epfd, client);
		CHECK_EQ(read(client, buf, sizeof(buf)), len);
		CHECK(memcmp(buf, msg, (size_t)len) == 0);
	}
	CHECK_EQ(pthread_join(thread, NULL), 0);
	close(client);
	close(server);
}

#define ROOM_ROUNDS 200

static void case_room_work(void)
{
	bell_events = EPOLLIN | EPOLLOUT | EPOLLET;
	bell_rounds = ROOM_ROUNDS;
	bell_work_us = 2000;
	case_bell_work();
}

/* The bell ping-pong `work` without spin or yield: its log in out, the
 * waits woken by an eventfd and by a socket. */
static void run_bell_work(const char *work, char *out, size_t size, unsigned long long *by_eventfd,
			  unsigned long long *by_socket)
{
	static const char *const no_spin[] = { "TSSX_SPIN_NS", "0", "TSSX_YIELD_NS", "0", NULL };
	const char *line;

	run_logged(work, out, size, no_spin);
	line = strstr(out, "epoll: ");
	if (!line || !(line = strstr(line, "woken ")) ||
	    sscanf(line, "woken %llu times by an eventfd, %llu by a socket", by_eventfd, by_socket) != 2)
		fail(__LINE__, "no epoll statistics in: %s", out);
}

static void case_epoll_bell(void)
{
	static char out[1 << 16];
	unsigned long long by_eventfd, by_socket, ring_sent, ring_received, sock_sent, sock_received;
	unsigned closes = 0;
	const char *line;

	run_bell_work("bell-work", out, sizeof(out), &by_eventfd, &by_socket);
	/* The waits that slept (most: the peer answers only after the
	 * waiter's own message, and nobody spins) were woken by the eventfd,
	 * never through the socket. */
	if (by_eventfd == 0 || by_socket != 0)
		fail(__LINE__, "woken %llu times by an eventfd, %llu by a socket: %s", by_eventfd, by_socket, out);
	/* Both ends: the ring carried everything, the socket the hello only. */
	for (line = out; (line = strstr(line, "closed: ring sent=")); line++) {
		CHECK_EQ(sscanf(line, "closed: ring sent=%llu received=%llu, socket sent=%llu received=%llu", &ring_sent,
				&ring_received, &sock_sent, &sock_received), 4);
		CHECK(ring_sent > 0 && ring_received == ring_sent);
		CHECK((sock_sent == 0 && sock_received > 0) || (sock_sent > 0 && sock_received == 0));
		CHECK(sock_sent + sock_received < 64); /* the hello, no doorbell */
		closes++;
	}
	CHECK_EQ(closes, 2);
}

/* The ping-pong of `room-work`, both ends' entries asking for EPOLLOUT
 * too (`epoll-room-bells`): no write finds a ring full, so neither end is
 * owed room and none is woken for it; each sleeps once a round, until
 * the peer's message (docs/events.md, "Room only after a full ring").  A
 * reader that rang for room woke the client again at every request's
 * read, three wake-ups a round. */
static void case_epoll_room_bells(void)
{
	static char out[1 << 16];
	unsigned long long by_eventfd, by_socket;

	run_bell_work("room-work", out, sizeof(out), &by_eventfd, &by_socket);
	if (by_eventfd > 2 * (ROOM_ROUNDS + 1) + ROOM_ROUNDS / 10 || by_socket != 0)
		fail(__LINE__, "%d rounds woken %llu times by an eventfd, %llu by a socket: %s", ROOM_ROUNDS + 1,
		     by_eventfd, by_socket, out);
}

/* Spins that only the program's own fds end (docs/wait.md, "Spins that
 * plain fds end"): an epoll set and a poll() over a connection that stays
 * silent and a pipe made readable before each wait, as a proxy's waits
 * for its plain upstream.  A spin there ends at its first look at the
 * kernel, which finds the pipe: `plain-work` counts none of them as a
 * spin that found its answer (the library before counted each), and the
 * thread's history soon sleeps at once instead.  A machine too busy to
 * let any spin start passes trivially. */
#define PLAIN_ROUNDS 200

static void case_plain_work(void)
{
	int c, s, pipefd[2], epfd = epoll_create1(EPOLL_CLOEXEC);
	char byte;

	tssx_pair(&c, &s);
	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	CHECK_EQ(epoll_add(epfd, s, EPOLLIN, 1), 0);
	CHECK_EQ(epoll_add(epfd, pipefd[0], EPOLLIN, 2), 0);
	for (int round = 0; round < PLAIN_ROUNDS; round++) {
		struct pollfd fds[2] = { { .fd = s, .events = POLLIN }, { .fd = pipefd[0], .events = POLLIN } };

		CHECK_EQ(write(pipefd[1], "e", 1), 1);
		expect_event(epfd, -1, 2, EPOLLIN);
		CHECK_EQ(read(pipefd[0], &byte, 1), 1);
		CHECK_EQ(write(pipefd[1], "p", 1), 1);
		CHECK_EQ(poll(fds, 2, -1), 1);
		CHECK_EQ(fds[1].revents, POLLIN);
		CHECK_EQ(read(pipefd[0], &byte, 1), 1);
	}
}

static void case_spin_plain(void)
{
	static char out[1 << 16];
	unsigned long long quick, quick_found, spins, spins_found;
	const char *line;

	run_logged("plain-work", out, sizeof(out), NULL);
	line = strstr(out, "waits before sleeping: ");
	if (line && sscanf(line, "waits before sleeping: %llu quick spins (%llu found the answer), %llu spins (%llu found it)",
			   &quick, &quick_found, &spins, &spins_found) != 4)
		fail(__LINE__, "no wait statistics in: %s", out);
	if (line && spins_found != 0)
		fail(__LINE__, "%llu of %llu spins ended by the pipe alone counted as found: %.*s", spins_found, spins,
		     (int)strcspn(line, "\n"), line);
}

/* A poll() over several connections of which one gets the answers: the
 * flags it raised on the others are lowered as it returns, so that the
 * peer rings none of them at its next message (docs/data-path.md,
 * "Sleeping and waking").  Run by poll-lowered, without spin or yield:
 * every poll that finds nothing arms all four and sleeps. */
#define LOWERED_PAIRS 4
#define LOWERED_ROUNDS 20

static void *lowered_answer(void *arg)
{
	const int *server = arg;
	char buf[32];

	for (int round = 0; round <= LOWERED_ROUNDS; round++) {
		ssize_t len = read(server[0], buf, sizeof(buf));

		CHECK(len > 0);
		/* After the last round: a message on each quiet connection
		 * while the client sleeps in read() on the first, not in poll. */
		if (round == LOWERED_ROUNDS)
			for (int i = 1; i < LOWERED_PAIRS; i++)
				CHECK_EQ(write(server[i], "late", 4), 4);
		else
			usleep(1000); /* so that the client's poll sleeps */
		CHECK_EQ(write(server[0], buf, (size_t)len), len);
	}
	return NULL;
}

static void case_lowered_work(void)
{
	int client[LOWERED_PAIRS], server[LOWERED_PAIRS];
	struct pollfd pfd[LOWERED_PAIRS];
	pthread_t thread;
	char buf[32];

	for (int i = 0; i < LOWERED_PAIRS; i++) {
		tssx_pair(&client[i], &server[i]);
		pfd[i] = (struct pollfd){ .fd = client[i], .events = POLLIN };
	}
	CHECK_EQ(pthread_create(&thread, NULL, lowered_answer, server), 0);
	for (int round = 0; round < LOWERED_ROUNDS; round++) {
		CHECK_EQ(write(client[0], "ask", 3), 3);
		CHECK_EQ(poll(pfd, LOWERED_PAIRS, -1), 1);
		CHECK_EQ(pfd[0].revents, POLLIN);
		CHECK_EQ(read(client[0], buf, sizeof(buf)), 3);
	}
	CHECK_EQ(write(client[0], "last", 4), 4);
	CHECK_EQ(read(client[0], buf, sizeof(buf)), 4);
	for (int i = 1; i < LOWERED_PAIRS; i++)
		CHECK_EQ(read(client[i], buf, sizeof(buf)), 4);
	CHECK_EQ(pthread_join(thread, NULL), 0);
	fprintf(stderr, "lowered-work: answering %d, quiet %d %d %d\n", server[0], server[1], server[2], server[3]);
	for (int i = 0; i < LOWERED_PAIRS; i++) {
		close(client[i]);
		close(server[i]);
	}
}

/* Bytes fd sent on its socket (the hello, doorbells), from its line at
 * close. */
static unsigned long long socket_sent(const char *out, int fd)
{
	char prefix[32];
	const char *line;
	unsigned long long sent;

	snprintf(prefix, sizeof(prefix), "fd %d closed: ", fd);
	line = strstr(out, prefix);
	if (!line || !(line = strstr(line, "socket sent=")) || sscanf(line, "socket sent=%llu", &sent) != 1)
		fail(__LINE__, "no line for fd %d at close in: %s", fd, out);
	return sent;
}

static void case_poll_lowered(void)
{
	static const char *const no_spin[] = { "TSSX_SPIN_NS", "0", "TSSX_YIELD_NS", "0", NULL };
	static char out[1 << 16];
	int answering, quiet[LOWERED_PAIRS - 1];
	const char *line;

	run_logged("lowered-work", out, sizeof(out), no_spin);
	line = strstr(out, "lowered-work: ");
	if (!line || sscanf(line, "lowered-work: answering %d, quiet %d %d %d", &answering, &quiet[0], &quiet[1],
			    &quiet[2]) != 4)
		fail(__LINE__, "no fds in: %s", out);
	/* The polls slept, and the answers woke them through the socket. */
	CHECK(socket_sent(out, answering) > 0);
	/* The quiet connections' flags were down when their message came:
	 * no doorbell (the server end sends no hello). */
	for (int i = 0; i < LOWERED_PAIRS - 1; i++)
		if (socket_sent(out, quiet[i]) != 0)
			fail(__LINE__, "fd %d rang a poll that had returned: %s", quiet[i], out);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*run)(void); } cases[] = {
		{ "poll-mixed", case_poll_mixed },
		{ "poll-hangup", case_poll_hangup },
		{ "poll-handshake", case_poll_handshake },
		{ "select", case_select },
		{ "epoll-level", case_epoll_level },
		{ "epoll-edge", case_epoll_edge },
		{ "epoll-oneshot", case_epoll_oneshot },
		{ "epoll-readd", case_epoll_readd },
		{ "epoll-exclusive", case_epoll_exclusive },
		{ "epoll-close", case_epoll_close },
		{ "epoll-late-connect", case_epoll_late_connect },
		{ "epoll-hints", case_epoll_hints },
		{ "epoll-hint-stale", case_epoll_hint_stale },
		{ "epoll-settled", case_epoll_settled },
		{ "epoll-emptied", case_epoll_emptied },
		{ "epoll-closed-copy", case_epoll_closed_copy },
		{ "epoll-nested", case_epoll_nested },
		{ "writable", case_writable },
		{ "epoll-room", case_epoll_room },
		{ "epoll-fork", case_epoll_fork },
		{ "epoll-threads", case_epoll_threads },
		{ "eintr", case_eintr },
		{ "sigmask", case_sigmask },
		{ "idle", case_idle },
		{ "epoll-cold", case_epoll_cold },
		{ "epoll-many", case_epoll_many },
		{ "many-work", case_many_work },
		{ "epoll-bell", case_epoll_bell },
		{ "bell-work", case_bell_work },
		{ "epoll-room-bells", case_epoll_room_bells },
		{ "room-work", case_room_work },
		{ "spin-plain", case_spin_plain },
		{ "plain-work", case_plain_work },
		{ "poll-lowered", case_poll_lowered },
		{ "lowered-work", case_lowered_work },
	};

	signal(SIGPIPE, SIG_IGN);
	listen_once();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (argc == 2 && strcmp(argv[1], cases[i].name) == 0) {
			cases[i].run();
			return 0;
		}
	fprintf(stderr, "usage: events-test CASE\n");
	return 2;
}
