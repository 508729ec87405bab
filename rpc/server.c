/* The JSON-RPC server on libevent: listeners, connections, line framing,
 * limits, notifications.
 *
 * Memory stays bounded whatever clients do.  Each listener has an output
 * budget (cfg.max_output_total) shared by its connections, and each
 * connection a cap (cfg.max_outbuf) that is also the largest reply.  A
 * connection reads its next request only while its own unsent replies
 * are under PAUSE_BYTES and its listener's total leaves room for one more
 * reply of the largest size; otherwise it stops reading (the kernel's
 * socket buffer holds the client back) until its replies drain.  So a
 * listener never holds more than its budget, and a client that never
 * reads costs at most PAUSE_BYTES plus one reply, until the write timeout
 * drops it.  Notifications that do not fit drop their subscriber.
 *
 * Every notification is numbered and kept in the event ring
 * (rpc/events.c); events.subscribe {since} has the ring's events after
 * since sent right after its reply (conn_replay), through the same caps. */
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

#include "common/log.h"
#include "rpc/events.h"
#include "rpc/internal.h"
#include "rpc/metrics.h"

#define WRITE_TIMEOUT_S		30
#define PAUSE_BYTES		(256u << 10)
#define IDLE_TIMEOUT_DEFAULT_S	300
#define PEER_GROUPS_MAX		256

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

/* ---- output accounting ------------------------------------------------ */

static void out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct rpc_listener *l = arg;

	(void)b;
	l->out_total += info->n_added;
	l->out_total -= info->n_deleted;
	if (info->n_deleted && l->nblocked)
		event_active(l->resume, EV_TIMEOUT, 0);
}

void rpc_listener_track(struct rpc_listener *l, struct evbuffer *b)
{
	evbuffer_add_cb(b, out_cb, l);
}

void rpc_listener_untrack(struct rpc_listener *l, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);

	evbuffer_remove_cb(b, out_cb, l);
	l->out_total -= n;
	if (n && l->nblocked)
		event_active(l->resume, EV_TIMEOUT, 0);
}

static size_t conn_queued(const struct rpc_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) +
	       evbuffer_get_length(c->pending);
}

/* Remembers that a line ends at byte offset end of c's output stream. */
static int ends_push(struct rpc_conn *c, uint64_t end)
{
	if (c->ends_n == c->ends_cap) {
		size_t cap = c->ends_cap ? c->ends_cap * 2 : 16;
		uint64_t *v = malloc(cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < c->ends_n; i++)
			v[i] = c->ends[(c->ends_head + i) % c->ends_cap];
		free(c->ends);
		c->ends = v;
		c->ends_cap = cap;
		c->ends_head = 0;
	}
	c->ends[(c->ends_head + c->ends_n++) % c->ends_cap] = end;
	return 0;
}

/* Forgets the line ends at or before sent (the bytes written so far). */
static void ends_forget(struct rpc_conn *c, uint64_t sent)
{
	while (c->ends_n && c->ends[c->ends_head] <= sent) {
		c->last_end = c->ends[c->ends_head];
		c->ends_head = (c->ends_head + 1) % c->ends_cap;
		c->ends_n--;
	}
}

/* The end offset of the line c is in the middle of sending, or 0 when
 * what was sent ends on a line boundary. */
static uint64_t ends_current(struct rpc_conn *c, uint64_t sent)
{
	ends_forget(c, sent);
	return sent == c->last_end || !c->ends_n ? 0 : c->ends[c->ends_head];
}

/* Whether c may handle its next request now (see the top of the file). */
static bool conn_may_read(const struct rpc_conn *c)
{
	const struct rpc_config *cfg = &c->srv->cfg;

	return conn_queued(c) < PAUSE_BYTES &&
	       c->listener->out_total + cfg->max_outbuf <= cfg->max_output_total;
}

/* ---- connections ------------------------------------------------------ */

