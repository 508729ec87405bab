/* The control plane's layout model (ctl/layout.c), without KVM: ordering,
 * overlap, ids, and a randomised run against a plain reference. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/layout.h"

static struct layout l;

static void setup(void)
{
	layout_init(&l);
}

static void teardown(void)
{
	layout_fini(&l);
}

TestSuite(ctl_layout, .init = setup, .fini = teardown);

static struct vmm_memslot_info slot(uint32_t id, uint64_t gpa, uint64_t size)
{
	struct vmm_memslot_info s = { .id = id, .gpa = gpa, .size = size };

	return s;
}

static void insert(uint32_t id, uint64_t gpa, uint64_t size)
{
	struct vmm_memslot_info s = slot(id, gpa, size);

	cr_assert_eq(layout_insert(&l, &s), 0);
}

/* Asserts the slots sorted by gpa are exactly ids[] (n of them). */
static void assert_order(const uint32_t *ids, size_t n)
{
	struct vmm_memslot_info *s;
	size_t got;

	cr_assert_eq(layout_get(&l, false, &s, &got), 0);
	cr_assert_eq(got, n, "expected %zu slots, got %zu", n, got);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(s[i].id, ids[i], "slot %zu: expected id %u, got %u", i, ids[i], s[i].id);
	for (size_t i = 1; i < n; i++)
		cr_assert_lt(s[i - 1].gpa, s[i].gpa, "not sorted by gpa at %zu", i);
	free(s);
}

Test(ctl_layout, slots_stay_sorted_by_gpa_through_insert_move_and_remove)
{
	insert(0, 0, 0x1000000);
	insert(3, 0x300000000, 0x1000);
	insert(1, 0x100000000, 0x1000);
	insert(2, 0x200000000, 0x2000);
	assert_order((uint32_t[]){ 0, 1, 2, 3 }, 4);
	cr_assert_eq(layout_move(&l, 1, 0x400000000), 0);
	assert_order((uint32_t[]){ 0, 2, 3, 1 }, 4);
	cr_assert_eq(layout_remove(&l, 3, NULL), 0);
	assert_order((uint32_t[]){ 0, 2, 1 }, 3);
	cr_assert_eq(layout_remove(&l, 3, NULL), -ENOENT, "removing twice is -ENOENT");
	cr_assert_eq(layout_move(&l, 9, 0), -ENOENT);
	cr_assert_eq(l.bytes, 0x1000000 + 0x2000 + 0x1000, "bytes sums the sizes: %llu",
		     (unsigned long long)l.bytes);
}

Test(ctl_layout, overlap_finds_the_slot_in_the_way_and_not_a_neighbour)
{
	const struct lslot *o;

	insert(1, 0x10000, 0x4000);
	insert(2, 0x20000, 0x1000);
	cr_assert_null(layout_overlap(&l, 0x14000, 0x1000, VMM_SLOT_ANY),
		       "touching the end is no overlap");
	cr_assert_null(layout_overlap(&l, 0xf000, 0x1000, VMM_SLOT_ANY),
		       "touching the start is no overlap");
	o = layout_overlap(&l, 0x13000, 0x2000, VMM_SLOT_ANY);
	cr_assert(o && o->id == 1, "the tail of slot 1 overlaps");
	o = layout_overlap(&l, 0x0, 0x100000, VMM_SLOT_ANY);
	cr_assert(o && o->id == 1, "a range covering both names the first");
	cr_assert_null(layout_overlap(&l, 0x11000, 0x1000, 1), "skip leaves the slot itself out");
	o = layout_overlap(&l, 0x1f000, 0x2000, 1);
	cr_assert(o && o->id == 2);
}

