/*
 * The report: one table with the three columns and the ratios, then the
 * project's targets, each met or missed; or the same as JSON.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "config.h"
#include "tssx/macros.h"
#include "run.h"

#define CELL_WIDTH 18
#define LABEL_WIDTH 29
/* A blocked reader that used less than this did not spin: spinning through
 * the blocked second would cost the whole second. */
#define BLOCKED_CPU_LIMIT_NS 1e6

enum target_kind {
	SPEEDUP_AT_LEAST,     /* plain / TSSX, per operation */
	TIME_VS_RAW_AT_MOST,  /* TSSX / raw */
	TIME_VS_PLAIN_AT_MOST, /* TSSX / plain */
	OVERHEAD_AT_MOST,     /* TSSX / plain - 1, in percent */
	CPU_AT_MOST,          /* TSSX's own value, nanoseconds */
	/* The worst row of the test with a size in [size, max_size]: */
	WORST_SPEEDUP_AT_LEAST,   /* the lowest plain / TSSX */
	WORST_TIME_VS_RAW_AT_MOST, /* the highest TSSX / raw */
	BYTES_AT_MOST,        /* TSSX's own value, bytes */
};

struct target {
	const char *name;
	enum bench_test test;
	size_t size;
	enum target_kind kind;
	double limit;
	size_t max_size; /* the WORST_ kinds: the rows up to this size */
	/* Which connect row; the rows of the other tests are all
	 * CONNECT_SEGMENT (0). */
	enum connect_mode connect;
};

#define EVERY_SIZE ((size_t)4 << 20)

static const struct target targets[] = {
	{ "64 B round trip within 1.5x of raw shm", TEST_PINGPONG, 64, TIME_VS_RAW_AT_MOST, 1.5, 0, CONNECT_SEGMENT },
	{ "64 B round trip >= 20x faster than plain", TEST_PINGPONG, 64, SPEEDUP_AT_LEAST, 20, 0, CONNECT_SEGMENT },
	{ "64 B streaming >= 10x plain messages/s", TEST_STREAM, 64, SPEEDUP_AT_LEAST, 10, 0, CONNECT_SEGMENT },
	{ "64 KiB streaming >= 2x plain GB/s", TEST_STREAM, 64 * 1024, SPEEDUP_AT_LEAST, 2, 0, CONNECT_SEGMENT },
	/* Time per message at most twice the bare ring's: half its rate. */
	{ "64 B to a draining reader >= 0.5x raw msg/s", TEST_DRAIN, 64, TIME_VS_RAW_AT_MOST, 2, 0, CONNECT_SEGMENT },
	{ "connect with a segment within 2x plain", TEST_CONNECT, 1, TIME_VS_PLAIN_AT_MOST, 2, 0, CONNECT_SEGMENT },
	/* The same against the limit of a connection with memory of its own
	 * (raw.c), which on a guest whose page faults and unmaps cost more
	 * than a whole plain cycle is itself beyond 2x plain. */
	{ "connect with a segment within 1.3x raw shm", TEST_CONNECT, 1, TIME_VS_RAW_AT_MOST, 1.3, 0, CONNECT_SEGMENT },
	/* Issue 12's: what a program's loop of connect cycles costs. */
	{ "connect cycle by default within 1.2x plain", TEST_CONNECT, 1, TIME_VS_PLAIN_AT_MOST, 1.2, 0,
	  CONNECT_DEFAULT },
	{ "overhead on non-TSSX I/O within 2%", TEST_PIPE, 64, OVERHEAD_AT_MOST, 2, 0, CONNECT_SEGMENT },
	/* A later connection's read: the first of a process also carries the
	 * process's first-use work (bench.h, BLOCKED_FIRST). */
	{ "blocked reader ~0 CPU (< 1 ms in 1 s)", TEST_BLOCKED, BLOCKED_LATER, CPU_AT_MOST, BLOCKED_CPU_LIMIT_NS, 0,
	  CONNECT_SEGMENT },
	/* Issue 12's: each the worst row of its range. */
	{ "round trips 8 B-64 KiB within 1.3x raw", TEST_PINGPONG, 8, WORST_TIME_VS_RAW_AT_MOST, 1.3, 64 * 1024,
	  CONNECT_SEGMENT },
	{ "round trip >= plain at every size", TEST_PINGPONG, 8, WORST_SPEEDUP_AT_LEAST, 1, EVERY_SIZE, CONNECT_SEGMENT },
	{ "streaming >= plain at every size", TEST_STREAM, 8, WORST_SPEEDUP_AT_LEAST, 1, EVERY_SIZE, CONNECT_SEGMENT },
	{ "round trip within 1.3x raw at every size", TEST_PINGPONG, 8, WORST_TIME_VS_RAW_AT_MOST, 1.3, EVERY_SIZE,
	  CONNECT_SEGMENT },
	{ "streaming within 1.3x raw at every size", TEST_STREAM, 8, WORST_TIME_VS_RAW_AT_MOST, 1.3, EVERY_SIZE,
	  CONNECT_SEGMENT },
	{ "8 B to a draining reader >= 0.5x raw msg/s", TEST_DRAIN, 8, TIME_VS_RAW_AT_MOST, 2, 0, CONNECT_SEGMENT },
	{ "idle connection <= 20 KiB shared memory", TEST_IDLE, 1, BYTES_AT_MOST, 20 * 1024, 0, CONNECT_SEGMENT },
};

