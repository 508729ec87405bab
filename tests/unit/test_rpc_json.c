/* Strict JSON both ways: what RFC 8259 refuses gets -32700, ids come back
 * exactly as sent, U+0000 never shortens a method or member name, and
 * every reply is strict JSON in UTF-8 whatever a handler put in it. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rpc/internal.h"
#include "rpc/rpc.h"
#include "tests/lib/json_check.h"
#include "tests/lib/rpc_assert.h"

static struct event_base *base;
static struct rpc_server *srv;

/* Fails with a message that repeats params.text 300 times. */
static int long_error(struct rpc_call *call, json_object *p, json_object **res)
{
	const char *t = rpc_param_str(p, "text", "x");
	char big[4096] = "";

	(void)res;
	for (int i = 0; i < 300 && strlen(big) + strlen(t) < sizeof(big); i++)
		strcat(big, t);
	return rpc_call_error(call, RPC_ERR_NOT_FOUND, "text", "nothing named %s", big);
}

/* Returns what no reply may carry as it is: bytes that are not UTF-8
 * (as a guest's console could hold) and non-finite numbers. */
static int bad_result(struct rpc_call *call, json_object *p, json_object **res)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	(void)call; (void)p;
	json_object_object_add(o, "console", json_object_new_string("ok \xff\xfe end \xc3"));
	json_object_object_add(o, "rate", json_object_new_double(NAN));
	json_object_array_add(a, json_object_new_double(INFINITY));
	json_object_array_add(a, json_object_new_string("\xed\xa0\x80"));
	json_object_object_add(o, "list", a);
	json_object_object_add(o, "k\xff", json_object_new_int(1));
	*res = o;
	return 0;
}

static const struct rpc_method test_methods[] = {
	{ "t.long_error", long_error }, { "t.bad_result", bad_result },
};

static void setup(void)
{
	struct rpc_config cfg = { 0 };

	base = event_base_new();
	cr_assert_eq(rpc_server_create(base, &cfg, &srv), 0);
	cr_assert_eq(rpc_methods_register_all(srv), 0);
	cr_assert_eq(rpc_server_register(srv, test_methods, 2), 0);
}

static void teardown(void)
{
	rpc_server_destroy(srv);
	event_base_free(base);
}

TestSuite(rpc_json, .init = setup, .fini = teardown);

/* Sends len bytes of req; asserts the reply is strict JSON and returns it. */
static char *ask_n(const char *req, size_t len)
{
	char *rep = rpc_server_handle(srv, 0, req, len), why[128];

	cr_assert_not_null(rep, "request %.*s: no reply", (int)len, req);
	cr_assert(tj_strict_json(rep, strlen(rep), why, sizeof(why)),
		  "request %.*s: the reply is not strict JSON (%s): %s", (int)len, req, why, rep);
	return rep;
}

static char *ask(const char *req)
{
	return ask_n(req, strlen(req));
}

Test(rpc_json, what_rfc_8259_refuses_is_a_parse_error)
{
	static const char *const bad[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":NaN,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":Infinity,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":-Infinity,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1.,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":.5,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":01,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":+1,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1e,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":0x10,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"a\tb\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\xc0\x80\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\xed\xa0\x80\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\xf4\x90\x80\x80\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\xe2\x82\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\\ud800\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\\udc00\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\\ud800\\u0041\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"\\x41\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\",}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"} x",
		"{\"jsonrpc\":\"2.0\",'id':1,\"method\":\"daemon.version\"}",
		"/* c */{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}",
		"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\",\"params\":{\"a\":[1,,2]}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\",\"params\":{\"a\":tru}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\",\"params\":{\"a\":nan}}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *rep = ask(bad[i]);

		cr_expect_eq(t_reply_code(rep), RPC_PARSE_ERROR, "%s: expected -32700, got %s", bad[i], rep);
		free(rep);
	}
}

Test(rpc_json, a_nul_byte_after_the_text_is_not_whitespace)
{
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}\0";
	char *rep = ask_n(req, sizeof(req) - 1);

	cr_assert_eq(t_reply_code(rep), RPC_PARSE_ERROR, "expected -32700, got %s", rep);
	free(rep);
}

Test(rpc_json, what_rfc_8259_allows_is_served)
{
	static const char *const good[] = {
		(" \t\r\n{\"jsonrpc\":\"2.0\",\"id\":\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\","
		 "\"method\":\"daemon.version\"} \n"),
		"{\"jsonrpc\":\"2.0\",\"id\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"method\":\"daemon.version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":-1.5E+3,\"method\":\"daemon.version\",\"params\":{}}",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *rep = ask(good[i]);

		cr_expect(strstr(rep, "\"result\""), "%s: expected a result, got %s", good[i], rep);
		free(rep);
	}
}

Test(rpc_json, ids_come_back_exactly_as_sent)
{
	static const char *const ids[] = {
		"18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
		"18446744073709551615", "-9223372036854775808", "9223372036854775807",
		"1e400", "1.50", "-0", "0", "2.5e-3", "\"a\\u0000b\"", "\"\\u00e9\"", "null",
	};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char req[256], want[128], *rep;

		snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"nope\"}", ids[i]);
		snprintf(want, sizeof(want), ",\"id\":%s}", ids[i]);
		if (!strcmp(ids[i], "\"\\u00e9\""))
			snprintf(want, sizeof(want), ",\"id\":\"\xc3\xa9\"}");
		rep = ask(req);
		cr_expect(strlen(rep) > strlen(want) &&
			  !strcmp(rep + strlen(rep) - strlen(want), want),
			  "id %s: expected the reply to end with %s, got %s", ids[i], want, rep);
		free(rep);
	}
}

