/* memslot.apply: a declared layout.  slots[] (memslot.create's params,
 * each) becomes the control plane's desired layout, ctl_memslot_apply
 * makes the difference as one transaction, and the reply says what
 * changed; subscribers get one event per slot created, moved or deleted,
 * as memslot.transaction sends them.  The rules are in ctl/apply.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"

/* slots[i] -> *w.  The backing's path stays json-c's string, alive as
 * long as params. */
static int want_parse(struct rpc_call *call, json_object *o, size_t i, struct ctl_slot_want *w)
{
	struct vmm_memslot_params p;
	json_object *b, *path;
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "slots[%zu].", i);
	if (rpc_memslot_params_parse(call, o, prefix, &p))
		return -EINVAL;
	*w = (struct ctl_slot_want){
		.id = p.id, .flags = p.flags, .gpa = p.gpa, .size = p.size,
		.kind = p.backing.kind, .shared = p.backing.shared,
		.offset = p.backing.offset, .hugepage_size = p.backing.hugepage_size,
	};
	if (p.backing.path[0] && json_object_object_get_ex(o, "backing", &b) &&
	    json_object_object_get_ex(b, "path", &path))
		w->path = json_object_get_string(path);
	return 0;
}

static int wants_parse(struct rpc_call *call, json_object *slots, struct ctl_slot_want **out,
		       size_t *n)
{
	struct ctl_slot_want *w;

	*n = json_object_array_length(slots);
	w = calloc(*n ? *n : 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++)
		if (want_parse(call, json_object_array_get_idx(slots, i), i, &w[i])) {
			free(w);
			return -EINVAL;
		}
	*out = w;
	return 0;
}

/* The error of slots[failed], named "slots[N].member" with data.index N;
 * of the list as a whole (failed SIZE_MAX), as the control plane names it. */
static int apply_error(struct rpc_call *call, int r, const struct vmm_err *e, size_t failed)
{
	char buf[64], field[96];
	const char *f = rpc_slot_field(e, buf, sizeof(buf));

	if (failed == SIZE_MAX || e->file[0])
		return rpc_slot_error(call, r, e);
	snprintf(field, sizeof(field), "slots[%zu]%s%s", failed, f ? "." : "", f ? f : "");
	rpc_vmm_error_field(call, r, e, field);
	rpc_call_error_data(call, "index", json_object_new_int64((int64_t)failed));
	return r;
}

/* ---- the reply ---------------------------------------------------------- */

static json_object *slot_entry(const struct vmm_memslot_info *s, size_t index)
{
	json_object *o = rpc_memslot_json(s);

	json_object_object_add(o, "index", json_object_new_int64((int64_t)index));
	return o;
}

static json_object *change_json(const struct ctl_apply_change *c)
{
	json_object *o;

	switch (c->kind) {
	case CTL_APPLY_MOVE:
		o = slot_entry(&c->slot, c->index);
		rpc_add_hex(o, "old_gpa", c->old.gpa);
		return o;
	case CTL_APPLY_REPLACE:
		o = slot_entry(&c->slot, c->index);
		json_object_object_add(o, "old", rpc_memslot_json(&c->old));
		return o;
	case CTL_APPLY_DELETE:
		return rpc_memslot_json(&c->slot);
	case CTL_APPLY_FLAGS:
		o = json_object_new_object();
		json_object_object_add(o, "index", json_object_new_int64((int64_t)c->index));
		json_object_object_add(o, "slot", json_object_new_int64(c->slot.id));
		json_object_object_add(o, "dirty_log", json_object_new_boolean(
					       !!(c->slot.slot_flags & VMM_SLOT_DIRTY_LOG)));
		return o;
	case CTL_APPLY_CREATE:
		break;
	}
	return slot_entry(&c->slot, c->index);
}

