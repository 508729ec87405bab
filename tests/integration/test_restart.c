/* Guests outlive slotd, and one VM's fault stays in that VM: slotd killed
 * (kill -9) or stopped while guests run and a client changes memslots,
 * started again (also as another build) and again (20 times), adopts the
 * same runners with their guests still running and every answered change
 * in place; a runner killed takes only its own VM down; a truncated file
 * backing is an error, not a crash; the journal wins when it and a
 * runner disagree.  All on the real /dev/kvm. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

static struct test_daemon d;
static char top[64], files[128];

static void setup(void)
{
	char tmpl[] = "/tmp/slotd-restart-XXXXXX";

	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("no usable /dev/kvm on this host: guests need it");
	signal(SIGPIPE, SIG_IGN);
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(top, sizeof(top), "%s", tmpl);
	snprintf(files, sizeof(files), "%s/files", top);
	cr_assert_eq(mkdir(files, 0700), 0);
}

static void teardown(void)
{
	if (d.pid > 0)
		test_daemon_stop(&d);
	if (top[0])
		test_rmtree(top);	/* ends the runners too */
}

TestSuite(restart, .init = setup, .fini = teardown, .timeout = 240);

#define ok(m, p, r)	t_rpc_ok(&d, m, p, r)
#define ok_put(m, p)	t_rpc_ok_put(&d, m, p)

static void start(const char *bin, const char *on_exit)
{
	const char *extra[] = { "--file-dir", files, "--vms-on-exit", on_exit, "--runner",
				NULL, NULL };
	char runner[512];

	snprintf(runner, sizeof(runner), "%s", test_slotd_bin());
	snprintf(strrchr(runner, '/') + 1, 64, "slotd-runner");
	extra[5] = runner;
	d.bin = bin;
	cr_assert_eq(test_daemon_start_in(&d, top, extra), 0, "slotd did not start; log:\n%s",
		     test_slurp(d.log));
}

static void kill9(void)
{
	int st;

	kill(d.pid, SIGKILL);
	waitpid(d.pid, &st, 0);
	d.pid = -1;
}

static json_object *member(json_object *o, const char *k)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k,
		  json_object_to_json_string(o));
	return v;
}

/* What vm.info says of a VM that matters across a restart. */
struct seen {
	char state[16];
	pid_t pid;
	double uptime;
	bool adopted;
	char build[64];
};

static struct seen info(const char *vm)
{
	struct seen s = { .pid = 0 };
	json_object *r, *res, *run;
	char p[128];

	snprintf(p, sizeof(p), "{\"name\":\"%s\"}", vm);
	res = ok("vm.info", p, &r);
	snprintf(s.state, sizeof(s.state), "%s", t_json_str(res, "state"));
	s.uptime = json_object_get_double(member(res, "uptime_s"));
	s.adopted = json_object_get_boolean(member(res, "adopted"));
	run = member(res, "runner");
	if (run) {
		s.pid = (pid_t)json_object_get_int64(member(run, "pid"));
		snprintf(s.build, sizeof(s.build), "%s", t_json_str(run, "build"));
	}
	json_object_put(r);
	return s;
}

static void wait_state(const char *vm, const char *want)
{
	char last[16] = "";

	for (int i = 0; i < 1000 && strcmp(last, want); i++) {
		snprintf(last, sizeof(last), "%s", info(vm).state);
		if (strcmp(last, want))
			usleep(10000);
	}
	cr_assert_str_eq(last, want, "VM %s: expected %s", vm, want);
}

/* The seq of every report of vm from `from` on, into seqs; the count. */
static size_t report_seqs(const char *vm, uint64_t from, uint64_t *seqs, size_t max)
{
	json_object *r, *a;
	char p[128];
	size_t n;

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"from\":%llu}", vm, (unsigned long long)from);
	a = member(ok("vm.reports", p, &r), "reports");
	n = json_object_array_length(a);
	for (size_t i = 0; i < n && i < max; i++)
		seqs[i] = (uint64_t)json_object_get_int64(member(json_object_array_get_idx(a, i),
								 "seq"));
	json_object_put(r);
	return n < max ? n : max;
}

/* Starts n memtouch guests g0..g(n-1) sweeping 96 MiB forever (a pass
 * long enough that the last 4096 reports span the restart). */
static void guests(int n)
{
	char p[256];

	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "{\"name\":\"g%d\",\"memory\":\"128M\",\"ram\":\"anon\","
			 "\"payload\":\"builtin:memtouch\",\"args\":[100663296,0]}", i);
		ok_put("vm.create", p);
		snprintf(p, sizeof(p), "{\"name\":\"g%d\"}", i);
		ok_put("vm.start", p);
	}
}

