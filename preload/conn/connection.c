/*
 * Connection lifetime and handshake (connection.h, docs/design.md §2).
 *
 * Client: tssx_conn_connect() right after the real connect creates the
 * segment and sends the hello with the memfd; the connection is in
 * shared-memory mode from then on.  Server: tssx_conn_accept() tries to read
 * the hello at once without blocking; if it is not there yet the first call
 * that needs the connection completes it (tssx_conn_establish()).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn/bell.h"
#include "conn/fault.h"
#include "conn/recycle.h"
#include "conn/stream.h"
#include "conn/unseen.h"
#include "init.h"
#include "real_slots.h"
#include "conn/wait.h"
#include "events/events.h"
#include "tssx/hello.h"
#include "tssx/log.h"

static const char client_prefix[] = TSSX_CLIENT_PREFIX;
#define CLIENT_PREFIX_LEN (sizeof(client_prefix) - 1)

bool tssx_conn_is_client_addr(const void *addr, unsigned addrlen)
{
	const struct sockaddr_un *sun = addr;

	return addrlen >= offsetof(struct sockaddr_un, sun_path) + 1 + CLIENT_PREFIX_LEN &&
	       sun->sun_family == AF_UNIX && sun->sun_path[0] == '\0' &&
	       memcmp(sun->sun_path + 1, client_prefix, CLIENT_PREFIX_LEN) == 0;
}

/* A random number of this process: with the pid, it tells its client names
 * from those of a process with the same pid in another pid namespace.  Read
 * once: two threads racing here both store a valid one. */
static unsigned process_random(void)
{
	static _Atomic unsigned cached;
	unsigned random = atomic_load_explicit(&cached, memory_order_relaxed);

	if (!random) {
		(void)!getrandom(&random, sizeof(random), GRND_NONBLOCK);
		random |= 1; /* never 0, which means "not read yet" */
		atomic_store_explicit(&cached, random, memory_order_relaxed);
	}
	return random;
}

/* n in decimal at p; the end. */
static char *put_decimal(char *p, unsigned long n)
{
	char digits[20];
	int len = 0;

	do
		digits[len++] = (char)('0' + n % 10);
	while ((n /= 10));
	while (len)
		*p++ = digits[--len];
	return p;
}

/* n as eight hex digits at p; the end. */
static char *put_hex8(char *p, unsigned n)
{
	for (int shift = 28; shift >= 0; shift -= 4)
		*p++ = "0123456789abcdef"[(n >> shift) & 0xf];
	return p;
}

/*
 * "PREFIX<pid>.<counter>.<random, 8 hex digits>" after the abstract
 * name's NUL; its length.  By hand: snprintf() cost a connect about 1,800
 * instructions (docs/benchmark.md, "The connect cycle in counts").  At
 * most 10 + 1 + 10 + 1 + 8 characters follow the prefix: it fits.
 */
static socklen_t client_name(struct sockaddr_un *addr, pid_t pid, unsigned counter, unsigned random)
{
	char *p = addr->sun_path + 1;

	_Static_assert(1 + CLIENT_PREFIX_LEN + 30 <= sizeof(addr->sun_path), "the client name must fit");
	memcpy(p, client_prefix, CLIENT_PREFIX_LEN);
	p = put_decimal(p + CLIENT_PREFIX_LEN, (unsigned long)pid);
	*p++ = '.';
	p = put_decimal(p, counter);
	*p++ = '.';
	p = put_hex8(p, random);
	return (socklen_t)(p - (char *)addr);
}

int tssx_conn_bind_client(int fd, struct tssx_client_prep *prep)
{
	static _Atomic unsigned counter;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int attempt;

	for (attempt = 0; attempt < 8; attempt++) {
		/* The table owner's pid, not getpid(): a vfork() child names
		 * its sockets with its parent's pid, and the counter they
		 * share still tells the names apart. */
		socklen_t addrlen =
			client_name(&addr, tssx_owner_pid(), atomic_fetch_add(&counter, 1), process_random());

		if (TSSX_REAL(bind)(fd, (struct sockaddr *)&addr, addrlen) == 0) {
			tssx_conn_list_name(prep->conn->client_name, sizeof(prep->conn->client_name), &addr,
					    addrlen);
			return 0;
		}
		if (errno != EADDRINUSE)
			return -errno;
	}
	return -EADDRINUSE;
}

/*
 * Connections that ended are kept for reuse, with their side locks,
 * never given back: a data call that looked one up just before another
 * thread closed its fd still takes its side lock and then finds that fd
 * no longer refers to it (stream.c).  One is reused only once no process
 * uses its lock pair any more: a fork()ed child may still use it for the
 * connection it inherited (a server forking a process per connection),
 * and sharing it with the next, unrelated connection would serialize the
 * two and let a sibling stopped mid-copy stall it.
 */
static pthread_mutex_t spares_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tssx_conn *spares;

/* Spares looked at for a free pair before a new one is made: those whose
 * pairs a child still uses (or a killed child never left) stay behind. */
#define SPARES_LOOKED_AT 64

static struct tssx_conn *spare_take(void)
{
	struct tssx_conn **at = &spares, *conn = NULL;

	pthread_mutex_lock(&spares_lock);
	for (int n = 0; *at && n < SPARES_LOOKED_AT; at = &(*at)->next_spare, n++) {
		if (tssx_side_locks_claim((*at)->locks)) {
			conn = *at;
			*at = conn->next_spare;
			break;
		}
	}
	pthread_mutex_unlock(&spares_lock);
	return conn;
}

/* One table object for the fds of all arenas (tssx_conn_keep_arena). */
static struct tssx_fd_object arena_obj = { .kind = TSSX_FD_LOCKS };

