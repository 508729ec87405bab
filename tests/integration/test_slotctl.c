/* slotctl against the real slotd: each test starts its own daemon on a
 * private socket (tests/lib/daemon.h) and runs build/slotctl. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

static struct test_daemon daemon_;

static void daemon_up(void)
{
	int ret = test_daemon_start(&daemon_, NULL);

	cr_assert_eq(ret, 0, "expected %s to start on a private socket, got "
		     "%d (%s)", test_slotd_bin(), ret, strerror(-ret));
}

static void daemon_down(void)
{
	const char *rm[] = { "/bin/rm", "-rf", daemon_.dir, NULL };

	test_daemon_stop(&daemon_);
	if (!strncmp(daemon_.dir, "/tmp/slotd-test-", 16))
		test_run(rm, NULL, NULL);
}

TestSuite(slotctl, .init = daemon_up, .fini = daemon_down, .timeout = 60);

/* Runs slotctl with the arguments (NULL-terminated) as they are. */
static int ctl_run(char **out, char **err, ...)
{
	const char *argv[32];
	int n = 0;
	va_list ap;

	argv[n++] = test_slotctl_bin();
	va_start(ap, err);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return test_run(argv, out, err);
}

#define CTL(out, err, ...) \
	ctl_run(out, err, "--socket", daemon_.sock, __VA_ARGS__, NULL)

