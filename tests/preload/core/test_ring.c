/* Unit tests of the SPSC ring: contents, wrap, iovecs, hostile counters,
 * the wake-up handshake, the lock, the fast path, and streams between threads and
 * processes checked byte by byte. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tssx/log.h"
#include "tssx/ring_fast.h"
#include "tssx/segment.h"
#include "tssx/side_lock.h"

#define CAP TSSX_RING_MIN_CAPACITY

struct fixture {
	struct tssx_ring_ctl ctl; /* aligned as its lines are */
	uint8_t *small; /* each its own allocation: ASan catches any access past it */
	uint8_t *data;
	struct tssx_ring ring;
	uint8_t in[4 * CAP];
	uint8_t out[4 * CAP];
};

static int setup(void **state)
{
	/* test_calloc() does not honour the cache-line alignment. */
	struct fixture *f = aligned_alloc(alignof(struct fixture), sizeof(*f));

	assert_non_null(f);
	memset(f, 0, sizeof(*f));
	f->small = calloc(1, TSSX_RING_SMALL_CAPACITY);
	f->data = calloc(1, CAP);
	assert_non_null(f->small);
	assert_non_null(f->data);
	tssx_ring_ctl_init(&f->ctl);
	tssx_ring_attach(&f->ring, &f->ctl, f->small, f->data, CAP);
	for (size_t i = 0; i < sizeof(f->in); i++)
		f->in[i] = (uint8_t)(i * 7 + i / 251);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->small);
	free(f->data);
	free(f);
	tssx_log_level = TSSX_LOG_WARN;
	return 0;
}

static ssize_t put(struct fixture *f, size_t off, size_t len)
{
	struct iovec iov = { f->in + off, len };

	return tssx_ring_write(&f->ring, &iov, 1);
}

static ssize_t get(struct fixture *f, size_t len, bool peek)
{
	struct iovec iov = { f->out, len };

	return tssx_ring_read(&f->ring, &iov, 1, peek);
}

static void test_empty(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(tssx_ring_readable(&f->ring), 0);
	assert_int_equal(tssx_ring_writable(&f->ring), CAP);
	assert_int_equal(get(f, 10, false), 0);
	assert_int_equal(put(f, 0, 0), 0);
	assert_int_equal(get(f, 0, false), 0);
}

static void test_full_and_partial(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(put(f, 0, 100), 100);
	/* Only what fits goes in: a partial write. */
	assert_int_equal(put(f, 100, CAP), CAP - 100);
	assert_int_equal(tssx_ring_writable(&f->ring), 0);
	assert_int_equal(tssx_ring_readable(&f->ring), CAP);
	assert_int_equal(put(f, 0, 1), 0);
	assert_int_equal(get(f, 2 * CAP, false), CAP);
	assert_memory_equal(f->out, f->in, CAP);
	assert_int_equal(tssx_ring_readable(&f->ring), 0);
}

/* All or nothing down to `least`: what keeps several writers' bytes whole. */
static void test_write_whole(void **state)
{
	struct fixture *f = *state;
	struct iovec iov = { f->in, 300 };

	assert_int_equal(put(f, 0, CAP - 200), CAP - 200);
	assert_int_equal(tssx_ring_write_whole(&f->ring, &iov, 1, 300), 0);
	assert_int_equal(tssx_ring_readable(&f->ring), CAP - 200);
	/* Less demanding: what fits, once at least `least` does. */
	assert_int_equal(tssx_ring_write_whole(&f->ring, &iov, 1, 150), 200);
	assert_int_equal(get(f, 2 * CAP, false), CAP);
	assert_int_equal(tssx_ring_write_whole(&f->ring, &iov, 1, 300), 300);
	assert_int_equal(get(f, 2 * CAP, false), 300);
	assert_memory_equal(f->out, f->in, 300);
}

/* SO_PEEK_OFF's peek: from `skip` bytes into the data, nothing past it. */
static void test_peek_at(void **state)
{
	struct fixture *f = *state;
	struct iovec iov = { f->out, 100 };

	assert_int_equal(put(f, 0, 50), 50);
	assert_int_equal(tssx_ring_peek_at(&f->ring, 20, &iov, 1), 30);
	assert_memory_equal(f->out, f->in + 20, 30);
	assert_int_equal(tssx_ring_peek_at(&f->ring, 50, &iov, 1), 0);
	assert_int_equal(tssx_ring_peek_at(&f->ring, UINT64_MAX, &iov, 1), 0);
	assert_int_equal(tssx_ring_readable(&f->ring), 50);
}

static void test_wrap(void **state)
{
	struct fixture *f = *state;

	/* Move the counters near the end, then write across it, several laps. */
	for (size_t lap = 0; lap < 5; lap++) {
		assert_int_equal(put(f, 0, CAP - 10), CAP - 10);
		assert_int_equal(get(f, CAP - 10, false), CAP - 10);
		assert_int_equal(put(f, 3, CAP), CAP);
		assert_int_equal(get(f, CAP, false), CAP);
		assert_memory_equal(f->out, f->in + 3, CAP);
	}
	assert_int_equal(f->ctl.head, f->ctl.tail);
	assert_true(f->ctl.tail > 5 * CAP);
}

