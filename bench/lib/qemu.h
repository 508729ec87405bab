/* QEMU as the peer the benchmarks compare slotd with: started from the
 * benchmark on private Unix sockets, stopped by it. */
#ifndef SLOTD_BENCH_QEMU_H
#define SLOTD_BENCH_QEMU_H

#include <sys/types.h>

#define BENCH_QEMU_MAX_QMP 17

struct bench_qemu {
	pid_t pid;
	char dir[128];		/* sockets, serial console and log */
	char qmp[BENCH_QEMU_MAX_QMP][160];
	int nqmp;
	char serial[160];
};

/* The QEMU binary ($BENCH_QEMU, else qemu-system-x86_64 on PATH) into
 * path; -ENOENT when there is none. */
int bench_qemu_find(char *path, size_t len);
/* "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" from `qemu --version`. */
int bench_qemu_version(const char *bin, char *out, size_t len);
/* Starts bin with nqmp QMP sockets and the serial console to a file,
 * then the arguments in argv (NULL-terminated); waits up to 20 s for
 * the QMP sockets.  0 or -errno (the log is then on stderr). */
int bench_qemu_start(struct bench_qemu *q, const char *bin, int nqmp, const char *const *argv);
/* SIGTERM, up to 10 s, then SIGKILL; removes its directory. */
void bench_qemu_stop(struct bench_qemu *q);
/* Waits up to timeout_ms for text in the serial console file. */
int bench_qemu_serial_wait(const struct bench_qemu *q, const char *text, long timeout_ms);

/* Resident set of pid and of all its descendants, in KiB (walks the
 * parent links of /proc/<pid>/stat: the VMs of a daemon that runs each
 * in a child process count too); self_kb: pid's own. -errno if pid is
 * gone. */
long bench_rss_tree_kb(pid_t pid, long *self_kb, int *nproc);
/* The same without every mapping exactly skip bytes long: a VM's guest
 * RAM, so that what is left is the daemon's own cost. */
long bench_rss_tree_skip_kb(pid_t pid, unsigned long long skip, long *self_kb, int *nproc);

#endif
