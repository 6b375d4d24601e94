/*
 * The registry's table: a tree of directory nodes implied by the entries
 * below them and file nodes (entries) whose bits are the OR of their open
 * handles' contributions (docs/design.md §1).  Pure bookkeeping, no FUSE and no
 * locking: the daemon serialises calls with one mutex.
 *
 * Changes the kernel may have cached are queued as events (struct
 * reg_event) that the daemon sends as invalidations after replying.
 */
#ifndef TSSX_REGISTRYFS_TABLE_H
#define TSSX_REGISTRYFS_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <uthash.h>

#include "trust.h"

#define REG_ROOT_INO 1

struct reg_handle;

struct reg_node {
	uint64_t ino;
	uint64_t nlookup;            /* the kernel's references, until forget */
	struct reg_node *parent;     /* NULL for the root and once detached */
	struct reg_node *children;   /* directories: by name */
	unsigned nchildren;
	struct reg_handle *handles;  /* files: the open handles */
	bool is_dir;
	bool attached;               /* visible in its parent */
	unsigned shown;              /* bits the file shows */
	uid_t uid;
	gid_t gid;
	struct timespec changed;     /* mtime and ctime */
	UT_hash_handle hh;           /* in parent->children */
	UT_hash_handle hh_ino;       /* in table->nodes */
	char name[];
};

struct reg_handle {
	uint64_t id;                 /* what the kernel holds (fi->fh) */
	struct reg_node *node;
	unsigned bits;               /* this handle's contribution */
	struct claim claim;          /* what its server bit stands for */
	struct reg_handle *prev, *next;
	UT_hash_handle hh;           /* in the table, by id */
};

enum reg_event_kind {
	REG_INVAL_INODE, /* attributes and content of `ino` */
	REG_INVAL_ENTRY, /* the dentry `name` in directory `parent` */
};

struct reg_event {
	enum reg_event_kind kind;
	uint64_t ino;
	uint64_t parent;
	char *name;
};

struct reg_table;

/* At most max_entries attached nodes in all (then ENOSPC), and at most
 * max_user_entries created by one uid other than root (then EDQUOT).
 * `mountpoint` (absolute, canonical): names decoding to it or below are
 * refused, since the daemon would stat into its own mount. */
struct reg_table *table_new(unsigned max_entries, unsigned max_user_entries, const char *mountpoint);
void table_free(struct reg_table *t);

/* Any node the kernel may still name, attached or not; NULL if unknown. */
struct reg_node *table_node(struct reg_table *t, uint64_t ino);
unsigned table_entry_count(const struct reg_table *t);
/* The attached nodes (entries and directories) that uid created. */
unsigned table_user_count(const struct reg_table *t, uid_t uid);

/* Each success counts one kernel reference (nlookup) on *out. */
int table_lookup(struct reg_table *t, uint64_t parent, const char *name, struct reg_node **out);
/* Finds or makes the entry and opens a handle on it (h->node). */
int table_create(struct reg_table *t, uint64_t parent, const char *name, bool excl,
		 uid_t uid, gid_t gid, struct reg_handle **out);
int table_mkdir(struct reg_table *t, uint64_t parent, const char *name, uid_t uid, gid_t gid,
		struct reg_node **out);
int table_rmdir(struct reg_table *t, uint64_t parent, const char *name);
void table_forget(struct reg_table *t, uint64_t ino, uint64_t nlookup);

int table_open(struct reg_table *t, uint64_t ino, struct reg_handle **out);
/* The open handle with this id, or NULL once released: a request can reach
 * the daemon after the release of its handle (its caller was killed). */
struct reg_handle *table_handle(struct reg_table *t, uint64_t id);
/* What a write to an entry says: its bits, a digit 0-3 optionally followed
 * by a newline and nothing else; -EINVAL for anything else. */
int table_parse_bits(const char *buf, size_t size);
/* Sets the handle's contribution; `claim` must be valid when bits has
 * the server bit. */
void table_set_bits(struct reg_table *t, struct reg_handle *h, unsigned bits,
		    const struct claim *claim);
/* Drops the handle's bits; an entry left without handles disappears. */
void table_release(struct reg_table *t, struct reg_handle *h);

/* The node's registry name ("tmp/a.sock"); -ENAMETOOLONG if size is short. */
int table_name(const struct reg_node *node, char *out, size_t size);

/*
 * Copies the valid claims of node `ino` (every node when 0) of `kind` (any
 * when CLAIM_NONE) into a malloc'd *out, so the daemon can probe their
 * sockets without holding its lock.  Returns how many, or -ENOMEM.
 */
ssize_t table_collect_claims(struct reg_table *t, uint64_t ino, enum claim_kind kind,
			     struct claim **out);
/* Voids for good the claims with these ids (they no longer hold) and
 * recomputes the bits their entries show. */
void table_void_claims(struct reg_table *t, uint64_t *ids, size_t n);

/*
 * Detaches the directories that have stayed empty since their mkdir for
 * `grace` seconds before `now` (their writer died between its mkdir and
 * its create); returns how many younger empty ones remain.
 */
unsigned table_reap_empty_dirs(struct reg_table *t, time_t now, time_t grace);

/* Moves the queued events out; the caller frees them with table_free_events. */
size_t table_take_events(struct reg_table *t, struct reg_event **events);
void table_free_events(struct reg_event *events, size_t n);

#endif
