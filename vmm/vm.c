/* VM objects: creation, destruction, lookup, info, quirks and the guest
 * memory API.  Lifecycle transitions live in lifecycle.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/internal.h"

bool vmm_vm_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n >= VMM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-", name[i]))
			return false;
	return true;
}

/* Called with vmm->lock held. */
static struct vmm_vm *find_locked(struct vmm *vmm, const char *name)
{
	for (struct vmm_vm *vm = vmm->vms; vm; vm = vm->next)
		if (!strcmp(vm->name, name))
			return vm;
	return NULL;
}

struct vmm_vm *vmm_vm_find(struct vmm *vmm, const char *name)
{
	struct vmm_vm *vm;

	pthread_mutex_lock(&vmm->lock);
	vm = find_locked(vmm, name);
	pthread_mutex_unlock(&vmm->lock);
	return vm;
}

const char *vmm_vm_name(const struct vmm_vm *vm)
{
	return vm->name;
}

int vmm_vm_params_check(const struct vmm_caps *caps, const struct vmm_vm_params *p,
			struct vmm_err *err)
{
	unsigned max_vcpus = caps->max_vcpus ? (unsigned)caps->max_vcpus : 1;

	if (!caps->kvm_available)
		return vmm_err_set(err, -ENODEV, NULL, "KVM unavailable: %s",
				   caps->kvm_error);
	if (!vmm_vm_name_valid(p->name))
		return vmm_err_set(err, -EINVAL, "name",
				   "name must be 1..%d characters of [A-Za-z0-9._-]",
				   VMM_NAME_MAX - 1);
	if (p->ram_backing != VMM_RAM_MEMFD && p->ram_backing != VMM_RAM_ANON)
		return vmm_err_set(err, -EINVAL, "ram_backing",
				   "ram_backing must be memfd or anon");
	if (p->mmio_policy != VMM_MMIO_IGNORE && p->mmio_policy != VMM_MMIO_CRASH)
		return vmm_err_set(err, -EINVAL, "mmio_policy",
				   "mmio_policy must be ignore or crash");
	if (p->type != VMM_VM_TYPE_DEFAULT && p->type != VMM_VM_TYPE_PROTECTED)
		return vmm_err_set(err, -EINVAL, "type",
				   "type must be \"default\" or \"protected\"");
	max_vcpus = max_vcpus < VMM_MAX_VCPUS ? max_vcpus : VMM_MAX_VCPUS;
	if (p->vcpus < 1 || p->vcpus > max_vcpus)
		return vmm_err_set(err, -EINVAL, "vcpus",
				   "vcpus must be 1..%u, got %u", max_vcpus,
				   p->vcpus);
	if (p->memory_bytes < VMM_MIN_MEMORY || (p->memory_bytes & 0xfff) ||
	    p->memory_bytes > VMM_MAX_BOOT_RAM)
		return vmm_err_set(err, -EINVAL, "memory",
				   "memory must be a multiple of 4 KiB in [4 MiB, %llu GiB], got %llu bytes",
				   (unsigned long long)(VMM_MAX_BOOT_RAM >> 30),
				   (unsigned long long)p->memory_bytes);
	if (p->memory_bytes < VMM_GPA_PAYLOAD + p->vcpus * VMM_STACK_SIZE + 0x1000)
		return vmm_err_set(err, -EINVAL, "memory",
				   "memory too small for %u vCPU stacks", p->vcpus);
	return 0;
}

/* Creates the kernel VM: the protected type maps to a KVM protected type
 * when the host offers one, else slotd enforces the rules itself. */
