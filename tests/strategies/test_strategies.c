/*
 * test_strategies.c — what every concurrency strategy promises, proved for
 * every server kind over real sockets: the matrix
 *
 *     {sync, fork, thread, pool, prefork, prefork+thread, coro}
 *   × {TCP, UDP, Unix stream, Unix datagram}
 *
 * Ported from CPython's test_socketserver (run_server with three clients,
 * test_shutdown's twenty racing servers, test_threading_handled and
 * test_forking_handled's "handle_error exactly once, in the worker") and
 * extended with what libsockserv adds: requests really run in parallel (ten
 * slow clients finish in far less than the serial time), every strategy
 * leaves no descriptor, thread or child process behind, and the one-call
 * constructors (ThreadingTCPServer…) build working servers.
 *
 * Forking strategies run handlers in child processes of this test process.
 * Those children must never call cmocka (a failed assertion there would
 * unwind into a copy of the test runner), so handlers only report through
 * descriptors; every assertion happens here in the parent. Children also
 * inherit this process's client sockets, so clients end their side with
 * shutdown(SHUT_WR), never by relying on close() alone.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ThreadSanitizer cannot follow a process that starts threads after a
 * fork() made from a multi-threaded process (it stops it: die_after_fork).
 * That is exactly what a prefork worker running the threading strategy
 * does, so under TSan (TEST_UNDER_TSAN, support/sanitizers.h) those cases
 * are skipped; everything else runs. */

/* ---- The matrix -------------------------------------------------------- */

typedef struct strategy_case {
    const char *name;
    const ss_strategy *strategy;
    /* Handlers run in another process (fork, prefork). */
    bool in_child;
    int pool_size;
    int workers;
    const ss_strategy *worker_strategy;
} strategy_case;

typedef struct kind_case {
    const char *name;
    const ss_server_class *kind;
} kind_case;

typedef struct matrix_case {
    const strategy_case *strategy;
    const kind_case *kind;
} matrix_case;

static const strategy_case strategies[] = {
    {"sync", &ss_sync, false, 0, 0, NULL},
    {"fork", &ss_forking, true, 0, 0, NULL},
    {"thread", &ss_threading, false, 0, 0, NULL},
    {"pool", &ss_thread_pool, false, 4, 0, NULL},
    {"prefork", &ss_prefork, true, 0, 2, NULL},
    {"prefork+thread", &ss_prefork, true, 0, 2, &ss_threading},
    {"coro", &ss_coroutines, false, 0, 0, NULL},
};
#define N_STRATEGIES (sizeof strategies / sizeof strategies[0])

/* For the concurrency proof: setups that can run ten requests at once. */
static const strategy_case parallel_strategies[] = {
    {"fork", &ss_forking, true, 0, 0, NULL},
    {"thread", &ss_threading, false, 0, 0, NULL},
    {"pool10", &ss_thread_pool, false, 10, 0, NULL},
    {"prefork2+thread", &ss_prefork, true, 0, 2, &ss_threading},
    {"prefork10", &ss_prefork, true, 0, 10, NULL},
};
#define N_PARALLEL (sizeof parallel_strategies / sizeof parallel_strategies[0])

