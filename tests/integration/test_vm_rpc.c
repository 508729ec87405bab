/* vm.* through the real daemon on the real /dev/kvm: lifecycle, console,
 * guest memory, stats, events, and the errors a person gets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

static struct test_daemon d;

static void start(void)
{
	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("no usable /dev/kvm on this host: the vm.* tests need it");
	cr_assert_eq(test_daemon_start(&d, NULL), 0, "log: %s", test_slurp(d.log));
}

static void stop(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
}

TestSuite(vm_rpc, .init = start, .fini = stop);

/* Short names for the shared assertions, on this file's daemon. */
#define ok(m, p, r)	t_rpc_ok(&d, m, p, r)
#define err(m, p, c, f)	t_rpc_err(&d, m, p, c, f, NULL)
#define str(o, k)	t_json_str(o, k)

/* Polls vm.info until state is want (10 s). */
static void wait_state(const char *name, const char *want)
{
	char p[128];
	char last[32] = "";

	snprintf(p, sizeof(p), "{\"name\":\"%s\"}", name);
	for (int i = 0; i < 1000; i++) {
		json_object *r, *res = ok("vm.info", p, &r);

		snprintf(last, sizeof(last), "%s", str(res, "state"));
		json_object_put(r);
		if (!strcmp(last, want))
			return;
		usleep(10000);
	}
	cr_assert_fail("VM %s: expected state %s, still %s", name, want, last);
}

Test(vm_rpc, hello_prints_and_powers_off_with_status_zero)
{
	json_object *r, *res;

	res = ok("vm.create", "{\"name\":\"hello\",\"memory\":\"32M\",\"payload\":\"builtin:hello\"}", &r);
	cr_assert_str_eq(str(res, "state"), "defined");
	json_object_put(r);
	res = ok("vm.start", "{\"name\":\"hello\"}", &r);
	/* hello may power off before the reply is built. */
	cr_assert(!strcmp(str(res, "state"), "running") || !strcmp(str(res, "state"), "stopped"),
		  "state after start: %s", str(res, "state"));
	json_object_put(r);
	wait_state("hello", "stopped");
	res = ok("vm.console", "{\"name\":\"hello\"}", &r);
	cr_assert(strstr(str(res, "data"), "Hello from slotd guest"), "console: %s", str(res, "data"));
	json_object_put(r);
	res = ok("vm.info", "{\"name\":\"hello\"}", &r);
	cr_assert_str_eq(str(res, "exit_status"), "0");
	json_object_put(r);
}

Test(vm_rpc, impossible_transitions_and_unknown_vms_are_clear_errors)
{
	json_object *r;

	ok("vm.create", "{\"name\":\"t\",\"memory\":\"16M\",\"payload\":\"builtin:busy\"}", &r);
	json_object_put(r);
	err("vm.pause", "{\"name\":\"t\"}", -32004, NULL);
	err("vm.resume", "{\"name\":\"t\"}", -32004, NULL);
	err("vm.stop", "{\"name\":\"t\"}", -32004, NULL);
	err("vm.create", "{\"name\":\"t\",\"memory\":\"16M\"}", -32003, "name");
	err("vm.start", "{\"name\":\"nope\"}", -32002, "name");
	err("vm.info", "{}", -32602, "name");
	err("vm.create", "{\"name\":\"x y\"}", -32602, "name");
	err("vm.create", "{\"name\":\"x\",\"memory\":\"12Q\"}", -32602, "memory");
	err("vm.create", "{\"name\":\"x\",\"vcpus\":0}", -32602, "vcpus");
	err("vm.create", "{\"name\":\"x\",\"type\":\"tdx\"}", -32602, "type");
	err("vm.create", "{\"name\":\"x\",\"payload\":\"builtin:nope\"}", -32002, "payload");
	ok("vm.start", "{\"name\":\"t\"}", &r);
	json_object_put(r);
	ok("vm.pause", "{\"name\":\"t\"}", &r);
	json_object_put(r);
	err("vm.pause", "{\"name\":\"t\"}", -32004, NULL);
	ok("vm.resume", "{\"name\":\"t\"}", &r);
	json_object_put(r);
	ok("vm.stop", "{\"name\":\"t\"}", &r);
	json_object_put(r);
	ok("vm.destroy", "{\"name\":\"t\"}", &r);
	json_object_put(r);
	err("vm.info", "{\"name\":\"t\"}", -32002, "name");
}

