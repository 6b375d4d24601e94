/*
 * Configuration from the environment, read once (docs/design.md §4):
 *
 *   TSSX_DISABLE=1          plain sockets everywhere
 *   TSSX_REGISTRY=DIR       registry mount point (default TSSX_DEFAULT_REGISTRY)
 *   TSSX_REGISTRY_TIMEOUT=MS how long a call waits for the registry at most (50)
 *   TSSX_INCLUDE=PATTERNS   only these socket names (fnmatch, ':'-separated)
 *   TSSX_EXCLUDE=PATTERNS   never these (wins over include)
 *   TSSX_RING_SIZE=N[K|M|G] capacity of each ring, power of two (default 1M)
 *   TSSX_RING_MAX=N[K|M|G]  largest ring a peer's hello may ask for (default 16M)
 *   TSSX_SPIN_NS=N          spin budget before sleeping (default 20000)
 *   TSSX_YIELD_NS=N         budget of a spin that yields the CPU at every
 *                           turn, where a spin would not pay (default 200000)
 *   TSSX_SHORT_CALLS=N      a client connection that moved data in fewer
 *                           calls than this (and less than 1 MiB) before
 *                           its close was too short to pay for its segment:
 *                           after a few of them to one server, by a
 *                           process or its program's processes, the next
 *                           go plain; blocking calls
 *                           of a connection sleep on the socket until it
 *                           made that many (default 16; 0: every
 *                           connection uses shared memory, and the futex
 *                           bell from its first call)
 *   TSSX_LOG=LEVEL          none|error|warn|info|debug (default warn)
 *
 * Patterns match the socket's path ("/tmp/app-*.sock") or "@name" for abstract
 * sockets.  An invalid value gives one warning and the default.
 */
#ifndef TSSX_OPTIONS_H
#define TSSX_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define TSSX_PATTERNS_MAX 1024

struct tssx_options {
	bool disabled;
	char registry[PATH_MAX];
	unsigned registry_timeout_ms;
	char include[TSSX_PATTERNS_MAX]; /* empty: everything */
	char exclude[TSSX_PATTERNS_MAX];
	uint64_t ring_size;
	uint64_t ring_max; /* a hello asking for larger rings is refused */
	uint64_t spin_ns;
	uint64_t yield_ns;
	unsigned short_calls; /* 0: never judge connections short */
	bool recycle; /* segments recycled per server (docs/data-path.md) */
	int log_level;
};

/* Fills *opts from getenv_fn (getenv, or a fake in tests); each invalid
 * value is reported through warn(message) and replaced by its default. */
void tssx_options_parse(struct tssx_options *opts,
			char *(*getenv_fn)(const char *name),
			void (*warn)(const char *message));

/* Whether a socket ("/path" or "@name") is selected by include/exclude. */
bool tssx_options_selects(const struct tssx_options *opts, const char *socket_name);

#endif
