/*
 * Connections and listener claims across exec (handover.h).
 *
 * The record: TSSX_HANDOVER=ENTRY[,ENTRY...], each entry one of
 *   cFD:MEMFD:s|c   a ready connection, its segment's memfd, server/client
 *   pFD             a server connection whose hello is still on the socket
 *   dFD:FIRST       another fd of the connection entered at FIRST (dup)
 *   lFD             a claimed listener, to be claimed again
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn/connection.h"
#include "conn/handover.h"
#include "real_slots.h"
#include "shims/shims.h"
#include "tssx/log.h"

static const char var_prefix[] = TSSX_HANDOVER_VAR "=";

/* ---- The old image, before exec (async-signal-safe) ---- */

static bool env_names_library(char *const envp[])
{
	static const char preload[] = "LD_PRELOAD=";

	for (; envp && *envp; envp++) {
		if (!strncmp(*envp, preload, sizeof(preload) - 1))
			return strstr(*envp + sizeof(preload) - 1, "libtssx") != NULL;
	}
	return false;
}

/* /etc/ld.so.preload loads the library into every image too. */
static bool system_preloads_library(void)
{
	char buf[4096];
	int fd = open("/etc/ld.so.preload", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = TSSX_REAL(read)(fd, buf, sizeof(buf) - 1);
	TSSX_REAL(close)(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "libtssx") != NULL;
}

/* The dynamic loader ignores LD_PRELOAD paths for set-uid programs. */
static bool loads_library(const char *path, char *const envp[])
{
	struct stat st;

	if (path && strchr(path, '/') && stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
		return false;
	return env_names_library(envp) || system_preloads_library();
}

static void append(struct tssx_handover *ho, const char *text)
{
	size_t len = strlen(text);

	if (ho->len + len + 1 > sizeof(ho->entry)) {
		ho->truncated = true;
		return;
	}
	memcpy(ho->entry + ho->len, text, len + 1);
	ho->len += len;
}

static void append_int(struct tssx_handover *ho, int value)
{
	char digits[16], *p = digits + sizeof(digits);

	*--p = '\0';
	do
		*--p = (char)('0' + value % 10);
	while ((value /= 10) > 0);
	append(ho, p);
}

/* Clears O_CLOEXEC of a kept fd for the exec; false if it is gone (an
 * application's close-all loop) or the list is full. */
static bool keep_open(struct tssx_handover *ho, int fd)
{
	int flags = TSSX_REAL(fcntl)(fd, F_GETFD);

	if (flags < 0 || ho->ncleared == (int)(sizeof(ho->cloexec_cleared) / sizeof(int)))
		return false;
	if (flags & FD_CLOEXEC) {
		TSSX_REAL(fcntl)(fd, F_SETFD, flags & ~FD_CLOEXEC);
		ho->cloexec_cleared[ho->ncleared++] = fd;
	}
	return true;
}

/* One entry, or false when it does not fit (the caller fails it). */
static bool add_entry(struct tssx_handover *ho, char kind, int fd, int extra, char side)
{
	size_t mark = ho->len;

	if (ho->len > sizeof(var_prefix) - 1)
		append(ho, ",");
	append(ho, (char[]){ kind, '\0' });
	append_int(ho, fd);
	if (extra >= 0) {
		append(ho, ":");
		append_int(ho, extra);
	}
	if (side)
		append(ho, (char[]){ ':', side, '\0' });
	if (ho->truncated) {
		ho->len = mark;
		ho->entry[mark] = '\0';
		return false;
	}
	return true;
}

/*
 * A connection the new image cannot take over fails loudly in it: in
 * place of the fd it finds a socket whose first read fails with
 * ECONNRESET and whose writes fail with EPIPE (only this process's copy
 * is replaced; a parent keeps its own).  On stdin, stdout or stderr the
 * new image is meant to be the connection's user (inetd, socat EXEC,
 * systemd --inetd): the peer is told too, and once it has read what is in
 * its ring it gets ECONNRESET instead of a clean EOF.
 */
static void abandon(struct tssx_conn *conn, int fd, const char *why)
{
	int pair[2];

	if (fd <= STDERR_FILENO && atomic_load_explicit(&conn->state, memory_order_acquire) == TSSX_CONN_READY)
		tssx_ring_abandon_write(conn->tx);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
		/* Closing a socket with unread data resets its peer. */
		(void)!TSSX_REAL(send)(pair[0], "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		TSSX_REAL(close)(pair[1]);
		TSSX_REAL(dup2)(pair[0], fd);
		TSSX_REAL(close)(pair[0]);
	}
	tssx_log(TSSX_LOG_ERROR, "fd %d: TSSX connection failed at exec: %s", fd, why);
}

static bool inheritable(int fd)
{
	int flags = TSSX_REAL(fcntl)(fd, F_GETFD);

	return flags >= 0 && !(flags & FD_CLOEXEC);
}

/* The first fd entered for conn, or -1; remembers it when it is new. */
static int entered_at(struct tssx_handover *ho, struct tssx_conn *conn, int fd)
{
	for (int i = 0; i < ho->nconns; i++) {
		if (ho->conns[i] == conn)
			return ho->conn_fds[i];
	}
	if (ho->nconns < (int)(sizeof(ho->conns) / sizeof(ho->conns[0]))) {
		ho->conns[ho->nconns] = conn;
		ho->conn_fds[ho->nconns++] = fd;
	}
	return -1;
}

static void prepare_conn(struct tssx_handover *ho, struct tssx_conn *conn, int fd, bool preloaded)
{
	int state = atomic_load_explicit(&conn->state, memory_order_acquire);
	int memfd = atomic_load(&conn->memfd), first;

	if (state == TSSX_CONN_FAILED)
		return;
	if (preloaded && (first = entered_at(ho, conn, fd)) >= 0) {
		if (!add_entry(ho, 'd', fd, first, 0))
			abandon(conn, fd, "cannot hand it over (too many connections)");
		return;
	}
	if (!preloaded)
		abandon(conn, fd, "the new image does not load the library (not preloaded, or set-uid)");
	else if (state == TSSX_CONN_HELLO_PENDING ? !add_entry(ho, 'p', fd, -1, 0)
		 : memfd < 0 || !keep_open(ho, memfd) || !add_entry(ho, 'c', fd, memfd, conn->server ? 's' : 'c'))
		abandon(conn, fd, "cannot hand it over (no segment fd, or too many connections)");
}

/* A claimed listener: the new image claims it again in its constructor,
 * before main(), not at its first accept. */
static void prepare_listener(struct tssx_handover *ho, struct tssx_listener *listener, int fd)
{
	if (listener->claim)
		add_entry(ho, 'l', fd, -1, 0);
}

/* The connection an untracked fd is a copy of, or NULL.  A vfork() child
 * (CPython's subprocess) dup2()s a connection onto stdin or stdout without
 * the table seeing it (it belongs to the parent): the socket's inode tells. */
static struct tssx_conn *copy_of_conn(int fd, int high)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return NULL;
	for (int other = 0; other <= high; other++) {
		struct tssx_conn *conn = tssx_conn_lookup(other);

		if (conn && conn->sock_ino == st.st_ino && conn->sock_dev == st.st_dev &&
		    atomic_load_explicit(&conn->state, memory_order_acquire) == TSSX_CONN_READY)
			return conn;
	}
	return NULL;
}

bool tssx_handover_prepare(struct tssx_handover *ho, const char *path, char *const envp[])
{
	bool preloaded = loads_library(path, envp);
	int high = tssx_table_high_fd();

	ho->len = 0;
	ho->ncleared = 0;
	ho->nconns = 0;
	ho->truncated = false;
	append(ho, var_prefix);
	for (int fd = 0; fd <= high; fd++) {
		struct tssx_fd_object *obj = tssx_table_get(fd);

		if (!obj || (obj->kind != TSSX_FD_CONN && obj->kind != TSSX_FD_LISTENER) || !inheritable(fd))
			continue;
		if (obj->kind == TSSX_FD_CONN)
			prepare_conn(ho, tssx_conn_of(obj), fd, preloaded);
		else if (preloaded)
			prepare_listener(ho, (struct tssx_listener *)obj, fd);
	}
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		struct tssx_conn *conn;

		if (!tssx_table_get(fd) && inheritable(fd) && (conn = copy_of_conn(fd, high)))
			prepare_conn(ho, conn, fd, preloaded);
	}
	return preloaded && ho->len > sizeof(var_prefix) - 1;
}

