/* The real build/slotd on a private socket: it serves, survives garbage,
 * enforces its limits, keeps clients independent, owns its socket
 * properly and shuts down gracefully. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

static struct test_daemon d;

static void start_with(const char *const *extra)
{
	int r = test_daemon_start(&d, extra);

	cr_assert_eq(r, 0, "slotd did not start (%s); log:\n%s", strerror(-r),
		     test_slurp(d.log));
}

static void start(void)
{
	start_with(NULL);
}

static void stop(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
}

/* The daemon still answers daemon.version on a fresh connection. */
static void assert_serves(void)
{
	json_object *r = test_rpc(d.sock, "daemon.version", NULL), *res, *v;

	cr_assert_not_null(r, "no reply to daemon.version; log:\n%s", test_slurp(d.log));
	cr_assert(json_object_object_get_ex(r, "result", &res) &&
		  json_object_object_get_ex(res, "name", &v), "bad reply %s",
		  json_object_to_json_string(r));
	cr_assert_str_eq(json_object_get_string(v), "slotd");
	json_object_put(r);
}

Test(daemon, serves_version_and_capabilities, .init = start, .fini = stop)
{
	json_object *r = test_rpc(d.sock, "daemon.capabilities", NULL), *res, *v;
	struct stat st;

	assert_serves();
	cr_assert(json_object_object_get_ex(r, "result", &res));
	cr_assert(json_object_object_get_ex(res, "kvm_available", &v));
	if (access("/dev/kvm", R_OK | W_OK) == 0) {
		cr_assert(json_object_get_boolean(v), "KVM is here but reported unavailable");
		cr_assert(json_object_object_get_ex(res, "max_memslots", &v));
		cr_assert_gt(json_object_get_int(v), 0);
	}
	cr_assert_eq(stat(d.sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660, "socket mode %o, expected 0660", st.st_mode & 0777);
	json_object_put(r);
}

Test(daemon, without_kvm_it_serves_and_says_why, .fini = stop)
{
	const char *extra[] = { "--kvm-device", "/nonexistent/kvm", NULL };
	json_object *r, *res, *v;

	start_with(extra);
	r = test_rpc(d.sock, "daemon.capabilities", NULL);
	cr_assert(json_object_object_get_ex(r, "result", &res));
	cr_assert(json_object_object_get_ex(res, "kvm_available", &v));
	cr_assert(!json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(res, "kvm_error", &v));
	cr_assert(strstr(json_object_get_string(v), "/nonexistent/kvm"), "kvm_error: %s",
		  json_object_get_string(v));
	json_object_put(r);
}

Test(daemon, garbage_gets_errors_and_the_daemon_keeps_serving, .init = start, .fini = stop)
{
	int fd = test_connect(d.sock);
	char junk[4096], *rep;

	cr_assert_geq(fd, 0);
	rep = test_rpc_raw(fd, "{\"jsonrpc\": \"2.0\", \"method\": \"foo");
	cr_assert_not_null(rep);
	cr_assert_eq(t_reply_code(rep), -32700, "unterminated JSON: %s", rep);
	free(rep);
	/* Random bytes with no newline, then the connection is closed. */
	srand(42);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(rand() % 255 + 1) == '\n' ? 'x' : (char)(rand() % 255 + 1);
	cr_assert_eq(test_send(fd, junk, sizeof(junk)), 0);
	close(fd);
	assert_serves();
	/* Random bytes ending with newline get a parse error each line. */
	fd = test_connect(d.sock);
	for (size_t i = 0; i < sizeof(junk); i++)
		if (junk[i] == '\n')
			junk[i] = 'y';
	junk[sizeof(junk) - 1] = '\n';
	cr_assert_eq(test_send(fd, junk, sizeof(junk)), 0);
	rep = test_recv_line(fd, 5000);
	cr_assert_not_null(rep);
	cr_assert_eq(t_reply_code(rep), -32700, "random line: %s", rep);
	free(rep);
	close(fd);
	assert_serves();
}

Test(daemon, nested_brackets_are_a_parse_error, .init = start, .fini = stop)
{
	size_t n = 100000;
	char *deep = malloc(2 * n + 2), *rep;
	int fd = test_connect(d.sock);

	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\n';
	cr_assert_eq(test_send(fd, deep, 2 * n + 1), 0);
	rep = test_recv_line(fd, 5000);
	cr_assert_not_null(rep);
	cr_assert_eq(t_reply_code(rep), -32700, "100k nested brackets: %s", rep);
	free(rep);
	free(deep);
	/* The same connection still works. */
	rep = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"daemon.version\"}");
	cr_assert(rep && strstr(rep, "\"result\""), "after nesting: %s", rep);
	free(rep);
	close(fd);
}