static const char *size_text(size_t size, char *buf, size_t len)
{
	if (size >= 1024 * 1024)
		snprintf(buf, len, "%zu MiB", size / (1024 * 1024));
	else if (size >= 1024)
		snprintf(buf, len, "%zu KiB", size / 1024);
	else
		snprintf(buf, len, "%zu B", size);
	return buf;
}

const char *bench_row_label(const struct bench_row *row, char *buf, size_t size)
{
	char sz[16];

	size_text(row->size, sz, sizeof(sz));
	switch (row->test) {
	case TEST_PINGPONG:
		snprintf(buf, size, "round trip %s", sz);
		break;
	case TEST_STREAM:
		snprintf(buf, size, "streaming %s", sz);
		break;
	case TEST_DRAIN:
		snprintf(buf, size, "draining reader %s", sz);
		break;
	case TEST_CONNECT:
		snprintf(buf, size, "%s",
			 row->connect == CONNECT_MIXED	   ? "connect, TSSX client only"
			 : row->connect == CONNECT_DEFAULT ? "connect cycle, by default"
							   : "connect cycle");
		break;
	case TEST_PIPE:
		snprintf(buf, size, "pipe round trip %s", sz);
		break;
	case TEST_IDLE:
		snprintf(buf, size, "idle connection: shared memory");
		break;
	default:
		snprintf(buf, size, "reader blocked: CPU");
		break;
	}
	return buf;
}

/* ---------------------------------------------------------------------
 * Values and ratios, from the medians of nanoseconds per operation
 * --------------------------------------------------------------------- */

static const struct bench_row *find_row(const struct bench_run *run, enum bench_test test,
					size_t size, enum connect_mode connect)
{
	for (size_t i = 0; i < run->nrows; i++)
		if (run->rows[i].test == test && run->rows[i].size == size && run->rows[i].connect == connect)
			return &run->rows[i];
	return NULL;
}

/* The mixed connect row is compared with the plain connect cycle. */
static const struct bench_cell *cell_of(const struct bench_run *run, const struct bench_row *row,
					enum bench_column col)
{
	if (bench_row_is_mixed(row) && col == COL_PLAIN)
		row = find_row(run, row->test, row->size, CONNECT_SEGMENT);
	return row ? &row->cell[col] : NULL;
}

static double median_of(const struct bench_cell *cell)
{
	return cell && cell->done && cell->stats.n ? cell->stats.median : NAN;
}

