/* hello: greets on the serial console and powers off with status 0. */
#include "vmm/guest/guest.h"

int guest_main(struct vmm_boot_params *bp, unsigned cpu)
{
	if (bp->magic != VMM_BOOT_MAGIC) {
		g_puts("hello: bad boot params magic\n");
		return 2;
	}
	g_printf("Hello from slotd guest: vcpu %u of %u, %lu MiB RAM, %u memslot(s)\n",
		 cpu, bp->nr_vcpus, bp->ram_size >> 20, bp->nr_slots);
	return 0;
}
