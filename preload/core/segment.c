/*
 * The shared segment of one connection (docs/design.md §3, docs/data-path.md).
 *
 * This file runs inside the preload library, which interposes close(),
 * read() and write(): it never calls them.  The memfd always goes back to
 * the caller, who closes it (through the real close) once it is mapped or
 * when anything failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tssx/log.h"
#include "tssx/segment.h"

#define REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/*
 * Byte offsets of the parts.  The header, both control blocks and both
 * small areas share the first page, each on cache lines of its own, and
 * each ring's full data area starts on a page: a connection whose rings
 * stay small touches one page (three before the small areas, five before
 * the shared first page).  Every page costs both ends at connect
 * (allocating, zeroing and mapping it) and at close (freeing it), and
 * stays resident while the connection is idle.
 */
struct layout {
	size_t ctl[2];
	size_t data[2];
	size_t size;
};

_Static_assert(TSSX_SEGMENT_CTL_OFFSET(2) <= TSSX_SEGMENT_SMALL_OFFSET(0),
	       "the small areas must follow the control blocks");
_Static_assert(TSSX_SEGMENT_SMALL_OFFSET(2) <= 4096,
	       "header, control blocks and small areas must fit the smallest page");

static size_t page_align(size_t n)
{
	/* getpagesize(): sysconf() took about 80 instructions, nine times
	 * per connect (docs/benchmark.md, "The connect cycle in counts"). */
	size_t page = (size_t)getpagesize();

	return (n + page - 1) & ~(page - 1);
}

static struct layout layout_of(uint64_t c2s_capacity, uint64_t s2c_capacity)
{
	struct layout l;

	l.ctl[TSSX_C2S] = TSSX_SEGMENT_CTL_OFFSET(TSSX_C2S);
	l.ctl[TSSX_S2C] = TSSX_SEGMENT_CTL_OFFSET(TSSX_S2C);
	l.data[TSSX_C2S] = page_align(TSSX_SEGMENT_CTL_OFFSET(2));
	l.data[TSSX_S2C] = l.data[TSSX_C2S] + page_align(c2s_capacity);
	l.size = l.data[TSSX_S2C] + page_align(s2c_capacity);
	return l;
}

size_t tssx_segment_size(uint64_t c2s_capacity, uint64_t s2c_capacity)
{
	return layout_of(c2s_capacity, s2c_capacity).size;
}

static int map_segment(struct tssx_segment *seg, int memfd, size_t size)
{
	/* No MAP_POPULATE: a connection that moves little touches few pages. */
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	if (base == MAP_FAILED)
		return log_error(-errno, "mmap of a %zu-byte segment: %m", size);
	seg->base = base;
	seg->size = size;
	return 0;
}

/* The rings' capacities come from the caller's validated values, never
 * from the header in shared memory. */
static void attach_rings(struct tssx_segment *seg, const uint64_t capacity[2])
{
	struct layout l = layout_of(capacity[TSSX_C2S], capacity[TSSX_S2C]);
	uint8_t *base = seg->base;

	for (int dir = TSSX_C2S; dir <= TSSX_S2C; dir++)
		tssx_ring_attach(&seg->ring[dir], (struct tssx_ring_ctl *)(base + l.ctl[dir]),
				 base + TSSX_SEGMENT_SMALL_OFFSET(dir), base + l.data[dir], capacity[dir]);
}

static void write_first_page(struct tssx_segment *seg, uint64_t c2s_capacity, uint64_t s2c_capacity,
			     struct tssx_hello *hello);

