/*
 * Registry names (docs/design.md §1): one canonical name per socket address, so
 * that every spelling of an address meets at the same registry file.
 *
 *   path "/a/b/s.sock"   -> "a/b/s.sock"  ('%' as "%25", a leading '@' as "%40")
 *   abstract "\0db 1"    -> "@db%201"     (bytes outside [A-Za-z0-9._-] as %XX)
 *
 * Decoding accepts only the canonical spelling (upper-case hex, no escape of
 * a byte that needs none, no "." / ".." / empty component): two names for one
 * socket would split its bits and its trust check.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tssx/registry_name.h"

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)
/* A path socket needs its NUL inside sun_path; an abstract name its '\0'. */
#define SOCKET_PATH_MAX (TSSX_SUN_PATH_MAX - 1)

static const char hex_digits[] = "0123456789ABCDEF";

static bool is_plain_byte(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int hex_value(char c)
{
	const char *p = c ? strchr(hex_digits, c) : NULL;

	return p ? (int)(p - hex_digits) : -1;
}

/* An output buffer that remembers whether it overflowed. */
struct name_buf {
	char *out;
	size_t size;
	size_t len;
};

static void put_byte(struct name_buf *b, char c)
{
	if (b->len + 1 < b->size)
		b->out[b->len] = c;
	b->len++;
}

static void put_escaped(struct name_buf *b, unsigned char c)
{
	put_byte(b, '%');
	put_byte(b, hex_digits[c >> 4]);
	put_byte(b, hex_digits[c & 0xf]);
}

static int finish(struct name_buf *b)
{
	if (b->len + 1 > b->size)
		return -ENAMETOOLONG;
	b->out[b->len] = '\0';
	return 0;
}

static int encode_abstract(const char *bytes, size_t n, struct name_buf *b)
{
	if (n == 0)
		return -EINVAL;
	put_byte(b, '@');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)bytes[i];

		if (is_plain_byte(c))
			put_byte(b, (char)c);
		else
			put_escaped(b, c);
	}
	return finish(b);
}

/* Appends one component of a path; the first one may need its '@' escaped. */
static void put_component(struct name_buf *b, const char *comp, size_t n)
{
	if (b->len > 0)
		put_byte(b, '/');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)comp[i];

		if (c == '%' || (c == '@' && b->len == 0))
			put_escaped(b, c);
		else
			put_byte(b, (char)c);
	}
}

/*
 * Walks `path` (absolute, or relative to `cwd`) component by component,
 * dropping empty and "." ones.  `canonical_len` counts the absolute path the
 * components spell, which must fit a sun_path.
 */
static int encode_components(const char *path, size_t n, size_t *canonical_len,
			     struct name_buf *b)
{
	size_t i = 0;

	while (i < n) {
		size_t start, len;

		while (i < n && path[i] == '/')
			i++;
		start = i;
		while (i < n && path[i] != '/')
			i++;
		len = i - start;
		if (len == 0 || (len == 1 && path[start] == '.'))
			continue;
		if (len == 2 && path[start] == '.' && path[start + 1] == '.')
			return -EINVAL;
		put_component(b, path + start, len);
		*canonical_len += 1 + len;
	}
	return 0;
}

static int encode_path(const char *path, size_t n, const char *cwd, struct name_buf *b)
{
	size_t canonical_len = 0;
	int r;

	if (n == 0)
		return -EINVAL;
	if (path[0] != '/') {
		if (!cwd || cwd[0] != '/')
			return -EINVAL;
		r = encode_components(cwd, strlen(cwd), &canonical_len, b);
		if (r < 0)
			return r;
	}
	r = encode_components(path, n, &canonical_len, b);
	if (r < 0)
		return r;
	if (canonical_len == 0)
		return -EINVAL;
	if (canonical_len > SOCKET_PATH_MAX)
		return -ENAMETOOLONG;
	return finish(b);
}

int tssx_registry_name_encode(const struct sockaddr_un *addr, socklen_t len,
			      const char *cwd, char *out, size_t size)
{
	struct name_buf b = { .out = out, .size = size };
	size_t n;

	if (!addr || len <= SUN_PATH_OFFSET || len > sizeof(*addr) ||
	    addr->sun_family != AF_UNIX || size == 0)
		return -EINVAL;
	n = len - SUN_PATH_OFFSET;
	if (addr->sun_path[0] == '\0')
		return encode_abstract(addr->sun_path + 1, n - 1, &b);
	return encode_path(addr->sun_path, strnlen(addr->sun_path, n), cwd, &b);
}

