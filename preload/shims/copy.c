/*
 * sendfile() and splice() with a TSSX connection on either end: the kernel
 * cannot move bytes in or out of a ring, so they go through a buffer and
 * the connection's normal path, keeping their place in the stream.
 *
 * Nothing taken from the source may be lost: into a connection we take at
 * most what the ring has room for; out of a connection we peek, write, and
 * then consume exactly what the destination accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "real_slots.h"
#include "shims/shims.h"
#include "tssx/macros.h"

#define COPY_CHUNK (64 * 1024)

/* Reads at most len bytes from in_fd at *offset (advanced) or its position. */
static ssize_t read_source(int in_fd, void *buf, size_t len, off_t *offset)
{
	ssize_t n = offset ? pread(in_fd, buf, len, *offset) : read(in_fd, buf, len);

	if (n > 0 && offset)
		*offset += n;
	return n;
}

/* Gives back bytes read from in_fd that the connection did not take. */
static void unread_source(int in_fd, off_t *offset, size_t count)
{
	if (offset)
		*offset -= (off_t)count;
	else if (count)
		lseek(in_fd, -(off_t)count, SEEK_CUR);
}

static ssize_t copy_into_conn(struct tssx_conn *conn, int out_fd, int in_fd, off_t *offset,
			      size_t count, bool dontwait)
{
	__do_free char *buf = malloc(COPY_CHUNK);
	struct iovec iov;
	size_t done = 0;
	bool nonblock = tssx_conn_nonblocking(conn, out_fd, dontwait ? MSG_DONTWAIT : 0);
	ssize_t n = 0, sent;

	if (!buf)
		return -ENOMEM;
	while (done < count) {
		size_t len = count - done < COPY_CHUNK ? count - done : COPY_CHUNK;

		if (nonblock) {
			ssize_t room = tssx_conn_room(conn, out_fd);

			if (room <= 0) {
				if (room == 0)
					tssx_conn_ring_found_full(conn, out_fd);
				n = -EAGAIN;
				break;
			}
			if ((size_t)room < len)
				len = (size_t)room;
		}
		n = read_source(in_fd, buf, len, offset);
		if (n <= 0) {
			n = n < 0 ? -errno : 0;
			break;
		}
		iov = (struct iovec){ .iov_base = buf, .iov_len = (size_t)n };
		sent = tssx_conn_send(conn, out_fd, &iov, 1, 0);
		if (sent < n)
			unread_source(in_fd, offset, (size_t)(n - (sent < 0 ? 0 : sent)));
		if (sent < 0) {
			n = sent;
			break;
		}
		done += (size_t)sent;
		if (sent < n)
			break;
	}
	return done ? (ssize_t)done : n;
}

/* One round out of a connection: peek, write, consume what was written. */
static ssize_t copy_out_of_conn(struct tssx_conn *conn, int in_fd, int out_fd, size_t count, bool dontwait)
{
	__do_free char *buf = malloc(COPY_CHUNK);
	struct iovec iov = { .iov_base = buf, .iov_len = count < COPY_CHUNK ? count : COPY_CHUNK };
	ssize_t n, written;

	if (!buf)
		return -ENOMEM;
	n = tssx_conn_recv(conn, in_fd, &iov, 1, MSG_PEEK | (dontwait ? MSG_DONTWAIT : 0));
	if (n <= 0)
		return n;
	written = write(out_fd, buf, (size_t)n);
	if (written <= 0)
		return written < 0 ? -errno : 0;
	iov.iov_len = (size_t)written;
	return tssx_conn_recv(conn, in_fd, &iov, 1, MSG_DONTWAIT);
}

static ssize_t sendfile_common(int out_fd, int in_fd, off_t *offset, size_t count)
{
	struct tssx_conn *out = tssx_conn_lookup(out_fd), *in = tssx_conn_lookup(in_fd);

	if (in && offset)
		return tssx_result(-ESPIPE);
	if (out)
		return tssx_result(copy_into_conn(out, out_fd, in_fd, offset, count, false));
	return tssx_result(copy_out_of_conn(in, in_fd, out_fd, count, false));
}

TSSX_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	if (likely(!tssx_conn_lookup(out_fd) && !tssx_conn_lookup(in_fd)))
		return TSSX_REAL(sendfile)(out_fd, in_fd, offset, count);
	return sendfile_common(out_fd, in_fd, offset, count);
}

TSSX_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
	if (likely(!tssx_conn_lookup(out_fd) && !tssx_conn_lookup(in_fd)))
		return TSSX_REAL(sendfile64)(out_fd, in_fd, offset, count);
	return sendfile_common(out_fd, in_fd, (off_t *)offset, count);
}

TSSX_EXPORT ssize_t splice(int in_fd, loff_t *in_off, int out_fd, loff_t *out_off, size_t len,
			   unsigned int flags)
{
	struct tssx_conn *out = tssx_conn_lookup(out_fd), *in = tssx_conn_lookup(in_fd);
	bool dontwait = flags & SPLICE_F_NONBLOCK;

	if (likely(!out && !in))
		return TSSX_REAL(splice)(in_fd, in_off, out_fd, out_off, len, flags);
	/* A socket has no offset; splice() needs a pipe on one side, so a
	 * connection never meets another here. */
	if ((in && in_off) || (out && out_off) || (in && out))
		return tssx_result(-ESPIPE);
	if (out)
		return tssx_result(copy_into_conn(out, out_fd, in_fd, (off_t *)in_off, len, dontwait));
	return tssx_result(copy_out_of_conn(in, in_fd, out_fd, len, dontwait));
}
