/* Reconciling a runner's applied layout with the journal's (ctl/).  The
 * rule: the journal wins.  Every slot the runner has that the journal
 * does not (a change applied but never made durable: never answered) is
 * removed; every journaled slot the runner lacks (made durable, not
 * applied: a delete cut short, or a create whose commit never arrived) is
 * applied; a slot at another GPA is moved, one with other dirty logging
 * gets its flag, one that differs otherwise is replaced.  Plain code:
 * unit-tested without KVM. */
#ifndef SLOTD_CTL_RECONCILE_H
#define SLOTD_CTL_RECONCILE_H

#include <stddef.h>

#include "vmm/types.h"

enum rec_kind {
	REC_DELETE,		/* the runner's slot slot.id goes */
	REC_MOVE,		/* slot.id moves to slot.gpa */
	REC_FLAGS,		/* slot.id gets slot.slot_flags' dirty logging */
	REC_CREATE,		/* slot is created */
};

struct rec_action {
	enum rec_kind kind;
	struct vmm_memslot_info slot;
	const char *why;	/* for the log */
};

/* The actions that turn have (the runner's slots; slot 0 ignored) into
 * want (the journal's; no slot 0), in the order to apply them: deletes,
 * moves, flags, creates.  *out is malloc'd (NULL when nothing is to do). */
int reconcile_plan(const struct vmm_memslot_info *want, size_t nw,
		   const struct vmm_memslot_info *have, size_t nh,
		   struct rec_action **out, size_t *n);
const char *reconcile_kind_name(enum rec_kind kind);

#endif
