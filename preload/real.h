/*
 * The real libc functions behind the wrappers (torsocks style).
 *
 * Each is resolved with dlsym(RTLD_NEXT) on first use, not in the
 * constructor: other libraries' constructors call socket() or read() before
 * ours runs.  The slot is an atomic pointer, so a race resolves the same
 * symbol twice and stores the same value.  The slots are the list in
 * real_slots.h, defined once in real.c:
 *
 *   ssize_t n = TSSX_REAL(read)(fd, buf, len);
 */
#ifndef TSSX_PRELOAD_REAL_H
#define TSSX_PRELOAD_REAL_H

#include <stdatomic.h>

/* Resolves `symbol` into *slot; aborts with a message if libc lacks it. */
__attribute__((cold)) void *tssx_real_resolve(void *_Atomic *slot, const char *symbol);

/* Resolves every slot still empty (the fork() wrapper, in the parent:
 * its children then resolve nothing). */
__attribute__((cold)) void tssx_real_resolve_all(void);

static inline void *tssx_real_load(void *_Atomic *slot, const char *symbol)
{
	void *fn = atomic_load_explicit(slot, memory_order_acquire);
	return fn ? fn : tssx_real_resolve(slot, symbol);
}

#define TSSX_REAL_SLOT(name) void *_Atomic tssx_real_slot_##name
#define TSSX_REAL_EXTERN(name) extern void *_Atomic tssx_real_slot_##name __attribute__((visibility("hidden")))
#define TSSX_REAL(name) ((__typeof__(&name))tssx_real_load(&tssx_real_slot_##name, #name))

#endif
