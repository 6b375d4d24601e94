/*
 * posix_spawn, posix_spawnp and system (conn/handover.h).
 *
 * glibc's posix_spawn() runs the child with clone(CLONE_VM|CLONE_VFORK)
 * and its internal execve, and system() calls its internal posix_spawn:
 * no exec wrapper sees either.  These wrappers hand the connections and
 * listener claims the child inherits to it as the exec wrappers do
 * (shims/exec.c), in the parent: the child's environment gets the
 * hand-over entry, and what cannot be handed over fails loudly.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn/handover.h"
#include "real_slots.h"
#include "tssx/macros.h"

extern char **environ;

typedef int spawn_fn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		     const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);

static int spawn_handing_over(spawn_fn *real, pid_t *pid, const char *path, bool search,
			      const posix_spawn_file_actions_t *actions, const posix_spawnattr_t *attr,
			      char *const argv[], char *const envp[])
{
	enum tssx_handover_via via = actions ? TSSX_VIA_SPAWN_ACTIONS : TSSX_VIA_SPAWN;
	struct tssx_handover ho;
	char **env = NULL;
	pid_t child = -1;
	int ret;

	/* A name without '/' is searched in PATH: the set-uid check of the
	 * hand-over sees only names with a '/'. */
	if (tssx_handover_prepare(&ho, via, search ? NULL : path, envp))
		env = tssx_handover_env(&ho, envp);
	ret = real(&child, path, actions ? actions : tssx_handover_actions(&ho), attr, argv, env ? env : envp);
	tssx_handover_undo(&ho, ret == 0 ? child : -1);
	if (ret == 0 && pid)
		*pid = child;
	return ret;
}

TSSX_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
			    const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn_handing_over(TSSX_REAL(posix_spawn), pid, path, false, actions, attr, argv, envp);
}

TSSX_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
			     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn_handing_over(TSSX_REAL(posix_spawnp), pid, file, true, actions, attr, argv, envp);
}

/*
 * system() as glibc's (sysdeps/posix/system.c) does it, with the spawn
 * through the wrapper above: SIGINT and SIGQUIT ignored while any thread
 * waits for a command (counted), SIGCHLD blocked, the child with the old
 * mask and the two signals at their default unless they were ignored,
 * /bin/sh -c, 127 when the shell cannot be started.  A cancelled caller
 * restores the signals and does not wait.
 */
static pthread_mutex_t system_lock = PTHREAD_MUTEX_INITIALIZER;
static int system_users;
static struct sigaction saved_intr, saved_quit;

struct system_call {
	sigset_t omask;
	pid_t pid;
};

static void system_leave(struct system_call *call)
{
	pthread_mutex_lock(&system_lock);
	if (--system_users == 0) {
		TSSX_REAL(sigaction)(SIGINT, &saved_intr, NULL);
		TSSX_REAL(sigaction)(SIGQUIT, &saved_quit, NULL);
	}
	pthread_mutex_unlock(&system_lock);
	pthread_sigmask(SIG_SETMASK, &call->omask, NULL);
}

/* Cancelled in waitpid(): the shell is killed and reaped, as glibc does. */
static void system_cancelled(void *arg)
{
	struct system_call *call = arg;

	kill(call->pid, SIGKILL);
	while (waitpid(call->pid, NULL, 0) < 0 && errno == EINTR)
		;
	system_leave(call);
}

static int run_shell(const char *line)
{
	struct sigaction ignore = { .sa_handler = SIG_IGN };
	struct system_call call;
	posix_spawnattr_t attr;
	sigset_t chld, reset;
	int status = -1, ret;

	sigemptyset(&ignore.sa_mask);
	pthread_mutex_lock(&system_lock);
	if (system_users++ == 0) {
		TSSX_REAL(sigaction)(SIGINT, &ignore, &saved_intr);
		TSSX_REAL(sigaction)(SIGQUIT, &ignore, &saved_quit);
	}
	sigemptyset(&reset);
	if (saved_intr.sa_handler != SIG_IGN)
		sigaddset(&reset, SIGINT);
	if (saved_quit.sa_handler != SIG_IGN)
		sigaddset(&reset, SIGQUIT);
	pthread_mutex_unlock(&system_lock);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, &call.omask);

	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &call.omask);
	posix_spawnattr_setsigdefault(&attr, &reset);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	ret = posix_spawn(&call.pid, "/bin/sh", NULL, &attr,
			  (char *const[]){ "sh", "-c", "--", (char *)line, NULL }, environ);
	posix_spawnattr_destroy(&attr);
	if (ret == 0) {
		pthread_cleanup_push(system_cancelled, &call);
		while ((ret = waitpid(call.pid, &status, 0)) < 0 && errno == EINTR)
			;
		if (ret != call.pid)
			status = -1;
		pthread_cleanup_pop(0);
		ret = 0;
	} else {
		/* POSIX: as if the shell had exited with 127. */
		status = W_EXITCODE(127, 0);
	}
	system_leave(&call);
	if (ret != 0)
		errno = ret;
	return status;
}

TSSX_EXPORT int system(const char *line)
{
	/* Whether a shell is there: one that runs "exit 0". */
	if (!line)
		return run_shell("exit 0") == 0;
	return run_shell(line);
}
