/*
 * The library's one-time set-up: options read once from the environment,
 * logging through the real write(2), the registry client.
 */
#ifndef TSSX_PRELOAD_INIT_H
#define TSSX_PRELOAD_INIT_H

#include <stdbool.h>
#include <sys/types.h>

#include "tssx/options.h"

/* Valid after tssx_init(). */
extern struct tssx_options tssx_opts;

/* Sets everything up on first call (the constructor, or the first wrapper
 * that needs it when another library's constructor runs before ours).
 * Returns whether TSSX may be used at all (TSSX_DISABLE unset). */
bool tssx_init(void);

/* Whether this is a vfork() child (or another clone sharing our memory
 * without fork()): the table belongs to the suspended parent, which must
 * find it untouched.  A system call: for rare paths only. */
bool tssx_foreign_process(void);

/* The pid of the process that owns the fd table (set at init and in every
 * fork()ed child; in a vfork() child still the parent's): no system call. */
pid_t tssx_owner_pid(void);

/* Whether a socket address is one TSSX may handle: enabled, and selected by
 * TSSX_INCLUDE / TSSX_EXCLUDE.  Sets up the registry client on first use:
 * call it before any registry function. */
struct sockaddr_un;
bool tssx_selects(const struct sockaddr_un *addr, unsigned addrlen);

#endif
