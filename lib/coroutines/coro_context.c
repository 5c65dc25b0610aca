/*
 * coro_context.c — coroutine stacks (mmap with a guard page, a
 * per-scheduler cache, the overflow reporter) and contexts (the first
 * frame for the assembly switch, or ucontext), with ASan, TSan and
 * Valgrind annotations. The contract is in coro_context.h; the design is
 * in docs/architecture.md ("Coroutines: stacks and context switches").
 */
#include "coro_context.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- Build-time choices -------------------------------------------------- */

#if (defined(SS_CORO_UCONTEXT) && SS_CORO_UCONTEXT) ||                         \
    !(defined(__x86_64__) || defined(__aarch64__))
#define CORO_UCONTEXT 1
#include <ucontext.h>
#else
#define CORO_UCONTEXT 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#endif
#ifndef CORO_ASAN
#define CORO_ASAN 0
#endif
#if CORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define CORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORO_TSAN 1
#endif
#endif
#ifndef CORO_TSAN
#define CORO_TSAN 0
#endif
#if CORO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CORO_VALGRIND 1
#endif
#endif
#ifndef CORO_VALGRIND
#define CORO_VALGRIND 0
#endif

#define CORO_INTERNAL __attribute__((visibility("hidden")))
/* initial-exec: a plain %fs/tpidr_el0-relative access, no __tls_get_addr
 * call in the switch path, and safe to read from a signal handler. */
#define CORO_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* Called from the assembly trampoline only. */
CORO_INTERNAL void ss__coro_start(void (*entry)(void *arg), void *arg)
    __attribute__((noreturn, used));

static void write_all_stderr(const char *text, size_t length)
{
    while (length > 0) {
        ssize_t n = write(STDERR_FILENO, text, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text += n;
        length -= (size_t)n;
    }
}

/* write(2) a fixed message and abort: for states no caller can recover
 * from (an entry that returned, no memory for a fallback context). */
static void coro_fatal(const char *message) __attribute__((noreturn));
static void coro_fatal(const char *message)
{
    write_all_stderr(message, strlen(message));
    abort();
}

/* ---- Stacks -------------------------------------------------------------- */

static size_t page_size(void)
{
    long size = sysconf(_SC_PAGESIZE);
    return size > 0 ? (size_t)size : 4096;
}

static size_t round_to_pages(size_t size)
{
    size_t page = page_size();
    if (size == 0)
        size = page;
    if (size > SIZE_MAX - page)
        return SIZE_MAX - (SIZE_MAX % page) - page;
    return (size + page - 1) / page * page;
}

void ss__stack_cache_init(ss__stack_cache *cache, size_t stack_size,
                          int capacity)
{
    cache->count = 0;
    cache->size = round_to_pages(stack_size);
    cache->capacity = capacity > 0 ? capacity : 0;
    cache->items = NULL;
    if (cache->capacity > 0) {
        cache->items = calloc((size_t)cache->capacity, sizeof(ss__stack));
        if (cache->items == NULL)
            cache->capacity = 0; /* still works, just never caches */
    }
}

static void stack_unmap(ss__stack *stack)
{
#if CORO_VALGRIND
    VALGRIND_STACK_DEREGISTER(stack->valgrind_id);
#endif
#if CORO_ASAN
    /* Frames left on a stack keep their redzones poisoned; do not let the
     * next mapping at this address inherit them. */
    ASAN_UNPOISON_MEMORY_REGION(stack->bottom, stack->size);
#endif
    munmap(stack->mapping, stack->mapping_size);
    memset(stack, 0, sizeof(*stack));
}

void ss__stack_cache_destroy(ss__stack_cache *cache)
{
    for (int i = 0; i < cache->count; i++)
        stack_unmap(&cache->items[i]);
    free(cache->items);
    cache->items = NULL;
    cache->count = 0;
    cache->capacity = 0;
}

int ss__stack_alloc(ss__stack_cache *cache, ss__stack *out)
{
    if (cache->count > 0) {
        *out = cache->items[--cache->count];
        return 0;
    }

    size_t guard = page_size();
    size_t size = cache->size;
    if (size == 0 || size > SIZE_MAX - guard)
        return -ENOMEM;
    /* MAP_NORESERVE: commit no swap for the whole stack up front; pages
     * are backed only when touched. Hitting vm.max_map_count shows up as
     * ENOMEM from mmap or from the mprotect that splits off the guard. */
    void *mapping =
        mmap(NULL, size + guard, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mapping == MAP_FAILED)
        return -ENOMEM;
    if (mprotect(mapping, guard, PROT_NONE) != 0) {
        munmap(mapping, size + guard);
        return -ENOMEM;
    }

    out->mapping = mapping;
    out->mapping_size = size + guard;
    out->bottom = (char *)mapping + guard;
    out->size = size;
    out->valgrind_id = 0;
#if CORO_VALGRIND
    out->valgrind_id =
        VALGRIND_STACK_REGISTER(out->bottom, (char *)out->bottom + size);
#endif
    return 0;
}

void ss__stack_free(ss__stack_cache *cache, ss__stack *stack)
{
    if (stack->mapping == NULL)
        return;
    if (cache->count < cache->capacity && stack->size == cache->size) {
        cache->items[cache->count++] = *stack;
        memset(stack, 0, sizeof(*stack));
        return;
    }
    stack_unmap(stack);
}

/* ---- Overflow reporter --------------------------------------------------- */

/* The coroutine stack the calling thread is running on, NULL on the
 * thread's own stack. Written at every switch, read by the handler. */
static CORO_TLS const char *running_stack_bottom;
static CORO_TLS size_t running_stack_size;
/* Alternate signal stack this module gave the thread (ss__coro_thread_init),
 * so ss__coro_thread_fini frees only its own. */
static CORO_TLS void *thread_signal_stack;

#define SIGNAL_STACK_SIZE (64 * 1024)

static atomic_int reporter_state; /* 0 none, 1 installing, 2 installed */
static struct sigaction previous_segv;
static size_t reporter_guard_size;

/* Async-signal-safe: fixed strings, a hand-made decimal and write(2). */
static void report_overflow(size_t stack_size)
{
    char line[160];
    size_t n = 0;
    const char *head = "sockserv: coroutine stack overflow (stack size ";
    const char *tail = " bytes); raise ss_coroutine_options.stack_size\n";
    char digits[24];
    int d = 0;

    do {
        digits[d++] = (char)('0' + stack_size % 10);
        stack_size /= 10;
    } while (stack_size > 0 && d < (int)sizeof(digits));
    for (const char *p = head; *p; p++)
        line[n++] = *p;
    while (d > 0)
        line[n++] = digits[--d];
    for (const char *p = tail; *p && n < sizeof(line); p++)
        line[n++] = *p;
    write_all_stderr(line, n);
}

static void die_by_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    /* Pending while the handler runs (SIGSEGV is blocked in it); on return
     * it, or the faulting instruction run again, kills the process. */
    raise(sig);
}

