/*
 * fd calls: close, dup*, fcntl, ioctl, close_range, closefrom.
 *
 * fd numbers are reused at once, so a connection is forgotten in the table
 * before the real call releases its number; dup2 onto a tracked fd is a
 * close of that fd.  A duplicate shares the connection (refcount).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "conn/connection.h"
#include "conn/unseen.h"
#include "events/events.h"
#include "init.h"
#include "real_slots.h"
#include "shims/shims.h"
#include "tssx/macros.h"
#include "tssx/registry_client.h"

/* Drops the table's reference to what fd refers to. */
static void release_slot(int fd)
{
	struct tssx_fd_object *obj = tssx_table_take(fd);

	if (!obj)
		return;
	switch (obj->kind) {
	case TSSX_FD_CONN:
		tssx_conn_put(tssx_conn_of(obj), fd);
		break;
	case TSSX_FD_LISTENER:
		tssx_listener_release((struct tssx_listener *)obj);
		break;
	case TSSX_FD_REGISTRY:
		tssx_registry_forget_fd(fd);
		break;
	case TSSX_FD_SEGMENT:
	case TSSX_FD_WAKE:
	case TSSX_FD_HELD:
	case TSSX_FD_LOCKS:
	case TSSX_FD_OWN_BELL:
	case TSSX_FD_PEER_BELL:
	case TSSX_FD_WATCHER:
	case TSSX_FD_LOADAVG:
	case TSSX_FD_KICK:
		break; /* never forgotten: see tssx_fd_forget() */
	}
}

void tssx_fd_forget(int fd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);
	struct tssx_fd_object *obj;

	/* Whatever the process: a vfork() child's close only costs its
	 * parent a system call to ask again. */
	if (slot)
		tssx_fd_hints_clear(slot);
	/* A vfork() child closing what it inherited before its exec must
	 * leave the parent's connections and epoll sets alone.  Asked only
	 * when there is something to forget: it costs a system call. */
	if (likely(!slot || !tssx_table_slot_busy(slot)) || tssx_foreign_process())
		return;
	if (atomic_load(&slot->epoll_set) || atomic_load(&slot->watchers))
		tssx_events_forget_fd(fd);
	obj = atomic_load(&slot->obj);
	/* A kept fd outlives the closes of its number (is_kept()). */
	if (obj && !tssx_fd_kind_kept(obj->kind))
		release_slot(fd);
}

/* Two numbers of one connection: epoll sets that hold it under one no
 * longer see every drain through the other (conn/unseen.h). */
static void conn_duplicated(struct tssx_conn *conn)
{
	atomic_store(&conn->unseen_unfit, true);
	tssx_unseen_changed();
}

/* new_fd now refers to what old_fd refers to. */
static int share_fd(int old_fd, int new_fd)
{
	struct tssx_fd_object *obj = tssx_table_get(old_fd);

	tssx_conn_note_program_fd(new_fd);
	/* Whatever a close around the library left on the number describes
	 * another file; nothing is copied (in a vfork() child the table is
	 * the parent's, where new_fd is another file): a cleared hint only
	 * costs a question. */
	tssx_fd_hints_set(new_fd, 0);

	/* An epoll fd's copy shares its set (the events' part of the slot). */
	if (unlikely(events_set_of(old_fd)) && !tssx_foreign_process())
		tssx_events_dup_fd(old_fd, new_fd);

	if (likely(!obj) || obj->kind == TSSX_FD_REGISTRY || tssx_fd_kind_kept(obj->kind) ||
	    tssx_foreign_process())
		return new_fd;
	if (tssx_table_set(new_fd, obj) < 0) {
		/* Beyond the table the duplicate would look like a plain
		 * socket carrying doorbells: refuse it. */
		TSSX_REAL(close)(new_fd);
		errno = EMFILE;
		return -1;
	}
	if (tssx_conn_of(obj)) {
		conn_duplicated(tssx_conn_of(obj));
		/* Its standard stream must read or write it through us, an
		 * older stream of the program not at all. */
		tssx_stdio_landed(new_fd);
	}
	return new_fd;
}

/* A connection's kept fd (its memfd or its side locks' arena for an
 * exec, conn/handover.h, its wake fd, conn/stream.c, the copy of its
 * socket for calls in flight): the application never opened it, so a close
 * of its number is a close-all loop's; it stays open. */
static bool is_kept(int fd)
{
	struct tssx_fd_object *obj = tssx_table_get(fd);

	return obj && tssx_fd_kind_kept(obj->kind);
}

TSSX_EXPORT int close(int fd)
{
	if (unlikely(is_kept(fd)))
		return 0;
	tssx_fd_forget(fd);
	return TSSX_REAL(close)(fd);
}

TSSX_EXPORT int dup(int fd)
{
	int new_fd = TSSX_REAL(dup)(fd);

	return new_fd < 0 ? new_fd : share_fd(fd, new_fd);
}

/* dup2/dup3 close new_fd first, unless old_fd is invalid (asked only
 * when new_fd is ours: dup2 is common on other fds). */
static void replacing(int old_fd, int new_fd)
{
	if (old_fd == new_fd)
		return;
	if (unlikely(is_kept(new_fd)) && !tssx_foreign_process()) {
		tssx_conn_move_kept(new_fd);
		return;
	}
	if (likely(!tssx_table_get(new_fd)) || TSSX_REAL(fcntl)(old_fd, F_GETFD) >= 0)
		tssx_fd_forget(new_fd);
}

TSSX_EXPORT int dup2(int old_fd, int new_fd)
{
	int saved_errno = errno;

	replacing(old_fd, new_fd);
	errno = saved_errno;
	if (TSSX_REAL(dup2)(old_fd, new_fd) < 0)
		return -1;
	return old_fd == new_fd ? new_fd : share_fd(old_fd, new_fd);
}

