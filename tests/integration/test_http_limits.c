/* The HTTP listener's limits hold before any token is shown: head size
 * (431), body size (413), head and body timeouts (408), the connection cap
 * (503), malformed heads (400, 505), and accept backs off when slotd runs
 * out of descriptors instead of spinning. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/json_check.h"

static struct test_daemon d;
static char dir[64], addr[64], tokfile[128];
static int port;

static void start_with(const char *const *more)
{
	const char *extra[24] = { "--http", addr, "--http-token-file", tokfile };
	int n = 4;
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/slotd-httpl-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(tokfile, sizeof(tokfile), "%s/token", dir);
	f = fopen(tokfile, "w");
	fprintf(f, "tok-123456\n");
	fchmod(fileno(f), 0600);
	fclose(f);
	/* A port derived from the pid keeps parallel runs apart. */
	port = 40000 + getpid() % 20000;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	for (int i = 0; more && more[i] && n < 23; i++)
		extra[n++] = more[i];
	extra[n] = NULL;
	cr_assert_eq(test_daemon_start_in(&d, dir, extra), 0, "log: %s", test_slurp(d.log));
	d.own_dir = true;
}

static void stop(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
}

TestSuite(http_limits, .fini = stop, .timeout = 60);

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int http_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = -1;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	/* The Unix socket accepts before the HTTP listener is bound. */
	for (int i = 0; i < 500; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		usleep(10000);
	}
	cr_assert_fail("cannot connect to %s", addr);
	return -1;
}

/* Reads what arrives within ms (to EOF or until quiet for ms). */
static char *read_for(int fd, int ms)
{
	char *buf = calloc(1, 65536);
	size_t len = 0;
	long end = now_ms() + ms;

	while (now_ms() < end && len < 65535) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			break;
		n = read(fd, buf + len, 65535 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	return buf;
}

/* Sends raw bytes on a new connection and returns the response. */
static char *exchange(const char *raw, size_t len, int ms)
{
	int fd = http_connect();
	char *rep;

	cr_assert_eq(test_send(fd, raw, len), 0);
	rep = read_for(fd, ms);
	close(fd);
	return rep;
}

static void expect_status(const char *raw, const char *status)
{
	char *rep = exchange(raw, strlen(raw), 3000);

	cr_expect(!strncmp(rep, status, strlen(status)), "request [%.80s]: expected %s, got [%.200s]",
		  raw, status, rep);
	free(rep);
}

Test(http_limits, a_head_over_the_limit_is_431_before_the_token)
{
	const char *more[] = { "--http-max-header", "1024", NULL };
	char head[2048];
	int n;

	start_with(more);
	n = snprintf(head, sizeof(head), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ");
	memset(head + n, 'a', 1200);
	memcpy(head + n + 1200, "\r\n\r\n", 5);
	expect_status(head, "HTTP/1.1 431 ");
	/* Without an end of head at all: 431 too, not a wait. */
	head[n + 1200] = 0;
	expect_status(head, "HTTP/1.1 431 ");
}

Test(http_limits, a_body_over_max_message_is_413_before_the_token)
{
	const char *more[] = { "--max-message", "1000", NULL };

	start_with(more);
	expect_status("POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
		      "HTTP/1.1 413 ");
	expect_status("POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
		      "Content-Length: 1000001\r\n\r\n", "HTTP/1.1 413 ");
}

Test(http_limits, slow_heads_and_bodies_get_408)
{
	const char *more[] = { "--http-header-timeout", "1", "--http-body-timeout", "1", NULL };
	static const char part[] = "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Le";
	static const char body[] = "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123456\r\n"
				   "Content-Length: 100\r\n\r\n{\"jsonrpc\"";
	long t0;
	char *rep;

	start_with(more);
	t0 = now_ms();
	rep = exchange(part, sizeof(part) - 1, 5000);
	cr_expect(!strncmp(rep, "HTTP/1.1 408 ", 13), "slow head: %.200s", rep);
	cr_expect_lt(now_ms() - t0, 4000, "the 408 took %ld ms", now_ms() - t0);
	free(rep);
	rep = exchange(body, sizeof(body) - 1, 5000);
	cr_expect(!strncmp(rep, "HTTP/1.1 408 ", 13), "slow body: %.200s", rep);
	free(rep);
}

Test(http_limits, connections_over_the_cap_get_503)
{
	const char *more[] = { "--http-max-connections", "2", NULL };
	int a, b;
	char *rep;

	start_with(more);
	a = http_connect();
	b = http_connect();
	usleep(100 * 1000);
	rep = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35, 3000);
	cr_expect(!strncmp(rep, "HTTP/1.1 503 ", 13), "third connection: %.200s", rep);
	free(rep);
	close(a);
	close(b);
	usleep(200 * 1000);
	rep = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35, 3000);
	cr_expect(!strncmp(rep, "HTTP/1.1 200 ", 13), "after the others left: %.200s", rep);
	free(rep);
}

