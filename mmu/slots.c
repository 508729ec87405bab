/* The memslot set: immutable sorted chunks of slots under an RCU-published
 * array of chunk references.  A change copies that array (n / 32 entries
 * or so) and the one or two chunks it touches, never the whole set. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/internal.h"

/* The most slots a change rebuilds at once: a chunk below the minimum
 * merged with a full neighbour. */
#define SLOT_SPLICE_MAX	(SLOT_CHUNK + SLOT_CHUNK_MIN)

static void chunks_free(struct slot_chunk *c)
{
	struct slot_chunk *next;

	for (; c; c = next) {
		next = c->retired_next;
		free(c);
	}
}

/* call_rcu callback: no reader still searches the old set, nor the chunks
 * its successor dropped (the others live on in newer sets). */
static void slots_free_cb(struct rcu_head *rh)
{
	struct mmu_defer *d;
	struct slot_set *set;
	struct mmu *mmu;

	RCU_TSAN_ACQUIRE();
	d = caa_container_of(rh, struct mmu_defer, rh);
	set = caa_container_of(d, struct slot_set, defer);
	mmu = d->mmu;
	chunks_free(set->retired);
	free(set);
	op_done(mmu);
}

/* An empty set with room for cap chunk references and a new epoch. */
struct slot_set *slots_alloc(struct mmu *mmu, size_t cap)
{
	struct slot_set *set = malloc(sizeof(*set) + cap * sizeof(set->c[0]));

	if (set) {
		memset(set, 0, sizeof(*set));
		set->cap = cap;
		set->defer.mmu = mmu;
		set->epoch = ++mmu->slots_epoch;
	}
	return set;
}

/* Frees an unpublished set and the chunks it built; the ones it dropped
 * still belong to the published set. */
void slots_discard(struct slot_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->nchunks; i++)
		if (set->c[i].chunk->epoch == set->epoch)
			free(set->c[i].chunk);
	free(set);
}

/* Frees the last set, its chunks and their dirty bitmaps: no reader and no
 * callback is left (mmu_destroy). */
void slots_destroy(struct slot_set *set)
{
	for (size_t i = 0; i < set->nchunks; i++) {
		struct slot_chunk *c = set->c[i].chunk;

		for (uint32_t k = 0; k < c->n; k++)
			free(c->s[k].dirty);
		free(c);
	}
	free(set);
}

