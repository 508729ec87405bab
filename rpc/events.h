/* The event log of one daemon run (rpc/events.c): the run's epoch, the
 * sequence numbers of its notifications, and a bounded ring of the last
 * ones sent, from which events.subscribe {since} replays what a client
 * missed while it was away.
 *
 * Every notification gets the next sequence number (1, 2, ... across all
 * topics) and goes into the ring, whether or not anyone is subscribed.
 * The ring keeps the newest events up to a count and a byte bound: the
 * seqs it holds are always one contiguous run [oldest, last], so a
 * resume from since is complete exactly when since >= oldest - 1.  An
 * event that cannot be kept (larger than the byte bound, no memory)
 * empties the ring, so that no resume can skip it unnoticed. */
#ifndef SLOTD_RPC_EVENTS_H
#define SLOTD_RPC_EVENTS_H

#include <stddef.h>
#include <stdint.h>

/* The defaults slotd runs with (the byte bound is at most half of the
 * largest output a connection may hold, so a whole replay fits one). */
#define RPC_EVENTS_MAX		1024
#define RPC_EVENTS_MAX_BYTES	(4u << 20)
/* An epoch is 128 random bits in lower-case hex. */
#define RPC_EVENTS_EPOCH_LEN	32

struct rpc_events;

/* A ring of at most max_events events and max_bytes bytes of their text,
 * with a new epoch. */
int rpc_events_create(size_t max_events, size_t max_bytes, struct rpc_events **out);
void rpc_events_destroy(struct rpc_events *ev);

/* This run's epoch (RPC_EVENTS_EPOCH_LEN hex digits, NUL-ended). */
const char *rpc_events_epoch(const struct rpc_events *ev);
/* The seq of the last event recorded (0 before the first); the next one
 * gets this + 1. */
uint64_t rpc_events_last(const struct rpc_events *ev);
/* The oldest seq the ring still holds (last + 1 when it holds none). */
uint64_t rpc_events_oldest(const struct rpc_events *ev);
/* Events held and the bytes of their text. */
size_t rpc_events_count(const struct rpc_events *ev);
size_t rpc_events_bytes(const struct rpc_events *ev);

/* Records the event numbered last + 1: its topic bit and its whole
 * notification line (len bytes, copied), dropping the oldest events as
 * the bounds require.  Returns the seq; the number is used even when the
 * text cannot be kept (text NULL, too large, no memory: the ring is then
 * emptied). */
uint64_t rpc_events_push(struct rpc_events *ev, unsigned topic, const char *text, size_t len);
/* Event seq, if the ring holds it: 0 with *topic, *text and *len set (the
 * text stays valid until the next push), or -ENOENT. */
int rpc_events_get(const struct rpc_events *ev, uint64_t seq, unsigned *topic,
		   const char **text, size_t *len);
/* How many events with since < seq <= to and a topic in mask the ring
 * holds. */
size_t rpc_events_count_range(const struct rpc_events *ev, uint64_t since, uint64_t to,
			      uint64_t mask);

#endif