static void test_peek(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(put(f, 0, CAP - 1), CAP - 1);
	assert_int_equal(get(f, CAP - 5, false), CAP - 5);
	assert_int_equal(put(f, 50, 200), 200); /* wraps */
	assert_int_equal(get(f, 100, true), 100);
	assert_memory_equal(f->out, f->in + CAP - 5, 4);
	assert_memory_equal(f->out + 4, f->in + 50, 96);
	assert_int_equal(tssx_ring_readable(&f->ring), 204);
	assert_int_equal(get(f, 300, true), 204);
	assert_int_equal(get(f, 300, false), 204);
	assert_memory_equal(f->out + 4, f->in + 50, 200);
	assert_int_equal(tssx_ring_readable(&f->ring), 0);
}

static void test_iovec(void **state)
{
	struct fixture *f = *state;
	struct iovec wv[4] = {
		{ f->in, 1000 }, { NULL, 0 }, { f->in + 1000, 2000 }, { f->in + 3000, 3000 },
	};
	uint8_t a[10], b[2500], c[CAP];
	struct iovec rv[4] = { { a, sizeof(a) }, { NULL, 0 }, { b, sizeof(b) }, { c, sizeof(c) } };

	assert_int_equal(put(f, 0, 3000), 3000);
	assert_int_equal(get(f, 3000, false), 3000);
	/* Scatter across the wrap: stops inside the last element. */
	assert_int_equal(tssx_ring_write(&f->ring, wv, 4), CAP);
	assert_int_equal(tssx_ring_read(&f->ring, rv, 4, false), CAP);
	assert_memory_equal(a, f->in, sizeof(a));
	assert_memory_equal(b, f->in + sizeof(a), sizeof(b));
	assert_memory_equal(c, f->in + sizeof(a) + sizeof(b), CAP - sizeof(a) - sizeof(b));
	assert_int_equal(tssx_ring_write(&f->ring, wv, 0), 0);
}

/* Reads len bytes in reads of `step` and checks them against in + off. */
static void get_in_steps(struct fixture *f, size_t off, size_t len, size_t step)
{
	for (size_t done = 0; done < len; done += step) {
		size_t n = len - done < step ? len - done : step;

		assert_int_equal(get(f, n, false), n);
		assert_memory_equal(f->out, f->in + off + done, n);
	}
}

/* The ring starts in the small area and grows at the first write that
 * does not fit there; the bytes before the growth point are still read
 * from the small area, in reads that cross the point. */
static void test_growth(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(tssx_ring_writable(&f->ring), CAP);
	assert_int_equal(put(f, 0, 700), 700);
	assert_int_equal(f->ctl.grown, 0);
	assert_memory_equal(f->small, f->in, 700);
	assert_int_equal(put(f, 700, 700), 700);
	assert_int_equal(f->ctl.grown, 701);
	assert_memory_equal(f->data + 700, f->in + 700, 700);
	assert_int_equal(tssx_ring_readable(&f->ring), 1400);
	get_in_steps(f, 0, 1400, 300);
	/* Laps of the full area from there, across its wrap. */
	for (size_t lap = 0; lap < 3; lap++) {
		assert_int_equal(put(f, lap, CAP), CAP);
		get_in_steps(f, lap, CAP, 1000);
	}
	assert_int_equal(f->ctl.grown, 701);
}

/* Messages that fit the small area never grow the ring. */
static void test_stays_small(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < 100; i++) {
		assert_int_equal(put(f, i, TSSX_RING_SMALL_CAPACITY), TSSX_RING_SMALL_CAPACITY);
		get_in_steps(f, i, TSSX_RING_SMALL_CAPACITY, 100);
	}
	assert_int_equal(f->ctl.grown, 0);
}

/* A producer of another process (its own view, attached before the
 * growth) learns it from the segment and writes where the consumer reads. */
static void test_growth_learnt(void **state)
{
	struct fixture *f = *state;
	struct tssx_ring sibling;
	struct iovec iov = { f->in + 2000, 500 };

	tssx_ring_attach(&sibling, &f->ctl, f->small, f->data, CAP);
	assert_int_equal(put(f, 0, 2000), 2000);
	assert_int_equal(tssx_ring_write(&sibling, &iov, 1), 500);
	get_in_steps(f, 0, 2500, 700);
}

/* A growth point the peer made up: above the producer's tail, -EPROTO;
 * far above the consumer's head, garbage bytes at most, every copy inside
 * its area (each allocated to its exact size: ASan watches them). */
