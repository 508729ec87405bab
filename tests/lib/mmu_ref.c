/* Reference model of mmu slot semantics; see mmu_ref.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tests/lib/mmu_ref.h"

#define REF_PAGE 4096ull
#define REF_LIMIT (1ull << 48)

void mmu_ref_init(struct mmu_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
}

void mmu_ref_fini(struct mmu_ref *ref)
{
	for (size_t i = 0; i < ref->n; i++)
		free(ref->slots[i].dirty);
	ref->n = 0;
}

struct mmu_ref_slot *mmu_ref_slot_find(struct mmu_ref *ref, uint32_t id)
{
	for (size_t i = 0; i < ref->n; i++)
		if (ref->slots[i].id == id)
			return &ref->slots[i];
	return NULL;
}

static bool ref_overlaps(struct mmu_ref *ref, uint64_t gpa, uint64_t size,
			 uint32_t skip)
{
	for (size_t i = 0; i < ref->n; i++) {
		struct mmu_ref_slot *s = &ref->slots[i];

		if (s->id != skip && gpa < s->gpa + s->size &&
		    s->gpa < gpa + size)
			return true;
	}
	return false;
}

static bool ref_range_bad(uint64_t gpa, uint64_t size)
{
	return (gpa | size) % REF_PAGE || !size || gpa >= REF_LIMIT ||
	       size > REF_LIMIT - gpa;
}

static uint64_t *ref_bitmap(uint64_t size)
{
	return calloc((size / REF_PAGE + 63) / 64, 8);
}

int mmu_ref_slot_create(struct mmu_ref *ref, uint32_t id, uint64_t gpa,
			uint64_t size, uintptr_t hva, uint32_t flags)
{
	struct mmu_ref_slot *s;

	if (ref_range_bad(gpa, size) || hva % REF_PAGE || !hva || flags & ~3u ||
	    id == UINT32_MAX)
		return -EINVAL;
	if (mmu_ref_slot_find(ref, id) ||
	    ref_overlaps(ref, gpa, size, UINT32_MAX))
		return -EEXIST;
	if (ref->n == MMU_REF_MAX_SLOTS)
		return -ENOSPC;
	s = &ref->slots[ref->n++];
	*s = (struct mmu_ref_slot){ id, flags, gpa, size, hva, NULL };
	if (flags & MMU_REF_DIRTY_LOG)
		s->dirty = ref_bitmap(size);
	return 0;
}

int mmu_ref_slot_delete(struct mmu_ref *ref, uint32_t id)
{
	struct mmu_ref_slot *s = mmu_ref_slot_find(ref, id);

	if (!s)
		return -ENOENT;
	free(s->dirty);
	*s = ref->slots[--ref->n];
	return 0;
}

int mmu_ref_slot_move(struct mmu_ref *ref, uint32_t id, uint64_t gpa)
{
	struct mmu_ref_slot *s = mmu_ref_slot_find(ref, id);

	if (!s)
		return -ENOENT;
	if (ref_range_bad(gpa, s->size))
		return -EINVAL;
	if (gpa == s->gpa)
		return 0;
	if (ref_overlaps(ref, gpa, s->size, id))
		return -EEXIST;
	s->gpa = gpa;
	return 0;
}

int mmu_ref_slot_set_flags(struct mmu_ref *ref, uint32_t id, uint32_t flags)
{
	struct mmu_ref_slot *s = mmu_ref_slot_find(ref, id);

	if (flags & ~3u)
		return -EINVAL;
	if (!s)
		return -ENOENT;
	if ((flags & MMU_REF_DIRTY_LOG) && !s->dirty)
		s->dirty = ref_bitmap(s->size);
	if (!(flags & MMU_REF_DIRTY_LOG)) {
		free(s->dirty);
		s->dirty = NULL;
	}
	s->flags = flags;
	return 0;
}

int mmu_ref_translate(struct mmu_ref *ref, uint64_t gpa, size_t len,
		      unsigned access, uintptr_t *hva)
{
	if (!len || gpa >= REF_LIMIT || len > REF_LIMIT - gpa)
		return -EINVAL;
	for (size_t i = 0; i < ref->n; i++) {
		struct mmu_ref_slot *s = &ref->slots[i];

		if (gpa < s->gpa || gpa >= s->gpa + s->size)
			continue;
		if (gpa + len > s->gpa + s->size)
			return -EFAULT;
		if ((access & MMU_REF_WRITE) && (s->flags & MMU_REF_READONLY))
			return -EROFS;
		*hva = s->hva + (gpa - s->gpa);
		if ((access & MMU_REF_WRITE) && s->dirty) {
			for (uint64_t p = (gpa - s->gpa) / REF_PAGE;
			     p <= (gpa + len - 1 - s->gpa) / REF_PAGE; p++)
				s->dirty[p / 64] |= 1ull << (p % 64);
		}
		return 0;
	}
	return -ENOENT;
}

int mmu_ref_dirty_log_get(struct mmu_ref *ref, uint32_t id, uint64_t *bitmap,
			  bool clear)
{
	struct mmu_ref_slot *s = mmu_ref_slot_find(ref, id);
	size_t words;

	if (!s)
		return -ENOENT;
	if (!s->dirty)
		return -EINVAL;
	words = (s->size / REF_PAGE + 63) / 64;
	memcpy(bitmap, s->dirty, words * 8);
	if (clear)
		memset(s->dirty, 0, words * 8);
	return 0;
}

void *mmu_ref_backing_map(size_t size, size_t align, size_t offset)
{
	size_t span = size + align + offset;
	uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start;

	if (p == MAP_FAILED)
		return NULL;
	start = (((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1)) + offset;
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + span > start + size)
		munmap((void *)(start + size),
		       (uintptr_t)p + span - start - size);
	return (void *)start;
}

void mmu_ref_backing_unmap(void *p, size_t size)
{
	munmap(p, size);
}

unsigned mmu_ref_scale(unsigned n)
{
	const char *env = getenv("MMU_TEST_SCALE");
	unsigned div = 1;

#if defined(__SANITIZE_THREAD__)
	div = 3;
#elif defined(__SANITIZE_ADDRESS__)
	div = 2;
#endif
	if (env && atoi(env) > 0)
		div = (unsigned)atoi(env);
	return n / div ? n / div : 1;
}
