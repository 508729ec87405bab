/* Memslot changes routed to KVM and to the engine (in progress). */
#include <errno.h>

#include "vmm/internal.h"

int vmm_memslot_create(struct vmm_vm *vm, const struct vmm_memslot_params *p,
		       uint32_t *id, struct vmm_effect *fx, struct vmm_err *err)
{
	(void)vm; (void)p; (void)id; (void)fx;
	return vmm_err_set(err, -ENOSYS, NULL, "memslot.create is not implemented yet");
}

int vmm_memslot_move(struct vmm_vm *vm, uint32_t id, uint64_t new_gpa,
		     struct vmm_effect *fx, struct vmm_err *err)
{
	(void)vm; (void)id; (void)new_gpa; (void)fx;
	return vmm_err_set(err, -ENOSYS, NULL, "memslot.move is not implemented yet");
}

int vmm_memslot_delete(struct vmm_vm *vm, uint32_t id, struct vmm_effect *fx,
		       struct vmm_err *err)
{
	(void)vm; (void)id; (void)fx;
	return vmm_err_set(err, -ENOSYS, NULL, "memslot.delete is not implemented yet");
}

int vmm_memslot_set_flags(struct vmm_vm *vm, uint32_t id, bool dirty_log,
			  struct vmm_effect *fx, struct vmm_err *err)
{
	(void)vm; (void)id; (void)dirty_log; (void)fx;
	return vmm_err_set(err, -ENOSYS, NULL, "not implemented yet");
}

int vmm_memslot_dirty_log(struct vmm_vm *vm, uint32_t id, bool clear,
			  uint64_t **bitmap, uint64_t *npages, uint64_t *ndirty,
			  struct vmm_err *err)
{
	(void)vm; (void)id; (void)clear; (void)bitmap; (void)npages; (void)ndirty;
	return vmm_err_set(err, -ENOSYS, NULL, "not implemented yet");
}

int vmm_memslot_transaction(struct vmm_vm *vm, const struct vmm_memslot_op *ops,
			    size_t n, uint32_t *ids, size_t *failed,
			    struct vmm_effect *fx, struct vmm_err *err)
{
	(void)vm; (void)ops; (void)n; (void)ids; (void)failed; (void)fx;
	return vmm_err_set(err, -ENOSYS, NULL, "not implemented yet");
}

int vmm_vm_quirks_get(struct vmm_vm *vm, struct vmm_quirk_state *states, size_t max)
{
	(void)vm; (void)states; (void)max;
	return -ENOSYS;
}
