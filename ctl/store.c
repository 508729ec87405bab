/* The control plane's persistence.  Per VM in the state directory:
 *
 * vm-NAME.json, the snapshot, written atomically (durable_file_write):
 *   {"format": "slotd-vm", "version": 2, "seq": N,
 *    "vm": {"name", "type", "vcpus", "memory", "payload", "args", "mmio", "ram"},
 *    "quirks_enabled": [names],
 *    "memslots": [{"id", "gpa", "size", "readonly", "dirty_log",
 *                  "backing": {"kind", "shared", "path"?, "offset"?,
 *                              "hugepage_size"?}}, ...]}     (all but slot 0)
 *
 * vm-NAME.journal, the memslot changes since the snapshot, one JSON text
 * per line, each made durable before the change is answered:
 *   {"seq": n, "put": {slot}}   or   {"seq": n, "del": id}
 *
 * Both carry "rid": the client's request_id of the call that wrote them,
 * when it gave one (store_rid_set).  Only the last one counts: it tells a
 * restarted slotd which request's change is on disk though its outcome
 * never reached ctl/requests.c's file (a crash between the two writes).
 *
 * A change costs one short append instead of rewriting a file that grows
 * with the slot count.  Every JOURNAL_MAX lines, or as many as the
 * snapshot has slots if that is more (so that rewriting it costs O(1) per
 * change however many slots a VM has), and on any other change, the
 * snapshot is rewritten and the journal emptied.  Lines with seq <= the
 * snapshot's were folded in already (a crash between the two steps); a
 * torn last line is a change that was never answered.  A journal removed
 * or renamed over by hand is noticed at the next change, which writes a
 * snapshot instead: its records are not lost unless slotd dies first.
 *
 * Version 1 files (slotd before the runner split: memslots as memslot.list
 * shows them, "slot" ids, hex "gpa" strings, a "flags" array) are read
 * too, so an upgrade keeps its VMs; they are rewritten as version 2 at the
 * next snapshot. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/durable.h"
#include "common/log.h"
#include "ctl/store.h"

#define STORE_VERSION	2
#define JOURNAL_MAX	256
#define FILE_MAX	(64u << 20)	/* a snapshot of 32k slots is ~5 MiB */

/* Per VM: the journal's state, kept between changes. */
struct entry {
	struct entry *next;
	char name[VMM_NAME_MAX];
	uint64_t seq;		/* of the last change written */
	unsigned jlines;	/* lines in the journal */
	unsigned jmax;		/* lines before the next snapshot */
	int jfd;		/* open for appending, or -1 */
};

struct store {
	char *dir;
	struct entry *entries;
	char rid[STORE_RID_MAX + 1];	/* written with each record; "": none */
	uint64_t rid_at;		/* when its request came (CLOCK_REALTIME ns) */
};

int store_open(const char *dir, struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));

	if (!st || !(st->dir = strdup(dir))) {
		free(st);
		return -ENOMEM;
	}
	*out = st;
	return 0;
}

static void entry_close(struct entry *e)
{
	if (e->jfd >= 0)
		close(e->jfd);
	e->jfd = -1;
}

void store_close(struct store *st)
{
	struct entry *e;

	if (!st)
		return;
	while ((e = st->entries)) {
		st->entries = e->next;
		entry_close(e);
		free(e);
	}
	free(st->dir);
	free(st);
}

const char *store_dir(const struct store *st)
{
	return st->dir;
}

