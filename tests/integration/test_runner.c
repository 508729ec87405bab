/* The runner process on its own, driven through runner/client.c as the
 * control plane drives it: a VM in its own process, typed calls, events,
 * transactions that commit or undo, adoption by a later controller, its
 * sandbox, and how its end is reported. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runner/runner.h"
#include "tests/lib/daemon.h"

static char dir[64];
static int kvm_fd = -1;
static struct runner *run;

/* What the event callback saw. */
static struct {
	unsigned states, gone;
	enum vmm_vm_state last;
	char why[160];
	char console[4096];
	size_t console_len;
} seen;

static void on_event(struct runner *r, const struct runner_event *ev, void *arg)
{
	(void)r;
	(void)arg;
	if (ev->kind == RUNNER_EV_STATE) {
		seen.states++;
		seen.last = ev->new_state;
	} else if (ev->kind == RUNNER_EV_GONE) {
		seen.gone++;
		snprintf(seen.why, sizeof(seen.why), "%s", ev->why);
	} else if (ev->kind == RUNNER_EV_CONSOLE) {
		size_t n = ev->len < sizeof(seen.console) - 1 - seen.console_len ?
			   ev->len : sizeof(seen.console) - 1 - seen.console_len;

		memcpy(seen.console + seen.console_len, ev->data, n);
		seen.console_len += n;
		seen.console[seen.console_len] = '\0';
	}
}

static void setup(void)
{
	memset(&seen, 0, sizeof(seen));
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		cr_skip_test("no usable /dev/kvm: %s", strerror(errno));
	snprintf(dir, sizeof(dir), "/tmp/slotd-runner-XXXXXX");
	cr_assert(mkdtemp(dir), "mkdtemp");
}

static void teardown(void)
{
	if (run) {
		runner_kill(run);
		runner_free(run);
		run = NULL;
	}
	if (kvm_fd >= 0)
		close(kvm_fd);
	if (dir[0])
		test_rmtree(dir);
	dir[0] = '\0';
}

TestSuite(runner, .init = setup, .fini = teardown, .timeout = 60);

static const char *runner_bin(void)
{
	static char path[512];
	const char *env = getenv("SLOTD_RUNNER_BIN");

	if (env)
		return env;
	snprintf(path, sizeof(path), "%s", test_slotd_bin());
	snprintf(strrchr(path, '/') ? strrchr(path, '/') + 1 : path, 64, "slotd-runner");
	return path;
}

static struct runner *spawn(const char *name)
{
	struct runner_spawn_config cfg = { .runner_path = runner_bin(), .runtime_dir = dir,
					   .kvm_fd = kvm_fd, .log_fd = -1 };
	struct vmm_err e = { 0 };
	struct runner *r = NULL;
	int rc = runner_spawn(&cfg, name, on_event, NULL, &r, &e);

	cr_assert_eq(rc, 0, "runner_spawn: %d (%s)", rc, e.msg);
	return r;
}

static void create(struct runner *r, const char *name, const char *payload)
{
	struct vmm_vm_params p = { .name = name, .vcpus = 1, .memory_bytes = 16u << 20,
				   .payload = payload };
	struct vmm_vm_info in;
	struct vmm_err e = { 0 };

	cr_assert_eq(runner_vm_create(r, &p, &in, &e), 0, "create: %s", e.msg);
	cr_assert_str_eq(in.name, name);
	cr_assert_eq(in.state, VMM_VM_DEFINED);
}

/* Pumps events until cond holds or ms pass. */
#define PUMP_UNTIL(r, cond, ms)						\
	do {								\
		for (int i_ = 0; i_ < (ms) / 10 && !(cond); i_++) {	\
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL); \
			runner_pump(r);					\
		}							\
	} while (0)

