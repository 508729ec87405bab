/* crash: faults on purpose so tests see a crashed VM.  args[0]: 0 = HLT at
 * CPL 3 (#GP), 1 = UD2 (#UD), 2 = write to a non-canonical address. */
#include "vmm/guest/guest.h"

int guest_main(struct vmm_boot_params *bp, unsigned cpu)
{
	(void)cpu;
	g_printf("crash: faulting (mode %lu)\n", bp->args[0]);
	if (bp->args[0] == 1)
		__asm__ volatile("ud2");
	else if (bp->args[0] == 2)
		*(volatile uint64_t *)0x8000000000000000ull = 1;
	else
		__asm__ volatile("hlt");
	g_puts("crash: still alive?\n");
	return 99;
}
