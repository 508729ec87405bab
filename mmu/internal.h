/* mmu internals shared by the engine's files; not for other modules. */
#ifndef SLOTD_MMU_INTERNAL_H
#define SLOTD_MMU_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu/urcu-qsbr.h>

#include "mmu/mmu.h"

#define PT_ENTRIES	512
#define PT_LEVELS	4
#define PT_BITS		9
#define GFN_LIMIT	(1ull << (MMU_GPA_BITS - MMU_PAGE_SHIFT))

/* Entry bits.  Tables are 64-byte aligned, leaves' hva 4 KiB aligned. */
#define PTE_PRESENT	(1ull << 0)
#define PTE_LEAF	(1ull << 1)
#define PTE_WRITABLE	(1ull << 2)
#define PTE_DIRTY_TRK	(1ull << 3)	/* protected for dirty log */
#define PTE_TABLE_MASK	(~63ull)
#define PTE_HVA_MASK	(~4095ull)

/* Leaf sizes: index 0 = 4 KiB (level 1), 1 = 2 MiB, 2 = 1 GiB (level 3). */
#define LEAF_SIZES	3

#define TLB_ENTRIES	64
#define TLB_RANGE_MAX	512	/* pages; larger ranges flush fully */
#define TLB_GEN_BITS	19

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
/* TSan cannot see liburcu's asm barriers: tell it that a quiescent state
 * happens before everything that runs after a grace period. */
#define RCU_TSAN_RELEASE()	__tsan_release(&mmu_rcu_tsan_sync)
#define RCU_TSAN_ACQUIRE()	__tsan_acquire(&mmu_rcu_tsan_sync)
#else
#define RCU_TSAN_RELEASE()	do { } while (0)
#define RCU_TSAN_ACQUIRE()	do { } while (0)
#endif
extern int mmu_rcu_tsan_sync;

#define ATOMIC_LOAD(p)		__atomic_load_n((p), __ATOMIC_RELAXED)
#define ATOMIC_STORE(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ATOMIC_ADD(p, v)	__atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

/* Something freed through call_rcu once the writer lock is dropped. */
struct mmu_defer {
	struct rcu_head rh;
	void (*fn)(struct rcu_head *rh);
	struct mmu_defer *next;
	struct mmu *mmu;
};

/* One radix table page.  Entries are read lock-free by walkers. */
struct pt {
	uint64_t e[PT_ENTRIES];
	uint32_t nr_present;		/* writer only */
	uint64_t nr_leaves[LEAF_SIZES];	/* in the subtree; writer only */
	uint64_t nr_tables;		/* in this subtree, self included */
	struct mmu_defer defer;
};

struct mmu_slot {
	uint32_t id;
	uint32_t flags;
	uint64_t gfn;
	uint64_t npages;
	uintptr_t hva;
	uint64_t *dirty;		/* bitmap while logging; writer only */
};

#define SLOT_CHUNK	64	/* slots in a chunk, at most */
#define SLOT_CHUNK_MIN	16	/* a smaller chunk merges with a neighbour */

/* Up to SLOT_CHUNK slots sorted by gfn, sized to fit.  Immutable once a
 * published set references it; consecutive sets share the chunks a change
 * did not touch. */
struct slot_chunk {
	uint32_t n;
	uint64_t epoch;			/* writer only: the set that built it */
	struct slot_chunk *retired_next;	/* writer only */
	struct mmu_slot s[];
};

/* A chunk of a set and its first slot's gfn, for the top-level search. */
struct slot_ref {
	uint64_t gfn;
	struct slot_chunk *chunk;
};

enum slot_id_op { SLOT_ID_KEEP, SLOT_ID_SET, SLOT_ID_DEL };

/* RCU-published: chunks in gfn order, every chunk non-empty and, when
 * there are several, holding SLOT_CHUNK_MIN..SLOT_CHUNK slots.  A change
 * builds a new set with a new epoch: it copies the chunk references and
 * replaces the one or two chunks it touches. */
struct slot_set {
	struct mmu_defer defer;
	size_t n;			/* slots */
	size_t nchunks;
	size_t cap;			/* references allocated */
	/* Writer only.  Unpublished: chunks of this epoch are its own,
	 * dropped lists the published ones it no longer references.  Once
	 * replaced: retired lists those its successor dropped, freed with
	 * it after the grace period. */
	uint64_t epoch;
	struct slot_chunk *dropped;
	struct slot_chunk *retired;
	enum slot_id_op id_op;		/* for mmu->slot_ids at publish */
	uint32_t id;
	uint64_t id_gfn;
	struct slot_ref c[];
};

/* Writer-only index of the published set: slot id -> gfn.  Open
 * addressing with linear probing, at most half full. */
struct slot_ids {
	size_t n;
	size_t mask;			/* capacity - 1; capacity 0: none */
	struct slot_id_ent {
		uint32_t id;		/* UINT32_MAX: empty */
		uint64_t gfn;
	} *e;
};

/* The work of one writer call: frees queued for after the grace period. */
struct mmu_op {
	struct mmu_defer *head;
};

struct tlb_entry {
	uint64_t tag;			/* owner fills, writers clear */
	uintptr_t hva;			/* page | 1 if writable */
};

/* One thread's view of one VM. */
struct mmu_reader {
	struct mmu *mmu;
	struct mmu_reader *next;	/* mmu->readers, under reader_lock */
	struct mmu_reader *tls_next;	/* the thread's readers */
	struct tlb_entry tlb[TLB_ENTRIES];
};

