/* slotd: main(), the event loop, signals, systemd notification and
 * graceful shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "daemon/daemon.h"
#include "rpc/rpc.h"
#include "vmm/vmm.h"

#define DRAIN_TIMEOUT_MS 2000

struct slotd {
	struct slotd_config cfg;
	struct event_base *base;
	struct rpc_server *rpc;
	struct vmm *vmm;
	struct event *sigs[4];
	struct event *drain;
	int drain_ms;
	int listen_fd;
	bool socket_owned;
	int state_lock;
	int ready_pipe;		/* write end: tells the parent we serve */
};

/* Waits for replies to reach clients, then leaves the loop. */
static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slotd *d = arg;
	struct timeval tv = { .tv_usec = 10 * 1000 };

	(void)fd; (void)what;
	d->drain_ms += 10;
	if (rpc_server_flushed(d->rpc) || d->drain_ms >= DRAIN_TIMEOUT_MS) {
		event_base_loopbreak(d->base);
		return;
	}
	event_add(d->drain, &tv);
}

static void shutdown_begin(struct slotd *d, const char *why)
{
	if (d->drain)
		return;
	slog_info("%s: shutting down", why);
	sd_notify(0, "STOPPING=1");
	rpc_server_stop_listening(d->rpc);
	if (d->socket_owned)
		unlink(d->cfg.socket_path);
	d->drain = evtimer_new(d->base, drain_cb, d);
	drain_cb(-1, 0, d);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct slotd *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		int r = slog_reopen();

		slog_info("SIGHUP: log reopened%s%s", r ? ": " : "", r ? strerror(-r) : "");
		return;
	}
	shutdown_begin(d, strsignal(sig));
}

static int signals_setup(struct slotd *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		d->sigs[i] = evsignal_new(d->base, sigs[i], signal_cb, d);
		if (!d->sigs[i] || evsignal_add(d->sigs[i], NULL))
			return -ENOMEM;
	}
	return 0;
}

/* Without --foreground: fork; the parent exits once the child serves. */
static int detach(struct slotd *d)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	d->ready_pipe = p[1];
	return 0;
}

static void ready(struct slotd *d)
{
	slog_info("slotd %s serving %s (state %s, KVM %s)", SLOTD_VERSION,
		  d->cfg.socket_path, d->cfg.state_dir,
		  vmm_caps_get(d->vmm)->kvm_available ? "available" :
		  vmm_caps_get(d->vmm)->kvm_error);
	sd_notify(0, "READY=1\nSTATUS=serving");
	if (d->ready_pipe >= 0) {
		if (write(d->ready_pipe, "r", 1) < 0) {
			/* The parent is gone; nothing to tell. */
		}
		close(d->ready_pipe);
		d->ready_pipe = -1;
	}
}

static int kvm_setup(struct slotd *d)
{
	struct vmm_config vc = { .kvm_path = d->cfg.kvm_path };
	const struct vmm_caps *caps;
	int r = vmm_create(&vc, &d->vmm);

	if (r)
		return r;
	caps = vmm_caps_get(d->vmm);
	if (!caps->kvm_available)
		slog_warn("KVM unavailable (%s); serving without it", caps->kvm_error);
	else
		slog_info("KVM API %d, %d memslots, quirks 0x%llx", caps->api_version,
			  caps->max_memslots, (unsigned long long)caps->supported_quirks);
	return 0;
}

static int rpc_setup(struct slotd *d)
{
	struct rpc_config rc = {
		.max_message = d->cfg.max_message,
		.max_batch = d->cfg.max_batch,
		.max_conns = d->cfg.max_conns,
		.vmm = d->vmm,
		.app = d,
	};
	int r = rpc_server_create(d->base, &rc, &d->rpc);

	if (!r)
		r = rpc_methods_register_all(d->rpc);
	if (!r)
		r = rpc_server_listen(d->rpc, d->listen_fd);
	if (!r)
		d->listen_fd = -1;	/* the server owns it now */
	if (!r && d->cfg.http_addr)
		r = rpc_server_http_listen(d->rpc, d->cfg.http_addr, d->cfg.http_token_file);
	return r;
}

static int setup(struct slotd *d)
{
	int r;

	d->state_lock = daemon_state_dir_open(d->cfg.state_dir);
	if (d->state_lock < 0)
		return d->state_lock;
	r = daemon_listen(&d->cfg, &d->listen_fd, &d->socket_owned);
	if (r)
		return r;
	if (!d->cfg.foreground && getenv("NOTIFY_SOCKET") == NULL && (r = detach(d)))
		return r;
	d->base = event_base_new();
	if (!d->base)
		return -ENOMEM;
	if ((r = signals_setup(d)) || (r = kvm_setup(d)) || (r = rpc_setup(d)))
		return r;
	return 0;
}

static void teardown(struct slotd *d)
{
	rpc_server_destroy(d->rpc);
	vmm_destroy(d->vmm);
	for (size_t i = 0; i < sizeof(d->sigs) / sizeof(d->sigs[0]); i++)
		if (d->sigs[i])
			event_free(d->sigs[i]);
	if (d->drain)
		event_free(d->drain);
	if (d->base)
		event_base_free(d->base);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	if (d->state_lock >= 0)
		close(d->state_lock);
	daemon_config_free(&d->cfg);
}

int main(int argc, char **argv)
{
	struct slotd d = { .listen_fd = -1, .state_lock = -1, .ready_pipe = -1 };
	int r = daemon_config_parse(&d.cfg, argc, argv);

	if (r)
		return r > 0 ? 0 : 2;
	slog_level_set(d.cfg.log_level);
	slog_journal_set(getenv("JOURNAL_STREAM") != NULL);
	if (d.cfg.log_file && slog_file_set(d.cfg.log_file))
		fprintf(stderr, "slotd: cannot open log file %s\n", d.cfg.log_file);
	r = setup(&d);
	if (r) {
		slog_error("start-up failed: %s", strerror(-r));
		if (d.socket_owned)
			unlink(d.cfg.socket_path);
		teardown(&d);
		return 1;
	}
	ready(&d);
	event_base_dispatch(d.base);
	slog_info("stopped");
	teardown(&d);
	return 0;
}
