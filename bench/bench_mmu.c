/* bench_mmu: the mmu engine's translation and invalidation costs, with
 * every comparison measured side by side in one run.
 *
 *  1. Translate: software-TLB hit, radix walk (TLB off) and a plain binary
 *     search over the same slots (what most VMMs do), at 1..4096 slots,
 *     keys from an inline PRNG.  Latency: each lookup's key depends on
 *     the previous result, so lookups cannot overlap and no repeating key
 *     cycle exists for a branch predictor to learn (CPUs differ in
 *     whether they learn one, which made cycle-based figures differ from
 *     host to host).  Throughput, separately: independent lookups, one
 *     and two threads.  Also while a writer churns an unrelated slot.
 *  2. Invalidation: deleting a 4 KiB, 2 MiB and 1 GiB slot, precise vs zap
 *     all, on VMs with 1, 16 and 256 GiB mapped (sparse MAP_NORESERVE
 *     backings, 2 MiB leaves), plus the refault each strategy leaves.
 *  3. Slot set: creating and deleting one 4 KiB slot next to 0..16000
 *     others, the part of a change that grows with the slot count.
 *  4. Table memory: the engine's table pages per GiB mapped, with 4 KiB,
 *     2 MiB and 1 GiB leaves.
 *
 * BENCH_QUICK=1 shortens every loop (smoke test).  Results also go to
 * $BENCH_OUT/mmu.json. */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench/lib/stats.h"
#include "mmu/mmu.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SLOT_SPACING (4 * MiB)
#define SLOT_SIZE (2 * MiB)

static unsigned quick;
static volatile uintptr_t sink;
static json_object *results;	/* $BENCH_OUT/mmu.json */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

/* Sparse backing whose address is aligned to align. */
static uint8_t *backing_map(uint64_t size, uint64_t align)
{
	uint8_t *p = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return (uint8_t *)(((uintptr_t)p + align - 1) &
			   ~(uintptr_t)(align - 1));
}

static void check(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "bench_mmu: %s: %s\n", what, strerror(-ret));
		exit(1);
	}
}

/* ---- translation ---------------------------------------------------- */

/* The baseline: a sorted region array searched by bisection. */
struct bs_slot {
	uint64_t gpa;
	uint64_t size;
	uintptr_t hva;
};

__attribute__((noinline)) static void *bs_translate(const struct bs_slot *s,
						    size_t n, uint64_t gpa,
						    size_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (gpa < s[mid].gpa)
			hi = mid;
		else if (gpa >= s[mid].gpa + s[mid].size)
			lo = mid + 1;
		else if (gpa + len > s[mid].gpa + s[mid].size)
			return NULL;
		else
			return (void *)(s[mid].hva + (gpa - s[mid].gpa));
	}
	return NULL;
}

struct tvm {
	struct mmu *mmu;
	struct bs_slot *bs;
	size_t nslots;
	uint64_t hot[32];     /* distinct TLB sets */
};

/* nslots 2 MiB slots, 4 MiB apart, faulted in; the same in bs[]. */
static void tvm_build(struct tvm *v, size_t nslots, bool tlb_off, bool precise)
{
	struct mmu_config cfg = { MMU_VM_DEFAULT, precise, tlb_off };
	uint8_t *mem = backing_map(nslots * SLOT_SIZE, SLOT_SIZE);
	check(mmu_create(&cfg, &v->mmu), "mmu_create");
	v->bs = calloc(nslots, sizeof(*v->bs));
	v->nslots = nslots;
	for (size_t i = 0; i < nslots; i++) {
		v->bs[i] = (struct bs_slot){ i * SLOT_SPACING, SLOT_SIZE,
					     (uintptr_t)mem + i * SLOT_SIZE };
		check(mmu_slot_create(v->mmu, (uint32_t)i, i * SLOT_SPACING,
				      SLOT_SIZE, mem + i * SLOT_SIZE, 0),
		      "slot");
	}
	for (size_t k = 0; k < 32; k++)
		v->hot[k] = (k % nslots) * SLOT_SPACING + k * 4 * KiB + 8;
}

