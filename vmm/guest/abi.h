/* Guest ABI shared by slotd (host side, vmm/) and the guest kit
 * (vmm/guest/): memory layout, ports, boot parameters, DMA descriptors and
 * report tags.  Freestanding: depends on <stdint.h> only.  Described for
 * people in vmm/guest/ABI.md; keep the two in step. */
#ifndef SLOTD_VMM_GUEST_ABI_H
#define SLOTD_VMM_GUEST_ABI_H

#include <stdint.h>

/* Guest physical layout of boot RAM (memslot 0, at GPA 0). */
#define VMM_GPA_GDT		0x1000ULL	/* GDT, see VMM_SEL_* */
#define VMM_GPA_TSS		0x2000ULL	/* 64-bit TSS (unused by payloads) */
#define VMM_GPA_BOOT		0x3000ULL	/* struct vmm_boot_params */
#define VMM_BOOT_SIZE		0x3000ULL
#define VMM_GPA_PML4		0x10000ULL
#define VMM_GPA_PDPT		0x11000ULL
#define VMM_GPA_PD		0x12000ULL	/* 2 MiB-page tables (fallback) */
#define VMM_GPA_PT_END		0x100000ULL
#define VMM_GPA_PAYLOAD		0x200000ULL	/* lowest GPA a payload may load at */
#define VMM_STACK_SIZE		0x10000ULL	/* per vCPU, at the top of boot RAM */
#define VMM_MIN_MEMORY		(4ULL << 20)
/* Identity map: 512 GiB with 1 GiB pages, or (without 1 GiB page support)
 * VMM_PD_PAGES GiB with 2 MiB pages. */
#define VMM_IDMAP_1G_BYTES	(512ULL << 30)
#define VMM_PD_PAGES		((VMM_GPA_PT_END - VMM_GPA_PD) / 0x1000)

/* GDT selectors: 64-bit code and data at DPL 3, and the TSS. */
#define VMM_SEL_KCODE		0x08
#define VMM_SEL_KDATA		0x10
#define VMM_SEL_CODE		0x1b
#define VMM_SEL_DATA		0x23
#define VMM_SEL_TSS		0x28

/* Device registers.  Each register is an x86 I/O port number P and is
 * also reachable as MMIO at VMM_GPA_MMIO + P (a GPA no memslot backs).
 * Port I/O from CPL 3 needs IOPL 3, which slotd sets, but kvm_pvm turns
 * every guest-user IN/OUT into #GP whatever the IOPL: portable payloads
 * use the MMIO window (the guest kit does).  An 8-byte MMIO access at P
 * acts as two 4-byte accesses at P and P + 4. */
#define VMM_GPA_MMIO		0x3200000000ULL	/* 200 GiB */
#define VMM_MMIO_SIZE		0x10000ULL
#define VMM_MAX_BOOT_RAM	VMM_GPA_MMIO
#define VMM_PORT_SERIAL		0x3f8	/* 16550: THR at +0, LSR at +5 */
#define VMM_PORT_POWER		0x501	/* out: power off, value = exit status */
#define VMM_PORT_PARK		0x502	/* out: this vCPU idles until stop */
#define VMM_PORT_DMA_LO		0x510	/* out32: descriptor GPA 31:0; in32: last status */
#define VMM_PORT_DMA_HI		0x514	/* out32: descriptor GPA 63:32, then runs it */
#define VMM_PORT_REPORT_TAG	0x520	/* out32: tag of the next record */
#define VMM_PORT_REPORT_LO	0x524	/* out32: value 31:0 */
#define VMM_PORT_REPORT_HI	0x528	/* out32: value 63:32, commits the record */

/* Boot parameters, at VMM_GPA_BOOT; RDI points here at entry. */
#define VMM_BOOT_MAGIC		0x544f4f42444c5453ULL	/* "STLDBOOT" */
#define VMM_BOOT_VERSION	1
#define VMM_BOOT_NARGS		8
#define VMM_BOOT_MAX_SLOTS	128

struct vmm_boot_slot {
	uint64_t gpa;
	uint64_t size;
	uint32_t id;
	uint32_t flags;			/* KVM_MEM_* flags of the memslot */
	uint64_t reserved;
};

struct vmm_boot_params {
	uint64_t magic;
	uint32_t version;
	uint32_t nr_vcpus;
	uint64_t ram_size;		/* boot RAM, memslot 0 at GPA 0 */
	uint64_t payload_start;		/* lowest loaded GPA of the payload */
	uint64_t payload_end;		/* first GPA after it */
	uint64_t free_start;		/* boot RAM free for the payload: */
	uint64_t free_end;		/* [free_start, free_end), 2 MiB aligned start */
	uint64_t tsc_khz;		/* guest TSC frequency, 0 if unknown */
	uint64_t idmap_end;		/* GPAs below this are identity mapped */
	uint64_t args[VMM_BOOT_NARGS];	/* vmm_vm_params.args */
	uint32_t nr_slots;		/* entries valid in slots[] */
	uint32_t nr_slots_total;	/* memslots of the VM (may exceed) */
	struct vmm_boot_slot slots[VMM_BOOT_MAX_SLOTS];
};

/* DMA descriptor, 8-byte aligned, anywhere in guest RAM. */
#define VMM_DMA_OP_COPY		1	/* dst <- src, memmove semantics */
#define VMM_DMA_OP_FILL		2	/* dst <- value & 0xff, len bytes */
#define VMM_DMA_OP_CHECKSUM	3	/* value <- FNV-1a 64 of src, len bytes */

#define VMM_DMA_ST_PENDING	0	/* guest writes this before ringing */
#define VMM_DMA_ST_OK		1
#define VMM_DMA_ST_BAD_OP	2
#define VMM_DMA_ST_BAD_SRC	3	/* src range not backed by a memslot */
#define VMM_DMA_ST_BAD_DST	4	/* dst range not backed, or read-only */
#define VMM_DMA_ST_BAD_LEN	5	/* 0 or above VMM_DMA_MAX_LEN */
#define VMM_DMA_ST_BAD_DESC	6	/* descriptor itself unmapped (in32 only) */
#define VMM_DMA_ST_IO_ERROR	7	/* a backing failed under the access (a
					 * truncated file: SIGBUS); partly done */
#define VMM_DMA_MAX_LEN		(1ULL << 30)

struct vmm_dma_desc {
	uint32_t op;
	uint32_t status;		/* written back by slotd */
	uint64_t src;
	uint64_t dst;
	uint64_t len;
	uint64_t value;			/* fill byte in, checksum out */
};

#define VMM_FNV64_OFFSET	0xcbf29ce484222325ULL
#define VMM_FNV64_PRIME		0x100000001b3ULL

/* Report tags (VMM_PORT_REPORT_*).  User payloads use tags >= USER. */
#define VMM_REPORT_PASS_NS	1	/* memtouch: one pass, ns (ticks if no tsc_khz) */
#define VMM_REPORT_PASS_PAGES	2	/* memtouch: pages touched in that pass */
#define VMM_REPORT_RANGE_GPA	3	/* memcheck: range start */
#define VMM_REPORT_RANGE_BYTES	4	/* memcheck: range length */
#define VMM_REPORT_RANGE_ERRORS	5	/* memcheck: mismatching words, 0 = ok */
#define VMM_REPORT_DMA_STEP	6	/* dmatest: step number << 32 | status */
#define VMM_REPORT_USER		0x1000

#endif
