/* Every socket slotd binds (--socket, --socket-ro, --http unix:PATH) is
 * bound the same careful way: nothing but a stale socket is ever removed,
 * a live listener is never taken over (even with a full backlog), the
 * file is born with its final mode and gets --socket-group, and the
 * state lock is not opened through a symlink. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/daemon.h"

static struct test_daemon d;
static char dir[64];

static void scratch(void)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-sockets-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void cleanup(void)
{
	if (d.pid > 0)
		cr_expect_eq(test_daemon_stop(&d), 0, "slotd did not exit cleanly (its log is above)");
	test_rmtree(dir);
}

TestSuite(sockets, .init = scratch, .fini = cleanup, .timeout = 60);

/* Runs slotd with extra flags on private paths; returns its exit status
 * (it is expected to refuse to start) and its stderr in *err. */
static int run_refused(const char *const *extra, char **err)
{
	char sock[128], state[128];
	const char *argv[20] = { test_slotd_bin(), "--foreground", "--socket", sock,
				 "--state-dir", state };
	int n = 6;

	snprintf(sock, sizeof(sock), "%s/main.sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	for (int i = 0; extra[i] && n < 19; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	return test_run(argv, NULL, err);
}

/* A listening socket of the test's own at path (backlog given). */
static int listen_at(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", path,
		     strerror(errno));
	cr_assert_eq(listen(fd, backlog), 0);
	return fd;
}

Test(sockets, http_unix_never_removes_a_regular_file)
{
	char path[128], arg[140], *err = NULL, *content;
	const char *extra[] = { "--http", arg, NULL };
	FILE *f;
	int st;

	snprintf(path, sizeof(path), "%s/precious.txt", dir);
	snprintf(arg, sizeof(arg), "unix:%s", path);
	f = fopen(path, "w");
	fputs("keep me\n", f);
	fclose(f);
	st = run_refused(extra, &err);
	cr_expect_eq(st, 1, "expected start-up to fail (1), got %d; stderr: %s", st, err);
	cr_expect(err && strstr(err, "is not a socket; refusing to remove it"), "stderr: %s", err);
	content = test_slurp(path);
	cr_expect(content && !strcmp(content, "keep me\n"), "the file was touched: %s", content);
	free(content);
	free(err);
}

Test(sockets, http_unix_never_takes_over_a_live_socket)
{
	char path[128], arg[140], *err = NULL;
	const char *extra[] = { "--http", arg, NULL };
	int lfd, c, st;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(path, sizeof(path), "%s/other.sock", dir);
	snprintf(arg, sizeof(arg), "unix:%s", path);
	lfd = listen_at(path, 16);
	st = run_refused(extra, &err);
	cr_expect_eq(st, 1, "expected start-up to fail (1), got %d; stderr: %s", st, err);
	cr_expect(err && strstr(err, "already serving"), "stderr: %s", err);
	/* Still ours: a client reaches this listener, not a new one. */
	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_expect_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0, "the socket file is gone");
	close(c);
	close(lfd);
	free(err);
}

