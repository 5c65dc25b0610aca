/*
 * test_coro_context.c — the machine level of the coroutine strategy:
 * context switches and coroutine stacks (lib/coro_context.h).
 *
 * Built twice: test_coro_context against the library's own objects (the
 * hand-written switch on x86-64 and aarch64) and test_coro_context_ucontext
 * with lib/coro_context.c compiled for the makecontext/swapcontext
 * fallback, so both implementations meet the same contract.
 *
 * The crash tests (stack overflow, an entry that returns) run in a forked
 * child and check how it died and what it wrote to stderr.
 */
#include "coro_context.h"

#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h> /* cmocka.h needs these three first */
#include <cmocka.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "sanitizers.h" /* TEST_UNDER_TSAN */

#define STACK_SIZE (64 * 1024)

/* ---- Ping-pong ----------------------------------------------------------- */

static ss__context main_ctx;

typedef struct pingpong {
    ss__context ctx;
    long value; /* main writes n, the coroutine answers n * 2 + 1 */
    long rounds;
} pingpong;

static void pingpong_entry(void *arg)
{
    pingpong *p = arg;
    for (;;) {
        p->value = p->value * 2 + 1;
        ss__context_switch(&p->ctx, &main_ctx);
    }
}

static void test_ping_pong_passes_values_both_ways(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stack;
    pingpong p = {0};

    ss__stack_cache_init(&cache, STACK_SIZE, 4);
    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    ss__context_make(&p.ctx, &stack, pingpong_entry, &p);

    long rounds = RUNNING_ON_VALGRIND ? 2000 : 100000;
    for (long i = 0; i < rounds; i++) {
        p.value = i;
        ss__context_switch(&main_ctx, &p.ctx);
        assert_true(p.value == i * 2 + 1);
    }

    ss__context_destroy(&p.ctx);
    ss__stack_free(&cache, &stack);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
}

/* ---- Many contexts, round robin ------------------------------------------ */

#define MANY 1000
#define MANY_ROUNDS 5

typedef struct worker {
    ss__context ctx;
    ss__stack stack;
    int id;
    int steps;
    bool done;
} worker;

static int last_step_id;

static void worker_entry(void *arg)
{
    worker *w = arg;
    char scratch[512]; /* some stack use that must survive the switches */
    memset(scratch, w->id & 0xff, sizeof(scratch));
    for (int i = 0; i < MANY_ROUNDS; i++) {
        w->steps++;
        last_step_id = w->id;
        ss__context_switch(&w->ctx, &main_ctx);
        for (size_t j = 0; j < sizeof(scratch); j++)
            if (scratch[j] != (char)(w->id & 0xff))
                w->steps = -1000; /* the main test sees it */
    }
    w->done = true;
    last_step_id = w->id;
    ss__context_switch(&w->ctx, &main_ctx); /* away for good */
}

static void test_thousand_contexts_switch_round_robin(void **state)
{
    (void)state;
    ss__stack_cache cache;
    worker *workers = calloc(MANY, sizeof(*workers));
    assert_non_null(workers);

    ss__stack_cache_init(&cache, STACK_SIZE, 64);
    for (int i = 0; i < MANY; i++) {
        workers[i].id = i;
        assert_int_equal(ss__stack_alloc(&cache, &workers[i].stack), 0);
        ss__context_make(&workers[i].ctx, &workers[i].stack, worker_entry,
                         &workers[i]);
    }
    for (int round = 0; round <= MANY_ROUNDS; round++) {
        for (int i = 0; i < MANY; i++) {
            assert_false(workers[i].done);
            ss__context_switch(&main_ctx, &workers[i].ctx);
            assert_int_equal(last_step_id, i);
            last_step_id = -1;
            if (round < MANY_ROUNDS)
                assert_int_equal(workers[i].steps, round + 1);
        }
    }
    for (int i = 0; i < MANY; i++) {
        assert_true(workers[i].done);
        assert_int_equal(workers[i].steps, MANY_ROUNDS);
        ss__context_destroy(&workers[i].ctx);
        ss__stack_free(&cache, &workers[i].stack);
    }
    assert_int_equal(cache.count, 64);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
    free(workers);
}

