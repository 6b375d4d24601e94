/*
 * The registry's protocol, shared by the daemon and its client: what an
 * entry's content means and how a live registry is recognised
 * (docs/registry.md).
 */
#ifndef TSSX_REGISTRY_PROTOCOL_H
#define TSSX_REGISTRY_PROTOCOL_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

/* An entry's content is one digit, the OR of these bits over its open
 * handles. */
#define TSSX_BIT_SERVER 1u /* a TSSX-aware server listens here */
#define TSSX_BIT_CLIENT 2u /* TSSX-aware clients connect here */

/* Answered on the registry's root with the daemon's version, so that a
 * second daemon can tell a live registry from a plain directory. */
#define TSSX_REGISTRY_XATTR "user.tssx.registry"

/* The registry's type in the mount table (/proc/self/mountinfo), the
 * daemon's FUSE subtype: how clients recognise a registry without asking
 * the daemon. */
#define TSSX_REGISTRY_SUBTYPE "tssx-registryfs"
#define TSSX_REGISTRY_FSTYPE "fuse." TSSX_REGISTRY_SUBTYPE

/* What the daemon and the client need of one mount table line. */
struct tssx_mount_line {
	dev_t dev;
	bool registry;        /* of type TSSX_REGISTRY_FSTYPE */
	char point[PATH_MAX]; /* as the kernel prints it: octal escapes */
};

/* Parses one line of /proc/PID/mountinfo (its newline may follow);
 * false when it is not a mount's line.  Pure: no I/O, no allocation (the
 * client's helper thread calls it, and must not allocate). */
bool tssx_mount_line_parse(const char *line, struct tssx_mount_line *m);

/* A read-only file at the registry's root holding a 64-bit counter (native
 * byte order, at offset 0) that the daemon increments after every change
 * of an entry's bits has reached the kernel's caches.  A client that saw
 * it unchanged since it read an entry may answer from what it read
 * without a system call.  Not a socket's name: "%g" is no escape. */
#define TSSX_REGISTRY_GENERATION "%generation"

#endif
