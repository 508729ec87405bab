/* bench_rpc: cost of the JSON-RPC path of slotd, measured on the real
 * daemon ($SLOTD_BIN, default build/slotd) started on a private socket.
 *
 *   1. daemon.version round trip on one connection: N requests one at a
 *      time (BENCH_RPC_N, default 20000): median, p99, p99.9.
 *   2. requests per second with 1 and 16 concurrent clients (one thread
 *      and one connection each), with 1 and 8 requests in flight per
 *      client, BENCH_RPC_SECONDS (default 3) each; ratios to 1x1.
 *   3. a whole "slotctl daemon version" process ($SLOTCTL_BIN), median.
 *   4. what a round trip over a Unix socket costs beyond the answering
 *      side's work, as that work grows (0 to 80 us of busy time), with
 *      the asking side sleeping in read() or polling its socket; the two
 *      processes on different CPUs (BENCH_RPC_WAKE_N, default 2000).  No
 *      slotd involved: what the host charges for waking a CPU that went
 *      idle, which a longer request pays more of than daemon.version.
 *      Then both sides on one CPU: the least a hop from slotd to a VM's
 *      runner process can cost when they share a CPU.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/lib/bench.h"

#define REQUEST "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}\n"
#define REQUEST8 REQUEST REQUEST REQUEST REQUEST REQUEST REQUEST REQUEST REQUEST
#define MAX_CLIENTS	16
#define MAX_DEPTH	8

/* One connection with a receive buffer for counting reply lines. */
struct bench_conn {
	int fd;
	char buf[65536];
	size_t len;
	unsigned long bad;	/* replies without a result */
};

struct bench_client {
	pthread_t thread;
	const char *sock;
	int depth;
	double sec;
	long long deadline_ns;
	pthread_barrier_t *start;
	unsigned long done;	/* replies received before the deadline */
	int err;
};

/* Connects c to the daemon's socket. */
static int conn_open(const char *path, struct bench_conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->len = 0;
	c->bad = 0;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(c->fd);
		return e;
	}
	return 0;
}

