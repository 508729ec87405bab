/* vmm: KVM virtual machines hosted by slotd.  Public interface; json-c
 * never reaches this module.  Functions return 0 or -errno. */
#ifndef SLOTD_VMM_H
#define SLOTD_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmm;

/* One x86 KVM quirk: its KVM_X86_QUIRK_* bit and our name for it. */
struct vmm_quirk_desc {
	const char *name;
	uint64_t bit;
};

extern const struct vmm_quirk_desc vmm_quirk_descs[];
extern const size_t vmm_quirk_desc_count;

/* Looks a quirk up by name; NULL when slotd does not know it. */
const struct vmm_quirk_desc *vmm_quirk_lookup(const char *name);

/* What the host's KVM offers, probed once at start-up. */
struct vmm_caps {
	bool kvm_available;
	int kvm_errno;			/* why not, when !kvm_available */
	char kvm_error[160];
	int api_version;
	int max_memslots;		/* KVM_CAP_NR_MEMSLOTS */
	int max_vcpus;			/* KVM_CAP_MAX_VCPUS */
	int nr_vcpus;			/* KVM_CAP_NR_VCPUS (recommended) */
	bool disable_quirks2;		/* KVM_CAP_DISABLE_QUIRKS2 present */
	uint64_t supported_quirks;	/* bits KVM lets userspace disable */
	bool vm_types_cap;		/* KVM_CAP_VM_TYPES present */
	uint64_t vm_types;		/* bit N set: KVM VM type N supported */
	bool user_memory2;
	bool guest_memfd;
	bool readonly_mem;
	bool stats_fd;
	bool memory_attributes;
};

/* Names KVM VM type N ("default", "sw_protected", "tdx", ...). */
const char *vmm_kvm_vm_type_name(unsigned type);

struct vmm_config {
	const char *kvm_path;		/* default "/dev/kvm" */
};

/* Opens /dev/kvm and probes it.  A missing or forbidden /dev/kvm is not an
 * error: the vmm is created with caps.kvm_available false. */
int vmm_create(const struct vmm_config *cfg, struct vmm **out);
void vmm_destroy(struct vmm *vmm);

const struct vmm_caps *vmm_caps_get(const struct vmm *vmm);

/* Fills caps by probing the KVM device fd (exposed for tests). */
void vmm_kvm_probe(int kvm_fd, struct vmm_caps *caps);

#endif
