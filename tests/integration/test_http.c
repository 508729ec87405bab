/* The HTTP listener of the real daemon: POST /rpc, GET /metrics and
 * GET /healthz, bearer tokens, loopback-only TCP. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

static struct test_daemon d;
static char addr[64], tokfile[300];
static int port;

static void start(void)
{
	char dir[] = "/tmp/slotd-http-XXXXXX";
	const char *extra[] = { "--http", addr, "--http-token-file", tokfile, NULL };
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(tokfile, sizeof(tokfile), "%s/token", dir);
	f = fopen(tokfile, "w");
	fprintf(f, "s3cret-token\n");
	fchmod(fileno(f), 0600);	/* slotd refuses a token others can read */
	fclose(f);
	/* A port derived from the pid keeps parallel runs apart. */
	port = 20000 + getpid() % 20000;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	cr_assert_eq(test_daemon_start_in(&d, dir, extra), 0, "log: %s", test_slurp(d.log));
	d.own_dir = true;	/* removed on a clean stop */
}

static void stop(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
}

/* One HTTP/1.0 exchange; returns the whole response (malloc'd). */
static char *http(const char *method, const char *path, const char *auth,
		  const char *body)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char req[2048];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	char *rep;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	/* The Unix socket accepts before the HTTP listener is bound. */
	for (int i = 0; i < 500 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)); i++) {
		close(fd);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		usleep(10000);
	}
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: localhost\r\n%s%s%s"
		     "Content-Length: %zu\r\n\r\n%s", method, path,
		     auth ? "Authorization: Bearer " : "", auth ? auth : "",
		     auth ? "\r\n" : "", body ? strlen(body) : 0, body ? body : "");
	cr_assert_eq(test_send(fd, req, (size_t)n), 0);
	shutdown(fd, SHUT_WR);
	rep = NULL;
	{
		char buf[65536];
		size_t len = 0;
		ssize_t r;

		while ((r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)r;
		buf[len] = 0;
		rep = strdup(buf);
	}
	close(fd);
	return rep;
}

TestSuite(http, .init = start, .fini = stop);

Test(http, healthz_needs_no_token)
{
	char *r = http("GET", "/healthz", NULL, NULL);

	cr_assert(strstr(r, "200 OK") && strstr(r, "\"ok\""), "got %s", r);
	free(r);
}

Test(http, rpc_without_or_with_a_wrong_token_is_401)
{
	char *r = http("POST", "/rpc", NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");

	cr_assert(strstr(r, "401") && strstr(r, "WWW-Authenticate: Bearer"), "got %s", r);
	free(r);
	r = http("POST", "/rpc", "s3cret-tokem", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");
	cr_assert(strstr(r, "401"), "wrong token: %s", r);
	free(r);
}

Test(http, rpc_with_the_token_answers_like_the_socket)
{
	char *r = http("POST", "/rpc", "s3cret-token",
		       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");

	cr_assert(strstr(r, "200 OK") && strstr(r, "\"name\":\"slotd\""), "got %s", r);
	free(r);
	r = http("POST", "/rpc", "s3cret-token", "[]");
	cr_assert(strstr(r, "-32600"), "empty batch: %s", r);
	free(r);
	r = http("POST", "/rpc", "s3cret-token", "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.version\"}");
	cr_assert(strstr(r, "204"), "notification: %s", r);
	free(r);
	r = http("GET", "/rpc", "s3cret-token", NULL);
	cr_assert(strstr(r, "405"), "GET /rpc: %s", r);
	free(r);
	r = http("GET", "/nowhere", "s3cret-token", NULL);
	cr_assert(strstr(r, "404"), "unknown path: %s", r);
	free(r);
}

Test(http, metrics_are_prometheus_text_and_count_requests)
{
	char *r;

	free(http("POST", "/rpc", "s3cret-token", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}"));
	r = http("GET", "/metrics", "s3cret-token", NULL);
	cr_assert(strstr(r, "200 OK") && strstr(r, "# TYPE slotd_rpc_requests_total counter"), "got %s", r);
	cr_assert(strstr(r, "slotd_rpc_errors_total 1\n"), "one error so far: %s", r);
	free(r);
	if (access("/dev/kvm", R_OK | W_OK) == 0) {
		free(http("POST", "/rpc", "s3cret-token",
			  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"vm.create\","
			  "\"params\":{\"name\":\"mx\",\"memory\":\"16M\"}}"));
		r = http("GET", "/metrics", "s3cret-token", NULL);
		cr_assert(strstr(r, "slotd_vm_info{vm=\"mx\",state=\"defined\",type=\"default\"} 1"),
			  "VM info line: %s", r);
		cr_assert(strstr(r, "slotd_vm_stat{vm=\"mx\",source=\"engine\",name=\"roots_obsoleted\"} 0"),
			  "engine counters: %s", r);
		cr_assert(strstr(r, "slotd_vm_stat{vm=\"mx\",source=\"kvm\",name=\"remote_tlb_flush\"}"),
			  "kernel counters: %s", r);
		free(r);
	}
}

Test(http, tcp_listeners_must_be_loopback_and_have_a_token, .init = NULL, .fini = NULL)
{
	const char *wide[] = { test_slotd_bin(), "--foreground", "--socket", "/tmp/slotd-http-x.sock",
			       "--state-dir", "/tmp/slotd-http-x-state", "--http", "0.0.0.0:1", NULL };
	const char *notok[] = { test_slotd_bin(), "--foreground", "--socket", "/tmp/slotd-http-y.sock",
				"--state-dir", "/tmp/slotd-http-y-state", "--http", "127.0.0.1:1", NULL };
	char *err = NULL;

	cr_assert_eq(test_run(wide, NULL, &err), 1);
	cr_assert(err && strstr(err, "loopback"), "stderr: %s", err);
	free(err);
	cr_assert_eq(test_run(notok, NULL, &err), 1);
	cr_assert(err && strstr(err, "--http-token-file"), "stderr: %s", err);
	free(err);
	cr_assert_neq(access("/tmp/slotd-http-y.sock", F_OK), 0, "socket left behind after a failed start");
	test_rmtree("/tmp/slotd-http-x-state");
	test_rmtree("/tmp/slotd-http-y-state");
}
