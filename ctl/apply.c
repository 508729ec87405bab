/* Declared layouts (memslot.apply): a client names the memslots a VM
 * should have; slotd works out the difference from the layout model and
 * makes it as one transaction (ctl_memslot_transaction), then changes
 * dirty logging where only that differs.
 *
 * Identity.  Slot 0 is boot RAM: never changed (an entry for it must
 * describe it as it is).  A desired slot with an id is that slot.  One
 * without an id is the existing slot at the same GPA with the same
 * memory (size, backing, readonly) that no id given claims, else a new
 * slot, which gets the lowest id that is free once the plan's deletes are
 * done and the ids given are taken.
 *
 * Differences.  Missing: create.  Not desired: delete.  The same memory
 * at another GPA: move (KVM's in-place move; the contents go along).
 * The same id with other memory: replace, a delete and a create in the
 * same transaction (the new slot's memory is new).  Dirty logging alone:
 * memslot.set_flags' change after the transaction, which takes no flags
 * ops; it changes nothing the guest sees.
 *
 * Order.  The transaction checks each op against the layout the ops
 * before it left (ctl/change.c: check, not just the final layout), and
 * the runner applies them in that order, so: deletes (a replaced slot's
 * too), then moves, each after the moves that vacate its target (a
 * cycle, two slots swapping places say, passes one slot through a free
 * range first), then creates.  The final layout is checked first, so
 * the creates and moves land on free ranges. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/apply.h"
#include "ctl/internal.h"

#define HUGE_2M		(2ull << 20)

#define ID_GIVEN	1u	/* a desired slot names it */
#define ID_CLAIMED	2u	/* an existing slot a desired one matched */
#define ID_USED		4u	/* taken in the final layout */

enum fate_kind { F_UNCHANGED, F_CREATE, F_MOVE, F_REPLACE, F_BOOT };

/* What becomes of one desired slot. */
struct fate {
	enum fate_kind kind;
	uint32_t id;
	const struct lslot *cur;	/* the existing slot matched or replaced */
	bool flags;			/* its dirty logging differs */
};

/* One plan being made. */
struct planner {
	const struct apply_host *h;
	const struct layout *cur;
	const struct ctl_slot_want *want;
	size_t n;
	struct fate *fate;
	uint8_t *ids;			/* ID_* per id */
	size_t nids;
	size_t ndel, ncreate, nmove, nreplace, nflags;
	struct apply_plan *plan;
};

/* ---- slots -------------------------------------------------------------- */

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static uint64_t huge_size(enum vmm_backing_kind k, uint64_t hp)
{
	return k == VMM_BACKING_HUGETLB && !hp ? HUGE_2M : hp;
}

/* Whether existing slot s is the memory w describes (GPA and dirty
 * logging aside): what a move keeps.  memfd and hugetlb are always
 * shared, whatever the flag says. */
static bool same_memory(const struct lslot *s, const struct ctl_slot_want *w)
{
	bool shared_counts = w->kind == VMM_BACKING_ANON || w->kind == VMM_BACKING_FILE;

	return s->size == w->size && s->kind == w->kind && s->offset == w->offset &&
	       (s->slot_flags & VMM_SLOT_READONLY) == (w->flags & VMM_SLOT_READONLY) &&
	       huge_size(s->kind, s->hugepage_size) == huge_size(w->kind, w->hugepage_size) &&
	       (!shared_counts || s->shared == w->shared) &&
	       !strcmp(str_or_empty(s->path), str_or_empty(w->path));
}

static bool dirty_differs(uint32_t a, uint32_t b)
{
	return (a ^ b) & VMM_SLOT_DIRTY_LOG;
}

static void want_backing(const struct ctl_slot_want *w, struct vmm_backing *b)
{
	b->kind = w->kind;
	b->shared = w->shared;
	b->offset = w->offset;
	b->hugepage_size = w->hugepage_size;
	snprintf(b->path, sizeof(b->path), "%s", str_or_empty(w->path));
}

/* w as the slot it becomes, with id. */
static void want_info(const struct ctl_slot_want *w, uint32_t id, struct vmm_memslot_info *s)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->gpa = w->gpa;
	s->size = w->size;
	s->slot_flags = w->flags;
	want_backing(w, &s->backing);
}

