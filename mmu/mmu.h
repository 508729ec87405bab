/* mmu: slotd's MMU invalidation engine.  Public interface.
 *
 * A per-VM translation table from guest physical addresses to host virtual
 * addresses: a 4-level radix keyed by guest frame number (512 entries per
 * level, 48-bit guest physical space) whose leaves map 4 KiB, 2 MiB or 1 GiB,
 * filled on demand from an RCU-published sorted array of memslots.  Knows
 * nothing of KVM or JSON.  Functions return 0 or -errno.
 *
 * RCU flavour: liburcu QSBR.  Readers (vCPU threads handling an exit, device
 * models) pay nothing to enter a read-side section; a vCPU thread goes
 * offline while it sits in KVM_RUN, so a grace period never waits for the
 * guest.  The price is that readers must announce quiescent states.
 *
 * Threading rules
 *  - A thread that calls mmu_translate(), mmu_read() or mmu_write() on a VM
 *    must first call mmu_reader_register() for that VM (once; it is then
 *    online) and mmu_reader_unregister() before it exits.  A thread may be a
 *    reader of several VMs.
 *  - A registered thread is inside one long read-side section while online.
 *    It must call mmu_reader_quiescent() regularly (e.g. after each exit is
 *    handled) and mmu_reader_offline() before it blocks (KVM_RUN, poll,
 *    sleeping on a lock other than the engine's); mmu_reader_online() before
 *    it translates again.
 *  - A host address returned by mmu_translate() stays valid until the
 *    calling thread's next quiescent state (quiescent, offline, unregister,
 *    or any call of a writer function listed below).
 *  - Writer functions (mmu_slot_*, mmu_policy_set, mmu_dirty_log_get,
 *    mmu_synchronize, mmu_barrier, mmu_destroy) may be called from any
 *    thread, registered or not; a registered caller must treat the call
 *    as a quiescent state (the waiting ones below are one).  They
 *    serialise on the VM's lock, never hold it across a grace period, and
 *    never wait for an offline vCPU.  mmu_synchronize(), mmu_barrier(),
 *    mmu_dirty_log_get(clear) and mmu_destroy() wait for a grace period,
 *    i.e. for every online reader's next quiescent state: don't call them
 *    while holding a lock that an online reader may wait for.
 *  - The engine owns the liburcu-qsbr registration of the threads that use
 *    it: a thread that also registers itself with liburcu-qsbr directly
 *    must do so only through mmu_reader_register().
 *  - Release callbacks run on liburcu's call_rcu thread: keep them short,
 *    never call writer functions of the engine from them.
 */
#ifndef SLOTD_MMU_H
#define SLOTD_MMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MMU_PAGE_SHIFT		12
#define MMU_PAGE_SIZE		(1ull << MMU_PAGE_SHIFT)
#define MMU_GPA_BITS		48

/* Slot flags. */
#define MMU_SLOT_READONLY	(1u << 0)	/* guest writes refused */
#define MMU_SLOT_DIRTY_LOG	(1u << 1)	/* log writes, 4 KiB */

/* Access kinds for mmu_translate(). */
#define MMU_ACCESS_READ		(1u << 0)
#define MMU_ACCESS_WRITE	(1u << 1)

struct mmu;

enum mmu_vm_type {
	MMU_VM_DEFAULT = 0,	/* slot_zap_all on unless turned off */
	MMU_VM_PROTECTED = 1,	/* TDX-like: precise only, root kept */
};

struct mmu_config {
	enum mmu_vm_type type;
	bool slot_zap_all_off;	/* DEFAULT VMs: start precise */
	bool tlb_off;		/* no software TLB (benchmarks) */
};

/* Counters.  pages_* count leaves in the current tree. */
struct mmu_stats {
	uint64_t roots_obsoleted;	/* zap-all root replacements */
	uint64_t leafs_zapped;		/* leaves cleared one by one */
	uint64_t tables_detached;	/* subtrees unlinked by precise zaps */
	uint64_t tables_freed;		/* freed after a grace period */
	uint64_t tlb_flush_range;
	uint64_t tlb_flush_full;
	uint64_t faults;		/* misses resolved under the lock */
	uint64_t pages_4k;
	uint64_t pages_2m;
	uint64_t pages_1g;
	uint64_t rcu_pending;		/* callbacks not yet run */
	uint64_t last_invalidation_ns;	/* caller cost of the last one */
	uint64_t generation;		/* bumped by each zap all */
	uint64_t tables;		/* table pages in the current tree */
	bool slot_zap_all;		/* current policy */
};

