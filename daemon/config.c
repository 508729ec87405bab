/* Command line and configuration file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "rpc/rpc.h"
#include "vmm/types.h"

enum {
	OPT_SOCKET = 's', OPT_STATE_DIR = 'd', OPT_FOREGROUND = 'f',
	OPT_HELP = 'h', OPT_VERSION = 'V',
	OPT_HTTP = 256, OPT_HTTP_TOKEN, OPT_LOG_LEVEL, OPT_LOG_FILE, OPT_CONFIG,
	OPT_SOCKET_GROUP, OPT_MAX_MESSAGE, OPT_MAX_BATCH, OPT_MAX_CONNS, OPT_KVM,
	OPT_FILE_DIR, OPT_MAX_VM_MEMORY, OPT_MAX_MEMORY, OPT_RUNTIME_DIR, OPT_RUNNER,
	OPT_VMS_ON_EXIT, OPT_SOCKET_RO,
	OPT_ALLOW_UID, OPT_ALLOW_GID, OPT_IDLE_TIMEOUT, OPT_MAX_OUTPUT,
	OPT_MAX_OUTPUT_TOTAL, OPT_HTTP_MAX_CONNS, OPT_HTTP_MAX_HEADER,
	OPT_HTTP_HEADER_TIMEOUT, OPT_HTTP_BODY_TIMEOUT,
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
	{ "socket-ro",		required_argument, NULL, OPT_SOCKET_RO },
	{ "allow-uid",		required_argument, NULL, OPT_ALLOW_UID },
	{ "allow-gid",		required_argument, NULL, OPT_ALLOW_GID },
	{ "idle-timeout",	required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "max-output",		required_argument, NULL, OPT_MAX_OUTPUT },
	{ "max-output-total",	required_argument, NULL, OPT_MAX_OUTPUT_TOTAL },
	{ "http-max-connections", required_argument, NULL, OPT_HTTP_MAX_CONNS },
	{ "http-max-header",	required_argument, NULL, OPT_HTTP_MAX_HEADER },
	{ "http-header-timeout", required_argument, NULL, OPT_HTTP_HEADER_TIMEOUT },
	{ "http-body-timeout",	required_argument, NULL, OPT_HTTP_BODY_TIMEOUT },
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
"      --socket-ro PATH      also serve a read-only socket (mode 0666): only\n"
"                            methods that change nothing and read no guest\n"
"                            memory\n"
"  -d, --state-dir DIR       state directory (default " SLOTD_DEFAULT_STATE_DIR ")\n"
"      --http ADDR           also serve HTTP POST /rpc, GET /metrics, /healthz\n"
"                            on unix:PATH or HOST:PORT (loopback needs a token)\n"
"      --http-token-file F   bearer token required by the HTTP listener (one\n"
"                            line of 1..1024 visible ASCII characters; the\n"
"                            file must not be readable by others)\n"
"  -f, --foreground          do not detach (systemd runs slotd this way)\n"
"      --log-level LEVEL     error, warn, info (default) or debug\n"
"      --log-file FILE       log there instead of stderr; reopened on SIGHUP\n"
"      --config FILE         read KEY = VALUE lines; keys are these long\n"
"                            option names (foreground = true|false); flags\n"
"                            given later win\n"
"      --socket-group GROUP  group owning every socket slotd binds (0660)\n"
"      --allow-uid USER      on the main socket, serve only peers with this\n"
"                            uid (name or number; repeatable; root and\n"
"                            slotd's own uid are always served)\n"
"      --allow-gid GROUP     ... or with this primary or supplementary group\n"
"      --max-message BYTES   largest request line (default 1048576)\n"
"      --max-batch N         largest batch (default 256)\n"
"      --max-connections N   concurrent clients per socket (default 256)\n"
"      --max-output BYTES    unread replies one connection may hold; also\n"
"                            the largest reply (default 16777216)\n"
"      --max-output-total BYTES  unread replies of all connections of one\n"
"                            socket (default 67108864)\n"
"      --idle-timeout SEC    close a connection silent that long, unless it\n"
"                            subscribed to events (default 300; 0: never)\n"
"      --http-max-connections N  concurrent HTTP clients (default 64)\n"
"      --http-max-header BYTES   largest HTTP request head (default 8192)\n"
"      --http-header-timeout SEC time to send a request head (default 10)\n"
"      --http-body-timeout SEC   time to send a request body (default 30)\n"
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
"  -V, --version             print the version\n\n"
"Numbers are decimal (no sign, no leading zeros, no 0x); sizes may end in\n"
"K, M, G or T.  Bad flags or configuration exit with status 2.\n");
}

static int set_str(char **dst, const char *name, const char *v)
{
	if (!*v) {
		fprintf(stderr, "slotd: --%s: the value must not be empty\n", name);
		return -EINVAL;
	}
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

/* Strict decimal: digits only, no leading zeros, no sign or spaces. */
static int decimal(const char *v, unsigned long long *out)
{
	unsigned long long n = 0;

	if (!*v || (v[0] == '0' && v[1]))
		return -EINVAL;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (ULLONG_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (unsigned long long)(*v - '0');
	}
	*out = n;
	return 0;
}

