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
 *
 * A stream of glibc's own on an fd before it became a connection would
 * still read the real socket and write around the rings: connect() keeps
 * a socket with such a stream plain, and a connection that lands on the
 * fd of one (dup2, dup3, F_DUPFD, accept) makes its reads and writes fail
 * with EBADF (docs/preload.md, "Streams older than their connection").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <unistd.h>
#include <wchar.h>

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

/* The function table of the library's streams (glibc's for cookie
 * streams): a stream with it and an fd is one of ours.  glibc's struct
 * _IO_FILE_plus is the FILE and that pointer after it, the layout every
 * program built against glibc has copied stdin's size from since 2.1. */
static const void *_Atomic library_table;

static const void *function_table(FILE *stream)
{
	return *(const void *const *)(stream + 1);
}

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
	atomic_store(&library_table, function_table(stream));
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

/*
 * glibc's list of every open stream and its lock, exported since 2.2.5 for
 * libstdc++ and not declared in any header.  The lock is recursive (a
 * signal handler of the thread that holds it walks a list whose every
 * change is one store), and glibc resets it in a fork()ed child.
 */
extern FILE *_IO_list_all;
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);

/* Calls refuse (if not NULL) on each stream of the program on fd, under
 * the list's lock: not one of the library's, not closed (fclose unlinks
 * under that lock first).  Returns how many there are. */
static int program_streams(int fd, void (*refuse)(FILE *stream, int fd))
{
	const void *ours = atomic_load(&library_table);
	int count = 0;

	_IO_list_lock();
	for (FILE *stream = _IO_list_all; stream; stream = stream->_chain) {
		if (stream->_fileno != fd || (ours && function_table(stream) == ours))
			continue;
		count++;
		if (refuse)
			refuse(stream, fd);
	}
	_IO_list_unlock();
	return count;
}

bool tssx_stdio_on(int fd)
{
	return program_streams(fd, NULL) > 0;
}

/* glibc's stream flags (libio.h; _IO_EOF_SEEN and _IO_ERR_SEEN are in
 * <stdio.h>'s struct_FILE.h): the same values since libio. */
#define STREAM_USER_BUF 0x0001
#define STREAM_NO_READS 0x0004
#define STREAM_NO_WRITES 0x0008
#define STREAM_CURRENTLY_PUTTING 0x0800

/* The head of glibc's struct _IO_wide_data: a wide-oriented stream's
 * get and put areas, in the order of the FILE's own. */
struct wide_areas {
	wchar_t *read_ptr, *read_end, *read_base, *write_base, *write_ptr, *write_end;
};

/* Set in a fork()ed child: the output its streams held unwritten at
 * the fork is its parent's too. */
static atomic_bool forked TSSX_FORK_DATA;

TSSX_FORK_HANDLER void tssx_stdio_after_fork(void)
{
	atomic_store(&forked, true);
}

/*
 * What stream holds unwritten goes to the connection now, through the
 * wrappers: where glibc's flush would have put it, before anything else
 * the stream writes (which fails from now on).  Not in a fork()ed child:
 * there it is a copy of what the parent writes, which the child's exec
 * (the common case: a connection put on an fd for the program it runs)
 * drops.  A wide-oriented stream's characters, not converted yet, cannot
 * be: logged and flagged.
 */
static void write_pending(FILE *stream, int fd)
{
	size_t pending = (size_t)(stream->_IO_write_ptr - stream->_IO_write_base);
	struct wide_areas *wide = stream->_mode > 0 ? (struct wide_areas *)stream->_wide_data : NULL;

	if (pending && atomic_load(&forked))
		log_info("fd %d: a fork()ed child drops its copy of a stdio stream's %zu unwritten bytes", fd, pending);
	else if (pending && (size_t)stream_write((void *)(intptr_t)fd, stream->_IO_write_base, pending) != pending) {
		stream->_flags |= _IO_ERR_SEEN;
		log_warn(0, "fd %d: a stdio stream's unwritten output did not all reach the connection: %m", fd);
	}
	stream->_IO_write_base = stream->_IO_write_ptr = stream->_IO_write_end = stream->_IO_read_ptr;
	if (wide && wide->write_ptr > wide->write_base) {
		stream->_flags |= _IO_ERR_SEEN;
		log_warn(0, "fd %d: a wide-oriented stdio stream's unwritten output (%zu characters) is lost", fd,
			 (size_t)(wide->write_ptr - wide->write_base));
	}
	if (wide)
		wide->write_base = wide->write_ptr = wide->write_end = wide->read_ptr;
}

