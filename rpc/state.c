/* Durable VM definitions and memslot layouts, written before a change is
 * answered and restored at start-up.  Per VM in the state dir:
 *
 * vm-NAME.json, the snapshot, written atomically (durable_file_write):
 * {"version": 1, "seq": N, "vm": {name, type, vcpus, memory, payload, args,
 * mmio, ram}, "quirks_enabled": [names], "memslots": [every slot but 0, as
 * memslot.list shows it], "restored": bool}.
 *
 * vm-NAME.journal, memslot changes since the snapshot, one JSON line each,
 * appended and made durable before the reply: {"put": {slot}, "seq": n}
 * or {"del": id, "seq": n}.  A change costs one short append instead of
 * rewriting a file that grows with the slot count; every JOURNAL_MAX
 * lines, or as many lines as the snapshot has slots if that is more (so
 * that rewriting it costs O(1) per change however many slots a VM has),
 * and on any other change, the snapshot is rewritten and the journal
 * emptied.  Lines with seq <= the snapshot's were already folded in (a
 * crash between the two steps); a torn last line is a change that was
 * never answered.  A journal removed (or renamed over) by hand is noticed
 * at the next change, which writes a snapshot: the records it held are
 * not lost unless slotd dies before that change. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/durable.h"
#include "common/log.h"
#include "rpc/internal.h"
#include "vmm/vmm.h"

#define STATE_VERSION	1
#define JOURNAL_MAX	256

struct restore_ctx {
	struct rpc_server *srv;
	unsigned restored, failed;
};

/* Each VM's definition as last written, so that a change rewrites the file
 * without reading it back (a 1000-slot file took most of a create's time),
 * and its open journal.  Kept by the server (srv->state_defs); only the
 * event loop thread calls into this file.  Entries go with vm.destroy and
 * with the server. */
struct def_entry {
	struct def_entry *next;
	char name[VMM_NAME_MAX];
	json_object *def;
	bool restored;
	uint64_t seq;		/* of the last change written */
	unsigned jlines;	/* lines in the journal */
	unsigned jmax;		/* lines before the next snapshot */
	int jfd;		/* the journal, open for appending, or -1 */
};

static struct def_entry *def_find(struct rpc_server *srv, const char *name)
{
	for (struct def_entry *e = srv->state_defs; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	return NULL;
}

static void def_free(struct def_entry *e)
{
	if (e->jfd >= 0)
		close(e->jfd);
	json_object_put(e->def);
	free(e);
}

void rpc_state_free(struct rpc_server *srv)
{
	struct def_entry *e;

	while ((e = srv->state_defs)) {
		srv->state_defs = e->next;
		def_free(e);
	}
}

/* Remembers def (a reference is taken) for VM name. */
static void def_put(struct rpc_server *srv, const char *name, json_object *def,
		    bool restored)
{
	struct def_entry *e = def_find(srv, name);

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return;		/* the next change reads the file */
		e->jfd = -1;
		e->jmax = JOURNAL_MAX;
		snprintf(e->name, sizeof(e->name), "%s", name);
		e->next = srv->state_defs;
		srv->state_defs = e;
	}
	json_object_get(def);		/* def may be e->def itself */
	json_object_put(e->def);
	e->def = def;
	e->restored = restored;
}

static void def_drop(struct rpc_server *srv, const char *name)
{
	for (struct def_entry **pe = &srv->state_defs; *pe; pe = &(*pe)->next) {
		struct def_entry *e = *pe;

		if (!strcmp(e->name, name)) {
			*pe = e->next;
			def_free(e);
			return;
		}
	}
}

static void file_name(const char *vm, char *buf, size_t len)
{
	snprintf(buf, len, "vm-%s.json", vm);
}

static void journal_name(const char *vm, char *buf, size_t len)
{
	snprintf(buf, len, "vm-%s.journal", vm);
}

