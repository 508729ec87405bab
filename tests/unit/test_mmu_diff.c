/* mmu engine against the reference model: random slot operations, and
 * after each one probed GPAs must translate exactly as the model says. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/mmu.h"
#include "tests/lib/mmu_ref.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define HVA_BASE 0x100000000000ull /* never dereferenced */
#define MAX_ID 64

struct diff_param {
	enum mmu_vm_type type;
	bool precise;
	bool tlb_off;
	unsigned seed;
};

struct diff {
	struct mmu *mmu;
	struct mmu_ref ref;
	unsigned seed;
	bool protected_vm;
	uint64_t probes;
	uint64_t recent[8];
};

static uint64_t rnd(struct diff *d, uint64_t n)
{
	uint64_t r =
		((uint64_t)rand_r(&d->seed) << 31) ^ (uint64_t)rand_r(&d->seed);

	return n ? r % n : 0;
}

/* A guest address: mostly in a dense 64 MiB window, sometimes far out. */
static uint64_t rnd_gpa(struct diff *d)
{
	switch (rnd(d, 4)) {
	case 0:
		return rnd(d, 16) * GiB;
	case 1:
		return rnd(d, 8 * 512) * 2 * MiB;
	default:
		return rnd(d, 64 * MiB / (4 * KiB)) * 4 * KiB;
	}
}

static uint64_t rnd_size(struct diff *d)
{
	switch (rnd(d, 8)) {
	case 0:
		return (1 + rnd(d, 4)) * 2 * MiB + rnd(d, 3) * 4 * KiB;
	case 1:
		return rnd(d, 40) == 0 ? 1 * GiB : 2 * MiB;
	default:
		return (1 + rnd(d, 16)) * 4 * KiB;
	}
}

/* A host address congruent to gpa modulo 1 GiB, 2 MiB or only 4 KiB. */
static uintptr_t rnd_hva(struct diff *d, uint64_t gpa)
{
	uint64_t base = HVA_BASE + rnd(d, 4096) * GiB;

	switch (rnd(d, 3)) {
	case 0:
		return base + gpa % GiB;
	case 1:
		return base + rnd(d, 512) * 2 * MiB + gpa % (2 * MiB);
	default:
		return base + rnd(d, 262144) * 4 * KiB;
	}
}

static void check_eq(struct diff *d, const char *what, int got, int want)
{
	cr_assert_eq(got, want, "seed %u probe %llu %s: expected %d, got %d",
		     d->seed, (unsigned long long)d->probes, what, want, got);
}

/* Translates one range with the engine and the model; they must agree. */
static void probe(struct diff *d, uint64_t gpa, size_t len, unsigned access)
{
	uintptr_t want = 0;
	void *got = NULL;
	int rw = mmu_ref_translate(&d->ref, gpa, len, access, &want);
	int rg = mmu_translate(d->mmu, gpa, len, access, &got);

	d->probes++;
	cr_assert(rg == rw && (rg || (uintptr_t)got == want),
		  "probe %llu gpa %#llx len %zu access %u: expected %d/%#lx, "
		  "got %d/%p",
		  (unsigned long long)d->probes, (unsigned long long)gpa, len,
		  access, rw, (unsigned long)want, rg, got);
	d->recent[d->probes % 8] = gpa;
}

static void probe_all(struct diff *d)
{
	unsigned acc = rnd(d, 3) ? MMU_ACCESS_READ : MMU_ACCESS_WRITE;

	for (int i = 0; i < 4 && d->ref.n; i++) {
		struct mmu_ref_slot *s = &d->ref.slots[rnd(d, d->ref.n)];

		probe(d, s->gpa + rnd(d, s->size), 1 + rnd(d, 64), acc);
		probe(d, s->gpa + s->size - 4, 8, MMU_ACCESS_READ);
		probe(d, s->gpa, 1 + rnd(d, 3 * 4096), acc);
	}
	probe(d, rnd_gpa(d) + rnd(d, 4096), 1 + rnd(d, 16), acc);
	/* Beyond 48 bits: must not alias a cached page. */
	probe(d, d->recent[rnd(d, 8)] | 1ull << (48 + rnd(d, 16)), 4,
	      MMU_ACCESS_READ);
	for (int i = 0; i < 3; i++)
		probe(d, d->recent[rnd(d, 8)], 4,
		      rnd(d, 2) ? acc : MMU_ACCESS_READ);
}

