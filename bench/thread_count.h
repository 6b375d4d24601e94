/* The threads of this process, for the tools that wait for a library's
 * helper thread to have ended: tssx-bench and tests/tools' tssx-probe. */
#ifndef TSSX_THREAD_COUNT_H
#define TSSX_THREAD_COUNT_H

/* The entries of /proc/self/task, or -errno when it cannot be read. */
int thread_count(void);

#endif
