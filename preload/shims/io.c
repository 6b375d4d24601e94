/*
 * Data calls: read, write, recv*, send* and their fortified variants
 * (docs/design.md §3); sendfile and splice are in copy.c.  For any other fd each
 * costs one table lookup before the real call.
 */
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn/fault.h"
#include "conn/stream_fast.h"
#include "real_slots.h"
#include "shims/shims.h"
#include "tssx/log.h"
#include "tssx/macros.h"

/* The fortified entry points _FORTIFY_SOURCE programs call; their headers
 * only declare them for fortified builds, which the shims are not. */
extern void __chk_fail(void) __attribute__((noreturn));
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *addrlen);

/* The peer's address as recvfrom()/recvmsg() report it: what
 * getpeername() shows. */
static void peer_addr(int fd, struct sockaddr *addr, socklen_t *len)
{
	if (addr && len && getpeername(fd, addr, len) < 0)
		*len = 0;
}

/* The real read and write the first time, when the slot is still to be
 * resolved: out of line, so that the wrappers make no call of their own
 * and keep no frame (every call on any fd is a tail call). */
static __attribute__((noinline, cold)) ssize_t resolve_read(int fd, void *buf, size_t len)
{
	return TSSX_REAL(read)(fd, buf, len);
}

static __attribute__((noinline, cold)) ssize_t resolve_write(int fd, const void *buf, size_t len)
{
	return TSSX_REAL(write)(fd, buf, len);
}

TSSX_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	struct tssx_fd_slot *slot;
	struct tssx_conn *conn = tssx_conn_lookup_slot(fd, &slot);

	/* read(2) of nothing returns 0 before the socket is asked; recv()
	 * of nothing is a socket call (stream.c). */
	if (likely(!conn) || !len) {
		/* Acquire as in tssx_real_load(). */
		ssize_t (*real)(int, void *, size_t) =
			atomic_load_explicit(&tssx_real_slot_read, memory_order_acquire);

		return likely(real) ? real(fd, buf, len) : resolve_read(fd, buf, len);
	}
	return tssx_conn_read(fd, buf, len, conn, slot);
}

TSSX_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return read(fd, buf, len);
}

TSSX_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	struct tssx_fd_slot *slot;
	struct tssx_conn *conn = tssx_conn_lookup_slot(fd, &slot);

	if (likely(!conn)) {
		/* Acquire as in tssx_real_load(). */
		ssize_t (*real)(int, const void *, size_t) =
			atomic_load_explicit(&tssx_real_slot_write, memory_order_acquire);

		return likely(real) ? real(fd, buf, len) : resolve_write(fd, buf, len);
	}
	return tssx_conn_write(fd, buf, len, 0, conn, slot);
}

/* readv()/writev()'s checks of the array, in the kernel's order: EINVAL
 * for its length, EFAULT when it cannot be read (conn/fault.h). */
static int iov_usable(const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	return tssx_fault_iov_ok(iov, (size_t)iovcnt) ? 0 : -EFAULT;
}

/* sendmsg()/recvmsg()'s checks of msg, in the kernel's order: EFAULT for
 * the msghdr, EMSGSIZE for too many iovecs, EFAULT for the array (and a
 * send's control data), as conn/fault.h reads them. */
static int msg_usable(const struct msghdr *msg, bool receiving)
{
	if (!tssx_fault_msghdr_ok(msg, receiving))
		return -EFAULT;
	return msg->msg_iovlen > IOV_MAX ? -EMSGSIZE : 0;
}

TSSX_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	int ret;

	if (likely(!conn))
		return TSSX_REAL(readv)(fd, iov, iovcnt);
	if ((ret = iov_usable(iov, iovcnt)) < 0)
		return tssx_result(ret);
	/* readv(2) of nothing returns 0 before the socket is asked. */
	if (!tssx_iov_total(iov, iovcnt))
		return TSSX_REAL(readv)(fd, iov, iovcnt);
	return tssx_result(tssx_conn_recv(conn, fd, iov, iovcnt, 0));
}

TSSX_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	int ret;

	if (likely(!conn))
		return TSSX_REAL(writev)(fd, iov, iovcnt);
	if ((ret = iov_usable(iov, iovcnt)) < 0)
		return tssx_result(ret);
	return tssx_result(tssx_conn_send(conn, fd, iov, iovcnt, 0));
}

/* Flags the rings cannot carry: out-of-band data, which a Unix stream
 * socket takes since Linux 5.15 (docs/preload.md, differences). */
