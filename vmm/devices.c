/* Devices, reached by port I/O or through the MMIO window (guest/abi.h):
 * 16550 serial at 0x3f8, power, park, DMA engine, report port; plus the
 * policy for MMIO to GPAs without a memslot.
 * All handlers run on the vCPU thread that took the exit. */
#include <errno.h>
#include <string.h>

#include "vmm/internal.h"

#define UART_LSR_THRE	0x20
#define UART_LSR_TEMT	0x40
#define UART_LCR_DLAB	0x80

static void count(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

/* Guest write to a 16550 register (offset 0..7).  dev_lock held. */
static void serial_out(struct vmm_vcpu *vcpu, unsigned off, uint8_t v)
{
	struct vmm_vm *vm = vcpu->vm;
	struct vmm_serial *s = &vm->serial;
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (off) {
	case 0:
		if (dlab) {
			s->dll = v;
		} else {
			console_putc(vm, (char)v);
			count(&vm->dev.serial_bytes);
		}
		break;
	case 1: if (dlab) s->dlm = v; else s->ier = v & 0x0f; break;
	case 3: s->lcr = v; break;
	case 4: s->mcr = v & 0x1f; break;
	case 7: s->scr = v; break;
	default: break;			/* FCR, read-only registers */
	}
}

/* Guest read of a 16550 register.  dev_lock held. */
static uint8_t serial_in(struct vmm_vm *vm, unsigned off)
{
	struct vmm_serial *s = &vm->serial;
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (off) {
	case 0: return dlab ? s->dll : 0;	/* no input */
	case 1: return dlab ? s->dlm : s->ier;
	case 2: return 0x01;			/* no interrupt pending */
	case 3: return s->lcr;
	case 4: return s->mcr;
	case 5: return UART_LSR_THRE | UART_LSR_TEMT;
	case 6: return 0xb0;			/* DCD, DSR, CTS */
	default: return s->scr;
	}
}

uint64_t dma_fnv64(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * VMM_FNV64_PRIME;
	return h;
}

/* Host address of the page chunk at gpa (at most len bytes): *n. */
static uint8_t *chunk(struct vmm_vm *vm, uint64_t gpa, uint64_t len, bool write,
		      uint64_t *n)
{
	void *hva;

	*n = MMU_PAGE_SIZE - (gpa & (MMU_PAGE_SIZE - 1));
	if (*n > len)
		*n = len;
	if (mmu_translate(vm->mmu, gpa, *n, write ? MMU_ACCESS_WRITE : MMU_ACCESS_READ,
			  &hva))
		return NULL;
	return hva;
}

/* Performs the descriptor's operation through the engine, page by page.
 * The vCPU thread stays online (no quiescent state) for the whole
 * operation, so no slot it touches can be unmapped under it. */
static uint32_t dma_do(struct vmm_vm *vm, struct vmm_dma_desc *d)
{
	uint64_t done, a, b, n;
	uint8_t *src = NULL, *dst = NULL;
	int r;

	if (d->len == 0 || d->len > VMM_DMA_MAX_LEN)
		return VMM_DMA_ST_BAD_LEN;
	if (d->op != VMM_DMA_OP_COPY && d->op != VMM_DMA_OP_FILL &&
	    d->op != VMM_DMA_OP_CHECKSUM)
		return VMM_DMA_ST_BAD_OP;
	if (d->op != VMM_DMA_OP_FILL && vm_guest_range_check(vm, d->src, d->len, false))
		return VMM_DMA_ST_BAD_SRC;
	if (d->op != VMM_DMA_OP_CHECKSUM && vm_guest_range_check(vm, d->dst, d->len, true))
		return VMM_DMA_ST_BAD_DST;
	if (d->op == VMM_DMA_OP_CHECKSUM)
		d->value = VMM_FNV64_OFFSET;
	for (done = 0; done < d->len; done += n) {
		a = b = d->len - done;
		if (d->op != VMM_DMA_OP_FILL)
			src = chunk(vm, d->src + done, a, false, &a);
		if (d->op != VMM_DMA_OP_CHECKSUM)
			dst = chunk(vm, d->dst + done, b, true, &b);
		if ((d->op != VMM_DMA_OP_FILL && !src) || (d->op != VMM_DMA_OP_CHECKSUM && !dst))
			return VMM_DMA_ST_BAD_SRC;	/* checked above; cannot happen */
		if (d->op == VMM_DMA_OP_FILL) {
			n = b;
			r = vm_bus_op(VM_BUS_FILL, dst, NULL, n, &d->value);
		} else if (d->op == VMM_DMA_OP_CHECKSUM) {
			n = a;
			r = vm_bus_op(VM_BUS_FNV, NULL, src, n, &d->value);
		} else {
			n = a < b ? a : b;
			r = vm_bus_op(VM_BUS_COPY, dst, src, n, NULL);
		}
		if (r)
			return VMM_DMA_ST_IO_ERROR;
	}
	return VMM_DMA_ST_OK;
}

/* Runs the descriptor at desc_gpa and writes status (and checksum) back. */
static uint32_t dma_run(struct vmm_vm *vm, uint64_t desc_gpa)
{
	struct vmm_dma_desc d;

	if ((desc_gpa & 7) || vm_guest_copy(vm, desc_gpa, &d, sizeof(d), false) ||
	    vm_guest_range_check(vm, desc_gpa, sizeof(d), true))
		return VMM_DMA_ST_BAD_DESC;
	d.status = dma_do(vm, &d);
	vm_guest_copy(vm, desc_gpa, &d, sizeof(d), true);
	return d.status;
}

/* One OUT of size bytes (value v) to port. */
static void io_out(struct vmm_vcpu *vcpu, uint16_t port, uint32_t v)
{
	struct vmm_vm *vm = vcpu->vm;
	uint32_t st;

	if (port >= VMM_PORT_SERIAL && port < VMM_PORT_SERIAL + 8) {
		pthread_mutex_lock(&vm->dev_lock);
		serial_out(vcpu, port - VMM_PORT_SERIAL, (uint8_t)v);
		pthread_mutex_unlock(&vm->dev_lock);
	} else if (port == VMM_PORT_POWER) {
		vm_guest_poweroff(vcpu, v);
	} else if (port == VMM_PORT_PARK) {
		pthread_mutex_lock(&vm->lock);
		vcpu->parked = true;
		pthread_mutex_unlock(&vm->lock);
	} else if (port == VMM_PORT_DMA_LO) {
		vcpu->dma_lo = v;
	} else if (port == VMM_PORT_DMA_HI) {
		st = dma_run(vm, (uint64_t)v << 32 | vcpu->dma_lo);
		__atomic_store_n(&vm->dma_status, st, __ATOMIC_RELAXED);
		count(&vm->dev.dma_ops);
		if (st != VMM_DMA_ST_OK)
			count(&vm->dev.dma_errors);
	} else if (port == VMM_PORT_REPORT_TAG) {
		vcpu->report_tag = v;
	} else if (port == VMM_PORT_REPORT_LO) {
		vcpu->report_lo = v;
	} else if (port == VMM_PORT_REPORT_HI) {
		console_report(vm, vcpu->index, vcpu->report_tag,
			       (uint64_t)v << 32 | vcpu->report_lo);
		count(&vm->dev.reports);
	} else {
		count(&vm->dev.io_unhandled);
	}
}

/* One IN from port; unknown ports read all-ones. */
static uint32_t io_in(struct vmm_vcpu *vcpu, uint16_t port)
{
	struct vmm_vm *vm = vcpu->vm;
	uint32_t v = 0xffffffff;

	if (port >= VMM_PORT_SERIAL && port < VMM_PORT_SERIAL + 8) {
		pthread_mutex_lock(&vm->dev_lock);
		v = serial_in(vm, port - VMM_PORT_SERIAL);
		pthread_mutex_unlock(&vm->dev_lock);
	} else if (port == VMM_PORT_DMA_LO) {
		v = __atomic_load_n(&vm->dma_status, __ATOMIC_RELAXED);
	} else {
		count(&vm->dev.io_unhandled);
	}
	return v;
}

/* KVM_EXIT_IO, including string I/O (count > 1). */
void dev_io(struct vmm_vcpu *vcpu, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size;
	uint32_t v;

	for (unsigned i = 0; i < run->io.count; i++, data += size) {
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			v = 0;
			memcpy(&v, data, size);
			io_out(vcpu, run->io.port, v);
		} else {
			v = io_in(vcpu, run->io.port);
			memcpy(data, &v, size);
		}
	}
}