void tssx_handover_undo(const struct tssx_handover *ho)
{
	for (int i = 0; i < ho->ncleared; i++)
		TSSX_REAL(fcntl)(ho->cloexec_cleared[i], F_SETFD, FD_CLOEXEC);
}

/* ---- The new image, in the constructor ---- */

static bool parse_int(const char **p, int *out)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(*p, &end, 10);
	if (end == *p || errno || value < 0 || value > INT_MAX)
		return false;
	*p = end;
	*out = (int)value;
	return true;
}

static bool is_socket(int fd, int want_listening)
{
	int type = 0, domain = 0, listening = 0;
	socklen_t len = sizeof(int);

	if (TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
		return false;
	len = sizeof(int);
	if (TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
		return false;
	len = sizeof(int);
	if (TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return false;
	return !!listening == want_listening;
}

/* Another fd of a connection adopted at `first` shares it, as after dup(). */
static int adopt_dup(int fd, int first)
{
	struct tssx_conn *conn = tssx_conn_lookup(first);

	if (!conn)
		return -EBADF;
	/* The table counts the reference. */
	return tssx_table_set(fd, &conn->obj);
}

static int adopt_conn(int fd, int memfd, bool server)
{
	if (tssx_table_get(memfd))
		return -EBADF;
	TSSX_REAL(fcntl)(memfd, F_SETFD, FD_CLOEXEC);
	return tssx_conn_adopt(fd, memfd, server);
}

/* Adopts one parsed entry; a connection that cannot be adopted is
 * failed loudly (its socket carries doorbells, not the stream). */
static void adopt(char kind, int fd, int extra, char side)
{
	int ret;

	switch (kind) {
	case 'c':
		ret = is_socket(fd, false) ? adopt_conn(fd, extra, side == 's') : -ENOTSOCK;
		break;
	case 'p':
		ret = is_socket(fd, false) ? tssx_conn_accept(fd) : -ENOTSOCK;
		break;
	case 'd':
		ret = is_socket(fd, false) ? adopt_dup(fd, extra) : -ENOTSOCK;
		break;
	default:
		if (is_socket(fd, true))
			tssx_listener_adopt(fd);
		return;
	}
	if (ret < 0) {
		tssx_log(TSSX_LOG_ERROR, "fd %d: TSSX connection not taken over after exec: %s", fd, strerror(-ret));
		if (ret != -ENOTSOCK)
			TSSX_REAL(shutdown)(fd, SHUT_RDWR);
	}
}

/* Parses one entry at *p; false if it is malformed. */
static bool parse_entry(const char **p, char *kind, int *fd, int *extra, char *side)
{
	*kind = *(*p)++;
	*extra = -1;
	*side = 0;
	if (!strchr("cpdl", *kind) || !*kind || !parse_int(p, fd) || tssx_table_get(*fd))
		return false;
	if ((*kind == 'c' || *kind == 'd') && (*(*p)++ != ':' || !parse_int(p, extra) || *extra == *fd))
		return false;
	if (*kind == 'c' && (*(*p)++ != ':' || ((*side = *(*p)++) != 's' && *side != 'c')))
		return false;
	return !**p || *(*p)++ == ',';
}

void tssx_handover_adopt(void)
{
	const char *value = getenv(TSSX_HANDOVER_VAR);
	char record[sizeof(((struct tssx_handover *)0)->entry)];
	const char *p = record;

	if (!value)
		return;
	if (strlen(value) >= sizeof(record)) {
		unsetenv(TSSX_HANDOVER_VAR);
		log_error(0, "%s too long: ignored", TSSX_HANDOVER_VAR);
		return;
	}
	strcpy(record, value);
	unsetenv(TSSX_HANDOVER_VAR);
	while (*p) {
		const char *start = p;
		char kind, side;
		int fd, extra;

		if (!parse_entry(&p, &kind, &fd, &extra, &side)) {
			log_error(0, "%s: bad entry at \"%s\": ignored from there", TSSX_HANDOVER_VAR, start);
			return;
		}
		adopt(kind, fd, extra, side);
	}
}
