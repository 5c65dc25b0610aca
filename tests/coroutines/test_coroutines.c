/*
 * test_coroutines.c — ss_coroutines over real sockets: the same handler
 * source as every other strategy, run cooperatively on epoll schedulers.
 *
 * First the CPython scenarios for every server kind (echo with three
 * clients, twenty racing shutdowns, handle_error exactly once, state and
 * user reachable), with the shared test_echo_handler. Then what only a
 * cooperative strategy has to prove, mostly with coro_threads = 1 so that
 * "it did not stall" can only mean "it parked and let another run":
 * sleeping handlers overlap, ss_run_blocking keeps the loop free,
 * ss_wait_fd wakes on a pipe, ss_yield interleaves, per-call timeouts fire
 * from the timer heap, the shutdown policy (idle requests cancelled and
 * not reported, writers given shutdown_grace), ss_handle_request runs one
 * request on a private scheduler, nothing leaks after a thousand
 * connections, and ten thousand connections are held open at once.
 *
 * The ten thousand clients live in a forked child, so that the server
 * process holds only the server's ends (one descriptor each) and its
 * resident memory can be read before and after. The child never calls
 * cmocka: it reports through a pipe and the parent asserts.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- Shared helpers ---------------------------------------------------- */

typedef struct kind_case {
    const char *name;
    const ss_server_class *kind;
} kind_case;

static const kind_case kinds[] = {
    {"tcp", &ss_tcp},
    {"udp", &ss_udp},
    {"unix_stream", &ss_unix_stream},
    {"unix_datagram", &ss_unix_datagram},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

static const kind_case tcp_case = {"tcp", &ss_tcp};

static bool is_datagram(const kind_case *k)
{
    return k->kind->socket_type == SOCK_DGRAM;
}

static const char *address_for(const kind_case *k, char *buf, size_t n)
{
    if (k->kind->family == AF_UNIX)
        return test_unix_address(buf, n, k->name);
    snprintf(buf, n, "127.0.0.1:0");
    return buf;
}

/* Coroutine defaults plus what every test here wants. threads = 1 makes
 * cooperation the only way two requests can make progress together. */
static void coro_config(ss_config *cfg, int threads)
{
    static const ss_coroutine_options by_threads[] = {
        {.threads = 0}, {.threads = 1}, {.threads = 2}};
    assert_in_range(threads, 0, 2);
    ss_config_init(cfg);
    cfg->unlink_on_close = true;
    cfg->strategy_options = &by_threads[threads];
}

static void start(test_server *t, const kind_case *k, const ss_handler_class *h,
                  const ss_config *cfg)
{
    char address[108];
    int rc = test_server_start_with(t, k->kind, &ss_coroutines,
                                    address_for(k, address, sizeof address), h,
                                    cfg, 0.05);
    if (rc != 0)
        fail_msg("starting a coroutine %s server: %s", k->name,
                 ss_strerror(rc));
    assert_ptr_equal(ss_server_strategy(t->srv), &ss_coroutines);
}

static int connect_to(test_server *t)
{
    int fd = test_connect(t->srv);
    if (fd < 0)
        fail_msg("connect: %s", ss_strerror(fd));
    return fd;
}

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

/* Read one line (up to '\n') the client receives; the test fails on EOF
 * or after the client's 10 s receive timeout. */
static void recv_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail_msg("recv line: %s", r == 0 ? "EOF" : strerror(errno));
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
}

/* Whether fd has something to read within ms. */
static bool readable_within(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc;
    do
        rc = poll(&pfd, 1, ms);
    while (rc < 0 && errno == EINTR);
    return rc == 1;
}

static bool atomic_at_least(atomic_int *counter, int n, double seconds)
{
    double deadline = test_now() + seconds;
    while (atomic_load(counter) < n) {
        if (test_now() > deadline)
            return false;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return true;
}

/* Errors reported through handle_error, counted (and the last one kept):
 * the server's user pointer is a struct that starts with this. */
typedef struct error_count {
    atomic_int count;
    atomic_int last;
} error_count;

static void count_error(ss_server *srv, ss_request *req, int error)
{
    (void)req;
    error_count *e = ss_server_user(srv);
    atomic_store(&e->last, error);
    atomic_fetch_add(&e->count, 1);
}

/* ---- CPython's scenarios, every server kind ---------------------------- */

/* CPython's run_server: three clients connected at once, each gets its own
 * line back, through the handler every other strategy's tests use. Two
 * schedulers, so the shared listening socket is exercised too. */
static void test_echoes_three_clients(void **state)
{
    const kind_case *k = *state;
    test_baseline b = test_take_baseline(false);
    ss_config cfg;
    coro_config(&cfg, 2);
    test_server t;
    start(&t, k, &test_echo_handler, &cfg);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = connect_to(&t);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "hello from coroutine client %d\n", i);
        test_expect_echo(fds[i], line);
        finish_client(fds[i], is_datagram(k));
    }
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(t.serve_rc, 0);
    test_expect_baseline(&b);
}

/* CPython's test_shutdown: twenty servers, each shut down at once whether
 * or not its schedulers have started. */
static void test_shutdown_race_stops_twenty_servers(void **state)
{
    const kind_case *k = *state;
    test_baseline b = test_take_baseline(false);
    ss_config cfg;
    coro_config(&cfg, 2);
    enum { N = 20 };
    test_server servers[N];
    for (int i = 0; i < N; i++)
        start(&servers[i], k, &test_echo_handler, &cfg);
    double begin = test_now();
    for (int i = 0; i < N; i++) {
        assert_true(test_server_stop_within(&servers[i], 10.0));
        assert_int_equal(servers[i].serve_rc, 0);
    }
    double elapsed = test_now() - begin;
    if (elapsed > 2.5)
        fail_msg("stopping %d coroutine servers took %.1f s", N, elapsed);
    test_expect_baseline(&b);
}

