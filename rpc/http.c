/* The optional HTTP listener: POST /rpc (the same JSON-RPC handling as
 * the Unix socket), GET /metrics (Prometheus text) and GET /healthz.
 * TCP listeners must be on loopback and require a bearer token.
 *
 * Everything a client can make slotd hold is limited before its token is
 * looked at: connections (--http-max-connections, then 503), the request
 * head (--http-max-header, 431), the time to send it
 * (--http-header-timeout, 408), the body (--max-message, 413) and the
 * time to send it (--http-body-timeout, 408).  One request is served at
 * a time per connection; the next is read once the reply is written, and
 * replies count against the listener's output budget as on the socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "rpc/internal.h"
#include "rpc/metrics.h"

#define HTTP_WRITE_TIMEOUT_S	30
#define HTTP_PAUSE_BYTES	(256u << 10)

struct rpc_http {
	struct rpc_server *srv;
	struct rpc_listener *l;
	char *token;
	char *unix_path;	/* unlinked when the listener stops */
	TAILQ_HEAD(, http_conn) conns;
};

enum http_state { HTTP_HEAD, HTTP_BODY, HTTP_REPLYING, HTTP_CLOSING };

struct http_conn {
	TAILQ_ENTRY(http_conn) link;
	struct rpc_http *h;
	struct bufferevent *bev;
	struct event *timer;	/* head, body or keep-alive deadline */
	enum http_state state;
	bool blocked;		/* waiting for the listener's budget */
	struct rpc_http_req req;
	char *head;		/* the current request's head (req points in) */
	struct rpc_peer peer;
};

/* ---- replies ---------------------------------------------------------- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Error";
}

static void conn_free(struct http_conn *c)
{
	struct rpc_listener *l = c->h->l;

	TAILQ_REMOVE(&c->h->conns, c, link);
	l->nblocked -= c->blocked;
	rpc_listener_conn_gone(l);
	rpc_listener_untrack(l, bufferevent_get_output(c->bev));
	bufferevent_free(c->bev);
	event_free(c->timer);
	free(c->head);
	free(c);
}

/* Queues a response; extra holds header lines ("Name: v\r\n").  HEAD
 * gets the headers only.  An error status closes the connection. */
static void respond(struct http_conn *c, int status, const char *ctype,
		    const char *extra, const char *body, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	bool keep = status < 400 && c->req.keep_alive;

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s"
			    "Cache-Control: no-store\r\nConnection: %s\r\n\r\n", status,
			    reason(status), len, ctype ? "Content-Type: " : "",
			    ctype ? ctype : "", ctype ? "\r\n" : "", extra ? extra : "",
			    keep ? "keep-alive" : "close");
	if (body && c->req.method != RPC_HTTP_HEAD)
		evbuffer_add(out, body, len);
	c->state = keep ? HTTP_REPLYING : HTTP_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	event_del(c->timer);
}

static void respond_text(struct http_conn *c, int status, const char *extra,
			 const char *text)
{
	respond(c, status, "text/plain; charset=utf-8", extra, text, strlen(text));
}

/* An error reply naming why (status 400..599). */
static void refuse(struct http_conn *c, int status, const char *why)
{
	char body[256];

	snprintf(body, sizeof(body), "%d %s: %s\n", status, reason(status), why);
	slog_debug("http: %s: %d %s", c->peer.via, status, why);
	respond_text(c, status, NULL, body);
}

/* ---- endpoints -------------------------------------------------------- */

/* Compares without an early exit, so timing does not leak the token. */
static bool token_equal(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

static bool authorized(const struct rpc_http *h, const struct rpc_http_req *r)
{
	if (!h->token)
		return true;
	return r->auth && r->auth_len > 7 && !strncasecmp(r->auth, "Bearer ", 7) &&
	       token_equal(r->auth + 7, r->auth_len - 7, h->token);
}

/* The page is rendered by rpc/metrics.c. */
static void handle_metrics(struct http_conn *c)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;

	if (!b) {
		refuse(c, 500, "out of memory");
		return;
	}
	rpc_metrics_render(c->h->srv, b);
	len = evbuffer_get_length(b);
	respond(c, 200, "text/plain; version=0.0.4", NULL, (const char *)evbuffer_pullup(b, -1),
		len);
	evbuffer_free(b);
}

