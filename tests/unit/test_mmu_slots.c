/* The chunked slot set (mmu/slots.c): thousands of slots changed in random
 * order against a brute-force model, chunk invariants after every change,
 * copy-on-write of shared chunks, and lock-free readers during splits and
 * merges. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/internal.h"
#include "tests/lib/mmu_ref.h"

#define HVA_BASE	0x100000000000ull	/* never dereferenced */
#define POSITIONS	4096			/* 4 pages each */
#define NIDS		2048
#define ID(i)		((uint32_t)(i) * 7919u + 3)	/* sparse ids */

/* The model: which position each id holds, and its extent. */
struct model {
	struct mmu *mmu;
	unsigned seed;
	int pos_of[NIDS];		/* -1: no slot */
	int id_at[POSITIONS];		/* -1: free */
	uint64_t gfn[NIDS], npages[NIDS];
	uint32_t flags[NIDS];
	size_t n;
};

static struct model *M;

static void model_close(void)
{
	if (M)
		mmu_destroy(M->mmu);
	free(M);
	M = NULL;
}

static void model_open(unsigned seed)
{
	struct mmu_config cfg = { MMU_VM_DEFAULT, true, false };

	M = calloc(1, sizeof(*M));
	M->seed = seed;
	memset(M->pos_of, -1, sizeof(M->pos_of));
	memset(M->id_at, -1, sizeof(M->id_at));
	MMU_EXPECT_EQ(mmu_create(&cfg, &M->mmu), 0);
}

TestSuite(mmu_slots, .fini = model_close);

static unsigned rnd(unsigned n)
{
	return (unsigned)rand_r(&M->seed) % n;
}

static int free_pos(void)
{
	unsigned p = rnd(POSITIONS);

	for (unsigned k = 0; k < POSITIONS; k++, p = (p + 1) % POSITIONS)
		if (M->id_at[p] < 0)
			return (int)p;
	return -1;
}

/* Creates slot i (1..4 pages somewhere inside position pos). */
static void model_create(int i, int pos)
{
	uint64_t np = 1 + rnd(4), gfn = (uint64_t)pos * 4 + rnd(5 - np);

	MMU_EXPECT_EQ(mmu_slot_create(M->mmu, ID(i), gfn << 12, np << 12,
				      (void *)(uintptr_t)(HVA_BASE + (gfn << 12)),
				      0),
		      0);
	M->pos_of[i] = pos;
	M->id_at[pos] = i;
	M->gfn[i] = gfn;
	M->npages[i] = np;
	M->flags[i] = 0;
	M->n++;
}

static void model_delete(int i)
{
	MMU_EXPECT_EQ(mmu_slot_delete(M->mmu, ID(i), NULL, NULL), 0);
	M->id_at[M->pos_of[i]] = -1;
	M->pos_of[i] = -1;
	M->n--;
}

static void model_move(int i, int pos)
{
	uint64_t gfn = (uint64_t)pos * 4 + rnd(5 - M->npages[i]);

	MMU_EXPECT_EQ(mmu_slot_move(M->mmu, ID(i), gfn << 12), 0);
	M->id_at[M->pos_of[i]] = -1;
	M->id_at[pos] = i;
	M->pos_of[i] = pos;
	M->gfn[i] = gfn;
}

static void model_reflag(int i)
{
	M->flags[i] ^= MMU_SLOT_READONLY;
	MMU_EXPECT_EQ(mmu_slot_set_flags(M->mmu, ID(i), M->flags[i]), 0);
}

/* A random live slot index; -1 when none. */
static int live_slot(void)
{
	unsigned i = rnd(NIDS);

	for (unsigned k = 0; k < NIDS; k++, i = (i + 1) % NIDS)
		if (M->pos_of[i] >= 0)
			return (int)i;
	return -1;
}

/* A random id without a slot. */
static int dead_slot(void)
{
	unsigned i = rnd(NIDS);

	while (M->pos_of[i] >= 0)
		i = (i + 1) % NIDS;
	return (int)i;
}

