/*
 * test_coro_switch.c — the context switch itself, register by register,
 * and the sanitizer bookkeeping around it (lib/coro_context.h).
 *
 * test_coro_context.c checks the switch through C code, which proves
 * little when the compiler keeps its values in memory (-O0) or in
 * registers the switch happens to keep. Here an assembly helper loads a
 * known value into every register the ABI says survives a call (x86-64:
 * rbx, rbp, r12-r15; aarch64: x19-x28, d8-d15), calls
 * ss__context_switch, and stores what it finds when it is resumed, along
 * with the stack pointer and, on aarch64, the frame pointer. Both sides
 * of the switch do this with values of their own, so a register that is
 * lost, or that leaks from one context into the other, shows. Elsewhere
 * (the ucontext fallback on other machines) the register test is skipped.
 *
 * The last test runs many short coroutines that each leave for good from
 * a deep frame, as every coroutine of the strategy does. Under TSan
 * without lib/coro_context.c's fiber annotations that crashes within a
 * few ten thousand coroutines: the thread's shadow call stack only ever
 * grows.
 */
#include "coro_context.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h> /* cmocka.h needs these three first */
#include <cmocka.h>

#define STACK_SIZE (64 * 1024)

static ss__context main_ctx;

/* ---- Every callee-saved register ----------------------------------------- */

/*
 * void regs_switch(ss__context *from, ss__context *to,
 *                  const uint64_t *in, uint64_t *out);
 * Saves the caller's callee-saved registers, loads in[0..REGS) into the
 * callee-saved registers, calls ss__context_switch(from, to) and, once
 * resumed, stores the same registers to out[0..REGS), then
 * out[SP_AFTER] = the stack pointer, out[FP_AFTER] = the frame pointer
 * (aarch64; on x86-64 rbp is among the checked registers), and
 * out[SP_BEFORE] = the stack pointer at the call. Restores the caller's
 * registers and returns.
 */
void regs_switch(ss__context *from, ss__context *to, const uint64_t *in,
                 uint64_t *out) __attribute__((visibility("hidden")));

#if defined(__x86_64__) && !(defined(SS_CORO_UCONTEXT) && SS_CORO_UCONTEXT)
#define HAVE_REGS_SWITCH 1
/* rbx rbp r12 r13 r14 r15 */
#define REGS 6
#define SP_AFTER 6
#define FP_AFTER 7 /* unused: rbp is checked as register 1 */
#define SP_BEFORE 8
__asm__(".text\n"
        ".globl regs_switch\n"
        ".hidden regs_switch\n"
        ".type regs_switch, @function\n"
        ".p2align 4\n"
        "regs_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    pushq %rcx\n" /* out; rsp is 16-aligned from here */
        "    movq %rsp, 64(%rcx)\n"
        "    movq 0(%rdx), %rbx\n"
        "    movq 8(%rdx), %rbp\n"
        "    movq 16(%rdx), %r12\n"
        "    movq 24(%rdx), %r13\n"
        "    movq 32(%rdx), %r14\n"
        "    movq 40(%rdx), %r15\n"
        "    call ss__context_switch@PLT\n" /* rdi, rsi: from, to */
        "    movq (%rsp), %rcx\n"
        "    movq %rbx, 0(%rcx)\n"
        "    movq %rbp, 8(%rcx)\n"
        "    movq %r12, 16(%rcx)\n"
        "    movq %r13, 24(%rcx)\n"
        "    movq %r14, 32(%rcx)\n"
        "    movq %r15, 40(%rcx)\n"
        "    movq %rsp, 48(%rcx)\n"
        "    popq %rcx\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size regs_switch, .-regs_switch\n");
#elif defined(__aarch64__) && !(defined(SS_CORO_UCONTEXT) && SS_CORO_UCONTEXT)
#define HAVE_REGS_SWITCH 1
/* x19-x28, then d8-d15 */
#define REGS 18
#define SP_AFTER 18
#define FP_AFTER 19
#define SP_BEFORE 20
__asm__(".text\n"
        ".globl regs_switch\n"
        ".hidden regs_switch\n"
        ".type regs_switch, %function\n"
        ".p2align 4\n"
        "regs_switch:\n"
        "    stp x29, x30, [sp, #-176]!\n"
        "    mov x29, sp\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x3, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x3, #160]\n" /* out[SP_BEFORE] */
        "    ldp x19, x20, [x2, #0]\n"
        "    ldp x21, x22, [x2, #16]\n"
        "    ldp x23, x24, [x2, #32]\n"
        "    ldp x25, x26, [x2, #48]\n"
        "    ldp x27, x28, [x2, #64]\n"
        "    ldp d8, d9, [x2, #80]\n"
        "    ldp d10, d11, [x2, #96]\n"
        "    ldp d12, d13, [x2, #112]\n"
        "    ldp d14, d15, [x2, #128]\n"
        "    bl ss__context_switch\n" /* x0, x1: from, to */
        "    ldr x3, [sp, #160]\n"
        "    stp x19, x20, [x3, #0]\n"
        "    stp x21, x22, [x3, #16]\n"
        "    stp x23, x24, [x3, #32]\n"
        "    stp x25, x26, [x3, #48]\n"
        "    stp x27, x28, [x3, #64]\n"
        "    stp d8, d9, [x3, #80]\n"
        "    stp d10, d11, [x3, #96]\n"
        "    stp d12, d13, [x3, #112]\n"
        "    stp d14, d15, [x3, #128]\n"
        "    mov x9, sp\n"
        "    stp x9, x29, [x3, #144]\n" /* out[SP_AFTER], out[FP_AFTER] */
        "    ldp x19, x20, [sp, #16]\n"
        "    ldp x21, x22, [sp, #32]\n"
        "    ldp x23, x24, [sp, #48]\n"
        "    ldp x25, x26, [sp, #64]\n"
        "    ldp x27, x28, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldp x29, x30, [sp], #176\n"
        "    ret\n"
        ".size regs_switch, .-regs_switch\n");
