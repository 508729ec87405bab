/* vmm types <-> runner channel records. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runner/wire.h"

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

/* A runner is untrusted (its guest may have taken it over): text from it
 * is cut at its field's size and cleaned before slotd uses it.  Printable
 * ASCII stays, anything else becomes '?'. */
static void text_clean(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t n = strnlen(src, slen);

	if (n >= dlen)
		n = dlen - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[n] = '\0';
}

/* The same for identifiers (counter names): [A-Za-z0-9_] only. */
static void ident_clean(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t n = strnlen(src, slen);

	if (n >= dlen)
		n = dlen - 1;
	for (size_t i = 0; i < n; i++) {
		char c = src[i];

		dst[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') ? c : '_';
	}
	dst[n] = '\0';
}

void wire_info_put(struct rm_info *w, const struct vmm_vm_info *in)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", in->name);
	snprintf(w->payload, sizeof(w->payload), "%s", in->payload);
	snprintf(w->crash_reason, sizeof(w->crash_reason), "%s", in->crash_reason);
	w->state = in->state;
	w->type = in->type;
	w->kvm_vm_type = in->kvm_vm_type;
	w->rules_by_slotd = in->rules_by_slotd;
	w->vcpus = in->vcpus;
	w->nr_memslots = in->nr_memslots;
	w->has_exit_status = in->has_exit_status;
	w->exit_status = in->exit_status;
	w->started = in->started;
	w->memory = in->memory_bytes;
	w->quirks_disabled = in->quirks_disabled;
	w->quirks_kernel = in->quirks_kernel;
	w->uptime_ns = in->uptime_ns;
	w->start_ns = in->start_ns;
	w->end_ns = in->end_ns;
	w->exits_total = in->exits_total;
	w->exits_io = in->exits_io;
	w->exits_mmio = in->exits_mmio;
	w->mmio_unmapped = in->mmio_unmapped;
	w->console_bytes = in->console_bytes;
	w->reports = in->reports;
}

void wire_info_get(struct vmm_vm_info *in, const struct rm_info *w)
{
	memset(in, 0, sizeof(*in));
	text_clean(in->name, sizeof(in->name), w->name, sizeof(w->name));
	text_clean(in->payload, sizeof(in->payload), w->payload, sizeof(w->payload));
	text_clean(in->crash_reason, sizeof(in->crash_reason), w->crash_reason,
		   sizeof(w->crash_reason));
	in->state = w->state <= VMM_VM_CRASHED ? (enum vmm_vm_state)w->state : VMM_VM_CRASHED;
	in->type = w->type == VMM_VM_TYPE_PROTECTED ? VMM_VM_TYPE_PROTECTED : VMM_VM_TYPE_DEFAULT;
	in->kvm_vm_type = w->kvm_vm_type;
	in->rules_by_slotd = w->rules_by_slotd;
	in->vcpus = w->vcpus;
	in->nr_memslots = w->nr_memslots;
	in->has_exit_status = w->has_exit_status;
	in->exit_status = w->exit_status;
	in->started = w->started;
	in->memory_bytes = w->memory;
	in->quirks_disabled = w->quirks_disabled;
	in->quirks_kernel = w->quirks_kernel;
	in->uptime_ns = w->uptime_ns;
	in->start_ns = w->start_ns;
	in->end_ns = w->end_ns;
	in->exits_total = w->exits_total;
	in->exits_io = w->exits_io;
	in->exits_mmio = w->exits_mmio;
	in->mmio_unmapped = w->mmio_unmapped;
	in->console_bytes = w->console_bytes;
	in->reports = w->reports;
}

size_t wire_slot_size(const struct vmm_backing *b)
{
	return sizeof(struct rm_slot) + ALIGN8(strnlen(b->path, sizeof(b->path) - 1));
}

size_t wire_slot_put(void *p, const struct vmm_memslot_info *s, uint32_t fd_index)
{
	size_t plen = strnlen(s->backing.path, sizeof(s->backing.path) - 1);
	struct rm_slot w = {
		.id = s->id, .slot_flags = s->slot_flags, .gpa = s->gpa, .size = s->size,
		.kind = s->backing.kind, .shared = s->backing.shared,
		.offset = s->backing.offset, .hugepage_size = s->backing.hugepage_size,
		.path_len = (uint32_t)plen, .fd_index = fd_index,
	};

	memcpy(p, &w, sizeof(w));
	memset((char *)p + sizeof(w), 0, ALIGN8(plen));
	memcpy((char *)p + sizeof(w), s->backing.path, plen);
	return sizeof(w) + ALIGN8(plen);
}

