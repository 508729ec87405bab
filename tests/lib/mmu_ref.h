/* A reference model of the mmu engine's slot semantics for tests: a plain
 * list of slots, searched linearly.  Depends on nothing but libc. */
#ifndef SLOTD_TESTS_MMU_REF_H
#define SLOTD_TESTS_MMU_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MMU_REF_MAX_SLOTS	256
#define MMU_REF_READONLY	(1u << 0)	/* = MMU_SLOT_READONLY */
#define MMU_REF_DIRTY_LOG	(1u << 1)	/* = MMU_SLOT_DIRTY_LOG */
#define MMU_REF_WRITE		(1u << 1)	/* = MMU_ACCESS_WRITE */

struct mmu_ref_slot {
	uint32_t id;
	uint32_t flags;
	uint64_t gpa;
	uint64_t size;
	uintptr_t hva;
	uint64_t *dirty;	/* one bit per page while logging */
};

struct mmu_ref {
	struct mmu_ref_slot slots[MMU_REF_MAX_SLOTS];
	size_t n;
};

void mmu_ref_init(struct mmu_ref *ref);
void mmu_ref_fini(struct mmu_ref *ref);
struct mmu_ref_slot *mmu_ref_slot_find(struct mmu_ref *ref, uint32_t id);
int mmu_ref_slot_create(struct mmu_ref *ref, uint32_t id, uint64_t gpa,
			uint64_t size, uintptr_t hva, uint32_t flags);
int mmu_ref_slot_delete(struct mmu_ref *ref, uint32_t id);
int mmu_ref_slot_move(struct mmu_ref *ref, uint32_t id, uint64_t gpa);
int mmu_ref_slot_set_flags(struct mmu_ref *ref, uint32_t id, uint32_t flags);
/* What mmu_translate must return; a write marks pages dirty. */
int mmu_ref_translate(struct mmu_ref *ref, uint64_t gpa, size_t len,
		      unsigned access, uintptr_t *hva);
/* Copies (and clears) a logging slot's dirty bits, like the engine. */
int mmu_ref_dirty_log_get(struct mmu_ref *ref, uint32_t id, uint64_t *bitmap,
			  bool clear);

/* A sparse anonymous backing (MAP_NORESERVE) of size bytes whose address
 * is congruent to offset modulo align (a power of two); NULL on failure. */
void *mmu_ref_backing_map(size_t size, size_t align, size_t offset);
void mmu_ref_backing_unmap(void *p, size_t size);

/* Scales an iteration count down under sanitizers (MMU_TEST_SCALE env var
 * overrides: a divisor). */
unsigned mmu_ref_scale(unsigned n);

/* For Criterion tests: asserts actual == expected (integers or pointers),
 * evaluating each once and printing both, under a label. */
#define MMU_EXPECT(actual, expected, what) do {				\
	long long a_ = (long long)(actual), e_ = (long long)(expected);	\
	cr_assert_eq(a_, e_,						\
		     "%s: expected %lld (%#llx), got %lld (%#llx)", what,	\
		     e_, (unsigned long long)e_, a_, (unsigned long long)a_);	\
} while (0)
#define MMU_EXPECT_EQ(actual, expected) MMU_EXPECT(actual, expected, #actual)

#endif