static double ratio(const struct bench_run *run, const struct bench_row *row,
		    enum bench_column over, enum bench_column under)
{
	double den = median_of(cell_of(run, row, under));

	return den > 0 ? median_of(cell_of(run, row, over)) / den : NAN;
}

/* The worst ratio over the target's rows, NAN unless every one of them
 * has it: a target over every size is met only when every size is. */
static double worst_value(const struct bench_run *run, const struct target *t)
{
	bool speedup = t->kind == WORST_SPEEDUP_AT_LEAST;
	double worst = NAN;
	size_t rows = 0;

	for (size_t i = 0; i < run->nrows; i++) {
		const struct bench_row *row = &run->rows[i];
		double v;

		if (row->test != t->test || row->size < t->size || row->size > t->max_size)
			continue;
		rows++;
		v = speedup ? ratio(run, row, COL_PLAIN, COL_TSSX) : ratio(run, row, COL_TSSX, COL_RAW);
		if (isnan(v))
			return NAN;
		if (isnan(worst) || (speedup ? v < worst : v > worst))
			worst = v;
	}
	return rows ? worst : NAN;
}

static double target_value(const struct bench_run *run, const struct target *t)
{
	const struct bench_row *row = find_row(run, t->test, t->size, t->connect);

	if (t->kind == WORST_SPEEDUP_AT_LEAST || t->kind == WORST_TIME_VS_RAW_AT_MOST)
		return worst_value(run, t);
	if (!row)
		return NAN;
	switch (t->kind) {
	case SPEEDUP_AT_LEAST:
		return ratio(run, row, COL_PLAIN, COL_TSSX);
	case TIME_VS_RAW_AT_MOST:
		return ratio(run, row, COL_TSSX, COL_RAW);
	case TIME_VS_PLAIN_AT_MOST:
		return ratio(run, row, COL_TSSX, COL_PLAIN);
	case OVERHEAD_AT_MOST:
		return (ratio(run, row, COL_TSSX, COL_PLAIN) - 1) * 100;
	default:
		return median_of(&row->cell[COL_TSSX]);
	}
}

static bool target_met(const struct target *t, double value)
{
	return t->kind == SPEEDUP_AT_LEAST || t->kind == WORST_SPEEDUP_AT_LEAST ? value >= t->limit
										 : value <= t->limit;
}

static const char *error_text(int error)
{
	switch (error) {
	case -ETIMEDOUT:
		return "hung";
	case -EINTR:
		return "interrupted";
	default:
		return "failed";
	}
}

/* ---------------------------------------------------------------------
 * Text
 * --------------------------------------------------------------------- */

/* Pads to a width in characters, not bytes (µ, ×, – take two or three). */
static void put_padded(FILE *out, const char *s, int width)
{
	int chars = 0;

	for (const char *p = s; *p; p++)
		chars += ((unsigned char)*p & 0xc0) != 0x80;
	fputs(s, out);
	for (; chars < width; chars++)
		fputc(' ', out);
}

/* Three significant digits, never an exponent. */
static int format_number(char *buf, size_t len, double v)
{
	int decimals = v >= 99.95 ? 0 : v >= 9.995 ? 1 : v >= 0.9995 ? 2 : 3;

	return snprintf(buf, len, "%.*f", decimals, v);
}

/* "median / p99 unit" in the median's unit, or only the median when p99
 * is NAN. */
static void format_time(char *buf, size_t len, double median, double p99)
{
	static const struct { double scale; const char *unit; } units[] = {
		{ 1e6, "ms" }, { 1e3, "µs" }, { 1, "ns" },
	};
	size_t i = 0;
	int n;

	while (i + 1 < ARRAY_SIZE(units) && median < units[i].scale)
		i++;
	n = format_number(buf, len, median / units[i].scale);
	if (!isnan(p99)) {
		n += snprintf(buf + n, len - (size_t)n, " / ");
		n += format_number(buf + n, len - (size_t)n, p99 / units[i].scale);
	}
	snprintf(buf + n, len - (size_t)n, " %s", units[i].unit);
}

