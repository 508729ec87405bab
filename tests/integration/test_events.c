/* Events that can be resumed, through the real daemon: every notification
 * carries seq (strictly increasing across topics) and the run's epoch;
 * events.subscribe {since, epoch} replays exactly what a client missed,
 * after its reply and before live events, or says it missed events when
 * the ring no longer reaches back (count and byte bounds) or slotd
 * restarted; a since in the future is refused.  Also slotctl events
 * watch --since and the Python client.  The tests that cause events make
 * memslots on VMs and skip without /dev/kvm; the others need no VM. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

/* The ring's count bound as documented (rpc/events.h RPC_EVENTS_MAX). */
#define RING_EVENTS	1024

static struct test_daemon d;

static void start_with(const char *const *extra)
{
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(test_daemon_start(&d, extra), 0, "slotd did not start; log:\n%s",
		     test_slurp(d.log));
}

static void start(void)
{
	start_with(NULL);
}

static void stop(void)
{
	if (d.pid > 0) {
		int st = test_daemon_stop(&d);

		cr_expect_eq(st, 0, "slotd did not exit cleanly (its log is above)");
	}
}

TestSuite(events, .init = start, .fini = stop, .timeout = 180);

static void require_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("no usable /dev/kvm on this host: events come from VMs' memslots");
}

#define ok_put(m, p)	t_rpc_ok_put(&d, m, p)
#define num(o, k)	t_json_int(o, k)
#define str(o, k)	t_json_str(o, k)

static json_object *member(json_object *o, const char *k)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k,
		  json_object_to_json_string(o));
	return v;
}

/* A VM that is defined, never started: its memslots change, nothing else
 * makes events on it. */
static void vm_create(const char *name)
{
	char p[160];

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"memory\":\"16M\",\"payload\":\"builtin:busy\"}",
		 name);
	ok_put("vm.create", p);
}

/* n (even) memslot events on vm: creates of 4 KiB slots 1.. then their
 * deletes, in transactions of up to 64 ops (one event per op). */
static void events_make(const char *vm, unsigned n)
{
	char *p = malloc(8192);

	cr_assert_not_null(p);
	cr_assert_eq(n % 2, 0, "events_make makes pairs");
	while (n) {
		unsigned k = n >= 128 ? 64 : n / 2;

		for (int del = 0; del < 2; del++) {
			size_t len = (size_t)sprintf(p, "{\"vm\":\"%s\",\"ops\":[", vm);

			for (unsigned i = 1; i <= k; i++)
				len += (size_t)sprintf(p + len, del ? "%s{\"op\":\"delete\",\"slot\":%u}" :
						       "%s{\"op\":\"create\",\"slot\":%u,\"gpa\":"
						       "\"0x%llx\",\"size\":4096}", i > 1 ? "," : "", i,
						       0x100000000ull + i * 0x1000ull);
			sprintf(p + len, "]}");
			ok_put("memslot.transaction", p);
		}
		n -= 2 * k;
	}
	free(p);
}

/* One line from fd as JSON, asserting there is one within 10 s. */
static json_object *line_json(int fd, const char *what)
{
	char *line = test_recv_line(fd, 10000);
	json_object *o = line ? json_tokener_parse(line) : NULL;

	cr_assert_not_null(o, "%s: expected a line from slotd, got %s", what,
			   line ? line : "nothing within 10 s");
	free(line);
	return o;
}

/* Sends events.subscribe with params on fd; the very next line must be
 * its reply (the replayed events come after it).  Returns the result; *r
 * the reply to put. */
static json_object *subscribe(int fd, const char *params, json_object **r)
{
	char req[512];
	json_object *res;

	snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"events.subscribe\","
		 "\"params\":%s}\n", params);
	cr_assert_eq(test_send(fd, req, strlen(req)), 0);
	*r = line_json(fd, "events.subscribe");
	cr_assert(json_object_object_get_ex(*r, "result", &res) &&
		  num(*r, "id") == 7, "events.subscribe %s: expected its reply first, got %s",
		  params, json_object_to_json_string(*r));
	return res;
}

