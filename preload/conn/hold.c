/*
 * Holds on a connection's flags (hold.h).
 *
 * The counts are per flag, in the connection (this process's memory,
 * tssx/ring.h), and one
 * lock of the process serialises every count and the bit it stands for.
 * They count this process's sleepers only, so a bit is lowered only on an
 * end no other process holds (conn/unseen.h): a connection made before
 * the last fork(), or handed to or adopted by an exec'd image, keeps its
 * bits raised as before (a spare doorbell, never a lost one).  Whether the
 * end is held alone is asked under the lock, and both ways another process
 * comes to hold it wait for the lock: fork() takes it in its prepare
 * handler and gives it back after the fork count moved
 * (tssx_unseen_forks(), whose handlers run first), and the hand-over to an
 * exec'd image passes through it after marking the connection
 * (tssx_hold_settle()).  So no lowering straddles the moment a sibling
 * could raise the same bit.  Held for a few instructions, never across a
 * system call; a signal handler that sleeps on a connection in the middle
 * of them would wait for itself, as one that writes under its side lock.
 */
#include <pthread.h>

#include "conn/hold.h"
#include "conn/unseen.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void lock_holds(void)
{
	pthread_mutex_lock(&lock);
}

static void unlock_holds(void)
{
	pthread_mutex_unlock(&lock);
}

/* unseen.c's fork handlers are registered first: the parent and child
 * handlers run in that order, so the fork count has moved, in each
 * process, when this lock is given back. */
static void setup(void)
{
	(void)tssx_unseen_forks();
	pthread_atfork(lock_holds, unlock_holds, unlock_holds);
}

static struct tssx_ring *ring_of(struct tssx_conn *conn, bool reader)
{
	return reader ? conn->rx : conn->tx;
}

static struct tssx_ring_holds *holds_of(struct tssx_conn *conn, bool reader)
{
	return reader ? &conn->reader_holds : &conn->writer_holds;
}

void tssx_hold_raise(struct tssx_conn *conn, bool reader, uint32_t bell, enum tssx_hold hold)
{
	struct tssx_ring *ring = ring_of(conn, reader);

	pthread_once(&once, setup);
	/* Without the lock: a hold the caller kept counts already, an end
	 * shared with another process stays so (its bits are never lowered
	 * again), and a sticky bell stays sticky; in each case no lowering
	 * of this process can take the bit from under this raise. */
	if (hold == TSSX_HOLD_KEPT || !tssx_unseen_held_alone(conn) ||
	    (hold == TSSX_HOLD_STICKY && tssx_ring_hold_sticky(holds_of(conn, reader), bell))) {
		tssx_ring_raise(ring, reader, bell);
		return;
	}
	pthread_mutex_lock(&lock);
	tssx_ring_hold(ring, holds_of(conn, reader), reader, bell, hold == TSSX_HOLD_COUNTED);
	pthread_mutex_unlock(&lock);
}

void tssx_hold_leave(struct tssx_conn *conn, bool reader, uint32_t bell)
{
	if (!tssx_unseen_held_alone(conn))
		return;
	pthread_mutex_lock(&lock);
	/* Again under the lock: a fork() since the look above shares it. */
	if (tssx_unseen_held_alone(conn))
		(void)tssx_ring_unhold(ring_of(conn, reader), holds_of(conn, reader), reader, bell);
	pthread_mutex_unlock(&lock);
}

void tssx_hold_settle(void)
{
	pthread_mutex_lock(&lock);
	pthread_mutex_unlock(&lock);
}
