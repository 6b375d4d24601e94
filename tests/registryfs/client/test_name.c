/* Unit tests of registry names: encoding, decoding, canonical spelling. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tssx/registry_name.h"

#define SUN_OFFSET offsetof(struct sockaddr_un, sun_path)

static socklen_t path_addr(struct sockaddr_un *addr, const char *path)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	size_t n = strlen(path);

	assert_true(n <= sizeof(addr->sun_path));
	memcpy(addr->sun_path, path, n);
	return (socklen_t)(SUN_OFFSET + n + (n < sizeof(addr->sun_path)));
}

static socklen_t abstract_addr(struct sockaddr_un *addr, const char *name, size_t n)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path + 1, name, n);
	return (socklen_t)(SUN_OFFSET + 1 + n);
}

static int encode_path(const char *path, const char *cwd, char *out)
{
	struct sockaddr_un addr;
	socklen_t len = path_addr(&addr, path);

	return tssx_registry_name_encode(&addr, len, cwd, out, TSSX_REGISTRY_NAME_MAX);
}

static void assert_path_name(const char *path, const char *cwd, const char *expected)
{
	char name[TSSX_REGISTRY_NAME_MAX];

	assert_int_equal(encode_path(path, cwd, name), 0);
	assert_string_equal(name, expected);
}

static void test_encode_paths(void **state)
{
	assert_path_name("/tmp/a.sock", NULL, "tmp/a.sock");
	assert_path_name("//tmp/./a.sock", NULL, "tmp/a.sock");
	assert_path_name("/tmp//x/a b", NULL, "tmp/x/a b");
	assert_path_name("/100%/s", NULL, "100%25/s");
	assert_path_name("/@at/s", NULL, "%40at/s");
	assert_path_name("/x/@at", NULL, "x/@at");
	assert_path_name("s.sock", "/tmp", "tmp/s.sock");
	assert_path_name("./d/s.sock", "/", "d/s.sock");
}

static void test_encode_rejects(void **state)
{
	char name[TSSX_REGISTRY_NAME_MAX];
	char long_path[TSSX_SUN_PATH_MAX];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	assert_int_equal(encode_path("/tmp/../a", NULL, name), -EINVAL);
	assert_int_equal(encode_path("s.sock", NULL, name), -EINVAL);
	assert_int_equal(encode_path("/", NULL, name), -EINVAL);
	/* unnamed, and not AF_UNIX */
	assert_int_equal(tssx_registry_name_encode(&addr, SUN_OFFSET, NULL, name, sizeof(name)), -EINVAL);
	addr.sun_family = AF_INET;
	assert_int_equal(tssx_registry_name_encode(&addr, sizeof(addr), NULL, name, sizeof(name)), -EINVAL);
	/* 107 bytes fit a sun_path with its NUL, 108 do not */
	memset(long_path, 'x', sizeof(long_path));
	long_path[0] = '/';
	long_path[107] = '\0';
	assert_int_equal(encode_path(long_path, NULL, name), 0);
	path_addr(&addr, long_path);
	addr.sun_path[107] = 'x';
	assert_int_equal(tssx_registry_name_encode(&addr, sizeof(addr), NULL, name, sizeof(name)),
			 -ENAMETOOLONG);
	/* relative names that grow too long with their directory */
	long_path[100] = '\0';
	assert_int_equal(encode_path(long_path + 1, "/some/dir", name), -ENAMETOOLONG);
	/* an output buffer too small */
	assert_int_equal(tssx_registry_name_encode(&addr, path_addr(&addr, "/tmp/s"), NULL, name, 5),
			 -ENAMETOOLONG);
}

static void test_encode_abstract(void **state)
{
	char name[TSSX_REGISTRY_NAME_MAX];
	struct sockaddr_un addr;
	char all_bytes[TSSX_SUN_PATH_MAX - 1];
	socklen_t len = abstract_addr(&addr, "db 1", 4);

	assert_int_equal(tssx_registry_name_encode(&addr, len, NULL, name, sizeof(name)), 0);
	assert_string_equal(name, "@db%201");
	len = abstract_addr(&addr, "a\0/%@", 5);
	assert_int_equal(tssx_registry_name_encode(&addr, len, NULL, name, sizeof(name)), 0);
	assert_string_equal(name, "@a%00%2F%25%40");
	/* the longest abstract name, every byte escaped, fits the buffer */
	memset(all_bytes, 0xff, sizeof(all_bytes));
	len = abstract_addr(&addr, all_bytes, sizeof(all_bytes));
	assert_int_equal(tssx_registry_name_encode(&addr, len, NULL, name, sizeof(name)), 0);
	assert_int_equal(strlen(name), 1 + 3 * sizeof(all_bytes));
	/* the empty abstract name */
	len = abstract_addr(&addr, "", 0);
	assert_int_equal(tssx_registry_name_encode(&addr, len, NULL, name, sizeof(name)), -EINVAL);
}

