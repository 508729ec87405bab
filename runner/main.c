/* slotd-runner: one VM's process, started by slotd (runner/client.c).
 * Descriptors: 3 the KVM device, 4 the socket slotd bound for it (the
 * runner listens there for the slotds that come after), 5 the starting
 * slotd's connection, 2 the log.  It sandboxes itself before anything
 * else and then serves until the VM is destroyed.
 *
 *   slotd-runner --vm NAME --socket PATH   (as slotd starts it)
 *   slotd-runner --sandbox-check  (applies the sandbox, then tries what
 *                                  it forbids; prints one line each) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "runner/runner.h"
#include "runner/sandbox.h"

/* Tries calls the sandbox must refuse; 0 when every one was refused. */
static int sandbox_check(void)
{
	struct { const char *what; long r; int e; } t[4];
	int bad = 0, r = runner_sandbox_apply(2, false);

	if (r) {
		printf("sandbox: %s\n", strerror(-r));
		return 1;
	}
	errno = 0;
	t[0].what = "openat(\"/etc/hostname\")";
	t[0].r = open("/etc/hostname", O_RDONLY);
	t[0].e = errno;
	t[1].what = "socket(AF_INET)";
	t[1].r = socket(AF_INET, SOCK_STREAM, 0);
	t[1].e = errno;
	t[2].what = "execve(\"/bin/true\")";
	t[2].r = execl("/bin/true", "true", (char *)NULL);
	t[2].e = errno;
	t[3].what = "fork()";
	t[3].r = fork();
	t[3].e = errno;
	if (t[3].r == 0)
		_exit(0);	/* should never happen: the check reports it */
	for (int i = 0; i < 4; i++) {
		bool refused = t[i].r < 0 && t[i].e == EPERM;

		printf("%s: %s\n", t[i].what, refused ? "refused (EPERM)" : "ALLOWED");
		bad |= !refused;
	}
	return bad;
}

int main(int argc, char **argv)
{
	/* --socket PATH after --vm NAME only tells a reader of ps which
	 * socket this runner serves; descriptor 4 is that socket. */
	const char *vm = (argc == 3 || (argc == 5 && !strcmp(argv[3], "--socket"))) &&
			 !strcmp(argv[1], "--vm") ? argv[2] : NULL;
	bool log_only = getenv("SLOTD_RUNNER_SECCOMP_LOG") != NULL;
	char comm[16];
	int r;

	/* _exit: a sanitizer's exit-time leak check cannot run sandboxed. */
	if (argc == 2 && !strcmp(argv[1], "--sandbox-check")) {
		r = sandbox_check();
		fflush(stdout);
		_exit(r);
	}
	if (!vm || fcntl(3, F_GETFD) < 0 || fcntl(4, F_GETFD) < 0 || fcntl(5, F_GETFD) < 0) {
		fprintf(stderr, "slotd-runner: started by slotd only (--vm NAME, descriptors "
			"3 KVM, 4 listening socket, 5 connection)\n");
		return 2;
	}
	snprintf(comm, sizeof(comm), "vm-%s", vm);
	prctl(PR_SET_NAME, comm, 0, 0, 0);
	/* Listening here, not in slotd: a slotd that connects later sees
	 * this process as its peer (SO_PEERCRED). */
	if (listen(4, 4) < 0) {
		fprintf(stderr, "slotd-runner %s: listen: %s\n", vm, strerror(errno));
		return 1;
	}
	tzset();	/* log timestamps: /etc/localtime is out of reach later */
	r = runner_sandbox_apply(5, log_only);
	if (r) {
		fprintf(stderr, "slotd-runner %s: sandbox: %s\n", vm, strerror(-r));
		return 1;
	}
	r = runner_serve(3, 4, 5);
	if (r)
		fprintf(stderr, "slotd-runner %s: %s\n", vm, strerror(-r));
	_exit(r ? 1 : 0);
}