/* Kills pid with SIGKILL after a random 20..250 ms, from a child. */
static pid_t killer(pid_t pid)
{
	pid_t k = fork();

	if (k == 0) {
		srand((unsigned)getpid());
		usleep(20000 + (useconds_t)(rand() % 230000));
		kill(pid, SIGKILL);
		_exit(0);
	}
	return k;
}

/* Creates (even i) and deletes (odd i) slots of vm on one connection
 * until slotd dies or n changes are done; returns the changes answered
 * as their GPA index (+1: created, -1: deleted), in *log. */
static size_t churn(const char *vm, unsigned long long *next, long *log, size_t n)
{
	int fd = test_connect(d.sock);
	size_t done = 0;

	cr_assert_geq(fd, 0);
	for (size_t i = 0; i < n; i++) {
		char line[256], *reply;
		unsigned long long idx = *next;

		if (i % 3 != 2)
			snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
				 "\"memslot.create\",\"params\":{\"vm\":\"%s\",\"gpa\":%llu,"
				 "\"size\":4096}}", vm, 0x100000000ull + idx * 0x1000);
		else
			snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
				 "\"memslot.delete\",\"params\":{\"vm\":\"%s\",\"slot\":1}}", vm);
		reply = test_rpc_raw(fd, line);
		if (!reply)
			break;
		cr_assert(strstr(reply, "\"result\""), "%s: %s", line, reply);
		free(reply);
		if (i % 3 != 2) {
			log[done++] = (long)idx + 1;
			(*next)++;
		} else {
			log[done++] = -1;
		}
	}
	close(fd);
	return done;
}

/* memslot.list of vm as its JSON text. */
static char *layout(const char *vm)
{
	json_object *r;
	char p[128], *s;

	snprintf(p, sizeof(p), "{\"vm\":\"%s\"}", vm);
	s = strdup(json_object_to_json_string(member(ok("memslot.list", p, &r), "memslots")));
	json_object_put(r);
	return s;
}

/* Whether the layout text has a slot at gpa. */
static bool has_gpa(const char *text, unsigned long long gpa)
{
	char needle[40];

	snprintf(needle, sizeof(needle), "\"0x%llx\"", gpa);
	return strstr(text, needle) != NULL;
}

/* Whether slotd's log has needle (the log is printed when it has not). */
static bool log_has(const char *needle)
{
	char *log = test_slurp(d.log);
	bool has = log && strstr(log, needle);

	if (!has)
		fprintf(stderr, "slotd's log, without '%s':\n%s\n", needle, log ? log : "(none)");
	free(log);
	return has;
}

/* Whether slotd's log has needle, printing nothing. */
static bool log_has_quiet(const char *needle)
{
	char *log = test_slurp(d.log);
	bool has = log && strstr(log, needle);

	free(log);
	return has;
}

/* Whether vm's layout has a slot at gpa (a fresh memslot.list). */
static bool layout_has(const char *vm, unsigned long long gpa)
{
	char *text = layout(vm);
	bool has = has_gpa(text, gpa);

	free(text);
	return has;
}

/* After a restart: the guests are the same processes, still running,
 * their uptime unbroken and their reports without a gap. */
static void guests_survived(int n, const struct seen *before, const uint64_t *last_seq)
{
	for (int i = 0; i < n; i++) {
		char vm[16];
		struct seen now;
		uint64_t seqs[4096];
		size_t k;

		snprintf(vm, sizeof(vm), "g%d", i);
		now = info(vm);
		cr_assert_str_eq(now.state, "running", "%s: %s after the restart", vm, now.state);
		cr_assert(now.adopted, "%s: adopted by the new slotd", vm);
		cr_assert_eq(now.pid, before[i].pid, "%s: the same runner (pid %d, was %d)", vm,
			     now.pid, before[i].pid);
		cr_assert_gt(now.uptime, before[i].uptime, "%s: uptime %.3f s, was %.3f s", vm,
			     now.uptime, before[i].uptime);
		for (int t = 0; t < 300 && report_seqs(vm, last_seq[i] + 1, seqs, 1) == 0; t++)
			usleep(10000);
		/* The guest's report count went on from where it was (a new
		 * guest would count from 0), and the records the runner keeps
		 * (its last 4096) have no gap. */
		k = report_seqs(vm, 0, seqs, 4096);
		cr_assert_geq(k, 2, "%s: passes are reported after the restart", vm);
		cr_assert_gt(seqs[k - 1], last_seq[i], "%s: the count goes on from %llu (now %llu)",
			     vm, (unsigned long long)last_seq[i], (unsigned long long)seqs[k - 1]);
		cr_assert(seqs[0] <= last_seq[i] + 1 || k == 4096,
			  "%s: reports after %llu were lost (the oldest kept is %llu)", vm,
			  (unsigned long long)last_seq[i], (unsigned long long)seqs[0]);
		for (size_t j = 1; j < k; j++)
			cr_assert_eq(seqs[j], seqs[j - 1] + 1, "%s: a gap in the reports at %llu", vm,
				     (unsigned long long)seqs[j - 1]);
	}
}