Test(sockets, a_live_listener_with_a_full_backlog_is_not_taken_for_stale)
{
	char path[128], *err = NULL;
	const char *extra[] = { "--socket-ro", path, NULL };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, fds[64], n = 0, st;
	time_t t0;

	snprintf(path, sizeof(path), "%s/busy.sock", dir);
	lfd = listen_at(path, 0);
	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Fill the backlog: the next blocking connect() would hang. */
	for (; n < 64; n++) {
		fds[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (connect(fds[n], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fds[n]);
			break;
		}
	}
	cr_assert_lt(n, 64, "the backlog never filled");
	t0 = time(NULL);
	st = run_refused(extra, &err);
	cr_expect_eq(st, 1, "expected a refusal (1), got %d (-1: it hung); stderr: %s", st, err);
	cr_expect_lt(time(NULL) - t0, 10, "the probe took %ld s", (long)(time(NULL) - t0));
	cr_expect(err && strstr(err, "already serving"), "stderr: %s", err);
	cr_expect_eq(access(path, F_OK), 0, "the live socket was removed");
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
	free(err);
}

Test(sockets, every_socket_gets_its_mode_and_the_socket_group)
{
	char ro[128], http[128], arg[140];
	const char *extra[] = { "--socket-ro", ro, "--http", arg, "--socket-group", "nogroup", NULL };
	struct group *g = getgrnam("nogroup");
	struct stat st;

	cr_assert_not_null(g, "this test needs the group nogroup");
	snprintf(ro, sizeof(ro), "%s/ro.sock", dir);
	snprintf(http, sizeof(http), "%s/http.sock", dir);
	snprintf(arg, sizeof(arg), "unix:%s", http);
	cr_assert_eq(test_daemon_start_in(&d, dir, extra), 0, "log: %s", test_slurp(d.log));
	for (int i = 0; i < 100 && access(http, F_OK); i++)
		usleep(10000);
	cr_assert_eq(stat(d.sock, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0660, "--socket mode %o", st.st_mode & 0777);
	cr_expect_eq(st.st_gid, g->gr_gid, "--socket group %u", (unsigned)st.st_gid);
	cr_assert_eq(stat(ro, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0666, "--socket-ro mode %o", st.st_mode & 0777);
	cr_expect_eq(st.st_gid, g->gr_gid, "--socket-ro group %u", (unsigned)st.st_gid);
	cr_assert_eq(stat(http, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0660, "--http unix: mode %o", st.st_mode & 0777);
	cr_expect_eq(st.st_gid, g->gr_gid, "--http unix: group %u", (unsigned)st.st_gid);
	cr_expect_eq(test_daemon_stop(&d), 0);
	cr_expect_neq(access(ro, F_OK), 0, "--socket-ro left behind");
	cr_expect_neq(access(http, F_OK), 0, "--http unix: socket left behind");
}

Test(sockets, a_socket_file_is_born_with_its_final_mode)
{
	char path[128], buf[4096];
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), attribs = 0;
	mode_t old;
	ssize_t n;

	/* A chmod after bind() shows as IN_ATTRIB; under umask 0 that
	 * window would be world-writable. */
	snprintf(path, sizeof(path), "%s/d", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_geq(inotify_add_watch(in, path, IN_ATTRIB | IN_CREATE), 0);
	old = umask(0);
	cr_assert_eq(test_daemon_start_in(&d, path, NULL), 0, "log: %s", test_slurp(d.log));
	umask(old);
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (void *)p;

			if ((e->mask & IN_ATTRIB) && e->len && !strcmp(e->name, "slotd.sock"))
				attribs++;
			p += sizeof(*e) + e->len;
		}
	}
	close(in);
	cr_expect_eq(attribs, 0, "the socket's attributes changed %d time(s) after bind", attribs);
	{
		struct stat st;

		cr_assert_eq(stat(d.sock, &st), 0);
		cr_expect_eq(st.st_mode & 0777, 0660, "mode %o under umask 0", st.st_mode & 0777);
	}
	cr_expect_eq(test_daemon_stop(&d), 0);
}

Test(sockets, the_state_lock_is_not_opened_through_a_symlink)
{
	char state[128], lock[160], victim[128], *err = NULL;
	const char *argv[] = { test_slotd_bin(), "--foreground", "--socket", "/tmp/slotd-lock-x.sock",
			       "--state-dir", state, NULL };
	int st;

	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(lock, sizeof(lock), "%s/slotd.lock", state);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	cr_assert_eq(mkdir(state, 0700), 0);
	cr_assert_eq(symlink(victim, lock), 0);
	st = test_run(argv, NULL, &err);
	cr_expect_eq(st, 1, "expected a refusal (1), got %d; stderr: %s", st, err);
	cr_expect(err && strstr(err, "symbolic link"), "stderr: %s", err);
	cr_expect_neq(access(victim, F_OK), 0, "slotd created the symlink's target");
	cr_expect_neq(access("/tmp/slotd-lock-x.sock", F_OK), 0, "a socket was left behind");
	free(err);
}