static void conn_free(struct rpc_conn *c)
{
	struct rpc_server *srv = c->srv;
	struct rpc_listener *l = c->listener;

	slog_debug("rpc: connection %llu closed", (unsigned long long)c->id);
	TAILQ_REMOVE(&srv->conns, c, link);
	srv->nconns--;
	if (l) {
		l->nconns--;
		l->nblocked -= c->blocked;
		rpc_listener_untrack(l, bufferevent_get_output(c->bev));
		rpc_listener_untrack(l, c->pending);
	}
	bufferevent_free(c->bev);
	evbuffer_free(c->pending);
	free(c->ends);
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

/* Queues one line; replies to the lines of one read go out together when
 * it is done, any other at once.  A notification that does not fit the
 * connection's cap or its listener's budget is refused (-ENOBUFS: the
 * caller drops the subscriber); replies fit by construction. */
static int conn_send(struct rpc_conn *c, const char *text, size_t len, bool notification)
{
	const struct rpc_config *cfg = &c->srv->cfg;
	size_t queued = conn_queued(c);

	if (notification && (queued + len + 1 > cfg->max_outbuf ||
			     c->listener->out_total + len + 1 > cfg->max_output_total)) {
		slog_warn("rpc: connection %llu (pid %d) does not read its events; "
			  "%zu bytes unsent, dropping it", (unsigned long long)c->id,
			  (int)c->peer.pid, queued);
		return -ENOBUFS;
	}
	/* The ends of unsent lines: a drain past its deadline stops at one. */
	ends_forget(c, c->appended - queued);
	c->appended += len + 1;
	if (ends_push(c, c->appended))
		return -ENOMEM;
	evbuffer_add(c->pending, text, len);
	evbuffer_add(c->pending, "\n", 1);
	if (!c->reading)
		conn_flush(c);
	return 0;
}

/* An error line for a request that never reached the JSON layer. */
static int conn_send_error(struct rpc_conn *c, int code, const char *msg,
			   const char *detail)
{
	json_object *e = json_object_new_object(), *err = json_object_new_object(),
		    *data = json_object_new_object();
	char *text;
	int r;

	json_object_object_add(data, "detail", json_object_new_string(detail));
	json_object_object_add(err, "code", json_object_new_int(code));
	json_object_object_add(err, "message", json_object_new_string(msg));
	json_object_object_add(err, "data", data);
	json_object_object_add(e, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(e, "error", err);
	json_object_object_add(e, "id", NULL);
	text = rpc_json_text(e);
	json_object_put(e);
	r = text ? conn_send(c, text, strlen(text), false) : -ENOMEM;
	free(text);
	return r;
}

static int conn_replay(struct rpc_conn *c);

static int handle_line(struct rpc_conn *c, char *line, size_t n)
{
	char *reply;
	int r = 0;

	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = 0;
	if (!n)
		return 0;	/* blank lines are keep-alives */
	reply = rpc_handle_peer(c->srv, &c->peer, line, n, c->srv->cfg.max_outbuf);
	if (reply) {
		r = conn_send(c, reply, strlen(reply), false);
		free(reply);
	}
	/* After events.subscribe's reply: what it asked to be replayed. */
	if (!r && c->replay_pending)
		r = conn_replay(c);
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

/* Counts n request bytes read off c while draining. */
static void drain_count(struct rpc_conn *c, size_t n)
{
	if (c->srv->draining)
		c->drain_left -= n < c->drain_left ? n : c->drain_left;
}

/* Stops reading c until its replies (or its listener's) drain. */
static void conn_block(struct rpc_conn *c)
{
	if (c->blocked)
		return;
	c->blocked = true;
	c->listener->nblocked++;
	bufferevent_disable(c->bev, EV_READ);
}

static int read_lines(struct rpc_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n;
	char *line;
	int r;

	for (;;) {
		size_t before = evbuffer_get_length(in);

		if (c->discarding) {
			if (!discard_to_eol(in))
				return 0;
			c->discarding = false;
			drain_count(c, before - evbuffer_get_length(in));
			continue;
		}
		if (!before)
			return 0;
		if (c->srv->draining && !c->drain_left) {
			/* Past what was in flight when the stop began. */
			bufferevent_disable(c->bev, EV_READ);
			return 0;
		}
		if (!conn_may_read(c)) {
			conn_block(c);
			return 0;
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
		drain_count(c, before - evbuffer_get_length(in));
		if (r)
			return r;
	}
}

static void conn_timeouts_set(struct rpc_conn *c, bool idle)
{
	struct timeval it = { .tv_sec = c->srv->cfg.idle_timeout_s },
		       wt = { .tv_sec = WRITE_TIMEOUT_S };

	c->idle_armed = idle;
	bufferevent_set_timeouts(c->bev, idle ? &it : NULL, &wt);
}

/* Arms the idle timeout unless c waits for events by design. */
static void conn_idle_update(struct rpc_conn *c)
{
	bool want = c->srv->cfg.idle_timeout_s > 0 && !c->topics;

	if (want != c->idle_armed)
		conn_timeouts_set(c, want);
}

/* Handles what c has sent; frees c on a fatal error. */
static void conn_process(struct rpc_conn *c)
{
	int r;

	c->reading = true;
	r = read_lines(c);
	c->reading = false;
	if (r) {
		conn_free(c);
		return;
	}
	conn_flush(c);
	conn_idle_update(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

/* Reads again from c if its budget allows. */
static void conn_unblock(struct rpc_conn *c)
{
	if (!c->blocked || !conn_may_read(c))
		return;
	c->blocked = false;
	c->listener->nblocked--;
	if (!c->closing)
		bufferevent_enable(c->bev, EV_READ);
	conn_process(c);	/* lines that waited in the input buffer */
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct rpc_conn *c = arg;

	if (c->closing && !evbuffer_get_length(bufferevent_get_output(bev))) {
		conn_free(c);
		return;
	}
	conn_unblock(c);
}

/* Unblocks the connections of a listener whose output drained. */
static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpc_listener *l = arg;
	struct rpc_conn *c, *tmp;

	(void)fd; (void)what;
	if (l->arg) {
		rpc_http_listener_resume(l);
		return;
	}
	TAILQ_FOREACH_SAFE(c, &l->srv->conns, link, tmp)
		if (c->listener == l && c->blocked)
			conn_unblock(c);
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
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING))
		slog_info("rpc: connection %llu (pid %d) sent nothing for %d s; closing it",
			  (unsigned long long)c->id, (int)c->peer.pid, c->srv->cfg.idle_timeout_s);
	else if (what & BEV_EVENT_TIMEOUT)
		slog_warn("rpc: connection %llu did not read for %d s, dropping it",
			  (unsigned long long)c->id, WRITE_TIMEOUT_S);
	conn_free(c);
}

/* Sends one error line to a connection refused at accept, and closes it. */
static void refuse(int fd, int code, const char *message)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf),
		     "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"%s\"},"
		     "\"id\":null}\n", code, message);
	if (n > 0 && n < (int)sizeof(buf) &&
	    send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* The refusal is best effort. */
	}
	close(fd);
}

