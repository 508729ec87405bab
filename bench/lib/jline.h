/* One client for both daemons the benchmarks compare: slotd's JSON-RPC
 * and QEMU's QMP are both one JSON text per line over a Unix socket, so
 * the same code sends, waits and reads for each, and neither side is
 * measured with a faster client than the other. */
#ifndef SLOTD_BENCH_JLINE_H
#define SLOTD_BENCH_JLINE_H

#include <stdbool.h>
#include <stddef.h>

struct jline {
	int fd;
	char *buf;		/* received bytes not yet returned */
	size_t len, cap, skip;	/* skip: the line last returned, with its '\n' */
	const char *watch;	/* a line holding it sets watch_seen (events) */
	bool watch_seen;
};

/* Connects to the Unix socket path with reads and writes bounded by
 * timeout_s.  0 or -errno. */
int jline_open(struct jline *c, const char *path, int timeout_s);
void jline_close(struct jline *c);
/* Sends len bytes of text (one or more '\n'-terminated lines). */
int jline_send(struct jline *c, const char *text, size_t len);
/* The next line, NUL-terminated, valid until the next call. */
int jline_recv(struct jline *c, char **line);
/* Sends req and reads until a line holding reply_key ("\"return\"",
 * "\"result\"") or an "error" object, and no "\"event\"" key; other lines
 * (QMP events, which every monitor connection gets) are passed over,
 * but noted in watch_seen when they hold c->watch.  -EPROTO on an error
 * reply (printed with its request), 0 otherwise; *reply (may be NULL)
 * points at the reply line until the next call. */
int jline_call(struct jline *c, const char *req, const char *reply_key, char **reply);
/* Reads lines until one holds needle (after watch_seen says it came
 * already, returns at once); gives up after timeout_ms. */
int jline_wait(struct jline *c, const char *needle, long timeout_ms);

/* slotd: calls method with params (printf-formatted JSON object text);
 * the reply line as jline_call gives it. */
int jline_rpc(struct jline *c, char **reply, const char *method, const char *params_fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* QMP: connects, reads the greeting, negotiates capabilities. */
int jline_qmp_open(struct jline *c, const char *path, int timeout_s);

#endif
