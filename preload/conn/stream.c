/*
 * The data path of a TSSX connection (connection.h, docs/design.md §3).
 *
 * Bytes move through the rings; the real socket carries only doorbells.  A
 * reader with nothing to read (a writer with no space) spins when spinning
 * pays (conn/wait.h), arms its ring's flag, re-checks and sleeps on the
 * real socket, in recv() itself when it can (the wake-up and the drain in
 * one system call); the peer that moves the ring finds the flag and sends
 * one byte.
 * The real socket's EOF or HUP says the peer closed its last copy.
 *
 * Several threads or processes may sleep on one connection, and doorbells
 * for all of them arrive on one socket: a sleeper that drained the byte
 * meant for another, before that one's poll() looked, would leave it
 * asleep for good.  So only one sleeper at a time, the owner, waits for
 * doorbells and drains them; its thread id is in the rx ring's `waiters`
 * word.  It takes ownership before arming its flag, so that no other
 * drainer stands between the doorbell its flag calls for and its poll().  The others are guests: they poll() for HUP only and re-check the
 * rings every TSSX_SHARED_WAIT_MS, so a doorbell meant for a guest costs it at
 * most that delay, never a hang.  A guest takes over from an owner whose
 * thread no longer exists (killed while asleep).  Calls that do not sleep
 * never drain (notice_peer_close).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/single_threaded.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn/ancillary.h"
#include "conn/bell.h"
#include "conn/fault.h"
#include "conn/hold.h"
#include "tssx/ring_fast.h"
#include "conn/stream.h"
#include "conn/stream_fast.h"
#include "conn/unseen.h"
#include "events/events.h"
#include "init.h"
#include "real_slots.h"
#include "conn/wait.h"
#include "tssx/log.h"
#include "tssx/macros.h"

/* Owner word of a non-sleeping drainer: no thread id is this high. */
#define DRAINER UINT32_MAX
/* Doorbells drained per call: bounds the work a flooding peer can cause. */
#define DRAIN_ROUNDS 16

/* A blocking call's deadline: the socket's SO_RCVTIMEO or SO_SNDTIMEO,
 * from the call's first wait on; at.interrupts from the call's start. */
struct deadline {
	bool known;
	struct tssx_deadline at;
};

/*
 * Whether a call must not wait.  O_NONBLOCK is read once and then kept up
 * to date by this process's fcntl(F_SETFL) and ioctl(FIONBIO)
 * (tssx_conn_note_nonblock).  Another process sharing the open file can
 * change it unseen; a wait then still ends at once where it must, since
 * the sleep is a recv() on the same non-blocking socket (EAGAIN).
 */
bool tssx_conn_nonblocking(struct tssx_conn *conn, int fd, int flags)
{
	int known = atomic_load_explicit(&conn->nonblock, memory_order_relaxed);
	int fl;

	if (flags & MSG_DONTWAIT)
		return true;
	if (known != TSSX_NONBLOCK_UNKNOWN)
		return known == TSSX_NONBLOCKING;
	fl = TSSX_REAL(fcntl)(fd, F_GETFL);
	if (fl < 0)
		return false;
	tssx_conn_note_nonblock(conn, fl & O_NONBLOCK);
	return fl & O_NONBLOCK;
}

void tssx_conn_note_nonblock(struct tssx_conn *conn, bool nonblocking)
{
	atomic_store_explicit(&conn->nonblock, nonblocking ? TSSX_NONBLOCKING : TSSX_BLOCKING,
			      memory_order_relaxed);
}

static bool peer_done_writing(const struct tssx_conn *conn)
{
	return tssx_ring_write_shut(conn->rx) || atomic_load(&conn->peer_closed) ||
	       atomic_load(&conn->read_shut);
}

/* This process or a fork of it did shutdown(SHUT_WR) (the ring's flag is
 * shared with the forks): as on Linux, writes fail with EPIPE. */
static bool shut_for_writing(const struct tssx_conn *conn)
{
	return atomic_load(&conn->write_shut) || tssx_ring_write_shut(conn->tx);
}

/* The peer did shutdown(SHUT_RD): as on Linux, writes fail with EPIPE. */
static bool peer_stopped_reading(const struct tssx_conn *conn)
{
	return tssx_ring_read_shut(conn->tx);
}

