/* The VM state machine, in one place:
 *   defined|stopped|crashed --start--> running
 *   running --pause--> paused --resume--> running
 *   running|paused --stop--> stopped
 *   running --guest power-off--> stopped, --guest fault--> crashed
 * Control calls run on the control thread; guest-initiated transitions on
 * vCPU threads (vcpu.c).  vm->lock orders them. */
#include <errno.h>
#include <sys/ioctl.h>
#include <string.h>
#include <time.h>

#include "vmm/internal.h"

#define BIT(s) (1u << (s))

/* Changes the state and queues the transition for vm_notify_drain.
 * Called with vm->lock held. */
void vm_state_set_locked(struct vmm_vm *vm, enum vmm_vm_state new_state)
{
	struct vmm_transition *t;

	if (vm->state == new_state)
		return;
	if (vm->nr_pending < VMM_PENDING_MAX) {
		t = &vm->pending[(vm->pending_head + vm->nr_pending) % VMM_PENDING_MAX];
		t->old_state = vm->state;
		t->new_state = new_state;
		vm->nr_pending++;
	}
	vm->state = new_state;
	pthread_cond_broadcast(&vm->cond);
}

/* Pops the oldest queued transition; false when none.  Takes vm->lock. */
static bool pending_pop(struct vmm_vm *vm, struct vmm_transition *t)
{
	bool any;

	pthread_mutex_lock(&vm->lock);
	any = vm->nr_pending > 0;
	if (any) {
		*t = vm->pending[vm->pending_head];
		vm->pending_head = (vm->pending_head + 1) % VMM_PENDING_MAX;
		vm->nr_pending--;
	}
	pthread_mutex_unlock(&vm->lock);
	return any;
}

/* Delivers queued transitions to on_state_change in the order they
 * happened, whichever thread changed the state.  Only one thread delivers
 * at a time; a thread that finds notify_lock taken leaves its entries to
 * the holder, which re-checks the queue after letting go (this also makes
 * a control call from inside the callback safe).  Called without locks. */
void vm_notify_drain(struct vmm_vm *vm)
{
	const struct vmm_config *cfg = &vm->vmm->cfg;
	struct vmm_transition t;
	bool again;

	do {
		if (pthread_mutex_trylock(&vm->notify_lock))
			return;
		while (pending_pop(vm, &t))
			if (cfg->on_state_change)
				cfg->on_state_change(vm, t.old_state, t.new_state,
						     cfg->cb_arg);
		pthread_mutex_unlock(&vm->notify_lock);
		pthread_mutex_lock(&vm->lock);
		again = vm->nr_pending > 0;
		pthread_mutex_unlock(&vm->lock);
	} while (again);
}

int vmm_transition_check(const char *name, enum vmm_vm_state st, enum vmm_verb verb,
			 struct vmm_err *err)
{
	static const struct { const char *verb, *allowed; unsigned mask; } rules[] = {
		[VMM_VERB_START] = { "start", "defined, stopped or crashed",
				     BIT(VMM_VM_DEFINED) | BIT(VMM_VM_STOPPED) |
				     BIT(VMM_VM_CRASHED) },
		[VMM_VERB_PAUSE] = { "pause", "running", BIT(VMM_VM_RUNNING) },
		[VMM_VERB_RESUME] = { "resume", "paused", BIT(VMM_VM_PAUSED) },
		[VMM_VERB_STOP] = { "stop", "running or paused",
				    BIT(VMM_VM_RUNNING) | BIT(VMM_VM_PAUSED) },
	};

	if (BIT(st) & rules[verb].mask)
		return 0;
	return vmm_err_set(err, -EBUSY, "state", "cannot %s VM '%s': it is %s (allowed when %s)",
			   rules[verb].verb, name, vmm_vm_state_name(st), rules[verb].allowed);
}

