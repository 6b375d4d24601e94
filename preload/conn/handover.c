/*
 * Connections and listener claims across exec and spawn (handover.h).
 *
 * The record: TSSX_HANDOVER=ENTRY[,ENTRY...], each entry one of
 *   cINO:MEMFD:s|c:LOCKS:INDEX
 *                   a ready connection: its socket's inode, its segment's
 *                   memfd, server/client, the memfd of the arena that
 *                   holds its side locks and the pair's index there
 *   pINO            a server connection whose hello is still on the socket
 *   lINO            a claimed listener, to be claimed again
 * The new image adopts every fd it holds that is a socket of that inode.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn/connection.h"
#include "conn/handover.h"
#include "conn/hold.h"
#include "conn/unseen.h"
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

#define PHDRS_READ 64
/* Bytes of a PT_NOTE segment looked at for Go's note: the Go linker puts
 * it among the first. */
#define NOTES_READ 512
/* The Go linker's build-ID note: name "Go", type 4. */
#define GO_NOTE_NAME "Go"
#define GO_NOTE_BUILDID 4

/* Whether the PT_NOTE segment `note` holds Go's build-ID note (among its
 * first NOTES_READ bytes). */
static bool go_note(int fd, const ElfW(Phdr) *note)
{
	unsigned char buf[NOTES_READ];
	size_t len = note->p_filesz < sizeof(buf) ? note->p_filesz : sizeof(buf), at = 0;
	ElfW(Nhdr) hdr;

	if (pread(fd, buf, len, (off_t)note->p_offset) != (ssize_t)len)
		return false;
	while (at + sizeof(hdr) <= len) {
		memcpy(&hdr, buf + at, sizeof(hdr));
		at += sizeof(hdr);
		if (hdr.n_type == GO_NOTE_BUILDID && hdr.n_namesz == sizeof(GO_NOTE_NAME) &&
		    at + sizeof(GO_NOTE_NAME) <= len && !memcmp(buf + at, GO_NOTE_NAME, sizeof(GO_NOTE_NAME)))
			return true;
		if (hdr.n_namesz > len || hdr.n_descsz > len)
			break;
		/* Name and descriptor, each padded to 4 bytes (the segment's
		 * alignment for these notes). */
		at += ((size_t)hdr.n_namesz + 3) / 4 * 4 + ((size_t)hdr.n_descsz + 3) / 4 * 4;
	}
	return false;
}

/*
 * Whether the image at path has a dynamic loader that would preload the
 * library and goes through libc for its I/O: an ELF file of this
 * process's class with a PT_INTERP header and without Go's build-ID note,
 * or anything else (a script: its interpreter decides; unreadable: the
 * exec fails or the loader decides).  A static (or static-pie) image, or
 * one of another class, never loads it: what it inherits would be bare
 * sockets.  A Go program built with cgo loads it but reads and writes by
 * raw system calls, around every wrapper: it would read doorbells as data.
 * No malloc: a vfork() child runs it.
 */
static bool has_loader(const char *path)
{
	ElfW(Ehdr) header;
	ElfW(Phdr) phdrs[PHDRS_READ];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool loader = true;
	ssize_t n;

	if (fd < 0)
		return true;
	if (pread(fd, &header, sizeof(header), 0) == (ssize_t)sizeof(header) &&
	    !memcmp(header.e_ident, ELFMAG, SELFMAG)) {
		loader = header.e_ident[EI_CLASS] == (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) &&
			 header.e_phentsize == sizeof(phdrs[0]);
		n = loader ? pread(fd, phdrs, (size_t)(header.e_phnum < PHDRS_READ ? header.e_phnum : PHDRS_READ) *
						 sizeof(phdrs[0]), (off_t)header.e_phoff) : 0;
		/* More headers than read, or a short read: leave it to the loader. */
		if (loader && header.e_phnum <= PHDRS_READ && n == (ssize_t)(header.e_phnum * sizeof(phdrs[0]))) {
			bool go = false;

			loader = false;
			for (int i = 0; i < header.e_phnum && !go; i++) {
				loader = loader || phdrs[i].p_type == PT_INTERP;
				go = phdrs[i].p_type == PT_NOTE && go_note(fd, &phdrs[i]);
			}
			loader = loader && !go;
		}
	}
	TSSX_REAL(close)(fd);
	return loader;
}

