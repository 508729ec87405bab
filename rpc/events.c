/* The event log of one daemon run: epoch, sequence numbers and the ring
 * of recent notifications (see rpc/events.h).  Used from the event loop
 * only. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "rpc/events.h"

struct entry {
	char *text;
	size_t len;
	unsigned topic;
};

struct rpc_events {
	char epoch[RPC_EVENTS_EPOCH_LEN + 1];
	uint64_t last;		/* seq of the newest event recorded */
	struct entry *v;	/* circular: v[head] holds seq last - n + 1 */
	size_t cap, head, n;
	size_t bytes, max_bytes;
};

/* 128 bits that differ from one start of slotd to the next: getrandom,
 * or, should it fail (it does not block once the pool is ready, and
 * slotd starts long after that), the clocks and the pid mixed. */
static void epoch_make(char *out)
{
	uint64_t w[2];

	if (getrandom(w, sizeof(w), GRND_NONBLOCK) != (ssize_t)sizeof(w)) {
		struct timespec rt, mono;

		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mono);
		w[0] = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
		w[1] = ((uint64_t)mono.tv_sec * 1000000000ull + (uint64_t)mono.tv_nsec) ^
		       ((uint64_t)getpid() << 32);
		slog_warn("rpc: getrandom failed; the event epoch comes from the clocks");
	}
	snprintf(out, RPC_EVENTS_EPOCH_LEN + 1, "%016llx%016llx", (unsigned long long)w[0],
		 (unsigned long long)w[1]);
}

int rpc_events_create(size_t max_events, size_t max_bytes, struct rpc_events **out)
{
	struct rpc_events *ev;

	if (!max_events || !max_bytes)
		return -EINVAL;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->v = calloc(max_events, sizeof(*ev->v));
	if (!ev->v) {
		free(ev);
		return -ENOMEM;
	}
	ev->cap = max_events;
	ev->max_bytes = max_bytes;
	epoch_make(ev->epoch);
	*out = ev;
	return 0;
}

/* Frees the oldest event. */
static void drop_oldest(struct rpc_events *ev)
{
	struct entry *e = &ev->v[ev->head];

	ev->bytes -= e->len;
	free(e->text);
	e->text = NULL;
	ev->head = (ev->head + 1) % ev->cap;
	ev->n--;
}

void rpc_events_destroy(struct rpc_events *ev)
{
	if (!ev)
		return;
	while (ev->n)
		drop_oldest(ev);
	free(ev->v);
	free(ev);
}

const char *rpc_events_epoch(const struct rpc_events *ev)
{
	return ev->epoch;
}

uint64_t rpc_events_last(const struct rpc_events *ev)
{
	return ev->last;
}

uint64_t rpc_events_oldest(const struct rpc_events *ev)
{
	return ev->last - ev->n + 1;
}

size_t rpc_events_count(const struct rpc_events *ev)
{
	return ev->n;
}

size_t rpc_events_bytes(const struct rpc_events *ev)
{
	return ev->bytes;
}

uint64_t rpc_events_push(struct rpc_events *ev, unsigned topic, const char *text, size_t len)
{
	char *copy = text && len && len <= ev->max_bytes ? malloc(len) : NULL;
	struct entry *e;

	ev->last++;
	if (!copy) {
		/* Not kept: no resume may reach across this event. */
		slog_warn("rpc: event %llu (%zu bytes) could not be kept for resuming "
			  "subscribers; they will be told they missed events",
			  (unsigned long long)ev->last, len);
		while (ev->n)
			drop_oldest(ev);
		return ev->last;
	}
	memcpy(copy, text, len);
	while (ev->n && (ev->n == ev->cap || ev->bytes + len > ev->max_bytes))
		drop_oldest(ev);
	e = &ev->v[(ev->head + ev->n) % ev->cap];
	e->text = copy;
	e->len = len;
	e->topic = topic;
	ev->n++;
	ev->bytes += len;
	return ev->last;
}

/* The entry of seq, or NULL when the ring does not hold it. */
static const struct entry *entry_of(const struct rpc_events *ev, uint64_t seq)
{
	uint64_t oldest = rpc_events_oldest(ev);

	if (seq < oldest || seq > ev->last)
		return NULL;
	return &ev->v[(ev->head + (size_t)(seq - oldest)) % ev->cap];
}

int rpc_events_get(const struct rpc_events *ev, uint64_t seq, unsigned *topic,
		   const char **text, size_t *len)
{
	const struct entry *e = entry_of(ev, seq);

	if (!e)
		return -ENOENT;
	*topic = e->topic;
	*text = e->text;
	*len = e->len;
	return 0;
}

size_t rpc_events_count_range(const struct rpc_events *ev, uint64_t since, uint64_t to,
			      uint64_t mask)
{
	uint64_t s = since < rpc_events_oldest(ev) ? rpc_events_oldest(ev) : since + 1;
	size_t n = 0;

	for (; s <= to && s <= ev->last; s++) {
		const struct entry *e = entry_of(ev, s);

		if (e && e->topic < 64 && (mask & (1ull << e->topic)))
			n++;
	}
	return n;
}
