/* request_id: a retry gets the first outcome instead of acting twice,
 * within one run of slotd, after a restart and after a kill -9; a crash
 * between the change and its recorded outcome leaves the retry "in
 * doubt", never run again. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

static struct test_daemon d;
static char top[64];

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
	if (top[0])
		test_rmtree(top);
}

static void need_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("no usable /dev/kvm on this host: retries of VM calls need a VM");
}

static void start_with(const char *max_vm_memory)
{
	const char *extra[] = { "--vms-on-exit", "stop", max_vm_memory ? "--max-vm-memory" : NULL,
				max_vm_memory, NULL };

	/* Made here, after a test's skip: a skipped test has no teardown. */
	if (!top[0]) {
		char tmpl[] = "/tmp/slotd-retry-XXXXXX";

		cr_assert_not_null(mkdtemp(tmpl));
		snprintf(top, sizeof(top), "%s", tmpl);
	}

	cr_assert_eq(test_daemon_start_in(&d, top, extra), 0, "slotd did not start; log:\n%s",
		     test_slurp(d.log));
}

static void start(void)
{
	start_with(NULL);
}

static void kill9(void)
{
	int st;

	kill(d.pid, SIGKILL);
	waitpid(d.pid, &st, 0);
	d.pid = -1;
}

TestSuite(retry, .init = setup, .fini = teardown, .timeout = 120);

/* The reply's result or error member as compact text (the caller frees). */
static char *call_text(const char *method, const char *params, const char *member)
{
	json_object *r = test_rpc(d.sock, method, params), *v;
	char *s;

	cr_assert_not_null(r, "no reply to %s %s", method, params);
	cr_assert(json_object_object_get_ex(r, member, &v), "%s %s: no %s in %s", method, params,
		  member, json_object_to_json_string(r));
	s = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
	return s;
}

static int64_t slot_count(const char *vm)
{
	json_object *r, *res;
	char p[96];
	int64_t n;

	snprintf(p, sizeof(p), "{\"vm\":\"%s\"}", vm);
	res = t_rpc_ok(&d, "memslot.list", p, &r);
	n = t_json_int(res, "count");
	json_object_put(r);
	return n;
}

#define CREATE(id, gpa) "{\"vm\":\"a\",\"gpa\":\"" gpa "\",\"size\":\"2M\",\"request_id\":\"" id "\"}"

Test(retry, a_retry_gets_the_first_reply_and_acts_once)
{
	char *first, *again;

	need_kvm();
	start();
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\",\"request_id\":\"vm-a\"}");
	/* vm.create again would be -32003; with the same id it is the first reply. */
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\",\"request_id\":\"vm-a\"}");
	first = call_text("memslot.create", CREATE("r1", "0x10000000"), "result");
	again = call_text("memslot.create", CREATE("r1", "0x10000000"), "result");
	cr_assert_str_eq(again, first, "a retry's result differs from the first");
	/* Member order is not what makes params differ. */
	free(again);
	again = call_text("memslot.create", "{\"request_id\":\"r1\",\"size\":\"2M\","
			  "\"gpa\":\"0x10000000\",\"vm\":\"a\"}", "result");
	cr_assert_str_eq(again, first, "the same params in another order are another call");
	cr_assert_eq(slot_count("a"), 2, "boot RAM and one slot expected, not %lld",
		     (long long)slot_count("a"));
	/* Without an id, the same call acts again (here: refused, overlap). */
	t_rpc_err(&d, "memslot.create", "{\"vm\":\"a\",\"gpa\":\"0x10000000\",\"size\":\"2M\"}",
		  -32003, NULL, NULL);
	free(first);
	free(again);
}

Test(retry, the_same_id_for_another_call_is_refused)
{
	need_kvm();
	start();
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\"}");
	t_rpc_ok_put(&d, "memslot.create", CREATE("r1", "0x10000000"));
	t_rpc_err(&d, "memslot.create", CREATE("r1", "0x20000000"), -32602, "request_id",
		  "already used for memslot.create with other params");
	t_rpc_err(&d, "memslot.delete", "{\"vm\":\"a\",\"slot\":1,\"request_id\":\"r1\"}", -32602,
		  "request_id", "already used for memslot.create");
	cr_assert_eq(slot_count("a"), 2, "a refused retry changed the layout");
}

