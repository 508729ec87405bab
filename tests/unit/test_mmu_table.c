/* mmu engine: API contract, errors, leaf sizes and dirty logging. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "mmu/mmu.h"
#include "tests/lib/mmu_ref.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

static struct mmu *mmu;

/* A VM of the given type with the test thread registered as its reader. */
static void vm_open(enum mmu_vm_type type, bool precise)
{
	struct mmu_config cfg = { .type = type, .slot_zap_all_off = precise };
	int ret = mmu_create(&cfg, &mmu);

	cr_assert_eq(ret, 0, "mmu_create: expected 0, got %d", ret);
	ret = mmu_reader_register(mmu);
	cr_assert_eq(ret, 0, "mmu_reader_register: expected 0, got %d", ret);
}

static void vm_close(void)
{
	if (!mmu)
		return;
	mmu_reader_unregister(mmu);
	mmu_destroy(mmu);
	mmu = NULL;
}

static struct mmu_stats stats(void)
{
	struct mmu_stats st;

	mmu_stats_get(mmu, &st);
	return st;
}

/* Translates every page of [gpa, gpa + size) for reading. */
static void touch(uint64_t gpa, uint64_t size)
{
	void *hva;

	for (uint64_t off = 0; off < size; off += 4 * KiB) {
		int ret =
			mmu_translate(mmu, gpa + off, 8, MMU_ACCESS_READ, &hva);

		cr_assert_eq(ret, 0, "translate %#llx: expected 0, got %d",
			     (unsigned long long)(gpa + off), ret);
	}
}

TestSuite(mmu_table, .fini = vm_close);

Test(mmu_table, translate_returns_slot_offset)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	void *hva;

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 1 * MiB, 64 * KiB, mem, 0), 0);
	MMU_EXPECT_EQ(
		mmu_translate(mmu, 1 * MiB + 0x1234, 4, MMU_ACCESS_READ, &hva),
		0);
	cr_assert_eq(hva, mem + 0x1234, "expected %p, got %p", mem + 0x1234,
		     hva);
	/* Second time through the software TLB, same answer, no fault. */
	uint64_t faults = stats().faults;
	MMU_EXPECT_EQ(
		mmu_translate(mmu, 1 * MiB + 0x1238, 4, MMU_ACCESS_WRITE, &hva),
		0);
	cr_assert_eq(hva, mem + 0x1238, "expected %p, got %p", mem + 0x1238,
		     hva);
	cr_assert_eq(stats().faults, faults,
		     "expected no new fault, got %llu -> %llu",
		     (unsigned long long)faults,
		     (unsigned long long)stats().faults);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

Test(mmu_table, errors_are_distinct)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	void *hva;

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 32 * KiB, mem, 0), 0);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 2, 32 * KiB, 32 * KiB,
				      mem + 32 * KiB, MMU_SLOT_READONLY),
		      0);
	MMU_EXPECT(mmu_translate(mmu, 1 * MiB, 4, MMU_ACCESS_READ, &hva),
		   -ENOENT, "MMIO: expected -ENOENT");
	MMU_EXPECT(mmu_translate(mmu, 40 * KiB, 4, MMU_ACCESS_WRITE, &hva),
		   -EROFS, "read-only: expected -EROFS");
	MMU_EXPECT_EQ(mmu_translate(mmu, 40 * KiB, 4, MMU_ACCESS_READ, &hva),
		      0);
	MMU_EXPECT(mmu_translate(mmu, 40 * KiB, 4, MMU_ACCESS_WRITE, &hva),
		   -EROFS, "read-only after a cached read: expected -EROFS");
	MMU_EXPECT(mmu_translate(mmu, 32 * KiB - 4, 8, MMU_ACCESS_READ, &hva),
		   -EFAULT, "slot boundary: expected -EFAULT");
	MMU_EXPECT(mmu_translate(mmu, 4 * KiB - 4, 8, MMU_ACCESS_READ, &hva), 0,
		   "page boundary inside a slot: expected 0");
	MMU_EXPECT_EQ(hva, mem + 4 * KiB - 4);
	MMU_EXPECT_EQ(mmu_translate(mmu, 0, 0, MMU_ACCESS_READ, &hva), -EINVAL);
	MMU_EXPECT(mmu_slot_create(mmu, 3, 16 * KiB, 4 * KiB, mem, 0), -EEXIST,
		   "overlap: expected -EEXIST");
	MMU_EXPECT(mmu_slot_create(mmu, 1, 1 * MiB, 4 * KiB, mem, 0), -EEXIST,
		   "duplicate id: expected -EEXIST");
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 3, 1 * MiB + 1, 4 * KiB, mem, 0),
		      -EINVAL);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 3, 1 * MiB, 4 * KiB, mem + 1, 0),
		      -EINVAL);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 3, 1ull << 48, 4 * KiB, mem, 0),
		      -EINVAL);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 9, NULL, NULL), -ENOENT);
	MMU_EXPECT_EQ(mmu_slot_move(mmu, 1, 48 * KiB), -EEXIST);
	MMU_EXPECT_EQ(mmu_slot_move(mmu, 1, 3), -EINVAL);
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 9, 0), -ENOENT);
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 1, 1u << 7), -EINVAL);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

