/*
 * tssx-forge CASE PATH: a hostile TSSX client.  Not preloaded, it binds a
 * TSSX client name itself, connects to the server at PATH and breaks the
 * protocol one way:
 *
 *   magic     a hello with a bad magic number
 *   version   a hello with an unknown protocol version
 *   nofd      a hello without the memfd
 *   unsealed  a memfd the server could shrink under itself
 *   short     a sealed memfd smaller than the hello says
 *   indices   a good handshake, then ring counters out of range
 *   bypass    a good handshake, then stream bytes on the real socket
 *
 * The server must drop that connection (its socket reports EOF here) and
 * live on; this tool exits 0 once it sees the EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools.h"
#include "tssx/hello.h"
#include "tssx/segment.h"

#define RING (64 * 1024)

static int connect_as_tssx_client(const char *path)
{
	struct sockaddr_un self = { .sun_family = AF_UNIX }, server;
	unsigned len = tool_addr(path, &server);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int n;

	if (fd < 0)
		die_errno("socket");
	n = snprintf(self.sun_path + 1, sizeof(self.sun_path) - 1, "tssx-v1.forge.%d", (int)getpid());
	if (bind(fd, (struct sockaddr *)&self, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0)
		die_errno("bind");
	if (connect(fd, (struct sockaddr *)&server, len) < 0)
		die_errno("connect");
	return fd;
}

static void send_hello(int fd, const struct tssx_hello *hello, int memfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = (void *)hello, .iov_len = sizeof(*hello) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (memfd >= 0) {
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &memfd, sizeof(int));
	}
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof(*hello))
		die_errno("sendmsg hello");
}

/* A memfd of `size` bytes, sealed against shrinking and growing or not. */
static int make_memfd(size_t size, bool sealed)
{
	int memfd = memfd_create("tssx-forge", sealed ? MFD_ALLOW_SEALING : 0);

	if (memfd < 0 || ftruncate(memfd, (off_t)size) < 0)
		die_errno("memfd");
	if (sealed && fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		die_errno("seal");
	return memfd;
}

/* A correct handshake; the segment stays mapped for the caller to spoil. */
static void good_handshake(int fd, struct tssx_segment *seg)
{
	struct tssx_hello hello;
	int memfd;

	if (tssx_segment_create(seg, RING, RING, &memfd, &hello) < 0)
		die("segment");
	send_hello(fd, &hello, memfd);
	close(memfd);
}

static void forge(int fd, const char *how)
{
	struct tssx_hello hello;
	struct tssx_segment seg;

	tssx_hello_init(&hello, RING, RING);
	if (!strcmp(how, "magic")) {
		hello.magic ^= 1;
		send_hello(fd, &hello, make_memfd(hello.segment_size, true));
	} else if (!strcmp(how, "version")) {
		hello.version = 99;
		send_hello(fd, &hello, make_memfd(hello.segment_size, true));
	} else if (!strcmp(how, "nofd")) {
		send_hello(fd, &hello, -1);
	} else if (!strcmp(how, "unsealed")) {
		send_hello(fd, &hello, make_memfd(hello.segment_size, false));
	} else if (!strcmp(how, "short")) {
		send_hello(fd, &hello, make_memfd(hello.segment_size / 2, true));
	} else if (!strcmp(how, "indices")) {
		good_handshake(fd, &seg);
		atomic_store(&seg.ring[TSSX_C2S].ctl->tail, 1ull << 40);
		atomic_store(&seg.ring[TSSX_S2C].ctl->head, 1ull << 41);
		send(fd, "", 1, MSG_NOSIGNAL); /* a doorbell, in case it sleeps */
	} else if (!strcmp(how, "bypass")) {
		good_handshake(fd, &seg);
		send(fd, "GET / HTTP/1.0\r\n", 16, MSG_NOSIGNAL);
	} else {
		die("unknown case %s", how);
	}
}

int main(int argc, char **argv)
{
	char buf[256];
	ssize_t n;
	int fd;

	if (argc != 3)
		die("usage: tssx-forge magic|version|nofd|unsealed|short|indices|bypass PATH");
	fd = connect_as_tssx_client(argv[2]);
	forge(fd, argv[1]);
	/* The server drops us: EOF, or a reset. */
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0 && errno != ECONNRESET)
		die_errno("read");
	return 0;
}
