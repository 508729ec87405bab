/* Distributions of timed samples, and the machine-readable results that
 * bench/report.py turns into bench/RESULTS.md. */
#ifndef SLOTD_BENCH_STATS_H
#define SLOTD_BENCH_STATS_H

#include <json-c/json.h>
#include <stdbool.h>

/* Percentiles of one series, in microseconds. */
struct bench_dist {
	double med, p90, p99, p999, max;
	long n;
};

/* The distribution of n samples in ns (sorted in place). */
void bench_dist_of(long long *ns, long n, struct bench_dist *d);
json_object *bench_dist_json(const struct bench_dist *d);
/* Whether BENCH_QUICK asks for the short smoke run. */
bool bench_quick(void);
/* Writes o to $BENCH_OUT/name.json (default build/bench-out) and drops
 * the caller's reference.  0 or -errno. */
int bench_json_write(const char *name, json_object *o);
/* The same number, as json. */
json_object *bench_jd(double v);

#endif
