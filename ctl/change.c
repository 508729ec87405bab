/* Memslot changes: one order for all of them.
 *
 *   check  each op against the model (alignment, physical address width,
 *          device window, overlap naming the other slot, ids and the
 *          host's slot limit, flags against the host and the VM type,
 *          backing rules, memory limits, --file-dir), applying it to the
 *          model as it goes so the next op sees it; file and memfd
 *          backings are opened here (the runner has no file system);
 *   apply  in the runner, as one transaction with the vCPUs held when
 *          the guest runs;
 *   persist the change (a journal record, or a snapshot);
 *   commit (the runner lets the vCPUs go).
 *
 * A failure at any step undoes the steps before it, in the model and in
 * the runner (abort), so the guest never ran on a layout the client was
 * told was not made.  create, move and delete are transactions of one op. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "ctl/internal.h"

/* ---- persistence ------------------------------------------------------- */

int vm_persist_all(struct ctl_vm *vm, uint64_t quirks_enabled, struct vmm_err *err)
{
	struct vmm_memslot_info *slots;
	size_t n;
	int r;

	if (!vm->ctl->store)
		return 0;
	r = layout_get(&vm->layout, true, &slots, &n);
	if (r)
		return vmm_err_set(err, r, NULL, "out of memory");
	r = store_snapshot(vm->ctl->store, &vm->def, quirks_enabled, slots, n, err);
	free(slots);
	return r;
}

/* Makes one op durable: a journal record, or a snapshot when the store
 * asks for one. */
static int persist_op(struct ctl_vm *vm, const struct vmm_memslot_op *op, struct vmm_err *err)
{
	struct store *st = vm->ctl->store;
	const struct lslot *s;
	struct vmm_memslot_info si;
	int r;

	if (!st)
		return 0;
	if (op->kind == VMM_OP_DELETE) {
		r = store_slot_del(st, vm->name, op->id, err);
	} else {
		s = layout_find(&vm->layout, op->kind == VMM_OP_CREATE ? op->create.id : op->id);
		if (!s)
			return vmm_err_set(err, -ENOENT, NULL, "the model lost the slot");
		layout_slot_info(s, &si);
		r = store_slot_put(st, vm->name, &si, err);
	}
	return r == -ESTALE ? vm_persist_all(vm, ctl_vm_quirks_enabled(vm), err) : r;
}

/* ---- checks ---------------------------------------------------------------- */

int vm_backing_open(struct ctl_vm *vm, uint32_t id, const struct vmm_memslot_params *p,
		    int *fd, struct vmm_err *err)
{
	return vmm_backing_open((const char *const *)vm->ctl->file_dirs, vm->name, id, p, fd,
				err);
}

/* The range is valid on this host and clear of every slot but skip. */
static int range_check(struct ctl_vm *vm, uint64_t gpa, uint64_t size, uint32_t skip,
		       struct vmm_err *err)
{
	const struct lslot *o;
	int r = vmm_range_check(vm->ctl->caps.guest_phys_bits, gpa, size, err);

	if (r)
		return r;
	o = layout_overlap(&vm->layout, gpa, size, skip);
	return o ? vmm_overlap_error(err, gpa, size, o->id, o->gpa, o->size) : 0;
}

/* --max-vm-memory (boot RAM included) and --max-memory (all VMs). */
static int limits_check(struct ctl_vm *vm, uint64_t size, struct vmm_err *err)
{
	struct ctl *ctl = vm->ctl;
	uint64_t all = 0;
	struct ctl_vm *v;

	if (ctl->cfg.max_vm_memory && vm->layout.bytes + size > ctl->cfg.max_vm_memory)
		return vmm_err_set(err, -E2BIG, "size",
				   "VM '%s' would have %llu bytes of memslots, above its "
				   "limit of %llu (--max-vm-memory)", vm->name,
				   (unsigned long long)(vm->layout.bytes + size),
				   (unsigned long long)ctl->cfg.max_vm_memory);
	if (!ctl->cfg.max_total_memory)
		return 0;
	TAILQ_FOREACH(v, &ctl->vms, link)
		all += v->layout.bytes;
	if (all + size > ctl->cfg.max_total_memory)
		return vmm_err_set(err, -E2BIG, "size",
				   "all VMs would have %llu bytes of memslots, above the "
				   "daemon's limit of %llu (--max-memory)",
				   (unsigned long long)(all + size),
				   (unsigned long long)ctl->cfg.max_total_memory);
	return 0;
}

