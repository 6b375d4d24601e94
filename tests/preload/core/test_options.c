/* Unit tests of the configuration: defaults, every variable's valid and
 * invalid values (one warning each, then the default), and the
 * include/exclude selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "tssx/log.h"
#include "tssx/macros.h"
#include "tssx/options.h"

/* The fake environment: up to a few NAME, VALUE pairs per case. */
static const char *env[16];
static int warnings;
static char last_warning[512];

static char *fake_getenv(const char *name)
{
	for (size_t i = 0; i + 1 < ARRAY_SIZE(env) && env[i]; i += 2) {
		if (strcmp(env[i], name) == 0)
			return (char *)env[i + 1];
	}
	return NULL;
}

static void record_warning(const char *message)
{
	warnings++;
	strncpy(last_warning, message, sizeof(last_warning) - 1);
}

/* Parses with exactly one variable set. */
static struct tssx_options parse_one(const char *name, const char *value)
{
	struct tssx_options opts;

	memset(env, 0, sizeof(env));
	env[0] = name;
	env[1] = value;
	warnings = 0;
	last_warning[0] = '\0';
	tssx_options_parse(&opts, fake_getenv, record_warning);
	return opts;
}

static void assert_defaults(const struct tssx_options *opts)
{
	assert_false(opts->disabled);
	assert_string_equal(opts->registry, TSSX_DEFAULT_REGISTRY);
	assert_string_equal(opts->include, "");
	assert_string_equal(opts->exclude, "");
	assert_int_equal(opts->ring_size, 1 << 20);
	assert_int_equal(opts->ring_max, 16 << 20);
	assert_int_equal(opts->spin_ns, 20000);
	assert_int_equal(opts->yield_ns, 200000);
	assert_int_equal(opts->short_calls, 16);
	assert_false(opts->recycle);
	assert_int_equal(opts->registry_timeout_ms, 50);
	assert_int_equal(opts->log_level, TSSX_LOG_WARN);
}

/* An invalid value: exactly one warning naming the variable, all defaults. */
static void assert_rejected(const char *name, const char *value)
{
	struct tssx_options opts = parse_one(name, value);

	assert_int_equal(warnings, 1);
	assert_non_null(strstr(last_warning, name));
	assert_defaults(&opts);
}

static void test_defaults(void **state)
{
	struct tssx_options opts = parse_one("UNRELATED", "1");

	assert_int_equal(warnings, 0);
	assert_defaults(&opts);
	/* Empty means unset. */
	const char *names[] = { "TSSX_DISABLE", "TSSX_REGISTRY", "TSSX_REGISTRY_TIMEOUT",
				"TSSX_INCLUDE", "TSSX_EXCLUDE", "TSSX_RING_SIZE", "TSSX_SPIN_NS",
				"TSSX_YIELD_NS", "TSSX_SHORT_CALLS", "TSSX_RECYCLE", "TSSX_LOG" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		opts = parse_one(names[i], "");
		assert_int_equal(warnings, 0);
		assert_defaults(&opts);
	}
}

