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
	if (vm->start_ns)
		info->uptime_ns = (vm->end_ns ? vm->end_ns : vmm_now_ns()) -
				  vm->start_ns;
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

int vmm_vm_memslots_get(struct vmm_vm *vm, struct vmm_memslot_info *slots,
			size_t max, size_t *count)
{
	pthread_rwlock_rdlock(&vm->slots_lock);
	for (unsigned i = 0; i < vm->nr_slots && i < max; i++) {
		slots[i].id = vm->slots[i].id;
		slots[i].flags = vm->slots[i].flags;
		slots[i].gpa = vm->slots[i].gpa;
		slots[i].size = vm->slots[i].size;
		slots[i].hva = (uintptr_t)vm->slots[i].hva;
	}
	*count = vm->nr_slots;
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
}

uint64_t vmm_vm_quirks_enabled(struct vmm_vm *vm)
{
	uint64_t all = 0, disabled;

	for (size_t i = 0; i < vmm_quirk_desc_count; i++)
		all |= vmm_quirk_descs[i].bit;
	pthread_mutex_lock(&vm->lock);
	disabled = vm->quirks_disabled;
	pthread_mutex_unlock(&vm->lock);
	return all & ~disabled;
}

/* Disables one quirk on the kernel VM.  Called with vm->lock held. */
static int quirk_disable_locked(struct vmm_vm *vm,
				const struct vmm_quirk_desc *q,
				struct vmm_err *err)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DISABLE_QUIRKS2 };

	if (!(vm->vmm->caps.supported_quirks & q->bit))
		return vmm_err_set(err, -EOPNOTSUPP, "quirk",
				   "this host's KVM cannot disable quirk %s (supported mask 0x%llx)",
				   q->name,
				   (unsigned long long)vm->vmm->caps.supported_quirks);
	cap.args[0] = q->bit;
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
		return vmm_err_set(err, -errno, "quirk",
				   "KVM_CAP_DISABLE_QUIRKS2 %s: %s", q->name,
				   strerror(errno));
	vm->quirks_disabled |= q->bit;
	return 0;
}

int vmm_vm_quirk_set(struct vmm_vm *vm, const char *name, bool enabled,
		     struct vmm_err *err)
{
	const struct vmm_quirk_desc *q = vmm_quirk_lookup(name);
	int r = 0;

	if (!q)
		return vmm_err_set(err, -ENOENT, "quirk", "unknown quirk '%s'",
				   name);
	pthread_mutex_lock(&vm->lock);
	if (enabled && vm->type == VMM_VM_TYPE_PROTECTED &&
	    q->bit == KVM_X86_QUIRK_SLOT_ZAP_ALL)
		r = vmm_err_set(err, -EPERM, "quirk",
				"a protected VM zaps precisely; slot_zap_all cannot be enabled");
	else if (enabled && (vm->quirks_disabled & q->bit))
		r = vmm_err_set(err, -EPERM, "quirk",
				"quirk %s is disabled and KVM cannot re-enable quirks on a live VM",
				name);
	else if (!enabled && !(vm->quirks_disabled & q->bit))
		r = quirk_disable_locked(vm, q, err);
	pthread_mutex_unlock(&vm->lock);
	return r;
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

	if (r)
		return r;
	r = vm_gpa_copy(vm, gpa, buf, len, write);
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