void tssx_conn_keep_arena(const struct tssx_side_locks *locks)
{
	unsigned index;
	int fd, moved;

	tssx_kept_lock();
	fd = tssx_side_locks_where(locks, &index);
	/* New (made, or adopted after an exec): among the kept numbers, and
	 * kept.  Beyond the table, or out of memory: not kept; a close-all
	 * loop may take it, and then an exec fails the connection loudly. */
	if (fd >= 0 && !tssx_table_get(fd)) {
		moved = tssx_kept_copy(fd);
		if (moved >= 0) {
			tssx_side_locks_renumber(fd, moved);
			TSSX_REAL(close)(fd);
			fd = moved;
		}
		tssx_kept_alias(fd, &arena_obj);
	}
	tssx_kept_unlock();
}

/* A connection struct with a pair of its own: a spare whose pair nobody
 * uses, or a new one; with the pair an exec'd image was handed (handed,
 * not NULL), a new struct. */
static struct tssx_conn *conn_alloc(struct tssx_side_locks *handed)
{
	struct tssx_conn *conn;

	tssx_side_bias_prepare();
	conn = handed ? NULL : spare_take();

	if (conn) {
		memset(&conn->server, 0, sizeof(*conn) - offsetof(struct tssx_conn, server));
		return conn;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return NULL;
	conn->locks = handed ? handed : tssx_side_locks_create();
	if (!conn->locks) {
		tssx_log(TSSX_LOG_ERROR, "no memory for a connection's locks: %m");
		free(conn);
		return NULL;
	}
	tssx_conn_keep_arena(conn->locks);
	return conn;
}

/* A kept fd of a new connection: none yet (-1); its object's references
 * are counted by the table. */
static void kept_init(struct tssx_kept_fd *kept, enum tssx_fd_kind kind)
{
	atomic_init(&kept->fd, -1);
	kept->obj.kind = kind;
	atomic_init(&kept->obj.refs, 0);
}

static struct tssx_conn *conn_new(int fd, bool server, struct tssx_side_locks *handed)
{
	struct tssx_conn *conn = conn_alloc(handed);

	if (!conn)
		return NULL;
	conn->obj.kind = TSSX_FD_CONN;
	conn->server = server;
	conn->born_forks = tssx_unseen_forks();
	atomic_init(&conn->fd, fd);
	atomic_init(&conn->peek_off, -1);
	pthread_mutex_init(&conn->handshake_lock, NULL);
	tssx_ancillary_init(&conn->ancillary);
	kept_init(&conn->memfd, TSSX_FD_SEGMENT);
	kept_init(&conn->wake, TSSX_FD_WAKE);
	kept_init(&conn->held, TSSX_FD_HELD);
	kept_init(&conn->own_eventfd, TSSX_FD_OWN_BELL);
	kept_init(&conn->peer_eventfd, TSSX_FD_PEER_BELL);
	atomic_init(&conn->bell_fd, -1);
	return conn;
}

/* The record of a kept fd's object (the slot of a kind that
 * tssx_fd_kind_kept() names, but the process-wide ones). */
static struct tssx_kept_fd *kept_of(struct tssx_fd_object *obj)
{
	_Static_assert(offsetof(struct tssx_kept_fd, obj) == 0, "a kept fd's object is its record");
	return (struct tssx_kept_fd *)obj;
}

/* Keeps fd as kept; without a slot in the table (which protects it from
 * close-all loops) it is closed. */
static void keep_fd(struct tssx_kept_fd *kept, int fd)
{
	if (tssx_table_set(fd, &kept->obj) < 0) {
		TSSX_REAL(close)(fd);
		return;
	}
	atomic_store(&kept->fd, fd);
}

/* The connection's kept fds are closed with it. */
static void close_kept(struct tssx_kept_fd *kept)
{
	int fd;

	tssx_kept_lock();
	fd = atomic_exchange(&kept->fd, -1);
	if (fd >= 0) {
		tssx_table_take(fd);
		TSSX_REAL(close)(fd);
	}
	tssx_kept_unlock();
}

/*
 * Keeps fd, new to the process (made or received at the lowest free
 * number), among the kept numbers (conn/kept.h), or where it is when
 * they are full.  Left among the program's numbers, each connection's
 * memfd and eventfds would push the numbers of the program's next
 * sockets up by three, and programs index tables sized by their
 * connections with fd numbers: Redis's event loop holds maxclients + 128
 * fds and never watches a client's socket beyond it, whose requests then
 * wait for good (docs/preload.md, "Where the library's fds go").  Its
 * number was the lowest free one: the kept numbers move up first when
 * the program's come near them.
 */
static void keep_new_fd(struct tssx_kept_fd *kept, int fd)
{
	tssx_conn_note_program_fd(fd);
	tssx_kept_lock();
	keep_fd(kept, tssx_kept_place(fd));
	tssx_kept_unlock();
}

/* Keeps the segment's memfd for a hand-over at exec: a new one among the
 * kept numbers, one that is there already (a recycling pool's, an exec'd
 * image's) where it is. */
static void keep_memfd(struct tssx_conn *conn, int memfd, bool kept_already)
{
	if (!kept_already) {
		keep_new_fd(&conn->memfd, memfd);
		return;
	}
	tssx_kept_lock();
	keep_fd(&conn->memfd, memfd);
	tssx_kept_unlock();
}

/* Keeps the eventfd bell's two fds, own and peer's, or neither: with one
 * alone this end would ring an eventfd the peer's sets never watch, or
 * watch one the peer never rings (both still work, through the socket,
 * but pay for nothing).  Closes them when they are not kept. */
static void keep_bells(struct tssx_conn *conn, int own, int peer)
{
	if (own < 0 || peer < 0) {
		if (own >= 0)
			TSSX_REAL(close)(own);
		if (peer >= 0)
			TSSX_REAL(close)(peer);
		return;
	}
	keep_new_fd(&conn->own_eventfd, own);
	keep_new_fd(&conn->peer_eventfd, peer);
	if (atomic_load(&conn->own_eventfd.fd) < 0 || atomic_load(&conn->peer_eventfd.fd) < 0) {
		close_kept(&conn->own_eventfd);
		close_kept(&conn->peer_eventfd);
	}
}

void tssx_conn_move_kept(int old)
{
	if (tssx_table_get(old)->kind == TSSX_FD_WATCHER) {
		tssx_bell_move_watcher(old);
		return;
	}
	tssx_kept_lock();
	tssx_conn_renumber_kept(old, tssx_kept_copy(old));
	tssx_kept_unlock();
}

void tssx_conn_renumber_kept(int old, int moved)
{
	struct tssx_fd_object *obj = tssx_table_get(old);

	if (obj->kind == TSSX_FD_LOADAVG) {
		tssx_wait_renumber_loadavg(old, moved);
		return;
	}
	if (obj->kind == TSSX_FD_KICK) {
		events_kick_renumber(old, moved);
		return;
	}
	if (obj->kind == TSSX_FD_LOCKS) {
		/* -1 if it could not be moved: no exec names a number that
		 * the dup2 gives to another file. */
		tssx_side_locks_renumber(old, moved);
		tssx_table_take(old);
		tssx_kept_alias(moved, obj);
		return;
	}
	/* The new number first: a thread that loads it meanwhile finds
	 * one of the two open. */
	if (moved >= 0 && tssx_table_set(moved, obj) < 0) {
		TSSX_REAL(close)(moved);
		moved = -1;
	}
	atomic_store(&kept_of(obj)->fd, moved);
	tssx_table_take(old);
}

/* Under the lock: every kept fd below floor moved to floor or above, but
 * a connection's socket copy (calls in flight use its number; it goes
 * with them) and the watcher's epoll fd (under the futex bell's lock,
 * which a fork takes before this one): its number is returned, or -1.
 * Until the kept numbers are full. */
static int move_below(int floor)
{
	int high = tssx_table_high_fd(), watcher = -1;

	for (int fd = 0; fd < floor && fd <= high; fd++) {
		struct tssx_fd_object *obj = tssx_table_get(fd);
		int moved;

		if (!obj || !tssx_fd_kind_kept(obj->kind) || obj->kind == TSSX_FD_HELD)
			continue;
		if (obj->kind == TSSX_FD_WATCHER) {
			watcher = fd;
			continue;
		}
		moved = TSSX_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, floor);
		if (moved < 0)
			break;
		tssx_conn_renumber_kept(fd, moved);
		TSSX_REAL(close)(fd);
	}
	return watcher;
}

