/*
 * fault.c — the counters behind test-only fault injection (see fault.h).
 *
 * Lock-free on purpose: a forked child (a prefork worker, a forking
 * request child) inherits these counters and may hit them, and a mutex
 * some other thread held at fork() time would never be released there.
 */
#include "fault.h"

#define FAULT_KINDS 4

atomic_uint ss__fault_armed;

static struct {
    atomic_int skip;   /* calls still to let through */
    atomic_int count;  /* calls still to fail; < 0: all of them */
    atomic_int failed; /* calls failed since armed */
} faults[FAULT_KINDS];

static int index_of(unsigned kind)
{
    for (int i = 0; i < FAULT_KINDS; i++)
        if (kind == 1u << i)
            return i;
    return -1;
}

void ss__fault_arm(unsigned kind, int skip, int count)
{
    int i = index_of(kind);
    if (i < 0)
        return;
    atomic_fetch_and(&ss__fault_armed, ~kind);
    atomic_store(&faults[i].skip, skip > 0 ? skip : 0);
    atomic_store(&faults[i].count, count);
    atomic_store(&faults[i].failed, 0);
    if (count != 0)
        atomic_fetch_or(&ss__fault_armed, kind);
}

void ss__fault_disarm_all(void)
{
    atomic_store(&ss__fault_armed, 0);
    for (int i = 0; i < FAULT_KINDS; i++) {
        atomic_store(&faults[i].skip, 0);
        atomic_store(&faults[i].count, 0);
    }
}

int ss__fault_failures(unsigned kind)
{
    int i = index_of(kind);
    return i < 0 ? 0 : atomic_load(&faults[i].failed);
}

bool ss__fault_hit(unsigned kind)
{
    int i = index_of(kind);
    if (i < 0)
        return false;
    int skip = atomic_load(&faults[i].skip);
    while (skip > 0)
        if (atomic_compare_exchange_weak(&faults[i].skip, &skip, skip - 1))
            return false;
    int count = atomic_load(&faults[i].count);
    for (;;) {
        if (count == 0)
            return false;
        if (count < 0)
            break;
        if (atomic_compare_exchange_weak(&faults[i].count, &count, count - 1)) {
            if (count == 1)
                atomic_fetch_and(&ss__fault_armed, ~kind);
            break;
        }
    }
    atomic_fetch_add(&faults[i].failed, 1);
    return true;
}
