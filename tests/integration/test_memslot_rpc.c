/* memslot.* and vm.quirks.* through the real daemon on the real /dev/kvm:
 * every validation error with its exact code and data.field, changes seen
 * through guest memory, transactions, quirk rules, events, slotctl. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

static struct test_daemon d;
static char top[64];		/* private dir: files/, outside/, the daemon */
static char files[128];		/* --file-dir */
static char outside[128];	/* a directory slotd must refuse */

static void mkdirs(void)
{
	char tmpl[] = "/tmp/slotd-memslot-XXXXXX";

	cr_assert_not_null(mkdtemp(tmpl), "mkdtemp");
	snprintf(top, sizeof(top), "%s", tmpl);
	snprintf(files, sizeof(files), "%s/files", top);
	snprintf(outside, sizeof(outside), "%s/outside", top);
	cr_assert_eq(mkdir(files, 0700), 0);
	cr_assert_eq(mkdir(outside, 0700), 0);
}

/* Starts slotd in top with --file-dir files and extra flags. */
static void start_with(const char *a, const char *b, const char *c, const char *e)
{
	const char *extra[] = { "--file-dir", files, a, b, c, e, NULL };

	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("no usable /dev/kvm on this host: the memslot tests need it");
	/* A test with flags of its own restarts the suite's daemon. */
	if (d.pid > 0 && test_daemon_stop(&d) == 0)
		test_rmtree(top);
	mkdirs();
	cr_assert_eq(test_daemon_start_in(&d, top, extra), 0, "log: %s", test_slurp(d.log));
}

static void start(void)
{
	start_with(NULL, NULL, NULL, NULL);
}

static void stop(void)
{
	t_daemon_fini(&d, top);
}

TestSuite(memslot_rpc, .init = start, .fini = stop, .timeout = 120);

/* Short names for the shared assertions, on this file's daemon. */
#define ok(m, p, r)	t_rpc_ok(&d, m, p, r)
#define ok_put(m, p)	t_rpc_ok_put(&d, m, p)
#define err_msg(m, p, c, f, n) t_rpc_err(&d, m, p, c, f, n)
#define err(m, p, c, f)	t_rpc_err(&d, m, p, c, f, NULL)
#define str(o, k)	t_json_str(o, k)
#define num(o, k)	t_json_int(o, k)

static void vm_create(const char *name, const char *type)
{
	char p[256];

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"type\":\"%s\",\"memory\":\"16M\","
		 "\"payload\":\"builtin:busy\"}", name, type);
	ok_put("vm.create", p);
}

/* memslot.create; returns the slot id. */
static int slot_create(const char *vm, const char *gpa, const char *size, const char *more)
{
	char p[1024];
	json_object *r;
	int id;

	snprintf(p, sizeof(p), "{\"vm\":\"%s\",\"gpa\":\"%s\",\"size\":\"%s\"%s%s}", vm, gpa, size,
		 more ? "," : "", more ? more : "");
	id = (int)num(ok("memslot.create", p, &r), "slot");
	json_object_put(r);
	return id;
}

static size_t slot_count(const char *vm)
{
	char p[128];
	json_object *r;
	size_t n;

	snprintf(p, sizeof(p), "{\"vm\":\"%s\"}", vm);
	n = (size_t)num(ok("memslot.list", p, &r), "count");
	json_object_put(r);
	return n;
}

Test(memslot_rpc, create_move_delete_are_seen_through_guest_memory)
{
	json_object *r, *res;
	int id;

	vm_create("m", "default");
	id = slot_create("m", "0x100000000", "64K", NULL);
	cr_assert_eq(id, 1, "the first free slot id after boot RAM: expected 1, got %d", id);
	/* "slotd!" at 0x100001000 */
	ok_put("vm.memory.write", "{\"name\":\"m\",\"gpa\":\"0x100001000\",\"data\":\"c2xvdGQh\"}");
	res = ok("memslot.move", "{\"vm\":\"m\",\"slot\":1,\"gpa\":\"0x200000000\"}", &r);
	cr_assert_str_eq(str(res, "gpa"), "0x200000000");
	cr_assert_str_eq(str(res, "old_gpa"), "0x100000000");
	json_object_put(r);
	res = ok("vm.memory.read", "{\"name\":\"m\",\"gpa\":\"0x200001000\",\"length\":6}", &r);
	cr_assert_str_eq(str(res, "data"), "c2xvdGQh", "the contents did not move with the slot");
	json_object_put(r);
	err("vm.memory.read", "{\"name\":\"m\",\"gpa\":\"0x100001000\",\"length\":6}", -32602, "gpa");
	ok_put("memslot.delete", "{\"vm\":\"m\",\"slot\":1}");
	err("vm.memory.read", "{\"name\":\"m\",\"gpa\":\"0x200001000\",\"length\":6}", -32602, "gpa");
	cr_assert_eq(slot_count("m"), 1, "after delete only boot RAM is left");
}

