/*
 * Ancillary data in stream order (ancillary.h, docs/preload.md).
 *
 * On the real socket a record is one 24-byte message whose first byte is
 * not zero (doorbells are zero bytes) with the sender's control data
 * attached, so the kernel passes the fds and checks the credentials.  The
 * kernel ends a read after a message that carries fds, so one read of the
 * socket yields at most one record with fds, and it comes last.  Readers of
 * the socket (any thread that drains doorbells) queue the records; the
 * reader of the ring takes them when its head reaches their offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn/ancillary.h"
#include "conn/connection.h"
#include "conn/fault.h"
#include "real_slots.h"
#include "tssx/log.h"
#include "tssx/macros.h"

#define RECORD_MAGIC 0x434e4154u /* "TANC": its first byte is not zero */
#define MAX_FDS 253              /* SCM_MAX_FD: the kernel's limit per message */
/* Records queued ahead of the reader: a peer that announces more is hostile. */
#define MAX_PENDING 4096

struct wire_record {
	uint32_t magic;
	uint32_t nfds;   /* fds the sender attached */
	uint64_t offset; /* stream offset of the message's first byte */
	uint64_t length; /* bytes of the message */
};

struct tssx_ancillary_record {
	struct tssx_ancillary_record *next;
	uint64_t offset, length;
	bool has_creds;
	bool truncated; /* this process could not take all its fds */
	struct ucred creds;
	int nfds;
	int fds[];
};

/* Room for everything the kernel may attach to one read. */
union control_buffer {
	char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(MAX_FDS * sizeof(int))];
	struct cmsghdr align;
};

void tssx_ancillary_init(struct tssx_ancillary_queue *queue)
{
	pthread_mutex_init(&queue->lock, NULL);
	queue->first = queue->last = NULL;
	queue->count = 0;
}

static void close_fds(const int *fds, int nfds)
{
	for (int i = 0; i < nfds; i++)
		TSSX_REAL(close)(fds[i]);
}

void tssx_ancillary_release(struct tssx_ancillary_queue *queue)
{
	struct tssx_ancillary_record *rec, *next;

	for (rec = queue->first; rec; rec = next) {
		next = rec->next;
		close_fds(rec->fds, rec->nfds);
		free(rec);
	}
	queue->first = queue->last = NULL;
	queue->count = 0;
	pthread_mutex_destroy(&queue->lock);
}

static uint32_t count_fds(const struct msghdr *msg)
{
	uint32_t nfds = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(0))
			nfds += (uint32_t)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
	}
	return nfds;
}

int tssx_ancillary_send(struct tssx_conn *conn, int fd, const struct msghdr *msg, uint64_t length,
			bool nonblocking)
{
	struct wire_record rec = {
		.magic = RECORD_MAGIC,
		.nfds = count_fds(msg),
		/* Under the producer lock the tail is ours alone. */
		.offset = tssx_ring_produced(conn->tx),
		.length = length,
	};
	struct iovec iov = { .iov_base = &rec, .iov_len = sizeof(rec) };
	struct msghdr out = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = msg->msg_control,
		.msg_controllen = msg->msg_controllen,
	};
	ssize_t n;

	do
		n = TSSX_REAL(sendmsg)(fd, &out, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	atomic_fetch_add_explicit(&conn->stats.sock_sent, (uint64_t)n, memory_order_relaxed);
	/* A Unix stream socket queues a small message whole or not at all. */
	if (n != (ssize_t)sizeof(rec))
		return tssx_conn_fail(conn, fd, EPROTO, "ancillary record cut short");
	/* The record is on the socket before a reader that sees the count
	 * (and, since the bytes are published after it, before any reader
	 * that sees the message's bytes) looks for it. */
	tssx_ring_count_ancillary(conn->tx);
	return 0;
}

/* What the kernel attached to one read of the real socket. */
struct attached {
	int nfds, used;
	bool has_creds, truncated;
	struct ucred creds;
	int fds[MAX_FDS]; /* only the first nfds are ever read */
};

