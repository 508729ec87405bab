/* The read side: reader registration, translation, faults, copies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/internal.h"

__thread struct mmu_thread mmu_thread;

/* The calling thread's reader for mmu, moved to the front; or NULL. */
__attribute__((noinline))
static struct mmu_reader *reader_find(struct mmu *mmu)
{
	struct mmu_reader **pp = &mmu_thread.readers, *r;

	for (; (r = *pp); pp = &r->tls_next) {
		if (r->mmu == mmu) {
			*pp = r->tls_next;
			r->tls_next = mmu_thread.readers;
			mmu_thread.readers = r;
			return r;
		}
	}
	return NULL;
}

int mmu_reader_register(struct mmu *mmu)
{
	struct mmu_reader *r;

	if (reader_find(mmu))
		return -EEXIST;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->mmu = mmu;
	rcu_thread_get();
	pthread_mutex_lock(&mmu->reader_lock);
	r->next = mmu->readers;
	mmu->readers = r;
	pthread_mutex_unlock(&mmu->reader_lock);
	r->tls_next = mmu_thread.readers;
	mmu_thread.readers = r;
	return 0;
}

void mmu_reader_unregister(struct mmu *mmu)
{
	struct mmu_reader *r = reader_find(mmu), **pp;

	if (!r)
		return;
	mmu_thread.readers = r->tls_next;
	/* Writers scan TLBs under reader_lock, so none holds r after this. */
	pthread_mutex_lock(&mmu->reader_lock);
	for (pp = &mmu->readers; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	pthread_mutex_unlock(&mmu->reader_lock);
	free(r);
	rcu_thread_put();
}

/* Largest leaf level allowed for gfn in slot s: congruent gpa and hva, the
 * whole huge range inside the slot, no dirty logging. */
static int fault_max_level(const struct mmu_slot *s, uint64_t gfn)
{
	if (s->flags & MMU_SLOT_DIRTY_LOG)
		return 1;
	for (int l = 3; l > 1; l--) {
		uint64_t n = pt_level_pages(l), base = gfn & ~(n - 1);

		if (base >= s->gfn && base + n <= s->gfn + s->npages &&
		    (((s->hva >> MMU_PAGE_SHIFT) - s->gfn) & (n - 1)) == 0)
			return l;
	}
	return 1;
}

/* Called with mmu->lock held.  Logs a write to gfn of slot s. */
static void fault_mark_dirty(const struct mmu_slot *s, uint64_t gfn)
{
	uint64_t bit = gfn - s->gfn;

	if (s->dirty)
		s->dirty[bit / 64] |= 1ull << (bit % 64);
}

/* Called with mmu->lock held.  Maps gfn of slot s, or upgrades a logged
 * leaf for a write; returns the leaf entry and its level. */
static int fault_install(struct mmu *mmu, const struct mmu_slot *s,
			 uint64_t gfn, bool write, uint64_t *e, int *level)
{
	bool logging = s->flags & MMU_SLOT_DIRTY_LOG;
	uint64_t flags = logging ? PTE_DIRTY_TRK : 0;
	uintptr_t page_hva = s->hva + ((gfn - s->gfn) << MMU_PAGE_SHIFT);
	int ret;

	if (!(s->flags & MMU_SLOT_READONLY) && (!logging || write))
		flags |= PTE_WRITABLE;
	ret = pt_install(mmu, mmu->root, gfn, fault_max_level(s, gfn),
			 page_hva, flags, e, level);
	if (ret < 0)
		return ret;
	if (ret == 1 && write && !(*e & PTE_WRITABLE)) {
		if (!(*e & PTE_DIRTY_TRK))
			return -EROFS;
		ret = pt_set_writable(mmu, gfn);
		if (ret)
			return ret;
		*e |= PTE_WRITABLE;
	}
	if (write && logging)
		fault_mark_dirty(s, gfn);
	mmu->st.faults++;
	return 0;
}

/* Resolves a miss under the writer lock from the current slot set. */
__attribute__((noinline))
static int fault(struct mmu *mmu, uint64_t gfn, bool write, uint64_t *e,
		 int *level)
{
	const struct mmu_slot *s;
	int ret;

	pthread_mutex_lock(&mmu->lock);
	s = slots_find_gfn(mmu->slots, gfn);
	if (!s)
		ret = -ENOENT;
	else if (write && (s->flags & MMU_SLOT_READONLY))
		ret = -EROFS;
	else
		ret = fault_install(mmu, s, gfn, write, e, level);
	pthread_mutex_unlock(&mmu->lock);
	return ret;
}

/* Translates one page through the tree (faulting if needed) and caches it. */
static int translate_page(struct mmu *mmu, struct mmu_reader *r, uint64_t gfn,
			  bool write, uintptr_t *page_hva)
{
	uint64_t seq = __atomic_load_n(&mmu->tlb_seq, __ATOMIC_SEQ_CST);
	uint64_t gen = __atomic_load_n(&mmu->tlb_gen, __ATOMIC_SEQ_CST);
	/* RCU: the root and its tables stay allocated until our next
	 * quiescent state, even if a writer unlinks them meanwhile. */
	struct pt *root = __atomic_load_n(&mmu->root, __ATOMIC_ACQUIRE);
	int level = 1, ret;
	uint64_t e = pt_lookup(root, gfn, &level);

	if (!e || (write && !(e & PTE_WRITABLE))) {
		if (e && !(e & PTE_DIRTY_TRK))
			return -EROFS;
		ret = fault(mmu, gfn, write, &e, &level);
		if (ret)
			return ret;
	}
	*page_hva = (e & PTE_HVA_MASK) +
		    ((gfn & (pt_level_pages(level) - 1)) << MMU_PAGE_SHIFT);
	if (!mmu->tlb_off)
		tlb_fill(r, gfn, seq, gen, *page_hva, e & PTE_WRITABLE);
	return 0;
}

/* Translates a range over several pages, all in one slot. */
__attribute__((noinline))
static int translate_range(struct mmu *mmu, struct mmu_reader *r,
			   uint64_t gpa, size_t len, bool write, void **hva)
{
	uint64_t first = gpa >> MMU_PAGE_SHIFT;
	uint64_t last = (gpa + len - 1) >> MMU_PAGE_SHIFT;
	/* RCU: the set stays allocated until our next quiescent state. */
	const struct slot_set *set = __atomic_load_n(&mmu->slots,
						     __ATOMIC_ACQUIRE);
	const struct mmu_slot *s = slots_find_gfn(set, first);
	uintptr_t base = 0, page;
	int ret;

	if (!s)
		return -ENOENT;
	if (last >= s->gfn + s->npages)
		return -EFAULT;
	for (uint64_t gfn = first; gfn <= last; gfn++) {
		ret = translate_page(mmu, r, gfn, write, &page);
		if (ret)
			return ret;
		if (gfn == first)
			base = page;
		else if (page != base + ((gfn - first) << MMU_PAGE_SHIFT))
			return -EFAULT;	/* the slot moved under us */
	}
	*hva = (void *)(base + (gpa & (MMU_PAGE_SIZE - 1)));
	return 0;
}

/* Everything but a software-TLB hit; kept out of line so the hit path
 * needs no stack frame. */
__attribute__((noinline, cold))
static int translate_slow(struct mmu *mmu, uint64_t gpa, size_t len,
			  unsigned access, void **hva)
{
	struct mmu_reader *r = reader_find(mmu);
	bool write = access & MMU_ACCESS_WRITE;
	uintptr_t page;
	int ret;

	if (!r || !mmu_thread.online)
		return -ESRCH;
	if (len == 0 || gpa >= (1ull << MMU_GPA_BITS) ||
	    len > (1ull << MMU_GPA_BITS) - gpa)
		return -EINVAL;
	if ((gpa & (MMU_PAGE_SIZE - 1)) + len > MMU_PAGE_SIZE)
		return translate_range(mmu, r, gpa, len, write, hva);
	ret = translate_page(mmu, r, gpa >> MMU_PAGE_SHIFT, write, &page);
	if (!ret)
		*hva = (void *)(page + (gpa & (MMU_PAGE_SIZE - 1)));
	return ret;
}

int mmu_translate(struct mmu *mmu, uint64_t gpa, size_t len, unsigned access,
		  void **hva)
{
	struct mmu_reader *r = mmu_thread.readers;
	uint64_t gfn = gpa >> MMU_PAGE_SHIFT, off = gpa & (MMU_PAGE_SIZE - 1);

	/* The thread's last-used VM, a gpa inside 48 bits (tags hold no
	 * more), a length within the page (len - 1 < room: non-zero, no
	 * overflow), online (an offline thread must not get a hit: nothing
	 * protects it).  Anything else: slow path. */
	if (__builtin_expect(r && r->mmu == mmu && !(gpa >> MMU_GPA_BITS) &&
			     len - 1 < MMU_PAGE_SIZE - off &&
			     mmu_thread.online, 1)) {
		struct tlb_entry *e = &r->tlb[gfn % TLB_ENTRIES];
		uint64_t gen = ATOMIC_LOAD(&mmu->tlb_gen);

		if (ATOMIC_LOAD(&e->tag) == tlb_tag(gfn, gen) &&
		    (!(access & MMU_ACCESS_WRITE) || (e->hva & 1))) {
			*hva = (void *)((e->hva & ~(uintptr_t)1) + off);
			return 0;
		}
	}
	return translate_slow(mmu, gpa, len, access, hva);
}

int mmu_read(struct mmu *mmu, uint64_t gpa, void *buf, size_t len)
{
	void *hva;
	int ret = mmu_translate(mmu, gpa, len, MMU_ACCESS_READ, &hva);

	if (!ret)
		memcpy(buf, hva, len);
	return ret;
}

int mmu_write(struct mmu *mmu, uint64_t gpa, const void *buf, size_t len)
{
	void *hva;
	int ret = mmu_translate(mmu, gpa, len, MMU_ACCESS_WRITE, &hva);

	if (!ret)
		memcpy(hva, buf, len);
	return ret;
}