Test(retry, a_refusal_is_kept_and_a_transient_error_is_not)
{
	char *first, *again;

	need_kvm();
	start_with("8M");
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\"}");
	t_rpc_ok_put(&d, "memslot.create", "{\"vm\":\"a\",\"gpa\":\"0x10000000\",\"size\":\"2M\"}");
	/* Refused for what it asks (overlap): a retry gets the refusal even
	 * once the overlap is gone. */
	first = call_text("memslot.create", CREATE("ov", "0x10000000"), "error");
	t_rpc_ok_put(&d, "memslot.delete", "{\"vm\":\"a\",\"slot\":1}");
	again = call_text("memslot.create", CREATE("ov", "0x10000000"), "error");
	cr_assert_str_eq(again, first, "a kept refusal came back different");
	free(first);
	free(again);
	/* Over --max-vm-memory (-32006, a limit an operator may raise): not
	 * kept, so after a restart with a higher limit the retry acts. */
	t_rpc_err(&d, "memslot.create", "{\"vm\":\"a\",\"gpa\":\"0x20000000\",\"size\":\"8M\","
		  "\"request_id\":\"big\"}", -32006, NULL, NULL);
	cr_assert_eq(test_daemon_stop(&d), 0);
	d.pid = -1;
	start_with("64M");
	t_rpc_ok_put(&d, "memslot.create", "{\"vm\":\"a\",\"gpa\":\"0x20000000\",\"size\":\"8M\","
		     "\"request_id\":\"big\"}");
	cr_assert_eq(slot_count("a"), 2, "boot RAM and the 8M slot expected");
}

/* The first reply comes back after a clean restart and after kill -9;
 * the state files say the slot exists once. */
Test(retry, the_first_reply_survives_restart_and_kill_9)
{
	char *first, *again;

	need_kvm();
	start();
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\"}");
	first = call_text("memslot.create", CREATE("r1", "0x10000000"), "result");
	cr_assert_eq(test_daemon_stop(&d), 0);
	d.pid = -1;
	start();
	again = call_text("memslot.create", CREATE("r1", "0x10000000"), "result");
	cr_assert_str_eq(again, first, "after a restart the retry's result differs");
	free(again);
	kill9();
	start();
	again = call_text("memslot.create", CREATE("r1", "0x10000000"), "result");
	cr_assert_str_eq(again, first, "after kill -9 the retry's result differs");
	cr_assert_eq(slot_count("a"), 2, "the retries made slots");
	free(first);
	free(again);
}

/* Drops the last line of path (what a crash before its write leaves). */
static void drop_last_line(const char *path)
{
	char *s = test_slurp(path), *nl;
	FILE *f;

	cr_assert_not_null(s, "cannot read %s", path);
	cr_assert(strlen(s) > 1 && s[strlen(s) - 1] == '\n', "%s does not end a line", path);
	s[strlen(s) - 1] = 0;
	nl = strrchr(s, '\n');
	nl = nl ? nl + 1 : s;
	*nl = 0;
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(s, f);
	fclose(f);
	free(s);
}

/* A crash after the change was durable but before its outcome was: the
 * VM's journal names the request, so the retry is told it was carried
 * out (-32013) and the slot is not made a second time. */
Test(retry, a_change_whose_outcome_was_lost_is_in_doubt_not_repeated)
{
	char path[400];
	json_object *r, *e, *data, *v;

	need_kvm();
	start();
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\"}");
	t_rpc_ok_put(&d, "memslot.create", CREATE("lost", "0x10000000"));
	kill9();
	snprintf(path, sizeof(path), "%s/requests.journal", d.state);
	drop_last_line(path);
	start();
	r = test_rpc(d.sock, "memslot.create", CREATE("lost", "0x10000000"));
	cr_assert(json_object_object_get_ex(r, "error", &e), "no error: %s",
		  json_object_to_json_string(r));
	cr_assert_eq(t_json_int(e, "code"), -32013, "code: %s", json_object_to_json_string(e));
	cr_assert(json_object_object_get_ex(e, "data", &data));
	cr_assert(json_object_object_get_ex(data, "vm", &v) &&
		  !strcmp(json_object_get_string(v), "a"), "data.vm: %s",
		  json_object_to_json_string(data));
	json_object_put(r);
	cr_assert_eq(slot_count("a"), 2, "the lost request ran twice");
	/* The doubt is itself durable: a second restart keeps it. */
	cr_assert_eq(test_daemon_stop(&d), 0);
	d.pid = -1;
	start();
	t_rpc_err(&d, "memslot.create", CREATE("lost", "0x10000000"), -32013, NULL, "carried out");
	cr_assert(strstr(test_slurp(path), "\"in_doubt\":true"), "no doubt line in %s", path);
}

