/*
 * Connections and listener claims across exec (docs/preload.md "exec").
 *
 * The old image, in the exec wrappers (shims/exec.c), writes a hand-over
 * record into the new image's environment: for every inheritable fd that
 * is a TSSX connection, the fd, the segment's memfd (kept open for this,
 * its O_CLOEXEC cleared just for the exec) and the side; for every
 * inheritable claimed listener, the fd (claimed again).  The new image's
 * constructor validates each entry and adopts it.  An image that will not
 * load the library cannot take a connection over: each inheritable one is
 * then failed on both ends, loudly, before the exec.
 *
 * Everything on the exec side is async-signal-safe (a vfork() child runs
 * it): no malloc, no locks, only system calls and the lock-free table.
 */
#ifndef TSSX_PRELOAD_CONN_HANDOVER_H
#define TSSX_PRELOAD_CONN_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>

struct tssx_conn;

#define TSSX_HANDOVER_VAR "TSSX_HANDOVER"

/* What an exec is about to hand over; lives on the exec wrapper's stack. */
struct tssx_handover {
	char entry[4096]; /* TSSX_HANDOVER=... */
	size_t len;
	int cloexec_cleared[256]; /* fds to set O_CLOEXEC again if exec fails */
	int ncleared;
	bool truncated;           /* more than fits: the rest is failed */
	struct tssx_conn *conns[256]; /* entered so far, and at which fd */
	int conn_fds[256];
	int nconns;
};

/*
 * Before an exec with envp into `path` (NULL: unknown, a PATH search):
 * whether the new image loads the library (LD_PRELOAD in envp names it,
 * the file is not set-uid/set-gid); if so, fills `ho` and clears
 * O_CLOEXEC on what it hands over; if not, fails each inheritable
 * connection on both ends.  Returns whether the new image gets the entry.
 */
bool tssx_handover_prepare(struct tssx_handover *ho, const char *path, char *const envp[]);

/* The exec failed: the kept fds are O_CLOEXEC again. */
void tssx_handover_undo(const struct tssx_handover *ho);

/* New image, from the constructor: adopts what the old image handed over
 * and removes the variable, so that no later exec sees stale entries. */
void tssx_handover_adopt(void);

#endif
