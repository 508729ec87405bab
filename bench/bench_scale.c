/* bench_scale: how slotd's costs grow, on the real daemon ($SLOTD_BIN)
 * with its state on tmpfs, through the same client as bench_peer.
 *
 *   1. VMs: 1, 8 and 32 VMs of 96 MiB in one daemon, defined, then
 *      started (builtin:busy) and paused: RSS of slotd's process tree
 *      (slotd and any process it runs VMs in), all of it and without the
 *      guest RAM mappings (slotd writes page tables, boot parameters and
 *      the payload into guest RAM when a VM is created), per VM; a 4 KiB
 *      memslot create + delete on one of them and daemon.version, medians.
 *   2. Slots: a 4 KiB memslot create + delete next to 0, 1k, 8k and 32k
 *      existing 4 KiB slots, through slotd and with the raw ioctl on a VM
 *      of this program filled the same way, interleaved, the raw ioctl on
 *      slotd's CPU (slotd is kept on the first CPU, the client on the
 *      second); slotd's RSS per memslot (backings never touched: no guest
 *      memory counted).
 *   3. Throughput: daemon.version with 1, 4, 16 and 64 clients, one
 *      request in flight each.
 *
 * BENCH_QUICK=1: 1 and 8 VMs, 0 and 1k slots, short runs.  Results:
 * $BENCH_OUT/scale.json.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/lib/bench.h"
#include "bench/lib/jline.h"
#include "bench/lib/qemu.h"
#include "bench/lib/rawvm.h"
#include "bench/lib/stats.h"

#define SLOT_ID 32700
#define SLOT_GPA (1ull << 40)
#define FILL_GPA (64ull << 30)
#define MAX_CLIENTS 64
#define TXN_OPS 64
/* Part 1's guest RAM: a size no mapping of slotd's own has (glibc's
 * arenas reserve 64 MiB), so its mappings can be left out of the RSS. */
#define VM_RAM (96ull << 20)

static struct bench_daemon slotd;
static int client_cpu = -1;	/* part 2's client when slotd is kept on a CPU */