int tssx_segment_create(struct tssx_segment *seg, uint64_t c2s_capacity,
			uint64_t s2c_capacity, int *memfd, struct tssx_hello *hello)
{
	size_t size = tssx_segment_size(c2s_capacity, s2c_capacity);
	int r;

	*memfd = -1;
	if (!tssx_ring_capacity_valid(c2s_capacity) || !tssx_ring_capacity_valid(s2c_capacity))
		return log_error(-EINVAL, "ring capacities %llu/%llu: not powers of two within limits",
				 (unsigned long long)c2s_capacity, (unsigned long long)s2c_capacity);
	*memfd = memfd_create("tssx", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (*memfd < 0)
		return log_error(-errno, "memfd_create: %m");
	if (ftruncate(*memfd, (off_t)size) < 0)
		return log_error(-errno, "sizing the segment to %zu bytes: %m", size);
	if (fcntl(*memfd, F_ADD_SEALS, REQUIRED_SEALS | F_SEAL_SEAL) < 0)
		return log_error(-errno, "sealing the segment: %m");
	r = map_segment(seg, *memfd, size);
	if (r < 0)
		return r;

	write_first_page(seg, c2s_capacity, s2c_capacity, hello);
	return 0;
}

/* The header, the control blocks and the hello of a segment the peer does
 * not use (new, or recycled and zeroed). */
static void write_first_page(struct tssx_segment *seg, uint64_t c2s_capacity, uint64_t s2c_capacity,
			     struct tssx_hello *hello)
{
	struct tssx_segment_header *header = seg->base;
	const uint64_t capacity[2] = { c2s_capacity, s2c_capacity };

	header->magic = TSSX_SEGMENT_MAGIC;
	header->version = TSSX_PROTOCOL_VERSION;
	header->ring_capacity[TSSX_C2S] = c2s_capacity;
	header->ring_capacity[TSSX_S2C] = s2c_capacity;
	__atomic_store_n(&header->released, 0, __ATOMIC_RELAXED);
	/* From the local values, never from the header the peer can write. */
	attach_rings(seg, capacity);
	tssx_ring_ctl_init(seg->ring[TSSX_C2S].ctl);
	tssx_ring_ctl_init(seg->ring[TSSX_S2C].ctl);
	tssx_hello_init(hello, c2s_capacity, s2c_capacity);
}

int tssx_segment_renew(struct tssx_segment *seg, uint64_t c2s_capacity, uint64_t s2c_capacity,
		       struct tssx_hello *hello)
{
	struct layout l = layout_of(c2s_capacity, s2c_capacity);
	const struct tssx_ring_ctl *ctl[2] = { (const void *)((uint8_t *)seg->base + l.ctl[TSSX_C2S]),
					       (const void *)((uint8_t *)seg->base + l.ctl[TSSX_S2C]) };

	if (!seg->base || seg->size != l.size)
		return -EINVAL;
	/* Either ring grew (by its grown word, which the peer may have
	 * written: a wrong value costs a call or keeps the pages it
	 * touched, never more than the segment): its data area's pages go
	 * back, as a new segment has none. */
	if ((atomic_load_explicit(&ctl[TSSX_C2S]->grown, memory_order_relaxed) ||
	     atomic_load_explicit(&ctl[TSSX_S2C]->grown, memory_order_relaxed)) &&
	    madvise((uint8_t *)seg->base + l.data[TSSX_C2S], l.size - l.data[TSSX_C2S], MADV_REMOVE) < 0)
		return log_error(-errno, "giving back a recycled segment's data areas: %m");
	memset(seg->base, 0, l.data[TSSX_C2S]);
	write_first_page(seg, c2s_capacity, s2c_capacity, hello);
	return 0;
}

void tssx_segment_release(struct tssx_segment *seg)
{
	struct tssx_segment_header *header = seg->base;

	__atomic_store_n(&header->released, TSSX_SEGMENT_RELEASED, __ATOMIC_RELEASE);
}

bool tssx_segment_released(const struct tssx_segment *seg)
{
	const struct tssx_segment_header *header = seg->base;

	return __atomic_load_n(&header->released, __ATOMIC_ACQUIRE) == TSSX_SEGMENT_RELEASED;
}

int tssx_segment_check(int memfd, const struct tssx_hello *hello, uint64_t *dev, uint64_t *ino)
{
	int seals = fcntl(memfd, F_GET_SEALS);
	struct stat st;

	if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS)
		return log_error(-EPERM, "peer's segment is not sealed against shrinking and growing");
	if (fstat(memfd, &st) < 0)
		return log_error(-errno, "fstat of the peer's segment: %m");
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != hello->segment_size)
		return log_error(-EINVAL, "peer's segment has %lld bytes, its hello says %llu",
				 (long long)st.st_size, (unsigned long long)hello->segment_size);
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

/* The header, copied once: the peer may change it while we compare. */
static bool header_matches(const struct tssx_segment *seg, const struct tssx_hello *hello)
{
	struct tssx_segment_header header;

	memcpy(&header, seg->base, sizeof(header));
	return header.magic == TSSX_SEGMENT_MAGIC && header.version == TSSX_PROTOCOL_VERSION &&
	       header.ring_capacity[TSSX_C2S] == hello->ring_capacity[TSSX_C2S] &&
	       header.ring_capacity[TSSX_S2C] == hello->ring_capacity[TSSX_S2C];
}

int tssx_segment_attach_checked(struct tssx_segment *seg, int memfd, const struct tssx_hello *hello, void *base)
{
	if (base) {
		seg->base = base;
		seg->size = hello->segment_size;
	} else {
		int r = map_segment(seg, memfd, hello->segment_size);

		if (r < 0)
			return r;
	}
	if (!header_matches(seg, hello)) {
		if (base)
			memset(seg, 0, sizeof(*seg));
		else
			tssx_segment_detach(seg);
		return log_error(-EINVAL, "peer's segment header disagrees with its hello");
	}
	attach_rings(seg, hello->ring_capacity);
	return 0;
}

int tssx_segment_attach(struct tssx_segment *seg, int memfd, const struct tssx_hello *hello)
{
	uint64_t dev, ino;
	int r = tssx_segment_check(memfd, hello, &dev, &ino);

	return r < 0 ? r : tssx_segment_attach_checked(seg, memfd, hello, NULL);
}

void tssx_segment_detach(struct tssx_segment *seg)
{
	if (seg->base)
		munmap(seg->base, seg->size);
	memset(seg, 0, sizeof(*seg));
}
