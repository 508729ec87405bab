/* Memslot changes over the API: checked like KVM checks them (and
 * earlier), applied to KVM and then to the engine under the VM's policy,
 * undone on either side's refusal.  A deleted slot's backing is unmapped
 * by the engine's release callback, after its grace period.
 * Control calls: one thread at a time (the event loop). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/internal.h"

#define PAGE		4096ull
#define HUGE_2M		(2ull << 20)
/* slotd's device registers (vmm/guest/abi.h): no memslot may cover them. */
#define DEV_WINDOW	0x3200000000ull
#define DEV_WINDOW_SIZE	0x10000ull

/* ---- effects: counter deltas on both sides ---------------------------- */

static const char *const kstat_names[] = {
	"remote_tlb_flush", "remote_tlb_flush_requests", "mmu_shadow_zapped",
	"mmu_cache_miss", "mmu_recycled", "pages_4k", "pages_2m", "pages_1g",
};
#define NKSTATS (sizeof(kstat_names) / sizeof(kstat_names[0]))

struct snapshot {
	uint64_t t0;
	uint64_t k[NKSTATS];
	struct mmu_stats e;
};

static void snap_take(struct vmm_vm *vm, struct snapshot *s)
{
	stats_src_pick(&vm->stats, kstat_names, NKSTATS, s->k);
	mmu_stats_get(vm->mmu, &s->e);
}

static void fx_add(struct vmm_effect *fx, const char *side, const char *name,
		   int64_t delta)
{
	if (fx->n < VMM_EFFECT_MAX) {
		snprintf(fx->counters[fx->n].side, sizeof(fx->counters[0].side), "%s", side);
		snprintf(fx->counters[fx->n].name, sizeof(fx->counters[0].name), "%s", name);
		fx->counters[fx->n].delta = delta;
		fx->n++;
	}
}

#define FX_ENGINE(f) fx_add(fx, "engine", #f, (int64_t)(a.e.f - b->e.f))

/* Fills fx with what changed since b. */
static void fx_finish(struct vmm_vm *vm, const struct snapshot *b,
		      struct vmm_effect *fx)
{
	struct snapshot a;

	snap_take(vm, &a);
	fx->duration_ns = vmm_now_ns() - b->t0;
	fx->n = 0;
	for (size_t i = 0; i < NKSTATS; i++)
		fx_add(fx, "kernel", kstat_names[i], (int64_t)(a.k[i] - b->k[i]));
	FX_ENGINE(roots_obsoleted);
	FX_ENGINE(leafs_zapped);
	FX_ENGINE(tables_detached);
	FX_ENGINE(tables_freed);
	FX_ENGINE(tlb_flush_range);
	FX_ENGINE(tlb_flush_full);
	FX_ENGINE(faults);
	FX_ENGINE(pages_4k);
	FX_ENGINE(pages_2m);
	FX_ENGINE(pages_1g);
}

/* Starts an operation: a snapshot (when fx is wanted) and zeroed times. */
static void op_begin(struct vmm_vm *vm, struct snapshot *b, struct vmm_effect *fx)
{
	memset(fx, 0, sizeof(*fx));
	b->t0 = vmm_now_ns();
	snap_take(vm, b);
}

/* KVM_SET_USER_MEMORY_REGION(2), timed into fx. */
static int kvm_set(struct vmm_vm *vm, struct vmm_effect *fx, uint32_t id,
		   uint32_t flags, uint64_t gpa, uint64_t size, void *hva)
{
	uint64_t t = vmm_now_ns();
	int r = vm_kvm_slot_set(vm, id, flags, gpa, size, hva);

	fx->kernel_ns += vmm_now_ns() - t;
	return r;
}

/* ---- checks ------------------------------------------------------------ */

