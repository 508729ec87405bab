/* bench_restart: what a restart of slotd costs while guests run in their
 * runner processes.  For N = 1, 8 and 32 running memtouch guests, slotd
 * is killed with SIGKILL and started again BENCH_RESTART_ROUNDS times:
 *
 *   - start to serving: from exec of the new slotd until its socket
 *     answers daemon.version (it adopts every runner and reconciles its
 *     layout first);
 *   - what a guest sees: the longest gap between two consecutive pass
 *     reports of guest g0 across the restart, next to the median gap of
 *     the second before (a guest slotd paused or restarted would show a
 *     gap as long as the restart, or reports starting over);
 *   - the runners' and slotd's RSS after the restart;
 * and first what an idle runner holds besides its guest's memory (target:
 * 2 MiB).
 *
 * Environment (defaults): SLOTD_BIN (build/slotd), BENCH_RESTART_VMS
 * (1,8,32), BENCH_RESTART_ROUNDS (5).  Each guest sweeps 64 MiB: slow
 * enough passes that the last 4096 reports, which a runner keeps, reach
 * back before the kill. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/lib/bench.h"

static char dir[64], sock[96];
static pid_t slotd = -1;

/* One request on a fresh connection; the reply's result (caller puts
 * it), or NULL. */
static json_object *call(const char *method, const char *params)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	static char buf[8 << 20];	/* 4096 reports are ~400 KB of JSON */
	char line[512];
	json_object *reply = NULL, *res = NULL;
	size_t got = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto out;
	snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}\n",
		 method, params ? params : "{}");
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		goto out;
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (n <= 0)
			break;
		if (memchr(buf + got, '\n', (size_t)n)) {
			got += (size_t)n;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	reply = json_tokener_parse(buf);
	if (reply && json_object_object_get_ex(reply, "result", &res))
		res = json_object_get(res);
out:
	if (fd >= 0)
		close(fd);
	json_object_put(reply);
	return res;
}

static void put(const char *method, const char *params)
{
	json_object_put(call(method, params));
}

/* Starts slotd on dir (guests are kept when it exits); the time from
 * exec until it answers, in ms, or -1. */
static double start(const char *bin)
{
	long long t0 = bench_now_ns();
	char state[128], log[128];

	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(log, sizeof(log), "%s/slotd.log", dir);
	slotd = fork();
	if (slotd == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		execl(bin, bin, "--foreground", "--socket", sock, "--state-dir", state,
		      "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 20000; i++) {
		json_object *v = call("daemon.version", NULL);

		if (v) {
			json_object_put(v);
			return (double)(bench_now_ns() - t0) / 1e6;
		}
		usleep(200);
	}
	return -1;
}

static void kill9(void)
{
	int st;

	kill(slotd, SIGKILL);
	waitpid(slotd, &st, 0);
	slotd = -1;
}

/* host_ns of each report of VM vm from seq `from` on, into t (max n). */
static size_t report_times(const char *vm, long long from, long long *t, size_t n)
{
	char p[128];
	json_object *res, *a;
	size_t k = 0;

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"from\":%lld}", vm, from);
	res = call("vm.reports", p);
	if (res && json_object_object_get_ex(res, "reports", &a))
		for (size_t i = 0; i < json_object_array_length(a) && k < n; i++) {
			json_object *r = json_object_array_get_idx(a, i), *v, *tag;

			if (json_object_object_get_ex(r, "tag_id", &tag) &&
			    json_object_get_int(tag) == 1 && json_object_object_get_ex(r, "host_ns", &v))
				t[k++] = json_object_get_int64(v);
		}
	json_object_put(res);
	return k;
}

/* A field of /proc/pid/status in KiB ("VmRSS", "RssShmem"), 0 if
 * unknown. */
static long status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t n = strlen(key);
	long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			kib = strtol(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return kib;
}

static long rss_kib(pid_t pid)
{
	return status_kib(pid, "VmRSS");
}

static long runner_pid(const char *vm)
{
	char p[128];
	json_object *res, *r, *pid;
	long v = -1;

	snprintf(p, sizeof(p), "{\"name\":\"%s\"}", vm);
	res = call("vm.info", p);
	if (res && json_object_object_get_ex(res, "runner", &r) && r &&
	    json_object_object_get_ex(r, "pid", &pid))
		v = json_object_get_int64(pid);
	json_object_put(res);
	return v;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* What an idle runner holds besides its guest's memory (boot RAM is a
 * memfd: RssShmem): VM defined, then after a guest that ran and stopped. */
static int idle_runner(const char *bin)
{
	long rss[2], shm[2];
	pid_t pid;

	if (start(bin) < 0)
		return -1;
	put("vm.create", "{\"name\":\"idle\",\"memory\":\"64M\",\"payload\":\"builtin:hello\"}");
	pid = (pid_t)runner_pid("idle");
	usleep(200000);
	rss[0] = rss_kib(pid);
	shm[0] = status_kib(pid, "RssShmem");
	put("vm.start", "{\"name\":\"idle\"}");
	usleep(500000);
	rss[1] = rss_kib(pid);
	shm[1] = status_kib(pid, "RssShmem");
	for (int i = 0; i < 2; i++)
		printf("idle runner, %-22s %5ld KiB resident besides guest memory (%ld KiB VmRSS, "
		       "%ld KiB of it guest memfd); target <= 2048 KiB: %s\n",
		       i ? "after a guest ran:" : "VM defined:", rss[i] - shm[i], rss[i], shm[i],
		       rss[i] - shm[i] <= 2048 ? "PASS" : "MISS");
	put("vm.destroy", "{\"name\":\"idle\"}");
	kill(slotd, SIGTERM);
	waitpid(slotd, NULL, 0);
	slotd = -1;
	return pid > 0 ? 0 : -1;
}

