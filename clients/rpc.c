/* Calls as the verbs make them: connect on first use, send, wait for the
 * reply, and turn every failure into one clear line on stderr. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "clients/slotctl.h"

void slotctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("slotctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int slotctl_connect(struct slotctl *ctl)
{
	int ret;

	if (ctl->conn)
		return 0;
	ret = slotctl_conn_open(ctl->socket, ctl->timeout_ms, &ctl->conn);
	if (ret == -ENOENT || ret == -ECONNREFUSED)
		slotctl_err("cannot connect to %s: %s; is slotd running? "
			    "(start it, or point --socket or SLOTD_SOCKET at "
			    "its socket)", ctl->socket, strerror(-ret));
	else if (ret == -EACCES)
		slotctl_err("cannot connect to %s: %s; the socket is for "
			    "root and the slotd group", ctl->socket,
			    strerror(-ret));
	else if (ret)
		slotctl_err("cannot connect to %s: %s", ctl->socket,
			    strerror(-ret));
	return ret;
}

void slotctl_error_print(json_object *error)
{
	json_object *code = NULL, *msg = NULL, *data = NULL, *field = NULL;

	json_object_object_get_ex(error, "code", &code);
	json_object_object_get_ex(error, "message", &msg);
	json_object_object_get_ex(error, "data", &data);
	if (json_object_is_type(data, json_type_object))
		json_object_object_get_ex(data, "field", &field);
	fprintf(stderr, "slotctl: error %d: %s", json_object_get_int(code),
		msg ? json_object_get_string(msg) : "(no message)");
	if (field)
		fprintf(stderr, " (field: %s)", slotctl_render_scalar(field));
	fputc('\n', stderr);
	/* Anything else the server explains goes on a second line. */
	if (data && (!field || json_object_object_length(data) > 1))
		fprintf(stderr, "slotctl:   data: %s\n",
			json_object_to_json_string_ext(data,
				JSON_C_TO_STRING_PLAIN |
				JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Reports why a call got no reply. */
static void call_failed(struct slotctl *ctl, const char *method, int err)
{
	if (err == -ETIMEDOUT)
		slotctl_err("%s: no reply from slotd at %s within %.3g s "
			    "(see --timeout)", method, ctl->socket,
			    ctl->timeout_ms / 1000.0);
	else if (err == -ECONNRESET)
		slotctl_err("%s: slotd at %s closed the connection before "
			    "replying", method, ctl->socket);
	else if (err == -EBADMSG)
		slotctl_err("%s: slotd at %s sent a line that is not JSON",
			    method, ctl->socket);
	else
		slotctl_err("%s: %s", method, strerror(-err));
}

/* Splits a reply into its result (taken) or prints its error. */
static int reply_result(json_object *reply, json_object **result)
{
	json_object *err, *res;

	if (json_object_object_get_ex(reply, "error", &err)) {
		slotctl_error_print(err);
		return SLOTCTL_EXIT_FAIL;
	}
	if (!json_object_object_get_ex(reply, "result", &res)) {
		slotctl_err("reply has neither result nor error: %s",
			    json_object_to_json_string(reply));
		return SLOTCTL_EXIT_FAIL;
	}
	*result = json_object_get(res);
	return SLOTCTL_EXIT_OK;
}

int slotctl_call(struct slotctl *ctl, const char *method, json_object *params,
		 json_object **result)
{
	json_object *reply = NULL;
	int ret;

	*result = NULL;
	if (!params)
		params = json_object_new_object();
	ret = slotctl_connect(ctl);
	if (ret) {
		json_object_put(params);
		return SLOTCTL_EXIT_FAIL;
	}
	ret = slotctl_conn_call(ctl->conn, method, params, ctl->timeout_ms,
				&reply);
	json_object_put(params);
	if (ret) {
		call_failed(ctl, method, ret);
		return SLOTCTL_EXIT_FAIL;
	}
	ret = reply_result(reply, result);
	json_object_put(reply);
	return ret;
}

int slotctl_call_print(struct slotctl *ctl, const char *method,
		       json_object *params)
{
	json_object *result;
	int ret = slotctl_call(ctl, method, params, &result);

	if (ret)
		return ret;
	if (ctl->json)
		slotctl_render_json(stdout, result);
	else
		slotctl_render_human(stdout, result);
	json_object_put(result);
	return SLOTCTL_EXIT_OK;
}

int slotctl_verb_call(struct slotctl *ctl, const struct slotctl_args *a)
{
	return slotctl_call_print(ctl, a->verb->method, NULL);
}
