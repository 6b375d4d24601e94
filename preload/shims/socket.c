/*
 * Socket calls: detection and handshake (docs/design.md §2).
 *
 * listen() claims the server bit in the registry; accept() tells TSSX
 * clients from plain ones by their address; connect() asks the registry
 * and, only when a TSSX server listens, goes through shared memory.  The
 * application sees the addresses it would see without TSSX: a TSSX client
 * looks unbound.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn/wait.h"
#include "events/events.h"
#include "init.h"
#include "real_slots.h"
#include "shims/shims.h"
#include "tssx/log.h"
#include "tssx/macros.h"
#include "tssx/registry_client.h"

/* What getsockname() shows for an unbound Unix socket. */
static const struct sockaddr_un unbound_addr = { .sun_family = AF_UNIX };
#define UNBOUND_LEN ((socklen_t)sizeof(sa_family_t))

static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;

static bool is_stream(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);

	return TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* is_stream() of a socket connect() was given, which socket() may have
 * told already. */
static bool is_stream_client(int fd)
{
	return tssx_fd_hinted(fd, TSSX_HINT_UNIX_STREAM) || is_stream(fd);
}

/* SIOCUNIXFILE (Linux 6.18): an O_PATH fd of the file a Unix socket is
 * bound to; not in every kernel's headers yet. */
#define TSSX_SIOCUNIXFILE (SIOCPROTOPRIVATE + 0)

/*
 * The name clients reach a listener by.  getsockname() tells the name it
 * was bound to, but a server may bind a temporary name and rename the file
 * into place before listen() (to replace its socket atomically): the file
 * the kernel holds tells the name now, absolute even after a bind to a
 * relative path.  Without SIOCUNIXFILE, for a file removed since, or an
 * abstract name, the bound name it is.  *file (if known, else zero) is
 * the file's identity.
 */
