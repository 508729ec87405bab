/* The control plane's frame: the host's capabilities, the runtime
 * directory of runner sockets, the VM registry, runners' events in the
 * event loop, and state-change notifications. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "ctl/internal.h"

/* ---- notifications ------------------------------------------------------- */

/* Delivers queued state changes (from the loop, never inside a call). */
static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *ctl = arg;
	struct ctl_state_change batch[CTL_NOTIFY_MAX];
	unsigned n = ctl->nnotify;

	(void)fd;
	(void)what;
	memcpy(batch, ctl->notify, n * sizeof(batch[0]));
	ctl->nnotify = 0;
	if (ctl->notify_dropped)
		slog_warn("%u VM state change events dropped (queue full)", ctl->notify_dropped);
	ctl->notify_dropped = 0;
	for (unsigned i = 0; i < n; i++)
		if (ctl->cfg.on_state_change)
			ctl->cfg.on_state_change(&batch[i], ctl->cfg.cb_arg);
}

static void notify(struct ctl_vm *vm, enum vmm_vm_state old_state, enum vmm_vm_state new_state)
{
	struct ctl *ctl = vm->ctl;
	struct ctl_state_change *c;

	if (old_state == new_state)
		return;
	if (ctl->nnotify == CTL_NOTIFY_MAX) {
		ctl->notify_dropped++;
		return;
	}
	c = &ctl->notify[ctl->nnotify++];
	memset(c, 0, sizeof(*c));
	snprintf(c->vm, sizeof(c->vm), "%s", vm->name);
	c->old_state = old_state;
	c->new_state = new_state;
	c->has_exit_status = vm->info.has_exit_status;
	c->exit_status = vm->info.exit_status;
	if (new_state == VMM_VM_CRASHED)
		snprintf(c->reason, sizeof(c->reason), "%s", vm->info.crash_reason);
	if (ctl->notify_ev)
		event_active(ctl->notify_ev, 0, 0);
}

/* Sends the commits the changes of the last request queued. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *ctl = arg;
	struct ctl_vm *vm;

	(void)fd;
	(void)what;
	TAILQ_FOREACH(vm, &ctl->vms, link)
		if (vm->runner)
			runner_flush(vm->runner);
}

void ctl_flush_soon(struct ctl *ctl, bool now)
{
	static const struct timeval later = { .tv_usec = CTL_COMMIT_LATER_US };
	struct ctl_vm *vm;

	if (ctl->flush_ev && now) {
		event_active(ctl->flush_ev, 0, 0);
		return;
	}
	/* No vCPU waits on it: the next call carries it, or the timer. */
	if (ctl->flush_ev) {
		if (!evtimer_pending(ctl->flush_ev, NULL))
			evtimer_add(ctl->flush_ev, &later);
		return;
	}
	TAILQ_FOREACH(vm, &ctl->vms, link)	/* no loop: at once */
		if (vm->runner)
			runner_flush(vm->runner);
}

/* ---- runners' events --------------------------------------------------------- */

void vm_info_take(struct ctl_vm *vm, const struct vmm_vm_info *in)
{
	enum vmm_vm_state old = vm->info.state;

	vm->info = *in;
	/* The runner names the VM it hosts; the model keeps its own name. */
	snprintf(vm->info.name, sizeof(vm->info.name), "%s", vm->name);
	notify(vm, old, in->state);
}

static void console_take(struct ctl_vm *vm, const char *data, size_t len, uint64_t total)
{
	for (size_t i = 0; i < len; i++)
		vm->console[(total - len + i) % CTL_CONSOLE_COPY] = data[i];
	vm->console_total = total;
}

/* The runner ended: the VM crashed, unless it was destroyed meanwhile. */
static void runner_gone(struct ctl_vm *vm, const char *why)
{
	enum vmm_vm_state old = vm->info.state;

	snprintf(vm->gone_why, sizeof(vm->gone_why), "%s", why);
	if (vm->ev)
		event_del(vm->ev);	/* its descriptor is closed already */
	vm->info.state = VMM_VM_CRASHED;
	if (!vm->info.end_ns)
		vm->info.end_ns = vmm_now_ns();
	snprintf(vm->info.crash_reason, sizeof(vm->info.crash_reason), "%s", why);
	notify(vm, old, VMM_VM_CRASHED);
}

