/* Framing of the runner channel (runner/proto.h), shared by slotd's side
 * (client.c) and the runner's (serve.c).  Internal to runner/. */
#ifndef SLOTD_RUNNER_CHAN_H
#define SLOTD_RUNNER_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "runner/proto.h"

/* One received message: the header, its payload (malloc'd, h.len bytes,
 * NULL when empty) and the descriptors that came with it (a bulk memfd is
 * already read and closed).  Descriptors still >= 0 at chan_msg_free are
 * closed there: take one by setting its slot to -1. */
struct chan_msg {
	struct runner_hdr h;
	unsigned char *data;
	int fds[RUNNER_FDS_MAX + 1];	/* a bulk memfd, then the rest */
	unsigned nfds;
};

/* Sends one message: header fields, payload gathered from iov (a payload
 * above RUNNER_INLINE_MAX goes in a sealed memfd), descriptors.  With
 * nowait, a full socket is -EAGAIN instead of a wait.  0 or -errno
 * (-EPIPE/-ECONNRESET: the peer is gone). */
int chan_send(int fd, unsigned type, uint32_t seq, uint32_t flags, int32_t status,
	      const struct iovec *iov, int niov, const int *fds, unsigned nfds, bool nowait);
/* Receives one message, waiting up to timeout_ms (-1: forever, 0: only
 * what is there).  0; -ETIMEDOUT (or -EAGAIN with 0); -ECONNRESET when the
 * peer closed; -EPROTO for a malformed message (the channel is then not
 * to be trusted).  m is filled only on success. */
int chan_recv(int fd, struct chan_msg *m, int timeout_ms);
void chan_msg_free(struct chan_msg *m);
/* A message's name, for logs ("vm.create", "event.state", ...). */
const char *chan_msg_name(unsigned type);

#endif