static void tvm_free(struct tvm *v)
{
	mmu_destroy(v->mmu);
	free(v->bs);
}

enum tmode { T_TLB, T_WALK, T_BSEARCH, T_FLOOR };

__attribute__((noinline)) static void *call_baseline(const uint64_t *g,
						     uint64_t gpa)
{
	return (void *)(uintptr_t)(*g + gpa);
}

/* Zero, but the compiler cannot know: a lookup's result xor-ed in with
 * it makes the next key depend on that result. */
static volatile uint64_t dep_zero;

/* xorshift64: the next unpredictable key state. */
static inline uint64_t prng_next(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	return x ^ (x << 17);
}

/* A key from state x: a random slot (multiply-shift, no division) and a
 * random 8-byte-aligned offset in it; for T_TLB one of the 32 hot keys. */
static inline uint64_t key_of(const struct tvm *v, enum tmode mode, uint64_t x)
{
	if (mode == T_TLB)
		return v->hot[x >> 59];
	return (((x >> 32) * v->nslots) >> 32) * SLOT_SPACING + (x & (SLOT_SIZE - 8));
}

/* One lookup of gpa in mode. */
static inline void *lookup(struct tvm *v, enum tmode mode, uint64_t gpa)
{
	static const uint64_t base = 42;
	void *hva;

	if (mode == T_FLOOR)
		return call_baseline(&base, gpa);
	if (mode == T_BSEARCH)
		return bs_translate(v->bs, v->nslots, gpa, 8);
	if (mmu_translate(v->mmu, gpa, 8, MMU_ACCESS_READ, &hva))
		abort();
	return hva;
}

/* ns per lookup of mode over iters lookups with keys from an inline
 * PRNG (registered thread).  dep: each key depends on the previous
 * result (latency: nothing overlaps, no pattern to learn); else the
 * keys are independent and lookups may overlap (throughput). */
static double translate_loop(struct tvm *v, enum tmode mode, bool dep, uint64_t iters)
{
	uint64_t x = 0x9e3779b97f4a7c15ull, mask = dep ? dep_zero : 0, t0 = now_ns();
	uintptr_t acc = 0;

	for (uint64_t i = 0; i < iters; i++) {
		void *hva = lookup(v, mode, key_of(v, mode, x));

		x = prng_next(x ^ ((uintptr_t)hva & mask));
		acc += (uintptr_t)hva;
		if ((i & 1023) == 1023)
			mmu_reader_quiescent();
	}
	sink = acc;
	return (double)(now_ns() - t0) / (double)iters;
}

struct tjob {
	struct tvm *v;
	enum tmode mode;
	bool dep;
	uint64_t iters;
	double ns;
	pthread_barrier_t *bar;
};

static void *tjob_main(void *p)
{
	struct tjob *j = p;

	check(mmu_reader_register(j->v->mmu), "reader_register");
	translate_loop(j->v, j->mode, j->dep, j->iters / 16); /* warm up */
	pthread_barrier_wait(j->bar);
	j->ns = translate_loop(j->v, j->mode, j->dep, j->iters);
	mmu_reader_unregister(j->v->mmu);
	return NULL;
}

