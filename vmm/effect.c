/* Effects: what one memslot change did on both sides, as deltas of the
 * kernel VM's stats-fd counters and of the engine's counters, and how
 * long its parts took. */
#include <string.h>

#include "vmm/internal.h"

static const char *const kstat_names[] = {
	"remote_tlb_flush", "remote_tlb_flush_requests", "mmu_shadow_zapped",
	"mmu_cache_miss", "mmu_recycled", "pages_4k", "pages_2m", "pages_1g",
};
#define NKSTATS (sizeof(kstat_names) / sizeof(kstat_names[0]))

_Static_assert(NKSTATS == FX_KSTATS, "FX_KSTATS counts kstat_names");

static void snap_take(struct vmm_vm *vm, struct fx_snapshot *s)
{
	stats_src_pick(&vm->stats, kstat_names, NKSTATS, s->k);
	mmu_stats_get(vm->mmu, &s->e);
}

static void fx_add(struct vmm_effect *fx, const char *side, const char *name,
		   int64_t delta)
{
	/* strnlen + memcpy: 18 of these per change, snprintf cost 2-4 us. */
	if (fx->n < VMM_EFFECT_MAX) {
		size_t ls = strnlen(side, sizeof(fx->counters[0].side) - 1);
		size_t ln = strnlen(name, sizeof(fx->counters[0].name) - 1);

		memcpy(fx->counters[fx->n].side, side, ls);
		fx->counters[fx->n].side[ls] = '\0';
		memcpy(fx->counters[fx->n].name, name, ln);
		fx->counters[fx->n].name[ln] = '\0';
		fx->counters[fx->n].delta = delta;
		fx->n++;
	}
}

#define FX_ENGINE(f) fx_add(fx, "engine", #f, (int64_t)(a.e.f - b->e.f))

void fx_finish(struct vmm_vm *vm, const struct fx_snapshot *b, struct vmm_effect *fx)
{
	struct fx_snapshot a;

	snap_take(vm, &a);
	fx->duration_ns = vmm_now_ns() - b->t0;
	fx->n = 0;
	for (size_t i = 0; i < NKSTATS; i++)
		fx_add(fx, "kernel", kstat_names[i], (int64_t)(a.k[i] - b->k[i]));
	FX_ENGINE(roots_obsoleted);
	FX_ENGINE(leafs_zapped);
	FX_ENGINE(tables_detached);
	FX_ENGINE(tables_freed);
	FX_ENGINE(tlb_flush_range);
	FX_ENGINE(tlb_flush_full);
	FX_ENGINE(faults);
	FX_ENGINE(pages_4k);
	FX_ENGINE(pages_2m);
	FX_ENGINE(pages_1g);
}

void fx_begin(struct vmm_vm *vm, struct fx_snapshot *b, struct vmm_effect *fx)
{
	memset(fx, 0, sizeof(*fx));
	b->t0 = vmm_now_ns();
	snap_take(vm, b);
}

int fx_kvm_set(struct vmm_vm *vm, struct vmm_effect *fx, uint32_t id,
		   uint32_t flags, uint64_t gpa, uint64_t size, void *hva)
{
	uint64_t t = vmm_now_ns();
	int r = vm_kvm_slot_set(vm, id, flags, gpa, size, hva);

	fx->kernel_ns += vmm_now_ns() - t;
	return r;
}
