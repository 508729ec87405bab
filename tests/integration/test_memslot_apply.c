/* memslot.apply through the real daemon on the real /dev/kvm: layouts
 * created from nothing, applied again without a change (nothing asked of
 * the runner, no state file written), moves that keep guest memory
 * (a swap too), deletes, replaces, dirty logging, a refused op that
 * leaves everything as it was, the limit, errors naming the entry, the
 * events, and slotctl's verb reading a file or stdin. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

static struct test_daemon d;
static char top[64];		/* private dir: files/, the daemon */
static char files[128];		/* --file-dir */

static void start(void)
{
	char tmpl[] = "/tmp/slotd-apply-XXXXXX";
	const char *extra[] = { "--file-dir", files, NULL };

	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("no usable /dev/kvm on this host: memslot.apply's tests need it");
	cr_assert_not_null(mkdtemp(tmpl), "mkdtemp");
	snprintf(top, sizeof(top), "%s", tmpl);
	snprintf(files, sizeof(files), "%s/files", top);
	cr_assert_eq(mkdir(files, 0700), 0);
	cr_assert_eq(test_daemon_start_in(&d, top, extra), 0, "log: %s", test_slurp(d.log));
}

static void stop(void)
{
	t_daemon_fini(&d, top);
}

TestSuite(memslot_apply, .init = start, .fini = stop, .timeout = 120);

#define ok(m, p, r)	t_rpc_ok(&d, m, p, r)
#define ok_put(m, p)	t_rpc_ok_put(&d, m, p)
#define err(m, p, c, f)	t_rpc_err(&d, m, p, c, f, NULL)
#define num(o, k)	t_json_int(o, k)
#define str(o, k)	t_json_str(o, k)

static void vm_create(const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"memory\":\"16M\",\"payload\":\"builtin:busy\"}",
		 name);
	ok_put("vm.create", p);
}

/* memslot.apply {vm, slots: slots(, extra)}; the result (*reply: put it). */
static json_object *apply(const char *vm, const char *slots, const char *extra,
			  json_object **reply)
{
	static char p[16384];

	snprintf(p, sizeof(p), "{\"vm\":\"%s\",\"slots\":%s%s%s}", vm, slots,
		 extra ? "," : "", extra ? extra : "");
	return ok("memslot.apply", p, reply);
}

/* Applies slots to vm, dropping the reply. */
static void apply_put(const char *vm, const char *slots)
{
	json_object *r;

	apply(vm, slots, NULL, &r);
	json_object_put(r);
}

/* result[key], an array, asserting its length. */
static json_object *list_n(json_object *res, const char *key, size_t n)
{
	json_object *a;

	cr_assert(json_object_object_get_ex(res, key, &a), "no %s in %s", key,
		  json_object_to_json_string(res));
	cr_assert_eq(json_object_array_length(a), n, "%s: expected %zu entries, got %s", key, n,
		     json_object_to_json_string(res));
	return a;
}

static json_object *nth(json_object *a, size_t i)
{
	return json_object_array_get_idx(a, i);
}

/* Asserts res changed nothing: empty lists, no op, an effect of zeros. */
static void assert_no_change(json_object *res, int64_t unchanged)
{
	static const char *const lists[] = { "created", "moved", "replaced", "deleted", "flags" };
	static const char *const times[] = { "duration_ns", "kernel_ns", "engine_ns",
					     "runner_ns", "apply_ns" };
	json_object *fx, *side;

	for (size_t i = 0; i < 5; i++)
		list_n(res, lists[i], 0);
	cr_assert_eq(num(res, "ops"), 0, "expected no op: %s", json_object_to_json_string(res));
	cr_assert_eq(num(res, "unchanged"), unchanged, "expected %lld unchanged: %s",
		     (long long)unchanged, json_object_to_json_string(res));
	cr_assert(json_object_object_get_ex(res, "effect", &fx));
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(num(fx, times[i]), 0, "effect.%s: expected 0 (no work), got %s",
			     times[i], json_object_to_json_string(fx));
	cr_assert(json_object_object_get_ex(fx, "kernel", &side) &&
		  json_object_object_length(side) == 0, "no kernel counter moved: %s",
		  json_object_to_json_string(fx));
	cr_assert(json_object_object_get_ex(fx, "engine", &side) &&
		  json_object_object_length(side) == 0, "no engine counter moved: %s",
		  json_object_to_json_string(fx));
}