TSSX_EXPORT int dup3(int old_fd, int new_fd, int flags)
{
	int saved_errno = errno;

	if (old_fd != new_fd)
		replacing(old_fd, new_fd);
	errno = saved_errno;
	if (TSSX_REAL(dup3)(old_fd, new_fd, flags) < 0)
		return -1;
	return share_fd(old_fd, new_fd);
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, va_list args)
{
	/* Every command takes at most one argument, an int or a pointer. */
	void *arg = va_arg(args, void *);
	int ret = real(fd, cmd, arg);
	struct tssx_conn *conn;

	if (ret >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		return share_fd(fd, ret);
	if (ret >= 0 && cmd == F_SETFL && (conn = tssx_conn_lookup(fd)))
		tssx_conn_note_nonblock(conn, (intptr_t)arg & O_NONBLOCK);
	return ret;
}

TSSX_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list args;
	int ret;

	va_start(args, cmd);
	ret = fcntl_common(TSSX_REAL(fcntl), fd, cmd, args);
	va_end(args);
	return ret;
}

TSSX_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list args;
	int ret;

	va_start(args, cmd);
	ret = fcntl_common(TSSX_REAL(fcntl64), fd, cmd, args);
	va_end(args);
	return ret;
}

TSSX_EXPORT int ioctl(int fd, unsigned long request, ...)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	va_list args;
	void *arg;
	ssize_t n;
	int saved_errno;

	va_start(args, request);
	arg = va_arg(args, void *);
	va_end(args);
	if (likely(!conn) || (request != SIOCINQ && request != SIOCOUTQ)) {
		int ret = TSSX_REAL(ioctl)(fd, request, arg);

		if (conn && ret == 0 && request == FIONBIO)
			tssx_conn_note_nonblock(conn, *(int *)arg != 0);
		return ret;
	}
	/* Held while the rings are read: another thread may close fd. */
	conn = tssx_conn_hold(fd);
	if (!conn)
		return TSSX_REAL(ioctl)(fd, request, arg);
	saved_errno = errno;
	n = request == SIOCINQ ? tssx_conn_inq(conn, fd) : tssx_conn_outq(conn, fd);
	tssx_conn_release(conn, fd);
	if (n < 0)
		return (int)tssx_result(n);
	errno = saved_errno;
	*(int *)arg = n > INT_MAX ? INT_MAX : (int)n;
	return 0;
}

/* Forgets every fd from first to last before a range of them closes. */
static void forget_range(unsigned first, unsigned last)
{
	int high = tssx_table_high_fd();

	if (high < 0 || first > (unsigned)high)
		return;
	if (last > (unsigned)high)
		last = (unsigned)high;
	for (unsigned fd = first; fd <= last; fd++)
		tssx_fd_forget((int)fd);
}

/* The real close_range() around the kept fds: a close-all before exec
 * (CPython's subprocess, in a vfork() child) must leave the memfds for
 * the hand-over (the wake fds close at the exec). */
static int close_range_keeping(unsigned first, unsigned last, int flags)
{
	int high = tssx_table_high_fd();
	unsigned from = first;

	for (unsigned fd = first; high >= 0 && fd <= last && fd <= (unsigned)high; fd++) {
		if (!is_kept((int)fd))
			continue;
		if (fd > from && TSSX_REAL(close_range)(from, fd - 1, flags) < 0)
			return -1;
		from = fd + 1;
	}
	return from > last ? 0 : TSSX_REAL(close_range)(from, last, flags);
}

TSSX_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	/* CPython's subprocess calls it in a vfork() child. */
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last && !tssx_foreign_process())
		forget_range(first, last);
	return close_range_keeping(first, last, flags);
}

TSSX_EXPORT void closefrom(int lowfd)
{
	unsigned first = lowfd < 0 ? 0 : (unsigned)lowfd;

	if (!tssx_foreign_process())
		forget_range(first, ~0u);
	if (close_range_keeping(first, ~0u, 0) < 0)
		TSSX_REAL(closefrom)(lowfd);
}

/*
 * Some programs close fds through syscall(SYS_close, fd) (libuv does):
 * those numbers go through the wrappers like the libc calls, so that the
 * table never keeps a connection for a number the kernel reuses; unshare
 * and setns like theirs (namespaces.c).  Every other system call passes
 * through untouched.
 *
 * It takes six arguments whatever the call, as glibc's syscall() does:
 * past the ones in registers that reads the caller's stack, a slot the
 * caller may not have written, which AddressSanitizer would report; the
 * values of arguments the call does not have are never used.
 */
TSSX_EXPORT __attribute__((no_sanitize("address"))) long syscall(long number, ...)
{
	long arg[6];
	va_list args;

	va_start(args, number);
	for (int i = 0; i < 6; i++)
		arg[i] = va_arg(args, long);
	va_end(args);
	switch (number) {
	case SYS_close:
		return close((int)arg[0]);
#ifdef SYS_dup2
	case SYS_dup2:
		return dup2((int)arg[0], (int)arg[1]);
#endif
	case SYS_dup3:
		return dup3((int)arg[0], (int)arg[1], (int)arg[2]);
	case SYS_close_range:
		return close_range((unsigned)arg[0], (unsigned)arg[1], (int)arg[2]);
	case SYS_unshare: /* namespaces.c */
		return unshare((int)arg[0]);
	case SYS_setns:
		return setns((int)arg[0], (int)arg[1]);
	default:
		return TSSX_REAL(syscall)(number, arg[0], arg[1], arg[2], arg[3], arg[4], arg[5]);
	}
}