/* The next line on fd, asserted to be a notification; returns its
 * params (a reference into *n, which the caller puts). */
static json_object *next_event(int fd, json_object **n)
{
	*n = line_json(fd, "a notification");
	cr_assert(!json_object_object_get_ex(*n, "id", NULL) &&
		  json_object_object_get_ex(*n, "method", NULL),
		  "expected a notification, got %s", json_object_to_json_string(*n));
	return member(*n, "params");
}

/* Asserts that nothing is queued on fd before the reply to a request
 * sent now: slotd answers in order, so an event still to come (a bogus
 * replay) would show up first. */
static void assert_nothing_queued(int fd, const char *why)
{
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"daemon.version\"}\n";
	json_object *r;

	cr_assert_eq(test_send(fd, req, strlen(req)), 0);
	r = line_json(fd, "daemon.version");
	cr_assert(json_object_object_get_ex(r, "id", NULL) && num(r, "id") == 99,
		  "%s: expected no notification, got %s", why, json_object_to_json_string(r));
	json_object_put(r);
}

static void assert_epoch_format(const char *e)
{
	cr_assert_eq(strlen(e), 32, "epoch: expected 32 hex digits, got '%s'", e);
	cr_assert_eq(strspn(e, "0123456789abcdef"), 32, "epoch: expected lower-case hex, got '%s'",
		     e);
}

Test(events, subscribe_answers_the_epoch_and_the_last_seq)
{
	int fd = test_connect(d.sock);
	json_object *r, *res = subscribe(fd, "{}", &r);

	assert_epoch_format(str(res, "epoch"));
	cr_assert_eq(num(res, "seq"), 0, "no event yet: expected seq 0, got %s",
		     json_object_to_json_string(res));
	cr_assert_eq(num(res, "oldest"), 1, "an empty ring: expected oldest 1, got %s",
		     json_object_to_json_string(res));
	cr_assert(!json_object_get_boolean(member(res, "missed")), "nothing asked, nothing missed");
	cr_assert_eq(num(res, "replayed"), 0);
	json_object_put(r);
	/* since 0 before any event: every event of the run, i.e. none. */
	res = subscribe(fd, "{\"since\":0}", &r);
	cr_assert(!json_object_get_boolean(member(res, "missed")), "since 0 at seq 0: %s",
		  json_object_to_json_string(res));
	json_object_put(r);
	assert_nothing_queued(fd, "since 0 with no event");
	close(fd);
}

Test(events, since_after_the_last_event_is_refused_naming_since)
{
	t_rpc_err(&d, "events.subscribe", "{\"since\":5}", -32602, "since",
		  "after the last event");
	t_rpc_err(&d, "events.subscribe", "{\"since\":-1}", -32602, "since", NULL);
	t_rpc_err(&d, "events.subscribe", "{\"epoch\":\"0123456789abcdef0123456789abcdef\"}", -32602,
		  "epoch", "goes with since");
	t_rpc_err(&d, "events.subscribe", "{\"since\":0,\"epoch\":\"nope\"}", -32602, "epoch",
		  "32 lower-case hex digits");
}

Test(events, a_restart_starts_a_new_epoch_and_the_old_one_is_missed)
{
	int fd = test_connect(d.sock);
	json_object *r, *res = subscribe(fd, "{}", &r);
	char old[64], p[160];

	snprintf(old, sizeof(old), "%s", str(res, "epoch"));
	json_object_put(r);
	close(fd);
	/* The same epoch is good for since 0 while this slotd runs. */
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"since\":0,\"epoch\":\"%s\"}", old);
	res = subscribe(fd, p, &r);
	cr_assert(!json_object_get_boolean(member(res, "missed")), "the current epoch: %s",
		  json_object_to_json_string(res));
	json_object_put(r);
	close(fd);
	stop();
	start();
	fd = test_connect(d.sock);
	res = subscribe(fd, p, &r);
	cr_assert_str_neq(str(res, "epoch"), old, "a restart must start a new epoch");
	assert_epoch_format(str(res, "epoch"));
	cr_assert(json_object_get_boolean(member(res, "missed")),
		  "since of the earlier run's epoch: expected missed, got %s",
		  json_object_to_json_string(res));
	cr_assert_eq(num(res, "replayed"), 0);
	json_object_put(r);
	assert_nothing_queued(fd, "a missed resume replays nothing");
	close(fd);
}

