/*
 * Bad user pointers: a data call whose buffer the process cannot access
 * fails with EFAULT, as the kernel's does, instead of dying in the copy
 * (docs/preload.md).
 *
 * The copy runs under a guard: a sigsetjmp() without the signal mask (no
 * system call) and a thread-local pointer to it.  The library's SIGSEGV
 * and SIGBUS handler jumps back to a guard that is set; any other fault
 * goes to the program's own handler, which the sigaction()/signal()
 * wrappers keep behind ours (shims/signal.c).  The handler is installed
 * when the process's first connection enters shared memory: other
 * processes are left alone.
 */
#ifndef TSSX_PRELOAD_FAULT_H
#define TSSX_PRELOAD_FAULT_H

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>

struct tssx_fault_guard {
	sigjmp_buf env;
};

/* The guard of the copy this thread is in, or NULL. */
extern __thread __attribute__((tls_model("initial-exec"))) struct tssx_fault_guard *tssx_fault_guard;

/* Installs the handler, once per process (after that, idempotent). */
void tssx_fault_install(void);

/* sigaction() for SIGSEGV and SIGBUS once the handler is in: the
 * program's action is kept and chained, ours stays. */
int tssx_fault_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
/* Whether sig is one tssx_fault_sigaction() answers for now. */
bool tssx_fault_owns(int sig);

#endif
