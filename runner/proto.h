/* The private channel between slotd (control plane) and a VM's runner:
 * message formats.  Internal, not the public API: both ends are built
 * from this tree, and a different build of slotd may talk to a running
 * runner (an upgrade), so every layout change bumps RUNNER_PROTO_VERSION
 * (the _Static_asserts in runner/chan.c catch an accidental one) and the
 * HELLO exchange refuses a peer of another version.
 *
 * Transport: one SOCK_SEQPACKET Unix socket per runner (message
 * boundaries kept, descriptors passed with SCM_RIGHTS).  Each message is a
 * struct runner_hdr and len bytes of payload.  A payload above
 * RUNNER_INLINE_MAX travels in a sealed memfd passed as the message's
 * first descriptor (RUNNER_F_BULK).  slotd sends requests with a fresh
 * seq and waits for the reply of the same seq and type with RUNNER_F_REPLY
 * set; the runner sends events (seq 0) at any time.  A reply with status
 * < 0 carries a struct rm_err.  Multi-byte fields are host order: both
 * ends run on one host. */
#ifndef SLOTD_RUNNER_PROTO_H
#define SLOTD_RUNNER_PROTO_H

#include <stdint.h>

#define RUNNER_PROTO_MAGIC	0x4e524c53u	/* "SLRN" */
#define RUNNER_PROTO_VERSION	1
#define RUNNER_INLINE_MAX	(60u * 1024)
#define RUNNER_BULK_MAX		(80u << 20)	/* 64 MiB payload image + slack */
#define RUNNER_FDS_MAX		64		/* == VMM_TXN_MAX backings */

#define RUNNER_F_REPLY		(1u << 0)
#define RUNNER_F_BULK		(1u << 1)
/* On a request: first commit the transaction the runner holds open (in
 * place of a separate RM_TXN_END), to runners whose hello says
 * RUNNER_FEAT_COMMIT_NEXT. */
#define RUNNER_F_COMMIT		(1u << 2)

/* rm_hello.features of the runner's reply. */
#define RUNNER_FEAT_COMMIT_NEXT	(1u << 0)

struct runner_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;			/* enum runner_msg */
	uint32_t seq;			/* request id; 0 for events */
	int32_t status;			/* replies: 0 or -errno */
	uint32_t len;			/* payload bytes */
	uint32_t flags;			/* RUNNER_F_* */
};

enum runner_msg {
	RM_HELLO = 1,		/* rm_hello -> rm_hello */
	RM_VM_CREATE,		/* rm_vm_create + image -> rm_info */
	RM_VM_START,		/* - -> rm_info */
	RM_VM_PAUSE,
	RM_VM_RESUME,
	RM_VM_STOP,
	RM_VM_DESTROY,		/* - -> -, then the runner exits */
	RM_VM_INFO,		/* - -> rm_info */
	RM_QUIRK_SET,		/* rm_quirk_set -> rm_info */
	RM_SLOTS_GET,		/* - -> rm_count + rm_slot records */
	RM_TXN_APPLY,		/* rm_txn + rm_op records, fds -> rm_txn_rep;
				 * the runner then waits for RM_TXN_END */
	RM_TXN_END,		/* rm_txn_end -> (abort only) - */
	RM_SET_FLAGS,		/* rm_set_flags -> rm_effect */
	RM_DIRTY_LOG,		/* rm_dirty_log -> rm_dirty_log_rep + bitmap */
	RM_MEMORY_READ,		/* rm_memory -> bytes */
	RM_MEMORY_WRITE,	/* rm_memory + bytes -> - */
	RM_CONSOLE_READ,	/* rm_console -> rm_console + bytes */
	RM_REPORTS_READ,	/* rm_reports -> rm_count + struct vmm_report[] */
	RM_STATS_GET,		/* - -> rm_count + rm_stat[] */
	RM_EV_STATE = 100,	/* event: rm_ev_state */
	RM_EV_CONSOLE,		/* event: rm_console + bytes */
	RM_MSG_MAX,
};

struct rm_err {
	int32_t index;			/* a transaction's failed op, else -1 */
	char field[44];
	char msg[256];
};

struct rm_hello {
	uint32_t proto;
	uint32_t pid;			/* reply: the runner's pid */
	char build[64];			/* sender's version and git revision */
	char vm[64];			/* reply: the VM it hosts, "" if none */
	uint64_t started_ns;		/* reply: CLOCK_REALTIME of its start */
	uint32_t controllers;		/* reply: connections it has served */
	uint32_t has_vm;
	uint32_t features;		/* reply: RUNNER_FEAT_*; runners built
					 * before it send the struct without */
	uint32_t pad;
};

struct rm_vm_create {
	char name[64];
	char payload[256];
	uint32_t type, vcpus, mmio, ram;
	uint64_t memory;
	uint64_t args[8];
	uint64_t image_size;		/* image bytes follow (0: builtin) */
};

/* A VM as the runner sees it (vmm_vm_info plus the lifecycle clock). */
struct rm_info {
	char name[64];
	char payload[256];
	char crash_reason[256];
	uint32_t state, type, kvm_vm_type, rules_by_slotd;
	uint32_t vcpus, nr_memslots, has_exit_status, exit_status;
	uint32_t started, pad;
	uint64_t memory;
	uint64_t quirks_disabled, quirks_kernel;
	uint64_t uptime_ns;
	uint64_t start_ns, end_ns;	/* CLOCK_MONOTONIC; 0: not yet / running */
	uint64_t exits_total, exits_io, exits_mmio, mmio_unmapped;
	uint64_t console_bytes, reports;
};

struct rm_quirk_set {
	char name[48];
	uint32_t enabled, pad;
};

struct rm_count {
	uint32_t n, pad;
};

/* A memslot; path_len bytes of path follow, then padding to 8. */
struct rm_slot {
	uint32_t id, slot_flags;
	uint64_t gpa, size;
	uint32_t kind, shared;
	uint64_t offset, hugepage_size;
	uint32_t path_len, fd_index;	/* ops: index of its fd, or ~0 */
};

struct rm_txn {
	uint32_t n, nfds;
};

/* One op of a transaction; a CREATE is followed by its rm_slot. */
struct rm_op {
	uint32_t kind, id;
	uint64_t gpa;
};

#define RM_EFFECT_MAX		24

struct rm_effect {
	uint64_t duration_ns, kernel_ns, engine_ns;
	uint32_t n, pad;
	struct {
		char side[8];
		char name[40];
		int64_t delta;
	} c[RM_EFFECT_MAX];
};

struct rm_txn_rep {
	uint32_t n, pad;
	uint32_t ids[64];
	struct rm_effect fx;
};

struct rm_txn_end {
	uint32_t commit, pad;
};

struct rm_set_flags {
	uint32_t id, dirty_log;
};

struct rm_dirty_log {
	uint32_t id, clear;
};

struct rm_dirty_log_rep {
	uint64_t npages, ndirty;	/* ceil(npages / 64) words follow */
};

struct rm_memory {
	uint64_t gpa, len;
};

struct rm_console {
	uint64_t tail;			/* request: bytes wanted (0: all kept) */
	uint64_t total;			/* reply/event: bytes ever written */
	uint64_t n;			/* reply/event: bytes that follow */
};

struct rm_reports {
	uint64_t from;
	uint32_t max, pad;
};

struct rm_stat {
	char source[8];
	char name[56];
	int32_t vcpu;
	uint32_t cumulative;
	uint64_t value;
};

struct rm_ev_state {
	uint32_t old_state, new_state;
	struct rm_info info;
};

#endif
