/*
 * The server and client roles, run in processes of their own under the
 * environment of their column.  The socket code is the same for the plain
 * and the TSSX column: only LD_PRELOAD differs.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tssx/macros.h"
#include "bench.h"
#include "thread_count.h"

struct socket_client {
	const struct role_args *args;
	int fd;
	uint8_t buf[BENCH_MAX_SIZE];
};

/* Writes or reads exactly len bytes, as the socket lets it; a read that
 * meets the end of the stream first gives -ECONNRESET. */
static int transfer_full(int fd, void *buf, size_t len, bool out)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = out ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	return transfer_full(fd, (void *)buf, len, true);
}

static int read_full(int fd, void *buf, size_t len)
{
	return transfer_full(fd, buf, len, false);
}

static void socket_address(const char *path, struct sockaddr_un *addr)
{
	*addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	/* The orchestrator chose a path that fits. */
	memcpy(addr->sun_path, path, strnlen(path, sizeof(addr->sun_path) - 1));
}

static int socket_connect(const char *path)
{
	struct sockaddr_un addr;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	socket_address(path, &addr);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int socket_listen(const char *path)
{
	struct sockaddr_un addr;
	__do_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	socket_address(path, &addr);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 128) < 0)
		return -errno;
	return move_fd(fd);
}

