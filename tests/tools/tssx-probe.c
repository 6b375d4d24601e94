/*
 * tssx-probe CASE PATH: one socket semantic checked over a connection
 * between this process (server) and a forked child (client).  Run it
 * preloaded to check the TSSX path, plain to check the check itself.
 * Exits 0 when both sides saw what a Unix stream socket gives.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <linux/futex.h>
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "thread_count.h"
#include "tools.h"
#include "tssx/segment.h"
#include "tssx/side_lock.h"

#define expect(cond) ((cond) ? (void)0 : die("%s:%d: expected %s (errno: %s)", __FILE__, __LINE__, #cond, strerror(errno)))

extern char **environ;

static const char *sock_path;
/* The server's listening socket, for cases that accept a second connection. */
static int listener_fd;
/* Ordering between the two processes, outside the connection under test:
 * the server signals on to_client, the client on to_server. */
static int to_client[2], to_server[2];
static bool is_client;
/* The case this run checks (argv[1]), for cases that share their roles. */
static const char *case_name;

static void signal_peer(void)
{
	expect(write(is_client ? to_server[1] : to_client[1], "!", 1) == 1);
}

static void wait_peer(void)
{
	char c;

	expect(read(is_client ? to_client[0] : to_server[0], &c, 1) == 1);
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		expect(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Reads until EOF, counting bytes per value: counts[256].  A peer that
 * closed with bytes of ours unread resets the connection: the end too
 * (the callers check the count). */
static uint64_t drain_counting(int fd, uint64_t counts[256])
{
	uint8_t buf[65536];
	uint64_t total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) != 0 && !(n < 0 && errno == ECONNRESET)) {
		if (n < 0 && errno == EINTR)
			continue;
		expect(n > 0);
		for (ssize_t i = 0; i < n; i++)
			counts[buf[i]]++;
		total += (uint64_t)n;
	}
	return total;
}

static void wait_byte(int fd)
{
	char c;

	expect(read(fd, &c, 1) == 1);
}

/* sendmsg() of len bytes with one fd attached (SCM_RIGHTS). */
static ssize_t send_with_fd(int fd, void *data, size_t len, int passed)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &passed, sizeof(int));
	return sendmsg(fd, &msg, 0);
}

/* ---- peek, waitall, FIONREAD ---- */

static void peek_client(int fd)
{
	send_all(fd, "hello", 5);
	wait_byte(fd);
	send_all(fd, " world", 6);
	wait_byte(fd);
}

static void peek_server(int fd)
{
	char buf[32] = { 0 };
	int avail = 0;

	expect(recv(fd, buf, 3, MSG_PEEK) == 3 && !memcmp(buf, "hel", 3));
	while (ioctl(fd, FIONREAD, &avail) == 0 && avail < 5)
		usleep(1000);
	expect(avail == 5);
	expect(recv(fd, buf, 0, 0) == 0); /* data there: nothing copied */
	send_all(fd, "+", 1);
	expect(recv(fd, buf, 11, MSG_WAITALL) == 11 && !memcmp(buf, "hello world", 11));
	expect(ioctl(fd, FIONREAD, &avail) == 0 && avail == 0);
	send_all(fd, "+", 1);
}

/* ---- SO_PEEK_OFF ---- */

static int peek_off(int fd)
{
	int off = -2;
	socklen_t len = sizeof(off);

	expect(getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, &len) == 0);
	return off;
}

static void peekoff_client(int fd)
{
	send_all(fd, "hello world", 11);
	wait_byte(fd);
}

/* Peeks move the offset past what they copied, reads back by what they
 * took. */
static void peekoff_server(int fd)
{
	char buf[16] = { 0 };
	int avail = 0, off = 0;

	while (ioctl(fd, FIONREAD, &avail) == 0 && avail < 11)
		usleep(1000);
	expect(peek_off(fd) == -1);
	expect(setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) == 0);
	expect(recv(fd, buf, 5, MSG_PEEK) == 5 && !memcmp(buf, "hello", 5));
	expect(peek_off(fd) == 5);
	expect(recv(fd, buf, 3, MSG_PEEK) == 3 && !memcmp(buf, " wo", 3));
	expect(peek_off(fd) == 8);
	expect(read(fd, buf, 4) == 4 && !memcmp(buf, "hell", 4));
	expect(peek_off(fd) == 4);
	expect(recv(fd, buf, 3, MSG_PEEK) == 3 && !memcmp(buf, "rld", 3));
	off = -1;
	expect(setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) == 0);
	expect(recv(fd, buf, 2, MSG_PEEK) == 2 && !memcmp(buf, "o ", 2));
	expect(recv(fd, buf, 7, MSG_WAITALL) == 7 && !memcmp(buf, "o world", 7));
	send_all(fd, "+", 1);
}

/* ---- control data under a faulting buffer and a peek at SO_PEEK_OFF ---- */

/* An fd to pass: a pipe's read end with "Z" in it. */
static int pipe_with_z(void)
{
	int p[2];

	expect(pipe(p) == 0 && write(p[1], "Z", 1) == 1);
	close(p[1]);
	return p[0];
}

/* One recvmsg() of up to 15 bytes into buf (NUL-terminated), with room for
 * one fd; returns the byte count or -1, *passed the fd received or -1. */
static ssize_t recv_with_fd(int fd, char *buf, int flags, int *passed)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = 15 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *cmsg;
	ssize_t n = recvmsg(fd, &msg, flags);

	*passed = -1;
	if (n < 0)
		return n;
	buf[n] = '\0';
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg && cmsg->cmsg_type == SCM_RIGHTS && cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(passed, CMSG_DATA(cmsg), sizeof(int));
	return n;
}

/* Whether fd is (a copy of) a pipe_with_z() end: reads its "Z". */
static bool reads_z(int fd)
{
	char c = 0;

	return fd >= 0 && read(fd, &c, 1) == 1 && c == 'Z';
}

static void fdfault_client(int fd)
{
	int passed = pipe_with_z();

	expect(send_with_fd(fd, (char[]){ "abc" }, 3, passed) == 3);
	close(passed);
	wait_byte(fd);
}

/* A recvmsg() whose buffer faults takes nothing: the fd stays queued
 * with its bytes, for the next recvmsg(). */
static void fdfault_server(int fd)
{
	char *bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char buf[16];
	int avail = 0, passed;

	expect(bad != MAP_FAILED);
	while (ioctl(fd, FIONREAD, &avail) == 0 && avail < 3)
		usleep(1000);
	expect(recv_with_fd(fd, bad, 0, &passed) < 0 && errno == EFAULT);
	expect(recv_with_fd(fd, buf, 0, &passed) == 3 && !strcmp(buf, "abc"));
	expect(reads_z(passed));
	close(passed);
	send_all(fd, "+", 1);
}

static void cmsgpeek_client(int fd)
{
	int passed = pipe_with_z();

	send_all(fd, "xy", 2);
	expect(send_with_fd(fd, (char[]){ "abc" }, 3, passed) == 3);
	close(passed);
	send_all(fd, "de", 2);
	wait_byte(fd);
}

/* A peek at SO_PEEK_OFF that starts where a message with an fd starts
 * gets a copy of the fd and stops at its end; the read then gets the fd
 * itself. */
static void cmsgpeek_server(int fd)
{
	char buf[16];
	int avail = 0, off = 0, peeked, passed;

	while (ioctl(fd, FIONREAD, &avail) == 0 && avail < 7)
		usleep(1000);
	expect(read(fd, buf, 2) == 2 && !memcmp(buf, "xy", 2));
	expect(setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) == 0);
	expect(recv_with_fd(fd, buf, MSG_PEEK, &peeked) == 3 && !strcmp(buf, "abc"));
	expect(peek_off(fd) == 3);
	expect(recv_with_fd(fd, buf, MSG_PEEK, &passed) == 2 && !strcmp(buf, "de") && passed < 0);
	expect(recv_with_fd(fd, buf, 0, &passed) == 3 && !strcmp(buf, "abc"));
	expect(reads_z(peeked) && passed >= 0 && passed != peeked);
	close(peeked);
	close(passed);
	expect(recv_with_fd(fd, buf, 0, &passed) == 2 && !strcmp(buf, "de") && passed < 0);
	send_all(fd, "+", 1);
}

/* ---- bad buffer pointers: EFAULT, and the program's own SIGSEGV ---- */

static volatile sig_atomic_t segv_seen;

static void on_segv(int sig)
{
	(void)sig;
	segv_seen = 1;
}

static void efault_client(int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	char c = 0;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };

	send_all(fd, "abc", 3);
	/* A byte with an fd, for a recvmsg() whose control buffer is bad. */
	expect(send_with_fd(fd, "d", 1, STDIN_FILENO) == 1);
	/* The fd of the sendmsg() that failed with EFAULT never comes. */
	expect(recvmsg(fd, &msg, 0) == 1 && c == '+');
	expect(msg.msg_controllen == 0 && !(msg.msg_flags & MSG_CTRUNC));
}

/* Calls whose iovec array, msghdr or control data the process cannot
 * read: EFAULT, with nothing taken or sent. */
static void efault_structures(int fd, void *bad)
{
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = bad, .msg_iovlen = 2 };
	struct msghdr control = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = bad,
				  .msg_controllen = CMSG_SPACE(sizeof(int)) };

	expect(readv(fd, bad, 2) < 0 && errno == EFAULT);
	expect(writev(fd, bad, 2) < 0 && errno == EFAULT);
	expect(recvmsg(fd, bad, 0) < 0 && errno == EFAULT);
	expect(sendmsg(fd, bad, 0) < 0 && errno == EFAULT);
	expect(recvmsg(fd, &msg, 0) < 0 && errno == EFAULT);
	expect(sendmsg(fd, &msg, 0) < 0 && errno == EFAULT);
	expect(sendmsg(fd, &control, 0) < 0 && errno == EFAULT);
}

static void efault_server(int fd)
{
	/* Mapped without access: what a stale or wild pointer meets. */
	void *bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *half_bad = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct sigaction sa = { .sa_handler = on_segv }, old;
	struct iovec iov[2] = { { "ok", 2 }, { bad, 2 } };
	char buf[8];
	int avail = 0;

	struct iovec got = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr control = { .msg_iov = &got, .msg_iovlen = 1, .msg_control = bad,
				  .msg_controllen = CMSG_SPACE(sizeof(int)) };

	expect(bad != MAP_FAILED);
	expect(half_bad != MAP_FAILED && mprotect(half_bad + 4096, 4096, PROT_NONE) == 0);
	while (ioctl(fd, FIONREAD, &avail) == 0 && avail < 4)
		usleep(1000);
	expect(read(fd, bad, 3) < 0 && errno == EFAULT);
	expect(recv(fd, bad, 3, MSG_PEEK) < 0 && errno == EFAULT);
	expect(write(fd, bad, 3) < 0 && errno == EFAULT);
	/* Every size class of the ring's copy (tssx/copy.h), and a buffer
	 * that turns bad in the middle of the copy. */
	expect(write(fd, bad, 5) < 0 && errno == EFAULT);
	expect(write(fd, bad, 12) < 0 && errno == EFAULT);
	expect(write(fd, bad, 20) < 0 && errno == EFAULT);
	expect(write(fd, bad, 40) < 0 && errno == EFAULT);
	expect(write(fd, bad, 64) < 0 && errno == EFAULT);
	expect(write(fd, half_bad + 4096 - 20, 40) < 0 && errno == EFAULT);
	expect(write(fd, bad, 3000) < 0 && errno == EFAULT);
	expect(write(fd, half_bad + 4096 - 100, 200) < 0 && errno == EFAULT);
	expect(writev(fd, iov, 2) < 0 && errno == EFAULT);
	expect(send_with_fd(fd, bad, 3, STDIN_FILENO) < 0 && errno == EFAULT);
	efault_structures(fd, bad);
	/* Nothing was taken or sent. */
	expect(read(fd, buf, 3) == 3 && !memcmp(buf, "abc", 3));
	/* The kernel cannot give the fd: it is dropped, the byte comes. */
	expect(recvmsg(fd, &control, 0) == 1 && buf[0] == 'd' && (control.msg_flags & MSG_CTRUNC));
	/* The program's own handler still runs for its own faults. */
	sigemptyset(&sa.sa_mask);
	expect(sigaction(SIGSEGV, &sa, NULL) == 0);
	expect(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == on_segv);
	raise(SIGSEGV);
	expect(segv_seen);
	send_all(fd, "+", 1);
}

/* ---- a large copy that faults part of the way: what moved counts ---- */

#define PARTIAL_WRITE (300u * 1024) /* good bytes before the bad page */
#define PARTIAL_READ (128u * 1024)

static uint8_t stream_byte(uint64_t at)
{
	return (uint8_t)(at * 7 + at / 251);
}

/* len good bytes followed by a page the process cannot touch. */
static uint8_t *before_bad_page(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), span = (len + page - 1) / page * page;
	uint8_t *map = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	expect(map != MAP_FAILED);
	expect(mprotect(map + span, page, PROT_NONE) == 0);
	return map + span - len;
}

/* Reads into a buffer whose end is bad: each read returns the bytes it
 * copied before the fault, and they are never read twice or lost. */
static void partialfault_client(int fd)
{
	uint8_t *buf = before_bad_page(PARTIAL_READ), small[4096];
	uint64_t total = 0;

	for (;;) {
		ssize_t n = read(fd, buf, PARTIAL_READ + 100);
		uint8_t *got = buf;

		if (n < 0 && errno == EFAULT) {
			/* Not a byte before the fault: go on with a good buffer. */
			n = read(fd, small, sizeof(small));
			got = small;
		}
		expect(n >= 0);
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			expect(got[i] == stream_byte(total + (uint64_t)i));
		total += (uint64_t)n;
	}
	send_all(fd, &total, sizeof(total));
}

/* A write whose buffer ends in a bad page returns the bytes it moved
 * before the fault: exactly what the peer reads. */
static void partialfault_server(int fd)
{
	uint8_t *buf = before_bad_page(PARTIAL_WRITE);
	uint64_t total = 0;
	ssize_t n;

	for (uint64_t i = 0; i < PARTIAL_WRITE; i++)
		buf[i] = stream_byte(i);
	n = write(fd, buf, PARTIAL_WRITE + 100);
	expect(n > 0 && (size_t)n <= PARTIAL_WRITE);
	expect(shutdown(fd, SHUT_WR) == 0);
	expect(read(fd, &total, sizeof(total)) == sizeof(total));
	expect(total == (uint64_t)n);
}

/* ---- SO_RCVTIMEO / SO_SNDTIMEO ---- */

static void timeout_client(int fd)
{
	uint64_t counts[256] = { 0 };

	wait_byte(fd);
	wait_peer(); /* reading now would let the timed writes finish */
	drain_counting(fd, counts);
}

