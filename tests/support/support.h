/*
 * support.h — helpers shared by the cmocka tests.
 *
 * Tests exercise the library only through its public API and over real
 * sockets. These helpers do the repetitive parts: run a server's
 * ss_serve_forever() on a background thread, open a client of the right
 * type for a server, move bytes with a timeout safety net so a broken
 * library fails a test instead of hanging it, count descriptors for leak
 * checks, and make unique Unix socket names so parallel test processes never
 * collide.
 *
 * Every helper that can fail either returns a negative errno value (the
 * library's own convention) or, for the send/receive helpers, fails the
 * running cmocka test directly.
 */
#ifndef SOCKSERV_TEST_SUPPORT_H
#define SOCKSERV_TEST_SUPPORT_H

#include <sockserv/sockserv.h>
#include <sockserv/strategy.h> /* strategy->name, test strategies */

#include "process.h"    /* test_now, test_wait_for, test_sleep, test_wait_exit… */
#include "sanitizers.h" /* TEST_UNDER_TSAN */

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h> /* cmocka.h needs these three first */
#include <cmocka.h>

/* Safety net for every client socket: no test blocks longer than this on
 * one send or receive. */
#define TEST_IO_TIMEOUT_SECONDS 10.0

/* Options for every built-in strategy at once, for tests that run one
 * body under several strategies: set the fields that matter, then let
 * test_use_options() pass the one that fits the strategy at hand. */
typedef struct test_options {
    ss_threading_options threading;
    ss_thread_pool_options pool;
    ss_forking_options forking;
    ss_prefork_options prefork;
    ss_coroutine_options coro;
} test_options;

/* cfg->strategy_options = the member of opts for strategy (NULL for
 * ss_sync and strategies of the test's own); a prefork worker strategy of
 * ss_threading or ss_thread_pool gets opts->threading or opts->pool as its
 * worker_options unless one is set. opts must outlive ss_server_new(). */
void test_use_options(ss_config *cfg, const ss_strategy *strategy,
                      test_options *opts);

/* A server whose ss_serve_forever() runs on its own thread. */
typedef struct test_server {
    ss_server *srv;
    pthread_t thread;
    int serve_rc;         /* ss_serve_forever()'s return, after stop */
    double poll_interval; /* passed to ss_serve_forever() */
} test_server;

/* ss_server_new(kind, &ss_sync, address, handler, cfg), then a thread
 * running ss_serve_forever(srv, 0.05). Returns 0 or a negative errno (then
 * nothing is left running or allocated). */
int test_server_start(test_server *t, const ss_server_class *kind,
                      const char *address, const ss_handler_class *h,
                      const ss_config *cfg);

/* The same with any strategy and poll interval. */
int test_server_start_with(test_server *t, const ss_server_class *kind,
                           const ss_strategy *strategy, const char *address,
                           const ss_handler_class *h, const ss_config *cfg,
                           double poll_interval);

/* Start the serving thread for a server the test created itself (t->srv
 * set by the caller). Returns 0 or a negative errno. */
int test_server_run(test_server *t, double poll_interval);

/* ss_shutdown + pthread_join + ss_server_free. t->serve_rc then holds the
 * loop's return value. */
void test_server_stop(test_server *t);

/* Stop the thread but keep the server (ss_shutdown + join only). */
void test_server_join(test_server *t);

/* A connected client socket of the right type for srv. Stream kinds:
 * connect(). Datagram kinds: a datagram socket connect()ed to the server;
 * a Unix datagram client is bound to a unique abstract name so replies can
 * reach it. Blocking, CLOEXEC, with TEST_IO_TIMEOUT_SECONDS as
 * SO_RCVTIMEO/SO_SNDTIMEO. Returns the fd or a negative errno. */
int test_connect(ss_server *srv);

/* A client socket connected to an explicit address string (parsed with
 * ss_address_parse), of the given socket type. Same properties. */
int test_connect_address(const char *address, int socket_type);

/* Stream: send all n bytes. Datagram: send one datagram of n bytes.
 * Fails the test on error or timeout. */
void test_send_all(int fd, const void *buf, size_t n);

/* Stream: receive exactly n bytes. Datagram: receive one datagram, which
 * must be exactly n bytes long. Fails the test on error, EOF or timeout. */
void test_recv_exact(int fd, void *buf, size_t n);

/* Receive until the peer closes (stream) or one datagram; returns the
 * count (at most n). Fails the test on error or timeout. */
size_t test_recv_all(int fd, void *buf, size_t n);

/* Convenience: send a string and expect the same bytes back. */
void test_expect_echo(int fd, const char *text);

