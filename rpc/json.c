/* Strict JSON (RFC 8259, UTF-8 per RFC 3629) in and out.  json-c's tokener
 * accepts what the RFC refuses (NaN, Infinity, "1.", raw control
 * characters, overlong UTF-8), saturates integers that do not fit 64 bits
 * and cuts member names at U+0000; so slotd parses requests itself into
 * json-c objects, and checks every text it sends with the same grammar. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"

struct jp {
	const unsigned char *start, *p, *end;
	unsigned depth, max_depth;
	bool build;		/* false: only check the grammar */
	size_t nul_key;		/* offset + 1 of a member name holding U+0000 */
	char *buf;		/* decoded string being built */
	size_t len, cap;
	char *why;
	size_t whylen;
	int err;
};

__attribute__((format(printf, 3, 4)))
static int jp_fail(struct jp *j, int err, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (j->err)
		return j->err;
	j->err = err;
	if (j->why && j->whylen) {
		va_start(ap, fmt);
		n = vsnprintf(j->why, j->whylen, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < j->whylen)
			snprintf(j->why + n, j->whylen - (size_t)n, " at offset %zu",
				 (size_t)(j->p - j->start));
	}
	return err;
}

static void skip_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
				 *j->p == '\r'))
		j->p++;
}

/* Length of the UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one. */
size_t rpc_utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool rpc_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		size_t n = rpc_utf8_seq_len(p, end);

		if (!n)
			return false;
		p += n;
	}
	return true;
}

size_t rpc_utf8_trim(const char *s, size_t len)
{
	size_t i = len, back = 0, want;
	unsigned char lead;

	/* Step back over the continuation bytes to the last lead byte. */
	while (i > 0 && back < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0)
		return len;
	lead = (unsigned char)s[i - 1];
	want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return back + 1 < want ? i - 1 : len;
}

static int buf_put(struct jp *j, const void *p, size_t n)
{
	if (!j->build)
		return 0;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 256;
		char *b;

		while (cap < j->len + n + 1)
			cap *= 2;
		b = realloc(j->buf, cap);
		if (!b)
			return jp_fail(j, -ENOMEM, "out of memory");
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, p, n);
	j->len += n;
	return 0;
}

static int hex4(struct jp *j, unsigned *out)
{
	unsigned v = 0;

	if (j->end - j->p < 4)
		return jp_fail(j, -EINVAL, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		unsigned char c = *j->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (c | 0x20) - 'a' + 10;
		else
			return jp_fail(j, -EINVAL, "bad hex digit in a \\u escape");
	}
	*out = v;
	return 0;
}

/* \uXXXX (and its low surrogate) as UTF-8; lone surrogates have no UTF-8
 * form (RFC 8259 section 8.2), so they are refused. */
static int escape_u(struct jp *j)
{
	unsigned cp, lo;
	char u[4];
	size_t n;

	if (hex4(j, &cp))
		return j->err;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return jp_fail(j, -EINVAL, "lone low surrogate \\u%04X", cp);
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
			return jp_fail(j, -EINVAL, "lone high surrogate \\u%04X", cp);
		j->p += 2;
		if (hex4(j, &lo))
			return j->err;
		if (lo < 0xdc00 || lo > 0xdfff)
			return jp_fail(j, -EINVAL, "high surrogate \\u%04X without its low half", cp);
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_put(j, u, n);
}

static int escape(struct jp *j)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;

	if (j->p >= j->end)
		return jp_fail(j, -EINVAL, "unterminated string");
	if (*j->p == 'u') {
		j->p++;
		return escape_u(j);
	}
	e = *j->p ? strchr(from, *j->p) : NULL;
	if (!e)
		return jp_fail(j, -EINVAL, "invalid escape '\\%c'",
			       *j->p >= 0x20 && *j->p < 0x7f ? *j->p : '?');
	j->p++;
	return buf_put(j, &to[e - from], 1);
}

