/*
 * Running one measurement: fork and re-exec this binary as a server and a
 * client role under the case's environment, wait for the server to be
 * ready, collect the client's samples, and reap both, whatever happens
 * (failure, a hung role, Ctrl-C).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tssx/macros.h"
#include "run.h"

/* Slack over the expected duration before a silent role counts as hung. */
#define ROLE_GRACE_NS (20ull * 1000000000u)

extern char **environ;

const char *const bench_test_names[TEST_COUNT] = {
	[TEST_PINGPONG] = "pingpong", [TEST_STREAM] = "stream", [TEST_DRAIN] = "drain",
	[TEST_CONNECT] = "connect", [TEST_PIPE] = "pipe", [TEST_BLOCKED] = "blocked",
	[TEST_IDLE] = "idle",
};
static const char *const transport_names[] = {
	[TRANSPORT_RAW] = "raw", [TRANSPORT_SOCKET] = "socket", [TRANSPORT_PIPE] = "pipe",
};

void bench_case_of(const struct bench_row *row, enum bench_column col, struct bench_case *c)
{
	*c = (struct bench_case){
		.test = row->test,
		.size = row->size,
		.transport = col == COL_RAW ? TRANSPORT_RAW
			   : row->test == TEST_PIPE ? TRANSPORT_PIPE : TRANSPORT_SOCKET,
		.preload_client = col == COL_TSSX,
		.preload_server = col == COL_TSSX && !bench_row_is_mixed(row),
		.segment_always = row->test == TEST_CONNECT && row->connect == CONNECT_SEGMENT,
	};
}

/* "libtssx.so" entries of an LD_PRELOAD list (':' or ' ' separated). */
static bool is_tssx_library(const char *entry, size_t len)
{
	const char *base = entry;

	for (size_t i = 0; i < len; i++)
		if (entry[i] == '/')
			base = entry + i + 1;
	return strncmp(base, "libtssx.so", 10) == 0;
}

/* LD_PRELOAD=[library:]the caller's entries other than libtssx. */
static char *preload_variable(const char *library)
{
	const char *old = getenv("LD_PRELOAD");
	size_t size = strlen("LD_PRELOAD=") + (library ? strlen(library) + 1 : 0) + (old ? strlen(old) : 0) + 1;
	char *var = malloc(size), *end;

	if (!var)
		return NULL;
	end = stpcpy(var, "LD_PRELOAD=");
	if (library)
		end = stpcpy(end, library);
	for (const char *p = old; p && *p;) {
		size_t len = strcspn(p, ": ");

		if (len && !is_tssx_library(p, len)) {
			if (end[-1] != '=')
				*end++ = ':';
			memcpy(end, p, len);
			end += len;
		}
		p += len + (p[len] != '\0');
	}
	*end = '\0';
	return var;
}

/* The environment a role runs in: the caller's, with libtssx.so preloaded
 * first and TSSX_REGISTRY set (library != NULL), or with every libtssx.so
 * taken out of LD_PRELOAD, so a bench started under `tssx run` still
 * measures plain sockets in the plain column. */
char **bench_build_env(const char *library, const char *registry, const char *extra)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 4, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "TSSX_REGISTRY=", 14) &&
		    !(extra && !strncmp(environ[i], extra, strcspn(extra, "=") + 1)))
			env[k++] = environ[i];
	if (!(env[k++] = preload_variable(library)))
		return NULL;
	if (registry && asprintf(&env[k++], "TSSX_REGISTRY=%s", registry) < 0)
		return NULL;
	if (extra && !(env[k++] = strdup(extra)))
		return NULL;
	return env;
}

static bool from_environ(const char *entry)
{
	for (char **e = environ; *e; e++)
		if (*e == entry)
			return true;
	return false;
}

/* Frees what bench_build_env() allocated: the variables it set, since it
 * took every other entry as is from environ. */
void bench_free_env(char **env)
{
	for (char **e = env; e && *e; e++)
		if (!from_environ(*e))
			free(*e);
	free(env);
}

struct role_fds {
	int ctl, a, b;
};

/* Child side of spawn_role(): the three descriptors at their fixed numbers,
 * then exec.  Only async-signal-safe calls. */