int vmm_range_check(unsigned bits, uint64_t gpa, uint64_t size, struct vmm_err *err)
{
	uint64_t end = gpa + size, limit = 1ull << bits;

	if (gpa & (PAGE - 1))
		return vmm_err_set(err, -EINVAL, "gpa", "gpa 0x%llx is not 4 KiB aligned",
				   (unsigned long long)gpa);
	if (size == 0)
		return vmm_err_set(err, -EINVAL, "size", "size must not be 0");
	if (size & (PAGE - 1))
		return vmm_err_set(err, -EINVAL, "size", "size 0x%llx is not a multiple of 4 KiB",
				   (unsigned long long)size);
	if (end < gpa || end > limit)
		return vmm_err_set(err, -EINVAL, "gpa",
				   "[0x%llx, 0x%llx) lies beyond the guest's %u-bit physical "
				   "address space (end 0x%llx)", (unsigned long long)gpa,
				   (unsigned long long)end, bits, (unsigned long long)limit);
	if (gpa < DEV_WINDOW + DEV_WINDOW_SIZE && DEV_WINDOW < end)
		return vmm_err_set(err, -EEXIST, "gpa",
				   "[0x%llx, 0x%llx) overlaps slotd's device window at 0x%llx",
				   (unsigned long long)gpa, (unsigned long long)end, DEV_WINDOW);
	return 0;
}

int vmm_overlap_error(struct vmm_err *err, uint64_t gpa, uint64_t size, uint32_t id,
		      uint64_t s_gpa, uint64_t s_size)
{
	return vmm_err_set(err, -EEXIST, "gpa",
			   "[0x%llx, 0x%llx) overlaps memslot %u at [0x%llx, 0x%llx)",
			   (unsigned long long)gpa, (unsigned long long)(gpa + size), id,
			   (unsigned long long)s_gpa, (unsigned long long)(s_gpa + s_size));
}

/* The range [gpa, gpa + size) passes vmm_range_check and is clear of
 * every slot but skip.  Called with slots_lock held. */
static int range_check_locked(struct vmm_vm *vm, uint64_t gpa, uint64_t size,
			      uint32_t skip, struct vmm_err *err)
{
	uint64_t end = gpa + size;
	int r = vmm_range_check(vmm_guest_phys_bits(vm->vmm), gpa, size, err);

	if (r)
		return r;
	/* Sorted and disjoint: only slots from the one before the lower
	 * bound up to the first one starting at or past end can overlap. */
	for (unsigned i = vm_slot_lower_bound_locked(vm, gpa), k = i ? i - 1 : 0;
	     k < vm->nr_slots && vm->slots[k]->gpa < end; k++) {
		const struct vmm_memslot *s = vm->slots[k];

		if (s->id != skip && gpa < s->gpa + s->size && s->gpa < end)
			return vmm_overlap_error(err, gpa, size, s->id, s->gpa, s->size);
	}
	return 0;
}

unsigned vmm_max_memslots(const struct vmm_caps *caps)
{
	return caps->max_memslots > 0 ? (unsigned)caps->max_memslots : 32764;
}

static unsigned max_slots(struct vmm_vm *vm)
{
	return vmm_max_memslots(&vm->vmm->caps);
}

/* Picks want, or the lowest free id.  Called with slots_lock held. */
static int id_pick_locked(struct vmm_vm *vm, uint32_t want, uint32_t *out,
			  struct vmm_err *err)
{
	unsigned max = max_slots(vm);

	if (vm->nr_slots >= max)
		return vmm_err_set(err, -ENOSPC, "slot",
				   "VM '%s' has %u memslots, the host's limit (KVM_CAP_NR_MEMSLOTS)",
				   vm->name, vm->nr_slots);
	if (want != VMM_SLOT_ANY) {
		if (want >= max)
			return vmm_err_set(err, -EINVAL, "slot", "slot id %u is not below %u",
					   want, max);
		if (vm_slot_find_locked(vm, want))
			return vmm_err_set(err, -EEXIST, "slot", "slot %u exists", want);
		*out = want;
		return 0;
	}
	/* Every id below id_hint is taken (vm_slot_list_* keep it so). */
	for (*out = vm->id_hint; *out < vm->ids_cap && vm->by_id[*out]; (*out)++)
		;
	return 0;
}

/* Memory of every slot of every VM, and of vm alone. */
static void memory_totals(struct vmm_vm *vm, uint64_t *vm_total, uint64_t *all)
{
	struct vmm *vmm = vm->vmm;

	*vm_total = *all = 0;
	pthread_mutex_lock(&vmm->lock);
	for (struct vmm_vm *v = vmm->vms; v; v = v->next) {
		uint64_t sum;

		pthread_rwlock_rdlock(&v->slots_lock);
		sum = v->slots_bytes;
		pthread_rwlock_unlock(&v->slots_lock);
		*all += sum;
		if (v == vm)
			*vm_total = sum;
	}
	pthread_mutex_unlock(&vmm->lock);
}

