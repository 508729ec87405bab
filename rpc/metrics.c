/* Around every call: the log context (journal fields METHOD, VM, SLOT,
 * PEER_UID) and a latency histogram per method.  And the Prometheus text
 * of GET /metrics: the RPC counters and histograms, and per VM its state,
 * guest memory and memslots, and its counters.
 *
 * What is read of the VMs comes from the control plane, in vm_sample()
 * (ctl_vm_info, ctl_vm_memslots_get: the model, no runner call) and
 * render_vms() (ctl_vm_foreach, ctl_vm_stats_foreach: one call to each
 * VM's runner).  Called on the loop thread only, like every handler, so
 * nothing here takes a lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"
#include "rpc/metrics.h"

/* Upper bounds of the latency buckets, in seconds (+Inf is implicit). */
static const double bucket_le[] = {
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
};
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

/* One method's calls: counts per bucket (not cumulative), all calls,
 * calls answered with an error, and their summed duration. */
struct method_hist {
	uint64_t bucket[NBUCKETS];
	uint64_t count, errors, sum_ns;
};

/* Histograms indexed like srv->methods (sorted by name). */
struct rpc_metrics {
	size_t n;
	struct method_hist *h;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* params[key] as a string, or NULL. */
static const char *param_str(json_object *params, const char *key)
{
	json_object *v;

	if (!json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* params.slot when it is a non-negative integer, else -1. */
static long long param_slot(json_object *params)
{
	json_object *v;

	if (!json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, "slot", &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v) >= 0 ? json_object_get_int64(v) : -1;
}

void rpc_trace_begin(struct rpc_trace *t, struct rpc_server *srv,
		     uint64_t conn_id, const char *method, json_object *params)
{
	struct rpc_conn *c = conn_id ? rpc_conn_find(srv, conn_id) : NULL;
	const char *vm = param_str(params, "vm");

	t->srv = srv;
	t->fields = SLOG_FIELDS_NONE;
	t->fields.method = method;
	/* memslot.* name their VM "vm", vm.* "name". */
	t->fields.vm = vm ? vm : param_str(params, "name");
	t->fields.slot = param_slot(params);
	t->fields.peer_uid = c && c->peer.has_cred ? (long long)c->peer.uid : -1;
	slog_context_set(&t->fields);
	t->start_ns = mono_ns();
}

static int method_cmp(const void *key, const void *elem)
{
	const struct rpc_method *const *m = elem;

	return strcmp(key, (*m)->name);
}

/* The histogram of a registered method, or NULL for any other name. */
static struct method_hist *hist_find(struct rpc_server *srv, const char *name)
{
	const struct rpc_method **m;
	struct rpc_metrics *mx = srv->metrics;

	if (!name)
		return NULL;
	m = bsearch(name, srv->methods, srv->nmethods, sizeof(*m), method_cmp);
	if (!m)
		return NULL;
	if (!mx || mx->n != srv->nmethods) {
		/* First call, or methods registered since: start afresh. */
		rpc_metrics_free(srv);
		mx = calloc(1, sizeof(*mx));
		if (!mx)
			return NULL;
		mx->h = calloc(srv->nmethods, sizeof(*mx->h));
		if (!mx->h) {
			free(mx);
			return NULL;
		}
		mx->n = srv->nmethods;
		srv->metrics = mx;
	}
	return &mx->h[m - srv->methods];
}

void rpc_trace_end(struct rpc_trace *t, bool error)
{
	uint64_t ns = mono_ns() - t->start_ns;
	struct method_hist *h = hist_find(t->srv, t->fields.method);
	size_t b = 0;

	if (h) {
		while (b < NBUCKETS && ns > (uint64_t)(bucket_le[b] * 1e9))
			b++;
		if (b < NBUCKETS)
			h->bucket[b]++;
		h->count++;
		h->errors += error;
		h->sum_ns += ns;
	}
	if (slog_level_get() >= SLOG_DEBUG)
		slog_debug("rpc: %s %s in %llu us", t->fields.method,
			   error ? "failed" : "done",
			   (unsigned long long)(ns / 1000));
	slog_context_set(NULL);
}

void rpc_metrics_free(struct rpc_server *srv)
{
	if (!srv->metrics)
		return;
	free(srv->metrics->h);
	free(srv->metrics);
	srv->metrics = NULL;
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static const char *label(const char *s, char *buf, size_t room)
{
	size_t n = 0;

	for (; *s && n + 3 < room; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			buf[n++] = '\\';
			buf[n++] = *s == '\n' ? 'n' : *s;
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = 0;
	return buf;
}

static void family(struct evbuffer *b, const char *name, const char *type,
		   const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			    name, type);
}

/* slotd_rpc_request_duration_seconds{method} and the per-method error
 * counter, for every method called at least once. */
static void render_histograms(struct rpc_server *srv, struct evbuffer *b)
{
	struct rpc_metrics *mx = srv->metrics;

	family(b, "slotd_rpc_request_duration_seconds", "histogram",
	       "Time from a request's parse to its reply, per method.");
	for (size_t i = 0; mx && i < mx->n; i++) {
		const struct method_hist *h = &mx->h[i];
		const char *m = srv->methods[i]->name;
		uint64_t cum = 0;

		if (!h->count)
			continue;
		for (size_t k = 0; k < NBUCKETS; k++) {
			cum += h->bucket[k];
			evbuffer_add_printf(b, "slotd_rpc_request_duration_seconds_bucket"
					    "{method=\"%s\",le=\"%g\"} %llu\n", m,
					    bucket_le[k], (unsigned long long)cum);
		}
		evbuffer_add_printf(b, "slotd_rpc_request_duration_seconds_bucket"
				    "{method=\"%s\",le=\"+Inf\"} %llu\n"
				    "slotd_rpc_request_duration_seconds_sum{method=\"%s\"} %.9f\n"
				    "slotd_rpc_request_duration_seconds_count{method=\"%s\"} %llu\n",
				    m, (unsigned long long)h->count, m, h->sum_ns / 1e9, m,
				    (unsigned long long)h->count);
	}
	family(b, "slotd_rpc_method_errors_total", "counter",
	       "Requests answered with an error, per method.");
	for (size_t i = 0; mx && i < mx->n; i++)
		if (mx->h[i].count)
			evbuffer_add_printf(b, "slotd_rpc_method_errors_total{method=\"%s\"} %llu\n",
					    srv->methods[i]->name,
					    (unsigned long long)mx->h[i].errors);
}

/* What /metrics shows of one VM. */
struct vm_sample {
	struct ctl_vm *vm;
	struct vmm_vm_info info;
	uint64_t slot_bytes[VMM_BACKING_FILE + 1];	/* by backing kind */
	size_t nslots;
};

static const char *const backing_names[] = { "anon", "memfd", "hugetlb", "file" };

/* Reads one VM: the only place that asks about a VM's state for
 * /metrics (the control plane's model, no runner call). */
static int vm_sample(struct ctl_vm *vm, struct vm_sample *s)
{
	struct vmm_memslot_info *slots = NULL;
	struct ctl_vm_info ci;
	size_t n = 0;
	int r;

	memset(s, 0, sizeof(*s));
	s->vm = vm;
	r = ctl_vm_info(vm, false, &ci);
	s->info = ci.vm;
	if (!r)
		r = ctl_vm_memslots_get(vm, &slots, &n);
	for (size_t i = 0; !r && i < n; i++)
		if (slots[i].backing.kind <= VMM_BACKING_FILE)
			s->slot_bytes[slots[i].backing.kind] += slots[i].size;
	s->nslots = r ? 0 : n;
	free(slots);
	return r;
}

struct vm_samples {
	struct vm_sample *v;
	size_t n, cap;
};

static int vm_sample_add(struct ctl_vm *vm, void *arg)
{
	struct vm_samples *ss = arg;

	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? ss->cap * 2 : 8;
		struct vm_sample *v = realloc(ss->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ss->v = v;
		ss->cap = cap;
	}
	if (vm_sample(vm, &ss->v[ss->n]) == 0)
		ss->n++;
	return 0;
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

/* Per VM gauges, one family at a time (the text format wants each
 * family's samples together). */
static void render_vm_gauges(struct evbuffer *b, const struct vm_samples *ss)
{
	char l[2 * VMM_NAME_MAX + 1];

	family(b, "slotd_vm_info", "gauge", "A VM, its state and type (always 1).");
	for (size_t i = 0; i < ss->n; i++)
		evbuffer_add_printf(b, "slotd_vm_info{vm=\"%s\",state=\"%s\",type=\"%s\"} 1\n",
				    label(ss->v[i].info.name, l, sizeof(l)),
				    vmm_vm_state_name(ss->v[i].info.state),
				    vmm_vm_type_name(ss->v[i].info.type));
	family(b, "slotd_vm_vcpus", "gauge", "vCPUs of a VM.");
	for (size_t i = 0; i < ss->n; i++)
		evbuffer_add_printf(b, "slotd_vm_vcpus{vm=\"%s\"} %u\n",
				    label(ss->v[i].info.name, l, sizeof(l)), ss->v[i].info.vcpus);
	family(b, "slotd_vm_boot_memory_bytes", "gauge",
	       "Guest RAM a VM was created with (its slot 0).");
	for (size_t i = 0; i < ss->n; i++)
		evbuffer_add_printf(b, "slotd_vm_boot_memory_bytes{vm=\"%s\"} %llu\n",
				    label(ss->v[i].info.name, l, sizeof(l)),
				    (unsigned long long)ss->v[i].info.memory_bytes);
	family(b, "slotd_vm_memslots", "gauge", "Memslots of a VM, boot RAM included.");
	for (size_t i = 0; i < ss->n; i++)
		evbuffer_add_printf(b, "slotd_vm_memslots{vm=\"%s\"} %zu\n",
				    label(ss->v[i].info.name, l, sizeof(l)), ss->v[i].nslots);
	family(b, "slotd_vm_memslot_bytes", "gauge",
	       "Guest memory mapped by a VM's memslots, per backing kind.");
	for (size_t i = 0; i < ss->n; i++)
		for (size_t k = 0; k <= VMM_BACKING_FILE; k++)
			evbuffer_add_printf(b, "slotd_vm_memslot_bytes{vm=\"%s\",backing=\"%s\"} %llu\n",
					    label(ss->v[i].info.name, l, sizeof(l)),
					    backing_names[k],
					    (unsigned long long)ss->v[i].slot_bytes[k]);
}

/* Every VM: gauges, then the VM-wide counters of KVM's stats fd (source
 * kvm) next to the engine's (engine) and the devices'. */
static void render_vms(struct ctl *ctl, struct evbuffer *b)
{
	struct vm_samples ss = { 0 };
	char l[2 * VMM_NAME_MAX + 1];

	ctl_vm_foreach(ctl, vm_sample_add, &ss);
	render_vm_gauges(b, &ss);
	family(b, "slotd_vm_stat", "untyped",
	       "VM-wide counters: KVM's stats fd (source kvm), slotd's engine "
	       "(engine), devices.");
	for (size_t i = 0; i < ss.n; i++) {
		void *ctx[2] = { b, (void *)label(ss.v[i].info.name, l, sizeof(l)) };

		/* A VM whose runner ended has no counters to show. */
		ctl_vm_stats_foreach(ss.v[i].vm, vm_stat_line, ctx, NULL);
	}
	free(ss.v);
}

void rpc_metrics_render(struct rpc_server *srv, struct evbuffer *b)
{
	const struct vmm_caps *caps = srv->cfg.ctl ? ctl_caps(srv->cfg.ctl) : NULL;

	family(b, "slotd_rpc_requests_total", "counter", "JSON-RPC requests handled.");
	evbuffer_add_printf(b, "slotd_rpc_requests_total %llu\n",
			    (unsigned long long)srv->requests);
	family(b, "slotd_rpc_errors_total", "counter",
	       "JSON-RPC requests answered with an error.");
	evbuffer_add_printf(b, "slotd_rpc_errors_total %llu\n",
			    (unsigned long long)srv->errors);
	family(b, "slotd_rpc_connections", "gauge", "Open Unix socket connections.");
	evbuffer_add_printf(b, "slotd_rpc_connections %u\n", srv->nconns);
	render_histograms(srv, b);
	family(b, "slotd_kvm_available", "gauge", "Whether /dev/kvm could be used.");
	evbuffer_add_printf(b, "slotd_kvm_available %d\n", caps && caps->kvm_available);
	if (caps && caps->kvm_available)
		render_vms(srv->cfg.ctl, b);
}
