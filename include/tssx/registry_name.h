/*
 * Registry names: how a Unix socket address maps to its file under the
 * registry mount (docs/design.md §1).
 *
 *   /tmp/a.sock          -> "tmp/a.sock"
 *   abstract "\0db 1"    -> "@db%201"   (bytes outside [A-Za-z0-9._-] as %XX)
 *
 * Pure functions: no I/O except tssx_registry_name_from_addr(), which
 * resolves a relative or non-canonical directory with realpath(3).
 */
#ifndef TSSX_REGISTRY_NAME_H
#define TSSX_REGISTRY_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define TSSX_SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
/* Longest name, NUL included: '@' plus three bytes per abstract byte. */
#define TSSX_REGISTRY_NAME_MAX (1 + 3 * TSSX_SUN_PATH_MAX + 1)

/*
 * Encodes the address as its registry-relative name into out[size].
 * A relative path is joined to `cwd` (absolute, canonical); "//" and "/./"
 * are folded.  Returns 0, or -EINVAL (not AF_UNIX, unnamed, relative without
 * cwd, a ".." component), -ENAMETOOLONG (path longer than a sun_path).
 */
int tssx_registry_name_encode(const struct sockaddr_un *addr, socklen_t len,
			      const char *cwd, char *out, size_t size);

/*
 * As encode, for the calling process: a relative path or one with "." or
 * ".." components has its directory resolved with realpath(3) first.
 */
int tssx_registry_name_from_addr(const struct sockaddr_un *addr, socklen_t len,
				 char *out, size_t size);

/*
 * Decodes a registry name back to the socket address it stands for.
 * Returns 0, or -EINVAL (malformed escape, empty, bad component),
 * -ENAMETOOLONG (does not fit a sun_path).
 */
int tssx_registry_name_decode(const char *name, struct sockaddr_un *addr,
			      socklen_t *len);

static inline bool tssx_registry_name_is_abstract(const char *name)
{
	return name[0] == '@';
}

#endif
