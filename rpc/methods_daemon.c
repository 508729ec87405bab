/* daemon.*, rpc.discover and events.* methods. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include <event2/event.h>

#include "common/log.h"
#include "ctl/ctl.h"
#include "rpc/events.h"
#include "rpc/internal.h"

static int daemon_version(struct rpc_call *call, json_object *params,
			  json_object **result)
{
	json_object *r = json_object_new_object(), *libs = json_object_new_object();
	struct utsname u;

	(void)call; (void)params;
	json_object_object_add(r, "name", json_object_new_string("slotd"));
	json_object_object_add(r, "version", json_object_new_string(SLOTD_VERSION));
	json_object_object_add(r, "git_revision", json_object_new_string(SLOTD_GIT_REV));
	json_object_object_add(r, "kernel_release",
			       json_object_new_string(uname(&u) ? "unknown" : u.release));
	json_object_object_add(libs, "json-c", json_object_new_string(json_c_version()));
	json_object_object_add(libs, "libevent", json_object_new_string(event_get_version()));
	json_object_object_add(libs, "liburcu", json_object_new_string(SLOTD_LIBURCU_VERSION));
	json_object_object_add(libs, "libsystemd",
			       json_object_new_string(SLOTD_LIBSYSTEMD_VERSION));
	json_object_object_add(r, "libraries", libs);
	*result = r;
	return 0;
}

static json_object *quirks_json(const struct vmm_caps *caps)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < vmm_quirk_desc_count; i++) {
		const struct vmm_quirk_desc *q = &vmm_quirk_descs[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(q->name));
		json_object_object_add(o, "bit", json_object_new_int(__builtin_ctzll(q->bit)));
		json_object_object_add(o, "supported",
				       json_object_new_boolean(caps->supported_quirks & q->bit));
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *vm_types_json(const struct vmm_caps *caps)
{
	json_object *a = json_object_new_array();

	for (unsigned t = 0; t < 64; t++)
		if (caps->vm_types & (1ull << t))
			json_object_array_add(a, json_object_new_string(vmm_kvm_vm_type_name(t)));
	return a;
}

static void add_bool(json_object *o, const char *k, bool v)
{
	json_object_object_add(o, k, json_object_new_boolean(v));
}

static int daemon_capabilities(struct rpc_call *call, json_object *params,
			       json_object **result)
{
	const struct vmm_caps *caps = ctl_caps(rpc_call_ctl(call));
	json_object *r = json_object_new_object(), *st = json_object_new_array();
	char mask[24];

	(void)params;
	add_bool(r, "kvm_available", caps->kvm_available);
	json_object_object_add(r, "kvm_error", caps->kvm_available ? NULL :
			       json_object_new_string(caps->kvm_error));
	json_object_object_add(r, "api_version", json_object_new_int(caps->api_version));
	json_object_object_add(r, "max_memslots", json_object_new_int(caps->max_memslots));
	json_object_object_add(r, "max_vcpus", json_object_new_int(caps->max_vcpus));
	json_object_object_add(r, "recommended_vcpus", json_object_new_int(caps->nr_vcpus));
	json_object_object_add(r, "guest_phys_bits", json_object_new_int((int)caps->guest_phys_bits));
	json_object_object_add(r, "vm_types", caps->kvm_available ?
			       vm_types_json(caps) : json_object_new_array());
	json_object_array_add(st, json_object_new_string("default"));
	json_object_array_add(st, json_object_new_string("protected"));
	json_object_object_add(r, "slotd_vm_types", st);
	add_bool(r, "user_memory2", caps->user_memory2);
	add_bool(r, "guest_memfd", caps->guest_memfd);
	add_bool(r, "readonly_mem", caps->readonly_mem);
	add_bool(r, "stats_fd", caps->stats_fd);
	add_bool(r, "memory_attributes", caps->memory_attributes);
	add_bool(r, "disable_quirks2", caps->disable_quirks2);
	snprintf(mask, sizeof(mask), "0x%llx", (unsigned long long)caps->supported_quirks);
	json_object_object_add(r, "supported_quirks_mask", json_object_new_string(mask));
	json_object_object_add(r, "quirks", quirks_json(caps));
	*result = r;
	return 0;
}

/* daemon.log_level {level?}: reads the level, or changes it at run time.
 * The change is logged where it shows: before lowering to warn or error,
 * after raising to info or debug. */
