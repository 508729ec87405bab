/* vmm internals shared by the files of this module only. */
#ifndef SLOTD_VMM_INTERNAL_H
#define SLOTD_VMM_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>

#include "mmu/mmu.h"
#include "vmm/vmm.h"
#include "vmm/kvm_compat.h"
#include "vmm/guest/abi.h"

#define VMM_CONSOLE_RING	(64 * 1024)
#define VMM_REPORT_RING		4096
#define VMM_EXIT_REASONS	64	/* exit counters kept per vCPU */
#define VMM_PAYLOAD_MAX		(64u << 20)
#define VMM_CONSOLE_LOG_MAX	(64ull << 20)	/* log file cap per VM */

/* Released private anonymous backings of up to VMM_BCACHE_MAX_SIZE,
 * emptied, waiting for the next anonymous slot of the same size and
 * protection (vmm/memslot_ops.c).  The release callbacks (call_rcu
 * thread) fill it, creates take from it: lock.  liburcu's call_rcu
 * thread runs callbacks in batches, sleeping 10 ms after each wake-up,
 * so the cache must hold a batch: with 16 entries a client cycling
 * create/move/delete back to back missed a third of the time, with 64
 * (6,400 creates a second) almost never. */
#define VMM_BCACHE_SLOTS	64
#define VMM_BCACHE_MAX_SIZE	(2ull << 20)

struct vmm_bcache {
	pthread_mutex_t lock;
	unsigned n;
	struct {
		void *hva;
		uint64_t size;
		int prot;
	} e[VMM_BCACHE_SLOTS];
	uint64_t reused, kept;		/* backings taken from it / put in it */
};

/* Unmaps every cached backing (at vmm_destroy, after the VMs' releases). */
void vmm_bcache_fini(struct vmm_bcache *c);

struct vmm {
	int kvm_fd;			/* -1 when KVM is unavailable */
	char **file_dirs;		/* owned copy of cfg.file_dirs */
	struct vmm_caps caps;
	struct vmm_config cfg;		/* strings below are owned copies */
	char *console_dir;
	pthread_mutex_t lock;		/* protects the VM list */
	struct vmm_vm *vms;		/* creation order */
	struct kvm_cpuid2 *cpuid;	/* KVM_GET_SUPPORTED_CPUID, lazily */
	struct vmm_bcache bcache;	/* released small anonymous backings */
};

/* One memslot: a range of GPA backed by host memory (slot 0 = boot RAM). */
struct vmm_memslot {
	uint32_t id;
	uint32_t flags;			/* KVM_MEM_* */
	uint64_t gpa;
	uint64_t size;
	void *hva;
	int fd;				/* backing memfd, owned; -1 if none */
	struct vmm_backing backing;	/* as asked for (slot 0: ram_backing) */
	uint64_t *kvm_dirty;		/* KVM's log accumulated between
					 * reads without clear; NULL if none */
};

/* A KVM binary stats fd with its descriptors parsed. */
#define STATS_PICK_MAX	16

struct vmm_stats_src {
	int fd;
	uint64_t data_offset;
	unsigned count;
	struct vmm_stats_desc *descs;
	size_t data_size;		/* bytes of the data block we read */
	/* stats_src_pick's names, resolved to descriptor indices once. */
	const char *const *pick_names;
	int pick_idx[STATS_PICK_MAX];
};

struct vmm_stats_desc {
	char name[64];
	uint32_t flags;
	uint32_t offset;
	uint16_t size;
};

enum vcpu_req {
	VCPU_REQ_RUN,
	VCPU_REQ_PAUSE,
	VCPU_REQ_STOP,
};

struct vmm_vcpu {
	struct vmm_vm *vm;
	unsigned index;
	int fd;
	struct vmm_stats_src stats;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_live;		/* created and not yet joined */
	bool quiescent;			/* waiting in the loop; vm->lock */
	bool parked;			/* guest asked to idle; vm->lock */
	uint32_t report_tag;		/* report port latch (vCPU thread) */
	uint32_t report_lo;
	uint32_t dma_lo;		/* DMA port latch (vCPU thread) */
	uint64_t exits[VMM_EXIT_REASONS];	/* __atomic, relaxed */
};

/* The 16550 registers the guest can observe. */
struct vmm_serial {
	uint8_t ier, lcr, mcr, scr, dll, dlm;
};

struct vmm_console {
	pthread_mutex_t lock;
	char ring[VMM_CONSOLE_RING];
	uint64_t total;			/* bytes ever written */
	int log_fd;			/* -1: no log file */
	uint64_t log_bytes;		/* written to it so far */
	char line[256];			/* pending bytes for the log file */
	size_t line_len;
	struct vmm_report reports[VMM_REPORT_RING];
	uint64_t nr_reports;		/* records ever committed */
};

