/* Boot state of a VM: identity-mapped long-mode page tables (U=1), GDT
 * with DPL 3 segments, TSS, boot parameters, vCPU registers and CPUID.
 * vCPUs start in 64-bit mode at CPL 3 because under kvm_pvm only CPL 3
 * code runs natively; the same state is valid under VT-x and AMD-V. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/internal.h"

#define PTE_P	0x1ull
#define PTE_RW	0x2ull
#define PTE_US	0x4ull
#define PTE_PS	0x80ull
#define PTE_TABLE (PTE_P | PTE_RW | PTE_US)
#define PTE_HUGE (PTE_P | PTE_RW | PTE_US | PTE_PS)

#define CR0_PE	(1ull << 0)
#define CR0_MP	(1ull << 1)
#define CR0_ET	(1ull << 4)
#define CR0_NE	(1ull << 5)
#define CR0_WP	(1ull << 16)
#define CR0_PG	(1ull << 31)
#define CR4_PAE	(1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define RFLAGS_IOPL3 0x3000ull

static uint8_t *boot_hva(struct vmm_vm *vm, uint64_t gpa)
{
	return (uint8_t *)vm->slots[0]->hva + gpa;
}

bool vmm_cpuid_has_1g_pages(struct vmm *vmm)
{
	return cpuid_1g_pages(vmm->cpuid);
}

unsigned vmm_guest_phys_bits(struct vmm *vmm)
{
	return cpuid_phys_bits(vmm->cpuid);
}

/* Identity map: 512 GiB with 1 GiB pages, else as much as the table area
 * holds with 2 MiB pages, never beyond MAXPHYADDR (reserved bits would
 * fault).  GPAs without a memslot become MMIO exits. */
static void page_tables_build(struct vmm_vm *vm)
{
	uint64_t *pml4 = (uint64_t *)boot_hva(vm, VMM_GPA_PML4);
	uint64_t *pdpt = (uint64_t *)boot_hva(vm, VMM_GPA_PDPT);
	uint64_t *pd = (uint64_t *)boot_hva(vm, VMM_GPA_PD);
	unsigned bits = vmm_guest_phys_bits(vm->vmm);
	uint64_t gib = bits >= 39 ? 512 : 1ull << (bits - 30);

	pml4[0] = VMM_GPA_PDPT | PTE_TABLE;
	if (vmm_cpuid_has_1g_pages(vm->vmm)) {
		for (uint64_t i = 0; i < gib; i++)
			pdpt[i] = (i << 30) | PTE_HUGE;
		vm->idmap_end = gib << 30;
		return;
	}
	gib = gib < VMM_PD_PAGES ? gib : VMM_PD_PAGES;
	for (uint64_t g = 0; g < gib; g++) {
		pdpt[g] = (VMM_GPA_PD + g * 0x1000) | PTE_TABLE;
		for (uint64_t i = 0; i < 512; i++)
			pd[g * 512 + i] = (g << 30) | (i << 21) | PTE_HUGE;
	}
	vm->idmap_end = gib << 30;
}

/* GDT: null, kernel code/data, user code/data (DPL 3), 64-bit TSS. */
static void gdt_build(struct vmm_vm *vm)
{
	uint64_t *gdt = (uint64_t *)boot_hva(vm, VMM_GPA_GDT);
	uint64_t base = VMM_GPA_TSS, limit = 0x67;

	gdt[0] = 0;
	gdt[1] = 0x00af9a000000ffffull;
	gdt[2] = 0x00cf92000000ffffull;
	gdt[3] = 0x00affa000000ffffull;
	gdt[4] = 0x00cff2000000ffffull;
	gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
		 (0x8bull << 40) | ((limit >> 16 & 0xf) << 48) |
		 ((base >> 24 & 0xff) << 56);
	gdt[6] = base >> 32;
	/* TSS: no I/O bitmap (IOPL 3 makes it moot). */
	memset(boot_hva(vm, VMM_GPA_TSS), 0, 0x68);
	*(uint16_t *)(boot_hva(vm, VMM_GPA_TSS) + 0x66) = 0x68;
}

/* Writes page tables and GDT into boot RAM.  No vCPU may be running. */
int vm_boot_tables_build(struct vmm_vm *vm)
{
	page_tables_build(vm);
	gdt_build(vm);
	return 0;
}

