/*
 * The hello: the first and only message a TSSX client sends on the real
 * socket before doorbells, with the segment's memfd in SCM_RIGHTS
 * (docs/design.md §2).  Both ends run on one host: native byte order.
 */
#ifndef TSSX_HELLO_H
#define TSSX_HELLO_H

#include <stddef.h>
#include <stdint.h>

#define TSSX_HELLO_MAGIC 0x58535354u /* "TSSX" */
/* 2: the lock words left the control blocks (side_lock.h).
 * 3: the control blocks share the header's page (segment.h).
 * 4: read_shut on the producer's line of the control block (ring.h).
 * 5: rings start in small areas on that page and grow (ring.h).
 * 6: the waiting flags say which bells to ring, futex words beside them
 *    (ring.h).
 * 7: the eventfd bell (TSSX_BELL_EVENTFD): the hello may carry two
 *    eventfds behind the memfd (bell_fds).
 * 8: each line of the control blocks alone in a pair of lines
 *    (TSSX_LINE_PAIR): the control blocks start at 128 and 384. */
#define TSSX_PROTOCOL_VERSION 8u

/* The eventfds a hello carries behind the memfd, in SCM_RIGHTS order:
 * the client's (the server writes it to wake the client's epoll sets),
 * then the server's (the client writes it).  A client that cannot make
 * them sends none (bell_fds 0): both ends then ring the socket. */
enum { TSSX_HELLO_CLIENT_BELL = 0, TSSX_HELLO_SERVER_BELL = 1, TSSX_HELLO_BELL_FDS = 2 };

enum { TSSX_C2S = 0, TSSX_S2C = 1 };

struct tssx_hello {
	uint32_t magic;
	uint16_t version;
	uint16_t length;           /* sizeof(struct tssx_hello) */
	uint64_t ring_capacity[2]; /* TSSX_C2S, TSSX_S2C */
	uint64_t segment_size;
	uint32_t bell_fds;         /* 0 or TSSX_HELLO_BELL_FDS */
	uint32_t reserved;         /* 0 */
};

/* A hello without eventfds (bell_fds 0): the caller sets it when it
 * sends them. */
void tssx_hello_init(struct tssx_hello *hello, uint64_t c2s_capacity, uint64_t s2c_capacity);

/*
 * Validates a received hello of `len` bytes into *out.  Returns 0, or
 * -EBADMSG (short or bad magic), -EPROTONOSUPPORT (version), -EINVAL (ring
 * capacities not powers of two within limits, segment size inconsistent,
 * bell_fds neither 0 nor TSSX_HELLO_BELL_FDS, reserved not 0).
 * *why, if given, receives a short reason for the log line.
 */
int tssx_hello_parse(const void *buf, size_t len, struct tssx_hello *out, const char **why);

#endif