/* Decodes the string at j->p (after its opening quote) into j->buf. */
static int string_body(struct jp *j)
{
	j->len = 0;
	for (;;) {
		const unsigned char *run = j->p;
		size_t n;

		while (j->p < j->end && *j->p >= 0x20 && *j->p < 0x80 && *j->p != '"' &&
		       *j->p != '\\')
			j->p++;
		if (buf_put(j, run, (size_t)(j->p - run)))
			return j->err;
		if (j->p >= j->end)
			return jp_fail(j, -EINVAL, "unterminated string");
		if (*j->p == '"') {
			j->p++;
			return 0;
		}
		if (*j->p == '\\') {
			j->p++;
			if (escape(j))
				return j->err;
			continue;
		}
		if (*j->p < 0x20)
			return jp_fail(j, -EINVAL, "control character U+%04X in a string "
				       "(escape it)", *j->p);
		n = rpc_utf8_seq_len(j->p, j->end);
		if (!n)
			return jp_fail(j, -EINVAL, "invalid UTF-8 in a string");
		if (buf_put(j, j->p, n))
			return j->err;
		j->p += n;
	}
}

static int value(struct jp *j, json_object **out);

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* An integer that fits 64 bits (json-c keeps int64 and uint64), or NULL. */
static json_object *integer_object(const char *s)
{
	json_object *o;
	char *end;

	if (!strcmp(s, "-0")) {
		/* The integer 0, but it must echo as it came. */
		o = json_object_new_int64(0);
		if (o)
			json_object_set_serializer(o, json_object_userdata_to_json_string,
						   strdup("-0"), json_object_free_userdata);
		return o;
	}
	errno = 0;
	if (s[0] == '-') {
		long long v = strtoll(s, &end, 10);

		return errno ? NULL : json_object_new_int64(v);
	} else {
		unsigned long long v = strtoull(s, &end, 10);

		return errno ? NULL : json_object_new_uint64(v);
	}
}

/* The number's json-c object: an integer when it fits 64 bits, else a
 * double that serializes as exactly the text it came as (so an id of
 * 2^64 echoes as 18446744073709551616, not as a saturated neighbour). */
static int number_object(struct jp *j, const char *text, size_t n, bool integer,
			 json_object **out)
{
	char small[64], *s = n < sizeof(small) ? small : malloc(n + 1);

	if (!s)
		return jp_fail(j, -ENOMEM, "out of memory");
	memcpy(s, text, n);
	s[n] = 0;
	*out = integer ? integer_object(s) : NULL;
	if (!*out)
		*out = json_object_new_double_s(strtod(s, NULL), s);
	if (s != small)
		free(s);
	return *out ? 0 : jp_fail(j, -ENOMEM, "out of memory");
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int number(struct jp *j, json_object **out)
{
	const unsigned char *s = j->p;
	bool integer = true;

	if (*j->p == '-')
		j->p++;
	if (!is_digit(j->p, j->end))
		return jp_fail(j, -EINVAL, "a number needs a digit after '-'");
	if (*j->p == '0' && is_digit(j->p + 1, j->end))
		return jp_fail(j, -EINVAL, "numbers must not have leading zeros");
	while (is_digit(j->p, j->end))
		j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		integer = false;
		if (!is_digit(j->p, j->end))
			return jp_fail(j, -EINVAL, "a number needs digits after '.'");
		while (is_digit(j->p, j->end))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		integer = false;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!is_digit(j->p, j->end))
			return jp_fail(j, -EINVAL, "a number needs digits in its exponent");
		while (is_digit(j->p, j->end))
			j->p++;
	}
	if (!j->build)
		return 0;
	return number_object(j, (const char *)s, (size_t)(j->p - s), integer, out);
}

static int literal(struct jp *j, const char *word, json_object **out,
		   json_object *(*make)(void))
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
		return jp_fail(j, -EINVAL, "unexpected '%c' (not a JSON value)", *j->p);
	j->p += n;
	if (j->build && make && !(*out = make()))
		return jp_fail(j, -ENOMEM, "out of memory");
	return 0;
}

static json_object *make_true(void)
{
	return json_object_new_boolean(1);
}

static json_object *make_false(void)
{
	return json_object_new_boolean(0);
}

static int string_value(struct jp *j, json_object **out)
{
	j->p++;
	if (string_body(j))
		return j->err;
	if (j->build && !(*out = json_object_new_string_len(j->buf ? j->buf : "", (int)j->len)))
		return jp_fail(j, -ENOMEM, "out of memory");
	return 0;
}

