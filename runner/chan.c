/* Runner channel framing: SOCK_SEQPACKET messages with SCM_RIGHTS
 * descriptors; payloads above RUNNER_INLINE_MAX travel in a sealed memfd
 * (a seqpacket message must fit the socket's send buffer). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runner/chan.h"

/* Any change of these layouts must bump RUNNER_PROTO_VERSION. */
_Static_assert(sizeof(struct runner_hdr) == 24, "runner_hdr changed: bump the version");
/* rm_hello grew features at its end (152 bytes before): both sides read
 * what the other sent, so either may be older. */
_Static_assert(sizeof(struct rm_hello) == 160, "rm_hello changed: bump the version");
_Static_assert(offsetof(struct rm_hello, features) == 152, "rm_hello's old part changed");
_Static_assert(sizeof(struct rm_vm_create) == 416, "rm_vm_create changed");
_Static_assert(sizeof(struct rm_info) == 712, "rm_info changed: bump the version");
_Static_assert(sizeof(struct rm_slot) == 56, "rm_slot changed: bump the version");
_Static_assert(sizeof(struct rm_effect) == 1376, "rm_effect changed: bump the version");
_Static_assert(sizeof(struct rm_err) == 304, "rm_err changed: bump the version");
_Static_assert(sizeof(struct rm_stat) == 80, "rm_stat changed: bump the version");

static size_t iov_total(const struct iovec *iov, int niov)
{
	size_t n = 0;

	for (int i = 0; i < niov; i++)
		n += iov[i].iov_len;
	return n;
}

/* A sealed memfd holding the payload of iov. */
static int bulk_make(const struct iovec *iov, int niov)
{
	int fd = memfd_create("slotd-runner-bulk", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	for (int i = 0; i < niov; i++) {
		const char *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left) {
			ssize_t w = write(fd, p, left);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int e = w < 0 ? errno : EIO;

				close(fd);
				return -e;
			}
			p += w;
			left -= (size_t)w;
		}
	}
	/* The receiver reads what it was told it gets: nothing can change it. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	return fd;
}

int chan_send(int fd, unsigned type, uint32_t seq, uint32_t flags, int32_t status,
	      const struct iovec *iov, int niov, const int *fds, unsigned nfds, bool nowait)
{
	size_t len = iov_total(iov, niov);
	struct runner_hdr h = {
		.magic = RUNNER_PROTO_MAGIC, .version = RUNNER_PROTO_VERSION,
		.type = (uint16_t)type, .seq = seq, .status = status, .len = (uint32_t)len,
		.flags = flags,
	};
	struct iovec v[8];
	int allfds[RUNNER_FDS_MAX + 1], bulk = -1, r = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int) * (RUNNER_FDS_MAX + 1))];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = { .msg_iov = v, .msg_iovlen = 1 };
	unsigned n = 0;

	if (niov > 7 || nfds > RUNNER_FDS_MAX || len > RUNNER_BULK_MAX)
		return -EMSGSIZE;
	v[0] = (struct iovec){ &h, sizeof(h) };
	if (len > RUNNER_INLINE_MAX) {
		bulk = bulk_make(iov, niov);
		if (bulk < 0)
			return bulk;
		h.flags |= RUNNER_F_BULK;
		allfds[n++] = bulk;
	} else if (niov > 0) {
		memcpy(&v[1], iov, sizeof(*iov) * (size_t)niov);
		mh.msg_iovlen = 1 + (size_t)niov;
	}
	for (unsigned i = 0; i < nfds; i++)
		allfds[n++] = fds[i];
	if (n) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), allfds, sizeof(int) * n);
	}
	while (sendmsg(fd, &mh, MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0)) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		break;
	}
	if (bulk >= 0)
		close(bulk);
	return r;
}

/* Reads the bulk memfd (m->fds[0]) into m->data and drops it. */
static int bulk_read(struct chan_msg *m)
{
	size_t done = 0;

	if (m->nfds == 0 || m->h.len > RUNNER_BULK_MAX)
		return -EPROTO;
	m->data = malloc(m->h.len ? m->h.len : 1);
	if (!m->data)
		return -ENOMEM;
	while (done < m->h.len) {
		ssize_t n = pread(m->fds[0], m->data + done, m->h.len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPROTO;
		done += (size_t)n;
	}
	close(m->fds[0]);
	memmove(&m->fds[0], &m->fds[1], sizeof(int) * --m->nfds);
	return 0;
}

/* Takes the descriptors out of a received message's control data. */
static int fds_take(struct msghdr *mh, struct chan_msg *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->nfds < RUNNER_FDS_MAX + 1)
				m->fds[m->nfds++] = fd;
			else
				close(fd);
		}
	}
	return mh->msg_flags & MSG_CTRUNC ? -EPROTO : 0;
}