/* memslot.list's memslots as JSON text (malloc'd). */
static char *layout_text(const char *vm)
{
	char p[128];
	json_object *r, *res, *a;
	char *t;

	snprintf(p, sizeof(p), "{\"vm\":\"%s\"}", vm);
	res = ok("memslot.list", p, &r);
	cr_assert(json_object_object_get_ex(res, "memslots", &a));
	t = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
	return t;
}

/* What a state file is now: its bytes and its mtime ("" when absent). */
struct file_print {
	char *bytes;
	struct timespec mtime;
	off_t size;
};

static void file_print_take(const char *vm, const char *ext, struct file_print *f)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/vm-%s.%s", d.state, vm, ext);
	memset(f, 0, sizeof(*f));
	if (stat(path, &st) == 0) {
		f->mtime = st.st_mtim;
		f->size = st.st_size;
	}
	f->bytes = test_slurp(path);
	if (!f->bytes)
		f->bytes = strdup("");
}

static void file_print_same(const char *vm, const char *ext, struct file_print *before)
{
	struct file_print now;

	file_print_take(vm, ext, &now);
	cr_assert_str_eq(now.bytes, before->bytes, "vm-%s.%s must not change", vm, ext);
	cr_assert(now.size == before->size && now.mtime.tv_sec == before->mtime.tv_sec &&
		  now.mtime.tv_nsec == before->mtime.tv_nsec,
		  "vm-%s.%s must not be written (size %lld -> %lld, mtime %lld.%09ld -> "
		  "%lld.%09ld)", vm, ext, (long long)before->size, (long long)now.size,
		  (long long)before->mtime.tv_sec, before->mtime.tv_nsec,
		  (long long)now.mtime.tv_sec, now.mtime.tv_nsec);
	free(now.bytes);
	free(before->bytes);
}

static void memory_write(const char *vm, const char *gpa, const char *b64)
{
	char p[256];

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"gpa\":\"%s\",\"data\":\"%s\"}", vm, gpa, b64);
	ok_put("vm.memory.write", p);
}

static void memory_is(const char *vm, const char *gpa, const char *b64, const char *why)
{
	char p[256];
	json_object *r, *res;

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"gpa\":\"%s\",\"length\":3}", vm, gpa);
	res = ok("vm.memory.read", p, &r);
	cr_assert_str_eq(str(res, "data"), b64, "%s: at %s expected %s, got %s", why, gpa, b64,
			 str(res, "data"));
	json_object_put(r);
}

/* ---- layouts ---------------------------------------------------------------- */

#define L3 "[{\"gpa\":\"4G\",\"size\":\"64K\"}," \
	   "{\"slot\":7,\"gpa\":\"0x100010000\",\"size\":\"64K\",\"flags\":[\"dirty_log\"]}," \
	   "{\"gpa\":\"8G\",\"size\":\"2M\",\"backing\":{\"kind\":\"memfd\"}}]"

