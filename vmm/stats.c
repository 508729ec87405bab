/* KVM binary stats (KVM_GET_STATS_FD): descriptors parsed once, values
 * read with one pread per call, and the vmm_vm_stats_foreach walk. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/internal.h"

/* Copies the raw descriptors (dsz bytes each) into src->descs. */
static void descs_parse(struct vmm_stats_src *src, const uint8_t *raw,
			unsigned n, size_t dsz, uint32_t name_size)
{
	for (unsigned i = 0; i < n; i++) {
		const struct kvm_stats_desc *d = (const void *)(raw + i * dsz);
		struct vmm_stats_desc *o = &src->descs[i];
		size_t end = d->offset + (size_t)d->size * 8;

		snprintf(o->name, sizeof(o->name), "%.*s", (int)name_size,
			 d->name);
		o->flags = d->flags;
		o->offset = d->offset;
		o->size = d->size;
		src->data_size = end > src->data_size ? end : src->data_size;
	}
	src->count = n;
}

/* Parses the header and descriptors of a stats fd; takes ownership of fd
 * (closed on failure).  A negative fd leaves src empty. */
int stats_src_open(struct vmm_stats_src *src, int fd)
{
	struct kvm_stats_header h;
	uint8_t *raw = NULL;
	size_t dsz;
	int r = -EIO;

	memset(src, 0, sizeof(*src));
	src->fd = fd;
	if (fd < 0)
		return 0;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		goto fail;
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	raw = malloc(dsz * h.num_desc);
	src->descs = calloc(h.num_desc, sizeof(*src->descs));
	if (!raw || !src->descs) {
		r = -ENOMEM;
		goto fail;
	}
	if (pread(fd, raw, dsz * h.num_desc, h.desc_offset) !=
	    (ssize_t)(dsz * h.num_desc))
		goto fail;
	descs_parse(src, raw, h.num_desc, dsz, h.name_size);
	src->data_offset = h.data_offset;
	free(raw);
	return 0;
fail:
	free(raw);
	stats_src_close(src);
	return r;
}

void stats_src_close(struct vmm_stats_src *src)
{
	if (src->fd >= 0)
		close(src->fd);
	free(src->descs);
	memset(src, 0, sizeof(*src));
	src->fd = -1;
}

/* One statistic's value: the sum of its buckets. */
static uint64_t desc_value(const struct vmm_stats_desc *d, const uint8_t *data)
{
	uint64_t v = 0, w;

	for (unsigned k = 0; k < d->size; k++) {
		memcpy(&w, data + d->offset + k * 8, 8);
		v += w;
	}
	return v;
}

int stats_src_pick(struct vmm_stats_src *src, const char *const *names, unsigned n,
		   uint64_t *out)
{
	uint8_t stack[2048], *data = stack;
	int r = 0;

	memset(out, 0, n * sizeof(*out));
	if (src->fd < 0 || !src->count)
		return 0;
	if (n > STATS_PICK_MAX)
		return -EINVAL;
	if (src->pick_names != names) {
		for (unsigned i = 0; i < n; i++) {
			src->pick_idx[i] = -1;
			for (unsigned k = 0; k < src->count; k++)
				if (!strcmp(src->descs[k].name, names[i]))
					src->pick_idx[i] = (int)k;
		}
		src->pick_names = names;
	}
	if (src->data_size > sizeof(stack) && !(data = malloc(src->data_size)))
		return -ENOMEM;
	if (pread(src->fd, data, src->data_size, (off_t)src->data_offset) !=
	    (ssize_t)src->data_size)
		r = -EIO;
	for (unsigned i = 0; i < n && !r; i++)
		if (src->pick_idx[i] >= 0)
			out[i] = desc_value(&src->descs[src->pick_idx[i]], data);
	if (data != stack)
		free(data);
	return r;
}

/* Reads every value once and calls fn per statistic. */
int stats_src_foreach(struct vmm_stats_src *src, const char *source, int vcpu,
		      int (*fn)(const struct vmm_stat *st, void *arg),
		      void *arg)
{
	struct vmm_stat st = { .source = source, .vcpu = vcpu };
	uint8_t *data;
	int r = 0;

	if (src->fd < 0 || !src->count)
		return 0;
	data = malloc(src->data_size);
	if (!data)
		return -ENOMEM;
	if (pread(src->fd, data, src->data_size, (off_t)src->data_offset) !=
	    (ssize_t)src->data_size) {
		free(data);
		return -EIO;
	}
	for (unsigned i = 0; i < src->count && !r; i++) {
		const struct vmm_stats_desc *d = &src->descs[i];

		st.name = d->name;
		st.value = desc_value(d, data);
		st.cumulative = (d->flags & KVM_STATS_TYPE_MASK) ==
				KVM_STATS_TYPE_CUMULATIVE;
		r = fn(&st, arg);
	}
	free(data);
	return r;
}

