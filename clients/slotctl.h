/* slotctl: the command-line client of slotd.  Interface shared by the
 * clients/ C files: one file per noun (like kvmtool's builtin-*.c), the
 * connection, the option parser and the output renderer.  Helpers return
 * 0 or -errno; verb handlers return the process exit status. */
#ifndef SLOTD_CLIENTS_SLOTCTL_H
#define SLOTD_CLIENTS_SLOTCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <json-c/json.h>

#define SLOTCTL_DEFAULT_SOCKET	"/run/slotd/slotd.sock"
#define SLOTCTL_DEFAULT_TIMEOUT_MS	30000

#define SLOTCTL_EXIT_OK		0
#define SLOTCTL_EXIT_FAIL	1	/* RPC error, daemon unreachable */
#define SLOTCTL_EXIT_USAGE	2	/* bad command line */

#define SLOTCTL_MAX_OPTS	16

struct slotctl_conn;

/* Global options and the (lazily opened) connection to the daemon. */
struct slotctl {
	const char *socket;
	const char *host;	/* --host ssh://...: slotd on another host */
	bool json;
	int timeout_ms;
	bool timeout_set;	/* --timeout given explicitly */
	const char *request_id;	/* --request-id: sent with the call that changes */
	struct slotctl_conn *conn;
};

/* One --long option of a verb; arg is the metavar, NULL for a flag. */
struct slotctl_optdesc {
	const char *name;
	const char *arg;
	const char *help;
};

struct slotctl_verb;

/* A parsed command line after NOUN VERB: positionals and option values
 * (NULL when absent, "" for a given flag), indexed like verb->opts. */
struct slotctl_args {
	const struct slotctl_verb *verb;
	int argc;
	char **argv;
	const char *opt[SLOTCTL_MAX_OPTS];
};

typedef int (*slotctl_verb_fn)(struct slotctl *ctl,
			       const struct slotctl_args *a);

/* A verb: name NULL means the noun takes its arguments itself ("call"). */
struct slotctl_verb {
	const char *name;
	const char *method;	/* the JSON-RPC method it calls */
	const char *synopsis;	/* what follows the verb, for usage */
	const char *help;	/* one line */
	int min_args, max_args;	/* positional count; max -1: unbounded */
	const struct slotctl_optdesc *opts;	/* ends with { NULL } */
	slotctl_verb_fn run;	/* NULL ends a verb table */
};

struct slotctl_noun {
	const char *name;
	const char *help;
	const struct slotctl_verb *verbs;
};

extern const struct slotctl_noun slotctl_noun_daemon;
extern const struct slotctl_noun slotctl_noun_call;
extern const struct slotctl_noun slotctl_noun_vm;
extern const struct slotctl_noun slotctl_noun_memslot;
extern const struct slotctl_noun slotctl_noun_events;

/* cmd_vm_memory.c: the vm memory-read and memory-write verbs. */
extern const struct slotctl_optdesc slotctl_vm_memory_read_opts[];
extern const struct slotctl_optdesc slotctl_vm_memory_write_opts[];
/* vm memory-read NAME GPA LENGTH: hexdump, --raw bytes or --json. */
int slotctl_vm_memory_read(struct slotctl *ctl, const struct slotctl_args *a);
/* vm memory-write NAME GPA DATA: text, or hex digits with --hex. */
int slotctl_vm_memory_write(struct slotctl *ctl,
			    const struct slotctl_args *a);

/* cmd_discover.c: daemon discover [METHOD], a readable view of the API. */
int slotctl_daemon_discover(struct slotctl *ctl, const struct slotctl_args *a);

/* Value of option name of the current verb: NULL when not given. */
const char *slotctl_args_opt(const struct slotctl_args *a, const char *name);

/* conn.c: one JSON-RPC connection, one JSON text per line. */
/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
long long slotctl_now_ms(void);
int slotctl_conn_open(const char *path, int timeout_ms,
		      struct slotctl_conn **out);
void slotctl_conn_close(struct slotctl_conn *c);
/* The connection's socket (non-blocking). */
int slotctl_conn_fd(const struct slotctl_conn *c);
/* Sends a request (params is borrowed, may be NULL); *id gets its id. */
int slotctl_conn_send(struct slotctl_conn *c, const char *method,
		      json_object *params, int64_t *id, int timeout_ms);
/* Receives the next message (reply or notification) within timeout_ms;
 * -ETIMEDOUT, -ECONNRESET on EOF, -EBADMSG on a line that is not JSON. */
int slotctl_conn_recv(struct slotctl_conn *c, int timeout_ms,
		      json_object **msg);