static void test_growth_corrupted(void **state)
{
	struct fixture *f = *state;
	struct tssx_ring producer;
	struct iovec iov = { f->in, 10 };

	tssx_log_level = TSSX_LOG_NONE;
	tssx_ring_attach(&producer, &f->ctl, f->small, f->data, CAP);
	assert_int_equal(put(f, 0, 100), 100);
	f->ctl.grown = 1 + 5000;
	f->ctl.tail = 3000;
	/* More than the consumer already saw: it loads the counters again. */
	assert_int_equal(get(f, 2 * CAP, false), 3000);
	assert_int_equal(tssx_ring_write(&producer, &iov, 1), -EPROTO);
}

/* Every way a peer can corrupt the counters: every call says -EPROTO. */
static void assert_all_eproto(struct fixture *f)
{
	assert_int_equal(tssx_ring_readable(&f->ring), -EPROTO);
	assert_int_equal(tssx_ring_writable(&f->ring), -EPROTO);
	assert_int_equal(tssx_ring_arm_reader(&f->ring, TSSX_BELL_SOCKET), -EPROTO);
	assert_int_equal(tssx_ring_arm_writer(&f->ring, TSSX_BELL_SOCKET), -EPROTO);
	assert_int_equal(get(f, 2 * CAP, false), -EPROTO);
	assert_int_equal(get(f, 2 * CAP, true), -EPROTO);
	assert_int_equal(put(f, 0, 2 * CAP), -EPROTO);
}

static void test_tail_too_far(void **state)
{
	struct fixture *f = *state;

	tssx_log_level = TSSX_LOG_NONE;
	f->ctl.tail = CAP + 1;
	assert_all_eproto(f);
	f->ctl.tail = UINT64_MAX;
	assert_all_eproto(f);
}

static void test_head_past_tail(void **state)
{
	struct fixture *f = *state;

	tssx_log_level = TSSX_LOG_NONE;
	assert_int_equal(put(f, 0, 100), 100);
	f->ctl.head = 101;
	assert_all_eproto(f);
	f->ctl.head = 1ull << 63;
	assert_all_eproto(f);
}

static void test_tail_backwards(void **state)
{
	struct fixture *f = *state;

	tssx_log_level = TSSX_LOG_NONE;
	assert_int_equal(put(f, 0, 1000), 1000);
	assert_int_equal(get(f, 10, false), 10); /* consumer saw tail 1000 */
	f->ctl.tail = 500;                        /* still >= head */
	assert_int_equal(tssx_ring_readable(&f->ring), -EPROTO);
	assert_int_equal(get(f, 2000, false), -EPROTO);
}

static void test_head_backwards(void **state)
{
	struct fixture *f = *state;

	tssx_log_level = TSSX_LOG_NONE;
	assert_int_equal(put(f, 0, CAP), CAP);
	assert_int_equal(get(f, 1000, false), 1000);
	assert_int_equal(put(f, 0, 10), 10); /* producer saw head 1000 */
	f->ctl.head = 900;                   /* tail - head still <= CAP */
	assert_int_equal(tssx_ring_writable(&f->ring), -EPROTO);
	assert_int_equal(put(f, 0, 2000), -EPROTO);
}

static void test_own_counter_corrupted(void **state)
{
	struct fixture *f = *state;

	tssx_log_level = TSSX_LOG_NONE;
	assert_int_equal(put(f, 0, 100), 100);
	assert_int_equal(get(f, 100, false), 100);
	/* The peer scribbles over the producer's own counter. */
	f->ctl.tail = 50;
	assert_int_equal(put(f, 0, 10), -EPROTO);
	f->ctl.tail = 100 + CAP + 1;
	assert_int_equal(put(f, 0, 10), -EPROTO);
}

static ssize_t get_unmarked(struct tssx_ring *reader, struct fixture *f, size_t len)
{
	struct iovec iov = { f->out, len };

	return tssx_ring_read_unmarked(reader, &iov, 1, false);
}

/*
 * A read that stops before control data (on a view of its own, as the
 * consumer's process has): it reads while no record is counted, moves
 * nothing once one is (a record counted after the tail it saw concerns
 * later bytes only), and reads again once the record is taken, without a
 * stale count keeping it on the slow path.
 */
static void test_read_unmarked(void **state)
{
	struct fixture *f = *state;
	struct tssx_ring reader;

	tssx_ring_attach(&reader, &f->ctl, f->small, f->data, CAP);
	assert_int_equal(put(f, 0, 100), 100);
	assert_int_equal(get_unmarked(&reader, f, 10), 10);
	/* The producer counts a record, then writes its bytes. */
	tssx_ring_count_ancillary(&f->ring);
	assert_int_equal(put(f, 100, 50), 50);
	/* The tail seen before the record still allows 90 bytes: they are
	 * not the record's. */
	assert_int_equal(get_unmarked(&reader, f, 90), 90);
	assert_memory_equal(f->out, f->in + 10, 90);
	/* Its bytes: the caller must look at the records. */
	assert_int_equal(get_unmarked(&reader, f, 50), TSSX_RING_MARKED);
	assert_int_equal(tssx_ring_readable(&reader), 50);
	assert_int_equal(tssx_ring_ancillary_ahead(&reader), 1);
	tssx_ring_take_ancillary(&reader);
	assert_int_equal(get_unmarked(&reader, f, 50), 50);
	assert_memory_equal(f->out, f->in + 100, 50);
	/* A corrupted tail found when the count is loaded again. */
	tssx_ring_count_ancillary(&f->ring);
	assert_int_equal(put(f, 0, 10), 10);
	assert_int_equal(get_unmarked(&reader, f, 5), TSSX_RING_MARKED);
	atomic_store(&f->ctl.tail, 5);
	tssx_log_level = TSSX_LOG_NONE;
	assert_int_equal(get_unmarked(&reader, f, 5), -EPROTO);
}