/* The watcher's epoll fd, old, to floor or above. */
static void move_watcher(int old, int floor)
{
	int moved = TSSX_REAL(fcntl)(old, F_DUPFD_CLOEXEC, floor);

	if (moved >= 0)
		TSSX_REAL(close)(tssx_bell_renumber_watcher(old, moved) ? old : moved);
}

void tssx_conn_follow_program(int fd)
{
	int floor, watcher = -1;

	/* A vfork() child shares the parent's memory, not its fds. */
	if (tssx_foreign_process())
		return;
	tssx_kept_lock();
	floor = tssx_kept_raise_floor(fd);
	if (floor)
		watcher = move_below(floor);
	tssx_kept_unlock();
	if (watcher >= 0)
		move_watcher(watcher, floor);
}

int tssx_conn_wake_fd(struct tssx_conn *conn)
{
	int fd = atomic_load(&conn->wake.fd), none = -1;

	if (fd >= 0)
		return fd;
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0)
		return -1;
	tssx_conn_note_program_fd(fd); /* as keep_new_fd() */
	tssx_kept_lock();
	fd = tssx_kept_place(fd);
	/* In the table before it is published: no close-all loop takes it.
	 * Seq_cst: a writer publishes it before it checks the end of the
	 * stream, the shutdown sets the end before it looks for it
	 * (stream.c), so one of the two sees the other. */
	if (tssx_table_set(fd, &conn->wake.obj) < 0) {
		TSSX_REAL(close)(fd);
		fd = -1;
	} else if (!atomic_compare_exchange_strong(&conn->wake.fd, &none, fd)) {
		tssx_table_take(fd); /* another thread's came first */
		TSSX_REAL(close)(fd);
		fd = none;
	}
	tssx_kept_unlock();
	return fd;
}

static void conn_free(struct tssx_conn *conn)
{
	tssx_bell_forget(conn);
	close_kept(&conn->wake);
	close_kept(&conn->held);
	close_kept(&conn->own_eventfd);
	close_kept(&conn->peer_eventfd);
	tssx_ancillary_release(&conn->ancillary);
	/* Last: a server releases the segment here, once nothing of this
	 * process uses it (conn/recycle.h). */
	if (!tssx_recycle_put(conn)) {
		close_kept(&conn->memfd);
		tssx_segment_detach(&conn->seg);
	}
	if (!conn->pair_left)
		tssx_side_locks_leave(conn->locks);
	conn->pair_left = false;
	pthread_mutex_lock(&spares_lock);
	conn->next_spare = spares;
	spares = conn;
	pthread_mutex_unlock(&spares_lock);
}

/* The segment is mapped: this end's rings. */
static void conn_bind_rings(struct tssx_conn *conn)
{
	conn->tx = &conn->seg.ring[conn->server ? TSSX_S2C : TSSX_C2S];
	conn->rx = &conn->seg.ring[conn->server ? TSSX_C2S : TSSX_S2C];
}

/* The rings are bound (conn_bind_rings()): from here on the data path
 * works. */
