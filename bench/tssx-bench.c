/*
 * tssx-bench: the orchestrator.  Builds the rows of the table, runs each
 * cell's measurement in role processes (run.c), shows progress, and prints
 * the table or JSON (report.c).  With --role it is one of those role
 * processes instead (roles.c).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "config.h"
#include "tssx/macros.h"
#include "run.h"

#define FUSE_SUPER_MAGIC 0x65735546
#define NS_PER_S 1000000000.0

volatile sig_atomic_t bench_interrupted;

/* 8 B, then every power of four from 64 B to 4 MiB: four times the
 * default ring, where writer and reader must overlap to keep up with a
 * plain socket.  Every size the targets name (issue 12: 8 B-64 KiB round
 * trips, every size at least as fast as plain) has its row. */
static const size_t message_sizes[] = { 8, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304 };
/* Small messages are where a draining reader shows the per-call cost. */
static const size_t drain_sizes[] = { 8, 64 };
#define PIPE_MESSAGE_SIZE 64
/* Every row measures its columns in alternating rounds, so that a change in
 * the machine's load during the run hits all of them alike; the pipe
 * overhead, a difference of a few percent, gets twice as many. */
#define DEFAULT_ROUNDS 3

static const char usage_text[] =
"Usage: tssx-bench [OPTION]...\n"
"Measure raw shared memory, plain Unix stream sockets and TSSX side by side.\n"
"\n"
"Every measurement runs a server and a client in two processes of their own,\n"
"fork()ed and re-executed from this binary, and is repeated per column:\n"
"  raw shm  the physical limit: the message is copied into a shared mapping\n"
"           and a sequence number published on its own cache line, the peer\n"
"           spins on it and copies the message out; no system call at all\n"
"  plain    AF_UNIX stream sockets, read(2) and write(2)\n"
"  TSSX     the same socket code, both roles started with LD_PRELOAD of\n"
"           libtssx.so and TSSX_REGISTRY set\n"
"Nothing is pinned to a CPU.  A row measures its columns in alternating rounds\n"
"(three by default, twice as many for the pipe), so that a change in the\n"
"machine's load hits every column alike.  Each round warms up, then times batches of operations (about\n"
"200 per round); a cell reports the median and the 99th percentile of its\n"
"batches' time per operation (min and max too with --json).\n"
"\n"
"Measurements:\n"
"  round trip    client writes N bytes, server reads them and writes them back,\n"
"                for N = 8 B and every power of four from 64 B to 4 MiB\n"
"  streaming     server writes N-byte messages, client reads one per read(2):\n"
"                messages/s and GB/s, same sizes\n"
"  drain         server writes N-byte messages, one write(2) each, client\n"
"                reads up to 64 KiB per read(2), as a buffered reader does:\n"
"                messages/s for N = 8 B, 64 B (raw: the bare ring, one\n"
"                publish per message, the reader takes what is there)\n"
"  connect       socket, connect, accept, 1-byte echo, close, in a loop:\n"
"                plain; TSSX with a segment at every cycle\n"
"                (TSSX_SHORT_CALLS=0: what shared memory costs a\n"
"                connection; raw: a page of its own per connection,\n"
"                made, passed, mapped and unmapped by both ends, the\n"
"                byte echoed through it); TSSX by default, where such\n"
"                short connections soon go plain (what a program's loop\n"
"                of connects costs); a preloaded client to a server\n"
"                without TSSX\n"
"  pipe          a 64 B round trip over two pipes, without and with the\n"
"                preload: what the library costs on I/O that is not TSSX\n"
"  blocked       CPU time (getrusage) of a client blocked in read(2) until\n"
"                the server answers after one second: on its process's\n"
"                first connection (with the process's first-use work), and\n"
"                on a later one (the blocked read alone)\n"
"  idle          shared memory resident per idle connection: the client\n"
"                holds 200 connections open after a 1 B echo each, the\n"
"                server its ends; the pages of their segments in memory\n"
"                (mincore), whichever end touched them, per connection\n"
"The table ends with the ratios (TSSX vs plain, TSSX vs raw) and the\n"
"project's targets, each marked met or missed.\n"
"\n"
"Options:\n"
"  -q, --quick           short run: 0.4 s per cell, about a minute on 2 cores\n"
"  -d, --duration=SECS   measuring time per cell, all rounds together (default 1;\n"
"                        decimals allowed); below 1 it also shortens the\n"
"                        blocked read\n"
"  -w, --warmup=SECS     warm-up per cell, all rounds together (default 0.2)\n"
"  -R, --rounds=N        rounds per cell (default 3), each with its own processes\n"
"  -t, --tests=LIST      only these measurements, comma-separated:\n"
"                        pingpong,stream,drain,connect,pipe,blocked,idle;\n"
"                        with --load, only these scenarios:\n"
"                        pairs,hogs,clients,chain,relay,fresh,idle\n"
"  -L, --load            the load table instead (below)\n"
"  -j, --json            print JSON instead of the table\n"
"  -p, --progress        show progress on stderr even when it is not a tty\n"
"                        (default: only on a tty)\n"
"  -l, --library=PATH    libtssx.so to preload (default: $TSSX_LIBRARY, the\n"
"                        build tree's when run from it, else the installed one)\n"
"  -r, --registry=DIR    registry mount point (default: $TSSX_REGISTRY, else\n"
"                        " TSSX_DEFAULT_REGISTRY ")\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"--load: plain and TSSX with many processes at once: 64 B round trips/s,\n"
"CPU time and system calls per request; 1-16 independent pairs, the same\n"
"with a busy process per CPU, an epoll server with 1-64 clients, a client ->\n"
"epoll proxy -> server chain, the same with an upstream connection per\n"
"request, an epoll server whose 1 or 8 clients make a connection per\n"
"request, an epoll server with one busy client and 100 or 1000 connections\n"
"open and silent (default 3 s per cell, --quick 1.2 s).\n"
"-t names the scenarios to run (default: all seven).  One pair beside the busy\n"
"processes is a lottery of placements (its two ends on one CPU, or apart, each\n"
"beside a busy process, where every answer of plain sockets wakes the other\n"
"CPU and a round trip costs many times more, while TSSX's ends spin): that\n"
"cell runs three times the rounds, looks where the ends run every 5 ms, and a\n"
"second table compares TSSX with plain in rounds of the same placement.\n"
"\n"
"Without a mounted registry or without the library the TSSX column is\n"
"skipped, with one line on stderr saying why and how to fix it.\n"
"\n"
"Ctrl-C stops the run: the role processes are killed and the table shows what\n"
"was measured so far.\n"
"\n"
"Exit status: 0 when every cell was measured, 1 when some failed, 2 on a\n"
"usage error, 130 when interrupted.\n";