static int depth_enter(struct jp *j)
{
	if (++j->depth > j->max_depth)
		return jp_fail(j, -EINVAL, "nesting deeper than %u levels", j->max_depth);
	j->p++;
	skip_ws(j);
	return 0;
}

/* One "name": value member into o (a name holding U+0000 is noted and its
 * member dropped: json-c names are C strings). */
static int member(struct jp *j, json_object *o)
{
	json_object *v = NULL;
	char *key = NULL;

	if (j->p >= j->end || *j->p != '"')
		return jp_fail(j, -EINVAL, "expected a member name in quotes");
	j->p++;
	if (string_body(j))
		return j->err;
	if (j->build) {
		if (memchr(j->buf, 0, j->len) && !j->nul_key)
			j->nul_key = (size_t)(j->p - j->start);
		j->buf[j->len] = 0;
		key = strdup(j->buf);
		if (!key)
			return jp_fail(j, -ENOMEM, "out of memory");
	}
	skip_ws(j);
	if (j->p >= j->end || *j->p != ':') {
		free(key);
		return jp_fail(j, -EINVAL, "expected ':' after a member name");
	}
	j->p++;
	if (value(j, &v)) {
		json_object_put(v);
		free(key);
		return j->err;
	}
	if (j->build && json_object_object_add(o, key, v)) {
		json_object_put(v);
		free(key);
		return jp_fail(j, -ENOMEM, "out of memory");
	}
	free(key);
	return 0;
}

static int object(struct jp *j, json_object **out)
{
	json_object *o = NULL;

	if (depth_enter(j))
		return j->err;
	if (j->build && !(o = json_object_new_object()))
		return jp_fail(j, -ENOMEM, "out of memory");
	*out = o;
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		j->depth--;
		return 0;
	}
	for (;;) {
		if (member(j, o))
			return j->err;
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			skip_ws(j);
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			j->depth--;
			return 0;
		}
		return jp_fail(j, -EINVAL, j->p < j->end ? "expected ',' or '}'" :
			       "unterminated object");
	}
}

static int array(struct jp *j, json_object **out)
{
	json_object *a = NULL, *v;

	if (depth_enter(j))
		return j->err;
	if (j->build && !(a = json_object_new_array()))
		return jp_fail(j, -ENOMEM, "out of memory");
	*out = a;
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		j->depth--;
		return 0;
	}
	for (;;) {
		v = NULL;
		if (value(j, &v)) {
			json_object_put(v);
			return j->err;
		}
		if (j->build && json_object_array_add(a, v)) {
			json_object_put(v);
			return jp_fail(j, -ENOMEM, "out of memory");
		}
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			j->depth--;
			return 0;
		}
		return jp_fail(j, -EINVAL, j->p < j->end ? "expected ',' or ']'" :
			       "unterminated array");
	}
}

/* One value; on failure *out may hold a partial container to put. */
static int value(struct jp *j, json_object **out)
{
	skip_ws(j);
	if (j->p >= j->end)
		return jp_fail(j, -EINVAL, "unexpected end of the text");
	switch (*j->p) {
	case '{':	return object(j, out);
	case '[':	return array(j, out);
	case '"':	return string_value(j, out);
	case 't':	return literal(j, "true", out, make_true);
	case 'f':	return literal(j, "false", out, make_false);
	case 'n':	return literal(j, "null", out, NULL);
	case 'N': case 'I':
		return jp_fail(j, -EINVAL, "NaN and Infinity are not JSON numbers");
	}
	if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
		return number(j, out);
	if (*j->p >= 0x20 && *j->p < 0x7f)
		return jp_fail(j, -EINVAL, "unexpected '%c'", *j->p);
	return jp_fail(j, -EINVAL, "unexpected byte 0x%02x", *j->p);
}