static ssize_t put_fast(struct tssx_ring *ring, struct fixture *f, size_t off, size_t len)
{
	return tssx_ring_move_fast(ring, true, f->in + off, len);
}

static ssize_t get_fast(struct tssx_ring *ring, struct fixture *f, size_t len)
{
	return tssx_ring_move_fast(ring, false, f->out, len);
}

/*
 * The fast path moves what the general one would in its common case,
 * and leaves every other case to it with nothing moved (0): a ring to
 * grow, a growth it has not learnt, bytes across the growth point,
 * records of control data, a wrong counter.  (A faulting buffer: the
 * integration tests, through the library's SIGSEGV handler.)
 */
static void test_fast_path(void **state)
{
	struct fixture *f = *state;
	struct tssx_ring reader, sibling;
	uint64_t tail;

	tssx_ring_attach(&reader, &f->ctl, f->small, f->data, CAP);
	tssx_ring_attach(&sibling, &f->ctl, f->small, f->data, CAP);
	/* Small messages in the small area, across its wrap, in laps. */
	for (size_t i = 0; i < 40; i++) {
		assert_int_equal(put_fast(&f->ring, f, i, 100), 100);
		assert_int_equal(get_fast(&reader, f, 200), 100);
		assert_memory_equal(f->out, f->in + i, 100);
	}
	assert_int_equal(get_fast(&reader, f, 10), 0); /* empty */
	/* Whole or nothing: the producer leaves a write that does not fit
	 * the small area (it grows the ring) to the general path. */
	assert_int_equal(put_fast(&f->ring, f, 0, 900), 900);
	assert_int_equal(put_fast(&f->ring, f, 0, 200), 0);
	assert_int_equal(f->ctl.grown, 0);
	assert_int_equal(put(f, 900, 200), 200);
	assert_true(f->ctl.grown);
	/* A sibling that has not learnt the growth leaves it to ring.c. */
	assert_int_equal(put_fast(&sibling, f, 0, 10), 0);
	/* Bytes across the growth point: the general path's. */
	assert_int_equal(get_fast(&reader, f, 1100), 0);
	get_in_steps(f, 0, 900, 900);
	get_in_steps(f, 900, 200, 200);
	/* A view that another consumer left behind (the head is past the
	 * tail it saw): the general path's, which loads the tail again. */
	assert_int_equal(put_fast(&f->ring, f, 0, 10), 10);
	assert_int_equal(get_fast(&reader, f, 10), 0);
	assert_int_equal(tssx_ring_read(&reader, &(struct iovec){ f->out, 10 }, 1, false), 10);
	/* In the full area from there, across its wrap. */
	for (size_t lap = 0; lap < 3; lap++) {
		assert_int_equal(put_fast(&f->ring, f, lap, CAP / 2), CAP / 2);
		assert_int_equal(put_fast(&f->ring, f, lap + CAP / 2, CAP / 2), CAP / 2);
		assert_int_equal(put_fast(&f->ring, f, 0, 1), 0); /* full */
		assert_int_equal(get_fast(&reader, f, 2 * CAP), CAP);
		assert_memory_equal(f->out, f->in + lap, CAP);
	}
	/* Records of control data ahead: the general path's. */
	tssx_ring_count_ancillary(&f->ring);
	assert_int_equal(put_fast(&f->ring, f, 0, 10), 10);
	assert_int_equal(get_fast(&reader, f, 10), 0);
	assert_int_equal(tssx_ring_readable(&reader), 10);
	tssx_ring_take_ancillary(&reader);
	assert_int_equal(get_fast(&reader, f, 10), 10);
	/* Wrong counters move nothing, whatever the peer wrote. */
	tail = atomic_load(&f->ctl.tail);
	atomic_store(&f->ctl.tail, tail + CAP + 1);
	assert_int_equal(get_fast(&reader, f, 10), 0);
	/* ...and leave this process's view of the peer as it was. */
	assert_int_equal(atomic_load(&reader.tail_seen), tail);
	atomic_store(&f->ctl.tail, tail - 1);
	assert_int_equal(get_fast(&reader, f, 10), 0);
	assert_int_equal(put_fast(&f->ring, f, 0, 10), 0);
	atomic_store(&f->ctl.tail, tail);
	atomic_store(&f->ctl.head, tail + 1);
	assert_int_equal(get_fast(&reader, f, 10), 0);
	tssx_log_level = TSSX_LOG_NONE;
	assert_int_equal(tssx_ring_read(&reader, &(struct iovec){ f->out, 10 }, 1, false), -EPROTO);
	atomic_store(&f->ctl.head, tail);
	assert_int_equal(put_fast(&f->ring, f, 0, 10), 10);
	assert_int_equal(get_fast(&reader, f, 10), 10);
	/* A stream shut either way: the general path fails the write. */
	tssx_ring_shut_read(&f->ring);
	assert_int_equal(put_fast(&f->ring, f, 0, 10), 0);
	atomic_store(&f->ctl.read_shut, 0);
	tssx_ring_shut_write(&f->ring);
	assert_int_equal(put_fast(&f->ring, f, 0, 10), 0);
	atomic_store(&f->ctl.write_shut, 0);
	assert_int_equal(put_fast(&f->ring, f, 0, 10), 10);
}

