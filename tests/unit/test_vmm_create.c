/* vmm creation: parameter checks with the field at fault, payload loading,
 * sizes, quirks, memslots, several vCPUs, KVM missing. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/vmm_helpers.h"
#include "vmm/kvm_compat.h"

#define DONE (VMM_T_STATE(VMM_VM_STOPPED) | VMM_T_STATE(VMM_VM_CRASHED))

VMM_T_SUITE(vmm_create, 60);

struct size_case {
	char in[24];		/* inline: parameters cross processes */
	int ret;
	uint64_t out;
};

ParameterizedTestParameters(vmm_create, sizes_parse_with_binary_units)
{
	static struct size_case cases[] = {
		{ "268435456", 0, 268435456 }, { "256M", 0, 256u << 20 },
		{ "1G", 0, 1u << 30 }, { "64k", 0, 65536 }, { "2GiB", 0, 2ull << 30 },
		{ "512MB", 0, 512u << 20 }, { "1T", 0, 1ull << 40 },
		{ "", -EINVAL, 0 }, { "M", -EINVAL, 0 }, { "12Q", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 }, { "1 G", -EINVAL, 0 },
		{ "99999999999999999999", -ERANGE, 0 }, { "17179869184G", -ERANGE, 0 },
	};
	return cr_make_param_array(struct size_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct size_case *c, vmm_create, sizes_parse_with_binary_units)
{
	uint64_t v = 0;
	int r = vmm_parse_size(c->in, &v);

	cr_assert_eq(r, c->ret, "'%s': expected %d, got %d", c->in, c->ret, r);
	if (!r)
		cr_assert_eq(v, c->out, "'%s': expected %llu, got %llu", c->in,
			     (unsigned long long)c->out, (unsigned long long)v);
}

/* Creates with p and expects code and field. */
static void refused(struct vmm_vm_params *p, int code, const char *field)
{
	struct vmm_err err = { 0 };
	struct vmm_vm *vm = NULL;
	int r = vmm_vm_create(vmm, p, &vm, &err);

	cr_assert_eq(r, code, "expected %d, got %d (%s)", code, r, err.msg);
	cr_assert_eq(err.code, code, "err.code: expected %d, got %d", code, err.code);
	if (field)
		cr_assert(err.field && !strcmp(err.field, field),
			  "field: expected %s, got %s (%s)", field,
			  err.field ? err.field : "NULL", err.msg);
	cr_assert(err.msg[0], "expected a message");
}

Test(vmm_create, bad_parameters_name_the_field)
{
	struct vmm_vm_params p;

	NEED_KVM();
	vmm_t_params(&p, "bad name", "builtin:hello");
	refused(&p, -EINVAL, "name");
	vmm_t_params(&p, "", "builtin:hello");
	refused(&p, -EINVAL, "name");
	vmm_t_params(&p, "v", "builtin:hello");
	p.vcpus = 0;
	refused(&p, -EINVAL, "vcpus");
	p.vcpus = 1000;
	refused(&p, -EINVAL, "vcpus");
	vmm_t_params(&p, "v", "builtin:hello");
	p.memory_bytes = 1u << 20;
	refused(&p, -EINVAL, "memory");
	p.memory_bytes = (16u << 20) + 1;
	refused(&p, -EINVAL, "memory");
	vmm_t_params(&p, "v", "builtin:hello");
	p.type = 7;
	refused(&p, -EINVAL, "type");
	vmm_t_params(&p, "v", "builtin:nosuch");
	refused(&p, -ENOENT, "payload");
	vmm_t_params(&p, "v", NULL);
	refused(&p, -EINVAL, "payload");
	vmm_t_params(&p, "v", "/nonexistent/payload.elf");
	refused(&p, -ENOENT, "payload");
	vmm_t_params(&p, "v", "/etc/hostname");
	refused(&p, -EINVAL, "payload");
	cr_assert_null(vmm_vm_find(vmm, "v"), "no VM may be left behind");
}

Test(vmm_create, duplicate_name_is_eexist)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;

	NEED_KVM();
	vmm_t_params(&p, "twice", "builtin:hello");
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "first: %s", err.msg);
	refused(&p, -EEXIST, "name");
	cr_assert_eq(vmm_vm_find(vmm, "twice"), vm, "find returns the VM");
}

Test(vmm_create, dynamic_executable_is_refused)
{
	struct vmm_vm_params p;

	NEED_KVM();
	vmm_t_params(&p, "dyn", "/bin/true");
	refused(&p, -EINVAL, "payload");
}

Test(vmm_create, elf_payload_from_a_file_runs)
{
	char path[512];
	const char *o = getenv("O");
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	struct vmm_vm *vm;
	FILE *f;

	NEED_KVM();
	snprintf(path, sizeof(path), "%s/guest/hello.elf", o ? o : "build");
	f = fopen(path, "r");
	if (!f)
		cr_skip_test("no built guest image at %s (set O)", path);
	fclose(f);
	vmm_t_params(&p, "file", path);
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0, "wait");
	vmm_vm_info_get(vm, &info);
	cr_assert(info.state == VMM_VM_STOPPED && info.exit_status == 0,
		  "expected stopped/0, got %s (%s)",
		  vmm_vm_state_name(info.state), info.crash_reason);
	cr_assert_str_eq(info.payload, path, "payload in info");
}

