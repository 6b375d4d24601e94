/*
 * The registry's table (table.h).
 *
 * Lifetimes: a file node is attached (visible) while it has open handles; a
 * directory while it has children, or from its mkdir until it empties.  A
 * detached node stays known by inode number until the kernel forgets its
 * last reference, so late requests on it get ESTALE instead of a wild
 * pointer.  Only attached nodes count against the bounds: all of them
 * against max_entries, and each against its creator's quota (root has
 * none), so that no user can fill the registry for the others.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "tssx/log.h"
#include "tssx/registry_protocol.h"
#include "tssx/registry_name.h"
#include "table.h"

#define SOCKET_PATH_MAX (TSSX_SUN_PATH_MAX - 1)

/* How many attached nodes one uid created. */
struct reg_usage {
	uid_t uid;
	unsigned count;
	UT_hash_handle hh;
};

struct reg_table {
	struct reg_node *nodes; /* every known node, by inode number */
	struct reg_handle *handles; /* every open handle, by id */
	uint64_t last_handle_id;
	struct reg_node *root;
	uint64_t next_ino;
	uint64_t last_claim_id;
	unsigned count;         /* attached nodes, root excluded */
	unsigned max_entries;
	unsigned max_user_entries;
	struct reg_usage *usage; /* by uid; only uids that hold nodes */
	char *mountpoint;
	struct reg_event *events;
	size_t nevents;
	size_t events_cap;
};

static void push_event(struct reg_table *t, enum reg_event_kind kind, uint64_t ino,
		       uint64_t parent, const char *name)
{
	struct reg_event *ev;

	if (t->nevents == t->events_cap) {
		size_t cap = t->events_cap ? 2 * t->events_cap : 16;
		struct reg_event *grown = realloc(t->events, cap * sizeof(*grown));

		if (!grown) {
			log_error(0, "out of memory: a kernel cache stays stale");
			return;
		}
		t->events = grown;
		t->events_cap = cap;
	}
	ev = &t->events[t->nevents++];
	*ev = (struct reg_event){ .kind = kind, .ino = ino, .parent = parent };
	ev->name = name ? strdup(name) : NULL;
}

static void touch(struct reg_node *n)
{
	clock_gettime(CLOCK_REALTIME, &n->changed);
}

static struct reg_node *node_new(struct reg_table *t, const char *name, bool is_dir)
{
	struct reg_node *n = calloc(1, sizeof(*n) + strlen(name) + 1);

	if (!n)
		return NULL;
	strcpy(n->name, name);
	n->ino = t->next_ino++;
	n->is_dir = is_dir;
	touch(n);
	HASH_ADD(hh_ino, t->nodes, ino, sizeof(n->ino), n);
	return n;
}

static void handle_free(struct reg_table *t, struct reg_handle *h)
{
	DL_DELETE(h->node->handles, h);
	HASH_DEL(t->handles, h);
	free(h);
}

static void node_free(struct reg_table *t, struct reg_node *n)
{
	struct reg_handle *h, *tmp;

	DL_FOREACH_SAFE(n->handles, h, tmp)
		handle_free(t, h);
	HASH_DELETE(hh_ino, t->nodes, n);
	free(n);
}

static void free_if_unreferenced(struct reg_table *t, struct reg_node *n)
{
	if (!n->attached && n->nlookup == 0 && !n->handles)
		node_free(t, n);
}

static struct reg_usage *usage_of(const struct reg_table *t, uid_t uid)
{
	struct reg_usage *u;

	HASH_FIND(hh, t->usage, &uid, sizeof(uid), u);
	return u;
}

unsigned table_user_count(const struct reg_table *t, uid_t uid)
{
	struct reg_usage *u = usage_of(t, uid);

	return u ? u->count : 0;
}

static void count_user(struct reg_table *t, uid_t uid, int delta)
{
	struct reg_usage *u = usage_of(t, uid);

	if (!u && delta > 0) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return; /* uncounted: the quota is a bound, not a ledger */
		u->uid = uid;
		HASH_ADD(hh, t->usage, uid, sizeof(u->uid), u);
	}
	if (!u)
		return;
	u->count += (unsigned)delta;
	if (u->count == 0) {
		HASH_DEL(t->usage, u);
		free(u);
	}
}

static void attach(struct reg_table *t, struct reg_node *parent, struct reg_node *n)
{
	HASH_ADD_KEYPTR(hh, parent->children, n->name, strlen(n->name), n);
	parent->nchildren++;
	n->parent = parent;
	n->attached = true;
	t->count++;
	count_user(t, n->uid, 1);
}