Test(vm_rpc, memory_write_then_read_round_trips_and_bounds_are_checked)
{
	json_object *r, *res;

	ok("vm.create", "{\"name\":\"m\",\"memory\":\"16M\",\"payload\":\"builtin:busy\"}", &r);
	json_object_put(r);
	/* "slotd!" */
	ok("vm.memory.write", "{\"name\":\"m\",\"gpa\":\"0x800000\",\"data\":\"c2xvdGQh\"}", &r);
	json_object_put(r);
	res = ok("vm.memory.read", "{\"name\":\"m\",\"gpa\":8388608,\"length\":6}", &r);
	cr_assert_str_eq(str(res, "data"), "c2xvdGQh");
	json_object_put(r);
	err("vm.memory.write", "{\"name\":\"m\",\"gpa\":0,\"data\":\"not base64!\"}", -32602, "data");
	err("vm.memory.read", "{\"name\":\"m\",\"gpa\":\"16M\",\"length\":1}", -32602, NULL);
	err("vm.memory.read", "{\"name\":\"m\",\"gpa\":0,\"length\":\"2M\"}", -32602, "length");
}

Test(vm_rpc, stats_show_kernel_counters_and_exits)
{
	json_object *r, *res, *kvm, *vm;

	ok("vm.create", "{\"name\":\"s\",\"memory\":\"16M\",\"payload\":\"builtin:hello\"}", &r);
	json_object_put(r);
	ok("vm.start", "{\"name\":\"s\"}", &r);
	json_object_put(r);
	wait_state("s", "stopped");
	res = ok("vm.stats", "{\"name\":\"s\"}", &r);
	cr_assert(json_object_object_get_ex(res, "kvm", &kvm) &&
		  json_object_object_get_ex(kvm, "vm", &vm), "stats: %s", json_object_to_json_string(res));
	cr_assert(json_object_object_get_ex(vm, "remote_tlb_flush", NULL), "no remote_tlb_flush");
	cr_assert(json_object_object_get_ex(vm, "mmu_shadow_zapped", NULL) ||
		  json_object_object_get_ex(vm, "pages_4k", NULL), "no MMU counters");
	cr_assert(json_object_object_get_ex(res, "exits", NULL), "no exit counts: %s",
		  json_object_to_json_string(res));
	cr_assert(json_object_object_get_ex(res, "engine", &kvm) &&
		  json_object_object_get_ex(kvm, "vm", &vm) &&
		  json_object_object_get_ex(vm, "roots_obsoleted", NULL) &&
		  json_object_object_get_ex(vm, "faults", NULL), "no engine counters: %s",
		  json_object_to_json_string(res));
	json_object_put(r);
}

Test(vm_rpc, a_crashing_guest_is_reported_and_the_daemon_serves_on)
{
	json_object *r, *res;
	int fd = test_connect(d.sock);
	char *line;
	bool seen = false;

	line = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\",\"params\":{\"topics\":[\"vm.state_changed\"]}}");
	cr_assert(line && strstr(line, "vm.state_changed"), "subscribe: %s", line);
	free(line);
	ok("vm.create", "{\"name\":\"c\",\"memory\":\"16M\",\"payload\":\"builtin:crash\"}", &r);
	json_object_put(r);
	ok("vm.start", "{\"name\":\"c\"}", &r);
	json_object_put(r);
	wait_state("c", "crashed");
	res = ok("vm.info", "{\"name\":\"c\"}", &r);
	cr_assert(strlen(str(res, "crash_reason")) > 0, "no crash reason");
	json_object_put(r);
	for (int i = 0; i < 3 && !seen; i++) {
		line = test_recv_line(fd, 5000);
		seen = line && strstr(line, "\"new_state\":\"crashed\"") && strstr(line, "\"reason\"");
		free(line);
	}
	cr_assert(seen, "no vm.state_changed notification with the crash reason");
	close(fd);
	ok("daemon.version", NULL, &r);
	json_object_put(r);
}

