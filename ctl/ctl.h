/* ctl: the control plane.  Holds every VM's definition, lifecycle state,
 * memslot layout model and quirk rules; validates each change before a
 * VM's runner process sees it (alignment, overlap, physical address
 * width, slot and memory limits, --file-dir); makes it durable (ctl/store)
 * before it is answered; adopts the runners an earlier slotd left and
 * reconciles their layout with the journal.  Typed: no JSON-RPC here;
 * rpc/ calls these.  Runs on the event loop thread only.
 *
 * One order for every change (ctl/change.c): check against the model,
 * apply in the runner (vCPUs held where the guest could see a half-made
 * change), persist, then commit; a failure at any step undoes the steps
 * before it, so a running guest never sees a slot the client was told
 * was not made.  Errors: -errno and a struct vmm_err for a person; a
 * state file that could not be written has err->file set. */
#ifndef SLOTD_CTL_H
#define SLOTD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/types.h"

struct event_base;
struct ctl;
struct ctl_vm;

/* A VM's state changed (guest power-off or crash, a call, its runner
 * ending).  Delivered from the event loop, after the reply of the call
 * that caused it. */
struct ctl_state_change {
	char vm[VMM_NAME_MAX];
	enum vmm_vm_state old_state, new_state;
	bool has_exit_status;
	uint32_t exit_status;
	char reason[256];		/* crashed: why */
};

typedef void (*ctl_state_fn)(const struct ctl_state_change *c, void *arg);

/* What slotd does with the guests when it exits (SIGTERM). */
enum ctl_exit_policy {
	CTL_EXIT_KEEP,			/* runners and guests go on (default) */
	CTL_EXIT_STOP,			/* every guest is ended first */
};

struct ctl_config {
	struct event_base *base;
	const char *kvm_path;		/* default /dev/kvm */
	const char *state_dir;		/* NULL: nothing persisted */
	const char *runtime_dir;	/* runner sockets (made 0700) */
	const char *runner_path;	/* the slotd-runner executable */
	const char *const *file_dirs;	/* NULL-terminated; NULL: none */
	uint64_t max_vm_memory;		/* per VM; 0: no limit */
	uint64_t max_total_memory;	/* all VMs; 0: no limit */
	unsigned runner_timeout_ms;	/* per runner call; 0: 10 s */
	bool scopes;			/* a systemd scope per runner */
	int log_fd;			/* runners' stderr; -1: slotd's */
	ctl_state_fn on_state_change;
	void *cb_arg;
};

/* Probes the host's KVM (a missing or forbidden /dev/kvm is not an
 * error: caps say why and VM calls return -ENODEV), prepares the
 * runtime directory (refusing one another slotd holds). */
int ctl_create(const struct ctl_config *cfg, struct ctl **out);
/* Brings back every VM of the state directory: adopts its runner when
 * one is still running (reconciling its layout with the journal, logged),
 * else recreates it in a new runner (state defined).  Runners without a
 * VM in the state directory are ended.  Counts in *st. */
struct ctl_restore_stats {
	unsigned adopted, recreated, failed, ended;
	uint64_t ns;			/* how long it took */
};
int ctl_restore(struct ctl *ctl, struct ctl_restore_stats *st);
/* Lets go of every runner; with CTL_EXIT_STOP ends their guests first
 * (their definitions stay: the next slotd recreates them). */
void ctl_destroy(struct ctl *ctl, enum ctl_exit_policy policy);

const struct vmm_caps *ctl_caps(const struct ctl *ctl);

/* ---- retries (ctl/requests.c) ---------------------------------------------- */

/* A call a client gave a request_id is answered once: its outcome is
 * kept (durably, with a state directory) and a retry with the same id
 * gets it back instead of acting again.  Kept for CTL_REQUEST_WINDOW_S,
 * at most CTL_REQUEST_KEEP ids and CTL_REQUEST_BYTES of replies. */
#define CTL_REQUEST_ID_MAX	128
#define CTL_REQUEST_WINDOW_S	(24ull * 3600)
#define CTL_REQUEST_KEEP	10000
#define CTL_REQUEST_BYTES	(32u << 20)

struct ctl_request {
	const char *method;		/* the call it answered */
	uint64_t fingerprint;		/* of the call's params (the caller's hash) */
	bool error;			/* reply is an error member, else a result */
	bool in_doubt;			/* carried out, reply lost in a crash */
	const char *vm;			/* in doubt: the VM it changed */
	const char *reply;		/* JSON text */
	size_t len;
	uint64_t at_ns;			/* CLOCK_REALTIME */
};