Test(memslot_rpc, layout_errors_name_the_field_with_exact_codes)
{
	vm_create("v", "default");
	slot_create("v", "0x100000000", "8K", NULL);
	err("memslot.create", "{\"vm\":\"v\",\"gpa\":\"0x100000001\",\"size\":4096}", -32602, "gpa");
	err("memslot.create", "{\"vm\":\"v\",\"gpa\":\"0x110000000\",\"size\":4097}", -32602, "size");
	err("memslot.create", "{\"vm\":\"v\",\"gpa\":\"0x110000000\",\"size\":0}", -32602, "size");
	err_msg("memslot.create", "{\"vm\":\"v\",\"gpa\":\"0x100001000\",\"size\":4096}", -32003,
		"gpa", "memslot 1");
	/* 2^52: beyond any x86 guest's physical address width. */
	err_msg("memslot.create", "{\"vm\":\"v\",\"gpa\":\"0x10000000000000\",\"size\":4096}",
		-32602, "gpa", "physical address");
	err("memslot.create", "{\"vm\":\"v\",\"gpa\":\"0x110000000\",\"size\":4096,\"slot\":1}",
	    -32003, "slot");
	err("memslot.create", "{\"vm\":\"v\",\"gpa\":\"12Q\",\"size\":4096}", -32602, "gpa");
	err("memslot.create", "{\"vm\":\"nope\",\"gpa\":0,\"size\":4096}", -32002, "vm");
	err("memslot.create", "{\"vm\":\"v\",\"size\":4096}", -32602, "gpa");
	err("memslot.move", "{\"vm\":\"v\",\"slot\":7,\"gpa\":\"0x120000000\"}", -32002, "slot");
	err("memslot.move", "{\"vm\":\"v\",\"slot\":1,\"gpa\":\"0x120000800\"}", -32602, "gpa");
	err("memslot.move", "{\"vm\":\"v\",\"slot\":0,\"gpa\":\"0x120000000\"}", -32007, "slot");
	err("memslot.delete", "{\"vm\":\"v\",\"slot\":0}", -32007, "slot");
	err("memslot.delete", "{\"vm\":\"v\",\"slot\":9}", -32002, "slot");
	err("memslot.delete", "{\"vm\":\"v\",\"slot\":-1}", -32602, "slot");
	cr_assert_eq(slot_count("v"), 2, "refused changes must leave the layout alone");
}

Test(memslot_rpc, flag_and_backing_errors_name_the_field)
{
	json_object *r, *res, *ro;

	vm_create("f", "default");
	err("memslot.create", "{\"vm\":\"f\",\"gpa\":\"0x100000000\",\"size\":4096,"
	    "\"flags\":[\"bogus\"]}", -32602, "flags[0]");
	err("memslot.create", "{\"vm\":\"f\",\"gpa\":\"0x100000000\",\"size\":4096,"
	    "\"backing\":{\"kind\":\"anon\",\"colour\":1}}", -32602, "backing.colour");
	err("memslot.create", "{\"vm\":\"f\",\"gpa\":\"0x100000000\",\"size\":4096,"
	    "\"backing\":{\"kind\":\"disk\"}}", -32602, "backing.kind");
	err("memslot.create", "{\"vm\":\"f\",\"gpa\":\"0x100000000\",\"size\":4096,"
	    "\"backing\":{\"kind\":\"file\"}}", -32602, "backing.path");
	err("memslot.create", "{\"vm\":\"f\",\"gpa\":\"0x100000000\",\"size\":4096,"
	    "\"backing\":{\"kind\":\"anon\",\"path\":\"/tmp/x\"}}", -32602, "backing.path");
	res = ok("daemon.capabilities", NULL, &r);
	cr_assert(json_object_object_get_ex(res, "readonly_mem", &ro));
	if (json_object_get_boolean(ro))
		slot_create("f", "0x100000000", "4K", "\"flags\":[\"readonly\"]");
	else
		err("memslot.create", "{\"vm\":\"f\",\"gpa\":\"0x100000000\",\"size\":4096,"
		    "\"flags\":[\"readonly\"]}", -32008, "flags");
	json_object_put(r);
	slot_create("f", "0x110000000", "4K", NULL);
	err_msg("memslot.set_flags", "{\"vm\":\"f\",\"slot\":2,\"dirty_log\":true,\"readonly\":true}",
		-32602, "readonly", "in place");
	ok_put("memslot.set_flags", "{\"vm\":\"f\",\"slot\":2,\"dirty_log\":true,\"readonly\":false}");
}