static int parse_name(const char *name, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (names[i] && strcmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list args;

	fputs("tssx-bench: ", stderr);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputs("\nTry 'tssx-bench --help'.\n", stderr);
	return 2;
}

static bool parse_seconds(const char *arg, uint64_t *ns)
{
	char *end;
	double s;

	errno = 0;
	s = strtod(arg, &end);
	if (errno || end == arg || *end || !(s >= 0) || s > 3600)
		return false;
	*ns = (uint64_t)(s * NS_PER_S);
	return true;
}

/* --role server|client TEST TRANSPORT SIZE PATH WARMUP_NS DURATION_NS */
static int role_from_argv(int argc, char **argv)
{
	static const char *const transports[] = {
		[TRANSPORT_RAW] = "raw", [TRANSPORT_SOCKET] = "socket", [TRANSPORT_PIPE] = "pipe",
	};
	struct role_args args;
	int test, transport;

	if (argc != 9)
		return usage_error("--role: wrong number of arguments");
	test = parse_name(argv[3], bench_test_names, ARRAY_SIZE(bench_test_names));
	transport = parse_name(argv[4], transports, ARRAY_SIZE(transports));
	args = (struct role_args){
		.server = strcmp(argv[2], "server") == 0,
		.test = (enum bench_test)test,
		.transport = (enum bench_transport)transport,
		.size = strtoul(argv[5], NULL, 10),
		.socket_path = argv[6],
		.warmup_ns = strtoull(argv[7], NULL, 10),
		.duration_ns = strtoull(argv[8], NULL, 10),
	};
	if (test < 0 || transport < 0 || args.size < 1 || args.size > BENCH_MAX_SIZE)
		return usage_error("--role: bad arguments");
	return role_main(&args);
}

/* ---------------------------------------------------------------------
 * Where TSSX comes from
 * --------------------------------------------------------------------- */

static bool readable(const char *path)
{
	return path && access(path, R_OK) == 0;
}

/* The file at `relative` from the build tree's top when this binary runs
 * from a build tree (bench/tssx-bench), else `installed`; NULL if neither
 * exists.  Resolved into buf. */
static char *find_file(const char *relative, const char *installed, char *buf)
{
	char exe[PATH_MAX], in_tree[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(in_tree, sizeof(in_tree), "%s/../%s", exe, relative);
		if (readable(in_tree))
			return realpath(in_tree, buf);
	}
	snprintf(buf, PATH_MAX, "%s", installed);
	return readable(buf) ? buf : NULL;
}

/* --library, $TSSX_LIBRARY, the build tree's, the installed library. */
static char *find_library(const char *option)
{
	static char path[PATH_MAX];

	if (option || getenv("TSSX_LIBRARY"))
		return realpath(option ? option : getenv("TSSX_LIBRARY"), path);
	return find_file("preload/libtssx.so", TSSX_LIBDIR "/libtssx.so", path);
}

static bool is_registry(const char *dir)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && st.f_type == FUSE_SUPER_MAGIC;
}

