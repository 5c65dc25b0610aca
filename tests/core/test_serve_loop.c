/*
 * test_serve_loop.c — ss_serve_forever(), ss_handle_request() and the ways
 * to stop them, with the synchronous strategy.
 *
 * Ported from CPython's test_socketserver (test_shutdown,
 * test_close_immediately, test_context_manager) plus what CPython users
 * asked for and libsockserv promises: shutdown wakes the loop at once
 * instead of after poll_interval, is safe from a handler and from a signal
 * handler, ss_shutdown_wait() refuses to wait for itself, and a request
 * idle in a read does not hold shutdown up.
 *
 * Threads are joined with pthread_timedjoin_np() so a loop that fails to
 * stop fails its test instead of hanging the suite.
 */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Join the serving thread, giving up (and failing) after seconds. */
static bool join_within(test_server *t, double seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    deadline.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(t->thread, NULL, &deadline) == 0;
}

/* One echo round trip: proves the loop is running and, for the
 * synchronous strategy, back waiting for the next request once the client
 * has closed and the handler has seen EOF. */
static void round_trip(ss_server *srv)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_expect_echo(fd, "ping\n");
    close(fd);
}

/* A round trip where the client waits for the server's close, so the
 * request is completely finished when this returns. */
static void round_trip_to_eof(ss_server *srv)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, "ping\n", 5);
    shutdown(fd, SHUT_WR);
    char buf[16];
    size_t n = test_recv_all(fd, buf, sizeof buf);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "ping\n", 5);
    close(fd);
}

static int counter_value(atomic_int *c)
{
    return atomic_load(c);
}

/* ---- Shutdown ---------------------------------------------------------- */

static void
test_shutdown_wakes_loop_immediately_despite_long_poll_interval(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_sync,
                                            "127.0.0.1:0", &test_echo_handler,
                                            NULL, 5.0),
                     0);
    round_trip_to_eof(t.srv); /* the loop is now waiting for a request */
    double start = test_now();
    assert_int_equal(ss_shutdown(t.srv), 0);
    assert_true(join_within(&t, 10.0));
    double elapsed = test_now() - start;
    assert_int_equal(t.serve_rc, 0);
    if (elapsed >= 1.0)
        fail_msg("serve_forever took %.3f s to stop (poll_interval 5 s)",
                 elapsed);
    ss_server_free(t.srv);
}

static void
test_shutdown_wait_returns_quickly_despite_long_poll_interval(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_udp, &ss_sync,
                                            "127.0.0.1:0", &test_echo_handler,
                                            NULL, 5.0),
                     0);
    round_trip(t.srv);
    double start = test_now();
    assert_int_equal(ss_shutdown_wait(t.srv), 0);
    double elapsed = test_now() - start;
    if (elapsed >= 1.0)
        fail_msg("ss_shutdown_wait took %.3f s (poll_interval 5 s)", elapsed);
    assert_true(join_within(&t, 10.0));
    ss_server_free(t.srv);
}

static void
test_shutdown_before_serve_forever_makes_it_return_at_once(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    assert_int_equal(ss_shutdown(srv), 0);
    double start = test_now();
    /* On this thread: if the request were lost this would never return,
     * and ctest's timeout would report it. */
    assert_int_equal(ss_serve_forever(srv, 5.0), 0);
    assert_true(test_now() - start < 1.0);
    ss_server_free(srv);
}

/* Python clears the shutdown request when serve_forever() returns, so the
 * server can serve again. */
static void test_serve_forever_can_run_again_after_shutdown(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(
        test_server_start(&t, &ss_tcp, "127.0.0.1:0", &test_echo_handler, NULL),
        0);
    round_trip(t.srv);
    test_server_join(&t);
    assert_int_equal(t.serve_rc, 0);

    assert_int_equal(test_server_run(&t, 0.05), 0);
    round_trip(t.srv);
    test_server_stop(&t);
    assert_int_equal(t.serve_rc, 0);
}

/* CPython's test_shutdown (issue #2302): shutdown right after starting the
 * thread must always make it leave serve_forever, however the two race. */
static void test_shutdown_race_always_stops_the_loop(void **state)
{
    (void)state;
    enum { SERVERS = 20 };
    test_server t[SERVERS];
    for (int i = 0; i < SERVERS; i++)
        assert_int_equal(test_server_start_with(&t[i], &ss_tcp, &ss_sync,
                                                "127.0.0.1:0",
                                                &test_echo_handler, NULL, 0.01),
                         0);
    for (int i = 0; i < SERVERS; i++)
        assert_int_equal(ss_shutdown_wait(t[i].srv), 0);
    for (int i = 0; i < SERVERS; i++) {
        if (!join_within(&t[i], 10.0))
            fail_msg("server %d did not leave serve_forever", i);
        assert_int_equal(t[i].serve_rc, 0);
        ss_server_free(t[i].srv);
    }
}

