/* Memslot changes routed to KVM and the engine, on the real /dev/kvm:
 * checks with exact errors and fields, data seen at the right GPA after
 * create/move/delete, the quirk's policy on both sides, dirty logging,
 * transactions that undo themselves. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/vmm_helpers.h"

static struct vmm *vmm;
static struct vmm_vm *vm;

#define SLOT_GPA	(1ull << 32)	/* 4 GiB: above any boot RAM here */

static void setup(void)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };

	vmm = vmm_t_open();
	if (!vmm)
		cr_skip_test("no usable /dev/kvm on this host");
	vmm_t_params(&p, "ops", "builtin:busy");
	cr_assert_eq(vmm_vm_create(vmm, &p, &vm, &err), 0, "create: %s", err.msg);
}

static void teardown(void)
{
	if (vmm)
		vmm_destroy(vmm);
}

TestSuite(vmm_memslot_ops, .init = setup, .fini = teardown);

static struct vmm_memslot_params anon(uint64_t gpa, uint64_t size)
{
	struct vmm_memslot_params p = { .id = VMM_SLOT_ANY, .gpa = gpa, .size = size };

	p.backing.kind = VMM_BACKING_ANON;
	return p;
}

static int64_t fx_get(const struct vmm_effect *fx, const char *side, const char *name)
{
	for (unsigned i = 0; i < fx->n; i++)
		if (!strcmp(fx->counters[i].side, side) && !strcmp(fx->counters[i].name, name))
			return fx->counters[i].delta;
	cr_assert_fail("no %s counter %s in the effect", side, name);
	return 0;
}

static void expect_err(int r, int code, const struct vmm_err *err, const char *field)
{
	cr_assert_eq(r, code, "expected %d, got %d (%s)", code, r, err->msg);
	cr_assert(err->field && !strcmp(err->field, field), "expected field %s, got %s (%s)",
		  field, err->field ? err->field : "(none)", err->msg);
}

Test(vmm_memslot_ops, bad_layouts_are_refused_naming_the_field)
{
	struct vmm_memslot_params p = anon(SLOT_GPA, 1 << 20);
	struct vmm_err err = { 0 };
	uint32_t id;

	p.gpa = SLOT_GPA + 100;
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EINVAL, &err, "gpa");
	p = anon(SLOT_GPA, 0);
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EINVAL, &err, "size");
	p = anon(SLOT_GPA, 5000);
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EINVAL, &err, "size");
	p = anon(1ull << 52, 4096);
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EINVAL, &err, "gpa");
	cr_assert(strstr(err.msg, "physical address space"), "%s", err.msg);
	p = anon(8 << 20, 4096);	/* inside boot RAM (slot 0) */
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EEXIST, &err, "gpa");
	cr_assert(strstr(err.msg, "memslot 0"), "the error should name slot 0: %s", err.msg);
	p = anon(0x3200000000ull, 4096);
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EEXIST, &err, "gpa");
	p = anon(SLOT_GPA, 4096);
	p.backing.kind = VMM_BACKING_FILE;
	snprintf(p.backing.path, sizeof(p.backing.path), "/tmp/x");
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EACCES, &err, "backing.path");
	p = anon(SLOT_GPA, 4096);
	expect_err(vmm_memslot_delete(vm, 0, NULL, &err), -EPERM, &err, "slot");
	expect_err(vmm_memslot_delete(vm, 77, NULL, &err), -ENOENT, &err, "slot");
}

Test(vmm_memslot_ops, data_follows_the_slot_through_a_move_and_is_gone_after_delete)
{
	struct vmm_memslot_params p = anon(SLOT_GPA, 2 << 20);
	struct vmm_err err = { 0 };
	char buf[16] = "";
	uint32_t id;

	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(id, 1, "lowest free id after slot 0 is 1, got %u", id);
	cr_assert_eq(vmm_vm_memory_write(vm, SLOT_GPA + 4096, "moved data", 11, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_move(vm, id, 2 * SLOT_GPA, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_memory_read(vm, 2 * SLOT_GPA + 4096, buf, 11, &err), 0, "%s", err.msg);
	cr_assert_str_eq(buf, "moved data");
	cr_assert_eq(vmm_vm_memory_read(vm, SLOT_GPA + 4096, buf, 11, &err), -EFAULT,
		     "the old GPA must be unbacked after the move");
	cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_memory_read(vm, 2 * SLOT_GPA + 4096, buf, 11, &err), -EFAULT);
	/* The freed id is the lowest free one again. */
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(id, 1);
	p = anon(SLOT_GPA + (2 << 20), 4096);
	p.id = 1;
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EEXIST, &err, "slot");
}