/* Removes n from its directory, and every directory it leaves empty. */
static void detach(struct reg_table *t, struct reg_node *n)
{
	while (n && n != t->root) {
		struct reg_node *parent = n->parent;

		HASH_DELETE(hh, parent->children, n);
		parent->nchildren--;
		push_event(t, REG_INVAL_ENTRY, n->ino, parent->ino, n->name);
		n->parent = NULL;
		n->attached = false;
		t->count--;
		count_user(t, n->uid, -1);
		free_if_unreferenced(t, n);
		n = parent->nchildren == 0 ? parent : NULL;
	}
}

struct reg_table *table_new(unsigned max_entries, unsigned max_user_entries, const char *mountpoint)
{
	struct reg_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->next_ino = REG_ROOT_INO;
	t->max_entries = max_entries;
	t->max_user_entries = max_user_entries;
	t->mountpoint = strdup(mountpoint);
	t->root = node_new(t, "", true);
	if (!t->mountpoint || !t->root) {
		table_free(t);
		return NULL;
	}
	t->root->attached = true;
	return t;
}

void table_free(struct reg_table *t)
{
	struct reg_node *n, *tmp;
	struct reg_usage *u, *next;

	if (!t)
		return;
	HASH_ITER(hh_ino, t->nodes, n, tmp) {
		if (n->is_dir)
			HASH_CLEAR(hh, n->children);
		node_free(t, n);
	}
	table_free_events(t->events, t->nevents);
	HASH_ITER(hh, t->usage, u, next) {
		HASH_DEL(t->usage, u);
		free(u);
	}
	free(t->mountpoint);
	free(t);
}

struct reg_node *table_node(struct reg_table *t, uint64_t ino)
{
	struct reg_node *n;

	HASH_FIND(hh_ino, t->nodes, &ino, sizeof(ino), n);
	return n;
}

unsigned table_entry_count(const struct reg_table *t)
{
	return t->count;
}

static int put_name(const struct reg_node *n, char *out, size_t size, size_t *len)
{
	size_t n_len = strlen(n->name);
	int r;

	if (!n->parent)
		return 0;
	r = put_name(n->parent, out, size, len);
	if (r < 0)
		return r;
	if (*len + (*len > 0) + n_len + 1 > size)
		return -ENAMETOOLONG;
	if (*len > 0)
		out[(*len)++] = '/';
	memcpy(out + *len, n->name, n_len + 1);
	*len += n_len;
	return 0;
}

int table_name(const struct reg_node *node, char *out, size_t size)
{
	size_t len = 0;

	if (!node->attached)
		return -ESTALE;
	if (size == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';
	return put_name(node, out, size, &len);
}

static bool is_inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1);
}

/* Whether `name` may be created in `parent`: a canonical registry name,
 * short enough for a sun_path, and outside the daemon's own mount. */
static int check_new_name(struct reg_table *t, const struct reg_node *parent,
			  const char *name, bool is_dir)
{
	char full[TSSX_REGISTRY_NAME_MAX + 256];
	struct sockaddr_un addr;
	socklen_t len;
	int r = table_name(parent, full, sizeof(full));
	size_t at = strlen(full);

	if (r < 0)
		return r;
	if (at + 1 + strlen(name) + 1 > sizeof(full))
		return -ENAMETOOLONG;
	if (at > 0)
		full[at++] = '/';
	strcpy(full + at, name);
	r = tssx_registry_name_decode(full, &addr, &len);
	if (r < 0)
		return r;
	if (tssx_registry_name_is_abstract(full))
		return is_dir ? -EINVAL : 0;
	/* A directory must leave room for "/x" below it. */
	if (is_dir && strlen(addr.sun_path) + 2 > SOCKET_PATH_MAX)
		return -ENAMETOOLONG;
	if (is_inside(addr.sun_path, t->mountpoint))
		return log_warn(-EINVAL, "refusing %s: inside the registry itself", addr.sun_path);
	return 0;
}

/* The directory `parent` as the target of a new name. */
static int live_dir(struct reg_table *t, uint64_t parent, struct reg_node **dir)
{
	struct reg_node *p = table_node(t, parent);

	if (!p || !p->attached)
		return -ESTALE;
	if (!p->is_dir)
		return -ENOTDIR;
	*dir = p;
	return 0;
}

