/* daemon: slotd's process: configuration, listening socket, state
 * directory, signals and the systemd protocol. */
#ifndef SLOTD_DAEMON_H
#define SLOTD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define SLOTD_DEFAULT_SOCKET	"/run/slotd/slotd.sock"
#define SLOTD_DEFAULT_STATE_DIR	"/var/lib/slotd"

struct slotd_config {
	char *socket_path;
	char *state_dir;
	char *http_addr;
	char *http_token_file;
	char *log_file;
	char *socket_group;
	char *kvm_path;
	bool foreground;
	enum slog_level log_level;
	size_t max_message;
	size_t max_batch;
	unsigned max_conns;
	char **file_dirs;		/* --file-dir, NULL-terminated (or NULL) */
	size_t nfile_dirs;
	uint64_t max_vm_memory;		/* --max-vm-memory; 0: no limit */
	uint64_t max_memory;		/* --max-memory (all VMs); 0: no limit */
	char *runtime_dir;		/* --runtime-dir; NULL: next to the socket */
	char *runner_path;		/* --runner; NULL: found next to slotd */
	bool vms_stop_on_exit;		/* --vms-on-exit stop */
	char *socket_ro_path;		/* --socket-ro: read-only methods only */
	uint32_t *allow_uids;		/* --allow-uid (main socket peers) */
	size_t nallow_uids;
	uint32_t *allow_gids;		/* --allow-gid */
	size_t nallow_gids;
	unsigned idle_timeout_s;	/* --idle-timeout; 0: never */
	size_t max_output;		/* --max-output: one connection's replies */
	size_t max_output_total;	/* --max-output-total: all connections */
	unsigned http_max_conns;	/* --http-max-connections */
	size_t http_max_header;		/* --http-max-header: bytes of a head */
	unsigned http_header_timeout_s;	/* --http-header-timeout */
	unsigned http_body_timeout_s;	/* --http-body-timeout */
	bool idle_timeout_set;		/* --idle-timeout given (0 is a value) */
};

/* The longest line of a --config file, and the largest file. */
#define SLOTD_CONFIG_LINE_MAX	1024
#define SLOTD_CONFIG_FILE_MAX	(1 << 20)

/* Fills cfg from defaults, $SLOTD_SOCKET, --config FILE, then the other
 * flags (later wins).  Returns 0, 1 when --help/--version was printed, or
 * -EINVAL after printing why to stderr. */
int daemon_config_parse(struct slotd_config *cfg, int argc, char **argv);
void daemon_config_free(struct slotd_config *cfg);

/* The listening socket: one passed by systemd socket activation, else a
 * fresh bind at cfg->socket_path (refusing a live owner, removing a stale
 * file).  *owned says whether the path is ours to unlink at exit. */
int daemon_listen(const struct slotd_config *cfg, int *fd, bool *owned);

/* Binds cfg->socket_ro_path (mode 0666, group --socket-group) with the
 * checks of daemon_listen. */
int daemon_listen_ro(const struct slotd_config *cfg, int *fd);

/* Removes the socket files slotd bound (main_owned: --socket, ro_owned:
 * --socket-ro); a path another process serves is never ours. */
void daemon_unlink_sockets(const struct slotd_config *cfg, bool main_owned,
			   bool ro_owned);

struct rpc_server;
struct rpc_config;
/* Fills rc's limits from the flags. */
void daemon_config_rpc(const struct slotd_config *cfg, struct rpc_config *rc);
/* Hands the listening sockets to the server: *main_fd with the
 * --allow-uid/--allow-gid lists, *ro_fd (if >= 0) read-only, then --http.
 * Each fd is set to -1 once the server owns it. */
int daemon_rpc_listen(const struct slotd_config *cfg, struct rpc_server *srv,
		      int *main_fd, int *ro_fd);

/* Creates the state directory and takes its lock (one slotd per dir);
 * returns the lock fd or -errno. */
int daemon_state_dir_open(const char *dir);

#endif
