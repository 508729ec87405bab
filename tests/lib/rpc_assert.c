/* Criterion assertions on JSON-RPC calls (see rpc_assert.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/lib/rpc_assert.h"

json_object *t_rpc_ok(const struct test_daemon *d, const char *method,
		      const char *params, json_object **reply)
{
	json_object *res;

	*reply = test_rpc(d->sock, method, params);
	cr_assert_not_null(*reply, "%s: no reply; log:\n%s", method, test_slurp(d->log));
	cr_assert(json_object_object_get_ex(*reply, "result", &res),
		  "%s %s: expected a result, got %s", method, params,
		  json_object_to_json_string(*reply));
	return res;
}

void t_rpc_ok_put(const struct test_daemon *d, const char *method, const char *params)
{
	json_object *r;

	t_rpc_ok(d, method, params, &r);
	json_object_put(r);
}

void t_rpc_err(const struct test_daemon *d, const char *method, const char *params,
	       int code, const char *field, const char *needle)
{
	json_object *r = test_rpc(d->sock, method, params), *e, *c, *m, *data, *f;

	cr_assert(r && json_object_object_get_ex(r, "error", &e), "%s %s: expected error %d, got %s",
		  method, params, code, json_object_to_json_string(r));
	json_object_object_get_ex(e, "code", &c);
	cr_assert_eq(json_object_get_int(c), code, "%s %s: expected code %d, got %s", method,
		     params, code, json_object_to_json_string(e));
	if (field) {
		cr_assert(json_object_object_get_ex(e, "data", &data) &&
			  json_object_object_get_ex(data, "field", &f), "%s %s: no data.field in %s",
			  method, params, json_object_to_json_string(e));
		cr_assert_str_eq(json_object_get_string(f), field, "%s %s: expected field %s, got %s",
				 method, params, field, json_object_to_json_string(e));
	}
	if (needle) {
		json_object_object_get_ex(e, "message", &m);
		cr_assert(strstr(json_object_get_string(m), needle),
			  "%s %s: expected the message to mention '%s', got %s", method, params,
			  needle, json_object_get_string(m));
	}
	json_object_put(r);
}

const char *t_json_str(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k, json_object_to_json_string(o));
	return json_object_get_string(v);
}

int64_t t_json_int(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

int t_reply_code(const char *reply)
{
	json_object *o = json_tokener_parse(reply), *e, *c;
	int code = 0;

	if (o && json_object_object_get_ex(o, "error", &e) &&
	    json_object_object_get_ex(e, "code", &c))
		code = json_object_get_int(c);
	json_object_put(o);
	return code;
}

void t_daemon_fini(struct test_daemon *d, const char *top)
{
	int st;

	if (d->pid <= 0)
		return;
	st = test_daemon_stop(d);
	cr_expect_eq(st, 0, "slotd did not exit cleanly (its log is above)");
	if (st == 0)
		test_rmtree(top);
}
