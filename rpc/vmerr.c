/* Control-plane errors as JSON-RPC errors, shared by the vm.* and
 * memslot.* methods. */
#include <errno.h>
#include <string.h>

#include "ctl/ctl.h"
#include "rpc/internal.h"

/* The JSON-RPC code for a control-plane -errno. */
static int vmm_code(int r)
{
	switch (-r) {
	case ENODEV:	return RPC_ERR_KVM_UNAVAILABLE;
	case ENOENT:	return RPC_ERR_NOT_FOUND;
	case EEXIST:	return RPC_ERR_EXISTS;
	case EBUSY:
	case ETIMEDOUT:
	case ECONNRESET: return RPC_ERR_BAD_STATE;
	case EINVAL:
	case EFAULT:	return RPC_INVALID_PARAMS;
	case EPERM:
	case EACCES:	return RPC_ERR_NOT_PERMITTED;
	case EOPNOTSUPP: return RPC_ERR_UNSUPPORTED;
	case ENOMEM:
	case ENOSPC:
	case E2BIG:	return RPC_ERR_LIMIT;
	case EIO:	return RPC_ERR_BACKING;
	case ENOSYS:
	case EPROTO:	return RPC_INTERNAL_ERROR;
	}
	return RPC_ERR_KERNEL;
}

int rpc_vmm_error_field(struct rpc_call *call, int r, const struct vmm_err *e,
			const char *field)
{
	const char *msg = e && e->msg[0] ? e->msg : strerror(-r);
	const char *name = strerrorname_np(-r);

	/* Not durable, not made: the state file is named. */
	if (e && e->file[0]) {
		rpc_call_error(call, RPC_ERR_STATE_IO, NULL, "%s; the change was not made "
			       "(or was undone)", msg);
		rpc_call_error_data(call, "file", json_object_new_string(e->file));
		return r;
	}
	rpc_call_error(call, vmm_code(r), field, "%s", msg);
	rpc_call_error_data(call, "errno", json_object_new_string(name ? name : "unknown"));
	return r;
}

int rpc_vmm_error(struct rpc_call *call, int r, const struct vmm_err *e)
{
	return rpc_vmm_error_field(call, r, e, e ? e->field : NULL);
}

int rpc_kvm_check(struct rpc_call *call)
{
	const struct vmm_caps *caps = ctl_caps(rpc_call_ctl(call));

	if (caps->kvm_available)
		return 0;
	rpc_call_error(call, RPC_ERR_KVM_UNAVAILABLE, NULL,
		       "KVM is unavailable on this host: %s (daemon.capabilities says why; "
		       "slotd serves on without VMs)", caps->kvm_error);
	return -ENODEV;
}

struct ctl_vm *rpc_vm_lookup(struct rpc_call *call, json_object *params,
			     const char *key)
{
	const char *name = rpc_param_str(params, key, "");
	struct ctl_vm *vm;

	if (rpc_kvm_check(call))
		return NULL;
	vm = ctl_vm_find(rpc_call_ctl(call), name);
	if (!vm)
		rpc_call_error(call, RPC_ERR_NOT_FOUND, key,
			       "no VM named '%s' (vm.list shows them)", name);
	return vm;
}