/* The dynamic loader ignores LD_PRELOAD paths for set-uid programs, and a
 * static image has none. */
static bool loads_library(const char *path, char *const envp[])
{
	struct stat st;

	if (path && strchr(path, '/') &&
	    ((stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) || !has_loader(path)))
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

static void append_number(struct tssx_handover *ho, unsigned long long value)
{
	char digits[24], *p = digits + sizeof(digits);

	*--p = '\0';
	do
		*--p = (char)('0' + value % 10);
	while ((value /= 10) > 0);
	append(ho, p);
}

/* Where a ready connection's segment and side locks are. */
struct entry_fds {
	int memfd;
	char side;
	int locks;
	unsigned index;
};

/* One entry (fds NULL: only the inode), or false when it does not fit
 * (the caller fails it). */
static bool add_entry(struct tssx_handover *ho, char kind, ino_t ino, const struct entry_fds *fds)
{
	size_t mark = ho->len;

	if (!ino)
		return false; /* not open (closed before the exec) */
	if (ho->len > sizeof(var_prefix) - 1)
		append(ho, ",");
	append(ho, (char[]){ kind, '\0' });
	append_number(ho, ino);
	if (fds) {
		append(ho, ":");
		append_number(ho, (unsigned)fds->memfd);
		append(ho, (char[]){ ':', fds->side, ':', '\0' });
		append_number(ho, (unsigned)fds->locks);
		append(ho, ":");
		append_number(ho, fds->index);
	}
	if (ho->truncated) {
		ho->len = mark;
		ho->entry[mark] = '\0';
		ho->truncated = false;
		return false;
	}
	return true;
}

/* Keeps a memfd open into the new image; false if it is gone (an
 * application's close-all loop) or the list is full.  A spawn without
 * the application's file actions clears O_CLOEXEC in the child only (a
 * dup2 onto itself); otherwise it is cleared here for the exec or spawn
 * and set again after. */
static bool keep_open(struct tssx_handover *ho, int fd)
{
	int flags = TSSX_REAL(fcntl)(fd, F_GETFD);

	if (flags < 0)
		return false;
	if (ho->via == TSSX_VIA_SPAWN)
		return posix_spawn_file_actions_adddup2(&ho->actions, fd, fd) == 0;
	if (ho->ncleared == TSSX_HANDOVER_MAX)
		return false;
	if (flags & FD_CLOEXEC) {
		TSSX_REAL(fcntl)(fd, F_SETFD, flags & ~FD_CLOEXEC);
		ho->cloexec_cleared[ho->ncleared++] = fd;
	}
	return true;
}

static ino_t socket_inode(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_ino : 0;
}

/* A socket whose first read fails with ECONNRESET and whose writes fail
 * with EPIPE: closing a socket with unread data resets its peer. */
static int dead_socket(void)
{
	int pair[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		return -1;
	(void)!TSSX_REAL(send)(pair[0], "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	TSSX_REAL(close)(pair[1]);
	return pair[0];
}

/*
 * A connection the new image cannot take over fails loudly in it: in
 * place of the fd it finds a socket whose first read fails with
 * ECONNRESET and whose writes fail with EPIPE (only the new image's copy
 * is replaced; a parent keeps its own).  On stdin, stdout or stderr the
 * new image is meant to be the connection's user (inetd, socat EXEC,
 * systemd --inetd): the peer is told too, and once it has read what is in
 * its ring it gets ECONNRESET instead of a clean EOF.
 */
static void abandon(struct tssx_handover *ho, struct tssx_conn *conn, int fd, const char *why)
{
	int dead;

	if (fd <= STDERR_FILENO && atomic_load_explicit(&conn->state, memory_order_acquire) == TSSX_CONN_READY)
		tssx_ring_abandon_write(conn->tx);
	if (ho->via == TSSX_VIA_SPAWN) {
		if (ho->dead_socket < 0)
			ho->dead_socket = dead_socket();
		if (ho->dead_socket >= 0)
			posix_spawn_file_actions_adddup2(&ho->actions, ho->dead_socket, fd);
	} else if ((dead = dead_socket()) >= 0) {
		TSSX_REAL(dup2)(dead, fd);
		TSSX_REAL(close)(dead);
	}
	tssx_log(TSSX_LOG_ERROR, "fd %d: TSSX connection failed at %s: %s", fd,
		 ho->via == TSSX_VIA_EXEC ? "exec" : "spawn", why);
}

static bool inheritable(int fd)
{
	int flags = TSSX_REAL(fcntl)(fd, F_GETFD);

	return flags >= 0 && !(flags & FD_CLOEXEC);
}

/* conn's index among those seen (*fresh: just added); -1 when the list
 * is full. */
static int seen_at(struct tssx_handover *ho, struct tssx_conn *conn, bool *fresh)
{
	*fresh = false;
	for (int i = 0; i < ho->nconns; i++) {
		if (ho->conns[i] == conn)
			return i;
	}
	if (ho->nconns == TSSX_HANDOVER_MAX)
		return -1;
	*fresh = true;
	ho->conns[ho->nconns] = conn;
	ho->handed[ho->nconns] = false;
	ho->joined[ho->nconns] = false;
	return ho->nconns++;
}

/*
 * One entry for conn, its memfd and its side locks' arena kept open;
 * false if it cannot be handed over.  The new image shares the pair with
 * the processes that keep the connection (a parent after a spawn or a
 * vfork()'s exec), so their writers and readers exclude each other's; it
 * counts among the pair's users from here on (*joined; undone by
 * tssx_handover_undo() if it never starts; it leaves the pair itself if
 * it does not take the connection).
 */
static bool hand_over(struct tssx_handover *ho, struct tssx_conn *conn, int fd, bool *joined)
{
	int state = atomic_load_explicit(&conn->state, memory_order_acquire);
	struct entry_fds fds = { .side = conn->server ? 's' : 'c' };
	size_t mark = ho->len;

	if (state == TSSX_CONN_HELLO_PENDING)
		return add_entry(ho, 'p', socket_inode(fd), NULL);
	fds.memfd = atomic_load(&conn->memfd.fd);
	fds.locks = tssx_side_locks_where(conn->locks, &fds.index);
	if (state != TSSX_CONN_READY || fds.memfd < 0 || fds.locks < 0 || !add_entry(ho, 'c', conn->sock_ino, &fds))
		return false;
	if (keep_open(ho, fds.locks) && keep_open(ho, fds.memfd)) {
		tssx_side_locks_join(conn->locks);
		*joined = true;
		/* The new image's drains are not counted here (conn/unseen.h),
		 * nor its sleepers' holds: no lowering of this image's (or of
		 * a vfork() parent's threads) may take a bit the new image
		 * raised (conn/hold.h). */
		atomic_store(&conn->unseen_unfit, true);
		tssx_hold_settle();
		tssx_unseen_exec_shares();
		return true;
	}
	ho->len = mark;
	ho->entry[mark] = '\0';
	return false;
}

/* conn at fd: handed over once (the new image finds every copy by the
 * inode), and every inheritable fd of it that could not be is failed. */
static void prepare_conn(struct tssx_handover *ho, struct tssx_conn *conn, int fd, bool inheritable)
{
	bool fresh;
	int i;

	/* A spawning parent keeps its copy: whoever would take the hello, the
	 * other would wait for it for good.  The parent takes it first, as
	 * shutdown() does, and a client that never sends it fails. */
	if ((ho->via == TSSX_VIA_SPAWN_ACTIONS || (ho->via == TSSX_VIA_SPAWN && inheritable)) &&
	    tssx_conn_establish(conn, fd, 1000) == -EAGAIN)
		tssx_conn_fail(conn, fd, ECONNRESET, "no hello before spawn");
	if (atomic_load_explicit(&conn->state, memory_order_acquire) == TSSX_CONN_FAILED)
		return;
	i = seen_at(ho, conn, &fresh);
	if (fresh && ho->preloaded && (inheritable || ho->via != TSSX_VIA_SPAWN))
		ho->handed[i] = hand_over(ho, conn, fd, &ho->joined[i]);
	/* With the application's file actions the child's fds are known only
	 * after the spawn (tssx_handover_undo). */
	if (inheritable && !(i >= 0 && ho->handed[i]) && ho->via != TSSX_VIA_SPAWN_ACTIONS)
		abandon(ho, conn, fd,
			ho->preloaded ? "cannot hand it over (no segment fd, or too many connections)"
				      : "the new image does not load the library (not preloaded, set-uid, static or Go)");
}

/* A claimed listener: the new image claims it again in its constructor,
 * before main(), not at its first accept. */
static void prepare_listener(struct tssx_handover *ho, struct tssx_listener *listener, int fd, bool inheritable)
{
	if (ho->preloaded && listener->claim && (inheritable || ho->via != TSSX_VIA_SPAWN))
		add_entry(ho, 'l', socket_inode(fd), NULL);
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

bool tssx_handover_prepare(struct tssx_handover *ho, enum tssx_handover_via via, const char *path,
			   char *const envp[])
{
	int high = tssx_table_high_fd();

	ho->via = via;
	ho->preloaded = loads_library(path, envp);
	ho->len = 0;
	ho->ncleared = 0;
	ho->nconns = 0;
	ho->truncated = false;
	ho->dead_socket = -1;
	ho->env_map = NULL;
	if (via == TSSX_VIA_SPAWN)
		posix_spawn_file_actions_init(&ho->actions);
	append(ho, var_prefix);
	for (int fd = 0; fd <= high; fd++) {
		struct tssx_fd_object *obj = tssx_table_get(fd);

		if (!obj || (obj->kind != TSSX_FD_CONN && obj->kind != TSSX_FD_LISTENER))
			continue;
		if (obj->kind == TSSX_FD_CONN)
			prepare_conn(ho, tssx_conn_of(obj), fd, inheritable(fd));
		else
			prepare_listener(ho, (struct tssx_listener *)obj, fd, inheritable(fd));
	}
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		struct tssx_conn *conn;

		if (!tssx_table_get(fd) && inheritable(fd) && (conn = copy_of_conn(fd, high)))
			prepare_conn(ho, conn, fd, true);
	}
	return ho->preloaded && ho->len > sizeof(var_prefix) - 1;
}

char **tssx_handover_env(struct tssx_handover *ho, char *const envp[])
{
	size_t n = 0, out = 0;
	char **env;

	while (envp && envp[n])
		n++;
	ho->env_maplen = (n + 2) * sizeof(char *);
	ho->env_map = mmap(NULL, ho->env_maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ho->env_map == MAP_FAILED) {
		ho->env_map = NULL;
		return NULL;
	}
	env = ho->env_map;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(envp[i], var_prefix, sizeof(var_prefix) - 1))
			env[out++] = envp[i];
	}
	env[out++] = ho->entry;
	env[out] = NULL;
	return env;
}

/* ---- After a spawn with the application's file actions ---- */

static bool was_handed(const struct tssx_handover *ho, const struct tssx_conn *conn)
{
	for (int i = 0; i < ho->nconns; i++) {
		if (ho->conns[i] == conn)
			return ho->handed[i];
	}
	return false;
}

/* The inodes of the sockets the child holds, from /proc/PID/fd; -1 if
 * they cannot be read (a set-uid child, one that is gone already). */
static int child_sockets(pid_t child, ino_t *inodes, int max)
{
	char dir[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)child);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((e = readdir(d)) && n < max) {
		char target[64];
		unsigned long long ino;
		ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);

		if (len <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%llu]", &ino) == 1)
			inodes[n++] = (ino_t)ino;
	}
	closedir(d);
	return n;
}

