/* VM definitions and memslot layouts survive a restart of slotd, also a
 * kill -9 in the middle of a stream of changes: every vm-*.json parses and
 * restores, and every change that was answered is in it. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
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
static char top[64];
static char files[128];
static char shm[128];		/* tmpfs dir for memfd-by-path slots */

static void setup(void)
{
	char tmpl[] = "/tmp/slotd-persist-XXXXXX";

	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("no usable /dev/kvm on this host: the persistence tests need it");
	/* Writes to a daemon killed with SIGKILL must fail, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(top, sizeof(top), "%s", tmpl);
	snprintf(files, sizeof(files), "%s/files", top);
	cr_assert_eq(mkdir(files, 0700), 0);
	snprintf(shm, sizeof(shm), "/dev/shm/slotd-persist-XXXXXX");
	if (!mkdtemp(shm))
		snprintf(shm, sizeof(shm), "%s", files);
}

/* Starts slotd; with stop, a clean exit ends its guests (as a reboot of
 * the host would), so the next start recreates them from the state. */
static void start_with(bool stop)
{
	const char *extra[] = { "--file-dir", files, "--file-dir", shm, "--vms-on-exit",
				stop ? "stop" : "keep", NULL };

	cr_assert_eq(test_daemon_start_in(&d, top, extra), 0, "slotd did not start; log:\n%s",
		     test_slurp(d.log));
}

static void start(void)
{
	start_with(false);
}

static void teardown(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
	if (top[0])
		test_rmtree(top);
	if (shm[0] && strcmp(shm, files))
		test_rmtree(shm);
}

TestSuite(persist, .init = setup, .fini = teardown, .timeout = 180);

/* Short names for the shared assertions, on this file's daemon. */
#define ok(m, p, r)	t_rpc_ok(&d, m, p, r)
#define ok_put(m, p)	t_rpc_ok_put(&d, m, p)

static json_object *member(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k, json_object_to_json_string(o));
	return v;
}

