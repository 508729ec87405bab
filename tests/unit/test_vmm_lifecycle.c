/* vmm lifecycle on the real /dev/kvm: every transition, valid and
 * invalid, guest power-off and crash, reboot, many VMs, memory return. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tests/lib/vmm_helpers.h"

#define ST(s) VMM_T_STATE(VMM_VM_##s)
#define DONE (ST(STOPPED) | ST(CRASHED))

VMM_T_SUITE(vmm_lifecycle, 60);

static struct vmm_vm *create(const char *name, const char *payload)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm = NULL;
	int r;

	vmm_t_params(&p, name, payload);
	r = vmm_vm_create(vmm, &p, &vm, &err);
	cr_assert_eq(r, 0, "create %s: expected 0, got %d (%s)", name, r, err.msg);
	return vm;
}

static enum vmm_vm_state state_of(struct vmm_vm *vm)
{
	struct vmm_vm_info info;

	vmm_vm_info_get(vm, &info);
	return info.state;
}

static void expect_state(struct vmm_vm *vm, enum vmm_vm_state want)
{
	enum vmm_vm_state got = state_of(vm);

	cr_assert_eq(got, want, "state: expected %s, got %s",
		     vmm_vm_state_name(want), vmm_vm_state_name(got));
}

/* A transition that must be refused with -EBUSY, leaving the state. */
static void refused(struct vmm_vm *vm, int (*fn)(struct vmm_vm *, struct vmm_err *),
		    const char *verb)
{
	struct vmm_err err = { 0 };
	enum vmm_vm_state before = state_of(vm);
	int r = fn(vm, &err);

	cr_assert_eq(r, -EBUSY, "%s from %s: expected -EBUSY, got %d", verb,
		     vmm_vm_state_name(before), r);
	cr_assert_str_eq(err.field, "state", "%s: error field expected state", verb);
	cr_assert(strstr(err.msg, vmm_vm_state_name(before)),
		  "%s: message should name state %s: '%s'", verb,
		  vmm_vm_state_name(before), err.msg);
	expect_state(vm, before);
}

static void ok(int r, const char *what, struct vmm_err *err)
{
	cr_assert_eq(r, 0, "%s: expected 0, got %d (%s)", what, r, err->msg);
}

Test(vmm_lifecycle, hello_prints_on_the_console_and_powers_off_with_zero)
{
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	static char buf[65536];
	struct vmm_vm *vm;

	NEED_KVM();
	vm = create("hello", "builtin:hello");
	expect_state(vm, VMM_VM_DEFINED);
	ok(vmm_vm_start(vm, &err), "start", &err);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0,
		     "hello did not finish within %u ms", VMM_T_WAIT_MS);
	vmm_vm_info_get(vm, &info);
	cr_assert_eq(info.state, VMM_VM_STOPPED, "expected stopped, got %s (%s)",
		     vmm_vm_state_name(info.state), info.crash_reason);
	cr_assert(info.has_exit_status && info.exit_status == 0,
		  "expected exit status 0, got has=%d status=%u",
		  info.has_exit_status, info.exit_status);
	cr_assert(strstr(vmm_t_console(vm, buf, sizeof(buf)),
			 "Hello from slotd guest: vcpu 0 of 1, 16 MiB RAM"),
		  "console lacks the greeting: '%s'", buf);
	cr_assert_gt(info.exits_total, 0, "expected exits to be counted");
	ok(vmm_vm_destroy(vm, &err), "destroy", &err);
	cr_assert_null(vmm_vm_find(vmm, "hello"), "destroyed VM still found");
}

