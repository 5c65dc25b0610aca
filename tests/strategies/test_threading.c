/*
 * test_threading.c — the in-process strategies: ss_threading (Python's
 * ThreadingMixIn) and ss_thread_pool.
 *
 * What is proved here, over real sockets:
 *  - threads are reaped: after a thousand connections the thread count and
 *    the descriptor count are back where they started (CPython bpo-37193
 *    kept every finished thread until server_close);
 *  - max_threads bounds the handlers running at once, and every request is
 *    still served;
 *  - block_on_close / daemon_threads decide whether ss_server_close() waits
 *    for a running handler, while ss_server_free() always does;
 *  - the pool's queue: full means wait (backpressure) or, with
 *    pool_refuse_when_full, the new connection is closed unserved; and
 *    ss_server_close() still serves what was already queued.
 *
 * Handlers here never call cmocka: they run on server threads, and a
 * failed assertion must unwind the test's own thread. They record what
 * they see in atomics that the test thread checks. Every wait is bounded.
 */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct at_least {
    atomic_int *value;
    int want;
} at_least;

static bool value_reached(void *arg)
{
    at_least *a = arg;
    return atomic_load(a->value) >= a->want;
}

/* Wait (bounded) until *value >= want. */
static bool wait_until_at_least(atomic_int *value, int want, double seconds)
{
    at_least a = {value, want};
    return test_wait_for(value_reached, &a, seconds);
}

/* Virtual memory of this process in KiB ("VmSize:"), or -1. */
static long vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static bool fds_at_most(void *arg)
{
    return test_count_open_fds() <= *(int *)arg;
}

/* One complete request: send a line, half-close, read the echo to EOF. */
static void echo_to_eof(ss_server *srv)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, "x\n", 2);
    shutdown(fd, SHUT_WR);
    char buf[8];
    assert_int_equal(test_recv_all(fd, buf, sizeof buf), 2);
    close(fd);
}

/* ---- A handler the test holds open ------------------------------------- */

/* Counts requests that started and finished; in between it waits until
 * the test opens the gate, then echoes the client's line. It waits on a
 * flag, not on its socket: once ss_shutdown() is called the library stops
 * requests from waiting for input, and these tests stop the serve loop
 * while requests are held. Clients therefore send their line right after
 * connecting, so it is there to be read without waiting. */
static atomic_int gate_started;
static atomic_int gate_finished;
static atomic_bool gate_open;

static int gate_handle(ss_request *req)
{
    atomic_fetch_add(&gate_started, 1);
    for (int i = 0; i < 10000 && !atomic_load(&gate_open); i++)
        test_sleep_ms(1);
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof line);
    int rc = 0;
    if (n > 0 && ss_write_all(req, line, (size_t)n) != n)
        rc = -1;
    atomic_fetch_add(&gate_finished, 1);
    return n > 0 ? rc : -1;
}

static const ss_handler_class gate_handler = {.handle = gate_handle};

static void reset_gate(void)
{
    atomic_store(&gate_started, 0);
    atomic_store(&gate_finished, 0);
    atomic_store(&gate_open, false);
}

/* A client of the gate handler: connected, its line already sent. */
static int gate_client(ss_server *srv, const char *line)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, line, strlen(line));
    return fd;
}

/* The client's line comes back once the gate is open. */
static void expect_line(int fd, const char *line)
{
    size_t n = strlen(line);
    char buf[64];
    test_recv_exact(fd, buf, n);
    assert_memory_equal(buf, line, n);
}

/* ---- Reaping ----------------------------------------------------------- */

