/* The plan of a declared layout (ctl/apply.c), without KVM: who is who,
 * which ops, in which order, the errors naming the desired slot; and a
 * randomised run whose every plan is replayed op by op on a layout model
 * with the transaction's checks, must end in the desired layout, and
 * must plan nothing when applied again. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/apply.h"

#define K64		0x10000ull
#define BASE		0x100000000ull	/* 4 GiB: above boot RAM */
#define BOOT_SIZE	(16ull << 20)

static struct vmm_caps caps = {
	.kvm_available = true, .max_memslots = 512, .guest_phys_bits = 40,
	.readonly_mem = true,
};
static const struct apply_host host = { &caps, VMM_VM_TYPE_DEFAULT, 0 };
static struct layout cur;
static struct apply_plan plan;

static void setup(void)
{
	struct vmm_memslot_info boot = { .id = 0, .gpa = 0, .size = BOOT_SIZE,
					 .backing = { .kind = VMM_BACKING_MEMFD, .shared = true } };

	layout_init(&cur);
	cr_assert_eq(layout_insert(&cur, &boot), 0);
}

static void teardown(void)
{
	apply_plan_free(&plan);
	layout_fini(&cur);
}

TestSuite(ctl_apply, .init = setup, .fini = teardown);

/* An existing anonymous slot. */
static void cur_add(uint32_t id, uint64_t gpa, uint64_t size, uint32_t flags)
{
	struct vmm_memslot_info s = { .id = id, .gpa = gpa, .size = size, .slot_flags = flags };

	cr_assert_eq(layout_insert(&cur, &s), 0, "insert slot %u", id);
}

/* A desired anonymous slot (id VMM_SLOT_ANY: none given). */
static struct ctl_slot_want want(uint32_t id, uint64_t gpa, uint64_t size)
{
	return (struct ctl_slot_want){ .id = id, .gpa = gpa, .size = size,
				       .kind = VMM_BACKING_ANON };
}

#define ANY VMM_SLOT_ANY

/* Plans w, asserting it succeeds. */
static void plan_ok(const struct ctl_slot_want *w, size_t n)
{
	struct vmm_err e = { 0 };
	size_t failed = 0;
	int r;

	apply_plan_free(&plan);
	r = apply_plan_make(&host, &cur, w, n, &plan, &failed, &e);
	cr_assert_eq(r, 0, "plan: expected 0, got %d (slots[%zu]: %s)", r, failed, e.msg);
}

/* Plans w, asserting it fails with code, naming slots[failed] and field;
 * returns the message. */
static const char *plan_err(const struct ctl_slot_want *w, size_t n, int code,
			    size_t failed_want, const char *field)
{
	static struct vmm_err e;
	size_t failed = 0;
	int r;

	memset(&e, 0, sizeof(e));
	apply_plan_free(&plan);
	r = apply_plan_make(&host, &cur, w, n, &plan, &failed, &e);
	cr_assert_eq(r, code, "expected %d, got %d (%s)", code, r, e.msg);
	cr_assert_eq(failed, failed_want, "expected slots[%zu] at fault, got %zu (%s)",
		     failed_want, failed, e.msg);
	if (field)
		cr_assert(e.field && !strcmp(e.field, field), "expected field %s, got %s (%s)",
			  field, e.field ? e.field : "(none)", e.msg);
	return e.msg;
}

static void assert_op(size_t i, enum vmm_memslot_op_kind kind, uint32_t id, uint64_t gpa)
{
	const struct vmm_memslot_op *op = &plan.ops[i];
	uint32_t got = kind == VMM_OP_CREATE ? op->create.id : op->id;
	uint64_t got_gpa = kind == VMM_OP_CREATE ? op->create.gpa : op->gpa;

	cr_assert_lt(i, plan.nops, "expected an op %zu, the plan has %zu", i, plan.nops);
	cr_assert_eq(op->kind, kind, "op %zu: expected kind %d, got %d", i, kind, op->kind);
	cr_assert_eq(got, id, "op %zu: expected slot %u, got %u", i, id, got);
	if (kind != VMM_OP_DELETE)
		cr_assert_eq(got_gpa, gpa, "op %zu: expected gpa 0x%llx, got 0x%llx", i,
			     (unsigned long long)gpa, (unsigned long long)got_gpa);
}

