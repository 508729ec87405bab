/* Per-VM memslot list (slot 0 = boot RAM): the metadata of each slot,
 * kept in step with KVM and the engine.  Guest memory itself is reached
 * only through the engine (guestmem.c), whose grace periods decide when a
 * removed slot's backing may be unmapped; slots_lock guards the list. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/internal.h"

#define HUGE_2M (2ull << 20)

int vm_kvm_slot_set(struct vmm_vm *vm, uint32_t id, uint32_t kvm_flags,
		    uint64_t gpa, uint64_t size, void *hva)
{
	int r;

	if (vm->vmm->caps.user_memory2) {
		struct kvm_userspace_memory_region2 r2 = {
			.slot = id, .flags = kvm_flags, .guest_phys_addr = gpa,
			.memory_size = size, .userspace_addr = (uintptr_t)hva,
		};
		r = ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION2, &r2);
	} else {
		struct kvm_userspace_memory_region r1 = {
			.slot = id, .flags = kvm_flags, .guest_phys_addr = gpa,
			.memory_size = size, .userspace_addr = (uintptr_t)hva,
		};
		r = ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r1);
	}
	return r < 0 ? -errno : 0;
}

uint32_t vm_slot_mmu_flags(uint32_t kvm_flags)
{
	return (kvm_flags & KVM_MEM_READONLY ? MMU_SLOT_READONLY : 0) |
	       (kvm_flags & KVM_MEM_LOG_DIRTY_PAGES ? MMU_SLOT_DIRTY_LOG : 0);
}

struct vmm_memslot *vm_slot_find_locked(struct vmm_vm *vm, uint32_t id)
{
	return id < vm->ids_cap ? vm->by_id[id] : NULL;
}

unsigned vm_slot_lower_bound_locked(struct vmm_vm *vm, uint64_t gpa)
{
	unsigned lo = 0, hi = vm->nr_slots;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (vm->slots[mid]->gpa < gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Sets by_id[id] (NULL frees the id), growing the map as needed.
 * Called with slots_lock held for writing. */
static int id_set_locked(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *s)
{
	if (id >= vm->ids_cap) {
		unsigned cap = id < 1024 ? 1024 : id * 2;
		struct vmm_memslot **n;

		if (!s)
			return 0;
		n = realloc(vm->by_id, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		memset(n + vm->ids_cap, 0, (cap - vm->ids_cap) * sizeof(*n));
		vm->by_id = n;
		vm->ids_cap = cap;
	}
	vm->by_id[id] = s;
	if (!s && id < vm->id_hint)
		vm->id_hint = id;
	while (vm->id_hint < vm->ids_cap && vm->by_id[vm->id_hint])
		vm->id_hint++;
	return 0;
}

int vm_slot_list_insert(struct vmm_vm *vm, const struct vmm_memslot *s)
{
	struct vmm_memslot *copy;
	unsigned i;

	pthread_rwlock_wrlock(&vm->slots_lock);
	copy = vm->nr_spare ? vm->spare[--vm->nr_spare] : malloc(sizeof(*copy));
	if (!copy) {
		pthread_rwlock_unlock(&vm->slots_lock);
		return -ENOMEM;
	}
	*copy = *s;
	if (vm->nr_slots == vm->cap_slots) {
		unsigned cap = vm->cap_slots ? vm->cap_slots * 2 : 8;
		struct vmm_memslot **n = realloc(vm->slots, cap * sizeof(*n));

		if (!n)
			goto nomem;
		vm->slots = n;
		vm->cap_slots = cap;
	}
	if (id_set_locked(vm, s->id, copy))
		goto nomem;
	i = vm_slot_lower_bound_locked(vm, s->gpa);
	memmove(&vm->slots[i + 1], &vm->slots[i], (vm->nr_slots - i) * sizeof(vm->slots[0]));
	vm->slots[i] = copy;
	vm->nr_slots++;
	vm->slots_bytes += s->size;
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
nomem:
	pthread_rwlock_unlock(&vm->slots_lock);
	free(copy);
	return -ENOMEM;
}

int vm_slot_list_remove(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out)
{
	struct vmm_memslot *s;
	unsigned i;

	pthread_rwlock_wrlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	if (!s) {
		pthread_rwlock_unlock(&vm->slots_lock);
		return -ENOENT;
	}
	/* GPAs are disjoint: the lower bound of its gpa is the slot. */
	i = vm_slot_lower_bound_locked(vm, s->gpa);
	memmove(&vm->slots[i], &vm->slots[i + 1],
		(vm->nr_slots - i - 1) * sizeof(vm->slots[0]));
	vm->nr_slots--;
	vm->slots_bytes -= s->size;
	id_set_locked(vm, id, NULL);
	*out = *s;
	if (vm->nr_spare < sizeof(vm->spare) / sizeof(vm->spare[0]))
		vm->spare[vm->nr_spare++] = s;
	else
		free(s);
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
}

int vm_memslot_add(struct vmm_vm *vm, uint32_t id, uint64_t gpa,
		   uint64_t size, void *hva, int fd, uint32_t flags)
{
	struct vmm_memslot s = { .id = id, .flags = flags, .gpa = gpa,
				 .size = size, .hva = hva, .fd = fd };
	int r;

	s.backing.kind = fd >= 0 ? VMM_BACKING_MEMFD : VMM_BACKING_ANON;
	s.backing.shared = fd >= 0;
	r = vm_kvm_slot_set(vm, id, flags, gpa, size, hva);
	if (r)
		return r;
	r = mmu_slot_create(vm->mmu, id, gpa, size, hva, vm_slot_mmu_flags(flags));
	if (!r)
		r = vm_slot_list_insert(vm, &s);
	if (r) {
		mmu_slot_delete(vm->mmu, id, NULL, NULL);
		vm_kvm_slot_set(vm, id, flags, gpa, 0, hva);
	}
	return r;
}

int vm_memslot_remove(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out)
{
	struct vmm_memslot *s;
	int r;

	pthread_rwlock_rdlock(&vm->slots_lock);
	s = vm_slot_find_locked(vm, id);
	r = s ? vm_kvm_slot_set(vm, id, s->flags, s->gpa, 0, s->hva) : -ENOENT;
	pthread_rwlock_unlock(&vm->slots_lock);
	if (r)
		return r;
	mmu_slot_delete(vm->mmu, id, NULL, NULL);
	vm_slot_list_remove(vm, id, out);
	/* No engine reader can reach the backing after this. */
	mmu_synchronize(vm->mmu);
	return 0;
}

/* Maps size bytes of fd (or anonymous memory if fd < 0) at a 2 MiB
 * aligned address so THP can back it. */
static void *map_aligned(int fd, uint64_t size)
{
	int flags = fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE : MAP_SHARED;
	uint8_t *res, *p, *end;

	res = mmap(NULL, size + HUGE_2M, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return NULL;
	p = (uint8_t *)(((uintptr_t)res + HUGE_2M - 1) & ~(HUGE_2M - 1));
	if (mmap(p, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED,
		 fd, 0) == MAP_FAILED) {
		munmap(res, size + HUGE_2M);
		return NULL;
	}
	end = res + size + HUGE_2M;
	if (p > res)
		munmap(res, (size_t)(p - res));
	if (end > p + size)
		munmap(p + size, (size_t)(end - (p + size)));
	return p;
}

/* Allocates boot RAM (memfd or anonymous, THP advised) as slot 0. */
int vm_boot_ram_create(struct vmm_vm *vm)
{
	void *hva;
	int fd = -1, r;

	if (vm->ram_backing == VMM_RAM_MEMFD) {
		fd = memfd_create(vm->name, MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)vm->memory_bytes) < 0) {
			r = -errno;
			goto err_fd;
		}
	}
	hva = map_aligned(fd, vm->memory_bytes);
	if (!hva) {
		r = -ENOMEM;
		goto err_fd;
	}
	madvise(hva, vm->memory_bytes, MADV_HUGEPAGE);	/* best effort */
	r = vm_memslot_add(vm, 0, 0, vm->memory_bytes, hva, fd, 0);
	if (r)
		goto err_map;
	return 0;
err_map:
	munmap(hva, vm->memory_bytes);
err_fd:
	if (fd >= 0)
		close(fd);
	return r;
}