/* On SIGINT/SIGTERM: take slotd down with us. */
static void on_signal(int sig)
{
	if (slotd.pid > 0)
		kill(slotd.pid, SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The RSS of slotd's tree in KiB (without mappings of exactly skip
 * bytes, i.e. guest RAM, unless 0), slotd's own in *self. */
static long tree_kb(unsigned long long skip, long *self, int *nproc)
{
	long s = 0;
	int n = 0;
	long kb = bench_rss_tree_skip_kb(slotd.pid, skip, &s, &n);

	if (self)
		*self = s;
	if (nproc)
		*nproc = n;
	return kb;
}

/* One 4 KiB create + delete of slot SLOT_ID on vm, timed. */
static int cycle_rpc(struct jline *c, const char *vm, long long *ns)
{
	long long t0 = bench_now_ns();
	int ret = jline_rpc(c, NULL, "memslot.create",
			    "{\"vm\":\"%s\",\"gpa\":%llu,\"size\":4096,\"slot\":%d}", vm, SLOT_GPA,
			    SLOT_ID);

	ret = ret ? ret : jline_rpc(c, NULL, "memslot.delete", "{\"vm\":\"%s\",\"slot\":%d}", vm,
				    SLOT_ID);
	*ns = bench_now_ns() - t0;
	return ret;
}

/* The same on the raw VM. */
static int cycle_raw(struct bench_raw_vm *r, void *hva, long long *ns)
{
	long long t0 = bench_now_ns();
	int ret = bench_raw_set(r, SLOT_ID, SLOT_GPA, 4096, hva);

	ret = ret ? ret : bench_raw_set(r, SLOT_ID, SLOT_GPA, 0, hva);
	*ns = bench_now_ns() - t0;
	return ret;
}

/* ---- 1. VMs --------------------------------------------------------- */

/* Medians of n cycles on VM v0 and n daemon.version calls, alternated. */
static int vm_probe(struct jline *c, long n, struct bench_dist *cyc, struct bench_dist *ver)
{
	long long *a = calloc((size_t)n, 8), *b = calloc((size_t)n, 8);
	int ret = a && b ? 0 : -ENOMEM;

	for (long i = -5; !ret && i < n; i++) {
		long long t, t0;

		ret = cycle_rpc(c, "v0", &t);
		if (!ret && i >= 0)
			a[i] = t;
		t0 = bench_now_ns();
		ret = ret ? ret : jline_rpc(c, NULL, "daemon.version", "{}");
		if (!ret && i >= 0)
			b[i] = bench_now_ns() - t0;
	}
	if (!ret) {
		bench_dist_of(a, n, cyc);
		bench_dist_of(b, n, ver);
	}
	free(a);
	free(b);
	return ret;
}

/* VMs from..to-1: defined (start false) or started and paused. */
static int vms_step(struct jline *c, int from, int to, bool start, long long *ns)
{
	long long t0 = bench_now_ns();
	int ret = 0;

	for (int i = from; !ret && i < to; i++) {
		if (!start)
			ret = jline_rpc(c, NULL, "vm.create", "{\"name\":\"v%d\",\"memory\":%llu,"
					"\"payload\":\"builtin:busy\"}", i, VM_RAM);
		else
			ret = jline_rpc(c, NULL, "vm.start", "{\"name\":\"v%d\"}", i);
		if (!ret && start)
			ret = jline_rpc(c, NULL, "vm.pause", "{\"name\":\"v%d\"}", i);
	}
	*ns = to > from ? (bench_now_ns() - t0) / (to - from) : 0;
	return ret;
}

/* Memory of slotd's tree with some VMs: all of it, and without guest
 * RAM (the daemon's own cost); slotd's own without guest RAM. */
struct vms_mem {
	long all, own, self;
	int nproc;
};

/* One row's JSON. */
static json_object *vms_json(int nvm, const char *state, const struct vms_mem *m, long idle,
			     const struct bench_dist *cyc, const struct bench_dist *ver, long long op_ns)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "vms", json_object_new_int(nvm));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "tree_kb", json_object_new_int64(m->all));
	json_object_object_add(o, "tree_without_guest_ram_kb", json_object_new_int64(m->own));
	json_object_object_add(o, "slotd_self_kb", json_object_new_int64(m->self));
	json_object_object_add(o, "processes", json_object_new_int(m->nproc));
	json_object_object_add(o, "per_vm_kb", bench_jd((double)(m->own - idle) / nvm));
	json_object_object_add(o, "guest_ram_kb_per_vm", bench_jd((double)(m->all - m->own) / nvm));
	/* Once VMs run in processes of their own: those processes per VM. */
	json_object_object_add(o, "children_kb_per_vm",
			       m->nproc > 1 ? bench_jd((double)(m->own - m->self) / nvm) : NULL);
	json_object_object_add(o, "create_delete_4k", bench_dist_json(cyc));
	json_object_object_add(o, "version", bench_dist_json(ver));
	json_object_object_add(o, "vm_op_us", bench_jd(op_ns / 1e3));
	return o;
}

/* One VM count in one state: its row and JSON.  idle: the daemon's
 * tree without VMs. */
static int vms_row(struct jline *c, int nvm, const char *state, long idle, long n, long long op_ns,
		   json_object *arr)
{
	struct bench_dist cyc, ver;
	struct vms_mem m;
	char child[32];
	int ret;

	usleep(200000);
	m.all = tree_kb(0, NULL, NULL);
	m.own = tree_kb(VM_RAM, &m.self, &m.nproc);
	ret = m.all < 0 || m.own < 0 ? -ESRCH : vm_probe(c, n, &cyc, &ver);
	if (ret)
		return ret;
	snprintf(child, sizeof(child), m.nproc > 1 ? "%.0f" : "-", (double)(m.own - m.self) / nvm);
	printf("  %-4d %-16s %8.1f %8.1f %8.1f %5d %8.0f %8.0f %8s %10.1f %8.1f %8.0f\n", nvm, state,
	       m.all / 1024.0, m.own / 1024.0, m.self / 1024.0, m.nproc, (double)(m.own - idle) / nvm,
	       (double)(m.all - m.own) / nvm, child, cyc.med, ver.med, op_ns / 1e3);
	json_object_array_add(arr, vms_json(nvm, state, &m, idle, &cyc, &ver, op_ns));
	return 0;
}

