/* memslot.* methods (but memslot.transaction, in methods_txn.c): JSON in,
 * typed control-plane calls (ctl_memslot_*) out; the control plane makes
 * each accepted change durable before it returns, and the change is then
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

/* The memslot with that id; -ENOENT when there is none. */
int rpc_slot_find(struct ctl_vm *vm, uint32_t id, struct vmm_memslot_info *out)
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
int rpc_size_at(struct rpc_call *call, json_object *o, const char *prefix,
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

static const char *const kind_names[] = {
	[VMM_BACKING_ANON] = "anon", [VMM_BACKING_MEMFD] = "memfd",
	[VMM_BACKING_HUGETLB] = "hugetlb", [VMM_BACKING_FILE] = "file",
};

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
	if (rpc_size_at(call, b, prefix, "offset", 0, &out->offset) ||
	    rpc_size_at(call, b, prefix, "hugepage_size", 0, &out->hugepage_size))
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
	if (rpc_size_at(call, o, prefix, "gpa", 0, &p->gpa) ||
	    rpc_size_at(call, o, prefix, "size", 0, &p->size) ||
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
const char *rpc_slot_field(const struct vmm_err *e, char *buf, size_t len)
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
int rpc_slot_error(struct rpc_call *call, int r, const struct vmm_err *e)
{
	char buf[64];

	return rpc_vmm_error_field(call, r, e, rpc_slot_field(e, buf, sizeof(buf)));
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

	if (!rpc_server_topic_wanted(rpc_call_server(call), topic) || !(pb = rpc_text_buf()))
		return;
	/* VM names are letters, digits, '.', '_' and '-': nothing to escape. */
	rpc_put_str(pb, "{\"vm\":\"");
	rpc_put_str(pb, ctl_vm_name(vm));
	rpc_put_str(pb, "\",\"slot\":");
	printbuf_memappend(pb, slot->buf, slot->bpos);
	rpc_put_str(pb, ",\"effect\":");
	rpc_put_effect(pb, fx);
	rpc_put_str(pb, "}");
	rpc_notify_later(rpc_call_server(call), topic, rpc_text_object(pb));
}

/* ---- memslot.* -------------------------------------------------------- */

/* The text of slot s, or NULL without memory. */
static struct printbuf *slot_text(const struct vmm_memslot_info *s)
{
	struct printbuf *pb = rpc_text_buf();

	if (pb)
		rpc_memslot_text(pb, s);
	return pb;
}

/* The text of slot id as it is now, or NULL. */
static struct printbuf *slot_text_now(struct ctl_vm *vm, uint32_t id)
{
	struct vmm_memslot_info s;

	return rpc_slot_find(vm, id, &s) ? NULL : slot_text(&s);
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
	rpc_put_str(slot, ",\"vm\":\"");
	rpc_put_str(slot, ctl_vm_name(vm));
	rpc_put_str(slot, "\",\"effect\":");
	rpc_put_effect(slot, fx);
	if (old_gpa) {
		rpc_put_str(slot, ",\"old_gpa\":");
		rpc_put_hex(slot, *old_gpa);
	}
	rpc_put_str(slot, "}");
	*result = rpc_text_object(slot);
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
		return rpc_slot_error(call, r, &e);
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
	if (rpc_slot_find(vm, id, &old))
		return no_slot(call, vm, id, "slot");
	r = ctl_memslot_move(vm, id, gpa, &fx, &e);
	if (r)
		return rpc_slot_error(call, r, &e);
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
	if (rpc_slot_find(vm, id, &old))
		return no_slot(call, vm, id, "slot");
	r = ctl_memslot_delete(vm, id, &fx, &e);
	if (r)
		return rpc_slot_error(call, r, &e);
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
	rpc_add_str(*result, "vm", ctl_vm_name(vm));
	rpc_add_u64(*result, "count", n);
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
	if (rpc_slot_find(vm, id, &cur))
		return no_slot(call, vm, id, "slot");
	ro = rpc_param_bool(params, "readonly", cur.slot_flags & VMM_SLOT_READONLY);
	if (ro != !!(cur.slot_flags & VMM_SLOT_READONLY))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "readonly",
				      "Invalid params: 'readonly' cannot change in place on memslot %"
				      PRIu32 "; delete the slot and create it again", id);
	r = ctl_memslot_set_flags(vm, id, rpc_param_bool(params, "dirty_log", false), &fx, &e);
	if (r)
		return rpc_slot_error(call, r, &e);
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
		return rpc_slot_error(call, r, &e);
	/* Little-endian words: bit i of the bitmap is bit i%8 of byte i/8. */
	b64 = rpc_base64_encode((const unsigned char *)bm, (npages + 7) / 8);
	free(bm);
	if (!b64)
		return -ENOMEM;
	*result = json_object_new_object();
	rpc_add_str(*result, "vm", ctl_vm_name(vm));
	json_object_object_add(*result, "slot", json_object_new_int64(id));
	rpc_add_u64(*result, "pages", npages);
	rpc_add_u64(*result, "count", ndirty);
	rpc_add_str(*result, "bitmap", b64);
	free(b64);
	return 0;
}

static const struct rpc_method memslot_methods[] = {
	{ "memslot.create",	 memslot_create },
	{ "memslot.move",	 memslot_move },
	{ "memslot.delete",	 memslot_delete },
	{ "memslot.list",	 memslot_list },
	{ "memslot.set_flags",	 memslot_set_flags },
	{ "memslot.dirty_log",	 memslot_dirty_log },
};

int rpc_methods_memslot_register(struct rpc_server *srv)
{
	return rpc_server_register(srv, memslot_methods,
				   sizeof(memslot_methods) / sizeof(memslot_methods[0]));
}