static void conn_ready(struct tssx_conn *conn, int fd)
{
	struct tssx_conn_known known;
	struct stat st;

	tssx_fault_install();
	if (fstat(fd, &st) == 0) {
		conn->sock_dev = st.st_dev;
		conn->sock_ino = st.st_ino;
	}
	atomic_store_explicit(&conn->state, TSSX_CONN_READY, memory_order_release);
	tssx_conn_arm(conn, conn->armed_while_pending, TSSX_BELL_SOCKET, NULL);
	known = (struct tssx_conn_known){ conn->sock_ino, conn->server_name, conn->client_name, conn->peer_cred.pid };
	atomic_store(&conn->slot, tssx_conn_list_add(fd, conn->server, &known, &conn->stats, sizeof(struct tssx_hello)));
	log_info("fd %d: shared memory, %s%s", fd, conn->server ? "server" : "client",
		 !conn->recycled ? "" : conn->server ? ", mapping recycled" : ", segment recycled");
}

/* Closes the count fds at fds that are open, and marks each -1: a
 * hello's fds not sent or not kept. */
static void close_fds(int *fds, int count)
{
	for (int i = 0; i < count; i++) {
		if (fds[i] >= 0)
			TSSX_REAL(close)(fds[i]);
		fds[i] = -1;
	}
}

static void close_bells(int *bells)
{
	close_fds(bells, TSSX_HELLO_BELL_FDS);
}

/* The hello with the memfd and, when it says so, the two eventfds. */
static int send_hello(int fd, const struct tssx_hello *hello, int memfd, const int *bells)
{
	int fds[1 + TSSX_HELLO_BELL_FDS] = { memfd, bells[TSSX_HELLO_CLIENT_BELL], bells[TSSX_HELLO_SERVER_BELL] };
	size_t nfds = 1 + hello->bell_fds;
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { .iov_base = (void *)hello, .iov_len = sizeof(*hello) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = CMSG_SPACE(nfds * sizeof(int)),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	ssize_t n;

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	do
		n = TSSX_REAL(sendmsg)(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* A fresh socket's buffer takes a few dozen bytes whole. */
	return n == (ssize_t)sizeof(*hello) ? 0 : -EIO;
}

/*
 * The eventfd bell's two eventfds, the client's and the server's, both
 * made here and sent in the hello, so that the server needs no message
 * of its own.  Each starts at 1 and is never read: a wake-up is a write
 * of 0, which never blocks and never fails whatever the peer did to the
 * eventfd (made it blocking, filled its counter), yet wakes its epoll
 * sets, which report it readable for its count (docs/events.md).  None
 * when either cannot be made (this process at its fd limit): the socket
 * rings then.
 */
static void make_bells(struct tssx_client_prep *prep)
{
	for (int i = 0; i < TSSX_HELLO_BELL_FDS; i++)
		prep->bells[i] = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	if (prep->bells[TSSX_HELLO_CLIENT_BELL] >= 0 && prep->bells[TSSX_HELLO_SERVER_BELL] >= 0) {
		prep->hello.bell_fds = TSSX_HELLO_BELL_FDS;
		return;
	}
	close_bells(prep->bells);
}

int tssx_conn_prepare(struct tssx_client_prep *prep, const struct sockaddr *addr, socklen_t addrlen)
{
	int ret = 0;

	prep->memfd = -1;
	prep->bells[TSSX_HELLO_CLIENT_BELL] = prep->bells[TSSX_HELLO_SERVER_BELL] = -1;
	prep->addr = (const struct sockaddr_un *)addr;
	prep->addrlen = addrlen;
	prep->conn = conn_new(-1, false, NULL);
	if (!prep->conn)
		return -ENOMEM;
	if (tssx_recycle_take(prep->addr, addrlen, &prep->conn->seg, &prep->memfd, &prep->cred, &prep->hello))
		prep->conn->recycled = true;
	else
		ret = tssx_segment_create(&prep->conn->seg, tssx_opts.ring_size, tssx_opts.ring_size, &prep->memfd,
					  &prep->hello);
	if (ret < 0) {
		tssx_conn_abandon(prep);
		return ret;
	}
	make_bells(prep);
	conn_bind_rings(prep->conn);
	return 0;
}

void tssx_conn_abandon(struct tssx_client_prep *prep)
{
	close_bells(prep->bells);
	if (prep->memfd >= 0)
		TSSX_REAL(close)(prep->memfd);
	if (prep->conn)
		conn_free(prep->conn);
	prep->memfd = -1;
	prep->conn = NULL;
}

/* The connected server's credentials into conn, and the pool's key with
 * them; a recycled segment of another server (a new process at the
 * address) is replaced by a new one.  0 or -errno. */
static int check_server(int fd, struct tssx_client_prep *prep)
{
	struct tssx_conn *conn = prep->conn;
	socklen_t len = sizeof(conn->peer_cred);
	bool known = TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_PEERCRED, &conn->peer_cred, &len) == 0 &&
		     conn->peer_cred.pid > 0;
	const char *key = NULL;
	size_t key_len = tssx_recycle_key(prep->addr, prep->addrlen, &key);
	int ret;

	if (!known)
		memset(&conn->peer_cred, 0, sizeof(conn->peer_cred));
	if (conn->recycled && (!known || conn->peer_cred.pid != prep->cred.pid || conn->peer_cred.uid != prep->cred.uid ||
			       conn->peer_cred.gid != prep->cred.gid)) {
		bool bells = prep->hello.bell_fds;

		log_debug("fd %d: another server at the address: a new segment", fd);
		conn->recycled = false;
		tssx_segment_detach(&conn->seg);
		TSSX_REAL(close)(prep->memfd);
		ret = tssx_segment_create(&conn->seg, tssx_opts.ring_size, tssx_opts.ring_size, &prep->memfd,
					  &prep->hello);
		if (ret < 0)
			return ret;
		prep->hello.bell_fds = bells ? TSSX_HELLO_BELL_FDS : 0;
		conn_bind_rings(conn);
	}
	if (known && key_len) {
		memcpy(conn->recycle_key, key, key_len);
		conn->recycle_key_len = (uint8_t)key_len;
	}
	return 0;
}

int tssx_conn_connect(int fd, struct tssx_client_prep *prep)
{
	struct tssx_conn *conn = prep->conn;
	int ret;

	ret = check_server(fd, prep);
	if (ret == 0)
		ret = send_hello(fd, &prep->hello, prep->memfd, prep->bells);
	if (ret == 0) {
		atomic_store(&conn->fd, fd);
		ret = tssx_table_set(fd, &conn->obj);
	}
	if (ret < 0) {
		tssx_conn_abandon(prep);
		return log_error(ret, "fd %d: TSSX handshake failed: %s", fd, strerror(-ret));
	}
	keep_memfd(conn, prep->memfd, conn->recycled);
	keep_bells(conn, prep->bells[TSSX_HELLO_CLIENT_BELL], prep->bells[TSSX_HELLO_SERVER_BELL]);
	prep->bells[TSSX_HELLO_CLIENT_BELL] = prep->bells[TSSX_HELLO_SERVER_BELL] = -1;
	conn->destination = prep->destination;
	conn->connected_by = tssx_owner_pid();
	prep->memfd = -1;
	prep->conn = NULL;
	atomic_store(&conn->stats.sock_sent, sizeof(prep->hello));
	conn_ready(conn, fd);
	if (events_fd_is_tracked(fd))
		tssx_events_conn_appeared(fd);
	return 0;
}

int tssx_conn_fail(struct tssx_conn *conn, int fd, int error, const char *why)
{
	int expected = atomic_load(&conn->state);

	/* The first failure tells the story; later ones only report it. */
	while (expected != TSSX_CONN_FAILED) {
		atomic_store(&conn->error, error);
		if (atomic_compare_exchange_weak(&conn->state, &expected, TSSX_CONN_FAILED)) {
			tssx_log(TSSX_LOG_ERROR, "fd %d: TSSX connection failed: %s (%s)", fd, why,
				 strerror(error));
			tssx_unseen_changed();
			tssx_conn_list_failed(atomic_load(&conn->slot), error);
			/* Wake the peer: it sees EOF or EPIPE instead of waiting.
			 * Not through a number closed and reused meanwhile. */
			if (tssx_conn_owns_fd(conn, fd))
				TSSX_REAL(shutdown)(fd, SHUT_RDWR);
			break;
		}
	}
	return -atomic_load(&conn->error);
}

/* The most fds one SCM_RIGHTS message carries (the kernel's SCM_MAX_FD):
 * room for all of them, so that every fd a hostile hello sends arrives
 * here, where it is closed, instead of staying open unseen. */
#define HELLO_FDS_MAX 253

/* The fds a hello brings: the memfd, then the eventfds it announces. */
struct hello_fds {
	int fd[1 + TSSX_HELLO_BELL_FDS]; /* -1 where none came */
	int count;      /* how many came, kept or closed */
	bool truncated; /* the kernel installed no more (MSG_CTRUNC) */
};

/*
 * Takes the fds out of the hello's control messages, whatever their
 * layout: the first ones, as many as a hello may carry, are kept in
 * order; every other fd is closed.  MSG_CTRUNC: the kernel installed no
 * more, because this process reached its fd limit or because there were
 * more than the room for HELLO_FDS_MAX (hello_acceptable() tells which).
 */
static void hello_fds_take(struct msghdr *msg, struct hello_fds *fds)
{
	*fds = (struct hello_fds){ .fd = { -1, -1, -1 } };
	for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
		size_t n;

		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int received;

			memcpy(&received, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
			if (fds->count < 1 + TSSX_HELLO_BELL_FDS)
				fds->fd[fds->count] = received;
			else
				TSSX_REAL(close)(received);
			fds->count++;
		}
	}
	fds->truncated = msg->msg_flags & MSG_CTRUNC;
}

