/* The runner's sandbox, applied before it creates the VM or runs guest
 * code: every descriptor but its own closed, no_new_privs, no
 * capabilities (bounding, ambient, effective, permitted, inheritable
 * sets), and a seccomp allow-list (libseccomp) of the system calls a
 * runner makes.  Anything else fails with EPERM: no open, no socket, no
 * connect, no execve, no ptrace.  The runner reaches the world only
 * through the descriptors slotd gave it. */
#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "runner/sandbox.h"

/* System calls a runner makes, found by running every test under strace
 * with the sandbox in log mode; grouped by what needs them. */
static const int allowed[] = {
	/* the channel and its events */
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(accept4), SCMP_SYS(getsockopt),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(close), SCMP_SYS(eventfd2),
	/* memory: guest RAM, backings, bulk messages, malloc */
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(madvise),
	SCMP_SYS(mremap), SCMP_SYS(brk), SCMP_SYS(memfd_create), SCMP_SYS(ftruncate),
	SCMP_SYS(fallocate), SCMP_SYS(fcntl), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
	SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
	/* threads: vCPUs, liburcu's call_rcu thread */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
	SCMP_SYS(sched_getaffinity), SCMP_SYS(membarrier), SCMP_SYS(getrandom),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(sigaltstack), SCMP_SYS(tgkill), SCMP_SYS(gettid), SCMP_SYS(getpid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(exit), SCMP_SYS(exit_group),
	SCMP_SYS(restart_syscall),
	/* time */
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(gettimeofday),
};

/* Adds the rules whose arguments matter. */
static int rules_with_args(scmp_filter_ctx ctx)
{
	int r;

	/* ioctl: KVM's (type 0xAE) and the tty probe stdio may make. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
			     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, 0xae00));
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_EQ, TCGETS));
	/* clone: threads only, never a new process. */
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* clone3 takes its flags in memory seccomp cannot read: ENOSYS makes
	 * glibc fall back to clone. */
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* prctl: naming its own threads only. */
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				     SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	return r;
}

static int seccomp_install(bool log_only)
{
	scmp_filter_ctx ctx = seccomp_init(log_only ? SCMP_ACT_LOG : SCMP_ACT_ERRNO(EPERM));
	int r = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; !r && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	if (!r)
		r = rules_with_args(ctx);
	if (!r)
		r = seccomp_load(ctx);
	if (ctx)
		seccomp_release(ctx);
	return r;
}

/* Drops every capability: bounding set (needs CAP_SETPCAP, which root
 * has; without it there is nothing to drop), ambient, then the rest. */
static int caps_drop(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL &&
		    errno != EPERM)
			return -errno;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(d, 0, sizeof(d));
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int runner_sandbox_apply(int keep_max, bool log_only)
{
	int r;

	if (close_range((unsigned)keep_max + 1, ~0U, 0) < 0)
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	r = caps_drop();
	if (r)
		return r;
	return seccomp_install(log_only);
}