/* Exit counts of one vCPU by reason name (non-zero ones only). */
static int exits_foreach(struct vmm_vcpu *vcpu,
			 int (*fn)(const struct vmm_stat *st, void *arg),
			 void *arg)
{
	struct vmm_stat st = { .source = "exits", .vcpu = (int)vcpu->index,
			       .cumulative = true };
	int r = 0;

	for (unsigned i = 0; i < VMM_EXIT_REASONS && !r; i++) {
		st.value = __atomic_load_n(&vcpu->exits[i], __ATOMIC_RELAXED);
		if (!st.value)
			continue;
		st.name = i == VMM_EXIT_REASONS - 1 ? "other" :
			  vmm_exit_reason_name(i);
		r = fn(&st, arg);
	}
	return r;
}

static int devices_foreach(struct vmm_vm *vm,
			   int (*fn)(const struct vmm_stat *st, void *arg),
			   void *arg)
{
	const struct { const char *name; uint64_t *v; } c[] = {
		{ "serial_bytes", &vm->dev.serial_bytes },
		{ "dma_ops", &vm->dev.dma_ops },
		{ "dma_errors", &vm->dev.dma_errors },
		{ "mmio_unmapped", &vm->dev.mmio_unmapped },
		{ "io_unhandled", &vm->dev.io_unhandled },
		{ "reports", &vm->dev.reports },
	};
	struct vmm_stat st = { .source = "devices", .vcpu = -1,
			       .cumulative = true };
	int r = 0;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]) && !r; i++) {
		st.name = c[i].name;
		st.value = __atomic_load_n(c[i].v, __ATOMIC_RELAXED);
		r = fn(&st, arg);
	}
	return r;
}

/* VM kernel stats, each vCPU's kernel stats, exit counts, devices. */
#define ENGINE_STAT(f, c) { #f, offsetof(struct mmu_stats, f), c }

static const struct {
	const char *name;
	size_t offset;
	bool cumulative;
} engine_stats[] = {
	ENGINE_STAT(roots_obsoleted, true), ENGINE_STAT(leafs_zapped, true),
	ENGINE_STAT(tables_detached, true), ENGINE_STAT(tables_freed, true),
	ENGINE_STAT(tlb_flush_range, true), ENGINE_STAT(tlb_flush_full, true),
	ENGINE_STAT(faults, true), ENGINE_STAT(pages_4k, false),
	ENGINE_STAT(pages_2m, false), ENGINE_STAT(pages_1g, false),
	ENGINE_STAT(rcu_pending, false), ENGINE_STAT(last_invalidation_ns, false),
	ENGINE_STAT(generation, true), ENGINE_STAT(tables, false),
};

/* The engine's counters (source "engine"), named as in mmu/mmu.h, and its
 * policy as slot_zap_all 0/1. */
static int engine_foreach(struct vmm_vm *vm,
			  int (*fn)(const struct vmm_stat *st, void *arg), void *arg)
{
	struct vmm_stat st = { .source = "engine", .vcpu = -1 };
	struct mmu_stats m;
	int r = 0;

	mmu_stats_get(vm->mmu, &m);
	for (size_t i = 0; i < sizeof(engine_stats) / sizeof(engine_stats[0]) && !r; i++) {
		st.name = engine_stats[i].name;
		memcpy(&st.value, (const char *)&m + engine_stats[i].offset, sizeof(st.value));
		st.cumulative = engine_stats[i].cumulative;
		r = fn(&st, arg);
	}
	st.name = "slot_zap_all";
	st.value = m.slot_zap_all;
	st.cumulative = false;
	return r ? r : fn(&st, arg);
}

int vmm_vm_stats_foreach(struct vmm_vm *vm,
			 int (*fn)(const struct vmm_stat *st, void *arg),
			 void *arg)
{
	int r = stats_src_foreach(&vm->stats, "kvm", -1, fn, arg);

	for (unsigned i = 0; i < vm->nr_vcpus && !r; i++)
		r = stats_src_foreach(&vm->vcpus[i].stats, "kvm", (int)i, fn,
				      arg);
	for (unsigned i = 0; i < vm->nr_vcpus && !r; i++)
		r = exits_foreach(&vm->vcpus[i], fn, arg);
	if (!r)
		r = devices_foreach(vm, fn, arg);
	if (!r)
		r = engine_foreach(vm, fn, arg);
	return r;
}
