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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hello.h"
#include "ring.h"

#define TSSX_SEGMENT_MAGIC 0x47455358u /* "XSEG" */

struct tssx_segment_header {
	uint32_t magic;
	uint32_t version;
	uint64_t ring_capacity[2];
	/* TSSX_SEGMENT_RELEASED once the server's last user of the
	 * connection is done with the segment (tssx_segment_release): the
	 * client may then recycle it for its next connection to that server
	 * (docs/data-path.md, "Segments recycled").  0 while in use.  Not
	 * compared by the server's checks; a server that never writes it
	 * (an older library) only keeps its clients from recycling. */
	uint32_t released;
};

#define TSSX_SEGMENT_RELEASED 0x534c4552u /* "RELS" */

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

/* Server: the checks of tssx_segment_attach() before the mapping (seals,
 * size), and the memfd's identity when they pass: 0 or their -errno. */
int tssx_segment_check(int memfd, const struct tssx_hello *hello, uint64_t *dev, uint64_t *ino);
/* Server: after tssx_segment_check() passed, maps memfd, or takes base,
 * this process's idle mapping of the same memfd (same device and inode,
 * so the same pages; its size fixed by the seals), then checks the header
 * as tssx_segment_attach() does.  On a failure a mapping it made is
 * unmapped, base is left as it was: 0 or -errno. */
int tssx_segment_attach_checked(struct tssx_segment *seg, int memfd, const struct tssx_hello *hello, void *base);

/* Client: makes a recycled segment new, as tssx_segment_create() made it:
 * the first page (header, control blocks, small areas: everything the
 * peer could have written there) zeroed and written again, the data
 * areas given back (MADV_REMOVE) when either ring's grown word says it
 * grew (the pool keeps only segments that did not, but the word is the
 * peer's to write), the rings attached, the hello.  The capacities are the segment's own (the same
 * as at its creation).  0 or -errno (then the segment is not to be used). */
int tssx_segment_renew(struct tssx_segment *seg, uint64_t c2s_capacity, uint64_t s2c_capacity,
		       struct tssx_hello *hello);

/* Server: done with the segment for good (its rings are not touched
 * again by this process): release-stores TSSX_SEGMENT_RELEASED. */
void tssx_segment_release(struct tssx_segment *seg);
/* Client: whether the server released the segment (acquire). */
bool tssx_segment_released(const struct tssx_segment *seg);

/* Unmaps (if mapped) and zeroes *seg. */
void tssx_segment_detach(struct tssx_segment *seg);

#endif