/* Closes e's journal (after a failed write, or once it was removed): the
 * next use reopens it. */
static void journal_close(struct def_entry *e)
{
	if (e->jfd >= 0)
		close(e->jfd);
	e->jfd = -1;
}

/* Whether e's open journal was removed, or renamed over, since it was
 * opened: its link count fell to 0.  It is closed then.  The records in
 * it since the last snapshot went with it. */
static bool journal_gone(struct def_entry *e)
{
	struct stat st;

	if (e->jfd < 0 || (fstat(e->jfd, &st) == 0 && st.st_nlink > 0))
		return false;
	journal_close(e);
	return true;
}

/* Opens e's journal for appending (or, with trunc, empties it) unless it
 * is open already.  It stays open (an open and a close per change cost
 * as much as the append itself on tmpfs); a removed one is opened again
 * by name. */
static int journal_open(const char *dir, struct def_entry *e, bool trunc)
{
	char path[4096];

	journal_gone(e);
	if (e->jfd >= 0)
		return trunc && ftruncate(e->jfd, 0) < 0 ? -errno : 0;
	snprintf(path, sizeof(path), "%s/vm-%s.journal", dir, e->name);
	e->jfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (trunc ? O_TRUNC : 0),
		      0600);
	return e->jfd < 0 ? -errno : 0;
}

/* Empties e's journal (after a snapshot took its changes in). */
static int journal_reset(const char *dir, struct def_entry *e)
{
	int r = journal_open(dir, e, true);

	if (!r && fdatasync(e->jfd) < 0)
		r = -errno;
	if (r)
		journal_close(e);
	else
		e->jlines = 0;
	return r;
}

/* The parsed state file of VM name, or NULL. */
static json_object *file_read(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return json_object_from_file(path);
}

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

/* The definition from what vmm knows (args, mmio, ram: defaults). */
static json_object *def_from_info(struct vmm_vm *vm)
{
	json_object *d = json_object_new_object();
	struct vmm_vm_info in;

	vmm_vm_info_get(vm, &in);
	json_object_object_add(d, "name", json_object_new_string(in.name));
	json_object_object_add(d, "type", json_object_new_string(vmm_vm_type_name(in.type)));
	json_object_object_add(d, "vcpus", json_object_new_int((int)in.vcpus));
	json_object_object_add(d, "memory", json_object_new_uint64(in.memory_bytes));
	json_object_object_add(d, "payload", json_object_new_string(in.payload));
	return d;
}

/* The definition vm.create was given (sizes in bytes, defaults filled). */
static json_object *def_from_params(struct vmm_vm *vm, json_object *params)
{
	json_object *d = def_from_info(vm), *args = member(params, "args");

	json_object_object_add(d, "payload", json_object_new_string(
			       rpc_param_str(params, "payload", "builtin:hello")));
	json_object_object_add(d, "args", args ? json_object_get(args) : json_object_new_array());
	json_object_object_add(d, "mmio", json_object_new_string(
			       rpc_param_str(params, "mmio", "ignore")));
	json_object_object_add(d, "ram", json_object_new_string(
			       rpc_param_str(params, "ram", "memfd")));
	return d;
}

/* Every memslot but 0 (boot RAM is part of the definition). */
static int layout_json(struct vmm_vm *vm, json_object **out)
{
	struct vmm_memslot_info *s;
	size_t n;
	int r = rpc_memslots_get(vm, &s, &n);

	if (r)
		return r;
	*out = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++)
		if (s[i].id != 0)
			json_object_array_add(*out, rpc_memslot_json(&s[i]));
	free(s);
	return 0;
}

/* Writes the VM's file from def (a reference is taken) with the quirks
 * in the mask quirks_on enabled; on failure records -32010 naming the
 * file. */