Test(vmm_create, no_kvm_gives_enodev_with_a_message)
{
	struct vmm_config cfg = { .kvm_path = "/nonexistent/kvm" };
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm *none;
	struct vmm_vm *vm;
	int r;

	cr_assert_eq(vmm_create(&cfg, &none), 0, "vmm_create must not fail");
	cr_assert(!vmm_caps_get(none)->kvm_available, "KVM must be unavailable");
	vmm_t_params(&p, "x", "builtin:hello");
	r = vmm_vm_create(none, &p, &vm, &err);
	cr_assert_eq(r, -ENODEV, "expected -ENODEV, got %d", r);
	cr_assert(strstr(err.msg, "/nonexistent/kvm"), "message: '%s'", err.msg);
	vmm_destroy(none);
}

Test(vmm_create, several_vcpus_boot_and_secondaries_park)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	static char buf[4096];
	struct vmm_vm *vm;

	NEED_KVM();
	vmm_t_params(&p, "smp", "builtin:hello");
	p.vcpus = 4;
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0, "wait");
	vmm_vm_info_get(vm, &info);
	cr_assert_eq(info.state, VMM_VM_STOPPED, "state %s (%s)",
		     vmm_vm_state_name(info.state), info.crash_reason);
	cr_assert(strstr(vmm_t_console(vm, buf, sizeof(buf)), "vcpu 0 of 4"),
		  "console: '%s'", buf);
}

Test(vmm_create, quirks_toggle_freely_until_start_then_only_go_off)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	int r;

	NEED_KVM();
	vmm_t_params(&p, "quirky", "builtin:hello");
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	cr_assert(vmm_vm_quirks_enabled(vm) & KVM_X86_QUIRK_SLOT_ZAP_ALL,
		  "default VM starts with slot_zap_all on");
	r = vmm_vm_quirk_set(vm, "no_such_quirk", false, &err);
	cr_assert_eq(r, -ENOENT, "unknown quirk: expected -ENOENT, got %d", r);
	if (!(vmm_caps_get(vmm)->supported_quirks & KVM_X86_QUIRK_SLOT_ZAP_ALL))
		cr_skip_test("host cannot disable slot_zap_all");
	r = vmm_vm_quirk_set(vm, "slot_zap_all", false, &err);
	cr_assert_eq(r, 0, "disable: expected 0, got %d (%s)", r, err.msg);
	cr_assert(!(vmm_vm_quirks_enabled(vm) & KVM_X86_QUIRK_SLOT_ZAP_ALL),
		  "slot_zap_all should be off");
	/* Defined, never started: the kernel VM has not seen it yet. */
	r = vmm_vm_quirk_set(vm, "slot_zap_all", true, &err);
	cr_assert_eq(r, 0, "re-enable while defined: expected 0, got %d (%s)", r, err.msg);
	cr_assert(vmm_vm_quirks_enabled(vm) & KVM_X86_QUIRK_SLOT_ZAP_ALL);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	vmm_vm_wait_state(vm, 1u << VMM_VM_STOPPED, 5000);
	r = vmm_vm_quirk_set(vm, "slot_zap_all", false, &err);
	cr_assert_eq(r, 0, "disable after start: expected 0, got %d (%s)", r, err.msg);
	r = vmm_vm_quirk_set(vm, "slot_zap_all", true, &err);
	cr_assert_eq(r, -EPERM, "re-enable after start: expected -EPERM, got %d", r);
	cr_assert(strstr(err.msg, "cannot re-enable"), "message: %s", err.msg);
}

Test(vmm_create, boot_ram_is_memslot_zero)
{
	struct vmm_memslot_info slots[4];
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	size_t n = 0;

	NEED_KVM();
	vmm_t_params(&p, "slots", "builtin:hello");
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	vmm_vm_memslots_get(vm, slots, 4, &n);
	cr_assert_eq(n, 1, "expected 1 memslot, got %zu", n);
	cr_assert(slots[0].id == 0 && slots[0].gpa == 0 &&
		  slots[0].size == 16u << 20 && slots[0].hva,
		  "slot 0: id %u gpa 0x%llx size 0x%llx", slots[0].id,
		  (unsigned long long)slots[0].gpa,
		  (unsigned long long)slots[0].size);
}

Test(vmm_create, vmm_destroy_stops_running_vms)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;

	NEED_KVM();
	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "run%d", i);
		vmm_t_params(&p, name, "builtin:busy");
		p.vcpus = 2;
		cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
		cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	}
	vmm_destroy(vmm);	/* must return: stops and frees all three */
	vmm = NULL;
}

Test(vmm_create, builtin_payloads_are_listed)
{
	const char *want[] = { "busy", "crash", "dmatest", "hello", "memcheck",
			       "memtouch" };
	size_t i;

	for (i = 0; vmm_builtin_payload_name(i); i++)
		;
	cr_assert_eq(i, 6, "expected 6 built-in payloads, got %zu", i);
	for (i = 0; i < 6; i++)
		cr_assert_str_eq(vmm_builtin_payload_name(i), want[i], "payload %zu", i);
}