static struct entry *entry_find(struct store *st, const char *name)
{
	for (struct entry *e = st->entries; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	return NULL;
}

static struct entry *entry_get(struct store *st, const char *name)
{
	struct entry *e = entry_find(st, name);

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->jfd = -1;
	e->jmax = JOURNAL_MAX;
	e->next = st->entries;
	st->entries = e;
	return e;
}

static void entry_drop(struct store *st, const char *name)
{
	for (struct entry **pe = &st->entries; *pe; pe = &(*pe)->next)
		if (!strcmp((*pe)->name, name)) {
			struct entry *e = *pe;

			*pe = e->next;
			entry_close(e);
			free(e);
			return;
		}
}

/* Fills err for a failed write of file (errno r). */
static int io_error(struct store *st, struct vmm_err *err, const char *vm, const char *file,
		    int r)
{
	slog_error("state: VM %s: cannot write %s/%s: %s", vm, st->dir, file, strerror(-r));
	if (err) {
		vmm_err_set(err, r, NULL, "the state of VM '%s' could not be written to %s/%s: %s",
			    vm, st->dir, file, strerror(-r));
		snprintf(err->file, sizeof(err->file), "%s", file);
	}
	return r;
}

/* ---- text ---------------------------------------------------------------- */

/* A growing text buffer; on allocation failure it stays NULL (failed). */
struct text {
	char *p;
	size_t n, cap;
	bool failed;
};

static void put(struct text *t, const char *s, size_t len)
{
	if (t->failed)
		return;
	if (t->n + len + 1 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 512;
		char *np;

		while (cap < t->n + len + 1)
			cap *= 2;
		np = realloc(t->p, cap);
		if (!np) {
			t->failed = true;
			return;
		}
		t->p = np;
		t->cap = cap;
	}
	memcpy(t->p + t->n, s, len);
	t->n += len;
	t->p[t->n] = '\0';
}

static void puts_(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

static void put_u64(struct text *t, uint64_t v)
{
	char buf[24];

	put(t, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRIu64, v));
}

/* s as a JSON string (json-c escapes it: paths may hold anything). */
static void put_str(struct text *t, const char *s)
{
	json_object *o = json_object_new_string(s);
	const char *txt = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE) :
			      NULL;

	if (txt)
		puts_(t, txt);
	else
		t->failed = true;
	json_object_put(o);
}

static const char *const kind_names[] = {
	[VMM_BACKING_ANON] = "anon", [VMM_BACKING_MEMFD] = "memfd",
	[VMM_BACKING_HUGETLB] = "hugetlb", [VMM_BACKING_FILE] = "file",
};

/* One slot as the store writes it. */
static void put_slot(struct text *t, const struct vmm_memslot_info *s)
{
	const struct vmm_backing *b = &s->backing;

	puts_(t, "{\"id\":");
	put_u64(t, s->id);
	puts_(t, ",\"gpa\":");
	put_u64(t, s->gpa);
	puts_(t, ",\"size\":");
	put_u64(t, s->size);
	puts_(t, s->slot_flags & VMM_SLOT_READONLY ? ",\"readonly\":true" : ",\"readonly\":false");
	puts_(t, s->slot_flags & VMM_SLOT_DIRTY_LOG ? ",\"dirty_log\":true" :
						      ",\"dirty_log\":false");
	puts_(t, ",\"backing\":{\"kind\":\"");
	puts_(t, b->kind <= VMM_BACKING_FILE ? kind_names[b->kind] : "anon");
	puts_(t, b->shared ? "\",\"shared\":true" : "\",\"shared\":false");
	if (b->path[0]) {
		puts_(t, ",\"path\":");
		put_str(t, b->path);
		puts_(t, ",\"offset\":");
		put_u64(t, b->offset);
	}
	if (b->kind == VMM_BACKING_HUGETLB) {
		puts_(t, ",\"hugepage_size\":");
		put_u64(t, b->hugepage_size ? b->hugepage_size : 2u << 20);
	}
	puts_(t, "}}");
}

size_t store_quirks_text(uint64_t mask, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < vmm_quirk_desc_count && n < len; i++)
		if (mask & vmm_quirk_descs[i].bit)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " " : "",
					      vmm_quirk_descs[i].name);
	return n;
}

static void put_def(struct text *t, const struct store_vm_def *d)
{
	puts_(t, "{\"name\":");
	put_str(t, d->name);
	puts_(t, ",\"type\":\"");
	puts_(t, vmm_vm_type_name(d->type));
	puts_(t, "\",\"vcpus\":");
	put_u64(t, d->vcpus);
	puts_(t, ",\"memory\":");
	put_u64(t, d->memory);
	puts_(t, ",\"payload\":");
	put_str(t, d->payload);
	puts_(t, ",\"args\":[");
	for (size_t i = 0; i < VMM_NARGS; i++) {
		if (i)
			puts_(t, ",");
		put_u64(t, d->args[i]);
	}
	puts_(t, d->mmio == VMM_MMIO_CRASH ? "],\"mmio\":\"crash\"" : "],\"mmio\":\"ignore\"");
	puts_(t, d->ram == VMM_RAM_ANON ? ",\"ram\":\"anon\"}" : ",\"ram\":\"memfd\"}");
}