/* Each guest's state and its last report's seq, once it has reported. */
static void guests_note(int n, struct seen *s, uint64_t *last_seq)
{
	for (int i = 0; i < n; i++) {
		char vm[16];
		uint64_t seqs[4096];
		size_t k = 0;

		snprintf(vm, sizeof(vm), "g%d", i);
		for (int t = 0; t < 500 && (k = report_seqs(vm, 0, seqs, 4096)) < 2; t++)
			usleep(10000);
		cr_assert_geq(k, 2, "%s reports its passes", vm);
		last_seq[i] = seqs[k - 1];
		s[i] = info(vm);
		cr_assert_gt(s[i].pid, 0);
		cr_assert_neq(s[i].pid, d.pid, "a guest runs in its own process");
	}
}

Test(restart, kill_9_under_load_keeps_guests_running_and_every_answered_change)
{
	struct seen before[4];
	uint64_t last[4];
	unsigned long long next = 0;
	long log[20000];
	size_t n;
	char *text;
	int st;
	pid_t k;

	start(NULL, "keep");
	guests(4);
	guests_note(4, before, last);
	k = killer(d.pid);
	n = churn("g1", &next, log, 20000);
	waitpid(k, &st, 0);
	waitpid(d.pid, &st, 0);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "slotd was killed mid-churn");
	d.pid = -1;
	for (int i = 0; i < 4; i++)
		cr_assert_eq(kill(before[i].pid, 0), 0, "runner %d survives slotd", before[i].pid);
	start(NULL, "keep");
	guests_survived(4, before, last);
	/* Every answered create that no delete undid is there: ops go
	 * create, create, delete slot 1, so the creates at i % 3 == 1 stay;
	 * one at i % 3 == 0 stays unless its delete was answered or sent
	 * (a change in flight at the kill may or may not have been made). */
	text = layout("g1");
	for (size_t i = 0; i < n; i++) {
		if (log[i] <= 0 || (i % 3 == 0 && i + 2 <= n))
			continue;
		cr_assert(has_gpa(text, 0x100000000ull + (unsigned long long)(log[i] - 1) * 0x1000),
			  "the answered create #%ld (op %zu of %zu) is missing after kill -9: %s",
			  log[i], i, n, text);
	}
	cr_log_info("kill -9 under load: %zu changes answered before the kill", n);
	free(text);
}

/* The time from exec to serving, with n guests to adopt. */
static double timed_start(void)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	start(NULL, "keep");
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

Test(restart, twenty_restarts_in_a_row_under_load)
{
	struct seen before[4];
	uint64_t last[4];
	unsigned long long next = 0;
	long log[64];
	double ms_max = 0, ms_sum = 0;

	start(NULL, "keep");
	guests(4);
	guests_note(4, before, last);
	for (int round = 0; round < 20; round++) {
		double ms;
		size_t n = churn("g2", &next, log, 9);
		char *text;

		cr_assert_eq(n, 9, "round %d: the churn was answered", round);
		if (round % 2)
			kill9();
		else
			cr_assert_eq(test_daemon_stop(&d), 0, "round %d: SIGTERM", round);
		ms = timed_start();
		ms_sum += ms;
		ms_max = ms > ms_max ? ms : ms_max;
		for (int i = 0; i < 4; i++) {
			char vm[16];
			struct seen s;

			snprintf(vm, sizeof(vm), "g%d", i);
			s = info(vm);
			cr_assert_str_eq(s.state, "running", "round %d: %s is %s", round, vm, s.state);
			cr_assert_eq(s.pid, before[i].pid, "round %d: %s has another runner", round, vm);
			cr_assert_gt(s.uptime, before[i].uptime, "round %d: %s's uptime broke", round, vm);
			before[i].uptime = s.uptime;
		}
		text = layout("g2");
		cr_assert(has_gpa(text, 0x100000000ull + (next - 1) * 0x1000),
			  "round %d: the last answered create is missing: %s", round, text);
		free(text);
	}
	cr_log_info("20 restarts adopting 4 guests: start to serving %.1f ms mean, %.1f ms max",
		    ms_sum / 20, ms_max);
}