static ssize_t receive_hello(struct tssx_conn *conn, int fd, struct tssx_hello *hello, struct hello_fds *fds,
			     int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(HELLO_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = hello, .iov_len = sizeof(*hello) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	/* The client sends its hello right after its connect returns: a wait
	 * of microseconds, cheaper spun than slept. */
	struct tssx_deadline deadline;
	struct tssx_spin spin = { .over = true };
	ssize_t n;

	tssx_deadline_start_ms(&deadline, timeout_ms);
	if (timeout_ms)
		tssx_spin_start(&spin, 0, &deadline);
	for (;;) {
		int ready;

		/* Another thread may close or replace fd while this one sleeps
		 * for the hello: never read a number that is no longer this
		 * socket. */
		if (!tssx_conn_owns_fd(conn, fd)) {
			n = -1;
			errno = EBADF;
			break;
		}
		n = TSSX_REAL(recvmsg)(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n >= 0)
			break;
		if (errno != EAGAIN || timeout_ms == 0)
			break;
		if (tssx_spin_pause(&spin))
			continue;
		/* A handler that ran in the spin ends the wait as one in the
		 * poll below would. */
		if (tssx_deadline_interrupted(&deadline)) {
			errno = EINTR;
			break;
		}
		ready = TSSX_REAL(poll)(&pfd, 1, tssx_deadline_left_ms(&deadline));
		if (ready <= 0) {
			errno = ready < 0 ? errno : EAGAIN;
			break;
		}
	}
	tssx_spin_stop(&spin);
	if (n < 0)
		return -errno;
	hello_fds_take(&msg, fds);
	return n;
}

/*
 * Whether fd is an eventfd, which a write of 0 wakes without ever
 * blocking: any other file the peer sent (a pipe, a FUSE file) could
 * block this end's writes.  -1: cannot tell (no /proc).
 */
static int is_eventfd(int fd)
{
	static const char eventfd_link[] = "anon_inode:[eventfd]";
	char path[32], link[sizeof(eventfd_link)];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link));
	if (n < 0)
		return -1;
	return n == (ssize_t)sizeof(eventfd_link) - 1 && memcmp(link, eventfd_link, (size_t)n) == 0;
}

