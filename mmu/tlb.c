/* Software TLBs: per-reader direct-mapped caches and their flushes.
 *
 * Only the owning thread fills its entries; writers only clear tags.  A fill
 * races with a flush when the reader walked the tree before the writer
 * changed it but stores its entry after the writer scanned the TLB.  Both
 * sides use seq_cst: the writer bumps tlb_seq, then scans; the reader stores
 * its tag, then re-reads tlb_seq and drops the entry if it moved.  In the
 * single total order either the scan sees the tag or the re-read sees the
 * bump, so no stale entry outlives the writer call. */
#include "mmu/internal.h"

/* Called with mmu->reader_lock held.  Clears tags matching the range. */
static void tlb_scan_range(struct mmu_reader *r, uint64_t gfn, uint64_t npages)
{
	for (int i = 0; i < TLB_ENTRIES; i++) {
		uint64_t tag = __atomic_load_n(&r->tlb[i].tag,
					       __ATOMIC_SEQ_CST);

		if ((tag & 1) && (tag >> 20) - gfn < npages)
			ATOMIC_STORE(&r->tlb[i].tag, 0);
	}
}

/* Called with mmu->lock held.  Drops every cached translation of the
 * range from every reader's TLB; a large range flushes fully. */
void tlb_flush_range(struct mmu *mmu, uint64_t gfn, uint64_t npages)
{
	if (npages > TLB_RANGE_MAX) {
		tlb_flush_full(mmu);
		return;
	}
	__atomic_fetch_add(&mmu->tlb_seq, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&mmu->reader_lock);
	for (struct mmu_reader *r = mmu->readers; r; r = r->next)
		tlb_scan_range(r, gfn, npages);
	pthread_mutex_unlock(&mmu->reader_lock);
	mmu->st.tlb_flush_range++;
}

/* Called with mmu->lock held.  Invalidates every reader's TLB in O(1) by
 * moving the generation that tags carry; when its low bits wrap, old tags
 * could match again, so they are cleared by hand then. */
void tlb_flush_full(struct mmu *mmu)
{
	uint64_t gen;

	__atomic_fetch_add(&mmu->tlb_seq, 1, __ATOMIC_SEQ_CST);
	gen = __atomic_add_fetch(&mmu->tlb_gen, 1, __ATOMIC_SEQ_CST);
	if ((gen & ((1ull << TLB_GEN_BITS) - 1)) == 0) {
		pthread_mutex_lock(&mmu->reader_lock);
		for (struct mmu_reader *r = mmu->readers; r; r = r->next)
			tlb_scan_range(r, 0, GFN_LIMIT);
		pthread_mutex_unlock(&mmu->reader_lock);
	}
	mmu->st.tlb_flush_full++;
}

/* Caches gfn -> page_hva in the calling reader's TLB.  seq and gen were
 * read before the walk that produced page_hva. */
void tlb_fill(struct mmu_reader *r, uint64_t gfn, uint64_t seq, uint64_t gen,
	      uintptr_t page_hva, bool writable)
{
	struct tlb_entry *e = &r->tlb[gfn % TLB_ENTRIES];

	e->hva = page_hva | (writable ? 1 : 0);
	__atomic_store_n(&e->tag, tlb_tag(gfn, gen), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->mmu->tlb_seq, __ATOMIC_SEQ_CST) != seq)
		ATOMIC_STORE(&e->tag, 0);
}
