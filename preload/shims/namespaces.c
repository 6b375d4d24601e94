/*
 * unshare(2) and setns(2): the kernel refuses a new user namespace, and
 * setns into a user or mount namespace, to a process with more than one
 * thread (EINVAL), and the registry client's helper thread may be running
 * (docs/registry.md, Failure model), and the futex bell's watcher
 * (conn/bell.h).  They are stopped for the call, and started again after
 * it: the helper when the process has claims to watch over.
 */
#include <errno.h>
#include <sched.h>

#include "conn/bell.h"
#include "real_slots.h"
#include "tssx/macros.h"
#include "tssx/registry_client.h"

/* Flags the kernel turns into "the whole process": CLONE_NEWUSER implies
 * CLONE_THREAD; CLONE_VM and CLONE_SIGHAND imply it too. */
#define ONE_THREAD_FLAGS (CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM)

/* After the call: errno stays the call's. */
static int resumed(int r)
{
	int saved = errno;

	tssx_registry_resume();
	tssx_bell_resume();
	errno = saved;
	return r;
}

TSSX_EXPORT int unshare(int flags)
{
	if (!(flags & ONE_THREAD_FLAGS))
		return TSSX_REAL(unshare)(flags);
	tssx_registry_pause();
	tssx_bell_pause();
	return resumed(TSSX_REAL(unshare)(flags));
}

TSSX_EXPORT int setns(int fd, int nstype)
{
	tssx_registry_pause();
	tssx_bell_pause();
	return resumed(TSSX_REAL(setns)(fd, nstype));
}