static int failing_handle(ss_request *req)
{
    char buf[64];
    (void)ss_read(req, buf, sizeof buf); /* the client's byte */
    return 7;
}

static const ss_handler_class failing_handler = {.handle = failing_handle};

/* CPython's test_threading_handled: a failing handler is reported once,
 * with its own return value. */
static void test_handler_failure_calls_handle_error_once(void **state)
{
    const kind_case *k = *state;
    test_baseline b = test_take_baseline(false);
    error_count errors = {0};
    ss_config cfg;
    coro_config(&cfg, 2);
    cfg.user = &errors;
    ss_server_class kind = *k->kind;
    kind.handle_error = count_error;
    kind_case overridden = {k->name, &kind};
    test_server t;
    start(&t, &overridden, &failing_handler, &cfg);
    int fd = connect_to(&t);
    test_send_all(fd, "x", 1);
    assert_true(atomic_at_least(&errors.count, 1, 10.0));
    assert_int_equal(atomic_load(&errors.last), 7);
    if (is_datagram(k))
        close(fd);
    else
        finish_client(fd, false);
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(atomic_load(&errors.count), 1);
    test_expect_baseline(&b);
}

typedef struct request_state {
    int uses;
    char scratch[120];
} request_state;

static int magic_user;

static int state_handle(ss_request *req)
{
    char buf[16];
    (void)ss_read(req, buf, sizeof buf);
    request_state *st = ss_request_state(req);
    static const request_state zero;
    bool ok = st && memcmp(st, &zero, sizeof zero) == 0 &&
              ss_request_user(req) == &magic_user &&
              ss_server_user(ss_request_server(req)) == &magic_user;
    if (st)
        st->uses++; /* a reused, dirty state would show on the next one */
    const char *answer = ok ? "ok\n" : "bad\n";
    return ss_write_all(req, answer, strlen(answer)) < 0 ? -1 : 0;
}

static const ss_handler_class state_handler = {
    .state_size = sizeof(request_state),
    .handle = state_handle,
};

/* The handler's zeroed state and config.user reach it on a coroutine,
 * for every request (the second one must not see the first's state). */
static void test_state_and_user_reach_the_handler(void **state)
{
    const kind_case *k = *state;
    test_baseline b = test_take_baseline(false);
    ss_config cfg;
    coro_config(&cfg, 2);
    cfg.user = &magic_user;
    test_server t;
    start(&t, k, &state_handler, &cfg);
    for (int i = 0; i < 2; i++) {
        int fd = connect_to(&t);
        test_send_all(fd, "?", 1);
        char answer[8];
        test_recv_exact(fd, answer, 3);
        assert_memory_equal(answer, "ok\n", 3);
        finish_client(fd, is_datagram(k));
    }
    assert_true(test_server_stop_within(&t, 10.0));
    test_expect_baseline(&b);
}

/* ss_handle_request() with no serve loop: the one request runs as a
 * coroutine on a private scheduler, to its end, before the call returns. */
static void test_handle_request_handles_one_request(void **state)
{
    const kind_case *k = *state;
    test_baseline b = test_take_baseline(false);
    ss_config cfg;
    coro_config(&cfg, 1);
    char address[108];
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, k->kind, &ss_coroutines,
                                   address_for(k, address, sizeof address),
                                   &test_echo_handler, &cfg),
                     0);
    int before = test_echo_request_count();
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    /* Everything is sent (and, for a stream, the end of it) before the
     * server runs: the request can finish without this thread's help. */
    test_send_all(fd, "one request\n", 12);
    if (!is_datagram(k))
        assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(test_echo_request_count(), before + 1);
    char back[32];
    size_t got = test_recv_all(fd, back, sizeof back);
    assert_int_equal(got, 12);
    assert_memory_equal(back, "one request\n", 12);
    close(fd);
    ss_server_free(srv);
    test_expect_baseline(&b);
}

/* ---- Cooperation on one thread ----------------------------------------- */

#define SLEEPERS 100

static atomic_int sleeper_tid;
static atomic_bool sleepers_on_other_threads;

static int sleeping_handle(ss_request *req)
{
    char line[16];
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : -1;
    int tid = gettid(), expected = 0;
    if (!atomic_compare_exchange_strong(&sleeper_tid, &expected, tid) &&
        expected != tid)
        atomic_store(&sleepers_on_other_threads, true);
    int rc = ss_sleep(req, 0.3);
    if (rc < 0)
        return rc;
    return ss_write_all(req, "done\n", 5) == 5 ? 0 : -1;
}

static const ss_handler_class sleeping_handler = {.handle = sleeping_handle};

/* A hundred handlers each sleeping 0.3 s take 30 s one after another; on
 * one scheduler thread they finish together, because ss_sleep parks the
 * coroutine instead of the thread. */
