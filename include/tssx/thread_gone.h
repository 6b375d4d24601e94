/*
 * Waiting for a helper thread of the library to have left the process,
 * before a call that needs a single thread (unshare(CLONE_NEWUSER), setns
 * into a user or mount namespace): the registry client's helper and the
 * futex bell's watcher.  Shared by libtssx and the registry client.
 */
#ifndef TSSX_THREAD_GONE_H
#define TSSX_THREAD_GONE_H

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Waits until thread `tid` of this process has left it (the kernel
 * removes an exiting thread from its group a moment after pthread's
 * last word), until `deadline_ns` on CLOCK_MONOTONIC; without /proc, at
 * once.  0, or -EBUSY when the deadline came first. */
static inline int tssx_thread_gone(pid_t tid, uint64_t deadline_ns)
{
	char path[64];
	struct timespec now;

	snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tid);
	while (access(path, F_OK) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec >= deadline_ns)
			return -EBUSY;
		sched_yield();
	}
	return 0;
}

#endif
