/* Output of results.  One generic renderer for every method: an object of
 * scalars becomes aligned "key  value" lines, an array of objects a table
 * with a header row of their keys, a nested object an indented block. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "clients/slotctl.h"

#define RENDER_MAX_COLS	32
/* Lists of key/value lines wrap before this column. */
#define RENDER_LINE_WIDTH	100

static const int json_flags = JSON_C_TO_STRING_PLAIN |
			      JSON_C_TO_STRING_NOSLASHESCAPE;

void slotctl_render_json(FILE *f, json_object *obj)
{
	fprintf(f, "%s\n", json_object_to_json_string_ext(obj,
		JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *slotctl_render_scalar(json_object *o)
{
	static char num[32];

	if (!o)
		return "-";
	if (json_object_is_type(o, json_type_string))
		return json_object_get_string(o);
	/* 5.7683e-05, not json-c's round-trip 5.7683000000000003e-05. */
	if (json_object_is_type(o, json_type_double)) {
		snprintf(num, sizeof(num), "%.6g", json_object_get_double(o));
		return num;
	}
	return json_object_to_json_string_ext(o, json_flags);
}

static bool is_container(json_object *o)
{
	return json_object_is_type(o, json_type_object) ||
	       json_object_is_type(o, json_type_array);
}

/* True for a non-empty array whose elements are all objects. */
static bool is_table(json_object *o)
{
	size_t n;

	if (!json_object_is_type(o, json_type_array))
		return false;
	n = json_object_array_length(o);
	for (size_t i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(o, i),
					 json_type_object))
			return false;
	return n > 0;
}

/* True for an array of scalars (printed on one line). */
static bool is_flat_array(json_object *o)
{
	size_t n = json_object_array_length(o);

	for (size_t i = 0; i < n; i++)
		if (is_container(json_object_array_get_idx(o, i)))
			return false;
	return true;
}

/* True when v fits after its key on one line. */
static bool is_inline(json_object *v)
{
	if (!is_container(v))
		return true;
	if (json_object_is_type(v, json_type_object))
		return json_object_object_length(v) == 0;
	return is_flat_array(v);
}

/* Prints an inline value: scalars bare, flat arrays comma-separated. */
static void print_inline(FILE *f, json_object *v)
{
	size_t n;

	if (!is_container(v)) {
		fputs(slotctl_render_scalar(v), f);
		return;
	}
	if (json_object_is_type(v, json_type_object) ||
	    !(n = json_object_array_length(v))) {
		fputs("-", f);
		return;
	}
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? ", " : "",
			slotctl_render_scalar(json_object_array_get_idx(v, i)));
}

static void render_value(FILE *f, json_object *v, int indent);

/* Prints an inline value that starts at column col: a flat array longer
 * than a line wraps onto lines indented to col, one element never split. */
static void print_inline_wrapped(FILE *f, json_object *v, int col)
{
	size_t n;
	int at = col;

	if (!json_object_is_type(v, json_type_array) ||
	    !(n = json_object_array_length(v))) {
		print_inline(f, v);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *s = slotctl_render_scalar(json_object_array_get_idx(v, i));
		int len = (int)strlen(s) + (i + 1 < n ? 1 : 0);

		if (i && at + 1 + len > RENDER_LINE_WIDTH) {
			fprintf(f, "\n%*s", col, "");
			at = col;
		} else if (i) {
			fputc(' ', f);
			at++;
		}
		fprintf(f, "%s%s", s, i + 1 < n ? "," : "");
		at += len;
	}
}

/* Collects the union of the rows' keys in first-seen order. */
static int table_columns(json_object *rows, const char **cols)
{
	size_t n = json_object_array_length(rows);
	int ncols = 0;

	for (size_t i = 0; i < n; i++) {
		json_object_object_foreach(json_object_array_get_idx(rows, i),
					   key, val) {
			int c = 0;

			(void)val;
			while (c < ncols && strcmp(cols[c], key))
				c++;
			if (c == ncols && ncols < RENDER_MAX_COLS)
				cols[ncols++] = key;
		}
	}
	return ncols;
}

/* True for a non-empty object whose members all print inline. */
static bool is_flat_object(json_object *v)
{
	if (!json_object_is_type(v, json_type_object) ||
	    !json_object_object_length(v))
		return false;
	json_object_object_foreach(v, key, val) {
		(void)key;
		if (!is_inline(val))
			return false;
	}
	return true;
}

/* Text of one table cell: inline values as they print, flat objects as
 * "k=v k=v", deeper ones as compact JSON.  Returns a malloc'd string. */
static char *cell_text(json_object *row, const char *key)
{
	json_object *v = NULL;
	char *s = NULL;
	size_t len = 0;
	FILE *m;

	if (!json_object_object_get_ex(row, key, &v))
		return strdup("");
	if (!is_inline(v) && !is_flat_object(v))
		return strdup(json_object_to_json_string_ext(v, json_flags));
	m = open_memstream(&s, &len);
	if (!m)
		return NULL;
	if (is_flat_object(v)) {
		int i = 0;

		json_object_object_foreach(v, k, val) {
			fprintf(m, "%s%s=", i++ ? " " : "", k);
			print_inline(m, val);
		}
	} else {
		print_inline(m, v);
	}
	fclose(m);
	return s;
}

/* Prints one row of cells padded to the column widths. */
static void print_row(FILE *f, int indent, char **cells, const int *width,
		      int ncols)
{
	fprintf(f, "%*s", indent, "");
	for (int c = 0; c < ncols; c++) {
		const char *s = cells[c] ? cells[c] : "";

		if (c == ncols - 1)
			fprintf(f, "%s\n", s);
		else
			fprintf(f, "%-*s  ", width[c], s);
	}
}

/* Prints an array of objects as a table with an upper-case header. */
static void render_table(FILE *f, json_object *rows, int indent)
{
	const char *cols[RENDER_MAX_COLS];
	size_t n = json_object_array_length(rows);
	int ncols = table_columns(rows, cols), width[RENDER_MAX_COLS];
	char **cells = calloc((n + 1) * (size_t)ncols + 1, sizeof(*cells));

	if (!cells)
		return;
	for (int c = 0; c < ncols; c++) {
		cells[c] = strdup(cols[c]);
		for (char *p = cells[c]; p && *p; p++)
			*p = (char)toupper((unsigned char)*p);
		width[c] = (int)strlen(cols[c]);
	}
	for (size_t r = 0; r < n; r++) {
		for (int c = 0; c < ncols; c++) {
			char **cell = &cells[(r + 1) * (size_t)ncols +
					     (size_t)c];

			*cell = cell_text(json_object_array_get_idx(rows, r),
					  cols[c]);
			if (*cell && (int)strlen(*cell) > width[c])
				width[c] = (int)strlen(*cell);
		}
	}
	for (size_t r = 0; r <= n; r++)
		print_row(f, indent, cells + r * (size_t)ncols, width, ncols);
	for (size_t i = 0; i < (n + 1) * (size_t)ncols; i++)
		free(cells[i]);
	free(cells);
}

/* Prints an object's members: inline ones first, aligned, then nested
 * ones below their "key:" line, indented. */
static void render_object(FILE *f, json_object *o, int indent)
{
	int width = 0;

	json_object_object_foreach(o, k, v) {
		if (is_inline(v) && (int)strlen(k) > width)
			width = (int)strlen(k);
	}
	json_object_object_foreach(o, key, val) {
		if (!is_inline(val))
			continue;
		fprintf(f, "%*s%-*s  ", indent, "", width, key);
		print_inline_wrapped(f, val, indent + width + 2);
		fputc('\n', f);
	}
	json_object_object_foreach(o, nkey, nval) {
		if (is_inline(nval))
			continue;
		fprintf(f, "%*s%s:\n", indent, "", nkey);
		render_value(f, nval, indent + 2);
	}
}

/* Prints an array that is neither flat nor a table, element by element. */
static void render_list(FILE *f, json_object *a, int indent)
{
	size_t n = json_object_array_length(a);

	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(a, i);

		fprintf(f, "%*s[%zu]%s", indent, "", i,
			is_inline(v) ? "  " : "\n");
		if (is_inline(v)) {
			print_inline(f, v);
			fputc('\n', f);
		} else {
			render_value(f, v, indent + 2);
		}
	}
}

