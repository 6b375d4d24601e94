/* Unit tests of the epoll wrappers' bookkeeping (preload/events/events.c). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "events/events.h"

/* The table is process-wide: tests use fd numbers of their own, and the
 * fixture's epoll fd is closed (forgotten) after each test. */
#define FIXTURE_EPFD 400

/* epoll.c's part of closing a tracked fd (the kernel's registration
 * given back), counted. */
static int released;

void events_entry_release(struct events_set *set, struct events_entry *entry)
{
	(void)set;
	(void)entry;
	released++;
}

static struct events_set *locked_set(int epfd)
{
	struct events_set *set = events_set_open(epfd);

	assert_non_null(set);
	assert_ptr_equal(events_set_of(epfd), set);
	pthread_mutex_lock(&set->lock);
	return set;
}

static int set_up(void **state)
{
	*state = locked_set(FIXTURE_EPFD);
	return 0;
}

static int tear_down(void **state)
{
	struct events_set *set = *state;

	pthread_mutex_unlock(&set->lock);
	tssx_events_forget_fd(FIXTURE_EPFD);
	return 0;
}

static struct epoll_event event_of(uint32_t events, uint64_t data)
{
	return (struct epoll_event){ .events = events, .data.u64 = data };
}

static struct events_entry *added(struct events_set *set, int fd, uint32_t events)
{
	struct epoll_event event = event_of(events, 1000 + (uint64_t)fd);

	assert_int_equal(events_set_add(set, fd, EVENTS_CONN, &event), 0);
	return events_set_find(set, fd);
}

static void test_tag_roundtrip(void **state)
{
	int fd = -1;

	assert_true(events_untag(events_tag(0), &fd));
	assert_int_equal(fd, 0);
	assert_true(events_untag(events_tag(123456), &fd));
	assert_int_equal(fd, 123456);
	assert_false(events_tag_is_bell(events_tag(123456)));
	/* the eventfd bell's tag: ours, of its connection's fd, told apart */
	fd = -1;
	assert_true(events_untag(events_bell_tag(654321), &fd));
	assert_int_equal(fd, 654321);
	assert_true(events_tag_is_bell(events_bell_tag(654321)));
	assert_true(events_tag_is_bell(events_bell_tag(0)));
	assert_false(events_tag_is_bell(42));
	assert_false(events_tag_is_bell((uint64_t)(uintptr_t)&fd));
	/* what applications store: small numbers and user-space pointers */
	assert_false(events_untag(42, &fd));
	assert_false(events_untag((uint64_t)(uintptr_t)&fd, &fd));
	assert_false(events_untag(0x00007fffffffffffULL, &fd));
}

static void test_set_lifetime(void **state)
{
	struct events_set *set;

	assert_null(events_set_of(100));
	set = events_set_open(100);
	assert_non_null(set);
	assert_int_equal(set->epfd, 100);
	assert_ptr_equal(events_set_open(100), set);
	tssx_events_forget_fd(100);
	assert_null(events_set_of(100));
	/* a closed epoll fd's set is reused, emptied */
	assert_ptr_equal(events_set_open(101), set);
	assert_int_equal(set->epfd, 101);
	assert_int_equal(atomic_load(&set->count), 0);
	tssx_events_forget_fd(101);
}

static void test_fds_out_of_range(void **state)
{
	errno = 0;
	assert_null(events_set_open(-1));
	assert_int_equal(errno, EBADF);
	assert_null(events_set_open(1 << 30));
	assert_int_equal(errno, ENOMEM);
	assert_null(events_set_of(-5));
	assert_false(events_fd_is_tracked(-5));
	assert_false(events_fd_is_tracked(1 << 30));
	tssx_events_forget_fd(-1);
	tssx_events_forget_fd(1 << 30);
}

static void test_add_find_remove(void **state)
{
	struct events_set *set = *state;
	struct epoll_event event = event_of(EPOLLIN, 7);
	struct events_entry *entry;

	assert_false(events_fd_is_tracked(201));
	assert_false(atomic_load(&set->tagged));
	entry = added(set, 201, EPOLLIN | EPOLLOUT);
	assert_true(atomic_load(&set->tagged));
	assert_non_null(entry);
	assert_int_equal(entry->fd, 201);
	assert_int_equal(entry->data.u64, 1201);
	assert_int_equal(entry->events, EPOLLIN | EPOLLOUT);
	assert_true(events_fd_is_tracked(201));
	assert_int_equal(events_set_add(set, 201, EVENTS_CONN, &event), -EEXIST);
	assert_int_equal(events_set_add(set, 1 << 30, EVENTS_CONN, &event), -ENOMEM);
	assert_int_equal(atomic_load(&set->count), 1);
	events_set_remove(set, entry);
	assert_null(events_set_find(set, 201));
	assert_false(events_fd_is_tracked(201));
	assert_int_equal(atomic_load(&set->count), 0);
	assert_true(atomic_load(&set->tagged)); /* the kernel may still have them */
}