/* Needs no VM: the id is checked before the method runs. */
Test(retry, bad_request_ids_are_refused_naming_the_param)
{
	char p[400];

	start();
	t_rpc_err(&d, "vm.start", "{\"name\":\"a\",\"request_id\":\"has space\"}", -32602,
		  "request_id", NULL);
	t_rpc_err(&d, "vm.start", "{\"name\":\"a\",\"request_id\":\"\"}", -32602, "request_id", NULL);
	t_rpc_err(&d, "vm.start", "{\"name\":\"a\",\"request_id\":7}", -32602, "request_id", NULL);
	snprintf(p, sizeof(p), "{\"name\":\"a\",\"request_id\":\"%0129d\"}", 0);
	t_rpc_err(&d, "vm.start", p, -32602, "request_id", NULL);
	/* Methods that change nothing take none. */
	t_rpc_err(&d, "vm.list", "{\"request_id\":\"x\"}", -32602, "request_id", NULL);
}

/* slotctl --request-id: the same command run again answers as the first
 * time and makes nothing more; another command with that id is refused. */
Test(retry, slotctl_request_id_makes_a_command_safe_to_rerun)
{
	const char *cmd[] = { test_slotctl_bin(), "--socket", d.sock, "--json", "--request-id",
			      "cli-1", "memslot", "create", "a", "--gpa", "0x10000000", "--size",
			      "2M", NULL };
	const char *other[] = { test_slotctl_bin(), "--socket", d.sock, "--request-id", "cli-1",
				"memslot", "delete", "a", "1", NULL };
	char *out1, *out2, *err;

	need_kvm();
	start();
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\"}");
	cmd[2] = d.sock;
	other[2] = d.sock;
	cr_assert_eq(test_run(cmd, &out1, &err), 0, "slotctl failed: %s", err);
	free(err);
	cr_assert_eq(test_run(cmd, &out2, &err), 0, "the rerun failed: %s", err);
	cr_assert_str_eq(out2, out1, "the rerun printed another result");
	free(err);
	cr_assert_eq(slot_count("a"), 2, "the rerun made another slot");
	cr_assert_neq(test_run(other, NULL, &err), 0, "another command took the same id");
	cr_assert(err && strstr(err, "request_id"), "stderr: %s", err ? err : "");
	cr_assert_eq(slot_count("a"), 2, "the refused command deleted the slot");
	free(out1);
	free(out2);
	free(err);
}

/* memslot.apply with an id: a retry after the layout moved on answers as
 * the first time and does not apply the layout again. */
Test(retry, a_retried_apply_does_not_apply_again)
{
	const char *p = "{\"vm\":\"a\",\"slots\":[{\"gpa\":\"0x10000000\",\"size\":\"2M\"}],"
			"\"request_id\":\"apply-1\"}";
	char *first, *again;

	need_kvm();
	start();
	t_rpc_ok_put(&d, "vm.create", "{\"name\":\"a\",\"memory\":\"4M\"}");
	first = call_text("memslot.apply", p, "result");
	cr_assert_eq(slot_count("a"), 2);
	t_rpc_ok_put(&d, "memslot.delete", "{\"vm\":\"a\",\"slot\":1}");
	again = call_text("memslot.apply", p, "result");
	cr_assert_str_eq(again, first, "the retried apply answered differently");
	cr_assert_eq(slot_count("a"), 1, "the retried apply made the slot again");
	free(first);
	free(again);
}
