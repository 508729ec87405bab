/* Standard base64 (RFC 4648), as the API carries guest memory and dirty
 * bitmaps. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clients/slotctl.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of one base64 digit, -1 for anything else. */
static int b64_value(char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;

	return p ? (int)(p - b64_alphabet) : -1;
}

int slotctl_base64_decode(const char *s, unsigned char **out, size_t *len)
{
	size_t n = strlen(s), o = 0;
	unsigned char *buf = malloc(n / 4 * 3 + 3);
	unsigned acc = 0;
	int bits = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n && s[i] != '='; i++) {
		int v = b64_value(s[i]);

		if (v < 0) {
			free(buf);
			return -EBADMSG;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
		}
	}
	*out = buf;
	*len = o;
	return 0;
}

char *slotctl_base64_encode(const unsigned char *in, size_t len)
{
	char *s = malloc((len + 2) / 3 * 4 + 1), *p = s;

	for (size_t i = 0; s && i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		v |= i + 1 < len ? (unsigned)in[i + 1] << 8 : 0;
		v |= i + 2 < len ? in[i + 2] : 0;
		*p++ = b64_alphabet[v >> 18 & 63];
		*p++ = b64_alphabet[v >> 12 & 63];
		*p++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
		*p++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	if (s)
		*p = 0;
	return s;
}