static void ring_socket(struct tssx_conn *conn, int fd)
{
	static const char bell;
	int saved_errno = errno;

	fd = tssx_conn_socket(conn, fd);
	if (fd < 0)
		return; /* closed by another thread: the number may be reused */
	if (TSSX_REAL(send)(fd, &bell, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
		atomic_fetch_add_explicit(&conn->stats.sock_sent, 1, memory_order_relaxed);
	else if (errno == ECONNRESET || (errno == EPIPE && !peer_stopped_reading(conn)))
		atomic_store(&conn->peer_closed, true);
	/* EPIPE after the peer's shutdown(SHUT_RD): its socket takes no more
	 * doorbells, but it may still write to us. */
	/* EAGAIN: the peer has unread doorbells and wakes up anyway. */
	errno = saved_errno;
}

/*
 * The eventfd bell: a write of 0 to the peer's eventfd, which its epoll
 * sets watch edge-triggered.  Its count stays what it was (1 from its
 * making, never read), so the write never blocks and never fails, even
 * on an eventfd the peer made blocking or filled, and every write is an
 * edge (docs/events.md, "The eventfd bell").  False without one (an
 * exec'd image, a peer that sent none) or when the write failed: the
 * socket rings instead, which the peer's sets watch too.
 */
static bool ring_eventfd(struct tssx_conn *conn)
{
	static const uint64_t zero;
	int saved_errno = errno, fd = atomic_load_explicit(&conn->peer_eventfd.fd, memory_order_relaxed);
	bool rung = fd >= 0 && TSSX_REAL(write)(fd, &zero, sizeof(zero)) == (ssize_t)sizeof(zero);

	errno = saved_errno;
	return rung;
}

/* Rings the bells that a flag taken from the peer's sleepers called for
 * (ring.h): a byte on the real socket, the futex bell on `word`, the
 * peer's eventfd (or the socket in its place). */
static void ring_doorbell(struct tssx_conn *conn, int fd, uint32_t bells, _Atomic uint32_t *word)
{
	if (bells & TSSX_BELL_FUTEX)
		tssx_bell_ring(word);
	if ((bells & TSSX_BELL_EVENTFD) && !ring_eventfd(conn))
		bells |= TSSX_BELL_SOCKET;
	if (bells & TSSX_BELL_SOCKET)
		ring_socket(conn, fd);
}

/* The real socket reads 0: the peer closed, unless this side shut its
 * reading down (the kernel's SHUT_RD, tssx_conn_shutdown()). */
static void note_socket_eof(struct tssx_conn *conn)
{
	if (!tssx_ring_read_shut(conn->rx))
		atomic_store(&conn->peer_closed, true);
}

/*
 * One receive on the real socket (conn/ancillary.c reads it: doorbells
 * counted, records of control data queued): anything else fails the
 * connection; the peer's EOF is noted.  Returns the bytes read or -errno.
 */
static ssize_t receive_doorbells(struct tssx_conn *conn, int fd, int flags)
{
	const char *why = NULL;
	ssize_t n = tssx_ancillary_read_socket(conn, fd, flags, &why);

	if (n > 0)
		tssx_unseen_doorbells_taken(conn);
	if (why)
		tssx_conn_fail(conn, fd, (int)-n, why);
	else if (n == -ECONNRESET)
		atomic_store(&conn->peer_closed, true);
	else if (n == 0)
		note_socket_eof(conn);
	return why ? -EPROTO : n;
}

/*
 * Consumes doorbells without blocking; notes the peer's EOF.  A short read
 * ends it, unless until_empty: the peer's EOF behind its last doorbell
 * shows only in the next call, and an edge-triggered epoll reports the
 * peer's close once (a reader then slept for good).  A caller whose kernel
 * wait watched POLLRDHUP and did not get it needs no second call: the
 * close, when it comes, is reported again.
 */
static void drain_doorbells(struct tssx_conn *conn, int fd, bool until_empty)
{
	int saved_errno = errno;

	for (int round = 0; round < DRAIN_ROUNDS && (fd = tssx_conn_socket(conn, fd)) >= 0; round++) {
		ssize_t n = receive_doorbells(conn, fd, MSG_DONTWAIT);

		if (n <= 0 || (!until_empty && n < TSSX_SOCKET_READ_BYTES))
			break;
	}
	errno = saved_errno;
}

/* Whether a kernel report on the real socket may hide the peer's EOF
 * behind the doorbells it announced. */
static bool may_hide_eof(uint32_t revents)
{
	return revents & (POLLRDHUP | POLLHUP | POLLERR);
}

static int ring_broken(struct tssx_conn *conn, int fd)
{
	return tssx_conn_fail(conn, fd, EPROTO, "ring counters corrupted");
}

/* What a copy moves: into the ring; out of it, unless records of control
 * data may concern the bytes (TSSX_RING_MARKED: the caller looks at the
 * records); or out of it to a limit taken from the records. */
enum move { MOVE_IN, MOVE_OUT, MOVE_OUT_LIMITED };

static inline ssize_t move_once(struct tssx_ring *ring, enum move move, const struct iovec *iov, int iovcnt,
				bool peek, size_t least)
{
	if (move == MOVE_IN)
		return tssx_ring_write_whole(ring, iov, iovcnt, least);
	if (move == MOVE_OUT)
		return tssx_ring_read_unmarked(ring, iov, iovcnt, peek);
	return tssx_ring_read(ring, iov, iovcnt, peek);
}

/* Copies between the ring and iov, skipping the first `skip` bytes of iov
 * (a call that resumes after a partial transfer); into the ring nothing
 * unless at least `least` bytes fit. */
static ssize_t ring_transfer_from(struct tssx_ring *ring, enum move move, const struct iovec *iov, int iovcnt,
				  size_t skip, size_t least)
{
	struct iovec first;
	ssize_t n, rest;

	while (iovcnt > 0 && skip >= iov->iov_len) {
		skip -= iov->iov_len;
		iov++;
		iovcnt--;
	}
	if (iovcnt == 0)
		return 0;
	first = (struct iovec){ .iov_base = (char *)iov->iov_base + skip, .iov_len = iov->iov_len - skip };
	n = move_once(ring, move, &first, 1, false, least);
	if (n < (ssize_t)first.iov_len || iovcnt == 1)
		return n;
	/* The room checked for `least` is still there: only this side,
	 * under its lock, takes room. */
	least = least > (size_t)n ? least - (size_t)n : 0;
	rest = move_once(ring, move, iov + 1, iovcnt - 1, false, least);
	/* Records counted meanwhile concern bytes after these. */
	if (rest == TSSX_RING_MARKED)
		return n;
	return rest < 0 ? rest : n + rest;
}

/* The first round of every call moves the whole iov (empty entries
 * included: the ring skips them); only a resumed one needs the skipping. */
static inline ssize_t ring_transfer(struct tssx_ring *ring, enum move move, const struct iovec *iov, int iovcnt,
				    size_t skip, bool peek, size_t least)
{
	if (likely(skip == 0))
		return move_once(ring, move, iov, iovcnt, peek, least);
	return ring_transfer_from(ring, move, iov, iovcnt, skip, least);
}

static inline ssize_t unguarded_transfer(struct tssx_ring *ring, enum move move, const struct iovec *iov,
					 int iovcnt, size_t skip, bool peek, size_t least, int peek_off)
{
	if (peek && peek_off >= 0)
		return tssx_ring_peek_at(ring, (uint64_t)peek_off, iov, iovcnt);
	return ring_transfer(ring, move, iov, iovcnt, skip, peek, least);
}

/*
 * The copy between the caller's buffers and the ring: a buffer the
 * process cannot access makes it return -EFAULT with nothing published,
 * as the ring's counters move only after a copy, or the bytes a large
 * copy published before the fault (ring.h).  On x86-64 the ring's copy
 * returns it itself (tssx/copy.h), inline and without a guard; elsewhere
 * the copy runs under a fault guard (fault.h): sigsetjmp() without the
 * mask, no system call.
 */
#if TSSX_COPY_LANDS
static inline __attribute__((always_inline)) ssize_t
guarded_transfer(struct tssx_ring *ring, enum move move, const struct iovec *iov, int iovcnt, size_t skip,
		 bool peek, size_t least, int peek_off)
{
	return unguarded_transfer(ring, move, iov, iovcnt, skip, peek, least, peek_off);
}
#else
static ssize_t guarded_transfer(struct tssx_ring *ring, enum move move, const struct iovec *iov, int iovcnt,
				size_t skip, bool peek, size_t least, int peek_off)
{
	struct tssx_fault_guard guard;
	ssize_t n;

	if (sigsetjmp(guard.env, 0)) {
		/* The handler cleared tssx_fault_guard.  A large copy
		 * publishes as it goes (ring.h): what it published moved. */
		size_t moved = tssx_ring_fault_moved(ring, move == MOVE_IN);

		return moved ? (ssize_t)moved : -EFAULT;
	}
	tssx_fault_guard = &guard;
	n = unguarded_transfer(ring, move, iov, iovcnt, skip, peek, least, peek_off);
	tssx_fault_guard = NULL;
	return n;
}
#endif

/* A failed copy: the caller's fault (EFAULT), fd closed under a call
 * that keeps the connection (EBADF, conn/ancillary.c), or the peer's
 * (EPROTO). */
static ssize_t copy_failed(struct tssx_conn *conn, int fd, ssize_t n)
{
	return n == -EFAULT || n == -EBADF ? n : ring_broken(conn, fd);
}

/*
 * A read of at most `limit` bytes (where a message with control data
 * begins or ends, conn/ancillary.c), skipping the first `skip` bytes of
 * iov.  Whole iovs in one copy when the limit allows it, else one piece
 * at a time, each under the guard: a fault returns what earlier pieces
 * moved.
 */
static ssize_t guarded_read_upto(struct tssx_ring *ring, const struct iovec *iov, int iovcnt, size_t skip,
				 bool peek, size_t limit)
{
	size_t done = 0;

	while (iovcnt > 0 && skip >= iov->iov_len) {
		skip -= iov->iov_len;
		iov++;
		iovcnt--;
	}
	if (skip == 0 && tssx_iov_total(iov, iovcnt) <= limit)
		return guarded_transfer(ring, MOVE_OUT_LIMITED, iov, iovcnt, 0, peek, 0, -1);
	/* A peek of several pieces would read the first again: one piece. */
	for (; iovcnt > 0 && done < limit; iov++, iovcnt--, skip = 0) {
		struct iovec piece = { .iov_base = (char *)iov->iov_base + skip, .iov_len = iov->iov_len - skip };
		ssize_t n;

		if (piece.iov_len == 0)
			continue;
		if (piece.iov_len > limit - done)
			piece.iov_len = limit - done;
		n = guarded_transfer(ring, MOVE_OUT_LIMITED, &piece, 1, 0, peek, 0, -1);
		if (n < 0)
			return done ? (ssize_t)done : n;
		done += (size_t)n;
		if ((size_t)n < piece.iov_len || peek)
			break;
	}
	return (ssize_t)done;
}

/* A peek at SO_PEEK_OFF of at most `limit` bytes (where a message with
 * control data begins or ends): into the first non-empty piece of iov. */
static ssize_t guarded_peek_upto(struct tssx_ring *ring, int peek_off, const struct iovec *iov, int iovcnt,
				 size_t limit)
{
	struct iovec piece = { 0 };

	for (; iovcnt > 0 && !piece.iov_len; iov++, iovcnt--)
		piece = *iov;
	if (piece.iov_len > limit)
		piece.iov_len = limit;
	return guarded_transfer(ring, MOVE_OUT_LIMITED, &piece, 1, 0, true, 0, peek_off);
}

static uint64_t timeval_ns(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * (uint64_t)TSSX_NSEC_PER_SEC + (uint64_t)tv->tv_usec * 1000u;
}

/* The socket's SO_RCVTIMEO (reader) or SO_SNDTIMEO (writer) in ns, 0 for
 * none, read once and then kept until this process sets an option
 * (connection.h).  Another process sharing the open file can change them
 * unseen, as O_NONBLOCK (tssx_conn_nonblocking()). */
static uint64_t socket_timeout_ns(struct tssx_conn *conn, int fd, bool writer)
{
	struct timeval rcv = { 0 }, snd = { 0 };
	socklen_t len = sizeof(rcv);
	uint32_t set = atomic_load(&conn->timeouts_set);

	if (atomic_load(&conn->timeouts_read) != set + 1) {
		if (TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, &len) < 0)
			rcv = (struct timeval){ 0 };
		len = sizeof(snd);
		if (TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, &len) < 0)
			snd = (struct timeval){ 0 };
		atomic_store(&conn->rcvtimeo_ns, timeval_ns(&rcv));
		atomic_store(&conn->sndtimeo_ns, timeval_ns(&snd));
		atomic_store(&conn->timeouts_read, set + 1);
	}
	return atomic_load(writer ? &conn->sndtimeo_ns : &conn->rcvtimeo_ns);
}

