/*
 * tssx-fdpass: passes fds (SCM_RIGHTS) and credentials (SCM_CREDENTIALS)
 * both ways over one connection, interleaved with data, and checks that
 * each arrives where the kernel delivers it.
 *
 *   tssx-fdpass server PATH [--messages N] [--creds]
 *   tssx-fdpass client PATH [--messages N] [--creds]
 *
 * Both ends send N messages from one thread (one sendmsg each: 1 to 3000
 * pseudo-random bytes and, for message i, i % 4 memfds whose contents name
 * the message and the fd) while the main thread receives the peer's N
 * messages with recvmsg calls of varying sizes.  The receiver checks:
 * every byte (the same stream on both sides); the fds of message i arrive
 * with the recvmsg that returns its first byte, and that call returns no
 * byte past the end of message i; room for 2 fds only, so a message with 3
 * gives 2 and MSG_CTRUNC; MSG_CMSG_CLOEXEC on every other call sets
 * FD_CLOEXEC on exactly those; no fd arrives that was not sent.  With
 * --creds the receiver sets SO_PASSCRED and every recvmsg must carry the
 * sender's pid, uid and gid; the sender also passes its credentials
 * explicitly with every fifth message.  A timer interrupts both ends
 * every millisecond (a handler without SA_RESTART): calls that fail with
 * EINTR are retried with the same msghdr, as CPython does.  Any mismatch
 * exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools.h"

#define MAX_MESSAGE 3000
#define FDS_ROOM 2 /* the receiver's control buffer holds this many fds */

static long messages = 2000;
static bool creds;

static size_t message_len(long i)
{
	return 1 + (size_t)(((uint64_t)i * 2654435761u) % MAX_MESSAGE);
}

static int message_fds(long i)
{
	return (int)(i % 4);
}

static uint64_t fd_tag(long i, int j)
{
	return (uint64_t)i << 8 | (uint64_t)j;
}

static int tagged_memfd(uint64_t tag)
{
	int fd = memfd_create("tssx-fdpass", MFD_CLOEXEC);

	if (fd < 0)
		die_errno("memfd_create");
	if (pwrite(fd, &tag, sizeof(tag), 0) != (ssize_t)sizeof(tag))
		die_errno("pwrite");
	return fd;
}

