/* vmm devices on the real /dev/kvm: DMA engine, serial console, report
 * port, MMIO policy, guest memory API, statistics. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/vmm_helpers.h"
#include "vmm/guest/abi.h"

#define DONE (VMM_T_STATE(VMM_VM_STOPPED) | VMM_T_STATE(VMM_VM_CRASHED))

VMM_T_SUITE(vmm_devices, 60);

/* Creates, runs to completion and returns a VM; asserts it stopped. */
static struct vmm_vm *run(struct vmm_vm_params *p, struct vmm_vm_info *info)
{
	struct vmm_err err = { 0 };
	struct vmm_vm *vm = NULL;
	int r;

	r = vmm_vm_create(vmm, p, &vm, &err);
	cr_assert_eq(r, 0, "create: expected 0, got %d (%s)", r, err.msg);
	r = vmm_vm_start(vm, &err);
	cr_assert_eq(r, 0, "start: expected 0, got %d (%s)", r, err.msg);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0,
		     "%s did not finish", p->payload);
	vmm_vm_info_get(vm, info);
	return vm;
}

Test(vmm_devices, dma_copy_fill_checksum_and_error_statuses)
{
	struct vmm_report recs[64];
	struct vmm_vm_params p;
	struct vmm_vm_info info;
	static const uint32_t want[] = {
		VMM_DMA_ST_OK, VMM_DMA_ST_OK, VMM_DMA_ST_OK,
		VMM_DMA_ST_BAD_SRC, VMM_DMA_ST_BAD_DST, VMM_DMA_ST_BAD_OP,
		VMM_DMA_ST_BAD_LEN, VMM_DMA_ST_BAD_SRC, VMM_DMA_ST_BAD_DESC,
	};
	struct vmm_vm *vm;
	size_t n, k = 0;

	NEED_KVM();
	vmm_t_params(&p, "dma", "builtin:dmatest");
	vm = run(&p, &info);
	cr_assert(info.state == VMM_VM_STOPPED && info.exit_status == 0,
		  "dmatest: expected stopped/0, got %s/0x%x (%s)",
		  vmm_vm_state_name(info.state), info.exit_status,
		  info.crash_reason);
	vmm_vm_reports_read(vm, 0, recs, 64, &n);
	for (size_t i = 0; i < n; i++) {
		if (recs[i].tag != VMM_REPORT_DMA_STEP)
			continue;
		cr_assert_lt(k, 9, "too many DMA steps");
		cr_assert_eq(recs[i].value >> 32, k, "step order: expected %zu", k);
		cr_assert_eq((uint32_t)recs[i].value, want[k],
			     "step %zu: expected status %u, got %u", k, want[k],
			     (uint32_t)recs[i].value);
		k++;
	}
	cr_assert_eq(k, 9, "expected 9 DMA steps reported, got %zu", k);
}

Test(vmm_devices, console_tail_returns_the_last_bytes)
{
	struct vmm_vm_params p;
	struct vmm_vm_info info;
	struct vmm_vm *vm;
	char buf[16];
	size_t n;

	NEED_KVM();
	vmm_t_params(&p, "tail", "builtin:hello");
	vm = run(&p, &info);
	vmm_vm_console_read(vm, 8, buf, sizeof(buf), &n);
	cr_assert_eq(n, 8, "tail 8: expected 8 bytes, got %zu", n);
	cr_assert(!memcmp(buf, "slot(s)\n", 8), "tail: got '%.8s'", buf);
	cr_assert_eq(info.console_bytes, strlen("Hello from slotd guest: vcpu 0 of 1, 16 MiB RAM, 1 memslot(s)\n"),
		     "console_bytes: got %llu", (unsigned long long)info.console_bytes);
}

Test(vmm_devices, console_log_file_gets_the_output)
{
	char dir[] = "/tmp/slotd-vmm-test-XXXXXX", path[128], buf[256] = "";
	struct vmm_config cfg = { .console_dir = dir };
	struct vmm_err err = { 0 };
	struct vmm_vm_params p;
	struct vmm *own;
	struct vmm_vm *vm;
	FILE *f;

	NEED_KVM();
	cr_assert_not_null(mkdtemp(dir), "mkdtemp");
	cr_assert_eq(vmm_create(&cfg, &own), 0, "vmm_create");
	vmm_t_params(&p, "logged", "builtin:hello");
	cr_assert_eq(vmm_vm_create(own, &p, &vm, &err), 0, "create: %s", err.msg);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0, "wait");
	vmm_destroy(own);
	snprintf(path, sizeof(path), "%s/logged.log", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f, "expected log file %s", path);
	cr_assert_not_null(fgets(buf, sizeof(buf), f), "empty log %s", path);
	fclose(f);
	unlink(path);
	rmdir(dir);
	cr_assert(strstr(buf, "Hello from slotd guest"), "log line: '%s'", buf);
}

