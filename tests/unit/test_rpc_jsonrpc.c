/* JSON-RPC 2.0 message handling: the specification's examples, exactly,
 * and every protocol error slotd answers with. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <event2/event.h>
#include <string.h>

#include "rpc/rpc.h"

static struct event_base *base;
static struct rpc_server *srv;

/* The specification's example methods, registered only for these tests. */
static int subtract(struct rpc_call *call, json_object *p, json_object **res)
{
	json_object *a, *b;

	if (json_object_is_type(p, json_type_array)) {
		a = json_object_array_get_idx(p, 0);
		b = json_object_array_get_idx(p, 1);
	} else if (!json_object_object_get_ex(p, "minuend", &a) ||
		   !json_object_object_get_ex(p, "subtrahend", &b)) {
		return rpc_call_error(call, RPC_INVALID_PARAMS, "minuend",
				      "Invalid params: minuend and subtrahend");
	}
	*res = json_object_new_int(json_object_get_int(a) - json_object_get_int(b));
	return 0;
}

static int sum(struct rpc_call *call, json_object *p, json_object **res)
{
	int s = 0;

	(void)call;
	for (size_t i = 0; i < json_object_array_length(p); i++)
		s += json_object_get_int(json_object_array_get_idx(p, i));
	*res = json_object_new_int(s);
	return 0;
}

static int nothing(struct rpc_call *call, json_object *p, json_object **res)
{
	(void)call; (void)p;
	*res = NULL;
	return 0;
}

static int get_data(struct rpc_call *call, json_object *p, json_object **res)
{
	(void)call; (void)p;
	*res = json_tokener_parse("[\"hello\", 5]");
	return 0;
}

static int fails(struct rpc_call *call, json_object *p, json_object **res)
{
	(void)call; (void)p; (void)res;
	return -EIO;
}

static const struct rpc_method spec_methods[] = {
	{ "subtract", subtract }, { "sum", sum }, { "update", nothing },
	{ "notify_hello", nothing }, { "notify_sum", nothing },
	{ "get_data", get_data }, { "test.fails", fails },
};

static void setup(void)
{
	struct rpc_config cfg = { .max_batch = 8 };

	base = event_base_new();
	cr_assert_eq(rpc_server_create(base, &cfg, &srv), 0);
	cr_assert_eq(rpc_server_register(srv, spec_methods,
					 sizeof(spec_methods) / sizeof(spec_methods[0])), 0);
	cr_assert_eq(rpc_methods_daemon_register(srv), 0);
}

static void teardown(void)
{
	rpc_server_destroy(srv);
	event_base_free(base);
}

TestSuite(rpc_jsonrpc, .init = setup, .fini = teardown);

/* Drops error.data (slotd's detail, allowed by the spec) everywhere. */
static void strip_data(json_object *o)
{
	json_object *e;

	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			strip_data(json_object_array_get_idx(o, i));
	} else if (json_object_object_get_ex(o, "error", &e)) {
		json_object *d;

		if (json_object_object_get_ex(e, "data", &d))
			cr_assert(json_object_is_type(d, json_type_object),
				  "error.data must be an object when present");
		json_object_object_del(e, "data");
	}
}

/* Sends req and compares the reply with want (NULL: no reply at all). */
static void exchange(const char *req, const char *want)
{
	char *got = rpc_server_handle(srv, 0, req, strlen(req));
	json_object *g, *w;

	if (!want) {
		cr_assert_null(got, "request %s: expected no reply, got %s", req, got);
		return;
	}
	cr_assert_not_null(got, "request %s: expected %s, got no reply", req, want);
	g = json_tokener_parse(got);
	w = json_tokener_parse(want);
	cr_assert_not_null(g, "reply is not JSON: %s", got);
	strip_data(g);
	cr_assert(json_object_equal(g, w), "request %s:\n expected %s\n got      %s",
		  req, want, got);
	json_object_put(g);
	json_object_put(w);
	free(got);
}

/* Inline arrays, not pointers: Criterion runs each parameter in a fresh
 * process where the parent's pointers mean nothing. */
struct spec_case {
	char req[512];
	char want[640];		/* "" when no reply may be sent */
};

