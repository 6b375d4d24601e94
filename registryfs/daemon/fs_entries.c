/*
 * Names and directories.  Lookups are answered with long timeouts, misses
 * included (a negative entry), so a steady-state lookup never reaches the
 * daemon: every name appears through the kernel (create, mkdir), which
 * updates its own caches, and every name the daemon removes on its own is
 * invalidated by fs_notify.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fs.h"

/* Every user may create entries and set client bits; the daemon decides
 * (no default_permissions), and the modes say so. */
#define DIR_MODE (S_IFDIR | 01777)
#define FILE_MODE (S_IFREG | 0666)
#define FILE_SIZE 2 /* a digit and a newline */

static void fill_attr(struct stat *st, const struct reg_node *n)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->is_dir ? DIR_MODE : FILE_MODE;
	st->st_nlink = n->is_dir ? 2 : 1;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_size = n->is_dir ? 0 : FILE_SIZE;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = n->changed;
}

void fs_fill_entry(struct fuse_entry_param *e, const struct reg_node *node)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = REGISTRY_CACHE_SECONDS;
	if (!node)
		return;
	e->ino = node->ino;
	e->attr_timeout = REGISTRY_CACHE_SECONDS;
	fill_attr(&e->attr, node);
}

/* Replies to a request that yields a node: its entry, or the error. */
static void reply_entry(fuse_req_t req, int r, const struct reg_node *node)
{
	struct fuse_entry_param e;
	struct pending_inval pending;

	if (r == 0)
		fs_fill_entry(&e, node);
	pending = registry_unlock();
	if (r == 0)
		fuse_reply_entry(req, &e);
	else
		fuse_reply_err(req, -r);
	notifier_send(pending);
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct reg_node *node = NULL;
	int r;

	if (generation_lookup(req, parent, name))
		return;
	registry_lock();
	r = table_lookup(registry.table, parent, name, &node);
	/* A miss is cached too: ino 0 with an entry timeout. */
	reply_entry(req, r == -ENOENT ? 0 : r, node);
}

void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	registry_lock();
	table_forget(registry.table, ino, nlookup);
	notifier_send(registry_unlock());
	fuse_reply_none(req);
}

void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	registry_lock();
	for (size_t i = 0; i < count; i++)
		table_forget(registry.table, forgets[i].ino, forgets[i].nlookup);
	notifier_send(registry_unlock());
	fuse_reply_none(req);
}

/* Replies with the node's attributes, under the lock taken by the caller. */
static void reply_attr(fuse_req_t req, fuse_ino_t ino)
{
	const struct reg_node *node = table_node(registry.table, ino);
	struct pending_inval pending;
	struct stat st;

	if (node)
		fill_attr(&st, node);
	pending = registry_unlock();
	if (node)
		fuse_reply_attr(req, &st, REGISTRY_CACHE_SECONDS);
	else
		fuse_reply_err(req, ENOENT);
	notifier_send(pending);
}

void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (generation_is(ino)) {
		generation_getattr(req);
		return;
	}
	registry_lock();
	reply_attr(req, ino);
}

/* Only a truncation (open with O_TRUNC, as a shell's '>' does) is
 * accepted, and changes nothing: the content is always a digit. */
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	if ((to_set & ~FUSE_SET_ATTR_SIZE) || generation_is(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	registry_lock();
	reply_attr(req, ino);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct reg_node *node = NULL;
	int r;

	registry_lock();
	r = table_mkdir(registry.table, parent, name, ctx->uid, ctx->gid, &node);
	reply_entry(req, r, node);
	if (r == 0)
		watcher_kick(); /* to remove it if it stays empty */
}

static void reply_status(fuse_req_t req, int r)
{
	struct pending_inval pending = registry_unlock();

	fuse_reply_err(req, -r);
	notifier_send(pending);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	registry_lock();
	reply_status(req, table_rmdir(registry.table, parent, name));
}

/* Entries belong to their open handles: closing them is the only way out. */
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EPERM);
}