static bool held_by_child(ino_t ino, const ino_t *inodes, int n)
{
	for (int i = 0; i < n; i++) {
		if (inodes[i] == ino)
			return true;
	}
	return false;
}

/*
 * The child got connections through the application's file actions that
 * were not handed over (it does not load the library, or they did not
 * fit): it holds a socket that carries doorbells, not the stream.  Each
 * fails on both ends: the peer reads ECONNRESET after what its ring
 * holds, this process gets ECONNRESET.  If the child's fds cannot be
 * read, every connection with an inheritable fd is taken to be held.
 */
static void fail_held_by_child(const struct tssx_handover *ho, pid_t child)
{
	ino_t inodes[1024];
	int n = child_sockets(child, inodes, (int)(sizeof(inodes) / sizeof(inodes[0])));
	int high = tssx_table_high_fd();

	for (int fd = 0; fd <= high; fd++) {
		struct tssx_conn *conn = tssx_conn_lookup(fd);

		if (!conn || atomic_load_explicit(&conn->state, memory_order_acquire) != TSSX_CONN_READY ||
		    was_handed(ho, conn) || !(n < 0 ? inheritable(fd) : held_by_child(conn->sock_ino, inodes, n)))
			continue;
		tssx_ring_abandon_write(conn->tx);
		tssx_conn_fail(conn, fd, ECONNRESET,
			       ho->preloaded ? "spawned with it, but it could not be handed over"
					     : "spawned into an image that does not load the library");
	}
}

