/* The control plane's persistence (ctl/store.c), without KVM: snapshots
 * and journals round-trip, the journal's rules (seq, torn records,
 * removal by hand, compaction), the files of the version before, and
 * what cannot be restored is kept aside. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/store.h"
#include "tests/lib/daemon.h"

static char dir[64];
static struct store *st;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-store-XXXXXX");
	cr_assert(mkdtemp(dir));
	cr_assert_eq(store_open(dir, &st), 0);
}

static void teardown(void)
{
	store_close(st);
	test_rmtree(dir);
}

TestSuite(ctl_store, .init = setup, .fini = teardown);

static struct store_vm_def def(const char *name)
{
	struct store_vm_def d = { .type = VMM_VM_TYPE_DEFAULT, .vcpus = 2, .memory = 64 << 20,
				  .mmio = VMM_MMIO_CRASH, .ram = VMM_RAM_ANON };

	snprintf(d.name, sizeof(d.name), "%s", name);
	snprintf(d.payload, sizeof(d.payload), "builtin:memtouch");
	d.args[0] = 1ull << 40;
	d.args[7] = 7;
	return d;
}

static struct vmm_memslot_info slot(uint32_t id, uint64_t gpa, uint64_t size)
{
	struct vmm_memslot_info s = { .id = id, .gpa = gpa, .size = size };

	return s;
}

/* The loaded VM of name, by loading the whole directory. */
struct loaded {
	struct store_vm v;
	unsigned calls;
	const char *refuse;	/* refuse this VM */
};

static int take(const struct store_vm *v, char *why, size_t len, void *arg)
{
	struct loaded *l = arg;

	if (l->refuse && !strcmp(v->def.name, l->refuse)) {
		snprintf(why, len, "refused by the test");
		return -EINVAL;
	}
	l->calls++;
	l->v = *v;
	l->v.slots = malloc(v->nslots * sizeof(*v->slots) + 1);
	if (v->nslots)
		memcpy(l->v.slots, v->slots, v->nslots * sizeof(*v->slots));
	return 0;
}

static struct loaded load(unsigned want_loaded, unsigned want_failed)
{
	struct loaded l = { 0 };
	unsigned loaded, failed;
	struct store *s2;

	/* A fresh store, as a restarted slotd opens it. */
	cr_assert_eq(store_open(dir, &s2), 0);
	cr_assert_eq(store_load(s2, take, &l, &loaded, &failed), 0);
	store_close(s2);
	cr_assert_eq(loaded, want_loaded, "loaded %u, expected %u", loaded, want_loaded);
	cr_assert_eq(failed, want_failed, "failed %u, expected %u", failed, want_failed);
	return l;
}

static char *file(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return test_slurp(path);
}

Test(ctl_store, a_snapshot_round_trips_definition_quirks_and_slots)
{
	struct store_vm_def d = def("a");
	struct vmm_memslot_info s[3] = { slot(1, 0x100000000, 0x1000), slot(4, 0x200000000, 4 << 20),
					 slot(2, 0x300000000, 0x2000) };
	struct vmm_err e = { 0 };
	uint64_t quirks = vmm_quirks_all() & ~vmm_quirk_slot_zap_all();
	struct loaded l;

	s[0].slot_flags = VMM_SLOT_READONLY | VMM_SLOT_DIRTY_LOG;
	s[1].backing.kind = VMM_BACKING_HUGETLB;
	s[2].backing.kind = VMM_BACKING_FILE;
	s[2].backing.shared = true;
	s[2].backing.offset = 0x3000;
	snprintf(s[2].backing.path, sizeof(s[2].backing.path), "/srv/a \"b\"\\c\tü.img");
	cr_assert_eq(store_snapshot(st, &d, quirks, s, 3, &e), 0, "%s", e.msg);
	l = load(1, 0);
	cr_assert_eq(memcmp(&l.v.def, &d, sizeof(d)), 0, "the definition comes back as written");
	cr_assert_eq(l.v.quirks_enabled, quirks, "quirks: 0x%llx",
		     (unsigned long long)l.v.quirks_enabled);
	cr_assert_eq(l.v.version, 2);
	cr_assert_eq(l.v.nslots, 3);
	/* Sorted by GPA; each slot as written (hugetlb's page size filled). */
	s[1].backing.hugepage_size = 2u << 20;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(l.v.slots[i].id, s[i].id);
		cr_assert_eq(l.v.slots[i].gpa, s[i].gpa);
		cr_assert_eq(l.v.slots[i].size, s[i].size);
		cr_assert_eq(l.v.slots[i].slot_flags, s[i].slot_flags);
		cr_assert_eq(l.v.slots[i].backing.kind, s[i].backing.kind);
		cr_assert_eq(l.v.slots[i].backing.offset, s[i].backing.offset);
		cr_assert_eq(l.v.slots[i].backing.hugepage_size, s[i].backing.hugepage_size);
		cr_assert_str_eq(l.v.slots[i].backing.path, s[i].backing.path);
	}
	free(l.v.slots);
}

