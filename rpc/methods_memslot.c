/* memslot.* and vm.quirks.* methods: JSON in, typed control-plane calls
 * (ctl_memslot_*, ctl_vm_quirk_*) out; the control plane makes each
 * accepted change durable before it returns, and the change is then
 * answered and announced to subscribers. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <json-c/printbuf.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"

static const char *const kind_names[] = {
	[VMM_BACKING_ANON] = "anon", [VMM_BACKING_MEMFD] = "memfd",
	[VMM_BACKING_HUGETLB] = "hugetlb", [VMM_BACKING_FILE] = "file",
};

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void add_hex(json_object *o, const char *k, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	add_str(o, k, buf);
}

static json_object *backing_json(const struct vmm_backing *b)
{
	json_object *o = json_object_new_object();

	add_str(o, "kind", b->kind <= VMM_BACKING_FILE ? kind_names[b->kind] : "unknown");
	if (b->path[0]) {
		add_str(o, "path", b->path);
		add_u64(o, "offset", b->offset);
	}
	if (b->kind == VMM_BACKING_HUGETLB)
		add_u64(o, "hugepage_size", b->hugepage_size ? b->hugepage_size : 2u << 20);
	json_object_object_add(o, "shared", json_object_new_boolean(b->shared));
	return o;
}

static json_object *flags_json(uint32_t flags)
{
	json_object *a = json_object_new_array();

	if (flags & VMM_SLOT_READONLY)
		json_object_array_add(a, json_object_new_string("readonly"));
	if (flags & VMM_SLOT_DIRTY_LOG)
		json_object_array_add(a, json_object_new_string("dirty_log"));
	return a;
}

json_object *rpc_memslot_json(const struct vmm_memslot_info *s)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "slot", json_object_new_int64(s->id));
	add_hex(o, "gpa", s->gpa);
	add_u64(o, "size", s->size);
	json_object_object_add(o, "flags", flags_json(s->slot_flags));
	json_object_object_add(o, "backing", backing_json(&s->backing));
	return o;
}

/* ---- effects and texts ------------------------------------------------ */

/* A memslot change's reply, event and journal record are written as JSON
 * text in one go while the numbers are at hand: a tree of json-c objects
 * for them cost more than the rest of the reply (a 4 KiB create spent
 * 2.5 us building the slot's objects and 2.3 us per serialization of
 * them).  The text is what rpc_memslot_json would serialize to (a unit
 * test compares the two); the object that carries it serializes to it
 * and is never read back. */

/* An empty printbuf with room for a slot's reply or event: json-c's start at 32
 * bytes, and growing one to a reply's 250 took three reallocs. */
static struct printbuf *slot_buf(void)
{
	struct printbuf *pb = printbuf_new();

	if (pb && printbuf_memset(pb, 0, 0, 512) >= 0)
		printbuf_reset(pb);
	return pb;
}

static void put_str(struct printbuf *pb, const char *s)
{
	printbuf_memappend(pb, s, (int)strlen(s));
}

static void put_u64(struct printbuf *pb, uint64_t v)
{
	char digits[20];

	printbuf_memappend(pb, digits, (int)rpc_u64_text(digits, v));
}

static void put_i64(struct printbuf *pb, int64_t v)
{
	if (v < 0)
		printbuf_memappend(pb, "-", 1);
	put_u64(pb, v < 0 ? -(uint64_t)v : (uint64_t)v);
}

/* key (with its punctuation, e.g. ",\"size\":") and the number v. */
static void put_key_u64(struct printbuf *pb, const char *key, uint64_t v)
{
	put_str(pb, key);
	put_u64(pb, v);
}

/* "0x..." in lower case, as add_hex writes it. */
static void put_hex(struct printbuf *pb, uint64_t v)
{
	char digits[16];
	int n = (int)sizeof(digits);

	do {
		digits[--n] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	printbuf_memappend(pb, "\"0x", 3);
	printbuf_memappend(pb, digits + n, (int)sizeof(digits) - n);
	printbuf_memappend(pb, "\"", 1);
}

/* s as a JSON string: escaped by json-c (file paths may hold anything). */
static void put_json_str(struct printbuf *pb, const char *s)
{
	json_object *o = json_object_new_string(s);

	put_str(pb, o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE) : "null");
	json_object_put(o);
}