Test(ctl_layout, ids_are_the_lowest_free_unless_asked_for_and_limited)
{
	struct vmm_err e = { 0 };
	uint32_t id;

	for (uint32_t i = 0; i < 5; i++)
		insert(i, 0x100000ull * (i + 1), 0x1000);
	cr_assert_eq(layout_id_pick(&l, VMM_SLOT_ANY, 100, &id, &e), 0);
	cr_assert_eq(id, 5);
	layout_remove(&l, 2, NULL);
	cr_assert_eq(layout_id_pick(&l, VMM_SLOT_ANY, 100, &id, &e), 0);
	cr_assert_eq(id, 2, "a freed id is reused first, got %u", id);
	cr_assert_eq(layout_id_pick(&l, 7, 100, &id, &e), 0);
	cr_assert_eq(id, 7);
	cr_assert_eq(layout_id_pick(&l, 3, 100, &id, &e), -EEXIST);
	cr_assert_str_eq(e.field, "slot");
	cr_assert_eq(layout_id_pick(&l, 100, 100, &id, &e), -EINVAL, "an id must be below max");
	cr_assert_eq(layout_id_pick(&l, VMM_SLOT_ANY, 4, &id, &e), -ENOSPC,
		     "4 slots at a limit of 4");
	cr_assert(strstr(e.msg, "KVM_CAP_NR_MEMSLOTS"), "%s", e.msg);
}

Test(ctl_layout, a_slot_keeps_its_backing_and_compares_by_meaning)
{
	struct vmm_memslot_info a = slot(4, 0x100000000, 0x200000), b, c;

	a.slot_flags = VMM_SLOT_DIRTY_LOG;
	a.backing.kind = VMM_BACKING_FILE;
	a.backing.shared = true;
	a.backing.offset = 0x1000;
	snprintf(a.backing.path, sizeof(a.backing.path), "/srv/img/\"q\".bin");
	cr_assert_eq(layout_insert(&l, &a), 0);
	layout_slot_info(layout_find(&l, 4), &b);
	cr_assert(layout_same(&a, &b), "what goes in comes out");
	cr_assert_str_eq(b.backing.path, a.backing.path);
	c = b;
	c.gpa += 0x1000;
	cr_assert(!layout_same(&a, &c), "another gpa is another slot");
	c = b;
	snprintf(c.backing.path, sizeof(c.backing.path), "/srv/img/other");
	cr_assert(!layout_same(&a, &c), "another file is another slot");
	c = a;
	c.backing.kind = VMM_BACKING_HUGETLB;
	b = c;
	b.backing.hugepage_size = 2u << 20;
	cr_assert(layout_same(&b, &c), "hugetlb's default page size is 2M");
}

/* A randomised run: the model agrees with a plain array after every op. */
Test(ctl_layout, random_changes_agree_with_a_plain_reference)
{
	struct { bool used; uint64_t gpa, size; } ref[64] = { 0 };
	unsigned seed = 12345;

	for (int step = 0; step < 5000; step++) {
		uint32_t id = (uint32_t)(rand_r(&seed) % 64);
		uint64_t gpa = (uint64_t)(rand_r(&seed) % 256) << 16, size = 0x1000ull << (rand_r(&seed) % 5);
		bool clash = false;

		for (int k = 0; k < 64; k++)
			clash |= ref[k].used && k != (int)id && gpa < ref[k].gpa + ref[k].size &&
				 ref[k].gpa < gpa + size;
		cr_assert_eq(layout_overlap(&l, gpa, size, id) != NULL, clash,
			     "step %d: overlap of [0x%llx,+0x%llx) disagrees", step,
			     (unsigned long long)gpa, (unsigned long long)size);
		if (ref[id].used && rand_r(&seed) % 2) {
			cr_assert_eq(layout_remove(&l, id, NULL), 0);
			ref[id].used = false;
		} else if (ref[id].used && !clash) {
			cr_assert_eq(layout_move(&l, id, gpa), 0);
			ref[id].gpa = gpa;
		} else if (!ref[id].used && !clash) {
			insert(id, gpa, size);
			ref[id] = (typeof(ref[0])){ true, gpa, size };
		}
		for (int k = 0; k < 64; k++) {
			const struct lslot *s = layout_find(&l, (uint32_t)k);

			cr_assert_eq(s != NULL, ref[k].used, "step %d: slot %d presence", step, k);
			if (s)
				cr_assert_eq(s->gpa, ref[k].gpa, "step %d: slot %d gpa", step, k);
		}
	}
}
