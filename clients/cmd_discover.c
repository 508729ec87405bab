/* slotctl daemon discover [METHOD]: the OpenRPC document for people.  The
 * whole document is thousands of characters wide as a table, so the
 * default view is one line per method (its params and the first sentence
 * of its summary), and METHOD shows one method in full; --json prints the
 * document itself. */
#include <string.h>

#include "clients/slotctl.h"

#define SUMMARY_WIDTH	60

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return json_object_is_type(v, json_type_string) ?
	       json_object_get_string(v) : "";
}

/* The first sentence of text, cut at width with "...". */
static void print_sentence(FILE *f, const char *text, int width)
{
	const char *end = strstr(text, ". ");
	int n = end ? (int)(end - text) + 1 : (int)strlen(text);

	if (n > width)
		fprintf(f, "%.*s...", width - 3, text);
	else
		fprintf(f, "%.*s", n, text);
}

/* "name, type?, vcpus?": the params, optional ones with '?'. */
static char *params_text(json_object *method)
{
	json_object *ps = member(method, "params");
	char *s = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&s, &len);

	if (!m)
		return NULL;
	for (size_t i = 0; i < json_object_array_length(ps); i++) {
		json_object *p = json_object_array_get_idx(ps, i);

		fprintf(m, "%s%s%s", i ? " " : "", member_str(p, "name"),
			json_object_get_boolean(member(p, "required")) ? "" : "?");
	}
	if (!json_object_array_length(ps))
		fputs("-", m);
	fclose(m);
	return s;
}

/* One line per method: name, params, first sentence of the summary. */
static void discover_summary(json_object *doc)
{
	json_object *ms = member(doc, "methods"), *info = member(doc, "info");
	size_t n = json_object_array_length(ms);
	int wname = 6, wparams = 6;
	char **params = calloc(n + 1, sizeof(*params));

	if (!params)
		return;
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(ms, i);
		int l = (int)strlen(member_str(m, "name"));

		params[i] = params_text(m);
		wname = l > wname ? l : wname;
		if (params[i] && (int)strlen(params[i]) > wparams)
			wparams = (int)strlen(params[i]);
	}
	wparams = wparams > 30 ? 30 : wparams;
	printf("%s API %s: %zu methods, %zu notifications (OpenRPC %s)\n\n",
	       member_str(info, "title"), member_str(info, "version"), n,
	       json_object_array_length(member(doc, "x-notifications")),
	       member_str(doc, "openrpc"));
	printf("%-*s  %-*s  %s\n", wname, "METHOD", wparams, "PARAMS", "SUMMARY");
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(ms, i);
		const char *p = params[i] ? params[i] : "";

		printf("%-*s  %-*s  ", wname, member_str(m, "name"), wparams, p);
		if ((int)strlen(p) > wparams)
			printf("\n%*s", wname + wparams + 4, "");
		print_sentence(stdout, member_str(m, "summary"), SUMMARY_WIDTH);
		putchar('\n');
		free(params[i]);
	}
	free(params);
	puts("\nslotctl daemon discover METHOD describes one method; --json "
	     "prints the whole document.");
}

/* A schema in a few words: its $ref's name, its enum, or its type. */
static void print_schema(FILE *f, json_object *schema)
{
	json_object *e = member(schema, "enum");
	const char *ref = member_str(schema, "$ref");

	if (*ref) {
		fputs(strrchr(ref, '/') ? strrchr(ref, '/') + 1 : ref, f);
	} else if (json_object_is_type(e, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(e); i++)
			fprintf(f, "%s%s", i ? "|" : "",
				slotctl_render_scalar(json_object_array_get_idx(e, i)));
	} else if (member(schema, "type")) {
		fputs(slotctl_render_scalar(member(schema, "type")), f);
	} else {
		fputs("any", f);
	}
}

/* The code of an error given as {"$ref": "#/components/errors/X"}. */
static void print_error(json_object *doc, json_object *err)
{
	const char *ref = member_str(err, "$ref");
	const char *name = strrchr(ref, '/') ? strrchr(ref, '/') + 1 : ref;
	json_object *e = member(member(member(doc, "components"), "errors"), name);

	if (!e)
		e = err;
	printf("  %s  %s\n", slotctl_render_scalar(member(e, "code")),
	       member_str(e, "message"));
}

/* Everything the document says of one method. */
static void discover_method(json_object *doc, json_object *m)
{
	json_object *ps = member(m, "params"), *errs = member(m, "errors");

	printf("%s\n  %s\n\nparams:%s\n", member_str(m, "name"),
	       member_str(m, "summary"),
	       json_object_array_length(ps) ? "" : " none");
	for (size_t i = 0; i < json_object_array_length(ps); i++) {
		json_object *p = json_object_array_get_idx(ps, i);

		printf("  %-12s %-9s ", member_str(p, "name"),
		       json_object_get_boolean(member(p, "required")) ?
		       "required" : "optional");
		print_schema(stdout, member(p, "schema"));
		if (*member_str(p, "description"))
			printf(": %s", member_str(p, "description"));
		putchar('\n');
	}
	printf("\nresult: %s (", member_str(member(m, "result"), "name"));
	print_schema(stdout, member(member(m, "result"), "schema"));
	printf(")\n\nerrors besides the JSON-RPC ones:%s\n",
	       json_object_array_length(errs) ? "" : " none");
	for (size_t i = 0; i < json_object_array_length(errs); i++)
		print_error(doc, json_object_array_get_idx(errs, i));
}

int slotctl_daemon_discover(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *doc, *ms;
	int ret = slotctl_call(ctl, a->verb->method, NULL, &doc);

	if (ret)
		return ret;
	ms = member(doc, "methods");
	if (ctl->json && !a->argc) {
		slotctl_render_json(stdout, doc);
	} else if (!a->argc) {
		discover_summary(doc);
	} else {
		ret = SLOTCTL_EXIT_FAIL;
		for (size_t i = 0; i < json_object_array_length(ms); i++) {
			json_object *m = json_object_array_get_idx(ms, i);

			if (strcmp(member_str(m, "name"), a->argv[0]))
				continue;
			if (ctl->json)
				slotctl_render_json(stdout, m);
			else
				discover_method(doc, m);
			ret = SLOTCTL_EXIT_OK;
		}
		if (ret)
			slotctl_err("daemon discover: slotd has no method '%s' "
				    "(slotctl daemon discover lists them)",
				    a->argv[0]);
	}
	json_object_put(doc);
	return ret;
}