static json_object *apply_result(struct ctl_vm *vm, const struct ctl_apply_result *res,
				 bool dry_run)
{
	static const char *const lists[] = {
		[CTL_APPLY_CREATE] = "created", [CTL_APPLY_MOVE] = "moved",
		[CTL_APPLY_REPLACE] = "replaced", [CTL_APPLY_DELETE] = "deleted",
		[CTL_APPLY_FLAGS] = "flags",
	};
	json_object *o = json_object_new_object(), *a[5];

	rpc_add_str(o, "vm", ctl_vm_name(vm));
	json_object_object_add(o, "dry_run", json_object_new_boolean(dry_run));
	for (size_t k = 0; k < 5; k++)
		a[k] = json_object_new_array();
	for (size_t i = 0; i < res->n; i++)
		json_object_array_add(a[res->changes[i].kind], change_json(&res->changes[i]));
	for (size_t k = 0; k < 5; k++)
		json_object_object_add(o, lists[k], a[k]);
	rpc_add_u64(o, "unchanged", res->unchanged);
	rpc_add_u64(o, "ops", res->ops);
	json_object_object_add(o, "effect", rpc_effect_json(&res->fx));
	return o;
}

/* ---- events ------------------------------------------------------------- */

struct apply_ev {
	struct rpc_call *call;
	struct ctl_vm *vm;
	const struct vmm_effect *fx;
	size_t index, count;
};

/* One notification, {vm, slot, old_gpa?, transaction: {index, count},
 * effect}, each with the whole apply's effect. */
static void apply_event(struct apply_ev *ev, const char *topic,
			const struct vmm_memslot_info *s, const uint64_t *old_gpa)
{
	struct rpc_server *srv = rpc_call_server(ev->call);
	json_object *p, *x;

	if (!rpc_server_topic_wanted(srv, topic)) {
		ev->index++;
		return;
	}
	p = json_object_new_object();
	x = json_object_new_object();
	rpc_add_str(p, "vm", ctl_vm_name(ev->vm));
	json_object_object_add(p, "slot", rpc_memslot_json(s));
	if (old_gpa)
		rpc_add_hex(p, "old_gpa", *old_gpa);
	rpc_add_u64(x, "index", ev->index++);
	rpc_add_u64(x, "count", ev->count);
	json_object_object_add(p, "transaction", x);
	json_object_object_add(p, "effect", rpc_effect_json(ev->fx));
	rpc_notify_later(srv, topic, p);
}

/* A replaced slot is announced deleted, then created. */
static void apply_events(struct rpc_call *call, struct ctl_vm *vm,
			 const struct ctl_apply_result *res)
{
	struct apply_ev ev = { call, vm, &res->fx, 0, 0 };

	for (size_t i = 0; i < res->n; i++)
		ev.count += res->changes[i].kind == CTL_APPLY_REPLACE ? 2 :
			    res->changes[i].kind != CTL_APPLY_FLAGS;
	for (size_t i = 0; i < res->n; i++) {
		const struct ctl_apply_change *c = &res->changes[i];

		if (c->kind == CTL_APPLY_REPLACE)
			apply_event(&ev, "memslot.deleted", &c->old, NULL);
		if (c->kind == CTL_APPLY_CREATE || c->kind == CTL_APPLY_REPLACE)
			apply_event(&ev, "memslot.created", &c->slot, NULL);
		else if (c->kind == CTL_APPLY_MOVE)
			apply_event(&ev, "memslot.moved", &c->slot, &c->old.gpa);
		else if (c->kind == CTL_APPLY_DELETE)
			apply_event(&ev, "memslot.deleted", &c->slot, NULL);
	}
}

static int memslot_apply(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = rpc_vm_lookup(call, params, "vm");
	bool dry_run = rpc_param_bool(params, "dry_run", false);
	struct ctl_apply_result res;
	struct ctl_slot_want *w = NULL;
	struct vmm_err e = { 0 };
	size_t n = 0, failed = SIZE_MAX;
	json_object *slots = NULL;
	int r;

	if (!vm)
		return -EINVAL;
	json_object_object_get_ex(params, "slots", &slots);
	r = wants_parse(call, slots, &w, &n);
	if (r)
		return r;
	r = ctl_memslot_apply(vm, w, n, dry_run, &res, &failed, &e);
	if (r) {
		apply_error(call, r, &e, failed);
	} else {
		*result = apply_result(vm, &res, dry_run);
		if (!dry_run)
			apply_events(call, vm, &res);
		ctl_apply_result_fini(&res);
	}
	free(w);
	return r;
}

static const struct rpc_method apply_methods[] = {
	{ "memslot.apply", memslot_apply },
};

int rpc_methods_apply_register(struct rpc_server *srv)
{
	return rpc_server_register(srv, apply_methods, 1);
}