static void thousand_connections(const ss_strategy *strategy, int pool_size)
{
    int fds_before = test_count_open_fds();
    int threads_before = test_thread_count();
    ss_config cfg;
    ss_config_init(&cfg);
    test_options opts = {.pool.pool_size = pool_size};
    test_use_options(&cfg, strategy, &opts);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, strategy,
                                            "127.0.0.1:0", &test_echo_handler,
                                            &cfg, 0.05),
                     0);
    int fds_idle = test_count_open_fds(); /* the server's own */
    for (int i = 0; i < 20; i++) /* warm up: stacks, allocator arenas */
        echo_to_eof(t.srv);
    long vm_before = vm_size_kb();
    double start = test_now();
    for (int i = 0; i < 1000; i++)
        echo_to_eof(t.srv);
    print_message("%s: 1000 connections in %.2f s\n",
                  ss_server_strategy(t.srv)->name, test_now() - start);

    /* While still serving: the serving thread plus, for the pool, its
     * workers — never one thread per past request. */
    int allowed = threads_before + 1 + pool_size;
    assert_true(test_wait_for(test_threads_at_most, &allowed, 5.0));
    /* Each connection's descriptor is closed once its request ends (the
     * last one may be closing just after its client saw the end). */
    assert_true(test_wait_for(fds_at_most, &fds_idle, 5.0));
    /* Finished threads gave back their stacks: a thread that is never
     * joined nor detached keeps its stack (8 MiB by default) mapped, and a
     * thousand of them would add gigabytes here. */
    long vm_growth_mb = (vm_size_kb() - vm_before) / 1024;
    if (vm_growth_mb > 512)
        fail_msg("virtual memory grew by %ld MiB over 1000 requests",
                 vm_growth_mb);

    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(test_count_open_fds(), fds_before);
    assert_true(test_wait_for(test_threads_at_most, &threads_before, 5.0));
    assert_int_equal(test_thread_count(), threads_before);
}

static void
test_threading_thousand_connections_leave_no_thread_or_fd(void **state)
{
    (void)state;
    thousand_connections(&ss_threading, 0);
}

static void test_pool_thousand_connections_leave_no_thread_or_fd(void **state)
{
    (void)state;
    thousand_connections(&ss_thread_pool, 4);
}

/* ---- max_threads ------------------------------------------------------- */

static atomic_int running_now;
static atomic_int running_max;
static atomic_int served;

static int counted_handle(ss_request *req)
{
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int seen = atomic_load(&running_max);
    while (now > seen &&
           !atomic_compare_exchange_weak(&running_max, &seen, now))
        ;
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof line);
    test_sleep_ms(150);
    atomic_fetch_sub(&running_now, 1);
    atomic_fetch_add(&served, 1);
    if (n <= 0)
        return -1;
    return ss_write_all(req, line, (size_t)n) == n ? 0 : -1;
}

static const ss_handler_class counted_handler = {.handle = counted_handle};

static void
test_max_threads_bounds_running_handlers_and_serves_all(void **state)
{
    (void)state;
    atomic_store(&running_now, 0);
    atomic_store(&running_max, 0);
    atomic_store(&served, 0);
    ss_config cfg;
    ss_config_init(&cfg);
    ss_threading_options threading = {.max_threads = 2};
    cfg.strategy_options = &threading;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_threading,
                                            "127.0.0.1:0", &counted_handler,
                                            &cfg, 0.05),
                     0);
    enum { N = 6 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
        test_send_all(fds[i], "hi\n", 3);
    }
    double start = test_now();
    for (int i = 0; i < N; i++) {
        char reply[3];
        test_recv_exact(fds[i], reply, sizeof reply);
        assert_memory_equal(reply, "hi\n", 3);
        close(fds[i]);
    }
    double elapsed = test_now() - start;
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(atomic_load(&served), N);
    assert_int_equal(atomic_load(&running_max), 2);
    /* Two at a time, 150 ms each: at least three rounds. */
    assert_true(elapsed >= 0.4);
}

/* ---- block_on_close and daemon_threads --------------------------------- */

typedef struct closer {
    ss_server *srv;
    pthread_t thread;
    atomic_bool returned;
    int finished_at_return; /* gate_finished when close returned */
} closer;