static void assert_change(size_t i, enum ctl_apply_kind kind, size_t index, uint32_t id)
{
	const struct ctl_apply_change *c = &plan.changes[i];

	cr_assert_lt(i, plan.nchanges, "expected a change %zu, the plan has %zu", i,
		     plan.nchanges);
	cr_assert_eq(c->kind, kind, "change %zu: expected kind %d, got %d", i, kind, c->kind);
	cr_assert_eq(c->index, index, "change %zu: expected slots[%zu], got %zu", i, index,
		     c->index);
	cr_assert_eq(c->slot.id, id, "change %zu: expected slot %u, got %u", i, id, c->slot.id);
}

/* ---- replaying a plan ---------------------------------------------------- */

/* Applies the plan to l as the transaction checks it (every op valid on
 * the layout the ops before it left), then its dirty-logging changes. */
static void replay(struct layout *l, const struct apply_plan *p)
{
	for (size_t i = 0; i < p->nops; i++) {
		const struct vmm_memslot_op *op = &p->ops[i];
		const struct vmm_memslot_params *c = &op->create;
		const struct lslot *o;
		struct lslot *s;

		if (op->kind == VMM_OP_CREATE) {
			struct vmm_memslot_info si = { .id = c->id, .gpa = c->gpa, .size = c->size,
						       .slot_flags = c->flags,
						       .backing = c->backing };

			cr_assert_null(layout_find(l, c->id), "op %zu creates slot %u, which exists",
				       i, c->id);
			o = layout_overlap(l, c->gpa, c->size, VMM_SLOT_ANY);
			cr_assert_null(o, "op %zu: create of slot %u at 0x%llx overlaps slot %u", i,
				       c->id, (unsigned long long)c->gpa, o ? o->id : 0);
			cr_assert_eq(layout_insert(l, &si), 0);
		} else if (op->kind == VMM_OP_MOVE) {
			s = layout_find(l, op->id);
			cr_assert(s && op->id != 0, "op %zu moves slot %u, which is not there", i,
				  op->id);
			o = layout_overlap(l, op->gpa, s->size, op->id);
			cr_assert_null(o, "op %zu: slot %u moved to 0x%llx overlaps slot %u", i,
				       op->id, (unsigned long long)op->gpa, o ? o->id : 0);
			cr_assert_eq(layout_move(l, op->id, op->gpa), 0);
		} else {
			cr_assert_neq(op->id, 0, "op %zu deletes boot RAM", i);
			cr_assert_eq(layout_remove(l, op->id, NULL), 0, "op %zu deletes slot %u, "
				     "which is not there", i, op->id);
		}
	}
	for (size_t i = 0; i < p->nchanges; i++)
		if (p->changes[i].kind == CTL_APPLY_FLAGS)
			layout_find(l, p->changes[i].slot.id)->slot_flags =
				p->changes[i].slot.slot_flags;
}

/* l is boot RAM plus exactly the n slots of w. */
static void assert_layout_is(const struct layout *l, const struct ctl_slot_want *w, size_t n)
{
	cr_assert_eq(l->n, n + 1, "expected %zu slots and boot RAM, got %u", n, l->n);
	for (size_t i = 0; i < n; i++) {
		const struct lslot *s = w[i].id != ANY ? layout_find(l, w[i].id) :
					layout_overlap(l, w[i].gpa, 1, ANY);

		cr_assert(s && s->gpa == w[i].gpa && s->size == w[i].size &&
			  s->slot_flags == w[i].flags, "slots[%zu] (slot %d at 0x%llx, 0x%llx "
			  "bytes, flags %u) is not in the layout", i, (int)w[i].id,
			  (unsigned long long)w[i].gpa, (unsigned long long)w[i].size, w[i].flags);
	}
}