Test(memslot_rpc, file_paths_stay_under_file_dir)
{
	char p[1024], link[256];

	vm_create("p", "default");
	snprintf(p, sizeof(p), "\"backing\":{\"kind\":\"file\",\"path\":\"%s/ok.bin\"}", files);
	slot_create("p", "0x100000000", "64K", p);
	snprintf(p, sizeof(p), "{\"vm\":\"p\",\"gpa\":\"0x110000000\",\"size\":4096,"
		 "\"backing\":{\"kind\":\"file\",\"path\":\"%s/x.bin\"}}", outside);
	err("memslot.create", p, -32007, "backing.path");
	snprintf(p, sizeof(p), "{\"vm\":\"p\",\"gpa\":\"0x110000000\",\"size\":4096,"
		 "\"backing\":{\"kind\":\"file\",\"path\":\"%s/../outside/x.bin\"}}", files);
	err("memslot.create", p, -32007, "backing.path");
	/* A directory symlink inside files/ pointing outside. */
	snprintf(link, sizeof(link), "%s/escape", files);
	cr_assert_eq(symlink(outside, link), 0);
	snprintf(p, sizeof(p), "{\"vm\":\"p\",\"gpa\":\"0x110000000\",\"size\":4096,"
		 "\"backing\":{\"kind\":\"file\",\"path\":\"%s/x.bin\"}}", link);
	err("memslot.create", p, -32007, "backing.path");
	/* A file symlink inside files/ pointing outside. */
	snprintf(link, sizeof(link), "%s/escape.bin", files);
	snprintf(p, sizeof(p), "%s/target.bin", outside);
	cr_assert_eq(symlink(p, link), 0);
	snprintf(p, sizeof(p), "{\"vm\":\"p\",\"gpa\":\"0x110000000\",\"size\":4096,"
		 "\"backing\":{\"kind\":\"file\",\"path\":\"%s\"}}", link);
	err("memslot.create", p, -32007, "backing.path");
	snprintf(p, sizeof(p), "%s/target.bin", outside);
	cr_assert_neq(access(p, F_OK), 0, "slotd created %s through a symlink", p);
	snprintf(p, sizeof(p), "%s/x.bin", outside);
	cr_assert_neq(access(p, F_OK), 0, "slotd created %s outside --file-dir", p);
	cr_assert_eq(slot_count("p"), 2);
}

Test(memslot_rpc, memory_limits_per_vm_and_per_daemon, .init = NULL)
{
	start_with("--max-vm-memory", "24M", "--max-memory", "40M");
	vm_create("a", "default");
	vm_create("b", "default");
	slot_create("a", "0x100000000", "4M", NULL);
	err_msg("memslot.create", "{\"vm\":\"a\",\"gpa\":\"0x110000000\",\"size\":\"8M\"}", -32006,
		"size", "--max-vm-memory");
	err_msg("memslot.create", "{\"vm\":\"b\",\"gpa\":\"0x110000000\",\"size\":\"8M\"}", -32006,
		"size", "--max-memory");
	slot_create("b", "0x110000000", "4M", NULL);
}

