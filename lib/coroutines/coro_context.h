/*
 * coro_context.h — the machine-level part of the coroutine strategy:
 * stacks and context switches. Internal; see coro_context.c.
 *
 * A context is a saved stack pointer: switching pushes the callee-saved
 * registers on the current stack, stores the stack pointer in `from`, loads
 * `to`'s and pops its registers — no system call, no signal mask (unlike
 * swapcontext). x86-64 and aarch64 have hand-written switches; other
 * machines use ucontext, chosen at build time.
 *
 * Stacks are mmap'ed with a PROT_NONE guard page below them, so an
 * overflow faults at once instead of corrupting a neighbour, and freed
 * stacks are kept in a small per-scheduler cache.
 *
 * Sanitizers: under ASan every switch is announced with the fiber API
 * (__sanitizer_start/finish_switch_fiber), under TSan each context is a
 * TSan fiber (__tsan_switch_to_fiber before every switch), and under
 * Valgrind each stack is registered (VALGRIND_STACK_REGISTER), so all
 * three follow the switches.
 */
#ifndef SOCKSERV_CORO_CONTEXT_H
#define SOCKSERV_CORO_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ss__stack {
    void *mapping; /* what mmap returned (guard page included) */
    size_t mapping_size;
    void *bottom; /* lowest usable address, just above the guard */
    size_t size;  /* usable bytes */
    unsigned valgrind_id;
} ss__stack;

/* Freed stacks kept for reuse (all of one size). Not thread-safe: one
 * cache per scheduler thread. */
typedef struct ss__stack_cache {
    ss__stack *items;
    int count;
    int capacity; /* most stacks kept; more are unmapped */
    size_t size;  /* usable size of the stacks it holds */
} ss__stack_cache;

void ss__stack_cache_init(ss__stack_cache *cache, size_t stack_size,
                          int capacity);
/* Unmap every cached stack. */
void ss__stack_cache_destroy(ss__stack_cache *cache);
/* A stack of cache->size usable bytes (rounded up to pages) with a guard
 * page below. Returns 0 or -ENOMEM (also when vm.max_map_count is
 * reached). */
int ss__stack_alloc(ss__stack_cache *cache, ss__stack *out);
void ss__stack_free(ss__stack_cache *cache, ss__stack *stack);

typedef struct ss__context {
    void *sp;   /* saved stack pointer (asm switch) */
    void *impl; /* ucontext fallback: its ucontext_t */
    /* The stack this context runs on, for the ASan fiber API; NULL/0 for
     * a thread's own stack (ASan then keeps what it knows). */
    const void *stack_bottom;
    size_t stack_size;
    void *asan_fake_stack;
    /* TSan builds: this context's fiber, made by ss__context_make
     * (tsan_fiber_made), or the thread's own, taken on its first switch
     * away. NULL elsewhere. */
    void *tsan_fiber;
    bool tsan_fiber_made;
} ss__context;

/* Prepare ctx to run entry(arg) on stack the first time it is switched
 * to. entry must never return: it ends by switching away for good. ctx
 * must be zeroed, or made or destroyed before (what it holds is reused:
 * the ucontext fallback's save area, the TSan fiber). */
void ss__context_make(ss__context *ctx, ss__stack *stack,
                      void (*entry)(void *arg), void *arg);
/* Save the running context in from, resume to. Returns when something
 * switches back to from. */
void ss__context_switch(ss__context *from, ss__context *to);
/* Release what ss__context_make allocated (the ucontext fallback's save
 * area, the TSan fiber), and a thread's own context's save area. Never
 * for the context that is running. */
void ss__context_destroy(ss__context *ctx);

/* Once, when the coroutine strategy starts: a SIGSEGV handler (SA_ONSTACK,
 * chained to the previous one, never removed) that recognises a fault in
 * the guard page of the coroutine running on the faulting thread, writes
 * "sockserv: coroutine stack overflow (stack size N bytes); raise
 * ss_coroutine_options.stack_size" and dies by SIGSEGV. Also runs
 * ss__coro_thread_init() for the calling thread. 0 or -errno. */
int ss__coro_install_overflow_reporter(void);
/* At the start / end of each scheduler thread: an alternate signal stack
 * (kept if the thread already has one, e.g. under ASan) so the reporter
 * can run after an overflow. */
int ss__coro_thread_init(void);
void ss__coro_thread_fini(void);

#endif
