/* Helpers for the vmm tests (see vmm_helpers.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/vmm_helpers.h"

struct vmm *vmm_t_open(void)
{
	struct vmm_config cfg = { .stop_timeout_ms = 2000 };
	struct vmm *vmm = NULL;

	if (vmm_create(&cfg, &vmm) || !vmm)
		return NULL;
	if (!vmm_caps_get(vmm)->kvm_available) {
		fprintf(stderr, "no /dev/kvm: %s\n", vmm_caps_get(vmm)->kvm_error);
		vmm_destroy(vmm);
		return NULL;
	}
	return vmm;
}

void vmm_t_params(struct vmm_vm_params *p, const char *name,
		  const char *payload)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->type = VMM_VM_TYPE_DEFAULT;
	p->vcpus = 1;
	p->memory_bytes = 16u << 20;
	p->payload = payload;
}

const char *vmm_t_console(struct vmm_vm *vm, char *buf, size_t len)
{
	size_t n = 0;

	vmm_vm_console_read(vm, 0, buf, len - 1, &n);
	buf[n] = '\0';
	return buf;
}

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

size_t vmm_t_reports(struct vmm_vm *vm, uint32_t tag, uint64_t *last)
{
	struct vmm_report recs[256];
	uint64_t from = 0;
	size_t n, count = 0;

	do {
		vmm_vm_reports_read(vm, from, recs, 256, &n);
		for (size_t i = 0; i < n; i++) {
			if (recs[i].tag != tag)
				continue;
			count++;
			if (last)
				*last = recs[i].value;
		}
		if (n)
			from = recs[n - 1].seq + 1;
	} while (n == 256);
	return count;
}