/* A rate with its own suffix: "15.5M". */
static int format_rate(char *buf, size_t len, double rate)
{
	static const struct { double scale; const char *unit; } units[] = {
		{ 1e9, "G" }, { 1e6, "M" }, { 1e3, "k" }, { 1, "" },
	};
	size_t i = 0;
	int n;

	while (i + 1 < ARRAY_SIZE(units) && rate < units[i].scale)
		i++;
	n = format_number(buf, len, rate / units[i].scale);
	return n + snprintf(buf + n, len - (size_t)n, "%s", units[i].unit);
}

/* "median / p99" of a per-operation quantity derived from the time. */
static void format_pair(char *buf, size_t len, double median, double p99, bool rate)
{
	int n = rate ? format_rate(buf, len, median) : format_number(buf, len, median);

	n += snprintf(buf + n, len - (size_t)n, " / ");
	if (rate)
		format_rate(buf + n, len - (size_t)n, p99);
	else
		format_number(buf + n, len - (size_t)n, p99);
}

enum view { VIEW_TIME, VIEW_RATE, VIEW_BANDWIDTH, VIEW_CPU, VIEW_BYTES };

/* Bytes in KiB: "4.00 KiB". */
static void format_bytes(char *buf, size_t len, double bytes)
{
	int n = format_number(buf, len, bytes / 1024);

	snprintf(buf + n, len - (size_t)n, " KiB");
}

/* Whether a TSSX cell that mapped no shared memory ran on plain sockets:
 * only the tests that keep one connection open can tell. */
static bool fell_back(const struct bench_row *row, const struct bench_cell *cell, enum bench_column col)
{
	return col == COL_TSSX && cell->done && !cell->shm_used &&
	       (row->test == TEST_PINGPONG || row->test == TEST_STREAM || row->test == TEST_DRAIN ||
		row->test == TEST_BLOCKED || row->test == TEST_IDLE);
}

static void format_cell(const struct bench_run *run, const struct bench_row *row,
			enum bench_column col, enum view view, char *buf, size_t len)
{
	const struct bench_cell *cell = cell_of(run, row, col);
	double size = (double)row->size;

	const struct bench_stats *st = &cell->stats;

	if (!cell->wanted)
		snprintf(buf, len, "–");
	else if (col == COL_TSSX && !run->config->library)
		snprintf(buf, len, "n/a");
	else if (!cell->done)
		snprintf(buf, len, "%s", cell->error ? error_text(cell->error) : "not run");
	else if (view == VIEW_RATE)
		format_pair(buf, len, 1e9 / st->median, 1e9 / st->p99, true);
	else if (view == VIEW_BANDWIDTH)
		format_pair(buf, len, size / st->median, size / st->p99, false);
	else if (view == VIEW_CPU)
		format_time(buf, len, st->median, NAN);
	else if (view == VIEW_BYTES)
		format_bytes(buf, len, st->median);
	else
		format_time(buf, len, st->median, st->p99);
	if (fell_back(row, cell, col) && strlen(buf) + 1 < len)
		strcat(buf, "*");
}

struct section {
	const char *title;
	enum bench_test test;
	enum view view;
};

static const struct section sections[] = {
	{ "round trip", TEST_PINGPONG, VIEW_TIME },
	{ "streaming, messages/s", TEST_STREAM, VIEW_RATE },
	{ "streaming, GB/s", TEST_STREAM, VIEW_BANDWIDTH },
	{ "draining reader, messages/s", TEST_DRAIN, VIEW_RATE },
	{ "connect cycle", TEST_CONNECT, VIEW_TIME },
	{ "pipe round trip", TEST_PIPE, VIEW_TIME },
	{ "blocked reader, CPU", TEST_BLOCKED, VIEW_CPU },
	{ "idle connection, shared mem", TEST_IDLE, VIEW_BYTES },
};

