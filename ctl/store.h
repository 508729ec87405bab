/* Persistence of the control plane: each VM's definition, quirks and
 * memslot layout in the state directory, durable before a change is
 * answered.  Its own file format (ctl/store.c), typed interface; no
 * JSON-RPC text.  Internal to ctl/ (and its tests). */
#ifndef SLOTD_CTL_STORE_H
#define SLOTD_CTL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/types.h"

struct store;

/* The longest request id kept with a record (ctl/requests.c). */
#define STORE_RID_MAX	128

/* What vm.create was given (sizes in bytes, defaults filled). */
struct store_vm_def {
	char name[VMM_NAME_MAX];
	enum vmm_vm_type type;
	unsigned vcpus;
	uint64_t memory;
	char payload[256];
	uint64_t args[VMM_NARGS];
	enum vmm_mmio_policy mmio;
	enum vmm_ram_backing ram;
};

/* One VM as loaded: its snapshot with the journal replayed. */
struct store_vm {
	struct store_vm_def def;
	uint64_t quirks_enabled;	/* mask of enabled quirks */
	struct vmm_memslot_info *slots;	/* every memslot but 0, by GPA */
	size_t nslots, cap;
	unsigned version;		/* of the snapshot's format */
	unsigned replayed;		/* journal records applied */
	bool torn;			/* a torn last record was ignored */
	char rid[STORE_RID_MAX + 1];	/* request id of the last record; "" */
	uint64_t rid_at;		/* when that request came (realtime ns) */
	char file[64];			/* vm-NAME.json */
};

/* Opens the store on dir (which exists). */
int store_open(const char *dir, struct store **out);
void store_close(struct store *st);
const char *store_dir(const struct store *st);

/* Writes the VM's snapshot atomically (temporary file, fsync, rename,
 * fsync of the directory) and empties its journal: slots holds every
 * memslot but 0.  On failure err names the file (err->file). */
int store_snapshot(struct store *st, const struct store_vm_def *def, uint64_t quirks_enabled,
		   const struct vmm_memslot_info *slots, size_t n, struct vmm_err *err);
/* Appends a record to the VM's journal and makes it durable (one
 * RWF_DSYNC write): slot s as it now is, or the removal of slot id.
 * -ESTALE, writing nothing, when a snapshot must be written instead (no
 * journal yet, a full one, or one removed by hand since it was opened).
 * Other failures fill err naming the file. */
int store_slot_put(struct store *st, const char *vm, const struct vmm_memslot_info *s,
		   struct vmm_err *err);
int store_slot_del(struct store *st, const char *vm, uint32_t id, struct vmm_err *err);
/* The client's request id the records written from now on carry, with
 * the time its request came (NULL or "": none), until it is set again. */
void store_rid_set(struct store *st, const char *rid, uint64_t at_ns);
/* Removes the VM's files durably. */
int store_vm_remove(struct store *st, const char *vm, struct vmm_err *err);

/* Loads every vm-*.json of the directory in name order, replaying its
 * journal (records after the snapshot's seq, up to a torn last one), and
 * calls fn for each.  A file that cannot be parsed, or that fn refuses
 * (non-zero, why filled), is renamed NAME.failed and logged, never
 * dropped.  *loaded and *failed get the counts. */
int store_load(struct store *st, int (*fn)(const struct store_vm *v, char *why, size_t len,
					   void *arg),
	       void *arg, unsigned *loaded, unsigned *failed);
/* Parses one snapshot's text and the text of its journal (may be NULL)
 * into v; *why says what is wrong otherwise.  Exposed for tests and the
 * fuzzer. */
int store_parse(const char *snapshot, const char *journal, struct store_vm *v, char *why,
		size_t len);
void store_vm_fini(struct store_vm *v);

/* Names of the quirks enabled in mask, for logs and files. */
size_t store_quirks_text(uint64_t mask, char *buf, size_t len);

#endif
