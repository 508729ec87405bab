/* Outcomes kept for retries (ctl/requests.c) and the request id the
 * store's records carry (ctl/store.c), without KVM: what is kept, for how
 * long, what a restart reads back, and the id checks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/internal.h"
#include "tests/lib/daemon.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-requests-XXXXXX");
	cr_assert(mkdtemp(dir));
}

static void teardown(void)
{
	test_rmtree(dir);
}

TestSuite(ctl_requests, .init = setup, .fini = teardown);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A control plane on dir without KVM (as on a host without it). */
static struct ctl *ctl_on(const char *state)
{
	struct ctl_config cfg = { .kvm_path = "/nonexistent/kvm", .state_dir = state,
				  .runtime_dir = dir, .runner_path = "/bin/false", .log_fd = -1 };
	struct ctl *ctl;

	cr_assert_eq(ctl_create(&cfg, &ctl), 0);
	return ctl;
}

static void end_with(struct ctl *ctl, const char *id, const char *method, uint64_t fp,
		     const char *reply, bool error, bool keep)
{
	struct ctl_request o = { .method = method, .fingerprint = fp, .error = error,
				 .reply = reply, .len = strlen(reply) };

	ctl_request_begin(ctl, id);
	cr_assert_eq(ctl_request_end(ctl, &o, keep), 0);
}

Test(ctl_requests, an_outcome_is_found_by_its_id_and_read_back_by_the_next_start)
{
	struct ctl *ctl = ctl_on(dir);
	struct ctl_request o;

	end_with(ctl, "op-1", "memslot.create", 0xabcdef0123456789ull,
		 "{\"slot\":3,\"gpa\":\"0x1000\"}", false, true);
	end_with(ctl, "op-2", "memslot.delete", 7, "{\"code\":-32002,\"message\":\"no\"}", true, true);
	cr_assert_eq(ctl_request_find(ctl, "op-1", &o), 0);
	cr_assert_str_eq(o.method, "memslot.create");
	cr_assert_eq(o.fingerprint, 0xabcdef0123456789ull);
	cr_assert_not(o.error);
	cr_assert_eq(ctl_request_find(ctl, "op-3", &o), -ENOENT);
	ctl_destroy(ctl, CTL_EXIT_KEEP);

	/* What the next slotd reads: the same outcomes, JSON text intact. */
	ctl = ctl_on(dir);
	cr_assert_eq(ctl_request_find(ctl, "op-1", &o), 0, "op-1 lost across a restart");
	cr_assert_str_eq(o.reply, "{\"slot\":3,\"gpa\":\"0x1000\"}");
	cr_assert_eq(o.fingerprint, 0xabcdef0123456789ull);
	cr_assert_eq(ctl_request_find(ctl, "op-2", &o), 0, "op-2 lost across a restart");
	cr_assert(o.error, "op-2 was an error");
	cr_assert_str_eq(o.method, "memslot.delete");
	ctl_destroy(ctl, CTL_EXIT_KEEP);
}

Test(ctl_requests, an_outcome_not_kept_is_forgotten)
{
	struct ctl *ctl = ctl_on(dir);
	struct ctl_request o;
	char path[128];
	char *text;

	end_with(ctl, "transient", "memslot.create", 1, "{\"code\":-32010}", true, false);
	cr_assert_eq(ctl_request_find(ctl, "transient", &o), -ENOENT);
	snprintf(path, sizeof(path), "%s/requests.journal", dir);
	text = test_slurp(path);
	cr_assert(text && !strstr(text, "transient"), "written: %s", text ? text : "(none)");
	free(text);
	ctl_destroy(ctl, CTL_EXIT_KEEP);
}

Test(ctl_requests, without_a_state_directory_outcomes_live_in_memory)
{
	struct ctl *ctl = ctl_on(NULL);
	struct ctl_request o;

	end_with(ctl, "m", "vm.start", 2, "{}", false, true);
	cr_assert_eq(ctl_request_find(ctl, "m", &o), 0);
	ctl_destroy(ctl, CTL_EXIT_KEEP);
}

