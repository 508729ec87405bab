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
struct def_entry;
void rpc_http_destroy(struct rpc_http *h);

struct rpc_server {
	struct rpc_http *http;
	struct event_base *base;
	struct rpc_config cfg;
	const struct rpc_method **methods;	/* sorted by name */
	size_t nmethods;
	json_object *openrpc;
	json_object *method_index;	/* name -> method of openrpc */
	struct def_entry *state_defs;	/* rpc/state.c's per-VM cache */
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
/* Adds the memslot.* and vm.quirks.* methods. */
int rpc_methods_memslot_register(struct rpc_server *srv);

struct vmm_err;
struct vmm_vm;
struct vmm_memslot_info;
struct vmm_memslot_params;

/* Records the JSON-RPC error for a vmm -errno and its struct vmm_err (e may
 * be NULL); the _field variant names field instead of e->field.  Returns r. */
int rpc_vmm_error(struct rpc_call *call, int r, const struct vmm_err *e);
int rpc_vmm_error_field(struct rpc_call *call, int r, const struct vmm_err *e,
			const char *field);
/* The VM named by params[key], or NULL after recording the error. */
struct vmm_vm *rpc_vm_lookup(struct rpc_call *call, json_object *params,
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
/* Copies the VM's memslots into a malloc'd array (*n entries). */
int rpc_memslots_get(struct vmm_vm *vm, struct vmm_memslot_info **out, size_t *n);

/* State files (vm-NAME.json in cfg.state_dir; no-ops without one).  Each
 * records -32010 naming the file in call on failure and returns -errno. */
int rpc_state_vm_created(struct rpc_call *call, struct vmm_vm *vm,
			 json_object *params);
/* The names of the quirks enabled in mask on, as a JSON array. */
json_object *rpc_quirks_json(uint64_t on);
/* Drops the per-VM definitions and open journals (server teardown). */
void rpc_state_free(struct rpc_server *srv);
int rpc_state_vm_save(struct rpc_call *call, struct vmm_vm *vm);
/* The same with the quirks of mask quirks_on enabled instead of the VM's
 * current ones (written before a quirk change that cannot be undone). */
int rpc_state_vm_save_quirks(struct rpc_call *call, struct vmm_vm *vm, uint64_t quirks_on);
/* Journals a slot as it is now (text: its rpc_memslot_text, NULL without
 * memory, after a create, move or flags change), or a deletion by id
 * (before it is made).  0 or -errno after -32010. */
int rpc_state_slot_put(struct rpc_call *call, struct vmm_vm *vm, const char *text,
		       size_t len);
int rpc_state_slot_del(struct rpc_call *call, struct vmm_vm *vm, uint32_t id);
int rpc_state_vm_removed(struct rpc_call *call, const char *name);
/* True when the VM was restored from the state dir at start-up. */
bool rpc_state_vm_restored(struct rpc_server *srv, struct vmm_vm *vm);

/* Sends a notification once the current reply is on its way. */
void rpc_notify_later(struct rpc_server *srv, const char *topic,
		      json_object *params);

struct rpc_conn *rpc_conn_find(struct rpc_server *srv, uint64_t id);

/* The OpenRPC document built into the binary (schemas/openrpc.json). */
extern const char slotd_openrpc_json[];

#endif