Test(restart, another_build_adopts_the_runners_of_this_one)
{
	char next_bin[512];
	struct seen a, b;
	json_object *r;

	snprintf(next_bin, sizeof(next_bin), "%s", test_slotd_bin());
	snprintf(strrchr(next_bin, '/') + 1, 64, "tests/slotd-next");
	if (access(next_bin, X_OK))
		cr_skip_test("%s was not built", next_bin);
	start(NULL, "keep");
	guests(1);
	a = info("g0");
	ok_put("memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x100000000\",\"size\":4096}");
	cr_assert_eq(test_daemon_stop(&d), 0);
	start(next_bin, "keep");
	cr_assert(strstr(t_json_str(ok("daemon.version", NULL, &r), "version"), "+next"),
		  "the other build serves now");
	json_object_put(r);
	b = info("g0");
	cr_assert_str_eq(b.state, "running");
	cr_assert_eq(b.pid, a.pid, "the same runner");
	cr_assert(b.adopted);
	cr_assert(!strstr(b.build, "+next"), "the runner is still the old build: %s", b.build);
	ok_put("memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x200000000\",\"size\":4096}");
	ok_put("vm.memory.write", "{\"name\":\"g0\",\"gpa\":\"0x200000000\",\"data\":\"bmV4dA==\"}");
	cr_assert(layout_has("g0", 0x100000000), "the old build's slot is there");
	ok_put("vm.create", "{\"name\":\"fresh\",\"memory\":\"16M\"}");
	cr_assert(strstr(info("fresh").build, ""), "a new VM gets a runner too");
}

Test(restart, a_killed_runner_crashes_only_its_vm_and_vm_start_brings_it_back)
{
	struct seen a, b;
	json_object *r, *res;

	start(NULL, "keep");
	guests(2);
	ok_put("memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x100000000\",\"size\":4096}");
	a = info("g0");
	cr_assert_eq(kill(a.pid, SIGKILL), 0);
	wait_state("g0", "crashed");
	res = ok("vm.info", "{\"name\":\"g0\"}", &r);
	cr_assert(strstr(t_json_str(res, "crash_reason"), "killed by KILL"),
		  "the reason names the signal: %s", t_json_str(res, "crash_reason"));
	json_object_put(r);
	b = info("g1");
	cr_assert_str_eq(b.state, "running", "the other VM runs on");
	cr_assert(test_daemon_alive(&d), "slotd runs on");
	t_rpc_err(&d, "memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x200000000\",\"size\":4096}",
		  -32004, "state", "no running process");
	ok_put("vm.start", "{\"name\":\"g0\"}");
	b = info("g0");
	cr_assert_str_eq(b.state, "running");
	cr_assert_neq(b.pid, a.pid, "a new runner");
	ok_put("vm.memory.write", "{\"name\":\"g0\",\"gpa\":\"0x100000000\",\"data\":\"b2s=\"}");
	cr_assert(layout_has("g0", 0x100000000), "the new runner has the VM's memslots");
}

Test(restart, a_truncated_file_backing_is_an_error_and_the_guest_runs_on)
{
	char p[512], path[256];
	struct seen a, b;
	int fd;

	start(NULL, "keep");
	guests(1);
	snprintf(path, sizeof(path), "%s/disk.img", files);
	snprintf(p, sizeof(p), "{\"vm\":\"g0\",\"gpa\":\"0x100000000\",\"size\":\"64K\","
		 "\"backing\":{\"kind\":\"file\",\"path\":\"%s\",\"shared\":true}}", path);
	ok_put("memslot.create", p);
	ok_put("vm.memory.read", "{\"name\":\"g0\",\"gpa\":\"0x100000000\",\"length\":16}");
	a = info("g0");
	fd = open(path, O_WRONLY);
	cr_assert(fd >= 0 && ftruncate(fd, 0) == 0);
	close(fd);
	t_rpc_err(&d, "vm.memory.read", "{\"name\":\"g0\",\"gpa\":\"0x100000000\",\"length\":16}",
		  -32011, "gpa", "SIGBUS");
	t_rpc_err(&d, "vm.memory.write", "{\"name\":\"g0\",\"gpa\":\"0x100001000\",\"data\":\"eA==\"}",
		  -32011, "gpa", "SIGBUS");
	b = info("g0");
	cr_assert_str_eq(b.state, "running", "the guest runs on");
	cr_assert_eq(b.pid, a.pid, "its runner did not die");
	ok_put("vm.memory.read", "{\"name\":\"g0\",\"gpa\":\"0x300000\",\"length\":16}");
}

