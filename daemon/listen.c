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

#include "common/durable.h"
#include "daemon/daemon.h"
#include "rpc/rpc.h"

int daemon_listen_ro(const struct slotd_config *cfg, int *fd)
{
	/* World-connectable, as libvirt's libvirt-sock-ro: it serves only
	 * what changes nothing and reveals no guest memory. */
	return rpc_unix_listen(cfg->socket_ro_path, 0666, cfg->socket_group, fd);
}

void daemon_unlink_sockets(const struct slotd_config *cfg, bool main_owned,
			   bool ro_owned)
{
	if (main_owned)
		unlink(cfg->socket_path);
	if (ro_owned && cfg->socket_ro_path)
		unlink(cfg->socket_ro_path);
}

int daemon_rpc_listen(const struct slotd_config *cfg, struct rpc_server *srv,
		      int *main_fd, int *ro_fd)
{
	const struct rpc_listen_opts main_opts = {
		.allow_uids = cfg->allow_uids, .nallow_uids = cfg->nallow_uids,
		.allow_gids = cfg->allow_gids, .nallow_gids = cfg->nallow_gids,
	}, ro_opts = { .read_only = true };
	int r = rpc_server_listen_ex(srv, *main_fd, &main_opts);

	if (r)
		return r;
	*main_fd = -1;	/* the server owns it now */
	if (*ro_fd >= 0) {
		r = rpc_server_listen_ex(srv, *ro_fd, &ro_opts);
		if (r)
			return r;
		*ro_fd = -1;
	}
	if (cfg->nallow_uids || cfg->nallow_gids)
		slog_info("main socket: serving only root, uid %u, %zu more uid(s) and "
			  "%zu gid(s)", (unsigned)geteuid(), cfg->nallow_uids, cfg->nallow_gids);
	if (cfg->http_addr)
		r = rpc_server_http_listen(srv, cfg->http_addr, cfg->http_token_file);
	return r;
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
	r = rpc_unix_listen(cfg->socket_path, 0660, cfg->socket_group, fd);
	*owned = r == 0;	/* only a path we bound is ours to remove */
	return r;
}

int daemon_state_dir_open(const char *dir)
{
	char lock[PATH_MAX];
	int fd, r;

	if (snprintf(lock, sizeof(lock), "%s/slotd.lock", dir) >= (int)sizeof(lock))
		return -ENAMETOOLONG;
	r = durable_mkdir_parents(lock, 0700);
	if (r) {
		slog_error("cannot create state directory %s: %s", dir, strerror(-r));
		return r;
	}
	/* Not through a symlink: a planted one would make us create or
	 * lock a file elsewhere. */
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		slog_error("cannot open %s: %s", lock, errno == ELOOP ?
			   "it is a symbolic link; slotd does not follow one there" :
			   strerror(errno));
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