/* Reads n notifications, asserting seqs first, first + 1, ... and one
 * epoch; returns the last seq. */
static int64_t events_expect(int fd, unsigned n, int64_t first, const char *epoch)
{
	for (unsigned i = 0; i < n; i++) {
		json_object *ev, *p = next_event(fd, &ev);

		cr_assert_eq(num(p, "seq"), first + i, "event %u: expected seq %" PRId64 ", got %s", i,
			     first + i, json_object_to_json_string(ev));
		cr_assert_str_eq(str(p, "epoch"), epoch, "event %u: the run's epoch: %s", i,
				 json_object_to_json_string(ev));
		json_object_put(ev);
	}
	return first + n - 1;
}

Test(events, seq_increases_by_one_across_all_topics)
{
	int fd = test_connect(d.sock);
	json_object *r, *res, *ev, *p;
	bool seen[5] = { false };
	static const char *const topics[] = { "vm.state_changed", "vm.quirk_changed",
		"memslot.created", "memslot.moved", "memslot.deleted" };
	int64_t prev;
	char epoch[64];

	require_kvm();
	res = subscribe(fd, "{}", &r);
	prev = num(res, "seq");
	snprintf(epoch, sizeof(epoch), "%s", str(res, "epoch"));
	json_object_put(r);
	vm_create("s");
	ok_put("memslot.create", "{\"vm\":\"s\",\"gpa\":\"0x100000000\",\"size\":\"64K\"}");
	ok_put("memslot.move", "{\"vm\":\"s\",\"slot\":1,\"gpa\":\"0x200000000\"}");
	ok_put("vm.quirks.set", "{\"vm\":\"s\",\"quirk\":\"slot_zap_all\",\"enabled\":false}");
	ok_put("memslot.delete", "{\"vm\":\"s\",\"slot\":1}");
	ok_put("vm.start", "{\"name\":\"s\"}");
	ok_put("vm.stop", "{\"name\":\"s\"}");
	/* Five topics, six events (running, then stopped). */
	for (int i = 0; i < 6; i++) {
		const char *m;

		p = next_event(fd, &ev);
		m = str(ev, "method");
		cr_assert_eq(num(p, "seq"), prev + 1, "expected seq %" PRId64 " after %" PRId64
			     ", got %s", prev + 1, prev, json_object_to_json_string(ev));
		cr_assert_str_eq(str(p, "epoch"), epoch, "%s", json_object_to_json_string(ev));
		prev++;
		for (int t = 0; t < 5; t++)
			seen[t] |= !strcmp(m, topics[t]);
		json_object_put(ev);
	}
	for (int t = 0; t < 5; t++)
		cr_expect(seen[t], "no %s event among the six", topics[t]);
	ok_put("vm.destroy", "{\"name\":\"s\"}");
	close(fd);
}