/* encode(decode(name)) == name for every canonical name. */
static void assert_round_trip(const char *name)
{
	struct sockaddr_un addr;
	socklen_t len;
	char again[TSSX_REGISTRY_NAME_MAX];

	assert_int_equal(tssx_registry_name_decode(name, &addr, &len), 0);
	assert_int_equal(tssx_registry_name_encode(&addr, len, NULL, again, sizeof(again)), 0);
	assert_string_equal(again, name);
}

static void test_decode(void **state)
{
	struct sockaddr_un addr;
	socklen_t len;

	assert_int_equal(tssx_registry_name_decode("tmp/a.sock", &addr, &len), 0);
	assert_string_equal(addr.sun_path, "/tmp/a.sock");
	assert_int_equal(len, SUN_OFFSET + strlen("/tmp/a.sock") + 1);
	assert_int_equal(tssx_registry_name_decode("@db%201", &addr, &len), 0);
	assert_int_equal(len, SUN_OFFSET + 5);
	assert_memory_equal(addr.sun_path, "\0db 1", 5);

	assert_round_trip("tmp/a.sock");
	assert_round_trip("%40at/x/@y");
	assert_round_trip("100%25/s");
	assert_round_trip("@a%00%2F%25%40");
	assert_round_trip("@A-z_0.9");
}

static void assert_decode_fails(const char *name, int err)
{
	struct sockaddr_un addr;
	socklen_t len;

	assert_int_equal(tssx_registry_name_decode(name, &addr, &len), err);
}

static void test_decode_rejects(void **state)
{
	char long_name[200];

	assert_decode_fails("", -EINVAL);
	assert_decode_fails("@", -EINVAL);
	assert_decode_fails("/tmp/a", -EINVAL);
	assert_decode_fails("tmp//a", -EINVAL);
	assert_decode_fails("tmp/a/", -EINVAL);
	assert_decode_fails("tmp/./a", -EINVAL);
	assert_decode_fails("tmp/../a", -EINVAL);
	assert_decode_fails("..", -EINVAL);
	assert_decode_fails("tmp/%41", -EINVAL);   /* paths escape only '%' and a leading '@' */
	assert_decode_fails("x/%40a", -EINVAL);
	assert_decode_fails("@a b", -EINVAL);      /* unescaped byte */
	assert_decode_fails("@a/b", -EINVAL);
	assert_decode_fails("@%41", -EINVAL);      /* escaped plain byte */
	assert_decode_fails("@%2f", -EINVAL);      /* lower-case hex */
	assert_decode_fails("@%2", -EINVAL);
	assert_decode_fails("@%", -EINVAL);
	memset(long_name, 'x', sizeof(long_name));
	long_name[107] = '\0';                     /* "/" + 107 bytes: one too many */
	assert_decode_fails(long_name, -ENAMETOOLONG);
	long_name[106] = '\0';
	assert_decode_fails(long_name, 0);
	memset(long_name, 'x', sizeof(long_name));
	long_name[0] = '@';
	long_name[1 + 107] = '\0';                 /* 107 abstract bytes fit */
	assert_decode_fails(long_name, 0);
	long_name[1 + 107] = 'x';
	long_name[1 + 108] = '\0';
	assert_decode_fails(long_name, -ENAMETOOLONG);
}

static void test_from_addr_resolves(void **state)
{
	char name[TSSX_REGISTRY_NAME_MAX], cwd[PATH_MAX], expected[PATH_MAX + 16];
	char dir[] = "/tmp/tssx-name-XXXXXX";
	struct sockaddr_un addr;
	socklen_t len;

	assert_non_null(mkdtemp(dir));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	snprintf(expected, sizeof(expected), "%s/s.sock", dir + 1);

	len = path_addr(&addr, "s.sock");
	assert_int_equal(tssx_registry_name_from_addr(&addr, len, name, sizeof(name)), 0);
	assert_string_equal(name, expected);
	len = path_addr(&addr, "../" "tssx-name-XXXXXX/s.sock");
	memcpy(addr.sun_path + 3, dir + 5, strlen(dir + 5));
	assert_int_equal(tssx_registry_name_from_addr(&addr, len, name, sizeof(name)), 0);
	assert_string_equal(name, expected);
	len = path_addr(&addr, "/tmp/x/..");
	assert_int_equal(tssx_registry_name_from_addr(&addr, len, name, sizeof(name)), -EINVAL);
	len = path_addr(&addr, "/nonexistent-dir/../s");
	assert_int_equal(tssx_registry_name_from_addr(&addr, len, name, sizeof(name)), -ENOENT);
	len = abstract_addr(&addr, "x y", 3);
	assert_int_equal(tssx_registry_name_from_addr(&addr, len, name, sizeof(name)), 0);
	assert_string_equal(name, "@x%20y");

	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_paths),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_encode_abstract),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_from_addr_resolves),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
