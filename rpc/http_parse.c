/* The HTTP/1.x request head parser (RFC 9112), strict and pure: bytes in,
 * a request or the status that refuses it out.  No allocation, no I/O, so
 * it can be fuzzed alone (tests/fuzz/fuzz_http.c). */
#include <string.h>
#include <strings.h>

#include "rpc/internal.h"

#define HEADERS_MAX	64

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int fail(struct rpc_http_req *r, int status, const char *why)
{
	r->status = status;
	r->why = why;
	return -status;
}

/* The end of the line starting at p (at its CR), or NULL if not there yet;
 * a bare LF or CR is refused (-400 via *bad). */
static const char *line_end(const char *p, const char *end, bool *bad)
{
	for (const char *q = p; q < end; q++) {
		if (*q == '\n') {
			*bad = true;
			return NULL;
		}
		if (*q != '\r')
			continue;
		if (q + 1 == end)
			return NULL;
		if (q[1] != '\n') {
			*bad = true;
			return NULL;
		}
		return q;
	}
	return NULL;
}

static int method_parse(struct rpc_http_req *r, const char *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)m[i]))
			return fail(r, 400, "malformed request line");
	if (n == 3 && !memcmp(m, "GET", 3))
		r->method = RPC_HTTP_GET;
	else if (n == 4 && !memcmp(m, "HEAD", 4))
		r->method = RPC_HTTP_HEAD;
	else if (n == 4 && !memcmp(m, "POST", 4))
		r->method = RPC_HTTP_POST;
	else
		r->method = RPC_HTTP_OTHER;
	return 0;
}

static int version_parse(struct rpc_http_req *r, const char *v, size_t n)
{
	if (n == 8 && !memcmp(v, "HTTP/1.", 7) && (v[7] == '0' || v[7] == '1')) {
		r->minor = v[7] - '0';
		return 0;
	}
	if (n == 8 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
	    v[7] >= '0' && v[7] <= '9')
		return fail(r, 505, "only HTTP/1.0 and HTTP/1.1 are served");
	return fail(r, 400, "malformed HTTP version");
}

/* METHOD SP origin-form SP HTTP/1.x */
static int request_line(struct rpc_http_req *r, const char *p, const char *eol)
{
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p)), *sp2;

	if (!sp1 || sp1 == p)
		return fail(r, 400, "malformed request line");
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1 || memchr(sp2 + 1, ' ', (size_t)(eol - sp2 - 1)))
		return fail(r, 400, "malformed request line");
	if (method_parse(r, p, (size_t)(sp1 - p)))
		return -r->status;
	r->target = sp1 + 1;
	r->target_len = (size_t)(sp2 - sp1 - 1);
	if (r->target[0] != '/')
		return fail(r, 400, "the request target must be a path (origin-form)");
	for (size_t i = 0; i < r->target_len; i++)
		if ((unsigned char)r->target[i] <= 0x20 || (unsigned char)r->target[i] >= 0x7f)
			return fail(r, 400, "malformed request target");
	{
		const char *q = memchr(r->target, '?', r->target_len);

		r->path_len = q ? (size_t)(q - r->target) : r->target_len;
	}
	return version_parse(r, sp2 + 1, (size_t)(eol - sp2 - 1));
}

static bool name_is(const char *n, size_t len, const char *want)
{
	return len == strlen(want) && !strncasecmp(n, want, len);
}

/* Whether the comma-separated value v holds token (case-insensitive). */
static bool list_has(const char *v, size_t n, const char *token)
{
	size_t t = strlen(token), i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == t && !strncasecmp(v + s, token, t))
			return true;
	}
	return false;
}

static int content_length(struct rpc_http_req *r, const char *v, size_t n)
{
	uint64_t len = 0;

	if (r->has_length)
		return fail(r, 400, "more than one Content-Length");
	if (n == 0 || n > 15)
		return fail(r, 400, "malformed Content-Length");
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return fail(r, 400, "malformed Content-Length");
		len = len * 10 + (uint64_t)(v[i] - '0');
	}
	r->has_length = true;
	r->content_length = len;
	return 0;
}

