/* Read-side VM queries (info, memslots), quirks and the guest memory API. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/internal.h"

/* Sums the per-vCPU exit counters. */
static void exits_sum(struct vmm_vm *vm, struct vmm_vm_info *info)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		uint64_t *e = vm->vcpus[i].exits;

		for (unsigned k = 0; k < VMM_EXIT_REASONS; k++)
			info->exits_total += __atomic_load_n(&e[k], __ATOMIC_RELAXED);
		info->exits_io += __atomic_load_n(&e[KVM_EXIT_IO], __ATOMIC_RELAXED);
		info->exits_mmio += __atomic_load_n(&e[KVM_EXIT_MMIO], __ATOMIC_RELAXED);
	}
}

/* Snapshot of the VM; state fields are consistent with each other. */
int vmm_vm_info_get(struct vmm_vm *vm, struct vmm_vm_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", vm->name);
	snprintf(info->payload, sizeof(info->payload), "%s", vm->payload_spec);
	info->type = vm->type;
	info->kvm_vm_type = vm->kvm_type;
	info->rules_by_slotd = vm->rules_by_slotd;
	info->vcpus = vm->nr_vcpus;
	info->memory_bytes = vm->memory_bytes;
	pthread_mutex_lock(&vm->lock);
	info->state = vm->state;
	info->quirks_disabled = vm->quirks_disabled;
	info->quirks_kernel = vm->quirks_kernel;
	info->started = vm->start_ns != 0;
	if (vm->start_ns)
		info->uptime_ns = (vm->end_ns ? vm->end_ns : vmm_now_ns()) -
				  vm->start_ns;
	info->start_ns = vm->start_ns;
	info->end_ns = vm->end_ns;
	info->has_exit_status = vm->has_exit_status;
	info->exit_status = vm->exit_status;
	if (vm->state == VMM_VM_CRASHED)
		snprintf(info->crash_reason, sizeof(info->crash_reason), "%s",
			 vm->crash_reason);
	pthread_mutex_unlock(&vm->lock);
	pthread_rwlock_rdlock(&vm->slots_lock);
	info->nr_memslots = vm->nr_slots;
	pthread_rwlock_unlock(&vm->slots_lock);
	exits_sum(vm, info);
	info->mmio_unmapped = __atomic_load_n(&vm->dev.mmio_unmapped,
					      __ATOMIC_RELAXED);
	pthread_mutex_lock(&vm->console.lock);
	info->console_bytes = vm->console.total;
	info->reports = vm->console.nr_reports;
	pthread_mutex_unlock(&vm->console.lock);
	return 0;
}

static void slot_info(const struct vmm_memslot *s, struct vmm_memslot_info *out)
{
	out->id = s->id;
	out->flags = s->flags;
	out->gpa = s->gpa;
	out->size = s->size;
	out->hva = (uintptr_t)s->hva;
	out->slot_flags = (s->flags & KVM_MEM_READONLY ? VMM_SLOT_READONLY : 0) |
			  (s->flags & KVM_MEM_LOG_DIRTY_PAGES ? VMM_SLOT_DIRTY_LOG : 0);
	out->backing = s->backing;
}

int vmm_vm_memslots_get(struct vmm_vm *vm, struct vmm_memslot_info *slots,
			size_t max, size_t *count)
{
	pthread_rwlock_rdlock(&vm->slots_lock);
	for (unsigned i = 0; i < vm->nr_slots && i < max; i++)
		slot_info(vm->slots[i], &slots[i]);
	*count = vm->nr_slots;
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
}

int vmm_vm_memslot_get(struct vmm_vm *vm, uint32_t id, struct vmm_memslot_info *out)
{
	struct vmm_memslot *s;

	pthread_rwlock_rdlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (s)
		slot_info(s, out);
	pthread_rwlock_unlock(&vm->slots_lock);
	return s ? 0 : -ENOENT;
}