static void send_message(int sock, long i, struct stream *gen)
{
	uint8_t buf[MAX_MESSAGE];
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	size_t len = message_len(i), done = 0;
	int nfds = message_fds(i), fds[4];
	struct msghdr msg = { .msg_control = control.buf };
	struct cmsghdr *cmsg;
	bool with_creds = creds && i % 5 == 0;

	stream_fill(gen, buf, len);
	msg.msg_controllen = (nfds ? CMSG_SPACE((size_t)nfds * sizeof(int)) : 0) +
			     (with_creds ? CMSG_SPACE(sizeof(struct ucred)) : 0);
	cmsg = msg.msg_controllen ? CMSG_FIRSTHDR(&msg) : NULL;
	if (with_creds) {
		struct ucred self = { .pid = getpid(), .uid = getuid(), .gid = getgid() };

		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_CREDENTIALS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(self));
		memcpy(CMSG_DATA(cmsg), &self, sizeof(self));
		cmsg = CMSG_NXTHDR(&msg, cmsg);
	}
	for (int j = 0; j < nfds; j++)
		fds[j] = tagged_memfd(fd_tag(i, j));
	if (nfds) {
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, (size_t)nfds * sizeof(int));
	}
	if (!msg.msg_controllen)
		msg.msg_control = NULL;
	while (done < len) {
		struct iovec iov = { .iov_base = buf + done, .iov_len = len - done };
		ssize_t n;

		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		n = sendmsg(sock, &msg, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die_errno("sendmsg");
		done += (size_t)n;
		/* The control data went with the first part. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
	}
	for (int j = 0; j < nfds; j++)
		close(fds[j]);
}

static void *send_all(void *arg)
{
	int sock = (int)(intptr_t)arg;
	struct stream gen = { .state = STREAM_SEED };

	for (long i = 0; i < messages; i++)
		send_message(sock, i, &gen);
	if (shutdown(sock, SHUT_WR) < 0)
		die_errno("shutdown");
	return NULL;
}

/* What the receiver knows of the peer's message stream. */
struct receiver {
	int sock;
	struct ucred peer;
	struct stream gen;
	uint64_t offset;    /* stream offset of the next byte */
	long message;       /* the message that byte belongs to */
	uint64_t msg_start; /* its first byte's offset */
	long fds;           /* fds received */
	long calls;
};

/* The first message starting at or after `offset` that carries fds, and
 * where it starts. */
static long next_fd_message(const struct receiver *r, uint64_t *start)
{
	long i = r->message;
	uint64_t at = r->msg_start;

	if (at < r->offset) {
		at += message_len(i);
		i++;
	}
	while (i < messages && message_fds(i) == 0) {
		at += message_len(i);
		i++;
	}
	*start = at;
	return i;
}

static void check_fds(struct receiver *r, const int *fds, int nfds, bool cloexec, int msg_flags,
		      uint64_t got)
{
	uint64_t start;
	long m = next_fd_message(r, &start);
	bool in_range = m < messages && start < r->offset + got;
	int want = in_range ? message_fds(m) : 0;

	if (want > FDS_ROOM ? nfds != FDS_ROOM : nfds != want)
		die("recvmsg %ld at offset %" PRIu64 " (%" PRIu64 " bytes): %d fds, message %ld starting at %" PRIu64
		    " has %d", r->calls, r->offset, got, nfds, m, start, want);
	if (!!(msg_flags & MSG_CTRUNC) != (want > FDS_ROOM))
		die("recvmsg %ld: MSG_CTRUNC %s for %d fds", r->calls, msg_flags & MSG_CTRUNC ? "set" : "missing",
		    want);
	if (want && r->offset + got > start + message_len(m))
		die("recvmsg %ld: returned bytes past the end of message %ld with its fds", r->calls, m);
	for (int j = 0; j < nfds; j++) {
		uint64_t tag = 0;
		int fl = fcntl(fds[j], F_GETFD);

		if (pread(fds[j], &tag, sizeof(tag), 0) != (ssize_t)sizeof(tag) || tag != fd_tag(m, j))
			die("recvmsg %ld: fd %d of message %ld is not the one sent", r->calls, j, m);
		if (fl < 0 || !!(fl & FD_CLOEXEC) != cloexec)
			die("recvmsg %ld: FD_CLOEXEC %s", r->calls, cloexec ? "missing" : "set without MSG_CMSG_CLOEXEC");
		close(fds[j]);
	}
	r->fds += nfds;
}

static void check_creds(const struct receiver *r, const struct ucred *got, bool present)
{
	if (!creds)
		return;
	if (!present)
		die("recvmsg %ld: no SCM_CREDENTIALS with SO_PASSCRED", r->calls);
	if (got->pid != r->peer.pid || got->uid != r->peer.uid || got->gid != r->peer.gid)
		die("recvmsg %ld: credentials %d/%u/%u, the peer is %d/%u/%u", r->calls, (int)got->pid,
		    (unsigned)got->uid, (unsigned)got->gid, (int)r->peer.pid, (unsigned)r->peer.uid,
		    (unsigned)r->peer.gid);
}

/* Moves the message bookkeeping past `got` bytes. */
static void advance(struct receiver *r, uint64_t got)
{
	r->offset += got;
	while (r->message < messages && r->msg_start + message_len(r->message) <= r->offset) {
		r->msg_start += message_len(r->message);
		r->message++;
	}
}

/* One recvmsg; false at EOF. */
static bool receive_once(struct receiver *r)
{
	uint8_t buf[2 * MAX_MESSAGE], expect[2 * MAX_MESSAGE];
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(FDS_ROOM * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = 1 + (size_t)(r->calls * 7919) % sizeof(buf) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = (creds ? CMSG_SPACE(sizeof(struct ucred)) : 0) + CMSG_SPACE(FDS_ROOM * sizeof(int)),
	};
	bool cloexec = r->calls % 2, have_creds = false;
	struct ucred peer_creds = { 0 };
	int fds[FDS_ROOM], nfds = 0;
	ssize_t n;

	do
		n = recvmsg(r->sock, &msg, cloexec ? MSG_CMSG_CLOEXEC : 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die_errno("recvmsg");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t data = c->cmsg_len - CMSG_LEN(0);

		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    data % sizeof(int) == 0 && nfds + data / sizeof(int) <= FDS_ROOM) {
			memcpy(fds + nfds, CMSG_DATA(c), data);
			nfds += (int)(data / sizeof(int));
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
			   data == sizeof(peer_creds)) {
			memcpy(&peer_creds, CMSG_DATA(c), sizeof(peer_creds));
			have_creds = true;
		} else {
			die("recvmsg %ld: unexpected control message %d/%d", r->calls, c->cmsg_level, c->cmsg_type);
		}
	}
	if (n == 0) {
		if (nfds || (msg.msg_flags & MSG_CTRUNC))
			die("recvmsg: fds with the end of the stream");
		return false;
	}
	stream_fill(&r->gen, expect, (size_t)n);
	if (memcmp(buf, expect, (size_t)n) != 0)
		die("recvmsg %ld: bytes differ after offset %" PRIu64, r->calls, r->offset);
	check_fds(r, fds, nfds, cloexec, msg.msg_flags, (uint64_t)n);
	check_creds(r, &peer_creds, have_creds);
	advance(r, (uint64_t)n);
	r->calls++;
	return true;
}

static int run(int sock, const char *who)
{
	struct receiver r = { .sock = sock, .gen = { .state = STREAM_SEED } };
	socklen_t len = sizeof(r.peer);
	uint64_t want = 0;
	long want_fds = 0;
	pthread_t sender;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &r.peer, &len) < 0)
		die_errno("SO_PEERCRED");
	pthread_create(&sender, NULL, send_all, (void *)(intptr_t)sock);
	while (receive_once(&r))
		;
	pthread_join(sender, NULL);
	for (long i = 0; i < messages; i++) {
		want += message_len(i);
		want_fds += message_fds(i) > FDS_ROOM ? FDS_ROOM : message_fds(i);
	}
	if (r.offset != want || r.fds != want_fds)
		die("%s: received %" PRIu64 " of %" PRIu64 " bytes, %ld of %ld fds", who, r.offset, want, r.fds,
		    want_fds);
	printf("%s: %ld messages each way, received %" PRIu64 " bytes and %ld fds in %ld calls\n", who, messages,
	       r.offset, r.fds, r.calls);
	close(sock);
	return 0;
}