/* w as memslot.create's params, with id. */
static void want_params(const struct ctl_slot_want *w, uint32_t id, struct vmm_memslot_params *p)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->gpa = w->gpa;
	p->size = w->size;
	p->flags = w->flags;
	want_backing(w, &p->backing);
}

/* The checks one desired slot can have on its own; errors name the
 * member. */
static int want_check(const struct apply_host *h, const struct ctl_slot_want *w,
		      struct vmm_err *err)
{
	struct vmm_memslot_params p;
	unsigned max = vmm_max_memslots(h->caps);
	int r;

	if (w->path && strlen(w->path) >= VMM_PATH_MAX)
		return vmm_err_set(err, -EINVAL, "path", "the path is longer than %d bytes",
				   VMM_PATH_MAX - 1);
	if (w->id != VMM_SLOT_ANY && w->id >= max)
		return vmm_err_set(err, -EINVAL, "slot", "slot %u is beyond this host's %u "
				   "memslots (ids 0..%u)", w->id, max, max - 1);
	r = vmm_range_check(h->caps->guest_phys_bits, w->gpa, w->size, err);
	if (!r)
		r = vmm_slot_flags_check(h->caps, h->type, h->kvm_vm_type, w->flags, err);
	if (r)
		return r;
	want_params(w, w->id, &p);
	return vmm_backing_check(&p, err);
}

static int wants_check(struct planner *p, size_t *failed, struct vmm_err *err)
{
	for (size_t i = 0; i < p->n; i++) {
		int r = want_check(p->h, &p->want[i], err);

		if (r) {
			*failed = i;
			return r;
		}
	}
	return 0;
}

/* ---- the final layout ------------------------------------------------------ */

/* A range; index: the desired slot, SIZE_MAX for boot RAM. */
struct span {
	uint64_t gpa, size;
	size_t index;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static bool spans_meet(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
	return a < b + bs && b < a + as;
}

/* The error for two overlapping spans of the final layout, naming the
 * later desired slot (boot RAM is never the one at fault). */
static int overlap_error(const struct span *x, const struct span *y, size_t *failed,
			 struct vmm_err *err)
{
	const struct span *a = x->index == SIZE_MAX || (y->index != SIZE_MAX &&
						      y->index > x->index) ? y : x;
	const struct span *o = a == x ? y : x;
	char other[48];

