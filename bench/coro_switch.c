/*
 * coro_switch.c — coro-switch-bench: what a coroutine context switch costs,
 * and how many coroutine stacks fit in one process.
 *
 *   coro-switch-bench [SWITCHES]      (default 10,000,000)
 *
 * 1. Two contexts ping-pong SWITCHES times through ss__context_switch
 *    (lib/coro_context.c, as the library was built: the hand-written switch,
 *    or ucontext with -DSOCKSERV_CORO_UCONTEXT=ON); a round trip is two
 *    switches, so ns/switch = round-trip time / 2. Best of 5 runs, since
 *    the machine is shared and a run can only be slowed down, not sped up.
 * 2. The same with glibc's swapcontext directly, as a yardstick: it also
 *    saves and restores the signal mask, a system call per switch.
 * 3. Allocates 64 KiB stacks (guard page included) until -ENOMEM, at most
 *    40,000, reports the count against vm.max_map_count, frees them.
 */
#include "coro_context.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ---- ss__context_switch -------------------------------------------------- */

static ss__context main_ctx, coro_ctx;
static volatile long bounces;

static void bounce(void *arg)
{
    (void)arg;
    for (;;) {
        bounces++;
        ss__context_switch(&coro_ctx, &main_ctx);
    }
}

static double measure_library(long round_trips)
{
    double start = now_ns();
    for (long i = 0; i < round_trips; i++)
        ss__context_switch(&main_ctx, &coro_ctx);
    return (now_ns() - start) / (double)(round_trips * 2);
}

/* ---- glibc swapcontext --------------------------------------------------- */

static ucontext_t main_uc, coro_uc;

static void uc_bounce(void)
{
    for (;;) {
        bounces++;
        swapcontext(&coro_uc, &main_uc);
    }
}

static double measure_swapcontext(long round_trips)
{
    double start = now_ns();
    for (long i = 0; i < round_trips; i++)
        swapcontext(&main_uc, &coro_uc);
    return (now_ns() - start) / (double)(round_trips * 2);
}

/* ---- Stacks under vm.max_map_count --------------------------------------- */

static void measure_stacks(void)
{
    enum { CAP = 40000, SIZE = 64 * 1024 };
    ss__stack_cache cache;
    ss__stack *stacks = calloc(CAP, sizeof(*stacks));
    if (stacks == NULL) {
        perror("calloc");
        return;
    }
    ss__stack_cache_init(&cache, SIZE, 0);
    int n = 0, rc = 0;
    double start = now_ns();
    while (n < CAP && (rc = ss__stack_alloc(&cache, &stacks[n])) == 0)
        n++;
    double took = now_ns() - start;
    /* Give everything back before printing: stdio (and, under ASan,
     * malloc) may need a mapping of its own. */
    for (int i = 0; i < n; i++)
        ss__stack_free(&cache, &stacks[i]);
    ss__stack_cache_destroy(&cache);
    free(stacks);

    long max_map_count = -1;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max_map_count) != 1)
            max_map_count = -1;
        fclose(f);
    }
    printf("stacks: %d concurrent %d KiB stacks (+ guard page) before %s; "
           "vm.max_map_count = %ld; %.1f us per mmap+mprotect\n",
           n, SIZE / 1024,
           n < CAP ? (rc == -ENOMEM ? "-ENOMEM" : "error") : "the cap",
           max_map_count, n > 0 ? took / n / 1000.0 : 0.0);
}

int main(int argc, char **argv)
{
    long switches = argc > 1 ? atol(argv[1]) : 10000000L;
    if (switches < 2) {
        fprintf(stderr, "usage: %s [SWITCHES >= 2]\n", argv[0]);
        return 2;
    }
    long round_trips = switches / 2;

    ss__stack_cache cache;
    ss__stack stack;
    ss__stack_cache_init(&cache, 64 * 1024, 1);
    if (ss__stack_alloc(&cache, &stack) != 0) {
        fprintf(stderr, "cannot allocate a stack\n");
        return 1;
    }
    ss__context_make(&coro_ctx, &stack, bounce, NULL);
    measure_library(round_trips / 10 + 1); /* warm up */
    double best = 1e18;
    for (int run = 0; run < 5; run++) {
        double ns = measure_library(round_trips);
        if (ns < best)
            best = ns;
    }
    printf("ss__context_switch: %.2f ns per switch (best of 5 x %ld "
           "switches)\n",
           best, round_trips * 2);

    static char uc_stack[64 * 1024];
    getcontext(&coro_uc);
    coro_uc.uc_stack.ss_sp = uc_stack;
    coro_uc.uc_stack.ss_size = sizeof(uc_stack);
    coro_uc.uc_link = NULL;
    makecontext(&coro_uc, uc_bounce, 0);
    long uc_round_trips = round_trips / 10 + 1; /* much slower */
    double uc_best = 1e18;
    for (int run = 0; run < 3; run++) {
        double ns = measure_swapcontext(uc_round_trips);
        if (ns < uc_best)
            uc_best = ns;
    }
    printf("glibc swapcontext:  %.2f ns per switch (best of 3 x %ld "
           "switches)\n",
           uc_best, uc_round_trips * 2);

    ss__context_destroy(&coro_ctx);
    ss__context_destroy(&main_ctx);
    ss__stack_free(&cache, &stack);
    ss__stack_cache_destroy(&cache);

    measure_stacks();
    return 0;
}
