/* vm.* methods: JSON in, typed control-plane (ctl_*) calls, JSON out. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"

#define CONSOLE_TAIL_MAX	(64 * 1024)

/* The VM named by params.name, or an error naming it. */
static struct ctl_vm *vm_lookup(struct rpc_call *call, json_object *params)
{
	return rpc_vm_lookup(call, params, "name");
}

/* The names of the quirks enabled in mask on, as a JSON array (vm.info
 * and the state files). */
json_object *rpc_quirks_json(uint64_t on)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < vmm_quirk_desc_count; i++)
		if (on & vmm_quirk_descs[i].bit)
			json_object_array_add(a, json_object_new_string(vmm_quirk_descs[i].name));
	return a;
}

/* Every memslot of the VM, as memslot.list shows them. */
static json_object *memslots_json(struct ctl_vm *vm)
{
	json_object *a = json_object_new_array();
	struct vmm_memslot_info *s;
	size_t n;

	if (ctl_vm_memslots_get(vm, &s, &n))
		return a;
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, rpc_memslot_json(&s[i]));
	free(s);
	return a;
}

/* Which process runs the VM: its pid, build, start (CLOCK_REALTIME s)
 * and how many slotds it has served (adopted: more than one). */
static json_object *runner_json(const struct ctl_vm_info *ci)
{
	json_object *o;

	if (!ci->runner_alive)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "pid", json_object_new_int64(ci->runner_pid));
	rpc_add_str(o, "build", ci->runner_build);
	json_object_object_add(o, "started", json_object_new_double(ci->runner_started_ns / 1e9));
	rpc_add_u64(o, "controllers", ci->runner_controllers);
	return o;
}

static json_object *info_json(struct ctl_vm *vm, bool full)
{
	json_object *o = json_object_new_object();
	struct ctl_vm_info ci;
	const struct vmm_vm_info *in = &ci.vm;

	ctl_vm_info(vm, full, &ci);
	rpc_add_str(o, "name", in->name);
	rpc_add_str(o, "state", vmm_vm_state_name(in->state));
	rpc_add_str(o, "type", vmm_vm_type_name(in->type));
	json_object_object_add(o, "vcpus", json_object_new_int((int)in->vcpus));
	rpc_add_u64(o, "memory", in->memory_bytes);
	json_object_object_add(o, "uptime_s", json_object_new_double(in->uptime_ns / 1e9));
	if (!full)
		return o;
	rpc_add_str(o, "kvm_vm_type", vmm_kvm_vm_type_name(in->kvm_vm_type));
	json_object_object_add(o, "rules_by_slotd", json_object_new_boolean(in->rules_by_slotd));
	rpc_add_str(o, "payload", in->payload);
	json_object_object_add(o, "memslots", memslots_json(vm));
	json_object_object_add(o, "quirks_enabled", rpc_quirks_json(ci.quirks_enabled));
	json_object_object_add(o, "exit_status", in->has_exit_status ?
			       json_object_new_int64(in->exit_status) : NULL);
	json_object_object_add(o, "crash_reason", in->crash_reason[0] ?
			       json_object_new_string(in->crash_reason) : NULL);
	rpc_add_u64(o, "exits_total", in->exits_total);
	rpc_add_u64(o, "exits_io", in->exits_io);
	rpc_add_u64(o, "exits_mmio", in->exits_mmio);
	rpc_add_u64(o, "console_bytes", in->console_bytes);
	rpc_add_u64(o, "reports", in->reports);
	json_object_object_add(o, "restored", json_object_new_boolean(ci.restored));
	json_object_object_add(o, "adopted", json_object_new_boolean(ci.adopted));
	json_object_object_add(o, "runner", runner_json(&ci));
	return o;
}

static int vm_create(struct rpc_call *call, json_object *params, json_object **result)
{
	struct vmm_vm_params p = {
		.name = rpc_param_str(params, "name", ""),
		.vcpus = (unsigned)rpc_param_int(params, "vcpus", 1),
		.payload = rpc_param_str(params, "payload", "builtin:hello"),
		.mmio_policy = strcmp(rpc_param_str(params, "mmio", "ignore"), "crash") ?
			       VMM_MMIO_IGNORE : VMM_MMIO_CRASH,
		.ram_backing = strcmp(rpc_param_str(params, "ram", "memfd"), "anon") ?
			       VMM_RAM_MEMFD : VMM_RAM_ANON,
	};
	struct vmm_err e = { 0 };
	struct ctl_vm *vm;
	json_object *args;
	int r;

	if (rpc_kvm_check(call))
		return -ENODEV;
	if (rpc_param_size(call, params, "memory", 64ull << 20, &p.memory_bytes))
		return -EINVAL;
	vmm_vm_type_parse(rpc_param_str(params, "type", "default"), &p.type);
	if (json_object_object_get_ex(params, "args", &args))
		for (size_t i = 0; i < json_object_array_length(args) && i < VMM_NARGS; i++)
			p.args[i] = json_object_get_uint64(json_object_array_get_idx(args, i));
	/* Durable before it returns: the client never sees a VM that a
	 * restart would lose. */
	r = ctl_vm_create(rpc_call_ctl(call), &p, &vm, &e);
	if (r)
		return rpc_vmm_error(call, r, &e);
	*result = info_json(vm, true);
	return 0;
}