static struct timespec deadline_in(unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static unsigned handshake_ms(struct vmm_vm *vm)
{
	return vm->vmm->cfg.stop_timeout_ms ? vm->vmm->cfg.stop_timeout_ms : 2000;
}

/* defined|stopped|crashed -> running; a restart clears RAM and reloads. */
int vmm_vm_start(struct vmm_vm *vm, struct vmm_err *err)
{
	enum vmm_vm_state st;
	int r;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	pthread_mutex_unlock(&vm->lock);
	r = vmm_transition_check(vm->name, st, VMM_VERB_START, err);
	if (r)
		return r;
	/* Threads of a guest-initiated stop have exited; reap them. */
	vm_vcpus_join(vm);
	r = vm_quirks_apply(vm, err);
	if (r)
		return r;
	if (st != VMM_VM_DEFINED) {
		r = vm_boot_ram_clear(vm);
		if (r)
			return vmm_err_set(err, r, NULL, "clearing RAM: %s", strerror(-r));
		r = vm_boot_prepare(vm, err);
		if (r)
			return r;
	}
	pthread_mutex_lock(&vm->lock);
	vm->req = VCPU_REQ_RUN;
	vm->has_exit_status = false;
	vm->exit_status = 0;
	vm->crash_reason[0] = '\0';
	vm->start_ns = vmm_now_ns();
	vm->end_ns = 0;
	vm_state_set_locked(vm, VMM_VM_RUNNING);
	r = vm_vcpus_spawn(vm);
	if (r)
		vm_state_set_locked(vm, st);
	pthread_mutex_unlock(&vm->lock);
	if (r) {
		vm_vcpus_join(vm);
		return vmm_err_set(err, r, NULL, "starting vCPU threads: %s",
				   strerror(-r));
	}
	vm_notify_drain(vm);
	return 0;
}

/* Waits until every live vCPU is quiescent, the VM left running, or the
 * deadline passed.  Called with vm->lock held. */
static int wait_quiescent_locked(struct vmm_vm *vm, unsigned ms)
{
	struct timespec dl = deadline_in(ms);

	while (vm->state == VMM_VM_RUNNING && vm->nr_quiescent < vm->nr_alive)
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &dl) == ETIMEDOUT)
			return -ETIMEDOUT;
	return 0;
}

/* running -> paused once every vCPU is out of KVM_RUN and waiting. */
int vmm_vm_pause(struct vmm_vm *vm, struct vmm_err *err)
{
	enum vmm_vm_state st;
	int r;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	r = vmm_transition_check(vm->name, st, VMM_VERB_PAUSE, err);
	if (r) {
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	vm->req = VCPU_REQ_PAUSE;
	vm_vcpus_kick(vm);
	r = wait_quiescent_locked(vm, handshake_ms(vm));
	if (r == 0 && vm->state == VMM_VM_RUNNING) {
		vm_state_set_locked(vm, VMM_VM_PAUSED);
	} else if (r == 0) {
		st = vm->state;		/* the guest stopped or crashed */
		r = vmm_transition_check(vm->name, st, VMM_VERB_PAUSE, err);
	} else {
		vm->req = VCPU_REQ_RUN;	/* give up, keep running */
		pthread_cond_broadcast(&vm->cond);
		r = vmm_err_set(err, -ETIMEDOUT, NULL,
				"vCPUs of '%s' did not pause within %u ms",
				vm->name, handshake_ms(vm));
	}
	pthread_mutex_unlock(&vm->lock);
	vm_notify_drain(vm);
	return r;
}

/* paused -> running: releases the waiting vCPUs. */
int vmm_vm_resume(struct vmm_vm *vm, struct vmm_err *err)
{
	enum vmm_vm_state st;
	int r;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	r = vmm_transition_check(vm->name, st, VMM_VERB_RESUME, err);
	if (r) {
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	vm->req = VCPU_REQ_RUN;
	vm_state_set_locked(vm, VMM_VM_RUNNING);
	pthread_mutex_unlock(&vm->lock);
	vm_notify_drain(vm);
	return 0;
}

/* Tells every vCPU thread to exit and waits up to ms for them.
 * Called with vm->lock held. */
static int halt_locked(struct vmm_vm *vm, unsigned ms)
{
	struct timespec dl = deadline_in(ms);

	vm->req = VCPU_REQ_STOP;
	vm_vcpus_kick(vm);
	pthread_cond_broadcast(&vm->cond);
	while (vm->nr_alive > 0)
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &dl) == ETIMEDOUT)
			return -ETIMEDOUT;
	return 0;
}

