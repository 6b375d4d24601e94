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
#include <sys/socket.h>
#include <sys/uio.h>

struct tssx_fault_guard {
	sigjmp_buf env;
};

/* The guard of the copy this thread is in, or NULL. */
extern __thread __attribute__((tls_model("initial-exec"))) struct tssx_fault_guard *tssx_fault_guard;

/* Whether the first `len` bytes of iov can be read (with `write`: also
 * written; each probed byte is stored back as it was): one byte of every
 * page is touched under the guard, no system call.  The iov array itself
 * is read under the guard too. */
bool tssx_fault_can_access(const struct iovec *iov, int iovcnt, size_t len, bool write);

/* The kernel reads a call's iovec array, and msghdr, before anything
 * else, and fails with EFAULT where it cannot; the data path reads them
 * outside the guard.  Whether iovcnt entries at iov can be read. */
bool tssx_fault_iov_ok(const struct iovec *iov, size_t iovcnt);
/* Whether msg can be read (`receiving`: written too, recvmsg writes its
 * lengths and flags back), with its iovec array unless msg_iovlen is
 * above IOV_MAX (EMSGSIZE, the caller's to say); for a send, also its
 * control data. */
bool tssx_fault_msghdr_ok(const struct msghdr *msg, bool receiving);

/* Installs the handler, once per process (after that, idempotent). */
void tssx_fault_install(void);

/* sigaction() for SIGSEGV and SIGBUS once the handler is in: the
 * program's action is kept and chained, ours stays. */
int tssx_fault_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
/* Whether sig is one tssx_fault_sigaction() answers for now. */
bool tssx_fault_owns(int sig);

#endif
