/* Who may do what: the read-only socket serves only methods that change
 * nothing, --allow-uid/--allow-gid decide which peers the main socket
 * serves, and every change is logged with the pid and uid that made it. */
#include <criterion/criterion.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/daemon.h"
#include "tests/lib/rpc_assert.h"

static struct test_daemon d;
static char dir[64], ro[128];

static void start_with(const char *const *extra)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-auth-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	/* Others must reach the sockets inside (the nobody peer below). */
	chmod(dir, 0755);
	snprintf(ro, sizeof(ro), "%s/ro.sock", dir);
	cr_assert_eq(test_daemon_start_in(&d, dir, extra), 0, "log: %s", test_slurp(d.log));
	d.own_dir = true;
}

static void stop(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
}

TestSuite(auth, .fini = stop, .timeout = 60);

static char *call(const char *sock, const char *line)
{
	int fd = test_connect(sock);
	char *rep;

	cr_assert_geq(fd, 0, "cannot connect to %s", sock);
	rep = test_rpc_raw(fd, line);
	close(fd);
	return rep;
}

Test(auth, the_read_only_socket_serves_reads_and_refuses_changes)
{
	const char *extra[] = { "--socket-ro", ro, NULL };	/* ro: set by start_with */
	char *rep;

	start_with(extra);
	rep = call(ro, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");
	cr_expect(rep && strstr(rep, "\"result\""), "daemon.version on the read-only socket: %s", rep);
	free(rep);
	rep = call(ro, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"vm.list\"}");
	cr_expect(rep && t_reply_code(rep) != -32012, "vm.list refused: %s", rep);
	free(rep);
	rep = call(ro, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"vm.create\",\"params\":{\"name\":\"ro1\"}}");
	cr_expect_eq(t_reply_code(rep), -32012, "vm.create on the read-only socket: %s", rep);
	free(rep);
	rep = call(ro, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"vm.memory.read\","
		   "\"params\":{\"name\":\"ro1\",\"gpa\":0,\"length\":8}}");
	cr_expect_eq(t_reply_code(rep), -32012, "vm.memory.read on the read-only socket: %s", rep);
	free(rep);
	/* In a batch too, entry by entry. */
	rep = call(ro, "[{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"vm.destroy\",\"params\":{\"name\":\"x\"}},"
		   "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"daemon.version\"}]");
	cr_expect(rep && strstr(rep, "-32012") && strstr(rep, "\"result\""), "batch: %s", rep);
	free(rep);
	rep = call(d.sock, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"vm.destroy\",\"params\":{\"name\":\"x\"}}");
	cr_expect(rep && t_reply_code(rep) != -32012, "the main socket refused a change: %s", rep);
	free(rep);
}

/* Connects as uid/gid (a child process) and returns the first line read
 * after sending daemon.version, or NULL. */
static char *call_as(const char *sock, uid_t uid, gid_t gid)
{
	int p[2], st;
	pid_t pid;
	char buf[1024] = "";
	ssize_t n, len = 0;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		char *rep;
		int fd;

		close(p[0]);
		if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
			_exit(3);
		fd = test_connect(sock);
		if (fd < 0)
			_exit(4);
		/* A refused peer may find the socket closed when it writes;
		 * the refusal line is still there to read. */
		signal(SIGPIPE, SIG_IGN);
		if (test_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}\n",
			      51)) {
			/* read the refusal below */
		}
		rep = test_recv_line(fd, 5000);
		if (rep && write(p[1], rep, strlen(rep)) < 0)
			_exit(5);
		_exit(0);
	}
	close(p[1]);
	while ((n = read(p[0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	close(p[0]);
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the peer child failed (status %d)", st);
	buf[len] = 0;
	return strdup(buf);
}

Test(auth, allow_lists_decide_which_peers_the_main_socket_serves)
{
	const char *extra[] = { "--socket-group", "nogroup", "--allow-uid", "12345", NULL };
	struct passwd *nobody = getpwnam("nobody");
	struct group *nog = getgrnam("nogroup");
	char *rep;

	cr_assert(nobody && nog, "this test needs the user nobody and the group nogroup");
	if (geteuid() != 0)
		cr_skip_test("needs root to connect as another uid");
	start_with(extra);
	rep = call_as(d.sock, nobody->pw_uid, nog->gr_gid);
	cr_expect_eq(t_reply_code(rep), -32012, "uid %u not in --allow-uid: %s", (unsigned)nobody->pw_uid,
		     rep);
	cr_expect(strstr(rep, "--allow-uid"), "the refusal should name the flags: %s", rep);
	free(rep);
	/* Root is always served. */
	rep = call(d.sock, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.version\"}");
	cr_expect(rep && strstr(rep, "\"result\""), "root refused: %s", rep);
	free(rep);
	test_daemon_stop(&d);

	{
		const char *by_gid[] = { "--socket-group", "nogroup", "--allow-gid", "nogroup", NULL };

		start_with(by_gid);
		rep = call_as(d.sock, nobody->pw_uid, nog->gr_gid);
		cr_expect(strstr(rep, "\"result\""), "gid nogroup is allowed: %s", rep);
		free(rep);
	}
}

Test(auth, every_change_is_logged_with_the_peers_pid_and_uid)
{
	char want[96], *rep, *log;

	start_with(NULL);
	rep = call(d.sock, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.destroy\",\"params\":{\"name\":\"nope\"}}");
	free(rep);
	rep = call(d.sock, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"daemon.version\"}");
	free(rep);
	snprintf(want, sizeof(want), "vm.destroy by pid %d uid %u", (int)getpid(), (unsigned)getuid());
	log = test_slurp(d.log);
	cr_expect(log && strstr(log, want), "the log should have '%s': %s", want, log);
	cr_expect(log && !strstr(log, "daemon.version by pid"), "reads are not logged as changes: %s",
		  log);
	free(log);
}
