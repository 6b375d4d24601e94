/*
 * poll() and ppoll() over sets that mix TSSX connections with ordinary fds.
 *
 * A TSSX connection's data moves in shared memory, so the kernel cannot say
 * when it is ready; its real socket carries only doorbells.  So: compute the
 * connections' readiness from the rings; if one is ready (or the timeout is
 * zero), merge it with a zero-timeout real poll of everything else.
 * Otherwise spin on the rings for the spin budget (a peer that answers
 * within it needs no doorbell), looking at the other fds with zero-timeout
 * real polls meanwhile; then arm the connections (the peer then rings),
 * re-check, and sleep in
 * the real poll with each connection's real socket watched for POLLIN; when
 * it wakes, drain the doorbells, recompute, and sleep again for the time
 * left if nothing is really ready.  No helper thread, no signal.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "conn/stream.h"
#include "conn/wait.h"
#include "events/wrappers.h"
#include "real_slots.h"
#include "tssx/macros.h"


/* glibc's, for the fortified entry points below. */
extern void __chk_fail(void) __attribute__((noreturn));
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout_ms, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		const sigset_t *sigmask, size_t fdslen);

enum poll_kind {
	POLL_PLAIN,
	POLL_CONN,	/* readiness from the rings */
	POLL_SET,	/* an epoll fd: the kernel's readiness or its connections' */
};

#define POLL_STACK_ITEMS 64

struct poll_call {
	struct pollfd *fds;	/* the application's */
	struct pollfd *kfds;	/* what the kernel watches */
	unsigned char *kinds;
	/* POLL_CONN's connections, held for the call (tssx_conn_hold()):
	 * another thread may close their fds meanwhile. */
	struct tssx_conn **conns;
	/* Whether the call holds the bell of POLL_CONN's connection
	 * (tssx_conn_arm()), until it returns: its flags are lowered then,
	 * whatever became of the fd meanwhile. */
	bool *held;
	nfds_t nfds;
	bool kernel_fds;	/* fds that only the kernel can report */
	bool recheck;		/* a connection a doorbell may not wake (tssx_conn_arm()) */
	const sigset_t *sigmask;
	struct tssx_deadline deadline;
};

#define POLL_IN_BITS (POLLIN | POLLRDNORM)
#define POLL_OUT_BITS (POLLOUT | POLLWRNORM)

uint32_t events_conn_ready(struct tssx_conn *conn, uint32_t events)
{
	uint32_t asked = events | POLLHUP | POLLERR;
	uint32_t ready;

	if (events & POLL_IN_BITS)
		events |= POLL_IN_BITS;
	if (events & POLL_OUT_BITS)
		events |= POLL_OUT_BITS;
	ready = tssx_conn_ready(conn, events);
	if (ready & POLL_IN_BITS)
		ready |= POLL_IN_BITS;
	if (ready & POLL_OUT_BITS)
		ready |= POLL_OUT_BITS;
	return ready & asked;
}

bool events_spin_start(struct tssx_spin *spin, uint64_t look_every_ns, const struct tssx_deadline *deadline,
		       struct tssx_conn *only)
{
	if (only && atomic_load(&only->state) == TSSX_CONN_READY)
		return tssx_spin_start_peer(spin, look_every_ns, deadline, tssx_ring_waiter_cpu(only->rx),
					    tssx_ring_waiter_cpu(only->tx));
	return tssx_spin_start(spin, look_every_ns, deadline);
}

const struct tssx_deadline *events_sleep_until(const struct tssx_deadline *deadline, bool recheck,
					       struct tssx_deadline *buf)
{
	if (!recheck)
		return deadline;
	tssx_deadline_start_ms(buf, TSSX_SHARED_WAIT_MS);
	return buf->at_ns < deadline->at_ns ? buf : deadline;
}

bool events_poll_needed(int fd)
{
	struct events_set *set;

	if (fd < 0)
		return false;
	if (tssx_conn_lookup(fd))
		return true;
	set = events_set_of(fd);
	return set && atomic_load_explicit(&set->count, memory_order_relaxed) > 0;
}

static bool poll_needed(const struct pollfd *fds, nfds_t nfds)
{
	for (nfds_t i = 0; i < nfds; i++)
		if (events_poll_needed(fds[i].fd))
			return true;
	return false;
}

/* Entry i as the kernel sees it: a connection (held), an epoll fd that
 * tracks some, or a plain fd. */