/* The same race with the non-waiting ss_shutdown(), many times over. */
static void test_shutdown_right_after_start_never_hangs(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        test_server t;
        assert_int_equal(test_server_start_with(&t, &ss_udp, &ss_sync,
                                                "127.0.0.1:0",
                                                &test_echo_handler, NULL, 5.0),
                         0);
        assert_int_equal(ss_shutdown(t.srv), 0);
        if (!join_within(&t, 10.0))
            fail_msg("round %d: serve_forever did not return", i);
        ss_server_free(t.srv);
    }
}

/* CPython's test_close_immediately and test_context_manager. */
static void test_close_without_serving_releases_everything(void **state)
{
    (void)state;
    int fds_before = test_count_open_fds();
    for (int i = 0; i < 100; i++) {
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                       &test_echo_handler, NULL),
                         0);
        assert_true(ss_server_fileno(srv) >= 0);
        ss_server_close(srv);
        assert_int_equal(ss_server_fileno(srv), -1);
        ss_server_close(srv); /* idempotent */
        assert_int_equal(ss_server_fileno(srv), -1);
        ss_server_free(srv);
    }
    ss_server_free(NULL);
    assert_int_equal(test_count_open_fds(), fds_before);
}

static void test_free_without_close_releases_everything(void **state)
{
    (void)state;
    int fds_before = test_count_open_fds();
    for (int i = 0; i < 100; i++) {
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, &ss_udp, &ss_sync, "127.0.0.1:0",
                                       &test_echo_handler, NULL),
                         0);
        ss_server_free(srv);
    }
    assert_int_equal(test_count_open_fds(), fds_before);
}

/* serve + stop + free repeatedly: the loop's own resources are released. */
static void test_serving_and_stopping_leaks_no_descriptors(void **state)
{
    (void)state;
    int fds_before = test_count_open_fds();
    for (int i = 0; i < 20; i++) {
        test_server t;
        assert_int_equal(test_server_start(&t, &ss_tcp, "127.0.0.1:0",
                                           &test_echo_handler, NULL),
                         0);
        round_trip(t.srv);
        test_server_stop(&t);
    }
    assert_int_equal(test_count_open_fds(), fds_before);
}

static void test_serve_forever_on_closed_server_fails_cleanly(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    ss_server_close(srv);
    assert_true(ss_serve_forever(srv, 0.05) < 0);
    ss_server_free(srv);
}

static void test_serve_forever_before_activate_returns_einval(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.no_bind_and_activate = true;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    assert_int_equal(ss_serve_forever(srv, 0.05), -EINVAL);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_serve_forever(srv, 0.05), -EINVAL);
    ss_server_free(srv);
}

static void test_second_serve_forever_returns_ebusy(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(
        test_server_start(&t, &ss_tcp, "127.0.0.1:0", &test_echo_handler, NULL),
        0);
    round_trip(t.srv); /* the first loop is certainly running */
    assert_int_equal(ss_serve_forever(t.srv, 0.05), -EBUSY);
    round_trip(t.srv); /* and was not disturbed */
    test_server_stop(&t);
    assert_int_equal(t.serve_rc, 0);
}

/* ---- ss_shutdown_wait -------------------------------------------------- */

/* A handler that holds its request until the test opens a gate — busy
 * in the handler's own work, not waiting on the socket, which shutdown
 * would cancel. It gives up after 10 s so a failing test cannot hang. */
typedef struct held_request {
    atomic_int started;
    atomic_int finished;
    atomic_bool gate_open;
} held_request;

static bool gate_is_open(void *arg)
{
    return atomic_load(&((held_request *)arg)->gate_open);
}

static int hold_handle(ss_request *req)
{
    held_request *h = ss_request_user(req);
    atomic_fetch_add(&h->started, 1);
    bool opened = test_wait_for(gate_is_open, h, 10.0);
    atomic_fetch_add(&h->finished, 1);
    return opened ? 0 : -ETIMEDOUT;
}

static const ss_handler_class hold_handler = {.handle = hold_handle};

typedef struct waiter {
    ss_server *srv;
    pthread_t thread;
    int rc;
    atomic_bool returned;
} waiter;

static void *shutdown_wait_thread(void *arg)
{
    waiter *w = arg;
    w->rc = ss_shutdown_wait(w->srv);
    atomic_store(&w->returned, true);
    return NULL;
}

