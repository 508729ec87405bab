/* vmm: KVM virtual machines, run in the process that owns them (a runner
 * per VM under slotd; tests may use it in-process).  Public interface;
 * json-c never reaches this module.  Functions return 0 or -errno.  The
 * data types are in vmm/types.h, which the layers above include alone. */
#ifndef SLOTD_VMM_H
#define SLOTD_VMM_H

#include "vmm/types.h"

struct vmm;
struct vmm_vm;

/* Called after a VM changed state, without any vmm lock held, once per
 * transition and in the order they happened (one delivery at a time per
 * VM).  It may run on a vCPU thread (guest power-off, crash) or on the
 * thread that called a vmm_vm_* function.  It must not block and must not
 * start, stop, pause, resume or destroy that VM (a vCPU thread cannot
 * join itself; destroy would free the VM under the caller): bounce to the
 * event loop (eventfd) and act there. */
typedef void (*vmm_state_fn)(struct vmm_vm *vm, enum vmm_vm_state old_state,
			     enum vmm_vm_state new_state, void *arg);

struct vmm_config {
	const char *kvm_path;		/* default "/dev/kvm" */
	int kvm_fd;			/* > 0: an open KVM device, taken over
					 * (kvm_path is then not opened) */
	const char *console_dir;	/* NAME.log per VM there; NULL: none */
	vmm_state_fn on_state_change;	/* optional */
	void *cb_arg;
	unsigned stop_timeout_ms;	/* vCPU handshakes; default 2000 */
	/* Directories file-backed memslots may use (NULL-terminated; NULL:
	 * none, file backings are refused unless the caller passes their
	 * descriptor).  Paths are resolved (symlinks, "..") before the
	 * check. */
	const char *const *file_dirs;
	uint64_t max_vm_memory;		/* per VM, all its slots; 0: no limit */
	uint64_t max_total_memory;	/* all VMs; 0: no limit */
};

/* Opens /dev/kvm and probes it.  A missing or forbidden /dev/kvm is not an
 * error: the vmm is created with caps.kvm_available false and VM calls
 * return -ENODEV.  vmm_destroy stops and destroys every VM.
 *
 * Threading: vmm_vm_* control calls (create, destroy, lifecycle, quirks)
 * are meant for one control thread (the event loop) or callers that
 * serialise them; reads (info, console, reports, memory, stats, foreach,
 * find) may run on any thread concurrently with the VM's vCPU threads. */
int vmm_create(const struct vmm_config *cfg, struct vmm **out);
void vmm_destroy(struct vmm *vmm);

const struct vmm_caps *vmm_caps_get(const struct vmm *vmm);
/* The backing cache: released private anonymous backings of up to 2 MiB
 * kept (emptied) for the next anonymous slot of the same size, and how
 * many were reused, kept, and are held now. */
void vmm_bcache_stats(struct vmm *vmm, uint64_t *reused, uint64_t *kept, unsigned *held);

/* Fills caps by probing the KVM device fd (exposed for tests). */
void vmm_kvm_probe(int kvm_fd, struct vmm_caps *caps);

/* ---- VMs ------------------------------------------------------------- */

/* Creates a VM in state defined: KVM VM, memslot 0, payload, page tables,
 * GDT, CPUID and vCPUs.  -EEXIST name taken, -EINVAL bad parameter (see
 * err->field), -ENODEV no KVM, -ENOENT payload not found. */
int vmm_vm_create(struct vmm *vmm, const struct vmm_vm_params *params,
		  struct vmm_vm **out, struct vmm_err *err);
/* Stops (if needed) and frees a VM; its memory goes back to the system. */
int vmm_vm_destroy(struct vmm_vm *vm, struct vmm_err *err);
/* The VM of that name, or NULL.  Valid until vmm_vm_destroy. */
struct vmm_vm *vmm_vm_find(struct vmm *vmm, const char *name);
const char *vmm_vm_name(const struct vmm_vm *vm);

