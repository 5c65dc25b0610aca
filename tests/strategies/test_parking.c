/*
 * test_parking.c — idle and slow connections hold no worker (ss_park and
 * the core loop's parking lot, lib/core/parking.c).
 *
 * The HTTP handler parks before a request's first byte and half-way
 * through a head; a line handler written for the test parks between
 * lines. Under the bounded strategies (a pool of 2, prefork with 2 sync
 * workers or 2 single-thread pools) hundreds of such connections must not
 * delay a fresh client, which is checked by order of events — the fresh
 * client is answered while every other connection is still open — not by
 * a time threshold. Under thread and coro the same handlers wait in place.
 */
#include "support.h"

#include <sockserv/http.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static bool children_at_least(void *arg)
{
    return test_child_pids(NULL, 0) >= *(int *)arg;
}

/* ---- the HTTP server of these tests ------------------------------------ */

static int do_get(ss_http *h)
{
    static const char body[] = "ok\n";
    ss_http_send_response(h, 200, NULL);
    ss_http_send_header(h, "Content-Length", "3");
    ss_http_end_headers(h);
    int n = ss_http_write(h, body, 3);
    return n < 0 ? n : 0;
}

static const ss_http_method methods[] = {{"GET", do_get}, {NULL, NULL}};
static ss_http_config http_config = {.methods = methods, .quiet = true};
static ss_handler_class http_handler;

typedef struct bounded_case {
    const char *name;
    const ss_strategy *strategy;
    test_options opts;
} bounded_case;

static const bounded_case bounded[] = {
    {"pool2", &ss_thread_pool, {.pool.pool_size = 2}},
    {"prefork2", &ss_prefork, {.prefork.workers = 2}},
    {"prefork2+pool1",
     &ss_prefork,
     {.prefork = {.workers = 2, .worker_strategy = &ss_thread_pool},
      .pool.pool_size = 1}},
    {.name = "sync", .strategy = &ss_sync},
};

static void start_http(test_server *t, const ss_strategy *strategy,
                       test_options *opts, double idle_timeout,
                       double header_timeout)
{
    if (TEST_UNDER_TSAN && strategy == &ss_prefork &&
        opts->prefork.worker_strategy) {
        print_message("skipped under ThreadSanitizer: threads started in a "
                      "forked worker\n");
        skip();
    }
    http_config.idle_timeout = idle_timeout;
    http_config.header_timeout = header_timeout;
    http_handler = ss_http_handler;
    http_handler.class_data = &http_config;
    ss_config cfg = {0};
    test_use_options(&cfg, strategy, opts);
    assert_int_equal(test_server_start_with(t, &ss_tcp, strategy, "127.0.0.1:0",
                                            &http_handler, &cfg, 0.05),
                     0);
}

static const char request[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/* One whole answer ("...\r\n\r\nok\n") on a kept-alive connection. */
static void expect_answer(int fd)
{
    char buf[512];
    size_t got = 0;
    while (got < 4 || !strstr(buf, "\r\n\r\nok\n")) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
        buf[got] = '\0';
    }
    assert_non_null(strstr(buf, "HTTP/1.1 200 "));
}

/* Open, and not closed by the server: nothing to read yet. */
static bool still_open(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Closed by the server within seconds (EOF or a reset). */
static bool closed_within(int fd, double seconds)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)(seconds * 1000)) != 1)
        return false;
    char buf[256];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        ;
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---- idle and half-sent clients do not delay a fresh one ---------------- */

enum { IDLE = 200, PARTIAL = 200 };