/*
 * The eventfds of a hello: -EPROTO when one is no eventfd; closed (the
 * socket rings then) when this process reached its fd limit on the way
 * in and not both came, or when it cannot tell what they are.
 */
static int hello_bells(int fd, struct hello_fds *fds, char *why, size_t size)
{
	int *bell = fds->fd + 1, kind[TSSX_HELLO_BELL_FDS];

	if (bell[TSSX_HELLO_CLIENT_BELL] < 0 || bell[TSSX_HELLO_SERVER_BELL] < 0) {
		if (fds->truncated)
			log_info("fd %d: at the fd limit, the client's eventfds dropped: the socket rings", fd);
		close_bells(bell);
		return 0;
	}
	for (int i = 0; i < TSSX_HELLO_BELL_FDS; i++)
		kind[i] = is_eventfd(bell[i]);
	if (!kind[TSSX_HELLO_CLIENT_BELL] || !kind[TSSX_HELLO_SERVER_BELL]) {
		snprintf(why, size, "hello with an fd that is no eventfd");
		return -EPROTO;
	}
	if (kind[TSSX_HELLO_CLIENT_BELL] < 0 || kind[TSSX_HELLO_SERVER_BELL] < 0)
		close_bells(bell);
	return 0;
}

/* The hello's checks beyond its own fields: what this process accepts.
 * A hello truncated short of what it announced reached this process's
 * fd limit: its eventfds are dropped, not the connection. */
static int hello_acceptable(const struct tssx_hello *hello, const struct hello_fds *fds, char *why, size_t size)
{
	int announced = 1 + (int)hello->bell_fds;

	if (fds->count == 0)
		snprintf(why, size, "hello without a segment");
	else if (fds->truncated && fds->count >= announced)
		snprintf(why, size, "hello with more than %d fds", fds->count);
	else if (!fds->truncated && fds->count != announced)
		snprintf(why, size, "hello with %d fds, %d announced", fds->count, announced);
	else if (hello->ring_capacity[TSSX_C2S] > tssx_opts.ring_max ||
		 hello->ring_capacity[TSSX_S2C] > tssx_opts.ring_max)
		snprintf(why, size, "rings larger than TSSX_RING_MAX (%llu/%llu bytes, at most %llu)",
			 (unsigned long long)hello->ring_capacity[TSSX_C2S],
			 (unsigned long long)hello->ring_capacity[TSSX_S2C],
			 (unsigned long long)tssx_opts.ring_max);
	else
		return 0;
	return -EPROTO;
}

/* What a failed tssx_segment_attach() tells the log and the program: the
 * peer's fault (EPROTO) or this process's limits (mmap's errno). */
static int attach_failure(int ret, char *why, size_t size)
{
	if (ret == -EPERM)
		snprintf(why, size, "segment not sealed");
	else if (ret == -EINVAL)
		snprintf(why, size, "segment does not match the hello");
	else {
		snprintf(why, size, "cannot map the segment");
		return ret;
	}
	return -EPROTO;
}

/*
 * The server maps the hello's memfd after its checks, or takes its own
 * idle mapping of the same file (conn/recycle.h): then fds->fd[0] is the
 * fd the pool kept, and the hello's is closed.  0 or -errno as
 * tssx_segment_attach().
 */
static int attach(struct tssx_conn *conn, struct hello_fds *fds, const struct tssx_hello *hello)
{
	uint64_t dev, ino;
	void *base;
	int kept = -1, ret = tssx_segment_check(fds->fd[0], hello, &dev, &ino);

	if (ret < 0)
		return ret;
	conn->seg_dev = dev;
	conn->seg_ino = ino;
	base = tssx_recycle_mapping(fds->fd[0], dev, ino, hello->segment_size, &kept);
	ret = tssx_segment_attach_checked(&conn->seg, fds->fd[0], hello, base);
	if (base) {
		if (ret < 0)
			munmap(base, hello->segment_size);
		TSSX_REAL(close)(fds->fd[0]);
		fds->fd[0] = kept;
		conn->recycled = ret == 0;
	}
	return ret;
}

/* Reads and checks the hello, maps the segment.  Called under the lock. */
static int conn_receive_hello(struct tssx_conn *conn, int fd, int timeout_ms)
{
	struct tssx_hello raw, hello;
	const char *reason = "bad hello";
	struct hello_fds fds = { .fd = { -1, -1, -1 } };
	char why[128];
	int ret;
	ssize_t n;

	n = receive_hello(conn, fd, &raw, &fds, timeout_ms);
	if (n == -EAGAIN || n == -EINTR || n == -EBADF)
		return (int)n;
	if (n <= 0)
		return tssx_conn_fail(conn, fd, ECONNRESET, n == 0 ? "peer closed before its hello" : "no hello");
	/* why is written only by a check that fails (snprintf() of the
	 * parser's reason at every hello cost about 600 instructions). */
	why[0] = '\0';
	ret = tssx_hello_parse(&raw, (size_t)n, &hello, &reason);
	if (ret == 0)
		ret = hello_acceptable(&hello, &fds, why, sizeof(why));
	if (ret == 0)
		ret = hello_bells(fd, &fds, why, sizeof(why));
	if (ret == 0) {
		ret = attach(conn, &fds, &hello);
		if (ret < 0)
			ret = attach_failure(ret, why, sizeof(why));
	}
	if (ret < 0) {
		close_fds(fds.fd, 1 + TSSX_HELLO_BELL_FDS);
		return tssx_conn_fail(conn, fd, -ret, why[0] ? why : reason);
	}
	keep_memfd(conn, fds.fd[0], conn->recycled);
	keep_bells(conn, fds.fd[1 + TSSX_HELLO_SERVER_BELL], fds.fd[1 + TSSX_HELLO_CLIENT_BELL]);
	atomic_fetch_add(&conn->stats.sock_received, (uint64_t)n);
	conn_bind_rings(conn);
	conn_ready(conn, fd);
	return 0;
}