Test(restart, dma_from_a_truncated_file_fails_that_dma_only)
{
	char p[512], path[256];
	uint64_t seqs[4096];
	json_object *r, *a;
	int fd, bad = 0;
	size_t n;

	start(NULL, "keep");
	snprintf(path, sizeof(path), "%s/dma.img", files);
	ok_put("vm.create", "{\"name\":\"dma\",\"memory\":\"16M\",\"payload\":\"builtin:dmatest\","
	       "\"args\":[4294967296,4096,0]}");
	snprintf(p, sizeof(p), "{\"vm\":\"dma\",\"gpa\":\"0x100000000\",\"size\":\"64K\","
		 "\"backing\":{\"kind\":\"file\",\"path\":\"%s\",\"shared\":true}}", path);
	ok_put("memslot.create", p);
	ok_put("vm.start", "{\"name\":\"dma\"}");
	for (int t = 0; t < 300 && report_seqs("dma", 0, seqs, 8) < 8; t++)
		usleep(10000);
	fd = open(path, O_WRONLY);
	cr_assert(fd >= 0 && ftruncate(fd, 0) == 0);
	close(fd);
	n = report_seqs("dma", 0, seqs, 4096);
	for (int t = 0; t < 300 && !bad; t++) {
		char q[128];

		snprintf(q, sizeof(q), "{\"name\":\"dma\",\"from\":%zu}", n);
		a = member(ok("vm.reports", q, &r), "reports");
		for (size_t i = 0; i < json_object_array_length(a); i++)
			bad |= (json_object_get_int64(member(json_object_array_get_idx(a, i),
							     "value")) & 0xffffffff) == 7;
		json_object_put(r);
		usleep(10000);
	}
	cr_assert(bad, "a DMA from the truncated file reports status 7 (I/O error)");
	cr_assert_str_eq(info("dma").state, "running", "the guest goes on");
}

/* The lines of the VM's journal file, and a rewrite of it. */
static char *journal(const char *vm)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/state/vm-%s.journal", top, vm);
	return test_slurp(path);
}

