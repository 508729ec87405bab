/* slotd's side of a runner: start one (fork + exec of slotd-runner with
 * its descriptors), or adopt one an earlier slotd left; typed calls over
 * the channel with a timeout; events delivered as they come, also while
 * a call waits for its reply.
 *
 * A runner is untrusted: its guest may have taken it over.  Every reply
 * is checked for its size before use, text from it is cleaned (wire.c),
 * and a malformed message ends the channel. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "runner/chan.h"
#include "runner/runner.h"
#include "runner/wire.h"

#define DEFAULT_TIMEOUT_MS	10000
#define GONE_WAIT_MS		2000

/* Where messages land (slotd's event loop is the only thread that calls
 * runners, one at a time). */
static unsigned char scratch[RUNNER_INLINE_MAX];

struct runner {
	int fd;				/* the channel; -1 once closed */
	pid_t pid;
	int pidfd;
	bool child;			/* started here and not reaped yet */
	bool spawned;			/* started here */
	bool ending;			/* told to exit (its VM destroyed) */
	bool commit_pending;		/* a TXN_END commit not sent yet */
	bool gone;			/* the runner ended (GONE delivered) */
	uint32_t seq;
	int err_index;			/* rm_err.index of the last refusal */
	unsigned timeout_ms;
	runner_event_fn fn;
	void *arg;
	struct rm_hello hello;		/* what the runner said of itself */
	char vm[VMM_NAME_MAX];
	char sock[108];
	char why[160];			/* how it ended */
};

