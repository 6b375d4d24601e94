/*
 * A client's history of its connections per server (conn/destination.h):
 * which names are one server, the table's bound, the rule end to end
 * (the rule itself: tests/preload/core/test_skip.c), and the history a
 * program's processes share, in the user's real file under a program
 * name of this run's own (main()).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "conn/destination.h"
#include "init.h"

struct tssx_options tssx_opts = { .short_calls = 16 };

static socklen_t path_addr(struct sockaddr_un *addr, const char *path, const char *after_nul)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	strcpy(addr->sun_path, path);
	/* What a program leaves behind the NUL when it passes sizeof(addr). */
	strcpy(addr->sun_path + strlen(path) + 1, after_nul);
	return sizeof(*addr);
}

static socklen_t abstract_addr(struct sockaddr_un *addr, const char *name, size_t len)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path + 1, name, len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

static void test_names(void **state)
{
	struct sockaddr_un a, b;
	socklen_t la = path_addr(&a, "/run/app.sock", "junk"), lb;
	struct tssx_destination *dest;

	(void)state;
	/* Only a connection through shared memory makes an entry. */
	assert_null(tssx_destination_of(&a, la, false));
	dest = tssx_destination_of(&a, la, true);
	assert_non_null(dest);
	/* The bytes behind a path's NUL, and the length given, do not matter. */
	lb = path_addr(&b, "/run/app.sock", "other");
	assert_ptr_equal(tssx_destination_of(&b, lb, false), dest);
	assert_ptr_equal(tssx_destination_of(&b, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 14), false),
			 dest);
	lb = path_addr(&b, "/run/app.sock2", "");
	assert_ptr_not_equal(tssx_destination_of(&b, lb, true), dest);
	/* An abstract name is all its bytes, NULs included. */
	la = abstract_addr(&a, "x\0y", 3);
	lb = abstract_addr(&b, "x\0z", 3);
	dest = tssx_destination_of(&a, la, true);
	assert_non_null(dest);
	assert_ptr_not_equal(tssx_destination_of(&b, lb, true), dest);
	assert_ptr_equal(tssx_destination_of(&a, la, false), dest);
	/* No name: nothing to keep. */
	assert_null(tssx_destination_of(&a, offsetof(struct sockaddr_un, sun_path), true));
}

static void test_rule(void **state)
{
	struct sockaddr_un a;
	socklen_t len = path_addr(&a, "/run/rule.sock", "");
	struct tssx_destination *dest = tssx_destination_of(&a, len, true);
	int plain = 0;

	(void)state;
	/* Connections that pay: never plain. */
	for (int i = 0; i < 100; i++) {
		assert_false(tssx_destination_skips(dest));
		tssx_destination_record(dest, true);
	}
	/* Three of one request each: the next 16 go plain. */
	for (int i = 0; i < 3; i++) {
		assert_false(tssx_destination_skips(dest));
		tssx_destination_record(dest, false);
	}
	while (tssx_destination_skips(dest))
		plain++;
	assert_int_equal(plain, TSSX_DESTINATION_SKIP_MIN);
}

/* The destination a thread found last answers its own name only. */
static void test_last_found(void **state)
{
	struct sockaddr_un a, b;
	socklen_t la = path_addr(&a, "/run/last-a.sock", ""), lb = path_addr(&b, "/run/last-b.sock", "other");
	struct tssx_destination *da = tssx_destination_of(&a, la, true), *db;

	(void)state;
	assert_non_null(da);
	assert_null(tssx_destination_of(&b, lb, false));
	db = tssx_destination_of(&b, lb, true);
	assert_non_null(db);
	assert_ptr_not_equal(db, da);
	assert_ptr_equal(tssx_destination_of(&a, la, false), da);
	assert_ptr_equal(tssx_destination_of(&a, la, false), da);
	/* A prefix of the last name, or the name with more after it. */
	assert_null(tssx_destination_of(&b, path_addr(&b, "/run/last-a.soc", ""), false));
	assert_null(tssx_destination_of(&b, path_addr(&b, "/run/last-a.sock2", ""), false));
	assert_ptr_equal(tssx_destination_of(&b, path_addr(&b, "/run/last-b.sock", ""), false), db);
}