Test(memslot_rpc, lowest_free_slot_id_is_reused_after_delete)
{
	vm_create("l", "default");
	cr_assert_eq(slot_create("l", "0x100000000", "4K", NULL), 1);
	cr_assert_eq(slot_create("l", "0x100001000", "4K", NULL), 2);
	cr_assert_eq(slot_create("l", "0x100002000", "4K", NULL), 3);
	ok_put("memslot.delete", "{\"vm\":\"l\",\"slot\":2}");
	cr_assert_eq(slot_create("l", "0x100005000", "4K", NULL), 2, "slot 2 is the lowest free id");
	cr_assert_eq(slot_create("l", "0x100006000", "4K", NULL), 4);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(memslot_rpc, a_thousand_memslots_on_one_vm)
{
	int fd = test_connect(d.sock);
	double t0 = mono_s();
	char line[256], *reply;

	cr_assert_geq(fd, 0);
	vm_create("k", "default");
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"memslot.create\","
			 "\"params\":{\"vm\":\"k\",\"gpa\":%llu,\"size\":4096}}", i,
			 0x100000000ull + (unsigned long long)i * 0x2000);
		reply = test_rpc_raw(fd, line);
		cr_assert(reply && strstr(reply, "\"result\""), "create %d: %s", i, reply);
		free(reply);
	}
	close(fd);
	cr_assert_eq(slot_count("k"), 1001, "1000 slots and boot RAM");
	ok_put("memslot.delete", "{\"vm\":\"k\",\"slot\":500}");
	cr_assert_eq(slot_create("k", "0x300000000", "4K", NULL), 500);
	cr_assert_lt(mono_s() - t0, 60.0, "1000 creates took %.1f s", mono_s() - t0);
}

Test(memslot_rpc, transaction_rolls_back_when_one_op_is_invalid)
{
	json_object *r, *res, *e, *data, *op;

	vm_create("t", "default");
	slot_create("t", "0x100000000", "8K", NULL);
	ok_put("vm.memory.write", "{\"name\":\"t\",\"gpa\":\"0x100000000\",\"data\":\"c2xvdGQh\"}");
	r = test_rpc(d.sock, "memslot.transaction", "{\"vm\":\"t\",\"ops\":["
		     "{\"op\":\"create\",\"gpa\":\"0x110000000\",\"size\":4096},"
		     "{\"op\":\"move\",\"slot\":1,\"gpa\":\"0x120000000\"},"
		     "{\"op\":\"delete\",\"slot\":42}]}");
	cr_assert(r && json_object_object_get_ex(r, "error", &e), "expected an error, got %s",
		  json_object_to_json_string(r));
	cr_assert_eq(num(e, "code"), -32002, "expected -32002, got %s", json_object_to_json_string(e));
	cr_assert(json_object_object_get_ex(e, "data", &data));
	cr_assert_str_eq(str(data, "field"), "ops[2].slot");
	cr_assert(json_object_object_get_ex(data, "op", &op) && json_object_get_int(op) == 2,
		  "data.op: expected 2, got %s", json_object_to_json_string(data));
	json_object_put(r);
	cr_assert_eq(slot_count("t"), 2, "the created slot must be undone");
	res = ok("vm.memory.read", "{\"name\":\"t\",\"gpa\":\"0x100000000\",\"length\":6}", &r);
	cr_assert_str_eq(str(res, "data"), "c2xvdGQh", "slot 1 must be back at its GPA");
	json_object_put(r);
	err("memslot.transaction", "{\"vm\":\"t\",\"ops\":[{\"op\":\"move\",\"gpa\":0}]}", -32602,
	    "ops[0].slot");
	err("memslot.transaction", "{\"vm\":\"t\",\"ops\":[]}", -32602, "ops");
	{
		char big[4096] = "{\"vm\":\"t\",\"ops\":[";

		for (int i = 0; i < 65; i++)
			strcat(big, i ? ",{\"op\":\"delete\",\"slot\":1}" : "{\"op\":\"delete\",\"slot\":1}");
		strcat(big, "]}");
		err("memslot.transaction", big, -32602, "ops");
	}
	err("memslot.transaction", "{\"vm\":\"t\",\"ops\":[{\"op\":\"create\",\"gpa\":0,\"size\":1,"
	    "\"bogus\":1}]}", -32602, "ops[0].bogus");
	res = ok("memslot.transaction", "{\"vm\":\"t\",\"ops\":["
		 "{\"op\":\"move\",\"slot\":1,\"gpa\":\"0x120000000\"},"
		 "{\"op\":\"create\",\"gpa\":\"0x100000000\",\"size\":4096}]}", &r);
	json_object_put(r);
	res = ok("vm.memory.read", "{\"name\":\"t\",\"gpa\":\"0x120000000\",\"length\":6}", &r);
	cr_assert_str_eq(str(res, "data"), "c2xvdGQh", "slot 1 moved within the transaction");
	json_object_put(r);
	cr_assert_eq(slot_count("t"), 3);
}