Test(memslot_apply, a_layout_is_created_from_nothing_with_the_ids_it_got)
{
	json_object *r, *res, *a;
	char *after;

	vm_create("e");
	res = apply("e", L3, NULL, &r);
	a = list_n(res, "created", 3);
	cr_assert_eq(num(nth(a, 0), "slot"), 1, "slots[0] gets the lowest free id: %s",
		     json_object_to_json_string(a));
	cr_assert_eq(num(nth(a, 1), "slot"), 7, "slots[1] is slot 7");
	cr_assert_eq(num(nth(a, 2), "slot"), 2, "slots[2] gets the next free id");
	cr_assert_eq(num(nth(a, 2), "index"), 2, "entries name their index in slots");
	cr_assert_eq(num(res, "ops"), 3);
	cr_assert_eq(num(res, "unchanged"), 0);
	cr_assert_gt(num(json_object_object_get(res, "effect"), "runner_ns"), 0,
		     "the runner did the work: %s", json_object_to_json_string(res));
	json_object_put(r);
	after = layout_text("e");
	cr_assert(strstr(after, "{\"slot\":7,\"gpa\":\"0x100010000\",\"size\":65536,\"flags\":"
			 "[\"dirty_log\"]") && strstr(after, "{\"slot\":2,\"gpa\":\"0x200000000\""),
		  "memslot.list shows the layout: %s", after);
	free(after);
}

Test(memslot_apply, the_same_layout_again_changes_nothing_and_writes_nothing)
{
	struct file_print journal, snap;
	json_object *r, *res;
	char *listed, *before, *p;

	vm_create("i");
	apply_put("i", L3);
	/* One more change of one op: a journal record. */
	ok_put("memslot.create", "{\"vm\":\"i\",\"gpa\":\"12G\",\"size\":\"4K\",\"slot\":9}");
	before = layout_text("i");
	file_print_take("i", "journal", &journal);
	file_print_take("i", "json", &snap);
	cr_assert_gt(strlen(journal.bytes), 0, "the journal holds the create");
	res = apply("i", "[{\"gpa\":\"4G\",\"size\":\"64K\"},{\"slot\":7,\"gpa\":\"0x100010000\","
		    "\"size\":\"64K\",\"flags\":[\"dirty_log\"]},{\"gpa\":\"8G\",\"size\":\"2M\","
		    "\"backing\":{\"kind\":\"memfd\"}},{\"slot\":9,\"gpa\":\"12G\",\"size\":4096}]",
		    NULL, &r);
	assert_no_change(res, 4);
	json_object_put(r);
	/* memslot.list's own entries, boot RAM included, are the same layout. */
	listed = layout_text("i");
	res = apply("i", listed, NULL, &r);
	assert_no_change(res, 5);
	json_object_put(r);
	/* A dry run of a change changes nothing either. */
	res = apply("i", "[]", "\"dry_run\":true", &r);
	list_n(res, "deleted", 4);
	cr_assert(json_object_get_boolean(json_object_object_get(res, "dry_run")));
	json_object_put(r);
	p = layout_text("i");
	cr_assert_str_eq(p, before, "the layout must not change");
	file_print_same("i", "journal", &journal);
	file_print_same("i", "json", &snap);
	free(p);
	free(before);
	free(listed);
}

Test(memslot_apply, moves_keep_guest_memory_and_two_slots_can_swap)
{
	json_object *r, *res, *a;

	vm_create("m");
	apply_put("m", "[{\"slot\":1,\"gpa\":\"4G\",\"size\":\"64K\"},"
		  "{\"slot\":2,\"gpa\":\"0x100010000\",\"size\":\"64K\"}]");
	memory_write("m", "0x100000000", "b25l");		/* "one" */
	memory_write("m", "0x100010000", "dHdv");		/* "two" */
	res = apply("m", "[{\"slot\":1,\"gpa\":\"0x100010000\",\"size\":\"64K\"},"
		    "{\"slot\":2,\"gpa\":\"4G\",\"size\":\"64K\"}]", NULL, &r);
	a = list_n(res, "moved", 2);
	cr_assert_str_eq(str(nth(a, 0), "old_gpa"), "0x100000000");
	cr_assert_eq(num(res, "ops"), 3, "a swap passes one slot through a free range: %s",
		     json_object_to_json_string(res));
	json_object_put(r);
	memory_is("m", "0x100010000", "b25l", "slot 1 took its memory along");
	memory_is("m", "0x100000000", "dHdv", "slot 2 took its memory along");
	/* A chain: slot 2 must leave before slot 1 can take its place. */
	res = apply("m", "[{\"slot\":1,\"gpa\":\"4G\",\"size\":\"64K\"},"
		    "{\"slot\":2,\"gpa\":\"0x100020000\",\"size\":\"64K\"}]", NULL, &r);
	list_n(res, "moved", 2);
	cr_assert_eq(num(res, "ops"), 2);
	json_object_put(r);
	memory_is("m", "0x100000000", "b25l", "slot 1 is back");
}

