/* vm.quirks.get and vm.quirks.set: every quirk of a VM with its state,
 * and a change of one (ctl_vm_quirk_set), answered with its effect. */
#include <errno.h>
#include <stdlib.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"

static json_object *quirk_json(const struct vmm_quirk_state *q)
{
	json_object *o = json_object_new_object();

	rpc_add_str(o, "name", q->name ? q->name : "?");
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
	rpc_add_str(*result, "vm", ctl_vm_name(vm));
	rpc_add_str(*result, "state", vmm_vm_state_name(in.vm.state));
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

	rpc_add_str(p, "vm", ctl_vm_name(vm));
	rpc_add_str(p, "quirk", quirk);
	json_object_object_add(p, "enabled", json_object_new_boolean(enabled));
	json_object_object_add(p, "effect", rpc_effect_json(fx));
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
		json_object_object_add(*result, "effect", rpc_effect_json(&fx));
		quirk_event(call, vm, quirk, enabled, &fx);
	}
	return r;
}

static const struct rpc_method quirk_methods[] = {
	{ "vm.quirks.get",	 vm_quirks_get },
	{ "vm.quirks.set",	 vm_quirks_set },
};

int rpc_methods_quirks_register(struct rpc_server *srv)
{
	return rpc_server_register(srv, quirk_methods,
				   sizeof(quirk_methods) / sizeof(quirk_methods[0]));
}