static int limits_check(struct vmm_vm *vm, uint64_t size, struct vmm_err *err)
{
	const struct vmm_config *cfg = &vm->vmm->cfg;
	uint64_t mine, all;

	if (!cfg->max_vm_memory && !cfg->max_total_memory)
		return 0;
	memory_totals(vm, &mine, &all);
	if (cfg->max_vm_memory && mine + size > cfg->max_vm_memory)
		return vmm_err_set(err, -E2BIG, "size",
				   "VM '%s' would have %llu bytes of memslots, above its "
				   "limit of %llu (--max-vm-memory)", vm->name,
				   (unsigned long long)(mine + size),
				   (unsigned long long)cfg->max_vm_memory);
	if (cfg->max_total_memory && all + size > cfg->max_total_memory)
		return vmm_err_set(err, -E2BIG, "size",
				   "all VMs would have %llu bytes of memslots, above the "
				   "daemon's limit of %llu (--max-memory)",
				   (unsigned long long)(all + size),
				   (unsigned long long)cfg->max_total_memory);
	return 0;
}

int vmm_slot_flags_check(const struct vmm_caps *caps, enum vmm_vm_type type,
			 unsigned kvm_vm_type, uint32_t flags, struct vmm_err *err)
{
	if (flags & ~(VMM_SLOT_READONLY | VMM_SLOT_DIRTY_LOG))
		return vmm_err_set(err, -EINVAL, "flags", "unknown flags 0x%x", flags);
	if ((flags & VMM_SLOT_READONLY) && !caps->readonly_mem)
		return vmm_err_set(err, -EOPNOTSUPP, "flags",
				   "readonly memslots need KVM_CAP_READONLY_MEM, which this host lacks");
	if ((flags & VMM_SLOT_READONLY) && type == VMM_VM_TYPE_PROTECTED &&
	    kvm_vm_type != KVM_X86_DEFAULT_VM)
		return vmm_err_set(err, -EOPNOTSUPP, "flags",
				   "this KVM VM type has no readonly memslots");
	return 0;
}

static int flags_check(struct vmm_vm *vm, uint32_t flags, struct vmm_err *err)
{
	return vmm_slot_flags_check(&vm->vmm->caps, vm->type, vm->kvm_type, flags, err);
}

