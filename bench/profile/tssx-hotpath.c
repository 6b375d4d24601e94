/*
 * tssx-hotpath: a fixed, single-process workload for counting what the
 * library's hot paths cost under valgrind --tool=callgrind, strace -c or
 * ltrace (docs/benchmark.md, "Where the time goes").  It measures nothing
 * itself: the tools count the calls it makes.
 *
 *   tssx-hotpath stream PATH N SIZE   one connection (listen, connect,
 *                                     accept in this process), then N
 *                                     writes of SIZE bytes on one end and
 *                                     N reads of SIZE on the other, in
 *                                     batches of up to 32 KiB: no call
 *                                     waits, none rings a doorbell
 *   tssx-hotpath pipe N SIZE          the same over a pipe: a non-TSSX fd
 *   tssx-hotpath connect PATH N       N connect cycles: socket, connect,
 *                                     accept, 1-byte echo, close
 *   tssx-hotpath idle PATH N          N connections kept open after a
 *                                     1-byte echo each: prints the growth
 *                                     of Shmem in /proc/meminfo per
 *                                     connection (both ends' segment)
 *   tssx-hotpath fresh PATH N [C]     tssx bench --load's connection per
 *                                     request: this process an epoll
 *                                     server echoing 64 B, C fork()ed
 *                                     children (default 1) clients making
 *                                     N connections each (connect, write,
 *                                     read, close); separate processes,
 *                                     as a program's are
 *   tssx-hotpath writers PATH N B     one connection, two threads
 *                                     writing N messages of 64 B each on
 *                                     it, yielding the CPU after every B
 *                                     (0: never), a third reading them:
 *                                     prints the time per write (what
 *                                     threads that take turns on one
 *                                     side lock pay)
 *   tssx-hotpath fork PATH N C        C connections of this process with
 *                                     itself (a 1-byte echo each; C may
 *                                     be 0), then N cycles of fork(), a
 *                                     child that _exit()s at once and
 *                                     waitpid(): prints the minor page
 *                                     faults and CPU time per fork of the
 *                                     children and of this process
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "tssx-hotpath: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fputs("usage: tssx-hotpath stream PATH N SIZE | pipe N SIZE | connect PATH N | idle PATH N |\n"
	      "                    fresh PATH N [CLIENTS] | fork PATH N CONNECTIONS |\n"
	      "                    writers PATH N BURST\n",
	      stderr);
	exit(2);
}

static unsigned long number(const char *arg)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (!*arg || *end || n == 0)
		usage();
	return n;
}

static struct sockaddr_un address(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(addr.sun_path))
		usage();
	strcpy(addr.sun_path, path);
	return addr;
}

static int listen_on(const char *path)
{
	struct sockaddr_un addr = address(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0)
		die("listen");
	return fd;
}

/* One connection of this process with itself: *client and *server. */
static void connect_pair(int listen_fd, const char *path, int *client, int *server)
{
	struct sockaddr_un addr = address(path);

	*client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*client < 0 || connect(*client, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("connect");
	*server = accept(listen_fd, NULL, NULL);
	if (*server < 0)
		die("accept");
}

/* What a pipe and a ring both take without a reader. */
#define BATCH_BYTES (32 * 1024)

static void transfer(int out, int in, unsigned long n, size_t size)
{
	unsigned long batch = size < BATCH_BYTES ? BATCH_BYTES / size : 1;
	char *buf = calloc(1, size);

	if (!buf)
		die("calloc");
	for (unsigned long done = 0, todo; done < n; done += todo) {
		todo = n - done < batch ? n - done : batch;
		for (unsigned long i = 0; i < todo; i++)
			if (write(out, buf, size) != (ssize_t)size)
				die("write");
		for (unsigned long i = 0; i < todo; i++)
			if (read(in, buf, size) != (ssize_t)size)
				die("read");
	}
	free(buf);
}

static void echo_byte(int client, int server)
{
	char c = 'x';

	if (write(client, &c, 1) != 1 || read(server, &c, 1) != 1 ||
	    write(server, &c, 1) != 1 || read(client, &c, 1) != 1)
		die("echo");
}

static void connect_cycles(int listen_fd, const char *path, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		int client, server;

		connect_pair(listen_fd, path, &client, &server);
		echo_byte(client, server);
		close(client);
		close(server);
	}
}

