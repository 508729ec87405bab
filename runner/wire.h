/* Conversions between vmm's types and the runner channel's records
 * (runner/proto.h), shared by both ends.  Internal to runner/. */
#ifndef SLOTD_RUNNER_WIRE_H
#define SLOTD_RUNNER_WIRE_H

#include <stddef.h>

#include "runner/proto.h"
#include "vmm/types.h"

void wire_info_put(struct rm_info *w, const struct vmm_vm_info *in);
void wire_info_get(struct vmm_vm_info *in, const struct rm_info *w);

/* Bytes a slot record takes (struct rm_slot, path, padding to 8). */
size_t wire_slot_size(const struct vmm_backing *b);
/* Writes slot s (fd_index: its descriptor's index in the message, or ~0)
 * at p, which has wire_slot_size bytes; returns that size. */
size_t wire_slot_put(void *p, const struct vmm_memslot_info *s, uint32_t fd_index);
/* Reads the slot record at *p (left bytes remain); advances *p and *left.
 * -EPROTO when it does not fit or the path is too long. */
int wire_slot_get(const unsigned char **p, size_t *left, struct vmm_memslot_info *s,
		  uint32_t *fd_index);

void wire_effect_put(struct rm_effect *w, const struct vmm_effect *fx);
void wire_effect_get(struct vmm_effect *fx, const struct rm_effect *w);

void wire_err_put(struct rm_err *w, const struct vmm_err *e, int index);
/* field points into a static table of known field names (or NULL). */
void wire_err_get(struct vmm_err *e, const struct rm_err *w, int code);

#endif