static void test_wakeup_flags(void **state)
{
	struct fixture *f = *state;

	assert_false(tssx_ring_take_reader_wakeup(&f->ring));
	assert_int_equal(tssx_ring_arm_reader(&f->ring, TSSX_BELL_SOCKET), 0);
	assert_int_equal(f->ctl.reader_waiting, 1);
	assert_int_equal(put(f, 0, 5), 5);
	assert_true(tssx_ring_take_reader_wakeup(&f->ring));
	assert_false(tssx_ring_take_reader_wakeup(&f->ring));
	/* Data already there: the reader must not sleep. */
	assert_int_equal(tssx_ring_arm_reader(&f->ring, TSSX_BELL_SOCKET), 5);

	assert_false(tssx_ring_take_writer_wakeup(&f->ring));
	assert_int_equal(put(f, 0, CAP), CAP - 5);
	assert_int_equal(tssx_ring_arm_writer(&f->ring, TSSX_BELL_SOCKET), 0);
	assert_int_equal(f->ctl.writer_waiting, 1);
	assert_int_equal(get(f, 1, false), 1);
	assert_true(tssx_ring_take_writer_wakeup(&f->ring));
	assert_false(tssx_ring_take_writer_wakeup(&f->ring));
	assert_int_equal(tssx_ring_arm_writer(&f->ring, TSSX_BELL_SOCKET), 1);
}

/* Sleepers of both kinds on one ring: each adds its bell, the waker
 * rings both; a flag the peer scribbled rings both too. */
static void test_wakeup_bells(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(tssx_ring_arm_reader(&f->ring, TSSX_BELL_FUTEX), 0);
	assert_int_equal(f->ctl.reader_waiting, TSSX_BELL_FUTEX);
	assert_int_equal(tssx_ring_arm_reader(&f->ring, TSSX_BELL_SOCKET), 0);
	assert_int_equal(f->ctl.reader_waiting, TSSX_BELL_FUTEX | TSSX_BELL_SOCKET);
	assert_int_equal(put(f, 0, 5), 5);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), TSSX_BELL_FUTEX | TSSX_BELL_SOCKET);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), 0);

	assert_int_equal(put(f, 0, CAP), CAP - 5);
	assert_int_equal(tssx_ring_arm_writer(&f->ring, TSSX_BELL_FUTEX), 0);
	assert_int_equal(get(f, 1, false), 1);
	assert_int_equal(tssx_ring_take_writer_wakeup(&f->ring), TSSX_BELL_FUTEX);
	assert_int_equal(tssx_ring_take_writer_wakeup(&f->ring), 0);

	/* The eventfd bell of an epoll sleeper beside a futex sleeper. */
	tssx_ring_raise(&f->ring, true, TSSX_BELL_EVENTFD);
	tssx_ring_raise(&f->ring, true, TSSX_BELL_FUTEX);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), TSSX_BELL_EVENTFD | TSSX_BELL_FUTEX);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), 0);

	atomic_store(&f->ctl.reader_waiting, 8u);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), TSSX_BELLS);
	assert_int_equal(f->ctl.reader_waiting, 0);
	assert_int_equal(tssx_bells_of(0), 0);
	assert_int_equal(tssx_bells_of(TSSX_BELL_SOCKET), TSSX_BELL_SOCKET);
	assert_int_equal(tssx_bells_of(TSSX_BELL_FUTEX), TSSX_BELL_FUTEX);
	assert_int_equal(tssx_bells_of(TSSX_BELL_EVENTFD | TSSX_BELL_SOCKET), TSSX_BELL_EVENTFD | TSSX_BELL_SOCKET);
	assert_int_equal(TSSX_BELLS, TSSX_BELL_SOCKET | TSSX_BELL_FUTEX | TSSX_BELL_EVENTFD);
	assert_int_equal(tssx_bells_of(UINT32_MAX), TSSX_BELLS);
	assert_int_equal(tssx_bells_of(0x80000000u | TSSX_BELL_FUTEX), TSSX_BELLS);
}

