/*
 * The side locks: exclusion among threads and forked processes, and a
 * holder that died holding the lock is taken over.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tssx/side_lock.h"

#define LOCK_ROUNDS 200000

/* In a shared page of its own, like the locks: forked children count too. */
struct counted {
	struct tssx_side_locks *locks;
	uint64_t *value; /* plain: only the lock protects it */
	int burst;	 /* takes between two yields, 0: never yields */
};

static void *count_under_lock(void *arg)
{
	struct counted *c = arg;

	for (int i = 0; i < LOCK_ROUNDS; i++) {
		tssx_side_lock(&c->locks->producer);
		++*c->value;
		/* Every burst earns the bias again: no backoff.  Written
		 * under the lock, as the lock's own writes of it are. */
		if (c->burst)
			c->locks->producer.backoff = 0;
		tssx_side_unlock(&c->locks->producer);
		if (c->burst && i % c->burst == 0)
			sched_yield();
	}
	return NULL;
}

/* Two threads, this one and a forked child count under the lock, taking
 * turns after `burst` takes each (or as the scheduler has them). */
static void count_in_threads_and_fork(int burst)
{
	struct counted c = { tssx_side_locks_create(), NULL, burst };
	pthread_t t[2];
	pid_t child;
	int status;

	c.value = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_non_null(c.locks);
	assert_true(c.value != MAP_FAILED);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		count_under_lock(&c);
		_exit(0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, count_under_lock, &c), 0);
	count_under_lock(&c);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(*c.value, 4 * LOCK_ROUNDS);
	assert_int_equal(atomic_load(&c.locks->producer.word), 0);
	assert_int_equal(atomic_load(&c.locks->producer.inside), 0);
	munmap(c.value, sizeof(uint64_t));
}

static void test_threads_and_forks(void **state)
{
	(void)state;
	count_in_threads_and_fork(0);
}

/* The lock taken by this thread, by its word, until the thread has its
 * bias; how many takes that needed. */
static unsigned earn_bias(struct tssx_side_lock *lock)
{
	unsigned takes = 0;

	while (atomic_load(&lock->bias) != tssx_side_lock_self()) {
		assert_true(++takes <= TSSX_SIDE_LOCK_BIAS_STREAK << TSSX_SIDE_LOCK_BACKOFF_MAX);
		tssx_side_lock(lock);
		assert_int_equal(atomic_load(&lock->word), tssx_side_lock_self());
		tssx_side_unlock(lock);
	}
	assert_int_equal(tssx_side_bias_allowed, 1); /* membarrier(2) here */
	return takes;
}

/* A forked child takes the lock (through its bias when `biased`) and is
 * killed inside: the next taker takes it over (and the bias back)
 * instead of spinning for good. */
static void take_from_killed_child(struct tssx_side_lock *lock, bool biased)
{
	int ready[2];
	pid_t child;
	char c;

	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if (biased)
			earn_bias(lock);
		tssx_side_lock(lock);
		(void)!write(ready[1], "!", 1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(atomic_load(biased ? &lock->inside : &lock->word) >> 32, (uint64_t)child);
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, NULL, 0), child);
	tssx_side_lock(lock);
	assert_int_equal(atomic_load(&lock->word), tssx_side_lock_self());
	assert_int_equal(atomic_load(&lock->inside), 0);
	assert_int_equal(atomic_load(&lock->bias), 0);
	tssx_side_unlock(lock);
	close(ready[0]);
	close(ready[1]);
}

static void test_dead_holder(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();

	(void)state;
	assert_non_null(locks);
	take_from_killed_child(&locks->consumer, false);
	/* The other word never moved. */
	assert_int_equal(atomic_load(&locks->producer.word), 0);
}

/* Takes of the same lock in bursts long enough to earn the bias, by
 * threads and a forked child: every burst of another taker takes back
 * the bias of the thread that earned it first, and not one increment is
 * lost.  Four times over: without the barrier of a bias taken back, a
 * round loses increments in about half the runs on a 2-CPU machine. */
static void test_bias_threads_and_forks(void **state)
{
	(void)state;
	for (int round = 0; round < 4; round++)
		count_in_threads_and_fork(TSSX_SIDE_LOCK_BIAS_STREAK + 8);
}

/* A thread that took the lock often enough in a row takes it without the
 * word: no locked instruction. */
