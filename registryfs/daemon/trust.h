/*
 * Trust: who may set the server bit of an entry, and for how long the claim
 * holds (docs/design.md §1).  The decisions are pure; the operating system is
 * reached only through struct trust_probes, so unit tests can fake it.
 */
#ifndef TSSX_REGISTRYFS_TRUST_H
#define TSSX_REGISTRYFS_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

enum claim_kind {
	CLAIM_NONE,
	CLAIM_PATH,     /* the socket file (dev, ino) it was made for */
	CLAIM_ABSTRACT, /* a listener with the abstract name */
};

/* What tells one socket file from another that replaced it at the same
 * path: file systems reuse a freed inode number at once, so its birth time
 * (or, where the file system has none, its change time) counts too. */
struct file_identity {
	mode_t mode;
	uid_t uid;
	dev_t dev;
	ino_t ino;
	struct timespec born;
};

struct claim {
	uint64_t id;    /* given by the table, to find it again */
	enum claim_kind kind;
	bool valid; /* once false, false for good: the socket is gone */
	struct file_identity file; /* CLAIM_PATH */
	uint64_t netns; /* CLAIM_ABSTRACT: the writer's network namespace,
			 * 0 when it is the daemon's own */
	struct sockaddr_un addr;
	socklen_t len;
};

struct trust_probes {
	/* The file at the path, not following a final symlink, as the daemon
	 * (root) sees it (pid 0), or as process pid does, in its own root
	 * and mount namespace (/proc/PID/root); 0 or -errno. */
	int (*identify)(pid_t pid, const char *path, struct file_identity *id);
	/* 1 if a socket listens on the abstract name (bytes, n); 0 if not;
	 * -errno if that cannot be told.  pid > 0: in pid's network
	 * namespace, held by pid, and *netns receives which namespace that
	 * is; pid 0: in the namespace *netns names (a claim's). */
	int (*abstract_listener)(const char *name, size_t n, pid_t pid, uint64_t *netns);
};

/*
 * Decides whether `uid`/`pid` may set the server bit of the entry
 * `registry_name`, and fills *claim with what the claim is tied to.
 * Returns 0 or -EPERM.
 */
int trust_claim(const struct trust_probes *probes, const char *registry_name,
		uid_t uid, pid_t pid, struct claim *claim);

/* Whether a valid claim still belongs to a live socket. */
bool trust_claim_holds(const struct trust_probes *probes, const struct claim *claim);

/*
 * Parses /proc/net/unix text: stores in inodes[max] the inodes of the
 * sockets listening on the abstract name (bytes, n) and returns how many
 * there are (possibly more than max).
 */
size_t unix_table_listeners(const char *text, const char *name, size_t n,
			    unsigned long *inodes, size_t max);

#endif