static const kind_case kinds[] = {
    {"tcp", &ss_tcp},
    {"udp", &ss_udp},
    {"unix_stream", &ss_unix_stream},
    {"unix_datagram", &ss_unix_datagram},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

/* Skip (with a word why) what this build cannot run. */
static void skip_if_unsupported(const strategy_case *s)
{
    if (TEST_UNDER_TSAN && s->in_child && s->worker_strategy) {
        print_message("skipped under ThreadSanitizer: threads started in a "
                      "forked worker\n");
        skip();
    }
}

static void config_for(const strategy_case *s, ss_config *cfg,
                       test_options *opts)
{
    skip_if_unsupported(s);
    ss_config_init(cfg);
    cfg->unlink_on_close = true;
    *opts = (test_options){0};
    opts->pool.pool_size = s->pool_size;
    opts->prefork.workers = s->workers;
    opts->prefork.worker_strategy = s->worker_strategy;
    test_use_options(cfg, s->strategy, opts);
}

static const char *address_for(const kind_case *k, char *buf, size_t n)
{
    if (k->kind->family == AF_UNIX)
        return test_unix_address(buf, n, k->name);
    snprintf(buf, n, "127.0.0.1:0");
    return buf;
}

static bool is_datagram(const kind_case *k)
{
    return k->kind->socket_type == SOCK_DGRAM;
}

/* ---- What a finished test must leave behind: nothing ------------------- */

/* ---- Clients ----------------------------------------------------------- */

/* End a stream client's side and check the server closes its side with no
 * more data; then close. Datagram clients just close. */
static void finish_client(int fd, bool datagram)
{
    if (!datagram) {
        shutdown(fd, SHUT_WR);
        char extra[16];
        assert_int_equal(test_recv_all(fd, extra, sizeof extra), 0);
    }
    close(fd);
}

/* ---- Echo: three clients ----------------------------------------------- */

/* CPython's run_server, with the three clients connected at once before
 * any is served: each gets its own line back. */
static void test_echoes_three_clients(void **state)
{
    const matrix_case *mc = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(mc->strategy, &cfg, &opts);
    char address[108];
    test_server t;
    assert_int_equal(
        test_server_start_with(&t, mc->kind->kind, mc->strategy->strategy,
                               address_for(mc->kind, address, sizeof address),
                               &test_echo_handler, &cfg, 0.05),
        0);
    assert_ptr_equal(ss_server_strategy(t.srv), mc->strategy->strategy);

    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "hello from client %d\n", i);
        test_expect_echo(fds[i], line);
        finish_client(fds[i], is_datagram(mc->kind));
    }
    assert_true(test_server_stop_within(&t, 15.0));
    test_expect_baseline(&b);
}

/* ---- handle_error: once, where the handler ran -------------------------- */

/* What the failing request's handle_error saw, sent through a pipe so that
 * it arrives from a child process as well as from a thread. One write of
 * a few bytes to a pipe is atomic. */
typedef struct error_report {
    int error;
    pid_t pid;
    bool on_handler_thread;
} error_report;

static _Thread_local pid_t handler_tid;

static int failing_handle(ss_request *req)
{
    handler_tid = gettid();
    char buf[64];
    (void)ss_read(req, buf, sizeof buf); /* the client's byte */
    return 7;
}

static const ss_handler_class failing_handler = {.handle = failing_handle};

static void report_error(ss_server *srv, ss_request *req, int error)
{
    (void)req;
    int *pipe_fds = ss_server_user(srv);
    /* Zeroed first: the struct's padding goes down the pipe too. */
    error_report r;
    memset(&r, 0, sizeof r);
    r.error = error;
    r.pid = getpid();
    r.on_handler_thread = handler_tid == gettid();
    ssize_t w;
    do
        w = write(pipe_fds[1], &r, sizeof r);
    while (w < 0 && errno == EINTR);
}

static void
test_handler_failure_calls_handle_error_once_where_it_ran(void **state)
{
    const matrix_case *mc = *state;
    test_baseline b = test_take_baseline(true);
    int pipe_fds[2];
    assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
    ss_config cfg;
    test_options opts = {0};
    config_for(mc->strategy, &cfg, &opts);
    cfg.user = pipe_fds;
    ss_server_class kind = *mc->kind->kind;
    kind.handle_error = report_error;
    char address[108];
    test_server t;
    assert_int_equal(
        test_server_start_with(&t, &kind, mc->strategy->strategy,
                               address_for(mc->kind, address, sizeof address),
                               &failing_handler, &cfg, 0.05),
        0);

    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_send_all(fd, "x", 1);
    struct pollfd pfd = {.fd = pipe_fds[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    error_report r;
    assert_int_equal(read(pipe_fds[0], &r, sizeof r), (ssize_t)sizeof r);
    assert_int_equal(r.error, 7);
    assert_true(r.on_handler_thread);
    if (mc->strategy->in_child)
        assert_int_not_equal(r.pid, getpid());
    else
        assert_int_equal(r.pid, getpid());
    if (is_datagram(mc->kind))
        close(fd);
    else
        finish_client(fd, false);

    /* After close every worker is done: a second report would be here. */
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK), 0);
    ssize_t more = read(pipe_fds[0], &r, sizeof r);
    if (more != -1 || errno != EAGAIN)
        fail_msg("handle_error was called more than once (read %zd)", more);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    test_expect_baseline(&b);
}

/* ---- Shutdown race ----------------------------------------------------- */

