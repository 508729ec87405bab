/* The event ring (rpc/events.c): seqs from 1, a contiguous window of the
 * newest events under a count and a byte bound, wraparound, an event too
 * large to keep empties it (so no resume can skip it), counting by topic,
 * and a new epoch per ring. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rpc/events.h"

static struct rpc_events *ev;

static void ring_new(size_t max_events, size_t max_bytes)
{
	cr_assert_eq(rpc_events_create(max_events, max_bytes, &ev), 0);
}

static void fini(void)
{
	rpc_events_destroy(ev);
	ev = NULL;
}

TestSuite(rpc_events, .fini = fini);

/* Pushes the event "e<seq>" (padded to len bytes when len > 0). */
static uint64_t push(unsigned topic, size_t len)
{
	char text[256];
	int n = snprintf(text, sizeof(text), "e%llu", (unsigned long long)rpc_events_last(ev) + 1);

	cr_assert(len < sizeof(text));
	if (len > (size_t)n) {
		memset(text + n, '.', len - (size_t)n);
		n = (int)len;
	}
	return rpc_events_push(ev, topic, text, (size_t)n);
}

/* Asserts that the ring holds exactly seqs first..last, each its own text. */
static void assert_holds(uint64_t first, uint64_t last)
{
	cr_assert_eq(rpc_events_oldest(ev), first, "oldest: expected %llu, got %llu",
		     (unsigned long long)first, (unsigned long long)rpc_events_oldest(ev));
	cr_assert_eq(rpc_events_last(ev), last, "last: expected %llu, got %llu",
		     (unsigned long long)last, (unsigned long long)rpc_events_last(ev));
	cr_assert_eq(rpc_events_count(ev), last - first + 1);
	for (uint64_t s = first; s <= last; s++) {
		const char *text;
		char want[32];
		unsigned topic;
		size_t len;
		int n = snprintf(want, sizeof(want), "e%llu", (unsigned long long)s);

		cr_assert_eq(rpc_events_get(ev, s, &topic, &text, &len), 0, "seq %llu not held",
			     (unsigned long long)s);
		cr_assert(len >= (size_t)n && !memcmp(text, want, (size_t)n) &&
			  (len == (size_t)n || text[n] == '.'),
			  "seq %llu: expected text %s, got %.*s", (unsigned long long)s, want,
			  (int)len, text);
	}
	{
		const char *text;
		unsigned topic;
		size_t len;

		cr_assert_eq(rpc_events_get(ev, first - 1, &topic, &text, &len), -ENOENT,
			     "seq %llu, before the oldest, is not held", (unsigned long long)first - 1);
		cr_assert_eq(rpc_events_get(ev, last + 1, &topic, &text, &len), -ENOENT,
			     "seq after the last is not held");
	}
}

Test(rpc_events, an_empty_ring_starts_at_seq_1)
{
	ring_new(4, 1024);
	cr_assert_eq(rpc_events_last(ev), 0);
	cr_assert_eq(rpc_events_oldest(ev), 1, "empty: oldest is last + 1");
	cr_assert_eq(rpc_events_count(ev), 0);
	cr_assert_eq(push(0, 0), 1, "the first event is seq 1");
	cr_assert_eq(push(3, 0), 2);
	assert_holds(1, 2);
}

Test(rpc_events, the_count_bound_keeps_the_newest_across_wraparound)
{
	ring_new(4, 1 << 20);
	for (int i = 1; i <= 11; i++) {
		cr_assert_eq(push((unsigned)i % 5, 0), (uint64_t)i);
		assert_holds(i > 4 ? (uint64_t)i - 3 : 1, (uint64_t)i);
	}
}

Test(rpc_events, the_byte_bound_drops_the_oldest_until_the_new_one_fits)
{
	ring_new(100, 100);
	for (int i = 0; i < 4; i++)
		push(0, 30);
	/* 4 x 30 > 100: three fit. */
	assert_holds(2, 4);
	cr_assert_eq(rpc_events_bytes(ev), 90);
	push(0, 60);
	/* 60 + 30 <= 100: only the last of the three stays with it. */
	assert_holds(4, 5);
	cr_assert_eq(rpc_events_bytes(ev), 90);
	push(0, 100);
	assert_holds(6, 6);
	cr_assert_eq(rpc_events_bytes(ev), 100);
}

Test(rpc_events, an_event_too_large_to_keep_empties_the_ring)
{
	ring_new(8, 64);
	push(0, 10);
	push(0, 10);
	cr_assert_eq(push(0, 65), 3, "its number is used all the same");
	cr_assert_eq(rpc_events_count(ev), 0, "nothing older may be resumed across it");
	cr_assert_eq(rpc_events_oldest(ev), 4);
	cr_assert_eq(rpc_events_bytes(ev), 0);
	cr_assert_eq(rpc_events_push(ev, 0, NULL, 0), 4, "an event without text (no memory)");
	cr_assert_eq(rpc_events_oldest(ev), 5);
	push(1, 10);
	assert_holds(5, 5);
}

Test(rpc_events, count_range_counts_the_topics_in_the_window_held)
{
	ring_new(6, 1 << 20);
	for (int i = 0; i < 9; i++)
		push((unsigned)i % 3, 0);	/* seqs 1..9, topics 0 1 2 0 1 2 ... */
	/* Held: 4..9, topics 0 1 2 0 1 2. */
	cr_assert_eq(rpc_events_count_range(ev, 3, 9, 1u << 0), 2);
	cr_assert_eq(rpc_events_count_range(ev, 3, 9, (1u << 1) | (1u << 2)), 4);
	cr_assert_eq(rpc_events_count_range(ev, 0, 9, ~0ull), 6, "only what is held");
	cr_assert_eq(rpc_events_count_range(ev, 7, 9, ~0ull), 2);
	cr_assert_eq(rpc_events_count_range(ev, 9, 9, ~0ull), 0);
	cr_assert_eq(rpc_events_count_range(ev, 5, 7, 1u << 1), 0, "seq 7 is topic 0");
}

Test(rpc_events, each_ring_has_its_own_epoch)
{
	struct rpc_events *other;
	const char *e;

	ring_new(1, 1);
	cr_assert_eq(rpc_events_create(1, 1, &other), 0);
	e = rpc_events_epoch(ev);
	cr_assert_eq(strlen(e), RPC_EVENTS_EPOCH_LEN);
	cr_assert_eq(strspn(e, "0123456789abcdef"), RPC_EVENTS_EPOCH_LEN, "hex: %s", e);
	cr_assert_str_neq(e, rpc_events_epoch(other), "two runs, two epochs");
	rpc_events_destroy(other);
	cr_assert_eq(rpc_events_create(0, 1, &other), -EINVAL, "a ring holds at least one event");
}