	if (o->index == SIZE_MAX)
		snprintf(other, sizeof(other), "memslot 0 (boot RAM)");
	else
		snprintf(other, sizeof(other), "slots[%zu]", o->index);
	*failed = a->index;
	return vmm_err_set(err, -EEXIST, "gpa", "[0x%llx, 0x%llx) overlaps %s at "
			   "[0x%llx, 0x%llx)", (unsigned long long)a->gpa,
			   (unsigned long long)(a->gpa + a->size), other,
			   (unsigned long long)o->gpa, (unsigned long long)(o->gpa + o->size));
}

/* Boot RAM and the desired slots must not overlap: sorted by GPA, the
 * first overlap there is lies between neighbours. */
static int final_check(struct planner *p, size_t *failed, struct vmm_err *err)
{
	const struct lslot *boot = layout_find(p->cur, 0);
	struct span *s = malloc((p->n + 1) * sizeof(*s));
	size_t k = 0;
	int r = 0;

	if (!s)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	if (boot)
		s[k++] = (struct span){ boot->gpa, boot->size, SIZE_MAX };
	for (size_t i = 0; i < p->n; i++)
		if (p->fate[i].kind != F_BOOT)
			s[k++] = (struct span){ p->want[i].gpa, p->want[i].size, i };
	qsort(s, k, sizeof(*s), span_cmp);
	for (size_t i = 1; i < k && !r; i++)
		if (spans_meet(s[i - 1].gpa, s[i - 1].size, s[i].gpa, s[i].size))
			r = overlap_error(&s[i - 1], &s[i], failed, err);
	free(s);
	return r;
}

/* ---- who is who ---------------------------------------------------------- */

/* An entry for slot 0 must say what boot RAM is. */
static int boot_check(struct planner *p, size_t i, struct vmm_err *err)
{
	const struct lslot *boot = layout_find(p->cur, 0);
	const struct ctl_slot_want *w = &p->want[i];

	if (boot && boot->gpa == w->gpa && same_memory(boot, w) &&
	    !dirty_differs(boot->slot_flags, w->flags)) {
		p->fate[i].kind = F_BOOT;
		return 0;
	}
	return vmm_err_set(err, -EINVAL, "slot", "slot 0 is the VM's boot RAM, which "
			   "memslot.apply leaves as it is: leave it out of slots, or give it "
			   "exactly as memslot.list shows it");
}

/* The earlier desired slot with the same id as slots[i]. */
static size_t given_first(const struct planner *p, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (p->want[j].id == p->want[i].id)
			return j;
	return i;
}

/* A desired slot with an id: that slot, created, moved or replaced. */
static int classify_given(struct planner *p, size_t i, struct vmm_err *err)
{
	const struct ctl_slot_want *w = &p->want[i];
	struct fate *f = &p->fate[i];
	const struct lslot *s;

	if (p->ids[w->id] & ID_GIVEN)
		return vmm_err_set(err, -EINVAL, "slot", "slot %u is in slots twice (slots[%zu] "
				   "and slots[%zu])", w->id, given_first(p, i), i);
	p->ids[w->id] |= ID_GIVEN | ID_USED;
	if (w->id == 0)
		return boot_check(p, i, err);
	f->id = w->id;
	s = layout_find(p->cur, w->id);
	if (!s) {
		f->kind = F_CREATE;
		return 0;
	}
	p->ids[s->id] |= ID_CLAIMED;
	f->cur = s;
	if (!same_memory(s, w)) {
		f->kind = F_REPLACE;
		return 0;
	}
	f->kind = s->gpa == w->gpa ? F_UNCHANGED : F_MOVE;
	f->flags = dirty_differs(s->slot_flags, w->flags);
	return 0;
}

/* A desired slot without an id: the unclaimed existing slot with the
 * same memory at its GPA, or a new one. */
static void classify_free(struct planner *p, size_t i)
{
	const struct ctl_slot_want *w = &p->want[i];
	const struct lslot *s = layout_overlap(p->cur, w->gpa, 1, VMM_SLOT_ANY);
	struct fate *f = &p->fate[i];

	if (s && s->id != 0 && s->gpa == w->gpa && !(p->ids[s->id] & ID_CLAIMED) &&
	    same_memory(s, w)) {
		p->ids[s->id] |= ID_CLAIMED | ID_USED;
		*f = (struct fate){ F_UNCHANGED, s->id, s,
				    dirty_differs(s->slot_flags, w->flags) };
		return;
	}
	*f = (struct fate){ F_CREATE, VMM_SLOT_ANY, NULL, false };
}

/* Ids given claim their slots before slots without one are matched. */
static int classify(struct planner *p, size_t *failed, struct vmm_err *err)
{
	p->ids[0] |= ID_USED;
	for (size_t i = 0; i < p->n; i++) {
		int r = p->want[i].id == VMM_SLOT_ANY ? 0 : classify_given(p, i, err);

		if (r) {
			*failed = i;
			return r;
		}
	}
	for (size_t i = 0; i < p->n; i++)
		if (p->want[i].id == VMM_SLOT_ANY)
			classify_free(p, i);
	return 0;
}

/* New slots without an id get the lowest ids free in the final layout
 * (the transaction creates them with these ids: a dry run shows them). */
static int ids_assign(struct planner *p, size_t *failed, struct vmm_err *err)
{
	unsigned max = vmm_max_memslots(p->h->caps);
	size_t next = 0;

	for (size_t i = 0; i < p->n; i++) {
		if (p->fate[i].kind != F_CREATE || p->fate[i].id != VMM_SLOT_ANY)
			continue;
		while (next < max && next < p->nids && (p->ids[next] & ID_USED))
			next++;
		if (next >= max || next >= p->nids) {
			*failed = i;
			return vmm_err_set(err, -ENOSPC, NULL, "the VM would have more than "
					   "%u memslots, this host's limit", max);
		}
		p->ids[next] |= ID_USED;
		p->fate[i].id = (uint32_t)next;
	}
	return 0;
}

/* Counts the changes; more than one transaction takes is an error. */
static int count_check(struct planner *p, struct vmm_err *err)
{
	size_t total;

	for (size_t i = 0; i < p->n; i++) {
		enum fate_kind k = p->fate[i].kind;

		p->ncreate += k == F_CREATE;
		p->nmove += k == F_MOVE;
		p->nreplace += k == F_REPLACE;
		p->nflags += p->fate[i].flags;
	}
	for (unsigned i = 0; i < p->cur->n; i++) {
		const struct lslot *s = p->cur->by_gpa[i];

		p->ndel += s->id != 0 && !(p->ids[s->id] & ID_CLAIMED);
	}
	total = p->ndel + p->ncreate + p->nmove + 2 * p->nreplace + p->nflags;
	if (total <= VMM_TXN_MAX)
		return 0;
	return vmm_err_set(err, -E2BIG, "slots", "the layout is %zu changes away from the "
			   "VM's (%zu creates, %zu moves, %zu deletes, %zu replaces counting 2, "
			   "%zu dirty-logging changes), more than the %u one memslot.apply "
			   "makes: apply it in steps", total, p->ncreate, p->nmove, p->ndel,
			   p->nreplace, p->nflags, VMM_TXN_MAX);
}

/* ---- what changes ---------------------------------------------------------------- */

static struct ctl_apply_change *change_add(struct planner *p, enum ctl_apply_kind kind,
					   size_t index)
{
	struct ctl_apply_change *c = &p->plan->changes[p->plan->nchanges++];

	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->index = index;
	return c;
}

/* The change(s) of desired slot i. */
static void changes_of(struct planner *p, size_t i)
{
	const struct ctl_slot_want *w = &p->want[i];
	const struct fate *f = &p->fate[i];
	static const enum ctl_apply_kind kinds[] = {
		[F_CREATE] = CTL_APPLY_CREATE, [F_MOVE] = CTL_APPLY_MOVE,
		[F_REPLACE] = CTL_APPLY_REPLACE,
	};
	struct ctl_apply_change *c;

	if (f->kind == F_CREATE || f->kind == F_REPLACE) {
		c = change_add(p, kinds[f->kind], i);
		want_info(w, f->id, &c->slot);
		if (f->cur)
			layout_slot_info(f->cur, &c->old);
	} else if (f->kind == F_MOVE) {
		c = change_add(p, CTL_APPLY_MOVE, i);
		layout_slot_info(f->cur, &c->old);
		c->slot = c->old;
		c->slot.gpa = w->gpa;
		c->slot.slot_flags = w->flags;	/* as it ends, the flags step done */
	}
	if (!f->flags)
		return;
	c = change_add(p, CTL_APPLY_FLAGS, i);
	layout_slot_info(f->cur, &c->old);
	c->old.gpa = w->gpa;
	c->slot = c->old;
	c->slot.slot_flags ^= VMM_SLOT_DIRTY_LOG;
}

static int changes_build(struct planner *p, struct vmm_err *err)
{
	size_t n = p->ncreate + p->nmove + p->nreplace + p->nflags + p->ndel;

	p->plan->changes = n ? calloc(n, sizeof(*p->plan->changes)) : NULL;
	if (n && !p->plan->changes)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		p->plan->unchanged += (p->fate[i].kind == F_UNCHANGED ||
				       p->fate[i].kind == F_BOOT) && !p->fate[i].flags;
		changes_of(p, i);
	}
	for (unsigned i = 0; i < p->cur->n; i++) {
		const struct lslot *s = p->cur->by_gpa[i];

		if (s->id != 0 && !(p->ids[s->id] & ID_CLAIMED))
			layout_slot_info(s, &change_add(p, CTL_APPLY_DELETE, SIZE_MAX)->slot);
	}
	return 0;
}

