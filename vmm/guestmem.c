/* Guest memory by GPA through the engine (mmu/): device DMA on vCPU
 * threads and the memory API on the control thread.  A host address from
 * the engine stays valid until the calling thread's next quiescent state,
 * so nothing here may block between a translation and its use. */
#include <errno.h>
#include <string.h>

#include "vmm/internal.h"

#define PAGE	MMU_PAGE_SIZE

/* Bytes from gpa to the end of its 4 KiB page, at most len. */
static uint64_t page_chunk(uint64_t gpa, uint64_t len)
{
	uint64_t n = PAGE - (gpa & (PAGE - 1));

	return n < len ? n : len;
}

static int map_err(int r)
{
	if (r == -EROFS)
		return -EACCES;
	if (r == -ENOENT || r == -EFAULT || r == -EINVAL)
		return -EFAULT;
	return r;
}

int vm_guest_range_check(struct vmm_vm *vm, uint64_t gpa, uint64_t len,
			 bool write)
{
	unsigned access = write ? MMU_ACCESS_WRITE : MMU_ACCESS_READ;
	uint64_t done, n;
	void *hva;

	if (gpa + len < gpa)
		return -EFAULT;
	for (done = 0; done < len; done += n) {
		int r;

		n = page_chunk(gpa + done, len - done);
		r = mmu_translate(vm->mmu, gpa + done, n, MMU_ACCESS_READ, &hva);
		if (r)
			return map_err(r);
		/* A write check must not dirty the page before the write. */
		if (write && (r = mmu_translate(vm->mmu, gpa + done, n, access, &hva)))
			return map_err(r);
	}
	return 0;
}

int vm_guest_copy(struct vmm_vm *vm, uint64_t gpa, void *buf, uint64_t len,
		  bool write)
{
	uint64_t done, n;
	void *hva;
	int r;

	/* Check it all first: an access is done whole or not at all. */
	r = vm_guest_range_check(vm, gpa, len, write);
	if (r)
		return r;
	for (done = 0; done < len; done += n) {
		n = page_chunk(gpa + done, len - done);
		r = mmu_translate(vm->mmu, gpa + done, n,
				  write ? MMU_ACCESS_WRITE : MMU_ACCESS_READ, &hva);
		if (r)
			return map_err(r);
		if (write)
			memcpy(hva, (uint8_t *)buf + done, n);
		else
			memcpy((uint8_t *)buf + done, hva, n);
	}
	return 0;
}

bool vm_reader_enter(struct vmm_vm *vm)
{
	/* -EEXIST: this thread already reads this VM (a vCPU thread). */
	return mmu_reader_register(vm->mmu) == 0;
}

void vm_reader_leave(struct vmm_vm *vm, bool registered)
{
	if (registered)
		mmu_reader_unregister(vm->mmu);
}
