/*
 * Configuration from the environment (docs/design.md §4, options.h).  Fixed
 * buffers only: this runs inside the preload library, possibly before
 * malloc is safe to call.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "tssx/log.h"
#include "tssx/macros.h"
#include "tssx/options.h"
#include "tssx/registry_client.h"
#include "tssx/ring.h"

#define DEFAULT_RING_SIZE (1u << 20)
/* Rings a hello may ask for: 16 times the default, 32 MiB of address
 * space per connection at most. */
#define DEFAULT_RING_MAX (16u << 20)
#define DEFAULT_SPIN_NS 20000
#define DEFAULT_YIELD_NS 200000
#define DEFAULT_SHORT_CALLS 16
#define MAX_SHORT_CALLS 1000000
#define MAX_SPIN_NS 1000000000ull /* one second: more is surely a typo */
#define MAX_REGISTRY_TIMEOUT_MS 10000 /* likewise: every call may wait this long */

static bool word_in(const char *value, const char *const *words, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (strcasecmp(value, words[i]) == 0)
			return true;
	}
	return false;
}

/* A yes/no word into *flag; false when it is neither. */
static bool parse_flag(const char *value, bool *flag)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };
	bool set = word_in(value, yes, ARRAY_SIZE(yes));

	if (!set && !word_in(value, no, ARRAY_SIZE(no)))
		return false;
	*flag = set;
	return true;
}

static bool parse_disable(const char *value, struct tssx_options *opts)
{
	return parse_flag(value, &opts->disabled);
}

static bool parse_recycle(const char *value, struct tssx_options *opts)
{
	return parse_flag(value, &opts->recycle);
}

static bool copy_value(const char *value, char *dst, size_t size)
{
	size_t len = strlen(value);

	if (len >= size)
		return false;
	memcpy(dst, value, len + 1);
	return true;
}

static bool parse_registry(const char *value, struct tssx_options *opts)
{
	return value[0] == '/' && copy_value(value, opts->registry, sizeof(opts->registry));
}

static bool parse_include(const char *value, struct tssx_options *opts)
{
	return copy_value(value, opts->include, sizeof(opts->include));
}

static bool parse_exclude(const char *value, struct tssx_options *opts)
{
	return copy_value(value, opts->exclude, sizeof(opts->exclude));
}

/* Decimal digits, then one K, M or G (powers of 1024) when `suffixes`. */
static bool parse_number(const char *value, bool suffixes, uint64_t *out)
{
	unsigned long long n;
	unsigned shift = 0;
	char *end;

	if (!isdigit((unsigned char)value[0]))
		return false;
	errno = 0;
	n = strtoull(value, &end, 10);
	if (errno)
		return false;
	if (suffixes && *end) {
		const char *units = "KMG", *unit = strchr(units, toupper((unsigned char)*end));

		if (!unit)
			return false;
		shift = 10 * (unsigned)(unit - units + 1);
		end++;
	}
	if (*end || n > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)n << shift;
	return true;
}

static bool parse_ring_size(const char *value, struct tssx_options *opts)
{
	uint64_t size;

	if (!parse_number(value, true, &size) || !tssx_ring_capacity_valid(size))
		return false;
	opts->ring_size = size;
	return true;
}

static bool parse_ring_max(const char *value, struct tssx_options *opts)
{
	uint64_t size;

	if (!parse_number(value, true, &size) || size < TSSX_RING_MIN_CAPACITY || size > TSSX_RING_MAX_CAPACITY)
		return false;
	opts->ring_max = size;
	return true;
}

static bool parse_budget_ns(const char *value, uint64_t *budget_ns)
{
	uint64_t ns;

	if (!parse_number(value, false, &ns) || ns > MAX_SPIN_NS)
		return false;
	*budget_ns = ns;
	return true;
}

static bool parse_spin_ns(const char *value, struct tssx_options *opts)
{
	return parse_budget_ns(value, &opts->spin_ns);
}

static bool parse_yield_ns(const char *value, struct tssx_options *opts)
{
	return parse_budget_ns(value, &opts->yield_ns);
}

static bool parse_short_calls(const char *value, struct tssx_options *opts)
{
	uint64_t calls;

	if (!parse_number(value, false, &calls) || calls > MAX_SHORT_CALLS)
		return false;
	opts->short_calls = (unsigned)calls;
	return true;
}

static bool parse_registry_timeout(const char *value, struct tssx_options *opts)
{
	uint64_t ms;

	if (!parse_number(value, false, &ms) || ms < 1 || ms > MAX_REGISTRY_TIMEOUT_MS)
		return false;
	opts->registry_timeout_ms = (unsigned)ms;
	return true;
}