void tssx_conn_forget_timeouts(struct tssx_conn *conn)
{
	atomic_fetch_add(&conn->timeouts_set, 1);
}

/* The call's deadline, from the socket's timeout at its first wait. */
static const struct tssx_deadline *deadline_of(struct deadline *dl, struct tssx_conn *conn, int fd, bool writer)
{
	if (!dl->known) {
		uint64_t ns = socket_timeout_ns(conn, fd, writer);
		struct timespec timeout = { (time_t)(ns / TSSX_NSEC_PER_SEC), (long)(ns % TSSX_NSEC_PER_SEC) };

		dl->known = true;
		tssx_deadline_set(&dl->at, ns ? &timeout : NULL);
	}
	return &dl->at;
}

/*
 * A handler of the program ran in this thread while the call waited: the
 * call fails with EINTR, or, under SA_RESTART on a socket without a
 * timeout (socket(7)), goes on as the kernel restarts it (the count is
 * taken again).  The trampoline (shims/signal.c) says which; a sleep in
 * poll() or on the futex ended by a handler installed around it (before
 * the library was loaded, by a raw system call) restarts only when no
 * handler is installed without SA_RESTART: programs install theirs alike.
 */
static bool handler_interrupts(struct tssx_conn *conn, int fd, bool writer, struct deadline *dl, bool counted)
{
	if (deadline_of(dl, conn, fd, writer)->at_ns != TSSX_FOREVER)
		return true;
	if (counted) {
		if (!tssx_interrupt_restarts())
			return true;
		dl->at.interrupts = tssx_interrupt_mark();
		return false;
	}
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;

		if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL &&
		    sa.sa_handler != SIG_IGN && !(sa.sa_flags & SA_RESTART))
			return true;
	}
	return false;
}

/* Whether the call ends with EINTR: a handler ran since it started (or
 * restarted), in a wait that the kernel could not see. */
static bool interrupted(struct tssx_conn *conn, int fd, bool writer, struct deadline *dl)
{
	return unlikely(tssx_deadline_interrupted(&dl->at)) && handler_interrupts(conn, fd, writer, dl, true);
}

static ssize_t ring_avail(struct tssx_conn *conn, bool writer)
{
	return writer ? tssx_ring_writable(conn->tx) : tssx_ring_readable(conn->rx);
}

/* Whether waiting must stop without sleeping: the ring moved, or the peer
 * will not move it any more. */
static bool wait_over(struct tssx_conn *conn, bool writer, ssize_t avail, size_t need)
{
	return avail < 0 || (size_t)avail >= need || atomic_load(&conn->peer_closed) ||
	       (writer ? shut_for_writing(conn) || peer_stopped_reading(conn) : peer_done_writing(conn));
}

static bool spin(struct tssx_conn *conn, bool writer, size_t need, const struct deadline *dl)
{
	/* The socket's timeout is asked only if the spin does not answer. */
	const struct tssx_deadline forever = { TSSX_FOREVER, dl->at.interrupts };
	struct tssx_spin spin;
	bool over = false;

	if (!tssx_spin_start_peer(&spin, 0, &forever, tssx_ring_waiter_cpu(conn->rx), tssx_ring_waiter_cpu(conn->tx)))
		return false;
	do
		over = wait_over(conn, writer, ring_avail(conn, writer), need);
	while (!over && tssx_spin_pause(&spin));
	tssx_spin_stop(&spin);
	return over;
}

/* Raises the flag of this sleeper (a reader's on rx, a writer's on tx)
 * with a counted hold on bell (conn/hold.h) and re-checks.  1: sleep; 0:
 * re-check instead (the ring moved, or the peer will not move it);
 * -EINTR; -EPROTO.  The caller leaves the hold as it returns
 * (tssx_hold_leave()), whatever it did meanwhile. */
static int arm_held(struct tssx_conn *conn, int fd, bool writer, size_t need, struct deadline *dl, uint32_t bell)
{
	ssize_t avail;

	tssx_hold_raise(conn, !writer, bell, TSSX_HOLD_COUNTED);
	avail = ring_avail(conn, writer);
	if (avail < 0)
		return ring_broken(conn, fd);
	if (wait_over(conn, writer, avail, need))
		return 0;
	return interrupted(conn, fd, writer, dl) ? -EINTR : 1;
}

/* A futex sleep's look after TSSX_BELL_RECHECK_NS found what it slept
 * for while its flag is still raised: no waker took it, the wake-up never
 * came.  A peer that publishes without ringing does that; the library
 * must not (docs/data-path.md, "Wake-ups always fence"), so it says so.
 * A flag taken means a waker is on its way: nothing to say. */
static void note_silent_peer(struct tssx_conn *conn, int fd, bool writer, size_t need)
{
	if (tssx_ring_bell_raised(writer ? conn->tx : conn->rx, !writer, TSSX_BELL_FUTEX) &&
	    wait_over(conn, writer, ring_avail(conn, writer), need))
		tssx_log(TSSX_LOG_WARN, "fd %d: the peer %s without a wake-up: the %s waited %llu ms", fd,
			 writer ? "made room" : "wrote", writer ? "writer" : "reader",
			 TSSX_BELL_RECHECK_NS / 1000000ull);
}

/* The futex sleep of sleep_on_bell(), armed: 0 or -EINTR (-EAGAIN at the
 * deadline), TSSX_BELL_RECHECKED, or the connection's error. */
static int sleep_on_word(struct tssx_conn *conn, _Atomic uint32_t *word, uint32_t seen, uint32_t own_seen,
			 const struct tssx_deadline *at)
{
	int ret;

	tssx_wait_count_sleep(true);
	ret = tssx_bell_sleep(word, seen, conn, own_seen, at);
	/* The watcher failed the connection (bytes around the library): the
	 * call fails as the sleeper in recv() that found them would, before
	 * the hang-up that the failure caused reads as an EOF. */
	if (atomic_load(&conn->state) == TSSX_CONN_FAILED)
		return -atomic_load(&conn->error);
	return ret;
}

/*
 * Sleeps on the futex bell (conn/bell.h) while the watcher watches the
 * socket for the peer's hang-up.  Any number of sleepers may: the bell
 * wakes all of them, and none drains the socket.  0: re-check; -EAGAIN
 * on the socket's timeout; -EINTR; -EPROTO; 1: a short connection yet, no
 * watcher, or no FUTEX_WAITV: the caller sleeps on the socket.
 */
