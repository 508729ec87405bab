/* Params validation against the OpenRPC document: the subset of JSON Schema
 * slotd's schemas use (type, enum, bounds, pattern, properties, required,
 * additionalProperties, items, oneOf/anyOf, $ref).  The document is the
 * source of truth for what a method accepts. */
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rpc/internal.h"

json_object *rpc_schema_method(json_object *openrpc, const char *name)
{
	json_object *methods, *m, *n;
	size_t len;

	if (!openrpc || !json_object_object_get_ex(openrpc, "methods", &methods))
		return NULL;
	len = json_object_array_length(methods);
	for (size_t i = 0; i < len; i++) {
		m = json_object_array_get_idx(methods, i);
		if (json_object_object_get_ex(m, "name", &n) &&
		    !strcmp(json_object_get_string(n), name))
			return m;
	}
	return NULL;
}

/* Resolves "#/components/schemas/X". */
static json_object *deref(json_object *doc, json_object *schema)
{
	json_object *ref, *comp, *schemas, *s;
	const char *p;

	for (int hops = 0; hops < 8; hops++) {
		if (!json_object_object_get_ex(schema, "$ref", &ref))
			return schema;
		p = json_object_get_string(ref);
		if (strncmp(p, "#/components/schemas/", 21) ||
		    !json_object_object_get_ex(doc, "components", &comp) ||
		    !json_object_object_get_ex(comp, "schemas", &schemas) ||
		    !json_object_object_get_ex(schemas, p + 21, &s))
			return NULL;
		schema = s;
	}
	return NULL;
}

static const char *json_type_word(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:	return "null";
	case json_type_boolean:	return "boolean";
	case json_type_double:	return "number";
	case json_type_int:	return "integer";
	case json_type_object:	return "object";
	case json_type_array:	return "array";
	case json_type_string:	return "string";
	}
	return "unknown";
}

static bool type_is(json_object *v, const char *t)
{
	const char *have = json_type_word(v);

	return !strcmp(have, t) || (!strcmp(t, "number") && !strcmp(have, "integer"));
}

struct check {
	struct rpc_call *call;
	json_object *doc;
	bool quiet;		/* trying a oneOf branch: record nothing */
};

__attribute__((format(printf, 3, 4)))
static int fail(struct check *c, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (c->quiet)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return rpc_call_error(c->call, RPC_INVALID_PARAMS, path,
			      "Invalid params: '%s' %s", path, msg);
}

static int validate(struct check *c, json_object *schema, json_object *v,
		    const char *path);

static int check_type(struct check *c, json_object *s, json_object *v,
		      const char *path)
{
	json_object *t;
	char want[96] = "";

	if (!json_object_object_get_ex(s, "type", &t))
		return 0;
	if (json_object_is_type(t, json_type_string)) {
		if (type_is(v, json_object_get_string(t)))
			return 0;
		snprintf(want, sizeof(want), "%s", json_object_get_string(t));
	} else {
		for (size_t i = 0; i < json_object_array_length(t); i++) {
			const char *w = json_object_get_string(json_object_array_get_idx(t, i));

			if (type_is(v, w))
				return 0;
			snprintf(want + strlen(want), sizeof(want) - strlen(want),
				 "%s%s", i ? " or " : "", w);
		}
	}
	return fail(c, path, "must be of type %s, not %s", want, json_type_word(v));
}

static int check_enum(struct check *c, json_object *s, json_object *v,
		      const char *path)
{
	json_object *e;
	char list[256] = "";

	if (!json_object_object_get_ex(s, "enum", &e))
		return 0;
	for (size_t i = 0; i < json_object_array_length(e); i++) {
		json_object *x = json_object_array_get_idx(e, i);

		if (json_object_equal(x, v))
			return 0;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i ? ", " : "", json_object_to_json_string(x));
	}
	return fail(c, path, "must be one of %s", list);
}