/* Part 1: grow to each VM count, defined then started + paused. */
static int part_vms(struct jline *c, json_object *out)
{
	static const int counts[] = { 1, 8, 32 };
	int ncounts = bench_quick() ? 2 : 3, have = 0, ret = 0;
	long n = bench_quick() ? 30 : 200, idle = (usleep(200000), tree_kb(VM_RAM, NULL, NULL));
	json_object *arr = json_object_new_array();
	long long ns;

	printf("VMs of 96 MiB in one daemon: RSS of slotd's process tree in MB, all of it and "
	       "without guest RAM (own), slotd's own (without guest RAM); per VM, KiB: own over the "
	       "idle daemon (%.1f MB), guest RAM touched, processes other than slotd; medians over "
	       "N=%ld, us\n", idle / 1024.0, n);
	printf("  %-4s %-16s %8s %8s %8s %5s %8s %8s %8s %10s %8s %8s\n", "VMs", "state", "tree",
	       "own", "slotd", "procs", "own/VM", "guest/VM", "child/VM", "4K cr+del", "version",
	       "op us/VM");
	for (int k = 0; !ret && k < ncounts; k++) {
		ret = vms_step(c, have, counts[k], false, &ns);
		ret = ret ? ret : vms_row(c, counts[k], "defined", idle, n, ns, arr);
		/* Those started before are paused already: only the new ones. */
		ret = ret ? ret : vms_step(c, have, counts[k], true, &ns);
		ret = ret ? ret : vms_row(c, counts[k], "started, paused", idle, n, ns, arr);
		have = counts[k];
	}
	for (int i = 0; i < have; i++) {
		jline_rpc(c, NULL, "vm.stop", "{\"name\":\"v%d\"}", i);
		if (jline_rpc(c, NULL, "vm.destroy", "{\"name\":\"v%d\"}", i) && !ret)
			ret = -EPROTO;
	}
	printf("  (op us/VM: vm.create for 'defined', vm.start + vm.pause for 'started')\n\n");
	json_object_object_add(out, "idle_kb", json_object_new_int64(idle));
	json_object_object_add(out, "vms", arr);
	return ret;
}

/* ---- 2. slots ------------------------------------------------------- */

/* Adds slots have..want-1 (4 KiB, 8 KiB apart) to the raw VM and, in
 * transactions of TXN_OPS, to slotd's VM "s". */
static int fill(struct jline *c, struct bench_raw_vm *raw, char *mem, long have, long want)
{
	size_t cap = TXN_OPS * 96 + 256;
	char *req = malloc(cap);
	int ret = req ? 0 : -ENOMEM;

	for (long i = have; !ret && i < want; i++)
		ret = bench_raw_set(raw, (uint32_t)(i + 1), FILL_GPA + (uint64_t)i * 8192, 4096,
				    mem + i * 4096);
	for (long i = have; !ret && i < want; i += TXN_OPS) {
		size_t len = (size_t)snprintf(req, cap, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
					      "\"memslot.transaction\",\"params\":{\"vm\":\"s\",\"ops\":[");

		for (long j = i; j < want && j < i + TXN_OPS; j++)
			len += (size_t)snprintf(req + len, cap - len, "%s{\"op\":\"create\",\"gpa\":%llu,"
						"\"size\":4096}", j > i ? "," : "",
						FILL_GPA + (unsigned long long)j * 8192);
		snprintf(req + len, cap - len, "]}}\n");
		ret = jline_call(c, req, "\"result\"", NULL);
	}
	free(req);
	return ret;
}

