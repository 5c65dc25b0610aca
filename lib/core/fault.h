/*
 * fault.h — test-only fault injection: make the library's own calls to
 * pthread_create(), fork(), the request allocation and the coroutine stack
 * allocation fail on demand, so tests can prove what the server does when
 * the system says no (refuse, report through handle_error, keep serving,
 * leak nothing).
 *
 * Internal (ss__, hidden visibility): the shared library does not export
 * it; the tests link the static library and include this header from
 * lib/. Compiled in always, because it costs one relaxed atomic load per
 * site while nothing is armed — and no build option can then make the
 * tested library differ from the shipped one.
 *
 * Process-wide on purpose (it models the system running short, which is
 * process-wide too), and inherited across fork(): arming before a prefork
 * server starts makes each worker fail on its own.
 */
#ifndef SOCKSERV_FAULT_H
#define SOCKSERV_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>

enum {
    SS_FAULT_THREAD_CREATE = 1u << 0, /* request threads, pool workers:
                                         EAGAIN */
    SS_FAULT_FORK = 1u << 1,          /* forking children, prefork
                                         workers: EAGAIN */
    SS_FAULT_ALLOC = 1u << 2,         /* a new request's memory: ENOMEM */
    SS_FAULT_STACK = 1u << 3,         /* a coroutine's stack: ENOMEM */
};

/* Bit set of armed kinds. Read with one relaxed load at every site. */
extern atomic_uint ss__fault_armed;

/* Arm one kind: let the next `skip` calls through, then fail the `count`
 * calls after them (count < 0: every call until disarmed). Re-arming
 * replaces the previous setting of that kind. */
void ss__fault_arm(unsigned kind, int skip, int count);
/* Disarm every kind. */
void ss__fault_disarm_all(void);
/* How many calls of this kind were made to fail since it was armed. */
int ss__fault_failures(unsigned kind);

/* The slow path, only taken while the kind is armed. */
bool ss__fault_hit(unsigned kind);

/* At an injection site: should this call fail? */
static inline bool ss__fault_should_fail(unsigned kind)
{
    return (atomic_load_explicit(&ss__fault_armed, memory_order_relaxed) &
            kind) != 0 &&
           ss__fault_hit(kind);
}

#endif
