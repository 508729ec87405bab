/* Test helpers: start the real slotd on a private socket and state dir,
 * talk to it, run slotctl.  Every wait has a timeout. */
#ifndef SLOTD_TESTS_DAEMON_H
#define SLOTD_TESTS_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>
#include <json-c/json.h>

struct test_daemon {
	pid_t pid;
	char dir[256];		/* private temporary directory */
	char sock[320];		/* dir/slotd.sock */
	char state[320];	/* dir/state */
	char log[320];		/* dir/slotd.log: the daemon's stderr */
	bool own_dir;		/* made by test_daemon_start: removed on a
				 * clean stop, kept for a post-mortem else */
	const char *bin;	/* the slotd to run; NULL: test_slotd_bin() */
};

/* Path of build/slotd ($SLOTD_BIN) and build/slotctl ($SLOTCTL_BIN). */
const char *test_slotd_bin(void);
const char *test_slotctl_bin(void);

/* Starts slotd with extra arguments (NULL-terminated, may be NULL) and waits
 * up to 10 s for its socket to accept.  Returns 0 or -errno.  A daemon
 * still running when the test process exits (a skip after setup skips
 * the suite's teardown) is stopped then; d must outlive the process
 * (a static or global). */
int test_daemon_start(struct test_daemon *d, const char *const *extra);
/* Like test_daemon_start with a caller-chosen directory (kept on stop). */
int test_daemon_start_in(struct test_daemon *d, const char *dir,
			 const char *const *extra);
/* SIGTERM, wait up to 10 s (then SIGKILL); returns the exit status or -1.
 * A non-zero status (a sanitizer report makes one) is also printed with
 * the daemon's log to stderr, where the test log shows it. */
int test_daemon_stop(struct test_daemon *d);
/* True while the process is alive. */
bool test_daemon_alive(struct test_daemon *d);

/* Connects to a Unix stream socket; returns the fd or -errno. */
int test_connect(const char *path);
/* Writes all of buf; returns 0 or -errno. */
int test_send(int fd, const void *buf, size_t len);
/* Reads one '\n'-terminated line (without it) within timeout_ms; malloc'd,
 * NULL on timeout/EOF.  Asserts (Criterion) that the line is strict JSON:
 * every reply and notification the integration tests receive is checked. */
char *test_recv_line(int fd, int timeout_ms);
/* Sends line + '\n' and returns the reply line (malloc'd) or NULL. */
char *test_rpc_raw(int fd, const char *line);
/* Calls method with params (JSON text or NULL) on a fresh connection to
 * sock; returns the parsed reply object (caller puts it) or NULL. */
json_object *test_rpc(const char *sock, const char *method, const char *params);

/* Runs argv (argv[0] a path) with a 30 s timeout, capturing stdout and
 * stderr into malloc'd strings (may be NULL); returns the exit status,
 * or -1 when it could not run or was killed. */
int test_run(const char *const *argv, char **out, char **err);

/* rm -rf dir (for test fixtures); first ends the VM runner processes
 * serving sockets under dir (a test must leave no process behind). */
void test_rmtree(const char *dir);
/* SIGKILLs every slotd-runner whose socket lies under dir and waits for
 * them; returns how many there were. */
int test_runners_kill(const char *dir);

/* Reads a whole file into a malloc'd string (NULL on error). */
char *test_slurp(const char *path);

#endif