static bool waiter_returned(void *arg)
{
    return atomic_load(&((waiter *)arg)->returned);
}

static bool handler_started(void *arg)
{
    return counter_value(&((held_request *)arg)->started) > 0;
}

static void test_shutdown_wait_returns_only_after_the_loop_stopped(void **state)
{
    (void)state;
    held_request held = {0};
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &held;
    test_server t;
    assert_int_equal(
        test_server_start(&t, &ss_tcp, "127.0.0.1:0", &hold_handler, &cfg), 0);
    int client = test_connect(t.srv);
    assert_true(client >= 0);
    assert_true(test_wait_for(handler_started, &held, 10.0));

    /* The loop is busy in a request: shutdown_wait must wait for it. */
    waiter w = {.srv = t.srv};
    assert_int_equal(pthread_create(&w.thread, NULL, shutdown_wait_thread, &w),
                     0);
    assert_false(test_wait_for(waiter_returned, &w, 0.3));
    assert_int_equal(counter_value(&held.finished), 0);

    atomic_store(&held.gate_open, true); /* the handler returns */
    assert_true(test_wait_for(waiter_returned, &w, 10.0));
    assert_int_equal(w.rc, 0);
    assert_int_equal(counter_value(&held.finished), 1);
    /* When shutdown_wait returns, serve_forever has returned or is just
     * leaving: the thread ends promptly. */
    assert_true(join_within(&t, 2.0));
    assert_int_equal(t.serve_rc, 0);
    pthread_join(w.thread, NULL);
    close(client);
    ss_server_free(t.srv);
}

/* A request idle in a read when shutdown comes: the read ends with
 * -ECANCELED at once instead of waiting for the client, the handler may
 * still answer (config.shutdown_grace), and the cancellation is not
 * reported through handle_error. */
typedef struct idle_reader {
    atomic_int started;
    ssize_t read_rc;
    ssize_t write_rc;
} idle_reader;

static int idle_read_handle(ss_request *req)
{
    idle_reader *r = ss_request_user(req);
    atomic_fetch_add(&r->started, 1);
    char buf[16];
    r->read_rc = ss_read(req, buf, sizeof buf);
    r->write_rc = ss_write_all(req, "bye\n", 4);
    return r->read_rc < 0 ? (int)r->read_rc : 0;
}

static atomic_int reported_errors;

static void count_errors(ss_server *srv, ss_request *req, int error)
{
    (void)srv;
    (void)req;
    (void)error;
    atomic_fetch_add(&reported_errors, 1);
}

static bool reader_started(void *arg)
{
    return atomic_load(&((idle_reader *)arg)->started) > 0;
}

static void test_shutdown_cancels_a_request_waiting_for_input(void **state)
{
    (void)state;
    idle_reader r = {.read_rc = 1, .write_rc = 1};
    ss_server_class kind = ss_tcp;
    kind.handle_error = count_errors;
    atomic_store(&reported_errors, 0);
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &r;
    const ss_handler_class h = {.handle = idle_read_handle};
    test_server t;
    assert_int_equal(test_server_start_with(&t, &kind, &ss_sync, "127.0.0.1:0",
                                            &h, &cfg, 5.0),
                     0);
    int client = test_connect(t.srv); /* connects, then sends nothing */
    assert_true(client >= 0);
    assert_true(test_wait_for(reader_started, &r, 10.0));

    /* Waited for from another thread, so that if the read is not
     * cancelled the test can still end: closing the client then unblocks
     * the handler. */
    double start = test_now();
    waiter w = {.srv = t.srv};
    assert_int_equal(pthread_create(&w.thread, NULL, shutdown_wait_thread, &w),
                     0);
    bool returned = test_wait_for(waiter_returned, &w, 5.0);
    double elapsed = test_now() - start;
    if (!returned)
        shutdown(client, SHUT_WR);
    pthread_join(w.thread, NULL);
    assert_true(join_within(&t, 5.0));
    if (!returned)
        fail_msg("ss_shutdown_wait still waiting for an idle client after 5 s");
    assert_int_equal(w.rc, 0);
    assert_int_equal(r.read_rc, -ECANCELED);
    assert_int_equal(r.write_rc, 4);
    assert_int_equal(atomic_load(&reported_errors), 0);
    if (elapsed >= 1.0)
        fail_msg("shutdown waited %.3f s for an idle client", elapsed);
    char buf[16];
    assert_int_equal(test_recv_all(client, buf, sizeof buf), 4);
    assert_memory_equal(buf, "bye\n", 4);
    close(client);
    ss_server_free(t.srv);
}