/* The slot id must exist and not be boot RAM (a move or a delete). */
static int slot_check(struct ctl_vm *vm, uint32_t id, struct vmm_err *err)
{
	if (!layout_find(&vm->layout, id))
		return vmm_err_set(err, -ENOENT, "slot", "VM '%s' has no memslot %u", vm->name, id);
	if (id == 0)
		return vmm_err_set(err, -EPERM, "slot",
				   "slot 0 is the VM's boot RAM; it cannot be moved or deleted");
	return 0;
}

/* What undoing one op in the model needs. */
struct undo {
	enum vmm_memslot_op_kind kind;
	uint32_t id;
	uint64_t old_gpa;			/* MOVE */
	struct vmm_memslot_info gone;		/* DELETE */
};

static int create_check(struct ctl_vm *vm, struct vmm_memslot_params *p, int *fd,
			struct vmm_err *err)
{
	struct vmm_memslot_info si = { .gpa = p->gpa, .size = p->size, .slot_flags = p->flags,
				       .backing = p->backing };
	int r = vmm_slot_flags_check(&vm->ctl->caps, vm->def.type, vm->info.kvm_vm_type,
				     p->flags, err);

	if (!r)
		r = range_check(vm, p->gpa, p->size, VMM_SLOT_ANY, err);
	if (!r)
		r = layout_id_pick(&vm->layout, p->id, vmm_max_memslots(&vm->ctl->caps), &p->id, err);
	if (!r)
		r = vmm_backing_check(p, err);
	if (!r)
		r = limits_check(vm, p->size, err);
	if (!r)
		r = vm_backing_open(vm, p->id, p, fd, err);
	if (r)
		return r;
	si.id = p->id;
	r = layout_insert(&vm->layout, &si);
	if (r) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return vmm_err_set(err, r, NULL, "out of memory");
	}
	p->has_fd = *fd >= 0;
	p->fd = *fd;
	return 0;
}

/* Checks op and applies it to the model, recording how to undo it. */
static int op_model(struct ctl_vm *vm, struct vmm_memslot_op *op, struct undo *u, int *fd,
		    struct vmm_err *err)
{
	const struct lslot *s;
	int r;

	u->kind = op->kind;
	switch (op->kind) {
	case VMM_OP_CREATE:
		r = create_check(vm, &op->create, fd, err);
		u->id = op->create.id;
		return r;
	case VMM_OP_MOVE:
		r = slot_check(vm, op->id, err);
		if (r)
			return r;
		s = layout_find(&vm->layout, op->id);
		r = range_check(vm, op->gpa, s->size, op->id, err);
		if (r)
			return r;
		u->id = op->id;
		u->old_gpa = s->gpa;
		return layout_move(&vm->layout, op->id, op->gpa);
	case VMM_OP_DELETE:
		r = slot_check(vm, op->id, err);
		u->id = op->id;
		return r ? r : layout_remove(&vm->layout, op->id, &u->gone);
	}
	return vmm_err_set(err, -EINVAL, "op", "unknown operation");
}

/* Takes the first n model steps back, last first. */
static void model_undo(struct ctl_vm *vm, const struct undo *u, size_t n)
{
	while (n--) {
		if (u[n].kind == VMM_OP_CREATE)
			layout_remove(&vm->layout, u[n].id, NULL);
		else if (u[n].kind == VMM_OP_MOVE)
			layout_move(&vm->layout, u[n].id, u[n].old_gpa);
		else
			layout_insert(&vm->layout, &u[n].gone);
	}
}

