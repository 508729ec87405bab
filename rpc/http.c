/* The optional HTTP listener: POST /rpc (the same JSON-RPC handling as
 * the Unix socket), GET /metrics (Prometheus text) and GET /healthz.
 * TCP listeners must be on loopback and require a bearer token. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "daemon/log.h"
#include "rpc/internal.h"
#include "vmm/vmm.h"

struct rpc_http {
	struct rpc_server *srv;
	struct evhttp *http;
	char *token;
	char *unix_path;	/* unlinked on destroy */
};

/* Compares without an early exit, so timing does not leak the token. */
static bool token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

static bool authorized(struct rpc_http *h, struct evhttp_request *req)
{
	const char *auth;

	if (!h->token)
		return true;
	auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	return auth && !strncmp(auth, "Bearer ", 7) && token_equal(auth + 7, h->token);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason,
		       const char *ctype, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	if (body)
		evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void handle_rpc(struct rpc_http *h, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body, *reply;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		reply_text(req, 405, "Method Not Allowed", "text/plain", "use POST\n");
		return;
	}
	body = malloc(len + 1);
	if (!body) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_remove(in, body, len);
	body[len] = 0;
	reply = rpc_server_handle(h->srv, 0, body, len);
	free(body);
	if (!reply) {
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	reply_text(req, 200, "OK", "application/json", reply);
	free(reply);
}

/* One VM-wide statistic as slotd_vm_stat{vm, source, name}. */
static int vm_stat_line(const struct vmm_stat *st, void *arg)
{
	struct evbuffer *b = ((void **)arg)[0];
	const char *vm = ((void **)arg)[1];

	if (st->vcpu < 0)
		evbuffer_add_printf(b, "slotd_vm_stat{vm=\"%s\",source=\"%s\",name=\"%s\"} %llu\n",
				    vm, st->source, st->name, (unsigned long long)st->value);
	return 0;
}

static int vm_metrics_one(struct vmm_vm *vm, void *arg)
{
	struct evbuffer *b = arg;
	struct vmm_vm_info in;
	void *ctx[2] = { b, (void *)vmm_vm_name(vm) };

	vmm_vm_info_get(vm, &in);
	evbuffer_add_printf(b, "slotd_vm_info{vm=\"%s\",state=\"%s\",type=\"%s\"} 1\n"
			    "slotd_vm_memslots{vm=\"%s\"} %u\n", in.name,
			    vmm_vm_state_name(in.state), vmm_vm_type_name(in.type), in.name,
			    in.nr_memslots);
	return vmm_vm_stats_foreach(vm, vm_stat_line, ctx);
}

/* Every VM's state, memslot count and VM-wide counters: the kernel's
 * stats fd (source "kvm") next to the engine's (source "engine"). */
static void vm_metrics(struct vmm *vmm, struct evbuffer *b)
{
	evbuffer_add_printf(b,
		"# HELP slotd_vm_info A VM and its state.\n"
		"# TYPE slotd_vm_info gauge\n"
		"# HELP slotd_vm_memslots Memslots of a VM.\n"
		"# TYPE slotd_vm_memslots gauge\n"
		"# HELP slotd_vm_stat VM-wide counters: KVM's stats fd (source kvm), "
		"slotd's engine (engine), devices.\n"
		"# TYPE slotd_vm_stat untyped\n");
	vmm_vm_foreach(vmm, vm_metrics_one, b);
}

static void handle_metrics(struct rpc_http *h, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	const struct vmm_caps *caps = h->srv->cfg.vmm ? vmm_caps_get(h->srv->cfg.vmm) : NULL;

	evbuffer_add_printf(b,
		"# HELP slotd_rpc_requests_total JSON-RPC requests handled.\n"
		"# TYPE slotd_rpc_requests_total counter\n"
		"slotd_rpc_requests_total %llu\n"
		"# HELP slotd_rpc_errors_total JSON-RPC requests answered with an error.\n"
		"# TYPE slotd_rpc_errors_total counter\n"
		"slotd_rpc_errors_total %llu\n"
		"# HELP slotd_rpc_connections Open Unix socket connections.\n"
		"# TYPE slotd_rpc_connections gauge\n"
		"slotd_rpc_connections %u\n"
		"# HELP slotd_kvm_available Whether /dev/kvm could be used.\n"
		"# TYPE slotd_kvm_available gauge\n"
		"slotd_kvm_available %d\n",
		(unsigned long long)h->srv->requests, (unsigned long long)h->srv->errors,
		h->srv->nconns, caps && caps->kvm_available);
	if (caps && caps->kvm_available)
		vm_metrics(h->srv->cfg.vmm, b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct rpc_http *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (!path)
		path = "/";
	if (!strcmp(path, "/healthz")) {
		reply_text(req, 200, "OK", "application/json", "{\"status\":\"ok\"}\n");
		return;
	}
	if (!authorized(h, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "WWW-Authenticate", "Bearer realm=\"slotd\"");
		reply_text(req, 401, "Unauthorized", "text/plain",
			   "a valid 'Authorization: Bearer TOKEN' header is required\n");
		return;
	}
	if (!strcmp(path, "/rpc"))
		handle_rpc(h, req);
	else if (!strcmp(path, "/metrics"))
		handle_metrics(h, req);
	else
		reply_text(req, 404, "Not Found", "text/plain",
			   "slotd serves POST /rpc, GET /metrics and GET /healthz\n");
}

static int bind_unix(struct rpc_http *h, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
	    listen(fd, 128) < 0 || !evhttp_accept_socket_with_handle(h->http, fd)) {
		int e = errno ? errno : EINVAL;

		close(fd);
		return -e;
	}
	h->unix_path = strdup(path);
	return 0;
}

/* HOST:PORT on loopback only. */
static int bind_tcp(struct rpc_http *h, const char *addr)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	struct in_addr a4;
	struct in6_addr a6;
	long port;

	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
		return -EINVAL;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return -EINVAL;
	if (!((inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) ||
	      (inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6))))
		return -EADDRNOTAVAIL;
	if (!h->token)
		return -EACCES;
	if (!evhttp_bind_socket_with_handle(h->http, host, (uint16_t)port))
		return errno ? -errno : -EADDRINUSE;
	return 0;
}

