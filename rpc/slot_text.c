/* Memslots and effects as JSON: the json-c objects of memslot.list and
 * the texts of a change's reply, event and journal, written in one go. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/printbuf.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"

static const char *const kind_names[] = {
	[VMM_BACKING_ANON] = "anon", [VMM_BACKING_MEMFD] = "memfd",
	[VMM_BACKING_HUGETLB] = "hugetlb", [VMM_BACKING_FILE] = "file",
};

void rpc_add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

void rpc_add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

void rpc_add_hex(json_object *o, const char *k, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	rpc_add_str(o, k, buf);
}

static json_object *backing_json(const struct vmm_backing *b)
{
	json_object *o = json_object_new_object();

	rpc_add_str(o, "kind", b->kind <= VMM_BACKING_FILE ? kind_names[b->kind] : "unknown");
	if (b->path[0]) {
		rpc_add_str(o, "path", b->path);
		rpc_add_u64(o, "offset", b->offset);
	}
	if (b->kind == VMM_BACKING_HUGETLB)
		rpc_add_u64(o, "hugepage_size", b->hugepage_size ? b->hugepage_size : 2u << 20);
	json_object_object_add(o, "shared", json_object_new_boolean(b->shared));
	return o;
}

static json_object *flags_json(uint32_t flags)
{
	json_object *a = json_object_new_array();

	if (flags & VMM_SLOT_READONLY)
		json_object_array_add(a, json_object_new_string("readonly"));
	if (flags & VMM_SLOT_DIRTY_LOG)
		json_object_array_add(a, json_object_new_string("dirty_log"));
	return a;
}

json_object *rpc_memslot_json(const struct vmm_memslot_info *s)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "slot", json_object_new_int64(s->id));
	rpc_add_hex(o, "gpa", s->gpa);
	rpc_add_u64(o, "size", s->size);
	json_object_object_add(o, "flags", flags_json(s->slot_flags));
	json_object_object_add(o, "backing", backing_json(&s->backing));
	return o;
}

/* ---- effects and texts ------------------------------------------------ */

/* A memslot change's reply, event and journal record are written as JSON
 * text in one go while the numbers are at hand: a tree of json-c objects
 * for them cost more than the rest of the reply (a 4 KiB create spent
 * 2.5 us building the slot's objects and 2.3 us per serialization of
 * them).  The text is what rpc_memslot_json would serialize to (a unit
 * test compares the two); the object that carries it serializes to it
 * and is never read back. */

/* An empty printbuf with room for a slot's reply or event: json-c's start at 32
 * bytes, and growing one to a reply's 250 took three reallocs. */
struct printbuf *rpc_text_buf(void)
{
	struct printbuf *pb = printbuf_new();

	if (pb && printbuf_memset(pb, 0, 0, 512) >= 0)
		printbuf_reset(pb);
	return pb;
}

void rpc_put_str(struct printbuf *pb, const char *s)
{
	printbuf_memappend(pb, s, (int)strlen(s));
}

static void put_u64(struct printbuf *pb, uint64_t v)
{
	char digits[20];

	printbuf_memappend(pb, digits, (int)rpc_u64_text(digits, v));
}

static void put_i64(struct printbuf *pb, int64_t v)
{
	if (v < 0)
		printbuf_memappend(pb, "-", 1);
	put_u64(pb, v < 0 ? -(uint64_t)v : (uint64_t)v);
}

/* key (with its punctuation, e.g. ",\"size\":") and the number v. */
static void put_key_u64(struct printbuf *pb, const char *key, uint64_t v)
{
	rpc_put_str(pb, key);
	put_u64(pb, v);
}

/* "0x..." in lower case, as add_hex writes it. */
void rpc_put_hex(struct printbuf *pb, uint64_t v)
{
	char digits[16];
	int n = (int)sizeof(digits);

	do {
		digits[--n] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	printbuf_memappend(pb, "\"0x", 3);
	printbuf_memappend(pb, digits + n, (int)sizeof(digits) - n);
	printbuf_memappend(pb, "\"", 1);
}

/* s as a JSON string: escaped by json-c (file paths may hold anything). */
static void put_json_str(struct printbuf *pb, const char *s)
{
	json_object *o = json_object_new_string(s);

	rpc_put_str(pb, o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE) : "null");
	json_object_put(o);
}