static void fds_close(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* ---- the order ----------------------------------------------------------------- */

/* One change of n ops, allocated for n (an op with its undo is 2.3 KiB:
 * sized for 64 they made a 140 KiB calloc, mmap'd and faulted in, per
 * memslot.create). */
struct change {
	size_t n;
	struct vmm_memslot_op *ops;
	struct undo *undo;
	int fds[VMM_TXN_MAX];
	uint32_t rids[VMM_TXN_MAX];
};

static struct change *change_alloc(size_t n)
{
	struct change *c = calloc(1, sizeof(*c) + n * (sizeof(c->ops[0]) + sizeof(c->undo[0])));

	if (!c)
		return NULL;
	c->n = n;
	c->ops = (struct vmm_memslot_op *)(c + 1);
	c->undo = (struct undo *)(c->ops + n);
	return c;
}

/* check: every op into the model; *failed names the one refused. */
static int change_check(struct ctl_vm *vm, struct change *c, size_t *failed,
			struct vmm_err *err)
{
	for (size_t i = 0; i < c->n; i++) {
		int r = op_model(vm, &c->ops[i], &c->undo[i], &c->fds[i], err);

		if (r) {
			model_undo(vm, c->undo, i);
			*failed = i;
			return r;
		}
	}
	return 0;
}

/* apply: the runner takes the ops as the model numbered them. */
static int change_apply(struct ctl_vm *vm, struct runner *r, struct change *c,
			size_t *failed, struct vmm_effect *fx, struct vmm_err *err)
{
	int rc = runner_txn_apply(r, c->ops, c->n, c->rids, failed, fx, err);

	for (size_t i = 0; !rc && i < c->n; i++)
		if (c->rids[i] != c->undo[i].id) {
			runner_txn_end(r, false, NULL);
			rc = vmm_err_set(err, -EPROTO, NULL, "VM '%s': its runner applied op %zu "
					 "to slot %u, not %u: undone", vm->name, i, c->rids[i],
					 c->undo[i].id);
		}
	if (rc)
		model_undo(vm, c->undo, c->n);
	return rc;
}

/* persist and commit, or abort. */
static int change_finish(struct ctl_vm *vm, struct runner *r, struct change *c, bool persist,
			 struct vmm_err *err)
{
	int rc = 0;

	if (persist)
		rc = c->n == 1 ? persist_op(vm, &c->ops[0], err) :
		     vm_persist_all(vm, ctl_vm_quirks_enabled(vm), err);
	if (rc) {
		/* Not durable: undone before the guest runs on it. */
		runner_txn_end(r, false, NULL);
		model_undo(vm, c->undo, c->n);
		return rc;
	}
	/* Queued: it goes out after the reply (or before the next call). */
	runner_txn_end(r, true, NULL);
	ctl_flush_soon(vm->ctl, vm->info.state == VMM_VM_RUNNING);
	return 0;
}

/* The whole order for c; persist false for restore's own pushes. */
static int change_run(struct ctl_vm *vm, struct change *c, bool persist, size_t *failed,
		      struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_effect local;
	uint64_t t0 = vmm_now_ns();
	struct runner *r = NULL;
	int rc;

	fx = fx ? fx : &local;
	memset(fx, 0, sizeof(*fx));
	*failed = SIZE_MAX;
	for (size_t i = 0; i < c->n; i++)
		c->fds[i] = -1;
	/* The checks need no runner: a bad change is refused as such even
	 * when the VM's runner is gone. */
	rc = change_check(vm, c, failed, err);
	if (!rc && !(r = vm_runner(vm, err))) {
		model_undo(vm, c->undo, c->n);
		rc = -ECONNRESET;
	}
	if (!rc) {
		uint64_t t = vmm_now_ns();

		rc = change_apply(vm, r, c, failed, fx, err);
		fx->runner_ns = vmm_now_ns() - t;
		fx->apply_ns = fx->duration_ns;	/* the runner's, so far */
	}
	if (!rc)
		rc = change_finish(vm, r, c, persist, err);
	fds_close(c->fds, c->n);
	fx->duration_ns = vmm_now_ns() - t0;
	return rc;
}

int ctl_memslot_transaction(struct ctl_vm *vm, const struct vmm_memslot_op *ops, size_t n,
			    uint32_t *ids, size_t *failed, struct vmm_effect *fx,
			    struct vmm_err *err)
{
	struct change *c;
	int r;

	*failed = SIZE_MAX;
	if (n == 0 || n > VMM_TXN_MAX)
		return vmm_err_set(err, -EINVAL, "ops", "a transaction has 1..%u operations",
				   VMM_TXN_MAX);
	c = change_alloc(n);
	if (!c)
		return vmm_err_set(err, -ENOMEM, NULL, "out of memory");
	memcpy(c->ops, ops, n * sizeof(*ops));
	r = change_run(vm, c, true, failed, fx, err);
	for (size_t i = 0; !r && i < n; i++)
		ids[i] = c->undo[i].id;
	free(c);
	return r;
}

static int one_op(struct ctl_vm *vm, const struct vmm_memslot_op *op, uint32_t *id,
		  struct vmm_effect *fx, struct vmm_err *err)
{
	uint32_t ids[1];
	size_t failed;
	int r = ctl_memslot_transaction(vm, op, 1, ids, &failed, fx, err);

	if (!r && id)
		*id = ids[0];
	return r;
}

int ctl_memslot_create(struct ctl_vm *vm, const struct vmm_memslot_params *p, uint32_t *id,
		       struct vmm_effect *fx, struct vmm_err *err)
{
	struct vmm_memslot_op op = { .kind = VMM_OP_CREATE, .create = *p };

	op.create.has_fd = false;
	return one_op(vm, &op, id, fx, err);
}

int ctl_memslot_move(struct ctl_vm *vm, uint32_t id, uint64_t gpa, struct vmm_effect *fx,
		     struct vmm_err *err)
{
	struct vmm_memslot_op op = { .kind = VMM_OP_MOVE, .id = id, .gpa = gpa };

	return one_op(vm, &op, NULL, fx, err);
}

int ctl_memslot_delete(struct ctl_vm *vm, uint32_t id, struct vmm_effect *fx,
		       struct vmm_err *err)
{
	struct vmm_memslot_op op = { .kind = VMM_OP_DELETE, .id = id };

	return one_op(vm, &op, NULL, fx, err);
}

int vm_layout_push(struct ctl_vm *vm, const struct vmm_memslot_info *slots, size_t n,
		   struct vmm_err *err)
{
	struct change *c = change_alloc(VMM_TXN_MAX);
	size_t failed;
	int r = c ? 0 : -ENOMEM;

	for (size_t done = 0; !r && done < n; done += c->n) {
		c->n = n - done < VMM_TXN_MAX ? n - done : VMM_TXN_MAX;
		for (size_t i = 0; i < c->n; i++) {
			const struct vmm_memslot_info *s = &slots[done + i];

			memset(&c->ops[i], 0, sizeof(c->ops[i]));
			c->ops[i].kind = VMM_OP_CREATE;
			c->ops[i].create = (struct vmm_memslot_params){
				.id = s->id, .gpa = s->gpa, .size = s->size,
				.flags = s->slot_flags, .backing = s->backing,
			};
		}
		r = change_run(vm, c, false, &failed, NULL, err);
	}
	free(c);
	return r;
}

/* ---- flags, dirty log ------------------------------------------------------------- */

/* apply, persist, undo: dirty logging changes nothing a guest sees, so
 * no vCPU needs holding. */
int ctl_memslot_set_flags(struct ctl_vm *vm, uint32_t id, bool dirty_log,
			  struct vmm_effect *fx, struct vmm_err *err)
{
	struct lslot *s = layout_find(&vm->layout, id);
	struct vmm_memslot_op op = { .kind = VMM_OP_MOVE, .id = id };
	uint32_t old;
	struct runner *r;
	uint64_t t0 = vmm_now_ns();
	int rc;

	if (fx)
		memset(fx, 0, sizeof(*fx));
	if (!s)
		return vmm_err_set(err, -ENOENT, "slot", "VM '%s' has no memslot %u", vm->name, id);
	old = s->slot_flags;
	if (!!(old & VMM_SLOT_DIRTY_LOG) == dirty_log)
		return 0;
	if (!(r = vm_runner(vm, err)))
		return -ECONNRESET;
	rc = runner_set_flags(r, id, dirty_log, fx, err);
	if (rc)
		return rc;
	if (fx) {
		fx->runner_ns = vmm_now_ns() - t0;
		fx->apply_ns = fx->duration_ns;
	}
	s->slot_flags = dirty_log ? old | VMM_SLOT_DIRTY_LOG : old & ~VMM_SLOT_DIRTY_LOG;
	op.gpa = s->gpa;
	rc = persist_op(vm, &op, err);
	if (rc) {
		runner_set_flags(r, id, !dirty_log, NULL, NULL);
		s->slot_flags = old;
		return rc;
	}
	if (fx)
		fx->duration_ns = vmm_now_ns() - t0;
	return 0;
}

int ctl_memslot_dirty_log(struct ctl_vm *vm, uint32_t id, bool clear, uint64_t **bitmap,
			  uint64_t *npages, uint64_t *ndirty, struct vmm_err *err)
{
	const struct lslot *s = layout_find(&vm->layout, id);
	struct runner *r;

	if (!s)
		return vmm_err_set(err, -ENOENT, "slot", "VM '%s' has no memslot %u", vm->name, id);
	if (!(s->slot_flags & VMM_SLOT_DIRTY_LOG))
		return vmm_err_set(err, -EINVAL, "slot", "dirty logging is off for memslot %u "
				   "(memslot.set_flags turns it on)", id);
	r = vm_runner(vm, err);
	return r ? runner_dirty_log(r, id, clear, bitmap, npages, ndirty, err) : -ECONNRESET;
}