static void test_exclusive_kept_apart(void **state)
{
	struct events_set *set = *state;
	struct epoll_event event = event_of(EPOLLIN | EPOLLEXCLUSIVE, 1);
	struct events_entry *entry;

	assert_int_equal(events_set_add(set, 211, EVENTS_WATCHED, &event), 0);
	entry = events_set_find(set, 211);
	assert_int_equal(entry->events, EPOLLIN);
	assert_int_equal(entry->kernel_flags, EPOLLEXCLUSIVE);
	assert_int_equal(entry->kind, EVENTS_WATCHED);
}

static void test_close_leaves_every_set(void **state)
{
	struct events_set *a = locked_set(300), *b;

	added(a, 302, EPOLLIN);
	added(a, 303, EPOLLIN);
	pthread_mutex_unlock(&a->lock);
	b = locked_set(301);
	added(b, 302, EPOLLOUT);
	pthread_mutex_unlock(&b->lock);

	released = 0;
	tssx_events_forget_fd(302);
	assert_int_equal(released, 2); /* once in each set */
	assert_false(events_fd_is_tracked(302));
	assert_null(events_set_find(a, 302));
	assert_null(events_set_find(b, 302));
	assert_non_null(events_set_find(a, 303));
	assert_int_equal(atomic_load(&a->count), 1);
	assert_int_equal(atomic_load(&b->count), 0);

	/* closing the epoll fd drops its entries' tracking; the kernel
	 * drops the registrations with the epoll instance */
	tssx_events_forget_fd(300);
	assert_false(events_fd_is_tracked(303));
	assert_int_equal(released, 2);
	tssx_events_forget_fd(301);
}

static void test_level_triggered(void **state)
{
	struct events_set *set = *state;
	struct events_entry *entry = added(set, 401, EPOLLIN | EPOLLRDHUP);

	assert_int_equal(events_entry_report(entry, EPOLLIN, 1), EPOLLIN);
	assert_int_equal(events_entry_report(entry, EPOLLIN, 1), EPOLLIN);
	/* not asked for: dropped; HUP and ERR always reported */
	assert_int_equal(events_entry_report(entry, EPOLLOUT, 1), 0);
	assert_int_equal(events_entry_report(entry, EPOLLOUT | EPOLLHUP, 2), EPOLLHUP);
	assert_int_equal(events_entry_report(entry, EPOLLERR | EPOLLRDHUP, 2), EPOLLERR | EPOLLRDHUP);
	assert_int_equal(events_entry_report(entry, 0, 3), 0);
}

static void test_edge_triggered(void **state)
{
	struct events_set *set = *state;
	struct events_entry *entry = added(set, 411, EPOLLIN | EPOLLET);
	struct epoll_event again = event_of(EPOLLIN | EPOLLET, 5);

	assert_int_equal(events_entry_report(entry, EPOLLIN, 10), EPOLLIN);
	/* the ring did not move: no new edge, however often asked */
	assert_int_equal(events_entry_peek(entry, EPOLLIN, 10), 0);
	assert_int_equal(events_entry_report(entry, EPOLLIN, 10), 0);
	/* not ready when it moved: nothing, and the old report still stands */
	assert_int_equal(events_entry_report(entry, 0, 11), 0);
	assert_int_equal(events_entry_report(entry, EPOLLIN, 12), EPOLLIN);
	assert_int_equal(events_entry_report(entry, EPOLLIN, 12), 0);
	/* EPOLL_CTL_MOD reports the current state once more */
	events_entry_modify(entry, &again);
	assert_int_equal(entry->data.u64, 5);
	assert_int_equal(events_entry_report(entry, EPOLLIN, 12), EPOLLIN);
	assert_int_equal(events_entry_report(entry, EPOLLIN, 12), 0);
}

static void test_parked(void **state)
{
	struct events_set *set = *state;
	struct events_entry *entry = added(set, 421, EPOLLIN | EPOLLET);
	struct epoll_event back = event_of(EPOLLOUT | EPOLLET, 6);
	static const int conn = 1; /* any connection's address */

	assert_int_equal(events_entry_report(entry, EPOLLIN, 20), EPOLLIN);
	/* Parked: still there and tracked, reporting nothing. */
	events_entry_park(entry, &conn);
	assert_true(entry->parked);
	assert_ptr_equal(entry->parked_with, &conn);
	assert_ptr_equal(events_set_find(set, 421), entry);
	assert_true(events_fd_is_tracked(421));
	assert_int_equal(events_entry_peek(entry, EPOLLIN | EPOLLHUP, 21), 0);
	assert_int_equal(events_entry_report(entry, EPOLLIN | EPOLLERR, 21), 0);
	/* Added back: as a new entry, its edge not yet reported. */
	events_entry_unpark(entry, &back);
	assert_false(entry->parked);
	assert_null(entry->parked_with);
	assert_int_equal(entry->data.u64, 6);
	assert_int_equal(events_entry_report(entry, EPOLLOUT, 20), EPOLLOUT);
	assert_int_equal(events_entry_report(entry, EPOLLOUT, 20), 0);
}

