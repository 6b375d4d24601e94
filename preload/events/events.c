/* Bookkeeping of the epoll wrappers: see events.h. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <utlist.h>

#include "events/events.h"
#include "conn/fd_table.h"
#include "tssx/macros.h"

/* The per-fd bookkeeping (an epoll fd's set, how many sets track an fd)
 * lives in the fd table's slots (conn/fd_table.h): close() asks on every
 * call whether an fd is tracked, and finds it in the one lookup it makes
 * anyway. */

static pthread_mutex_t sets_lock TSSX_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
static struct events_set *live_sets;	/* under sets_lock */
static struct events_set *free_sets;	/* closed epoll fds' sets, for reuse */

static void lock_sets(void)
{
	pthread_mutex_lock(&sets_lock);
}

TSSX_FORK_HANDLER static void unlock_sets(void)
{
	pthread_mutex_unlock(&sets_lock);
}

/* Only the forking thread lives on in the child: locks that other threads
 * held would stay held forever.  The lists are whole (lock_sets). */
TSSX_FORK_HANDLER static void forked_child(void)
{
	pthread_mutex_init(&sets_lock, NULL);
	for (struct events_set *set = live_sets; set; set = set->next)
		pthread_mutex_init(&set->lock, NULL);
	for (struct events_set *set = free_sets; set; set = set->next)
		pthread_mutex_init(&set->lock, NULL);
}

static void register_atfork(void)
{
	pthread_atfork(lock_sets, unlock_sets, forked_child);
}

/* Sets are never freed: a thread may still be waiting on a set whose epoll
 * fd another thread closes.  A closed fd's set is emptied and reused. */
static struct events_set *set_take(int epfd)
{
	struct events_set *set;

	if (free_sets) {
		set = free_sets;
		free_sets = set->next;
	} else {
		set = calloc(1, sizeof(*set));
		if (!set)
			return NULL;
		pthread_mutex_init(&set->lock, NULL);
	}
	set->epfd = epfd;
	set->dups = 0;
	set->hot = NULL;
	atomic_store(&set->hot_count, 0);
	atomic_store(&set->tagged, false);
	atomic_store(&set->sleepers, 0);
	atomic_store(&set->waiters, 0);
	atomic_store(&set->nesters, 0);
	set->kicked = false;
	atomic_store(&set->kernel_fds, false);
	set->next = live_sets;
	live_sets = set;
	return set;
}

struct events_set *events_set_open(int epfd)
{
	static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
	struct tssx_fd_slot *slot = tssx_table_slot_make(epfd);
	struct events_set *set;

	pthread_once(&atfork_once, register_atfork);
	if (!slot) {
		errno = epfd < 0 ? EBADF : ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&sets_lock);
	set = atomic_load(&slot->epoll_set);
	if (!set) {
		set = set_take(epfd);
		if (set)
			atomic_store_explicit(&slot->epoll_set, set, memory_order_release);
		else
			errno = ENOMEM;
	}
	pthread_mutex_unlock(&sets_lock);
	return set;
}

struct events_entry *events_set_find(struct events_set *set, int fd)
{
	struct events_entry *entry;

	HASH_FIND_INT(set->entries, &fd, entry);
	return entry;
}

static void entry_set_event(struct events_entry *entry, const struct epoll_event *event)
{
	entry->events = event->events & ~(uint32_t)EPOLLEXCLUSIVE;
	entry->data = event->data;
	entry->disabled = false;
	entry->reported = false;
}

/* Whether the entry's readiness comes from rings a wait may spin on. */
static void entry_count_rings(struct events_set *set, struct events_entry *entry)
{
	bool has_rings = entry->kind == EVENTS_CONN || events_set_of(entry->fd);

	if (has_rings != entry->has_rings)
		atomic_fetch_add(&set->ring_entries, has_rings ? 1u : (unsigned)-1);
	entry->has_rings = has_rings;
}