static void peer_cred_get(struct rpc_peer *p, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		p->pid = cred.pid;
		p->uid = cred.uid;
		p->gid = cred.gid;
		p->has_cred = true;
	}
}

static bool id_in(uint32_t id, const uint32_t *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

/* The allow-lists of l: root, slotd's own uid, a listed uid, or a listed
 * gid as the peer's primary or supplementary group. */
static bool peer_allowed(const struct rpc_listener *l, const struct rpc_peer *p, int fd)
{
	gid_t groups[PEER_GROUPS_MAX];
	socklen_t len = sizeof(groups);

	if (!l->nallow_uids && !l->nallow_gids)
		return true;
	if (!p->has_cred)
		return false;
	if (p->uid == 0 || p->uid == geteuid() || id_in(p->uid, l->allow_uids, l->nallow_uids) ||
	    id_in(p->gid, l->allow_gids, l->nallow_gids))
		return true;
	if (!l->nallow_gids || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(groups[0]); i++)
		if (id_in(groups[i], l->allow_gids, l->nallow_gids))
			return true;
	return false;
}

/* Admits a stream connection: the cap, then the allow-lists. */
static bool conn_admit(struct rpc_listener *l, int fd, struct rpc_peer *p)
{
	char msg[160];

	if (l->nconns >= l->max_conns) {
		slog_warn("rpc: refusing a connection on the %s: %u already open", l->what,
			  l->nconns);
		snprintf(msg, sizeof(msg), "Too many connections: slotd serves at most %u "
			 "at once on this socket; retry later", l->max_conns);
		refuse(fd, RPC_ERR_OVERLOADED, msg);
		return false;
	}
	peer_cred_get(p, fd);
	if (!peer_allowed(l, p, fd)) {
		slog_warn("rpc: refusing pid %d uid %u gid %u on the %s: not in "
			  "--allow-uid/--allow-gid", (int)p->pid, (unsigned)p->uid,
			  (unsigned)p->gid, l->what);
		snprintf(msg, sizeof(msg), "Not permitted: uid %u is not allowed on this "
			 "socket (--allow-uid/--allow-gid)", (unsigned)p->uid);
		refuse(fd, RPC_ERR_DENIED, msg);
		return false;
	}
	return true;
}

static void stream_accept(struct rpc_listener *l, int fd)
{
	struct rpc_server *srv = l->srv;
	struct rpc_peer peer = { .read_only = l->read_only, .via = l->what };
	struct rpc_conn *c;

	if (!conn_admit(l, fd, &peer))
		return;
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
	c->listener = l;
	c->id = ++srv->next_conn_id;
	c->peer = peer;
	c->peer.conn_id = c->id;
	TAILQ_INSERT_TAIL(&srv->conns, c, link);
	srv->nconns++;
	l->nconns++;
	rpc_listener_track(l, bufferevent_get_output(c->bev));
	rpc_listener_track(l, c->pending);
	slog_info("rpc: connection %llu on the %s from pid %d uid %u gid %u",
		  (unsigned long long)c->id, l->what, (int)peer.pid, (unsigned)peer.uid,
		  (unsigned)peer.gid);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* write_cb runs once the output drops to PAUSE_BYTES / 2. */
	bufferevent_setwatermark(c->bev, EV_WRITE, PAUSE_BYTES / 2, 0);
	conn_timeouts_set(c, srv->cfg.idle_timeout_s > 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- listeners -------------------------------------------------------- */

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
		      struct sockaddr *sa, int socklen, void *arg)
{
	struct rpc_listener *l = arg;

	(void)lev; (void)sa; (void)socklen;
	l->accept(l, fd);
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
	struct rpc_listener *l = arg;
	struct timeval tv = { .tv_usec = 100 * 1000 };
	int e = EVUTIL_SOCKET_ERROR();

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		slog_warn("rpc: accept on the %s: %s; pausing accepts for 100 ms", l->what,
			  strerror(e));
		evconnlistener_disable(lev);
		event_add(l->backoff, &tv);
	} else if (e != EAGAIN && e != EINTR && e != ECONNABORTED) {
		slog_error("rpc: accept on the %s: %s", l->what, strerror(e));
	}
}

static void listener_free(struct rpc_listener *l)
{
	if (l->lev)
		evconnlistener_free(l->lev);
	if (l->backoff)
		event_free(l->backoff);
	if (l->resume)
		event_free(l->resume);
	if (l->arg)
		rpc_http_listener_free(l);
	free(l->allow_uids);
	free(l->allow_gids);
	free(l);
}

int rpc_listener_add(struct rpc_server *srv, int fd, const char *what,
		     void (*accept)(struct rpc_listener *, int), void *arg,
		     unsigned max_conns, struct rpc_listener **out)
{
	struct rpc_listener *l = calloc(1, sizeof(*l));

	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->srv = srv;
	l->what = what;
	l->accept = accept;
	l->arg = arg;
	l->max_conns = max_conns;
	evutil_make_socket_nonblocking(fd);
	l->lev = evconnlistener_new(srv->base, accept_cb, l,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	l->backoff = evtimer_new(srv->base, backoff_cb, l);
	l->resume = event_new(srv->base, -1, 0, resume_cb, l);
	if (!l->lev || !l->backoff || !l->resume) {
		if (!l->lev)
			close(fd);
		l->arg = NULL;	/* the caller still owns it */
		listener_free(l);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	TAILQ_INSERT_TAIL(&srv->listeners, l, link);
	if (out)
		*out = l;
	return 0;
}

void rpc_listener_conn_gone(struct rpc_listener *l)
{
	l->nconns--;
}

static uint32_t *ids_dup(const uint32_t *ids, size_t n)
{
	uint32_t *d = n ? malloc(n * sizeof(*d)) : NULL;

	if (d)
		memcpy(d, ids, n * sizeof(*d));
	return d;
}

int rpc_server_listen_ex(struct rpc_server *srv, int fd, const struct rpc_listen_opts *o)
{
	struct rpc_listener *l;
	int r = rpc_listener_add(srv, fd, o->what ? o->what : o->read_only ?
				 "read-only socket" : "socket", stream_accept, NULL,
				 srv->cfg.max_conns, &l);

	if (r)
		return r;
	l->read_only = o->read_only;
	l->allow_uids = ids_dup(o->allow_uids, o->nallow_uids);
	l->nallow_uids = l->allow_uids ? o->nallow_uids : 0;
	l->allow_gids = ids_dup(o->allow_gids, o->nallow_gids);
	l->nallow_gids = l->allow_gids ? o->nallow_gids : 0;
	if (l->nallow_uids != o->nallow_uids || l->nallow_gids != o->nallow_gids) {
		TAILQ_REMOVE(&srv->listeners, l, link);
		listener_free(l);
		return -ENOMEM;
	}
	return 0;
}

int rpc_server_listen(struct rpc_server *srv, int fd)
{
	const struct rpc_listen_opts o = { 0 };

	return rpc_server_listen_ex(srv, fd, &o);
}

void rpc_listener_drain_backlog(struct rpc_listener *l)
{
	int lfd = evconnlistener_get_fd(l->lev), fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		l->accept(l, fd);
}

void rpc_server_stop_listening(struct rpc_server *srv)
{
	struct rpc_listener *l;

	/* Clients that connected before we stopped are served: accepted
	 * now, then the listening sockets close.  The listeners stay until
	 * the server goes: connections point at them. */
	TAILQ_FOREACH(l, &srv->listeners, link) {
		if (!l->lev)
			continue;
		rpc_listener_drain_backlog(l);
		evconnlistener_free(l->lev);
		l->lev = NULL;
		event_del(l->backoff);
		if (l->arg)
			rpc_http_listener_stop(l);
	}
}

void rpc_server_drain_begin(struct rpc_server *srv)
{
	struct rpc_conn *c;
	int unread;

	srv->draining = true;
	TAILQ_FOREACH(c, &srv->conns, link) {
		c->drain_left = evbuffer_get_length(bufferevent_get_input(c->bev));
		if (ioctl(bufferevent_getfd(c->bev), FIONREAD, &unread) == 0 && unread > 0)
			c->drain_left += (uint64_t)unread;
		if (!c->drain_left)
			bufferevent_disable(c->bev, EV_READ);
	}
}

/* Past the drain deadline: reads nothing more, and keeps of c's output
 * only the rest of the line being sent, if one is. */
static void conn_cut(struct rpc_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev), *keep;
	uint64_t sent, end;

	if (c->cut)
		return;
	c->cut = true;
	c->drain_left = 0;
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	evbuffer_add_buffer(out, c->pending);
	sent = c->appended - evbuffer_get_length(out);
	end = ends_current(c, sent);
	keep = evbuffer_new();
	if (end && keep)
		evbuffer_remove_buffer(out, keep, (size_t)(end - sent));
	evbuffer_drain(out, evbuffer_get_length(out));
	if (keep) {
		evbuffer_add_buffer(out, keep);
		evbuffer_free(keep);
	}
	if (end)
		slog_warn("rpc: connection %llu is slow to read; sending it the rest of "
			  "its current line only", (unsigned long long)c->id);
}

bool rpc_server_drained(struct rpc_server *srv, bool deadline)
{
	struct rpc_listener *l;
	struct rpc_conn *c;
	bool done = true;

	TAILQ_FOREACH(c, &srv->conns, link) {
		if (deadline)
			conn_cut(c);
		if (conn_queued(c) || (c->drain_left && !c->closing))
			done = false;
	}
	TAILQ_FOREACH(l, &srv->listeners, link)
		if (l->arg && !rpc_http_listener_flushed(l))
			done = false;
	return done;
}

unsigned rpc_server_conn_count(const struct rpc_server *srv)
{
	return srv->nconns;
}

bool rpc_server_flushed(const struct rpc_server *srv)
{
	struct rpc_listener *l;
	struct rpc_conn *c;
	int unread;

	TAILQ_FOREACH(l, &srv->listeners, link)
		if (l->arg && !rpc_http_listener_flushed(l))
			return false;
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

/* ---- notifications ---------------------------------------------------- */

bool rpc_server_topic_wanted(const struct rpc_server *srv, const char *topic)
{
	/* Always: the ring keeps every event for subscribers that resume. */
	(void)srv;
	return rpc_topic_bit(topic) >= 0;
}

/* The notification line of event seq: params (an object's strict JSON
 * text) with "seq" and "epoch" put first.  malloc'd; NULL: no memory. */
static char *event_line(const char *topic, uint64_t seq, const char *epoch,
			const char *params, size_t *len)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":\"",
			  mid[] = "\",\"params\":{\"seq\":", ep[] = ",\"epoch\":\"";
	size_t tl = strlen(topic), el = strlen(epoch), pl = strlen(params);
	char *line = malloc(sizeof(head) + tl + el + pl + 64), *p = line;
	bool empty = params[1] == '}';

	if (!line)
		return NULL;
	p = mempcpy(p, head, sizeof(head) - 1);
	p = mempcpy(p, topic, tl);	/* a topic name: nothing to escape */
	p = mempcpy(p, mid, sizeof(mid) - 1);
	p += rpc_u64_text(p, seq);
	p = mempcpy(p, ep, sizeof(ep) - 1);
	p = mempcpy(p, epoch, el);
	*p++ = '"';
	if (!empty)
		*p++ = ',';
	p = mempcpy(p, params + 1, pl - 1);
	*p++ = '}';
	*p = 0;
	*len = (size_t)(p - line);
	return line;
}

void rpc_server_notify(struct rpc_server *srv, const char *topic,
		       json_object *params)
{
	struct rpc_conn *c, *tmp;
	int bit = rpc_topic_bit(topic);
	char *ptext = NULL, *line = NULL;
	size_t len = 0;
	uint64_t seq;

	if (bit < 0 || !json_object_is_type(params, json_type_object)) {
		slog_error("rpc: event %s is not a known topic with an object of params; "
			   "not sent", topic);
		goto out;
	}
	ptext = rpc_json_text(params);
	seq = rpc_events_last(srv->events) + 1;
	line = ptext ? event_line(topic, seq, rpc_events_epoch(srv->events), ptext, &len) : NULL;
	/* The number is used whatever happens, so a resume sees the hole. */
	rpc_events_push(srv->events, (unsigned)bit, line, len);
	TAILQ_FOREACH_SAFE(c, &srv->conns, link, tmp) {
		/* A connection with a replay pending gets this from the ring. */
		if (!line || !(c->topics & (1ull << bit)) || c->closing || c->replay_pending)
			continue;
		if (conn_send(c, line, len, true))
			conn_free(c);
	}
out:
	free(line);
	free(ptext);
	json_object_put(params);
}

/* Sends what events.subscribe asked for, right after its reply: the
 * ring's events in (replay_since, replay_to] of the topics it named, then
 * those that came after replay_to (in the same request line) of every
 * topic c now has.  -ENOBUFS when they no longer fit c's output or the
 * ring (the caller drops c: a client that cannot take its replay
 * resubscribes, and is told what it missed). */
static int conn_replay(struct rpc_conn *c)
{
	struct rpc_events *ev = c->srv->events;
	uint64_t last = rpc_events_last(ev), n = 0;
	const char *text;
	unsigned bit;
	size_t len;

	c->replay_pending = false;
	for (uint64_t s = c->replay_since + 1; s <= last; s++) {
		uint64_t mask = s <= c->replay_to ? c->replay_mask & c->topics : c->topics;

		if (rpc_events_get(ev, s, &bit, &text, &len)) {
			slog_warn("rpc: connection %llu: event %llu left the ring before its "
				  "replay; dropping the connection", (unsigned long long)c->id,
				  (unsigned long long)s);
			return -ENOBUFS;
		}
		if (!(mask & (1ull << bit)))
			continue;
		if (conn_send(c, text, len, true))
			return -ENOBUFS;
		n++;
	}
	slog_debug("rpc: connection %llu: %llu event(s) replayed after seq %llu",
		   (unsigned long long)c->id, (unsigned long long)n,
		   (unsigned long long)c->replay_since);
	return 0;
}

/* ---- the server ------------------------------------------------------- */

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

static void config_defaults(struct rpc_config *c)
{
	if (!c->max_message)
		c->max_message = 1 << 20;
	if (!c->max_batch)
		c->max_batch = 256;
	if (!c->max_conns)
		c->max_conns = 256;
	if (!c->max_outbuf)
		c->max_outbuf = 16 << 20;
	if (!c->max_output_total)
		c->max_output_total = 64 << 20;
	/* The budget must hold at least one reply of the largest size. */
	if (c->max_output_total < c->max_outbuf)
		c->max_output_total = c->max_outbuf;
	if (!c->idle_timeout_s)
		c->idle_timeout_s = IDLE_TIMEOUT_DEFAULT_S;
	if (!c->http_max_conns)
		c->http_max_conns = 64;
	if (!c->http_max_header)
		c->http_max_header = 8192;
	if (!c->http_header_timeout_s)
		c->http_header_timeout_s = 10;
	if (!c->http_body_timeout_s)
		c->http_body_timeout_s = 30;
}

int rpc_server_create(struct event_base *base, const struct rpc_config *cfg,
		      struct rpc_server **out)
{
	struct rpc_server *srv = calloc(1, sizeof(*srv));
	size_t ring_bytes;
	const char *doc;

	if (!srv)
		return -ENOMEM;
	srv->base = base;
	srv->cfg = *cfg;
	config_defaults(&srv->cfg);
	doc = cfg->openrpc ? cfg->openrpc : slotd_openrpc_json;
	srv->openrpc = json_tokener_parse(doc);
	if (!srv->openrpc) {
		slog_error("rpc: the OpenRPC document does not parse");
		free(srv);
		return -EINVAL;
	}
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->listeners);
	/* A whole replay must fit in one connection's output. */
	ring_bytes = srv->cfg.max_outbuf / 2;
	if (ring_bytes > RPC_EVENTS_MAX_BYTES)
		ring_bytes = RPC_EVENTS_MAX_BYTES;
	if (rpc_events_create(RPC_EVENTS_MAX, ring_bytes ? ring_bytes : 1, &srv->events)) {
		json_object_put(srv->openrpc);
		free(srv);
		return -ENOMEM;
	}
	*out = srv;
	return 0;
}

void rpc_server_destroy(struct rpc_server *srv)
{
	struct rpc_listener *l;
	struct rpc_conn *c;

	if (!srv)
		return;
	rpc_server_stop_listening(srv);
	while ((c = TAILQ_FIRST(&srv->conns)))
		conn_free(c);
	while ((l = TAILQ_FIRST(&srv->listeners))) {
		TAILQ_REMOVE(&srv->listeners, l, link);
		listener_free(l);
	}
	json_object_put(srv->method_index);
	rpc_events_destroy(srv->events);
	rpc_metrics_free(srv);
	json_object_put(srv->openrpc);
	free(srv->methods);
	free(srv);
}
