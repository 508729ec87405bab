/* Helpers for the vmm tests: a vmm on the real /dev/kvm (or a skip), VM
 * creation with defaults, console and report lookups. */
#ifndef SLOTD_TESTS_VMM_HELPERS_H
#define SLOTD_TESTS_VMM_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/vmm.h"

#define VMM_T_STATE(s) (1u << (s))
#define VMM_T_WAIT_MS 10000u

/* A vmm on /dev/kvm; NULL (after printing why) if KVM cannot be opened.
 * Tests call cr_skip_test when it returns NULL. */
struct vmm *vmm_t_open(void);
/* Fills params: 1 vCPU, 16 MiB, the given payload. */
void vmm_t_params(struct vmm_vm_params *p, const char *name,
		  const char *payload);
/* The console as a NUL-terminated string in buf. */
const char *vmm_t_console(struct vmm_vm *vm, char *buf, size_t len);
/* Resident set size of this process in KiB (from /proc/self/statm). */
long vmm_t_rss_kib(void);
/* Number of reports with tag, and the value of the last one. */
size_t vmm_t_reports(struct vmm_vm *vm, uint32_t tag, uint64_t *last);

#endif