static int parse_uint(const char *name, const char *v, unsigned long long min,
		      unsigned long long max, unsigned long long *out)
{
	if (decimal(v, out) || *out < min || *out > max) {
		fprintf(stderr, "slotd: --%s: '%s' is not a decimal number in %llu..%llu\n",
			name, v, min, max);
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
	size_t n = strspn(v, "0123456789");

	/* vmm_parse_size is decimal too; leading zeros are refused here. */
	if (n && !(v[0] == '0' && n > 1) && vmm_parse_size(v, out) == 0 && *out > 0)
		return 0;
	fprintf(stderr, "slotd: --%s: '%s' is not a size such as 4G or 512M\n", name, v);
	return -EINVAL;
}

/* Appends a uid or gid (a decimal number or a name) to a list. */
static int id_add(const char *name, const char *v, bool group, uint32_t **list,
		  size_t *n)
{
	unsigned long long id;
	uint32_t *l;

	if (decimal(v, &id) == 0 && id < UINT32_MAX) {
		/* a number */
	} else if (!group && getpwnam(v)) {
		id = getpwnam(v)->pw_uid;
	} else if (group && getgrnam(v)) {
		id = getgrnam(v)->gr_gid;
	} else {
		fprintf(stderr, "slotd: --%s: '%s' is neither a decimal %s nor a known %s name\n",
			name, v, group ? "gid" : "uid", group ? "group" : "user");
		return -EINVAL;
	}
	l = realloc(*list, (*n + 1) * sizeof(*l));
	if (!l)
		return -ENOMEM;
	l[(*n)++] = (uint32_t)id;
	*list = l;
	return 0;
}

/* true/false (yes/no) for a flag without argument set in the config file. */
static int parse_bool(const char *name, const char *v, bool *out)
{
	if (!v || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "false") || !strcmp(v, "no")) {
		*out = false;
		return 0;
	}
	fprintf(stderr, "slotd: %s: '%s' is not true, false, yes or no\n", name, v);
	return -EINVAL;
}

/* Numbers and sizes, by getopt value. */
static int apply_number(struct slotd_config *cfg, int opt, const char *name, const char *v)
{
	unsigned long long n;
	int r;

	switch (opt) {
	case OPT_MAX_MESSAGE:	  r = parse_uint(name, v, 1, 1ull << 30, &n); cfg->max_message = n; break;
	case OPT_MAX_BATCH:	  r = parse_uint(name, v, 1, 1 << 20, &n); cfg->max_batch = n; break;
	case OPT_MAX_CONNS:	  r = parse_uint(name, v, 1, 1 << 20, &n); cfg->max_conns = (unsigned)n; break;
	case OPT_MAX_OUTPUT:	  r = parse_uint(name, v, 4096, 1ull << 32, &n); cfg->max_output = n; break;
	case OPT_MAX_OUTPUT_TOTAL: r = parse_uint(name, v, 4096, 1ull << 40, &n); cfg->max_output_total = n; break;
	case OPT_IDLE_TIMEOUT:
		r = parse_uint(name, v, 0, 86400 * 365, &n);
		cfg->idle_timeout_s = (unsigned)n;
		cfg->idle_timeout_set = true;
		break;
	case OPT_HTTP_MAX_CONNS:  r = parse_uint(name, v, 1, 1 << 20, &n); cfg->http_max_conns = (unsigned)n; break;
	case OPT_HTTP_MAX_HEADER: r = parse_uint(name, v, 256, 1 << 20, &n); cfg->http_max_header = n; break;
	case OPT_HTTP_HEADER_TIMEOUT: r = parse_uint(name, v, 1, 3600, &n); cfg->http_header_timeout_s = (unsigned)n; break;
	case OPT_HTTP_BODY_TIMEOUT: r = parse_uint(name, v, 1, 3600, &n); cfg->http_body_timeout_s = (unsigned)n; break;
	case OPT_MAX_VM_MEMORY:	  return parse_size(name, v, &cfg->max_vm_memory);
	case OPT_MAX_MEMORY:	  return parse_size(name, v, &cfg->max_memory);
	default:		  return -EINVAL;
	}
	return r;
}

