/* Command line and configuration file. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "vmm/types.h"

enum {
	OPT_SOCKET = 's', OPT_STATE_DIR = 'd', OPT_FOREGROUND = 'f',
	OPT_HELP = 'h', OPT_VERSION = 'V',
	OPT_HTTP = 256, OPT_HTTP_TOKEN, OPT_LOG_LEVEL, OPT_LOG_FILE, OPT_CONFIG,
	OPT_SOCKET_GROUP, OPT_MAX_MESSAGE, OPT_MAX_BATCH, OPT_MAX_CONNS, OPT_KVM,
	OPT_FILE_DIR, OPT_MAX_VM_MEMORY, OPT_MAX_MEMORY, OPT_RUNTIME_DIR, OPT_RUNNER,
	OPT_VMS_ON_EXIT,
};

static const struct option options[] = {
	{ "socket",		required_argument, NULL, OPT_SOCKET },
	{ "state-dir",		required_argument, NULL, OPT_STATE_DIR },
	{ "http",		required_argument, NULL, OPT_HTTP },
	{ "http-token-file",	required_argument, NULL, OPT_HTTP_TOKEN },
	{ "foreground",		no_argument,	   NULL, OPT_FOREGROUND },
	{ "log-level",		required_argument, NULL, OPT_LOG_LEVEL },
	{ "log-file",		required_argument, NULL, OPT_LOG_FILE },
	{ "config",		required_argument, NULL, OPT_CONFIG },
	{ "socket-group",	required_argument, NULL, OPT_SOCKET_GROUP },
	{ "max-message",	required_argument, NULL, OPT_MAX_MESSAGE },
	{ "max-batch",		required_argument, NULL, OPT_MAX_BATCH },
	{ "max-connections",	required_argument, NULL, OPT_MAX_CONNS },
	{ "kvm-device",		required_argument, NULL, OPT_KVM },
	{ "file-dir",		required_argument, NULL, OPT_FILE_DIR },
	{ "max-vm-memory",	required_argument, NULL, OPT_MAX_VM_MEMORY },
	{ "max-memory",		required_argument, NULL, OPT_MAX_MEMORY },
	{ "runtime-dir",	required_argument, NULL, OPT_RUNTIME_DIR },
	{ "runner",		required_argument, NULL, OPT_RUNNER },
	{ "vms-on-exit",	required_argument, NULL, OPT_VMS_ON_EXIT },
	{ "help",		no_argument,	   NULL, OPT_HELP },
	{ "version",		no_argument,	   NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: slotd [OPTIONS]\n"
"KVM VMM daemon: hosts VMs and changes their memslots over JSON-RPC 2.0.\n\n"
"  -s, --socket PATH         Unix socket to serve (default $SLOTD_SOCKET or\n"
"                            " SLOTD_DEFAULT_SOCKET ")\n"
"  -d, --state-dir DIR       state directory (default " SLOTD_DEFAULT_STATE_DIR ")\n"
"      --http ADDR           also serve HTTP POST /rpc, GET /metrics, /healthz\n"
"                            on unix:PATH or HOST:PORT (loopback needs a token)\n"
"      --http-token-file F   bearer token required by the HTTP listener\n"
"  -f, --foreground          do not detach (systemd runs slotd this way)\n"
"      --log-level LEVEL     error, warn, info (default) or debug\n"
"      --log-file FILE       log there instead of stderr; reopened on SIGHUP\n"
"      --config FILE         read KEY = VALUE lines; keys are these long\n"
"                            option names; flags given later win\n"
"      --socket-group GROUP  group owning the socket (mode 0660)\n"
"      --max-message BYTES   largest request line (default 1048576)\n"
"      --max-batch N         largest batch (default 256)\n"
"      --max-connections N   concurrent clients (default 256)\n"
"      --kvm-device PATH     KVM device (default /dev/kvm)\n"
"      --file-dir DIR        a directory file-backed memslots may map files\n"
"                            from (repeatable; none: file backings refused)\n"
"      --max-vm-memory SIZE  memory of all memslots of one VM (e.g. 8G;\n"
"                            default: no limit)\n"
"      --max-memory SIZE     memory of all VMs together (default: no limit)\n"
"      --runtime-dir DIR     the VMs' runner sockets (default: runners/ next\n"
"                            to the socket); a restarted slotd finds them there\n"
"      --runner PATH         the slotd-runner executable (default: next to\n"
"                            slotd, or ../libexec/slotd-runner)\n"
"      --vms-on-exit WHAT    keep (default): guests run on when slotd exits or\n"
"                            restarts; stop: slotd ends them when it exits\n"
"  -h, --help                this help\n"
"  -V, --version             print the version\n");
}

static int set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int parse_uint(const char *name, const char *v, unsigned long long max,
		      unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 0);
	if (errno || end == v || *end || *v == '-' || *out == 0 || *out > max) {
		fprintf(stderr, "slotd: --%s: '%s' is not a number in 1..%llu\n",
			name, v, max);
		return -EINVAL;
	}
	return 0;
}

/* Appends dir to the NULL-terminated --file-dir list. */
static int file_dir_add(struct slotd_config *cfg, const char *dir)
{
	char **v = realloc(cfg->file_dirs, (cfg->nfile_dirs + 2) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	cfg->file_dirs = v;
	v[cfg->nfile_dirs] = strdup(dir);
	if (!v[cfg->nfile_dirs])
		return -ENOMEM;
	v[++cfg->nfile_dirs] = NULL;
	return 0;
}

static int parse_size(const char *name, const char *v, uint64_t *out)
{
	if (vmm_parse_size(v, out) == 0 && *out > 0)
		return 0;
	fprintf(stderr, "slotd: --%s: '%s' is not a size such as 4G or 512M\n", name, v);
	return -EINVAL;
}

/* Applies one option by its getopt value. */
static int apply(struct slotd_config *cfg, int opt, const char *name, const char *v)
{
	unsigned long long n;

	switch (opt) {
	case OPT_SOCKET:	return set_str(&cfg->socket_path, v);
	case OPT_STATE_DIR:	return set_str(&cfg->state_dir, v);
	case OPT_HTTP:		return set_str(&cfg->http_addr, v);
	case OPT_HTTP_TOKEN:	return set_str(&cfg->http_token_file, v);
	case OPT_LOG_FILE:	return set_str(&cfg->log_file, v);
	case OPT_SOCKET_GROUP:	return set_str(&cfg->socket_group, v);
	case OPT_KVM:		return set_str(&cfg->kvm_path, v);
	case OPT_FOREGROUND:	cfg->foreground = true; return 0;
	case OPT_FILE_DIR:	return file_dir_add(cfg, v);
	case OPT_MAX_VM_MEMORY:	return parse_size(name, v, &cfg->max_vm_memory);
	case OPT_MAX_MEMORY:	return parse_size(name, v, &cfg->max_memory);
	case OPT_RUNTIME_DIR:	return set_str(&cfg->runtime_dir, v);
	case OPT_RUNNER:	return set_str(&cfg->runner_path, v);
	case OPT_VMS_ON_EXIT:
		if (!strcmp(v, "keep") || !strcmp(v, "stop")) {
			cfg->vms_stop_on_exit = !strcmp(v, "stop");
			return 0;
		}
		fprintf(stderr, "slotd: --vms-on-exit: '%s' is not keep or stop\n", v);
		return -EINVAL;
	case OPT_LOG_LEVEL:
		if (slog_level_parse(v, &cfg->log_level) == 0)
			return 0;
		fprintf(stderr, "slotd: --log-level: '%s' is not one of error, warn, info, debug\n", v);
		return -EINVAL;
	case OPT_MAX_MESSAGE:
		if (parse_uint(name, v, 1ull << 30, &n))
			return -EINVAL;
		cfg->max_message = n;
		return 0;
	case OPT_MAX_BATCH:
		if (parse_uint(name, v, 1 << 20, &n))
			return -EINVAL;
		cfg->max_batch = n;
		return 0;
	case OPT_MAX_CONNS:
		if (parse_uint(name, v, 1 << 20, &n))
			return -EINVAL;
		cfg->max_conns = (unsigned)n;
		return 0;
	}
	return -EINVAL;
}

static const struct option *option_find(const char *name)
{
	for (const struct option *o = options; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && strchr(" \t\r\n", e[-1]))
		*--e = 0;
	return s;
}

/* Reads KEY = VALUE lines ('#' comments); keys are long option names. */
static int config_file_read(struct slotd_config *cfg, const char *path)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	int lineno = 0, r = 0;

	if (!f) {
		fprintf(stderr, "slotd: --config %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (!r && fgets(line, sizeof(line), f)) {
		char *eq, *key, *val = NULL, *s = trim(line);
		const struct option *o;

		lineno++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (eq) {
			*eq = 0;
			val = trim(eq + 1);
		}
		key = trim(s);
		o = option_find(key);
		if (!o || o->val == OPT_CONFIG || o->val == OPT_HELP || o->val == OPT_VERSION ||
		    (o->has_arg == required_argument && (!val || !*val))) {
			fprintf(stderr, "slotd: %s:%d: %s '%s'\n", path, lineno,
				o ? "missing value for" : "unknown key", key);
			r = -EINVAL;
		} else {
			r = apply(cfg, o->val, key, val ? val : "");
		}
	}
	fclose(f);
	return r;
}

static int defaults(struct slotd_config *cfg)
{
	const char *env = getenv("SLOTD_SOCKET");

	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = SLOG_INFO;
	if (set_str(&cfg->socket_path, env && *env ? env : SLOTD_DEFAULT_SOCKET) ||
	    set_str(&cfg->state_dir, SLOTD_DEFAULT_STATE_DIR))
		return -ENOMEM;
	return 0;
}

int daemon_config_parse(struct slotd_config *cfg, int argc, char **argv)
{
	int opt, idx;

	if (defaults(cfg))
		return -ENOMEM;
	/* First pass: only --config, so that later flags override the file. */
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:d:fhV", options, &idx)) != -1)
		if (opt == OPT_CONFIG && config_file_read(cfg, optarg))
			return -EINVAL;
	opterr = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:d:fhV", options, &idx)) != -1) {
		if (opt == OPT_HELP) {
			usage(stdout);
			return 1;
		}
		if (opt == OPT_VERSION) {
			printf("slotd %s (%s)\n", SLOTD_VERSION, SLOTD_GIT_REV);
			return 1;
		}
		if (opt == '?' || opt == ':') {
			usage(stderr);
			return -EINVAL;
		}
		if (opt != OPT_CONFIG && apply(cfg, opt, options[idx].name, optarg))
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "slotd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

void daemon_config_free(struct slotd_config *cfg)
{
	free(cfg->socket_path);
	free(cfg->state_dir);
	free(cfg->http_addr);
	free(cfg->http_token_file);
	free(cfg->log_file);
	free(cfg->socket_group);
	free(cfg->kvm_path);
	free(cfg->runtime_dir);
	free(cfg->runner_path);
	for (size_t i = 0; i < cfg->nfile_dirs; i++)
		free(cfg->file_dirs[i]);
	free(cfg->file_dirs);
	memset(cfg, 0, sizeof(*cfg));
}
