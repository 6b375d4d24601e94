/*
 * The side locks (side_lock.h).
 *
 * Fast path: for the thread the lock is biased to, a store, a load and a
 * store, no locked instruction; for others one compare-and-swap to take,
 * one release store to give back.  Slow path: spin with the CPU's pause
 * hint, yield so that a holder preempted on this CPU can finish, and now
 * and then ask the kernel whether the holder still exists; then take a
 * bias held by another thread back.  The pairs live in arenas: sealed
 * memfds, so that an exec'd image can map the same pairs again.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tssx/log.h"
#include "tssx/side_lock.h"
#include "tssx/macros.h"

/* Spins before yielding the CPU to the holder. */
#define LOCK_SPINS 256
/* Yields between two checks whether the holder is alive. */
#define YIELDS_PER_CHECK 64
/* Where membarrier(2) is refused to a taker whose owner could register
 * (a seccomp filter of its own): how long it waits, after the owner's
 * `inside` reads 0, for a store of it still in the owner's store buffer. */
#define UNFENCED_WAIT_NS 1000000L
/* Seals an arena must carry: its size is fixed, so no access to the
 * mapping can fault (SIGBUS), whoever holds the fd. */
#define ARENA_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

__thread __attribute__((tls_model("initial-exec"))) uint64_t tssx_side_lock_self_id = TSSX_SIDE_LOCK_NO_ID;
_Atomic int tssx_side_bias_allowed;

/* An arena this process maps: made here, inherited over fork() (the same
 * mapping and fd number), or adopted after an exec.  Never unmapped or
 * freed: the connections that use its pairs are reused, not freed
 * (preload/conn/connection.c).  Pushed on a list that is only read
 * without the lock (tssx_side_locks_where() runs in vfork() children). */
struct arena {
	struct tssx_side_locks *pairs;
	_Atomic int fd;
	struct arena *next;
};

static struct arena *_Atomic arenas;
/* The arena that new pairs are handed out from, and how many it handed
 * out: one this process made (a fork()ed child or an exec'd image makes
 * its own, which the other processes of the family never hand out). */
static pthread_mutex_t arena_lock TSSX_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
static struct arena *current TSSX_FORK_DATA;
static unsigned current_used;

/* fork() copies the forking thread's cached id: the child is another
 * process and must not pass for its parent's thread.  It also shares the
 * parent's arenas: its new connections take pairs from an arena of its
 * own, which the parent cannot hand out too. */
TSSX_FORK_HANDLER static void forget_parent_in_child(void)
{
	tssx_side_lock_self_id = TSSX_SIDE_LOCK_NO_ID;
	pthread_mutex_init(&arena_lock, NULL);
	current = NULL;
}

__attribute__((constructor)) static void side_lock_init(void)
{
	pthread_atfork(NULL, NULL, forget_parent_in_child);
}

uint64_t tssx_side_lock_self_slow(void)
{
	tssx_side_lock_self_id = (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)gettid();
	return tssx_side_lock_self_id;
}

/* Maps the arena on fd and lists it; NULL with errno set. */
static struct arena *arena_map(int fd)
{
	struct arena *arena = malloc(sizeof(*arena));
	void *region;

	if (!arena)
		return NULL;
	region = mmap(NULL, TSSX_SIDE_LOCKS_ARENA_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (region == MAP_FAILED) {
		free(arena);
		return NULL;
	}
	arena->pairs = region;
	atomic_init(&arena->fd, fd);
	arena->next = atomic_load_explicit(&arenas, memory_order_relaxed);
	/* Release pairs with the acquire in find_arena(): a reader that sees
	 * the node sees it filled in.  Pushed under arena_lock. */
	atomic_store_explicit(&arenas, arena, memory_order_release);
	return arena;
}

/* A new arena: a sealed memfd of its exact size, zero-filled (every lock
 * free), mapped shared.  The core closes the fd itself only when making
 * it failed (nobody else knows it then). */
static struct arena *arena_make(void)
{
	int fd = memfd_create(TSSX_SIDE_LOCKS_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING), saved_errno;
	struct arena *arena = NULL;

	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)TSSX_SIDE_LOCKS_ARENA_BYTES) == 0 &&
	    fcntl(fd, F_ADD_SEALS, ARENA_SEALS | F_SEAL_SEAL) == 0)
		arena = arena_map(fd);
	if (!arena) {
		saved_errno = errno;
		close(fd);
		errno = saved_errno;
	}
	return arena;
}

struct tssx_side_locks *tssx_side_locks_create(void)
{
	struct tssx_side_locks *locks = NULL;

