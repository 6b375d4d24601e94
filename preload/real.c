/* Lazy resolution of the real libc functions behind the wrappers (real.h). */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "real_slots.h"

#define TSSX_DEFINE_SLOT(name) TSSX_REAL_SLOT(name);
TSSX_SHIM_FUNCTIONS(TSSX_DEFINE_SLOT)
#undef TSSX_DEFINE_SLOT

static void write_stderr(const char *text)
{
	/* The raw system call: the logging machinery may not be set up yet,
	 * and its sink is itself a real function. */
	(void)!syscall(SYS_write, STDERR_FILENO, text, strlen(text));
}

/* symbol's address stored in *slot, or NULL (and *slot left) when libc
 * lacks it. */
static void *look_up(void *_Atomic *slot, const char *symbol)
{
	void *fn = dlsym(RTLD_NEXT, symbol);

	if (fn)
		atomic_store_explicit(slot, fn, memory_order_release);
	return fn;
}

void *tssx_real_resolve(void *_Atomic *slot, const char *symbol)
{
	void *fn = look_up(slot, symbol);

	if (!fn) {
		write_stderr("tssx: libc lacks ");
		write_stderr(symbol);
		write_stderr("\n");
		abort();
	}
	return fn;
}

/*
 * Every slot still empty, resolved now.  Called by the fork() wrapper in
 * the parent: each child would otherwise resolve what the parent never
 * called, with a dlsym() that walks every library's symbol table after
 * this one, and fault in the pages of those tables (fork copies no page
 * table of a file's mapping).  A forking server (PostgreSQL's postmaster)
 * pays that once instead of in every child.  A symbol libc lacks stays
 * empty here: only its use aborts, as before.
 */
static atomic_bool all_resolved;

#define TSSX_RESOLVE_SLOT(name)                                          \
	if (!atomic_load_explicit(&tssx_real_slot_##name, memory_order_relaxed)) \
		(void)look_up(&tssx_real_slot_##name, #name);

void tssx_real_resolve_all(void)
{
	if (atomic_load_explicit(&all_resolved, memory_order_relaxed))
		return;
	TSSX_SHIM_FUNCTIONS(TSSX_RESOLVE_SLOT)
	atomic_store_explicit(&all_resolved, true, memory_order_relaxed);
}
#undef TSSX_RESOLVE_SLOT