/* "side":{"name":delta,...} over fx's counters of that side that moved. */
static void put_side(struct printbuf *pb, const struct vmm_effect *fx, const char *side)
{
	bool first = true;

	put_str(pb, ",\"");
	put_str(pb, side);
	put_str(pb, "\":{");
	for (unsigned i = 0; i < fx->n && i < VMM_EFFECT_MAX; i++) {
		const char *cs = fx->counters[i].side, *name = fx->counters[i].name;

		if (!fx->counters[i].delta || strcmp(cs, side))
			continue;
		/* Counter names are identifiers: nothing to escape. */
		put_str(pb, first ? "\"" : ",\"");
		put_str(pb, name);
		put_str(pb, "\":");
		put_i64(pb, fx->counters[i].delta);
		first = false;
	}
	put_str(pb, "}");
}

/* {duration_ns, kernel_ns, engine_ns, kernel: {name: delta}, engine:
 * {...}} with the counters that changed (an absent counter did not: most
 * of the 18 are 0 for most changes, and every client paid to parse them). */
static void put_effect(struct printbuf *pb, const struct vmm_effect *fx)
{
	put_key_u64(pb, "{\"duration_ns\":", fx->duration_ns);
	put_key_u64(pb, ",\"kernel_ns\":", fx->kernel_ns);
	put_key_u64(pb, ",\"engine_ns\":", fx->engine_ns);
	put_side(pb, fx, "kernel");
	put_side(pb, fx, "engine");
	put_str(pb, "}");
}

int rpc_memslot_text(struct printbuf *pb, const struct vmm_memslot_info *s)
{
	const struct vmm_backing *b = &s->backing;

	put_key_u64(pb, "{\"slot\":", s->id);
	put_str(pb, ",\"gpa\":");
	put_hex(pb, s->gpa);
	put_key_u64(pb, ",\"size\":", s->size);
	put_str(pb, ",\"flags\":[");
	if (s->slot_flags & VMM_SLOT_READONLY)
		put_str(pb, s->slot_flags & VMM_SLOT_DIRTY_LOG ? "\"readonly\"," : "\"readonly\"");
	if (s->slot_flags & VMM_SLOT_DIRTY_LOG)
		put_str(pb, "\"dirty_log\"");
	put_str(pb, "],\"backing\":{\"kind\":\"");
	put_str(pb, b->kind <= VMM_BACKING_FILE ? kind_names[b->kind] : "unknown");
	put_str(pb, "\"");
	if (b->path[0]) {
		put_str(pb, ",\"path\":");
		put_json_str(pb, b->path);
		put_key_u64(pb, ",\"offset\":", b->offset);
	}
	if (b->kind == VMM_BACKING_HUGETLB) {
		put_key_u64(pb, ",\"hugepage_size\":",
			    b->hugepage_size ? b->hugepage_size : 2u << 20);
	}
	put_str(pb, b->shared ? ",\"shared\":true}}" : ",\"shared\":false}}");
	return pb->bpos;
}

static int text_serialize(json_object *o, struct printbuf *pb, int level, int flags)
{
	const struct printbuf *t = json_object_get_userdata(o);

	(void)level;
	(void)flags;
	return printbuf_memappend(pb, t->buf, t->bpos);
}

static void text_free(json_object *o, void *userdata)
{
	(void)o;
	printbuf_free(userdata);
}

/* An object that serializes to t's text (taken over). */
static json_object *text_object(struct printbuf *t)
{
	json_object *o = t ? json_object_new_object() : NULL;

	if (!o) {
		if (t)
			printbuf_free(t);
		return NULL;
	}
	json_object_set_serializer(o, text_serialize, t, text_free);
	return o;
}

static json_object *effect_json(const struct vmm_effect *fx)
{
	struct printbuf *pb = slot_buf();

	if (pb)
		put_effect(pb, fx);
	return text_object(pb);
}

