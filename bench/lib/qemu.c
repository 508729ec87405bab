/* QEMU started and stopped by a benchmark; process-tree RSS (qemu.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/lib/bench.h"
#include "bench/lib/qemu.h"

int bench_qemu_find(char *path, size_t len)
{
	const char *env = getenv("BENCH_QEMU"), *dirs = getenv("PATH");
	char *copy, *dir, *save = NULL;
	int ret = -ENOENT;

	if (env && *env) {
		snprintf(path, len, "%s", env);
		return access(path, X_OK) ? -errno : 0;
	}
	copy = strdup(dirs ? dirs : "/usr/bin:/bin");
	for (dir = strtok_r(copy, ":", &save); copy && dir && ret; dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/qemu-system-x86_64", dir);
		ret = access(path, X_OK) ? -ENOENT : 0;
	}
	free(copy);
	return ret;
}

int bench_qemu_version(const char *bin, char *out, size_t len)
{
	char cmd[512], line[256] = "";
	const char *p;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s' --version 2>/dev/null", bin);
	f = popen(cmd, "r");
	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	pclose(f);
	line[strcspn(line, "\n")] = '\0';
	p = strstr(line, "version ");
	snprintf(out, len, "%s", p ? p + 8 : line);
	return p ? 0 : -EPROTO;
}

/* The child: log to dir/qemu.log, exec QEMU with its sockets. */
static void qemu_exec(const struct bench_qemu *q, const char *bin, const char *const *argv)
{
	const char *args[64 + 2 * BENCH_QEMU_MAX_QMP];
	char qmp[BENCH_QEMU_MAX_QMP][200], serial[200], log[192];
	int n = 0, fd;

	snprintf(log, sizeof(log), "%s/qemu.log", q->dir);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 1);
	dup2(fd, 2);
	args[n++] = bin;
	for (int i = 0; i < q->nqmp; i++) {
		snprintf(qmp[i], sizeof(qmp[i]), "unix:%s,server=on,wait=off", q->qmp[i]);
		args[n++] = "-qmp";
		args[n++] = qmp[i];
	}
	snprintf(serial, sizeof(serial), "file:%s", q->serial);
	args[n++] = "-serial";
	args[n++] = serial;
	for (int i = 0; argv[i] && n < 64 + 2 * BENCH_QEMU_MAX_QMP - 1; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	execv(bin, (char *const *)args);
	fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
	_exit(127);
}

/* Copies QEMU's log to stderr. */
static void qemu_log_dump(const struct bench_qemu *q)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "cat '%s/qemu.log' >&2", q->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: no QEMU log in %s\n", q->dir);
}

int bench_qemu_start(struct bench_qemu *q, const char *bin, int nqmp, const char *const *argv)
{
	struct stat st;
	int ready = 0;

	memset(q, 0, sizeof(*q));
	q->nqmp = nqmp < BENCH_QEMU_MAX_QMP ? nqmp : BENCH_QEMU_MAX_QMP;
	snprintf(q->dir, sizeof(q->dir), "/tmp/slotd-bench-qemu-XXXXXX");
	if (!mkdtemp(q->dir))
		return -errno;
	for (int i = 0; i < q->nqmp; i++)
		snprintf(q->qmp[i], sizeof(q->qmp[i]), "%s/qmp%d.sock", q->dir, i);
	snprintf(q->serial, sizeof(q->serial), "%s/serial.log", q->dir);
	q->pid = fork();
	if (q->pid < 0)
		return -errno;
	if (q->pid == 0)
		qemu_exec(q, bin, argv);
	for (long long end = bench_now_ns() + 20000000000LL; bench_now_ns() < end; usleep(10000)) {
		ready = 0;
		for (int i = 0; i < q->nqmp; i++)
			ready += stat(q->qmp[i], &st) == 0 && S_ISSOCK(st.st_mode);
		if (ready == q->nqmp)
			return 0;
		if (waitpid(q->pid, NULL, WNOHANG) == q->pid) {
			q->pid = 0;
			qemu_log_dump(q);
			return -ECHILD;
		}
	}
	qemu_log_dump(q);
	return -ETIMEDOUT;
}

