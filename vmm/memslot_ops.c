/* Memslot changes: checked like KVM checks them (and earlier), applied to
 * KVM and then to the engine under the VM's policy, undone on either
 * side's refusal; dirty logging.  Backings are in backing.c, effects in
 * effect.c, transactions in txn.c.  Control calls: one thread at a time
 * (the runner's control thread). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/internal.h"

#define PAGE		4096ull
/* slotd's device registers (vmm/guest/abi.h): no memslot may cover them. */
#define DEV_WINDOW	0x3200000000ull
#define DEV_WINDOW_SIZE	0x10000ull

/* ---- checks ------------------------------------------------------------ */

int vmm_range_check(unsigned bits, uint64_t gpa, uint64_t size, struct vmm_err *err)
{
	uint64_t end = gpa + size, limit = 1ull << bits;

	if (gpa & (PAGE - 1))
		return vmm_err_set(err, -EINVAL, "gpa", "gpa 0x%llx is not 4 KiB aligned",
				   (unsigned long long)gpa);
	if (size == 0)
		return vmm_err_set(err, -EINVAL, "size", "size must not be 0");
	if (size & (PAGE - 1))
		return vmm_err_set(err, -EINVAL, "size", "size 0x%llx is not a multiple of 4 KiB",
				   (unsigned long long)size);
	if (end < gpa || end > limit)
		return vmm_err_set(err, -EINVAL, "gpa",
				   "[0x%llx, 0x%llx) lies beyond the guest's %u-bit physical "
				   "address space (end 0x%llx)", (unsigned long long)gpa,
				   (unsigned long long)end, bits, (unsigned long long)limit);
	if (gpa < DEV_WINDOW + DEV_WINDOW_SIZE && DEV_WINDOW < end)
		return vmm_err_set(err, -EEXIST, "gpa",
				   "[0x%llx, 0x%llx) overlaps slotd's device window at 0x%llx",
				   (unsigned long long)gpa, (unsigned long long)end, DEV_WINDOW);
	return 0;
}

int vmm_overlap_error(struct vmm_err *err, uint64_t gpa, uint64_t size, uint32_t id,
		      uint64_t s_gpa, uint64_t s_size)
{
	return vmm_err_set(err, -EEXIST, "gpa",
			   "[0x%llx, 0x%llx) overlaps memslot %u at [0x%llx, 0x%llx)",
			   (unsigned long long)gpa, (unsigned long long)(gpa + size), id,
			   (unsigned long long)s_gpa, (unsigned long long)(s_gpa + s_size));
}

/* The range [gpa, gpa + size) passes vmm_range_check and is clear of
 * every slot but skip.  Called with slots_lock held. */
static int range_check_locked(struct vmm_vm *vm, uint64_t gpa, uint64_t size,
			      uint32_t skip, struct vmm_err *err)
{
	uint64_t end = gpa + size;
	int r = vmm_range_check(vmm_guest_phys_bits(vm->vmm), gpa, size, err);

	if (r)
		return r;
	/* Sorted and disjoint: only slots from the one before the lower
	 * bound up to the first one starting at or past end can overlap. */
	for (unsigned i = vm_slot_lower_bound_locked(vm, gpa), k = i ? i - 1 : 0;
	     k < vm->nr_slots && vm->slots[k]->gpa < end; k++) {
		const struct vmm_memslot *s = vm->slots[k];

		if (s->id != skip && gpa < s->gpa + s->size && s->gpa < end)
			return vmm_overlap_error(err, gpa, size, s->id, s->gpa, s->size);
	}
	return 0;
}

unsigned vmm_max_memslots(const struct vmm_caps *caps)
{
	return caps->max_memslots > 0 ? (unsigned)caps->max_memslots : 32764;
}

static unsigned max_slots(struct vmm_vm *vm)
{
	return vmm_max_memslots(&vm->vmm->caps);
}

/* Picks want, or the lowest free id.  Called with slots_lock held. */
static int id_pick_locked(struct vmm_vm *vm, uint32_t want, uint32_t *out,
			  struct vmm_err *err)
{
	unsigned max = max_slots(vm);