static void *close_server(void *arg)
{
    closer *c = arg;
    ss_server_close(c->srv);
    c->finished_at_return = atomic_load(&gate_finished);
    atomic_store(&c->returned, true);
    return NULL;
}

static bool joined_within(pthread_t thread, double seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    return pthread_timedjoin_np(thread, NULL, &deadline) == 0;
}

/* A server with one request held open in its handler, its loop stopped. */
static int start_with_held_request(test_server *t, const ss_strategy *strategy,
                                   const ss_config *cfg)
{
    reset_gate();
    assert_int_equal(test_server_start_with(t, &ss_tcp, strategy, "127.0.0.1:0",
                                            &gate_handler, cfg, 0.05),
                     0);
    int fd = gate_client(t->srv, "go\n");
    assert_true(wait_until_at_least(&gate_started, 1, 10.0));
    assert_true(test_server_join_within(t, 10.0));
    return fd;
}

static void test_block_on_close_waits_for_running_handler(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg); /* block_on_close is the default */
    test_server t;
    int fd = start_with_held_request(&t, &ss_threading, &cfg);

    closer c = {.srv = t.srv};
    assert_int_equal(pthread_create(&c.thread, NULL, close_server, &c), 0);
    test_sleep_ms(200);
    assert_false(atomic_load(&c.returned)); /* still waiting for it */
    atomic_store(&gate_open, true);
    assert_true(joined_within(c.thread, 10.0));
    assert_int_equal(c.finished_at_return, 1);
    expect_line(fd, "go\n");
    close(fd);
    ss_server_free(t.srv);
}

/* Opens the gate after a delay, while the test thread is blocked in
 * ss_server_free(). */
static void *open_gate_later(void *arg)
{
    (void)arg;
    test_sleep_ms(200);
    atomic_store(&gate_open, true);
    return NULL;
}

/* close does not wait (as configured), free does: the handler uses the
 * server's memory until it returns. */
static void close_returns_early_and_free_waits(ss_config *cfg)
{
    test_server t;
    int fd = start_with_held_request(&t, &ss_threading, cfg);

    closer c = {.srv = t.srv};
    assert_int_equal(pthread_create(&c.thread, NULL, close_server, &c), 0);
    assert_true(joined_within(c.thread, 5.0));
    assert_int_equal(c.finished_at_return, 0); /* handler still running */
    assert_int_equal(atomic_load(&gate_finished), 0);

    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
    ss_server_free(t.srv);
    assert_int_equal(atomic_load(&gate_finished), 1);
    assert_true(joined_within(opener, 5.0));
    expect_line(fd, "go\n");
    close(fd);
}

static void test_block_on_close_false_returns_while_handler_runs(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    ss_threading_options threading = {.no_block_on_close = true};
    cfg.strategy_options = &threading;
    close_returns_early_and_free_waits(&cfg);
}

static void test_daemon_threads_close_does_not_wait_but_free_does(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    /* no_block_on_close stays false: Python's block_on_close = True */
    ss_threading_options threading = {.daemon_threads = true};
    cfg.strategy_options = &threading;
    close_returns_early_and_free_waits(&cfg);
}

/* ---- Thread pool queue ------------------------------------------------- */

static atomic_int verified;

static bool count_verify(ss_server *srv, ss_request *req)
{
    atomic_fetch_add(&verified, 1);
    return ss_tcp.verify_request(srv, req);
}

/* pool_size 1, pool_queue_size 1: A runs (held), B waits in the queue, and
 * the queue is full. Returns the server with A and B connected. */
