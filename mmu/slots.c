/* The memslot set: a sorted array, copied on change and RCU-published. */
#include <stdlib.h>
#include <string.h>

#include "mmu/internal.h"

/* call_rcu callback: no reader still searches the old array. */
static void slots_free_cb(struct rcu_head *rh)
{
	struct mmu_defer *d;
	struct mmu *mmu;

	RCU_TSAN_ACQUIRE();
	d = caa_container_of(rh, struct mmu_defer, rh);
	mmu = d->mmu;
	free(caa_container_of(d, struct slot_set, defer));
	op_done(mmu);
}

/* A set of n slots whose entries the caller fills (not zeroed: every
 * change copies the whole array, and zeroing it first doubled that). */
struct slot_set *slots_alloc(struct mmu *mmu, size_t n)
{
	struct slot_set *set = malloc(sizeof(*set) + n * sizeof(set->s[0]));

	if (set) {
		memset(set, 0, sizeof(*set));
		set->n = n;
		set->defer.mmu = mmu;
	}
	return set;
}

/* Binary search for the slot holding gfn; NULL when none (MMIO). */
const struct mmu_slot *slots_find_gfn(const struct slot_set *set, uint64_t gfn)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct mmu_slot *s = &set->s[mid];

		if (gfn < s->gfn)
			hi = mid;
		else if (gfn >= s->gfn + s->npages)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

struct mmu_slot *slots_find_id(struct slot_set *set, uint32_t id)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->s[i].id == id)
			return &set->s[i];
	return NULL;
}

/* Index of the first slot whose gfn is >= gfn (the set is sorted). */
static size_t slots_lower_bound(const struct slot_set *set, uint64_t gfn)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (set->s[mid].gfn < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Whether [gfn, gfn + npages) meets a slot other than skip_id.  Slots are
 * sorted and disjoint, so only the one before the lower bound and those
 * starting before the range's end can meet it: O(log n) plus the hits. */
bool slots_overlap(const struct slot_set *set, uint64_t gfn, uint64_t npages,
		   uint32_t skip_id)
{
	size_t i = slots_lower_bound(set, gfn);

	for (i = i ? i - 1 : 0; i < set->n && set->s[i].gfn < gfn + npages; i++) {
		const struct mmu_slot *s = &set->s[i];

		if (s->id != skip_id && gfn < s->gfn + s->npages)
			return true;
	}
	return false;
}

/* A plain copy of set; NULL on -ENOMEM. */
struct slot_set *slots_copy(struct mmu *mmu, const struct slot_set *set)
{
	struct slot_set *n = slots_alloc(mmu, set->n);

	if (n)
		memcpy(n->s, set->s, set->n * sizeof(n->s[0]));
	return n;
}

/* A copy of set with slot added in gfn order; NULL on -ENOMEM. */
struct slot_set *slots_copy_insert(struct mmu *mmu, const struct slot_set *set,
				   const struct mmu_slot *slot)
{
	struct slot_set *n = slots_alloc(mmu, set->n + 1);
	size_t at = slots_lower_bound(set, slot->gfn);

	if (!n)
		return NULL;
	memcpy(n->s, set->s, at * sizeof(n->s[0]));
	n->s[at] = *slot;
	memcpy(&n->s[at + 1], &set->s[at], (set->n - at) * sizeof(n->s[0]));
	return n;
}

/* A copy of set without slot id; NULL on -ENOMEM. */
struct slot_set *slots_copy_remove(struct mmu *mmu, const struct slot_set *set,
				   uint32_t id)
{
	const struct mmu_slot *s = slots_find_id((struct slot_set *)set, id);
	size_t at = s ? (size_t)(s - set->s) : set->n;
	struct slot_set *n;

	if (at == set->n)
		return slots_copy(mmu, set);
	n = slots_alloc(mmu, set->n - 1);
	if (!n)
		return NULL;
	memcpy(n->s, set->s, at * sizeof(n->s[0]));
	memcpy(&n->s[at], &set->s[at + 1], (set->n - at - 1) * sizeof(n->s[0]));
	return n;
}

/* A copy of set with slot moved->id at moved->gfn instead (same size),
 * in one pass; NULL on -ENOMEM or when set has no such slot. */
struct slot_set *slots_copy_move(struct mmu *mmu, const struct slot_set *set,
				 const struct mmu_slot *moved)
{
	const struct mmu_slot *old = slots_find_id((struct slot_set *)set, moved->id);
	size_t at, k, sz = sizeof(set->s[0]);
	struct slot_set *n;

	if (!old || !(n = slots_alloc(mmu, set->n)))
		return NULL;
	at = (size_t)(old - set->s);
	/* Where it goes among the others: before the first at or past its
	 * new gfn (the old entry, excluded, cannot be that one: disjoint). */
	k = slots_lower_bound(set, moved->gfn);
	if (k <= at) {
		memcpy(n->s, set->s, k * sz);
		n->s[k] = *moved;
		memcpy(&n->s[k + 1], &set->s[k], (at - k) * sz);
		memcpy(&n->s[at + 1], &set->s[at + 1], (set->n - at - 1) * sz);
	} else {
		memcpy(n->s, set->s, at * sz);
		memcpy(&n->s[at], &set->s[at + 1], (k - at - 1) * sz);
		n->s[k - 1] = *moved;
		memcpy(&n->s[k], &set->s[k], (set->n - k) * sz);
	}
	return n;
}

/* Called with mmu->lock held.  Publishes set; the old one is freed after a
 * grace period, since lock-free readers may be searching it. */
void slots_publish(struct mmu *mmu, struct slot_set *set, struct mmu_op *op)
{
	struct slot_set *old = mmu->slots;

	__atomic_store_n(&mmu->slots, set, __ATOMIC_RELEASE);
	op_defer(op, &old->defer, slots_free_cb);
}
