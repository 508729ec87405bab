/* rpc: JSON-RPC 2.0 over newline-delimited Unix stream sockets (libevent +
 * json-c).  Turns JSON into typed calls; json-c objects stay in this module.
 * Functions return 0 or -errno. */
#ifndef SLOTD_RPC_H
#define SLOTD_RPC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

struct event_base;
struct ctl;
struct rpc_server;
struct rpc_call;

/* JSON-RPC 2.0 codes. */
#define RPC_PARSE_ERROR		-32700
#define RPC_INVALID_REQUEST	-32600
#define RPC_METHOD_NOT_FOUND	-32601
#define RPC_INVALID_PARAMS	-32602
#define RPC_INTERNAL_ERROR	-32603
/* slotd application codes (documented in schemas/openrpc.json). */
#define RPC_ERR_KVM_UNAVAILABLE	-32001	/* /dev/kvm missing or not permitted */
#define RPC_ERR_NOT_FOUND	-32002	/* no such VM, memslot, ... */
#define RPC_ERR_EXISTS		-32003	/* name or id already taken, overlap */
#define RPC_ERR_BAD_STATE	-32004	/* impossible lifecycle transition */
#define RPC_ERR_KERNEL		-32005	/* KVM refused the operation */
#define RPC_ERR_LIMIT		-32006	/* a configured or kernel limit */
#define RPC_ERR_NOT_PERMITTED	-32007	/* forbidden by VM type or quirk rules */
#define RPC_ERR_UNSUPPORTED	-32008	/* the host lacks a capability */
#define RPC_ERR_OVERLOADED	-32009	/* too many connections */
#define RPC_ERR_STATE_IO	-32010	/* state could not be written */
#define RPC_ERR_BACKING		-32011	/* guest memory's backing failed (SIGBUS) */
#define RPC_ERR_DENIED		-32012	/* not permitted on this connection */
#define RPC_ERR_IN_DOUBT	-32013	/* a retry of a call whose reply was lost */

/* A handler gets the call and its (schema-validated) params, which may be
 * NULL when the method takes none.  It returns 0 with *result set (a new
 * reference, or NULL for JSON null), or -errno after rpc_call_error(). */
typedef int (*rpc_handler_fn)(struct rpc_call *call, json_object *params,
			      json_object **result);

struct rpc_method {
	const char *name;
	rpc_handler_fn handler;
};

struct rpc_config {
	size_t max_message;	/* bytes in one line; default 1 MiB */
	size_t max_batch;	/* entries in one batch; default 256 */
	unsigned max_conns;	/* concurrent connections; default 256 */
	size_t max_outbuf;	/* unsent reply bytes one connection may
				 * hold, and the largest reply; default
				 * 16 MiB */
	size_t max_output_total; /* unsent reply bytes of all connections
				 * of one listener; default 64 MiB */
	int idle_timeout_s;	/* close a stream connection silent that
				 * long (not while subscribed to events);
				 * 0: default 300 s; < 0: never */
	unsigned http_max_conns;	/* default 64 */
	size_t http_max_header;		/* request head bytes; default 8 KiB */
	unsigned http_header_timeout_s;	/* default 10 */
	unsigned http_body_timeout_s;	/* default 30 */
	const char *openrpc;	/* the OpenRPC document (JSON text); NULL:
				 * the one built into slotd */
	struct ctl *ctl;	/* the control plane the vm.* and memslot.*
				 * methods drive */
	const char *socket_group; /* group of an HTTP unix: socket, or NULL */
	void *app;		/* handed to handlers via rpc_call_app() */
};

int rpc_server_create(struct event_base *base, const struct rpc_config *cfg,
		      struct rpc_server **out);
void rpc_server_destroy(struct rpc_server *srv);

/* Adds methods to the dispatch table (the array must outlive the server). */
int rpc_server_register(struct rpc_server *srv, const struct rpc_method *m,
			size_t n);
/* Adds the daemon.*, rpc.* and events.* methods. */
int rpc_methods_daemon_register(struct rpc_server *srv);
/* Adds every method slotd serves (what the daemon calls). */
int rpc_methods_register_all(struct rpc_server *srv);

/* Serves a listening stream socket; the server owns fd from now on. */
int rpc_server_listen(struct rpc_server *srv, int fd);

/* How a listening stream socket serves (rpc_server_listen_ex). */
struct rpc_listen_opts {
	bool read_only;		/* only methods that change nothing (and read
				 * no guest memory); others get -32011 */
	const uint32_t *allow_uids;	/* when either list is given, only peers
					 * (SO_PEERCRED) with one of these */
	size_t nallow_uids;		/* uids, or with one of the gids as
					 * primary or supplementary group, */
	const uint32_t *allow_gids;	/* are served (root and slotd's own
					 * uid always are); others get -32011 */
	size_t nallow_gids;
	const char *what;	/* for logs; default "socket" */
};
int rpc_server_listen_ex(struct rpc_server *srv, int fd,
			 const struct rpc_listen_opts *o);