/* Sends n (up to MAX_DEPTH) copies of the request in one write. */
static int conn_send(struct bench_conn *c, int n)
{
	static const char batch[] = REQUEST8;
	size_t len = (sizeof(REQUEST) - 1) * (size_t)n, off = 0;

	while (off < len) {
		ssize_t w = send(c->fd, batch + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

/* Consumes complete reply lines from the buffer; returns how many. */
static int conn_take_lines(struct bench_conn *c)
{
	char *p = c->buf, *end = c->buf + c->len, *nl;
	int n = 0;

	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (!memmem(p, (size_t)(nl - p), "\"result\"", 8))
			c->bad++;
		p = nl + 1;
		n++;
	}
	c->len = (size_t)(end - p);
	memmove(c->buf, p, c->len);
	return n;
}

/* Blocks until at least one reply line is complete; returns the count. */
static int conn_recv_replies(struct bench_conn *c)
{
	for (;;) {
		int n = conn_take_lines(c);
		ssize_t r;

		if (n)
			return n;
		if (c->len == sizeof(c->buf))
			return -EMSGSIZE;
		r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ECONNRESET;
		c->len += (size_t)r;
	}
}

/* Part 1: n sequential round trips on one connection. */
static int bench_latency(const char *sock, long n)
{
	long long *ns = calloc((size_t)n, sizeof(*ns));
	struct bench_conn *c = calloc(1, sizeof(*c));
	int ret = ns && c ? conn_open(sock, c) : -ENOMEM;

	for (long i = -1000; !ret && i < n; i++) {	/* 1000 to warm up */
		long long t0 = bench_now_ns();

		ret = conn_send(c, 1);
		if (!ret)
			ret = conn_recv_replies(c) == 1 ? 0 : -EPROTO;
		if (i >= 0)
			ns[i] = bench_now_ns() - t0;
	}
	if (!ret && c->bad)
		ret = -EPROTO;
	if (!ret) {
		printf("daemon.version round trip, 1 connection, N=%ld (us)\n",
		       n);
		printf("  %-8s %-8s %-8s %-8s\n", "median", "p99", "p99.9",
		       "max");
		/* bench_pct_us sorts ns: the max is read after it. */
		double med = bench_pct_us(ns, n, 0.5), p99 = bench_pct_us(ns, n, 0.99),
		       p999 = bench_pct_us(ns, n, 0.999);

		printf("  %-8.1f %-8.1f %-8.1f %-8.1f\n\n", med, p99, p999,
		       (double)ns[n - 1] / 1000.0);
	}
	if (c && c->fd > 0)
		close(c->fd);
	free(c);
	free(ns);
	return ret;
}

/* Keeps depth requests in flight until the deadline, then drains. */
static int client_loop(struct bench_client *cl, struct bench_conn *c)
{
	int inflight = cl->depth, ret = conn_send(c, cl->depth);

	while (!ret && inflight) {
		int got = conn_recv_replies(c);
		bool open = bench_now_ns() < cl->deadline_ns;

		if (got < 0)
			return got;
		inflight -= got;
		if (open) {
			cl->done += (unsigned long)got;
			ret = conn_send(c, got);
			inflight += got;
		}
	}
	return ret ? ret : c->bad ? -EPROTO : 0;
}

/* One throughput client: connect, wait for all, run to the deadline. */
static void *client_main(void *arg)
{
	struct bench_client *cl = arg;
	struct bench_conn *c = calloc(1, sizeof(*c));

	cl->err = c ? conn_open(cl->sock, c) : -ENOMEM;
	/* Everyone connected: the measured interval starts now. */
	pthread_barrier_wait(cl->start);
	cl->deadline_ns = bench_now_ns() + (long long)(cl->sec * 1e9);
	if (!cl->err)
		cl->err = client_loop(cl, c);
	if (c && c->fd > 0)
		close(c->fd);
	free(c);
	return NULL;
}

/* Part 2, one configuration: requests per second over all clients. */
static int bench_rate(const char *sock, int nclients, int depth, double sec,
		      double *rate)
{
	struct bench_client cl[MAX_CLIENTS] = { { 0 } };
	pthread_barrier_t start;
	unsigned long total = 0;
	int ret = 0;

	pthread_barrier_init(&start, NULL, (unsigned)nclients + 1);
	for (int i = 0; i < nclients; i++) {
		cl[i] = (struct bench_client){ .sock = sock, .depth = depth,
					       .sec = sec, .start = &start };
		pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
	}
	pthread_barrier_wait(&start);
	for (int i = 0; i < nclients; i++) {
		pthread_join(cl[i].thread, NULL);
		total += cl[i].done;
		ret = ret ? ret : cl[i].err;
	}
	pthread_barrier_destroy(&start);
	*rate = (double)total / sec;
	return ret;
}

/* Part 2: every configuration, with its ratio to 1 client x 1. */
static int bench_rates(const char *sock, double sec)
{
	static const int conf[][2] = {
		{ 1, 1 }, { 16, 1 }, { 1, 8 }, { 16, 8 },
	};
	double rate, base = 0;

	printf("daemon.version requests per second, %.1f s each\n", sec);
	printf("  %-8s %-10s %-10s %s\n", "clients", "in-flight", "req/s",
	       "vs 1x1");
	for (size_t i = 0; i < sizeof(conf) / sizeof(conf[0]); i++) {
		int ret = bench_rate(sock, conf[i][0], conf[i][1], sec, &rate);

		if (ret)
			return ret;
		if (!base)
			base = rate;
		printf("  %-8d %-10d %-10.0f %.2fx\n", conf[i][0], conf[i][1],
		       rate, rate / base);
	}
	putchar('\n');
	return 0;
}

/* Part 3: median wall time of a whole slotctl process. */
static int bench_slotctl(const char *bin, const char *sock, int n)
{
	long long *ns = calloc((size_t)n, sizeof(*ns));
	int ret = ns ? 0 : -ENOMEM;

	for (int i = 0; !ret && i < n; i++) {
		long long t0 = bench_now_ns();
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);

			dup2(fd, 1);
			execl(bin, bin, "--socket", sock, "daemon", "version",
			      (char *)NULL);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid ||
		    !WIFEXITED(st) || WEXITSTATUS(st))
			ret = -EPROTO;
		ns[i] = bench_now_ns() - t0;
	}
	if (!ret) {
		printf("slotctl daemon version (fork+exec+connect+call), N=%d: "
		       "median %.0f us\n", n, bench_pct_us(ns, n, 0.5));
	}
	free(ns);
	return ret;
}

/* Part 4: a socketpair, the answerer busy for a given time before each
 * reply, on another CPU than the asker. */
