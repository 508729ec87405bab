/* schemas/openrpc.json is the API's source of truth: the dispatch table and
 * the document must name the same methods, and the document must be a
 * well-formed OpenRPC 1.x document. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"
#include "rpc/rpc.h"

static struct event_base *base;
static struct rpc_server *srv;
static json_object *doc;

static void setup(void)
{
	struct rpc_config cfg = { 0 };

	base = event_base_new();
	cr_assert_eq(rpc_server_create(base, &cfg, &srv), 0);
	cr_assert_eq(rpc_methods_register_all(srv), 0);
	doc = rpc_server_openrpc(srv);
}

static void teardown(void)
{
	rpc_server_destroy(srv);
	event_base_free(base);
}

TestSuite(rpc_schema, .init = setup, .fini = teardown);

static json_object *methods(void)
{
	json_object *m;

	cr_assert(json_object_object_get_ex(doc, "methods", &m), "no methods array");
	return m;
}

static const char *method_name(json_object *m)
{
	json_object *n;

	cr_assert(json_object_object_get_ex(m, "name", &n), "a method without name");
	return json_object_get_string(n);
}

Test(rpc_schema, every_dispatched_method_is_documented)
{
	for (size_t i = 0; i < rpc_server_method_count(srv); i++) {
		const char *name = rpc_server_method_name(srv, i);
		bool found = false;

		for (size_t j = 0; j < json_object_array_length(methods()); j++)
			found |= !strcmp(method_name(json_object_array_get_idx(methods(), j)), name);
		cr_expect(found, "method %s is dispatched but missing from schemas/openrpc.json", name);
	}
}

Test(rpc_schema, every_documented_method_is_dispatched)
{
	for (size_t j = 0; j < json_object_array_length(methods()); j++) {
		const char *name = method_name(json_object_array_get_idx(methods(), j));
		bool found = false;

		for (size_t i = 0; i < rpc_server_method_count(srv); i++)
			found |= !strcmp(rpc_server_method_name(srv, i), name);
		cr_expect(found, "schemas/openrpc.json documents %s but slotd does not dispatch it", name);
	}
}

Test(rpc_schema, document_is_openrpc_1_with_params_results_and_errors)
{
	json_object *v, *info;

	cr_assert(json_object_object_get_ex(doc, "openrpc", &v));
	cr_assert(!strncmp(json_object_get_string(v), "1.", 2), "openrpc version %s",
		  json_object_get_string(v));
	cr_assert(json_object_object_get_ex(doc, "info", &info));
	cr_assert(json_object_object_get_ex(info, "title", NULL));
	cr_assert(json_object_object_get_ex(info, "version", NULL));
	for (size_t j = 0; j < json_object_array_length(methods()); j++) {
		json_object *m = json_object_array_get_idx(methods(), j);

		cr_expect(json_object_object_get_ex(m, "params", &v) &&
			  json_object_is_type(v, json_type_array), "%s: params array", method_name(m));
		cr_expect(json_object_object_get_ex(m, "result", &v) &&
			  json_object_object_get_ex(v, "schema", NULL), "%s: result schema", method_name(m));
		cr_expect(json_object_object_get_ex(m, "errors", &v), "%s: errors", method_name(m));
	}
}

Test(rpc_schema, application_error_codes_are_in_the_reserved_range)
{
	json_object *comp, *errs;

	cr_assert(json_object_object_get_ex(doc, "components", &comp));
	cr_assert(json_object_object_get_ex(comp, "errors", &errs));
	json_object_object_foreach(errs, name, e) {
		json_object *c;

		cr_assert(json_object_object_get_ex(e, "code", &c), "%s has no code", name);
		cr_expect(json_object_get_int(c) <= -32000 && json_object_get_int(c) >= -32099,
			  "%s: code %d outside -32000..-32099", name, json_object_get_int(c));
	}
}

Test(rpc_schema, rpc_discover_returns_the_document)
{
	const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.discover\",\"id\":1}";
	char *got = rpc_server_handle(srv, 0, req, strlen(req));
	json_object *r = json_tokener_parse(got), *res;

	cr_assert(json_object_object_get_ex(r, "result", &res), "no result: %s", got);
	cr_assert(json_object_equal(res, doc), "rpc.discover differs from the built-in document");
	json_object_put(r);
	free(got);
}

Test(rpc_schema, notifications_are_documented_and_subscribable)
{
	json_object *notes, *comp, *schemas, *topic, *en;
	size_t n;

	cr_assert(json_object_object_get_ex(doc, "x-notifications", &notes), "no x-notifications");
	cr_assert(json_object_object_get_ex(doc, "components", &comp) &&
		  json_object_object_get_ex(comp, "schemas", &schemas) &&
		  json_object_object_get_ex(schemas, "Topic", &topic) &&
		  json_object_object_get_ex(topic, "enum", &en));
	n = json_object_array_length(notes);
	cr_assert_eq(n, json_object_array_length(en), "%zu notifications, %zu topics", n,
		     json_object_array_length(en));
	for (size_t i = 0; i < n; i++) {
		const char *name = method_name(json_object_array_get_idx(notes, i));
		char req[256], *got;
		bool in_enum = false;

		for (size_t j = 0; j < json_object_array_length(en); j++)
			in_enum |= !strcmp(json_object_get_string(json_object_array_get_idx(en, j)), name);
		cr_expect(in_enum, "notification %s is not a Topic", name);
		/* events.subscribe accepts it (it answers -32008 only for the
		 * missing connection, after validating the topic). */
		snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\","
			 "\"params\":{\"topics\":[\"%s\"]}}", name);
		got = rpc_server_handle(srv, 0, req, strlen(req));
		cr_expect(got && strstr(got, "-32008"), "subscribe to %s: %s", name, got);
		free(got);
	}
}

