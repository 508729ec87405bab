/* slotctl for operators and scripts, against the real slotd: errors as
 * JSON under --json, a permission error that names the socket's real
 * group, the readable discover view, the log level changed at run time,
 * and dial-stdio bridging stdin/stdout to the socket. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

static struct test_daemon d;

static void up(void)
{
	int r = test_daemon_start(&d, NULL);

	cr_assert_eq(r, 0, "expected slotd to start, got %d (%s)", r, strerror(-r));
}

static void down(void)
{
	test_daemon_stop(&d);
}

TestSuite(slotctl_ops, .init = up, .fini = down, .timeout = 60);

/* Runs build/slotctl --socket SOCK with the arguments (NULL-terminated). */
static int ctl(char **out, char **err, ...)
{
	const char *argv[24] = { test_slotctl_bin(), "--socket", d.sock };
	int n = 3;
	va_list ap;

	va_start(ap, err);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return test_run(argv, out, err);
}

/* Parses text as one JSON object, asserting it is one. */
static json_object *json_of(const char *text, const char *what)
{
	json_object *o = json_tokener_parse(text ? text : "");

	cr_assert(json_object_is_type(o, json_type_object), "expected %s to be "
		  "one JSON object, got: %s", what, text ? text : "(nothing)");
	return o;
}

/* error.code of {"error": {...}} as an int64, and its message. */
static int64_t error_code(json_object *o, const char **message)
{
	json_object *e, *code, *msg;

	cr_assert(json_object_object_get_ex(o, "error", &e) &&
		  json_object_object_get_ex(e, "code", &code) &&
		  json_object_object_get_ex(e, "message", &msg),
		  "expected {\"error\": {code, message}}, got %s",
		  json_object_to_json_string(o));
	*message = json_object_get_string(msg);
	return json_object_is_type(code, json_type_null) ? 0 : json_object_get_int64(code);
}

Test(slotctl_ops, json_flag_prints_server_errors_as_json_on_stderr)
{
	char *out, *err;
	const char *msg;
	/* An error of the daemon's own, on hosts with KVM or without. */
	int rc = ctl(&out, &err, "--json", "call", "events.subscribe",
		     "{\"topics\":[\"no-such-topic\"]}", NULL);
	json_object *o;

	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert_str_empty(out, "expected nothing on stdout, got: %s", out);
	o = json_of(err, "stderr");
	cr_assert_eq(error_code(o, &msg), -32602, "expected code -32602, got %s", err);
	cr_assert(strstr(msg, "topics[0]"), "expected the message to name the param: %s", msg);
	json_object_put(o);
	free(out);
	free(err);
}

Test(slotctl_ops, json_flag_prints_local_errors_as_json_too)
{
	const char *argv[] = { test_slotctl_bin(), "--json", "--socket",
			       "/nonexistent/slotd.sock", "daemon", "version", NULL };
	const char *usage[] = { test_slotctl_bin(), "vm", "frobnicate", "--json", NULL };
	char *out, *err;
	const char *msg;
	json_object *o;
	int rc = test_run(argv, &out, &err);

	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	o = json_of(err, "stderr of an unreachable daemon");
	cr_assert_eq(error_code(o, &msg), 0, "expected code null for a local error: %s", err);
	cr_assert(strstr(msg, "/nonexistent/slotd.sock"), "expected the path in: %s", msg);
	json_object_put(o);
	free(out);
	free(err);
	rc = test_run(usage, &out, &err);
	cr_assert_eq(rc, 2, "expected exit 2 for a usage error, got %d", rc);
	o = json_of(err, "stderr of a usage error (no usage text after it)");
	error_code(o, &msg);
	cr_assert(strstr(msg, "frobnicate"), "expected the bad verb in: %s", msg);
	json_object_put(o);
	free(out);
	free(err);
}

Test(slotctl_ops, permission_error_names_the_sockets_real_group)
{
	/* The socket is 0660 root:root here (no --socket-group): a user
	 * outside group root must be told to join root, not "slotd". */
	const char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
			       "--clear-groups", test_slotctl_bin(), "--socket", d.sock,
			       "daemon", "version", NULL };
	char *out, *err;
	int rc;

	if (access(argv[0], X_OK))
		cr_skip_test("setpriv (util-linux) is not installed");
	if (getuid() != 0)
		cr_skip_test("needs root to run slotctl as another user");
	cr_assert_eq(chmod(d.dir, 0755), 0, "chmod %s", d.dir);
	rc = test_run(argv, &out, &err);
	cr_assert_eq(rc, 1, "expected exit 1, got %d; stderr: %s", rc, err);
	cr_assert(strstr(err, "Permission denied"), "expected EACCES, got: %s", err);
	cr_assert(strstr(err, "group root"), "expected the socket's group (root) "
		  "named, got: %s", err);
	cr_assert(strstr(err, "usermod -aG root "), "expected the usermod to run, "
		  "got: %s", err);
	cr_assert_null(strstr(err, "slotd group"), "expected no made-up group: %s", err);
	free(out);
	free(err);
}