static int bench_wake(long n)
{
	static const long long busy_us[] = { 0, 10, 20, 40, 80 };
	long long *v = calloc((size_t)n, sizeof(*v));
	int sv[2], st, ret = 0;
	pid_t pid;

	if (bench_cpu_count() < 2) {
		free(v);
		printf("wake-up: skipped (needs two CPUs)\n");
		return 0;
	}
	if (!v || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		free(v);
		return v ? -errno : -ENOMEM;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(sv[0]);
		close(sv[1]);
		free(v);
		return ret;
	}
	if (pid == 0) {
		long long d;

		close(sv[0]);
		bench_pin_self(bench_cpu_nth(0));
		while (read(sv[1], &d, sizeof(d)) == sizeof(d)) {
			long long t = bench_now_ns();

			while (bench_now_ns() - t < d)
				;
			if (write(sv[1], &d, sizeof(d)) != sizeof(d))
				break;
		}
		_exit(0);
	}
	close(sv[1]);
	bench_pin_self(bench_cpu_nth(1));
	printf("round trip beyond the answer's busy time, Unix socket, the two sides on CPUs "
	       "%d and %d, us, median (p90), N=%ld\n", bench_cpu_nth(0), bench_cpu_nth(1), n);
	printf("busy us   asker sleeps in read()   asker polls   ratio\n");
	for (size_t k = 0; !ret && k < sizeof(busy_us) / sizeof(busy_us[0]); k++) {
		double med[2], p90[2];

		for (int poll = 0; !ret && poll < 2; poll++) {
			for (long i = -20; !ret && i < n; i++) {
				long long d = busy_us[k] * 1000, r, t0 = bench_now_ns();
				ssize_t got;

				if (write(sv[0], &d, sizeof(d)) != sizeof(d)) {
					ret = -errno;
					break;
				}
				do {
					got = poll ? recv(sv[0], &r, sizeof(r), MSG_DONTWAIT) :
						     read(sv[0], &r, sizeof(r));
				} while (got < 0 && (errno == EAGAIN || errno == EINTR));
				if (got != sizeof(r))
					ret = got < 0 ? -errno : -EPROTO;
				else if (i >= 0)
					v[i] = bench_now_ns() - t0 - d;
			}
			med[poll] = bench_pct_us(v, n, 0.5);
			p90[poll] = bench_pct_us(v, n, 0.9);
		}
		if (!ret)
			printf("%7lld   %8.1f (%7.1f)       %6.1f (%5.1f)  %.2fx\n", busy_us[k],
			       med[0], p90[0], med[1], p90[1], med[0] / med[1]);
	}
	/* Both sides on one CPU: what a memslot change's hop from slotd to
	 * the VM's runner (pinned, they share slotd's CPU) costs at least,
	 * two small processes switching, nothing else. */
	if (!ret)
		ret = bench_pin_self(bench_cpu_nth(0));
	for (long i = -20; !ret && i < n; i++) {
		long long d = 0, r, t0 = bench_now_ns();

		errno = 0;
		if (write(sv[0], &d, sizeof(d)) != sizeof(d) || read(sv[0], &r, sizeof(r)) != sizeof(r))
			ret = errno ? -errno : -EPROTO;
		else if (i >= 0)
			v[i] = bench_now_ns() - t0;
	}
	if (!ret)
		printf("the two sides both on CPU %d (asker sleeps in read(), nothing busy): "
		       "%.1f (%.1f)\n", bench_cpu_nth(0), bench_pct_us(v, n, 0.5),
		       bench_pct_us(v, n, 0.9));
	bench_pin_self(-1);
	close(sv[0]);
	waitpid(pid, &st, 0);
	free(v);
	return ret;
}

int main(void)
{
	const char *bin = getenv("SLOTD_BIN"), *ctl = getenv("SLOTCTL_BIN");
	long n = bench_env_long("BENCH_RPC_N", 20000);
	double sec = (double)bench_env_long("BENCH_RPC_SECONDS", 3);
	struct bench_daemon d;
	int ret;

	signal(SIGPIPE, SIG_IGN);
	bin = bin && *bin ? bin : "build/slotd";
	ctl = ctl && *ctl ? ctl : "build/slotctl";
	ret = bench_daemon_start(&d, bin, "/tmp", NULL);
	if (ret) {
		fprintf(stderr, "bench_rpc: cannot start %s: %s (log in %s)\n",
			bin, strerror(-ret), d.dir);
		return 1;
	}
	ret = bench_latency(d.sock, n > 0 ? n : 1);
	if (!ret)
		ret = bench_rates(d.sock, sec > 0 ? sec : 1);
	if (!ret && access(ctl, X_OK) == 0)
		ret = bench_slotctl(ctl, d.sock, 200);
	if (!ret)
		ret = bench_wake(bench_env_long("BENCH_RPC_WAKE_N", 2000));
	if (ret)
		fprintf(stderr, "bench_rpc: failed: %s\n", strerror(-ret));
	bench_daemon_stop(&d);
	return ret ? 1 : 0;
}