	pthread_mutex_lock(&arena_lock);
	if (!current || current_used == TSSX_SIDE_LOCKS_PER_ARENA) {
		struct arena *made = arena_make();

		if (made) {
			current = made;
			current_used = 0;
		}
	}
	if (current && current_used < TSSX_SIDE_LOCKS_PER_ARENA) {
		locks = &current->pairs[current_used++];
		atomic_store(&locks->users, 1);
	}
	pthread_mutex_unlock(&arena_lock);
	return locks;
}

/* The listed arena that holds locks, or the one mapped from fd (locks
 * NULL); NULL if none.  Lock-free. */
static struct arena *find_arena(const struct tssx_side_locks *locks, int fd)
{
	/* Acquire pairs with the release in arena_map(). */
	for (struct arena *a = atomic_load_explicit(&arenas, memory_order_acquire); a; a = a->next) {
		if (locks ? locks >= a->pairs && locks < a->pairs + TSSX_SIDE_LOCKS_PER_ARENA
			  : atomic_load(&a->fd) == fd)
			return a;
	}
	return NULL;
}

int tssx_side_locks_where(const struct tssx_side_locks *locks, unsigned *index)
{
	struct arena *arena = find_arena(locks, -1);

	if (!arena)
		return -1;
	*index = (unsigned)(locks - arena->pairs);
	return atomic_load(&arena->fd);
}

void tssx_side_locks_renumber(int old_fd, int new_fd)
{
	struct arena *arena = find_arena(NULL, old_fd);

	if (arena)
		atomic_store(&arena->fd, new_fd);
}

/* A word the old image left: its threads are gone with the exec. */
static void free_if_ours(_Atomic uint64_t *word, uint32_t pid)
{
	uint64_t holder = atomic_load(word);

	if (holder && (uint32_t)(holder >> 32) == pid)
		atomic_compare_exchange_strong(word, &holder, 0);
}

/* What the old image held of the lock, its take and its bias: the new
 * image is not registered for membarrier() yet, so no bias may name it;
 * and the old image's threads are gone, so none is in the middle of a
 * take (the new image's threads may earn the bias). */
static void free_lock_if_ours(struct tssx_side_lock *lock, uint32_t pid)
{
	free_if_ours(&lock->word, pid);
	free_if_ours(&lock->inside, pid);
	free_if_ours(&lock->bias, pid);
	if ((uint32_t)(lock->earned_by >> 32) == pid)
		lock->earned_by = 0;
}

int tssx_side_locks_adopt(int fd, unsigned index, struct tssx_side_locks **locks)
{
	struct arena *arena;
	struct stat st;
	int seals;

	if (index >= TSSX_SIDE_LOCKS_PER_ARENA)
		return -ERANGE;
	pthread_mutex_lock(&arena_lock);
	arena = find_arena(NULL, fd);
	if (!arena) {
		seals = fcntl(fd, F_GET_SEALS);
		if (seals < 0 || (seals & ARENA_SEALS) != ARENA_SEALS) {
			pthread_mutex_unlock(&arena_lock);
			return -EPERM;
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != TSSX_SIDE_LOCKS_ARENA_BYTES) {
			pthread_mutex_unlock(&arena_lock);
			return -EINVAL;
		}
		arena = arena_map(fd);
	}
	pthread_mutex_unlock(&arena_lock);
	if (!arena)
		return -errno;
	*locks = &arena->pairs[index];
	free_lock_if_ours(&(*locks)->producer, (uint32_t)getpid());
	free_lock_if_ours(&(*locks)->consumer, (uint32_t)getpid());
	return 0;
}

static bool names_process(uint64_t word, uint32_t pid)
{
	return word && (uint32_t)(word >> 32) == pid;
}

void tssx_side_lock_wait_own(struct tssx_side_lock *lock)
{
	uint32_t me = (uint32_t)(tssx_side_lock_self() >> 32);

	/* Acquire pairs with the release in tssx_side_unlock() of our
	 * holder, directly or through the release sequence that a sibling's
	 * take (a read-modify-write) continues. */
	while (names_process(atomic_load_explicit(&lock->word, memory_order_acquire), me) ||
	       names_process(atomic_load_explicit(&lock->inside, memory_order_acquire), me))
		sched_yield();
}

/* The holder's thread is gone: killed, or its process exited. */
static bool holder_dead(uint64_t holder)
{
	return syscall(SYS_tgkill, (pid_t)(holder >> 32), (pid_t)(uint32_t)holder, 0) < 0 && errno == ESRCH;
}

/* Acquire as in tssx_side_lock(); taking a dead holder's word over is the
 * same exchange from its id instead of 0. */
static bool take(_Atomic uint64_t *word, uint64_t holder, uint64_t self)
{
	return atomic_compare_exchange_strong_explicit(word, &holder, self, memory_order_acquire,
						       memory_order_relaxed);
}

/* Waits with the CPU's pause hint, then yields, until the word is free
 * and taken (or, with self 0, only free); a holder found dead is taken
 * over (or cleared). */
