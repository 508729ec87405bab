/* Per-VM memslot list (slot 0 = boot RAM) and guest memory access by GPA.
 * Contract for code that changes slots later: take slots_lock for writing
 * before unmapping a slot's backing, so that readers holding it for
 * reading (device DMA, the memory API) never touch freed memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/internal.h"

#define HUGE_2M (2ull << 20)

/* Tells KVM about one slot, with the v2 ioctl when the host has it. */
static int kvm_slot_set(struct vmm_vm *vm, const struct vmm_memslot *s)
{
	int r;

	if (vm->vmm->caps.user_memory2) {
		struct kvm_userspace_memory_region2 r2 = {
			.slot = s->id, .flags = s->flags,
			.guest_phys_addr = s->gpa, .memory_size = s->size,
			.userspace_addr = (uintptr_t)s->hva,
		};
		r = ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION2, &r2);
	} else {
		struct kvm_userspace_memory_region r1 = {
			.slot = s->id, .flags = s->flags,
			.guest_phys_addr = s->gpa, .memory_size = s->size,
			.userspace_addr = (uintptr_t)s->hva,
		};
		r = ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r1);
	}
	return r < 0 ? -errno : 0;
}

/* Registers a slot with KVM and inserts it, sorted by GPA, into the list.
 * Takes slots_lock for writing.  On success the list owns hva and fd. */
int vm_memslot_add(struct vmm_vm *vm, uint32_t id, uint64_t gpa,
		   uint64_t size, void *hva, int fd, uint32_t flags)
{
	struct vmm_memslot s = { id, flags, gpa, size, hva, fd };
	unsigned i;
	int r;

	r = kvm_slot_set(vm, &s);
	if (r)
		return r;
	pthread_rwlock_wrlock(&vm->slots_lock);
	if (vm->nr_slots == vm->cap_slots) {
		unsigned cap = vm->cap_slots ? vm->cap_slots * 2 : 8;
		struct vmm_memslot *n = realloc(vm->slots, cap * sizeof(*n));

		if (!n) {
			pthread_rwlock_unlock(&vm->slots_lock);
			s.size = 0;
			kvm_slot_set(vm, &s);
			return -ENOMEM;
		}
		vm->slots = n;
		vm->cap_slots = cap;
	}
	for (i = vm->nr_slots; i > 0 && vm->slots[i - 1].gpa > gpa; i--)
		vm->slots[i] = vm->slots[i - 1];
	vm->slots[i] = s;
	vm->nr_slots++;
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
}

/* Deletes slot id from KVM and from the list; *out gets the slot so the
 * caller unmaps its backing.  Once this returns no reader holds a pointer
 * into it: the removal happens under slots_lock taken for writing. */
int vm_memslot_remove(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out)
{
	struct vmm_memslot gone;
	unsigned i;
	int r;

	pthread_rwlock_wrlock(&vm->slots_lock);
	for (i = 0; i < vm->nr_slots && vm->slots[i].id != id; i++)
		;
	if (i == vm->nr_slots) {
		pthread_rwlock_unlock(&vm->slots_lock);
		return -ENOENT;
	}
	gone = vm->slots[i];
	gone.size = 0;
	r = kvm_slot_set(vm, &gone);	/* size 0 deletes */
	if (!r) {
		*out = vm->slots[i];
		for (; i + 1 < vm->nr_slots; i++)
			vm->slots[i] = vm->slots[i + 1];
		vm->nr_slots--;
	}
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
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
	struct vmm_memslot *s = &vm->slots[0];

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
		munmap(vm->slots[i].hva, vm->slots[i].size);
		if (vm->slots[i].fd >= 0)
			close(vm->slots[i].fd);
	}
	free(vm->slots);
	vm->slots = NULL;
	vm->nr_slots = vm->cap_slots = 0;
	pthread_rwlock_unlock(&vm->slots_lock);
}

/* Host address of gpa, with *avail the bytes (<= len) contiguous in that
 * slot; NULL if gpa has no slot or a write hits a read-only one.
 * Called with slots_lock held (either mode). */
void *vm_gpa_hva_locked(struct vmm_vm *vm, uint64_t gpa, uint64_t len,
			bool write, uint64_t *avail)
{
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		struct vmm_memslot *s = &vm->slots[i];
		uint64_t off = gpa - s->gpa;

		if (gpa < s->gpa || off >= s->size)
			continue;
		if (write && (s->flags & KVM_MEM_READONLY))
			return NULL;
		*avail = s->size - off < len ? s->size - off : len;
		return (uint8_t *)s->hva + off;
	}
	return NULL;
}

/* Copies len bytes between buf and guest memory at gpa, across adjacent
 * slots; -EFAULT if any byte is unbacked (nothing is copied then),
 * -EACCES for a write into a read-only slot.  Takes slots_lock. */
int vm_gpa_copy(struct vmm_vm *vm, uint64_t gpa, void *buf, uint64_t len,
		bool write)
{
	uint64_t done, avail;
	uint8_t *hva;
	int r = 0;

	pthread_rwlock_rdlock(&vm->slots_lock);
	for (done = 0; done < len; done += avail) {	/* check first */
		if (!vm_gpa_hva_locked(vm, gpa + done, len - done, false,
				       &avail)) {
			r = -EFAULT;
			goto out;
		}
		if (write && !vm_gpa_hva_locked(vm, gpa + done, len - done,
						true, &avail)) {
			r = -EACCES;
			goto out;
		}
	}
	for (done = 0; done < len; done += avail) {
		hva = vm_gpa_hva_locked(vm, gpa + done, len - done, write,
					&avail);
		if (write)
			memcpy(hva, (uint8_t *)buf + done, avail);
		else
			memcpy((uint8_t *)buf + done, hva, avail);
	}
out:
	pthread_rwlock_unlock(&vm->slots_lock);
	return r;
}