static int doc_write(struct rpc_call *call, struct vmm_vm *vm, json_object *def,
		     bool restored, uint64_t quirks_on)
{
	const char *dir = call->srv->cfg.state_dir;
	json_object *doc = json_object_new_object(), *slots = NULL;
	char name[128];
	const char *text;
	struct def_entry *e = def_find(call->srv, vmm_vm_name(vm));
	int r = layout_json(vm, &slots);
	size_t nslots = slots ? json_object_array_length(slots) : 0;

	file_name(vmm_vm_name(vm), name, sizeof(name));
	json_object_object_add(doc, "version", json_object_new_int(STATE_VERSION));
	json_object_object_add(doc, "seq", json_object_new_uint64(e ? e->seq : 0));
	json_object_object_add(doc, "vm", json_object_get(def));
	json_object_object_add(doc, "quirks_enabled", rpc_quirks_json(quirks_on));
	json_object_object_add(doc, "memslots", slots);
	json_object_object_add(doc, "restored", json_object_new_boolean(restored));
	text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!r)
		r = durable_file_write(dir, name, text, strlen(text));
	json_object_put(doc);
	if (!r) {
		def_put(call->srv, vmm_vm_name(vm), def, restored);
		e = def_find(call->srv, vmm_vm_name(vm));
		if (e)
			e->jmax = nslots > JOURNAL_MAX ? (unsigned)nslots : JOURNAL_MAX;
		/* A journal left non-empty only costs a replay of lines the
		 * snapshot's seq already covers. */
		if (e && journal_reset(dir, e))
			slog_warn("state: VM %s: cannot empty its journal: %s", vmm_vm_name(vm),
				  strerror(errno));
		return 0;
	}
	slog_error("state: VM %s: cannot write %s/%s: %s", vmm_vm_name(vm), dir, name,
		   strerror(-r));
	rpc_call_error(call, RPC_ERR_STATE_IO, NULL,
		       "the state of VM '%s' could not be written to %s/%s: %s",
		       vmm_vm_name(vm), dir, name, strerror(-r));
	rpc_call_error_data(call, "file", json_object_new_string(name));
	return r;
}

int rpc_state_vm_created(struct rpc_call *call, struct vmm_vm *vm, json_object *params)
{
	json_object *def;
	char name[128];
	int r;

	if (!call->srv->cfg.state_dir)
		return 0;
	def = def_from_params(vm, params);
	r = doc_write(call, vm, def, false, vmm_vm_quirks_enabled(vm));
	json_object_put(def);
	if (!r)
		return 0;
	file_name(vmm_vm_name(vm), name, sizeof(name));
	rpc_call_error(call, RPC_ERR_STATE_IO, NULL,
		       "VM '%s' was not created: %s/%s could not be written: %s",
		       vmm_vm_name(vm), call->srv->cfg.state_dir, name, strerror(-r));
	rpc_call_error_data(call, "file", json_object_new_string(name));
	return r;
}

int rpc_state_vm_save(struct rpc_call *call, struct vmm_vm *vm)
{
	return rpc_state_vm_save_quirks(call, vm, vmm_vm_quirks_enabled(vm));
}

int rpc_state_vm_save_quirks(struct rpc_call *call, struct vmm_vm *vm, uint64_t quirks_on)
{
	const char *dir = call->srv->cfg.state_dir;
	struct def_entry *e;
	json_object *doc, *def;
	char name[128];
	int r;

	if (!dir)
		return 0;
	e = def_find(call->srv, vmm_vm_name(vm));
	if (e)
		return doc_write(call, vm, e->def, e->restored, quirks_on);
	/* Not written by this process yet: take the definition from the file. */
	file_name(vmm_vm_name(vm), name, sizeof(name));
	doc = file_read(dir, name);
	def = member(doc, "vm");
	if (!def)
		slog_warn("state: %s/%s is missing or unreadable; rebuilding it from VM '%s'",
			  dir, name, vmm_vm_name(vm));
	def = def ? json_object_get(def) : def_from_info(vm);
	r = doc_write(call, vm, def, json_object_get_boolean(member(doc, "restored")), quirks_on);
	json_object_put(def);
	json_object_put(doc);
	return r;
}

