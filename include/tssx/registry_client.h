/*
 * The registry as the preload library uses it (docs/design.md §1-2).
 *
 * Thread-safe.  Never calls the preload's wrappers: it opens and reads the
 * registry files with openat/pread/pwrite, which the preload does not
 * interpose, and closes them through hooks->close.
 *
 * Any failure (no registry mounted, daemon dead, malformed entry) is an error
 * return; callers treat every error as "not TSSX" and stay on plain sockets.
 */
#ifndef TSSX_REGISTRY_CLIENT_H
#define TSSX_REGISTRY_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "registry_protocol.h"

struct tssx_registry_hooks {
	/* The real close(2). */
	int (*close)(int fd);
	/* Told of every fd the client opens and keeps, and of every fd it is
	 * about to close, so the preload can protect them from the
	 * application (close-all-fds loops, dup2 onto them). May be NULL. */
	void (*fd_kept)(int fd);
	void (*fd_dropped)(int fd);
};

/* Remembers the mount point. Returns 0, or -errno if it is not a registry
 * (-ENOTCONN; then every call fails fast, and checks again, so a registry
 * mounted later is found). Call once, before any other function. */
int tssx_registry_client_init(const char *mountpoint, const struct tssx_registry_hooks *hooks);

/* Bits (0..3) currently shown for the socket address, or -errno (-ENOENT:
 * no entry).  Steady state costs no daemon round trip: one pread on a kept
 * fd, or a failed openat on a cached miss; a change made by another process
 * can show an instant late (the daemon's cache invalidation). */
int tssx_registry_lookup(const struct sockaddr_un *addr, socklen_t len);

/* Opens (creating) the entry O_RDWR|O_CLOEXEC and sets `bits` as this
 * handle's contribution.  Returns the fd, which the caller keeps as long as
 * the claim should hold and closes with the real close, or -errno (EPERM
 * when the registry refuses the claim). */
int tssx_registry_claim(const struct sockaddr_un *addr, socklen_t len, unsigned bits);

/* Marks this process as a TSSX client of the address (client bit on a
 * kept read-write handle next to the cached one, until the process exits).
 * Best effort; returns 0 or -errno. */
int tssx_registry_mark_client(const struct sockaddr_un *addr, socklen_t len);

/* The application closed (or dup2'd over) an fd the client kept: forget it
 * without closing it. */
void tssx_registry_forget_fd(int fd);

#endif