Test(rpc_json, a_nul_in_the_method_is_not_the_method_before_it)
{
	char *rep = ask("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\\u0000junk\"}");

	cr_assert_eq(t_reply_code(rep), RPC_METHOD_NOT_FOUND, "expected -32601, got %s", rep);
	cr_assert(strstr(rep, "\"method\":\"daemon.version\\u0000junk\""),
		  "data.method must name the whole method: %s", rep);
	free(rep);
}

Test(rpc_json, a_nul_in_a_member_name_is_an_invalid_request)
{
	static const char *const reqs[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.info\",\"params\":{\"name\\u0000x\":\"a\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\",\"id\\u0000\":2}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\",\"params\":{},\"\\u0000\":0}",
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		char *rep = ask(reqs[i]);

		cr_expect_eq(t_reply_code(rep), RPC_INVALID_REQUEST, "%s: expected -32600, got %s",
			     reqs[i], rep);
		cr_expect(strstr(rep, "U+0000"), "the detail should say why: %s", rep);
		free(rep);
	}
}

Test(rpc_json, a_nul_in_a_string_param_is_invalid_params)
{
	char *rep = ask("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.info\",\"params\":{\"name\":\"vm\\u0000x\"}}");

	cr_assert_eq(t_reply_code(rep), RPC_INVALID_PARAMS, "expected -32602, got %s", rep);
	cr_assert(strstr(rep, "U+0000"), "the message should say why: %s", rep);
	free(rep);
}

Test(rpc_json, nesting_deeper_than_64_is_a_parse_error)
{
	char req[512];
	size_t n = 0;
	char *rep;

	n += (size_t)snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\",\"params\":");
	for (int i = 0; i < 63; i++)
		req[n++] = '[';
	for (int i = 0; i < 63; i++)
		req[n++] = ']';
	req[n++] = '}';
	rep = ask_n(req, n);
	cr_assert_eq(t_reply_code(rep), RPC_METHOD_NOT_FOUND, "64 levels: expected -32601, got %s", rep);
	free(rep);
	memmove(req + 1, req, n++);
	req[0] = '[';
	req[n++] = ']';
	rep = ask_n(req, n);
	cr_assert_eq(t_reply_code(rep), RPC_PARSE_ERROR, "65 levels: expected -32700, got %s", rep);
	free(rep);
}

Test(rpc_json, a_long_message_is_not_cut_through_a_character)
{
	/* Two, three and four byte characters: one of them straddles the
	 * 512-byte message buffer whatever the prefix. */
	static const char *const texts[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };

	for (size_t i = 0; i < 3; i++) {
		char req[256], *rep;
		json_object *o, *e, *m;

		snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t.long_error\","
			 "\"params\":{\"text\":\"%s\"}}", texts[i]);
		rep = ask(req);
		o = json_tokener_parse(rep);
		cr_assert(o && json_object_object_get_ex(o, "error", &e) &&
			  json_object_object_get_ex(e, "message", &m), "got %s", rep);
		cr_expect_gt(json_object_get_string_len(m), 400, "message too short: %s", rep);
		json_object_put(o);
		free(rep);
	}
}

Test(rpc_json, a_reply_with_bad_bytes_or_nan_is_sent_mended)
{
	char *rep = ask("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"t.bad_result\"}");

	cr_expect(strstr(rep, "\"console\":\"ok \xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd\""),
		  "bad bytes should become U+FFFD: %s", rep);
	cr_expect(strstr(rep, "\"rate\":null"), "NaN should become null: %s", rep);
	cr_expect(strstr(rep, "\"list\":[null,\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"]"),
		  "Infinity and an encoded surrogate: %s", rep);
	cr_expect(strstr(rep, "\"id\":7"), "the id survives: %s", rep);
	free(rep);
}

Test(rpc_json, the_checker_of_the_tests_agrees_with_the_parser)
{
	/* The two are written apart; on these they must agree. */
	static const char *const texts[] = {
		"1", "-0", "[]", "{}", "\"\\u00e9\"", "[1,2,{\"a\":[null,true,false]}]",
		"1.", "01", "NaN", "[1,]", "\"\xc0\x80\"", "\"\\ud800\"", "{\"a\"}", "",
		" ", "\"\x7f\"", "\"\xf4\x8f\xbf\xbf\"", "\"\xf4\x90\x80\x80\"", "1e5", "-",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		cr_expect_eq(rpc_json_valid(texts[i], strlen(texts[i])),
			     tj_strict_json(texts[i], strlen(texts[i]), NULL, 0),
			     "they disagree on [%s]", texts[i]);
}

Test(rpc_json, utf8_trim_drops_only_an_incomplete_last_character)
{
	cr_assert_eq(rpc_utf8_trim("ab\xc3\xa9", 4), 4);
	cr_assert_eq(rpc_utf8_trim("ab\xc3\xa9", 3), 2);
	cr_assert_eq(rpc_utf8_trim("a\xf0\x9f\x98\x80", 4), 1);
	cr_assert_eq(rpc_utf8_trim("a\xf0\x9f\x98\x80", 5), 5);
	cr_assert_eq(rpc_utf8_trim("abc", 3), 3);
}
