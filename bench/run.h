/*
 * The orchestrator's side: the rows of the table, the measurements behind
 * their cells, and the report.
 */
#ifndef TSSX_BENCH_RUN_H
#define TSSX_BENCH_RUN_H

#include <signal.h>
#include <stdio.h>

#include "bench.h"

#define MAX_ROUNDS 100

enum bench_column { COL_RAW, COL_PLAIN, COL_TSSX, COL_COUNT };

/* How a connect row runs its TSSX column. */
enum connect_mode {
	/* Both ends preloaded, a segment at every cycle (TSSX_SHORT_CALLS=0):
	 * what a connection through shared memory costs. */
	CONNECT_SEGMENT,
	/* Both ends preloaded with the library's defaults: a loop of short
	 * connections to one server soon goes plain (docs/preload.md,
	 * "Short-lived connections"), as a program's would. */
	CONNECT_DEFAULT,
	/* A preloaded client, a server without TSSX. */
	CONNECT_MIXED,
};

/* One measurement: which roles, under which environment. */
struct bench_case {
	enum bench_test test;
	enum bench_transport transport;
	size_t size;
	bool preload_server, preload_client;
	bool segment_always; /* with TSSX_SHORT_CALLS=0 */
};

struct bench_cell {
	bool wanted;   /* this row measures this column */
	bool done;     /* all its runs finished */
	int error;     /* -errno of the first failed run, -ETIMEDOUT, -EINTR */
	bool shm_used; /* every run of a socket client mapped a memfd */
	double *samples;
	size_t n;
	struct bench_stats stats;
};

struct bench_row {
	enum bench_test test;
	size_t size;
	enum connect_mode connect; /* connect rows only */
	struct bench_cell cell[COL_COUNT];
};

/* The connect row of a preloaded client and a server without TSSX. */
static inline bool bench_row_is_mixed(const struct bench_row *row)
{
	return row->test == TEST_CONNECT && row->connect == CONNECT_MIXED;
}

/* The --load scenarios (load.c). */
enum load_kind {
	LOAD_PAIRS,
	LOAD_PAIRS_HOGS,
	LOAD_CLIENTS,
	LOAD_CHAIN,
	LOAD_RELAY,
	LOAD_FRESH,
	LOAD_IDLE,
	LOAD_KIND_COUNT
};
/* Their names for -t. */
extern const char *const load_kind_names[LOAD_KIND_COUNT];

struct bench_config {
	uint64_t warmup_ns, duration_ns, block_ns;
	unsigned rounds;
	unsigned load_kinds;      /* --load: bit (1 << enum load_kind) per scenario run */
	bool quick, json, progress;
	const char *dir;          /* private temporary directory for sockets */
	/* The environment without the preload, with it, and with it for
	 * the connect cycle with a segment at every cycle: TSSX_SHORT_CALLS=0
	 * (by default a client's short connections to one server soon go
	 * plain, which the CONNECT_DEFAULT row measures). */
	char **env[3];
	const char *library;      /* libtssx.so, NULL when TSSX is unavailable */
	const char *registry;
	char tssx_missing[256];   /* why TSSX is unavailable, one line */
};

struct bench_run {
	const struct bench_config *config;
	struct bench_row *rows;
	size_t nrows;
	bool interrupted;
	long nproc;
	double load; /* 1-minute load average when the run started */
	char cpu[128];
	char kernel[128];
};

extern volatile sig_atomic_t bench_interrupted;

/* run.c: one run of a case; appends its samples to the cell. */
void bench_case_of(const struct bench_row *row, enum bench_column col, struct bench_case *c);
void bench_run_case(const struct bench_config *cfg, const struct bench_case *c,
		    uint64_t warmup_ns, uint64_t duration_ns, struct bench_cell *cell);
char **bench_build_env(const char *library, const char *registry, const char *extra);
void bench_free_env(char **env);
/* Where each thread of a role that stopped answering waits (kernel
 * function, system call and its arguments, innermost kernel frame), on
 * stderr, before it is killed: a hang seen once in a long run then names
 * its state. */
void bench_describe_hung(pid_t pid, const char *role);

/* load.c: the --load table, and its role processes (--load-role). */
int load_main(const struct bench_config *cfg);
int load_role_main(int argc, char **argv);

/* report.c */
void bench_report_text(FILE *out, const struct bench_run *run);
void bench_report_json(FILE *out, const struct bench_run *run);
const char *bench_row_label(const struct bench_row *row, char *buf, size_t size);
/* A JSON number (null when not finite) and string (null for NULL). */
void bench_json_number(FILE *out, double v);
void bench_json_string(FILE *out, const char *s);

#endif