int table_lookup(struct reg_table *t, uint64_t parent, const char *name, struct reg_node **out)
{
	struct reg_node *p, *n;
	int r = live_dir(t, parent, &p);

	if (r < 0)
		return r == -ESTALE ? -ENOENT : r;
	HASH_FIND_STR(p->children, name, n);
	if (!n)
		return -ENOENT;
	n->nlookup++;
	*out = n;
	return 0;
}

/* A new attached node, or -errno: the bound and the name are checked. */
static int add_node(struct reg_table *t, struct reg_node *parent, const char *name,
		    bool is_dir, uid_t uid, gid_t gid, struct reg_node **out)
{
	struct reg_node *n;
	int r = check_new_name(t, parent, name, is_dir);

	if (r < 0)
		return r;
	if (uid != 0 && table_user_count(t, uid) >= t->max_user_entries) {
		log_debug("uid %u over its quota (%u entries)", (unsigned)uid, t->max_user_entries);
		return -EDQUOT;
	}
	if (t->count >= t->max_entries)
		return log_warn(-ENOSPC, "registry full (%u entries)", t->max_entries);
	n = node_new(t, name, is_dir);
	if (!n)
		return -ENOMEM;
	n->uid = uid;
	n->gid = gid;
	attach(t, parent, n);
	*out = n;
	return 0;
}

int table_create(struct reg_table *t, uint64_t parent, const char *name, bool excl,
		 uid_t uid, gid_t gid, struct reg_handle **out)
{
	struct reg_node *p, *n;
	int r = live_dir(t, parent, &p);

	if (r < 0)
		return r;
	HASH_FIND_STR(p->children, name, n);
	if (n && excl)
		return -EEXIST;
	if (n && n->is_dir)
		return -EISDIR;
	if (!n) {
		r = add_node(t, p, name, false, uid, gid, &n);
		if (r < 0)
			return r;
	}
	r = table_open(t, n->ino, out);
	if (r < 0) {
		if (!n->handles)
			detach(t, n);
		return r;
	}
	n->nlookup++;
	return 0;
}

int table_mkdir(struct reg_table *t, uint64_t parent, const char *name, uid_t uid, gid_t gid,
		struct reg_node **out)
{
	struct reg_node *p, *n;
	int r = live_dir(t, parent, &p);

	if (r < 0)
		return r;
	HASH_FIND_STR(p->children, name, n);
	if (n)
		return -EEXIST;
	r = add_node(t, p, name, true, uid, gid, &n);
	if (r < 0)
		return r;
	n->nlookup++;
	*out = n;
	return 0;
}

int table_rmdir(struct reg_table *t, uint64_t parent, const char *name)
{
	struct reg_node *p, *n;
	int r = live_dir(t, parent, &p);

	if (r < 0)
		return r;
	HASH_FIND_STR(p->children, name, n);
	if (!n)
		return -ENOENT;
	if (!n->is_dir)
		return -ENOTDIR;
	if (n->nchildren > 0)
		return -ENOTEMPTY;
	detach(t, n);
	return 0;
}

void table_forget(struct reg_table *t, uint64_t ino, uint64_t nlookup)
{
	struct reg_node *n = table_node(t, ino);

	if (!n || n == t->root)
		return;
	n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
	free_if_unreferenced(t, n);
}

/* A server bit shows only while its claim holds. */
static unsigned visible_bits(const struct reg_handle *h)
{
	unsigned bits = h->bits & TSSX_BIT_CLIENT;

	if ((h->bits & TSSX_BIT_SERVER) && h->claim.valid)
		bits |= TSSX_BIT_SERVER;
	return bits;
}

static void update_shown(struct reg_table *t, struct reg_node *n)
{
	struct reg_handle *h;
	unsigned bits = 0;

	DL_FOREACH(n->handles, h)
		bits |= visible_bits(h);
	if (bits == n->shown)
		return;
	n->shown = bits;
	touch(n);
	push_event(t, REG_INVAL_INODE, n->ino, 0, NULL);
}

int table_open(struct reg_table *t, uint64_t ino, struct reg_handle **out)
{
	struct reg_node *n = table_node(t, ino);
	struct reg_handle *h;

	if (!n || !n->attached)
		return -ESTALE;
	if (n->is_dir)
		return -EISDIR;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->node = n;
	h->id = ++t->last_handle_id;
	DL_APPEND(n->handles, h);
	HASH_ADD(hh, t->handles, id, sizeof(h->id), h);
	*out = h;
	return 0;
}

struct reg_handle *table_handle(struct reg_table *t, uint64_t id)
{
	struct reg_handle *h;