static int check_number(struct check *c, json_object *s, json_object *v,
			const char *path)
{
	json_object *b;
	char lim[48];

	if (!type_is(v, "number"))
		return 0;
	if (json_object_object_get_ex(s, "minimum", &b) &&
	    json_object_get_double(v) < json_object_get_double(b)) {
		snprintf(lim, sizeof(lim), "%s", json_object_to_json_string(b));
		return fail(c, path, "must be at least %s", lim);
	}
	if (json_object_object_get_ex(s, "maximum", &b) &&
	    json_object_get_double(v) > json_object_get_double(b)) {
		snprintf(lim, sizeof(lim), "%s", json_object_to_json_string(b));
		return fail(c, path, "must be at most %s", lim);
	}
	return 0;
}

/* The compiled form of a schema's pattern (a string of the document),
 * compiled once per server: patterns are checked on every request. */
static regex_t *regex_get(struct rpc_server *srv, json_object *pattern)
{
	struct rpc_regex *e;

	for (e = srv->regexes; e; e = e->next)
		if (e->pattern == pattern)
			return &e->re;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	if (regcomp(&e->re, json_object_get_string(pattern), REG_EXTENDED | REG_NOSUB)) {
		free(e);
		return NULL;
	}
	e->pattern = pattern;
	e->next = srv->regexes;
	srv->regexes = e;
	return &e->re;
}

void rpc_schema_cache_free(struct rpc_server *srv)
{
	struct rpc_regex *e;

	while ((e = srv->regexes)) {
		srv->regexes = e->next;
		regfree(&e->re);
		free(e);
	}
}

static int check_string(struct check *c, json_object *s, json_object *v,
			const char *path)
{
	json_object *b, *d;
	int len;
	regex_t *re;
	char lim[24];

	if (!json_object_is_type(v, json_type_string))
		return 0;
	len = json_object_get_string_len(v);
	if (json_object_object_get_ex(s, "minLength", &b) && len < json_object_get_int(b)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(b));
		return fail(c, path, "must be at least %s characters long", lim);
	}
	if (json_object_object_get_ex(s, "maxLength", &b) && len > json_object_get_int(b)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(b));
		return fail(c, path, "must be at most %s characters long", lim);
	}
	if (!json_object_object_get_ex(s, "pattern", &b))
		return 0;
	re = regex_get(c->call->srv, b);
	if (!re)
		return fail(c, path, "has a schema pattern slotd cannot compile");
	len = regexec(re, json_object_get_string(v), 0, NULL, 0);
	if (len && json_object_object_get_ex(s, "description", &d))
		return fail(c, path, "must be %s", json_object_get_string(d));
	if (len)
		return fail(c, path, "must match %s", json_object_get_string(b));
	return 0;
}

static int check_object(struct check *c, json_object *s, json_object *v,
			const char *path)
{
	json_object *props = NULL, *req, *addl, *sub;
	char sub_path[256];

	if (!json_object_is_type(v, json_type_object))
		return 0;
	json_object_object_get_ex(s, "properties", &props);
	if (json_object_object_get_ex(s, "required", &req)) {
		for (size_t i = 0; i < json_object_array_length(req); i++) {
			const char *k = json_object_get_string(json_object_array_get_idx(req, i));

			snprintf(sub_path, sizeof(sub_path), "%s%s%s", path, *path ? "." : "", k);
			if (!json_object_object_get_ex(v, k, NULL))
				return fail(c, sub_path, "is required");
		}
	}
	json_object_object_foreach(v, key, val) {
		snprintf(sub_path, sizeof(sub_path), "%s%s%s", path, *path ? "." : "", key);
		if (props && json_object_object_get_ex(props, key, &sub)) {
			if (validate(c, sub, val, sub_path))
				return -EINVAL;
		} else if (json_object_object_get_ex(s, "additionalProperties", &addl) &&
			   !json_object_get_boolean(addl)) {
			return fail(c, sub_path, "is not a known member");
		}
	}
	return 0;
}

