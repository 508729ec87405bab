/* libFuzzer target: the HTTP request head parser (rpc/http_parse.c).
 * Oracle: no sanitizer report, and its answer is consistent: a parsed
 * head lies within the bytes it was given, its pointers inside it; a
 * refusal carries a status slotd documents and a reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool within(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t max = 512;	/* small, so that 431 is reached too */
	struct rpc_http_req r;
	int got = rpc_http_parse_head(buf, size, max, &r);

	if (got == 1) {
		size_t lim = size < max ? size : max;

		if (r.head_len > lim || !within(r.target, r.target_len, buf, r.head_len) ||
		    r.path_len > r.target_len || r.target[0] != '/' ||
		    (r.auth && !within(r.auth, r.auth_len, buf, r.head_len)) ||
		    (r.minor != 0 && r.minor != 1)) {
			fprintf(stderr, "inconsistent parse\n");
			abort();
		}
	} else if (got < 0) {
		int s = -got;

		if (!r.why || (s != 400 && s != 411 && s != 417 && s != 431 && s != 501 &&
			       s != 505)) {
			fprintf(stderr, "refused with %d (%s)\n", s, r.why ? r.why : "no reason");
			abort();
		}
	} else if (got != 0 || size >= max) {
		fprintf(stderr, "incomplete at %zu bytes with a limit of %zu\n", size, max);
		abort();
	}
	return 0;
}