static int listener_name(int fd, struct sockaddr_un *addr, socklen_t *len, struct stat *file_st)
{
	char proc[32], path[sizeof(addr->sun_path)];
	static const char deleted[] = " (deleted)";
	ssize_t n;
	int file;

	*file_st = (struct stat){ .st_ino = 0 };
	*len = sizeof(*addr);
	if (TSSX_REAL(getsockname)(fd, (struct sockaddr *)addr, len) < 0)
		return -errno;
	if (addr->sun_family != AF_UNIX || *len <= UNBOUND_LEN || addr->sun_path[0] == '\0')
		return 0;
	file = TSSX_REAL(ioctl)(fd, TSSX_SIOCUNIXFILE, 0);
	if (file < 0)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", file);
	n = readlink(proc, path, sizeof(path));
	if (n <= 0 || (size_t)n >= sizeof(path) || path[0] != '/' ||
	    ((size_t)n >= sizeof(deleted) - 1 && !memcmp(path + n - (sizeof(deleted) - 1), deleted, sizeof(deleted) - 1)) ||
	    fstat(file, file_st) < 0) {
		TSSX_REAL(close)(file);
		*file_st = (struct stat){ .st_ino = 0 };
		return 0;
	}
	TSSX_REAL(close)(file);
	memcpy(addr->sun_path, path, (size_t)n);
	addr->sun_path[n] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

/* A named Unix stream socket this process may claim: its claim (the
 * path and file it names noted in listener), or NULL.  A claim the
 * registry could not make in time is kept all the same: the registry
 * client makes it when the registry answers again. */
static struct tssx_registry_claim *claim_server(int fd, struct tssx_listener *listener)
{
	struct sockaddr_un addr;
	socklen_t len;
	struct stat file;
	struct tssx_registry_claim *claim;
	int error;

	if (listener_name(fd, &addr, &len, &file) < 0 || addr.sun_family != AF_UNIX || len <= UNBOUND_LEN ||
	    !is_stream(fd) || !tssx_selects(&addr, len))
		return NULL;
	claim = tssx_registry_claim(&addr, len, &error);
	if (!claim) {
		log_debug("fd %d: no server claim (%s): plain sockets", fd, strerror(-error));
		return NULL;
	}
	error = tssx_registry_claim_error(claim);
	if (error < 0)
		log_debug("fd %d: server claim pending (%s): plain sockets until made", fd,
			  strerror(-error));
	else
		log_debug("fd %d: server bit claimed", fd);
	listener->file_dev = file.st_dev;
	listener->file_ino = file.st_ino;
	if (file.st_ino)
		memcpy(listener->path, addr.sun_path, sizeof(listener->path));
	return claim;
}

/*
 * A plain client was accepted on a claimed path listener: if the file
 * it was claimed by is no longer at that path (the server renamed its
 * socket into place after listen()), the claim went with it (the registry
 * voids it) and clients of the new name stay plain.  The claim follows
 * the file to its name now.  One stat() per plain accept; TSSX clients,
 * which found the claim, cost none.
 */
static void follow_rename(int fd, struct tssx_listener *listener)
{
	struct tssx_registry_claim *old, *claim;
	struct stat st;

	pthread_mutex_lock(&listeners_lock);
	if (!listener->file_ino ||
	    (stat(listener->path, &st) == 0 && st.st_ino == listener->file_ino && st.st_dev == listener->file_dev))
		goto out;
	old = atomic_load(&listener->claim);
	listener->file_ino = 0;
	claim = claim_server(fd, listener);
	atomic_store(&listener->claim, claim);
	tssx_registry_release(old);
	log_debug("fd %d: listener renamed to %s: claimed there", fd, claim ? listener->path : "(nothing)");
out:
	pthread_mutex_unlock(&listeners_lock);
}

/* Remembers a listening socket (any family, so accept() asks only once)
 * and claims the server bit for it when it is a named Unix stream one. */
static void note_listener(int fd)
{
	struct tssx_listener *listener;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	pthread_mutex_lock(&listeners_lock);
	if (tssx_table_get(fd))
		goto out;
	listener = calloc(1, sizeof(*listener));
	if (!listener)
		goto out;
	listener->obj.kind = TSSX_FD_LISTENER;
	listener->claim = claim_server(fd, listener);
	listener->listened_by = TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
	if (tssx_table_set(fd, &listener->obj) < 0) {
		tssx_registry_release(listener->claim);
		free(listener);
	}
out:
	pthread_mutex_unlock(&listeners_lock);
}

void tssx_listener_adopt(int fd)
{
	note_listener(fd);
	log_debug("fd %d: listener inherited over exec, claimed again", fd);
}

void tssx_listener_release(struct tssx_listener *listener)
{
	if (!tssx_table_unref(&listener->obj))
		return;
	tssx_registry_release(listener->claim);
	free(listener);
}

/* A fresh fd number still in the table was closed behind our back. */
static void forget_stale(int fd)
{
	if (unlikely(tssx_table_get(fd))) {
		log_debug("fd %d was closed around the library", fd);
		tssx_fd_forget(fd);
	}
}

TSSX_EXPORT int socket(int domain, int type, int protocol)
{
	int fd = TSSX_REAL(socket)(domain, type, protocol);

	if (fd < 0)
		return fd;
	forget_stale(fd);
	tssx_conn_note_program_fd(fd);
	tssx_fd_hints_set(fd, domain == AF_UNIX && (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM
				      ? TSSX_HINT_UNIX_STREAM
				      : 0);
	return fd;
}

TSSX_EXPORT int listen(int fd, int backlog)
{
	int saved_errno = errno;

	if (TSSX_REAL(listen)(fd, backlog) < 0)
		return -1;
	tssx_fd_hint_add(fd, TSSX_HINT_LISTENING);
	if (tssx_init() && !tssx_table_get(fd))
		note_listener(fd);
	errno = saved_errno;
	return 0;
}

/* The listener on fd if it is one whose server bit this process claimed. */
static struct tssx_listener *serving_tssx(int fd)
{
	struct tssx_fd_object *obj = tssx_table_get(fd);

	return obj && obj->kind == TSSX_FD_LISTENER && atomic_load(&((struct tssx_listener *)obj)->claim)
		       ? (struct tssx_listener *)obj
		       : NULL;
}

/*
 * Whether a plain connection is listed for `tssx connections`: at most
 * every PLAIN_LISTED_EVERY_NS per listener for its plain clients (and
 * then the claim's path checked, follow_rename()), and per process for
 * its connections to plain servers.  A listing costs five or six system
 * calls, more than such a connection per request costs either end;
 * under a stream of them one is listed every 10 ms, and a rename is
 * followed within 10 ms.  *last_ns: when one was last listed.
 */
#define PLAIN_LISTED_EVERY_NS 10000000u

static bool plain_listing_due(_Atomic uint64_t *last_ns)
{
	uint64_t now = tssx_now_ns();
	/* Relaxed: a time stamp, read and swapped alone. */
	uint64_t last = atomic_load_explicit(last_ns, memory_order_relaxed);

	return now - last >= PLAIN_LISTED_EVERY_NS &&
	       atomic_compare_exchange_strong_explicit(last_ns, &last, now, memory_order_relaxed,
						       memory_order_relaxed);
}

/* The path a claimed path listener's clients connect to (the name its
 * claim follows) for the listing of a TSSX connection accepted there,
 * which then need not ask the socket (getsockname(), which would also
 * give the name bound before a rename); false where not known (an
 * abstract name, a path without its file), and the listing asks. */
static bool claimed_path(int fd, struct sockaddr_un *addr, socklen_t *len)
{
	struct tssx_fd_object *obj = tssx_table_get(fd);
	struct tssx_listener *listener = (struct tssx_listener *)obj;
	bool known;

	if (!obj || obj->kind != TSSX_FD_LISTENER)
		return false;
	/* follow_rename() may be rewriting it. */
	pthread_mutex_lock(&listeners_lock);
	known = listener->file_ino != 0;
	if (known) {
		*addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
		memcpy(addr->sun_path, listener->path, sizeof(addr->sun_path));
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				   strnlen(addr->sun_path, sizeof(addr->sun_path)));
	}
	pthread_mutex_unlock(&listeners_lock);
	return known;
}

/* Whether this process made the last listen() on fd: its clients know it
 * by SO_PEERCRED, not another process that accepts there (conn/recycle.h). */
static bool listened_here(int fd)
{
	struct tssx_fd_object *obj = tssx_table_get(fd);

	return obj && obj->kind == TSSX_FD_LISTENER && ((struct tssx_listener *)obj)->listened_by == tssx_owner_pid();
}

static int accept_common(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags, bool is_accept4)
{
	struct sockaddr_storage peer;
	socklen_t peerlen = sizeof(peer);
	bool enabled = tssx_init();
	int conn_fd, ret, saved_errno = errno;

	if (enabled && !tssx_table_get(fd))
		note_listener(fd);
	conn_fd = is_accept4 ? TSSX_REAL(accept4)(fd, (struct sockaddr *)&peer, &peerlen, flags)
			     : TSSX_REAL(accept)(fd, (struct sockaddr *)&peer, &peerlen);
	if (conn_fd < 0)
		return -1;
	forget_stale(conn_fd);
	tssx_conn_note_program_fd(conn_fd);
	tssx_fd_hints_set(conn_fd, TSSX_HINT_CONNECTED);
	if (enabled && tssx_conn_is_client_addr(&peer, peerlen)) {
		struct sockaddr_un self;
		socklen_t selflen = 0;
		bool self_known = claimed_path(fd, &self, &selflen);

		ret = tssx_conn_accept(conn_fd, (const struct sockaddr_un *)&peer, peerlen,
				       self_known ? &self : NULL, selflen, listened_here(fd));
		if (ret < 0) {
			/* Its hello would reach the application as data. */
			TSSX_REAL(close)(conn_fd);
			errno = ECONNABORTED;
			return log_error(-1, "fd %d: cannot track a TSSX client: %s", fd, strerror(-ret));
		}
		/* A stream of the program on the number (closed under it)
		 * would read the real socket. */
		tssx_stdio_landed(conn_fd);
		tssx_copy_addr(addr, addrlen, &unbound_addr, UNBOUND_LEN);
	} else {
		struct tssx_listener *listener = enabled ? serving_tssx(fd) : NULL;

		if (listener && plain_listing_due(&listener->plain_noted_ns)) {
			tssx_conn_list_plain(conn_fd, true, NULL, TSSX_PLAIN_CLIENT_PLAIN, 0);
			follow_rename(fd, listener);
		}
		tssx_copy_addr(addr, addrlen, &peer, peerlen);
	}
	errno = saved_errno;
	return conn_fd;
}

TSSX_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return accept_common(fd, addr, addrlen, 0, false);
}

