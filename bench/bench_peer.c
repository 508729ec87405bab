/* bench_peer: slotd side by side with QEMU, the VMM a user would
 * otherwise pick, in one run, interleaved (A B A B), with one client
 * (bench/lib/jline.c) talking to both over Unix sockets only.
 *
 *   1. Idle RSS: QEMU with one 128 MiB VM (paused) against slotd with no
 *      VM and with one 128 MiB VM (defined), summed over each daemon's
 *      process tree.
 *   2. Control round trip: QMP query-status against daemon.version, in
 *      rotating blocks: median, p90, p99; with the host's floor, a
 *      process that writes a fixed line back, in the same blocks.
 *   3. Throughput with 1, 8 and 16 clients, each on its own connection
 *      (QEMU: its own -qmp socket; a QMP socket serves one client), with
 *      the floor's event loop as a third.
 *   4. Memory add: QMP object-add + device_add pc-dimm against
 *      memslot.create and the raw ioctl, at 4 KiB (no DIMM that small),
 *      2 MiB, 128 MiB and 1 GiB.  QEMU runs paused (-S) with KVM where
 *      /dev/kvm works (a stock kernel does not boot under kvm_pvm), else
 *      with TCG.
 *   5. Memory remove: QMP device_del, timed to QEMU's DEVICE_DELETED
 *      event, + object-del, against memslot.delete and the raw ioctl.
 *      QEMU removes a DIMM only once the guest acknowledges the eject,
 *      so this QEMU is a second one, under TCG, with a Debian kernel and
 *      a busybox initramfs booted (scripts/bench-deps.sh makes them).
 *
 * slotd keeps its state on tmpfs (BENCH_STATE_DIR, /dev/shm): QEMU
 * keeps none, and on disk each change waits for one durable write.
 *
 * Environment: SLOTD_BIN, BENCH_QEMU, BENCH_GUEST_DIR (build/bench-guest),
 * BENCH_STATE_DIR, BENCH_NO_KVM, BENCH_QUICK, BENCH_OUT.  Results: $BENCH_OUT/peer.json.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/lib/bench.h"
#include "bench/lib/jline.h"
#include "bench/lib/qemu.h"
#include "bench/lib/rawvm.h"
#include "bench/lib/stats.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define QMP_MAIN 16		/* the QMP socket of parts 1, 2, 4 */
#define MAX_CLIENTS 16
#define SLOT_ID 10
#define SLOT_GPA (4 * GiB)
#define GUEST_READY "slotd-bench-guest: ready"
/* The guest processed a DIMM insert (QMP event text). */
#define OST_INSERT "\"source\": 1,"

static const char QS[] = "{\"execute\":\"query-status\"}\n";
static const char DV[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}\n";
static const char QOK[] = "\"return\"", DOK[] = "\"result\"";

static struct bench_daemon slotd;
static struct bench_qemu qemu, qemu_tcg;
static int dimm_seq;		/* ids of QEMU's DIMMs and their backends */

/* Part 2's floor: a process answering each line at once, nothing else. */
static pid_t echo_pid;
static char echo_dir[64];

