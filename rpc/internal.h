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

struct rpc_listener;

/* Who sent a request, for authorization and the audit log. */
struct rpc_peer {
	uint64_t conn_id;	/* 0: no stream connection (HTTP, in-process) */
	bool read_only;		/* only methods that change nothing */
	bool has_cred;		/* pid/uid/gid are known (SO_PEERCRED) */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	const char *via;	/* "socket", "read-only socket", "HTTP", ... */
};

/* One client connection; freed from the loop once closed and flushed. */
struct rpc_conn {
	TAILQ_ENTRY(rpc_conn) link;
	struct rpc_server *srv;
	struct rpc_listener *listener;
	struct bufferevent *bev;
	uint64_t id;
	bool discarding;	/* dropping an oversized line up to its '\n' */
	bool closing;		/* close once the output is flushed */
	bool reading;		/* in read_cb: replies wait in pending */
	bool blocked;		/* not reading: its own or its listener's
				 * unsent replies are over their budget */
	bool idle_armed;	/* the idle timeout is set (not subscribed) */
	bool cut;		/* draining past the deadline: output ends at
				 * the end of the line being sent */
	uint64_t drain_left;	/* draining: request bytes still in flight */
	uint64_t appended;	/* bytes ever queued (sent = this - queued) */
	uint64_t *ends;		/* ring of the end offsets of unsent lines */
	uint64_t last_end;	/* the last line end known to be sent */
	size_t ends_head, ends_n, ends_cap;
	struct evbuffer *pending;	/* replies not handed to bev yet */
	uint64_t topics;	/* RPC_TOPIC_* bits subscribed */
	/* events.subscribe {since}: the events to send once its reply is
	 * queued (rpc/server.c conn_replay); live events wait till then. */
	bool replay_pending;
	uint64_t replay_since, replay_to, replay_mask;
	struct rpc_peer peer;
};

/* A listening socket: the stream protocol or HTTP, each with its own
 * connection cap and output budget, so that clients of one (the
 * world-connectable read-only socket, say) cannot starve another. */
struct rpc_listener {
	TAILQ_ENTRY(rpc_listener) link;
	struct rpc_server *srv;
	struct evconnlistener *lev;
	struct event *backoff;	/* re-enables accept after EMFILE */
	struct event *resume;	/* unblocks connections once output drains */
	void (*accept)(struct rpc_listener *l, int fd);
	const char *what;	/* "socket", "read-only socket", "HTTP" */
	bool read_only;
	uint32_t *allow_uids, *allow_gids;
	size_t nallow_uids, nallow_gids;
	unsigned nconns, max_conns;
	unsigned nblocked;	/* connections not reading for the budget */
	size_t out_total;	/* unsent reply bytes of its connections */
	void *arg;		/* the HTTP server of an HTTP listener */
};

/* Adds a listener on fd calling accept for each connection (the server
 * owns fd from then on). */
int rpc_listener_add(struct rpc_server *srv, int fd, const char *what,
		     void (*accept)(struct rpc_listener *, int), void *arg,
		     unsigned max_conns, struct rpc_listener **out);
/* Counts a connection of l gone (HTTP connections). */
void rpc_listener_conn_gone(struct rpc_listener *l);
/* Tracks l->out_total from an output evbuffer of one of its connections,
 * and stops (before the buffer is freed with what it holds). */
void rpc_listener_track(struct rpc_listener *l, struct evbuffer *b);
void rpc_listener_untrack(struct rpc_listener *l, struct evbuffer *b);
/* An HTTP listener's state (rpc/http.c): stopped (its unix: socket file
 * removed; connections still served), whether its connections have
 * nothing left to send or read, and freed with its connections. */
void rpc_http_listener_stop(struct rpc_listener *l);
void rpc_http_listener_resume(struct rpc_listener *l);
bool rpc_http_listener_flushed(const struct rpc_listener *l);
void rpc_http_listener_free(struct rpc_listener *l);
/* Accepts the connections already waiting on l, so they are served. */
void rpc_listener_drain_backlog(struct rpc_listener *l);

/* One HTTP/1.x request head (rpc/http_parse.c); pointers are into the
 * parsed buffer. */
enum rpc_http_method { RPC_HTTP_OTHER, RPC_HTTP_GET, RPC_HTTP_HEAD, RPC_HTTP_POST };
struct rpc_http_req {
	enum rpc_http_method method;
	int minor;			/* HTTP/1.minor */
	const char *target;		/* the request target, not NUL-ended */
	size_t target_len, path_len;	/* the path: before any '?' */
	uint64_t content_length;
	bool has_length, has_host, has_te, expect_continue;
	bool conn_close, conn_keep_alive, keep_alive;
	const char *auth;		/* the Authorization value, or NULL */
	size_t auth_len;
	unsigned nheaders;
	size_t head_len;		/* bytes up to and with the empty line */
	int status;			/* why it was refused: 400, 417, 431, ... */
	const char *why;
};
/* Parses the head at the start of buf (len bytes, of which at most
 * max_head are looked at).  1: complete and valid (r->head_len); 0: more
 * bytes are needed; -status: refused (r->why says why; 431 when no head
 * ends within max_head bytes). */
