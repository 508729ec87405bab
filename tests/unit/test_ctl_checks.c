/* The control plane's checks, without KVM: every memslot change, memory
 * access, quirk and lifecycle call is refused with the exact error and
 * field before any runner is asked, and a refused or unfinished change
 * leaves the model as it was.  The VM here has no runner: a change that
 * passes every check ends with -ECONNRESET ("no running process"). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/internal.h"
#include "tests/lib/daemon.h"

static struct ctl ctl;
static struct ctl_vm *vm;
static char files[64], outside[64];
static char *dirs[2];

static struct ctl_vm *vm_add(const char *name, enum vmm_vm_type type)
{
	struct store_vm_def d = { .type = type, .vcpus = 1, .memory = 16 << 20 };
	struct vmm_memslot_info boot;
	struct ctl_vm *v;

	snprintf(d.name, sizeof(d.name), "%s", name);
	v = vm_alloc(&ctl, &d);
	cr_assert_not_null(v);
	vm_boot_slot(v, &boot);
	cr_assert_eq(layout_insert(&v->layout, &boot), 0);
	v->info.kvm_vm_type = 0;
	vm_link(v);
	return v;
}

static void setup(void)
{
	memset(&ctl, 0, sizeof(ctl));
	TAILQ_INIT(&ctl.vms);
	ctl.kvm_fd = ctl.runtime_lock = -1;
	ctl.caps.kvm_available = true;
	ctl.caps.guest_phys_bits = 40;
	ctl.caps.max_memslots = 8;
	ctl.caps.readonly_mem = true;
	ctl.caps.supported_quirks = vmm_quirks_all();
	snprintf(files, sizeof(files), "/tmp/slotd-checks-XXXXXX");
	cr_assert(mkdtemp(files));
	snprintf(outside, sizeof(outside), "/tmp/slotd-outside-XXXXXX");
	cr_assert(mkdtemp(outside));
	dirs[0] = files;
	ctl.file_dirs = dirs;
	vm = vm_add("c", VMM_VM_TYPE_DEFAULT);
}

static void teardown(void)
{
	struct ctl_vm *v;

	while ((v = TAILQ_FIRST(&ctl.vms))) {
		TAILQ_REMOVE(&ctl.vms, v, link);
		vm_free(v);
	}
	test_rmtree(files);
	test_rmtree(outside);
}

TestSuite(ctl_checks, .init = setup, .fini = teardown);

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	closedir(d);
	return n;
}

static struct vmm_memslot_params params(uint64_t gpa, uint64_t size)
{
	struct vmm_memslot_params p = { .id = VMM_SLOT_ANY, .gpa = gpa, .size = size };

	return p;
}

/* Expects create(p) refused with code and field, the model unchanged. */
static void refused(struct vmm_memslot_params p, int code, const char *field, const char *text)
{
	struct vmm_err e = { 0 };
	unsigned n = vm->layout.n;
	uint32_t id;
	int r = ctl_memslot_create(vm, &p, &id, NULL, &e);

	cr_assert_eq(r, code, "expected %d, got %d (%s)", code, r, e.msg);
	cr_assert(e.field && !strcmp(e.field, field), "expected field %s, got %s (%s)", field,
		  e.field ? e.field : "(none)", e.msg);
	if (text)
		cr_assert(strstr(e.msg, text), "the message should say '%s': %s", text, e.msg);
	cr_assert_eq(vm->layout.n, n, "a refused change leaves the model as it was");
}

Test(ctl_checks, a_create_is_checked_before_any_runner_is_asked)
{
	struct vmm_memslot_params p = params(0x100000000, 0x1000);

	p.gpa = 0x100000800;
	refused(p, -EINVAL, "gpa", "not 4 KiB aligned");
	refused(params(0x100000000, 0), -EINVAL, "size", "must not be 0");
	refused(params(0x100000000, 0x1800), -EINVAL, "size", "multiple of 4 KiB");
	refused(params(1ull << 40, 0x1000), -EINVAL, "gpa", "40-bit physical address space");
	refused(params(0x3200000000ull, 0x1000), -EEXIST, "gpa", "device window");
	refused(params(0x800000, 0x1000), -EEXIST, "gpa", "overlaps memslot 0");
	p = params(0x100000000, 0x1000);
	p.flags = 1u << 7;
	refused(p, -EINVAL, "flags", "unknown flags");
	p = params(0x100000000, 0x1000);
	p.id = 8;
	refused(p, -EINVAL, "slot", "not below 8");
	p.id = 0;
	refused(p, -EEXIST, "slot", "slot 0 exists");
}

