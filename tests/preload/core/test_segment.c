/* Unit tests of the segment: a create/attach round trip through the memfd
 * in one process, and every refusal of a forged memfd. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "tssx/log.h"
#include "tssx/segment.h"

#define C2S_CAP (64 * 1024)
#define S2C_CAP (1024 * 1024)

struct pair {
	struct tssx_segment client, server;
	struct tssx_hello hello;
	int memfd;
};

static int create(void **state)
{
	struct pair *p = test_calloc(1, sizeof(*p));

	assert_int_equal(tssx_segment_create(&p->client, C2S_CAP, S2C_CAP, &p->memfd, &p->hello), 0);
	assert_true(p->memfd >= 0);
	*state = p;
	return 0;
}

static int destroy(void **state)
{
	struct pair *p = *state;

	tssx_segment_detach(&p->client);
	tssx_segment_detach(&p->server);
	close(p->memfd);
	test_free(p);
	tssx_log_level = TSSX_LOG_WARN;
	return 0;
}

static void send_bytes(struct tssx_ring *from, struct tssx_ring *to, const char *msg)
{
	char buf[64] = { 0 };
	struct iovec out = { (void *)msg, strlen(msg) }, in = { buf, sizeof(buf) };

	assert_int_equal(tssx_ring_write(from, &out, 1), strlen(msg));
	assert_int_equal(tssx_ring_read(to, &in, 1, false), strlen(msg));
	assert_string_equal(buf, msg);
}

static void test_round_trip(void **state)
{
	struct pair *p = *state;
	struct tssx_hello parsed;

	assert_int_equal(tssx_hello_parse(&p->hello, sizeof(p->hello), &parsed, NULL), 0);
	assert_int_equal(fcntl(p->memfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(tssx_segment_attach(&p->server, p->memfd, &parsed), 0);
	assert_int_equal(p->server.size, p->hello.segment_size);
	assert_ptr_not_equal(p->server.base, p->client.base);
	for (int dir = TSSX_C2S; dir <= TSSX_S2C; dir++) {
		assert_int_equal(p->server.ring[dir].capacity, p->hello.ring_capacity[dir]);
		assert_int_equal(p->client.ring[dir].capacity, p->hello.ring_capacity[dir]);
		assert_int_equal(tssx_ring_writable(&p->server.ring[dir]), p->hello.ring_capacity[dir]);
	}
	send_bytes(&p->client.ring[TSSX_C2S], &p->server.ring[TSSX_C2S], "ping");
	send_bytes(&p->server.ring[TSSX_S2C], &p->client.ring[TSSX_S2C], "pong");
	/* The memfd cannot be resized any more. */
	assert_int_equal(ftruncate(p->memfd, 4096), -1);
	assert_int_equal(ftruncate(p->memfd, p->hello.segment_size * 2), -1);
}

/* A recycled segment (docs/data-path.md, "Segments recycled"): the
 * server's release is seen by the client; renewing zeroes every word the
 * peer wrote on the first page, gives back a grown data area, clears the
 * release; the server's kept mapping serves the next connection as a new
 * one would, and a header the peer spoiled meanwhile is refused without
 * unmapping the kept mapping. */
static void test_recycle(void **state)
{
	struct pair *p = *state;
	struct tssx_hello parsed, again;
	struct tssx_segment kept;
	uint64_t dev, ino, dev2, ino2;
	uint8_t *server_page;
	char big[4096];

	assert_int_equal(tssx_hello_parse(&p->hello, sizeof(p->hello), &parsed, NULL), 0);
	assert_int_equal(tssx_segment_check(p->memfd, &parsed, &dev, &ino), 0);
	assert_int_equal(tssx_segment_attach_checked(&p->server, p->memfd, &parsed, NULL), 0);
	assert_false(tssx_segment_released(&p->client));
	send_bytes(&p->client.ring[TSSX_C2S], &p->server.ring[TSSX_C2S], "ping");
	/* A write that does not fit the small area grows the ring. */
	memset(big, 'b', sizeof(big));
	{
		struct iovec out = { big, sizeof(big) };

		assert_int_equal(tssx_ring_write(&p->server.ring[TSSX_S2C], &out, 1), sizeof(big));
	}
	/* The peer's scribbles all over the first page, then its release. */
	server_page = p->server.base;
	memset(server_page + sizeof(struct tssx_segment_header), 0x5a,
	       4096 - sizeof(struct tssx_segment_header));
	tssx_segment_release(&p->server);
	assert_true(tssx_segment_released(&p->client));

	assert_int_equal(tssx_segment_renew(&p->client, C2S_CAP, S2C_CAP, &again), 0);
	assert_false(tssx_segment_released(&p->client));
	assert_memory_equal(&again, &p->hello, sizeof(again));
	for (size_t i = sizeof(struct tssx_segment_header); i < 4096; i++) {
		if (server_page[i] == 0x5a)
			fail_msg("byte %zu of the first page kept the peer's value", i);
	}
	/* The grown s2c area's page was given back: zeros again. */
	assert_int_equal(((uint8_t *)p->server.ring[TSSX_S2C].data)[0], 0);
	/* A segment of other capacities cannot be renewed as this one. */
	assert_int_equal(tssx_segment_renew(&p->client, S2C_CAP, S2C_CAP, &again), -EINVAL);

	/* The server takes its kept mapping for the same memfd. */
	assert_int_equal(tssx_segment_check(p->memfd, &parsed, &dev2, &ino2), 0);
	assert_true(dev2 == dev && ino2 == ino);
	memset(&kept, 0, sizeof(kept));
	assert_int_equal(tssx_segment_attach_checked(&kept, p->memfd, &parsed, p->server.base), 0);
	assert_ptr_equal(kept.base, p->server.base);
	assert_int_equal(tssx_ring_writable(&kept.ring[TSSX_C2S]), C2S_CAP);
	send_bytes(&p->client.ring[TSSX_C2S], &kept.ring[TSSX_C2S], "again");
	/* A header spoiled before the check: refused, the mapping left. */
	((struct tssx_segment_header *)p->client.base)->magic ^= 1;
	tssx_log_level = TSSX_LOG_NONE;
	memset(&kept, 0, sizeof(kept));
	assert_int_equal(tssx_segment_attach_checked(&kept, p->memfd, &parsed, p->server.base), -EINVAL);
	assert_null(kept.base);
	assert_int_equal(server_page[sizeof(uint32_t)], ((uint8_t *)p->client.base)[sizeof(uint32_t)]);
}

