/*
 * The generation file (TSSX_REGISTRY_GENERATION): one counter that the
 * notifier increments after each batch of invalidations of entries' bits,
 * and stores straight into the kernel's page cache (notify_store), so that
 * a client that keeps the page mapped and locked sees every change with a
 * load instead of a system call per lookup (docs/registry.md, Speed).
 *
 * Nothing but the daemon may change the page: the file is opened read-only
 * only, keeps its cache across opens, and its attributes never change (the
 * kernel drops a file's pages when its size or mtime does).  It is not in
 * the table: no quota, no listing, no claims.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>

#include "tssx/log.h"
#include "tssx/registry_protocol.h"
#include "fs.h"

static _Atomic uint64_t generation;

bool generation_is(fuse_ino_t ino)
{
	return ino == REG_GENERATION_INO;
}

static void fill_attr(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = REG_GENERATION_INO;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = sizeof(uint64_t);
	st->st_blksize = 4096;
}

bool generation_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (parent != REG_ROOT_INO || strcmp(name, TSSX_REGISTRY_GENERATION) != 0)
		return false;
	memset(&e, 0, sizeof(e));
	e.ino = REG_GENERATION_INO;
	e.entry_timeout = e.attr_timeout = REGISTRY_CACHE_SECONDS;
	fill_attr(&e.attr);
	fuse_reply_entry(req, &e);
	return true;
}

void generation_getattr(fuse_req_t req)
{
	struct stat st;

	fill_attr(&st);
	fuse_reply_attr(req, &st, REGISTRY_CACHE_SECONDS);
}

/* Read-only, and no O_TRUNC: the kernel would drop the page. */
void generation_open(fuse_req_t req, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fi->fh = 0;
	fi->keep_cache = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

void generation_read(fuse_req_t req, size_t size, off_t off)
{
	/* Relaxed: the value only has to be one the notifier stored. */
	uint64_t value = atomic_load_explicit(&generation, memory_order_relaxed);

	if (off < 0 || off >= (off_t)sizeof(value))
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, (const char *)&value + off,
			       size < sizeof(value) - (size_t)off ? size : sizeof(value) - (size_t)off);
}

/* Called by the notifier only, after the invalidations it sent returned:
 * a client that sees the new value finds the changed pages gone. */
void generation_bump(void)
{
	uint64_t value = atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed) + 1;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(sizeof(value));
	int r;

	buf.buf[0].mem = &value;
	r = fuse_lowlevel_notify_store(registry.se, REG_GENERATION_INO, 0, &buf, 0);
	/* ENOENT: no process has the file open, nothing to update. */
	if (r < 0 && r != -ENOENT && r != -EBADF && r != -ENOTCONN)
		log_warn(0, "storing the generation failed: %s", strerror(-r));
}
