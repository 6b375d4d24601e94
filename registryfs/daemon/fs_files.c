/*
 * Entries' content: one digit '0'..'3' and a newline, the OR of the
 * contributions of the entry's open handles (docs/design.md §1).
 *
 * Read-only handles go through the page cache, so a client that keeps one
 * open answers its lookups without the daemon; no handle keeps the cache
 * across open, so a fresh open sees every change already answered.
 * Writable handles are direct I/O: a write is a message to the daemon, never
 * data the page cache should remember.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "tssx/log.h"
#include "tssx/registry_protocol.h"
#include "tssx/registry_name.h"
#include "fs.h"

/* The handle of a request, under the lock; NULL once released (a request
 * of a killed caller can arrive after the release of its handle). */
static struct reg_handle *handle_of(const struct fuse_file_info *fi)
{
	return table_handle(registry.table, fi->fh);
}

static void set_open_flags(struct fuse_file_info *fi, const struct reg_handle *h)
{
	fi->fh = h->id;
	fi->direct_io = (fi->flags & O_ACCMODE) != O_RDONLY;
	fi->keep_cache = 0;
	/* No FLUSH on close: a daemon that is stopped or hung would make
	 * every close(2) of an entry wait for it (release is asynchronous). */
	fi->noflush = 1;
}

/* The reply never reached the kernel: nothing will release the handle. */
static void undo_open(const struct fuse_file_info *fi, uint64_t ino, bool counted_lookup)
{
	struct reg_handle *h;

	registry_lock();
	h = handle_of(fi);
	if (h)
		table_release(registry.table, h);
	if (counted_lookup)
		table_forget(registry.table, ino, 1);
	notifier_send(registry_unlock());
}

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct reg_handle *h = NULL;
	struct fuse_entry_param e;
	struct pending_inval pending;
	int r;

	registry_lock();
	r = table_create(registry.table, parent, name, fi->flags & O_EXCL, ctx->uid, ctx->gid, &h);
	if (r == 0) {
		fs_fill_entry(&e, h->node);
		set_open_flags(fi, h);
	}
	pending = registry_unlock();
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (fuse_reply_create(req, &e, fi) < 0)
		undo_open(fi, e.ino, true);
	notifier_send(pending);
}

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct reg_handle *h = NULL;
	struct pending_inval pending;
	int r;

	if (generation_is(ino)) {
		generation_open(req, fi);
		return;
	}
	registry_lock();
	/* ESTALE on an entry that went away makes the kernel look it up again. */
	r = table_open(registry.table, ino, &h);
	if (r == 0)
		set_open_flags(fi, h);
	pending = registry_unlock();
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (fuse_reply_open(req, fi) < 0)
		undo_open(fi, ino, false);
	notifier_send(pending);
}

/* The claims are re-checked first, so a read that reaches the daemon never
 * shows a server bit whose socket is already gone. */
void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	size_t remaining;
	struct pending_inval pending;
	const struct reg_handle *h;
	char content[2];

	if (generation_is(ino)) {
		generation_read(req, size, off);
		return;
	}
	pending = claims_recheck(ino, CLAIM_NONE, &remaining);
	registry_lock();
	h = handle_of(fi);
	if (h)
		content[0] = (char)('0' + h->node->shown);
	content[1] = '\n';
	notifier_send(registry_unlock());
	if (!h)
		fuse_reply_err(req, EBADF);
	else if (off < 0 || off >= (off_t)sizeof(content))
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, content + off,
			       size < sizeof(content) - (size_t)off ? size : sizeof(content) - (size_t)off);
	notifier_send(pending);
}

/* Checks the writer's right to the server bit of the handle's entry. */
static int claim_server_bit(fuse_req_t req, const struct fuse_file_info *fi, struct claim *claim)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char name[TSSX_REGISTRY_NAME_MAX];
	const struct reg_handle *h;
	int r = -EBADF;

	registry_lock();
	h = handle_of(fi);
	if (h)
		r = table_name(h->node, name, sizeof(name));
	notifier_send(registry_unlock());
	if (r < 0)
		return r;
	return trust_claim(registry.probes, name, ctx->uid, ctx->pid, claim);
}

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	struct claim claim;
	struct reg_handle *h;
	struct pending_inval pending;
	int bits = table_parse_bits(buf, size);
	int r = bits < 0 ? bits : 0;

	if (r == 0 && (bits & TSSX_BIT_SERVER))
		r = claim_server_bit(req, fi, &claim);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	registry_lock();
	h = handle_of(fi);
	if (h)
		table_set_bits(registry.table, h, (unsigned)bits,
			       (bits & TSSX_BIT_SERVER) ? &claim : NULL);
	pending = registry_unlock();
	if (h)
		fuse_reply_write(req, size);
	else
		fuse_reply_err(req, EBADF);
	notifier_send(pending);
	if (bits & TSSX_BIT_SERVER)
		watcher_kick();
}

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct reg_handle *h;
	struct pending_inval pending;

	registry_lock();
	h = handle_of(fi);
	if (h)
		table_release(registry.table, h);
	pending = registry_unlock();
	fuse_reply_err(req, 0);
	notifier_send(pending);
}