Test(events, resume_replays_exactly_the_missed_events_then_live_ones)
{
	int fd = test_connect(d.sock);
	json_object *r, *res;
	int64_t last;
	char epoch[64], p[160];

	require_kvm();
	vm_create("g");
	res = subscribe(fd, "{}", &r);
	snprintf(epoch, sizeof(epoch), "%s", str(res, "epoch"));
	last = num(res, "seq");
	json_object_put(r);
	events_make("g", 4);
	last = events_expect(fd, 4, last + 1, epoch);
	close(fd);
	/* Away: six events this client did not see. */
	events_make("g", 6);
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"since\":%" PRId64 ",\"epoch\":\"%s\"}", last, epoch);
	res = subscribe(fd, p, &r);
	cr_assert(!json_object_get_boolean(member(res, "missed")), "%s",
		  json_object_to_json_string(res));
	cr_assert_eq(num(res, "replayed"), 6, "expected 6 events replayed, got %s",
		     json_object_to_json_string(res));
	cr_assert_eq(num(res, "seq"), last + 6, "the last seq so far: %s",
		     json_object_to_json_string(res));
	json_object_put(r);
	last = events_expect(fd, 6, last + 1, epoch);
	assert_nothing_queued(fd, "after the six replayed events");
	/* Live ones follow, numbered on. */
	events_make("g", 2);
	last = events_expect(fd, 2, last + 1, epoch);
	assert_nothing_queued(fd, "after the two live events");
	close(fd);
	ok_put("vm.destroy", "{\"name\":\"g\"}");
}

Test(events, resume_replays_only_the_topics_named)
{
	int fd = test_connect(d.sock);
	json_object *r, *res, *ev, *pa;
	int64_t from;
	char p[200];

	require_kvm();
	vm_create("t");
	res = subscribe(fd, "{}", &r);
	from = num(res, "seq");
	json_object_put(r);
	close(fd);
	events_make("t", 6);	/* 3 creates, then 3 deletes */
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"topics\":[\"memslot.deleted\"],\"since\":%" PRId64 "}", from);
	res = subscribe(fd, p, &r);
	cr_assert_eq(num(res, "replayed"), 3, "three deletes: %s", json_object_to_json_string(res));
	json_object_put(r);
	for (int i = 0; i < 3; i++) {
		pa = next_event(fd, &ev);
		cr_assert_str_eq(str(ev, "method"), "memslot.deleted");
		cr_assert_eq(num(pa, "seq"), from + 4 + i, "the deletes are seqs %" PRId64 "..: %s",
			     from + 4, json_object_to_json_string(ev));
		json_object_put(ev);
	}
	assert_nothing_queued(fd, "no other topic replayed");
	close(fd);
	ok_put("vm.destroy", "{\"name\":\"t\"}");
}

Test(events, a_batch_gets_its_reply_then_the_replay_then_its_own_events)
{
	int fd = test_connect(d.sock);
	json_object *r, *res, *ev, *pa;
	int64_t from;
	char req[600];

	require_kvm();
	vm_create("b");
	events_make("b", 2);
	res = subscribe(fd, "{\"topics\":[\"vm.quirk_changed\"]}", &r);
	from = num(res, "seq") - 2;
	json_object_put(r);
	snprintf(req, sizeof(req), "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\","
		 "\"params\":{\"since\":%" PRId64 "}},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
		 "\"memslot.create\",\"params\":{\"vm\":\"b\",\"gpa\":\"0x300000000\",\"size\":4096}}]\n",
		 from);
	cr_assert_eq(test_send(fd, req, strlen(req)), 0);
	r = line_json(fd, "the batch");
	cr_assert(json_object_is_type(r, json_type_array) && json_object_array_length(r) == 2,
		  "expected the batch's two replies first, got %s", json_object_to_json_string(r));
	json_object_put(r);
	for (int i = 0; i < 3; i++) {
		pa = next_event(fd, &ev);
		cr_assert_eq(num(pa, "seq"), from + 1 + i, "expected seq %" PRId64 " (2 replayed, "
			     "then the batch's create), got %s", from + 1 + i,
			     json_object_to_json_string(ev));
		cr_assert_str_eq(str(ev, "method"), i == 1 ? "memslot.deleted" : "memslot.created");
		json_object_put(ev);
	}
	assert_nothing_queued(fd, "no duplicate of the batch's event");
	close(fd);
	ok_put("vm.destroy", "{\"name\":\"b\"}");
}