static void test_hundred_sleeping_handlers_overlap_on_one_thread(void **state)
{
    (void)state;
    ss_config cfg;
    coro_config(&cfg, 1);
    atomic_store(&sleeper_tid, 0);
    atomic_store(&sleepers_on_other_threads, false);
    test_server t;
    start(&t, &tcp_case, &sleeping_handler, &cfg);
    int fds[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        fds[i] = connect_to(&t);
    double begin = test_now();
    for (int i = 0; i < SLEEPERS; i++)
        test_send_all(fds[i], "go\n", 3);
    for (int i = 0; i < SLEEPERS; i++) {
        char reply[5];
        test_recv_exact(fds[i], reply, sizeof reply);
        assert_memory_equal(reply, "done\n", 5);
    }
    double elapsed = test_now() - begin;
    print_message("%d handlers sleeping 0.3 s each, one thread: %.2f s\n",
                  SLEEPERS, elapsed);
    assert_true(elapsed < 2.0);
    assert_false(atomic_load(&sleepers_on_other_threads));
    for (int i = 0; i < SLEEPERS; i++)
        close(fds[i]);
    assert_true(test_server_stop_within(&t, 10.0));
}

static atomic_bool blocking_started, blocking_finished;

static int sleep_200ms(void *arg)
{
    (void)arg;
    atomic_store(&blocking_started, true);
    usleep(200000); /* a real blocking call: the thread stops here */
    atomic_store(&blocking_finished, true);
    return 42;
}

/* "block" runs sleep_200ms through ss_run_blocking and answers its
 * result; anything else is echoed. */
static int offloading_handle(ss_request *req)
{
    char line[64];
    ssize_t n;
    while ((n = ss_readline(req, line, sizeof line)) > 0) {
        if (strcmp(line, "block\n") == 0) {
            int result = ss_run_blocking(req, sleep_200ms, NULL);
            if (ss_writef(req, "%d\n", result) < 0)
                return -1;
        } else if (ss_write_all(req, line, (size_t)n) < 0) {
            return -1;
        }
    }
    return n < 0 ? (int)n : 0;
}

static const ss_handler_class offloading_handler = {
    .handle = offloading_handle,
};

static bool blocking_has_started(void *arg)
{
    (void)arg;
    return atomic_load(&blocking_started);
}

/* While one coroutine waits for a 200 ms blocking call on a helper
 * thread, another coroutine of the same (only) scheduler answers at once. */
static void test_run_blocking_does_not_stall_other_coroutines(void **state)
{
    (void)state;
    test_baseline b = test_take_baseline(false);
    ss_config cfg;
    coro_config(&cfg, 1);
    atomic_store(&blocking_started, false);
    atomic_store(&blocking_finished, false);
    test_server t;
    start(&t, &tcp_case, &offloading_handler, &cfg);
    int blocker = connect_to(&t);
    int other = connect_to(&t);
    test_expect_echo(other, "warm up\n"); /* its coroutine is running */
    test_send_all(blocker, "block\n", 6);
    assert_true(test_wait_for(blocking_has_started, NULL, 5.0));
    double begin = test_now();
    test_expect_echo(other, "still here\n");
    double round_trip = test_now() - begin;
    bool overlapped = !atomic_load(&blocking_finished);
    print_message("echo round trip during ss_run_blocking: %.1f ms\n",
                  round_trip * 1e3);
    assert_true(round_trip < 0.1);
    assert_true(overlapped);
    char line[16];
    recv_line(blocker, line, sizeof line);
    assert_string_equal(line, "42\n");
    finish_client(blocker, false);
    finish_client(other, false);
    assert_true(test_server_stop_within(&t, 10.0));
    /* The helper threads were joined: none is left. */
    test_expect_baseline(&b);
}

typedef struct pipe_user {
    int fds[2];
    atomic_bool waiting;
} pipe_user;

/* Waits on the test's pipe: first briefly (nothing there: -ETIMEDOUT),
 * then until the test writes a byte, which is sent back with both
 * results. Further lines are echoed. */
static int pipe_waiting_handle(ss_request *req)
{
    pipe_user *u = ss_request_user(req);
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : -1;
    if (strcmp(line, "wait\n") == 0) {
        int early = ss_wait_fd(req, u->fds[0], POLLIN, 0.05);
        atomic_store(&u->waiting, true);
        int ready = ss_wait_fd(req, u->fds[0], POLLIN, 5.0);
        char byte = '?';
        if (ready == 0 && read(u->fds[0], &byte, 1) != 1)
            byte = '!';
        return ss_writef(req, "%d %d %c\n", early, ready, byte) < 0 ? -1 : 0;
    }
    do {
        if (ss_write_all(req, line, (size_t)n) < 0)
            return -1;
    } while ((n = ss_readline(req, line, sizeof line)) > 0);
    return n < 0 ? (int)n : 0;
}

static const ss_handler_class pipe_waiting_handler = {
    .handle = pipe_waiting_handle,
};

static bool pipe_wait_begun(void *arg)
{
    return atomic_load(&((pipe_user *)arg)->waiting);
}

/* ss_wait_fd parks on the handler's own descriptor: its deadline fires
 * when nothing comes, the coroutine wakes when the test writes, and
 * meanwhile another coroutine on the same thread is served. */
static void test_wait_fd_wakes_on_a_pipe_the_test_writes(void **state)
{
    (void)state;
    pipe_user u = {.waiting = false};
    assert_int_equal(pipe2(u.fds, O_CLOEXEC | O_NONBLOCK), 0);
    ss_config cfg;
    coro_config(&cfg, 1);
    cfg.user = &u;
    test_server t;
    start(&t, &tcp_case, &pipe_waiting_handler, &cfg);
    int waiter = connect_to(&t);
    test_send_all(waiter, "wait\n", 5);
    assert_true(test_wait_for(pipe_wait_begun, &u, 5.0));
    int other = connect_to(&t);
    test_expect_echo(other, "not blocked\n");
    assert_false(readable_within(waiter, 50)); /* still waiting */
    assert_int_equal(write(u.fds[1], "x", 1), 1);
    char line[32], expected[32];
    recv_line(waiter, line, sizeof line);
    snprintf(expected, sizeof expected, "%d 0 x\n", -ETIMEDOUT);
    assert_string_equal(line, expected);
    finish_client(waiter, false);
    finish_client(other, false);
    assert_true(test_server_stop_within(&t, 10.0));
    close(u.fds[0]);
    close(u.fds[1]);
}

#define YIELD_ROUNDS 5

typedef struct yield_log {
    atomic_int arrived;
    atomic_int len;
    char order[2 * YIELD_ROUNDS + 1];
} yield_log;

/* Waits (yielding) until both clients' coroutines exist, then writes its
 * letter into the shared log and yields, YIELD_ROUNDS times. */
static int yielding_handle(ss_request *req)
{
    yield_log *log = ss_request_user(req);
    char line[8];
    if (ss_readline(req, line, sizeof line) != 2)
        return -1;
    atomic_fetch_add(&log->arrived, 1);
    int64_t give_up = ss_now_ns() + INT64_C(5000000000);
    while (atomic_load(&log->arrived) < 2 && ss_now_ns() < give_up)
        ss_yield(req);
    for (int i = 0; i < YIELD_ROUNDS; i++) {
        int at = atomic_fetch_add(&log->len, 1);
        if (at < 2 * YIELD_ROUNDS)
            log->order[at] = line[0];
        ss_yield(req);
    }
    return ss_write_all(req, "ok\n", 3) == 3 ? 0 : -1;
}

static const ss_handler_class yielding_handler = {.handle = yielding_handle};

/* Two coroutines on one thread that yield in a loop take turns: the log
 * alternates, ABABABABAB or BABABABABA. */
static void test_yield_interleaves_two_coroutines_on_one_thread(void **state)
{
    (void)state;
    yield_log log = {0};
    ss_config cfg;
    coro_config(&cfg, 1);
    cfg.user = &log;
    test_server t;
    start(&t, &tcp_case, &yielding_handler, &cfg);
    int a = connect_to(&t), b = connect_to(&t);
    test_send_all(a, "A\n", 2);
    test_send_all(b, "B\n", 2);
    char reply[3];
    test_recv_exact(a, reply, 3);
    test_recv_exact(b, reply, 3);
    finish_client(a, false);
    finish_client(b, false);
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(atomic_load(&log.len), 2 * YIELD_ROUNDS);
    print_message("yield order: %s\n", log.order);
    for (int i = 1; i < 2 * YIELD_ROUNDS; i++)
        if (log.order[i] == log.order[i - 1])
            fail_msg("no interleaving at %d: %s", i, log.order);
}

static int timed_read_handle(ss_request *req)
{
    char buf[16];
    ssize_t n = ss_read(req, buf, sizeof buf);
    return ss_writef(req, "%zd\n", n) < 0 ? -1 : 0;
}

static const ss_handler_class timed_read_handler = {
    .base = &ss_stream_handler,
    .timeout = 0.2,
    .handle = timed_read_handle,
};

/* The handler's timeout (0.2 s) ends a read with -ETIMEDOUT, for twenty
 * idle clients at once on one thread: each wait is a timer in the heap. */
static void test_handler_timeout_ends_read_with_etimedout(void **state)
{
    (void)state;
    ss_config cfg;
    coro_config(&cfg, 1);
    test_server t;
    start(&t, &tcp_case, &timed_read_handler, &cfg);
    enum { N = 20 };
    int fds[N];
    double begin = test_now();
    for (int i = 0; i < N; i++)
        fds[i] = connect_to(&t);
    char expected[16];
    snprintf(expected, sizeof expected, "%d\n", -ETIMEDOUT);
    for (int i = 0; i < N; i++) {
        char line[16];
        recv_line(fds[i], line, sizeof line);
        assert_string_equal(line, expected);
    }
    double elapsed = test_now() - begin;
    print_message("%d reads timed out (0.2 s each) after %.2f s\n", N, elapsed);
    assert_true(elapsed >= 0.19);
    assert_true(elapsed < 1.5);
    for (int i = 0; i < N; i++)
        finish_client(fds[i], false);
    assert_true(test_server_stop_within(&t, 10.0));
}

/* ---- Shutdown policy --------------------------------------------------- */

typedef struct idle_user {
    error_count errors; /* first: count_error reads it */
    atomic_int started;
    atomic_int cancelled_reads;
    atomic_int cancelled_sleeps;
} idle_user;

/* A client that sent "sleep\n" gets a handler asleep for a minute; one
 * that sent nothing, a handler waiting for input. Both must end at once
 * with -ECANCELED at shutdown, and returning it is not reported. */
static int idle_handle(ss_request *req)
{
    idle_user *u = ss_request_user(req);
    atomic_fetch_add(&u->started, 1);
    char line[16];
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n == -ECANCELED)
        atomic_fetch_add(&u->cancelled_reads, 1);
    if (n <= 0)
        return (int)n;
    int rc = ss_sleep(req, 60.0);
    if (rc == -ECANCELED)
        atomic_fetch_add(&u->cancelled_sleeps, 1);
    return rc;
}

