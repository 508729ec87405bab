/* slotctl vm VERB: lifecycle, listing, console, stats and quirks of VMs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clients/slotctl.h"

/* {"name": NAME}: the params of most vm verbs. */
static json_object *params_name(const char *key, const char *name)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, key, json_object_new_string(name));
	return p;
}

static const struct slotctl_optdesc create_opts[] = {
	{ "type", "TYPE", "default or protected (precise zaps only, like "
	  "TDX)" },
	{ "vcpus", "N", "number of vCPUs" },
	{ "memory", "SIZE", "guest RAM in bytes; K/M/G/T suffixes" },
	{ "payload", "P", "builtin:NAME or the path of a static ELF64 "
	  "executable (default builtin:hello)" },
	{ "args", "N,...", "boot arguments handed to the payload" },
	{ "mmio", "ignore|crash", "what a guest access outside every memslot "
	  "does" },
	{ "ram", "memfd|anon", "boot RAM backing (default memfd; anon gets "
	  "transparent huge pages)" },
	{ 0 },
};

/* params.args = [N, ...] from "N,N,..."; prints why not. */
static int args_array(json_object *params, const char *list)
{
	json_object *arr = json_object_new_array();
	char *copy = strdup(list), *save = NULL;
	int ret = 0;

	for (char *s = strtok_r(copy, ",", &save); s && !ret;
	     s = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		ret = slotctl_parse_u64(s, true, &v);
		if (!ret && v > INT64_MAX)
			ret = -ERANGE;
		if (ret)
			slotctl_err("--args: '%s' is not a number", s);
		else
			json_object_array_add(arr, json_object_new_int64(
						      (int64_t)v));
	}
	free(copy);
	if (ret)
		json_object_put(arr);
	else
		json_object_object_add(params, "args", arr);
	return ret;
}