Test(mmu_table, unregistered_thread_cannot_translate)
{
	struct mmu_config cfg = { .type = MMU_VM_DEFAULT };
	void *hva;

	MMU_EXPECT_EQ(mmu_create(&cfg, &mmu), 0);
	MMU_EXPECT_EQ(mmu_translate(mmu, 0, 1, MMU_ACCESS_READ, &hva), -ESRCH);
	MMU_EXPECT_EQ(mmu_reader_register(mmu), 0);
	MMU_EXPECT_EQ(mmu_reader_register(mmu), -EEXIST);
	mmu_reader_offline();
	MMU_EXPECT(mmu_translate(mmu, 0, 1, MMU_ACCESS_READ, &hva), -ESRCH,
		   "offline reader: expected -ESRCH");
	mmu_reader_online();
	MMU_EXPECT_EQ(mmu_translate(mmu, 0, 1, MMU_ACCESS_READ, &hva), -ENOENT);
}

Test(mmu_table, delete_and_move_invalidate_cached_translations)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	void *hva;

	vm_open(MMU_VM_DEFAULT, true);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 64 * KiB, mem, 0), 0);
	MMU_EXPECT_EQ(mmu_translate(mmu, 8 * KiB, 4, MMU_ACCESS_READ, &hva), 0);
	MMU_EXPECT_EQ(mmu_slot_move(mmu, 1, 1 * MiB), 0);
	MMU_EXPECT(mmu_translate(mmu, 8 * KiB, 4, MMU_ACCESS_READ, &hva),
		   -ENOENT, "old gpa after move: expected -ENOENT");
	MMU_EXPECT_EQ(
		mmu_translate(mmu, 1 * MiB + 8 * KiB, 4, MMU_ACCESS_READ, &hva),
		0);
	cr_assert_eq(hva, mem + 8 * KiB, "expected %p, got %p", mem + 8 * KiB,
		     hva);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 1, NULL, NULL), 0);
	MMU_EXPECT(
		mmu_translate(mmu, 1 * MiB + 8 * KiB, 4, MMU_ACCESS_READ, &hva),
		-ENOENT, "after delete: expected -ENOENT");
	cr_assert_eq(stats().tlb_flush_range, 2,
		     "expected 2 range flushes, got %llu",
		     (unsigned long long)stats().tlb_flush_range);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

Test(mmu_table, read_and_write_copy_guest_memory)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	char buf[16] = "";

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 64 * KiB, mem, 0), 0);
	MMU_EXPECT_EQ(mmu_write(mmu, 4 * KiB - 3, "hello", 6), 0);
	cr_assert_str_eq((char *)mem + 4 * KiB - 3, "hello");
	MMU_EXPECT_EQ(mmu_read(mmu, 4 * KiB - 3, buf, 6), 0);
	cr_assert_str_eq(buf, "hello");
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

static int released;

static void release_count(void *arg)
{
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

Test(mmu_table, release_runs_after_grace_period)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 64 * KiB, mem, 0), 0);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 1, release_count, &released), 0);
	/* The test thread is online: no grace period can have ended. */
	MMU_EXPECT(__atomic_load_n(&released, __ATOMIC_SEQ_CST), 0,
		   "expected no release while a reader is online");
	mmu_synchronize(mmu);
	for (int i = 0;
	     i < 2000 && !__atomic_load_n(&released, __ATOMIC_SEQ_CST); i++) {
		mmu_reader_quiescent();
		usleep(1000);
	}
	cr_assert_eq(__atomic_load_n(&released, __ATOMIC_SEQ_CST), 1,
		     "expected 1 release, got %d", released);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