/* The memslot with that id; -ENOENT when there is none. */
static int slot_find(struct ctl_vm *vm, uint32_t id, struct vmm_memslot_info *out)
{
	return ctl_vm_memslot_get(vm, id, out);
}

/* An unknown slot as -32002 naming field. */
static int no_slot(struct rpc_call *call, struct ctl_vm *vm, uint32_t id,
		   const char *field)
{
	return rpc_call_error(call, RPC_ERR_NOT_FOUND, field,
			      "VM '%s' has no memslot %" PRIu32 " (memslot.list shows them)",
			      ctl_vm_name(vm), id);
}

/* ---- params ----------------------------------------------------------- */

/* A byte count member (integer or size string) of o; absent: dflt. */
static int size_at(struct rpc_call *call, json_object *o, const char *prefix,
		   const char *key, uint64_t dflt, uint64_t *out)
{
	char field[128];
	json_object *v;

	*out = dflt;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
		*out = json_object_get_uint64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string) &&
	    !rpc_parse_size(json_object_get_string(v), out))
		return 0;
	snprintf(field, sizeof(field), "%s%s", prefix, key);
	return rpc_call_error(call, RPC_INVALID_PARAMS, field,
			      "Invalid params: '%s' must be a byte count such as "
			      "4096, \"0x1000\", \"256M\" or \"1G\"", field);
}

static int kind_parse(const char *s, enum vmm_backing_kind *out)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (!strcmp(s, kind_names[i])) {
			*out = (enum vmm_backing_kind)i;
			return 0;
		}
	return -EINVAL;
}

/* backing {kind, path?, offset?, hugepage_size?, shared?}; prefix ends in
 * "backing.". */
static int backing_parse(struct rpc_call *call, json_object *b, const char *prefix,
			 struct vmm_backing *out)
{
	const char *path = rpc_param_str(b, "path", NULL);
	char field[128];

	memset(out, 0, sizeof(*out));
	snprintf(field, sizeof(field), "%skind", prefix);
	if (kind_parse(rpc_param_str(b, "kind", "anon"), &out->kind))
		return rpc_call_error(call, RPC_INVALID_PARAMS, field,
				      "Invalid params: '%s' must be anon, memfd, hugetlb or file", field);
	snprintf(field, sizeof(field), "%spath", prefix);
	if (out->kind == VMM_BACKING_FILE && !path)
		return rpc_call_error(call, RPC_INVALID_PARAMS, field,
				      "Invalid params: a file backing needs '%s'", field);
	if (path && out->kind != VMM_BACKING_FILE && out->kind != VMM_BACKING_MEMFD)
		return rpc_call_error(call, RPC_INVALID_PARAMS, field,
				      "Invalid params: '%s' is only for file and memfd backings", field);
	if (path && strlen(path) >= sizeof(out->path))
		return rpc_call_error(call, RPC_INVALID_PARAMS, field,
				      "Invalid params: '%s' is too long", field);
	if (path)
		snprintf(out->path, sizeof(out->path), "%s", path);
	/* A file backing is there to hold the guest's data: shared unless the
	 * caller asks for a private copy-on-write view. */
	out->shared = rpc_param_bool(b, "shared", out->kind == VMM_BACKING_FILE);
	if (size_at(call, b, prefix, "offset", 0, &out->offset) ||
	    size_at(call, b, prefix, "hugepage_size", 0, &out->hugepage_size))
		return -EINVAL;
	snprintf(field, sizeof(field), "%soffset", prefix);
	if (out->offset && !path)
		return rpc_call_error(call, RPC_INVALID_PARAMS, field,
				      "Invalid params: '%s' needs a path", field);
	return 0;
}