static int daemon_log_level(struct rpc_call *call, json_object *params,
			    json_object **result)
{
	const char *want = rpc_param_str(params, "level", NULL);
	enum slog_level old = slog_level_get(), level = old;
	json_object *r;

	if (want && slog_level_parse(want, &level))
		return rpc_call_error(call, RPC_INVALID_PARAMS, "level",
				      "Invalid params: level '%s' is not one of "
				      "error, warn, info, debug", want);
	if (level != old) {
		if (level < SLOG_INFO)
			slog_info("log level %s -> %s", slog_level_name(old),
				  slog_level_name(level));
		slog_level_set(level);
		if (level >= SLOG_INFO)
			slog_info("log level %s -> %s", slog_level_name(old),
				  slog_level_name(level));
	}
	r = json_object_new_object();
	json_object_object_add(r, "level", json_object_new_string(slog_level_name(level)));
	json_object_object_add(r, "previous", json_object_new_string(slog_level_name(old)));
	*result = r;
	return 0;
}

static int rpc_discover(struct rpc_call *call, json_object *params,
			json_object **result)
{
	(void)params;
	*result = json_object_get(rpc_server_openrpc(rpc_call_server(call)));
	return 0;
}

/* Collects the topic bits named in params.topics (all when absent). */
static int topics_mask(struct rpc_call *call, json_object *params, uint64_t *mask)
{
	json_object *t;

	*mask = 0;
	if (!params || !json_object_object_get_ex(params, "topics", &t)) {
		*mask = (1ull << rpc_topic_count) - 1;
		return 0;
	}
	for (size_t i = 0; i < json_object_array_length(t); i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(t, i));
		int bit = rpc_topic_bit(name);
		char field[32];

		snprintf(field, sizeof(field), "topics[%zu]", i);
		if (bit < 0)
			return rpc_call_error(call, RPC_INVALID_PARAMS, field,
					      "Invalid params: unknown topic '%s'", name);
		*mask |= 1ull << bit;
	}
	return 0;
}

static json_object *topics_json(uint64_t mask)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < rpc_topic_count; i++)
		if (mask & (1ull << i))
			json_object_array_add(a, json_object_new_string(rpc_topic_names[i]));
	return a;
}

/* The connection events.* act on, or NULL after recording why not. */
static struct rpc_conn *events_conn(struct rpc_call *call)
{
	struct rpc_conn *c = rpc_conn_find(rpc_call_server(call), rpc_call_conn(call));

	if (!c)
		rpc_call_error(call, RPC_ERR_UNSUPPORTED, NULL,
			       "events need a persistent connection (the Unix socket)");
	return c;
}

/* {topics, epoch, seq}: what both events.* methods answer. */
static json_object *subscription_json(struct rpc_conn *c)
{
	struct rpc_events *ev = c->srv->events;
	json_object *r = json_object_new_object();

	json_object_object_add(r, "topics", topics_json(c->topics));
	rpc_add_str(r, "epoch", rpc_events_epoch(ev));
	rpc_add_u64(r, "seq", rpc_events_last(ev));
	return r;
}

/* Where a subscription starts: *from, the seq after which events are
 * replayed (the last one when nothing is), and whether the client missed
 * events it asked for (since given, but from another epoch or older than
 * the ring reaches).  -EINVAL after recording a refusal. */