static void poll_classify(struct poll_call *call, nfds_t i)
{
	int fd = call->fds[i].fd;
	struct events_set *set;

	call->conns[i] = fd < 0 ? NULL : tssx_conn_hold(fd);
	call->kfds[i] = call->fds[i];
	if (call->conns[i]) {
		call->kinds[i] = POLL_CONN;
		/* The real socket carries doorbells, and reports EOF and errors. */
		call->kfds[i].events = POLLIN | POLLRDHUP;
		return;
	}
	set = fd >= 0 ? events_set_of(fd) : NULL;
	call->kinds[i] = set ? POLL_SET : POLL_PLAIN;
	if (set)
		events_set_nest(set);
	if (fd >= 0)
		call->kernel_fds = true;
}

/*
 * The held connection of entry i while its fd still refers to it.  Once
 * another thread closed or replaced the fd, the kernel answers for the
 * number, as for a plain fd: POLLNVAL when closed, the new file's
 * readiness otherwise; the kernel's poll looks at the fd again too when
 * the old socket wakes it.
 */
static struct tssx_conn *poll_conn(struct poll_call *call, nfds_t i)
{
	if (call->kinds[i] != POLL_CONN)
		return NULL;
	if (likely(tssx_conn_owns_fd(call->conns[i], call->fds[i].fd)))
		return call->conns[i];
	call->kinds[i] = POLL_PLAIN;
	call->kfds[i].events = call->fds[i].events;
	call->kfds[i].revents = 0; /* the old socket's doorbells */
	call->kernel_fds = true;
	return NULL;
}

/* The readiness of the connections and sets alone; 0 for plain fds. */
static int poll_soft_ready(struct poll_call *call)
{
	int ready = 0;

	for (nfds_t i = 0; i < call->nfds; i++) {
		struct pollfd *pfd = &call->fds[i];
		struct tssx_conn *conn;
		struct events_set *set;
		uint64_t generation;

		pfd->revents = 0;
		if ((conn = poll_conn(call, i)))
			pfd->revents = (short)events_conn_ready(conn, (uint16_t)pfd->events);
		else if (call->kinds[i] == POLL_SET && (set = events_set_of(pfd->fd)))
			pfd->revents = (short)(events_set_probe(set, &generation) & (uint16_t)pfd->events);
		ready += pfd->revents != 0;
	}
	return ready;
}

static void poll_arm(struct poll_call *call)
{
	call->recheck = false;
	for (nfds_t i = 0; i < call->nfds; i++) {
		struct tssx_conn *conn;
		struct events_set *set;

		if ((conn = poll_conn(call, i))) {
			enum tssx_arm arm = tssx_conn_arm(conn, (uint16_t)call->fds[i].events, TSSX_BELL_SOCKET,
							  &call->held[i]);

			/* A socket that reads EOF for good would not let the
			 * kernel's poll sleep: HUP only. */
			if (arm == TSSX_ARM_NO_DOORBELL)
				call->kfds[i].events = 0;
			call->recheck |= arm != TSSX_ARM_DOORBELL;
		} else if (call->kinds[i] == POLL_SET && (set = events_set_of(call->fds[i].fd))) {
			call->recheck |= events_set_arm(set);
		}
	}
}

/* After the real poll: doorbells drained, the kernel's word for plain fds,
 * the rings' for connections, both for epoll fds. */
static int poll_merge(struct poll_call *call, int *from_rings)
{
	int ready = 0;

	for (nfds_t i = 0; i < call->nfds; i++) {
		struct tssx_conn *conn;

		if ((conn = poll_conn(call, i)) && call->kfds[i].revents)
			tssx_conn_drain(conn, (uint16_t)call->kfds[i].revents);
	}
	*from_rings = poll_soft_ready(call);
	for (nfds_t i = 0; i < call->nfds; i++) {
		if (call->kinds[i] != POLL_CONN)
			call->fds[i].revents |= call->kfds[i].revents;
		ready += call->fds[i].revents != 0;
	}
	return ready;
}

/* The call's one connection, or NULL when it watches several (an epoll fd
 * that tracks some counts as several) or none. */
static struct tssx_conn *poll_only_conn(struct poll_call *call)
{
	struct tssx_conn *only = NULL;

	for (nfds_t i = 0; i < call->nfds; i++) {
		struct tssx_conn *conn = poll_conn(call, i);

		if ((conn && only) || (!conn && call->kinds[i] == POLL_SET))
			return NULL;
		if (conn)
			only = conn;
	}
	return only;
}

/* Spins on the rings until one is ready, the kernel's fds are due for a
 * look, or the spin is over. */
static int poll_spin(struct poll_call *call, struct tssx_spin *spin)
{
	int ready = 0;

	while (!ready && tssx_spin_pause(spin))
		ready = poll_soft_ready(call);
	return ready;
}