/* Applies one option by its getopt value (v is NULL for a bare flag). */
static int apply(struct slotd_config *cfg, int opt, const char *name, const char *v)
{
	switch (opt) {
	case OPT_SOCKET:	return set_str(&cfg->socket_path, name, v);
	case OPT_SOCKET_RO:	return set_str(&cfg->socket_ro_path, name, v);
	case OPT_STATE_DIR:	return set_str(&cfg->state_dir, name, v);
	case OPT_HTTP:		return set_str(&cfg->http_addr, name, v);
	case OPT_HTTP_TOKEN:	return set_str(&cfg->http_token_file, name, v);
	case OPT_LOG_FILE:	return set_str(&cfg->log_file, name, v);
	case OPT_SOCKET_GROUP:	return set_str(&cfg->socket_group, name, v);
	case OPT_KVM:		return set_str(&cfg->kvm_path, name, v);
	case OPT_FOREGROUND:	return parse_bool(name, v, &cfg->foreground);
	case OPT_ALLOW_UID:	return id_add(name, v, false, &cfg->allow_uids, &cfg->nallow_uids);
	case OPT_ALLOW_GID:	return id_add(name, v, true, &cfg->allow_gids, &cfg->nallow_gids);
	case OPT_FILE_DIR:
		if (!*v) {
			fprintf(stderr, "slotd: --%s: the value must not be empty\n", name);
			return -EINVAL;
		}
		return file_dir_add(cfg, v);
	case OPT_RUNTIME_DIR:	return set_str(&cfg->runtime_dir, name, v);
	case OPT_RUNNER:	return set_str(&cfg->runner_path, name, v);
	case OPT_VMS_ON_EXIT:
		if (v && (!strcmp(v, "keep") || !strcmp(v, "stop"))) {
			cfg->vms_stop_on_exit = !strcmp(v, "stop");
			return 0;
		}
		fprintf(stderr, "slotd: --vms-on-exit: '%s' is not keep or stop\n", v ? v : "");
		return -EINVAL;
	case OPT_LOG_LEVEL:
		if (slog_level_parse(v, &cfg->log_level) == 0)
			return 0;
		fprintf(stderr, "slotd: --log-level: '%s' is not one of error, warn, info, debug\n", v);
		return -EINVAL;
	}
	return apply_number(cfg, opt, name, v);
}