static void handle_rpc(struct http_conn *c, const char *body, size_t len)
{
	char *reply = rpc_handle_peer(c->h->srv, &c->peer, body, len, c->h->srv->cfg.max_outbuf);

	if (!reply) {
		respond(c, 204, NULL, NULL, NULL, 0);
		return;
	}
	respond(c, 200, "application/json", NULL, reply, strlen(reply));
	free(reply);
}

static bool path_is(const struct rpc_http_req *r, const char *p)
{
	return r->path_len == strlen(p) && !memcmp(r->target, p, r->path_len);
}

/* Routes a complete head; true when a body is to be read next. */
static bool route_head(struct http_conn *c)
{
	const struct rpc_http_req *r = &c->req;
	bool rpc = path_is(r, "/rpc"), get = r->method == RPC_HTTP_GET || r->method == RPC_HTTP_HEAD;

	/* Limits first: they hold whatever the token. */
	if (r->content_length > c->h->srv->cfg.max_message) {
		refuse(c, 413, "the body exceeds --max-message");
		return false;
	}
	if (r->method != RPC_HTTP_POST && r->content_length) {
		refuse(c, 400, "only POST requests have a body here");
		return false;
	}
	if (path_is(r, "/healthz") && get) {
		static const char ok[] = "{\"status\":\"ok\"}\n";

		respond(c, 200, "application/json", NULL, ok, sizeof(ok) - 1);
		return false;
	}
	if (!authorized(c->h, r)) {
		respond_text(c, 401, "WWW-Authenticate: Bearer realm=\"slotd\"\r\n",
			     "a valid 'Authorization: Bearer TOKEN' header is required\n");
		return false;
	}
	if (rpc && r->method != RPC_HTTP_POST) {
		respond_text(c, 405, "Allow: POST\r\n", "use POST\n");
	} else if ((path_is(r, "/metrics") || path_is(r, "/healthz")) && !get) {
		respond_text(c, 405, "Allow: GET, HEAD\r\n", "use GET\n");
	} else if (path_is(r, "/metrics")) {
		handle_metrics(c);
	} else if (!rpc) {
		respond_text(c, 404, NULL, "slotd serves POST /rpc, GET /metrics and GET /healthz\n");
	} else {
		return true;
	}
	return false;
}

/* ---- the connection --------------------------------------------------- */

static void timer_arm(struct http_conn *c, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	event_add(c->timer, &tv);
}

/* Whether a new request may be taken: the listener's budget leaves room
 * for a reply of the largest size. */
static bool may_take(const struct http_conn *c)
{
	const struct rpc_config *cfg = &c->h->srv->cfg;

	return c->h->l->out_total + cfg->max_outbuf <= cfg->max_output_total;
}

/* Reads a complete head off the input, if there is one. */
static void take_head(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t have = evbuffer_get_length(in), max = c->h->srv->cfg.http_max_header;
	size_t look = have < max ? have : max;
	const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
	int r;

	if (!look)
		return;
	r = rpc_http_parse_head(p, have, max, &c->req);
	if (r < 0) {
		refuse(c, c->req.status, c->req.why);
		return;
	}
	if (r == 0)
		return;
	free(c->head);
	c->head = malloc(c->req.head_len);
	if (!c->head) {
		refuse(c, 500, "out of memory");
		return;
	}
	/* The request's pointers move to a copy: the buffer drains. */
	evbuffer_remove(in, c->head, c->req.head_len);
	c->req.target = c->head + (c->req.target - p);
	if (c->req.auth)
		c->req.auth = c->head + (c->req.auth - p);
	if (!route_head(c))
		return;
	c->state = HTTP_BODY;
	timer_arm(c, c->h->srv->cfg.http_body_timeout_s);
	if (c->req.expect_continue && evbuffer_get_length(in) < c->req.content_length)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
}

/* Serves the body once all of it is in. */
static void take_body(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = (size_t)c->req.content_length;
	char *body;

	if (evbuffer_get_length(in) < n)
		return;
	body = malloc(n + 1);
	if (!body) {
		refuse(c, 500, "out of memory");
		return;
	}
	evbuffer_remove(in, body, n);
	body[n] = 0;
	handle_rpc(c, body, n);
	free(body);
}