static void exec_role(char *const argv[], char *const envp[], struct role_fds fds)
{
	int want[3] = { fds.ctl, fds.a, fds.b };

	/* Out of the way first, so that no dup2 overwrites a source. */
	for (int i = 0; i < 3; i++)
		if (want[i] >= 0 && (want[i] = fcntl(want[i], F_DUPFD_CLOEXEC, 16)) < 0)
			_exit(127);
	for (int i = 0; i < 3; i++)
		if (want[i] >= 0 && dup2(want[i], ROLE_FD_CTL + i) < 0)
			_exit(127);
	execve("/proc/self/exe", argv, envp);
	_exit(127);
}

struct role_timing {
	uint64_t warmup_ns, duration_ns;
};

static pid_t spawn_role(const struct bench_config *cfg, const struct bench_case *c,
			const char *path, struct role_timing t, bool server, struct role_fds fds)
{
	char size[32], warmup[32], duration[32];
	char *argv[] = { "tssx-bench", "--role", server ? "server" : "client",
			 (char *)bench_test_names[c->test], (char *)transport_names[c->transport],
			 size, (char *)path, warmup, duration, NULL };
	bool preload = server ? c->preload_server : c->preload_client;
	pid_t pid;

	snprintf(size, sizeof(size), "%zu", c->size);
	snprintf(warmup, sizeof(warmup), "%" PRIu64, t.warmup_ns);
	snprintf(duration, sizeof(duration), "%" PRIu64, t.duration_ns);
	pid = fork();
	if (pid == 0)
		exec_role(argv, cfg->env[!preload ? 0 : c->segment_always ? 2 : 1], fds);
	return pid;
}

/* Reads exactly len bytes from a role's control pipe before the deadline.
 * Returns 0, -ECONNRESET (the role exited first), -ETIMEDOUT, -EINTR
 * (Ctrl-C) or -errno. */
