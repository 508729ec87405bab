/* VMs in the control plane: create and destroy (durable before they are
 * answered), the lifecycle rules, quirks, and the reads that go to the
 * VM's runner (info, console, reports, memory, statistics) after the
 * model has checked them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ctl/internal.h"

static int need_kvm(struct ctl *ctl, struct vmm_err *err)
{
	if (ctl->caps.kvm_available)
		return 0;
	return vmm_err_set(err, -ENODEV, NULL, "KVM unavailable: %s", ctl->caps.kvm_error);
}

/* The definition vm.create was given, checked as the runner would. */
static int def_make(struct ctl *ctl, const struct vmm_vm_params *p, struct store_vm_def *d,
		    struct vmm_err *err)
{
	const char *payload = p->payload && *p->payload ? p->payload : "builtin:hello";
	int r = vmm_vm_params_check(&ctl->caps, p, err);

	if (r)
		return r;
	if (strlen(payload) >= sizeof(d->payload))
		return vmm_err_set(err, -EINVAL, "payload", "the payload name is too long");
	if (!strncmp(payload, "builtin:", 8) && !vmm_builtin_payload_exists(payload + 8))
		return vmm_err_set(err, -ENOENT, "payload",
				   "no built-in payload '%s' (try builtin:hello)", payload + 8);
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", p->name);
	snprintf(d->payload, sizeof(d->payload), "%s", payload);
	d->type = p->type;
	d->vcpus = p->vcpus;
	d->memory = p->memory_bytes;
	memcpy(d->args, p->args, sizeof(d->args));
	d->mmio = p->mmio_policy;
	d->ram = p->ram_backing;
	return 0;
}

/* check, apply (a runner with the VM), persist; undo on failure. */
int ctl_vm_create(struct ctl *ctl, const struct vmm_vm_params *p, struct ctl_vm **out,
		  struct vmm_err *err)
{
	struct vmm_memslot_info boot;
	struct store_vm_def def;
	struct ctl_vm *vm;
	int r = need_kvm(ctl, err);

	if (!r)
		r = def_make(ctl, p, &def, err);
	if (r)
		return r;
	if (ctl_vm_find(ctl, def.name))
		return vmm_err_set(err, -EEXIST, "name", "a VM named '%s' exists", def.name);
	vm = vm_alloc(ctl, &def);
	if (!vm)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	vm_boot_slot(vm, &boot);
	r = layout_insert(&vm->layout, &boot);
	if (!r)
		r = vm_runner_start(vm, false, err);
	if (r)
		goto fail;
	vm->quirks_disabled = vm->info.quirks_disabled;
	/* Not durable, not created: the client must not see a VM that a
	 * restart would lose. */
	r = vm_persist_all(vm, vmm_quirks_all() & ~vm->quirks_disabled, err);
	if (r) {
		runner_vm_destroy(vm->runner, NULL);
		goto fail;
	}
	vm_link(vm);
	*out = vm;
	return 0;
fail:
	vm_free(vm);
	return r;
}

/* Removes the state first: a crash in between leaves a runner without a
 * state file, which the next slotd ends (see ctl_restore). */
