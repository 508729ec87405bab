/* mmu engine under concurrency: reader threads translate, read and write
 * random GPAs while a writer creates, moves, re-flags and deletes slots and
 * revokes each old backing as soon as the engine releases it.  Each page
 * carries its slot instance's number, so a reader can tell which slot a
 * translation really reached. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mmu/mmu.h"
#include "tests/lib/mmu_ref.h"

#define SLOT_SIZE (64 * 1024ull)
#define SLOT_PAGES (SLOT_SIZE / 4096)
#define POSITIONS 24 /* gpa = position * SLOT_SIZE */
#define LIVE_MAX 8
#define MAX_INST 40000
#define READERS 3

struct inst {
	uint8_t *mem;
	int pos; /* -1 once deleted */
	uint32_t flags;
};

struct conc {
	struct mmu *mmu;
	struct inst inst[MAX_INST];
	uint64_t deleted_epoch[MAX_INST]; /* atomic; 0 = live */
	uint64_t placed[MAX_INST];	  /* atomic; pos << 32 | epoch */
	uint64_t deletes;
	int released[MAX_INST]; /* atomic */
	uint64_t epoch;		/* atomic */
	int stop;		/* atomic */
	uint64_t violations;	/* atomic */
	uint64_t hits;		/* atomic */
	int pos_used[POSITIONS];
	unsigned seed;
};

static struct conc *C;

struct reader_arg {
	int index;
	unsigned seed;
};

/* Checks one translation of gpa: the page's tag names a slot instance
 * that was neither deleted nor moved away from gpa by a call that had
 * returned when the translation started. */
static void reader_check(struct conc *c, uint64_t start_epoch, uint64_t gpa,
			 void *hva)
{
	uint64_t *page = (uint64_t *)((uintptr_t)hva & ~(uintptr_t)4095);
	uint64_t tag = __atomic_load_n(page, __ATOMIC_RELAXED);
	uint64_t del, placed;
	bool stale;

	if (tag >= MAX_INST) {
		__atomic_add_fetch(&c->violations, 1, __ATOMIC_RELAXED);
		return;
	}
	del = __atomic_load_n(&c->deleted_epoch[tag], __ATOMIC_RELAXED);
	placed = __atomic_load_n(&c->placed[tag], __ATOMIC_RELAXED);
	stale = (del && del <= start_epoch) ||
		((placed >> 32) != gpa / SLOT_SIZE &&
		 (placed & 0xffffffffu) <= start_epoch);
	__atomic_add_fetch(stale ? &c->violations : &c->hits, 1,
			   __ATOMIC_RELAXED);
}

/* Publishes that a writer call finished: returns its epoch. */
static uint64_t epoch_next(struct conc *c)
{
	return __atomic_load_n(&c->epoch, __ATOMIC_RELAXED) + 1;
}

/* One reader step: translate-and-check, a copy out, a logged write. */
static void reader_step(struct conc *c, struct reader_arg *a)
{
	uint64_t gpa = (uint64_t)rand_r(&a->seed) % (POSITIONS * SLOT_SIZE);
	uint64_t start = __atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE);
	uint64_t val = gpa;
	uint8_t buf[96];
	void *hva;

	if (mmu_translate(c->mmu, gpa & ~7ull, 8, MMU_ACCESS_READ, &hva) == 0)
		reader_check(c, start, gpa, hva);
	/* Across a page end: bytes [4048, 4096) and the next page's [0, 48),
	 * which no one writes once the slot exists. */
	if (mmu_read(c->mmu, (gpa | 4095) - 47, buf, sizeof(buf)) == 0)
		(void)buf[0];
	/* Each reader writes its own 8 bytes in [64, 88): no race. */
	gpa = (gpa & ~4095ull) + 64 + 8 * (uint64_t)a->index;
	(void)mmu_write(c->mmu, gpa, &val, sizeof(val));
}

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	struct conc *c = C;

	MMU_EXPECT_EQ(mmu_reader_register(c->mmu), 0);
	for (unsigned i = 0; !__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE);
	     i++) {
		reader_step(c, a);
		mmu_reader_quiescent();
		if (i % 64 == 0) {
			/* As a vCPU entering KVM_RUN. */
			mmu_reader_offline();
			sched_yield();
			mmu_reader_online();
		}
	}
	mmu_reader_unregister(c->mmu);
	return NULL;
}

