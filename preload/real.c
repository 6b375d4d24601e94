/* Lazy resolution of the real libc functions behind the wrappers (real.h). */
#include <dlfcn.h>
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

void *tssx_real_resolve(void *_Atomic *slot, const char *symbol)
{
	void *fn = dlsym(RTLD_NEXT, symbol);

	if (!fn) {
		write_stderr("tssx: libc lacks ");
		write_stderr(symbol);
		write_stderr("\n");
		abort();
	}
	atomic_store_explicit(slot, fn, memory_order_release);
	return fn;
}