/* memslot.list of vm as compact JSON, without the effect-free noise. */
static char *layout(const char *vm)
{
	json_object *r, *res;
	char p[128], *s;

	snprintf(p, sizeof(p), "{\"vm\":\"%s\"}", vm);
	res = ok("memslot.list", p, &r);
	s = strdup(json_object_to_json_string_ext(member(res, "memslots"), JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
	return s;
}

/* Kills slotd with SIGKILL, starts it again and asserts that vm's layout
 * is before, the one answered before the kill; returns it (free it). */
static char *kill9_keeps_layout(const char *vm, const char *before)
{
	char *after;
	int st;

	kill(d.pid, SIGKILL);
	waitpid(d.pid, &st, 0);
	d.pid = -1;
	start();
	after = layout(vm);
	cr_assert_str_eq(after, before, "the layout after kill -9 differs from the answered one");
	return after;
}

/* Without runners left (slotd ended its guests), a restart recreates
 * every VM from the state directory. */
Test(persist, restart_restores_vms_slots_quirks_and_file_contents)
{
	json_object *r, *res, *q;
	char p[512], *before, *after;
	bool zap = true;

	start_with(true);
	ok_put("vm.create", "{\"name\":\"keep\",\"memory\":\"16M\",\"payload\":\"builtin:busy\","
	       "\"args\":[7,8],\"ram\":\"anon\"}");
	ok_put("vm.create", "{\"name\":\"gone\",\"memory\":\"16M\"}");
	ok_put("vm.quirks.set", "{\"vm\":\"keep\",\"quirk\":\"slot_zap_all\",\"enabled\":false}");
	ok_put("memslot.create", "{\"vm\":\"keep\",\"gpa\":\"0x100000000\",\"size\":\"8K\"}");
	snprintf(p, sizeof(p), "{\"vm\":\"keep\",\"gpa\":\"0x110000000\",\"size\":\"64K\","
		 "\"flags\":[\"dirty_log\"],\"backing\":{\"kind\":\"file\",\"path\":\"%s/keep.bin\","
		 "\"shared\":true}}", files);
	ok_put("memslot.create", p);
	ok_put("memslot.create", "{\"vm\":\"keep\",\"gpa\":\"0x120000000\",\"size\":\"4K\",\"slot\":9}");
	ok_put("memslot.move", "{\"vm\":\"keep\",\"slot\":9,\"gpa\":\"0x130000000\"}");
	snprintf(p, sizeof(p), "{\"vm\":\"keep\",\"gpa\":\"0x140000000\",\"size\":\"16K\","
		 "\"backing\":{\"kind\":\"memfd\",\"path\":\"%s/keep.mem\"}}", shm);
	ok_put("memslot.create", p);
	ok_put("vm.memory.write", "{\"name\":\"keep\",\"gpa\":\"0x110002000\",\"data\":\"c2xvdGQh\"}");
	ok_put("vm.memory.write", "{\"name\":\"keep\",\"gpa\":\"0x140001000\",\"data\":\"bWVtZmQh\"}");
	ok_put("vm.destroy", "{\"name\":\"gone\"}");
	before = layout("keep");
	cr_assert_eq(test_daemon_stop(&d), 0, "slotd did not stop cleanly");
	cr_assert_eq(test_runners_kill(top), 0, "--vms-on-exit stop ended every runner");
	start_with(true);
	res = ok("vm.info", "{\"name\":\"keep\"}", &r);
	cr_assert(json_object_get_boolean(member(res, "restored")), "vm.info: restored must be true");
	cr_assert(!json_object_get_boolean(member(res, "adopted")), "no runner to adopt");
	cr_assert_str_eq(json_object_get_string(member(res, "state")), "defined");
	cr_assert_eq(json_object_get_int64(member(res, "memory")), 16 << 20);
	q = member(res, "quirks_enabled");
	for (size_t i = 0; i < json_object_array_length(q); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(q, i)), "slot_zap_all"))
			zap = false;
	cr_assert(zap, "slot_zap_all was disabled before the restart: %s", json_object_to_json_string(q));
	json_object_put(r);
	after = layout("keep");
	cr_assert_str_eq(after, before, "the layout after the restart differs");
	res = ok("vm.memory.read", "{\"name\":\"keep\",\"gpa\":\"0x110002000\",\"length\":6}", &r);
	cr_assert_str_eq(json_object_get_string(member(res, "data")), "c2xvdGQh",
			 "a file-backed slot keeps its contents across a restart");
	json_object_put(r);
	res = ok("vm.memory.read", "{\"name\":\"keep\",\"gpa\":\"0x140001000\",\"length\":6}", &r);
	cr_assert_str_eq(json_object_get_string(member(res, "data")), "bWVtZmQh",
			 "a memfd-by-path slot keeps its contents across a restart");
	json_object_put(r);
	r = test_rpc(d.sock, "vm.info", "{\"name\":\"gone\"}");
	cr_assert(r && json_object_object_get_ex(r, "error", NULL), "a destroyed VM came back: %s",
		  json_object_to_json_string(r));
	json_object_put(r);
	cr_assert(strstr(test_slurp(d.log), "0 VM(s) adopted, 1 recreated"),
		  "the log sums up what was restored");
	free(before);
	free(after);
}

Test(persist, a_vm_created_after_start_is_not_marked_restored)
{
	json_object *r, *res;

	start();
	ok_put("vm.create", "{\"name\":\"fresh\",\"memory\":\"16M\"}");
	res = ok("vm.info", "{\"name\":\"fresh\"}", &r);
	cr_assert(!json_object_get_boolean(member(res, "restored")), "restored must be false");
	json_object_put(r);
}

