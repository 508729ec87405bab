/* Helpers for the vmm tests that need only libc (see vmm_helpers.h). */
#include <stdio.h>
#include <unistd.h>

#include "tests/lib/vmm_helpers.h"

long vmm_t_rss_kib(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