Test(http_limits, malformed_heads_are_refused)
{
	start_with(NULL);
	expect_status("POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123456\r\n"
		      "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 400 ");
	expect_status("GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
	expect_status("GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 ");
	expect_status("GET /healthz HTTP/1.1\nHost: x\n\n", "HTTP/1.1 400 ");
	expect_status("POST /rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		      "HTTP/1.1 501 ");
	expect_status("POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123456\r\n\r\n",
		      "HTTP/1.1 411 ");
}

Test(http_limits, keep_alive_serves_requests_in_turn_and_replies_are_strict_json)
{
	static const char two[] =
		"POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-123456\r\n"
		"Content-Length: 51\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}\n"
		"POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: bearer tok-123456\r\n"
		"Connection: close\r\nContent-Length: 30\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"id\":3";
	char *rep, *b, why[128];

	start_with(NULL);
	rep = exchange(two, sizeof(two) - 1, 3000);
	cr_assert(!strncmp(rep, "HTTP/1.1 200 ", 13), "first: %.300s", rep);
	b = strstr(rep, "\r\n\r\n");
	cr_assert_not_null(b);
	b += 4;
	cr_expect(strstr(b, "\"id\":1}") && tj_strict_json(b, (size_t)(strstr(b, "HTTP/1.1") - b), why,
							   sizeof(why)), "first body: %.300s", b);
	b = strstr(b, "HTTP/1.1 200 ");
	cr_assert_not_null(b, "no second response: %.600s", rep);
	cr_expect(strstr(b, "-32700") && strstr(b, "Connection: close"), "second: %.300s", b);
	free(rep);
}

static long cpu_ticks(pid_t pid)
{
	char path[64], *s, *p;
	long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = test_slurp(path);
	p = s ? strrchr(s, ')') : NULL;
	/* Fields after the comm: state is 3rd; utime 14th, stime 15th. */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) != 2)
		ut = st = 0;
	free(s);
	return ut + st;
}

Test(http_limits, out_of_descriptors_accept_backs_off_instead_of_spinning)
{
	const char *more[] = { "--http-header-timeout", "30", NULL };
	struct rlimit old, low;
	int fds[80], n = 0;
	long t0;
	char *rep, *log;

	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = 48;
	setrlimit(RLIMIT_NOFILE, &low);	/* the daemon inherits it */
	start_with(more);
	setrlimit(RLIMIT_NOFILE, &old);
	for (; n < 80; n++)
		fds[n] = http_connect();
	usleep(300 * 1000);
	t0 = cpu_ticks(d.pid);
	usleep(1000 * 1000);
	cr_expect_lt(cpu_ticks(d.pid) - t0, 30, "slotd used %ld ticks in 1 s with accept failing",
		     cpu_ticks(d.pid) - t0);
	log = test_slurp(d.log);
	cr_expect(log && strstr(log, "pausing accepts"), "the log should say it backs off: %.2000s", log);
	free(log);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	usleep(500 * 1000);
	rep = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35, 3000);
	cr_expect(!strncmp(rep, "HTTP/1.1 200 ", 13), "after the flood: %.200s", rep);
	free(rep);
}