/* The quirk named name in a vm.quirks.get result. */
static json_object *quirk_find(json_object *res, const char *name)
{
	json_object *a;

	cr_assert(json_object_object_get_ex(res, "quirks", &a));
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (!strcmp(str(json_object_array_get_idx(a, i), "name"), name))
			return json_object_array_get_idx(a, i);
	cr_assert_fail("no quirk %s in %s", name, json_object_to_json_string(res));
	return NULL;
}

static bool flag(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k, json_object_to_json_string(o));
	return json_object_get_boolean(v);
}

Test(memslot_rpc, protected_vm_refuses_slot_zap_all)
{
	json_object *r, *q;

	vm_create("pr", "protected");
	q = quirk_find(ok("vm.quirks.get", "{\"vm\":\"pr\"}", &r), "slot_zap_all");
	cr_assert(!flag(q, "enabled"), "protected: slot_zap_all must be off");
	cr_assert(flag(q, "locked"), "protected: slot_zap_all must be locked");
	cr_assert(strlen(str(q, "why")) > 0, "a locked quirk says why");
	json_object_put(r);
	err_msg("vm.quirks.set", "{\"vm\":\"pr\",\"quirk\":\"slot_zap_all\",\"enabled\":true}",
		-32007, "quirk", "protected");
	err("vm.quirks.set", "{\"vm\":\"pr\",\"quirk\":\"no_such_quirk\",\"enabled\":false}",
	    -32002, "quirk");
}

Test(memslot_rpc, quirks_toggle_while_defined_but_not_back_on_once_started)
{
	json_object *r, *q;

	vm_create("q", "default");
	q = quirk_find(ok("vm.quirks.get", "{\"vm\":\"q\"}", &r), "slot_zap_all");
	cr_assert(flag(q, "enabled"), "default: slot_zap_all starts on");
	json_object_put(r);
	ok_put("vm.quirks.set", "{\"vm\":\"q\",\"quirk\":\"slot_zap_all\",\"enabled\":false}");
	ok_put("vm.quirks.set", "{\"vm\":\"q\",\"quirk\":\"slot_zap_all\",\"enabled\":true}");
	q = quirk_find(ok("vm.quirks.set", "{\"vm\":\"q\",\"quirk\":\"slot_zap_all\","
			  "\"enabled\":false}", &r), "slot_zap_all");
	cr_assert(!flag(q, "enabled"), "slot_zap_all: expected off after set off");
	json_object_put(r);
	ok_put("vm.start", "{\"name\":\"q\"}");
	err_msg("vm.quirks.set", "{\"vm\":\"q\",\"quirk\":\"slot_zap_all\",\"enabled\":true}",
		-32007, "quirk", "re-enable");
	q = quirk_find(ok("vm.quirks.get", "{\"vm\":\"q\"}", &r), "slot_zap_all");
	cr_assert(flag(q, "locked"), "a disabled quirk of a started VM is locked");
	json_object_put(r);
	ok_put("vm.stop", "{\"name\":\"q\"}");
}

/* Reads lines until one is a notification with that method (10 tries). */
static json_object *next_event(int fd, const char *method)
{
	for (int i = 0; i < 10; i++) {
		char *line = test_recv_line(fd, 5000);
		json_object *o = line ? json_tokener_parse(line) : NULL, *m;

		free(line);
		if (o && json_object_object_get_ex(o, "method", &m) &&
		    !strcmp(json_object_get_string(m), method))
			return o;
		json_object_put(o);
		if (!line)
			break;
	}
	cr_assert_fail("no %s notification within the time limit", method);
	return NULL;
}