static void file_name(const char *vm, char *buf, size_t len)
{
	snprintf(buf, len, "vm-%s.json", vm);
}

static void journal_name(const char *vm, char *buf, size_t len)
{
	snprintf(buf, len, "vm-%s.journal", vm);
}

void store_rid_set(struct store *st, const char *rid, uint64_t at_ns)
{
	snprintf(st->rid, sizeof(st->rid), "%s", rid && strlen(rid) <= STORE_RID_MAX ? rid : "");
	st->rid_at = at_ns;
}

/* ,"rid":"..." when a request id is set (its characters need no escape:
 * ctl_request_id_check allows none that would). */
static void put_rid(struct text *t, const struct store *st)
{
	if (!st->rid[0])
		return;
	puts_(t, ",\"rid\":\"");
	puts_(t, st->rid);
	puts_(t, "\",\"rid_at\":");
	put_u64(t, st->rid_at);
}

/* ---- journal --------------------------------------------------------------- */

/* Whether e's open journal was removed, or renamed over, since it was
 * opened (its link count fell to 0); it is closed then. */
static bool journal_gone(struct entry *e)
{
	struct stat st;

	if (e->jfd < 0 || (fstat(e->jfd, &st) == 0 && st.st_nlink > 0))
		return false;
	entry_close(e);
	return true;
}

/* Opens e's journal for appending, emptied with trunc.  It stays open:
 * an open and a close per change cost as much as the append on tmpfs. */
static int journal_open(struct store *st, struct entry *e, bool trunc)
{
	char path[4096];

	journal_gone(e);
	if (e->jfd >= 0)
		return trunc && ftruncate(e->jfd, 0) < 0 ? -errno : 0;
	snprintf(path, sizeof(path), "%s/vm-%s.journal", st->dir, e->name);
	e->jfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
			    (trunc ? O_TRUNC : 0), 0600);
	return e->jfd < 0 ? -errno : 0;
}

/* Appends {"seq":N,key:value} to vm's journal, durably. */
static int journal_append(struct store *st, const char *vm, const char *key,
			  const char *value, size_t vlen, struct vmm_err *err)
{
	struct entry *e = entry_find(st, vm);
	struct text t = { 0 };
	char name[96];
	int r;

	if (!e || e->jlines >= e->jmax || journal_gone(e))
		return -ESTALE;
	puts_(&t, "{\"seq\":");
	put_u64(&t, e->seq + 1);
	put_rid(&t, st);
	puts_(&t, ",\"");
	puts_(&t, key);
	puts_(&t, "\":");
	put(&t, value, vlen);
	puts_(&t, "}\n");
	r = t.failed ? -ENOMEM : e->jfd >= 0 ? 0 : journal_open(st, e, false);
	if (!r)
		r = durable_append(e->jfd, t.p, t.n);
	free(t.p);
	if (!r) {
		e->seq++;
		e->jlines++;
		return 0;
	}
	entry_close(e);
	/* A torn record may be on disk: the next change writes a snapshot. */
	e->jlines = e->jmax;
	journal_name(vm, name, sizeof(name));
	return io_error(st, err, vm, name, r);
}

int store_slot_put(struct store *st, const char *vm, const struct vmm_memslot_info *s,
		   struct vmm_err *err)
{
	struct text t = { 0 };
	int r;

	put_slot(&t, s);
	r = t.failed ? -ENOMEM : journal_append(st, vm, "put", t.p, t.n, err);
	free(t.p);
	return r;
}

int store_slot_del(struct store *st, const char *vm, uint32_t id, struct vmm_err *err)
{
	char text[16];

	return journal_append(st, vm, "del", text,
			      (size_t)snprintf(text, sizeof(text), "%" PRIu32, id), err);
}