int rpc_http_parse_head(const char *buf, size_t len, size_t max_head,
			struct rpc_http_req *r);

/* Handles one JSON text from peer; the reply (malloc'd, no newline) is at
 * most max_reply bytes: a larger one is replaced by error -32006, and a
 * batch stops executing its entries once their replies reach the limit.
 * NULL when nothing is to be sent. */
char *rpc_handle_peer(struct rpc_server *srv, const struct rpc_peer *peer,
		      const char *text, size_t len, size_t max_reply);
/* Whether the method changes nothing and reveals no guest memory (the
 * read-only socket serves only these); the table is in rpc/access.c. */
bool rpc_method_read_only(const char *name);
size_t rpc_method_access_count(void);
const char *rpc_method_access_get(size_t i, bool *read_only);

struct def_entry;
struct rpc_events;

struct rpc_server {
	struct event_base *base;
	struct rpc_config cfg;
	const struct rpc_method **methods;	/* sorted by name */
	size_t nmethods;
	json_object *openrpc;
	json_object *method_index;	/* name -> method of openrpc */
	TAILQ_HEAD(, rpc_conn) conns;
	TAILQ_HEAD(, rpc_listener) listeners;
	unsigned nconns;
	bool draining;		/* SIGTERM: only requests in flight are read */
	uint64_t next_conn_id;
	uint64_t requests, errors;
	struct rpc_metrics *metrics;	/* rpc/metrics.c: per-method latency */
	struct rpc_events *events;	/* rpc/events.c: epoch, seq, ring */
};

struct rpc_call {
	struct rpc_server *srv;
	bool replayed;		/* answered with a kept outcome (request_id) */
	const struct rpc_peer *peer;
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

/* Strict JSON (rpc/json.c).  Parses exactly one RFC 8259 text in UTF-8
 * (RFC 3629) into json-c objects: numbers that fit 64 bits become
 * integers, others doubles that serialize as their own text; strings may
 * hold U+0000 (json-c keeps their length), member names may not.
 * Returns 0, -EINVAL (not JSON; *why says where), -EPROTO (a member name
 * with U+0000) or -ENOMEM; nesting deeper than max_depth is refused. */
int rpc_json_parse(const char *text, size_t len, unsigned max_depth,
		   json_object **out, char *why, size_t whylen);
/* Whether text is exactly one strict JSON text (the grammar above). */
bool rpc_json_valid(const char *text, size_t len);
/* Length of the valid UTF-8 sequence at p (0 when it is none). */
size_t rpc_utf8_seq_len(const unsigned char *p, const unsigned char *end);
bool rpc_utf8_valid(const char *s, size_t len);
/* len, less an incomplete UTF-8 sequence at the end of s (what a cut
 * through a character leaves). */
size_t rpc_utf8_trim(const char *s, size_t len);
/* Replaces, in the tree o, strings and member names that are not UTF-8
 * (bad bytes become U+FFFD) and non-finite numbers (null). */
void rpc_json_mend(json_object *o);
/* o serialized as strict JSON (mended if it must be; malloc'd). */
char *rpc_json_text(json_object *o);

/* Base64 of len bytes (malloc'd), and back (-EINVAL on malformed text). */
char *rpc_base64_encode(const unsigned char *in, size_t len);
int rpc_base64_decode(const char *in, unsigned char **out, size_t *outlen);

/* Adds the vm.* methods. */
int rpc_methods_vm_register(struct rpc_server *srv);
/* Adds the memslot.* methods (methods_memslot.c), memslot.transaction
 * (methods_txn.c) and vm.quirks.* (methods_quirks.c). */
int rpc_methods_memslot_register(struct rpc_server *srv);
int rpc_methods_txn_register(struct rpc_server *srv);
/* memslot.apply (methods_apply.c). */
int rpc_methods_apply_register(struct rpc_server *srv);
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
/* 0 with a usable KVM; else -ENODEV after recording -32001 saying why
 * (the same words for every VM method). */
int rpc_kvm_check(struct rpc_call *call);
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

/* retry.c: request_id around a mutating call. */
struct rpc_retry {
	bool active;			/* the call runs with this id */
	char id[129];
	uint64_t fp;
};
/* A hash of params (members in name order, skip left out). */
uint64_t rpc_params_fingerprint(json_object *params, const char *skip);
/* Before the handler: NULL to run it (params' request_id, if any, taken
 * out and recorded as running), else the reply member of a retry (kept
 * outcome, or the error saying why not) and its *kind. */
json_object *rpc_retry_begin(struct rpc_call *call, const char *name, json_object *params,
			     struct rpc_retry *rt, const char **kind);
/* After the handler: keeps the outcome (result, else call->error). */
void rpc_retry_end(struct rpc_call *call, const char *name, struct rpc_retry *rt,
		   json_object *result);

/* Sends a notification once the current reply is on its way. */
void rpc_notify_later(struct rpc_server *srv, const char *topic,
		      json_object *params);

struct rpc_conn *rpc_conn_find(struct rpc_server *srv, uint64_t id);

/* The OpenRPC document built into the binary (schemas/openrpc.json). */
extern const char slotd_openrpc_json[];

#endif
