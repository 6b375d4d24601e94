/*
 * tssx-roundtrip: a ping-pong pair with each end pinned to a CPU of its
 * choice, for comparing round trips side by side with less noise than
 * `tssx bench`, whose ends go where the scheduler puts them
 * (docs/benchmark.md, "Cache lines per round trip").
 *
 *   tssx-roundtrip raw N SIZE CPU CPU          the bench's raw column: a
 *                                              sequence number and a
 *                                              buffer per direction, each
 *                                              on lines of its own
 *   tssx-roundtrip socket PATH N SIZE CPU CPU  a Unix stream socket,
 *                                              write() and read(): TSSX
 *                                              when run with LD_PRELOAD
 *
 * The client (first CPU) and the server (second CPU; the same CPU puts
 * both ends on one) are processes of their own, each pinned after a batch
 * of warm-up (after the library counted the CPUs it may use: two ends on
 * one CPU as a wake-up can put them, docs/wait.md "Two ends on one CPU").
 * A CPU given as "-" leaves that end where the scheduler puts it (a
 * pair beside CPU-bound processes pinned by taskset, docs/benchmark.md
 * "One pair beside hogs, by placement").
 * N round trips of SIZE bytes in batches of 1,000; prints the median
 * batch's time per round trip and the fastest and slowest batch, then
 * the client's and the server's voluntary context switches (sleeps), and
 * per round trip of the whole run, warm-up included, the voluntary and
 * involuntary switches and the CPU time of each end, and in how many
 * round trips the client read the answer on the CPU that the server
 * wrote it from.  Both kinds of pair do the same around the transport:
 * the server puts the CPU it answers from in the answer's first byte and
 * the client compares it with its own, so that the socket pair moves no
 * cache line that the raw pair does not (until 2026-12-03 the server
 * stored its CPU in a shared word of its own, which the client loaded at
 * every round trip: one line more per round trip, on the socket pair
 * only; docs/benchmark.md, "The round trip against the raw ring, again").
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench.h"
#include "tssx/macros.h"

#define BATCH 1000ul
#define MAX_SIZE (1u << 20)
#define LINE 64

static void die(const char *what)
{
	fprintf(stderr, "tssx-roundtrip: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fputs("usage: tssx-roundtrip raw N SIZE CPU CPU | socket PATH N SIZE CPU CPU\n", stderr);
	exit(2);
}

static unsigned long number(const char *arg, unsigned long most)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (!*arg || *end || n > most)
		usage();
	return n;
}

#define ANY_CPU ULONG_MAX /* "-": not pinned */

static unsigned long cpu_arg(const char *arg)
{
	return strcmp(arg, "-") == 0 ? ANY_CPU : number(arg, CPU_SETSIZE - 1);
}

static void pin(unsigned long cpu)
{
	cpu_set_t set;

	if (cpu == ANY_CPU)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity");
}

/* What both kinds of pair do at each round trip of the client. */
struct pair {
	void (*round_trip)(struct pair *pair);
	int fd;                  /* socket */
	struct raw_lines *lines; /* raw */
	size_t size;
	uint64_t seq;
	uint8_t *buf;
};

/* Times the batches and prints the summary line. */
static void measure(struct pair *pair, unsigned long n, unsigned long cpu)
{
	unsigned long batches = n / BATCH ? n / BATCH : 1;
	double *ns = calloc(batches, sizeof(*ns));
	double first = 0;
	struct bench_stats stats;

	if (!ns)
		die("calloc");
	for (unsigned long b = 0; b <= batches; b++) {
		uint64_t start = bench_now_ns();

		for (unsigned long i = 0; i < BATCH; i++)
			pair->round_trip(pair);
		if (b)
			ns[b - 1] = (double)(bench_now_ns() - start) / BATCH;
		else
			first = (double)(bench_now_ns() - start) / BATCH;
		if (!b)
			pin(cpu);
	}
	bench_stats_compute(ns, batches, &stats);
	printf("median %.0f ns, min %.0f, max %.0f (%lu batches of %lu), the first batch (warm-up) %.0f\n", stats.median,
	       stats.min, stats.max, batches, BATCH, first);
	free(ns);
}

static long sleeps(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return ru.ru_nvcsw;
}

static double cpu_us(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e6 + (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec);
}

/* Per round trip of the whole run: switches and CPU of one end. */
static void per_round_trip(const char *who, int which, unsigned long total)
{
	struct rusage ru;

	getrusage(which, &ru);
	printf("%s per round trip: %.3f voluntary, %.3f involuntary switches, %.2f us CPU\n", who,
	       (double)ru.ru_nvcsw / (double)total, (double)ru.ru_nivcsw / (double)total, cpu_us(&ru) / (double)total);
}

/* ---- raw: the bench's raw column (bench/raw.c) ---- */

struct raw_lines {
	_Alignas(LINE) _Atomic uint64_t ping;
	_Alignas(LINE) _Atomic uint64_t pong;
	_Alignas(LINE) uint8_t ping_buf[MAX_SIZE];
	_Alignas(LINE) uint8_t pong_buf[MAX_SIZE];
};

