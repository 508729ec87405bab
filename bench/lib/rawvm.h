/* A VM made with bare KVM ioctls: the floor a memslot change through any
 * VMM is compared with. */
#ifndef SLOTD_BENCH_RAWVM_H
#define SLOTD_BENCH_RAWVM_H

#include <stdbool.h>
#include <stdint.h>

struct bench_raw_vm {
	int kvm, vm, vcpu;
	bool v2;	/* KVM_SET_USER_MEMORY_REGION2, else the old ioctl */
	void *ram;
};

/* A default-type VM with one vCPU and 64 MiB of RAM as slot 0, like a
 * slotd VM that is defined but not started.  0 or -errno. */
int bench_raw_open(struct bench_raw_vm *r);
void bench_raw_close(struct bench_raw_vm *r);
/* Sets (size != 0) or deletes (size 0) slot id.  0 or -errno. */
int bench_raw_set(struct bench_raw_vm *r, uint32_t slot, uint64_t gpa, uint64_t size, void *hva);

#endif