static void test_idle_and_slow_clients_do_not_delay_a_fresh_one(void **state)
{
    const bounded_case *b = *state;
    test_options opts = b->opts;
    test_server t;
    start_http(&t, b->strategy, &opts, 30.0, 30.0);
    if (b->strategy == &ss_prefork) {
        int workers = 2;
        assert_true(test_wait_for(children_at_least, &workers, 10.0));
    }
    static int idle[IDLE], partial[PARTIAL];
    /* Each idle one made a keep-alive request and stays, as browsers do. */
    for (int i = 0; i < IDLE; i++) {
        idle[i] = test_connect(t.srv);
        assert_true(idle[i] >= 0);
        test_send_all(idle[i], request, sizeof request - 1);
        expect_answer(idle[i]);
    }
    /* Each partial one sent half a head and stops (a slowloris). */
    for (int i = 0; i < PARTIAL; i++) {
        partial[i] = test_connect(t.srv);
        assert_true(partial[i] >= 0);
        test_send_all(partial[i], "GET / HTTP/1.1\r\nHo", 18);
    }
    /* A fresh client is answered... */
    int fresh = test_connect(t.srv);
    assert_true(fresh >= 0);
    test_send_all(fresh, request, sizeof request - 1);
    expect_answer(fresh);
    /* ... while every other connection is still open and waiting. */
    for (int i = 0; i < IDLE; i++)
        assert_true(still_open(idle[i]));
    for (int i = 0; i < PARTIAL; i++)
        assert_true(still_open(partial[i]));
    /* And an idle one is served again when it comes back. */
    test_send_all(idle[7], request, sizeof request - 1);
    expect_answer(idle[7]);
    /* A partial one that finishes its head is served too. */
    test_send_all(partial[3], "st: t\r\n\r\n", 9);
    expect_answer(partial[3]);

    close(fresh);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    for (int i = 0; i < PARTIAL; i++)
        close(partial[i]);
    test_server_stop(&t);
    assert_int_equal(t.serve_rc, 0);
}

/* ---- deadlines, resets, shutdown ----------------------------------------- */

static void test_parked_connections_close_at_their_deadline(void **state)
{
    const bounded_case *b = *state;
    test_options opts = b->opts;
    test_server t;
    int fds_before = test_count_open_fds();
    start_http(&t, b->strategy, &opts, 0.3, 0.3);
    int fresh = test_connect(t.srv);   /* never sends: first-byte wait */
    int kept = test_connect(t.srv);    /* idle after one request */
    int partial = test_connect(t.srv); /* half a head: 408 at the deadline */
    test_send_all(kept, request, sizeof request - 1);
    expect_answer(kept);
    test_send_all(partial, "GET / HT", 8);
    assert_true(closed_within(fresh, 10.0));
    assert_true(closed_within(kept, 10.0));
    char buf[256];
    size_t n = test_recv_all(partial, buf, sizeof buf - 1);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 408 "));
    close(fresh);
    close(kept);
    close(partial);
    test_server_stop(&t);
    assert_int_equal(test_count_open_fds(), fds_before);
}

static void reset(int fd)
{
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
}

typedef struct fds_target {
    int at_most;
} fds_target;

static bool fds_at_most(void *arg)
{
    return test_count_open_fds() <= ((fds_target *)arg)->at_most;
}

static void test_reset_while_parked_leaks_nothing(void **state)
{
    const bounded_case *b = *state;
    test_options opts = b->opts;
    test_server t;
    start_http(&t, b->strategy, &opts, 30.0, 30.0);
    if (b->strategy == &ss_prefork) {
        int workers = 2;
        assert_true(test_wait_for(children_at_least, &workers, 10.0));
    }
    fds_target idle = {test_count_open_fds()};
    for (int round = 0; round < 50; round++) {
        int kept = test_connect(t.srv);
        int silent = test_connect(t.srv);
        int partial = test_connect(t.srv);
        test_send_all(kept, request, sizeof request - 1);
        expect_answer(kept);
        test_send_all(partial, "GET /", 5);
        reset(kept);
        reset(silent);
        reset(partial);
    }
    /* Every server-side descriptor went with its client. */
    if (b->strategy != &ss_prefork)
        assert_true(test_wait_for(fds_at_most, &idle, 10.0));
    int fresh = test_connect(t.srv);
    test_send_all(fresh, request, sizeof request - 1);
    expect_answer(fresh);
    close(fresh);
    test_server_stop(&t);
    assert_int_equal(t.serve_rc, 0);
}

static void test_shutdown_with_a_thousand_parked_returns_promptly(void **state)
{
    const bounded_case *b = *state;
    test_options opts = b->opts;
    test_server t;
    start_http(&t, b->strategy, &opts, 60.0, 60.0);
    enum { N = 1000 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
        if (i % 2 == 0) { /* half after a request, half before one */
            test_send_all(fds[i], request, sizeof request - 1);
            expect_answer(fds[i]);
        }
    }
    double start = test_now();
    test_server_stop(&t);
    double took = test_now() - start;
    print_message("%s: stopped with %d parked in %.3f s\n", b->name, N, took);
    assert_true(took < 5.0); /* not the idle_timeout of 60 s */
    for (int i = 0; i < N; i++) {
        assert_true(closed_within(fds[i], 10.0));
        close(fds[i]);
    }
}