/* Runs on every host (its own suite: no skip without /dev/kvm). */
TestSuite(vm_rpc_no_kvm, .fini = stop);

/* The error's message for method, asserting it is -32001. */
static char *no_kvm_message(const char *method, const char *params)
{
	json_object *r = test_rpc(d.sock, method, params), *e, *m, *c;
	char *msg;

	cr_assert(r && json_object_object_get_ex(r, "error", &e) &&
		  json_object_object_get_ex(e, "code", &c) &&
		  json_object_object_get_ex(e, "message", &m), "%s: no error: %s", method,
		  r ? json_object_to_json_string(r) : "(no reply)");
	cr_assert_eq(json_object_get_int(c), -32001, "%s: %s", method,
		     json_object_to_json_string(e));
	msg = strdup(json_object_get_string(m));
	json_object_put(r);
	return msg;
}

Test(vm_rpc_no_kvm, every_vm_method_says_the_same_clear_thing_without_kvm)
{
	static const char *const calls[][2] = {
		{ "vm.start", "{\"name\":\"a\"}" },
		{ "vm.info", "{\"name\":\"a\"}" },
		{ "memslot.create", "{\"vm\":\"a\",\"gpa\":\"0x100000000\",\"size\":4096}" },
		{ "memslot.list", "{\"vm\":\"a\"}" },
		{ "vm.quirks.get", "{\"vm\":\"a\"}" },
	};
	const char *extra[] = { "--kvm-device", "/nonexistent/kvm", NULL };
	json_object *r, *res;
	char *first;

	cr_assert_eq(test_daemon_start(&d, extra), 0);
	first = no_kvm_message("vm.create", "{\"name\":\"a\"}");
	cr_assert(strstr(first, "KVM is unavailable on this host") &&
		  strstr(first, "/nonexistent/kvm"), "vm.create: '%s'", first);
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		char *m = no_kvm_message(calls[i][0], calls[i][1]);

		cr_assert_str_eq(m, first, "%s says something else than vm.create", calls[i][0]);
		free(m);
	}
	free(first);
	res = ok("vm.list", NULL, &r);
	cr_assert(json_object_object_get_ex(res, "vms", NULL));
	json_object_put(r);
}

Test(vm_rpc, memtouch_pass_times_arrive_as_reports)
{
	json_object *r, *res, *reps;
	int passes = 0, pages = 0;

	ok("vm.create", "{\"name\":\"mt\",\"memory\":\"32M\",\"ram\":\"anon\","
	   "\"payload\":\"builtin:memtouch\",\"args\":[4194304,3]}", &r);
	json_object_put(r);
	ok("vm.start", "{\"name\":\"mt\"}", &r);
	json_object_put(r);
	wait_state("mt", "stopped");
	res = ok("vm.reports", "{\"name\":\"mt\"}", &r);
	cr_assert(json_object_object_get_ex(res, "reports", &reps));
	for (size_t i = 0; i < json_object_array_length(reps); i++) {
		json_object *o = json_object_array_get_idx(reps, i), *v;

		json_object_object_get_ex(o, "value", &v);
		if (!strcmp(str(o, "tag"), "pass_ns")) {
			passes++;
			cr_assert_gt(json_object_get_uint64(v), 0, "a pass took no time");
		}
		if (!strcmp(str(o, "tag"), "pass_pages")) {
			pages++;
			cr_assert_eq(json_object_get_uint64(v), 1024, "4 MiB is 1024 pages, got %llu",
				     (unsigned long long)json_object_get_uint64(v));
		}
	}
	cr_assert_eq(passes, 3, "expected 3 pass_ns records, got %d", passes);
	cr_assert_eq(pages, 3);
	json_object_put(r);
	res = ok("vm.reports", "{\"name\":\"mt\",\"from\":1000}", &r);
	cr_assert(json_object_object_get_ex(res, "reports", &reps));
	cr_assert_eq(json_object_array_length(reps), 0);
	json_object_put(r);
}