Test(vmm_devices, memtouch_reports_every_pass)
{
	struct vmm_vm_params p;
	struct vmm_vm_info info;
	struct vmm_vm *vm;
	uint64_t last = 0, pages = 0;
	size_t passes;

	NEED_KVM();
	vmm_t_params(&p, "touch", "builtin:memtouch");
	p.memory_bytes = 32u << 20;
	p.args[0] = 8u << 20;
	p.args[1] = 4;
	vm = run(&p, &info);
	cr_assert_eq(info.state, VMM_VM_STOPPED, "expected stopped (%s)",
		     info.crash_reason);
	passes = vmm_t_reports(vm, VMM_REPORT_PASS_NS, &last);
	cr_assert_eq(passes, 4, "expected 4 pass reports, got %zu", passes);
	cr_assert_gt(last, 0, "pass duration should be > 0 ns");
	vmm_t_reports(vm, VMM_REPORT_PASS_PAGES, &pages);
	cr_assert_eq(pages, 2048, "expected 2048 pages per pass, got %llu",
		     (unsigned long long)pages);
}

Test(vmm_devices, memcheck_verifies_the_free_ram)
{
	struct vmm_vm_params p;
	struct vmm_vm_info info;
	struct vmm_vm *vm;
	uint64_t errors = 1, bytes = 0;

	NEED_KVM();
	vmm_t_params(&p, "check", "builtin:memcheck");
	vm = run(&p, &info);
	cr_assert(info.state == VMM_VM_STOPPED && info.exit_status == 0,
		  "memcheck: expected stopped/0, got %s/%u",
		  vmm_vm_state_name(info.state), info.exit_status);
	cr_assert_eq(vmm_t_reports(vm, VMM_REPORT_RANGE_ERRORS, &errors), 1,
		     "expected one range");
	cr_assert_eq(errors, 0, "expected 0 bad words, got %llu",
		     (unsigned long long)errors);
	vmm_t_reports(vm, VMM_REPORT_RANGE_BYTES, &bytes);
	cr_assert_gt(bytes, 8u << 20, "range too small: %llu",
		     (unsigned long long)bytes);
}

Test(vmm_devices, mmio_to_unmapped_gpa_crashes_under_crash_policy)
{
	struct vmm_vm_params p;
	struct vmm_vm_info info;

	NEED_KVM();
	vmm_t_params(&p, "mmio", "builtin:memtouch");
	p.args[0] = 4096;
	p.args[1] = 1;
	p.args[2] = 1ull << 30;		/* no memslot at 1 GiB */
	p.mmio_policy = VMM_MMIO_CRASH;
	run(&p, &info);
	cr_assert_eq(info.state, VMM_VM_CRASHED, "expected crashed, got %s",
		     vmm_vm_state_name(info.state));
	cr_assert(strstr(info.crash_reason, "unmapped GPA 0x40000000"),
		  "reason: '%s'", info.crash_reason);
}

Test(vmm_devices, mmio_to_unmapped_gpa_is_counted_under_ignore_policy)
{
	struct vmm_vm_params p;
	struct vmm_vm_info info;

	NEED_KVM();
	vmm_t_params(&p, "mmio2", "builtin:memtouch");
	p.args[0] = 4 * 4096;
	p.args[1] = 2;
	p.args[2] = 1ull << 30;
	run(&p, &info);
	cr_assert_eq(info.state, VMM_VM_STOPPED, "expected stopped (%s)",
		     info.crash_reason);
	cr_assert_geq(info.exits_mmio, 8, "expected >= 8 MMIO exits, got %llu",
		      (unsigned long long)info.exits_mmio);
}

Test(vmm_devices, memory_read_write_are_bounds_checked)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	uint8_t buf[64], back[64];
	struct vmm_boot_params bp;
	int r;

	NEED_KVM();
	vmm_t_params(&p, "mem", "builtin:hello");
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	r = vmm_vm_memory_read(vm, VMM_GPA_BOOT, &bp, sizeof(bp), &err);
	cr_assert_eq(r, 0, "read boot params: %d (%s)", r, err.msg);
	cr_assert_eq(bp.magic, VMM_BOOT_MAGIC, "boot magic: got 0x%llx",
		     (unsigned long long)bp.magic);
	cr_assert_eq(bp.ram_size, 16u << 20, "ram_size");
	memset(buf, 0xab, sizeof(buf));
	r = vmm_vm_memory_write(vm, (16u << 20) - 64, buf, 64, &err);
	cr_assert_eq(r, 0, "write at end of RAM: %d (%s)", r, err.msg);
	vmm_vm_memory_read(vm, (16u << 20) - 64, back, 64, &err);
	cr_assert(!memcmp(buf, back, 64), "read back differs");
	r = vmm_vm_memory_read(vm, (16u << 20) - 32, back, 64, &err);
	cr_assert_eq(r, -EFAULT, "read across end of RAM: expected -EFAULT, got %d", r);
	cr_assert_str_eq(err.field, "gpa", "field");
	r = vmm_vm_memory_write(vm, 1ull << 40, buf, 8, &err);
	cr_assert_eq(r, -EFAULT, "write unmapped: expected -EFAULT, got %d", r);
	r = vmm_vm_memory_read(vm, 0, back, 0, &err);
	cr_assert_eq(r, -EINVAL, "length 0: expected -EINVAL, got %d", r);
	r = vmm_vm_memory_read(vm, UINT64_MAX - 4, back, 8, &err);
	cr_assert_eq(r, -EFAULT, "overflow: expected -EFAULT, got %d", r);
}