/* Shmem of /proc/meminfo, in KiB: every process's shared memory, so
 * others' changes meanwhile show too (large N averages them out). */
static long shmem_kib(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long kib = -1;

	if (!f)
		die("/proc/meminfo");
	while (kib < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "Shmem: %ld kB", &kib) != 1)
			kib = -1;
	fclose(f);
	return kib;
}

static void idle_connections(int listen_fd, const char *path, unsigned long n)
{
	struct rlimit limit;
	long before;

	/* Two fds per connection. */
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
	before = shmem_kib();
	for (unsigned long i = 0; i < n; i++) {
		int client, server;

		connect_pair(listen_fd, path, &client, &server);
		echo_byte(client, server);
	}
	printf("%lu idle connections: Shmem grew by %ld KiB, %.1f KiB per connection\n", n,
	       shmem_kib() - before, (double)(shmem_kib() - before) / (double)n);
}

/* Exactly len bytes each way on a blocking fd. */
static void echo_message(int fd, char *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n <= 0)
			die("write");
		done += (size_t)n;
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n <= 0)
			die("read");
		done += (size_t)n;
	}
}

static void fresh_client(const char *path, unsigned long n)
{
	struct sockaddr_un addr = address(path);
	char buf[64] = { 1 };

	for (unsigned long i = 0; i < n; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
			die("connect");
		echo_message(fd, buf, sizeof(buf));
		close(fd);
	}
}

/* tssx-bench's epoll server (bench/load.c, role_loop): level-triggered,
 * a non-blocking fd per client read until EAGAIN and echoed; the client
 * closes after its answer. */
