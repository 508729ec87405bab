/* bench_timeline: a guest's pass time over time while an unrelated 4 KiB
 * slot churns, with slot_zap_all on and off: what the quirk costs a
 * running guest, as a time series for the plot.
 *
 * builtin:memtouch sweeps 64 MiB of memfd boot RAM (4 KiB host pages,
 * where zap-all hurts most) on a slotd VM (state on tmpfs).  Each VM
 * (quirk on, then a fresh one with it off) runs a quiet phase, a churn
 * phase (memslot.delete + memslot.create of the slot every 10 ms through
 * slotd) and a quiet phase again (2 + 4 + 2 s; BENCH_QUICK=1: 1 + 2 + 1).
 * Pass times come from vm.reports, polled every 100 ms; the timeline is
 * kept as the median pass time per 100 ms bucket, and each phase's
 * figure is the median of its buckets.  Results:
 * $BENCH_OUT/timeline.json.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bench/lib/bench.h"
#include "bench/lib/jline.h"
#include "bench/lib/stats.h"

#define CHURN_SLOT 20
#define CHURN_GPA (16ull << 30)
#define BUCKET_NS 100000000LL
#define MAX_BUCKETS 200
#define MAX_PER_BUCKET 4096

static struct bench_daemon slotd;

/* On SIGINT/SIGTERM: take slotd down with us. */
static void on_signal(int sig)
{
	if (slotd.pid > 0)
		kill(slotd.pid, SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Pass times per bucket since t0. */
struct timeline {
	long long t0;
	long long *v[MAX_BUCKETS];
	long n[MAX_BUCKETS];
	long deletions;
};

/* Reads new pass reports of VM w from *next on; files them by end time. */
static int poll_reports(struct jline *c, long long *next, struct timeline *tl)
{
	char *line;
	json_object *o, *arr;
	int ret = jline_rpc(c, &line, "vm.reports", "{\"name\":\"w\",\"from\":%lld}", *next);

	if (ret)
		return ret;
	o = json_tokener_parse(line);
	if (!o || !json_object_object_get_ex(o, "result", &arr))
		return json_object_put(o), -EPROTO;
	*next = json_object_get_int64(json_object_object_get(arr, "next"));
	arr = json_object_object_get(arr, "reports");
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *r = json_object_array_get_idx(arr, i);
		long long at = json_object_get_int64(json_object_object_get(r, "host_ns"));
		long long b = (at - tl->t0) / BUCKET_NS;

		if (json_object_get_int64(json_object_object_get(r, "tag_id")) != 1 || b < 0 ||
		    b >= MAX_BUCKETS || tl->n[b] >= MAX_PER_BUCKET)
			continue;
		tl->v[b][tl->n[b]++] = json_object_get_int64(json_object_object_get(r, "value"));
	}
	json_object_put(o);
	return 0;
}

/* Creates VM w (quirk as asked) with the churn slot and starts it; waits
 * (up to 60 s) for two passes so the first, faulting one is behind. */
static int vm_up(struct jline *c, bool zap_all, long long *next)
{
	struct timeline warm = { .t0 = 0 };
	int ret = jline_rpc(c, NULL, "vm.create", "{\"name\":\"w\",\"memory\":\"128M\",\"ram\":"
			    "\"memfd\",\"payload\":\"builtin:memtouch\",\"args\":[%llu,0]}", 64ull << 20);

	if (!ret && !zap_all)
		ret = jline_rpc(c, NULL, "vm.quirks.set", "{\"vm\":\"w\",\"quirk\":\"slot_zap_all\","
				"\"enabled\":false}");
	ret = ret ? ret : jline_rpc(c, NULL, "memslot.create", "{\"vm\":\"w\",\"gpa\":%llu,"
				    "\"size\":4096,\"slot\":%d}", CHURN_GPA, CHURN_SLOT);
	ret = ret ? ret : jline_rpc(c, NULL, "vm.start", "{\"name\":\"w\"}");
	*next = 0;
	for (long long end = bench_now_ns() + 60000000000LL; !ret && *next < 4; usleep(20000)) {
		if (bench_now_ns() > end)
			return -ETIMEDOUT;
		ret = poll_reports(c, next, &warm);
	}
	return ret;
}

/* The three phases on VM w; fills tl. */
static int vm_run(struct jline *c, long long quiet_ns, long long churn_ns, long long *next,
		  struct timeline *tl)
{
	long long end = quiet_ns * 2 + churn_ns, tick, last_poll, t;
	int ret = 0;

	tl->t0 = tick = last_poll = bench_now_ns();
	while (!ret && (t = bench_now_ns() - tl->t0) < end) {
		if (t >= quiet_ns && t < quiet_ns + churn_ns) {
			ret = jline_rpc(c, NULL, "memslot.delete", "{\"vm\":\"w\",\"slot\":%d}",
					CHURN_SLOT);
			ret = ret ? ret : jline_rpc(c, NULL, "memslot.create", "{\"vm\":\"w\",\"gpa\":"
						    "%llu,\"size\":4096,\"slot\":%d}", CHURN_GPA,
						    CHURN_SLOT);
			tl->deletions++;
		}
		if (!ret && bench_now_ns() - last_poll >= BUCKET_NS) {
			ret = poll_reports(c, next, tl);
			last_poll = bench_now_ns();
		}
		tick += 10000000LL;
		if (tick > bench_now_ns()) {
			struct timespec ts = { .tv_sec = tick / 1000000000LL,
					       .tv_nsec = tick % 1000000000LL };

			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		} else {
			tick = bench_now_ns();
		}
	}
	return ret ? ret : poll_reports(c, next, tl);
}

/* The bucket medians as [[t_s, median_ms, passes], ...]; per phase
 * (quiet, churn, after) the median of its bucket medians into ph[3],
 * buckets that straddle a phase change left out.  Each 100 ms votes
 * once: a median over passes would be weighted towards fast passes,
 * which are the many when the churn stalls on a busy host. */
static json_object *timeline_json(struct timeline *tl, long long quiet_ns, long long churn_ns,
				  double ph[3])
{
	json_object *arr = json_object_new_array();
	long long med[3][MAX_BUCKETS];
	long nmed[3] = { 0, 0, 0 };

	for (int b = 0; b < MAX_BUCKETS; b++) {
		long long t = (long long)b * BUCKET_NS;
		int p = t < quiet_ns ? 0 : t < quiet_ns + churn_ns ? 1 : 2;
		json_object *pt;

		if (!tl->n[b])
			continue;
		/* bench_pct_us sorts in place; read the median before. */
		med[p][nmed[p]] = (long long)(bench_pct_us(tl->v[b], tl->n[b], 0.5) * 1000.0);
		if (t != 0 && t != quiet_ns && t != quiet_ns + churn_ns)
			nmed[p]++;
		pt = json_object_new_array();
		json_object_array_add(pt, bench_jd((double)(t + BUCKET_NS / 2) / 1e9));
		json_object_array_add(pt, bench_jd(bench_pct_us(tl->v[b], tl->n[b], 0.5) / 1000.0));
		json_object_array_add(pt, json_object_new_int64(tl->n[b]));
		json_object_array_add(arr, pt);
	}
	for (int p = 0; p < 3; p++)
		ph[p] = bench_pct_us(med[p], nmed[p], 0.5) / 1000.0;
	return arr;
}

/* One VM: up, three phases, down; its JSON into out. */
static int one_vm(struct jline *c, bool zap_all, long long quiet_ns, long long churn_ns,
		  json_object *out)
{
	struct timeline tl = { .t0 = 0 };
	long long next;
	double ph[3];
	int ret = 0;
	json_object *o;

	for (int b = 0; b < MAX_BUCKETS; b++)
		if (!(tl.v[b] = calloc(MAX_PER_BUCKET, sizeof(long long))))
			ret = -ENOMEM;
	ret = ret ? ret : vm_up(c, zap_all, &next);
	ret = ret ? ret : vm_run(c, quiet_ns, churn_ns, &next, &tl);
	jline_rpc(c, NULL, "vm.stop", "{\"name\":\"w\"}");
	if (jline_rpc(c, NULL, "vm.destroy", "{\"name\":\"w\"}") && !ret)
		ret = -EPROTO;
	if (!ret) {
		o = json_object_new_object();
		json_object_object_add(o, "points", timeline_json(&tl, quiet_ns, churn_ns, ph));
		json_object_object_add(o, "deletions", json_object_new_int64(tl.deletions));
		json_object_object_add(o, "quiet_ms", bench_jd(ph[0]));
		json_object_object_add(o, "churn_ms", bench_jd(ph[1]));
		json_object_object_add(o, "after_ms", bench_jd(ph[2]));
		json_object_object_add(out, zap_all ? "zap_all_on" : "zap_all_off", o);
		printf("  slot_zap_all %-3s  %10.3f %10.3f %10.3f %8.2fx %6ld\n", zap_all ? "on" : "off",
		       ph[0], ph[1], ph[2], ph[1] / ph[0], tl.deletions);
	}
	for (int b = 0; b < MAX_BUCKETS; b++)
		free(tl.v[b]);
	return ret;
}

int main(void)
{
	const char *bin = bench_env_str("SLOTD_BIN", "build/slotd");
	long long quiet = (bench_quick() ? 1 : 2) * 1000000000LL, churn = 2 * quiet;
	json_object *out = json_object_new_object();
	struct jline c = { .fd = -1 };
	int ret;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("bench_timeline: skipped: /dev/kvm is not usable\n");
		return 0;
	}
	ret = bench_daemon_start(&slotd, bin, "/tmp", bench_env_str("BENCH_STATE_DIR", "/dev/shm"));
	ret = ret ? ret : jline_open(&c, slotd.sock, 120);
	printf("memtouch (64 MiB, memfd RAM) pass time, median ms per phase: quiet %.0f s, churn "
	       "of an unrelated 4 KiB slot every 10 ms for %.0f s, quiet %.0f s\n", quiet / 1e9,
	       churn / 1e9, quiet / 1e9);
	printf("  %-17s %10s %10s %10s %9s %6s\n", "", "quiet", "churn", "after", "churn/q", "dels");
	json_object_object_add(out, "quiet_s", bench_jd(quiet / 1e9));
	json_object_object_add(out, "churn_s", bench_jd(churn / 1e9));
	ret = ret ? ret : one_vm(&c, true, quiet, churn, out);
	ret = ret ? ret : one_vm(&c, false, quiet, churn, out);
	putchar('\n');
	if (c.fd >= 0)
		jline_close(&c);
	bench_daemon_stop(&slotd);
	if (ret)
		fprintf(stderr, "bench_timeline: failed: %s\n", strerror(-ret));
	if (bench_json_write("timeline", out) && !ret)
		ret = -EIO;
	return ret ? 1 : 0;
}
