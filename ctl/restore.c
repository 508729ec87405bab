/* Start-up: every VM of the state directory comes back.
 *
 *   - Its runner is still running (slotd was restarted, upgraded or
 *     crashed): slotd connects to it (runtime_dir/NAME.sock), adopts it,
 *     and reconciles the runner's applied layout with the journal by one
 *     rule, the journal wins (ctl/reconcile.h); each difference and what
 *     was done about it is logged.  The guest runs on throughout; its
 *     uptime is unbroken.
 *   - No runner (the host rebooted, or the runner ended while slotd was
 *     down): the VM is recreated in a new runner with its layout, state
 *     defined ("restored").
 *
 * A runner with no VM in the state directory belongs to a vm.create that
 * was never answered or a vm.destroy cut short: it is ended.  A runner
 * that cannot be adopted (another protocol version, no answer) is left
 * alone and its VM shows as crashed with the reason. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "ctl/internal.h"
#include "ctl/reconcile.h"

struct restore_ctx {
	struct ctl *ctl;
	struct ctl_restore_stats *st;
};

static void sock_path(struct ctl *ctl, const char *vm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.sock", ctl->runtime_dir, vm);
}

/* ---- adopting ------------------------------------------------------------ */

/* One action of the plan, in the runner only (the model is the journal). */
static int action_apply(struct ctl_vm *vm, const struct rec_action *a, struct vmm_err *err)
{
	struct vmm_memslot_op op = { .id = a->slot.id, .gpa = a->slot.gpa };
	uint32_t ids[1];
	size_t failed;
	int fd = -1, r;

	if (a->kind == REC_FLAGS)
		return runner_set_flags(vm->runner, a->slot.id,
					a->slot.slot_flags & VMM_SLOT_DIRTY_LOG, NULL, err);
	op.kind = a->kind == REC_DELETE ? VMM_OP_DELETE :
		  a->kind == REC_MOVE ? VMM_OP_MOVE : VMM_OP_CREATE;
	if (op.kind == VMM_OP_CREATE) {
		op.create = (struct vmm_memslot_params){
			.id = a->slot.id, .gpa = a->slot.gpa, .size = a->slot.size,
			.flags = a->slot.slot_flags, .backing = a->slot.backing,
		};
		r = vm_backing_open(vm, a->slot.id, &op.create, &fd, err);
		if (r)
			return r;
		op.create.has_fd = fd >= 0;
		op.create.fd = fd;
	}
	r = runner_txn_apply(vm->runner, &op, 1, ids, &failed, NULL, err);
	if (!r)
		r = runner_txn_end(vm->runner, true, err);
	if (!r)
		r = runner_flush(vm->runner);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Makes the runner's layout the journal's; logs each step.  When a step
 * fails the runner's layout is taken as it is (and logged), so the model
 * always says what the guest has. */
static int layout_reconcile(struct ctl_vm *vm, const struct store_vm *sv, struct vmm_err *err)
{
	struct vmm_memslot_info *have = NULL;
	struct rec_action *plan = NULL;
	size_t nh = 0, np = 0;
	unsigned failed = 0;
	int r = runner_slots_get(vm->runner, &have, &nh, err);

	if (!r)
		r = reconcile_plan(sv->slots, sv->nslots, have, nh, &plan, &np);
	for (size_t i = 0; !r && i < np; i++) {
		struct vmm_err e = { 0 };
		int rc = action_apply(vm, &plan[i], &e);

		slog_warn("reconcile: vm %s: memslot %u %s: %s%s%s", vm->name, plan[i].slot.id,
			  plan[i].why, reconcile_kind_name(plan[i].kind), rc ? " failed: " : " done",
			  rc ? e.msg : "");
		failed += rc != 0;
	}
	free(plan);
	if (!r && failed) {
		/* The guest has what the runner has: the model says so. */
		free(have);
		have = NULL;
		r = runner_slots_get(vm->runner, &have, &nh, err);
		layout_fini(&vm->layout);
		for (size_t i = 0; !r && i < nh; i++)
			r = layout_insert(&vm->layout, &have[i]);
		slog_error("reconcile: vm %s: %u step(s) failed; the runner's layout is kept and "
			   "written to the state", vm->name, failed);
	}
	free(have);
	return r;
}

/* The journal's quirks, where KVM can still give them; else the
 * runner's (a quirk disabled on a kernel VM cannot come back). */
static void quirks_reconcile(struct ctl_vm *vm, uint64_t want_disabled)
{
	for (size_t i = 0; i < vmm_quirk_desc_count; i++) {
		const struct vmm_quirk_desc *q = &vmm_quirk_descs[i];
		bool want = !(want_disabled & q->bit), have = !(vm->info.quirks_disabled & q->bit);
		struct vmm_vm_info in;
		struct vmm_err e = { 0 };

		if (want == have)
			continue;
		if (runner_quirk_set(vm->runner, q->name, want, &in, NULL, &e)) {
			slog_warn("reconcile: vm %s: quirk %s is %s in the runner, %s in the journal: "
				  "kept as the runner has it (%s)", vm->name, q->name,
				  have ? "on" : "off", want ? "on" : "off", e.msg);
			continue;
		}
		vm_info_take(vm, &in);
		slog_warn("reconcile: vm %s: quirk %s set %s as journaled", vm->name, q->name,
			  want ? "on" : "off");
	}
	vm->quirks_disabled = vm->info.quirks_disabled;
}

int vm_adopt(struct ctl_vm *vm, struct runner *r, const struct store_vm *sv,
	     struct vmm_err *err)
{
	struct vmm_vm_info in;
	int rc;

	vm->runner = r;
	rc = vm_runner_watch(vm);
	if (!rc)
		rc = runner_vm_info(r, &in, err);
	if (rc)
		return rc;
	/* Learning the state is no change of it: nothing to announce. */
	vm->info.state = in.state;
	vm_info_take(vm, &in);
	quirks_reconcile(vm, vmm_quirks_all() & ~sv->quirks_enabled);
	rc = layout_reconcile(vm, sv, err);
	if (rc)
		return rc;
	vm->adopted = true;
	slog_info("state: VM %s adopted: runner %d (%s), %s, up %.1f s, %u memslot(s)", vm->name,
		  runner_pid(r), runner_build(r), vmm_vm_state_name(vm->info.state),
		  vm->info.start_ns ? (double)(vmm_now_ns() - vm->info.start_ns) / 1e9 : 0.0,
		  vm->layout.n);
	return vm_persist_all(vm, ctl_vm_quirks_enabled(vm), err);
}

/* ---- recreating ------------------------------------------------------------ */

/* The VM in a new runner, from its definition and layout. */
static int vm_recreate(struct ctl_vm *vm, const struct store_vm *sv, struct vmm_err *err)
{
	struct vmm_memslot_info boot;
	int r;

	vm_boot_slot(vm, &boot);
	r = layout_insert(&vm->layout, &boot);
	for (size_t i = 0; !r && i < sv->nslots; i++)
		if (layout_find(&vm->layout, sv->slots[i].id))
			r = vmm_err_set(err, -EEXIST, "slot", "memslot %u appears twice",
					sv->slots[i].id);
		else
			r = layout_insert(&vm->layout, &sv->slots[i]);
	if (r)
		return r == -ENOMEM ? vmm_err_set(err, r, NULL, "out of memory") : r;
	vm->quirks_disabled = vmm_quirks_all() & ~sv->quirks_enabled;
	r = vm_runner_start(vm, true, err);
	if (r)
		return r;
	vm->restored = true;
	for (size_t i = 0; i < sv->nslots; i++)
		slog_info("state: VM %s: memslot %u restored: gpa 0x%llx, %llu bytes%s%s", vm->name,
			  sv->slots[i].id, (unsigned long long)sv->slots[i].gpa,
			  (unsigned long long)sv->slots[i].size, sv->slots[i].backing.path[0] ? ", " : "",
			  sv->slots[i].backing.path);
	slog_info("state: VM %s restored from %s: %s, %u vCPU(s), %zu extra memslot(s), state "
		  "defined", vm->name, sv->file, vmm_vm_type_name(sv->def.type), sv->def.vcpus,
		  sv->nslots);
	return vm_persist_all(vm, ctl_vm_quirks_enabled(vm), err);
}

/* Ends a runner that hosts no VM of the state directory. */
static void runner_end(struct runner *r, const char *why)
{
	struct vmm_err e = { 0 };

	slog_warn("state: runner %d on %s (VM '%s') %s: ended", runner_pid(r), runner_sock_path(r),
		  runner_vm_name(r)[0] ? runner_vm_name(r) : "none", why);
	unlink(runner_sock_path(r));
	if (runner_vm_destroy(r, &e))
		runner_kill(r);
	runner_free(r);
}

/* Adopts, or else recreates, one VM of the state directory. */
static int restore_vm_one(const struct store_vm *sv, char *why, size_t len, void *arg)
{
	struct restore_ctx *c = arg;
	struct ctl *ctl = c->ctl;
	struct ctl_vm *vm = vm_alloc(ctl, &sv->def);
	struct runner *r = NULL;
	struct vmm_err e = { 0 };
	char sock[4200];
	int rc;

	if (!vm)
		return snprintf(why, len, "out of memory"), -ENOMEM;
	sock_path(ctl, vm->name, sock, sizeof(sock));
	rc = access(sock, F_OK) ? -ENOENT :
	     runner_adopt(sock, ctl->cfg.runner_timeout_ms, vm_runner_event, vm, &r, &e);
	if (!rc && strcmp(runner_vm_name(r), vm->name)) {
		runner_end(r, "does not host the VM its socket is named for");
		rc = -ENOENT;
	}
	if (!rc) {
		/* Adopted: the model starts as the journal says. */
		struct vmm_memslot_info boot;

		vm_boot_slot(vm, &boot);
		rc = layout_insert(&vm->layout, &boot);
		for (size_t i = 0; !rc && i < sv->nslots; i++)
			rc = layout_insert(&vm->layout, &sv->slots[i]);
		vm->quirks_disabled = vmm_quirks_all() & ~sv->quirks_enabled;
		rc = rc ? vmm_err_set(&e, rc, NULL, "out of memory") : vm_adopt(vm, r, sv, &e);
		/* Never ends a guest: a VM adopted with an error stays. */
		if (rc)
			slog_error("state: VM %s: adopted with an error: %s", vm->name, e.msg);
		if (!vm->runner)
			runner_free(r);
		vm_link(vm);
		c->st->adopted++;
		return 0;
	} else if (rc == -ECONNREFUSED || rc == -ENOENT) {
		if (rc == -ECONNREFUSED)
			slog_info("state: VM %s: no runner behind %s (stale socket)", vm->name, sock);
		unlink(sock);
		rc = vm_recreate(vm, sv, &e);
		c->st->recreated += !rc;
	} else {
		/* A live runner we cannot drive: leave it, say so. */
		vm->info.state = VMM_VM_CRASHED;
		snprintf(vm->gone_why, sizeof(vm->gone_why), "its runner behind %.100s cannot be "
			 "adopted: %.80s", sock, e.msg);
		snprintf(vm->info.crash_reason, sizeof(vm->info.crash_reason), "%s", vm->gone_why);
		slog_error("state: VM %s: %s", vm->name, vm->gone_why);
		vm_link(vm);
		c->st->failed++;
		return 0;
	}
	if (rc) {
		snprintf(why, len, "%s", e.msg[0] ? e.msg : strerror(-rc));
		if (vm->runner) {
			runner_kill(vm->runner);
			vm_runner_reap(vm);
		}
		vm_free(vm);
		return rc;		/* counted by store_load */
	}
	vm_link(vm);
	return 0;
}

/* restore_vm_one, with the request that last changed the VM: kept in
 * doubt if its outcome was never written, and carried by what restoring
 * the VM writes (so a second crash does not lose it). */
static int restore_vm(const struct store_vm *sv, char *why, size_t len, void *arg)
{
	struct restore_ctx *c = arg;
	int r;

	if (sv->rid[0] && ctl_request_doubt(c->ctl, sv->rid, sv->rid_at, sv->def.name))
		slog_warn("state: VM %s: request %s could not be kept in doubt", sv->def.name,
			  sv->rid);
	store_rid_set(c->ctl->store, sv->rid, sv->rid_at);
	r = restore_vm_one(sv, why, len, arg);
	store_rid_set(c->ctl->store, NULL, 0);
	return r;
}

/* Runners whose VM the state directory does not have: ended. */
static void orphans_end(struct ctl *ctl, struct ctl_restore_stats *st)
{
	DIR *d = opendir(ctl->runtime_dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[VMM_NAME_MAX], sock[4200];
		struct runner *r;
		struct vmm_err e = { 0 };

		if (n <= 5 || strcmp(de->d_name + n - 5, ".sock") || n - 5 >= sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 5), de->d_name);
		if (ctl_vm_find(ctl, name))
			continue;
		sock_path(ctl, name, sock, sizeof(sock));
		if (runner_adopt(sock, ctl->cfg.runner_timeout_ms, NULL, NULL, &r, &e)) {
			unlink(sock);
			continue;
		}
		runner_end(r, "has no state file (a vm.create never answered, or a vm.destroy "
			   "cut short)");
		st->ended++;
	}
	if (d)
		closedir(d);
}

int ctl_restore(struct ctl *ctl, struct ctl_restore_stats *st)
{
	struct restore_ctx c = { ctl, st };
	uint64_t t0 = vmm_now_ns();
	unsigned loaded = 0, failed = 0;
	int r = 0;

	memset(st, 0, sizeof(*st));
	if (!ctl->caps.kvm_available) {
		slog_warn("state: KVM unavailable; VM state files left as they are");
		return 0;
	}
	if (ctl->store)
		r = store_load(ctl->store, restore_vm, &c, &loaded, &failed);
	st->failed += failed;
	orphans_end(ctl, st);
	st->ns = vmm_now_ns() - t0;
	if (loaded || failed || st->ended)
		slog_info("state: %u VM(s) adopted, %u recreated, %u failed%s, %u runner(s) "
			  "without a VM ended, in %.1f ms", st->adopted, st->recreated, st->failed,
			  st->failed ? " (see above)" : "", st->ended, (double)st->ns / 1e6);
	return r;
}