static int accept_one(int listen_fd)
{
	int fd;

	do
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

/* ---------------------------------------------------------------------
 * Servers
 * --------------------------------------------------------------------- */

static int echo_messages(int fd, int out_fd, size_t size)
{
	static uint8_t buf[BENCH_MAX_SIZE];
	int r;

	while ((r = read_full(fd, buf, size)) == 0)
		if ((r = write_full(out_fd, buf, size)) < 0)
			return r;
	return r == -ECONNRESET ? 0 : r; /* the client is done */
}

static int write_messages(int fd, size_t size)
{
	static uint8_t buf[BENCH_MAX_SIZE];
	int r;

	memset(buf, 'x', size);
	while ((r = write_full(fd, buf, size)) == 0)
		;
	return r == -EPIPE || r == -ECONNRESET ? 0 : r;
}

/* Echoes the first byte of a connection. */
static int echo_byte(int fd)
{
	uint8_t byte;
	int r = read_full(fd, &byte, 1);

	return r == 0 ? write_full(fd, &byte, 1) : r;
}

/* Answers every connection with `answer` (the socket's 1-byte echo, or
 * the raw column's through a page of the connection's own), then closes it. */
static int echo_connections(int listen_fd, int (*answer)(int fd))
{
	for (;;) {
		__do_close int fd = accept_one(listen_fd);
		int r;

		if (fd < 0)
			return fd;
		r = answer(fd);
		if (r < 0 && r != -ECONNRESET && r != -EPIPE)
			return r;
	}
}

/* Echoes the first byte of every connection and keeps it open, idle,
 * until the orchestrator stops this role (TEST_IDLE). */
static int hold_connections(int listen_fd)
{
	for (;;) {
		int fd = accept_one(listen_fd);
		int r = fd < 0 ? fd : echo_byte(fd);

		if (r < 0)
			return r;
	}
}

/* Answers the client's first byte only after `delay` nanoseconds, during
 * which the client sits blocked in read(). */
static int answer_late(int fd, uint64_t delay)
{
	struct timespec ts = { .tv_sec = (time_t)(delay / 1000000000u),
			       .tv_nsec = (long)(delay % 1000000000u) };
	uint8_t byte;
	int r = read_full(fd, &byte, 1);

	if (r < 0)
		return r;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	r = write_full(fd, &byte, 1);
	if (r == 0)
		r = read_full(fd, &byte, 1); /* wait for the client to hang up */
	return r == -ECONNRESET ? 0 : r;
}

/* BLOCKED_LATER: echoes the client's first connection, then answers its
 * second late. */
static int answer_second_late(int first_fd, int listen_fd, uint64_t delay)
{
	__do_close int fd = -1;
	int r = echo_byte(first_fd);

	if (r < 0)
		return r;
	if ((fd = accept_one(listen_fd)) < 0)
		return fd;
	return answer_late(fd, delay);
}

static int signal_ready(void)
{
	int r = write_full(ROLE_FD_CTL, "r", 1);

	close(ROLE_FD_CTL);
	return r;
}

static int serve_socket(const struct role_args *args)
{
	__do_close int listen_fd = socket_listen(args->socket_path);
	__do_close int fd = -1;
	int r;

	if (listen_fd < 0)
		return listen_fd;
	if ((r = signal_ready()) < 0)
		return r;
	if (args->test == TEST_CONNECT)
		return echo_connections(listen_fd, args->transport == TRANSPORT_RAW ? raw_connect_answer : echo_byte);
	if (args->test == TEST_IDLE)
		return hold_connections(listen_fd);
	if ((fd = accept_one(listen_fd)) < 0)
		return fd;
	switch (args->test) {
	case TEST_STREAM:
	case TEST_DRAIN:
		return write_messages(fd, args->size);
	case TEST_BLOCKED:
		return args->size == BLOCKED_LATER ? answer_second_late(fd, listen_fd, args->duration_ns)
						   : answer_late(fd, args->duration_ns);
	default:
		return echo_messages(fd, fd, args->size);
	}
}

static int serve(const struct role_args *args)
{
	int r;

	switch (args->transport) {
	case TRANSPORT_RAW:
		if (args->test == TEST_CONNECT)
			return serve_socket(args);
		r = signal_ready();
		return r < 0 ? r : raw_serve(args);
	case TRANSPORT_PIPE:
		r = signal_ready();
		return r < 0 ? r : echo_messages(ROLE_FD_A, ROLE_FD_B, args->size);
	default:
		return serve_socket(args);
	}
}

/* ---------------------------------------------------------------------
 * Client operations
 * --------------------------------------------------------------------- */

static int socket_round_trip(void *ctx)
{
	struct socket_client *c = ctx;
	int r = write_full(c->fd, c->buf, c->args->size);

	return r < 0 ? r : read_full(c->fd, c->buf, c->args->size);
}

static int pipe_round_trip(void *ctx)
{
	struct socket_client *c = ctx;
	int r = write_full(ROLE_FD_A, c->buf, c->args->size);

	return r < 0 ? r : read_full(ROLE_FD_B, c->buf, c->args->size);
}

static int socket_read_message(void *ctx)
{
	struct socket_client *c = ctx;

	return read_full(c->fd, c->buf, c->args->size);
}

static int connect_cycle(void *ctx)
{
	struct socket_client *c = ctx;
	__do_close int fd = socket_connect(c->args->socket_path);
	int r;

	if (fd < 0)
		return fd;
	if (c->args->transport == TRANSPORT_RAW)
		return raw_connect_exchange(fd, c->buf);
	r = write_full(fd, c->buf, 1);
	return r < 0 ? r : read_full(fd, c->buf, 1);
}

/* Whether this process maps a memfd: only TSSX creates one in a socket
 * client, so it tells that the data really went through shared memory. */
static bool maps_memfd(void)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	char line[512];
	bool found = false;

	if (!maps)
		return false;
	while (!found && fgets(line, sizeof(line), maps))
		found = strstr(line, "/memfd:") != NULL;
	fclose(maps);
	return found;
}

static int socket_client_op(const struct role_args *args, struct bench_op *op)
{
	static struct socket_client client;

	client = (struct socket_client){ .args = args, .fd = -1 };
	memset(client.buf, 'x', args->size);
	op->ctx = &client;
	switch (args->test) {
	case TEST_CONNECT:
		op->run = connect_cycle;
		return 0;
	case TEST_PIPE:
		op->run = pipe_round_trip;
		return 0;
	case TEST_STREAM:
		op->run = socket_read_message;
		break;
	default:
		op->run = socket_round_trip;
		break;
	}
	client.fd = socket_connect(args->socket_path);
	if (client.fd >= 0 && args->test == TEST_DRAIN)
		return drain_socket_op(client.fd, op);
	return client.fd < 0 ? client.fd : 0;
}