static void journal_write(const char *vm, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/state/vm-%s.journal", top, vm);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(restart, a_change_applied_but_never_journaled_is_undone)
{
	char *j, *nl, *text;

	start(NULL, "keep");
	guests(1);
	ok_put("memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x100000000\",\"size\":4096}");
	ok_put("memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x200000000\",\"size\":4096}");
	/* A call to the runner after the reply: its commit went out first
	 * (else the runner, left without one, undoes the create itself). */
	info("g0");
	kill9();
	/* As if slotd died after the runner applied the second create and
	 * before its record was durable. */
	j = journal("g0");
	cr_assert(j && (nl = strchr(j, '\n')) && strstr(nl + 1, "8589934592"), "journal: %s", j);
	nl[1] = '\0';
	journal_write("g0", j);
	free(j);
	start(NULL, "keep");
	text = layout("g0");
	cr_assert(has_gpa(text, 0x100000000) && !has_gpa(text, 0x200000000), "%s", text);
	free(text);
	cr_assert(log_has("applied but never journaled: removed"), "the log says what was done");
	/* The runner has no slot there any more: the range is free. */
	ok_put("memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x200000000\",\"size\":8192}");
	cr_assert_str_eq(info("g0").state, "running");
}

Test(restart, a_change_journaled_but_never_applied_is_applied)
{
	char *j, rec[4096], *text;

	start(NULL, "keep");
	guests(1);
	ok_put("memslot.create", "{\"vm\":\"g0\",\"gpa\":\"0x100000000\",\"size\":4096}");
	kill9();
	/* As if slotd died after making a create durable and before the
	 * runner committed it (the runner then undid it). */
	j = journal("g0");
	snprintf(rec, sizeof(rec), "%s{\"seq\":999,\"put\":{\"id\":7,\"gpa\":12884901888,"
		 "\"size\":8192,\"readonly\":false,\"dirty_log\":false,\"backing\":{\"kind\":"
		 "\"anon\",\"shared\":false}}}\n", j ? j : "");
	free(j);
	journal_write("g0", rec);
	start(NULL, "keep");
	text = layout("g0");
	cr_assert(has_gpa(text, 0x100000000) && has_gpa(text, 0x300000000), "%s", text);
	free(text);
	cr_assert(log_has("journaled but not applied: applied now"), "the log says what was done");
	ok_put("vm.memory.write", "{\"name\":\"g0\",\"gpa\":\"0x300001000\",\"data\":\"aGk=\"}");
	cr_assert_str_eq(info("g0").state, "running");
}

Test(restart, a_runner_without_a_state_file_is_ended)
{
	char path[256];
	struct seen a;

	start(NULL, "keep");
	guests(1);
	a = info("g0");
	kill9();
	snprintf(path, sizeof(path), "%s/state/vm-g0.json", top);
	cr_assert_eq(unlink(path), 0);
	start(NULL, "keep");
	for (int t = 0; t < 300 && kill(a.pid, 0) == 0; t++)
		usleep(10000);
	cr_assert_neq(kill(a.pid, 0), 0, "the runner of a VM slotd has no state for is ended");
	cr_assert(log_has("has no state file"), "and the log says so");
	t_rpc_err(&d, "vm.info", "{\"name\":\"g0\"}", -32002, "name", NULL);
}

Test(restart, stop_ends_guests_only_when_asked)
{
	struct seen a;

	start(NULL, "keep");
	guests(1);
	a = info("g0");
	cr_assert_eq(test_daemon_stop(&d), 0);
	cr_assert_eq(kill(a.pid, 0), 0, "--vms-on-exit keep: the guest runs on");
	start(NULL, "stop");
	cr_assert_eq(info("g0").pid, a.pid);
	cr_assert_eq(test_daemon_stop(&d), 0);
	for (int t = 0; t < 300 && kill(a.pid, 0) == 0; t++)
		usleep(10000);
	cr_assert_neq(kill(a.pid, 0), 0, "--vms-on-exit stop: slotd ended the guest");
	start(NULL, "keep");
	a = info("g0");
	cr_assert_str_eq(a.state, "defined", "recreated from its state");
}

/* The value of Key: in /proc/pid/status. */
static char *status(pid_t pid, const char *key, char *buf, size_t len)
{
	char path[64], *s, *p;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	s = test_slurp(path);
	cr_assert_not_null(s);
	p = strstr(s, key);
	cr_assert_not_null(p, "%s has no %s", path, key);
	p += strlen(key) + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
	free(s);
	return buf;
}

Test(restart, every_vms_runner_is_sandboxed)
{
	char v[64];
	pid_t pid;

	start(NULL, "keep");
	guests(1);
	pid = info("g0").pid;
	cr_assert_str_eq(status(pid, "Seccomp:", v, sizeof(v)), "2");
	cr_assert_str_eq(status(pid, "NoNewPrivs:", v, sizeof(v)), "1");
	cr_assert_str_eq(status(pid, "CapEff:", v, sizeof(v)), "0000000000000000");
	cr_assert_str_eq(status(pid, "CapBnd:", v, sizeof(v)), "0000000000000000");
}

/* On a VM that does not run no vCPU waits for a change's commit: it rides
 * on the runner's next call, else goes out within milliseconds.  Either
 * way the runner keeps the change: after a kill -9 nothing needs to be
 * reconciled. */
Test(restart, a_change_on_a_vm_that_does_not_run_is_committed_without_another_call)
{
	char *text;

	start(NULL, "keep");
	ok_put("vm.create", "{\"name\":\"d0\",\"memory\":\"16M\"}");
	/* Carried by the next call (memslot.create on the same runner). */
	ok_put("memslot.create", "{\"vm\":\"d0\",\"gpa\":\"0x100000000\",\"size\":4096}");
	ok_put("memslot.create", "{\"vm\":\"d0\",\"gpa\":\"0x200000000\",\"size\":4096}");
	/* The last one by the timer: well past it, kill slotd. */
	usleep(100 * 1000);
	kill9();
	start(NULL, "keep");
	text = layout("d0");
	cr_assert(has_gpa(text, 0x100000000) && has_gpa(text, 0x200000000), "%s", text);
	free(text);
	cr_assert_not(log_has_quiet("journaled but not applied"),
		      "a change was left uncommitted in the runner");
	cr_assert_not(log_has_quiet("no end of transaction"), "the runner undid a change");
}