/* Release callback: from now on the backing faults on any access. */
static void inst_release(void *arg)
{
	struct inst *in = arg;
	struct conc *c = C;

	madvise(in->mem, SLOT_SIZE, MADV_DONTNEED);
	mprotect(in->mem, SLOT_SIZE, PROT_NONE);
	__atomic_store_n(&c->released[in - c->inst], 1, __ATOMIC_RELEASE);
}

static int free_position(struct conc *c)
{
	int p = rand_r(&c->seed) % POSITIONS;

	for (int k = 0; k < POSITIONS; k++, p = (p + 1) % POSITIONS)
		if (!c->pos_used[p])
			return p;
	return -1;
}

static void writer_create(struct conc *c, uint32_t id)
{
	struct inst *in = &c->inst[id];
	int pos = free_position(c);

	in->mem = mmu_ref_backing_map(SLOT_SIZE, 4096, 0);
	cr_assert_not_null(in->mem);
	for (uint64_t i = 0; i < SLOT_PAGES; i++)
		__atomic_store_n((uint64_t *)(in->mem + i * 4096), (uint64_t)id,
				 __ATOMIC_RELAXED);
	in->pos = pos;
	c->pos_used[pos] = 1;
	__atomic_store_n(&c->placed[id], (uint64_t)pos << 32, __ATOMIC_RELAXED);
	MMU_EXPECT_EQ(mmu_slot_create(c->mmu, id, pos * SLOT_SIZE, SLOT_SIZE,
				      in->mem, 0),
		      0);
}

static void writer_delete(struct conc *c, uint32_t id)
{
	struct inst *in = &c->inst[id];
	uint64_t e;

	/* Mostly the callback; sometimes the synchronous wait. */
	if (rand_r(&c->seed) % 4) {
		MMU_EXPECT_EQ(mmu_slot_delete(c->mmu, id, inst_release, in), 0);
	} else {
		MMU_EXPECT_EQ(mmu_slot_delete(c->mmu, id, NULL, NULL), 0);
		mmu_synchronize(c->mmu);
		inst_release(in);
	}
	c->pos_used[in->pos] = 0;
	in->pos = -1;
	c->deletes++;
	e = epoch_next(c);
	__atomic_store_n(&c->deleted_epoch[id], e, __ATOMIC_RELAXED);
	__atomic_store_n(&c->epoch, e, __ATOMIC_RELEASE);
}

/* Moves, re-flags or reads the dirty log of a live slot. */
static void writer_change(struct conc *c, uint32_t id)
{
	static uint64_t bitmap[SLOT_PAGES / 64 + 1];
	struct inst *in = &c->inst[id];
	int k = rand_r(&c->seed) % 4, pos = free_position(c);

	if (k == 0 && pos >= 0) {
		uint64_t e;

		/* In flux until the call returns: readers may see either. */
		__atomic_store_n(&c->placed[id],
				 (uint64_t)pos << 32 | 0xffffffffu,
				 __ATOMIC_RELAXED);
		MMU_EXPECT_EQ(mmu_slot_move(c->mmu, id, pos * SLOT_SIZE), 0);
		c->pos_used[in->pos] = 0;
		c->pos_used[pos] = 1;
		in->pos = pos;
		e = epoch_next(c);
		__atomic_store_n(&c->placed[id], (uint64_t)pos << 32 | e,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&c->epoch, e, __ATOMIC_RELEASE);
	} else if (k == 1 || k == 2) {
		in->flags ^= k == 1 ? MMU_SLOT_READONLY : MMU_SLOT_DIRTY_LOG;
		MMU_EXPECT_EQ(mmu_slot_set_flags(c->mmu, id, in->flags), 0);
	} else if (in->flags & MMU_SLOT_DIRTY_LOG) {
		MMU_EXPECT_EQ(mmu_dirty_log_get(c->mmu, id, bitmap,
						sizeof(bitmap), true),
			      0);
	}
}

