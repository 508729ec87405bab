/* Base64 (RFC 4648) for guest memory in vm.memory.read/write; none of
 * slotd's libraries offers it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *rpc_base64_encode(const unsigned char *in, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		*p++ = b64[in[i] >> 2];
		*p++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*p++ = b64[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*p++ = b64[in[i + 2] & 63];
	}
	if (i < len) {
		*p++ = b64[in[i] >> 2];
		if (i + 1 < len) {
			*p++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*p++ = b64[(in[i + 1] & 15) << 2];
		} else {
			*p++ = b64[(in[i] & 3) << 4];
			*p++ = '=';
		}
		*p++ = '=';
	}
	*p = 0;
	return out;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

int rpc_base64_decode(const char *in, unsigned char **out, size_t *outlen)
{
	size_t len = strlen(in), n = 0;
	unsigned char *buf;

	if (len % 4)
		return -EINVAL;
	buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];

		for (int k = 0; k < 4; k++) {
			bool pad = in[i + k] == '=' && i + 4 == len && k >= 2 &&
				   (k == 3 || in[i + 3] == '=');

			v[k] = pad ? 0 : b64_value(in[i + k]);
			if (v[k] < 0) {
				free(buf);
				return -EINVAL;
			}
		}
		buf[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (in[i + 2] != '=')
			buf[n++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
		if (in[i + 3] != '=')
			buf[n++] = (unsigned char)(v[2] << 6 | v[3]);
	}
	*out = buf;
	*outlen = n;
	return 0;
}