/* Holds (ring.h): the last counted holder of a bell lowers its bit,
 * while another one, or a sticky one, keeps it; the waker's take leaves
 * the counts alone. */
static void test_holds(void **state)
{
	struct fixture *f = *state;
	struct tssx_ring_holds readers = { 0 }, writers = { 0 };

	tssx_ring_hold(&f->ring, &readers, true, TSSX_BELL_SOCKET, true);
	tssx_ring_hold(&f->ring, &readers, true, TSSX_BELL_SOCKET, true);
	tssx_ring_hold(&f->ring, &readers, true, TSSX_BELL_FUTEX, true);
	assert_int_equal(f->ctl.reader_waiting, TSSX_BELL_SOCKET | TSSX_BELL_FUTEX);
	assert_false(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_SOCKET)); /* one more holds it */
	assert_int_equal(f->ctl.reader_waiting, TSSX_BELL_SOCKET | TSSX_BELL_FUTEX);
	assert_true(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_SOCKET));
	assert_int_equal(f->ctl.reader_waiting, TSSX_BELL_FUTEX);
	/* Data with no socket sleeper: only the futex bell rings. */
	assert_int_equal(put(f, 0, 5), 5);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), TSSX_BELL_FUTEX);
	/* Woken: the holder leaves after the take, which lowered it. */
	assert_true(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_FUTEX));
	assert_int_equal(f->ctl.reader_waiting, 0);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), 0);
	/* A leave without a hold lowers nothing. */
	tssx_ring_hold(&f->ring, &readers, true, TSSX_BELL_FUTEX, true);
	assert_true(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_FUTEX));
	assert_false(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_FUTEX));
	assert_int_equal(atomic_load(&readers.of[1]), 0);

	/* A sticky raise (an epoll set's) stays, whatever the counted
	 * holders of the bell do. */
	assert_false(tssx_ring_hold_sticky(&writers, TSSX_BELL_SOCKET));
	tssx_ring_hold(&f->ring, &writers, false, TSSX_BELL_SOCKET, true);
	tssx_ring_hold(&f->ring, &writers, false, TSSX_BELL_SOCKET, false);
	assert_true(tssx_ring_hold_sticky(&writers, TSSX_BELL_SOCKET));
	assert_false(tssx_ring_unhold(&f->ring, &writers, false, TSSX_BELL_SOCKET));
	assert_int_equal(f->ctl.writer_waiting, TSSX_BELL_SOCKET);
	tssx_ring_hold(&f->ring, &writers, false, TSSX_BELL_SOCKET, true);
	assert_false(tssx_ring_unhold(&f->ring, &writers, false, TSSX_BELL_SOCKET));
	assert_int_equal(f->ctl.writer_waiting, TSSX_BELL_SOCKET);
	assert_true(tssx_ring_hold_sticky(&writers, TSSX_BELL_SOCKET));
	/* A count that would reach the sticky value sticks. */
	atomic_store(&writers.of[2], TSSX_RING_HOLD_STICKY - 1);
	tssx_ring_hold(&f->ring, &writers, false, TSSX_BELL_EVENTFD, true);
	assert_true(tssx_ring_hold_sticky(&writers, TSSX_BELL_EVENTFD));
	assert_false(tssx_ring_unhold(&f->ring, &writers, false, TSSX_BELL_EVENTFD));
	assert_int_equal(f->ctl.writer_waiting, TSSX_BELL_SOCKET | TSSX_BELL_EVENTFD);
}

/* The peer writes the flags at will: a value of its own neither moves
 * this process's counts nor keeps the last holder from lowering its bit,
 * and the peer's other bits stay (they ring every bell, its own loss). */
static void test_holds_hostile(void **state)
{
	struct fixture *f = *state;
	struct tssx_ring_holds readers = { 0 };

	tssx_ring_hold(&f->ring, &readers, true, TSSX_BELL_SOCKET, true);
	tssx_ring_hold(&f->ring, &readers, true, TSSX_BELL_SOCKET, true);
	atomic_store(&f->ctl.reader_waiting, 0xdeadbee8u);
	assert_false(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_SOCKET));
	assert_int_equal(f->ctl.reader_waiting, 0xdeadbee8u);
	assert_int_equal(atomic_load(&readers.of[0]), 1);
	/* The peer cleared the word under a holder: nothing to lower, no
	 * count lost (a hold taken again raises the bit as ever). */
	atomic_store(&f->ctl.reader_waiting, 0);
	tssx_ring_hold(&f->ring, &readers, true, TSSX_BELL_SOCKET, true);
	assert_int_equal(f->ctl.reader_waiting, TSSX_BELL_SOCKET);
	assert_false(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_SOCKET));
	assert_int_equal(f->ctl.reader_waiting, TSSX_BELL_SOCKET);
	atomic_store(&f->ctl.reader_waiting, UINT32_MAX);
	assert_true(tssx_ring_unhold(&f->ring, &readers, true, TSSX_BELL_SOCKET));
	assert_int_equal(f->ctl.reader_waiting, UINT32_MAX & ~TSSX_BELL_SOCKET);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), TSSX_BELLS);
	assert_int_equal(atomic_load(&readers.of[0]), 0);
}