/* Every field but the fds: a sleeper receives its doorbells here, and
 * zeroing those 1 KB every time was work for nothing. */
static void attached_init(struct attached *att)
{
	att->nfds = 0;
	att->used = 0;
	att->has_creds = false;
	att->truncated = false;
	att->creds = (struct ucred){ 0 };
}

static void collect_control(struct msghdr *msg, struct attached *att)
{
	att->truncated = msg->msg_flags & MSG_CTRUNC;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t len = c->cmsg_len - CMSG_LEN(0);

		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS && len == sizeof(att->creds)) {
			memcpy(&att->creds, CMSG_DATA(c), sizeof(att->creds));
			att->has_creds = true;
		} else if (c->cmsg_type == SCM_RIGHTS) {
			int n = (int)(len / sizeof(int));

			if (n > MAX_FDS - att->nfds)
				n = MAX_FDS - att->nfds;
			memcpy(att->fds + att->nfds, CMSG_DATA(c), (size_t)n * sizeof(int));
			att->nfds += n;
		}
	}
}

/* A record's fds: the kernel attached them to this read, and only the
 * record that carries fds ends a read, so they are all its own. */
static struct tssx_ancillary_record *record_new(const struct wire_record *wire, struct attached *att)
{
	int nfds = wire->nfds ? att->nfds - att->used : 0;
	struct tssx_ancillary_record *rec = malloc(sizeof(*rec) + (size_t)nfds * sizeof(int));

	if (!rec)
		return NULL;
	*rec = (struct tssx_ancillary_record){
		.offset = wire->offset,
		.length = wire->length,
		.has_creds = att->has_creds,
		.truncated = wire->nfds && (att->truncated || (uint32_t)nfds < wire->nfds),
		.creds = att->creds,
		.nfds = nfds,
	};
	memcpy(rec->fds, att->fds + att->used, (size_t)nfds * sizeof(int));
	att->used += nfds;
	return rec;
}

static int queue_record(struct tssx_conn *conn, const struct wire_record *wire, struct attached *att,
			const char **why)
{
	struct tssx_ancillary_queue *queue = &conn->ancillary;
	struct tssx_ancillary_record *rec;

	if (wire->nfds > MAX_FDS || wire->length == 0 || (wire->nfds && att->used == att->nfds && !att->truncated)) {
		*why = "bad ancillary record";
		return -EPROTO;
	}
	rec = record_new(wire, att);
	if (!rec) {
		*why = "no memory for ancillary data";
		return -ENOMEM;
	}
	pthread_mutex_lock(&queue->lock);
	if (queue->count >= MAX_PENDING) {
		pthread_mutex_unlock(&queue->lock);
		close_fds(rec->fds, rec->nfds);
		free(rec);
		*why = "too many ancillary records";
		return -EPROTO;
	}
	if (queue->last)
		queue->last->next = rec;
	else
		queue->first = rec;
	queue->last = rec;
	queue->count++;
	pthread_mutex_unlock(&queue->lock);
	return 0;
}

/* The rest of a record cut by the end of the read buffer: the kernel
 * queued it whole, so it is there. */
static int read_rest(struct tssx_conn *conn, int fd, char *to, size_t len)
{
	ssize_t n = TSSX_REAL(recv)(fd, to, len, MSG_DONTWAIT);

	if (n > 0)
		atomic_fetch_add_explicit(&conn->stats.sock_received, (uint64_t)n, memory_order_relaxed);
	return n == (ssize_t)len ? 0 : -EPROTO;
}

/* Whether the first `have` bytes can begin a record. */
static bool starts_record(const struct wire_record *wire, size_t have)
{
	uint32_t magic = RECORD_MAGIC;

	return memcmp(&wire->magic, &magic, have < sizeof(magic) ? have : sizeof(magic)) == 0;
}