/* Called once no reader can reach a removed slot's host memory. */
typedef void (*mmu_release_fn)(void *arg);

/* Creates an empty engine for one VM; cfg NULL means a default VM. */
int mmu_create(const struct mmu_config *cfg, struct mmu **out);
/* Frees the engine; no reader may be registered.  Waits for all callbacks
 * (rcu_barrier), so release callbacks have all run when it returns. */
void mmu_destroy(struct mmu *mmu);

/* Turns the slot_zap_all quirk on or off; -EPERM turning it on for a
 * protected VM. */
int mmu_policy_set(struct mmu *mmu, bool slot_zap_all);
bool mmu_policy_get(struct mmu *mmu);

/* Adds a slot: gpa, size and hva 4 KiB aligned, size > 0, gpa + size <=
 * 2^48, id < UINT32_MAX, known flags (else -EINVAL); no overlap with
 * another slot and no duplicate id (-EEXIST).  No invalidation needed. */
int mmu_slot_create(struct mmu *mmu, uint32_t id, uint64_t gpa,
		    uint64_t size, void *hva, uint32_t flags);
/* Removes a slot; every translation of it is invalid when this returns.
 * release_fn(release_arg), if given, runs after the grace period, once no
 * reader can still use the slot's host memory: unmap the backing there.
 * Or pass NULL and unmap after mmu_synchronize() returns. */
int mmu_slot_delete(struct mmu *mmu, uint32_t id, mmu_release_fn release_fn,
		    void *release_arg);
/* Runs fn(arg) on the call_rcu thread once every reader online now has
 * passed a quiescent state: the release of a slot deleted earlier whose
 * memory was kept until now (a transaction's commit).  -ENOMEM. */
int mmu_release_after_grace(struct mmu *mmu, mmu_release_fn fn, void *arg);
/* Moves a slot to a new guest address, same host memory and size. */
int mmu_slot_move(struct mmu *mmu, uint32_t id, uint64_t new_gpa);
/* Changes MMU_SLOT_READONLY and MMU_SLOT_DIRTY_LOG.  Enabling dirty
 * logging splits the slot's huge leaves and write-protects them from the
 * calling thread; disabling it zaps the slot so huge leaves come back. */
int mmu_slot_set_flags(struct mmu *mmu, uint32_t id, uint32_t flags);
/* Waits for a grace period: releases of earlier deletions are then due
 * (they run soon after, on the call_rcu thread). */
void mmu_synchronize(struct mmu *mmu);
/* Waits until every release callback and deferred free queued so far (by
 * any engine) has run: rcu_barrier. */
void mmu_barrier(struct mmu *mmu);

/* Copies the slot's dirty bitmap (bit i = page i of the slot) into bitmap
 * (bytes >= ceil(npages / 64) * 8, else -ENOSPC); with clear, clears it and
 * write-protects the logged pages again; writes through engine
 * translations started before this returns are then visible in memory.
 * -ENOENT unknown slot, -EINVAL dirty logging off. */
int mmu_dirty_log_get(struct mmu *mmu, uint32_t id, uint64_t *bitmap,
		      size_t bytes, bool clear);

/* Translates [gpa, gpa + len) for access (MMU_ACCESS_*) to a host address.
 * -ENOENT no slot (MMIO), -EROFS write to a read-only slot, -EFAULT range
 * crosses a slot boundary, -EINVAL len 0 or beyond 2^48, -ESRCH the thread
 * is not a registered, online reader of this VM.  A write translation marks
 * the pages dirty when the slot logs them. */
int mmu_translate(struct mmu *mmu, uint64_t gpa, size_t len, unsigned access,
		  void **hva);
/* Copy guest memory out/in through mmu_translate(); same errors. */
int mmu_read(struct mmu *mmu, uint64_t gpa, void *buf, size_t len);
int mmu_write(struct mmu *mmu, uint64_t gpa, const void *buf, size_t len);

void mmu_stats_get(struct mmu *mmu, struct mmu_stats *st);

/* Makes the calling thread a reader of this VM with its own software TLB,
 * registering it with RCU if needed; the thread is online afterwards.
 * -EEXIST if already registered for this VM. */
int mmu_reader_register(struct mmu *mmu);
/* Drops the calling thread's reader; unregisters from RCU with the last. */
void mmu_reader_unregister(struct mmu *mmu);
/* QSBR states of the calling (registered) thread, for all its VMs. */
void mmu_reader_online(void);
void mmu_reader_offline(void);
void mmu_reader_quiescent(void);

#endif