/* flags ["readonly", "dirty_log"] -> VMM_SLOT_*. */
static int flags_parse(struct rpc_call *call, json_object *o, const char *prefix,
		       uint32_t *out)
{
	json_object *a;
	char field[128];

	*out = 0;
	if (!json_object_object_get_ex(o, "flags", &a))
		return 0;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		const char *f = json_object_get_string(json_object_array_get_idx(a, i));

		if (f && !strcmp(f, "readonly")) {
			*out |= VMM_SLOT_READONLY;
		} else if (f && !strcmp(f, "dirty_log")) {
			*out |= VMM_SLOT_DIRTY_LOG;
		} else {
			snprintf(field, sizeof(field), "%sflags[%zu]", prefix, i);
			return rpc_call_error(call, RPC_INVALID_PARAMS, field,
					      "Invalid params: '%s' must be readonly or dirty_log", field);
		}
	}
	return 0;
}

int rpc_memslot_params_parse(struct rpc_call *call, json_object *o,
			     const char *prefix, struct vmm_memslot_params *p)
{
	char bprefix[64];
	json_object *b;

	memset(p, 0, sizeof(*p));
	p->id = json_object_object_get_ex(o, "slot", &b) ?
		(uint32_t)json_object_get_int64(b) : VMM_SLOT_ANY;
	if (size_at(call, o, prefix, "gpa", 0, &p->gpa) ||
	    size_at(call, o, prefix, "size", 0, &p->size) ||
	    flags_parse(call, o, prefix, &p->flags))
		return -EINVAL;
	if (!json_object_object_get_ex(o, "backing", &b)) {
		p->backing.kind = VMM_BACKING_ANON;
		return 0;
	}
	snprintf(bprefix, sizeof(bprefix), "%sbacking.", prefix);
	return backing_parse(call, b, bprefix, &p->backing);
}

/* vmm names backing members bare ("path"); the API nests them. */
static const char *field_name(const struct vmm_err *e, char *buf, size_t len)
{
	static const char *const nested[] = { "path", "offset", "hugepage_size", "shared", "kind" };

	if (!e->field)
		return NULL;
	if (!strcmp(e->field, "id"))
		return "slot";
	for (size_t i = 0; i < sizeof(nested) / sizeof(nested[0]); i++)
		if (!strcmp(e->field, nested[i])) {
			snprintf(buf, len, "backing.%s", e->field);
			return buf;
		}
	return e->field;
}

/* A vmm error of a memslot call; field names as in the API. */
static int slot_error(struct rpc_call *call, int r, const struct vmm_err *e)
{
	char buf[64];

	return rpc_vmm_error_field(call, r, e, field_name(e, buf, sizeof(buf)));
}

/* ---- notifications ----------------------------------------------------- */

struct later {
	struct rpc_server *srv;
	char topic[32];
	json_object *params;
};

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;

	(void)fd; (void)what;
	rpc_server_notify(l->srv, l->topic, l->params);
	free(l);
}

/* Replies are queued when the handler returns; the event must follow the
 * reply on the caller's own connection (DESIGN: response, then event). */
void rpc_notify_later(struct rpc_server *srv, const char *topic, json_object *params)
{
	struct timeval now = { 0, 0 };
	struct later *l = calloc(1, sizeof(*l));

	if (!l || !srv->base) {
		free(l);
		rpc_server_notify(srv, topic, params);
		return;
	}
	l->srv = srv;
	snprintf(l->topic, sizeof(l->topic), "%s", topic);
	l->params = params;
	if (event_base_once(srv->base, -1, EV_TIMEOUT, later_cb, l, &now)) {
		free(l);
		rpc_server_notify(srv, topic, params);
	}
}

/* {"vm":..,"slot":{..},"effect":{..}} for subscribers, if any (slot: the
 * slot's text). */
static void slot_event(struct rpc_call *call, const char *topic, struct ctl_vm *vm,
		       const struct printbuf *slot, const struct vmm_effect *fx)
{
	struct printbuf *pb;

	if (!rpc_server_topic_wanted(rpc_call_server(call), topic) || !(pb = slot_buf()))
		return;
	/* VM names are letters, digits, '.', '_' and '-': nothing to escape. */
	put_str(pb, "{\"vm\":\"");
	put_str(pb, ctl_vm_name(vm));
	put_str(pb, "\",\"slot\":");
	printbuf_memappend(pb, slot->buf, slot->bpos);
	put_str(pb, ",\"effect\":");
	put_effect(pb, fx);
	put_str(pb, "}");
	rpc_notify_later(rpc_call_server(call), topic, text_object(pb));
}