#define BYPASSED "stream bytes on the real socket: the peer wrote around the library"

/* Whether a byte at buf (have bytes there, at most a record's header)
 * that is not a doorbell starts no record either. */
static bool bypassed(const char *buf, size_t have)
{
	struct wire_record wire;

	if (have > sizeof(wire))
		have = sizeof(wire);
	memcpy(&wire, buf, have);
	return !starts_record(&wire, have);
}

void tssx_ancillary_check_bypass(struct tssx_conn *conn, int fd)
{
	char buf[64];
	ssize_t n = TSSX_REAL(recv)(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	ssize_t pos = 0;

	while (pos < n && !buf[pos])
		pos++;
	if (pos < n && bypassed(buf + pos, (size_t)(n - pos)))
		tssx_conn_fail(conn, fd, EPROTO, BYPASSED);
}

/* Walks one read: zero bytes are doorbells, anything else starts a record. */
static int parse_read(struct tssx_conn *conn, int fd, const char *buf, size_t len, struct attached *att,
		      const char **why)
{
	size_t pos = 0;

	while (pos < len) {
		struct wire_record wire;
		size_t have = len - pos;
		int ret;

		if (!buf[pos]) {
			pos++;
			continue;
		}
		if (bypassed(buf + pos, have)) {
			*why = BYPASSED;
			return -EPROTO;
		}
		if (have > sizeof(wire))
			have = sizeof(wire);
		memcpy(&wire, buf + pos, have);
		if (have < sizeof(wire) && read_rest(conn, fd, (char *)&wire + have, sizeof(wire) - have) < 0) {
			*why = "ancillary record cut short";
			return -EPROTO;
		}
		ret = queue_record(conn, &wire, att, why);
		if (ret < 0)
			return ret;
		pos += have;
	}
	if (att->used != att->nfds) {
		*why = "fds on the real socket without a record";
		return -EPROTO;
	}
	return 0;
}

ssize_t tssx_ancillary_read_socket(struct tssx_conn *conn, int fd, int flags, const char **why)
{
	char buf[TSSX_SOCKET_READ_BYTES];
	union control_buffer control;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct attached att;
	ssize_t n;
	int ret;

	/* CLOEXEC until a recvmsg() hands them out as it was asked. */
	n = TSSX_REAL(recvmsg)(fd, &msg, flags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	atomic_fetch_add_explicit(&conn->stats.sock_received, (uint64_t)n, memory_order_relaxed);
	attached_init(&att);
	collect_control(&msg, &att);
	ret = parse_read(conn, fd, buf, (size_t)n, &att, why);
	if (ret < 0) {
		close_fds(att.fds + att.used, att.nfds - att.used);
		return ret;
	}
	return n;
}

/* ---- Reader ---- */

/* What the kernel attaches to every message when the application set
 * SO_PASSCRED and the sender gave none: the sender's credentials, here the
 * peer's (SO_PEERCRED). */
static bool peer_credentials(int fd, struct ucred *creds)
{
	socklen_t len = sizeof(*creds);
	int on = 0;
	socklen_t onlen = sizeof(on);

	return TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_PASSCRED, &on, &onlen) == 0 && on &&
	       TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_PEERCRED, creds, &len) == 0;
}

/* Appends one control message as put_cmsg() does: what does not fit is
 * cut off and MSG_CTRUNC set. */
static void *put_control(struct msghdr *msg, size_t *used, int type, size_t len)
{
	size_t room = msg->msg_controllen - *used;
	struct cmsghdr *c = (struct cmsghdr *)((char *)msg->msg_control + *used);

	if (room < CMSG_LEN(len)) {
		msg->msg_flags |= MSG_CTRUNC;
		return NULL;
	}
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(len);
	*used += CMSG_SPACE(len) < room ? CMSG_SPACE(len) : room;
	return CMSG_DATA(c);
}

