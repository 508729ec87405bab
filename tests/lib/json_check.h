/* The tests' own strict JSON checker (RFC 8259 grammar, UTF-8 per RFC
 * 3629), written apart from rpc/json.c so that one cannot vouch for the
 * other: every reply the tests and fuzzers receive is held to it. */
#ifndef SLOTD_TESTS_JSON_CHECK_H
#define SLOTD_TESTS_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* True when text is exactly one JSON text; else why (may be NULL) says
 * what is wrong and where. */
bool tj_strict_json(const char *text, size_t len, char *why, size_t whylen);

#endif