static int check_array(struct check *c, json_object *s, json_object *v,
		       const char *path)
{
	json_object *items, *b;
	size_t n;
	char sub_path[256], lim[24];

	if (!json_object_is_type(v, json_type_array))
		return 0;
	n = json_object_array_length(v);
	if (json_object_object_get_ex(s, "minItems", &b) && n < (size_t)json_object_get_int(b)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(b));
		return fail(c, path, "must have at least %s entries", lim);
	}
	if (json_object_object_get_ex(s, "maxItems", &b) && n > (size_t)json_object_get_int(b)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(b));
		return fail(c, path, "must have at most %s entries", lim);
	}
	if (!json_object_object_get_ex(s, "items", &items))
		return 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(sub_path, sizeof(sub_path), "%s[%zu]", path, i);
		if (validate(c, items, json_object_array_get_idx(v, i), sub_path))
			return -EINVAL;
	}
	return 0;
}

/* oneOf/anyOf: the first branch that matches wins; when none does, the
 * error of the branch whose "type" fits the value is the useful one. */
static int check_alternatives(struct check *c, json_object *s, json_object *v,
			      const char *path)
{
	json_object *alts;
	bool quiet = c->quiet;
	int best = -1;

	if (!json_object_object_get_ex(s, "oneOf", &alts) &&
	    !json_object_object_get_ex(s, "anyOf", &alts))
		return 0;
	c->quiet = true;
	for (size_t i = 0; i < json_object_array_length(alts); i++) {
		json_object *a = deref(c->doc, json_object_array_get_idx(alts, i));
		struct check t = *c;

		if (a && !validate(&t, a, v, path)) {
			c->quiet = quiet;
			return 0;
		}
		if (a && best < 0 && !check_type(&t, a, v, path))
			best = (int)i;
	}
	c->quiet = quiet;
	if (best >= 0)
		return validate(c, deref(c->doc, json_object_array_get_idx(alts, best)),
				v, path);
	return fail(c, path, "matches none of the accepted forms");
}

static int validate(struct check *c, json_object *schema, json_object *v,
		    const char *path)
{
	json_object *s = deref(c->doc, schema);

	if (!s)
		return fail(c, path, "has a schema slotd cannot resolve");
	if (check_type(c, s, v, path) || check_enum(c, s, v, path) ||
	    check_number(c, s, v, path) || check_string(c, s, v, path) ||
	    check_object(c, s, v, path) || check_array(c, s, v, path) ||
	    check_alternatives(c, s, v, path))
		return -EINVAL;
	return 0;
}

/* Finds the content descriptor of param name, or NULL. */
static json_object *param_desc(json_object *list, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *d = json_object_array_get_idx(list, i), *n;

		if (json_object_object_get_ex(d, "name", &n) &&
		    !strcmp(json_object_get_string(n), name))
			return d;
	}
	return NULL;
}

int rpc_schema_check_params(struct rpc_call *call, json_object *openrpc,
			    json_object *method, json_object *params)
{
	struct check c = { .call = call, .doc = openrpc };
	json_object *list, *d, *req, *schema;

	if (!json_object_object_get_ex(method, "params", &list))
		return 0;
	if (params && !json_object_is_type(params, json_type_object))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "params",
				      "Invalid params: this method takes named params (a JSON object)");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *name;

		d = json_object_array_get_idx(list, i);
		json_object_object_get_ex(d, "name", &name);
		if (json_object_object_get_ex(d, "required", &req) &&
		    json_object_get_boolean(req) &&
		    !(params && json_object_object_get_ex(params, json_object_get_string(name), NULL)))
			return fail(&c, json_object_get_string(name), "is required");
	}
	if (!params)
		return 0;
	json_object_object_foreach(params, key, val) {
		d = param_desc(list, key);
		if (!d)
			return fail(&c, key, "is not a parameter of this method");
		if (json_object_object_get_ex(d, "schema", &schema) &&
		    validate(&c, schema, val, key))
			return -EINVAL;
	}
	return 0;
}
