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
 *   fds       a good hello with the memfd and two more fds in one message
 *   fdsplit   the same fds, one control message each
 *   bellfds   a hello announcing two eventfds, with fds that are none
 *   huge      a hello asking for 1 GiB rings (a sparse memfd of 2 GiB)
 *
 * The server must drop that connection (its socket reports EOF here) and
 * live on; this tool exits 0 once it sees the EOF.
 *
 * tssx-forge bellfull PATH: a good handshake with the two eventfds, the
 * one the server writes to wake this client made blocking and full, and
 * this client's reader flag asking for the eventfd bell; then one message
 * that the server echoes: its wake-up of this client must not block it.
 * Exits 0 once the echo came back.
 *
 * tssx-forge silent PATH: a good handshake, then, once the server's read
 * had time to fall asleep, one message written into its ring without a
 * wake-up (a lost one, or a peer that never rings): the server must
 * still find it and echo it.  Exits 0 once the echo came back.
 *
 * tssx-forge cpuword PATH: a good handshake and one message that the
 * server echoes from an event loop with this connection alone (tssx-echo
 * server --epoll): its epoll waits must publish their CPU in the
 * segment, as a blocking read's do, for this end to see where it runs
 * (docs/wait.md, "A peer on another CPU beside other work").  Exits 0
 * once the word names a CPU.
 *
 * tssx-forge attack SECONDS PATH: one connection after another, each with
 * a good handshake and then an attack on the segment while the server
 * reads from it, for SECONDS: every control word but the counters held at
 * 1, at ~0 and at random values (lock words, waiting flags, the waiters
 * word, shut flags); the counters racing with random values; the memfd's
 * pages punched out.  Each connection ends when the server drops it or
 * after a while; the tool exits 0 when the time is up.
 *
 * tssx-forge serve SECONDS PATH: a hostile TSSX server.  Listens at PATH,
 * claims it in the registry ($TSSX_REGISTRY) as a TSSX server, takes one
 * client's hello and segment, and holds every control word but the
 * counters of both rings at 1 for SECONDS (the lock words a preloaded
 * client took for its own), draining the doorbells; then exits.  The
 * client must not hang, whatever its calls return.
 *
 * tssx-forge bells SECONDS PATH: the same server, which writes random
 * values into the words a sleeping client waits on instead (the waiting
 * flags and the futex bell words of both rings, nothing else) and never
 * answers: the client's read sleeps throughout and must end when the
 * server exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"
#include "tssx/hello.h"
#include "tssx/registry_client.h"
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
	static unsigned connects;
	n = snprintf(self.sun_path + 1, sizeof(self.sun_path) - 1, "tssx-v1.forge.%d.%u", (int)getpid(),
		     connects++);
	if (bind(fd, (struct sockaddr *)&self, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0)
		die_errno("bind");
	if (connect(fd, (struct sockaddr *)&server, len) < 0)
		die_errno("connect");
	return fd;
}

/* How extra fds travel with the hello: all in one SCM_RIGHTS message, or
 * one message each. */
enum layout { ONE_MESSAGE, MESSAGE_EACH };

static void send_hello_fds(int fd, const struct tssx_hello *hello, const int *fds, int nfds,
			   enum layout layout)
{
	union {
		char buf[CMSG_SPACE(sizeof(int)) * 4];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = (void *)hello, .iov_len = sizeof(*hello) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf };
	int messages = layout == ONE_MESSAGE ? nfds > 0 : nfds;
	size_t per_message = messages ? (size_t)(nfds / messages) * sizeof(int) : 0;
	struct cmsghdr *cmsg;

	if (nfds > 4)
		die("at most 4 fds");
	if (nfds == 0)
		msg.msg_control = NULL;
	msg.msg_controllen = CMSG_SPACE(per_message) * (size_t)messages;
	cmsg = CMSG_FIRSTHDR(&msg);
	for (int i = 0; i < messages; i++, cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(per_message);
		memcpy(CMSG_DATA(cmsg), fds + i * (int)(per_message / sizeof(int)), per_message);
	}
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof(*hello))
		die_errno("sendmsg hello");
}

