/*
 * The futex bell: how the data path's own sleeps (blocking reads and
 * writes, conn/stream.c) are woken, cheaper than a byte on the real socket
 * (docs/wait.md, "The futex bell").
 *
 * A sleeper waits in FUTEX_WAIT on its ring's bell word (tssx/ring.h),
 * having armed its flag with TSSX_BELL_FUTEX; the peer that moves the ring
 * takes the flag, adds one to the word and wakes it (tssx_bell_ring).
 * Nothing in a futex tells of the peer's death or close, which the real
 * socket does: a watcher thread per process sleeps in epoll_wait on the
 * sockets of the connections that had futex sleepers (EPOLLRDHUP,
 * EPOLLHUP, edge-triggered), notes the hang-up as a sleeper in recv()
 * would note its EOF, and rings this process's bells; bytes that are not
 * doorbells (EPOLLIN) fail the connection as that recv() would.  Where the watcher cannot be had (no
 * thread, no epoll fd, a vfork() child) or the kernel has no FUTEX_WAITV,
 * the sleeper takes the socket bell.
 */
#ifndef TSSX_PRELOAD_CONN_BELL_H
#define TSSX_PRELOAD_CONN_BELL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn/connection.h"
#include "conn/wait.h"

/* Whether a sleeper of conn, whose socket is fd, may sleep on the futex
 * bell: the watcher watches the socket (started, and fd registered, at the
 * first such sleep); false when it cannot, and the sleeper takes the
 * socket bell.  The caller keeps the connection. */
bool tssx_bell_watch(struct tssx_conn *conn, int fd);

/* The value to sleep on, loaded before the sleeper arms its flag: every
 * waker adds one after it took the flag (or set what it wakes for), so a
 * wake-up between the load and the sleep makes the sleep return at once.
 * Acquire pairs with the waker's add (tssx_bell_ring). */
static inline uint32_t tssx_bell_seen(_Atomic uint32_t *word)
{
	return atomic_load_explicit(word, memory_order_acquire);
}

/* Whether this process's sleeps may take the futex bell: the kernel has
 * FUTEX_WAITV (Linux 5.16).  Otherwise the sleeper takes the socket bell:
 * one word alone loses this process's own wake-ups to a peer that writes
 * it back (docs/wait.md, "Wake-ups of this process"). */
bool tssx_bell_may_sleep(void);

/* Sleeps while *word holds `seen`, conn's own bell `own_seen` (both loaded
 * with tssx_bell_seen() before the sleeper armed its flag) and the
 * thread's count of handled signals the deadline's mark, until the
 * deadline: the peer's wake-ups come on the ring's word, this process's
 * own (tssx_bell_wake_own) on a word in its memory, which no peer writes.
 * 0: woken (or a word moved: re-check, a handler's run included);
 * TSSX_BELL_RECHECKED: TSSX_BELL_RECHECK_NS passed before the deadline
 * (re-check too); -EAGAIN: the deadline passed; -EINTR: a handler ran
 * without SA_RESTART, where the kernel's recv() and send() return it
 * too. */
/* The longest a futex sleep goes without a look at the ring.  A wake-up
 * that never comes (a peer that publishes without ringing; the library's
 * own lost wake-up of docs/data-path.md, "Wake-ups always fence") then
 * delays the answer by at most this instead of hanging the call, and the
 * caller says so when the look finds the ring moved; a blocked reader
 * pays one wake-up a second. */
#define TSSX_BELL_RECHECK_NS 1000000000ull
#define TSSX_BELL_RECHECKED 1

int tssx_bell_sleep(_Atomic uint32_t *word, uint32_t seen, struct tssx_conn *conn, uint32_t own_seen,
		    const struct tssx_deadline *deadline);

/* Wakes every sleeper on word, of either process. */
void tssx_bell_ring(_Atomic uint32_t *word);

/* Wakes this process's futex sleepers of conn (they re-check): its own
 * shutdown, the watcher's hang-up, a change of the socket watched; on its
 * own bell, which the peer cannot hold still, and on the rings' words for
 * the sleepers of forks that share the connection. */
void tssx_bell_wake_own(struct tssx_conn *conn);

/* fd, about to be closed, no longer refers to conn: when it is the
 * socket watched, the watcher stops (its sleepers wake and watch the
 * socket they sleep on now). */
void tssx_bell_unwatch(struct tssx_conn *conn, int fd);

/* conn ends: the watcher lets go of it. */
void tssx_bell_forget(struct tssx_conn *conn);

/* The program dup2()s onto old, the watcher's epoll fd (kept in the fd
 * table, kind TSSX_FD_WATCHER): the watcher moves it to another number, its
 * thread stopped meanwhile. */
void tssx_bell_move_watcher(int old);

/* The library's kept fds move up (conn/kept.h): the watcher's epoll fd,
 * old, is at moved from now on.  True when old was its fd: old is then
 * the caller's to close; else moved is. */
bool tssx_bell_renumber_watcher(int old, int moved);

/* Around a call that needs a single thread (unshare(), setns():
 * shims/namespaces.c): the watcher's thread leaves the process (0, or
 * -EBUSY when it did not in time, -errno when it could not be woken to
 * leave: it runs on), and comes back. */
int tssx_bell_pause(void);
void tssx_bell_resume(void);

/* ---- The pure parts, for the unit tests ---- */

/* What the watcher's epoll registration carries: the connection and a tag
 * of the registration, so that an event fetched before the registration
 * was removed, and taken after, is known stale (the struct may serve
 * another connection by then).  Connections live below 2^48 (the user
 * half of x86-64 and arm64); 0 when conn does not. */
#define TSSX_BELL_TAG_SHIFT 48

static inline uint64_t tssx_bell_pack(const void *conn, uint16_t tag)
{
	uint64_t at = (uint64_t)(uintptr_t)conn;

	return at >> TSSX_BELL_TAG_SHIFT ? 0 : at | (uint64_t)tag << TSSX_BELL_TAG_SHIFT;
}

static inline void *tssx_bell_unpack(uint64_t packed, uint16_t *tag)
{
	*tag = (uint16_t)(packed >> TSSX_BELL_TAG_SHIFT);
	return (void *)(uintptr_t)(packed & ((1ull << TSSX_BELL_TAG_SHIFT) - 1));
}

#endif