/* Replays the plan on cur, checks the result, and plans w again:
 * nothing to do. */
static void replay_and_replan(const struct ctl_slot_want *w, size_t n)
{
	replay(&cur, &plan);
	assert_layout_is(&cur, w, n);
	plan_ok(w, n);
	cr_assert_eq(plan.nchanges, 0, "applied again: expected no change, got %zu",
		     plan.nchanges);
	cr_assert_eq(plan.nops, 0, "applied again: expected no op, got %zu", plan.nops);
}

/* ---- who is who, and the order ------------------------------------------- */

Test(ctl_apply, new_slots_without_an_id_get_the_lowest_free_ids)
{
	struct ctl_slot_want w[] = {
		want(ANY, BASE, K64), want(5, BASE + K64, K64), want(ANY, BASE + 2 * K64, K64),
	};

	plan_ok(w, 3);
	cr_assert_eq(plan.nops, 3, "expected 3 creates, got %zu ops", plan.nops);
	assert_change(0, CTL_APPLY_CREATE, 0, 1);
	assert_change(1, CTL_APPLY_CREATE, 1, 5);
	assert_change(2, CTL_APPLY_CREATE, 2, 2);
	assert_op(0, VMM_OP_CREATE, 1, BASE);
	assert_op(1, VMM_OP_CREATE, 5, BASE + K64);
	assert_op(2, VMM_OP_CREATE, 2, BASE + 2 * K64);
	cr_assert_eq(plan.op_index[2], 2, "op 2 comes from slots[2], got %zu", plan.op_index[2]);
	replay_and_replan(w, 3);
}

Test(ctl_apply, the_layout_as_it_is_plans_nothing_with_or_without_ids)
{
	struct ctl_slot_want with[] = { want(1, BASE, K64), want(2, BASE + K64, 2 * K64) };
	struct ctl_slot_want without[] = { want(ANY, BASE + K64, 2 * K64), want(ANY, BASE, K64) };
	struct ctl_slot_want boot = { .id = 0, .gpa = 0, .size = BOOT_SIZE,
				      .kind = VMM_BACKING_MEMFD };
	struct ctl_slot_want listed[] = { boot, want(1, BASE, K64), want(2, BASE + K64, 2 * K64) };

	cur_add(1, BASE, K64, 0);
	cur_add(2, BASE + K64, 2 * K64, VMM_SLOT_DIRTY_LOG);
	with[1].flags = without[0].flags = listed[2].flags = VMM_SLOT_DIRTY_LOG;
	plan_ok(with, 2);
	cr_assert_eq(plan.nchanges + plan.nops, 0, "with ids: expected nothing, got %zu "
		     "changes", plan.nchanges);
	cr_assert_eq(plan.unchanged, 2, "expected 2 unchanged, got %zu", plan.unchanged);
	plan_ok(without, 2);
	cr_assert_eq(plan.nchanges + plan.nops, 0, "without ids: expected nothing, got %zu "
		     "changes", plan.nchanges);
	/* memslot.list's output, boot RAM included, is a layout too. */
	plan_ok(listed, 3);
	cr_assert_eq(plan.nchanges + plan.nops, 0, "as listed: expected nothing, got %zu "
		     "changes", plan.nchanges);
	cr_assert_eq(plan.unchanged, 3, "expected 3 unchanged, got %zu", plan.unchanged);
}

Test(ctl_apply, a_slot_without_an_id_is_new_unless_the_same_memory_is_at_its_gpa)
{
	struct ctl_slot_want bigger[] = { want(ANY, BASE, 2 * K64) };

	cur_add(3, BASE, K64, 0);
	plan_ok(bigger, 1);
	/* Slot 3 goes first, its range is free for the new slot, which takes
	 * the lowest free id. */
	assert_op(0, VMM_OP_DELETE, 3, 0);
	assert_op(1, VMM_OP_CREATE, 1, BASE);
	assert_change(0, CTL_APPLY_CREATE, 0, 1);
	assert_change(1, CTL_APPLY_DELETE, SIZE_MAX, 3);
	replay_and_replan(bigger, 1);
}

