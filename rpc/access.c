/* Which methods change nothing: the read-only socket serves only these,
 * and every other method's call is logged with the peer that made it.
 * One table for every method slotd serves; a test fails when it and the
 * dispatch table disagree (tests/unit/test_rpc_access.c). */
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"

struct access {
	const char *name;
	bool read_only;
};

/* Sorted by name (a test checks): looked up with bsearch on every call. */
static const struct access access_table[] = {
	{ "daemon.capabilities",	true },
	/* With a level it changes the log level. */
	{ "daemon.log_level",		false },
	{ "daemon.version",		true },
	/* Subscriptions change only the connection that makes them. */
	{ "events.subscribe",		true },
	{ "events.unsubscribe",		true },
	{ "memslot.apply",		false },
	{ "memslot.create",		false },
	{ "memslot.delete",		false },
	/* clear: true resets the dirty log; and it reveals guest writes. */
	{ "memslot.dirty_log",		false },
	{ "memslot.list",		true },
	{ "memslot.move",		false },
	{ "memslot.set_flags",		false },
	{ "memslot.transaction",	false },
	{ "rpc.discover",		true },
	/* What the guest printed is the guest's, as its memory is. */
	{ "vm.console",			false },
	{ "vm.create",			false },
	{ "vm.destroy",			false },
	{ "vm.info",			true },
	{ "vm.list",			true },
	/* Changes nothing, but hands out guest memory. */
	{ "vm.memory.read",		false },
	{ "vm.memory.write",		false },
	{ "vm.pause",			false },
	{ "vm.quirks.get",		true },
	{ "vm.quirks.set",		false },
	/* Records of slotd's report device: pass times, check results. */
	{ "vm.reports",			true },
	{ "vm.resume",			false },
	{ "vm.start",			false },
	{ "vm.stats",			true },
	{ "vm.stop",			false },
};

#define ACCESS_COUNT (sizeof(access_table) / sizeof(access_table[0]))

static int access_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct access *)elem)->name);
}

bool rpc_method_read_only(const char *name)
{
	const struct access *a = bsearch(name, access_table, ACCESS_COUNT,
					 sizeof(access_table[0]), access_cmp);

	return a && a->read_only;	/* unknown: treated as a change */
}

size_t rpc_method_access_count(void)
{
	return ACCESS_COUNT;
}

const char *rpc_method_access_get(size_t i, bool *read_only)
{
	if (i >= ACCESS_COUNT)
		return NULL;
	*read_only = access_table[i].read_only;
	return access_table[i].name;
}
