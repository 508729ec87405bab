/* Line-JSON client over a Unix socket (see jline.h). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench/lib/bench.h"
#include "bench/lib/jline.h"

int jline_open(struct jline *c, const char *path, int timeout_s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };

	memset(c, 0, sizeof(*c));
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(c->fd);
		c->fd = -1;
		return e;
	}
	return 0;
}

void jline_close(struct jline *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = c->skip = 0;
}

int jline_send(struct jline *c, const char *p, size_t len)
{
	while (len) {
		ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Drops the line returned last; makes room for at least 64 KiB more. */
static int buf_compact(struct jline *c)
{
	if (c->skip) {
		c->len -= c->skip;
		memmove(c->buf, c->buf + c->skip, c->len);
		c->skip = 0;
	}
	if (c->cap - c->len < 65536) {
		char *b = realloc(c->buf, c->cap + 262144);

		if (!b)
			return -ENOMEM;
		c->buf = b;
		c->cap += 262144;
	}
	return 0;
}

int jline_recv(struct jline *c, char **line)
{
	int ret = buf_compact(c);

	while (!ret) {
		char *nl = memchr(c->buf, '\n', c->len);
		ssize_t r;

		if (nl) {
			*nl = '\0';
			if (nl > c->buf && nl[-1] == '\r')	/* QMP ends lines with \r\n */
				nl[-1] = '\0';
			c->skip = (size_t)(nl - c->buf) + 1;
			*line = c->buf;
			return 0;
		}
		ret = buf_compact(c);
		if (ret)
			break;
		r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ECONNRESET;
		c->len += (size_t)r;
	}
	return ret;
}

/* Whether line is an asynchronous message (a QMP event, a JSON-RPC
 * notification) rather than the reply to a request. */
static bool is_async(const char *line)
{
	return strstr(line, "\"event\"") && !strstr(line, "\"return\"");
}

/* Whether line is an error reply: an "error" key whose value is an
 * object (JSON-RPC: {"code", ...}; QMP: {"class", ...}). */
static bool is_error(const char *line)
{
	return strstr(line, "\"error\":{") || strstr(line, "\"error\": {");
}

int jline_call(struct jline *c, const char *req, const char *reply_key, char **reply)
{
	char *line = NULL;
	int ret = jline_send(c, req, strlen(req));

	while (!ret) {
		ret = jline_recv(c, &line);
		if (ret)
			break;
		if (is_async(line)) {
			if (c->watch && strstr(line, c->watch))
				c->watch_seen = true;
			continue;
		}
		if (strstr(line, reply_key) && !is_error(line))
			break;
		if (is_error(line)) {
			fprintf(stderr, "bench: error reply\n  request: %s  reply:   %s\n", req, line);
			ret = -EPROTO;
		}
	}
	if (!ret && reply)
		*reply = line;
	return ret;
}

int jline_wait(struct jline *c, const char *needle, long timeout_ms)
{
	long long end = bench_now_ns() + timeout_ms * 1000000LL;
	char *line;
	int ret = 0;

	if (c->watch && c->watch_seen && !strcmp(c->watch, needle)) {
		c->watch_seen = false;
		return 0;
	}
	while (!ret) {
		char *nl = c->skip < c->len ?
			memchr(c->buf + c->skip, '\n', c->len - c->skip) : NULL;
		long left = (long)((end - bench_now_ns()) / 1000000LL);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };

		if (!nl && left <= 0)
			return -ETIMEDOUT;
		if (!nl && poll(&p, 1, (int)left) == 0)
			return -ETIMEDOUT;
		ret = jline_recv(c, &line);
		if (!ret && strstr(line, needle))
			return 0;
	}
	return ret;
}

int jline_qmp_open(struct jline *c, const char *path, int timeout_s)
{
	char *line;
	int ret = jline_open(c, path, timeout_s);

	ret = ret ? ret : jline_recv(c, &line);
	if (!ret && !strstr(line, "\"QMP\""))
		ret = -EPROTO;
	ret = ret ? ret : jline_call(c, "{\"execute\":\"qmp_capabilities\"}\n", "\"return\"", NULL);
	if (ret && c->fd >= 0)
		jline_close(c);
	return ret;
}

int jline_rpc(struct jline *c, char **reply, const char *method, const char *params_fmt, ...)
{
	char params[1024], req[1280];
	va_list ap;

	va_start(ap, params_fmt);
	vsnprintf(params, sizeof(params), params_fmt, ap);
	va_end(ap);
	snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}\n",
		 method, params);
	return jline_call(c, req, "\"result\"", reply);
}
