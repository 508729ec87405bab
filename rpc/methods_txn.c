/* memslot.transaction: up to 64 ops as one step (ctl_memslot_transaction),
 * answered with every op's slot and one event per op. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"

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
	return rpc_size_at(call, o, prefix, "gpa", 0, &op->gpa);
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
			rpc_slot_find(vm, t->ops[i].id, &t->old[i]);
	}
	return 0;
}

/* The error of op failed, named "ops[failed].field", data.op = failed. */
static int txn_error(struct rpc_call *call, int r, const struct vmm_err *e,
		     size_t failed, size_t n)
{
	char buf[64], field[96];
	const char *f = rpc_slot_field(e, buf, sizeof(buf));

	if (failed >= n)
		return rpc_slot_error(call, r, e);
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
			rpc_slot_find(vm, t->ids[i], &s);
		rpc_add_str(p, "vm", ctl_vm_name(vm));
		json_object_object_add(p, "slot", rpc_memslot_json(&s));
		if (t->ops[i].kind == VMM_OP_MOVE)
			rpc_add_hex(p, "old_gpa", t->old[i].gpa);
		rpc_add_u64(x, "index", i);
		rpc_add_u64(x, "count", t->n);
		json_object_object_add(p, "transaction", x);
		json_object_object_add(p, "effect", rpc_effect_json(fx));
		rpc_notify_later(rpc_call_server(call), topics[t->ops[i].kind], p);
	}
}

static json_object *txn_result(struct ctl_vm *vm, const struct txn *t,
			       const struct vmm_effect *fx)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	for (size_t i = 0; i < t->n; i++) {
		json_object *x = json_object_new_object();

		rpc_add_str(x, "op", op_names[t->ops[i].kind]);
		json_object_object_add(x, "slot", json_object_new_int64(t->ids[i]));
		json_object_array_add(a, x);
	}
	rpc_add_str(o, "vm", ctl_vm_name(vm));
	json_object_object_add(o, "ops", a);
	json_object_object_add(o, "effect", rpc_effect_json(fx));
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

static const struct rpc_method txn_methods[] = {
	{ "memslot.transaction", memslot_transaction },
};

int rpc_methods_txn_register(struct rpc_server *srv)
{
	return rpc_server_register(srv, txn_methods, 1);
}
