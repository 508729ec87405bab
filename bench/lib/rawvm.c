/* Bare-ioctl VM for the benchmarks' raw series (rawvm.h). */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/lib/rawvm.h"
#include "vmm/kvm_compat.h"

#define RAW_RAM (64ull << 20)

int bench_raw_set(struct bench_raw_vm *r, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region2 m2 = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};
	struct kvm_userspace_memory_region m1 = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};
	int ret = r->v2 ? ioctl(r->vm, KVM_SET_USER_MEMORY_REGION2, &m2)
			: ioctl(r->vm, KVM_SET_USER_MEMORY_REGION, &m1);

	return ret < 0 ? -errno : 0;
}

int bench_raw_open(struct bench_raw_vm *r)
{
	r->vm = r->vcpu = -1;
	r->ram = MAP_FAILED;
	r->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (r->kvm < 0)
		return -errno;
	r->vm = ioctl(r->kvm, KVM_CREATE_VM, 0);
	if (r->vm < 0)
		return -errno;
	/* KVM's memslot updates cost more once a VM has vCPUs. */
	r->vcpu = ioctl(r->vm, KVM_CREATE_VCPU, 0);
	if (r->vcpu < 0)
		return -errno;
	r->v2 = ioctl(r->vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) > 0;
	r->ram = mmap(NULL, RAW_RAM, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->ram == MAP_FAILED)
		return -errno;
	return bench_raw_set(r, 0, 0, RAW_RAM, r->ram);
}

void bench_raw_close(struct bench_raw_vm *r)
{
	if (r->vcpu >= 0)
		close(r->vcpu);
	if (r->vm >= 0)
		close(r->vm);
	if (r->kvm >= 0)
		close(r->kvm);
	if (r->ram != MAP_FAILED && r->ram)
		munmap(r->ram, RAW_RAM);
	r->kvm = r->vm = r->vcpu = -1;
	r->ram = MAP_FAILED;
}