/* SO_PASSCRED before the connection exists, so that no message of the
 * peer is sent without credentials (accepted sockets inherit it). */
static void pass_credentials(int sock)
{
	int on = 1;

	if (creds && setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0)
		die_errno("SO_PASSCRED");
}

static int run_server(const char *path)
{
	int listener = tool_listen(path), sock;

	pass_credentials(listener);
	printf("server: listening\n");
	fflush(stdout);
	do
		sock = accept(listener, NULL, NULL);
	while (sock < 0 && errno == EINTR);
	if (sock < 0)
		die_errno("accept");
	close(listener);
	return run(sock, "server");
}

static int run_client(const char *path)
{
	struct sockaddr_un addr;
	unsigned len = tool_addr(path, &addr);
	int sock = socket(AF_UNIX, SOCK_STREAM, 0);

	if (sock < 0)
		die_errno("socket");
	pass_credentials(sock);
	if (connect(sock, (struct sockaddr *)&addr, len) < 0)
		die_errno("connect");
	return run(sock, "client");
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* SIGALRM every millisecond, without SA_RESTART: blocked calls see EINTR. */
static void interrupt_often(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval every_ms = { .it_interval = { .tv_usec = 1000 }, .it_value = { .tv_usec = 1000 } };

	if (sigaction(SIGALRM, &sa, NULL) < 0 || setitimer(ITIMER_REAL, &every_ms, NULL) < 0)
		die_errno("setitimer");
}

int main(int argc, char **argv)
{
	if (argc < 3)
		die("usage: tssx-fdpass server|client PATH [--messages N] [--creds]");
	signal(SIGPIPE, SIG_IGN);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--messages") && i + 1 < argc)
			messages = (long)parse_size(argv[++i]);
		else if (!strcmp(argv[i], "--creds"))
			creds = true;
		else
			die("unknown option %s", argv[i]);
	}
	interrupt_often();
	if (!strcmp(argv[1], "server"))
		return run_server(argv[2]);
	if (!strcmp(argv[1], "client"))
		return run_client(argv[2]);
	die("unknown mode %s", argv[1]);
}
