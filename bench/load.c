/*
 * tssx-bench --load: plain Unix sockets and TSSX under load, side by side.
 *
 * Each scenario runs many processes at once and counts the round trips
 * (64 B request, 64 B answer) that all its clients complete in a window:
 *   pairs      N independent client/server pairs (blocking read/write), as
 *              N copies of a request/response service on one machine
 *   + hogs     the same with one CPU-bound process per CPU running
 *   clients    one epoll server (an event loop, like Redis) with N clients
 *   chain      client -> epoll proxy -> epoll server, the proxy keeping one
 *              upstream connection per client (kept alive)
 *   relay      the same, the proxy making an upstream connection per
 *              request (a web server in front of a FastCGI backend
 *              without keep-alive, its clients' connections kept alive)
 *   fresh      one epoll server with N clients that each make a connection
 *              per request (connect, request, answer, close), as a web
 *              server in front of a FastCGI backend without keep-alive
 *   idle       one epoll server with one busy client and N connections
 *              that answered once and stay open, silent (Redis with many
 *              clients kept open, a web server's keep-alive connections)
 * Every role is this binary re-executed (--load-role) in the column's
 * environment.  Clients count their round trips in a shared counter page
 * (a memfd at ROLE_FD_A); the orchestrator reads the counters and each
 * role's CPU time (/proc/PID/schedstat, nanoseconds; the roles are
 * single-threaded) at the start and the end of the window, and, where the
 * kernel lets it (root, tracefs), their system calls: a counting perf
 * event on the raw_syscalls:sys_enter tracepoint per role, which costs the
 * roles no stop per call as strace would.  The columns
 * alternate round by round, so a change in the machine's load hits both.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "tssx/macros.h"
#include "run.h"

#define LOAD_MESSAGE 64
#define LOAD_MAX_PROCS 160
#define LOAD_MAX_CLIENTS 64
/* Rows of all the scenarios together (build_load_rows). */
#define LOAD_MAX_ROWS 24
/* How long the roles may take to connect and answer their first request. */
#define LOAD_START_NS (15ull * 1000000000u)

/* One client's counter, on a cache line of its own. */
struct load_slot {
	alignas(64) _Atomic uint64_t requests;
	_Atomic uint32_t shm_used; /* the client maps a TSSX segment */
};

const char *const load_kind_names[LOAD_KIND_COUNT] = {
	[LOAD_PAIRS] = "pairs", [LOAD_PAIRS_HOGS] = "hogs", [LOAD_CLIENTS] = "clients", [LOAD_CHAIN] = "chain",
	[LOAD_FRESH] = "fresh", [LOAD_IDLE] = "idle", [LOAD_RELAY] = "relay",
};

static const char *const kind_labels[] = {
	[LOAD_PAIRS] = "pairs", [LOAD_PAIRS_HOGS] = "pairs + hogs",
	[LOAD_CLIENTS] = "epoll server, clients", [LOAD_CHAIN] = "chain via epoll proxy",
	[LOAD_FRESH] = "connection per request", [LOAD_IDLE] = "epoll + idle conns",
	[LOAD_RELAY] = "chain, upstream per req",
};

enum { LCOL_PLAIN, LCOL_TSSX, LCOL_COUNT };

struct load_row {
	enum load_kind kind;
	unsigned n;
	double rate[LCOL_COUNT][MAX_ROUNDS];	/* requests per second */
	double cpu[LCOL_COUNT][MAX_ROUNDS];	/* CPU ns per request, all roles */
	double syscalls[LCOL_COUNT][MAX_ROUNDS];	/* per request, all roles; < 0 unknown */
	unsigned done[LCOL_COUNT];
	/* One pair beside hogs: whether the pair's two ends ran on one CPU in
	 * most of the round's looks (sleep_looking()), and whether it was looked
	 * at (false: no looks, /proc unreadable). */
	bool together[LCOL_COUNT][MAX_ROUNDS], placed[LCOL_COUNT][MAX_ROUNDS];
	bool shm_used;				/* TSSX clients mapped segments (clients_used_shm()) */
	int error;
};

/* ---------------------------------------------------------------------
 * Roles
 * --------------------------------------------------------------------- */

static int load_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int load_listen(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 128) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Exactly len bytes; a non-blocking fd waits in poll() for the rest.
 * False with errno 0 at the end of the stream. */
static bool transfer(int fd, void *buf, size_t len, bool out)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = out ? write(fd, p, len) : read(fd, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = out ? POLLOUT : POLLIN };

			poll(&pfd, 1, -1);
		} else if (n == 0 || errno != EINTR) {
			if (n == 0 || errno == ECONNRESET || errno == EPIPE)
				errno = 0;
			return false;
		}
	}
	return true;
}

static bool maps_tssx_segment(void)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	char line[512];
	bool found = false;

	while (maps && !found && fgets(line, sizeof(line), maps))
		found = strstr(line, "/memfd:tssx ") != NULL;
	if (maps)
		fclose(maps);
	return found;
}

/* The end of the stream is how a role learns that the run is over (the
 * orchestrator kills its peer); anything else is worth a line. */
static int role_failed(const char *role, const char *path, bool at_eof)
{
	if (at_eof)
		return 0;
	fprintf(stderr, "tssx-bench: load %s on %s: %m\n", role, path);
	return 1;
}

/* Round trips on one connection, or (fresh) each on a connection of its
 * own, counted in the client's slot. */