Test(ctl_apply, an_id_given_elsewhere_claims_its_slot_first)
{
	/* slots[0] (no id) sits where slot 4 is; slots[1] names slot 4 and
	 * moves it: slots[0] must be a new slot, not slot 4. */
	struct ctl_slot_want w[] = { want(ANY, BASE, K64), want(4, BASE + 4 * K64, K64) };

	cur_add(4, BASE, K64, 0);
	plan_ok(w, 2);
	assert_op(0, VMM_OP_MOVE, 4, BASE + 4 * K64);
	assert_op(1, VMM_OP_CREATE, 1, BASE);
	replay_and_replan(w, 2);
}

Test(ctl_apply, a_move_waits_for_the_move_that_vacates_its_target)
{
	struct ctl_slot_want w[] = { want(1, BASE + K64, K64), want(2, BASE + 2 * K64, K64) };

	cur_add(1, BASE, K64, 0);
	cur_add(2, BASE + K64, K64, 0);
	plan_ok(w, 2);
	cr_assert_eq(plan.nops, 2, "expected 2 moves, got %zu ops", plan.nops);
	assert_op(0, VMM_OP_MOVE, 2, BASE + 2 * K64);
	assert_op(1, VMM_OP_MOVE, 1, BASE + K64);
	assert_change(0, CTL_APPLY_MOVE, 0, 1);
	cr_assert_eq(plan.changes[0].old.gpa, BASE, "the move's old gpa");
	replay_and_replan(w, 2);
}

Test(ctl_apply, two_slots_swapping_places_pass_one_through_a_free_range)
{
	struct ctl_slot_want w[] = { want(1, BASE + K64, K64), want(2, BASE, K64) };

	cur_add(1, BASE, K64, 0);
	cur_add(2, BASE + K64, K64, 0);
	plan_ok(w, 2);
	cr_assert_eq(plan.nops, 3, "expected 3 moves (one through a free range), got %zu",
		     plan.nops);
	cr_assert_eq(plan.nchanges, 2, "expected 2 changes (the moves), got %zu",
		     plan.nchanges);
	cr_assert(plan.ops[0].gpa >= BASE + 2 * K64 || plan.ops[0].gpa + K64 <= BASE,
		  "the free range 0x%llx must be clear of both slots",
		  (unsigned long long)plan.ops[0].gpa);
	replay_and_replan(w, 2);
}

Test(ctl_apply, other_memory_under_the_same_id_is_deleted_then_created)
{
	struct ctl_slot_want w[] = { want(1, BASE, 2 * K64) };

	cur_add(1, BASE, K64, 0);
	plan_ok(w, 1);
	assert_op(0, VMM_OP_DELETE, 1, 0);
	assert_op(1, VMM_OP_CREATE, 1, BASE);
	assert_change(0, CTL_APPLY_REPLACE, 0, 1);
	cr_assert_eq(plan.changes[0].old.size, K64, "the replaced slot's old size");
	replay_and_replan(w, 1);
	/* readonly cannot change in place either. */
	w[0].flags = VMM_SLOT_READONLY;
	plan_ok(w, 1);
	assert_change(0, CTL_APPLY_REPLACE, 0, 1);
}

