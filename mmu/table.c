/* The radix translation table: walk, install, precise zap, eager split. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/internal.h"

/* Leaf/table counts that moved in or out of a subtree during one walk. */
struct counts {
	int64_t leaves[LEAF_SIZES];
	int64_t tables;
};

struct walk_ctx {
	struct mmu *mmu;
	struct mmu_op *op;
	uint64_t start;
	uint64_t end;
	int error;
};

static struct pt *pt_child(uint64_t e)
{
	return (struct pt *)(uintptr_t)(e & PTE_TABLE_MASK);
}

static bool pte_is_table(uint64_t e)
{
	return (e & (PTE_PRESENT | PTE_LEAF)) == PTE_PRESENT;
}

/* Publishes an entry; release so a walker that sees it sees what it names. */
static void pte_set(uint64_t *slot, uint64_t e)
{
	__atomic_store_n(slot, e, __ATOMIC_RELEASE);
}

static void counts_apply(struct pt *t, const struct counts *d)
{
	for (int i = 0; i < LEAF_SIZES; i++)
		t->nr_leaves[i] += (uint64_t)d->leaves[i];
	t->nr_tables += (uint64_t)d->tables;
}

static void counts_add(struct counts *to, const struct counts *d)
{
	for (int i = 0; i < LEAF_SIZES; i++)
		to->leaves[i] += d->leaves[i];
	to->tables += d->tables;
}

/* Allocates a zeroed table page counted as one table. */
int pt_alloc(struct mmu *mmu, struct pt **out)
{
	size_t size = (sizeof(struct pt) + 63) & ~(size_t)63;
	struct pt *t = aligned_alloc(64, size);

	if (!t)
		return -ENOMEM;
	memset(t, 0, sizeof(*t));
	t->nr_tables = 1;
	t->defer.mmu = mmu;
	*out = t;
	return 0;
}

/* Frees a subtree no walker can reach any more; returns tables freed. */
static uint64_t pt_free_tree(struct pt *t)
{
	uint64_t n = 1;

	if (t->nr_tables > 1) {
		for (int i = 0; i < PT_ENTRIES; i++)
			if (pte_is_table(t->e[i]))
				n += pt_free_tree(pt_child(t->e[i]));
	}
	free(t);
	return n;
}

void pt_free_now(struct pt *t)
{
	pt_free_tree(t);
}

/* call_rcu callback: the grace period is over, no walker holds the tree. */
static void pt_free_cb(struct rcu_head *rh)
{
	struct mmu_defer *d;
	struct mmu *mmu;

	RCU_TSAN_ACQUIRE();
	d = caa_container_of(rh, struct mmu_defer, rh);
	mmu = d->mmu;
	ATOMIC_ADD(&mmu->tables_freed,
		   pt_free_tree(caa_container_of(d, struct pt, defer)));
	op_done(mmu);
}

void pt_defer_free(struct mmu_op *op, struct pt *t)
{
	op_defer(op, &t->defer, pt_free_cb);
}

/* Called with mmu->lock held.  Adds a child table under t at index i. */
static int pt_grow(struct mmu *mmu, struct pt **path, int depth, unsigned i)
{
	struct pt *child;
	int ret = pt_alloc(mmu, &child);

	if (ret)
		return ret;
	pte_set(&path[depth - 1]->e[i],
		(uint64_t)(uintptr_t)child | PTE_PRESENT);
	path[depth - 1]->nr_present++;
	for (int k = 0; k < depth; k++)
		path[k]->nr_tables++;
	return 0;
}

/* Called with mmu->lock held.  Maps gfn with the largest leaf at or below
 * max_level whose entry is free; page_hva is gfn's host page.  Returns 1
 * with the existing leaf if one maps gfn already, 0 when installed. */