/* "side":{"name":delta,...} over fx's counters of that side that moved. */
static void put_side(struct printbuf *pb, const struct vmm_effect *fx, const char *side)
{
	bool first = true;

	rpc_put_str(pb, ",\"");
	rpc_put_str(pb, side);
	rpc_put_str(pb, "\":{");
	for (unsigned i = 0; i < fx->n && i < VMM_EFFECT_MAX; i++) {
		const char *cs = fx->counters[i].side, *name = fx->counters[i].name;

		if (!fx->counters[i].delta || strcmp(cs, side))
			continue;
		/* Counter names are identifiers: nothing to escape. */
		rpc_put_str(pb, first ? "\"" : ",\"");
		rpc_put_str(pb, name);
		rpc_put_str(pb, "\":");
		put_i64(pb, fx->counters[i].delta);
		first = false;
	}
	rpc_put_str(pb, "}");
}

/* {duration_ns, kernel_ns, engine_ns, kernel: {name: delta}, engine:
 * {...}} with the counters that changed (an absent counter did not: most
 * of the 18 are 0 for most changes, and every client paid to parse them). */
void rpc_put_effect(struct printbuf *pb, const struct vmm_effect *fx)
{
	put_key_u64(pb, "{\"duration_ns\":", fx->duration_ns);
	put_key_u64(pb, ",\"kernel_ns\":", fx->kernel_ns);
	put_key_u64(pb, ",\"engine_ns\":", fx->engine_ns);
	put_key_u64(pb, ",\"runner_ns\":", fx->runner_ns);
	put_key_u64(pb, ",\"apply_ns\":", fx->apply_ns);
	put_side(pb, fx, "kernel");
	put_side(pb, fx, "engine");
	rpc_put_str(pb, "}");
}

int rpc_memslot_text(struct printbuf *pb, const struct vmm_memslot_info *s)
{
	const struct vmm_backing *b = &s->backing;

	put_key_u64(pb, "{\"slot\":", s->id);
	rpc_put_str(pb, ",\"gpa\":");
	rpc_put_hex(pb, s->gpa);
	put_key_u64(pb, ",\"size\":", s->size);
	rpc_put_str(pb, ",\"flags\":[");
	if (s->slot_flags & VMM_SLOT_READONLY)
		rpc_put_str(pb, s->slot_flags & VMM_SLOT_DIRTY_LOG ? "\"readonly\"," : "\"readonly\"");
	if (s->slot_flags & VMM_SLOT_DIRTY_LOG)
		rpc_put_str(pb, "\"dirty_log\"");
	rpc_put_str(pb, "],\"backing\":{\"kind\":\"");
	rpc_put_str(pb, b->kind <= VMM_BACKING_FILE ? kind_names[b->kind] : "unknown");
	rpc_put_str(pb, "\"");
	if (b->path[0]) {
		rpc_put_str(pb, ",\"path\":");
		put_json_str(pb, b->path);
		put_key_u64(pb, ",\"offset\":", b->offset);
	}
	if (b->kind == VMM_BACKING_HUGETLB) {
		put_key_u64(pb, ",\"hugepage_size\":",
			    b->hugepage_size ? b->hugepage_size : 2u << 20);
	}
	rpc_put_str(pb, b->shared ? ",\"shared\":true}}" : ",\"shared\":false}}");
	return pb->bpos;
}

static int text_serialize(json_object *o, struct printbuf *pb, int level, int flags)
{
	const struct printbuf *t = json_object_get_userdata(o);

	(void)level;
	(void)flags;
	return printbuf_memappend(pb, t->buf, t->bpos);
}

static void text_free(json_object *o, void *userdata)
{
	(void)o;
	printbuf_free(userdata);
}

/* An object that serializes to t's text (taken over). */
json_object *rpc_text_object(struct printbuf *t)
{
	json_object *o = t ? json_object_new_object() : NULL;

	if (!o) {
		if (t)
			printbuf_free(t);
		return NULL;
	}
	json_object_set_serializer(o, text_serialize, t, text_free);
	return o;
}

json_object *rpc_effect_json(const struct vmm_effect *fx)
{
	struct printbuf *pb = rpc_text_buf();

	if (pb)
		rpc_put_effect(pb, fx);
	return rpc_text_object(pb);
}