/* Runs the state machine on what has arrived. */
static void conn_step(struct http_conn *c)
{
	if (c->state == HTTP_HEAD) {
		if (!may_take(c)) {
			/* The wait is slotd's, not the client's: no timer. */
			if (!c->blocked) {
				c->blocked = true;
				c->h->l->nblocked++;
				bufferevent_disable(c->bev, EV_READ);
				event_del(c->timer);
			}
			return;
		}
		take_head(c);
	}
	if (c->state == HTTP_BODY)
		take_body(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_step(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)))
		return;
	if (c->state == HTTP_CLOSING) {
		conn_free(c);
		return;
	}
	if (c->state != HTTP_REPLYING)
		return;
	/* Keep-alive: the next request has its head timeout from now. */
	c->state = HTTP_HEAD;
	timer_arm(c, c->h->srv->cfg.http_header_timeout_s);
	bufferevent_enable(bev, EV_READ);
	conn_step(c);	/* a pipelined request may be waiting */
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_WRITING) &&
	    evbuffer_get_length(bufferevent_get_output(bev))) {
		c->state = HTTP_CLOSING;	/* flush what was asked for */
		bufferevent_disable(bev, EV_READ);
		return;
	}
	conn_free(c);
}

/* The head or body did not arrive in time, or a kept-alive connection
 * stayed silent: 408 for a request under way, silence for none. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	size_t have = evbuffer_get_length(bufferevent_get_input(c->bev));

	(void)fd; (void)what;
	if (c->state == HTTP_HEAD && have == 0) {
		conn_free(c);
		return;
	}
	c->req.keep_alive = false;
	refuse(c, 408, c->state == HTTP_BODY ? "the body did not arrive in time" :
		       "the request head did not arrive in time");
}

/* Answers 503 to a connection over the cap, without reading from it. */
static void turn_away(int fd, unsigned max)
{
	char body[96], buf[320];
	int b = snprintf(body, sizeof(body), "slotd serves at most %u HTTP connections; "
			 "retry later\n", max);
	int n = snprintf(buf, sizeof(buf), "HTTP/1.1 503 Service Unavailable\r\n"
			 "Retry-After: 1\r\nConnection: close\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %d\r\n\r\n%s", b, body);

	if (n > 0 && n < (int)sizeof(buf) &&
	    send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* best effort */
	}
	close(fd);
}

static void peer_set(struct http_conn *c, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	c->peer.via = "HTTP";
	if (c->h->unix_path && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->peer.pid = cred.pid;
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
		c->peer.has_cred = true;
	}
}

static void http_accept(struct rpc_listener *l, int fd)
{
	struct rpc_http *h = l->arg;
	struct http_conn *c;
	struct timeval wt = { .tv_sec = HTTP_WRITE_TIMEOUT_S };

	if (l->nconns >= l->max_conns) {
		slog_warn("http: refusing a connection: %u already open", l->nconns);
		turn_away(fd, l->max_conns);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c)
		c->bev = bufferevent_socket_new(h->srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c && c->bev)
		c->timer = evtimer_new(h->srv->base, timer_cb, c);
	if (!c || !c->bev || !c->timer) {
		if (c && c->bev)
			bufferevent_free(c->bev);
		else
			close(fd);
		free(c);
		return;
	}
	c->h = h;
	peer_set(c, fd);
	TAILQ_INSERT_TAIL(&h->conns, c, link);
	l->nconns++;
	rpc_listener_track(l, bufferevent_get_output(c->bev));
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c, h->srv->cfg.http_header_timeout_s);
}

/* ---- the listener ----------------------------------------------------- */

void rpc_http_listener_resume(struct rpc_listener *l)
{
	struct rpc_http *h = l->arg;
	struct http_conn *c, *tmp;

	TAILQ_FOREACH_SAFE(c, &h->conns, link, tmp) {
		if (!c->blocked || !may_take(c))
			continue;
		c->blocked = false;
		l->nblocked--;
		bufferevent_enable(c->bev, EV_READ);
		timer_arm(c, c->h->srv->cfg.http_header_timeout_s);
		conn_step(c);
	}
}

void rpc_http_listener_stop(struct rpc_listener *l)
{
	struct rpc_http *h = l->arg;

	if (h->unix_path)
		unlink(h->unix_path);
	free(h->unix_path);
	h->unix_path = NULL;
}

