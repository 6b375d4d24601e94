/*
 * Memory that every TSSX process of one user shares: a file of theirs in
 * /dev/shm, mode 0600, so another user can neither read nor write it.
 * What a process of the same user writes there is a hint to the others,
 * never more: each user of such a file bounds what it believes (the
 * spin slots of conn/wait.c, the short connections' histories of
 * conn/destination.c).
 */
#ifndef TSSX_PRELOAD_CONN_USER_SHM_H
#define TSSX_PRELOAD_CONN_USER_SHM_H

#include <stddef.h>

/* Maps `size` bytes of /dev/shm/NAME-UID, made (zeroed) or grown to that
 * size when shorter; NULL when there is no /dev/shm or the file is not a
 * regular file of this user (another user made it first: its users then
 * keep a view of their own). */
void *tssx_user_shm_map(const char *name, size_t size);

#endif
