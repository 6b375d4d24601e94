/*
 * tssx-wakecost: what it costs to wake a sleeping peer, by mechanism, for
 * ping-pong pairs that always sleep (docs/wait.md, "What a sleep costs").
 * It needs no TSSX: each pair is two processes that pass a 64-byte message
 * back and forth, and every round trip wakes both of them.
 *
 *   socket   the message through a Unix stream socketpair (plain sockets)
 *   bell     the message in shared memory, a one-byte doorbell through the
 *            socketpair when the peer sleeps (what libtssx does)
 *   pipe     the same with the doorbell through a pipe
 *   futex    the same with FUTEX_WAIT / FUTEX_WAKE on the message counter
 *   epbell   the bell's doorbell, the sleeper in epoll_wait on the socket
 *            (edge-triggered), then a drain: libtssx's epoll sets before
 *            the eventfd bell
 *   epevent  the sleeper in epoll_wait on an eventfd of its own (count 1,
 *            edge-triggered, never read) that the waker writes 0 to:
 *            libtssx's eventfd bell (docs/events.md)
 *   waitv    the futex mode with FUTEX_WAITV on the counter and on a
 *            private word of the sleeper's that nothing moves (libtssx's
 *            futex bell: its own wake-ups come on that word, docs/wait.md)
 *
 * Modes alternate round by round; it prints per mode the median and range
 * of round trips per second (all pairs together) and of CPU time per round
 * trip (user + system of both ends, the hogs not counted).
 */
#include <errno.h>
#include <getopt.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE 64
#define MODES 7

enum mode { MODE_SOCKET, MODE_BELL, MODE_PIPE, MODE_FUTEX, MODE_EPOLL_BELL, MODE_EPOLL_EVENTFD, MODE_WAITV };
static const char *const mode_names[MODES] = { "socket", "bell", "pipe", "futex", "epbell", "epevent", "waitv" };

/* The modes whose wake-up is a FUTEX_WAKE on the counter. */
static int wakes_by_futex(enum mode mode)
{
	return mode == MODE_FUTEX || mode == MODE_WAITV;
}

/* One direction of a pair: the writer bumps `seq` after the message, the
 * reader sleeps when it finds no new one.  Each on a line of its own. */
struct lane {
	_Alignas(64) _Atomic unsigned seq;
	_Atomic unsigned sleeping;
	char message[MESSAGE];
};

/* Where one end reads from and writes to. */
struct end {
	enum mode mode;
	struct lane *in, *out;
	int bell_in, bell_out;	/* socket, pipe or eventfd fds; for MODE_SOCKET the data fd */
	int epfd;		/* the epoll modes' set, holding bell_in */
};

struct result {
	double trips_per_s, cpu_us;
};