/* jsonrpc.org/specification, section 7 "Examples", in order. */
static struct spec_case spec_cases[] = {
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [42, 23], \"id\": 1}",
	  "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 1}" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [23, 42], \"id\": 2}",
	  "{\"jsonrpc\": \"2.0\", \"result\": -19, \"id\": 2}" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": {\"subtrahend\": 23, \"minuend\": 42}, \"id\": 3}",
	  "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 3}" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": {\"minuend\": 42, \"subtrahend\": 23}, \"id\": 4}",
	  "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 4}" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"update\", \"params\": [1,2,3,4,5]}", "" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"foobar\"}", "" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"foobar\", \"id\": \"1\"}",
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32601, \"message\": \"Method not found\"}, \"id\": \"1\"}" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": \"foobar, \"params\": \"bar\", \"baz]",
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32700, \"message\": \"Parse error\"}, \"id\": null}" },
	{ "{\"jsonrpc\": \"2.0\", \"method\": 1, \"params\": \"bar\"}",
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}" },
	{ "[\n  {\"jsonrpc\": \"2.0\", \"method\": \"sum\", \"params\": [1,2,4], \"id\": \"1\"},\n  {\"jsonrpc\": \"2.0\", \"method\"\n]",
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32700, \"message\": \"Parse error\"}, \"id\": null}" },
	{ "[]",
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}" },
	{ "[1]",
	  "[{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}]" },
	{ "[1,2,3]",
	  "[{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null},"
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null},"
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}]" },
	{ "[\n {\"jsonrpc\": \"2.0\", \"method\": \"sum\", \"params\": [1,2,4], \"id\": \"1\"},\n"
	  " {\"jsonrpc\": \"2.0\", \"method\": \"notify_hello\", \"params\": [7]},\n"
	  " {\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [42,23], \"id\": \"2\"},\n"
	  " {\"foo\": \"boo\"},\n"
	  " {\"jsonrpc\": \"2.0\", \"method\": \"foo.get\", \"params\": {\"name\": \"myself\"}, \"id\": \"5\"},\n"
	  " {\"jsonrpc\": \"2.0\", \"method\": \"get_data\", \"id\": \"9\"}\n]",
	  "[{\"jsonrpc\": \"2.0\", \"result\": 7, \"id\": \"1\"},"
	  "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": \"2\"},"
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null},"
	  "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32601, \"message\": \"Method not found\"}, \"id\": \"5\"},"
	  "{\"jsonrpc\": \"2.0\", \"result\": [\"hello\", 5], \"id\": \"9\"}]" },
	{ "[\n {\"jsonrpc\": \"2.0\", \"method\": \"notify_sum\", \"params\": [1,2,4]},\n"
	  " {\"jsonrpc\": \"2.0\", \"method\": \"notify_hello\", \"params\": [7]}\n]", "" },
};

ParameterizedTestParameters(rpc_jsonrpc, spec_example_gets_the_specified_reply)
{
	return cr_make_param_array(struct spec_case, spec_cases,
				   sizeof(spec_cases) / sizeof(spec_cases[0]));
}

ParameterizedTest(struct spec_case *c, rpc_jsonrpc, spec_example_gets_the_specified_reply)
{
	exchange(c->req, *c->want ? c->want : NULL);
}

Test(rpc_jsonrpc, spec_messages_are_exact_and_members_in_spec_order)
{
	char *got = rpc_server_handle(srv, 0, "[]", 2);

	cr_assert_not_null(got);
	cr_assert(strncmp(got, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,"
			  "\"message\":\"Invalid Request\"", 60) == 0, "got %s", got);
	cr_assert(strstr(got, "\"id\":null}") == got + strlen(got) - 10, "got %s", got);
	free(got);
}

Test(rpc_jsonrpc, protocol_errors_are_answered_with_their_codes)
{
	exchange("{\"jsonrpc\":\"1.0\",\"method\":\"sum\",\"id\":1}",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}");
	exchange("{\"method\":\"sum\",\"id\":1}",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}");
	exchange("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":3,\"id\":1}",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}");
	exchange("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":{\"a\":1}}",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}");
	exchange("null",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}");
	exchange("42",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}");
	exchange("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1],\"id\":1} trailing",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}");
	exchange("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}");
	exchange("{'jsonrpc':'2.0'}",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}");
	exchange("{\"jsonrpc\":\"2.0\",\"method\":\"test.fails\",\"id\":7}",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,\"message\":\"Internal error in test.fails: Input/output error\"},\"id\":7}");
}

Test(rpc_jsonrpc, null_id_is_a_request_not_a_notification)
{
	exchange("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[2,3],\"id\":null}",
		 "{\"jsonrpc\":\"2.0\",\"result\":5,\"id\":null}");
	exchange("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[2,3],\"id\":1.5}",
		 "{\"jsonrpc\":\"2.0\",\"result\":5,\"id\":1.5}");
}

Test(rpc_jsonrpc, batch_over_the_limit_is_one_invalid_request)
{
	exchange("[1,2,3,4,5,6,7,8,9]",
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}");
	exchange("[1,2,3,4,5,6,7,8]",
		 "[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null},"
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null},"
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null},"
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null},"
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null},"
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null},"
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null},"
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"},\"id\":null}]");
}