/* Device counters, updated on vCPU threads with __atomic relaxed. */
struct vmm_dev_counters {
	uint64_t serial_bytes;
	uint64_t dma_ops;
	uint64_t dma_errors;
	uint64_t mmio_unmapped;
	uint64_t io_unhandled;
	uint64_t reports;
};

#define VMM_PENDING_MAX 16

struct vmm_transition {
	enum vmm_vm_state old_state, new_state;
};

struct vmm_vm {
	struct vmm *vmm;
	struct vmm_vm *next;
	char name[VMM_NAME_MAX];
	enum vmm_vm_type type;
	unsigned kvm_type;
	bool rules_by_slotd;
	enum vmm_mmio_policy mmio_policy;
	enum vmm_ram_backing ram_backing;
	int fd;
	uint64_t memory_bytes;
	uint64_t args[VMM_NARGS];
	char payload_spec[256];
	const uint8_t *image;		/* payload ELF bytes */
	size_t image_size;
	uint8_t *image_owned;		/* malloc'd copy for file payloads */
	uint64_t payload_start, payload_end, entry;
	uint64_t tsc_khz;
	uint64_t idmap_end;
	uint64_t quirks_disabled;	/* wanted off (applied at start) */
	uint64_t quirks_kernel;		/* off on the kernel VM already */
	struct mmu *mmu;		/* slotd's translations of this VM */

	unsigned nr_vcpus;
	struct vmm_vcpu *vcpus;

	pthread_mutex_t lock;		/* state, req and vCPU handshakes */
	pthread_cond_t cond;
	enum vmm_vm_state state;
	enum vcpu_req req;
	unsigned nr_alive;		/* vCPU threads in their loop */
	unsigned nr_quiescent;		/* of those, waiting on cond */
	uint64_t start_ns, end_ns;	/* end_ns 0 while running/paused */
	bool has_exit_status;
	uint32_t exit_status;
	char crash_reason[256];
	struct vmm_transition pending[VMM_PENDING_MAX];	/* vm->lock */
	unsigned pending_head, nr_pending;
	pthread_mutex_t notify_lock;	/* held while delivering them */

	pthread_rwlock_t slots_lock;	/* guards the list below */
	/* Each slot is allocated on its own (pointers to it stay valid while
	 * it exists); slots sorts them by gpa, by_id indexes them by id, so
	 * a change moves pointers, not 1 KiB records, and a lookup by id
	 * does not scan. */
	struct vmm_memslot **slots;	/* sorted by gpa */
	unsigned nr_slots;
	unsigned cap_slots;
	struct vmm_memslot **by_id;	/* [id], NULL if free */
	unsigned ids_cap;
	unsigned id_hint;		/* no free id below this one */
	uint64_t slots_bytes;		/* sum of the slots' sizes */
	/* Records of removed slots kept for the next insert (1.1 KiB each:
	 * a malloc that size made glibc consolidate its fastbins first). */
	struct vmm_memslot *spare[8];
	unsigned nr_spare;

	pthread_mutex_t dev_lock;	/* serial registers */
	struct vmm_serial serial;
	uint32_t dma_status;		/* last DMA status, __atomic */
	struct vmm_dev_counters dev;
	struct vmm_console console;

	struct vmm_stats_src stats;	/* VM-wide; vCPUs keep their fd */
};


/* memslot.c */
int vm_kvm_slot_set(struct vmm_vm *vm, uint32_t id, uint32_t kvm_flags,
		    uint64_t gpa, uint64_t size, void *hva);
uint32_t vm_slot_mmu_flags(uint32_t kvm_flags);
/* Inserts s into the sorted list (slots_lock taken here). */
int vm_slot_list_insert(struct vmm_vm *vm, const struct vmm_memslot *s);
/* Unlinks slot id from the list into *out; -ENOENT if absent. */
int vm_slot_list_remove(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out);
/* The slot with id, or NULL.  Called with slots_lock held. */
struct vmm_memslot *vm_slot_find_locked(struct vmm_vm *vm, uint32_t id);
/* Index of the first slot whose gpa is >= gpa.  Called with slots_lock. */
unsigned vm_slot_lower_bound_locked(struct vmm_vm *vm, uint64_t gpa);
/* Adds a slot to KVM, the engine and the list; undoes all on failure. */
int vm_memslot_add(struct vmm_vm *vm, uint32_t id, uint64_t gpa,
		   uint64_t size, void *hva, int fd, uint32_t flags);