/* ---- Callee-saved registers ---------------------------------------------- */

/* Many values live across every switch, integer and floating point: if the
 * switch lost a callee-saved register (or a context's registers leaked into
 * another), the checksums would differ from a run without switches. The
 * seeds are volatile so the compiler cannot fold the loops away. */
static volatile uint64_t seed_a = 0x9e3779b97f4a7c15u;
static volatile uint64_t seed_b = 0xc2b2ae3d27d4eb4fu;
static volatile double seed_x = 1.000001;

#define MIX_ROUNDS 200

typedef struct mixer {
    ss__context ctx;
    ss__context *peer;
    uint64_t result;
} mixer;

/* The same arithmetic with or without a switch in every round. */
static uint64_t mix(ss__context *self, ss__context *peer, uint64_t salt)
{
    uint64_t a = seed_a ^ salt, b = seed_b + salt, c = a * 3, d = b * 5;
    uint64_t e = a ^ b, f = c + d, g = a - d, h = b - c;
    uint64_t i = e * 7, j = f * 11, k = g ^ 0x5555, l = h + 0x1234;
    double x = seed_x + (double)(salt & 7), y = x * 1.5, z = y - 0.25;
    double w = z * x, v = w + y, u = v / 3.0, t = u * 0.5, s = t + x;

    for (int round = 0; round < MIX_ROUNDS; round++) {
        a = a * 6364136223846793005u + b;
        b ^= a >> 13;
        c += b * 3 + a;
        d ^= c << 7;
        e += d ^ (a >> 3);
        f = f * 31 + e;
        g ^= f >> 11;
        h += g * 13;
        i ^= h + round;
        j += i >> 5;
        k = k * 17 + j;
        l ^= k >> 9;
        x = x * 1.0000001 + 1e-9;
        y = y * 0.9999999 + x;
        z = z + y * 1e-6;
        w = w * 1.0000003 - z * 1e-7;
        v = v + w * 1e-5;
        u = u * 0.9999997 + v * 1e-8;
        t = t + u * 1e-4;
        s = s * 1.0000002 + t * 1e-9;
        if (self != NULL)
            ss__context_switch(self, peer);
    }
    uint64_t fp = 0;
    double all[] = {x, y, z, w, v, u, t, s};
    for (size_t n = 0; n < sizeof(all) / sizeof(all[0]); n++) {
        uint64_t bits;
        memcpy(&bits, &all[n], sizeof(bits));
        fp = fp * 1099511628211u ^ bits;
    }
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^ k ^ l ^ fp;
}

static void mixer_entry(void *arg)
{
    mixer *m = arg;
    m->result = mix(&m->ctx, m->peer, 42);
    for (;;)
        ss__context_switch(&m->ctx, m->peer);
}

static void test_callee_saved_registers_survive_switches(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stack;
    mixer m = {.peer = &main_ctx};

    uint64_t expected_coroutine = mix(NULL, NULL, 42);
    uint64_t expected_main = mix(NULL, NULL, 7);

    ss__stack_cache_init(&cache, STACK_SIZE, 1);
    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    ss__context_make(&m.ctx, &stack, mixer_entry, &m);
    /* Each round of the main loop switches to the coroutine, which runs
     * one round of its loop and switches back. */
    uint64_t got_main = mix(&main_ctx, &m.ctx, 7);
    ss__context_switch(&main_ctx, &m.ctx); /* let it finish its last round */

    assert_true(got_main == expected_main);
    assert_true(m.result == expected_coroutine);

    ss__context_destroy(&m.ctx);
    ss__stack_free(&cache, &stack);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
}

/* ---- Floating-point control state ---------------------------------------- */

#if defined(__x86_64__)
static unsigned read_mxcsr(void)
{
    unsigned value;
    __asm__ volatile("stmxcsr %0" : "=m"(value));
    return value;
}

static unsigned read_x87_control(void)
{
    unsigned short value;
    __asm__ volatile("fnstcw %0" : "=m"(value));
    return value;
}
#endif