static void test_bias_earned(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();

	(void)state;
	assert_non_null(locks);
	assert_int_equal(earn_bias(&locks->producer), TSSX_SIDE_LOCK_BIAS_STREAK);
	assert_true(tssx_side_trylock(&locks->producer));
	assert_int_equal(atomic_load(&locks->producer.word), 0);
	assert_int_equal(atomic_load(&locks->producer.inside), tssx_side_lock_self());
	/* A second take by the same thread (a signal handler's) is refused
	 * to the fast path. */
	assert_false(tssx_side_trylock(&locks->producer));
	tssx_side_unlock(&locks->producer);
	assert_int_equal(atomic_load(&locks->producer.inside), 0);
	/* The other lock of the pair was not touched. */
	assert_int_equal(atomic_load(&locks->consumer.bias), 0);
	/* A pair claimed for a new connection starts without a bias. */
	tssx_side_locks_leave(locks);
	assert_true(tssx_side_locks_claim(locks));
	assert_int_equal(atomic_load(&locks->producer.bias), 0);
}

/* A pair that a forked sibling uses too gets no bias (taking it back
 * would cost the sibling a wait for every CPU), until it is ours alone. */
static void test_no_bias_when_shared(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();

	(void)state;
	assert_non_null(locks);
	tssx_side_locks_join(locks);
	for (unsigned i = 0; i < 3 * TSSX_SIDE_LOCK_BIAS_STREAK; i++) {
		tssx_side_lock(&locks->consumer);
		tssx_side_unlock(&locks->consumer);
	}
	assert_int_equal(atomic_load(&locks->consumer.bias), 0);
	tssx_side_locks_leave(locks);
	earn_bias(&locks->consumer);
}

static void *take_often(void *arg)
{
	struct tssx_side_lock *lock = arg;

	for (unsigned i = 0; i < 4 * TSSX_SIDE_LOCK_BIAS_STREAK; i++) {
		tssx_side_lock(lock);
		tssx_side_unlock(lock);
	}
	return NULL;
}

/* Once a bias was taken back, only the thread that earned it may earn it
 * again: another could find the former owner in the middle of a take
 * begun before, writing `inside` under its feet. */
static void test_bias_stays_with_first_earner(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();
	pthread_t thread;

	(void)state;
	assert_non_null(locks);
	earn_bias(&locks->producer);
	assert_int_equal(pthread_create(&thread, NULL, take_often, &locks->producer), 0);
	pthread_join(thread, NULL);
	/* Past the streak it needed (128 after one bias taken back). */
	assert_int_equal(atomic_load(&locks->producer.bias), 0);
	assert_int_equal(earn_bias(&locks->producer), 2 * TSSX_SIDE_LOCK_BIAS_STREAK);
	/* A new connection in the pair: any thread may earn it. */
	tssx_side_locks_leave(locks);
	assert_true(tssx_side_locks_claim(locks));
	assert_int_equal(pthread_create(&thread, NULL, take_often, &locks->producer), 0);
	pthread_join(thread, NULL);
	assert_int_not_equal(atomic_load(&locks->producer.bias), 0);
	assert_int_not_equal(atomic_load(&locks->producer.bias), tssx_side_lock_self());
}

/* Shared with a forked child: whether the other taker got in. */
static _Atomic int *shared_flag(void)
{
	_Atomic int *flag = mmap(NULL, sizeof(*flag), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(flag != MAP_FAILED);
	atomic_store(flag, 0);
	return flag;
}

struct taker {
	struct tssx_side_lock *lock;
	_Atomic int *in;
};

static void *take_once(void *arg)
{
	struct taker *t = arg;

	tssx_side_lock(t->lock);
	atomic_store(t->in, 1);
	tssx_side_unlock(t->lock);
	return NULL;
}

/* The owner inside through its bias: another taker, a thread and then a
 * forked child, waits until the owner is out, and takes the bias back;
 * each bias taken back doubles the takes that earn the next. */
static void test_bias_excludes_others(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();
	struct timespec wait = { .tv_nsec = 100000000 };
	struct taker t = { NULL, shared_flag() };
	pthread_t thread;
	pid_t child;
	int status;

	(void)state;
	assert_non_null(locks);
	t.lock = &locks->consumer;
	assert_int_equal(earn_bias(t.lock), TSSX_SIDE_LOCK_BIAS_STREAK);
	tssx_side_lock(t.lock);
	assert_int_equal(atomic_load(&t.lock->inside), tssx_side_lock_self());
	assert_int_equal(pthread_create(&thread, NULL, take_once, &t), 0);
	nanosleep(&wait, NULL);
	assert_int_equal(atomic_load(t.in), 0);
	tssx_side_unlock(t.lock);
	pthread_join(thread, NULL);
	assert_int_equal(atomic_load(t.in), 1);
	assert_int_equal(atomic_load(&t.lock->bias), 0);

	atomic_store(t.in, 0);
	assert_int_equal(earn_bias(t.lock), 2 * TSSX_SIDE_LOCK_BIAS_STREAK);
	tssx_side_lock(t.lock);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		take_once(&t);
		_exit(0);
	}
	nanosleep(&wait, NULL);
	assert_int_equal(atomic_load(t.in), 0);
	tssx_side_unlock(t.lock);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(atomic_load(t.in), 1);
	assert_int_equal(atomic_load(&t.lock->bias), 0);
	assert_int_equal(atomic_load(&t.lock->word), 0);
	assert_int_equal(earn_bias(t.lock), 4 * TSSX_SIDE_LOCK_BIAS_STREAK);
	munmap(t.in, sizeof(*t.in));
}

