/*
 * Changes to a connection's readiness that no kernel event tells an epoll
 * set about.
 *
 * An epoll set looks at the rings of its hot entries only; a connection
 * that was armed, re-checked and found with nothing to report goes cold
 * (events/epoll.c, docs/events.md "Idle connections cost nothing").  A
 * cold entry relies on the doorbell its armed flag calls for: the kernel
 * reports the socket to the set, whose wait then heats the entry.  That
 * report is lost when the doorbell is read before the set harvests it (by
 * another set, a blocking call's sleep, poll(), or a process that shares
 * the connection), and the rings can change without any doorbell when this
 * process shuts the connection down or fails it.  Those are counted here:
 * a set whose count moved since it last looked makes every entry hot once.
 *
 * Counted per process for connections only this process holds; for
 * connections shared with a fork, in a page that fork() shares (MAP_SHARED)
 * with the same rule in every process of the family.  A connection handed
 * to an exec'd image or duplicated (dup, dup2, fcntl) never goes cold: the
 * count cannot follow it.
 */
#ifndef TSSX_PRELOAD_CONN_UNSEEN_H
#define TSSX_PRELOAD_CONN_UNSEEN_H

#include <stdbool.h>
#include <stdint.h>

struct tssx_conn;

/* The process's fork generation, stamped on a connection when it is made
 * (a connection made before the last fork() is shared with a fork). */
uint64_t tssx_unseen_forks(void);

/* Whether no other process holds conn: it was made after this process's
 * last fork(), and neither handed to an exec'd image nor adopted from one
 * (nor duplicated: the same mark, kept conservative).  Once false, false
 * for good. */
bool tssx_unseen_held_alone(const struct tssx_conn *conn);

/* Whether an epoll set may leave conn cold. */
bool tssx_unseen_may_cool(const struct tssx_conn *conn);

/* Doorbells (or control data) of conn were read from its socket.  The
 * caller is conn's only epoll set, which harvested their report, when
 * tssx_unseen_by_sole_set is set (a thread-local the set sets around its
 * drain). */
void tssx_unseen_doorbells_taken(const struct tssx_conn *conn);
extern __thread __attribute__((tls_model("initial-exec"))) bool tssx_unseen_by_sole_set;

/* This process changed conn's state without a doorbell of its own
 * (shutdown, failure), or made it unfit to stay cold (duplicated, handed
 * to an exec'd image). */
void tssx_unseen_changed(void);
/* Connections of this fork family go to an exec'd image: no process of
 * the family lets a shared connection go cold any more. */
void tssx_unseen_exec_shares(void);

/* What the sets compare: moves whenever one of them may have missed a
 * change. */
uint64_t tssx_unseen_changes(void);

#endif