static const ss_handler_class idle_handler = {.handle = idle_handle};

static void test_shutdown_with_idle_connections_returns_promptly(void **state)
{
    const kind_case *k = *state;
    test_baseline b = test_take_baseline(false);
    idle_user u = {0};
    ss_config cfg;
    coro_config(&cfg, 2);
    cfg.user = &u;
    ss_server_class kind = *k->kind;
    kind.handle_error = count_error;
    kind_case overridden = {k->name, &kind};
    test_server t;
    start(&t, &overridden, &idle_handler, &cfg);
    enum { IDLE = 10, SLEEPING = 10 };
    int fds[IDLE + SLEEPING];
    for (int i = 0; i < IDLE + SLEEPING; i++) {
        fds[i] = connect_to(&t);
        if (i >= IDLE)
            test_send_all(fds[i], "sleep\n", 6);
    }
    assert_true(atomic_at_least(&u.started, IDLE + SLEEPING, 10.0));
    struct timespec settle = {0, 50000000}; /* let the sleepers sleep */
    nanosleep(&settle, NULL);
    double begin = test_now();
    assert_true(test_server_stop_within(&t, 10.0));
    double elapsed = test_now() - begin;
    print_message("shutdown with %d idle connections: %.1f ms\n",
                  IDLE + SLEEPING, elapsed * 1e3);
    assert_true(elapsed < 1.0);
    assert_int_equal(atomic_load(&u.cancelled_reads), IDLE);
    assert_int_equal(atomic_load(&u.cancelled_sleeps), SLEEPING);
    assert_int_equal(atomic_load(&u.errors.count), 0);
    for (int i = 0; i < IDLE + SLEEPING; i++) {
        char extra[8];
        assert_int_equal(test_recv_all(fds[i], extra, sizeof extra), 0);
        close(fds[i]);
    }
    test_expect_baseline(&b);
}