Test(vmm_lifecycle, every_transition_valid_and_invalid)
{
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;

	NEED_KVM();
	vm = create("busy", "builtin:busy");
	refused(vm, vmm_vm_pause, "pause");
	refused(vm, vmm_vm_resume, "resume");
	refused(vm, vmm_vm_stop, "stop");
	ok(vmm_vm_start(vm, &err), "start from defined", &err);
	expect_state(vm, VMM_VM_RUNNING);
	refused(vm, vmm_vm_start, "start");
	refused(vm, vmm_vm_resume, "resume");
	ok(vmm_vm_pause(vm, &err), "pause", &err);
	expect_state(vm, VMM_VM_PAUSED);
	refused(vm, vmm_vm_start, "start");
	refused(vm, vmm_vm_pause, "pause");
	ok(vmm_vm_resume(vm, &err), "resume", &err);
	expect_state(vm, VMM_VM_RUNNING);
	ok(vmm_vm_stop(vm, &err), "stop from running", &err);
	expect_state(vm, VMM_VM_STOPPED);
	refused(vm, vmm_vm_pause, "pause");
	refused(vm, vmm_vm_resume, "resume");
	refused(vm, vmm_vm_stop, "stop");
	ok(vmm_vm_start(vm, &err), "start from stopped", &err);
	ok(vmm_vm_pause(vm, &err), "pause", &err);
	ok(vmm_vm_stop(vm, &err), "stop from paused", &err);
	expect_state(vm, VMM_VM_STOPPED);
	ok(vmm_vm_destroy(vm, &err), "destroy stopped", &err);
}

Test(vmm_lifecycle, destroy_works_from_defined_running_and_paused)
{
	struct vmm_err err = { 0 };
	struct vmm_vm *a, *b, *c;

	NEED_KVM();
	a = create("d-defined", "builtin:busy");
	b = create("d-running", "builtin:busy");
	c = create("d-paused", "builtin:busy");
	ok(vmm_vm_start(b, &err), "start", &err);
	ok(vmm_vm_start(c, &err), "start", &err);
	ok(vmm_vm_pause(c, &err), "pause", &err);
	ok(vmm_vm_destroy(a, &err), "destroy defined", &err);
	ok(vmm_vm_destroy(b, &err), "destroy running", &err);
	ok(vmm_vm_destroy(c, &err), "destroy paused", &err);
	cr_assert_null(vmm_vm_find(vmm, "d-running"), "VM still listed");
}

Test(vmm_lifecycle, crashing_payload_leaves_vm_crashed_with_reason_others_go_on)
{
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	struct vmm_vm *bad, *good;
	static char buf[65536];

	NEED_KVM();
	good = create("good", "builtin:busy");
	bad = create("bad", "builtin:crash");
	ok(vmm_vm_start(good, &err), "start good", &err);
	ok(vmm_vm_start(bad, &err), "start bad", &err);
	cr_assert_eq(vmm_vm_wait_state(bad, DONE, VMM_T_WAIT_MS), 0,
		     "crash payload did not end");
	vmm_vm_info_get(bad, &info);
	cr_assert_eq(info.state, VMM_VM_CRASHED, "expected crashed, got %s",
		     vmm_vm_state_name(info.state));
	cr_assert(strstr(info.crash_reason, "vcpu0:") &&
		  strstr(info.crash_reason, "rip 0x"),
		  "reason should name vCPU and RIP: '%s'", info.crash_reason);
	cr_assert(strstr(vmm_t_console(bad, buf, sizeof(buf)), "crash: faulting"),
		  "console: '%s'", buf);
	expect_state(good, VMM_VM_RUNNING);
	refused(bad, vmm_vm_stop, "stop");
	refused(bad, vmm_vm_pause, "pause");
	/* Start after a crash reboots the payload. */
	ok(vmm_vm_start(bad, &err), "start from crashed", &err);
	cr_assert_eq(vmm_vm_wait_state(bad, DONE, VMM_T_WAIT_MS), 0, "reboot");
	expect_state(bad, VMM_VM_CRASHED);
	ok(vmm_vm_stop(good, &err), "stop good", &err);
}

Test(vmm_lifecycle, reboot_after_power_off_runs_the_payload_again)
{
	struct vmm_err err = { 0 };
	static char buf[65536];
	const char *p;
	struct vmm_vm *vm;
	int n = 0;

	NEED_KVM();
	vm = create("again", "builtin:hello");
	for (int i = 0; i < 2; i++) {
		ok(vmm_vm_start(vm, &err), "start", &err);
		cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0, "wait");
		expect_state(vm, VMM_VM_STOPPED);
	}
	for (p = vmm_t_console(vm, buf, sizeof(buf)); (p = strstr(p, "Hello")); p++)
		n++;
	cr_assert_eq(n, 2, "expected 2 greetings after 2 boots, got %d", n);
}

