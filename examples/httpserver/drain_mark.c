/*
 * drain_mark.c — see drain_mark.h. Two vDSO clock reads per question that
 * could be "yes", three per drain, no system call (with a clock source
 * the vDSO can read, such as the TSC; on others clock_gettime() is a
 * system call itself).
 *
 * Which clock steps matter. Only a backward step between the drain's
 * start and the request's arrival: the arrival then reads earlier than it
 * was and may pass for "before the drain". A forward step there makes the
 * arrival read later (no skip); a step before the drain or after the
 * arrival moves neither reading against the other. A backward step lowers
 * CLOCK_REALTIME - CLOCK_MONOTONIC, so the question only has to see that
 * distance fall. Measuring it reads two clocks one after the other, and a
 * pause between the readings (preemption) also makes it read lower: in a
 * question that only makes "no" likelier; in the drain's record it would
 * hide a step, so the drain's pause is bounded (READ_JITTER_NS).
 */
#include "drain_mark.h"

#include <time.h>

/* Reading CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_REALTIME: when the two
 * realtime readings are further apart than this (preempted in between),
 * the distance between the clocks is not trusted. */
#define READ_JITTER_NS 2000
/* The distance may fall by this much between a drain and a question
 * (measurement error; a backward step no larger than this goes unseen)... */
#define STEP_TOLERANCE_NS 2000
/* ...so a drain must have begun this long after the arrival: more than
 * any step that goes unseen (the tolerance plus the drain's pause). */
#define MARGIN_NS 10000

static int64_t ns_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_REALTIME now, and its distance from CLOCK_MONOTONIC (false: the
 * readings were too far apart to trust). */
static bool read_clocks(int64_t *real_ns, int64_t *offset_ns)
{
    int64_t real = ns_of(CLOCK_REALTIME);
    int64_t mono = ns_of(CLOCK_MONOTONIC);
    int64_t again = ns_of(CLOCK_REALTIME);
    *real_ns = real;
    *offset_ns = real - mono;
    return again - real <= READ_JITTER_NS;
}

void drain_mark_init(drain_mark *m)
{
    atomic_init(&m->seq, 0);
    atomic_init(&m->real_ns, 0);
    atomic_init(&m->offset_ns, 0);
}

drain_start drain_mark_begin(void)
{
    drain_start s;
    if (!read_clocks(&s.real_ns, &s.offset_ns))
        s.real_ns = 0;
    return s;
}

void drain_mark_publish(drain_mark *m, drain_start start)
{
    uint64_t seq = atomic_load_explicit(&m->seq, memory_order_relaxed);
    atomic_store_explicit(&m->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&m->real_ns, start.real_ns, memory_order_relaxed);
    atomic_store_explicit(&m->offset_ns, start.offset_ns, memory_order_relaxed);
    /* Release: whoever reads this sequence number also sees what the
     * drain applied before it (the watches' generations). */
    atomic_store_explicit(&m->seq, seq + 2, memory_order_release);
}

bool drain_mark_covers(drain_mark *m, int64_t arrived_ns)
{
    if (arrived_ns <= 0)
        return false;
    uint64_t seq = atomic_load_explicit(&m->seq, memory_order_acquire);
    if (seq & 1)
        return false; /* a drain is publishing: ask again next time */
    int64_t began = atomic_load_explicit(&m->real_ns, memory_order_relaxed);
    int64_t offset = atomic_load_explicit(&m->offset_ns, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&m->seq, memory_order_relaxed) != seq)
        return false;
    if (began == 0 || arrived_ns > began - MARGIN_NS)
        return false; /* the common "no": cheaper than reading the clocks */
    int64_t now_offset = ns_of(CLOCK_REALTIME) - ns_of(CLOCK_MONOTONIC);
    return now_offset - offset >= -STEP_TOLERANCE_NS;
}