	if (vm->nr_slots >= max)
		return vmm_err_set(err, -ENOSPC, "slot",
				   "VM '%s' has %u memslots, the host's limit (KVM_CAP_NR_MEMSLOTS)",
				   vm->name, vm->nr_slots);
	if (want != VMM_SLOT_ANY) {
		if (want >= max)
			return vmm_err_set(err, -EINVAL, "slot", "slot id %u is not below %u",
					   want, max);
		if (vm_slot_find_locked(vm, want))
			return vmm_err_set(err, -EEXIST, "slot", "slot %u exists", want);
		*out = want;
		return 0;
	}
	/* Every id below id_hint is taken (vm_slot_list_* keep it so). */
	for (*out = vm->id_hint; *out < vm->ids_cap && vm->by_id[*out]; (*out)++)
		;
	return 0;
}

/* Memory of every slot of every VM, and of vm alone. */
static void memory_totals(struct vmm_vm *vm, uint64_t *vm_total, uint64_t *all)
{
	struct vmm *vmm = vm->vmm;

	*vm_total = *all = 0;
	pthread_mutex_lock(&vmm->lock);
	for (struct vmm_vm *v = vmm->vms; v; v = v->next) {
		uint64_t sum;

		pthread_rwlock_rdlock(&v->slots_lock);
		sum = v->slots_bytes;
		pthread_rwlock_unlock(&v->slots_lock);
		*all += sum;
		if (v == vm)
			*vm_total = sum;
	}
	pthread_mutex_unlock(&vmm->lock);
}

static int limits_check(struct vmm_vm *vm, uint64_t size, struct vmm_err *err)
{
	const struct vmm_config *cfg = &vm->vmm->cfg;
	uint64_t mine, all;

	if (!cfg->max_vm_memory && !cfg->max_total_memory)
		return 0;
	memory_totals(vm, &mine, &all);
	if (cfg->max_vm_memory && mine + size > cfg->max_vm_memory)
		return vmm_err_set(err, -E2BIG, "size",
				   "VM '%s' would have %llu bytes of memslots, above its "
				   "limit of %llu (--max-vm-memory)", vm->name,
				   (unsigned long long)(mine + size),
				   (unsigned long long)cfg->max_vm_memory);
	if (cfg->max_total_memory && all + size > cfg->max_total_memory)
		return vmm_err_set(err, -E2BIG, "size",
				   "all VMs would have %llu bytes of memslots, above the "
				   "daemon's limit of %llu (--max-memory)",
				   (unsigned long long)(all + size),
				   (unsigned long long)cfg->max_total_memory);
	return 0;
}

int vmm_slot_flags_check(const struct vmm_caps *caps, enum vmm_vm_type type,
			 unsigned kvm_vm_type, uint32_t flags, struct vmm_err *err)
{
	if (flags & ~(VMM_SLOT_READONLY | VMM_SLOT_DIRTY_LOG))
		return vmm_err_set(err, -EINVAL, "flags", "unknown flags 0x%x", flags);
	if ((flags & VMM_SLOT_READONLY) && !caps->readonly_mem)
		return vmm_err_set(err, -EOPNOTSUPP, "flags",
				   "readonly memslots need KVM_CAP_READONLY_MEM, which this host lacks");
	if ((flags & VMM_SLOT_READONLY) && type == VMM_VM_TYPE_PROTECTED &&
	    kvm_vm_type != KVM_X86_DEFAULT_VM)
		return vmm_err_set(err, -EOPNOTSUPP, "flags",
				   "this KVM VM type has no readonly memslots");
	return 0;
}

static int flags_check(struct vmm_vm *vm, uint32_t flags, struct vmm_err *err)
{
	return vmm_slot_flags_check(&vm->vmm->caps, vm->type, vm->kvm_type, flags, err);
}

