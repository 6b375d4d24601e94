/* EFAULT for bad user pointers (fault.h). */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <ucontext.h>

#include "conn/fault.h"
#include "real_slots.h"
#include "tssx/copy.h"

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

/* A fault inside the ring's copy resumes at its landing, which returns
 * -EFAULT to the data path (tssx/copy.h); the handler's return restores
 * the mask the copy ran with. */
static bool land_copy(void *context)
{
#if TSSX_COPY_LANDS
	ucontext_t *uc = context;
	uintptr_t landing = tssx_copy_fault_landing((uintptr_t)uc->uc_mcontext.gregs[REG_RIP]);

	if (landing) {
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)landing;
		return true;
	}
#endif
	return false;
}

static void on_fault(int sig, siginfo_t *info, void *context)
{
	struct tssx_fault_guard *guard = tssx_fault_guard;

	if (land_copy(context))
		return;
	if (guard) {
		/* SA_NODEFER kept the signal unblocked: leaving without
		 * sigreturn leaves the mask as the copy had it. */
		tssx_fault_guard = NULL;
		siglongjmp(guard->env, 1);
	}
	chain(sig, info, context);
}

/* Loads one byte this far apart: every page of a buffer is touched. */
#define PROBE_STEP 4096

static inline void touch(volatile char *byte, bool write)
{
	char c = *byte;

	if (write)
		*byte = c;
}

/* Touches a byte of every page of the first `len` bytes of iov. */
static __attribute__((noinline)) void touch_pages(const struct iovec *iov, int iovcnt, size_t len, bool write)
{
	for (; iovcnt > 0 && len > 0; iov++, iovcnt--) {
		volatile char *base = iov->iov_base;
		size_t n = iov->iov_len < len ? iov->iov_len : len;

		for (size_t off = 0; off < n; off += PROBE_STEP)
			touch(base + off, write);
		if (n)
			touch(base + n - 1, write);
		len -= n;
	}
}

bool tssx_fault_can_access(const struct iovec *iov, int iovcnt, size_t len, bool write)
{
	struct tssx_fault_guard guard;

	if (sigsetjmp(guard.env, 0))
		return false; /* the handler cleared tssx_fault_guard */
	tssx_fault_guard = &guard;
	touch_pages(iov, iovcnt, len, write);
	tssx_fault_guard = NULL;
	return true;
}

/* The range of count elements of `size` bytes at base. */
static struct iovec array_of(const void *base, size_t count, size_t size)
{
	return (struct iovec){ .iov_base = (void *)base, .iov_len = count * size };
}

bool tssx_fault_iov_ok(const struct iovec *iov, size_t iovcnt)
{
	struct iovec array = array_of(iov, iovcnt, sizeof(*iov));

	return tssx_fault_can_access(&array, 1, array.iov_len, false);
}

/* Under one guard: the msghdr first, then what its fields point to. */
static __attribute__((noinline)) void touch_msghdr(const struct msghdr *msg, bool receiving)
{
	struct iovec parts[3] = { array_of(msg, 1, sizeof(*msg)) };

	touch_pages(parts, 1, sizeof(*msg), receiving);
	if (msg->msg_iovlen > IOV_MAX)
		return; /* EMSGSIZE, the caller's answer */
	parts[1] = array_of(msg->msg_iov, msg->msg_iovlen, sizeof(struct iovec));
	touch_pages(&parts[1], 1, parts[1].iov_len, false);
	/* recvmsg() writes control data only when some comes: that write
	 * is checked then (conn/ancillary.c), as the kernel's is. */
	if (!receiving) {
		parts[2] = array_of(msg->msg_control, msg->msg_controllen, 1);
		touch_pages(&parts[2], 1, parts[2].iov_len, false);
	}
}

bool tssx_fault_msghdr_ok(const struct msghdr *msg, bool receiving)
{
	struct tssx_fault_guard guard;

	if (sigsetjmp(guard.env, 0))
		return false; /* the handler cleared tssx_fault_guard */
	tssx_fault_guard = &guard;
	touch_msghdr(msg, receiving);
	tssx_fault_guard = NULL;
	return true;
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