static bool bad_flags(int flags)
{
	return flags & MSG_OOB;
}

TSSX_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	struct tssx_fd_slot *slot;
	struct tssx_conn *conn = tssx_conn_lookup_slot(fd, &slot);

	if (likely(!conn))
		return TSSX_REAL(recv)(fd, buf, len, flags);
	if (bad_flags(flags))
		return tssx_result(-EOPNOTSUPP);
	return tssx_conn_recv_one(fd, buf, len, flags, conn, slot);
}

TSSX_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	if (len > buflen)
		__chk_fail();
	return recv(fd, buf, len, flags);
}

TSSX_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *addrlen)
{
	struct tssx_fd_slot *slot;
	struct tssx_conn *conn = tssx_conn_lookup_slot(fd, &slot);
	ssize_t n;

	if (likely(!conn))
		return TSSX_REAL(recvfrom)(fd, buf, len, flags, addr, addrlen);
	if (bad_flags(flags))
		return tssx_result(-EOPNOTSUPP);
	n = tssx_conn_recv_one(fd, buf, len, flags, conn, slot);
	if (n >= 0)
		peer_addr(fd, addr, addrlen);
	return n;
}

TSSX_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
				   struct sockaddr *addr, socklen_t *addrlen)
{
	if (len > buflen)
		__chk_fail();
	return recvfrom(fd, buf, len, flags, addr, addrlen);
}

static ssize_t conn_recvmsg(struct tssx_conn *conn, int fd, struct msghdr *msg, int flags)
{
	int ret = msg_usable(msg, true);
	ssize_t n;

	if (ret < 0)
		return tssx_result(ret);
	if (bad_flags(flags))
		return tssx_result(-EOPNOTSUPP);
	n = tssx_result(tssx_conn_recvmsg(conn, fd, msg, flags));
	if (n >= 0 && msg->msg_name)
		peer_addr(fd, msg->msg_name, &msg->msg_namelen);
	return n;
}

TSSX_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);

	if (likely(!conn))
		return TSSX_REAL(recvmsg)(fd, msg, flags);
	return conn_recvmsg(conn, fd, msg, flags);
}

TSSX_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct tssx_fd_slot *slot;
	struct tssx_conn *conn = tssx_conn_lookup_slot(fd, &slot);

	if (likely(!conn))
		return TSSX_REAL(send)(fd, buf, len, flags);
	if (bad_flags(flags))
		return tssx_result(-EOPNOTSUPP);
	return tssx_conn_write(fd, buf, len, flags, conn, slot);
}

TSSX_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
			   socklen_t addrlen)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);

	if (likely(!conn))
		return TSSX_REAL(sendto)(fd, buf, len, flags, addr, addrlen);
	if (addr && addrlen)
		return tssx_result(-EISCONN); /* as a connected stream socket */
	return send(fd, buf, len, flags);
}

static ssize_t conn_sendmsg(struct tssx_conn *conn, int fd, const struct msghdr *msg, int flags)
{
	int ret = msg_usable(msg, false);

	if (ret < 0)
		return tssx_result(ret);
	if (bad_flags(flags))
		return tssx_result(-EOPNOTSUPP);
	if (msg->msg_name && msg->msg_namelen)
		return tssx_result(-EISCONN);
	return tssx_result(tssx_conn_sendmsg(conn, fd, msg, flags));
}

TSSX_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);

	if (likely(!conn))
		return TSSX_REAL(sendmsg)(fd, msg, flags);
	return conn_sendmsg(conn, fd, msg, flags);
}

TSSX_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	unsigned int i;

	if (likely(!conn))
		return TSSX_REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
	for (i = 0; i < vlen; i++) {
		ssize_t n = conn_recvmsg(conn, fd, &vec[i].msg_hdr, flags & ~MSG_WAITFORONE);

		if (n < 0)
			return i ? (int)i : -1;
		vec[i].msg_len = (unsigned int)n;
		if (n == 0)
			return (int)i + 1; /* EOF ends the batch */
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
	}
	return (int)i;
}

TSSX_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	unsigned int i;

	if (likely(!conn))
		return TSSX_REAL(sendmmsg)(fd, vec, vlen, flags);
	for (i = 0; i < vlen; i++) {
		ssize_t n = conn_sendmsg(conn, fd, &vec[i].msg_hdr, flags);

		if (n < 0)
			return i ? (int)i : -1;
		vec[i].msg_len = (unsigned int)n;
	}
	return (int)i;
}