Test(ctl_checks, backings_are_checked_and_files_stay_under_file_dir)
{
	struct vmm_memslot_params p = params(0x100000000, 0x200000);
	char link[160];

	p.backing.kind = VMM_BACKING_HUGETLB;
	p.backing.hugepage_size = 4096;
	refused(p, -EINVAL, "backing.hugepage_size", "2M or 1G");
	p.backing.hugepage_size = 1ull << 30;
	refused(p, -EINVAL, "size", "1024M huge page");
	p = params(0x100000000, 0x1000);
	p.backing.kind = VMM_BACKING_FILE;
	refused(p, -EINVAL, "backing.path", "needs a path");
	snprintf(p.backing.path, sizeof(p.backing.path), "relative/x");
	refused(p, -EINVAL, "backing.path", "not an absolute path");
	snprintf(p.backing.path, sizeof(p.backing.path), "%s/x", outside);
	refused(p, -EACCES, "backing.path", "outside the allowed directories");
	snprintf(p.backing.path, sizeof(p.backing.path), "%s/../%s/x", files, outside + 5);
	refused(p, -EACCES, "backing.path", "outside the allowed directories");
	snprintf(link, sizeof(link), "%s/link", files);
	cr_assert_eq(symlink("/etc/hostname", link), 0);
	snprintf(p.backing.path, sizeof(p.backing.path), "%s", link);
	refused(p, -EACCES, "backing.path", "symbolic link");
	snprintf(p.backing.path, sizeof(p.backing.path), "%s/x", files);
	p.backing.offset = 0x10;
	refused(p, -EINVAL, "backing.offset", "aligned");
	dirs[0] = NULL;
	p.backing.offset = 0;
	refused(p, -EACCES, "backing.path", "--file-dir");
}

Test(ctl_checks, memory_limits_count_every_slot_and_every_vm)
{
	struct vmm_memslot_params p = params(0x100000000, 32 << 20);

	ctl.cfg.max_vm_memory = 32 << 20;	/* boot RAM is 16M of it */
	refused(p, -E2BIG, "size", "--max-vm-memory");
	ctl.cfg.max_vm_memory = 0;
	vm_add("other", VMM_VM_TYPE_DEFAULT);
	ctl.cfg.max_total_memory = 48 << 20;	/* two boot RAMs: 32M */
	refused(p, -E2BIG, "size", "--max-memory");
}

Test(ctl_checks, the_slot_limit_of_the_host_is_enforced)
{
	for (uint32_t id = 1; id < 8; id++) {
		struct vmm_memslot_info s = { .id = id, .gpa = (uint64_t)id << 32, .size = 0x1000 };

		cr_assert_eq(layout_insert(&vm->layout, &s), 0);
	}
	refused(params(0x800000000, 0x1000), -ENOSPC, "slot", "KVM_CAP_NR_MEMSLOTS");
}

Test(ctl_checks, readonly_slots_follow_the_host_and_the_vm_type)
{
	struct vmm_memslot_params p = params(0x100000000, 0x1000);

	p.flags = VMM_SLOT_READONLY;
	ctl.caps.readonly_mem = false;
	refused(p, -EOPNOTSUPP, "flags", "KVM_CAP_READONLY_MEM");
	ctl.caps.readonly_mem = true;
	vm->def.type = VMM_VM_TYPE_PROTECTED;
	vm->info.kvm_vm_type = vmm_kvm_vm_type_protected();
	refused(p, -EOPNOTSUPP, "flags", "no readonly memslots");
}

Test(ctl_checks, a_change_that_passes_the_checks_needs_the_runner_and_leaves_nothing)
{
	struct vmm_memslot_params p = params(0x100000000, 0x1000);
	struct vmm_err e = { 0 };
	int fds = open_fds();
	uint32_t id;

	p.backing.kind = VMM_BACKING_FILE;
	snprintf(p.backing.path, sizeof(p.backing.path), "%s/disk.img", files);
	cr_assert_eq(ctl_memslot_create(vm, &p, &id, NULL, &e), -ECONNRESET, "%s", e.msg);
	cr_assert(strstr(e.msg, "no running process"), "%s", e.msg);
	cr_assert_eq(vm->layout.n, 1, "the model is undone");
	cr_assert_eq(open_fds(), fds, "the backing opened for the runner was closed");
}