static void format_ratios(const struct bench_run *run, const struct bench_row *row,
			  char *vs_plain, char *vs_raw, size_t len)
{
	double speedup = ratio(run, row, COL_PLAIN, COL_TSSX);
	double slowdown = ratio(run, row, COL_TSSX, COL_RAW);

	*vs_plain = *vs_raw = '\0';
	if (row->test == TEST_BLOCKED || row->test == TEST_IDLE)
		return;
	if (row->test == TEST_PIPE && !isnan(speedup))
		snprintf(vs_plain, len, "%+.1f%%", (1 / speedup - 1) * 100);
	else if (!isnan(speedup))
		strcat(vs_plain + format_number(vs_plain, len, speedup), "×");
	if (!isnan(slowdown))
		strcat(vs_raw + format_number(vs_raw, len, slowdown), "×");
}

static void print_row(FILE *out, const struct bench_run *run, const struct bench_row *row, enum view view)
{
	char label[64], cell[64], vs_plain[32], vs_raw[32];

	switch (row->test) {
	case TEST_CONNECT:
		snprintf(label, sizeof(label), "  %s",
			 row->connect == CONNECT_MIXED	   ? "TSSX client, plain server"
			 : row->connect == CONNECT_DEFAULT ? "both ends, by default"
							   : "both ends, a segment each");
		break;
	case TEST_BLOCKED:
		snprintf(label, sizeof(label), "  %.3g s in read(), %s", (double)run->config->block_ns / 1e9,
			 row->size == BLOCKED_LATER ? "later" : "first");
		break;
	case TEST_IDLE:
		snprintf(label, sizeof(label), "  of %d, per connection", IDLE_CONNECTIONS);
		break;
	default:
		snprintf(label, sizeof(label), "  ");
		size_text(row->size, label + 2, sizeof(label) - 2);
		break;
	}
	put_padded(out, label, LABEL_WIDTH);
	for (int col = 0; col < COL_COUNT; col++) {
		format_cell(run, row, (enum bench_column)col, view, cell, sizeof(cell));
		put_padded(out, cell, CELL_WIDTH);
	}
	format_ratios(run, row, vs_plain, vs_raw, sizeof(vs_plain));
	put_padded(out, vs_plain, 10);
	fprintf(out, "%s\n", vs_raw);
}

static void print_targets(FILE *out, const struct bench_run *run)
{
	fputs("\ntargets, from this run:\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
		const struct target *t = &targets[i];
		double value = target_value(run, t);
		char text[32];

		if (isnan(value))
			snprintf(text, sizeof(text), "not measured");
		else if (t->kind == OVERHEAD_AT_MOST)
			snprintf(text, sizeof(text), "%+.1f%%", value);
		else if (t->kind == CPU_AT_MOST)
			format_time(text, sizeof(text), value, NAN);
		else if (t->kind == BYTES_AT_MOST)
			format_bytes(text, sizeof(text), value);
		else
			strcat(text + format_number(text, sizeof(text), value), "×");
		fprintf(out, "  %-8s ", isnan(value) ? "" : target_met(t, value) ? "met" : "MISSED");
		put_padded(out, t->name, 44);
		fprintf(out, "%s\n", text);
	}
}

static bool any_fell_back(const struct bench_run *run)
{
	for (size_t i = 0; i < run->nrows; i++)
		if (fell_back(&run->rows[i], &run->rows[i].cell[COL_TSSX], COL_TSSX))
			return true;
	return false;
}