Test(runner, a_vm_runs_in_its_own_process_and_reports_its_state_and_console)
{
	struct vmm_vm_info in;
	struct vmm_err e = { 0 };

	run = spawn("hello1");
	cr_assert_neq(runner_pid(run), getpid());
	create(run, "hello1", "builtin:hello");
	cr_assert_eq(runner_vm_lifecycle(run, RUNNER_START, &in, &e), 0, "%s", e.msg);
	PUMP_UNTIL(run, seen.last == VMM_VM_STOPPED && strstr(seen.console, "Hello"), 5000);
	cr_assert_eq(seen.last, VMM_VM_STOPPED, "the guest powered off: last state %s",
		     vmm_vm_state_name(seen.last));
	cr_assert(strstr(seen.console, "Hello from slotd guest"),
		  "console events carry the guest's output: '%s'", seen.console);
	cr_assert_eq(runner_vm_info(run, &in, &e), 0, "%s", e.msg);
	cr_assert(in.has_exit_status && in.exit_status == 0);
}

static struct vmm_memslot_op anon_create(uint64_t gpa, uint64_t size)
{
	struct vmm_memslot_op op = { .kind = VMM_OP_CREATE };

	op.create.id = VMM_SLOT_ANY;
	op.create.gpa = gpa;
	op.create.size = size;
	op.create.backing.kind = VMM_BACKING_ANON;
	return op;
}

static bool has_slot_at(struct runner *r, uint64_t gpa)
{
	struct vmm_memslot_info *s;
	struct vmm_err e = { 0 };
	size_t n = 0;
	bool found = false;

	cr_assert_eq(runner_slots_get(r, &s, &n, &e), 0, "%s", e.msg);
	for (size_t i = 0; i < n; i++)
		found |= s[i].gpa == gpa;
	free(s);
	return found;
}

Test(runner, a_transaction_commits_or_is_undone_as_the_control_plane_says)
{
	struct vmm_memslot_op op = anon_create(1ull << 32, 1 << 20);
	struct vmm_effect fx;
	struct vmm_err e = { 0 };
	uint32_t ids[1];
	size_t failed;
	char buf[8] = "";

	run = spawn("txn");
	create(run, "txn", "builtin:busy");
	cr_assert_eq(runner_txn_apply(run, &op, 1, ids, &failed, &fx, &e), 0, "%s", e.msg);
	cr_assert_eq(runner_txn_end(run, false, &e), 0, "abort: %s", e.msg);
	cr_assert(!has_slot_at(run, 1ull << 32), "an aborted create is undone");

	cr_assert_eq(runner_txn_apply(run, &op, 1, ids, &failed, &fx, &e), 0, "%s", e.msg);
	cr_assert_eq(runner_txn_end(run, true, &e), 0, "commit: %s", e.msg);
	cr_assert(has_slot_at(run, 1ull << 32), "a committed create stays");
	cr_assert_gt(fx.n, 0, "the effect came back");
	cr_assert_eq(runner_memory_write(run, 1ull << 32, "abc", 3, &e), 0, "%s", e.msg);
	cr_assert_eq(runner_memory_read(run, 1ull << 32, buf, 3, &e), 0, "%s", e.msg);
	cr_assert_str_eq(buf, "abc");

	/* A failing op names its index and leaves nothing applied. */
	struct vmm_memslot_op two[2] = { anon_create(2ull << 32, 4096),
					 anon_create(1ull << 32, 4096) };
	cr_assert_eq(runner_txn_apply(run, two, 2, ids, &failed, &fx, &e), -EEXIST);
	cr_assert_eq(failed, 1, "the second op failed; got %zu", failed);
	cr_assert(strstr(e.msg, "overlaps memslot"), "%s", e.msg);
	cr_assert(!has_slot_at(run, 2ull << 32), "the first op was undone");
}