int events_set_add(struct events_set *set, int fd, enum events_kind kind,
		   const struct epoll_event *event)
{
	struct tssx_fd_slot *slot = tssx_table_slot_make(fd);
	struct events_entry *entry;

	if (!slot)
		return -ENOMEM;
	if (events_set_find(set, fd))
		return -EEXIST;
	entry = calloc(1, sizeof(*entry));
	if (!entry)
		return -ENOMEM;
	entry->fd = fd;
	entry->kind = kind;
	entry->kernel_flags = event->events & EPOLLEXCLUSIVE;
	entry_set_event(entry, event);
	HASH_ADD_INT(set->entries, fd, entry);
	events_entry_heat(set, entry);
	atomic_fetch_add(&slot->watchers, 1);
	atomic_fetch_add(&set->count, 1);
	entry_count_rings(set, entry);
	atomic_store(&set->tagged, true);
	if (kind == EVENTS_WATCHED)
		atomic_store(&set->kernel_fds, true);
	return 0;
}

void events_set_remove(struct events_set *set, struct events_entry *entry)
{
	events_entry_cool(set, entry);
	HASH_DEL(set->entries, entry);
	atomic_fetch_sub(&tssx_table_slot(entry->fd)->watchers, 1);
	atomic_fetch_sub(&set->count, 1);
	if (entry->has_rings)
		atomic_fetch_sub(&set->ring_entries, 1);
	free(entry);
}

void events_entry_set_kind(struct events_set *set, struct events_entry *entry, enum events_kind kind)
{
	entry->kind = kind;
	entry_count_rings(set, entry);
}

void events_set_rotate(struct events_set *set, struct events_entry *entry)
{
	DL_DELETE2(set->hot, entry, hot_prev, hot_next);
	DL_APPEND2(set->hot, entry, hot_prev, hot_next);
}

void events_entry_heat(struct events_set *set, struct events_entry *entry)
{
	entry->may_cool = false;
	entry->active_ns = 0;
	if (entry->hot)
		return;
	DL_APPEND2(set->hot, entry, hot_prev, hot_next);
	entry->hot = true;
	atomic_fetch_add_explicit(&set->hot_count, 1, memory_order_relaxed);
}

void events_entry_cool(struct events_set *set, struct events_entry *entry)
{
	entry->may_cool = false;
	if (!entry->hot)
		return;
	DL_DELETE2(set->hot, entry, hot_prev, hot_next);
	entry->hot = false;
	atomic_fetch_sub_explicit(&set->hot_count, 1, memory_order_relaxed);
}

static void stats_sum(_Atomic uint64_t *total, _Atomic uint64_t *counter)
{
	atomic_fetch_add_explicit(total, atomic_load_explicit(counter, memory_order_relaxed), memory_order_relaxed);
}

static void sets_total(struct events_set *set, uint64_t *waits, struct events_stats *total)
{
	for (; set; set = set->next) {
		*waits += atomic_load_explicit(&set->waits, memory_order_relaxed);
		stats_sum(&total->looks, &set->stats.looks);
		stats_sum(&total->looked, &set->stats.looked);
		stats_sum(&total->cooled, &set->stats.cooled);
		stats_sum(&total->rescans, &set->stats.rescans);
		stats_sum(&total->eventfd_reports, &set->stats.eventfd_reports);
		stats_sum(&total->socket_reports, &set->stats.socket_reports);
	}
}

bool events_stats_total(uint64_t *waits, struct events_stats *total)
{
	if (pthread_mutex_trylock(&sets_lock) != 0)
		return false;
	sets_total(live_sets, waits, total);
	sets_total(free_sets, waits, total);
	pthread_mutex_unlock(&sets_lock);
	return true;
}

void events_set_heat_all(struct events_set *set)
{
	struct events_entry *entry, *tmp;

	HASH_ITER(hh, set->entries, entry, tmp)
		events_entry_heat(set, entry);
}

void events_entry_modify(struct events_entry *entry, const struct epoll_event *event)
{
	entry_set_event(entry, event);
}

void events_entry_park(struct events_entry *entry, const void *conn)
{
	entry->parked = true;
	entry->parked_with = conn;
}

void events_entry_unpark(struct events_entry *entry, const struct epoll_event *event)
{
	entry->parked = false;
	entry->parked_with = NULL;
	entry_set_event(entry, event);
}