void bench_report_text(FILE *out, const struct bench_run *run)
{
	const struct bench_config *cfg = run->config;

	fprintf(out, "tssx-bench %s: %ld CPUs (%s), Linux %s\n", TSSX_VERSION, run->nproc, run->cpu,
		run->kernel);
	fprintf(out, "%.3g s per cell after %.3g s warm-up, in %u rounds; cells: median / p99 of the batches\n",
		(double)cfg->duration_ns / 1e9, (double)cfg->warmup_ns / 1e9, cfg->rounds);
	if (run->load > (double)run->nproc / 2)
		fprintf(out, "warning: the machine was busy (load average %.2f on %ld CPUs): processes that\n"
			"spin get preempted, so these numbers are noisy; rerun on an idle machine\n",
			run->load, run->nproc);
	if (!cfg->library)
		fprintf(out, "TSSX column skipped: %s\n", cfg->tssx_missing);
	if (run->interrupted)
		fputs("interrupted: partial results\n", out);
	for (size_t s = 0; s < ARRAY_SIZE(sections); s++) {
		bool header = false;

		for (size_t i = 0; i < run->nrows; i++) {
			if (run->rows[i].test != sections[s].test)
				continue;
			if (!header) {
				fputc('\n', out);
				put_padded(out, sections[s].title, LABEL_WIDTH);
				for (int col = 0; col < COL_COUNT; col++)
					put_padded(out, (const char *[]){ "raw shm", "plain socket", "TSSX" }[col],
						   CELL_WIDTH);
				fputs(sections[s].test == TEST_PIPE ? "overhead\n" : "vs plain  vs raw\n", out);
				header = true;
			}
			print_row(out, run, &run->rows[i], sections[s].view);
		}
	}
	fputs("\nvs plain: times faster than plain sockets (above 1 is better); vs raw: TSSX's\n"
	      "time over the raw limit's (1 is the limit).  Connect cycle: socket, connect,\n"
	      "accept, 1 B echo, close.  Pipe: no socket at all, TSSX column = with the\n"
	      "preload.  Blocked reader: CPU used during one blocked read().  Idle\n"
	      "connection: the pages of the segments resident in memory (both ends).\n", out);
	if (any_fell_back(run))
		fputs("* TSSX mapped no shared memory here: this connection ran on a plain socket\n", out);
	print_targets(out, run);
}

/* ---------------------------------------------------------------------
 * JSON
 * --------------------------------------------------------------------- */

void bench_json_number(FILE *out, double v)
{
	if (isfinite(v))
		fprintf(out, "%.6g", v);
	else
		fputs("null", out);
}

