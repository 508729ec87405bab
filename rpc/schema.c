/* Params validation against the OpenRPC document: the subset of JSON Schema
 * slotd's schemas use (type, enum, bounds, pattern, properties, required,
 * additionalProperties, items, oneOf/anyOf, $ref).  The document is the
 * source of truth for what a method accepts. */
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"

json_object *rpc_schema_method(struct rpc_server *srv, const char *name)
{
	json_object *methods, *m, *n;
	size_t len;

	/* Indexed by name on first use: a scan of the list cost 1 us a call. */
	if (!srv->method_index) {
		if (!srv->openrpc ||
		    !json_object_object_get_ex(srv->openrpc, "methods", &methods))
			return NULL;
		srv->method_index = json_object_new_object();
		len = json_object_array_length(methods);
		for (size_t i = 0; i < len; i++) {
			m = json_object_array_get_idx(methods, i);
			if (json_object_object_get_ex(m, "name", &n))
				json_object_object_add(srv->method_index, json_object_get_string(n),
						       json_object_get(m));
		}
	}
	return json_object_object_get_ex(srv->method_index, name, &m) ? m : NULL;
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

/* The json-c types a schema type word accepts ("number": integers too). */
static unsigned type_bits(const char *t)
{
	static const struct {
		const char *word;
		unsigned bits;
	} words[] = {
		{ "null", 1u << json_type_null }, { "boolean", 1u << json_type_boolean },
		{ "number", 1u << json_type_double | 1u << json_type_int },
		{ "integer", 1u << json_type_int }, { "object", 1u << json_type_object },
		{ "array", 1u << json_type_array }, { "string", 1u << json_type_string },
	};

	for (size_t i = 0; t && i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcmp(t, words[i].word))
			return words[i].bits;
	return 0;	/* an unknown word accepts nothing */
}

/* Every type "type" (a word or a list of words) accepts. */
static unsigned types_of(json_object *type)
{
	unsigned bits = 0;

	if (json_object_is_type(type, json_type_string))
		return type_bits(json_object_get_string(type));
	for (size_t i = 0; json_object_is_type(type, json_type_array) &&
			   i < json_object_array_length(type); i++)
		bits |= type_bits(json_object_get_string(json_object_array_get_idx(type, i)));
	return bits;
}

#define MATCHED_MAX	8
#define MATCHED_LEN	64

/* What validation reads of one schema object, looked up on its first use
 * and kept as the object's userdata (the document never changes; its
 * serializer ignores userdata; it is shared by reference, never deep-copied,
 * which would refuse userdata).  Looking the keywords up in every request
 * cost more than the rest of the check. */
struct node {
	json_object *target;	/* the schema after $ref hops, NULL if none */
	json_object *type, *enum_, *minimum, *maximum, *min_len, *max_len,
		*pattern, *description, *properties, *required, *addl, *items,
		*min_items, *max_items, *alts;
	unsigned types;		/* bit (1 << enum json_type) per type "type"
				 * accepts; checked without comparing names */
	bool closed;		/* additionalProperties: false */
	int re_state;		/* 0 not compiled yet, 1 compiled, -1 failed */
	regex_t re;
	/* Strings that matched pattern lately: glibc's regexec costs 0.6-0.8
	 * us even for a VM name, and most requests name one of a few VMs.
	 * A match never changes (the document is fixed); refusals are not
	 * kept. */
	struct {
		unsigned char len;
		char s[MATCHED_LEN];
	} matched[MATCHED_MAX];
	unsigned matched_next;
};

static void node_free(json_object *o, void *userdata)
{
	struct node *n = userdata;

	(void)o;
	if (n->re_state == 1)
		regfree(&n->re);
	free(n);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* The node of schema s (NULL when out of memory or not an object). */
static struct node *node_of(json_object *doc, json_object *s)
{
	struct node *n;

	if (!json_object_is_type(s, json_type_object))
		return NULL;
	n = json_object_get_userdata(s);
	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->target = deref(doc, s);
	if (n->target && n->target != s) {
		/* A $ref: its own node holds the keywords. */
		json_object_set_userdata(s, n, node_free);
		return n;
	}
	n->type = get(s, "type");
	n->types = types_of(n->type);
	n->enum_ = get(s, "enum");
	n->minimum = get(s, "minimum");
	n->maximum = get(s, "maximum");
	n->min_len = get(s, "minLength");
	n->max_len = get(s, "maxLength");
	n->pattern = get(s, "pattern");
	n->description = get(s, "description");
	n->properties = get(s, "properties");
	n->required = get(s, "required");
	n->addl = get(s, "additionalProperties");
	n->closed = n->addl && !json_object_get_boolean(n->addl);
	n->items = get(s, "items");
	n->min_items = get(s, "minItems");
	n->max_items = get(s, "maxItems");
	n->alts = get(s, "oneOf");
	if (!n->alts)
		n->alts = get(s, "anyOf");
	json_object_set_userdata(s, n, node_free);
	return n;
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
	if (vsnprintf(msg, sizeof(msg), fmt, ap) >= (int)sizeof(msg))
		msg[rpc_utf8_trim(msg, sizeof(msg) - 1)] = 0;
	va_end(ap);
	return rpc_call_error(c->call, RPC_INVALID_PARAMS, path,
			      "Invalid params: '%s' %s", path, msg);
}

static int validate(struct check *c, json_object *schema, json_object *v,
		    const char *path);

static int check_type(struct check *c, const struct node *n, json_object *v,
		      const char *path)
{
	json_object *t = n->type;
	char want[96] = "";

	if (!t || (n->types >> json_object_get_type(v) & 1))
		return 0;
	/* Refused: name what was wanted. */
	if (json_object_is_type(t, json_type_string)) {
		snprintf(want, sizeof(want), "%s", json_object_get_string(t));
	} else {
		for (size_t i = 0; i < json_object_array_length(t); i++) {
			const char *w = json_object_get_string(json_object_array_get_idx(t, i));

			snprintf(want + strlen(want), sizeof(want) - strlen(want),
				 "%s%s", i ? " or " : "", w);
		}
	}
	return fail(c, path, "must be of type %s, not %s", want, json_type_word(v));
}

static int check_enum(struct check *c, const struct node *n, json_object *v,
		      const char *path)
{
	json_object *e = n->enum_;
	char list[256] = "";

	if (!e)
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

static int check_number(struct check *c, const struct node *n, json_object *v,
			const char *path)
{
	char lim[48];

	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return 0;
	if (n->minimum && json_object_get_double(v) < json_object_get_double(n->minimum)) {
		snprintf(lim, sizeof(lim), "%s", json_object_to_json_string(n->minimum));
		return fail(c, path, "must be at least %s", lim);
	}
	if (n->maximum && json_object_get_double(v) > json_object_get_double(n->maximum)) {
		snprintf(lim, sizeof(lim), "%s", json_object_to_json_string(n->maximum));
		return fail(c, path, "must be at most %s", lim);
	}
	return 0;
}

/* Whether s (len bytes) matched n's pattern lately. */
static bool pattern_matched(const struct node *n, const char *s, size_t len)
{
	for (unsigned i = 0; i < MATCHED_MAX; i++)
		if (n->matched[i].len == len && len && !memcmp(n->matched[i].s, s, len))
			return true;
	return false;
}

/* Remembers that s matched (short strings only; the oldest goes). */
static void pattern_keep(struct node *n, const char *s, size_t len)
{
	if (!len || len > MATCHED_LEN)
		return;
	n->matched[n->matched_next].len = (unsigned char)len;
	memcpy(n->matched[n->matched_next].s, s, len);
	n->matched_next = (n->matched_next + 1) % MATCHED_MAX;
}

static int check_string(struct check *c, struct node *n, json_object *v,
			const char *path)
{
	const char *str;
	int len, nomatch;
	char lim[24];

	if (!json_object_is_type(v, json_type_string))
		return 0;
	len = json_object_get_string_len(v);
	/* Handlers read C strings: "vm1\u0000x" must not pass for "vm1". */
	if (memchr(json_object_get_string(v), '\0', (size_t)len))
		return fail(c, path, "must not contain U+0000");
	if (n->min_len && len < json_object_get_int(n->min_len)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(n->min_len));
		return fail(c, path, "must be at least %s characters long", lim);
	}
	if (n->max_len && len > json_object_get_int(n->max_len)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(n->max_len));
		return fail(c, path, "must be at most %s characters long", lim);
	}
	if (!n->pattern)
		return 0;
	/* Compiled once: patterns are checked on every request. */
	if (!n->re_state)
		n->re_state = regcomp(&n->re, json_object_get_string(n->pattern),
				      REG_EXTENDED | REG_NOSUB) ? -1 : 1;
	if (n->re_state < 0)
		return fail(c, path, "has a schema pattern slotd cannot compile");
	str = json_object_get_string(v);
	if (pattern_matched(n, str, (size_t)len))
		return 0;
	nomatch = regexec(&n->re, str, 0, NULL, 0);
	if (!nomatch)
		pattern_keep(n, str, (size_t)len);
	else if (n->description)
		return fail(c, path, "must be %s", json_object_get_string(n->description));
	else
		return fail(c, path, "must match %s", json_object_get_string(n->pattern));
	return 0;
}

/* buf = "path.key" (or "key" at the top), cut to fit. */
static void path_join(char *buf, size_t len, const char *path, const char *key)
{
	size_t p = strlen(path), k = strlen(key), n = 0;

	if (p) {
		p = p < len - 2 ? p : rpc_utf8_trim(path, len - 2);
		memcpy(buf, path, p);
		buf[p] = '.';
		n = p + 1;
	}
	k = k < len - 1 - n ? k : rpc_utf8_trim(key, len - 1 - n);
	memcpy(buf + n, key, k);
	buf[n + k] = '\0';
}

static int check_object(struct check *c, const struct node *n, json_object *v,
			const char *path)
{
	json_object *sub;
	char sub_path[256];

	if (!json_object_is_type(v, json_type_object))
		return 0;
	for (size_t i = 0; n->required && i < json_object_array_length(n->required); i++) {
		const char *k = json_object_get_string(json_object_array_get_idx(n->required, i));

		if (json_object_object_get_ex(v, k, NULL))
			continue;
		path_join(sub_path, sizeof(sub_path), path, k);
		return fail(c, sub_path, "is required");
	}
	json_object_object_foreach(v, key, val) {
		path_join(sub_path, sizeof(sub_path), path, key);
		if (n->properties && json_object_object_get_ex(n->properties, key, &sub)) {
			if (validate(c, sub, val, sub_path))
				return -EINVAL;
		} else if (n->closed) {
			return fail(c, sub_path, "is not a known member");
		}
	}
	return 0;
}

static int check_array(struct check *c, const struct node *n, json_object *v,
		       const char *path)
{
	size_t len;
	char sub_path[256], lim[24];

	if (!json_object_is_type(v, json_type_array))
		return 0;
	len = json_object_array_length(v);
	if (n->min_items && len < (size_t)json_object_get_int(n->min_items)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(n->min_items));
		return fail(c, path, "must have at least %s entries", lim);
	}
	if (n->max_items && len > (size_t)json_object_get_int(n->max_items)) {
		snprintf(lim, sizeof(lim), "%d", json_object_get_int(n->max_items));
		return fail(c, path, "must have at most %s entries", lim);
	}
	if (!n->items)
		return 0;
	for (size_t i = 0; i < len; i++) {
		snprintf(sub_path, sizeof(sub_path), "%s[%zu]", path, i);
		if (validate(c, n->items, json_object_array_get_idx(v, i), sub_path))
			return -EINVAL;
	}
	return 0;
}