static void overflow_handler(int sig, siginfo_t *info, void *ucontext)
{
    int saved_errno = errno;
    const char *bottom = running_stack_bottom;
    /* si_addr means something only for a fault the kernel raised
     * (si_code > 0), not for kill() or raise(). */
    const char *address =
        info != NULL && info->si_code > 0 ? (const char *)info->si_addr : NULL;

    if (bottom != NULL && address != NULL && address < bottom &&
        address >= bottom - reporter_guard_size) {
        report_overflow(running_stack_size);
        die_by_default(sig);
        errno = saved_errno;
        return;
    }

    /* Not ours: behave as if we were never installed. */
    if (previous_segv.sa_flags & SA_SIGINFO) {
        if (previous_segv.sa_sigaction != NULL)
            previous_segv.sa_sigaction(sig, info, ucontext);
    } else if (previous_segv.sa_handler == SIG_DFL) {
        die_by_default(sig);
    } else if (previous_segv.sa_handler != SIG_IGN) {
        previous_segv.sa_handler(sig);
    }
    errno = saved_errno;
}

int ss__coro_install_overflow_reporter(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&reporter_state, &expected, 1)) {
        /* Someone else installs or installed it; wait for them. */
        while (atomic_load(&reporter_state) == 1)
            sched_yield();
        return atomic_load(&reporter_state) == 2 ? 0 : -EAGAIN;
    }

    reporter_guard_size = page_size();
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = overflow_handler;
    /* SA_ONSTACK: the overflowed stack has no room left for the handler;
     * it runs on the thread's alternate stack (ss__coro_thread_init). */
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &previous_segv) != 0) {
        int error = -errno;
        atomic_store(&reporter_state, 0);
        return error;
    }
    atomic_store(&reporter_state, 2);
    return ss__coro_thread_init();
}

int ss__coro_thread_init(void)
{
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && !(current.ss_flags & SS_DISABLE))
        return 0; /* the thread has one (ASan gives every thread its own) */

    void *memory = mmap(NULL, SIGNAL_STACK_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (memory == MAP_FAILED)
        return -ENOMEM;
    stack_t alternate = {
        .ss_sp = memory, .ss_size = SIGNAL_STACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&alternate, NULL) != 0) {
        int error = -errno;
        munmap(memory, SIGNAL_STACK_SIZE);
        return error;
    }
    thread_signal_stack = memory;
    return 0;
}

