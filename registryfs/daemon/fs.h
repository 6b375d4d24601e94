/*
 * The FUSE glue of tssx-registryfs: one registry (table, lock, session) and
 * the low-level operations, split by concern:
 *
 *   fs_entries.c  names and directories: lookup, forget, getattr, mkdir ...
 *   fs_files.c    entries' content: create, open, read, write, release
 *   fs_notify.c   kernel cache invalidations, sent after the replies
 *   fs_claims.c   the sockets behind server bits: probes and the watcher
 *   fs_generation.c  the generation file, outside the table
 */
#ifndef TSSX_REGISTRYFS_FS_H
#define TSSX_REGISTRYFS_FS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>
#include <pthread.h>

#include "table.h"
#include "trust.h"
#include "tssx/registry_protocol.h"

/* The kernel keeps names, attributes and content this long: the daemon
 * invalidates them itself whenever they change. */
#define REGISTRY_CACHE_SECONDS 3600.0

struct registry {
	struct fuse_session *se;
	pthread_mutex_t lock; /* guards table */
	struct reg_table *table;
	const struct trust_probes *probes;
};

extern struct registry registry;

/* Events the table queued, to send once the current request is answered. */
struct pending_inval {
	struct reg_event *events;
	size_t n;
};

/* Unlocks the registry and keeps its queued events for after the reply. */
struct pending_inval registry_unlock(void);
void registry_lock(void);

/* Hands events to the notifier thread; call only after replying. */
void notifier_send(struct pending_inval pending);
int notifier_start(void);
/* After the loop: stops the thread, aborting a stuck invalidation. */
void notifier_stop(const char *mountpoint);

extern const struct trust_probes os_probes;
/* Voids the claims of node `ino` (all when 0) of `kind` (any: CLAIM_NONE)
 * whose socket is gone, probing without the lock; *remaining counts the
 * valid ones left.  The caller sends the result after its reply. */
struct pending_inval claims_recheck(uint64_t ino, enum claim_kind kind, size_t *remaining);
/* Wakes the watcher: a claim appeared, it may need a new watch. */
void watcher_kick(void);
int watcher_start(void);
void watcher_stop(void);

/* What the kernel may do with the mount, asked once at its start. */
void fs_init(void *userdata, struct fuse_conn_info *conn);
void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
/* req may be NULL: a reply to opendir that never reached the kernel. */
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Frees the listings of directories still open when the daemon stops. */
void fs_free_snapshots(void);
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi);
void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* The generation file (fs_generation.c): an inode the table never uses. */
#define REG_GENERATION_INO (UINT64_MAX - 1)
bool generation_is(fuse_ino_t ino);
/* Replies and returns true when `name` in `parent` is the generation file. */
bool generation_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void generation_getattr(fuse_req_t req);
void generation_open(fuse_req_t req, struct fuse_file_info *fi);
void generation_read(fuse_req_t req, size_t size, off_t off);
/* The notifier's, after a batch that invalidated entries' content. */
void generation_bump(void);

/* Fills the entry reply for a node (a negative entry when NULL). */
void fs_fill_entry(struct fuse_entry_param *e, const struct reg_node *node);

#endif
