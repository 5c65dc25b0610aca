/*
 * sanitizers.h — what the tests need to know about the sanitizer they
 * are built with. Header-only and free of cmocka and the library, so even
 * test_coro_context_ucontext (which links neither support.c nor the
 * library) can use it.
 */
#ifndef SOCKSERV_TEST_SANITIZERS_H
#define SOCKSERV_TEST_SANITIZERS_H

/* TEST_UNDER_TSAN: 1 when built with ThreadSanitizer (gcc defines
 * __SANITIZE_THREAD__, clang answers __has_feature), else 0. TSan cannot
 * follow a process that starts threads after a fork() made from a
 * multi-threaded process (die_after_fork), so prefork workers that run
 * threads are skipped under it, and it counts each coroutine as a thread. */
#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN 0
#endif

#endif /* SOCKSERV_TEST_SANITIZERS_H */
