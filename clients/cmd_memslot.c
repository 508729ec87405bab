/* slotctl memslot VERB: create, move, delete and inspect a VM's memslots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/slotctl.h"

/* {"vm": VM, "slot": SLOT}, or NULL (message printed) on a bad SLOT. */
static json_object *params_slot(const struct slotctl_args *a)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "vm", json_object_new_string(a->argv[0]));
	if (a->argc > 1 && slotctl_param_u64(p, "slot", a->argv[1], false)) {
		json_object_put(p);
		return NULL;
	}
	return p;
}

/* "readonly,dirty_log" -> ["readonly","dirty_log"]. */
static json_object *flags_array(const char *list)
{
	json_object *arr = json_object_new_array();
	const char *s = list ? list : "";

	while (*s) {
		size_t n = strcspn(s, ",");

		if (n)
			json_object_array_add(arr,
				json_object_new_string_len(s, (int)n));
		s += n + (s[n] == ',');
	}
	return arr;
}

/* params.backing = {"kind", "path", "offset", "hugepage_size", "shared"}
 * when any backing option was given (the daemon defaults to anon). */
static int backing_add(json_object *p, const struct slotctl_args *a)
{
	const char *kind = slotctl_args_opt(a, "backing");
	const char *path = slotctl_args_opt(a, "path");
	const char *offset = slotctl_args_opt(a, "offset");
	const char *huge = slotctl_args_opt(a, "hugepage-size");
	json_object *b;

	if (!kind && !path && !offset && !huge &&
	    !slotctl_args_opt(a, "shared"))
		return 0;
	b = json_object_new_object();
	json_object_object_add(p, "backing", b);
	if (!kind)
		kind = huge ? "hugetlb" : path ? "file" : "anon";
	json_object_object_add(b, "kind", json_object_new_string(kind));
	if (path)
		json_object_object_add(b, "path", json_object_new_string(path));
	if (slotctl_args_opt(a, "shared"))
		json_object_object_add(b, "shared", json_object_new_boolean(1));
	if ((offset && slotctl_param_u64(b, "offset", offset, true)) ||
	    (huge && slotctl_param_u64(b, "hugepage_size", huge, true)))
		return -EINVAL;
	return 0;
}

static const struct slotctl_optdesc create_opts[] = {
	{ "gpa", "G", "guest physical address (required)" },
	{ "size", "S", "size in bytes (required); K/M/G/T suffixes" },
	{ "slot", "N", "slot id (default: the lowest free one)" },
	{ "flags", "F,...", "readonly, dirty_log" },
	{ "backing", "KIND", "anon (default), memfd, hugetlb or file" },
	{ "path", "P", "file (under a slotd --file-dir) to map; implies "
	  "--backing file unless memfd" },
	{ "offset", "O", "offset into the file, page aligned" },
	{ "hugepage-size", "S", "hugetlb page size: 2M (default) or 1G" },
	{ "shared", NULL, "anon/file: map MAP_SHARED" },
	{ 0 },
};