Test(persist, a_file_that_cannot_be_restored_is_kept_as_failed)
{
	char path[256], failed[300];
	FILE *f;

	cr_assert_eq(mkdir(strcat(strcpy(path, top), "/state"), 0700), 0);
	snprintf(path, sizeof(path), "%s/state/vm-bad.json", top);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"version\":1,\"vm\":{\"name\":\"bad\",\"type\":\"default\",\"vcpus\":1,"
	      "\"memory\":16777216,\"payload\":\"builtin:hello\"},\"memslots\":["
	      "{\"slot\":1,\"gpa\":\"0x100000000\",\"size\":8192},"
	      "{\"slot\":2,\"gpa\":\"0x100001000\",\"size\":4096}]}", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/state/vm-junk.json", top);
	f = fopen(path, "w");
	fputs("{\"version\":1,\"vm\":{\"name\":\"ju", f);
	fclose(f);
	start();
	/* Restoring happens before the first request is served. */
	ok_put("daemon.version", NULL);
	snprintf(failed, sizeof(failed), "%s/state/vm-bad.json.failed", top);
	cr_assert_eq(access(failed, F_OK), 0, "an overlapping layout must be kept as %s", failed);
	snprintf(failed, sizeof(failed), "%s/state/vm-junk.json.failed", top);
	cr_assert_eq(access(failed, F_OK), 0, "a truncated file must be kept as %s", failed);
	cr_assert_neq(access(path, F_OK), 0, "%s must be renamed", path);
	cr_assert(strstr(test_slurp(d.log), "overlaps memslot 1"), "the log says why: %s",
		  test_slurp(d.log));
	cr_assert(strstr(test_slurp(d.log), "2 failed"), "the summary counts the failures");
	/* A failed VM leaves nothing half-made behind. */
	ok_put("vm.create", "{\"name\":\"bad\",\"memory\":\"16M\"}");
}

