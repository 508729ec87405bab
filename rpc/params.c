/* Param getters and size parsing for method handlers. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"

const char *rpc_param_str(json_object *params, const char *key, const char *dflt)
{
	json_object *v;

	if (!params || !json_object_object_get_ex(params, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return dflt;
	return json_object_get_string(v);
}

int64_t rpc_param_int(json_object *params, const char *key, int64_t dflt)
{
	json_object *v;

	if (!params || !json_object_object_get_ex(params, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

bool rpc_param_bool(json_object *params, const char *key, bool dflt)
{
	json_object *v;

	if (!params || !json_object_object_get_ex(params, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return dflt;
	return json_object_get_boolean(v);
}

int rpc_parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mul = 1;
	int shift = 0;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -EINVAL;
	mul <<= shift;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int rpc_param_size(struct rpc_call *call, json_object *params, const char *key,
		   uint64_t dflt, uint64_t *out)
{
	json_object *v;

	*out = dflt;
	if (!params || !json_object_object_get_ex(params, key, &v))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0)
			return rpc_call_error(call, RPC_INVALID_PARAMS, key,
					      "Invalid params: '%s' must not be negative", key);
		*out = json_object_get_uint64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string) &&
	    !rpc_parse_size(json_object_get_string(v), out))
		return 0;
	return rpc_call_error(call, RPC_INVALID_PARAMS, key,
			      "Invalid params: '%s' must be a byte count such as "
			      "4096, \"0x1000\", \"256M\" or \"1G\"", key);
}