/* ---- max_connections counts parked connections ------------------------- */

static void test_parked_connections_count_against_max_connections(void **state)
{
    (void)state;
    http_config.idle_timeout = 30.0;
    http_config.header_timeout = 30.0;
    http_handler = ss_http_handler;
    http_handler.class_data = &http_config;
    ss_thread_pool_options pool = {.pool_size = 2};
    ss_config cfg = {.strategy_options = &pool, .max_connections = 3};
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_thread_pool,
                                            "127.0.0.1:0", &http_handler, &cfg,
                                            0.05),
                     0);
    int parked[3];
    for (int i = 0; i < 3; i++) {
        parked[i] = test_connect(t.srv);
        test_send_all(parked[i], request, sizeof request - 1);
        expect_answer(parked[i]);
    }
    /* The fourth waits in the backlog: three are parked, not gone. */
    int fourth = test_connect(t.srv);
    test_send_all(fourth, request, sizeof request - 1);
    struct pollfd p = {.fd = fourth, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 300), 0);
    close(parked[0]); /* a place frees up */
    expect_answer(fourth);
    close(fourth);
    close(parked[1]);
    close(parked[2]);
    test_server_stop(&t);
}

/* ---- a handler of one's own: a line at a time, parked in between -------- */

/* Echoes each line it can read whole right now; parks when it has none,
 * keeping its partial line in its state. */
typedef struct line_state {
    char line[128];
    size_t len;
} line_state;

static int line_handle(ss_request *req)
{
    line_state *st = ss_request_state(req);
    for (;;) {
        char c;
        int n = ss_read_nowait(req, &c, 1);
        if (n == -EAGAIN)
            return ss_park(req, 30.0);
        if (n <= 0)
            return n < 0 ? n : 0;
        if (st->len == sizeof st->line)
            return -EMSGSIZE;
        st->line[st->len++] = c;
        if (c == '\n') {
            int w = ss_write_all(req, st->line, st->len);
            if (w < 0)
                return w;
            st->len = 0;
        }
    }
}

static const ss_handler_class line_handler = {
    .handle = line_handle,
    .state_size = sizeof(line_state),
};

typedef struct any_case {
    const char *name;
    const ss_strategy *strategy;
    test_options opts;
} any_case;

static const any_case every[] = {
    {.name = "sync", .strategy = &ss_sync},
    {.name = "thread", .strategy = &ss_threading},
    {"pool1", &ss_thread_pool, {.pool.pool_size = 1}},
    {.name = "fork", .strategy = &ss_forking},
    {"prefork1", &ss_prefork, {.prefork.workers = 1}},
    {"coro1", &ss_coroutines, {.coro.threads = 1}},
};

/* Twenty clients take turns line by line: under sync, a pool of one and
 * a single sync prefork worker too, because each parks between lines. */
static void test_parking_handler_interleaves_clients(void **state)
{
    const any_case *a = *state;
    test_options opts = a->opts;
    ss_config cfg = {0};
    test_use_options(&cfg, a->strategy, &opts);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, a->strategy,
                                            "127.0.0.1:0", &line_handler, &cfg,
                                            0.05),
                     0);
    enum { CLIENTS = 20, LINES = 5 };
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = test_connect(t.srv);
    for (int line = 0; line < LINES; line++)
        for (int i = 0; i < CLIENTS; i++) {
            char text[32];
            /* Each line in two pieces: the handler parks in between. */
            int n = snprintf(text, sizeof text, "client %d line %d\n", i, line);
            test_send_all(fds[i], text, 5);
            test_sleep(0.001);
            test_send_all(fds[i], text + 5, (size_t)n - 5);
            char back[32];
            test_recv_exact(fds[i], back, (size_t)n);
            assert_memory_equal(back, text, (size_t)n);
        }
    for (int i = 0; i < CLIENTS; i++) {
        shutdown(fds[i], SHUT_WR);
        char c;
        assert_int_equal(test_recv_all(fds[i], &c, 1), 0); /* clean end */
        close(fds[i]);
    }
    test_server_stop(&t);
    assert_int_equal(t.serve_rc, 0);
}

