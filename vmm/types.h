/* vmm types: the vocabulary of VMs and memslots shared by the control
 * plane (slotd), the runner channel and the vmm itself.  Plain data and
 * pure helpers only: nothing here touches a live VM, so the layers above
 * the runner include this header, never vmm/vmm.h. */
#ifndef SLOTD_VMM_TYPES_H
#define SLOTD_VMM_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One x86 KVM quirk: its KVM_X86_QUIRK_* bit and our name for it. */
struct vmm_quirk_desc {
	const char *name;
	uint64_t bit;
};

extern const struct vmm_quirk_desc vmm_quirk_descs[];
extern const size_t vmm_quirk_desc_count;

/* Looks a quirk up by name; NULL when slotd does not know it. */
const struct vmm_quirk_desc *vmm_quirk_lookup(const char *name);
/* The bit of the slot_zap_all quirk (KVM_X86_QUIRK_SLOT_ZAP_ALL). */
uint64_t vmm_quirk_slot_zap_all(void);
/* Every quirk bit slotd knows. */
uint64_t vmm_quirks_all(void);

/* What the host's KVM offers, probed once at start-up. */
struct vmm_caps {
	bool kvm_available;
	int kvm_errno;			/* why not, when !kvm_available */
	char kvm_error[160];
	int api_version;
	int max_memslots;		/* KVM_CAP_NR_MEMSLOTS */
	int max_vcpus;			/* KVM_CAP_MAX_VCPUS */
	int nr_vcpus;			/* KVM_CAP_NR_VCPUS (recommended) */
	bool disable_quirks2;		/* KVM_CAP_DISABLE_QUIRKS2 present */
	uint64_t supported_quirks;	/* bits KVM lets userspace disable */
	bool vm_types_cap;		/* KVM_CAP_VM_TYPES present */
	uint64_t vm_types;		/* bit N set: KVM VM type N supported */
	bool user_memory2;
	bool guest_memfd;
	bool readonly_mem;
	bool stats_fd;
	bool memory_attributes;
	unsigned guest_phys_bits;	/* MAXPHYADDR guests get (CPUID) */
	bool cpuid_1g_pages;		/* guests may use 1 GiB pages */
};

/* Opens the KVM device at kvm_path (NULL: /dev/kvm) and probes it into
 * caps: the device's fd, or -errno with caps->kvm_error saying why.  The
 * control plane's view of the host; no VM is created. */
int vmm_caps_probe(const char *kvm_path, struct vmm_caps *caps);

/* Names KVM VM type N ("default", "sw_protected", "tdx", ...). */
const char *vmm_kvm_vm_type_name(unsigned type);
/* The KVM VM type number of KVM_X86_SW_PROTECTED_VM and the default. */
unsigned vmm_kvm_vm_type_protected(void);

enum vmm_vm_state {
	VMM_VM_DEFINED,			/* created, never started */
	VMM_VM_RUNNING,
	VMM_VM_PAUSED,
	VMM_VM_STOPPED,			/* stopped by a call or by the guest */
	VMM_VM_CRASHED,			/* see vmm_vm_info.crash_reason */
};

/* Lifecycle verbs, checked by vmm_transition_check. */
enum vmm_verb {
	VMM_VERB_START,		/* defined|stopped|crashed -> running */
	VMM_VERB_PAUSE,		/* running -> paused */
	VMM_VERB_RESUME,	/* paused -> running */
	VMM_VERB_STOP,		/* running|paused -> stopped */
};

struct vmm_err;

/* Whether verb is allowed on VM name in state st: 0, or -EBUSY naming
 * the state and the states the verb is allowed from (field "state"). */
int vmm_transition_check(const char *name, enum vmm_vm_state st, enum vmm_verb verb,
			 struct vmm_err *err);

/* ---- errors ---------------------------------------------------------- */

/* Why a call failed, for a person: code is the -errno also returned, field
 * names the parameter at fault ("name", "memory", ...) or is NULL.  Every
 * function taking a struct vmm_err * accepts NULL. */