/* The result member of a direct call to the daemon (caller puts it). */
static json_object *rpc_result(const char *method)
{
	json_object *reply = test_rpc(daemon_.sock, method, NULL), *res;

	cr_assert_not_null(reply, "expected a reply to %s", method);
	cr_assert(json_object_object_get_ex(reply, "result", &res),
		  "expected a result for %s, got %s", method,
		  json_object_to_json_string(reply));
	json_object_get(res);
	json_object_put(reply);
	return res;
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "expected member %s "
		  "in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

Test(slotctl, daemon_version_shows_name_and_version)
{
	json_object *ver = rpc_result("daemon.version");
	char *out, *err;
	int rc = CTL(&out, &err, "daemon", "version");

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	cr_assert(strstr(out, "slotd"), "expected 'slotd' in:\n%s", out);
	cr_assert(strstr(out, member_str(ver, "version")),
		  "expected version %s in:\n%s", member_str(ver, "version"),
		  out);
	cr_assert(strstr(out, "json-c"), "expected the library versions in:\n"
		  "%s", out);
	json_object_put(ver);
	free(out);
	free(err);
}

/* True when out has a line "key<spaces>value". */
static bool has_kv_line(const char *out, const char *key, const char *value)
{
	size_t k = strlen(key), v = strlen(value);

	for (const char *l = out; l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		const char *val = l + k + strspn(l + k, " ");

		if (!strncmp(l, key, k) && l[k] == ' ' &&
		    !strncmp(val, value, v) && (val[v] == '\n' || !val[v]))
			return true;
	}
	return false;
}

Test(slotctl, daemon_capabilities_table_shows_quirks_and_probed_limits)
{
	json_object *caps = rpc_result("daemon.capabilities"), *v;
	char *out, *err;
	int rc = CTL(&out, &err, "daemon", "capabilities");

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	cr_assert(strstr(out, "slot_zap_all"), "expected the quirk table with "
		  "slot_zap_all in:\n%s", out);
	cr_assert(strstr(out, "NAME") && strstr(out, "BIT"),
		  "expected a table header NAME .. BIT in:\n%s", out);
	if (access("/dev/kvm", R_OK | W_OK) == 0) {
		cr_assert(json_object_object_get_ex(caps, "max_memslots", &v),
			  "expected max_memslots in the RPC result");
		cr_assert(has_kv_line(out, "max_memslots",
				      json_object_get_string(v)),
			  "expected a line 'max_memslots  %s' in:\n%s",
			  json_object_get_string(v), out);
	}
	json_object_put(caps);
	free(out);
	free(err);
}

/* Asserts slotctl --json NOUN VERB prints exactly method's result. */
static void assert_json_equals_rpc(const char *noun, const char *verb,
				   const char *method)
{
	json_object *direct = rpc_result(method), *printed;
	char *out, *err;
	int rc = CTL(&out, &err, "--json", noun, verb);

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	printed = json_tokener_parse(out);
	cr_assert_not_null(printed, "expected --json output to parse as JSON:"
			   "\n%s", out);
	cr_assert(json_object_equal(printed, direct), "expected --json output "
		  "%s to equal the RPC result %s",
		  json_object_to_json_string(printed),
		  json_object_to_json_string(direct));
	json_object_put(printed);
	json_object_put(direct);
	free(out);
	free(err);
}

Test(slotctl, json_output_equals_the_rpc_result)
{
	assert_json_equals_rpc("daemon", "version", "daemon.version");
	assert_json_equals_rpc("daemon", "capabilities", "daemon.capabilities");
}

Test(slotctl, call_with_bad_json_params_fails_before_connecting)
{
	char *out, *err;
	/* A socket that does not exist: the JSON must be refused first. */
	int rc = ctl_run(&out, &err, "--socket", "/nonexistent/slotd.sock",
			 "call", "events.subscribe", "{\"topics\":", NULL);

	cr_assert_eq(rc, 2, "expected exit 2 (usage), got %d", rc);
	cr_assert(strstr(err, "not valid JSON"), "expected 'not valid JSON' "
		  "in stderr, got: %s", err);
	cr_assert_null(strstr(err, "connect"), "expected no connection "
		       "attempt, got: %s", err);
	free(out);
	free(err);
}

Test(slotctl, call_passes_params_and_prints_the_result)
{
	char *out, *err;
	int rc = CTL(&out, &err, "--json", "call", "events.subscribe",
		     "{\"topics\":[\"memslot.deleted\"]}");
	json_object *res, *topics;

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	res = json_tokener_parse(out);
	cr_assert(json_object_object_get_ex(res, "topics", &topics) &&
		  json_object_array_length(topics) == 1 &&
		  !strcmp(json_object_get_string(
			json_object_array_get_idx(topics, 0)),
			"memslot.deleted"),
		  "expected topics [\"memslot.deleted\"], got %s", out);
	json_object_put(res);
	free(out);
	free(err);
}

Test(slotctl, call_unknown_method_prints_32601_and_exits_1)
{
	char *out, *err;
	int rc = CTL(&out, &err, "call", "no.such.method");

	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(strstr(err, "slotctl: error -32601:"), "expected 'slotctl: "
		  "error -32601:' in stderr, got: %s", err);
	cr_assert_str_empty(out, "expected nothing on stdout, got: %s", out);
	free(out);
	free(err);
}

Test(slotctl, invalid_params_error_names_the_field)
{
	char *out, *err;
	int rc = CTL(&out, &err, "events", "watch", "no.such.topic");

	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(strstr(err, "error -32602:"), "expected error -32602 in "
		  "stderr, got: %s", err);
	cr_assert(strstr(err, "(field: topics[0])"), "expected the field "
		  "topics[0] named in stderr, got: %s", err);
	free(out);
	free(err);
}

Test(slotctl, missing_socket_names_the_path_and_exits_1)
{
	char *out, *err;
	int rc = ctl_run(&out, &err, "--socket", "/nonexistent/slotd.sock",
			 "daemon", "version", NULL);

	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(strstr(err, "/nonexistent/slotd.sock"), "expected the socket "
		  "path in stderr, got: %s", err);
	cr_assert(strstr(err, "is slotd running"), "expected a hint that the "
		  "daemon may not be running, got: %s", err);
	free(out);
	free(err);
}

Test(slotctl, help_exits_0_at_every_level)
{
	static const char *const cmds[][3] = {
		{ "--help" }, { "daemon", "--help" }, { "vm", "--help" },
		{ "memslot", "--help" }, { "events", "--help" },
		{ "call", "--help" }, { "memslot", "create", "--help" },
		{ "vm", "quirk", "--help" }, { "events", "watch", "--help" },
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *out, *err;
		int rc = ctl_run(&out, &err, cmds[i][0], cmds[i][1],
				 cmds[i][2], NULL);

		cr_assert_eq(rc, 0, "slotctl %s %s %s: expected exit 0, got %d",
			     cmds[i][0], cmds[i][1] ? cmds[i][1] : "",
			     cmds[i][2] ? cmds[i][2] : "", rc);
		cr_assert(strstr(out, "usage"), "slotctl %s %s: expected usage "
			  "on stdout, got: %s", cmds[i][0],
			  cmds[i][1] ? cmds[i][1] : "", out);
		free(out);
		free(err);
	}
}

Test(slotctl, unknown_noun_or_verb_exits_2_with_usage)
{
	char *out, *err;
	int rc = CTL(&out, &err, "vm", "frobnicate");

	cr_assert_eq(rc, 2, "expected exit 2 for an unknown verb, got %d", rc);
	cr_assert(strstr(err, "unknown verb") && strstr(err, "usage"),
		  "expected 'unknown verb' and usage on stderr, got: %s", err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "frobnicate", "now");
	cr_assert_eq(rc, 2, "expected exit 2 for an unknown noun, got %d", rc);
	cr_assert(strstr(err, "unknown noun") && strstr(err, "usage"),
		  "expected 'unknown noun' and usage on stderr, got: %s", err);
	free(out);
	free(err);
}

Test(slotctl, bad_numbers_are_refused_before_sending)
{
	char *out, *err;
	int rc = ctl_run(&out, &err, "--socket", "/nonexistent/slotd.sock",
			 "memslot", "create", "vm0", "--gpa", "12Q", "--size",
			 "4K", NULL);

	cr_assert_eq(rc, 2, "expected exit 2, got %d", rc);
	cr_assert(strstr(err, "gpa: '12Q' is not a number"), "expected the bad "
		  "gpa named in stderr, got: %s", err);
	free(out);
	free(err);
}

Test(slotctl, slotd_socket_env_is_honoured_and_socket_flag_wins)
{
	char *out, *err;
	int rc;

	setenv("SLOTD_SOCKET", daemon_.sock, 1);
	rc = ctl_run(&out, &err, "daemon", "version", NULL);
	cr_assert_eq(rc, 0, "expected exit 0 with SLOTD_SOCKET=%s, got %d: %s",
		     daemon_.sock, rc, err);
	free(out);
	free(err);
	setenv("SLOTD_SOCKET", "/nonexistent/env.sock", 1);
	rc = ctl_run(&out, &err, "daemon", "version", NULL);
	cr_assert_eq(rc, 1, "expected exit 1 with a bad SLOTD_SOCKET, got %d",
		     rc);
	cr_assert(strstr(err, "/nonexistent/env.sock"), "expected the env "
		  "socket path in stderr, got: %s", err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "daemon", "version");
	cr_assert_eq(rc, 0, "expected --socket to override SLOTD_SOCKET, got "
		     "exit %d: %s", rc, err);
	unsetenv("SLOTD_SOCKET");
	free(out);
	free(err);
}

Test(slotctl, events_watch_subscribes_and_stops_at_timeout)
{
	char *out, *err;
	int rc = CTL(&out, &err, "--timeout", "0.3", "events", "watch");

	cr_assert_eq(rc, 0, "expected exit 0 when --timeout ends the watch, "
		     "got %d: %s", rc, err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "--timeout", "0.3", "events", "watch",
		 "--count", "1");
	cr_assert_eq(rc, 1, "expected exit 1 when --count is not reached, "
		     "got %d", rc);
	cr_assert(strstr(err, "timed out after 0 event"), "expected a timeout "
		  "message, got: %s", err);
	free(out);
	free(err);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A server that accepts connections (in the backlog) but never answers. */
Test(slotctl, timeout_bounds_the_wait_for_a_silent_server)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char *out, *err;
	long long t0;
	int rc;

	cr_assert_lt(strlen(daemon_.dir) + 13, sizeof(sa.sun_path));
	memcpy(sa.sun_path, daemon_.dir, strlen(daemon_.dir));
	strcat(sa.sun_path, "/silent.sock");
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind");
	cr_assert_eq(listen(fd, 4), 0, "listen");
	t0 = now_ms();
	rc = ctl_run(&out, &err, "--socket", sa.sun_path, "--timeout", "0.5",
		     "daemon", "version", NULL);
	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(now_ms() - t0 < 5000, "expected to give up after ~0.5 s, "
		  "took %lld ms", now_ms() - t0);
	cr_assert(strstr(err, "no reply") && strstr(err, sa.sun_path),
		  "expected 'no reply' and the socket path, got: %s", err);
	close(fd);
	free(out);
	free(err);
}

/* Runs clients/slotd_client.py on the test daemon's socket. */
static int py_run(const char *method, char **out, char **err)
{
	const char *src = getenv("SLOTD_SRCDIR");
	char script[512];
	const char *argv[] = { "/usr/bin/env", "python3", script, "--socket",
			       daemon_.sock, method, NULL };

	snprintf(script, sizeof(script), "%s/clients/slotd_client.py",
		 src && *src ? src : ".");
	return test_run(argv, out, err);
}

Test(slotctl, python_client_returns_the_result_or_the_error)
{
	json_object *direct = rpc_result("daemon.version"), *printed;
	char *out, *err;
	int rc = py_run("daemon.version", &out, &err);

	cr_assert_eq(rc, 0, "expected exit 0, got %d: %s", rc, err);
	printed = json_tokener_parse(out);
	cr_assert(json_object_equal(printed, direct), "expected %s, got %s",
		  json_object_to_json_string(direct), out);
	json_object_put(printed);
	json_object_put(direct);
	free(out);
	free(err);
	rc = py_run("no.such.method", &out, &err);
	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(strstr(err, "error -32601"), "expected error -32601, got: %s",
		  err);
	free(out);
	free(err);
}

/* Skips the test unless the daemon reports a usable KVM. */
static void require_kvm(void)
{
	json_object *caps = rpc_result("daemon.capabilities"), *v;
	bool ok = json_object_object_get_ex(caps, "kvm_available", &v) &&
		  json_object_get_boolean(v);

	json_object_put(caps);
	if (!ok)
		cr_skip_test("KVM is not available to slotd on this host");
}

Test(slotctl, vm_create_list_info_destroy_round_trip)
{
	json_object *info, *v;
	char *out, *err;
	int rc;

	require_kvm();
	rc = CTL(&out, &err, "vm", "create", "cli0", "--memory", "16M");
	cr_assert_eq(rc, 0, "vm create: expected exit 0, got %d: %s", rc, err);
	cr_assert(has_kv_line(out, "name", "cli0"), "expected 'name  cli0' "
		  "in:\n%s", out);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "list");
	cr_assert_eq(rc, 0, "vm list: expected exit 0, got %d: %s", rc, err);
	cr_assert(!strncmp(out, "NAME", 4) && strstr(out, "\ncli0 "),
		  "expected a table with a header and a cli0 row, got:\n%s",
		  out);
	free(out);
	free(err);
	rc = CTL(&out, &err, "--json", "vm", "info", "cli0");
	cr_assert_eq(rc, 0, "vm info: expected exit 0, got %d: %s", rc, err);
	info = json_tokener_parse(out);
	/* 16M on the command line is 16 MiB at the daemon. */
	cr_assert(json_object_object_get_ex(info, "memory", &v) &&
		  json_object_get_int64(v) == 16 << 20,
		  "expected memory 16777216, got %s", out);
	json_object_put(info);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "destroy", "cli0");
	cr_assert_eq(rc, 0, "vm destroy: expected exit 0, got %d: %s", rc, err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "info", "cli0");
	cr_assert_eq(rc, 1, "vm info after destroy: expected exit 1, got %d",
		     rc);
	cr_assert(strstr(err, "slotctl: error -32002:"), "expected NotFound "
		  "(-32002), got: %s", err);
	free(out);
	free(err);
}

