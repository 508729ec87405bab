/* The JSON-RPC server on libevent: listeners, connections, line framing,
 * limits, notifications. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "daemon/log.h"
#include "rpc/internal.h"

#define WRITE_TIMEOUT_S	30

const char *const rpc_topic_names[] = {
	"vm.state_changed", "vm.quirk_changed",
	"memslot.created", "memslot.moved", "memslot.deleted",
};
const size_t rpc_topic_count = sizeof(rpc_topic_names) / sizeof(rpc_topic_names[0]);

int rpc_topic_bit(const char *name)
{
	for (size_t i = 0; i < rpc_topic_count; i++)
		if (!strcmp(rpc_topic_names[i], name))
			return (int)i;
	return -ENOENT;
}

static void conn_free(struct rpc_conn *c)
{
	struct rpc_server *srv = c->srv;

	slog_debug("rpc: connection %llu closed", (unsigned long long)c->id);
	TAILQ_REMOVE(&srv->conns, c, link);
	srv->nconns--;
	bufferevent_free(c->bev);
	if (c->pending)
		evbuffer_free(c->pending);
	free(c);
}

struct rpc_conn *rpc_conn_find(struct rpc_server *srv, uint64_t id)
{
	struct rpc_conn *c;

	TAILQ_FOREACH(c, &srv->conns, link)
		if (c->id == id)
			return c;
	return NULL;
}

/* Sends the pending replies: straight to the socket when nothing waits
 * before them, which spares the bufferevent's round of enabling EV_WRITE,
 * polling and disabling it again (three syscalls a reply); what the
 * socket does not take goes to the bufferevent. */
static void conn_flush(struct rpc_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (!evbuffer_get_length(c->pending))
		return;
	if (!evbuffer_get_length(out))
		evbuffer_write(c->pending, bufferevent_getfd(c->bev));
	if (evbuffer_get_length(c->pending))
		evbuffer_add_buffer(out, c->pending);
}

/* Queues one reply line; replies to the lines of one read go out together
 * when it is done, any other at once. */
static int conn_send(struct rpc_conn *c, const char *text, size_t len)
{
	size_t queued = evbuffer_get_length(bufferevent_get_output(c->bev)) +
			evbuffer_get_length(c->pending);

	if (queued + len > c->srv->cfg.max_outbuf) {
		slog_warn("rpc: connection %llu (pid %d) stopped reading; "
			  "%zu reply bytes pending, dropping it",
			  (unsigned long long)c->id, (int)c->pid, queued);
		return -ENOBUFS;
	}
	evbuffer_add(c->pending, text, len);
	evbuffer_add(c->pending, "\n", 1);
	if (!c->reading)
		conn_flush(c);
	return 0;
}

/* An error reply for a line that never reached the JSON layer. */
static int conn_send_error(struct rpc_conn *c, int code, const char *msg,
			   const char *detail)
{
	char buf[512];
	json_object *d = json_object_new_string(detail);
	int n;

	n = snprintf(buf, sizeof(buf),
		     "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"%s\","
		     "\"data\":{\"detail\":%s}},\"id\":null}", code, msg,
		     json_object_to_json_string(d));
	json_object_put(d);
	return conn_send(c, buf, (size_t)n);
}

static int handle_line(struct rpc_conn *c, char *line, size_t n)
{
	char *reply;
	int r = 0;

	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = 0;
	if (!n)
		return 0;	/* blank lines are keep-alives */
	reply = rpc_server_handle(c->srv, c->id, line, n);
	if (reply) {
		r = conn_send(c, reply, strlen(reply));
		free(reply);
	}
	return r;
}

/* Drops input up to and including the next '\n'; true once found. */
static bool discard_to_eol(struct evbuffer *in)
{
	struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);

	if (p.pos < 0) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return false;
	}
	evbuffer_drain(in, (size_t)p.pos + 1);
	return true;
}

static int too_large(struct rpc_conn *c)
{
	char detail[128];

	snprintf(detail, sizeof(detail),
		 "message exceeds the limit of %zu bytes; it was discarded",
		 c->srv->cfg.max_message);
	slog_warn("rpc: connection %llu sent more than %zu bytes in one line",
		  (unsigned long long)c->id, c->srv->cfg.max_message);
	return conn_send_error(c, RPC_INVALID_REQUEST, "Invalid Request", detail);
}

