/*
 * Signals handled during a call (docs/wait.md, "Signals during a wait").
 *
 * The kernel ends a blocking call when a handler runs in the call's thread
 * while it waits: EINTR, or a restart under SA_RESTART.  The library's
 * calls wait in user space first (spins, yields), where the kernel sees no
 * call to end, so a handler that ran then would interrupt nothing and the
 * call would sleep on as if no signal had come.  So every handler the
 * program installs runs behind a trampoline (shims/signal.c) that counts
 * it for its thread: a waiter takes the count when its call starts and
 * stops waiting once it moved.
 */
#ifndef TSSX_PRELOAD_INTERRUPT_H
#define TSSX_PRELOAD_INTERRUPT_H

#include <stdbool.h>
#include <stdint.h>

struct tssx_interrupts {
	uint32_t handled;	/* the program's handlers run in this thread */
	bool restart;		/* the last one's action had SA_RESTART */
};

/* Written by the trampoline, which runs in the thread it interrupts:
 * volatile, so that a waiter's loop loads it again at every turn. */
extern __thread __attribute__((tls_model("initial-exec"))) volatile struct tssx_interrupts tssx_interrupts;

/* The count when a call starts. */
static inline uint32_t tssx_interrupt_mark(void)
{
	return tssx_interrupts.handled;
}

/* Whether a handler ran in this thread since `mark`. */
static inline bool tssx_interrupted_since(uint32_t mark)
{
	return tssx_interrupts.handled != mark;
}

/* Whether the handler that ran last asked for calls to be restarted. */
static inline bool tssx_interrupt_restarts(void)
{
	return tssx_interrupts.restart;
}

#endif
