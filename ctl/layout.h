/* The control plane's model of one VM's memslot layout: what slotd told
 * clients the layout is, checked before any change reaches the runner.
 * Plain code, no KVM: unit-tested on its own.  Internal to ctl/. */
#ifndef SLOTD_CTL_LAYOUT_H
#define SLOTD_CTL_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/types.h"

/* One slot, compact (a 32k-slot VM costs 2 MiB, not 36): the backing's
 * path, when it has one, on the heap. */
struct lslot {
	uint32_t id;
	uint32_t slot_flags;		/* VMM_SLOT_* */
	uint64_t gpa, size;
	uint64_t offset, hugepage_size;
	enum vmm_backing_kind kind;
	bool shared;
	char *path;			/* NULL: none */
};

struct layout {
	struct lslot **by_gpa;		/* sorted by gpa, disjoint */
	unsigned n, cap;
	struct lslot **by_id;		/* [id], NULL if free */
	unsigned ids_cap;
	unsigned id_hint;		/* no free id below this one */
	uint64_t bytes;			/* sum of the sizes */
};

void layout_init(struct layout *l);
void layout_fini(struct layout *l);

struct lslot *layout_find(const struct layout *l, uint32_t id);
/* The slot overlapping [gpa, gpa + size) other than skip, or NULL. */
const struct lslot *layout_overlap(const struct layout *l, uint64_t gpa, uint64_t size,
				   uint32_t skip);
/* Picks want (VMM_SLOT_ANY: the lowest free id) below max: -ENOSPC when
 * the VM has max slots, -EINVAL want >= max, -EEXIST taken (field
 * "slot"). */
int layout_id_pick(const struct layout *l, uint32_t want, unsigned max, uint32_t *id,
		   struct vmm_err *err);

int layout_insert(struct layout *l, const struct vmm_memslot_info *s);
/* Removes slot id; *out (when not NULL) gets it.  -ENOENT. */
int layout_remove(struct layout *l, uint32_t id, struct vmm_memslot_info *out);
/* Moves slot id to gpa (the caller checked it fits). */
int layout_move(struct layout *l, uint32_t id, uint64_t gpa);

void layout_slot_info(const struct lslot *s, struct vmm_memslot_info *out);
/* Every slot (sorted by gpa) into a malloc'd array; skip0 leaves slot 0
 * (boot RAM, part of the VM's definition) out. */
int layout_get(const struct layout *l, bool skip0, struct vmm_memslot_info **out, size_t *n);
/* Whether two slot descriptions mean the same memslot (all but hva and
 * the KVM flags). */
bool layout_same(const struct vmm_memslot_info *a, const struct vmm_memslot_info *b);

#endif
