/* rpc internals: what happens around every call (its log context, its
 * latency) and the Prometheus text of GET /metrics. */
#ifndef SLOTD_RPC_METRICS_H
#define SLOTD_RPC_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/log.h"

struct rpc_server;
struct evbuffer;

/* One call being served: started by rpc_trace_begin, ended by
 * rpc_trace_end on the same thread. */
struct rpc_trace {
	struct rpc_server *srv;
	uint64_t start_ns;
	struct slog_fields fields;
};

/* Notes the start of a call to method with params (both borrowed until
 * rpc_trace_end) from connection conn_id (0: HTTP), and makes METHOD,
 * VM, SLOT and PEER_UID the fields of what the thread logs meanwhile. */
void rpc_trace_begin(struct rpc_trace *t, struct rpc_server *srv,
		     uint64_t conn_id, const char *method, json_object *params);
/* Records the call's latency under its method (a registered one only:
 * a client cannot grow the set of series) and clears the log context. */
void rpc_trace_end(struct rpc_trace *t, bool error);

/* Appends the whole /metrics page (Prometheus text format 0.0.4). */
void rpc_metrics_render(struct rpc_server *srv, struct evbuffer *b);
/* Frees the histograms (server teardown). */
void rpc_metrics_free(struct rpc_server *srv);

#endif
