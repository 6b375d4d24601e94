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

#endif
