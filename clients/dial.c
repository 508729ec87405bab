/* slotctl dial-stdio: bridges stdin and stdout to slotd's socket, so that
 * "ssh HOST slotctl dial-stdio" is a connection to slotd on HOST (what
 * --host ssh://HOST runs there; Docker's "docker system dial-stdio" does
 * the same).  It ends when slotd closes the connection, or when stdin
 * ends and slotd has answered what it read. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clients/slotctl.h"

/* Writes all of buf to fd, waiting while it is full. */
static int fd_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			poll(&p, 1, -1);
			continue;
		}
		if (n <= 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Moves what fd has to offer into out; 1 at EOF, -errno on failure. */
static int pump(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return 1;
	return fd_write_all(to, buf, (size_t)n);
}

/* Shuttles bytes until slotd closes (or a side fails). */
static int bridge(int sock)
{
	bool in_open = true;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = in_open ? 0 : -1, .events = POLLIN },
			{ .fd = sock, .events = POLLIN },
		};
		int r;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents) {
			r = pump(0, sock);
			if (r == 1) {
				/* No more requests: slotd answers, then closes. */
				in_open = false;
				shutdown(sock, SHUT_WR);
			} else if (r < 0) {
				return r;
			}
		}
		if (p[1].revents) {
			r = pump(sock, 1);
			if (r)
				return r == 1 ? 0 : r;
		}
	}
}

static int dial_stdio(struct slotctl *ctl, const struct slotctl_args *a)
{
	int ret;

	(void)a;
	if (ctl->host) {
		slotctl_err("dial-stdio serves the local socket; --host makes "
			    "no sense here");
		return SLOTCTL_EXIT_USAGE;
	}
	if (slotctl_connect(ctl))
		return SLOTCTL_EXIT_FAIL;
	ret = bridge(slotctl_conn_fd(ctl->conn));
	if (ret && ret != -EPIPE && ret != -ECONNRESET) {
		slotctl_err("dial-stdio: %s", strerror(-ret));
		return SLOTCTL_EXIT_FAIL;
	}
	return SLOTCTL_EXIT_OK;
}

static const struct slotctl_verb dial_verbs[] = {
	{ NULL, NULL, "", "connect stdin and stdout to slotd's socket (what "
	  "--host ssh://HOST runs on HOST)", 0, 0, NULL, dial_stdio },
	{ 0 },
};

const struct slotctl_noun slotctl_noun_dial_stdio = {
	"dial-stdio", "bridge stdin/stdout to the local socket (for ssh)",
	dial_verbs,
};