static int read_lines(struct rpc_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n;
	char *line;
	int r;

	for (;;) {
		if (c->discarding) {
			if (!discard_to_eol(in))
				return 0;
			c->discarding = false;
		}
		line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
		if (!line) {
			if (evbuffer_get_length(in) <= c->srv->cfg.max_message)
				return 0;
			c->discarding = true;
			r = too_large(c);
		} else {
			r = n > c->srv->cfg.max_message ? too_large(c) :
							  handle_line(c, line, n);
			free(line);
		}
		if (r)
			return r;
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_conn *c = arg;
	int r;

	(void)bev;
	c->reading = true;
	r = read_lines(c);
	c->reading = false;
	if (r)
		conn_free(c);
	else
		conn_flush(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_conn *c = arg;

	if (c->closing && !evbuffer_get_length(bufferevent_get_output(bev)))
		conn_free(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct rpc_conn *c = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_WRITING) &&
	    evbuffer_get_length(bufferevent_get_output(bev))) {
		/* The client closed its side; flush what it asked for. */
		c->closing = true;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		slog_warn("rpc: connection %llu did not read for %d s, dropping it",
			  (unsigned long long)c->id, WRITE_TIMEOUT_S);
	conn_free(c);
}

static void refuse(struct rpc_server *srv, int fd)
{
	char buf[256];
	int n;

	n = snprintf(buf, sizeof(buf),
		     "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":"
		     "\"Too many connections: slotd serves at most %u at once; "
		     "retry later\"},\"id\":null}\n", RPC_ERR_OVERLOADED,
		     srv->cfg.max_conns);
	if (send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* The refusal is best effort. */
	}
	close(fd);
}

static void conn_log_peer(struct rpc_conn *c, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->gid = cred.gid;
	}
	slog_info("rpc: connection %llu from pid %d uid %u gid %u",
		  (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
		  (unsigned)c->gid);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
		      struct sockaddr *sa, int socklen, void *arg)
{
	struct rpc_server *srv = arg;
	struct timeval wt = { .tv_sec = WRITE_TIMEOUT_S };
	struct rpc_conn *c;

	(void)lev; (void)sa; (void)socklen;
	if (srv->nconns >= srv->cfg.max_conns) {
		slog_warn("rpc: refusing a connection: %u already open", srv->nconns);
		refuse(srv, fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c && (c->pending = evbuffer_new()))
		c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c || !c->bev) {
		if (c && c->pending)
			evbuffer_free(c->pending);
		free(c);
		close(fd);
		return;
	}
	c->srv = srv;
	c->id = ++srv->next_conn_id;
	TAILQ_INSERT_TAIL(&srv->conns, c, link);
	srv->nconns++;
	conn_log_peer(c, fd);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpc_listener *l = arg;

	(void)fd; (void)what;
	evconnlistener_enable(l->lev);
}

/* EMFILE/ENFILE: stop accepting for a moment instead of spinning. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct rpc_server *srv = arg;
	struct timeval tv = { .tv_usec = 100 * 1000 };
	int e = EVUTIL_SOCKET_ERROR();
	struct rpc_listener *l;

	TAILQ_FOREACH(l, &srv->listeners, link)
		if (l->lev == lev)
			break;
	if (l && (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)) {
		slog_warn("rpc: accept: %s; pausing accepts for 100 ms", strerror(e));
		evconnlistener_disable(lev);
		event_add(l->backoff, &tv);
	} else if (e != EAGAIN && e != EINTR && e != ECONNABORTED) {
		slog_error("rpc: accept: %s", strerror(e));
	}
}

int rpc_server_listen(struct rpc_server *srv, int fd)
{
	struct rpc_listener *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	evutil_make_socket_nonblocking(fd);
	l->lev = evconnlistener_new(srv->base, accept_cb, srv,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				    0, fd);
	l->backoff = evtimer_new(srv->base, backoff_cb, l);
	if (!l->lev || !l->backoff) {
		if (l->lev)
			evconnlistener_free(l->lev);
		free(l);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	TAILQ_INSERT_TAIL(&srv->listeners, l, link);
	return 0;
}

void rpc_server_stop_listening(struct rpc_server *srv)
{
	struct rpc_listener *l;

	rpc_http_destroy(srv->http);
	srv->http = NULL;
	while ((l = TAILQ_FIRST(&srv->listeners))) {
		int lfd = evconnlistener_get_fd(l->lev), fd;

		/* Clients that connected before we stopped are served. */
		while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			accept_cb(l->lev, fd, NULL, 0, srv);
		TAILQ_REMOVE(&srv->listeners, l, link);
		evconnlistener_free(l->lev);
		event_free(l->backoff);
		free(l);
	}
}