/* Not serving: nothing to wait for. */
static void test_shutdown_wait_without_loop_returns(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    waiter w = {.srv = srv};
    assert_int_equal(pthread_create(&w.thread, NULL, shutdown_wait_thread, &w),
                     0);
    bool returned = test_wait_for(waiter_returned, &w, 10.0);
    if (!returned) {
        /* Unblock it so the process can end: serve once, it stops at once. */
        ss_serve_forever(srv, 0.05);
    }
    pthread_join(w.thread, NULL);
    assert_true(returned);
    assert_int_equal(w.rc, 0);
    ss_server_free(srv);
}

/* ---- Calls from inside a handler --------------------------------------- */

typedef struct inside_result {
    atomic_int calls;
    int rc;
} inside_result;

/* Read the client's line, make the call under test, answer the line. The
 * line is read first because once shutdown has been asked for, a request
 * may no longer wait for input. */
static int call_then_answer(ss_request *req, int (*call)(ss_server *))
{
    inside_result *r = ss_request_user(req);
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n < 0)
        return (int)n;
    r->rc = call(ss_request_server(req));
    atomic_fetch_add(&r->calls, 1);
    ssize_t w = ss_write_all(req, line, (size_t)n);
    return w < 0 ? (int)w : 0;
}

static int shutdown_wait_inside_handle(ss_request *req)
{
    return call_then_answer(req, ss_shutdown_wait);
}

static void test_shutdown_wait_inside_handler_returns_edeadlk(void **state)
{
    (void)state;
    inside_result r = {.rc = 1};
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &r;
    const ss_handler_class h = {.handle = shutdown_wait_inside_handle};
    test_server t;
    assert_int_equal(test_server_start(&t, &ss_tcp, "127.0.0.1:0", &h, &cfg),
                     0);
    /* If shutdown_wait waited for itself, this echo would time out. */
    round_trip(t.srv);
    test_server_stop(&t);
    assert_int_equal(atomic_load(&r.calls), 1);
    assert_int_equal(r.rc, -EDEADLK);
}

static int shutdown_inside_handle(ss_request *req)
{
    return call_then_answer(req, ss_shutdown);
}

static void
test_shutdown_inside_handler_stops_loop_after_that_request(void **state)
{
    (void)state;
    inside_result r = {.rc = 1};
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &r;
    const ss_handler_class h = {.handle = shutdown_inside_handle};
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_sync,
                                            "127.0.0.1:0", &h, &cfg, 5.0),
                     0);
    /* The request that asked for shutdown is still served in full. */
    round_trip_to_eof(t.srv);
    assert_true(join_within(&t, 5.0));
    assert_int_equal(t.serve_rc, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(atomic_load(&r.calls), 1);
    ss_server_free(t.srv);
}

/* ---- Signals ----------------------------------------------------------- */

static ss_server *volatile signal_target;
static volatile sig_atomic_t signal_count;

static void on_sigusr1(int sig)
{
    (void)sig;
    int saved = errno;
    ss_shutdown(signal_target);
    signal_count++;
    errno = saved;
}

static void test_shutdown_from_signal_handler_stops_the_loop(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_sync,
                                            "127.0.0.1:0", &test_echo_handler,
                                            NULL, 5.0),
                     0);
    signal_target = t.srv;
    signal_count = 0;
    struct sigaction sa = {.sa_handler = on_sigusr1}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

    round_trip_to_eof(t.srv); /* the loop is blocked waiting */
    /* Delivered on the serving thread itself: its wait is interrupted
     * (EINTR) and must notice the request rather than wait 5 s more. */
    double start = test_now();
    assert_int_equal(pthread_kill(t.thread, SIGUSR1), 0);
    bool stopped = join_within(&t, 10.0);
    double elapsed = test_now() - start;
    sigaction(SIGUSR1, &old, NULL);
    assert_true(stopped);
    assert_int_equal(signal_count, 1);
    assert_int_equal(t.serve_rc, 0);
    if (elapsed >= 1.0)
        fail_msg("loop took %.3f s to stop after the signal", elapsed);
    ss_server_free(t.srv);
}

/* Delivered on another thread: only the wake-up ss_shutdown() sends from
 * the signal handler can end the serving thread's 5 s wait early. */
