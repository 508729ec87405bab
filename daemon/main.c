/* slotd: main(), the event loop, signals, systemd notification and
 * graceful shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "daemon/daemon.h"
#include "rpc/rpc.h"
#include "vmm/vmm.h"
#include <json-c/json.h>
#include <time.h>

#define DRAIN_TIMEOUT_MS 2000
#define STATE_QUEUE_LEN	 256

/* A VM state change, queued by whatever thread saw it. */
struct state_change {
	char vm[64];
	enum vmm_vm_state old_state, new_state;
	uint64_t ns;
};

struct slotd {
	struct slotd_config cfg;
	struct event_base *base;
	struct rpc_server *rpc;
	struct vmm *vmm;
	int sig_fd;
	struct event *sig_ev;
	struct event *drain;
	int drain_ms;
	int listen_fd;
	int ro_fd;		/* --socket-ro, until the server owns it */
	bool socket_owned;
	bool ro_owned;		/* we bound --socket-ro: ours to remove */
	int state_lock;
	int ready_pipe;		/* write end: tells the parent we serve */
	/* vCPU threads report state changes here; the loop publishes them. */
	pthread_mutex_t q_lock;
	struct state_change q[STATE_QUEUE_LEN];
	unsigned q_len;
	unsigned q_dropped;
	int q_efd;
	struct event *q_ev;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* vmm callback, on any thread: queue the change and wake the loop. */
static void state_changed(struct vmm_vm *vm, enum vmm_vm_state old_state,
			  enum vmm_vm_state new_state, void *arg)
{
	struct slotd *d = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&d->q_lock);
	if (d->q_len < STATE_QUEUE_LEN) {
		struct state_change *c = &d->q[d->q_len++];

		snprintf(c->vm, sizeof(c->vm), "%s", vmm_vm_name(vm));
		c->old_state = old_state;
		c->new_state = new_state;
		c->ns = now_ns();
	} else {
		d->q_dropped++;
	}
	pthread_mutex_unlock(&d->q_lock);
	if (write(d->q_efd, &one, sizeof(one)) < 0) {
		/* The counter is already non-zero: the loop will look. */
	}
}

static void publish_change(struct slotd *d, const struct state_change *c)
{
	json_object *p = json_object_new_object();
	struct vmm_vm *vm = vmm_vm_find(d->vmm, c->vm);
	struct vmm_vm_info in;

	json_object_object_add(p, "vm", json_object_new_string(c->vm));
	json_object_object_add(p, "old_state",
			       json_object_new_string(vmm_vm_state_name(c->old_state)));
	json_object_object_add(p, "new_state",
			       json_object_new_string(vmm_vm_state_name(c->new_state)));
	json_object_object_add(p, "time_ns", json_object_new_uint64(c->ns));
	if (vm && c->new_state == VMM_VM_CRASHED && !vmm_vm_info_get(vm, &in))
		json_object_object_add(p, "reason", json_object_new_string(in.crash_reason));
	if (vm && c->new_state == VMM_VM_STOPPED && !vmm_vm_info_get(vm, &in) &&
	    in.has_exit_status)
		json_object_object_add(p, "exit_status", json_object_new_int64(in.exit_status));
	slog_info("vm %s: %s -> %s", c->vm, vmm_vm_state_name(c->old_state),
		  vmm_vm_state_name(c->new_state));
	rpc_server_notify(d->rpc, "vm.state_changed", p);
}

static void queue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slotd *d = arg;
	struct state_change batch[STATE_QUEUE_LEN];
	unsigned n, dropped;
	uint64_t v;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		slog_warn("state queue: %s", strerror(errno));
	pthread_mutex_lock(&d->q_lock);
	n = d->q_len;
	memcpy(batch, d->q, n * sizeof(batch[0]));
	d->q_len = 0;
	dropped = d->q_dropped;
	d->q_dropped = 0;
	pthread_mutex_unlock(&d->q_lock);
	if (dropped)
		slog_warn("%u VM state change events dropped (queue full)", dropped);
	for (unsigned i = 0; i < n; i++)
		publish_change(d, &batch[i]);
}

/* Waits for replies to reach clients, then leaves the loop. */
static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slotd *d = arg;
	struct timeval tv = { .tv_usec = 10 * 1000 };

	(void)fd; (void)what;
	/* The first pass only lets pending reads run.  Past the deadline a
	 * slow reader gets the rest of its current line, never a cut one
	 * (the write timeout bounds that). */
	if (d->drain_ms > 0 && rpc_server_drained(d->rpc, d->drain_ms >= DRAIN_TIMEOUT_MS)) {
		event_base_loopbreak(d->base);
		return;
	}
	d->drain_ms += 10;
	event_add(d->drain, &tv);
}

static void shutdown_begin(struct slotd *d, const char *why)
{
	if (d->drain)
		return;
	slog_info("%s: shutting down", why);
	sd_notify(0, "STOPPING=1");
	rpc_server_stop_listening(d->rpc);
	rpc_server_drain_begin(d->rpc);
	daemon_unlink_sockets(&d->cfg, d->socket_owned, d->ro_owned);
	d->drain = evtimer_new(d->base, drain_cb, d);
	drain_cb(-1, 0, d);
}

