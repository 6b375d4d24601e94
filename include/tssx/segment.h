/*
 * The shared segment of one connection: a header and two rings, in a sealed
 * memfd created by the client (docs/design.md §3).
 *
 *   [header|ctl c2s|ctl s2c|small c2s|small s2c][data c2s][data s2c]
 *
 * The header, the two control blocks and both rings' small areas share the
 * first page, on cache lines of their own; each ring's full data area
 * starts on a page.  A connection whose rings never grow touches one page.
 *
 * The server maps it only after checking the memfd's seals (shrink and grow
 * sealed) and size against the validated hello.
 */
#ifndef TSSX_SEGMENT_H
#define TSSX_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "hello.h"
#include "ring.h"

#define TSSX_SEGMENT_MAGIC 0x47455358u /* "XSEG" */

struct tssx_segment_header {
	uint32_t magic;
	uint32_t version;
	uint64_t ring_capacity[2];
};

/* Where direction dir's control block starts: after the header, both on
 * the first page, each line alone in its pair of lines (ring.h). */
#define TSSX_SEGMENT_HEADER_SPAN \
	((sizeof(struct tssx_segment_header) + TSSX_LINE_PAIR - 1) & ~(size_t)(TSSX_LINE_PAIR - 1))
#define TSSX_SEGMENT_CTL_OFFSET(dir) (TSSX_SEGMENT_HEADER_SPAN + (size_t)(dir) * sizeof(struct tssx_ring_ctl))
/* Where direction dir's small area starts (ring.h): in the second half of
 * the first page, after the control blocks. */
#define TSSX_SEGMENT_SMALL_OFFSET(dir) (2048 + (size_t)(dir) * TSSX_RING_SMALL_CAPACITY)

struct tssx_segment {
	void *base;
	size_t size;
	struct tssx_ring ring[2]; /* TSSX_C2S, TSSX_S2C */
};

/* Bytes needed for two rings of these capacities. */
size_t tssx_segment_size(uint64_t c2s_capacity, uint64_t s2c_capacity);

/* Client: create, size, seal and map a memfd; fills *seg and *memfd and the
 * hello to send.  Returns 0 or -errno.  *memfd is -1 or an open memfd on
 * return, also on failure: the caller closes it (with the real close(),
 * this file never calls close()), after sending it with the hello. */
int tssx_segment_create(struct tssx_segment *seg, uint64_t c2s_capacity,
			uint64_t s2c_capacity, int *memfd, struct tssx_hello *hello);

/* Server: check seals and size of memfd against the hello (validated by
 * tssx_hello_parse()), then map.  Returns 0, or -EPERM (not sealed against
 * shrink/grow, or not a memfd), -EINVAL (wrong size, header disagrees with
 * the hello), -errno from mmap.  The memfd stays open either way: the
 * caller closes it; the mapping does not need it. */
int tssx_segment_attach(struct tssx_segment *seg, int memfd, const struct tssx_hello *hello);

/* Unmaps (if mapped) and zeroes *seg. */
void tssx_segment_detach(struct tssx_segment *seg);

#endif