/* Lifecycle, one state machine (an impossible transition is -EBUSY):
 *   start:  defined|stopped|crashed -> running (stopped/crashed: reboot,
 *           RAM cleared and the payload reloaded)
 *   pause:  running -> paused        resume: paused -> running
 *   stop:   running|paused -> stopped
 *   destroy: any state.
 * The guest itself goes running -> stopped (power port) or -> crashed.
 * pause/stop kick the vCPUs out of KVM_RUN (immediate_exit plus the kick
 * signal) and wait for them up to stop_timeout_ms (-ETIMEDOUT; measured
 * well under a millisecond), so they block the calling thread briefly. */
int vmm_vm_start(struct vmm_vm *vm, struct vmm_err *err);
int vmm_vm_pause(struct vmm_vm *vm, struct vmm_err *err);
int vmm_vm_resume(struct vmm_vm *vm, struct vmm_err *err);
int vmm_vm_stop(struct vmm_vm *vm, struct vmm_err *err);

/* Waits until the VM is in one of the states of mask (1 << state), up to
 * timeout_ms; 0 or -ETIMEDOUT.  For tests and tools; not for the loop. */
int vmm_vm_wait_state(struct vmm_vm *vm, unsigned mask, unsigned timeout_ms);

/* Calls fn for each VM in creation order under the vmm lock; fn must not
 * create or destroy VMs.  A non-zero return of fn stops and is returned. */
int vmm_vm_foreach(struct vmm *vmm, int (*fn)(struct vmm_vm *vm, void *arg),
		   void *arg);

int vmm_vm_info_get(struct vmm_vm *vm, struct vmm_vm_info *info);

/* Copies up to max memslots into slots (sorted by GPA); *count gets the
 * total number, which may exceed max. */
int vmm_vm_memslots_get(struct vmm_vm *vm, struct vmm_memslot_info *slots,
			size_t max, size_t *count);
/* Copies memslot id (found through the id map, not a scan); -ENOENT. */
int vmm_vm_memslot_get(struct vmm_vm *vm, uint32_t id, struct vmm_memslot_info *out);

/* Quirks: bit set = enabled.  While a VM is defined (never started) any
 * supported quirk may be turned off and on again: the wanted set is
 * applied to the kernel VM (KVM_CAP_DISABLE_QUIRKS2) when it starts.  Once
 * started, a quirk can still be disabled but never re-enabled (the kernel
 * offers no way back).  slot_zap_all is also the engine's policy: off means
 * precise zapping of only the changed slot's leaves.  A protected VM has
 * slot_zap_all off and locked.  Errors: -EPERM refused (err says why),
 * -EOPNOTSUPP the host cannot disable that quirk, -ENOENT unknown name. */
uint64_t vmm_vm_quirks_enabled(struct vmm_vm *vm);
int vmm_vm_quirk_set(struct vmm_vm *vm, const char *name, bool enabled,
		     struct vmm_err *err);
/* Would vmm_vm_quirk_set(name, enabled) be accepted?  The same errors,
 * nothing changed; *enabled_after gets the mask of enabled quirks it
 * would leave (so that it can be made durable first). */
int vmm_vm_quirk_check(struct vmm_vm *vm, const char *name, bool enabled,
		       uint64_t *enabled_after, struct vmm_err *err);

/* Fills states[i] for each of the vmm_quirk_desc_count quirks. */
int vmm_vm_quirks_get(struct vmm_vm *vm, struct vmm_quirk_state *states,
		      size_t max);

/* ---- memslot changes ------------------------------------------------- */

/* Creates a memslot: validates it (alignment, size, overlap -- err names
 * the overlapping slot --, the guest's physical address width, the slot
 * limit, flags against the host, file paths under the allowed directories,
 * memory limits), maps its backing, applies it to KVM and to the engine.
 * Nothing is left half-applied on failure.  *id gets the slot's id.
 * Errors: -EINVAL (err->field), -EEXIST overlap or id taken, -ENOSPC slot
 * limit, -E2BIG memory limit, -EOPNOTSUPP host lacks a capability, -EACCES
 * path not allowed, -ENOENT file missing, or the kernel's -errno. */
int vmm_memslot_create(struct vmm_vm *vm, const struct vmm_memslot_params *p,
		       uint32_t *id, struct vmm_effect *fx, struct vmm_err *err);
/* Moves a slot to new_gpa with KVM's in-place move (same id, size and
 * backing); -ENOENT unknown id, -EPERM slot 0, checks as for create. */