static uint32_t kvm_flags_of(uint32_t flags)
{
	return (flags & VMM_SLOT_READONLY ? KVM_MEM_READONLY : 0) |
	       (flags & VMM_SLOT_DIRTY_LOG ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

/* ---- create, move, delete, flags --------------------------------------- */

/* Checks p and picks the id.  Takes slots_lock for reading. */
static int create_check(struct vmm_vm *vm, const struct vmm_memslot_params *p,
			uint32_t *id, struct vmm_err *err)
{
	int r = flags_check(vm, p->flags, err);

	if (r)
		return r;
	pthread_rwlock_rdlock(&vm->slots_lock);
	r = range_check_locked(vm, p->gpa, p->size, VMM_SLOT_ANY, err);
	if (!r)
		r = id_pick_locked(vm, p->id, id, err);
	pthread_rwlock_unlock(&vm->slots_lock);
	return r ? r : limits_check(vm, p->size, err);
}

/* KVM first (it may refuse what we allowed), then the engine, then the
 * list; each step undone if a later one fails. */
static int create_apply(struct vmm_vm *vm, const struct vmm_memslot_params *p,
			uint32_t id, struct vm_mapping *m, struct vmm_effect *fx,
			struct vmm_err *err)
{
	struct vmm_memslot s = { .id = id, .flags = kvm_flags_of(p->flags), .gpa = p->gpa,
				 .size = p->size, .hva = m->hva, .fd = m->fd,
				 .backing = p->backing };
	uint64_t t;
	int r;

	r = fx_kvm_set(vm, fx, id, s.flags, p->gpa, p->size, m->hva);
	if (r)
		return vmm_err_set(err, r, "gpa", "KVM refused memslot %u at 0x%llx: %s", id,
				   (unsigned long long)p->gpa, strerror(-r));
	t = vmm_now_ns();
	r = mmu_slot_create(vm->mmu, id, p->gpa, p->size, m->hva, vm_slot_mmu_flags(s.flags));
	fx->engine_ns += vmm_now_ns() - t;
	if (!r)
		r = vm_slot_list_insert(vm, &s);
	if (r) {
		mmu_slot_delete(vm->mmu, id, NULL, NULL);
		fx_kvm_set(vm, fx, id, s.flags, p->gpa, 0, m->hva);
		return vmm_err_set(err, r, NULL, "the engine refused memslot %u: %s; "
				   "KVM's side was undone", id, strerror(-r));
	}
	return 0;
}

/* The create step of a change (alone or in a transaction). */
int vm_slot_create(struct vmm_vm *vm, const struct vmm_memslot_params *p,
		     uint32_t *id, struct vmm_effect *fx, struct vmm_err *err)
{
	struct vm_mapping m;
	int r;

	r = create_check(vm, p, id, err);
	if (!r)
		r = vm_backing_map(vm, *id, p, &m, err);
	if (r)
		return r;
	r = create_apply(vm, p, *id, &m, fx, err);
	if (r) {
		munmap(m.hva, p->size);
		if (m.fd >= 0)
			close(m.fd);
	}
	return r;
}

/* Copies slot id's metadata; -ENOENT naming the field when absent or 0. */
int vm_slot_get(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out,
		    struct vmm_err *err)
{
	struct vmm_memslot *s;

	pthread_rwlock_rdlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (s)
		*out = *s;
	pthread_rwlock_unlock(&vm->slots_lock);
	if (!s)
		return vmm_err_set(err, -ENOENT, "slot", "VM '%s' has no memslot %u",
				   vm->name, id);
	if (id == 0)
		return vmm_err_set(err, -EPERM, "slot",
				   "slot 0 is the VM's boot RAM; it cannot be moved or deleted");
	return 0;
}

/* Removes slot id from KVM, the engine and the list.  With deferred, the
 * backing is handed back in *gone (a transaction may still need it);
 * otherwise the engine unmaps it after the grace period. */
int vm_slot_delete(struct vmm_vm *vm, uint32_t id, bool deferred,
		     struct vmm_memslot *gone, struct vmm_effect *fx, struct vmm_err *err)
{
	struct vm_released *rel = NULL;
	struct vmm_memslot s;
	uint64_t t;
	int r = vm_slot_get(vm, id, &s, err);

	if (r)
		return r;
	if (!deferred && !(rel = malloc(sizeof(*rel))))
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	r = fx_kvm_set(vm, fx, id, s.flags, s.gpa, 0, s.hva);
	if (r) {
		free(rel);
		return vmm_err_set(err, r, "slot", "KVM refused to delete memslot %u: %s",
				   id, strerror(-r));
	}
	vm_slot_list_remove(vm, id, &s);
	if (rel)
		*rel = (struct vm_released){
			.vmm = vm->vmm, .hva = s.hva, .size = s.size, .fd = s.fd,
			.prot = vm_backing_private_anon(&s) ?
				PROT_READ | (s.flags & KVM_MEM_READONLY ? 0 : PROT_WRITE) : -1,
			.kvm_dirty = s.kvm_dirty,
		};
	t = vmm_now_ns();
	mmu_slot_delete(vm->mmu, id, rel ? vm_backing_release : NULL, rel);
	fx->engine_ns += vmm_now_ns() - t;
	if (gone)
		*gone = s;
	return 0;
}

int vm_slot_move(struct vmm_vm *vm, uint32_t id, uint64_t gpa,
		   struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_memslot s;
	uint64_t t;
	int r = vm_slot_get(vm, id, &s, err);

	if (r)
		return r;
	pthread_rwlock_rdlock(&vm->slots_lock);
	r = range_check_locked(vm, gpa, s.size, id, err);
	pthread_rwlock_unlock(&vm->slots_lock);
	if (r)
		return r;
	/* Same id, same size and host address, new GPA: KVM_MR_MOVE. */
	r = fx_kvm_set(vm, fx, id, s.flags, gpa, s.size, s.hva);
	if (r)
		return vmm_err_set(err, r, "gpa", "KVM refused to move memslot %u to 0x%llx: %s",
				   id, (unsigned long long)gpa, strerror(-r));
	t = vmm_now_ns();
	r = mmu_slot_move(vm->mmu, id, gpa);
	fx->engine_ns += vmm_now_ns() - t;
	if (r) {
		fx_kvm_set(vm, fx, id, s.flags, s.gpa, s.size, s.hva);
		return vmm_err_set(err, r, "gpa", "the engine refused the move: %s; KVM's "
				   "side was undone", strerror(-r));
	}
	vm_slot_list_remove(vm, id, &s);
	s.gpa = gpa;
	vm_slot_list_insert(vm, &s);
	return 0;
}

int vmm_memslot_create(struct vmm_vm *vm, const struct vmm_memslot_params *p,
		       uint32_t *id, struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct fx_snapshot b;
	int r;

	fx = fx ? fx : &local;
	fx_begin(vm, &b, fx);
	r = vm_slot_create(vm, p, id, fx, err);
	if (!r)
		vm_boot_slots_update(vm);
	fx_finish(vm, &b, fx);
	return r;
}

int vmm_memslot_move(struct vmm_vm *vm, uint32_t id, uint64_t new_gpa,
		     struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct fx_snapshot b;
	int r;

	fx = fx ? fx : &local;
	fx_begin(vm, &b, fx);
	r = vm_slot_move(vm, id, new_gpa, fx, err);
	if (!r)
		vm_boot_slots_update(vm);
	fx_finish(vm, &b, fx);
	return r;
}

int vmm_memslot_delete(struct vmm_vm *vm, uint32_t id, struct vmm_effect *fx,
		       struct vmm_err *err)
{
	struct vmm_effect local;
	struct fx_snapshot b;
	int r;

	fx = fx ? fx : &local;
	fx_begin(vm, &b, fx);
	r = vm_slot_delete(vm, id, false, NULL, fx, err);
	if (!r)
		vm_boot_slots_update(vm);
	fx_finish(vm, &b, fx);
	return r;
}

/* Sets the slot's KVM flags in the list. */
static void list_flags_set(struct vmm_vm *vm, uint32_t id, uint32_t kflags)
{
	struct vmm_memslot *s;

	pthread_rwlock_wrlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (s) {
		s->flags = kflags;
		if (!(kflags & KVM_MEM_LOG_DIRTY_PAGES)) {
			free(s->kvm_dirty);
			s->kvm_dirty = NULL;
		}
	}
	pthread_rwlock_unlock(&vm->slots_lock);
}

int vmm_memslot_set_flags(struct vmm_vm *vm, uint32_t id, bool dirty_log,
			  struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct vmm_memslot s;
	struct fx_snapshot b;
	uint32_t kflags;
	uint64_t t;
	int r;

	fx = fx ? fx : &local;
	fx_begin(vm, &b, fx);
	pthread_rwlock_rdlock(&vm->slots_lock);
	r = vm_slot_find_locked(vm, id) ? 0 : -ENOENT;
	if (!r)
		s = *vm_slot_find_locked(vm, id);
	pthread_rwlock_unlock(&vm->slots_lock);
	if (r)
		return vmm_err_set(err, r, "slot", "VM '%s' has no memslot %u", vm->name, id);
	kflags = dirty_log ? s.flags | KVM_MEM_LOG_DIRTY_PAGES : s.flags & ~KVM_MEM_LOG_DIRTY_PAGES;
	if (kflags == s.flags)
		goto out;
	r = fx_kvm_set(vm, fx, id, kflags, s.gpa, s.size, s.hva);
	if (r)
		return vmm_err_set(err, r, "dirty_log", "KVM refused the flags of memslot %u: %s",
				   id, strerror(-r));
	t = vmm_now_ns();
	r = mmu_slot_set_flags(vm->mmu, id, vm_slot_mmu_flags(kflags));
	fx->engine_ns += vmm_now_ns() - t;
	if (r) {
		fx_kvm_set(vm, fx, id, s.flags, s.gpa, s.size, s.hva);
		return vmm_err_set(err, r, "dirty_log", "the engine refused: %s", strerror(-r));
	}
	list_flags_set(vm, id, kflags);
out:
	fx_finish(vm, &b, fx);
	return 0;
}

/* ---- dirty log ----------------------------------------------------------- */

/* ORs KVM's log (which KVM_GET_DIRTY_LOG clears) into the slot's
 * accumulated bitmap.  Called with slots_lock held for writing. */
static int kvm_dirty_fetch_locked(struct vmm_vm *vm, struct vmm_memslot *s,
				  uint64_t words)
{
	uint64_t *tmp = calloc(words, 8);
	struct kvm_dirty_log log = { .slot = s->id, .dirty_bitmap = tmp };
	int r = 0;

	if (!tmp)
		return -ENOMEM;
	if (!s->kvm_dirty && !(s->kvm_dirty = calloc(words, 8)))
		r = -ENOMEM;
	else if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0)
		r = -errno;
	for (uint64_t i = 0; !r && i < words; i++)
		s->kvm_dirty[i] |= tmp[i];
	free(tmp);
	return r;
}

int vmm_memslot_dirty_log(struct vmm_vm *vm, uint32_t id, bool clear,
			  uint64_t **bitmap, uint64_t *npages, uint64_t *ndirty,
			  struct vmm_err *err)
{
	struct vmm_memslot *s;
	uint64_t words, *mine;
	int r;

	pthread_rwlock_wrlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (!s || !(s->flags & KVM_MEM_LOG_DIRTY_PAGES)) {
		pthread_rwlock_unlock(&vm->slots_lock);
		return s ? vmm_err_set(err, -EINVAL, "slot", "dirty logging is off for memslot %u "
				       "(memslot.set_flags turns it on)", id)
			 : vmm_err_set(err, -ENOENT, "slot", "VM '%s' has no memslot %u", vm->name, id);
	}
	*npages = s->size / PAGE;
	words = (*npages + 63) / 64;
	mine = calloc(words, 8);
	r = mine ? kvm_dirty_fetch_locked(vm, s, words) : -ENOMEM;
	if (!r)
		r = mmu_dirty_log_get(vm->mmu, id, mine, words * 8, clear);
	*ndirty = 0;
	for (uint64_t i = 0; !r && i < words; i++) {
		mine[i] |= s->kvm_dirty[i];
		*ndirty += (uint64_t)__builtin_popcountll(mine[i]);
	}
	if (!r && clear)
		memset(s->kvm_dirty, 0, words * 8);
	pthread_rwlock_unlock(&vm->slots_lock);
	if (r) {
		free(mine);
		return vmm_err_set(err, r, "slot", "reading the dirty log of memslot %u: %s",
				   id, strerror(-r));
	}
	*bitmap = mine;
	return 0;
}