typedef int (*vm_action_fn)(struct ctl_vm *vm, struct vmm_err *err);

/* Runs a lifecycle action and answers with the VM's new info. */
static int vm_action(struct rpc_call *call, json_object *params,
		     json_object **result, vm_action_fn fn)
{
	struct ctl_vm *vm = vm_lookup(call, params);
	struct vmm_err e = { 0 };
	int r;

	if (!vm)
		return -EINVAL;
	r = fn(vm, &e);
	if (r)
		return rpc_vmm_error(call, r, &e);
	*result = info_json(vm, false);
	return 0;
}

static int vm_start(struct rpc_call *c, json_object *p, json_object **r)
{
	return vm_action(c, p, r, ctl_vm_start);
}

static int vm_pause(struct rpc_call *c, json_object *p, json_object **r)
{
	return vm_action(c, p, r, ctl_vm_pause);
}

static int vm_resume(struct rpc_call *c, json_object *p, json_object **r)
{
	return vm_action(c, p, r, ctl_vm_resume);
}

static int vm_stop(struct rpc_call *c, json_object *p, json_object **r)
{
	return vm_action(c, p, r, ctl_vm_stop);
}

static int vm_destroy(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = vm_lookup(call, params);
	struct vmm_err e = { 0 };
	char name[VMM_NAME_MAX];
	int r;

	if (!vm)
		return -EINVAL;
	snprintf(name, sizeof(name), "%s", ctl_vm_name(vm));
	r = ctl_vm_destroy(vm, &e);
	if (r)
		return rpc_vmm_error(call, r, &e);
	*result = json_object_new_object();
	rpc_add_str(*result, "name", name);
	rpc_add_str(*result, "state", "destroyed");
	return 0;
}

static int list_one(struct ctl_vm *vm, void *arg)
{
	json_object_array_add(arg, info_json(vm, false));
	return 0;
}

static int vm_list(struct rpc_call *call, json_object *params, json_object **result)
{
	json_object *a = json_object_new_array();

	(void)params;
	if (ctl_caps(rpc_call_ctl(call))->kvm_available)
		ctl_vm_foreach(rpc_call_ctl(call), list_one, a);
	*result = json_object_new_object();
	json_object_object_add(*result, "vms", a);
	return 0;
}

static int vm_info(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = vm_lookup(call, params);

	if (!vm)
		return -EINVAL;
	*result = info_json(vm, true);
	return 0;
}

/* Console bytes as text: non-ASCII and control bytes other than \n, \r
 * and \t become '?', so the reply is always valid JSON. */
static int vm_console(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = vm_lookup(call, params);
	size_t tail = (size_t)rpc_param_int(params, "tail", CONSOLE_TAIL_MAX), n = 0;
	uint64_t total = 0;
	char *buf;

	if (!vm)
		return -EINVAL;
	if (tail > CONSOLE_TAIL_MAX)
		tail = CONSOLE_TAIL_MAX;
	buf = malloc(tail + 1);
	if (!buf)
		return -ENOMEM;
	ctl_vm_console_read(vm, tail, buf, tail, &n, &total);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] >= 0x7f ||
		    ((unsigned char)buf[i] < 0x20 && !strchr("\n\r\t", buf[i])))
			buf[i] = '?';
	*result = json_object_new_object();
	rpc_add_str(*result, "name", ctl_vm_name(vm));
	json_object_object_add(*result, "data", json_object_new_string_len(buf, (int)n));
	rpc_add_u64(*result, "total_bytes", total);
	free(buf);
	return 0;
}

/* Groups stats as {source: {"vm"|"vcpuN": {name: value}}}. */
static int stat_add(const struct vmm_stat *st, void *arg)
{
	json_object *root = arg, *src, *grp;
	char key[16];

	if (!json_object_object_get_ex(root, st->source, &src)) {
		src = json_object_new_object();
		json_object_object_add(root, st->source, src);
	}
	if (st->vcpu < 0)
		snprintf(key, sizeof(key), "vm");
	else
		snprintf(key, sizeof(key), "vcpu%d", st->vcpu);
	if (!json_object_object_get_ex(src, key, &grp)) {
		grp = json_object_new_object();
		json_object_object_add(src, key, grp);
	}
	rpc_add_u64(grp, st->name, st->value);
	return 0;
}

