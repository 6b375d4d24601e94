/*
 * A TSSX connection: its lifetime and handshake, and the lookup from an
 * fd (docs/preload.md).  The data path and readiness are in conn/stream.h.
 *
 * One struct tssx_conn per connection per process, shared by every fd of
 * the process that refers to it (dup); a forked child has its own copy of
 * the struct and the same segment.  Internal functions return -errno.
 */
#ifndef TSSX_PRELOAD_CONNECTION_H
#define TSSX_PRELOAD_CONNECTION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/uio.h>

#include "conn/ancillary.h"
#include "conn/conn_list.h"
#include "conn/destination.h"
#include "conn/fd_table.h"
#include "conn/kept.h"
#include "tssx/hello.h"
#include "tssx/macros.h"
#include "tssx/segment.h"
#include "tssx/side_lock.h"

/* Client sockets are bound to "\0" TSSX_CLIENT_PREFIX "PID.COUNTER.RANDOM". */
#define TSSX_CLIENT_PREFIX "tssx-v1."

enum tssx_conn_state {
	TSSX_CONN_HELLO_PENDING, /* server: the client's hello is not read yet */
	TSSX_CONN_READY,
	TSSX_CONN_FAILED,        /* every call fails with conn->error */
};

enum tssx_nonblock { TSSX_NONBLOCK_UNKNOWN, TSSX_BLOCKING, TSSX_NONBLOCKING };

/* A connection's own fd of one kind (the memfd, an eventfd, the socket's
 * copy) kept out of the program's way (conn/kept.h): its number, -1 when
 * none, and the object its table slot points to, first, so that a slot's
 * object is the whole record. */
struct tssx_kept_fd {
	struct tssx_fd_object obj;
	_Atomic int fd;
};

