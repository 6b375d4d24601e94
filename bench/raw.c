/*
 * The raw column: what moving a message between two processes through
 * shared memory costs with nothing in the way, no system call, no lock, no
 * protocol.  The writer copies the message into a shared buffer and
 * publishes a sequence number on its own cache line; the reader spins on
 * that line and copies the message out.  Streaming uses a bare
 * single-producer single-consumer ring of the same capacity as TSSX's
 * default ring.  A connect cycle makes, passes, maps and unmaps one page
 * per connection (raw_connect_exchange()).  This is the limit TSSX is
 * measured against.
 */
#include <errno.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tssx/macros.h"
#include "bench.h"

#define RAW_RING_CAPACITY (1u << 20)
#define SPINS_BEFORE_YIELD 2000 /* some tens of microseconds */

struct raw_shared {
	alignas(TSSX_CACHELINE) _Atomic uint64_t ping; /* client's round-trip sequence */
	alignas(TSSX_CACHELINE) _Atomic uint64_t pong; /* server's answer */
	alignas(TSSX_CACHELINE) _Atomic uint32_t stop; /* client is done */
	alignas(TSSX_CACHELINE) _Atomic uint64_t tail; /* ring: bytes ever written */
	alignas(TSSX_CACHELINE) _Atomic uint64_t head; /* ring: bytes ever read */
	alignas(TSSX_CACHELINE) uint8_t ping_buf[BENCH_MAX_SIZE];
	alignas(TSSX_CACHELINE) uint8_t pong_buf[BENCH_MAX_SIZE];
	alignas(TSSX_CACHELINE) uint8_t ring[RAW_RING_CAPACITY];
};

struct raw_client {
	struct raw_shared *shared;
	size_t size;
	uint64_t seq;
	alignas(TSSX_CACHELINE) uint8_t buf[BENCH_MAX_SIZE];
};

/* Pauses between two polls of a shared line.  After a while it yields
 * instead: on a machine busier than its cores, the peer may be waiting for
 * this very CPU, and pure spinning would then cost a whole time slice. */
static inline void backoff(unsigned *spins)
{
	if (++*spins > SPINS_BEFORE_YIELD) {
		sched_yield();
		return;
	}
	tssx_cpu_relax();
}

size_t raw_shared_size(void)
{
	return sizeof(struct raw_shared);
}

static struct raw_shared *raw_map(void)
{
	void *p = mmap(NULL, sizeof(struct raw_shared), PROT_READ | PROT_WRITE,
		       MAP_SHARED, ROLE_FD_A, 0);

	return p == MAP_FAILED ? NULL : p;
}

static bool stopped(struct raw_shared *s)
{
	return atomic_load_explicit(&s->stop, memory_order_relaxed);
}

/* Copies between a private buffer and the ring at a free-running position,
 * wrapping at the end. */
static void ring_copy(struct raw_shared *s, uint64_t pos, uint8_t *buf, size_t len, bool in)
{
	size_t off = pos & (RAW_RING_CAPACITY - 1);
	size_t first = len < RAW_RING_CAPACITY - off ? len : RAW_RING_CAPACITY - off;

	if (in) {
		memcpy(s->ring + off, buf, first);
		memcpy(s->ring, buf + first, len - first);
	} else {
		memcpy(buf, s->ring + off, first);
		memcpy(buf + first, s->ring, len - first);
	}
}

/* Moves len bytes into (in) or out of the ring, spinning while it is full
 * or empty.  Returns false when the client stopped the run. */
static bool ring_transfer(struct raw_shared *s, uint8_t *buf, size_t len, bool in)
{
	_Atomic uint64_t *mine = in ? &s->tail : &s->head;
	_Atomic uint64_t *theirs = in ? &s->head : &s->tail;
	size_t done = 0;
	unsigned spins = 0;

	while (done < len) {
		uint64_t pos = atomic_load_explicit(mine, memory_order_relaxed);
		uint64_t other = atomic_load_explicit(theirs, memory_order_acquire);
		uint64_t avail = in ? RAW_RING_CAPACITY - (pos - other) : other - pos;
		size_t n = avail < len - done ? (size_t)avail : len - done;

		if (n == 0) {
			if (stopped(s))
				return false;
			backoff(&spins);
			continue;
		}
		spins = 0;
		ring_copy(s, pos, buf + done, n, in);
		atomic_store_explicit(mine, pos + n, memory_order_release);
		done += n;
	}
	return true;
}

static int serve_pingpong(struct raw_shared *s, size_t size)
{
	static uint8_t buf[BENCH_MAX_SIZE];

	for (uint64_t seq = 1;; seq++) {
		unsigned spins = 0;

		while (atomic_load_explicit(&s->ping, memory_order_acquire) != seq) {
			if (stopped(s))
				return 0;
			backoff(&spins);
		}
		memcpy(buf, s->ping_buf, size);
		memcpy(s->pong_buf, buf, size);
		atomic_store_explicit(&s->pong, seq, memory_order_release);
	}
}