static void put_credentials(struct tssx_ancillary_want *want, size_t *used, const struct ucred *creds)
{
	void *data = put_control(want->msg, used, SCM_CREDENTIALS, sizeof(*creds));

	if (data)
		memcpy(data, creds, sizeof(*creds));
}

/* The fds that fit go to the application (a peek gets copies), the rest
 * is closed; MSG_CTRUNC as the kernel sets it. */
static void put_fds(struct tssx_ancillary_want *want, size_t *used, const struct tssx_ancillary_record *rec)
{
	struct msghdr *msg = want->msg;
	bool peek = want->flags & MSG_PEEK, cloexec = want->flags & MSG_CMSG_CLOEXEC;
	size_t room = msg->msg_controllen - *used;
	int fit = room > CMSG_LEN(0) ? (int)((room - CMSG_LEN(0)) / sizeof(int)) : 0, given = 0;
	int *data;

	if (fit > rec->nfds)
		fit = rec->nfds;
	data = fit ? put_control(msg, used, SCM_RIGHTS, (size_t)fit * sizeof(int)) : NULL;
	for (int i = 0; data && i < fit; i++) {
		int out = peek ? TSSX_REAL(fcntl)(rec->fds[i], cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0) : rec->fds[i];

		if (out < 0)
			break;
		if (!peek && !cloexec)
			TSSX_REAL(fcntl)(out, F_SETFD, 0);
		memcpy(data + given++, &out, sizeof(out));
	}
	if (data && given < fit) {
		/* Out of fds while copying for a peek: say so, as the kernel. */
		((struct cmsghdr *)((char *)data - CMSG_LEN(0)))->cmsg_len = CMSG_LEN((size_t)given * sizeof(int));
		msg->msg_flags |= MSG_CTRUNC;
	}
	if (!peek)
		close_fds(rec->fds + given, rec->nfds - given);
	if (given < rec->nfds || rec->truncated)
		msg->msg_flags |= MSG_CTRUNC;
}

/* Whether the caller gave a control buffer that can take control data.
 * One it cannot write gets none, as from the kernel: the fds are closed
 * (MSG_CTRUNC) and the bytes still returned (conn/fault.h). */
static bool can_take_control(const struct msghdr *msg)
{
	struct iovec control = { .iov_base = msg->msg_control, .iov_len = msg->msg_controllen };

	return control.iov_base && control.iov_len && tssx_fault_can_access(&control, 1, control.iov_len, true);
}

/* Gives the record's control data to the caller, or drops it. */
static void deliver(int fd, const struct tssx_ancillary_record *rec, struct tssx_ancillary_want *want)
{
	struct ucred creds;
	size_t used = 0;

	if (!want || !can_take_control(want->msg)) {
		if (want && (rec->nfds || rec->truncated))
			want->msg->msg_flags |= MSG_CTRUNC;
		if (!(want && (want->flags & MSG_PEEK)))
			close_fds(rec->fds, rec->nfds);
		return;
	}
	if (rec->has_creds)
		put_credentials(want, &used, &rec->creds);
	else if (peer_credentials(fd, &creds))
		put_credentials(want, &used, &creds);
	if (rec->nfds || rec->truncated)
		put_fds(want, &used, rec);
	want->msg->msg_controllen = used;
	want->delivered = true;
}

/* The oldest queued record whose message ends after stream offset `pos`;
 * reads the socket while none is queued and fewer than the `ahead`
 * announced records are. */
static struct tssx_ancillary_record *record_from(struct tssx_conn *conn, int fd, uint64_t pos, uint32_t ahead)
{
	const char *why = NULL;