/* Whether the path has a "." or ".." component, which realpath must fold. */
static bool has_dot_component(const char *path)
{
	for (const char *p = path; (p = strchr(p, '.')); p++) {
		bool starts = p == path || p[-1] == '/';
		size_t dots = p[1] == '.' ? 2 : 1;

		if (starts && (p[dots] == '/' || p[dots] == '\0'))
			return true;
	}
	return false;
}

int tssx_registry_name_from_addr(const struct sockaddr_un *addr, socklen_t len,
				 char *out, size_t size)
{
	char path[TSSX_SUN_PATH_MAX + 1], dir[PATH_MAX];
	const char *base, *dirpath;
	char *slash;

	if (!addr || len <= SUN_PATH_OFFSET || len > sizeof(*addr) ||
	    addr->sun_family != AF_UNIX)
		return -EINVAL;
	if (addr->sun_path[0] == '\0')
		return tssx_registry_name_encode(addr, len, NULL, out, size);

	memcpy(path, addr->sun_path, len - SUN_PATH_OFFSET);
	path[len - SUN_PATH_OFFSET] = '\0';
	/* The common case, an absolute clean path, costs no system call. */
	if (path[0] == '/' && !has_dot_component(path))
		return tssx_registry_name_encode(addr, len, NULL, out, size);

	/* Otherwise: the canonical directory, then the socket's own name. */
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return -EINVAL;
	if (!slash) {
		dirpath = ".";
	} else if (slash == path) {
		dirpath = "/";
	} else {
		*slash = '\0';
		dirpath = path;
	}
	if (!realpath(dirpath, dir))
		return -errno;

	struct sockaddr_un resolved = { .sun_family = AF_UNIX };
	int n = snprintf(resolved.sun_path, sizeof(resolved.sun_path), "%s/%s",
			 strcmp(dir, "/") == 0 ? "" : dir, base);
	if (n < 0 || (size_t)n >= sizeof(resolved.sun_path))
		return -ENAMETOOLONG;
	return tssx_registry_name_encode(&resolved, (socklen_t)(SUN_PATH_OFFSET + (size_t)n + 1),
					 NULL, out, size);
}

static int decode_abstract(const char *name, struct sockaddr_un *addr, socklen_t *len)
{
	size_t n = 0;

	if (name[0] == '\0')
		return -EINVAL;
	for (const char *p = name; *p; n++) {
		int c;

		if (*p == '%') {
			int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);

			if (lo < 0)
				return -EINVAL;
			c = hi << 4 | lo;
			if (is_plain_byte((unsigned char)c))
				return -EINVAL;
			p += 3;
		} else if (is_plain_byte((unsigned char)*p)) {
			c = (unsigned char)*p++;
		} else {
			return -EINVAL;
		}
		if (n >= SOCKET_PATH_MAX)
			return -ENAMETOOLONG;
		addr->sun_path[1 + n] = (char)c;
	}
	addr->sun_path[0] = '\0';
	*len = (socklen_t)(SUN_PATH_OFFSET + 1 + n);
	return 0;
}

static bool is_bad_component(const char *comp, size_t n)
{
	return n == 0 || (n == 1 && comp[0] == '.') ||
	       (n == 2 && comp[0] == '.' && comp[1] == '.');
}

static int decode_path(const char *name, struct sockaddr_un *addr, socklen_t *len)
{
	const char *comp = name;
	size_t n = 0;

	addr->sun_path[n++] = '/';
	for (const char *p = name;; ) {
		char c = *p;

		if (c == '/' || c == '\0') {
			if (is_bad_component(comp, (size_t)(p - comp)))
				return -EINVAL;
			if (c == '\0')
				break;
			comp = ++p;
		} else if (c == '%') {
			/* Only the escapes the encoder writes: "%25", and "%40" first. */
			if (strncmp(p, "%25", 3) == 0)
				c = '%';
			else if (p == name && strncmp(p, "%40", 3) == 0)
				c = '@';
			else
				return -EINVAL;
			p += 3;
		} else {
			p++;
		}
		if (n >= SOCKET_PATH_MAX)
			return -ENAMETOOLONG;
		addr->sun_path[n++] = c;
	}
	addr->sun_path[n] = '\0';
	*len = (socklen_t)(SUN_PATH_OFFSET + n + 1);
	return 0;
}

int tssx_registry_name_decode(const char *name, struct sockaddr_un *addr, socklen_t *len)
{
	if (!name || !addr || !len)
		return -EINVAL;
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (tssx_registry_name_is_abstract(name))
		return decode_abstract(name + 1, addr, len);
	return decode_path(name, addr, len);
}