/* Writes line to the journal and makes it durable: one pwritev2 with
 * RWF_DSYNC (one syscall instead of write + fdatasync; the same
 * guarantee), or, where the kernel or file system refuses the flag, the
 * two calls.  A short write is completed with write and fdatasync. */
static int journal_write(int fd, const char *line, size_t len)
{
	struct iovec iov = { .iov_base = (void *)line, .iov_len = len };
	ssize_t n = pwritev2(fd, &iov, 1, -1, RWF_DSYNC);

	if (n < 0 && errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (n == (ssize_t)len)
		return 0;
	n = n < 0 ? 0 : n;
	if (durable_write_all(fd, line + n, len - (size_t)n))
		return -errno;
	return fdatasync(fd) < 0 ? -errno : 0;
}

/* Appends one change, {"KEY":VALUE,"seq":N} with value the JSON text of
 * the change (NULL: it could not be made, -ENOMEM), to VM vm's journal
 * and makes it durable; with no journal yet, or a full one, writes a
 * snapshot instead.  On failure records -32010 naming the file. */
static int journal_append(struct rpc_call *call, struct vmm_vm *vm, const char *key,
			  const char *value, size_t vlen)
{
	const char *dir = call->srv->cfg.state_dir;
	struct def_entry *e = def_find(call->srv, vmm_vm_name(vm));
	char name[128], stack[1024], *line = stack, *p;
	size_t klen = strlen(key), len = 0;
	int r;

	/* A removed journal took the records since the snapshot with it: a
	 * new snapshot holds them again (and this change). */
	if (!e || e->jlines >= e->jmax || journal_gone(e))
		return rpc_state_vm_save(call, vm);
	/* The line is built whole: one write per record, so a torn line can
	 * only be the last one.  Punctuation (13 bytes) and seq (up to 20
	 * digits) come on top of key and value. */
	if (value && klen + vlen + 33 > sizeof(stack))
		line = malloc(klen + vlen + 33);
	if (!value || !line) {
		r = -ENOMEM;
	} else {
		p = line;
		*p++ = '{';
		*p++ = '"';
		p = mempcpy(p, key, klen);
		p = mempcpy(p, "\":", 2);
		p = mempcpy(p, value, vlen);
		p = mempcpy(p, ",\"seq\":", 7);
		p += rpc_u64_text(p, e->seq + 1);
		p = mempcpy(p, "}\n", 2);
		len = (size_t)(p - line);
		r = e->jfd >= 0 ? 0 : journal_open(dir, e, false);
	}
	if (!r)
		r = journal_write(e->jfd, line, len);
	if (r)
		journal_close(e);
	if (line != stack)
		free(line);
	if (!r) {
		e->seq++;
		e->jlines++;
		return 0;
	}
	journal_name(vmm_vm_name(vm), name, sizeof(name));
	slog_error("state: VM %s: cannot append to %s/%s: %s", vmm_vm_name(vm), dir, name,
		   strerror(-r));
	/* A torn record may be on disk: the next change writes a snapshot. */
	e->jlines = e->jmax;
	rpc_call_error(call, RPC_ERR_STATE_IO, NULL, "%s/%s could not be written: %s", dir,
		       name, strerror(-r));
	rpc_call_error_data(call, "file", json_object_new_string(name));
	return r;
}

int rpc_state_slot_put(struct rpc_call *call, struct vmm_vm *vm, const char *text,
		       size_t len)
{
	if (!call->srv->cfg.state_dir)
		return 0;
	return journal_append(call, vm, "put", text, len);
}

int rpc_state_slot_del(struct rpc_call *call, struct vmm_vm *vm, uint32_t id)
{
	char text[16];
	int len;

	if (!call->srv->cfg.state_dir)
		return 0;
	len = snprintf(text, sizeof(text), "%" PRIu32, id);
	return journal_append(call, vm, "del", text, (size_t)len);
}

int rpc_state_vm_removed(struct rpc_call *call, const char *vm)
{
	const char *dir = call->srv->cfg.state_dir;
	char name[128];
	int r;

	if (!dir)
		return 0;
	def_drop(call->srv, vm);
	journal_name(vm, name, sizeof(name));
	durable_file_remove(dir, name);
	file_name(vm, name, sizeof(name));
	r = durable_file_remove(dir, name);
	if (!r)
		return 0;
	slog_error("state: cannot remove %s/%s: %s", dir, name, strerror(-r));
	rpc_call_error(call, RPC_ERR_STATE_IO, NULL,
		       "VM '%s' is destroyed but %s/%s could not be removed: %s (it will "
		       "come back after a restart)", vm, dir, name, strerror(-r));
	rpc_call_error_data(call, "file", json_object_new_string(name));
	return r;
}

bool rpc_state_vm_restored(struct rpc_server *srv, struct vmm_vm *vm)
{
	struct def_entry *e = def_find(srv, vmm_vm_name(vm));

	return e && e->restored;
}

/* ---- restore ------------------------------------------------------------ */

/* The message of the error recorded in call (then cleared). */
static void call_why(struct rpc_call *call, char *why, size_t len)
{
	json_object *m = member(call->error, "message");
	json_object *f = member(member(call->error, "data"), "field");

	snprintf(why, len, "%s%s%s", m ? json_object_get_string(m) : "invalid",
		 f ? " at " : "", f ? json_object_get_string(f) : "");
	json_object_put(call->error);
	call->error = NULL;
}

/* vmm_vm_params from a saved definition. */
static int params_from_def(json_object *def, struct vmm_vm_params *p, char *why, size_t len)
{
	json_object *args = member(def, "args");
	uint64_t mem = 0;
	json_object *m = member(def, "memory");

	memset(p, 0, sizeof(*p));
	p->name = rpc_param_str(def, "name", "");
	p->vcpus = (unsigned)rpc_param_int(def, "vcpus", 1);
	p->payload = rpc_param_str(def, "payload", "builtin:hello");
	p->mmio_policy = strcmp(rpc_param_str(def, "mmio", "ignore"), "crash") ?
			 VMM_MMIO_IGNORE : VMM_MMIO_CRASH;
	p->ram_backing = strcmp(rpc_param_str(def, "ram", "memfd"), "anon") ?
			 VMM_RAM_MEMFD : VMM_RAM_ANON;
	if (m && json_object_is_type(m, json_type_int))
		mem = json_object_get_uint64(m);
	p->memory_bytes = mem;
	for (size_t i = 0; args && i < json_object_array_length(args) && i < VMM_NARGS; i++)
		p->args[i] = json_object_get_uint64(json_object_array_get_idx(args, i));
	if (vmm_vm_type_parse(rpc_param_str(def, "type", "default"), &p->type) || !mem) {
		snprintf(why, len, "the definition's type or memory is missing or invalid");
		return -EINVAL;
	}
	return 0;
}

/* Applies the saved quirk set (names in quirks_enabled are on). */
static int quirks_restore(struct vmm_vm *vm, json_object *on, char *why, size_t len)
{
	uint64_t cur = vmm_vm_quirks_enabled(vm);

	for (size_t i = 0; on && i < vmm_quirk_desc_count; i++) {
		const struct vmm_quirk_desc *q = &vmm_quirk_descs[i];
		bool want = false;
		struct vmm_err e = { 0 };

		for (size_t j = 0; j < json_object_array_length(on); j++)
			if (!strcmp(json_object_get_string(json_object_array_get_idx(on, j)), q->name))
				want = true;
		if (want == !!(cur & q->bit))
			continue;
		if (vmm_vm_quirk_set(vm, q->name, want, &e)) {
			snprintf(why, len, "quirk %s %s: %s", q->name, want ? "on" : "off", e.msg);
			return -EINVAL;
		}
	}
	return 0;
}

/* Recreates each saved memslot with its saved id. */
static int slots_restore(struct rpc_call *call, struct vmm_vm *vm, json_object *slots,
			 char *why, size_t len)
{
	for (size_t i = 0; slots && i < json_object_array_length(slots); i++) {
		json_object *o = json_object_array_get_idx(slots, i);
		struct vmm_memslot_params p;
		struct vmm_effect fx;
		struct vmm_err e = { 0 };
		char prefix[32];
		uint32_t id;
		int r;

		snprintf(prefix, sizeof(prefix), "memslots[%zu].", i);
		if (rpc_memslot_params_parse(call, o, prefix, &p)) {
			call_why(call, why, len);
			return -EINVAL;
		}
		r = vmm_memslot_create(vm, &p, &id, &fx, &e);
		if (r) {
			snprintf(why, len, "memslot %u at 0x%llx: %s", p.id,
				 (unsigned long long)p.gpa, e.msg[0] ? e.msg : strerror(-r));
			return r;
		}
		slog_info("state: VM %s: memslot %u restored: gpa 0x%llx, %llu bytes, %s%s%s",
			  vmm_vm_name(vm), id, (unsigned long long)p.gpa,
			  (unsigned long long)p.size, rpc_param_str(member(o, "backing"), "kind", "anon"),
			  p.backing.path[0] ? " " : "", p.backing.path);
	}
	return 0;
}

/* Index in slots of the memslot with id, or -1. */
static int slot_index(json_object *slots, int64_t id)
{
	for (size_t i = 0; i < json_object_array_length(slots); i++)
		if (rpc_param_int(json_object_array_get_idx(slots, i), "slot", -1) == id)
			return (int)i;
	return -1;
}

/* Applies one journal record to the snapshot's memslots. */
static void journal_apply(json_object *slots, json_object *rec)
{
	json_object *put = member(rec, "put"), *del = member(rec, "del");
	int i = slot_index(slots, put ? rpc_param_int(put, "slot", -1) :
				       del ? json_object_get_int64(del) : -1);

	if (i >= 0)
		json_object_array_del_idx(slots, (size_t)i, 1);
	if (put)
		json_object_array_add(slots, json_object_get(put));
}

/* Folds the journal of file name (vm-NAME.json) into doc: records after
 * the snapshot's seq, in order, up to the first line that does not parse
 * (a write cut short by a crash: it was never answered). */
static void journal_replay(const char *dir, const char *name, json_object *doc)
{
	uint64_t seq = json_object_get_uint64(member(doc, "seq"));
	json_object *slots = member(doc, "memslots");
	char path[4096], line[8192];
	unsigned applied = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%.*s.journal", dir, (int)strlen(name) - 5, name);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!slots) {
		slots = json_object_new_array();
		json_object_object_add(doc, "memslots", slots);
	}
	while (fgets(line, sizeof(line), f)) {
		json_object *rec = strchr(line, '\n') ? json_tokener_parse(line) : NULL;

		if (!rec) {
			slog_warn("state: %s: an incomplete last record was ignored", path);
			break;
		}
		if (json_object_get_uint64(member(rec, "seq")) > seq) {
			journal_apply(slots, rec);
			applied++;
		}
		json_object_put(rec);
	}
	fclose(f);
	if (applied)
		slog_info("state: %s: %u memslot change(s) replayed", path, applied);
}