static void die(const char *what)
{
	fprintf(stderr, "tssx-wakecost: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A doorbell owed to this end, consumed (the eventfd's is never read). */
static void take_bell(const struct end *e)
{
	char bell;

	if (wakes_by_futex(e->mode) || e->mode == MODE_EPOLL_EVENTFD)
		return;
	if (read(e->bell_in, &bell, 1) != 1)
		_exit(3); /* the peer is gone */
}

static void sleep_on(const struct end *e, unsigned seen)
{
	/* Each end is a process: the word is its own. */
	static _Atomic unsigned own;
	struct futex_waitv words[2] = {
		{ .val = seen, .uaddr = (uintptr_t)&e->in->seq, .flags = FUTEX_32 },
		{ .val = 0, .uaddr = (uintptr_t)&own, .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG },
	};
	struct epoll_event event;

	if (e->mode == MODE_FUTEX) {
		syscall(SYS_futex, &e->in->seq, FUTEX_WAIT, seen, NULL, NULL, 0);
		return;
	}
	if (e->mode == MODE_WAITV) {
		syscall(SYS_futex_waitv, words, 2, 0, NULL, 0);
		return;
	}
	if ((e->mode == MODE_EPOLL_BELL || e->mode == MODE_EPOLL_EVENTFD) && epoll_wait(e->epfd, &event, 1, -1) < 0)
		_exit(3);
	take_bell(e);
}

/* Waits until the peer's counter moves past `seen`.  The flag is raised
 * before the counter is read again, and the writer bumps the counter
 * before it looks at the flag (both seq_cst): one of the two sees the
 * other, so no wake-up is lost.  A raised flag that the writer took owes
 * this end one doorbell, which it reads so that none is left over. */
static void wait_for(const struct end *e, unsigned seen)
{
	while (atomic_load(&e->in->seq) == seen) {
		atomic_store(&e->in->sleeping, 1);
		if (atomic_load(&e->in->seq) != seen) {
			if (atomic_exchange(&e->in->sleeping, 0) == 0)
				take_bell(e);
			return;
		}
		sleep_on(e, seen);
	}
}

static void post(const struct end *e)
{
	static const char bell;
	static const uint64_t zero;

	atomic_fetch_add(&e->out->seq, 1);
	if (atomic_exchange(&e->out->sleeping, 0) == 0)
		return;
	if (wakes_by_futex(e->mode))
		syscall(SYS_futex, &e->out->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
	else if (e->mode == MODE_EPOLL_EVENTFD) {
		if (write(e->bell_out, &zero, sizeof(zero)) != sizeof(zero))
			_exit(3);
	} else if (write(e->bell_out, &bell, 1) != 1)
		_exit(3);
}

static void send_message(struct end *e, const char *message)
{
	if (e->mode == MODE_SOCKET) {
		if (write(e->bell_out, message, MESSAGE) != MESSAGE)
			_exit(3);
		return;
	}
	memcpy(e->out->message, message, MESSAGE);
	post(e);
}

/* Reads the next message; *seen counts those read on shared memory. */
static void receive_message(struct end *e, unsigned *seen, char *message)
{
	size_t got = 0;

	if (e->mode == MODE_SOCKET) {
		while (got < MESSAGE) {
			ssize_t n = read(e->bell_in, message + got, MESSAGE - got);

			if (n <= 0)
				_exit(0); /* the client is done */
			got += (size_t)n;
		}
		return;
	}
	wait_for(e, *seen);
	(*seen)++;
	memcpy(message, e->in->message, MESSAGE);
}

/* The server echoes until the client closes its end (socket modes) or
 * sends a message starting with 0 (futex and waitv, which have no end of
 * stream). */
static void serve(struct end *e)
{
	char message[MESSAGE];
	unsigned seen = 0;

	for (;;) {
		receive_message(e, &seen, message);
		if (message[0] == 0)
			_exit(0);
		send_message(e, message);
	}
}

static void client(struct end *e, double seconds, long *trips)
{
	char message[MESSAGE];
	unsigned seen = 0;
	double end = now_s() + seconds;
	long n = 0;

	memset(message, 1, sizeof(message));
	do {
		for (int i = 0; i < 64; i++) {
			send_message(e, message);
			receive_message(e, &seen, message);
		}
		n += 64;
	} while (now_s() < end);
	*trips = n;
	message[0] = 0;
	send_message(e, message);
	_exit(0);
}

/* The two ends' fds: a socketpair for socket and bell, two pipes for pipe
 * (each end reads its own), an eventfd per end for epevent (each end holds
 * its own and a copy of the peer's), none for futex and waitv. */
static void connect_ends(enum mode mode, struct end *server, struct end *client_end)
{
	int sv[2], to_server[2], to_client[2];

	if (mode == MODE_EPOLL_EVENTFD) {
		server->bell_in = eventfd(1, EFD_CLOEXEC);
		client_end->bell_in = eventfd(1, EFD_CLOEXEC);
		if (server->bell_in < 0 || client_end->bell_in < 0)
			die("eventfd");
		server->bell_out = dup(client_end->bell_in);
		client_end->bell_out = dup(server->bell_in);
		if (server->bell_out < 0 || client_end->bell_out < 0)
			die("dup");
		return;
	}
	if (mode == MODE_PIPE) {
		if (pipe(to_server) < 0 || pipe(to_client) < 0)
			die("pipe");
		server->bell_in = to_server[0];
		client_end->bell_out = to_server[1];
		client_end->bell_in = to_client[0];
		server->bell_out = to_client[1];
		return;
	}
	if (wakes_by_futex(mode))
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	server->bell_in = server->bell_out = sv[0];
	client_end->bell_in = client_end->bell_out = sv[1];
}

static double cpu_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec * 1e-6 + (double)ru->ru_stime.tv_sec +
	       (double)ru->ru_stime.tv_usec * 1e-6;
}

static void close_end(const struct end *e)
{
	if (e->bell_in >= 0)
		close(e->bell_in);
	if (e->bell_out >= 0 && e->bell_out != e->bell_in)
		close(e->bell_out);
}

/* A process for one end: it holds only its own fds, so that it reads EOF
 * when the other end is gone instead of waiting for good. */
static pid_t start(struct end *e, const struct end *other, double seconds, long *trips)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid > 0)
		return pid;
	close_end(other);
	if (e->mode == MODE_EPOLL_BELL || e->mode == MODE_EPOLL_EVENTFD) {
		struct epoll_event event = { .events = EPOLLIN | EPOLLET };

		e->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (e->epfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->bell_in, &event) < 0)
			die("epoll");
	}
	if (trips)
		client(e, seconds, trips);
	serve(e);
	_exit(0);
}

static struct result run_round(enum mode mode, int pairs, double seconds, long *trips)
{
	size_t size = sizeof(struct lane) * 2 * (size_t)pairs;
	struct lane *lanes = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double cpu = 0;
	long total = 0;
	struct rusage ru;