int ctl_vm_destroy(struct ctl_vm *vm, struct vmm_err *err)
{
	struct ctl *ctl = vm->ctl;
	int r = ctl->store ? store_vm_remove(ctl->store, vm->name, err) : 0;

	if (r)
		return r;
	vm_runner_reap(vm);
	if (vm->runner && runner_vm_destroy(vm->runner, err)) {
		slog_warn("vm %s: its runner did not end on request (%s); killed", vm->name,
			  err ? err->msg : "");
		runner_kill(vm->runner);
	}
	TAILQ_REMOVE(&ctl->vms, vm, link);
	slog_info("vm %s: destroyed", vm->name);
	vm_free(vm);
	return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

static int lifecycle(struct ctl_vm *vm, enum vmm_verb verb, enum runner_verb rv,
		     struct vmm_err *err)
{
	struct vmm_vm_info in;
	struct runner *r;
	int rc = vmm_transition_check(vm->name, vm->info.state, verb, err);

	if (rc)
		return rc;
	if (!(r = vm_runner(vm, err)))
		return -ECONNRESET;
	rc = runner_vm_lifecycle(r, rv, &in, err);
	if (!rc)
		vm_info_take(vm, &in);
	return rc;
}

int ctl_vm_start(struct ctl_vm *vm, struct vmm_err *err)
{
	int r = vmm_transition_check(vm->name, vm->info.state, VMM_VERB_START, err);

	if (r)
		return r;
	vm_runner_reap(vm);
	/* A crashed runner took the VM with it: a new one, same layout. */
	if (!vm->runner) {
		slog_info("vm %s: starting a new runner (%s)", vm->name, vm->gone_why);
		r = vm_runner_start(vm, true, err);
		if (r)
			return r;
	}
	return lifecycle(vm, VMM_VERB_START, RUNNER_START, err);
}

int ctl_vm_pause(struct ctl_vm *vm, struct vmm_err *err)
{
	return lifecycle(vm, VMM_VERB_PAUSE, RUNNER_PAUSE, err);
}

int ctl_vm_resume(struct ctl_vm *vm, struct vmm_err *err)
{
	return lifecycle(vm, VMM_VERB_RESUME, RUNNER_RESUME, err);
}

int ctl_vm_stop(struct ctl_vm *vm, struct vmm_err *err)
{
	return lifecycle(vm, VMM_VERB_STOP, RUNNER_STOP, err);
}

/* ---- info ------------------------------------------------------------------ */

int ctl_vm_info(struct ctl_vm *vm, bool live, struct ctl_vm_info *info)
{
	struct vmm_vm_info in;

	memset(info, 0, sizeof(*info));
	vm_runner_reap(vm);
	if (live && vm->runner && !runner_vm_info(vm->runner, &in, NULL))
		vm_info_take(vm, &in);
	info->vm = vm->info;
	/* Uptime from the runner's clock: CLOCK_MONOTONIC is the host's, so
	 * it runs on unbroken across restarts of slotd. */
	if (info->vm.start_ns)
		info->vm.uptime_ns = (info->vm.end_ns ? info->vm.end_ns : vmm_now_ns()) -
				     info->vm.start_ns;
	info->vm.nr_memslots = vm->layout.n;
	info->restored = vm->restored;
	info->adopted = vm->adopted;
	info->runner_alive = vm->runner != NULL;
	if (vm->runner) {
		info->runner_pid = runner_pid(vm->runner);
		snprintf(info->runner_build, sizeof(info->runner_build), "%s",
			 runner_build(vm->runner));
		info->runner_started_ns = runner_started_ns(vm->runner);
		info->runner_controllers = runner_controllers(vm->runner);
	}
	info->quirks_enabled = ctl_vm_quirks_enabled(vm);
	return 0;
}

int ctl_vm_memslots_get(struct ctl_vm *vm, struct vmm_memslot_info **out, size_t *n)
{
	return layout_get(&vm->layout, false, out, n);
}

int ctl_vm_memslot_get(struct ctl_vm *vm, uint32_t id, struct vmm_memslot_info *out)
{
	const struct lslot *s = layout_find(&vm->layout, id);

	if (!s)
		return -ENOENT;
	layout_slot_info(s, out);
	return 0;
}

/* ---- quirks ------------------------------------------------------------------ */

uint64_t ctl_vm_quirks_enabled(struct ctl_vm *vm)
{
	return vmm_quirks_all() & ~vm->quirks_disabled;
}

int ctl_vm_quirks_get(struct ctl_vm *vm, struct vmm_quirk_state *states, size_t max)
{
	for (size_t i = 0; i < vmm_quirk_desc_count && i < max; i++) {
		const struct vmm_quirk_desc *q = &vmm_quirk_descs[i];
		struct vmm_quirk_state *st = &states[i];
		const char *why;

		st->name = q->name;
		st->bit = q->bit;
		st->supported = vm->ctl->caps.supported_quirks & q->bit;
		st->enabled = !(vm->quirks_disabled & q->bit);
		why = vmm_quirk_refusal(&vm->ctl->caps, vm->def.type, vm->info.quirks_kernel, q,
					!st->enabled, st->why, sizeof(st->why));
		st->locked = why != NULL;
		if (!why)
			st->why[0] = '\0';
	}
	return 0;
}

/* Applies the quirk in the runner and takes the result into the model. */
static int quirk_apply(struct ctl_vm *vm, const char *name, bool enabled,
		       struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_vm_info in;
	struct runner *r = vm_runner(vm, err);
	int rc;

	if (!r)
		return -ECONNRESET;
	rc = runner_quirk_set(r, name, enabled, &in, fx, err);
	if (!rc) {
		vm_info_take(vm, &in);
		vm->quirks_disabled = in.quirks_disabled;
	}
	return rc;
}

/* Disabling a quirk on a kernel VM cannot be undone, so that change is
 * made durable first; any other is applied, made durable, and undone if
 * that fails. */
int ctl_vm_quirk_set(struct ctl_vm *vm, const char *name, bool enabled,
		     struct vmm_effect *fx, struct vmm_err *err)
{
	const struct vmm_quirk_desc *q = vmm_quirk_lookup(name);
	uint64_t before = ctl_vm_quirks_enabled(vm), after;
	bool final;
	int r;

	if (!q)
		return vmm_err_set(err, -ENOENT, "quirk", "unknown quirk '%s'", name);
	r = vmm_quirk_check(&vm->ctl->caps, vm->def.type, vm->info.quirks_kernel, q, enabled, err);
	if (r)
		return r;
	after = enabled ? before | q->bit : before & ~q->bit;
	final = !enabled && vm->info.started;
	if (final && after != before && (r = vm_persist_all(vm, after, err)))
		return r;
	r = quirk_apply(vm, name, enabled, fx, err);
	if (r) {
		if (final && after != before)
			vm_persist_all(vm, before, NULL);	/* as the VM is */
		return r;
	}
	if (!final && after != before && (r = vm_persist_all(vm, after, err))) {
		quirk_apply(vm, name, !enabled, NULL, NULL);
		return r;
	}
	return 0;
}

/* ---- console, reports, memory, stats ------------------------------------------ */

int ctl_vm_console_read(struct ctl_vm *vm, size_t tail, char *buf, size_t len, size_t *n,
			uint64_t *total)
{
	uint64_t kept;

	vm_runner_reap(vm);
	if (vm->runner && !runner_console_read(vm->runner, tail, buf, len, n, total, NULL))
		return 0;
	/* The runner is gone: what it wrote last, as slotd saw it. */
	kept = vm->console_total < CTL_CONSOLE_COPY ? vm->console_total : CTL_CONSOLE_COPY;
	*n = tail && tail < len ? tail : len;
	*n = *n < kept ? *n : (size_t)kept;
	for (size_t i = 0; i < *n; i++)
		buf[i] = vm->console[(vm->console_total - *n + i) % CTL_CONSOLE_COPY];
	*total = vm->console_total;
	return 0;
}

int ctl_vm_reports_read(struct ctl_vm *vm, uint64_t from, struct vmm_report *recs,
			size_t max, size_t *n, struct vmm_err *err)
{
	struct runner *r = vm_runner(vm, err);

	*n = 0;
	return r ? runner_reports_read(r, from, recs, max, n, err) : -ECONNRESET;
}

/* The memory API's checks on the model: the whole range backed (and
 * writable for a write) before the runner is asked. */
static int memory_check(struct ctl_vm *vm, uint64_t gpa, size_t len, bool write,
			struct vmm_err *err)
{
	uint64_t at = gpa, end = gpa + len;

	if (vm->def.type == VMM_VM_TYPE_PROTECTED)
		return vmm_err_set(err, -EACCES, "name",
				   "VM '%s' is protected: its memory is private to the guest",
				   vm->name);
	if (len == 0 || len > VMM_MEMORY_IO_MAX)
		return vmm_err_set(err, -EINVAL, "length", "length must be 1..%u, got %zu",
				   VMM_MEMORY_IO_MAX, len);
	if (end < gpa)
		return vmm_err_set(err, -EFAULT, "gpa", "gpa + length overflows");
	while (at < end) {
		const struct lslot *s = layout_overlap(&vm->layout, at, 1, VMM_SLOT_ANY);

		if (!s)
			return vmm_err_set(err, -EFAULT, "gpa",
					   "[0x%llx, 0x%llx) is not fully backed by memslots",
					   (unsigned long long)gpa, (unsigned long long)end);
		if (write && (s->slot_flags & VMM_SLOT_READONLY))
			return vmm_err_set(err, -EACCES, "gpa",
					   "[0x%llx, 0x%llx) touches a read-only memslot",
					   (unsigned long long)gpa, (unsigned long long)end);
		at = s->gpa + s->size;
	}
	return 0;
}

int ctl_vm_memory_read(struct ctl_vm *vm, uint64_t gpa, void *buf, size_t len,
		       struct vmm_err *err)
{
	struct runner *r;
	int rc = memory_check(vm, gpa, len, false, err);

	if (rc)
		return rc;
	r = vm_runner(vm, err);
	return r ? runner_memory_read(r, gpa, buf, len, err) : -ECONNRESET;
}

int ctl_vm_memory_write(struct ctl_vm *vm, uint64_t gpa, const void *buf, size_t len,
			struct vmm_err *err)
{
	struct runner *r;
	int rc = memory_check(vm, gpa, len, true, err);

	if (rc)
		return rc;
	r = vm_runner(vm, err);
	return r ? runner_memory_write(r, gpa, buf, len, err) : -ECONNRESET;
}

int ctl_vm_stats_foreach(struct ctl_vm *vm, int (*fn)(const struct vmm_stat *st, void *arg),
			 void *arg, struct vmm_err *err)
{
	struct runner *r = vm_runner(vm, err);

	return r ? runner_stats_foreach(r, fn, arg, err) : -ECONNRESET;
}