typedef struct rounding {
    ss__context ctx;
    int seen_after_switch;
} rounding;

static void rounding_entry(void *arg)
{
    rounding *r = arg;
    fesetround(FE_UPWARD);
    ss__context_switch(&r->ctx, &main_ctx);
    r->seen_after_switch = fegetround();
    fesetround(FE_TONEAREST);
    ss__context_switch(&r->ctx, &main_ctx);
    for (;;)
        ss__context_switch(&r->ctx, &main_ctx);
}

static void test_rounding_mode_does_not_leak_between_contexts(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stack;
    rounding r = {0};

    assert_int_equal(fegetround(), FE_TONEAREST);
    ss__stack_cache_init(&cache, STACK_SIZE, 1);
    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    ss__context_make(&r.ctx, &stack, rounding_entry, &r);

#if defined(__x86_64__)
    unsigned mxcsr_before = read_mxcsr();
    unsigned x87_before = read_x87_control();
#endif
    ss__context_switch(&main_ctx, &r.ctx); /* it rounds upward, switches */
    assert_int_equal(fegetround(), FE_TONEAREST);
#if defined(__x86_64__)
    /* Both units: fesetround sets the MXCSR and the x87 control word. */
    assert_int_equal(read_mxcsr(), mxcsr_before);
    assert_int_equal(read_x87_control(), x87_before);
#endif

    fesetround(FE_DOWNWARD);
    ss__context_switch(&main_ctx, &r.ctx);
    assert_int_equal(r.seen_after_switch, FE_UPWARD);
    assert_int_equal(fegetround(), FE_DOWNWARD);
    fesetround(FE_TONEAREST);

    ss__context_destroy(&r.ctx);
    ss__stack_free(&cache, &stack);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
}

/* ---- First entry --------------------------------------------------------- */

typedef struct first {
    ss__context ctx;
    bool ran;
    uintptr_t frame;
    char printed[64];
} first;

static __attribute__((noinline)) uintptr_t frame_address(void)
{
    return (uintptr_t)__builtin_frame_address(0);
}

static void first_entry(void *arg)
{
    first *f = arg;
    f->ran = true;
    f->frame = frame_address();
    /* printf's variadic prologue stores vector registers with aligned
     * moves: it crashes on a misaligned stack. */
    snprintf(f->printed, sizeof(f->printed), "%.2f %Lf", 1.5, 2.0L);
    for (;;)
        ss__context_switch(&f->ctx, &main_ctx);
}

static void test_first_switch_runs_entry_on_aligned_stack(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stack;
    first f = {0};

    ss__stack_cache_init(&cache, STACK_SIZE, 1);
    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    ss__context_make(&f.ctx, &stack, first_entry, &f);
    assert_false(f.ran); /* making runs nothing */
    ss__context_switch(&main_ctx, &f.ctx);
    assert_true(f.ran);
    assert_string_equal(f.printed, "1.50 2.000000");
    /* After a push of the frame pointer (x86-64) or of fp/lr (aarch64), a
     * callee's frame address is 16-aligned exactly when the caller's
     * stack was aligned at the call. */
    assert_int_equal(f.frame % 16, 0);
    assert_true(f.frame > (uintptr_t)stack.bottom);
    assert_true(f.frame < (uintptr_t)stack.bottom + stack.size);

    ss__context_destroy(&f.ctx);
    ss__stack_free(&cache, &stack);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
}

/* ---- Stacks and the cache ------------------------------------------------ */

/* The permissions ("rw-p", "---p") of the mapping that holds all of
 * [start, end), from /proc/self/maps; "" when no one mapping does. Holds,
 * not equals: the kernel merges a stack's mapping with an adjacent one of
 * the same kind (seen under TSan, whose runtime maps memory next to it).
 * Asking the kernel this way touches nothing, so it is fine under
 * Valgrind too. */
static void mapping_permissions(const void *start, const void *end,
                                char perms[8])
{
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    perms[0] = '\0';
    while (fgets(line, sizeof(line), maps)) {
        unsigned long lo, hi;
        char found[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, found) == 3 &&
            lo <= (unsigned long)start && (unsigned long)end <= hi)
            strcpy(perms, found);
    }
    fclose(maps);
}