/* ---- memslot.* -------------------------------------------------------- */

/* The text of slot s, or NULL without memory. */
static struct printbuf *slot_text(const struct vmm_memslot_info *s)
{
	struct printbuf *pb = slot_buf();

	if (pb)
		rpc_memslot_text(pb, s);
	return pb;
}

/* The text of slot id as it is now, or NULL. */
static struct printbuf *slot_text_now(struct ctl_vm *vm, uint32_t id)
{
	struct vmm_memslot_info s;

	return slot_find(vm, id, &s) ? NULL : slot_text(&s);
}

/* Answers {slot's members, vm, effect[, old_gpa]} (slot: its text, taken
 * over) and announces the change on topic (when not NULL). */
static int slot_reply(struct rpc_call *call, struct ctl_vm *vm, uint32_t id,
		      struct printbuf *slot, const struct vmm_effect *fx, const char *topic,
		      const uint64_t *old_gpa, json_object **result)
{
	if (!slot)
		return no_slot(call, vm, id, "slot");
	if (topic)
		slot_event(call, topic, vm, slot, fx);
	slot->bpos--;	/* reopen the slot's object: drop its '}' */
	put_str(slot, ",\"vm\":\"");
	put_str(slot, ctl_vm_name(vm));
	put_str(slot, "\",\"effect\":");
	put_effect(slot, fx);
	if (old_gpa) {
		put_str(slot, ",\"old_gpa\":");
		put_hex(slot, *old_gpa);
	}
	put_str(slot, "}");
	*result = text_object(slot);
	return *result ? 0 : -ENOMEM;
}

/* The slot id param (validated by the schema). */
static uint32_t slot_param(json_object *params)
{
	return (uint32_t)rpc_param_int(params, "slot", 0);
}

static int memslot_create(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	struct vmm_memslot_params p;
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	uint32_t id = 0;
	int r;

	if (!vm || rpc_memslot_params_parse(call, params, "", &p))
		return -EINVAL;
	r = ctl_memslot_create(vm, &p, &id, &fx, &e);
	if (r)
		return slot_error(call, r, &e);
	return slot_reply(call, vm, id, slot_text_now(vm, id), &fx, "memslot.created", NULL,
			  result);
}

static int memslot_move(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	uint32_t id = slot_param(params);
	struct vmm_memslot_info old;
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	uint64_t gpa;
	int r;

	if (!vm || rpc_param_size(call, params, "gpa", 0, &gpa))
		return -EINVAL;
	if (slot_find(vm, id, &old))
		return no_slot(call, vm, id, "slot");
	r = ctl_memslot_move(vm, id, gpa, &fx, &e);
	if (r)
		return slot_error(call, r, &e);
	return slot_reply(call, vm, id, slot_text_now(vm, id), &fx, "memslot.moved", &old.gpa,
			  result);
}

static int memslot_delete(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	uint32_t id = slot_param(params);
	struct vmm_memslot_info old;
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	int r;

	if (!vm)
		return -EINVAL;
	if (slot_find(vm, id, &old))
		return no_slot(call, vm, id, "slot");
	r = ctl_memslot_delete(vm, id, &fx, &e);
	if (r)
		return slot_error(call, r, &e);
	return slot_reply(call, vm, id, slot_text(&old), &fx, "memslot.deleted", NULL, result);
}

static int memslot_list(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	struct vmm_memslot_info *s;
	json_object *a;
	size_t n;
	int r;

	if (!vm)
		return -EINVAL;
	r = ctl_vm_memslots_get(vm, &s, &n);
	if (r)
		return rpc_vmm_error(call, r, NULL);
	a = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, rpc_memslot_json(&s[i]));
	free(s);
	*result = json_object_new_object();
	add_str(*result, "vm", ctl_vm_name(vm));
	add_u64(*result, "count", n);
	json_object_object_add(*result, "memslots", a);
	return 0;
}

