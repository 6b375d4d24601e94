/*
 * The real functions the shims call, one slot each, defined in real.c.
 * Event-loop wrappers define the slots of the calls they wrap themselves;
 * the data path reaches the real poll() through tssx_real_poll().
 */
#ifndef TSSX_PRELOAD_REAL_SLOTS_H
#define TSSX_PRELOAD_REAL_SLOTS_H

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "real.h"

#define TSSX_SHIM_FUNCTIONS(X)                                                   \
	X(read) X(write) X(readv) X(writev)                                      \
	X(recv) X(recvfrom) X(recvmsg) X(recvmmsg)                               \
	X(send) X(sendto) X(sendmsg) X(sendmmsg)                                 \
	X(sendfile) X(sendfile64) X(splice)                                      \
	X(close) X(dup) X(dup2) X(dup3) X(fcntl) X(fcntl64) X(ioctl)             \
	X(close_range) X(closefrom) X(syscall) X(socket)                                              \
	X(listen) X(accept) X(accept4) X(connect) X(bind) X(shutdown)           \
	X(getpeername) X(getsockname) X(getsockopt)

#define TSSX_DECLARE_SLOT(name) TSSX_REAL_EXTERN(name);
TSSX_SHIM_FUNCTIONS(TSSX_DECLARE_SLOT)
#undef TSSX_DECLARE_SLOT

/* poll() as libc implements it, whoever wraps it. */
int tssx_real_poll(struct pollfd *fds, nfds_t nfds, int timeout);

#endif
