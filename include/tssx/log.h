/*
 * Logging shared by the daemon, the preload library and the pure core.
 * Every line goes to stderr as "tssx[PID]: LEVEL: message".  The preload
 * points tssx_log_write at the real write(2) so that logging never re-enters
 * its own wrappers.
 */
#ifndef TSSX_LOG_H
#define TSSX_LOG_H

#include <sys/types.h>

enum tssx_log_level {
	TSSX_LOG_NONE = 0,
	TSSX_LOG_ERROR,
	TSSX_LOG_WARN,
	TSSX_LOG_INFO,
	TSSX_LOG_DEBUG,
};

/* Lines above this level are dropped. Default TSSX_LOG_WARN. */
extern int tssx_log_level;
/* Where lines go; defaults to write(2). */
extern ssize_t (*tssx_log_write)(int fd, const void *buf, size_t len);

/* The longest line written, its newline included; a longer one is cut
 * there and ends with TSSX_LOG_CUT. */
#define TSSX_LOG_LINE_MAX 1024
#define TSSX_LOG_CUT " [cut]"

void tssx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `return log_error(-EINVAL, "bad %s", x);` logs and yields the value. */
#define log_error(ret, ...) ({ tssx_log(TSSX_LOG_ERROR, __VA_ARGS__); (ret); })
#define log_warn(ret, ...) ({ tssx_log(TSSX_LOG_WARN, __VA_ARGS__); (ret); })
#define log_info(...) tssx_log(TSSX_LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (tssx_log_level >= TSSX_LOG_DEBUG) tssx_log(TSSX_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