/* ---- snapshots ------------------------------------------------------------- */

int store_snapshot(struct store *st, const struct store_vm_def *def, uint64_t quirks_enabled,
		   const struct vmm_memslot_info *slots, size_t n, struct vmm_err *err)
{
	struct entry *e = entry_get(st, def->name);
	struct text t = { 0 };
	char name[96];
	int r;

	file_name(def->name, name, sizeof(name));
	if (!e)
		return io_error(st, err, def->name, name, -ENOMEM);
	puts_(&t, "{\"format\":\"slotd-vm\",\"version\":2,\"seq\":");
	put_u64(&t, e->seq);
	put_rid(&t, st);
	puts_(&t, ",\n\"vm\":");
	put_def(&t, def);
	puts_(&t, ",\n\"quirks_enabled\":[");
	for (size_t i = 0, k = 0; i < vmm_quirk_desc_count; i++)
		if (quirks_enabled & vmm_quirk_descs[i].bit) {
			puts_(&t, k++ ? ",\"" : "\"");
			puts_(&t, vmm_quirk_descs[i].name);
			puts_(&t, "\"");
		}
	puts_(&t, "],\n\"memslots\":[");
	for (size_t i = 0; i < n; i++) {
		puts_(&t, i ? ",\n" : "\n");
		put_slot(&t, &slots[i]);
	}
	puts_(&t, "]}\n");
	r = t.failed ? -ENOMEM : durable_file_write(st->dir, name, t.p, t.n);
	free(t.p);
	if (r)
		return io_error(st, err, def->name, name, r);
	e->jmax = n > JOURNAL_MAX ? (unsigned)n : JOURNAL_MAX;
	/* A journal left non-empty only costs a replay of lines the
	 * snapshot's seq already covers. */
	if (journal_open(st, e, true) || fdatasync(e->jfd) < 0) {
		slog_warn("state: VM %s: cannot empty its journal: %s", def->name, strerror(errno));
		entry_close(e);
	} else {
		e->jlines = 0;
	}
	return 0;
}

int store_vm_remove(struct store *st, const char *vm, struct vmm_err *err)
{
	char name[96];
	int r;

	entry_drop(st, vm);
	journal_name(vm, name, sizeof(name));
	durable_file_remove(st->dir, name);
	file_name(vm, name, sizeof(name));
	r = durable_file_remove(st->dir, name);
	if (!r)
		return 0;
	slog_error("state: cannot remove %s/%s: %s", st->dir, name, strerror(-r));
	if (err) {
		vmm_err_set(err, r, NULL, "%s/%s could not be removed: %s", st->dir, name,
			    strerror(-r));
		snprintf(err->file, sizeof(err->file), "%s", name);
	}
	return r;
}

/* ---- parsing ---------------------------------------------------------------- */

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A non-negative integer member, or a "0x..." / decimal string (version
 * 1 wrote GPAs as hex strings). */
static int u64_of(json_object *v, uint64_t *out)
{
	const char *s;
	char *end;

	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0 && json_object_get_uint64(v) == 0)
			return -EINVAL;
		*out = json_object_get_uint64(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	errno = 0;
	*out = strtoull(s, &end, !strncmp(s, "0x", 2) ? 16 : 10);
	return errno || end == s || *end || *s == '-' || *s == ' ' ? -EINVAL : 0;
}

static bool bool_of(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int kind_of(const char *s, enum vmm_backing_kind *out)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (!strcmp(s, kind_names[i])) {
			*out = (enum vmm_backing_kind)i;
			return 0;
		}
	return -EINVAL;
}

/* Version 1's "flags": ["readonly", "dirty_log"]. */
static uint32_t flags_v1(json_object *a)
{
	uint32_t f = 0;

	for (size_t i = 0; json_object_is_type(a, json_type_array) &&
			   i < json_object_array_length(a); i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(a, i));

		f |= s && !strcmp(s, "readonly") ? VMM_SLOT_READONLY : 0;
		f |= s && !strcmp(s, "dirty_log") ? VMM_SLOT_DIRTY_LOG : 0;
	}
	return f;
}