Test(rpc_jsonrpc, deep_nesting_is_a_parse_error_not_a_crash)
{
	size_t n = 100000;
	char *deep = malloc(2 * n + 1);
	char *got;

	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = 0;
	got = rpc_server_handle(srv, 0, deep, 2 * n);
	cr_assert_not_null(got);
	cr_assert(strstr(got, "-32700"), "expected a parse error, got %s", got);
	free(got);
	free(deep);
}

/* Returns the error object of the reply to req (caller puts the reply). */
static json_object *error_of(const char *req, json_object **reply)
{
	char *got = rpc_server_handle(srv, 0, req, strlen(req));
	json_object *e = NULL;

	cr_assert_not_null(got, "no reply to %s", req);
	*reply = json_tokener_parse(got);
	free(got);
	cr_assert(json_object_object_get_ex(*reply, "error", &e), "no error in reply to %s", req);
	return e;
}

static void assert_invalid_param(const char *req, const char *field)
{
	json_object *reply, *e = error_of(req, &reply), *v, *d, *f;

	cr_assert(json_object_object_get_ex(e, "code", &v));
	cr_assert_eq(json_object_get_int(v), -32602, "%s: expected -32602, got %d", req,
		     json_object_get_int(v));
	cr_assert(json_object_object_get_ex(e, "data", &d) &&
		  json_object_object_get_ex(d, "field", &f), "%s: no data.field", req);
	cr_assert_str_eq(json_object_get_string(f), field, "%s: expected field %s, got %s",
			 req, field, json_object_get_string(f));
	json_object_put(reply);
}

Test(rpc_jsonrpc, schema_validation_names_the_offending_field)
{
	assert_invalid_param("{\"jsonrpc\":\"2.0\",\"method\":\"daemon.version\",\"params\":{\"x\":1},\"id\":1}", "x");
	assert_invalid_param("{\"jsonrpc\":\"2.0\",\"method\":\"daemon.version\",\"params\":[1],\"id\":1}", "params");
	assert_invalid_param("{\"jsonrpc\":\"2.0\",\"method\":\"events.subscribe\",\"params\":{\"topics\":\"vm\"},\"id\":1}", "topics");
	assert_invalid_param("{\"jsonrpc\":\"2.0\",\"method\":\"events.subscribe\",\"params\":{\"topics\":[\"vm.state_changed\",\"bogus\"]},\"id\":1}", "topics[1]");
}

Test(rpc_jsonrpc, events_need_a_connection)
{
	json_object *reply, *e = error_of("{\"jsonrpc\":\"2.0\",\"method\":\"events.subscribe\",\"id\":1}", &reply), *v;

	cr_assert(json_object_object_get_ex(e, "code", &v));
	cr_assert_eq(json_object_get_int(v), RPC_ERR_UNSUPPORTED);
	json_object_put(reply);
}

Test(rpc_jsonrpc, sizes_parse_with_binary_suffixes)
{
	uint64_t v;

	cr_assert_eq(rpc_parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(rpc_parse_size("0x1000", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(rpc_parse_size("256M", &v), 0);
	cr_assert_eq(v, 256ull << 20);
	cr_assert_eq(rpc_parse_size("1GiB", &v), 0);
	cr_assert_eq(v, 1ull << 30);
	cr_assert_eq(rpc_parse_size("-1", &v), -EINVAL);
	cr_assert_eq(rpc_parse_size("12X", &v), -EINVAL);
	cr_assert_eq(rpc_parse_size("", &v), -EINVAL);
	cr_assert_eq(rpc_parse_size("99999999999T", &v), -ERANGE);
}