/* One header field the server acts on; others are checked and skipped. */
static int field(struct rpc_http_req *r, const char *name, size_t nlen,
		 const char *v, size_t vlen)
{
	if (name_is(name, nlen, "content-length"))
		return content_length(r, v, vlen);
	if (name_is(name, nlen, "transfer-encoding")) {
		r->has_te = true;
		return 0;
	}
	if (name_is(name, nlen, "host")) {
		if (r->has_host)
			return fail(r, 400, "more than one Host");
		r->has_host = true;
		return 0;
	}
	if (name_is(name, nlen, "authorization")) {
		if (r->auth)
			return fail(r, 400, "more than one Authorization");
		r->auth = v;
		r->auth_len = vlen;
		return 0;
	}
	if (name_is(name, nlen, "connection")) {
		r->conn_close |= list_has(v, vlen, "close");
		r->conn_keep_alive |= list_has(v, vlen, "keep-alive");
		return 0;
	}
	if (name_is(name, nlen, "expect")) {
		if (!name_is(v, vlen, "100-continue"))
			return fail(r, 417, "only Expect: 100-continue is understood");
		r->expect_continue = true;
	}
	return 0;
}

/* name ":" OWS value OWS, with no whitespace before the colon and no
 * control characters in the value. */
static int header_line(struct rpc_http_req *r, const char *p, const char *eol)
{
	const char *colon = memchr(p, ':', (size_t)(eol - p)), *v, *e;

	if (*p == ' ' || *p == '\t')
		return fail(r, 400, "folded header lines are not accepted");
	if (!colon || colon == p)
		return fail(r, 400, "malformed header line");
	for (const char *q = p; q < colon; q++)
		if (!is_tchar((unsigned char)*q))
			return fail(r, 400, "malformed header name");
	for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
		;
	for (e = eol; e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
		;
	for (const char *q = v; q < e; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
			return fail(r, 400, "control character in a header value");
	if (++r->nheaders > HEADERS_MAX)
		return fail(r, 431, "more than 64 header lines");
	return field(r, p, (size_t)(colon - p), v, (size_t)(e - v));
}

/* What the head says about the body and the connection, checked as a
 * whole: one Host on HTTP/1.1, no Transfer-Encoding (with or without a
 * length: no chunked bodies here), a length for POST. */
static int head_check(struct rpc_http_req *r)
{
	if (r->minor == 1 && !r->has_host)
		return fail(r, 400, "HTTP/1.1 requests need a Host header");
	if (r->has_te && r->has_length)
		return fail(r, 400, "both Transfer-Encoding and Content-Length");
	if (r->has_te)
		return fail(r, 501, "Transfer-Encoding is not supported; send Content-Length");
	if (r->method == RPC_HTTP_POST && !r->has_length)
		return fail(r, 411, "POST needs a Content-Length");
	r->keep_alive = r->minor == 1 ? !r->conn_close : r->conn_keep_alive && !r->conn_close;
	return 0;
}

int rpc_http_parse_head(const char *buf, size_t len, size_t max_head,
			struct rpc_http_req *r)
{
	const char *p = buf, *end = buf + (len < max_head ? len : max_head), *eol;
	bool bad = false;
	int n = 0;

	memset(r, 0, sizeof(*r));
	/* Empty lines before a request are allowed (RFC 9112 2.2). */
	while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2;
	for (;; n++) {
		eol = line_end(p, end, &bad);
		if (bad)
			return fail(r, 400, "lines must end with CR LF");
		if (!eol)
			return len >= max_head ? fail(r, 431, "the request head is too large") : 0;
		if (eol == p && n > 0)
			break;	/* the empty line that ends the head */
		if (eol == p || (n == 0 ? request_line(r, p, eol) : header_line(r, p, eol)))
			return r->status ? -r->status : fail(r, 400, "malformed request");
		p = eol + 2;
	}
	if (head_check(r))
		return -r->status;
	r->head_len = (size_t)(eol + 2 - buf);
	return 1;
}
