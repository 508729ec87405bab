/* Guest memory by GPA through the engine (mmu/): device DMA on vCPU
 * threads and the memory API on the control thread.  A host address from
 * the engine stays valid until the calling thread's next quiescent state,
 * so nothing here may block between a translation and its use.
 *
 * A file backing truncated under a live slot turns any access past its
 * new end into SIGBUS.  slotd's own accesses (the memory API and the DMA
 * device) go through vm_bus_op, which turns that SIGBUS into -EIO for the
 * one access instead of killing the process: a thread-local jump buffer
 * set around the copy, and a handler that jumps back to it.  A SIGBUS
 * anywhere else is not ours: the handler restores the default action and
 * the fault repeats into it. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "vmm/internal.h"

#define PAGE	MMU_PAGE_SIZE

static __thread sigjmp_buf *bus_jmp;

static void bus_handler(int sig, siginfo_t *si, void *uc)
{
	sigset_t set;

	(void)si;
	(void)uc;
	if (!bus_jmp) {
		signal(sig, SIG_DFL);	/* the faulting access repeats into it */
		return;
	}
	/* SA_NODEFER keeps SIGBUS deliverable in the handler, but a runtime
	 * that wraps handlers (TSan) may block it: unblock it before the
	 * jump, which does not restore the mask (sigsetjmp(jb, 0) keeps the
	 * common path free of a sigprocmask call). */
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	siglongjmp(*bus_jmp, 1);
}

static void bus_install_once(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = bus_handler;
	/* NODEFER: the jump leaves the handler without restoring the mask,
	 * and a SIGBUS blocked then would kill the next guarded access. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

void vm_bus_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, bus_install_once);
}

int vm_bus_op(enum vm_bus_kind kind, void *dst, const void *src, size_t n, uint64_t *h)
{
	sigjmp_buf jb;

	/* Nothing the jump would skip holds a lock or allocates: only the
	 * access itself runs between here and the end. */
	if (sigsetjmp(jb, 0)) {
		bus_jmp = NULL;
		return -EIO;
	}
	bus_jmp = &jb;
	switch (kind) {
	case VM_BUS_COPY:
		memmove(dst, src, n);
		break;
	case VM_BUS_FILL:
		memset(dst, (int)(*h & 0xff), n);
		break;
	case VM_BUS_FNV:
		*h = dma_fnv64(*h, src, n);
		break;
	}
	bus_jmp = NULL;
	return 0;
}

/* Bytes from gpa to the end of its 4 KiB page, at most len. */
static uint64_t page_chunk(uint64_t gpa, uint64_t len)
{
	uint64_t n = PAGE - (gpa & (PAGE - 1));

	return n < len ? n : len;
}

static int map_err(int r)
{
	if (r == -EROFS)
		return -EACCES;
	if (r == -ENOENT || r == -EFAULT || r == -EINVAL)
		return -EFAULT;
	return r;
}

int vm_guest_range_check(struct vmm_vm *vm, uint64_t gpa, uint64_t len,
			 bool write)
{
	unsigned access = write ? MMU_ACCESS_WRITE : MMU_ACCESS_READ;
	uint64_t done, n;
	void *hva;

	if (gpa + len < gpa)
		return -EFAULT;
	for (done = 0; done < len; done += n) {
		int r;

		n = page_chunk(gpa + done, len - done);
		r = mmu_translate(vm->mmu, gpa + done, n, MMU_ACCESS_READ, &hva);
		if (r)
			return map_err(r);
		/* A write check must not dirty the page before the write. */
		if (write && (r = mmu_translate(vm->mmu, gpa + done, n, access, &hva)))
			return map_err(r);
	}
	return 0;
}

int vm_guest_copy(struct vmm_vm *vm, uint64_t gpa, void *buf, uint64_t len,
		  bool write)
{
	uint64_t done, n;
	void *hva;
	int r;

	/* Check it all first: an access is done whole or not at all. */
	r = vm_guest_range_check(vm, gpa, len, write);
	if (r)
		return r;
	for (done = 0; done < len; done += n) {
		n = page_chunk(gpa + done, len - done);
		r = mmu_translate(vm->mmu, gpa + done, n,
				  write ? MMU_ACCESS_WRITE : MMU_ACCESS_READ, &hva);
		if (r)
			return map_err(r);
		if (write)
			r = vm_bus_op(VM_BUS_COPY, hva, (uint8_t *)buf + done, n, NULL);
		else
			r = vm_bus_op(VM_BUS_COPY, (uint8_t *)buf + done, hva, n, NULL);
		if (r)
			return r;
	}
	return 0;
}

bool vm_reader_enter(struct vmm_vm *vm)
{
	/* -EEXIST: this thread already reads this VM (a vCPU thread). */
	return mmu_reader_register(vm->mmu) == 0;
}

void vm_reader_leave(struct vmm_vm *vm, bool registered)
{
	if (registered)
		mmu_reader_unregister(vm->mmu);
}
