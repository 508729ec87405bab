/* rpc internals shared by the files of this module only. */
#ifndef SLOTD_RPC_INTERNAL_H
#define SLOTD_RPC_INTERNAL_H

#include <sys/queue.h>

#include "rpc/rpc.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	     (var) && ((tvar) = TAILQ_NEXT(var, field), 1);		\
	     (var) = (tvar))
#endif

struct evconnlistener;
struct bufferevent;
struct event;

/* One client connection; freed from the loop once closed and flushed. */
struct rpc_conn {
	TAILQ_ENTRY(rpc_conn) link;
	struct rpc_server *srv;
	struct bufferevent *bev;
	uint64_t id;
	bool discarding;	/* dropping an oversized line up to its '\n' */
	bool closing;		/* close once the output is flushed */
	uint64_t topics;	/* RPC_TOPIC_* bits subscribed */
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

struct rpc_listener {
	TAILQ_ENTRY(rpc_listener) link;
	struct evconnlistener *lev;
	struct event *backoff;	/* re-enables accept after EMFILE */
};

struct rpc_http;
void rpc_http_destroy(struct rpc_http *h);

struct rpc_server {
	struct rpc_http *http;
	struct event_base *base;
	struct rpc_config cfg;
	const struct rpc_method **methods;	/* sorted by name */
	size_t nmethods;
	json_object *openrpc;
	TAILQ_HEAD(, rpc_conn) conns;
	TAILQ_HEAD(, rpc_listener) listeners;
	unsigned nconns;
	uint64_t next_conn_id;
	uint64_t requests, errors;
};

struct rpc_call {
	struct rpc_server *srv;
	uint64_t conn_id;
	json_object *error;	/* the error object once one was recorded */
};

/* Topics for events.subscribe; names in rpc_topic_names. */
extern const char *const rpc_topic_names[];
extern const size_t rpc_topic_count;
int rpc_topic_bit(const char *name);

/* Finds the schema of method name's params in the OpenRPC document. */
json_object *rpc_schema_method(json_object *openrpc, const char *name);
/* Validates params against the method's OpenRPC param list; on failure
 * records -32602 naming the field in call and returns -EINVAL. */
int rpc_schema_check_params(struct rpc_call *call, json_object *openrpc,
			    json_object *method, json_object *params);

/* Base64 of len bytes (malloc'd), and back (-EINVAL on malformed text). */
char *rpc_base64_encode(const unsigned char *in, size_t len);
int rpc_base64_decode(const char *in, unsigned char **out, size_t *outlen);

/* Adds the vm.* methods. */
int rpc_methods_vm_register(struct rpc_server *srv);

struct rpc_conn *rpc_conn_find(struct rpc_server *srv, uint64_t id);

/* The OpenRPC document built into the binary (schemas/openrpc.json). */
extern const char slotd_openrpc_json[];

#endif