Test(ctl_store, journal_records_replay_on_top_of_the_snapshot)
{
	struct store_vm_def d = def("j");
	struct vmm_memslot_info a = slot(1, 0x100000000, 0x1000), b = slot(2, 0x200000000, 0x1000);
	struct vmm_err e = { 0 };
	struct loaded l;

	cr_assert_eq(store_slot_put(st, "j", &a, &e), -ESTALE,
		     "no snapshot yet: a snapshot must be written instead");
	cr_assert_eq(store_snapshot(st, &d, vmm_quirks_all(), &a, 1, &e), 0);
	cr_assert_eq(store_slot_put(st, "j", &b, &e), 0, "%s", e.msg);
	a.gpa = 0x500000000;
	cr_assert_eq(store_slot_put(st, "j", &a, &e), 0);
	cr_assert_eq(store_slot_del(st, "j", 2, &e), 0);
	l = load(1, 0);
	cr_assert_eq(l.v.replayed, 3, "three records replayed, got %u", l.v.replayed);
	cr_assert_eq(l.v.nslots, 1, "slot 2 was deleted");
	cr_assert_eq(l.v.slots[0].gpa, 0x500000000, "the put of slot 1 moved it");
	cr_assert(!l.v.torn);
	free(l.v.slots);
}

Test(ctl_store, a_torn_last_record_is_ignored_and_flagged)
{
	struct store_vm_def d = def("t");
	struct vmm_memslot_info a = slot(1, 0x100000000, 0x1000);
	struct vmm_err e = { 0 };
	struct loaded l;
	char path[256];
	int fd;

	cr_assert_eq(store_snapshot(st, &d, vmm_quirks_all(), NULL, 0, &e), 0);
	cr_assert_eq(store_slot_put(st, "t", &a, &e), 0);
	snprintf(path, sizeof(path), "%s/vm-t.journal", dir);
	fd = open(path, O_WRONLY | O_APPEND);
	cr_assert(write(fd, "{\"seq\":2,\"put\":{\"id\":9,\"gp", 26) == 26);
	close(fd);
	l = load(1, 0);
	cr_assert(l.v.torn, "the torn record is reported");
	cr_assert_eq(l.v.nslots, 1, "only the whole record counts");
	free(l.v.slots);
}