static void
test_shutdown_from_signal_on_another_thread_wakes_the_loop(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_udp, &ss_sync,
                                            "127.0.0.1:0", &test_echo_handler,
                                            NULL, 5.0),
                     0);
    signal_target = t.srv;
    signal_count = 0;
    struct sigaction sa = {.sa_handler = on_sigusr1}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    round_trip(t.srv);

    /* The handler runs on this thread, so the serving thread's poll() is
     * not interrupted: only the eventfd write can wake it. */
    double start = test_now();
    assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
    assert_int_equal(signal_count,
                     1); /* handled before pthread_kill returned */
    bool stopped = join_within(&t, 10.0);
    double elapsed = test_now() - start;
    sigaction(SIGUSR1, &old, NULL);
    assert_true(stopped);
    assert_int_equal(t.serve_rc, 0);
    if (elapsed >= 1.0)
        fail_msg("loop took %.3f s to stop after the signal", elapsed);
    ss_server_free(t.srv);
}

/* Some other signal interrupting the serving thread is not a shutdown. */
static void on_sigusr2(int sig)
{
    (void)sig;
    signal_count++;
}

static void test_unrelated_signal_does_not_stop_the_loop(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_sync,
                                            "127.0.0.1:0", &test_echo_handler,
                                            NULL, 5.0),
                     0);
    signal_count = 0;
    struct sigaction sa = {.sa_handler = on_sigusr2}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR2, &sa, &old), 0);
    round_trip_to_eof(t.srv);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pthread_kill(t.thread, SIGUSR2), 0);
    round_trip(t.srv); /* still serving */
    test_server_stop(&t);
    sigaction(SIGUSR2, &old, NULL);
    assert_true(signal_count >= 1);
    assert_int_equal(t.serve_rc, 0);
}

static void test_shutdown_on_signals_sigterm_stops_serve_forever(void **state)
{
    (void)state;
    struct sigaction old_term, old_int;
    sigaction(SIGTERM, NULL, &old_term);
    sigaction(SIGINT, NULL, &old_int);

    test_server t = {0};
    assert_int_equal(ss_server_new(&t.srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    assert_int_equal(ss_shutdown_on_signals(t.srv), 0);
    assert_int_equal(test_server_run(&t, 5.0), 0);
    round_trip_to_eof(t.srv);

    double start = test_now();
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    bool stopped = join_within(&t, 10.0);
    double elapsed = test_now() - start;
    if (!stopped) {
        ss_shutdown(t.srv);
        pthread_join(t.thread, NULL);
    }
    ss_server_free(t.srv);
    /* Freeing the last registered server gives the program its previous
     * dispositions back. */
    struct sigaction now_term, now_int;
    sigaction(SIGTERM, NULL, &now_term);
    sigaction(SIGINT, NULL, &now_int);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    assert_true(stopped);
    assert_int_equal(t.serve_rc, 0);
    assert_true(elapsed < 1.0);
    assert_ptr_equal(now_term.sa_handler, old_term.sa_handler);
    assert_ptr_equal(now_int.sa_handler, old_int.sa_handler);
}

/* ---- ss_handle_request ------------------------------------------------- */

static atomic_int timeouts;

static void count_timeout(ss_server *srv)
{
    (void)srv;
    atomic_fetch_add(&timeouts, 1);
}

static void
test_handle_request_times_out_and_calls_handle_timeout_once(void **state)
{
    (void)state;
    ss_server_class kind = ss_tcp;
    kind.handle_timeout = count_timeout;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.timeout = 0.2;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    atomic_store(&timeouts, 0);
    double start = test_now();
    assert_int_equal(ss_handle_request(srv), -ETIMEDOUT);
    double elapsed = test_now() - start;
    assert_int_equal(atomic_load(&timeouts), 1);
    /* It did wait (not an instant failure), and not forever. */
    assert_true(elapsed >= 0.15);
    assert_true(elapsed < 5.0);
    ss_server_free(srv);
}

static void test_handle_request_times_out_for_datagram_kinds_too(void **state)
{
    (void)state;
    ss_server_class kind = ss_udp;
    kind.handle_timeout = count_timeout;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.timeout = 0.2;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    atomic_store(&timeouts, 0);
    assert_int_equal(ss_handle_request(srv), -ETIMEDOUT);
    assert_int_equal(ss_handle_request(srv), -ETIMEDOUT);
    assert_int_equal(atomic_load(&timeouts), 2);
    ss_server_free(srv);
}

static bool readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

static void test_handle_request_handles_exactly_one_request(void **state)
{
    (void)state;
    ss_server_class kind = ss_tcp;
    kind.handle_timeout = count_timeout;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.timeout = 0.3;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    /* Two clients queue up complete requests before anything is handled. */
    int a = test_connect(srv), b = test_connect(srv);
    assert_true(a >= 0 && b >= 0);
    test_send_all(a, "first\n", 6);
    shutdown(a, SHUT_WR);
    test_send_all(b, "second\n", 7);
    shutdown(b, SHUT_WR);

    int before = test_echo_request_count();
    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(test_echo_request_count() - before, 1);
    char buf[16];
    assert_int_equal(test_recv_all(a, buf, sizeof buf), 6);
    assert_memory_equal(buf, "first\n", 6);
    assert_false(readable_within(b, 200)); /* b not touched yet */

    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(test_echo_request_count() - before, 2);
    assert_int_equal(test_recv_all(b, buf, sizeof buf), 7);
    assert_memory_equal(buf, "second\n", 7);

    atomic_store(&timeouts, 0);
    assert_int_equal(ss_handle_request(srv), -ETIMEDOUT);
    assert_int_equal(atomic_load(&timeouts), 1);
    close(a);
    close(b);
    ss_server_free(srv);
}

static void test_handle_request_handles_one_datagram(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_udp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, "one", 3);
    test_send_all(fd, "two", 3);
    char buf[8];
    assert_int_equal(ss_handle_request(srv), 0);
    test_recv_exact(fd, buf, 3);
    assert_memory_equal(buf, "one", 3);
    assert_false(readable_within(fd, 200));
    assert_int_equal(ss_handle_request(srv), 0);
    test_recv_exact(fd, buf, 3);
    assert_memory_equal(buf, "two", 3);
    close(fd);
    ss_server_free(srv);
}

/* ---- a handle_request loop and Ctrl-C ---------------------------------- */

/* Only peers running as this very user get in (SO_PEERCRED), the kind of
 * check a Unix-socket server's verify_request makes. */
static bool same_user_only(ss_server *srv, ss_request *req)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(ss_request_fileno(req), SOL_SOCKET, SO_PEERCRED, &cred,
                   &len) < 0 ||
        cred.uid != getuid())
        return false;
    return ss_unix_stream.verify_request(srv, req);
}

