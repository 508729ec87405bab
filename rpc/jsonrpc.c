/* JSON-RPC 2.0 message handling: parse, batch, validate, dispatch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "rpc/internal.h"
#include "rpc/metrics.h"

/* Exact messages of the specification for its own codes. */
static const char *spec_message(int code)
{
	switch (code) {
	case RPC_PARSE_ERROR:		return "Parse error";
	case RPC_INVALID_REQUEST:	return "Invalid Request";
	case RPC_METHOD_NOT_FOUND:	return "Method not found";
	case RPC_INVALID_PARAMS:	return "Invalid params";
	case RPC_INTERNAL_ERROR:	return "Internal error";
	}
	return "Server error";
}

static json_object *error_new(int code, const char *message, json_object *data)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message",
			       json_object_new_string(message ? message :
						      spec_message(code)));
	if (data)
		json_object_object_add(e, "data", data);
	return e;
}

/* {"jsonrpc":"2.0", "result"|"error": ..., "id": id}, in the spec's order. */
static json_object *reply_new(const char *kind, json_object *val, json_object *id)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(r, kind, val);
	json_object_object_add(r, "id", id ? json_object_get(id) : NULL);
	return r;
}

/* {"detail": detail} */
static json_object *detail_data(const char *detail)
{
	json_object *data = json_object_new_object();

	json_object_object_add(data, "detail", json_object_new_string(detail));
	return data;
}

/* A protocol-level error reply with the spec's message and a detail. */
static json_object *proto_error(int code, json_object *id, const char *detail)
{
	return reply_new("error", error_new(code, NULL, detail ? detail_data(detail) : NULL), id);
}

int rpc_call_error(struct rpc_call *call, int code, const char *field,
		   const char *fmt, ...)
{
	json_object *data = json_object_new_object();
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(msg))	/* cut: not through a character */
		msg[rpc_utf8_trim(msg, sizeof(msg) - 1)] = 0;
	if (field && *field)
		json_object_object_add(data, "field", json_object_new_string(field));
	json_object_put(call->error);
	call->error = error_new(code, msg, data);
	return -EINVAL;
}

void rpc_call_error_data(struct rpc_call *call, const char *key, json_object *val)
{
	json_object *data;

	if (!call->error || !json_object_object_get_ex(call->error, "data", &data)) {
		json_object_put(val);
		return;
	}
	json_object_object_add(data, key, val);
}

void *rpc_call_app(const struct rpc_call *call)
{
	return call->srv->cfg.app;
}

struct ctl *rpc_call_ctl(const struct rpc_call *call)
{
	return call->srv->cfg.ctl;
}

struct rpc_server *rpc_call_server(const struct rpc_call *call)
{
	return call->srv;
}

uint64_t rpc_call_conn(const struct rpc_call *call)
{
	return call->conn_id;
}

static int method_cmp(const void *key, const void *elem)
{
	const struct rpc_method *const *m = elem;

	return strcmp(key, (*m)->name);
}

static const struct rpc_method *method_find(struct rpc_server *srv, const char *name)
{
	const struct rpc_method **m;

	m = bsearch(name, srv->methods, srv->nmethods, sizeof(*m), method_cmp);
	return m ? *m : NULL;
}

/* Checks the envelope; returns NULL when valid, else why not. */
static const char *envelope_check(json_object *req, json_object **id)
{
	json_object *v, *m;

	*id = NULL;
	if (!json_object_is_type(req, json_type_object))
		return "a request must be a JSON object";
	if (json_object_object_get_ex(req, "id", &v)) {
		if (v && !json_object_is_type(v, json_type_string) &&
		    !json_object_is_type(v, json_type_int) &&
		    !json_object_is_type(v, json_type_double))
			return "\"id\" must be a string, a number or null";
		*id = v;
	}
	if (!json_object_object_get_ex(req, "jsonrpc", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), "2.0"))
		return "\"jsonrpc\" must be exactly \"2.0\"";
	if (!json_object_object_get_ex(req, "method", &m) ||
	    !json_object_is_type(m, json_type_string))
		return "\"method\" must be a string";
	if (json_object_object_get_ex(req, "params", &v) &&
	    !json_object_is_type(v, json_type_object) &&
	    !json_object_is_type(v, json_type_array))
		return "\"params\" must be an object or an array";
	return NULL;
}

/* Logs a call that may change something, with the peer that made it. */
static void audit(const struct rpc_peer *peer, const char *name, json_object *err,
		  bool replayed)
{
	json_object *code;
	char who[96];

	if (peer->has_cred)
		snprintf(who, sizeof(who), "pid %d uid %u", (int)peer->pid, (unsigned)peer->uid);
	else
		snprintf(who, sizeof(who), "a peer without credentials");
	if (err && json_object_object_get_ex(err, "code", &code))
		slog_info("rpc: %s by %s (%s, connection %llu): %serror %d", name, who,
			  peer->via ? peer->via : "in-process", (unsigned long long)peer->conn_id,
			  replayed ? "retry, first outcome: " : "", json_object_get_int(code));
	else
		slog_info("rpc: %s by %s (%s, connection %llu): %s", name, who,
			  peer->via ? peer->via : "in-process", (unsigned long long)peer->conn_id,
			  replayed ? "retry, first outcome: done" : "done");
}

