/*
 * Ancillary data (SCM_RIGHTS, SCM_CREDENTIALS) of a TSSX connection, in
 * stream order (docs/preload.md "Ancillary data").
 *
 * The bytes of a sendmsg() go through the ring; its control data goes on
 * the real socket, which connects the same two processes, as a record that
 * names the stream offset of the message's first byte and its length.  The
 * kernel carries the fds and checks the credentials.  The producer counts
 * its records in the ring's ancillary_sent before it writes the bytes; a
 * reader compares that with ancillary_taken (one load of the peer's line)
 * and only when they differ looks at the records: a recvmsg() stops where a
 * message with control data begins, and the one that returns its first
 * byte gets the control data and stops at its end, as the kernel does.
 */
#ifndef TSSX_PRELOAD_CONN_ANCILLARY_H
#define TSSX_PRELOAD_CONN_ANCILLARY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>


struct tssx_conn;
struct tssx_ancillary_record;

/* Records read off the real socket and not yet reached by a reader of
 * this process, oldest first. */
struct tssx_ancillary_queue {
	pthread_mutex_t lock;
	struct tssx_ancillary_record *first, *last;
	unsigned count;
};

/* What a recvmsg() asks for; NULL for read() and recv(), which drop the
 * fds as the kernel does. */
struct tssx_ancillary_want {
	struct msghdr *msg; /* msg_control, msg_controllen, msg_flags (out) */
	int flags;          /* MSG_CMSG_CLOEXEC, MSG_PEEK */
	bool delivered;     /* control data was written to msg */
};

void tssx_ancillary_init(struct tssx_ancillary_queue *queue);
/* Closes the fds of records never read (the last fd of the connection). */
void tssx_ancillary_release(struct tssx_ancillary_queue *queue);

/*
 * Sender, holding this side's producer lock (side_lock.h), with room in
 * the ring for at least one byte: puts msg's control data on the real
 * socket with the offset where the next byte goes and the length of the
 * message, then counts it.  The caller then writes the bytes before it unlocks.
 * Returns 0, or -errno from the kernel (EBADF, EINVAL, EPERM for bad
 * control data, EAGAIN, EPIPE...): nothing was sent.
 */
int tssx_ancillary_send(struct tssx_conn *conn, int fd, const struct msghdr *msg, uint64_t length,
			bool nonblocking);

/*
 * Reader, holding this side's consumer lock, reading from `skip` bytes
 * past the head (a peek at SO_PEEK_OFF; 0 otherwise), with `avail` bytes
 * readable from there (loaded before this call) and `done` bytes already
 * returned by this call: how many bytes it may read now.  A read stops
 * where a message with control data begins; one that begins there may
 * read to the message's end and sets *stop (the call must return after
 * it) and *at: once it has read at least one byte, tssx_ancillary_taken()
 * hands the control data out.  At such a message after `done` bytes it
 * returns 0 with *stop set.  -EPROTO for records that do not fit the
 * stream; -EBADF when fd no longer refers to the connection (closed by
 * another thread under a call that keeps it).
 */
ssize_t tssx_ancillary_limit(struct tssx_conn *conn, int fd, size_t skip, size_t avail, size_t done, bool *stop,
			     struct tssx_ancillary_record **at);

/*
 * The read that began at record `at` returned bytes: its control data goes
 * into want (or is dropped), and unless the read only peeked, the record
 * is taken.  A read that returned nothing (EFAULT) leaves it queued, as
 * the kernel leaves a message whose copy faulted with its fds.
 */
void tssx_ancillary_taken(struct tssx_conn *conn, int fd, struct tssx_ancillary_record *at,
			  struct tssx_ancillary_want *want);

/* Bytes one read of the real socket asks for. */
#define TSSX_SOCKET_READ_BYTES 256

/*
 * Reads the real socket once (flags: MSG_DONTWAIT, or 0 to sleep in it):
 * doorbells (zero bytes) are counted and dropped, records queued.  Returns
 * the bytes read, 0 at EOF, -errno (-EAGAIN: nothing there); -EPROTO for
 * bytes that are neither (the peer wrote around the library) or a bad
 * record, with *why set.
 */
ssize_t tssx_ancillary_read_socket(struct tssx_conn *conn, int fd, int flags, const char **why);
/* For a watcher of the socket that does not read it (conn/bell.c): a
 * look without taking anything; bytes that are neither doorbells nor a
 * record fail the connection, as the read would. */
void tssx_ancillary_check_bypass(struct tssx_conn *conn, int fd);

/* Credentials for a recvmsg() that got no record, when the application
 * set SO_PASSCRED: the peer's, as the kernel attaches to every message. */
void tssx_ancillary_peer_credentials(int fd, struct tssx_ancillary_want *want);

#endif