/* ss_park_until: called back at the deadline. */
static int callback_handle(ss_request *req)
{
    int *calls = ss_request_state(req);
    if ((*calls)++ == 0)
        return ss_park_until(req, 0.2);
    int n = ss_write_all(req, "late\n", 5);
    return n < 0 ? n : 0;
}

static const ss_handler_class callback_handler = {
    .handle = callback_handle,
    .state_size = sizeof(int),
};

static void test_park_until_calls_back_at_the_deadline(void **state)
{
    const any_case *a = *state;
    test_options opts = a->opts;
    ss_config cfg = {0};
    test_use_options(&cfg, a->strategy, &opts);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, a->strategy,
                                            "127.0.0.1:0", &callback_handler,
                                            &cfg, 0.05),
                     0);
    int fd = test_connect(t.srv);
    char buf[16];
    assert_int_equal(test_recv_all(fd, buf, sizeof buf), 5);
    assert_memory_equal(buf, "late\n", 5);
    close(fd);
    test_server_stop(&t);
}

static int datagram_park(ss_request *req)
{
    return ss_park(req, 1.0) == -EOPNOTSUPP ? 0 : -EINVAL;
}

static void test_datagrams_cannot_park(void **state)
{
    (void)state;
    static const ss_handler_class h = {.handle = datagram_park};
    test_server t;
    ss_config cfg = {0};
    assert_int_equal(test_server_start(&t, &ss_udp, "127.0.0.1:0", &h, &cfg),
                     0);
    int fd = test_connect(t.srv);
    test_send_all(fd, "x", 1);
    char c;
    /* The reply (empty) comes: the handler saw -EOPNOTSUPP and ended. */
    assert_int_equal(test_recv_all(fd, &c, 1), 0);
    close(fd);
    test_server_stop(&t);
}

/* Named after the case, e.g. ".../pool2", for the test filter. */
#define BOUNDED(test, i, name)                                                 \
    {                                                                          \
#test "/" name, test, NULL, NULL, (void *)&bounded[i]                  \
    }
#define EVERY(test, i, name)                                                   \
    {                                                                          \
#test "/" name, test, NULL, NULL, (void *)&every[i]                    \
    }

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    /* A thousand parked connections are two thousand descriptors here. */
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 4096 &&
        lim.rlim_max >= 4096) {
        lim.rlim_cur = 4096;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    const struct CMUnitTest tests[] = {
        BOUNDED(test_idle_and_slow_clients_do_not_delay_a_fresh_one, 0,
                "pool2"),
        BOUNDED(test_idle_and_slow_clients_do_not_delay_a_fresh_one, 1,
                "prefork2"),
        BOUNDED(test_idle_and_slow_clients_do_not_delay_a_fresh_one, 2,
                "prefork2+pool1"),
        BOUNDED(test_idle_and_slow_clients_do_not_delay_a_fresh_one, 3, "sync"),
        BOUNDED(test_parked_connections_close_at_their_deadline, 0, "pool2"),
        BOUNDED(test_parked_connections_close_at_their_deadline, 3, "sync"),
        BOUNDED(test_reset_while_parked_leaks_nothing, 0, "pool2"),
        BOUNDED(test_reset_while_parked_leaks_nothing, 1, "prefork2"),
        BOUNDED(test_shutdown_with_a_thousand_parked_returns_promptly, 0,
                "pool2"),
        BOUNDED(test_shutdown_with_a_thousand_parked_returns_promptly, 1,
                "prefork2"),
        cmocka_unit_test(test_parked_connections_count_against_max_connections),
        EVERY(test_parking_handler_interleaves_clients, 0, "sync"),
        EVERY(test_parking_handler_interleaves_clients, 1, "thread"),
        EVERY(test_parking_handler_interleaves_clients, 2, "pool1"),
        EVERY(test_parking_handler_interleaves_clients, 3, "fork"),
        EVERY(test_parking_handler_interleaves_clients, 4, "prefork1"),
        EVERY(test_parking_handler_interleaves_clients, 5, "coro1"),
        EVERY(test_park_until_calls_back_at_the_deadline, 0, "sync"),
        EVERY(test_park_until_calls_back_at_the_deadline, 1, "thread"),
        EVERY(test_park_until_calls_back_at_the_deadline, 2, "pool1"),
        EVERY(test_park_until_calls_back_at_the_deadline, 3, "fork"),
        EVERY(test_park_until_calls_back_at_the_deadline, 5, "coro1"),
        cmocka_unit_test(test_datagrams_cannot_park),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