Test(ctl_checks, moves_and_deletes_name_the_slot_and_protect_boot_ram)
{
	struct vmm_memslot_info s = { .id = 3, .gpa = 0x100000000, .size = 0x1000 };
	struct vmm_err e = { 0 };

	cr_assert_eq(layout_insert(&vm->layout, &s), 0);
	cr_assert_eq(ctl_memslot_move(vm, 9, 0x200000000, NULL, &e), -ENOENT);
	cr_assert_str_eq(e.field, "slot");
	cr_assert_eq(ctl_memslot_move(vm, 0, 0x200000000, NULL, &e), -EPERM);
	cr_assert(strstr(e.msg, "boot RAM"), "%s", e.msg);
	cr_assert_eq(ctl_memslot_delete(vm, 0, NULL, &e), -EPERM);
	cr_assert_eq(ctl_memslot_move(vm, 3, 0x0, NULL, &e), -EEXIST, "onto boot RAM");
	cr_assert_eq(ctl_memslot_move(vm, 3, 0x100001000, NULL, &e), -ECONNRESET,
		     "over its own old place is fine (then no runner): %s", e.msg);
	cr_assert_eq(layout_find(&vm->layout, 3)->gpa, 0x100000000, "the move is undone");
	cr_assert_eq(ctl_memslot_delete(vm, 3, NULL, &e), -ECONNRESET);
	cr_assert_not_null(layout_find(&vm->layout, 3), "the delete is undone");
	cr_assert_eq(ctl_memslot_set_flags(vm, 9, true, NULL, &e), -ENOENT);
	cr_assert_eq(ctl_memslot_set_flags(vm, 3, false, NULL, &e), 0,
		     "no change asked: nothing to do");
	cr_assert_eq(ctl_memslot_dirty_log(vm, 3, false, NULL, NULL, NULL, &e), -EINVAL);
	cr_assert(strstr(e.msg, "dirty logging is off"), "%s", e.msg);
}

Test(ctl_checks, a_transaction_names_the_op_that_fails_and_undoes_the_ones_before)
{
	struct vmm_memslot_op ops[3] = {
		{ .kind = VMM_OP_CREATE, .create = params(0x100000000, 0x1000) },
		{ .kind = VMM_OP_MOVE, .id = 1, .gpa = 0x200000000 },	/* the slot just made */
		{ .kind = VMM_OP_CREATE, .create = params(0x200000000, 0x1000) },
	};
	struct vmm_err e = { 0 };
	uint32_t ids[3];
	size_t failed = 0;

	cr_assert_eq(ctl_memslot_transaction(vm, ops, 3, ids, &failed, NULL, &e), -EEXIST);
	cr_assert_eq(failed, 2, "the third op overlaps the second's result; got %zu", failed);
	cr_assert(strstr(e.msg, "overlaps memslot 1"), "%s", e.msg);
	cr_assert_eq(vm->layout.n, 1, "the ops before it are undone");
	cr_assert_eq(ctl_memslot_transaction(vm, ops, 2, ids, &failed, NULL, &e), -ECONNRESET,
		     "valid: it then needs the runner (%s)", e.msg);
	cr_assert_eq(failed, SIZE_MAX);
	cr_assert_eq(ctl_memslot_transaction(vm, ops, 0, ids, &failed, NULL, &e), -EINVAL);
	cr_assert_eq(ctl_memslot_transaction(vm, ops, VMM_TXN_MAX + 1, ids, &failed, NULL, &e),
		     -EINVAL);
}

