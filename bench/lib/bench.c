/* Helpers shared by the benchmarks (see bench.h). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/lib/bench.h"

long long bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long bench_env_long(const char *name, long def)
{
	const char *v = getenv(name);

	return v && *v ? strtol(v, NULL, 10) : def;
}

const char *bench_env_str(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

/* The CPUs this program started with: what bench_pin_self(-1) restores
 * and what placements choose from. */
static cpu_set_t start_cpus;
static int start_cpus_read;

static const cpu_set_t *start_set(void)
{
	if (!start_cpus_read) {
		if (sched_getaffinity(0, sizeof(start_cpus), &start_cpus))
			CPU_ZERO(&start_cpus);
		start_cpus_read = 1;
	}
	return &start_cpus;
}

int bench_pin_self(int cpu)
{
	cpu_set_t one;
	const cpu_set_t *set = start_set();

	if (cpu >= 0) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		set = &one;
	}
	return sched_setaffinity(0, sizeof(*set), set) ? -errno : 0;
}

int bench_cpu_count(void)
{
	return CPU_COUNT(start_set());
}

int bench_cpu_nth(int i)
{
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, start_set()) && i-- == 0)
			return cpu;
	return -1;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

double bench_pct_us(long long *v, long n, double p)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_ll);
	return (double)v[(long)(p * (double)(n - 1) + 0.5)] / 1000.0;
}

/* Whether something accepts connections on the Unix socket path. */
static int sock_ready(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return r;
}

static void daemon_exec(const struct bench_daemon *d, const char *bin)
{
	char log[192];
	int fd;

	snprintf(log, sizeof(log), "%s/slotd.log", d->dir);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 1);
	dup2(fd, 2);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	if (d->cpu >= 0 && bench_pin_self(d->cpu))
		fprintf(stderr, "cannot keep slotd on CPU %d: %s\n", d->cpu, strerror(errno));
	/* --vms-on-exit stop: the guests end with the daemon (they would
	 * outlive it otherwise, each in its runner process). */
	execl(bin, bin, "--foreground", "--socket", d->sock, "--state-dir", d->state,
	      "--log-level", "warn", "--vms-on-exit", "stop", (char *)NULL);
	fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
	_exit(127);
}

int bench_daemon_start(struct bench_daemon *d, const char *bin,
		       const char *sock_base, const char *state_base)
{
	return bench_daemon_start_on(d, bin, sock_base, state_base, -1);
}

int bench_daemon_start_on(struct bench_daemon *d, const char *bin, const char *sock_base,
			  const char *state_base, int cpu)
{
	memset(d, 0, sizeof(*d));
	d->cpu = cpu;
	snprintf(d->dir, sizeof(d->dir), "%s/slotd-bench-XXXXXX", sock_base);
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	if (state_base) {
		snprintf(d->state_parent, sizeof(d->state_parent), "%s/slotd-bench-XXXXXX",
			 state_base);
		if (!mkdtemp(d->state_parent))
			return -errno;
		snprintf(d->state, sizeof(d->state), "%s/state", d->state_parent);
	}
	snprintf(d->sock, sizeof(d->sock), "%s/slotd.sock", d->dir);
	d->pid = fork();
	if (d->pid < 0)
		return -errno;
	if (d->pid == 0)
		daemon_exec(d, bin);
	for (long long end = bench_now_ns() + 10000000000LL; bench_now_ns() < end;) {
		if (sock_ready(d->sock))
			return 0;
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
			return -ECHILD;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

void bench_daemon_log_dump(const struct bench_daemon *d)
{
	char path[192], buf[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/slotd.log", d->dir);
	f = fopen(path, "r");
	while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	if (f)
		fclose(f);
}

/* rm -rf of a directory this program created (none if dir is ""). */
static void rm_rf(const char *dir)
{
	char cmd[256];

	if (!dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
}

int bench_daemon_stop(struct bench_daemon *d)
{
	int st = -1;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		for (int i = 0; i < 1000 && waitpid(d->pid, &st, WNOHANG) == 0; i++)
			usleep(10000);
		if (kill(d->pid, 0) == 0) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &st, 0);
		}
	}
	d->pid = 0;
	rm_rf(d->dir);
	rm_rf(d->state_parent);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