/* Sends a request and returns the reply with its id, skipping
 * notifications; the whole exchange is bounded by timeout_ms. */
int slotctl_conn_call(struct slotctl_conn *c, const char *method,
		      json_object *params, int timeout_ms, json_object **reply);

/* ssh.c: --host ssh://[USER@]HOST[:PORT][/SOCKET]. */
struct slotctl_ssh_addr {
	char *buf;		/* the parts below point into it */
	const char *user;	/* NULL: ssh's default */
	const char *host;
	int port;		/* 0: ssh's default */
	char *socket;		/* the remote socket; NULL: its default */
};
/* Parses an ssh:// address; -EPROTONOSUPPORT for another scheme, -EINVAL
 * for a malformed one (free it with slotctl_ssh_addr_free either way). */
int slotctl_ssh_addr_parse(const char *url, struct slotctl_ssh_addr *h);
void slotctl_ssh_addr_free(struct slotctl_ssh_addr *h);
/* Starts ssh (or $SLOTCTL_SSH) running "slotctl dial-stdio" on the host;
 * returns our end of its stdin/stdout (non-blocking) or -errno. */
int slotctl_ssh_spawn(const struct slotctl_ssh_addr *h, pid_t *pid);
/* Waits up to 2 s for ssh to exit after its connection closed, then
 * ends it. */
void slotctl_ssh_reap(pid_t pid);
/* Opens a connection through ssh (see slotctl_ssh_spawn). */
int slotctl_conn_open_ssh(const struct slotctl_ssh_addr *h,
			  struct slotctl_conn **out);

/* dial.c: slotctl dial-stdio, the remote end of --host ssh://. */
extern const struct slotctl_noun slotctl_noun_dial_stdio;

/* True when errors are printed as JSON (--json). */
extern bool slotctl_json_errors;

/* rpc.c: calls as the verbs need them, reporting failures on stderr. */
/* Connects on first use; prints why it failed. */
int slotctl_connect(struct slotctl *ctl);
/* Whether method takes a request_id (--request-id is sent with it). */
bool slotctl_method_retryable(const char *method);
/* Calls method (params owned, may be NULL); *result is the result object
 * (caller puts it).  Returns an exit status, failures already printed. */
int slotctl_call(struct slotctl *ctl, const char *method, json_object *params,
		 json_object **result);
/* slotctl_call, then prints the result (--json or human). */
int slotctl_call_print(struct slotctl *ctl, const char *method,
		       json_object *params);
/* A verb without arguments: calls its method with {} and prints. */
int slotctl_verb_call(struct slotctl *ctl, const struct slotctl_args *a);
/* Prints a JSON-RPC error object as "slotctl: error CODE: MESSAGE". */
void slotctl_error_print(json_object *error);
/* Prints "slotctl: " + message on stderr. */
void slotctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* render.c */
/* Prints a result for people: aligned key/value lines, tables for arrays
 * of objects, nested objects indented. */
void slotctl_render_human(FILE *f, json_object *result);
/* Keeps only the non-zero counters of o.effect.kernel/engine (the schema's
 * Effect: deltas, where zero means nothing happened). */
void slotctl_render_effect_compact(json_object *o);
/* Prints obj as pretty JSON followed by a newline. */
void slotctl_render_json(FILE *f, json_object *obj);
/* A scalar's text for people: strings bare, null as "-". */
const char *slotctl_render_scalar(json_object *o);

/* base64.c */
/* Decodes standard base64 (padding optional) into a malloc'd buffer;
 * -EBADMSG on a character outside the alphabet. */
int slotctl_base64_decode(const char *s, unsigned char **out, size_t *len);
/* Encodes len bytes as padded base64; malloc'd string (NULL: no memory). */
char *slotctl_base64_encode(const unsigned char *in, size_t len);

/* parse.c: numbers on the command line. */
/* Decimal or 0x hex, with a K/M/G/T (KiB..TiB) suffix when sizes. */
int slotctl_parse_u64(const char *s, bool sizes, uint64_t *out);
/* "on"/"off" (also true/false, yes/no, 1/0). */
int slotctl_parse_onoff(const char *s, bool *out);
/* Parses text as JSON; an error message goes to *why (static). */
int slotctl_parse_json(const char *text, json_object **out, const char **why);
/* Adds params[key] = the number in text; prints why not and returns
 * -EINVAL/-ERANGE when it is not one. */
int slotctl_param_u64(json_object *params, const char *key, const char *text,
		      bool sizes);
/* Adds params[key] = true/false from "on"/"off"; prints why not. */
int slotctl_param_onoff(json_object *params, const char *key,
			const char *text);

#endif
