/* One-time set-up of the preload library (init.h). */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "conn/connection.h"
#include "conn/handover.h"
#include "conn/kept.h"
#include "init.h"
#include "real_slots.h"
#include "shims/shims.h"
#include "conn/fd_table.h"
#include "tssx/log.h"
#include "tssx/macros.h"
#include "tssx/registry_client.h"
#include "tssx/registry_name.h"

struct tssx_options tssx_opts;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

/* The process the table belongs to; fork() children take it over.  The
 * first of the library's fork data (init.c links first): its alignment
 * puts all of it on one page (tssx/macros.h, TSSX_FORK_DATA). */
static _Atomic pid_t table_pid TSSX_FORK_DATA __attribute__((aligned(4096)));

/* Every fd the registry client keeps points here in the fd table. */
static struct tssx_fd_object registry_fd = { .kind = TSSX_FD_REGISTRY };

static void registry_fd_kept(int fd)
{
	tssx_table_set_alias(fd, &registry_fd);
}

static void registry_fd_dropped(int fd)
{
	struct tssx_fd_object *obj = tssx_table_get(fd);

	if (obj == &registry_fd)
		tssx_table_take(fd);
}

static int real_close(int fd)
{
	return TSSX_REAL(close)(fd);
}

static ssize_t real_write(int fd, const void *buf, size_t len)
{
	return TSSX_REAL(write)(fd, buf, len);
}

static void warn_option(const char *message)
{
	tssx_log(TSSX_LOG_WARN, "%s", message);
}

/* No allocation here: the pid of the child, which owns its copy of the
 * table, without the calls of the threads it did not inherit. */
TSSX_FORK_HANDLER static void took_over_after_fork(void)
{
	atomic_store(&table_pid, getpid());
	tssx_conn_forget_calls_after_fork();
	tssx_stdio_after_fork();
}

bool tssx_foreign_process(void)
{
	pid_t owner = atomic_load(&table_pid);

	return owner && owner != getpid();
}

pid_t tssx_owner_pid(void)
{
	return atomic_load(&table_pid);
}

static void init_once_fn(void)
{
	atomic_store(&table_pid, getpid());
	pthread_atfork(NULL, NULL, took_over_after_fork);
	tssx_log_write = real_write;
	tssx_options_parse(&tssx_opts, getenv, warn_option);
	tssx_log_level = tssx_opts.log_level;
	if (tssx_opts.disabled)
		log_debug("disabled by TSSX_DISABLE");
}

/* The registry only once a socket call needs it: a process that never
 * names a Unix socket pays no FUSE round trip and keeps no fd of ours. */
static void registry_once_fn(void)
{
	static const struct tssx_registry_hooks hooks = {
		.close = real_close,
		.fd_kept = registry_fd_kept,
		.fd_dropped = registry_fd_dropped,
		.copy_fd = tssx_kept_copy,
	};
	/* Only remembers it (the options checked the path): the first lookup
	 * or claim looks for the registry, on its own hand-over to the helper
	 * thread, not on one more. */
	tssx_registry_client_init(tssx_opts.registry, tssx_opts.registry_timeout_ms, &hooks);
}

bool tssx_init(void)
{
	pthread_once(&init_once, init_once_fn);
	return !tssx_opts.disabled;
}

bool tssx_selects(const struct sockaddr_un *addr, unsigned addrlen)
{
	/* Not initialised: it is only needed with patterns, and zeroing it
	 * cost every connect about 80 instructions. */
	char name[1 + TSSX_REGISTRY_NAME_MAX];

	if (!tssx_init())
		return false;
	pthread_once(&registry_once, registry_once_fn);
	if (!tssx_opts.include[0] && !tssx_opts.exclude[0])
		return true;
	name[0] = '/';
	if (tssx_registry_name_from_addr(addr, addrlen, name + 1, sizeof(name) - 1) < 0)
		return false;
	/* Patterns name paths as "/tmp/s.sock" and abstract sockets as "@name". */
	return tssx_options_selects(&tssx_opts, tssx_registry_name_is_abstract(name + 1) ? name + 1 : name);
}

__attribute__((constructor)) static void tssx_constructor(void)
{
	tssx_init();
	/* Before main(): the connections an exec handed to this image, and
	 * the standard streams of those on fds 0-2. */
	tssx_handover_adopt();
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
		if (tssx_conn_lookup(fd))
			tssx_stdio_adopt(fd);
}

/* exit(): the connection streams' output is written while this process
 * still uses its connections' pairs; then the pairs are free for its
 * forks (not at _exit() or a signal: those pairs stay taken, and their
 * connections' structs are not reused).  glibc flushes the streams only
 * after every destructor: what a later one writes still goes through the
 * rings then, counted as this process's though it left. */
__attribute__((destructor)) static void tssx_destructor(void)
{
	tssx_stdio_flush();
	tssx_conn_judge_at_exit();
	tssx_conn_leave_pairs();
}