int tssx_conn_establish(struct tssx_conn *conn, int fd, int timeout_ms)
{
	int ret, saved_errno = errno; /* callers' success paths keep errno */

	pthread_mutex_lock(&conn->handshake_lock);
	switch (atomic_load(&conn->state)) {
	case TSSX_CONN_HELLO_PENDING:
		ret = conn_receive_hello(conn, fd, timeout_ms);
		break;
	case TSSX_CONN_READY:
		ret = 0;
		break;
	default:
		ret = -atomic_load(&conn->error);
		break;
	}
	pthread_mutex_unlock(&conn->handshake_lock);
	errno = saved_errno;
	return ret;
}

int tssx_conn_adopt(int fd, int memfd, bool server, struct tssx_side_locks *locks)
{
	struct tssx_segment_header header;
	struct tssx_hello hello;
	struct tssx_conn *conn = NULL;
	int ret = -EINVAL;

	/* The header sizes the hello; tssx_segment_attach() then checks the
	 * seals, the size and the header against it, as for a peer's hello. */
	if (pread(memfd, &header, sizeof(header), 0) == (ssize_t)sizeof(header) &&
	    tssx_ring_capacity_valid(header.ring_capacity[TSSX_C2S]) &&
	    tssx_ring_capacity_valid(header.ring_capacity[TSSX_S2C])) {
		tssx_hello_init(&hello, header.ring_capacity[TSSX_C2S], header.ring_capacity[TSSX_S2C]);
		conn = conn_new(fd, server, locks);
		ret = conn ? tssx_segment_attach(&conn->seg, memfd, &hello) : -ENOMEM;
		if (conn) /* the image before the exec may live on (fork, spawn) */
			atomic_store(&conn->unseen_unfit, true);
	}
	if (ret == 0)
		ret = tssx_table_set(fd, &conn->obj);
	if (ret < 0) {
		TSSX_REAL(close)(memfd);
		/* Either way the pair loses the user it was given for us. */
		if (conn)
			conn_free(conn);
		else
			tssx_side_locks_leave(locks);
		return ret;
	}
	keep_memfd(conn, memfd, true);
	conn_bind_rings(conn);
	conn_ready(conn, fd);
	return 0;
}

void tssx_conn_establish_all(const char *why)
{
	int high = tssx_table_high_fd(), saved_errno = errno;

	for (int fd = 0; fd <= high; fd++) {
		struct tssx_conn *conn = tssx_conn_lookup(fd);

		if (conn && atomic_load_explicit(&conn->state, memory_order_acquire) == TSSX_CONN_HELLO_PENDING &&
		    tssx_conn_establish(conn, fd, 1000) == -EAGAIN)
			tssx_conn_fail(conn, fd, ECONNRESET, why);
	}
	errno = saved_errno;
}

int tssx_conn_accept(int fd, const struct sockaddr_un *peer, socklen_t peerlen, const struct sockaddr_un *self,
		     socklen_t selflen, bool listened_here)
{
	struct tssx_conn *conn = conn_new(fd, true, NULL);
	int ret;

	if (!conn)
		return -ENOMEM;
	conn->listened_here = listened_here;
	if (peer)
		tssx_conn_list_name(conn->client_name, sizeof(conn->client_name), peer, peerlen);
	if (self)
		tssx_conn_list_name(conn->server_name, sizeof(conn->server_name), self, selflen);
	ret = tssx_table_set(fd, &conn->obj);
	if (ret < 0) {
		conn_free(conn);
		return ret;
	}
	tssx_conn_establish(conn, fd, 0);
	return 0;
}

/* Bytes through the rings (this process's, both ways) that pay for a
 * segment in however few calls: a 1 MiB round trip costs plain sockets
 * about 100 us more than the rings, a segment about 110 us more than a
 * plain connect (the README's table: 262 against 155 us, 153 against
 * 43 us). */
#define PAID_BYTES (1u << 20)

/* Whether a connection that ends paid for its segment: it outlived a
 * short one, or moved PAID_BYTES in fewer calls. */
static bool paid_for_segment(struct tssx_conn *conn)
{
	return tssx_conn_outlived_short(conn) ||
	       atomic_load_explicit(&conn->stats.ring_sent, memory_order_relaxed) +
			       atomic_load_explicit(&conn->stats.ring_received, memory_order_relaxed) >=
		       PAID_BYTES;
}

/* A client connection's worth, told once: at its end to its
 * destination's history and, by its maker, to its program's; at exit
 * while open, to its program's only (the process's own dies with it).
 * Only a connection that became one (ready) is judged. */
static void judge(struct tssx_conn *conn, bool at_exit)
{
	bool paid;

	if (!conn->destination || atomic_load(&conn->state) != TSSX_CONN_READY ||
	    atomic_exchange(&conn->judged, true))
		return;
	paid = paid_for_segment(conn);
	if (!at_exit)
		tssx_destination_record(conn->destination, paid);
	if (conn->connected_by == tssx_owner_pid())
		tssx_destination_share(conn->destination, paid);
}