	for (int round = 0; round < 64; round++) {
		struct tssx_ancillary_record *rec;
		unsigned queued;
		ssize_t n;

		pthread_mutex_lock(&conn->ancillary.lock);
		for (rec = conn->ancillary.first; rec && rec->offset + rec->length <= pos; rec = rec->next)
			;
		queued = conn->ancillary.count;
		pthread_mutex_unlock(&conn->ancillary.lock);
		if (rec || queued >= ahead)
			return rec;
		n = tssx_ancillary_read_socket(conn, fd, MSG_DONTWAIT, &why);
		if (n <= 0) {
			if (why)
				tssx_conn_fail(conn, fd, EPROTO, why);
			return NULL;
		}
	}
	return NULL;
}

static void pop_record(struct tssx_conn *conn, struct tssx_ancillary_record *rec)
{
	pthread_mutex_lock(&conn->ancillary.lock);
	conn->ancillary.first = rec->next;
	if (!rec->next)
		conn->ancillary.last = NULL;
	conn->ancillary.count--;
	pthread_mutex_unlock(&conn->ancillary.lock);
	tssx_ring_take_ancillary(conn->rx);
}

static ssize_t limit_at_record(struct tssx_conn *conn, int fd, size_t skip, size_t avail, size_t done,
			       bool *stop, struct tssx_ancillary_record **at, uint32_t ahead)
{
	uint64_t head = tssx_ring_consumed(conn->rx), pos = head + skip;
	/* A read takes the oldest record; a peek the one its offset reaches. */
	struct tssx_ancillary_record *rec = record_from(conn, fd, skip ? pos : 0, ahead);

	if (!rec) {
		/* A peek past every message with control data reads on. */
		return skip ? (ssize_t)avail
			    : tssx_conn_fail(conn, fd, EPROTO, "ancillary data announced but not on the socket");
	}
	if (rec->offset < head)
		return tssx_conn_fail(conn, fd, EPROTO, "ancillary data behind the stream");
	if (rec->offset > pos)
		return (ssize_t)(rec->offset - pos < avail ? rec->offset - pos : avail);
	/* Control data begins here: not in a call that returned bytes before
	 * it, and not before its first byte is there.  A peek at an offset
	 * inside the message reads to its end without it (it goes with the
	 * message's first byte). */
	*stop = true;
	if (done || !avail)
		return 0;
	if (rec->offset == pos)
		*at = rec;
	return (ssize_t)(rec->offset + rec->length - pos < avail ? rec->offset + rec->length - pos : avail);
}

ssize_t tssx_ancillary_limit(struct tssx_conn *conn, int fd, size_t skip, size_t avail, size_t done, bool *stop,
			     struct tssx_ancillary_record **at)
{
	uint32_t ahead = tssx_ring_ancillary_ahead(conn->rx);

	if (ahead == 0)
		return (ssize_t)avail;
	if (ahead > MAX_PENDING)
		return tssx_conn_fail(conn, fd, EPROTO, "ancillary counter corrupted");
	/* A call that keeps the connection may have lost fd to another
	 * thread's close() (connection.h): the socket is read and asked for
	 * credentials only through a number that is still this connection's,
	 * or the copy kept for the call. */
	fd = tssx_conn_socket(conn, fd);
	if (fd < 0)
		return -EBADF;
	return limit_at_record(conn, fd, skip, avail, done, stop, at, ahead);
}

void tssx_ancillary_taken(struct tssx_conn *conn, int fd, struct tssx_ancillary_record *at,
			  struct tssx_ancillary_want *want)
{
	deliver(fd, at, want);
	if (!(want && (want->flags & MSG_PEEK))) {
		pop_record(conn, at);
		free(at);
	}
}

void tssx_ancillary_peer_credentials(int fd, struct tssx_ancillary_want *want)
{
	struct msghdr *msg = want->msg;
	struct ucred creds;
	size_t used = 0;

	/* Only for a buffer that can hold them: the check costs two calls. */
	if (msg->msg_controllen < CMSG_LEN(sizeof(creds)) || !can_take_control(msg) || !peer_credentials(fd, &creds))
		return;
	put_credentials(want, &used, &creds);
	msg->msg_controllen = used;
	want->delivered = true;
}