/* Zeroes boot RAM and returns its pages to the system (reboot). */
int vm_boot_ram_clear(struct vmm_vm *vm)
{
	struct vmm_memslot *s = vm->slots[0];

	if (s->fd < 0)
		return madvise(s->hva, s->size, MADV_DONTNEED) < 0 ? -errno : 0;
	if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)s->size) < 0)
		return -errno;
	return 0;
}

/* Unmaps and closes every slot's backing.  Called with no vCPU thread
 * alive and the KVM VM about to be closed. */
void vm_memslots_free(struct vmm_vm *vm)
{
	pthread_rwlock_wrlock(&vm->slots_lock);
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		struct vmm_memslot *s = vm->slots[i];

		munmap(s->hva, s->size);
		if (s->fd >= 0)
			close(s->fd);
		free(s->kvm_dirty);
		free(s);
	}
	while (vm->nr_spare)
		free(vm->spare[--vm->nr_spare]);
	free(vm->slots);
	free(vm->by_id);
	vm->slots = NULL;
	vm->by_id = NULL;
	vm->nr_slots = vm->cap_slots = vm->ids_cap = vm->id_hint = 0;
	vm->slots_bytes = 0;
	pthread_rwlock_unlock(&vm->slots_lock);
}

/* Rewrites the boot parameters' memslot map, so a running guest that
 * rereads it sees the current layout. */
void vm_boot_slots_update(struct vmm_vm *vm)
{
	struct vmm_boot_params bp;
	unsigned n = 0;

	pthread_rwlock_rdlock(&vm->slots_lock);
	for (unsigned i = 0; i < vm->nr_slots && n < VMM_BOOT_MAX_SLOTS; i++, n++) {
		bp.slots[n].gpa = vm->slots[i]->gpa;
		bp.slots[n].size = vm->slots[i]->size;
		bp.slots[n].id = vm->slots[i]->id;
		bp.slots[n].flags = vm->slots[i]->flags;
		bp.slots[n].reserved = 0;
	}
	bp.nr_slots = n;
	bp.nr_slots_total = vm->nr_slots;
	/* Slot 0 (boot RAM) holds the boot parameters and is never removed.
	 * The entries in use only: the guest reads nr_slots of them, and the
	 * rest of bp's 3 KiB of slots is stack garbage. */
	memcpy((uint8_t *)vm->slots[0]->hva + VMM_GPA_BOOT +
	       offsetof(struct vmm_boot_params, nr_slots), &bp.nr_slots,
	       offsetof(struct vmm_boot_params, slots[n]) -
	       offsetof(struct vmm_boot_params, nr_slots));
	pthread_rwlock_unlock(&vm->slots_lock);
}