void tssx_conn_end(struct tssx_conn *conn, int fd)
{
	bool kept;

	/* Data calls on their fast path hold a side lock instead of a
	 * reference: wait until none of this process is inside (not for the
	 * lock itself, which a fork()ed sibling may hold for as long as its
	 * call takes: a close never waits for another process).  One that
	 * took a reference under its lock meanwhile ends the connection when
	 * it returns; the next ones find that fd no longer refers to it. */
	tssx_side_lock_wait_own(&conn->locks->producer);
	tssx_side_lock_wait_own(&conn->locks->consumer);
	kept = atomic_load(&conn->obj.refs) != 0;
	if (kept)
		return;
	if (atomic_load(&conn->state) == TSSX_CONN_READY) {
		log_info("fd %d closed: ring sent=%llu received=%llu, socket sent=%llu received=%llu bytes",
			 fd, (unsigned long long)conn->stats.ring_sent, (unsigned long long)conn->stats.ring_received,
			 (unsigned long long)conn->stats.sock_sent, (unsigned long long)conn->stats.sock_received);
		judge(conn, false);
	}
	tssx_conn_list_remove(atomic_load(&conn->slot));
	conn_free(conn);
}

bool tssx_conn_outlived_short(struct tssx_conn *conn)
{
	/* Relaxed: counters of this process's calls; a count a moment old
	 * only delays the answer by a call. */
	return atomic_load_explicit(&conn->sends, memory_order_relaxed) +
		       atomic_load_explicit(&conn->receives, memory_order_relaxed) >=
	       tssx_opts.short_calls;
}

struct tssx_conn *tssx_conn_hold(int fd)
{
	struct tssx_conn *conn = tssx_conn_lookup(fd);
	int refs;

	if (!conn)
		return NULL;
	/* Only from a count above zero: the end starts at zero, under the
	 * side locks, and must not find a reference it did not expect. */
	refs = atomic_load(&conn->obj.refs);
	do {
		if (refs == 0)
			return NULL;
	} while (!atomic_compare_exchange_weak(&conn->obj.refs, &refs, refs + 1));
	/* Ended and reused for another fd between the two: not fd's. */
	if (!tssx_conn_owns_fd(conn, fd)) {
		tssx_conn_release(conn, fd);
		return NULL;
	}
	return conn;
}

/* fd, the process's last fd of the connection, closes while calls keep
 * the connection: they go on with a copy of the socket (held), out of
 * the program's way.  Without one they end with what they did, or EBADF. */
static void hold_socket(struct tssx_conn *conn, int fd)
{
	int copy = tssx_kept_copy(fd);

	if (copy >= 0 && atomic_load(&conn->held.fd) < 0)
		keep_fd(&conn->held, copy);
	else if (copy >= 0)
		TSSX_REAL(close)(copy); /* a copy of an earlier last fd is there */
}

void tssx_conn_put(struct tssx_conn *conn, int fd)
{
	if (!tssx_table_unref(&conn->obj)) {
		/* The event wrappers reach the socket through conn->fd: another
		 * fd of this process, or -1 while only calls hold it. */
		int expected = fd, other = tssx_table_find(&conn->obj);

		if (other < 0)
			hold_socket(conn, fd);
		atomic_compare_exchange_strong(&conn->fd, &expected, other);
		/* After the copy: its futex sleepers wake to watch that. */
		tssx_bell_unwatch(conn, fd);
		return;
	}
	tssx_conn_end(conn, fd);
}

/* Whether every connection an fd names counts one reference: that fd's,
 * its only one, and no call's (a server forking a process for the
 * connection it accepted), so the child's counts are right as they are.
 * Read-only: each connection whose count the child writes costs it a
 * copy of that page. */
static bool each_conn_counted_once(int high)
{
	for (int fd = 0; fd <= high; fd++) {
		struct tssx_fd_object *obj = tssx_table_get(fd);

		if (obj && obj->kind == TSSX_FD_CONN && atomic_load(&obj->refs) != 1)
			return false;
	}
	return true;
}

TSSX_FORK_HANDLER void tssx_conn_forget_calls_after_fork(void)
{
	int high = tssx_table_high_fd();
	bool recount = !each_conn_counted_once(high);
	struct tssx_fd_object *obj;

	/* The only thread is the forking one, in no call: nothing else
	 * touches the table or the counts. */
	for (int fd = 0; recount && fd <= high; fd++) {
		obj = tssx_table_get(fd);
		if (obj && obj->kind == TSSX_FD_CONN)
			atomic_store(&obj->refs, 0);
	}
	for (int fd = 0; fd <= high; fd++) {
		obj = tssx_table_get(fd);
		if (obj && obj->kind == TSSX_FD_CONN) {
			/* Its first fd (its only one unless recounted): the
			 * child uses the pair too. */
			if ((!recount || atomic_fetch_add(&obj->refs, 1) == 0) && !tssx_conn_of(obj)->pair_left)
				tssx_side_locks_join(tssx_conn_of(obj)->locks);
		} else if (obj && obj->kind == TSSX_FD_HELD) {
			atomic_store(&kept_of(obj)->fd, -1);
			tssx_table_take(fd);
			TSSX_REAL(close)(fd);
		}
	}
}

/* visit(conn, flag) for every fd of the table that is a connection, in
 * this process only: a vfork() child leaves its parent's table alone. */
static void each_conn(void (*visit)(struct tssx_conn *conn, bool flag), bool flag)
{
	int high = tssx_table_high_fd();

	if (tssx_foreign_process())
		return;
	for (int fd = 0; fd <= high; fd++) {
		struct tssx_conn *conn = tssx_conn_lookup(fd);

		if (conn)
			visit(conn, flag);
	}
}

/* This process leaves (or joins again) the connection's pair. */
static void leave_pair(struct tssx_conn *conn, bool leave)
{
	if (conn->pair_left == leave)
		return;
	conn->pair_left = leave;
	if (leave)
		tssx_side_locks_leave(conn->locks);
	else
		tssx_side_locks_join(conn->locks);
}

void tssx_conn_leave_pairs(void)
{
	each_conn(leave_pair, true);
}

void tssx_conn_rejoin_pairs(void)
{
	each_conn(leave_pair, false);
}

void tssx_conn_judge_at_exit(void)
{
	each_conn(judge, true);
}