void bench_json_string(FILE *out, const char *s)
{
	if (!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(out, "\\u%04x", *s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static void json_cell(FILE *out, const struct bench_run *run, const struct bench_row *row,
		      enum bench_column col)
{
	const struct bench_cell *cell = cell_of(run, row, col);
	const struct bench_stats *st = &cell->stats;

	if (!cell->wanted || (col == COL_TSSX && !run->config->library)) {
		fputs("null", out);
		return;
	}
	if (!cell->done) {
		fputs("{\"error\": ", out);
		bench_json_string(out, cell->error ? error_text(cell->error) : "not run");
		fputc('}', out);
		return;
	}
	fputs("{\"median\": ", out);
	bench_json_number(out, st->median);
	fputs(", \"p99\": ", out);
	bench_json_number(out, st->p99);
	fputs(", \"min\": ", out);
	bench_json_number(out, st->min);
	fputs(", \"max\": ", out);
	bench_json_number(out, st->max);
	fprintf(out, ", \"samples\": %zu", st->n);
	if (row->test == TEST_STREAM || row->test == TEST_DRAIN) {
		fputs(", \"messages_per_s\": ", out);
		bench_json_number(out, 1e9 / st->median);
		fputs(", \"gb_per_s\": ", out);
		bench_json_number(out, (double)row->size / st->median);
	}
	if (col == COL_TSSX)
		fprintf(out, ", \"shared_memory\": %s", cell->shm_used ? "true" : "false");
	fputc('}', out);
}

static void json_row(FILE *out, const struct bench_run *run, const struct bench_row *row)
{
	static const char *const columns[] = { "raw", "plain", "tssx" };
	char label[64];

	fputs("    {\"test\": ", out);
	bench_json_string(out, row->connect == CONNECT_MIXED     ? "connect_tssx_client_plain_server"
			       : row->connect == CONNECT_DEFAULT ? "connect_default"
								 : bench_test_names[row->test]);
	fprintf(out, ", \"size\": %zu, \"label\": ", row->size);
	bench_json_string(out, bench_row_label(row, label, sizeof(label)));
	fprintf(out, ", \"unit\": \"%s\"",
		row->test == TEST_BLOCKED ? "cpu_ns" : row->test == TEST_IDLE ? "bytes_per_connection" : "ns_per_op");
	for (int col = 0; col < COL_COUNT; col++) {
		fprintf(out, ",\n     \"%s\": ", columns[col]);
		json_cell(out, run, row, (enum bench_column)col);
	}
	/* Memory is no speed: an idle connection has no ratios. */
	fputs(",\n     \"tssx_vs_plain\": ", out);
	bench_json_number(out, row->test == TEST_IDLE ? NAN : ratio(run, row, COL_PLAIN, COL_TSSX));
	fputs(", \"tssx_vs_raw\": ", out);
	bench_json_number(out, ratio(run, row, COL_TSSX, COL_RAW));
	if (row->test == TEST_PIPE) {
		fputs(", \"overhead_percent\": ", out);
		bench_json_number(out, (ratio(run, row, COL_TSSX, COL_PLAIN) - 1) * 100);
	}
	fputc('}', out);
}

static void json_targets(FILE *out, const struct bench_run *run)
{
	fputs("  \"targets\": [\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
		double value = target_value(run, &targets[i]);

		fputs("    {\"name\": ", out);
		bench_json_string(out, targets[i].name);
		fputs(", \"value\": ", out);
		bench_json_number(out, value);
		fputs(", \"limit\": ", out);
		bench_json_number(out, targets[i].limit);
		fprintf(out, ", \"met\": %s}%s\n",
			isnan(value) ? "null" : target_met(&targets[i], value) ? "true" : "false",
			i + 1 < ARRAY_SIZE(targets) ? "," : "");
	}
	fputs("  ]\n", out);
}

void bench_report_json(FILE *out, const struct bench_run *run)
{
	const struct bench_config *cfg = run->config;

	fprintf(out, "{\n  \"version\": \"%s\",\n  \"machine\": {\"nproc\": %ld, \"cpu\": ", TSSX_VERSION,
		run->nproc);
	bench_json_string(out, run->cpu);
	fputs(", \"kernel\": ", out);
	bench_json_string(out, run->kernel);
	fputs(", \"load\": ", out);
	bench_json_number(out, run->load);
	fputs("},\n  \"config\": {\"duration_s\": ", out);
	bench_json_number(out, (double)cfg->duration_ns / 1e9);
	fputs(", \"warmup_s\": ", out);
	bench_json_number(out, (double)cfg->warmup_ns / 1e9);
	fputs(", \"blocked_s\": ", out);
	bench_json_number(out, (double)cfg->block_ns / 1e9);
	fprintf(out, ", \"rounds\": %u", cfg->rounds);
	fprintf(out, ", \"quick\": %s},\n  \"tssx\": {\"available\": %s, \"library\": ",
		cfg->quick ? "true" : "false", cfg->library ? "true" : "false");
	bench_json_string(out, cfg->library);
	fputs(", \"registry\": ", out);
	bench_json_string(out, cfg->registry);
	fputs(", \"reason\": ", out);
	bench_json_string(out, cfg->library ? NULL : cfg->tssx_missing);
	fprintf(out, "},\n  \"interrupted\": %s,\n  \"results\": [\n", run->interrupted ? "true" : "false");
	for (size_t i = 0; i < run->nrows; i++) {
		json_row(out, run, &run->rows[i]);
		fputs(i + 1 < run->nrows ? ",\n" : "\n", out);
	}
	fputs("  ],\n", out);
	json_targets(out, run);
	fputs("}\n", out);
}
