/* Criterion assertions on JSON-RPC calls to a test daemon, shared by the
 * integration tests.  Each failure message names the method, the params
 * and what came back. */
#ifndef SLOTD_TESTS_RPC_ASSERT_H
#define SLOTD_TESTS_RPC_ASSERT_H

#include <stdint.h>
#include <json-c/json.h>

#include "tests/lib/daemon.h"

/* Calls method with params on d and returns its result, asserting there is
 * one; *reply gets the whole reply (the caller puts it). */
json_object *t_rpc_ok(const struct test_daemon *d, const char *method,
		      const char *params, json_object **reply);
/* The same, dropping the reply. */
void t_rpc_ok_put(const struct test_daemon *d, const char *method,
		  const char *params);
/* Asserts an error with code, data.field == field (unless NULL) and a
 * message containing needle (unless NULL). */
void t_rpc_err(const struct test_daemon *d, const char *method,
	       const char *params, int code, const char *field,
	       const char *needle);
/* o[k] as a string / integer, asserting it is there. */
const char *t_json_str(json_object *o, const char *k);
int64_t t_json_int(json_object *o, const char *k);

/* The error code of a reply line, 0 when it is not an error. */
int t_reply_code(const char *reply);

/* A suite's .fini: stops d if it runs, expecting a clean exit, and then
 * removes top (kept after an unclean exit, for its log). */
void t_daemon_fini(struct test_daemon *d, const char *top);

#endif