static int run(struct jp *j, json_object **out)
{
	json_object *o = NULL;

	if (j->p == j->end) {
		j->err = -EINVAL;
		if (j->why)
			snprintf(j->why, j->whylen, "empty message");
		return j->err;
	}
	if (!value(j, &o)) {
		skip_ws(j);
		if (j->p < j->end)
			jp_fail(j, -EINVAL, "trailing data after the JSON text");
	}
	if (!j->err && j->nul_key) {
		j->err = -EPROTO;
		if (j->why)
			snprintf(j->why, j->whylen, "a member name contains U+0000 "
				 "(before offset %zu); slotd accepts none", j->nul_key);
	}
	free(j->buf);
	if (j->err) {
		json_object_put(o);
		return j->err;
	}
	if (out)
		*out = o;
	return 0;
}

int rpc_json_parse(const char *text, size_t len, unsigned max_depth,
		   json_object **out, char *why, size_t whylen)
{
	struct jp j = {
		.start = (const unsigned char *)text, .p = (const unsigned char *)text,
		.end = (const unsigned char *)text + len, .max_depth = max_depth,
		.build = true, .why = why, .whylen = whylen,
	};

	*out = NULL;
	return run(&j, out);
}

bool rpc_json_valid(const char *text, size_t len)
{
	struct jp j = {
		.start = (const unsigned char *)text, .p = (const unsigned char *)text,
		.end = (const unsigned char *)text + len, .max_depth = 1024,
	};

	return run(&j, NULL) == 0;
}

/* s with every byte that is not part of a valid UTF-8 sequence replaced
 * by U+FFFD (malloc'd; *outlen its length). */
static char *utf8_mend(const char *s, size_t len, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	char *out = malloc(len * 3 + 1), *q = out;

	if (!out)
		return NULL;
	while (p < end) {
		size_t n = rpc_utf8_seq_len(p, end);

		if (n) {
			memcpy(q, p, n);
			q += n;
			p += n;
		} else {
			memcpy(q, "\xef\xbf\xbd", 3);
			q += 3;
			p++;
		}
	}
	*q = 0;
	*outlen = (size_t)(q - out);
	return out;
}

/* A replacement for v when it would not serialize as strict JSON, or
 * NULL when v is fine (or is a container, mended in place). */
static bool mend_needed(json_object *v, json_object **repl)
{
	const char *s;

	*repl = NULL;
	switch (json_object_get_type(v)) {
	case json_type_string:
		s = json_object_get_string(v);
		if (rpc_utf8_valid(s, (size_t)json_object_get_string_len(v)))
			return false;
		{
			size_t n;
			char *m = utf8_mend(s, (size_t)json_object_get_string_len(v), &n);

			*repl = m ? json_object_new_string_len(m, (int)n) : NULL;
			free(m);
		}
		return true;
	case json_type_double:
		s = json_object_to_json_string(v);
		if (isfinite(json_object_get_double(v)) || rpc_json_valid(s, strlen(s)))
			return false;
		return true;	/* NaN/Infinity: null */
	case json_type_object:
	case json_type_array:
		rpc_json_mend(v);
		return false;
	default:
		return false;
	}
}

/* Rebuilds o's members whose names or values would not be strict JSON. */
static void mend_object(json_object *o)
{
	struct lh_entry *e, *next;

	for (e = json_object_get_object(o)->head; e; e = next) {
		const char *k = lh_entry_k(e);
		json_object *v = lh_entry_v(e), *repl;
		bool bad_key = !rpc_utf8_valid(k, strlen(k));
		bool bad_val = mend_needed(v, &repl);

		next = e->next;
		if (!bad_key && !bad_val)
			continue;
		if (!bad_val)
			repl = json_object_get(v);
		if (bad_key) {
			size_t n;
			char *mk = utf8_mend(k, strlen(k), &n);

			json_object_object_del(o, k);
			if (mk)
				json_object_object_add(o, mk, repl);
			else
				json_object_put(repl);
			free(mk);
		} else {
			json_object_object_add(o, k, repl);
		}
	}
}

void rpc_json_mend(json_object *o)
{
	json_object *repl;

	if (json_object_is_type(o, json_type_object)) {
		mend_object(o);
		return;
	}
	if (!json_object_is_type(o, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(o); i++)
		if (mend_needed(json_object_array_get_idx(o, i), &repl))
			json_object_array_put_idx(o, i, repl);
}