/* A waker's check fences every time (ring.c): however many checks found
 * no sleeper, the first flag raised is found, and the words with which
 * protocol 8's wakers went without fence stay zero, so that such a peer
 * keeps its fence too. */
static void test_wake_always_fences(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 4096; i++)
		assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), 0);
	tssx_ring_raise(&f->ring, true, TSSX_BELL_FUTEX);
	assert_int_equal(put(f, 0, 5), 5);
	assert_int_equal(tssx_ring_take_reader_wakeup(&f->ring), TSSX_BELL_FUTEX);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f->ctl.reader_retired[i], 0);
		assert_int_equal(f->ctl.writer_retired[i], 0);
	}
}

/* ---- several producers, each with its own view, serialised by the lock ---- */

#define PRODUCERS 3
#define RECORDS 100000

struct record {
	uint32_t producer;
	uint32_t check;
	uint64_t seq;
};

struct producer_arg {
	struct tssx_ring view; /* like a forked process: its own stale caches */
	struct tssx_side_locks *locks;
	uint32_t id;
};

static uint32_t record_check(uint32_t producer, uint64_t seq)
{
	return (uint32_t)(seq * 2654435761u) ^ producer;
}

/* Whole records only: a record split by another producer's would show. */
static void *produce_records(void *arg)
{
	struct producer_arg *p = arg;

	for (uint64_t seq = 0; seq < RECORDS;) {
		struct record rec = { p->id, record_check(p->id, seq), seq };
		struct iovec iov = { &rec, sizeof(rec) };
		ssize_t n = 0;

		tssx_side_lock(&p->locks->producer);
		if (tssx_ring_writable(&p->view) >= (ssize_t)sizeof(rec))
			n = tssx_ring_write(&p->view, &iov, 1);
		tssx_side_unlock(&p->locks->producer);
		if (n < 0)
			return (void *)(intptr_t)n;
		if (n == (ssize_t)sizeof(rec))
			seq++;
		else
			sched_yield();
	}
	return NULL;
}

static void test_several_producers(void **state)
{
	struct fixture *f = *state;
	struct producer_arg args[PRODUCERS];
	uint64_t next[PRODUCERS] = { 0 };
	pthread_t threads[PRODUCERS];
	struct tssx_side_locks *locks = tssx_side_locks_create();
	struct tssx_ring reader;

	assert_non_null(locks);
	tssx_ring_attach(&reader, &f->ctl, f->small, f->data, CAP);
	for (uint32_t i = 0; i < PRODUCERS; i++) {
		args[i].id = i;
		args[i].locks = locks;
		tssx_ring_attach(&args[i].view, &f->ctl, f->small, f->data, CAP);
		assert_int_equal(pthread_create(&threads[i], NULL, produce_records, &args[i]), 0);
	}
	for (uint64_t got = 0; got < PRODUCERS * RECORDS;) {
		struct record rec;
		struct iovec iov = { &rec, sizeof(rec) };
		ssize_t n = tssx_ring_read(&reader, &iov, 1, false);

		if (n == 0) {
			sched_yield();
			continue;
		}
		assert_int_equal(n, sizeof(rec));
		assert_true(rec.producer < PRODUCERS);
		assert_int_equal(rec.seq, next[rec.producer]);
		assert_int_equal(rec.check, record_check(rec.producer, rec.seq));
		next[rec.producer]++;
		got++;
	}
	for (int i = 0; i < PRODUCERS; i++) {
		void *ret;

		pthread_join(threads[i], &ret);
		assert_null(ret);
	}
	assert_int_equal(tssx_ring_readable(&reader), 0);
}

/* ---- streams: a producer and a consumer with doorbells on a socketpair ---- */

/* The stream's bytes: a period that is not a power of two, stored twice
 * so that any chunk up to PERIOD bytes is contiguous. */
#define PERIOD (1024 * 1024 + 13)
#define MAX_CHUNK (3 * 64 * 1024)
#define LOST_WAKEUP_MS 20000

static uint8_t pattern[2 * PERIOD];

static void fill_pattern(void)
{
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < PERIOD; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		pattern[i] = pattern[i + PERIOD] = (uint8_t)x;
	}
}

struct stream {
	struct tssx_ring *ring;
	int doorbell; /* our end of the socketpair */
	uint64_t total;
	uint32_t seed;
	size_t max_chunk; /* at most MAX_CHUNK */
};

