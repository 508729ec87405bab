/* Small helpers: error messages, size parsing, names of enums. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vmm/internal.h"

/* Fills err (if any) and returns code, so callers can `return
 * vmm_err_set(...)`. */
int vmm_err_set(struct vmm_err *err, int code, const char *field,
		const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->field = field;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Shift for a unit suffix ("", "k", "M", "G", "T", with optional "i"/"B"). */
static int unit_shift(const char *u)
{
	static const char units[] = "kmgt";
	const char *p;
	int shift = 0;

	if (*u) {
		p = strchr(units, tolower((unsigned char)*u));
		if (!p)
			return -1;
		shift = 10 * (int)(p - units + 1);
		u++;
		if (*u == 'i' || *u == 'I')
			u++;
	}
	if (*u == 'b' || *u == 'B')
		u++;
	return *u ? -1 : shift;
}

/* Decimal digits and an optional binary unit, nothing else. */
int vmm_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	int shift;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	shift = unit_shift(s);
	if (shift < 0)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

const char *vmm_vm_state_name(enum vmm_vm_state state)
{
	static const char *const names[] = {
		[VMM_VM_DEFINED] = "defined", [VMM_VM_RUNNING] = "running",
		[VMM_VM_PAUSED] = "paused", [VMM_VM_STOPPED] = "stopped",
		[VMM_VM_CRASHED] = "crashed",
	};

	return (unsigned)state < 5 ? names[state] : "unknown";
}

const char *vmm_vm_type_name(enum vmm_vm_type type)
{
	return type == VMM_VM_TYPE_PROTECTED ? "protected" : "default";
}

int vmm_vm_type_parse(const char *s, enum vmm_vm_type *out)
{
	if (s && !strcmp(s, "default"))
		*out = VMM_VM_TYPE_DEFAULT;
	else if (s && !strcmp(s, "protected"))
		*out = VMM_VM_TYPE_PROTECTED;
	else
		return -EINVAL;
	return 0;
}

const char *vmm_exit_reason_name(unsigned reason)
{
	static const char *const names[] = {
		"unknown", "exception", "io", "hypercall", "debug", "hlt",
		"mmio", "irq_window_open", "shutdown", "fail_entry", "intr",
		"set_tpr", "tpr_access", "s390_sieic", "s390_reset", "dcr",
		"nmi", "internal_error", "osi", "papr_hcall", "s390_ucontrol",
		"watchdog", "s390_tsch", "epr", "system_event", "s390_stsi",
		"ioapic_eoi", "hyperv", "arm_nisv", "x86_rdmsr", "x86_wrmsr",
		"dirty_ring_full", "ap_reset_hold", "x86_bus_lock", "xen",
		"riscv_sbi", "riscv_csr", "notify", "loongarch_iocsr",
		"memory_fault", "tdx",
	};

	if (reason < sizeof(names) / sizeof(names[0]))
		return names[reason];
	return "other";
}

const char *vmm_builtin_payload_name(size_t index)
{
	if (index >= vmm_builtin_payload_count)
		return NULL;
	return vmm_builtin_payloads[index].name;
}