	if (lanes == MAP_FAILED)
		die("mmap");
	for (int p = 0; p < pairs; p++) {
		struct end server = { mode, &lanes[2 * p], &lanes[2 * p + 1], -1, -1, -1 };
		struct end client_end = { mode, &lanes[2 * p + 1], &lanes[2 * p], -1, -1, -1 };

		trips[p] = 0;
		connect_ends(mode, &server, &client_end);
		start(&server, &client_end, seconds, NULL);
		start(&client_end, &server, seconds, &trips[p]);
		close_end(&server);
		close_end(&client_end);
	}
	for (int ended = 0; ended < 2 * pairs; ended++) {
		if (wait4(0, NULL, 0, &ru) < 0)
			die("wait4");
		cpu += cpu_s(&ru);
	}
	for (int p = 0; p < pairs; p++)
		total += trips[p];
	munmap(lanes, size);
	return (struct result){ total / seconds, total ? cpu * 1e6 / (double)total : 0 };
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts the rounds' values; the median, the smallest and the largest. */
static void spread(double *values, int n, double *median, double *min, double *max)
{
	qsort(values, (size_t)n, sizeof(*values), compare_doubles);
	*median = values[n / 2];
	*min = values[0];
	*max = values[n - 1];
}

static void usage(FILE *out, int status)
{
	fputs("usage: tssx-wakecost [-p PAIRS] [-H HOGS] [-d SECONDS] [-r ROUNDS]\n"
	      "\n"
	      "Ping-pong pairs that sleep at every wait, woken through a Unix socket\n"
	      "(the message itself, or a doorbell byte beside a message in shared\n"
	      "memory), a pipe doorbell or a futex, or sleeping in epoll_wait on the\n"
	      "socket (with the doorbell) or on an eventfd, or in FUTEX_WAITV on the\n"
	      "futex and a private word; modes alternate round by round.\n"
	      "\n"
	      "  -p PAIRS    pairs at once (default 16)\n"
	      "  -H HOGS     CPU-bound processes running throughout (default 0)\n"
	      "  -d SECONDS  length of a round (default 1)\n"
	      "  -r ROUNDS   rounds per mode (default 5)\n"
	      "  -h          this help\n",
	      out);
	exit(status);
}

static int positive(const char *arg, int max)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*arg == '\0' || *end != '\0' || v < 0 || v > max)
		usage(stderr, 2);
	return (int)v;
}

int main(int argc, char **argv)
{
	int pairs = 16, hogs = 0, rounds = 5, opt;
	double seconds = 1;
	pid_t hog_pids[64];
	long *trips;
	double rate[MODES][64], cpu[MODES][64];

	while ((opt = getopt(argc, argv, "p:H:d:r:h")) != -1) {
		switch (opt) {
		case 'p': pairs = positive(optarg, 256); break;
		case 'H': hogs = positive(optarg, 64); break;
		case 'd': seconds = positive(optarg, 60); break;
		case 'r': rounds = positive(optarg, 64); break;
		case 'h': usage(stdout, 0); break;
		default: usage(stderr, 2);
		}
	}
	if (optind != argc || pairs < 1 || rounds < 1 || seconds < 1)
		usage(stderr, 2);
	trips = mmap(NULL, sizeof(long) * (size_t)pairs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (trips == MAP_FAILED)
		die("mmap");
	for (int h = 0; h < hogs; h++) {
		hog_pids[h] = fork();
		if (hog_pids[h] < 0)
			die("fork");
		if (hog_pids[h] == 0) {
			setpgid(0, 0); /* out of the group whose ends wait4() collects */
			for (volatile unsigned long spin = 0;; spin++)
				;
		}
	}
	for (int r = 0; r < rounds; r++)
		for (int m = 0; m < MODES; m++) {
			struct result res = run_round((enum mode)m, pairs, seconds, trips);

			rate[m][r] = res.trips_per_s;
			cpu[m][r] = res.cpu_us;
		}
	for (int h = 0; h < hogs; h++) {
		kill(hog_pids[h], SIGKILL);
		waitpid(hog_pids[h], NULL, 0);
	}
	printf("%d pairs, %d hogs, %d rounds of %.0f s: median (min-max)\n", pairs, hogs, rounds, seconds);
	printf("%-8s %-32s %s\n", "mode", "round trips/s", "CPU us per round trip");
	for (int m = 0; m < MODES; m++) {
		double r_med, r_min, r_max, c_med, c_min, c_max;

		spread(rate[m], rounds, &r_med, &r_min, &r_max);
		spread(cpu[m], rounds, &c_med, &c_min, &c_max);
		printf("%-8s %9.0f (%7.0f-%7.0f)      %6.1f (%5.1f-%5.1f)\n", mode_names[m], r_med, r_min, r_max,
		       c_med, c_min, c_max);
	}
	return 0;
}
