/* dmatest: exercises the DMA device (fill, copy, checksum and every error
 * status), reports each step as (step << 32 | status) and exits with a
 * bit mask of the failed steps (0: all passed).
 * Loop mode, args[0] = source GPA: copies args[1] bytes (default 4 KiB)
 * from there into free RAM args[2] times (0: forever), reporting each
 * status as VMM_REPORT_DMA_STEP (step = iteration). */
#include "vmm/guest/guest.h"

#define LEN 65536ull
#define UNMAPPED 0x7f00000000ull	/* 508 GiB: no memslot there */

static struct vmm_dma_desc desc __attribute__((aligned(64)));
static uint32_t failed;

static void step(unsigned n, const char *what, uint32_t st, uint32_t want,
		 int extra_ok)
{
	int ok = st == want && extra_ok;

	g_report(VMM_REPORT_DMA_STEP, (uint64_t)n << 32 | st);
	g_printf("dmatest: step %u %s: status %u (want %u) %s\n", n, what, st,
		 want, ok ? "ok" : "FAIL");
	if (!ok)
		failed |= 1u << n;
}

static uint32_t dma(uint32_t op, uint64_t src, uint64_t dst, uint64_t len,
		    uint64_t value)
{
	desc.op = op;
	desc.src = src;
	desc.dst = dst;
	desc.len = len;
	desc.value = value;
	return g_dma(&desc);
}

static int all_bytes(const uint8_t *p, uint64_t n, uint8_t v)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static int loop_mode(struct vmm_boot_params *bp)
{
	uint64_t len = bp->args[1] ? bp->args[1] : 4096;

	for (uint64_t i = 0; !bp->args[2] || i < bp->args[2]; i++)
		g_report(VMM_REPORT_DMA_STEP,
			 (i << 32) | dma(VMM_DMA_OP_COPY, bp->args[0],
					 bp->free_start, len, 0));
	return 0;
}

int guest_main(struct vmm_boot_params *bp, unsigned cpu)
{
	uint8_t *a = (uint8_t *)(uintptr_t)bp->free_start, *b = a + LEN;
	uint64_t sum = VMM_FNV64_OFFSET;
	uint32_t st;

	(void)cpu;
	if (bp->args[0])
		return loop_mode(bp);
	st = dma(VMM_DMA_OP_FILL, 0, (uintptr_t)a, LEN, 0x5a);
	step(0, "fill", st, VMM_DMA_ST_OK, all_bytes(a, LEN, 0x5a));
	for (uint64_t i = 0; i < LEN; i++)
		a[i] = (uint8_t)(i * 7 + 3);
	st = dma(VMM_DMA_OP_COPY, (uintptr_t)a, (uintptr_t)b, LEN, 0);
	step(1, "copy", st, VMM_DMA_ST_OK, memcmp(a, b, LEN) == 0);
	for (uint64_t i = 0; i < LEN; i++)
		sum = (sum ^ a[i]) * VMM_FNV64_PRIME;
	st = dma(VMM_DMA_OP_CHECKSUM, (uintptr_t)a, 0, LEN, 0);
	step(2, "checksum", st, VMM_DMA_ST_OK, desc.value == sum);
	st = dma(VMM_DMA_OP_COPY, UNMAPPED, (uintptr_t)b, LEN, 0);
	step(3, "copy from unmapped", st, VMM_DMA_ST_BAD_SRC, 1);
	st = dma(VMM_DMA_OP_FILL, 0, UNMAPPED, LEN, 1);
	step(4, "fill to unmapped", st, VMM_DMA_ST_BAD_DST, 1);
	st = dma(99, (uintptr_t)a, (uintptr_t)b, LEN, 0);
	step(5, "bad op", st, VMM_DMA_ST_BAD_OP, 1);
	st = dma(VMM_DMA_OP_COPY, (uintptr_t)a, (uintptr_t)b, 0, 0);
	step(6, "zero length", st, VMM_DMA_ST_BAD_LEN, 1);
	st = dma(VMM_DMA_OP_COPY, bp->ram_size - 16, (uintptr_t)b, 64, 0);
	step(7, "copy across end of RAM", st, VMM_DMA_ST_BAD_SRC, 1);
	mmio_write64(VMM_PORT_DMA_LO, UNMAPPED);
	step(8, "unmapped descriptor", mmio_read32(VMM_PORT_DMA_LO),
	     VMM_DMA_ST_BAD_DESC, 1);
	g_printf("dmatest: %s (mask 0x%x)\n", failed ? "FAILED" : "all ok",
		 failed);
	return (int)failed;
}