/* One slot, faulted in whole; returns pages_{4k,2m,1g} as a triple. */
static void leaf_sizes(uint64_t gpa, uint64_t size, size_t hva_align,
		       size_t hva_off, uint64_t want[3])
{
	uint8_t *mem = mmu_ref_backing_map(size, hva_align, hva_off);
	struct mmu_stats st;

	cr_assert_not_null(mem);
	vm_open(MMU_VM_DEFAULT, true);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, gpa, size, mem, 0), 0);
	touch(gpa, size);
	st = stats();
	cr_assert(st.pages_4k == want[0] && st.pages_2m == want[1] &&
			  st.pages_1g == want[2],
		  "gpa %#llx size %#llx hva %p: expected 4k/2m/1g "
		  "%llu/%llu/%llu, "
		  "got %llu/%llu/%llu",
		  (unsigned long long)gpa, (unsigned long long)size, mem,
		  (unsigned long long)want[0], (unsigned long long)want[1],
		  (unsigned long long)want[2], (unsigned long long)st.pages_4k,
		  (unsigned long long)st.pages_2m,
		  (unsigned long long)st.pages_1g);
	vm_close();
	mmu_ref_backing_unmap(mem, size);
}

Test(mmu_table, huge_leaves_follow_alignment)
{
	/* 1 GiB aligned both sides: one 1 GiB leaf. */
	leaf_sizes(1 * GiB, 1 * GiB, 1 * GiB, 0, (uint64_t[]){ 0, 0, 1 });
	/* gpa 1 GiB aligned, hva only 2 MiB: 2 MiB leaves. */
	leaf_sizes(1 * GiB, 1 * GiB, 1 * GiB, 2 * MiB,
		   (uint64_t[]){ 0, 512, 0 });
	/* Congruent but not aligned: 4 KiB head/tail, 2 MiB middle. */
	leaf_sizes(2 * MiB - 8 * KiB, 4 * MiB + 16 * KiB, 2 * MiB,
		   2 * MiB - 8 * KiB, (uint64_t[]){ 4, 2, 0 });
	/* hva not congruent: 4 KiB only. */
	leaf_sizes(2 * MiB, 4 * MiB, 2 * MiB, 4 * KiB,
		   (uint64_t[]){ 1024, 0, 0 });
	/* 3 MiB slot: one 2 MiB leaf, the rest 4 KiB. */
	leaf_sizes(2 * MiB, 3 * MiB, 2 * MiB, 0, (uint64_t[]){ 256, 1, 0 });
}