int vmm_memslot_move(struct vmm_vm *vm, uint32_t id, uint64_t new_gpa,
		     struct vmm_effect *fx, struct vmm_err *err);
/* Deletes a slot from KVM and the engine; its backing is unmapped once no
 * reader can reach it (after the engine's grace period).  -EPERM slot 0. */
int vmm_memslot_delete(struct vmm_vm *vm, uint32_t id, struct vmm_effect *fx,
		       struct vmm_err *err);
/* Turns dirty logging of a slot on or off (readonly cannot change in place:
 * -EINVAL naming "readonly"). */
int vmm_memslot_set_flags(struct vmm_vm *vm, uint32_t id, bool dirty_log,
			  struct vmm_effect *fx, struct vmm_err *err);
/* The slot's dirty pages, KVM's log merged with the engine's: *bitmap
 * (malloc'd, caller frees) has one bit per 4 KiB page of the slot, *npages
 * bits; *ndirty counts the set bits.  With clear, both logs are reset.
 * -EINVAL when dirty logging is off. */
int vmm_memslot_dirty_log(struct vmm_vm *vm, uint32_t id, bool clear,
			  uint64_t **bitmap, uint64_t *npages, uint64_t *ndirty,
			  struct vmm_err *err);

/* Called once every op of a transaction is applied, vCPUs still held
 * (e.g. to make the new layout durable, or to ask the control plane
 * whether it did); fx already holds the ops' effect and ids their slot
 * ids.  A non-zero -errno undoes it all. */
struct vmm_txn_commit {
	int (*fn)(void *arg, const uint32_t *ids, const struct vmm_effect *fx);
	void *arg;
};

/* Applies ops in order as one step: every vCPU is held out of KVM_RUN
 * meanwhile, so the guest never runs on a half-done layout.  If an op
 * fails, the ones before it are undone, *failed gets its index, err says
 * why, and the layout is as before.  ids[i] gets the id each op acted on.
 * Then commit (when not NULL) runs; if it fails every op is undone too,
 * *failed stays SIZE_MAX and its error is returned.  Slots deleted by the
 * transaction keep their memory until it is committed.  At most
 * VMM_TXN_MAX ops. */
int vmm_memslot_transaction(struct vmm_vm *vm, const struct vmm_memslot_op *ops,
			    size_t n, uint32_t *ids, size_t *failed,
			    const struct vmm_txn_commit *commit,
			    struct vmm_effect *fx, struct vmm_err *err);

/* ---- console, reports, memory, stats ---------------------------------- */

/* Copies the last min(tail, len) bytes of the console (tail 0: as much as
 * fits) into buf; *n gets the count.  The ring keeps the last 64 KiB. */
int vmm_vm_console_read(struct vmm_vm *vm, size_t tail, char *buf, size_t len,
			size_t *n);

/* Copies records with seq >= from (oldest kept first, the last 4096 are
 * kept) into recs; *n gets the count. */
int vmm_vm_reports_read(struct vmm_vm *vm, uint64_t from,
			struct vmm_report *recs, size_t max, size_t *n);

/* Reads/writes guest memory by GPA, bounds- and permission-checked:
 * -EFAULT range not backed by memslots, -EACCES write to a read-only slot
 * or any access to a protected VM's memory, -EINVAL length 0 or above
 * VMM_MEMORY_IO_MAX. */
int vmm_vm_memory_read(struct vmm_vm *vm, uint64_t gpa, void *buf, size_t len,
		       struct vmm_err *err);
int vmm_vm_memory_write(struct vmm_vm *vm, uint64_t gpa, const void *buf,
			size_t len, struct vmm_err *err);

/* Calls fn for every statistic of the VM; a non-zero return stops. */
int vmm_vm_stats_foreach(struct vmm_vm *vm,
			 int (*fn)(const struct vmm_stat *st, void *arg),
			 void *arg);

/* ---- helpers --------------------------------------------------------- */

/* The realtime signal that kicks vCPU threads out of KVM_RUN; vmm_create
 * installs an empty handler for it.  The daemon must leave it alone. */
int vmm_kick_signal(void);

#endif