static int backing_of(json_object *b, struct vmm_backing *out)
{
	json_object *v;
	const char *path;

	memset(out, 0, sizeof(*out));
	if (!b)
		return 0;	/* anonymous, private */
	if (!json_object_is_type(b, json_type_object) || !(v = member(b, "kind")) ||
	    kind_of(json_object_get_string(v), &out->kind))
		return -EINVAL;
	out->shared = bool_of(b, "shared");
	path = (v = member(b, "path")) ? json_object_get_string(v) : NULL;
	if (path && strlen(path) >= sizeof(out->path))
		return -EINVAL;
	if (path)
		snprintf(out->path, sizeof(out->path), "%s", path);
	if ((v = member(b, "offset")) && u64_of(v, &out->offset))
		return -EINVAL;
	if ((v = member(b, "hugepage_size")) && u64_of(v, &out->hugepage_size))
		return -EINVAL;
	return 0;
}

/* One slot of either version. */
static int slot_of(json_object *o, struct vmm_memslot_info *s)
{
	json_object *v = member(o, "id");
	uint64_t id;

	memset(s, 0, sizeof(*s));
	if (!v)
		v = member(o, "slot");
	if (!json_object_is_type(o, json_type_object) || !v || u64_of(v, &id) ||
	    id >= UINT32_MAX || !(v = member(o, "gpa")) || u64_of(v, &s->gpa) ||
	    !(v = member(o, "size")) || u64_of(v, &s->size))
		return -EINVAL;
	s->id = (uint32_t)id;
	s->slot_flags = member(o, "flags") ? flags_v1(member(o, "flags")) :
		(bool_of(o, "readonly") ? VMM_SLOT_READONLY : 0) |
		(bool_of(o, "dirty_log") ? VMM_SLOT_DIRTY_LOG : 0);
	return backing_of(member(o, "backing"), &s->backing);
}

static const char *str_of(json_object *o, const char *key, const char *dflt)
{
	json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : dflt;
}

static int def_of(json_object *o, struct store_vm_def *d, char *why, size_t len)
{
	json_object *args = member(o, "args"), *v;
	const char *name = str_of(o, "name", ""), *payload = str_of(o, "payload", "builtin:hello");

	memset(d, 0, sizeof(*d));
	if (!vmm_vm_name_valid(name) || strlen(payload) >= sizeof(d->payload) ||
	    vmm_vm_type_parse(str_of(o, "type", "default"), &d->type)) {
		snprintf(why, len, "the definition's name, payload or type is invalid");
		return -EINVAL;
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->payload, sizeof(d->payload), "%s", payload);
	if (!(v = member(o, "memory")) || u64_of(v, &d->memory) || !d->memory ||
	    !(v = member(o, "vcpus")) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 1 || json_object_get_int64(v) > VMM_MAX_VCPUS) {
		snprintf(why, len, "the definition's memory or vcpus is missing or invalid");
		return -EINVAL;
	}
	d->vcpus = (unsigned)json_object_get_int64(v);
	d->mmio = strcmp(str_of(o, "mmio", "ignore"), "crash") ? VMM_MMIO_IGNORE : VMM_MMIO_CRASH;
	d->ram = strcmp(str_of(o, "ram", "memfd"), "anon") ? VMM_RAM_MEMFD : VMM_RAM_ANON;
	for (size_t i = 0; json_object_is_type(args, json_type_array) &&
			   i < json_object_array_length(args) && i < VMM_NARGS; i++)
		if (u64_of(json_object_array_get_idx(args, i), &d->args[i])) {
			snprintf(why, len, "args[%zu] is not a non-negative integer", i);
			return -EINVAL;
		}
	return 0;
}

static uint64_t quirks_of(json_object *a)
{
	uint64_t mask = 0;

	for (size_t i = 0; json_object_is_type(a, json_type_array) &&
			   i < json_object_array_length(a); i++) {
		const struct vmm_quirk_desc *q =
			vmm_quirk_lookup(json_object_get_string(json_object_array_get_idx(a, i)) ?: "");

		mask |= q ? q->bit : 0;
	}
	return mask;
}