Test(memslot_apply, slots_left_out_go_and_other_memory_replaces_a_slot)
{
	json_object *r, *res, *a;
	char *after;

	vm_create("d");
	apply_put("d", "[{\"slot\":1,\"gpa\":\"4G\",\"size\":\"64K\"},"
		  "{\"slot\":2,\"gpa\":\"5G\",\"size\":\"64K\"},"
		  "{\"slot\":3,\"gpa\":\"6G\",\"size\":\"64K\"}]");
	memory_write("d", "0x100000000", "b25l");
	res = apply("d", "[{\"slot\":1,\"gpa\":\"4G\",\"size\":\"128K\"},"
		    "{\"slot\":3,\"gpa\":\"6G\",\"size\":\"64K\",\"flags\":[\"dirty_log\"]}]",
		    NULL, &r);
	a = list_n(res, "replaced", 1);
	cr_assert_eq(num(json_object_object_get(nth(a, 0), "old"), "size"), 65536,
		     "the replaced slot's old size: %s", json_object_to_json_string(a));
	a = list_n(res, "deleted", 1);
	cr_assert_eq(num(nth(a, 0), "slot"), 2);
	a = list_n(res, "flags", 1);
	cr_assert_eq(num(nth(a, 0), "slot"), 3);
	cr_assert(json_object_get_boolean(json_object_object_get(nth(a, 0), "dirty_log")));
	cr_assert_eq(num(res, "unchanged"), 0);
	cr_assert_eq(num(res, "ops"), 3, "delete 2, delete 1, create 1: %s",
		     json_object_to_json_string(res));
	json_object_put(r);
	memory_is("d", "0x100000000", "AAAA", "a replaced slot's memory is new");
	after = layout_text("d");
	cr_assert(strstr(after, "{\"slot\":1,\"gpa\":\"0x100000000\",\"size\":131072") &&
		  !strstr(after, "\"slot\":2,") &&
		  strstr(after, "{\"slot\":3,\"gpa\":\"0x180000000\",\"size\":65536,\"flags\":"
			 "[\"dirty_log\"]"), "the layout as applied: %s", after);
	free(after);
	/* Turned on by apply: the dirty log can be read. */
	ok_put("memslot.dirty_log", "{\"vm\":\"d\",\"slot\":3}");
}

/* The next notification on fd (within 5 s), asserting its topic. */
static json_object *event_next(int fd, const char *topic)
{
	char *line = test_recv_line(fd, 5000);
	json_object *n = line ? json_tokener_parse(line) : NULL;

	cr_assert(n && !strcmp(str(n, "method"), topic), "expected %s, got %s", topic, line);
	free(line);
	return n;
}

Test(memslot_apply, a_mixed_change_is_one_transaction_announced_slot_by_slot)
{
	int fd = test_connect(d.sock);
	json_object *n, *p, *x;
	char *line;

	vm_create("x");
	apply_put("x", "[{\"slot\":1,\"gpa\":\"4G\",\"size\":\"64K\"},"
		  "{\"slot\":2,\"gpa\":\"5G\",\"size\":\"64K\"}]");
	line = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\","
			    "\"params\":{\"topics\":[\"memslot.created\",\"memslot.moved\","
			    "\"memslot.deleted\"]}}");
	cr_assert(line && strstr(line, "\"result\""), "subscribe: %s", line);
	free(line);
	line = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"memslot.apply\","
			    "\"params\":{\"vm\":\"x\",\"slots\":[{\"slot\":1,\"gpa\":\"7G\","
			    "\"size\":\"64K\"},{\"gpa\":\"8G\",\"size\":\"4K\"}]}}");
	cr_assert(line && strstr(line, "\"id\":2") && strstr(line, "\"ops\":3"),
		  "the reply (delete, move, create) comes first: %s", line);
	free(line);
	n = event_next(fd, "memslot.moved");
	cr_assert(json_object_object_get_ex(n, "params", &p));
	cr_assert_str_eq(str(p, "old_gpa"), "0x100000000");
	cr_assert(json_object_object_get_ex(p, "transaction", &x) && num(x, "count") == 3,
		  "each event counts the apply's 3 changes: %s", json_object_to_json_string(p));
	json_object_put(n);
	json_object_put(event_next(fd, "memslot.created"));
	json_object_put(event_next(fd, "memslot.deleted"));
	close(fd);
}

