/* KVM ABI newer than the installed 6.1 headers.  Every definition is
 * guarded so newer headers win; every capability is still probed at run
 * time (vmm/kvm.c), never assumed. */
#ifndef SLOTD_KVM_COMPAT_H
#define SLOTD_KVM_COMPAT_H

#include <linux/kvm.h>
#include <stdint.h>

#ifndef KVM_X86_QUIRK_SLOT_ZAP_ALL
#define KVM_X86_QUIRK_SLOT_ZAP_ALL		(1 << 7)
#endif
#ifndef KVM_X86_QUIRK_STUFF_FEATURE_MSRS
#define KVM_X86_QUIRK_STUFF_FEATURE_MSRS	(1 << 8)
#endif
#ifndef KVM_X86_QUIRK_IGNORE_GUEST_PAT
#define KVM_X86_QUIRK_IGNORE_GUEST_PAT		(1 << 9)
#endif
#ifndef KVM_X86_QUIRK_VMCS12_ALLOW_FREEZE_IN_SMM
#define KVM_X86_QUIRK_VMCS12_ALLOW_FREEZE_IN_SMM	(1 << 10)
#endif

#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2		231
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES	232
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD		234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES		235
#endif

#ifndef KVM_X86_DEFAULT_VM
#define KVM_X86_DEFAULT_VM		0
#define KVM_X86_SW_PROTECTED_VM		1
#define KVM_X86_SEV_VM			2
#define KVM_X86_SEV_ES_VM		3
#define KVM_X86_SNP_VM			4
#define KVM_X86_TDX_VM			5
#endif

#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD		(1UL << 2)

struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};

#define KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)

struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};

#define KVM_CREATE_GUEST_MEMFD	_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif

#endif