struct vmm_err {
	int code;
	const char *field;
	char msg[256];
	char file[96];		/* control plane: the state file at fault */
};

/* Fills err (if any) and returns code, so callers can `return
 * vmm_err_set(...)`. */
int vmm_err_set(struct vmm_err *err, int code, const char *field,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- VMs ------------------------------------------------------------- */

#define VMM_NAME_MAX		64	/* including the NUL */
#define VMM_MAX_VCPUS		64
#define VMM_NARGS		8	/* == VMM_BOOT_NARGS of the guest ABI */

enum vmm_vm_type {
	VMM_VM_TYPE_DEFAULT,
	VMM_VM_TYPE_PROTECTED,		/* TDX-like rules, see vmm_vm_info */
};

/* What an access to a GPA without a memslot (KVM_EXIT_MMIO) does. */
enum vmm_mmio_policy {
	VMM_MMIO_IGNORE,		/* reads all-ones, writes dropped, counted */
	VMM_MMIO_CRASH,			/* the VM crashes, naming the GPA */
};

/* Backing of boot RAM (memslot 0). */
enum vmm_ram_backing {
	VMM_RAM_MEMFD,			/* memfd, MAP_SHARED (default); THP only
					 * if shmem_enabled allows it */
	VMM_RAM_ANON,			/* private anonymous memory with
					 * MADV_HUGEPAGE: faster first touch */
};

struct vmm_vm_params {
	const char *name;		/* 1..63 of [A-Za-z0-9._-] */
	enum vmm_vm_type type;
	unsigned vcpus;			/* 1..VMM_MAX_VCPUS (and host limit) */
	uint64_t memory_bytes;		/* boot RAM: 4 KiB multiple, 4 MiB..200 GiB */
	const char *payload;		/* "builtin:NAME" or ELF64 path */
	/* The ELF image of a path payload, read by the caller (a runner has
	 * no file system): when not NULL, used instead of opening payload. */
	const uint8_t *payload_image;
	size_t payload_image_size;
	uint64_t args[VMM_NARGS];	/* boot_params.args of the guest */
	enum vmm_mmio_policy mmio_policy;
	enum vmm_ram_backing ram_backing;
};

/* Checks params against the rules and the host (caps); the error names
 * the field.  vmm_vm_create checks the same. */
int vmm_vm_params_check(const struct vmm_caps *caps, const struct vmm_vm_params *p,
			struct vmm_err *err);
/* Whether name is 1..63 characters of [A-Za-z0-9._-]. */
bool vmm_vm_name_valid(const char *name);

struct vmm_vm_info {
	char name[VMM_NAME_MAX];
	enum vmm_vm_state state;
	enum vmm_vm_type type;
	unsigned kvm_vm_type;		/* KVM_X86_*_VM the kernel VM has */
	bool rules_by_slotd;		/* protected rules enforced by slotd,
					 * host has no matching KVM VM type */
	unsigned vcpus;
	uint64_t memory_bytes;
	unsigned nr_memslots;
	uint64_t quirks_disabled;	/* KVM_X86_QUIRK_* bits disabled */
	uint64_t quirks_kernel;		/* of those, applied to the kernel VM */
	bool started;			/* has run: quirks only go off now */
	uint64_t uptime_ns;		/* since the last start; frozen when
					 * stopped or crashed */
	uint64_t start_ns, end_ns;	/* CLOCK_MONOTONIC (system-wide) of the
					 * last start and of its end; 0: none */
	bool has_exit_status;		/* guest powered off */
	uint32_t exit_status;
	char crash_reason[256];		/* "" unless crashed */
	char payload[256];
	uint64_t exits_total;		/* all vCPUs, all reasons */
	uint64_t exits_io;
	uint64_t exits_mmio;		/* includes device window accesses */
	uint64_t mmio_unmapped;		/* accesses to GPAs without memslot */
	uint64_t console_bytes;		/* written by the guest, ever */
	uint64_t reports;		/* report records, ever */
};

/* ---- memslots ---------------------------------------------------------- */

/* Where a memslot's host memory comes from. */
enum vmm_backing_kind {
	VMM_BACKING_ANON,		/* anonymous memory (MAP_PRIVATE, or
					 * MAP_SHARED with shared) */
	VMM_BACKING_MEMFD,		/* a memfd; with path: a file on tmpfs
					 * (e.g. /dev/shm/x) that outlives slotd */
	VMM_BACKING_HUGETLB,		/* memfd with MFD_HUGETLB */
	VMM_BACKING_FILE,		/* a file under an allowed directory */
};

#define VMM_PATH_MAX		1024

struct vmm_backing {
	enum vmm_backing_kind kind;
	char path[VMM_PATH_MAX];	/* FILE, and MEMFD by path; "" else */
	uint64_t offset;		/* FILE/MEMFD by path: page aligned */
	uint64_t hugepage_size;		/* HUGETLB: 2M or 1G; 0 means 2M */
	bool shared;			/* ANON/FILE: MAP_SHARED; MEMFD and
					 * HUGETLB are always shared */
};

/* Flags of a memslot as slotd names them (KVM_MEM_* on the kernel side,
 * MMU_SLOT_* in the engine). */
#define VMM_SLOT_READONLY	(1u << 0)
#define VMM_SLOT_DIRTY_LOG	(1u << 1)

#define VMM_SLOT_ANY		UINT32_MAX	/* lowest free id */

struct vmm_memslot_info {
	uint32_t id;
	uint32_t flags;			/* KVM_MEM_* */
	uint64_t gpa;
	uint64_t size;
	uint64_t hva;
	uint32_t slot_flags;		/* VMM_SLOT_* */
	struct vmm_backing backing;	/* slot 0: MEMFD or ANON, no path */
};

struct vmm_memslot_params {
	uint32_t id;			/* VMM_SLOT_ANY: the lowest free id */
	uint64_t gpa;
	uint64_t size;
	uint32_t flags;			/* VMM_SLOT_* */
	struct vmm_backing backing;
	/* The backing, opened by the caller (vmm_backing_open): used (dup'd)
	 * instead of opening backing.path or making a memfd. */
	bool has_fd;
	int fd;
};

/* Checks the backing's own rules (kind, path, offset alignment, hugetlb
 * page size and size multiple); errors name the field. */
int vmm_backing_check(const struct vmm_memslot_params *p, struct vmm_err *err);
/* Opens p's backing for slot id of VM vm_name: *fd gets a file under one
 * of file_dirs (NULL-terminated; NULL: none allowed; the path is resolved
 * before the check, a symbolic link as last component is refused), or a
 * new memfd (hugetlb or not), or -1 for anonymous memory.  A file is
 * created or extended to offset + size unless the slot is readonly.
 * -EACCES outside file_dirs, -ENOENT, -EINVAL naming the field. */
int vmm_backing_open(const char *const *file_dirs, const char *vm_name, uint32_t id,
		     const struct vmm_memslot_params *p, int *fd, struct vmm_err *err);

/* Checks a memslot range on its own: 4 KiB aligned gpa and size, size
 * not 0, inside the guest's phys_bits-bit physical address space, clear
 * of slotd's device window.  Errors name the field ("gpa", "size"). */
int vmm_range_check(unsigned phys_bits, uint64_t gpa, uint64_t size, struct vmm_err *err);
/* The -EEXIST error for [gpa, gpa + size) overlapping slot id at
 * [s_gpa, s_gpa + s_size). */
int vmm_overlap_error(struct vmm_err *err, uint64_t gpa, uint64_t size, uint32_t id,
		      uint64_t s_gpa, uint64_t s_size);
/* Checks VMM_SLOT_* flags against the host and the VM's type. */
int vmm_slot_flags_check(const struct vmm_caps *caps, enum vmm_vm_type type,
			 unsigned kvm_vm_type, uint32_t flags, struct vmm_err *err);
/* The id limit of a VM's memslots on this host (KVM_CAP_NR_MEMSLOTS). */
unsigned vmm_max_memslots(const struct vmm_caps *caps);

/* What one change did on both sides: the kernel VM's stats-fd counters
 * and the engine's counters, as deltas, and how long it took. */
#define VMM_EFFECT_MAX		24

struct vmm_effect {
	uint64_t duration_ns;		/* the whole change, as the caller saw it */
	uint64_t kernel_ns;		/* the KVM ioctl(s) */
	uint64_t engine_ns;		/* the engine's invalidation */
	unsigned n;
	struct {
		char side[8];		/* "kernel" or "engine" */
		char name[40];		/* "mmu_shadow_zapped", "leafs_zapped" */
		int64_t delta;
	} counters[VMM_EFFECT_MAX];
};

enum vmm_memslot_op_kind {
	VMM_OP_CREATE,
	VMM_OP_MOVE,
	VMM_OP_DELETE,
};

struct vmm_memslot_op {
	enum vmm_memslot_op_kind kind;
	struct vmm_memslot_params create;	/* CREATE */
	uint32_t id;				/* MOVE, DELETE */
	uint64_t gpa;				/* MOVE */
};

#define VMM_TXN_MAX		64

/* ---- quirks, console, reports, memory, stats --------------------------- */

/* Why quirk q cannot go to enabled on a VM of type type whose kernel VM
 * has quirks_kernel disabled already (they cannot come back), or NULL;
 * the text is written to buf.  vmm_quirk_check turns it into an error:
 * -EOPNOTSUPP (the host cannot disable q) or -EPERM (field "quirk"). */
const char *vmm_quirk_refusal(const struct vmm_caps *caps, enum vmm_vm_type type,
			      uint64_t quirks_kernel, const struct vmm_quirk_desc *q,
			      bool enabled, char *buf, size_t len);
int vmm_quirk_check(const struct vmm_caps *caps, enum vmm_vm_type type,
		    uint64_t quirks_kernel, const struct vmm_quirk_desc *q, bool enabled,
		    struct vmm_err *err);

/* One quirk of one VM, for vm.quirks.get. */
struct vmm_quirk_state {
	const char *name;
	uint64_t bit;
	bool supported;			/* the host can disable it */
	bool enabled;
	bool locked;			/* cannot be changed now */
	char why[160];			/* why locked, "" otherwise */
};

/* One record of the report port (VMM_REPORT_* tags of vmm/guest/abi.h). */
struct vmm_report {
	uint64_t seq;			/* 0, 1, 2 ... per VM */
	uint64_t host_ns;		/* CLOCK_MONOTONIC when committed */
	uint32_t vcpu;
	uint32_t tag;
	uint64_t value;
};

#define VMM_MEMORY_IO_MAX	(1u << 20)

/* One statistic.  source: "engine" (slotd's mmu counters),
 * "kvm" (the VM's or a vCPU's binary stats fd),
 * "exits" (per-vCPU KVM exit counts by reason name) or "devices". */
struct vmm_stat {
	const char *source;
	int vcpu;			/* -1: VM-wide */
	const char *name;		/* "remote_tlb_flush", "io", ... */
	uint64_t value;			/* histograms: sum of buckets */
	bool cumulative;		/* false: instant or peak value */
};

/* ---- helpers --------------------------------------------------------- */

/* "268435456", "256M", "1G", "64k", "2GiB", "512MB" -> bytes (binary
 * units).  -EINVAL on junk, -ERANGE on overflow. */
int vmm_parse_size(const char *s, uint64_t *out);
const char *vmm_vm_state_name(enum vmm_vm_state state);
const char *vmm_vm_type_name(enum vmm_vm_type type);
/* "default" / "protected" -> type; -EINVAL otherwise. */
int vmm_vm_type_parse(const char *s, enum vmm_vm_type *out);
const char *vmm_exit_reason_name(unsigned reason);
/* Names of the built-in payloads, NULL-terminated order via index. */
const char *vmm_builtin_payload_name(size_t index);
/* Whether a built-in payload of that name ("hello", not "builtin:hello")
 * exists. */
bool vmm_builtin_payload_exists(const char *name);
uint64_t vmm_now_ns(void);

#endif