/* Fills the TSSX part of the configuration, or says in one line why the
 * column is skipped and how to fix it. */
static void find_tssx(struct bench_config *cfg, const char *library, const char *registry)
{
	char daemon[PATH_MAX];

	cfg->registry = registry ? registry : getenv("TSSX_REGISTRY") ? getenv("TSSX_REGISTRY")
									: TSSX_DEFAULT_REGISTRY;
	cfg->library = find_library(library);
	if (!cfg->library)
		snprintf(cfg->tssx_missing, sizeof(cfg->tssx_missing),
			 "libtssx.so not found (build it, or give --library or TSSX_LIBRARY)");
	else if (!is_registry(cfg->registry))
		snprintf(cfg->tssx_missing, sizeof(cfg->tssx_missing),
			 "no registry mounted at %s (start one: %s %s)", cfg->registry,
			 find_file("registryfs/tssx-registryfs", "", daemon) ?: "tssx-registryfs",
			 cfg->registry);
	if (cfg->tssx_missing[0])
		cfg->library = NULL;
}

/* ---------------------------------------------------------------------
 * The run
 * --------------------------------------------------------------------- */

static size_t add_row(struct bench_row *rows, size_t n, enum bench_test test, size_t size, bool with_raw)
{
	rows[n] = (struct bench_row){ .test = test, .size = size };
	rows[n].cell[COL_RAW].wanted = with_raw;
	rows[n].cell[COL_PLAIN].wanted = true;
	rows[n].cell[COL_TSSX].wanted = true;
	return n + 1;
}

/* The mixed row has no plain cell of its own: it is compared with the
 * plain connect cycle. */
static size_t add_connect_row(struct bench_row *rows, size_t n, enum connect_mode connect)
{
	n = add_row(rows, n, TEST_CONNECT, 1, false);
	rows[n - 1].connect = connect;
	rows[n - 1].cell[COL_PLAIN].wanted = !bench_row_is_mixed(&rows[n - 1]);
	/* The limit of a connection through shared memory: the row that
	 * gives each connection its segment. */
	rows[n - 1].cell[COL_RAW].wanted = connect == CONNECT_SEGMENT;
	return n;
}

