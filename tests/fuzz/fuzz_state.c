/* libFuzzer target: what a restart reads back from the state directory.
 * Input: a VM's snapshot text, then (after the first 0xff) its journal
 * text, to store_parse (ctl/store.c); the whole input also as the lines
 * of requests.journal to ctl_requests_parse (ctl/requests.c).  Oracle
 * besides the sanitizers (leaks included): a parse that succeeds gives
 * memslots sorted by GPA and strings that fit (overlaps are the
 * restore's to refuse, not the parser's); the
 * outcomes kept never exceed the bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ctl/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	slog_level_set(SLOG_ERROR);	/* warnings of bad lines: not the fuzzer's output */
	return 0;
}

/* The text of data[0, n) with its NULs as spaces (the files are text). */
static char *text_of(const uint8_t *data, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i] = data[i] ? (char)data[i] : ' ';
	s[n] = 0;
	return s;
}

static void check_vm(const struct store_vm *v)
{
	if (strnlen(v->def.name, sizeof(v->def.name)) == sizeof(v->def.name) ||
	    strnlen(v->rid, sizeof(v->rid)) == sizeof(v->rid) || v->nslots > v->cap)
		abort();
	for (size_t i = 1; i < v->nslots; i++)
		if (v->slots[i - 1].gpa > v->slots[i].gpa)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, 0xff, size);
	size_t snap_len = sep ? (size_t)(sep - data) : size;
	char *snap = text_of(data, snap_len), *journal = NULL, *all = text_of(data, size);
	struct ctl_requests *q = NULL;
	struct store_vm v;
	char why[256];
	unsigned bad;

	if (sep)
		journal = text_of(sep + 1, size - snap_len - 1);
	if (snap && (!sep || journal) && store_parse(snap, journal, &v, why, sizeof(why)) == 0) {
		check_vm(&v);
		store_vm_fini(&v);
	}
	if (all && ctl_requests_new(NULL, &q) == 0) {
		ctl_requests_parse(q, all, UINT64_MAX / 2, &bad);
		if (ctl_requests_count(q) > CTL_REQUEST_KEEP)
			abort();
		ctl_requests_free(q);
	}
	free(snap);
	free(journal);
	free(all);
	return 0;
}