/* The node holding schema's keywords (past any $ref), or NULL. */
static struct node *resolve(struct check *c, json_object *schema)
{
	struct node *n = node_of(c->doc, schema);

	if (n && n->target && n->target != schema)
		n = node_of(c->doc, n->target);
	return n && n->target ? n : NULL;
}

/* oneOf/anyOf: the first branch that matches wins; when none does, the
 * error of the branch whose "type" fits the value is the useful one. */
static int check_alternatives(struct check *c, const struct node *n, json_object *v,
			      const char *path)
{
	bool quiet = c->quiet;
	int best = -1;

	if (!n->alts)
		return 0;
	c->quiet = true;
	for (size_t i = 0; i < json_object_array_length(n->alts); i++) {
		json_object *a = json_object_array_get_idx(n->alts, i);
		struct node *an = resolve(c, a);
		struct check t = *c;

		if (an && !validate(&t, a, v, path)) {
			c->quiet = quiet;
			return 0;
		}
		if (an && best < 0 && !check_type(&t, an, v, path))
			best = (int)i;
	}
	c->quiet = quiet;
	if (best >= 0)
		return validate(c, json_object_array_get_idx(n->alts, best), v, path);
	return fail(c, path, "matches none of the accepted forms");
}

static int validate(struct check *c, json_object *schema, json_object *v,
		    const char *path)
{
	struct node *n = resolve(c, schema);

	if (!n)
		return fail(c, path, "has a schema slotd cannot resolve");
	if (check_type(c, n, v, path) || check_enum(c, n, v, path) ||
	    check_number(c, n, v, path) || check_string(c, n, v, path) ||
	    check_object(c, n, v, path) || check_array(c, n, v, path) ||
	    check_alternatives(c, n, v, path))
		return -EINVAL;
	return 0;
}