/* Mean ns per lookup per thread with nthreads running at once. */
static double translate_threads(struct tvm *v, enum tmode mode, bool dep, int nthreads,
				uint64_t iters)
{
	struct tjob jobs[2];
	pthread_t th[2];
	pthread_barrier_t bar;
	double sum = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		jobs[i] = (struct tjob){ v, mode, dep, iters, 0, &bar };
		pthread_create(&th[i], NULL, tjob_main, &jobs[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		sum += jobs[i].ns;
	}
	pthread_barrier_destroy(&bar);
	return sum / nthreads;
}

/* Best of rounds: other jobs share this machine, the minimum is the
 * figure least disturbed by them.  Modes interleave round by round.
 * best[]: floor, TLB hit, walk, binary search. */
static void translate_row(struct tvm *on, struct tvm *off, bool dep, int threads,
			  uint64_t iters, double best[4])
{
	int rounds = quick ? 1 : 5;

	for (int k = 0; k < 4; k++)
		best[k] = 1e9;
	for (int r = 0; r < rounds; r++) {
		double v[4] = {
			translate_threads(off, T_FLOOR, dep, threads, iters / 2),
			translate_threads(on, T_TLB, dep, threads, iters),
			translate_threads(off, T_WALK, dep, threads, iters / 2),
			translate_threads(off, T_BSEARCH, dep, threads, iters / 2),
		};

		for (int k = 0; k < 4; k++)
			best[k] = v[k] < best[k] ? v[k] : best[k];
	}
}

/* One table (latency or throughput) over every slot count. */
static void translate_table(bool dep, uint64_t iters, json_object *arr)
{
	static const size_t counts[] = { 1, 8, 64, 512, 4096 };

	printf("\n#### %s\n\n", dep ? "Latency: each lookup's key depends on the previous "
	       "result (nothing overlaps)" : "Throughput: independent lookups (they may overlap)");
	printf("| slots | threads | floor | TLB hit | radix walk | binary search | "
	       "bsearch / walk |\n|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct tvm on, off;

		tvm_build(&on, counts[c], false, true);
		tvm_build(&off, counts[c], true, true);
		for (int t = 1; t <= (dep ? 1 : 2); t++) {
			double b[4];
			json_object *o = json_object_new_object();

			translate_row(&on, &off, dep, t, iters, b);
			printf("| %zu | %d | %.2f | %.2f | %.2f | %.2f | %.2fx |\n", counts[c], t,
			       b[0], b[1], b[2], b[3], b[3] / b[2]);
			json_object_object_add(o, "kind", json_object_new_string(dep ? "latency" : "throughput"));
			json_object_object_add(o, "slots", json_object_new_int((int)counts[c]));
			json_object_object_add(o, "threads", json_object_new_int(t));
			json_object_object_add(o, "floor_ns", json_object_new_double(b[0]));
			json_object_object_add(o, "tlb_hit_ns", json_object_new_double(b[1]));
			json_object_object_add(o, "walk_ns", json_object_new_double(b[2]));
			json_object_object_add(o, "bsearch_ns", json_object_new_double(b[3]));
			json_object_array_add(arr, o);
		}
		tvm_free(&on);
		tvm_free(&off);
	}
}

static void bench_translate(void)
{
	uint64_t iters = quick ? 200000 : 4000000;
	json_object *arr = json_object_new_array();

	printf("\n### Translate: ns per lookup, best of %d, keys from an inline PRNG "
	       "(unpredictable: no repeating cycle a branch predictor could learn)\n\n"
	       "floor: the same loop with an out-of-line call doing one load instead of a "
	       "lookup. TLB hit: keys from 32 hot addresses (software TLB on); walk and "
	       "binary search: random addresses over all slots (TLB off).\n", quick ? 1 : 5);
	translate_table(true, iters, arr);
	translate_table(false, iters, arr);
	json_object_object_add(results, "translate", arr);
}

static uint64_t churn_faults;

struct churn {
	struct mmu *mmu;
	uint8_t *mem;
	int stop;
	uint64_t ops;
};

/* Creates and deletes an unrelated 4 KiB slot about every 20 us. */
static void *churn_main(void *p)
{
	struct churn *c = p;
	struct timespec pause = { 0, 20000 };

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		check(mmu_slot_create(c->mmu, 99999, 4096 * GiB, 4 * KiB,
				      c->mem, 0),
		      "churn create");
		check(mmu_slot_delete(c->mmu, 99999, NULL, NULL),
		      "churn delete");
		c->ops++;
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* One reader's ns per lookup while the churn thread invalidates. */
static double translate_churned(struct tvm *v, enum tmode mode, bool zap_all,
				uint64_t iters, double *inval_per_s)
{
	struct churn c = { v->mmu, backing_map(4 * KiB, 4 * KiB), 0, 0 };
	pthread_t th;
	uint64_t t0 = now_ns();
	struct mmu_stats st;
	double ns;

	check(mmu_policy_set(v->mmu, zap_all), "policy");
	pthread_create(&th, NULL, churn_main, &c);
	ns = translate_threads(v, mode, false, 1, iters);
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	*inval_per_s = (double)c.ops * 1e9 / (double)(now_ns() - t0);
	mmu_stats_get(v->mmu, &st);
	churn_faults = st.faults;
	return ns;
}

static uint64_t churn_faults_of(struct tvm *v)
{
	struct mmu_stats st;

	mmu_stats_get(v->mmu, &st);
	return st.faults;
}

static void bench_translate_churn(void)
{
	uint64_t iters = quick ? 200000 : 10000000;
	struct tvm on, off;

	printf("\n### Translate while a writer invalidates (64 slots, 1 "
	       "reader, "
	       "an unrelated 4 KiB slot created+deleted every ~20 us)\n\n");
	printf("| policy | TLB hit ns | radix walk ns | binary search ns | "
	       "invalidations/s | reader faults (TLB run, walk run) |\n"
	       "|---|---:|---:|---:|---:|---:|\n");
	tvm_build(&on, 64, false, true);
	tvm_build(&off, 64, true, true);
	for (int z = 0; z < 2; z++) {
		double r1, r2, r3, hit, walk, bs;
		uint64_t f_on = churn_faults_of(&on),
			 f_off = churn_faults_of(&off);
		uint64_t d_on, d_off;

		hit = translate_churned(&on, T_TLB, z, iters, &r1);
		d_on = churn_faults - f_on;
		walk = translate_churned(&off, T_WALK, z, iters, &r2);
		d_off = churn_faults - f_off;
		bs = translate_churned(&off, T_BSEARCH, z, iters, &r3);
		printf("| %s | %.2f | %.2f | %.2f | %.0f | %llu, %llu |\n",
		       z ? "zap all" : "precise", hit, walk, bs,
		       (r1 + r2 + r3) / 3, (unsigned long long)d_on,
		       (unsigned long long)d_off);
	}
	tvm_free(&on);
	tvm_free(&off);
}

/* ---- invalidation --------------------------------------------------- */

struct ivm {
	struct mmu *mmu;
	uint8_t *ram;
	uint64_t ram_size;
	uint8_t *victim;
};

/* A VM with ram_size of guest RAM at gpa 0 mapped by 2 MiB leaves. */
static void ivm_build(struct ivm *v, uint64_t ram_size)
{
	struct mmu_config cfg = { MMU_VM_DEFAULT, false, false };

	check(mmu_create(&cfg, &v->mmu), "mmu_create");
	check(mmu_reader_register(v->mmu), "reader_register");
	/* 2 MiB aligned but not 1 GiB congruent: 2 MiB leaves, like THP. */
	v->ram = backing_map(ram_size + 2 * MiB, GiB) + 2 * MiB;
	v->ram_size = ram_size;
	v->victim = backing_map(GiB + 2 * MiB, GiB) + 2 * MiB;
	check(mmu_slot_create(v->mmu, 1, 0, ram_size, v->ram, 0), "ram");
}

static void ivm_free(struct ivm *v)
{
	mmu_reader_unregister(v->mmu);
	mmu_destroy(v->mmu);
	munmap(v->ram - 2 * MiB, v->ram_size + 2 * MiB);
	munmap(v->victim - 2 * MiB, GiB + 2 * MiB);
}

/* Translates one byte per 2 MiB of [gpa, gpa + size); returns ns. */
static uint64_t ivm_touch(struct ivm *v, uint64_t gpa, uint64_t size)
{
	uint64_t t0 = now_ns();
	uintptr_t acc = 0;
	void *hva;

	for (uint64_t off = 0; off < size; off += 2 * MiB) {
		check(mmu_translate(v->mmu, gpa + off, 1, MMU_ACCESS_READ,
				    &hva),
		      "touch");
		acc += (uintptr_t)hva;
	}
	sink = acc;
	return now_ns() - t0;
}

struct icost {
	uint64_t caller_ns;
	uint64_t refault_ns;
	uint64_t faults;
};

/* One timed deletion of a size slot at gpa next to the RAM, with the RAM
 * faulted in first.  warm: an untimed precise delete of a neighbour runs
 * just before, so the timed call finds the engine's own data in cache
 * rather than evicted by the sweep over the RAM. */
static uint64_t ivm_delete_once(struct ivm *v, uint64_t gpa, uint64_t size,
				bool zap_all, bool warm)
{
	uint64_t t0;

	check(mmu_policy_set(v->mmu, false), "policy");
	/* No backlog: earlier zap-alls' trees are freed before we time. */
	mmu_barrier(v->mmu);
	ivm_touch(v, 0, v->ram_size);
	check(mmu_slot_create(v->mmu, 2, gpa, size, v->victim, 0), "victim");
	check(mmu_slot_create(v->mmu, 3, gpa + 2 * size, 4 * KiB,
			      v->victim + GiB, 0),
	      "neighbour");
	ivm_touch(v, gpa, size);
	ivm_touch(v, gpa + 2 * size, 4 * KiB);
	if (warm)
		check(mmu_slot_delete(v->mmu, 3, NULL, NULL), "neighbour");
	check(mmu_policy_set(v->mmu, zap_all), "policy");
	t0 = now_ns();
	check(mmu_slot_delete(v->mmu, 2, NULL, NULL), "delete");
	t0 = now_ns() - t0;
	if (!warm)
		check(mmu_slot_delete(v->mmu, 3, NULL, NULL), "neighbour");
	return t0;
}

/* Median caller cost (warm and cold) of deleting a size slot next to the
 * RAM, and what re-touching the RAM costs afterwards. */
static struct icost ivm_delete(struct ivm *v, uint64_t size, bool zap_all,
			       int reps, uint64_t *cold_ns)
{
	uint64_t warm[16], cold[16], refault[16], faults = 0;
	uint64_t gpa = (v->ram_size + GiB) & ~(GiB - 1);
	struct mmu_stats st;

	for (int r = 0; r < reps; r++) {
		cold[r] = ivm_delete_once(v, gpa, size, zap_all, false);
		warm[r] = ivm_delete_once(v, gpa, size, zap_all, true);
		mmu_stats_get(v->mmu, &st);
		faults = st.faults;
		refault[r] = ivm_touch(v, 0, v->ram_size);
		mmu_stats_get(v->mmu, &st);
		faults = st.faults - faults;
		mmu_reader_quiescent();
	}
	*cold_ns = median(cold, (size_t)reps);
	return (struct icost){ median(warm, (size_t)reps),
			       median(refault, (size_t)reps), faults };
}

/* One table row: a size slot deleted both ways; returns the caller costs
 * (precise warm, precise cold, zap-all warm) in ns. */
static void invalidate_row(struct ivm *v, uint64_t size, const char *name,
			   int reps, double out[3])
{
	uint64_t pc, zc;
	struct icost p = ivm_delete(v, size, false, reps, &pc);
	struct icost z = ivm_delete(v, size, true, reps, &zc);
	double pt = (double)(p.caller_ns + p.refault_ns);
	double zt = (double)(z.caller_ns + z.refault_ns);

	printf("| %llu GiB | %s | %.2f / %.2f | %.2f / %.2f | %.1f | "
	       "%.1f (%llu) | %.3f |\n",
	       (unsigned long long)(v->ram_size / GiB), name, p.caller_ns / 1e3,
	       pc / 1e3, z.caller_ns / 1e3, zc / 1e3, p.refault_ns / 1e3,
	       z.refault_ns / 1e3, (unsigned long long)z.faults, pt / zt);
	out[0] = (double)p.caller_ns;
	out[1] = (double)pc;
	out[2] = (double)z.caller_ns;
}

static void bench_invalidate(void)
{
	static const uint64_t rams[] = { 1 * GiB, 16 * GiB, 256 * GiB };
	static const uint64_t sizes[] = { 4 * KiB, 2 * MiB, 1 * GiB };
	static const char *const names[] = { "4 KiB", "2 MiB", "1 GiB" };
	int reps = quick ? 3 : 9;
	double c4k[3][3];
	json_object *o;

	printf("\n### Invalidation: delete one slot next to N GiB of mapped "
	       "RAM "
	       "(2 MiB leaves), medians of %d\n\n",
	       reps);
	printf("Caller cost warm (engine data in cache) / cold (right after a "
	       "sweep over all the RAM); refault = re-translating one byte per "
	       "2 MiB of RAM after the delete.\n\n");
	printf("| mapped | slot | precise caller us | zap-all caller us | "
	       "refault after precise us | refault after zap-all us (faults) | "
	       "precise total / zap-all total |\n"
	       "|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int m = 0; m < 3; m++) {
		struct ivm v;
		double row[3];

		ivm_build(&v, rams[m]);
		for (int s = 0; s < 3; s++) {
			invalidate_row(&v, sizes[s], names[s], reps, row);
			if (s == 0)
				memcpy(c4k[m], row, sizeof(row));
		}
		ivm_free(&v);
	}
	printf("\nPrecise 4 KiB delete, 256 GiB vs 1 GiB mapped: %.2fx warm, "
	       "%.2fx cold (target <= 2x); zap-all caller 256 vs 1 GiB: %.2fx "
	       "(target flat)\n",
	       c4k[2][0] / c4k[0][0], c4k[2][1] / c4k[0][1],
	       c4k[2][2] / c4k[0][2]);
	o = json_object_new_object();
	json_object_object_add(o, "precise_4k_256_vs_1_warm", bench_jd(c4k[2][0] / c4k[0][0]));
	json_object_object_add(o, "precise_4k_256_vs_1_cold", bench_jd(c4k[2][1] / c4k[0][1]));
	json_object_object_add(o, "zap_all_256_vs_1", bench_jd(c4k[2][2] / c4k[0][2]));
	for (int m = 0; m < 3; m++) {
		char key[48];

		snprintf(key, sizeof(key), "precise_4k_us_%llu_gib", (unsigned long long)(rams[m] / GiB));
		json_object_object_add(o, key, bench_jd(c4k[m][0] / 1e3));
	}
	json_object_object_add(results, "invalidate", o);
}

/* Caller cost of deleting a 1 GiB slot split into 4 KiB leaves by dirty
 * logging, on a VM of the given type and policy (16 GiB RAM mapped). */
static uint64_t split_delete(enum mmu_vm_type type, bool zap_all, int reps)
{
	uint64_t t[16];
	struct ivm v;

	for (int r = 0; r < reps; r++) {
		struct mmu_config cfg = { type, !zap_all, false };
		uint64_t t0;

		ivm_build(&v, 16 * GiB);
		mmu_reader_unregister(v.mmu);
		mmu_destroy(v.mmu);
		check(mmu_create(&cfg, &v.mmu), "mmu_create");
		check(mmu_reader_register(v.mmu), "reader");
		check(mmu_slot_create(v.mmu, 1, 0, v.ram_size, v.ram, 0),
		      "ram");
		check(mmu_slot_create(v.mmu, 2, 32 * GiB, GiB, v.victim, 0),
		      "slot");
		ivm_touch(&v, 0, v.ram_size);
		ivm_touch(&v, 32 * GiB, GiB);
		check(mmu_slot_set_flags(v.mmu, 2, MMU_SLOT_DIRTY_LOG),
		      "dirty");
		t0 = now_ns();
		check(mmu_slot_delete(v.mmu, 2, NULL, NULL), "delete");
		t[r] = now_ns() - t0;
		ivm_free(&v);
	}
	return median(t, (size_t)reps);
}

/* Where precise stops paying: it costs (precise - zap-all) more for the
 * caller, zap all then costs one fault per leaf of the working set. */
static void bench_crossover(void)
{
	int reps = quick ? 1 : 5;
	uint64_t zap = split_delete(MMU_VM_DEFAULT, true, reps);
	uint64_t detach = split_delete(MMU_VM_DEFAULT, false, reps);
	uint64_t leafwise = split_delete(MMU_VM_PROTECTED, false, reps);
	uint64_t cold;
	struct ivm v;
	struct icost z;
	double per_fault;

	ivm_build(&v, 16 * GiB);
	z = ivm_delete(&v, 4 * KiB, true, quick ? 3 : 5, &cold);
	ivm_free(&v);
	per_fault = (double)z.refault_ns / (double)(z.faults ? z.faults : 1);
	printf("\n### Crossover\n\nDeleting a 1 GiB slot held in 262144 4 KiB "
	       "leaves (dirty logging), 16 GiB RAM mapped: zap all %.1f us, "
	       "precise by subtree detach (default VM) %.1f us, precise leaf "
	       "by leaf (protected VM) %.1f us.  A refault costs %.0f ns per "
	       "leaf.\n\n",
	       zap / 1e3, detach / 1e3, leafwise / 1e3, per_fault);
	printf("| precise variant | extra caller cost vs zap all | precise is "
	       "cheaper once the working set exceeds |\n|---|---:|---:|\n");
	for (int k = 0; k < 2; k++) {
		double extra = (double)(k ? leafwise : detach) - (double)zap;
		double leaves = extra > 0 ? extra / per_fault : 0;

		printf("| %s | %.1f us | %.0f leaves (%.1f GiB in 2 MiB "
		       "leaves, "
		       "%.0f MiB in 4 KiB leaves) |\n",
		       k ? "leaf by leaf (protected)"
			 : "subtree detach (default)",
		       extra / 1e3, leaves, leaves * 2 / 1024,
		       leaves * 4 / 1024);
	}
}

/* ---- slot set ------------------------------------------------------- */

/* Median ns of creating and deleting one 4 KiB slot in the middle of
 * nothers 4 KiB slots (precise policy: the zap of an unmapped range is
 * nearly free, so what grows is the slot set's copy). */
static uint64_t slotset_change(size_t nothers, int reps)
{
	struct mmu_config cfg = { MMU_VM_DEFAULT, true, false };
	uint8_t *mem = backing_map(4 * KiB, 4 * KiB);
	uint64_t gpa = (nothers / 2) * 8 * KiB + 4 * KiB, *t, med;
	struct mmu *mmu;

	t = calloc((size_t)reps, sizeof(*t));
	check(mmu_create(&cfg, &mmu), "mmu_create");
	for (size_t i = 0; i < nothers; i++) {
		check(mmu_slot_create(mmu, (uint32_t)i, i * 8 * KiB, 4 * KiB,
				      mem, 0),
		      "slot");
		if ((i & 255) == 255)
			mmu_barrier(mmu);
	}
	for (int r = 0; r < reps; r++) {
		uint64_t t0 = now_ns();

		check(mmu_slot_create(mmu, 1u << 30, gpa, 4 * KiB, mem, 0),
		      "create");
		check(mmu_slot_delete(mmu, 1u << 30, NULL, NULL), "delete");
		t[r] = now_ns() - t0;
		/* Keep the backlog of old sets small, as a real caller would. */
		if ((r & 255) == 255)
			mmu_barrier(mmu);
	}
	mmu_destroy(mmu);
	munmap(mem, 8 * KiB);
	med = median(t, (size_t)reps);
	free(t);
	return med;
}

static void bench_slotset(void)
{
	static const size_t counts[] = { 0, 1000, 4000, 16000 };
	int reps = quick ? 201 : 4001;
	uint64_t ns[4];
	json_object *arr = json_object_new_array();

	printf("\n### Slot set: create + delete one 4 KiB slot next to N "
	       "others (median of %d)\n\n| other slots | create + delete us "
	       "|\n|---:|---:|\n",
	       reps);
	for (int c = 0; c < 4; c++) {
		ns[c] = slotset_change(counts[c], reps);
		printf("| %zu | %.2f |\n", counts[c], ns[c] / 1e3);
	}
	printf("\n16000 vs 0 other slots: %.2fx\n",
	       (double)ns[3] / (double)ns[0]);
	for (int c = 0; c < 4; c++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "slots", json_object_new_int((int)counts[c]));
		json_object_object_add(o, "create_delete_us", bench_jd(ns[c] / 1e3));
		json_object_array_add(arr, o);
	}
	json_object_object_add(results, "slotset", arr);
}

/* ---- table memory --------------------------------------------------- */

/* Table bytes for one 1 GiB slot faulted in whole; the backing's offset
 * from 1 GiB alignment decides the leaves (0: 1 GiB, 2 MiB: 2 MiB leaves,
 * 4 KiB: only 4 KiB leaves fit). */
static uint64_t table_bytes(uint64_t skew, uint64_t *leaves)
{
	struct mmu_config cfg = { MMU_VM_DEFAULT, true, true };
	uint8_t *mem = backing_map(2 * GiB, GiB);
	struct mmu_stats before, after;
	struct mmu *mmu;
	void *hva;

	check(mmu_create(&cfg, &mmu), "mmu_create");
	check(mmu_reader_register(mmu), "reader");
	mmu_stats_get(mmu, &before);
	check(mmu_slot_create(mmu, 1, 4 * GiB, GiB, mem + skew, 0), "slot");
	for (uint64_t off = 0; off < GiB; off += 4 * KiB) {
		check(mmu_translate(mmu, 4 * GiB + off, 1, MMU_ACCESS_READ, &hva), "translate");
		if ((off & (64 * MiB - 1)) == 0)
			mmu_reader_quiescent();
	}
	mmu_stats_get(mmu, &after);
	*leaves = after.pages_4k + after.pages_2m + after.pages_1g;
	mmu_reader_unregister(mmu);
	mmu_destroy(mmu);
	munmap(mem, 2 * GiB);
	return (after.tables - before.tables) * 4 * KiB;
}

static void bench_tables(void)
{
	static const struct {
		const char *name, *key;
		uint64_t skew;
	} kinds[] = {
		{ "4 KiB", "4k", 4 * KiB }, { "2 MiB", "2m", 2 * MiB }, { "1 GiB", "1g", 0 },
	};
	json_object *o = json_object_new_object();

	printf("\n### Table memory: engine table pages per GiB mapped (one 1 GiB slot, every "
	       "page translated)\n\n| leaves | leaf count | table KiB per GiB |\n|---|---:|---:|\n");
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		uint64_t leaves, bytes = table_bytes(kinds[k].skew, &leaves);

		printf("| %s | %llu | %.0f |\n", kinds[k].name, (unsigned long long)leaves,
		       bytes / 1024.0);
		json_object_object_add(o, kinds[k].key, json_object_new_int64((int64_t)(bytes / 1024)));
	}
	json_object_object_add(results, "table_kib_per_gib", o);
}

/* Runs every section, or only those named on the command line
 * (translate, churn, invalidate, crossover, slotset, tables). */
int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} sections[] = {
		{ "translate", bench_translate },
		{ "churn", bench_translate_churn },
		{ "invalidate", bench_invalidate },
		{ "crossover", bench_crossover },
		{ "slotset", bench_slotset },
		{ "tables", bench_tables },
	};
	const char *q = getenv("BENCH_QUICK");

	quick = q && *q && *q != '0';
	results = json_object_new_object();
	printf("bench_mmu: mmu engine, liburcu QSBR, %s\n",
	       quick ? "QUICK (smoke) run" : "full run");
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		bool run = argc < 2;

		for (int a = 1; a < argc; a++)
			run |= strcmp(argv[a], sections[i].name) == 0;
		if (run)
			sections[i].fn();
	}
	return bench_json_write("mmu", results) ? 1 : 0;
}