/* ---------------------------------------------------------------------
 * Measuring
 * --------------------------------------------------------------------- */

static int run_batch(const struct bench_op *op, uint64_t count)
{
	for (uint64_t i = 0; i < count; i++) {
		int r = op->run(op->ctx);

		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Warms up (caches, page faults, the TSSX handshake) for warmup_ns, sizes
 * batches from the rate seen there so the run yields about
 * BENCH_TARGET_SAMPLES of them, then times batch after batch until
 * duration_ns have passed.  One sample: mean nanoseconds per operation of
 * one batch.  Timing batches rather than single operations keeps the
 * clock's own cost out of sub-microsecond results.
 */
static int measure(const struct role_args *args, const struct bench_op *op,
		   double *samples, uint32_t *count)
{
	uint64_t start = bench_now_ns(), ops = 0, elapsed, batch, t0, t1;
	int r;

	do {
		if ((r = op->run(op->ctx)) < 0)
			return r;
		ops++;
		elapsed = bench_now_ns() - start;
	} while (elapsed < args->warmup_ns);
	batch = (uint64_t)((double)args->duration_ns / BENCH_TARGET_SAMPLES / ((double)elapsed / (double)ops));
	if (batch < 1)
		batch = 1;
	if (args->test == TEST_DRAIN && batch < DRAIN_MIN_BATCH)
		batch = DRAIN_MIN_BATCH;
	*count = 0;
	start = bench_now_ns();
	do {
		t0 = bench_now_ns();
		if ((r = run_batch(op, batch)) < 0)
			return r;
		t1 = bench_now_ns();
		samples[(*count)++] = (double)(t1 - t0) / (double)batch;
	} while (t1 - start < args->duration_ns && *count < BENCH_MAX_SAMPLES);
	return 0;
}

static uint64_t cpu_time_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/* BLOCKED_LATER: a first connection and its 1-byte echo, then until the
 * work that a process's first connection hands to other threads is done
 * (the registry's helper thread ends on its own; at most a second), so
 * that the measured read pays only for itself. */
static int warm_up_blocked(const struct role_args *args)
{
	const struct timespec tick = { .tv_nsec = 1000000 };
	__do_close int fd = socket_connect(args->socket_path);
	uint8_t byte = 'x';
	int r;

	if (fd < 0)
		return fd;
	if ((r = write_full(fd, &byte, 1)) < 0 || (r = read_full(fd, &byte, 1)) < 0)
		return r;
	for (int i = 0; i < 1000 && thread_count() > 1; i++)
		nanosleep(&tick, NULL);
	return 0;
}

/* One sample: CPU nanoseconds this process used while its read() waited
 * for the server's late answer.  *shm_used is checked while the connection
 * still exists. */
static int measure_blocked(const struct role_args *args, double *sample, bool *shm_used)
{
	int warm = args->size == BLOCKED_LATER ? warm_up_blocked(args) : 0;
	__do_close int fd = warm < 0 ? -1 : socket_connect(args->socket_path);
	uint8_t byte = 'x';
	uint64_t before;
	int r;

	if (warm < 0)
		return warm;
	if (fd < 0)
		return fd;
	if ((r = write_full(fd, &byte, 1)) < 0)
		return r;
	before = cpu_time_ns();
	if ((r = read_full(fd, &byte, 1)) < 0)
		return r;
	*sample = (double)(cpu_time_ns() - before);
	*shm_used = maps_memfd();
	return 0;
}

/*
 * Bytes of TSSX segments resident in memory: mincore() of every mapping of
 * a segment's memfd ("memfd:tssx") tells which of its pages are in the
 * page cache, whichever end touched them; plain sockets have none.
 */
static int resident_segment_bytes(uint64_t *bytes)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	long page = sysconf(_SC_PAGESIZE);
	unsigned char vec[256];
	char line[512];
	int r = 0;

	if (!maps)
		return -errno;
	*bytes = 0;
	while (r == 0 && fgets(line, sizeof(line), maps)) {
		uintptr_t start, end;

		if (!strstr(line, "/memfd:tssx ") || sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &start, &end) != 2)
			continue;
		for (uintptr_t at = start; r == 0 && at < end; at += sizeof(vec) * (size_t)page) {
			size_t pages = (end - at) / (size_t)page < sizeof(vec) ? (end - at) / (size_t)page : sizeof(vec);

			if (mincore((void *)at, pages * (size_t)page, vec) < 0)
				r = -errno;
			for (size_t i = 0; r == 0 && i < pages; i++)
				*bytes += (vec[i] & 1) ? (uint64_t)page : 0;
		}
	}
	fclose(maps);
	return r;
}

