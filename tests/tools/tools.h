/* Helpers shared by the test tools: errors, sockets, the byte stream. */
#ifndef TSSX_TEST_TOOLS_H
#define TSSX_TEST_TOOLS_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FNV_INIT 0xcbf29ce484222325ull
#define STREAM_SEED 0x9e3779b97f4a7c15ull

__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
__attribute__((noreturn)) void die_errno(const char *what);
void *xmalloc(size_t size);
uint64_t parse_size(const char *text);

/* "PATH" or "@abstract" as a sockaddr_un; returns its length. */
struct sockaddr_un;
unsigned tool_addr(const char *name, struct sockaddr_un *addr);
int tool_listen(const char *name);
int tool_connect(const char *name);
void set_nonblocking(int fd);

uint64_t fnv1a(uint64_t sum, const void *buf, size_t len);

/* A deterministic pseudo-random byte stream (xorshift64*). */
struct stream {
	uint64_t state;
	uint64_t word;
	unsigned left; /* bytes of word not handed out yet */
};
void stream_fill(struct stream *s, uint8_t *buf, size_t len);

#endif