/* Restores one file; on failure *why says why and nothing is left. */
static int restore_file(struct rpc_call *call, const char *name, char *why, size_t len)
{
	const char *dir = call->srv->cfg.state_dir;
	json_object *doc = file_read(dir, name), *def = member(doc, "vm");
	struct vmm_vm_params p;
	struct vmm_vm *vm = NULL;
	struct vmm_err e = { 0 };
	char want[128];
	int r = -EINVAL;

	if (!def) {
		snprintf(why, len, "not a slotd state file (unparsable JSON or no \"vm\" member)");
		goto out;
	}
	if (params_from_def(def, &p, why, len))
		goto out;
	journal_replay(dir, name, doc);
	file_name(p.name, want, sizeof(want));
	if (strcmp(want, name)) {
		snprintf(why, len, "the file names VM '%s', expected %s", p.name, want);
		goto out;
	}
	r = vmm_vm_create(rpc_call_vmm(call), &p, &vm, &e);
	if (r) {
		snprintf(why, len, "vm.create: %s", e.msg[0] ? e.msg : strerror(-r));
		goto out;
	}
	r = quirks_restore(vm, member(doc, "quirks_enabled"), why, len);
	if (!r)
		r = slots_restore(call, vm, member(doc, "memslots"), why, len);
	if (!r && (r = doc_write(call, vm, def, true, vmm_vm_quirks_enabled(vm))))
		call_why(call, why, len);
	if (r)
		vmm_vm_destroy(vm, NULL);
	else
		slog_info("state: VM %s restored from %s: %s, %u vCPU(s), %zu extra memslot(s), "
			  "state defined", p.name, name, rpc_param_str(def, "type", "default"),
			  p.vcpus, json_object_array_length(member(doc, "memslots")));
out:
	json_object_put(doc);
	return r;
}

