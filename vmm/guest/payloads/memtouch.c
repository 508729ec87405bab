/* memtouch: sweeps a working set, one write per 4 KiB page per pass, and
 * reports each pass's duration (VMM_REPORT_PASS_NS) and pages
 * (VMM_REPORT_PASS_PAGES).  args[0]: working-set bytes (0: all free boot
 * RAM), args[1]: passes (0: until stopped), args[2]: start GPA (0: the
 * start of free boot RAM; may name another memslot). */
#include "vmm/guest/guest.h"

#define PAGE 4096ull

static uint64_t sweep(uint64_t start, uint64_t pages, uint64_t pass)
{
	for (uint64_t i = 0; i < pages; i++)
		*(volatile uint64_t *)(uintptr_t)(start + i * PAGE) = pass;
	return pages;
}

int guest_main(struct vmm_boot_params *bp, unsigned cpu)
{
	uint64_t start = bp->args[2] ? bp->args[2] : bp->free_start;
	uint64_t ws = bp->args[0], passes = bp->args[1], t0, pages;

	(void)cpu;
	if (!bp->args[2] && (!ws || ws > bp->free_end - bp->free_start))
		ws = bp->free_end - bp->free_start;
	pages = ws / PAGE;
	g_printf("memtouch: %lu pages at 0x%lx, %lu passes\n", pages, start,
		 passes);
	for (uint64_t p = 1; !passes || p <= passes; p++) {
		t0 = rdtsc();
		sweep(start, pages, p);
		g_report(VMM_REPORT_PASS_NS, g_tsc_to_ns(bp, rdtsc() - t0));
		g_report(VMM_REPORT_PASS_PAGES, pages);
	}
	g_puts("memtouch: done\n");
	return 0;
}