static void test_oneshot(void **state)
{
	struct events_set *set = *state;
	struct events_entry *entry = added(set, 421, EPOLLIN | EPOLLONESHOT);
	struct epoll_event rearm = event_of(EPOLLOUT | EPOLLONESHOT, 9);

	assert_int_equal(events_entry_peek(entry, EPOLLIN, 1), EPOLLIN);
	assert_int_equal(events_entry_report(entry, EPOLLIN, 1), EPOLLIN);
	assert_true(entry->disabled);
	assert_int_equal(events_entry_report(entry, EPOLLIN | EPOLLHUP, 2), 0);
	events_entry_modify(entry, &rearm);
	assert_false(entry->disabled);
	assert_int_equal(events_entry_report(entry, EPOLLIN | EPOLLOUT, 2), EPOLLOUT);
	assert_int_equal(events_entry_report(entry, EPOLLOUT, 3), 0);
}

static void test_rotate(void **state)
{
	struct events_set *set = *state;
	struct events_entry *first = added(set, 431, EPOLLIN);

	added(set, 432, EPOLLIN);
	added(set, 433, EPOLLIN);
	assert_ptr_equal(set->hot, first);
	events_set_rotate(set, first);
	assert_int_equal(set->hot->fd, 432);
	assert_null(first->hot_next);
	assert_ptr_equal(events_set_find(set, 431), first);
	assert_int_equal(HASH_COUNT(set->entries), 3);
	assert_int_equal(atomic_load(&set->hot_count), 3);
}

/* The hot list: new entries are hot, a cold one leaves the list but not
 * the set, heating forgets its arming, a removed entry leaves both. */
static void test_heat_cool(void **state)
{
	struct events_set *set = *state;
	struct events_entry *a = added(set, 441, EPOLLIN), *b = added(set, 442, EPOLLIN);
	struct events_entry *c = added(set, 443, EPOLLIN);

	assert_true(a->hot && b->hot && c->hot);
	b->may_cool = true;
	events_entry_cool(set, b);
	assert_false(b->hot);
	assert_false(b->may_cool);
	events_entry_cool(set, b); /* twice: a no-op */
	assert_int_equal(atomic_load(&set->hot_count), 2);
	assert_ptr_equal(set->hot, a);
	assert_ptr_equal(a->hot_next, c);
	assert_ptr_equal(events_set_find(set, 442), b);
	b->may_cool = true;
	events_entry_heat(set, b);
	assert_true(b->hot);
	assert_false(b->may_cool);
	assert_ptr_equal(c->hot_next, b); /* heated entries go last */
	events_entry_heat(set, b);
	assert_int_equal(atomic_load(&set->hot_count), 3);
	events_entry_cool(set, a);
	events_entry_cool(set, c);
	assert_ptr_equal(set->hot, b);
	events_set_remove(set, b);
	assert_null(set->hot);
	assert_int_equal(atomic_load(&set->hot_count), 0);
	events_set_heat_all(set);
	assert_int_equal(atomic_load(&set->hot_count), 2);
	assert_true(a->hot && c->hot);
}

/* Several threads add and remove in one set while others close fds:
 * the counts stay consistent. */
#define THREADS 4
#define ROUNDS 2000
#define THREAD_FD_BASE 1000

static void *churn(void *arg)
{
	int first = THREAD_FD_BASE + (int)(intptr_t)arg * 10;
	struct events_set *set = events_set_of(500);
	struct epoll_event event = event_of(EPOLLIN, 0);

	for (int round = 0; round < ROUNDS; round++) {
		int fd = first + round % 10;

		if (round % 3 == 2) {
			tssx_events_forget_fd(fd);
			continue;
		}
		pthread_mutex_lock(&set->lock);
		if (events_set_add(set, fd, EVENTS_CONN, &event) == -EEXIST)
			events_set_remove(set, events_set_find(set, fd));
		pthread_mutex_unlock(&set->lock);
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t threads[THREADS];
	struct events_set *set = events_set_open(500);
	unsigned int entries;

	for (intptr_t i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, churn, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_lock(&set->lock);
	entries = HASH_COUNT(set->entries);
	pthread_mutex_unlock(&set->lock);
	assert_int_equal(atomic_load(&set->count), entries);
	tssx_events_forget_fd(500);
	for (int fd = THREAD_FD_BASE; fd < THREAD_FD_BASE + THREADS * 10; fd++)
		assert_false(events_fd_is_tracked(fd));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tag_roundtrip),
		cmocka_unit_test(test_set_lifetime),
		cmocka_unit_test(test_fds_out_of_range),
		cmocka_unit_test_setup_teardown(test_add_find_remove, set_up, tear_down),
		cmocka_unit_test_setup_teardown(test_exclusive_kept_apart, set_up, tear_down),
		cmocka_unit_test(test_close_leaves_every_set),
		cmocka_unit_test_setup_teardown(test_level_triggered, set_up, tear_down),
		cmocka_unit_test_setup_teardown(test_edge_triggered, set_up, tear_down),
		cmocka_unit_test_setup_teardown(test_oneshot, set_up, tear_down),
		cmocka_unit_test_setup_teardown(test_parked, set_up, tear_down),
		cmocka_unit_test_setup_teardown(test_rotate, set_up, tear_down),
		cmocka_unit_test_setup_teardown(test_heat_cool, set_up, tear_down),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