static uint32_t kvm_flags_of(uint32_t flags)
{
	return (flags & VMM_SLOT_READONLY ? KVM_MEM_READONLY : 0) |
	       (flags & VMM_SLOT_DIRTY_LOG ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

/* ---- backings ----------------------------------------------------------- */

/* Whether slot s's backing is a private anonymous mapping (the only kind
 * the backing cache keeps).  Slot 0's RAM is never deleted. */
static bool backing_private_anon(const struct vmm_memslot *s)
{
	return s->id != 0 && s->fd < 0 && s->backing.kind == VMM_BACKING_ANON &&
	       !s->backing.shared;
}

/* What the engine's release callback unmaps once no reader can reach it. */
struct released {
	struct vmm *vmm;
	void *hva;
	uint64_t size;
	int fd;
	int prot;		/* a private anonymous backing's; else -1 */
	uint64_t *kvm_dirty;
};

/* Keeps a released private anonymous backing for reuse instead of
 * unmapping it, when it is small and the cache has room: emptied with
 * MADV_DONTNEED (outside the lock), it reads as zeros again, like a new
 * mapping.  A create then skips mmap (2-4 us of a 4 KiB memslot.create
 * here) and a slot deleted and created again and again stops paying
 * munmap and mmap each time.  Shared and file-backed mappings are never kept (MADV_DONTNEED
 * would not empty them).  Called on the call_rcu thread. */
static bool bcache_put(struct vmm_bcache *c, void *hva, uint64_t size, int prot)
{
	bool kept = false;

	if (prot < 0 || size > VMM_BCACHE_MAX_SIZE || madvise(hva, size, MADV_DONTNEED))
		return false;
	pthread_mutex_lock(&c->lock);
	if (c->n < VMM_BCACHE_SLOTS) {
		c->e[c->n].hva = hva;
		c->e[c->n].size = size;
		c->e[c->n].prot = prot;
		c->n++;
		c->kept++;
		kept = true;
	}
	pthread_mutex_unlock(&c->lock);
	return kept;
}

/* A cached backing of exactly size and prot, or NULL. */
static void *bcache_take(struct vmm_bcache *c, uint64_t size, int prot)
{
	void *hva = NULL;

	if (size > VMM_BCACHE_MAX_SIZE)
		return NULL;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = c->n; i-- > 0;)
		if (c->e[i].size == size && c->e[i].prot == prot) {
			hva = c->e[i].hva;
			c->e[i] = c->e[--c->n];
			c->reused++;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return hva;
}

void vmm_bcache_fini(struct vmm_bcache *c)
{
	for (unsigned i = 0; i < c->n; i++)
		munmap(c->e[i].hva, c->e[i].size);
	c->n = 0;
	pthread_mutex_destroy(&c->lock);
}

void vmm_bcache_stats(struct vmm *vmm, uint64_t *reused, uint64_t *kept, unsigned *held)
{
	pthread_mutex_lock(&vmm->bcache.lock);
	*reused = vmm->bcache.reused;
	*kept = vmm->bcache.kept;
	*held = vmm->bcache.n;
	pthread_mutex_unlock(&vmm->bcache.lock);
}

static void release_backing(void *arg)
{
	struct released *r = arg;

	if (!bcache_put(&r->vmm->bcache, r->hva, r->size, r->prot))
		munmap(r->hva, r->size);
	if (r->fd >= 0)
		close(r->fd);
	free(r->kvm_dirty);
	free(r);
}

struct mapping {
	void *hva;
	int fd;
};

/* The backing's descriptor: a dup of the one the caller passed (the
 * runner gets file and memfd backings from the control plane), or one
 * opened here; -1 for anonymous memory. */
static int backing_fd(struct vmm_vm *vm, uint32_t id, const struct vmm_memslot_params *p,
		      int *fd, struct vmm_err *err)
{
	int r = vmm_backing_check(p, err);

	*fd = -1;
	if (r || p->backing.kind == VMM_BACKING_ANON)
		return r;
	if (!p->has_fd)
		return vmm_backing_open((const char *const *)vm->vmm->file_dirs, vm->name, id, p,
					fd, err);
	*fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 3);
	if (*fd < 0)
		return vmm_err_set(err, -errno, "backing", "the backing's descriptor: %s",
				   strerror(errno));
	return 0;
}

static int backing_map(struct vmm_vm *vm, uint32_t id, const struct vmm_memslot_params *p,
		       struct mapping *m, struct vmm_err *err)
{
	const struct vmm_backing *b = &p->backing;
	bool file = b->kind == VMM_BACKING_FILE || (b->kind == VMM_BACKING_MEMFD && b->path[0]);
	bool shared = b->kind != VMM_BACKING_ANON && (b->kind != VMM_BACKING_FILE || b->shared);
	int prot = PROT_READ | (p->flags & VMM_SLOT_READONLY ? 0 : PROT_WRITE);
	int flags = (shared || (b->kind == VMM_BACKING_ANON && b->shared)) ? MAP_SHARED : MAP_PRIVATE;

	int r = backing_fd(vm, id, p, &m->fd, err);

	if (r)
		return r;
	if (m->fd < 0)
		flags |= MAP_ANONYMOUS | MAP_NORESERVE;
	if (b->kind == VMM_BACKING_ANON && !b->shared &&
	    (m->hva = bcache_take(&vm->vmm->bcache, p->size, prot)))
		return 0;	/* MADV_HUGEPAGE, if any, came with it */
	m->hva = mmap(NULL, p->size, prot, flags, m->fd, file ? (off_t)b->offset : 0);
	if (m->hva == MAP_FAILED) {
		int e = errno;

		if (m->fd >= 0)
			close(m->fd);
		return vmm_err_set(err, -e, "backing.kind",
				   b->kind == VMM_BACKING_HUGETLB && e == ENOMEM ?
				   "not enough free huge pages (see /proc/sys/vm/nr_hugepages)" :
				   "mapping the backing failed");
	}
	/* Best effort; below 2 MiB there is no huge page to ask for. */
	if (b->kind == VMM_BACKING_ANON && p->size >= HUGE_2M)
		madvise(m->hva, p->size, MADV_HUGEPAGE);
	return 0;
}

/* ---- create, move, delete, flags --------------------------------------- */

/* Checks p and picks the id.  Takes slots_lock for reading. */
static int create_check(struct vmm_vm *vm, const struct vmm_memslot_params *p,
			uint32_t *id, struct vmm_err *err)
{
	int r = flags_check(vm, p->flags, err);

	if (r)
		return r;
	pthread_rwlock_rdlock(&vm->slots_lock);
	r = range_check_locked(vm, p->gpa, p->size, VMM_SLOT_ANY, err);
	if (!r)
		r = id_pick_locked(vm, p->id, id, err);
	pthread_rwlock_unlock(&vm->slots_lock);
	return r ? r : limits_check(vm, p->size, err);
}

/* KVM first (it may refuse what we allowed), then the engine, then the
 * list; each step undone if a later one fails. */
static int create_apply(struct vmm_vm *vm, const struct vmm_memslot_params *p,
			uint32_t id, struct mapping *m, struct vmm_effect *fx,
			struct vmm_err *err)
{
	struct vmm_memslot s = { .id = id, .flags = kvm_flags_of(p->flags), .gpa = p->gpa,
				 .size = p->size, .hva = m->hva, .fd = m->fd,
				 .backing = p->backing };
	uint64_t t;
	int r;

	r = kvm_set(vm, fx, id, s.flags, p->gpa, p->size, m->hva);
	if (r)
		return vmm_err_set(err, r, "gpa", "KVM refused memslot %u at 0x%llx: %s", id,
				   (unsigned long long)p->gpa, strerror(-r));
	t = vmm_now_ns();
	r = mmu_slot_create(vm->mmu, id, p->gpa, p->size, m->hva, vm_slot_mmu_flags(s.flags));
	fx->engine_ns += vmm_now_ns() - t;
	if (!r)
		r = vm_slot_list_insert(vm, &s);
	if (r) {
		mmu_slot_delete(vm->mmu, id, NULL, NULL);
		kvm_set(vm, fx, id, s.flags, p->gpa, 0, m->hva);
		return vmm_err_set(err, r, NULL, "the engine refused memslot %u: %s; "
				   "KVM's side was undone", id, strerror(-r));
	}
	return 0;
}

/* The create step of a change (alone or in a transaction). */
static int do_create(struct vmm_vm *vm, const struct vmm_memslot_params *p,
		     uint32_t *id, struct vmm_effect *fx, struct vmm_err *err)
{
	struct mapping m;
	int r;

	r = create_check(vm, p, id, err);
	if (!r)
		r = backing_map(vm, *id, p, &m, err);
	if (r)
		return r;
	r = create_apply(vm, p, *id, &m, fx, err);
	if (r) {
		munmap(m.hva, p->size);
		if (m.fd >= 0)
			close(m.fd);
	}
	return r;
}

/* Copies slot id's metadata; -ENOENT naming the field when absent or 0. */
static int slot_get(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out,
		    struct vmm_err *err)
{
	struct vmm_memslot *s;

	pthread_rwlock_rdlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (s)
		*out = *s;
	pthread_rwlock_unlock(&vm->slots_lock);
	if (!s)
		return vmm_err_set(err, -ENOENT, "slot", "VM '%s' has no memslot %u",
				   vm->name, id);
	if (id == 0)
		return vmm_err_set(err, -EPERM, "slot",
				   "slot 0 is the VM's boot RAM; it cannot be moved or deleted");
	return 0;
}

/* Removes slot id from KVM, the engine and the list.  With deferred, the
 * backing is handed back in *gone (a transaction may still need it);
 * otherwise the engine unmaps it after the grace period. */
static int do_delete(struct vmm_vm *vm, uint32_t id, bool deferred,
		     struct vmm_memslot *gone, struct vmm_effect *fx, struct vmm_err *err)
{
	struct released *rel = NULL;
	struct vmm_memslot s;
	uint64_t t;
	int r = slot_get(vm, id, &s, err);

	if (r)
		return r;
	if (!deferred && !(rel = malloc(sizeof(*rel))))
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	r = kvm_set(vm, fx, id, s.flags, s.gpa, 0, s.hva);
	if (r) {
		free(rel);
		return vmm_err_set(err, r, "slot", "KVM refused to delete memslot %u: %s",
				   id, strerror(-r));
	}
	vm_slot_list_remove(vm, id, &s);
	if (rel)
		*rel = (struct released){
			.vmm = vm->vmm, .hva = s.hva, .size = s.size, .fd = s.fd,
			.prot = backing_private_anon(&s) ?
				PROT_READ | (s.flags & KVM_MEM_READONLY ? 0 : PROT_WRITE) : -1,
			.kvm_dirty = s.kvm_dirty,
		};
	t = vmm_now_ns();
	mmu_slot_delete(vm->mmu, id, rel ? release_backing : NULL, rel);
	fx->engine_ns += vmm_now_ns() - t;
	if (gone)
		*gone = s;
	return 0;
}

static int do_move(struct vmm_vm *vm, uint32_t id, uint64_t gpa,
		   struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_memslot s;
	uint64_t t;
	int r = slot_get(vm, id, &s, err);

	if (r)
		return r;
	pthread_rwlock_rdlock(&vm->slots_lock);
	r = range_check_locked(vm, gpa, s.size, id, err);
	pthread_rwlock_unlock(&vm->slots_lock);
	if (r)
		return r;
	/* Same id, same size and host address, new GPA: KVM_MR_MOVE. */
	r = kvm_set(vm, fx, id, s.flags, gpa, s.size, s.hva);
	if (r)
		return vmm_err_set(err, r, "gpa", "KVM refused to move memslot %u to 0x%llx: %s",
				   id, (unsigned long long)gpa, strerror(-r));
	t = vmm_now_ns();
	r = mmu_slot_move(vm->mmu, id, gpa);
	fx->engine_ns += vmm_now_ns() - t;
	if (r) {
		kvm_set(vm, fx, id, s.flags, s.gpa, s.size, s.hva);
		return vmm_err_set(err, r, "gpa", "the engine refused the move: %s; KVM's "
				   "side was undone", strerror(-r));
	}
	vm_slot_list_remove(vm, id, &s);
	s.gpa = gpa;
	vm_slot_list_insert(vm, &s);
	return 0;
}

int vmm_memslot_create(struct vmm_vm *vm, const struct vmm_memslot_params *p,
		       uint32_t *id, struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct snapshot b;
	int r;

	fx = fx ? fx : &local;
	op_begin(vm, &b, fx);
	r = do_create(vm, p, id, fx, err);
	if (!r)
		vm_boot_slots_update(vm);
	fx_finish(vm, &b, fx);
	return r;
}

int vmm_memslot_move(struct vmm_vm *vm, uint32_t id, uint64_t new_gpa,
		     struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct snapshot b;
	int r;

	fx = fx ? fx : &local;
	op_begin(vm, &b, fx);
	r = do_move(vm, id, new_gpa, fx, err);
	if (!r)
		vm_boot_slots_update(vm);
	fx_finish(vm, &b, fx);
	return r;
}

int vmm_memslot_delete(struct vmm_vm *vm, uint32_t id, struct vmm_effect *fx,
		       struct vmm_err *err)
{
	struct vmm_effect local;
	struct snapshot b;
	int r;

	fx = fx ? fx : &local;
	op_begin(vm, &b, fx);
	r = do_delete(vm, id, false, NULL, fx, err);
	if (!r)
		vm_boot_slots_update(vm);
	fx_finish(vm, &b, fx);
	return r;
}

/* Sets the slot's KVM flags in the list. */
static void list_flags_set(struct vmm_vm *vm, uint32_t id, uint32_t kflags)
{
	struct vmm_memslot *s;

	pthread_rwlock_wrlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (s) {
		s->flags = kflags;
		if (!(kflags & KVM_MEM_LOG_DIRTY_PAGES)) {
			free(s->kvm_dirty);
			s->kvm_dirty = NULL;
		}
	}
	pthread_rwlock_unlock(&vm->slots_lock);
}

int vmm_memslot_set_flags(struct vmm_vm *vm, uint32_t id, bool dirty_log,
			  struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct vmm_memslot s;
	struct snapshot b;
	uint32_t kflags;
	uint64_t t;
	int r;

	fx = fx ? fx : &local;
	op_begin(vm, &b, fx);
	pthread_rwlock_rdlock(&vm->slots_lock);
	r = vm_slot_find_locked(vm, id) ? 0 : -ENOENT;
	if (!r)
		s = *vm_slot_find_locked(vm, id);
	pthread_rwlock_unlock(&vm->slots_lock);
	if (r)
		return vmm_err_set(err, r, "slot", "VM '%s' has no memslot %u", vm->name, id);
	kflags = dirty_log ? s.flags | KVM_MEM_LOG_DIRTY_PAGES : s.flags & ~KVM_MEM_LOG_DIRTY_PAGES;
	if (kflags == s.flags)
		goto out;
	r = kvm_set(vm, fx, id, kflags, s.gpa, s.size, s.hva);
	if (r)
		return vmm_err_set(err, r, "dirty_log", "KVM refused the flags of memslot %u: %s",
				   id, strerror(-r));
	t = vmm_now_ns();
	r = mmu_slot_set_flags(vm->mmu, id, vm_slot_mmu_flags(kflags));
	fx->engine_ns += vmm_now_ns() - t;
	if (r) {
		kvm_set(vm, fx, id, s.flags, s.gpa, s.size, s.hva);
		return vmm_err_set(err, r, "dirty_log", "the engine refused: %s", strerror(-r));
	}
	list_flags_set(vm, id, kflags);
out:
	fx_finish(vm, &b, fx);
	return 0;
}

/* ---- dirty log ----------------------------------------------------------- */

/* ORs KVM's log (which KVM_GET_DIRTY_LOG clears) into the slot's
 * accumulated bitmap.  Called with slots_lock held for writing. */
static int kvm_dirty_fetch_locked(struct vmm_vm *vm, struct vmm_memslot *s,
				  uint64_t words)
{
	uint64_t *tmp = calloc(words, 8);
	struct kvm_dirty_log log = { .slot = s->id, .dirty_bitmap = tmp };
	int r = 0;

	if (!tmp)
		return -ENOMEM;
	if (!s->kvm_dirty && !(s->kvm_dirty = calloc(words, 8)))
		r = -ENOMEM;
	else if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0)
		r = -errno;
	for (uint64_t i = 0; !r && i < words; i++)
		s->kvm_dirty[i] |= tmp[i];
	free(tmp);
	return r;
}