static void writer_run(struct conc *c, unsigned ops, bool may_zap_all)
{
	uint32_t live[LIVE_MAX], nlive = 0, next = 1;

	for (unsigned i = 0; i < ops && next < MAX_INST; i++) {
		int k = rand_r(&c->seed) % 10;

		if (nlive < LIVE_MAX && (k < 4 || nlive < 2)) {
			writer_create(c, next);
			live[nlive++] = next++;
		} else if (k < 7) {
			uint32_t j = (uint32_t)rand_r(&c->seed) % nlive;

			writer_delete(c, live[j]);
			live[j] = live[--nlive];
		} else if (k < 9) {
			writer_change(c,
				      live[(uint32_t)rand_r(&c->seed) % nlive]);
		} else if (may_zap_all) {
			MMU_EXPECT_EQ(
				mmu_policy_set(c->mmu, rand_r(&c->seed) % 2),
				0);
		}
	}
	while (nlive)
		writer_delete(c, live[--nlive]);
}

struct conc_param {
	enum mmu_vm_type type;
	bool precise;
	unsigned seed;
};

ParameterizedTestParameters(mmu_concurrency,
			    readers_never_see_deleted_or_moved_slots)
{
	static struct conc_param params[] = {
		{ MMU_VM_DEFAULT, false, 11 },
		{ MMU_VM_PROTECTED, true, 12 },
	};

	return cr_make_param_array(struct conc_param, params, 2);
}

ParameterizedTest(struct conc_param *p, mmu_concurrency,
		  readers_never_see_deleted_or_moved_slots, .timeout = 150)
{
	struct mmu_config cfg = { p->type, p->precise, false };
	struct reader_arg args[READERS];
	pthread_t th[READERS];
	unsigned ops = mmu_ref_scale(60000);
	struct mmu_stats st;
	int released = 0;

	C = calloc(1, sizeof(*C));
	C->seed = p->seed;
	MMU_EXPECT_EQ(mmu_create(&cfg, &C->mmu), 0);
	for (int i = 0; i < READERS; i++) {
		args[i] = (struct reader_arg){ i, p->seed * 100 + (unsigned)i };
		pthread_create(&th[i], NULL, reader_main, &args[i]);
	}
	/* The writer (this thread) is not a registered reader: a control
	 * plane thread. */
	writer_run(C, ops, p->type == MMU_VM_DEFAULT);
	__atomic_store_n(&C->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	mmu_barrier(C->mmu);
	mmu_stats_get(C->mmu, &st);
	for (int i = 0; i < MAX_INST; i++)
		released += __atomic_load_n(&C->released[i], __ATOMIC_ACQUIRE);
	cr_assert_eq(C->violations, 0,
		     "expected no stale translation, got %llu",
		     (unsigned long long)C->violations);
	cr_assert_eq(
		(uint64_t)released, C->deletes,
		"expected every deleted backing released once: %llu, got %d",
		(unsigned long long)C->deletes, released);
	cr_assert_gt(C->hits, 0, "readers translated nothing");
	MMU_EXPECT_EQ(st.rcu_pending, 0);
	cr_log_info(
		"%u ops, %llu deletes, %llu checked translations, %llu faults",
		ops, (unsigned long long)C->deletes,
		(unsigned long long)C->hits, (unsigned long long)st.faults);
	mmu_destroy(C->mmu);
	for (uint32_t i = 1; i < MAX_INST && C->inst[i].mem; i++)
		mmu_ref_backing_unmap(C->inst[i].mem, SLOT_SIZE);
	free(C);
}
