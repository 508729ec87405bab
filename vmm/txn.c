/* Memslot transactions: ops applied in order as one step with every vCPU
 * held out of KVM_RUN, undone whole if an op or the commit fails. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/internal.h"

/* What undoing one applied op needs. */
struct undo {
	enum vmm_memslot_op_kind kind;
	uint32_t id;
	uint64_t old_gpa;		/* MOVE */
	struct vmm_memslot gone;	/* DELETE: still mapped */
};

/* Puts a slot deleted in this transaction back, on both sides. */
static void undelete(struct vmm_vm *vm, struct vmm_memslot *s, struct vmm_effect *fx)
{
	fx_kvm_set(vm, fx, s->id, s->flags, s->gpa, s->size, s->hva);
	mmu_slot_create(vm->mmu, s->id, s->gpa, s->size, s->hva, vm_slot_mmu_flags(s->flags));
	vm_slot_list_insert(vm, s);
}

static void txn_undo(struct vmm_vm *vm, struct undo *u, size_t n, struct vmm_effect *fx)
{
	while (n--) {
		if (u[n].kind == VMM_OP_CREATE)
			vm_slot_delete(vm, u[n].id, false, NULL, fx, NULL);
		else if (u[n].kind == VMM_OP_MOVE)
			vm_slot_move(vm, u[n].id, u[n].old_gpa, fx, NULL);
		else
			undelete(vm, &u[n].gone, fx);
	}
}

static int txn_op(struct vmm_vm *vm, const struct vmm_memslot_op *op, struct undo *u,
		  uint32_t *id, struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_memslot s;
	int r;

	u->kind = op->kind;
	u->id = *id = op->id;
	switch (op->kind) {
	case VMM_OP_CREATE:
		r = vm_slot_create(vm, &op->create, &u->id, fx, err);
		*id = u->id;
		return r;
	case VMM_OP_MOVE:
		r = vm_slot_get(vm, op->id, &s, err);
		if (r)
			return r;
		u->old_gpa = s.gpa;
		return vm_slot_move(vm, op->id, op->gpa, fx, err);
	case VMM_OP_DELETE:
		return vm_slot_delete(vm, op->id, true, &u->gone, fx, err);
	}
	return vmm_err_set(err, -EINVAL, "kind", "unknown operation");
}

/* Releases the backings of the slots a committed transaction deleted once
 * no reader can reach them: the call_rcu thread unmaps them, or keeps a
 * small private anonymous one for the next create (backing cache), as a
 * single delete does; the caller does not wait for a grace period. */
static void txn_release(struct vmm_vm *vm, struct undo *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct vmm_memslot *s = &u[i].gone;
		struct vm_released *rel;

		if (u[i].kind != VMM_OP_DELETE)
			continue;
		rel = malloc(sizeof(*rel));
		if (rel) {
			*rel = (struct vm_released){
				.vmm = vm->vmm, .hva = s->hva, .size = s->size, .fd = s->fd,
				.prot = vm_backing_private_anon(s) ?
					PROT_READ | (s->flags & KVM_MEM_READONLY ? 0 : PROT_WRITE) : -1,
				.kvm_dirty = s->kvm_dirty,
			};
			if (!mmu_release_after_grace(vm->mmu, vm_backing_release, rel))
				continue;
			free(rel);
		}
		/* No memory for the deferral: wait here instead. */
		mmu_synchronize(vm->mmu);
		munmap(s->hva, s->size);
		if (s->fd >= 0)
			close(s->fd);
		free(s->kvm_dirty);
	}
}

int vmm_memslot_transaction(struct vmm_vm *vm, const struct vmm_memslot_op *ops,
			    size_t n, uint32_t *ids, size_t *failed,
			    const struct vmm_txn_commit *commit,
			    struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct undo *u;
	struct fx_snapshot b;
	bool held;
	size_t i;
	int r;

	fx = fx ? fx : &local;
	*failed = SIZE_MAX;
	if (n == 0 || n > VMM_TXN_MAX)
		return vmm_err_set(err, -EINVAL, "ops", "a transaction has 1..%u operations",
				   VMM_TXN_MAX);
	u = calloc(n, sizeof(*u));
	if (!u)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	fx_begin(vm, &b, fx);
	r = vm_vcpus_hold(vm, &held, err);
	for (i = 0; !r && i < n; i++)
		r = txn_op(vm, &ops[i], &u[i], &ids[i], fx, err);
	if (r && i > 0) {
		*failed = i - 1;
		txn_undo(vm, u, i - 1, fx);
	}
	/* Before the vCPUs run again: the guest never sees a layout that
	 * could still be taken back. */
	if (!r)
		fx_finish(vm, &b, fx);
	if (!r && commit && (r = commit->fn(commit->arg, ids, fx))) {
		txn_undo(vm, u, n, fx);
		vmm_err_set(err, r, NULL, "the transaction was undone: its commit failed (%s)",
			    strerror(-r));
	}
	if (!r)
		vm_boot_slots_update(vm);
	vm_vcpus_release(vm, held);
	if (!r)
		txn_release(vm, u, n);
	if (r)
		fx_finish(vm, &b, fx);
	else
		fx->duration_ns = vmm_now_ns() - b.t0;
	free(u);
	return r;
}
