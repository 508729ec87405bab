/* One JSON-RPC 2.0 connection to slotd over its Unix stream socket: one
 * JSON text per '\n'-terminated line in each direction.  The socket is
 * non-blocking and every wait is a poll() bounded by a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clients/slotctl.h"

/* A reply line larger than this is refused rather than buffered. */
#define CONN_MAX_LINE	(256u << 20)

struct slotctl_conn {
	int fd;
	pid_t ssh_pid;		/* > 0: the connection is this ssh's stdio */
	int64_t next_id;
	char *buf;		/* received bytes not yet returned */
	size_t len, cap;
};

long long slotctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (0 when past); -1 deadline is never. */
static int left_ms(long long deadline)
{
	long long left;

	if (deadline < 0)
		return -1;
	left = deadline - slotctl_now_ms();
	if (left <= 0)
		return 0;
	return left > 1 << 30 ? 1 << 30 : (int)left;
}

static long long deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : slotctl_now_ms() + timeout_ms;
}

/* Connects a socket to path; a full backlog waits at most timeout_ms. */
static int connect_unix(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* AF_UNIX connect() honours the send timeout. */
	if (timeout_ms > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = errno == EINPROGRESS || errno == EAGAIN ? -ETIMEDOUT
							      : -errno;
		close(fd);
		return ret;
	}
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int slotctl_conn_open(const char *path, int timeout_ms,
		      struct slotctl_conn **out)
{
	struct slotctl_conn *c = calloc(1, sizeof(*c));
	int fd;

	if (!c)
		return -ENOMEM;
	fd = connect_unix(path, timeout_ms);
	if (fd < 0) {
		free(c);
		return fd;
	}
	c->fd = fd;
	c->next_id = 1;
	*out = c;
	return 0;
}

int slotctl_conn_open_ssh(const struct slotctl_ssh_addr *h,
			  struct slotctl_conn **out)
{
	struct slotctl_conn *c = calloc(1, sizeof(*c));
	int fd;

	if (!c)
		return -ENOMEM;
	fd = slotctl_ssh_spawn(h, &c->ssh_pid);
	if (fd < 0) {
		free(c);
		return fd;
	}
	c->fd = fd;
	c->next_id = 1;
	*out = c;
	return 0;
}

int slotctl_conn_fd(const struct slotctl_conn *c)
{
	return c->fd;
}

void slotctl_conn_close(struct slotctl_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	if (c->ssh_pid > 0)
		slotctl_ssh_reap(c->ssh_pid);
	free(c->buf);
	free(c);
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	/* EINTR is returned: only "events watch" catches signals, to stop. */
	r = poll(&p, 1, left_ms(deadline));
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Writes all of buf before the deadline. */
static int write_all(int fd, const char *buf, size_t len, long long deadline)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		int ret;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ret = wait_fd(fd, POLLOUT, deadline);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0)
			return errno == EPIPE ? -ECONNRESET : -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int slotctl_conn_send(struct slotctl_conn *c, const char *method,
		      json_object *params, int64_t *id, int timeout_ms)
{
	json_object *req = json_object_new_object();
	const char *text;
	int ret;

	if (!req)
		return -ENOMEM;
	*id = c->next_id++;
	json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(req, "id", json_object_new_int64(*id));
	json_object_object_add(req, "method", json_object_new_string(method));
	if (params)
		json_object_object_add(req, "params", json_object_get(params));
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	ret = write_all(c->fd, text, strlen(text), deadline_of(timeout_ms));
	if (!ret)
		ret = write_all(c->fd, "\n", 1, deadline_of(timeout_ms));
	json_object_put(req);
	return ret;
}

/* Reads what is available into the buffer; -ECONNRESET on EOF. */
static int fill(struct slotctl_conn *c, long long deadline)
{
	ssize_t n;
	int ret;

	if (c->cap - c->len < 4096) {
		size_t cap = c->cap ? c->cap * 2 : 65536;
		char *nb;

		if (cap > CONN_MAX_LINE)
			return -EMSGSIZE;
		nb = realloc(c->buf, cap);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = cap;
	}
	ret = wait_fd(c->fd, POLLIN, deadline);
	if (ret)
		return ret;
	n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	c->len += (size_t)n;
	return 0;
}

/* Takes the first complete line out of the buffer, parsed; -EAGAIN for
 * an empty line. */
static int take_line(struct slotctl_conn *c, char *nl, json_object **msg)
{
	size_t n = (size_t)(nl - c->buf);

	*nl = 0;
	*msg = n ? json_tokener_parse(c->buf) : NULL;
	memmove(c->buf, nl + 1, c->len - n - 1);
	c->len -= n + 1;
	if (!n)
		return -EAGAIN;
	return *msg ? 0 : -EBADMSG;
}

int slotctl_conn_recv(struct slotctl_conn *c, int timeout_ms,
		      json_object **msg)
{
	long long deadline = deadline_of(timeout_ms);
	size_t scanned = 0;

	for (;;) {
		char *nl = c->len ? memchr(c->buf + scanned, '\n',
					   c->len - scanned) : NULL;
		int ret;

		if (nl) {
			ret = take_line(c, nl, msg);
			if (ret != -EAGAIN)
				return ret;
			scanned = 0;
			continue;
		}
		scanned = c->len;
		ret = fill(c, deadline);
		if (ret)
			return ret;
	}
}

/* True when msg is the reply to request id (not a notification). */
static bool is_reply_to(json_object *msg, int64_t id)
{
	json_object *jid;

	if (!json_object_object_get_ex(msg, "id", &jid))
		return false;
	/* A null id answers a request the server could not parse. */
	return json_object_is_type(jid, json_type_null) ||
	       (json_object_is_type(jid, json_type_int) &&
		json_object_get_int64(jid) == id);
}

int slotctl_conn_call(struct slotctl_conn *c, const char *method,
		      json_object *params, int timeout_ms, json_object **reply)
{
	long long deadline = deadline_of(timeout_ms);
	int64_t id;
	int ret = slotctl_conn_send(c, method, params, &id, timeout_ms);

	while (!ret) {
		json_object *msg;

		ret = slotctl_conn_recv(c, left_ms(deadline), &msg);
		if (ret)
			break;
		if (is_reply_to(msg, id)) {
			*reply = msg;
			return 0;
		}
		json_object_put(msg);	/* a notification: not ours to show */
	}
	return ret;
}