/* dirty_log on/off; readonly, when given, must not change (KVM cannot
 * change it in place: delete and create the slot instead). */
static int memslot_set_flags(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	uint32_t id = slot_param(params);
	struct vmm_memslot_info cur;
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	bool ro;
	int r;

	if (!vm)
		return -EINVAL;
	if (slot_find(vm, id, &cur))
		return no_slot(call, vm, id, "slot");
	ro = rpc_param_bool(params, "readonly", cur.slot_flags & VMM_SLOT_READONLY);
	if (ro != !!(cur.slot_flags & VMM_SLOT_READONLY))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "readonly",
				      "Invalid params: 'readonly' cannot change in place on memslot %"
				      PRIu32 "; delete the slot and create it again", id);
	r = ctl_memslot_set_flags(vm, id, rpc_param_bool(params, "dirty_log", false), &fx, &e);
	if (r)
		return slot_error(call, r, &e);
	return slot_reply(call, vm, id, slot_text_now(vm, id), &fx, NULL, NULL, result);
}

static int memslot_dirty_log(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	uint32_t id = slot_param(params);
	uint64_t *bm = NULL, npages = 0, ndirty = 0;
	struct vmm_err e = { 0 };
	char *b64;
	int r;

	if (!vm)
		return -EINVAL;
	r = ctl_memslot_dirty_log(vm, id, rpc_param_bool(params, "clear", false),
				  &bm, &npages, &ndirty, &e);
	if (r)
		return slot_error(call, r, &e);
	/* Little-endian words: bit i of the bitmap is bit i%8 of byte i/8. */
	b64 = rpc_base64_encode((const unsigned char *)bm, (npages + 7) / 8);
	free(bm);
	if (!b64)
		return -ENOMEM;
	*result = json_object_new_object();
	add_str(*result, "vm", ctl_vm_name(vm));
	json_object_object_add(*result, "slot", json_object_new_int64(id));
	add_u64(*result, "pages", npages);
	add_u64(*result, "count", ndirty);
	add_str(*result, "bitmap", b64);
	free(b64);
	return 0;
}

/* ---- memslot.transaction ------------------------------------------------ */

static const char *const op_names[] = {
	[VMM_OP_CREATE] = "create", [VMM_OP_MOVE] = "move", [VMM_OP_DELETE] = "delete",
};

/* A member an op of this kind must have, or an error naming it. */
static int op_need(struct rpc_call *call, json_object *o, size_t i, const char *key)
{
	char field[48];

	if (json_object_object_get_ex(o, key, NULL))
		return 0;
	snprintf(field, sizeof(field), "ops[%zu].%s", i, key);
	return rpc_call_error(call, RPC_INVALID_PARAMS, field,
			      "Invalid params: '%s' is required for a %s op", field,
			      rpc_param_str(o, "op", "?"));
}

/* ops[i] {op, slot?, gpa?, size?, flags?, backing?} -> *op. */
static int op_parse(struct rpc_call *call, json_object *o, size_t i,
		    struct vmm_memslot_op *op)
{
	const char *kind = rpc_param_str(o, "op", "");
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "ops[%zu].", i);
	memset(op, 0, sizeof(*op));
	if (!strcmp(kind, "create")) {
		op->kind = VMM_OP_CREATE;
		if (op_need(call, o, i, "gpa") || op_need(call, o, i, "size"))
			return -EINVAL;
		return rpc_memslot_params_parse(call, o, prefix, &op->create);
	}
	op->kind = strcmp(kind, "move") ? VMM_OP_DELETE : VMM_OP_MOVE;
	if (op_need(call, o, i, "slot") ||
	    (op->kind == VMM_OP_MOVE && op_need(call, o, i, "gpa")))
		return -EINVAL;
	op->id = (uint32_t)rpc_param_int(o, "slot", 0);
	return size_at(call, o, prefix, "gpa", 0, &op->gpa);
}

