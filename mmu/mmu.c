/* The write side: engine lifecycle, policy, slot changes, dirty log. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/internal.h"

/* A deleted slot's release callback, run after the grace period. */
struct slot_release {
	struct mmu_defer defer;
	mmu_release_fn fn;
	void *arg;
};

#define SLOT_FLAGS	(MMU_SLOT_READONLY | MMU_SLOT_DIRTY_LOG)

int mmu_create(const struct mmu_config *cfg, struct mmu **out)
{
	static const struct mmu_config defaults = { .type = MMU_VM_DEFAULT };
	struct mmu *mmu;
	int ret = -EINVAL;

	if (!cfg)
		cfg = &defaults;
	if (cfg->type != MMU_VM_DEFAULT && cfg->type != MMU_VM_PROTECTED)
		return ret;
	mmu = calloc(1, sizeof(*mmu));
	if (!mmu)
		return -ENOMEM;
	ret = pt_alloc(mmu, &mmu->root);
	if (ret)
		goto err_free;
	mmu->slots = slots_alloc(mmu, 0);
	if (!mmu->slots) {
		ret = -ENOMEM;
		goto err_root;
	}
	mmu->protected_vm = cfg->type == MMU_VM_PROTECTED;
	mmu->zap_all = !mmu->protected_vm && !cfg->slot_zap_all_off;
	mmu->tlb_off = cfg->tlb_off;
	pthread_mutex_init(&mmu->lock, NULL);
	pthread_mutex_init(&mmu->reader_lock, NULL);
	*out = mmu;
	return 0;
err_root:
	pt_free_now(mmu->root);
err_free:
	free(mmu);
	return ret;
}

void mmu_destroy(struct mmu *mmu)
{
	if (!mmu)
		return;
	/* RCU: every callback (frees, releases) that names mmu has run. */
	rcu_wait_callbacks();
	slots_destroy(mmu->slots);
	slot_ids_free(&mmu->slot_ids);
	pt_free_now(mmu->root);
	pthread_mutex_destroy(&mmu->reader_lock);
	pthread_mutex_destroy(&mmu->lock);
	free(mmu);
}

int mmu_policy_set(struct mmu *mmu, bool slot_zap_all)
{
	if (slot_zap_all && mmu->protected_vm)
		return -EPERM;
	pthread_mutex_lock(&mmu->lock);
	mmu->zap_all = slot_zap_all;
	pthread_mutex_unlock(&mmu->lock);
	return 0;
}

bool mmu_policy_get(struct mmu *mmu)
{
	bool on;

	pthread_mutex_lock(&mmu->lock);
	on = mmu->zap_all;
	pthread_mutex_unlock(&mmu->lock);
	return on;
}

/* Called with mmu->lock held.  Zap all fast: publish an empty root, bump
 * the generation, free the old tree after a grace period. */
static int mmu_zap_all(struct mmu *mmu, struct mmu_op *op)
{
	struct pt *fresh, *old = mmu->root;
	int ret = pt_alloc(mmu, &fresh);

	if (ret)
		return ret;
	__atomic_store_n(&mmu->root, fresh, __ATOMIC_RELEASE);
	__atomic_add_fetch(&mmu->generation, 1, __ATOMIC_RELAXED);
	mmu->st.roots_obsoleted++;
	tlb_flush_full(mmu);
	pt_defer_free(op, old);
	return 0;
}

/* Called with mmu->lock held.  Makes every translation of the range invalid
 * before returning, with the VM's policy when policy is true and precisely
 * otherwise (zap-all falls back to precise if it cannot allocate). */
static void mmu_invalidate(struct mmu *mmu, uint64_t gfn, uint64_t npages,
			   bool policy, struct mmu_op *op)
{
	uint64_t t0 = mmu_now_ns();

	if (!(policy && mmu->zap_all && mmu_zap_all(mmu, op) == 0)) {
		pt_zap_range(mmu, gfn, npages, op);
		tlb_flush_range(mmu, gfn, npages);
	}
	mmu->st.last_invalidation_ns = mmu_now_ns() - t0;
}