/* CPython's test_shutdown: twenty servers, each serve_forever() started on
 * its own thread, each shut down at once — whether or not its loop has
 * begun. Every loop must stop, none may hang. */
static void test_shutdown_race_stops_twenty_servers(void **state)
{
    const matrix_case *mc = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(mc->strategy, &cfg, &opts);
    if (opts.prefork.workers > 1)
        opts.prefork.workers = 1; /* twenty supervisors: keep the forks down */
    /* A prefork stop that its workers do not notice ends only when
     * graceful_timeout kills them. Keep that short, so such a failure
     * costs seconds rather than minutes, and catch it below by the time
     * the twenty stops took: a few milliseconds each when they work. */
    opts.prefork.graceful_timeout = 0.25;
    enum { N = 20 };
    test_server servers[N];
    for (int i = 0; i < N; i++) {
        char address[108];
        assert_int_equal(test_server_start_with(
                             &servers[i], mc->kind->kind,
                             mc->strategy->strategy,
                             address_for(mc->kind, address, sizeof address),
                             &test_echo_handler, &cfg, 0.05),
                         0);
    }
    double start = test_now();
    for (int i = 0; i < N; i++) {
        assert_true(test_server_stop_within(&servers[i], 15.0));
        assert_int_equal(servers[i].serve_rc, 0);
    }
    double elapsed = test_now() - start;
    if (elapsed > 2.5)
        fail_msg("stopping %d %s servers took %.1f s: some waited for a "
                 "timeout instead of stopping at once",
                 N, mc->strategy->name, elapsed);
    test_expect_baseline(&b);
}

/* ---- Concurrency ------------------------------------------------------- */

#define SLOW_CLIENTS 10
#define SLOW_HANDLER_NS 300000000L

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Read a line, hold the request for 300 ms, answer "done". */
static int slow_handle(ss_request *req)
{
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : -1;
    sleep_ns(SLOW_HANDLER_NS);
    return ss_write_all(req, "done\n", 5) == 5 ? 0 : -1;
}

static const ss_handler_class slow_handler = {.handle = slow_handle};

static bool children_at_least(void *arg)
{
    return test_child_pids(NULL, 0) >= *(int *)arg;
}

/* Ten clients whose requests each take 300 ms: served one after another
 * they need 3 s; run side by side, well under 2 s even on a busy machine. */
static void test_ten_slow_clients_are_served_concurrently(void **state)
{
    const matrix_case *mc = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(mc->strategy, &cfg, &opts);
    char address[108];
    test_server t;
    assert_int_equal(
        test_server_start_with(&t, mc->kind->kind, mc->strategy->strategy,
                               address_for(mc->kind, address, sizeof address),
                               &slow_handler, &cfg, 0.05),
        0);
    if (mc->strategy->strategy == &ss_prefork) {
        /* Time the requests, not the start of the prefork workers. */
        int workers = opts.prefork.workers;
        assert_true(test_wait_for(children_at_least, &workers, 10.0));
    }

    int fds[SLOW_CLIENTS];
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
    }
    double start = test_now();
    for (int i = 0; i < SLOW_CLIENTS; i++)
        test_send_all(fds[i], "go\n", 3);
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        char reply[5];
        test_recv_exact(fds[i], reply, sizeof reply);
        assert_memory_equal(reply, "done\n", 5);
    }
    double elapsed = test_now() - start;
    print_message("%s/%s: %d x 0.3 s requests in %.2f s\n", mc->strategy->name,
                  mc->kind->name, SLOW_CLIENTS, elapsed);
    assert_true(elapsed < 2.0);
    for (int i = 0; i < SLOW_CLIENTS; i++)
        close(fds[i]);
    assert_true(test_server_stop_within(&t, 15.0));
    test_expect_baseline(&b);
}

/* ---- One-call constructors --------------------------------------------- */

/* ThreadingTCPServer, ForkingUDPServer, …: each builds its kind with its
 * strategy, and serves. */
