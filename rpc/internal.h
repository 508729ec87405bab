/* rpc internals shared by the files of this module only. */
#ifndef SLOTD_RPC_INTERNAL_H
#define SLOTD_RPC_INTERNAL_H

#include <regex.h>
#include <stdint.h>
#include <string.h>
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
	bool reading;		/* in read_cb: replies wait in pending */
	struct evbuffer *pending;	/* replies not handed to bev yet */
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
	struct json_tokener *tok;	/* reused for every message (reset) */
	json_object *method_index;	/* name -> method of openrpc */
	TAILQ_HEAD(, rpc_conn) conns;
	TAILQ_HEAD(, rpc_listener) listeners;
	unsigned nconns;
	uint64_t next_conn_id;
	uint64_t requests, errors;
	struct rpc_metrics *metrics;	/* rpc/metrics.c: per-method latency */
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
json_object *rpc_schema_method(struct rpc_server *srv, const char *name);
/* Validates params against the method's OpenRPC param list; on failure
 * records -32602 naming the field in call and returns -EINVAL. */
int rpc_schema_check_params(struct rpc_call *call, json_object *openrpc,
			    json_object *method, json_object *params);

/* Base64 of len bytes (malloc'd), and back (-EINVAL on malformed text). */
char *rpc_base64_encode(const unsigned char *in, size_t len);
int rpc_base64_decode(const char *in, unsigned char **out, size_t *outlen);

/* Adds the vm.* methods. */
int rpc_methods_vm_register(struct rpc_server *srv);
/* Adds the memslot.* methods (methods_memslot.c), memslot.transaction
 * (methods_txn.c) and vm.quirks.* (methods_quirks.c). */
int rpc_methods_memslot_register(struct rpc_server *srv);
int rpc_methods_txn_register(struct rpc_server *srv);
int rpc_methods_quirks_register(struct rpc_server *srv);

struct vmm_err;
struct ctl_vm;
struct vmm_memslot_info;
struct vmm_memslot_params;
struct vmm_effect;

/* Records the JSON-RPC error for a control-plane -errno and its struct
 * vmm_err (e may be NULL; e->file set: -32010 naming the state file); the
 * _field variant names field instead of e->field.  Returns r. */
int rpc_vmm_error(struct rpc_call *call, int r, const struct vmm_err *e);
int rpc_vmm_error_field(struct rpc_call *call, int r, const struct vmm_err *e,
			const char *field);
/* The VM named by params[key], or NULL after recording the error. */
struct ctl_vm *rpc_vm_lookup(struct rpc_call *call, json_object *params,
			     const char *key);

/* Writes v in decimal at p (up to 20 bytes, no NUL); returns the count. */
static inline size_t rpc_u64_text(char *p, uint64_t v)
{
	char digits[20];
	size_t n = sizeof(digits);

	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(p, digits + n, sizeof(digits) - n);
	return sizeof(digits) - n;
}

/* One memslot as JSON: {slot, gpa "0x..", size, flags[], backing{}}. */
json_object *rpc_memslot_json(const struct vmm_memslot_info *s);
/* The same object's JSON text, appended to pb (what rpc_memslot_json
 * serializes to, without building it); returns pb's length. */
int rpc_memslot_text(struct printbuf *pb, const struct vmm_memslot_info *s);
/* Parses a memslot object {slot?, gpa, size, flags?, backing?} into p;
 * errors name prefix + member ("ops[2].gpa").  0 or -EINVAL. */
int rpc_memslot_params_parse(struct rpc_call *call, json_object *o,
			     const char *prefix, struct vmm_memslot_params *p);

/* The names of the quirks enabled in mask on, as a JSON array. */
json_object *rpc_quirks_json(uint64_t on);

/* slot_text.c: small JSON builders, and texts written in one go. */
void rpc_add_str(json_object *o, const char *k, const char *v);
void rpc_add_u64(json_object *o, const char *k, uint64_t v);
void rpc_add_hex(json_object *o, const char *k, uint64_t v);
/* An empty printbuf with room for a slot's reply or event. */
struct printbuf *rpc_text_buf(void);
void rpc_put_str(struct printbuf *pb, const char *s);
/* "0x..." in lower case, quoted. */
void rpc_put_hex(struct printbuf *pb, uint64_t v);
/* {duration_ns, kernel_ns, engine_ns, runner_ns, apply_ns, kernel: {..},
 * engine: {..}} with the counters that moved. */
void rpc_put_effect(struct printbuf *pb, const struct vmm_effect *fx);
/* An object that serializes to t's text (taken over; NULL: no memory). */
json_object *rpc_text_object(struct printbuf *t);
json_object *rpc_effect_json(const struct vmm_effect *fx);

/* methods_memslot.c, shared with methods_txn.c. */
/* The memslot with that id (0), or -ENOENT. */
int rpc_slot_find(struct ctl_vm *vm, uint32_t id, struct vmm_memslot_info *out);
/* A byte count member (integer or size string) of o; absent: dflt. */
int rpc_size_at(struct rpc_call *call, json_object *o, const char *prefix, const char *key,
		uint64_t dflt, uint64_t *out);
/* A control-plane error of a memslot call; backing members are named
 * as the API nests them ("backing.path"). */
const char *rpc_slot_field(const struct vmm_err *e, char *buf, size_t len);
int rpc_slot_error(struct rpc_call *call, int r, const struct vmm_err *e);

/* Sends a notification once the current reply is on its way. */
void rpc_notify_later(struct rpc_server *srv, const char *topic,
		      json_object *params);

struct rpc_conn *rpc_conn_find(struct rpc_server *srv, uint64_t id);

/* The OpenRPC document built into the binary (schemas/openrpc.json). */
extern const char slotd_openrpc_json[];

#endif
