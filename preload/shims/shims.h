/* Declarations the wrapper files share (socket.c, io.c, fd.c). */
#ifndef TSSX_PRELOAD_SHIMS_H
#define TSSX_PRELOAD_SHIMS_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conn/stream.h"
#include "conn/fd_table.h"

/* A listening socket: the registry claim it holds while it lives (the
 * registry client keeps the claim's fd, and makes it again after a
 * restart of the daemon). */
struct tssx_listener {
	struct tssx_fd_object obj;
	struct tssx_registry_claim *_Atomic claim; /* NULL: none */
	/* A path claim: the path and the socket file it named (SIOCUNIXFILE),
	 * so that a rename after listen() is noticed; file_ino 0: not known. */
	char path[108];
	dev_t file_dev;
	ino_t file_ino;
	/* When a plain client was last listed and the path checked
	 * (socket.c, plain_listing_due()). */
	_Atomic uint64_t plain_noted_ns;
	/* SO_PEERCRED's pid of the listener when it was noted: the caller of
	 * its last listen(), whom its TSSX clients take for their server
	 * (conn/recycle.h); 0 if not known.  Another process's listen() on
	 * it later goes unnoticed. */
	pid_t listened_by;
};

/* Copies an address out as the kernel does: truncated to *len, which
 * receives the full length. */
static inline void tssx_copy_addr(struct sockaddr *dst, socklen_t *len, const void *src, socklen_t srclen)
{
	if (!dst || !len)
		return;
	memcpy(dst, src, *len < srclen ? *len : srclen);
	*len = srclen;
}

/* The fd goes away (close, dup2 onto it, close_range): close() minus the
 * real call, before it releases the number: the event wrappers and the
 * table forget fd.  Also for a number the kernel just handed out again while the table
 * still had it: it was closed behind our back (a raw system call). */
void tssx_fd_forget(int fd);

/* The new image of an exec tracks a listener the old one had claimed,
 * and claims it (conn/handover.c). */
void tssx_listener_adopt(int fd);

/* A listener fd dies: the last one drops the claim. */
void tssx_listener_release(struct tssx_listener *listener);

/* fd (0, 1 or 2) is a connection: its standard stream becomes one that
 * moves its bytes through the wrappers, keeping what the old one had
 * buffered (shims/stdio.c). */
void tssx_stdio_adopt(int fd);

/* A connection landed on fd (dup2, dup3, F_DUPFD, accept): its standard
 * stream if fd is 0, 1 or 2 becomes the library's (tssx_stdio_adopt()),
 * and every other stream of the program on fd fails its reads and writes
 * with EBADF from now on, after its unwritten output went to the
 * connection (shims/stdio.c). */
void tssx_stdio_landed(int fd);

/* Whether the program has a stdio stream of glibc's own on fd: connect()
 * keeps such a socket plain. */
bool tssx_stdio_on(int fd);

/* In a fork()ed child (init.c's handler): what the streams held
 * unwritten is the parent's too. */
void tssx_stdio_after_fork(void);

/* At exit, before the library's own teardown: the connection streams'
 * buffered output is written (glibc's own flush comes after every
 * destructor). */
void tssx_stdio_flush(void);

#endif