static char *line(const char *id, uint64_t at)
{
	char *s;

	cr_assert(asprintf(&s, "{\"id\":\"%s\",\"at\":%" PRIu64 ",\"method\":\"vm.stop\","
			   "\"fp\":\"00000000000000ff\",\"error\":false,\"reply\":{\"ok\":1}}\n",
			   id, at) > 0);
	return s;
}

Test(ctl_requests, outcomes_past_the_window_are_dropped_on_load)
{
	struct ctl_requests *q;
	uint64_t now = now_ns(), day = CTL_REQUEST_WINDOW_S * 1000000000ull;
	char *a = line("old", now - day - 1), *b = line("new", now - day + 1000000000ull);
	char text[1024];
	unsigned bad;

	snprintf(text, sizeof(text), "%s%s", a, b);
	cr_assert_eq(ctl_requests_new(NULL, &q), 0);
	cr_assert_eq(ctl_requests_parse(q, text, now, &bad), 0);
	cr_assert_eq(bad, 0);
	cr_assert_eq(ctl_requests_count(q), 1, "the outcome past the window was kept");
	ctl_requests_free(q);
	free(a);
	free(b);
}

Test(ctl_requests, at_most_the_newest_keep_ids_are_kept)
{
	struct ctl_requests *q;
	uint64_t now = now_ns();
	size_t n = CTL_REQUEST_KEEP + 50, len = 0;
	char *text = malloc(n * 200), id[32];
	unsigned bad;

	cr_assert_not_null(text);
	for (size_t i = 0; i < n; i++) {
		char *l;

		snprintf(id, sizeof(id), "id-%zu", i);
		l = line(id, now - n + i);
		memcpy(text + len, l, strlen(l));
		len += strlen(l);
		free(l);
	}
	text[len] = 0;
	cr_assert_eq(ctl_requests_new(NULL, &q), 0);
	cr_assert_eq(ctl_requests_parse(q, text, now, &bad), 0);
	cr_assert_eq(ctl_requests_count(q), CTL_REQUEST_KEEP, "kept %zu of %zu",
		     ctl_requests_count(q), n);
	ctl_requests_free(q);
	free(text);
}

Test(ctl_requests, a_torn_last_line_and_garbage_are_counted_not_taken)
{
	struct ctl_requests *q;
	uint64_t now = now_ns();
	char *a = line("good", now), text[1024];
	unsigned bad;

	snprintf(text, sizeof(text), "%snot json\n{\"id\":\"bad id\",\"at\":1}\n%.*s", a,
		 (int)strlen(a) - 5, a);
	cr_assert_eq(ctl_requests_new(NULL, &q), 0);
	cr_assert_eq(ctl_requests_parse(q, text, now, &bad), 0);
	cr_assert_eq(bad, 3, "bad lines: %u", bad);
	cr_assert_eq(ctl_requests_count(q), 1);
	ctl_requests_free(q);
	free(a);
}

Test(ctl_requests, request_ids_are_checked)
{
	char why[160], long_id[CTL_REQUEST_ID_MAX + 2];

	cr_assert_eq(ctl_request_id_check("3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b", 36, why,
					  sizeof(why)), 0);
	cr_assert_eq(ctl_request_id_check("ns/name@v1:2+x=y_z.", 19, why, sizeof(why)), 0);
	cr_assert_eq(ctl_request_id_check("", 0, why, sizeof(why)), -EINVAL);
	cr_assert_eq(ctl_request_id_check("a b", 3, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "character 2"), "why: %s", why);
	cr_assert_eq(ctl_request_id_check("a\"b", 3, why, sizeof(why)), -EINVAL);
	cr_assert_eq(ctl_request_id_check("a\0b", 3, why, sizeof(why)), -EINVAL);
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = 0;
	cr_assert_eq(ctl_request_id_check(long_id, CTL_REQUEST_ID_MAX, why, sizeof(why)), 0);
	cr_assert_eq(ctl_request_id_check(long_id, CTL_REQUEST_ID_MAX + 1, why, sizeof(why)),
		     -EINVAL);
}