static void test_stack_has_guard_page_and_rounded_size(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stack;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    ss__stack_cache_init(&cache, 10000, 0);
    assert_int_equal(cache.size % page, 0);
    assert_true(cache.size >= 10000);
    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    assert_int_equal(stack.size, cache.size);
    assert_ptr_equal((char *)stack.mapping + page, stack.bottom);
    assert_int_equal(stack.mapping_size, stack.size + page);
    /* Every usable byte is writable; the page below is a separate
     * inaccessible mapping. */
    memset(stack.bottom, 0xab, stack.size);
    char perms[8];
    mapping_permissions(stack.mapping, stack.bottom, perms);
    assert_string_equal(perms, "---p");
    mapping_permissions(stack.bottom, (char *)stack.bottom + stack.size, perms);
    assert_string_equal(perms, "rw-p");

    ss__stack_free(&cache, &stack); /* capacity 0: unmapped at once */
    assert_int_equal(cache.count, 0);
    ss__stack_cache_destroy(&cache);
}

static void test_stack_cache_reuses_freed_stacks_up_to_capacity(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stacks[5];

    ss__stack_cache_init(&cache, STACK_SIZE, 3);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ss__stack_alloc(&cache, &stacks[i]), 0);
    void *third = stacks[2].mapping;
    void *fourth = stacks[3].mapping;
    void *fourth_bottom = stacks[3].bottom;

    /* Freed into the cache until it holds capacity stacks... */
    ss__stack_free(&cache, &stacks[0]);
    ss__stack_free(&cache, &stacks[1]);
    ss__stack_free(&cache, &stacks[2]);
    assert_int_equal(cache.count, 3);
    assert_null(stacks[2].mapping); /* the caller's copy is cleared */
    /* ...then unmapped. */
    ss__stack_free(&cache, &stacks[3]);
    assert_int_equal(cache.count, 3);
    char perms[8];
    mapping_permissions(fourth, fourth_bottom, perms);
    assert_string_equal(perms, ""); /* its guard page is gone */

    /* The last stack freed is the first reused (warm in cache). */
    ss__stack again;
    assert_int_equal(ss__stack_alloc(&cache, &again), 0);
    assert_ptr_equal(again.mapping, third);
    assert_int_equal(cache.count, 2);
    memset(again.bottom, 1, again.size); /* still fully usable */

    ss__stack_free(&cache, &again);
    ss__stack_free(&cache, &stacks[4]);
    assert_int_equal(cache.count, 3);
    ss__stack_cache_destroy(&cache);
    assert_int_equal(cache.count, 0);
}

/* A coroutine that switched away for good in the middle of a deep frame
 * leaves that frame on its stack; a new coroutine on the same (cached)
 * stack must run cleanly — under ASan this proves the stale redzones are
 * cleared. */
typedef struct reuse {
    ss__context ctx;
    int sum;
} reuse;

static __attribute__((noinline)) void leave_deep_frame(reuse *r)
{
    volatile char buffer[3000];
    for (size_t i = 0; i < sizeof(buffer); i += 64)
        buffer[i] = (char)i;
    ss__context_switch(&r->ctx, &main_ctx); /* away for good, mid-frame */
}

static void abandoning_entry(void *arg)
{
    leave_deep_frame(arg);
    abort(); /* never resumed */
}

static void summing_entry(void *arg)
{
    reuse *r = arg;
    char data[6000];
    memset(data, 1, sizeof(data));
    for (size_t i = 0; i < sizeof(data); i++)
        r->sum += data[i];
    for (;;)
        ss__context_switch(&r->ctx, &main_ctx);
}