static void send_hello(int fd, const struct tssx_hello *hello, int memfd)
{
	send_hello_fds(fd, hello, &memfd, memfd >= 0, ONE_MESSAGE);
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

/* A correct handshake; the segment stays mapped for the caller to spoil,
 * its memfd is returned open. */
static int good_handshake(int fd, struct tssx_segment *seg)
{
	struct tssx_hello hello;
	int memfd;

	if (tssx_segment_create(seg, RING, RING, &memfd, &hello) < 0)
		die("segment");
	send_hello(fd, &hello, memfd);
	return memfd;
}

/* A good hello whose memfd travels with two more fds, which it
 * announces as eventfds or not. */
static void hello_with_extra_fds(int fd, enum layout layout, uint32_t announced)
{
	struct tssx_segment seg;
	struct tssx_hello hello;
	int fds[3];

	if (tssx_segment_create(&seg, RING, RING, &fds[0], &hello) < 0)
		die("segment");
	hello.bell_fds = announced;
	fds[1] = fds[2] = STDERR_FILENO;
	send_hello_fds(fd, &hello, fds, 3, layout);
	close(fds[0]);
}

/*
 * Wakes the server's reader as an honest writer would, wherever it
 * sleeps: a read sleeps on the ring's futex bell, which a byte on the
 * socket does not ring (only the peer's close does, through the
 * watcher); poll and epoll sleep on the socket's doorbell.
 */
static void wake_reader(struct tssx_ring *ring, int fd)
{
	_Atomic uint32_t *bell = &ring->ctl->reader_bell;

	atomic_fetch_add(bell, 1);
	syscall(SYS_futex, bell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	send(fd, "", 1, MSG_NOSIGNAL);
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
	} else if (!strcmp(how, "fds")) {
		hello_with_extra_fds(fd, ONE_MESSAGE, 0);
	} else if (!strcmp(how, "fdsplit")) {
		hello_with_extra_fds(fd, MESSAGE_EACH, 0);
	} else if (!strcmp(how, "bellfds")) {
		hello_with_extra_fds(fd, ONE_MESSAGE, TSSX_HELLO_BELL_FDS);
	} else if (!strcmp(how, "huge")) {
		tssx_hello_init(&hello, TSSX_RING_MAX_CAPACITY, TSSX_RING_MAX_CAPACITY);
		send_hello(fd, &hello, make_memfd(hello.segment_size, true));
	} else if (!strcmp(how, "indices")) {
		close(good_handshake(fd, &seg));
		atomic_store(&seg.ring[TSSX_C2S].ctl->tail, 1ull << 40);
		atomic_store(&seg.ring[TSSX_S2C].ctl->head, 1ull << 41);
		wake_reader(&seg.ring[TSSX_C2S], fd);
	} else if (!strcmp(how, "bypass")) {
		close(good_handshake(fd, &seg));
		send(fd, "GET / HTTP/1.0\r\n", 16, MSG_NOSIGNAL);
	} else {
		die("unknown case %s", how);
	}
}

/* Waits for the server's echo of "ping" in the ring, looking for it
 * (nothing here sleeps on a bell); the caller's guard ends a hang. */
static void expect_echo(struct tssx_segment *seg)
{
	char echo[4];
	struct iovec iov = { .iov_base = echo, .iov_len = sizeof(echo) };

	while (tssx_ring_readable(&seg->ring[TSSX_S2C]) < (ssize_t)sizeof(echo))
		usleep(1000);
	if (tssx_ring_read(&seg->ring[TSSX_S2C], &iov, 1, false) != 4 || memcmp(echo, "ping", 4) != 0)
		die("no echo");
}

/* bellfull (above): the server's eventfd bell written to an eventfd this
 * client made blocking and full, which a write of anything but 0 would
 * block on until someone reads it. */
static void bell_full(const char *path)
{
	static const uint64_t full = UINT64_MAX - 1;
	int fd = connect_as_tssx_client(path), fds[3];
	struct tssx_segment seg;
	struct tssx_hello hello;
	struct iovec iov = { .iov_base = "ping", .iov_len = 4 };

	if (tssx_segment_create(&seg, RING, RING, &fds[0], &hello) < 0)
		die("segment");
	fds[1 + TSSX_HELLO_CLIENT_BELL] = eventfd(0, EFD_CLOEXEC);
	fds[1 + TSSX_HELLO_SERVER_BELL] = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fds[1] < 0 || fds[2] < 0 || write(fds[1], &full, sizeof(full)) != (ssize_t)sizeof(full))
		die_errno("eventfd");
	hello.bell_fds = TSSX_HELLO_BELL_FDS;
	send_hello_fds(fd, &hello, fds, 3, ONE_MESSAGE);
	atomic_store(&seg.ring[TSSX_S2C].ctl->reader_waiting, TSSX_BELL_EVENTFD);
	if (tssx_ring_write(&seg.ring[TSSX_C2S], &iov, 1) != 4)
		die("ring write");
	wake_reader(&seg.ring[TSSX_C2S], fd);
	/* The server's echo wakes nobody here (its eventfd bell cannot be
	 * read: full). */
	expect_echo(&seg);
	close(fd);
}