static void op_dirty(struct diff *d, uint32_t id)
{
	static uint64_t got[GiB / 4096 / 64], want[GiB / 4096 / 64];
	bool clear = rnd(d, 2);
	struct mmu_ref_slot *s = mmu_ref_slot_find(&d->ref, id);
	int rw = mmu_ref_dirty_log_get(&d->ref, id, want, clear);
	int rg = mmu_dirty_log_get(d->mmu, id, got, sizeof(got), clear);

	check_eq(d, "dirty_log_get", rg, rw);
	if (rg == 0) {
		size_t words = (s->size / 4096 + 63) / 64;

		cr_assert(memcmp(got, want, words * 8) == 0,
			  "seed %u slot %u: dirty bitmaps differ, word 0 "
			  "expected "
			  "%#llx got %#llx",
			  d->seed, id, (unsigned long long)want[0],
			  (unsigned long long)got[0]);
	}
}

/* One random operation applied to both sides. */
static void op_random(struct diff *d)
{
	uint32_t id = (uint32_t)rnd(d, MAX_ID);
	uint64_t gpa = rnd_gpa(d), size = rnd_size(d);
	uint32_t flags = rnd(d, 4) ? 0 : (uint32_t)rnd(d, 4);
	unsigned k = (unsigned)rnd(d, 100);

	if (k < 35) {
		uintptr_t hva = rnd_hva(d, gpa);

		check_eq(d, "create",
			 mmu_slot_create(d->mmu, id, gpa, size, (void *)hva,
					 flags),
			 mmu_ref_slot_create(&d->ref, id, gpa, size, hva,
					     flags));
	} else if (k < 55) {
		check_eq(d, "delete", mmu_slot_delete(d->mmu, id, NULL, NULL),
			 mmu_ref_slot_delete(&d->ref, id));
	} else if (k < 75) {
		check_eq(d, "move", mmu_slot_move(d->mmu, id, gpa),
			 mmu_ref_slot_move(&d->ref, id, gpa));
	} else if (k < 90) {
		check_eq(d, "set_flags", mmu_slot_set_flags(d->mmu, id, flags),
			 mmu_ref_slot_set_flags(&d->ref, id, flags));
	} else if (k < 97) {
		op_dirty(d, id);
	} else {
		bool on = rnd(d, 2);

		check_eq(d, "policy_set", mmu_policy_set(d->mmu, on),
			 on && d->protected_vm ? -EPERM : 0);
	}
}

ParameterizedTestParameters(mmu_diff, random_ops_match_reference)
{
	static struct diff_param params[] = {
		{ MMU_VM_DEFAULT, false, false, 1 },
		{ MMU_VM_DEFAULT, true, false, 2 },
		{ MMU_VM_PROTECTED, true, false, 3 },
		{ MMU_VM_DEFAULT, true, true, 4 },
	};

	return cr_make_param_array(struct diff_param, params,
				   sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct diff_param *p, mmu_diff, random_ops_match_reference,
		  .timeout = 120)
{
	struct mmu_config cfg = { p->type, p->precise, p->tlb_off };
	unsigned ops = mmu_ref_scale(20000);
	struct diff d = { .seed = p->seed,
			  .protected_vm = p->type == MMU_VM_PROTECTED };
	struct mmu_stats st;

	mmu_ref_init(&d.ref);
	MMU_EXPECT_EQ(mmu_create(&cfg, &d.mmu), 0);
	MMU_EXPECT_EQ(mmu_reader_register(d.mmu), 0);
	for (unsigned i = 0; i < ops; i++) {
		op_random(&d);
		probe_all(&d);
		mmu_reader_quiescent();
	}
	while (d.ref.n) {
		uint32_t id = d.ref.slots[0].id;
		int rg = mmu_slot_delete(d.mmu, id, NULL, NULL);

		check_eq(&d, "final delete", rg,
			 mmu_ref_slot_delete(&d.ref, id));
	}
	mmu_stats_get(d.mmu, &st);
	cr_assert(
		st.pages_4k + st.pages_2m + st.pages_1g == 0 && st.tables == 1,
		"all deleted: expected no leaves and only the root, got "
		"%llu/%llu/%llu leaves, %llu tables",
		(unsigned long long)st.pages_4k,
		(unsigned long long)st.pages_2m,
		(unsigned long long)st.pages_1g, (unsigned long long)st.tables);
	if (p->type == MMU_VM_PROTECTED)
		cr_assert(st.roots_obsoleted == 0 && st.generation == 0,
			  "protected: expected root never replaced, got %llu",
			  (unsigned long long)st.roots_obsoleted);
	cr_log_info("seed %u: %u ops, %llu probes, %llu faults, %llu zapped",
		    p->seed, ops, (unsigned long long)d.probes,
		    (unsigned long long)st.faults,
		    (unsigned long long)st.leafs_zapped);
	mmu_reader_unregister(d.mmu);
	mmu_destroy(d.mmu);
	mmu_ref_fini(&d.ref);
}