/* How many chunks start at or below gfn. */
static inline size_t refs_upper(const struct slot_set *set, uint64_t gfn)
{
	size_t lo = 0, hi = set->nchunks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (set->c[mid].gfn <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* How many slots of c start at or below gfn. */
static inline size_t chunk_upper(const struct slot_chunk *c, uint64_t gfn)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->s[mid].gfn <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The slot holding gfn; NULL when none (MMIO).  Slots are disjoint, so it
 * can only be the last one starting at or below gfn: one search for its
 * chunk, one inside it.  Lock-free: the caller loaded set with acquire
 * (or holds mmu->lock), and chunks never change once published. */
const struct mmu_slot *slots_find_gfn(const struct slot_set *set, uint64_t gfn)
{
	size_t ci = refs_upper(set, gfn);
	const struct slot_chunk *c;
	const struct mmu_slot *s;

	if (!ci)
		return NULL;
	c = set->c[ci - 1].chunk;
	s = &c->s[chunk_upper(c, gfn) - 1];
	return gfn < s->gfn + s->npages ? s : NULL;
}

/* Where the slot starting at gfn sits in set: false when none does. */
static bool slots_locate(const struct slot_set *set, uint64_t gfn,
			 size_t *ci, size_t *si)
{
	size_t c = refs_upper(set, gfn), s;

	if (!c)
		return false;
	s = chunk_upper(set->c[c - 1].chunk, gfn);
	if (set->c[c - 1].chunk->s[s - 1].gfn != gfn)
		return false;
	*ci = c - 1;
	*si = s - 1;
	return true;
}

/* Where slot id sits in set, through the index of the published set: O(1)
 * plus one search.  A set built from the published one finds every slot
 * that kept its gfn. */
static bool slots_locate_id(struct mmu *mmu, const struct slot_set *set,
			    uint32_t id, size_t *ci, size_t *si)
{
	uint64_t gfn;

	return slot_ids_get(&mmu->slot_ids, id, &gfn) &&
	       slots_locate(set, gfn, ci, si) &&
	       set->c[*ci].chunk->s[*si].id == id;
}

const struct mmu_slot *slots_find_id(struct mmu *mmu,
				     const struct slot_set *set, uint32_t id)
{
	size_t ci, si;

	if (!slots_locate_id(mmu, set, id, &ci, &si))
		return NULL;
	return &set->c[ci].chunk->s[si];
}

/* The slot before s in gfn order, moving ci/si along; NULL at the start. */
static const struct mmu_slot *slots_prev(const struct slot_set *set,
					 size_t *ci, size_t *si)
{
	if (*si == 0) {
		if (*ci == 0)
			return NULL;
		*si = set->c[--*ci].chunk->n;
	}
	return &set->c[*ci].chunk->s[--*si];
}

/* Whether [gfn, gfn + npages) meets a slot other than skip_id.  Slots are
 * sorted and disjoint, so their ends are sorted too: walk back from the
 * last slot starting inside the range until one ends at or below gfn.
 * O(log n) plus the hits (at most two, one of them skip_id). */
bool slots_overlap(const struct slot_set *set, uint64_t gfn, uint64_t npages,
		   uint32_t skip_id)
{
	size_t ci = npages ? refs_upper(set, gfn + npages - 1) : 0, si;
	const struct mmu_slot *s;

	if (!ci--)
		return false;
	si = chunk_upper(set->c[ci].chunk, gfn + npages - 1);
	while ((s = slots_prev(set, &ci, &si)) && s->gfn + s->npages > gfn)
		if (s->id != skip_id)
			return true;
	return false;
}

/* A new set referencing the same chunks, with room for two more; NULL on
 * -ENOMEM.  Copies n / 32 or so references, no slot. */
struct slot_set *slots_copy(struct mmu *mmu, const struct slot_set *set)
{
	struct slot_set *n = slots_alloc(mmu, set->nchunks + 2);

	if (n) {
		n->n = set->n;
		n->nchunks = set->nchunks;
		memcpy(n->c, set->c, set->nchunks * sizeof(n->c[0]));
	}
	return n;
}

/* A chunk for count slots of buf, built by set. */
static struct slot_chunk *chunk_build(const struct slot_set *set,
				      const struct mmu_slot *buf, size_t count)
{
	struct slot_chunk *c = malloc(sizeof(*c) + count * sizeof(c->s[0]));

	if (c) {
		c->n = (uint32_t)count;
		c->epoch = set->epoch;
		c->retired_next = NULL;
		memcpy(c->s, buf, count * sizeof(c->s[0]));
	}
	return c;
}

/* Unlinks c from the unpublished set: freed now if set built it, else
 * dropped, to be retired with the published set. */
static void chunk_drop(struct slot_set *set, struct slot_chunk *c)
{
	if (c->epoch == set->epoch) {
		free(c);
		return;
	}
	c->retired_next = set->dropped;
	set->dropped = c;
}

/* Replaces chunks [a, b) of the unpublished set by the count sorted slots
 * of buf, in as few chunks of even size as SLOT_CHUNK allows (none when
 * count is 0).  -ENOMEM leaves set as it was. */
static int slots_splice(struct slot_set *set, size_t a, size_t b,
			const struct mmu_slot *buf, size_t count)
{
	size_t m = (count + SLOT_CHUNK - 1) / SLOT_CHUNK, done = 0, old = 0;
	struct slot_chunk *fresh[SLOT_SPLICE_MAX / SLOT_CHUNK + 1];

	for (size_t i = 0; i < m; i++) {
		size_t k = (count - done) / (m - i);

		fresh[i] = chunk_build(set, buf + done, k);
		if (!fresh[i]) {
			while (i--)
				free(fresh[i]);
			return -ENOMEM;
		}
		done += k;
	}
	for (size_t i = a; i < b; i++) {
		old += set->c[i].chunk->n;
		chunk_drop(set, set->c[i].chunk);
	}
	memmove(&set->c[a + m], &set->c[b],
		(set->nchunks - b) * sizeof(set->c[0]));
	for (size_t i = 0; i < m; i++)
		set->c[a + i] = (struct slot_ref){ fresh[i]->s[0].gfn, fresh[i] };
	set->nchunks = set->nchunks - (b - a) + m;
	set->n = set->n - old + count;
	return 0;
}

/* Adds slot to the unpublished set in gfn order; a full chunk splits. */
static int slots_add(struct slot_set *set, const struct mmu_slot *slot)
{
	struct mmu_slot buf[SLOT_CHUNK + 1];
	size_t ci = refs_upper(set, slot->gfn), at;
	const struct slot_chunk *c;

	if (!set->nchunks)
		return slots_splice(set, 0, 0, slot, 1);
	ci = ci ? ci - 1 : 0;
	c = set->c[ci].chunk;
	at = chunk_upper(c, slot->gfn);
	memcpy(buf, c->s, at * sizeof(buf[0]));
	buf[at] = *slot;
	memcpy(&buf[at + 1], &c->s[at], (c->n - at) * sizeof(buf[0]));
	return slots_splice(set, ci, ci + 1, buf, c->n + 1);
}

/* Removes the slot at chunk ci, index si from the unpublished set; a chunk
 * left below SLOT_CHUNK_MIN merges with a neighbour (and splits again if
 * that overflows), so a set of n slots has at most n / SLOT_CHUNK_MIN
 * chunks whatever the order of changes. */
static int slots_del(struct slot_set *set, size_t ci, size_t si)
{
	struct mmu_slot buf[SLOT_SPLICE_MAX];
	size_t a = ci, b = ci + 1, count = 0, at = 0;

	if (set->c[ci].chunk->n <= SLOT_CHUNK_MIN && set->nchunks > 1) {
		if (b < set->nchunks)
			b++;
		else
			a--;
	}
	for (size_t i = a; i < b; i++) {
		const struct slot_chunk *c = set->c[i].chunk;

		if (i == ci)
			at = count + si;
		memcpy(&buf[count], c->s, c->n * sizeof(buf[0]));
		count += c->n;
	}
	memmove(&buf[at], &buf[at + 1], (count - at - 1) * sizeof(buf[0]));
	return slots_splice(set, a, b, buf, count - 1);
}

/* The writable slot id of the unpublished set: its chunk is copied first
 * unless set built it, since published sets may share it.  NULL on
 * -ENOMEM or when there is no such slot.  Its gfn must not change. */
struct mmu_slot *slots_edit(struct mmu *mmu, struct slot_set *set,
			    uint32_t id)
{
	size_t ci, si;

	if (!slots_locate_id(mmu, set, id, &ci, &si))
		return NULL;
	if (set->c[ci].chunk->epoch != set->epoch &&
	    slots_splice(set, ci, ci + 1, set->c[ci].chunk->s,
			 set->c[ci].chunk->n))
		return NULL;
	return &set->c[ci].chunk->s[si];
}

/* A copy of set with slot added in gfn order; NULL on -ENOMEM. */
struct slot_set *slots_copy_insert(struct mmu *mmu, const struct slot_set *set,
				   const struct mmu_slot *slot)
{
	struct slot_set *n;

	/* Publishing cannot fail: make room in the index now. */
	if (slot_ids_reserve(&mmu->slot_ids, mmu->slot_ids.n + 1))
		return NULL;
	n = slots_copy(mmu, set);
	if (!n || slots_add(n, slot)) {
		slots_discard(n);
		return NULL;
	}
	n->id_op = SLOT_ID_SET;
	n->id = slot->id;
	n->id_gfn = slot->gfn;
	return n;
}

/* A copy of set without slot id; NULL on -ENOMEM. */
struct slot_set *slots_copy_remove(struct mmu *mmu, const struct slot_set *set,
				   uint32_t id)
{
	struct slot_set *n = slots_copy(mmu, set);
	size_t ci, si;

	if (!n || !slots_locate_id(mmu, n, id, &ci, &si))
		return n;
	if (slots_del(n, ci, si)) {
		slots_discard(n);
		return NULL;
	}
	n->id_op = SLOT_ID_DEL;
	n->id = id;
	return n;
}

/* A copy of set with slot moved->id at moved->gfn instead; NULL on
 * -ENOMEM or when set has no such slot.  Touches at most the chunks of
 * the old and the new place. */
struct slot_set *slots_copy_move(struct mmu *mmu, const struct slot_set *set,
				 const struct mmu_slot *moved)
{
	struct slot_set *n = slots_copy(mmu, set);
	size_t ci, si;

	if (!n)
		return NULL;
	if (!slots_locate_id(mmu, n, moved->id, &ci, &si) ||
	    slots_del(n, ci, si) || slots_add(n, moved)) {
		slots_discard(n);
		return NULL;
	}
	n->id_op = SLOT_ID_SET;
	n->id = moved->id;
	n->id_gfn = moved->gfn;
	return n;
}

/* Called with mmu->lock held.  Publishes set; the old one, and the chunks
 * set no longer references, are freed after a grace period, since
 * lock-free readers may be searching them. */
void slots_publish(struct mmu *mmu, struct slot_set *set, struct mmu_op *op)
{
	struct slot_set *old = mmu->slots;

	old->retired = set->dropped;
	set->dropped = NULL;
	if (set->id_op == SLOT_ID_SET)
		slot_ids_set(&mmu->slot_ids, set->id, set->id_gfn);
	else if (set->id_op == SLOT_ID_DEL)
		slot_ids_del(&mmu->slot_ids, set->id);
	set->id_op = SLOT_ID_KEEP;
	__atomic_store_n(&mmu->slots, set, __ATOMIC_RELEASE);
	op_defer(op, &old->defer, slots_free_cb);
}