static int kvm_vm_open(struct vmm_vm *vm, struct vmm_err *err)
{
	const struct vmm_caps *caps = &vm->vmm->caps;

	vm->kvm_type = KVM_X86_DEFAULT_VM;
	if (vm->type == VMM_VM_TYPE_PROTECTED) {
		if (caps->vm_types & (1u << KVM_X86_SW_PROTECTED_VM))
			vm->kvm_type = KVM_X86_SW_PROTECTED_VM;
		else
			vm->rules_by_slotd = true;
	}
	vm->fd = ioctl(vm->vmm->kvm_fd, KVM_CREATE_VM, (unsigned long)vm->kvm_type);
	if (vm->fd < 0)
		return vmm_err_set(err, -errno, "type",
				   "KVM_CREATE_VM (type %s) failed: %s",
				   vmm_kvm_vm_type_name(vm->kvm_type),
				   strerror(errno));
	/* Protected rules: precise zapping, so slot_zap_all goes off. */
	if (vm->type == VMM_VM_TYPE_PROTECTED &&
	    (caps->supported_quirks & KVM_X86_QUIRK_SLOT_ZAP_ALL)) {
		struct kvm_enable_cap cap = {
			.cap = KVM_CAP_DISABLE_QUIRKS2,
			.args[0] = KVM_X86_QUIRK_SLOT_ZAP_ALL,
		};
		if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) == 0) {
			vm->quirks_disabled |= KVM_X86_QUIRK_SLOT_ZAP_ALL;
			vm->quirks_kernel |= KVM_X86_QUIRK_SLOT_ZAP_ALL;
		}
	}
	if (caps->stats_fd)
		stats_src_open(&vm->stats, ioctl(vm->fd, KVM_GET_STATS_FD, 0));
	return 0;
}

/* Lays out boot RAM: page tables, GDT, payload, boot params, vCPU
 * registers.  No vCPU thread may be alive. */
int vm_boot_prepare(struct vmm_vm *vm, struct vmm_err *err)
{
	int r;

	vm_boot_tables_build(vm);
	r = vm_payload_load(vm, err);
	if (r)
		return r;
	vm_boot_params_write(vm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i].parked = false;
		r = vcpu_boot_regs_set(&vm->vcpus[i]);
		if (r)
			return vmm_err_set(err, r, NULL,
					   "setting vcpu%u registers: %s", i,
					   strerror(-r));
	}
	return 0;
}

/* Allocates a VM in state defined with its locks; no kernel objects. */
static struct vmm_vm *vm_alloc(struct vmm *vmm, const struct vmm_vm_params *p)
{
	struct vmm_vm *vm = calloc(1, sizeof(*vm));
	pthread_condattr_t ca;

	if (!vm)
		return NULL;
	vm->vmm = vmm;
	vm->fd = -1;
	vm->stats.fd = -1;
	snprintf(vm->name, sizeof(vm->name), "%s", p->name);
	vm->type = p->type;
	vm->mmio_policy = p->mmio_policy;
	vm->ram_backing = p->ram_backing;
	vm->nr_vcpus = p->vcpus;
	vm->memory_bytes = p->memory_bytes;
	memcpy(vm->args, p->args, sizeof(vm->args));
	pthread_mutex_init(&vm->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&vm->notify_lock, NULL);
	pthread_rwlock_init(&vm->slots_lock, NULL);
	pthread_mutex_init(&vm->dev_lock, NULL);
	vm->state = VMM_VM_DEFINED;
	return vm;
}

/* Frees a VM whose threads are joined; tolerates partial construction. */
static void vm_free(struct vmm_vm *vm)
{
	for (unsigned i = 0; vm->vcpus && i < vm->nr_vcpus; i++)
		vcpu_fini(&vm->vcpus[i]);
	free(vm->vcpus);
	/* Runs the releases of deleted slots (rcu_barrier) before the rest. */
	if (vm->mmu)
		mmu_destroy(vm->mmu);
	vm_memslots_free(vm);
	stats_src_close(&vm->stats);
	if (vm->fd >= 0)
		close(vm->fd);
	console_fini(&vm->console);
	free(vm->image_owned);
	pthread_mutex_destroy(&vm->dev_lock);
	pthread_rwlock_destroy(&vm->slots_lock);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->notify_lock);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

/* The VM's engine: precise-only for protected VMs, zap-all for default
 * ones (the slot_zap_all quirk's default). */