static int sleep_on_bell(struct tssx_conn *conn, int fd, bool writer, size_t need, struct deadline *dl)
{
	_Atomic uint32_t *word = writer ? tssx_ring_writer_bell(conn->tx) : tssx_ring_reader_bell(conn->rx);
	const struct tssx_deadline *at = deadline_of(dl, conn, fd, writer);
	/* Before the flag and the look at the watcher: a wake-up after
	 * either then ends the sleep at once (tssx_bell_seen()). */
	uint32_t seen = tssx_bell_seen(word), own_seen = tssx_bell_seen(&conn->own_bell);
	int ret;

	/* The watcher is a thread for the rest of the process's life (glibc
	 * keeps its multi-threaded system call wrappers once one was made,
	 * and the kernel takes a file reference at every fd call while two
	 * share the fd table): a process whose connections are all short (a
	 * client with a connection per request, whose probes of the server
	 * go through shared memory) must not pay that at every call for
	 * sleeps that the socket serves as well.  docs/wait.md, "The futex
	 * bell". */
	if (!tssx_conn_outlived_short(conn) || !tssx_bell_may_sleep() || !tssx_bell_watch(conn, fd))
		return 1;
	ret = arm_held(conn, fd, writer, need, dl, TSSX_BELL_FUTEX);
	if (ret > 0)
		ret = tssx_deadline_passed(at) ? -EAGAIN : sleep_on_word(conn, word, seen, own_seen, at);
	if (ret == TSSX_BELL_RECHECKED) {
		note_silent_peer(conn, fd, writer, need);
		ret = 0;
	}
	tssx_hold_leave(conn, !writer, TSSX_BELL_FUTEX);
	return ret;
}

/* Becomes the owner of the connection's doorbells, if nobody else is. */
static bool take_ownership(struct tssx_ring *rx, uint32_t tid)
{
	uint32_t current = 0;

	if (tssx_ring_swap_owner(rx, &current, tid) || current == tid)
		return true;
	/* An owner killed in its sleep never gives up: take over. */
	if (current != DRAINER && kill((pid_t)current, 0) < 0 && errno == ESRCH)
		return tssx_ring_swap_owner(rx, &current, tid);
	return false;
}

/* Drains doorbells for the event wrappers, after their own sleep: only
 * while no sleeper owns them, holding ownership meanwhile so that none
 * starts to. */
static void drain_as_guest(struct tssx_conn *conn, int fd, uint32_t revents)
{
	uint32_t expected = 0;

	if (!tssx_ring_swap_owner(conn->rx, &expected, DRAINER))
		return; /* the owner drains them when it wakes, right away */
	drain_doorbells(conn, fd, may_hide_eof(revents));
	expected = DRAINER;
	tssx_ring_swap_owner(conn->rx, &expected, 0);
}

/*
 * For a call that does not wait (EAGAIN): whether the peer closed, without
 * consuming a doorbell.  A doorbell drained here could be the one that
 * another thread's edge-triggered epoll_wait was woken for: the kernel
 * finds the socket empty when that wait collects its events, reports
 * nothing and sleeps on, with data in the ring (a lost wake-up).  Only
 * sleepers drain; a peek sees the end of the stream as they would.
 */
static void notice_peer_close(struct tssx_conn *conn, int fd)
{
	char c;
	int saved_errno = errno;
	ssize_t n = TSSX_REAL(recv)(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && errno == ECONNRESET)
		atomic_store(&conn->peer_closed, true);
	else if (n == 0)
		note_socket_eof(conn);
	errno = saved_errno;
}

/*
 * The owner sleeps in recv() itself: the doorbell that wakes it is consumed
 * by the same system call, where poll() and a drain would make two or
 * three.  A reader gets the socket's SO_RCVTIMEO from the kernel
 * (timeout_is_ours: its EAGAIN ends the call); a writer sleeps so only
 * without SO_SNDTIMEO, and an EAGAIN of SO_RCVTIMEO just re-checks.
 */
static int sleep_in_recv(struct tssx_conn *conn, int fd, bool timeout_is_ours)
{
	ssize_t n;

	tssx_wait_count_sleep(false);
	n = receive_doorbells(conn, fd, 0);

	if (n == -EINTR)
		return -EINTR;
	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return timeout_is_ours ? -EAGAIN : 0;
	return 0;
}

/* Sleeps on the socket, and on the connection's wake fd when wake >= 0
 * (a writer that another thread's shutdown must wake). */
static int sleep_on_socket(struct tssx_conn *conn, int fd, bool owning, int timeout_ms, int wake)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = owning ? POLLIN | POLLRDHUP : 0 },
				 { .fd = wake, .events = POLLIN } };
	int ready;

	tssx_wait_count_sleep(false);
	if (!owning && (timeout_ms < 0 || timeout_ms > TSSX_SHARED_WAIT_MS))
		timeout_ms = TSSX_SHARED_WAIT_MS;
	ready = TSSX_REAL(poll)(pfd, wake >= 0 ? 2 : 1, timeout_ms);
	if (ready < 0)
		return -errno;
	if (ready > 0 && pfd[0].revents) {
		if (pfd[0].revents & (POLLHUP | POLLERR))
			atomic_store(&conn->peer_closed, true);
		if (owning)
			drain_doorbells(conn, fd, may_hide_eof((uint32_t)pfd[0].revents));
	}
	return 0;
}

/* This thread's id, asked once: gettid() is a system call per wait
 * otherwise.  A fork()ed child's thread has an id of its own. */
static __thread uint32_t cached_tid;

TSSX_FORK_HANDLER static void forget_tid(void)
{
	cached_tid = 0;
}

static void register_forget_tid(void)
{
	pthread_atfork(NULL, NULL, forget_tid);
}

static uint32_t thread_id(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (!cached_tid) {
		pthread_once(&once, register_forget_tid);
		cached_tid = (uint32_t)gettid();
	}
	return cached_tid;
}

/* wait_ring() after a spin that did not end the wait: sleeps on the
 * futex bell or on the socket fd (the connection's, or the copy kept for
 * the call).  The same results. */
static int sleep_ring(struct tssx_conn *conn, int fd, bool writer, size_t need, struct deadline *dl)
{
	uint32_t tid;
	bool owning, kernel_restarts = false;
	int timeout_ms, ret, wake;

	if (interrupted(conn, fd, writer, dl))
		return -EINTR;
	ret = sleep_on_bell(conn, fd, writer, need, dl);
	if (ret <= 0)
		return ret;
	/* Ownership first: a doorbell that our flag calls for must not find
	 * another owner who drains it before we sleep. */
	tid = thread_id();
	/* After this side's SHUT_RD no doorbell reaches the socket: nobody
	 * owns them, a writer re-checks as a guest does. */
	owning = !tssx_ring_read_shut(conn->rx) && take_ownership(conn->rx, tid);
	/* A writer that another thread may shut down sleeps where the
	 * shutdown can wake it: the socket has no event for it (the kernel's
	 * wakes a writer asleep for room, with EPIPE).  Published before
	 * wait_over() looks at the end of the stream (tssx_conn_wake_fd). */
	wake = writer && !__libc_single_threaded ? tssx_conn_wake_fd(conn) : -1;
	ret = arm_held(conn, fd, writer, need, dl, TSSX_BELL_SOCKET);
	if (ret <= 0) {
		/* nothing to sleep for */
	} else if (owning && !writer) {
		/* The kernel applies SO_RCVTIMEO and SA_RESTART as to the
		 * plain socket's recv(): no deadline of ours to read. */
		ret = sleep_in_recv(conn, fd, true);
		kernel_restarts = true;
	} else if ((timeout_ms = tssx_deadline_left_ms(deadline_of(dl, conn, fd, writer))) == 0) {
		ret = -EAGAIN;
	} else if (owning && timeout_ms < 0 && wake < 0) {
		ret = sleep_in_recv(conn, fd, false);
	} else {
		ret = sleep_on_socket(conn, fd, owning, timeout_ms, wake);
	}
	tssx_hold_leave(conn, !writer, TSSX_BELL_SOCKET);
	if (owning)
		tssx_ring_swap_owner(conn->rx, &tid, 0);
	if (ret == -EINTR && !kernel_restarts &&
	    !handler_interrupts(conn, fd, writer, dl, tssx_deadline_interrupted(&dl->at)))
		return 0;
	return ret;
}