/* silent (above): a message written into the server's ring without its
 * wake-up, once the server's read had time to fall asleep. */
static void silent(const char *path)
{
	int fd = connect_as_tssx_client(path);
	struct tssx_segment seg;
	struct iovec iov = { .iov_base = "ping", .iov_len = 4 };

	close(good_handshake(fd, &seg));
	usleep(300 * 1000);
	if (tssx_ring_write(&seg.ring[TSSX_C2S], &iov, 1) != 4)
		die("ring write");
	/* Our reader flag is down: the echo wakes nobody here. */
	expect_echo(&seg);
	close(fd);
}

/* cpuword (above): the server's word, in its rx ring, once it waited
 * again after its echo. */
static void cpu_word(const char *path)
{
	int fd = connect_as_tssx_client(path);
	struct tssx_segment seg;
	struct iovec iov = { .iov_base = "ping", .iov_len = 4 };
	uint32_t word;

	close(good_handshake(fd, &seg));
	if (tssx_ring_write(&seg.ring[TSSX_C2S], &iov, 1) != 4)
		die("ring write");
	wake_reader(&seg.ring[TSSX_C2S], fd);
	expect_echo(&seg);
	while (!(word = atomic_load(tssx_ring_waiter_cpu(&seg.ring[TSSX_C2S]))))
		usleep(1000);
	printf("the server waits on CPU %u\n", word - 1);
	close(fd);
}

/* ---- attack: a well-formed connection whose segment is then spoiled ---- */

static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

enum attack { HOLD_ONES, HOLD_ALL_BITS, RANDOM_WORDS, RACING_COUNTERS, PUNCH_HOLES, ATTACKS };

/* Every 32-bit word of both control blocks, counters included or not. */
static void scribble(struct tssx_segment *seg, enum attack how, uint64_t *rng)
{
	for (int r = 0; r < 2; r++) {
		_Atomic uint32_t *word = (_Atomic uint32_t *)seg->ring[r].ctl;
		size_t words = sizeof(struct tssx_ring_ctl) / sizeof(uint32_t);

		for (size_t i = 0; i < words; i++) {
			size_t offset = i * sizeof(uint32_t);
			bool counter = offset - offsetof(struct tssx_ring_ctl, tail) < 8 ||
				       offset - offsetof(struct tssx_ring_ctl, head) < 8;
			uint32_t value = how == HOLD_ONES ? 1 : how == HOLD_ALL_BITS ? UINT32_MAX
							 : (uint32_t)next_random(rng);

			if (counter == (how == RACING_COUNTERS))
				atomic_store_explicit(&word[i], value, memory_order_relaxed);
		}
	}
}

/* The words a sleeper of the peer's waits on, at random values: the
 * waiting flags and the bell words of both rings. */
static void scribble_bells(struct tssx_segment *seg, uint64_t *rng)
{
	for (int r = 0; r < 2; r++) {
		struct tssx_ring_ctl *ctl = seg->ring[r].ctl;
		_Atomic uint32_t *words[] = { &ctl->reader_waiting, &ctl->writer_waiting, &ctl->reader_bell,
					      &ctl->writer_bell };

		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			atomic_store_explicit(words[i], (uint32_t)next_random(rng), memory_order_relaxed);
	}
}

