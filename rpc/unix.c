/* Binding a Unix listening socket safely, for every socket slotd binds
 * (--socket, --socket-ro, --http unix:PATH): it never removes anything
 * but a stale socket, never takes over a live one, and the socket file is
 * born with its final mode. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/durable.h"
#include "common/log.h"
#include "rpc/rpc.h"

/* 0 when nothing (or a stale socket, now removed) is at sa's path;
 * -EADDRINUSE when a live process listens there, even one whose backlog
 * is full (the probe does not block: EAGAIN means alive); -EEXIST for
 * anything that is not a socket. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r, e;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return -EADDRINUSE;
	if (e != ECONNREFUSED)
		return e == ENOENT ? 0 : -e;
	slog_info("removing stale socket %s", sa->sun_path);
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int group_lookup(const char *group, gid_t *gid)
{
	struct group *g = getgrnam(group);

	if (!g) {
		slog_error("socket group '%s' does not exist", group);
		return -ENOENT;
	}
	*gid = g->gr_gid;
	return 0;
}

static void log_prepare_error(const char *path, int r)
{
	if (r == -EADDRINUSE)
		slog_error("another process is already serving %s; refusing to start "
			   "(stop it first, or pick another path)", path);
	else if (r == -EEXIST)
		slog_error("%s exists and is not a socket; refusing to remove it", path);
	else
		slog_error("cannot prepare %s: %s", path, strerror(-r));
}

/* bind() with the umask that makes the file mode (the umask is process
 * wide; slotd binds only during start-up, before its loop runs). */
static int bind_with_mode(int fd, const struct sockaddr_un *sa, mode_t mode)
{
	mode_t old = umask(~mode & 0777);
	int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;

	umask(old);
	return r < 0 ? -e : 0;
}

int rpc_unix_listen(const char *path, mode_t mode, const char *group, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	gid_t gid = (gid_t)-1;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		slog_error("socket path %s is longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (group && (r = group_lookup(group, &gid)))
		return r;
	r = durable_mkdir_parents(path, 0755);
	if (!r)
		r = clear_stale(&sa);
	if (r) {
		log_prepare_error(path, r);
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = bind_with_mode(fd, &sa, mode);
	if (r) {
		slog_error("cannot serve %s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	/* Nobody can connect before listen(): the group changes first. */
	if ((group && lchown(path, (uid_t)-1, gid) < 0) || listen(fd, 128) < 0) {
		r = -errno;
		slog_error("cannot serve %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}
