/* GET /metrics of the real daemon: the page passes `promtool check
 * metrics` (Debian's prometheus package), each method's latency
 * histogram counts its calls, and the per-VM gauges follow the guest
 * memory and memslots of a VM. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

static struct test_daemon d;
static char http_sock[400];

static void up(void)
{
	char dir[] = "/tmp/slotd-metrics-XXXXXX", addr[420];
	const char *extra[] = { "--http", addr, NULL };

	cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
	snprintf(http_sock, sizeof(http_sock), "%s/http.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", http_sock);
	cr_assert_eq(test_daemon_start_in(&d, dir, extra), 0, "slotd did not start");
	d.own_dir = true;
}

static void down(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly");
}

TestSuite(metrics, .init = up, .fini = down, .timeout = 60);

/* GET /metrics over the HTTP Unix socket; the body (malloc'd). */
static char *metrics_get(void)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
	char *buf = NULL, *body;
	size_t len = 0, cap = 0;
	int fd = -1;

	/* The Unix socket accepts before the HTTP listener is bound. */
	for (int i = 0; i < 500 && (fd = test_connect(http_sock)) < 0; i++)
		usleep(10000);
	cr_assert_geq(fd, 0, "cannot connect to %s", http_sock);
	cr_assert_eq(test_send(fd, req, sizeof(req) - 1), 0, "send failed");
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		cr_assert_eq(poll(&p, 1, 10000), 1, "no reply to GET /metrics in 10 s");
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	cr_assert(strstr(buf, " 200 "), "expected 200, got: %.200s", buf);
	body = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(body, "no end of headers in: %.200s", buf);
	body = strdup(body + 4);
	free(buf);
	return body;
}

/* The value of the sample whose line starts with series + ' ', or -1. */
static long long sample(const char *page, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, series, n) && l[n] == ' ')
			return atoll(l + n + 1);
	return -1;
}

static void call(const char *method, const char *params)
{
	json_object *r = test_rpc(d.sock, method, params);

	cr_assert_not_null(r, "no reply to %s", method);
	json_object_put(r);
}

/* promtool from scripts/test-deps.sh (O/tools), else from $PATH. */
static const char *promtool(void)
{
	static char path[512];
	const char *bin = test_slotd_bin();

	snprintf(path, sizeof(path), "%.*s/tools/promtool",
		 (int)(strrchr(bin, '/') ? strrchr(bin, '/') - bin : 1), bin);
	if (!access(path, X_OK))
		return path;
	if (!access("/usr/bin/promtool", X_OK))
		return "/usr/bin/promtool";
	return NULL;
}

static bool kvm_available(void)
{
	json_object *r = test_rpc(d.sock, "daemon.capabilities", NULL), *res, *k;
	bool ok = json_object_object_get_ex(r, "result", &res) &&
		  json_object_object_get_ex(res, "kvm_available", &k) &&
		  json_object_get_boolean(k);

	json_object_put(r);
	return ok;
}

/* Runs promtool check metrics on page; its exit status, output in *out. */
static int promtool_check(const char *tool, const char *page, char **out)
{
	char file[] = "/tmp/slotd-metrics-page-XXXXXX", script[1200];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	int fd = mkstemp(file), rc;

	cr_assert_geq(fd, 0, "mkstemp failed");
	cr_assert_eq(test_send(fd, page, strlen(page)), 0, "write failed");
	close(fd);
	snprintf(script, sizeof(script), "'%s' check metrics < '%s' 2>&1", tool, file);
	rc = test_run(argv, out, NULL);
	unlink(file);
	return rc;
}