static unsigned shared_skips_in_a_row(const struct sockaddr_un *addr, socklen_t len)
{
	unsigned n = 0;

	while (tssx_destination_shared_skips(addr, len) && n < 10 * TSSX_DESTINATION_SKIP_MAX)
		n++;
	return n;
}

/* Three short connections a process each: the program's next processes
 * go plain; a process's first entry there starts from what its program's
 * processes learnt (another program's: tests/preload/short.sh). */
static void test_shared(void **state)
{
	struct sockaddr_un a;
	socklen_t len = path_addr(&a, "/run/shared.sock", "");
	struct tssx_destination *dest;
	pid_t child;
	int status;

	(void)state;
	assert_false(tssx_destination_shared_skips(&a, len));
	/* The histories of forked children, each its first connection
	 * there, short, and its own. */
	for (int i = 0; i < 3; i++) {
		child = fork();
		assert_true(child >= 0);
		if (child == 0) {
			dest = tssx_destination_of(&a, len, true);
			if (dest)
				tssx_destination_share(dest, false);
			_exit(dest ? 0 : 1);
		}
		assert_int_equal(waitpid(child, &status, 0), child);
		assert_int_equal(status, 0);
	}
	/* This process has no entry there: the shared history says. */
	assert_null(tssx_destination_of(&a, len, false));
	assert_int_equal(shared_skips_in_a_row(&a, len), TSSX_DESTINATION_SKIP_MIN);
	/* A probe that is short again: twice as many. */
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		tssx_destination_share(tssx_destination_of(&a, len, true), false);
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	/* The entry this process makes now starts skipping (from the
	 * shared history), on its own from then on. */
	dest = tssx_destination_of(&a, len, true);
	assert_non_null(dest);
	for (unsigned i = 0; i < 2 * TSSX_DESTINATION_SKIP_MIN; i++)
		assert_true(tssx_destination_skips(dest));
	assert_false(tssx_destination_skips(dest));
	assert_int_equal(shared_skips_in_a_row(&a, len), 2 * TSSX_DESTINATION_SKIP_MIN);
	/* A record that is not the maker's (a fork()ed child's of a
	 * connection it inherited) stays in its own history. */
	for (int i = 0; i < 8; i++)
		tssx_destination_record(dest, false);
	assert_false(tssx_destination_shared_skips(&a, len));
}

static void test_off_and_full(void **state)
{
	struct sockaddr_un a;
	char path[64];
	int made = 0;

	(void)state;
	tssx_opts.short_calls = 0;
	assert_null(tssx_destination_of(&a, path_addr(&a, "/run/off.sock", ""), true));
	tssx_opts.short_calls = 16;
	for (int i = 0; i < 2 * (int)TSSX_DESTINATIONS_MAX; i++) {
		snprintf(path, sizeof(path), "/run/many-%d.sock", i);
		made += tssx_destination_of(&a, path_addr(&a, path, ""), true) != NULL;
	}
	/* The earlier tests made 8 entries: 4 in test_names, 1 in test_rule,
	 * 2 in test_last_found, 1 in test_shared. */
	assert_int_equal(made, TSSX_DESTINATIONS_MAX - 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_rule),
		cmocka_unit_test(test_last_found),
		cmocka_unit_test(test_shared),
		cmocka_unit_test(test_off_and_full),
	};
	static char program[64];
	struct timespec now;

	/* The user's shared histories outlive this run: keys of its own
	 * (the library hashes the name at its first use). */
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(program, sizeof(program), "test-destination-%d-%lld.%09ld", (int)getpid(), (long long)now.tv_sec,
		 now.tv_nsec);
	program_invocation_name = program;

	return cmocka_run_group_tests(tests, NULL, NULL);
}