/* ---- the ops, in order ------------------------------------------------------------- */

/* The next op, from desired slot index; NULL past one transaction's. */
static struct vmm_memslot_op *op_add(struct planner *p, size_t index, struct vmm_err *err)
{
	struct apply_plan *pl = p->plan;
	struct vmm_memslot_op *op;

	if (pl->nops == VMM_TXN_MAX) {
		vmm_err_set(err, -E2BIG, "slots", "the moves form cycles whose passes through "
			    "free ranges make more than the %u ops of one transaction: apply "
			    "the layout in steps", VMM_TXN_MAX);
		return NULL;
	}
	op = &pl->ops[pl->nops];
	memset(op, 0, sizeof(*op));
	pl->op_index[pl->nops++] = index;
	return op;
}

static int op_move(struct planner *p, uint32_t id, uint64_t gpa, size_t index,
		   struct vmm_err *err)
{
	struct vmm_memslot_op *op = op_add(p, index, err);

	if (!op)
		return -E2BIG;
	op->kind = VMM_OP_MOVE;
	op->id = id;
	op->gpa = gpa;
	return 0;
}

/* A slot on its way: where it is now and where it goes. */
struct mv {
	uint32_t id;
	uint64_t at, to, size;
	size_t index;
	bool done;
};

/* The first slot still to move that sits on move m's target (k: none). */
static size_t mv_blocker(const struct mv *mv, size_t k, size_t m)
{
	for (size_t j = 0; j < k; j++)
		if (j != m && !mv[j].done &&
		    spans_meet(mv[m].to, mv[m].size, mv[j].at, mv[j].size))
			return j;
	return k;
}