/* memslot create VM --gpa --size ... -> memslot.create. */
static int memslot_create(struct slotctl *ctl, const struct slotctl_args *a)
{
	const char *gpa = slotctl_args_opt(a, "gpa");
	const char *size = slotctl_args_opt(a, "size");
	const char *slot = slotctl_args_opt(a, "slot");
	const char *flags = slotctl_args_opt(a, "flags");
	json_object *p = params_slot(a);

	if (!gpa || !size) {
		slotctl_err("memslot create: --gpa and --size are required");
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	if (slotctl_param_u64(p, "gpa", gpa, true) ||
	    slotctl_param_u64(p, "size", size, true) ||
	    (slot && slotctl_param_u64(p, "slot", slot, false)) ||
	    backing_add(p, a)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	if (flags)
		json_object_object_add(p, "flags", flags_array(flags));
	return slotctl_call_print(ctl, a->verb->method, p);
}

static int memslot_move(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = params_slot(a);

	if (!p || slotctl_param_u64(p, "gpa", a->argv[2], true)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	return slotctl_call_print(ctl, a->verb->method, p);
}

/* memslot delete|list VM [SLOT]: {vm[, slot]}. */
static int memslot_by_slot(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = params_slot(a);

	if (!p)
		return SLOTCTL_EXIT_USAGE;
	return slotctl_call_print(ctl, a->verb->method, p);
}

static const struct slotctl_optdesc flags_opts[] = {
	{ "dirty-log", "on|off", "track writes to the slot (required)" },
	{ 0 },
};

/* memslot flags VM SLOT --dirty-log on|off -> memslot.set_flags. */
static int memslot_flags(struct slotctl *ctl, const struct slotctl_args *a)
{
	const char *dirty = slotctl_args_opt(a, "dirty-log");
	json_object *p = params_slot(a);

	if (!dirty)
		slotctl_err("memslot flags: --dirty-log on|off is required");
	if (!p || !dirty || slotctl_param_onoff(p, "dirty_log", dirty)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	return slotctl_call_print(ctl, a->verb->method, p);
}

static const struct slotctl_optdesc dirty_opts[] = {
	{ "clear", NULL, "clear the log after reading it" },
	{ 0 },
};

/* Writes the set bits of a dirty bitmap (bit i = byte i/8, bit i%8) as
 * page ranges "1, 5-6" to f. */
static void pages_print(FILE *f, const unsigned char *map, size_t pages)
{
	int n = 0;

	for (size_t i = 0; i < pages; i++) {
		size_t j = i;

		if (!(map[i / 8] >> (i % 8) & 1))
			continue;
		while (j + 1 < pages && map[(j + 1) / 8] >> ((j + 1) % 8) & 1)
			j++;
		fprintf(f, j > i ? "%s%zu-%zu" : "%s%zu", n++ ? ", " : "",
			i, j);
		i = j;
	}
	if (!n)
		fputs("-", f);
}

/* For people: result.bitmap (base64) becomes dirty_pages, the page
 * indexes within the slot. */
static void dirty_pages_replace(json_object *result)
{
	json_object *bitmap, *pages;
	unsigned char *map;
	size_t len, n;
	char *text = NULL;
	size_t text_len = 0;
	FILE *m;

	if (!json_object_object_get_ex(result, "bitmap", &bitmap) ||
	    !json_object_object_get_ex(result, "pages", &pages) ||
	    slotctl_base64_decode(json_object_get_string(bitmap), &map, &len))
		return;
	n = (size_t)json_object_get_int64(pages);
	m = open_memstream(&text, &text_len);
	if (m) {
		pages_print(m, map, n < len * 8 ? n : len * 8);
		fclose(m);
		json_object_object_del(result, "bitmap");
		json_object_object_add(result, "dirty_pages",
				       json_object_new_string(text));
	}
	free(text);
	free(map);
}

/* memslot dirty-log VM SLOT [--clear]: dirty pages as ranges, not base64. */
static int memslot_dirty_log(struct slotctl *ctl,
			     const struct slotctl_args *a)
{
	json_object *p = params_slot(a), *result;
	int ret;

	if (!p)
		return SLOTCTL_EXIT_USAGE;
	json_object_object_add(p, "clear", json_object_new_boolean(
			       slotctl_args_opt(a, "clear") != NULL));
	ret = slotctl_call(ctl, a->verb->method, p, &result);
	if (ret)
		return ret;
	if (ctl->json) {
		slotctl_render_json(stdout, result);
	} else {
		dirty_pages_replace(result);
		slotctl_render_human(stdout, result);
	}
	json_object_put(result);
	return SLOTCTL_EXIT_OK;
}

/* memslot transaction VM JSON-OPS: ops checked to be an array first. */
static int memslot_transaction(struct slotctl *ctl,
			       const struct slotctl_args *a)
{
	json_object *p, *ops = NULL;
	const char *why = "not an array";

	if (slotctl_parse_json(a->argv[1], &ops, &why) ||
	    !json_object_is_type(ops, json_type_array)) {
		slotctl_err("memslot transaction: JSON-OPS must be a JSON "
			    "array of operations (%s): %s", why, a->argv[1]);
		json_object_put(ops);
		return SLOTCTL_EXIT_USAGE;
	}
	p = json_object_new_object();
	json_object_object_add(p, "vm", json_object_new_string(a->argv[0]));
	json_object_object_add(p, "ops", ops);
	return slotctl_call_print(ctl, a->verb->method, p);
}

/* ---- memslot apply ---------------------------------------------------- */

#define LAYOUT_FILE_MAX	(64u << 20)

/* The whole of path ("-": stdin), NUL-ended; NULL (message printed) when
 * it cannot be read or is larger than LAYOUT_FILE_MAX. */
static char *layout_read(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin, *m;
	char chunk[65536], *buf = NULL;
	size_t len = 0, got, total = 0;
	bool bad;

	if (!f) {
		slotctl_err("memslot apply: cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	m = open_memstream(&buf, &len);
	while (m && total <= LAYOUT_FILE_MAX && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		total += fwrite(chunk, 1, got, m);
	bad = !m || ferror(f) || total > LAYOUT_FILE_MAX;
	if (m)
		fclose(m);
	if (bad) {
		slotctl_err("memslot apply: cannot read %s: %s", path, !m ? "out of memory" :
			    total > LAYOUT_FILE_MAX ? "larger than 64 MiB" : strerror(errno));
		free(buf);
		buf = NULL;
	}
	if (f != stdin)
		fclose(f);
	return buf;
}

/* The slots array of a layout file: a bare array, {"slots": [...]}, or
 * memslot list's --json output ({"memslots": [...]}); other members are
 * ignored.  NULL (message printed) otherwise. */
static json_object *layout_slots(const char *path)
{
	char *text = layout_read(path);
	const char *why = "neither an array nor an object with \"slots\"";
	json_object *o = NULL, *slots = NULL;

	if (!text)
		return NULL;
	if (!slotctl_parse_json(text, &o, &why)) {
		if (json_object_is_type(o, json_type_array))
			slots = json_object_get(o);
		else if (json_object_object_get_ex(o, "slots", &slots) ||
			 json_object_object_get_ex(o, "memslots", &slots))
			slots = json_object_get(slots);
		if (slots && !json_object_is_type(slots, json_type_array)) {
			json_object_put(slots);
			slots = NULL;
			why = "\"slots\" is not an array";
		}
	}
	if (!slots)
		slotctl_err("memslot apply: %s is not a layout (%s): give a JSON array of "
			    "memslots, or {\"slots\": [...]}", path, why);
	json_object_put(o);
	free(text);
	return slots;
}

/* The length of result[key] (an array). */
static size_t list_len(json_object *result, const char *key)
{
	json_object *a;

	return json_object_object_get_ex(result, key, &a) ? json_object_array_length(a) : 0;
}

/* One row of the human view of a change. */
static void change_row(json_object *rows, const char *what, json_object *c, const char *detail)
{
	json_object *row = json_object_new_object(), *v;
	static const char *const keys[] = { "slot", "gpa", "size", "index" };
	static const char *const cols[] = { "slot", "gpa", "size", "entry" };

	json_object_object_add(row, "change", json_object_new_string(what));
	for (size_t i = 0; i < 4; i++)
		json_object_object_add(row, cols[i], json_object_object_get_ex(c, keys[i], &v) ?
				       json_object_get(v) : json_object_new_string("-"));
	json_object_object_add(row, "detail", json_object_new_string(detail));
	json_object_array_add(rows, row);
}

/* Rows for result[key], each with a detail. */
static void change_rows(json_object *rows, json_object *result, const char *key)
{
	json_object *a, *c, *v, *old;
	char detail[128];

	if (!json_object_object_get_ex(result, key, &a))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		c = json_object_array_get_idx(a, i);
		detail[0] = '\0';
		if (json_object_object_get_ex(c, "old_gpa", &v))
			snprintf(detail, sizeof(detail), "from %s", json_object_get_string(v));
		if (json_object_object_get_ex(c, "old", &old) &&
		    json_object_object_get_ex(old, "size", &v))
			snprintf(detail, sizeof(detail), "was %s bytes (new memory)",
				 json_object_get_string(v));
		if (json_object_object_get_ex(c, "dirty_log", &v))
			snprintf(detail, sizeof(detail), "dirty_log %s",
				 json_object_get_boolean(v) ? "on" : "off");
		change_row(rows, key, c, detail);
	}
}

/* For people: a line of counts, then one row per change. */
static void apply_print(json_object *result, const char *vm, bool dry_run)
{
	static const char *const lists[] = { "created", "moved", "replaced", "deleted", "flags" };
	json_object *rows = json_object_new_array(), *view = json_object_new_object(), *v;
	size_t total = 0;

	for (size_t i = 0; i < 5; i++) {
		total += list_len(result, lists[i]);
		change_rows(rows, result, lists[i]);
	}
	json_object_object_get_ex(result, "unchanged", &v);
	if (!total) {
		printf("%s: nothing to change; %s slot(s) already as wanted\n", vm,
		       slotctl_render_scalar(v));
	} else {
		printf("%s: %s%zu created, %zu moved, %zu replaced, %zu deleted, %zu dirty-logging "
		       "change(s), %s unchanged", vm, dry_run ? "dry run, nothing changed; "
		       "applying would make " : "",
		       list_len(result, "created"), list_len(result, "moved"),
		       list_len(result, "replaced"), list_len(result, "deleted"),
		       list_len(result, "flags"), slotctl_render_scalar(v));
		json_object_object_get_ex(result, "ops", &v);
		printf("; %s op(s) in one transaction\n", slotctl_render_scalar(v));
		json_object_object_add(view, "changes", json_object_get(rows));
		slotctl_render_human(stdout, view);
	}
	json_object_put(rows);
	json_object_put(view);
}

static const struct slotctl_optdesc apply_opts[] = {
	{ "dry-run", NULL, "only show what would change" },
	{ 0 },
};

/* memslot apply VM FILE [--dry-run] -> memslot.apply. */
static int memslot_apply(struct slotctl *ctl, const struct slotctl_args *a)
{
	bool dry_run = slotctl_args_opt(a, "dry-run") != NULL;
	json_object *p, *slots = layout_slots(a->argv[1]), *result;
	int ret;

	if (!slots)
		return SLOTCTL_EXIT_USAGE;
	p = json_object_new_object();
	json_object_object_add(p, "vm", json_object_new_string(a->argv[0]));
	json_object_object_add(p, "slots", slots);
	if (dry_run)
		json_object_object_add(p, "dry_run", json_object_new_boolean(1));
	ret = slotctl_call(ctl, a->verb->method, p, &result);
	if (ret)
		return ret;
	if (ctl->json)
		slotctl_render_json(stdout, result);
	else
		apply_print(result, a->argv[0], dry_run);
	json_object_put(result);
	return SLOTCTL_EXIT_OK;
}

static const struct slotctl_verb memslot_verbs[] = {
	{ "create", "memslot.create", "VM --gpa G --size S [--slot N] "
	  "[--flags readonly,dirty_log] [--backing anon|memfd|hugetlb|file] "
	  "[--path P] [--offset O] [--hugepage-size S] [--shared]",
	  "map new guest memory into VM", 1, 1, create_opts, memslot_create },
	{ "move", "memslot.move", "VM SLOT GPA", "move a slot to a new guest "
	  "address (same id, same backing)", 3, 3, NULL, memslot_move },
	{ "delete", "memslot.delete", "VM SLOT", "delete a slot; its "
	  "translations are zapped by the VM's policy", 2, 2, NULL,
	  memslot_by_slot },
	{ "list", "memslot.list", "VM", "list the VM's memslots", 1, 1, NULL,
	  memslot_by_slot },
	{ "flags", "memslot.set_flags", "VM SLOT --dirty-log on|off", "start "
	  "or stop dirty logging on a slot", 2, 2, flags_opts, memslot_flags },
	{ "dirty-log", "memslot.dirty_log", "VM SLOT [--clear]", "show the "
	  "slot's dirty pages (4 KiB page indexes within the slot; --json: the "
	  "base64 bitmap)", 2, 2, dirty_opts, memslot_dirty_log },
	{ "transaction", "memslot.transaction", "VM JSON-OPS", "apply several "
	  "changes at once, e.g. '[{\"op\":\"delete\",\"slot\":1}]'", 2, 2,
	  NULL, memslot_transaction },
	{ "apply", "memslot.apply", "VM FILE [--dry-run]", "make the VM's memslots "
	  "(boot RAM aside) the layout in FILE ('-': stdin), a JSON array of "
	  "memslots or {\"slots\": [...]}, as one transaction", 2, 2, apply_opts,
	  memslot_apply },
	{ 0 },
};

const struct slotctl_noun slotctl_noun_memslot = {
	"memslot", "guest memory slots of a VM", memslot_verbs,
};
