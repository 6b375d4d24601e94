/*
 * libFuzzer target: the hello a hostile client sends, and the segment it
 * points to.  Every input is a hello; one the parser accepts whose segment
 * is small gets a sealed memfd of that size, filled with the rest of the
 * input, attached and detached as the server would.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tssx/hello.h"
#include "tssx/log.h"
#include "tssx/segment.h"

#define ATTACH_MAX (1u << 20)

static void attach(const struct tssx_hello *hello, const uint8_t *rest, size_t len)
{
	struct tssx_segment seg = { 0 };
	int memfd = memfd_create("fuzz-hello", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (memfd < 0 || ftruncate(memfd, (off_t)hello->segment_size) < 0 ||
	    pwrite(memfd, rest, len < hello->segment_size ? len : hello->segment_size, 0) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		abort();
	if (tssx_segment_attach(&seg, memfd, hello) == 0) {
		/* Accepted: the header repeats the hello, rings inside the map. */
		for (int dir = TSSX_C2S; dir <= TSSX_S2C; dir++) {
			const struct tssx_ring *ring = &seg.ring[dir];

			if (ring->capacity != hello->ring_capacity[dir] ||
			    ring->data + ring->capacity > (uint8_t *)seg.base + seg.size ||
			    (uint8_t *)(ring->ctl + 1) > (uint8_t *)seg.base + seg.size)
				abort();
		}
		tssx_segment_detach(&seg);
	}
	close(memfd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tssx_hello hello;
	const char *why = NULL;

	tssx_log_level = TSSX_LOG_NONE;
	if (tssx_hello_parse(data, size, &hello, &why) != 0) {
		if (!why)
			abort(); /* every refusal has a reason for the log */
		return 0;
	}
	if (!tssx_ring_capacity_valid(hello.ring_capacity[TSSX_C2S]) ||
	    !tssx_ring_capacity_valid(hello.ring_capacity[TSSX_S2C]) ||
	    hello.segment_size != tssx_segment_size(hello.ring_capacity[TSSX_C2S], hello.ring_capacity[TSSX_S2C]))
		abort();
	if (hello.segment_size <= ATTACH_MAX)
		attach(&hello, data + sizeof(hello), size - sizeof(hello));
	return 0;
}