/*
 * A stream of glibc's own on fd, which is now a connection: its reads and
 * writes would reach the real socket.  They fail instead, as glibc fails
 * them on a stream not open for them (EBADF, the error flag): its
 * function table cannot change (glibc checks it) and the static standard
 * streams have no room for a cookie stream's fields.  What it read ahead
 * is still read first.  A read of at least its buffer's size goes to the
 * fd directly, past the check: its buffer is made to look larger than any
 * read (the end pointer only; nothing is written there, writes fail first
 * and no read reaches the buffer any more).
 */
static void refuse_stream(FILE *stream, int fd)
{
	flockfile(stream);
	/* Never read or written yet: a buffer to enlarge, which is not
	 * freed (as glibc's unbuffered streams have it).  An ungetc() may
	 * have put its read pointers in a push-back area already. */
	if (!stream->_IO_buf_base) {
		stream->_IO_buf_base = stream->_shortbuf;
		stream->_flags |= STREAM_USER_BUF;
	}
	if (!stream->_IO_read_ptr)
		stream->_IO_read_base = stream->_IO_read_ptr = stream->_IO_read_end = stream->_IO_buf_base;
	write_pending(stream, fd);
	stream->_flags = (stream->_flags | STREAM_NO_READS | STREAM_NO_WRITES) &
			 ~(STREAM_CURRENTLY_PUTTING | _IO_EOF_SEEN);
	stream->_IO_buf_end = (char *)((uintptr_t)stream->_IO_buf_base + ((uintptr_t)1 << 62));
	funlockfile(stream);
	log_info("fd %d: a stdio stream made before it became a connection fails its reads and writes (EBADF)", fd);
}

/* A stream refuse_stream() made fail, its fd still a connection: no
 * stream glibc opened has both flags while it is open. */
static bool refused(FILE *stream)
{
	return (stream->_flags & (STREAM_NO_READS | STREAM_NO_WRITES)) == (STREAM_NO_READS | STREAM_NO_WRITES) &&
	       stream->_fileno >= 0 && tssx_conn_lookup(stream->_fileno);
}

/* A refused stream keeps its buffer: a new one would bring back the size
 * at which a read goes to the fd directly. */
TSSX_EXPORT int setvbuf(FILE *stream, char *buf, int mode, size_t size)
{
	if (unlikely(refused(stream))) {
		errno = EBADF;
		return EOF;
	}
	return TSSX_REAL(setvbuf)(stream, buf, mode, size);
}

TSSX_EXPORT void setbuf(FILE *stream, char *buf)
{
	if (likely(!refused(stream)))
		TSSX_REAL(setbuf)(stream, buf);
}

TSSX_EXPORT void setbuffer(FILE *stream, char *buf, size_t size)
{
	if (likely(!refused(stream)))
		TSSX_REAL(setbuffer)(stream, buf, size);
}

TSSX_EXPORT void setlinebuf(FILE *stream)
{
	if (likely(!refused(stream)))
		TSSX_REAL(setlinebuf)(stream);
}

void tssx_stdio_landed(int fd)
{
	if (fd <= STDERR_FILENO)
		tssx_stdio_adopt(fd);
	program_streams(fd, refuse_stream);
}

void tssx_stdio_flush(void)
{
	if (atomic_load(&made_any))
		fflush(NULL);
}
