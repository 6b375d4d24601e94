/* Logging for every component: one line per call, written whole. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tssx/log.h"

int tssx_log_level = TSSX_LOG_WARN;
ssize_t (*tssx_log_write)(int fd, const void *buf, size_t len) = write;

static const char *const level_names[] = {
	[TSSX_LOG_ERROR] = "error",
	[TSSX_LOG_WARN] = "warning",
	[TSSX_LOG_INFO] = "info",
	[TSSX_LOG_DEBUG] = "debug",
};

void tssx_log(int level, const char *fmt, ...)
{
	/* The longest line, the statistics at exit, is about 600 bytes. */
	char line[TSSX_LOG_LINE_MAX];
	int saved_errno = errno; /* logging never changes what callers report */
	va_list args;
	int len;

	if (level > tssx_log_level || level <= TSSX_LOG_NONE)
		return;
	len = snprintf(line, sizeof(line), "tssx[%d]: %s: ", (int)getpid(), level_names[level]);
	va_start(args, fmt);
	len += vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, args);
	va_end(args);
	/* Cut: say so, rather than pass a part for the whole. */
	if (len >= (int)sizeof(line) - 1) {
		len = (int)sizeof(line) - 1 - (int)sizeof(TSSX_LOG_CUT);
		memcpy(line + len, TSSX_LOG_CUT, sizeof(TSSX_LOG_CUT) - 1);
		len += (int)sizeof(TSSX_LOG_CUT) - 1;
	}
	line[len++] = '\n';
	/* One write(2) per line so lines from several processes never interleave. */
	(void)tssx_log_write(STDERR_FILENO, line, (size_t)len);
	errno = saved_errno;
}