Test(vmm_devices, protected_vm_memory_is_private)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info info;
	struct vmm_vm *vm;
	uint8_t b[8];
	int r;

	NEED_KVM();
	vmm_t_params(&p, "prot", "builtin:hello");
	p.type = VMM_VM_TYPE_PROTECTED;
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
	r = vmm_vm_memory_read(vm, VMM_GPA_BOOT, b, 8, &err);
	cr_assert_eq(r, -EACCES, "expected -EACCES, got %d", r);
	vmm_vm_info_get(vm, &info);
	cr_assert_eq(info.type, VMM_VM_TYPE_PROTECTED, "type");
	cr_assert(info.rules_by_slotd || info.kvm_vm_type != 0,
		  "either KVM or slotd must enforce the rules");
	r = vmm_vm_quirk_set(vm, "slot_zap_all", true, &err);
	cr_assert_eq(r, -EPERM, "enabling slot_zap_all: expected -EPERM, got %d", r);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "start: %s", err.msg);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0, "wait");
	vmm_vm_info_get(vm, &info);
	cr_assert_eq(info.state, VMM_VM_STOPPED, "protected hello: %s",
		     info.crash_reason);
}

struct seen {
	bool kvm_vm, kvm_vcpu, exit_io, exit_mmio, dev_serial;
	uint64_t serial;
};

static int on_stat(const struct vmm_stat *st, void *arg)
{
	struct seen *s = arg;

	if (!strcmp(st->source, "kvm") && st->vcpu < 0)
		s->kvm_vm |= !strcmp(st->name, "remote_tlb_flush") ||
			     !strcmp(st->name, "mmu_shadow_zapped");
	if (!strcmp(st->source, "kvm") && st->vcpu == 0)
		s->kvm_vcpu = true;
	if (!strcmp(st->source, "exits") && st->vcpu == 0)
		s->exit_mmio |= !strcmp(st->name, "mmio");
	if (!strcmp(st->source, "devices") && !strcmp(st->name, "serial_bytes")) {
		s->dev_serial = true;
		s->serial = st->value;
	}
	return 0;
}

Test(vmm_devices, stats_cover_kvm_exits_and_devices)
{
	struct vmm_vm_params p;
	struct vmm_vm_info info;
	struct seen s = { 0 };
	struct vmm_vm *vm;

	NEED_KVM();
	if (!vmm_caps_get(vmm)->stats_fd)
		cr_skip_test("host KVM has no binary stats fd");
	vmm_t_params(&p, "stats", "builtin:hello");
	vm = run(&p, &info);
	cr_assert_eq(vmm_vm_stats_foreach(vm, on_stat, &s), 0, "foreach");
	cr_assert(s.kvm_vm, "expected VM stat remote_tlb_flush/mmu_shadow_zapped");
	cr_assert(s.kvm_vcpu, "expected vcpu0 kernel stats");
	cr_assert(s.exit_mmio, "expected vcpu0 mmio exit count");
	cr_assert(s.dev_serial && s.serial == info.console_bytes,
		  "serial_bytes %llu vs console %llu",
		  (unsigned long long)s.serial,
		  (unsigned long long)info.console_bytes);
}

/* Boots, plants a marker, reboots: the marker must be gone. */
static void reboot_clears(enum vmm_ram_backing backing)
{
	struct vmm_vm_params p;
	struct vmm_vm_info info;
	struct vmm_err err = { 0 };
	uint64_t marker = 0x1122334455667788ull, back = 1;
	struct vmm_vm *vm;

	vmm_t_params(&p, backing == VMM_RAM_ANON ? "anon" : "memfd",
		     "builtin:hello");
	p.ram_backing = backing;
	vm = run(&p, &info);
	cr_assert_eq(info.state, VMM_VM_STOPPED, "first boot: %s", info.crash_reason);
	cr_assert_eq(vmm_vm_memory_write(vm, 8u << 20, &marker, 8, &err), 0,
		     "write: %s", err.msg);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "reboot: %s", err.msg);
	cr_assert_eq(vmm_vm_wait_state(vm, DONE, VMM_T_WAIT_MS), 0, "wait");
	cr_assert_eq(vmm_vm_memory_read(vm, 8u << 20, &back, 8, &err), 0,
		     "read: %s", err.msg);
	cr_assert_eq(back, 0, "RAM not cleared by reboot: got 0x%llx",
		     (unsigned long long)back);
}

Test(vmm_devices, reboot_clears_memfd_ram)
{
	NEED_KVM();
	reboot_clears(VMM_RAM_MEMFD);
}

Test(vmm_devices, reboot_clears_anonymous_ram)
{
	NEED_KVM();
	reboot_clears(VMM_RAM_ANON);
}