static void test_dead_biased_holder(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();

	(void)state;
	assert_non_null(locks);
	take_from_killed_child(&locks->producer, true);
}

/* A forked child is not its parent's thread. */
static void test_self_after_fork(void **state)
{
	uint64_t parent = tssx_side_lock_self();
	int pipefd[2];
	uint64_t child_self;
	pid_t child;

	(void)state;
	assert_int_equal(parent >> 32, (uint64_t)getpid());
	assert_int_equal(pipe(pipefd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		uint64_t self = tssx_side_lock_self();

		(void)!write(pipefd[1], &self, sizeof(self));
		_exit(0);
	}
	assert_int_equal(read(pipefd[0], &child_self, sizeof(child_self)), sizeof(child_self));
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_int_equal(child_self >> 32, (uint64_t)child);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* A pair is claimed for another connection only once no process uses it. */
static void test_users(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();

	(void)state;
	assert_non_null(locks);
	assert_int_equal(atomic_load(&locks->users), 1);
	assert_false(tssx_side_locks_claim(locks));
	tssx_side_locks_join(locks); /* a fork()ed child */
	tssx_side_locks_leave(locks); /* the parent's connection ended */
	assert_false(tssx_side_locks_claim(locks));
	tssx_side_locks_leave(locks); /* the child's too */
	assert_true(tssx_side_locks_claim(locks));
	assert_int_equal(atomic_load(&locks->users), 1);
	assert_false(tssx_side_locks_claim(locks));
}

/* Waiting for this process's holders ignores another process's. */
static void test_wait_own(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create();

	(void)state;
	assert_non_null(locks);
	atomic_store(&locks->producer.word, (uint64_t)(uint32_t)(getpid() + 1) << 32 | 7);
	atomic_store(&locks->producer.inside, (uint64_t)(uint32_t)(getpid() + 1) << 32 | 8);
	tssx_side_lock_wait_own(&locks->producer); /* returns at once */
	atomic_store(&locks->producer.word, 0);
	atomic_store(&locks->producer.inside, 0);
	tssx_side_lock_wait_own(&locks->producer);
}

/* The arena a pair lives in, as an exec hands it on: its fd and index. */
static void test_where_and_renumber(void **state)
{
	struct tssx_side_locks *first = tssx_side_locks_create(), *second = tssx_side_locks_create();
	unsigned index, index2;
	int fd, moved;

	(void)state;
	assert_non_null(first);
	assert_non_null(second);
	fd = tssx_side_locks_where(first, &index);
	assert_true(fd >= 0);
	assert_int_equal(tssx_side_locks_where(second, &index2), fd);
	assert_int_equal(index2, index + 1);
	/* Not a pair of any arena. */
	assert_int_equal(tssx_side_locks_where((struct tssx_side_locks *)&index, &index2), -1);
	moved = dup(fd);
	assert_true(moved >= 0);
	tssx_side_locks_renumber(fd, moved);
	assert_int_equal(tssx_side_locks_where(first, &index2), moved);
	tssx_side_locks_renumber(moved, fd);
	close(moved);
}

/* What an exec'd image does with the arena fd and index it was handed:
 * through a mapping of its own (a dup of the fd here), the same words. */
static void test_adopt(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create(), *adopted = NULL, *again = NULL;
	unsigned index;
	int fd, copy;

	(void)state;
	assert_non_null(locks);
	fd = tssx_side_locks_where(locks, &index);
	copy = dup(fd);
	assert_true(copy >= 0);
	assert_int_equal(tssx_side_locks_adopt(copy, index, &adopted), 0);
	assert_ptr_not_equal(adopted, locks);
	tssx_side_lock(&adopted->producer);
	assert_int_equal(atomic_load(&locks->producer.word), tssx_side_lock_self());
	tssx_side_unlock(&adopted->producer);
	assert_int_equal(atomic_load(&locks->producer.word), 0);
	/* One mapping per fd: a second pair of the same arena comes from it. */
	assert_int_equal(tssx_side_locks_adopt(copy, index, &again), 0);
	assert_ptr_equal(again, adopted);
	/* Index of a pair past the arena. */
	assert_int_equal(tssx_side_locks_adopt(copy, TSSX_SIDE_LOCKS_PER_ARENA, &again), -ERANGE);
}

/* Words a thread of the old image left (same pid after an exec) are
 * freed; another process's holder is kept. */
static void test_adopt_frees_stale(void **state)
{
	struct tssx_side_locks *locks = tssx_side_locks_create(), *adopted = NULL;
	uint64_t ours = (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)getpid();
	uint64_t other = (uint64_t)(uint32_t)(getpid() + 1) << 32 | 5;
	unsigned index;
	int copy;

	(void)state;
	assert_non_null(locks);
	copy = dup(tssx_side_locks_where(locks, &index));
	atomic_store(&locks->producer.word, ours);
	atomic_store(&locks->producer.inside, ours);
	atomic_store(&locks->producer.bias, ours);
	atomic_store(&locks->consumer.word, other);
	atomic_store(&locks->consumer.bias, other);
	assert_int_equal(tssx_side_locks_adopt(copy, index, &adopted), 0);
	assert_int_equal(atomic_load(&locks->producer.word), 0);
	assert_int_equal(atomic_load(&locks->producer.inside), 0);
	assert_int_equal(atomic_load(&locks->producer.bias), 0); /* this image is not registered yet */
	assert_int_equal(atomic_load(&locks->consumer.word), other);
	assert_int_equal(atomic_load(&locks->consumer.bias), other);
	atomic_store(&locks->consumer.word, 0);
	atomic_store(&locks->consumer.bias, 0);
}

/* Anything but a sealed arena of the exact size is refused. */
static void test_adopt_refuses(void **state)
{
	struct tssx_side_locks *locks = NULL;
	int pipefd[2], unsealed, sealed_short;

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(tssx_side_locks_adopt(pipefd[0], 0, &locks), -EPERM);
	unsealed = memfd_create(TSSX_SIDE_LOCKS_MEMFD_NAME, MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(unsealed, TSSX_SIDE_LOCKS_ARENA_BYTES), 0);
	assert_int_equal(tssx_side_locks_adopt(unsealed, 0, &locks), -EPERM);
	sealed_short = memfd_create(TSSX_SIDE_LOCKS_MEMFD_NAME, MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(sealed_short, 4096), 0);
	assert_int_equal(fcntl(sealed_short, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	assert_int_equal(tssx_side_locks_adopt(sealed_short, 0, &locks), -EINVAL);
	assert_int_equal(tssx_side_locks_adopt(-1, 0, &locks), -EPERM);
	assert_null(locks);
	close(pipefd[0]);
	close(pipefd[1]);
	close(unsealed);
	close(sealed_short);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_and_forks),
		cmocka_unit_test(test_dead_holder),
		cmocka_unit_test(test_bias_threads_and_forks),
		cmocka_unit_test(test_bias_earned),
		cmocka_unit_test(test_no_bias_when_shared),
		cmocka_unit_test(test_bias_stays_with_first_earner),
		cmocka_unit_test(test_bias_excludes_others),
		cmocka_unit_test(test_dead_biased_holder),
		cmocka_unit_test(test_self_after_fork),
		cmocka_unit_test(test_users),
		cmocka_unit_test(test_wait_own),
		cmocka_unit_test(test_where_and_renumber),
		cmocka_unit_test(test_adopt),
		cmocka_unit_test(test_adopt_frees_stale),
		cmocka_unit_test(test_adopt_refuses),
	};

	tssx_side_bias_prepare(); /* as a connection's setup does */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