/* Checks a guest range: page aligned, non-empty, inside 48 bits. */
static int mmu_range_check(uint64_t gpa, uint64_t size)
{
	if ((gpa | size) & (MMU_PAGE_SIZE - 1) || size == 0)
		return -EINVAL;
	if (gpa >= (1ull << MMU_GPA_BITS) ||
	    size > (1ull << MMU_GPA_BITS) - gpa)
		return -EINVAL;
	return 0;
}

static uint64_t *dirty_bitmap_alloc(uint64_t npages)
{
	return calloc((npages + 63) / 64, sizeof(uint64_t));
}

/* Called with mmu->lock held.  Publishes a set holding slot. */
static int mmu_slot_insert(struct mmu *mmu, const struct mmu_slot *slot,
			   struct mmu_op *op)
{
	struct slot_set *set;

	if (slots_find_id(mmu, mmu->slots, slot->id) ||
	    slots_overlap(mmu->slots, slot->gfn, slot->npages, UINT32_MAX))
		return -EEXIST;
	set = slots_copy_insert(mmu, mmu->slots, slot);
	if (!set)
		return -ENOMEM;
	slots_publish(mmu, set, op);
	return 0;
}

int mmu_slot_create(struct mmu *mmu, uint32_t id, uint64_t gpa,
		    uint64_t size, void *hva, uint32_t flags)
{
	struct mmu_slot slot = { id, flags, gpa >> MMU_PAGE_SHIFT,
				 size >> MMU_PAGE_SHIFT, (uintptr_t)hva, NULL };
	struct mmu_op op = { NULL };
	int ret = mmu_range_check(gpa, size);

	if (ret || ((uintptr_t)hva & (MMU_PAGE_SIZE - 1)) || !hva ||
	    (flags & ~SLOT_FLAGS) || id == UINT32_MAX)
		return -EINVAL;
	if ((flags & MMU_SLOT_DIRTY_LOG) &&
	    !(slot.dirty = dirty_bitmap_alloc(slot.npages)))
		return -ENOMEM;
	pthread_mutex_lock(&mmu->lock);
	ret = mmu_slot_insert(mmu, &slot, &op);
	pthread_mutex_unlock(&mmu->lock);
	op_commit(mmu, &op);
	if (ret)
		free(slot.dirty);
	return ret;
}

/* call_rcu callback: no reader can reach the deleted slot's memory. */
static void slot_release_cb(struct rcu_head *rh)
{
	struct mmu_defer *d;
	struct slot_release *rel;
	struct mmu *mmu;

	RCU_TSAN_ACQUIRE();
	d = caa_container_of(rh, struct mmu_defer, rh);
	rel = caa_container_of(d, struct slot_release, defer);
	mmu = d->mmu;
	rel->fn(rel->arg);
	free(rel);
	op_done(mmu);
}

/* Called with mmu->lock held.  Unpublishes slot id and zaps its range. */
static int mmu_slot_remove(struct mmu *mmu, uint32_t id, struct mmu_op *op)
{
	const struct mmu_slot *s = slots_find_id(mmu, mmu->slots, id);
	struct mmu_slot old;
	struct slot_set *set;

	if (!s)
		return -ENOENT;
	old = *s;
	set = slots_copy_remove(mmu, mmu->slots, id);
	if (!set)
		return -ENOMEM;
	slots_publish(mmu, set, op);
	mmu_invalidate(mmu, old.gfn, old.npages, true, op);
	free(old.dirty);
	return 0;
}

int mmu_slot_delete(struct mmu *mmu, uint32_t id, mmu_release_fn release_fn,
		    void *release_arg)
{
	struct slot_release *rel = NULL;
	struct mmu_op op = { NULL };
	int ret;

	if (release_fn) {
		rel = calloc(1, sizeof(*rel));
		if (!rel)
			return -ENOMEM;
		rel->fn = release_fn;
		rel->arg = release_arg;
		rel->defer.mmu = mmu;
	}
	pthread_mutex_lock(&mmu->lock);
	ret = mmu_slot_remove(mmu, id, &op);
	if (!ret && rel) {
		op_defer(&op, &rel->defer, slot_release_cb);
		rel = NULL;
	}
	pthread_mutex_unlock(&mmu->lock);
	/* The release is queued after the TLB flush: its grace period covers
	 * every reader that could still hold the old hva. */
	op_commit(mmu, &op);
	free(rel);
	return ret;
}