Test(events, resume_past_the_ring_says_missed_and_replays_nothing)
{
	int fd = test_connect(d.sock);
	json_object *r, *res;
	int64_t from, last, oldest;
	char epoch[64], p[160];

	require_kvm();
	vm_create("o");
	res = subscribe(fd, "{}", &r);
	from = num(res, "seq");
	snprintf(epoch, sizeof(epoch), "%s", str(res, "epoch"));
	json_object_put(r);
	close(fd);
	events_make("o", RING_EVENTS + 128);
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"since\":%" PRId64 ",\"epoch\":\"%s\"}", from, epoch);
	res = subscribe(fd, p, &r);
	last = num(res, "seq");
	oldest = num(res, "oldest");
	cr_assert_eq(last, from + RING_EVENTS + 128, "%s", json_object_to_json_string(res));
	cr_assert_eq(oldest, last - RING_EVENTS + 1, "the ring holds the last %d events: %s",
		     RING_EVENTS, json_object_to_json_string(res));
	cr_assert(json_object_get_boolean(member(res, "missed")), "128 events fell off the ring: %s",
		  json_object_to_json_string(res));
	cr_assert_eq(num(res, "replayed"), 0, "%s", json_object_to_json_string(res));
	json_object_put(r);
	assert_nothing_queued(fd, "a missed resume replays nothing");
	/* Subscribed from last on: the next events are live. */
	events_make("o", 2);
	events_expect(fd, 2, last + 1, epoch);
	close(fd);
	/* since oldest - 1 reaches back to the oldest event held: the whole
	 * ring replays; one further back is missed. */
	fd = test_connect(d.sock);
	oldest = num(subscribe(fd, "{}", &r), "oldest");
	json_object_put(r);
	close(fd);
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"since\":%" PRId64 ",\"epoch\":\"%s\"}", oldest - 2, epoch);
	res = subscribe(fd, p, &r);
	cr_assert(json_object_get_boolean(member(res, "missed")), "since oldest - 2: %s",
		  json_object_to_json_string(res));
	json_object_put(r);
	close(fd);
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"since\":%" PRId64 ",\"epoch\":\"%s\"}", oldest - 1, epoch);
	res = subscribe(fd, p, &r);
	cr_assert(!json_object_get_boolean(member(res, "missed")), "since oldest - 1: %s",
		  json_object_to_json_string(res));
	cr_assert_eq(num(res, "replayed"), RING_EVENTS, "expected the whole ring (%d) replayed, "
		     "got %s", RING_EVENTS, json_object_to_json_string(res));
	json_object_put(r);
	events_expect(fd, RING_EVENTS, oldest, epoch);
	assert_nothing_queued(fd, "after the whole ring");
	close(fd);
	ok_put("vm.destroy", "{\"name\":\"o\"}");
}

Test(events, the_ring_is_bounded_by_bytes_too)
{
	static const char *const extra[] = { "--max-output", "65536", NULL };
	int fd;
	json_object *r, *res;
	int64_t from, last, oldest;
	char p[160];

	require_kvm();
	/* At most half of --max-output: 32 KiB, some 40 memslot events. */
	start_with(extra);
	vm_create("y");
	t_rpc_ok_put(&d, "daemon.version", NULL);
	fd = test_connect(d.sock);
	res = subscribe(fd, "{}", &r);
	from = num(res, "seq");
	json_object_put(r);
	close(fd);
	events_make("y", 200);
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"since\":%" PRId64 "}", from);
	res = subscribe(fd, p, &r);
	last = num(res, "seq");
	oldest = num(res, "oldest");
	cr_assert(json_object_get_boolean(member(res, "missed")), "200 events of ~700 bytes in "
		  "32 KiB: expected missed, got %s", json_object_to_json_string(res));
	cr_assert(last - oldest + 1 > 10 && last - oldest + 1 < 100, "expected some 40 events "
		  "held, got %s", json_object_to_json_string(res));
	json_object_put(r);
	close(fd);
	/* What it holds replays, every byte of it within the connection's cap. */
	fd = test_connect(d.sock);
	snprintf(p, sizeof(p), "{\"since\":%" PRId64 "}", oldest - 1);
	res = subscribe(fd, p, &r);
	cr_assert_eq(num(res, "replayed"), last - oldest + 1, "%s", json_object_to_json_string(res));
	json_object_put(r);
	json_object_put(line_json(fd, "the first replayed event"));
	close(fd);
	ok_put("vm.destroy", "{\"name\":\"y\"}");
}