void ss__coro_thread_fini(void)
{
    if (thread_signal_stack == NULL)
        return;
    stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    munmap(thread_signal_stack, SIGNAL_STACK_SIZE);
    thread_signal_stack = NULL;
}

/* ---- ASan fiber bookkeeping ---------------------------------------------- */

#if CORO_ASAN
/* The context being switched away from, so the one being entered can give
 * it the stack bounds ASan reports (the thread's own context has none
 * until then). */
static CORO_TLS ss__context *asan_switching_from;

static void asan_before_switch(ss__context *from, ss__context *to)
{
    asan_switching_from = from;
    __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack_bottom,
                                   to->stack_size);
}

/* Runs on the stack just entered; fake_stack is its own saved one. */
static void asan_after_switch(void *fake_stack)
{
    const void *old_bottom = NULL;
    size_t old_size = 0;
    __sanitizer_finish_switch_fiber(fake_stack, &old_bottom, &old_size);
    ss__context *from = asan_switching_from;
    if (from != NULL && from->stack_bottom == NULL) {
        from->stack_bottom = old_bottom;
        from->stack_size = old_size;
    }
}
#endif

/* ---- TSan fibers ----------------------------------------------------------
 */

/* Each made context gets a fiber of its own (kept when the context is made
 * again); a thread's own context gets the thread's fiber on its first
 * switch away, which is never destroyed here. */
static void tsan_make(ss__context *ctx)
{
#if CORO_TSAN
    if (!ctx->tsan_fiber_made || ctx->tsan_fiber == NULL) {
        ctx->tsan_fiber = __tsan_create_fiber(0);
        ctx->tsan_fiber_made = true;
    }
#else
    ctx->tsan_fiber = NULL;
    ctx->tsan_fiber_made = false;
#endif
}

/* Immediately before the switch: from here on TSan attributes what runs
 * to `to`'s fiber, and the switch orders `from`'s past before it. */
static inline void tsan_before_switch(ss__context *from, ss__context *to)
{
#if CORO_TSAN
    if (from->tsan_fiber == NULL)
        from->tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#else
    (void)from;
    (void)to;
#endif
}

static void tsan_destroy(ss__context *ctx)
{
#if CORO_TSAN
    if (ctx->tsan_fiber_made && ctx->tsan_fiber != NULL)
        __tsan_destroy_fiber(ctx->tsan_fiber);
#endif
    ctx->tsan_fiber = NULL;
    ctx->tsan_fiber_made = false;
}

/* ---- Entry --------------------------------------------------------------- */

void ss__coro_start(void (*entry)(void *arg), void *arg)
{
#if CORO_ASAN
    asan_after_switch(NULL);
#endif
    entry(arg);
    coro_fatal("sockserv: coroutine entry function returned; it must "
               "switch away for good instead\n");
}

/* ---- Context switch: hand-written ---------------------------------------- */

#if !CORO_UCONTEXT

CORO_INTERNAL void ss__coro_switch(void **save_sp, void *load_sp);
CORO_INTERNAL void ss__coro_trampoline(void);

/* impl of a context made by ss__context_make: marks it as a coroutine (as
 * opposed to a thread's own context) for the overflow reporter. */
static const char made_marker;
#define CONTEXT_MADE ((void *)&made_marker)

void ss__context_make(ss__context *ctx, ss__stack *stack,
                      void (*entry)(void *arg), void *arg)
{
    uintptr_t top = ((uintptr_t)stack->bottom + stack->size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;

#if CORO_ASAN
    ASAN_UNPOISON_MEMORY_REGION(stack->bottom, stack->size);
#endif

#if defined(__x86_64__)
    /* See the frame layout in coro_switch_x86_64.S. */
    uint32_t mxcsr;
    uint16_t fpu_control;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpu_control));
    *--sp = 0; /* padding: the trampoline starts on a 16-aligned rsp */
    *--sp = 0; /* its "return address": NULL, for debuggers */
    *--sp = (uint64_t)(uintptr_t)ss__coro_trampoline;
    *--sp = 0;                          /* rbp: end of the frame chain */
    *--sp = 0;                          /* rbx */
    *--sp = (uint64_t)(uintptr_t)entry; /* r12 */
    *--sp = (uint64_t)(uintptr_t)arg;   /* r13 */
    *--sp = 0;                          /* r14 */
    *--sp = 0;                          /* r15 */
    /* New contexts inherit the creator's floating-point control state, as
     * a new thread does. */
    *--sp = (uint64_t)mxcsr | (uint64_t)fpu_control << 32;
#elif defined(__aarch64__)
    /* See the frame layout in coro_switch_aarch64.S. */
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    sp -= 22; /* 176 bytes */
    memset(sp, 0, 22 * sizeof(*sp));
    sp[0] = (uint64_t)(uintptr_t)entry;                /* x19 */
    sp[1] = (uint64_t)(uintptr_t)arg;                  /* x20 */
    sp[10] = 0;                                        /* x29: end of chain */
    sp[11] = (uint64_t)(uintptr_t)ss__coro_trampoline; /* x30 */
    sp[20] = fpcr;
