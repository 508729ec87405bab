/* A systemd scope per runner (slotd's side), as libvirt puts each QEMU
 * in a machine scope: the runner leaves slotd.service's cgroup, so that
 * `systemctl restart slotd` does not kill it whatever KillMode says, its
 * resources are accounted and limited on their own, and `systemctl status
 * slotd-vm-NAME.scope` shows it.  StartTransientUnit over the system bus. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "common/log.h"
#include "runner/runner.h"

/* The StartTransientUnit call: unit name, mode, properties, no aux. */
static int scope_message(sd_bus *bus, sd_bus_message **m, const char *unit, pid_t pid,
			 const char *vm_name)
{
	char desc[128];
	int r;

	snprintf(desc, sizeof(desc), "slotd VM %s", vm_name);
	r = sd_bus_message_new_method_call(bus, m, "org.freedesktop.systemd1",
					   "/org/freedesktop/systemd1",
					   "org.freedesktop.systemd1.Manager",
					   "StartTransientUnit");
	if (r >= 0)
		r = sd_bus_message_append(*m, "ss", unit, "fail");
	if (r >= 0)
		r = sd_bus_message_open_container(*m, 'a', "(sv)");
	if (r >= 0)
		r = sd_bus_message_append(*m, "(sv)(sv)(sv)(sv)",
					  "Description", "s", desc,
					  "PIDs", "au", 1, (uint32_t)pid,
					  "Slice", "s", "machine.slice",
					  "CollectMode", "s", "inactive-or-failed");
	if (r >= 0)
		r = sd_bus_message_close_container(*m);
	if (r >= 0)
		r = sd_bus_message_append(*m, "a(sa(sv))", 0);
	return r < 0 ? r : 0;
}

int runner_scope_create(pid_t pid, const char *vm_name)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	sd_bus *bus = NULL;
	char unit[128];
	int r;

	snprintf(unit, sizeof(unit), "slotd-vm-%s.scope", vm_name);
	r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = scope_message(bus, &m, unit, pid, vm_name);
	if (r >= 0)
		r = sd_bus_call(bus, m, 5 * 1000 * 1000, &e, &reply);
	if (r < 0)
		slog_warn("vm %s: runner %d stays in slotd's cgroup: no scope %s (%s); a stop "
			  "of slotd.service may end it", vm_name, pid, unit,
			  e.message ? e.message : strerror(-r));
	else
		slog_info("vm %s: runner %d in %s", vm_name, pid, unit);
	sd_bus_error_free(&e);
	sd_bus_message_unref(reply);
	sd_bus_message_unref(m);
	sd_bus_unref(bus);
	return r < 0 ? r : 0;
}