Test(ctl_apply, dirty_logging_alone_is_a_flags_change_and_no_op)
{
	struct ctl_slot_want w[] = { want(1, BASE + K64, K64), want(2, BASE + 4 * K64, K64) };

	cur_add(1, BASE, K64, 0);
	cur_add(2, BASE + 4 * K64, K64, VMM_SLOT_DIRTY_LOG);
	w[0].flags = VMM_SLOT_DIRTY_LOG;
	plan_ok(w, 2);
	cr_assert_eq(plan.nops, 1, "expected 1 op (the move), got %zu", plan.nops);
	assert_change(0, CTL_APPLY_MOVE, 0, 1);
	assert_change(1, CTL_APPLY_FLAGS, 0, 1);
	assert_change(2, CTL_APPLY_FLAGS, 1, 2);
	cr_assert(plan.changes[1].slot.slot_flags & VMM_SLOT_DIRTY_LOG, "slot 1: dirty_log on");
	cr_assert_eq(plan.changes[1].slot.gpa, BASE + K64, "slot 1's flags at its new gpa");
	cr_assert_not(plan.changes[2].slot.slot_flags & VMM_SLOT_DIRTY_LOG, "slot 2: off");
	cr_assert_eq(plan.unchanged, 0, "expected none unchanged, got %zu", plan.unchanged);
	replay_and_replan(w, 2);
}

Test(ctl_apply, deletes_come_before_moves_and_creates)
{
	struct ctl_slot_want w[] = { want(ANY, BASE, K64), want(2, BASE + K64, K64) };

	cur_add(1, BASE, 2 * K64, 0);
	cur_add(2, BASE + 8 * K64, K64, 0);
	plan_ok(w, 2);
	assert_op(0, VMM_OP_DELETE, 1, 0);
	assert_op(1, VMM_OP_MOVE, 2, BASE + K64);
	assert_op(2, VMM_OP_CREATE, 1, BASE);
	cr_assert_eq(plan.op_index[0], SIZE_MAX, "a delete comes from no desired slot");
	replay_and_replan(w, 2);
}

Test(ctl_apply, hugetlb_page_size_and_memfd_sharing_default_as_slotd_maps_them)
{
	struct vmm_memslot_info h = { .id = 1, .gpa = BASE, .size = 4 << 20,
				      .backing = { .kind = VMM_BACKING_HUGETLB } };
	struct vmm_memslot_info m = { .id = 2, .gpa = BASE + (4 << 20), .size = K64,
				      .backing = { .kind = VMM_BACKING_MEMFD } };
	struct ctl_slot_want w[] = { want(1, BASE, 4 << 20), want(2, BASE + (4 << 20), K64) };

	cr_assert_eq(layout_insert(&cur, &h), 0);
	cr_assert_eq(layout_insert(&cur, &m), 0);
	w[0].kind = VMM_BACKING_HUGETLB;
	w[0].hugepage_size = 2 << 20;		/* as memslot.list shows it */
	w[1].kind = VMM_BACKING_MEMFD;
	w[1].shared = true;			/* memfd is always shared */
	plan_ok(w, 2);
	cr_assert_eq(plan.nchanges, 0, "expected no change, got %zu", plan.nchanges);
	w[1].kind = VMM_BACKING_ANON;
	plan_ok(w, 2);
	assert_change(0, CTL_APPLY_REPLACE, 1, 2);
}

Test(ctl_apply, an_empty_layout_deletes_every_slot_but_boot_ram)
{
	cur_add(1, BASE, K64, 0);
	cur_add(7, BASE + K64, K64, 0);
	plan_ok(NULL, 0);
	cr_assert_eq(plan.nops, 2, "expected 2 deletes, got %zu ops", plan.nops);
	assert_change(0, CTL_APPLY_DELETE, SIZE_MAX, 1);
	assert_change(1, CTL_APPLY_DELETE, SIZE_MAX, 7);
	replay_and_replan(NULL, 0);
}

/* ---- errors name the desired slot ---------------------------------------------- */

Test(ctl_apply, boot_ram_cannot_change)
{
	struct ctl_slot_want w[] = { want(1, BASE, K64),
				     { .id = 0, .gpa = 0, .size = 2 * BOOT_SIZE,
				       .kind = VMM_BACKING_MEMFD } };
	const char *msg = plan_err(w, 2, -EINVAL, 1, "slot");

	cr_assert(strstr(msg, "boot RAM"), "the message names boot RAM: %s", msg);
	w[1].size = BOOT_SIZE;
	w[1].flags = VMM_SLOT_DIRTY_LOG;
	plan_err(w, 2, -EINVAL, 1, "slot");
}