TSSX_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	return accept_common(fd, addr, addrlen, flags, true);
}

/* How connect() treats a socket. */
enum client_path {
	CLIENT_PLAIN,
	/* A stream socket: bind a TSSX name first if it is unbound (the
	 * bind tells, so the common case asks nothing more); one bound by us
	 * on an earlier connect() that failed goes on with that name, one
	 * the application bound stays plain. */
	CLIENT_BIND,
	CLIENT_BOUND, /* bound by us on an earlier connect() that failed */
};

/* Why a plain connection is plain, for `tssx connections`; reason 0: not
 * a candidate at all (not a named Unix socket, TSSX disabled). */
struct plain_why {
	enum tssx_plain_reason reason;
	int error;
};

static enum client_path client_path(int fd, const struct sockaddr *addr, socklen_t len, struct plain_why *why,
				    struct tssx_destination **dest)
{
	int bits;

	*why = (struct plain_why){ 0 };
	*dest = NULL;
	if (len <= UNBOUND_LEN || addr->sa_family != AF_UNIX || tssx_table_get(fd) || !tssx_init())
		return CLIENT_PLAIN;
	if (!tssx_selects((const struct sockaddr_un *)addr, len)) {
		why->reason = TSSX_PLAIN_NOT_SELECTED;
		return CLIENT_PLAIN;
	}
	/* Recent connections there (of this process, or of this program's
	 * processes while this one has none) were too short to pay for a
	 * segment: plain, before the registry is even asked.  Not listed in `tssx
	 * connections`: the listing would cost more system calls than such
	 * a connection makes. */
	*dest = tssx_destination_of((const struct sockaddr_un *)addr, len, false);
	if (*dest ? tssx_destination_skips(*dest)
		  : tssx_destination_shared_skips((const struct sockaddr_un *)addr, len)) {
		log_debug("fd %d: plain: recent connections to this server were short (TSSX_SHORT_CALLS)", fd);
		return CLIENT_PLAIN;
	}
	bits = tssx_registry_lookup((const struct sockaddr_un *)addr, len);
	if (bits < 0 && bits != -ENOENT) {
		*why = (struct plain_why){ TSSX_PLAIN_NO_REGISTRY, -bits };
		return CLIENT_PLAIN;
	}
	if (bits < 0 || !(bits & TSSX_BIT_SERVER)) {
		why->reason = TSSX_PLAIN_SERVER_PLAIN;
		return CLIENT_PLAIN;
	}
	if (!is_stream_client(fd))
		return CLIENT_PLAIN;
	/* glibc's stream would read the real socket and write around the
	 * rings; plain, both ends keep working. */
	if (unlikely(tssx_stdio_on(fd))) {
		log_debug("fd %d: plain: a stdio stream of the program is on it", fd);
		why->reason = TSSX_PLAIN_STDIO;
		return CLIENT_PLAIN;
	}
	return CLIENT_BIND;
}

