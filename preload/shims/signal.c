/*
 * sigaction, signal and siginterrupt.
 *
 * Every handler the program installs runs behind a trampoline that counts
 * it for the thread it interrupts (conn/interrupt.h), so that a call
 * waiting in user space ends as the kernel's would.  The kernel holds the
 * trampoline with the program's flags and mask (and SA_SIGINFO); the
 * program reads back its own handler and flags.  SIG_DFL and SIG_IGN go to
 * the kernel as they are.
 *
 * SIGSEGV and SIGBUS are left out: a fault is not a signal a wait must
 * end for, and once the library's fault handler is in (conn/fault.h) the
 * program's action for them is kept and chained there.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "conn/fault.h"
#include "conn/interrupt.h"
#include "real_slots.h"
#include "tssx/macros.h"

typedef void (*handler_fn)(int, siginfo_t *, void *);

/*
 * The program's handlers, by signal: what the trampoline runs.  Written
 * before the system call that points the kernel's action at the
 * trampoline, which orders them before any delivery it causes: relaxed.
 * A program that changes a handler while another thread takes the signal
 * gets one or the other, as from the kernel.
 */
static struct {
	_Atomic(handler_fn) run;
	_Atomic int flags;
} handlers[NSIG];

/* Signals that siginterrupt() made interrupt calls: signal() installs
 * their handlers without SA_RESTART, as glibc's does.  Bit sig - 1. */
static _Atomic uint64_t interrupting;

/*
 * The handler, called with the three arguments the kernel passes to every
 * handler on x86-64 (sa_handler and sa_sigaction share their storage in
 * struct sigaction, and one that takes only the signal ignores the rest).
 * Counted first: a handler that jumps out of the call ends it too.
 */
static void trampoline(int sig, siginfo_t *info, void *context)
{
	handler_fn run = atomic_load_explicit(&handlers[sig].run, memory_order_relaxed);

	tssx_interrupts.restart = atomic_load_explicit(&handlers[sig].flags, memory_order_relaxed) & SA_RESTART;
	tssx_interrupts.handled++;
	run(sig, info, context);
}

static bool counted(int sig)
{
	return sig > 0 && sig < NSIG && sig != SIGSEGV && sig != SIGBUS;
}

static bool runs_handler(const struct sigaction *act)
{
	return act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN;
}

static int counted_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	handler_fn was = atomic_load_explicit(&handlers[sig].run, memory_order_relaxed);
	int was_flags = atomic_load_explicit(&handlers[sig].flags, memory_order_relaxed);
	struct sigaction behind;
	bool wraps = act && runs_handler(act);
	int ret;

	if (wraps) {
		behind = *act;
		behind.sa_sigaction = trampoline;
		behind.sa_flags |= SA_SIGINFO;
		atomic_store_explicit(&handlers[sig].run, act->sa_sigaction, memory_order_relaxed);
		atomic_store_explicit(&handlers[sig].flags, act->sa_flags, memory_order_relaxed);
		act = &behind;
	}
	ret = TSSX_REAL(sigaction)(sig, act, old);
	if (ret < 0 && wraps) {
		atomic_store_explicit(&handlers[sig].run, was, memory_order_relaxed);
		atomic_store_explicit(&handlers[sig].flags, was_flags, memory_order_relaxed);
	}
	if (ret == 0 && old && old->sa_sigaction == trampoline) {
		old->sa_sigaction = was;
		old->sa_flags = (old->sa_flags & ~SA_SIGINFO) | (was_flags & SA_SIGINFO);
	}
	return ret;
}

TSSX_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (unlikely(tssx_fault_owns(sig)))
		return tssx_fault_sigaction(sig, act, old);
	if (!counted(sig))
		return TSSX_REAL(sigaction)(sig, act, old);
	return counted_sigaction(sig, act, old);
}

static uint64_t signal_bit(int sig)
{
	return (uint64_t)1 << (sig - 1);
}

/* BSD semantics, as glibc's signal(): the signal blocked while its handler
 * runs, calls restarted unless siginterrupt() said otherwise. */
TSSX_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act = { .sa_handler = handler }, old;

	if (handler == SIG_ERR || sig < 1 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, sig);
	act.sa_flags = atomic_load(&interrupting) & signal_bit(sig) ? 0 : SA_RESTART;
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* glibc's other names for signal(), the first no longer declared. */
sighandler_t bsd_signal(int sig, sighandler_t handler);

TSSX_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

TSSX_EXPORT sighandler_t ssignal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

/* Through the wrappers above: glibc's own would rewrite the kernel's
 * action behind them, and the trampoline would run with stale flags. */
TSSX_EXPORT int siginterrupt(int sig, int interrupt)
{
	struct sigaction act;

	if (sigaction(sig, NULL, &act) < 0)
		return -1;
	if (interrupt) {
		atomic_fetch_or(&interrupting, signal_bit(sig));
		act.sa_flags &= ~SA_RESTART;
	} else {
		atomic_fetch_and(&interrupting, ~signal_bit(sig));
		act.sa_flags |= SA_RESTART;
	}
	return sigaction(sig, &act, NULL);
}
