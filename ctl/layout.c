/* A VM's memslot layout as the control plane models it: slots sorted by
 * GPA (pointers, so a change moves 8 bytes per slot, not the records) and
 * indexed by id.  Single-threaded: only the event loop touches it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/layout.h"

void layout_init(struct layout *l)
{
	memset(l, 0, sizeof(*l));
}

static void lslot_free(struct lslot *s)
{
	if (s)
		free(s->path);
	free(s);
}

void layout_fini(struct layout *l)
{
	for (unsigned i = 0; i < l->n; i++)
		lslot_free(l->by_gpa[i]);
	free(l->by_gpa);
	free(l->by_id);
	layout_init(l);
}

struct lslot *layout_find(const struct layout *l, uint32_t id)
{
	return id < l->ids_cap ? l->by_id[id] : NULL;
}

/* Index of the first slot whose gpa is >= gpa. */
static unsigned lower_bound(const struct layout *l, uint64_t gpa)
{
	unsigned lo = 0, hi = l->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (l->by_gpa[mid]->gpa < gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct lslot *layout_overlap(const struct layout *l, uint64_t gpa, uint64_t size,
				   uint32_t skip)
{
	uint64_t end = gpa + size;

	/* Sorted and disjoint: only the slot before the lower bound and those
	 * starting before end can overlap. */
	for (unsigned i = lower_bound(l, gpa), k = i ? i - 1 : 0;
	     k < l->n && l->by_gpa[k]->gpa < end; k++) {
		const struct lslot *s = l->by_gpa[k];

		if (s->id != skip && gpa < s->gpa + s->size && s->gpa < end)
			return s;
	}
	return NULL;
}

int layout_id_pick(const struct layout *l, uint32_t want, unsigned max, uint32_t *id,
		   struct vmm_err *err)
{
	if (l->n >= max)
		return vmm_err_set(err, -ENOSPC, "slot",
				   "the VM has %u memslots, the host's limit (KVM_CAP_NR_MEMSLOTS)",
				   l->n);
	if (want != VMM_SLOT_ANY) {
		if (want >= max)
			return vmm_err_set(err, -EINVAL, "slot", "slot id %u is not below %u",
					   want, max);
		if (layout_find(l, want))
			return vmm_err_set(err, -EEXIST, "slot", "slot %u exists", want);
		*id = want;
		return 0;
	}
	/* Every id below id_hint is taken (id_set keeps it so). */
	for (*id = l->id_hint; *id < l->ids_cap && l->by_id[*id]; (*id)++)
		;
	return 0;
}

/* Sets by_id[id] (NULL frees the id), growing the index as needed. */
static int id_set(struct layout *l, uint32_t id, struct lslot *s)
{
	if (id >= l->ids_cap) {
		unsigned cap = id < 1024 ? 1024 : id * 2;
		struct lslot **n;

		if (!s)
			return 0;
		n = realloc(l->by_id, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		memset(n + l->ids_cap, 0, (cap - l->ids_cap) * sizeof(*n));
		l->by_id = n;
		l->ids_cap = cap;
	}
	l->by_id[id] = s;
	if (!s && id < l->id_hint)
		l->id_hint = id;
	while (l->id_hint < l->ids_cap && l->by_id[l->id_hint])
		l->id_hint++;
	return 0;
}

/* Puts s at its place in by_gpa (room is there). */
static void gpa_link(struct layout *l, struct lslot *s)
{
	unsigned i = lower_bound(l, s->gpa);

	memmove(&l->by_gpa[i + 1], &l->by_gpa[i], (l->n - i) * sizeof(l->by_gpa[0]));
	l->by_gpa[i] = s;
	l->n++;
}

static void gpa_unlink(struct layout *l, const struct lslot *s)
{
	/* GPAs are disjoint: the lower bound of its gpa is the slot. */
	unsigned i = lower_bound(l, s->gpa);

	memmove(&l->by_gpa[i], &l->by_gpa[i + 1], (l->n - i - 1) * sizeof(l->by_gpa[0]));
	l->n--;
}

int layout_insert(struct layout *l, const struct vmm_memslot_info *si)
{
	struct lslot *s = calloc(1, sizeof(*s));

	if (!s || (si->backing.path[0] && !(s->path = strdup(si->backing.path))))
		goto nomem;
	s->id = si->id;
	s->slot_flags = si->slot_flags;
	s->gpa = si->gpa;
	s->size = si->size;
	s->kind = si->backing.kind;
	s->shared = si->backing.shared;
	s->offset = si->backing.offset;
	s->hugepage_size = si->backing.hugepage_size;
	if (l->n == l->cap) {
		unsigned cap = l->cap ? l->cap * 2 : 16;
		struct lslot **n = realloc(l->by_gpa, cap * sizeof(*n));

		if (!n)
			goto nomem;
		l->by_gpa = n;
		l->cap = cap;
	}
	if (id_set(l, s->id, s))
		goto nomem;
	gpa_link(l, s);
	l->bytes += s->size;
	return 0;
nomem:
	lslot_free(s);
	return -ENOMEM;
}

int layout_remove(struct layout *l, uint32_t id, struct vmm_memslot_info *out)
{
	struct lslot *s = layout_find(l, id);

	if (!s)
		return -ENOENT;
	if (out)
		layout_slot_info(s, out);
	gpa_unlink(l, s);
	id_set(l, id, NULL);
	l->bytes -= s->size;
	lslot_free(s);
	return 0;
}

int layout_move(struct layout *l, uint32_t id, uint64_t gpa)
{
	struct lslot *s = layout_find(l, id);

	if (!s)
		return -ENOENT;
	gpa_unlink(l, s);
	s->gpa = gpa;
	gpa_link(l, s);
	return 0;
}

void layout_slot_info(const struct lslot *s, struct vmm_memslot_info *out)
{
	memset(out, 0, sizeof(*out));
	out->id = s->id;
	out->slot_flags = s->slot_flags;
	out->gpa = s->gpa;
	out->size = s->size;
	out->backing.kind = s->kind;
	out->backing.shared = s->shared;
	out->backing.offset = s->offset;
	out->backing.hugepage_size = s->hugepage_size;
	if (s->path) {
		size_t n = strlen(s->path);

		memcpy(out->backing.path, s->path,
		       n < sizeof(out->backing.path) ? n + 1 : sizeof(out->backing.path));
		out->backing.path[sizeof(out->backing.path) - 1] = '\0';
	}
}

int layout_get(const struct layout *l, bool skip0, struct vmm_memslot_info **out, size_t *n)
{
	*n = 0;
	*out = calloc(l->n ? l->n : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (unsigned i = 0; i < l->n; i++)
		if (!(skip0 && l->by_gpa[i]->id == 0))
			layout_slot_info(l->by_gpa[i], &(*out)[(*n)++]);
	return 0;
}

bool layout_same(const struct vmm_memslot_info *a, const struct vmm_memslot_info *b)
{
	uint64_t ha = a->backing.hugepage_size, hb = b->backing.hugepage_size;

	if (a->backing.kind == VMM_BACKING_HUGETLB) {
		ha = ha ? ha : 2u << 20;
		hb = hb ? hb : 2u << 20;
	}
	return a->id == b->id && a->gpa == b->gpa && a->size == b->size &&
	       a->slot_flags == b->slot_flags && a->backing.kind == b->backing.kind &&
	       a->backing.shared == b->backing.shared && a->backing.offset == b->backing.offset &&
	       ha == hb && !strcmp(a->backing.path, b->backing.path);
}
