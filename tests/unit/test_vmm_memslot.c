/* vmm memslot list under a running guest: a slot added after boot is
 * reachable by the guest, DMA and the memory API; once deleted, DMA gets
 * an error status and the memory API -EFAULT, never freed memory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/lib/vmm_helpers.h"
#include "vmm/internal.h"

#define SLOT_GPA (1ull << 30)
#define SLOT_SIZE (2ull << 20)

VMM_T_SUITE(vmm_memslot, 60);

/* Adds slot 1 at SLOT_GPA backed by anonymous memory filled with 0x5a. */
static void slot_add(struct vmm_vm *vm)
{
	void *hva = mmap(NULL, SLOT_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	cr_assert_neq(hva, MAP_FAILED, "mmap");
	memset(hva, 0x5a, SLOT_SIZE);
	r = vm_memslot_add(vm, 1, SLOT_GPA, SLOT_SIZE, hva, -1, 0);
	cr_assert_eq(r, 0, "vm_memslot_add: expected 0, got %d", r);
}

static void slot_remove(struct vmm_vm *vm)
{
	struct vmm_memslot gone;
	int r = vm_memslot_remove(vm, 1, &gone);

	cr_assert_eq(r, 0, "vm_memslot_remove: expected 0, got %d", r);
	/* Poison, then unmap: a late reader would fault or see garbage. */
	memset(gone.hva, 0xee, gone.size);
	munmap(gone.hva, gone.size);
}

/* Waits until the guest committed more than n reports. */
static void wait_reports(struct vmm_vm *vm, uint64_t n)
{
	struct vmm_vm_info info;

	for (int i = 0; i < 1000; i++) {
		vmm_vm_info_get(vm, &info);
		if (info.reports > n)
			return;
		usleep(2000);
	}
	cr_assert_fail("guest made no progress past %llu reports",
		       (unsigned long long)n);
}

Test(vmm_memslot, dma_from_a_deleted_slot_gets_an_error_status)
{
	struct vmm_report recs[256];
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	struct vmm_vm *vm;
	uint64_t before, from;
	size_t n, ok = 0, bad = 0, other = 0;
	uint8_t b;

	NEED_KVM();
	vmm_t_params(&p, "dmaloop", "builtin:dmatest");
	p.args[0] = SLOT_GPA;
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	slot_add(vm);
	cr_assert_eq(vmm_vm_memory_read(vm, SLOT_GPA + 100, &b, 1, &err), 0,
		     "read hot-added slot: %s", err.msg);
	cr_assert_eq(b, 0x5a, "slot byte: expected 0x5a, got 0x%x", b);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	wait_reports(vm, 50);
	slot_remove(vm);
	vmm_vm_info_get(vm, &info);
	before = info.reports;
	wait_reports(vm, before + 50);
	cr_assert_eq(vmm_vm_stop(vm, &err), 0, "stop: %s", err.msg);
	/* Statuses after the delete returned must all be BAD_SRC. */
	for (from = before; ; from = recs[n - 1].seq + 1) {
		vmm_vm_reports_read(vm, from, recs, 256, &n);
		if (!n)
			break;
		for (size_t i = 0; i < n; i++) {
			uint32_t st = (uint32_t)recs[i].value;

			ok += st == VMM_DMA_ST_OK;
			bad += st == VMM_DMA_ST_BAD_SRC;
			other += st != VMM_DMA_ST_OK && st != VMM_DMA_ST_BAD_SRC;
		}
	}
	/* One copy may have been in flight when the delete started. */
	cr_assert_leq(ok, 1, "after delete: expected no OK copies, got %zu", ok);
	cr_assert_geq(bad, 49, "after delete: expected BAD_SRC statuses, got %zu", bad);
	cr_assert_eq(other, 0, "unexpected statuses: %zu", other);
	cr_assert_eq(vmm_vm_memory_read(vm, SLOT_GPA, &b, 1, &err), -EFAULT,
		     "memory API on a deleted slot must be -EFAULT");
}

Test(vmm_memslot, guest_sweeping_a_slot_survives_its_deletion)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	struct vmm_vm *vm;

	NEED_KVM();
	vmm_t_params(&p, "sweeper", "builtin:memtouch");
	p.args[0] = SLOT_SIZE;
	p.args[2] = SLOT_GPA;		/* sweep the hot-added slot forever */
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	slot_add(vm);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	wait_reports(vm, 10);
	slot_remove(vm);
	vmm_vm_info_get(vm, &info);
	wait_reports(vm, info.reports + 2);	/* now via MMIO exits */
	vmm_vm_info_get(vm, &info);
	cr_assert_eq(info.state, VMM_VM_RUNNING, "expected running, got %s (%s)",
		     vmm_vm_state_name(info.state), info.crash_reason);
	cr_assert_geq(info.mmio_unmapped, 512,
		      "expected a pass of unmapped MMIO after delete, got %llu",
		      (unsigned long long)info.mmio_unmapped);
	cr_assert_eq(vmm_vm_stop(vm, &err), 0, "stop: %s", err.msg);
}