#define BIG_ANSWER ((size_t)4 << 20)

typedef struct writer_user {
    error_count errors;              /* first: count_error reads it */
    atomic_int sent_before_shutdown; /* 1 when the write is under way */
    atomic_long result;
    atomic_bool done;
} writer_user;

static int big_writer_handle(ss_request *req)
{
    writer_user *u = ss_request_user(req);
    char line[8];
    if (ss_readline(req, line, sizeof line) <= 0)
        return -1;
    char *big = malloc(BIG_ANSWER);
    if (!big)
        return -ENOMEM;
    memset(big, 'z', BIG_ANSWER);
    atomic_store(&u->sent_before_shutdown, 1);
    ssize_t rc = ss_write_all(req, big, BIG_ANSWER);
    free(big);
    atomic_store(&u->result, (long)rc);
    atomic_store(&u->done, true);
    return rc < 0 ? (int)rc : 0;
}

static const ss_handler_class big_writer_handler = {
    .handle = big_writer_handle,
};

typedef struct stopper {
    test_server *t;
    double seconds;
    bool joined;
} stopper;

static void *stop_in_background(void *arg)
{
    stopper *s = arg;
    s->joined = test_server_join_within(s->t, s->seconds);
    return NULL;
}

/* A slow reader (small receive buffer) client of a 4 MiB answer: once
 * the answer is under way, shutdown. */
static int slow_reader(test_server *t, writer_user *u)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    assert_int_equal(ss_server_address(t->srv, (struct sockaddr *)&addr, &len),
                     0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, len), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    test_send_all(fd, "go\n", 3);
    char first[65536];
    test_recv_exact(fd, first, sizeof first);
    assert_int_equal(atomic_load(&u->sent_before_shutdown), 1);
    assert_false(atomic_load(&u->done)); /* the write is still going on */
    return fd;
}

/* A reader that keeps reading gets the whole answer after shutdown, as
 * long as it takes less than shutdown_grace. */
static void test_shutdown_grace_lets_a_large_write_finish(void **state)
{
    (void)state;
    writer_user u = {0};
    ss_config cfg;
    coro_config(&cfg, 1);
    cfg.user = &u;
    cfg.shutdown_grace = 5.0;
    ss_server_class kind = ss_tcp;
    kind.handle_error = count_error;
    kind_case overridden = {"tcp", &kind};
    test_server t;
    start(&t, &overridden, &big_writer_handler, &cfg);
    int fd = slow_reader(&t, &u);
    stopper s = {&t, 10.0, false};
    pthread_t stop_thread;
    assert_int_equal(pthread_create(&stop_thread, NULL, stop_in_background, &s),
                     0);
    struct timespec pause = {0, 200000000}; /* shutdown is under way */
    nanosleep(&pause, NULL);
    char *rest = malloc(BIG_ANSWER);
    assert_non_null(rest);
    size_t got = test_recv_all(fd, rest, BIG_ANSWER);
    free(rest);
    assert_int_equal(got, BIG_ANSWER - 65536);
    close(fd);
    pthread_join(stop_thread, NULL);
    assert_true(s.joined);
    assert_int_equal(atomic_load(&u.result), (long)BIG_ANSWER);
    assert_int_equal(atomic_load(&u.errors.count), 0);
    ss_server_free(t.srv);
}

/* A reader that stops reading holds the server only for shutdown_grace:
 * then the write fails with -ECANCELED (not reported) and serve returns. */
static void test_shutdown_grace_bounds_a_stalled_write(void **state)
{
    (void)state;
    test_baseline b = test_take_baseline(false);
    writer_user u = {0};
    ss_config cfg;
    coro_config(&cfg, 1);
    cfg.user = &u;
    cfg.shutdown_grace = 0.3;
    ss_server_class kind = ss_tcp;
    kind.handle_error = count_error;
    kind_case overridden = {"tcp", &kind};
    test_server t;
    start(&t, &overridden, &big_writer_handler, &cfg);
    int fd = slow_reader(&t, &u);
    double begin = test_now();
    assert_true(test_server_stop_within(&t, 10.0));
    double elapsed = test_now() - begin;
    print_message("stalled writer, grace 0.3 s: serve returned after %.2f s\n",
                  elapsed);
    assert_true(elapsed >= 0.25);
    assert_true(elapsed < 2.0);
    assert_int_equal(atomic_load(&u.result), -ECANCELED);
    assert_int_equal(atomic_load(&u.errors.count), 0);
    close(fd);
    test_expect_baseline(&b);
}