Test(vmm_lifecycle, stop_during_a_busy_loop_completes_within_bounds)
{
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	uint64_t t0, dt_ms;
	struct timespec ts;

	NEED_KVM();
	vm = create("spin", "builtin:busy");
	ok(vmm_vm_start(vm, &err), "start", &err);
	nanosleep(&(struct timespec){ 0, 50 * 1000000 }, NULL);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	ok(vmm_vm_stop(vm, &err), "stop", &err);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	dt_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - t0;
	cr_assert_lt(dt_ms, 500, "stop took %llu ms, expected < 500",
		     (unsigned long long)dt_ms);
	expect_state(vm, VMM_VM_STOPPED);
}

Test(vmm_lifecycle, pause_stops_guest_progress_and_resume_restarts_it)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	size_t a, b, c;

	NEED_KVM();
	vmm_t_params(&p, "ticker", "builtin:busy");
	p.args[0] = 1u << 20;		/* a report every 2^20 iterations */
	ok(vmm_vm_create(vmm, &p, &vm, &err), "create", &err);
	ok(vmm_vm_start(vm, &err), "start", &err);
	nanosleep(&(struct timespec){ 0, 100 * 1000000 }, NULL);
	ok(vmm_vm_pause(vm, &err), "pause", &err);
	a = vmm_t_reports(vm, 0x1000, NULL);
	nanosleep(&(struct timespec){ 0, 100 * 1000000 }, NULL);
	b = vmm_t_reports(vm, 0x1000, NULL);
	cr_assert_gt(a, 0, "guest made no progress before pause");
	cr_assert_eq(a, b, "guest progressed while paused: %zu -> %zu", a, b);
	ok(vmm_vm_resume(vm, &err), "resume", &err);
	nanosleep(&(struct timespec){ 0, 100 * 1000000 }, NULL);
	c = vmm_t_reports(vm, 0x1000, NULL);
	cr_assert_gt(c, b, "no progress after resume: %zu -> %zu", b, c);
	ok(vmm_vm_stop(vm, &err), "stop", &err);
}

static int count_vm(struct vmm_vm *vm, void *arg)
{
	(void)vm;
	(*(size_t *)arg)++;
	return 0;
}

Test(vmm_lifecycle, eight_vms_run_at_once)
{
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	struct vmm_vm *vms[8];
	char name[16];
	size_t count = 0;

	NEED_KVM();
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "vm%d", i);
		vms[i] = create(name, i % 2 ? "builtin:hello" : "builtin:dmatest");
	}
	for (int i = 0; i < 8; i++)
		ok(vmm_vm_start(vms[i], &err), "start", &err);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(vmm_vm_wait_state(vms[i], DONE, VMM_T_WAIT_MS), 0,
			     "vm%d did not finish", i);
		vmm_vm_info_get(vms[i], &info);
		cr_assert(info.state == VMM_VM_STOPPED && info.exit_status == 0,
			  "vm%d: expected stopped with 0, got %s/%u (%s)", i,
			  vmm_vm_state_name(info.state), info.exit_status,
			  info.crash_reason);
	}
	vmm_vm_foreach(vmm, count_vm, &count);
	cr_assert_eq(count, 8, "foreach: expected 8 VMs, got %zu", count);
}

Test(vmm_lifecycle, destroy_returns_the_memory)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	long base, peak, after;

	NEED_KVM();
	base = vmm_t_rss_kib();
	vmm_t_params(&p, "big", "builtin:memcheck");
	p.memory_bytes = 256u << 20;
	ok(vmm_vm_create(vmm, &p, &vm, &err), "create", &err);
	ok(vmm_vm_start(vm, &err), "start", &err);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, 30000), 0, "memcheck did not end");
	expect_state(vm, VMM_VM_STOPPED);
	peak = vmm_t_rss_kib();
	ok(vmm_vm_destroy(vm, &err), "destroy", &err);
	after = vmm_t_rss_kib();
	cr_assert_gt(peak - base, 200 * 1024,
		     "memcheck should have touched ~250 MiB: rss %ld -> %ld KiB",
		     base, peak);
	cr_assert_lt(after - base, 32 * 1024,
		     "rss after destroy: expected near %ld KiB, got %ld KiB (peak %ld)",
		     base, after, peak);
}