static const struct option *option_find(const char *name)
{
	for (const struct option *o = options; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

/* The long name of an option, by getopt value (-s gives "socket"). */
static const char *option_name(int opt)
{
	for (const struct option *o = options; o->name; o++)
		if (o->val == opt)
			return o->name;
	return "?";
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

/* One KEY = VALUE line (already trimmed and NUL-free). */
static int config_line(struct slotd_config *cfg, const char *path, int lineno, char *s)
{
	char *eq = strchr(s, '='), *key, *val = NULL;
	const struct option *o;

	if (eq) {
		*eq = 0;
		val = trim(eq + 1);
	}
	key = trim(s);
	o = option_find(key);
	if (!o || o->val == OPT_CONFIG || o->val == OPT_HELP || o->val == OPT_VERSION) {
		fprintf(stderr, "slotd: %s:%d: unknown key '%s'\n", path, lineno, key);
		return -EINVAL;
	}
	if (o->has_arg == required_argument && (!val || !*val)) {
		fprintf(stderr, "slotd: %s:%d: missing value for '%s'\n", path, lineno, key);
		return -EINVAL;
	}
	if (apply(cfg, o->val, key, val)) {
		fprintf(stderr, "slotd: %s:%d: the value of '%s' is refused (see above)\n",
			path, lineno, key);
		return -EINVAL;
	}
	return 0;
}

/* Reads the whole config file: a regular file of at most
 * SLOTD_CONFIG_FILE_MAX bytes (a directory or a FIFO is refused). */
static char *config_slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "slotd: --config %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "slotd: --config %s: not a regular file\n", path);
		goto out;
	}
	if (st.st_size > SLOTD_CONFIG_FILE_MAX) {
		fprintf(stderr, "slotd: --config %s: larger than %d bytes\n", path,
			SLOTD_CONFIG_FILE_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf ? pread(fd, buf, (size_t)st.st_size, 0) : -1;
	if (n != st.st_size) {
		fprintf(stderr, "slotd: --config %s: cannot read it\n", path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = 0;
	*len = (size_t)n;
out:
	close(fd);
	return buf;
}

/* Reads KEY = VALUE lines ('#' comments); keys are long option names.
 * A NUL byte or a line longer than SLOTD_CONFIG_LINE_MAX is refused, never
 * cut or split. */
static int config_file_read(struct slotd_config *cfg, const char *path)
{
	size_t len = 0, off = 0;
	char *buf = config_slurp(path, &len);
	int lineno = 0, r = 0;

	if (!buf)
		return -EINVAL;
	if (memchr(buf, 0, len)) {
		char *nul = memchr(buf, 0, len);
		int at = 1;

		for (char *p = buf; p < nul; p++)
			at += *p == '\n';
		fprintf(stderr, "slotd: %s:%d: a NUL byte; the file must be text\n", path, at);
		r = -EINVAL;
	}
	while (!r && off < len) {
		char *line = buf + off, *nl = memchr(line, '\n', len - off), *s;
		size_t n = nl ? (size_t)(nl - line) : len - off;

		lineno++;
		off += n + (nl != NULL);
		if (n > SLOTD_CONFIG_LINE_MAX) {
			fprintf(stderr, "slotd: %s:%d: line longer than %d bytes\n", path, lineno,
				SLOTD_CONFIG_LINE_MAX);
			r = -EINVAL;
			break;
		}
		line[n] = 0;
		s = trim(line);
		if (*s && *s != '#')
			r = config_line(cfg, path, lineno, s);
	}
	free(buf);
	return r;
}

/* Checks what no single flag can: the token file's contents, limits that
 * depend on each other. */
static int config_check(const struct slotd_config *cfg)
{
	char why[160], *token;

	if (cfg->http_token_file) {
		if (rpc_token_read(cfg->http_token_file, &token, why, sizeof(why))) {
			fprintf(stderr, "slotd: --http-token-file %s: %s\n",
				cfg->http_token_file, why);
			return -EINVAL;
		}
		free(token);
	}
	if (cfg->max_output && cfg->max_output_total &&
	    cfg->max_output_total < cfg->max_output) {
		fprintf(stderr, "slotd: --max-output-total must be at least --max-output\n");
		return -EINVAL;
	}
	if (cfg->socket_ro_path && !strcmp(cfg->socket_ro_path, cfg->socket_path)) {
		fprintf(stderr, "slotd: --socket-ro must differ from --socket\n");
		return -EINVAL;
	}
	return 0;
}

static int defaults(struct slotd_config *cfg)
{
	const char *env = getenv("SLOTD_SOCKET");

	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = SLOG_INFO;
	if (set_str(&cfg->socket_path, "socket", env && *env ? env : SLOTD_DEFAULT_SOCKET) ||
	    set_str(&cfg->state_dir, "state-dir", SLOTD_DEFAULT_STATE_DIR))
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
	optind = 0;	/* 0: a full reset of getopt, even after a cut-off scan */
	while ((opt = getopt_long(argc, argv, "s:d:fhV", options, &idx)) != -1)
		if (opt == OPT_CONFIG && config_file_read(cfg, optarg))
			return -EINVAL;
	opterr = 1;
	optind = 0;
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
		if (opt != OPT_CONFIG && apply(cfg, opt, option_name(opt), optarg))
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "slotd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return config_check(cfg);
}

void daemon_config_rpc(const struct slotd_config *cfg, struct rpc_config *rc)
{
	rc->max_message = cfg->max_message;
	rc->max_batch = cfg->max_batch;
	rc->max_conns = cfg->max_conns;
	rc->max_outbuf = cfg->max_output;
	rc->max_output_total = cfg->max_output_total;
	rc->idle_timeout_s = !cfg->idle_timeout_set ? 0 :
			     cfg->idle_timeout_s ? (int)cfg->idle_timeout_s : -1;
	rc->http_max_conns = cfg->http_max_conns;
	rc->http_max_header = cfg->http_max_header;
	rc->http_header_timeout_s = cfg->http_header_timeout_s;
	rc->http_body_timeout_s = cfg->http_body_timeout_s;
	rc->socket_group = cfg->socket_group;
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
	free(cfg->socket_ro_path);
	free(cfg->allow_uids);
	free(cfg->allow_gids);
	for (size_t i = 0; i < cfg->nfile_dirs; i++)
		free(cfg->file_dirs[i]);
	free(cfg->file_dirs);
	memset(cfg, 0, sizeof(*cfg));
}