/* Moves a file that cannot be restored aside, never dropping it. */
static void file_fail(const char *dir, const char *name, const char *why)
{
	char from[4096], to[4200];

	snprintf(from, sizeof(from), "%s/%s", dir, name);
	snprintf(to, sizeof(to), "%s.failed", from);
	if (rename(from, to) < 0)
		slog_error("state: %s cannot be restored (%s) nor renamed: %s", from, why,
			   strerror(errno));
	else
		slog_error("state: %s cannot be restored: %s; kept as %s", from, why, to);
}

static int restore_one(const char *name, void *arg)
{
	struct restore_ctx *ctx = arg;
	struct rpc_call call = { .srv = ctx->srv };
	char why[512] = "";

	if (strncmp(name, "vm-", 3))
		return 0;
	if (restore_file(&call, name, why, sizeof(why))) {
		file_fail(ctx->srv->cfg.state_dir, name, why);
		ctx->failed++;
	} else {
		ctx->restored++;
	}
	json_object_put(call.error);
	return 0;
}

/* True when dir holds at least one vm-*.json.  durable_dir_foreach on a
 * directory without matches hands qsort a NULL array (undefined behaviour
 * that UBSan reports), so an empty state dir is not walked. */
static bool have_files(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	bool found = false;

	while (dp && !found && (e = readdir(dp)))
		found = !strncmp(e->d_name, "vm-", 3) &&
			strlen(e->d_name) > 8 && !strcmp(e->d_name + strlen(e->d_name) - 5, ".json");
	if (dp)
		closedir(dp);
	return found;
}

int rpc_state_restore(struct rpc_server *srv, unsigned *restored, unsigned *failed)
{
	struct restore_ctx ctx = { .srv = srv };
	const char *dir = srv->cfg.state_dir;
	int r;

	*restored = *failed = 0;
	if (!dir)
		return 0;
	if (!vmm_caps_get(srv->cfg.vmm)->kvm_available) {
		slog_warn("state: KVM unavailable; VM state files in %s left as they are", dir);
		return 0;
	}
	if (!have_files(dir))
		return 0;
	r = durable_dir_foreach(dir, ".json", restore_one, &ctx);
	*restored = ctx.restored;
	*failed = ctx.failed;
	slog_info("state: restored %u VM(s) from %s, %u failed%s", ctx.restored, dir,
		  ctx.failed, ctx.failed ? " (kept as *.failed, see above)" : "");
	return r;
}
