/*
 * tssx-bench: raw shared memory, plain Unix stream sockets and TSSX measured
 * side by side in one run.
 *
 * Process structure.  The orchestrator (tssx-bench without --role) never
 * measures anything itself: for every measurement it forks and re-executes
 * itself twice, as a server and as a client role, each with the environment
 * of its column (LD_PRELOAD of libtssx.so or not), so the preload applies to
 * the exec'd image exactly as it would to an application.  A role gets three
 * descriptors at fixed numbers: its control pipe (the server reports "ready",
 * the client its samples) and two transport descriptors (a memfd for the raw
 * column, the pipe ends for the pipe test).  The client measures; the
 * orchestrator only collects, computes statistics and prints.
 */
#ifndef TSSX_BENCH_H
#define TSSX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Descriptors every role finds open (dup2'ed before exec). */
#define ROLE_FD_CTL 3
#define ROLE_FD_A 4
#define ROLE_FD_B 5

enum bench_test {
	TEST_PINGPONG, /* round trip of one message */
	TEST_STREAM,   /* one-way messages, server writes, client reads */
	TEST_DRAIN,    /* the same, the client reads up to DRAIN_BYTES per call */
	TEST_CONNECT,  /* socket, connect, accept, 1-byte echo, close */
	TEST_PIPE,     /* round trip over two pipes: cost on non-TSSX I/O */
	TEST_BLOCKED,  /* CPU time of a reader blocked in read() */
	TEST_IDLE,     /* resident shared memory of idle connections */
	TEST_COUNT,
};

enum bench_transport {
	TRANSPORT_RAW,    /* spin on atomics in a shared mapping */
	TRANSPORT_SOCKET, /* AF_UNIX stream socket (plain or under TSSX) */
	TRANSPORT_PIPE,
};

/* Each test's name: on the command line (-t, a role's), in the JSON. */
extern const char *const bench_test_names[TEST_COUNT];

/* What a role process is told on its command line. */
struct role_args {
	bool server;
	enum bench_test test;
	enum bench_transport transport;
	size_t size;
	const char *socket_path;
	uint64_t warmup_ns;
	uint64_t duration_ns; /* for TEST_BLOCKED: how long the reader blocks */
};

/* What a client sends back on its control pipe, followed by `count`
 * doubles: nanoseconds per operation of each batch (CPU nanoseconds for
 * TEST_BLOCKED, bytes per connection for TEST_IDLE). */
struct role_report {
	uint32_t count;
	uint32_t flags;
};
#define REPORT_SHM_USED 1u /* a memfd was mapped: TSSX really carried the data */

/* What a draining reader asks for per read (TEST_DRAIN). */
#define DRAIN_BYTES (64u * 1024)
/* Operations per batch at least: 4 MiB, four times a 1 MiB ring, so that
 * what piled up in the ring while the reader was off its CPU (drained at
 * memcpy speed) is at most a quarter of a batch, not a whole sample. */
#define DRAIN_MIN_BATCH ((4u << 20) / DRAIN_BYTES)

/* A TEST_BLOCKED row's size: which connection of the client's process
 * blocks.  The first read of a process carries its first-use work (the
 * registry's helper thread marking the client, the wait policy's setup:
 * docs/wait.md, "What a blocked reader costs"); a later connection's
 * read shows what a blocked read itself costs. */
#define BLOCKED_FIRST 1
#define BLOCKED_LATER 2

/* Connections a TEST_IDLE client holds open, each after a 1-byte echo. */
#define IDLE_CONNECTIONS 200

/* Largest message: sizes the raw column's shared buffers. */
#define BENCH_MAX_SIZE (4u << 20)
/* Batches aimed at per measurement; their spread gives median and p99. */
#define BENCH_TARGET_SAMPLES 200
#define BENCH_MAX_SAMPLES 4096

/* roles.c: runs a role to completion; returns the process exit status. */
int role_main(const struct role_args *args);

/* One measured operation (a round trip, a message, a connect cycle). */
struct bench_op {
	int (*run)(void *ctx); /* 0 or -errno */
	void *ctx;
};

/* raw.c: the physical limit, two processes spinning on a shared mapping
 * (the memfd at ROLE_FD_A). */
size_t raw_shared_size(void);
int raw_serve(const struct role_args *args);
int raw_client_op(const struct role_args *args, struct bench_op *op);
void raw_client_stop(const struct bench_op *op);
/* The raw column of the connect cycle (TEST_CONNECT): the 1-byte echo of
 * a connection whose every byte goes through a shared page of its own, the
 * least any connection through shared memory costs.  The client's part on
 * a connected socket fd (the byte goes out of *byte and comes back in it),
 * the server's on an accepted one; 0 or -errno. */
int raw_connect_exchange(int fd, uint8_t *byte);
int raw_connect_answer(int fd);

/* drain.c: the draining reader of TEST_DRAIN.  One operation drains
 * DRAIN_BYTES; drain_per_message() turns its samples into time per
 * message. */
int drain_socket_op(int fd, struct bench_op *op);
void drain_per_message(const struct role_args *args, double *samples, uint32_t count);

/* stats.c */
uint64_t bench_now_ns(void);

struct bench_stats {
	size_t n;
	double median, p99, min, max;
};

/* Sorts v[0..n) and fills *out; n == 0 gives all zeros.  p99 is the
 * nearest-rank 99th percentile: the slow end for times per operation. */
void bench_stats_compute(double *v, size_t n, struct bench_stats *out);

#endif
