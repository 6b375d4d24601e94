/*
 * libFuzzer target: the ring's checks of what the peer writes.  The input
 * is a program: each step either scribbles a control word as a hostile
 * peer would (counters, flags, shut, counts of records, the growth
 * point) or makes one call
 * of this side (write, read, peek, readable, writable, arm, wake-up).
 * Every call must return a length within its request and the capacity,
 * -EPROTO, or TSSX_RING_MARKED from a read that stops before records, and
 * never touch memory outside the ring (ASan watches the data buffer and
 * the small area, each allocated to its exact size).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "tssx/log.h"
#include "tssx/ring_fast.h"

#define CAP 4096u

struct input {
	const uint8_t *data;
	size_t left;
};

static uint64_t take(struct input *in, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes && in->left; i++, in->left--)
		v = v << 8 | *in->data++;
	return v;
}

static void check(ssize_t n, size_t want)
{
	if (n == -EPROTO || n == TSSX_RING_MARKED)
		return;
	if (n < 0 || (size_t)n > want || (size_t)n > CAP)
		abort();
}

/* Up to three iovec pieces over buf, sized by the input. */
static int pieces(struct input *in, uint8_t *buf, size_t len, struct iovec iov[3])
{
	int n = (int)(take(in, 1) % 3) + 1;
	size_t at = 0;

	for (int i = 0; i < n; i++) {
		size_t piece = i == n - 1 ? len - at : (size_t)take(in, 2) % (len - at + 1);

		iov[i] = (struct iovec){ buf + at, piece };
		at += piece;
	}
	return n;
}

static void transfer(struct input *in, struct tssx_ring *ring, bool write, bool peek)
{
	static uint8_t buf[2 * CAP];
	size_t len = (size_t)take(in, 2) % sizeof(buf);
	struct iovec iov[3];
	int n = pieces(in, buf, len, iov);

	/* The data path's common case (tssx/ring_fast.h), one buffer; a
	 * small message's. */
	uint8_t how = take(in, 1);

	if (how % 8 == 0)
		check(tssx_ring_move_fast(ring, write, buf, len), len);
	else if (how % 8 == 1)
		check(tssx_ring_move_small(ring, write, buf, len % (TSSX_COPY_INLINE_MAX + 1)),
		      len % (TSSX_COPY_INLINE_MAX + 1));
	else if (write)
		check(take(in, 1) & 1 ? tssx_ring_write_whole(ring, iov, n, (size_t)take(in, 2))
				      : tssx_ring_write(ring, iov, n), len);
	else if (peek && take(in, 1) & 1)
		check(tssx_ring_peek_at(ring, take(in, 8), iov, n), len);
	else if (take(in, 1) & 1)
		check(tssx_ring_read_unmarked(ring, iov, n, peek), len);
	else
		check(tssx_ring_read(ring, iov, n, peek), len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tssx_ring_ctl ctl;
	uint8_t *ring_data = malloc(CAP), *small = malloc(TSSX_RING_SMALL_CAPACITY);
	struct tssx_ring producer, consumer;
	struct input in = { data, size };
	_Atomic uint32_t *words[] = { &ctl.writer_waiting, &ctl.write_shut, &ctl.read_shut,
				      &ctl.ancillary_sent, &ctl.ancillary_taken };

	tssx_log_level = TSSX_LOG_NONE;
	tssx_ring_ctl_init(&ctl);
	tssx_ring_attach(&producer, &ctl, small, ring_data, CAP);
	tssx_ring_attach(&consumer, &ctl, small, ring_data, CAP);
	while (in.left) {
		switch (take(&in, 1) % 12) {
		case 0: /* the peer moves or corrupts a counter */
			atomic_store(&ctl.tail, take(&in, 8));
			break;
		case 1:
			atomic_store(&ctl.head, take(&in, 8));
			break;
		case 2: /* small steps, the racing kind */
			atomic_fetch_add(&ctl.tail, take(&in, 2));
			break;
		case 3:
			atomic_fetch_add(&ctl.head, take(&in, 2));
			break;
		case 4: /* flags, shut words and counts of records, or the growth point */
			if (take(&in, 1) % 4 == 3) {
				atomic_store(&ctl.grown, take(&in, 8));
				break;
			}
			atomic_store(words[take(&in, 1) % ARRAY_SIZE(words)], (uint32_t)take(&in, 4));
			break;
		case 5:
			transfer(&in, &producer, true, false);
			break;
		case 6:
			transfer(&in, &consumer, false, false);
			break;
		case 7:
			transfer(&in, &consumer, false, true);
			break;
		case 8:
			check(tssx_ring_readable(&consumer), CAP);
			check(tssx_ring_writable(&producer), CAP);
			break;
		case 9:
			check(tssx_ring_arm_reader(&consumer, TSSX_BELL_FUTEX), CAP);
			check(tssx_ring_arm_writer(&producer, TSSX_BELL_SOCKET), CAP);
			break;
		case 10:
			(void)tssx_ring_take_reader_wakeup(&producer);
			(void)tssx_ring_take_writer_wakeup(&consumer);
			break;
		default: /* a sibling's stale view: a fresh attach */
			tssx_ring_attach(&consumer, &ctl, small, ring_data, CAP);
			break;
		}
	}
	free(ring_data);
	free(small);
	return 0;
}