static void test_reused_stack_runs_a_new_coroutine_cleanly(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stack;
    reuse abandoned = {0}, second = {0};

    ss__stack_cache_init(&cache, STACK_SIZE, 1);
    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    void *mapping = stack.mapping;
    ss__context_make(&abandoned.ctx, &stack, abandoning_entry, &abandoned);
    ss__context_switch(&main_ctx, &abandoned.ctx);
    ss__context_destroy(&abandoned.ctx);
    ss__stack_free(&cache, &stack);

    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    assert_ptr_equal(stack.mapping, mapping);
    ss__context_make(&second.ctx, &stack, summing_entry, &second);
    ss__context_switch(&main_ctx, &second.ctx);
    assert_int_equal(second.sum, 6000);

    ss__context_destroy(&second.ctx);
    ss__stack_free(&cache, &stack);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
}

/* Allocating until the kernel refuses gives -ENOMEM, not a crash: each
 * stack is two mappings, so vm.max_map_count (65530 by default) allows
 * about 32,000. Bounded at 40,000. */
static void test_stack_alloc_reports_enomem_at_map_count_limit(void **state)
{
    (void)state;
    if (RUNNING_ON_VALGRIND) {
        skip(); /* Valgrind has its own, lower, limit on mappings */
        return;
    }
    if (TEST_UNDER_TSAN) {
        /* TSan's runtime maps and splits memory of its own on every
         * munmap and malloc; at the limit it cannot, and aborts. */
        skip();
        return;
    }
    enum { CAP = 40000 };
    ss__stack_cache cache;
    ss__stack *stacks = calloc(CAP, sizeof(*stacks));
    assert_non_null(stacks);
    int n = 0, rc = 0;

    ss__stack_cache_init(&cache, STACK_SIZE, 0);
    while (n < CAP && (rc = ss__stack_alloc(&cache, &stacks[n])) == 0)
        n++;
    /* Give everything back before anything else may need a mapping (under
     * ASan, even malloc can). */
    for (int i = 0; i < n; i++)
        ss__stack_free(&cache, &stacks[i]);
    ss__stack_cache_destroy(&cache);

    long max_map_count = -1;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max_map_count) != 1)
            max_map_count = -1;
        fclose(f);
    }
    print_message("allocated %d stacks of %d KiB before %s "
                  "(vm.max_map_count = %ld)\n",
                  n, STACK_SIZE / 1024, n < CAP ? "-ENOMEM" : "the cap",
                  max_map_count);
    if (n < CAP)
        assert_int_equal(rc, -ENOMEM);
    if (max_map_count > 0 && max_map_count / 2 < CAP)
        assert_true(n < CAP);

    /* Everything was given back: allocation works again. */
    assert_int_equal(ss__stack_alloc(&cache, &stacks[0]), 0);
    ss__stack_free(&cache, &stacks[0]);
    free(stacks);
}

/* ---- Crashes, in a child process ----------------------------------------- */

/* Runs child() in a forked process with stderr captured; returns its wait
 * status and what it wrote. */