void bench_qemu_stop(struct bench_qemu *q)
{
	char cmd[200];

	if (q->pid > 0) {
		kill(q->pid, SIGTERM);
		for (int i = 0; i < 1000 && waitpid(q->pid, NULL, WNOHANG) == 0; i++)
			usleep(10000);
		if (kill(q->pid, 0) == 0) {
			kill(q->pid, SIGKILL);
			waitpid(q->pid, NULL, 0);
		}
	}
	q->pid = 0;
	if (q->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", q->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench: could not remove %s\n", q->dir);
	}
	q->dir[0] = '\0';
}

int bench_qemu_serial_wait(const struct bench_qemu *q, const char *text, long timeout_ms)
{
	static char buf[1 << 20];
	long long end = bench_now_ns() + timeout_ms * 1000000LL;

	while (bench_now_ns() < end) {
		int fd = open(q->serial, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, text))
				return 0;
		}
		if (q->pid > 0 && waitpid(q->pid, NULL, WNOHANG) == q->pid)
			return -ECHILD;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

/* Resident KiB of pid's mappings other than those exactly skip bytes
 * long (a VM's guest RAM), from /proc/<pid>/smaps. */
static long smaps_rss_kb(pid_t pid, unsigned long long skip)
{
	char path[64], line[512];
	unsigned long long lo, hi, size = 0;
	long kb, total = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2)
			size = hi - lo;
		else if (sscanf(line, "Rss: %ld kB", &kb) == 1 && size != skip)
			total += kb;
	}
	if (f)
		fclose(f);
	return total;
}

/* Parent pid and resident KiB of one /proc entry (without mappings of
 * exactly skip bytes, unless skip is 0); -1 when unreadable. */
static int proc_read(pid_t pid, unsigned long long skip, pid_t *ppid, long *rss_kb)
{
	char path[64], buf[1024], *p;
	long pages = 0, resident = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* comm may hold spaces and parentheses: the fields follow the last ')'. */
	p = p ? strrchr(buf, ')') : NULL;
	if (!p || sscanf(p + 2, "%*c %d", ppid) != 1)
		return -1;
	if (skip) {
		*rss_kb = smaps_rss_kb(pid, skip);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	if (f)
		fclose(f);
	*rss_kb = resident * (sysconf(_SC_PAGESIZE) / 1024);
	return 0;
}

/* Whether pid descends from root, following the parent links in the
 * table (n entries of pid, ppid). */
static int descends(const pid_t (*tab)[2], int n, pid_t pid, pid_t root)
{
	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		int i;

		if (pid == root)
			return 1;
		for (i = 0; i < n && tab[i][0] != pid; i++)
			;
		if (i == n)
			return 0;
		pid = tab[i][1];
	}
	return pid == root;
}

long bench_rss_tree_kb(pid_t root, long *self_kb, int *nproc)
{
	return bench_rss_tree_skip_kb(root, 0, self_kb, nproc);
}

long bench_rss_tree_skip_kb(pid_t root, unsigned long long skip, long *self_kb, int *nproc)
{
	static pid_t tab[32768][2];
	static long rss[32768];
	long total = 0;
	int n = 0, found = 0;
	struct dirent *e;
	DIR *d = opendir("/proc");

	if (!d)
		return -errno;
	while ((e = readdir(d)) && n < 32768) {
		pid_t pid = (pid_t)atoi(e->d_name);

		if (pid > 0 && proc_read(pid, 0, &tab[n][1], &rss[n]) == 0)
			tab[n++][0] = pid;
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		if (!descends((const pid_t (*)[2])tab, n, tab[i][0], root))
			continue;
		/* Only the tree's own processes are worth reading smaps for. */
		if (skip && proc_read(tab[i][0], skip, &tab[i][1], &rss[i]))
			continue;
		total += rss[i];
		found++;
		if (tab[i][0] == root && self_kb)
			*self_kb = rss[i];
	}
	if (nproc)
		*nproc = found;
	return found ? total : -ESRCH;
}
