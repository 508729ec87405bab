/* Calls as the verbs make them: connect on first use, send, wait for the
 * reply, and turn every failure into one clear line on stderr. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients/slotctl.h"

bool slotctl_json_errors;

/* Prints {"error": error} as one line on stderr (takes error). */
static void json_error_print(json_object *error)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", error);
	fprintf(stderr, "%s\n", json_object_to_json_string_ext(o,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* With --json: slotctl's own errors as {"error": {"code": null,
 * "message": ..., "data": {"source": "slotctl"}}}, the shape of the
 * server's errors with no JSON-RPC code, since none was received. */
static void json_local_error(const char *msg)
{
	json_object *e = json_object_new_object(), *data = json_object_new_object();

	json_object_object_add(e, "code", NULL);
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(data, "source", json_object_new_string("slotctl"));
	json_object_object_add(e, "data", data);
	json_error_print(e);
}

void slotctl_err(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (slotctl_json_errors)
		json_local_error(msg);
	else
		fprintf(stderr, "slotctl: %s\n", msg);
}

/* Where the daemon is, for messages: the ssh address or the socket. */
static const char *where(const struct slotctl *ctl)
{
	return ctl->host ? ctl->host : ctl->socket;
}

/* Why a connect() was refused with EACCES, naming the socket's real
 * group and what to do: join it, or log in again after joining. */
static void access_denied(const char *path)
{
	struct passwd *pw = getpwuid(getuid());
	const char *user = pw ? pw->pw_name : "USER";
	struct group *g;
	struct stat st;
	char gname[64];

	if (stat(path, &st) < 0) {
		slotctl_err("cannot connect to %s: %s (and cannot look at "
			    "the socket: %s)", path, strerror(EACCES),
			    strerror(errno));
		return;
	}
	g = getgrgid(st.st_gid);
	if (!g) {
		slotctl_err("cannot connect to %s: %s; the socket belongs to "
			    "gid %u, which has no name here", path,
			    strerror(EACCES), (unsigned)st.st_gid);
		return;
	}
	snprintf(gname, sizeof(gname), "%s", g->gr_name);
	for (char **m = g->gr_mem; *m; m++) {
		if (!strcmp(*m, user)) {
			slotctl_err("cannot connect to %s: %s; %s is in group "
				    "%s, but this session started before: log "
				    "in again (or run 'newgrp %s')", path,
				    strerror(EACCES), user, gname, gname);
			return;
		}
	}
	slotctl_err("cannot connect to %s: %s; the socket admits root and "
		    "group %s (mode %03o): add %s to it with 'usermod -aG %s "
		    "%s' as root, then log in again", path, strerror(EACCES),
		    gname, (unsigned)(st.st_mode & 0777), user, gname, user);
}

/* Opens the connection through ssh (--host). */
static int connect_host(struct slotctl *ctl)
{
	struct slotctl_ssh_addr h;
	int ret = slotctl_ssh_addr_parse(ctl->host, &h);

	if (ret == -EPROTONOSUPPORT)
		slotctl_err("--host %s: only ssh://[USER@]HOST[:PORT][/SOCKET] "
			    "is supported", ctl->host);
	else if (ret)
		slotctl_err("--host %s: expected ssh://[USER@]HOST[:PORT]"
			    "[/SOCKET] (letters, digits, '.', '_', '-' in "
			    "names)", ctl->host);
	if (!ret) {
		ret = slotctl_conn_open_ssh(&h, &ctl->conn);
		if (ret)
			slotctl_err("--host %s: cannot start ssh: %s", ctl->host,
				    strerror(-ret));
	}
	slotctl_ssh_addr_free(&h);
	return ret;
}

int slotctl_connect(struct slotctl *ctl)
{
	int ret;

	if (ctl->conn)
		return 0;
	if (ctl->host)
		return connect_host(ctl);
	ret = slotctl_conn_open(ctl->socket, ctl->timeout_ms, &ctl->conn);
	if (ret == -ENOENT || ret == -ECONNREFUSED)
		slotctl_err("cannot connect to %s: %s; is slotd running? "
			    "(start it, or point --socket or SLOTD_SOCKET at "
			    "its socket)", ctl->socket, strerror(-ret));
	else if (ret == -EACCES)
		access_denied(ctl->socket);
	else if (ret)
		slotctl_err("cannot connect to %s: %s", ctl->socket,
			    strerror(-ret));
	return ret;
}

void slotctl_error_print(json_object *error)
{
	json_object *code = NULL, *msg = NULL, *data = NULL, *field = NULL;

	if (slotctl_json_errors) {
		json_error_print(json_object_get(error));
		return;
	}
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
			    "(see --timeout)", method, where(ctl),
			    ctl->timeout_ms / 1000.0);
	else if (err == -ECONNRESET && ctl->host)
		slotctl_err("%s: the connection through ssh to %s closed "
			    "before a reply (ssh's own message, if any, is "
			    "above)", method, ctl->host);
	else if (err == -ECONNRESET)
		slotctl_err("%s: slotd at %s closed the connection before "
			    "replying", method, where(ctl));
	else if (err == -EBADMSG)
		slotctl_err("%s: slotd at %s sent a line that is not JSON",
			    method, where(ctl));
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

/* The methods that take a request_id (schemas/openrpc.json says so; a
 * test of slotctl keeps this list in step with it). */
static const char *const retryable[] = {
	"memslot.apply", "memslot.create", "memslot.delete", "memslot.move", "memslot.set_flags",
	"memslot.transaction", "vm.create", "vm.destroy", "vm.pause", "vm.quirks.set",
	"vm.resume", "vm.start", "vm.stop", NULL,
};

bool slotctl_method_retryable(const char *method)
{
	for (int i = 0; retryable[i]; i++)
		if (!strcmp(retryable[i], method))
			return true;
	return false;
}

int slotctl_call(struct slotctl *ctl, const char *method, json_object *params,
		 json_object **result)
{
	json_object *reply = NULL;
	int ret;

	*result = NULL;
	if (!params)
		params = json_object_new_object();
	if (ctl->request_id && slotctl_method_retryable(method) &&
	    json_object_is_type(params, json_type_object))
		json_object_object_add(params, "request_id", json_object_new_string(ctl->request_id));
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