	HASH_FIND(hh, t->handles, &id, sizeof(id), h);
	return h;
}

int table_parse_bits(const char *buf, size_t size)
{
	if (size < 1 || size > 2 || buf[0] < '0' || buf[0] > '3')
		return -EINVAL;
	if (size == 2 && buf[1] != '\n')
		return -EINVAL;
	return buf[0] - '0';
}

void table_set_bits(struct reg_table *t, struct reg_handle *h, unsigned bits,
		    const struct claim *claim)
{
	h->bits = bits;
	if (claim)
		h->claim = *claim;
	else
		memset(&h->claim, 0, sizeof(h->claim));
	h->claim.id = ++t->last_claim_id;
	update_shown(t, h->node);
}

void table_release(struct reg_table *t, struct reg_handle *h)
{
	struct reg_node *n = h->node;

	handle_free(t, h);
	update_shown(t, n);
	if (!n->handles && n->attached)
		detach(t, n);
	else
		free_if_unreferenced(t, n);
}

static bool is_wanted(const struct reg_handle *h, enum claim_kind kind)
{
	return h->claim.valid && (kind == CLAIM_NONE || h->claim.kind == kind);
}

static size_t count_claims(const struct reg_node *n, enum claim_kind kind,
			   struct claim *out, size_t at)
{
	const struct reg_handle *h;

	DL_FOREACH(n->handles, h)
		if (is_wanted(h, kind)) {
			if (out)
				out[at] = h->claim;
			at++;
		}
	return at;
}

/* Walks the claims of one node or of all: counting when out is NULL. */
static size_t walk_claims(struct reg_table *t, uint64_t ino, enum claim_kind kind,
			  struct claim *out)
{
	struct reg_node *n, *tmp;
	size_t at = 0;

	if (ino) {
		n = table_node(t, ino);
		return n ? count_claims(n, kind, out, 0) : 0;
	}
	HASH_ITER(hh_ino, t->nodes, n, tmp)
		at = count_claims(n, kind, out, at);
	return at;
}

ssize_t table_collect_claims(struct reg_table *t, uint64_t ino, enum claim_kind kind,
			     struct claim **out)
{
	size_t n = walk_claims(t, ino, kind, NULL);

	*out = NULL;
	if (n == 0)
		return 0;
	*out = malloc(n * sizeof(**out));
	if (!*out)
		return -ENOMEM;
	return (ssize_t)walk_claims(t, ino, kind, *out);
}

static int compare_ids(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

void table_void_claims(struct reg_table *t, uint64_t *ids, size_t n)
{
	struct reg_node *node, *tmp;
	struct reg_handle *h;

	if (n == 0)
		return;
	qsort(ids, n, sizeof(*ids), compare_ids);
	HASH_ITER(hh_ino, t->nodes, node, tmp) {
		DL_FOREACH(node->handles, h)
			if (h->claim.valid && bsearch(&h->claim.id, ids, n, sizeof(*ids), compare_ids))
				h->claim.valid = false;
		update_shown(t, node);
	}
}

static bool is_empty_dir(const struct reg_table *t, const struct reg_node *n)
{
	return n && n->is_dir && n->attached && n != t->root && n->nchildren == 0;
}

unsigned table_reap_empty_dirs(struct reg_table *t, time_t now, time_t grace)
{
	struct reg_node *n, *tmp;
	uint64_t *old = NULL;
	size_t nold = 0, cap = 0;
	unsigned young = 0;

	/* Inode numbers first: detaching frees nodes the walk would visit. */
	HASH_ITER(hh_ino, t->nodes, n, tmp) {
		if (!is_empty_dir(t, n))
			continue;
		if (n->changed.tv_sec + grace > now) {
			young++;
			continue;
		}
		if (nold == cap) {
			uint64_t *grown = realloc(old, (cap = cap ? 2 * cap : 16) * sizeof(*old));

			if (!grown)
				break;
			old = grown;
		}
		old[nold++] = n->ino;
	}
	for (size_t i = 0; i < nold; i++) {
		n = table_node(t, old[i]);
		if (is_empty_dir(t, n))
			detach(t, n);
	}
	free(old);
	return young;
}

size_t table_take_events(struct reg_table *t, struct reg_event **events)
{
	size_t n = t->nevents;

	*events = t->events;
	t->events = NULL;
	t->nevents = t->events_cap = 0;
	return n;
}

void table_free_events(struct reg_event *events, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(events[i].name);
	free(events);
}