uint64_t vmm_vm_quirks_enabled(struct vmm_vm *vm)
{
	uint64_t all = vmm_quirks_all(), disabled;

	pthread_mutex_lock(&vm->lock);
	disabled = vm->quirks_disabled;
	pthread_mutex_unlock(&vm->lock);
	return all & ~disabled;
}

/* Has the kernel VM run?  Quirks are then fixed except for disabling. */
static bool started_locked(struct vmm_vm *vm)
{
	return vm->start_ns != 0;
}

const char *vmm_quirk_refusal(const struct vmm_caps *caps, enum vmm_vm_type type,
			      uint64_t quirks_kernel, const struct vmm_quirk_desc *q,
			      bool enabled, char *buf, size_t len)
{
	if (!(caps->supported_quirks & q->bit)) {
		snprintf(buf, len, "this host's KVM cannot disable %s (supported mask 0x%llx)",
			 q->name, (unsigned long long)caps->supported_quirks);
		return buf;
	}
	if (q->bit == KVM_X86_QUIRK_SLOT_ZAP_ALL && type == VMM_VM_TYPE_PROTECTED) {
		snprintf(buf, len, "a protected VM zaps precisely: slot_zap_all is off and locked");
		return enabled ? buf : NULL;
	}
	if (enabled && (quirks_kernel & q->bit)) {
		snprintf(buf, len, "%s is disabled on the kernel VM and KVM cannot re-enable "
			 "a quirk; destroy and re-create the VM to get it back", q->name);
		return buf;
	}
	return NULL;
}

int vmm_quirk_check(const struct vmm_caps *caps, enum vmm_vm_type type,
		    uint64_t quirks_kernel, const struct vmm_quirk_desc *q, bool enabled,
		    struct vmm_err *err)
{
	char buf[200];
	const char *why = vmm_quirk_refusal(caps, type, quirks_kernel, q, enabled, buf,
					    sizeof(buf));

	if (!why)
		return 0;
	return vmm_err_set(err, caps->supported_quirks & q->bit ? -EPERM : -EOPNOTSUPP,
			   "quirk", "%s", why);
}

/* The refusal of quirk q going to enabled, as an error.  Called with
 * vm->lock held. */
static int quirk_check_locked(struct vmm_vm *vm, const struct vmm_quirk_desc *q,
			      bool enabled, struct vmm_err *err)
{
	return vmm_quirk_check(&vm->vmm->caps, vm->type, vm->quirks_kernel, q, enabled, err);
}

/* Looks quirk name up and checks that it may go to enabled; with commit,
 * also records the change in the wanted set.  *qp gets the quirk. */
