/* mmu engine policies: precise zap vs zap all, protected VMs. */
#include <criterion/criterion.h>
#include <errno.h>

#include "mmu/mmu.h"
#include "tests/lib/mmu_ref.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

static struct mmu *mmu;
static uint8_t *mem_a, *mem_b, *mem_c;

static void vm_open(enum mmu_vm_type type, bool precise)
{
	/* No software TLB: fault counts then speak only of the tree. */
	struct mmu_config cfg = { type, precise, true };

	MMU_EXPECT_EQ(mmu_create(&cfg, &mmu), 0);
	MMU_EXPECT_EQ(mmu_reader_register(mmu), 0);
}

static void vm_close(void)
{
	if (mmu) {
		mmu_reader_unregister(mmu);
		mmu_destroy(mmu);
		mmu = NULL;
	}
	if (mem_a)
		mmu_ref_backing_unmap(mem_a, 1 * GiB);
	if (mem_b)
		mmu_ref_backing_unmap(mem_b, 4 * MiB);
	if (mem_c)
		mmu_ref_backing_unmap(mem_c, 64 * KiB);
	mem_a = mem_b = mem_c = NULL;
}

static struct mmu_stats stats(void)
{
	struct mmu_stats st;

	mmu_stats_get(mmu, &st);
	return st;
}

static void touch(uint64_t gpa, uint64_t size, uint64_t step)
{
	void *hva;

	for (uint64_t off = 0; off < size; off += step)
		cr_assert_eq(
			mmu_translate(mmu, gpa + off, 1, MMU_ACCESS_READ, &hva),
			0, "translate %#llx", (unsigned long long)(gpa + off));
}

/* Slot 1: one 1 GiB leaf.  Slot 2: two 2 MiB leaves.  Slots 3 and 4: 4 KiB
 * leaves (4 and 2) in the same last-level table. */
static void populate(void)
{
	mem_a = mmu_ref_backing_map(1 * GiB, 1 * GiB, 0);
	mem_b = mmu_ref_backing_map(4 * MiB, 2 * MiB, 0);
	mem_c = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	cr_assert(mem_a && mem_b && mem_c);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 1 * GiB, 1 * GiB, mem_a, 0), 0);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 2, 8 * MiB, 4 * MiB, mem_b, 0), 0);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 3, 12 * MiB, 16 * KiB, mem_c, 0), 0);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 4, 12 * MiB + 64 * KiB, 8 * KiB,
				      mem_c + 32 * KiB, 0),
		      0);
}

/* Translates every page of slots 1 (sampled), 2 and 4. */
static void touch_others(void)
{
	touch(1 * GiB, 1 * GiB, 64 * MiB);
	touch(8 * MiB, 4 * MiB, 4 * KiB);
	touch(12 * MiB + 64 * KiB, 8 * KiB, 4 * KiB);
}

TestSuite(mmu_policy, .fini = vm_close);

Test(mmu_policy, precise_delete_leaves_other_slots_in_place)
{
	struct mmu_stats before, after;

	vm_open(MMU_VM_DEFAULT, true);
	populate();
	touch_others();
	touch(12 * MiB, 16 * KiB, 4 * KiB);
	before = stats();
	cr_assert(before.pages_1g == 1 && before.pages_2m == 2 &&
			  before.pages_4k == 6,
		  "expected 1/2/6 leaves, got %llu/%llu/%llu",
		  (unsigned long long)before.pages_1g,
		  (unsigned long long)before.pages_2m,
		  (unsigned long long)before.pages_4k);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 3, NULL, NULL), 0);
	after = stats();
	cr_assert(after.pages_1g == 1 && after.pages_2m == 2 &&
			  after.pages_4k == 2,
		  "expected 1/2/2 leaves after deleting slot 3, got "
		  "%llu/%llu/%llu",
		  (unsigned long long)after.pages_1g,
		  (unsigned long long)after.pages_2m,
		  (unsigned long long)after.pages_4k);
	cr_assert_eq(after.leafs_zapped, 4,
		     "expected 4 leaves zapped, got %llu",
		     (unsigned long long)after.leafs_zapped);
	MMU_EXPECT_EQ(after.roots_obsoleted, 0);
	MMU_EXPECT_EQ(after.tlb_flush_range, 1);
	touch_others();
	cr_assert_eq(
		stats().faults, before.faults,
		"other slots must not refault: expected %llu faults, got %llu",
		(unsigned long long)before.faults,
		(unsigned long long)stats().faults);
}

