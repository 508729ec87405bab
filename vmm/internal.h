/* vmm internals shared by the files of this module only. */
#ifndef SLOTD_VMM_INTERNAL_H
#define SLOTD_VMM_INTERNAL_H

#include "vmm/vmm.h"
#include "vmm/kvm_compat.h"

struct vmm {
	int kvm_fd;			/* -1 when KVM is unavailable */
	struct vmm_caps caps;
};

#endif
