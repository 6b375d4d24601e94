/*
 * select() and pselect(): when a TSSX connection (or an epoll fd holding
 * one) is in the sets, the sets become a poll() call of the poll path; else
 * straight through.  The fd_sets are read as the bitmaps they are, so that
 * sets larger than FD_SETSIZE (allocated by the program) work as in libc.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/select.h>

#include "conn/connection.h"
#include "conn/wait.h"
#include "events/wrappers.h"
#include "real_slots.h"
#include "tssx/macros.h"


#define WORD_BITS (sizeof(unsigned long) * CHAR_BIT)

/* The kernel's select(): what counts as readable, writable, exceptional. */
#define SELECT_IN (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR)
#define SELECT_OUT (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR)
#define SELECT_EX POLLPRI

struct select_sets {
	int nfds;
	unsigned long *bits[3]; /* read, write, except; NULL when absent */
};

static const short select_asked[3] = { POLLIN, POLLOUT, POLLPRI };
static const short select_answer[3] = { SELECT_IN, SELECT_OUT, SELECT_EX };

static bool bit_is_set(const unsigned long *bits, int fd)
{
	return bits && (bits[fd / WORD_BITS] >> (fd % WORD_BITS) & 1);
}

static void bit_set(unsigned long *bits, int fd)
{
	bits[fd / WORD_BITS] |= 1UL << (fd % WORD_BITS);
}

static void sets_clear(struct select_sets *sets)
{
	size_t words = ((size_t)sets->nfds + WORD_BITS - 1) / WORD_BITS;

	for (int s = 0; s < 3; s++)
		for (size_t w = 0; sets->bits[s] && w < words; w++)
			sets->bits[s][w] = 0;
}

static short sets_events(const struct select_sets *sets, int fd)
{
	short events = 0;

	for (int s = 0; s < 3; s++)
		if (bit_is_set(sets->bits[s], fd))
			events |= select_asked[s];
	return events;
}

static bool select_needed(const struct select_sets *sets)
{
	for (int fd = 0; fd < sets->nfds; fd++)
		if (sets_events(sets, fd) && events_poll_needed(fd))
			return true;
	return false;
}

/* The poll() results back into the sets; the count select() returns.
 * The kernel's select() checks the fds as it starts (EBADF) and takes
 * one closed while it sleeps as ready: POLLNVAL is an error only for an
 * fd that was not a connection then (a connection's fd was open). */
static int sets_fill(struct select_sets *sets, struct pollfd *pfds, const bool *was_conn, nfds_t count)
{
	int ready = 0;

	for (nfds_t i = 0; i < count; i++) {
		if (!(pfds[i].revents & POLLNVAL))
			continue;
		if (!was_conn[i]) {
			errno = EBADF;
			return -1;
		}
		pfds[i].revents = POLLIN | POLLOUT; /* the kernel's DEFAULT_POLLMASK */
	}
	sets_clear(sets);
	for (nfds_t i = 0; i < count; i++)
		for (int s = 0; s < 3; s++)
			if ((pfds[i].events & select_asked[s]) && (pfds[i].revents & select_answer[s])) {
				bit_set(sets->bits[s], pfds[i].fd);
				ready++;
			}
	return ready;
}

static int select_via_poll(struct select_sets *sets, const struct tssx_deadline *deadline,
			   const sigset_t *sigmask)
{
	__do_free struct pollfd *pfds = calloc((size_t)sets->nfds, sizeof(*pfds));
	__do_free bool *was_conn = calloc((size_t)sets->nfds, sizeof(*was_conn));
	nfds_t count = 0;
	int ready;

	if (!pfds || !was_conn) {
		errno = ENOMEM;
		return -1;
	}
	for (int fd = 0; fd < sets->nfds; fd++) {
		short events = sets_events(sets, fd);

		if (!events)
			continue;
		was_conn[count] = tssx_conn_lookup(fd);
		pfds[count++] = (struct pollfd){ .fd = fd, .events = events };
	}
	ready = events_poll(pfds, count, deadline, sigmask);
	return ready < 0 ? -1 : sets_fill(sets, pfds, was_conn, count);
}

TSSX_EXPORT int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
		       struct timeval *timeout)
{
	struct select_sets sets = { nfds, { (unsigned long *)readfds, (unsigned long *)writefds,
					    (unsigned long *)exceptfds } };
	struct tssx_deadline deadline;
	struct timespec ts, left;
	int ready;

	if (likely(nfds <= 0 || !select_needed(&sets)))
		return TSSX_REAL(select)(nfds, readfds, writefds, exceptfds, timeout);
	if (timeout) {
		ts = (struct timespec){ timeout->tv_sec, timeout->tv_usec * 1000L };
		if (timeout->tv_usec >= 1000000 || !tssx_timespec_valid(&ts)) {
			errno = EINVAL;
			return -1;
		}
	}
	tssx_deadline_start(&deadline, timeout ? &ts : NULL);
	ready = select_via_poll(&sets, &deadline, NULL);
	/* Linux's select() leaves the time not slept in *timeout. */
	if (timeout && tssx_deadline_left(&deadline, &left))
		*timeout = (struct timeval){ left.tv_sec, left.tv_nsec / 1000 };
	return ready;
}

TSSX_EXPORT int pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
			const struct timespec *timeout, const sigset_t *sigmask)
{
	struct select_sets sets = { nfds, { (unsigned long *)readfds, (unsigned long *)writefds,
					    (unsigned long *)exceptfds } };
	struct tssx_deadline deadline;

	if (likely(nfds <= 0 || !select_needed(&sets)))
		return TSSX_REAL(pselect)(nfds, readfds, writefds, exceptfds, timeout, sigmask);
	if (!tssx_timespec_valid(timeout)) {
		errno = EINVAL;
		return -1;
	}
	tssx_deadline_start(&deadline, timeout);
	return select_via_poll(&sets, &deadline, sigmask);
}
