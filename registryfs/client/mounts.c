/*
 * One line of the mount table, /proc/PID/mountinfo (proc(5)):
 *
 *   id parent major:minor root mount-point options [optional...] - type source super-options
 *
 * The daemon reads it to tell a dead registry mount from another one, the
 * client to recognise a registry without asking its daemon
 * (docs/registry.md).
 */
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "tssx/registry_protocol.h"

bool tssx_mount_line_parse(const char *line, struct tssx_mount_line *m)
{
	_Static_assert(PATH_MAX == 4096, "the width below");
	const char *types = strstr(line, " - ");
	unsigned major, minor;
	char type[64];

	if (!types || sscanf(line, "%*u %*u %u:%u %*s %4095s", &major, &minor, m->point) != 3)
		return false;
	m->dev = makedev(major, minor);
	m->registry = sscanf(types, " - %63s", type) == 1 && strcmp(type, TSSX_REGISTRY_FSTYPE) == 0;
	return true;
}