/* Resident memory of process pid in KiB, from /proc/PID/statm (-1: no
 * such process). */
static long rss_kib(pid_t pid)
{
	char path[64], *s;
	long pages = -1, rss = -1;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	s = test_slurp(path);
	if (s && sscanf(s, "%ld %ld", &pages, &rss) == 2)
		rss *= sysconf(_SC_PAGESIZE) / 1024;
	free(s);
	return rss;
}

/* A guest's memory is its runner's, never slotd's: a guest that touched
 * 128 MiB makes its runner that much bigger and slotd not; vm.destroy
 * ends the runner, and the memory goes back with it. */
Test(vm_rpc, a_guests_memory_lives_in_its_runner_and_destroy_gives_it_back)
{
	json_object *r, *info;
	long base, touched, runner;
	pid_t pid;

	base = rss_kib(d.pid);
	cr_assert_gt(base, 0);
	ok("vm.create", "{\"name\":\"big\",\"memory\":\"160M\",\"ram\":\"anon\","
	   "\"payload\":\"builtin:memtouch\",\"args\":[134217728,1]}", &r);
	json_object_put(r);
	ok("vm.start", "{\"name\":\"big\"}", &r);
	json_object_put(r);
	wait_state("big", "stopped");
	info = ok("vm.info", "{\"name\":\"big\"}", &r);
	pid = (pid_t)json_object_get_int64(json_object_object_get(
		json_object_object_get(info, "runner"), "pid"));
	json_object_put(r);
	cr_assert_gt(pid, 0, "vm.info names the VM's runner process");
	cr_assert_neq(pid, d.pid);
	runner = rss_kib(pid);
	touched = rss_kib(d.pid);
	cr_assert_gt(runner, 128 * 1024, "the guest touched 128 MiB; its runner holds %ld KiB", runner);
	cr_assert_lt(touched - base, 8 * 1024, "slotd grew by %ld KiB with the guest's memory",
		     touched - base);
	ok("vm.destroy", "{\"name\":\"big\"}", &r);
	json_object_put(r);
	for (int i = 0; i < 500 && rss_kib(pid) >= 0; i++)
		usleep(10000);
	cr_assert_lt(rss_kib(pid), 0, "the runner (and its memory) is gone after vm.destroy");
}

/* SIGTERM with guests running: slotd stops them and exits 0, promptly. */
Test(vm_rpc, sigterm_stops_running_guests_and_exits_cleanly)
{
	json_object *r;
	struct timespec t0, t1;
	int st;

	for (int i = 0; i < 3; i++) {
		char p[128];

		snprintf(p, sizeof(p), "{\"name\":\"run%d\",\"memory\":\"16M\",\"vcpus\":2,"
			 "\"payload\":\"builtin:busy\"}", i);
		ok("vm.create", p, &r);
		json_object_put(r);
		snprintf(p, sizeof(p), "{\"name\":\"run%d\"}", i);
		ok("vm.start", p, &r);
		json_object_put(r);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	st = test_daemon_stop(&d);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_eq(st, 0, "slotd exited %d with guests running", st);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 5, "shutdown took %ld s", (long)(t1.tv_sec - t0.tv_sec));
}