static int serve_stream(struct raw_shared *s, size_t size)
{
	static uint8_t buf[BENCH_MAX_SIZE];

	memset(buf, 'x', size);
	while (ring_transfer(s, buf, size, true))
		;
	return 0;
}

int raw_serve(const struct role_args *args)
{
	struct raw_shared *s = raw_map();

	if (!s)
		return -errno;
	if (args->test == TEST_STREAM || args->test == TEST_DRAIN)
		return serve_stream(s, args->size);
	return serve_pingpong(s, args->size);
}

static int pingpong_once(void *ctx)
{
	struct raw_client *c = ctx;
	struct raw_shared *s = c->shared;
	uint64_t seq = ++c->seq;
	unsigned spins = 0;

	memcpy(s->ping_buf, c->buf, c->size);
	atomic_store_explicit(&s->ping, seq, memory_order_release);
	while (atomic_load_explicit(&s->pong, memory_order_acquire) != seq)
		backoff(&spins);
	memcpy(c->buf, s->pong_buf, c->size);
	return 0;
}

static int read_message(void *ctx)
{
	struct raw_client *c = ctx;

	return ring_transfer(c->shared, c->buf, c->size, false) ? 0 : -ESHUTDOWN;
}

int raw_client_op(const struct role_args *args, struct bench_op *op)
{
	static struct raw_client client;

	client.shared = raw_map();
	if (!client.shared)
		return -errno;
	/* A draining reader takes whatever the ring holds, up to DRAIN_BYTES. */
	client.size = args->test == TEST_DRAIN ? DRAIN_BYTES : args->size;
	memset(client.buf, 'x', client.size);
	op->ctx = &client;
	op->run = args->test == TEST_STREAM || args->test == TEST_DRAIN ? read_message : pingpong_once;
	return 0;
}

void raw_client_stop(const struct bench_op *op)
{
	struct raw_client *c = op->ctx;

	atomic_store_explicit(&c->shared->stop, 1, memory_order_relaxed);
}

/*
 * The connect cycle's limit.  Whatever else a transport through shared
 * memory does, each connection that is not to share its bytes with any
 * other needs memory of its own that both processes map: the client makes
 * it (memfd_create, ftruncate, mmap, its first page faulted in), passes it
 * with the first message (SCM_RIGHTS: a stream socket carries control
 * data only with at least one byte), the server maps it and faults the
 * page in, and both unmap it when the connection ends.  No seals, no
 * checks, no protocol: the echo is one byte through the page, the answer
 * published on its own line, the client spinning for it as the raw round
 * trip does.
 */
struct raw_connect_page {
	alignas(TSSX_CACHELINE) uint8_t asked;
	alignas(TSSX_CACHELINE) _Atomic uint32_t answered; /* 1 + the byte */
};

#define RAW_CONNECT_MAP 4096u /* one page: what a mapping holds at least */

static struct raw_connect_page *raw_connect_map(int memfd)
{
	void *p = mmap(NULL, RAW_CONNECT_MAP, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int raw_send_fd(int fd, int memfd, uint8_t byte)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &memfd, sizeof(int));
	return sendmsg(fd, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* The memfd of a connection's first message; -ECONNRESET at its end, -EPROTO
 * for a message without one. */
static int raw_receive_fd(int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	uint8_t byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *cmsg;
	ssize_t n;
	int memfd;

	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 ? -ECONNRESET : -errno;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
	    cmsg->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	memcpy(&memfd, CMSG_DATA(cmsg), sizeof(int));
	return memfd;
}

int raw_connect_exchange(int fd, uint8_t *byte)
{
	__do_close int memfd = memfd_create("tssx-bench-raw-connect", MFD_CLOEXEC);
	struct raw_connect_page *page;
	unsigned spins = 0;
	uint32_t answer;
	int r;

	if (memfd < 0 || ftruncate(memfd, RAW_CONNECT_MAP) < 0 || !(page = raw_connect_map(memfd)))
		return -errno;
	page->asked = *byte;
	r = raw_send_fd(fd, memfd, *byte);
	/* Acquire pairs with the server's release: its byte is there. */
	while (r == 0 && !(answer = atomic_load_explicit(&page->answered, memory_order_acquire)))
		backoff(&spins);
	if (r == 0)
		*byte = (uint8_t)(answer - 1);
	munmap(page, RAW_CONNECT_MAP);
	return r;
}

int raw_connect_answer(int fd)
{
	__do_close int memfd = raw_receive_fd(fd);
	struct raw_connect_page *page;

	if (memfd < 0)
		return memfd;
	if (!(page = raw_connect_map(memfd)))
		return -errno;
	/* Release pairs with the client's acquire. */
	atomic_store_explicit(&page->answered, 1u + page->asked, memory_order_release);
	munmap(page, RAW_CONNECT_MAP);
	return 0;
}
