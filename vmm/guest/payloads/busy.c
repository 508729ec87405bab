/* busy: spins forever without exits (for stop/pause tests).  Every
 * args[0] iterations (if set) it reports the iteration count. */
#include "vmm/guest/guest.h"

int guest_main(struct vmm_boot_params *bp, unsigned cpu)
{
	volatile uint64_t n = 0;

	(void)cpu;
	g_puts("busy: spinning\n");
	for (;;) {
		n++;
		if (bp->args[0] && n % bp->args[0] == 0)
			g_report(VMM_REPORT_USER, n);
	}
}
