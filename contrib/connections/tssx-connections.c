/*
 * tssx-connections: every Unix stream connection of the processes running
 * with libtssx.so, as `tssx connections` shows them (tssx(1),
 * docs/deploy.md "Live connections").
 *
 * Each such process keeps a table in a private memfd mapping named
 * TSSX_CONN_TABLE_NAME (include/tssx/conn_table.h).  This program finds it
 * in /proc/PID/maps, copies it through /proc/PID/mem (root, or the
 * process's owner) and, for each TSSX connection, the counters the slot
 * points to.  A slot whose generation was odd or changed while it was read
 * is skipped; a slot whose socket the process no longer holds (a plain
 * fallback record, a connection closed around the library) too.
 *
 * The table is written by another process, maybe a hostile one: every
 * field is checked before use, strings are bounded, and nothing read is
 * trusted beyond what is printed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "config.h"
#include "tssx/conn_table.h"
#include "tssx/macros.h"

#define MAPS_NAME "/memfd:" TSSX_CONN_TABLE_NAME " (deleted)"

struct row {
	pid_t pid;
	char comm[32];
	char peer[48]; /* "PID/PROGRAM" or "-" */
	struct tssx_conn_slot slot;
	uint64_t counters[4]; /* ring sent, received, socket sent, received */
};

static struct row *rows;
static size_t nrows, rows_cap;