/* Deletes an unrelated slot after faulting in two others through the
 * engine, and returns the effect. */
static struct vmm_effect churn_once(void)
{
	struct vmm_memslot_params a = anon(SLOT_GPA, 2 << 20), b = anon(2 * SLOT_GPA, 4096);
	struct vmm_err err = { 0 };
	struct vmm_effect fx;
	uint32_t ia, ib;
	char c;

	cr_assert_eq(vmm_memslot_create(vm, &a, &ia, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_create(vm, &b, &ib, NULL, &err), 0, "%s", err.msg);
	for (uint64_t off = 0; off < (2 << 20); off += 4096)
		vmm_vm_memory_read(vm, SLOT_GPA + off, &c, 1, &err);
	vmm_vm_memory_read(vm, 2 * SLOT_GPA, &c, 1, &err);
	cr_assert_eq(vmm_memslot_delete(vm, ib, &fx, &err), 0, "%s", err.msg);
	return fx;
}

Test(vmm_memslot_ops, slot_zap_all_on_obsoletes_the_root)
{
	struct vmm_effect fx = churn_once();

	cr_assert_eq(fx_get(&fx, "engine", "roots_obsoleted"), 1);
	cr_assert_gt(fx.duration_ns, 0);
	fx_get(&fx, "kernel", "mmu_shadow_zapped");	/* reported, whatever its value */
}

Test(vmm_memslot_ops, slot_zap_all_off_zaps_only_the_deleted_slot)
{
	struct vmm_err err = { 0 };
	struct vmm_effect fx;

	if (!(vmm_caps_get(vmm)->supported_quirks & (1u << 7)))
		cr_skip_test("this host cannot disable slot_zap_all");
	cr_assert_eq(vmm_vm_quirk_set(vm, "slot_zap_all", false, &err), 0, "%s", err.msg);
	fx = churn_once();
	cr_assert_eq(fx_get(&fx, "engine", "roots_obsoleted"), 0);
	/* Emptied tables above it may be detached too; no other leaf goes. */
	cr_assert_eq(fx_get(&fx, "engine", "leafs_zapped"), 1, "leafs zapped: %lld",
		     (long long)fx_get(&fx, "engine", "leafs_zapped"));
	cr_assert_eq(fx_get(&fx, "engine", "pages_4k") + fx_get(&fx, "engine", "pages_2m"), -1,
		     "exactly the deleted slot's one leaf leaves the tree");
}

Test(vmm_memslot_ops, protected_vm_refuses_slot_zap_all)
{
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_quirk_state st[16];
	struct vmm_vm *pv;

	vmm_t_params(&p, "prot", "builtin:hello");
	p.type = VMM_VM_TYPE_PROTECTED;
	cr_assert_eq(vmm_vm_create(vmm, &p, &pv, &err), 0, "%s", err.msg);
	expect_err(vmm_vm_quirk_set(pv, "slot_zap_all", true, &err), -EPERM, &err, "quirk");
	vmm_vm_quirks_get(pv, st, 16);
	for (size_t i = 0; i < vmm_quirk_desc_count; i++)
		if (!strcmp(st[i].name, "slot_zap_all"))
			cr_assert(!st[i].enabled && st[i].locked && st[i].why[0],
				  "slot_zap_all on a protected VM: enabled %d locked %d", st[i].enabled,
				  st[i].locked);
}

Test(vmm_memslot_ops, dirty_log_reports_pages_written_through_the_engine)
{
	struct vmm_memslot_params p = anon(SLOT_GPA, 1 << 20);
	struct vmm_err err = { 0 };
	uint64_t *bm, npages, ndirty;
	uint32_t id;

	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	expect_err(vmm_memslot_dirty_log(vm, id, false, &bm, &npages, &ndirty, &err),
		   -EINVAL, &err, "slot");
	cr_assert_eq(vmm_memslot_set_flags(vm, id, true, NULL, &err), 0, "%s", err.msg);
	vmm_vm_memory_write(vm, SLOT_GPA + 3 * 4096, "x", 1, &err);
	vmm_vm_memory_write(vm, SLOT_GPA + 9 * 4096, "y", 1, &err);
	cr_assert_eq(vmm_memslot_dirty_log(vm, id, true, &bm, &npages, &ndirty, &err), 0, "%s", err.msg);
	cr_assert_eq(npages, 256);
	cr_assert_eq(ndirty, 2, "expected pages 3 and 9 dirty, got %llu", (unsigned long long)ndirty);
	cr_assert_eq(bm[0], (1ull << 3) | (1ull << 9), "bitmap 0x%llx", (unsigned long long)bm[0]);
	free(bm);
	cr_assert_eq(vmm_memslot_dirty_log(vm, id, false, &bm, &npages, &ndirty, &err), 0);
	cr_assert_eq(ndirty, 0, "clear should have reset the log");
	free(bm);
}

/* A 1 MiB slot at SLOT_GPA holding "keep", and ops[0..1]: delete it,
 * create a 4 KiB slot at 3 * SLOT_GPA.  Returns the slot's id. */
static uint32_t txn_setup(struct vmm_memslot_op *ops, size_t nops)
{
	struct vmm_memslot_params a = anon(SLOT_GPA, 1 << 20);
	struct vmm_err err = { 0 };
	uint32_t id;

	cr_assert_eq(vmm_memslot_create(vm, &a, &id, NULL, &err), 0, "%s", err.msg);
	vmm_vm_memory_write(vm, SLOT_GPA, "keep", 5, &err);
	memset(ops, 0, nops * sizeof(*ops));
	ops[0] = (struct vmm_memslot_op){ .kind = VMM_OP_DELETE, .id = id };
	ops[1] = (struct vmm_memslot_op){ .kind = VMM_OP_CREATE, .create = anon(3 * SLOT_GPA, 4096) };
	return id;
}

/* The layout txn_setup made, untouched: boot RAM and slot id with its data. */
static void assert_txn_undone(uint32_t id)
{
	struct vmm_memslot_info slots[8];
	struct vmm_err err = { 0 };
	char buf[8] = "";
	size_t n;

	vmm_vm_memslots_get(vm, slots, 8, &n);
	cr_assert_eq(n, 2, "slot 0 and the original slot; got %zu", n);
	cr_assert_eq(slots[1].id, id, "the deleted slot is back under its id");
	cr_assert_eq(vmm_vm_memory_read(vm, SLOT_GPA, buf, 5, &err), 0, "%s", err.msg);
	cr_assert_str_eq(buf, "keep", "the deleted-then-restored slot kept its data");
	cr_assert_eq(vmm_vm_memory_read(vm, 3 * SLOT_GPA, buf, 1, &err), -EFAULT,
		     "the created slot is gone again");
}

Test(vmm_memslot_ops, failed_transaction_leaves_the_layout_as_it_was)
{
	struct vmm_memslot_op ops[3];
	struct vmm_memslot_info slots[8];
	struct vmm_err err = { 0 };
	uint32_t id = txn_setup(ops, 3), ids[3];
	size_t failed, n;
	char buf[8] = "";

	ops[2] = (struct vmm_memslot_op){ .kind = VMM_OP_MOVE, .id = 99, .gpa = 0 };
	cr_assert_eq(vmm_memslot_transaction(vm, ops, 3, ids, &failed, NULL, NULL, &err), -ENOENT);
	cr_assert_eq(failed, 2, "op 2 names a missing slot; got %zu", failed);
	assert_txn_undone(id);
	ops[2] = (struct vmm_memslot_op){ .kind = VMM_OP_CREATE, .create = anon(5 * SLOT_GPA, 4096) };
	cr_assert_eq(vmm_memslot_transaction(vm, ops, 3, ids, &failed, NULL, NULL, &err), 0, "%s", err.msg);
	vmm_vm_memslots_get(vm, slots, 8, &n);
	cr_assert_eq(n, 3);
	cr_assert_eq(vmm_vm_memory_read(vm, SLOT_GPA, buf, 1, &err), -EFAULT);
}

/* A commit hook that sees the finished layout and refuses it. */
struct commit_probe {
	int calls;
	size_t slots_seen;
	uint32_t first_id;
	unsigned fx_counters;
	int ret;
};

static int commit_probe_fn(void *arg, const uint32_t *ids, const struct vmm_effect *fx)
{
	struct commit_probe *p = arg;
	struct vmm_memslot_info slots[8];

	p->calls++;
	p->first_id = ids[0];
	p->fx_counters = fx->n;
	vmm_vm_memslots_get(vm, slots, 8, &p->slots_seen);
	return p->ret;
}

Test(vmm_memslot_ops, a_transaction_whose_commit_fails_is_undone_whole)
{
	struct commit_probe probe = { .ret = -EIO };
	struct vmm_txn_commit commit = { commit_probe_fn, &probe };
	struct vmm_memslot_op ops[2];
	struct vmm_err err = { 0 };
	uint32_t id = txn_setup(ops, 2), ids[2];
	size_t failed;
	char buf[8] = "";

	cr_assert_eq(vmm_memslot_transaction(vm, ops, 2, ids, &failed, &commit, NULL, &err), -EIO);
	cr_assert_eq(probe.calls, 1);
	cr_assert_eq(probe.slots_seen, 2, "the commit sees the new layout (boot RAM and the "
		     "created slot); got %zu slots", probe.slots_seen);
	cr_assert_eq(failed, SIZE_MAX, "no op failed; got %zu", failed);
	cr_assert(strstr(err.msg, "undone"), "%s", err.msg);
	/* The deleted slot's memory was kept until the commit. */
	assert_txn_undone(id);
	probe.ret = 0;
	cr_assert_eq(vmm_memslot_transaction(vm, ops, 2, ids, &failed, &commit, NULL, &err), 0,
		     "%s", err.msg);
	cr_assert_eq(probe.calls, 2);
	cr_assert_eq(probe.first_id, ids[0], "the commit sees the ops' ids: %u, expected %u",
		     probe.first_id, ids[0]);
	cr_assert_gt(probe.fx_counters, 0, "the commit sees the ops' effect already filled");
	cr_assert_eq(vmm_vm_memory_read(vm, SLOT_GPA, buf, 1, &err), -EFAULT);
}

Test(vmm_memslot_ops, a_running_guest_survives_churn_and_dma_sees_the_new_layout)
{
	struct vmm_memslot_params p = anon(SLOT_GPA, 64 << 10);
	struct vmm_err err = { 0 };
	uint32_t id;

	cr_assert_eq(vmm_vm_start(vm, &err), 0, "%s", err.msg);
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "round %d: %s", i, err.msg);
		cr_assert_eq(vmm_memslot_move(vm, id, 2 * SLOT_GPA, NULL, &err), 0, "%s", err.msg);
		cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	}
	struct vmm_vm_info in;

	vmm_vm_info_get(vm, &in);
	cr_assert_eq(in.state, VMM_VM_RUNNING, "guest state %s: %s", vmm_vm_state_name(in.state),
		     in.crash_reason);
}

