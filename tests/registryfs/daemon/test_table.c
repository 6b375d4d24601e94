/* Unit tests of the registry table: tree, handles, bits, claims, events. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tssx/registry_client.h"
#include "table.h"

#define MOUNT "/run/tssx"

static struct reg_table *new_table(unsigned max_entries)
{
	struct reg_table *t = table_new(max_entries, UINT_MAX, MOUNT);

	assert_non_null(t);
	return t;
}

static void drop_events(struct reg_table *t)
{
	struct reg_event *events;
	size_t n = table_take_events(t, &events);

	table_free_events(events, n);
}

/* Whether the queued events hold one of this kind and inode (or parent). */
static bool took_event(struct reg_table *t, enum reg_event_kind kind, uint64_t ino)
{
	struct reg_event *events;
	size_t n = table_take_events(t, &events);
	bool found = false;

	for (size_t i = 0; i < n; i++)
		found |= events[i].kind == kind &&
			 (kind == REG_INVAL_INODE ? events[i].ino : events[i].parent) == ino;
	table_free_events(events, n);
	return found;
}

static uint64_t make_dir(struct reg_table *t, uint64_t parent, const char *name)
{
	struct reg_node *dir;

	assert_int_equal(table_mkdir(t, parent, name, 1000, 1000, &dir), 0);
	return dir->ino;
}

static struct reg_handle *create(struct reg_table *t, uint64_t parent, const char *name)
{
	struct reg_handle *h = NULL;

	assert_int_equal(table_create(t, parent, name, false, 1000, 1000, &h), 0);
	return h;
}

static struct claim valid_claim(void)
{
	return (struct claim){ .kind = CLAIM_PATH, .valid = true, .file = { .dev = 1, .ino = 2 } };
}

static void test_tree_and_names(void **state)
{
	struct reg_table *t = new_table(16);
	uint64_t tmp = make_dir(t, REG_ROOT_INO, "tmp");
	struct reg_handle *h = create(t, tmp, "a.sock");
	struct reg_node *found;
	char name[64];

	assert_int_equal(table_lookup(t, REG_ROOT_INO, "tmp", &found), 0);
	assert_true(found->is_dir);
	assert_int_equal(table_lookup(t, tmp, "a.sock", &found), 0);
	assert_ptr_equal(found, h->node);
	assert_int_equal(table_lookup(t, tmp, "b.sock", &found), -ENOENT);
	assert_int_equal(table_lookup(t, h->node->ino, "x", &found), -ENOTDIR);
	assert_int_equal(table_name(h->node, name, sizeof(name)), 0);
	assert_string_equal(name, "tmp/a.sock");
	assert_int_equal(table_name(h->node, name, 5), -ENAMETOOLONG);
	assert_int_equal(table_entry_count(t), 2);
	assert_int_equal(table_mkdir(t, REG_ROOT_INO, "tmp", 1000, 1000, &found), -EEXIST);
	assert_int_equal(table_create(t, tmp, "a.sock", true, 0, 0, &h), -EEXIST);
	assert_int_equal(table_create(t, REG_ROOT_INO, "tmp", false, 0, 0, &h), -EISDIR);
	table_free(t);
}

static void test_bad_names(void **state)
{
	struct reg_table *t = new_table(16);
	struct reg_handle *h;
	struct reg_node *dir;
	char long_name[120];

	assert_int_equal(table_create(t, REG_ROOT_INO, "@a b", false, 0, 0, &h), -EINVAL);
	assert_int_equal(table_create(t, REG_ROOT_INO, "x%41", false, 0, 0, &h), -EINVAL);
	assert_int_equal(table_mkdir(t, REG_ROOT_INO, "@abstract", 1000, 1000, &dir), -EINVAL);
	/* the daemon's own mount point, and anything below it */
	assert_int_equal(table_mkdir(t, make_dir(t, REG_ROOT_INO, "run"), "tssx", 1000, 1000, &dir), -EINVAL);
	memset(long_name, 'x', sizeof(long_name));
	long_name[107] = '\0'; /* "/" + 107 bytes does not fit a sun_path */
	assert_int_equal(table_create(t, REG_ROOT_INO, long_name, false, 0, 0, &h), -ENAMETOOLONG);
	long_name[106] = '\0';
	assert_int_equal(table_create(t, REG_ROOT_INO, long_name, false, 0, 0, &h), 0);
	/* a directory must leave room for a name below it */
	assert_int_equal(table_mkdir(t, REG_ROOT_INO, long_name, 1000, 1000, &dir), -EEXIST);
	long_name[105] = '\0';
	assert_int_equal(table_mkdir(t, REG_ROOT_INO, long_name, 1000, 1000, &dir), -ENAMETOOLONG);
	table_free(t);
}

