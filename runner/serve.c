/* The runner's side of the channel: one VM, driven by typed commands from
 * slotd.  A single control thread accepts slotd's connection on the
 * listening socket it was given, executes each command on the VM through
 * vmm/, and sends state changes and console output back as events; the
 * vCPU threads only wake it (eventfd).  When slotd goes away (restart,
 * upgrade, crash) the guest runs on and the next slotd connects again;
 * a newer connection replaces an older one. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "runner/chan.h"
#include "runner/runner.h"
#include "runner/wire.h"
#include "vmm/vmm.h"

#define STATE_QUEUE	64
#define CONSOLE_EVENT_MAX (16u << 10)
#define TICK_MS		50		/* console events at most this late */
#define TXN_END_WAIT_MS	30000		/* then a held transaction is undone */

/* Where messages land (only the control thread receives). */
static unsigned char scratch[RUNNER_INLINE_MAX];

struct rserve {
	struct vmm *vmm;
	struct vmm_vm *vm;
	int listen_fd;
	int conn;			/* slotd, or -1 */
	int state_efd;
	pthread_mutex_t q_lock;
	struct { uint32_t old_state, new_state; } q[STATE_QUEUE];
	unsigned qn, qdropped;
	uint64_t console_sent;		/* console bytes already sent */
	uint64_t started_ns;		/* CLOCK_REALTIME */
	uint32_t controllers;
	bool exiting;
	struct chan_msg next;		/* a request that carried a commit */
	bool has_next;
};

/* ---- replies --------------------------------------------------------- */

static int reply(struct rserve *s, const struct chan_msg *m, const struct iovec *iov,
		 int niov, const int *fds, unsigned nfds)
{
	int r = chan_send(s->conn, m->h.type, m->h.seq, RUNNER_F_REPLY, 0, iov, niov, fds,
			  nfds, false);

	if (r)
		slog_warn("runner: reply to %s: %s", chan_msg_name(m->h.type), strerror(-r));
	return r;
}

static int reply_one(struct rserve *s, const struct chan_msg *m, const void *p, size_t len)
{
	struct iovec v = { (void *)p, len };

	return reply(s, m, &v, len ? 1 : 0, NULL, 0);
}

/* An error reply: code (-errno), e's field and message, a failed op. */
static int reply_err(struct rserve *s, const struct chan_msg *m, int code,
		     const struct vmm_err *e, int index)
{
	struct rm_err w;
	struct iovec v = { &w, sizeof(w) };

	wire_err_put(&w, e, index);
	if (!w.msg[0])
		snprintf(w.msg, sizeof(w.msg), "%s", strerror(-code));
	return chan_send(s->conn, m->h.type, m->h.seq, RUNNER_F_REPLY, code, &v, 1, NULL, 0,
			 false);
}

static int reply_info(struct rserve *s, const struct chan_msg *m)
{
	struct vmm_vm_info in;
	struct rm_info w;

	vmm_vm_info_get(s->vm, &in);
	wire_info_put(&w, &in);
	return reply_one(s, m, &w, sizeof(w));
}

/* The payload as a struct of exactly len bytes, or NULL after replying
 * -EPROTO. */
static const void *payload(struct rserve *s, const struct chan_msg *m, size_t len)
{
	struct vmm_err e = { 0 };

	if (m->h.len >= len && m->data)
		return m->data;
	vmm_err_set(&e, -EPROTO, NULL, "%s: payload of %u bytes, expected %zu",
		    chan_msg_name(m->h.type), m->h.len, len);
	reply_err(s, m, -EPROTO, &e, -1);
	return NULL;
}

/* ---- state changes (vCPU threads -> control thread) -------------------- */

static void state_changed(struct vmm_vm *vm, enum vmm_vm_state old_state,
			  enum vmm_vm_state new_state, void *arg)
{
	struct rserve *s = arg;
	uint64_t one = 1;

	(void)vm;
	pthread_mutex_lock(&s->q_lock);
	if (s->qn < STATE_QUEUE) {
		s->q[s->qn].old_state = old_state;
		s->q[s->qn].new_state = new_state;
		s->qn++;
	} else {
		s->qdropped++;
	}
	pthread_mutex_unlock(&s->q_lock);
	if (write(s->state_efd, &one, sizeof(one)) < 0) {
		/* Already signalled: the loop will look. */
	}
}

