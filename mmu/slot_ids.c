/* The writers' slot id -> gfn index: a hash table with linear probing. */
#include <errno.h>
#include <stdlib.h>

#include "mmu/internal.h"

#define SLOT_ID_EMPTY	UINT32_MAX	/* never a slot id: mmu_slot_create
					   refuses it */
#define SLOT_IDS_MIN	16

static size_t ids_home(const struct slot_ids *ids, uint32_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & ids->mask;
}

/* The entry holding id, or the empty one where it would go. */
static size_t ids_probe(const struct slot_ids *ids, uint32_t id)
{
	size_t i = ids_home(ids, id);

	while (ids->e[i].id != id && ids->e[i].id != SLOT_ID_EMPTY)
		i = (i + 1) & ids->mask;
	return i;
}

/* Makes room for n ids, so that the next slot_ids_set calls up to n
 * cannot fail; -ENOMEM leaves the index as it was. */
int slot_ids_reserve(struct slot_ids *ids, size_t n)
{
	struct slot_ids grown = { ids->n, SLOT_IDS_MIN - 1, NULL };

	if (ids->e && 2 * n <= ids->mask + 1)
		return 0;
	while (grown.mask + 1 < 2 * n)
		grown.mask = 2 * grown.mask + 1;
	grown.e = malloc((grown.mask + 1) * sizeof(grown.e[0]));
	if (!grown.e)
		return -ENOMEM;
	for (size_t i = 0; i <= grown.mask; i++)
		grown.e[i].id = SLOT_ID_EMPTY;
	for (size_t i = 0; ids->e && i <= ids->mask; i++)
		if (ids->e[i].id != SLOT_ID_EMPTY)
			grown.e[ids_probe(&grown, ids->e[i].id)] = ids->e[i];
	free(ids->e);
	*ids = grown;
	return 0;
}

bool slot_ids_get(const struct slot_ids *ids, uint32_t id, uint64_t *gfn)
{
	size_t i;

	if (!ids->e || id == SLOT_ID_EMPTY)
		return false;
	i = ids_probe(ids, id);
	if (ids->e[i].id != id)
		return false;
	*gfn = ids->e[i].gfn;
	return true;
}

/* Adds id or changes its gfn; room was reserved. */
void slot_ids_set(struct slot_ids *ids, uint32_t id, uint64_t gfn)
{
	size_t i = ids_probe(ids, id);

	if (ids->e[i].id == SLOT_ID_EMPTY)
		ids->n++;
	ids->e[i].id = id;
	ids->e[i].gfn = gfn;
}

/* Removes id by backward shift: no tombstones, probes stay short. */
void slot_ids_del(struct slot_ids *ids, uint32_t id)
{
	size_t i, j, home;

	if (!ids->e || ids->e[i = ids_probe(ids, id)].id != id)
		return;
	ids->n--;
	for (j = i;;) {
		ids->e[i].id = SLOT_ID_EMPTY;
		do {
			j = (j + 1) & ids->mask;
			if (ids->e[j].id == SLOT_ID_EMPTY)
				return;
			home = ids_home(ids, ids->e[j].id);
			/* The entry at j may fill the hole at i unless its
			 * home lies cyclically in (i, j]. */
		} while (i <= j ? (i < home && home <= j)
				: (i < home || home <= j));
		ids->e[i] = ids->e[j];
		i = j;
	}
}

void slot_ids_free(struct slot_ids *ids)
{
	free(ids->e);
	ids->e = NULL;
	ids->n = 0;
}
