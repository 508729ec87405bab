/* Helpers for the vmm tests: a vmm on the real /dev/kvm (or a skip), VM
 * parameters with defaults, console and report lookups.  The helpers that
 * call vmm_* are static inline so that tests/lib/vmm_helpers.o, linked
 * into every test binary, needs nothing from vmm/ (MODULES=mmu builds). */
#ifndef SLOTD_TESTS_VMM_HELPERS_H
#define SLOTD_TESTS_VMM_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vmm/vmm.h"

#define VMM_T_STATE(s) (1u << (s))
#define VMM_T_WAIT_MS 10000u

/* Resident set size of this process in KiB (from /proc/self/statm). */
long vmm_t_rss_kib(void);

/* A vmm on /dev/kvm; NULL (after printing why) if KVM cannot be opened.
 * Tests call cr_skip_test when it returns NULL. */
static inline struct vmm *vmm_t_open(void)
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

/* The fixture of a vmm test suite: a static `vmm` on /dev/kvm (NULL
 * without it), opened before and destroyed after each test, the
 * TestSuite itself, and NEED_KVM() to skip a test when there is none.
 * Needs <criterion/criterion.h> first. */
#define VMM_T_SUITE(suite, secs)					\
	static struct vmm *vmm;						\
	static void vmm_t_setup(void) { vmm = vmm_t_open(); }		\
	static void vmm_t_teardown(void)				\
	{								\
		vmm_destroy(vmm);					\
		vmm = NULL;						\
	}								\
	TestSuite(suite, .init = vmm_t_setup, .fini = vmm_t_teardown,	\
		  .timeout = secs)

#define NEED_KVM()							\
	do {								\
		if (!vmm)						\
			cr_skip_test("no /dev/kvm: cannot open it");	\
	} while (0)

/* Fills params: 1 vCPU, 16 MiB, the given payload. */
static inline void vmm_t_params(struct vmm_vm_params *p, const char *name,
				const char *payload)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->type = VMM_VM_TYPE_DEFAULT;
	p->vcpus = 1;
	p->memory_bytes = 16u << 20;
	p->payload = payload;
}

/* The console as a NUL-terminated string in buf. */
static inline const char *vmm_t_console(struct vmm_vm *vm, char *buf,
					size_t len)
{
	size_t n = 0;

	vmm_vm_console_read(vm, 0, buf, len - 1, &n);
	buf[n] = '\0';
	return buf;
}

/* Number of reports with tag, and the value of the last one. */
static inline size_t vmm_t_reports(struct vmm_vm *vm, uint32_t tag,
				   uint64_t *last)
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

#endif