/* Removes a slot from KVM, the engine and the list and waits for the
 * engine's grace period: *out's backing may be unmapped on return. */
int vm_memslot_remove(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out);
/* Rewrites the memslot map of the boot parameters the guest can read. */
void vm_boot_slots_update(struct vmm_vm *vm);
int vm_boot_ram_create(struct vmm_vm *vm);
void vm_memslots_free(struct vmm_vm *vm);
void *vm_gpa_hva_locked(struct vmm_vm *vm, uint64_t gpa, uint64_t len,
			bool write, uint64_t *avail);
int vm_gpa_copy(struct vmm_vm *vm, uint64_t gpa, void *buf, uint64_t len,
		bool write);
int vm_boot_ram_clear(struct vmm_vm *vm);

/* effect.c: what a change did, as counter deltas and times. */
#define FX_KSTATS	8
struct fx_snapshot {
	uint64_t t0;
	uint64_t k[FX_KSTATS];
	struct mmu_stats e;
};
/* Starts an operation: zeroes fx, notes the time and both sides' counters. */
void fx_begin(struct vmm_vm *vm, struct fx_snapshot *b, struct vmm_effect *fx);
/* Fills fx with what changed since b. */
void fx_finish(struct vmm_vm *vm, const struct fx_snapshot *b, struct vmm_effect *fx);
/* KVM_SET_USER_MEMORY_REGION(2), timed into fx. */
int fx_kvm_set(struct vmm_vm *vm, struct vmm_effect *fx, uint32_t id, uint32_t flags,
	       uint64_t gpa, uint64_t size, void *hva);

/* backing.c: a slot's host memory. */
struct vm_mapping {
	void *hva;
	int fd;
};
/* Maps p's backing for slot id (from the backing cache, a descriptor the
 * caller passed, or one opened here). */
int vm_backing_map(struct vmm_vm *vm, uint32_t id, const struct vmm_memslot_params *p,
		   struct vm_mapping *m, struct vmm_err *err);
/* Whether slot s's backing is private anonymous memory (the only kind
 * the backing cache keeps). */
bool vm_backing_private_anon(const struct vmm_memslot *s);
/* What the engine's release callback unmaps once no reader can reach it. */
struct vm_released {
	struct vmm *vmm;
	void *hva;
	uint64_t size;
	int fd;
	int prot;		/* a private anonymous backing's; else -1 */
	uint64_t *kvm_dirty;
};
/* The release callback (arg: a malloc'd struct vm_released). */
void vm_backing_release(void *arg);

/* memslot_ops.c: the steps of a change, shared with txn.c. */
int vm_slot_create(struct vmm_vm *vm, const struct vmm_memslot_params *p, uint32_t *id,
		   struct vmm_effect *fx, struct vmm_err *err);
/* With deferred, the backing is handed back in *gone (a transaction may
 * still need it); otherwise the engine unmaps it after the grace period. */
int vm_slot_delete(struct vmm_vm *vm, uint32_t id, bool deferred, struct vmm_memslot *gone,
		   struct vmm_effect *fx, struct vmm_err *err);
int vm_slot_move(struct vmm_vm *vm, uint32_t id, uint64_t gpa, struct vmm_effect *fx,
		 struct vmm_err *err);
/* Copies slot id's metadata; -ENOENT naming the field when absent, -EPERM
 * for slot 0. */
int vm_slot_get(struct vmm_vm *vm, uint32_t id, struct vmm_memslot *out, struct vmm_err *err);

/* guestmem.c: guest memory through the engine.  The calling thread must
 * be a registered online reader of vm->mmu, or use vm_reader_enter. */
int vm_guest_copy(struct vmm_vm *vm, uint64_t gpa, void *buf, uint64_t len,
		  bool write);
/* Checks that [gpa, gpa + len) is backed (and writable with write):
 * 0, -EFAULT unbacked, -EACCES read-only. */
int vm_guest_range_check(struct vmm_vm *vm, uint64_t gpa, uint64_t len,
			 bool write);
/* Makes the calling (control) thread a reader of vm->mmu for one access;
 * returns whether vm_reader_leave must unregister it. */
bool vm_reader_enter(struct vmm_vm *vm);
/* One access to guest memory that a truncated file backing may turn into
 * SIGBUS: -EIO then, 0 else.  COPY memmoves n bytes src -> dst, FILL sets
 * n bytes of dst to *h & 0xff, FNV folds n bytes of src into *h. */
enum vm_bus_kind { VM_BUS_COPY, VM_BUS_FILL, VM_BUS_FNV };
int vm_bus_op(enum vm_bus_kind kind, void *dst, const void *src, size_t n, uint64_t *h);
/* Installs the SIGBUS handler of vm_bus_op (once per process). */
void vm_bus_install(void);
void vm_reader_leave(struct vmm_vm *vm, bool registered);

