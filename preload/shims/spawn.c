/*
 * fork, posix_spawn, posix_spawnp, system, popen and pclose
 * (conn/handover.h).
 *
 * glibc's posix_spawn() runs the child with clone(CLONE_VM|CLONE_VFORK)
 * and its internal execve, and system() and popen() call its internal
 * posix_spawn: no exec wrapper sees any of them.  These wrappers hand the connections and
 * listener claims the child inherits to it as the exec wrappers do
 * (shims/exec.c), in the parent: the child's environment gets the
 * hand-over entry, and what cannot be handed over fails loudly.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn/connection.h"
#include "conn/handover.h"
#include "real_slots.h"
#include "tssx/macros.h"

extern char **environ;

/*
 * fork() with a server connection whose hello is still on the socket:
 * both processes would wait for it, one would take it, and the other
 * would read doorbells or EOF as its hello and fail the connection
 * (EPROTO).  The parent takes it first, as before a spawn and a
 * shutdown().  Not in a pthread_atfork() handler: the connection table's
 * handler holds the lock that a connection made ready needs.
 * The real functions are all resolved first, once per process: a child
 * that resolves one of its own walks every library's symbol table
 * (docs/preload.md, "What a fork costs").
 */
TSSX_EXPORT pid_t fork(void)
{
	tssx_conn_establish_all("no hello before fork");
	tssx_real_resolve_all();
	return TSSX_REAL(fork)();
}

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

/*
 * popen() and pclose() as glibc's (libio/iopopen.c) do them, with the
 * spawn through the wrapper above: a pipe made O_CLOEXEC, its child end
 * moved off the number the child uses (else no file action could clear
 * its O_CLOEXEC) and dup2()ed onto it in the child, the streams of
 * earlier popen() calls closed there (POSIX), /bin/sh -c --; the parent's
 * end keeps O_CLOEXEC only with "e".  pclose() waits for the shell.
 */
struct popened {
	FILE *stream;
	int fd; /* the parent's end, as fileno() would lock the stream */
	pid_t pid;
	struct popened *next;
};

static pthread_mutex_t popen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct popened *popened_list;

/* "r" or "w", optionally with "e": whether it reads; -1 when invalid. */
static int popen_mode(const char *mode, bool *cloexec)
{
	int reads = 0, writes = 0;

	*cloexec = false;
	for (; *mode; mode++) {
		if (*mode == 'r')
			reads = 1;
		else if (*mode == 'w')
			writes = 1;
		else if (*mode == 'e')
			*cloexec = true;
		else
			return -1;
	}
	return reads ^ writes ? reads : -1;
}

/* With popen_lock held: the shell, whose child_fd is the pipe's child end. */
static int popen_spawn(struct popened *entry, const char *command, int child_end, int child_fd)
{
	posix_spawn_file_actions_t actions;
	int ret;

	posix_spawn_file_actions_init(&actions);
	ret = posix_spawn_file_actions_adddup2(&actions, child_end, child_fd);
	for (struct popened *p = popened_list; p && !ret; p = p->next)
		if (p->fd != child_fd)
			ret = posix_spawn_file_actions_addclose(&actions, p->fd);
	if (!ret)
		ret = posix_spawn(&entry->pid, "/bin/sh", &actions, NULL,
				  (char *const[]){ "sh", "-c", "--", (char *)command, NULL }, environ);
	posix_spawn_file_actions_destroy(&actions);
	return ret;
}

/* The pipe's child end, moved off child_fd: the file action that dup2()s
 * it there in the child clears its O_CLOEXEC only from another number. */
static int off_child_fd(int child_end, int child_fd)
{
	int moved;

	if (child_end != child_fd)
		return child_end;
	moved = fcntl(child_end, F_DUPFD_CLOEXEC, 0);
	close(child_end);
	return moved;
}

TSSX_EXPORT FILE *popen(const char *command, const char *mode)
{
	bool cloexec;
	int reads = popen_mode(mode, &cloexec), pipe_fds[2], child_end, child_fd, ret, saved_errno;
	struct popened *entry;

	if (reads < 0) {
		errno = EINVAL;
		return NULL;
	}
	entry = calloc(1, sizeof(*entry));
	if (!entry)
		return NULL;
	if (pipe2(pipe_fds, O_CLOEXEC) < 0)
		goto no_pipe;
	entry->fd = pipe_fds[!reads];
	child_fd = reads ? STDOUT_FILENO : STDIN_FILENO;
	child_end = off_child_fd(pipe_fds[reads], child_fd);
	if (child_end < 0)
		goto no_child_end;
	entry->stream = fdopen(entry->fd, reads ? "r" : "w");
	if (!entry->stream)
		goto no_stream;
	pthread_mutex_lock(&popen_lock);
	ret = popen_spawn(entry, command, child_end, child_fd);
	if (!ret) {
		entry->next = popened_list;
		popened_list = entry;
	}
	pthread_mutex_unlock(&popen_lock);
	close(child_end);
	if (ret) {
		fclose(entry->stream);
		free(entry);
		errno = ret;
		return NULL;
	}
	if (!cloexec)
		fcntl(entry->fd, F_SETFD, 0);
	return entry->stream;

no_stream:
	saved_errno = errno;
	close(child_end);
	errno = saved_errno;
no_child_end:
	saved_errno = errno;
	close(entry->fd);
	errno = saved_errno;
no_pipe:
	free(entry);
	return NULL;
}

TSSX_EXPORT int pclose(FILE *stream)
{
	struct popened **at, *entry = NULL;
	int status = -1;
	pid_t waited;

	pthread_mutex_lock(&popen_lock);
	for (at = &popened_list; *at; at = &(*at)->next) {
		if ((*at)->stream == stream) {
			entry = *at;
			*at = entry->next;
			break;
		}
	}
	pthread_mutex_unlock(&popen_lock);
	if (!entry) {
		errno = ECHILD; /* not a stream of popen() */
		return -1;
	}
	fclose(stream);
	while ((waited = waitpid(entry->pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (waited != entry->pid)
		status = -1;
	free(entry);
	return status;
}