static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? (timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT) : 0;
}

int chan_recv(int fd, struct chan_msg *out, int timeout_ms, void *scratch)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * (RUNNER_FDS_MAX + 1))];
		struct cmsghdr align;
	} cm;
	struct chan_msg m = { .nfds = 0 };
	struct iovec v[2] = { { &m.h, sizeof(m.h) }, { scratch, RUNNER_INLINE_MAX } };
	struct msghdr mh = { .msg_iov = v, .msg_iovlen = 2, .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
	ssize_t n;
	/* With 0 the caller knows (or checks) that something is there; with
	 * CHAN_WAIT_SOCKOPT recvmsg itself waits. */
	int r = timeout_ms && timeout_ms != CHAN_WAIT_SOCKOPT ? wait_readable(fd, timeout_ms) : 0;

	if (r)
		return r;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC |
			    (timeout_ms == CHAN_WAIT_SOCKOPT ? 0 : MSG_DONTWAIT));
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 || errno == ECONNRESET || errno == EPIPE ? -ECONNRESET :
		       errno == EAGAIN ? (timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT) : -errno;
	r = fds_take(&mh, &m);
	if (!r && ((size_t)n < sizeof(m.h) || (mh.msg_flags & MSG_TRUNC) ||
		   m.h.magic != RUNNER_PROTO_MAGIC || m.h.version != RUNNER_PROTO_VERSION))
		r = -EPROTO;
	if (!r && (m.h.flags & RUNNER_F_BULK))
		r = (size_t)n == sizeof(m.h) ? bulk_read(&m) : -EPROTO;
	else if (!r && (size_t)n - sizeof(m.h) != m.h.len)
		r = -EPROTO;
	else if (!r && m.h.len && !(m.data = malloc(m.h.len)))
		r = -ENOMEM;
	else if (!r && m.h.len)
		memcpy(m.data, scratch, m.h.len);
	if (r) {
		chan_msg_free(&m);
		return r;
	}
	*out = m;
	return 0;
}

int chan_timeout_set(int fd, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000 };

	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

void chan_msg_free(struct chan_msg *m)
{
	for (unsigned i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
	free(m->data);
	m->data = NULL;
}

const char *chan_msg_name(unsigned type)
{
	static const char *const names[] = {
		[RM_HELLO] = "hello", [RM_VM_CREATE] = "vm.create", [RM_VM_START] = "vm.start",
		[RM_VM_PAUSE] = "vm.pause", [RM_VM_RESUME] = "vm.resume",
		[RM_VM_STOP] = "vm.stop", [RM_VM_DESTROY] = "vm.destroy",
		[RM_VM_INFO] = "vm.info", [RM_QUIRK_SET] = "quirk.set",
		[RM_SLOTS_GET] = "slots.get", [RM_TXN_APPLY] = "txn.apply",
		[RM_TXN_END] = "txn.end", [RM_SET_FLAGS] = "slot.set_flags",
		[RM_DIRTY_LOG] = "slot.dirty_log", [RM_MEMORY_READ] = "memory.read",
		[RM_MEMORY_WRITE] = "memory.write", [RM_CONSOLE_READ] = "console.read",
		[RM_REPORTS_READ] = "reports.read", [RM_STATS_GET] = "stats.get",
	};

	if (type == RM_EV_STATE)
		return "event.state";
	if (type == RM_EV_CONSOLE)
		return "event.console";
	return type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "unknown";
}
