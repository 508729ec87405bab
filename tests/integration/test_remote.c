/* slotd on another host through ssh (slotctl --host ssh://..., the Python
 * client's host=): a private sshd from Debian's openssh-server on a
 * loopback port, with a host key and a user key made here, reaches each
 * test's slotd through "slotctl dial-stdio".  The system's sshd and its
 * configuration are not touched.
 *
 * One sshd serves the whole binary: it is started by the PRE_ALL hook in
 * the runner process and stopped by POST_ALL, because Criterion runs the
 * tests in parallel and sshd needs /run/sshd, which one test's teardown
 * would otherwise remove under another's sshd.  The tests find it through
 * the environment the runner hands them. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

#define SSHD "/usr/sbin/sshd"

static struct test_daemon d;
static char dir[64], host[512], calls[160];
static int port;
/* The runner's: the sshd it started, and whether it made /run/sshd. */
static pid_t sshd_pid;
static bool made_run_sshd;

/* Writes text to dir/name with mode; false when it cannot. */
__attribute__((format(printf, 3, 4)))
static bool file_put(const char *name, mode_t mode, const char *fmt, ...)
{
	char path[256];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return false;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	return chmod(path, mode) == 0;
}

static bool keygen(const char *name)
{
	char path[256];
	const char *argv[] = { "/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "",
			       "-C", "slotd-test", "-f", path, NULL };

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return test_run(argv, NULL, NULL) == 0;
}

/* The configuration of our sshd, and of the ssh client slotctl runs
 * through the wrapper named by $SLOTCTL_SSH, which also logs each run to
 * the file the current test names in $SLOTD_TEST_SSH_CALLS. */
static bool configs_write(void)
{
	char bindir[256];

	snprintf(bindir, sizeof(bindir), "%s", test_slotctl_bin());
	*strrchr(bindir, '/') = 0;
	return file_put("sshd_config", 0600,
			"ListenAddress 127.0.0.1\nHostKey %s/hostkey\nPidFile none\n"
			"AuthorizedKeysFile %s/userkey.pub\nPasswordAuthentication no\n"
			"KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
			"UsePAM no\nStrictModes no\nMaxStartups 100\n"
			"SetEnv PATH=%s:/usr/bin:/bin\n", dir, dir, bindir) &&
	       file_put("ssh_config", 0600,
			"Host *\n  IdentityFile %s/userkey\n  IdentitiesOnly yes\n"
			"  UserKnownHostsFile %s/known_hosts\n  StrictHostKeyChecking yes\n"
			"  BatchMode yes\n  ConnectTimeout 10\n", dir, dir) &&
	       file_put("ssh", 0755, "#!/bin/sh\necho \"$*\" >> \"$SLOTD_TEST_SSH_CALLS\"\n"
			"exec /usr/bin/ssh -F %s/ssh_config \"$@\"\n", dir);
}

/* known_hosts for our port: the host key as ssh-keygen wrote it. */
static bool known_hosts_write(void)
{
	char path[256], *pub;
	bool ok;

	snprintf(path, sizeof(path), "%s/hostkey.pub", dir);
	pub = test_slurp(path);
	ok = pub && file_put("known_hosts", 0600, "[127.0.0.1]:%d %s", port, pub);
	free(pub);
	return ok;
}