static size_t build_rows(struct bench_row *rows, unsigned tests)
{
	size_t n = 0;

	for (int test = TEST_PINGPONG; test <= TEST_STREAM; test++)
		if (tests & (1u << test))
			for (size_t i = 0; i < ARRAY_SIZE(message_sizes); i++)
				n = add_row(rows, n, (enum bench_test)test, message_sizes[i], true);
	if (tests & (1u << TEST_DRAIN))
		for (size_t i = 0; i < ARRAY_SIZE(drain_sizes); i++)
			n = add_row(rows, n, TEST_DRAIN, drain_sizes[i], true);
	if (tests & (1u << TEST_CONNECT)) {
		n = add_connect_row(rows, n, CONNECT_SEGMENT);
		n = add_connect_row(rows, n, CONNECT_DEFAULT);
		n = add_connect_row(rows, n, CONNECT_MIXED);
	}
	if (tests & (1u << TEST_PIPE))
		n = add_row(rows, n, TEST_PIPE, PIPE_MESSAGE_SIZE, false);
	if (tests & (1u << TEST_BLOCKED)) {
		n = add_row(rows, n, TEST_BLOCKED, BLOCKED_FIRST, false);
		n = add_row(rows, n, TEST_BLOCKED, BLOCKED_LATER, false);
	}
	if (tests & (1u << TEST_IDLE))
		n = add_row(rows, n, TEST_IDLE, 1, false);
	return n;
}

static bool cell_runs(const struct bench_config *cfg, const struct bench_cell *cell, enum bench_column col)
{
	return cell->wanted && (col != COL_TSSX || cfg->library);
}

static const char *const column_names[] = { "raw shm", "plain", "TSSX" };

static void show_progress(const struct bench_config *cfg, const struct bench_row *row,
			  enum bench_column col, unsigned done, unsigned total)
{
	char label[64];

	if (!cfg->progress)
		return;
	fprintf(stderr, "%s[%u/%u] %s, %s%s", isatty(STDERR_FILENO) ? "\r\033[K" : "", done + 1, total,
		bench_row_label(row, label, sizeof(label)), bench_row_is_mixed(row) ? "preloaded client" : column_names[col],
		isatty(STDERR_FILENO) ? "" : "\n");
}

static void finish_cell(struct bench_cell *cell)
{
	cell->done = !cell->error && cell->n > 0;
	if (cell->done)
		bench_stats_compute(cell->samples, cell->n, &cell->stats);
}

/* Runs every cell of the table, row by row, each row's columns in turn,
 * round after round. */