struct txn {
	size_t n;
	struct vmm_memslot_op ops[VMM_TXN_MAX];
	uint32_t ids[VMM_TXN_MAX];
	struct vmm_memslot_info old[VMM_TXN_MAX];	/* move, delete: before */
};

/* Parses every op and remembers what move/delete ops act on. */
static int txn_parse(struct rpc_call *call, struct ctl_vm *vm, json_object *ops,
		     struct txn *t)
{
	t->n = json_object_array_length(ops);
	if (t->n == 0 || t->n > VMM_TXN_MAX)
		return rpc_call_error(call, RPC_INVALID_PARAMS, "ops",
				      "Invalid params: 'ops' must have 1..%d entries", VMM_TXN_MAX);
	for (size_t i = 0; i < t->n; i++) {
		if (op_parse(call, json_object_array_get_idx(ops, i), i, &t->ops[i]))
			return -EINVAL;
		if (t->ops[i].kind != VMM_OP_CREATE)
			slot_find(vm, t->ops[i].id, &t->old[i]);
	}
	return 0;
}

/* The error of op failed, named "ops[failed].field", data.op = failed. */
static int txn_error(struct rpc_call *call, int r, const struct vmm_err *e,
		     size_t failed, size_t n)
{
	char buf[64], field[96];
	const char *f = field_name(e, buf, sizeof(buf));

	if (failed >= n)
		return slot_error(call, r, e);
	snprintf(field, sizeof(field), "ops[%zu]%s%s", failed, f ? "." : "", f ? f : "");
	rpc_vmm_error_field(call, r, e, field);
	rpc_call_error_data(call, "op", json_object_new_int64((int64_t)failed));
	return r;
}

/* One event per op; each carries the whole transaction's effect. */
static void txn_events(struct rpc_call *call, struct ctl_vm *vm, const struct txn *t,
		       const struct vmm_effect *fx)
{
	static const char *const topics[] = {
		[VMM_OP_CREATE] = "memslot.created", [VMM_OP_MOVE] = "memslot.moved",
		[VMM_OP_DELETE] = "memslot.deleted",
	};

	for (size_t i = 0; i < t->n; i++) {
		struct vmm_memslot_info s = t->old[i];
		json_object *p, *x;

		if (!rpc_server_topic_wanted(rpc_call_server(call), topics[t->ops[i].kind]))
			continue;
		p = json_object_new_object();
		x = json_object_new_object();
		if (t->ops[i].kind != VMM_OP_DELETE)
			slot_find(vm, t->ids[i], &s);
		add_str(p, "vm", ctl_vm_name(vm));
		json_object_object_add(p, "slot", rpc_memslot_json(&s));
		if (t->ops[i].kind == VMM_OP_MOVE)
			add_hex(p, "old_gpa", t->old[i].gpa);
		add_u64(x, "index", i);
		add_u64(x, "count", t->n);
		json_object_object_add(p, "transaction", x);
		json_object_object_add(p, "effect", effect_json(fx));
		rpc_notify_later(rpc_call_server(call), topics[t->ops[i].kind], p);
	}
}

static json_object *txn_result(struct ctl_vm *vm, const struct txn *t,
			       const struct vmm_effect *fx)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	for (size_t i = 0; i < t->n; i++) {
		json_object *x = json_object_new_object();

		add_str(x, "op", op_names[t->ops[i].kind]);
		json_object_object_add(x, "slot", json_object_new_int64(t->ids[i]));
		json_object_array_add(a, x);
	}
	add_str(o, "vm", ctl_vm_name(vm));
	json_object_object_add(o, "ops", a);
	json_object_object_add(o, "effect", effect_json(fx));
	return o;
}

static int memslot_transaction(struct rpc_call *call, json_object *params,
			       json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	size_t failed = SIZE_MAX;
	json_object *ops = NULL;
	struct txn *t;
	int r;

	if (!vm)
		return -EINVAL;
	json_object_object_get_ex(params, "ops", &ops);
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	r = txn_parse(call, vm, ops, t);
	if (!r) {
		r = ctl_memslot_transaction(vm, t->ops, t->n, t->ids, &failed, &fx, &e);
		if (r)
			txn_error(call, r, &e, e.file[0] ? SIZE_MAX : failed, t->n);
	}
	if (!r) {
		*result = txn_result(vm, t, &fx);
		txn_events(call, vm, t, &fx);
	}
	free(t);
	return r;
}