static void wait_free(_Atomic uint64_t *word, uint64_t self)
{
	unsigned spins = 0, yields = 0;

	for (;;) {
		uint64_t holder = atomic_load_explicit(word, memory_order_acquire);

		if (holder == 0 && (!self || take(word, 0, self)))
			return;
		if (++spins < LOCK_SPINS) {
			tssx_cpu_relax();
			continue;
		}
		spins = 0;
		sched_yield();
		if (++yields % YIELDS_PER_CHECK == 0 && holder && holder_dead(holder) && take(word, holder, self))
			return;
	}
}

/* The pair a lock belongs to: an arena is mapped at a page boundary and
 * holds its pairs back to back, so a pair starts at a multiple of its
 * size (a power of two). */
static struct tssx_side_locks *pair_of(struct tssx_side_lock *lock)
{
	_Static_assert(sizeof(struct tssx_side_locks) == 2 * TSSX_CACHELINE, "a pair is two lines");
	return (struct tssx_side_locks *)((uintptr_t)lock & ~(uintptr_t)(sizeof(struct tssx_side_locks) - 1));
}

void tssx_side_bias_prepare(void)
{
	int saved_errno = errno;

	if (atomic_load_explicit(&tssx_side_bias_allowed, memory_order_relaxed))
		return;
	atomic_store_explicit(&tssx_side_bias_allowed,
			      syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1 : -1,
			      memory_order_relaxed);
	errno = saved_errno;
}

/* The streak of takes is long enough (word held): the bias, when the
 * process may hold one and no other process uses the pair.  Held
 * before by another thread: that thread may still be in the middle of
 * a take that loaded the bias before it was taken back, and would write
 * `inside` under the new owner's feet. */
static void bias_earned(struct tssx_side_lock *lock, uint64_t self)
{
	lock->streak = 0;
	if (atomic_load_explicit(&tssx_side_bias_allowed, memory_order_relaxed) <= 0 ||
	    atomic_load_explicit(&pair_of(lock)->users, memory_order_relaxed) != 1 ||
	    (lock->earned_by && lock->earned_by != self))
		return;
	lock->earned_by = self;
	atomic_store_explicit(&lock->bias, self, memory_order_relaxed);
}

/* A memory barrier on every CPU that runs a thread of the owner's
 * process: ours (registered, tssx_side_bias_prepare()) or a forked
 * sibling's that took the bias before the fork. */
static void fence_owner(uint64_t owner, uint64_t self, _Atomic uint64_t *inside)
{
	static bool warned;
	struct timespec wait = { .tv_nsec = UNFENCED_WAIT_NS };
	int cmd = owner >> 32 == self >> 32 ? MEMBARRIER_CMD_PRIVATE_EXPEDITED : MEMBARRIER_CMD_GLOBAL;

	if (syscall(SYS_membarrier, cmd, 0, 0) == 0)
		return;
	/* Refused (MEMBARRIER_CMD_GLOBAL on nohz_full CPUs, a seccomp
	 * filter of a sibling's own): the owner's store of `inside` may
	 * still be in its CPU's store buffer; once `inside` reads 0, a pause
	 * far longer than any store buffer holds a store, then the caller
	 * reads it again. */
	if (!warned) {
		warned = true;
		tssx_log(TSSX_LOG_WARN, "side lock: membarrier refused (%m): a bias is taken back by waiting");
	}
	atomic_thread_fence(memory_order_seq_cst);
	wait_free(inside, 0);
	nanosleep(&wait, NULL);
}

/* Takes the bias back from its owner (word held): cleared, then the
 * owner's CPUs' barrier (the owner's store of `inside` is seen, or the
 * owner sees the bias gone), then until the owner is out. */
static void take_bias_back(struct tssx_side_lock *lock, uint64_t self)
{
	uint64_t owner = atomic_load_explicit(&lock->bias, memory_order_relaxed);

	atomic_store_explicit(&lock->bias, 0, memory_order_relaxed);
	fence_owner(owner, self, &lock->inside);
	/* Acquire (in wait_free) pairs with the release of the owner's
	 * tssx_side_unlock(): its accesses are seen. */
	wait_free(&lock->inside, 0);
	lock->streak = 0;
	if (lock->backoff < TSSX_SIDE_LOCK_BACKOFF_MAX)
		lock->backoff++;
}

void tssx_side_lock_slow(struct tssx_side_lock *lock, uint64_t self)
{
	int saved_errno = errno;

	wait_free(&lock->word, self);
	if (atomic_load_explicit(&lock->bias, memory_order_relaxed))
		take_bias_back(lock, self);
	/* Counted again if the fast path gave the take up at the streak's
	 * end: the streak only grows past it. */
	if (!tssx_side_count_take(lock, self))
		bias_earned(lock, self);
	errno = saved_errno;
}