/* Starts slotctl with args in the background, stdout to path. */
static pid_t ctl_spawn(const char *path, const char *const *args)
{
	const char *argv[16] = { test_slotctl_bin(), "--socket", daemon_.sock };
	int n = 3;
	pid_t pid;

	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Waits up to ms for pid; returns its exit status or -1. */
static int wait_exit(pid_t pid, long ms)
{
	long long deadline = now_ms() + ms;
	int st;

	while (now_ms() < deadline) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

Test(slotctl, events_watch_prints_vm_state_changes)
{
	static const char *const watch[] = { "events", "watch",
		"vm.state_changed", "--count", "1", "--timeout", "20", NULL };
	char path[300], name[16], *out, *err, *text;
	pid_t pid;
	int rc = -1, st;

	require_kvm();
	snprintf(path, sizeof(path), "%s/events.out", daemon_.dir);
	pid = ctl_spawn(path, watch);
	cr_assert_gt(pid, 0, "fork failed");
	/* Keep changing states until the watcher, once subscribed, sees one. */
	for (int i = 0; i < 50; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
			pid = 0;
			break;
		}
		snprintf(name, sizeof(name), "ev%d", i);
		CTL(&out, &err, "vm", "create", name, "--memory", "4M");
		free(out);
		free(err);
		CTL(&out, &err, "vm", "start", name);
		free(out);
		free(err);
		usleep(200000);
	}
	if (pid)
		rc = wait_exit(pid, 20000);
	text = test_slurp(path);
	cr_assert_eq(rc, 0, "expected the watcher to exit 0, got %d", rc);
	cr_assert(text && strstr(text, "vm.state_changed seq=") && strstr(text, " vm=ev"),
		  "expected a 'vm.state_changed seq=N vm=ev..' line, got: %s", text);
	free(text);
}

Test(slotctl, vm_memory_write_then_read_round_trips_bytes)
{
	char *out, *err;
	int rc;

	require_kvm();
	rc = CTL(&out, &err, "vm", "create", "mem0", "--memory", "4M");
	cr_assert_eq(rc, 0, "vm create: expected exit 0, got %d: %s", rc, err);
	free(out);
	free(err);
	/* Lengths 5 and 2 exercise both base64 padding cases. */
	rc = CTL(&out, &err, "vm", "memory-write", "mem0", "0x2000", "hello");
	cr_assert_eq(rc, 0, "memory-write: expected exit 0, got %d: %s", rc,
		     err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "memory-write", "mem0", "0x2005", "--hex",
		 "de ad");
	cr_assert_eq(rc, 0, "memory-write --hex: expected exit 0, got %d: %s",
		     rc, err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "memory-read", "mem0", "8K", "7");
	cr_assert_eq(rc, 0, "memory-read: expected exit 0, got %d: %s", rc,
		     err);
	cr_assert(strstr(out, "000000002000: 68 65 6c 6c 6f de ad"), "expected "
		  "the hexdump of 'hello' de ad at 0x2000, got:\n%s", out);
	free(out);
	free(err);
}

/* Subscribes with the Python client, starts a VM on a second connection
 * and prints the first event the iterator yields. */
static const char py_events_script[] =
	"import sys\n"
	"sys.path.insert(0, sys.argv[1] + '/clients')\n"
	"from slotd_client import SlotdClient\n"
	"w = SlotdClient(sys.argv[2], timeout=10)\n"
	"events = w.events(['vm.state_changed'], timeout=10)\n"
	"c = SlotdClient(sys.argv[2], timeout=10)\n"
	"def kick():\n"
	"    c.call('vm.create', name='py0', memory='4M')\n"
	"    c.call('vm.start', name='py0')\n"
	"kick()\n"
	"ev = next(events)\n"
	"print(ev['method'], ev['params']['vm'], ev['params']['new_state'])\n";

Test(slotctl, python_client_events_iterator_yields_notifications)
{
	const char *src = getenv("SLOTD_SRCDIR");
	const char *argv[] = { "/usr/bin/env", "python3", "-c",
		py_events_script, src && *src ? src : ".", daemon_.sock, NULL };
	char *out, *err;
	int rc;

	require_kvm();
	rc = test_run(argv, &out, &err);
	cr_assert_eq(rc, 0, "expected exit 0, got %d: %s", rc, err);
	cr_assert(!strncmp(out, "vm.state_changed py0 ", 21), "expected "
		  "'vm.state_changed py0 <state>', got: %s", out);
	free(out);
	free(err);
}

/* Runs slotctl --json with args and returns the parsed stdout (asserting
 * exit 0). */
static json_object *ctl_json(const char *what, const char *const *args)
{
	const char *argv[24] = { test_slotctl_bin(), "--socket", daemon_.sock,
				 "--json" };
	char *out, *err;
	json_object *o;
	int n = 4, rc;

	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = test_run(argv, &out, &err);
	cr_assert_eq(rc, 0, "%s: expected exit 0, got %d: %s", what, rc, err);
	o = json_tokener_parse(out);
	cr_assert_not_null(o, "%s: expected JSON on stdout, got: %s", what,
			   out);
	free(out);
	free(err);
	return o;
}

static int64_t member_int(json_object *o, const char *key)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "expected member %s "
		  "in %s", key, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

Test(slotctl, memslot_create_dirty_log_move_delete_round_trip)
{
	static const char *const create[] = { "memslot", "create", "ms0",
		"--gpa", "8M", "--size", "64K", "--flags", "dirty_log", NULL };
	json_object *slot;
	char id[16], *out, *err;
	int rc;

	require_kvm();
	rc = CTL(&out, &err, "vm", "create", "ms0", "--memory", "4M");
	cr_assert_eq(rc, 0, "vm create: expected exit 0, got %d: %s", rc, err);
	free(out);
	free(err);
	slot = ctl_json("memslot create", create);
	cr_assert_str_eq(member_str(slot, "gpa"), "0x800000",
			 "expected gpa 0x800000 (8M)");
	cr_assert_eq(member_int(slot, "size"), 64 << 10, "expected size 64K");
	snprintf(id, sizeof(id), "%lld", (long long)member_int(slot, "slot"));
	json_object_put(slot);

	rc = CTL(&out, &err, "memslot", "list", "ms0");
	cr_assert(rc == 0 && strstr(out, "0x800000") &&
		  strstr(out, "dirty_log"),
		  "expected the new slot in the table (exit %d):\n%s", rc, out);
	free(out);
	free(err);

	/* Pages 5 and 6 of the slot written through the engine. */
	rc = CTL(&out, &err, "vm", "memory-write", "ms0", "0x805ffe", "abcd");
	cr_assert_eq(rc, 0, "memory-write: expected exit 0, got %d: %s", rc,
		     err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "memslot", "dirty-log", "ms0", id);
	cr_assert_eq(rc, 0, "dirty-log: expected exit 0, got %d: %s", rc, err);
	cr_assert(has_kv_line(out, "dirty_pages", "5-6"), "expected "
		  "'dirty_pages  5-6', got:\n%s", out);
	free(out);
	free(err);

	rc = CTL(&out, &err, "memslot", "move", "ms0", id, "16M");
	cr_assert_eq(rc, 0, "move: expected exit 0, got %d: %s", rc, err);
	cr_assert(has_kv_line(out, "gpa", "0x1000000") &&
		  has_kv_line(out, "old_gpa", "0x800000"),
		  "expected gpa 0x1000000 and old_gpa 0x800000, got:\n%s", out);
	free(out);
	free(err);

	rc = CTL(&out, &err, "memslot", "create", "ms0", "--gpa", "0",
		 "--size", "4K");
	cr_assert_eq(rc, 1, "overlap: expected exit 1, got %d", rc);
	cr_assert(strstr(err, "error -32003:"), "expected -32003 for a slot "
		  "over boot RAM, got: %s", err);
	free(out);
	free(err);

	rc = CTL(&out, &err, "memslot", "delete", "ms0", id);
	cr_assert_eq(rc, 0, "delete: expected exit 0, got %d: %s", rc, err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "memslot", "list", "ms0");
	cr_assert(rc == 0 && !strstr(out, "0x1000000"), "expected the slot "
		  "gone from the list (exit %d):\n%s", rc, out);
	free(out);
	free(err);
}

Test(slotctl, memslot_transaction_applies_ops_and_checks_json_first)
{
	char *out, *err;
	int rc;

	require_kvm();
	rc = CTL(&out, &err, "vm", "create", "tx0", "--memory", "4M");
	cr_assert_eq(rc, 0, "vm create: expected exit 0, got %d: %s", rc, err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "memslot", "transaction", "tx0",
		 "[{\"op\":\"create\",\"gpa\":\"32M\",\"size\":\"4K\"},"
		 "{\"op\":\"create\",\"gpa\":\"64M\",\"size\":\"8K\"}]");
	cr_assert_eq(rc, 0, "transaction: expected exit 0, got %d: %s", rc,
		     err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "memslot", "list", "tx0");
	cr_assert(strstr(out, "0x2000000") && strstr(out, "0x4000000"),
		  "expected both new slots in the list:\n%s", out);
	free(out);
	free(err);
	rc = CTL(&out, &err, "memslot", "transaction", "tx0", "{\"op\":1}");
	cr_assert_eq(rc, 2, "expected exit 2 for ops that are not an array, "
		     "got %d", rc);
	free(out);
	free(err);
}

/* Columns SUPPORTED and ENABLED of quirk name in a vm quirks table. */
static void quirk_row(const char *out, const char *name, char *sup, char *en)
{
	const char *l = strstr(out, name);
	unsigned bit;

	cr_assert_not_null(l, "expected a %s row in:\n%s", name, out);
	cr_assert_eq(sscanf(l + strlen(name), " %u %7s %7s", &bit, sup, en), 3,
		     "expected NAME BIT SUPPORTED ENABLED columns in:\n%s",
		     out);
}

Test(slotctl, vm_quirk_off_shows_in_table_and_protected_refuses_on)
{
	char sup[8], en[8], *out, *err;
	int rc;

	require_kvm();
	rc = CTL(&out, &err, "vm", "create", "q0");
	cr_assert_eq(rc, 0, "vm create: expected exit 0, got %d: %s", rc, err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "quirk", "q0", "slot_zap_all", "off");
	cr_assert_eq(rc, 0, "vm quirk off: expected exit 0, got %d: %s", rc,
		     err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "quirks", "q0");
	cr_assert_eq(rc, 0, "vm quirks: expected exit 0, got %d: %s", rc, err);
	quirk_row(out, "slot_zap_all", sup, en);
	cr_assert_str_eq(en, "false", "expected slot_zap_all ENABLED false, "
			 "got %s in:\n%s", en, out);
	free(out);
	free(err);

	rc = CTL(&out, &err, "vm", "create", "p0", "--type", "protected");
	cr_assert_eq(rc, 0, "vm create protected: expected exit 0, got %d: %s",
		     rc, err);
	free(out);
	free(err);
	rc = CTL(&out, &err, "vm", "quirk", "p0", "slot_zap_all", "on");
	cr_assert_eq(rc, 1, "expected exit 1 enabling slot_zap_all on a "
		     "protected VM, got %d", rc);
	cr_assert(strstr(err, "error -32007:"), "expected NotPermitted "
		  "(-32007), got: %s", err);
	free(out);
	free(err);
}

/* Methods a CLI has no verb for: per-connection state, reachable through
 * "slotctl call" all the same. */
static const char *const call_only[] = { "events.unsubscribe", NULL };

static bool is_call_only(const char *method)
{
	for (int i = 0; call_only[i]; i++)
		if (!strcmp(call_only[i], method))
			return true;
	return false;
}

Test(slotctl, every_schema_method_has_a_verb)
{
	static const char *const nouns[] = { "daemon", "vm", "memslot",
					     "events", NULL };
	const char *src = getenv("SLOTD_SRCDIR");
	char path[512], *help = NULL, *out, *err;
	size_t help_len = 0;
	FILE *all = open_memstream(&help, &help_len);
	json_object *doc, *methods;

	for (int i = 0; nouns[i]; i++) {
		int rc = ctl_run(&out, &err, nouns[i], "--help", NULL);

		cr_assert_eq(rc, 0, "slotctl %s --help: exit %d", nouns[i], rc);
		fputs(out, all);
		free(out);
		free(err);
	}
	fclose(all);
	snprintf(path, sizeof(path), "%s/schemas/openrpc.json",
		 src && *src ? src : ".");
	doc = json_object_from_file(path);
	cr_assert(json_object_object_get_ex(doc, "methods", &methods),
		  "expected a methods array in %s", path);
	for (size_t i = 0; i < json_object_array_length(methods); i++) {
		json_object *entry = json_object_array_get_idx(methods, i);
		const char *m = member_str(entry, "name");
		char needle[128];

		snprintf(needle, sizeof(needle), " %s ", m);
		cr_assert(is_call_only(m) || strstr(help, needle), "schema "
			  "method %s has no slotctl verb: add one (clients/"
			  "cmd_*.c) or list it in call_only[]", m);
	}
	json_object_put(doc);
	free(help);
}
