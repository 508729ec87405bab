/* vCPU threads: one KVM_RUN loop each, exits handled on that thread.
 * Pause and stop are handshakes under vm->lock: the controller sets
 * vm->req, sets kvm_run->immediate_exit and sends the kick signal, then
 * waits on vm->cond; each vCPU reports quiescence or exit there. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/internal.h"

int vmm_kick_signal(void)
{
	return SIGRTMIN + 1;
}

static void kick_handler(int sig)
{
	(void)sig;	/* only there to make KVM_RUN return -EINTR */
}

static void kick_install_once(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;	/* no SA_RESTART: KVM_RUN returns */
	sigemptyset(&sa.sa_mask);
	sigaction(vmm_kick_signal(), &sa, NULL);
}

void vmm_kick_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, kick_install_once);
}

/* Creates vCPU index: fd, kvm_run mapping, CPUID, boot registers, stats. */
int vcpu_init(struct vmm_vm *vm, unsigned index)
{
	struct vmm_vcpu *vcpu = &vm->vcpus[index];
	int r, sz;

	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->stats.fd = -1;
	vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0)
		return -errno;
	sz = ioctl(vm->vmm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run))
		return sz < 0 ? -errno : -EINVAL;
	vcpu->run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return -errno;
	}
	vcpu->run_size = (size_t)sz;
	r = vcpu_cpuid_set(vcpu);
	if (r)
		return r;
	if (index == 0) {
		r = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);
		vm->tsc_khz = r > 0 ? (uint64_t)r : 0;
	}
	if (vm->vmm->caps.stats_fd)
		stats_src_open(&vcpu->stats,
			       ioctl(vcpu->fd, KVM_GET_STATS_FD, 0));
	return 0;
}

/* Releases what vcpu_init acquired; the thread must be joined. */
void vcpu_fini(struct vmm_vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	stats_src_close(&vcpu->stats);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
}

/* Kicks every live vCPU thread out of KVM_RUN.  Called with vm->lock. */
void vm_vcpus_kick(struct vmm_vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vmm_vcpu *v = &vm->vcpus[i];

		if (!v->thread_live)
			continue;
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(v->thread, vmm_kick_signal());
	}
}

/* Joins every vCPU thread that was started.  Called without vm->lock,
 * after the threads were told to stop. */
void vm_vcpus_join(struct vmm_vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (!vm->vcpus[i].thread_live)
			continue;
		pthread_join(vm->vcpus[i].thread, NULL);
		vm->vcpus[i].thread_live = false;
	}
}

/* Moves a running VM to new_state on behalf of the guest and tells every
 * vCPU to stop.  Takes vm->lock; notifies after dropping it. */
