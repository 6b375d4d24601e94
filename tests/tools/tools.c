/* Helpers shared by the test tools (tools.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools.h"

void die(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	exit(1);
}

void die_errno(const char *what)
{
	die("%s: %s", what, strerror(errno));
}

void *xmalloc(size_t size)
{
	void *p = malloc(size);

	if (!p)
		die("out of memory");
	return p;
}

uint64_t parse_size(const char *text)
{
	char *end;
	uint64_t n = strtoull(text, &end, 10);

	switch (*end) {
	case 'G': n <<= 10; /* fall through */
	case 'M': n <<= 10; /* fall through */
	case 'K': n <<= 10; end++; break;
	default: break;
	}
	if (*end || end == text)
		die("bad size: %s", text);
	return n;
}

unsigned tool_addr(const char *name, struct sockaddr_un *addr)
{
	size_t len = strlen(name);

	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (len >= sizeof(addr->sun_path))
		die("socket name too long: %s", name);
	memcpy(addr->sun_path, name, len);
	if (name[0] == '@') {
		addr->sun_path[0] = '\0';
		return (unsigned)(offsetof(struct sockaddr_un, sun_path) + len);
	}
	return (unsigned)sizeof(*addr);
}

/* A Unix stream socket and the address of `name`. */
static int tool_socket(const char *name, struct sockaddr_un *addr, unsigned *len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		die_errno("socket");
	*len = tool_addr(name, addr);
	return fd;
}

int tool_listen(const char *name)
{
	struct sockaddr_un addr;
	unsigned len;
	int fd = tool_socket(name, &addr, &len);

	if (name[0] != '@')
		unlink(name);
	if (bind(fd, (struct sockaddr *)&addr, len) < 0)
		die_errno("bind");
	if (listen(fd, 64) < 0)
		die_errno("listen");
	return fd;
}

int tool_connect(const char *name)
{
	struct sockaddr_un addr;
	unsigned len;
	int fd = tool_socket(name, &addr, &len);

	if (connect(fd, (struct sockaddr *)&addr, len) < 0)
		die_errno("connect");
	return fd;
}

void set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		die_errno("fcntl O_NONBLOCK");
}

uint64_t fnv1a(uint64_t sum, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		sum = (sum ^ p[i]) * 0x100000001b3ull;
	return sum;
}

void stream_fill(struct stream *s, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s->left == 0) {
			s->state ^= s->state >> 12;
			s->state ^= s->state << 25;
			s->state ^= s->state >> 27;
			s->word = s->state * 0x2545f4914f6cdd1dull;
			s->left = 8;
		}
		buf[i] = (uint8_t)s->word;
		s->word >>= 8;
		s->left--;
	}
}