/* Parses every vm-*.json in dir; returns how many there are. */
static int state_files_parse(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(dp, "no state dir %s", dir);
	while ((e = readdir(dp))) {
		char path[512];
		json_object *o;

		if (strncmp(e->d_name, "vm-", 3) || !strstr(e->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		cr_assert(!strstr(e->d_name, ".failed"), "%s could not be restored", path);
		o = json_object_from_file(path);
		cr_assert_not_null(o, "%s does not parse after kill -9:\n%s", path, test_slurp(path));
		json_object_put(o);
		n++;
	}
	closedir(dp);
	return n;
}

/* Does the restarted daemon's VM vm have a slot at gpa? */
static bool restored_has_gpa(const char *vm, unsigned long long gpa)
{
	char params[128], needle[64];
	json_object *r;
	bool found;

	snprintf(params, sizeof(params), "{\"vm\":\"%s\"}", vm);
	snprintf(needle, sizeof(needle), "\"0x%llx\"", gpa);
	found = strstr(json_object_to_json_string(ok("memslot.list", params, &r)), needle);
	json_object_put(r);
	return found;
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

/* Sends creates on one connection until the daemon dies; returns the
 * highest GPA index that was answered with a result (-1: none). */
static long hammer(unsigned long long *next)
{
	int fd = test_connect(d.sock);
	long acked = -1;

	cr_assert_geq(fd, 0);
	for (int i = 0; i < 100000; i++) {
		char line[256], *reply;
		unsigned long long idx = (*next)++;

		snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"memslot.create\","
			 "\"params\":{\"vm\":\"h\",\"gpa\":%llu,\"size\":4096}}", i,
			 0x100000000ull + idx * 0x1000);
		reply = test_rpc_raw(fd, line);
		if (!reply)
			break;
		cr_assert(strstr(reply, "\"result\""), "create: %s", reply);
		acked = (long)idx;
		free(reply);
	}
	close(fd);
	return acked;
}

Test(persist, kill_9_during_creates_never_leaves_a_broken_state_file)
{
	unsigned long long next = 0;
	char state[300], file[400];
	json_object *r;
	int n;

	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(file, sizeof(file), "%s/vm-h.json", state);
	start();
	ok_put("vm.create", "{\"name\":\"h\",\"memory\":\"16M\"}");
	for (int round = 0; round < 5; round++) {
		pid_t k = killer(d.pid);
		long acked = hammer(&next);
		int st;

		waitpid(k, &st, 0);
		waitpid(d.pid, &st, 0);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: slotd was not killed", round);
		d.pid = -1;
		cr_assert_eq(state_files_parse(state), 1, "round %d: expected vm-h.json only", round);
		start();
		ok("vm.info", "{\"name\":\"h\"}", &r);
		json_object_put(r);
		if (acked >= 0)
			cr_assert(restored_has_gpa("h", 0x100000000ull + (unsigned long long)acked * 0x1000),
				  "round %d: the answered create of index %ld was not restored (%s)",
				  round, acked, file);
		cr_assert_eq(state_files_parse(state), 1, "round %d: the file must restore", round);
	}
	n = json_object_get_int(member(ok("memslot.list", "{\"vm\":\"h\"}", &r), "count"));
	json_object_put(r);
	cr_log_info("kill -9: %llu creates sent, %d slots restored", next, n - 1);
	cr_assert_gt(n, 10, "the rounds made too few changes to mean anything (%d slots)", n);
}

/* vm.quirks.get of vm: is quirk enabled? */
static bool quirk_enabled(const char *vm, const char *quirk)
{
	char params[128];
	json_object *r, *a, *q;
	bool on = false, found = false;

	snprintf(params, sizeof(params), "{\"vm\":\"%s\"}", vm);
	a = member(ok("vm.quirks.get", params, &r), "quirks");
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		q = json_object_array_get_idx(a, i);
		if (strcmp(json_object_get_string(member(q, "name")), quirk))
			continue;
		found = true;
		on = json_object_get_boolean(member(q, "enabled"));
	}
	cr_assert(found, "no quirk %s in %s", quirk, json_object_to_json_string(r));
	json_object_put(r);
	return on;
}

/* Asserts error -32010 with data.file == file. */
static void state_io_error(const char *method, const char *params, const char *file)
{
	json_object *r = test_rpc(d.sock, method, params), *e, *data;

	cr_assert(r && json_object_object_get_ex(r, "error", &e), "%s: expected -32010, got %s",
		  method, json_object_to_json_string(r));
	cr_assert_eq(json_object_get_int(member(e, "code")), -32010, "%s: expected -32010, got %s",
		     method, json_object_to_json_string(e));
	data = member(e, "data");
	cr_assert_str_eq(json_object_get_string(member(data, "file")), file);
	json_object_put(r);
}

Test(persist, a_change_that_cannot_be_written_is_error_32010_naming_the_file)
{
	char path[512], *text;
	json_object *r;

	start();
	ok_put("vm.create", "{\"name\":\"w\",\"memory\":\"16M\"}");
	ok_put("memslot.create", "{\"vm\":\"w\",\"gpa\":\"0x200000000\",\"size\":4096}");
	/* A non-empty directory where the journal goes: nothing can open it,
	 * even root.  The open journal was removed: the next change goes to
	 * a snapshot, and the journal cannot be emptied and opened again. */
	snprintf(path, sizeof(path), "%s/state/vm-w.journal", top);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/state/vm-w.journal/x", top);
	cr_assert_eq(mkdir(path, 0700), 0);
	ok_put("memslot.create", "{\"vm\":\"w\",\"gpa\":\"0x400000000\",\"size\":4096}");
	snprintf(path, sizeof(path), "%s/state/vm-w.json", top);
	text = test_slurp(path);
	cr_assert(text && strstr(text, "\"gpa\":17179869184"),
		  "the change after the journal went (gpa 0x400000000) should be in the snapshot: %s",
		  text);
	free(text);
	cr_assert(strstr(test_slurp(d.log), "cannot empty its journal"), "the failure is logged");
	/* The same for the snapshot, whose rename() must fail now. */
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/state/vm-w.json/x", top);
	cr_assert_eq(mkdir(path, 0700), 0);
	state_io_error("memslot.create", "{\"vm\":\"w\",\"gpa\":\"0x100000000\",\"size\":4096}",
		       "vm-w.journal");
	/* After a failed append the next change goes to the snapshot. */
	state_io_error("memslot.delete", "{\"vm\":\"w\",\"slot\":1}", "vm-w.json");
	/* Not persisted, so not applied: the created slot is gone again and
	 * the one whose deletion could not be saved is still there. */
	cr_assert_eq(json_object_get_int(member(ok("memslot.list", "{\"vm\":\"w\"}", &r), "count")), 3,
		     "boot RAM and slots 1 and 2 must remain: %s", json_object_to_json_string(r));
	json_object_put(r);
	/* A transaction is undone whole (before its vCPUs run again), and a
	 * quirk change is written before it is made. */
	state_io_error("memslot.transaction", "{\"vm\":\"w\",\"ops\":["
		       "{\"op\":\"create\",\"gpa\":\"0x300000000\",\"size\":4096},"
		       "{\"op\":\"delete\",\"slot\":1}]}", "vm-w.json");
	cr_assert_eq(json_object_get_int(member(ok("memslot.list", "{\"vm\":\"w\"}", &r), "count")), 3,
		     "the transaction must be undone: %s", json_object_to_json_string(r));
	json_object_put(r);
	ok_put("vm.memory.read", "{\"name\":\"w\",\"gpa\":\"0x200000000\",\"length\":8}");
	state_io_error("vm.quirks.set", "{\"vm\":\"w\",\"quirk\":\"slot_zap_all\","
		       "\"enabled\":false}", "vm-w.json");
	cr_assert(quirk_enabled("w", "slot_zap_all"), "a quirk change that cannot be saved "
		  "is not made");
	snprintf(path, sizeof(path), "%s/state/vm-n.json", top);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/state/vm-n.json/x", top);
	cr_assert_eq(mkdir(path, 0700), 0);
	state_io_error("vm.create", "{\"name\":\"n\",\"memory\":\"16M\"}", "vm-n.json");
	r = test_rpc(d.sock, "vm.info", "{\"name\":\"n\"}");
	cr_assert(r && json_object_object_get_ex(r, "error", NULL),
		  "a VM whose state could not be written must not exist: %s",
		  json_object_to_json_string(r));
	json_object_put(r);
	cr_assert(strstr(test_slurp(d.log), "cannot write"), "the failure is logged");
}

/* A journal removed by hand under a running slotd: the next change writes
 * a snapshot, which holds the changes that were only in the journal. */
Test(persist, a_journal_removed_by_hand_loses_no_change_after_the_next_one)
{
	char path[512], *before, *after;

	start();
	ok_put("vm.create", "{\"name\":\"g\",\"memory\":\"16M\"}");
	ok_put("memslot.create", "{\"vm\":\"g\",\"gpa\":\"0x100000000\",\"size\":4096}");
	ok_put("memslot.create", "{\"vm\":\"g\",\"gpa\":\"0x200000000\",\"size\":8192}");
	ok_put("memslot.move", "{\"vm\":\"g\",\"slot\":1,\"gpa\":\"0x300000000\"}");
	snprintf(path, sizeof(path), "%s/state/vm-g.journal", top);
	cr_assert_eq(unlink(path), 0);
	ok_put("memslot.create", "{\"vm\":\"g\",\"gpa\":\"0x400000000\",\"size\":4096}");
	/* And the journal opened again after that snapshot keeps working. */
	ok_put("memslot.delete", "{\"vm\":\"g\",\"slot\":2}");
	cr_assert_eq(access(path, F_OK), 0, "the journal should be there again");
	before = layout("g");
	cr_assert(strstr(before, "0x300000000") && strstr(before, "0x400000000") &&
		  !strstr(before, "0x200000000"), "unexpected layout %s", before);
	after = kill9_keeps_layout("g", before);
	free(before);
	free(after);
}

/* Hundreds of changes cross the journal's compaction point (a snapshot
 * every 256 records) and a kill -9 lands between: the layout comes back
 * exactly, replayed from the snapshot and the journal after it. */
Test(persist, journal_and_snapshots_restore_the_exact_layout_after_kill_9)
{
	char p[256], *before, *after;

	start();
	ok_put("vm.create", "{\"name\":\"j\",\"memory\":\"16M\"}");
	for (int i = 0; i < 300; i++) {
		snprintf(p, sizeof(p), "{\"vm\":\"j\",\"gpa\":%llu,\"size\":4096}",
			 0x100000000ull + (unsigned long long)i * 0x1000);
		ok_put("memslot.create", p);
	}
	for (int i = 1; i <= 60; i += 3) {
		snprintf(p, sizeof(p), "{\"vm\":\"j\",\"slot\":%d}", i);
		ok_put("memslot.delete", p);
		snprintf(p, sizeof(p), "{\"vm\":\"j\",\"slot\":%d,\"gpa\":%llu}", i + 1,
			 0x800000000ull + (unsigned long long)i * 0x1000);
		ok_put("memslot.move", p);
	}
	before = layout("j");
	after = kill9_keeps_layout("j", before);
	cr_assert(strstr(test_slurp(d.log), "replayed"), "the journal should have been replayed");
	free(before);
	free(after);
}

Test(persist, a_journal_record_longer_than_a_kibibyte_survives_kill_9)
{
	/* A file path near the 1023-byte limit, full of characters JSON must
	 * escape: its journal line is well over 1 KiB. */
	char dir[1100], path[1100], *p, *before, *after;
	json_object *r;
	size_t n;

	start();
	ok_put("vm.create", "{\"name\":\"long\",\"memory\":\"16M\"}");
	snprintf(dir, sizeof(dir), "%s", files);
	for (int level = 0; level < 4; level++) {
		n = strlen(dir);
		dir[n++] = '/';
		for (int i = 0; i < 200; i++)
			dir[n++] = "q\"\\ x"[i % 5];
		dir[n] = '\0';
		cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s: %s", dir, strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/data.bin", dir);
	cr_assert_lt(strlen(path), 1023);
	r = json_object_new_string(path);
	p = malloc(strlen(json_object_to_json_string(r)) + 256);
	sprintf(p, "{\"vm\":\"long\",\"gpa\":\"0x100000000\",\"size\":\"8K\",\"backing\":"
		"{\"kind\":\"file\",\"path\":%s,\"shared\":true}}", json_object_to_json_string(r));
	json_object_put(r);
	cr_assert_gt(strlen(p), 1024);
	ok_put("memslot.create", p);
	free(p);
	ok_put("vm.memory.write", "{\"name\":\"long\",\"gpa\":\"0x100001000\",\"data\":\"bG9uZyE=\"}");
	before = layout("long");
	after = kill9_keeps_layout("long", before);
	cr_assert(strstr(after, "data.bin"), "the file slot is missing: %s", after);
	free(before);
	free(after);
	cr_assert_str_eq(json_object_get_string(member(ok("vm.memory.read",
		"{\"name\":\"long\",\"gpa\":\"0x100001000\",\"length\":5}", &r), "data")), "bG9uZyE=",
		"the file-backed slot keeps its contents");
	json_object_put(r);
}

static void kill9(void)
{
	int st;

	kill(d.pid, SIGKILL);
	waitpid(d.pid, &st, 0);
	d.pid = -1;
}

/* A record cut short by a crash (no newline) ends the replay, and the
 * changes after the restart do not run into its remains. */
Test(persist, a_torn_journal_record_is_ignored_and_later_changes_survive)
{
	static const char torn[] = "{\"put\":{\"slot\":9,\"gpa\":\"0x900000000\",\"si";
	char path[512], *before, *after;
	int fd;

	start();
	ok_put("vm.create", "{\"name\":\"t\",\"memory\":\"16M\"}");
	ok_put("memslot.create", "{\"vm\":\"t\",\"gpa\":\"0x100000000\",\"size\":4096}");
	ok_put("memslot.create", "{\"vm\":\"t\",\"gpa\":\"0x200000000\",\"size\":4096}");
	before = layout("t");
	kill9();
	snprintf(path, sizeof(path), "%s/state/vm-t.journal", top);
	fd = open(path, O_WRONLY | O_APPEND);
	cr_assert(fd >= 0 && write(fd, torn, sizeof(torn) - 1) == (ssize_t)sizeof(torn) - 1,
		  "%s: %s", path, strerror(errno));
	close(fd);
	start();
	after = layout("t");
	cr_assert_str_eq(after, before, "a torn record must be ignored");
	free(after);
	cr_assert(strstr(test_slurp(d.log), "incomplete last record"), "the torn record is logged");
	ok_put("memslot.create", "{\"vm\":\"t\",\"gpa\":\"0x300000000\",\"size\":4096}");
	ok_put("memslot.move", "{\"vm\":\"t\",\"slot\":1,\"gpa\":\"0x400000000\"}");
	free(before);
	before = layout("t");
	after = kill9_keeps_layout("t", before);
	free(after);
	free(before);
}
