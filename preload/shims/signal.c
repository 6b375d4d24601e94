/*
 * sigaction and signal for SIGSEGV and SIGBUS, once the library's fault
 * handler is in (conn/fault.h): the program's action is kept and run for
 * every fault that is not a guarded copy's, and reads back as the program
 * set it.  Every other signal, and both before the handler is in, go to
 * libc untouched.
 */
#include <errno.h>
#include <signal.h>

#include "conn/fault.h"
#include "real_slots.h"
#include "tssx/macros.h"

TSSX_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (likely(!tssx_fault_owns(sig)))
		return TSSX_REAL(sigaction)(sig, act, old);
	return tssx_fault_sigaction(sig, act, old);
}

TSSX_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act = { .sa_handler = handler, .sa_flags = SA_RESTART }, old;

	if (likely(!tssx_fault_owns(sig)))
		return TSSX_REAL(signal)(sig, handler);
	sigemptyset(&act.sa_mask);
	tssx_fault_sigaction(sig, &act, &old);
	return old.sa_handler;
}