Test(runner, a_later_controller_adopts_the_runner_and_the_guest_keeps_running)
{
	struct vmm_vm_info a, b;
	struct vmm_err e = { 0 };
	char sock[128];
	pid_t pid;

	run = spawn("keep");
	create(run, "keep", "builtin:busy");
	cr_assert_eq(runner_vm_lifecycle(run, RUNNER_START, &a, &e), 0, "%s", e.msg);
	pid = runner_pid(run);
	snprintf(sock, sizeof(sock), "%s", runner_sock_path(run));
	runner_free(run);	/* slotd goes away; the runner stays */
	run = NULL;
	nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
	cr_assert_eq(kill(pid, 0), 0, "the runner outlives its controller");

	cr_assert_eq(runner_adopt(sock, 5000, on_event, NULL, &run, &e), 0, "adopt: %s", e.msg);
	cr_assert_eq(runner_pid(run), pid);
	cr_assert_str_eq(runner_vm_name(run), "keep");
	cr_assert_eq(runner_controllers(run), 2, "its second controller");
	cr_assert(!runner_is_child(run));
	cr_assert_eq(runner_vm_info(run, &b, &e), 0, "%s", e.msg);
	cr_assert_eq(b.state, VMM_VM_RUNNING);
	cr_assert_eq(b.start_ns, a.start_ns, "the same run: started at the same time");
	cr_assert_gt(b.uptime_ns, a.uptime_ns);
}

/* The value of "Key:" in /proc/pid/status. */
static char *status_field(pid_t pid, const char *key, char *buf, size_t len)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	cr_assert(f, "%s", path);
	buf[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':') {
			snprintf(buf, len, "%s", line + strlen(key) + 1);
			buf[strcspn(buf, "\n")] = '\0';
			for (char *p = buf; *p == '\t' || *p == ' ';)
				memmove(p, p + 1, strlen(p));
		}
	fclose(f);
	return buf;
}

Test(runner, the_runner_is_sandboxed_before_it_runs_guest_code)
{
	char v[64], fdpath[64];
	pid_t pid;
	int nfds = 0;

	run = spawn("sandbox");
	pid = runner_pid(run);
	cr_assert_str_eq(status_field(pid, "Seccomp", v, sizeof(v)), "2", "seccomp filter mode");
	cr_assert_str_eq(status_field(pid, "NoNewPrivs", v, sizeof(v)), "1");
	cr_assert_str_eq(status_field(pid, "CapEff", v, sizeof(v)), "0000000000000000");
	cr_assert_str_eq(status_field(pid, "CapPrm", v, sizeof(v)), "0000000000000000");
	cr_assert_str_eq(status_field(pid, "CapBnd", v, sizeof(v)), "0000000000000000");
	/* Its own descriptors only: stdio, KVM, its socket, the channel. */
	for (int fd = 0; fd < 64; fd++) {
		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", pid, fd);
		nfds += access(fdpath, F_OK) == 0;
	}
	cr_assert_leq(nfds, 7, "the runner holds %d descriptors before its VM exists", nfds);
}

Test(runner, a_syscall_outside_the_allow_list_is_refused)
{
	const char *argv[] = { runner_bin(), "--sandbox-check", NULL };
	char *out = NULL, *err = NULL;
	int st = test_run(argv, &out, &err);

	cr_assert_eq(st, 0, "every forbidden call refused; got status %d:\n%s%s", st,
		     out ? out : "", err ? err : "");
	cr_assert(strstr(out, "openat(\"/etc/hostname\"): refused (EPERM)"), "%s", out);
	cr_assert(strstr(out, "socket(AF_INET): refused (EPERM)"), "%s", out);
	cr_assert(strstr(out, "execve(\"/bin/true\"): refused (EPERM)"), "%s", out);
	cr_assert(strstr(out, "fork(): refused (EPERM)"), "%s", out);
	free(out);
	free(err);
}

Test(runner, a_killed_runner_is_reported_with_the_signal)
{
	struct vmm_vm_info in;
	struct vmm_err e = { 0 };

	run = spawn("victim");
	create(run, "victim", "builtin:busy");
	cr_assert_eq(kill(runner_pid(run), SIGKILL), 0);
	PUMP_UNTIL(run, seen.gone, 5000);
	cr_assert_eq(seen.gone, 1, "one GONE event");
	cr_assert(strstr(seen.why, "killed by KILL"), "the reason names the signal: %s", seen.why);
	cr_assert(!runner_alive(run));
	cr_assert_eq(runner_vm_info(run, &in, &e), -ECONNRESET, "calls fail afterwards");
	cr_assert(strstr(e.msg, "killed"), "%s", e.msg);
}
