/* Test helpers for driving the real slotd binary. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/durable.h"
#include "common/log.h"
#include "tests/lib/daemon.h"
#include "tests/lib/json_check.h"

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

const char *test_slotd_bin(void)
{
	const char *p = getenv("SLOTD_BIN");

	return p && *p ? p : "build/slotd";
}

const char *test_slotctl_bin(void)
{
	const char *p = getenv("SLOTCTL_BIN");

	return p && *p ? p : "build/slotctl";
}

int test_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static void spawn(struct test_daemon *d, const char *const *extra)
{
	const char *argv[64];
	int n = 0, fd;

	argv[n++] = d->bin ? d->bin : test_slotd_bin();
	argv[n++] = "--foreground";
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	argv[n++] = "--state-dir";
	argv[n++] = d->state;
	for (int i = 0; extra && extra[i] && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 2);
		dup2(fd, 1);
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

#define TRACKED_MAX 32

/* Every daemon started in this process: stopped at exit if still alive.
 * Criterion skips a suite's .fini when a test skips after its .init, so
 * a skip would otherwise leave its daemon (and directory) behind. */
static struct test_daemon *tracked[TRACKED_MAX];

static void tracked_stop_all(void)
{
	for (int i = 0; i < TRACKED_MAX; i++)
		if (tracked[i] && tracked[i]->pid > 0)
			test_daemon_stop(tracked[i]);
}

static void track(struct test_daemon *d)
{
	static bool registered;
	int free_slot = -1;

	if (!registered)
		registered = atexit(tracked_stop_all) == 0;
	for (int i = 0; i < TRACKED_MAX; i++) {
		if (tracked[i] == d)
			return;
		if (!tracked[i] && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0)
		tracked[free_slot] = d;
}

int test_daemon_start_in(struct test_daemon *d, const char *dir,
			 const char *const *extra)
{
	long deadline;

	/* A test that starts a second daemon on its fixture's struct (other
	 * flags) replaces the first one instead of orphaning it. */
	if (d->pid > 0)
		test_daemon_stop(d);
	d->own_dir = false;
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	snprintf(d->sock, sizeof(d->sock), "%s/slotd.sock", d->dir);
	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/slotd.log", d->dir);
	d->pid = fork();
	if (d->pid < 0)
		return -errno;
	if (d->pid == 0)
		spawn(d, extra);
	track(d);
	deadline = now_ms() + 10000;
	while (now_ms() < deadline) {
		int fd = test_connect(d->sock);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (!test_daemon_alive(d))
			return -ECHILD;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

int test_daemon_start(struct test_daemon *d, const char *const *extra)
{
	char tmpl[] = "/tmp/slotd-test-XXXXXX";

	int r;

	if (!mkdtemp(tmpl))
		return -errno;
	r = test_daemon_start_in(d, tmpl, extra);
	d->own_dir = true;
	return r;
}

bool test_daemon_alive(struct test_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->pid = -1;
		return false;
	}
	return true;
}

/* Waits up to ms for pid; returns its wait status or -1. */
static int wait_timeout(pid_t pid, long ms)
{
	long deadline = now_ms() + ms;
	int st;

	while (now_ms() < deadline) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0)
			return -1;
		usleep(2000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* Whether /proc/PID/cmdline is a slotd-runner's with a socket under dir. */
static bool runner_of(const char *pid, const char *dir)
{
	char path[300], buf[4096];
	size_t n = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return false;
	buf[r] = '\0';
	if (!strstr(buf, "slotd-runner"))
		return false;
	/* argv: slotd-runner --vm NAME --socket PATH */
	for (int i = 0; i < 4 && n < (size_t)r; i++)
		n += strlen(buf + n) + 1;
	return n < (size_t)r && !strncmp(buf + n, dir, strlen(dir));
}

int test_runners_kill(const char *dir)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t pids[256];
	int n = 0;

	while (d && (e = readdir(d)) && n < 256)
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && runner_of(e->d_name, dir)) {
			pids[n] = (pid_t)atoi(e->d_name);
			kill(pids[n++], SIGKILL);
		}
	if (d)
		closedir(d);
	/* Not our children (setsid, re-parented): wait until they are gone. */
	for (int i = 0; i < n; i++)
		for (long deadline = now_ms() + 5000; kill(pids[i], 0) == 0 && now_ms() < deadline;)
			usleep(2000);
	return n;
}

void test_rmtree(const char *dir)
{
	test_runners_kill(dir);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int test_daemon_stop(struct test_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	st = wait_timeout(d->pid, 10000);
	d->pid = -1;
	st = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (st != 0) {
		char *log = test_slurp(d->log);

		fprintf(stderr, "slotd exited with status %d; its log (%s):\n%s\n", st,
			d->log, log ? log : "(none)");
		free(log);
	} else if (d->own_dir) {
		test_rmtree(d->dir);
	}
	return st;
}

int test_send(int fd, const void *buf, size_t len)
{
	return durable_write_all(fd, buf, len);
}

char *test_recv_line(int fd, int timeout_ms)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	long deadline = now_ms() + timeout_ms;

	while (buf && now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, (int)(deadline - now_ms())) <= 0)
			break;
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb)
				break;
			buf = nb;
		}
		/* One byte at a time: the reply line ends where we stop. */
		n = read(fd, buf + len, 1);
		if (n <= 0)
			break;
		if (buf[len] == '\n') {
			char why[128];

			buf[len] = 0;
			/* Every line slotd sends is held to strict JSON. */
			cr_assert(tj_strict_json(buf, len, why, sizeof(why)),
				  "slotd sent a line that is not strict JSON (%s): %.300s", why, buf);
			return buf;
		}
		len++;
	}
	free(buf);
	return NULL;
}

char *test_rpc_raw(int fd, const char *line)
{
	if (test_send(fd, line, strlen(line)) || test_send(fd, "\n", 1))
		return NULL;
	return test_recv_line(fd, 10000);
}

json_object *test_rpc(const char *sock, const char *method, const char *params)
{
	char *req, *rep;
	json_object *o = NULL;
	int fd = test_connect(sock);

	if (fd < 0)
		return NULL;
	if (asprintf(&req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"%s%s}",
		     method, params ? ",\"params\":" : "",
		     params ? params : "") < 0) {
		close(fd);
		return NULL;
	}
	rep = test_rpc_raw(fd, req);
	if (rep)
		o = json_tokener_parse(rep);
	free(req);
	free(rep);
	close(fd);
	return o;
}

/* Reads fd to EOF into a malloc'd string. */
static char *drain(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
	}
	if (buf)
		buf[len] = 0;
	return buf;
}

int test_run(const char *const *argv, char **out, char **err)
{
	char tmpl_o[] = "/tmp/slotd-run-o-XXXXXX", tmpl_e[] = "/tmp/slotd-run-e-XXXXXX";
	int fo = mkstemp(tmpl_o), fe = mkstemp(tmpl_e), st = -1;
	pid_t pid;

	if (fo < 0 || fe < 0)
		goto out;
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		st = wait_timeout(pid, 30000);
	if (st >= 0)
		st = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	lseek(fo, 0, SEEK_SET);
	lseek(fe, 0, SEEK_SET);
	if (out)
		*out = drain(fo);
	if (err)
		*err = drain(fe);
out:
	if (fo >= 0) {
		close(fo);
		unlink(tmpl_o);
	}
	if (fe >= 0) {
		close(fe);
		unlink(tmpl_e);
	}
	return st;
}

char *test_slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *s;

	if (fd < 0)
		return NULL;
	s = drain(fd);
	close(fd);
	return s;
}