/* ---- refusals ------------------------------------------------------------------- */

/* Calls memslot.apply on vm expecting code, data.field and data.index. */
static void apply_err(const char *vm, const char *slots, int code, const char *field,
		      int index)
{
	char p[16384];
	json_object *r, *e, *data, *i;

	snprintf(p, sizeof(p), "{\"vm\":\"%s\",\"slots\":%s}", vm, slots);
	err("memslot.apply", p, code, field);
	if (index < 0)
		return;
	r = test_rpc(d.sock, "memslot.apply", p);
	cr_assert(json_object_object_get_ex(r, "error", &e) &&
		  json_object_object_get_ex(e, "data", &data) &&
		  json_object_object_get_ex(data, "index", &i) &&
		  json_object_get_int(i) == index, "expected data.index %d: %s", index,
		  json_object_to_json_string(r));
	json_object_put(r);
}

Test(memslot_apply, a_refused_op_leaves_the_layout_and_the_files_as_they_were)
{
	struct file_print journal, snap;
	char *before, *after, slots[512];

	vm_create("r");
	apply_put("r", "[{\"slot\":1,\"gpa\":\"4G\",\"size\":\"64K\"},"
		  "{\"slot\":2,\"gpa\":\"5G\",\"size\":\"64K\"}]");
	memory_write("r", "0x100000000", "b25l");
	before = layout_text("r");
	file_print_take("r", "journal", &journal);
	file_print_take("r", "json", &snap);
	/* The transaction refuses a file outside --file-dir after it deleted
	 * slot 2 and moved slot 1 in its model: all undone. */
	snprintf(slots, sizeof(slots), "[{\"slot\":1,\"gpa\":\"9G\",\"size\":\"64K\"},"
		 "{\"gpa\":\"10G\",\"size\":\"64K\",\"backing\":{\"kind\":\"file\","
		 "\"path\":\"%s/../x\"}}]", files);
	apply_err("r", slots, -32007, "slots[1].backing.path", 1);
	/* The plan refuses overlaps before anything. */
	apply_err("r", "[{\"slot\":1,\"gpa\":\"4G\",\"size\":\"64K\"},"
		  "{\"gpa\":\"0x10000f000\",\"size\":\"8K\"}]", -32003, "slots[1].gpa", 1);
	after = layout_text("r");
	cr_assert_str_eq(after, before, "the layout must be as before");
	file_print_same("r", "journal", &journal);
	file_print_same("r", "json", &snap);
	memory_is("r", "0x100000000", "b25l", "slot 1 kept its place and memory");
	free(before);
	free(after);
}