/* Serves HTTP on addr ("unix:PATH" or loopback "HOST:PORT"; TCP needs a
 * token file): POST /rpc, GET /metrics, GET /healthz. */
int rpc_server_http_listen(struct rpc_server *srv, const char *addr,
			   const char *token_file);
/* Binds and listens on a Unix stream socket at path, created with mode
 * (never another for a moment) and, when group is not NULL, that group.
 * Parent directories are made; a stale socket is removed; anything else
 * at path, or a live listener (even one with a full backlog), is refused
 * (-EEXIST, -EADDRINUSE), logged.  *out gets the fd. */
int rpc_unix_listen(const char *path, mode_t mode, const char *group, int *out);

/* Reads a bearer token file strictly: a regular file not readable or
 * writable by others, holding one line of 1..RPC_TOKEN_MAX visible ASCII
 * characters (a final newline is allowed).  0 with *out malloc'd, or
 * -errno with why set; a token is never cut. */
#define RPC_TOKEN_MAX	1024
int rpc_token_read(const char *path, char **out, char *why, size_t whylen);

/* Stops accepting; established connections keep being served. */
void rpc_server_stop_listening(struct rpc_server *srv);
/* Begins a graceful stop (after rpc_server_stop_listening): each stream
 * connection is read only up to the request bytes already sent when it
 * is called (the requests in flight; a line begun then is read to its
 * end), and no further. */
void rpc_server_drain_begin(struct rpc_server *srv);
/* True once every request in flight is answered and every reply sent.
 * With deadline set, nothing more is read or answered, and a connection
 * keeps only the rest of the line it is in the middle of sending (no line
 * is ever cut; the write timeout, 30 s, still drops a client that stopped
 * reading); true once those are sent too. */
bool rpc_server_drained(struct rpc_server *srv, bool deadline);

/* Connections still open. */
unsigned rpc_server_conn_count(const struct rpc_server *srv);
/* True when no client has unread request bytes or unwritten replies. */
bool rpc_server_flushed(const struct rpc_server *srv);

/* Handles one JSON text as received from a client.  Returns the reply text
 * (malloc'd, no trailing newline; strict JSON in UTF-8, at most
 * cfg.max_outbuf bytes) or NULL when nothing is to be sent
 * (notifications).  conn_id identifies the connection (0: none). */
char *rpc_server_handle(struct rpc_server *srv, uint64_t conn_id,
			const char *text, size_t len);

/* Whether an event of topic is to be built: for every known topic, since
 * each is numbered and kept for subscribers that resume (rpc/events.h). */
bool rpc_server_topic_wanted(const struct rpc_server *srv, const char *topic);
/* Numbers the event, keeps it in the ring, and sends a notification
 * {method, params + {seq, epoch}} to every connection subscribed to topic.
 * params must be an object; takes over the reference to it. */
void rpc_server_notify(struct rpc_server *srv, const char *topic,
		       json_object *params);

/* The OpenRPC document this server validates against. */
json_object *rpc_server_openrpc(struct rpc_server *srv);
/* The method table, for tests that compare it with the document. */
size_t rpc_server_method_count(const struct rpc_server *srv);
const char *rpc_server_method_name(const struct rpc_server *srv, size_t i);

/* Handler context. */
void *rpc_call_app(const struct rpc_call *call);
struct ctl *rpc_call_ctl(const struct rpc_call *call);
struct rpc_server *rpc_call_server(const struct rpc_call *call);
uint64_t rpc_call_conn(const struct rpc_call *call);

/* Records the error this call answers with; field names the offending
 * param ("" or NULL when none).  Returns -EINVAL for convenience. */
__attribute__((format(printf, 4, 5)))
int rpc_call_error(struct rpc_call *call, int code, const char *field,
		   const char *fmt, ...);
/* Adds a member to the error's data object (takes over val). */
void rpc_call_error_data(struct rpc_call *call, const char *key,
			 json_object *val);

/* Param getters for handlers: params were validated against the schema, so
 * these only fetch; absent optional members leave *out untouched. */
const char *rpc_param_str(json_object *params, const char *key,
			  const char *dflt);
int64_t rpc_param_int(json_object *params, const char *key, int64_t dflt);
bool rpc_param_bool(json_object *params, const char *key, bool dflt);
/* Parses "4096", "0x1000", "256M", "1G" (K/M/G/T, binary) or a JSON
 * integer into bytes; -EINVAL via rpc_call_error naming key on bad input. */
int rpc_param_size(struct rpc_call *call, json_object *params,
		   const char *key, uint64_t dflt, uint64_t *out);
int rpc_parse_size(const char *s, uint64_t *out);

#endif
