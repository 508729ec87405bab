/* request_id: a mutating call made at most once.  A call that carries one
 * is looked up in the control plane's kept outcomes (ctl/requests.c):
 * a retry with the same method and params gets the first outcome back;
 * the same id for another call is refused; otherwise the call runs and
 * its outcome is kept, durably, before it is answered. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ctl/ctl.h"
#include "rpc/internal.h"

#define FNV_OFFSET	0xcbf29ce484222325ull
#define FNV_PRIME	0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Hashes v with its type, members in name order (so the order a client
 * writes them in does not matter), skipping member skip at this level. */
static uint64_t value_hash(uint64_t h, json_object *v, const char *skip)
{
	enum json_type t = json_object_get_type(v);
	const char *s;

	h = fnv(h, &t, sizeof(t));
	switch (t) {
	case json_type_object: {
		size_t n = (size_t)json_object_object_length(v), k = 0;
		const char **keys = calloc(n ? n : 1, sizeof(*keys));

		if (!keys)
			return h;
		json_object_object_foreach(v, key, val) {
			(void)val;
			if (!skip || strcmp(key, skip))
				keys[k++] = key;
		}
		qsort(keys, k, sizeof(*keys), key_cmp);
		for (size_t i = 0; i < k; i++) {
			h = fnv(h, keys[i], strlen(keys[i]) + 1);
			h = value_hash(h, json_object_object_get(v, keys[i]), NULL);
		}
		free(keys);
		return h;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			h = value_hash(h, json_object_array_get_idx(v, i), NULL);
		return fnv(h, "]", 1);
	case json_type_string:
		return fnv(h, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
	case json_type_null:
		return h;
	default:		/* numbers and booleans: their JSON text */
		s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		return fnv(h, s, strlen(s) + 1);
	}
}

uint64_t rpc_params_fingerprint(json_object *params, const char *skip)
{
	return params ? value_hash(FNV_OFFSET, params, skip) : FNV_OFFSET;
}

/* Errors a retry gets back: the call was refused for what it asked.  The
 * others (no KVM, the kernel, limits, state not written, internal) may
 * go another way next time, so their retry runs again. */
static bool code_kept(int code)
{
	switch (code) {
	case RPC_INVALID_PARAMS:
	case RPC_ERR_NOT_FOUND:
	case RPC_ERR_EXISTS:
	case RPC_ERR_BAD_STATE:
	case RPC_ERR_NOT_PERMITTED:
		return true;
	}
	return false;
}

/* The reply to a retry: the kept outcome, or why there is none. */
static json_object *replay(struct rpc_call *call, const char *name, const char *id,
			   uint64_t fp, const struct ctl_request *o, const char **kind)
{
	struct printbuf *pb;
	json_object *v;

	if (o->in_doubt) {
		rpc_call_error(call, RPC_ERR_IN_DOUBT, NULL,
			       "Request %s was carried out (VM %s's state holds its change) but "
			       "slotd stopped before its reply was recorded; it will not run "
			       "again: read the VM's state (memslot.list, vm.info) for its result",
			       id, o->vm);
		rpc_call_error_data(call, "request_id", json_object_new_string(id));
		rpc_call_error_data(call, "vm", json_object_new_string(o->vm));
		return call->error;
	}
	if (strcmp(o->method, name) || o->fingerprint != fp)
		return rpc_call_error(call, RPC_INVALID_PARAMS, "request_id",
				      "Invalid params: request_id '%s' was already used for %s "
				      "with %s params; give each new call a new id", id, o->method,
				      strcmp(o->method, name) ? "its own" : "other"),
		       call->error;
	if (o->error) {
		v = json_tokener_parse(o->reply);
		if (!v)
			return rpc_call_error(call, RPC_INTERNAL_ERROR, NULL,
					      "Internal error: the kept outcome of %s is unreadable",
					      id), call->error;
		*kind = "error";
		return v;
	}
	if (!(pb = printbuf_new()) || printbuf_memappend(pb, o->reply, (int)o->len) < 0) {
		if (pb)
			printbuf_free(pb);
		return rpc_call_error(call, RPC_INTERNAL_ERROR, NULL, "Internal error: out of memory"),
		       call->error;
	}
	*kind = "result";
	return rpc_text_object(pb);
}

json_object *rpc_retry_begin(struct rpc_call *call, const char *name, json_object *params,
			     struct rpc_retry *rt, const char **kind)
{
	struct ctl *ctl = rpc_call_ctl(call);
	struct ctl_request o;
	json_object *rid;
	char why[160];
	const char *id;
	size_t len;

	rt->active = false;
	if (!ctl || !params || !json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, "request_id", &rid))
		return NULL;
	*kind = "error";
	if (!json_object_is_type(rid, json_type_string))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "request_id",
				      "Invalid params: request_id is a string"), call->error;
	id = json_object_get_string(rid);
	len = (size_t)json_object_get_string_len(rid);
	if (ctl_request_id_check(id, len, why, sizeof(why)))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "request_id",
				      "Invalid params: %s", why), call->error;
	rt->fp = rpc_params_fingerprint(params, "request_id");
	if (!ctl_request_find(ctl, id, &o)) {
		slog_info("rpc: %s: request %s is a retry; answered with its first outcome", name, id);
		call->replayed = true;
		return replay(call, name, id, rt->fp, &o, kind);
	}
	memcpy(rt->id, id, len + 1);
	json_object_object_del(params, "request_id");	/* the handler never sees it */
	rt->active = true;
	ctl_request_begin(ctl, rt->id);
	return NULL;
}

void rpc_retry_end(struct rpc_call *call, const char *name, struct rpc_retry *rt,
		   json_object *result)
{
	struct ctl_request o = { .method = name, .fingerprint = rt->fp };
	json_object *v = result ? result : call->error, *code;
	bool keep = true;

	if (!rt->active)
		return;
	if (!result) {
		o.error = true;
		keep = v && json_object_object_get_ex(v, "code", &code) &&
		       code_kept(json_object_get_int(code));
	}
	o.reply = v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE) : "null";
	o.len = strlen(o.reply);
	ctl_request_end(rpc_call_ctl(call), &o, keep && v);
	rt->active = false;
}