/* n interleaved cycles raw and through slotd next to the current fill. */
static int slots_row(struct jline *c, struct bench_raw_vm *raw, void *hva, long nslots, long n,
		     json_object *arr)
{
	long long *a = calloc((size_t)n, 8), *b = calloc((size_t)n, 8);
	struct bench_dist d[2];
	int ret = a && b ? 0 : -ENOMEM;
	json_object *o;

	for (long i = -10; !ret && i < n; i++) {
		long long t[2];

		/* The raw ioctl on slotd's CPU, the client on the other. */
		ret = slotd.cpu >= 0 ? bench_pin_self(slotd.cpu) : 0;
		ret = ret ? ret : cycle_raw(raw, hva, &t[0]);
		ret = ret ? ret : slotd.cpu >= 0 ? bench_pin_self(client_cpu) : 0;
		ret = ret ? ret : cycle_rpc(c, "s", &t[1]);
		if (!ret && i >= 0) {
			a[i] = t[0];
			b[i] = t[1];
		}
	}
	if (!ret) {
		bench_dist_of(a, n, &d[0]);
		bench_dist_of(b, n, &d[1]);
		printf("  %-7ld %10.1f (%7.1f) %10.1f (%7.1f)\n", nslots, d[0].med, d[0].p90,
		       d[1].med, d[1].p90);
		o = json_object_new_object();
		json_object_object_add(o, "slots", json_object_new_int64(nslots));
		json_object_object_add(o, "raw", bench_dist_json(&d[0]));
		json_object_object_add(o, "slotd", bench_dist_json(&d[1]));
		json_object_array_add(arr, o);
	}
	bench_pin_self(-1);
	free(a);
	free(b);
	return ret;
}