Test(mmu_policy, zap_all_refaults_everything)
{
	struct mmu_stats before, after;

	vm_open(MMU_VM_DEFAULT, false);
	cr_assert(mmu_policy_get(mmu), "default VM: expected slot_zap_all on");
	populate();
	touch_others();
	before = stats();
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 3, NULL, NULL), 0);
	after = stats();
	cr_assert(after.pages_1g + after.pages_2m + after.pages_4k == 0,
		  "zap all: expected an empty tree, got %llu leaves",
		  (unsigned long long)(after.pages_1g + after.pages_2m +
				       after.pages_4k));
	cr_assert(after.roots_obsoleted == 1 && after.generation == 1,
		  "expected root replaced once, got %llu (generation %llu)",
		  (unsigned long long)after.roots_obsoleted,
		  (unsigned long long)after.generation);
	MMU_EXPECT_EQ(after.tlb_flush_full, 1);
	touch_others();
	cr_assert_eq(stats().faults, before.faults + 5,
		     "expected 5 refaults (1 + 2 + 2 leaves), got %llu",
		     (unsigned long long)(stats().faults - before.faults));
	mmu_barrier(mmu);
	cr_assert_eq(stats().tables_freed, before.tables,
		     "old tree: expected %llu tables freed, got %llu",
		     (unsigned long long)before.tables,
		     (unsigned long long)stats().tables_freed);
	MMU_EXPECT_EQ(stats().rcu_pending, 0);
}

/* A 1 GiB slot split to 4 KiB leaves by dirty logging, then deleted. */
static struct mmu_stats delete_split_gib(enum mmu_vm_type type)
{
	vm_open(type, true);
	populate();
	touch_others();
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 1, MMU_SLOT_DIRTY_LOG), 0);
	MMU_EXPECT(stats().pages_4k, 262144 + 2, "split plus slot 4");
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 1, NULL, NULL), 0);
	mmu_barrier(mmu);
	return stats();
}

Test(mmu_policy, precise_detaches_fully_covered_subtree)
{
	struct mmu_stats st = delete_split_gib(MMU_VM_DEFAULT);

	cr_assert(st.tables_detached == 1 && st.leafs_zapped == 0,
		  "expected one subtree detached and no leaf visited, got %llu "
		  "detached %llu zapped",
		  (unsigned long long)st.tables_detached,
		  (unsigned long long)st.leafs_zapped);
	cr_assert_eq(st.tables_freed, 513,
		     "expected 513 tables freed, got %llu",
		     (unsigned long long)st.tables_freed);
	cr_assert_eq(st.tlb_flush_full, 2,
		     "large ranges (split, delete): expected 2 full flushes, "
		     "got %llu",
		     (unsigned long long)st.tlb_flush_full);
}

Test(mmu_policy, protected_zaps_leaves_before_tables)
{
	struct mmu_stats st = delete_split_gib(MMU_VM_PROTECTED);

	cr_assert(st.leafs_zapped == 262144 && st.tables_detached == 513,
		  "expected 262144 leaves then 513 tables, got %llu and %llu",
		  (unsigned long long)st.leafs_zapped,
		  (unsigned long long)st.tables_detached);
	MMU_EXPECT_EQ(st.tables_freed, 513);
	MMU_EXPECT_EQ(st.roots_obsoleted, 0);
}

Test(mmu_policy, protected_refuses_slot_zap_all)
{
	vm_open(MMU_VM_PROTECTED, false);
	cr_assert(!mmu_policy_get(mmu), "protected: expected slot_zap_all off");
	MMU_EXPECT(mmu_policy_set(mmu, true), -EPERM,
		   "turning slot_zap_all on: expected -EPERM");
	cr_assert(!mmu_policy_get(mmu));
	MMU_EXPECT_EQ(mmu_policy_set(mmu, false), 0);
}

Test(mmu_policy, protected_root_is_never_replaced)
{
	struct mmu_stats st;

	vm_open(MMU_VM_PROTECTED, false);
	populate();
	touch_others();
	MMU_EXPECT_EQ(mmu_slot_move(mmu, 2, 32 * MiB), 0);
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 4, MMU_SLOT_READONLY), 0);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 3, NULL, NULL), 0);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 1, NULL, NULL), 0);
	st = stats();
	cr_assert(st.roots_obsoleted == 0 && st.generation == 0,
		  "expected the root kept, got %llu replacements",
		  (unsigned long long)st.roots_obsoleted);
	cr_assert(st.leafs_zapped > 0);
}

Test(mmu_policy, default_policy_can_change_at_run_time)
{
	vm_open(MMU_VM_DEFAULT, false);
	populate();
	MMU_EXPECT_EQ(mmu_policy_set(mmu, false), 0);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 3, NULL, NULL), 0);
	MMU_EXPECT_EQ(stats().roots_obsoleted, 0);
	MMU_EXPECT_EQ(mmu_policy_set(mmu, true), 0);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 4, NULL, NULL), 0);
	MMU_EXPECT_EQ(stats().roots_obsoleted, 1);
}