static void fresh_serve(int listen_fd, unsigned long n)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = listen_fd }, events[64];
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	unsigned long closed = 0;
	char buf[1024];

	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
		die("epoll");
	while (closed < n) {
		int ready = epoll_wait(epfd, events, 64, -1);

		if (ready < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < ready; i++) {
			int fd = events[i].data.fd;
			ssize_t got;

			if (fd == listen_fd) {
				ev.data.fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
				if (ev.data.fd < 0 || fcntl(ev.data.fd, F_SETFL, O_NONBLOCK) < 0 ||
				    epoll_ctl(epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
					die("accept");
				continue;
			}
			while ((got = read(fd, buf, sizeof(buf))) > 0)
				if (write(fd, buf, (size_t)got) != got)
					die("echo");
			if (got == 0 || errno != EAGAIN) {
				close(fd);
				closed++;
			}
		}
	}
	close(epfd);
}

static void fresh_requests(const char *path, unsigned long n, unsigned long clients)
{
	int listen_fd = listen_on(path), status;

	for (unsigned long c = 0; c < clients; c++) {
		pid_t client = fork();

		if (client < 0)
			die("fork");
		if (client == 0) {
			close(listen_fd);
			fresh_client(path, n);
			_exit(0);
		}
	}
	fresh_serve(listen_fd, n * clients);
	for (unsigned long c = 0; c < clients; c++)
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			die("client");
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void print_per_fork(const char *whose, const struct rusage *before, const struct rusage *after,
			   unsigned long n)
{
	printf("%s: %.2f minor faults, %.1f us user, %.1f us system per fork\n", whose,
	       (double)(after->ru_minflt - before->ru_minflt) / (double)n,
	       (seconds(after->ru_utime) - seconds(before->ru_utime)) * 1e6 / (double)n,
	       (seconds(after->ru_stime) - seconds(before->ru_stime)) * 1e6 / (double)n);
}

/* A server that forks a process per connection pays this per connection
 * (PostgreSQL): what the library's fork handlers add to a plain fork. */
static void fork_cycles(const char *path, unsigned long n, unsigned long connections)
{
	struct rusage self_before, self_after, children_before, children_after;
	int listen_fd = connections ? listen_on(path) : -1, status;

	for (unsigned long i = 0; i < connections; i++) {
		int client, server;

		connect_pair(listen_fd, path, &client, &server);
		echo_byte(client, server);
	}
	getrusage(RUSAGE_SELF, &self_before);
	getrusage(RUSAGE_CHILDREN, &children_before);
	for (unsigned long i = 0; i < n; i++) {
		pid_t child = fork();

		if (child < 0)
			die("fork");
		if (child == 0)
			_exit(0);
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			die("child");
	}
	getrusage(RUSAGE_SELF, &self_after);
	getrusage(RUSAGE_CHILDREN, &children_after);
	print_per_fork("child", &children_before, &children_after, n);
	print_per_fork("parent", &self_before, &self_after, n);
}

#define WRITERS 2
#define WRITER_MESSAGE 64

struct writers {
	int out, in;
	unsigned long n, burst;
};

static void *write_messages(void *arg)
{
	const struct writers *w = arg;
	char message[WRITER_MESSAGE] = { 0 };

	for (unsigned long i = 1; i <= w->n; i++) {
		if (write(w->out, message, sizeof(message)) != (ssize_t)sizeof(message))
			die("write");
		if (w->burst && i % w->burst == 0)
			sched_yield();
	}
	return NULL;
}

static void *read_messages(void *arg)
{
	const struct writers *w = arg;
	static char buf[64 * 1024];
	unsigned long left = WRITERS * w->n * WRITER_MESSAGE;

	while (left) {
		ssize_t got = read(w->in, buf, sizeof(buf));

		if (got <= 0)
			die("read");
		left -= (unsigned long)got;
	}
	return NULL;
}

/* Threads that take turns on one side lock: WRITERS writers of one
 * connection, yielding after every `burst` writes, and a reader. */
static void two_writers(const char *path, unsigned long n, unsigned long burst)
{
	struct writers w = { .n = n, .burst = burst };
	pthread_t writer[WRITERS], reader;
	struct timespec start, end;
	int listen_fd = listen_on(path);

	connect_pair(listen_fd, path, &w.out, &w.in);
	clock_gettime(CLOCK_MONOTONIC, &start);
	if (pthread_create(&reader, NULL, read_messages, &w))
		die("pthread_create");
	for (int i = 0; i < WRITERS; i++)
		if (pthread_create(&writer[i], NULL, write_messages, &w))
			die("pthread_create");
	for (int i = 0; i < WRITERS; i++)
		pthread_join(writer[i], NULL);
	pthread_join(reader, NULL);
	clock_gettime(CLOCK_MONOTONIC, &end);
	printf("%.1f ns per write\n", ((double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec)) /
					      (double)(WRITERS * n));
}

int main(int argc, char **argv)
{
	int listen_fd, out, in, pipe_fd[2];

	if (argc == 5 && strcmp(argv[1], "stream") == 0) {
		listen_fd = listen_on(argv[2]);
		connect_pair(listen_fd, argv[2], &out, &in);
		transfer(out, in, number(argv[3]), number(argv[4]));
	} else if (argc == 4 && strcmp(argv[1], "pipe") == 0) {
		if (pipe(pipe_fd) < 0)
			die("pipe");
		transfer(pipe_fd[1], pipe_fd[0], number(argv[2]), number(argv[3]));
	} else if (argc == 4 && strcmp(argv[1], "connect") == 0) {
		listen_fd = listen_on(argv[2]);
		connect_cycles(listen_fd, argv[2], number(argv[3]));
		unlink(argv[2]);
	} else if ((argc == 4 || argc == 5) && strcmp(argv[1], "fresh") == 0) {
		fresh_requests(argv[2], number(argv[3]), argc == 5 ? number(argv[4]) : 1);
		unlink(argv[2]);
	} else if (argc == 5 && strcmp(argv[1], "fork") == 0) {
		fork_cycles(argv[2], number(argv[3]), strcmp(argv[4], "0") ? number(argv[4]) : 0);
		unlink(argv[2]);
	} else if (argc == 5 && strcmp(argv[1], "writers") == 0) {
		two_writers(argv[2], number(argv[3]), strcmp(argv[4], "0") ? number(argv[4]) : 0);
		unlink(argv[2]);
	} else if (argc == 4 && strcmp(argv[1], "idle") == 0) {
		listen_fd = listen_on(argv[2]);
		idle_connections(listen_fd, argv[2], number(argv[3]));
		unlink(argv[2]);
	} else {
		usage();
	}
	return 0;
}