/* Waits for data (reader) or `need` bytes of space (writer).  0: re-check;
 * -EAGAIN on the socket's timeout; -EINTR; -EPROTO. */
static int wait_ring(struct tssx_conn *conn, int fd, bool writer, size_t need, struct deadline *dl)
{
	int ret;

	/* Closed by another thread while this call slept: the call goes on
	 * with the copy of the socket kept for it, as the kernel's with the
	 * file, or, without one, has no socket left to sleep on. */
	fd = tssx_conn_socket(conn, fd);
	if (fd < 0)
		return -EBADF;
	if (atomic_load(&conn->state) == TSSX_CONN_FAILED)
		return -atomic_load(&conn->error);
	if (spin(conn, writer, need, dl))
		return 0;
	ret = sleep_ring(conn, fd, writer, need, dl);
	/* Whether the answer came in time for a spin, had the thread's
	 * history not skipped it (a load of the counters after a sleep,
	 * made only then: most sleeps were refused a spin, not skipped). */
	if (tssx_spin_skipped_pending())
		tssx_spin_skipped_ended(ret == 0 && wait_over(conn, writer, ring_avail(conn, writer), need));
	return ret;
}

static ssize_t epipe(int flags)
{
	if (!(flags & MSG_NOSIGNAL))
		pthread_kill(pthread_self(), SIGPIPE);
	return -EPIPE;
}

/* 0 when the data path may be used on fd.  A pending handshake may wait
 * for the hello as long as the call may block (the socket's mode is asked
 * only then: it costs a system call). */
static int usable(struct tssx_conn *conn, int fd, int flags)
{
	return tssx_conn_is_ready(conn) ? 0 : tssx_conn_establish(conn, fd, tssx_conn_nonblocking(conn, fd, flags) ? 0 : -1);
}

/*
 * Taken right after a side lock: whether the call may use the connection
 * (connection.h, tssx_conn_keep).  A call that already keeps it does;
 * otherwise fd must still refer to it, else another thread closed fd.
 */
static inline bool still_there(struct tssx_conn *conn, int fd, bool kept)
{
	return likely(kept) || likely(tssx_conn_owns_fd(conn, fd));
}

/* Under the side lock: the call goes on after giving it back. */
static inline void keep(struct tssx_conn *conn, bool *kept)
{
	if (!*kept) {
		tssx_conn_keep(conn);
		*kept = true;
	}
}

/*
 * With the producer lock held, before the call's first byte: puts a
 * sendmsg()'s control data on the socket once the ring has room for the
 * `least` bytes the caller then writes under the same lock (only this
 * side takes room).  1: sent; 0: no room yet; -errno.
 */
static int attach_control(struct tssx_conn *conn, int fd, const struct msghdr *control, const struct iovec *iov,
			  int iovcnt, size_t len, size_t least, int flags)
{
	ssize_t room = tssx_ring_writable(conn->tx);

	if (room < 0)
		return ring_broken(conn, fd);
	if ((size_t)room < least)
		return 0;
	/* A call that keeps the connection may have lost fd to another
	 * thread's close(): never send on the number. */
	fd = tssx_conn_socket(conn, fd);
	if (fd < 0)
		return -EBADF;
	/* A copy that faulted after the record was on the socket would hand
	 * the fds to the next bytes written, where the kernel's sendmsg()
	 * fails whole with EFAULT. */
	if (!tssx_fault_can_access(iov, iovcnt, len < conn->tx->capacity ? len : conn->tx->capacity, false))
		return -EFAULT;
	return tssx_ancillary_send(conn, fd, control, len, tssx_conn_nonblocking(conn, fd, flags)) ?: 1;
}

/* The connection's edge-triggered epoll entries are owed EPOLLOUT when
 * room comes, so they arm for room from now on (tssx_conn_room_unowed()),
 * and those that armed without it hear of it: this process's sets through
 * their entries of fd; another process's (a fork, an exec'd image) or an
 * entry of another fd of the connection, which an arming may have skipped
 * before the connection came to be shared, through the socket's bell. */
void tssx_conn_ring_found_full(struct tssx_conn *conn, int fd)
{
	/* Seq_cst, before the sets' locks: an arming under a set's lock
	 * after tssx_events_room_owed() took it sees the mark. */
	atomic_store(&conn->ring_filled, true);
	if (!tssx_unseen_held_alone(conn))
		(void)tssx_conn_arm(conn, POLLOUT, TSSX_BELL_SOCKET, NULL);
	tssx_events_room_owed(fd);
}

/* Inline in its two callers (send, sendmsg): one frame per call less. */
static inline __attribute__((always_inline)) ssize_t
send_stream(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt, int flags,
			   const struct msghdr *control, bool *kept)
{
	struct deadline dl = { .at.interrupts = tssx_interrupt_mark() };
	size_t want = tssx_iov_total(iov, iovcnt), done = 0, least;
	int ret = usable(conn, fd, flags), nonblocking = -1; /* -1: not asked yet */

	if (ret < 0)
		return ret;
	if (shut_for_writing(conn) || atomic_load(&conn->peer_closed) || peer_stopped_reading(conn))
		return epipe(flags);
	if (want == 0)
		return 0; /* the kernel drops control data without bytes too */
	/* Several writers' bytes do not interleave within half the ring
	 * (docs/data-path.md): a write copies the rest of its bytes, up to
	 * that, at once or not at all, and a blocking one waits for the room.
	 * A non-blocking one copies what fits (a partial write is contiguous
	 * too); asking which it is costs a system call, so only when the ring
	 * is short of room. */
	least = want < conn->tx->capacity / 2 ? want : conn->tx->capacity / 2;
	for (;;) {
		ssize_t n = 0;
		int attached = 1;
		uint32_t bells;

		tssx_side_lock(&conn->locks->producer);
		if (!still_there(conn, fd, *kept)) {
			tssx_side_unlock(&conn->locks->producer);
			return done ? (ssize_t)done : -EBADF;
		}
		if (control)
			attached = attach_control(conn, fd, control, iov, iovcnt, want, least, flags);
		if (attached > 0)
			n = guarded_transfer(conn->tx, MOVE_IN, iov, iovcnt, done, false, least, -1);
		if (n > 0)
			tssx_conn_count_moved(conn, true, (uint64_t)n);
		bells = n > 0 ? tssx_ring_take_reader_wakeup(conn->tx) : 0;
		if (bells || n < 0 || done + (size_t)n != want)
			keep(conn, kept);
		tssx_side_unlock(&conn->locks->producer);
		if (attached < 0)
			return attached == -EPIPE ? epipe(flags) : attached;
		if (attached > 0)
			control = NULL;
		if (n < 0)
			return done ? (ssize_t)done : copy_failed(conn, fd, n);
		done += (size_t)n;
		if (bells)
			ring_doorbell(conn, fd, bells, tssx_ring_reader_bell(conn->tx));
		if (done == want)
			return (ssize_t)done;
		if (nonblocking < 0) {
			nonblocking = tssx_conn_nonblocking(conn, fd, flags);
			least = 1;
			if (nonblocking && n == 0)
				continue; /* what fits, then */
		}
		if (!nonblocking)
			least = want - done < conn->tx->capacity / 2 ? want - done : conn->tx->capacity / 2;
		if (nonblocking) {
			if (!done)
				notice_peer_close(conn, fd);
			ret = -EAGAIN;
		} else {
			ret = wait_ring(conn, fd, true, least, &dl);
		}
		if (ret == -EAGAIN)
			tssx_conn_ring_found_full(conn, fd);
		/* A writer that this side's shutdown ended while it waited fails
		 * without SIGPIPE, as the kernel's (its wait for room fails,
		 * which skips the signal of a write that finds the socket
		 * shut). */
		if (shut_for_writing(conn))
			return done ? (ssize_t)done : -EPIPE;
		if (atomic_load(&conn->peer_closed) || peer_stopped_reading(conn))
			return done ? (ssize_t)done : epipe(flags);
		if (ret < 0)
			return done ? (ssize_t)done : ret;
	}
}