typedef struct spin_user {
    atomic_int started;
    atomic_bool released;    /* set by the waiting handler when cancelled */
    atomic_bool saw_release; /* the spinning handler saw it */
} spin_user;

/* "spin": yield until the other handler has run (at most 2 s). Anything
 * else: wait for input; when shutdown cancels that, release the spinner. */
static int spin_handle(ss_request *req)
{
    spin_user *u = ss_request_user(req);
    char line[8];
    atomic_fetch_add(&u->started, 1);
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n > 0 && strcmp(line, "spin\n") == 0) {
        int64_t give_up = ss_now_ns() + INT64_C(2000000000);
        while (!atomic_load(&u->released) && ss_now_ns() < give_up)
            ss_yield(req);
        atomic_store(&u->saw_release, atomic_load(&u->released));
        return 0;
    }
    atomic_store(&u->released, true);
    return n < 0 ? (int)n : 0;
}

static const ss_handler_class spin_handler = {.handle = spin_handle};

/* ss_yield still lets the other coroutines of the thread run while the
 * server is stopping: a handler that yields until another one has done
 * something must not spin alone (and hold up the shutdown). */
static void test_yield_still_lets_others_run_during_shutdown(void **state)
{
    (void)state;
    spin_user u = {0};
    ss_config cfg;
    coro_config(&cfg, 1);
    cfg.user = &u;
    test_server t;
    start(&t, &tcp_case, &spin_handler, &cfg);
    int idle = connect_to(&t); /* started first: its handler waits */
    assert_true(atomic_at_least(&u.started, 1, 5.0));
    int spinner = connect_to(&t);
    assert_true(atomic_at_least(&u.started, 2, 5.0));
    test_send_all(spinner, "spin\n", 5);
    struct timespec settle = {0, 50000000}; /* the spinner is yielding */
    nanosleep(&settle, NULL);
    double begin = test_now();
    assert_true(test_server_stop_within(&t, 10.0));
    double elapsed = test_now() - begin;
    print_message("shutdown with a yielding handler: %.0f ms\n", elapsed * 1e3);
    assert_true(atomic_load(&u.saw_release));
    assert_true(elapsed < 1.0);
    close(idle);
    close(spinner);
}

/* ---- Same thread: serve, then close ------------------------------------ */

typedef struct serve_then_close {
    ss_server *srv;
    int serve_rc;
    int fileno_after_close;
} serve_then_close;

static void *serve_then_close_thread(void *arg)
{
    serve_then_close *s = arg;
    s->serve_rc = ss_serve_forever(s->srv, 0.05);
    ss_server_close(s->srv);
    s->fileno_after_close = ss_server_fileno(s->srv);
    return NULL;
}

/* The usual main(): ss_serve_forever(), then ss_server_close() on the
 * same thread, which with coro_threads = 1 also ran every coroutine. Two
 * requests that end in the opposite order of their start must not leave
 * that thread looking as if it still ran a handler (close would be
 * refused). */
static void
test_serving_thread_can_close_after_overlapping_requests(void **state)
{
    (void)state;
    test_log log;
    test_log_init(&log);
    ss_config cfg;
    coro_config(&cfg, 1);
    cfg.log = test_log_hook;
    cfg.user = &log;
    serve_then_close s = {.fileno_after_close = -2};
    assert_int_equal(ss_server_new(&s.srv, &ss_tcp, &ss_coroutines,
                                   "127.0.0.1:0", &test_echo_handler, &cfg),
                     0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, serve_then_close_thread, &s),
                     0);
    int first = test_connect(s.srv), second = test_connect(s.srv);
    assert_true(first >= 0 && second >= 0);
    test_expect_echo(first, "first\n");   /* its coroutine runs, then */
    test_expect_echo(second, "second\n"); /* this one: both parked now */
    finish_client(first, false);          /* first started, first done */
    finish_client(second, false);
    ss_shutdown(s.srv);
    pthread_join(thread, NULL);
    assert_int_equal(s.serve_rc, 0);
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(&log, 0, line, sizeof line);
    int logged = test_log_count(&log);
    ss_server_free(s.srv); /* from this thread: never refused */
    if (logged != 0 || s.fileno_after_close != -1)
        fail_msg("ss_server_close() after ss_serve_forever() on the serving "
                 "thread was refused (fileno %d): %s",
                 s.fileno_after_close, line);
}

/* ---- Many connections -------------------------------------------------- */

/* A thousand connections, fifty open at a time, each echoing: afterwards
 * the process has exactly the descriptors and threads it had before. */
static void
test_descriptors_return_to_baseline_after_1000_connections(void **state)
{
    (void)state;
    test_baseline b = test_take_baseline(false);
    ss_config cfg;
    coro_config(&cfg, 2);
    test_server t;
    start(&t, &tcp_case, &test_echo_handler, &cfg);
    int before = test_echo_request_count();
    enum { TOTAL = 1000, BATCH = 50 };
    for (int done = 0; done < TOTAL; done += BATCH) {
        int fds[BATCH];
        for (int i = 0; i < BATCH; i++)
            fds[i] = connect_to(&t);
        for (int i = 0; i < BATCH; i++)
            test_expect_echo_to_eof(fds[i], "x\n");
        for (int i = 0; i < BATCH; i++)
            close(fds[i]);
    }
    assert_int_equal(test_echo_request_count() - before, TOTAL);
    assert_true(test_server_stop_within(&t, 10.0));
    test_expect_baseline(&b);
}