static int quirk_prepare(struct vmm_vm *vm, const char *name, bool enabled, bool commit,
			 const struct vmm_quirk_desc **qp, struct vmm_err *err)
{
	const struct vmm_quirk_desc *q = vmm_quirk_lookup(name);
	int r;

	if (!q)
		return vmm_err_set(err, -ENOENT, "quirk", "unknown quirk '%s'", name);
	*qp = q;
	pthread_mutex_lock(&vm->lock);
	r = quirk_check_locked(vm, q, enabled, err);
	if (!r && commit && enabled)
		vm->quirks_disabled &= ~q->bit;
	else if (!r && commit)
		vm->quirks_disabled |= q->bit;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vmm_vm_quirk_check(struct vmm_vm *vm, const char *name, bool enabled,
		       uint64_t *enabled_after, struct vmm_err *err)
{
	const struct vmm_quirk_desc *q;
	int r = quirk_prepare(vm, name, enabled, false, &q, err);

	*enabled_after = vmm_vm_quirks_enabled(vm);
	if (!r)
		*enabled_after = enabled ? *enabled_after | q->bit : *enabled_after & ~q->bit;
	return r;
}

int vmm_vm_quirk_set(struct vmm_vm *vm, const char *name, bool enabled,
		     struct vmm_err *err)
{
	const struct vmm_quirk_desc *q;
	int r = quirk_prepare(vm, name, enabled, true, &q, err);

	if (r)
		return r;
	/* A VM that has run gets the change now; a defined one at start.  If
	 * the kernel refuses, the quirk stays as it was. */
	if (!enabled && started_locked(vm) && (r = vm_quirks_apply(vm, err))) {
		pthread_mutex_lock(&vm->lock);
		vm->quirks_disabled &= ~q->bit | vm->quirks_kernel;
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	if (q->bit == KVM_X86_QUIRK_SLOT_ZAP_ALL)
		r = mmu_policy_set(vm->mmu, enabled);
	return r ? vmm_err_set(err, r, "quirk", "the engine refused the policy: %s",
			       strerror(-r)) : 0;
}

int vmm_vm_quirks_get(struct vmm_vm *vm, struct vmm_quirk_state *states, size_t max)
{
	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < vmm_quirk_desc_count && i < max; i++) {
		const struct vmm_quirk_desc *q = &vmm_quirk_descs[i];
		struct vmm_quirk_state *st = &states[i];
		char buf[sizeof(st->why)];
		const char *why;

		st->name = q->name;
		st->bit = q->bit;
		st->supported = vm->vmm->caps.supported_quirks & q->bit;
		st->enabled = !(vm->quirks_disabled & q->bit);
		why = vmm_quirk_refusal(&vm->vmm->caps, vm->type, vm->quirks_kernel, q,
					!st->enabled, buf, sizeof(buf));
		st->locked = why != NULL;
		snprintf(st->why, sizeof(st->why), "%s", why ? why : "");
	}
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Shared checks of the memory API. */
static int memory_check(struct vmm_vm *vm, uint64_t gpa, size_t len,
			struct vmm_err *err)
{
	if (vm->type == VMM_VM_TYPE_PROTECTED)
		return vmm_err_set(err, -EACCES, "name",
				   "VM '%s' is protected: its memory is private to the guest",
				   vm->name);
	if (len == 0 || len > VMM_MEMORY_IO_MAX)
		return vmm_err_set(err, -EINVAL, "length",
				   "length must be 1..%u, got %zu",
				   VMM_MEMORY_IO_MAX, len);
	if (gpa + len < gpa)
		return vmm_err_set(err, -EFAULT, "gpa", "gpa + length overflows");
	return 0;
}

/* Checked copy to or from guest memory, errors naming the field. */
static int memory_access(struct vmm_vm *vm, uint64_t gpa, void *buf,
			 size_t len, bool write, struct vmm_err *err)
{
	int r = memory_check(vm, gpa, len, err);
	bool registered;

	if (r)
		return r;
	registered = vm_reader_enter(vm);
	r = vm_guest_copy(vm, gpa, buf, len, write);
	vm_reader_leave(vm, registered);
	if (r == -EFAULT)
		return vmm_err_set(err, r, "gpa",
				   "[0x%llx, 0x%llx) is not fully backed by memslots",
				   (unsigned long long)gpa,
				   (unsigned long long)(gpa + len));
	if (r == -EACCES)
		return vmm_err_set(err, r, "gpa",
				   "[0x%llx, 0x%llx) touches a read-only memslot",
				   (unsigned long long)gpa,
				   (unsigned long long)(gpa + len));
	if (r == -EIO)
		return vmm_err_set(err, r, "gpa",
				   "[0x%llx, 0x%llx): the memory behind it failed (SIGBUS, "
				   "e.g. a file backing truncated under its memslot); %s",
				   (unsigned long long)gpa, (unsigned long long)(gpa + len),
				   write ? "the write may be partly done" : "nothing was read");
	return r;
}

int vmm_vm_memory_read(struct vmm_vm *vm, uint64_t gpa, void *buf, size_t len,
		       struct vmm_err *err)
{
	return memory_access(vm, gpa, buf, len, false, err);
}

int vmm_vm_memory_write(struct vmm_vm *vm, uint64_t gpa, const void *buf,
			size_t len, struct vmm_err *err)
{
	return memory_access(vm, gpa, (void *)buf, len, true, err);
}