/* How the program's loop asks whether to go on. */
enum loop_form {
    LOOP_WHILE_NOT_REQUESTED, /* while (!ss_server_shutdown_requested()) */
    LOOP_UNTIL_SS_SHUTDOWN,   /* while (ss_handle_request() != SS_SHUTDOWN) */
};

/* The program a new user writes: a Unix-socket server with
 * verify_request, Ctrl-C wired to ss_shutdown(), and a handle_request
 * loop with a timeout (5 s, far longer than the tests wait: only the
 * shutdown can end a wait in time). Run in a child process, so that
 * SIGINT reaches it alone; exits 0 when the loop ended and the server
 * was freed, 3 if the server could not be made. The ready pipe gets one
 * byte once it listens and another when its loop has ended (before the
 * server is freed and the process exits, which under Valgrind takes long
 * enough to hide what is measured: how soon the loop ends). */
static int unix_loop_program(const char *address, enum loop_form form,
                             int ready_fd)
{
    ss_server_class kind = ss_unix_stream;
    kind.verify_request = same_user_only;
    ss_config cfg = {.timeout = 5.0, .unlink_on_close = true};
    ss_server *srv;
    if (ss_server_new(&srv, &kind, &ss_sync, address, &test_echo_handler,
                      &cfg) < 0 ||
        ss_shutdown_on_signals(srv) < 0)
        return 3;
    if (write(ready_fd, "r", 1) != 1)
        return 3;
    if (form == LOOP_WHILE_NOT_REQUESTED)
        while (!ss_server_shutdown_requested(srv))
            ss_handle_request(srv);
    else
        while (ss_handle_request(srv) != SS_SHUTDOWN)
            ;
    if (write(ready_fd, "e", 1) != 1)
        return 3;
    ss_server_free(srv);
    return 0;
}

/* Fork the program above; returns its pid once it is listening, and in
 *ended the pipe end that says when its loop has ended. */
static pid_t start_unix_loop_program(const char *address, enum loop_form form,
                                     int *ended)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        _exit(unix_loop_program(address, form, ready[1]));
    }
    close(ready[1]);
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    char byte;
    assert_int_equal(poll(&p, 1, 10000), 1);
    assert_int_equal(read(ready[0], &byte, 1), 1);
    *ended = ready[0];
    return pid;
}

/* Seconds from now until the loop program says its loop ended (at most
 * seconds; more means it did not). Closes ended. */
static double loop_end_within(int ended, double seconds)
{
    double start = test_now();
    struct pollfd p = {.fd = ended, .events = POLLIN};
    char byte = 0;
    bool said = poll(&p, 1, (int)(seconds * 1000)) == 1 &&
                read(ended, &byte, 1) == 1 && byte == 'e';
    close(ended);
    return said ? test_now() - start : seconds + 1;
}

/* Wait for the program's exit after a signal: its status, or fail (and
 * kill it) when it is still running after seconds. */