static int run_in_child(void (*child)(void), char *output, size_t size)
{
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipe_fds[0]);
        dup2(pipe_fds[1], STDERR_FILENO);
        child();
        _exit(0); /* child() was expected to die */
    }
    close(pipe_fds[1]);
    size_t used = 0;
    ssize_t n;
    while (used + 1 < size &&
           (n = read(pipe_fds[0], output + used, size - 1 - used)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        used += (size_t)n;
    }
    output[used] = '\0';
    close(pipe_fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    print_message("child %s %d; its stderr:\n%s",
                  WIFSIGNALED(status) ? "died by signal" : "exited with",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                  output);
    return status;
}

static ss__context crash_ctx;

static volatile int recursion_limit = 1 << 30; /* never reached */

static __attribute__((noinline)) int recurse(int depth)
{
    volatile char frame[256];
    if (depth > recursion_limit)
        return 0;
    frame[0] = (char)depth;
    frame[255] = (char)depth;
    return recurse(depth + 1) + frame[0] + frame[255];
}

static void overflowing_entry(void *arg)
{
    (void)arg;
    recurse(0);
}

static void overflow_child(void)
{
    ss__stack_cache cache;
    ss__stack stack;
    if (ss__coro_install_overflow_reporter() != 0)
        _exit(3);
    ss__stack_cache_init(&cache, STACK_SIZE, 0);
    if (ss__stack_alloc(&cache, &stack) != 0)
        _exit(4);
    ss__context_make(&crash_ctx, &stack, overflowing_entry, NULL);
    ss__context_switch(&main_ctx, &crash_ctx);
}

static void test_stack_overflow_dies_by_sigsegv_naming_the_cause(void **state)
{
    (void)state;
    char output[4096];
    int status = run_in_child(overflow_child, output, sizeof(output));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    assert_non_null(strstr(output, "sockserv: coroutine stack overflow "
                                   "(stack size 65536 bytes); raise "
                                   "ss_coroutine_options.stack_size"));
}

/* Without the reporter a guard-page fault is still a plain SIGSEGV, never
 * silent corruption. */
static void overflow_child_without_reporter(void)
{
    ss__stack_cache cache;
    ss__stack stack;
    ss__stack_cache_init(&cache, STACK_SIZE, 0);
    if (ss__stack_alloc(&cache, &stack) != 0)
        _exit(4);
    ss__context_make(&crash_ctx, &stack, overflowing_entry, NULL);
    ss__context_switch(&main_ctx, &crash_ctx);
}

static void test_stack_overflow_without_reporter_still_faults(void **state)
{
    (void)state;
    char output[4096];
    int status =
        run_in_child(overflow_child_without_reporter, output, sizeof(output));
    /* Under ASan, its own SIGSEGV handler reports the fault and exits. */
    if (WIFEXITED(status) && strstr(output, "AddressSanitizer") != NULL)
        return;
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* Other faults go to the handler that was there before. */
static void chained_handler(int sig)
{
    (void)sig;
    static const char text[] = "previous handler ran\n";
    ssize_t ignored = write(STDERR_FILENO, text, sizeof(text) - 1);
    (void)ignored;
    _exit(7);
}

static void unrelated_fault_child(void)
{
    signal(SIGSEGV, chained_handler);
    if (ss__coro_install_overflow_reporter() != 0)
        _exit(3);
    raise(SIGSEGV);
}

static void test_overflow_reporter_chains_other_faults(void **state)
{
    (void)state;
    char output[4096];
    int status = run_in_child(unrelated_fault_child, output, sizeof(output));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
    assert_non_null(strstr(output, "previous handler ran"));
    assert_null(strstr(output, "stack overflow"));
}

static void returning_entry(void *arg)
{
    (void)arg;
}

static void returning_child(void)
{
    ss__stack_cache cache;
    ss__stack stack;
    ss__stack_cache_init(&cache, STACK_SIZE, 0);
    if (ss__stack_alloc(&cache, &stack) != 0)
        _exit(4);
    ss__context_make(&crash_ctx, &stack, returning_entry, NULL);
    ss__context_switch(&main_ctx, &crash_ctx);
}

static void test_entry_that_returns_aborts_with_message(void **state)
{
    (void)state;
    char output[4096];
    int status = run_in_child(returning_child, output, sizeof(output));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(output, "coroutine entry function returned"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_pong_passes_values_both_ways),
        cmocka_unit_test(test_thousand_contexts_switch_round_robin),
        cmocka_unit_test(test_callee_saved_registers_survive_switches),
        cmocka_unit_test(test_rounding_mode_does_not_leak_between_contexts),
        cmocka_unit_test(test_first_switch_runs_entry_on_aligned_stack),
        cmocka_unit_test(test_stack_has_guard_page_and_rounded_size),
        cmocka_unit_test(test_stack_cache_reuses_freed_stacks_up_to_capacity),
        cmocka_unit_test(test_reused_stack_runs_a_new_coroutine_cleanly),
        cmocka_unit_test(test_stack_alloc_reports_enomem_at_map_count_limit),
        cmocka_unit_test(test_stack_overflow_dies_by_sigsegv_naming_the_cause),
        cmocka_unit_test(test_stack_overflow_without_reporter_still_faults),
        cmocka_unit_test(test_overflow_reporter_chains_other_faults),
        cmocka_unit_test(test_entry_that_returns_aborts_with_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