/* Chunk sizes, order, first gfns and the slot count. */
static void check_chunks(const struct slot_set *set)
{
	uint64_t end = 0;
	size_t total = 0;

	for (size_t c = 0; c < set->nchunks; c++) {
		const struct slot_chunk *k = set->c[c].chunk;

		cr_assert(k->n >= 1 && k->n <= SLOT_CHUNK,
			  "chunk %zu: expected 1..%d slots, got %u", c,
			  SLOT_CHUNK, k->n);
		cr_assert(set->nchunks == 1 || k->n >= SLOT_CHUNK_MIN,
			  "chunk %zu of %zu: expected >= %d slots, got %u", c,
			  set->nchunks, SLOT_CHUNK_MIN, k->n);
		MMU_EXPECT(set->c[c].gfn, k->s[0].gfn, "chunk first gfn");
		for (uint32_t s = 0; s < k->n; s++) {
			cr_assert(k->s[s].gfn >= end,
				  "slot %u of chunk %zu at gfn %#llx overlaps "
				  "or precedes one ending at %#llx", s, c,
				  (unsigned long long)k->s[s].gfn,
				  (unsigned long long)end);
			end = k->s[s].gfn + k->s[s].npages;
		}
		total += k->n;
	}
	MMU_EXPECT(total, M->n, "slots in chunks");
	MMU_EXPECT(set->n, M->n, "set->n");
}

/* Every live slot by gfn (first, last page) and by id; gaps find none. */
static void check_lookups(const struct slot_set *set)
{
	for (int i = 0; i < NIDS; i++) {
		const struct mmu_slot *s;

		if (M->pos_of[i] < 0) {
			cr_assert_null(slots_find_id(M->mmu, set, ID(i)),
				       "deleted id %u still found", ID(i));
			continue;
		}
		s = slots_find_id(M->mmu, set, ID(i));
		cr_assert_not_null(s, "id %u not found", ID(i));
		MMU_EXPECT(s->gfn, M->gfn[i], "gfn by id");
		MMU_EXPECT(s->flags, M->flags[i], "flags by id");
		MMU_EXPECT(slots_find_gfn(set, M->gfn[i]), s, "first page");
		MMU_EXPECT(slots_find_gfn(set, M->gfn[i] + M->npages[i] - 1), s,
			   "last page");
	}
	for (int p = 0; p < POSITIONS; p++) {
		int i = M->id_at[p];

		for (uint64_t g = (uint64_t)p * 4; g < (uint64_t)p * 4 + 4; g++)
			if (i < 0 || g < M->gfn[i] ||
			    g >= M->gfn[i] + M->npages[i])
				cr_assert_null(slots_find_gfn(set, g),
					       "gfn %#llx in a gap found a slot",
					       (unsigned long long)g);
	}
}

static bool brute_overlap(uint64_t gfn, uint64_t np, uint32_t skip)
{
	for (int i = 0; i < NIDS; i++)
		if (M->pos_of[i] >= 0 && ID(i) != skip &&
		    gfn < M->gfn[i] + M->npages[i] && M->gfn[i] < gfn + np)
			return true;
	return false;
}

static void check_overlap(const struct slot_set *set, unsigned probes)
{
	for (unsigned k = 0; k < probes; k++) {
		uint64_t gfn = rnd(POSITIONS * 4 + 8), np = 1 + rnd(k % 4 ? 6 : 64);
		int skip = live_slot();
		uint32_t id = skip >= 0 && rnd(2) ? ID(skip) : UINT32_MAX;

		cr_assert_eq(slots_overlap(set, gfn, np, id),
			     brute_overlap(gfn, np, id),
			     "overlap of [%#llx, +%llu) skipping %u: expected %d",
			     (unsigned long long)gfn, (unsigned long long)np, id,
			     brute_overlap(gfn, np, id));
	}
}

/* Called between changes: the writer lock keeps the set still. */
static void check_all(unsigned probes)
{
	pthread_mutex_lock(&M->mmu->lock);
	check_chunks(M->mmu->slots);
	check_lookups(M->mmu->slots);
	check_overlap(M->mmu->slots, probes);
	pthread_mutex_unlock(&M->mmu->lock);
}

/* One random change, biased to grow the set up to target slots. */
static void random_change(size_t target)
{
	unsigned k = rnd(10);
	int i = live_slot();

	if (i < 0 || (M->n < target && k < 5)) {
		model_create(dead_slot(), free_pos());
	} else if (k < 7) {
		model_delete(i);
	} else if (k < 9) {
		model_move(i, free_pos());
	} else {
		model_reflag(i);
	}
}