/* n slots of 4 KiB from 4 GiB on, without ids, as a JSON array. */
static void slots_n(char *buf, size_t len, int n)
{
	snprintf(buf, len, "[");
	for (int i = 0; i < n; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s{\"gpa\":\"0x%llx\",\"size\":4096}",
			 i ? "," : "", 0x100000000ull + (unsigned long long)i * 0x1000);
	snprintf(buf + strlen(buf), len - strlen(buf), "]");
}

Test(memslot_apply, more_changes_than_one_transaction_takes_are_refused_whole)
{
	char slots[8192], *before, *after;
	json_object *r, *res;

	vm_create("t");
	before = layout_text("t");
	slots_n(slots, sizeof(slots), 65);
	apply_err("t", slots, -32006, "slots", -1);
	after = layout_text("t");
	cr_assert_str_eq(after, before, "nothing is created");
	slots_n(slots, sizeof(slots), 64);
	res = apply("t", slots, NULL, &r);
	list_n(res, "created", 64);
	json_object_put(r);
	free(before);
	free(after);
}

Test(memslot_apply, bad_entries_are_refused_naming_the_field)
{
	vm_create("b");
	apply_err("b", "[{\"gpa\":\"4G\",\"size\":\"64K\"},{\"gpa\":\"5G\",\"size\":\"64K\"},"
		  "{\"gpa\":\"0x180000800\",\"size\":\"64K\"}]", -32602, "slots[2].gpa", 2);
	apply_err("b", "[{\"gpa\":\"4G\",\"size\":\"64K\",\"bogus\":1}]", -32602,
		  "slots[0].bogus", -1);
	apply_err("b", "[{\"gpa\":\"4G\",\"size\":\"4x\"}]", -32602, "slots[0].size", -1);
	apply_err("b", "[{\"slot\":0,\"gpa\":0,\"size\":\"32M\"}]", -32602, "slots[0].slot", 0);
	apply_err("b", "[{\"slot\":3,\"gpa\":\"4G\",\"size\":\"64K\"},"
		  "{\"slot\":3,\"gpa\":\"5G\",\"size\":\"64K\"}]", -32602, "slots[1].slot", 1);
	apply_err("b", "[{\"gpa\":\"4K\",\"size\":\"64K\"}]", -32003, "slots[0].gpa", 0);
	apply_err("b", "[{\"gpa\":\"4G\",\"size\":\"64K\",\"flags\":[\"fast\"]}]", -32602,
		  "slots[0].flags[0]", -1);
	apply_err("b", "{\"gpa\":1}", -32602, "slots", -1);
	err("memslot.apply", "{\"vm\":\"b\"}", -32602, "slots");
	err("memslot.apply", "{\"vm\":\"nope\",\"slots\":[]}", -32002, "vm");
	cr_assert_str_eq(layout_text("b"), "[{\"slot\":0,\"gpa\":\"0x0\",\"size\":16777216,"
			 "\"flags\":[],\"backing\":{\"kind\":\"memfd\",\"shared\":true}}]",
			 "nothing was created");
}

/* ---- slotctl and the Python client ---------------------------------------------- */

/* Runs slotctl [--json] memslot apply VM FILE [--dry-run]. */
static int ctl_apply(bool json, const char *vm, const char *file, bool dry, char **out,
		     char **err_text)
{
	const char *argv[10] = { test_slotctl_bin(), "--socket", d.sock };
	int n = 3;

	if (json)
		argv[n++] = "--json";
	argv[n++] = "memslot";
	argv[n++] = "apply";
	argv[n++] = vm;
	argv[n++] = file;
	if (dry)
		argv[n++] = "--dry-run";
	return test_run(argv, out, err_text);
}

static void file_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

Test(memslot_apply, slotctl_applies_a_layout_from_a_file_or_stdin)
{
	char file[256], listed[256], bad[256], *out, *e, sh[1024], *before, *after;
	json_object *o;
	int rc;

	vm_create("c");
	snprintf(file, sizeof(file), "%s/layout.json", top);
	file_write(file, "{\"slots\": [{\"gpa\": \"4G\", \"size\": \"64K\"},\n"
		   "  {\"slot\": 4, \"gpa\": \"5G\", \"size\": \"2M\"}]}\n");
	before = layout_text("c");
	rc = ctl_apply(false, "c", file, true, &out, &e);
	cr_assert_eq(rc, 0, "dry run: exit %d: %s", rc, e);
	cr_assert(strstr(out, "dry run, nothing changed") && strstr(out, "2 created"),
		  "dry run: %s", out);
	free(out);
	free(e);
	after = layout_text("c");
	cr_assert_str_eq(after, before, "the dry run changed nothing");
	free(before);
	free(after);
	rc = ctl_apply(false, "c", file, false, &out, &e);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, e);
	cr_assert(strstr(out, "c: 2 created, 0 moved") && strstr(out, "created  4     0x140000000"),
		  "a line of counts and a row per change: %s", out);
	free(out);
	free(e);
	/* Again, from stdin: nothing to do. */
	snprintf(sh, sizeof(sh), "'%s' --socket '%s' memslot apply c - < '%s'",
		 test_slotctl_bin(), d.sock, file);
	rc = test_run((const char *[]){ "/bin/sh", "-c", sh, NULL }, &out, &e);
	cr_assert_eq(rc, 0, "stdin: exit %d: %s", rc, e);
	cr_assert(strstr(out, "nothing to change; 2 slot(s) already as wanted"), "%s", out);
	free(out);
	free(e);
	/* memslot list --json's output is a layout; --json prints the reply. */
	snprintf(listed, sizeof(listed), "%s/listed.json", top);
	snprintf(sh, sizeof(sh), "'%s' --socket '%s' --json memslot list c > '%s'",
		 test_slotctl_bin(), d.sock, listed);
	cr_assert_eq(test_run((const char *[]){ "/bin/sh", "-c", sh, NULL }, NULL, NULL), 0);
	rc = ctl_apply(true, "c", listed, false, &out, &e);
	cr_assert_eq(rc, 0, "--json: exit %d: %s", rc, e);
	o = json_tokener_parse(out);
	cr_assert_not_null(o, "--json prints JSON: %s", out);
	assert_no_change(o, 3);
	json_object_put(o);
	free(out);
	free(e);
	/* A file that is not a layout: a usage error, as JSON with --json. */
	snprintf(bad, sizeof(bad), "%s/bad.json", top);
	file_write(bad, "{\"ops\": []}");
	rc = ctl_apply(true, "c", bad, false, &out, &e);
	cr_assert_eq(rc, 2, "expected exit 2, got %d", rc);
	o = json_tokener_parse(e);
	cr_assert(o && strstr(e, "\"source\"") && strstr(e, "is not a layout"),
		  "a JSON error from slotctl: %s", e);
	json_object_put(o);
	free(out);
	free(e);
	/* A refused layout: the server's error, exit 1. */
	file_write(bad, "[{\"gpa\": \"4G\", \"size\": \"64K\"}, {\"gpa\": \"4G\", \"size\": \"4K\"}]");
	rc = ctl_apply(false, "c", bad, false, &out, &e);
	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(strstr(e, "-32003") && strstr(e, "slots[1].gpa"), "the error names the "
		  "entry: %s", e);
	free(out);
	free(e);
}

/* The Python client's apply() with memslot.list's result, then a change. */
static const char py_apply_script[] =
	"import sys\n"
	"sys.path.insert(0, sys.argv[1] + '/clients')\n"
	"from slotd_client import SlotdClient\n"
	"c = SlotdClient(sys.argv[2], timeout=10)\n"
	"layout = c.call('memslot.list', vm='py')\n"
	"again = c.apply('py', layout)\n"
	"layout['memslots'].append({'gpa': '8G', 'size': '4K'})\n"
	"more = c.apply('py', layout)\n"
	"print(again['unchanged'], len(again['created']), more['created'][0]['slot'])\n";

Test(memslot_apply, the_python_client_applies_a_listed_layout)
{
	const char *src = getenv("SLOTD_SRCDIR");
	const char *argv[] = { "/usr/bin/env", "python3", "-c", py_apply_script,
			       src && *src ? src : ".", d.sock, NULL };
	char *out, *e;
	int rc;

	vm_create("py");
	rc = test_run(argv, &out, &e);
	cr_assert_eq(rc, 0, "expected exit 0, got %d: %s", rc, e);
	cr_assert_str_eq(out, "1 0 1\n", "boot RAM unchanged, nothing created, then slot 1");
	free(out);
	free(e);
}