void vm_runner_event(struct runner *r, const struct runner_event *ev, void *arg)
{
	struct ctl_vm *vm = arg;

	(void)r;
	switch (ev->kind) {
	case RUNNER_EV_STATE:
		vm_info_take(vm, &ev->info);
		break;
	case RUNNER_EV_CONSOLE:
		console_take(vm, ev->data, ev->len, ev->total);
		break;
	case RUNNER_EV_GONE:
		runner_gone(vm, ev->why);
		break;
	}
}

static void runner_readable(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_vm *vm = arg;

	(void)fd;
	(void)what;
	if (vm->runner)
		runner_pump(vm->runner);
}

int vm_runner_watch(struct ctl_vm *vm)
{
	if (!vm->ctl->cfg.base)
		return 0;
	if (vm->ev)
		event_free(vm->ev);
	vm->ev = event_new(vm->ctl->cfg.base, runner_fd(vm->runner), EV_READ | EV_PERSIST,
			   runner_readable, vm);
	return vm->ev && !event_add(vm->ev, NULL) ? 0 : -ENOMEM;
}

void vm_runner_reap(struct ctl_vm *vm)
{
	if (!vm->runner || runner_alive(vm->runner))
		return;
	if (vm->ev)
		event_free(vm->ev);
	vm->ev = NULL;
	runner_free(vm->runner);
	vm->runner = NULL;
}

struct runner *vm_runner(struct ctl_vm *vm, struct vmm_err *err)
{
	vm_runner_reap(vm);
	if (vm->runner)
		return vm->runner;
	vmm_err_set(err, -ECONNRESET, "state",
		    "VM '%s' has no running process (%s); vm.start starts it again, "
		    "vm.destroy removes it", vm->name,
		    vm->gone_why[0] ? vm->gone_why : "its runner ended");
	return NULL;
}

/* ---- VMs ---------------------------------------------------------------------- */

struct ctl_vm *vm_alloc(struct ctl *ctl, const struct store_vm_def *def)
{
	struct ctl_vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->ctl = ctl;
	vm->def = *def;
	snprintf(vm->name, sizeof(vm->name), "%s", def->name);
	snprintf(vm->info.name, sizeof(vm->info.name), "%s", def->name);
	vm->info.type = def->type;
	vm->info.vcpus = def->vcpus;
	vm->info.memory_bytes = def->memory;
	snprintf(vm->info.payload, sizeof(vm->info.payload), "%s", def->payload);
	layout_init(&vm->layout);
	return vm;
}

void vm_link(struct ctl_vm *vm)
{
	TAILQ_INSERT_TAIL(&vm->ctl->vms, vm, link);
}

void vm_free(struct ctl_vm *vm)
{
	if (vm->ev)
		event_free(vm->ev);
	runner_free(vm->runner);
	layout_fini(&vm->layout);
	free(vm);
}

void vm_params(const struct ctl_vm *vm, struct vmm_vm_params *p)
{
	memset(p, 0, sizeof(*p));
	p->name = vm->def.name;
	p->type = vm->def.type;
	p->vcpus = vm->def.vcpus;
	p->memory_bytes = vm->def.memory;
	p->payload = vm->def.payload;
	memcpy(p->args, vm->def.args, sizeof(p->args));
	p->mmio_policy = vm->def.mmio;
	p->ram_backing = vm->def.ram;
}

int vm_boot_slot(const struct ctl_vm *vm, struct vmm_memslot_info *s)
{
	memset(s, 0, sizeof(*s));
	s->id = 0;
	s->gpa = 0;
	s->size = vm->def.memory;
	s->backing.kind = vm->def.ram == VMM_RAM_ANON ? VMM_BACKING_ANON : VMM_BACKING_MEMFD;
	s->backing.shared = vm->def.ram != VMM_RAM_ANON;
	return 0;
}

/* Reads a path payload (the runner has no file system): *image malloc'd. */
static int payload_read(const char *path, uint8_t **image, size_t *size, struct vmm_err *err)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return vmm_err_set(err, -errno, "payload", "cannot open %s: %s", path,
				   strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20) ||
	    st.st_size < 64) {
		close(fd);
		return vmm_err_set(err, -EINVAL, "payload", "%s is not a regular file of 64 B..64 MiB",
				   path);
	}
	*image = malloc((size_t)st.st_size);
	n = *image ? pread(fd, *image, (size_t)st.st_size, 0) : -1;
	close(fd);
	if (n != st.st_size) {
		free(*image);
		*image = NULL;
		return vmm_err_set(err, -EIO, "payload", "short read of %s", path);
	}
	*size = (size_t)st.st_size;
	return 0;
}

