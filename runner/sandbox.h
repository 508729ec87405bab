/* The runner's sandbox (runner/sandbox.c).  Internal to runner/. */
#ifndef SLOTD_RUNNER_SANDBOX_H
#define SLOTD_RUNNER_SANDBOX_H

#include <stdbool.h>

/* Closes every descriptor above keep_max, sets no_new_privs, drops all
 * capabilities and installs the seccomp allow-list (log_only: refused
 * calls are logged by the kernel instead, for finding missing ones).
 * 0 or -errno; the process must not go on unsandboxed after a failure. */
int runner_sandbox_apply(int keep_max, bool log_only);

#endif