/* Writes struct vmm_boot_params at VMM_GPA_BOOT, with the memslot map. */
int vm_boot_params_write(struct vmm_vm *vm)
{
	struct vmm_boot_params *bp = (void *)boot_hva(vm, VMM_GPA_BOOT);
	uint64_t stacks = vm->nr_vcpus * VMM_STACK_SIZE;

	memset(bp, 0, sizeof(*bp));
	bp->magic = VMM_BOOT_MAGIC;
	bp->version = VMM_BOOT_VERSION;
	bp->nr_vcpus = vm->nr_vcpus;
	bp->ram_size = vm->memory_bytes;
	bp->payload_start = vm->payload_start;
	bp->payload_end = vm->payload_end;
	bp->free_end = vm->memory_bytes - stacks;
	bp->free_start = (vm->payload_end + (2ull << 20) - 1) & ~((2ull << 20) - 1);
	if (bp->free_start > bp->free_end)
		bp->free_start = bp->free_end;
	bp->tsc_khz = vm->tsc_khz;
	bp->idmap_end = vm->idmap_end;
	memcpy(bp->args, vm->args, sizeof(bp->args));
	pthread_rwlock_rdlock(&vm->slots_lock);
	bp->nr_slots_total = vm->nr_slots;
	for (unsigned i = 0; i < vm->nr_slots && i < VMM_BOOT_MAX_SLOTS; i++) {
		bp->slots[i].gpa = vm->slots[i]->gpa;
		bp->slots[i].size = vm->slots[i]->size;
		bp->slots[i].id = vm->slots[i]->id;
		bp->slots[i].flags = vm->slots[i]->flags;
		bp->nr_slots++;
	}
	pthread_rwlock_unlock(&vm->slots_lock);
	return 0;
}

static void seg_set(struct kvm_segment *s, uint16_t sel, uint8_t type,
		    bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->dpl = sel & 3;
	s->s = 1;
	s->l = code;
	s->db = !code;
	s->g = 1;
}

/* Long mode, CPL 3, paging on; segment caches match the GDT. */
static int sregs_set(struct vmm_vcpu *vcpu)
{
	struct kvm_sregs sr;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	seg_set(&sr.cs, VMM_SEL_CODE, 11, true);
	seg_set(&sr.ds, VMM_SEL_DATA, 3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.selector = VMM_SEL_TSS;
	sr.tr.base = VMM_GPA_TSS;
	sr.tr.limit = 0x67;
	sr.tr.type = 11;		/* busy 64-bit TSS */
	sr.tr.present = 1;
	memset(&sr.ldt, 0, sizeof(sr.ldt));
	sr.ldt.type = 2;
	sr.ldt.unusable = 1;
	sr.gdt.base = VMM_GPA_GDT;
	sr.gdt.limit = 7 * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sr.cr3 = VMM_GPA_PML4;
	sr.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sr.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sr) < 0)
		return -errno;
	return 0;
}

/* Entry state: RIP = e_entry, RDI = boot params, RSI = vCPU index, RSP =
 * top of this vCPU's stack, IOPL 3. */
int vcpu_boot_regs_set(struct vmm_vcpu *vcpu)
{
	struct vmm_vm *vm = vcpu->vm;
	struct kvm_regs regs;
	int r;

	r = sregs_set(vcpu);
	if (r)
		return r;
	memset(&regs, 0, sizeof(regs));
	regs.rip = vm->entry;
	regs.rdi = VMM_GPA_BOOT;
	regs.rsi = vcpu->index;
	regs.rsp = vm->memory_bytes - vcpu->index * VMM_STACK_SIZE;
	regs.rflags = 0x2 | RFLAGS_IOPL3;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* KVM_GET_SUPPORTED_CPUID with this vCPU's APIC id patched in. */
int vcpu_cpuid_set(struct vmm_vcpu *vcpu)
{
	struct kvm_cpuid2 *src = vcpu->vm->vmm->cpuid, *c;
	size_t sz;
	int r = 0;

	if (!src)
		return 0;
	sz = sizeof(*src) + src->nent * sizeof(src->entries[0]);
	c = malloc(sz);
	if (!c)
		return -ENOMEM;
	memcpy(c, src, sz);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffff) | (vcpu->index << 24);
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = vcpu->index;
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0)
		r = -errno;
	free(c);
	return r;
}
