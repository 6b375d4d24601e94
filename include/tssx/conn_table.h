/*
 * The connection table: what `tssx connections` reads out of a process
 * (docs/deploy.md, "Live connections").
 *
 * Every process that makes or takes a Unix stream connection with the
 * library loaded keeps one table in a private mapping of a memfd named
 * TSSX_CONN_TABLE_NAME: /proc/PID/maps shows it as
 * "/memfd:tssx-connections (deleted)", and the tool reads it through
 * /proc/PID/mem (root, or the process's owner).  MAP_PRIVATE: a fork()ed
 * child gets its own copy of the slots of the connections it inherits.
 *
 * The table is written only when a connection is set up, fails or closes;
 * the data path writes nothing here.  A TSSX slot holds the address, in
 * the process, of the connection's counters (struct tssx_conn_counters,
 * which the data path already keeps): the tool reads them from there.
 * A slot's generation is odd while it is being written; a reader that saw
 * an odd or changed generation around its reads drops what it read.
 */
#ifndef TSSX_CONN_TABLE_H
#define TSSX_CONN_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TSSX_CONN_TABLE_NAME "tssx-connections"
#define TSSX_CONN_TABLE_MAGIC 0x4e4e4f43u /* "CONN" */
#define TSSX_CONN_TABLE_VERSION 1u
/* Slots for TSSX connections (more: not listed, counted in `overflow`)
 * and, after them, a ring of the latest plain fallbacks. */
#define TSSX_CONN_TABLE_SLOTS 1024u
#define TSSX_CONN_TABLE_PLAIN_SLOTS 64u

/* Bytes a connection moved, as this process counts them. */
struct tssx_conn_counters {
	_Atomic uint64_t ring_sent, ring_received;
	_Atomic uint64_t sock_sent, sock_received; /* the hello and doorbells */
};

enum tssx_conn_slot_state {
	TSSX_SLOT_FREE = 0,
	TSSX_SLOT_TSSX,   /* through shared memory */
	TSSX_SLOT_FAILED, /* was, then failed: every call fails with `error` */
	TSSX_SLOT_PLAIN,  /* a candidate that stayed on a plain socket: `reason` */
};

/* Why a Unix stream connection of a process with the library is plain. */
enum tssx_plain_reason {
	TSSX_PLAIN_NOT_SELECTED = 1, /* TSSX_INCLUDE / TSSX_EXCLUDE */
	TSSX_PLAIN_NO_REGISTRY,      /* the registry lookup failed: `error` */
	TSSX_PLAIN_SERVER_PLAIN,     /* no TSSX-aware server listens there */
	TSSX_PLAIN_BOUND,            /* the application bound the client socket */
	TSSX_PLAIN_SETUP_FAILED,     /* segment or client name: `error` */
	TSSX_PLAIN_CLIENT_PLAIN,     /* (server side) the client is not TSSX-aware */
	TSSX_PLAIN_STDIO,            /* a stdio stream of the program was on the client socket */
};

#define TSSX_CONN_PATH_MAX 112 /* sun_path, "@name" for an abstract socket */
#define TSSX_CONN_NAME_MAX 48

struct tssx_conn_slot {
	_Atomic uint32_t generation;
	uint32_t state;  /* enum tssx_conn_slot_state */
	int32_t fd;      /* one fd of the process for it, when it was set up */
	int32_t peer_pid; /* SO_PEERCRED at set-up, 0 if unknown */
	uint32_t server; /* 1: the accepting end */
	uint32_t reason; /* PLAIN: enum tssx_plain_reason */
	int32_t error;   /* errno behind FAILED, NO_REGISTRY, SETUP_FAILED */
	uint32_t hello_bytes; /* of the socket bytes, the hello's */
	uint64_t socket_ino;  /* the socket's inode, as in /proc/PID/fd */
	uint64_t counters;    /* TSSX, FAILED: address of the counters */
	char path[TSSX_CONN_PATH_MAX];   /* the server's socket */
	char client[TSSX_CONN_NAME_MAX]; /* TSSX: the client's bound name, both ends */
};

struct tssx_conn_table {
	uint32_t magic, version;
	uint32_t slot_size, slots, plain_slots;
	_Atomic uint32_t used;       /* TSSX slots ever used: the rest is zero */
	_Atomic uint32_t overflow;   /* TSSX connections without a slot */
	_Atomic uint32_t next_plain; /* plain records written so far */
	struct tssx_conn_slot slot[]; /* slots, then plain_slots */
};

#define TSSX_CONN_TABLE_SIZE \
	(sizeof(struct tssx_conn_table) + \
	 (TSSX_CONN_TABLE_SLOTS + TSSX_CONN_TABLE_PLAIN_SLOTS) * sizeof(struct tssx_conn_slot))

_Static_assert(sizeof(struct tssx_conn_slot) == 208, "the tool reads this layout");
_Static_assert(sizeof(struct tssx_conn_counters) == 32, "the tool reads this layout");

#endif
