/* The HTTP request head parser: what RFC 9112 allows is parsed, and what
 * it forbids (or slotd does not serve) gets the status that says so. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "rpc/internal.h"

static int parse(const char *head, struct rpc_http_req *r)
{
	return rpc_http_parse_head(head, strlen(head), 8192, r);
}

struct refusal {
	const char *head;
	int status;
};

Test(rpc_http_parse, refusals_carry_the_status_that_fits)
{
	static const struct refusal cases[] = {
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 400 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\n", 400 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\n", 400 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: 0x2\r\n\r\n", 400 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
		{ "GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", 505 },
		{ "GET /healthz HTTP/1.2\r\nHost: a\r\n\r\n", 505 },
		{ "GET /healthz HTTP/0.9\r\n\r\n", 505 },
		{ "GET /healthz HTTP/1.1x\r\nHost: a\r\n\r\n", 400 },
		{ "GET /healthz http/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "GET /healthz\r\nHost: a\r\n\r\n", 400 },
		{ "GET  /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "GET http://a/healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "GET /heal\x01thz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\nHost: a\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nHost: a\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400 },
		{ "GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n", 400 },
		{ "G(T /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\n\r\n", 411 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\n", 417 },
		{ "POST /rpc HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\nContent-Length: 0\r\n\r\n", 400 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rpc_http_req r;
		int got = parse(cases[i].head, &r);

		cr_expect_eq(got, -cases[i].status, "case %zu [%s]: expected -%d, got %d (%s)", i,
			     cases[i].head, cases[i].status, got, r.why ? r.why : "");
		cr_expect(got >= 0 || r.why, "case %zu: a refusal must say why", i);
	}
}

Test(rpc_http_parse, a_valid_head_is_parsed)
{
	static const char head[] = "\r\nPOST /rpc?x=1 HTTP/1.1\r\nhost: a\r\ncontent-length:  12 \r\n"
				   "Authorization: Bearer tok\r\nConnection: Keep-Alive, close\r\n"
				   "Expect: 100-Continue\r\nX-Other: \x80ok\r\n\r\nbody";
	struct rpc_http_req r;

	cr_assert_eq(rpc_http_parse_head(head, sizeof(head) - 1, 8192, &r), 1, "refused: %s", r.why);
	cr_expect_eq(r.method, RPC_HTTP_POST);
	cr_expect_eq(r.minor, 1);
	cr_expect_eq(r.path_len, 4);
	cr_expect(!memcmp(r.target, "/rpc?x=1", r.target_len));
	cr_expect_eq(r.content_length, 12);
	cr_expect(r.auth && r.auth_len == 10 && !memcmp(r.auth, "Bearer tok", 10));
	cr_expect(r.expect_continue);
	cr_expect(!r.keep_alive, "Connection: close wins");
	cr_expect_eq(r.head_len, sizeof(head) - 1 - 4, "head_len %zu", r.head_len);
}

Test(rpc_http_parse, http_1_0_needs_no_host_and_closes_by_default)
{
	struct rpc_http_req r;

	cr_assert_eq(parse("GET /metrics HTTP/1.0\r\n\r\n", &r), 1, "refused: %s", r.why);
	cr_expect(!r.keep_alive);
	cr_assert_eq(parse("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), 1);
	cr_expect(r.keep_alive);
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), 1);
	cr_expect(r.keep_alive);
}

Test(rpc_http_parse, an_incomplete_head_waits_until_the_limit_then_is_431)
{
	char big[300];
	struct rpc_http_req r;

	cr_expect_eq(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n", &r), 0);
	cr_expect_eq(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r", &r), 0);
	cr_expect_eq(parse("GET /met", &r), 0);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	cr_expect_eq(rpc_http_parse_head(big, sizeof(big), 256, &r), -431);
	/* A complete head longer than the limit is 431 too. */
	cr_expect_eq(rpc_http_parse_head("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 35, 20, &r), -431);
}

Test(rpc_http_parse, more_than_64_header_lines_is_431)
{
	char head[4096];
	struct rpc_http_req r;
	int n = snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\n");

	for (int i = 0; i < 64; i++)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "X-%d: y\r\n", i);
	snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	cr_expect_eq(parse(head, &r), -431);
}