/* Python calls service_actions on every loop iteration; the coroutine
 * loops must too, paced by poll_interval even when nothing happens. */
static atomic_int service_calls;

static void count_service_actions(ss_server *srv)
{
    (void)srv;
    atomic_fetch_add(&service_calls, 1);
}

static bool service_actions_ran_often(void *arg)
{
    (void)arg;
    return atomic_load(&service_calls) >= 5;
}

static void test_service_actions_runs_while_idle(void **state)
{
    (void)state;
    atomic_store(&service_calls, 0);
    ss_server_class kind = ss_tcp;
    kind.service_actions = count_service_actions;
    ss_config cfg;
    coro_config(&cfg, 2);
    test_server t;
    /* poll_interval 0.05: about 20 calls a second with no client at all. */
    assert_int_equal(test_server_start_with(&t, &kind, &ss_coroutines,
                                            "127.0.0.1:0", &test_echo_handler,
                                            &cfg, 0.05),
                     0);
    assert_true(test_wait_for(service_actions_ran_often, NULL, 5.0));
    assert_true(test_server_stop_within(&t, 10.0));
}

#define HELD_CONNECTIONS 10000
#define HELD_MESSAGE_LEN 12

static atomic_int held_started, held_finished;

static int counting_setup(ss_request *req)
{
    (void)req;
    atomic_fetch_add(&held_started, 1);
    return 0;
}

static int counting_finish(ss_request *req)
{
    (void)req;
    atomic_fetch_add(&held_finished, 1);
    return 0;
}

/* The shared echo handler, counting requests as they begin and end. */
static const ss_handler_class counting_echo_handler = {
    .base = &test_echo_handler,
    .setup = counting_setup,
    .finish = counting_finish,
};

/* Resident memory of this process in KiB (VmRSS), or -1. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

enum child_step { CHILD_CONNECTED = 1, CHILD_ECHOED, CHILD_CLOSED };

typedef struct child_report {
    int step;  /* child_step, or negative: failed at this step */
    int count; /* connections that completed the step */
    int error; /* errno of the failure */
} child_report;

static int held_fds[HELD_CONNECTIONS]; /* the child's clients */

static void child_send(int fd, child_report r)
{
    ssize_t w;
    do
        w = write(fd, &r, sizeof r);
    while (w < 0 && errno == EINTR);
}

static bool child_wait_go(int fd)
{
    char go;
    ssize_t r;
    do
        r = read(fd, &go, 1);
    while (r < 0 && errno == EINTR);
    return r == 1;
}

static bool child_io(int fd, void *buf, size_t n, bool sending)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = ECONNRESET;
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* The forked client process: connect them all, then on "go" echo one
 * message on each, then on "go" close them all. Plain system calls only. */
static _Noreturn void held_clients_child(const struct sockaddr *addr,
                                         socklen_t len, int report_fd,
                                         int go_fd)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct timeval tv = {20, 0};
    for (int i = 0; i < HELD_CONNECTIONS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, addr, len) < 0) {
            child_send(report_fd, (child_report){-CHILD_CONNECTED, i, errno});
            _exit(1);
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        held_fds[i] = fd;
    }
    child_send(report_fd, (child_report){CHILD_CONNECTED, HELD_CONNECTIONS, 0});
    if (!child_wait_go(go_fd))
        _exit(1);
    for (int i = 0; i < HELD_CONNECTIONS; i++) {
        char msg[HELD_MESSAGE_LEN + 1];
        snprintf(msg, sizeof msg, "conn %05d\n", i);
        if (!child_io(held_fds[i], msg, HELD_MESSAGE_LEN, true)) {
            child_send(report_fd, (child_report){-CHILD_ECHOED, i, errno});
            _exit(1);
        }
    }
    int echoed = 0;
    for (int i = 0; i < HELD_CONNECTIONS; i++) {
        char msg[HELD_MESSAGE_LEN + 1], back[HELD_MESSAGE_LEN];
        snprintf(msg, sizeof msg, "conn %05d\n", i);
        if (!child_io(held_fds[i], back, HELD_MESSAGE_LEN, false)) {
            child_send(report_fd, (child_report){-CHILD_ECHOED, i, errno});
            _exit(1);
        }
        if (memcmp(back, msg, HELD_MESSAGE_LEN) == 0)
            echoed++;
    }
    child_send(report_fd, (child_report){CHILD_ECHOED, echoed, 0});
    if (!child_wait_go(go_fd))
        _exit(1);
    for (int i = 0; i < HELD_CONNECTIONS; i++)
        close(held_fds[i]);
    child_send(report_fd, (child_report){CHILD_CLOSED, HELD_CONNECTIONS, 0});
    _exit(0);
}

static void expect_child_step(int report_fd, int step, double deadline)
{
    int ms = (int)((deadline - test_now()) * 1000);
    if (ms < 1 || !readable_within(report_fd, ms))
        fail_msg("the client process did not reach step %d in time", step);
    child_report r;
    assert_int_equal(read(report_fd, &r, sizeof r), (ssize_t)sizeof r);
    if (r.step != step)
        fail_msg("client process failed at step %d, connection %d: %s", -r.step,
                 r.count, strerror(r.error));
    assert_int_equal(r.count, HELD_CONNECTIONS);
}

static bool held_at_least(void *arg)
{
    return atomic_load((atomic_int *)arg) >= HELD_CONNECTIONS;
}

/* Ten thousand echo connections open at once against one server process:
 * all accepted and parked, each echoes its own message, all close, and
 * the descriptors are back where they were. Resident memory is reported. */