/* Prints any value at indent: object, table, list or inline. */
static void render_value(FILE *f, json_object *v, int indent)
{
	if (json_object_is_type(v, json_type_object)) {
		render_object(f, v, indent);
	} else if (is_table(v)) {
		render_table(f, v, indent);
	} else if (json_object_is_type(v, json_type_array) &&
		   !is_flat_array(v)) {
		render_list(f, v, indent);
	} else {
		fprintf(f, "%*s", indent, "");
		print_inline(f, v);
		fputc('\n', f);
	}
}

/* Drops the zero counters of obj[key] (an object of integers). */
static void drop_zeros(json_object *obj, const char *key)
{
	json_object *counters;
	const char *zero[64];
	int n = 0;

	if (!json_object_object_get_ex(obj, key, &counters) ||
	    !json_object_is_type(counters, json_type_object))
		return;
	json_object_object_foreach(counters, k, v) {
		if (json_object_is_type(v, json_type_int) &&
		    !json_object_get_int64(v) && n < 64)
			zero[n++] = k;
	}
	for (int i = 0; i < n; i++)
		json_object_object_del(counters, zero[i]);
}

void slotctl_render_effect_compact(json_object *o)
{
	json_object *effect;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "effect", &effect))
		return;
	drop_zeros(effect, "kernel");
	drop_zeros(effect, "engine");
}

void slotctl_render_human(FILE *f, json_object *result)
{
	json_object *only = NULL;

	slotctl_render_effect_compact(result);

	/* Silent success for methods that return nothing of interest. */
	if (!result || (json_object_is_type(result, json_type_object) &&
			!json_object_object_length(result)))
		return;
	/* {"vms":[...]}: the list is the whole answer, print just the table. */
	if (json_object_is_type(result, json_type_object) &&
	    json_object_object_length(result) == 1) {
		json_object_object_foreach(result, key, val) {
			(void)key;
			only = val;
		}
		if (json_object_is_type(only, json_type_array)) {
			if (!json_object_array_length(only))
				fputs("(none)\n", f);
			else
				render_value(f, only, 0);
			return;
		}
	}
	render_value(f, result, 0);
}
