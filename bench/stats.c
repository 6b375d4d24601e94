/* Statistics over the batches of one measurement. */
#include <stdlib.h>
#include <time.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of the samples at or
 * below it. */
static double percentile(const double *sorted, size_t n, double p)
{
	size_t rank = (size_t)(p * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

void bench_stats_compute(double *v, size_t n, struct bench_stats *out)
{
	*out = (struct bench_stats){ .n = n };
	if (n == 0)
		return;
	qsort(v, n, sizeof(*v), compare_doubles);
	out->min = v[0];
	out->max = v[n - 1];
	out->p99 = percentile(v, n, 0.99);
	out->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