/* On SIGINT/SIGTERM: take the daemons down with us. */
static void on_signal(int sig)
{
	pid_t pids[4] = { slotd.pid, qemu.pid, qemu_tcg.pid, echo_pid };

	for (int i = 0; i < 4; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One call on c, timed into *ns. */
static int call_timed(struct jline *c, const char *req, const char *ok, long long *ns)
{
	long long t0 = bench_now_ns();
	int ret = jline_call(c, req, ok, NULL);

	*ns = bench_now_ns() - t0;
	return ret;
}

/* A JSON-RPC request line for slotd, formatted. */
static const char *rpc_req(char *buf, size_t len, const char *method, const char *params)
{
	snprintf(buf, len, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}\n",
		 method, params);
	return buf;
}

/* ---- 1. idle RSS ---------------------------------------------------- */

/* RSS of both daemons at rest, all of it and without the 128 MiB guest
 * RAM mapping; creates slotd's VM "p" (128 MiB, defined) when kvm (without
 * it slotd has no VM to define: only its idle RSS is measured). */
static int part_rss(struct jline *s, bool kvm, json_object *out)
{
	long q_self = 0, s_self = 0, s_idle, s_vm = 0, q_kb, q_own, s_own = 0;
	json_object *o = json_object_new_object();
	char req[256];
	int nproc = 0, ret = 0;

	usleep(500000);
	q_kb = bench_rss_tree_kb(qemu.pid, &q_self, &nproc);
	q_own = bench_rss_tree_skip_kb(qemu.pid, 128 * MiB, NULL, NULL);
	s_idle = bench_rss_tree_kb(slotd.pid, &s_self, &nproc);
	if (kvm) {
		ret = jline_call(s, rpc_req(req, sizeof(req), "vm.create",
					    "{\"name\":\"p\",\"memory\":\"128M\",\"ram\":\"anon\"}"),
				 DOK, NULL);
		usleep(200000);
		s_vm = bench_rss_tree_kb(slotd.pid, &s_self, &nproc);
		s_own = bench_rss_tree_skip_kb(slotd.pid, 128 * MiB, NULL, NULL);
	}
	if (!ret && (q_kb < 0 || s_idle < 0 || s_vm < 0 || q_own < 0 || s_own < 0))
		ret = -ESRCH;
	if (kvm)
		printf("RSS, whole process tree, MB (without the guest RAM mapping): QEMU with one "
		       "128 MiB VM, paused, %.1f (%.1f); slotd with no VM %.1f, with one 128 MiB VM "
		       "defined %.1f (%.1f; %d process(es), slotd itself %.1f): %.1fx less\n\n",
		       q_kb / 1024.0, q_own / 1024.0, s_idle / 1024.0, s_vm / 1024.0,
		       s_own / 1024.0, nproc, s_self / 1024.0, (double)q_kb / (double)s_vm);
	else
		printf("RSS, whole process tree, MB (without the guest RAM mapping): QEMU with one "
		       "128 MiB VM, paused, %.1f (%.1f); slotd with no VM %.1f; slotd with a VM: "
		       "skipped (/dev/kvm is not usable)\n\n", q_kb / 1024.0, q_own / 1024.0,
		       s_idle / 1024.0);
	json_object_object_add(o, "qemu_one_vm_kb", json_object_new_int64(q_kb));
	json_object_object_add(o, "qemu_one_vm_without_guest_ram_kb", json_object_new_int64(q_own));
	json_object_object_add(o, "slotd_idle_kb", json_object_new_int64(s_idle));
	json_object_object_add(o, "slotd_self_kb", json_object_new_int64(s_self));
	json_object_object_add(o, "slotd_processes", json_object_new_int(nproc));
	if (kvm) {
		json_object_object_add(o, "slotd_one_vm_kb", json_object_new_int64(s_vm));
		json_object_object_add(o, "slotd_one_vm_without_guest_ram_kb",
				       json_object_new_int64(s_own));
	}
	json_object_object_add(out, "rss", o);
	return ret;
}

/* ---- 2. control round trip ------------------------------------------ */

/* Calls per block of part 2: small, so that a burst of load from other
 * jobs on the host falls on both daemons' series alike (their tails are
 * the scheduler's as much as theirs). */
#define CTL_BLOCK 10

/* The child behind echo_start: one event loop, as slotd's, answering
 * every line on any connection with a fixed reply and doing nothing else. */
static void echo_serve(int lfd)
{
	static const char rep[] = "{\"jsonrpc\":\"2.0\",\"result\":{},\"id\":1}\n";
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, got[32];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[4096];

	/* Not on_signal: echo_stop's SIGTERM would take the daemons down. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev))
		_exit(1);
	for (;;) {
		int n = epoll_wait(ep, got, 32, -1);

		for (int i = 0; i < n; i++) {
			int fd = got[i].data.fd;
			ssize_t r;

			if (fd == lfd) {
				ev.data.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
				if (ev.data.fd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev))
					close(ev.data.fd);
				continue;
			}
			r = read(fd, buf, sizeof(buf));
			if (r <= 0)
				close(fd);
			for (ssize_t j = 0; j < r; j++)
				if (buf[j] == '\n' && write(fd, rep, sizeof(rep) - 1) < 0)
					break;
		}
	}
}

/* Starts the floor's answering process (its socket in echo_sock). */
static char echo_sock[96];

static int echo_start(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, ret;

	snprintf(echo_dir, sizeof(echo_dir), "/tmp/slotd-bench-echo-XXXXXX");
	if (!mkdtemp(echo_dir)) {
		echo_dir[0] = '\0';
		return -errno;
	}
	snprintf(echo_sock, sizeof(echo_sock), "%s/echo.sock", echo_dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", echo_sock);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 64)) {
		ret = -errno;
		if (lfd >= 0)
			close(lfd);
		return ret;
	}
	echo_pid = fork();
	if (echo_pid == 0)
		echo_serve(lfd);
	ret = echo_pid < 0 ? -errno : 0;
	close(lfd);
	return ret;
}

static void echo_stop(void)
{
	if (echo_pid > 0) {
		kill(echo_pid, SIGTERM);
		waitpid(echo_pid, NULL, 0);
	}
	echo_pid = 0;
	if (echo_dir[0]) {
		unlink(echo_sock);
		rmdir(echo_dir);
		echo_dir[0] = '\0';
	}
}

/* n calls of each in rotating blocks of CTL_BLOCK (which one leads a
 * round rotates too), after 200 untimed each.  The third series is the
 * host's floor: the same calls answered by a process that only writes a
 * fixed line back, so a tail both daemons show can be told from theirs. */
static int part_control(struct jline *q, struct jline *s, long n, json_object *out)
{
	long long *ns[3] = { calloc((size_t)n, sizeof(long long)), calloc((size_t)n, sizeof(long long)),
			     calloc((size_t)n, sizeof(long long)) };
	struct jline e = { .fd = -1 };
	struct jline *c[3] = { q, s, &e };
	const char *req[3] = { QS, DV, DV }, *ok[3] = { QOK, DOK, DOK };
	struct bench_dist d[3];
	long long t;
	long got[3] = { 0, 0, 0 };
	int ret = ns[0] && ns[1] && ns[2] ? 0 : -ENOMEM;
	json_object *o = json_object_new_object();

	ret = ret ? ret : jline_open(&e, echo_sock, 30);
	for (int k = 0; !ret && k < 3; k++)
		for (int i = 0; !ret && i < 200; i++)
			ret = call_timed(c[k], req[k], ok[k], &t);
	for (long b = 0; !ret && got[1] < n; b++)
		for (int j = 0; !ret && j < 3; j++) {
			int k = (int)((b + j) % 3);

			for (int i = 0; !ret && i < CTL_BLOCK && got[k] < n; i++)
				ret = call_timed(c[k], req[k], ok[k], &ns[k][got[k]++]);
		}
	if (e.fd >= 0)
		jline_close(&e);
	for (int k = 0; !ret && k < 3; k++)
		bench_dist_of(ns[k], n, &d[k]);
	if (!ret) {
		printf("control round trip, N=%ld each, rotating blocks of %d (QEMU, slotd, "
		       "floor), us\n", n, CTL_BLOCK);
		printf("  %-26s %8s %8s %8s %8s\n", "", "median", "p90", "p99", "p99.9");
		printf("  %-26s %8.1f %8.1f %8.1f %8.1f\n", "QMP query-status", d[0].med, d[0].p90,
		       d[0].p99, d[0].p999);
		printf("  %-26s %8.1f %8.1f %8.1f %8.1f\n", "slotd daemon.version", d[1].med,
		       d[1].p90, d[1].p99, d[1].p999);
		printf("  %-26s %8.1f %8.1f %8.1f %8.1f\n", "floor: a bare echo", d[2].med,
		       d[2].p90, d[2].p99, d[2].p999);
		printf("  QEMU / slotd: %.1fx at the median, %.1fx at p90, %.1fx at p99 "
		       "(target >= 10x at the median and p99)\n", d[0].med / d[1].med,
		       d[0].p90 / d[1].p90, d[0].p99 / d[1].p99);
		printf("  slotd / floor: %.1fx at the median, %.1fx at p99 (what slotd adds to "
		       "the host's own round trip)\n\n", d[1].med / d[2].med, d[1].p99 / d[2].p99);
		json_object_object_add(o, "qemu", bench_dist_json(&d[0]));
		json_object_object_add(o, "slotd", bench_dist_json(&d[1]));
		json_object_object_add(o, "floor", bench_dist_json(&d[2]));
	}
	json_object_object_add(out, "control", o);
	for (int k = 0; k < 3; k++)
		free(ns[k]);
	return ret;
}

/* ---- 3. throughput -------------------------------------------------- */

struct tclient {
	pthread_t thread;
	const char *sock, *req, *ok;
	bool qmp;
	double sec;
	pthread_barrier_t *start;
	unsigned long done;
	int err;
};

/* One client: connect, wait for the others, call until the deadline. */
static void *tclient_main(void *arg)
{
	struct tclient *t = arg;
	struct jline c;
	long long end;

	t->err = t->qmp ? jline_qmp_open(&c, t->sock, 30) : jline_open(&c, t->sock, 30);
	pthread_barrier_wait(t->start);
	end = bench_now_ns() + (long long)(t->sec * 1e9);
	while (!t->err && bench_now_ns() < end) {
		t->err = jline_call(&c, t->req, t->ok, NULL);
		t->done += !t->err;
	}
	if (c.fd >= 0)
		jline_close(&c);
	return NULL;
}

/* CPU time (user + system, all threads) pid has used, in us. */
static double cpu_us(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	p = f && fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	if (f)
		fclose(f);
	/* After ')': state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* Requests per second of n clients on one daemon (k: 0 QEMU, 1 slotd,
 * 2 the floor) for sec seconds, and its CPU time per request (us). */
static int rate_of(int k, int n, double sec, double *rate, double *cpu_per_req)
{
	struct tclient t[MAX_CLIENTS];
	pthread_barrier_t bar;
	unsigned long total = 0;
	bool qmp = k == 0;
	pid_t pid = k == 0 ? qemu.pid : k == 1 ? slotd.pid : echo_pid;
	double cpu0;
	long long t0;
	int ret = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		t[i] = (struct tclient){ .sock = qmp ? qemu.qmp[i] : k == 1 ? slotd.sock : echo_sock,
					 .req = qmp ? QS : DV, .ok = qmp ? QOK : DOK,
					 .qmp = qmp, .sec = sec, .start = &bar };
		pthread_create(&t[i].thread, NULL, tclient_main, &t[i]);
	}
	pthread_barrier_wait(&bar);
	t0 = bench_now_ns();
	cpu0 = cpu_us(pid);
	for (int i = 0; i < n; i++) {
		pthread_join(t[i].thread, NULL);
		total += t[i].done;
		ret = ret ? ret : t[i].err;
	}
	pthread_barrier_destroy(&bar);
	*rate = (double)total * 1e9 / (double)(bench_now_ns() - t0);
	*cpu_per_req = total ? (cpu_us(pid) - cpu0) / (double)total : 0;
	return ret;
}

/* 1, 8 and 16 clients, QEMU, slotd and the floor rotating, two rounds
 * each. */
static int part_rate(double sec, json_object *out)
{
	static const int counts[] = { 1, 8, 16 };
	json_object *arr = json_object_new_array();
	int ret = 0;

	printf("throughput, one request in flight per client, %.1f s x 2 rounds, "
	       "QEMU, slotd and the floor (a bare echo) rotating, requests/s; the daemon's CPU "
	       "time per request, us\n", sec);
	printf("  %-8s %12s %12s %12s %8s %10s %10s\n", "clients", "QMP", "slotd", "floor",
	       "ratio", "QEMU CPU", "slotd CPU");
	for (size_t c = 0; !ret && c < sizeof(counts) / sizeof(counts[0]); c++) {
		double sum[3] = { 0, 0, 0 }, cpu[3] = { 0, 0, 0 }, r, u;
		json_object *o;

		for (int round = 0; !ret && round < 2; round++)
			for (int j = 0; !ret && j < 3; j++) {
				int k = (round + j) % 3;

				ret = rate_of(k, counts[c], sec, &r, &u);
				sum[k] += r / 2;
				cpu[k] += u / 2;
			}
		if (ret)
			break;
		printf("  %-8d %12.0f %12.0f %12.0f %7.1fx %10.1f %10.1f\n", counts[c], sum[0],
		       sum[1], sum[2], sum[1] / sum[0], cpu[0], cpu[1]);
		o = json_object_new_object();
		json_object_object_add(o, "clients", json_object_new_int(counts[c]));
		json_object_object_add(o, "qemu_rps", bench_jd(sum[0]));
		json_object_object_add(o, "slotd_rps", bench_jd(sum[1]));
		json_object_object_add(o, "floor_rps", bench_jd(sum[2]));
		json_object_object_add(o, "qemu_cpu_us_per_req", bench_jd(cpu[0]));
		json_object_object_add(o, "slotd_cpu_us_per_req", bench_jd(cpu[1]));
		json_object_object_add(o, "floor_cpu_us_per_req", bench_jd(cpu[2]));
		json_object_array_add(arr, o);
	}
	printf("  (target: slotd >= 20x QEMU with 16 clients; the clients share the host's CPUs "
	       "with the daemon they drive, and floor / QMP is the most any daemon could reach)\n\n");
	json_object_object_add(out, "throughput", arr);
	return ret;
}

/* ---- 4. memory add -------------------------------------------------- */

/* QMP object-add + device_add of a size DIMM; its index in *idx. */
static int qemu_add(struct jline *q, unsigned long long size, int *idx)
{
	char req[320];
	int i = dimm_seq++, ret;

	snprintf(req, sizeof(req), "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":"
		 "\"memory-backend-ram\",\"id\":\"m%d\",\"size\":%llu}}\n", i, size);
	ret = jline_call(q, req, QOK, NULL);
	snprintf(req, sizeof(req), "{\"execute\":\"device_add\",\"arguments\":{\"driver\":"
		 "\"pc-dimm\",\"id\":\"d%d\",\"memdev\":\"m%d\"}}\n", i, i);
	ret = ret ? ret : jline_call(q, req, QOK, NULL);
	*idx = i;
	return ret;
}

/* memslot.create of slot SLOT_ID on VM p. */
static int slotd_create(struct jline *s, unsigned long long size)
{
	char params[160], req[256];

	snprintf(params, sizeof(params), "{\"vm\":\"p\",\"gpa\":%llu,\"size\":%llu,\"slot\":%d}",
		 SLOT_GPA, size, SLOT_ID);
	return jline_call(s, rpc_req(req, sizeof(req), "memslot.create", params), DOK, NULL);
}

static int slotd_delete(struct jline *s)
{
	char req[256];

	return jline_call(s, rpc_req(req, sizeof(req), "memslot.delete",
				     "{\"vm\":\"p\",\"slot\":10}"), DOK, NULL);
}

/* Samples of one size: [raw|slotd|qemu]. */
struct addrow {
	long long *ns[3];
	long n;
};

/* One iteration of part 4 in the order given by first. */
static int add_once(struct jline *q, struct jline *s, struct bench_raw_vm *raw, void *hva,
		    unsigned long long size, int first, struct addrow *r, bool keep)
{
	long long t[3] = { 0, 0, 0 }, t0;
	int ret = 0, idx;

	for (int j = 0; !ret && j < 3; j++) {
		int k = (first + j) % 3;

		if (k == 2 && size < 2 * MiB)
			continue;	/* a DIMM is at least 2 MiB */
		t0 = bench_now_ns();
		ret = k == 0 ? bench_raw_set(raw, SLOT_ID, SLOT_GPA, size, hva) :
		      k == 1 ? slotd_create(s, size) : qemu_add(q, size, &idx);
		t[k] = bench_now_ns() - t0;
		if (!ret && k == 0)
			ret = bench_raw_set(raw, SLOT_ID, SLOT_GPA, 0, hva);
		if (!ret && k == 1)
			ret = slotd_delete(s);
	}
	for (int k = 0; !ret && keep && k < 3; k++)
		r->ns[k][r->n] = t[k];
	r->n += !ret && keep;
	return ret;
}

/* The printed row and JSON of one size. */
static json_object *add_report(unsigned long long size, struct addrow *r)
{
	struct bench_dist d[3];
	json_object *o = json_object_new_object();
	bool dimm = size >= 2 * MiB;

	for (int k = 0; k < 3; k++)
		bench_dist_of(r->ns[k], r->n, &d[k]);
	printf("  %-7llu %10.1f (%6.1f) %10.1f (%6.1f) ", size / 1024, d[0].med, d[0].p90,
	       d[1].med, d[1].p90);
	if (dimm)
		printf("%10.1f (%6.1f) %8.1fx %8.1fx\n", d[2].med, d[2].p90, d[2].med / d[1].med,
		       d[2].med / d[0].med);
	else
		printf("%19s %9s %9s\n", "(no DIMM < 2 MiB)", "-", "-");
	json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
	json_object_object_add(o, "raw", bench_dist_json(&d[0]));
	json_object_object_add(o, "slotd", bench_dist_json(&d[1]));
	if (dimm)
		json_object_object_add(o, "qemu", bench_dist_json(&d[2]));
	return o;
}

/* Every size: n interleaved iterations (after one untimed). */
static int part_add(struct jline *q, struct jline *s, long n, json_object *out)
{
	static const unsigned long long sizes[] = { 4096, 2 * MiB, 128 * MiB, GiB };
	struct bench_raw_vm raw = { .kvm = -1 };
	json_object *arr = json_object_new_array();
	void *hva = mmap(NULL, GiB, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int ret = hva == MAP_FAILED ? -errno : bench_raw_open(&raw);

	printf("memory add, N=%ld per size, the three interleaved (order rotating), us, median (p90)\n"
	       "  raw: KVM_SET_USER_MEMORY_REGION2 on a VM of this program; slotd: memslot.create; "
	       "QEMU: object-add memory-backend-ram + device_add pc-dimm\n", n);
	printf("  %-7s %19s %19s %19s %9s %9s\n", "KiB", "raw ioctl", "slotd", "QEMU", "QEMU/slotd",
	       "QEMU/raw");
	for (size_t z = 0; !ret && z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		struct addrow r = { { calloc((size_t)n, 8), calloc((size_t)n, 8), calloc((size_t)n, 8) }, 0 };

		ret = r.ns[0] && r.ns[1] && r.ns[2] ? 0 : -ENOMEM;
		for (long i = -1; !ret && i < n; i++)
			ret = add_once(q, s, &raw, hva, sizes[z], (int)((i + 3) % 3), &r, i >= 0);
		if (!ret)
			json_object_array_add(arr, add_report(sizes[z], &r));
		for (int k = 0; k < 3; k++)
			free(r.ns[k]);
	}
	printf("  (target: slotd >= 20x faster than QEMU for the same size; QEMU/raw is the most "
	       "any VMM could reach, the kernel's ioctl being part of both)\n\n");
	json_object_object_add(out, "add", arr);
	bench_raw_close(&raw);
	if (hva != MAP_FAILED)
		munmap(hva, GiB);
	return ret;
}

/* ---- 5. memory remove under TCG with a booted guest ------------------ */

/* Adds a DIMM to the TCG guest and waits (up to 10 s) for the guest to
 * process the insert; then times device_del to DEVICE_DELETED plus
 * object-del into *ns. */
static int qemu_remove_timed(struct jline *q, unsigned long long size, long long *add_ns,
			     long long *ns)
{
	char req[160];
	long long t0 = bench_now_ns();
	int idx, ret;

	/* The insert's ACPI_DEVICE_OST may arrive before device_add's reply. */
	q->watch = OST_INSERT;
	q->watch_seen = false;
	ret = qemu_add(q, size, &idx);
	*add_ns = bench_now_ns() - t0;
	if (!ret && jline_wait(q, OST_INSERT, 10000))
		fprintf(stderr, "bench_peer: the guest did not report the insert of d%d\n", idx);
	snprintf(req, sizeof(req), "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"d%d\"}}\n", idx);
	q->watch = "DEVICE_DELETED";
	q->watch_seen = false;
	t0 = bench_now_ns();
	ret = ret ? ret : jline_call(q, req, QOK, NULL);
	ret = ret ? ret : jline_wait(q, "DEVICE_DELETED", 30000);
	snprintf(req, sizeof(req), "{\"execute\":\"object-del\",\"arguments\":{\"id\":\"m%d\"}}\n", idx);
	ret = ret ? ret : jline_call(q, req, QOK, NULL);
	*ns = bench_now_ns() - t0;
	q->watch = NULL;
	return ret;
}

/* One iteration of part 5: raw, slotd and QEMU remove of one size. */
static int remove_once(struct jline *q, struct jline *s, struct bench_raw_vm *raw, void *hva,
		       unsigned long long size, long long t[4])
{
	long long t0;
	int ret = bench_raw_set(raw, SLOT_ID, SLOT_GPA, size, hva);

	t0 = bench_now_ns();
	ret = ret ? ret : bench_raw_set(raw, SLOT_ID, SLOT_GPA, 0, hva);
	t[0] = bench_now_ns() - t0;
	ret = ret ? ret : slotd_create(s, size);
	t0 = bench_now_ns();
	ret = ret ? ret : slotd_delete(s);
	t[1] = bench_now_ns() - t0;
	return ret ? ret : qemu_remove_timed(q, size, &t[3], &t[2]);
}

/* Starts the TCG QEMU with the Debian guest; -ENOENT without one. */
static int tcg_start(char kernel[256], char initrd[256], const char *bin)
{
	const char *dir = bench_env_str("BENCH_GUEST_DIR", "build/bench-guest");
	const char *argv[] = { "-accel", "tcg", "-nodefaults", "-display", "none", "-no-reboot",
			       "-m", "256M,slots=8,maxmem=8G", "-smp", "1", "-kernel", kernel,
			       "-initrd", initrd, "-append",
			       "console=ttyS0 memhp_default_state=online_movable panic=-1", NULL };
	int ret;

	snprintf(kernel, 256, "%s/vmlinuz", dir);
	snprintf(initrd, 256, "%s/initrd.gz", dir);
	if (access(kernel, R_OK) || access(initrd, R_OK)) {
		printf("memory remove: skipped: no guest kernel and initramfs in %s "
		       "(scripts/bench-deps.sh makes them)\n\n", dir);
		return -ENOENT;
	}
	ret = bench_qemu_start(&qemu_tcg, bin, 1, argv);
	ret = ret ? ret : bench_qemu_serial_wait(&qemu_tcg, GUEST_READY, 180000);
	if (ret)
		fprintf(stderr, "bench_peer: the TCG guest did not boot: %s\n", strerror(-ret));
	return ret;
}

/* Part 5's rows and JSON. */
static void remove_report(const unsigned long long *sizes, long long *ns[2][4], long n,
			  long tcg_rss, json_object *out)
{
	json_object *arr = json_object_new_array();

	printf("memory remove, N=%ld per size, us, median (p90); QEMU under TCG with a booted "
	       "Debian guest (timed to DEVICE_DELETED, + object-del); slotd and raw on KVM\n", n);
	printf("  %-7s %19s %19s %21s %9s %19s\n", "MiB", "raw ioctl", "slotd delete",
	       "QEMU del+event+odel", "QEMU/slotd", "QEMU add (booted)");
	for (int z = 0; z < 2; z++) {
		struct bench_dist d[4];
		json_object *o = json_object_new_object();

		for (int k = 0; k < 4; k++)
			bench_dist_of(ns[z][k], n, &d[k]);
		printf("  %-7llu %10.1f (%6.1f) %10.1f (%6.1f) %12.1f (%6.1f) %8.1fx %10.1f (%6.1f)\n",
		       sizes[z] >> 20, d[0].med, d[0].p90, d[1].med, d[1].p90, d[2].med, d[2].p90,
		       d[2].med / d[1].med, d[3].med, d[3].p90);
		json_object_object_add(o, "size", json_object_new_int64((int64_t)sizes[z]));
		json_object_object_add(o, "raw", bench_dist_json(&d[0]));
		json_object_object_add(o, "slotd", bench_dist_json(&d[1]));
		json_object_object_add(o, "qemu_tcg", bench_dist_json(&d[2]));
		json_object_object_add(o, "qemu_tcg_add", bench_dist_json(&d[3]));
		json_object_array_add(arr, o);
	}
	printf("  QEMU (TCG, booted guest) RSS: %.1f MB\n\n", tcg_rss / 1024.0);
	json_object_object_add(out, "remove", arr);
	json_object_object_add(out, "qemu_tcg_booted_rss_kb", json_object_new_int64(tcg_rss));
}

/* Part 5: n iterations per size, after one untimed. */
static int part_remove(struct jline *s, const char *bin, long n, json_object *out)
{
	static const unsigned long long sizes[2] = { 128 * MiB, GiB };
	char kernel[256], initrd[256];
	long long *ns[2][4] = { { 0 } }, t[4];
	struct bench_raw_vm raw = { .kvm = -1 };
	struct jline q = { .fd = -1 };
	void *hva = MAP_FAILED;
	int ret = tcg_start(kernel, initrd, bin);

	if (ret == -ENOENT)
		return 0;
	ret = ret ? ret : jline_qmp_open(&q, qemu_tcg.qmp[0], 60);
	hva = mmap(NULL, GiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	ret = ret ? ret : hva == MAP_FAILED ? -errno : bench_raw_open(&raw);
	for (int z = 0; z < 2; z++)
		for (int k = 0; k < 4; k++)
			if (!(ns[z][k] = calloc((size_t)n, sizeof(long long))) && !ret)
				ret = -ENOMEM;
	for (int z = 0; !ret && z < 2; z++)
		for (long i = -1; !ret && i < n; i++) {
			ret = remove_once(&q, s, &raw, hva, sizes[z], t);
			for (int k = 0; !ret && i >= 0 && k < 4; k++)
				ns[z][k][i] = t[k];
		}
	if (!ret)
		remove_report(sizes, ns, n, bench_rss_tree_kb(qemu_tcg.pid, NULL, NULL), out);
	for (int z = 0; z < 2; z++)
		for (int k = 0; k < 4; k++)
			free(ns[z][k]);
	if (q.fd >= 0)
		jline_close(&q);
	bench_raw_close(&raw);
	if (hva != MAP_FAILED)
		munmap(hva, GiB);
	bench_qemu_stop(&qemu_tcg);
	return ret;
}

/* ---- main ----------------------------------------------------------- */

/* Starts slotd and the paused QEMU and connects to both. */
static int start_both(const char *bin, const char *qbin, const char *accel, struct jline *q,
		      struct jline *s)
{
	const char *argv[] = { "-accel", accel, "-S", "-nodefaults", "-display", "none",
			       "-m", "128M,slots=64,maxmem=48G", "-smp", "1", NULL };
	/* slotd's journal on tmpfs: QEMU keeps no state to wait for. */
	int ret = bench_daemon_start(&slotd, bin, "/tmp", bench_env_str("BENCH_STATE_DIR", "/dev/shm"));

	if (ret) {
		fprintf(stderr, "bench_peer: cannot start %s: %s\n", bin, strerror(-ret));
		bench_daemon_log_dump(&slotd);
		return ret;
	}
	ret = bench_qemu_start(&qemu, qbin, QMP_MAIN + 1, argv);
	if (ret)
		fprintf(stderr, "bench_peer: cannot start %s: %s\n", qbin, strerror(-ret));
	ret = ret ? ret : jline_qmp_open(q, qemu.qmp[QMP_MAIN], 60);
	return ret ? ret : jline_open(s, slotd.sock, 60);
}

/* Parts 1-5 on the started daemons; KVM-only parts skip without it. */
static int run_parts(struct jline *q, struct jline *s, const char *qbin, bool kvm,
		     json_object *out)
{
	bool quick = bench_quick();
	int ret = part_rss(s, kvm, out);

	ret = ret ? ret : echo_start();
	ret = ret ? ret : part_control(q, s, quick ? 1000 : 10000, out);
	ret = ret ? ret : part_rate(quick ? 0.5 : 2.0, out);
	echo_stop();
	if (!kvm) {
		printf("memory add and remove: skipped: /dev/kvm is not usable, so slotd has no "
		       "VM to add memory to\n");
		return ret;
	}
	ret = ret ? ret : part_add(q, s, quick ? 3 : 15, out);
	return ret ? ret : part_remove(s, qbin, quick ? 2 : 8, out);
}

int main(void)
{
	const char *bin = bench_env_str("SLOTD_BIN", "build/slotd");
	char qbin[256], ver[160];
	/* BENCH_NO_KVM=1 runs what a host without /dev/kvm can. */
	bool kvm = access("/dev/kvm", R_OK | W_OK) == 0 && !bench_env_long("BENCH_NO_KVM", 0);
	const char *accel = kvm ? "kvm" : "tcg";
	json_object *out = json_object_new_object();
	struct jline q = { .fd = -1 }, s = { .fd = -1 };
	int ret;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (bench_qemu_find(qbin, sizeof(qbin))) {
		printf("bench_peer: skipped: no qemu-system-x86_64 (scripts/bench-deps.sh installs it)\n");
		json_object_object_add(out, "skipped", json_object_new_string("no qemu-system-x86_64"));
		return bench_json_write("peer", out) ? 1 : 0;
	}
	bench_qemu_version(qbin, ver, sizeof(ver));
	printf("bench_peer: QEMU %s, accelerator %s%s, paused (-S); slotd %s\n\n", ver, accel,
	       kvm ? "" : " (no usable /dev/kvm)", bin);
	json_object_object_add(out, "qemu_version", json_object_new_string(ver));
	json_object_object_add(out, "accel", json_object_new_string(accel));
	json_object_object_add(out, "quick", json_object_new_boolean(bench_quick()));
	ret = start_both(bin, qbin, accel, &q, &s);
	ret = ret ? ret : run_parts(&q, &s, qbin, kvm, out);
	if (q.fd >= 0)
		jline_close(&q);
	if (s.fd >= 0)
		jline_close(&s);
	bench_qemu_stop(&qemu);
	bench_daemon_stop(&slotd);
	if (ret)
		fprintf(stderr, "bench_peer: failed: %s\n", strerror(-ret));
	if (bench_json_write("peer", out) && !ret)
		ret = -EIO;
	return ret ? 1 : 0;
}