Test(ctl_apply, the_same_id_twice_names_both_entries)
{
	struct ctl_slot_want w[] = { want(3, BASE, K64), want(1, BASE + K64, K64),
				     want(3, BASE + 2 * K64, K64) };
	const char *msg = plan_err(w, 3, -EINVAL, 2, "slot");

	cr_assert(strstr(msg, "slots[0]") && strstr(msg, "slots[2]"),
		  "expected both entries named: %s", msg);
}

Test(ctl_apply, overlapping_desired_slots_name_the_later_one_and_the_other)
{
	struct ctl_slot_want w[] = { want(ANY, BASE + K64, 2 * K64), want(ANY, BASE, K64),
				     want(ANY, BASE + 2 * K64, K64) };
	const char *msg = plan_err(w, 3, -EEXIST, 2, "gpa");

	cr_assert(strstr(msg, "slots[0]"), "expected the other named: %s", msg);
	w[2].gpa = BOOT_SIZE - 0x1000;
	msg = plan_err(w, 3, -EEXIST, 2, "gpa");
	cr_assert(strstr(msg, "boot RAM"), "expected boot RAM named: %s", msg);
}

Test(ctl_apply, each_slot_is_checked_on_its_own_first)
{
	struct ctl_slot_want w[] = { want(ANY, BASE, K64), want(ANY, BASE + 0x800, K64) };

	plan_err(w, 2, -EINVAL, 1, "gpa");
	w[1] = want(ANY, BASE + K64, 0x1800);
	plan_err(w, 2, -EINVAL, 1, "size");
	w[1] = want(600, BASE + K64, K64);
	plan_err(w, 2, -EINVAL, 1, "slot");
	w[1] = want(ANY, 1ull << 40, K64);
	plan_err(w, 2, -EINVAL, 1, "gpa");
	w[1] = want(ANY, BASE + K64, K64);
	w[1].kind = VMM_BACKING_FILE;		/* no path */
	plan_err(w, 2, -EINVAL, 1, NULL);
}

Test(ctl_apply, more_changes_than_one_transaction_takes_are_refused_whole)
{
	struct ctl_slot_want w[VMM_TXN_MAX + 1];
	const char *msg;

	for (size_t i = 0; i < VMM_TXN_MAX + 1; i++)
		w[i] = want(ANY, BASE + i * K64, K64);
	msg = plan_err(w, VMM_TXN_MAX + 1, -E2BIG, SIZE_MAX, "slots");
	cr_assert(strstr(msg, "65 changes") && strstr(msg, "in steps"),
		  "expected the count and what to do: %s", msg);
	plan_ok(w, VMM_TXN_MAX);
	cr_assert_eq(plan.nops, VMM_TXN_MAX, "64 creates fit one transaction, got %zu",
		     plan.nops);
}

Test(ctl_apply, the_host_slot_limit_bounds_new_ids)
{
	struct ctl_slot_want w[3];

	caps.max_memslots = 3;
	for (size_t i = 0; i < 3; i++)
		w[i] = want(ANY, BASE + i * K64, K64);
	plan_err(w, 3, -ENOSPC, 2, NULL);
	caps.max_memslots = 512;
}

/* ---- randomised: every plan replays and converges ------------------------------ */

#define CELLS 12

/* Marks cells [cell, cell + len) used, if they are all free and on
 * the grid. */
static bool cells_take(bool *used, size_t cell, size_t len)
{
	if (cell + len > CELLS || used[cell] || used[cell + len - 1])
		return false;
	used[cell] = used[cell + len - 1] = true;
	return true;
}