/* Part 2: grow both VMs to each slot count and measure there. */
static int part_slots(struct jline *c, json_object *out)
{
	static const long counts[] = { 0, 1000, 8000, 32000 };
	int ncounts = bench_quick() ? 2 : 4, ret;
	long n = bench_quick() ? 50 : 300, have = 0, kb0, kb1 = 0;
	size_t memlen = (size_t)counts[ncounts - 1] * 4096 + 8192;
	char *mem = mmap(NULL, memlen, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct bench_raw_vm raw = { .kvm = -1 };
	json_object *arr = json_object_new_array();

	ret = mem == MAP_FAILED ? -errno : bench_raw_open(&raw);
	ret = ret ? ret : jline_rpc(c, NULL, "vm.create", "{\"name\":\"s\",\"memory\":\"64M\"}");
	kb0 = (usleep(200000), tree_kb(0, NULL, NULL));
	printf("4 KiB memslot create + delete next to N other 4 KiB slots, N=%ld, interleaved, "
	       "us, median (p90); slotd and the raw ioctl on CPU %d\n  %-7s %20s %20s\n", n,
	       slotd.cpu, "slots", "raw ioctl", "slotd");
	for (int k = 0; !ret && k < ncounts; k++) {
		ret = fill(c, &raw, mem, have, counts[k]);
		have = counts[k];
		ret = ret ? ret : slots_row(c, &raw, mem + (size_t)counts[ncounts - 1] * 4096, have,
					    n, arr);
	}
	kb1 = (usleep(200000), tree_kb(0, NULL, NULL));
	if (!ret && have)
		printf("  slotd's RSS per memslot: %.2f KiB (%ld slots, backings untouched)\n\n",
		       (double)(kb1 - kb0) / (double)have, have);
	json_object_object_add(out, "slots", arr);
	json_object_object_add(out, "rss_per_memslot_kib", bench_jd(have ? (double)(kb1 - kb0) / (double)have : 0));
	if (!ret)
		ret = jline_rpc(c, NULL, "vm.destroy", "{\"name\":\"s\"}");
	bench_raw_close(&raw);
	if (mem != MAP_FAILED)
		munmap(mem, memlen);
	return ret;
}

/* ---- 3. throughput -------------------------------------------------- */

struct tclient {
	pthread_t thread;
	double sec;
	pthread_barrier_t *start;
	unsigned long done;
	int err;
};

/* One client: connect, wait for the others, call until the deadline. */
static void *tclient_main(void *arg)
{
	struct tclient *t = arg;
	struct jline c;
	long long end;

	t->err = jline_open(&c, slotd.sock, 30);
	pthread_barrier_wait(t->start);
	end = bench_now_ns() + (long long)(t->sec * 1e9);
	while (!t->err && bench_now_ns() < end) {
		t->err = jline_rpc(&c, NULL, "daemon.version", "{}");
		t->done += !t->err;
	}
	if (c.fd >= 0)
		jline_close(&c);
	return NULL;
}

/* Part 3: requests per second with 1, 4, 16, 64 clients. */
static int part_rate(json_object *out)
{
	static const int counts[] = { 1, 4, 16, 64 };
	static struct tclient t[MAX_CLIENTS];
	double sec = bench_quick() ? 0.5 : 2.0, base = 0;
	json_object *arr = json_object_new_array();
	int ret = 0;

	printf("daemon.version throughput, one request in flight per client, %.1f s each\n"
	       "  %-8s %10s %8s\n", sec, "clients", "req/s", "vs 1");
	for (size_t k = 0; !ret && k < sizeof(counts) / sizeof(counts[0]); k++) {
		pthread_barrier_t bar;
		unsigned long total = 0;
		long long t0;
		double rate;
		json_object *o;

		pthread_barrier_init(&bar, NULL, (unsigned)counts[k] + 1);
		for (int i = 0; i < counts[k]; i++) {
			t[i] = (struct tclient){ .sec = sec, .start = &bar };
			pthread_create(&t[i].thread, NULL, tclient_main, &t[i]);
		}
		pthread_barrier_wait(&bar);
		t0 = bench_now_ns();
		for (int i = 0; i < counts[k]; i++) {
			pthread_join(t[i].thread, NULL);
			total += t[i].done;
			ret = ret ? ret : t[i].err;
		}
		pthread_barrier_destroy(&bar);
		rate = (double)total * 1e9 / (double)(bench_now_ns() - t0);
		base = base ? base : rate;
		printf("  %-8d %10.0f %7.2fx\n", counts[k], rate, rate / base);
		o = json_object_new_object();
		json_object_object_add(o, "clients", json_object_new_int(counts[k]));
		json_object_object_add(o, "rps", bench_jd(rate));
		json_object_array_add(arr, o);
	}
	putchar('\n');
	json_object_object_add(out, "throughput", arr);
	return ret;
}

int main(void)
{
	const char *bin = bench_env_str("SLOTD_BIN", "build/slotd");
	json_object *out = json_object_new_object();
	struct jline c = { .fd = -1 };
	int ret;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* slotd kept on one CPU: this host's CPUs differ up to 3.5x for the
	 * memslot ioctl, and part 2 runs its raw ioctl on that same CPU. */
	if (bench_cpu_count() >= 2)
		client_cpu = bench_cpu_nth(1);
	ret = bench_daemon_start_on(&slotd, bin, "/tmp", bench_env_str("BENCH_STATE_DIR", "/dev/shm"),
				    client_cpu >= 0 ? bench_cpu_nth(0) : -1);
	if (ret) {
		fprintf(stderr, "bench_scale: cannot start %s: %s\n", bin, strerror(-ret));
		bench_daemon_log_dump(&slotd);
	}
	ret = ret ? ret : jline_open(&c, slotd.sock, 120);
	if (!ret && access("/dev/kvm", R_OK | W_OK) == 0) {
		ret = part_vms(&c, out);
		ret = ret ? ret : part_slots(&c, out);
	} else if (!ret) {
		printf("VMs and slots: skipped: /dev/kvm is not usable\n\n");
	}
	ret = ret ? ret : part_rate(out);
	if (c.fd >= 0)
		jline_close(&c);
	bench_daemon_stop(&slotd);
	if (ret)
		fprintf(stderr, "bench_scale: failed: %s\n", strerror(-ret));
	if (bench_json_write("scale", out) && !ret)
		ret = -EIO;
	return ret ? 1 : 0;
}
