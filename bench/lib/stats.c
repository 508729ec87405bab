/* Sample distributions and JSON results (stats.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "bench/lib/bench.h"
#include "bench/lib/stats.h"

void bench_dist_of(long long *ns, long n, struct bench_dist *d)
{
	d->n = n;
	d->p999 = bench_pct_us(ns, n, 0.999);
	d->p99 = bench_pct_us(ns, n, 0.99);
	d->p90 = bench_pct_us(ns, n, 0.9);
	d->med = bench_pct_us(ns, n, 0.5);
	d->max = n > 0 ? (double)ns[n - 1] / 1000.0 : 0;
}

json_object *bench_jd(double v)
{
	return json_object_new_double(v);
}

json_object *bench_dist_json(const struct bench_dist *d)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "median_us", bench_jd(d->med));
	json_object_object_add(o, "p90_us", bench_jd(d->p90));
	json_object_object_add(o, "p99_us", bench_jd(d->p99));
	json_object_object_add(o, "p999_us", bench_jd(d->p999));
	json_object_object_add(o, "max_us", bench_jd(d->max));
	json_object_object_add(o, "n", json_object_new_int64(d->n));
	return o;
}

bool bench_quick(void)
{
	const char *q = getenv("BENCH_QUICK");

	return q && *q && *q != '0';
}

int bench_json_write(const char *name, json_object *o)
{
	const char *dir = bench_env_str("BENCH_OUT", "build/bench-out");
	char path[512];
	int ret = 0;

	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	if (json_object_to_file_ext(path, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) {
		fprintf(stderr, "bench: cannot write %s\n", path);
		ret = -EIO;
	}
	json_object_put(o);
	return ret;
}