static void test_bound(void **state)
{
	struct reg_table *t = new_table(2);
	struct reg_handle *h;
	struct reg_node *dir;

	create(t, REG_ROOT_INO, "@one");
	h = create(t, REG_ROOT_INO, "@two");
	assert_int_equal(table_create(t, REG_ROOT_INO, "@three", false, 0, 0, &h), -ENOSPC);
	assert_int_equal(table_mkdir(t, REG_ROOT_INO, "d", 1000, 1000, &dir), -ENOSPC);
	/* an existing entry can still be opened when full */
	assert_int_equal(table_create(t, REG_ROOT_INO, "@two", false, 0, 0, &h), 0);
	table_free(t);
}

/* Each uid but root has a quota of its own: one that fills it gets
 * EDQUOT, others (and root) still create; what it releases is its again. */
static void test_user_quota(void **state)
{
	struct reg_table *t = table_new(100, 3, MOUNT);
	struct reg_handle *h, *last;
	struct reg_node *dir;

	assert_non_null(t);
	make_dir(t, REG_ROOT_INO, "tmp"); /* uid 1000's first */
	create(t, REG_ROOT_INO, "@one");
	last = create(t, REG_ROOT_INO, "@two");
	assert_int_equal(table_user_count(t, 1000), 3);
	assert_int_equal(table_create(t, REG_ROOT_INO, "@three", false, 1000, 1000, &h), -EDQUOT);
	assert_int_equal(table_mkdir(t, REG_ROOT_INO, "var", 1000, 1000, &dir), -EDQUOT);
	/* an existing entry still opens */
	assert_int_equal(table_create(t, REG_ROOT_INO, "@one", false, 1000, 1000, &h), 0);
	assert_int_equal(table_create(t, REG_ROOT_INO, "@other", false, 1001, 1001, &h), 0);
	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "@root-%d", i);
		assert_int_equal(table_create(t, REG_ROOT_INO, name, false, 0, 0, &h), 0);
	}
	assert_int_equal(table_user_count(t, 1001), 1);
	assert_int_equal(table_user_count(t, 0), 5);
	table_release(t, last);
	assert_int_equal(table_user_count(t, 1000), 2);
	assert_int_equal(table_create(t, REG_ROOT_INO, "@three", false, 1000, 1000, &h), 0);
	table_free(t);
}