static void guest_stop(struct vmm_vcpu *vcpu, enum vmm_vm_state new_state,
		       bool has_status, uint32_t status, const char *reason)
{
	struct vmm_vm *vm = vcpu->vm;
	enum vmm_vm_state old;

	pthread_mutex_lock(&vm->lock);
	old = vm->state;
	if (old != VMM_VM_RUNNING || vm->req == VCPU_REQ_STOP) {
		pthread_mutex_unlock(&vm->lock);
		return;		/* someone else stopped it first */
	}
	vm_state_set_locked(vm, new_state);
	vm->end_ns = vmm_now_ns();
	vm->has_exit_status = has_status;
	vm->exit_status = status;
	snprintf(vm->crash_reason, sizeof(vm->crash_reason), "%s", reason);
	vm->req = VCPU_REQ_STOP;
	vm_vcpus_kick(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	console_flush(&vm->console);
	vm_notify_drain(vm);
}

void vm_guest_poweroff(struct vmm_vcpu *vcpu, uint32_t status)
{
	guest_stop(vcpu, VMM_VM_STOPPED, true, status, "");
}

/* Crashes the VM with a reason naming the vCPU and its RIP. */
void vm_guest_crash(struct vmm_vcpu *vcpu, const char *fmt, ...)
{
	char why[200], reason[256];
	struct kvm_regs regs;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		regs.rip = 0;
	snprintf(reason, sizeof(reason), "vcpu%u: %s (rip 0x%llx)",
		 vcpu->index, why, (unsigned long long)regs.rip);
	guest_stop(vcpu, VMM_VM_CRASHED, false, 0, reason);
}

static const char *internal_error_name(unsigned sub)
{
	switch (sub) {
	case KVM_INTERNAL_ERROR_EMULATION: return "emulation failure";
	case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception during exception";
	case KVM_INTERNAL_ERROR_DELIVERY_EV: return "event delivery failed";
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		return "unexpected exit reason";
	default: return "unknown";
	}
}

/* KVM_EXIT_SYSTEM_EVENT: shutdown/reset power the guest off, crash
 * crashes it. */
static void system_event(struct vmm_vcpu *vcpu, struct kvm_run *run)
{
	if (run->system_event.type == KVM_SYSTEM_EVENT_CRASH)
		vm_guest_crash(vcpu, "guest reported a crash (system event)");
	else
		vm_guest_poweroff(vcpu, 0);
}

/* Dispatches one exit; anything unexpected crashes the VM. */
static void exit_handle(struct vmm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	unsigned reason = run->exit_reason;

	__atomic_fetch_add(&vcpu->exits[reason < VMM_EXIT_REASONS ? reason :
			   VMM_EXIT_REASONS - 1], 1, __ATOMIC_RELAXED);
	switch (reason) {
	case KVM_EXIT_IO: dev_io(vcpu, run); break;
	case KVM_EXIT_MMIO: dev_mmio(vcpu, run); break;
	case KVM_EXIT_INTR: break;
	case KVM_EXIT_SYSTEM_EVENT: system_event(vcpu, run); break;
	case KVM_EXIT_HLT:
		vm_guest_crash(vcpu, "guest halted (HLT with interrupts off)");
		break;
	case KVM_EXIT_SHUTDOWN:
		vm_guest_crash(vcpu, "guest shutdown (triple fault)");
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vm_guest_crash(vcpu, "VM entry failed, hardware reason 0x%llx",
			       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_guest_crash(vcpu, "KVM internal error %u: %s",
			       run->internal.suberror,
			       internal_error_name(run->internal.suberror));
		break;
	default:
		vm_guest_crash(vcpu, "unhandled KVM exit %u (%s)", reason,
			       vmm_exit_reason_name(reason));
	}
}

/* Waits until this vCPU may enter the guest; false when it must exit.
 * Reports quiescence (paused or parked) to the controller. */
static bool wait_runnable(struct vmm_vcpu *vcpu)
{
	struct vmm_vm *vm = vcpu->vm;
	bool run = true;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		if (vm->req == VCPU_REQ_STOP) {
			run = false;
			break;
		}
		if (vm->req == VCPU_REQ_RUN && !vcpu->parked)
			break;
		if (!vcpu->quiescent) {
			vcpu->quiescent = true;
			vm->nr_quiescent++;
			pthread_cond_broadcast(&vm->cond);
		}
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	if (vcpu->quiescent) {
		vcpu->quiescent = false;
		vm->nr_quiescent--;
	}
	/* Cleared under the lock the kicker holds: a kick is never lost. */
	if (run)
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->lock);
	return run;
}

/* Leaves the loop: lets KVM finish a pending IN/MMIO read (KVM_RUN with
 * immediate_exit completes it and runs no instruction), so a later
 * KVM_SET_REGS of a reboot is not overwritten; then reports the exit. */
static void vcpu_leave(struct vmm_vcpu *vcpu)
{
	struct vmm_vm *vm = vcpu->vm;

	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	ioctl(vcpu->fd, KVM_RUN, 0);
	pthread_mutex_lock(&vm->lock);
	vm->nr_alive--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

/* The vCPU loop: wait until runnable, KVM_RUN, handle the exit. */
static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *vcpu = arg;
	char buf[64];
	sigset_t set;

	/* Only the kick signal (and faults) reach vCPU threads. */
	sigfillset(&set);
	sigdelset(&set, vmm_kick_signal());
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	/* An engine reader, online only while handling an exit: in KVM_RUN
	 * or waiting to run it never holds up a grace period. */
	mmu_reader_register(vcpu->vm->mmu);
	mmu_reader_offline();
	while (wait_runnable(vcpu)) {
		if (ioctl(vcpu->fd, KVM_RUN, 0) == 0) {
			mmu_reader_online();
			exit_handle(vcpu);
			mmu_reader_offline();
			continue;
		}
		if (errno == EINTR || errno == EAGAIN) {
			__atomic_fetch_add(&vcpu->exits[KVM_EXIT_INTR], 1,
					   __ATOMIC_RELAXED);
			continue;
		}
		vm_guest_crash(vcpu, "KVM_RUN failed: %s",
			       strerror_r(errno, buf, sizeof(buf)));
	}
	mmu_reader_online();
	mmu_reader_unregister(vcpu->vm->mmu);
	vcpu_leave(vcpu);
	return NULL;
}

/* Starts one thread per vCPU, which run as soon as vm->lock is dropped.
 * Called with vm->lock held, vm->req = RUN and no thread live.  On
 * failure the threads already started are told to stop (join them). */
int vm_vcpus_spawn(struct vmm_vm *vm)
{
	int r;

	vmm_kick_install();
	vm->nr_alive = 0;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread,
				   &vm->vcpus[i]);
		if (r) {
			vm->req = VCPU_REQ_STOP;
			vm_vcpus_kick(vm);
			return -r;
		}
		vm->vcpus[i].thread_live = true;
		vm->nr_alive++;
	}
	return 0;
}
