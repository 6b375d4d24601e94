/*
 * The connection table of this process (conn_list.h, docs/deploy.md).
 *
 * One private mapping of a memfd named TSSX_CONN_TABLE_NAME, made on the
 * first connection, so that `tssx connections` finds it in /proc/PID/maps
 * and reads it through /proc/PID/mem.  A process that never connects a
 * Unix stream socket has none.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn/conn_list.h"
#include "real_slots.h"
#include "tssx/log.h"
#include "tssx/macros.h"

static pthread_mutex_t table_lock TSSX_FORK_DATA = PTHREAD_MUTEX_INITIALIZER;
static struct tssx_conn_table *_Atomic table; /* made once, under table_lock */
static bool table_unavailable;                 /* under table_lock */

/* A fork() while another thread holds the lock must not leave the child
 * with it held: the child keeps the table (its private copy) and uses it. */
static void lock_table(void)
{
	pthread_mutex_lock(&table_lock);
}

TSSX_FORK_HANDLER static void unlock_table(void)
{
	pthread_mutex_unlock(&table_lock);
}

static struct tssx_conn_table *table_create(void)
{
	struct tssx_conn_table *t;
	int fd = memfd_create(TSSX_CONN_TABLE_NAME, MFD_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (ftruncate(fd, TSSX_CONN_TABLE_SIZE) < 0) {
		TSSX_REAL(close)(fd);
		return NULL;
	}
	t = mmap(NULL, TSSX_CONN_TABLE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	TSSX_REAL(close)(fd); /* the mapping keeps the memfd */
	if (t == MAP_FAILED)
		return NULL;
	t->magic = TSSX_CONN_TABLE_MAGIC;
	t->version = TSSX_CONN_TABLE_VERSION;
	t->slot_size = sizeof(struct tssx_conn_slot);
	t->slots = TSSX_CONN_TABLE_SLOTS;
	t->plain_slots = TSSX_CONN_TABLE_PLAIN_SLOTS;
	pthread_atfork(lock_table, unlock_table, unlock_table);
	return t;
}

/*
 * The table, made on first use; NULL if it cannot be.  Only its making
 * takes the lock, with every signal blocked: a handler that connects or
 * accepts in the same thread would otherwise wait for itself.  Acquire
 * pairs with the release below: the table's header is written before
 * its address is seen.
 */
static struct tssx_conn_table *table_get(void)
{
	struct tssx_conn_table *t = atomic_load_explicit(&table, memory_order_acquire);
	sigset_t all, old;

	if (likely(t))
		return t;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&table_lock);
	t = atomic_load_explicit(&table, memory_order_relaxed);
	if (!t && !table_unavailable) {
		t = table_create();
		table_unavailable = !t;
		if (!t)
			log_debug("no connection table (%s): connections are not listed", strerror(errno));
		atomic_store_explicit(&table, t, memory_order_release);
	}
	pthread_mutex_unlock(&table_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return t;
}

/*
 * A slot's generation is odd while it changes.  The reader is another
 * process copying the slot through /proc/PID/mem: the release fence makes
 * the odd generation visible before the fields change, the release add
 * the fields before the even one.
 */
static void slot_begin(struct tssx_conn_slot *slot)
{
	atomic_fetch_add_explicit(&slot->generation, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void slot_end(struct tssx_conn_slot *slot)
{
	atomic_fetch_add_explicit(&slot->generation, 1, memory_order_release);
}

void tssx_conn_list_name(char *dst, size_t size, const struct sockaddr_un *addr, socklen_t len)
{
	size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;

	if (n > sizeof(addr->sun_path))
		n = sizeof(addr->sun_path);
	if (n && addr->sun_path[0] != '\0')
		n = strnlen(addr->sun_path, n);
	if (n >= size)
		n = size - 1;
	/* Copied whole, then its NULs found (a byte at a time cost a connect
	 * with a segment about 700 instructions for its three names). */
	memcpy(dst, addr->sun_path, n);
	dst[n] = '\0';
	for (char *nul = memchr(dst, '\0', n); nul; nul = memchr(nul, '\0', (size_t)(dst + n - nul)))
		*nul = '@';
}

/* src into dst of size bytes, cut to fit, NUL-terminated: snprintf()'s
 * "%s" cost each listing about 580 instructions. */
static void copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* What the socket itself tells, where the caller does not know it: its
 * inode, the peer's pid, the server's address, and for a TSSX connection
 * the client's bound name (the client bound it, the server's accept was
 * told it). */
static void describe_socket(struct tssx_conn_slot *slot, int fd, bool server, bool tssx,
			    const struct tssx_conn_known *known)
{
	struct sockaddr_un addr;
	struct ucred cred;
	struct stat st;
	socklen_t len = sizeof(addr), cred_len = sizeof(cred);

	slot->fd = fd;
	slot->server = server;
	slot->socket_ino = known->socket_ino ? known->socket_ino : fstat(fd, &st) == 0 ? st.st_ino : 0;
	if (known->peer_pid)
		slot->peer_pid = known->peer_pid;
	else
		slot->peer_pid =
			TSSX_REAL(getsockopt)(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0 ? cred.pid : 0;
	/* The server's address is the server's own name and the client's peer. */
	if (known->server && known->server[0])
		copy_cut(slot->path, sizeof(slot->path), known->server);
	else if ((server ? TSSX_REAL(getsockname) : TSSX_REAL(getpeername))(fd, (struct sockaddr *)&addr, &len) == 0)
		tssx_conn_list_name(slot->path, sizeof(slot->path), &addr, len);
	len = sizeof(addr);
	if (tssx && known->client && known->client[0])
		copy_cut(slot->client, sizeof(slot->client), known->client);
	else if (tssx &&
		 (server ? TSSX_REAL(getpeername) : TSSX_REAL(getsockname))(fd, (struct sockaddr *)&addr, &len) == 0)
		tssx_conn_list_name(slot->client, sizeof(slot->client), &addr, len);
}

/* Copies a slot made on the stack into the table. */
static void slot_write(struct tssx_conn_slot *slot, const struct tssx_conn_slot *from)
{
	slot_begin(slot);
	memcpy((char *)slot + sizeof(slot->generation), (const char *)from + sizeof(from->generation),
	       sizeof(*slot) - sizeof(slot->generation));
	slot_end(slot);
}

/*
 * A free TSSX slot, claimed for *from's state and written, or NULL when
 * all are taken.  Lock-free, with no signal to block: a slot is claimed
 * by a compare-and-swap of its state from free, and the slots in use grow
 * one at a time, each then claimed the same way.  Until the copy below
 * begins, the reader may find the claimed slot with its last occupant's
 * fields: their socket is closed, so it lists nothing.
 */
static struct tssx_conn_slot *put_tssx(struct tssx_conn_table *t, const struct tssx_conn_slot *from)
{
	uint32_t used = atomic_load_explicit(&t->used, memory_order_acquire);

	for (;;) {
		for (uint32_t i = 0; i < used; i++) {
			uint32_t expected = TSSX_SLOT_FREE;

			/* The claim's acquire pairs with the release in
			 * tssx_conn_list_remove(), so a slot claimed free is
			 * no longer being written. */
			if (__atomic_load_n(&t->slot[i].state, __ATOMIC_RELAXED) == TSSX_SLOT_FREE &&
			    __atomic_compare_exchange_n(&t->slot[i].state, &expected, from->state, false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
				slot_write(&t->slot[i], from);
				return &t->slot[i];
			}
		}
		if (used == t->slots)
			return NULL;
		/* One more slot in use, then scanned and claimed like the
		 * others (by this thread or another).  Release: the table's
		 * reader (another process) counts it only once it is zero;
		 * acquire: a count another thread made is scanned too. */
		if (!atomic_compare_exchange_weak_explicit(&t->used, &used, used + 1, memory_order_acq_rel,
							   memory_order_acquire))
			continue;
		used++;
	}
}

/* The next record of the plain ring: the oldest goes (the tool lists
 * only records whose socket the process still holds).  Under the lock,
 * so that two writers never share a record, with every signal blocked:
 * a handler that connects in the same thread would otherwise wait for
 * itself. */
static void put_plain(struct tssx_conn_table *t, const struct tssx_conn_slot *from)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&table_lock);
	slot_write(&t->slot[t->slots + atomic_fetch_add_explicit(&t->next_plain, 1, memory_order_relaxed) %
						   t->plain_slots],
		   from);
	pthread_mutex_unlock(&table_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

struct tssx_conn_slot *tssx_conn_list_add(int fd, bool server, const struct tssx_conn_known *known,
					  struct tssx_conn_counters *counters, unsigned hello_bytes)
{
	struct tssx_conn_slot slot = {
		.state = TSSX_SLOT_TSSX,
		.hello_bytes = hello_bytes,
		.counters = (uint64_t)(uintptr_t)counters,
	};
	struct tssx_conn_table *t;
	struct tssx_conn_slot *put = NULL;
	int saved_errno = errno;

	describe_socket(&slot, fd, server, true, known);
	t = table_get();
	if (t && !(put = put_tssx(t, &slot)))
		atomic_fetch_add_explicit(&t->overflow, 1, memory_order_relaxed);
	errno = saved_errno;
	return put;
}

void tssx_conn_list_failed(struct tssx_conn_slot *slot, int error)
{
	if (!slot)
		return;
	slot_begin(slot);
	slot->error = error;
	slot->state = TSSX_SLOT_FAILED;
	slot_end(slot);
}

/* Lock-free (close() runs in signal handlers): only this connection's
 * owner writes its slot, and it is free for others only once the last
 * store below has released it. */
void tssx_conn_list_remove(struct tssx_conn_slot *slot)
{
	if (!slot)
		return;
	slot_begin(slot);
	slot->counters = 0;
	slot_end(slot);
	__atomic_store_n(&slot->state, TSSX_SLOT_FREE, __ATOMIC_RELEASE);
}

void tssx_conn_list_plain(int fd, bool server, const char *server_path, enum tssx_plain_reason reason,
			  int error)
{
	struct tssx_conn_slot slot = { .state = TSSX_SLOT_PLAIN, .reason = reason, .error = error };
	struct tssx_conn_known known = { .server = server_path };
	struct tssx_conn_table *t;
	int saved_errno = errno;

	describe_socket(&slot, fd, server, false, &known);
	t = table_get();
	if (t)
		put_plain(t, &slot);
	errno = saved_errno;
}