static void test_parse_bits(void **state)
{
	const char *bad[] = { "", "4", "x", "1\n\n", "11", "1 ", "\n", "-1" };

	(void)state;
	assert_int_equal(table_parse_bits("0", 1), 0);
	assert_int_equal(table_parse_bits("3", 1), 3);
	assert_int_equal(table_parse_bits("2\n", 2), 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(table_parse_bits(bad[i], strlen(bad[i])), -EINVAL);
	assert_int_equal(table_parse_bits("1", 0), -EINVAL);
}

static void test_bits_are_or_of_handles(void **state)
{
	struct reg_table *t = new_table(16);
	struct reg_handle *a = create(t, REG_ROOT_INO, "@s");
	struct reg_handle *b = create(t, REG_ROOT_INO, "@s");
	struct claim claim = valid_claim();
	struct reg_node *n = a->node;

	assert_ptr_equal(a->node, b->node);
	drop_events(t);
	table_set_bits(t, a, TSSX_BIT_SERVER, &claim);
	assert_int_equal(n->shown, 1);
	assert_true(took_event(t, REG_INVAL_INODE, n->ino));
	table_set_bits(t, b, TSSX_BIT_CLIENT, NULL);
	assert_int_equal(n->shown, 3);
	drop_events(t);
	table_set_bits(t, b, TSSX_BIT_CLIENT, NULL);
	assert_false(took_event(t, REG_INVAL_INODE, n->ino)); /* unchanged: nothing to drop */
	uint64_t released = a->id;

	assert_ptr_equal(table_handle(t, b->id), b);
	table_release(t, a);
	assert_null(table_handle(t, released));
	assert_int_equal(n->shown, 2);
	/* a server bit without a valid claim never shows */
	claim.valid = false;
	table_set_bits(t, b, 3, &claim);
	assert_int_equal(n->shown, 2);
	table_free(t);
}

static void test_entry_disappears_with_last_handle(void **state)
{
	struct reg_table *t = new_table(16);
	uint64_t a = make_dir(t, REG_ROOT_INO, "a");
	uint64_t b = make_dir(t, a, "b");
	struct reg_handle *h = create(t, b, "s");
	struct reg_node *found;
	uint64_t ino = h->node->ino;

	drop_events(t);
	table_release(t, h);
	/* the entry and the directories it implied are gone... */
	assert_int_equal(table_lookup(t, REG_ROOT_INO, "a", &found), -ENOENT);
	assert_int_equal(table_entry_count(t), 0);
	assert_true(took_event(t, REG_INVAL_ENTRY, REG_ROOT_INO));
	/* ...but stay known until the kernel forgets them */
	assert_non_null(table_node(t, ino));
	assert_int_equal(table_open(t, ino, &h), -ESTALE);
	assert_int_equal(table_create(t, b, "s", false, 0, 0, &h), -ESTALE);
	table_forget(t, ino, 2);
	assert_null(table_node(t, ino));
	table_forget(t, b, 1);
	table_forget(t, a, 1);
	assert_null(table_node(t, a));
	table_free(t);
}

static void test_reap_empty_dirs(void **state)
{
	struct reg_table *t = new_table(16);
	uint64_t a = make_dir(t, REG_ROOT_INO, "a");
	uint64_t b = make_dir(t, a, "b");
	uint64_t c = make_dir(t, REG_ROOT_INO, "c");
	struct reg_handle *h = create(t, c, "s");
	struct reg_node *found;
	time_t made = table_node(t, b)->changed.tv_sec;

	assert_int_equal(table_reap_empty_dirs(t, made, 5), 1);   /* b, young */
	assert_int_equal(table_reap_empty_dirs(t, made + 5, 5), 0);
	/* b went, and a with it; c holds an entry */
	assert_int_equal(table_lookup(t, REG_ROOT_INO, "a", &found), -ENOENT);
	assert_int_equal(table_lookup(t, REG_ROOT_INO, "c", &found), 0);
	assert_int_equal(table_entry_count(t), 2);
	table_release(t, h);
	table_free(t);
}

static void test_rmdir(void **state)
{
	struct reg_table *t = new_table(16);
	uint64_t d = make_dir(t, REG_ROOT_INO, "d");
	struct reg_handle *h = create(t, d, "s");

	assert_int_equal(table_rmdir(t, REG_ROOT_INO, "d"), -ENOTEMPTY);
	assert_int_equal(table_rmdir(t, d, "s"), -ENOTDIR);
	assert_int_equal(table_rmdir(t, d, "x"), -ENOENT);
	table_release(t, h);
	make_dir(t, REG_ROOT_INO, "e");
	assert_int_equal(table_rmdir(t, REG_ROOT_INO, "e"), 0);
	assert_int_equal(table_entry_count(t), 0);
	table_free(t);
}

static void test_claims_collect_and_void(void **state)
{
	struct reg_table *t = new_table(16);
	struct reg_handle *a = create(t, REG_ROOT_INO, "@a");
	struct reg_handle *b = create(t, REG_ROOT_INO, "@b");
	struct claim path = valid_claim(), abstract = valid_claim();
	struct claim *claims;
	uint64_t gone;

	abstract.kind = CLAIM_ABSTRACT;
	table_set_bits(t, a, TSSX_BIT_SERVER, &path);
	table_set_bits(t, b, TSSX_BIT_SERVER, &abstract);
	assert_int_equal(table_collect_claims(t, 0, CLAIM_NONE, &claims), 2);
	free(claims);
	assert_int_equal(table_collect_claims(t, b->node->ino, CLAIM_NONE, &claims), 1);
	assert_int_equal(claims[0].kind, CLAIM_ABSTRACT);
	free(claims);
	assert_int_equal(table_collect_claims(t, 0, CLAIM_PATH, &claims), 1);
	gone = claims[0].id;
	free(claims);

	drop_events(t);
	table_void_claims(t, &gone, 1);
	assert_int_equal(a->node->shown, 0);
	assert_int_equal(b->node->shown, 1);
	assert_true(took_event(t, REG_INVAL_INODE, a->node->ino));
	assert_int_equal(table_collect_claims(t, 0, CLAIM_PATH, &claims), 0);
	/* a new write makes a new claim, not the void one */
	table_set_bits(t, a, TSSX_BIT_SERVER, &path);
	assert_int_equal(a->node->shown, 1);
	table_void_claims(t, &gone, 1);
	assert_int_equal(a->node->shown, 1);
	table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_and_names),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_user_quota),
		cmocka_unit_test(test_parse_bits),
		cmocka_unit_test(test_bits_are_or_of_handles),
		cmocka_unit_test(test_entry_disappears_with_last_handle),
		cmocka_unit_test(test_reap_empty_dirs),
		cmocka_unit_test(test_rmdir),
		cmocka_unit_test(test_claims_collect_and_void),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