/* A counter of an effect side: absent means it did not change. */
static int64_t delta(json_object *side, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(side, k, &v) ? json_object_get_int64(v) : 0;
}

/* The notification carries an effect with both sides and a duration;
 * the sides list only counters that changed. */
static void assert_effect(json_object *n)
{
	json_object *p, *fx, *sides[2];

	cr_assert(json_object_object_get_ex(n, "params", &p));
	cr_assert(json_object_object_get_ex(p, "effect", &fx), "no effect in %s",
		  json_object_to_json_string(n));
	cr_assert_gt(num(fx, "duration_ns"), 0, "a change takes time: %s", json_object_to_json_string(fx));
	cr_assert(json_object_object_get_ex(fx, "kernel", &sides[0]) &&
		  json_object_object_get_ex(fx, "engine", &sides[1]),
		  "effect without kernel and engine sides: %s", json_object_to_json_string(fx));
	for (int i = 0; i < 2; i++) {
		json_object_object_foreach(sides[i], k, v)
			cr_assert_neq(json_object_get_int64(v), 0, "counter %s is listed with a zero "
				      "delta: %s", k, json_object_to_json_string(fx));
	}
}

/* The engine side of notification n's effect (*fx: the effect). */
static json_object *event_engine(json_object *n, json_object **fx)
{
	json_object *p, *eng;

	cr_assert(json_object_object_get_ex(n, "params", &p) &&
		  json_object_object_get_ex(p, "effect", fx) &&
		  json_object_object_get_ex(*fx, "engine", &eng),
		  "no effect.engine in %s", json_object_to_json_string(n));
	return eng;
}

Test(memslot_rpc, events_follow_the_reply_and_carry_effect_deltas)
{
	int fd = test_connect(d.sock);
	json_object *n, *fx, *eng;
	char *line;

	line = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\","
			    "\"params\":{\"topics\":[\"memslot.created\",\"memslot.moved\","
			    "\"memslot.deleted\",\"vm.quirk_changed\"]}}");
	cr_assert(line && strstr(line, "memslot.created"), "subscribe: %s", line);
	free(line);
	vm_create("ev", "default");
	line = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"memslot.create\","
			    "\"params\":{\"vm\":\"ev\",\"gpa\":\"0x100000000\",\"size\":\"2M\"}}");
	cr_assert(line && strstr(line, "\"id\":2") && strstr(line, "\"result\""),
		  "the reply comes before the event on the caller's connection: %s", line);
	free(line);
	n = next_event(fd, "memslot.created");
	assert_effect(n);
	json_object_put(n);
	ok_put("vm.memory.write", "{\"name\":\"ev\",\"gpa\":\"0x100000000\",\"data\":\"c2xvdGQh\"}");
	ok_put("memslot.move", "{\"vm\":\"ev\",\"slot\":1,\"gpa\":\"0x200000000\"}");
	n = next_event(fd, "memslot.moved");
	assert_effect(n);
	/* slot_zap_all on (a default VM): the engine threw its root away. */
	eng = event_engine(n, &fx);
	cr_assert_gt(delta(eng, "roots_obsoleted"), 0, "a move with slot_zap_all on "
		     "obsoletes the engine's roots: %s", json_object_to_json_string(fx));
	json_object_put(n);
	ok_put("vm.quirks.set", "{\"vm\":\"ev\",\"quirk\":\"slot_zap_all\",\"enabled\":false}");
	n = next_event(fd, "vm.quirk_changed");
	assert_effect(n);
	json_object_put(n);
	ok_put("vm.memory.read", "{\"name\":\"ev\",\"gpa\":\"0x200000000\",\"length\":6}");
	ok_put("memslot.delete", "{\"vm\":\"ev\",\"slot\":1}");
	n = next_event(fd, "memslot.deleted");
	assert_effect(n);
	/* Precise zapping (quirk off) of a slot the engine mapped zaps leaves. */
	eng = event_engine(n, &fx);
	cr_assert_eq(delta(eng, "roots_obsoleted"), 0, "slot_zap_all off keeps the root: %s",
		     json_object_to_json_string(fx));
	cr_assert_gt(delta(eng, "leafs_zapped") + delta(eng, "tables_detached"), 0,
		     "deleting a mapped slot with slot_zap_all off zaps its leaves: %s",
		     json_object_to_json_string(fx));
	json_object_put(n);
	close(fd);
}