/* Creates the VM in the (new) runner r from its definition. */
static int runner_vm_make(struct ctl_vm *vm, struct runner *r, struct vmm_err *err)
{
	struct vmm_vm_params p;
	struct vmm_vm_info in;
	uint8_t *image = NULL;
	int rc = 0;

	vm_params(vm, &p);
	if (strncmp(p.payload, "builtin:", 8)) {
		rc = payload_read(p.payload, &image, &p.payload_image_size, err);
		p.payload_image = image;
	}
	if (!rc)
		rc = runner_vm_create(r, &p, &in, err);
	free(image);
	if (!rc)
		vm_info_take(vm, &in);
	return rc;
}

/* Applies the model's wanted quirks to a new runner's VM. */
static int quirks_push(struct ctl_vm *vm, struct vmm_err *err)
{
	for (size_t i = 0; i < vmm_quirk_desc_count; i++) {
		const struct vmm_quirk_desc *q = &vmm_quirk_descs[i];
		bool want = !(vm->quirks_disabled & q->bit);
		struct vmm_vm_info in;
		int r;

		if (want == !(vm->info.quirks_disabled & q->bit))
			continue;
		r = runner_quirk_set(vm->runner, q->name, want, &in, NULL, err);
		if (r)
			return r;
		vm_info_take(vm, &in);
	}
	return 0;
}

int vm_runner_start(struct ctl_vm *vm, bool push, struct vmm_err *err)
{
	struct ctl *ctl = vm->ctl;
	struct runner_spawn_config sc = {
		.runner_path = ctl->runner_path, .runtime_dir = ctl->runtime_dir,
		.kvm_fd = ctl->kvm_fd, .log_fd = ctl->cfg.log_fd,
		.timeout_ms = ctl->cfg.runner_timeout_ms,
	};
	struct vmm_memslot_info *slots = NULL, boot;
	size_t n = 0;
	int r;

	vm_runner_reap(vm);
	r = runner_spawn(&sc, vm->name, vm_runner_event, vm, &vm->runner, err);
	if (r)
		return r;
	if (ctl->cfg.scopes)
		runner_scope_create(runner_pid(vm->runner), vm->name);
	r = vm_runner_watch(vm);
	if (!r)
		r = runner_vm_make(vm, vm->runner, err);
	if (!r && push)
		r = quirks_push(vm, err);
	if (!r && push)
		r = layout_get(&vm->layout, true, &slots, &n);
	if (!r && n) {
		/* The model holds them already: push them to the runner alone. */
		struct layout keep = vm->layout;

		layout_init(&vm->layout);
		vm_boot_slot(vm, &boot);
		r = layout_insert(&vm->layout, &boot);
		if (!r)
			r = vm_layout_push(vm, slots, n, err);
		layout_fini(&vm->layout);
		vm->layout = keep;
	}
	free(slots);
	if (r) {
		runner_kill(vm->runner);
		vm_runner_reap(vm);
	}
	return r;
}

struct ctl_vm *ctl_vm_find(struct ctl *ctl, const char *name)
{
	struct ctl_vm *vm;

	TAILQ_FOREACH(vm, &ctl->vms, link)
		if (!strcmp(vm->name, name))
			return vm;
	return NULL;
}

const char *ctl_vm_name(const struct ctl_vm *vm)
{
	return vm->name;
}

int ctl_vm_foreach(struct ctl *ctl, int (*fn)(struct ctl_vm *vm, void *arg), void *arg)
{
	struct ctl_vm *vm, *next;
	int r = 0;

	for (vm = TAILQ_FIRST(&ctl->vms); vm && !r; vm = next) {
		next = TAILQ_NEXT(vm, link);
		r = fn(vm, arg);
	}
	return r;
}

const struct vmm_caps *ctl_caps(const struct ctl *ctl)
{
	return &ctl->caps;
}

/* ---- create, destroy ------------------------------------------------------------- */

/* The runtime directory: created 0700, ours, not writable by others, and
 * locked (one slotd per runtime directory, as per state directory). */