/* When every slot still to move is blocked, following blockers from any
 * of them ends in a cycle within k steps: a slot of it, whose leaving
 * unblocks another. */
static size_t mv_in_cycle(const struct mv *mv, size_t k)
{
	size_t m = 0;

	while (mv[m].done)
		m++;
	for (size_t step = 0; step < k; step++)
		m = mv_blocker(mv, k, m);
	return m;
}

/* The highest page-aligned range (2 MiB aligned for a slot that large)
 * of size bytes in a gap of the sorted, merged spans s[0..k), valid on
 * this host; -ENOSPC when there is none. */
static int gap_find(const struct apply_host *h, const struct span *s, size_t k,
		    uint64_t size, uint64_t *out)
{
	unsigned bits = h->caps->guest_phys_bits;
	uint64_t limit = bits >= 64 ? UINT64_MAX : 1ull << bits;
	uint64_t align = size >= HUGE_2M ? HUGE_2M : 4096;

	for (size_t j = k + 1; j-- > 0;) {
		uint64_t a = j ? s[j - 1].gpa + s[j - 1].size : 0, b = j < k ? s[j].gpa : limit;
		uint64_t hi = b >= size ? (b - size) & ~(align - 1) : 0;
		uint64_t lo = (a + align - 1) & ~(align - 1);

		if (b < a || b - a < size)
			continue;
		if (hi >= a && !vmm_range_check(bits, hi, size, NULL))
			return *out = hi, 0;
		if (lo <= b - size && !vmm_range_check(bits, lo, size, NULL))
			return *out = lo, 0;
	}
	return -ENOSPC;
}

/* Sorts s[0..k) and merges overlapping spans; returns how many remain. */
static size_t spans_merge(struct span *s, size_t k)
{
	size_t m = 0;

	qsort(s, k, sizeof(*s), span_cmp);
	for (size_t i = 0; i < k; i++) {
		uint64_t end = s[i].gpa + s[i].size;

		if (m && s[i].gpa <= s[m - 1].gpa + s[m - 1].size) {
			if (end > s[m - 1].gpa + s[m - 1].size)
				s[m - 1].size = end - s[m - 1].gpa;
			continue;
		}
		s[m++] = s[i];
	}
	return m;
}

/* A range of size bytes no slot uses at any step of the plan: clear of
 * every existing slot, every desired slot and wherever the moves are. */
static int scratch_find(struct planner *p, const struct mv *mv, size_t k, uint64_t size,
			uint64_t *out, size_t index, struct vmm_err *err)
{
	struct span *s = malloc((p->cur->n + p->n + k) * sizeof(*s));
	size_t m = 0;
	int r;

	if (!s)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	for (unsigned i = 0; i < p->cur->n; i++)
		s[m++] = (struct span){ p->cur->by_gpa[i]->gpa, p->cur->by_gpa[i]->size, 0 };
	for (size_t i = 0; i < p->n; i++)
		s[m++] = (struct span){ p->want[i].gpa, p->want[i].size, 0 };
	for (size_t i = 0; i < k; i++)
		s[m++] = (struct span){ mv[i].at, mv[i].size, 0 };
	r = gap_find(p->h, s, spans_merge(s, m), size, out);
	free(s);
	if (r)
		return vmm_err_set(err, -ENOSPC, "gpa", "slots[%zu]: the moves form a cycle, and "
				   "no free range of 0x%llx bytes is left to pass the slot through: "
				   "apply the layout in steps", index, (unsigned long long)size);
	return 0;
}

/* Moves each slot once its target is clear; a cycle is broken by moving
 * its first slot to a free range, from which it moves on later. */
