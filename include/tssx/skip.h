/*
 * Skipping what did not pay lately: a running share of recent attempts
 * that did not pay for themselves, and when more than half of them did
 * not, the next attempts are skipped, more of them each time a probe
 * after a skip does not pay either, fewer after one that does.
 *
 * Two users, each with its own rule: a thread's spins before it sleeps
 * (preload/conn/wait.c: a failed spin costs its budget and the doorbell
 * anyway) and a process's connections to one server (preload/conn/
 * destination.c: a connection that closes after a few calls never pays
 * back its shared-memory segment).
 */
#ifndef TSSX_SKIP_H
#define TSSX_SKIP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct tssx_skip_rule {
	uint32_t average_over;	/* the share runs over about this many attempts */
	uint32_t skip_min;	/* the first skip, after the share passed half */
	uint32_t skip_max;	/* doubling up to this */
};

struct tssx_skip_history {
	uint32_t fail_share;	/* running share of attempts that did not pay, 1/65536ths */
	uint32_t skip_left;	/* attempts skipped from now */
	uint32_t skip_next;	/* how many the next skip lasts; 0: the rule's minimum */
};

/* Whether this attempt is skipped (then counted as such). */
bool tssx_skip_history_skips(struct tssx_skip_history *history);
/* Records whether an attempt that was made paid. */
void tssx_skip_history_record(struct tssx_skip_history *history, const struct tssx_skip_rule *rule, bool paid);
/* A skipped attempt that would have paid (its user saw what the attempt
 * waited for come in time): counts as a probe that paid, and the skip
 * ends; the next attempt is made. */
void tssx_skip_history_paid_anyway(struct tssx_skip_history *history, const struct tssx_skip_rule *rule);

/*
 * Histories that processes share: a table of 64-bit words in memory
 * they all map, one word per key holding a tag of the key and the
 * history, so that a history changes by one compare-and-swap and no
 * process can hold another up (a word taken over by another key between
 * a load and its swap fails the swap).  A key's word is one of
 * TSSX_SKIP_TABLE_WAYS from its index; a new key takes a free one, or
 * the first.  Every change gives up after TSSX_SKIP_TABLE_TRIES swaps
 * lost to other processes.  Whatever a process wrote there, a history
 * read back is within the rule (skips of at most skip_max): a process
 * of the same user can make attempts skipped or made, nothing else.
 * Rules of skip_max up to TSSX_SKIP_TABLE_SKIP_MAX only.
 */
#define TSSX_SKIP_TABLE_WAYS 4u
#define TSSX_SKIP_TABLE_TRIES 16u
#define TSSX_SKIP_TABLE_SKIP_MAX 2047u

/* Key's history in a table of `count` words (a power of two, at least
 * the ways): true and *history when the table has one, else false and
 * an empty one. */
bool tssx_skip_table_get(_Atomic uint64_t *table, unsigned count, uint64_t key, const struct tssx_skip_rule *rule,
			 struct tssx_skip_history *history);
/* tssx_skip_history_skips() of key's history, when the table has one. */
bool tssx_skip_table_skips(_Atomic uint64_t *table, unsigned count, uint64_t key, const struct tssx_skip_rule *rule);
/* tssx_skip_history_record() into key's history, made if it has none. */
void tssx_skip_table_record(_Atomic uint64_t *table, unsigned count, uint64_t key, const struct tssx_skip_rule *rule,
			    bool paid);

#endif