/* A directory listing, taken whole at opendir so that readdir pages
 * through a consistent snapshot.  The kernel holds its id: a readdir of a
 * killed caller can arrive after the releasedir.  All open ones are kept
 * (under the registry lock) also because the kernel sends no releasedir
 * for directories still open when the daemon stops. */
struct dir_snapshot {
	uint64_t id;
	char *buf;
	size_t size;
	UT_hash_handle hh;
};

static struct dir_snapshot *open_snapshots;
static uint64_t last_snapshot_id;

static void free_snapshot(struct dir_snapshot *d)
{
	HASH_DEL(open_snapshots, d);
	free(d->buf);
	free(d);
}

void fs_free_snapshots(void)
{
	struct dir_snapshot *d, *tmp;

	HASH_ITER(hh, open_snapshots, d, tmp)
		free_snapshot(d);
}

static struct dir_snapshot *snapshot_of(const struct fuse_file_info *fi)
{
	struct dir_snapshot *d;

	HASH_FIND(hh, open_snapshots, &fi->fh, sizeof(fi->fh), d);
	return d;
}

static int add_dirent(fuse_req_t req, struct dir_snapshot *d, const char *name,
		      const struct reg_node *node)
{
	struct stat st = { .st_ino = node->ino, .st_mode = node->is_dir ? DIR_MODE : FILE_MODE };
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
	char *grown = realloc(d->buf, d->size + need);

	if (!grown)
		return -ENOMEM;
	d->buf = grown;
	fuse_add_direntry(req, d->buf + d->size, need, name, &st, (off_t)(d->size + need));
	d->size += need;
	return 0;
}

static int snapshot_dir(fuse_req_t req, const struct reg_node *dir, struct dir_snapshot *d)
{
	const struct reg_node *child, *tmp;
	int r = add_dirent(req, d, ".", dir);

	if (r == 0)
		r = add_dirent(req, d, "..", dir->parent ? dir->parent : dir);
	HASH_ITER(hh, dir->children, child, tmp)
		if (r == 0)
			r = add_dirent(req, d, child->name, child);
	return r;
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_snapshot *d = calloc(1, sizeof(*d));
	const struct reg_node *dir;
	int r = d ? 0 : -ENOMEM;

	registry_lock();
	dir = table_node(registry.table, ino);
	if (r == 0 && (!dir || !dir->attached))
		r = -ESTALE;
	else if (r == 0 && !dir->is_dir)
		r = -ENOTDIR;
	if (r == 0) {
		d->id = ++last_snapshot_id;
		HASH_ADD(hh, open_snapshots, id, sizeof(d->id), d);
		r = snapshot_dir(req, dir, d);
	}
	if (r < 0 && d && d->id)
		free_snapshot(d);
	else if (r < 0)
		free(d);
	notifier_send(registry_unlock());
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = d->id;
	if (fuse_reply_open(req, fi) < 0)
		fs_releasedir(NULL, ino, fi);
}

/* Replies under the lock: the snapshot may otherwise go meanwhile. */
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	const struct dir_snapshot *d;
	size_t at;

	registry_lock();
	d = snapshot_of(fi);
	at = !d || off < 0 ? SIZE_MAX : (size_t)off;
	if (!d)
		fuse_reply_err(req, EBADF);
	else if (at >= d->size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, d->buf + at, d->size - at < size ? d->size - at : size);
	notifier_send(registry_unlock());
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_snapshot *d;

	registry_lock();
	d = snapshot_of(fi);
	if (d)
		free_snapshot(d);
	notifier_send(registry_unlock());
	if (req)
		fuse_reply_err(req, 0);
}

/* The root answers TSSX_REGISTRY_XATTR with the daemon's version; nothing else
 * has attributes. */
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	static const char version[] = "tssx-registryfs " TSSX_VERSION;

	if (ino != REG_ROOT_INO || strcmp(name, TSSX_REGISTRY_XATTR) != 0)
		fuse_reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, sizeof(version) - 1);
	else if (size < sizeof(version) - 1)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, version, sizeof(version) - 1);
}