int pt_install(struct mmu *mmu, struct pt *root, uint64_t gfn, int max_level,
	       uint64_t page_hva, uint64_t flags, uint64_t *entry, int *level)
{
	struct pt *path[PT_LEVELS];
	int depth = 0, ret;

	path[depth++] = root;
	for (int l = PT_LEVELS; l >= 1; l--) {
		struct pt *t = path[depth - 1];
		unsigned i = pt_index(gfn, l);
		uint64_t e = t->e[i];

		*level = l;
		if (pte_is_table(e)) {
			path[depth++] = pt_child(e);
			continue;
		}
		if (e & PTE_PRESENT) {
			*entry = e;
			return 1;
		}
		if (l <= max_level) {
			uint64_t off = (gfn & (pt_level_pages(l) - 1)) <<
				       MMU_PAGE_SHIFT;

			*entry = ((page_hva - off) & PTE_HVA_MASK) | flags |
				 PTE_PRESENT | PTE_LEAF;
			pte_set(&t->e[i], *entry);
			t->nr_present++;
			for (int k = 0; k < depth; k++)
				path[k]->nr_leaves[l - 1]++;
			return 0;
		}
		ret = pt_grow(mmu, path, depth, i);
		if (ret)
			return ret;
		path[depth++] = pt_child(t->e[i]);
	}
	return -EINVAL;
}

/* Called with mmu->lock held.  Unlinks child entry i of t; its subtree is
 * freed after a grace period.  Adds what left to d. */
static void pt_detach(struct walk_ctx *c, struct pt *t, unsigned i,
		      struct counts *d)
{
	struct pt *child = pt_child(t->e[i]);

	pte_set(&t->e[i], 0);
	t->nr_present--;
	for (int k = 0; k < LEAF_SIZES; k++)
		d->leaves[k] -= (int64_t)child->nr_leaves[k];
	d->tables -= (int64_t)child->nr_tables;
	c->mmu->st.tables_detached++;
	pt_defer_free(c->op, child);
}

static void pt_zap_table(struct walk_ctx *c, struct pt *t, int level,
			 uint64_t base, struct counts *up);

/* Called with mmu->lock held.  Zaps what entry i of t maps in the range. */
static void pt_zap_entry(struct walk_ctx *c, struct pt *t, int level,
			 unsigned i, uint64_t eb, struct counts *d)
{
	uint64_t span = pt_level_pages(level);
	uint64_t e = t->e[i];
	bool covered = eb >= c->start && eb + span <= c->end;

	if (e & PTE_LEAF) {
		pte_set(&t->e[i], 0);
		t->nr_present--;
		d->leaves[level - 1]--;
		c->mmu->st.leafs_zapped++;
		return;
	}
	/* Protected VMs zap leaves before the tables that hold them. */
	if (covered && !c->mmu->protected_vm) {
		pt_detach(c, t, i, d);
		return;
	}
	pt_zap_table(c, pt_child(e), level - 1, eb, d);
	if (pt_child(e)->nr_present == 0)
		pt_detach(c, t, i, d);
}

typedef void (*pt_entry_fn)(struct walk_ctx *c, struct pt *t, int level,
			    unsigned i, uint64_t base, struct counts *d);

/* Called with mmu->lock held.  Calls fn on each present entry of t (which
 * maps from gfn base at this level) inside [c->start, c->end), then
 * applies what left or joined the subtree to t and adds it to up. */
static void pt_walk_range(struct walk_ctx *c, struct pt *t, int level,
			  uint64_t base, struct counts *up, pt_entry_fn fn)
{
	uint64_t span = pt_level_pages(level);
	uint64_t first = c->start > base ? c->start : base;
	uint64_t last = base + span * PT_ENTRIES;
	struct counts d = { { 0 }, 0 };

	if (c->end < last)
		last = c->end;
	for (uint64_t i = (first - base) / span; base + i * span < last; i++) {
		if (t->e[i] & PTE_PRESENT)
			fn(c, t, level, (unsigned)i, base + i * span, &d);
	}
	counts_apply(t, &d);
	counts_add(up, &d);
}

/* Called with mmu->lock held.  Zaps [c->start, c->end) below t. */
static void pt_zap_table(struct walk_ctx *c, struct pt *t, int level,
			 uint64_t base, struct counts *up)
{
	pt_walk_range(c, t, level, base, up, pt_zap_entry);
}

/* Called with mmu->lock held.  Precise zap of [gfn, gfn + npages) in the
 * current tree; detached tables are queued on op. */
void pt_zap_range(struct mmu *mmu, uint64_t gfn, uint64_t npages,
		  struct mmu_op *op)
{
	struct walk_ctx c = { mmu, op, gfn, gfn + npages, 0 };
	struct counts d = { { 0 }, 0 };
	struct pt *root = mmu->root;

	/* The root's own counters are updated inside; d is only the sum. */
	pt_zap_table(&c, root, PT_LEVELS, 0, &d);
}

/* Builds a table of 4 KiB leaves (through 2 MiB tables for a 1 GiB leaf)
 * mapping the same memory as a huge leaf at level, write-protected. */
