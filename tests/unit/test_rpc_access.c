/* The read-only table (rpc/access.c) names every method slotd serves,
 * and the read-only socket refuses exactly the methods it does not mark
 * read-only. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "rpc/internal.h"
#include "rpc/rpc.h"
#include "ctl/ctl.h"
#include "tests/lib/daemon.h"
#include "tests/lib/json_check.h"
#include "tests/lib/rpc_assert.h"

static struct event_base *base;
static struct rpc_server *srv;
static struct ctl *ctl;
static char rundir[] = "/tmp/slotd-access-XXXXXX";

static void setup(void)
{
	/* No KVM: the handlers that run answer -32001 without a VM. */
	struct ctl_config cc = { .kvm_path = "/nonexistent/kvm", .runtime_dir = rundir,
				 .runner_path = "/nonexistent/slotd-runner", .log_fd = -1 };
	struct rpc_config cfg = { 0 };

	cr_assert_not_null(mkdtemp(rundir));
	base = event_base_new();
	cc.base = base;
	cr_assert_eq(ctl_create(&cc, &ctl), 0);
	cfg.ctl = ctl;
	cr_assert_eq(rpc_server_create(base, &cfg, &srv), 0);
	cr_assert_eq(rpc_methods_register_all(srv), 0);
}

static void teardown(void)
{
	rpc_server_destroy(srv);
	ctl_destroy(ctl, CTL_EXIT_KEEP);
	event_base_free(base);
	test_rmtree(rundir);
}

TestSuite(rpc_access, .init = setup, .fini = teardown);

Test(rpc_access, the_table_names_exactly_the_methods_served)
{
	size_t n = rpc_method_access_count();
	bool ro;

	for (size_t i = 0; i < rpc_server_method_count(srv); i++) {
		const char *m = rpc_server_method_name(srv, i);
		bool found = false;

		for (size_t j = 0; j < n; j++)
			found |= !strcmp(rpc_method_access_get(j, &ro), m);
		cr_expect(found, "method %s is served but missing from rpc/access.c", m);
	}
	for (size_t j = 0; j < n; j++) {
		const char *t = rpc_method_access_get(j, &ro);
		bool found = false;

		for (size_t i = 0; i < rpc_server_method_count(srv); i++)
			found |= !strcmp(rpc_server_method_name(srv, i), t);
		cr_expect(found, "rpc/access.c names %s, which slotd does not serve", t);
		if (j > 0)
			cr_expect_lt(strcmp(rpc_method_access_get(j - 1, &ro), t), 0,
				     "%s is out of order (the table is searched by bsearch)", t);
	}
}

Test(rpc_access, changes_and_guest_data_are_never_read_only)
{
	static const char *const never[] = {
		"vm.create", "vm.destroy", "vm.start", "vm.stop", "vm.pause", "vm.resume",
		"vm.memory.read", "vm.memory.write", "vm.console", "vm.quirks.set",
		"memslot.create", "memslot.move", "memslot.delete", "memslot.set_flags",
		"memslot.transaction", "memslot.dirty_log",
	};

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		cr_expect(!rpc_method_read_only(never[i]), "%s is marked read-only", never[i]);
	cr_expect(!rpc_method_read_only("no.such.method"), "unknown methods count as changes");
}

Test(rpc_access, the_read_only_peer_gets_32012_for_every_other_method)
{
	const struct rpc_peer ro = { .read_only = true, .via = "read-only socket" };
	bool read_only;

	for (size_t i = 0; i < rpc_method_access_count(); i++) {
		const char *m = rpc_method_access_get(i, &read_only);
		char req[160], *rep;

		/* {"name":"x"} fails validation or lookup for most, never 32012
		 * for a read-only one; the refusal comes before any of that. */
		snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\","
			 "\"params\":{\"name\":\"x\"}}", m);
		rep = rpc_handle_peer(srv, &ro, req, strlen(req), 1 << 20);
		cr_assert_not_null(rep);
		cr_assert(tj_strict_json(rep, strlen(rep), NULL, 0), "not strict JSON: %s", rep);
		if (read_only)
			cr_expect_neq(t_reply_code(rep), RPC_ERR_DENIED, "%s refused: %s", m, rep);
		else
			cr_expect_eq(t_reply_code(rep), RPC_ERR_DENIED, "%s: expected -32012, got %s", m, rep);
		free(rep);
	}
}