static bool parse_log(const char *value, struct tssx_options *opts)
{
	static const char *const names[] = {
		[TSSX_LOG_NONE] = "none",
		[TSSX_LOG_ERROR] = "error",
		[TSSX_LOG_WARN] = "warn",
		[TSSX_LOG_INFO] = "info",
		[TSSX_LOG_DEBUG] = "debug",
	};

	for (int level = 0; level < (int)ARRAY_SIZE(names); level++) {
		if (strcasecmp(value, names[level]) == 0 ||
		    (value[0] == '0' + level && value[1] == '\0')) {
			opts->log_level = level;
			return true;
		}
	}
	return false;
}

/* Each parser stores into opts only when the value is valid. */
struct variable {
	const char *name;
	bool (*parse)(const char *value, struct tssx_options *opts);
	const char *expected; /* for the warning */
	const char *fallback;
};

static const struct variable variables[] = {
	{ "TSSX_DISABLE", parse_disable, "expected 1, yes, true, on, 0, no, false or off", "0" },
	{ "TSSX_REGISTRY", parse_registry, "expected an absolute path shorter than PATH_MAX",
	  TSSX_DEFAULT_REGISTRY },
	{ "TSSX_REGISTRY_TIMEOUT", parse_registry_timeout,
	  "expected milliseconds from 1 to 10000", "50" },
	{ "TSSX_INCLUDE", parse_include, "patterns too long", "every socket" },
	{ "TSSX_EXCLUDE", parse_exclude, "patterns too long", "none" },
	{ "TSSX_RING_SIZE", parse_ring_size,
	  "expected a power of two from 4K to 1G, with an optional K, M or G", "1M" },
	{ "TSSX_RING_MAX", parse_ring_max, "expected a size from 4K to 1G, with an optional K, M or G", "16M" },
	{ "TSSX_SPIN_NS", parse_spin_ns, "expected nanoseconds from 0 to 1000000000", "20000" },
	{ "TSSX_YIELD_NS", parse_yield_ns, "expected nanoseconds from 0 to 1000000000", "200000" },
	{ "TSSX_SHORT_CALLS", parse_short_calls, "expected a number of calls from 0 to 1000000", "16" },
	{ "TSSX_RECYCLE", parse_recycle, "expected 1, yes, true, on, 0, no, false or off", "0" },
	{ "TSSX_LOG", parse_log, "expected none, error, warn, info, debug or 0 to 4", "warn" },
};

static void set_defaults(struct tssx_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	copy_value(TSSX_DEFAULT_REGISTRY, opts->registry, sizeof(opts->registry));
	opts->ring_size = DEFAULT_RING_SIZE;
	opts->ring_max = DEFAULT_RING_MAX;
	opts->spin_ns = DEFAULT_SPIN_NS;
	opts->yield_ns = DEFAULT_YIELD_NS;
	opts->short_calls = DEFAULT_SHORT_CALLS;
	opts->registry_timeout_ms = TSSX_REGISTRY_TIMEOUT_MS_DEFAULT;
	opts->log_level = TSSX_LOG_WARN;
}

void tssx_options_parse(struct tssx_options *opts,
			char *(*getenv_fn)(const char *name),
			void (*warn)(const char *message))
{
	set_defaults(opts);
	for (size_t i = 0; i < ARRAY_SIZE(variables); i++) {
		const struct variable *var = &variables[i];
		const char *value = getenv_fn(var->name);
		char message[256];

		/* Unset or empty: the default, silently.  A parser that fails
		 * leaves its field alone, so the default stays. */
		if (!value || !*value || var->parse(value, opts))
			continue;
		snprintf(message, sizeof(message), "%s=%.40s%s: %s; using %s", var->name, value,
			 strlen(value) > 40 ? "..." : "", var->expected, var->fallback);
		warn(message);
	}
}

static bool matches_any(const char *patterns, const char *name)
{
	char pattern[TSSX_PATTERNS_MAX];

	for (const char *p = patterns; *p;) {
		size_t len = strcspn(p, ":");

		if (len > 0 && len < sizeof(pattern)) {
			memcpy(pattern, p, len);
			pattern[len] = '\0';
			/* No FNM_PATHNAME: a "*" also matches "/", so one
			 * pattern covers every socket below a directory. */
			if (fnmatch(pattern, name, 0) == 0)
				return true;
		}
		p += len;
		if (*p == ':')
			p++;
	}
	return false;
}

bool tssx_options_selects(const struct tssx_options *opts, const char *socket_name)
{
	if (matches_any(opts->exclude, socket_name))
		return false;
	return !opts->include[0] || matches_any(opts->include, socket_name);
}
