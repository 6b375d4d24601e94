/*
 * Connections and listener claims across exec, posix_spawn() and system()
 * (docs/preload.md "exec, posix_spawn and system").
 *
 * Before the new image starts, the library writes a hand-over record into
 * its environment: for every TSSX connection it may inherit, the real
 * socket's inode, the segment's memfd (kept open for this, its O_CLOEXEC
 * cleared just for the exec), the side, and where its side locks are (the
 * arena's memfd, kept open the same way, and the pair's index), so that
 * the new image and the processes that keep the connection exclude each
 * other's writers and readers; for every claimed listener its inode.  The new image's constructor finds the sockets it holds by their
 * inode, whatever fd a dup2() put them on, validates each and adopts it.
 * An image that will not load the library cannot take a connection over:
 * each one it would inherit fails loudly instead.
 *
 * Everything on the exec side is async-signal-safe (a vfork() child runs
 * it): no malloc, no locks, only system calls and the lock-free table.
 * The spawn side runs in the parent and may allocate.
 */
#ifndef TSSX_PRELOAD_CONN_HANDOVER_H
#define TSSX_PRELOAD_CONN_HANDOVER_H

#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tssx_conn;

#define TSSX_HANDOVER_VAR "TSSX_HANDOVER"
#define TSSX_HANDOVER_MAX 256 /* connections one hand-over tracks */

/* How the new image comes to be. */
enum tssx_handover_via {
	/* This process execs: it is the new image, with its fds as they are. */
	TSSX_VIA_EXEC,
	/* posix_spawn() without file actions: a child that gets exactly this
	 * process's inheritable fds.  The hand-over's own file actions keep
	 * the memfds open and replace what cannot be handed over, in the
	 * child only. */
	TSSX_VIA_SPAWN,
	/* posix_spawn() with the application's file actions, which may dup2
	 * any fd, O_CLOEXEC or not, to any number: every connection goes into
	 * the record; after the spawn, one the child holds that was not handed
	 * over fails on both ends. */
	TSSX_VIA_SPAWN_ACTIONS,
};

/* What an exec or spawn is about to hand over; lives on the caller's stack. */
struct tssx_handover {
	enum tssx_handover_via via;
	bool preloaded;           /* the new image loads the library */
	char entry[4096];         /* TSSX_HANDOVER=... */
	size_t len;
	bool truncated;           /* more than fits: the rest is failed */
	int cloexec_cleared[TSSX_HANDOVER_MAX]; /* fds to set O_CLOEXEC again */
	int ncleared;
	struct tssx_conn *conns[TSSX_HANDOVER_MAX]; /* seen, and whether handed over */
	bool handed[TSSX_HANDOVER_MAX];
	bool joined[TSSX_HANDOVER_MAX]; /* the new image made a user of its side locks */
	int nconns;
	/* TSSX_VIA_SPAWN: the file actions to spawn with, and the socket that
	 * replaces in the child what cannot be handed over (-1: none yet). */
	posix_spawn_file_actions_t actions;
	int dead_socket;
	/* The environment with the entry (tssx_handover_env), in a mapping. */
	void *env_map;
	size_t env_maplen;
};

/*
 * Before an exec or spawn with envp into `path` (NULL: unknown, a PATH
 * search): whether the new image loads the library (LD_PRELOAD in envp
 * names it, the file is not set-uid/set-gid); if so, fills `ho` and keeps
 * open what it hands over; what it cannot hand over fails loudly (see
 * enum tssx_handover_via).  Returns whether the new image gets an entry.
 */
bool tssx_handover_prepare(struct tssx_handover *ho, enum tssx_handover_via via, const char *path,
			   char *const envp[]);

/* envp without a stale hand-over entry, plus ho's: an array in a mapping
 * of ho's, or NULL if none can be mapped. */
char **tssx_handover_env(struct tssx_handover *ho, char *const envp[]);

/* TSSX_VIA_SPAWN: the file actions the spawn must use. */
static inline const posix_spawn_file_actions_t *tssx_handover_actions(const struct tssx_handover *ho)
{
	return ho->via == TSSX_VIA_SPAWN ? &ho->actions : NULL;
}

/* The exec failed, or the spawn is over (child: its pid, or -1 if none
 * started): the kept fds are O_CLOEXEC again, what prepare made is gone
 * (with no new image, also its place among the side locks' users), and
 * after TSSX_VIA_SPAWN_ACTIONS every connection the child holds without
 * having been handed it fails on both ends. */
void tssx_handover_undo(struct tssx_handover *ho, pid_t child);

/* New image, from the constructor: adopts what the old image handed over
 * and removes the variable, so that no later exec sees stale entries. */
void tssx_handover_adopt(void);

#endif