Test(metrics, page_passes_promtool_check_metrics)
{
	const char *tool = promtool();
	char *page, *out;
	int rc;

	if (!tool)
		cr_skip_test("promtool is missing (scripts/test-deps.sh puts it in build/tools)");
	call("daemon.version", NULL);
	call("vm.info", "{\"name\":\"none\"}");
	if (kvm_available()) {
		call("vm.create", "{\"name\":\"p1\",\"memory\":\"16M\"}");
		call("vm.create", "{\"name\":\"p2\",\"memory\":\"16M\"}");
		call("memslot.create", "{\"vm\":\"p1\",\"gpa\":\"4G\",\"size\":\"2M\"}");
	}
	page = metrics_get();
	rc = promtool_check(tool, page, &out);
	cr_assert_eq(rc, 0, "expected promtool check metrics to pass, exit %d:\n%s\n"
		     "page:\n%s", rc, out, page);
	free(out);
	/* The check can fail: the same page with a family described twice. */
	{
		char *bad = malloc(strlen(page) + 200);

		sprintf(bad, "%s# HELP slotd_rpc_connections again\n", page);
		rc = promtool_check(tool, bad, &out);
		cr_assert_neq(rc, 0, "expected promtool to refuse a second HELP:\n%s", out);
		free(out);
		free(bad);
	}
	free(page);
}

Test(metrics, latency_histogram_counts_each_call_under_its_method)
{
	char *page;

	for (int i = 0; i < 3; i++)
		call("daemon.version", NULL);
	call("vm.info", "{\"name\":\"none\"}");
	call("no.such.method", NULL);
	page = metrics_get();
	cr_assert_eq(sample(page, "slotd_rpc_request_duration_seconds_count{method=\"daemon.version\"}"),
		     3, "expected 3 daemon.version calls counted in:\n%s", page);
	cr_assert_eq(sample(page, "slotd_rpc_request_duration_seconds_bucket{method=\"daemon.version\",le=\"+Inf\"}"),
		     3, "expected the +Inf bucket to hold all 3 in:\n%s", page);
	cr_assert_eq(sample(page, "slotd_rpc_method_errors_total{method=\"vm.info\"}"),
		     1, "expected 1 vm.info error in:\n%s", page);
	cr_assert_eq(sample(page, "slotd_rpc_method_errors_total{method=\"daemon.version\"}"),
		     0, "expected no daemon.version error in:\n%s", page);
	cr_assert_null(strstr(page, "no.such.method"), "expected no series for a method "
		       "that does not exist (clients must not grow the series):\n%s", page);
	free(page);
}

Test(metrics, vm_gauges_follow_guest_memory_and_memslots)
{
	char *page;

	if (!kvm_available())
		cr_skip_test("KVM is unavailable on this host (/dev/kvm)");
	call("vm.create", "{\"name\":\"m1\",\"memory\":\"16M\"}");
	call("memslot.create", "{\"vm\":\"m1\",\"slot\":5,\"gpa\":\"4G\",\"size\":\"2M\"}");
	page = metrics_get();
	cr_assert_eq(sample(page, "slotd_vm_memslots{vm=\"m1\"}"), 2,
		     "expected 2 memslots (boot RAM and one) in:\n%s", page);
	cr_assert_eq(sample(page, "slotd_vm_boot_memory_bytes{vm=\"m1\"}"), 16 << 20,
		     "expected 16 MiB of boot RAM in:\n%s", page);
	cr_assert_eq(sample(page, "slotd_vm_memslot_bytes{vm=\"m1\",backing=\"anon\"}"),
		     2 << 20, "expected 2 MiB of anonymous slots in:\n%s", page);
	cr_assert_eq(sample(page, "slotd_vm_memslot_bytes{vm=\"m1\",backing=\"memfd\"}"),
		     16 << 20, "expected 16 MiB of memfd (boot RAM) in:\n%s", page);
	free(page);
	call("memslot.delete", "{\"vm\":\"m1\",\"slot\":5}");
	page = metrics_get();
	cr_assert_eq(sample(page, "slotd_vm_memslots{vm=\"m1\"}"), 1,
		     "expected 1 memslot after the delete in:\n%s", page);
	cr_assert_eq(sample(page, "slotd_vm_memslot_bytes{vm=\"m1\",backing=\"anon\"}"),
		     0, "expected no anonymous slot left in:\n%s", page);
	free(page);
}
