#!/usr/bin/env bash
# ThreadSanitizer run of the tests where threads meet: the threading and
# thread-pool strategies, the strategy matrix, the serve loop (shutdown
# from other threads and from signal handlers) and the coroutine strategy
# with its context switches.
#
#   bash .ci/tsan.sh          (from anywhere inside the checkout)
#
# Builds the library, the tests and the examples (test_programs_tls and
# test_httpd_cache run them) with clang -fsanitize=thread in build-tsan/ (or
# $SOCKSERV_TSAN_BUILD), recreated on every run, then runs the selected
# tests under ctest. Any report fails the run: halt_on_error makes the
# first data race end its test process with a non-zero status.
#
# Left out on purpose: test_prefork, and the prefork cases whose workers
# run threads. TSan cannot follow a process that starts threads after a
# fork() from a multi-threaded process (it kills it: die_after_fork), and
# the prefork supervisor adds no shared-memory threading of its own. The
# matrix in test_strategies skips those cases by itself when built with
# TSan. Forking without threads in the child is fine, so test_forking
# stays in.
#
# test_chatroom is in: it runs sockserv-chat, built with TSan (hence the
# examples), whose TCP and WebSocket members, admin thread and two servers'
# loops share the room under one mutex.
#
# The coroutine tests are in: test_coro_context (both switches: the
# assembly one and the ucontext fallback), test_coro_switch,
# test_coroutines and test_wait_input_or_fd. Their schedulers, the
# ss_run_blocking helpers and the tests' own threads meet in shared
# state. lib/coroutines/coro_context.c tells TSan about every switch (its fiber API:
# each coroutine is a TSan fiber, and a switch orders what came before
# it), so TSan keeps one shadow call stack per coroutine and checks what
# happens between threads; coroutines of one scheduler never run at once.
# Without the annotations test_coro_switch crashes here: its 100,000
# coroutines each leave for good from a deep frame, and the thread's one
# shadow call stack overflows. TSan counts each live fiber like a thread:
# clang 14's runtime holds about 16,000 live coroutines (then its
# mappings reach vm.max_map_count), gcc 12's libtsan dies at 8,128
# threads, fewer than test_coroutines' 10,000 connections: use clang.
#
# Environment: SOCKSERV_CI_JOBS (default: nproc), CC (default: clang),
# SOCKSERV_TSAN_BUILD (default: build-tsan).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -f CMakeLists.txt ] || [ ! -d include/sockserv ]; then
    echo ".ci/tsan.sh: run from a libsockserv checkout" >&2
    exit 2
fi
jobs=${SOCKSERV_CI_JOBS:-$(nproc 2>/dev/null || echo 2)}
cc=${CC:-clang}
build=${SOCKSERV_TSAN_BUILD:-build-tsan}
# test_eintr is back: its threading case hung once (2026-11-27) because of
# a deadlock inside TSan's runtime (google/sanitizers#1540: a signal handled
# at once inside pthread_join() while glibc frees a cached stack through
# TSan's free()); under TSan the test's main thread now blocks the storm
# signal while it joins threads (tests/hardening/test_eintr.c,
# storm_shield()).
tests='^test_(threading|strategies|serve_loop|forking|coroutines'
tests+='|coro_context|coro_context_ucontext|coro_switch|wait_input_or_fd'
tests+='|limits|exhaustion|proxy_protocol|hostile_clients'
tests+='|graceful_shutdown|orphans|eintr|parking|strategy_plugin|tls|websocket'
# The blocking strategies' receive path (lib/core/blocking_receive.c).
tests+='|blocking_receive'
# Arrival stamps on the blocking and coroutine receive paths.
tests+='|input_time|defer_accept'
# The example servers over TLS, run as built (so built with TSan too): the
# file server under thread, pool and coro, the chat room under thread and
# coro. A report ends the server with a non-zero status, which fails the
# test's teardown.
tests+='|programs_tls|chatroom|access_log'
# sockserv-httpd's file cache, shared by threads and coroutines.
tests+='|httpd_cache)$'

start=$SECONDS
rm -rf "$build"
cmake -S . -B "$build" \
    -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS="-fsanitize=thread -g -O1" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
    -DSOCKSERV_BUILD_TESTS=ON \
    -DSOCKSERV_BUILD_EXAMPLES=ON
cmake --build "$build" -j"$jobs"
built=$SECONDS

# second_deadlock_stack: both stacks in lock-order reports.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
status=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" -R "$tests" || status=$?
done_at=$SECONDS

printf '\n=== tsan: build %ds, tests %ds, total %ds: %s\n' \
    $((built - start)) $((done_at - built)) $((done_at - start)) \
    "$([ "$status" -eq 0 ] && echo PASSED || echo "FAILED ($status)")"
exit "$status"
