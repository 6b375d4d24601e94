/*
 * Where an fd the library keeps, or makes on a thread of its own, goes:
 * the upper half of the fd limit (F_DUPFD).  Made at the lowest free
 * number, it could take one the program has just closed, which the kernel
 * must answer with POLLNVAL or EBADF in the program's poll(), select() or
 * next call on it.  Shared by libtssx and the registry client it links.
 */
#ifndef TSSX_FD_LIMIT_H
#define TSSX_FD_LIMIT_H

#include <limits.h>
#include <sys/resource.h>

/* The first number of the upper half, or 0 when the limit is too large
 * to tell. */
static inline int tssx_fd_upper_half(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur / 2 > INT_MAX)
		return 0;
	return (int)(limit.rlim_cur / 2);
}

#endif