int vmm_memslot_dirty_log(struct vmm_vm *vm, uint32_t id, bool clear,
			  uint64_t **bitmap, uint64_t *npages, uint64_t *ndirty,
			  struct vmm_err *err)
{
	struct vmm_memslot *s;
	uint64_t words, *mine;
	int r;

	pthread_rwlock_wrlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (!s || !(s->flags & KVM_MEM_LOG_DIRTY_PAGES)) {
		pthread_rwlock_unlock(&vm->slots_lock);
		return s ? vmm_err_set(err, -EINVAL, "slot", "dirty logging is off for memslot %u "
				       "(memslot.set_flags turns it on)", id)
			 : vmm_err_set(err, -ENOENT, "slot", "VM '%s' has no memslot %u", vm->name, id);
	}
	*npages = s->size / PAGE;
	words = (*npages + 63) / 64;
	mine = calloc(words, 8);
	r = mine ? kvm_dirty_fetch_locked(vm, s, words) : -ENOMEM;
	if (!r)
		r = mmu_dirty_log_get(vm->mmu, id, mine, words * 8, clear);
	*ndirty = 0;
	for (uint64_t i = 0; !r && i < words; i++) {
		mine[i] |= s->kvm_dirty[i];
		*ndirty += (uint64_t)__builtin_popcountll(mine[i]);
	}
	if (!r && clear)
		memset(s->kvm_dirty, 0, words * 8);
	pthread_rwlock_unlock(&vm->slots_lock);
	if (r) {
		free(mine);
		return vmm_err_set(err, r, "slot", "reading the dirty log of memslot %u: %s",
				   id, strerror(-r));
	}
	*bitmap = mine;
	return 0;
}

