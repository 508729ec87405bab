/* The reconciliation plan: match slots by id (both lists sorted by id),
 * then emit the actions in an order that frees GPA ranges before they are
 * reused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/layout.h"
#include "ctl/reconcile.h"

static int id_cmp(const void *a, const void *b)
{
	const struct vmm_memslot_info *x = *(const struct vmm_memslot_info *const *)a;
	const struct vmm_memslot_info *y = *(const struct vmm_memslot_info *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Pointers to the n slots of s (slot 0 left out), sorted by id. */
static const struct vmm_memslot_info **by_id(const struct vmm_memslot_info *s, size_t n,
					     size_t *count)
{
	const struct vmm_memslot_info **p = calloc(n ? n : 1, sizeof(*p));

	*count = 0;
	if (!p)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (s[i].id != 0)
			p[(*count)++] = &s[i];
	if (*count)
		qsort(p, *count, sizeof(*p), id_cmp);
	return p;
}

/* Whether a and b differ only in gpa and dirty logging. */
static bool movable(const struct vmm_memslot_info *a, const struct vmm_memslot_info *b)
{
	struct vmm_memslot_info x = *a;

	x.gpa = b->gpa;
	x.slot_flags = (x.slot_flags & ~VMM_SLOT_DIRTY_LOG) | (b->slot_flags & VMM_SLOT_DIRTY_LOG);
	return layout_same(&x, b);
}

struct plan {
	struct rec_action *a;
	size_t n;
};

static void add(struct plan *p, enum rec_kind kind, const struct vmm_memslot_info *s,
		const char *why)
{
	p->a[p->n].kind = kind;
	p->a[p->n].slot = *s;
	p->a[p->n].why = why;
	p->n++;
}

/* Emits the actions of one kind, walking both id-sorted lists. */
static void pass(struct plan *p, enum rec_kind kind, const struct vmm_memslot_info **w,
		 size_t nw, const struct vmm_memslot_info **h, size_t nh)
{
	size_t i = 0, k = 0;

	while (i < nw || k < nh) {
		const struct vmm_memslot_info *a = i < nw ? w[i] : NULL, *b = k < nh ? h[k] : NULL;

		if (a && (!b || a->id < b->id)) {	/* journaled, not applied */
			if (kind == REC_CREATE)
				add(p, kind, a, "journaled but not applied: applied now");
			i++;
		} else if (b && (!a || b->id < a->id)) {	/* applied, not journaled */
			if (kind == REC_DELETE)
				add(p, kind, b, "applied but never journaled: removed");
			k++;
		} else {
			bool same = layout_same(a, b), mv = movable(a, b);

			if (!same && !mv && (kind == REC_DELETE || kind == REC_CREATE))
				add(p, kind, kind == REC_DELETE ? b : a,
				    "differs from the journal: replaced");
			else if (mv && kind == REC_MOVE && a->gpa != b->gpa)
				add(p, kind, a, "at another GPA than journaled: moved back");
			else if (mv && kind == REC_FLAGS &&
				 (a->slot_flags ^ b->slot_flags) & VMM_SLOT_DIRTY_LOG)
				add(p, kind, a, "dirty logging differs from the journal: set");
			i++;
			k++;
		}
	}
}

int reconcile_plan(const struct vmm_memslot_info *want, size_t nw,
		   const struct vmm_memslot_info *have, size_t nh,
		   struct rec_action **out, size_t *n)
{
	static const enum rec_kind order[] = { REC_DELETE, REC_MOVE, REC_FLAGS, REC_CREATE };
	size_t cw, ch;
	const struct vmm_memslot_info **w = by_id(want, nw, &cw), **h = by_id(have, nh, &ch);
	struct plan p = { .a = calloc(2 * (nw + nh) + 1, sizeof(*p.a)) };
	int r = w && h && p.a ? 0 : -ENOMEM;

	for (size_t i = 0; !r && i < sizeof(order) / sizeof(order[0]); i++)
		pass(&p, order[i], w, cw, h, ch);
	free(w);
	free(h);
	if (r || p.n == 0) {
		free(p.a);
		p.a = NULL;
		p.n = 0;
	}
	*out = p.a;
	*n = p.n;
	return r;
}

const char *reconcile_kind_name(enum rec_kind kind)
{
	static const char *const names[] = {
		[REC_DELETE] = "delete", [REC_MOVE] = "move", [REC_FLAGS] = "flags",
		[REC_CREATE] = "create",
	};

	return names[kind];
}