uint32_t events_entry_peek(const struct events_entry *entry, uint32_t ready, uint64_t generation)
{
	uint32_t wanted = entry->events | EPOLLHUP | EPOLLERR;

	if (entry->disabled || entry->parked)
		return 0;
	ready &= wanted & ~(uint32_t)(EPOLLET | EPOLLONESHOT | EPOLLWAKEUP);
	if (!ready)
		return 0;
	if ((entry->events & EPOLLET) && entry->reported && entry->last_generation == generation)
		return 0;
	return ready;
}

uint32_t events_entry_report(struct events_entry *entry, uint32_t ready, uint64_t generation)
{
	ready = events_entry_peek(entry, ready, generation);
	if (!ready)
		return 0;
	entry->reported = true;
	entry->last_generation = generation;
	if (entry->events & EPOLLONESHOT)
		entry->disabled = true;
	return ready;
}

void events_each_entry_of(int fd, void (*visit)(struct events_set *set, struct events_entry *entry))
{
	pthread_mutex_lock(&sets_lock);
	for (struct events_set *set = live_sets; set && events_fd_is_tracked(fd); set = set->next) {
		struct events_entry *entry;

		if (!atomic_load(&set->count))
			continue;
		pthread_mutex_lock(&set->lock);
		entry = events_set_find(set, fd);
		if (entry)
			visit(set, entry);
		pthread_mutex_unlock(&set->lock);
	}
	pthread_mutex_unlock(&sets_lock);
}

static void forget_entry(struct events_set *set, struct events_entry *entry)
{
	events_entry_release(set, entry);
	events_set_remove(set, entry);
}

static void set_clear(struct events_set *set)
{
	struct events_entry *entry, *tmp;

	pthread_mutex_lock(&set->lock);
	HASH_ITER(hh, set->entries, entry, tmp)
		events_set_remove(set, entry);
	pthread_mutex_unlock(&set->lock);
}

/* Another fd whose slot holds set, or -1 (a rare path: walks the table). */
static int other_fd_of(const struct events_set *set, int fd)
{
	int high = tssx_table_high_fd();

	for (int other = 0; other <= high; other++) {
		struct tssx_fd_slot *slot = tssx_table_slot(other);

		if (other != fd && slot && atomic_load(&slot->epoll_set) == set)
			return other;
	}
	return -1;
}

/* Closing an epoll fd: its set is emptied and kept for the next one,
 * unless a copy of the fd keeps the epoll instance (and the set) alive. */
static void forget_set(struct tssx_fd_slot *slot, int fd)
{
	struct events_set *set;

	pthread_mutex_lock(&sets_lock);
	set = atomic_exchange(&slot->epoll_set, NULL);
	if (set && set->dups > 0) {
		set->dups--;
		if (set->epfd == fd)
			set->epfd = other_fd_of(set, fd);
	} else if (set) {
		struct events_set **link = &live_sets;

		while (*link != set)
			link = &(*link)->next;
		*link = set->next;
		set_clear(set);
		set->next = free_sets;
		free_sets = set;
	}
	pthread_mutex_unlock(&sets_lock);
}

/* The kernel drops a closed fd from every epoll set; so do we. */
static void forget_tracked_fd(int fd)
{
	events_each_entry_of(fd, forget_entry);
}

void tssx_events_forget_fd(int fd)
{
	struct tssx_fd_slot *slot = tssx_table_slot(fd);

	if (!slot)
		return;
	if (atomic_load_explicit(&slot->epoll_set, memory_order_acquire))
		forget_set(slot, fd);
	if (atomic_load_explicit(&slot->watchers, memory_order_acquire) > 0)
		forget_tracked_fd(fd);
}

void tssx_events_dup_fd(int old_fd, int new_fd)
{
	struct events_set *set = events_set_of(old_fd);
	struct tssx_fd_slot *slot;

	if (likely(!set))
		return;
	/* Without a slot the copy reports the kernel's events only. */
	slot = tssx_table_slot_make(new_fd);
	if (!slot)
		return;
	pthread_mutex_lock(&sets_lock);
	if (events_set_of(old_fd) == set && !atomic_load(&slot->epoll_set)) {
		set->dups++;
		atomic_store_explicit(&slot->epoll_set, set, memory_order_release);
	}
	pthread_mutex_unlock(&sets_lock);
}