/* The bind found the socket bound already (EINVAL): by us on an earlier
 * connect(), or by the application, which keeps it plain. */
static enum client_path bound_path(int fd, struct plain_why *why)
{
	struct sockaddr_storage self;
	socklen_t selflen = sizeof(self);

	if (TSSX_REAL(getsockname)(fd, (struct sockaddr *)&self, &selflen) == 0 &&
	    tssx_conn_is_client_addr(&self, selflen))
		return CLIENT_BOUND;
	*why = (struct plain_why){ TSSX_PLAIN_BOUND, 0 };
	return CLIENT_PLAIN;
}

/* The server's address as the listing shows it, from the address
 * connect() was given, when that is the name the server bound: absolute
 * or abstract (a relative path resolves against the working directory).
 * "" otherwise: the socket is asked. */
static void server_name_of(char *dst, size_t size, const struct sockaddr *addr, socklen_t len)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)addr;

	dst[0] = '\0';
	if (sun->sun_path[0] == '/' || sun->sun_path[0] == '\0')
		tssx_conn_list_name(dst, size, sun, len);
}

/* When a process last listed a connection to a plain server. */
static _Atomic uint64_t plain_server_listed_ns;

/* connect() of a socket that stays plain; a connected stream socket that
 * could have used TSSX is listed with why it did not (at most every
 * 10 ms, plain_listing_due()). */
static int connect_plain(int fd, const struct sockaddr *addr, socklen_t len, struct plain_why why)
{
	int ret = TSSX_REAL(connect)(fd, addr, len);
	int saved_errno = errno;
	char server[TSSX_CONN_PATH_MAX];

	if (ret == 0) {
		tssx_fd_hint_add(fd, TSSX_HINT_CONNECTED);
		tssx_events_fd_settled(fd);
	}
	if (ret == 0 && why.reason && plain_listing_due(&plain_server_listed_ns) && is_stream_client(fd)) {
		server_name_of(server, sizeof(server), addr, len);
		tssx_conn_list_plain(fd, false, server, why.reason, why.error);
	}
	errno = saved_errno;
	return ret;
}