Test(memslot_rpc, dirty_log_counts_pages_written_since_the_last_clear)
{
	json_object *r, *res;

	vm_create("dl", "default");
	slot_create("dl", "0x100000000", "64K", "\"flags\":[\"dirty_log\"]");
	ok_put("vm.memory.write", "{\"name\":\"dl\",\"gpa\":\"0x100003000\",\"data\":\"c2xvdGQh\"}");
	res = ok("memslot.dirty_log", "{\"vm\":\"dl\",\"slot\":1,\"clear\":true}", &r);
	cr_assert_eq(num(res, "pages"), 16, "64 KiB is 16 pages");
	cr_assert_eq(num(res, "count"), 1, "one page written, got %s", json_object_to_json_string(res));
	/* bit 3 of byte 0, 2 bytes: 08 00 */
	cr_assert_str_eq(str(res, "bitmap"), "CAA=", "bitmap: %s", str(res, "bitmap"));
	json_object_put(r);
	res = ok("memslot.dirty_log", "{\"vm\":\"dl\",\"slot\":1}", &r);
	cr_assert_eq(num(res, "count"), 0, "cleared: %s", json_object_to_json_string(res));
	json_object_put(r);
	ok_put("memslot.set_flags", "{\"vm\":\"dl\",\"slot\":1,\"dirty_log\":false}");
	err("memslot.dirty_log", "{\"vm\":\"dl\",\"slot\":1}", -32602, "slot");
}

/* Runs slotctl --socket sock ARGS... (NULL-terminated); returns the exit
 * status, stdout in *out. */
static int slotctl(char **out, ...)
{
	const char *argv[24] = { test_slotctl_bin(), "--socket", d.sock };
	char *err_text = NULL;
	size_t n = 3;
	va_list ap;
	int st;

	va_start(ap, out);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	*out = NULL;
	st = test_run(argv, out, &err_text);
	if (st != 0)
		fprintf(stderr, "slotctl %s %s: status %d: %s\n", argv[3], argv[4], st,
			err_text ? err_text : "");
	free(err_text);
	return st;
}

/* slotctl ARGS... must exit 0; returns stdout (caller frees). */
#define SLOTCTL_OK(...) ({ char *o_; cr_assert_eq(slotctl(&o_, __VA_ARGS__, NULL), 0, \
	"slotctl " #__VA_ARGS__ " failed (stderr above)"); o_; })

Test(memslot_rpc, slotctl_verbs_drive_the_methods)
{
	char path[256], *out;

	vm_create("c", "default");
	snprintf(path, sizeof(path), "%s/c.bin", files);
	free(SLOTCTL_OK("memslot", "create", "c", "--gpa", "0x100000000", "--size", "64K"));
	free(SLOTCTL_OK("memslot", "create", "c", "--gpa", "0x110000000", "--size", "4K"));
	free(SLOTCTL_OK("memslot", "move", "c", "2", "0x120000000"));
	out = SLOTCTL_OK("memslot", "list", "c");
	cr_assert(out && strstr(out, "0x120000000"), "list: %s", out);
	free(out);
	free(SLOTCTL_OK("memslot", "flags", "c", "1", "--dirty-log", "on"));
	free(SLOTCTL_OK("memslot", "dirty-log", "c", "1", "--clear"));
	free(SLOTCTL_OK("memslot", "delete", "c", "2"));
	free(SLOTCTL_OK("memslot", "transaction", "c",
			"[{\"op\":\"create\",\"gpa\":\"0x130000000\",\"size\":4096}]"));
	free(SLOTCTL_OK("vm", "quirk", "c", "slot_zap_all", "off"));
	out = SLOTCTL_OK("vm", "quirks", "c");
	cr_assert(out && strstr(out, "slot_zap_all"), "quirks: %s", out);
	free(out);
	free(SLOTCTL_OK("--json", "memslot", "create", "c", "--gpa", "0x150000000", "--size", "8K",
			"--path", path));
	free(SLOTCTL_OK("memslot", "create", "c", "--gpa", "0x160000000", "--size", "8K",
			"--backing", "memfd", "--flags", "dirty_log"));
	cr_assert_eq(slot_count("c"), 5);
}
