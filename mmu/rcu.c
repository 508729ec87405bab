/* RCU plumbing: QSBR thread states, deferred frees through call_rcu. */
#include <time.h>

#include "mmu/internal.h"

int mmu_rcu_tsan_sync;


/* Registers the calling thread with RCU for its first reader; online. */
void rcu_thread_get(void)
{
	if (mmu_thread.nreg++ == 0) {
		/* RCU: online from here: pointers read now stay valid. */
		urcu_qsbr_register_thread();
		mmu_thread.online = true;
	}
}

/* Unregisters the calling thread with its last reader. */
void rcu_thread_put(void)
{
	if (--mmu_thread.nreg == 0) {
		RCU_TSAN_RELEASE();
		/* RCU: ends this thread's read-side use of every engine. */
		urcu_qsbr_unregister_thread();
		mmu_thread.online = false;
	}
}

void mmu_reader_online(void)
{
	if (mmu_thread.nreg && !mmu_thread.online) {
		/* RCU: from here on this thread may hold engine pointers. */
		urcu_qsbr_thread_online();
		mmu_thread.online = true;
	}
}

void mmu_reader_offline(void)
{
	if (mmu_thread.nreg && mmu_thread.online) {
		RCU_TSAN_RELEASE();
		/* RCU: every pointer and hva this thread got is dropped. */
		urcu_qsbr_thread_offline();
		mmu_thread.online = false;
	}
}

void mmu_reader_quiescent(void)
{
	if (mmu_thread.nreg && mmu_thread.online) {
		RCU_TSAN_RELEASE();
		/* RCU: every pointer and hva this thread got is dropped. */
		urcu_qsbr_quiescent_state();
	}
}

/* Makes the calling thread an online RCU thread, as call_rcu requires for
 * QSBR; returns what rcu_writer_exit must undo. */
static int rcu_writer_enter(void)
{
	if (mmu_thread.nreg == 0) {
		/* RCU: a brief reader that holds no engine pointer. */
		urcu_qsbr_register_thread();
		return 2;
	}
	if (!mmu_thread.online) {
		/* RCU: likewise; the caller's old pointers stay dropped. */
		urcu_qsbr_thread_online();
		return 1;
	}
	return 0;
}

static void rcu_writer_exit(int state)
{
	/* RCU: back to the caller's state; nothing read meanwhile is kept. */
	if (state == 2)
		urcu_qsbr_unregister_thread();
	else if (state == 1)
		urcu_qsbr_thread_offline();
}

/* Queues d to be freed by fn after the grace period that op_commit starts. */
void op_defer(struct mmu_op *op, struct mmu_defer *d,
	      void (*fn)(struct rcu_head *rh))
{
	d->fn = fn;
	d->next = op->head;
	op->head = d;
}

/* Ends a callback: counted, and ordered before rcu_barrier's return. */
void op_done(struct mmu *mmu)
{
	ATOMIC_ADD(&mmu->rcu_pending, (uint64_t)-1);
	RCU_TSAN_RELEASE();
}

/* Hands op's frees to call_rcu.  Called without mmu->lock, after the
 * writer unlinked them and flushed the software TLBs. */
void op_commit(struct mmu *mmu, struct mmu_op *op)
{
	struct mmu_defer *d = op->head, *next;
	int state;

	if (!d)
		return;
	state = rcu_writer_enter();
	for (; d; d = next) {
		void (*fn)(struct rcu_head *rh) = d->fn;

		next = d->next;
		ATOMIC_ADD(&mmu->rcu_pending, 1);
		/* Everything this thread did to d so far precedes fn. */
		RCU_TSAN_RELEASE();
		/* RCU: d is unreachable for new readers; fn frees it once every
		 * reader online now has passed a quiescent state. */
		urcu_qsbr_call_rcu(&d->rh, fn);
	}
	rcu_writer_exit(state);
	op->head = NULL;
}

/* Waits for a grace period from any thread; a caller that is an online
 * reader goes offline meanwhile (that is its quiescent state). */
void rcu_wait_grace(void)
{
	bool was_online = mmu_thread.online;

	if (was_online)
		mmu_reader_offline();
	/* RCU: returns once every reader online at the call has quiesced. */
	urcu_qsbr_synchronize_rcu();
	RCU_TSAN_ACQUIRE();
	if (was_online)
		mmu_reader_online();
}

/* Waits for every queued callback (all engines) to have run. */
void rcu_wait_callbacks(void)
{
	bool was_online = mmu_thread.online;

	if (was_online)
		mmu_reader_offline();
	/* RCU: rcu_barrier must not run from a read-side section. */
	urcu_qsbr_barrier();
	RCU_TSAN_ACQUIRE();
	if (was_online)
		mmu_reader_online();
}

uint64_t mmu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
