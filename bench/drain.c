/*
 * The draining reader (TEST_DRAIN): the server writes small messages as fast
 * as it can, one write(2) each, and the client reads up to DRAIN_BYTES per
 * read(2), as a buffered reader (stdio, a protocol parser) does.  The raw
 * column runs the same pattern on its bare ring (raw.c): one publish per
 * message, the reader takes whatever is there, up to DRAIN_BYTES at a time.
 */
#include <errno.h>
#include <unistd.h>

#include "bench.h"

struct drain_client {
	int fd;
	uint8_t buf[DRAIN_BYTES];
};

/* One operation: DRAIN_BYTES bytes, in as many reads as the writer's pace
 * takes, each asking for all that is still missing. */
static int drain_once(void *ctx)
{
	struct drain_client *c = ctx;
	size_t got = 0;

	while (got < DRAIN_BYTES) {
		ssize_t n = read(c->fd, c->buf + got, DRAIN_BYTES - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int drain_socket_op(int fd, struct bench_op *op)
{
	static struct drain_client client;

	client.fd = fd;
	op->ctx = &client;
	op->run = drain_once;
	return 0;
}

void drain_per_message(const struct role_args *args, double *samples, uint32_t count)
{
	double messages = (double)DRAIN_BYTES / (double)args->size;

	for (uint32_t i = 0; i < count; i++)
		samples[i] /= messages;
}