static uint64_t memcheck_pattern(uint64_t off)
{
	return (off * 0x9e3779b97f4a7c15ull) ^ 0x5a5a5a5a5a5a5a5aull;
}

/* Seen from inside the guest: memcheck verifies, without writing, the
 * pattern the host put into a slot that was then moved; after the slot is
 * deleted the same guest reads MMIO (all-ones) there and slotd counts it. */
Test(vmm_memslot_ops, guest_finds_moved_data_and_a_deleted_range_is_mmio)
{
	struct vmm_memslot_params a = anon(SLOT_GPA, 64 << 10);
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info in;
	struct vmm_vm *g;
	uint64_t *buf = malloc(64 << 10);
	uint32_t id;

	vmm_t_params(&p, "mc", "builtin:memcheck");
	p.args[0] = 2 * SLOT_GPA;
	p.args[1] = (64 << 10) | (1ull << 63);	/* verify only */
	cr_assert_eq(vmm_vm_create(vmm, &p, &g, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_create(g, &a, &id, NULL, &err), 0, "%s", err.msg);
	for (uint64_t i = 0; i < (64 << 10) / 8; i++)
		buf[i] = memcheck_pattern(i * 8);
	cr_assert_eq(vmm_vm_memory_write(g, SLOT_GPA, buf, 64 << 10, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_move(g, id, 2 * SLOT_GPA, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_start(g, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_wait_state(g, VMM_T_STATE(VMM_VM_STOPPED) | VMM_T_STATE(VMM_VM_CRASHED),
				       VMM_T_WAIT_MS), 0);
	vmm_vm_info_get(g, &in);
	cr_assert(in.state == VMM_VM_STOPPED && in.exit_status == 0,
		  "memcheck at the new GPA: state %s, exit %u, %s", vmm_vm_state_name(in.state),
		  in.exit_status, in.crash_reason);
	cr_assert_eq(in.mmio_unmapped, 0);
	cr_assert_eq(vmm_memslot_delete(g, id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_start(g, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_wait_state(g, VMM_T_STATE(VMM_VM_STOPPED) | VMM_T_STATE(VMM_VM_CRASHED),
				       VMM_T_WAIT_MS), 0);
	vmm_vm_info_get(g, &in);
	cr_assert(in.state == VMM_VM_STOPPED && in.exit_status == 1,
		  "memcheck on the deleted range must fail: state %s, exit %u",
		  vmm_vm_state_name(in.state), in.exit_status);
	cr_assert_gt(in.mmio_unmapped, 0, "reads of the deleted range are MMIO exits slotd counts");
	free(buf);
}

/* Stress for the sanitizers: a guest DMAs from a slot forever (engine
 * reads on the vCPU thread) while this thread creates, moves and deletes
 * that very slot (engine writes, releases after grace periods).  Every
 * DMA either copies or reports BAD_SRC; nothing touches freed memory
 * (ASan) and no race goes unordered (TSan). */
Test(vmm_memslot_ops, dma_races_slot_churn_without_touching_freed_memory)
{
	struct vmm_memslot_params a = anon(SLOT_GPA, 64 << 10);
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_vm_info in;
	struct vmm_report rep[64];
	struct vmm_vm *g;
	uint64_t ok = 0, bad = 0, from = 0;
	size_t n;
	uint32_t id;

	vmm_t_params(&p, "dmaloop", "builtin:dmatest");
	p.args[0] = SLOT_GPA;		/* copy from the churned slot */
	p.args[1] = 16 << 10;
	cr_assert_eq(vmm_vm_create(vmm, &p, &g, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_start(g, &err), 0, "%s", err.msg);
	for (int i = 0; i < 300; i++) {
		cr_assert_eq(vmm_memslot_create(g, &a, &id, NULL, &err), 0, "%s", err.msg);
		if (i % 2)
			cr_assert_eq(vmm_memslot_move(g, id, 3 * SLOT_GPA, NULL, &err), 0, "%s", err.msg);
		cr_assert_eq(vmm_memslot_delete(g, id, NULL, &err), 0, "%s", err.msg);
		while (vmm_vm_reports_read(g, from, rep, 64, &n) == 0 && n) {
			for (size_t k = 0; k < n; k++)
				(rep[k].value & 0xffffffff) == 1 ? ok++ : bad++;
			from = rep[n - 1].seq + 1;
		}
	}
	vmm_vm_info_get(g, &in);
	cr_assert_eq(in.state, VMM_VM_RUNNING, "guest: %s %s", vmm_vm_state_name(in.state),
		     in.crash_reason);
	cr_assert_gt(ok + bad, 0, "the guest made no DMA at all");
	cr_assert_eq(vmm_vm_stop(g, &err), 0, "%s", err.msg);
}

/* The host's KVM_CAP_NR_MEMSLOTS is a hard limit: filling every slot id
 * works, one more is -ENOSPC naming "slot", and a freed id is reused. */
Test(vmm_memslot_ops, slot_count_stops_at_the_kernel_limit, .timeout = 120)
{
	unsigned max = (unsigned)vmm_caps_get(vmm)->max_memslots;
	struct vmm_memslot_params p = anon(SLOT_GPA, 4096);
	struct vmm_err err = { 0 };
	uint32_t id;

	cr_assert_gt(max, 1);
	for (unsigned i = 1; i < max; i++) {
		p.gpa = SLOT_GPA + (uint64_t)i * 4096;
		cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "slot %u of %u: %s",
			     i, max, err.msg);
	}
	p.gpa = 3 * SLOT_GPA;
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -ENOSPC, &err, "slot");
	cr_assert_eq(vmm_memslot_delete(vm, 1234, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(id, 1234, "the freed id comes back; got %u", id);
}

/* A slot may end exactly at the guest's physical address limit, not a
 * page beyond it. */
Test(vmm_memslot_ops, slots_end_at_most_at_the_guest_physical_address_limit)
{
	unsigned bits = vmm_caps_get(vmm)->guest_phys_bits;
	uint64_t limit = 1ull << bits;
	struct vmm_memslot_params p = anon(limit - 4096, 4096);
	struct vmm_err err = { 0 };
	uint32_t id;

	cr_assert_geq(bits, 32, "guest_phys_bits %u", bits);
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "last page below 2^%u: %s",
		     bits, err.msg);
	p = anon(limit - 4096, 8192);
	p.gpa = limit - 8192 + 4096;
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EINVAL, &err, "gpa");
	p = anon(limit, 4096);
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EINVAL, &err, "gpa");
}

/* hugetlb backings: with free huge pages they work; without, the error
 * says where to look.  The host's pool is read, never changed. */
Test(vmm_memslot_ops, hugetlb_backing_works_or_names_the_missing_pool)
{
	struct vmm_memslot_params p = anon(SLOT_GPA, 2 << 20);
	struct vmm_err err = { 0 };
	unsigned long free_2m = 0;
	char line[128];
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
	uint32_t id;
	int r;

	if (f && fgets(line, sizeof(line), f))
		free_2m = strtoul(line, NULL, 10);
	if (f)
		fclose(f);
	p.backing.kind = VMM_BACKING_HUGETLB;
	r = vmm_memslot_create(vm, &p, &id, NULL, &err);
	if (free_2m == 0) {
		cr_assert_neq(r, 0, "no free 2 MiB pages, yet the hugetlb slot was created");
		cr_assert(strstr(err.msg, "nr_hugepages"), "the error should point at the pool: %s",
			  err.msg);
		return;
	}
	cr_assert_eq(r, 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_memory_write(vm, SLOT_GPA + 4096, "huge", 5, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	p.size = 3 << 20;
	expect_err(vmm_memslot_create(vm, &p, &id, NULL, &err), -EINVAL, &err, "size");
}

/* Runs a guest sweeping 8 MiB until it has shadow pages, deletes an
 * unrelated 4 KiB slot, and returns the effect of that deletion. */
static struct vmm_effect churn_under_guest(const char *name, bool zap_all)
{
	struct vmm_memslot_params s = anon(SLOT_GPA, 4096);
	struct vmm_vm_params p;
	struct vmm_err err = { 0 };
	struct vmm_effect fx;
	struct vmm_report rep[8];
	struct vmm_vm *g;
	size_t n = 0;
	uint32_t id;

	vmm_t_params(&p, name, "builtin:memtouch");
	p.args[0] = 8 << 20;		/* working set; passes: until stopped */
	cr_assert_eq(vmm_vm_create(vmm, &p, &g, &err), 0, "%s", err.msg);
	if (!zap_all)
		cr_assert_eq(vmm_vm_quirk_set(g, "slot_zap_all", false, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_create(g, &s, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_start(g, &err), 0, "%s", err.msg);
	for (int i = 0; i < 500 && n < 4; i++) {	/* a few passes: warm */
		usleep(10000);
		vmm_vm_reports_read(g, 0, rep, 8, &n);
	}
	cr_assert_geq(n, 4, "memtouch reported no passes");
	cr_assert_eq(vmm_memslot_delete(g, id, &fx, &err), 0, "%s", err.msg);
	vmm_vm_stop(g, &err);
	return fx;
}

/* The quirk reaches the kernel: with slot_zap_all off, deleting a slot the
 * guest never touched zaps none of its shadow pages; with it on, shadow
 * paging (kvm_pvm here) drops them all.  The engine agrees either way. */
Test(vmm_memslot_ops, slot_zap_all_is_visible_in_kernel_and_engine_counters)
{
	struct vmm_effect on, off;

	if (!(vmm_caps_get(vmm)->supported_quirks & (1u << 7)))
		cr_skip_test("this host cannot disable slot_zap_all");
	on = churn_under_guest("zapon", true);
	off = churn_under_guest("zapoff", false);
	cr_assert_eq(fx_get(&off, "kernel", "mmu_shadow_zapped"), 0,
		     "quirk off: the kernel zapped %lld shadow pages for an untouched slot",
		     (long long)fx_get(&off, "kernel", "mmu_shadow_zapped"));
	cr_assert_eq(fx_get(&off, "engine", "roots_obsoleted"), 0);
	cr_assert_eq(fx_get(&on, "engine", "roots_obsoleted"), 1);
	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		cr_assert_gt(fx_get(&on, "kernel", "mmu_shadow_zapped"), 0,
			     "quirk on under shadow paging: the kernel should zap everything");
}

/* Waits (up to 5 s) until the backing cache has kept `want` backings in
 * all: the release callbacks run on the call_rcu thread after a grace
 * period, in the order the deletions queued them. */
static void bcache_wait_kept(uint64_t want)
{
	uint64_t reused, kept = 0;
	unsigned held;

	for (int i = 0; i < 5000; i++) {
		vmm_bcache_stats(vmm, &reused, &kept, &held);
		if (kept >= want)
			break;
		usleep(1000);
	}
	cr_assert_eq(kept, want, "the backing cache kept %llu backings, expected %llu",
		     (unsigned long long)kept, (unsigned long long)want);
}

static uint64_t bcache_reused(void)
{
	uint64_t reused, kept;
	unsigned held;

	vmm_bcache_stats(vmm, &reused, &kept, &held);
	return reused;
}

static uint64_t slot_hva(uint32_t id)
{
	struct vmm_memslot_info s;

	cr_assert_eq(vmm_vm_memslot_get(vm, id, &s), 0, "no slot %u", id);
	return s.hva;
}

Test(vmm_memslot_ops, a_released_small_anonymous_backing_is_reused_and_reads_as_zeros)
{
	struct vmm_memslot_params p = anon(SLOT_GPA, 4096);
	struct vmm_err err = { 0 };
	uint64_t reused0 = bcache_reused(), kept0, hva, r, k;
	unsigned held;
	char buf[8];
	uint32_t id;

	vmm_bcache_stats(vmm, &r, &kept0, &held);
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	hva = slot_hva(id);
	cr_assert_eq(vmm_vm_memory_write(vm, SLOT_GPA, "secret!", 8, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	bcache_wait_kept(kept0 + 1);

	/* The same size and protection takes it back, emptied. */
	p = anon(2 * SLOT_GPA, 4096);
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(bcache_reused(), reused0 + 1, "the create did not take the kept backing");
	cr_assert_eq(slot_hva(id), hva, "the new slot should have the released backing");
	cr_assert_eq(vmm_vm_memory_read(vm, 2 * SLOT_GPA, buf, sizeof(buf), &err), 0, "%s",
		     err.msg);
	cr_assert(!memcmp(buf, "\0\0\0\0\0\0\0\0", 8), "a reused backing must read as zeros");
	cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	bcache_wait_kept(kept0 + 2);

	/* Another size or a read-only slot does not take it. */
	p = anon(SLOT_GPA, 8192);
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	if (vmm_caps_get(vmm)->readonly_mem) {
		p = anon(SLOT_GPA, 4096);
		p.flags = VMM_SLOT_READONLY;
		cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
		cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	}
	cr_assert_eq(bcache_reused(), reused0 + 1, "a different size or protection was served");

	/* A shared anonymous backing is never kept: MADV_DONTNEED would not
	 * empty it.  Its release runs before the private one queued after it. */
	bcache_wait_kept(kept0 + 3 + vmm_caps_get(vmm)->readonly_mem);
	vmm_bcache_stats(vmm, &r, &k, &held);
	p = anon(SLOT_GPA, 4096);
	p.backing.shared = true;
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	p = anon(2 * SLOT_GPA, 16384);
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_memslot_delete(vm, id, NULL, &err), 0, "%s", err.msg);
	bcache_wait_kept(k + 1);
	usleep(20000);
	vmm_bcache_stats(vmm, &r, &k, &held);
	cr_assert_eq(k, kept0 + 4 + vmm_caps_get(vmm)->readonly_mem,
		     "the shared backing must not be kept");
}
