/* The hello a TSSX client sends with its memfd, and its validation. */
#include <errno.h>
#include <string.h>

#include "tssx/hello.h"
#include "tssx/segment.h"

void tssx_hello_init(struct tssx_hello *hello, uint64_t c2s_capacity, uint64_t s2c_capacity)
{
	memset(hello, 0, sizeof(*hello));
	hello->magic = TSSX_HELLO_MAGIC;
	hello->version = TSSX_PROTOCOL_VERSION;
	hello->length = sizeof(*hello);
	hello->ring_capacity[TSSX_C2S] = c2s_capacity;
	hello->ring_capacity[TSSX_S2C] = s2c_capacity;
	hello->segment_size = tssx_segment_size(c2s_capacity, s2c_capacity);
}

static int reject(int err, const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return err;
}

int tssx_hello_parse(const void *buf, size_t len, struct tssx_hello *out, const char **why)
{
	struct tssx_hello hello = { 0 };

	/* Magic and version first: another version's hello may be of
	 * another length, and is refused for its version. */
	memcpy(&hello, buf, len < sizeof(hello) ? len : sizeof(hello));
	if (len < offsetof(struct tssx_hello, length))
		return reject(-EBADMSG, why, "short hello");
	if (hello.magic != TSSX_HELLO_MAGIC)
		return reject(-EBADMSG, why, "bad magic");
	if (hello.version != TSSX_PROTOCOL_VERSION)
		return reject(-EPROTONOSUPPORT, why, "unsupported protocol version");
	if (len < sizeof(hello))
		return reject(-EBADMSG, why, "short hello");
	if (hello.length != sizeof(hello))
		return reject(-EBADMSG, why, "wrong hello length");
	if (!tssx_ring_capacity_valid(hello.ring_capacity[TSSX_C2S]) ||
	    !tssx_ring_capacity_valid(hello.ring_capacity[TSSX_S2C]))
		return reject(-EINVAL, why, "ring capacity not a power of two within limits");
	if (hello.segment_size != tssx_segment_size(hello.ring_capacity[TSSX_C2S],
						    hello.ring_capacity[TSSX_S2C]))
		return reject(-EINVAL, why, "segment size does not match the ring capacities");
	if ((hello.bell_fds != 0 && hello.bell_fds != TSSX_HELLO_BELL_FDS) || hello.reserved != 0)
		return reject(-EINVAL, why, "bad count of eventfds");
	*out = hello;
	return 0;
}