static void test_one_call_constructors_build_working_servers(void **state)
{
    (void)state;
    test_baseline b = test_take_baseline(true);
    typedef int (*constructor)(ss_server **, const char *,
                               const ss_handler_class *, const ss_config *);
    struct {
        const char *name;
        constructor make;
        const ss_server_class *kind;
        const ss_strategy *strategy;
    } cases[] = {
        {"ThreadingTCPServer", ss_threading_tcp_server_new, &ss_tcp,
         &ss_threading},
        {"ThreadingUDPServer", ss_threading_udp_server_new, &ss_udp,
         &ss_threading},
        {"ThreadingUnixStreamServer", ss_threading_unix_stream_server_new,
         &ss_unix_stream, &ss_threading},
        {"ThreadingUnixDatagramServer", ss_threading_unix_datagram_server_new,
         &ss_unix_datagram, &ss_threading},
        {"ForkingTCPServer", ss_forking_tcp_server_new, &ss_tcp, &ss_forking},
        {"ForkingUDPServer", ss_forking_udp_server_new, &ss_udp, &ss_forking},
        {"ForkingUnixStreamServer", ss_forking_unix_stream_server_new,
         &ss_unix_stream, &ss_forking},
        {"ForkingUnixDatagramServer", ss_forking_unix_datagram_server_new,
         &ss_unix_datagram, &ss_forking},
    };
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.unlink_on_close = true;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char address[108];
        if (cases[i].kind->family == AF_UNIX)
            test_unix_address(address, sizeof address, "ctor");
        else
            snprintf(address, sizeof address, "127.0.0.1:0");
        test_server t = {0};
        int rc = cases[i].make(&t.srv, address, &test_echo_handler, &cfg);
        if (rc != 0)
            fail_msg("%s: %s", cases[i].name, ss_strerror(rc));
        assert_ptr_equal(ss_server_strategy(t.srv), cases[i].strategy);
        assert_string_equal(ss_server_kind(t.srv)->name, cases[i].kind->name);
        assert_int_equal(test_server_run(&t, 0.05), 0);
        for (int n = 0; n < 2; n++) {
            int fd = test_connect(t.srv);
            assert_true(fd >= 0);
            test_expect_echo(fd, "hello\n");
            finish_client(fd, cases[i].kind->socket_type == SOCK_DGRAM);
        }
        assert_true(test_server_stop_within(&t, 15.0));
    }
    test_expect_baseline(&b);
}

/* ---- Registration ------------------------------------------------------ */

#define MAX_TESTS 128

static struct CMUnitTest tests[MAX_TESTS];
static matrix_case cases[MAX_TESTS];
static char names[MAX_TESTS][96];
static size_t n_tests;

static void add(const char *what, CMUnitTestFunction fn, const strategy_case *s,
                const kind_case *k)
{
    if (n_tests == MAX_TESTS)
        abort();
    cases[n_tests] = (matrix_case){s, k};
    snprintf(names[n_tests], sizeof names[n_tests], "%s/%s/%s", what,
             s ? s->name : "-", k ? k->name : "-");
    tests[n_tests] = (struct CMUnitTest){
        .name = names[n_tests],
        .test_func = fn,
        .initial_state = &cases[n_tests],
    };
    n_tests++;
}

/* An optional argument selects tests by name, e.g. '*prefork*'. */
int main(int argc, char **argv)
{
    test_start_runtime_threads();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    for (size_t s = 0; s < N_STRATEGIES; s++)
        for (size_t k = 0; k < N_KINDS; k++)
            add("test_echoes_three_clients", test_echoes_three_clients,
                &strategies[s], &kinds[k]);
    for (size_t s = 0; s < N_STRATEGIES; s++)
        for (size_t k = 0; k < N_KINDS; k++)
            add("test_handler_failure_calls_handle_error_once_where_it_ran",
                test_handler_failure_calls_handle_error_once_where_it_ran,
                &strategies[s], &kinds[k]);
    for (size_t s = 0; s < N_STRATEGIES; s++)
        for (size_t k = 0; k < N_KINDS; k++)
            add("test_shutdown_race_stops_twenty_servers",
                test_shutdown_race_stops_twenty_servers, &strategies[s],
                &kinds[k]);
    for (size_t s = 0; s < N_PARALLEL; s++)
        for (size_t k = 0; k < N_KINDS; k++)
            add("test_ten_slow_clients_are_served_concurrently",
                test_ten_slow_clients_are_served_concurrently,
                &parallel_strategies[s], &kinds[k]);
    add("test_one_call_constructors_build_working_servers",
        test_one_call_constructors_build_working_servers, NULL, NULL);
    return _cmocka_run_group_tests("test_strategies", tests, n_tests, NULL,
                                   NULL);
}