void tssx_handover_undo(struct tssx_handover *ho, pid_t child)
{
	for (int i = 0; i < ho->ncleared; i++)
		TSSX_REAL(fcntl)(ho->cloexec_cleared[i], F_SETFD, FD_CLOEXEC);
	if (ho->env_map)
		munmap(ho->env_map, ho->env_maplen);
	if (ho->via == TSSX_VIA_SPAWN)
		posix_spawn_file_actions_destroy(&ho->actions);
	if (ho->dead_socket >= 0)
		TSSX_REAL(close)(ho->dead_socket);
	for (int i = 0; i < ho->nconns && child < 0; i++) {
		if (ho->joined[i])
			tssx_side_locks_leave(ho->conns[i]->locks);
	}
	if (ho->via == TSSX_VIA_SPAWN_ACTIONS && child > 0)
		fail_held_by_child(ho, child);
}

/* ---- The new image, in the constructor ---- */

/* A socket this process holds, and its inode. */
struct held {
	int fd;
	ino_t ino;
};

/* Every socket of this process, from /proc/self/fd (malloc'd, *n of
 * them); NULL if none or it cannot be read. */
static struct held *held_sockets(int *n)
{
	DIR *d = opendir("/proc/self/fd");
	struct held *held = NULL, *more;
	struct dirent *e;
	int cap = 0;