/* One connection under attack until the server drops it or `until`. */
static void attack_connection(const char *path, enum attack how, uint64_t until, uint64_t *rng)
{
	static const char request[] = "*1\r\n$4\r\nPING\r\n";
	struct iovec iov = { .iov_base = (void *)request, .iov_len = sizeof(request) - 1 };
	struct tssx_segment seg;
	int fd = connect_as_tssx_client(path);
	int memfd = good_handshake(fd, &seg);
	char buf[4096];

	while (now_ms() < until) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		/* Requests through the ring, so that the server reads while
		 * its control words change under it. */
		(void)tssx_ring_write(&seg.ring[TSSX_C2S], &iov, 1);
		if (how == PUNCH_HOLES)
			(void)fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)seg.size);
		else
			scribble(&seg, how, rng);
		(void)send(fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (poll(&pfd, 1, 1) > 0 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break; /* dropped */
	}
	tssx_segment_detach(&seg);
	close(memfd);
	close(fd);
}

static void attack(const char *path, unsigned seconds)
{
	uint64_t end = now_ms() + seconds * 1000ull, rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	unsigned connections = 0;

	for (enum attack how = 0; now_ms() < end; how = (how + 1) % ATTACKS, connections++) {
		uint64_t until = now_ms() + 100;

		attack_connection(path, how, until < end ? until : end, &rng);
	}
	printf("attack: %u connections in %u s\n", connections, seconds);
}

/* The hello and its memfd, mapped: the client's segment. */
static void take_hello(int fd, struct tssx_segment *seg)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct tssx_hello raw, hello;
	struct iovec iov = { .iov_base = &raw, .iov_len = sizeof(raw) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *cmsg;
	int memfd;

	if (recvmsg(fd, &msg, MSG_WAITALL) != (ssize_t)sizeof(raw) || tssx_hello_parse(&raw, sizeof(raw), &hello, NULL))
		die("no hello");
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		die("no memfd");
	memcpy(&memfd, CMSG_DATA(cmsg), sizeof(memfd));
	if (tssx_segment_attach(seg, memfd, &hello) < 0)
		die("cannot attach the client's segment");
	close(memfd);
}

static void serve(const char *path, unsigned seconds, bool bells)
{
	struct tssx_registry_hooks hooks = { .close = close };
	struct sockaddr_un addr;
	unsigned len = tool_addr(path, &addr);
	uint64_t end, rng = 1;
	struct tssx_registry_claim *claim;
	struct tssx_segment seg;
	int listener = tool_listen(path), fd, error = 0;
	char buf[4096];

	if (tssx_registry_client_init(getenv("TSSX_REGISTRY"), 5000, &hooks) < 0)
		die("no registry at $TSSX_REGISTRY");
	claim = tssx_registry_claim(&addr, len, &error);
	if (!claim || tssx_registry_claim_error(claim) < 0)
		die("cannot claim %s as a TSSX server", path);
	printf("serve: listening\n");
	fflush(stdout);
	fd = accept(listener, NULL, NULL);
	if (fd < 0)
		die_errno("accept");
	take_hello(fd, &seg);
	end = now_ms() + seconds * 1000ull;
	while (now_ms() < end) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (bells)
			scribble_bells(&seg, &rng);
		else
			scribble(&seg, HOLD_ONES, &rng);
		if (poll(&pfd, 1, 1) > 0 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0)
			break;
	}
	printf("serve: done\n");
}

int main(int argc, char **argv)
{
	char buf[256];
	ssize_t n;
	int fd;

	if (argc == 4 && !strcmp(argv[1], "attack")) {
		attack(argv[3], (unsigned)atoi(argv[2]));
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "cpuword")) {
		cpu_word(argv[2]);
		return 0;
	}
	if (argc == 3 && (!strcmp(argv[1], "bellfull") || !strcmp(argv[1], "silent"))) {
		(!strcmp(argv[1], "bellfull") ? bell_full : silent)(argv[2]);
		return 0;
	}
	if (argc == 4 && (!strcmp(argv[1], "serve") || !strcmp(argv[1], "bells"))) {
		serve(argv[3], (unsigned)atoi(argv[2]), !strcmp(argv[1], "bells"));
		return 0;
	}
	if (argc != 3)
		die("usage: tssx-forge magic|version|nofd|unsealed|short|indices|bypass|fds|fdsplit|huge PATH\n"
		    "       tssx-forge bellfull|silent|cpuword PATH\n"
		    "       tssx-forge attack SECONDS PATH\n"
		    "       tssx-forge serve|bells SECONDS PATH");
	fd = connect_as_tssx_client(argv[2]);
	forge(fd, argv[1]);
	/* The server drops us: EOF, or a reset. */
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0 && errno != ECONNRESET)
		die_errno("read");
	return 0;
}