static void test_unsealed(void **state)
{
	struct pair *p = *state;
	int fd = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	tssx_log_level = TSSX_LOG_NONE;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)p->hello.segment_size), 0);
	assert_int_equal(tssx_segment_attach(&p->server, fd, &p->hello), -EPERM);
	/* Shrink sealed is not enough: grow must be sealed too. */
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	assert_int_equal(tssx_segment_attach(&p->server, fd, &p->hello), -EPERM);
	close(fd);
	/* Not a memfd at all: a pipe. */
	int pipefd[2];

	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(tssx_segment_attach(&p->server, pipefd[0], &p->hello), -EPERM);
	close(pipefd[0]);
	close(pipefd[1]);
	assert_null(p->server.base);
}

static void test_wrong_size(void **state)
{
	struct pair *p = *state;
	struct tssx_hello other;
	int fd = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	tssx_log_level = TSSX_LOG_NONE;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)p->hello.segment_size - 4096), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	assert_int_equal(tssx_segment_attach(&p->server, fd, &p->hello), -EINVAL);
	close(fd);
	/* The real memfd with a hello for other capacities. */
	tssx_hello_init(&other, C2S_CAP, S2C_CAP * 2);
	assert_int_equal(tssx_segment_attach(&p->server, p->memfd, &other), -EINVAL);
	assert_null(p->server.base);
}

static void assert_header_refused(struct pair *p, size_t offset, uint32_t value)
{
	uint8_t *header = p->client.base;
	uint32_t saved;

	memcpy(&saved, header + offset, sizeof(saved));
	memcpy(header + offset, &value, sizeof(value));
	assert_int_equal(tssx_segment_attach(&p->server, p->memfd, &p->hello), -EINVAL);
	assert_null(p->server.base);
	memcpy(header + offset, &saved, sizeof(saved));
}

static void test_corrupted_header(void **state)
{
	struct pair *p = *state;

	tssx_log_level = TSSX_LOG_NONE;
	assert_header_refused(p, offsetof(struct tssx_segment_header, magic), 0xdeadbeef);
	assert_header_refused(p, offsetof(struct tssx_segment_header, version), TSSX_PROTOCOL_VERSION + 1);
	assert_header_refused(p, offsetof(struct tssx_segment_header, ring_capacity[TSSX_C2S]), 8192);
	assert_header_refused(p, offsetof(struct tssx_segment_header, ring_capacity[TSSX_S2C]), 8192);
	/* Restored: accepted again. */
	assert_int_equal(tssx_segment_attach(&p->server, p->memfd, &p->hello), 0);
}

static void test_bad_capacities(void **state)
{
	struct tssx_segment seg = { 0 };
	struct tssx_hello hello;
	int memfd = 0;

	tssx_log_level = TSSX_LOG_NONE;
	assert_int_equal(tssx_segment_create(&seg, 3000, S2C_CAP, &memfd, &hello), -EINVAL);
	assert_int_equal(memfd, -1);
	assert_int_equal(tssx_segment_create(&seg, C2S_CAP, TSSX_RING_MAX_CAPACITY * 2, &memfd, &hello),
			 -EINVAL);
	assert_int_equal(memfd, -1);
	tssx_log_level = TSSX_LOG_WARN;
}

static void test_layout(void **state)
{
	struct pair *p = *state;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *base = p->client.base;

	uint8_t *c2s_ctl = (uint8_t *)p->client.ring[TSSX_C2S].ctl;
	uint8_t *s2c_ctl = (uint8_t *)p->client.ring[TSSX_S2C].ctl;

	/* Header and both control blocks in the first page, each on cache
	 * lines of its own; the rings' data on pages of their own. */
	assert_int_equal(p->client.size % page, 0);
	assert_int_equal(p->client.size, page + C2S_CAP + S2C_CAP);
	assert_true(c2s_ctl >= base + sizeof(struct tssx_segment_header));
	assert_int_equal((uintptr_t)c2s_ctl % TSSX_CACHELINE, 0);
	assert_ptr_equal(s2c_ctl, c2s_ctl + sizeof(struct tssx_ring_ctl));
	assert_true(s2c_ctl + sizeof(struct tssx_ring_ctl) <= base + page);
	assert_ptr_equal(p->client.ring[TSSX_C2S].data, base + page);
	assert_ptr_equal(p->client.ring[TSSX_S2C].data, base + page + C2S_CAP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, create, destroy),
		cmocka_unit_test_setup_teardown(test_recycle, create, destroy),
		cmocka_unit_test_setup_teardown(test_unsealed, create, destroy),
		cmocka_unit_test_setup_teardown(test_wrong_size, create, destroy),
		cmocka_unit_test_setup_teardown(test_corrupted_header, create, destroy),
		cmocka_unit_test_setup_teardown(test_layout, create, destroy),
		cmocka_unit_test(test_bad_capacities),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