/* The ring is empty: whether the stream is over for this reader. */
static bool at_eof(struct tssx_conn *conn)
{
	return peer_done_writing(conn) && tssx_ring_readable(conn->rx) == 0;
}

/* SO_PEEK_OFF as the kernel keeps it: a peek moves it past what it
 * copied, a read back by what it took (not below 0).  Under the consumer
 * lock: relaxed. */
static void move_peek_off(struct tssx_conn *conn, int off, bool peek, size_t n)
{
	if (peek)
		off = n > (size_t)(INT_MAX - off) ? INT_MAX : off + (int)n;
	else
		off = n >= (size_t)off ? 0 : off - (int)n;
	atomic_store_explicit(&conn->peek_off, off, memory_order_relaxed);
}

/*
 * ring_receive() once records of control data may be ahead
 * (conn/ancillary.c), and every peek at SO_PEEK_OFF (peek_off >= 0).  The
 * read that returns a message's first byte gets its control data, a peek
 * at SO_PEEK_OFF too.  Out of line: the data path without records stays
 * as short as before.
 */
static __attribute__((noinline)) ssize_t ring_receive_records(struct tssx_conn *conn, int fd, const struct iovec *iov,
							      int iovcnt, size_t done, bool peek, int peek_off,
							      struct tssx_ancillary_want *anc, bool *stop)
{
	/* The tail before the count of records: every record for the bytes
	 * below it is counted (ancillary.h).  Acquire pairs with the
	 * producer's release of the tail.  The head is this side's own
	 * (the consumer lock is held); the ring checks both counters when it
	 * copies, so a corrupted pair only lets it find them here. */
	uint64_t avail = tssx_ring_produced(conn->rx) - tssx_ring_consumed(conn->rx);
	bool at_offset = peek && peek_off >= 0;
	struct tssx_ancillary_record *at = NULL;
	ssize_t limit, n;

	if (avail > conn->rx->capacity)
		return guarded_transfer(conn->rx, MOVE_OUT_LIMITED, iov, iovcnt, done, peek, 0, -1);
	if (at_offset) {
		if (likely(!tssx_ring_ancillary_ahead(conn->rx)))
			return guarded_transfer(conn->rx, MOVE_OUT_LIMITED, iov, iovcnt, done, peek, 0, peek_off);
		if (avail <= (uint64_t)peek_off)
			return 0;
		avail -= (uint64_t)peek_off;
	} else if (avail == 0) {
		return 0;
	}
	limit = tssx_ancillary_limit(conn, fd, at_offset ? (size_t)peek_off : 0, (size_t)avail, done, stop, &at);
	if (limit <= 0)
		return limit;
	n = at_offset ? guarded_peek_upto(conn->rx, peek_off, iov, iovcnt, (size_t)limit)
		      : guarded_read_upto(conn->rx, iov, iovcnt, done, peek, (size_t)limit);
	/* The control data goes with the bytes: none when the copy faulted. */
	if (at && n > 0)
		tssx_ancillary_taken(conn, fd, at, anc);
	return n;
}

/*
 * With the consumer lock held: reads what is there, up to the next
 * message with control data (conn/ancillary.c), which goes to `anc` with
 * the read that returns its first byte, a peek at SO_PEEK_OFF too;
 * *stop: the call returns after this read.  Without records in flight
 * the read loads no counter of the producer's while the tail it saw
 * allows it (tssx_ring_read_unmarked): a load of the producer's line per
 * read made the producer's next store miss, and its wake-up check's fence
 * wait for that miss, at every message.
 */
static inline ssize_t ring_receive(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt,
				   size_t done, bool peek, int peek_off, struct tssx_ancillary_want *anc,
				   bool *stop)
{
	if (likely(!(peek && peek_off >= 0))) {
		ssize_t n = guarded_transfer(conn->rx, MOVE_OUT, iov, iovcnt, done, peek, 0, -1);

		if (likely(n != TSSX_RING_MARKED))
			return n;
	}
	return ring_receive_records(conn, fd, iov, iovcnt, done, peek, peek_off, anc, stop);
}

/* What a read at the end returns: 0, or ECONNRESET when the peer's
 * connection went to an image that could not use it (conn/handover.c). */
static ssize_t end_of_stream(struct tssx_conn *conn)
{
	return tssx_ring_write_abandoned(conn->rx) ? -ECONNRESET : 0;
}

/* Inline in its two callers (recv, recvmsg): one frame per call less. */
static inline __attribute__((always_inline)) ssize_t
recv_stream(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt, int flags,
			   struct tssx_ancillary_want *anc, bool *kept, uint32_t interrupts)
{
	struct deadline dl = { .at.interrupts = interrupts };
	bool peek = flags & MSG_PEEK;
	/* MSG_PEEK | MSG_WAITALL returns what is there, as peeking cannot
	 * accumulate. */
	bool waitall = (flags & MSG_WAITALL) && !peek;
	size_t want = tssx_iov_total(iov, iovcnt), done = 0;
	int ret = usable(conn, fd, flags);

	if (ret < 0)
		return ret;
	for (;;) {
		bool stop = false;
		ssize_t n;
		int peek_off;
		uint32_t bells;

		tssx_side_lock(&conn->locks->consumer);
		if (!still_there(conn, fd, *kept)) {
			tssx_side_unlock(&conn->locks->consumer);
			return done ? (ssize_t)done : -EBADF;
		}
		peek_off = atomic_load_explicit(&conn->peek_off, memory_order_relaxed);
		n = ring_receive(conn, fd, iov, iovcnt, done, peek, peek_off, anc, &stop);
		if (n > 0 && !peek)
			tssx_conn_count_moved(conn, false, (uint64_t)n);
		if (unlikely(n > 0 && peek_off >= 0))
			move_peek_off(conn, peek_off, peek, (size_t)n);
		bells = n > 0 && !peek ? tssx_ring_take_writer_wakeup(conn->rx) : 0;
		if (bells || n <= 0 || !(done + (size_t)n == want || !waitall || stop))
			keep(conn, kept);
		tssx_side_unlock(&conn->locks->consumer);
		if (n < 0)
			return done ? (ssize_t)done : copy_failed(conn, fd, n);
		done += (size_t)n;
		if (bells)
			ring_doorbell(conn, fd, bells, tssx_ring_writer_bell(conn->rx));
		if (want == 0) {
			/* The kernel's zero-length read waits for one byte like
			 * any read, and copies nothing: EAGAIN, not a false EOF,
			 * on an empty non-blocking connection. */
			n = tssx_ring_readable(conn->rx);
			if (n != 0)
				return n < 0 ? ring_broken(conn, fd) : 0;
		} else if (done == want || (done && (!waitall || stop))) {
			return (ssize_t)done;
		}
		if (at_eof(conn))
			return done ? (ssize_t)done : end_of_stream(conn);
		if (n > 0)
			continue; /* more may have come in meanwhile */
		if (tssx_conn_nonblocking(conn, fd, flags)) {
			notice_peer_close(conn, fd);
			if (at_eof(conn))
				return done ? (ssize_t)done : end_of_stream(conn);
			return done ? (ssize_t)done : -EAGAIN;
		}
		ret = wait_ring(conn, fd, false, 1, &dl);
		if (ret < 0)
			return done ? (ssize_t)done : ret;
	}
}

/* A data call that went on beyond its side lock kept the connection
 * (another thread's close() must not end it under a sleeper) and gives it
 * back here.  Sleeping and draining make system calls; a call that
 * succeeds leaves errno as it found it. */
static ssize_t call_done(struct tssx_conn *conn, int fd, bool kept, ssize_t n, int saved_errno)
{
	if (kept)
		tssx_conn_release(conn, fd);
	if (n >= 0)
		errno = saved_errno;
	return n;
}