/* Puts slot s into v (replacing the one of its id). */
static int slots_put(struct store_vm *v, const struct vmm_memslot_info *s)
{
	for (size_t i = 0; i < v->nslots; i++)
		if (v->slots[i].id == s->id) {
			v->slots[i] = *s;
			return 0;
		}
	if (v->nslots == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		struct vmm_memslot_info *n = realloc(v->slots, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		v->slots = n;
		v->cap = cap;
	}
	v->slots[v->nslots++] = *s;
	return 0;
}

static void slots_del(struct store_vm *v, uint64_t id)
{
	for (size_t i = 0; i < v->nslots; i++)
		if (v->slots[i].id == id) {
			v->slots[i] = v->slots[--v->nslots];
			return;
		}
}

static int gpa_cmp(const void *a, const void *b)
{
	const struct vmm_memslot_info *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* v->rid and rid_at from a record's or snapshot's members (absent: ""). */
static void rid_of(json_object *o, struct store_vm *v)
{
	json_object *r = member(o, "rid"), *at = member(o, "rid_at");
	const char *s = r && json_object_is_type(r, json_type_string) ?
		json_object_get_string(r) : "";

	snprintf(v->rid, sizeof(v->rid), "%s", strlen(s) <= STORE_RID_MAX ? s : "");
	if (!at || u64_of(at, &v->rid_at))
		v->rid_at = 0;
}

/* Applies one journal record with seq above the snapshot's. */
static int record_apply(struct store_vm *v, json_object *rec, uint64_t *seq)
{
	json_object *put_ = member(rec, "put"), *del = member(rec, "del"), *s = member(rec, "seq");
	struct vmm_memslot_info slot;
	uint64_t n, id;

	if (!s || u64_of(s, &n) || (!put_ && !del))
		return -EINVAL;
	if (n <= *seq)
		return 0;	/* already in the snapshot */
	*seq = n;
	v->replayed++;
	rid_of(rec, v);
	if (del) {
		if (u64_of(del, &id))
			return -EINVAL;
		slots_del(v, id);
		return 0;
	}
	return slot_of(put_, &slot) ? -EINVAL : slots_put(v, &slot);
}

/* Replays journal text line by line up to a line that is not a whole
 * record (a write cut short: never answered). */
static void journal_replay(const char *text, struct store_vm *v, uint64_t seq)
{
	const char *p = text;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		json_object *rec;
		int r;

		if (!nl) {
			v->torn = true;
			return;
		}
		rec = json_tokener_parse(p);
		r = rec ? record_apply(v, rec, &seq) : -EINVAL;
		json_object_put(rec);
		if (r) {
			v->torn = true;
			return;
		}
		p = nl + 1;
	}
}

int store_parse(const char *snapshot, const char *journal, struct store_vm *v, char *why,
		size_t len)
{
	json_object *doc = json_tokener_parse(snapshot), *slots, *ver;
	uint64_t seq = 0, version = 1;
	int r = -EINVAL;

	memset(v, 0, sizeof(*v));
	if (!doc || !json_object_is_type(doc, json_type_object) || !member(doc, "vm")) {
		snprintf(why, len, "not a slotd state file (unparsable JSON or no \"vm\" member)");
		goto out;
	}
	if ((ver = member(doc, "version")) && (u64_of(ver, &version) || version < 1 ||
					       version > STORE_VERSION)) {
		snprintf(why, len, "format version %s is not one this slotd reads (1..%d)",
			 json_object_get_string(ver), STORE_VERSION);
		goto out;
	}
	v->version = (unsigned)version;
	if (def_of(member(doc, "vm"), &v->def, why, len))
		goto out;
	rid_of(doc, v);
	v->quirks_enabled = member(doc, "quirks_enabled") ?
		quirks_of(member(doc, "quirks_enabled")) : vmm_quirks_all();
	if (member(doc, "seq") && u64_of(member(doc, "seq"), &seq)) {
		snprintf(why, len, "\"seq\" is not a non-negative integer");
		goto out;
	}
	slots = member(doc, "memslots");
	for (size_t i = 0; json_object_is_type(slots, json_type_array) &&
			   i < json_object_array_length(slots); i++) {
		struct vmm_memslot_info s;

		if (slot_of(json_object_array_get_idx(slots, i), &s) || slots_put(v, &s)) {
			snprintf(why, len, "memslots[%zu] is invalid", i);
			goto out;
		}
	}
	if (journal)
		journal_replay(journal, v, seq);
	if (v->nslots)
		qsort(v->slots, v->nslots, sizeof(*v->slots), gpa_cmp);
	r = 0;
out:
	if (r)
		store_vm_fini(v);
	json_object_put(doc);
	return r;
}

void store_vm_fini(struct store_vm *v)
{
	free(v->slots);
	v->slots = NULL;
	v->nslots = v->cap = 0;
}

/* ---- loading ----------------------------------------------------------------- */

/* The whole file dir/name as a string (NULL if absent or unreadable). */
static char *slurp(const char *dir, const char *name)
{
	char path[4096], *buf = NULL;
	struct stat sb;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size < FILE_MAX &&
	    (buf = malloc((size_t)sb.st_size + 1))) {
		ssize_t n = pread(fd, buf, (size_t)sb.st_size, 0);

		if (n < 0) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	close(fd);
	return buf;
}

/* Moves a file that cannot be restored aside, never dropping it. */
static void file_fail(struct store *st, const char *name, const char *why)
{
	char from[4096], to[4200];

	snprintf(from, sizeof(from), "%s/%s", st->dir, name);
	snprintf(to, sizeof(to), "%s.failed", from);
	if (rename(from, to) < 0)
		slog_error("state: %s cannot be restored (%s) nor renamed: %s", from, why,
			   strerror(errno));
	else
		slog_error("state: %s cannot be restored: %s; kept as %s", from, why, to);
}

struct load_ctx {
	struct store *st;
	int (*fn)(const struct store_vm *v, char *why, size_t len, void *arg);
	void *arg;
	unsigned loaded, failed;
};

/* Loads one vm-NAME.json and hands it to the caller. */
static int load_one(const char *name, void *arg)
{
	struct load_ctx *c = arg;
	char *snap, *jtext, jname[4096], want[128], why[512] = "";
	struct store_vm v;
	struct entry *e;
	int r;

	if (strncmp(name, "vm-", 3))
		return 0;
	snprintf(jname, sizeof(jname), "%.*s.journal", (int)strlen(name) - 5, name);
	snap = slurp(c->st->dir, name);
	jtext = slurp(c->st->dir, jname);
	r = snap ? store_parse(snap, jtext, &v, why, sizeof(why)) : -EIO;
	if (!snap)
		snprintf(why, sizeof(why), "unreadable");
	if (!r) {
		file_name(v.def.name, want, sizeof(want));
		if (strcmp(want, name)) {
			snprintf(why, sizeof(why), "the file names VM '%s', expected %s",
				 v.def.name, want);
			r = -EINVAL;
		}
	}
	if (!r && v.torn)
		slog_warn("state: %s/%s: an incomplete last record was ignored", c->st->dir, jname);
	if (!r && v.replayed)
		slog_info("state: %s/%s: %u memslot change(s) replayed", c->st->dir, jname,
			  v.replayed);
	if (!r) {
		snprintf(v.file, sizeof(v.file), "%s", name);
		if ((e = entry_get(c->st, v.def.name)))
			e->jlines = e->jmax;	/* the next change writes a snapshot */
		r = c->fn(&v, why, sizeof(why), c->arg);
		store_vm_fini(&v);
	}
	if (r) {
		file_fail(c->st, name, why);
		c->failed++;
	} else {
		c->loaded++;
	}
	free(snap);
	free(jtext);
	return 0;
}

int store_load(struct store *st, int (*fn)(const struct store_vm *v, char *why, size_t len,
					   void *arg),
	       void *arg, unsigned *loaded, unsigned *failed)
{
	struct load_ctx c = { .st = st, .fn = fn, .arg = arg };
	int r = durable_dir_foreach(st->dir, ".json", load_one, &c);

	*loaded = c.loaded;
	*failed = c.failed;
	return r;
}