/* 0 when id (len bytes) can be a request id: 1..CTL_REQUEST_ID_MAX of
 * letters, digits and . _ : / @ + = -; else -EINVAL and why. */
int ctl_request_id_check(const char *id, size_t len, char *why, size_t whylen);
/* The kept outcome of id (pointers valid until the next call into ctl),
 * or -ENOENT. */
int ctl_request_find(struct ctl *ctl, const char *id, struct ctl_request *out);
/* The call with this id runs now: what it persists carries the id, so a
 * restarted slotd knows it was carried out even if ctl_request_end's
 * write never happened. */
void ctl_request_begin(struct ctl *ctl, const char *id);
/* The call ended with outcome o (o->method, fingerprint, error, reply);
 * keep false (an outcome a retry should not get, e.g. state that could
 * not be written) forgets it.  Durable before it returns; a write that
 * fails is logged and returned (the outcome is still kept in memory). */
int ctl_request_end(struct ctl *ctl, const struct ctl_request *o, bool keep);

/* ---- VMs ------------------------------------------------------------- */

/* Creates a VM in its own runner, state defined; durable before it
 * returns.  -EEXIST name taken, -EINVAL (err->field), -ENODEV no KVM,
 * -ENOENT payload not found. */
int ctl_vm_create(struct ctl *ctl, const struct vmm_vm_params *p, struct ctl_vm **out,
		  struct vmm_err *err);
/* Ends the VM's runner and removes its state. */
int ctl_vm_destroy(struct ctl_vm *vm, struct vmm_err *err);
struct ctl_vm *ctl_vm_find(struct ctl *ctl, const char *name);
const char *ctl_vm_name(const struct ctl_vm *vm);
/* Calls fn for each VM in creation order; a non-zero return stops. */
int ctl_vm_foreach(struct ctl *ctl, int (*fn)(struct ctl_vm *vm, void *arg), void *arg);

/* Lifecycle (vmm_transition_check's rules).  Starting a VM whose runner
 * ended (crashed) starts a new runner with the VM's layout first. */
int ctl_vm_start(struct ctl_vm *vm, struct vmm_err *err);
int ctl_vm_pause(struct ctl_vm *vm, struct vmm_err *err);
int ctl_vm_resume(struct ctl_vm *vm, struct vmm_err *err);
int ctl_vm_stop(struct ctl_vm *vm, struct vmm_err *err);

struct ctl_vm_info {
	struct vmm_vm_info vm;		/* counters live when the runner is */
	bool restored;			/* recreated from the state dir */
	bool adopted;			/* its runner was left by an earlier slotd */
	bool runner_alive;
	pid_t runner_pid;
	char runner_build[64];
	uint64_t runner_started_ns;	/* CLOCK_REALTIME */
	unsigned runner_controllers;	/* slotds it has served */
	uint64_t quirks_enabled;
};

/* The VM's info; with live, its runner is asked for current counters
 * (else they are those of its last report). */
int ctl_vm_info(struct ctl_vm *vm, bool live, struct ctl_vm_info *info);
/* The VM's memslots as the model holds them, sorted by GPA (*out
 * malloc'd). */
int ctl_vm_memslots_get(struct ctl_vm *vm, struct vmm_memslot_info **out, size_t *n);
int ctl_vm_memslot_get(struct ctl_vm *vm, uint32_t id, struct vmm_memslot_info *out);

uint64_t ctl_vm_quirks_enabled(struct ctl_vm *vm);
int ctl_vm_quirks_get(struct ctl_vm *vm, struct vmm_quirk_state *states, size_t max);
/* Turns a quirk on or off (vmm_quirk_check's rules); fx gets what it did
 * to the kernel's counters. */
int ctl_vm_quirk_set(struct ctl_vm *vm, const char *name, bool enabled,
		     struct vmm_effect *fx, struct vmm_err *err);

/* ---- memslot changes (one order, ctl/change.c) -------------------------- */

int ctl_memslot_create(struct ctl_vm *vm, const struct vmm_memslot_params *p, uint32_t *id,
		       struct vmm_effect *fx, struct vmm_err *err);
int ctl_memslot_move(struct ctl_vm *vm, uint32_t id, uint64_t gpa, struct vmm_effect *fx,
		     struct vmm_err *err);
int ctl_memslot_delete(struct ctl_vm *vm, uint32_t id, struct vmm_effect *fx,
		       struct vmm_err *err);
