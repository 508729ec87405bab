/* Parsing of command-line values: numbers, sizes, on/off, JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clients/slotctl.h"

/* Shift of a K/M/G/T suffix (optionally followed by "iB" or "B"); -1 if
 * s is not one. */
static int suffix_shift(const char *s)
{
	static const char units[] = "KMGT";
	const char *u = *s ? strchr(units, *s & ~0x20) : NULL;

	if (!u)
		return -1;
	s++;
	if (*s && strcasecmp(s, "iB") && strcasecmp(s, "B"))
		return -1;
	return 10 * (int)(u - units + 1);
}

int slotctl_parse_u64(const char *s, bool sizes, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (end == s)
		return -EINVAL;
	if (errno)
		return -errno;
	if (*end) {
		shift = sizes ? suffix_shift(end) : -1;
		if (shift < 0)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int slotctl_parse_onoff(const char *s, bool *out)
{
	static const char *const on[] = { "on", "true", "yes", "1", NULL };
	static const char *const off[] = { "off", "false", "no", "0", NULL };

	for (int i = 0; on[i]; i++) {
		if (!strcasecmp(s, on[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, off[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int slotctl_parse_json(const char *text, json_object **out, const char **why)
{
	struct json_tokener *tok = json_tokener_new();
	size_t len = strlen(text), end;
	enum json_tokener_error jerr;
	json_object *o;

	if (!tok)
		return -ENOMEM;
	/* The NUL is passed too so that a bare number ends. */
	o = json_tokener_parse_ex(tok, text, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	/* json-c stops at the end of the first value: reject trailing text. */
	if (o && jerr == json_tokener_success && end < len &&
	    text[end + strspn(text + end, " \t\r\n")]) {
		json_object_put(o);
		o = NULL;
		*why = "unexpected text after the JSON value";
	} else if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		o = NULL;
		*why = jerr == json_tokener_continue ? "unexpected end of input"
			: json_tokener_error_desc(jerr);
	}
	json_tokener_free(tok);
	if (!o)
		return -EINVAL;
	*out = o;
	return 0;
}

int slotctl_param_u64(json_object *params, const char *key, const char *text,
		      bool sizes)
{
	uint64_t v;
	int ret = slotctl_parse_u64(text, sizes, &v);

	if (ret == -ERANGE || (!ret && v > INT64_MAX)) {
		slotctl_err("%s: %s is too large", key, text);
		return -ERANGE;
	}
	if (ret) {
		slotctl_err("%s: '%s' is not a number%s", key, text ? text : "",
			    sizes ? " (decimal or 0x hex, optional K/M/G/T "
				    "suffix)" : " (decimal or 0x hex)");
		return ret;
	}
	json_object_object_add(params, key, json_object_new_int64((int64_t)v));
	return 0;
}

int slotctl_param_onoff(json_object *params, const char *key,
			const char *text)
{
	bool on;

	if (slotctl_parse_onoff(text, &on)) {
		slotctl_err("%s: '%s' is not on or off", key, text);
		return -EINVAL;
	}
	json_object_object_add(params, key, json_object_new_boolean(on));
	return 0;
}