static json_object *denied(const char *name)
{
	json_object *data = json_object_new_object();
	char msg[160];

	json_object_object_add(data, "method", json_object_new_string(name));
	snprintf(msg, sizeof(msg), "Not permitted on the read-only socket: %s changes "
		 "state or reads guest data", name);
	return error_new(RPC_ERR_DENIED, msg, data);
}

/* Runs the handler; returns the result or error member and its kind. */
static json_object *dispatch(struct rpc_server *srv, const struct rpc_peer *peer,
			     json_object *method, json_object *params,
			     const char **kind)
{
	struct rpc_call call = { .srv = srv, .peer = peer, .conn_id = peer->conn_id };
	const char *name = json_object_get_string(method);
	/* A name with U+0000 is no method, not the method before the NUL. */
	const struct rpc_method *m = strlen(name) ==
		(size_t)json_object_get_string_len(method) ? method_find(srv, name) : NULL;
	json_object *schema, *result = NULL;
	struct rpc_retry retry = { .active = false };
	bool read_only;
	int r;

	*kind = "error";
	if (!m) {
		json_object *data = json_object_new_object();

		json_object_object_add(data, "method", json_object_get(method));
		return error_new(RPC_METHOD_NOT_FOUND, NULL, data);
	}
	read_only = rpc_method_read_only(name);
	if (peer->read_only && !read_only)
		return denied(name);
	schema = rpc_schema_method(srv, name);
	if (schema && rpc_schema_check_params(&call, srv->openrpc, schema, params))
		return call.error;
	if (!read_only && (result = rpc_retry_begin(&call, name, params, &retry, kind))) {
		audit(peer, name, strcmp(*kind, "error") ? NULL : result, call.replayed);
		return result;
	}
	r = m->handler(&call, params, &result);
	if (r == 0 && !call.error) {
		rpc_retry_end(&call, name, &retry, result);
		if (!read_only)
			audit(peer, name, NULL, false);
		*kind = "result";
		return result;
	}
	json_object_put(result);
	if (!call.error)
		rpc_call_error(&call, RPC_INTERNAL_ERROR, NULL,
			       "Internal error in %s: %s", name, strerror(r < 0 ? -r : EIO));
	rpc_retry_end(&call, name, &retry, NULL);
	if (!read_only)
		audit(peer, name, call.error, false);
	return call.error;
}

/* Handles one request object; NULL when it was a notification. */
static json_object *handle_one(struct rpc_server *srv, const struct rpc_peer *peer,
			       json_object *req)
{
	json_object *id, *m, *params = NULL, *val;
	const char *why = envelope_check(req, &id), *kind;
	struct rpc_trace trace;
	bool notification;

	srv->requests++;
	if (why) {
		srv->errors++;
		/* The id of an invalid request cannot be trusted: null. */
		return proto_error(RPC_INVALID_REQUEST, NULL, why);
	}
	notification = !json_object_object_get_ex(req, "id", NULL);
	json_object_object_get_ex(req, "method", &m);
	json_object_object_get_ex(req, "params", &params);
	rpc_trace_begin(&trace, srv, peer->conn_id, json_object_get_string(m), params);
	val = dispatch(srv, peer, m, params, &kind);
	rpc_trace_end(&trace, !strcmp(kind, "error"));
	if (!strcmp(kind, "error"))
		srv->errors++;
	if (notification) {
		json_object_put(val);
		return NULL;
	}
	return reply_new(kind, val, id);
}

/* The error that replaces a reply larger than max_reply. */
static json_object *too_large_error(json_object *id, size_t n, size_t max_reply)
{
	char why[200];

	snprintf(why, sizeof(why), "the reply of %zu bytes exceeds the limit of %zu "
		 "bytes (--max-output); the call was made", n, max_reply);
	return reply_new("error", error_new(RPC_ERR_LIMIT, "Reply too large",
					    detail_data(why)), id);
}

/* The id of a batch entry, when it has one a reply could carry. */
static json_object *entry_id(json_object *req)
{
	json_object *id;

	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "id", &id))
		return NULL;
	return id && (json_object_is_type(id, json_type_string) ||
		      json_object_is_type(id, json_type_int) ||
		      json_object_is_type(id, json_type_double)) ? id : NULL;
}

/* Appends the text of rep (put) to the batch reply in pb. */
static void batch_put(struct printbuf *pb, json_object *rep)
{
	char *t = rpc_json_text(rep);

	json_object_put(rep);
	if (!t)
		return;
	printbuf_memappend(pb, pb->bpos > 1 ? "," : "", pb->bpos > 1 ? 1 : 0);
	printbuf_memappend(pb, t, (int)strlen(t));
	free(t);
}

