/* Unit tests of the mount table's lines (tssx_mount_line_parse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/sysmacros.h>

#include <cmocka.h>

#include "tssx/registry_protocol.h"

static void test_registry_line(void **state)
{
	struct tssx_mount_line m;

	(void)state;
	assert_true(tssx_mount_line_parse("612 28 0:82 / /run/tssx rw,nosuid,nodev,relatime shared:321 - "
					  "fuse.tssx-registryfs tssx-registryfs rw,user_id=0,group_id=0,"
					  "allow_other\n", &m));
	assert_true(m.registry);
	assert_int_equal(m.dev, makedev(0, 82));
	assert_string_equal(m.point, "/run/tssx");
}

static void test_other_types(void **state)
{
	struct tssx_mount_line m;

	(void)state;
	/* Another FUSE file system, and a type that only begins like ours. */
	assert_true(tssx_mount_line_parse("40 28 0:50 / /run/tssx rw - fuse.sshfs host: rw", &m));
	assert_false(m.registry);
	assert_true(tssx_mount_line_parse("40 28 0:50 / /run/tssx rw - fuse.tssx-registryfs2 x rw", &m));
	assert_false(m.registry);
	/* A mount point holding " - " escaped, as the kernel prints it. */
	assert_true(tssx_mount_line_parse("41 28 259:1 / /a\\040-\\040b rw - ext4 /dev/vda1 rw", &m));
	assert_false(m.registry);
	assert_string_equal(m.point, "/a\\040-\\040b");
	assert_int_equal(m.dev, makedev(259, 1));
}

static void test_not_a_line(void **state)
{
	struct tssx_mount_line m;

	(void)state;
	assert_false(tssx_mount_line_parse("", &m));
	assert_false(tssx_mount_line_parse("612 28 0:82 / /run/tssx rw", &m)); /* no " - " */
	assert_false(tssx_mount_line_parse("x 28 0:82 / /run/tssx rw - fuse.tssx-registryfs a rw", &m));
	assert_false(tssx_mount_line_parse("612 28 0 / /run/tssx rw - fuse.tssx-registryfs a rw", &m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_line),
		cmocka_unit_test(test_other_types),
		cmocka_unit_test(test_not_a_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
