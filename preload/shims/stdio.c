/*
 * stdio on connections: fdopen() and the standard streams.
 *
 * glibc's FILE streams move their bytes with its internal read and write,
 * which no wrapper sees: on a connection they would read the real socket,
 * which carries only doorbells, and write around the rings.  A stream on a
 * connection is instead a fopencookie() stream whose read, write, seek and
 * close are this library's wrappers: fdopen() makes one for a connection,
 * and stdin, stdout or stderr are replaced by one when fd 0, 1 or 2 is a
 * connection (at start for those an exec handed over, later when a dup
 * lands one there).  Its _fileno is the fd, so that fileno(), freopen()
 * and everything else that asks a stream for its fd see the stream's fd
 * (docs/preload.md, "stdio").
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <unistd.h>

#include "real_slots.h"
#include "shims/shims.h"
#include "tssx/log.h"
#include "tssx/macros.h"

/* Whether any connection stream was made: only then does the exit flush
 * them early (tssx_stdio_flush()). */
static atomic_bool made_any;

/* The standard streams this library made, by fd: a dup onto the fd again
 * keeps the stream. */
static FILE *_Atomic standard_made[3];

static int cookie_fd(void *cookie)
{
	return (int)(intptr_t)cookie;
}

static ssize_t stream_read(void *cookie, char *buf, size_t len)
{
	return read(cookie_fd(cookie), buf, len);
}

/* As glibc's file streams write: the whole buffer, or what was written
 * before the first error, which glibc then flags (ferror(), fflush()
 * returns EOF, errno the write's). */
static ssize_t stream_write(void *cookie, const char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(cookie_fd(cookie), buf + done, len - done);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* A socket cannot seek: the real lseek() says so with ESPIPE, which
 * glibc's fflush() and fclose() of a read stream ignore, as for a plain
 * socket's stream. */
static int stream_seek(void *cookie, off64_t *offset, int whence)
{
	off64_t at = lseek64(cookie_fd(cookie), *offset, whence);

	if (at < 0)
		return -1;
	*offset = at;
	return 0;
}

static int stream_close(void *cookie)
{
	return close(cookie_fd(cookie));
}

/* A stream on fd that moves its bytes through the wrappers; mode as
 * fdopen() reads it: its first letter, and a '+' among the next four. */
static FILE *connection_stream(int fd, const char *mode)
{
	static const cookie_io_functions_t io = {
		.read = stream_read,
		.write = stream_write,
		.seek = stream_seek,
		.close = stream_close,
	};
	char cookie_mode[3] = { mode[0] };
	FILE *stream;

	for (int i = 1; i < 5 && mode[0] && mode[i]; i++) {
		if (mode[i] == '+') {
			cookie_mode[1] = '+';
			break;
		}
	}
	stream = fopencookie((void *)(intptr_t)fd, cookie_mode, io);
	if (!stream)
		return NULL;
	/* glibc marks a cookie stream with -2 ("no file, but treat it as
	 * one"); its stream functions only compare _fileno with -1. */
	stream->_fileno = fd;
	atomic_store(&made_any, true);
	return stream;
}

TSSX_EXPORT FILE *fdopen(int fd, const char *mode)
{
	int flags;

	if (likely(!tssx_conn_lookup(fd)))
		return TSSX_REAL(fdopen)(fd, mode);
	/* fdopen()'s one change to the fd: append mode sets O_APPEND. */
	if (mode[0] == 'a' && (flags = fcntl(fd, F_GETFL)) >= 0 && !(flags & O_APPEND) &&
	    fcntl(fd, F_SETFL, flags | O_APPEND) < 0)
		return NULL;
	return connection_stream(fd, mode);
}

/* What the old standard stream holds for its fd goes to the new one:
 * output not yet written goes first, input read ahead is read first
 * (pushed back, last byte first), as if the stream had not changed. */
static void move_buffered(FILE *old, FILE *stream)
{
	size_t pending = __fpending(old);
	const char *ahead = old->_IO_read_ptr;

	if (pending)
		fwrite(old->_IO_write_base, 1, pending, stream);
	if (__freading(old))
		for (const char *p = old->_IO_read_end; p > ahead; p--)
			ungetc((unsigned char)p[-1], stream);
	__fpurge(old);
}

void tssx_stdio_adopt(int fd)
{
	FILE **standard = fd == STDIN_FILENO ? &stdin : fd == STDOUT_FILENO ? &stdout : &stderr;
	FILE *old = *standard, *stream;
	int buffering = -1;

	/* Made here already (compared first: the program may have closed
	 * it, which frees it), or not a standard stream of fd any more
	 * (closed, freopen'd to another fd, or assigned by the program). */
	if (!old || old == atomic_load(&standard_made[fd]) || old->_fileno != fd)
		return;
	stream = connection_stream(fd, fd == STDIN_FILENO ? "r" : "w");
	if (!stream) {
		log_error(0, "fd %d: no stdio stream for the connection: %m", fd);
		return;
	}
	/* The buffering glibc gives the fd (stderr unbuffered, the rest fully
	 * buffered, as on any socket), or the program's choice. */
	if (fd == STDERR_FILENO || __fbufsize(old) == 1)
		buffering = _IONBF;
	else if (__flbf(old))
		buffering = _IOLBF;
	if (buffering >= 0)
		setvbuf(stream, NULL, buffering, BUFSIZ);
	flockfile(old);
	move_buffered(old, stream);
	*standard = stream;
	funlockfile(old);
	atomic_store(&standard_made[fd], stream);
}

void tssx_stdio_flush(void)
{
	if (atomic_load(&made_any))
		fflush(NULL);
}