Test(slotctl_ops, discover_lists_every_method_in_a_narrow_table)
{
	char *out, *err, *save = NULL, *copy;
	json_object *doc = NULL, *methods;
	int rc = ctl(&out, &err, "daemon", "discover", NULL), lines = 0;
	const char *src = getenv("SLOTD_SRCDIR");
	char path[512];

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	copy = strdup(out);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		cr_assert_leq(strlen(l), 120, "expected lines of at most 120 "
			      "characters, got %zu: %s", strlen(l), l);
		lines++;
	}
	free(copy);
	snprintf(path, sizeof(path), "%s/schemas/openrpc.json", src && *src ? src : ".");
	doc = json_object_from_file(path);
	cr_assert(json_object_object_get_ex(doc, "methods", &methods), "no methods in %s", path);
	for (size_t i = 0; i < json_object_array_length(methods); i++) {
		json_object *name;
		char needle[128];

		json_object_object_get_ex(json_object_array_get_idx(methods, i), "name", &name);
		snprintf(needle, sizeof(needle), "\n%s ", json_object_get_string(name));
		cr_assert(strstr(out, needle), "expected a row for %s in:\n%s",
			  json_object_get_string(name), out);
	}
	cr_assert_geq(lines, (int)json_object_array_length(methods),
		      "expected a line per method, got %d lines", lines);
	json_object_put(doc);
	free(out);
	free(err);
}

Test(slotctl_ops, discover_method_describes_its_params_and_errors)
{
	char *out, *err;
	int rc = ctl(&out, &err, "daemon", "discover", "memslot.move", NULL);

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	cr_assert(strstr(out, "gpa") && strstr(out, "required"),
		  "expected the params with required/optional, got:\n%s", out);
	cr_assert(strstr(out, "-32002"), "expected its error codes, got:\n%s", out);
	free(out);
	free(err);
	rc = ctl(&out, &err, "daemon", "discover", "memslot.frob", NULL);
	cr_assert_eq(rc, 1, "expected exit 1 for an unknown method, got %d", rc);
	cr_assert(strstr(err, "memslot.frob"), "expected the name in: %s", err);
	free(out);
	free(err);
}

/* Count of occurrences of needle in the daemon's log. */
static int log_count(const char *needle)
{
	char *log = test_slurp(d.log), *p = log;
	int n = 0;

	while (p && (p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	free(log);
	return n;
}

Test(slotctl_ops, log_level_changes_at_run_time)
{
	char *out, *err;
	int rc;

	cr_assert_eq(log_count("rpc: daemon.version done"), 0,
		     "expected no debug lines at the default level info");
	rc = ctl(&out, &err, "daemon", "log-level", "debug", NULL);
	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	cr_assert(strstr(out, "level") && strstr(out, "debug") && strstr(out, "info"),
		  "expected the new level and the previous one, got:\n%s", out);
	free(out);
	free(err);
	ctl(&out, &err, "daemon", "version", NULL);
	free(out);
	free(err);
	cr_assert_eq(log_count("rpc: daemon.version done"), 1,
		     "expected one debug line per request at debug level");
	ctl(&out, &err, "daemon", "log-level", "info", NULL);
	free(out);
	free(err);
	ctl(&out, &err, "daemon", "version", NULL);
	cr_assert_eq(log_count("rpc: daemon.version done"), 1,
		     "expected no more debug lines back at info");
	free(out);
	free(err);
	rc = ctl(&out, &err, "daemon", "log-level", "loud", NULL);
	cr_assert_eq(rc, 1, "expected exit 1 for a bad level, got %d", rc);
	cr_assert(strstr(err, "level"), "expected the field named: %s", err);
	free(out);
	free(err);
}

Test(slotctl_ops, dial_stdio_bridges_stdin_and_stdout_to_the_socket)
{
	char script[1024], *out, *err;
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	json_object *o, *res;
	int rc;

	/* Two requests, then EOF: both answered, then dial-stdio exits. */
	snprintf(script, sizeof(script),
		 "printf '%%s\\n%%s\\n' '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}' "
		 "'{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"daemon.log_level\"}' | "
		 "'%s' --socket '%s' dial-stdio", test_slotctl_bin(), d.sock);
	rc = test_run(argv, &out, &err);
	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	cr_assert(strchr(out, '\n') && strchr(strchr(out, '\n') + 1, '\n'),
		  "expected two reply lines, got: %s", out);
	*strchr(out, '\n') = 0;
	o = json_of(out, "the first reply");
	cr_assert(json_object_object_get_ex(o, "result", &res) &&
		  json_object_object_get_ex(res, "version", NULL),
		  "expected daemon.version's result, got %s", out);
	json_object_put(o);
	free(out);
	free(err);
}

Test(slotctl_ops, long_lists_wrap_instead_of_widening_the_view)
{
	char *out, *err, *json, *jerr, *save = NULL;
	json_object *info, *quirks;
	int rc = ctl(&out, &err, "vm", "create", "wrap1", "--memory", "16M", NULL);

	if (rc != 0 && strstr(err, "-32001"))
		cr_skip_test("KVM is unavailable on this host (/dev/kvm)");
	cr_assert_eq(rc, 0, "vm create: exit %d; stderr: %s", rc, err);
	free(out);
	free(err);
	rc = ctl(&out, &err, "vm", "info", "wrap1", NULL);
	cr_assert_eq(rc, 0, "vm info: exit %d; stderr: %s", rc, err);
	ctl(&json, &jerr, "--json", "vm", "info", "wrap1", NULL);
	info = json_of(json, "vm info --json");
	cr_assert(json_object_object_get_ex(info, "quirks_enabled", &quirks) &&
		  json_object_array_length(quirks) > 3, "expected quirks in %s", json);
	for (size_t i = 0; i < json_object_array_length(quirks); i++) {
		const char *q = json_object_get_string(json_object_array_get_idx(quirks, i));

		cr_assert(strstr(out, q), "expected quirk %s in the view:\n%s", q, out);
	}
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		cr_assert_leq(strlen(l), 100, "expected lines of at most 100 "
			      "characters, got %zu: %s", strlen(l), l);
	json_object_put(info);
	free(out);
	free(err);
	free(json);
	free(jerr);
}
