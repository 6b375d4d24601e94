/*
 * tssx-bench-registry: what a registry lookup costs, per call.
 *
 *   with-registry --registryfs tssx-registryfs tssx-bench-registry [ITERATIONS [RUNS]]
 *
 * Measures, against the registry in $TSSX_REGISTRY:
 *   lookup existing   tssx_registry_lookup() of an entry with its server bit
 *   lookup missing    tssx_registry_lookup() of a name with no entry
 *   open+read+close   what a client without the fd cache would pay
 *   stat tmpfs        stat(2) of a file on /dev/shm, for scale
 * Each is timed RUNS times over ITERATIONS calls (open+read+close over a
 * fiftieth of them); the median run is shown.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tssx/registry_client.h"

#define RUNS_MAX 64

struct subject {
	const char *name;
	int (*call)(void);
	long slowness; /* runs ITERATIONS / slowness calls */
};

static struct sockaddr_un existing, missing;
static socklen_t existing_len, missing_len;
static char existing_entry[256], tmpfs_file[64];

static int lookup_existing(void)
{
	return tssx_registry_lookup(&existing, existing_len) == 1 ? 0 : -1;
}

static int lookup_missing(void)
{
	return tssx_registry_lookup(&missing, missing_len) == -ENOENT ? 0 : -1;
}

static int open_read_close(void)
{
	char buf[2];
	int fd = open(existing_entry, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf), 0) : -1;

	if (fd >= 0)
		close(fd);
	return n == 2 && buf[0] == '1' ? 0 : -1;
}

static int stat_tmpfs(void)
{
	struct stat st;

	return stat(tmpfs_file, &st);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median over runs of the mean cost per call, in ns; -1 if a call failed. */
static double measure(const struct subject *s, long iterations, int runs)
{
	double per_call[RUNS_MAX];

	for (int r = 0; r < runs; r++) {
		double start = now_ns();

		for (long i = 0; i < iterations; i++)
			if (s->call() < 0)
				return -1;
		per_call[r] = (now_ns() - start) / (double)iterations;
	}
	qsort(per_call, (size_t)runs, sizeof(per_call[0]), compare_doubles);
	return per_call[runs / 2];
}

static socklen_t set_path(struct sockaddr_un *addr, const char *dir, const char *name)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	snprintf(addr->sun_path, sizeof(addr->sun_path), "%s/%s", dir, name);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(addr->sun_path) + 1);
}

/* A listening socket with its server bit set: the entry to look up. */
static int set_up(const char *registry, char *dir)
{
	struct tssx_registry_claim *claim;
	int listener, fd, error;

	if (!mkdtemp(dir))
		return -1;
	existing_len = set_path(&existing, dir, "bench.sock");
	missing_len = set_path(&missing, dir, "missing.sock");
	snprintf(existing_entry, sizeof(existing_entry), "%s%s", registry, existing.sun_path);
	snprintf(tmpfs_file, sizeof(tmpfs_file), "/dev/shm/tssx-bench-%d", getpid());
	fd = open(tmpfs_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || listener < 0 ||
	    bind(listener, (struct sockaddr *)&existing, existing_len) < 0 || listen(listener, 1) < 0)
		return -1;
	close(fd);
	if (tssx_registry_client_init(registry, TSSX_REGISTRY_TIMEOUT_MS_DEFAULT, NULL) < 0)
		return -1;
	claim = tssx_registry_claim(&existing, existing_len, &error);
	if (!claim || tssx_registry_claim_error(claim) < 0)
		return -1;
	/* Let the daemon's invalidations after the claim land first. */
	for (int i = 0; i < 100 && lookup_existing() < 0; i++)
		usleep(10000);
	return 0;
}

int main(int argc, char *argv[])
{
	static const struct subject subjects[] = {
		{ "lookup existing", lookup_existing, 1 },
		{ "lookup missing", lookup_missing, 1 },
		{ "open+read+close", open_read_close, 50 }, /* a daemon round trip each */
		{ "stat tmpfs", stat_tmpfs, 1 },
	};
	const char *registry = getenv("TSSX_REGISTRY");
	long iterations = argc > 1 ? atol(argv[1]) : 100000;
	int runs = argc > 2 ? atoi(argv[2]) : 7;
	char dir[] = "/tmp/tssx-bench-registry-XXXXXX";
	int status = 0;

	if (!registry || iterations < 1 || runs < 1 || runs > RUNS_MAX) {
		fprintf(stderr, "usage: TSSX_REGISTRY=MOUNT %s [ITERATIONS [RUNS<=%d]]\n",
			argv[0], RUNS_MAX);
		return 2;
	}
	if (set_up(registry, dir) < 0) {
		perror("tssx-bench-registry: set-up");
		status = 1;
	}
	for (size_t i = 0; status == 0 && i < sizeof(subjects) / sizeof(subjects[0]); i++) {
		long n = iterations / subjects[i].slowness ? iterations / subjects[i].slowness : 1;
		double ns = measure(&subjects[i], n, runs);

		if (ns < 0) {
			fprintf(stderr, "tssx-bench-registry: %s failed\n", subjects[i].name);
			status = 1;
		} else {
			printf("%-16s %8.0f ns/call (median of %d runs of %ld)\n",
			       subjects[i].name, ns, runs, n);
		}
	}
	unlink(tmpfs_file);
	unlink(existing.sun_path);
	rmdir(dir);
	return status;
}