static void raw_wait(_Atomic uint64_t *word, uint64_t seq)
{
	while (atomic_load_explicit(word, memory_order_acquire) != seq)
		tssx_cpu_relax();
}

/* The CPU the server wrote the answer from, in the answer's first byte
 * (the CPU number modulo 256), against the client's own: no word beside
 * the transport's (the same for both kinds of pair). */
static unsigned long same_cpu;

static void mark_cpu(uint8_t *answer)
{
	*answer = (uint8_t)sched_getcpu();
}

static void count_same_cpu(const uint8_t *answer)
{
	same_cpu += *answer == (uint8_t)sched_getcpu();
}

static void raw_round_trip(struct pair *p)
{
	uint64_t seq = ++p->seq;

	memcpy(p->lines->ping_buf, p->buf, p->size);
	atomic_store_explicit(&p->lines->ping, seq, memory_order_release);
	raw_wait(&p->lines->pong, seq);
	memcpy(p->buf, p->lines->pong_buf, p->size);
	count_same_cpu(p->buf);
}

static void raw_answer(struct raw_lines *lines, size_t size, unsigned long total, unsigned long cpu)
{
	static uint8_t buf[MAX_SIZE];

	for (uint64_t seq = 1; seq <= total; seq++) {
		if (seq == BATCH + 1)
			pin(cpu);
		raw_wait(&lines->ping, seq);
		memcpy(buf, lines->ping_buf, size);
		mark_cpu(buf);
		memcpy(lines->pong_buf, buf, size);
		atomic_store_explicit(&lines->pong, seq, memory_order_release);
	}
}

/* ---- socket ---- */

static void full(ssize_t (*io)(int, void *, size_t), int fd, uint8_t *buf, size_t size)
{
	for (size_t done = 0; done < size;) {
		ssize_t r = io(fd, buf + done, size - done);

		if (r <= 0)
			die(r ? "read or write" : "end of stream");
		done += (size_t)r;
	}
}

static ssize_t write_some(int fd, void *buf, size_t len)
{
	return write(fd, buf, len);
}

static void socket_round_trip(struct pair *p)
{
	full(write_some, p->fd, p->buf, p->size);
	full(read, p->fd, p->buf, p->size);
	count_same_cpu(p->buf);
}

static void socket_serve(int fd, uint8_t *buf, size_t size, unsigned long total, unsigned long cpu)
{
	for (unsigned long i = 0; i < total; i++) {
		if (i == BATCH)
			pin(cpu);
		full(read, fd, buf, size);
		mark_cpu(buf);
		full(write_some, fd, buf, size);
	}
}

int main(int argc, char **argv)
{
	bool raw = argc == 6 && !strcmp(argv[1], "raw");
	int at = raw ? 2 : 3;
	struct pair pair = { 0 };
	unsigned long n, client_cpu, server_cpu, total;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int listen_fd = -1, status;
	pid_t server;

	if (!raw && (argc != 7 || strcmp(argv[1], "socket")))
		usage();
	n = number(argv[at], 100000000);
	pair.size = number(argv[at + 1], MAX_SIZE);
	client_cpu = cpu_arg(argv[at + 2]);
	server_cpu = cpu_arg(argv[at + 3]);
	total = ((n / BATCH ? n / BATCH : 1) + 1) * BATCH;
	if (!pair.size)
		usage();
	pair.buf = calloc(1, pair.size);
	if (!pair.buf)
		die("calloc");
	if (raw) {
		pair.lines = mmap(NULL, sizeof(*pair.lines), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (pair.lines == MAP_FAILED)
			die("mmap");
		pair.round_trip = raw_round_trip;
	} else {
		if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", argv[2]) >= (int)sizeof(addr.sun_path))
			usage();
		listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		unlink(argv[2]);
		if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listen_fd, 1) < 0)
			die("listen");
		pair.round_trip = socket_round_trip;
	}
	fflush(stdout);
	server = fork();
	if (server < 0)
		die("fork");
	if (server == 0) {
		if (raw) {
			raw_answer(pair.lines, pair.size, total, server_cpu);
		} else {
			int fd = accept(listen_fd, NULL, NULL);

			if (fd < 0)
				die("accept");
			socket_serve(fd, pair.buf, pair.size, total, server_cpu);
		}
		exit(0);
	}
	if (!raw) {
		pair.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (pair.fd < 0 || connect(pair.fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
			die("connect");
	}
	measure(&pair, n, client_cpu);
	if (waitpid(server, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		die("server");
	printf("sleeps: client %ld, server %ld\n", sleeps(RUSAGE_SELF), sleeps(RUSAGE_CHILDREN));
	per_round_trip("client", RUSAGE_SELF, total);
	per_round_trip("server", RUSAGE_CHILDREN, total);
	printf("answers read on the CPU they were written from: %lu of %lu\n", same_cpu, total);
	if (!raw)
		unlink(argv[2]);
	return 0;
}