static int expect_exit_within(pid_t pid, double seconds)
{
    int status = test_wait_exit(pid, seconds);
    if (status == -1) {
        kill(pid, SIGKILL);
        test_wait_exit(pid, 10.0);
        fail_msg("the handle_request loop was still running %.1f s after "
                 "SIGINT",
                 seconds);
        return -1;
    }
    return status;
}

static void sigint_ends_the_loop(enum loop_form form)
{
    char address[128];
    test_unix_address(address, sizeof address, "loop");
    int ended;
    pid_t pid = start_unix_loop_program(address, form, &ended);
    for (int i = 0; i < 3; i++) { /* it serves, one request per call */
        int fd = test_connect_address(address, SOCK_STREAM);
        assert_true(fd >= 0);
        test_expect_echo_to_eof(fd, "ping\n");
        close(fd);
    }
    test_sleep(0.2); /* the loop is back in its wait for a request */
    assert_int_equal(kill(pid, SIGINT), 0);
    double elapsed = loop_end_within(ended, 5.0);
    int status = expect_exit_within(pid, 10.0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    if (elapsed >= 1.0)
        fail_msg("the loop took %.3f s to end after SIGINT", elapsed);
    /* unlink_on_close: the socket file went with the server. */
    assert_int_equal(access(test_unix_path(address), F_OK), -1);
}

static void test_sigint_ends_a_while_not_shutdown_requested_loop(void **state)
{
    (void)state;
    sigint_ends_the_loop(LOOP_WHILE_NOT_REQUESTED);
}

static void test_sigint_ends_a_until_ss_shutdown_loop(void **state)
{
    (void)state;
    sigint_ends_the_loop(LOOP_UNTIL_SS_SHUTDOWN);
}

/* Ctrl-C while a client sits idle in the handler: its read is cancelled
 * (quietly), the request ends and so does the loop. */
static void test_sigint_during_an_idle_request_ends_the_loop(void **state)
{
    (void)state;
    char address[128];
    test_unix_address(address, sizeof address, "loop-idle");
    int ended;
    pid_t pid =
        start_unix_loop_program(address, LOOP_UNTIL_SS_SHUTDOWN, &ended);
    int fd = test_connect_address(address, SOCK_STREAM);
    assert_true(fd >= 0);
    test_expect_echo(fd, "ping\n"); /* the handler now waits for more */
    assert_int_equal(kill(pid, SIGINT), 0);
    double elapsed = loop_end_within(ended, 5.0);
    if (elapsed >= 2.0)
        fail_msg("the loop took %.3f s to end after SIGINT", elapsed);
    int status = expect_exit_within(pid, 10.0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char byte;
    assert_int_equal(recv(fd, &byte, 1, 0), 0); /* closed, nothing more */
    close(fd);
}

static void test_handle_request_returns_ss_shutdown_once_requested(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    assert_false(ss_server_shutdown_requested(srv));
    ss_shutdown(srv);
    assert_true(ss_server_shutdown_requested(srv));
    /* A client waiting is not taken: the shutdown came first. */
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, "x\n", 2);
    assert_int_equal(ss_handle_request(srv), SS_SHUTDOWN);
    assert_int_equal(ss_handle_request(srv), SS_SHUTDOWN); /* and again */
    assert_false(readable_within(fd, 100));
    assert_string_equal(ss_strerror(SS_SHUTDOWN),
                        "The server is shutting down");
    /* ss_serve_forever() takes the pending shutdown: it returns at once
     * and clears it. */
    assert_int_equal(ss_serve_forever(srv, 5.0), 0);
    assert_false(ss_server_shutdown_requested(srv));
    close(fd);
    ss_server_free(srv);
}

static void *shutdown_after_100ms(void *arg)
{
    test_sleep(0.1);
    ss_shutdown(arg);
    return NULL;
}

/* Shutdown from another thread wakes a handle_request waiting with no
 * timeout at all. */
static void test_shutdown_from_another_thread_wakes_handle_request(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_udp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, shutdown_after_100ms, srv),
                     0);
    double start = test_now();
    assert_int_equal(ss_handle_request(srv), SS_SHUTDOWN);
    double elapsed = test_now() - start;
    pthread_join(thread, NULL);
    assert_true(elapsed < 2.0);
    ss_server_free(srv);
}

/* ---- service_actions --------------------------------------------------- */

static atomic_int service_calls;

static void count_service_actions(ss_server *srv)
{
    (void)srv;
    atomic_fetch_add(&service_calls, 1);
}

static bool service_called_often(void *arg)
{
    return atomic_load(&service_calls) >= *(int *)arg;
}