/* Validates params against a method whose one param "x" has schema
 * schema_text; returns the error message, or NULL when accepted. */
static char *check_x(const char *schema_text, const char *params_text)
{
	char method_text[512];
	json_object *method, *params;
	struct rpc_call call = { .srv = srv };
	char *msg = NULL;
	int r;

	snprintf(method_text, sizeof(method_text),
		 "{\"name\":\"t\",\"params\":[{\"name\":\"x\",\"schema\":%s}]}", schema_text);
	method = json_tokener_parse(method_text);
	params = json_tokener_parse(params_text);
	cr_assert(method && params);
	r = rpc_schema_check_params(&call, doc, method, params);
	if (r) {
		json_object *m;

		cr_assert(call.error && json_object_object_get_ex(call.error, "message", &m),
			  "a refusal must record an error");
		msg = strdup(json_object_get_string(m));
	}
	cr_assert_eq(r != 0, msg != NULL);
	json_object_put(call.error);
	json_object_put(params);
	json_object_put(method);
	return msg;
}

static void accepted(const char *schema, const char *params)
{
	char *msg = check_x(schema, params);

	cr_expect_null(msg, "%s against %s was refused: %s", params, schema, msg);
	free(msg);
}

static void refused(const char *schema, const char *params, const char *want)
{
	char *msg = check_x(schema, params);

	cr_expect(msg && strstr(msg, want), "%s against %s: expected \"%s\", got %s", params,
		  schema, want, msg ? msg : "(accepted)");
	free(msg);
}

Test(rpc_schema, type_keywords_accept_and_refuse_like_json_schema)
{
	accepted("{\"type\":\"integer\"}", "{\"x\":5}");
	refused("{\"type\":\"integer\"}", "{\"x\":5.5}", "'x' must be of type integer, not number");
	refused("{\"type\":\"integer\"}", "{\"x\":\"5\"}", "must be of type integer, not string");
	accepted("{\"type\":\"number\"}", "{\"x\":5}");
	accepted("{\"type\":\"number\"}", "{\"x\":5.5}");
	refused("{\"type\":\"number\"}", "{\"x\":true}", "must be of type number, not boolean");
	accepted("{\"type\":\"string\"}", "{\"x\":\"s\"}");
	refused("{\"type\":\"string\"}", "{\"x\":null}", "must be of type string, not null");
	accepted("{\"type\":\"boolean\"}", "{\"x\":false}");
	accepted("{\"type\":\"object\"}", "{\"x\":{}}");
	refused("{\"type\":\"object\"}", "{\"x\":[]}", "must be of type object, not array");
	accepted("{\"type\":\"array\"}", "{\"x\":[1]}");
	accepted("{\"type\":[\"integer\",\"null\"]}", "{\"x\":null}");
	accepted("{\"type\":[\"integer\",\"null\"]}", "{\"x\":3}");
	refused("{\"type\":[\"integer\",\"null\"]}", "{\"x\":\"3\"}",
		"must be of type integer or null, not string");
	refused("{\"type\":\"no-such-type\"}", "{\"x\":1}", "must be of type no-such-type");
	accepted("{\"minimum\":2}", "{\"x\":\"no type keyword: anything goes\"}");
	refused("{\"type\":\"integer\",\"minimum\":2}", "{\"x\":1}", "must be at least 2");
	refused("{\"type\":\"number\",\"maximum\":2}", "{\"x\":2.5}", "must be at most 2");
}

/* Validates params_text against method (kept across calls, so its
 * schema nodes and their memory of matched strings are too); returns the
 * error message, or NULL when accepted. */
static char *check_with(json_object *method, const char *params_text)
{
	struct rpc_call call = { .srv = srv };
	json_object *params = json_tokener_parse(params_text), *m;
	char *msg = NULL;

	cr_assert(params, "bad test params %s", params_text);
	if (rpc_schema_check_params(&call, doc, method, params)) {
		cr_assert(call.error && json_object_object_get_ex(call.error, "message", &m));
		msg = strdup(json_object_get_string(m));
	}
	json_object_put(call.error);
	json_object_put(params);
	return msg;
}

Test(rpc_schema, patterns_answer_the_same_when_a_string_comes_again)
{
	json_object *method = json_tokener_parse(
		"{\"name\":\"t\",\"params\":[{\"name\":\"x\",\"schema\":"
		"{\"type\":\"string\",\"pattern\":\"^[a-z0-9]+$\"}}]}");
	char params[64], *msg;

	cr_assert(method);
	/* Twice each, in turn: a refusal stays a refusal after the same
	 * string was refused, and after strings that share its prefix
	 * matched; more names than slotd keeps in mind. */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 20; i++) {
			snprintf(params, sizeof(params), "{\"x\":\"vm%d\"}", i);
			msg = check_with(method, params);
			cr_expect_null(msg, "%s refused: %s", params, msg);
			free(msg);
			snprintf(params, sizeof(params), "{\"x\":\"vm%d!\"}", i);
			msg = check_with(method, params);
			cr_expect(msg && strstr(msg, "'x' must match ^[a-z0-9]+$"),
				  "%s: %s", params, msg ? msg : "(accepted)");
			free(msg);
		}
	}
	/* regexec reads up to a NUL; no string with one passes. */
	msg = check_with(method, "{\"x\":\"vm1\\u0000!\"}");
	cr_expect(msg && strstr(msg, "must not contain U+0000"), "a NUL let \"vm1\\u0000!\" through: %s",
		  msg ? msg : "(accepted)");
	free(msg);
	msg = check_with(method, "{\"x\":\"vm1\"}");
	cr_expect_null(msg, "vm1 refused after a NUL variant: %s", msg);
	free(msg);
	json_object_put(method);
}