Test(mmu_slots, random_changes_keep_every_slot_findable, .timeout = 120)
{
	unsigned steps = mmu_ref_scale(600);
	unsigned order[NIDS];

	model_open(1);
	/* 1500 slots created in random order: every chunk splits. */
	for (unsigned i = 0; i < NIDS; i++)
		order[i] = i;
	for (unsigned i = NIDS - 1; i > 0; i--) {
		unsigned j = rnd(i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned i = 0; i < 1500; i++) {
		model_create((int)order[i], free_pos());
		if (i % 97 == 0)
			check_all(8);
	}
	check_all(200);
	for (unsigned s = 0; s < steps; s++) {
		random_change(1500);
		check_all(16);
	}
	/* Drain to empty, one random slot at a time: chunks merge, then the
	 * last one goes. */
	while (M->n) {
		model_delete(live_slot());
		if (M->n % 31 == 0 || M->n < 70)
			check_all(4);
	}
	MMU_EXPECT(M->mmu->slots->nchunks, 0, "chunks of an empty set");
	MMU_EXPECT(M->mmu->slot_ids.n, 0, "ids indexed");
	model_create(5, 17);
	check_all(32);
}

Test(mmu_slots, duplicates_and_overlaps_are_refused)
{
	model_open(2);
	for (int i = 0; i < 300; i++)
		model_create(i, i * 3);
	MMU_EXPECT_EQ(mmu_slot_create(M->mmu, ID(7), 1ull << 40, 4096,
				      (void *)(uintptr_t)HVA_BASE, 0),
		      -EEXIST);
	MMU_EXPECT_EQ(mmu_slot_create(M->mmu, ID(1000), M->gfn[150] << 12,
				      4096, (void *)(uintptr_t)HVA_BASE, 0),
		      -EEXIST);
	MMU_EXPECT_EQ(mmu_slot_move(M->mmu, ID(10), M->gfn[11] << 12), -EEXIST);
	MMU_EXPECT_EQ(mmu_slot_delete(M->mmu, ID(1000), NULL, NULL), -ENOENT);
	MMU_EXPECT_EQ(mmu_slot_set_flags(M->mmu, ID(1000), 0), -ENOENT);
	check_all(200);
}

/* Chunk pointers of set, for comparing consecutive sets. */
static size_t chunks_not_in(const struct slot_set *a, const struct slot_set *b)
{
	size_t missing = 0;

	for (size_t i = 0; i < a->nchunks; i++) {
		bool found = false;

		for (size_t j = 0; j < b->nchunks && !found; j++)
			found = a->c[i].chunk == b->c[j].chunk;
		missing += !found;
	}
	return missing;
}

Test(mmu_slots, set_flags_copies_the_shared_chunk_only)
{
	struct slot_set *old, *cur;
	struct slot_chunk *saved[64];
	struct mmu_slot *copies[64];
	const struct mmu_slot *s;
	size_t nchunks;

	model_open(3);
	for (int i = 0; i < 400; i++)
		model_create(i, i);
	/* Online reader: the old set and its chunks outlive the change. */
	MMU_EXPECT_EQ(mmu_reader_register(M->mmu), 0);
	old = __atomic_load_n(&M->mmu->slots, __ATOMIC_ACQUIRE);
	nchunks = old->nchunks;
	cr_assert(nchunks > 2 && nchunks <= 64, "expected several chunks, got %zu",
		  nchunks);
	for (size_t c = 0; c < nchunks; c++) {
		saved[c] = old->c[c].chunk;
		copies[c] = malloc(saved[c]->n * sizeof(copies[c][0]));
		memcpy(copies[c], saved[c]->s, saved[c]->n * sizeof(copies[c][0]));
	}
	model_reflag(200);
	cur = __atomic_load_n(&M->mmu->slots, __ATOMIC_ACQUIRE);
	cr_assert_neq(cur, old, "set_flags published no new set");
	/* The old set reads as before: same chunks, same bytes. */
	MMU_EXPECT(old->nchunks, nchunks, "old set's chunks");
	for (size_t c = 0; c < nchunks; c++) {
		cr_assert_eq(old->c[c].chunk, saved[c], "old chunk %zu replaced", c);
		cr_assert(!memcmp(copies[c], saved[c]->s,
				  saved[c]->n * sizeof(copies[c][0])),
			  "old chunk %zu changed in place", c);
		free(copies[c]);
	}
	MMU_EXPECT(slots_find_gfn(old, M->gfn[200])->flags, 0, "old flags");
	s = slots_find_gfn(cur, M->gfn[200]);
	MMU_EXPECT(s->flags, MMU_SLOT_READONLY, "new flags");
	MMU_EXPECT(chunks_not_in(cur, old), 1, "chunks the change built");
	MMU_EXPECT(chunks_not_in(old, cur), 1, "chunks the change dropped");
	mmu_reader_unregister(M->mmu);
	pthread_mutex_lock(&M->mmu->lock);
	check_chunks(M->mmu->slots);
	check_lookups(M->mmu->slots);
	pthread_mutex_unlock(&M->mmu->lock);
}

Test(mmu_slots, a_change_rebuilds_at_most_two_chunks_per_place)
{
	unsigned steps = mmu_ref_scale(400);

	model_open(4);
	for (int i = 0; i < 1200; i++)
		model_create(i, free_pos());
	MMU_EXPECT_EQ(mmu_reader_register(M->mmu), 0);
	for (unsigned s = 0; s < steps; s++) {
		const struct slot_set *old = M->mmu->slots, *cur;
		unsigned k = rnd(3);
		int i = live_slot();

		if (k == 0)
			model_delete(i);
		else if (k == 1)
			model_create(dead_slot(), free_pos());
		else
			model_move(i, free_pos());
		cur = M->mmu->slots;
		/* A move touches two places, the others one. */
		cr_assert(chunks_not_in(cur, old) <= (k == 2 ? 4u : 2u),
			  "step %u (kind %u): %zu chunks built", s, k,
			  chunks_not_in(cur, old));
		cr_assert(chunks_not_in(old, cur) <= (k == 2 ? 4u : 2u),
			  "step %u (kind %u): %zu chunks dropped", s, k,
			  chunks_not_in(old, cur));
		mmu_reader_quiescent();
	}
	mmu_reader_unregister(M->mmu);
	check_all(64);
}

/* Readers translate while the writer splits and merges chunks: slots that
 * never change must always translate, others only to their own hva. */
struct churn_reader {
	pthread_t th;
	unsigned seed;
	uint64_t checked;
};

static int churn_stop;
static uint64_t churn_violations;

#define FIXED_EVERY	4	/* positions 0, 4, 8, ... hold fixed slots */

static void *churn_reader_main(void *p)
{
	struct churn_reader *r = p;

	MMU_EXPECT_EQ(mmu_reader_register(M->mmu), 0);
	while (!__atomic_load_n(&churn_stop, __ATOMIC_ACQUIRE)) {
		uint64_t gfn = (uint64_t)rand_r(&r->seed) % (POSITIONS * 4);
		bool fixed = (gfn / 4) % FIXED_EVERY == 0;
		void *hva;
		int ret = mmu_translate(M->mmu, gfn << 12, 8, MMU_ACCESS_READ,
					&hva);

		/* Fixed slots are one page at the position's start. */
		if (fixed && gfn % 4 == 0 && ret != 0)
			__atomic_add_fetch(&churn_violations, 1, __ATOMIC_RELAXED);
		if (ret == 0 && (uintptr_t)hva != HVA_BASE + (gfn << 12))
			__atomic_add_fetch(&churn_violations, 1, __ATOMIC_RELAXED);
		r->checked++;
		mmu_reader_quiescent();
	}
	mmu_reader_unregister(M->mmu);
	return NULL;
}

Test(mmu_slots, readers_keep_finding_slots_while_chunks_split_and_merge,
     .timeout = 120)
{
	struct churn_reader readers[2];
	unsigned ops = mmu_ref_scale(6000);
	uint64_t checked = 0;
	int fixed = 0;

	model_open(5);
	for (int p = 0; p < POSITIONS && fixed < NIDS / 2; p += FIXED_EVERY) {
		MMU_EXPECT_EQ(mmu_slot_create(M->mmu, ID(fixed), (uint64_t)p << 14,
					      4096,
					      (void *)(uintptr_t)(HVA_BASE +
								  ((uint64_t)p << 14)),
					      0),
			      0);
		M->id_at[p] = fixed++;
	}
	for (int i = 0; i < 2; i++) {
		readers[i] = (struct churn_reader){ .seed = 50 + (unsigned)i };
		pthread_create(&readers[i].th, NULL, churn_reader_main,
			       &readers[i]);
	}
	/* Churn the ids above the fixed ones at free positions; no moves: a
	 * moved slot keeps its hva, which the readers' check cannot tell. */
	for (unsigned s = 0; s < ops; s++) {
		int i = fixed + (int)rnd(NIDS - (unsigned)fixed);

		if (M->pos_of[i] < 0)
			model_create(i, free_pos());
		else if (rnd(4))
			model_delete(i);
		else
			model_reflag(i);
	}
	__atomic_store_n(&churn_stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++) {
		pthread_join(readers[i].th, NULL);
		checked += readers[i].checked;
	}
	MMU_EXPECT(__atomic_load_n(&churn_violations, __ATOMIC_RELAXED), 0,
		   "translations missing or wrong");
	cr_assert_gt(checked, 0, "readers translated nothing");
	cr_log_info("%u changes, %llu translations checked", ops,
		    (unsigned long long)checked);
}