struct mmu {
	pthread_mutex_t lock;		/* the writer lock */
	struct pt *root;		/* atomic; replaced by zap-all */
	struct slot_set *slots;		/* atomic; RCU-published */
	struct slot_ids slot_ids;	/* under lock */
	uint64_t slots_epoch;		/* under lock; bumped per new set */
	uint64_t generation;		/* atomic */
	uint64_t tlb_gen;		/* atomic; full flush bumps */
	/* Bumped by every flush: kept off the line that TLB hits read. */
	uint64_t tlb_seq __attribute__((aligned(64)));	/* atomic */
	bool protected_vm;
	bool zap_all;			/* under lock */
	bool tlb_off;
	pthread_mutex_t reader_lock __attribute__((aligned(64)));
	struct mmu_reader *readers;
	struct mmu_stats st;		/* counters, under lock */
	uint64_t tables_freed;		/* atomic; bumped by callbacks */
	uint64_t rcu_pending;		/* atomic */
};

/* table.c */
int pt_alloc(struct mmu *mmu, struct pt **out);
void pt_defer_free(struct mmu_op *op, struct pt *t);
void pt_free_now(struct pt *t);
int pt_install(struct mmu *mmu, struct pt *root, uint64_t gfn, int max_level,
	       uint64_t leaf_hva, uint64_t flags, uint64_t *entry, int *level);
void pt_zap_range(struct mmu *mmu, uint64_t gfn, uint64_t npages,
		  struct mmu_op *op);
int pt_split_range(struct mmu *mmu, uint64_t gfn, uint64_t npages);
void pt_wrprot_page(struct mmu *mmu, uint64_t gfn);
int pt_set_writable(struct mmu *mmu, uint64_t gfn);

static inline uint64_t pt_level_pages(int level)
{
	return 1ull << (PT_BITS * (level - 1));
}

static inline unsigned pt_index(uint64_t gfn, int level)
{
	return (gfn >> (PT_BITS * (level - 1))) & (PT_ENTRIES - 1);
}

/* Lock-free walk: the leaf mapping gfn, or 0.  Caller is an online reader
 * or holds mmu->lock; tables it passes stay allocated until its next
 * quiescent state (they are freed through call_rcu). */
static inline uint64_t pt_lookup(struct pt *root, uint64_t gfn, int *level)
{
	struct pt *t = root;

	for (int l = PT_LEVELS; l >= 1; l--) {
		uint64_t e = __atomic_load_n(&t->e[pt_index(gfn, l)],
					     __ATOMIC_ACQUIRE);

		if (!(e & PTE_PRESENT))
			return 0;
		if (e & PTE_LEAF) {
			*level = l;
			return e;
		}
		t = (struct pt *)(uintptr_t)(e & PTE_TABLE_MASK);
	}
	return 0;
}

/* slots.c.  Every function but slots_find_gfn is called with mmu->lock
 * held; "unpublished" sets come from slots_copy*. */
struct slot_set *slots_alloc(struct mmu *mmu, size_t cap);
void slots_discard(struct slot_set *set);
void slots_destroy(struct slot_set *set);
const struct mmu_slot *slots_find_gfn(const struct slot_set *set,
				      uint64_t gfn);
const struct mmu_slot *slots_find_id(struct mmu *mmu,
				     const struct slot_set *set, uint32_t id);
bool slots_overlap(const struct slot_set *set, uint64_t gfn, uint64_t npages,
		   uint32_t skip_id);
struct slot_set *slots_copy(struct mmu *mmu, const struct slot_set *set);
struct mmu_slot *slots_edit(struct mmu *mmu, struct slot_set *set,
			    uint32_t id);
struct slot_set *slots_copy_insert(struct mmu *mmu, const struct slot_set *set,
				   const struct mmu_slot *slot);
struct slot_set *slots_copy_remove(struct mmu *mmu, const struct slot_set *set,
				   uint32_t id);
struct slot_set *slots_copy_move(struct mmu *mmu, const struct slot_set *set,
				 const struct mmu_slot *moved);
void slots_publish(struct mmu *mmu, struct slot_set *set, struct mmu_op *op);

/* slot_ids.c.  Called with mmu->lock held. */
int slot_ids_reserve(struct slot_ids *ids, size_t n);
bool slot_ids_get(const struct slot_ids *ids, uint32_t id, uint64_t *gfn);
void slot_ids_set(struct slot_ids *ids, uint32_t id, uint64_t gfn);
void slot_ids_del(struct slot_ids *ids, uint32_t id);
void slot_ids_free(struct slot_ids *ids);

/* tlb.c */
void tlb_flush_range(struct mmu *mmu, uint64_t gfn, uint64_t npages);
void tlb_flush_full(struct mmu *mmu);
void tlb_fill(struct mmu_reader *r, uint64_t gfn, uint64_t seq, uint64_t gen,
	      uintptr_t page_hva, bool writable);

/* A TLB tag: gfn, the full-flush generation's low bits, valid bit. */
static inline uint64_t tlb_tag(uint64_t gfn, uint64_t gen)
{
	return (gfn << 20) | ((gen & ((1ull << TLB_GEN_BITS) - 1)) << 1) | 1;
}

/* rcu.c */
/* The calling thread's engine state; defined next to the TLB hit path. */
struct mmu_thread {
	struct mmu_reader *readers;	/* most recently used first */
	bool online;			/* QSBR: online while registered */
	int nreg;			/* readers registered */
};
extern __thread struct mmu_thread mmu_thread;
void rcu_thread_get(void);
void rcu_thread_put(void);
void rcu_wait_grace(void);
void rcu_wait_callbacks(void);
void op_defer(struct mmu_op *op, struct mmu_defer *d,
	      void (*fn)(struct rcu_head *rh));
void op_commit(struct mmu *mmu, struct mmu_op *op);
void op_done(struct mmu *mmu);
uint64_t mmu_now_ns(void);

#endif