/* A random layout of up to CELLS/2 slots of 1 or 2 cells on a grid of
 * CELLS cells of 64 KiB (crowded, so moves chain and cycle), ids among
 * 1..20, random dirty logging. */
static size_t random_layout(unsigned *seed, struct ctl_slot_want *w)
{
	bool used[CELLS] = { 0 }, id_used[21] = { 0 };
	size_t n = 0, tries = (size_t)rand_r(seed) % (CELLS / 2 + 1);

	for (size_t t = 0; t < tries; t++) {
		size_t cell = (size_t)rand_r(seed) % CELLS, len = 1 + (size_t)rand_r(seed) % 2;
		uint32_t id = 1 + (uint32_t)rand_r(seed) % 20;

		if (id_used[id] || !cells_take(used, cell, len))
			continue;
		id_used[id] = true;
		w[n] = want(id, BASE + cell * K64, len * K64);
		w[n++].flags = rand_r(seed) % 3 ? 0 : VMM_SLOT_DIRTY_LOG;
	}
	return n;
}

/* A desired layout made from the current one: each slot kept (with its
 * id or without), moved to a random free place, resized (replaced) or
 * left out, dirty logging flipped now and then, and a new slot or two. */
static size_t random_change(unsigned *seed, const struct ctl_slot_want *now, size_t n,
			    struct ctl_slot_want *w)
{
	bool used[CELLS] = { 0 };
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		struct ctl_slot_want s = now[i];
		size_t cell = (size_t)((s.gpa - BASE) / K64), len = (size_t)(s.size / K64);
		int what = rand_r(seed) % 6;

		if (what == 0)
			continue;				/* deleted */
		if (what == 1 || what == 2)
			cell = (size_t)rand_r(seed) % CELLS;	/* moved */
		if (what == 3)
			len = 3 - len;				/* replaced */
		if (!cells_take(used, cell, len))
			continue;
		s.gpa = BASE + cell * K64;
		s.size = len * K64;
		if (what == 4)
			s.id = ANY;
		if (rand_r(seed) % 4 == 0)
			s.flags ^= VMM_SLOT_DIRTY_LOG;
		w[m++] = s;
	}
	for (int t = rand_r(seed) % 3; t > 0; t--) {
		size_t cell = (size_t)rand_r(seed) % CELLS;

		if (cells_take(used, cell, 1))
			w[m++] = want(rand_r(seed) % 2 ? ANY : 21 + (uint32_t)t, BASE + cell * K64,
				      K64);
	}
	return m;
}

static size_t move_ops(void)
{
	size_t n = 0;

	for (size_t i = 0; i < plan.nops; i++)
		n += plan.ops[i].kind == VMM_OP_MOVE;
	return n;
}

static size_t move_changes(void)
{
	size_t n = 0;

	for (size_t i = 0; i < plan.nchanges; i++)
		n += plan.changes[i].kind == CTL_APPLY_MOVE;
	return n;
}

Test(ctl_apply, random_plans_replay_validly_and_converge)
{
	struct ctl_slot_want now[CELLS], w[CELLS + 2];
	unsigned seed = 14, cycles = 0, replaces = 0, chains = 0;

	for (int run = 0; run < 3000; run++) {
		size_t n = random_layout(&seed, now), m;

		layout_fini(&cur);
		setup();
		for (size_t i = 0; i < n; i++)
			cur_add(now[i].id, now[i].gpa, now[i].size, now[i].flags);
		m = random_change(&seed, now, n, w);
		plan_ok(w, m);
		for (size_t i = 0; i < plan.nchanges; i++)
			replaces += plan.changes[i].kind == CTL_APPLY_REPLACE;
		cycles += move_ops() > move_changes();
		chains += move_changes() > 1;
		replay_and_replan(w, m);
	}
	/* The run must have met what it is there for. */
	cr_assert_gt(cycles, 0, "no plan passed a slot through a free range");
	cr_assert_gt(replaces, 0, "no plan replaced a slot");
	cr_assert_gt(chains, 0, "no plan moved several slots");
}