static int moves_order(struct planner *p, struct mv *mv, size_t k, struct vmm_err *err)
{
	size_t left = k;
	uint64_t gpa = 0;
	int r = 0;

	while (left && !r) {
		bool progress = false;
		size_t m;

		for (m = 0; m < k && !r; m++) {
			if (mv[m].done || mv_blocker(mv, k, m) < k)
				continue;
			r = op_move(p, mv[m].id, mv[m].to, mv[m].index, err);
			mv[m].at = mv[m].to;
			mv[m].done = progress = true;
			left--;
		}
		if (progress || r)
			continue;
		/* The free range is clear of every target: nothing waits on
		 * the slot there, and the cycle opens. */
		m = mv_in_cycle(mv, k);
		r = scratch_find(p, mv, k, mv[m].size, &gpa, mv[m].index, err);
		if (!r)
			r = op_move(p, mv[m].id, gpa, mv[m].index, err);
		mv[m].at = gpa;
	}
	return r;
}

/* The moves of the plan, in an order each step of which is valid. */
static int moves_emit(struct planner *p, struct vmm_err *err)
{
	struct mv *mv = p->nmove ? calloc(p->nmove, sizeof(*mv)) : NULL;
	size_t k = 0;
	int r;

	if (p->nmove && !mv)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < p->n; i++)
		if (p->fate[i].kind == F_MOVE)
			mv[k++] = (struct mv){ p->fate[i].id, p->fate[i].cur->gpa, p->want[i].gpa,
					       p->want[i].size, i, false };
	r = moves_order(p, mv, k, err);
	free(mv);
	return r;
}

/* Deletes (a replaced slot's old one too), moves, creates. */
static int ops_build(struct planner *p, struct vmm_err *err)
{
	struct apply_plan *pl = p->plan;
	struct vmm_memslot_op *op;
	int r;

	pl->ops = malloc(VMM_TXN_MAX * sizeof(*pl->ops));
	pl->op_index = malloc(VMM_TXN_MAX * sizeof(*pl->op_index));
	if (!pl->ops || !pl->op_index)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < pl->nchanges; i++) {
		const struct ctl_apply_change *c = &pl->changes[i];

		if (c->kind != CTL_APPLY_DELETE && c->kind != CTL_APPLY_REPLACE)
			continue;
		if (!(op = op_add(p, c->index, err)))
			return -E2BIG;
		op->kind = VMM_OP_DELETE;
		op->id = c->kind == CTL_APPLY_DELETE ? c->slot.id : c->old.id;
	}
	r = moves_emit(p, err);
	for (size_t i = 0; i < p->n && !r; i++) {
		if (p->fate[i].kind != F_CREATE && p->fate[i].kind != F_REPLACE)
			continue;
		if (!(op = op_add(p, i, err)))
			return -E2BIG;
		op->kind = VMM_OP_CREATE;
		want_params(&p->want[i], p->fate[i].id, &op->create);
	}
	return r;
}

/* ---- the plan -------------------------------------------------------------------- */

void apply_plan_free(struct apply_plan *plan)
{
	free(plan->ops);
	free(plan->op_index);
	free(plan->changes);
	memset(plan, 0, sizeof(*plan));
}

/* Room for an id flag per id the VM may have, and a fate per entry. */
static int planner_init(struct planner *p, struct vmm_err *err)
{
	size_t max = vmm_max_memslots(p->h->caps);

	p->nids = max > p->cur->ids_cap ? max : p->cur->ids_cap;
	p->ids = calloc(p->nids ? p->nids : 1, 1);
	p->fate = calloc(p->n ? p->n : 1, sizeof(*p->fate));
	if (!p->ids || !p->fate)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	return 0;
}

int apply_plan_make(const struct apply_host *h, const struct layout *cur,
		    const struct ctl_slot_want *want, size_t n, struct apply_plan *plan,
		    size_t *failed, struct vmm_err *err)
{
	struct planner p = { .h = h, .cur = cur, .want = want, .n = n, .plan = plan };
	int r;

	memset(plan, 0, sizeof(*plan));
	*failed = SIZE_MAX;
	r = wants_check(&p, failed, err);
	if (!r)
		r = planner_init(&p, err);
	if (!r)
		r = classify(&p, failed, err);
	if (!r)
		r = final_check(&p, failed, err);
	if (!r)
		r = ids_assign(&p, failed, err);
	if (!r)
		r = count_check(&p, err);
	if (!r)
		r = changes_build(&p, err);
	if (!r && p.ndel + p.ncreate + p.nmove + p.nreplace)
		r = ops_build(&p, err);
	free(p.ids);
	free(p.fate);
	if (r)
		apply_plan_free(plan);
	return r;
}