/* Entries after the reply budget ran out get an error, unexecuted. */
static void batch_skip(struct printbuf *pb, json_object *req, size_t max_reply)
{
	char why[160];

	if (json_object_is_type(req, json_type_object) &&
	    !json_object_object_get_ex(req, "id", NULL))
		return;	/* a notification: no reply either way */
	snprintf(why, sizeof(why), "not executed: the replies of this batch reached "
		 "the limit of %zu bytes (--max-output)", max_reply);
	batch_put(pb, reply_new("error", error_new(RPC_ERR_LIMIT, "Reply too large",
						   detail_data(why)), entry_id(req)));
}

/* Runs a batch; its reply text stays within max_reply but for the small
 * errors of the entries it did not run.  NULL: all were notifications. */
static char *handle_batch(struct rpc_server *srv, const struct rpc_peer *peer,
			  json_object *batch, size_t max_reply)
{
	size_t n = json_object_array_length(batch);
	struct printbuf *pb;
	bool full = false;
	char *out;

	pb = printbuf_new();
	if (!pb)
		return NULL;
	printbuf_memappend(pb, "[", 1);
	for (size_t i = 0; i < n; i++) {
		json_object *req = json_object_array_get_idx(batch, i), *r;
		char *t;

		if (full) {
			batch_skip(pb, req, max_reply);
			continue;
		}
		r = handle_one(srv, peer, req);
		if (!r)
			continue;
		t = rpc_json_text(r);
		if (t && (size_t)pb->bpos + strlen(t) + 2 > max_reply) {
			full = true;
			batch_put(pb, too_large_error(entry_id(req), strlen(t), max_reply));
		} else if (t) {
			printbuf_memappend(pb, pb->bpos > 1 ? "," : "", pb->bpos > 1 ? 1 : 0);
			printbuf_memappend(pb, t, (int)strlen(t));
		}
		free(t);
		json_object_put(r);
	}
	printbuf_memappend(pb, "]", 1);
	out = pb->bpos > 2 ? strndup(pb->buf, (size_t)pb->bpos) : NULL;
	printbuf_free(pb);
	return out;
}

#define MAX_DEPTH	64

/* The text of a reply or notification: strict JSON, whatever a handler
 * put in it.  Strings that are not UTF-8 (a guest's console bytes, a
 * message cut by a fixed buffer) and non-finite numbers are mended and
 * logged; the text is checked, not trusted (malloc'd). */
char *rpc_json_text(json_object *o)
{
	const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
	const char *t = json_object_to_json_string_ext(o, flags);

	if (t && rpc_json_valid(t, strlen(t)))
		return strdup(t);
	slog_warn("rpc: a reply was not strict JSON (bad UTF-8 or a non-finite "
		  "number); sending it mended");
	rpc_json_mend(o);
	t = json_object_to_json_string_ext(o, flags);
	if (t && rpc_json_valid(t, strlen(t)))
		return strdup(t);
	slog_error("rpc: a reply could not be mended into strict JSON; "
		   "sending an internal error instead");
	return strdup("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,"
		      "\"message\":\"Internal error\",\"data\":{\"detail\":"
		      "\"the reply could not be encoded as JSON\"}},\"id\":null}");
}

/* Checks a batch's length; the error reply when it is out of bounds. */
static json_object *batch_check(struct rpc_server *srv, json_object *batch)
{
	size_t n = json_object_array_length(batch);
	char why[96];

	if (n == 0)
		return proto_error(RPC_INVALID_REQUEST, NULL, "empty batch");
	if (n > srv->cfg.max_batch) {
		snprintf(why, sizeof(why), "batch of %zu entries exceeds the limit of %zu",
			 n, srv->cfg.max_batch);
		return proto_error(RPC_INVALID_REQUEST, NULL, why);
	}
	return NULL;
}

char *rpc_handle_peer(struct rpc_server *srv, const struct rpc_peer *peer,
		      const char *text, size_t len, size_t max_reply)
{
	char why[160], *out = NULL;
	json_object *req = NULL, *rep = NULL, *id;
	int r = rpc_json_parse(text, len, MAX_DEPTH, &req, why, sizeof(why));

	if (r) {
		srv->requests++;
		srv->errors++;
		rep = proto_error(r == -EPROTO ? RPC_INVALID_REQUEST : RPC_PARSE_ERROR,
				  NULL, why);
	} else if (json_object_is_type(req, json_type_array)) {
		rep = batch_check(srv, req);
		if (!rep) {
			out = handle_batch(srv, peer, req, max_reply);
			json_object_put(req);
			return out;
		}
	} else {
		rep = handle_one(srv, peer, req);
	}
	if (rep)
		out = rpc_json_text(rep);
	if (out && strlen(out) > max_reply) {
		json_object *big = rep;
		size_t n = strlen(out);

		free(out);
		json_object_object_get_ex(big, "id", &id);
		rep = too_large_error(id, n, max_reply);
		json_object_put(big);
		out = rpc_json_text(rep);
	}
	json_object_put(rep);
	json_object_put(req);
	return out;
}

char *rpc_server_handle(struct rpc_server *srv, uint64_t conn_id,
			const char *text, size_t len)
{
	const struct rpc_peer peer = { .conn_id = conn_id };

	return rpc_handle_peer(srv, &peer, text, len, srv->cfg.max_outbuf);
}