static void measure_all(const struct bench_config *cfg, struct bench_row *rows, size_t nrows)
{
	unsigned total = 0, done = 0;

	for (size_t i = 0; i < nrows; i++)
		for (int col = 0; col < COL_COUNT; col++)
			total += cell_runs(cfg, &rows[i].cell[col], (enum bench_column)col);
	for (size_t i = 0; i < nrows && !bench_interrupted; i++) {
		struct bench_row *row = &rows[i];
		bool once = row->test == TEST_BLOCKED || row->test == TEST_IDLE; /* one sample each */
		unsigned rounds = row->test == TEST_PIPE ? 2 * cfg->rounds : once ? 1 : cfg->rounds;
		uint64_t duration = row->test == TEST_BLOCKED ? cfg->block_ns : cfg->duration_ns / rounds;
		uint64_t warmup = cfg->warmup_ns / rounds;

		for (unsigned round = 0; round < rounds && !bench_interrupted; round++)
			for (int col = 0; col < COL_COUNT && !bench_interrupted; col++) {
				struct bench_cell *cell = &row->cell[col];
				struct bench_case c;

				if (!cell_runs(cfg, cell, (enum bench_column)col))
					continue;
				show_progress(cfg, row, (enum bench_column)col, done, total);
				bench_case_of(row, (enum bench_column)col, &c);
				bench_run_case(cfg, &c, warmup, duration, cell);
				done += round + 1 == rounds;
			}
		for (int col = 0; col < COL_COUNT; col++)
			finish_cell(&row->cell[col]);
	}
	if (cfg->progress && isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
}

static void read_machine(struct bench_run *run)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];
	struct utsname u;

	run->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(run->cpu, sizeof(run->cpu), "unknown CPU");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (colon && strncmp(line, "model name", 10) == 0) {
			snprintf(run->cpu, sizeof(run->cpu), "%s", colon + 2);
			run->cpu[strcspn(run->cpu, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
	f = fopen("/proc/loadavg", "re");
	if (!f || fscanf(f, "%lf", &run->load) != 1)
		run->load = -1;
	if (f)
		fclose(f);
	snprintf(run->kernel, sizeof(run->kernel), "%s", uname(&u) == 0 ? u.release : "unknown");
}

static void on_interrupt(int sig)
{
	bench_interrupted = 1;
}

static int run_table(const struct bench_config *cfg, unsigned tests)
{
	/* The rows of build_rows(): round trip and streaming per size, drain
	 * per size, three connect rows, pipe, blocked, idle. */
	struct bench_row rows[2 * ARRAY_SIZE(message_sizes) + ARRAY_SIZE(drain_sizes) + 3 + 3];
	struct bench_run run = { .config = cfg, .rows = rows };
	bool failed = false;

	read_machine(&run);
	run.nrows = build_rows(rows, tests);
	measure_all(cfg, rows, run.nrows);
	run.interrupted = bench_interrupted;
	for (size_t i = 0; i < run.nrows; i++)
		for (int col = 0; col < COL_COUNT; col++)
			failed |= rows[i].cell[col].error && rows[i].cell[col].error != -EINTR;
	if (cfg->json)
		bench_report_json(stdout, &run);
	else
		bench_report_text(stdout, &run);
	fflush(stdout);
	for (size_t i = 0; i < run.nrows; i++)
		for (int col = 0; col < COL_COUNT; col++)
			free(rows[i].cell[col].samples);
	return run.interrupted ? 130 : failed ? 1 : 0;
}

/* The private directory for the sockets and the Ctrl-C handler, around
 * run_table() or load_main(). */
static int in_run_dir(struct bench_config *cfg, unsigned tests, bool load)
{
	char dir[] = "/tmp/tssx-bench.XXXXXX";
	struct sigaction sa = { .sa_handler = on_interrupt }; /* no SA_RESTART: waits end */
	int status;

	if (!mkdtemp(dir)) {
		perror("tssx-bench: mkdtemp");
		return 1;
	}
	cfg->dir = dir;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	status = load ? load_main(cfg) : run_table(cfg, tests);
	rmdir(dir);
	return status;
}

/* A comma-separated list of names[] as a bit mask; 0 when a name is not one. */
static unsigned parse_list(const char *list, const char *const *names, size_t count)
{
	char copy[256], *save = NULL;
	unsigned tests = 0;

	snprintf(copy, sizeof(copy), "%s", list);
	for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		int test = parse_name(name, names, count);

		if (test < 0)
			return 0;
		tests |= 1u << test;
	}
	return tests;
}

/* The names -t takes, comma-separated, for its error message: kept
 * from the table, which a list written out by hand fell behind. */
static const char *names_joined(char *buf, size_t size, const char *const *names, size_t count)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < count && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "," : "", names[i]);
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "quick", no_argument, NULL, 'q' },	     { "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },  { "tests", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },	     { "progress", no_argument, NULL, 'p' },
		{ "library", required_argument, NULL, 'l' }, { "registry", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },	     { "version", no_argument, NULL, 'V' },
		{ "rounds", required_argument, NULL, 'R' },  { "load", no_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_config cfg = { .warmup_ns = 200000000, .duration_ns = 1000000000,
				    .block_ns = 1000000000, .rounds = DEFAULT_ROUNDS,
				    .load_kinds = (1u << LOAD_KIND_COUNT) - 1,
				    .progress = isatty(STDERR_FILENO) };
	const char *library = NULL, *registry = NULL, *test_list = NULL;
	char names[128];
	bool duration_given = false, warmup_given = false, load = false;
	unsigned tests = (1u << TEST_COUNT) - 1;
	int opt, status;
	char *end;

	if (argc > 1 && strcmp(argv[1], "--role") == 0)
		return role_from_argv(argc, argv);
	if (argc > 1 && strcmp(argv[1], "--load-role") == 0)
		return load_role_main(argc, argv);
	while ((opt = getopt_long(argc, argv, "qd:w:R:t:jpl:r:hVL", options, NULL)) != -1) {
		switch (opt) {
		case 'q':
			cfg.quick = true;
			break;
		case 'd':
			if (!parse_seconds(optarg, &cfg.duration_ns) || cfg.duration_ns == 0)
				return usage_error("invalid duration '%s'", optarg);
			duration_given = true;
			break;
		case 'w':
			if (!parse_seconds(optarg, &cfg.warmup_ns))
				return usage_error("invalid warm-up '%s'", optarg);
			warmup_given = true;
			break;
		case 'R':
			cfg.rounds = (unsigned)strtoul(optarg, &end, 10);
			if (*end || end == optarg || cfg.rounds < 1 || cfg.rounds > MAX_ROUNDS)
				return usage_error("invalid number of rounds '%s'", optarg);
			break;
		case 't':
			test_list = optarg; /* its names depend on --load */
			break;
		case 'L':
			load = true;
			break;
		case 'j':
			cfg.json = true;
			break;
		case 'p':
			cfg.progress = true;
			break;
		case 'l':
			library = optarg;
			break;
		case 'r':
			registry = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("tssx-bench %s\n", TSSX_VERSION);
			return 0;
		default:
			fputs("Try 'tssx-bench --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (test_list && load && !(cfg.load_kinds = parse_list(test_list, load_kind_names, LOAD_KIND_COUNT)))
		return usage_error("invalid scenario list '%s' (%s)", test_list,
				   names_joined(names, sizeof(names), load_kind_names, LOAD_KIND_COUNT));
	if (test_list && !load && !(tests = parse_list(test_list, bench_test_names, ARRAY_SIZE(bench_test_names))))
		return usage_error("invalid test list '%s' (%s)", test_list,
				   names_joined(names, sizeof(names), bench_test_names, ARRAY_SIZE(bench_test_names)));
	if (cfg.quick && !duration_given)
		cfg.duration_ns = 400000000;
	if (cfg.quick && !warmup_given)
		cfg.warmup_ns = 100000000;
	if (load && !duration_given)
		cfg.duration_ns = cfg.quick ? 1200000000 : 3000000000;
	if (load && !warmup_given)
		cfg.warmup_ns = 300000000;
	if (duration_given && cfg.duration_ns < cfg.block_ns)
		cfg.block_ns = cfg.duration_ns;
	find_tssx(&cfg, library, registry);
	if (cfg.tssx_missing[0])
		fprintf(stderr, "tssx-bench: %s; TSSX column skipped\n", cfg.tssx_missing);
	if (!(cfg.env[0] = bench_build_env(NULL, NULL, NULL)) ||
	    (cfg.library && (!(cfg.env[1] = bench_build_env(cfg.library, cfg.registry, NULL)) ||
			     !(cfg.env[2] = bench_build_env(cfg.library, cfg.registry, "TSSX_SHORT_CALLS=0"))))) {
		perror("tssx-bench");
		return 1;
	}
	status = in_run_dir(&cfg, tests, load);
	for (size_t i = 0; i < ARRAY_SIZE(cfg.env); i++)
		bench_free_env(cfg.env[i]);
	return status;
}
