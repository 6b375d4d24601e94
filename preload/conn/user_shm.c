/* Memory that every TSSX process of one user shares (user_shm.h). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn/user_shm.h"

void *tssx_user_shm_map(const char *name, size_t size)
{
	char path[96];
	struct stat st;
	void *mem;
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/%s-%u", name, (unsigned)getuid());
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
	    ((size_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0)) {
		close(fd);
		return NULL;
	}
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return mem == MAP_FAILED ? NULL : mem;
}