Test(ctl_store, records_the_snapshot_already_holds_are_not_applied_twice)
{
	struct vmm_memslot_info v;
	struct store_vm sv;
	char why[128];

	/* A crash between a snapshot and the emptying of its journal: the
	 * journal's records up to the snapshot's seq are in it already. */
	cr_assert_eq(store_parse("{\"version\":2,\"seq\":5,\"vm\":{\"name\":\"s\",\"vcpus\":1,"
				 "\"memory\":16777216},\"memslots\":[]}",
				 "{\"seq\":4,\"put\":{\"id\":1,\"gpa\":4096,\"size\":4096}}\n"
				 "{\"seq\":6,\"put\":{\"id\":2,\"gpa\":8192,\"size\":4096}}\n",
				 &sv, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sv.nslots, 1, "only the record after seq 5 applies");
	v = sv.slots[0];
	cr_assert_eq(v.id, 2);
	store_vm_fini(&sv);
}

Test(ctl_store, a_journal_removed_by_hand_makes_the_next_change_a_snapshot)
{
	struct store_vm_def d = def("r");
	struct vmm_memslot_info a = slot(1, 0x100000000, 0x1000);
	struct vmm_err e = { 0 };
	char path[256];

	cr_assert_eq(store_snapshot(st, &d, vmm_quirks_all(), NULL, 0, &e), 0);
	cr_assert_eq(store_slot_put(st, "r", &a, &e), 0);
	snprintf(path, sizeof(path), "%s/vm-r.journal", dir);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(store_slot_put(st, "r", &a, &e), -ESTALE,
		     "its records went with it: the caller must write a snapshot");
}

Test(ctl_store, a_full_journal_asks_for_a_snapshot)
{
	struct store_vm_def d = def("f");
	struct vmm_memslot_info a = slot(1, 0x100000000, 0x1000);
	struct vmm_err e = { 0 };
	int r = 0, n = 0;

	cr_assert_eq(store_snapshot(st, &d, vmm_quirks_all(), NULL, 0, &e), 0);
	while (n < 1000 && (r = store_slot_put(st, "f", &a, &e)) == 0)
		n++;
	cr_assert_eq(r, -ESTALE);
	cr_assert_eq(n, 256, "a snapshot after 256 records, got %d", n);
	cr_assert_eq(store_snapshot(st, &d, vmm_quirks_all(), &a, 1, &e), 0);
	cr_assert_eq(store_slot_put(st, "f", &a, &e), 0, "the snapshot emptied the journal");
}

Test(ctl_store, files_of_the_version_before_are_read)
{
	struct store_vm sv;
	char why[128];

	/* As slotd wrote them before the control plane had its own format. */
	cr_assert_eq(store_parse("{\"version\":1,\"seq\":1,\"vm\":{\"name\":\"old\",\"type\":\"protected\","
				 "\"vcpus\":1,\"memory\":16777216,\"payload\":\"builtin:hello\",\"args\":[],"
				 "\"mmio\":\"ignore\",\"ram\":\"memfd\"},\"quirks_enabled\":[\"slot_zap_all\"],"
				 "\"memslots\":[{\"slot\":3,\"gpa\":\"0x100000000\",\"size\":8192,"
				 "\"flags\":[\"dirty_log\"],\"backing\":{\"kind\":\"memfd\",\"shared\":true}}],"
				 "\"restored\":false}",
				 "{\"put\":{\"slot\":4,\"gpa\":\"0x200000000\",\"size\":4096,\"flags\":[],"
				 "\"backing\":{\"kind\":\"anon\",\"shared\":false}},\"seq\":2}\n",
				 &sv, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sv.version, 1);
	cr_assert_eq(sv.def.type, VMM_VM_TYPE_PROTECTED);
	cr_assert_eq(sv.quirks_enabled, vmm_quirk_slot_zap_all());
	cr_assert_eq(sv.nslots, 2);
	cr_assert_eq(sv.slots[0].id, 3);
	cr_assert_eq(sv.slots[0].gpa, 0x100000000);
	cr_assert_eq(sv.slots[0].slot_flags, VMM_SLOT_DIRTY_LOG);
	cr_assert_eq(sv.slots[0].backing.kind, VMM_BACKING_MEMFD);
	cr_assert_eq(sv.slots[1].id, 4);
	store_vm_fini(&sv);
}

Test(ctl_store, bad_text_is_refused_with_a_reason)
{
	static const struct { const char *text, *why; } bad[] = {
		{ "{\"version\":1,\"vm\":{\"name\":\"ju", "not a slotd state file" },
		{ "[1,2]", "not a slotd state file" },
		{ "{\"version\":3,\"vm\":{}}", "format version" },
		{ "{\"vm\":{\"name\":\"bad name\",\"vcpus\":1,\"memory\":4096}}", "name" },
		{ "{\"vm\":{\"name\":\"x\",\"vcpus\":0,\"memory\":4096}}", "vcpus" },
		{ "{\"vm\":{\"name\":\"x\",\"vcpus\":1}}", "memory" },
		{ "{\"vm\":{\"name\":\"x\",\"vcpus\":1,\"memory\":-5}}", "memory" },
		{ "{\"vm\":{\"name\":\"x\",\"vcpus\":1,\"memory\":4096},\"memslots\":[{\"id\":1}]}",
		  "memslots[0]" },
		{ "{\"vm\":{\"name\":\"x\",\"vcpus\":1,\"memory\":4096},\"memslots\":[{\"id\":1,"
		  "\"gpa\":0,\"size\":1,\"backing\":{\"kind\":\"nfs\"}}]}", "memslots[0]" },
		{ "{\"vm\":{\"name\":\"x\",\"vcpus\":1,\"memory\":4096,\"args\":[\"a\"]}}", "args[0]" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct store_vm sv;
		char why[256] = "";

		cr_assert_eq(store_parse(bad[i].text, NULL, &sv, why, sizeof(why)), -EINVAL,
			     "case %zu must be refused", i);
		cr_assert(strstr(why, bad[i].why), "case %zu: '%s' should say %s", i, why, bad[i].why);
	}
}

Test(ctl_store, a_file_that_cannot_be_loaded_or_is_refused_is_kept_as_failed)
{
	struct store_vm_def a = def("a"), b = def("b");
	struct vmm_err e = { 0 };
	struct loaded l;
	char path[256];
	FILE *f;

	cr_assert_eq(store_snapshot(st, &a, vmm_quirks_all(), NULL, 0, &e), 0);
	cr_assert_eq(store_snapshot(st, &b, vmm_quirks_all(), NULL, 0, &e), 0);
	snprintf(path, sizeof(path), "%s/vm-junk.json", dir);
	f = fopen(path, "w");
	fputs("{\"vm\":", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/vm-c.json", dir);	/* names another VM */
	f = fopen(path, "w");
	fputs("{\"vm\":{\"name\":\"a\",\"vcpus\":1,\"memory\":4096}}", f);
	fclose(f);
	{
		struct loaded r = { .refuse = "b" };
		unsigned loaded, failed;
		struct store *s2;

		cr_assert_eq(store_open(dir, &s2), 0);
		cr_assert_eq(store_load(s2, take, &r, &loaded, &failed), 0);
		store_close(s2);
		cr_assert_eq(loaded, 1);
		cr_assert_eq(failed, 3, "junk, the misnamed file and the refused VM: %u", failed);
		free(r.v.slots);
	}
	snprintf(path, sizeof(path), "%s/vm-junk.json.failed", dir);
	cr_assert_eq(access(path, F_OK), 0, "kept as .failed");
	snprintf(path, sizeof(path), "%s/vm-b.json.failed", dir);
	cr_assert_eq(access(path, F_OK), 0, "a refused VM's file is kept as .failed too");
	snprintf(path, sizeof(path), "%s/vm-c.json.failed", dir);
	cr_assert_eq(access(path, F_OK), 0);
	l = load(1, 0);
	cr_assert_str_eq(l.v.def.name, "a");
	free(l.v.slots);
}

Test(ctl_store, a_write_that_fails_names_the_file_and_a_removed_vm_leaves_nothing)
{
	struct store_vm_def d = def("w");
	struct vmm_err e = { 0 };
	char path[256], *text;

	/* A directory where the snapshot goes: rename() cannot replace it. */
	snprintf(path, sizeof(path), "%s/vm-w.json", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/vm-w.json/x", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_lt(store_snapshot(st, &d, vmm_quirks_all(), NULL, 0, &e), 0);
	cr_assert_str_eq(e.file, "vm-w.json");
	cr_assert(strstr(e.msg, "could not be written"), "%s", e.msg);
	test_rmtree(path);
	snprintf(path, sizeof(path), "%s/vm-w.json", dir);
	cr_assert_eq(rmdir(path), 0);
	cr_assert_eq(store_snapshot(st, &d, vmm_quirks_all(), NULL, 0, &e), 0, "%s", e.msg);
	text = file("vm-w.json");
	cr_assert(text && strstr(text, "\"format\":\"slotd-vm\""), "%s", text);
	free(text);
	cr_assert_eq(store_vm_remove(st, "w", &e), 0);
	cr_assert_neq(access(path, F_OK), 0, "the snapshot is gone");
	snprintf(path, sizeof(path), "%s/vm-w.journal", dir);
	cr_assert_neq(access(path, F_OK), 0, "the journal is gone");
}