static int runtime_dir_open(struct ctl *ctl)
{
	char lock[4200];
	struct stat st;

	if (mkdir(ctl->runtime_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(ctl->runtime_dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0022)) {
		slog_error("runtime directory %s must be a directory of uid %u not writable by "
			   "group or others", ctl->runtime_dir, (unsigned)geteuid());
		return -EPERM;
	}
	snprintf(lock, sizeof(lock), "%s/.lock", ctl->runtime_dir);
	ctl->runtime_lock = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (ctl->runtime_lock < 0)
		return -errno;
	if (flock(ctl->runtime_lock, LOCK_EX | LOCK_NB) < 0) {
		slog_error("runtime directory %s is used by another slotd", ctl->runtime_dir);
		return -EBUSY;
	}
	return 0;
}

static int strings_copy(struct ctl *ctl, const struct ctl_config *cfg)
{
	size_t n = 0;

	ctl->runtime_dir = strdup(cfg->runtime_dir ? cfg->runtime_dir : "/run/slotd/runners");
	ctl->runner_path = strdup(cfg->runner_path ? cfg->runner_path : "slotd-runner");
	ctl->kvm_path = strdup(cfg->kvm_path ? cfg->kvm_path : "/dev/kvm");
	while (cfg->file_dirs && cfg->file_dirs[n])
		n++;
	ctl->file_dirs = calloc(n + 1, sizeof(char *));
	if (!ctl->runtime_dir || !ctl->runner_path || !ctl->kvm_path || !ctl->file_dirs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(ctl->file_dirs[i] = strdup(cfg->file_dirs[i])))
			return -ENOMEM;
	ctl->cfg.runtime_dir = ctl->runtime_dir;
	ctl->cfg.runner_path = ctl->runner_path;
	ctl->cfg.kvm_path = ctl->kvm_path;
	ctl->cfg.file_dirs = (const char *const *)ctl->file_dirs;
	ctl->cfg.state_dir = NULL;	/* the store has its own copy */
	return 0;
}

int ctl_create(const struct ctl_config *cfg, struct ctl **out)
{
	struct ctl *ctl = calloc(1, sizeof(*ctl));
	int r;

	if (!ctl)
		return -ENOMEM;
	ctl->cfg = *cfg;
	ctl->runtime_lock = -1;
	TAILQ_INIT(&ctl->vms);
	r = strings_copy(ctl, cfg);
	if (!r && cfg->state_dir)
		r = store_open(cfg->state_dir, &ctl->store);
	if (!r)
		r = ctl_requests_new(cfg->state_dir, &ctl->requests);
	if (!r && (r = ctl_requests_load(ctl->requests)))
		slog_error("state: %s/requests.journal cannot be read or rewritten: %s",
			   cfg->state_dir, strerror(-r));
	if (!r && cfg->base && !(ctl->notify_ev = event_new(cfg->base, -1, 0, notify_cb, ctl)))
		r = -ENOMEM;
	if (!r && cfg->base && !(ctl->flush_ev = event_new(cfg->base, -1, 0, flush_cb, ctl)))
		r = -ENOMEM;
	if (r)
		goto fail;
	ctl->kvm_fd = vmm_caps_probe(ctl->kvm_path, &ctl->caps);
	if (ctl->kvm_fd < 0) {
		ctl->kvm_fd = -1;
		*out = ctl;
		return 0;
	}
	r = runtime_dir_open(ctl);
	if (r)
		goto fail;
	*out = ctl;
	return 0;
fail:
	ctl_destroy(ctl, CTL_EXIT_KEEP);
	return r;
}

void ctl_destroy(struct ctl *ctl, enum ctl_exit_policy policy)
{
	struct ctl_vm *vm;

	if (!ctl)
		return;
	while ((vm = TAILQ_FIRST(&ctl->vms))) {
		TAILQ_REMOVE(&ctl->vms, vm, link);
		vm_runner_reap(vm);
		if (policy == CTL_EXIT_STOP && vm->runner) {
			slog_info("vm %s: ended with slotd (--vms-on-exit stop)", vm->name);
			runner_vm_destroy(vm->runner, NULL);
		}
		vm_free(vm);
	}
	if (ctl->notify_ev)
		event_free(ctl->notify_ev);
	if (ctl->flush_ev)
		event_free(ctl->flush_ev);
	store_close(ctl->store);
	ctl_requests_free(ctl->requests);
	if (ctl->kvm_fd >= 0)
		close(ctl->kvm_fd);
	if (ctl->runtime_lock >= 0)
		close(ctl->runtime_lock);
	for (char **d = ctl->file_dirs; d && *d; d++)
		free(*d);
	free(ctl->file_dirs);
	free(ctl->runtime_dir);
	free(ctl->runner_path);
	free(ctl->kvm_path);
	free(ctl);
}
