/* Where the library's own long-lived fds go (conn/kept.h). */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conn/kept.h"
#include "real_slots.h"
#include "tssx/macros.h"

/* The lowest floor: the kernel's smallest fd table (NR_OPEN_DEFAULT on
 * 64-bit), which every process has. */
#define KEPT_FLOOR_MIN 64

/* The first number of the kept fds; 0 until the first is placed. */
static _Atomic int kept_floor;
_Atomic int tssx_kept_watermark = INT_MAX;
static pthread_mutex_t kept_mutex TSSX_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;

/* The forking thread took the lock before the fork (tssx_kept_lock):
 * in the child it is that thread's to give back. */
TSSX_FORK_HANDLER static void unlock_after_fork(void)
{
	pthread_mutex_unlock(&kept_mutex);
}

static void register_fork_handlers(void)
{
	pthread_atfork(tssx_kept_lock, unlock_after_fork, unlock_after_fork);
}

void tssx_kept_lock(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, register_fork_handlers);
	pthread_mutex_lock(&kept_mutex);
}

void tssx_kept_unlock(void)
{
	pthread_mutex_unlock(&kept_mutex);
}

/* Half the soft fd limit: the floor stays below it, so that the kept
 * fds have room above it. */
static int limit_half(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur / 2 > INT_MAX / 4)
		return INT_MAX / 4;
	return (int)(limit.rlim_cur / 2);
}

/* The floor for a program whose numbers reached fd: the first power of
 * two above twice fd, at least KEPT_FLOOR_MIN, at most half the limit:
 * at most four times the program's highest number, so that the kernel's
 * table (the power of two above the highest fd) holds the program's fds
 * and the kept ones above them in about 8 times what the program's alone
 * need. */
static int floor_for(int fd)
{
	int half = limit_half(), floor = KEPT_FLOOR_MIN;

	while (floor <= 2 * fd && floor < half)
		floor *= 2;
	return floor < half ? floor : half;
}

/* The program's numbers may reach half the floor before it moves; at
 * half the limit it stays. */
static void publish_watermark(int floor)
{
	atomic_store(&tssx_kept_watermark, floor < limit_half() ? floor / 2 : INT_MAX);
}

/* The floor; the first one from lowest, the lowest free number. */
static int floor_now(int lowest)
{
	int floor = atomic_load(&kept_floor), none = 0;

	if (floor)
		return floor;
	floor = floor_for(lowest);
	if (!atomic_compare_exchange_strong(&kept_floor, &none, floor))
		return none;
	publish_watermark(floor);
	return floor;
}

int tssx_kept_place(int fd)
{
	int floor, moved;

	if (fd < 0 || fd >= (floor = floor_now(fd)))
		return fd;
	moved = TSSX_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, floor);
	if (moved < 0)
		return fd;
	TSSX_REAL(close)(fd);
	return moved;
}

int tssx_kept_copy(int fd)
{
	int copy = TSSX_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, floor_now(fd));

	return copy >= 0 ? copy : TSSX_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
}

void tssx_kept_alias(int fd, struct tssx_fd_object *obj)
{
	if (fd >= 0 && !tssx_table_get(fd))
		tssx_table_set_alias(fd, obj);
}

int tssx_kept_raise_floor(int fd)
{
	int floor = floor_for(fd);

	if (floor <= atomic_load(&kept_floor))
		return 0;
	atomic_store(&kept_floor, floor);
	publish_watermark(floor);
	return floor;
}