/* vm create NAME [options] -> vm.create; sizes converted to bytes. */
static int vm_create(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = params_name("name", a->argv[0]);
	const char *type = slotctl_args_opt(a, "type");
	const char *vcpus = slotctl_args_opt(a, "vcpus");
	const char *memory = slotctl_args_opt(a, "memory");
	const char *payload = slotctl_args_opt(a, "payload");
	const char *mmio = slotctl_args_opt(a, "mmio");
	const char *args = slotctl_args_opt(a, "args");
	const char *ram = slotctl_args_opt(a, "ram");

	if (type)
		json_object_object_add(p, "type", json_object_new_string(type));
	if ((vcpus && slotctl_param_u64(p, "vcpus", vcpus, false)) ||
	    (memory && slotctl_param_u64(p, "memory", memory, true))) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	if (payload)
		json_object_object_add(p, "payload",
				       json_object_new_string(payload));
	if (mmio)
		json_object_object_add(p, "mmio", json_object_new_string(mmio));
	if (ram)
		json_object_object_add(p, "ram", json_object_new_string(ram));
	if (args && args_array(p, args)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	return slotctl_call_print(ctl, a->verb->method, p);
}

/* vm start|pause|resume|stop|destroy|info|stats NAME: {name}. */
static int vm_by_name(struct slotctl *ctl, const struct slotctl_args *a)
{
	return slotctl_call_print(ctl, a->verb->method,
				  params_name("name", a->argv[0]));
}

/* The console text of a vm.console result {name, data, total_bytes}. */
static const char *console_text(json_object *result)
{
	json_object *out;

	if (json_object_object_get_ex(result, "data", &out) &&
	    json_object_is_type(out, json_type_string))
		return json_object_get_string(out);
	return NULL;
}

static const struct slotctl_optdesc console_opts[] = {
	{ "tail", "N", "only the last N bytes of the console log" },
	{ 0 },
};

/* vm console NAME: the guest's output as it is, not a table. */
static int vm_console(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = params_name("name", a->argv[0]), *result;
	const char *tail = slotctl_args_opt(a, "tail"), *text;
	int ret;

	if (tail && slotctl_param_u64(p, "tail", tail, true)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	ret = slotctl_call(ctl, a->verb->method, p, &result);
	if (ret)
		return ret;
	text = console_text(result);
	if (ctl->json) {
		slotctl_render_json(stdout, result);
	} else if (!text) {
		slotctl_render_human(stdout, result);
	} else {
		/* The guest's bytes as they are, ended by a newline. */
		fputs(text, stdout);
		if (*text && text[strlen(text) - 1] != '\n')
			fputc('\n', stdout);
	}
	json_object_put(result);
	return SLOTCTL_EXIT_OK;
}

static const struct slotctl_optdesc reports_opts[] = {
	{ "from", "SEQ", "first sequence number (a previous reply's next)" },
	{ 0 },
};

/* vm reports NAME [--from SEQ] -> vm.reports: what the guest reported. */
static int vm_reports(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = params_name("name", a->argv[0]);
	const char *from = slotctl_args_opt(a, "from");

	if (from && slotctl_param_u64(p, "from", from, false)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	return slotctl_call_print(ctl, a->verb->method, p);
}

static int vm_quirks(struct slotctl *ctl, const struct slotctl_args *a)
{
	return slotctl_call_print(ctl, a->verb->method,
				  params_name("vm", a->argv[0]));
}

/* vm quirk NAME QUIRK on|off -> vm.quirks.set {vm, quirk, enabled}. */
static int vm_quirk(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = params_name("vm", a->argv[0]);

	json_object_object_add(p, "quirk", json_object_new_string(a->argv[1]));
	if (slotctl_param_onoff(p, "enabled", a->argv[2])) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	return slotctl_call_print(ctl, a->verb->method, p);
}

static const struct slotctl_verb vm_verbs[] = {
	{ "create", "vm.create", "NAME [--type default|protected] [--vcpus N] "
	  "[--memory SIZE] [--payload P] [--args N,...] [--mmio ignore|crash] "
	  "[--ram memfd|anon]", "create a VM (not started)",
	  1, 1, create_opts, vm_create },
	{ "start", "vm.start", "NAME", "start the VM's vCPUs",
	  1, 1, NULL, vm_by_name },
	{ "pause", "vm.pause", "NAME", "pause the VM's vCPUs",
	  1, 1, NULL, vm_by_name },
	{ "resume", "vm.resume", "NAME", "resume a paused VM",
	  1, 1, NULL, vm_by_name },
	{ "stop", "vm.stop", "NAME", "stop the VM (it can be inspected, not "
	  "resumed)", 1, 1, NULL, vm_by_name },
	{ "destroy", "vm.destroy", "NAME", "destroy the VM and free its memory",
	  1, 1, NULL, vm_by_name },
	{ "info", "vm.info", "NAME", "show the VM's state, type, vCPUs, memory "
	  "and memslots", 1, 1, NULL, vm_by_name },
	{ "stats", "vm.stats", "NAME", "show the VM's kernel MMU and exit "
	  "counters", 1, 1, NULL, vm_by_name },
	{ "console", "vm.console", "NAME [--tail N]", "print the VM's console "
	  "output", 1, 1, console_opts, vm_console },
	{ "list", "vm.list", "", "list VMs", 0, 0, NULL, slotctl_verb_call },
	{ "reports", "vm.reports", "NAME [--from SEQ]", "show the records the "
	  "guest wrote to its report port (pass times, check results)",
	  1, 1, reports_opts, vm_reports },
	{ "memory-read", "vm.memory.read", "NAME GPA LENGTH [--raw]", "read "
	  "guest memory by GPA (hexdump; --raw: the bytes)",
	  3, 3, slotctl_vm_memory_read_opts, slotctl_vm_memory_read },
	{ "memory-write", "vm.memory.write", "NAME GPA DATA [--hex]", "write "
	  "DATA (text, or hex digits with --hex) to guest memory at GPA",
	  3, 3, slotctl_vm_memory_write_opts, slotctl_vm_memory_write },
	{ "quirks", "vm.quirks.get", "NAME", "show the VM's quirks and whether "
	  "each is enabled", 1, 1, NULL, vm_quirks },
	{ "quirk", "vm.quirks.set", "NAME QUIRK on|off", "enable or disable "
	  "one quirk (e.g. slot_zap_all off: zap only the changed slot)",
	  3, 3, NULL, vm_quirk },
	{ 0 },
};

const struct slotctl_noun slotctl_noun_vm = {
	"vm", "virtual machines", vm_verbs,
};
