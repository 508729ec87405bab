/* Helpers shared by the benchmarks: clocks, environment knobs,
 * percentiles, and a private slotd to measure against. */
#ifndef SLOTD_BENCH_H
#define SLOTD_BENCH_H

#include <sys/types.h>

struct bench_daemon {
	pid_t pid;
	char dir[128];		/* socket and log */
	char state[160];	/* --state-dir */
	char state_parent[128];	/* mkdtemp'd under state_base, or "" */
	char sock[160];
	int cpu;		/* the only CPU it may run on, or -1 */
};

long long bench_now_ns(void);
/* The integer / string in environment variable name, or def. */
long bench_env_long(const char *name, long def);
const char *bench_env_str(const char *name, const char *def);
/* The p-th percentile (0..1) of n samples in ns, sorted in place; in us. */
double bench_pct_us(long long *v, long n, double p);

/* Starts bin (slotd) with its socket and log in a new directory under
 * sock_base and its state dir under state_base (NULL: next to the
 * socket); waits up to 10 s for the socket.  0 or -errno. */
int bench_daemon_start(struct bench_daemon *d, const char *bin,
		       const char *sock_base, const char *state_base);
/* The same, with every thread of the daemon kept on CPU cpu (-1: any). */
int bench_daemon_start_on(struct bench_daemon *d, const char *bin, const char *sock_base,
			  const char *state_base, int cpu);
/* Keeps the calling thread on CPU cpu; -1 gives back the CPUs it had when
 * the program started.  0 or -errno. */
int bench_pin_self(int cpu);
/* How many CPUs this program may run on, and the i-th of them (-1 past
 * the end): the CPUs a placement can name. */
int bench_cpu_count(void);
int bench_cpu_nth(int i);
/* SIGTERM, up to 10 s, then SIGKILL; removes the private directories.
 * Returns the exit status or -1. */
int bench_daemon_stop(struct bench_daemon *d);
/* Copies the daemon's log to stderr (when it failed to start). */
void bench_daemon_log_dump(const struct bench_daemon *d);

#endif
