/* runner: one process per VM.  slotd's side (the control plane calls
 * these) starts a runner, or finds one left by an earlier slotd, and
 * drives it with typed calls over a private channel (runner/proto.h); the
 * runner's side (slotd-runner) owns the KVM VM fd, vCPU threads, guest
 * memory, devices and the VM's MMU engine, sandboxed.  A runner outlives
 * the slotd that started it: guests keep running across restarts,
 * upgrades and crashes of slotd.  Functions return 0 or -errno and fill a
 * struct vmm_err (which may be NULL) for a person. */
#ifndef SLOTD_RUNNER_H
#define SLOTD_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/types.h"

struct runner;

enum runner_event_kind {
	RUNNER_EV_STATE,	/* the VM changed state (guest power-off,
				 * crash, or a call) */
	RUNNER_EV_CONSOLE,	/* the guest wrote to its console */
	RUNNER_EV_GONE,		/* the runner process ended */
};

struct runner_event {
	enum runner_event_kind kind;
	enum vmm_vm_state old_state, new_state;	/* STATE */
	struct vmm_vm_info info;		/* STATE: the VM after it */
	const char *data;			/* CONSOLE: bytes, len of them, */
	size_t len;
	uint64_t total;				/* and the console's total */
	const char *why;			/* GONE: "killed by SIGKILL", ... */
};

/* Called for each event, in order, on the thread that pumps or calls the
 * runner (slotd's event loop), also from inside a call that was waiting
 * for its reply: it must not call the runner, nor free it. */
typedef void (*runner_event_fn)(struct runner *r, const struct runner_event *ev, void *arg);

struct runner_spawn_config {
	const char *runner_path;	/* the slotd-runner executable */
	const char *runtime_dir;	/* its socket: DIR/NAME.sock (0700 dir) */
	int kvm_fd;			/* the KVM device, dup'd into the runner */
	int log_fd;			/* its stderr; -1: slotd's own */
	unsigned timeout_ms;		/* per call; 0: 10 s */
};

/* Starts a runner for VM vm_name (no VM yet: runner_vm_create makes it),
 * listening on runtime_dir/vm_name.sock for the slotds that come later.
 * -EEXIST when a live runner already serves that socket. */
int runner_spawn(const struct runner_spawn_config *cfg, const char *vm_name,
		 runner_event_fn fn, void *arg, struct runner **out, struct vmm_err *err);
/* Connects to the runner listening on sock_path (left by an earlier
 * slotd): -ECONNREFUSED when none is (a stale socket), -EPROTO when it
 * speaks another protocol version. */
int runner_adopt(const char *sock_path, unsigned timeout_ms, runner_event_fn fn, void *arg,
		 struct runner **out, struct vmm_err *err);
/* Closes slotd's side; the runner and its guest go on.  For a runner
 * that ended, reaps it. */
void runner_free(struct runner *r);
/* Ends the runner with SIGKILL and waits for it (a runner that does not
 * answer, or tests). */
void runner_kill(struct runner *r);

/* The channel's descriptor: when the event loop sees it readable, call
 * runner_pump, which delivers what arrived (events, or GONE). */
int runner_fd(const struct runner *r);
void runner_pump(struct runner *r);
bool runner_alive(const struct runner *r);
pid_t runner_pid(const struct runner *r);
/* Whether this slotd started it (else it adopted it). */
bool runner_is_child(const struct runner *r);
/* The runner's build ("0.1.0 abc123"), the VM it hosts ("" if none yet),
 * when it started (CLOCK_REALTIME ns) and how many slotds it served. */
const char *runner_build(const struct runner *r);
const char *runner_vm_name(const struct runner *r);
uint64_t runner_started_ns(const struct runner *r);
unsigned runner_controllers(const struct runner *r);
const char *runner_sock_path(const struct runner *r);

/* Moves pid into a systemd scope of its own, slotd-vm-NAME.scope in
 * machine.slice (systemd's D-Bus API), so that a restart or stop of
 * slotd.service leaves it alone and `systemctl status` shows the VM.
 * Logs and returns -errno when systemd refuses; the runner stays where
 * it is then. */
int runner_scope_create(pid_t pid, const char *vm_name);

/* ---- calls --------------------------------------------------------------- */

int runner_vm_create(struct runner *r, const struct vmm_vm_params *p,
		     struct vmm_vm_info *info, struct vmm_err *err);

enum runner_verb { RUNNER_START, RUNNER_PAUSE, RUNNER_RESUME, RUNNER_STOP };

int runner_vm_lifecycle(struct runner *r, enum runner_verb verb, struct vmm_vm_info *info,
			struct vmm_err *err);
/* Destroys the VM; the runner then exits (and is reaped by runner_free). */
int runner_vm_destroy(struct runner *r, struct vmm_err *err);
int runner_vm_info(struct runner *r, struct vmm_vm_info *info, struct vmm_err *err);
int runner_quirk_set(struct runner *r, const char *name, bool enabled,
		     struct vmm_vm_info *info, struct vmm_effect *fx, struct vmm_err *err);
/* Every memslot as the runner applied it (*slots malloc'd, sorted by
 * GPA, slot 0 included). */
int runner_slots_get(struct runner *r, struct vmm_memslot_info **slots, size_t *n,
		     struct vmm_err *err);
/* Applies ops as one step with the VM's vCPUs held out of the guest
 * (when it runs).  On success the runner keeps holding them until
 * runner_txn_end: commit (after the control plane made the change
 * durable) or abort (undone, as if never made).  A create op's backing
 * descriptor (has_fd) is passed along.  On failure nothing is applied:
 * *failed names the op (SIZE_MAX: none) and no runner_txn_end follows. */
int runner_txn_apply(struct runner *r, const struct vmm_memslot_op *ops, size_t n,
		     uint32_t *ids, size_t *failed, struct vmm_effect *fx, struct vmm_err *err);
/* Commit returns once sent (the runner releases the vCPUs on its own
 * time); abort waits until the runner has undone the transaction. */
int runner_txn_end(struct runner *r, bool commit, struct vmm_err *err);
int runner_set_flags(struct runner *r, uint32_t id, bool dirty_log, struct vmm_effect *fx,
		     struct vmm_err *err);
/* The slot's dirty bitmap (*bitmap malloc'd, one bit per page). */
int runner_dirty_log(struct runner *r, uint32_t id, bool clear, uint64_t **bitmap,
		     uint64_t *npages, uint64_t *ndirty, struct vmm_err *err);
int runner_memory_read(struct runner *r, uint64_t gpa, void *buf, size_t len,
		       struct vmm_err *err);
int runner_memory_write(struct runner *r, uint64_t gpa, const void *buf, size_t len,
			struct vmm_err *err);
int runner_console_read(struct runner *r, size_t tail, char *buf, size_t len, size_t *n,
			uint64_t *total, struct vmm_err *err);
int runner_reports_read(struct runner *r, uint64_t from, struct vmm_report *recs, size_t max,
			size_t *n, struct vmm_err *err);
int runner_stats_foreach(struct runner *r, int (*fn)(const struct vmm_stat *st, void *arg),
			 void *arg, struct vmm_err *err);

/* ---- the runner's side (slotd-runner) ------------------------------------ */

/* Serves the VM: kvm_fd is the KVM device, listen_fd the socket slotd
 * bound (the runner listens on it), conn_fd slotd's first connection.
 * Returns when the VM was destroyed (0) or KVM is unusable. */
int runner_serve(int kvm_fd, int listen_fd, int conn_fd);
/* This build's version and git revision, as HELLO reports it. */
const char *runner_build_id(void);

#endif