static int read_before(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t now = bench_now_ns();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (bench_interrupted)
			return -EINTR;
		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
			continue; /* EINTR or timeout: both checked above */
		n = read(fd, p, len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

/* One line of /proc/PID/task/TID/NAME, newline cut, into buf ("?" when
 * it cannot be read). */
static void read_task_file(pid_t pid, const char *tid, const char *name, char *buf, size_t size)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", (int)pid, tid, name);
	f = fopen(path, "re");
	if (!f || !fgets(buf, (int)size, f))
		snprintf(buf, size, "?");
	buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
}

void bench_describe_hung(pid_t pid, const char *role)
{
	char dir[32], wchan[64], syscall[160], stack[128];
	struct dirent *task;
	DIR *tasks;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	tasks = opendir(dir);
	if (!tasks)
		return;
	while ((task = readdir(tasks))) {
		if (task->d_name[0] == '.')
			continue;
		read_task_file(pid, task->d_name, "wchan", wchan, sizeof(wchan));
		read_task_file(pid, task->d_name, "syscall", syscall, sizeof(syscall));
		read_task_file(pid, task->d_name, "stack", stack, sizeof(stack));
		fprintf(stderr, "tssx-bench: hung %s %d, thread %s: wchan %s, syscall %s, stack %s\n", role,
			(int)pid, task->d_name, wchan, syscall, stack);
	}
	closedir(tasks);
}

/* Stops a role (a server serves until told) and collects its status;
 * -EIO if it failed on its own. */
static int reap(pid_t pid, bool stop)
{
	int status;

	if (pid <= 0)
		return 0;
	if (stop)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (stop)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Receives the client's report and appends its samples to the cell. */
static int collect(int fd, uint64_t deadline, struct bench_cell *cell)
{
	struct role_report report;
	bool first_run = cell->n == 0;
	double *grown;
	int r = read_before(fd, &report, sizeof(report), deadline);

	if (r < 0)
		return r;
	if (report.count == 0 || report.count > BENCH_MAX_SAMPLES)
		return -EPROTO;
	grown = realloc(cell->samples, (cell->n + report.count) * sizeof(double));
	if (!grown)
		return -ENOMEM;
	cell->samples = grown;
	r = read_before(fd, cell->samples + cell->n, report.count * sizeof(double), deadline);
	if (r < 0)
		return r;
	cell->n += report.count;
	/* Shared memory only counts if every run of the cell used it. */
	cell->shm_used = (first_run || cell->shm_used) && (report.flags & REPORT_SHM_USED);
	return 0;
}

/* The descriptors the transport needs: a memfd shared by both roles, or
 * two pipes (client -> server as A, server -> client as B). */
static int open_transport(const struct bench_case *c, struct role_fds *server, struct role_fds *client)
{
	int up[2], down[2];

	/* The raw connect cycle goes through the socket (raw_connect_exchange()). */
	if (c->transport == TRANSPORT_RAW && c->test != TEST_CONNECT) {
		int fd = memfd_create("tssx-bench-raw", MFD_CLOEXEC);

		if (fd < 0 || ftruncate(fd, (off_t)raw_shared_size()) < 0)
			return -errno;
		server->a = client->a = fd;
		return 0;
	}
	if (c->transport != TRANSPORT_PIPE)
		return 0;
	if (pipe2(up, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(down, O_CLOEXEC) < 0) {
		close(up[0]);
		close(up[1]);
		return -errno;
	}
	server->a = up[0];
	client->a = up[1];
	server->b = down[1];
	client->b = down[0];
	return 0;
}

static void close_transport(struct role_fds *server, struct role_fds *client)
{
	int fds[] = { server->a, server->b, client->a, client->b };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0 && (i < 2 || fds[i] != fds[i - 2]))
			close(fds[i]);
	server->a = server->b = client->a = client->b = -1;
}

static void close_pair(int pair[2])
{
	for (int i = 0; i < 2; i++)
		if (pair[i] >= 0)
			close(pair[i]);
	pair[0] = pair[1] = -1;
}

/* Starts a role with its end of the control pipe; the parent keeps only
 * the read end, so a role that dies shows as end of file. */
static pid_t start_role(const struct bench_config *cfg, const struct bench_case *c, const char *path,
			struct role_timing t, bool server, struct role_fds fds, int ctl[2])
{
	pid_t pid;

	fds.ctl = ctl[1];
	pid = spawn_role(cfg, c, path, t, server, fds);
	close(ctl[1]);
	ctl[1] = -1;
	return pid;
}

static int run_roles(const struct bench_config *cfg, const struct bench_case *c,
		     struct role_timing t, struct bench_cell *cell)
{
	static unsigned serial;
	char path[108];
	uint64_t deadline = bench_now_ns() + t.warmup_ns + t.duration_ns + ROLE_GRACE_NS;
	struct role_fds server_fds = { -1, -1, -1 }, client_fds = { -1, -1, -1 };
	int server_ctl[2] = { -1, -1 }, client_ctl[2] = { -1, -1 };
	pid_t server = -1, client = -1;
	uint8_t ready;
	int r;

	snprintf(path, sizeof(path), "%s/s%u.sock", cfg->dir, ++serial);
	if (pipe2(server_ctl, O_CLOEXEC) < 0 || pipe2(client_ctl, O_CLOEXEC) < 0)
		r = -errno;
	else
		r = open_transport(c, &server_fds, &client_fds);
	if (r == 0 && (server = start_role(cfg, c, path, t, true, server_fds, server_ctl)) < 0)
		r = -errno;
	if (r == 0)
		r = read_before(server_ctl[0], &ready, 1, deadline);
	if (r == 0 && (client = start_role(cfg, c, path, t, false, client_fds, client_ctl)) < 0)
		r = -errno;
	close_transport(&server_fds, &client_fds); /* only the roles hold them now */
	if (r == 0)
		r = collect(client_ctl[0], deadline, cell);
	close_pair(server_ctl);
	close_pair(client_ctl);
	if (r == -ETIMEDOUT) {
		bench_describe_hung(server, "server");
		if (client > 0)
			bench_describe_hung(client, "client");
	}
	/* A client that failed or hangs is stopped; one that reported exits. */
	if (client > 0) {
		int status = reap(client, r < 0);

		r = r < 0 ? r : status;
	}
	reap(server, true);
	unlink(path);
	return r;
}

void bench_run_case(const struct bench_config *cfg, const struct bench_case *c,
		    uint64_t warmup_ns, uint64_t duration_ns, struct bench_cell *cell)
{
	struct role_timing t = { .warmup_ns = warmup_ns, .duration_ns = duration_ns };
	int r = run_roles(cfg, c, t, cell);

	if (r < 0 && !cell->error)
		cell->error = r;
}