/* N guests, rounds restarts: one row of the table. */
static int run(const char *bin, int nvm, int rounds)
{
	double start_ms[32], gap_ms = 0, base_ms = 0, ctl_ms = 0;
	long long t[4096];
	char p[256];
	long runner_rss = 0;
	size_t k;

	if (start(bin) < 0)
		return -1;
	for (int i = 0; i < nvm; i++) {
		snprintf(p, sizeof(p), "{\"name\":\"g%d\",\"memory\":\"96M\",\"ram\":\"anon\","
			 "\"payload\":\"builtin:memtouch\",\"args\":[67108864,0]}", i);
		put("vm.create", p);
		snprintf(p, sizeof(p), "{\"name\":\"g%d\"}", i);
		put("vm.start", p);
	}
	usleep(1500000);
	for (int r = 0; r < rounds && r < 32; r++) {
		long long before = bench_now_ns(), t_kill;
		double gaps[4096];
		size_t n = 0;

		usleep(1000000);
		t_kill = bench_now_ns();
		kill9();
		start_ms[r] = start(bin);
		usleep(300000);
		k = report_times("g0", 0, t, 4096);
		/* Gaps between passes: the second before the kill, and the
		 * longest one that spans it. */
		for (size_t i = 1; i < k; i++) {
			if (t[i] > before && t[i] < t_kill)
				gaps[n++] = (double)(t[i] - t[i - 1]) / 1e6;
			if (t[i - 1] <= t_kill && t[i] >= t_kill) {
				double g = (double)(t[i] - t[i - 1]) / 1e6;

				gap_ms = g > gap_ms ? g : gap_ms;
			}
		}
		if (n) {
			qsort(gaps, n, sizeof(gaps[0]), cmp);
			base_ms += gaps[n / 2];
			ctl_ms = gaps[n - 1] > ctl_ms ? gaps[n - 1] : ctl_ms;
		}
	}
	qsort(start_ms, (size_t)rounds, sizeof(start_ms[0]), cmp);
	for (int i = 0; i < nvm; i++) {
		char vm[16];

		snprintf(vm, sizeof(vm), "g%d", i);
		runner_rss += rss_kib((pid_t)runner_pid(vm));
	}
	printf("%-4d %-8d %10.1f %10.1f %12.2f %12.2f %12.2f %10ld %10ld\n", nvm, rounds,
	       start_ms[rounds / 2], start_ms[rounds - 1], base_ms / rounds, ctl_ms, gap_ms,
	       rss_kib(slotd), runner_rss / nvm);
	for (int i = 0; i < nvm; i++) {
		snprintf(p, sizeof(p), "{\"name\":\"g%d\"}", i);
		put("vm.destroy", p);
	}
	kill(slotd, SIGTERM);
	waitpid(slotd, NULL, 0);
	slotd = -1;
	return 0;
}

int main(void)
{
	const char *bin = bench_env_str("SLOTD_BIN", "build/slotd");
	char list[64], *save = NULL;
	int rounds = (int)bench_env_long("BENCH_RESTART_ROUNDS", 5), ret = 0;
	char cmd[256];

	rounds = rounds < 1 ? 1 : rounds > 32 ? 32 : rounds;
	snprintf(list, sizeof(list), "%s", bench_env_str("BENCH_RESTART_VMS", "1,8,32"));
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("no usable /dev/kvm: skipped\n");
		return 0;
	}
	snprintf(dir, sizeof(dir), "/dev/shm/slotd-restart-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	ret = idle_runner(bin);
	snprintf(cmd, sizeof(cmd), "pkill -KILL -f '[s]lotd-runner .*%s/' ; rm -rf %s", dir, dir);
	if (system(cmd) < 0 || ret)
		return 1;
	putchar('\n');
	printf("slotd killed (SIGKILL) and started again while N memtouch guests (64 MiB "
	       "working set) run; medians and max over the rounds\n");
	printf("%-4s %-8s %10s %10s %12s %12s %12s %10s %10s\n", "N", "rounds", "start ms",
	       "max ms", "gap median", "gap max", "gap across", "slotd KiB", "runner KiB");
	for (char *tok = strtok_r(list, ",", &save); tok && !ret;
	     tok = strtok_r(NULL, ",", &save)) {
		snprintf(dir, sizeof(dir), "/dev/shm/slotd-restart-XXXXXX");
		if (!mkdtemp(dir))
			return 1;
		snprintf(sock, sizeof(sock), "%s/s.sock", dir);
		ret = run(bin, atoi(tok), rounds);
		/* Whatever is left of this row (a failed run): runners too. */
		snprintf(cmd, sizeof(cmd), "pkill -KILL -f '[s]lotd-runner .*%s/' ; rm -rf %s", dir,
			 dir);
		if (system(cmd) < 0)
			ret = -1;
	}
	printf("(start ms: exec to the first answer, every runner adopted; gap median / max: "
	       "ms between two passes of guest g0 in the second before a kill (max over the "
	       "rounds: the host's own hiccups); gap across: the longest gap that spans a kill "
	       "and restart; KiB: VmRSS after, a runner's with the 64 MiB its guest touched)\n");
	return ret ? 1 : 0;
}