/* Sends queued state changes to slotd (dropped while none is connected:
 * it reads the state when it connects). */
static void state_flush(struct rserve *s)
{
	struct rm_ev_state ev[STATE_QUEUE];
	struct vmm_vm_info in;
	unsigned n;
	uint64_t v;

	if (read(s->state_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&s->q_lock);
	n = s->qn;
	for (unsigned i = 0; i < n; i++) {
		ev[i].old_state = s->q[i].old_state;
		ev[i].new_state = s->q[i].new_state;
	}
	s->qn = 0;
	pthread_mutex_unlock(&s->q_lock);
	if (!s->vm || s->conn < 0)
		return;
	vmm_vm_info_get(s->vm, &in);
	for (unsigned i = 0; i < n; i++) {
		struct iovec iov = { &ev[i], sizeof(ev[i]) };

		wire_info_put(&ev[i].info, &in);
		/* The state at the time of sending; the transition says
		 * what happened. */
		ev[i].info.state = ev[i].new_state;
		chan_send(s->conn, RM_EV_STATE, 0, 0, 0, &iov, 1, NULL, 0, true);
	}
}

/* Sends console bytes written since the last event. */
static void console_flush(struct rserve *s)
{
	struct vmm_vm_info in;
	struct rm_console c;
	static char buf[CONSOLE_EVENT_MAX];
	uint64_t fresh;
	size_t n = 0;

	if (!s->vm || s->conn < 0)
		return;
	vmm_vm_info_get(s->vm, &in);
	fresh = in.console_bytes - s->console_sent;
	if (!fresh)
		return;
	vmm_vm_console_read(s->vm, fresh < sizeof(buf) ? fresh : sizeof(buf), buf,
			    sizeof(buf), &n);
	c = (struct rm_console){ .total = in.console_bytes, .n = n };
	if (chan_send(s->conn, RM_EV_CONSOLE, 0, 0, 0,
		      (struct iovec[]){ { &c, sizeof(c) }, { buf, n } }, 2, NULL, 0, true) == 0)
		s->console_sent = in.console_bytes;
}

/* ---- commands ---------------------------------------------------------- */

static int on_hello(struct rserve *s, const struct chan_msg *m)
{
	struct rm_hello h = { .proto = RUNNER_PROTO_VERSION, .pid = (uint32_t)getpid(),
			      .started_ns = s->started_ns, .controllers = s->controllers,
			      .has_vm = s->vm != NULL, .features = RUNNER_FEAT_COMMIT_NEXT };

	snprintf(h.build, sizeof(h.build), "%s", runner_build_id());
	if (s->vm)
		snprintf(h.vm, sizeof(h.vm), "%s", vmm_vm_name(s->vm));
	return reply_one(s, m, &h, sizeof(h));
}

static int on_vm_create(struct rserve *s, const struct chan_msg *m)
{
	const struct rm_vm_create *c = payload(s, m, sizeof(*c));
	struct vmm_vm_params p = { 0 };
	struct vmm_err e = { 0 };
	char name[64], spec[256];
	int r;

	if (!c)
		return 0;
	if (s->vm)
		return reply_err(s, m, -EEXIST, NULL, -1);
	if (c->image_size != m->h.len - sizeof(*c))
		return reply_err(s, m, -EPROTO, NULL, -1);
	snprintf(name, sizeof(name), "%.*s", (int)sizeof(c->name) - 1, c->name);
	snprintf(spec, sizeof(spec), "%.*s", (int)sizeof(c->payload) - 1, c->payload);
	p.name = name;
	p.payload = spec;
	p.type = c->type == VMM_VM_TYPE_PROTECTED ? VMM_VM_TYPE_PROTECTED : VMM_VM_TYPE_DEFAULT;
	p.vcpus = c->vcpus;
	p.memory_bytes = c->memory;
	p.mmio_policy = c->mmio == VMM_MMIO_CRASH ? VMM_MMIO_CRASH : VMM_MMIO_IGNORE;
	p.ram_backing = c->ram == VMM_RAM_ANON ? VMM_RAM_ANON : VMM_RAM_MEMFD;
	memcpy(p.args, c->args, sizeof(p.args));
	if (c->image_size) {
		p.payload_image = m->data + sizeof(*c);
		p.payload_image_size = c->image_size;
	}
	r = vmm_vm_create(s->vmm, &p, &s->vm, &e);
	if (r)
		return reply_err(s, m, r, &e, -1);
	slog_info("runner %s: VM created (%u vCPU(s), %llu bytes)", name, p.vcpus,
		  (unsigned long long)p.memory_bytes);
	return reply_info(s, m);
}

typedef int (*vm_verb_fn)(struct vmm_vm *vm, struct vmm_err *err);

static int on_lifecycle(struct rserve *s, const struct chan_msg *m, vm_verb_fn fn)
{
	struct vmm_err e = { 0 };
	int r = fn(s->vm, &e);

	return r ? reply_err(s, m, r, &e, -1) : reply_info(s, m);
}

static int on_vm_destroy(struct rserve *s, const struct chan_msg *m)
{
	struct vmm_err e = { 0 };
	int r = vmm_vm_destroy(s->vm, &e);

	if (r)
		return reply_err(s, m, r, &e, -1);
	s->vm = NULL;
	s->exiting = true;
	return reply_one(s, m, NULL, 0);
}

#define SNAP_MAX 96

/* The VM's cumulative kernel (stats fd, VM-wide) counters. */
struct kstats {
	size_t n;
	struct { char name[40]; uint64_t v; } c[SNAP_MAX];
};

static int kstat_one(const struct vmm_stat *st, void *arg)
{
	struct kstats *k = arg;

	if (strcmp(st->source, "kvm") || st->vcpu >= 0 || !st->cumulative || k->n >= SNAP_MAX)
		return 0;
	snprintf(k->c[k->n].name, sizeof(k->c[0].name), "%s", st->name);
	k->c[k->n++].v = st->value;
	return 0;
}

/* The kernel counters that moved between a and b, into fx. */
static void kstats_delta(const struct kstats *a, const struct kstats *b, struct vmm_effect *fx)
{
	for (size_t i = 0; i < b->n && i < a->n && fx->n < VMM_EFFECT_MAX; i++) {
		if (strcmp(a->c[i].name, b->c[i].name) || a->c[i].v == b->c[i].v)
			continue;
		snprintf(fx->counters[fx->n].side, sizeof(fx->counters[0].side), "kernel");
		snprintf(fx->counters[fx->n].name, sizeof(fx->counters[0].name), "%s",
			 b->c[i].name);
		fx->counters[fx->n++].delta = (int64_t)(b->c[i].v - a->c[i].v);
	}
}

/* A quirk change, answered with the VM's info and the change's effect
 * (the kernel counters that moved). */
static int on_quirk_set(struct rserve *s, const struct chan_msg *m)
{
	const struct rm_quirk_set *q = payload(s, m, sizeof(*q));
	struct { struct rm_info info; struct rm_effect fx; } rep;
	struct kstats *k = calloc(2, sizeof(*k));
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	struct vmm_vm_info in;
	char name[48];
	uint64_t t0;
	int r;

	if (!q || !k) {
		free(k);
		return q ? reply_err(s, m, -ENOMEM, NULL, -1) : 0;
	}
	snprintf(name, sizeof(name), "%.*s", (int)sizeof(q->name) - 1, q->name);
	vmm_vm_stats_foreach(s->vm, kstat_one, &k[0]);
	t0 = vmm_now_ns();
	r = vmm_vm_quirk_set(s->vm, name, q->enabled, &e);
	fx.duration_ns = fx.kernel_ns = vmm_now_ns() - t0;
	vmm_vm_stats_foreach(s->vm, kstat_one, &k[1]);
	kstats_delta(&k[0], &k[1], &fx);
	free(k);
	if (r)
		return reply_err(s, m, r, &e, -1);
	vmm_vm_info_get(s->vm, &in);
	wire_info_put(&rep.info, &in);
	wire_effect_put(&rep.fx, &fx);
	return reply_one(s, m, &rep, sizeof(rep));
}

static int on_slots_get(struct rserve *s, const struct chan_msg *m)
{
	struct vmm_memslot_info *slots = NULL;
	size_t n = 0, max = 0, len = sizeof(struct rm_count);
	unsigned char *buf, *p;
	int r;

	for (;;) {
		vmm_vm_memslots_get(s->vm, slots, max, &n);
		if (n <= max)
			break;
		free(slots);
		max = n;
		slots = calloc(max, sizeof(*slots));
		if (!slots)
			return reply_err(s, m, -ENOMEM, NULL, -1);
	}
	for (size_t i = 0; i < n; i++)
		len += wire_slot_size(&slots[i].backing);
	buf = p = malloc(len);
	if (!buf) {
		free(slots);
		return reply_err(s, m, -ENOMEM, NULL, -1);
	}
	memcpy(p, &(struct rm_count){ .n = (uint32_t)n }, sizeof(struct rm_count));
	p += sizeof(struct rm_count);
	for (size_t i = 0; i < n; i++)
		p += wire_slot_put(p, &slots[i], UINT32_MAX);
	r = reply_one(s, m, buf, len);
	free(buf);
	free(slots);
	return r;
}

/* ---- transactions ------------------------------------------------------ */

struct txn_wait {
	struct rserve *s;
	const struct chan_msg *apply;
	bool called;		/* every op applied: the hook ran */
	bool aborted;		/* slotd said abort: answer its TXN_END */
	uint32_t end_seq;
};

/* The commit hook: tells slotd what was applied, then holds the vCPUs
 * until slotd has made it durable (commit) or not (abort).  A lost slotd
 * or a silent one undoes the transaction: the next slotd reconciles. */
static int txn_commit(void *arg, const uint32_t *ids, const struct vmm_effect *fx)
{
	struct txn_wait *w = arg;
	struct rserve *s = w->s;
	struct rm_txn_rep rep = { .n = 0 };
	const struct rm_txn *t = (const void *)w->apply->data;
	struct rm_txn_end end;
	struct chan_msg m;
	int r;

	w->called = true;
	rep.n = t->n;
	memcpy(rep.ids, ids, sizeof(uint32_t) * t->n);
	wire_effect_put(&rep.fx, fx);
	if (reply_one(s, w->apply, &rep, sizeof(rep)))
		return -ECONNRESET;
	r = chan_recv(s->conn, &m, CHAN_WAIT_SOCKOPT, scratch);	/* TXN_END_WAIT_MS */
	if (r) {
		slog_warn("runner %s: no end of transaction from slotd (%s): undone",
			  vmm_vm_name(s->vm), strerror(-r));
		return r;
	}
	if (m.h.type != RM_TXN_END && (m.h.flags & RUNNER_F_COMMIT)) {
		/* slotd's next request, the commit riding on it: it is
		 * handled once the transaction is over. */
		s->next = m;
		s->has_next = true;
		return 0;
	}
	if (m.h.type != RM_TXN_END || m.h.len < sizeof(end)) {
		slog_warn("runner %s: %s while a transaction waited for its end: undone",
			  vmm_vm_name(s->vm), chan_msg_name(m.h.type));
		chan_msg_free(&m);
		return -EPROTO;
	}
	memcpy(&end, m.data, sizeof(end));
	w->end_seq = m.h.seq;
	chan_msg_free(&m);
	if (end.commit)
		return 0;
	w->aborted = true;
	return -ECANCELED;
}

/* Parses the ops of an RM_TXN_APPLY into ops (creates take their fds). */
static int txn_parse(const struct chan_msg *m, struct vmm_memslot_op *ops, size_t *n)
{
	const struct rm_txn *t = (const void *)m->data;
	const unsigned char *p = m->data + sizeof(*t);
	size_t left = m->h.len - sizeof(*t);

	if (t->n == 0 || t->n > VMM_TXN_MAX || t->nfds != m->nfds)
		return -EPROTO;
	for (size_t i = 0; i < t->n; i++) {
		struct rm_op op;
		struct vmm_memslot_info si;
		uint32_t fdi;

		if (left < sizeof(op))
			return -EPROTO;
		memcpy(&op, p, sizeof(op));
		p += sizeof(op);
		left -= sizeof(op);
		memset(&ops[i], 0, sizeof(ops[i]));
		ops[i].kind = (enum vmm_memslot_op_kind)op.kind;
		ops[i].id = op.id;
		ops[i].gpa = op.gpa;
		if (op.kind > VMM_OP_DELETE)
			return -EPROTO;
		if (op.kind != VMM_OP_CREATE)
			continue;
		if (wire_slot_get(&p, &left, &si, &fdi))
			return -EPROTO;
		ops[i].create = (struct vmm_memslot_params){
			.id = si.id, .gpa = si.gpa, .size = si.size, .flags = si.slot_flags,
			.backing = si.backing,
		};
		if (fdi != UINT32_MAX) {
			if (fdi >= m->nfds)
				return -EPROTO;
			ops[i].create.has_fd = true;
			ops[i].create.fd = m->fds[fdi];
		}
	}
	*n = t->n;
	return 0;
}

static int on_txn_apply(struct rserve *s, const struct chan_msg *m)
{
	struct txn_wait w = { .s = s, .apply = m };
	struct vmm_txn_commit commit = { txn_commit, &w };
	struct vmm_memslot_op *ops = NULL;
	uint32_t ids[VMM_TXN_MAX];
	struct vmm_effect fx;
	struct vmm_err e = { 0 };
	size_t n = 0, failed = SIZE_MAX;
	int r = -EPROTO;

	if (!payload(s, m, sizeof(struct rm_txn)))
		return 0;
	n = ((const struct rm_txn *)m->data)->n;
	ops = n <= VMM_TXN_MAX ? calloc(n ? n : 1, sizeof(*ops)) : NULL;
	if (!ops)
		return reply_err(s, m, n > VMM_TXN_MAX ? -EPROTO : -ENOMEM, NULL, -1);
	if (txn_parse(m, ops, &n)) {
		free(ops);
		return reply_err(s, m, -EPROTO, NULL, -1);
	}
	r = vmm_memslot_transaction(s->vm, ops, n, ids, &failed, &commit, &fx, &e);
	free(ops);
	if (w.aborted)		/* undone as slotd asked: confirm it */
		return chan_send(s->conn, RM_TXN_END, w.end_seq, RUNNER_F_REPLY, 0, NULL, 0,
				 NULL, 0, false);
	if (w.called)		/* committed, or undone because slotd left */
		return 0;
	return reply_err(s, m, r ? r : -EPROTO, &e, failed == SIZE_MAX ? -1 : (int)failed);
}

static int on_set_flags(struct rserve *s, const struct chan_msg *m)
{
	const struct rm_set_flags *f = payload(s, m, sizeof(*f));
	struct vmm_effect fx = { 0 };
	struct vmm_err e = { 0 };
	struct rm_effect w;
	int r;

	if (!f)
		return 0;
	r = vmm_memslot_set_flags(s->vm, f->id, f->dirty_log, &fx, &e);
	if (r)
		return reply_err(s, m, r, &e, -1);
	wire_effect_put(&w, &fx);
	return reply_one(s, m, &w, sizeof(w));
}

static int on_dirty_log(struct rserve *s, const struct chan_msg *m)
{
	const struct rm_dirty_log *d = payload(s, m, sizeof(*d));
	struct rm_dirty_log_rep rep;
	struct vmm_err e = { 0 };
	uint64_t *bm = NULL;
	int r;

	if (!d)
		return 0;
	r = vmm_memslot_dirty_log(s->vm, d->id, d->clear, &bm, &rep.npages, &rep.ndirty, &e);
	if (r)
		return reply_err(s, m, r, &e, -1);
	r = reply(s, m, (struct iovec[]){ { &rep, sizeof(rep) },
					   { bm, (rep.npages + 63) / 64 * 8 } }, 2, NULL, 0);
	free(bm);
	return r;
}

static int on_memory(struct rserve *s, const struct chan_msg *m, bool write)
{
	const struct rm_memory *a = payload(s, m, sizeof(*a));
	struct vmm_err e = { 0 };
	void *buf;
	int r;

	if (!a)
		return 0;
	if (a->len == 0 || a->len > VMM_MEMORY_IO_MAX ||
	    (write && a->len != m->h.len - sizeof(*a)))
		return reply_err(s, m, -EINVAL, NULL, -1);
	if (write) {
		r = vmm_vm_memory_write(s->vm, a->gpa, m->data + sizeof(*a), a->len, &e);
		return r ? reply_err(s, m, r, &e, -1) : reply_one(s, m, NULL, 0);
	}
	buf = malloc(a->len);
	if (!buf)
		return reply_err(s, m, -ENOMEM, NULL, -1);
	r = vmm_vm_memory_read(s->vm, a->gpa, buf, a->len, &e);
	r = r ? reply_err(s, m, r, &e, -1) : reply_one(s, m, buf, a->len);
	free(buf);
	return r;
}

static int on_console_read(struct rserve *s, const struct chan_msg *m)
{
	const struct rm_console *c = payload(s, m, sizeof(*c));
	struct vmm_vm_info in;
	struct rm_console rep;
	size_t want, n = 0;
	char *buf;
	int r;

	if (!c)
		return 0;
	want = c->tail && c->tail < 65536 ? (size_t)c->tail : 65536;
	buf = malloc(want);
	if (!buf)
		return reply_err(s, m, -ENOMEM, NULL, -1);
	vmm_vm_console_read(s->vm, want, buf, want, &n);
	vmm_vm_info_get(s->vm, &in);
	rep = (struct rm_console){ .total = in.console_bytes, .n = n };
	r = reply(s, m, (struct iovec[]){ { &rep, sizeof(rep) }, { buf, n } }, 2, NULL, 0);
	free(buf);
	return r;
}

static int on_reports_read(struct rserve *s, const struct chan_msg *m)
{
	const struct rm_reports *q = payload(s, m, sizeof(*q));
	struct rm_count c = { 0 };
	struct vmm_report *recs;
	size_t max, n = 0;
	int r;

	if (!q)
		return 0;
	max = q->max && q->max < 4096 ? q->max : 4096;
	recs = calloc(max, sizeof(*recs));
	if (!recs)
		return reply_err(s, m, -ENOMEM, NULL, -1);
	vmm_vm_reports_read(s->vm, q->from, recs, max, &n);
	c.n = (uint32_t)n;
	r = reply(s, m, (struct iovec[]){ { &c, sizeof(c) }, { recs, n * sizeof(*recs) } }, 2,
		  NULL, 0);
	free(recs);
	return r;
}

struct stat_buf {
	struct rm_stat *s;
	size_t n, cap;
};

static int stat_one(const struct vmm_stat *st, void *arg)
{
	struct stat_buf *b = arg;
	struct rm_stat *w;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 128;
		struct rm_stat *ns = realloc(b->s, cap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		b->s = ns;
		b->cap = cap;
	}
	w = &b->s[b->n++];
	memset(w, 0, sizeof(*w));
	snprintf(w->source, sizeof(w->source), "%s", st->source);
	snprintf(w->name, sizeof(w->name), "%s", st->name);
	w->vcpu = st->vcpu;
	w->cumulative = st->cumulative;
	w->value = st->value;
	return 0;
}

static int on_stats_get(struct rserve *s, const struct chan_msg *m)
{
	struct stat_buf b = { 0 };
	struct rm_count c;
	int r = vmm_vm_stats_foreach(s->vm, stat_one, &b);

	if (r) {
		free(b.s);
		return reply_err(s, m, r, NULL, -1);
	}
	c = (struct rm_count){ .n = (uint32_t)b.n };
	r = reply(s, m, (struct iovec[]){ { &c, sizeof(c) }, { b.s, b.n * sizeof(*b.s) } }, 2,
		  NULL, 0);
	free(b.s);
	return r;
}

/* One command; the VM commands need a VM. */
static int dispatch(struct rserve *s, const struct chan_msg *m)
{
	if (m->h.type == RM_HELLO)
		return on_hello(s, m);
	if (m->h.type == RM_VM_CREATE)
		return on_vm_create(s, m);
	if (!s->vm && m->h.type == RM_VM_DESTROY) {
		s->exiting = true;	/* a runner whose VM was never made */
		return reply_one(s, m, NULL, 0);
	}
	if (!s->vm)
		return reply_err(s, m, -ENOENT, NULL, -1);
	switch (m->h.type) {
	case RM_VM_START: return on_lifecycle(s, m, vmm_vm_start);
	case RM_VM_PAUSE: return on_lifecycle(s, m, vmm_vm_pause);
	case RM_VM_RESUME: return on_lifecycle(s, m, vmm_vm_resume);
	case RM_VM_STOP: return on_lifecycle(s, m, vmm_vm_stop);
	case RM_VM_DESTROY: return on_vm_destroy(s, m);
	case RM_VM_INFO: return reply_info(s, m);
	case RM_QUIRK_SET: return on_quirk_set(s, m);
	case RM_SLOTS_GET: return on_slots_get(s, m);
	case RM_TXN_APPLY: return on_txn_apply(s, m);
	case RM_SET_FLAGS: return on_set_flags(s, m);
	case RM_DIRTY_LOG: return on_dirty_log(s, m);
	case RM_MEMORY_READ: return on_memory(s, m, false);
	case RM_MEMORY_WRITE: return on_memory(s, m, true);
	case RM_CONSOLE_READ: return on_console_read(s, m);
	case RM_REPORTS_READ: return on_reports_read(s, m);
	case RM_STATS_GET: return on_stats_get(s, m);
	}
	return reply_err(s, m, -EPROTO, NULL, -1);
}

/* ---- the loop ------------------------------------------------------------ */

/* Takes a new connection from slotd; it replaces the current one. */
static void conn_accept(struct rserve *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (fd < 0)
		return;
	/* Only slotd's user may drive this VM (the socket's mode says the
	 * same; this holds even if the file was made wider). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != getuid()) {
		close(fd);
		return;
	}
	if (s->conn >= 0)
		close(s->conn);
	s->conn = fd;
	chan_timeout_set(fd, TXN_END_WAIT_MS);
	s->controllers++;
	/* The new slotd reads the console through the API; events carry only
	 * what is written from now on. */
	if (s->vm) {
		struct vmm_vm_info in;

		vmm_vm_info_get(s->vm, &in);
		s->console_sent = in.console_bytes;
	}
}

/* Reads and executes what slotd sent. */
static void conn_read(struct rserve *s)
{
	struct chan_msg m;
	int r = chan_recv(s->conn, &m, 0, scratch);

	if (r == -EAGAIN)
		return;
	if (r) {
		if (r != -ECONNRESET)
			slog_warn("runner: channel: %s; waiting for slotd to connect again",
				  strerror(-r));
		close(s->conn);
		s->conn = -1;
		return;
	}
	dispatch(s, &m);
	chan_msg_free(&m);
	/* A request that carried the commit of a transaction it ended. */
	while (s->has_next) {
		m = s->next;
		s->has_next = false;
		dispatch(s, &m);
		chan_msg_free(&m);
	}
}

static void loop_once(struct rserve *s)
{
	struct pollfd p[3] = {
		{ .fd = s->listen_fd, .events = POLLIN },
		{ .fd = s->state_efd, .events = POLLIN },
		{ .fd = s->conn, .events = POLLIN },
	};

	if (poll(p, s->conn >= 0 ? 3 : 2, TICK_MS) < 0)
		return;
	if (p[1].revents)
		state_flush(s);
	if (s->conn >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
		conn_read(s);
	if (p[0].revents & POLLIN)
		conn_accept(s);
	console_flush(s);
}

int runner_serve(int kvm_fd, int listen_fd, int conn_fd)
{
	struct rserve s = { .listen_fd = listen_fd, .conn = conn_fd,
			    .controllers = conn_fd >= 0,
			    .q_lock = PTHREAD_MUTEX_INITIALIZER };
	struct vmm_config vc = { .kvm_fd = kvm_fd, .on_state_change = state_changed,
				 .cb_arg = &s };
	struct timespec ts;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	s.started_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (conn_fd >= 0)
		chan_timeout_set(conn_fd, TXN_END_WAIT_MS);
	s.state_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s.state_efd < 0)
		return -errno;
	r = vmm_create(&vc, &s.vmm);
	if (r)
		return r;
	if (!vmm_caps_get(s.vmm)->kvm_available) {
		slog_error("runner: KVM unusable: %s", vmm_caps_get(s.vmm)->kvm_error);
		vmm_destroy(s.vmm);
		return -ENODEV;
	}
	while (!s.exiting)
		loop_once(&s);
	vmm_destroy(s.vmm);
	if (s.conn >= 0)
		close(s.conn);
	close(s.state_efd);
	return 0;
}