/* ---- transactions ------------------------------------------------------ */

/* What undoing one applied op needs. */
struct undo {
	enum vmm_memslot_op_kind kind;
	uint32_t id;
	uint64_t old_gpa;		/* MOVE */
	struct vmm_memslot gone;	/* DELETE: still mapped */
};

/* Puts a slot deleted in this transaction back, on both sides. */
static void undelete(struct vmm_vm *vm, struct vmm_memslot *s, struct vmm_effect *fx)
{
	kvm_set(vm, fx, s->id, s->flags, s->gpa, s->size, s->hva);
	mmu_slot_create(vm->mmu, s->id, s->gpa, s->size, s->hva, vm_slot_mmu_flags(s->flags));
	vm_slot_list_insert(vm, s);
}

static void txn_undo(struct vmm_vm *vm, struct undo *u, size_t n, struct vmm_effect *fx)
{
	while (n--) {
		if (u[n].kind == VMM_OP_CREATE)
			do_delete(vm, u[n].id, false, NULL, fx, NULL);
		else if (u[n].kind == VMM_OP_MOVE)
			do_move(vm, u[n].id, u[n].old_gpa, fx, NULL);
		else
			undelete(vm, &u[n].gone, fx);
	}
}

static int txn_op(struct vmm_vm *vm, const struct vmm_memslot_op *op, struct undo *u,
		  uint32_t *id, struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_memslot s;
	int r;

	u->kind = op->kind;
	u->id = *id = op->id;
	switch (op->kind) {
	case VMM_OP_CREATE:
		r = do_create(vm, &op->create, &u->id, fx, err);
		*id = u->id;
		return r;
	case VMM_OP_MOVE:
		r = slot_get(vm, op->id, &s, err);
		if (r)
			return r;
		u->old_gpa = s.gpa;
		return do_move(vm, op->id, op->gpa, fx, err);
	case VMM_OP_DELETE:
		return do_delete(vm, op->id, true, &u->gone, fx, err);
	}
	return vmm_err_set(err, -EINVAL, "kind", "unknown operation");
}

