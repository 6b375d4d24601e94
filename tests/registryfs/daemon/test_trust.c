/* Unit tests of the trust decisions, with the operating system faked. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "trust.h"

/* The fake system: one socket file and one abstract listener; process
 * `other_ns_pid` lives in a mount namespace of its own, where the path
 * is `other_ns_file` (NULL: nothing). */
static struct {
	const char *path;
	struct file_identity id;
	const char *abstract;
	pid_t listener_pid;
	pid_t other_ns_pid;
	const struct file_identity *other_ns_file;
} fake;

static int fake_identify(pid_t pid, const char *path, struct file_identity *id)
{
	if (!fake.path || strcmp(path, fake.path) != 0)
		return -ENOENT;
	if (pid > 0 && pid == fake.other_ns_pid && !fake.other_ns_file)
		return -ENOENT;
	*id = pid > 0 && pid == fake.other_ns_pid ? *fake.other_ns_file : fake.id;
	return 0;
}

/* The listener lives in network namespace 7 (not the daemon's). */
static int fake_abstract_listener(const char *name, size_t n, pid_t pid, uint64_t *netns)
{
	if (pid > 0)
		*netns = pid == fake.listener_pid ? 7 : 0;
	if (*netns != 7 || !fake.abstract || n != strlen(fake.abstract) ||
	    memcmp(name, fake.abstract, n) != 0)
		return 0;
	return pid <= 0 || pid == fake.listener_pid;
}

static const struct trust_probes probes = {
	.identify = fake_identify,
	.abstract_listener = fake_abstract_listener,
};

static int setup(void **state)
{
	fake.path = "/tmp/s.sock";
	fake.id = (struct file_identity){
		.mode = S_IFSOCK | 0777, .uid = 1000, .dev = 7, .ino = 42, .born = { 100, 5 },
	};
	fake.abstract = "db";
	fake.listener_pid = 4321;
	fake.other_ns_pid = 0;
	fake.other_ns_file = NULL;
	return 0;
}

static void test_path_claims(void **state)
{
	struct claim c;

	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 1000, 1, &c), 0);
	assert_true(c.valid);
	assert_int_equal(c.kind, CLAIM_PATH);
	assert_int_equal(c.file.ino, 42);
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 0, 1, &c), 0);       /* root */
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 65534, 1, &c), -EPERM); /* nobody */
	assert_false(c.valid);
	assert_int_equal(trust_claim(&probes, "tmp/other.sock", 0, 1, &c), -EPERM);
	fake.id.mode = S_IFREG | 0644;
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 0, 1, &c), -EPERM);  /* not a socket */
	assert_int_equal(trust_claim(&probes, "bad%", 0, 1, &c), -EPERM);
}

/* A writer in a mount namespace of its own claims a path that names
 * another file, or nothing, for everyone else: refused, for root too. */
static void test_path_claims_across_mount_namespaces(void **state)
{
	struct file_identity other = fake.id;
	struct claim c;

	fake.other_ns_pid = 77;
	fake.other_ns_file = &fake.id; /* a bind mount at the same path */
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 1000, 77, &c), 0);
	other.ino = 43;                 /* another socket there */
	fake.other_ns_file = &other;
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 1000, 77, &c), -EPERM);
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 0, 77, &c), -EPERM);
	assert_false(c.valid);
	other.ino = 42;                 /* the same inode number, born later */
	other.born.tv_nsec++;
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 0, 77, &c), -EPERM);
	fake.other_ns_file = NULL;      /* nothing there */
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 0, 77, &c), -EPERM);
	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 0, 0, &c), -EPERM); /* no pid */
}

static void test_path_claim_lifetime(void **state)
{
	struct claim c;

	assert_int_equal(trust_claim(&probes, "tmp/s.sock", 1000, 1, &c), 0);
	assert_true(trust_claim_holds(&probes, &c));
	fake.id.ino = 43; /* a new server bound the same path */
	assert_false(trust_claim_holds(&probes, &c));
	fake.id.ino = 42;
	fake.id.born.tv_nsec = 6; /* ... and got the freed inode number */
	assert_false(trust_claim_holds(&probes, &c));
	fake.id.born.tv_nsec = 5;
	assert_true(trust_claim_holds(&probes, &c));
	fake.path = NULL;    /* unlinked */
	assert_false(trust_claim_holds(&probes, &c));
}

static void test_abstract_claims(void **state)
{
	struct claim c;

	assert_int_equal(trust_claim(&probes, "@db", 65534, 4321, &c), 0);
	assert_int_equal(c.kind, CLAIM_ABSTRACT);
	assert_int_equal(c.netns, 7); /* checked again where it was made */
	assert_true(trust_claim_holds(&probes, &c));
	assert_int_equal(trust_claim(&probes, "@db", 0, 999, &c), -EPERM);   /* holds no listener */
	assert_int_equal(trust_claim(&probes, "@other", 0, 4321, &c), -EPERM);
	assert_int_equal(trust_claim(&probes, "@db", 0, 4321, &c), 0);
	fake.abstract = NULL;
	assert_false(trust_claim_holds(&probes, &c));
}

static void test_unix_table(void **state)
{
	static const char text[] =
		"Num       RefCount Protocol Flags    Type St Inode Path\n"
		"0000000000000000: 00000002 00000000 00010000 0001 01 111 @db\n"
		"0000000000000000: 00000002 00000000 00000000 0001 03 222 @db\n"      /* connected */
		"0000000000000000: 00000002 00000000 00010000 0001 01 333 @db2\n"
		"0000000000000000: 00000002 00000000 00010000 0001 01 444 /tmp/db\n"
		"0000000000000000: 00000003 00000000 00000000 0001 03 555\n"          /* unbound */
		"0000000000000000: 00000002 00000000 00010000 0001 01 666 @a@b\n"
		"0000000000000000: 00000002 00000000 00010000 0005 01 777 @db";        /* no newline */
	unsigned long inodes[4];

	assert_int_equal(unix_table_listeners(text, "db", 2, inodes, 4), 2);
	assert_int_equal(inodes[0], 111);
	assert_int_equal(inodes[1], 777);
	assert_int_equal(unix_table_listeners(text, "a\0b", 3, inodes, 4), 1);
	assert_int_equal(inodes[0], 666);
	assert_int_equal(unix_table_listeners(text, "tmp", 3, inodes, 4), 0);
	assert_int_equal(unix_table_listeners(text, "db", 2, inodes, 1), 2);
	assert_int_equal(unix_table_listeners("", "db", 2, inodes, 4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_path_claims, setup),
		cmocka_unit_test_setup(test_path_claims_across_mount_namespaces, setup),
		cmocka_unit_test_setup(test_path_claim_lifetime, setup),
		cmocka_unit_test_setup(test_abstract_claims, setup),
		cmocka_unit_test_setup(test_unix_table, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