/* One sample: the bytes of shared memory resident per connection while
 * IDLE_CONNECTIONS connections, each past a 1-byte echo, sit idle; the
 * server holds its ends open meanwhile.  The descriptors stay open until
 * this role exits. */
static int measure_idle(double *sample, bool *shm_used, const struct role_args *args)
{
	uint64_t bytes;
	uint8_t byte = 'x';
	int r;

	for (int i = 0; i < IDLE_CONNECTIONS; i++) {
		int fd = socket_connect(args->socket_path);

		if (fd < 0)
			return fd;
		if ((r = write_full(fd, &byte, 1)) < 0 || (r = read_full(fd, &byte, 1)) < 0)
			return r;
	}
	if ((r = resident_segment_bytes(&bytes)) < 0)
		return r;
	*sample = (double)bytes / IDLE_CONNECTIONS;
	*shm_used = maps_memfd();
	return 0;
}

static int send_report(const double *samples, uint32_t count, bool shm_used)
{
	struct role_report report = { .count = count, .flags = shm_used ? REPORT_SHM_USED : 0 };
	int r = write_full(ROLE_FD_CTL, &report, sizeof(report));

	return r < 0 ? r : write_full(ROLE_FD_CTL, samples, count * sizeof(*samples));
}

static int client(const struct role_args *args)
{
	static double samples[BENCH_MAX_SAMPLES];
	struct bench_op op;
	uint32_t count = 1;
	bool shm_used = false;
	int r;

	if (args->test == TEST_BLOCKED) {
		r = measure_blocked(args, samples, &shm_used);
	} else if (args->test == TEST_IDLE) {
		r = measure_idle(samples, &shm_used, args);
	} else if (args->transport == TRANSPORT_RAW && args->test != TEST_CONNECT) {
		if ((r = raw_client_op(args, &op)) < 0)
			return r;
		r = measure(args, &op, samples, &count);
		raw_client_stop(&op);
		shm_used = true;
	} else {
		if ((r = socket_client_op(args, &op)) < 0)
			return r;
		r = measure(args, &op, samples, &count);
		/* The raw connect cycle unmaps its page at every end. */
		shm_used = args->transport == TRANSPORT_RAW || maps_memfd();
	}
	if (args->test == TEST_DRAIN)
		drain_per_message(args, samples, count);
	return r < 0 ? r : send_report(samples, count, shm_used);
}

int role_main(const struct role_args *args)
{
	int r;

	signal(SIGPIPE, SIG_IGN);
	r = args->server ? serve(args) : client(args);
	if (r < 0) {
		fprintf(stderr, "tssx-bench: %s: %s\n", args->server ? "server" : "client", strerror(-r));
		return 1;
	}
	return 0;
}