/* The store's records name the request that wrote them; the VM's last
 * record decides (a snapshot's id, then the journal's). */
Test(ctl_requests, the_last_record_of_a_vm_names_its_request)
{
	struct store_vm v;
	char why[128];

	cr_assert_eq(store_parse("{\"version\":2,\"seq\":1,\"rid\":\"snap\",\"rid_at\":5,"
				 "\"vm\":{\"name\":\"a\",\"memory\":4194304,\"vcpus\":1},\"memslots\":[]}",
				 "{\"seq\":2,\"rid\":\"j2\",\"rid_at\":9,\"del\":4}\n"
				 "{\"seq\":3,\"del\":5}\n", &v, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(v.rid, "", "a last record without an id: none, not '%s'", v.rid);
	store_vm_fini(&v);
	cr_assert_eq(store_parse("{\"version\":2,\"seq\":1,\"rid\":\"snap\",\"rid_at\":5,"
				 "\"vm\":{\"name\":\"a\",\"memory\":4194304,\"vcpus\":1},\"memslots\":[]}",
				 "{\"seq\":2,\"rid\":\"j2\",\"rid_at\":9,\"del\":4}\n", &v, why,
				 sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(v.rid, "j2");
	cr_assert_eq(v.rid_at, 9);
	store_vm_fini(&v);
	cr_assert_eq(store_parse("{\"version\":2,\"seq\":1,\"rid\":\"snap\",\"rid_at\":5,"
				 "\"vm\":{\"name\":\"a\",\"memory\":4194304,\"vcpus\":1},\"memslots\":[]}",
				 "{\"seq\":1,\"rid\":\"old\",\"del\":4}\n", &v, why, sizeof(why)), 0,
		     "%s", why);
	cr_assert_str_eq(v.rid, "snap", "a record the snapshot covers is not the last");
	store_vm_fini(&v);
}

/* What store writes while a request id is set carries it; after, not. */
Test(ctl_requests, records_written_during_a_request_carry_its_id)
{
	struct store *st;
	struct vmm_memslot_info s = { .id = 1, .gpa = 1 << 30, .size = 2 << 20 };
	struct store_vm_def def = { .vcpus = 1, .memory = 4 << 20 };
	struct vmm_err e = { 0 };
	char path[128], *text;

	snprintf(def.name, sizeof(def.name), "a");
	snprintf(def.payload, sizeof(def.payload), "builtin:hello");
	cr_assert_eq(store_open(dir, &st), 0);
	store_rid_set(st, "create-a", 11);
	cr_assert_eq(store_snapshot(st, &def, 0, NULL, 0, &e), 0);
	store_rid_set(st, "put-1", 12);
	cr_assert_eq(store_slot_put(st, "a", &s, &e), 0);
	store_rid_set(st, NULL, 0);
	cr_assert_eq(store_slot_del(st, "a", 1, &e), 0);
	snprintf(path, sizeof(path), "%s/vm-a.json", dir);
	text = test_slurp(path);
	cr_assert(text && strstr(text, "\"rid\":\"create-a\",\"rid_at\":11"), "%s", text);
	free(text);
	snprintf(path, sizeof(path), "%s/vm-a.journal", dir);
	text = test_slurp(path);
	cr_assert(text && strstr(text, "\"rid\":\"put-1\",\"rid_at\":12"), "%s", text);
	cr_assert(strchr(text, '\n') && !strstr(strchr(text, '\n'), "rid"),
		  "the record after the request carries an id: %s", text);
	free(text);
	store_close(st);
}
