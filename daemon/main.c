/* slotd: main(), the event loop, signals, systemd notification and
 * graceful shutdown.  The VMs run in runner processes of their own
 * (ctl/, runner/): slotd can exit, restart or be upgraded while they run
 * on, and finds them again at start-up. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "ctl/ctl.h"
#include "daemon/daemon.h"
#include "rpc/rpc.h"

#define DRAIN_TIMEOUT_MS 2000

struct slotd {
	struct slotd_config cfg;
	struct event_base *base;
	struct rpc_server *rpc;
	struct ctl *ctl;
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
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The control plane's state changes, on the loop: vm.state_changed. */
static void state_changed(const struct ctl_state_change *c, void *arg)
{
	struct slotd *d = arg;
	json_object *p = json_object_new_object();

	json_object_object_add(p, "vm", json_object_new_string(c->vm));
	json_object_object_add(p, "old_state",
			       json_object_new_string(vmm_vm_state_name(c->old_state)));
	json_object_object_add(p, "new_state",
			       json_object_new_string(vmm_vm_state_name(c->new_state)));
	json_object_object_add(p, "time_ns", json_object_new_uint64(now_ns()));
	if (c->new_state == VMM_VM_CRASHED)
		json_object_object_add(p, "reason", json_object_new_string(c->reason));
	if (c->new_state == VMM_VM_STOPPED && c->has_exit_status)
		json_object_object_add(p, "exit_status", json_object_new_int64(c->exit_status));
	slog_fields(SLOG_INFO, &(struct slog_fields){ .vm = c->vm, .slot = -1, .peer_uid = -1 },
		    "vm %s: %s -> %s%s%s", c->vm, vmm_vm_state_name(c->old_state),
		    vmm_vm_state_name(c->new_state), c->new_state == VMM_VM_CRASHED ? ": " : "",
		    c->new_state == VMM_VM_CRASHED ? c->reason : "");
	rpc_server_notify(d->rpc, "vm.state_changed", p);
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
		  ctl_caps(d->ctl)->kvm_available ? "available" : ctl_caps(d->ctl)->kvm_error);
	sd_notify(0, "READY=1\nSTATUS=serving");
	if (d->ready_pipe >= 0) {
		if (write(d->ready_pipe, "r", 1) < 0) {
			/* The parent is gone; nothing to tell. */
		}
		close(d->ready_pipe);
		d->ready_pipe = -1;
	}
}

/* The runner executable: --runner, else slotd-runner next to slotd (the
 * build tree), else ../libexec/slotd-runner (an installed prefix). */
static const char *runner_path(struct slotd *d, char *buf, size_t len)
{
	char self[PATH_MAX], dir[PATH_MAX];
	ssize_t n;

	if (d->cfg.runner_path)
		return d->cfg.runner_path;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return "slotd-runner";
	self[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", dirname(self));
	snprintf(buf, len, "%s/slotd-runner", dir);
	if (access(buf, X_OK) == 0)
		return buf;
	snprintf(buf, len, "%s/../libexec/slotd-runner", dir);
	return buf;
}

/* Runner sockets: --runtime-dir, else runners/ next to the socket slotd
 * serves (the one systemd passed, or its own). */
static const char *runtime_dir(struct slotd *d, char *buf, size_t len)
{
	struct sockaddr_un a = { 0 };
	socklen_t alen = sizeof(a);
	char sock[PATH_MAX];

	if (d->cfg.runtime_dir)
		return d->cfg.runtime_dir;
	if (getsockname(d->listen_fd, (struct sockaddr *)&a, &alen) == 0 && a.sun_path[0])
		snprintf(sock, sizeof(sock), "%.*s", (int)sizeof(a.sun_path), a.sun_path);
	else
		snprintf(sock, sizeof(sock), "%s", d->cfg.socket_path);
	snprintf(buf, len, "%s/runners", dirname(sock));
	return buf;
}

static int ctl_setup(struct slotd *d)
{
	char rbuf[PATH_MAX + 32], dbuf[PATH_MAX + 16];
	struct ctl_config cc = {
		.base = d->base,
		.kvm_path = d->cfg.kvm_path,
		.state_dir = d->cfg.state_dir,
		.runtime_dir = runtime_dir(d, dbuf, sizeof(dbuf)),
		.runner_path = runner_path(d, rbuf, sizeof(rbuf)),
		.file_dirs = (const char *const *)d->cfg.file_dirs,
		.max_vm_memory = d->cfg.max_vm_memory,
		.max_total_memory = d->cfg.max_memory,
		/* Under systemd each runner gets a scope of its own, so that
		 * a restart of slotd.service leaves it alone. */
		.scopes = getenv("INVOCATION_ID") && sd_booted() > 0,
		.log_fd = slog_fd(),
		.on_state_change = state_changed,
		.cb_arg = d,
	};
	const struct vmm_caps *caps;
	int r = ctl_create(&cc, &d->ctl);

	if (r)
		return r;
	caps = ctl_caps(d->ctl);
	if (!caps->kvm_available)
		slog_warn("KVM unavailable (%s); serving without it", caps->kvm_error);
	else
		slog_info("KVM API %d, %d memslots, quirks 0x%llx; runners %s in %s",
			  caps->api_version, caps->max_memslots,
			  (unsigned long long)caps->supported_quirks, cc.runner_path, cc.runtime_dir);
	return 0;
}

static int rpc_setup(struct slotd *d)
{
	struct rpc_config rc = {
		.ctl = d->ctl,
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

/* Brings back the VMs of the state dir before READY=1: adopts the
 * runners still running, recreates the others; a file that cannot be
 * restored is kept aside and logged, never fatal. */
static int state_restore(struct slotd *d)
{
	struct ctl_restore_stats st;
	int r = ctl_restore(d->ctl, &st);

	if (r)
		slog_error("state: restoring from %s stopped: %s", d->cfg.state_dir, strerror(-r));
	if (st.adopted || st.recreated || st.failed)
		sd_notifyf(0, "STATUS=%u VM(s) adopted, %u recreated, %u failed", st.adopted,
			   st.recreated, st.failed);
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
	if ((r = signals_setup(d)) || (r = ctl_setup(d)) || (r = rpc_setup(d)))
		return r;
	return state_restore(d);
}

static void teardown(struct slotd *d)
{
	/* The runners go on (or, with --vms-on-exit stop, end their guests). */
	ctl_destroy(d->ctl, d->cfg.vms_stop_on_exit ? CTL_EXIT_STOP : CTL_EXIT_KEEP);
	rpc_server_destroy(d->rpc);
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
		.listen_fd = -1, .ro_fd = -1, .state_lock = -1, .ready_pipe = -1, .sig_fd = -1,
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
	slog_journal_set(slog_journal_detect());
	slog_journal_sender_set(sd_journal_sendv);
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