static int connect_tssx(int fd, const struct sockaddr *addr, socklen_t len, struct tssx_destination *dest)
{
	struct tssx_client_prep prep;
	enum client_path path = CLIENT_BIND;
	int ret;

	ret = tssx_conn_prepare(&prep, addr, len);
	prep.destination = dest;
	if (ret == 0) {
		server_name_of(prep.conn->server_name, sizeof(prep.conn->server_name), addr, len);
		ret = tssx_conn_bind_client(fd, &prep);
	}
	/* The bind found the socket bound, or no bind was tried (no
	 * segment): whose name does it carry? */
	if (ret == -EINVAL || (ret < 0 && !prep.conn)) {
		int setup_error = prep.conn ? 0 : -ret;
		struct plain_why why;

		path = bound_path(fd, &why);
		if (path == CLIENT_PLAIN) {
			tssx_conn_abandon(&prep);
			if (setup_error)
				log_debug("fd %d: no TSSX connection (%s): plain", fd, strerror(setup_error));
			return connect_plain(fd, addr, len,
					     setup_error ? (struct plain_why){ TSSX_PLAIN_SETUP_FAILED, setup_error } : why);
		}
		ret = -setup_error;
	}
	if (ret < 0) {
		/* A socket we did not bind is still unbound: plain it stays. */
		if (prep.conn)
			tssx_conn_abandon(&prep);
		if (path == CLIENT_BOUND)
			return log_error(-1, "fd %d: TSSX connection not possible: %s", fd, strerror(-ret));
		log_debug("fd %d: no TSSX connection (%s): plain", fd, strerror(-ret));
		return connect_plain(fd, addr, len, (struct plain_why){ TSSX_PLAIN_SETUP_FAILED, -ret });
	}
	if (TSSX_REAL(connect)(fd, addr, len) < 0) {
		int saved_errno = errno;

		tssx_conn_abandon(&prep);
		errno = saved_errno;
		return -1;
	}
	ret = tssx_conn_connect(fd, &prep);
	if (ret < 0)
		return (int)tssx_result(ret);
	tssx_registry_mark_client((const struct sockaddr_un *)addr, len);
	return 0;
}

TSSX_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int saved_errno = errno;
	struct plain_why why = { 0 };
	struct tssx_destination *dest = NULL;
	enum client_path path = addr ? client_path(fd, addr, len, &why, &dest) : CLIENT_PLAIN;

	errno = saved_errno;
	if (path == CLIENT_PLAIN)
		return connect_plain(fd, addr, len, why);
	if (!dest)
		dest = tssx_destination_of((const struct sockaddr_un *)addr, len, true);
	if (connect_tssx(fd, addr, len, dest) < 0)
		return -1;
	errno = saved_errno;
	return 0;
}

TSSX_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);

	if (!conn || !conn->server)
		return TSSX_REAL(getpeername)(fd, addr, len);
	tssx_copy_addr(addr, len, &unbound_addr, UNBOUND_LEN);
	return 0;
}

TSSX_EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);

	if (!conn || conn->server)
		return TSSX_REAL(getsockname)(fd, addr, len);
	tssx_copy_addr(addr, len, &unbound_addr, UNBOUND_LEN);
	return 0;
}

/* SO_ERROR of a failed connection and SO_PEEK_OFF are the connection's,
 * every other option the real socket's. */
TSSX_EXPORT int getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	int answer;

	if (!conn || level != SOL_SOCKET || !value || !len || *len < sizeof(int))
		return TSSX_REAL(getsockopt)(fd, level, name, value, len);
	if (name == SO_ERROR && atomic_load(&conn->state) == TSSX_CONN_FAILED)
		answer = atomic_load(&conn->error);
	else if (name == SO_PEEK_OFF)
		answer = atomic_load(&conn->peek_off);
	else
		return TSSX_REAL(getsockopt)(fd, level, name, value, len);
	memcpy(value, &answer, sizeof(answer));
	*len = sizeof(answer);
	return 0;
}

/* The rings are not the socket's buffer: the kernel's SO_PEEK_OFF would
 * count doorbells.  The connection keeps it (stream.c).  The data path
 * keeps the socket's timeouts, read again after an option is set. */
TSSX_EXPORT int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	int off, ret;

	if (!conn || level != SOL_SOCKET || name != SO_PEEK_OFF) {
		ret = TSSX_REAL(setsockopt)(fd, level, name, value, len);
		if (conn && level == SOL_SOCKET)
			tssx_conn_forget_timeouts(conn);
		return ret;
	}
	if (!value || len < sizeof(int))
		return (int)tssx_result(-EINVAL);
	memcpy(&off, value, sizeof(off));
	atomic_store(&conn->peek_off, off < 0 ? -1 : off);
	return 0;
}

TSSX_EXPORT int shutdown(int fd, int how)
{
	/* Held for the call: another thread may close fd meanwhile. */
	struct tssx_conn *conn = tssx_conn_hold(fd);
	int saved_errno = errno, ret;

	if (!conn)
		return TSSX_REAL(shutdown)(fd, how);
	ret = tssx_conn_shutdown(conn, fd, how);
	tssx_conn_release(conn, fd);
	if (tssx_result(ret) < 0)
		return -1;
	errno = saved_errno;
	return 0;
}