/*
 * The end of a fast call whose check found a sleeping peer's flag
 * (tssx_ring_sleeper_raised()): the flag taken, under the side lock still
 * held; then a doorbell the peer needs, after
 * the lock, with a reference on the connection taken under it
 * (tssx_conn_keep) that keeps the connection for it.  Returns the call's
 * result, n.  Out of line and called last: rare (the first checks of a
 * ring, a peer going to sleep), and nothing of the fast path is live
 * across it.
 */
__attribute__((noinline)) ssize_t tssx_conn_fast_wake(struct tssx_conn *conn, int fd, ssize_t n, bool writer)
{
	struct tssx_side_lock *lock = writer ? &conn->locks->producer : &conn->locks->consumer;
	uint32_t bells = writer ? tssx_ring_take_bells(conn->tx, true) : tssx_ring_take_bells(conn->rx, false);
	int saved_errno;

	if (bells)
		tssx_conn_keep(conn);
	tssx_side_unlock(lock);
	if (!bells)
		return n;
	saved_errno = errno;
	ring_doorbell(conn, fd, bells, writer ? tssx_ring_reader_bell(conn->tx) : tssx_ring_writer_bell(conn->rx));
	tssx_conn_release(conn, fd);
	errno = saved_errno;
	return n;
}

static ssize_t conn_recv(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt, int flags,
			 uint32_t interrupts)
{
	int saved_errno = errno;
	bool kept = false;
	ssize_t n = recv_stream(conn, fd, iov, iovcnt, flags, NULL, &kept, interrupts);

	return call_done(conn, fd, kept, n, saved_errno);
}

/* The general path behind the fast one, with write(2)'s result. */
__attribute__((noinline)) ssize_t tssx_conn_send_general(struct tssx_conn *conn, int fd, const void *buf, size_t len,
							  int flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return tssx_result(tssx_conn_send(conn, fd, &iov, 1, flags));
}

/* interrupts: the count of handled signals when the read began. */
__attribute__((noinline)) ssize_t tssx_conn_recv_general(struct tssx_conn *conn, int fd, void *buf, size_t len,
							  int flags, uint32_t interrupts)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return tssx_result(conn_recv(conn, fd, &iov, 1, flags, interrupts));
}

/* The fast path of any size (the copy may call the leaf), then the
 * general path: a write of more than a small message, or one that the
 * small path declined.  Out of line, and fd's slot looked up again: the
 * small path keeps no frame and fewer values. */
__attribute__((noinline)) ssize_t tssx_conn_write_sized(int fd, const void *buf, size_t len, int flags,
							struct tssx_conn *conn)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);
	ssize_t n = slot ? tssx_conn_move_fast(conn, slot, fd, true, (void *)buf, len, false) : 0;

	if (likely(n > 0))
		return n;
	if (n < 0)
		return tssx_result(n);
	return tssx_conn_send_general(conn, fd, buf, len, flags);
}

/*
 * A read that the small path did not serve (`tried`) or did not try: the
 * fast path of any size, unless the small path found the ring empty.
 * A blocking read that finds it empty, in a thread whose last wait was
 * answered while it spun on a CPU of its own, polls the tail for a few
 * microseconds (tssx_spin_quick()) and, when bytes came, takes them by
 * the fast path: a request and its answer then cost the reader no second
 * lock, no reference on the connection, no spin slot and no statistics'
 * locked adds (docs/data-path.md, "The quick spin").  Everything else,
 * and what the quick spin did not find, is the general path's.  A read
 * that the small path did not try loads no word of the producer's here
 * before the fast path: that path loads the tail only when the tail this
 * process saw does not allow the read (a load of the peer's line at
 * every read is what the streaming regression was, docs/benchmark.md).
 * Out of line, and fd's slot looked up again: the small path keeps no
 * frame and fewer values.
 */
__attribute__((noinline)) ssize_t tssx_conn_read_sized(int fd, void *buf, size_t len, int flags,
						       struct tssx_conn *conn, bool tried)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);
	/* Before the quick spin: a handler that runs in it ends the call. */
	uint32_t interrupts = tssx_interrupt_mark();
	ssize_t n = 0;

	if (!slot)
		return tssx_conn_recv_general(conn, fd, buf, len, flags, interrupts);
	if (!tried || tssx_ring_data_came(conn->rx))
		n = tssx_conn_move_fast(conn, slot, fd, false, buf, len, false);
	/* Relaxed: as tssx_conn_nonblocking() reads it; unknown takes the general
	 * path, which asks the socket. */
	if (n == 0 && !(flags & MSG_DONTWAIT) &&
	    atomic_load_explicit(&conn->nonblock, memory_order_relaxed) == TSSX_BLOCKING &&
	    !tssx_ring_data_came(conn->rx) && tssx_spin_quick(conn->rx))
		n = tssx_conn_move_fast(conn, slot, fd, false, buf, len, false);
	if (likely(n > 0))
		return n;
	if (n < 0)
		return tssx_result(n);
	return tssx_conn_recv_general(conn, fd, buf, len, flags, interrupts);
}

ssize_t tssx_conn_send(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt, int flags)
{
	int saved_errno = errno;
	bool kept = false;
	ssize_t n = send_stream(conn, fd, iov, iovcnt, flags, NULL, &kept);

	return call_done(conn, fd, kept, n, saved_errno);
}

ssize_t tssx_conn_recv(struct tssx_conn *conn, int fd, const struct iovec *iov, int iovcnt, int flags)
{
	return conn_recv(conn, fd, iov, iovcnt, flags, tssx_interrupt_mark());
}

ssize_t tssx_conn_sendmsg(struct tssx_conn *conn, int fd, const struct msghdr *msg, int flags)
{
	const struct msghdr *control = msg->msg_controllen && CMSG_FIRSTHDR(msg) ? msg : NULL;
	int saved_errno = errno;
	bool kept = false;
	ssize_t n = send_stream(conn, fd, msg->msg_iov, (int)msg->msg_iovlen, flags, control, &kept);

	return call_done(conn, fd, kept, n, saved_errno);
}

ssize_t tssx_conn_recvmsg(struct tssx_conn *conn, int fd, struct msghdr *msg, int flags)
{
	struct tssx_ancillary_want anc = { .msg = msg, .flags = flags };
	size_t controllen = msg->msg_controllen;
	int saved_errno = errno, msg_flags = msg->msg_flags;
	bool kept = false;
	ssize_t n;

	msg->msg_flags = 0;
	if (!msg->msg_control)
		msg->msg_controllen = 0;
	n = recv_stream(conn, fd, msg->msg_iov, (int)msg->msg_iovlen, flags, &anc, &kept, tssx_interrupt_mark());
	if (n < 0) {
		/* As the kernel: a failed call leaves msg alone, and a caller
		 * that retries after EINTR (CPython) passes it again. */
		msg->msg_controllen = controllen;
		msg->msg_flags = msg_flags;
		return call_done(conn, fd, kept, n, saved_errno);
	}
	/* The peer's credentials are asked on fd: only while it is still
	 * this connection's. */
	if (n > 0 && !anc.delivered && tssx_conn_owns_fd(conn, fd))
		tssx_ancillary_peer_credentials(fd, &anc);
	if (!anc.delivered)
		msg->msg_controllen = 0;
	return call_done(conn, fd, kept, n, saved_errno);
}