Test(mmu_table, dirty_logging_splits_and_logs_writes)
{
	uint8_t *mem = mmu_ref_backing_map(1 * GiB, 1 * GiB, 0);
	uint64_t bitmap[(1 * GiB / 4096) / 64];
	struct mmu_stats st;
	void *hva;

	vm_open(MMU_VM_DEFAULT, true);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 1 * GiB, 1 * GiB, mem, 0), 0);
	touch(1 * GiB, 4 * KiB);
	MMU_EXPECT_EQ(stats().pages_1g, 1);
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 1, MMU_SLOT_DIRTY_LOG), 0);
	st = stats();
	cr_assert(st.pages_1g == 0 && st.pages_4k == 262144,
		  "after split: expected 0 x 1g + 262144 x 4k, got %llu + %llu",
		  (unsigned long long)st.pages_1g,
		  (unsigned long long)st.pages_4k);
	cr_assert_eq(st.tables, 1 + 1 + 1 + 512,
		     "expected 515 tables, got %llu",
		     (unsigned long long)st.tables);
	MMU_EXPECT_EQ(mmu_write(mmu, 1 * GiB + 5 * 4096 + 10, "x", 1), 0);
	MMU_EXPECT_EQ(mmu_write(mmu, 1 * GiB + 700 * 4096 - 2, "yyyy", 4), 0);
	MMU_EXPECT_EQ(mmu_translate(mmu, 1 * GiB + 9 * 4096, 1, MMU_ACCESS_READ,
				    &hva),
		      0);
	MMU_EXPECT_EQ(mmu_dirty_log_get(mmu, 1, bitmap, 8, false), -ENOSPC);
	MMU_EXPECT_EQ(mmu_dirty_log_get(mmu, 1, bitmap, sizeof(bitmap), true),
		      0);
	cr_assert_eq(bitmap[0], 1ull << 5, "word 0: expected %#llx, got %#llx",
		     1ull << 5, (unsigned long long)bitmap[0]);
	cr_assert_eq(bitmap[10], 3ull << 59,
		     "word 10: expected %#llx, got %#llx", 3ull << 59,
		     (unsigned long long)bitmap[10]);
	/* Cleared and re-protected: a new write logs again. */
	MMU_EXPECT_EQ(mmu_dirty_log_get(mmu, 1, bitmap, sizeof(bitmap), false),
		      0);
	cr_assert_eq(bitmap[0], 0, "after clear: expected 0, got %#llx",
		     (unsigned long long)bitmap[0]);
	MMU_EXPECT_EQ(mmu_write(mmu, 1 * GiB + 5 * 4096, "z", 1), 0);
	MMU_EXPECT_EQ(mmu_dirty_log_get(mmu, 1, bitmap, sizeof(bitmap), false),
		      0);
	cr_assert_eq(bitmap[0], 1ull << 5, "rewrite: expected %#llx, got %#llx",
		     1ull << 5, (unsigned long long)bitmap[0]);
	/* Off: zapped, and the range refaults with a 1 GiB leaf again. */
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 1, 0), 0);
	MMU_EXPECT_EQ(stats().pages_4k, 0);
	MMU_EXPECT_EQ(mmu_dirty_log_get(mmu, 1, bitmap, sizeof(bitmap), false),
		      -EINVAL);
	touch(1 * GiB, 4 * KiB);
	st = stats();
	cr_assert(
		st.pages_1g == 1 && st.pages_4k == 0,
		"after logging off: expected one 1g leaf, got %llu 1g %llu 4k",
		(unsigned long long)st.pages_1g,
		(unsigned long long)st.pages_4k);
	mmu_ref_backing_unmap(mem, 1 * GiB);
}

Test(mmu_table, readonly_toggle_takes_effect)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	void *hva;

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 64 * KiB, mem, 0), 0);
	MMU_EXPECT_EQ(mmu_translate(mmu, 0, 4, MMU_ACCESS_WRITE, &hva), 0);
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 1, MMU_SLOT_READONLY), 0);
	MMU_EXPECT_EQ(mmu_translate(mmu, 0, 4, MMU_ACCESS_WRITE, &hva), -EROFS);
	MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 1, 0), 0);
	MMU_EXPECT_EQ(mmu_translate(mmu, 0, 4, MMU_ACCESS_WRITE, &hva), 0);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

Test(mmu_table, dirty_logged_slot_faults_only_4k_leaves)
{
	uint8_t *mem = mmu_ref_backing_map(4 * MiB, 2 * MiB, 0);
	struct mmu_stats st;

	vm_open(MMU_VM_DEFAULT, true);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 2 * MiB, 4 * MiB, mem,
				      MMU_SLOT_DIRTY_LOG),
		      0);
	touch(2 * MiB, 64 * KiB);
	st = stats();
	cr_assert(st.pages_2m == 0 && st.pages_4k == 16,
		  "logging: expected 16 x 4k and no 2m, got %llu and %llu",
		  (unsigned long long)st.pages_4k,
		  (unsigned long long)st.pages_2m);
	mmu_ref_backing_unmap(mem, 4 * MiB);
}

Test(mmu_table, copies_report_the_same_errors)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	char buf[8] = "";

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(
		mmu_slot_create(mmu, 1, 0, 64 * KiB, mem, MMU_SLOT_READONLY),
		0);
	MMU_EXPECT_EQ(mmu_write(mmu, 0, "x", 1), -EROFS);
	MMU_EXPECT_EQ(mmu_read(mmu, 64 * KiB, buf, 1), -ENOENT);
	MMU_EXPECT_EQ(mmu_read(mmu, 64 * KiB - 4, buf, 8), -EFAULT);
	MMU_EXPECT_EQ(mmu_read(mmu, 0, buf, 0), -EINVAL);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