static size_t next_chunk(struct stream *s)
{
	s->seed ^= s->seed << 13, s->seed ^= s->seed >> 17, s->seed ^= s->seed << 5;
	/* Mostly large, sometimes tiny, so both paths and the wrap get hit. */
	return (s->seed & 3) ? s->seed % s->max_chunk + 1 : s->seed % 64 + 1;
}

/* Sleeps until the peer rings; false on a lost wake-up. */
static bool wait_doorbell(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char drain[64];

	if (poll(&p, 1, LOST_WAKEUP_MS) != 1)
		return false;
	while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0)
		;
	return true;
}

static void ring_doorbell(int fd)
{
	char bell = 1;

	while (send(fd, &bell, 1, MSG_DONTWAIT) < 0 && errno == EINTR)
		;
}

/* Returns 0 or the first failure as a negative number. */
static int produce(struct stream *s)
{
	for (uint64_t pos = 0; pos < s->total;) {
		size_t len = next_chunk(s);
		struct iovec iov[2];
		ssize_t n;

		if (len > s->total - pos)
			len = s->total - pos;
		iov[0] = (struct iovec){ pattern + pos % PERIOD, len / 3 };
		iov[1] = (struct iovec){ pattern + (pos + len / 3) % PERIOD, len - len / 3 };
		n = tssx_ring_write(s->ring, iov, 2);
		if (n < 0)
			return (int)n;
		if (tssx_ring_take_reader_wakeup(s->ring))
			ring_doorbell(s->doorbell);
		pos += (uint64_t)n;
		if (n == 0 && tssx_ring_arm_writer(s->ring, TSSX_BELL_SOCKET) == 0 && !wait_doorbell(s->doorbell))
			return -ETIMEDOUT;
	}
	return 0;
}

static int consume(struct stream *s)
{
	static uint8_t buf[MAX_CHUNK];

	for (uint64_t pos = 0; pos < s->total;) {
		size_t len = next_chunk(s);
		struct iovec iov = { buf, len };
		ssize_t n = tssx_ring_read(s->ring, &iov, 1, false);

		if (n < 0)
			return (int)n;
		if (tssx_ring_take_writer_wakeup(s->ring))
			ring_doorbell(s->doorbell);
		if (memcmp(buf, pattern + pos % PERIOD, (size_t)n) != 0)
			return -EBADMSG;
		pos += (uint64_t)n;
		if (n == 0 && tssx_ring_arm_reader(s->ring, TSSX_BELL_SOCKET) == 0 && !wait_doorbell(s->doorbell))
			return -ETIMEDOUT;
	}
	return tssx_ring_readable(s->ring) == 0 ? 0 : -EMSGSIZE;
}

static void *producer_thread(void *arg)
{
	return (void *)(intptr_t)produce(arg);
}

static void test_two_threads(void **state)
{
	struct fixture *f = *state;
	int bells[2];
	pthread_t t;
	void *produced;

	fill_pattern();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bells), 0);
	struct stream prod = { &f->ring, bells[0], 256ull << 20, 1, MAX_CHUNK };
	struct stream cons = { &f->ring, bells[1], 256ull << 20, 2, MAX_CHUNK };

	assert_int_equal(pthread_create(&t, NULL, producer_thread, &prod), 0);
	assert_int_equal(consume(&cons), 0);
	pthread_join(t, &produced);
	assert_int_equal((intptr_t)produced, 0);
	close(bells[0]);
	close(bells[1]);
}

/* The child attaches the segment from the memfd, as a server would, and
 * produces; the parent consumes through the creator's mapping. */
/* Two processes, the reader the parent, with chunks of up to max_chunk
 * bytes (small ones: many checks in a row find no sleeper). */
static void run_two_processes(size_t max_chunk)
{
	struct tssx_segment client, server;
	struct tssx_hello hello;
	int memfd, bells[2], status;
	pid_t pid;

	fill_pattern();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bells), 0);
	assert_int_equal(tssx_segment_create(&client, 64 * 1024, CAP, &memfd, &hello), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stream prod = { &server.ring[TSSX_C2S], bells[0], 64ull << 20, 3, max_chunk };

		if (tssx_segment_attach(&server, memfd, &hello) < 0)
			_exit(2);
		_exit(produce(&prod) != 0);
	}
	struct stream cons = { &client.ring[TSSX_C2S], bells[1], 64ull << 20, 4, max_chunk };

	assert_int_equal(consume(&cons), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	tssx_segment_detach(&client);
	close(memfd);
	close(bells[0]);
	close(bells[1]);
}

static void test_two_processes(void **state)
{
	run_two_processes(MAX_CHUNK);
}

static void test_two_processes_small(void **state)
{
	run_two_processes(512);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_and_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peek_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iovec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stays_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_growth_learnt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_growth_corrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_too_far, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_past_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tail_backwards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_backwards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_counter_corrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_unmarked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fast_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_always_fences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_bells, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holds_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_several_producers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_threads, setup, teardown),
		cmocka_unit_test(test_two_processes),
		cmocka_unit_test(test_two_processes_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
