/*
 * exec calls: execve, execv, execvp, execvpe, execl, execlp, execle,
 * fexecve, execveat (conn/handover.h).
 *
 * Each hands the TSSX connections and listener claims the new image
 * inherits to it through one environment entry, or fails the connections
 * loudly when the new image will not load the library.  glibc's exec
 * functions call its internal execve, which no wrapper sees, so every one
 * is wrapped and reaches the real execve, execvpe, fexecve or execveat.
 * They run in vfork() children (CPython's subprocess): nothing here
 * allocates with malloc or takes a lock; the new environment array is
 * mapped with mmap.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conn/connection.h"
#include "conn/handover.h"
#include "real_slots.h"
#include "tssx/macros.h"

extern char **environ;

/* The real call, given the environment to use. */
struct exec_call {
	int (*run)(const struct exec_call *call, char *const envp[]);
	const char *path;
	const char *file; /* the file that runs, if known (set-uid check) */
	int dirfd, fd, flags;
	char *const *argv;
};

static int exec_handing_over(const struct exec_call *call, char *const envp[])
{
	struct tssx_handover ho;
	char **env = NULL;
	int ret, saved_errno;

	if (tssx_handover_prepare(&ho, TSSX_VIA_EXEC, call->file, envp))
		env = tssx_handover_env(&ho, envp);
	/* The new image cannot see the side locks' mapping. */
	tssx_conn_leave_pairs();
	ret = call->run(call, env ? env : envp);
	/* Still here: the exec failed, this image keeps everything. */
	saved_errno = errno;
	tssx_conn_rejoin_pairs();
	tssx_handover_undo(&ho, -1);
	errno = saved_errno;
	return ret;
}

static int run_execve(const struct exec_call *call, char *const envp[])
{
	return TSSX_REAL(execve)(call->path, call->argv, envp);
}

static int run_execvpe(const struct exec_call *call, char *const envp[])
{
	return TSSX_REAL(execvpe)(call->path, call->argv, envp);
}

static int run_fexecve(const struct exec_call *call, char *const envp[])
{
	return TSSX_REAL(fexecve)(call->fd, call->argv, envp);
}

static int run_execveat(const struct exec_call *call, char *const envp[])
{
	return TSSX_REAL(execveat)(call->dirfd, call->path, call->argv, envp, call->flags);
}

TSSX_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	struct exec_call call = { .run = run_execve, .path = path, .file = path, .argv = argv };

	return exec_handing_over(&call, envp);
}

TSSX_EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

/* A file name without '/' is searched in PATH: the set-uid check of the
 * hand-over sees only names with a '/'. */
TSSX_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	struct exec_call call = { .run = run_execvpe, .path = file, .file = file, .argv = argv };

	return exec_handing_over(&call, envp);
}

TSSX_EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

TSSX_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct exec_call call = { .run = run_fexecve, .fd = fd, .argv = argv };

	return exec_handing_over(&call, envp);
}

TSSX_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
	/* Relative to dirfd: no file the set-uid check could look at. */
	struct exec_call call = { .run = run_execveat, .path = path, .dirfd = dirfd, .flags = flags, .argv = argv };

	return exec_handing_over(&call, envp);
}

/*
 * The execl family: the arguments into an array (in its own mapping),
 * then the exec with the array.  envp_out receives what follows the NULL
 * (execle) when not NULL.
 */
static char **collect_args(const char *arg0, va_list args, char *const **envp_out, void **map, size_t *maplen)
{
	va_list count;
	size_t n = 1;
	char **argv;

	va_copy(count, args);
	while (va_arg(count, char *))
		n++;
	va_end(count);
	*maplen = (n + 1) * sizeof(char *);
	*map = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*map == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	argv = *map;
	argv[0] = (char *)arg0;
	for (size_t i = 1; i <= n; i++)
		argv[i] = va_arg(args, char *); /* the last one is the NULL */
	if (envp_out)
		*envp_out = va_arg(args, char *const *);
	return argv;
}

typedef int exec_fn(const char *path, char *const argv[], char *const envp[]);

static int exec_list(exec_fn *fn, const char *path, const char *arg0, va_list args, bool with_envp)
{
	char *const *envp = environ;
	void *map;
	size_t maplen;
	char **argv = collect_args(arg0, args, with_envp ? &envp : NULL, &map, &maplen);
	int ret, saved_errno;

	if (!argv)
		return -1;
	ret = fn(path, argv, envp);
	saved_errno = errno;
	munmap(map, maplen);
	errno = saved_errno;
	return ret;
}

TSSX_EXPORT int execl(const char *path, const char *arg0, ...)
{
	va_list args;
	int ret;

	va_start(args, arg0);
	ret = exec_list(execve, path, arg0, args, false);
	va_end(args);
	return ret;
}

TSSX_EXPORT int execle(const char *path, const char *arg0, ...)
{
	va_list args;
	int ret;

	va_start(args, arg0);
	ret = exec_list(execve, path, arg0, args, true);
	va_end(args);
	return ret;
}

TSSX_EXPORT int execlp(const char *file, const char *arg0, ...)
{
	va_list args;
	int ret;

	va_start(args, arg0);
	ret = exec_list(execvpe, file, arg0, args, false);
	va_end(args);
	return ret;
}