static int pt_build_split(struct mmu *mmu, uint64_t leaf, int level,
			  struct pt **out)
{
	uint64_t hva = leaf & PTE_HVA_MASK;
	uint64_t step = pt_level_pages(level - 1) << MMU_PAGE_SHIFT;
	struct pt *t = NULL, *sub;
	int ret = pt_alloc(mmu, &t);

	for (int i = 0; !ret && i < PT_ENTRIES; i++, hva += step) {
		if (level - 1 == 1) {
			t->e[i] = hva | PTE_PRESENT | PTE_LEAF | PTE_DIRTY_TRK;
			t->nr_leaves[0]++;
		} else if (!(ret = pt_build_split(mmu, hva, level - 1, &sub))) {
			t->e[i] = (uint64_t)(uintptr_t)sub | PTE_PRESENT;
			t->nr_leaves[0] += sub->nr_leaves[0];
			t->nr_tables += sub->nr_tables;
		}
		if (!ret)
			t->nr_present++;
	}
	if (ret && t)
		pt_free_tree(t);
	else if (!ret)
		*out = t;
	return ret;
}

static void pt_split_table(struct walk_ctx *c, struct pt *t, int level,
			   uint64_t base, struct counts *up);

/* Called with mmu->lock held.  Splits or write-protects entry i of t. */
static void pt_split_entry(struct walk_ctx *c, struct pt *t, int level,
			   unsigned i, uint64_t eb, struct counts *d)
{
	uint64_t e = t->e[i];
	struct pt *sub;
	int ret;

	if (pte_is_table(e)) {
		pt_split_table(c, pt_child(e), level - 1, eb, d);
		return;
	}
	if (level == 1) {
		pte_set(&t->e[i], (e & ~PTE_WRITABLE) | PTE_DIRTY_TRK);
		return;
	}
	ret = pt_build_split(c->mmu, e, level, &sub);
	if (ret) {
		c->error = ret;
		return;
	}
	pte_set(&t->e[i], (uint64_t)(uintptr_t)sub | PTE_PRESENT);
	d->leaves[level - 1]--;
	d->leaves[0] += (int64_t)sub->nr_leaves[0];
	d->tables += (int64_t)sub->nr_tables;
}

/* Called with mmu->lock held.  Splits huge leaves in the range below t. */
static void pt_split_table(struct walk_ctx *c, struct pt *t, int level,
			   uint64_t base, struct counts *up)
{
	pt_walk_range(c, t, level, base, up, pt_split_entry);
}

/* Called with mmu->lock held.  Eagerly splits huge leaves mapping
 * [gfn, gfn + npages) into 4 KiB leaves and write-protects every leaf there
 * for dirty logging.  On -ENOMEM what was split stays split. */
int pt_split_range(struct mmu *mmu, uint64_t gfn, uint64_t npages)
{
	struct walk_ctx c = { mmu, NULL, gfn, gfn + npages, 0 };
	struct counts d = { { 0 }, 0 };

	pt_split_table(&c, mmu->root, PT_LEVELS, 0, &d);
	return c.error;
}

/* Called with mmu->lock held.  The entry slot of the leaf mapping gfn. */
static uint64_t *pt_leaf_slot(struct pt *root, uint64_t gfn)
{
	struct pt *t = root;

	for (int l = PT_LEVELS; l >= 1; l--) {
		uint64_t *slot = &t->e[pt_index(gfn, l)];

		if (!(*slot & PTE_PRESENT))
			return NULL;
		if (*slot & PTE_LEAF)
			return slot;
		t = pt_child(*slot);
	}
	return NULL;
}

/* Called with mmu->lock held.  Write-protects gfn's leaf for logging. */
void pt_wrprot_page(struct mmu *mmu, uint64_t gfn)
{
	uint64_t *slot = pt_leaf_slot(mmu->root, gfn);

	if (slot && (*slot & PTE_WRITABLE))
		pte_set(slot, (*slot & ~PTE_WRITABLE) | PTE_DIRTY_TRK);
}

/* Called with mmu->lock held.  Lets writes through gfn's logged leaf. */
int pt_set_writable(struct mmu *mmu, uint64_t gfn)
{
	uint64_t *slot = pt_leaf_slot(mmu->root, gfn);

	if (!slot)
		return -ENOENT;
	pte_set(slot, *slot | PTE_WRITABLE);
	return 0;
}
