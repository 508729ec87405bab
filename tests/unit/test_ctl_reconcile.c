/* Reconciling a runner's layout with the journal (ctl/reconcile.c),
 * without KVM: the journal wins, each difference gets the action its
 * rule names, in an order that frees ranges before reusing them. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/layout.h"
#include "ctl/reconcile.h"

static struct vmm_memslot_info slot(uint32_t id, uint64_t gpa, uint64_t size)
{
	struct vmm_memslot_info s = { .id = id, .gpa = gpa, .size = size };

	return s;
}

static void plan(const struct vmm_memslot_info *want, size_t nw,
		 const struct vmm_memslot_info *have, size_t nh, struct rec_action **a, size_t *n)
{
	cr_assert_eq(reconcile_plan(want, nw, have, nh, a, n), 0);
}

Test(ctl_reconcile, an_identical_layout_needs_nothing_and_slot_0_is_ignored)
{
	struct vmm_memslot_info want[2] = { slot(1, 0x100000000, 0x1000), slot(2, 0x200000000, 0x1000) };
	struct vmm_memslot_info have[3] = { slot(0, 0, 0x1000000), want[0], want[1] };
	struct rec_action *a;
	size_t n;

	plan(want, 2, have, 3, &a, &n);
	cr_assert_eq(n, 0, "nothing to do, got %zu actions", n);
	cr_assert_null(a);
}

Test(ctl_reconcile, each_difference_gets_its_action_with_the_reason)
{
	struct vmm_memslot_info want[4] = {
		slot(1, 0x100000000, 0x1000),	/* runner lacks it */
		slot(2, 0x200000000, 0x1000),	/* runner has it elsewhere */
		slot(3, 0x300000000, 0x1000),	/* dirty logging differs */
		slot(5, 0x500000000, 0x2000),	/* size differs */
	};
	struct vmm_memslot_info have[5] = {
		slot(0, 0, 0x1000000), slot(2, 0x280000000, 0x1000), slot(3, 0x300000000, 0x1000),
		slot(4, 0x400000000, 0x1000),	/* never journaled */
		slot(5, 0x500000000, 0x1000),
	};
	struct rec_action *a;
	size_t n;

	have[2].slot_flags = VMM_SLOT_DIRTY_LOG;
	plan(want, 4, have, 5, &a, &n);
	cr_assert_eq(n, 6, "delete 4, delete+create 5, move 2, flags 3, create 1; got %zu", n);
	cr_assert_eq(a[0].kind, REC_DELETE);
	cr_assert_eq(a[1].kind, REC_DELETE);
	cr_assert_eq(a[0].slot.id + a[1].slot.id, 4 + 5, "deletes: 4 and the old 5");
	cr_assert_eq(a[2].kind, REC_MOVE);
	cr_assert_eq(a[2].slot.id, 2);
	cr_assert_eq(a[2].slot.gpa, 0x200000000, "moved back where the journal has it");
	cr_assert_eq(a[3].kind, REC_FLAGS);
	cr_assert_eq(a[3].slot.slot_flags, 0, "dirty logging off, as journaled");
	cr_assert_eq(a[4].kind, REC_CREATE);
	cr_assert_eq(a[5].kind, REC_CREATE);
	cr_assert_eq(a[4].slot.id + a[5].slot.id, 1 + 5);
	for (size_t i = 0; i < n; i++)
		cr_assert(a[i].why && *a[i].why, "action %zu says why", i);
	cr_assert(strstr(a[0].why, "never journaled") || strstr(a[1].why, "never journaled"));
	free(a);
}

/* Applies a plan to have (as the runner would) and returns the result. */
static size_t apply(const struct rec_action *a, size_t n, struct vmm_memslot_info *have,
		    size_t nh)
{
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < nh && have[k].id != a[i].slot.id; k++)
			;
		switch (a[i].kind) {
		case REC_DELETE:
			cr_assert_lt(k, nh, "delete of a slot the runner lacks");
			have[k] = have[--nh];
			break;
		case REC_MOVE:
			cr_assert_lt(k, nh);
			have[k].gpa = a[i].slot.gpa;
			break;
		case REC_FLAGS:
			cr_assert_lt(k, nh);
			have[k].slot_flags = a[i].slot.slot_flags;
			break;
		case REC_CREATE:
			cr_assert_eq(k, nh, "create of a slot the runner has");
			have[nh++] = a[i].slot;
			break;
		}
	}
	return nh;
}

Test(ctl_reconcile, applying_the_plan_to_random_layouts_yields_the_journal)
{
	unsigned seed = 7;

	for (int round = 0; round < 300; round++) {
		struct vmm_memslot_info want[40], have[80];
		struct rec_action *a;
		size_t nw = 0, nh = 0, n;

		for (uint32_t id = 1; id < 40; id++) {
			struct vmm_memslot_info s = slot(id, (uint64_t)id << 32, 0x1000);
			int w = rand_r(&seed) % 3, h = rand_r(&seed) % 4;

			if (w)
				want[nw++] = s;
			if (h == 1)
				s.gpa += 0x100000;
			if (h == 2)
				s.slot_flags = VMM_SLOT_DIRTY_LOG;
			if (h == 3)
				s.size *= 2;
			if (h || (w && rand_r(&seed) % 2))
				have[nh++] = s;
		}
		plan(want, nw, have, nh, &a, &n);
		nh = apply(a, n, have, nh);
		free(a);
		cr_assert_eq(nh, nw, "round %d: %zu slots after the plan, journal has %zu", round,
			     nh, nw);
		for (size_t i = 0; i < nw; i++) {
			bool found = false;

			for (size_t k = 0; k < nh; k++)
				found |= layout_same(&want[i], &have[k]);
			cr_assert(found, "round %d: slot %u is not as journaled", round, want[i].id);
		}
	}
}
