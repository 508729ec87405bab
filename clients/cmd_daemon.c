/* slotctl daemon version|capabilities, and slotctl call METHOD [PARAMS]. */
#include <string.h>

#include "clients/slotctl.h"

/* daemon log-level [LEVEL]: the level now (and before, when changed). */
static int daemon_log_level(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *p = json_object_new_object();

	if (a->argc)
		json_object_object_add(p, "level",
				       json_object_new_string(a->argv[0]));
	return slotctl_call_print(ctl, a->verb->method, p);
}

static const struct slotctl_verb daemon_verbs[] = {
	{ "version", "daemon.version", "", "show the daemon's version, git "
	  "revision, kernel and library versions", 0, 0, NULL,
	  slotctl_verb_call },
	{ "capabilities", "daemon.capabilities", "", "show what the host's KVM "
	  "supports: limits, VM types, memslot features, quirks", 0, 0, NULL,
	  slotctl_verb_call },
	{ "discover", "rpc.discover", "[METHOD]", "list the methods of the "
	  "API contract (OpenRPC), or describe METHOD; --json: the document",
	  0, 1, NULL, slotctl_daemon_discover },
	{ "log-level", "daemon.log_level", "[error|warn|info|debug]", "show the "
	  "daemon's log level, or change it at run time", 0, 1, NULL,
	  daemon_log_level },
	{ 0 },
};

const struct slotctl_noun slotctl_noun_daemon = {
	"daemon", "the daemon itself", daemon_verbs,
};

/* Calls any method; params are checked to be a JSON object or array
 * before anything is sent. */
static int call_any(struct slotctl *ctl, const struct slotctl_args *a)
{
	json_object *params = NULL;
	const char *why = NULL;

	if (a->argc > 1 && slotctl_parse_json(a->argv[1], &params, &why)) {
		slotctl_err("call %s: params are not valid JSON (%s): %s",
			    a->argv[0], why, a->argv[1]);
		return SLOTCTL_EXIT_USAGE;
	}
	if (params && !json_object_is_type(params, json_type_object) &&
	    !json_object_is_type(params, json_type_array)) {
		slotctl_err("call %s: params must be a JSON object or array, "
			    "not %s", a->argv[0], a->argv[1]);
		json_object_put(params);
		return SLOTCTL_EXIT_USAGE;
	}
	return slotctl_call_print(ctl, a->argv[0], params);
}

static const struct slotctl_verb call_verbs[] = {
	{ NULL, NULL, "METHOD [JSON-PARAMS]", "call any JSON-RPC method; "
	  "params are a JSON object or array (default {})", 1, 2, NULL,
	  call_any },
	{ 0 },
};

const struct slotctl_noun slotctl_noun_call = {
	"call", "call any method by name", call_verbs,
};