static void timeout_server(int fd)
{
	struct timeval tv = { .tv_usec = 100 * 1000 };
	static char big[8 << 20];
	char c;
	ssize_t n;

	expect(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	expect(read(fd, &c, 1) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	send_all(fd, "+", 1);
	expect(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
	/* Nobody reads: a big write fills the buffer and returns what fit
	 * when the timeout expires, the next one nothing. */
	n = write(fd, big, sizeof(big));
	expect(n > 0 && (size_t)n < sizeof(big));
	n = write(fd, big, sizeof(big));
	expect(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	signal_peer();
}

/* ---- EINTR, SA_RESTART ---- */

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * SIGALRM in 100 ms, and with `repeat` every 100 ms until disarm_alarm():
 * a signal handled before the call sleeps (the process preempted that
 * long on a loaded machine, in the library's spin or before the system
 * call) interrupts nothing, on a plain socket as over TSSX, and a call
 * that must fail with EINTR would then wait for its peer, which waits
 * for it; a later signal finds it asleep.  A call that restarts goes on
 * either way and takes one: a signal while a write is under way would
 * end it early with the count so far, as the kernel does.
 */
static void arm_alarm(int flags, bool repeat)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = flags };
	struct timeval every = { .tv_usec = repeat ? 100 * 1000 : 0 };
	struct itimerval it = { .it_interval = every, .it_value = { .tv_usec = 100 * 1000 } };

	sigemptyset(&sa.sa_mask);
	expect(sigaction(SIGALRM, &sa, NULL) == 0);
	expect(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

/* Before anything that may block without SA_RESTART. */
static void disarm_alarm(void)
{
	struct itimerval off = { 0 };

	expect(setitimer(ITIMER_REAL, &off, NULL) == 0);
}

static void eintr_client(int fd)
{
	wait_byte(fd);
	usleep(300 * 1000); /* the server's restarted read outlives alarms */
	send_all(fd, "x", 1);
	wait_byte(fd);
}

static void eintr_server(int fd)
{
	char c;

	arm_alarm(0, true);
	expect(read(fd, &c, 1) < 0 && errno == EINTR);
	arm_alarm(SA_RESTART, false);
	send_all(fd, "+", 1);
	expect(read(fd, &c, 1) == 1 && c == 'x');
	disarm_alarm();
	send_all(fd, "+", 1);
}

/* ---- handlers: what sigaction(), signal() and siginterrupt() read back
 * and run, as glibc's own (the library wraps every handler, shims/signal.c) */

static _Atomic int handled_plain, handled_info, handled_code;

static void count_plain(int sig)
{
	atomic_fetch_add(&handled_plain, sig);
}

static void count_info(int sig, siginfo_t *info, void *context)
{
	(void)context;
	atomic_fetch_add(&handled_info, sig);
	atomic_store(&handled_code, info->si_signo == sig ? info->si_code : -1);
}

static struct sigaction action_of(int sig)
{
	struct sigaction now;

	expect(sigaction(sig, NULL, &now) == 0);
	return now;
}

/* siginterrupt() is obsolete, and still in programs. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void handlers_server(int fd)
{
	struct sigaction plain = { .sa_handler = count_plain, .sa_flags = SA_RESTART | SA_NODEFER };
	struct sigaction info = { .sa_sigaction = count_info, .sa_flags = SA_SIGINFO };
	struct sigaction once = { .sa_handler = count_plain, .sa_flags = SA_RESETHAND };
	struct sigaction ignore = { .sa_handler = SIG_IGN }, old, now;
	const int kept = SA_SIGINFO | SA_RESTART | SA_NODEFER | SA_RESETHAND;

	wait_byte(fd);
	sigemptyset(&plain.sa_mask);
	sigaddset(&plain.sa_mask, SIGUSR2);
	sigemptyset(&info.sa_mask);
	sigemptyset(&once.sa_mask);
	sigemptyset(&ignore.sa_mask);
	/* The program's handler, flags and mask read back; it runs. */
	expect(sigaction(SIGUSR1, &plain, NULL) == 0);
	now = action_of(SIGUSR1);
	expect(now.sa_handler == count_plain && (now.sa_flags & kept) == (SA_RESTART | SA_NODEFER));
	expect(sigismember(&now.sa_mask, SIGUSR2) == 1);
	expect(raise(SIGUSR1) == 0 && atomic_load(&handled_plain) == SIGUSR1);
	/* SA_SIGINFO: the handler gets its siginfo; the old action is the
	 * program's. */
	expect(sigaction(SIGUSR1, &info, &old) == 0);
	expect(old.sa_handler == count_plain && (old.sa_flags & kept) == (SA_RESTART | SA_NODEFER));
	expect(action_of(SIGUSR1).sa_sigaction == count_info && (action_of(SIGUSR1).sa_flags & kept) == SA_SIGINFO);
	expect(raise(SIGUSR1) == 0 && atomic_load(&handled_info) == SIGUSR1 && atomic_load(&handled_code) == SI_TKILL);
	/* signal(): the old handler back, BSD semantics, siginterrupt()'s
	 * flag kept for later signal() calls. */
	expect(signal(SIGUSR1, count_plain) == info.sa_handler); /* the same storage as sa_sigaction */
	expect((action_of(SIGUSR1).sa_flags & kept) == SA_RESTART);
	expect(siginterrupt(SIGUSR1, 1) == 0 && !(action_of(SIGUSR1).sa_flags & SA_RESTART));
	expect(signal(SIGUSR1, count_plain) == count_plain && !(action_of(SIGUSR1).sa_flags & SA_RESTART));
	expect(siginterrupt(SIGUSR1, 0) == 0 && (action_of(SIGUSR1).sa_flags & SA_RESTART));
	expect(action_of(SIGUSR1).sa_handler == count_plain);
	/* SA_RESETHAND: the default once it ran. */
	expect(sigaction(SIGUSR2, &once, NULL) == 0);
	expect(raise(SIGUSR2) == 0 && atomic_load(&handled_plain) == SIGUSR1 + SIGUSR2);
	expect(action_of(SIGUSR2).sa_handler == SIG_DFL);
	/* SIG_IGN as it is; the handler it replaced read back. */
	expect(sigaction(SIGUSR1, &ignore, &old) == 0 && old.sa_handler == count_plain);
	expect(action_of(SIGUSR1).sa_handler == SIG_IGN && raise(SIGUSR1) == 0);
	expect(atomic_load(&handled_plain) == SIGUSR1 + SIGUSR2);
	/* What the kernel refuses, refused. */
	expect(sigaction(SIGKILL, &plain, NULL) < 0 && errno == EINVAL);
	expect(signal(SIGSTOP, count_plain) == SIG_ERR && errno == EINVAL);
	expect(signal(0, count_plain) == SIG_ERR && errno == EINVAL);
	signal_peer();
}
#pragma GCC diagnostic pop

static void handlers_client(int fd)
{
	send_all(fd, "r", 1);
	wait_peer();
}

/* ---- shutdown each way, EPIPE ---- */

static void shutdown_client(int fd)
{
	char buf[8];

	send_all(fd, "abc", 3);
	expect(shutdown(fd, SHUT_WR) == 0);
	expect(send(fd, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE);
	expect(recv(fd, buf, 3, MSG_WAITALL) == 3 && !memcmp(buf, "xyz", 3));
	expect(read(fd, buf, 1) == 0);
}

static void shutdown_server(int fd)
{
	char buf[8];

	expect(recv(fd, buf, 3, MSG_WAITALL) == 3 && !memcmp(buf, "abc", 3));
	expect(read(fd, buf, 1) == 0);
	send_all(fd, "xyz", 3);
	expect(shutdown(fd, SHUT_WR) == 0);
}

/* After the peer's shutdown(SHUT_RD), writes fail with EPIPE (Linux). */
static void shutrd_client(int fd)
{
	wait_byte(fd);
	expect(send(fd, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE);
}

static void shutrd_server(int fd)
{
	char c;

	expect(shutdown(fd, SHUT_RD) == 0);
	send_all(fd, "+", 1);
	expect(read(fd, &c, 1) == 0);
}

/* A copy (dup) of an epoll fd reports what the original would, also
 * after the original is closed. */
static void epolldup_client(int fd)
{
	wait_peer();
	send_all(fd, "x", 1);
	wait_byte(fd);
}

static void epolldup_server(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 }, out = { 0 };
	int epfd = epoll_create1(EPOLL_CLOEXEC), copy;
	char c;

	expect(epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0);
	copy = dup(epfd);
	expect(copy >= 0 && close(epfd) == 0);
	signal_peer();
	/* The timeout only guards against a hang. */
	expect(epoll_wait(copy, &out, 1, 10000) == 1 && out.data.u64 == 42 && (out.events & EPOLLIN));
	expect(read(fd, &c, 1) == 1 && c == 'x');
	send_all(fd, "+", 1);
	close(copy);
}

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static void epipe_client(int fd)
{
	char buf[4096] = { 0 };
	ssize_t n;

	signal(SIGPIPE, on_sigpipe);
	wait_byte(fd);
	expect(read(fd, buf, 1) == 0); /* the server closed */
	while ((n = write(fd, buf, sizeof(buf))) > 0)
		;
	expect(n < 0 && errno == EPIPE && sigpipes == 1);
	expect(send(fd, buf, 1, MSG_NOSIGNAL) < 0 && errno == EPIPE && sigpipes == 1);
}

static void epipe_server(int fd)
{
	send_all(fd, "+", 1);
}

/* ---- fork: both processes write, EOF after the last close ---- */

static void write_tagged(int fd, uint8_t tag, size_t bytes)
{
	uint8_t buf[1000];

	memset(buf, tag, sizeof(buf));
	for (size_t done = 0; done < bytes; done += sizeof(buf))
		send_all(fd, buf, sizeof(buf));
}

static void fork_client(int fd)
{
	pid_t child = fork();

	expect(child >= 0);
	if (child == 0) {
		write_tagged(fd, 'B', 2000000);
		usleep(200 * 1000); /* the parent has closed: the server must wait */
		write_tagged(fd, 'C', 1000);
		close(fd);
		_exit(0);
	}
	write_tagged(fd, 'A', 2000000);
	close(fd);
	int status;
	expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void fork_server(int fd)
{
	uint64_t counts[256] = { 0 };

	expect(drain_counting(fd, counts) == 4001000);
	expect(counts['A'] == 2000000 && counts['B'] == 2000000 && counts['C'] == 1000);
}

/* ---- fork: both processes read, each byte goes to one of them ---- */

#define FORKREAD_TAGS 16
#define FORKREAD_UNIT 30000

/* FORKREAD_TAGS tags, the i-th (i + 1) units long. */
static void write_tag_run(int fd, size_t unit)
{
	for (int i = 0; i < FORKREAD_TAGS; i++)
		write_tagged(fd, (uint8_t)('a' + i), (size_t)(i + 1) * unit);
}

static void forkread_client(int fd)
{
	write_tag_run(fd, FORKREAD_UNIT);
	close(fd);
}

/* Reads until EOF, counting bytes per value; any error fails. */
static void drain_strictly(int fd, uint64_t counts[256])
{
	uint8_t buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		expect(n > 0);
		for (ssize_t i = 0; i < n; i++)
			counts[buf[i]]++;
	}
}

/* Two readers' counts of a write_tag_run(unit): together they read every
 * byte exactly once. */
static void check_read_once(const char *name, const uint64_t counts[256], const uint64_t theirs[256], size_t unit)
{
	uint64_t total = 0;

	for (int c = 0; c < 256; c++) {
		uint64_t want = c >= 'a' && c < 'a' + FORKREAD_TAGS ? (uint64_t)(c - 'a' + 1) * unit : 0;

		if (counts[c] + theirs[c] != want)
			die("%s: %lu + %lu bytes of '%c', want %lu", name, (unsigned long)counts[c],
			    (unsigned long)theirs[c], c, (unsigned long)want);
		total += counts[c] + theirs[c];
	}
	fprintf(stderr, "%s: %lu bytes\n", name, (unsigned long)total);
}

/* The server and a forked child drain the connection at once; together
 * they must have read every byte the client wrote exactly once. */
static void forkread_server(int fd)
{
	uint64_t counts[256] = { 0 }, theirs[256] = { 0 };
	int report[2], status;
	pid_t child;

	expect(pipe(report) == 0);
	child = fork();
	expect(child >= 0);
	if (child == 0) {
		close(report[0]);
		drain_strictly(fd, counts);
		expect(write(report[1], counts, sizeof(counts)) == (ssize_t)sizeof(counts));
		_exit(0);
	}
	close(report[1]);
	drain_strictly(fd, counts);
	expect(read(report[0], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs));
	expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(report[0]);
	check_read_once("forkread", counts, theirs, FORKREAD_UNIT);
}

/*
 * forklate: the same with a server that forks while its connection's
 * hello is still on the way.  Preloaded, the client is a TSSX client of
 * its own, around the library (system calls, the core's ring): it sends
 * its hello 200 ms after its connect, then the stream through the ring.
 */
#define LATE_HELLO_MS 200
#define LATE_RING (64u * 1024)

static void late_doorbell(int fd)
{
	(void)!send(fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The bells a reader's flag asks for (tssx/ring.h): the socket's byte,
 * the futex bell on the ring's word (what the library's sleeping reads
 * wait on, conn/bell.c). */
static void late_bells(struct tssx_ring *ring, int fd, uint32_t bells)
{
	if (bells & TSSX_BELL_FUTEX) {
		atomic_fetch_add(tssx_ring_reader_bell(ring), 1);
		syscall(SYS_futex, tssx_ring_reader_bell(ring), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
	if (bells & TSSX_BELL_SOCKET)
		late_doorbell(fd);
}

static void late_ring_send(struct tssx_ring *ring, int fd, const uint8_t *p, size_t len)
{
	while (len) {
		struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
		ssize_t n = tssx_ring_write(ring, &iov, 1);
		char bells[64];

		expect(n >= 0);
		if (n > 0)
			late_bells(ring, fd, tssx_ring_take_reader_wakeup(ring));
		if (n == 0 && tssx_ring_arm_writer(ring, TSSX_BELL_SOCKET) == 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };

			expect(poll(&pfd, 1, 100) >= 0);
			while (recv(fd, bells, sizeof(bells), MSG_DONTWAIT) > 0)
				;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void forklate_client(int unused)
{
	struct sockaddr_un self = { .sun_family = AF_UNIX }, server = { .sun_family = AF_UNIX };
	struct tssx_segment seg;
	struct tssx_hello hello;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = &hello, .iov_len = sizeof(hello) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	uint8_t buf[1000];
	int fd, memfd, n;

	(void)unused;
	if (!getenv("LD_PRELOAD")) {
		forkread_client(tool_connect(sock_path));
		return;
	}
	/* System calls: the library's socket(), bind() and connect() would
	 * make this connection its own. */
	fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	expect(fd >= 0);
	n = snprintf(self.sun_path + 1, sizeof(self.sun_path) - 1, "tssx-v1.probe-late.%d", (int)getpid());
	expect(syscall(SYS_bind, fd, &self, offsetof(struct sockaddr_un, sun_path) + 1 + n) == 0);
	snprintf(server.sun_path, sizeof(server.sun_path), "%s", sock_path);
	expect(syscall(SYS_connect, fd, &server, sizeof(server)) == 0);
	usleep(LATE_HELLO_MS * 1000);
	expect(tssx_segment_create(&seg, LATE_RING, LATE_RING, &memfd, &hello) == 0);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &memfd, sizeof(int));
	expect(sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)sizeof(hello));
	close(memfd);
	for (int i = 0; i < FORKREAD_TAGS; i++) {
		memset(buf, 'a' + i, sizeof(buf));
		for (size_t done = 0; done < (size_t)(i + 1) * FORKREAD_UNIT; done += sizeof(buf))
			late_ring_send(&seg.ring[TSSX_C2S], fd, buf, sizeof(buf));
	}
	tssx_ring_shut_write(&seg.ring[TSSX_C2S]);
	late_bells(&seg.ring[TSSX_C2S], fd, TSSX_BELLS);
	close(fd);
	tssx_segment_detach(&seg);
}

/* ---- select() and poll() with a closed fd beside a connection ---- */

static void badfd_client(int fd)
{
	send_all(fd, "h", 1); /* the server's handshake completes on it */
	wait_byte(fd);
	send_all(fd, "d", 1); /* the connection is readable from here */
	wait_byte(fd);
}

/* The kernel's select() fails with EBADF and leaves the sets alone; poll()
 * reports POLLNVAL for that fd and the connection's readiness.  With the
 * connection idle (a poll that would sleep) and readable.  The fd closed
 * is the lowest free number when the process first waits: the library's
 * first spin opened an fd of its own, which took it (select found it
 * readable).  The handshake is complete before, without a wait: the
 * memfd it receives takes the lowest free number too, and kept for exec
 * it would answer for the closed number as well. */
static void badfd_server(int fd)
{
	struct timespec brief = { .tv_nsec = 50 * 1000 * 1000 };
	int pipefd[2], closed, avail = 0;
	char c;

	while (ioctl(fd, FIONREAD, &avail) == 0 && avail == 0)
		usleep(1000);
	expect(read(fd, &c, 1) == 1 && c == 'h');
	expect(pipe(pipefd) == 0);
	closed = pipefd[0] < pipefd[1] ? pipefd[0] : pipefd[1];
	close(pipefd[0]);
	close(pipefd[1]);
	for (int round = 0; round < 2; round++) {
		struct pollfd pfds[2] = { { .fd = fd, .events = POLLIN }, { .fd = closed, .events = POLLIN } };
		struct timeval tv = { .tv_sec = 5 };
		fd_set readable;

		FD_ZERO(&readable);
		FD_SET(fd, &readable);
		FD_SET(closed, &readable);
		errno = 0;
		expect(select((fd > closed ? fd : closed) + 1, &readable, NULL, NULL, &tv) < 0 && errno == EBADF);
		expect(FD_ISSET(fd, &readable) && FD_ISSET(closed, &readable));
		FD_ZERO(&readable);
		FD_SET(fd, &readable);
		FD_SET(closed, &readable);
		errno = 0;
		expect(pselect((fd > closed ? fd : closed) + 1, &readable, NULL, NULL, &brief, NULL) < 0 && errno == EBADF);
		expect(FD_ISSET(fd, &readable) && FD_ISSET(closed, &readable));
		expect(poll(pfds, 2, 5000) == (round ? 2 : 1));
		expect(pfds[0].revents == (round ? POLLIN : 0) && pfds[1].revents == POLLNVAL);
		if (round == 0) {
			send_all(fd, "+", 1);
			/* Until the client's byte is there. */
			expect(recv(fd, &c, 1, MSG_PEEK) == 1);
		}
	}
	send_all(fd, "+", 1);
}

/* ---- threads writing one connection, dup ---- */

struct tagged_writer {
	int fd;
	uint8_t tag;
};

static void *tagged_thread(void *arg)
{
	struct tagged_writer *w = arg;

	write_tagged(w->fd, w->tag, 1000000);
	return NULL;
}

static void threads_client(int fd)
{
	struct tagged_writer w[4];
	pthread_t t[4];
	int copy = dup(fd);

	expect(copy >= 0);
	for (int i = 0; i < 4; i++) {
		/* Half of them through a duplicate of the fd. */
		w[i] = (struct tagged_writer){ .fd = i % 2 ? copy : fd, .tag = (uint8_t)('a' + i) };
		pthread_create(&t[i], NULL, tagged_thread, &w[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	close(fd);
	/* The duplicate keeps the connection; dup2 moves it once more. */
	expect(dup2(copy, 100) == 100);
	close(copy);
	write_tagged(100, 'z', 1000);
	close(100);
}

static void threads_server(int fd)
{
	uint64_t counts[256] = { 0 };

	expect(drain_counting(fd, counts) == 4001000);
	for (int i = 0; i < 4; i++)
		expect(counts['a' + i] == 1000000);
	expect(counts['z'] == 1000);
}

/* ---- non-blocking: EAGAIN, partial writes ---- */

static void nonblock_client(int fd)
{
	static char big[4 << 20];
	char c;
	ssize_t n;

	set_nonblocking(fd);
	expect(read(fd, &c, 1) < 0 && errno == EAGAIN);
	expect(recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
	/* Zero bytes from an empty connection: EAGAIN from recv(), not an
	 * EOF; read(2) of nothing returns 0 without asking the socket. */
	expect(recv(fd, &c, 0, MSG_DONTWAIT) < 0 && errno == EAGAIN);
	expect(read(fd, &c, 0) == 0);
	n = write(fd, big, sizeof(big));
	expect(n > 0 && (size_t)n < sizeof(big)); /* what fit */
	expect(write(fd, big, sizeof(big)) < 0 && errno == EAGAIN);
	signal_peer();
	close(fd);
}

static void nonblock_server(int fd)
{
	uint64_t counts[256] = { 0 };

	wait_peer(); /* reading earlier would make room for the second write */

	expect(drain_counting(fd, counts) == counts[0] && counts[0] > 0);
}

/* ---- addresses as without TSSX ---- */

static void addresses_client(int fd)
{
	struct sockaddr_un addr;
	socklen_t len = sizeof(addr);

	expect(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
	expect(len == sizeof(sa_family_t) && addr.sun_family == AF_UNIX);
	len = sizeof(addr);
	expect(getpeername(fd, (struct sockaddr *)&addr, &len) == 0);
	expect(addr.sun_family == AF_UNIX && !strcmp(addr.sun_path, sock_path));
	wait_byte(fd);
}

static void addresses_server(int fd)
{
	struct sockaddr_un addr;
	socklen_t len = sizeof(addr);

	expect(getpeername(fd, (struct sockaddr *)&addr, &len) == 0);
	expect(len == sizeof(sa_family_t) && addr.sun_family == AF_UNIX);
	send_all(fd, "+", 1);
}

/* ---- ancillary data dropped by a read without room for it ---- */

static void cmsg_client(int fd)
{
	char x = 'x';

	expect(send_with_fd(fd, &x, 1, STDIN_FILENO) == 1);
	send_all(fd, "passed!", 7);
}

static void cmsg_server(int fd)
{
	char buf[16] = { 0 };
	struct iovec iov = { .iov_base = buf, .iov_len = 8 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	/* A read stops after the bytes that carried fds, whatever it asked
	 * for; without a control buffer the fds are dropped, MSG_CTRUNC. */
	expect(recvmsg(fd, &msg, MSG_WAITALL) == 1 && (msg.msg_flags & MSG_CTRUNC) && buf[0] == 'x');
	for (size_t done = 1; done < 8;) {
		ssize_t n = recv(fd, buf + done, 8 - done, 0);

		expect(n > 0);
		done += (size_t)n;
	}
	expect(!strcmp(buf, "xpassed!"));
}

/* ---- sendfile and splice ---- */

static void sendfile_client(int fd)
{
	char path[] = "/tmp/tssx-probe.XXXXXX";
	int file = mkstemp(path);
	char data[100000];
	off_t offset = 1000;

	expect(file >= 0);
	unlink(path);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i % 251);
	expect(write(file, data, sizeof(data)) == sizeof(data));
	expect(sendfile(fd, file, &offset, sizeof(data) - 1000) == sizeof(data) - 1000);
	expect(offset == sizeof(data));
	expect(lseek(file, 0, SEEK_SET) == 0);
	expect(sendfile(fd, file, NULL, 1000) == 1000);
	close(file);
	wait_byte(fd);
}

static void sendfile_server(int fd)
{
	static char got[100000];
	int pipefd[2];
	size_t done = 0;

	expect(pipe(pipefd) == 0);
	while (done < 99000) {
		ssize_t n = splice(fd, NULL, pipefd[1], NULL, 99000 - done, 0);

		expect(n > 0);
		expect(read(pipefd[0], got + done, (size_t)n) == n);
		done += (size_t)n;
	}
	expect(recv(fd, got + done, 1000, MSG_WAITALL) == 1000);
	for (size_t i = 0; i < 99000; i++)
		expect(got[i] == (char)((i + 1000) % 251));
	for (size_t i = 0; i < 1000; i++)
		expect(got[99000 + i] == (char)(i % 251));
	send_all(fd, "+", 1);
}

/* ---- close_range, and a vfork() child that closes what it inherited ---- */

static void closing_client(int fd)
{
	struct epoll_event event = { .events = EPOLLIN, .data.u64 = 42 };
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	pid_t child;
	int status;

	expect(epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0);
	expect(dup2(fd, 300) == 300);
	expect(close_range(250, ~0u, 0) == 0); /* the duplicate only */
	/* A vfork() child shares our memory: its closes must leave our
	 * connection and our epoll set alone. */
	child = vfork();
	if (child == 0) {
		close(epfd);
		close(fd);
		close_range(3, ~0u, 0);
		_exit(0);
	}
	expect(child > 0 && waitpid(child, &status, 0) == child);
	send_all(fd, "abc", 3);
	memset(&event, 0, sizeof(event));
	expect(epoll_wait(epfd, &event, 1, -1) == 1 && event.data.u64 == 42 && (event.events & EPOLLIN));
	wait_byte(fd);
	close(epfd);
	expect(close_range((unsigned)fd, (unsigned)fd, 0) == 0);
	/* The number is free again, and nothing of the connection is left. */
	expect(dup2(STDERR_FILENO, fd) == fd);
	expect(write(fd, "", 0) == 0);
}

static void closing_server(int fd)
{
	char buf[8];

	expect(recv(fd, buf, 3, MSG_WAITALL) == 3 && !memcmp(buf, "abc", 3));
	send_all(fd, "+", 1);
	expect(read(fd, buf, 1) == 0);
}

/* ---- readv/writev, recvmmsg/sendmmsg ---- */

static void vectors_client(int fd)
{
	struct iovec three[3] = { { "ab", 2 }, { "cd", 2 }, { "ef", 2 } };
	struct iovec two[2] = { { "gh", 2 }, { "ij", 2 } };
	struct mmsghdr msgs[2] = {
		{ .msg_hdr = { .msg_iov = &two[0], .msg_iovlen = 1 } },
		{ .msg_hdr = { .msg_iov = &two[1], .msg_iovlen = 1 } },
	};

	expect(writev(fd, three, 3) == 6);
	expect(sendmmsg(fd, msgs, 2, 0) == 2 && msgs[0].msg_len == 2 && msgs[1].msg_len == 2);
	signal_peer();
	wait_byte(fd);
}

static void vectors_server(int fd)
{
	char a[3], b[3], c[2], d[2];
	struct iovec halves[2] = { { a, 3 }, { b, 3 } };
	struct iovec parts[2] = { { c, 2 }, { d, 2 } };
	struct mmsghdr msgs[2] = {
		{ .msg_hdr = { .msg_iov = &parts[0], .msg_iovlen = 1 } },
		{ .msg_hdr = { .msg_iov = &parts[1], .msg_iovlen = 1 } },
	};

	wait_peer(); /* all ten bytes are in */
	expect(readv(fd, halves, 2) == 6 && !memcmp(a, "abc", 3) && !memcmp(b, "def", 3));
	expect(recvmmsg(fd, msgs, 2, MSG_WAITFORONE, NULL) == 2);
	expect(msgs[0].msg_len == 2 && msgs[1].msg_len == 2 && !memcmp(c, "gh", 2) && !memcmp(d, "ij", 2));
	send_all(fd, "+", 1);
}

/* ---- a blocked reader uses no CPU after its spin ----
 *
 * The client blocks in read() while the server waits BLOCKED_MS before it
 * writes; the client's thread must have used less than BLOCKED_CPU_MS of
 * CPU in that read (a spin of 20 us, the wake-up): a reader that kept
 * spinning would use the whole wait on an idle machine, and still several
 * times the bound on one shared with a dozen busy processes. */
#define BLOCKED_MS 500
#define BLOCKED_CPU_MS 10

static uint64_t thread_cpu_us(void)
{
	struct rusage ru;

	expect(getrusage(RUSAGE_THREAD, &ru) == 0);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void blocked_client(int fd)
{
	uint64_t before;
	char c;

	send_all(fd, "?", 1);
	before = thread_cpu_us();
	expect(read(fd, &c, 1) == 1 && c == '!');
	if (thread_cpu_us() - before >= BLOCKED_CPU_MS * 1000u)
		die("blocked: the reader used %llu us of CPU in a %d ms read",
		    (unsigned long long)(thread_cpu_us() - before), BLOCKED_MS);
}

static void blocked_server(int fd)
{
	wait_byte(fd);
	usleep(BLOCKED_MS * 1000);
	send_all(fd, "!", 1);
}

/* ---- an edge-triggered epoll thread wakes the others: no lost wake-up ----
 *
 * The server runs an event loop of three threads on one non-blocking fd:
 * one sleeps in edge-triggered epoll_wait and tells the others what it
 * saw, one receives and one sends until EAGAIN and then waits for the
 * epoll thread's next event.  The client streams both ways with blocking
 * calls, in messages of 1, 2 and 4 times the ring size.  A doorbell that a
 * non-blocking call consumed before the epoll thread saw it would leave
 * both processes asleep: a wait for an event that takes WAKEUP_STALL_S
 * fails the probe. */
#define WAKEUP_MESSAGES 8
#define WAKEUP_STALL_S 10

struct wakeup_loop {
	int fd;
	int stop; /* an eventfd: the only other thing the epoll thread watches */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	uint64_t in_events, out_events; /* EPOLLIN / EPOLLOUT reports */
};

static size_t wakeup_ring_size(void)
{
	const char *size = getenv("TSSX_RING_SIZE");

	return size ? (size_t)parse_size(size) : 1u << 20;
}

static uint64_t wakeup_total(void)
{
	return (uint64_t)WAKEUP_MESSAGES * wakeup_ring_size() * (1 + 2 + 4);
}

static void *wakeup_epoll_thread(void *arg)
{
	struct wakeup_loop *loop = arg;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
	struct epoll_event stop_ev = { .events = EPOLLIN, .data.fd = -1 };
	int epfd = epoll_create1(0);

	expect(epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, loop->fd, &ev) == 0);
	expect(epoll_ctl(epfd, EPOLL_CTL_ADD, loop->stop, &stop_ev) == 0);
	for (;;) {
		/* No timeout: a timer would hide a lost wake-up. */
		int n = epoll_wait(epfd, &ev, 1, -1);

		expect(n >= 0 || errno == EINTR);
		if (n > 0 && ev.data.fd == -1)
			break;
		pthread_mutex_lock(&loop->lock);
		if (n > 0) {
			loop->in_events += !!(ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR));
			loop->out_events += !!(ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR));
			pthread_cond_broadcast(&loop->changed);
		}
		pthread_mutex_unlock(&loop->lock);
	}
	close(epfd);
	return NULL;
}

static uint64_t wakeup_events(struct wakeup_loop *loop, bool out)
{
	uint64_t n;

	pthread_mutex_lock(&loop->lock);
	n = out ? loop->out_events : loop->in_events;
	pthread_mutex_unlock(&loop->lock);
	return n;
}

/* After EAGAIN: until the epoll thread reported the event again since
 * `seen`, the count before the calls that ended in EAGAIN. */
static void wakeup_wait(struct wakeup_loop *loop, bool out, uint64_t seen)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAKEUP_STALL_S;
	pthread_mutex_lock(&loop->lock);
	while ((out ? loop->out_events : loop->in_events) == seen)
		if (pthread_cond_timedwait(&loop->changed, &loop->lock, &until) == ETIMEDOUT)
			die("wakeup: stalled, no %s event from epoll for %d s (lost wake-up)",
			    out ? "EPOLLOUT" : "EPOLLIN", WAKEUP_STALL_S);
	pthread_mutex_unlock(&loop->lock);
}

static void *wakeup_receiver(void *arg)
{
	struct wakeup_loop *loop = arg;
	struct stream expected = { .state = STREAM_SEED };
	static uint8_t buf[1 << 16], want[1 << 16];
	uint64_t total = wakeup_total(), got = 0;

	while (got < total) {
		uint64_t seen = wakeup_events(loop, false);
		ssize_t n;

		/* Not past the stream: the client's last byte follows it. */
		while (got < total && (n = recv(loop->fd, buf, total - got < sizeof(buf) ? total - got : sizeof(buf), 0)) > 0) {
			stream_fill(&expected, want, (size_t)n);
			expect(memcmp(buf, want, (size_t)n) == 0);
			got += (uint64_t)n;
		}
		expect(got == total || (n < 0 && errno == EAGAIN));
		if (got < total)
			wakeup_wait(loop, false, seen);
	}
	return NULL;
}

static void *wakeup_sender(void *arg)
{
	struct wakeup_loop *loop = arg;
	struct stream stream = { .state = STREAM_SEED ^ 1 };
	size_t ring = wakeup_ring_size();
	uint8_t *msg = xmalloc(4 * ring);

	for (size_t times = 1; times <= 4; times *= 2)
		for (int m = 0; m < WAKEUP_MESSAGES; m++) {
			size_t len = times * ring, done = 0;

			stream_fill(&stream, msg, len);
			while (done < len) {
				uint64_t seen = wakeup_events(loop, true);
				ssize_t n;

				while (done < len && (n = send(loop->fd, msg + done, len - done, MSG_NOSIGNAL)) > 0)
					done += (size_t)n;
				if (done < len) {
					expect(errno == EAGAIN);
					wakeup_wait(loop, true, seen);
				}
			}
		}
	free(msg);
	return NULL;
}

static void wakeup_server(int fd)
{
	struct wakeup_loop loop = { .fd = fd, .stop = eventfd(0, 0), .lock = PTHREAD_MUTEX_INITIALIZER,
				    .changed = PTHREAD_COND_INITIALIZER };
	pthread_t epoll_thread, receiver, sender;

	set_nonblocking(fd);
	pthread_create(&epoll_thread, NULL, wakeup_epoll_thread, &loop);
	pthread_create(&receiver, NULL, wakeup_receiver, &loop);
	pthread_create(&sender, NULL, wakeup_sender, &loop);
	pthread_join(receiver, NULL);
	pthread_join(sender, NULL);
	expect(eventfd_write(loop.stop, 1) == 0);
	pthread_join(epoll_thread, NULL);
	close(loop.stop);
	expect(fcntl(fd, F_SETFL, 0) == 0);
	wait_byte(fd); /* the client has all of it */
}

static void *wakeup_client_sender(void *arg)
{
	int fd = *(int *)arg;
	struct stream stream = { .state = STREAM_SEED };
	uint8_t *buf = xmalloc(1 << 16);

	for (uint64_t left = wakeup_total(); left;) {
		size_t len = left < 4096 ? (size_t)left : 4096;

		stream_fill(&stream, buf, len);
		send_all(fd, buf, len);
		left -= len;
	}
	free(buf);
	return NULL;
}

static void wakeup_client(int fd)
{
	struct stream expected = { .state = STREAM_SEED ^ 1 };
	static uint8_t buf[1 << 16], want[1 << 16];
	pthread_t sender;

	pthread_create(&sender, NULL, wakeup_client_sender, &fd);
	for (uint64_t left = wakeup_total(); left;) {
		ssize_t n = read(fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));

		expect(n > 0);
		stream_fill(&expected, want, (size_t)n);
		expect(memcmp(buf, want, (size_t)n) == 0);
		left -= (uint64_t)n;
	}
	pthread_join(sender, NULL);
	send_all(fd, "+", 1);
}

/* ---- writes from several threads and a forked child stay whole ---- */

#define BLOCK 10000
#define BLOCKS 300
#define WRITERS 4

/* One write(2) per block, each block one tag throughout. */
static void *write_blocks(void *arg)
{
	struct tagged_writer *w = arg;
	static _Thread_local uint8_t block[BLOCK];

	memset(block, w->tag, sizeof(block));
	for (int i = 0; i < BLOCKS; i++)
		expect(write(w->fd, block, sizeof(block)) == BLOCK);
	return NULL;
}

static void whole_client(int fd)
{
	struct tagged_writer w[WRITERS];
	pthread_t t[WRITERS];
	pid_t child = fork();
	int status;

	expect(child >= 0);
	if (child == 0) {
		struct tagged_writer forked = { .fd = fd, .tag = 'z' };

		write_blocks(&forked);
		_exit(0);
	}
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct tagged_writer){ .fd = fd, .tag = (uint8_t)('a' + i) };
		expect(pthread_create(&t[i], NULL, write_blocks, &w[i]) == 0);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A block of 10,000 bytes fits the kernel's send buffer: the kernel keeps
 * every such write whole, and so must the rings. */
static void whole_server(int fd)
{
	static uint8_t block[BLOCK];

	for (int i = 0; i < (WRITERS + 1) * BLOCKS; i++) {
		expect(recv(fd, block, sizeof(block), MSG_WAITALL) == BLOCK);
		for (size_t j = 1; j < sizeof(block); j++)
			expect(block[j] == block[0]);
	}
	expect(read(fd, block, 1) == 0);
}

/* Non-blocking writes of TAG until the connection holds no more (the
 * peer reads nothing meanwhile); returns the bytes written. */
static uint64_t fill_until_full(int fd, char tag)
{
	char *block = xmalloc(65536);
	uint64_t filled = 0;
	ssize_t n;

	memset(block, tag, 65536);
	while ((n = send(fd, block, 65536, MSG_DONTWAIT | MSG_NOSIGNAL)) > 0)
		filled += (uint64_t)n;
	expect(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	free(block);
	return filled;
}

/* ---- close(), dup2() or shutdown() over an fd another thread is
 * blocked on in read, write (for room), poll, select or epoll_wait ---- */

enum waiter { WAIT_READ, WAIT_WRITE, WAIT_POLL, WAIT_SELECT, WAIT_EPOLL };
enum under { UNDER_CLOSE, UNDER_DUP2, UNDER_SHUTRD, UNDER_SHUTRDWR };

static const char *const waiter_names[] = { "read", "write", "poll", "select", "epoll" };
static const char *const under_names[] = { "close", "dup2", "shutrd", "shutrdwr" };
/* The case "under-WAITER-ACTION", parsed by main() before the fork. */
static enum waiter case_waiter;
static enum under case_under;

/* After its SHUT_RD the server still writes, more than a ring holds:
 * its writes wait for room. */
#define AFTER_SHUTRD_BYTES (3u << 20)
/* An epoll_wait whose fd was closed sleeps to its timeout, as the kernel's. */
#define UNDER_EPOLL_MS 500
/* The blocked write, into a full connection: more than a ring holds, so
 * that it waits for room again after its first wake-up. */
#define UNDER_WRITE_BYTES (3u << 20)

struct blocked {
	int fd, epfd;
	_Atomic pid_t tid;
	long ret;
	int err;
	unsigned events;
	char byte;
	bool signal_in_calloc; /* signal-WAITER-early */
	_Atomic bool done;
};

/*
 * signal-WAITER-early: a handler that runs in a system call the call makes
 * before it waits (here the allocation of a library's select()) ends the
 * call as one that runs in its wait does.  calloc() is the probe's own for
 * everything the process loads; armed in one thread, its next call
 * signals that thread from a system call, so the handler runs there.
 * Left out under AddressSanitizer, whose allocator the probe cannot wrap.
 */
static __thread bool calloc_signals;
static _Atomic unsigned calloc_signalled;

#ifndef __SANITIZE_ADDRESS__
void *__libc_calloc(size_t count, size_t size);

void *calloc(size_t count, size_t size)
{
	if (calloc_signals) {
		calloc_signals = false;
		atomic_fetch_add(&calloc_signalled, 1);
		syscall(SYS_tgkill, getpid(), gettid(), SIGALRM);
	}
	return __libc_calloc(count, size);
}
#endif

static void *blocked_call(void *arg)
{
	struct blocked *b = arg;
	struct pollfd pfd = { .fd = b->fd, .events = POLLIN | POLLRDHUP };
	struct epoll_event ev = { 0 };
	fd_set readable;
	/* Made before the id is out: from then on the thread is in its call
	 * (signal-WAITER-spin). */
	char *block = case_waiter == WAIT_WRITE ? xmalloc(UNDER_WRITE_BYTES) : NULL;

	if (block)
		memset(block, 'z', UNDER_WRITE_BYTES);
	atomic_store(&b->tid, gettid());
	calloc_signals = b->signal_in_calloc;
	switch (case_waiter) {
	case WAIT_READ:
		b->ret = read(b->fd, &b->byte, 1);
		break;
	case WAIT_WRITE:
		b->ret = write(b->fd, block, UNDER_WRITE_BYTES);
		break;
	case WAIT_POLL:
		b->ret = poll(&pfd, 1, -1);
		b->events = (unsigned)pfd.revents;
		break;
	case WAIT_SELECT:
		FD_ZERO(&readable);
		FD_SET(b->fd, &readable);
		b->ret = select(b->fd + 1, &readable, NULL, NULL, NULL);
		b->events = b->ret > 0 && FD_ISSET(b->fd, &readable);
		break;
	case WAIT_EPOLL:
		b->ret = epoll_wait(b->epfd, &ev, 1, UNDER_EPOLL_MS);
		b->events = ev.events;
		break;
	}
	b->err = b->ret < 0 ? errno : 0;
	free(block);
	atomic_store(&b->done, true);
	return NULL;
}

/* Until the thread sleeps in the kernel ('S' in its stat). */
static void wait_until_asleep(pid_t tid)
{
	char path[64], stat[256], *state;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid); /* a thread's or a process's */
	for (;;) {
		FILE *f = fopen(path, "r");

		expect(f && fgets(stat, sizeof(stat), f));
		fclose(f);
		state = strrchr(stat, ')');
		if (state && state[1] == ' ' && state[2] == 'S')
			return;
		usleep(1000);
	}
}

/*
 * What the kernel gives the blocked call.  A close() or dup2() does not
 * end it: the call keeps the file alive, the byte the client sends after
 * wakes it, and then a read gets the byte, a poll or select looks at the
 * fd again (poll: POLLNVAL when closed, readable for /dev/null; select:
 * readable either way, it checks fds only as it starts); epoll lost the
 * socket with its last fd and sleeps to its timeout.  A shutdown(SHUT_RD)
 * ends the call at once: EOF, readable; SHUT_RDWR adds the hang-up.
 * A write waiting for room goes on after a close, a dup2 or a SHUT_RD
 * (which concerns only what this end reads) and writes all its bytes as
 * the client drains; SHUT_RDWR ends it at once with EPIPE, nothing
 * written.
 */
static void check_blocked(const struct blocked *b)
{
	bool shut = case_under == UNDER_SHUTRD || case_under == UNDER_SHUTRDWR;
	unsigned hup = case_under == UNDER_SHUTRDWR ? POLLHUP : 0;

	fprintf(stderr, "under-%s-%s: ret %ld errno %d events %#x\n", waiter_names[case_waiter],
		under_names[case_under], b->ret, b->err, b->events);
	switch (case_waiter) {
	case WAIT_READ:
		expect(shut ? b->ret == 0 : b->ret == 1 && b->byte == 'x');
		break;
	case WAIT_WRITE:
		expect(hup ? b->ret < 0 && b->err == EPIPE : b->ret == (long)UNDER_WRITE_BYTES);
		break;
	case WAIT_POLL:
		expect(b->ret == 1);
		expect(b->events == (shut ? POLLIN | POLLRDHUP | hup : case_under == UNDER_CLOSE ? POLLNVAL : POLLIN));
		break;
	case WAIT_SELECT:
		expect(b->ret == 1 && b->events);
		break;
	case WAIT_EPOLL:
		expect(shut ? b->ret == 1 && b->events == (EPOLLIN | EPOLLRDHUP | hup) : b->ret == 0);
		break;
	}
}

/* The writer's case: what filled the connection, then the blocked
 * write's bytes unless SHUT_RDWR ended it, then EOF. */
static void under_write_client(int fd)
{
	uint64_t counts[256] = { 0 }, filled, total;
	uint64_t written = case_under == UNDER_SHUTRDWR ? 0 : UNDER_WRITE_BYTES;

	send_all(fd, "r", 1);
	expect(read(to_client[0], &filled, sizeof(filled)) == sizeof(filled));
	wait_peer();
	total = drain_counting(fd, counts);
	fprintf(stderr, "under-write-%s: client read %llu bytes, %llu filled, %llu written\n",
		under_names[case_under], (unsigned long long)total, (unsigned long long)counts['f'],
		(unsigned long long)counts['z']);
	expect(counts['f'] == filled && counts['z'] == written && total == filled + written);
}

static void under_client(int fd)
{
	uint64_t counts[256] = { 0 }, total;

	if (case_waiter == WAIT_WRITE) {
		under_write_client(fd);
		return;
	}
	send_all(fd, "r", 1); /* the handshake is over before the call blocks */
	wait_peer();
	(void)!send(fd, "x", 1, MSG_NOSIGNAL); /* EPIPE after the server's SHUT_RD */
	total = drain_counting(fd, counts);
	expect(total == (case_under == UNDER_SHUTRD ? AFTER_SHUTRD_BYTES : 0));
	expect(counts['s'] == total);
}

static void under_server(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct blocked b = { .fd = fd, .epfd = -1 };
	pthread_t thread;
	bool ends_alone;
	uint64_t filled;
	int devnull;

	/* Whether the action alone ends the call, before the client does
	 * anything (whose byte or drain would end it as well). */
	ends_alone = case_waiter == WAIT_WRITE ? case_under == UNDER_SHUTRDWR
					       : case_under == UNDER_SHUTRD || case_under == UNDER_SHUTRDWR;
	wait_byte(fd);
	if (case_waiter == WAIT_WRITE) {
		signal(SIGPIPE, SIG_IGN); /* the check is the EPIPE */
		filled = fill_until_full(fd, 'f');
		expect(write(to_client[1], &filled, sizeof(filled)) == sizeof(filled));
	}
	if (case_waiter == WAIT_EPOLL) {
		b.epfd = epoll_create1(EPOLL_CLOEXEC);
		expect(b.epfd >= 0 && epoll_ctl(b.epfd, EPOLL_CTL_ADD, fd, &ev) == 0);
	}
	expect(pthread_create(&thread, NULL, blocked_call, &b) == 0);
	while (!atomic_load(&b.tid))
		usleep(1000);
	wait_until_asleep(atomic_load(&b.tid));
	switch (case_under) {
	case UNDER_CLOSE:
		expect(close(fd) == 0);
		break;
	case UNDER_DUP2:
		devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		expect(devnull >= 0 && dup2(devnull, fd) == fd && close(devnull) == 0);
		break;
	case UNDER_SHUTRD:
		expect(shutdown(fd, SHUT_RD) == 0);
		break;
	case UNDER_SHUTRDWR:
		expect(shutdown(fd, SHUT_RDWR) == 0);
		break;
	}
	if (!ends_alone)
		signal_peer();
	pthread_join(thread, NULL);
	check_blocked(&b);
	if (ends_alone)
		signal_peer();
	if (case_under == UNDER_SHUTRD && case_waiter != WAIT_WRITE) {
		char *after = xmalloc(AFTER_SHUTRD_BYTES);

		memset(after, 's', AFTER_SHUTRD_BYTES);
		expect(write(fd, after, AFTER_SHUTRD_BYTES) == (ssize_t)AFTER_SHUTRD_BYTES);
		free(after);
	}
	if (b.epfd >= 0)
		close(b.epfd);
}

/* "under-WAITER-ACTION": sets the case, or false. */
/* A case "PREFIX-WAITER-WHAT": WAITER one of the first `waiters` of
 * waiter_names, WHAT one of whats[n] (its index into *what). */
static bool parse_case(const char *name, const char *prefix, size_t waiters, const char *const *whats, size_t n,
		       size_t *what)
{
	char want[64];

	for (size_t w = 0; w < waiters; w++) {
		for (size_t i = 0; i < n; i++) {
			snprintf(want, sizeof(want), "%s-%s-%s", prefix, waiter_names[w], whats[i]);
			if (!strcmp(name, want)) {
				case_waiter = (enum waiter)w;
				*what = i;
				return true;
			}
		}
	}
	return false;
}

static bool parse_under(const char *name)
{
	size_t what;

	if (!parse_case(name, "under", ARRAY_LEN(waiter_names), under_names, ARRAY_LEN(under_names), &what))
		return false;
	case_under = (enum under)what;
	return true;
}

/* ---- the peer's close, shutdown or death under a blocked call ----
 *
 * peer-WAITER-ACTION: the server's read (or write for room) blocks in a
 * thread; the client closes, shuts down (SHUT_WR for a read, SHUT_RD for
 * a write), is killed (kill -9 of the process holding the connection) or
 * is killed while another process forked from the client still holds the
 * connection.  As on a plain socket, the read returns 0 and the write fails with EPIPE once
 * the last holder is gone, and not before: killfork's call must still
 * be blocked after its peer died, until the child dies too.
 */

enum peer_action { PEER_CLOSE, PEER_SHUT, PEER_KILL, PEER_KILLFORK };

static const char *const peer_names[] = { "close", "shut", "kill", "killfork" };
static enum peer_action case_peer;

/* How long killfork's call must stay blocked after the peer's death:
 * a wrong wake-up comes at once. */
#define KILLFORK_STILL_MS 200

/* The server's call of the case, blocked in a thread until it sleeps. */
static void start_blocked(struct blocked *b, pthread_t *thread)
{
	expect(pthread_create(thread, NULL, blocked_call, b) == 0);
	while (!atomic_load(&b->tid))
		usleep(1000);
	wait_until_asleep(atomic_load(&b->tid));
}

static void peer_server(int fd)
{
	struct blocked b = { .fd = fd, .epfd = -1 };
	pthread_t thread;

	signal(SIGPIPE, SIG_IGN); /* the check is the EPIPE */
	wait_byte(fd);
	if (case_waiter == WAIT_WRITE)
		fill_until_full(fd, 'f');
	start_blocked(&b, &thread);
	signal_peer();
	if (case_peer == PEER_KILLFORK) {
		wait_peer(); /* the peer is dead, its child holds on */
		usleep(KILLFORK_STILL_MS * 1000);
		expect(!atomic_load(&b.done));
		signal_peer();
	}
	pthread_join(thread, NULL);
	fprintf(stderr, "peer-%s-%s: ret %ld errno %d\n", waiter_names[case_waiter], peer_names[case_peer], b.ret,
		b.err);
	/* The kernel says ECONNRESET when the peer closed with bytes of ours
	 * unread (the ones that filled the connection). */
	if (case_waiter == WAIT_READ)
		expect(b.ret == 0);
	else
		expect(b.ret < 0 && (b.err == EPIPE || b.err == ECONNRESET));
	signal_peer();
}

/* A process that holds the connection until it is killed, or its parent
 * (the client) dies: a case that fails leaves none behind. */
static pid_t holder(void)
{
	pid_t pid = fork();

	expect(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	return pid;
}

static void kill_and_reap(pid_t pid)
{
	expect(kill(pid, SIGKILL) == 0 && waitpid(pid, NULL, 0) == pid);
}

static void peer_client(int fd)
{
	pid_t peer = -1, child = -1;

	send_all(fd, "r", 1); /* the handshake is over before the call blocks */
	if (case_peer == PEER_KILL || case_peer == PEER_KILLFORK) {
		peer = holder();
		/* Its fork, which outlives it: a holder of the peer's. */
		if (case_peer == PEER_KILLFORK)
			child = holder();
		close(fd);
	}
	wait_peer();
	switch (case_peer) {
	case PEER_CLOSE:
		close(fd);
		break;
	case PEER_SHUT:
		expect(shutdown(fd, case_waiter == WAIT_READ ? SHUT_WR : SHUT_RD) == 0);
		break;
	case PEER_KILL:
		kill_and_reap(peer);
		break;
	case PEER_KILLFORK:
		kill_and_reap(peer);
		signal_peer();
		wait_peer();
		kill_and_reap(child);
		break;
	}
	wait_peer();
}

/* ---- a signal under a blocked read or write ----
 *
 * signal-WAITER-HOW: the server's read (or write for room) blocks and a
 * SIGALRM handler runs: without SA_RESTART the call fails with EINTR
 * ("intr"); with it, the call goes on and completes when the client
 * sends or drains ("restart"); with it on a socket with SO_RCVTIMEO or
 * SO_SNDTIMEO, the call fails with EINTR all the same ("timeo", socket(7)).
 * "spin", for every waiter: below.
 */

enum signal_how { SIGNAL_INTR, SIGNAL_RESTART, SIGNAL_TIMEO, SIGNAL_SPIN, SIGNAL_EARLY };

static const char *const signal_names[] = { "intr", "restart", "timeo", "spin", "early" };
static enum signal_how case_signal;

/* The blocked write: more than the client drains in one read. */
#define SIGNAL_WRITE_BYTES (256u << 10)

static void signal_server(int fd)
{
	struct timeval long_timeout = { .tv_sec = 30 };
	char *block = xmalloc(SIGNAL_WRITE_BYTES), c = 0;
	ssize_t n;

	wait_byte(fd);
	if (case_waiter == WAIT_WRITE)
		fill_until_full(fd, 'f');
	if (case_signal == SIGNAL_TIMEO)
		expect(setsockopt(fd, SOL_SOCKET, case_waiter == WAIT_READ ? SO_RCVTIMEO : SO_SNDTIMEO,
				  &long_timeout, sizeof(long_timeout)) == 0);
	arm_alarm(case_signal == SIGNAL_INTR ? 0 : SA_RESTART, case_signal != SIGNAL_RESTART);
	signal_peer();
	memset(block, 'z', SIGNAL_WRITE_BYTES);
	n = case_waiter == WAIT_READ ? read(fd, &c, 1) : write(fd, block, SIGNAL_WRITE_BYTES);
	disarm_alarm();
	fprintf(stderr, "signal-%s-%s: ret %zd errno %d\n", waiter_names[case_waiter], signal_names[case_signal], n,
		n < 0 ? errno : 0);
	if (case_signal != SIGNAL_RESTART)
		expect(n < 0 && errno == EINTR);
	else if (case_waiter == WAIT_READ)
		expect(n == 1 && c == 'x');
	else
		expect(n == (ssize_t)SIGNAL_WRITE_BYTES);
	free(block);
	signal_peer();
}

static void signal_client(int fd)
{
	uint64_t counts[256] = { 0 };

	send_all(fd, "r", 1);
	wait_peer();
	if (case_signal == SIGNAL_RESTART) {
		/* The restarted call outlives the alarm (100 ms after it was
		 * armed): one delivered late, once the drain has begun, would
		 * end the write with its count so far, as the kernel does; a
		 * plain run under load 20-30 saw that with 300 ms here. */
		usleep(1000 * 1000);
		if (case_waiter == WAIT_READ) {
			send_all(fd, "x", 1);
		} else {
			drain_counting(fd, counts);
			expect(counts['z'] == SIGNAL_WRITE_BYTES);
		}
	}
	wait_peer();
}

/*
 * signal-WAITER-spin: the first handler that runs while a call waits ends
 * it with EINTR (signal(7); poll, select and epoll_wait are never
 * restarted), also while the call waits in user space: in the library's
 * spin (the suite runs this case with TSSX_SPIN_NS=1000000000: a spin the
 * machine allows lasts a second) or its yields, where the kernel sees no
 * call to interrupt.  Each round's call runs in a thread of its own;
 * SIGALRM goes to that thread a few microseconds after it set its id
 * (more each round, to meet the call at different points of its wait),
 * then every 100 ms until the call returns, which must fail with EINTR.
 * The first handler tells where it interrupted the thread: in the probe's
 * own code, before the call; in user space, within the call or still
 * before its wait (a thread preempted there; on a plain socket, in libc's
 * wrapper before the system call), so that the call may wait for the next
 * signal on a plain socket too; or in a system call: in a sleep, which
 * the kernel ends at once, or in one of the library's yields, which must
 * end as the sleep does.  After a first handler in a system call the call
 * must have returned with that handler alone.  A library that cannot
 * tell that a handler ran in its yields (or its spin) waits on, and only
 * the next signal ends the call.
 */
#define SPIN_SIGNAL_ROUNDS 24
#define SPIN_SIGNAL_EARLY_ROUNDS 4
#define SPIN_SIGNAL_FIRST_STEP_US 40
#define SPIN_SIGNAL_EVERY_US (100 * 1000)
/* So that a call that no signal ends fails the probe instead of hanging. */
#define SPIN_SIGNAL_LIMIT_US (3000 * 1000)

enum interrupted_at { AT_NOTHING, AT_PROBE, AT_SYSTEM_CALL, AT_USER_SPACE };

static _Atomic unsigned spin_handled;
static _Atomic int spin_first_at;

/* The probe's own code (GNU ld's symbols around the executable's text). */
extern char __executable_start[], etext[];

static enum interrupted_at interrupted_where(void *context)
{
#if defined(__x86_64__)
	const unsigned char *ip = (const unsigned char *)((ucontext_t *)context)->uc_mcontext.gregs[REG_RIP];

	if ((const char *)ip >= __executable_start && (const char *)ip < etext)
		return AT_PROBE;
	/* x86-64's `syscall` is 0f 05: the handler returns behind it. */
	return ip[-2] == 0x0f && ip[-1] == 0x05 ? AT_SYSTEM_CALL : AT_USER_SPACE;
#else
	(void)context;
	return AT_SYSTEM_CALL;
#endif
}

static void on_spin_alarm(int sig, siginfo_t *info, void *context)
{
	(void)sig;
	(void)info;
	if (atomic_fetch_add(&spin_handled, 1) == 0)
		atomic_store(&spin_first_at, interrupted_where(context));
}

/* Where the round's first handler ran. */
static enum interrupted_at spin_signal_round(int fd, int epfd, unsigned round)
{
	static const char *const at_names[] = { "nowhere", "the probe", "a system call", "user space" };
	struct blocked b = { .fd = fd, .epfd = epfd, .signal_in_calloc = case_signal == SIGNAL_EARLY };
	pthread_t thread;
	pid_t tid;
	unsigned waited = 0;
	enum interrupted_at at;

	atomic_store(&spin_handled, 0);
	atomic_store(&spin_first_at, AT_NOTHING);
	expect(pthread_create(&thread, NULL, blocked_call, &b) == 0);
	while (!(tid = atomic_load(&b.tid)))
		;
	/* An early handler of the call's own ends it without this one. */
	usleep(case_signal == SIGNAL_EARLY ? SPIN_SIGNAL_EVERY_US : round * SPIN_SIGNAL_FIRST_STEP_US);
	while (!atomic_load(&b.done) && waited < SPIN_SIGNAL_LIMIT_US) {
		expect(syscall(SYS_tgkill, getpid(), tid, SIGALRM) == 0);
		usleep(SPIN_SIGNAL_EVERY_US);
		waited += SPIN_SIGNAL_EVERY_US;
	}
	expect(pthread_join(thread, NULL) == 0);
	at = (enum interrupted_at)atomic_load(&spin_first_at);
	fprintf(stderr, "signal-%s-%s round %u: ret %ld errno %d after %u handlers, the first in %s\n",
		waiter_names[case_waiter], signal_names[case_signal], round, b.ret, b.err, atomic_load(&spin_handled),
		at_names[at]);
	expect(b.ret < 0 && b.err == EINTR);
	expect(at != AT_SYSTEM_CALL || atomic_load(&spin_handled) == 1);
	return at;
}

static void spin_signal_server(int fd)
{
	struct sigaction sa = { .sa_sigaction = on_spin_alarm, .sa_flags = SA_SIGINFO };
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	unsigned in_user_space = 0, rounds = case_signal == SIGNAL_EARLY ? SPIN_SIGNAL_EARLY_ROUNDS : SPIN_SIGNAL_ROUNDS;
	int epfd = -1;

	wait_byte(fd);
	if (case_waiter == WAIT_WRITE)
		fill_until_full(fd, 'f');
	if (case_waiter == WAIT_EPOLL) {
		epfd = epoll_create1(EPOLL_CLOEXEC);
		expect(epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0);
	}
	sigemptyset(&sa.sa_mask);
	expect(sigaction(SIGALRM, &sa, NULL) == 0);
	for (unsigned round = 1; round <= rounds; round++)
		in_user_space += spin_signal_round(fd, epfd, round) == AT_USER_SPACE;
	fprintf(stderr, "signal-%s-%s: the first handler ran in user space in %u of %u rounds, "
		"in the call's own allocation in %u\n", waiter_names[case_waiter], signal_names[case_signal],
		in_user_space, rounds, atomic_load(&calloc_signalled));
	if (epfd >= 0)
		close(epfd);
	signal_peer();
}

static void spin_signal_client(int fd)
{
	send_all(fd, "r", 1);
	wait_peer();
}

/* ---- forksleep: a child forked after its parent slept on the
 * connection sleeps on it too, and wakes when the peer dies ---- */

static void forksleep_server(int fd)
{
	pid_t child;
	int status;
	char c;

	signal_peer();
	wait_byte(fd); /* sleeps: the client sends a moment later */
	child = fork();
	expect(child >= 0);
	if (child == 0) {
		alarm(30); /* a sleep nothing wakes fails the case */
		exit(read(fd, &c, 1) == 0 ? 0 : 1);
	}
	wait_until_asleep(child);
	signal_peer();
	expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	signal_peer();
}

static void forksleep_client(int fd)
{
	pid_t peer;

	wait_peer();
	usleep(50 * 1000);
	send_all(fd, "r", 1);
	peer = holder();
	close(fd);
	wait_peer();
	kill_and_reap(peer);
	wait_peer();
}

/* ---- shortsleep: the blocking read of a short connection sleeps
 * without making the process multi-threaded ---- */

static pid_t client_pid;

static void shortsleep_server(int fd)
{
	wait_peer();
	wait_until_asleep(client_pid); /* in its read: nothing else blocks it */
	send_all(fd, "a", 1);
	wait_byte(fd);
}

/* The futex bell's watcher is a thread for the rest of the process's
 * life, which a connection of a few calls must not start (docs/wait.md,
 * "The futex bell").  The registry client's helper, which made the
 * lookup of the connect, ends on its own. */
static void shortsleep_client(int fd)
{
	char c;

	signal_peer();
	expect(read(fd, &c, 1) == 1 && c == 'a');
	send_all(fd, "b", 1);
	alarm(30); /* a thread that stays, or no /proc to tell, fails the case */
	while (thread_count() != 1)
		usleep(1000);
}

/* ---- sleepcount: a read blocked for a while sleeps once and is woken
 * once, and no thread of its process wakes meanwhile ---- */

/* How long the server holds its answer once the client's read sleeps: a
 * wake-up that comes on a timer (a re-check, a watcher's look) shows as a
 * context switch within it.  Not a threshold: the counts must not move at
 * all, however long the hold. */
#define SLEEPCOUNT_HOLD_MS 500
#define SLEEPCOUNT_THREADS_MAX 16

/* The context switches, voluntary and not, of one thread. */
struct thread_switches {
	int tid;
	unsigned long switches;
};

static unsigned long status_field(const char *path, const char *name)
{
	FILE *f = fopen(path, "r");
	char line[256];
	unsigned long value = 0;
	size_t len = strlen(name);

	expect(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len))
			value = strtoul(line + len, NULL, 10);
	fclose(f);
	return value;
}

/* Every thread of process pid and its context switches so far. */
static size_t process_switches(pid_t pid, struct thread_switches *out)
{
	char path[320];
	DIR *dir;
	struct dirent *d;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	expect((dir = opendir(path)));
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		expect(n < SLEEPCOUNT_THREADS_MAX);
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, d->d_name);
		out[n].tid = atoi(d->d_name);
		out[n].switches = status_field(path, "voluntary_ctxt_switches:") +
				  status_field(path, "nonvoluntary_ctxt_switches:");
		n++;
	}
	closedir(dir);
	return n;
}

/* Every thread of process pid asleep: the counted round starts only once
 * a thread that the first sleep started (the futex bell's watcher) has
 * gone to sleep itself. */
static void wait_until_all_asleep(pid_t pid)
{
	struct thread_switches threads[SLEEPCOUNT_THREADS_MAX];
	size_t n = process_switches(pid, threads);

	for (size_t i = 0; i < n; i++)
		wait_until_asleep(threads[i].tid);
}

/* Round 0 is the connection's first sleep, which may start the futex
 * bell's watcher; round 1 is counted: while its read sleeps, no thread of
 * the client may run at all. */
static void sleepcount_server(int fd)
{
	struct thread_switches before[SLEEPCOUNT_THREADS_MAX], after[SLEEPCOUNT_THREADS_MAX];

	for (int round = 0; round < 2; round++) {
		wait_peer();
		wait_until_asleep(client_pid);
		if (round == 1) {
			size_t n;

			wait_until_all_asleep(client_pid);
			n = process_switches(client_pid, before);

			usleep(SLEEPCOUNT_HOLD_MS * 1000);
			expect(process_switches(client_pid, after) == n);
			for (size_t i = 0; i < n; i++) {
				if (after[i].tid != before[i].tid || after[i].switches != before[i].switches)
					die("sleepcount: thread %d (the reader: %d) of the blocked reader's process switched %lu times "
					    "while the read slept", after[i].tid, (int)client_pid, after[i].switches - before[i].switches);
			}
		}
		send_all(fd, "a", 1);
	}
	wait_byte(fd);
}

/* The threads the library may keep past the first sleep: the futex bell's
 * watcher when the connection sleeps on it from its first call. */
static int threads_kept(void)
{
	const char *short_calls = getenv("TSSX_SHORT_CALLS");

	return getenv("LD_PRELOAD") && short_calls && !strcmp(short_calls, "0") ? 2 : 1;
}

static void sleepcount_client(int fd)
{
	for (int round = 0; round < 2; round++) {
		struct rusage start, end;
		char c;

		/* The registry's helper thread (the connect's lookup) ends on
		 * its own; the counted round waits for it. */
		alarm(30);
		while (round == 1 && thread_count() > threads_kept())
			usleep(1000);
		alarm(0);
		signal_peer();
		expect(getrusage(RUSAGE_THREAD, &start) == 0);
		expect(read(fd, &c, 1) == 1 && c == 'a');
		expect(getrusage(RUSAGE_THREAD, &end) == 0);
		/* One sleep: a wake-up that went back to sleep is a second. */
		if (round == 1 && end.ru_nvcsw - start.ru_nvcsw != 1)
			die("sleepcount: the blocked read slept %ld times", end.ru_nvcsw - start.ru_nvcsw);
	}
	send_all(fd, "b", 1);
}

/* ---- the peer holds the waiters word at a live thread of its own ---- */

/* The control block of the ring of direction dir (TSSX_C2S: the server's
 * rx, TSSX_S2C: its tx) in the segment the library mapped for the client,
 * or NULL on a plain socket. */
static struct tssx_ring_ctl *client_ring_ctl(int dir)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	void *base = NULL;

	expect(maps);
	while (!base && fgets(line, sizeof(line), maps))
		if (strstr(line, "/memfd:tssx (deleted)") && sscanf(line, "%p", &base) != 1)
			base = NULL;
	fclose(maps);
	return base ? (struct tssx_ring_ctl *)((char *)base + TSSX_SEGMENT_CTL_OFFSET(dir)) : NULL;
}

/* Its waiters word names the server's doorbell owner (docs/preload.md). */
static _Atomic uint32_t *server_owner_word(void)
{
	struct tssx_ring_ctl *ctl = client_ring_ctl(TSSX_C2S);

	return ctl ? &ctl->waiters : NULL;
}

struct owner_holder {
	_Atomic uint32_t *word;
	atomic_bool stop;
	_Atomic pid_t tid;
};

/* Stores its own thread id, alive as long as the client, over whatever
 * the server writes there. */
static void *hold_owner(void *arg)
{
	struct owner_holder *h = arg;

	atomic_store(&h->tid, gettid());
	while (!atomic_load(&h->stop)) {
		atomic_store(h->word, (uint32_t)atomic_load(&h->tid));
		usleep(100);
	}
	return NULL;
}

static void foreignowner_client(int fd)
{
	struct owner_holder holder = { .word = server_owner_word() };
	char *in = xmalloc(AFTER_SHUTRD_BYTES);
	pthread_t thread;

	send_all(fd, "r", 1);
	/* Preloaded (the test then checks shared memory was used), the
	 * library mapped the segment here. */
	expect(holder.word || !getenv("LD_PRELOAD"));
	if (holder.word)
		expect(pthread_create(&thread, NULL, hold_owner, &holder) == 0);
	signal_peer(); /* the word is held */
	wait_peer(); /* the server's read is asleep */
	send_all(fd, "a", 1);
	wait_peer(); /* timeout and signal done, the server writes */
	expect(recv(fd, in, AFTER_SHUTRD_BYTES, MSG_WAITALL) == (ssize_t)AFTER_SHUTRD_BYTES);
	for (size_t i = 0; i < AFTER_SHUTRD_BYTES; i++)
		expect(in[i] == 'w');
	free(in);
	wait_peer(); /* the server's read is asleep: the close wakes it */
	if (holder.word) {
		/* The server never took the word: it is a CAS from 0. */
		expect(atomic_load(holder.word) == (uint32_t)atomic_load(&holder.tid));
		atomic_store(&holder.stop, true);
		pthread_join(thread, NULL);
	}
}

/* ---- bellhold: this process's own wake-up under a peer that writes the
 * bell word back ----
 *
 * The server's write for room sleeps in a thread.  A SIGUSR2 handler
 * (SA_RESTART) takes the thread out of its sleep and waits there while
 * the main thread shuts the writing down (a wake-up of this process's
 * own, which the socket does not see) and the client writes the write's
 * bell word back to what it held before the shutdown; then the handler
 * returns and the kernel restarts the sleep.  As on a plain socket, the
 * write fails with EPIPE.  The library before slept on the ring's word
 * alone, found it as it expected, and slept until the peer's next move
 * (the client waits for the server: until the guard's kill).
 */

static int handler_in[2], handler_go[2];

static void on_usr2_held(int sig)
{
	char c;

	(void)sig;
	(void)!write(handler_in[1], "h", 1);
	(void)!read(handler_go[0], &c, 1);
}

static void bellhold_server(int fd)
{
	struct sigaction sa = { .sa_handler = on_usr2_held, .sa_flags = SA_RESTART };
	struct blocked b = { .fd = fd, .epfd = -1 };
	pthread_t thread;
	char c;

	expect(pipe(handler_in) == 0 && pipe(handler_go) == 0);
	expect(sigaction(SIGUSR2, &sa, NULL) == 0);
	signal(SIGPIPE, SIG_IGN); /* the check is the EPIPE */
	wait_byte(fd);
	case_waiter = WAIT_WRITE;
	fill_until_full(fd, 'f');
	start_blocked(&b, &thread);
	signal_peer(); /* the client notes the word */
	wait_peer();
	expect(pthread_kill(thread, SIGUSR2) == 0);
	expect(read(handler_in[0], &c, 1) == 1);
	expect(shutdown(fd, SHUT_WR) == 0);
	signal_peer(); /* the client writes the word back */
	wait_peer();
	expect(write(handler_go[1], "g", 1) == 1);
	pthread_join(thread, NULL);
	fprintf(stderr, "bellhold: ret %ld errno %d\n", b.ret, b.err);
	expect(b.ret < 0 && b.err == EPIPE);
	signal_peer();
}

static void bellhold_client(int fd)
{
	struct tssx_ring_ctl *ctl;
	uint32_t seen = 0;

	send_all(fd, "r", 1);
	ctl = client_ring_ctl(TSSX_S2C);
	expect(ctl || !getenv("LD_PRELOAD"));
	wait_peer(); /* the server's write sleeps */
	if (ctl)
		seen = atomic_load(&ctl->writer_bell);
	signal_peer();
	wait_peer(); /* the server shut its writing down */
	if (ctl)
		atomic_store(&ctl->writer_bell, seen);
	signal_peer();
	wait_peer();
}

/* ---- txbroken: the peer breaks the ring this end writes ----
 *
 * Preloaded only.  The client writes a byte, then moves the head of the
 * server's tx ring (the counter the client, its consumer, writes) past
 * its tail.  A look for POLLIN alone loads only the rx ring: it reports
 * the byte, and the read takes it.  The broken ring fails the next look
 * that asks about its direction (POLLERR with POLLOUT) and the write
 * (EPROTO: docs/data-path.md, "Threat model").  The library before loaded
 * both rings at every look and failed the connection at the POLLIN look.
 */

static void txbroken_server(int fd)
{
	struct pollfd in = { .fd = fd, .events = POLLIN }, out = { .fd = fd, .events = POLLOUT };
	char c;

	wait_peer(); /* the byte is there, the ring broken */
	expect(poll(&in, 1, -1) == 1 && in.revents == POLLIN);
	expect(read(fd, &c, 1) == 1 && c == 'a');
	expect(poll(&out, 1, -1) == 1 && (out.revents & POLLERR));
	expect(send(fd, "b", 1, MSG_NOSIGNAL) < 0 && errno == EPROTO);
	signal_peer();
}

static void txbroken_client(int fd)
{
	struct tssx_ring_ctl *ctl;

	send_all(fd, "a", 1);
	ctl = client_ring_ctl(TSSX_S2C);
	expect(ctl);
	atomic_store(&ctl->head, atomic_load(&ctl->tail) + 1);
	signal_peer();
	wait_peer();
}

/* The fd whose /proc/self/fd link starts with `target`, or -1. */
static int fd_linked_to(const char *target)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;

	expect(d != NULL);
	while ((e = readdir(d)) && found < 0) {
		char link[64], path[300];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0 && (link[n] = '\0', !strncmp(link, target, strlen(target))))
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

/* ---- closeall: a close-all loop under futex sleepers, then the peer's
 * death ----
 *
 * Two connections, a read asleep on each; the server closes every fd from
 * 3 to its limit but those it needs (a daemon's close-all loop), the
 * client closes the second connection (its read returns 0), then the
 * process that holds the first is killed: its read returns 0 too.  The
 * library before lost the futex bell watcher's epoll fd to the loop: the
 * watcher stopped at its next event (the second connection's hang-up),
 * and the first read slept on after its peer died.  The spin policy's
 * /proc/loadavg survives the loop too, and a dup2() onto its number moves
 * it (the library before lost it to the loop).
 */

/* The loop left the library's load file open; a dup2() onto its number
 * gives the number to the program and the file another. */
static void expect_loadavg_kept(void)
{
	int loadavg = fd_linked_to("/proc/loadavg"), other, moved;

	if (!getenv("LD_PRELOAD"))
		return;
	other = open("/dev/null", O_RDONLY | O_CLOEXEC);
	expect(loadavg >= 0 && other >= 0);
	expect(dup2(other, loadavg) == loadavg);
	moved = fd_linked_to("/proc/loadavg");
	expect(moved >= 0 && moved != loadavg);
	close(loadavg);
	close(other);
}

static void closeall_server(int fd)
{
	struct blocked first = { .fd = fd, .epfd = -1 }, second = { .epfd = -1 };
	pthread_t threads[2];
	struct rlimit files;

	wait_byte(fd);
	second.fd = accept(listener_fd, NULL, NULL);
	expect(second.fd >= 0);
	wait_byte(second.fd);
	start_blocked(&first, &threads[0]);
	start_blocked(&second, &threads[1]);
	expect(getrlimit(RLIMIT_NOFILE, &files) == 0);
	for (rlim_t n = 3; n < files.rlim_cur; n++)
		if ((int)n != fd && (int)n != second.fd && (int)n != to_client[1] && (int)n != to_server[0])
			close((int)n);
	expect_loadavg_kept();
	signal_peer(); /* the client closes the second connection */
	pthread_join(threads[1], NULL);
	fprintf(stderr, "closeall: second ret %ld errno %d\n", second.ret, second.err);
	expect(second.ret == 0);
	signal_peer(); /* the client kills the first one's holder */
	pthread_join(threads[0], NULL);
	fprintf(stderr, "closeall: first ret %ld errno %d\n", first.ret, first.err);
	expect(first.ret == 0);
	signal_peer();
}

static void closeall_client(int fd)
{
	pid_t peer;
	int second;

	send_all(fd, "r", 1);
	peer = holder(); /* before the second connection: it holds the first only */
	close(fd);
	second = tool_connect(sock_path);
	send_all(second, "r", 1);
	wait_peer();
	close(second);
	wait_peer();
	kill_and_reap(peer);
	wait_peer();
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* A read of one byte in a thread, once it sleeps in the kernel. */
static void start_blocked_read(struct blocked *b, pthread_t *thread)
{
	atomic_store(&b->tid, 0);
	expect(pthread_create(thread, NULL, blocked_call, b) == 0);
	while (!atomic_load(&b->tid))
		usleep(1000);
	wait_until_asleep(atomic_load(&b->tid));
}

/* ---- bellpause: the futex bell's watcher stopped and started again ----
 *
 * Rounds of a read that sleeps until the client's byte (on the futex bell
 * with TSSX_SHORT_CALLS=0: the watcher runs), then a setns() (the library
 * stops the watcher for it: setns into some namespaces needs a single
 * thread) and a dup2() onto the watcher's epoll fd (the watcher leaves
 * the number first, conn/bell.c).  At the end the client's close must
 * still wake a sleeping read: a watcher runs again.  Under
 * AddressSanitizer a watcher stopped by pthread_cancel() left its frames
 * poisoned, and the sanitizer reported the thread's exit.
 */

#define BELLPAUSE_ROUNDS 20

static void bellpause_server(int fd)
{
	struct blocked b = { .fd = fd, .epfd = -1 };
	int uts = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
	pthread_t thread;

	expect(uts >= 0);
	for (int round = 0; round <= BELLPAUSE_ROUNDS; round++) {
		int watcher;

		start_blocked_read(&b, &thread);
		signal_peer(); /* the client writes: the last round, closes */
		pthread_join(thread, NULL);
		if (round == BELLPAUSE_ROUNDS)
			break;
		expect(b.ret == 1 && b.byte == 'a');
		/* Into its own namespace: 0, or EPERM without CAP_SYS_ADMIN. */
		expect(setns(uts, CLONE_NEWUTS) == 0 || errno == EPERM);
		watcher = fd_linked_to("anon_inode:[eventpoll]");
		if (watcher >= 0) {
			expect(dup2(uts, watcher) == watcher);
			close(watcher);
		}
	}
	expect(b.ret == 0);
	close(uts);
}

static void bellpause_client(int fd)
{
	for (int round = 0; round < BELLPAUSE_ROUNDS; round++) {
		wait_peer();
		send_all(fd, "a", 1);
	}
	wait_peer();
}

/* With the client's thread id in the server's waiters word for good, the
 * server's blocking calls still end on data, a timeout, a signal, room
 * and the client's close: none of them may wait for a doorbell that the
 * owner the word names (alive, but not the server's) will never drain. */
static void foreignowner_server(int fd)
{
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART: EINTR */
	struct timeval timeout = { .tv_usec = 100 * 1000 }, none = { 0 };
	struct blocked b = { .fd = fd, .epfd = -1 };
	char *out = xmalloc(AFTER_SHUTRD_BYTES), c;
	pthread_t thread;

	wait_byte(fd);
	wait_peer(); /* the word is held */
	start_blocked_read(&b, &thread);
	signal_peer();
	pthread_join(thread, NULL);
	expect(b.ret == 1 && b.byte == 'a');
	expect(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) == 0);
	expect(read(fd, &c, 1) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	expect(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none)) == 0);
	sigemptyset(&sa.sa_mask);
	expect(sigaction(SIGUSR1, &sa, NULL) == 0);
	start_blocked_read(&b, &thread);
	expect(pthread_kill(thread, SIGUSR1) == 0);
	pthread_join(thread, NULL);
	expect(b.ret < 0 && b.err == EINTR);
	signal_peer();
	memset(out, 'w', AFTER_SHUTRD_BYTES);
	expect(write(fd, out, AFTER_SHUTRD_BYTES) == (ssize_t)AFTER_SHUTRD_BYTES);
	free(out);
	start_blocked_read(&b, &thread);
	signal_peer();
	pthread_join(thread, NULL);
	expect(b.ret == 0);
}

/* ---- shutdown(SHUT_WR) under writers asleep for room ---- */

struct asleep_writer {
	int fd, flags;
	_Atomic pid_t tid;
	ssize_t ret;
	int err;
};

static void *write_when_full(void *arg)
{
	struct asleep_writer *w = arg;

	atomic_store(&w->tid, gettid());
	w->ret = send(w->fd, "z", 1, w->flags);
	w->err = errno;
	return NULL;
}

static void shutwr_client(int fd)
{
	uint64_t counts[256] = { 0 };
	uint64_t filled;

	send_all(fd, "h", 1); /* the server's handshake is over before it fills */
	wait_peer();
	expect(read(to_client[0], &filled, sizeof(filled)) == sizeof(filled));
	expect(drain_counting(fd, counts) == filled && counts['f'] == filled);
}

/* Two threads asleep in a write for room, one with MSG_NOSIGNAL; another
 * thread's shutdown(SHUT_WR) ends both with EPIPE, neither with SIGPIPE
 * (Linux 6.18: a wait for room that fails skips the signal, which a write
 * that finds the socket already shut gets); the peer reads what was
 * written before, then EOF. */
static void shutwr_server(int fd)
{
	struct sigaction sa = { .sa_handler = on_sigpipe, .sa_flags = SA_RESTART };
	struct asleep_writer w[2] = { { .fd = fd, .flags = MSG_NOSIGNAL }, { .fd = fd, .flags = 0 } };
	uint64_t filled;
	pthread_t thread[2];

	sigemptyset(&sa.sa_mask);
	expect(sigaction(SIGPIPE, &sa, NULL) == 0);
	/* Else the first non-blocking write may find the hello not read yet
	 * (EAGAIN), and the writers an empty ring. */
	wait_byte(fd);
	filled = fill_until_full(fd, 'f');
	for (int i = 0; i < 2; i++) {
		expect(pthread_create(&thread[i], NULL, write_when_full, &w[i]) == 0);
		while (!atomic_load(&w[i].tid))
			usleep(1000);
		wait_until_asleep(atomic_load(&w[i].tid));
	}
	expect(shutdown(fd, SHUT_WR) == 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(thread[i], NULL);
		fprintf(stderr, "shutwr: writer %d: ret %zd errno %d\n", i, w[i].ret, w[i].err);
		expect(w[i].ret < 0 && w[i].err == EPIPE);
	}
	expect(sigpipes == 0); /* on_sigpipe(), of probe epipe */
	signal_peer();
	expect(write(to_client[1], &filled, sizeof(filled)) == sizeof(filled));
}

/* ---- shutdown(SHUT_WR) by a forked sibling ---- */

static void shutsibling_client(int fd)
{
	char buf[4];

	expect(recv(fd, buf, sizeof(buf), MSG_WAITALL) == 1 && buf[0] == 'a');
}

/* The socket is the processes': after a forked child's SHUT_WR the
 * parent's writes fail too, and the peer reads EOF after what came
 * before (the old library let the parent go on writing into the ring). */
static void shutsibling_server(int fd)
{
	int status;
	pid_t child;

	send_all(fd, "a", 1);
	child = fork();
	expect(child >= 0);
	if (child == 0)
		_exit(shutdown(fd, SHUT_WR) == 0 ? 0 : 1);
	expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expect(send(fd, "b", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE);
}

/* ---- fork() while another thread is blocked on the connection ---- */

static void forkcall_client(int fd)
{
	uint64_t counts[256] = { 0 };

	wait_peer();
	send_all(fd, "x", 1);
	/* EOF once the server's thread has its byte and the server closes,
	 * while the child, which closed its copy, still runs. */
	expect(drain_counting(fd, counts) == 0);
	signal_peer();
}

/* Whether a link of /proc/self/fd names the socket or a segment's memfd
 * (not the arena of side locks, "/memfd:tssx-locks", which the process
 * keeps for its later connections). */
static bool holds_socket_or_memfd(ino_t socket_ino)
{
	char sock[64], path[300], target[256];
	bool found = false;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *d;

	expect(dir);
	snprintf(sock, sizeof(sock), "socket:[%llu]", (unsigned long long)socket_ino);
	while ((d = readdir(dir))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strcmp(target, sock) || !strncmp(target, "/memfd:tssx ", 12)) {
			fprintf(stderr, "forkcall: child still holds fd %s: %s\n", d->d_name, target);
			found = true;
		}
	}
	closedir(dir);
	return found;
}

/* A thread is blocked in read() when the process forks; the child closes
 * the connection and lives on.  The blocked call is the parent's: the
 * child keeps nothing of the connection (the old library counted the
 * parent's call in the child too, whose connection then never ended: its
 * memfd stayed open there), and the peer reads EOF once the parent's
 * thread has returned and the parent closed, while the child runs. */
static void forkcall_server(int fd)
{
	struct blocked b = { .fd = fd, .epfd = -1 };
	int child_done[2], child_go[2], status;
	pthread_t thread;
	struct stat st;
	pid_t child;
	char c;

	expect(fstat(fd, &st) == 0);
	start_blocked_read(&b, &thread);
	expect(pipe(child_done) == 0 && pipe(child_go) == 0);
	child = fork();
	expect(child >= 0);
	if (child == 0) {
		bool held;

		close(fd);
		held = holds_socket_or_memfd(st.st_ino);
		(void)!write(child_done[1], "c", 1);
		(void)!read(child_go[0], &c, 1);
		_exit(held ? 1 : 0);
	}
	expect(read(child_done[0], &c, 1) == 1);
	signal_peer();
	pthread_join(thread, NULL);
	expect(b.ret == 1 && b.byte == 'x');
	expect(close(fd) == 0);
	wait_peer(); /* the client read EOF */
	expect(write(child_go[1], "g", 1) == 1);
	expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- a forked child's connection and the parent's next one ---- */

static void forkpair_client(int fd)
{
	int second;
	char c;

	wait_peer(); /* the child holds its lock, the server closed its copy */
	second = tool_connect(sock_path);
	expect(recv(second, &c, 1, MSG_WAITALL) == 1 && c == 'n');
	signal_peer();
	close(second);
}

/* The first lock word of the side-lock mapping this process inherited
 * (a 64 KiB MAP_SHARED anonymous mapping, /dev/zero), or NULL: plain. */
static _Atomic uint64_t *first_side_lock(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	void *found = NULL;

	expect(maps);
	while (!found && fgets(line, sizeof(line), maps)) {
		unsigned long start, end;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3 && end - start == 65536 &&
		    !strcmp(perms, "rw-s") && strstr(line, "/dev/zero"))
			found = (void *)start;
	}
	fclose(maps);
	return found;
}

/*
 * A server forks a child per connection (as a postmaster does) and closes
 * its own copy; the child sits in a write that holds its connection's
 * producer lock (played here by storing its id in the word, as a child
 * stopped in a debugger mid-copy would leave it).  The server's next
 * connection is unrelated: its writes must not wait for that lock.  The
 * library before reused the closed connection's lock pair for the next
 * one, shared with the child: the write below spun for good.
 */
static void forkpair_server(int fd)
{
	int go[2], held[2], second, status;
	pid_t child;
	char c;

	expect(pipe(go) == 0 && pipe(held) == 0);
	send_all(fd, "h", 1); /* the handshake is over */
	child = fork();
	expect(child >= 0);
	if (child == 0) {
		_Atomic uint64_t *lock = first_side_lock();

		if (lock)
			atomic_store(lock, (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)gettid());
		(void)!write(held[1], "h", 1);
		(void)!read(go[0], &c, 1);
		if (lock)
			atomic_store(lock, 0);
		_exit(0);
	}
	expect(read(held[0], &c, 1) == 1);
	expect(close(fd) == 0);
	signal_peer();
	second = accept(listener_fd, NULL, NULL);
	expect(second >= 0);
	send_all(second, "n", 1);
	wait_peer();
	close(second);
	expect(write(go[1], "g", 1) == 1);
	expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- poll, FIONREAD and shutdown racing the close of their fd ---- */

#define RACE_CONNECTIONS 300


struct racer {
	int fd;
	atomic_uint rounds;
};

/* Until the fd is gone: each call sees the connection or fails with
 * EBADF (POLLNVAL); none may crash (they read the rings of a connection
 * that the close ended under them). */
static void *race_close(void *arg)
{
	struct racer *r = arg;

	for (;;) {
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN | POLLOUT };
		int avail;

		/* Between the library forgetting the fd and the kernel closing
		 * it, the fd is the bare socket, which may be neither readable
		 * nor writable (it carries only doorbells). */
		expect(poll(&pfd, 1, 0) >= 0);
		if (pfd.revents & POLLNVAL)
			break;
		if (ioctl(r->fd, FIONREAD, &avail) < 0) {
			expect(errno == EBADF);
			break;
		}
		if (shutdown(r->fd, SHUT_WR) < 0) {
			expect(errno == EBADF);
			break;
		}
		atomic_fetch_add(&r->rounds, 1);
	}
	return NULL;
}

static void closerace_client(int fd)
{
	char c;

	for (int i = 0; i < RACE_CONNECTIONS; i++) {
		if (i)
			fd = tool_connect(sock_path);
		send_all(fd, "r", 1);
		while (read(fd, &c, 1) > 0)
			;
		close(fd);
	}
}

static void closerace_server(int fd)
{
	for (int i = 0; i < RACE_CONNECTIONS; i++) {
		struct racer r = { .fd = i ? accept(listener_fd, NULL, NULL) : fd };
		pthread_t thread;

		expect(r.fd >= 0);
		wait_byte(r.fd);
		expect(pthread_create(&thread, NULL, race_close, &r) == 0);
		/* A few rounds in, at a different point each time. */
		while (atomic_load(&r.rounds) < (unsigned)(i % 7))
			;
		expect(close(r.fd) == 0);
		pthread_join(thread, NULL);
	}
}

/*
 * stalewaker: the lost wake-up of the library before 2026-12-03's
 * (docs/data-path.md, "Wake-ups always fence").  Its wakers went without
 * their fence once 256 checks in a row had found no sleeper, and a
 * sleeper issued membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) instead,
 * which the kernel sends only to CPUs whose record of the waker's
 * registration is up to date; a CPU that last ran the waker before it
 * registered, and idled since, keeps the old record for as long as it
 * only runs the waker and its idle task.  So the client runs on one CPU,
 * moves to another to connect (the library registered there) and moves
 * back; the server runs on the other.  Each of STALE_CYCLES cycles: 300
 * small messages that the server takes without sleeping (non-blocking
 * reads in a loop, so that the client's checks find no sleeper), then a
 * 64 KiB one (whose counter store waits behind the copy's), for which
 * the server's blocking read starts after a delay that grows by 200 ns
 * each cycle up to 80 us, so that its flag and the publication cross.  Every
 * byte is checked.  With TSSX_SHORT_CALLS=1000000 TSSX_SPIN_NS=0 the
 * server sleeps at once, on the socket, which has no timer: a lost
 * wake-up hangs the probe (its guard fails it).  On a machine busy with
 * other work the old record is refreshed by the next task that runs
 * there, and the probe passes with either library; one CPU: no moves.
 */
#define STALE_CYCLES 2000
#define STALE_QUIET 300
#define STALE_MESSAGE (64u * 1024)

/* The n-th CPU this process may run on, -1 if there are fewer. */
static int allowed_cpu(int n)
{
	cpu_set_t set;

	expect(sched_getaffinity(0, sizeof(set), &set) == 0);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set) && n-- == 0)
			return cpu;
	return -1;
}

static void run_on(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	expect(sched_setaffinity(0, sizeof(set), &set) == 0);
}

static uint8_t stale_byte(unsigned cycle, size_t i)
{
	return (uint8_t)(cycle * 131u + i * 7u + (i >> 9));
}

/* A busy wait of ns: the caller stays on its CPU. */
static void stay_busy(uint64_t ns)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do
		clock_gettime(CLOCK_MONOTONIC, &now);
	while ((uint64_t)(now.tv_sec - start.tv_sec) * 1000000000u + (uint64_t)now.tv_nsec - (uint64_t)start.tv_nsec < ns);
}

static void stalewaker_server(int fd)
{
	static uint8_t msg[STALE_MESSAGE];
	int other = allowed_cpu(1);

	if (other >= 0)
		run_on(other);
	for (unsigned cycle = 0; cycle < STALE_CYCLES; cycle++) {
		for (unsigned quiet = 0; quiet < STALE_QUIET;) {
			uint32_t seq;
			ssize_t n = recv(fd, &seq, sizeof(seq), MSG_DONTWAIT);

			if (n < 0 && errno == EAGAIN)
				continue;
			/* Messages of 4 bytes come whole: one write each. */
			expect(n == sizeof(seq) && seq == cycle * STALE_QUIET + quiet);
			quiet++;
		}
		stay_busy(cycle % 400 * 200);
		expect(recv(fd, msg, sizeof(msg), MSG_WAITALL) == (ssize_t)sizeof(msg));
		for (size_t i = 0; i < sizeof(msg); i++)
			expect(msg[i] == stale_byte(cycle, i));
	}
	expect(recv(fd, msg, 1, 0) == 0);
}

static void stalewaker_client(int unused)
{
	static uint8_t msg[STALE_MESSAGE];
	int home = allowed_cpu(0), other = allowed_cpu(1), fd;

	(void)unused;
	if (other >= 0) {
		run_on(home);
		stay_busy(1000000);
		run_on(other);
	}
	fd = tool_connect(sock_path);
	if (other >= 0)
		run_on(home);
	for (unsigned cycle = 0; cycle < STALE_CYCLES; cycle++) {
		for (uint32_t quiet = 0; quiet < STALE_QUIET; quiet++) {
			uint32_t seq = cycle * STALE_QUIET + quiet;

			send_all(fd, &seq, sizeof(seq));
		}
		for (size_t i = 0; i < sizeof(msg); i++)
			msg[i] = stale_byte(cycle, i);
		send_all(fd, msg, sizeof(msg));
	}
	close(fd);
}

/* ---- one connection shared by a process and the image its child
 * exec'd: writes stay whole, each byte goes to one reader; a hand-over
 * record that lies ---- */

/* Under the kernel's whole-write size (one skb: 36,544 bytes with 4 KiB
 * pages, SKB_MAX_HEAD(0) + 32 KiB of fragments): the plain run keeps
 * every block whole too. */
#define EXEC_BLOCK 32768
#define EXEC_BLOCKS 1000
#define EXEC_UNIT 250000
/* execwrite2, execread2: the child's image execs once more before it
 * starts. */
static int exec_hops;
/* spawnwrite, spawnread: the helper is started with posix_spawn() (no
 * file actions) instead of fork() and exec. */
static bool exec_by_spawn;

/* This program as the helper of ROLE (exec_helper()) on the connection at
 * fd, exec'd by a forked child or spawned; once it runs (after its last
 * exec) it writes a byte to `ready` (a socket) and waits for one back
 * before it starts (start_together()); a reader writes its counts to
 * `report`. */
static pid_t spawn_exec_helper(int fd, const char *role, int ready, int report)
{
	char hops[16], fds[3][16];
	char *argv[] = { "tssx-probe", "--exec", hops, (char *)role, fds[0], fds[1], fds[2], NULL };
	pid_t child;

	snprintf(hops, sizeof(hops), "%d", exec_hops);
	snprintf(fds[0], sizeof(fds[0]), "%d", fd);
	snprintf(fds[1], sizeof(fds[1]), "%d", ready);
	snprintf(fds[2], sizeof(fds[2]), "%d", report);
	expect(fcntl(fd, F_SETFD, 0) == 0);
	if (exec_by_spawn) {
		expect(posix_spawn(&child, "/proc/self/exe", NULL, NULL, argv, environ) == 0);
		return child;
	}
	child = fork();
	expect(child >= 0);
	if (child)
		return child;
	execv("/proc/self/exe", argv);
	die_errno("exec of the helper");
}

static void wait_ok(pid_t child)
{
	int status;

	expect(waitpid(child, &status, 0) == child);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("child %d ended with status %#x", (int)child, status);
}

/* One write(2) per block of EXEC_BLOCK bytes of tag. */
static void write_exec_blocks(int fd, uint8_t tag)
{
	uint8_t *block = xmalloc(EXEC_BLOCK);

	memset(block, tag, EXEC_BLOCK);
	for (int i = 0; i < EXEC_BLOCKS; i++)
		expect(write(fd, block, EXEC_BLOCK) == EXEC_BLOCK);
	free(block);
}

/* The helper runs: both go on at the same moment. */
static void start_together(int ready)
{
	char c;

	expect(read(ready, &c, 1) == 1);
	expect(write(ready, "!", 1) == 1);
}

/* The client and its exec'd child write blocks at once. */
static void execwrite_client(int fd)
{
	int ready[2];
	pid_t child;

	expect(socketpair(AF_UNIX, SOCK_STREAM, 0, ready) == 0);
	child = spawn_exec_helper(fd, "write", ready[1], -1);
	start_together(ready[0]);
	write_exec_blocks(fd, 'P');
	wait_ok(child);
}

/* Every block is whole: one tag throughout; as many of each writer. */
static void execwrite_server(int fd)
{
	uint8_t *block = xmalloc(EXEC_BLOCK), *parent = xmalloc(EXEC_BLOCK), *image = xmalloc(EXEC_BLOCK);
	int parents = 0, images = 0;

	memset(parent, 'P', EXEC_BLOCK);
	memset(image, 'E', EXEC_BLOCK);
	for (int i = 0; i < 2 * EXEC_BLOCKS; i++) {
		expect(recv(fd, block, EXEC_BLOCK, MSG_WAITALL) == EXEC_BLOCK);
		if (!memcmp(block, parent, EXEC_BLOCK))
			parents++;
		else if (!memcmp(block, image, EXEC_BLOCK))
			images++;
		else
			die("execwrite: block %d is not whole: '%c' ... '%c'", i, block[0], block[EXEC_BLOCK - 1]);
	}
	expect(parents == EXEC_BLOCKS && images == EXEC_BLOCKS);
	expect(read(fd, block, 1) == 0);
	free(block);
	free(parent);
	free(image);
}

/* The client and its exec'd child drain the connection at once, from a
 * connection the server filled first (semantics.sh gives the ring room
 * for the whole run), so that both read throughout. */
static void execread_client(int fd)
{
	uint64_t counts[256] = { 0 }, theirs[256] = { 0 };
	int ready[2], report[2];
	pid_t child;

	expect(socketpair(AF_UNIX, SOCK_STREAM, 0, ready) == 0 && pipe(report) == 0);
	child = spawn_exec_helper(fd, "read", ready[1], report[1]);
	close(report[1]);
	signal_peer();
	wait_peer();
	start_together(ready[0]);
	drain_strictly(fd, counts);
	expect(read(report[0], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs));
	wait_ok(child);
	check_read_once("execread", counts, theirs, EXEC_UNIT);
}

/* The same run as write_tag_run(), in writes of up to 64 KiB: as much
 * as the connection takes before the readers start (told when a write
 * would block), the rest while they read. */
static void execread_server(int fd)
{
	uint8_t *buf = xmalloc(65536);
	bool full = false;

	wait_peer();
	for (int i = 0; i < FORKREAD_TAGS; i++) {
		memset(buf, 'a' + i, 65536);
		for (size_t left = (size_t)(i + 1) * EXEC_UNIT; left;) {
			ssize_t n = send(fd, buf, left < 65536 ? left : 65536, full ? MSG_NOSIGNAL : MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n < 0 && !full && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				full = true;
				signal_peer();
				continue;
			}
			expect(n > 0);
			left -= (size_t)n;
		}
	}
	if (!full)
		signal_peer();
	free(buf);
}

#define PROBE_ARENA_PAIRS 512

/* Above TSSX_SHORT_CALLS's default. */
#define EXEC_CALLS 20

enum lie { LIE_NONE_STALE, LIE_INDEX, LIE_NOT_ARENA, LIE_UNSEALED, LIE_SHORT, LIE_CLOSED, LIES };
static const char *const lie_names[] = { "stale holder", "index", "not an arena", "unsealed", "short", "closed" };

/* A memfd named as the library's arena, of `size` bytes, sealed or not. */
static int fake_arena(size_t size, bool sealed)
{
	int fd = memfd_create("tssx-locks", MFD_ALLOW_SEALING);

	expect(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
	expect(!sealed || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
	return fd;
}

/*
 * In a forked child of the client: execs the helper by a raw system call,
 * which no wrapper sees, with a hand-over record of its own making for the
 * connection at fd: the true one, whose pair's words name this process's
 * main thread as the holder (as a thread of the old image left them,
 * killed by the exec while it held them), or one that lies about the
 * side locks.
 */
static void exec_lying(int fd, enum lie lie, int ready)
{
	int memfd = fd_linked_to("/memfd:tssx "), arena = fd_linked_to("/memfd:tssx-locks "), locks = arena;
	struct tssx_side_locks *pairs;
	unsigned index = 0;
	char record[256], fds[2][16];
	char *argv[] = { "tssx-probe", "--exec", "1", "lie", fds[0], fds[1], "-1", NULL };
	char *envp[256] = { record };
	struct stat st;
	int n = 1;

	for (char **e = environ; *e && n < (int)ARRAY_LEN(envp) - 1; e++) {
		if (strncmp(*e, "TSSX_HANDOVER=", strlen("TSSX_HANDOVER=")))
			envp[n++] = *e;
	}
	expect(memfd >= 0 && arena >= 0 && fstat(fd, &st) == 0);
	pairs = mmap(NULL, PROBE_ARENA_PAIRS * sizeof(*pairs), PROT_READ | PROT_WRITE, MAP_SHARED, arena, 0);
	expect(pairs != MAP_FAILED);
	switch (lie) {
	case LIE_NONE_STALE:
		/* The connection's pair: the only one in use (the first case:
		 * the lies after it name fds or indexes that are refused
		 * first). */
		for (unsigned i = 0; i < PROBE_ARENA_PAIRS; i++) {
			if (atomic_load(&pairs[i].users))
				index = i;
		}
		atomic_store(&pairs[index].producer.word, (uint64_t)getpid() << 32 | (uint64_t)getpid());
		atomic_store(&pairs[index].consumer.word, (uint64_t)getpid() << 32 | (uint64_t)getpid());
		break;
	case LIE_INDEX:
		index = PROBE_ARENA_PAIRS;
		break;
	case LIE_NOT_ARENA:
		locks = STDERR_FILENO;
		break;
	case LIE_UNSEALED:
		locks = fake_arena(PROBE_ARENA_PAIRS * sizeof(*pairs), false);
		break;
	case LIE_SHORT:
		locks = fake_arena(4096, true);
		break;
	case LIE_CLOSED:
		locks = 1000;
		break;
	case LIES:
		break;
	}
	snprintf(record, sizeof(record), "TSSX_HANDOVER=c%llu:%d:c:%d:%u", (unsigned long long)st.st_ino, memfd, locks,
		 index);
	snprintf(fds[0], sizeof(fds[0]), "%d", fd);
	snprintf(fds[1], sizeof(fds[1]), "%d", ready);
	expect(fcntl(fd, F_SETFD, 0) == 0 && fcntl(memfd, F_SETFD, 0) == 0 && fcntl(arena, F_SETFD, 0) == 0);
	syscall(SYS_execve, "/proc/self/exe", argv, envp);
	die_errno("exec of the helper");
}

/* Preloaded only (a plain run has no record to lie in): every lie makes
 * the new image refuse the connection loudly (its helper's write fails),
 * the true record with stale holders is taken and used both ways. */
static void execlie_client(int fd)
{
	if (fd_linked_to("/memfd:tssx-locks ") < 0) {
		signal_peer(); /* no cases */
		return;
	}
	for (int lie = 0; lie < LIES; lie++) {
		int ready[2], status;
		pid_t child;

		if (lie)
			fd = tool_connect(sock_path);
		expect(fd_linked_to("/memfd:tssx ") >= 0);
		/* Calls enough that the connection does not count as
		 * short-lived, which would keep the next ones plain
		 * (docs/preload.md, "Short-lived connections"). */
		for (int i = 0; i < EXEC_CALLS; i++)
			send_all(fd, "c", 1);
		expect(socketpair(AF_UNIX, SOCK_STREAM, 0, ready) == 0);
		child = fork();
		expect(child >= 0);
		if (child == 0)
			exec_lying(fd, (enum lie)lie, ready[1]);
		close(ready[1]);
		start_together(ready[0]);
		expect(waitpid(child, &status, 0) == child && WIFEXITED(status));
		if (WEXITSTATUS(status) != (lie == LIE_NONE_STALE ? 0 : 3))
			die("execlie: %s: helper status %d", lie_names[lie], WEXITSTATUS(status));
		close(ready[0]);
		close(fd);
	}
	signal_peer();
}

static void execlie_server(int fd)
{
	char c;

	/* The client is plain (no cases) or runs them all. */
	for (int lie = 0; lie < LIES && fd_linked_to("/memfd:tssx-locks ") >= 0; lie++) {
		if (lie)
			fd = accept(listener_fd, NULL, NULL);
		expect(fd >= 0);
		for (int i = 0; i < EXEC_CALLS; i++)
			expect(read(fd, &c, 1) == 1 && c == 'c');
		if (lie == LIE_NONE_STALE) {
			expect(read(fd, &c, 1) == 1 && c == 'x');
			send_all(fd, "y", 1);
		}
		/* A refused connection is shut down: EOF, never a hang. */
		expect(read(fd, &c, 1) <= 0);
		if (lie)
			close(fd);
	}
	wait_peer();
}

/* The exec'd side: tssx-probe --exec HOPS ROLE FD READY REPORT. */
static int exec_helper(char **argv)
{
	int hops = atoi(argv[2]), fd = atoi(argv[4]), ready = atoi(argv[5]), report = atoi(argv[6]);
	const char *role = argv[3];
	uint64_t counts[256] = { 0 };
	char c;

	if (hops > 1) {
		char fewer[16];

		snprintf(fewer, sizeof(fewer), "%d", hops - 1);
		execl("/proc/self/exe", "tssx-probe", "--exec", fewer, role, argv[4], argv[5], argv[6], (char *)NULL);
		die_errno("exec of the helper again");
	}
	expect(write(ready, "!", 1) == 1);
	expect(read(ready, &c, 1) == 1);
	if (!strcmp(role, "write")) {
		write_exec_blocks(fd, 'E');
	} else if (!strcmp(role, "read")) {
		drain_strictly(fd, counts);
		expect(write(report, counts, sizeof(counts)) == (ssize_t)sizeof(counts));
	} else {
		if (send(fd, "x", 1, MSG_NOSIGNAL) < 0)
			return errno == EPIPE ? 3 : 1;
		expect(read(fd, &c, 1) == 1 && c == 'y');
	}
	return 0;
}

/* ---- epolladd, epolladdlate, epolladdmore: a connection added to a set another thread waits on ----
 *
 * A thread sleeps in epoll_wait on a set that holds only a pipe (and, in
 * epolladdmore, a second connection of the client's that stays quiet);
 * then the server adds the connection, with the client's byte already
 * sent (epolladd, epolladdmore) or sent after (epolladdlate).  The kernel
 * wakes the sleeper at once with the connection's own data: never a word
 * of the library's. */

struct epoll_sleeper {
	int epfd;
	_Atomic pid_t tid;
	int ret;
	struct epoll_event out;
	uint64_t want; /* the data it must wake with: 42 when 0 */
};

static void *epoll_sleep(void *arg)
{
	struct epoll_sleeper *s = arg;

	atomic_store(&s->tid, gettid());
	s->ret = epoll_wait(s->epfd, &s->out, 1, -1);
	return NULL;
}

/* The sleeper's result, which a plain socket gives at once: a sleeper
 * still asleep after 10 s was never woken. */
static void epoll_sleeper_check(struct epoll_sleeper *s, pthread_t thread)
{
	struct timespec until;

	expect(clock_gettime(CLOCK_REALTIME, &until) == 0);
	until.tv_sec += 10;
	if (pthread_timedjoin_np(thread, NULL, &until) != 0)
		die("epoll_wait never woke");
	uint64_t want = s->want ? s->want : 42;

	if (s->ret != 1 || s->out.data.u64 != want)
		die("epoll_wait returned %d, data %#llx (%llu expected)", s->ret, (unsigned long long)s->out.data.u64,
		    (unsigned long long)want);
	expect(s->out.events & EPOLLIN);
}

static void epolladd_server(int fd)
{
	struct epoll_event pipe_ev = { .events = EPOLLIN, .data.u64 = 7 };
	struct epoll_event conn_ev = { .events = EPOLLIN, .data.u64 = 42 };
	struct epoll_sleeper s = { .epfd = epoll_create1(EPOLL_CLOEXEC) };
	struct epoll_event other_ev = { .events = EPOLLIN, .data.u64 = 8 };
	bool late = !strcmp(case_name, "epolladdlate"), more = !strcmp(case_name, "epolladdmore");
	int quiet[2], other = more ? accept(listener_fd, NULL, NULL) : -1;
	pthread_t thread;
	char c;

	expect(s.epfd >= 0 && pipe2(quiet, O_CLOEXEC) == 0);
	expect(epoll_ctl(s.epfd, EPOLL_CTL_ADD, quiet[0], &pipe_ev) == 0);
	expect(!more || (other >= 0 && epoll_ctl(s.epfd, EPOLL_CTL_ADD, other, &other_ev) == 0));
	if (!late)
		wait_peer(); /* the byte is on its way */
	expect(pthread_create(&thread, NULL, epoll_sleep, &s) == 0);
	while (!atomic_load(&s.tid))
		usleep(1000);
	wait_until_asleep(atomic_load(&s.tid));
	expect(epoll_ctl(s.epfd, EPOLL_CTL_ADD, fd, &conn_ev) == 0);
	if (late)
		signal_peer();
	epoll_sleeper_check(&s, thread);
	expect(read(fd, &c, 1) == 1 && c == 'x');
	send_all(fd, "+", 1);
	close(s.epfd);
	close(quiet[0]);
	close(quiet[1]);
	if (more)
		close(other);
}

/* ---- epollmod: a one-shot connection re-armed while another thread waits ----
 *
 * The connection, added EPOLLONESHOT, reports the client's byte once; the
 * byte stays unread, a thread sleeps in epoll_wait on the set, and the
 * server re-arms the connection with EPOLL_CTL_MOD (the worker-pool
 * pattern): the kernel wakes the sleeper at once with the connection's
 * data. */
static void epollmod_server(int fd)
{
	struct epoll_event conn_ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 42 }, out = { 0 };
	struct epoll_sleeper s = { .epfd = epoll_create1(EPOLL_CLOEXEC) };
	pthread_t thread;
	char c;

	expect(s.epfd >= 0 && epoll_ctl(s.epfd, EPOLL_CTL_ADD, fd, &conn_ev) == 0);
	wait_peer(); /* the byte is on its way */
	expect(epoll_wait(s.epfd, &out, 1, 10000) == 1 && out.data.u64 == 42);
	expect(pthread_create(&thread, NULL, epoll_sleep, &s) == 0);
	while (!atomic_load(&s.tid))
		usleep(1000);
	wait_until_asleep(atomic_load(&s.tid));
	expect(epoll_ctl(s.epfd, EPOLL_CTL_MOD, fd, &conn_ev) == 0);
	epoll_sleeper_check(&s, thread);
	expect(read(fd, &c, 1) == 1 && c == 'x');
	send_all(fd, "+", 1);
	close(s.epfd);
}

/* ---- epollwatched: a socket added before its connect, another thread asleep ----
 *
 * The client adds an unconnected socket to a set (EPOLLIN|EPOLLET: an
 * unconnected socket reports its hang-up once), a thread of its sleeps
 * in epoll_wait on the set, and only then does the socket connect; the
 * server's byte wakes the sleeper at once with the application's data. */
static void epollwatched_client(int unused)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 42 }, out;
	struct epoll_sleeper s = { .epfd = epoll_create1(EPOLL_CLOEXEC) };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pthread_t thread;
	char c;

	(void)unused;
	expect(fd >= 0 && s.epfd >= 0 && epoll_ctl(s.epfd, EPOLL_CTL_ADD, fd, &ev) == 0);
	expect(epoll_wait(s.epfd, &out, 1, 0) == 1 && out.data.u64 == 42 && (out.events & EPOLLHUP));
	expect(pthread_create(&thread, NULL, epoll_sleep, &s) == 0);
	while (!atomic_load(&s.tid))
		usleep(1000);
	wait_until_asleep(atomic_load(&s.tid));
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	expect(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	signal_peer();
	epoll_sleeper_check(&s, thread);
	expect(read(fd, &c, 1) == 1 && c == 'x');
	send_all(fd, "+", 1);
	close(s.epfd);
	close(fd);
}

/* ---- epollnested: a connection added to a set nested in the one a thread sleeps on ----
 *
 * An epoll fd (inner, empty) is in another (outer); a thread sleeps in
 * epoll_wait on the outer one; the server adds the connection, its byte
 * already sent, to the inner one: the sleeper wakes at once with the
 * inner set's data, and the inner set reports the connection. */
static void epollnested_server(int fd)
{
	struct epoll_event inner_ev = { .events = EPOLLIN, .data.u64 = 19 };
	struct epoll_event conn_ev = { .events = EPOLLIN, .data.u64 = 42 }, out = { 0 };
	struct epoll_sleeper s = { .epfd = epoll_create1(EPOLL_CLOEXEC), .want = 19 };
	int inner = epoll_create1(EPOLL_CLOEXEC);
	pthread_t thread;
	char c;

	expect(s.epfd >= 0 && inner >= 0 && epoll_ctl(s.epfd, EPOLL_CTL_ADD, inner, &inner_ev) == 0);
	wait_peer(); /* the byte is on its way */
	expect(pthread_create(&thread, NULL, epoll_sleep, &s) == 0);
	while (!atomic_load(&s.tid))
		usleep(1000);
	wait_until_asleep(atomic_load(&s.tid));
	expect(epoll_ctl(inner, EPOLL_CTL_ADD, fd, &conn_ev) == 0);
	epoll_sleeper_check(&s, thread);
	expect(epoll_wait(inner, &out, 1, 0) == 1 && out.data.u64 == 42);
	expect(read(fd, &c, 1) == 1 && c == 'x');
	send_all(fd, "+", 1);
	close(s.epfd);
	close(inner);
}

static void epollwatched_server(int fd)
{
	wait_peer(); /* connected, its sleeper asleep */
	send_all(fd, "x", 1);
	wait_byte(fd);
}

static void epolladd_client(int fd)
{
	bool late = !strcmp(case_name, "epolladdlate");
	int other = !strcmp(case_name, "epolladdmore") ? tool_connect(sock_path) : -1;

	if (late)
		wait_peer();
	send_all(fd, "x", 1);
	if (!late)
		signal_peer();
	wait_byte(fd);
	if (other >= 0)
		close(other);
}

static const struct probe {
	const char *name;
	void (*server)(int fd);
	void (*client)(int fd);
} probes[] = {
	{ "peek", peek_server, peek_client },
	{ "timeout", timeout_server, timeout_client },
	{ "eintr", eintr_server, eintr_client },
	{ "shutdown", shutdown_server, shutdown_client },
	{ "shutrd", shutrd_server, shutrd_client },
	{ "epolldup", epolldup_server, epolldup_client },
	{ "epolladd", epolladd_server, epolladd_client },
	{ "epolladdlate", epolladd_server, epolladd_client },
	{ "epolladdmore", epolladd_server, epolladd_client },
	{ "epollmod", epollmod_server, epolladd_client },
	{ "epollwatched", epollwatched_server, epollwatched_client },
	{ "epollnested", epollnested_server, epolladd_client },
	{ "epipe", epipe_server, epipe_client },
	{ "fork", fork_server, fork_client },
	{ "forkread", forkread_server, forkread_client },
	{ "badfd", badfd_server, badfd_client },
	{ "forklate", forkread_server, forklate_client },
	{ "threads", threads_server, threads_client },
	{ "nonblock", nonblock_server, nonblock_client },
	{ "addresses", addresses_server, addresses_client },
	{ "cmsg", cmsg_server, cmsg_client },
	{ "sendfile", sendfile_server, sendfile_client },
	{ "closing", closing_server, closing_client },
	{ "vectors", vectors_server, vectors_client },
	{ "wakeup", wakeup_server, wakeup_client },
	{ "blocked", blocked_server, blocked_client },
	{ "peekoff", peekoff_server, peekoff_client },
	{ "efault", efault_server, efault_client },
	{ "partialfault", partialfault_server, partialfault_client },
	{ "fdfault", fdfault_server, fdfault_client },
	{ "cmsgpeek", cmsgpeek_server, cmsgpeek_client },
	{ "whole", whole_server, whole_client },
	{ "closerace", closerace_server, closerace_client },
	{ "foreignowner", foreignowner_server, foreignowner_client },
	{ "shutwr", shutwr_server, shutwr_client },
	{ "shutsibling", shutsibling_server, shutsibling_client },
	{ "forkcall", forkcall_server, forkcall_client },
	{ "forkpair", forkpair_server, forkpair_client },
	{ "stalewaker", stalewaker_server, stalewaker_client },
	{ "execwrite", execwrite_server, execwrite_client },
	{ "execwrite2", execwrite_server, execwrite_client },
	{ "execread", execread_server, execread_client },
	{ "execread2", execread_server, execread_client },
	{ "spawnwrite", execwrite_server, execwrite_client },
	{ "spawnread", execread_server, execread_client },
	{ "execlie", execlie_server, execlie_client },
	{ "forksleep", forksleep_server, forksleep_client },
	{ "handlers", handlers_server, handlers_client },
	{ "bellhold", bellhold_server, bellhold_client },
	{ "sleepcount", sleepcount_server, sleepcount_client },
	{ "closeall", closeall_server, closeall_client },
	{ "shortsleep", shortsleep_server, shortsleep_client },
	{ "bellpause", bellpause_server, bellpause_client },
	{ "txbroken", txbroken_server, txbroken_client },
};

static bool parse_peer(const char *name)
{
	size_t what;

	if (!parse_case(name, "peer", WAIT_WRITE + 1, peer_names, ARRAY_LEN(peer_names), &what))
		return false;
	case_peer = (enum peer_action)what;
	return true;
}

static bool parse_signal(const char *name)
{
	size_t what;

	if (!parse_case(name, "signal", ARRAY_LEN(waiter_names), signal_names, ARRAY_LEN(signal_names), &what))
		return false;
	case_signal = (enum signal_how)what;
	/* Restarts and timeouts are the data calls': read and write. */
	return case_signal >= SIGNAL_SPIN || case_waiter <= WAIT_WRITE;
}

int main(int argc, char **argv)
{
	static const struct probe under = { "under", under_server, under_client };
	static const struct probe peer = { "peer", peer_server, peer_client };
	static const struct probe sig = { "signal", signal_server, signal_client };
	static const struct probe spin_sig = { "signal", spin_signal_server, spin_signal_client };
	const struct probe *probe = NULL;
	int listener, fd, status;
	pid_t child, server;

	if (argc == 7 && !strcmp(argv[1], "--exec"))
		return exec_helper(argv);
	if (argc != 3)
		die("usage: tssx-probe CASE PATH\n"
		    "CASE under-WAITER-ACTION: WAITER read, write, poll, select or epoll; ACTION close, dup2, shutrd or shutrdwr\n"
		    "CASE peer-WAITER-ACTION: WAITER read or write; ACTION close, shut, kill or killfork\n"
		    "CASE signal-WAITER-HOW: WAITER read or write; HOW intr, restart or timeo\n"
		    "CASE signal-WAITER-spin or signal-WAITER-early: WAITER read, write, poll, select or epoll");
	for (size_t i = 0; i < ARRAY_LEN(probes); i++) {
		if (!strcmp(probes[i].name, argv[1]))
			probe = &probes[i];
	}
	if (!probe && parse_under(argv[1]))
		probe = &under;
	if (!probe && parse_peer(argv[1]))
		probe = &peer;
	if (!probe && parse_signal(argv[1]))
		probe = case_signal >= SIGNAL_SPIN ? &spin_sig : &sig;
	if (!probe)
		die("unknown case %s", argv[1]);
	case_name = argv[1];
	exec_hops = argv[1][strlen(argv[1]) - 1] == '2' ? 2 : 1;
	exec_by_spawn = !strncmp(argv[1], "spawn", 5);
	sock_path = argv[2];
	listener = listener_fd = tool_listen(sock_path);
	expect(pipe(to_client) == 0 && pipe(to_server) == 0);
	server = getpid();
	child = fork();
	expect(child >= 0);
	client_pid = child;
	if (child == 0) {
		is_client = true;
		/* A server that fails (or its guard's kill) takes the client
		 * with it: nothing of a failed probe stays behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != server)
			exit(1);
		close(listener);
		/* forklate's, stalewaker's and epollwatched's clients make
		 * their own connections. */
		fd = probe->client == forklate_client || probe->client == stalewaker_client ||
				     probe->client == epollwatched_client
			     ? -1
			     : tool_connect(sock_path);
		probe->client(fd);
		exit(0);
	}
	fd = accept(listener, NULL, NULL);
	expect(fd >= 0);
	probe->server(fd);
	close(fd);
	expect(waitpid(child, &status, 0) == child);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s: client failed", probe->name);
	return 0;
}
