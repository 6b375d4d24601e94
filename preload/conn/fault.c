/* EFAULT for bad user pointers (fault.h). */
#include <pthread.h>
#include <stdatomic.h>

#include "conn/fault.h"
#include "real_slots.h"

__thread __attribute__((tls_model("initial-exec"))) struct tssx_fault_guard *tssx_fault_guard;

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static _Atomic bool installed;
/* The program's actions for SIGSEGV and SIGBUS, run for every fault that
 * is not a guarded copy's.  Written under chain_lock, read by the handler. */
static pthread_mutex_t chain_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction chained[2];

static struct sigaction *chained_of(int sig)
{
	return &chained[sig == SIGBUS];
}

/* The program's action, as if the library's handler were not there. */
static void chain(int sig, siginfo_t *info, void *context)
{
	struct sigaction act = *chained_of(sig);
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	if (act.sa_flags & SA_SIGINFO) {
		act.sa_sigaction(sig, info, context);
		return;
	}
	if (act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN) {
		act.sa_handler(sig);
		return;
	}
	/* Default: without us, the faulting instruction runs again and the
	 * kernel's default action (a core dump) follows; a signal sent with
	 * kill() is sent again. */
	sigemptyset(&dfl.sa_mask);
	TSSX_REAL(sigaction)(sig, &dfl, NULL);
	if (info->si_code <= 0)
		raise(sig);
}

static void on_fault(int sig, siginfo_t *info, void *context)
{
	struct tssx_fault_guard *guard = tssx_fault_guard;

	if (guard) {
		/* SA_NODEFER kept the signal unblocked: leaving without
		 * sigreturn leaves the mask as the copy had it. */
		tssx_fault_guard = NULL;
		siglongjmp(guard->env, 1);
	}
	chain(sig, info, context);
}

static void install_fn(void)
{
	struct sigaction ours = {
		.sa_sigaction = on_fault,
		.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTART,
	};

	sigemptyset(&ours.sa_mask);
	pthread_mutex_lock(&chain_lock);
	if (TSSX_REAL(sigaction)(SIGSEGV, &ours, &chained[0]) == 0 &&
	    TSSX_REAL(sigaction)(SIGBUS, &ours, &chained[1]) == 0)
		atomic_store(&installed, true);
	pthread_mutex_unlock(&chain_lock);
}

void tssx_fault_install(void)
{
	pthread_once(&install_once, install_fn);
}

bool tssx_fault_owns(int sig)
{
	return (sig == SIGSEGV || sig == SIGBUS) && atomic_load(&installed);
}

int tssx_fault_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	pthread_mutex_lock(&chain_lock);
	if (old)
		*old = *chained_of(sig);
	if (act)
		*chained_of(sig) = *act;
	pthread_mutex_unlock(&chain_lock);
	return 0;
}
