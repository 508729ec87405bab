/* The listening socket and the state directory lock. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon/daemon.h"

/* mkdir -p for the parent directories of path. */
static int mkdir_parents(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

/* 0 when nothing (or a stale socket, now removed) is at path; -EADDRINUSE
 * when a live process accepts there; -EEXIST for a non-socket file. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0)
		return -EADDRINUSE;
	slog_info("removing stale socket %s", sa->sun_path);
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int socket_group_set(const char *path, const char *group)
{
	struct group *g = getgrnam(group);

	if (!g) {
		slog_error("socket group '%s' does not exist", group);
		return -ENOENT;
	}
	if (chown(path, (uid_t)-1, g->gr_gid) < 0) {
		slog_error("chown %s to group %s: %s", path, group, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Binds a new socket at cfg->socket_path with mode 0660. */
static int bind_own(const struct slotd_config *cfg, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
		slog_error("socket path %s is longer than %zu bytes", cfg->socket_path,
			   sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, cfg->socket_path);
	r = mkdir_parents(cfg->socket_path, 0755);
	if (r == 0)
		r = clear_stale(&sa);
	if (r == -EADDRINUSE) {
		slog_error("another slotd is already serving %s; refusing to start "
			   "(stop it first, or pick another --socket)", sa.sun_path);
		return r;
	}
	if (r == -EEXIST) {
		slog_error("%s exists and is not a socket; refusing to remove it", sa.sun_path);
		return r;
	}
	if (r) {
		slog_error("cannot prepare %s: %s", sa.sun_path, strerror(-r));
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(sa.sun_path, 0660) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		slog_error("cannot serve %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return r;
	}
	if (cfg->socket_group && socket_group_set(sa.sun_path, cfg->socket_group)) {
		close(fd);
		unlink(sa.sun_path);
		return -EPERM;
	}
	*out = fd;
	return 0;
}

int daemon_listen(const struct slotd_config *cfg, int *fd, bool *owned)
{
	int n = sd_listen_fds(1), r;

	if (n > 1)
		slog_warn("socket activation passed %d sockets; serving the first", n);
	if (n >= 1) {
		if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
			slog_error("the socket passed by systemd is not a listening "
				   "Unix stream socket");
			return -EINVAL;
		}
		slog_info("serving the socket passed by systemd");
		*fd = SD_LISTEN_FDS_START;
		*owned = false;
		return 0;
	}
	r = bind_own(cfg, fd);
	*owned = r == 0;	/* only a path we bound is ours to remove */
	return r;
}

int daemon_state_dir_open(const char *dir)
{
	char lock[PATH_MAX];
	int fd, r;

	if (snprintf(lock, sizeof(lock), "%s/slotd.lock", dir) >= (int)sizeof(lock))
		return -ENAMETOOLONG;
	r = mkdir_parents(lock, 0700);
	if (r) {
		slog_error("cannot create state directory %s: %s", dir, strerror(-r));
		return r;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		slog_error("cannot open %s: %s", lock, strerror(errno));
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		slog_error("state directory %s is in use by another slotd", dir);
		close(fd);
		return r == -EWOULDBLOCK ? -EBUSY : r;
	}
	return fd;
}