/* vm.c */
int vm_boot_prepare(struct vmm_vm *vm, struct vmm_err *err);
void vm_destroy_all(struct vmm *vmm);

/* payload.c */
int vm_payload_open(struct vmm_vm *vm, const struct vmm_vm_params *p, struct vmm_err *err);
int vm_payload_load(struct vmm_vm *vm, struct vmm_err *err);
/* The loader without a VM (fuzzing): checks image as vm_payload_open does
 * and loads it into ram (ram_size bytes, one vCPU's stack at its top) as
 * vm_payload_load does; *entry gets the entry point. */
int vm_payload_load_image(const uint8_t *image, size_t size, uint8_t *ram,
			  uint64_t ram_size, uint64_t *entry, struct vmm_err *err);

/* lifecycle.c */
/* Holds a running VM's vCPUs out of KVM_RUN (no state change); *held says
 * whether vm_vcpus_release must let them go. */
int vm_vcpus_hold(struct vmm_vm *vm, bool *held, struct vmm_err *err);
void vm_vcpus_release(struct vmm_vm *vm, bool held);
/* Applies wanted-off quirks to the kernel VM (before its first run). */
int vm_quirks_apply(struct vmm_vm *vm, struct vmm_err *err);

/* boot.c */
unsigned vmm_guest_phys_bits(struct vmm *vmm);
/* What CPUID (KVM_GET_SUPPORTED_CPUID, may be NULL) says of 1 GiB pages
 * and the guest's physical address width (36 when it says nothing). */
bool cpuid_1g_pages(const struct kvm_cpuid2 *c);
unsigned cpuid_phys_bits(const struct kvm_cpuid2 *c);
int vm_boot_tables_build(struct vmm_vm *vm);
int vm_boot_params_write(struct vmm_vm *vm);
int vcpu_boot_regs_set(struct vmm_vcpu *vcpu);
int vcpu_cpuid_set(struct vmm_vcpu *vcpu);
bool vmm_cpuid_has_1g_pages(struct vmm *vmm);

/* vcpu.c */
int vcpu_init(struct vmm_vm *vm, unsigned index);
void vcpu_fini(struct vmm_vcpu *vcpu);
int vm_vcpus_spawn(struct vmm_vm *vm);
void vm_vcpus_kick(struct vmm_vm *vm);
void vm_vcpus_join(struct vmm_vm *vm);
void vm_guest_poweroff(struct vmm_vcpu *vcpu, uint32_t status);
void vm_guest_crash(struct vmm_vcpu *vcpu, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void vmm_kick_install(void);

/* lifecycle.c */
int vm_halt_for_destroy(struct vmm_vm *vm, struct vmm_err *err);
void vm_state_set_locked(struct vmm_vm *vm, enum vmm_vm_state new_state);
void vm_notify_drain(struct vmm_vm *vm);

/* devices.c */
void dev_io(struct vmm_vcpu *vcpu, struct kvm_run *run);
void dev_mmio(struct vmm_vcpu *vcpu, struct kvm_run *run);
uint64_t dma_fnv64(uint64_t h, const void *p, size_t len);

/* console.c */
int console_init(struct vmm_console *c, const char *dir, const char *name);
void console_fini(struct vmm_console *c);
void console_putc(struct vmm_vm *vm, char ch);
void console_puts(struct vmm_vm *vm, const char *s);
void console_flush(struct vmm_console *c);
void console_report(struct vmm_vm *vm, unsigned vcpu, uint32_t tag,
		    uint64_t value);

/* stats.c */
int stats_src_open(struct vmm_stats_src *src, int kvm_obj_fd);
void stats_src_close(struct vmm_stats_src *src);
/* Values of the n (<= STATS_PICK_MAX) named statistics in one read, 0 for
 * a name the kernel does not have; names must be a static array (its
 * indices are resolved on the first call with it). */
int stats_src_pick(struct vmm_stats_src *src, const char *const *names, unsigned n,
		   uint64_t *out);
int stats_src_foreach(struct vmm_stats_src *src, const char *source, int vcpu,
		      int (*fn)(const struct vmm_stat *st, void *arg),
		      void *arg);

/* Built-in payloads, embedded by mk/guest.mk (vmm_payloads.S). */
struct vmm_builtin_payload {
	const char *name;
	const uint8_t *start;
	const uint8_t *end;
};
extern const struct vmm_builtin_payload vmm_builtin_payloads[];
extern const uint64_t vmm_builtin_payload_count;

#endif