static void test_holds_ten_thousand_concurrent_echo_connections(void **state)
{
    (void)state;
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max != RLIM_INFINITY &&
        saved.rlim_max < HELD_CONNECTIONS + 100) {
        print_message("skipped: RLIMIT_NOFILE hard limit %llu is below %d "
                      "(raise it with ulimit -Hn as root)\n",
                      (unsigned long long)saved.rlim_max,
                      HELD_CONNECTIONS + 100);
        skip();
    }
    struct rlimit raised = {saved.rlim_max, saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &raised), 0);

    test_baseline b = test_take_baseline(false);
    long rss_before = rss_kib();
    atomic_store(&held_started, 0);
    atomic_store(&held_finished, 0);
    ss_config cfg;
    coro_config(&cfg, 0); /* one scheduler per CPU */
    test_server t;
    start(&t, &tcp_case, &counting_echo_handler, &cfg);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    assert_int_equal(ss_server_address(t.srv, (struct sockaddr *)&addr, &len),
                     0);

    int report[2], go[2];
    assert_int_equal(pipe2(report, O_CLOEXEC), 0);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    double begin = test_now(), deadline = begin + 60.0;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        held_clients_child((struct sockaddr *)&addr, len, report[1], go[0]);
    close(report[1]);
    close(go[0]);

    expect_child_step(report[0], CHILD_CONNECTED, deadline);
    assert_true(
        test_wait_for(held_at_least, &held_started, deadline - test_now()));
    double connected = test_now() - begin;
    long rss_held = rss_kib();
    assert_int_equal(write(go[1], "g", 1), 1);
    expect_child_step(report[0], CHILD_ECHOED, deadline);
    double echoed = test_now() - begin;
    long rss_echoed = rss_kib();
    assert_int_equal(write(go[1], "g", 1), 1);
    expect_child_step(report[0], CHILD_CLOSED, deadline);
    assert_true(
        test_wait_for(held_at_least, &held_finished, deadline - test_now()));
    double closed = test_now() - begin;
    long rss_after = rss_kib();

    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(report[0]);
    close(go[1]);
    assert_true(test_server_stop_within(&t, 10.0));
    print_message("%d connections: all open after %.2f s, echoed after "
                  "%.2f s, closed after %.2f s\n",
                  HELD_CONNECTIONS, connected, echoed, closed);
    print_message("server process RSS: before %ld KiB, %d open %ld KiB "
                  "(%.1f KiB each), after echo %ld KiB, after close %ld KiB\n",
                  rss_before, HELD_CONNECTIONS, rss_held,
                  (double)(rss_held - rss_before) / HELD_CONNECTIONS,
                  rss_echoed, rss_after);
    assert_true(closed < 60.0);
    test_expect_baseline(&b);
    setrlimit(RLIMIT_NOFILE, &saved);
}

/* ---- Registration ------------------------------------------------------ */

#define MAX_TESTS 64

static struct CMUnitTest tests[MAX_TESTS];
static char names[MAX_TESTS][96];
static size_t n_tests;

static void add(const char *what, CMUnitTestFunction fn, const kind_case *k)
{
    if (n_tests == MAX_TESTS)
        abort();
    if (k)
        snprintf(names[n_tests], sizeof names[n_tests], "%s/%s", what, k->name);
    else
        snprintf(names[n_tests], sizeof names[n_tests], "%s", what);
    tests[n_tests] = (struct CMUnitTest){
        .name = names[n_tests],
        .test_func = fn,
        .initial_state = (void *)k,
    };
    n_tests++;
}

/* Register fn once per server kind (or per stream kind). */
static void add_per_kind(const char *what, CMUnitTestFunction fn,
                         bool streams_only)
{
    for (size_t k = 0; k < N_KINDS; k++)
        if (!streams_only || !is_datagram(&kinds[k]))
            add(what, fn, &kinds[k]);
}

#define ADD_PER_KIND(fn) add_per_kind(#fn, fn, false)
#define ADD_PER_STREAM_KIND(fn) add_per_kind(#fn, fn, true)
#define ADD(fn) add(#fn, fn, NULL)

/* An optional argument selects tests by name, e.g. '*grace*'. */
int main(int argc, char **argv)
{
    test_start_runtime_threads();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    ADD_PER_KIND(test_echoes_three_clients);
    ADD_PER_KIND(test_shutdown_race_stops_twenty_servers);
    ADD_PER_KIND(test_handler_failure_calls_handle_error_once);
    ADD_PER_KIND(test_state_and_user_reach_the_handler);
    ADD_PER_KIND(test_handle_request_handles_one_request);
    ADD(test_hundred_sleeping_handlers_overlap_on_one_thread);
    ADD(test_run_blocking_does_not_stall_other_coroutines);
    ADD(test_wait_fd_wakes_on_a_pipe_the_test_writes);
    ADD(test_yield_interleaves_two_coroutines_on_one_thread);
    ADD(test_handler_timeout_ends_read_with_etimedout);
    ADD_PER_STREAM_KIND(test_shutdown_with_idle_connections_returns_promptly);
    ADD(test_shutdown_grace_lets_a_large_write_finish);
    ADD(test_shutdown_grace_bounds_a_stalled_write);
    ADD(test_yield_still_lets_others_run_during_shutdown);
    ADD(test_serving_thread_can_close_after_overlapping_requests);
    ADD(test_descriptors_return_to_baseline_after_1000_connections);
    ADD(test_service_actions_runs_while_idle);
    ADD(test_holds_ten_thousand_concurrent_echo_connections);
    return _cmocka_run_group_tests("test_coroutines", tests, n_tests, NULL,
                                   NULL);
}