static int vm_stats(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = vm_lookup(call, params);
	struct vmm_err e = { 0 };
	json_object *o;
	int r;

	if (!vm)
		return -EINVAL;
	o = json_object_new_object();
	rpc_add_str(o, "name", ctl_vm_name(vm));
	r = ctl_vm_stats_foreach(vm, stat_add, o, &e);
	if (r) {
		json_object_put(o);
		return rpc_vmm_error(call, r, &e);
	}
	*result = o;
	return 0;
}

#define REPORTS_MAX 4096

static const char *report_tag_name(uint32_t tag)
{
	switch (tag) {
	case 1: return "pass_ns";
	case 2: return "pass_pages";
	case 3: return "range_gpa";
	case 4: return "range_bytes";
	case 5: return "range_errors";
	case 6: return "dma_step";
	}
	return "user";
}

/* Report records (memtouch pass times, memcheck results, ...) from seq. */
static int vm_reports(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = vm_lookup(call, params);
	uint64_t from = (uint64_t)rpc_param_int(params, "from", 0);
	struct vmm_err e = { 0 };
	struct vmm_report *recs;
	json_object *a;
	size_t n = 0;
	int r;

	if (!vm)
		return -EINVAL;
	recs = calloc(REPORTS_MAX, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	r = ctl_vm_reports_read(vm, from, recs, REPORTS_MAX, &n, &e);
	if (r) {
		free(recs);
		return rpc_vmm_error(call, r, &e);
	}
	a = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();

		rpc_add_u64(o, "seq", recs[i].seq);
		rpc_add_u64(o, "host_ns", recs[i].host_ns);
		json_object_object_add(o, "vcpu", json_object_new_int((int)recs[i].vcpu));
		rpc_add_str(o, "tag", report_tag_name(recs[i].tag));
		rpc_add_u64(o, "tag_id", recs[i].tag);
		rpc_add_u64(o, "value", recs[i].value);
		json_object_array_add(a, o);
	}
	*result = json_object_new_object();
	rpc_add_u64(*result, "next", n ? recs[n - 1].seq + 1 : from);
	json_object_object_add(*result, "reports", a);
	free(recs);
	return 0;
}

static int gpa_param(struct rpc_call *call, json_object *params, uint64_t *gpa)
{
	return rpc_param_size(call, params, "gpa", 0, gpa);
}

static int vm_memory_read(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = vm_lookup(call, params);
	struct vmm_err e = { 0 };
	uint64_t gpa, len;
	unsigned char *buf;
	char *b64;
	int r;

	if (!vm || gpa_param(call, params, &gpa) ||
	    rpc_param_size(call, params, "length", 0, &len))
		return -EINVAL;
	if (len == 0 || len > VMM_MEMORY_IO_MAX)
		return rpc_call_error(call, RPC_INVALID_PARAMS, "length",
				      "Invalid params: 'length' must be 1..%u bytes", VMM_MEMORY_IO_MAX);
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = ctl_vm_memory_read(vm, gpa, buf, len, &e);
	if (r) {
		free(buf);
		return rpc_vmm_error(call, r, &e);
	}
	b64 = rpc_base64_encode(buf, len);
	free(buf);
	*result = json_object_new_object();
	rpc_add_u64(*result, "length", len);
	rpc_add_str(*result, "data", b64 ? b64 : "");
	free(b64);
	return 0;
}

static int vm_memory_write(struct rpc_call *call, json_object *params, json_object **result)
{
	struct ctl_vm *vm = vm_lookup(call, params);
	struct vmm_err e = { 0 };
	unsigned char *buf;
	uint64_t gpa;
	size_t len;
	int r;

	if (!vm || gpa_param(call, params, &gpa))
		return -EINVAL;
	if (rpc_base64_decode(rpc_param_str(params, "data", ""), &buf, &len))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "data",
				      "Invalid params: 'data' must be base64 (RFC 4648)");
	r = len ? ctl_vm_memory_write(vm, gpa, buf, len, &e) : -EINVAL;
	free(buf);
	if (r == -EINVAL && !len)
		return rpc_call_error(call, RPC_INVALID_PARAMS, "data",
				      "Invalid params: 'data' is empty");
	if (r)
		return rpc_vmm_error(call, r, &e);
	*result = json_object_new_object();
	rpc_add_u64(*result, "length", len);
	return 0;
}

static const struct rpc_method vm_methods[] = {
	{ "vm.create",		vm_create },
	{ "vm.start",		vm_start },
	{ "vm.pause",		vm_pause },
	{ "vm.resume",		vm_resume },
	{ "vm.stop",		vm_stop },
	{ "vm.destroy",		vm_destroy },
	{ "vm.list",		vm_list },
	{ "vm.info",		vm_info },
	{ "vm.console",		vm_console },
	{ "vm.reports",		vm_reports },
	{ "vm.stats",		vm_stats },
	{ "vm.memory.read",	vm_memory_read },
	{ "vm.memory.write",	vm_memory_write },
};

int rpc_methods_vm_register(struct rpc_server *srv)
{
	return rpc_server_register(srv, vm_methods, sizeof(vm_methods) / sizeof(vm_methods[0]));
}