#endif
    ctx->sp = sp;
    ctx->impl = CONTEXT_MADE;
    ctx->stack_bottom = stack->bottom;
    ctx->stack_size = stack->size;
    ctx->asan_fake_stack = NULL;
    tsan_make(ctx);
}

void ss__context_switch(ss__context *from, ss__context *to)
{
    if (to->impl == CONTEXT_MADE) {
        running_stack_bottom = to->stack_bottom;
        running_stack_size = to->stack_size;
    } else {
        running_stack_bottom = NULL;
    }
#if CORO_ASAN
    asan_before_switch(from, to);
#endif
    tsan_before_switch(from, to);
    ss__coro_switch(&from->sp, to->sp);
#if CORO_ASAN
    asan_after_switch(from->asan_fake_stack);
#endif
}

void ss__context_destroy(ss__context *ctx)
{
    tsan_destroy(ctx);
    ctx->sp = NULL;
    ctx->impl = NULL;
}

/* ---- Context switch: ucontext fallback ----------------------------------- */

#else

/* What ctx->impl points to. A thread's own context gets one on its first
 * switch away (made == 0). */
typedef struct coro_ucontext {
    ucontext_t uc;
    int made;
    void (*entry)(void *arg);
    void *arg;
} coro_ucontext;

/* makecontext passes int arguments only: the pointer goes in two halves. */
static void ucontext_start(unsigned int high, unsigned int low)
{
    uintptr_t bits = ((uintptr_t)high << 16 << 16) | (uintptr_t)low;
    coro_ucontext *impl = (coro_ucontext *)bits;
    ss__coro_start(impl->entry, impl->arg);
}

/* Separate from ss__context_make so that no local changes after
 * getcontext (which returns twice). */
static void prepare_ucontext(coro_ucontext *impl, ss__stack *stack,
                             void (*entry)(void *arg), void *arg)
{
    memset(impl, 0, sizeof(*impl));
    if (getcontext(&impl->uc) != 0)
        coro_fatal("sockserv: getcontext failed\n");
    impl->uc.uc_stack.ss_sp = stack->bottom;
    impl->uc.uc_stack.ss_size = stack->size;
    impl->uc.uc_link = NULL; /* never used: ss__coro_start does not return */
    impl->made = 1;
    impl->entry = entry;
    impl->arg = arg;
    uintptr_t bits = (uintptr_t)impl;
    makecontext(&impl->uc, (void (*)(void))ucontext_start, 2,
                (unsigned int)(bits >> 16 >> 16),
                (unsigned int)(bits & 0xffffffffu));
}

void ss__context_make(ss__context *ctx, ss__stack *stack,
                      void (*entry)(void *arg), void *arg)
{
    coro_ucontext *impl = ctx->impl;
    if (impl == NULL) {
        impl = malloc(sizeof(*impl));
        if (impl == NULL)
            coro_fatal("sockserv: out of memory for a coroutine context\n");
    }
#if CORO_ASAN
    ASAN_UNPOISON_MEMORY_REGION(stack->bottom, stack->size);
#endif
    prepare_ucontext(impl, stack, entry, arg);

    ctx->sp = NULL;
    ctx->impl = impl;
    ctx->stack_bottom = stack->bottom;
    ctx->stack_size = stack->size;
    ctx->asan_fake_stack = NULL;
    tsan_make(ctx);
}

void ss__context_switch(ss__context *from, ss__context *to)
{
    coro_ucontext *mine = from->impl;
    coro_ucontext *theirs = to->impl;
    if (mine == NULL) {
        /* The thread's own context, switching away for the first time. */
        mine = calloc(1, sizeof(*mine));
        if (mine == NULL)
            coro_fatal("sockserv: out of memory for a coroutine context\n");
        from->impl = mine;
    }
    if (theirs != NULL && theirs->made) {
        running_stack_bottom = to->stack_bottom;
        running_stack_size = to->stack_size;
    } else {
        running_stack_bottom = NULL;
    }
#if CORO_ASAN
    asan_before_switch(from, to);
#endif
    tsan_before_switch(from, to);
    if (swapcontext(&mine->uc, &theirs->uc) != 0)
        coro_fatal("sockserv: swapcontext failed\n");
#if CORO_ASAN
    asan_after_switch(from->asan_fake_stack);
#endif
}

void ss__context_destroy(ss__context *ctx)
{
    tsan_destroy(ctx);
    free(ctx->impl);
    ctx->impl = NULL;
    ctx->sp = NULL;
}

#endif
