/* What a client can make slotd hold on the socket stays bounded: idle
 * connections close, a reply is capped, clients that never read cost a
 * bounded amount together; and SIGTERM answers what is in flight within
 * its bound without ever cutting a line. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/json_check.h"

static struct test_daemon d;

static void start_with(const char *const *extra)
{
	int r = test_daemon_start(&d, extra);

	cr_assert_eq(r, 0, "slotd did not start (%s); log:\n%s", strerror(-r), test_slurp(d.log));
}

static void stop(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
}

TestSuite(limits, .fini = stop, .timeout = 90);

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits up to ms for EOF on fd (data before it is read and dropped);
 * true if the peer closed. */
static bool closed_within(int fd, int ms)
{
	long end = now_ms() + ms;
	char buf[4096];

	while (now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return true;
	}
	return false;
}

Test(limits, an_idle_connection_closes_but_a_subscriber_stays)
{
	const char *extra[] = { "--idle-timeout", "1", NULL };
	int idle, sub;
	long t0;
	char *rep;

	start_with(extra);
	idle = test_connect(d.sock);
	sub = test_connect(d.sock);
	rep = test_rpc_raw(sub, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
	cr_assert(rep && strstr(rep, "\"result\""), "subscribe: %s", rep);
	free(rep);
	t0 = now_ms();
	cr_expect(closed_within(idle, 4000), "an idle connection was still open after 4 s");
	cr_expect_geq(now_ms() - t0, 800, "closed after %ld ms, before the 1 s timeout", now_ms() - t0);
	usleep(1500 * 1000);
	rep = test_rpc_raw(sub, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"daemon.version\"}");
	cr_expect(rep && strstr(rep, "\"result\""), "the subscriber was closed: %s", rep);
	free(rep);
	close(idle);
	close(sub);
}

Test(limits, a_reply_over_max_output_is_error_32006_and_a_batch_stops_there)
{
	const char *extra[] = { "--max-output", "4096", NULL };
	int fd;
	char *rep;

	start_with(extra);
	fd = test_connect(d.sock);
	rep = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.discover\"}");
	cr_expect(rep && strstr(rep, "-32006") && strstr(rep, "the call was made") &&
		  strstr(rep, "\"id\":1"), "rpc.discover over 4096 bytes: %.300s", rep);
	free(rep);
	rep = test_rpc_raw(fd, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"},"
			   "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"rpc.discover\"},"
			   "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"daemon.version\"}]");
	cr_assert_not_null(rep);
	cr_expect_lt(strlen(rep), 4096, "the batch reply is %zu bytes", strlen(rep));
	cr_expect(strstr(rep, "\"result\":{\"name\":\"slotd\""), "entry 1 answered: %.400s", rep);
	cr_expect(strstr(rep, "not executed") && strstr(rep, "\"id\":3"), "entry 3 not run: %.600s", rep);
	free(rep);
	close(fd);
}

static long rss_kib(pid_t pid)
{
	char path[64], *s, *p;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	s = test_slurp(path);
	p = s ? strstr(s, "VmRSS:") : NULL;
	if (p)
		kib = strtol(p + 6, NULL, 10);
	free(s);
	return kib;
}

Test(limits, clients_that_never_read_cost_a_bounded_amount)
{
	const char *extra[] = { "--max-output", "1048576", "--max-output-total", "4194304", NULL };
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.discover\"}\n";
	int fds[16], rcv = 4096;
	long before, after;
	char *all;

	start_with(extra);
	before = rss_kib(d.pid);
	/* 16 clients x 400 requests: 330 MB of replies, if they were made. */
	all = malloc(400 * (sizeof(req) - 1));
	for (int i = 0; i < 400; i++)
		memcpy(all + i * (sizeof(req) - 1), req, sizeof(req) - 1);
	for (int i = 0; i < 16; i++) {
		fds[i] = test_connect(d.sock);
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
		cr_assert_eq(test_send(fds[i], all, 400 * (sizeof(req) - 1)), 0);
	}
	free(all);
	usleep(2000 * 1000);
	after = rss_kib(d.pid);
	cr_expect_lt(after - before, 48 * 1024, "RSS grew by %ld KiB (from %ld)", after - before,
		     before);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	/* Still serving. */
	{
		json_object *r = test_rpc(d.sock, "daemon.version", NULL);

		cr_expect_not_null(r, "slotd stopped answering");
		json_object_put(r);
	}
}