struct tssx_conn {
	/* Kept when the memory is reused for another connection (connection.c). */
	struct tssx_fd_object obj;
	struct tssx_conn *next_spare; /* while ended, kept for reuse */
	/* tx's writers and rx's readers of this process and its forks, in
	 * memory the peer cannot write (side_lock.h). */
	struct tssx_side_locks *locks;
	/* This process counts no longer among the pair's users (it is
	 * exiting or exec'ing: tssx_conn_leave_pairs). */
	bool pair_left;
	bool server; /* the first member a reuse clears */
	/* Segments recycled (conn/recycle.h): a client's server address,
	 * the pool's key (recycle_key_len 0: its segment is not pooled), and
	 * SO_PEERCRED of its server after the connect; a server's memfd's
	 * device and inode (0: not known); whether this end's segment (the
	 * client's) or mapping (the server's) was recycled. */
	uint8_t recycle_key_len;
	bool recycled;
	/* A server's, accepted on a listener whose last listen() was this
	 * process's: the one its client checks by SO_PEERCRED.  Only such a
	 * connection's mapping is kept (conn/recycle.h). */
	bool listened_here;
	char recycle_key[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ucred peer_cred;
	uint64_t seg_dev, seg_ino;
	/* tssx_unseen_forks() when it was made, and whether it may never go
	 * cold in an epoll set (duplicated, or handed over at exec):
	 * conn/unseen.h. */
	uint64_t born_forks;
	_Atomic bool unseen_unfit;
	/* The client's bound name as `tssx connections` shows it, when this
	 * process knows it without asking the socket (it bound it, or accept
	 * told it); "" otherwise. */
	char client_name[TSSX_CONN_NAME_MAX];
	/* The server's address likewise (the address a client connected
	 * to, when absolute or abstract; a server's claimed path); ""
	 * otherwise. */
	char server_name[TSSX_CONN_PATH_MAX];
	_Atomic int fd;            /* one fd of this process that refers to it */
	_Atomic int state;         /* enum tssx_conn_state */
	_Atomic int error;         /* errno once FAILED */
	_Atomic bool peer_closed;  /* the real socket reported EOF or HUP */
	_Atomic bool read_shut;    /* this process did shutdown(SHUT_RD) */
	_Atomic bool write_shut;   /* this process did shutdown(SHUT_WR) */
	/* A write of this process found tx full (EAGAIN, a short write):
	 * from then on its edge-triggered epoll entries arm for room at
	 * every sleep (tssx_conn_room_unowed(), docs/events.md "Room only
	 * after a full ring"). */
	_Atomic bool ring_filled;
	/* O_NONBLOCK of the socket as this process last read or set it
	 * (enum tssx_nonblock): an F_GETFL per wait otherwise. */
	_Atomic int nonblock;
	/* SO_RCVTIMEO and SO_SNDTIMEO as this process last read them, in
	 * ns (0: none): a getsockopt() per sleep otherwise.  Valid while
	 * timeouts_read is timeouts_set + 1: this process's setsockopt()
	 * counts in timeouts_set, and a read that raced it is stale. */
	_Atomic uint32_t timeouts_set, timeouts_read;
	_Atomic uint64_t rcvtimeo_ns, sndtimeo_ns;
	/* SO_PEEK_OFF: where the next MSG_PEEK starts, -1 when off; moved
	 * under the consumer lock as the kernel moves it. */
	_Atomic int peek_off;
	pthread_mutex_t handshake_lock;
	/* Events a waiter armed while the hello was pending (under
	 * handshake_lock): armed on the rings as the handshake completes,
	 * whoever completes it, so no waiter sleeps without a doorbell. */
	uint32_t armed_while_pending;
	struct tssx_segment seg;
	struct tssx_ring *rx, *tx;
	/* This process's holders of the bells of rx's reader flag (its
	 * readers' sleepers) and of tx's writer flag (its writers'):
	 * conn/hold.h. */
	struct tssx_ring_holds reader_holds, writer_holds;
	struct tssx_ancillary_queue ancillary; /* records read, not yet reached */
	/* The segment's memfd, kept O_CLOEXEC so that exec can hand the
	 * connection to the new image (conn/handover.c); -1 if it could not be
	 * kept.  Kind TSSX_FD_SEGMENT. */
	struct tssx_kept_fd memfd;
	/* An eventfd written when this process (or a fork that shares it)
	 * shuts the connection down for writing: a writer of another thread
	 * asleep for room wakes on it (the socket has no such event).  Made by
	 * the first writer that sleeps while the process has several threads;
	 * -1 until then.  Kind TSSX_FD_WAKE. */
	struct tssx_kept_fd wake;
	/* The eventfd bell (docs/events.md): own_eventfd is this end's
	 * eventfd, which its epoll sets watch beside the socket and the
	 * peer writes; peer_eventfd the peer's, which this end writes.  Both
	 * from the client's hello, O_CLOEXEC (an exec'd image rings and
	 * sleeps on the socket); -1 without them.  Kinds TSSX_FD_OWN_BELL
	 * and TSSX_FD_PEER_BELL. */
	struct tssx_kept_fd own_eventfd, peer_eventfd;
	/* A copy of the real socket, made when the process closed its last
	 * fd of the connection while calls of other threads still kept it:
	 * as the kernel keeps the file for a call in progress, they go on
	 * with the copy (tssx_conn_socket), and the peer sees no hang-up
	 * until the last of them returns.  -1 otherwise.  Kind
	 * TSSX_FD_HELD. */
	struct tssx_kept_fd held;
	/* The socket the futex bell's watcher watches for this process's
	 * futex sleepers (conn/bell.c), -1 when none; its registration's tag
	 * and the watcher's epoch (a fork()ed child's differs). */
	_Atomic int bell_fd;
	uint16_t bell_tag;
	_Atomic uint32_t bell_epoch;
	/* This process's own bell of the connection: its futex sleepers wait
	 * on it beside the ring's word, and its own wakers (a shutdown, the
	 * watcher, a close of the socket watched) add one and wake it
	 * (tssx_bell_wake_own): in this process's memory, so no peer can
	 * write it back under a sleeper. */
	_Atomic uint32_t own_bell;
	/* The real socket's identity: a copy of it that the table does not
	 * know (dup2 in a vfork() child) is recognised at exec by it. */
	dev_t sock_dev;
	ino_t sock_ino;
	/* Statistics of this process, for the log line at close and for
	 * `tssx connections`, which finds them through the slot. */
	struct tssx_conn_counters stats;
	/* Reads and writes of this process that moved data, each updated
	 * by its side's lock holder only. */
	_Atomic uint64_t sends, receives;
	/* A client's history of connections to its server, told once, at
	 * the end or at exit (judged), how many calls this one made
	 * (destination.h); NULL otherwise.  connected_by: the process that
	 * made it, whose program's shared history it joins. */
	struct tssx_destination *destination;
	pid_t connected_by;
	_Atomic bool judged;
	struct tssx_conn_slot *_Atomic slot; /* conn_list.h; NULL: not listed */
};

static inline struct tssx_conn *tssx_conn_of(struct tssx_fd_object *obj)
{
	return obj && obj->kind == TSSX_FD_CONN ? (struct tssx_conn *)obj : NULL;
}

/* The connection on fd, or NULL: not TSSX, pass through.  Lock-free; the
 * whole cost of the library for fds that are not TSSX connections. */
static inline struct tssx_conn *tssx_conn_lookup(int fd)
{
	return tssx_conn_of(tssx_table_get(fd));
}

/* The same, and fd's slot (when there is one): a data call checks under
 * its side lock that the slot still holds the connection
 * (tssx_conn_still_at()), one load where a second lookup was several.
 * Slots are never freed. */
static inline struct tssx_conn *tssx_conn_lookup_slot(int fd, struct tssx_fd_slot **slot)
{
	*slot = tssx_table_slot(fd);
	/* Acquire as in tssx_table_get(). */
	return *slot ? tssx_conn_of(atomic_load_explicit(&(*slot)->obj, memory_order_acquire)) : NULL;
}

/* Whether the fd of this slot still refers to the connection
 * (tssx_conn_owns_fd()). */
static inline bool tssx_conn_still_at(struct tssx_conn *conn, struct tssx_fd_slot *slot)
{
	return atomic_load_explicit(&slot->obj, memory_order_acquire) == &conn->obj;
}

/* Whether a peer address (from accept) is a TSSX client's. */
bool tssx_conn_is_client_addr(const void *addr, unsigned addrlen);
struct tssx_client_prep;
/* Binds the socket to a fresh TSSX client name, which prep's connection
 * keeps for its listing.  -EINVAL: the socket is bound already. */
int tssx_conn_bind_client(int fd, struct tssx_client_prep *prep);

/* A client connection made ready before the real connect, so that the
 * hello follows the connect at once: the server's accept, or its first
 * read, then finds it already there instead of sleeping for it while the
 * client maps its segment. */
struct tssx_client_prep {
	struct tssx_conn *conn;
	struct tssx_hello hello;
	int memfd;
	int bells[TSSX_HELLO_BELL_FDS]; /* -1 each without them */
	struct tssx_destination *destination; /* the connection's, or NULL */
	/* The server's address, the recycling pool's key (conn/recycle.h). */
	const struct sockaddr_un *addr;
	socklen_t addrlen;
	struct ucred cred; /* a recycled segment's server */
};

/* Client, before the real connect to addr: the connection and its
 * segment (a recycled one of that server's when there is one).  Returns 0
 * or -errno (the caller then stays plain). */
int tssx_conn_prepare(struct tssx_client_prep *prep, const struct sockaddr *addr, socklen_t addrlen);
/* Client, after the real connect succeeded: hello, fd table.  Consumes
 * prep.  On failure nothing is left behind (the caller fails the connect). */
int tssx_conn_connect(int fd, struct tssx_client_prep *prep);
/* Client, when the real connect failed: releases prep. */
void tssx_conn_abandon(struct tssx_client_prep *prep);
/* Server, after the real accept of a TSSX client (its address peer, and
 * the server's own name self, each NULL if not known; listened_here: on a
 * listener whose last listen() was this process's): a connection whose
 * hello is read now if it is there, later otherwise. */
int tssx_conn_accept(int fd, const struct sockaddr_un *peer, socklen_t peerlen, const struct sockaddr_un *self,
		     socklen_t selflen, bool listened_here);
/* Completes a pending handshake, waiting up to timeout_ms (-1: forever)
 * for the hello.  Returns 0 once READY, -EAGAIN, -EINTR, or the
 * connection's error. */
int tssx_conn_establish(struct tssx_conn *conn, int fd, int timeout_ms);
/* Completes every pending handshake of the process, waiting up to a
 * second for each hello (the client sends it right behind its connect);
 * one that does not come fails the connection with `why` in the log. */
void tssx_conn_establish_all(const char *why);

/* Whether the handshake is complete: one load, the data path's fast path.
 * Acquire: pairs with the release that publishes a READY connection, so
 * its rings are seen set up. */
static inline bool tssx_conn_is_ready(struct tssx_conn *conn)
{
	return likely(atomic_load_explicit(&conn->state, memory_order_acquire) == TSSX_CONN_READY);
}

/* Whether the connection has outlived a short one: moved data in at least
 * TSSX_SHORT_CALLS reads and writes of this process (0: every connection
 * has).  A client's history of its server learns it at the close,
 * with 1 MiB through the rings counting as long too
 * (destination.h); a sleep on the futex bell needs it first (conn/bell.h:
 * the watcher thread is for connections that last).  docs/preload.md,
 * "Short-lived connections". */
bool tssx_conn_outlived_short(struct tssx_conn *conn);

/* Marks the connection failed (log line, real socket shut down so that the
 * peer notices); returns -error. */
int tssx_conn_fail(struct tssx_conn *conn, int fd, int error, const char *why);

/* Whether fd still refers to the connection: a call in progress while
 * another thread closes fd must not touch the number, which the kernel
 * may already have given to another file. */
static inline bool tssx_conn_owns_fd(struct tssx_conn *conn, int fd)
{
	return tssx_conn_lookup(fd) == conn;
}

/*
 * A data call keeps the connection alive without touching its reference
 * count on the fast path: it holds a side lock and checks under it that
 * fd still refers to the connection, and the connection only ends under
 * both side locks (connection.c).  A call that goes on after giving the
 * lock back (to sleep, drain or ring a doorbell) takes a reference while
 * it still holds the lock (tssx_conn_keep) and gives it back with
 * tssx_conn_release() when it returns.
 */
static inline void tssx_conn_keep(struct tssx_conn *conn)
{
	/* Relaxed: the side lock orders it before the end's check. */
	atomic_fetch_add_explicit(&conn->obj.refs, 1, memory_order_relaxed);
}

/* The last reference is gone: the connection ends (connection.c). */
void tssx_conn_end(struct tssx_conn *conn, int fd);

static inline void tssx_conn_release(struct tssx_conn *conn, int fd)
{
	if (atomic_fetch_sub_explicit(&conn->obj.refs, 1, memory_order_acq_rel) == 1)
		tssx_conn_end(conn, fd);
}

/*
 * For a call that looks at a connection without a side lock (the event
 * wrappers, ioctl(), shutdown()), for as long as it runs: the connection
 * on fd with a reference, or NULL.  As the kernel keeps a file alive for
 * a call on it, another thread's close() then leaves the connection to
 * this call's tssx_conn_release().  A connection whose count is already
 * zero is ending: not taken.
 */
struct tssx_conn *tssx_conn_hold(int fd);

/* The new image of an exec, handed fd, the segment's memfd and the side
 * locks' pair by the old one (conn/handover.c, which made the new image
 * one of the pair's users): a ready connection, or -errno (memfd is
 * closed, the pair left). */
int tssx_conn_adopt(int fd, int memfd, bool server, struct tssx_side_locks *locks);
/* The fd of every arena of side-lock pairs the process uses (made, or
 * adopted after an exec) is kept in the table: close-all loops leave it,
 * a dup2() onto it moves it (tssx_conn_move_kept), and an exec hands it
 * on with the connections whose pairs it holds (conn/handover.c). */
void tssx_conn_keep_arena(const struct tssx_side_locks *locks);
/* Moves the kept fd at old (a connection's memfd, wake fd, socket copy
 * or eventfd, an arena of side locks, the futex bell watcher's epoll fd,
 * the spin policy's /proc/loadavg) to another number: the application
 * dup2s onto it. */
void tssx_conn_move_kept(int old);
/* The kept fd at old (any of those but the watcher's) is at moved from
 * now on (-1: gone); old, out of the table, is the caller's to close or
 * to lose.  Under tssx_kept_lock() (conn/kept.h). */
void tssx_conn_renumber_kept(int old, int moved);
/* The program's numbers reached fd: the kept numbers move above it
 * (conn/kept.h).  Takes tssx_kept_lock(); never under it, nor under the
 * futex bell's lock (it moves the watcher's epoll fd). */
void tssx_conn_follow_program(int fd);
/* fd is a number of the program's (what its socket(), accept() or dup()
 * returned), or the lowest free one (where the library's next fd was
 * made): the kept numbers follow it when it reaches half of their
 * floor.  A load and a compare otherwise. */
static inline void tssx_conn_note_program_fd(int fd)
{
	if (unlikely(fd >= atomic_load_explicit(&tssx_kept_watermark, memory_order_relaxed)))
		tssx_conn_follow_program(fd);
}
/* The connection's wake fd (see wake), made on first use; -1 if it
 * cannot be made. */
int tssx_conn_wake_fd(struct tssx_conn *conn);

/* The socket a call that keeps the connection uses: its fd while that
 * still refers to the connection, else the copy kept for it (held),
 * else -1 (the number may already name another file). */
static inline int tssx_conn_socket(struct tssx_conn *conn, int fd)
{
	return likely(tssx_conn_owns_fd(conn, fd)) ? fd : atomic_load(&conn->held.fd);
}

/* In a fork() child: the calls of the parent's other threads are not
 * there, so they keep no connection (their references are dropped) and
 * need no copy of a socket (closed). */
void tssx_conn_forget_calls_after_fork(void);

/* Before an exec, and at exit: this process leaves the side-lock pairs of
 * its connections, which its forks may reuse once nobody uses them;
 * tssx_conn_rejoin_pairs() undoes it when the exec failed. */
void tssx_conn_leave_pairs(void);
void tssx_conn_rejoin_pairs(void);

/* At exit: the client connections this process made and never closed
 * are judged as if it closed them now (a program run once per request
 * often exits without a close). */
void tssx_conn_judge_at_exit(void);

/* fd no longer refers to it (its slot is taken): drops the table's
 * reference; the last one logs the counts and unmaps. */
void tssx_conn_put(struct tssx_conn *conn, int fd);

#endif