static void test_service_actions_called_repeatedly_while_serving(void **state)
{
    (void)state;
    ss_server_class kind = ss_tcp;
    kind.service_actions = count_service_actions;
    atomic_store(&service_calls, 0);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &kind, &ss_sync, "127.0.0.1:0",
                                            &test_echo_handler, NULL, 0.01),
                     0);
    /* With no traffic at all, each poll interval runs it. */
    int want = 5;
    assert_true(test_wait_for(service_called_often, &want, 10.0));
    /* It keeps running after requests, too. */
    round_trip_to_eof(t.srv);
    want = atomic_load(&service_calls) + 5;
    assert_true(test_wait_for(service_called_often, &want, 10.0));
    test_server_stop(&t);
}

/* Each request is followed by a loop iteration, so a busy server still
 * runs service_actions (Python calls it after every request). */
static void test_service_actions_runs_between_requests(void **state)
{
    (void)state;
    ss_server_class kind = ss_udp;
    kind.service_actions = count_service_actions;
    atomic_store(&service_calls, 0);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &kind, &ss_sync, "127.0.0.1:0",
                                            &test_echo_handler, NULL, 20.0),
                     0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    for (int i = 0; i < 5; i++)
        test_expect_echo(fd, "x");
    close(fd);
    /* With a 20 s poll interval, only requests can have driven it. */
    int want = 5;
    assert_true(test_wait_for(service_called_often, &want, 10.0));
    test_server_stop(&t);
}

int main(void)
{
    /* The signal cases need these four deliverable, in this process and
     * in the children it forks; whatever started the suite may have left
     * some blocked, and a blocked mask is inherited across exec. */
    sigset_t used;
    sigemptyset(&used);
    sigaddset(&used, SIGINT);
    sigaddset(&used, SIGTERM);
    sigaddset(&used, SIGUSR1);
    sigaddset(&used, SIGUSR2);
    sigprocmask(SIG_UNBLOCK, &used, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_shutdown_wakes_loop_immediately_despite_long_poll_interval),
        cmocka_unit_test(
            test_shutdown_wait_returns_quickly_despite_long_poll_interval),
        cmocka_unit_test(
            test_shutdown_before_serve_forever_makes_it_return_at_once),
        cmocka_unit_test(test_serve_forever_can_run_again_after_shutdown),
        cmocka_unit_test(test_shutdown_race_always_stops_the_loop),
        cmocka_unit_test(test_shutdown_right_after_start_never_hangs),
        cmocka_unit_test(test_close_without_serving_releases_everything),
        cmocka_unit_test(test_free_without_close_releases_everything),
        cmocka_unit_test(test_serving_and_stopping_leaks_no_descriptors),
        cmocka_unit_test(test_serve_forever_on_closed_server_fails_cleanly),
        cmocka_unit_test(test_serve_forever_before_activate_returns_einval),
        cmocka_unit_test(test_second_serve_forever_returns_ebusy),
        cmocka_unit_test(
            test_shutdown_wait_returns_only_after_the_loop_stopped),
        cmocka_unit_test(test_shutdown_cancels_a_request_waiting_for_input),
        cmocka_unit_test(test_shutdown_wait_without_loop_returns),
        cmocka_unit_test(test_shutdown_wait_inside_handler_returns_edeadlk),
        cmocka_unit_test(
            test_shutdown_inside_handler_stops_loop_after_that_request),
        cmocka_unit_test(test_shutdown_from_signal_handler_stops_the_loop),
        cmocka_unit_test(
            test_shutdown_from_signal_on_another_thread_wakes_the_loop),
        cmocka_unit_test(test_unrelated_signal_does_not_stop_the_loop),
        cmocka_unit_test(test_shutdown_on_signals_sigterm_stops_serve_forever),
        cmocka_unit_test(
            test_handle_request_times_out_and_calls_handle_timeout_once),
        cmocka_unit_test(test_handle_request_times_out_for_datagram_kinds_too),
        cmocka_unit_test(test_handle_request_handles_exactly_one_request),
        cmocka_unit_test(test_handle_request_handles_one_datagram),
        cmocka_unit_test(test_sigint_ends_a_while_not_shutdown_requested_loop),
        cmocka_unit_test(test_sigint_ends_a_until_ss_shutdown_loop),
        cmocka_unit_test(test_sigint_during_an_idle_request_ends_the_loop),
        cmocka_unit_test(
            test_handle_request_returns_ss_shutdown_once_requested),
        cmocka_unit_test(
            test_shutdown_from_another_thread_wakes_handle_request),
        cmocka_unit_test(test_service_actions_called_repeatedly_while_serving),
        cmocka_unit_test(test_service_actions_runs_between_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