static void test_disable(void **state)
{
	const char *on[] = { "1", "yes", "true", "on", "YES", "True" };
	const char *off[] = { "0", "no", "false", "off", "OFF" };

	for (size_t i = 0; i < ARRAY_SIZE(on); i++) {
		assert_true(parse_one("TSSX_DISABLE", on[i]).disabled);
		assert_int_equal(warnings, 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(off); i++) {
		assert_false(parse_one("TSSX_DISABLE", off[i]).disabled);
		assert_int_equal(warnings, 0);
	}
	assert_rejected("TSSX_DISABLE", "maybe");
	assert_rejected("TSSX_DISABLE", "2");
	assert_rejected("TSSX_DISABLE", " 1");
}

static void test_recycle(void **state)
{
	(void)state;
	assert_false(parse_one("TSSX_RECYCLE", "0").recycle);
	assert_false(parse_one("TSSX_RECYCLE", "off").recycle);
	assert_true(parse_one("TSSX_RECYCLE", "1").recycle);
	assert_true(parse_one("TSSX_RECYCLE", "Yes").recycle);
	assert_false(parse_one("TSSX_RECYCLE", "no").disabled); /* the others stay */
	assert_rejected("TSSX_RECYCLE", "sometimes");
}

static void test_registry(void **state)
{
	char long_path[PATH_MAX + 10];

	assert_string_equal(parse_one("TSSX_REGISTRY", "/tmp/reg").registry, "/tmp/reg");
	assert_int_equal(warnings, 0);
	assert_rejected("TSSX_REGISTRY", "relative/dir");
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_rejected("TSSX_REGISTRY", long_path);
	/* The warning quotes a long value only in part. */
	assert_true(strlen(last_warning) < 256);
}

static void test_patterns_too_long(void **state)
{
	char patterns[TSSX_PATTERNS_MAX + 1];

	memset(patterns, '*', sizeof(patterns) - 1);
	patterns[sizeof(patterns) - 1] = '\0';
	assert_rejected("TSSX_INCLUDE", patterns);
	assert_rejected("TSSX_EXCLUDE", patterns);
	patterns[TSSX_PATTERNS_MAX - 1] = '\0'; /* the longest that fits */
	assert_int_equal(strlen(parse_one("TSSX_EXCLUDE", patterns).exclude), TSSX_PATTERNS_MAX - 1);
	assert_int_equal(warnings, 0);
}

static void test_ring_size(void **state)
{
	const struct { const char *value; uint64_t size; } good[] = {
		{ "4096", 4096 }, { "4K", 4096 }, { "64k", 65536 }, { "2M", 2 << 20 },
		{ "1G", 1 << 30 }, { "1g", 1 << 30 }, { "1048576", 1 << 20 },
	};
	const char *bad[] = {
		"2K", "3M", "2G", "0", "1000", "abc", "-4K", "+4K", " 4K", "4KB", "4 K",
		"4T", "99999999999999999999", "17179869184G", "K",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(parse_one("TSSX_RING_SIZE", good[i].value).ring_size, good[i].size);
		assert_int_equal(warnings, 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_rejected("TSSX_RING_SIZE", bad[i]);
}

static void test_ring_max(void **state)
{
	assert_int_equal(parse_one("TSSX_RING_MAX", "4K").ring_max, 4096);
	assert_int_equal(parse_one("TSSX_RING_MAX", "3M").ring_max, 3 << 20);
	assert_int_equal(parse_one("TSSX_RING_MAX", "1G").ring_max, 1 << 30);
	assert_int_equal(warnings, 0);
	assert_rejected("TSSX_RING_MAX", "4095");
	assert_rejected("TSSX_RING_MAX", "2G");
	assert_rejected("TSSX_RING_MAX", "0");
	assert_rejected("TSSX_RING_MAX", "big");
}

static void test_registry_timeout(void **state)
{
	assert_int_equal(parse_one("TSSX_REGISTRY_TIMEOUT", "1").registry_timeout_ms, 1);
	assert_int_equal(parse_one("TSSX_REGISTRY_TIMEOUT", "10000").registry_timeout_ms, 10000);
	assert_int_equal(warnings, 0);
	assert_rejected("TSSX_REGISTRY_TIMEOUT", "0");
	assert_rejected("TSSX_REGISTRY_TIMEOUT", "10001");
	assert_rejected("TSSX_REGISTRY_TIMEOUT", "50ms");
	assert_rejected("TSSX_REGISTRY_TIMEOUT", "-1");
}

static void test_spin_ns(void **state)
{
	assert_int_equal(parse_one("TSSX_SPIN_NS", "0").spin_ns, 0);
	assert_int_equal(parse_one("TSSX_SPIN_NS", "1000000000").spin_ns, 1000000000);
	assert_int_equal(warnings, 0);
	assert_rejected("TSSX_SPIN_NS", "1000000001");
	assert_rejected("TSSX_SPIN_NS", "10K");
	assert_rejected("TSSX_SPIN_NS", "-5");
	assert_rejected("TSSX_SPIN_NS", "fast");
}

static void test_short_calls(void **state)
{
	assert_int_equal(parse_one("TSSX_SHORT_CALLS", "0").short_calls, 0);
	assert_int_equal(parse_one("TSSX_SHORT_CALLS", "1000000").short_calls, 1000000);
	assert_int_equal(parse_one("TSSX_SHORT_CALLS", "3").spin_ns, 20000); /* the others stay */
	assert_int_equal(warnings, 0);
	assert_rejected("TSSX_SHORT_CALLS", "1000001");
	assert_rejected("TSSX_SHORT_CALLS", "16k");
	assert_rejected("TSSX_SHORT_CALLS", "-1");
	assert_rejected("TSSX_SHORT_CALLS", "x");
}

static void test_yield_ns(void **state)
{
	assert_int_equal(parse_one("TSSX_YIELD_NS", "0").yield_ns, 0);
	assert_int_equal(parse_one("TSSX_YIELD_NS", "1000000000").yield_ns, 1000000000);
	assert_int_equal(parse_one("TSSX_YIELD_NS", "5000").spin_ns, 20000); /* the other budget stays */
	assert_int_equal(warnings, 0);
	assert_rejected("TSSX_YIELD_NS", "1000000001");
	assert_rejected("TSSX_YIELD_NS", "200us");
	assert_rejected("TSSX_YIELD_NS", "-1");
}

static void test_log(void **state)
{
	const char *names[] = { "none", "error", "warn", "info", "debug" };
	char digit[2] = "0";

	for (int level = TSSX_LOG_NONE; level <= TSSX_LOG_DEBUG; level++) {
		assert_int_equal(parse_one("TSSX_LOG", names[level]).log_level, level);
		digit[0] = (char)('0' + level);
		assert_int_equal(parse_one("TSSX_LOG", digit).log_level, level);
		assert_int_equal(warnings, 0);
	}
	assert_int_equal(parse_one("TSSX_LOG", "DEBUG").log_level, TSSX_LOG_DEBUG);
	assert_rejected("TSSX_LOG", "5");
	assert_rejected("TSSX_LOG", "01");
	assert_rejected("TSSX_LOG", "loud");
}

static void test_several_warnings(void **state)
{
	struct tssx_options opts;

	memset(env, 0, sizeof(env));
	env[0] = "TSSX_LOG", env[1] = "loud";
	env[2] = "TSSX_RING_SIZE", env[3] = "64K";
	env[4] = "TSSX_SPIN_NS", env[5] = "x";
	warnings = 0;
	tssx_options_parse(&opts, fake_getenv, record_warning);
	assert_int_equal(warnings, 2);
	assert_int_equal(opts.ring_size, 65536);
	assert_int_equal(opts.spin_ns, 20000);
	assert_int_equal(opts.log_level, TSSX_LOG_WARN);
}

static struct tssx_options selection(const char *include, const char *exclude)
{
	struct tssx_options opts;

	memset(env, 0, sizeof(env));
	env[0] = "TSSX_INCLUDE", env[1] = include;
	env[2] = "TSSX_EXCLUDE", env[3] = exclude;
	tssx_options_parse(&opts, fake_getenv, record_warning);
	return opts;
}

static void test_selects(void **state)
{
	struct tssx_options all = selection("", "");
	struct tssx_options some = selection("/tmp/*.sock::@app*", "");
	struct tssx_options both = selection("/tmp/*", "/tmp/secret.sock:@*");
	struct tssx_options except = selection("", "/run/*");

	assert_true(tssx_options_selects(&all, "/any/path"));
	assert_true(tssx_options_selects(&all, "@abstract"));

	assert_true(tssx_options_selects(&some, "/tmp/a.sock"));
	assert_true(tssx_options_selects(&some, "/tmp/dir/b.sock")); /* '*' crosses '/' */
	assert_true(tssx_options_selects(&some, "@app1"));
	assert_false(tssx_options_selects(&some, "/tmp/a.socket"));
	assert_false(tssx_options_selects(&some, "/run/a.sock"));
	assert_false(tssx_options_selects(&some, "@other"));
	assert_false(tssx_options_selects(&some, ""));

	/* Exclude wins over include. */
	assert_true(tssx_options_selects(&both, "/tmp/public.sock"));
	assert_false(tssx_options_selects(&both, "/tmp/secret.sock"));
	assert_false(tssx_options_selects(&both, "@x"));

	assert_false(tssx_options_selects(&except, "/run/user/1000/bus"));
	assert_true(tssx_options_selects(&except, "/var/run.sock"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_disable),
		cmocka_unit_test(test_recycle),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_patterns_too_long),
		cmocka_unit_test(test_ring_size),
		cmocka_unit_test(test_ring_max),
		cmocka_unit_test(test_registry_timeout),
		cmocka_unit_test(test_spin_ns),
		cmocka_unit_test(test_yield_ns),
		cmocka_unit_test(test_short_calls),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_several_warnings),
		cmocka_unit_test(test_selects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
