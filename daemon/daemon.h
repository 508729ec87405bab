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
};

/* Fills cfg from defaults, $SLOTD_SOCKET, --config FILE, then the other
 * flags (later wins).  Returns 0, 1 when --help/--version was printed, or
 * -EINVAL after printing why to stderr. */
int daemon_config_parse(struct slotd_config *cfg, int argc, char **argv);
void daemon_config_free(struct slotd_config *cfg);

/* The listening socket: one passed by systemd socket activation, else a
 * fresh bind at cfg->socket_path (refusing a live owner, removing a stale
 * file).  *owned says whether the path is ours to unlink at exit. */
int daemon_listen(const struct slotd_config *cfg, int *fd, bool *owned);

/* Creates the state directory and takes its lock (one slotd per dir);
 * returns the lock fd or -errno. */
int daemon_state_dir_open(const char *dir);

#endif