/* An access to the MMIO device window: the port handlers at offset. */
static void window_access(struct vmm_vcpu *vcpu, struct kvm_run *run)
{
	uint16_t port = (uint16_t)(run->mmio.phys_addr - VMM_GPA_MMIO);
	uint32_t len = run->mmio.len, v[2] = { 0, 0 };

	if (run->mmio.is_write) {
		memcpy(v, run->mmio.data, len > 8 ? 8 : len);
		io_out(vcpu, port, v[0]);
		if (len == 8)
			io_out(vcpu, (uint16_t)(port + 4), v[1]);
		return;
	}
	v[0] = io_in(vcpu, port);
	if (len == 8)
		v[1] = io_in(vcpu, (uint16_t)(port + 4));
	memcpy(run->mmio.data, v, len > 8 ? 8 : len);
}

/* KVM_EXIT_MMIO: the device window, or a GPA no memslot backs (see enum
 * vmm_mmio_policy). */
void dev_mmio(struct vmm_vcpu *vcpu, struct kvm_run *run)
{
	struct vmm_vm *vm = vcpu->vm;
	uint64_t gpa = run->mmio.phys_addr;

	if (gpa >= VMM_GPA_MMIO && gpa + run->mmio.len <= VMM_GPA_MMIO + VMM_MMIO_SIZE) {
		window_access(vcpu, run);
		return;
	}
	count(&vm->dev.mmio_unmapped);
	if (vm->mmio_policy == VMM_MMIO_CRASH) {
		vm_guest_crash(vcpu, "MMIO %s of %u bytes at unmapped GPA 0x%llx",
			       run->mmio.is_write ? "write" : "read",
			       run->mmio.len, (unsigned long long)gpa);
		return;
	}
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
}