static void start_full_pool(test_server *t, ss_server_class *kind, bool refuse,
                            int *a, int *b)
{
    reset_gate();
    atomic_store(&verified, 0);
    *kind = ss_tcp;
    kind->verify_request = count_verify;
    ss_config cfg;
    ss_config_init(&cfg);
    ss_thread_pool_options pool = {
        .pool_size = 1, .queue_size = 1, .refuse_when_full = refuse};
    cfg.strategy_options = &pool;
    assert_int_equal(test_server_start_with(t, kind, &ss_thread_pool,
                                            "127.0.0.1:0", &gate_handler, &cfg,
                                            0.05),
                     0);
    *a = gate_client(t->srv, "a\n");
    assert_true(wait_until_at_least(&gate_started, 1, 10.0));
    *b = gate_client(t->srv, "b\n");
    /* The serving thread verifies B and queues it before it accepts
     * anything else, so once B is verified the next client finds the
     * queue full. */
    assert_true(wait_until_at_least(&verified, 2, 10.0));
}

static bool readable_within(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, ms) == 1;
}

static void test_pool_refuses_connection_when_queue_is_full(void **state)
{
    (void)state;
    test_server t;
    ss_server_class kind;
    int a, b;
    start_full_pool(&t, &kind, true, &a, &b);

    int c = gate_client(t.srv, "c\n");
    assert_true(wait_until_at_least(&verified, 3, 10.0));
    /* Closed without service: end of stream, or a reset because our line
     * was unread when it was closed. A timeout means it was kept. */
    char buf[8];
    ssize_t r = recv(c, buf, sizeof buf, 0);
    if (!(r == 0 || (r < 0 && errno == ECONNRESET)))
        fail_msg("refused client: recv returned %zd (%s), expected EOF or "
                 "ECONNRESET",
                 r, r < 0 ? strerror(errno) : "data");
    close(c);

    atomic_store(&gate_open, true);
    expect_line(a, "a\n");
    expect_line(b, "b\n");
    close(a);
    close(b);
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(atomic_load(&gate_started), 2); /* never C */
}

static void test_pool_makes_connection_wait_when_queue_is_full(void **state)
{
    (void)state;
    test_server t;
    ss_server_class kind;
    int a, b;
    start_full_pool(&t, &kind, false, &a, &b);

    int c = gate_client(t.srv, "c\n");
    assert_true(wait_until_at_least(&verified, 3, 10.0));
    /* Waiting: not refused, not answered. */
    assert_false(readable_within(c, 200));
    assert_int_equal(atomic_load(&gate_started), 1);

    atomic_store(&gate_open, true);
    expect_line(a, "a\n");
    expect_line(b, "b\n");
    expect_line(c, "c\n"); /* served after all */
    close(a);
    close(b);
    close(c);
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(atomic_load(&gate_started), 3);
}

/* ss_server_close() drains the queue: B, accepted and queued while A ran,
 * is still served. */
static void test_pool_close_serves_requests_already_queued(void **state)
{
    (void)state;
    test_server t;
    ss_server_class kind;
    int a, b;
    start_full_pool(&t, &kind, false, &a, &b);
    assert_true(test_server_join_within(&t, 10.0)); /* B is queued by now */

    closer c = {.srv = t.srv};
    assert_int_equal(pthread_create(&c.thread, NULL, close_server, &c), 0);
    test_sleep_ms(100);
    assert_false(atomic_load(&c.returned));
    atomic_store(&gate_open, true);
    assert_true(joined_within(c.thread, 10.0));
    assert_int_equal(c.finished_at_return, 2);
    expect_line(a, "a\n");
    expect_line(b, "b\n");
    close(a);
    close(b);
    ss_server_free(t.srv);
}

/* The same for datagrams. A datagram's reply goes out through the
 * server's own socket, so that socket must outlive the requests that
 * ss_server_close() waits for. */
static atomic_bool dgram_release;

static int held_datagram_handle(ss_request *req)
{
    atomic_fetch_add(&gate_started, 1);
    for (int i = 0; i < 10000 && !atomic_load(&dgram_release); i++)
        test_sleep_ms(1);
    char buf[64];
    ssize_t n = ss_read(req, buf, sizeof buf);
    int rc = n > 0 && ss_write_all(req, buf, (size_t)n) == n ? 0 : -1;
    atomic_fetch_add(&gate_finished, 1);
    return rc;
}

