/* The plan of a declared layout (memslot.apply): the difference between
 * a layout model and the slots a client wants, as the ops of one
 * transaction in a valid order.  Plain code, no runner, no JSON:
 * unit-tested on its own.  Internal to ctl/. */
#ifndef SLOTD_CTL_APPLY_H
#define SLOTD_CTL_APPLY_H

#include <stddef.h>

#include "ctl/ctl.h"
#include "ctl/layout.h"

/* What the checks of a desired slot need of the host and the VM. */
struct apply_host {
	const struct vmm_caps *caps;
	enum vmm_vm_type type;
	unsigned kvm_vm_type;
};

struct apply_plan {
	struct vmm_memslot_op *ops;	/* nops, each step valid after the
					 * ones before it (malloc'd) */
	size_t *op_index;		/* the desired slot of each op;
					 * SIZE_MAX: a delete */
	size_t nops;
	struct ctl_apply_change *changes;	/* malloc'd; FLAGS ones are not ops */
	size_t nchanges;
	size_t unchanged;
};

/* Plans the change from cur (slot 0 included: boot RAM) to boot RAM plus
 * the n slots of want.  Checks each desired slot on its own (range,
 * flags, backing rules), ids (no duplicates, below the host's limit) and
 * the final layout (no overlap); the transaction checks the rest (memory
 * limits, --file-dir).  On failure *failed names the desired slot
 * (SIZE_MAX: the list; err->field "slots"). */
int apply_plan_make(const struct apply_host *h, const struct layout *cur,
		    const struct ctl_slot_want *want, size_t n, struct apply_plan *plan,
		    size_t *failed, struct vmm_err *err);
void apply_plan_free(struct apply_plan *plan);

#endif
