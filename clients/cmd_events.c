/* slotctl events watch: subscribe (resuming after --since SEQ), then print
 * each notification line until interrupted, --count N have arrived, or
 * --timeout runs out. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "clients/slotctl.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGINT/SIGTERM end the watch cleanly; a second one kills as usual. */
static void stop_signals_catch(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal,
				.sa_flags = SA_RESETHAND };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Prints one notification: compact JSON, or "method seq=N key=value ..."
 * (the epoch, the same on every line of a run, is left out). */
static void event_print(struct slotctl *ctl, json_object *msg)
{
	json_object *method = NULL, *params = NULL;

	if (ctl->json) {
		int flags = JSON_C_TO_STRING_PLAIN |
			    JSON_C_TO_STRING_NOSLASHESCAPE;

		puts(json_object_to_json_string_ext(msg, flags));
		fflush(stdout);
		return;
	}
	json_object_object_get_ex(msg, "method", &method);
	json_object_object_get_ex(msg, "params", &params);
	slotctl_render_effect_compact(params);
	fputs(slotctl_render_scalar(method), stdout);
	if (json_object_is_type(params, json_type_object)) {
		json_object_object_foreach(params, key, val) {
			const char *v = slotctl_render_scalar(val);

			if (!strcmp(key, "epoch"))
				continue;
			/* logfmt: values with blanks are quoted. */
			printf(strpbrk(v, " \t") ? " %s=\"%s\"" : " %s=%s",
			       key, v);
		}
	} else if (params) {
		printf(" %s", slotctl_render_scalar(params));
	}
	putchar('\n');
	fflush(stdout);
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "?";
}

static uint64_t member_u64(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

/* Says where the watch starts (sub: events.subscribe's result): on
 * stderr for people; with --json and --since, as the first line on
 * stdout, so that a script sees "missed" before any event. */
static void start_print(struct slotctl *ctl, json_object *sub, const char *since,
			const char *epoch)
{
	const char *now = member_str(sub, "epoch");
	bool missed = json_object_get_boolean(json_object_object_get(sub, "missed"));

	if (ctl->json) {
		if (since)
			puts(json_object_to_json_string_ext(sub, JSON_C_TO_STRING_PLAIN));
		fflush(stdout);
		return;
	}
	if (missed && epoch && strcmp(epoch, now))
		slotctl_err("missed events: slotd restarted (epoch %s, now %s); list the "
			    "state (vm list, memslot list) to resync", epoch, now);
	else if (missed)
		slotctl_err("missed events: slotd keeps events from seq %llu on only, "
			    "not since %s; list the state (vm list, memslot list) to resync",
			    (unsigned long long)member_u64(sub, "oldest"), since);
	else if (since)
		fprintf(stderr, "slotctl: %llu event(s) after seq %s replayed, then live ones\n",
			(unsigned long long)member_u64(sub, "replayed"), since);
	fprintf(stderr, "slotctl: events after seq %llu of epoch %s; resume with "
		"--since SEQ --epoch %s\n", (unsigned long long)member_u64(sub, "seq"), now, now);
}

/* Receives and prints notifications; returns the exit status. */
static int watch_loop(struct slotctl *ctl, uint64_t count)
{
	long long deadline = ctl->timeout_set ?
			     slotctl_now_ms() + ctl->timeout_ms : -1;
	uint64_t seen = 0;

	while (!stop_requested && (!count || seen < count)) {
		long long left = deadline < 0 ? -1
					      : deadline - slotctl_now_ms();
		json_object *msg;
		int ret;

		if (deadline >= 0 && left < 0)
			left = 0;
		ret = slotctl_conn_recv(ctl->conn, (int)left, &msg);
		if (ret == -EINTR)
			continue;
		if (ret == -ETIMEDOUT && (!count || seen >= count))
			break;
		if (ret) {
			slotctl_err("events watch: %s after %llu event(s)",
				    ret == -ETIMEDOUT ? "timed out"
				    : ret == -ECONNRESET ? "slotd closed the "
				    "connection" : strerror(-ret),
				    (unsigned long long)seen);
			return SLOTCTL_EXIT_FAIL;
		}
		if (!json_object_object_get_ex(msg, "id", NULL)) {
			event_print(ctl, msg);
			seen++;
		}
		json_object_put(msg);
	}
	return SLOTCTL_EXIT_OK;
}

static const struct slotctl_optdesc watch_opts[] = {
	{ "count", "N", "exit after N notifications" },
	{ "since", "SEQ", "first replay the events after SEQ (the seq of the "
	  "last event received) that slotd still holds" },
	{ "epoch", "E", "the epoch SEQ belongs to: when slotd has restarted "
	  "since, it says so (events missed) instead of replaying" },
	{ 0 },
};

/* Adds --since and --epoch to p; false after a usage error. */
static bool resume_params(const struct slotctl_args *a, json_object *p)
{
	const char *since = slotctl_args_opt(a, "since"),
		   *epoch = slotctl_args_opt(a, "epoch");

	if (epoch && !since) {
		slotctl_err("events watch: --epoch goes with --since SEQ");
		return false;
	}
	return !since || !slotctl_param_u64(p, "since", since, false);
}

/* events watch [TOPIC...]: subscribe on this connection, then print. */
static int events_watch(struct slotctl *ctl, const struct slotctl_args *a)
{
	const char *count_s = slotctl_args_opt(a, "count");
	json_object *p = json_object_new_object(), *topics, *result;
	uint64_t count = 0;
	int ret;

	if (count_s && (slotctl_parse_u64(count_s, false, &count) || !count)) {
		slotctl_err("events watch: --count '%s' is not a number > 0",
			    count_s);
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	if (!resume_params(a, p)) {
		json_object_put(p);
		return SLOTCTL_EXIT_USAGE;
	}
	if (slotctl_args_opt(a, "epoch"))
		json_object_object_add(p, "epoch", json_object_new_string(
					       slotctl_args_opt(a, "epoch")));
	if (a->argc) {
		topics = json_object_new_array();
		for (int i = 0; i < a->argc; i++)
			json_object_array_add(topics,
				json_object_new_string(a->argv[i]));
		json_object_object_add(p, "topics", topics);
	}
	ret = slotctl_call(ctl, a->verb->method, p, &result);
	if (ret)
		return ret;
	start_print(ctl, result, slotctl_args_opt(a, "since"), slotctl_args_opt(a, "epoch"));
	json_object_put(result);
	stop_signals_catch();
	return watch_loop(ctl, count);
}

static const struct slotctl_verb events_verbs[] = {
	{ "watch", "events.subscribe", "[TOPIC...] [--count N] [--since SEQ "
	  "[--epoch E]]", "print "
	  "notifications (one per line, with its seq; --json: one JSON object "
	  "per line, and with --since first the subscription, whose \"missed\" "
	  "says whether events were lost) until interrupted; with "
	  "--timeout SEC, for at most SEC seconds.  Topics (default all): "
	  "vm.state_changed, vm.quirk_changed, memslot.created, "
	  "memslot.moved, memslot.deleted", 0, -1, watch_opts,
	  events_watch },
	{ 0 },
};

const struct slotctl_noun slotctl_noun_events = {
	"events", "notifications from the daemon", events_verbs,
};
