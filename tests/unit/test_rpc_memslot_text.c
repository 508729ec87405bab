/* The memslot replies, events and journal records are written as text
 * (rpc_memslot_text) instead of through a json-c tree: the text must be
 * exactly what rpc_memslot_json serializes to, for every kind of slot,
 * including file paths that need escaping. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rpc/internal.h"
#include "vmm/vmm.h"

static void check_same(const struct vmm_memslot_info *s)
{
	json_object *built = rpc_memslot_json(s), *parsed;
	struct printbuf *pb = printbuf_new();
	const char *want;
	int len;

	cr_assert(built && pb);
	len = rpc_memslot_text(pb, s);
	cr_assert_eq(len, pb->bpos, "returned length %d, buffer holds %d", len, pb->bpos);
	want = json_object_to_json_string_ext(built, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	cr_expect_eq((size_t)pb->bpos, strlen(want), "text %.*s\njson %s", pb->bpos, pb->buf,
		     want);
	cr_expect(!memcmp(pb->buf, want, strlen(want)), "text %.*s\njson %s", pb->bpos,
		  pb->buf, want);
	/* And it is JSON that reads back as the same object. */
	parsed = json_tokener_parse(pb->buf);
	cr_assert(parsed, "not JSON: %.*s", pb->bpos, pb->buf);
	cr_expect(json_object_equal(parsed, built));
	json_object_put(parsed);
	json_object_put(built);
	printbuf_free(pb);
}

Test(rpc_memslot_text, anon_slots_with_every_flag_combination)
{
	struct vmm_memslot_info s = {
		.id = 5, .gpa = 0x100000000ull, .size = 4096,
		.backing = { .kind = VMM_BACKING_ANON },
	};

	for (uint32_t f = 0; f < 4; f++) {
		s.slot_flags = (f & 1 ? VMM_SLOT_READONLY : 0) | (f & 2 ? VMM_SLOT_DIRTY_LOG : 0);
		s.backing.shared = f & 1;
		check_same(&s);
	}
}

Test(rpc_memslot_text, extreme_numbers)
{
	struct vmm_memslot_info s = { .backing = { .kind = VMM_BACKING_MEMFD } };

	check_same(&s);		/* slot 0 at gpa 0, size 0 */
	s.id = UINT32_MAX;
	s.gpa = UINT64_MAX;
	s.size = UINT64_MAX;
	check_same(&s);
	s.id = 32763;
	s.gpa = 0xabcdef0123456000ull;
	s.size = 1ull << 40;
	check_same(&s);
}

Test(rpc_memslot_text, hugetlb_sizes)
{
	struct vmm_memslot_info s = {
		.id = 2, .gpa = 1ull << 30, .size = 1ull << 30,
		.backing = { .kind = VMM_BACKING_HUGETLB, .shared = true },
	};

	check_same(&s);		/* hugepage_size 0 reads as 2 MiB */
	s.backing.hugepage_size = 1ull << 30;
	check_same(&s);
}

Test(rpc_memslot_text, file_paths_are_escaped_like_json_c)
{
	static const char *const paths[] = {
		"/var/lib/slotd/images/disk.img",
		"/srv/a \"quoted\" name",
		"/srv/back\\slash/and/slash",
		"/srv/tab\there/newline\nend",
		"/srv/ctl\x01\x1f",
		"/srv/caf\xc3\xa9/\xe2\x82\xac",
	};
	struct vmm_memslot_info s = {
		.id = 9, .gpa = 0x200000, .size = 0x200000, .slot_flags = VMM_SLOT_READONLY,
		.backing = { .kind = VMM_BACKING_FILE, .offset = 0x10000, .shared = true },
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(s.backing.path, sizeof(s.backing.path), "%s", paths[i]);
		check_same(&s);
	}
	s.backing.kind = VMM_BACKING_MEMFD;
	s.backing.offset = 0;
	check_same(&s);
}