Test(mmu_table, counters_track_invalidations_and_callbacks)
{
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	struct mmu_stats st;

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 64 * KiB, mem, 0), 0);
	touch(0, 64 * KiB);
	cr_assert_eq(stats().faults, 16, "expected 16 faults, got %llu",
		     (unsigned long long)stats().faults);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 1, release_count, &released), 0);
	st = stats();
	cr_assert(st.last_invalidation_ns > 0, "expected a duration");
	cr_assert_gt(st.rcu_pending, 0, "expected queued callbacks");
	mmu_barrier(mmu);
	st = stats();
	cr_assert_eq(st.rcu_pending, 0, "after barrier: expected 0, got %llu",
		     (unsigned long long)st.rcu_pending);
	MMU_EXPECT(released, 1, "expected the release to have run");
	cr_assert_eq(st.tables_freed, 4,
		     "old tree: expected 4 tables freed, got %llu",
		     (unsigned long long)st.tables_freed);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

Test(mmu_table, one_thread_reads_two_vms)
{
	struct mmu_config cfg = { .type = MMU_VM_DEFAULT };
	uint8_t *mem = mmu_ref_backing_map(64 * KiB, 4 * KiB, 0);
	struct mmu *other;
	void *hva;

	vm_open(MMU_VM_DEFAULT, false);
	MMU_EXPECT_EQ(mmu_create(&cfg, &other), 0);
	MMU_EXPECT_EQ(mmu_reader_register(other), 0);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 32 * KiB, mem, 0), 0);
	MMU_EXPECT_EQ(mmu_slot_create(other, 1, 0, 32 * KiB, mem + 32 * KiB, 0),
		      0);
	for (int i = 0; i < 4; i++) {
		MMU_EXPECT_EQ(mmu_translate(mmu, 8, 1, MMU_ACCESS_READ, &hva),
			      0);
		cr_assert_eq(hva, mem + 8, "vm 1: expected %p, got %p", mem + 8,
			     hva);
		MMU_EXPECT_EQ(mmu_translate(other, 8, 1, MMU_ACCESS_READ, &hva),
			      0);
		cr_assert_eq(hva, mem + 32 * KiB + 8,
			     "vm 2: expected %p, got %p", mem + 32 * KiB + 8,
			     hva);
	}
	mmu_reader_unregister(other);
	mmu_destroy(other);
	mmu_ref_backing_unmap(mem, 64 * KiB);
}

Test(mmu_table, tlb_generation_wrap_leaves_no_stale_entry, .timeout = 120)
{
	uint8_t *mem = mmu_ref_backing_map(4 * MiB, 4 * KiB, 0);
	uint8_t *big = mmu_ref_backing_map(4 * MiB, 4 * KiB, 0);
	void *hva;

	vm_open(MMU_VM_DEFAULT, true);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 1, 0, 4 * MiB, mem, 0), 0);
	MMU_EXPECT_EQ(mmu_slot_create(mmu, 2, 1 * GiB, 4 * MiB, big, 0), 0);
	/* Cache page 0 at generation 0; deleting 1024 pages flushes fully,
	 * by generation, so the entry stays, merely stale. */
	MMU_EXPECT_EQ(mmu_translate(mmu, 0, 1, MMU_ACCESS_READ, &hva), 0);
	MMU_EXPECT_EQ(mmu_slot_delete(mmu, 1, NULL, NULL), 0);
	/* After 2^19 full flushes the tag's 19 generation bits match again. */
	for (uint32_t i = 0; stats().tlb_flush_full < (1u << 19); i++) {
		MMU_EXPECT_EQ(mmu_slot_set_flags(mmu, 2, i % 2 ? 0 :
						 MMU_SLOT_READONLY), 0);
		if (i % 1024 == 0)
			mmu_reader_quiescent();
	}
	MMU_EXPECT(mmu_translate(mmu, 0, 1, MMU_ACCESS_READ, &hva), -ENOENT,
		   "deleted slot after the generation wrapped");
	mmu_ref_backing_unmap(mem, 4 * MiB);
	mmu_ref_backing_unmap(big, 4 * MiB);
}