static const ss_handler_class held_datagram_handler = {
    .handle = held_datagram_handle};

static atomic_int dgram_errors;

static void count_error(ss_server *srv, ss_request *req, int error)
{
    (void)srv;
    (void)req;
    (void)error;
    atomic_fetch_add(&dgram_errors, 1);
}

/* Two datagrams taken before ss_server_close(): the pool runs the first
 * and queues the second; threading runs both. Close waits for both (pool:
 * drain; threading: block_on_close), and both replies must reach their
 * clients. */
static void close_answers_datagrams_already_taken(const ss_strategy *strategy)
{
    reset_gate();
    atomic_store(&verified, 0);
    atomic_store(&dgram_release, false);
    atomic_store(&dgram_errors, 0);
    ss_server_class kind = ss_udp;
    kind.verify_request = count_verify;
    kind.handle_error = count_error;
    ss_config cfg;
    ss_config_init(&cfg);
    test_options opts = {.pool.pool_size = 1};
    test_use_options(&cfg, strategy, &opts);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &kind, strategy, "127.0.0.1:0",
                                            &held_datagram_handler, &cfg, 0.05),
                     0);
    int a = test_connect(t.srv);
    int b = test_connect(t.srv);
    assert_true(a >= 0 && b >= 0);
    test_send_all(a, "a", 1);
    assert_true(wait_until_at_least(&gate_started, 1, 10.0));
    test_send_all(b, "b", 1);
    assert_true(wait_until_at_least(&verified, 2, 10.0));
    assert_true(test_server_join_within(&t, 10.0));

    closer c = {.srv = t.srv};
    assert_int_equal(pthread_create(&c.thread, NULL, close_server, &c), 0);
    test_sleep_ms(100);
    atomic_store(&dgram_release, true);
    assert_true(joined_within(c.thread, 10.0));
    assert_int_equal(c.finished_at_return, 2);
    int errors = atomic_load(&dgram_errors);
    bool got_a = readable_within(a, 1000);
    bool got_b = readable_within(b, 1000);
    close(a);
    close(b);
    ss_server_free(t.srv);
    if (errors != 0 || !got_a || !got_b)
        fail_msg("after ss_server_close: %d handle_error call(s); reply to "
                 "the first request %s, to the second %s",
                 errors, got_a ? "arrived" : "lost",
                 got_b ? "arrived" : "lost");
}

static void test_pool_close_answers_datagrams_already_taken(void **state)
{
    (void)state;
    close_answers_datagrams_already_taken(&ss_thread_pool);
}

static void test_threading_close_answers_datagrams_being_handled(void **state)
{
    (void)state;
    close_answers_datagrams_already_taken(&ss_threading);
}

int main(int argc, char **argv)
{
    test_start_runtime_threads();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_threading_thousand_connections_leave_no_thread_or_fd),
        cmocka_unit_test(test_pool_thousand_connections_leave_no_thread_or_fd),
        cmocka_unit_test(
            test_max_threads_bounds_running_handlers_and_serves_all),
        cmocka_unit_test(test_block_on_close_waits_for_running_handler),
        cmocka_unit_test(test_block_on_close_false_returns_while_handler_runs),
        cmocka_unit_test(test_daemon_threads_close_does_not_wait_but_free_does),
        cmocka_unit_test(test_pool_refuses_connection_when_queue_is_full),
        cmocka_unit_test(test_pool_makes_connection_wait_when_queue_is_full),
        cmocka_unit_test(test_pool_close_serves_requests_already_queued),
        cmocka_unit_test(test_pool_close_answers_datagrams_already_taken),
        cmocka_unit_test(test_threading_close_answers_datagrams_being_handled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