/* running|paused -> stopped once every vCPU thread has exited. */
int vmm_vm_stop(struct vmm_vm *vm, struct vmm_err *err)
{
	enum vmm_vm_state st;
	int r;

	pthread_mutex_lock(&vm->lock);
	st = vm->state;
	r = vmm_transition_check(vm->name, st, VMM_VERB_STOP, err);
	if (r) {
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	r = halt_locked(vm, handshake_ms(vm));
	if (!r) {
		vm->end_ns = vmm_now_ns();
		vm_state_set_locked(vm, VMM_VM_STOPPED);
	}
	pthread_mutex_unlock(&vm->lock);
	if (r)
		return vmm_err_set(err, r, NULL,
				   "vCPUs of '%s' did not stop within %u ms",
				   vm->name, handshake_ms(vm));
	vm_vcpus_join(vm);
	console_flush(&vm->console);
	vm_notify_drain(vm);
	return 0;
}

/* Stops whatever runs, however long it takes, and reaps the threads.  The
 * state is left as is: the VM is about to be freed. */
int vm_halt_for_destroy(struct vmm_vm *vm, struct vmm_err *err)
{
	(void)err;
	pthread_mutex_lock(&vm->lock);
	while (halt_locked(vm, handshake_ms(vm)) == -ETIMEDOUT)
		;	/* kicks again; KVM_RUN always returns eventually */
	pthread_mutex_unlock(&vm->lock);
	vm_vcpus_join(vm);
	return 0;
}

/* Sleeps on vm->cond until the state is in mask or the deadline. */
int vmm_vm_wait_state(struct vmm_vm *vm, unsigned mask, unsigned timeout_ms)
{
	struct timespec dl = deadline_in(timeout_ms);
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	while (!(mask & BIT(vm->state)) && r == 0)
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &dl) == ETIMEDOUT)
			r = -ETIMEDOUT;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_vcpus_hold(struct vmm_vm *vm, bool *held, struct vmm_err *err)
{
	int r = 0;

	*held = false;
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VMM_VM_RUNNING && vm->req == VCPU_REQ_RUN) {
		vm->req = VCPU_REQ_PAUSE;
		vm_vcpus_kick(vm);
		r = wait_quiescent_locked(vm, handshake_ms(vm));
		if (r) {
			vm->req = VCPU_REQ_RUN;
			pthread_cond_broadcast(&vm->cond);
			r = vmm_err_set(err, -ETIMEDOUT, NULL,
					"vCPUs of '%s' did not leave the guest within %u ms",
					vm->name, handshake_ms(vm));
		} else {
			*held = true;
		}
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

void vm_vcpus_release(struct vmm_vm *vm, bool held)
{
	if (!held)
		return;
	pthread_mutex_lock(&vm->lock);
	/* The guest may have stopped meanwhile; then STOP stays. */
	if (vm->req == VCPU_REQ_PAUSE)
		vm->req = VCPU_REQ_RUN;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

int vm_quirks_apply(struct vmm_vm *vm, struct vmm_err *err)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DISABLE_QUIRKS2 };
	uint64_t todo;

	pthread_mutex_lock(&vm->lock);
	todo = vm->quirks_disabled & ~vm->quirks_kernel;
	pthread_mutex_unlock(&vm->lock);
	if (!todo)
		return 0;
	cap.args[0] = todo;
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
		return vmm_err_set(err, -errno, "quirk",
				   "KVM_CAP_DISABLE_QUIRKS2 0x%llx: %s",
				   (unsigned long long)todo, strerror(errno));
	pthread_mutex_lock(&vm->lock);
	vm->quirks_kernel |= todo;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}