static void die(const char *what)
{
	fprintf(stderr, "tssx-connections: %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct row *new_row(void)
{
	if (nrows == rows_cap) {
		rows_cap = rows_cap ? 2 * rows_cap : 64;
		rows = realloc(rows, rows_cap * sizeof(*rows));
		if (!rows)
			die("realloc");
	}
	return memset(&rows[nrows++], 0, sizeof(*rows));
}

/* The first line of /proc/PID/comm, or "?". */
static void read_comm(pid_t pid, char *out, size_t size)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	snprintf(out, size, "?");
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(out, (int)size, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* Where the table is mapped in pid, or 0. */
static uint64_t find_table(pid_t pid)
{
	char path[64], line[512];
	uint64_t start = 0, found = 0;
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	if (!maps)
		return 0;
	while (!found && fgets(line, sizeof(line), maps)) {
		char *name = strchr(line, '/');

		line[strcspn(line, "\n")] = '\0';
		if (name && strcmp(name, MAPS_NAME) == 0 && sscanf(line, "%" SCNx64 "-", &start) == 1)
			found = start;
	}
	fclose(maps);
	return found;
}

/* Inodes of the sockets pid holds (sorted), for checking slots. */
static size_t socket_inodes(pid_t pid, uint64_t **out)
{
	char path[64], link[64];
	size_t n = 0, cap = 0;
	uint64_t *inodes = NULL, ino;
	struct dirent *e;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	while (dir && (e = readdir(dir))) {
		char fd_path[384];
		ssize_t len;

		snprintf(fd_path, sizeof(fd_path), "%s/%s", path, e->d_name);
		len = readlink(fd_path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%" SCNu64 "]", &ino) != 1)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			inodes = realloc(inodes, cap * sizeof(*inodes));
			if (!inodes)
				die("realloc");
		}
		inodes[n++] = ino;
	}
	if (dir)
		closedir(dir);
	*out = inodes;
	return n;
}

static bool holds_socket(const uint64_t *inodes, size_t n, uint64_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (inodes[i] == ino)
			return true;
	return false;
}

static bool read_at(int mem, void *buf, size_t len, uint64_t addr)
{
	return addr <= (uint64_t)LLONG_MAX && pread(mem, buf, len, (off_t)addr) == (ssize_t)len;
}

/* A string from the other process: bounded, control bytes as '?'. */
static void sanitize(char *text, size_t size)
{
	text[size - 1] = '\0';
	for (char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

/* Adds a row for one slot that holds a live connection of pid. */
static void take_slot(int mem, pid_t pid, const char *comm, uint64_t slot_addr,
		      const struct tssx_conn_slot *slot, const uint64_t *inodes, size_t ninodes)
{
	struct row *row;
	uint32_t generation = atomic_load(&slot->generation), again;
	uint64_t counters[4] = { 0 };

	if (generation & 1 || slot->state == TSSX_SLOT_FREE || slot->state > TSSX_SLOT_PLAIN ||
	    !holds_socket(inodes, ninodes, slot->socket_ino))
		return;
	if (slot->state != TSSX_SLOT_PLAIN &&
	    (!slot->counters || !read_at(mem, counters, sizeof(counters), slot->counters)))
		return;
	/* The slot did not change while its counters were read. */
	if (!read_at(mem, &again, sizeof(again), slot_addr + offsetof(struct tssx_conn_slot, generation)) ||
	    again != generation)
		return;
	row = new_row();
	row->pid = pid;
	snprintf(row->comm, sizeof(row->comm), "%s", comm);
	row->slot = *slot;
	sanitize(row->slot.path, sizeof(row->slot.path));
	sanitize(row->slot.client, sizeof(row->slot.client));
	memcpy(row->counters, counters, sizeof(counters));
	if (slot->peer_pid > 0) {
		char peer_comm[32];

		read_comm(slot->peer_pid, peer_comm, sizeof(peer_comm));
		snprintf(row->peer, sizeof(row->peer), "%d/%s", slot->peer_pid, peer_comm);
	} else {
		snprintf(row->peer, sizeof(row->peer), "-");
	}
}

/* Reads pid's table, if it has one; false if it has one we cannot read. */
static bool read_process(pid_t pid)
{
	struct tssx_conn_table header;
	struct tssx_conn_slot *slots;
	uint64_t addr = find_table(pid), *inodes = NULL;
	size_t used, total, ninodes;
	char path[64], comm[32];
	int mem;

	if (!addr)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	if (mem < 0)
		return false;
	if (!read_at(mem, &header, sizeof(header), addr) || header.magic != TSSX_CONN_TABLE_MAGIC ||
	    header.version != TSSX_CONN_TABLE_VERSION || header.slot_size != sizeof(struct tssx_conn_slot) ||
	    header.slots > TSSX_CONN_TABLE_SLOTS || header.plain_slots > TSSX_CONN_TABLE_PLAIN_SLOTS) {
		close(mem);
		return true; /* gone, or another version of the library */
	}
	used = atomic_load(&header.used);
	if (used > header.slots)
		used = header.slots;
	total = header.slots + header.plain_slots;
	slots = calloc(total, sizeof(*slots));
	if (!slots)
		die("calloc");
	/* The used TSSX slots, then the plain records after all of them. */
	if (read_at(mem, slots, used * sizeof(*slots), addr + sizeof(header)) &&
	    read_at(mem, slots + header.slots, header.plain_slots * sizeof(*slots),
		    addr + sizeof(header) + header.slots * sizeof(*slots))) {
		read_comm(pid, comm, sizeof(comm));
		ninodes = socket_inodes(pid, &inodes);
		for (size_t i = 0; i < total; i++)
			if (i < used || i >= header.slots)
				take_slot(mem, pid, comm, addr + sizeof(header) + i * sizeof(*slots), &slots[i],
					  inodes, ninodes);
		if (atomic_load(&header.overflow))
			fprintf(stderr, "tssx-connections: %d/%s: %u connections beyond its table not listed\n",
				(int)pid, comm, atomic_load(&header.overflow));
	}
	free(inodes);
	free(slots);
	close(mem);
	return true;
}

/* Connections by socket path; the two ends of one next to each other,
 * client first. */
static int row_order(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c = strcmp(x->slot.path, y->slot.path);

	if (!c)
		c = strcmp(x->slot.client, y->slot.client);
	if (!c)
		c = (int)x->slot.server - (int)y->slot.server;
	return c ? c : x->pid - y->pid;
}

static const char *why(const struct tssx_conn_slot *slot, char *buf, size_t size)
{
	static const char *const reasons[] = {
		[TSSX_PLAIN_NOT_SELECTED] = "excluded by TSSX_INCLUDE/TSSX_EXCLUDE",
		[TSSX_PLAIN_NO_REGISTRY] = "no registry",
		[TSSX_PLAIN_SERVER_PLAIN] = "server not TSSX-aware",
		[TSSX_PLAIN_BOUND] = "client socket bound by the program",
		[TSSX_PLAIN_SETUP_FAILED] = "set-up failed",
		[TSSX_PLAIN_CLIENT_PLAIN] = "client not TSSX-aware",
		[TSSX_PLAIN_STDIO] = "a stdio stream was on the socket",
	};
	const char *reason;

	if (slot->state == TSSX_SLOT_TSSX)
		return "-";
	if (slot->state == TSSX_SLOT_FAILED)
		reason = "failed";
	else if (slot->reason < ARRAY_SIZE(reasons) && reasons[slot->reason])
		reason = reasons[slot->reason];
	else
		reason = "unknown";
	if (slot->error > 0 && slot->error < 4096)
		snprintf(buf, size, "%s: %s", reason, strerror(slot->error));
	else
		snprintf(buf, size, "%s", reason);
	return buf;
}

static void print_rows(void)
{
	static const char *const states[] = {
		[TSSX_SLOT_TSSX] = "tssx", [TSSX_SLOT_FAILED] = "failed", [TSSX_SLOT_PLAIN] = "plain",
	};

	printf("%-6s %-22s %-5s %-6s %-22s %-32s %12s %12s %9s %9s %9s %9s  %s\n", "STATE", "PROCESS", "FD",
	       "ROLE", "PEER", "SOCKET", "RING-SENT", "RING-RECV", "SOCK-SENT", "SOCK-RECV", "BELLS-OUT",
	       "BELLS-IN", "WHY");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		const struct tssx_conn_slot *s = &r->slot;
		char process[64], buf[128];

		snprintf(process, sizeof(process), "%d/%s", (int)r->pid, r->comm);
		printf("%-6s %-22s %-5d %-6s %-22s %-32s ", states[s->state], process, s->fd,
		       s->server ? "server" : "client", r->peer, s->path[0] ? s->path : "?");
		if (s->state == TSSX_SLOT_PLAIN) {
			printf("%12s %12s %9s %9s %9s %9s", "-", "-", "-", "-", "-", "-");
		} else {
			/* The socket carried the hello (the client's) and
			 * one-byte doorbells. */
			uint64_t hello_out = s->server ? 0 : s->hello_bytes, hello_in = s->server ? s->hello_bytes : 0;

			printf("%12" PRIu64 " %12" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64,
			       r->counters[0], r->counters[1], r->counters[2], r->counters[3],
			       r->counters[2] > hello_out ? r->counters[2] - hello_out : 0,
			       r->counters[3] > hello_in ? r->counters[3] - hello_in : 0);
		}
		printf("  %s\n", why(s, buf, sizeof(buf)));
	}
}

int main(int argc, char **argv)
{
	unsigned unreadable = 0;
	struct dirent *e;
	DIR *proc;

	if (argc > 1) {
		fprintf(stderr, "usage: tssx-connections (run by 'tssx connections', see tssx(1))\n");
		return 2;
	}
	proc = opendir("/proc");
	if (!proc)
		die("/proc");
	while ((e = readdir(proc))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		if (!read_process((pid_t)pid))
			unreadable++;
	}
	closedir(proc);
	qsort(rows, nrows, sizeof(*rows), row_order);
	print_rows();
	if (!nrows)
		printf("(no connection of a process running with TSSX)\n");
	if (unreadable)
		fprintf(stderr, "tssx-connections: %u processes with TSSX connections could not be read (%s)\n",
			unreadable, geteuid() ? "run as root to see all" : strerror(EACCES));
	if (geteuid() != 0)
		fprintf(stderr, "tssx-connections: only this user's processes are shown\n");
	free(rows);
	return 0;
}
