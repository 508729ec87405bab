/* memcheck: writes a pattern derived from the offset in the range into
 * each range, verifies it, and reports per range (RANGE_GPA, RANGE_BYTES,
 * RANGE_ERRORS).  Ranges: args[0..7] as (gpa, bytes) pairs when args[0]
 * is set, else the free part of boot RAM plus every other memslot of the
 * boot map.  Bit 63 of a bytes argument (MEMCHECK_VERIFY_ONLY) verifies
 * what is there without writing: the host wrote the pattern, or a moved
 * slot brought it along.  Exit status: the number of ranges with errors. */
#include "vmm/guest/guest.h"

static uint64_t pattern(uint64_t a)
{
	return (a * 0x9e3779b97f4a7c15ull) ^ 0x5a5a5a5a5a5a5a5aull;
}

#define MEMCHECK_VERIFY_ONLY	(1ull << 63)

static uint64_t check_range(uint64_t gpa, uint64_t len)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)gpa;
	int verify_only = !!(len & MEMCHECK_VERIFY_ONLY);
	uint64_t n, bad = 0;

	len &= ~MEMCHECK_VERIFY_ONLY;
	n = len / 8;
	for (uint64_t i = 0; i < n && !verify_only; i++)
		p[i] = pattern(i * 8);
	for (uint64_t i = 0; i < n; i++)
		bad += p[i] != pattern(i * 8);
	g_report(VMM_REPORT_RANGE_GPA, gpa);
	g_report(VMM_REPORT_RANGE_BYTES, len);
	g_report(VMM_REPORT_RANGE_ERRORS, bad);
	g_printf("memcheck: [0x%lx, 0x%lx) %s (%lu bad words)\n", gpa,
		 gpa + len, bad ? "FAIL" : "ok", bad);
	return bad;
}

int guest_main(struct vmm_boot_params *bp, unsigned cpu)
{
	int failed = 0;

	(void)cpu;
	if (bp->args[0]) {
		for (int i = 0; i < VMM_BOOT_NARGS; i += 2)
			if (bp->args[i + 1])
				failed += !!check_range(bp->args[i], bp->args[i + 1]);
	} else {
		failed += !!check_range(bp->free_start,
					bp->free_end - bp->free_start);
		for (uint32_t i = 0; i < bp->nr_slots; i++)
			if (bp->slots[i].gpa != 0)
				failed += !!check_range(bp->slots[i].gpa,
							bp->slots[i].size);
	}
	g_printf("memcheck: %d range(s) failed\n", failed);
	return failed;
}
