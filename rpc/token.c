/* The HTTP listener's bearer token file, read strictly: a token is never
 * cut or guessed at, so a file that is not exactly one token is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc/rpc.h"

/* Checks the token's text: one line of visible ASCII (RFC 6750 allows
 * less; nothing else can be sent in a header unquoted anyway). */
static int token_check(const char *buf, size_t n, char *why, size_t whylen)
{
	if (n && buf[n - 1] == '\n')
		n--;
	if (n && buf[n - 1] == '\r')
		n--;
	if (n == 0) {
		snprintf(why, whylen, "the file holds no token");
		return -EINVAL;
	}
	if (n > RPC_TOKEN_MAX) {
		snprintf(why, whylen, "the token is longer than %d bytes", RPC_TOKEN_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == 0 || c == '\n' || c == '\r') {
			snprintf(why, whylen, "%s at byte %zu: the file must hold one line",
				 c ? "a line break" : "a NUL byte", i);
			return -EINVAL;
		}
		if (c <= 0x20 || c >= 0x7f) {
			snprintf(why, whylen, "byte %zu (0x%02x) is not a visible ASCII "
				 "character", i, c);
			return -EINVAL;
		}
	}
	return (int)n;
}

int rpc_token_read(const char *path, char **out, char *why, size_t whylen)
{
	char buf[RPC_TOKEN_MAX + 3];
	struct stat st;
	ssize_t n;
	int fd, r;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		r = -EINVAL;
	} else if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(why, whylen, "readable or writable by others (mode %03o); "
			 "chmod o-rw it", (unsigned)(st.st_mode & 0777));
		r = -EPERM;
	} else {
		/* One byte more than a token and its CR LF: a longer file is
		 * refused without reading it all. */
		n = pread(fd, buf, sizeof(buf), 0);
		r = n < 0 ? -errno : token_check(buf, (size_t)n, why, whylen);
		if (r < 0 && n < 0)
			snprintf(why, whylen, "%s", strerror(-r));
		if (r > 0) {
			*out = strndup(buf, (size_t)r);
			r = *out ? 0 : -ENOMEM;
		}
	}
	close(fd);
	return r;
}