/* ---- vm.quirks.* -------------------------------------------------------- */

static json_object *quirk_json(const struct vmm_quirk_state *q)
{
	json_object *o = json_object_new_object();

	add_str(o, "name", q->name ? q->name : "?");
	json_object_object_add(o, "bit", json_object_new_int(q->bit ? __builtin_ctzll(q->bit) : 0));
	json_object_object_add(o, "supported", json_object_new_boolean(q->supported));
	json_object_object_add(o, "enabled", json_object_new_boolean(q->enabled));
	json_object_object_add(o, "locked", json_object_new_boolean(q->locked));
	json_object_object_add(o, "why", q->why[0] ? json_object_new_string(q->why) : NULL);
	return o;
}

/* {vm, state, quirks: [...]}: every quirk with supported/enabled/locked. */
static int quirks_reply(struct rpc_call *call, struct ctl_vm *vm, json_object **result)
{
	struct vmm_quirk_state *q = calloc(vmm_quirk_desc_count, sizeof(*q));
	struct ctl_vm_info in;
	json_object *a;
	int r;

	if (!q)
		return -ENOMEM;
	r = ctl_vm_quirks_get(vm, q, vmm_quirk_desc_count);
	if (r) {
		free(q);
		return rpc_vmm_error(call, r, NULL);
	}
	a = json_object_new_array();
	for (size_t i = 0; i < vmm_quirk_desc_count; i++)
		json_object_array_add(a, quirk_json(&q[i]));
	free(q);
	ctl_vm_info(vm, false, &in);
	*result = json_object_new_object();
	add_str(*result, "vm", ctl_vm_name(vm));
	add_str(*result, "state", vmm_vm_state_name(in.vm.state));
	json_object_object_add(*result, "quirks", a);
	return 0;
}

static int vm_quirks_get(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");

	return vm ? quirks_reply(call, vm, result) : -EINVAL;
}

static void quirk_event(struct rpc_call *call, struct ctl_vm *vm, const char *quirk,
			bool enabled, const struct vmm_effect *fx)
{
	json_object *p = json_object_new_object();

	add_str(p, "vm", ctl_vm_name(vm));
	add_str(p, "quirk", quirk);
	json_object_object_add(p, "enabled", json_object_new_boolean(enabled));
	json_object_object_add(p, "effect", effect_json(fx));
	rpc_notify_later(rpc_call_server(call), "vm.quirk_changed", p);
}

static int vm_quirks_set(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	const char *quirk = rpc_param_str(params, "quirk", "");
	bool enabled = rpc_param_bool(params, "enabled", true);
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	int r;

	if (!vm)
		return -EINVAL;
	r = ctl_vm_quirk_set(vm, quirk, enabled, &fx, &e);
	if (r)
		return rpc_vmm_error(call, r, &e);
	r = quirks_reply(call, vm, result);
	if (!r) {
		json_object_object_add(*result, "effect", effect_json(&fx));
		quirk_event(call, vm, quirk, enabled, &fx);
	}
	return r;
}

static const struct rpc_method memslot_methods[] = {
	{ "memslot.create",	 memslot_create },
	{ "memslot.move",	 memslot_move },
	{ "memslot.delete",	 memslot_delete },
	{ "memslot.list",	 memslot_list },
	{ "memslot.set_flags",	 memslot_set_flags },
	{ "memslot.dirty_log",	 memslot_dirty_log },
	{ "memslot.transaction", memslot_transaction },
	{ "vm.quirks.get",	 vm_quirks_get },
	{ "vm.quirks.set",	 vm_quirks_set },
};

int rpc_methods_memslot_register(struct rpc_server *srv)
{
	return rpc_server_register(srv, memslot_methods,
				   sizeof(memslot_methods) / sizeof(memslot_methods[0]));
}