/* ---- applying it -------------------------------------------------------------------- */

/* Adds fx's times and counters to sum's (one change made of several). */
static void effect_add(struct vmm_effect *sum, const struct vmm_effect *fx)
{
	sum->kernel_ns += fx->kernel_ns;
	sum->engine_ns += fx->engine_ns;
	sum->runner_ns += fx->runner_ns;
	sum->apply_ns += fx->apply_ns;
	for (unsigned i = 0; i < fx->n && i < VMM_EFFECT_MAX; i++) {
		unsigned j;

		for (j = 0; j < sum->n; j++)
			if (!strcmp(sum->counters[j].side, fx->counters[i].side) &&
			    !strcmp(sum->counters[j].name, fx->counters[i].name))
				break;
		if (j == sum->n && sum->n == VMM_EFFECT_MAX)
			continue;
		if (j == sum->n)
			sum->counters[sum->n++] = fx->counters[i];
		else
			sum->counters[j].delta += fx->counters[i].delta;
	}
}

/* The dirty-logging changes, after the transaction committed. */
static int flags_run(struct ctl_vm *vm, const struct apply_plan *plan, size_t *failed,
		     struct vmm_effect *fx, struct vmm_err *err)
{
	for (size_t i = 0; i < plan->nchanges; i++) {
		const struct ctl_apply_change *c = &plan->changes[i];
		struct vmm_effect one = { 0 };
		char why[sizeof(err->msg)];
		int r;

		if (c->kind != CTL_APPLY_FLAGS)
			continue;
		r = ctl_memslot_set_flags(vm, c->slot.id, c->slot.slot_flags & VMM_SLOT_DIRTY_LOG,
					  &one, err);
		if (!r) {
			effect_add(fx, &one);
			continue;
		}
		*failed = c->index;
		if (err) {
			snprintf(why, sizeof(why), "%s", err->msg);
			snprintf(err->msg, sizeof(err->msg), "dirty logging of memslot %u was not "
				 "changed (%.120s); the layout's other changes were made: apply "
				 "it again to finish", c->slot.id, why);
		}
		return r;
	}
	return 0;
}

/* The transaction (if there are ops), then the dirty-logging changes. */
static int plan_run(struct ctl_vm *vm, const struct apply_plan *plan, size_t *failed,
		    struct vmm_effect *fx, struct vmm_err *err)
{
	uint32_t ids[VMM_TXN_MAX];
	size_t op = SIZE_MAX;
	int r;

	if (plan->nops) {
		r = ctl_memslot_transaction(vm, plan->ops, plan->nops, ids, &op, fx, err);
		if (r) {
			*failed = op < plan->nops ? plan->op_index[op] : SIZE_MAX;
			return r;
		}
	}
	return flags_run(vm, plan, failed, fx, err);
}

int ctl_memslot_apply(struct ctl_vm *vm, const struct ctl_slot_want *want, size_t n,
		      bool dry_run, struct ctl_apply_result *res, size_t *failed,
		      struct vmm_err *err)
{
	struct apply_host h = { &vm->ctl->caps, vm->def.type, vm->info.kvm_vm_type };
	uint64_t t0 = vmm_now_ns();
	struct apply_plan plan;
	int r;

	memset(res, 0, sizeof(*res));
	r = apply_plan_make(&h, &vm->layout, want, n, &plan, failed, err);
	if (r)
		return r;
	if (!dry_run && plan.nchanges)
		r = plan_run(vm, &plan, failed, &res->fx, err);
	if (!r) {
		res->changes = plan.changes;
		res->n = plan.nchanges;
		res->unchanged = plan.unchanged;
		res->ops = plan.nops;
		plan.changes = NULL;
		if (!dry_run && plan.nchanges)
			res->fx.duration_ns = vmm_now_ns() - t0;
	}
	apply_plan_free(&plan);
	return r;
}

void ctl_apply_result_fini(struct ctl_apply_result *res)
{
	free(res->changes);
	memset(res, 0, sizeof(*res));
}