static void signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slotd *d = arg;
	struct signalfd_siginfo si;

	(void)what;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			int r = slog_reopen();

			slog_info("SIGHUP: log reopened%s%s", r ? ": " : "", r ? strerror(-r) : "");
			continue;
		}
		shutdown_begin(d, strsignal((int)si.ssi_signo));
	}
}

/* SIGTERM, SIGINT and SIGHUP are blocked in every thread (the mask is set
 * before any thread exists) and read from a signalfd by the loop, so no
 * vCPU thread can be killed by them, even during teardown. */
static int signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	return pthread_sigmask(SIG_BLOCK, set, NULL) ? -EINVAL : 0;
}

static int signals_setup(struct slotd *d)
{
	sigset_t set;

	signals_block(&set);	/* again: cheap, and gives us the set */
	d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sig_fd < 0)
		return -errno;
	d->sig_ev = event_new(d->base, d->sig_fd, EV_READ | EV_PERSIST, signal_cb, d);
	if (!d->sig_ev || event_add(d->sig_ev, NULL))
		return -ENOMEM;
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
	struct vmm_config vc = {
		.kvm_path = d->cfg.kvm_path,
		.on_state_change = state_changed,
		.cb_arg = d,
		.file_dirs = (const char *const *)d->cfg.file_dirs,
		.max_vm_memory = d->cfg.max_vm_memory,
		.max_total_memory = d->cfg.max_memory,
	};
	const struct vmm_caps *caps;
	int r;

	d->q_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->q_efd < 0)
		return -errno;
	d->q_ev = event_new(d->base, d->q_efd, EV_READ | EV_PERSIST, queue_cb, d);
	if (!d->q_ev || event_add(d->q_ev, NULL))
		return -ENOMEM;
	r = vmm_create(&vc, &d->vmm);
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
		.vmm = d->vmm,
		.state_dir = d->cfg.state_dir,
		.app = d,
	};
	int r;

	daemon_config_rpc(&d->cfg, &rc);
	r = rpc_server_create(d->base, &rc, &d->rpc);
	if (!r)
		r = rpc_methods_register_all(d->rpc);
	if (!r)
		r = daemon_rpc_listen(&d->cfg, d->rpc, &d->listen_fd, &d->ro_fd);
	return r;
}

/* Brings back the VMs of the state dir before READY=1; a file that cannot
 * be restored is kept aside and logged, never fatal. */
static int state_restore(struct slotd *d)
{
	unsigned ok = 0, failed = 0;
	int r = rpc_state_restore(d->rpc, &ok, &failed);

	if (r)
		slog_error("state: restoring from %s stopped: %s", d->cfg.state_dir, strerror(-r));
	if (ok || failed)
		sd_notifyf(0, "STATUS=restored %u VM(s), %u failed", ok, failed);
	return 0;
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
	if (d->cfg.socket_ro_path && (r = daemon_listen_ro(&d->cfg, &d->ro_fd)))
		return r;
	d->ro_owned = d->cfg.socket_ro_path != NULL;
	if (!d->cfg.foreground && getenv("NOTIFY_SOCKET") == NULL && (r = detach(d)))
		return r;
	d->base = event_base_new();
	if (!d->base)
		return -ENOMEM;
	if ((r = signals_setup(d)) || (r = kvm_setup(d)) || (r = rpc_setup(d)))
		return r;
	return state_restore(d);
}

static void teardown(struct slotd *d)
{

	/* VMs first: their last state changes must find the queue alive. */
	vmm_destroy(d->vmm);
	rpc_server_destroy(d->rpc);
	if (d->q_ev)
		event_free(d->q_ev);
	if (d->q_efd >= 0)
		close(d->q_efd);
	pthread_mutex_destroy(&d->q_lock);
	if (d->sig_ev)
		event_free(d->sig_ev);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->drain)
		event_free(d->drain);
	if (d->base)
		event_base_free(d->base);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	if (d->ro_fd >= 0)
		close(d->ro_fd);
	if (d->state_lock >= 0)
		close(d->state_lock);
	daemon_config_free(&d->cfg);
}

int main(int argc, char **argv)
{
	struct slotd d = {
		.listen_fd = -1, .ro_fd = -1, .state_lock = -1, .ready_pipe = -1, .q_efd = -1,
		.sig_fd = -1,
		.q_lock = PTHREAD_MUTEX_INITIALIZER,
	};
	int r = daemon_config_parse(&d.cfg, argc, argv);

	if (r) {
		daemon_config_free(&d.cfg);
		return r > 0 ? 0 : 2;
	}
	/* Before anything can be signalled: a SIGHUP or SIGTERM during
	 * start-up waits in the signalfd instead of killing us. */
	signals_block(&(sigset_t){ 0 });
	slog_level_set(d.cfg.log_level);
	slog_journal_set(getenv("JOURNAL_STREAM") != NULL);
	if (d.cfg.log_file && slog_file_set(d.cfg.log_file))
		fprintf(stderr, "slotd: cannot open log file %s\n", d.cfg.log_file);
	r = setup(&d);
	if (r) {
		slog_error("start-up failed: %s", strerror(-r));
		daemon_unlink_sockets(&d.cfg, d.socket_owned, d.ro_owned);
		teardown(&d);
		return 1;
	}
	ready(&d);
	event_base_dispatch(d.base);
	slog_info("stopped");
	teardown(&d);
	return 0;
}