int mmu_release_after_grace(struct mmu *mmu, mmu_release_fn fn, void *arg)
{
	struct slot_release *rel = calloc(1, sizeof(*rel));
	struct mmu_op op = { NULL };

	if (!rel)
		return -ENOMEM;
	rel->fn = fn;
	rel->arg = arg;
	rel->defer.mmu = mmu;
	op_defer(&op, &rel->defer, slot_release_cb);
	/* RCU: fn runs once every reader online now has quiesced. */
	op_commit(mmu, &op);
	return 0;
}

/* Called with mmu->lock held.  Moves slot s to new_gfn and zaps the old
 * range with the VM's policy. */
static int mmu_slot_relocate(struct mmu *mmu, const struct mmu_slot *s,
			     uint64_t new_gfn, struct mmu_op *op)
{
	struct mmu_slot moved = *s;
	struct slot_set *set;

	if (slots_overlap(mmu->slots, new_gfn, s->npages, s->id))
		return -EEXIST;
	moved.gfn = new_gfn;
	set = slots_copy_move(mmu, mmu->slots, &moved);
	if (!set)
		return -ENOMEM;
	slots_publish(mmu, set, op);
	mmu_invalidate(mmu, s->gfn, s->npages, true, op);
	return 0;
}

int mmu_slot_move(struct mmu *mmu, uint32_t id, uint64_t new_gpa)
{
	struct mmu_op op = { NULL };
	const struct mmu_slot *s;
	int ret;

	pthread_mutex_lock(&mmu->lock);
	s = slots_find_id(mmu, mmu->slots, id);
	if (!s)
		ret = -ENOENT;
	else if ((ret = mmu_range_check(new_gpa, s->npages << MMU_PAGE_SHIFT)))
		;
	else if ((new_gpa >> MMU_PAGE_SHIFT) != s->gfn)
		ret = mmu_slot_relocate(mmu, s, new_gpa >> MMU_PAGE_SHIFT, &op);
	pthread_mutex_unlock(&mmu->lock);
	op_commit(mmu, &op);
	return ret;
}

/* Called with mmu->lock held.  Starts dirty logging on s (a copy about to
 * be published): eager split and write protection, no vCPU involved. */
static int mmu_dirty_log_start(struct mmu *mmu, struct mmu_slot *s)
{
	int ret;

	s->dirty = dirty_bitmap_alloc(s->npages);
	if (!s->dirty)
		return -ENOMEM;
	ret = pt_split_range(mmu, s->gfn, s->npages);
	/* Split or not, writable entries may be cached: drop them. */
	tlb_flush_range(mmu, s->gfn, s->npages);
	if (ret) {
		free(s->dirty);
		s->dirty = NULL;
	}
	return ret;
}

/* Called with mmu->lock held.  Applies a flag change to the copy s. */
static int mmu_slot_reflag(struct mmu *mmu, struct mmu_slot *s,
			   uint32_t flags, struct mmu_op *op)
{
	uint32_t changed = s->flags ^ flags;
	int ret = 0;

	if ((changed & MMU_SLOT_DIRTY_LOG) && (flags & MMU_SLOT_DIRTY_LOG))
		ret = mmu_dirty_log_start(mmu, s);
	if (ret)
		return ret;
	if (changed & MMU_SLOT_READONLY)
		mmu_invalidate(mmu, s->gfn, s->npages, true, op);
	if ((changed & MMU_SLOT_DIRTY_LOG) && !(flags & MMU_SLOT_DIRTY_LOG)) {
		/* Zap precisely so the range refaults with huge leaves. */
		if (!(changed & MMU_SLOT_READONLY))
			mmu_invalidate(mmu, s->gfn, s->npages, false, op);
		free(s->dirty);
		s->dirty = NULL;
	}
	s->flags = flags;
	return 0;
}