/* The same, but a stream client then closes its sending side and reads
 * until the server closes the connection: when this returns, the server
 * has finished the request (handler returned, connection shut down), so
 * a following ss_shutdown() cannot cut it short. Datagram sockets: as
 * test_expect_echo. */
void test_expect_echo_to_eof(int fd, const char *text);

/* A server_activate of the user's own, for tests of what the library sets
 * on a listener it did not make listen: listen() with a backlog of 16. */
int test_listen_only(ss_server *srv);

/* Number of open descriptors of this process (entries of /proc/self/fd,
 * not counting the one used to list them). */
int test_count_open_fds(void);

/* A unique Unix socket path "unix:/tmp/sockserv-test-<pid>-<counter>-<tag>"
 * written into buf ("unix:" prefix included). Returns buf. The file, if
 * one gets created, is removed when the test process exits normally. */
const char *test_unix_address(char *buf, size_t n, const char *tag);

/* The same as an abstract name "unix:@sockserv-test-<pid>-<counter>-<tag>". */
const char *test_abstract_address(char *buf, size_t n, const char *tag);

/* The filesystem path of a "unix:/path" address (the part after "unix:"). */
const char *test_unix_path(const char *address);

/* Whether this machine can bind and connect on ::1. */
bool test_have_ipv6(void);

/* ---- Echo handler ------------------------------------------------------
 * Echoes bytes back (ss_read in a loop, ss_write_all each chunk) until EOF.
 * For datagram kinds the packet becomes the reply. test_echo_request_count()
 * says how many requests it has finished handling in this process. */
extern const ss_handler_class test_echo_handler;
int test_echo_request_count(void);

/* ---- Log capture -------------------------------------------------------
 * A config.log hook that stores the lines it receives. The hook's user
 * argument is config.user, so: test_log_init(&log), cfg.log =
 * test_log_hook, cfg.user = &log. */
#define TEST_LOG_MAX_LINES 16
#define TEST_LOG_LINE_SIZE 512
typedef struct test_log {
    pthread_mutex_t lock;
    int count; /* lines received (may exceed MAX) */
    char lines[TEST_LOG_MAX_LINES][TEST_LOG_LINE_SIZE];
} test_log;

void test_log_init(test_log *log);
void test_log_hook(void *user, const char *line);
int test_log_count(test_log *log);
/* Copy line i (or "" when absent) into buf. */
void test_log_line(test_log *log, int i, char *buf, size_t n);

/* ---- Processes and threads (concurrency strategy tests) ----------------
 * Read from /proc, so the tests see what the kernel sees rather than what
 * the library believes. */

/* Threads of this process ("Threads:" in /proc/self/status), or a negative
 * errno. */
int test_thread_count(void);

/* Child processes of this process, zombies included: every /proc/PID/stat
 * whose parent is getpid(). Stores up to max pids (pids may be NULL when
 * max is 0) and returns the total count. */
int test_child_pids(pid_t *pids, int max);

/* pid exists and is not a zombie (a zombie has exited; only its exit
 * status is left for its parent). */
bool test_process_running(pid_t pid);

/* test_wait_for() condition: at most *(int *)arg threads in this process
 * (a detached thread may still be on its way out for a moment after it
 * signalled that it is done). */
bool test_threads_at_most(void *arg);

/* ---- Leak baseline -----------------------------------------------------
 * What a test's servers must give back: take it before, expect it after.
 *   test_baseline b = test_take_baseline(true);
 *   ... start servers, serve, stop them ...
 *   test_expect_baseline(&b);
 * Descriptors must be back to the same count at once; threads within 5 s
 * (test_threads_at_most). With no_children, taking it asserts that this
 * process has no child process, and expecting it asserts that every child
 * was reaped (not even a zombie is left). Both fail the running test. */
typedef struct test_baseline {
    int fds;
    int threads;
    bool no_children;
} test_baseline;

test_baseline test_take_baseline(bool no_children);
void test_expect_baseline(const test_baseline *b);

/* Start and join one thread. Call it first in main(): thread-count
 * baselines must not count a helper thread that the runtime starts with
 * the first pthread_create() (ThreadSanitizer has one). */
void test_start_runtime_threads(void);

/* ss_shutdown, then join the serving thread for at most seconds; on
 * success free the server and return true. On timeout the thread still
 * runs: nothing is freed and false is returned (the test fails; the
 * process is ending anyway). */
bool test_server_stop_within(test_server *t, double seconds);

/* The same without freeing the server (for tests that close it
 * themselves). */
bool test_server_join_within(test_server *t, double seconds);

#endif /* SOCKSERV_TEST_SUPPORT_H */
