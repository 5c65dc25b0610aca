/*
 * coro_switch_aarch64.S — the coroutine context switch for aarch64
 * (AAPCS64), and the trampoline a fresh context starts in. See
 * coro_context.c for the C side and coro_context.h for the contract.
 *
 * A switch is an ordinary function call, so the compiler has already saved
 * every caller-saved register it still needs (x0–x18, v0–v7 and v16–v31,
 * and the upper halves of v8–v15). What the ABI says survives a call, and
 * so what we must keep per context, is:
 *   x19–x28         callee-saved general registers
 *   x29 (fp)        frame pointer
 *   x30 (lr)        where this context resumes
 *   d8–d15          low 64 bits of v8–v15
 *   sp              stored in *save_sp
 *   FPCR            rounding mode, flush-to-zero (as MXCSR on x86-64)
 * They are stored on the running stack, so a context is just its saved
 * stack pointer. No system call, no signal mask (unlike swapcontext).
 *
 * Frame left on a suspended stack (176 bytes, keeps sp 16-aligned):
 *   +0  x19 x20  +16 x21 x22  +32 x23 x24  +48 x25 x26  +64 x27 x28
 *   +80 x29 x30  +96 d8 d9   +112 d10 d11 +128 d12 d13 +144 d14 d15
 *   +160 FPCR    +168 unused
 * ss__context_make() builds the same frame on a new stack, with the
 * trampoline below in the x30 slot, entry in x19 and arg in x20.
 *
 * Branch protection. Built with -mbranch-protection=bti or =standard (the
 * default of some distributions), every C object carries a GNU property
 * note saying it is BTI-ready, and the linker marks the library BTI-ready
 * only if every object says so: without a note here, BTI would silently be
 * off for the whole library and for every program that links it
 * statically. So the functions below start with a BTI landing pad and this
 * file carries the note when the compiler asks for BTI. The switch signs
 * no return address (PAC): it only moves the saved x30 between stacks,
 * and each C caller signs and authenticates its own; the note claims BTI
 * only.
 */
#if defined(__aarch64__) && !(defined(SS_CORO_UCONTEXT) && SS_CORO_UCONTEXT)

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define CORO_BTI 1
#define BTI_C hint #34 /* bti c: a landing pad for calls; a NOP without BTI */
#else
#define CORO_BTI 0
#define BTI_C
#endif

        .text

/* void ss__coro_switch(void **save_sp, void *load_sp)
 *   x0 = where to store the current stack pointer (from->sp)
 *   x1 = stack pointer of the context to resume (to->sp) */
        .globl  ss__coro_switch
        .hidden ss__coro_switch
        .type   ss__coro_switch, %function
        .p2align 4
ss__coro_switch:
        .cfi_startproc
        BTI_C
        sub     sp, sp, #176
        .cfi_adjust_cfa_offset 176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]

        mov     x9, sp
        str     x9, [x0]                /* from->sp = sp */
        mov     sp, x1                  /* now on the other context's stack */

        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        ret                             /* to x30: where it switched away */
        .cfi_endproc
        .size   ss__coro_switch, .-ss__coro_switch

/* First code a new context runs, entered by the `ret` above with sp
 * 16-byte aligned. Calls ss__coro_start(entry, arg), which never returns
 * (it aborts with a message if entry does); brk is a last-resort trap. */
        .globl  ss__coro_trampoline
        .hidden ss__coro_trampoline
        .hidden ss__coro_start
        .type   ss__coro_trampoline, %function
        .p2align 4
ss__coro_trampoline:
        .cfi_startproc
        .cfi_undefined x30              /* outermost frame: stop unwinding */
        BTI_C
        mov     x0, x19                 /* entry */
        mov     x1, x20                 /* arg */
        bl      ss__coro_start
        brk     #0
        .cfi_endproc
        .size   ss__coro_trampoline, .-ss__coro_trampoline

#if CORO_BTI
/* GNU property note: GNU_PROPERTY_AARCH64_FEATURE_1_AND = BTI. */
        .pushsection .note.gnu.property, "a"
        .balign 8
        .long   4                       /* name size */
        .long   16                      /* descriptor size */
        .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
        .long   4                       /* its data size */
        .long   1                       /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
        .long   0                       /* padding to 8 */
        .popsection
#endif

#endif

/* The stack stays non-executable. */
        .section .note.GNU-stack,"",%progbits