int mmu_slot_set_flags(struct mmu *mmu, uint32_t id, uint32_t flags)
{
	struct mmu_op op = { NULL };
	const struct mmu_slot *cur;
	struct slot_set *set;
	struct mmu_slot *s;
	int ret = 0;

	if (flags & ~SLOT_FLAGS)
		return -EINVAL;
	pthread_mutex_lock(&mmu->lock);
	cur = slots_find_id(mmu, mmu->slots, id);
	if (!cur || cur->flags == flags) {
		ret = cur ? 0 : -ENOENT;
		goto out;
	}
	/* The copy's chunk holding id is its own: readers of the published
	 * set never see the slot change under them. */
	set = slots_copy(mmu, mmu->slots);
	s = set ? slots_edit(mmu, set, id) : NULL;
	if (!s)
		ret = -ENOMEM;
	else
		ret = mmu_slot_reflag(mmu, s, flags, &op);
	if (ret)
		slots_discard(set);
	else
		slots_publish(mmu, set, &op);
out:
	pthread_mutex_unlock(&mmu->lock);
	op_commit(mmu, &op);
	return ret;
}

void mmu_synchronize(struct mmu *mmu)
{
	(void)mmu;
	rcu_wait_grace();
}

void mmu_barrier(struct mmu *mmu)
{
	(void)mmu;
	rcu_wait_callbacks();
}

/* Called with mmu->lock held.  Copies s's dirty bits out, clearing them
 * and write-protecting the pages again when clear; returns pages found. */
static uint64_t mmu_dirty_collect(struct mmu *mmu, const struct mmu_slot *s,
				  uint64_t *bitmap, bool clear)
{
	uint64_t found = 0;

	for (uint64_t w = 0; w < (s->npages + 63) / 64; w++) {
		uint64_t v = s->dirty[w];

		bitmap[w] = v;
		found += (uint64_t)__builtin_popcountll(v);
		if (!clear || !v)
			continue;
		s->dirty[w] = 0;
		for (; v; v &= v - 1)
			pt_wrprot_page(mmu, s->gfn + w * 64 +
					    (uint64_t)__builtin_ctzll(v));
	}
	if (clear && found)
		tlb_flush_range(mmu, s->gfn, s->npages);
	return found;
}

int mmu_dirty_log_get(struct mmu *mmu, uint32_t id, uint64_t *bitmap,
		      size_t bytes, bool clear)
{
	const struct mmu_slot *s;
	uint64_t found = 0;
	int ret = 0;

	pthread_mutex_lock(&mmu->lock);
	s = slots_find_id(mmu, mmu->slots, id);
	if (!s)
		ret = -ENOENT;
	else if (!(s->flags & MMU_SLOT_DIRTY_LOG))
		ret = -EINVAL;
	else if (bytes < (s->npages + 63) / 64 * sizeof(uint64_t))
		ret = -ENOSPC;
	else
		found = mmu_dirty_collect(mmu, s, bitmap, clear);
	pthread_mutex_unlock(&mmu->lock);
	/* Writes through translations taken before the re-protection land in
	 * memory before we return (they end by the readers' next QS). */
	if (found && clear)
		rcu_wait_grace();
	return ret;
}

void mmu_stats_get(struct mmu *mmu, struct mmu_stats *st)
{
	pthread_mutex_lock(&mmu->lock);
	*st = mmu->st;
	st->tables_freed = ATOMIC_LOAD(&mmu->tables_freed);
	st->rcu_pending = ATOMIC_LOAD(&mmu->rcu_pending);
	st->pages_4k = mmu->root->nr_leaves[0];
	st->pages_2m = mmu->root->nr_leaves[1];
	st->pages_1g = mmu->root->nr_leaves[2];
	st->tables = mmu->root->nr_tables;
	st->generation = ATOMIC_LOAD(&mmu->generation);
	st->slot_zap_all = mmu->zap_all;
	pthread_mutex_unlock(&mmu->lock);
}
