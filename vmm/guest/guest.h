/* Freestanding guest kit: port I/O, serial output, report port, DMA,
 * power.  Payloads run at CPL 3 with IOPL 3 and no interrupts. */
#ifndef SLOTD_GUEST_H
#define SLOTD_GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/guest/abi.h"

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* Device registers through the MMIO window (works under kvm_pvm too). */
static inline void mmio_write8(uint16_t reg, uint8_t v)
{
	*(volatile uint8_t *)(uintptr_t)(VMM_GPA_MMIO + reg) = v;
}

static inline void mmio_write32(uint16_t reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(VMM_GPA_MMIO + reg) = v;
}

static inline void mmio_write64(uint16_t reg, uint64_t v)
{
	*(volatile uint64_t *)(uintptr_t)(VMM_GPA_MMIO + reg) = v;
}

static inline uint32_t mmio_read32(uint16_t reg)
{
	return *(volatile uint32_t *)(uintptr_t)(VMM_GPA_MMIO + reg);
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

void g_putc(char c);
void g_puts(const char *s);
void g_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void g_report(uint32_t tag, uint64_t value);
/* Runs a DMA descriptor; returns its status. */
uint32_t g_dma(struct vmm_dma_desc *d);
/* Powers the VM off with status. */
void g_exit(uint32_t status) __attribute__((noreturn));
/* Stops this vCPU until the VM stops. */
void g_park(void) __attribute__((noreturn));
/* TSC ticks to ns with boot_params.tsc_khz (ticks if unknown). */
uint64_t g_tsc_to_ns(const struct vmm_boot_params *bp, uint64_t ticks);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

int guest_main(struct vmm_boot_params *bp, unsigned cpu);
void guest_secondary(struct vmm_boot_params *bp, unsigned cpu);

#endif