int tssx_conn_shutdown(struct tssx_conn *conn, int fd, int how)
{
	/* The hello is on its way right behind the connect: wait for it a
	 * little, a client that never sends it fails the connection. */
	int ret = tssx_conn_establish(conn, fd, 1000);

	if (ret == -EAGAIN)
		ret = tssx_conn_fail(conn, fd, ECONNRESET, "no hello before shutdown");
	if (ret < 0)
		return ret;
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	if (how != SHUT_WR) {
		atomic_store(&conn->read_shut, true);
		tssx_ring_shut_read(conn->rx);
	}
	if (how != SHUT_RD) {
		int wake;

		atomic_store(&conn->write_shut, true);
		tssx_ring_shut_write(conn->tx);
		/* Seq_cst, after the flag: a writer asleep for room on the wake
		 * fd, or about to be, sees one or the other (wait_ring). */
		wake = atomic_load(&conn->wake.fd);
		if (wake >= 0)
			(void)!TSSX_REAL(write)(wake, &(uint64_t){ 1 }, sizeof(uint64_t));
	}
	/* Unconditionally: the peer may watch the socket with epoll without a
	 * flag armed, and must see the end of the stream, or that its writes
	 * now fail.  This side's epoll sets get no doorbell of it.  Every
	 * futex sleeper of either end re-checks too: the peer's for the end
	 * of the stream or its writes' failure, this process's for its own
	 * shutdown (after the flags above, seq_cst: tssx_bell_seen()). */
	ring_socket(conn, fd);
	tssx_bell_ring(tssx_ring_reader_bell(conn->tx));
	tssx_bell_ring(tssx_ring_writer_bell(conn->rx));
	tssx_bell_wake_own(conn);
	tssx_unseen_changed();
	/* The kernel's shutdown of the reading side wakes every call asleep
	 * on the socket, in every thread and fork (recv(), poll(),
	 * epoll_wait()), as on a plain socket: they find the ring's flag.
	 * The peer's doorbells no longer reach this side then; its own keep
	 * going, so SHUT_WR stays in the ring. */
	if (how != SHUT_WR && tssx_conn_owns_fd(conn, fd))
		TSSX_REAL(shutdown)(fd, how);
	return 0;
}

/* Readable bytes of rx, or writable of tx; 0 before the hello. */
static ssize_t ring_count(struct tssx_conn *conn, int fd, bool readable)
{
	ssize_t n;

	if (usable(conn, fd, MSG_DONTWAIT) < 0)
		return 0;
	n = readable ? tssx_ring_readable(conn->rx) : tssx_ring_writable(conn->tx);
	return n < 0 ? ring_broken(conn, fd) : n;
}

ssize_t tssx_conn_inq(struct tssx_conn *conn, int fd)
{
	return ring_count(conn, fd, true);
}

ssize_t tssx_conn_room(struct tssx_conn *conn, int fd)
{
	return ring_count(conn, fd, false);
}

ssize_t tssx_conn_outq(struct tssx_conn *conn, int fd)
{
	ssize_t room = ring_count(conn, fd, false);

	if (room < 0 || usable(conn, fd, MSG_DONTWAIT) < 0)
		return room < 0 ? room : 0;
	return (ssize_t)conn->tx->capacity - room;
}

/* ---- What the event-loop wrappers use ---- */

static uint32_t ready_of_failed(uint32_t events)
{
	/* Every call reports the error at once. */
	return POLLERR | POLLHUP | (events & (POLLIN | POLLOUT | POLLRDHUP));
}

bool tssx_conn_room_unowed(struct tssx_conn *conn)
{
	return atomic_load_explicit(&conn->state, memory_order_acquire) == TSSX_CONN_READY &&
	       !atomic_load(&conn->ring_filled) && tssx_unseen_held_alone(conn) && tssx_ring_writable(conn->tx) > 0;
}

uint32_t tssx_conn_ready(struct tssx_conn *conn, uint32_t events)
{
	int fd = atomic_load(&conn->fd);
	uint32_t ready = 0;
	ssize_t readable, writable;

	if (usable(conn, fd, MSG_DONTWAIT) < 0) {
		if (atomic_load(&conn->state) == TSSX_CONN_FAILED)
			return ready_of_failed(events);
		return events & POLLOUT; /* a fresh socket's readiness */
	}
	/* Only the rings of the directions asked about: the other ring's
	 * counters are on lines the peer writes, a cache miss per look for
	 * nothing (a reader's event loop asks for POLLIN alone).  A ring
	 * broken in the direction not asked about fails the call that uses
	 * it, or the next look that asks. */
	readable = events & POLLIN ? tssx_ring_readable(conn->rx) : 0;
	writable = events & POLLOUT ? tssx_ring_writable(conn->tx) : 0;
	if (readable < 0 || writable < 0) {
		ring_broken(conn, fd);
		return ready_of_failed(events);
	}
	if (readable > 0 || ((events & POLLIN) && peer_done_writing(conn)))
		ready |= POLLIN;
	if ((events & POLLRDHUP) && peer_done_writing(conn))
		ready |= POLLRDHUP;
	if (atomic_load(&conn->peer_closed) || (atomic_load(&conn->read_shut) && atomic_load(&conn->write_shut)))
		ready |= POLLHUP;
	/* A write that would fail at once (EPIPE) is ready too. */
	if ((events & POLLOUT) && (writable > 0 || atomic_load(&conn->peer_closed) ||
				   atomic_load(&conn->write_shut) || peer_stopped_reading(conn)))
		ready |= POLLOUT;
	return ready & (events | POLLHUP | POLLERR);
}

enum tssx_arm tssx_conn_arm(struct tssx_conn *conn, uint32_t events, uint32_t bell, bool *held)
{
	if (atomic_load_explicit(&conn->state, memory_order_acquire) != TSSX_CONN_READY) {
		bool pending;

		/* Whoever takes the hello (a re-check, another thread's read)
		 * arms these as the handshake completes: taking it consumes
		 * what would have woken the real socket.  When another thread
		 * takes it while this one sleeps, bytes the peer wrote before
		 * that arm rang no doorbell (the flag was not up yet), and the
		 * hello it consumed no longer wakes this sleeper. */
		pthread_mutex_lock(&conn->handshake_lock);
		pending = atomic_load(&conn->state) == TSSX_CONN_HELLO_PENDING;
		if (pending)
			conn->armed_while_pending |= events & (POLLIN | POLLOUT);
		pthread_mutex_unlock(&conn->handshake_lock);
		if (pending)
			return TSSX_ARM_RECHECK;
		if (atomic_load(&conn->state) != TSSX_CONN_READY)
			return TSSX_ARM_DOORBELL; /* failed or closed: the socket tells */
	}
	if (events & (POLLIN | POLLOUT)) {
		enum tssx_hold hold = !held ? TSSX_HOLD_STICKY : *held ? TSSX_HOLD_KEPT : TSSX_HOLD_COUNTED;

		if (events & POLLIN)
			tssx_hold_raise(conn, true, bell, hold);
		if (events & POLLOUT)
			tssx_hold_raise(conn, false, bell, hold);
		if (held)
			*held = true;
	}
	/* After this side's SHUT_RD (wait_ring) the socket reads EOF for
	 * good and takes no doorbells. */
	if (tssx_ring_read_shut(conn->rx))
		return TSSX_ARM_NO_DOORBELL;
	return TSSX_ARM_DOORBELL;
}

void tssx_conn_disarm(struct tssx_conn *conn, uint32_t events, uint32_t bell)
{
	if (events & POLLIN)
		tssx_hold_leave(conn, true, bell);
	if (events & POLLOUT)
		tssx_hold_leave(conn, false, bell);
}

void tssx_conn_drain(struct tssx_conn *conn, uint32_t revents)
{
	int fd = atomic_load(&conn->fd);

	/* A pending connection's socket holds the hello, not doorbells. */
	if (usable(conn, fd, MSG_DONTWAIT) == 0)
		drain_as_guest(conn, fd, revents);
}

uint64_t tssx_conn_generation(struct tssx_conn *conn)
{
	uint64_t state;

	if (atomic_load_explicit(&conn->state, memory_order_acquire) != TSSX_CONN_READY)
		return (uint64_t)atomic_load(&conn->state) << 60;
	/* Counters only grow: their sum changes whenever either ring moved. */
	state = (uint64_t)peer_done_writing(conn) | (uint64_t)atomic_load(&conn->peer_closed) << 1 |
		(uint64_t)atomic_load(&conn->write_shut) << 2 | (uint64_t)peer_stopped_reading(conn) << 3;
	return tssx_ring_produced(conn->rx) + tssx_ring_consumed(conn->tx) + (state << 60);
}