	*n = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		ino_t ino;

		if (*end || end == e->d_name || fd == dirfd(d) || !(ino = socket_inode((int)fd)))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			more = realloc(held, (size_t)cap * sizeof(*held));
			if (!more)
				break;
			held = more;
		}
		held[(*n)++] = (struct held){ (int)fd, ino };
	}
	closedir(d);
	return held;
}

static bool parse_number(const char **p, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (**p < '0' || **p > '9')
		return false;
	errno = 0;
	*out = strtoull(*p, &end, 10);
	if (errno || *out > max)
		return false;
	*p = end;
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

/* Whether fd is a memfd the old image made under `name` (what
 * /proc/self/fd shows: "/memfd:NAME (deleted)") and not one the table
 * tracks as another kind than `kind`: a number the application's file
 * actions reused for another file is never touched. */
static bool is_library_memfd(int fd, const char *name, enum tssx_fd_kind kind)
{
	struct tssx_fd_object *obj = fd >= 0 ? tssx_table_get(fd) : NULL;
	char link[64], target[64], want[64];
	int len = snprintf(want, sizeof(want), "/memfd:%s ", name);

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	return fd >= 0 && (!obj || obj->kind == kind) &&
	       readlink(link, target, (size_t)len) == (ssize_t)len && !memcmp(target, want, (size_t)len);
}

/* The segment's memfd, which no connection of this image uses yet. */
static bool is_segment_memfd(int fd)
{
	return is_library_memfd(fd, "tssx", 0);
}

/* A parsed entry. */
struct entry {
	char kind;
	ino_t ino;
	struct entry_fds fds; /* kind 'c' */
};

/*
 * The side locks' pair of a 'c' entry, from the arena the old image kept
 * open for it, checked (tssx_side_locks_adopt()) and kept, so that this
 * image excludes the writers and readers of the processes that keep the
 * connection.  The hand-over made this image one of the pair's users: if
 * it is not taken (*locks NULL), nothing else is to be undone.
 */
static int adopt_locks(const struct entry *e, struct tssx_side_locks **locks)
{
	int ret;

	*locks = NULL;
	if (!is_library_memfd(e->fds.locks, TSSX_SIDE_LOCKS_MEMFD_NAME, TSSX_FD_LOCKS))
		return -EBADF;
	ret = tssx_side_locks_adopt(e->fds.locks, e->fds.index, locks);
	if (ret == 0) {
		TSSX_REAL(fcntl)(e->fds.locks, F_SETFD, FD_CLOEXEC);
		tssx_conn_keep_arena(*locks);
	}
	return ret;
}

/* The first copy of an entry's socket: adopted as the old image had it.
 * A 'c' entry's pair (locks, or the error that refused it) is used or
 * left. */
static int adopt_first(const struct entry *e, int fd, struct tssx_side_locks *locks, int locks_error)
{
	int ret;

	switch (e->kind) {
	case 'c':
		ret = !locks ? locks_error : !is_socket(fd, false) ? -ENOTSOCK : !is_segment_memfd(e->fds.memfd) ? -EBADF : 0;
		if (ret < 0) {
			if (locks)
				tssx_side_locks_leave(locks);
			return ret;
		}
		TSSX_REAL(fcntl)(e->fds.memfd, F_SETFD, FD_CLOEXEC);
		return tssx_conn_adopt(fd, e->fds.memfd, e->fds.side == 's', locks);
	case 'p':
		return is_socket(fd, false) ? tssx_conn_accept(fd, NULL, 0, NULL, 0, false) : -ENOTSOCK;
	default:
		if (!is_socket(fd, true))
			return -ENOTSOCK;
		tssx_listener_adopt(fd);
		return tssx_table_get(fd) ? 0 : -ENOMEM;
	}
}

/*
 * Adopts one parsed entry at every fd that holds its socket: the first
 * as the old image had it, the others as dups.  A connection that cannot
 * be adopted is failed loudly (its socket carries doorbells, not the
 * stream); a memfd no fd of this image needs is closed, and a pair it
 * does not use left.
 */
static void adopt(const struct held *held, int nheld, const struct entry *e)
{
	struct tssx_fd_object *first = NULL;
	struct tssx_side_locks *locks = NULL;
	int locks_error = e->kind == 'c' ? adopt_locks(e, &locks) : 0;

	for (int i = 0; i < nheld; i++) {
		int fd = held[i].fd, ret;

		if (held[i].ino != e->ino || tssx_table_get(fd))
			continue;
		if (first) {
			tssx_table_set(fd, first);
			continue;
		}
		ret = adopt_first(e, fd, locks, locks_error);
		if (ret < 0) {
			tssx_log(TSSX_LOG_ERROR, "fd %d: TSSX connection not taken over: %s%s", fd, strerror(-ret),
				 locks ? "" : " (its side locks)");
			if (ret != -ENOTSOCK)
				TSSX_REAL(shutdown)(fd, SHUT_RDWR);
			return;
		}
		first = tssx_table_get(fd);
		if (!first)
			return;
	}
	if (first || e->kind != 'c')
		return;
	if (locks)
		tssx_side_locks_leave(locks);
	if (is_segment_memfd(e->fds.memfd))
		TSSX_REAL(close)(e->fds.memfd);
}

/* Parses one entry at *p; false if it is malformed. */
static bool parse_entry(const char **p, struct entry *e)
{
	unsigned long long value;

	e->kind = *(*p)++;
	if (!e->kind || !strchr("cpl", e->kind) || !parse_number(p, ULLONG_MAX, &value) || !value)
		return false;
	e->ino = (ino_t)value;
	if (e->kind == 'c') {
		if (*(*p)++ != ':' || !parse_number(p, INT_MAX, &value) || *(*p)++ != ':')
			return false;
		e->fds.memfd = (int)value;
		if (((e->fds.side = *(*p)++) != 's' && e->fds.side != 'c') || *(*p)++ != ':' ||
		    !parse_number(p, INT_MAX, &value))
			return false;
		e->fds.locks = (int)value;
		if (*(*p)++ != ':' || !parse_number(p, UINT_MAX, &value))
			return false;
		e->fds.index = (unsigned)value;
	}
	return !**p || *(*p)++ == ',';
}

void tssx_handover_adopt(void)
{
	const char *value = getenv(TSSX_HANDOVER_VAR);
	char record[sizeof(((struct tssx_handover *)0)->entry)];
	const char *p = record;
	struct held *held;
	int nheld;

	if (!value)
		return;
	if (strlen(value) >= sizeof(record)) {
		unsetenv(TSSX_HANDOVER_VAR);
		log_error(0, "%s too long: ignored", TSSX_HANDOVER_VAR);
		return;
	}
	strcpy(record, value);
	unsetenv(TSSX_HANDOVER_VAR);
	held = held_sockets(&nheld);
	while (*p) {
		const char *start = p;
		struct entry e = { 0 };

		if (!parse_entry(&p, &e)) {
			log_error(0, "%s: bad entry at \"%s\": ignored from there", TSSX_HANDOVER_VAR, start);
			break;
		}
		adopt(held, nheld, &e);
	}
	free(held);
}