Test(ctl_checks, the_memory_api_is_bounds_checked_on_the_model)
{
	struct vmm_memslot_info ro = { .id = 2, .gpa = 16 << 20, .size = 0x1000,
				       .slot_flags = VMM_SLOT_READONLY };
	struct vmm_err e = { 0 };
	char buf[8192];

	cr_assert_eq(layout_insert(&vm->layout, &ro), 0);
	cr_assert_eq(ctl_vm_memory_read(vm, 0x100000000, buf, 8, &e), -EFAULT);
	cr_assert(strstr(e.msg, "not fully backed"), "%s", e.msg);
	cr_assert_eq(ctl_vm_memory_read(vm, (16 << 20) - 4096, buf, 8192, &e), -ECONNRESET,
		     "boot RAM and the adjacent slot back it all: %s", e.msg);
	cr_assert_eq(ctl_vm_memory_read(vm, (16 << 20) - 4096, buf, 8193, &e), -EFAULT,
		     "one byte past the slot");
	cr_assert_eq(ctl_vm_memory_write(vm, (16 << 20), buf, 8, &e), -EACCES);
	cr_assert(strstr(e.msg, "read-only"), "%s", e.msg);
	cr_assert_eq(ctl_vm_memory_read(vm, 0, buf, 0, &e), -EINVAL);
	cr_assert_str_eq(e.field, "length");
	cr_assert_eq(ctl_vm_memory_read(vm, UINT64_MAX - 2, buf, 8, &e), -EFAULT);
	vm->def.type = VMM_VM_TYPE_PROTECTED;
	cr_assert_eq(ctl_vm_memory_read(vm, 0, buf, 8, &e), -EACCES);
	cr_assert(strstr(e.msg, "protected"), "%s", e.msg);
}

Test(ctl_checks, quirk_rules_are_the_control_planes)
{
	struct vmm_err e = { 0 };
	struct vmm_quirk_state q[32];
	struct ctl_vm *p = vm_add("p", VMM_VM_TYPE_PROTECTED);
	bool locked = false;

	cr_assert_eq(ctl_vm_quirk_set(vm, "no_such_quirk", false, NULL, &e), -ENOENT);
	p->quirks_disabled = vmm_quirk_slot_zap_all();
	cr_assert_eq(ctl_vm_quirk_set(p, "slot_zap_all", true, NULL, &e), -EPERM);
	cr_assert(strstr(e.msg, "protected"), "%s", e.msg);
	ctl.caps.supported_quirks = 0;
	cr_assert_eq(ctl_vm_quirk_set(vm, "slot_zap_all", false, NULL, &e), -EOPNOTSUPP);
	ctl.caps.supported_quirks = vmm_quirks_all();
	vm->info.quirks_kernel = vmm_quirk_slot_zap_all();
	vm->quirks_disabled = vmm_quirk_slot_zap_all();
	cr_assert_eq(ctl_vm_quirk_set(vm, "slot_zap_all", true, NULL, &e), -EPERM);
	cr_assert(strstr(e.msg, "cannot re-enable"), "%s", e.msg);
	ctl_vm_quirks_get(p, q, 32);
	for (size_t i = 0; i < vmm_quirk_desc_count; i++)
		if (!strcmp(q[i].name, "slot_zap_all"))
			locked = q[i].locked && !q[i].enabled;
	cr_assert(locked, "a protected VM's slot_zap_all shows off and locked");
	cr_assert_eq(ctl_vm_quirk_set(vm, "cd_nw_cleared", false, NULL, &e), -ECONNRESET,
		     "an allowed change needs the runner: %s", e.msg);
	cr_assert_eq(ctl_vm_quirks_enabled(vm) & vmm_quirk_lookup("cd_nw_cleared")->bit,
		     vmm_quirk_lookup("cd_nw_cleared")->bit, "and is not made without it");
}

Test(ctl_checks, lifecycle_rules_are_the_control_planes)
{
	struct vmm_err e = { 0 };

	cr_assert_eq(ctl_vm_pause(vm, &e), -EBUSY);
	cr_assert_str_eq(e.field, "state");
	cr_assert(strstr(e.msg, "cannot pause VM 'c': it is defined (allowed when running)"),
		  "%s", e.msg);
	cr_assert_eq(ctl_vm_stop(vm, &e), -EBUSY);
	vm->info.state = VMM_VM_RUNNING;
	cr_assert_eq(ctl_vm_start(vm, &e), -EBUSY);
	cr_assert_eq(ctl_vm_resume(vm, &e), -EBUSY);
	cr_assert_eq(ctl_vm_pause(vm, &e), -ECONNRESET, "allowed: then it needs the runner");
}