unsigned rpc_server_conn_count(const struct rpc_server *srv)
{
	return srv->nconns;
}

bool rpc_server_flushed(const struct rpc_server *srv)
{
	struct rpc_conn *c;
	int unread;

	TAILQ_FOREACH(c, &srv->conns, link) {
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) ||
		    evbuffer_get_length(bufferevent_get_input(c->bev)))
			return false;
		/* Requests already sent but not yet read are in flight too. */
		if (!c->closing && ioctl(bufferevent_getfd(c->bev), FIONREAD, &unread) == 0 &&
		    unread > 0)
			return false;
	}
	return true;
}

bool rpc_server_topic_wanted(const struct rpc_server *srv, const char *topic)
{
	int bit = rpc_topic_bit(topic);
	struct rpc_conn *c;

	TAILQ_FOREACH(c, &srv->conns, link)
		if (bit >= 0 && (c->topics & (1ull << bit)) && !c->closing)
			return true;
	return false;
}

void rpc_server_notify(struct rpc_server *srv, const char *topic,
		       json_object *params)
{
	json_object *n = json_object_new_object();
	struct rpc_conn *c, *tmp;
	char *text;
	int bit = rpc_topic_bit(topic);

	json_object_object_add(n, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(n, "method", json_object_new_string(topic));
	json_object_object_add(n, "params", params);
	text = rpc_json_text(n);
	TAILQ_FOREACH_SAFE(c, &srv->conns, link, tmp) {
		if (!text || bit < 0 || !(c->topics & (1ull << bit)) || c->closing)
			continue;
		if (conn_send(c, text, strlen(text)))
			conn_free(c);
	}
	free(text);
	json_object_put(n);
}

static int method_sort(const void *a, const void *b)
{
	const struct rpc_method *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

int rpc_server_register(struct rpc_server *srv, const struct rpc_method *m,
			size_t n)
{
	const struct rpc_method **t;

	t = realloc(srv->methods, (srv->nmethods + n) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		t[srv->nmethods + i] = &m[i];
	srv->methods = t;
	srv->nmethods += n;
	qsort(t, srv->nmethods, sizeof(*t), method_sort);
	for (size_t i = 1; i < srv->nmethods; i++) {
		if (!strcmp(t[i - 1]->name, t[i]->name)) {
			slog_error("rpc: method %s registered twice", t[i]->name);
			return -EEXIST;
		}
	}
	return 0;
}

size_t rpc_server_method_count(const struct rpc_server *srv)
{
	return srv->nmethods;
}

const char *rpc_server_method_name(const struct rpc_server *srv, size_t i)
{
	return i < srv->nmethods ? srv->methods[i]->name : NULL;
}

json_object *rpc_server_openrpc(struct rpc_server *srv)
{
	return srv->openrpc;
}

int rpc_server_create(struct event_base *base, const struct rpc_config *cfg,
		      struct rpc_server **out)
{
	struct rpc_server *srv = calloc(1, sizeof(*srv));
	const char *doc;

	if (!srv)
		return -ENOMEM;
	srv->base = base;
	srv->cfg = *cfg;
	if (!srv->cfg.max_message)
		srv->cfg.max_message = 1 << 20;
	if (!srv->cfg.max_batch)
		srv->cfg.max_batch = 256;
	if (!srv->cfg.max_conns)
		srv->cfg.max_conns = 256;
	if (!srv->cfg.max_outbuf)
		srv->cfg.max_outbuf = 64 << 20;
	doc = cfg->openrpc ? cfg->openrpc : slotd_openrpc_json;
	srv->openrpc = json_tokener_parse(doc);
	if (!srv->openrpc) {
		slog_error("rpc: the OpenRPC document does not parse");
		free(srv);
		return -EINVAL;
	}
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->listeners);
	*out = srv;
	return 0;
}

void rpc_server_destroy(struct rpc_server *srv)
{
	struct rpc_conn *c;

	if (!srv)
		return;
	rpc_server_stop_listening(srv);
	while ((c = TAILQ_FIRST(&srv->conns)))
		conn_free(c);
	json_object_put(srv->method_index);
	rpc_state_free(srv);
	json_object_put(srv->openrpc);
	free(srv->methods);
	free(srv);
}