/* Unmaps the backings of the slots a committed transaction deleted, after
 * the engine's grace period. */
static void txn_release(struct vmm_vm *vm, struct undo *u, size_t n)
{
	bool any = false;

	for (size_t i = 0; i < n; i++)
		any |= u[i].kind == VMM_OP_DELETE;
	if (!any)
		return;
	mmu_synchronize(vm->mmu);
	for (size_t i = 0; i < n; i++) {
		if (u[i].kind != VMM_OP_DELETE)
			continue;
		munmap(u[i].gone.hva, u[i].gone.size);
		if (u[i].gone.fd >= 0)
			close(u[i].gone.fd);
		free(u[i].gone.kvm_dirty);
	}
}

int vmm_memslot_transaction(struct vmm_vm *vm, const struct vmm_memslot_op *ops,
			    size_t n, uint32_t *ids, size_t *failed,
			    const struct vmm_txn_commit *commit,
			    struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	struct undo *u;
	struct snapshot b;
	bool held;
	size_t i;
	int r;

	fx = fx ? fx : &local;
	*failed = SIZE_MAX;
	if (n == 0 || n > VMM_TXN_MAX)
		return vmm_err_set(err, -EINVAL, "ops", "a transaction has 1..%u operations",
				   VMM_TXN_MAX);
	u = calloc(n, sizeof(*u));
	if (!u)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	op_begin(vm, &b, fx);
	r = vm_vcpus_hold(vm, &held, err);
	for (i = 0; !r && i < n; i++)
		r = txn_op(vm, &ops[i], &u[i], &ids[i], fx, err);
	if (r && i > 0) {
		*failed = i - 1;
		txn_undo(vm, u, i - 1, fx);
	}
	/* Before the vCPUs run again: the guest never sees a layout that
	 * could still be taken back. */
	if (!r)
		fx_finish(vm, &b, fx);
	if (!r && commit && (r = commit->fn(commit->arg, ids, fx))) {
		txn_undo(vm, u, n, fx);
		vmm_err_set(err, r, NULL, "the transaction was undone: its commit failed (%s)",
			    strerror(-r));
	}
	if (!r)
		vm_boot_slots_update(vm);
	vm_vcpus_release(vm, held);
	if (!r)
		txn_release(vm, u, n);
	if (r)
		fx_finish(vm, &b, fx);
	else
		fx->duration_ns = vmm_now_ns() - b.t0;
	free(u);
	return r;
}