static int err_set(struct vmm_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int err_set(struct vmm_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->field = NULL;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

/* ---- how a runner ended -------------------------------------------------- */

/* Waits up to ms for the runner process to end; fills r->why. */
static void why_ended(struct runner *r, unsigned ms)
{
	struct pollfd p = { .fd = r->pidfd, .events = POLLIN };
	siginfo_t si = { 0 };

	if (r->pidfd < 0 || poll(&p, 1, (int)ms) <= 0) {
		snprintf(r->why, sizeof(r->why), "runner process %d closed its channel", r->pid);
		return;
	}
	if (!r->child || waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED) < 0) {
		snprintf(r->why, sizeof(r->why), "runner process %d ended (it was adopted, so "
			 "its exit status is unknown)", r->pid);
		return;
	}
	r->child = false;	/* reaped */
	if (si.si_code == CLD_EXITED)
		snprintf(r->why, sizeof(r->why), "runner process %d exited with status %d",
			 r->pid, si.si_status);
	else
		snprintf(r->why, sizeof(r->why), "runner process %d was killed by %s%s",
			 r->pid, sigabbrev_np(si.si_status) ? sigabbrev_np(si.si_status) : "a signal",
			 si.si_code == CLD_DUMPED ? " (core dumped)" : "");
}

/* The runner is gone: closes the channel and tells the owner once. */
static void mark_gone(struct runner *r)
{
	struct runner_event ev = { .kind = RUNNER_EV_GONE };

	if (r->gone)
		return;
	r->gone = true;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	why_ended(r, GONE_WAIT_MS);
	ev.why = r->why;
	slog_warn("runner %s: %s", r->vm[0] ? r->vm : "?", r->why);
	if (r->fn)
		r->fn(r, &ev, r->arg);
}

/* ---- events ---------------------------------------------------------------- */

static void event_state(struct runner *r, const struct chan_msg *m)
{
	struct runner_event ev = { .kind = RUNNER_EV_STATE };
	struct rm_ev_state w;

	if (m->h.len < sizeof(w))
		return;
	memcpy(&w, m->data, sizeof(w));
	ev.old_state = w.old_state <= VMM_VM_CRASHED ? w.old_state : VMM_VM_CRASHED;
	ev.new_state = w.new_state <= VMM_VM_CRASHED ? w.new_state : VMM_VM_CRASHED;
	wire_info_get(&ev.info, &w.info);
	if (r->fn)
		r->fn(r, &ev, r->arg);
}

static void event_console(struct runner *r, const struct chan_msg *m)
{
	struct runner_event ev = { .kind = RUNNER_EV_CONSOLE };
	struct rm_console c;

	if (m->h.len < sizeof(c))
		return;
	memcpy(&c, m->data, sizeof(c));
	if (c.n > m->h.len - sizeof(c))
		return;
	ev.data = (const char *)m->data + sizeof(c);
	ev.len = (size_t)c.n;
	ev.total = c.total;
	if (r->fn)
		r->fn(r, &ev, r->arg);
}

/* Delivers an event; anything else unasked for is dropped (a late reply
 * of a call that timed out). */
static void deliver(struct runner *r, const struct chan_msg *m)
{
	if (m->h.type == RM_EV_STATE && !(m->h.flags & RUNNER_F_REPLY))
		event_state(r, m);
	else if (m->h.type == RM_EV_CONSOLE && !(m->h.flags & RUNNER_F_REPLY))
		event_console(r, m);
}

void runner_pump(struct runner *r)
{
	struct chan_msg m;
	int rc;

	while (r->fd >= 0 && (rc = chan_recv(r->fd, &m, 0, scratch)) != -EAGAIN) {
		if (rc) {
			if (rc == -EPROTO)
				slog_error("runner %s: malformed message; channel closed", r->vm);
			mark_gone(r);
			return;
		}
		deliver(r, &m);
		chan_msg_free(&m);
	}
}

/* ---- calls ----------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for the reply to seq, delivering events meanwhile (each receive
 * waits up to the socket's SO_RCVTIMEO, the call timeout). */
static int wait_reply(struct runner *r, unsigned type, uint32_t seq, struct chan_msg *rep,
		      struct vmm_err *err)
{
	uint64_t deadline = now_ms() + r->timeout_ms;

	for (;;) {
		int rc = now_ms() >= deadline ? -ETIMEDOUT :
			 chan_recv(r->fd, rep, CHAN_WAIT_SOCKOPT, scratch);

		if (rc == -ETIMEDOUT)
			return err_set(err, -ETIMEDOUT, "the runner of VM '%s' (pid %d) did not "
				       "answer %s within %u ms", r->vm, r->pid,
				       chan_msg_name(type), r->timeout_ms);
		if (rc) {
			mark_gone(r);
			return err_set(err, -ECONNRESET, "VM '%s': %s", r->vm, r->why);
		}
		if ((rep->h.flags & RUNNER_F_REPLY) && rep->h.seq == seq && rep->h.type == type)
			return 0;
		deliver(r, rep);
		chan_msg_free(rep);
	}
}

/* Sends a request and waits for its reply (*rep, to chan_msg_free).  A
 * refusal (status < 0) becomes the return value and err. */
static int call(struct runner *r, unsigned type, const struct iovec *iov, int niov,
		const int *fds, unsigned nfds, struct chan_msg *rep, struct vmm_err *err)
{
	uint32_t seq;
	int rc;

	uint32_t flags = 0;

	/* A commit still queued goes first: on this request when the runner
	 * takes it so (one message less), else on its own. */
	if (r->commit_pending && (r->hello.features & RUNNER_FEAT_COMMIT_NEXT) &&
	    type != RM_TXN_END) {
		r->commit_pending = false;
		flags = RUNNER_F_COMMIT;
	}
	if (r->fd < 0 || runner_flush(r))
		return err_set(err, -ECONNRESET, "VM '%s': %s", r->vm,
			       r->why[0] ? r->why : "its runner is gone");
	seq = ++r->seq ? r->seq : ++r->seq;
	rc = chan_send(r->fd, type, seq, flags, 0, iov, niov, fds, nfds, false);
	if (rc) {
		mark_gone(r);
		return err_set(err, -ECONNRESET, "VM '%s': %s", r->vm, r->why);
	}
	rc = wait_reply(r, type, seq, rep, err);
	if (rc || rep->h.status >= 0)
		return rc;
	r->err_index = -1;
	if (rep->h.len >= sizeof(struct rm_err)) {
		struct vmm_err e;

		wire_err_get(&e, (const struct rm_err *)rep->data, rep->h.status);
		r->err_index = ((const struct rm_err *)rep->data)->index;
		if (err)
			*err = e;
	} else {
		err_set(err, rep->h.status, "%s", strerror(-rep->h.status));
	}
	rc = rep->h.status < -4095 ? -EPROTO : rep->h.status;
	chan_msg_free(rep);
	return rc;
}

/* A call whose reply is exactly one struct of len bytes (or nothing). */
static int call_fixed(struct runner *r, unsigned type, const void *req, size_t req_len,
		      void *out, size_t len, struct vmm_err *err)
{
	struct iovec v = { (void *)req, req_len };
	struct chan_msg rep;
	int rc = call(r, type, &v, req_len ? 1 : 0, NULL, 0, &rep, err);

	if (rc)
		return rc;
	if (rep.h.len < len) {
		chan_msg_free(&rep);
		return err_set(err, -EPROTO, "VM '%s': a short %s reply from its runner", r->vm,
			       chan_msg_name(type));
	}
	if (len)
		memcpy(out, rep.data, len);
	chan_msg_free(&rep);
	return 0;
}

static int call_info(struct runner *r, unsigned type, const void *req, size_t len,
		     struct vmm_vm_info *info, struct vmm_err *err)
{
	struct rm_info w;
	int rc = call_fixed(r, type, req, len, &w, sizeof(w), err);

	if (!rc && info)
		wire_info_get(info, &w);
	return rc;
}

int runner_vm_create(struct runner *r, const struct vmm_vm_params *p,
		     struct vmm_vm_info *info, struct vmm_err *err)
{
	struct rm_vm_create c = {
		.type = p->type, .vcpus = p->vcpus, .mmio = p->mmio_policy,
		.ram = p->ram_backing, .memory = p->memory_bytes,
		.image_size = p->payload_image ? p->payload_image_size : 0,
	};
	struct iovec v[2] = { { &c, sizeof(c) }, { (void *)p->payload_image, c.image_size } };
	struct chan_msg rep;
	struct rm_info w;
	int rc;

	snprintf(c.name, sizeof(c.name), "%s", p->name);
	snprintf(c.payload, sizeof(c.payload), "%s", p->payload ? p->payload : "");
	memcpy(c.args, p->args, sizeof(c.args));
	rc = call(r, RM_VM_CREATE, v, c.image_size ? 2 : 1, NULL, 0, &rep, err);
	if (rc)
		return rc;
	if (rep.h.len < sizeof(w)) {
		chan_msg_free(&rep);
		return err_set(err, -EPROTO, "VM '%s': a short reply from its runner", r->vm);
	}
	memcpy(&w, rep.data, sizeof(w));
	chan_msg_free(&rep);
	if (info)
		wire_info_get(info, &w);
	return 0;
}

int runner_vm_lifecycle(struct runner *r, enum runner_verb verb, struct vmm_vm_info *info,
			struct vmm_err *err)
{
	static const unsigned types[] = {
		[RUNNER_START] = RM_VM_START, [RUNNER_PAUSE] = RM_VM_PAUSE,
		[RUNNER_RESUME] = RM_VM_RESUME, [RUNNER_STOP] = RM_VM_STOP,
	};

	return call_info(r, types[verb], NULL, 0, info, err);
}

int runner_vm_destroy(struct runner *r, struct vmm_err *err)
{
	int rc = call_fixed(r, RM_VM_DESTROY, NULL, 0, NULL, 0, err);

	r->ending = !rc;
	return rc;
}

int runner_vm_info(struct runner *r, struct vmm_vm_info *info, struct vmm_err *err)
{
	return call_info(r, RM_VM_INFO, NULL, 0, info, err);
}

int runner_quirk_set(struct runner *r, const char *name, bool enabled,
		     struct vmm_vm_info *info, struct vmm_effect *fx, struct vmm_err *err)
{
	struct rm_quirk_set q = { .enabled = enabled };
	struct { struct rm_info info; struct rm_effect fx; } rep;
	int rc;

	snprintf(q.name, sizeof(q.name), "%s", name);
	rc = call_fixed(r, RM_QUIRK_SET, &q, sizeof(q), &rep, sizeof(rep), err);
	if (rc)
		return rc;
	if (info)
		wire_info_get(info, &rep.info);
	if (fx)
		wire_effect_get(fx, &rep.fx);
	return 0;
}

int runner_slots_get(struct runner *r, struct vmm_memslot_info **slots, size_t *n,
		     struct vmm_err *err)
{
	struct chan_msg rep;
	struct rm_count c;
	const unsigned char *p;
	size_t left;
	int rc = call(r, RM_SLOTS_GET, NULL, 0, NULL, 0, &rep, err);

	if (rc)
		return rc;
	rc = -EPROTO;
	if (rep.h.len < sizeof(c))
		goto out;
	memcpy(&c, rep.data, sizeof(c));
	p = rep.data + sizeof(c);
	left = rep.h.len - sizeof(c);
	if (c.n > left / sizeof(struct rm_slot))
		goto out;
	*slots = calloc(c.n ? c.n : 1, sizeof(**slots));
	if (!*slots) {
		rc = -ENOMEM;
		goto out;
	}
	for (*n = 0; *n < c.n; (*n)++)
		if (wire_slot_get(&p, &left, &(*slots)[*n], NULL))
			break;
	rc = *n == c.n ? 0 : -EPROTO;
	if (rc)
		free(*slots);
out:
	chan_msg_free(&rep);
	return rc ? err_set(err, rc, "VM '%s': a malformed slot list from its runner", r->vm) : 0;
}

/* The request of a transaction: rm_txn, then per op an rm_op (and a
 * create's rm_slot record); *fds gets the backings to pass. */
static unsigned char *txn_encode(const struct vmm_memslot_op *ops, size_t n, size_t *len,
				 int *fds, unsigned *nfds)
{
	size_t total = sizeof(struct rm_txn);
	unsigned char *buf, *p;

	for (size_t i = 0; i < n; i++)
		total += sizeof(struct rm_op) +
			 (ops[i].kind == VMM_OP_CREATE ? wire_slot_size(&ops[i].create.backing) : 0);
	buf = p = malloc(total);
	if (!buf)
		return NULL;
	*nfds = 0;
	p += sizeof(struct rm_txn);
	for (size_t i = 0; i < n; i++) {
		const struct vmm_memslot_params *c = &ops[i].create;
		struct rm_op op = { .kind = ops[i].kind, .id = ops[i].id, .gpa = ops[i].gpa };
		struct vmm_memslot_info s = { .id = c->id, .gpa = c->gpa, .size = c->size,
					      .slot_flags = c->flags, .backing = c->backing };

		memcpy(p, &op, sizeof(op));
		p += sizeof(op);
		if (ops[i].kind != VMM_OP_CREATE)
			continue;
		p += wire_slot_put(p, &s, c->has_fd ? *nfds : UINT32_MAX);
		if (c->has_fd)
			fds[(*nfds)++] = c->fd;
	}
	memcpy(buf, &(struct rm_txn){ .n = (uint32_t)n, .nfds = *nfds }, sizeof(struct rm_txn));
	*len = total;
	return buf;
}

int runner_txn_apply(struct runner *r, const struct vmm_memslot_op *ops, size_t n,
		     uint32_t *ids, size_t *failed, struct vmm_effect *fx, struct vmm_err *err)
{
	int fds[VMM_TXN_MAX];
	struct rm_txn_rep rep;
	struct chan_msg m;
	struct iovec v;
	unsigned nfds = 0;
	size_t len = 0;
	int rc;

	*failed = SIZE_MAX;
	if (n == 0 || n > VMM_TXN_MAX)
		return err_set(err, -EINVAL, "a transaction has 1..%u operations", VMM_TXN_MAX);
	v.iov_base = txn_encode(ops, n, &len, fds, &nfds);
	v.iov_len = len;
	if (!v.iov_base)
		return err_set(err, -ENOMEM, "out of memory");
	rc = call(r, RM_TXN_APPLY, &v, 1, fds, nfds, &m, err);
	free(v.iov_base);
	if (rc) {
		/* The failed op's index rides in the error record. */
		if (r->err_index >= 0 && (size_t)r->err_index < n)
			*failed = (size_t)r->err_index;
		return rc;
	}
	if (m.h.len < sizeof(rep)) {
		chan_msg_free(&m);
		return err_set(err, -EPROTO, "VM '%s': a short transaction reply", r->vm);
	}
	memcpy(&rep, m.data, sizeof(rep));
	chan_msg_free(&m);
	if (rep.n != n)
		return err_set(err, -EPROTO, "VM '%s': the runner applied %u of %zu ops", r->vm,
			       rep.n, n);
	memcpy(ids, rep.ids, sizeof(uint32_t) * n);
	if (fx)
		wire_effect_get(fx, &rep.fx);
	return 0;
}

int runner_txn_end(struct runner *r, bool commit, struct vmm_err *err)
{
	struct rm_txn_end end = { .commit = commit };

	if (r->fd < 0)
		return err_set(err, -ECONNRESET, "VM '%s': %s", r->vm, r->why);
	if (!commit)
		return call_fixed(r, RM_TXN_END, &end, sizeof(end), NULL, 0, err);
	r->commit_pending = true;
	return 0;
}

int runner_flush(struct runner *r)
{
	struct rm_txn_end end = { .commit = true };
	struct iovec v = { &end, sizeof(end) };
	uint32_t seq;

	if (!r->commit_pending)
		return 0;
	r->commit_pending = false;
	if (r->fd < 0)
		return -ECONNRESET;
	seq = ++r->seq ? r->seq : ++r->seq;
	if (chan_send(r->fd, RM_TXN_END, seq, 0, 0, &v, 1, NULL, 0, false)) {
		mark_gone(r);
		return -ECONNRESET;
	}
	return 0;
}

int runner_set_flags(struct runner *r, uint32_t id, bool dirty_log, struct vmm_effect *fx,
		     struct vmm_err *err)
{
	struct rm_set_flags f = { .id = id, .dirty_log = dirty_log };
	struct rm_effect w;
	int rc = call_fixed(r, RM_SET_FLAGS, &f, sizeof(f), &w, sizeof(w), err);

	if (!rc && fx)
		wire_effect_get(fx, &w);
	return rc;
}

int runner_dirty_log(struct runner *r, uint32_t id, bool clear, uint64_t **bitmap,
		     uint64_t *npages, uint64_t *ndirty, struct vmm_err *err)
{
	struct rm_dirty_log d = { .id = id, .clear = clear };
	struct iovec v = { &d, sizeof(d) };
	struct rm_dirty_log_rep h;
	struct chan_msg rep;
	size_t words;
	int rc = call(r, RM_DIRTY_LOG, &v, 1, NULL, 0, &rep, err);

	if (rc)
		return rc;
	if (rep.h.len < sizeof(h))
		goto bad;
	memcpy(&h, rep.data, sizeof(h));
	words = (size_t)((h.npages + 63) / 64);
	if (h.npages > (1ull << 40) || rep.h.len - sizeof(h) != words * 8)
		goto bad;
	*bitmap = malloc(words ? words * 8 : 8);
	if (!*bitmap) {
		chan_msg_free(&rep);
		return err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(*bitmap, rep.data + sizeof(h), words * 8);
	*npages = h.npages;
	*ndirty = h.ndirty;
	chan_msg_free(&rep);
	return 0;
bad:
	chan_msg_free(&rep);
	return err_set(err, -EPROTO, "VM '%s': a malformed dirty log from its runner", r->vm);
}

int runner_memory_read(struct runner *r, uint64_t gpa, void *buf, size_t len,
		       struct vmm_err *err)
{
	struct rm_memory a = { .gpa = gpa, .len = len };
	struct iovec v = { &a, sizeof(a) };
	struct chan_msg rep;
	int rc = call(r, RM_MEMORY_READ, &v, 1, NULL, 0, &rep, err);

	if (rc)
		return rc;
	if (rep.h.len != len) {
		chan_msg_free(&rep);
		return err_set(err, -EPROTO, "VM '%s': %u bytes read instead of %zu", r->vm,
			       rep.h.len, len);
	}
	memcpy(buf, rep.data, len);
	chan_msg_free(&rep);
	return 0;
}

int runner_memory_write(struct runner *r, uint64_t gpa, const void *buf, size_t len,
			struct vmm_err *err)
{
	struct rm_memory a = { .gpa = gpa, .len = len };
	struct iovec v[2] = { { &a, sizeof(a) }, { (void *)buf, len } };
	struct chan_msg rep;
	int rc = call(r, RM_MEMORY_WRITE, v, 2, NULL, 0, &rep, err);

	if (!rc)
		chan_msg_free(&rep);
	return rc;
}

int runner_console_read(struct runner *r, size_t tail, char *buf, size_t len, size_t *n,
			uint64_t *total, struct vmm_err *err)
{
	struct rm_console c = { .tail = tail < len ? tail : len };
	struct iovec v = { &c, sizeof(c) };
	struct chan_msg rep;
	int rc = call(r, RM_CONSOLE_READ, &v, 1, NULL, 0, &rep, err);

	if (rc)
		return rc;
	if (rep.h.len < sizeof(c)) {
		chan_msg_free(&rep);
		return err_set(err, -EPROTO, "VM '%s': a short console reply", r->vm);
	}
	memcpy(&c, rep.data, sizeof(c));
	*n = c.n <= rep.h.len - sizeof(c) && c.n <= len ? (size_t)c.n : 0;
	memcpy(buf, rep.data + sizeof(c), *n);
	*total = c.total;
	chan_msg_free(&rep);
	return 0;
}

int runner_reports_read(struct runner *r, uint64_t from, struct vmm_report *recs, size_t max,
			size_t *n, struct vmm_err *err)
{
	struct rm_reports q = { .from = from, .max = (uint32_t)(max < 4096 ? max : 4096) };
	struct iovec v = { &q, sizeof(q) };
	struct chan_msg rep;
	struct rm_count c;
	int rc = call(r, RM_REPORTS_READ, &v, 1, NULL, 0, &rep, err);

	if (rc)
		return rc;
	*n = 0;
	if (rep.h.len >= sizeof(c)) {
		memcpy(&c, rep.data, sizeof(c));
		if (c.n <= q.max && rep.h.len - sizeof(c) == c.n * sizeof(*recs)) {
			memcpy(recs, rep.data + sizeof(c), c.n * sizeof(*recs));
			*n = c.n;
			rc = 0;
		} else {
			rc = err_set(err, -EPROTO, "VM '%s': a malformed report list", r->vm);
		}
	}
	chan_msg_free(&rep);
	return rc;
}

int runner_stats_foreach(struct runner *r, int (*fn)(const struct vmm_stat *st, void *arg),
			 void *arg, struct vmm_err *err)
{
	static const char *const sources[] = { "engine", "kvm", "exits", "devices" };
	struct chan_msg rep;
	struct rm_count c;
	int rc = call(r, RM_STATS_GET, NULL, 0, NULL, 0, &rep, err);

	if (rc)
		return rc;
	if (rep.h.len < sizeof(c) || (memcpy(&c, rep.data, sizeof(c)),
				      rep.h.len - sizeof(c) != c.n * sizeof(struct rm_stat))) {
		chan_msg_free(&rep);
		return err_set(err, -EPROTO, "VM '%s': a malformed statistics list", r->vm);
	}
	for (uint32_t i = 0; i < c.n && !rc; i++) {
		struct rm_stat w;
		struct vmm_stat st = { .source = "kvm" };
		char name[sizeof(w.name) + 1];

		memcpy(&w, rep.data + sizeof(c) + i * sizeof(w), sizeof(w));
		for (size_t k = 0; k < sizeof(sources) / sizeof(sources[0]); k++)
			if (!strncmp(w.source, sources[k], sizeof(w.source)))
				st.source = sources[k];
		/* Statistic names are identifiers; anything else is cleaned. */
		for (size_t k = 0; k < sizeof(w.name); k++) {
			char ch = w.name[k];

			name[k] = !ch ? 0 : (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				  (ch >= '0' && ch <= '9') || ch == '_' ? ch : '_';
			if (!ch)
				break;
		}
		name[sizeof(w.name)] = '\0';
		st.name = name;
		st.vcpu = w.vcpu;
		st.value = w.value;
		st.cumulative = w.cumulative;
		rc = fn(&st, arg);
	}
	chan_msg_free(&rep);
	return rc;
}

/* ---- start, adopt, end ----------------------------------------------------- */

static struct runner *runner_alloc(runner_event_fn fn, void *arg, unsigned timeout_ms)
{
	struct runner *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = r->pidfd = -1;
	r->fn = fn;
	r->arg = arg;
	r->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
	return r;
}

/* HELLO: the runner's protocol version, pid, build and VM. */
static int hello(struct runner *r, struct vmm_err *err)
{
	struct rm_hello h = { .proto = RUNNER_PROTO_VERSION };
	struct iovec v = { &h, sizeof(h) };
	struct chan_msg rep;
	size_t len;
	int rc;

	snprintf(h.build, sizeof(h.build), "%s", runner_build_id());
	rc = call(r, RM_HELLO, &v, 1, NULL, 0, &rep, err);
	if (rc)
		return rc;
	/* Runners built before features answer without them (0). */
	memset(&r->hello, 0, sizeof(r->hello));
	if (rep.h.len >= offsetof(struct rm_hello, features))
		memcpy(&r->hello, rep.data, rep.h.len < sizeof(r->hello) ? rep.h.len :
		       sizeof(r->hello));
	len = rep.h.len;
	chan_msg_free(&rep);
	if (len < offsetof(struct rm_hello, features))
		return err_set(err, -EPROTO, "VM '%s': a short %s reply from its runner", r->vm,
			       chan_msg_name(RM_HELLO));
	r->hello.build[sizeof(r->hello.build) - 1] = '\0';
	r->hello.vm[sizeof(r->hello.vm) - 1] = '\0';
	if (r->hello.proto != RUNNER_PROTO_VERSION)
		return err_set(err, -EPROTO, "the runner speaks protocol %u, this slotd %u",
			       r->hello.proto, RUNNER_PROTO_VERSION);
	if (r->hello.vm[0] && !vmm_vm_name_valid(r->hello.vm))
		return err_set(err, -EPROTO, "the runner names an invalid VM");
	for (char *p = r->hello.build; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
	return 0;
}

/* Binds the runner's socket at path, replacing a stale file (no live
 * listener behind it). */
static int sock_bind(const char *path, struct vmm_err *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, probe;

	if (strlen(path) >= sizeof(a.sun_path))
		return err_set(err, -ENAMETOOLONG, "runner socket path %s is too long", path);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0) {
		close(probe);
		return err_set(err, -EEXIST, "a runner already listens on %s", path);
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;

		close(fd);
		return err_set(err, -e, "binding %s: %s", path, strerror(e));
	}
	return fd;
}

/* In the child: descriptors 3 (KVM), 4 (listening socket), 5 (slotd's
 * first connection), stderr; nothing else; no blocked signals; its own
 * session.  Only async-signal-safe calls here. */
static void child_exec(const struct runner_spawn_config *cfg, int lfd, int conn,
		       char *const argv[])
{
	sigset_t none;
	int kvm = fcntl(cfg->kvm_fd, F_DUPFD, 10), l = fcntl(lfd, F_DUPFD, 10),
	    c = fcntl(conn, F_DUPFD, 10), log = cfg->log_fd >= 0 ? fcntl(cfg->log_fd, F_DUPFD, 10) : -1,
	    null = open("/dev/null", O_RDWR);

	if (kvm < 0 || l < 0 || c < 0 || null < 0)
		_exit(127);
	setsid();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	dup2(null, 0);
	dup2(null, 1);
	if (log >= 0)
		dup2(log, 2);
	if (dup2(kvm, 3) < 0 || dup2(l, 4) < 0 || dup2(c, 5) < 0)
		_exit(127);
	close_range(6, ~0U, 0);
	execv(cfg->runner_path, argv);
	_exit(127);
}

int runner_spawn(const struct runner_spawn_config *cfg, const char *vm_name,
		 runner_event_fn fn, void *arg, struct runner **out, struct vmm_err *err)
{
	char arg0[] = "slotd-runner", arg1[] = "--vm", name[VMM_NAME_MAX], arg3[] = "--socket";
	char *argv[] = { arg0, arg1, name, arg3, NULL, NULL };
	struct runner *r = runner_alloc(fn, arg, cfg->timeout_ms);
	int sp[2] = { -1, -1 }, lfd, rc;
	pid_t pid;

	if (!r)
		return err_set(err, -ENOMEM, "out of memory");
	snprintf(name, sizeof(name), "%s", vm_name);
	snprintf(r->vm, sizeof(r->vm), "%s", vm_name);
	snprintf(r->sock, sizeof(r->sock), "%s/%s.sock", cfg->runtime_dir, vm_name);
	argv[4] = r->sock;	/* for ps: which socket a runner serves */
	lfd = sock_bind(r->sock, err);
	if (lfd < 0) {
		free(r);
		return lfd;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		rc = err_set(err, -errno, "socketpair: %s", strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		rc = err_set(err, -errno, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child_exec(cfg, lfd, sp[1], argv);
	close(lfd);
	close(sp[1]);
	lfd = sp[1] = -1;
	r->fd = sp[0];
	chan_timeout_set(r->fd, r->timeout_ms);
	r->pid = pid;
	r->child = r->spawned = true;
	r->pidfd = pidfd_open(pid, 0);
	rc = hello(r, err);
	if (rc) {
		runner_kill(r);
		unlink(r->sock);
		runner_free(r);
		return rc;
	}
	*out = r;
	return 0;
fail:
	if (lfd >= 0)
		close(lfd);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	unlink(r->sock);
	free(r);
	return rc;
}

/* Connects to path without waiting for a listener that cannot take it. */
static int sock_connect(const char *path, struct vmm_err *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return err_set(err, -ENAMETOOLONG, "%s is too long", path);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;

		close(fd);
		return err_set(err, -e, "%s: %s", path, strerror(e));
	}
	/* Blocking from here; a receive waits at most SO_RCVTIMEO. */
	fcntl(fd, F_SETFL, 0);
	return fd;
}

int runner_adopt(const char *sock_path, unsigned timeout_ms, runner_event_fn fn, void *arg,
		 struct runner **out, struct vmm_err *err)
{
	struct runner *r = runner_alloc(fn, arg, timeout_ms);
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int rc;

	if (!r)
		return err_set(err, -ENOMEM, "out of memory");
	snprintf(r->sock, sizeof(r->sock), "%s", sock_path);
	r->fd = sock_connect(sock_path, err);
	if (r->fd < 0) {
		rc = r->fd;
		free(r);
		return rc;
	}
	chan_timeout_set(r->fd, r->timeout_ms);
	/* The runner called listen() itself: the peer is the runner. */
	if (getsockopt(r->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		rc = err_set(err, -errno, "SO_PEERCRED: %s", strerror(errno));
		goto fail;
	}
	r->pid = cred.pid;
	r->pidfd = pidfd_open(cred.pid, 0);
	rc = hello(r, err);
	if (!rc && r->hello.pid != (uint32_t)cred.pid)
		rc = err_set(err, -EPROTO, "the runner on %s says it is pid %u; the socket says %d",
			     sock_path, r->hello.pid, cred.pid);
	if (rc)
		goto fail;
	snprintf(r->vm, sizeof(r->vm), "%s", r->hello.vm);
	*out = r;
	return 0;
fail:
	runner_free(r);
	return rc;
}

void runner_free(struct runner *r)
{
	struct pollfd p = { .fd = r ? r->pidfd : -1, .events = POLLIN };
	siginfo_t si;

	if (!r)
		return;
	if (r->fd >= 0 && r->commit_pending)
		runner_flush(r);
	if (r->fd >= 0)
		close(r->fd);
	/* A child that ended, or is ending, is reaped (no zombie is left);
	 * a live one goes on, adopted by init (or a subreaper) once slotd
	 * exits. */
	if (r->child && r->pidfd >= 0 && r->ending)
		poll(&p, 1, GONE_WAIT_MS);
	if (r->child && r->pidfd >= 0)
		waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED | WNOHANG);
	if (r->pidfd >= 0)
		close(r->pidfd);
	free(r);
}

void runner_kill(struct runner *r)
{
	if (r->pidfd >= 0)
		pidfd_send_signal(r->pidfd, SIGKILL, NULL, 0);
	else if (r->pid > 0)
		kill(r->pid, SIGKILL);
	mark_gone(r);
}

int runner_fd(const struct runner *r)
{
	return r->fd;
}

bool runner_alive(const struct runner *r)
{
	return !r->gone;
}

pid_t runner_pid(const struct runner *r)
{
	return r->pid;
}

bool runner_is_child(const struct runner *r)
{
	return r->spawned;
}

const char *runner_build(const struct runner *r)
{
	return r->hello.build;
}

const char *runner_vm_name(const struct runner *r)
{
	return r->hello.vm;
}

uint64_t runner_started_ns(const struct runner *r)
{
	return r->hello.started_ns;
}

unsigned runner_controllers(const struct runner *r)
{
	return r->hello.controllers;
}

const char *runner_sock_path(const struct runner *r)
{
	return r->sock;
}