static int role_client(const char *path, unsigned slot_index, bool fresh)
{
	struct load_slot *slots = mmap(NULL, LOAD_MAX_CLIENTS * sizeof(*slots), PROT_READ | PROT_WRITE,
				       MAP_SHARED, ROLE_FD_A, 0);
	uint8_t buf[LOAD_MESSAGE] = { 1 };
	int fd = -1;

	if (slots == MAP_FAILED || slot_index >= LOAD_MAX_CLIENTS)
		return role_failed("client", path, false);
	for (uint64_t n = 1;; n++) {
		if (fd < 0 && (fd = load_connect(path)) < 0)
			return role_failed("client", path, false);
		if (!transfer(fd, buf, sizeof(buf), true) || !transfer(fd, buf, sizeof(buf), false))
			return role_failed("client", path, errno == 0);
		if (n == 1)
			atomic_store(&slots[slot_index].shm_used, maps_tssx_segment());
		atomic_store_explicit(&slots[slot_index].requests, n, memory_order_relaxed);
		if (fresh) {
			close(fd);
			fd = -1;
		}
	}
}

/* A blocking echo server for one connection: the bench's ping-pong. */
static int role_pair_server(const char *path)
{
	uint8_t buf[LOAD_MESSAGE];
	int lfd = load_listen(path), fd;

	if (lfd < 0 || write(ROLE_FD_CTL, "r", 1) != 1 || (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return role_failed("server", path, false);
	while (transfer(fd, buf, sizeof(buf), false) && transfer(fd, buf, sizeof(buf), true))
		;
	return 0;
}

/* An epoll event loop.  Without an upstream it echoes every message,
 * its connections level-triggered for input, as Redis registers them; as
 * a proxy it relays both ways over an upstream connection of each
 * client's, kept for the client's life, or (per_request) made for each
 * request and closed once its answer is relayed, as a web server in front
 * of a FastCGI backend without keep-alive, its connections registered as
 * nginx registers them: edge-triggered, for input and output.  Either
 * reads until EAGAIN.  Messages are whole 64 B units: a read may return
 * several. */
struct loop {
	int epfd;
	const char *upstream; /* NULL: an echo server */
	bool per_request;
	uint32_t events; /* of every connection */
};

struct loop_conn {
	int fd;
	/* Where its messages go; NULL: echo, or a proxy's client between
	 * requests (per_request). */
	struct loop_conn *other;
	bool up;	/* a proxy's upstream connection */
	size_t owed;	/* per_request, upstream: bytes of answers still to come */
};

static bool loop_watch(const struct loop *loop, int fd, void *ptr)
{
	struct epoll_event ev = { .events = loop->events, .data.ptr = ptr };

	return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == 0;
}

static bool loop_add(const struct loop *loop, int fd, void *ptr)
{
	return fcntl(fd, F_SETFL, O_NONBLOCK) == 0 && loop_watch(loop, fd, ptr);
}

/* A new upstream connection for down.  Per request, in nginx's order
 * (ngx_event_connect_peer()): the socket in the epoll set before its
 * connect(), as the library then sees it: a socket that may still
 * become a TSSX connection. */
static bool loop_open_upstream(const struct loop *loop, struct loop_conn *down)
{
	struct loop_conn *up = calloc(1, sizeof(*up));
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (!up)
		return false;
	up->up = true;
	up->other = down;
	down->other = up;
	if (!loop->per_request)
		return (up->fd = load_connect(loop->upstream)) >= 0 && loop_add(loop, up->fd, up);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", loop->upstream);
	return (up->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 && loop_watch(loop, up->fd, up) &&
	       connect(up->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	       fcntl(up->fd, F_SETFL, O_NONBLOCK) == 0;
}

static bool loop_accept(const struct loop *loop, int lfd)
{
	struct loop_conn *down = calloc(1, sizeof(*down));

	if (!down || (down->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return false;
	if (loop->upstream && !loop->per_request && !loop_open_upstream(loop, down))
		return false;
	return loop_add(loop, down->fd, down);
}

enum relayed {
	RELAYED,	/* all that was there */
	RELAY_DONE,	/* an upstream per request answered all: closed */
	RELAY_ENDED,	/* the end of the stream, or an error */
};

/* A request's upstream connection, answered: it goes (epoll forgets it
 * with the close). */
static enum relayed loop_close_upstream(struct loop_conn *up)
{
	up->other->other = NULL;
	close(up->fd);
	free(up);
	return RELAY_DONE;
}

/* Reads what is there (until EAGAIN, as event loops do) and passes it on. */
static enum relayed loop_relay(const struct loop *loop, struct loop_conn *c)
{
	uint8_t buf[16 * LOAD_MESSAGE];

	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && errno == EAGAIN ? RELAYED : RELAY_ENDED;
		if (loop->upstream && !c->up && !c->other && !loop_open_upstream(loop, c))
			return RELAY_ENDED;
		if (!transfer(c->other ? c->other->fd : c->fd, buf, (size_t)n, true))
			return RELAY_ENDED;
		if (!loop->per_request)
			continue;
		if (!c->up) {
			c->other->owed += (size_t)n;
			continue;
		}
		/* More answer than requests: not this bench's server. */
		if ((size_t)n > c->owed)
			return RELAY_ENDED;
		c->owed -= (size_t)n;
		if (!c->owed)
			return loop_close_upstream(c);
	}
}

/* Room for the idle scenario's connections: the soft limit up to the hard. */
static bool raise_fd_limit(void)
{
	struct rlimit files;

	if (getrlimit(RLIMIT_NOFILE, &files) < 0)
		return false;
	files.rlim_cur = files.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &files) == 0;
}

/* An epoll loop; fresh: clients close after each request, which is not
 * the end of the run (the orchestrator kills the server). */
static int role_loop(const char *path, const char *upstream, bool fresh, bool per_request)
{
	struct epoll_event events[64];
	struct loop loop = { .epfd = epoll_create1(EPOLL_CLOEXEC), .upstream = upstream, .per_request = per_request,
			     .events = upstream ? EPOLLIN | EPOLLOUT | EPOLLET : EPOLLIN };
	int lfd = load_listen(path);
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	const char *role = upstream ? "proxy" : "server";

	if (!raise_fd_limit() || lfd < 0 || loop.epfd < 0 || epoll_ctl(loop.epfd, EPOLL_CTL_ADD, lfd, &lev) < 0 ||
	    write(ROLE_FD_CTL, "r", 1) != 1)
		return role_failed(role, path, false);
	for (;;) {
		int n = epoll_wait(loop.epfd, events, ARRAY_SIZE(events), -1);

		for (int i = 0; i < n; i++) {
			struct loop_conn *c = events[i].data.ptr;

			if (!c && !loop_accept(&loop, lfd))
				return role_failed(role, path, false);
			if (c && loop_relay(&loop, c) == RELAY_ENDED) {
				if (!fresh)
					return 0; /* a client went away: the run is over */
				close(c->fd);
				free(c);
			}
		}
	}
}

/* The idle scenario's silent connections: each answers one round trip,
 * then all stay open until the run ends. */
static int role_idle_holder(const char *path, unsigned count)
{
	uint8_t buf[LOAD_MESSAGE] = { 2 };

	if (!raise_fd_limit())
		return role_failed("idle holder", path, false);
	for (unsigned i = 0; i < count; i++) {
		int fd = load_connect(path);

		if (fd < 0 || !transfer(fd, buf, sizeof(buf), true) || !transfer(fd, buf, sizeof(buf), false))
			return role_failed("idle holder", path, false);
	}
	if (write(ROLE_FD_CTL, "r", 1) != 1)
		return role_failed("idle holder", path, false);
	for (;;)
		pause();
}

static int __attribute__((noreturn)) role_hog(void)
{
	for (volatile uint64_t n = 0;; n++)
		;
}

/* --load-role client PATH SLOT | fresh-client PATH SLOT | pair-server PATH |
 * server PATH | fresh-server PATH | proxy PATH UPSTREAM | fresh-proxy PATH UPSTREAM |
 * idle-holder PATH N |
 * hog */
int load_role_main(int argc, char **argv)
{
	const char *role = argc > 2 ? argv[2] : "";

	/* As servers do: a peer gone before its answer is an EPIPE, not the
	 * end of the process.  At the end of a round the clients are killed
	 * first, and a server killed so by its echo to one of them left the
	 * others, not yet killed, to print a refused connect. */
	signal(SIGPIPE, SIG_IGN);

	if ((strcmp(role, "client") == 0 || strcmp(role, "fresh-client") == 0) && argc == 5)
		return role_client(argv[3], (unsigned)strtoul(argv[4], NULL, 10), role[0] == 'f');
	if (strcmp(role, "pair-server") == 0 && argc == 4)
		return role_pair_server(argv[3]);
	if ((strcmp(role, "server") == 0 || strcmp(role, "fresh-server") == 0) && argc == 4)
		return role_loop(argv[3], NULL, role[0] == 'f', false);
	if ((strcmp(role, "proxy") == 0 || strcmp(role, "fresh-proxy") == 0) && argc == 5)
		return role_loop(argv[3], argv[4], false, role[0] == 'f');
	if (strcmp(role, "idle-holder") == 0 && argc == 5)
		return role_idle_holder(argv[3], (unsigned)strtoul(argv[4], NULL, 10));
	if (strcmp(role, "hog") == 0 && argc == 3)
		return role_hog();
	fputs("tssx-bench: --load-role: bad arguments\n", stderr);
	return 2;
}

/* ---------------------------------------------------------------------
 * The orchestrator
 * --------------------------------------------------------------------- */

struct load_procs {
	pid_t pid[LOAD_MAX_PROCS];
	bool counted[LOAD_MAX_PROCS]; /* its CPU time counts (not a hog) */
	int syscall_fd[LOAD_MAX_PROCS]; /* its perf counter, or -1 */
	unsigned n;
};

/* The id of the raw_syscalls:sys_enter tracepoint, or -1. */
static long syscall_tracepoint(void)
{
	static const char *const paths[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	static long id = -2;

	for (size_t i = 0; id == -2 && i < ARRAY_SIZE(paths); i++) {
		FILE *f = fopen(paths[i], "re");

		if (f && fscanf(f, "%ld", &id) != 1)
			id = -2;
		if (f)
			fclose(f);
	}
	if (id == -2)
		id = -1;
	return id;
}

/* A counter of pid's system calls from now on, or -1. */
static int count_syscalls(pid_t pid)
{
	struct perf_event_attr attr = { .type = PERF_TYPE_TRACEPOINT, .size = sizeof(attr) };
	long id = syscall_tracepoint();

	if (id < 0)
		return -1;
	attr.config = (uint64_t)id;
	attr.exclude_kernel = 0;
	return (int)syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* Starts a role with the counter page at ROLE_FD_A and the write end of
 * ready at ROLE_FD_CTL; -1 on failure. */
static pid_t spawn(struct load_procs *procs, char **env, int counters, int ready, bool counted,
		   char *const argv[])
{
	pid_t pid;

	if (procs->n == LOAD_MAX_PROCS)
		return -1;
	pid = fork();
	if (pid == 0) {
		/* Out of the way first: either may sit on the other's number. */
		ready = fcntl(ready, F_DUPFD, 16);
		counters = fcntl(counters, F_DUPFD, 16);
		if (ready < 0 || counters < 0 || dup2(ready, ROLE_FD_CTL) < 0 || dup2(counters, ROLE_FD_A) < 0)
			_exit(127);
		execve("/proc/self/exe", argv, env);
		_exit(127);
	}
	if (pid > 0) {
		procs->counted[procs->n] = counted;
		procs->syscall_fd[procs->n] = counted ? count_syscalls(pid) : -1;
		procs->pid[procs->n++] = pid;
	}
	return pid;
}

/* Killed in the reverse order of their start, clients before the servers
 * they talk to: a client that outlived its server by a moment would
 * report its refused connect or reset stream as a failure. */
static void stop_all(struct load_procs *procs)
{
	for (unsigned i = procs->n; i-- > 0;)
		kill(procs->pid[i], SIGKILL);
	for (unsigned i = 0; i < procs->n; i++) {
		while (waitpid(procs->pid[i], NULL, 0) < 0 && errno == EINTR)
			;
		if (procs->syscall_fd[i] >= 0)
			close(procs->syscall_fd[i]);
	}
	procs->n = 0;
}

static uint64_t cpu_ns_of(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (f && fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	if (f)
		fclose(f);
	return ns;
}

static uint64_t cpu_ns_counted(const struct load_procs *procs)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < procs->n; i++)
		if (procs->counted[i])
			sum += cpu_ns_of(procs->pid[i]);
	return sum;
}

/* The system calls of the counted roles so far; -1 when some are not
 * counted (no permission, no tracefs). */
static int64_t syscalls_counted(const struct load_procs *procs)
{
	int64_t sum = 0;

	for (unsigned i = 0; i < procs->n; i++) {
		uint64_t n;

		if (!procs->counted[i])
			continue;
		if (procs->syscall_fd[i] < 0 || read(procs->syscall_fd[i], &n, sizeof(n)) != sizeof(n))
			return -1;
		sum += (int64_t)n;
	}
	return sum;
}

static uint64_t requests_of(struct load_slot *slots, unsigned clients)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < clients; i++)
		sum += atomic_load(&slots[i].requests);
	return sum;
}

/* Waits for one byte from each server that announced itself. */
static bool servers_ready(int fd, unsigned count)
{
	uint64_t deadline = bench_now_ns() + LOAD_START_NS;

	while (count && bench_now_ns() < deadline && !bench_interrupted) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;

		if (poll(&pfd, 1, 100) == 1 && read(fd, &c, 1) == 1)
			count--;
	}
	return count == 0;
}

static bool clients_running(struct load_slot *slots, unsigned clients)
{
	uint64_t deadline = bench_now_ns() + LOAD_START_NS;

	for (unsigned i = 0; i < clients; i++)
		while (!atomic_load(&slots[i].requests))
			if (bench_now_ns() > deadline || bench_interrupted || usleep(1000) < 0)
				return false;
	return true;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench_interrupted)
		;
}

/* The CPU pid ran on last (/proc/PID/stat, field 39), or -1. */
static int cpu_of(pid_t pid)
{
	char path[64], line[1024];
	const char *p;
	FILE *f;
	size_t n;
	int field = 2;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	n = f ? fread(line, 1, sizeof(line) - 1, f) : 0;
	if (f)
		fclose(f);
	line[n] = '\0';
	/* The name, field 2, may hold blanks and parentheses: after its last ')'. */
	p = strrchr(line, ')');
	while (p && *p && field < 39)
		if (*p++ == ' ')
			field++;
	return p && *p >= '0' && *p <= '9' ? atoi(p) : -1;
}

/* One pair beside a hog per CPU: where its two ends run decides the round
 * (docs/benchmark.md, "One pair beside hogs, by placement"): apart, each
 * beside a hog, every answer is a wake-up of the other CPU; on one CPU it
 * is not.  So the orchestrator looks where they are every
 * LOAD_PLACE_LOOK_NS of the window and counts. */
#define LOAD_PLACE_LOOK_NS 5000000u

struct placement {
	pid_t ends[2];
	unsigned looks, together;
};

/* Sleeps ns, looking at the pair's ends (ends[0] > 0) on the way. */
static void sleep_looking(uint64_t ns, struct placement *place)
{
	uint64_t end = bench_now_ns() + ns, now;

	if (!place->ends[0]) {
		sleep_ns(ns);
		return;
	}
	while ((now = bench_now_ns()) < end && !bench_interrupted) {
		int a = cpu_of(place->ends[0]), b = cpu_of(place->ends[1]);

		if (a >= 0 && b >= 0) {
			place->looks++;
			place->together += a == b;
		}
		sleep_ns(end - now < LOAD_PLACE_LOOK_NS ? end - now : LOAD_PLACE_LOOK_NS);
	}
}

/* The requests so far, once there is one more than `before`: a very short
 * round on a busy machine (a hog per CPU, other work) can end before any
 * round trip does; it goes on until one does, within LOAD_START_NS. */
static uint64_t wait_for_a_request(struct load_slot *slots, unsigned clients, uint64_t before)
{
	uint64_t deadline = bench_now_ns() + LOAD_START_NS;
	uint64_t now = requests_of(slots, clients);

	while (now == before && bench_now_ns() < deadline && !bench_interrupted) {
		sleep_ns(1000000);
		now = requests_of(slots, clients);
	}
	return now;
}

struct load_topology {
	unsigned servers, clients, hogs;
	unsigned idle; /* silent connections to the server */
	bool proxy;
	bool fresh; /* a connection per request */
	bool relay; /* the proxy's upstream connections: one per request */
};

static struct load_topology topology_of(const struct load_row *row, long nproc)
{
	switch (row->kind) {
	case LOAD_PAIRS:
		return (struct load_topology){ .servers = row->n, .clients = row->n };
	case LOAD_PAIRS_HOGS:
		return (struct load_topology){ .servers = row->n, .clients = row->n, .hogs = (unsigned)nproc };
	case LOAD_CLIENTS:
		return (struct load_topology){ .servers = 1, .clients = row->n };
	case LOAD_FRESH:
		return (struct load_topology){ .servers = 1, .clients = row->n, .fresh = true };
	case LOAD_CHAIN:
		return (struct load_topology){ .servers = 2, .clients = row->n, .proxy = true };
	case LOAD_RELAY:
		return (struct load_topology){ .servers = 2, .clients = row->n, .proxy = true, .relay = true };
	case LOAD_IDLE:
		return (struct load_topology){ .servers = 1, .clients = 1, .idle = row->n };
	case LOAD_KIND_COUNT:
		break; /* not a scenario */
	}
	return (struct load_topology){ 0 };
}

static bool spawn_server(struct load_procs *procs, char **env, int counters, int ready[2],
			 const char *role, const char *path, const char *upstream)
{
	char *argv[] = { "tssx-bench", "--load-role", (char *)role, (char *)path, (char *)upstream, NULL };

	return spawn(procs, env, counters, ready[1], true, argv) > 0 && servers_ready(ready[0], 1);
}

/* Starts the processes of one round of a row in the column's environment;
 * the clients' server sockets go into path[i] (one per client). */
static bool start_round(const struct bench_config *cfg, const struct load_row *row, int col,
			struct load_topology t, int counters, int ready[2], struct load_procs *procs)
{
	char **env = cfg->env[col == LCOL_TSSX];
	static unsigned serial;
	char path[LOAD_MAX_CLIENTS][108], upstream[108], slot[16];
	unsigned round = ++serial;
	bool pairs = row->kind == LOAD_PAIRS || row->kind == LOAD_PAIRS_HOGS;

	for (unsigned i = 0; i < t.hogs; i++) {
		char *argv[] = { "tssx-bench", "--load-role", "hog", NULL };

		if (spawn(procs, cfg->env[0], counters, ready[1], false, argv) < 0)
			return false;
	}
	for (unsigned i = 0; i < t.clients; i++)
		snprintf(path[i], sizeof(path[i]), "%s/s%u-%u.sock", cfg->dir, round, pairs ? i : 0);
	snprintf(upstream, sizeof(upstream), "%s/u%u.sock", cfg->dir, round);
	if (pairs) {
		for (unsigned i = 0; i < t.servers; i++)
			if (!spawn_server(procs, env, counters, ready, "pair-server", path[i], NULL))
				return false;
	} else if (t.proxy) {
		if (!spawn_server(procs, env, counters, ready, t.relay ? "fresh-server" : "server", upstream, NULL) ||
		    !spawn_server(procs, env, counters, ready, t.relay ? "fresh-proxy" : "proxy", path[0], upstream))
			return false;
	} else if (!spawn_server(procs, env, counters, ready, t.fresh ? "fresh-server" : "server", path[0], NULL)) {
		return false;
	}
	if (t.idle) {
		char count[16];

		snprintf(count, sizeof(count), "%u", t.idle);
		if (!spawn_server(procs, env, counters, ready, "idle-holder", path[0], count))
			return false;
	}
	for (unsigned i = 0; i < t.clients; i++) {
		char *argv[] = { "tssx-bench", "--load-role", t.fresh ? "fresh-client" : "client", path[i], slot, NULL };

		snprintf(slot, sizeof(slot), "%u", i);
		if (spawn(procs, env, counters, ready[1], true, argv) < 0)
			return false;
	}
	return true;
}

/* Removes the sockets of a round: the run's private directory holds only
 * them. */
static void remove_sockets(const struct bench_config *cfg)
{
	DIR *dir = opendir(cfg->dir);
	struct dirent *d;

	while (dir && (d = readdir(dir)))
		if (d->d_name[0] != '.')
			unlinkat(dirfd(dir), d->d_name, 0);
	if (dir)
		closedir(dir);
}

/* The cell whose rounds are a lottery of placements: more of them. */
static bool one_pair_beside_hogs(const struct load_row *row)
{
	return row->kind == LOAD_PAIRS_HOGS && row->n == 1;
}

/* Rounds of a row: LOAD_PLACE_ROUNDS times as many for one pair beside
 * hogs, each as long as the other rows' rounds. */
#define LOAD_PLACE_ROUNDS 3

static unsigned rounds_of(const struct bench_config *cfg, const struct load_row *row)
{
	unsigned n = cfg->rounds * (one_pair_beside_hogs(row) ? LOAD_PLACE_ROUNDS : 1);

	return n > MAX_ROUNDS ? MAX_ROUNDS : n;
}

/* A round that failed on a wait of LOAD_START_NS: what it waited for, and
 * where each of its processes is. */
static void report_stuck(const struct load_row *row, int col, const char *stuck, const struct load_procs *procs)
{
	fprintf(stderr, "tssx-bench: load %s %u, %s: %s within %llu s\n", kind_labels[row->kind], row->n,
		col == LCOL_TSSX ? "TSSX" : "plain", stuck, LOAD_START_NS / 1000000000ull);
	for (unsigned i = 0; i < procs->n; i++)
		bench_describe_hung(procs->pid[i], procs->counted[i] ? "role" : "hog");
}

/* Whether the round's TSSX clients used shared memory: every one, or
 * with a connection per request at least one (the others' first
 * connections may follow the history that one's processes share, which
 * makes them plain: docs/preload.md, "Short-lived connections"). */
static bool clients_used_shm(struct load_slot *slots, struct load_topology t)
{
	unsigned used = 0;

	for (unsigned i = 0; i < t.clients; i++)
		used += atomic_load(&slots[i].shm_used) != 0;
	return t.fresh ? used > 0 : used == t.clients;
}

/* One round of one column: rate and CPU per request into the row. */
static int measure_round(const struct bench_config *cfg, struct load_row *row, int col, long nproc)
{
	struct load_topology t = topology_of(row, nproc);
	struct load_procs procs = { .n = 0 };
	struct placement place = { .ends = { 0, 0 } };
	int counters = memfd_create("tssx-bench-load", MFD_CLOEXEC);
	struct load_slot *slots = MAP_FAILED;
	int ready[2] = { -1, -1 };
	uint64_t r0, c0, t0, r1, c1, t1;
	int64_t s0, s1;
	int err = -EIO;
	const char *stuck = NULL; /* what did not happen in time */

	if (counters >= 0 && ftruncate(counters, LOAD_MAX_CLIENTS * sizeof(*slots)) == 0)
		slots = mmap(NULL, LOAD_MAX_CLIENTS * sizeof(*slots), PROT_READ | PROT_WRITE, MAP_SHARED, counters, 0);
	if (slots == MAP_FAILED || pipe2(ready, O_CLOEXEC) < 0) {
		err = -errno;
	} else if (!start_round(cfg, row, col, t, counters, ready, &procs)) {
		stuck = "a role did not start or its server did not listen";
	} else if (!clients_running(slots, t.clients)) {
		stuck = "a client's first request did not come back";
	} else {
		/* The hogs first, then the server, then the client (start_round). */
		if (one_pair_beside_hogs(row)) {
			place.ends[0] = procs.pid[t.hogs];
			place.ends[1] = procs.pid[t.hogs + 1];
		}
		sleep_ns(cfg->warmup_ns / cfg->rounds);
		r0 = requests_of(slots, t.clients);
		s0 = syscalls_counted(&procs);
		c0 = cpu_ns_counted(&procs);
		t0 = bench_now_ns();
		sleep_looking(cfg->duration_ns / cfg->rounds, &place);
		r1 = wait_for_a_request(slots, t.clients, r0);
		s1 = syscalls_counted(&procs);
		c1 = cpu_ns_counted(&procs);
		t1 = bench_now_ns();
		if (r1 > r0 && !bench_interrupted) {
			row->rate[col][row->done[col]] = (double)(r1 - r0) * 1e9 / (double)(t1 - t0);
			row->syscalls[col][row->done[col]] = s0 < 0 || s1 < 0 ? -1 : (double)(s1 - s0) / (double)(r1 - r0);
			row->placed[col][row->done[col]] = place.looks > 0;
			row->together[col][row->done[col]] = 2 * place.together > place.looks;
			row->cpu[col][row->done[col]++] = (double)(c1 - c0) / (double)(r1 - r0);
			err = 0;
		} else {
			stuck = "no request came back";
		}
		if (col == LCOL_TSSX)
			row->shm_used &= clients_used_shm(slots, t);
	}
	if (stuck && !bench_interrupted)
		report_stuck(row, col, stuck, &procs);
	stop_all(&procs);
	remove_sockets(cfg);
	if (slots != MAP_FAILED)
		munmap(slots, LOAD_MAX_CLIENTS * sizeof(*slots));
	for (int i = 0; i < 2; i++)
		if (ready[i] >= 0)
			close(ready[i]);
	if (counters >= 0)
		close(counters);
	return bench_interrupted ? -EINTR : err;
}

/* The rows of the scenarios in `kinds` (bits of enum load_kind). */
static unsigned build_load_rows(struct load_row *rows, unsigned kinds)
{
	static const unsigned pairs[] = { 1, 2, 4, 8, 16 }, clients[] = { 1, 8, 64 }, chain[] = { 1, 8 },
			      fresh[] = { 1, 8 }, idle[] = { 100, 1000 }, relay[] = { 1, 8 };
	static const struct {
		const unsigned *n;
		size_t count;
	} sizes[LOAD_KIND_COUNT] = {
		[LOAD_PAIRS] = { pairs, ARRAY_SIZE(pairs) },
		[LOAD_PAIRS_HOGS] = { pairs, ARRAY_SIZE(pairs) },
		[LOAD_CLIENTS] = { clients, ARRAY_SIZE(clients) },
		[LOAD_CHAIN] = { chain, ARRAY_SIZE(chain) },
		[LOAD_FRESH] = { fresh, ARRAY_SIZE(fresh) },
		[LOAD_IDLE] = { idle, ARRAY_SIZE(idle) },
		[LOAD_RELAY] = { relay, ARRAY_SIZE(relay) },
	};
	unsigned n = 0;

	for (int kind = 0; kind < LOAD_KIND_COUNT; kind++)
		for (size_t i = 0; (kinds & 1u << kind) && i < sizes[kind].count; i++)
			rows[n++] = (struct load_row){ .kind = (enum load_kind)kind, .n = sizes[kind].n[i],
						       .shm_used = true };
	return n;
}

static double median_of(const double *v, unsigned n, double *min, double *max)
{
	double sorted[MAX_ROUNDS];
	struct bench_stats s;

	memcpy(sorted, v, n * sizeof(*v));
	bench_stats_compute(sorted, n, &s);
	*min = s.min;
	*max = s.max;
	return s.median;
}

static void print_rate(FILE *out, const struct load_row *row, int col)
{
	double min, max, median;

	if (!row->done[col]) {
		fprintf(out, " %-24s", "-");
		return;
	}
	median = median_of(row->rate[col], row->done[col], &min, &max);
	fprintf(out, " %8.0f (%6.0f-%6.0f)", median, min, max);
}

/* The median rate of a column's rounds of one placement; the rounds in n. */
static double placed_rate(const struct load_row *row, int col, bool together, unsigned *n)
{
	double rates[MAX_ROUNDS], lo, hi;

	*n = 0;
	for (unsigned r = 0; r < row->done[col]; r++)
		if (row->placed[col][r] && row->together[col][r] == together)
			rates[(*n)++] = row->rate[col][r];
	return *n ? median_of(rates, *n, &lo, &hi) : 0;
}

/* One pair beside hogs by placement: TSSX against plain in like rounds. */
static void print_placements(FILE *out, const struct load_row *row)
{
	fprintf(out, "  %s %u, by where the pair's two ends ran (in most looks, one every %u ms):\n",
		kind_labels[row->kind], row->n, LOAD_PLACE_LOOK_NS / 1000000);
	for (int together = 1; together >= 0; together--) {
		unsigned n[LCOL_COUNT];
		double rate[LCOL_COUNT];

		fprintf(out, "    %-12s", together ? "on one CPU" : "on two CPUs");
		for (int col = 0; col < LCOL_COUNT; col++) {
			rate[col] = placed_rate(row, col, together, &n[col]);
			fprintf(out, "  %s %u of %u rounds", col == LCOL_TSSX ? "TSSX" : "plain", n[col], row->done[col]);
			if (n[col])
				fprintf(out, ", %8.0f req/s", rate[col]);
			else
				fprintf(out, "%16s", "");
		}
		if (n[LCOL_PLAIN] && n[LCOL_TSSX])
			fprintf(out, "  %5.2fx", rate[LCOL_TSSX] / rate[LCOL_PLAIN]);
		fputc('\n', out);
	}
}

static void print_load_table(FILE *out, const struct bench_config *cfg, struct load_row *rows,
			     unsigned nrows, long nproc, double load)
{
	fprintf(out, "tssx-bench --load: 64 B round trips per second, all clients together; %ld CPUs, "
		"load average %.2f at the start\n", nproc, load);
	fprintf(out, "median (min-max) over %u alternating rounds of %.2f s; CPU and sys = CPU time\n"
		"and system calls of all clients, servers and proxies per request (hogs not\n"
		"counted; sys '-' when the kernel does not let the bench count them; one pair\n"
		"beside hogs: %u times the rounds, and by placement below)\n\n", cfg->rounds,
		(double)cfg->duration_ns / 1e9 / cfg->rounds, LOAD_PLACE_ROUNDS);
	if (syscall_tracepoint() < 0)
		fputs("sys '-': no tracefs to count system calls with; as root, mount it with\n"
		      "  mount -t tracefs nodev /sys/kernel/tracing\n\n", out);
	fprintf(out, "%-25s %-24s %-24s %6s %9s %9s %5s %5s\n", "scenario", " plain req/s", " TSSX req/s", "ratio",
		"CPU plain", "CPU TSSX", "sys", "sys");
	for (unsigned i = 0; i < nrows; i++) {
		struct load_row *row = &rows[i];
		double lo, hi, plain, tssx;
		char label[64];

		snprintf(label, sizeof(label), "%s %u", kind_labels[row->kind], row->n);
		fprintf(out, "%-25s", label);
		print_rate(out, row, LCOL_PLAIN);
		print_rate(out, row, LCOL_TSSX);
		if (row->done[LCOL_PLAIN] && row->done[LCOL_TSSX]) {
			plain = median_of(row->rate[LCOL_PLAIN], row->done[LCOL_PLAIN], &lo, &hi);
			tssx = median_of(row->rate[LCOL_TSSX], row->done[LCOL_TSSX], &lo, &hi);
			fprintf(out, " %5.2fx", tssx / plain);
		} else {
			fprintf(out, " %6s", "-");
		}
		for (int col = 0; col < LCOL_COUNT; col++) {
			if (row->done[col])
				fprintf(out, " %6.1f us", median_of(row->cpu[col], row->done[col], &lo, &hi) / 1000);
			else
				fprintf(out, " %9s", "-");
		}
		for (int col = 0; col < LCOL_COUNT; col++) {
			double sys = row->done[col] ? median_of(row->syscalls[col], row->done[col], &lo, &hi) : -1;

			if (row->done[col] && lo >= 0)
				fprintf(out, " %5.1f", sys);
			else
				fprintf(out, " %5s", "-");
		}
		if (row->error)
			fprintf(out, "  failed: %s", strerror(-row->error));
		else if (row->done[LCOL_TSSX] && !row->shm_used)
			fputs("  (TSSX not used!)", out);
		fputc('\n', out);
	}
	for (unsigned i = 0; i < nrows; i++)
		if (one_pair_beside_hogs(&rows[i]) && (rows[i].done[LCOL_PLAIN] || rows[i].done[LCOL_TSSX]))
			print_placements(out, &rows[i]);
}

/* A {"median", "min", "max"} object of one column's rounds, or null. */
static void json_range(FILE *out, const double *v, unsigned n)
{
	double median, min, max;

	if (!n) {
		fputs("null", out);
		return;
	}
	median = median_of(v, n, &min, &max);
	if (min < 0) { /* a round the kernel would not count (system calls) */
		fputs("null", out);
		return;
	}
	fputs("{\"median\": ", out);
	bench_json_number(out, median);
	fputs(", \"min\": ", out);
	bench_json_number(out, min);
	fputs(", \"max\": ", out);
	bench_json_number(out, max);
	fprintf(out, ", \"rounds\": %u}", n);
}

/* A column's rounds of one pair beside hogs by placement, as JSON. */
static void print_placements_json(FILE *out, const struct load_row *row, int col)
{
	for (int together = 1; together >= 0; together--) {
		double rates[MAX_ROUNDS];
		unsigned n = 0;

		for (unsigned r = 0; r < row->done[col]; r++)
			if (row->placed[col][r] && row->together[col][r] == together)
				rates[n++] = row->rate[col][r];
		fprintf(out, ", \"req_per_s_%s\": ", together ? "one_cpu" : "two_cpus");
		json_range(out, rates, n);
	}
}

/* The load table as JSON (--load --json); `tssx bench --load --plot`
 * draws it (contrib/tssx-plot.py). */
static void print_load_json(FILE *out, const struct bench_config *cfg, struct load_row *rows,
			    unsigned nrows, long nproc, double load)
{
	static const char *const columns[] = { [LCOL_PLAIN] = "plain", [LCOL_TSSX] = "tssx" };

	fprintf(out, "{\n  \"version\": \"%s\",\n  \"machine\": {\"nproc\": %ld, \"load\": ", TSSX_VERSION, nproc);
	bench_json_number(out, load);
	fputs("},\n  \"config\": {\"duration_s\": ", out);
	bench_json_number(out, (double)cfg->duration_ns / 1e9);
	fprintf(out, ", \"rounds\": %u, \"message\": %d},\n  \"load\": [\n", cfg->rounds, LOAD_MESSAGE);
	for (unsigned i = 0; i < nrows; i++) {
		const struct load_row *row = &rows[i];
		char label[64];

		snprintf(label, sizeof(label), "%s %u", kind_labels[row->kind], row->n);
		fputs("    {\"scenario\": ", out);
		bench_json_string(out, kind_labels[row->kind]);
		fprintf(out, ", \"n\": %u, \"label\": ", row->n);
		bench_json_string(out, label);
		for (int col = 0; col < LCOL_COUNT; col++) {
			fprintf(out, ",\n     \"%s\": ", columns[col]);
			if (!row->done[col]) {
				fputs("null", out);
				continue;
			}
			fputs("{\"req_per_s\": ", out);
			json_range(out, row->rate[col], row->done[col]);
			fputs(", \"cpu_ns_per_req\": ", out);
			json_range(out, row->cpu[col], row->done[col]);
			fputs(", \"syscalls_per_req\": ", out);
			json_range(out, row->syscalls[col], row->done[col]);
			if (one_pair_beside_hogs(row))
				print_placements_json(out, row, col);
			fputc('}', out);
		}
		fprintf(out, ",\n     \"shared_memory\": %s, \"error\": ",
			row->done[LCOL_TSSX] && row->shm_used ? "true" : "false");
		bench_json_string(out, row->error ? strerror(-row->error) : NULL);
		fprintf(out, "}%s\n", i + 1 < nrows ? "," : "");
	}
	fputs("  ]\n}\n", out);
}

int load_main(const struct bench_config *cfg)
{
	struct load_row rows[LOAD_MAX_ROWS];
	unsigned nrows = build_load_rows(rows, cfg->load_kinds), total, step = 0;
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);
	double load = -1;
	FILE *f = fopen("/proc/loadavg", "re");
	bool failed = false;

	if (f && fscanf(f, "%lf", &load) != 1)
		load = -1;
	if (f)
		fclose(f);
	total = 0;
	for (unsigned i = 0; i < nrows; i++)
		total += rounds_of(cfg, &rows[i]) * (cfg->library ? 2 : 1);
	for (unsigned i = 0; i < nrows && !bench_interrupted; i++)
		for (unsigned round = 0; round < rounds_of(cfg, &rows[i]) && !bench_interrupted; round++)
			for (int col = 0; col < LCOL_COUNT && !bench_interrupted; col++) {
				int r;

				if (col == LCOL_TSSX && !cfg->library)
					continue;
				if (cfg->progress)
					fprintf(stderr, "%s[%u/%u] %s %u, %s%s", isatty(STDERR_FILENO) ? "\r\033[K" : "",
						++step, total, kind_labels[rows[i].kind], rows[i].n,
						col == LCOL_TSSX ? "TSSX" : "plain", isatty(STDERR_FILENO) ? "" : "\n");
				r = measure_round(cfg, &rows[i], col, nproc);
				if (r < 0 && r != -EINTR && !rows[i].error)
					rows[i].error = r;
				failed |= r < 0 && r != -EINTR;
			}
	if (cfg->progress && isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
	if (cfg->json)
		print_load_json(stdout, cfg, rows, nrows, nproc, load);
	else
		print_load_table(stdout, cfg, rows, nrows, nproc, load);
	return bench_interrupted ? 130 : failed ? 1 : 0;
}