static int engine_create(struct vmm_vm *vm, struct vmm_err *err)
{
	struct mmu_config mc = {
		.type = vm->type == VMM_VM_TYPE_PROTECTED ? MMU_VM_PROTECTED :
							    MMU_VM_DEFAULT,
	};
	int r = mmu_create(&mc, &vm->mmu);

	if (r)
		return vmm_err_set(err, r, NULL, "creating the MMU engine: %s",
				   strerror(-r));
	return 0;
}

/* Everything after allocation: kernel VM, console, RAM, payload, vCPUs. */
static int vm_build(struct vmm_vm *vm, const struct vmm_vm_params *p,
		    struct vmm_err *err)
{
	int r;

	r = console_init(&vm->console, vm->vmm->console_dir, vm->name);
	if (r)
		return vmm_err_set(err, r, NULL, "console log in %s: %s",
				   vm->vmm->console_dir, strerror(-r));
	r = kvm_vm_open(vm, err);
	if (r)
		return r;
	r = engine_create(vm, err);
	if (r)
		return r;
	r = vm_payload_open(vm, p, err);
	if (r)
		return r;
	r = vm_boot_ram_create(vm);
	if (r)
		return vmm_err_set(err, r, "memory", "boot RAM of %llu bytes: %s",
				   (unsigned long long)vm->memory_bytes,
				   strerror(-r));
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].fd = vm->vcpus[i].stats.fd = -1;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = vcpu_init(vm, i);
		if (r)
			return vmm_err_set(err, r, "vcpus", "creating vcpu%u: %s",
					   i, strerror(-r));
	}
	return vm_boot_prepare(vm, err);
}

/* Checks, builds, then publishes the VM under vmm->lock. */
int vmm_vm_create(struct vmm *vmm, const struct vmm_vm_params *params,
		  struct vmm_vm **out, struct vmm_err *err)
{
	struct vmm_vm *vm, **tail;
	int r;

	r = vmm_vm_params_check(&vmm->caps, params, err);
	if (r)
		return r;
	if (vmm_vm_find(vmm, params->name))
		return vmm_err_set(err, -EEXIST, "name",
				   "a VM named '%s' exists", params->name);
	vm = vm_alloc(vmm, params);
	if (!vm)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	r = vm_build(vm, params, err);
	if (r)
		goto fail;
	pthread_mutex_lock(&vmm->lock);
	if (find_locked(vmm, params->name)) {
		pthread_mutex_unlock(&vmm->lock);
		r = vmm_err_set(err, -EEXIST, "name", "a VM named '%s' exists",
				params->name);
		goto fail;
	}
	for (tail = &vmm->vms; *tail; tail = &(*tail)->next)
		;
	*tail = vm;
	pthread_mutex_unlock(&vmm->lock);
	*out = vm;
	return 0;
fail:
	vm_free(vm);
	return r;
}

/* Halts the vCPUs, unlinks the VM, frees it and its memory. */
int vmm_vm_destroy(struct vmm_vm *vm, struct vmm_err *err)
{
	struct vmm *vmm = vm->vmm;
	struct vmm_vm **pp;
	int r;

	r = vm_halt_for_destroy(vm, err);
	if (r)
		return r;
	pthread_mutex_lock(&vmm->lock);
	for (pp = &vmm->vms; *pp && *pp != vm; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = vm->next;
	pthread_mutex_unlock(&vmm->lock);
	vm_free(vm);
	return 0;
}

int vmm_vm_foreach(struct vmm *vmm, int (*fn)(struct vmm_vm *vm, void *arg),
		   void *arg)
{
	int r = 0;

	pthread_mutex_lock(&vmm->lock);
	for (struct vmm_vm *vm = vmm->vms; vm && !r; vm = vm->next)
		r = fn(vm, arg);
	pthread_mutex_unlock(&vmm->lock);
	return r;
}

/* Destroys every VM (vmm_destroy). */
void vm_destroy_all(struct vmm *vmm)
{
	for (;;) {
		struct vmm_vm *vm;

		pthread_mutex_lock(&vmm->lock);
		vm = vmm->vms;
		pthread_mutex_unlock(&vmm->lock);
		if (!vm)
			break;
		vmm_vm_destroy(vm, NULL);
	}
}