Test(daemon, ten_megabyte_line_is_refused_and_the_connection_goes_on, .init = start, .fini = stop)
{
	size_t n = 10 << 20;
	char *big = malloc(n + 1), *rep;
	int fd = test_connect(d.sock);

	memset(big, 'a', n);
	big[0] = '"';
	big[n] = '\n';
	cr_assert_eq(test_send(fd, big, n + 1), 0);
	rep = test_recv_line(fd, 10000);
	cr_assert_not_null(rep, "no reply to a 10 MB line");
	cr_assert_eq(t_reply_code(rep), -32600, "10 MB line: %s", rep);
	cr_assert(strstr(rep, "1048576"), "the error should name the limit: %s", rep);
	free(rep);
	free(big);
	rep = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"daemon.version\"}");
	cr_assert(rep && strstr(rep, "\"result\""), "after the big line: %s", rep);
	free(rep);
	close(fd);
}

Test(daemon, max_message_is_configurable, .fini = stop)
{
	const char *extra[] = { "--max-message", "100", NULL };
	char line[200], *rep;
	int fd;

	start_with(extra);
	fd = test_connect(d.sock);
	snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\","
		 "\"params\":{\"pad\":\"%0100d\"}}", 0);
	rep = test_rpc_raw(fd, line);
	cr_assert(rep && t_reply_code(rep) == -32600 && strstr(rep, "100 bytes"), "got %s", rep);
	free(rep);
	rep = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"daemon.version\"}");
	cr_assert(rep && strstr(rep, "\"result\""), "short line after: %s", rep);
	free(rep);
	close(fd);
}