static void http_log_error(const char *addr, int r)
{
	if (r == -EADDRNOTAVAIL)
		slog_error("--http %s: TCP listeners must be on a loopback address", addr);
	else if (r == -EACCES)
		slog_error("--http %s: a TCP listener needs --http-token-file", addr);
	else if (r == -EINVAL)
		slog_error("--http %s: expected unix:PATH or HOST:PORT", addr);
	else
		slog_error("--http %s: %s", addr, strerror(-r));
}

int rpc_server_http_listen(struct rpc_server *srv, const char *addr,
			   const char *token_file)
{
	struct rpc_http *h = calloc(1, sizeof(*h));
	char why[160];
	int r;

	if (!h)
		return -ENOMEM;
	h->srv = srv;
	h->http = evhttp_new(srv->base);
	if (token_file && (r = rpc_token_read(token_file, &h->token, why, sizeof(why)))) {
		slog_error("--http-token-file %s: %s", token_file, why);
		goto fail;
	}
	evhttp_set_max_body_size(h->http, (ev_ssize_t)srv->cfg.max_message);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(h->http, request_cb, h);
	r = !strncmp(addr, "unix:", 5) ? bind_unix(h, addr + 5) : bind_tcp(h, addr);
	if (r) {
		http_log_error(addr, r);
		goto fail;
	}
	srv->http = h;
	slog_info("HTTP listener on %s%s", addr, h->token ? " (bearer token required)" : "");
	return 0;
fail:
	evhttp_free(h->http);
	free(h->token);
	free(h);
	return r;
}

void rpc_http_destroy(struct rpc_http *h)
{
	if (!h)
		return;
	evhttp_free(h->http);
	if (h->unix_path)
		unlink(h->unix_path);
	free(h->unix_path);
	free(h->token);
	free(h);
}
