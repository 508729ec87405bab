/* ctl internals shared by the files of this module only. */
#ifndef SLOTD_CTL_INTERNAL_H
#define SLOTD_CTL_INTERNAL_H

#include <sys/queue.h>

#include "ctl/ctl.h"
#include "ctl/layout.h"
#include "ctl/store.h"
#include "runner/runner.h"

#define CTL_CONSOLE_COPY	(16u << 10)	/* console kept for a dead runner */
#define CTL_NOTIFY_MAX		256

struct event;

struct ctl_vm {
	TAILQ_ENTRY(ctl_vm) link;
	struct ctl *ctl;
	char name[VMM_NAME_MAX];
	struct store_vm_def def;	/* as created (and persisted) */
	struct runner *runner;		/* NULL or ended: none running */
	struct event *ev;		/* its channel in the event loop */
	struct vmm_vm_info info;	/* as the runner last told it */
	uint64_t quirks_disabled;	/* wanted off (model) */
	struct layout layout;		/* slot 0 (boot RAM) included */
	bool restored, adopted;
	char gone_why[256];		/* how the last runner ended */
	char console[CTL_CONSOLE_COPY];	/* ring: the runner's last output */
	uint64_t console_total;
};

struct ctl {
	struct ctl_config cfg;		/* strings below are owned copies */
	char *runtime_dir, *runner_path, *kvm_path;
	char **file_dirs;
	int kvm_fd;			/* -1 without KVM */
	int runtime_lock;
	struct vmm_caps caps;
	struct store *store;		/* NULL: nothing persisted */
	struct ctl_requests *requests;	/* outcomes kept for retries */
	TAILQ_HEAD(, ctl_vm) vms;
	struct event *notify_ev;
	struct event *flush_ev;		/* sends queued commits (change.c) */
	struct ctl_state_change notify[CTL_NOTIFY_MAX];
	unsigned nnotify, notify_dropped;
};

/* ctl.c */
struct ctl_vm *vm_alloc(struct ctl *ctl, const struct store_vm_def *def);
void vm_link(struct ctl_vm *vm);
void vm_free(struct ctl_vm *vm);
/* Starts a runner for vm and creates its VM there (state defined); with
 * push, the model's quirks and memslots are applied to it too. */
int vm_runner_start(struct ctl_vm *vm, bool push, struct vmm_err *err);
/* The runner callback (arg: the VM), and watching its channel in the
 * event loop once vm->runner is set. */
void vm_runner_event(struct runner *r, const struct runner_event *ev, void *arg);
int vm_runner_watch(struct ctl_vm *vm);
/* Lets go of a runner that ended (its channel's event, its handle). */
void vm_runner_reap(struct ctl_vm *vm);
/* The runner, or NULL after filling err: -ECONNRESET saying it ended. */
struct runner *vm_runner(struct ctl_vm *vm, struct vmm_err *err);
/* Takes a runner's report of the VM into the model. */
void vm_info_take(struct ctl_vm *vm, const struct vmm_vm_info *in);
/* The params the VM was created with. */
void vm_params(const struct ctl_vm *vm, struct vmm_vm_params *p);
/* The model's layout as memslot infos: boot RAM (slot 0) from info. */
int vm_boot_slot(const struct ctl_vm *vm, struct vmm_memslot_info *s);

/* requests.c */
struct ctl_requests;
/* A table of outcomes kept in dir (NULL: memory only), empty. */
int ctl_requests_new(const char *dir, struct ctl_requests **out);
void ctl_requests_free(struct ctl_requests *q);
/* Reads dir's requests.journal (what is past the window dropped) and
 * rewrites it with what is kept. */
int ctl_requests_load(struct ctl_requests *q);
/* Takes the lines of text into q as of time now; *bad counts lines that
 * are not an outcome (a torn last one included).  For tests and the
 * fuzzer too. */
int ctl_requests_parse(struct ctl_requests *q, const char *text, uint64_t now,
		       unsigned *bad);
size_t ctl_requests_count(const struct ctl_requests *q);
/* Keeps id in doubt (vm's state holds its change, its outcome was never
 * written), unless it has an outcome or is past the window. */
int ctl_request_doubt(struct ctl *ctl, const char *id, uint64_t at_ns, const char *vm);

/* change.c */
/* Sends every runner's queued commit once the loop is done with the
 * current request (its reply written first); with now false (no vCPU is
 * held for it: the VM does not run), CTL_COMMIT_LATER_US later unless
 * the runner's next call carries it first. */
#define CTL_COMMIT_LATER_US	2000
void ctl_flush_soon(struct ctl *ctl, bool now);
/* Writes the VM's snapshot: definition, quirks, layout (err->file on
 * failure). */
int vm_persist_all(struct ctl_vm *vm, uint64_t quirks_enabled, struct vmm_err *err);
/* Applies slots (no slot 0) in the runner and the model, not persisted:
 * restore and reconciliation. */
int vm_layout_push(struct ctl_vm *vm, const struct vmm_memslot_info *slots, size_t n,
		   struct vmm_err *err);
/* Opens op's backing for slot id into *fd (-1: anonymous). */
int vm_backing_open(struct ctl_vm *vm, uint32_t id, const struct vmm_memslot_params *p,
		    int *fd, struct vmm_err *err);

/* restore.c */
int vm_adopt(struct ctl_vm *vm, struct runner *r, const struct store_vm *sv,
	     struct vmm_err *err);

#endif
