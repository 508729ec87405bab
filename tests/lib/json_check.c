/* Strict JSON checker for tests and fuzz oracles (see json_check.h).
 * Decodes code points and checks their ranges, where rpc/json.c checks
 * byte patterns; an explicit stack, where rpc/json.c recurses. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/lib/json_check.h"

#define TJ_MAX_DEPTH 4096

struct tj {
	const unsigned char *s;
	size_t i, n;
	const char *err;
};

static bool bad(struct tj *t, const char *what)
{
	if (!t->err)
		t->err = what;
	return false;
}

static void ws(struct tj *t)
{
	while (t->i < t->n && strchr(" \t\r\n", t->s[t->i]) && t->s[t->i])
		t->i++;
}

/* Decodes one UTF-8 character; false on any ill-formed sequence. */
static bool utf8_char(struct tj *t)
{
	unsigned char c = t->s[t->i];
	uint32_t cp, min;
	int extra;

	if (c < 0x80) {
		t->i++;
		return true;
	}
	if ((c & 0xe0) == 0xc0) {
		cp = c & 0x1f;
		extra = 1;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		cp = c & 0x0f;
		extra = 2;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		cp = c & 0x07;
		extra = 3;
		min = 0x10000;
	} else {
		return bad(t, "invalid UTF-8 lead byte");
	}
	if (t->n - t->i <= (size_t)extra)
		return bad(t, "truncated UTF-8 sequence");
	for (int k = 1; k <= extra; k++) {
		unsigned char d = t->s[t->i + (size_t)k];

		if ((d & 0xc0) != 0x80)
			return bad(t, "invalid UTF-8 continuation byte");
		cp = cp << 6 | (d & 0x3f);
	}
	if (cp < min)
		return bad(t, "overlong UTF-8 sequence");
	if (cp >= 0xd800 && cp <= 0xdfff)
		return bad(t, "UTF-8 encoded surrogate");
	if (cp > 0x10ffff)
		return bad(t, "code point above U+10FFFF");
	t->i += (size_t)extra + 1;
	return true;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool u_escape(struct tj *t, unsigned *out)
{
	unsigned v = 0;

	if (t->n - t->i < 4)
		return bad(t, "truncated \\u escape");
	for (int k = 0; k < 4; k++) {
		int h = hexval(t->s[t->i++]);

		if (h < 0)
			return bad(t, "bad \\u escape");
		v = v * 16 + (unsigned)h;
	}
	*out = v;
	return true;
}

static bool string(struct tj *t)
{
	unsigned u, lo;

	t->i++;	/* the opening quote */
	while (t->i < t->n) {
		unsigned char c = t->s[t->i];

		if (c == '"') {
			t->i++;
			return true;
		}
		if (c < 0x20)
			return bad(t, "unescaped control character in a string");
		if (c != '\\') {
			if (!utf8_char(t))
				return false;
			continue;
		}
		if (++t->i >= t->n)
			return bad(t, "truncated escape");
		c = t->s[t->i++];
		if (c != 'u') {
			if (!strchr("\"\\/bfnrt", c) || !c)
				return bad(t, "bad escape");
			continue;
		}
		if (!u_escape(t, &u))
			return false;
		if (u >= 0xdc00 && u <= 0xdfff)
			return bad(t, "lone low surrogate escape");
		if (u >= 0xd800 && u <= 0xdbff) {
			if (t->n - t->i < 2 || t->s[t->i] != '\\' || t->s[t->i + 1] != 'u')
				return bad(t, "lone high surrogate escape");
			t->i += 2;
			if (!u_escape(t, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return bad(t, "high surrogate without its low half");
		}
	}
	return bad(t, "unterminated string");
}

static size_t digits(struct tj *t)
{
	size_t k = 0;

	while (t->i < t->n && t->s[t->i] >= '0' && t->s[t->i] <= '9') {
		t->i++;
		k++;
	}
	return k;
}

static bool number(struct tj *t)
{
	size_t start;

	if (t->s[t->i] == '-')
		t->i++;
	start = t->i;
	if (!digits(t))
		return bad(t, "number without digits");
	if (t->s[start] == '0' && t->i - start > 1)
		return bad(t, "number with a leading zero");
	if (t->i < t->n && t->s[t->i] == '.') {
		t->i++;
		if (!digits(t))
			return bad(t, "no digits after the decimal point");
	}
	if (t->i < t->n && (t->s[t->i] | 0x20) == 'e') {
		t->i++;
		if (t->i < t->n && (t->s[t->i] == '+' || t->s[t->i] == '-'))
			t->i++;
		if (!digits(t))
			return bad(t, "no digits in the exponent");
	}
	return true;
}

static bool word(struct tj *t, const char *w)
{
	size_t k = strlen(w);

	if (t->n - t->i < k || memcmp(t->s + t->i, w, k))
		return bad(t, "unexpected character");
	t->i += k;
	return true;
}

/* A scalar at t->i. */
static bool scalar(struct tj *t)
{
	switch (t->s[t->i]) {
	case '"':	return string(t);
	case 't':	return word(t, "true");
	case 'f':	return word(t, "false");
	case 'n':	return word(t, "null");
	}
	if (t->s[t->i] == '-' || (t->s[t->i] >= '0' && t->s[t->i] <= '9'))
		return number(t);
	return bad(t, "unexpected character");
}

/* The whole text, containers tracked on an explicit stack of '{'/'['. */
static bool text(struct tj *t)
{
	char stack[TJ_MAX_DEPTH];
	int sp = 0;
	bool want_value = true;

	for (;;) {
		ws(t);
		if (t->i >= t->n)
			return bad(t, "unexpected end");
		if (want_value) {
			unsigned char c = t->s[t->i];

			if (c == '{' || c == '[') {
				if (sp == TJ_MAX_DEPTH)
					return bad(t, "nested too deep for the checker");
				stack[sp++] = (char)c;
				t->i++;
				ws(t);
				if (t->i < t->n && t->s[t->i] == (c == '{' ? '}' : ']')) {
					t->i++;
					sp--;
					want_value = false;
					goto after_value;
				}
				if (c == '{')
					goto member_name;
				continue;
			}
			if (!scalar(t))
				return false;
			want_value = false;
		}
after_value:
		ws(t);
		if (sp == 0)
			return t->i == t->n ? true : bad(t, "trailing data");
		if (t->i >= t->n)
			return bad(t, "unterminated container");
		if (t->s[t->i] == (stack[sp - 1] == '{' ? '}' : ']')) {
			t->i++;
			sp--;
			goto after_value;
		}
		if (t->s[t->i] != ',')
			return bad(t, "expected ',' or the container's end");
		t->i++;
		want_value = true;
		if (stack[sp - 1] == '[')
			continue;
member_name:
		ws(t);
		if (t->i >= t->n || t->s[t->i] != '"')
			return bad(t, "expected a member name");
		if (!string(t))
			return false;
		ws(t);
		if (t->i >= t->n || t->s[t->i] != ':')
			return bad(t, "expected ':'");
		t->i++;
		want_value = true;
	}
}

bool tj_strict_json(const char *txt, size_t len, char *why, size_t whylen)
{
	struct tj t = { .s = (const unsigned char *)txt, .n = len };
	bool ok = text(&t);

	if (!ok && why && whylen)
		snprintf(why, whylen, "%s at byte %zu", t.err ? t.err : "invalid", t.i);
	return ok;
}
