/* slotd on another host, as Docker reaches one: --host ssh://[USER@]HOST
 * [:PORT][/SOCKET] runs "slotctl [--socket SOCKET] dial-stdio" there
 * through the system's ssh (or $SLOTCTL_SSH), whose stdin and stdout
 * are one end of a socketpair; the other end is the connection.  ssh
 * brings authentication, host keys and encryption: no TLS of our own. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients/slotctl.h"

/* True for the characters a host, user or socket path may hold: enough
 * for names, addresses and paths, and nothing a shell or ssh would read
 * as an option or as syntax. */
static bool safe_text(const char *s, const char *extra)
{
	if (!*s || *s == '-')
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr("._-", *s) &&
		    !strchr(extra, *s))
			return false;
	return true;
}

/* Splits "HOST[:PORT]" (HOST may be "[v6]") into h->host and h->port. */
static int host_port_parse(char *hp, struct slotctl_ssh_addr *h)
{
	char *colon;

	if (*hp == '[') {
		char *close = strchr(hp, ']');

		if (!close)
			return -EINVAL;
		*close = 0;
		h->host = hp + 1;
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] && !colon)
			return -EINVAL;
	} else {
		h->host = hp;
		colon = strchr(hp, ':');
	}
	if (colon) {
		char *end;
		long port;

		*colon = 0;
		port = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end || port < 1 || port > 65535)
			return -EINVAL;
		h->port = (int)port;
	}
	return safe_text(h->host, ":") ? 0 : -EINVAL;
}

int slotctl_ssh_addr_parse(const char *url, struct slotctl_ssh_addr *h)
{
	char *rest, *at, *slash;

	memset(h, 0, sizeof(*h));
	if (strncmp(url, "ssh://", 6))
		return -EPROTONOSUPPORT;
	h->buf = strdup(url + 6);
	if (!h->buf)
		return -ENOMEM;
	rest = h->buf;
	slash = strchr(rest, '/');
	if (slash) {
		h->socket = strdup(slash);
		*slash = 0;
		if (!h->socket)
			return -ENOMEM;
		/* The remote shell reads the path: allow only plain paths. */
		if (!safe_text(h->socket + 1, "/"))
			return -EINVAL;
	}
	at = strrchr(rest, '@');
	if (at) {
		*at = 0;
		h->user = rest;
		if (!safe_text(h->user, ""))
			return -EINVAL;
		rest = at + 1;
	}
	return host_port_parse(rest, h);
}

void slotctl_ssh_addr_free(struct slotctl_ssh_addr *h)
{
	free(h->buf);
	free(h->socket);
	memset(h, 0, sizeof(*h));
}

/* The ssh command line: [SSH] [-l USER] [-p PORT] -- HOST slotctl
 * [--socket PATH] dial-stdio.  argv has room for 16 entries. */
static void ssh_argv(const struct slotctl_ssh_addr *h, const char **argv,
		     char *port)
{
	const char *ssh = getenv("SLOTCTL_SSH");
	int n = 0;

	argv[n++] = ssh && *ssh ? ssh : "ssh";
	if (h->user) {
		argv[n++] = "-l";
		argv[n++] = h->user;
	}
	if (h->port) {
		snprintf(port, 8, "%d", h->port);
		argv[n++] = "-p";
		argv[n++] = port;
	}
	argv[n++] = "--";
	argv[n++] = h->host;
	argv[n++] = "slotctl";
	if (h->socket) {
		argv[n++] = "--socket";
		argv[n++] = h->socket;
	}
	argv[n++] = "dial-stdio";
	argv[n] = NULL;
}

int slotctl_ssh_spawn(const struct slotctl_ssh_addr *h, pid_t *pid)
{
	const char *argv[16];
	char port[8];
	int sv[2];

	ssh_argv(h, argv, port);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	*pid = fork();
	if (*pid < 0) {
		int ret = -errno;

		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	if (*pid == 0) {
		/* stdin and stdout are the connection; stderr stays ours so
		 * that ssh's and the remote slotctl's messages reach the user. */
		if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "slotctl: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		int ret = -errno;

		close(sv[0]);
		return ret;
	}
	return sv[0];
}

void slotctl_ssh_reap(pid_t pid)
{
	int status;

	/* ssh ends once the remote dial-stdio sees our side close; give it
	 * two seconds, then end it. */
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, &status, WNOHANG) != 0)
			return;
		poll(NULL, 0, 10);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
}
