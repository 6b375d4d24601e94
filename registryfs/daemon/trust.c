/*
 * Trust decisions on server-bit claims (trust.h).
 *
 * A server bit redirects other processes' clients, so only the socket's
 * owner may set it: for a path socket, root or the owner of a file that is a
 * socket, the same file as the writer sees it at that path; for an abstract name, a process holding a listener of that name
 * in its own network namespace (a container's), where the claim is then
 * checked again.
 * A claim is tied to that very socket (its (dev, ino), or the abstract name's
 * listener) and is void once the socket is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tssx/log.h"
#include "tssx/registry_name.h"
#include "trust.h"

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)
/* __SO_ACCEPTCON in the Flags column of /proc/net/unix: a listener. */
#define UNIX_FLAG_LISTENING 0x10000u

static const char *abstract_bytes(const struct claim *c, size_t *n)
{
	*n = c->len - SUN_PATH_OFFSET - 1;
	return c->addr.sun_path + 1;
}

static bool same_file(const struct file_identity *a, const struct file_identity *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->born.tv_sec == b->born.tv_sec &&
	       a->born.tv_nsec == b->born.tv_nsec;
}

/* The path must name the same socket for the writer as for the daemon,
 * which answers everyone's lookups: a process in another mount namespace
 * (a container, PrivateTmp=) may have its socket at a path where others
 * find another file, or another socket, whose clients would then send a
 * TSSX hello into a plain stream. */
static int claim_path(const struct trust_probes *probes, uid_t uid, pid_t pid, struct claim *c)
{
	struct file_identity id, writers;
	int r = probes->identify(0, c->addr.sun_path, &id);

	if (r < 0)
		return log_warn(-EPERM, "claim of %s refused: %s", c->addr.sun_path, strerror(-r));
	r = pid > 0 ? probes->identify(pid, c->addr.sun_path, &writers) : -ESRCH;
	if (r < 0)
		return log_warn(-EPERM, "claim of %s refused: not seen as pid %d sees it: %s",
				c->addr.sun_path, (int)pid, strerror(-r));
	if (!same_file(&id, &writers))
		return log_warn(-EPERM, "claim of %s refused: another file for pid %d (its own mount namespace)",
				c->addr.sun_path, (int)pid);
	if (!S_ISSOCK(id.mode))
		return log_warn(-EPERM, "claim of %s refused: not a socket", c->addr.sun_path);
	if (uid != 0 && id.uid != uid)
		return log_warn(-EPERM, "claim of %s refused: uid %u does not own it",
				c->addr.sun_path, (unsigned)uid);
	c->kind = CLAIM_PATH;
	c->file = id;
	return 0;
}

static int claim_abstract(const struct trust_probes *probes, pid_t pid, struct claim *c)
{
	size_t n;
	const char *name = abstract_bytes(c, &n);

	if (probes->abstract_listener(name, n, pid, &c->netns) != 1)
		return log_warn(-EPERM, "claim of abstract socket refused: pid %d does not listen on it",
				(int)pid);
	c->kind = CLAIM_ABSTRACT;
	return 0;
}

int trust_claim(const struct trust_probes *probes, const char *registry_name,
		uid_t uid, pid_t pid, struct claim *claim)
{
	int r;

	memset(claim, 0, sizeof(*claim));
	if (tssx_registry_name_decode(registry_name, &claim->addr, &claim->len) < 0)
		return -EPERM;
	if (tssx_registry_name_is_abstract(registry_name))
		r = claim_abstract(probes, pid, claim);
	else
		r = claim_path(probes, uid, pid, claim);
	claim->valid = r == 0;
	return r;
}

bool trust_claim_holds(const struct trust_probes *probes, const struct claim *claim)
{
	struct file_identity id;
	const char *name;
	uint64_t netns = claim->netns;
	size_t n;

	switch (claim->kind) {
	case CLAIM_PATH:
		return probes->identify(0, claim->addr.sun_path, &id) == 0 && S_ISSOCK(id.mode) &&
		       same_file(&id, &claim->file);
	case CLAIM_ABSTRACT:
		name = abstract_bytes(claim, &n);
		/* Only a definite "no listener" voids it, not a failed probe. */
		return probes->abstract_listener(name, n, 0, &netns) != 0;
	case CLAIM_NONE:
		break;
	}
	return false;
}

/* Whether the Path column shows the abstract name: '@', then its bytes
 * with each NUL printed as '@'. */
static bool path_column_is(const char *col, size_t col_len, const char *name, size_t n)
{
	if (col_len != n + 1 || col[0] != '@')
		return false;
	for (size_t i = 0; i < n; i++)
		if (col[1 + i] != (name[i] ? name[i] : '@'))
			return false;
	return true;
}

size_t unix_table_listeners(const char *text, const char *name, size_t n,
			    unsigned long *inodes, size_t max)
{
	size_t found = 0;
	const char *line = strchr(text, '\n'); /* skip the header */

	while (line && *++line) {
		const char *end = strchrnul(line, '\n');
		unsigned flags;
		unsigned long inode;
		int path_at = -1;

		/* Num: RefCount Protocol Flags Type St Inode Path */
		if (sscanf(line, "%*s %*x %*x %x %*x %*x %lu %n", &flags, &inode, &path_at) >= 2 &&
		    path_at > 0 && line + path_at <= end && (flags & UNIX_FLAG_LISTENING) &&
		    path_column_is(line + path_at, (size_t)(end - line - path_at), name, n)) {
			if (found < max)
				inodes[found] = inode;
			found++;
		}
		line = *end ? end : NULL;
	}
	return found;
}