struct transitions {
	pthread_mutex_t lock;
	int n;
	enum vmm_vm_state from[8], to[8];
};

static void record(struct vmm_vm *vm, enum vmm_vm_state o,
		   enum vmm_vm_state n, void *arg)
{
	struct transitions *t = arg;

	(void)vm;
	pthread_mutex_lock(&t->lock);
	if (t->n < 8) {
		t->from[t->n] = o;
		t->to[t->n] = n;
		t->n++;
	}
	pthread_mutex_unlock(&t->lock);
}

Test(vmm_lifecycle, state_callback_sees_guest_and_control_transitions)
{
	static struct transitions t = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct vmm_config cfg = { .on_state_change = record, .cb_arg = &t };
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm *own;
	struct vmm_vm *vm;

	NEED_KVM();
	cr_assert_eq(vmm_create(&cfg, &own), 0, "vmm_create");
	vmm_t_params(&p, "cb", "builtin:hello");
	ok(vmm_vm_create(own, &p, &vm, &err), "create", &err);
	ok(vmm_vm_start(vm, &err), "start", &err);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0, "wait");
	vmm_destroy(own);
	pthread_mutex_lock(&t.lock);
	cr_assert_eq(t.n, 2, "expected 2 transitions, got %d", t.n);
	cr_assert(t.from[0] == VMM_VM_DEFINED && t.to[0] == VMM_VM_RUNNING,
		  "first: expected defined->running, got %s->%s",
		  vmm_vm_state_name(t.from[0]), vmm_vm_state_name(t.to[0]));
	cr_assert(t.from[1] == VMM_VM_RUNNING && t.to[1] == VMM_VM_STOPPED,
		  "second: expected running->stopped, got %s->%s",
		  vmm_vm_state_name(t.from[1]), vmm_vm_state_name(t.to[1]));
	pthread_mutex_unlock(&t.lock);
}

Test(vmm_lifecycle, pause_and_stop_count_parked_vcpus_as_quiescent)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;

	NEED_KVM();
	vmm_t_params(&p, "smp-busy", "builtin:busy");
	p.vcpus = 3;			/* vCPUs 1 and 2 park at once */
	ok(vmm_vm_create(vmm, &p, &vm, &err), "create", &err);
	ok(vmm_vm_start(vm, &err), "start", &err);
	for (int i = 0; i < 20; i++) {
		ok(vmm_vm_pause(vm, &err), "pause", &err);
		expect_state(vm, VMM_VM_PAUSED);
		ok(vmm_vm_resume(vm, &err), "resume", &err);
	}
	ok(vmm_vm_stop(vm, &err), "stop", &err);
	expect_state(vm, VMM_VM_STOPPED);
}

Test(vmm_lifecycle, stop_and_restart_in_the_middle_of_device_exits)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	struct vmm_vm *vm;

	NEED_KVM();
	vmm_t_params(&p, "churn", "builtin:busy");
	p.args[0] = 1u << 12;		/* an MMIO exit every few microseconds */
	ok(vmm_vm_create(vmm, &p, &vm, &err), "create", &err);
	for (int i = 0; i < 20; i++) {
		ok(vmm_vm_start(vm, &err), "start", &err);
		nanosleep(&(struct timespec){ 0, 3 * 1000000 }, NULL);
		ok(vmm_vm_stop(vm, &err), "stop", &err);
		vmm_vm_info_get(vm, &info);
		cr_assert_eq(info.state, VMM_VM_STOPPED, "round %d: %s (%s)", i,
			     vmm_vm_state_name(info.state), info.crash_reason);
	}
	cr_assert_gt(vmm_t_reports(vm, 0x1000, NULL), 20, "guest never ran");
}