/* A method's params, looked up once (userdata of the method object). */
struct param {
	const char *name;
	json_object *schema;
	bool required;
};

struct method_params {
	size_t n;
	struct param p[];
};

static void params_free(json_object *o, void *userdata)
{
	(void)o;
	free(userdata);
}

static struct method_params *params_of(json_object *method)
{
	struct method_params *mp = json_object_get_userdata(method);
	json_object *list = get(method, "params");
	size_t n;

	if (mp || !list)
		return mp;
	n = json_object_array_length(list);
	mp = calloc(1, sizeof(*mp) + n * sizeof(mp->p[0]));
	if (!mp)
		return NULL;
	mp->n = n;
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(list, i);

		mp->p[i].name = json_object_get_string(get(d, "name"));
		mp->p[i].schema = get(d, "schema");
		mp->p[i].required = json_object_get_boolean(get(d, "required"));
	}
	json_object_set_userdata(method, mp, params_free);
	return mp;
}

/* Param name of mp, or NULL. */
static const struct param *param_find(const struct method_params *mp, const char *name)
{
	for (size_t i = 0; i < mp->n; i++)
		if (mp->p[i].name && !strcmp(mp->p[i].name, name))
			return &mp->p[i];
	return NULL;
}

int rpc_schema_check_params(struct rpc_call *call, json_object *openrpc,
			    json_object *method, json_object *params)
{
	struct check c = { .call = call, .doc = openrpc };
	struct method_params *mp;

	if (!get(method, "params"))
		return 0;
	mp = params_of(method);
	if (!mp)
		return rpc_call_error(call, RPC_INTERNAL_ERROR, NULL,
				      "Internal error: out of memory");
	if (params && !json_object_is_type(params, json_type_object))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "params",
				      "Invalid params: this method takes named params (a JSON object)");
	for (size_t i = 0; i < mp->n; i++)
		if (mp->p[i].required &&
		    !(params && json_object_object_get_ex(params, mp->p[i].name, NULL)))
			return fail(&c, mp->p[i].name ? mp->p[i].name : "", "is required");
	if (!params)
		return 0;
	json_object_object_foreach(params, key, val) {
		const struct param *d = param_find(mp, key);

		if (!d)
			return fail(&c, key, "is not a parameter of this method");
		if (d->schema && validate(&c, d->schema, val, key))
			return -EINVAL;
	}
	return 0;
}