/* True once something accepts on 127.0.0.1:p. */
static bool port_open(int p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Starts sshd on port p; true once it listens (within 10 s). */
static bool sshd_start(int p)
{
	char cfg[256], log[256], portarg[16];

	snprintf(cfg, sizeof(cfg), "%s/sshd_config", dir);
	snprintf(log, sizeof(log), "%s/sshd.log", dir);
	snprintf(portarg, sizeof(portarg), "Port=%d", p);
	sshd_pid = fork();
	if (sshd_pid < 0)
		return false;
	if (sshd_pid == 0) {
		execl(SSHD, SSHD, "-D", "-e", "-f", cfg, "-o", portarg, "-E", log,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (port_open(p))
			return true;
		if (waitpid(sshd_pid, NULL, WNOHANG) == sshd_pid)
			break;
		usleep(10000);
	}
	kill(sshd_pid, SIGKILL);
	waitpid(sshd_pid, NULL, 0);
	sshd_pid = 0;
	return false;
}

/* Why the tests cannot run here, or NULL; sets up sshd otherwise. */
static const char *sshd_setup(void)
{
	char wrapper[128], num[16];

	if (access(SSHD, X_OK) || access("/usr/bin/ssh", X_OK) ||
	    access("/usr/bin/ssh-keygen", X_OK))
		return "skip:openssh-server or openssh-client is not installed "
		       "(scripts/test-deps.sh installs them)";
	if (geteuid() != 0)
		return "skip:sshd needs root for its privilege separation";
	snprintf(dir, sizeof(dir), "/tmp/slotd-ssh-XXXXXX");
	if (!mkdtemp(dir))
		return "mkdtemp failed";
	if (!keygen("hostkey") || !keygen("userkey") || !configs_write())
		return "could not make the keys and configuration";
	/* sshd's privilege separation directory; Debian's tmpfiles makes
	 * it at boot where systemd runs. */
	if (mkdir("/run/sshd", 0755) == 0)
		made_run_sshd = true;
	for (int tries = 0; tries < 5 && !sshd_pid; tries++) {
		port = 40000 + (getpid() * 7 + tries * 331) % 20000;
		if (!port_open(port))
			sshd_start(port);
	}
	if (!sshd_pid)
		return "sshd did not start (tried 5 ports)";
	if (!known_hosts_write())
		return "could not write known_hosts";
	snprintf(wrapper, sizeof(wrapper), "%s/ssh", dir);
	snprintf(num, sizeof(num), "%d", port);
	setenv("SLOTCTL_SSH", wrapper, 1);
	setenv("SLOTD_TEST_SSH_DIR", dir, 1);
	setenv("SLOTD_TEST_SSH_PORT", num, 1);
	return NULL;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	const char *why = sshd_setup();

	(void)set;
	if (why)
		setenv("SLOTD_TEST_SSH_ERROR", why, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	if (sshd_pid > 0) {
		kill(sshd_pid, SIGTERM);
		for (int i = 0; i < 500 && waitpid(sshd_pid, NULL, WNOHANG) == 0; i++)
			usleep(10000);
		kill(sshd_pid, SIGKILL);
		waitpid(sshd_pid, NULL, WNOHANG);
	}
	if (made_run_sshd)
		rmdir("/run/sshd");
	if (dir[0])
		test_rmtree(dir);
}

/* Each test: its own slotd, its own log of ssh runs. */
static void setup(void)
{
	const char *why = getenv("SLOTD_TEST_SSH_ERROR");

	if (why && !strncmp(why, "skip:", 5))
		cr_skip_test("%s", why + 5);
	cr_assert_null(why, "ssh test set-up failed: %s", why);
	snprintf(dir, sizeof(dir), "%s", getenv("SLOTD_TEST_SSH_DIR"));
	port = atoi(getenv("SLOTD_TEST_SSH_PORT"));
	snprintf(calls, sizeof(calls), "%s/calls-%d", dir, (int)getpid());
	setenv("SLOTD_TEST_SSH_CALLS", calls, 1);
	cr_assert_eq(test_daemon_start(&d, NULL), 0, "slotd did not start");
	snprintf(host, sizeof(host), "ssh://root@127.0.0.1:%d%s", port, d.sock);
}

static void teardown(void)
{
	if (d.pid > 0)
		test_daemon_stop(&d);
	unlink(calls);
}

TestSuite(remote, .init = setup, .fini = teardown, .timeout = 60);

/* Runs build/slotctl with the arguments (NULL-terminated). */
static int slotctl(char **out, char **err, ...)
{
	const char *argv[24] = { test_slotctl_bin() };
	int n = 1;
	va_list ap;

	va_start(ap, err);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return test_run(argv, out, err);
}

static int ssh_calls(void)
{
	char *text = test_slurp(calls);
	int n = 0;

	for (char *p = text; p && *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

Test(remote, host_ssh_gives_the_same_answer_as_the_local_socket)
{
	char *out, *err, *local, *lerr;
	json_object *a, *b;
	int rc = slotctl(&out, &err, "--json", "--host", host, "daemon", "capabilities", NULL);

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	cr_assert_eq(ssh_calls(), 1, "expected one ssh run, got %d", ssh_calls());
	slotctl(&local, &lerr, "--json", "--socket", d.sock, "daemon", "capabilities", NULL);
	a = json_tokener_parse(out);
	b = json_tokener_parse(local);
	cr_assert(a && json_object_equal(a, b), "expected over ssh:\n%s\nto equal the "
		  "local answer:\n%s", out, local);
	json_object_put(a);
	json_object_put(b);
	free(out);
	free(err);
	free(local);
	free(lerr);
}

Test(remote, a_change_made_over_ssh_reaches_the_daemon)
{
	char *out, *err;
	int rc = slotctl(&out, &err, "--host", host, "daemon", "log-level", "debug", NULL);

	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	free(out);
	free(err);
	slotctl(&out, &err, "--socket", d.sock, "--json", "daemon", "log-level", NULL);
	cr_assert(strstr(out, "\"level\": \"debug\""), "expected the local daemon at "
		  "debug, got: %s", out);
	free(out);
	free(err);
}

Test(remote, errors_come_back_through_ssh)
{
	char *out, *err;
	/* An error of the daemon's own, on hosts with KVM or without. */
	int rc = slotctl(&out, &err, "--host", host, "call", "events.subscribe",
			 "{\"topics\":[\"nope\"]}", NULL);

	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(strstr(err, "error -32602") && strstr(err, "topics[0]"),
		  "expected the daemon's error, got: %s", err);
	free(out);
	free(err);
}

Test(remote, a_missing_remote_socket_is_reported_by_the_remote_slotctl)
{
	char *out, *err, bad[600];
	int rc;

	snprintf(bad, sizeof(bad), "ssh://root@127.0.0.1:%d%s.gone", port, d.sock);
	rc = slotctl(&out, &err, "--host", bad, "daemon", "version", NULL);
	cr_assert_eq(rc, 1, "expected exit 1, got %d", rc);
	cr_assert(strstr(err, "cannot connect to") && strstr(err, ".gone"),
		  "expected the remote slotctl's message naming the socket, got: %s", err);
	free(out);
	free(err);
}

Test(remote, slotd_host_environment_variable_selects_the_host)
{
	char *out, *err;
	int rc;

	setenv("SLOTD_HOST", host, 1);
	rc = slotctl(&out, &err, "daemon", "version", NULL);
	unsetenv("SLOTD_HOST");
	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	cr_assert_eq(ssh_calls(), 1, "expected ssh to be used, got %d runs", ssh_calls());
	free(out);
	free(err);
}

Test(remote, malformed_addresses_are_refused_before_ssh_runs)
{
	static const char *const bad[] = {
		"ssh://-oProxyCommand=touch/tmp/x", "ssh://root@", "ssh://h:0",
		"ssh://h/a;reboot", "tcp://127.0.0.1:80", "ssh://h:1/-s",
	};
	char *out, *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = slotctl(&out, &err, "--host", bad[i], "daemon", "version", NULL);

		cr_assert_eq(rc, 1, "--host %s: expected exit 1, got %d", bad[i], rc);
		cr_assert(strstr(err, "ssh://[USER@]HOST"), "--host %s: expected the "
			  "form to be explained, got: %s", bad[i], err);
		free(out);
		free(err);
	}
	cr_assert_eq(ssh_calls(), 0, "expected ssh never to run, got %d runs", ssh_calls());
}

Test(remote, python_client_accepts_the_same_address)
{
	const char *src = getenv("SLOTD_SRCDIR");
	char client[512], *out, *err;
	const char *argv[] = { "/usr/bin/python3", client, "--host", host,
			       "daemon.version", NULL };
	json_object *o;
	int rc;

	snprintf(client, sizeof(client), "%s/clients/slotd_client.py", src && *src ? src : ".");
	rc = test_run(argv, &out, &err);
	cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s", rc, err);
	o = json_tokener_parse(out);
	cr_assert(o && json_object_object_get_ex(o, "version", NULL),
		  "expected daemon.version's result, got: %s", out);
	cr_assert_eq(ssh_calls(), 1, "expected one ssh run, got %d", ssh_calls());
	json_object_put(o);
	free(out);
	free(err);
}