bool rpc_http_listener_flushed(const struct rpc_listener *l)
{
	const struct rpc_http *h = l->arg;
	const struct http_conn *c;

	/* A request whose head or body is still arriving is not in flight:
	 * its client has not finished sending it. */
	TAILQ_FOREACH(c, &h->conns, link)
		if (evbuffer_get_length(bufferevent_get_output(c->bev)))
			return false;
	return true;
}

void rpc_http_listener_free(struct rpc_listener *l)
{
	struct rpc_http *h = l->arg;
	struct http_conn *c;

	while ((c = TAILQ_FIRST(&h->conns)))
		conn_free(c);
	rpc_http_listener_stop(l);
	free(h->token);
	free(h);
	l->arg = NULL;
}

/* HOST:PORT, a loopback address with a decimal port, into ss. */
static int tcp_addr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (void *)ss;
	struct sockaddr_in6 *s6 = (void *)ss;
	const char *colon = strrchr(addr, ':'), *port = colon ? colon + 1 : NULL;
	unsigned long pn;
	char host[64];

	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host) || !*port ||
	    *port == '0' || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
		return -EINVAL;
	pn = strtoul(port, NULL, 10);
	if (pn > 65535)
		return -EINVAL;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
			return -EADDRNOTAVAIL;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return -EADDRNOTAVAIL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		*len = sizeof(*s6);
		return 0;
	}
	return -EADDRNOTAVAIL;
}

/* A listening TCP socket bound to ss. */
static int bind_tcp(const struct sockaddr_storage *ss, socklen_t len, int *fd)
{
	int one = 1, s, e;

	s = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (const struct sockaddr *)ss, len) < 0 || listen(s, 128) < 0) {
		e = errno;
		close(s);
		return -e;
	}
	*fd = s;
	return 0;
}

static void http_log_error(const char *addr, int r)
{
	if (r == -EADDRNOTAVAIL)
		slog_error("--http %s: TCP listeners must be on a loopback address", addr);
	else if (r == -EACCES)
		slog_error("--http %s: a TCP listener needs --http-token-file", addr);
	else if (r == -EINVAL)
		slog_error("--http %s: expected unix:PATH or HOST:PORT (a decimal port "
			   "in 1..65535)", addr);
	else if (strncmp(addr, "unix:", 5))
		slog_error("--http %s: %s", addr, strerror(-r));
	/* else rpc_unix_listen said why */
}

/* The listening socket for addr: unix:PATH (with the checks of every
 * socket slotd binds) or a loopback HOST:PORT (which needs a token). */
static int http_bind(struct rpc_http *h, const char *addr, int *fd)
{
	if (!strncmp(addr, "unix:", 5)) {
		int r = rpc_unix_listen(addr + 5, 0660, h->srv->cfg.socket_group, fd);

		if (!r && !(h->unix_path = strdup(addr + 5))) {
			close(*fd);
			unlink(addr + 5);
			return -ENOMEM;
		}
		return r;
	}
	{
		struct sockaddr_storage ss;
		socklen_t len;
		int r = tcp_addr_parse(addr, &ss, &len);

		if (r)
			return r;
		if (!h->token)
			return -EACCES;
		return bind_tcp(&ss, len, fd);
	}
}

int rpc_server_http_listen(struct rpc_server *srv, const char *addr,
			   const char *token_file)
{
	struct rpc_http *h = calloc(1, sizeof(*h));
	char why[160];
	int r, fd = -1;

	if (!h)
		return -ENOMEM;
	h->srv = srv;
	TAILQ_INIT(&h->conns);
	if (token_file && (r = rpc_token_read(token_file, &h->token, why, sizeof(why)))) {
		slog_error("--http-token-file %s: %s", token_file, why);
		goto fail;
	}
	r = http_bind(h, addr, &fd);
	if (r) {
		http_log_error(addr, r);
		goto fail;
	}
	r = rpc_listener_add(srv, fd, "HTTP listener", http_accept, h, srv->cfg.http_max_conns, &h->l);
	if (r)
		goto fail;
	slog_info("HTTP listener on %s%s", addr, h->token ? " (bearer token required)" : "");
	return 0;
fail:
	if (h->unix_path)
		unlink(h->unix_path);
	free(h->unix_path);
	free(h->token);
	free(h);
	return r;
}