int wire_slot_get(const unsigned char **p, size_t *left, struct vmm_memslot_info *s,
		  uint32_t *fd_index)
{
	struct rm_slot w;
	size_t need;

	if (*left < sizeof(w))
		return -EPROTO;
	memcpy(&w, *p, sizeof(w));
	need = sizeof(w) + ALIGN8((size_t)w.path_len);
	if (w.path_len >= VMM_PATH_MAX || need > *left || w.kind > VMM_BACKING_FILE)
		return -EPROTO;
	memset(s, 0, sizeof(*s));
	s->id = w.id;
	s->slot_flags = w.slot_flags;
	s->gpa = w.gpa;
	s->size = w.size;
	s->backing.kind = (enum vmm_backing_kind)w.kind;
	s->backing.shared = w.shared;
	s->backing.offset = w.offset;
	s->backing.hugepage_size = w.hugepage_size;
	memcpy(s->backing.path, *p + sizeof(w), w.path_len);
	s->backing.path[w.path_len] = '\0';
	if (strlen(s->backing.path) != w.path_len)
		return -EPROTO;
	if (fd_index)
		*fd_index = w.fd_index;
	*p += need;
	*left -= need;
	return 0;
}

void wire_effect_put(struct rm_effect *w, const struct vmm_effect *fx)
{
	memset(w, 0, sizeof(*w));
	w->duration_ns = fx->duration_ns;
	w->kernel_ns = fx->kernel_ns;
	w->engine_ns = fx->engine_ns;
	for (unsigned i = 0; i < fx->n && i < RM_EFFECT_MAX; i++) {
		memcpy(w->c[i].side, fx->counters[i].side, sizeof(w->c[i].side));
		memcpy(w->c[i].name, fx->counters[i].name, sizeof(w->c[i].name));
		w->c[i].delta = fx->counters[i].delta;
		w->n++;
	}
}

/* The first of table's n strings equal to s (at most len bytes), or
 * "other". */
static const char *intern(const char *const *table, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(table[i]) == strnlen(s, len) && !strncmp(table[i], s, len))
			return table[i];
	return "other";
}

void wire_effect_get(struct vmm_effect *fx, const struct rm_effect *w)
{
	memset(fx, 0, sizeof(*fx));
	fx->duration_ns = w->duration_ns;
	fx->kernel_ns = w->kernel_ns;
	fx->engine_ns = w->engine_ns;
	for (unsigned i = 0; i < w->n && i < RM_EFFECT_MAX && i < VMM_EFFECT_MAX; i++) {
		snprintf(fx->counters[i].side, sizeof(fx->counters[i].side), "%s",
			 strncmp(w->c[i].side, "engine", sizeof(w->c[i].side)) ? "kernel" :
										"engine");
		ident_clean(fx->counters[i].name, sizeof(fx->counters[i].name), w->c[i].name,
			    sizeof(w->c[i].name));
		fx->counters[i].delta = w->c[i].delta;
		fx->n++;
	}
}

void wire_err_put(struct rm_err *w, const struct vmm_err *e, int index)
{
	memset(w, 0, sizeof(*w));
	w->index = index;
	snprintf(w->field, sizeof(w->field), "%s", e && e->field ? e->field : "");
	snprintf(w->msg, sizeof(w->msg), "%s", e ? e->msg : "");
}

/* The field names vmm's errors use; the static strings wire_err_get
 * points at. */
static const char *const field_names[] = {
	"name", "type", "vcpus", "memory", "payload", "mmio_policy", "ram_backing",
	"state", "quirk", "gpa", "size", "slot", "flags", "dirty_log", "readonly",
	"kind", "id", "length", "backing", "backing.kind", "backing.path",
	"backing.offset", "backing.hugepage_size", "backing.shared", "ops",
};

void wire_err_get(struct vmm_err *e, const struct rm_err *w, int code)
{
	memset(e, 0, sizeof(*e));
	e->code = code;
	text_clean(e->msg, sizeof(e->msg), w->msg, sizeof(w->msg));
	e->field = w->field[0] ? intern(field_names, sizeof(field_names) / sizeof(field_names[0]),
					w->field, sizeof(w->field)) : NULL;
	if (e->field && !strcmp(e->field, "other"))
		e->field = NULL;
}