static int poll_loop(struct poll_call *call)
{
	static const struct timespec zero;
	struct tssx_spin spin = { .over = true };
	struct tssx_deadline recheck;
	bool first = true;
	int from_rings;

	for (;;) {
		bool passed = tssx_deadline_passed(&call->deadline);
		struct timespec left_buf;
		const struct timespec *left = &zero;
		int ready = poll_soft_ready(call);

		if (!ready && !passed && first)
			events_spin_start(&spin, call->kernel_fds ? EVENTS_LOOK_EVERY_NS : 0, &call->deadline,
					  poll_only_conn(call));
		first = false;
		if (!ready && !passed && !spin.over)
			ready = poll_spin(call, &spin);
		/* Arm, then re-check: from here on a change rings a doorbell. */
		if (!ready && !passed && spin.over) {
			poll_arm(call);
			ready = poll_soft_ready(call);
		}
		/* Sleep only once the spin is over; a look is zero-timeout.
		 * A handler that ran meanwhile ends the call, as it ends the
		 * kernel's poll (never restarted). */
		if (!ready && !passed && spin.over) {
			if (tssx_deadline_interrupted(&call->deadline)) {
				errno = EINTR;
				return -1;
			}
			left = tssx_deadline_left(events_sleep_until(&call->deadline, call->recheck, &recheck),
						  &left_buf);
		}
		if (TSSX_REAL(ppoll)(call->kfds, call->nfds, left, call->sigmask) < 0)
			ready = -1;
		else
			ready = poll_merge(call, &from_rings);
		if (ready != 0 || tssx_deadline_passed(&call->deadline)) {
			if (ready > 0 && !from_rings)
				tssx_spin_stop_plain(&spin);
			else
				tssx_spin_stop(&spin);
			return ready;
		}
	}
}

int events_poll(struct pollfd *fds, nfds_t nfds, const struct tssx_deadline *deadline,
		const sigset_t *sigmask)
{
	struct pollfd stack_kfds[POLL_STACK_ITEMS];
	unsigned char stack_kinds[POLL_STACK_ITEMS];
	struct tssx_conn *stack_conns[POLL_STACK_ITEMS];
	bool stack_held[POLL_STACK_ITEMS] = { false };
	__do_free struct pollfd *heap_kfds = NULL;
	__do_free unsigned char *heap_kinds = NULL;
	__do_free struct tssx_conn **heap_conns = NULL;
	__do_free bool *heap_held = NULL;
	struct poll_call call = { .fds = fds, .nfds = nfds, .sigmask = sigmask, .deadline = *deadline,
				  .kfds = stack_kfds, .kinds = stack_kinds, .conns = stack_conns, .held = stack_held };
	int saved_errno = errno;
	int ready;

	if (nfds > POLL_STACK_ITEMS) {
		call.kfds = heap_kfds = calloc(nfds, sizeof(*heap_kfds));
		call.kinds = heap_kinds = calloc(nfds, sizeof(*heap_kinds));
		call.conns = heap_conns = calloc(nfds, sizeof(*heap_conns));
		call.held = heap_held = calloc(nfds, sizeof(*heap_held));
		if (!heap_kfds || !heap_kinds || !heap_conns || !heap_held) {
			errno = ENOMEM;
			return -1;
		}
	}
	for (nfds_t i = 0; i < nfds; i++)
		poll_classify(&call, i);
	ready = poll_loop(&call);
	if (ready < 0)
		saved_errno = errno; /* the call's error, kept past the releases */
	for (nfds_t i = 0; i < nfds; i++) {
		if (call.held[i])
			tssx_conn_disarm(call.conns[i], (uint16_t)fds[i].events, TSSX_BELL_SOCKET);
		if (call.conns[i])
			tssx_conn_release(call.conns[i], fds[i].fd);
	}
	errno = saved_errno;
	return ready;
}

TSSX_EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
	struct tssx_deadline deadline;

	if (likely(!poll_needed(fds, nfds)))
		return TSSX_REAL(poll)(fds, nfds, timeout_ms);
	tssx_deadline_start_ms(&deadline, timeout_ms);
	return events_poll(fds, nfds, &deadline, NULL);
}

TSSX_EXPORT int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		      const sigset_t *sigmask)
{
	struct tssx_deadline deadline;

	if (likely(!poll_needed(fds, nfds)))
		return TSSX_REAL(ppoll)(fds, nfds, timeout, sigmask);
	if (!tssx_timespec_valid(timeout)) {
		errno = EINVAL;
		return -1;
	}
	tssx_deadline_start(&deadline, timeout);
	return events_poll(fds, nfds, &deadline, sigmask);
}

/* The fortified versions (-D_FORTIFY_SOURCE) that glibc programs link call
 * glibc's internal poll, which would bypass the wrappers above. */
TSSX_EXPORT int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout_ms, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < nfds)
		__chk_fail();
	return poll(fds, nfds, timeout_ms);
}

TSSX_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
			    const sigset_t *sigmask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < nfds)
		__chk_fail();
	return ppoll(fds, nfds, timeout, sigmask);
}
