/* The systemd protocol for real: socket activation through
 * systemd-socket-activate, and READY=1 / STOPPING=1 on a NOTIFY_SOCKET. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

static char dir[64];
static pid_t pid = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-act-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	int st;

	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	test_rmtree(dir);
}

TestSuite(activation, .init = setup, .fini = teardown);

static pid_t spawn(const char *const *argv, const char *notify, const char *log)
{
	pid_t p = fork();

	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		if (notify)
			setenv("NOTIFY_SOCKET", notify, 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return p;
}

static int wait_exit(pid_t p, int ms)
{
	int st;

	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(p, &st, WNOHANG) == p)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		usleep(10000);
	}
	return -2;
}

Test(activation, serves_a_socket_passed_by_systemd_and_leaves_it_in_place)
{
	char sock[128], state[128], log[128], *rep, *l;
	const char *argv[] = { "systemd-socket-activate", "-l", sock, test_slotd_bin(),
			       "--foreground", "--socket", "/nonexistent/ignored.sock",
			       "--state-dir", state, NULL };
	int fd = -1;

	if (access("/usr/bin/systemd-socket-activate", X_OK))
		cr_skip_test("systemd-socket-activate is not installed (package systemd)");
	snprintf(sock, sizeof(sock), "%s/act.sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	pid = spawn(argv, NULL, log);
	for (int i = 0; i < 500 && (fd = test_connect(sock)) < 0; i++)
		usleep(10000);
	cr_assert_geq(fd, 0, "cannot connect to the activation socket");
	rep = test_rpc_raw(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");
	cr_assert(rep && strstr(rep, "\"slotd\""), "reply: %s; log: %s", rep, test_slurp(log));
	free(rep);
	close(fd);
	kill(pid, SIGTERM);
	cr_assert_eq(wait_exit(pid, 10000), 0);
	pid = -1;
	l = test_slurp(log);
	cr_assert(l && strstr(l, "serving the socket passed by systemd"), "log: %s", l);
	free(l);
	cr_assert_eq(access(sock, F_OK), 0, "the activated socket belongs to systemd; slotd removed it");
}

/* Reads one datagram from fd within ms into buf. */
static bool recv_msg(int fd, char *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return false;
	n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return false;
	buf[n] = 0;
	return true;
}

Test(activation, notifies_ready_once_serving_and_stopping_on_sigterm)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char sock[128], state[128], log[128], msg[512];
	const char *argv[] = { test_slotd_bin(), "--foreground", "--socket", sock,
			       "--state-dir", state, NULL };
	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), c;
	bool ready = false, stopping = false;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	cr_assert_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	pid = spawn(argv, sa.sun_path, log);
	while (!ready && recv_msg(nfd, msg, sizeof(msg), 10000))
		ready = strstr(msg, "READY=1") != NULL;
	cr_assert(ready, "no READY=1 within 10 s; log: %s", test_slurp(log));
	/* READY=1 means it serves: a connection works right away. */
	c = test_connect(sock);
	cr_assert_geq(c, 0);
	close(c);
	kill(pid, SIGTERM);
	while (!stopping && recv_msg(nfd, msg, sizeof(msg), 10000))
		stopping = strstr(msg, "STOPPING=1") != NULL;
	cr_assert(stopping, "no STOPPING=1 after SIGTERM");
	cr_assert_eq(wait_exit(pid, 10000), 0);
	pid = -1;
	close(nfd);
}
