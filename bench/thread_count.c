/* The threads of this process (thread_count.h). */
#include <dirent.h>
#include <errno.h>

#include "thread_count.h"

int thread_count(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *d;
	int n = 0;

	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}
