/*
 * The registry as the preload library uses it (docs/design.md §1-2, docs/registry.md).
 *
 * Thread-safe.  Never calls the preload's wrappers: it opens and reads the
 * registry files with openat/pread/pwrite/mmap, which the preload does not
 * interpose, and closes them through hooks->close.
 *
 * Bounded: a call that needs the daemon hands the work to a helper thread
 * of the client and waits for it at most the bound given to init.  A
 * daemon that is stopped or hung keeps that thread waiting in the kernel,
 * not the application; the first call that runs out of time logs one
 * warning, and until the thread is back every call that needs the daemon
 * fails at once with -ETIMEDOUT.  A registry that is missing or dead is
 * tried again a second later, or as soon as the mount table changes.
 *
 * Any failure is an error return; callers treat every error as "not TSSX"
 * and stay on plain sockets.
 */
#ifndef TSSX_REGISTRY_CLIENT_H
#define TSSX_REGISTRY_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "registry_protocol.h"

/* How long a call waits for the daemon at most, unless init says. */
#define TSSX_REGISTRY_TIMEOUT_MS_DEFAULT 50

struct tssx_registry_hooks {
	/* The real close(2). */
	int (*close)(int fd);
	/* Told of every fd the client opens and keeps, and of every fd it is
	 * about to close, so the preload can protect them from the
	 * application (close-all-fds loops, dup2 onto them). May be NULL.
	 * Called with the client's lock held, from any thread. */
	void (*fd_kept)(int fd);
	void (*fd_dropped)(int fd);
	/* A copy of fd, for a moment's use by the client's thread, at a
	 * number the program's next fds do not take (the preload's kept
	 * numbers), or -1.  NULL: a copy at the lowest free number. */
	int (*copy_fd)(int fd);
};

/* Remembers the mount point and the bound; the first call that needs the
 * registry looks for it (a lookup answers -ENOTCONN, -ENOENT or
 * -ETIMEDOUT when there is none, and the client looks again later, so a
 * registry mounted later is found).  Returns 0, or -EINVAL for a mount
 * point too long.  Call once, before any other function. */
int tssx_registry_client_init(const char *mountpoint, unsigned timeout_ms,
			      const struct tssx_registry_hooks *hooks);

/* Bits (0..3) currently shown for the socket address, or -errno (-ENOENT:
 * no entry).  Steady state costs no daemon round trip and no thread
 * switch: mincore(2) and a load from a kept mapping of the entry, or a
 * failed cache-only openat2(2) on a cached miss.  A change made by another
 * process can show an instant late (the daemon's cache invalidation). */
int tssx_registry_lookup(const struct sockaddr_un *addr, socklen_t len);

/* A server claim: the server bit of one address, held by the client for
 * as long as the claim lives, and made again whenever a new registry is
 * mounted (a restarted daemon). */
struct tssx_registry_claim;

/* Claims the server bit of the address.  Returns the claim, or NULL with
 * *error set: -EINVAL (not a registry name), -ENOMEM, or the registry's
 * refusal (-EPERM: not this process's socket; -ENOSPC, -EDQUOT: full).
 * A registry that is missing, dead or too slow gives a claim that is not
 * held yet (tssx_registry_claim_error() says why): the client makes it as
 * soon as a registry answers. */
struct tssx_registry_claim *tssx_registry_claim(const struct sockaddr_un *addr, socklen_t len,
						int *error);

/* 0 while the claim is held, else why not (-errno). */
int tssx_registry_claim_error(const struct tssx_registry_claim *claim);

/* Drops the claim: the server bit goes when no other handle holds it. */
void tssx_registry_release(struct tssx_registry_claim *claim);

/* Marks this process as a TSSX client of the address (client bit on a
 * kept read-write handle, until the process exits or the cache evicts
 * the entry).  Asynchronous and best effort: the helper thread sets it
 * TSSX_REGISTRY_CLIENT_DELAY_MS after the first call, if the process
 * still runs; returns 0, or -errno when it will not be set. */
int tssx_registry_mark_client(const struct sockaddr_un *addr, socklen_t len);

/* A process gone sooner after its first connection to an address (a
 * client process per query: a script's redis-cli or psql) never asks the
 * daemon for its client bit, and does not make every other process's
 * cached answer for the entry stale twice, when the bit is set and when
 * its exit clears it. */
#define TSSX_REGISTRY_CLIENT_DELAY_MS 250

/* How long tssx_registry_pause() waits at most: longer than a call's
 * bound, since the helper thread may be in a call to a daemon that is
 * only slow (a claim made by listen() just before, on a loaded machine),
 * and the call it clears the way for fails without it. */
#define TSSX_REGISTRY_PAUSE_MS 1000

/* Before a call that a multi-threaded process may not make (unshare of a
 * user namespace, setns): stops the client's helper thread and waits
 * until it has left the process, at most TSSX_REGISTRY_PAUSE_MS; 0, or
 * -EBUSY when it is stuck in a call to a daemon that does not answer.  Lookups and
 * claims still work meanwhile (they start it again); */
int tssx_registry_pause(void);
/* after that call, starts it again if the process holds claims, which it
 * watches over. */
void tssx_registry_resume(void);

/* The application closed (or dup2'd over) an fd the client kept: forget it
 * without closing it.  A claim whose fd this was is no longer held. */
void tssx_registry_forget_fd(int fd);

#endif