/* Up to VMM_TXN_MAX ops as one step; on failure *failed names the op
 * (SIZE_MAX: none, e.g. the state could not be written) and nothing is
 * changed. */
int ctl_memslot_transaction(struct ctl_vm *vm, const struct vmm_memslot_op *ops, size_t n,
			    uint32_t *ids, size_t *failed, struct vmm_effect *fx,
			    struct vmm_err *err);
int ctl_memslot_set_flags(struct ctl_vm *vm, uint32_t id, bool dirty_log,
			  struct vmm_effect *fx, struct vmm_err *err);
int ctl_memslot_dirty_log(struct ctl_vm *vm, uint32_t id, bool clear, uint64_t **bitmap,
			  uint64_t *npages, uint64_t *ndirty, struct vmm_err *err);

/* ---- declared layouts (ctl/apply.c) ------------------------------------ */

/* One memslot of a desired layout: what memslot.create takes, compact (a
 * layout of thousands of slots costs tens of bytes per slot, not a KiB). */
struct ctl_slot_want {
	uint32_t id;			/* VMM_SLOT_ANY: none given */
	uint32_t flags;			/* VMM_SLOT_* */
	uint64_t gpa, size;
	enum vmm_backing_kind kind;
	bool shared;
	uint64_t offset, hugepage_size;
	const char *path;		/* NULL: none; borrowed for the call */
};

enum ctl_apply_kind {
	CTL_APPLY_CREATE,
	CTL_APPLY_MOVE,
	CTL_APPLY_REPLACE,		/* deleted and created again, same id */
	CTL_APPLY_DELETE,
	CTL_APPLY_FLAGS,		/* dirty logging turned on or off */
};

struct ctl_apply_change {
	enum ctl_apply_kind kind;
	size_t index;			/* the desired slot; SIZE_MAX: a delete */
	struct vmm_memslot_info slot;	/* after the change (a delete: before) */
	struct vmm_memslot_info old;	/* MOVE, REPLACE, FLAGS: before */
};

struct ctl_apply_result {
	struct ctl_apply_change *changes;	/* malloc'd: the desired slots'
						 * changes in their order (a move
						 * before its flags), then the
						 * deletes by GPA */
	size_t n;
	size_t unchanged;		/* desired slots that needed nothing */
	size_t ops;			/* of the transaction */
	struct vmm_effect fx;		/* all zero when nothing changed */
};

/* Makes the VM's memslots other than slot 0 (boot RAM, never touched) the
 * n slots of want: the difference as one transaction (creates, moves,
 * deletes; a slot whose size, backing or readonly flag changes is deleted
 * and created again in it), then dirty-logging changes.  Nothing changes
 * when want already is the layout, or with dry_run.  On failure *failed
 * names the desired slot at fault (SIZE_MAX: none; err->field "slots" for
 * the whole list) and nothing was changed, except when only the
 * dirty-logging step failed (the message says so).  ctl/apply.c has the
 * rules. */
int ctl_memslot_apply(struct ctl_vm *vm, const struct ctl_slot_want *want, size_t n,
		      bool dry_run, struct ctl_apply_result *res, size_t *failed,
		      struct vmm_err *err);
void ctl_apply_result_fini(struct ctl_apply_result *res);

/* ---- console, reports, memory, stats ----------------------------------- */

/* The last min(tail, len) console bytes; *total: bytes ever written.
 * From the runner, or (runner gone) from slotd's copy of the last
 * output. */
int ctl_vm_console_read(struct ctl_vm *vm, size_t tail, char *buf, size_t len, size_t *n,
			uint64_t *total);
int ctl_vm_reports_read(struct ctl_vm *vm, uint64_t from, struct vmm_report *recs,
			size_t max, size_t *n, struct vmm_err *err);
/* Bounds-checked against the model first: -EFAULT not fully backed,
 * -EACCES a write to a read-only slot or a protected VM, -EINVAL length;
 * -EIO the backing failed (a truncated file). */
int ctl_vm_memory_read(struct ctl_vm *vm, uint64_t gpa, void *buf, size_t len,
		       struct vmm_err *err);
int ctl_vm_memory_write(struct ctl_vm *vm, uint64_t gpa, const void *buf, size_t len,
			struct vmm_err *err);
int ctl_vm_stats_foreach(struct ctl_vm *vm, int (*fn)(const struct vmm_stat *st, void *arg),
			 void *arg, struct vmm_err *err);

#endif