#else
#define HAVE_REGS_SWITCH 0
#define REGS 1
#define SP_AFTER 1
#define FP_AFTER 2
#define SP_BEFORE 3
#endif

#define OUT_SLOTS (SP_BEFORE + 1)
#define ROUNDS 4

/* A value no register holds by chance, different for every side, round
 * and register. */
static uint64_t pattern(int side, int round, int reg)
{
    return UINT64_C(0xa5c3000000000000) ^ (uint64_t)side << 40 ^
           (uint64_t)round << 32 ^ (uint64_t)(reg + 1) * UINT64_C(0x01010101);
}

typedef struct regs_coroutine {
    ss__context ctx;
    uint64_t in[ROUNDS][REGS];
    uint64_t out[ROUNDS][OUT_SLOTS];
    bool done;
} regs_coroutine;

static void regs_entry(void *arg)
{
    regs_coroutine *co = arg;
    for (int round = 0; round < ROUNDS; round++)
        regs_switch(&co->ctx, &main_ctx, co->in[round], co->out[round]);
    co->done = true;
    for (;;)
        ss__context_switch(&co->ctx, &main_ctx);
}

static void check_round(const char *side, int round, const uint64_t *in,
                        const uint64_t *out)
{
    for (int reg = 0; reg < REGS; reg++) {
        if (out[reg] != in[reg])
            print_error("%s, round %d: callee-saved register %d is %#llx, "
                        "expected %#llx\n",
                        side, round, reg, (unsigned long long)out[reg],
                        (unsigned long long)in[reg]);
        assert_true(out[reg] == in[reg]);
    }
    assert_true(out[SP_AFTER] == out[SP_BEFORE]);
    assert_int_equal(out[SP_BEFORE] % 16, 0);
#if defined(__aarch64__)
    assert_true(out[FP_AFTER] == out[SP_BEFORE]); /* x29 = sp at the call */
#endif
}

static void test_every_callee_saved_register_survives_switches(void **state)
{
    (void)state;
    if (!HAVE_REGS_SWITCH) {
        skip(); /* the ucontext fallback: swapcontext's business */
        return;
    }
    ss__stack_cache cache;
    ss__stack stack;
    static regs_coroutine co;
    uint64_t in[ROUNDS][REGS], out[ROUNDS][OUT_SLOTS];

    memset(&co, 0, sizeof(co));
    memset(out, 0, sizeof(out));
    for (int round = 0; round < ROUNDS; round++) {
        for (int reg = 0; reg < REGS; reg++) {
            in[round][reg] = pattern(1, round, reg);
            co.in[round][reg] = pattern(2, round, reg);
        }
    }
    ss__stack_cache_init(&cache, STACK_SIZE, 1);
    assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
    ss__context_make(&co.ctx, &stack, regs_entry, &co);

    /* Each round switches to the coroutine, which loads its own values
     * and switches back: both sides must find theirs. */
    for (int round = 0; round < ROUNDS; round++)
        regs_switch(&main_ctx, &co.ctx, in[round], out[round]);
    ss__context_switch(&main_ctx, &co.ctx); /* its last round returns */
    assert_true(co.done);

    for (int round = 0; round < ROUNDS; round++) {
        check_round("main", round, in[round], out[round]);
        check_round("coroutine", round, co.in[round], co.out[round]);
    }
    /* The coroutine ran on its own stack. */
    assert_true(co.out[0][SP_BEFORE] > (uint64_t)(uintptr_t)stack.bottom);
    assert_true(co.out[0][SP_BEFORE] <
                (uint64_t)(uintptr_t)stack.bottom + stack.size);

    ss__context_destroy(&co.ctx);
    ss__stack_free(&cache, &stack);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
}

/* ---- Many coroutines that leave from deep frames ------------------------- */

#define SHORT_LIVED 100000
#define DEPTH 8

static ss__context short_ctx;
static long short_ran;

static __attribute__((noinline)) void leave_from_depth(int depth)
{
    if (depth > 0) {
        leave_from_depth(depth - 1);
        __asm__ volatile("" ::: "memory"); /* not a tail call */
        return;
    }
    short_ran++;
    ss__context_switch(&short_ctx, &main_ctx); /* away for good */
}

static void short_entry(void *arg)
{
    (void)arg;
    leave_from_depth(DEPTH);
}

static void test_many_coroutines_leave_for_good_from_deep_frames(void **state)
{
    (void)state;
    ss__stack_cache cache;
    ss__stack stack;

    short_ran = 0;
    ss__stack_cache_init(&cache, STACK_SIZE, 1);
    for (long i = 0; i < SHORT_LIVED; i++) {
        assert_int_equal(ss__stack_alloc(&cache, &stack), 0);
        ss__context_make(&short_ctx, &stack, short_entry, NULL);
        ss__context_switch(&main_ctx, &short_ctx);
        ss__context_destroy(&short_ctx);
        ss__stack_free(&cache, &stack);
    }
    assert_int_equal(short_ran, SHORT_LIVED);
    ss__stack_cache_destroy(&cache);
    ss__context_destroy(&main_ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_callee_saved_register_survives_switches),
        cmocka_unit_test(test_many_coroutines_leave_for_good_from_deep_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