/* Reads fd to EOF (up to ms), returns the bytes (malloc'd, *len). */
static char *read_all(int fd, int ms, size_t *len)
{
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	long end = now_ms() + ms;

	*len = 0;
	while (now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (*len + 65536 > cap)
			buf = realloc(buf, cap *= 2);
		n = read(fd, buf + *len, 65536);
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	return buf;
}

/* Checks that buf holds whole lines only, each strict JSON; their count. */
static int whole_lines(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	int n = 0;
	char why[128];

	cr_assert(len == 0 || buf[len - 1] == '\n', "the stream ends in the middle of a line "
		  "(%zu bytes; last 60: %.60s)", len, len > 60 ? end - 60 : buf);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		cr_assert(tj_strict_json(p, (size_t)(nl - p), why, sizeof(why)),
			  "line %d is not strict JSON (%s): %.100s", n, why, p);
		n++;
		p = nl + 1;
	}
	return n;
}

static int wait_exit(pid_t pid, int ms)
{
	long end = now_ms() + ms;
	int st;

	while (now_ms() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		usleep(10000);
	}
	return -1;
}

Test(limits, sigterm_answers_every_request_in_flight)
{
	char reqs[50 * 64], *buf;
	int fd, n = 0, lines, st;
	size_t len;

	start_with(NULL);
	fd = test_connect(d.sock);
	for (int i = 1; i <= 50; i++)
		n += snprintf(reqs + n, sizeof(reqs) - (size_t)n,
			      "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"daemon.version\"}\n", i);
	cr_assert_eq(test_send(fd, reqs, (size_t)n), 0);
	kill(d.pid, SIGTERM);
	buf = read_all(fd, 10000, &len);
	lines = whole_lines(buf, len);
	cr_expect_eq(lines, 50, "%d of 50 requests in flight answered", lines);
	cr_expect(strstr(buf, "\"id\":50}"), "the last request's reply is missing");
	st = wait_exit(d.pid, 10000);
	d.pid = -1;
	cr_expect_eq(st, 0, "slotd exited %d", st);
	if (st == 0)
		test_rmtree(d.dir);
	free(buf);
	close(fd);
}

Test(limits, a_slow_reader_at_sigterm_never_gets_a_torn_line)
{
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.discover\"}\n";
	char *all, *buf;
	int fd, lines, st, rcv = 16384;
	size_t len;
	long t0;

	start_with(NULL);
	fd = test_connect(d.sock);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	all = malloc(300 * (sizeof(req) - 1));
	for (int i = 0; i < 300; i++)
		memcpy(all + i * (sizeof(req) - 1), req, sizeof(req) - 1);
	cr_assert_eq(test_send(fd, all, 300 * (sizeof(req) - 1)), 0);
	free(all);
	usleep(200 * 1000);
	kill(d.pid, SIGTERM);
	t0 = now_ms();
	/* Past the 2 s drain bound before reading a byte. */
	usleep(3000 * 1000);
	buf = read_all(fd, 20000, &len);
	lines = whole_lines(buf, len);
	cr_expect_gt(lines, 0, "no reply at all");
	st = wait_exit(d.pid, 10000);
	d.pid = -1;
	cr_expect_eq(st, 0, "slotd exited %d", st);
	if (st == 0)
		test_rmtree(d.dir);
	cr_expect_lt(now_ms() - t0, 15000, "slotd took %ld ms to stop", now_ms() - t0);
	free(buf);
	close(fd);
}