Test(events, a_subscriber_whose_replay_does_not_fit_is_dropped_and_slotd_serves_on)
{
	static const char *const extra[] = { "--max-output", "65536", NULL };
	static const char cap[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.capabilities\"},";
	char *batch = malloc(45 * sizeof(cap) + 256), *line;
	json_object *r, *res;
	int64_t oldest;
	size_t len = 1;
	int fd;

	require_kvm();
	start_with(extra);
	vm_create("f");
	events_make("f", 200);	/* the ring full: some 32 KiB */
	fd = test_connect(d.sock);
	oldest = num(subscribe(fd, "{}", &r), "oldest");
	json_object_put(r);
	close(fd);
	/* One line: 45 replies of ~1 KiB queued, then a replay of ~32 KiB,
	 * over the connection's 64 KiB. */
	batch[0] = '[';
	for (int i = 0; i < 45; i++)
		len += (size_t)sprintf(batch + len, "%s", cap);
	len += (size_t)sprintf(batch + len, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
			       "\"events.subscribe\",\"params\":{\"since\":%" PRId64 "}}]\n",
			       oldest - 1);
	fd = test_connect(d.sock);
	cr_assert_eq(test_send(fd, batch, len), 0);
	free(batch);
	line = test_recv_line(fd, 10000);
	cr_assert_null(line, "expected the connection closed, got a line: %.200s", line);
	cr_assert_eq(read(fd, &(char){ 0 }, 1), 0, "expected EOF: the subscriber was dropped");
	close(fd);
	/* slotd serves on, and the same resume on its own fits. */
	fd = test_connect(d.sock);
	{
		char p[96];

		snprintf(p, sizeof(p), "{\"since\":%" PRId64 "}", oldest - 1);
		res = subscribe(fd, p, &r);
		cr_assert(!json_object_get_boolean(member(res, "missed")) &&
			  num(res, "replayed") > 10, "%s", json_object_to_json_string(res));
		json_object_put(r);
	}
	close(fd);
	ok_put("vm.destroy", "{\"name\":\"f\"}");
}

/* slotctl with args on this daemon; returns the exit status. */
static int ctl(char **out, char **err, const char *const *args)
{
	const char *argv[24] = { test_slotctl_bin(), "--socket", d.sock };
	int n = 3;

	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return test_run(argv, out, err);
}

Test(events, slotctl_watch_since_prints_the_missed_events_with_their_seq)
{
	json_object *r, *res;
	char since[32], epoch[64], want[64], *out, *err;
	int fd = test_connect(d.sock), rc;
	int64_t from;

	require_kvm();
	vm_create("c");
	res = subscribe(fd, "{}", &r);
	from = num(res, "seq");
	snprintf(epoch, sizeof(epoch), "%s", str(res, "epoch"));
	json_object_put(r);
	close(fd);
	events_make("c", 2);
	snprintf(since, sizeof(since), "%" PRId64, from);
	{
		const char *args[] = { "--timeout", "10", "events", "watch", "--since", since,
				       "--epoch", epoch, "--count", "2", NULL };

		rc = ctl(&out, &err, args);
	}
	cr_assert_eq(rc, 0, "expected exit 0, got %d: %s", rc, err);
	snprintf(want, sizeof(want), "memslot.created seq=%" PRId64 " vm=c", from + 1);
	cr_assert(strstr(out, want), "expected '%s', got:\n%s", want, out);
	snprintf(want, sizeof(want), "memslot.deleted seq=%" PRId64 " vm=c", from + 2);
	cr_assert(strstr(out, want), "expected '%s', got:\n%s", want, out);
	cr_assert(strstr(err, "2 event(s) after seq") && strstr(err, epoch),
		  "expected the replay and the epoch on stderr, got: %s", err);
	free(out);
	free(err);
	ok_put("vm.destroy", "{\"name\":\"c\"}");
}

Test(events, slotctl_watch_says_when_events_were_missed)
{
	const char *args[] = { "--timeout", "0.3", "events", "watch", "--since", "0",
			       "--epoch", "0123456789abcdef0123456789abcdef", NULL };
	const char *jargs[] = { "--json", "--timeout", "0.3", "events", "watch", "--since", "0",
				"--epoch", "0123456789abcdef0123456789abcdef", NULL };
	const char *bad[] = { "events", "watch", "--epoch", "0123456789abcdef0123456789abcdef",
			      NULL };
	char *out, *err;
	json_object *o;
	int rc = ctl(&out, &err, args);

	cr_assert_eq(rc, 0, "expected exit 0 at the timeout, got %d: %s", rc, err);
	cr_assert(strstr(err, "missed events: slotd restarted"), "expected the missed events "
		  "named on stderr, got: %s", err);
	cr_assert_str_empty(out, "no event: %s", out);
	free(out);
	free(err);
	/* --json: the subscription first, for a script to read "missed". */
	rc = ctl(&out, &err, jargs);
	cr_assert_eq(rc, 0, "expected exit 0, got %d: %s", rc, err);
	o = json_tokener_parse(out);
	cr_assert(o && json_object_get_boolean(member(o, "missed")), "expected the subscription "
		  "with missed true on stdout, got: %s", out);
	json_object_put(o);
	free(out);
	free(err);
	rc = ctl(&out, &err, bad);
	cr_assert_eq(rc, 2, "--epoch without --since: expected exit 2, got %d", rc);
	cr_assert(strstr(err, "--epoch goes with --since"), "got: %s", err);
	free(out);
	free(err);
}

/* The Python client: a stream's last_seq and epoch resume it. */
static const char py_resume[] =
	"import sys\n"
	"sys.path.insert(0, sys.argv[1] + '/clients')\n"
	"from slotd_client import SlotdClient\n"
	"a = SlotdClient(sys.argv[2], timeout=10)\n"
	"s = a.events(['memslot.created', 'memslot.deleted'], timeout=10)\n"
	"a.close()\n"
	"with SlotdClient(sys.argv[2], timeout=10) as c:\n"
	"    c.call('memslot.create', vm='p', gpa='0x100000000', size=4096)\n"
	"    c.call('memslot.delete', vm='p', slot=1)\n"
	"with SlotdClient(sys.argv[2], timeout=10) as b:\n"
	"    r = b.events(since=s.last_seq, epoch=s.epoch, timeout=10)\n"
	"    seqs = [next(r)['params']['seq'] for _ in range(2)]\n"
	"    print(r.missed, r.replayed, seqs[1] - seqs[0], r.last_seq == seqs[1])\n"
	"with SlotdClient(sys.argv[2], timeout=10) as b:\n"
	"    r = b.events(since=0, epoch='0' * 32, timeout=0.2)\n"
	"    print(r.missed, list(r))\n";

Test(events, python_client_resumes_and_reports_missed)
{
	const char *src = getenv("SLOTD_SRCDIR");
	const char *argv[] = { "/usr/bin/env", "python3", "-c", py_resume,
			       src && *src ? src : ".", d.sock, NULL };
	char *out, *err;
	int rc;

	require_kvm();
	vm_create("p");
	rc = test_run(argv, &out, &err);
	cr_assert_eq(rc, 0, "expected exit 0, got %d: %s", rc, err);
	cr_assert_str_eq(out, "False 2 1 True\nTrue []\n", "expected the two events replayed "
			 "in order, then missed for another epoch; got:\n%s%s", out, err);
	free(out);
	free(err);
	ok_put("vm.destroy", "{\"name\":\"p\"}");
}