static int events_start(struct rpc_call *call, struct rpc_events *ev, json_object *params,
			uint64_t *from, bool *missed)
{
	const char *epoch = rpc_param_str(params, "epoch", NULL);
	uint64_t last = rpc_events_last(ev), since;
	json_object *o;

	*from = last;
	*missed = false;
	if (!params || !json_object_object_get_ex(params, "since", &o)) {
		if (epoch)
			return rpc_call_error(call, RPC_INVALID_PARAMS, "epoch",
					      "Invalid params: epoch goes with since (the seq of "
					      "the last event you received in that epoch)");
		return 0;
	}
	since = json_object_get_uint64(o);
	if (epoch && strcmp(epoch, rpc_events_epoch(ev))) {
		*missed = true;	/* slotd restarted: the old numbers mean nothing */
		return 0;
	}
	if (since > last)
		return rpc_call_error(call, RPC_INVALID_PARAMS, "since",
				      "Invalid params: since %llu is after the last event of "
				      "this slotd (seq %llu, epoch %s); slotd may have restarted: "
				      "pass the epoch your events came with to be told so, or "
				      "subscribe without since and resync",
				      (unsigned long long)since, (unsigned long long)last,
				      rpc_events_epoch(ev));
	if (since + 1 < rpc_events_oldest(ev))
		*missed = true;	/* the ring no longer reaches back there */
	else
		*from = since;
	return 0;
}

/* events.subscribe {topics?, since?, epoch?}: adds topics; the events
 * after since are sent right after this reply (server.c conn_replay). */
static int events_subscribe(struct rpc_call *call, json_object *params,
			    json_object **result)
{
	struct rpc_conn *c = events_conn(call);
	struct rpc_events *ev;
	uint64_t mask, from, last;
	bool missed;

	if (!c || topics_mask(call, params, &mask))
		return -EINVAL;
	ev = c->srv->events;
	last = rpc_events_last(ev);
	if (events_start(call, ev, params, &from, &missed))
		return -EINVAL;
	if (from < last && c->replay_pending && c->replay_since < c->replay_to)
		return rpc_call_error(call, RPC_INVALID_PARAMS, "since",
				      "Invalid params: one events.subscribe with since per "
				      "request line; send this one on its own line");
	if (from < last || !c->replay_pending) {
		c->replay_since = from;
		c->replay_to = last;
		c->replay_mask = mask;
	}
	c->replay_pending = true;
	c->topics |= mask;
	*result = subscription_json(c);
	rpc_add_u64(*result, "oldest", rpc_events_oldest(ev));
	json_object_object_add(*result, "missed", json_object_new_boolean(missed));
	rpc_add_u64(*result, "replayed", rpc_events_count_range(ev, from, last, mask));
	return 0;
}

static int events_unsubscribe(struct rpc_call *call, json_object *params,
			      json_object **result)
{
	struct rpc_conn *c = events_conn(call);
	uint64_t mask;

	if (!c || topics_mask(call, params, &mask))
		return -EINVAL;
	c->topics &= ~mask;
	*result = subscription_json(c);
	return 0;
}

static const struct rpc_method daemon_methods[] = {
	{ "daemon.version",	 daemon_version },
	{ "daemon.capabilities", daemon_capabilities },
	{ "daemon.log_level",	 daemon_log_level },
	{ "rpc.discover",	 rpc_discover },
	{ "events.subscribe",	 events_subscribe },
	{ "events.unsubscribe",	 events_unsubscribe },
};

int rpc_methods_daemon_register(struct rpc_server *srv)
{
	return rpc_server_register(srv, daemon_methods,
				   sizeof(daemon_methods) / sizeof(daemon_methods[0]));
}

int rpc_methods_register_all(struct rpc_server *srv)
{
	int r = rpc_methods_daemon_register(srv);

	if (!r)
		r = rpc_methods_vm_register(srv);
	if (!r)
		r = rpc_methods_memslot_register(srv);
	if (!r)
		r = rpc_methods_txn_register(srv);
	if (!r)
		r = rpc_methods_apply_register(srv);
	return r ? r : rpc_methods_quirks_register(srv);
}
