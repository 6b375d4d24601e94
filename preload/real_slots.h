/*
 * The real functions the wrappers call, one slot each, all defined in
 * real.c: every wrapper file and the data path reach libc through
 * TSSX_REAL(name) on this one list.
 */
#ifndef TSSX_PRELOAD_REAL_SLOTS_H
#define TSSX_PRELOAD_REAL_SLOTS_H

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "real.h"

#define TSSX_SHIM_FUNCTIONS(X)                                                   \
	X(read) X(write) X(readv) X(writev)                                      \
	X(recv) X(recvfrom) X(recvmsg) X(recvmmsg)                               \
	X(send) X(sendto) X(sendmsg) X(sendmmsg)                                 \
	X(sendfile) X(sendfile64) X(splice)                                      \
	X(close) X(dup) X(dup2) X(dup3) X(fcntl) X(fcntl64) X(ioctl)             \
	X(close_range) X(closefrom) X(syscall) X(socket)                        \
	X(listen) X(accept) X(accept4) X(connect) X(bind) X(shutdown)           \
	X(getpeername) X(getsockname) X(getsockopt) X(setsockopt)               \
	X(sigaction)                                                             \
	X(poll) X(ppoll) X(select) X(pselect)                                    \
	X(epoll_create) X(epoll_create1) X(epoll_ctl) X(epoll_wait) X(epoll_pwait) \
	X(execve) X(execvpe) X(fexecve) X(execveat)                              \
	X(posix_spawn) X(posix_spawnp) X(fork) X(unshare) X(setns) X(fdopen)    \
	X(setvbuf) X(setbuf) X(setbuffer) X(setlinebuf)                         \
	TSSX_SHIM_EPOLL_PWAIT2(X)

#ifdef HAVE_EPOLL_PWAIT2
#define TSSX_SHIM_EPOLL_PWAIT2(X) X(epoll_pwait2)
#else
#define TSSX_SHIM_EPOLL_PWAIT2(X)
#endif

#define TSSX_DECLARE_SLOT(name) TSSX_REAL_EXTERN(name);
TSSX_SHIM_FUNCTIONS(TSSX_DECLARE_SLOT)
#undef TSSX_DECLARE_SLOT

#endif