Test(daemon, connection_limit_refuses_with_an_error, .fini = stop)
{
	const char *extra[] = { "--max-connections", "4", NULL };
	int fds[4], extra_fd;
	char *rep;

	start_with(extra);
	for (int i = 0; i < 4; i++) {
		fds[i] = test_connect(d.sock);
		cr_assert_geq(fds[i], 0);
		rep = test_rpc_raw(fds[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");
		cr_assert_not_null(rep);
		free(rep);
	}
	extra_fd = test_connect(d.sock);
	rep = test_recv_line(extra_fd, 5000);
	cr_assert(rep && t_reply_code(rep) == -32009, "fifth connection: %s", rep);
	free(rep);
	close(extra_fd);
	close(fds[0]);
	usleep(100 * 1000);
	fds[0] = test_connect(d.sock);
	rep = test_rpc_raw(fds[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");
	cr_assert(rep && strstr(rep, "\"result\""), "after a slot freed: %s", rep);
	free(rep);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
}

Test(daemon, a_client_that_never_reads_does_not_block_others, .init = start, .fini = stop)
{
	int slow = test_connect(d.sock), rcv = 4096;
	char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.discover\"}\n";

	setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	fcntl(slow, F_SETFL, O_NONBLOCK);
	/* Pipeline requests whose replies it never reads. */
	for (int i = 0; i < 2000; i++)
		if (write(slow, req, sizeof(req) - 1) < 0)
			break;
	for (int i = 0; i < 20; i++)
		assert_serves();
	close(slow);
}

struct hammer {
	const char *sock;
	int ok;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	int fd = test_connect(h->sock);

	for (int i = 0; fd >= 0 && i < 200; i++) {
		char *rep = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");

		h->ok += rep && strstr(rep, "\"result\"");
		free(rep);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

Test(daemon, many_concurrent_clients_all_get_answers, .init = start, .fini = stop)
{
	pthread_t t[32];
	struct hammer h[32];

	for (int i = 0; i < 32; i++) {
		h[i] = (struct hammer){ .sock = d.sock };
		pthread_create(&t[i], NULL, hammer_run, &h[i]);
	}
	for (int i = 0; i < 32; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(h[i].ok, 200, "client %d: %d of 200 answered", i, h[i].ok);
	}
}

Test(daemon, second_daemon_on_the_same_socket_refuses_to_start, .init = start, .fini = stop)
{
	char dir[300], log[400], *out = NULL, *err = NULL;
	const char *argv[] = { test_slotd_bin(), "--foreground", "--socket", d.sock,
			       "--state-dir", dir, NULL };
	int st;

	snprintf(dir, sizeof(dir), "%s/state2", d.dir);
	st = test_run(argv, &out, &err);
	cr_assert_eq(st, 1, "second slotd exited %d, expected 1", st);
	cr_assert(err && strstr(err, "already serving"), "stderr: %s", err);
	snprintf(log, sizeof(log), "%s", d.sock);
	assert_serves();
	free(out);
	free(err);
}

Test(daemon, second_daemon_on_the_same_state_dir_refuses_to_start, .init = start, .fini = stop)
{
	char sock[300], *err = NULL;
	const char *argv[] = { test_slotd_bin(), "--foreground", "--socket", sock,
			       "--state-dir", d.state, NULL };
	int st;

	snprintf(sock, sizeof(sock), "%s/other.sock", d.dir);
	st = test_run(argv, NULL, &err);
	cr_assert_eq(st, 1, "exit %d", st);
	cr_assert(err && strstr(err, "in use by another slotd"), "stderr: %s", err);
	free(err);
}

Test(daemon, stale_socket_is_removed_and_replaced, .fini = stop)
{
	char dir[] = "/tmp/slotd-stale-XXXXXX", sock[300], *log;
	int fd;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/slotd.sock", dir);
	/* A socket file nobody listens on: a crashed daemon's leftover. */
	cr_assert_lt(strlen(sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cr_assert_eq(test_daemon_start_in(&d, dir, NULL), 0, "log: %s", test_slurp(d.log));
	d.own_dir = true;	/* removed on a clean stop */
	assert_serves();
	log = test_slurp(d.log);
	cr_assert(log && strstr(log, "stale"), "the log should say it removed a stale socket: %s", log);
	free(log);
}

Test(daemon, sigterm_finishes_and_removes_its_socket, .init = start, .fini = stop)
{
	int fd = test_connect(d.sock), st;
	char *log;

	d.own_dir = false;	/* the log is read after the stop */
	/* A request in flight when SIGTERM lands still gets its reply. */
	cr_assert_eq(test_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"rpc.discover\"}\n", 49), 0);
	kill(d.pid, SIGTERM);
	char *rep = test_recv_line(fd, 5000);

	cr_assert(rep && strstr(rep, "\"openrpc\""), "reply in flight lost: %.80s", rep);
	free(rep);
	close(fd);
	st = test_daemon_stop(&d);
	cr_assert_eq(st, 0, "exit status %d", st);
	cr_assert_neq(access(d.sock, F_OK), 0, "socket file left behind");
	log = test_slurp(d.log);
	cr_assert(log && strstr(log, "shutting down"), "log: %s", log);
	free(log);
	test_rmtree(d.dir);	/* kept by the stop for the log above */
}

Test(daemon, bad_flags_and_config_are_refused_with_a_reason)
{
	char cfgpath[] = "/tmp/slotd-cfg-XXXXXX", *err = NULL;
	int fd = mkstemp(cfgpath), st;
	const char *bad_level[] = { test_slotd_bin(), "--log-level", "loud", NULL };
	const char *bad_cfg[] = { test_slotd_bin(), "--config", cfgpath, NULL };
	const char *help[] = { test_slotd_bin(), "--help", NULL };

	st = test_run(bad_level, NULL, &err);
	cr_assert_eq(st, 2);
	cr_assert(err && strstr(err, "loud"), "stderr: %s", err);
	free(err);
	cr_assert(write(fd, "# comment\nsocket = /tmp/x.sock\nbogus-key = 1\n", 45) == 45);
	close(fd);
	st = test_run(bad_cfg, NULL, &err);
	cr_assert_eq(st, 2);
	cr_assert(err && strstr(err, ":3: unknown key 'bogus-key'"), "stderr: %s", err);
	free(err);
	unlink(cfgpath);
	cr_assert_eq(test_run(help, NULL, NULL), 0);
}

Test(daemon, config_file_sets_options_and_flags_override_it, .fini = stop)
{
	char dir[] = "/tmp/slotd-cfgd-XXXXXX", cfgpath[300], line[400];
	const char *extra[] = { "--config", cfgpath, NULL };
	FILE *f;
	char *rep;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(cfgpath, sizeof(cfgpath), "%s/slotd.conf", dir);
	f = fopen(cfgpath, "w");
	fprintf(f, "max-message = 64\nlog-level = debug\n");
	fclose(f);
	cr_assert_eq(test_daemon_start_in(&d, dir, extra), 0);
	d.own_dir = true;	/* removed on a clean stop */
	fd = test_connect(d.sock);
	snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\",\"params\":{}}  %080d", 0);
	rep = test_rpc_raw(fd, line);
	cr_assert(rep && strstr(rep, "64 bytes"), "max-message from the file not applied: %s", rep);
	free(rep);
	close(fd);
}

Test(daemon, sighup_reopens_the_log_file, .fini = stop)
{
	char dir[] = "/tmp/slotd-hup-XXXXXX", logf[300], moved[300];
	const char *extra[] = { "--log-file", logf, NULL };
	char *s;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(logf, sizeof(logf), "%s/slotd.log.file", dir);
	snprintf(moved, sizeof(moved), "%s/slotd.log.1", dir);
	cr_assert_eq(test_daemon_start_in(&d, dir, extra), 0);
	d.own_dir = true;	/* removed on a clean stop */
	cr_assert_eq(rename(logf, moved), 0);
	kill(d.pid, SIGHUP);
	for (int i = 0; i < 200 && access(logf, F_OK); i++)
		usleep(10000);
	s = test_slurp(logf);
	cr_assert(s && strstr(s, "log reopened"), "new log: %s", s);
	free(s);
}
