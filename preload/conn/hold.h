/*
 * Holds on a connection's flags: a sleeper of this process raises its bell
 * as a hold and lowers it as it leaves, so that the peer does not ring once
 * more for nothing (tssx/ring.h, "Holds"; docs/data-path.md, "Sleeping
 * and waking").
 */
#ifndef TSSX_PRELOAD_CONN_HOLD_H
#define TSSX_PRELOAD_CONN_HOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "conn/connection.h"

enum tssx_hold {
	TSSX_HOLD_COUNTED, /* a new hold, which the caller ends with tssx_hold_leave() */
	TSSX_HOLD_KEPT,	   /* raised again under a counted hold the caller has */
	TSSX_HOLD_STICKY,  /* a raise never lowered (the bell stays raised for good) */
};

/* Raises bell (one TSSX_BELL_* bit) in the rx ring's reader flag (reader)
 * or the tx ring's writer flag as `hold` says, then fences (the caller
 * re-checks the ring after it, tssx/ring.h). */
void tssx_hold_raise(struct tssx_conn *conn, bool reader, uint32_t bell, enum tssx_hold hold);

/* A counted holder leaves: the bit is lowered when it was this process's
 * last holder of the bell and no other process holds the end. */
void tssx_hold_leave(struct tssx_conn *conn, bool reader, uint32_t bell);

/* Another process may hold conn from now on (conn/unseen.h: the caller
 * marked it unfit, for an exec'd image): returns once no lowering that
 * found it held by this process alone is under way.  A vfork() child runs
 * it. */
void tssx_hold_settle(void);

#endif
