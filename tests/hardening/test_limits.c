/*
 * test_limits.c — max_connections and max_connections_per_client, proved
 * over real sockets for every strategy where requests can overlap
 * (threading, thread pool, forking, prefork, coroutines; sync runs one
 * request at a time, so only its bookkeeping is checked):
 *
 *  - the global limit holds the extra connection unserved — in the listen
 *    backlog — until a running request ends, then serves it;
 *  - the per-client limit closes the extra connection from 127.0.0.1 at
 *    once, reported to handle_error as -EUSERS, while 127.0.0.2 and ::1
 *    still get in; a handle_error override can answer before the close;
 *  - after many connections, refused ones included, the counts are back
 *    to zero (read through the library's internal counters, and proved by
 *    a full set of clients being admitted again);
 *  - Unix sockets have no per-client limit but do have the global one;
 *    datagrams are held and refused the same way.
 *
 * "Unserved" is checked by waiting a while for an answer that must not
 * come: a correct library never answers, so the check cannot fail
 * spuriously on a slow machine; the answers that must come are waited for
 * with generous timeouts.
 *
 * Forking strategies run handlers in child processes; handlers and
 * handle_error report through a pipe, and assertions run here only.
 */
#include "support.h"

#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long an answer that must not come is waited for. */
#define NO_ANSWER_MS 300

typedef struct strategy_case {
    const char *name;
    const ss_strategy *strategy;
    bool in_child;   /* requests end in another process */
    bool concurrent; /* requests can overlap */
    int pool_size;
    int workers;
    const ss_strategy *worker_strategy;
    int coro_threads;
} strategy_case;

static const strategy_case strategies[] = {
    {"sync", &ss_sync, false, false, 0, 0, NULL, 0},
    {"thread", &ss_threading, false, true, 0, 0, NULL, 0},
    {"pool", &ss_thread_pool, false, true, 4, 0, NULL, 0},
    {"fork", &ss_forking, true, true, 0, 0, NULL, 0},
    {"prefork+thread", &ss_prefork, true, true, 0, 1, &ss_threading, 0},
    {"coro", &ss_coroutines, false, true, 0, 0, NULL, 2},
};
#define N_STRATEGIES (sizeof strategies / sizeof strategies[0])

static void config_for(const strategy_case *s, ss_config *cfg,
                       test_options *opts)
{
    if (TEST_UNDER_TSAN && s->in_child && s->worker_strategy) {
        print_message("skipped under ThreadSanitizer: threads started in a "
                      "forked worker\n");
        skip();
    }
    ss_config_init(cfg);
    cfg->unlink_on_close = true;
    *opts = (test_options){0};
    opts->pool.pool_size = s->pool_size;
    opts->prefork.workers = s->workers;
    opts->prefork.worker_strategy = s->worker_strategy;
    opts->coro.threads = s->coro_threads;
    opts->prefork.graceful_timeout = 5;
    test_use_options(cfg, s->strategy, opts);
}

/* The echo handler with a timeout: should a test fail half-way, a forked
 * child still serving one of its clients gives up after a while instead of
 * living on (it holds the client's socket too, so it never sees EOF). */
static const ss_handler_class echo_handler = {
    .base = &test_echo_handler,
    .timeout = 30,
};

/* ---- leftovers ---------------------------------------------------------- */

/* ---- handle_error reports, through a pipe (any process) ----------------- */

typedef struct reports {
    int pipe[2];
} reports;

static void reports_open(reports *r)
{
    assert_int_equal(pipe2(r->pipe, O_CLOEXEC | O_NONBLOCK), 0);
}

static void reports_close(reports *r)
{
    close(r->pipe[0]);
    close(r->pipe[1]);
}

static void report_error(ss_server *srv, ss_request *req, int error)
{
    (void)req;
    reports *r = ss_server_user(srv);
    ssize_t w;
    do
        w = write(r->pipe[1], &error, sizeof error);
    while (w < 0 && errno == EINTR);
}

/* The next report, waiting up to seconds; 0 when none came. */
static int next_report(reports *r, double seconds)
{
    struct pollfd pfd = {.fd = r->pipe[0], .events = POLLIN};
    if (poll(&pfd, 1, (int)(seconds * 1000)) != 1)
        return 0;
    int error = 0;
    assert_int_equal(read(r->pipe[0], &error, sizeof error),
                     (ssize_t)sizeof error);
    return error;
}

/* ---- clients ------------------------------------------------------------ */

/* A TCP client from source (an IP literal, port 0) to the server's port on
 * destination. Returns the fd, or -1 when the family is unavailable. */
static int connect_from(const char *source, const char *destination, int port)
{
    struct sockaddr_storage src = {0}, dst = {0};
    socklen_t len;
    int family = strchr(destination, ':') ? AF_INET6 : AF_INET;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src;
        struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&dst;
        s6->sin6_family = d6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, source, &s6->sin6_addr), 1);
        assert_int_equal(inet_pton(AF_INET6, destination, &d6->sin6_addr), 1);
        d6->sin6_port = htons((uint16_t)port);
        len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&src;
        struct sockaddr_in *d4 = (struct sockaddr_in *)&dst;
        s4->sin_family = d4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, source, &s4->sin_addr), 1);
        assert_int_equal(inet_pton(AF_INET, destination, &d4->sin_addr), 1);
        d4->sin_port = htons((uint16_t)port);
        len = sizeof *s4;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = (time_t)TEST_IO_TIMEOUT_SECONDS};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (bind(fd, (struct sockaddr *)&src, len) < 0 ||
        connect(fd, (struct sockaddr *)&dst, len) < 0) {
        int error = errno;
        close(fd);
        fail_msg("connect from %s to %s:%d: %s", source, destination, port,
                 strerror(error));
    }
    return fd;
}

/* Nothing arrives (no answer, no end) within NO_ANSWER_MS. */
static void expect_no_answer(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready = poll(&pfd, 1, NO_ANSWER_MS);
    if (ready != 0)
        fail_msg("the held connection was answered (revents %#x)",
                 (unsigned)pfd.revents);
}

/* The server closed the connection without a byte (EOF or reset). */
static void expect_closed_unanswered(int fd)
{
    char buf[16];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0)
        fail_msg("expected the connection closed, got %zd bytes", n);
    if (n < 0 && errno != ECONNRESET)
        fail_msg("expected the connection closed: %s", strerror(errno));
}

/* End a stream client: half-close, read to the server's end, close. */
static void finish_client(int fd)
{
    shutdown(fd, SHUT_WR);
    char extra[16];
    assert_int_equal(test_recv_all(fd, extra, sizeof extra), 0);
    close(fd);
}

/* ---- the server --------------------------------------------------------- */

typedef struct limits_server {
    test_server t;
    reports r;
    ss_server_class kind;
    int retries; /* refusals of clients that had to be served */
} limits_server;

static bool workers_started(void *arg)
{
    return test_child_pids(NULL, 0) >= *(int *)arg;
}

static void start_with(limits_server *ls, const strategy_case *s,
                       const ss_server_class *kind, const char *address,
                       ss_config *cfg, const ss_handler_class *handler,
                       void (*handle_error)(ss_server *, ss_request *, int))
{
    memset(ls, 0, sizeof *ls);
    reports_open(&ls->r);
    ls->kind = *kind;
    ls->kind.handle_error = handle_error;
    cfg->user = &ls->r;
    assert_int_equal(test_server_start_with(&ls->t, &ls->kind, s->strategy,
                                            address, handler, cfg, 0.05),
                     0);
    if (s->workers > 0) {
        int workers = s->workers;
        assert_true(test_wait_for(workers_started, &workers, 10.0));
    }
}

static void start(limits_server *ls, const strategy_case *s,
                  const ss_server_class *kind, const char *address,
                  ss_config *cfg, const ss_handler_class *handler)
{
    start_with(ls, s, kind, address, cfg, handler, report_error);
}

static void stop(limits_server *ls)
{
    assert_true(test_server_stop_within(&ls->t, 15.0));
    int extra = next_report(&ls->r, 0);
    if (extra != 0)
        fail_msg("unexpected handle_error report: %s", ss_strerror(extra));
    reports_close(&ls->r);
}

static bool nothing_counted(void *arg)
{
    ss_server *srv = arg;
    return ss__limits_running(srv) == 0 && ss__limits_clients(srv) == 0;
}

typedef struct running_check {
    ss_server *srv;
    int most;
} running_check;

static bool running_at_most(void *arg)
{
    const running_check *c = arg;
    return ss__limits_running(c->srv) <= c->most;
}

/* Wait until the requests that ended gave their places back. In-process
 * strategies are asked directly; under fork and prefork the places live
 * in another process, and the callers retry instead (served_client). */
static void settle(limits_server *ls, const strategy_case *s)
{
    if (!s->in_child)
        assert_true(test_wait_for(nothing_counted, ls->t.srv, 5.0));
}

/* A client from source that must be served: connect, expect the echo.
 * A client sees its request end a moment before the server gives the
 * place back; where settle() cannot wait for that (another process), a
 * refusal is retried and counted in ls->retries. */
static int served_client(limits_server *ls, const char *source,
                         const char *destination, int port, const char *text)
{
    size_t n = strlen(text);
    for (double end = test_now() + 10;;) {
        int fd = connect_from(source, destination, port);
        test_send_all(fd, text, n);
        char back[64];
        ssize_t got = recv(fd, back, n, MSG_WAITALL);
        if (got == (ssize_t)n) {
            assert_memory_equal(back, text, n);
            return fd;
        }
        if (got > 0)
            fail_msg("short answer: %zd of %zu bytes", got, n);
        close(fd);
        assert_int_equal(next_report(&ls->r, 10.0), -EUSERS);
        ls->retries++;
        assert_true(test_now() < end);
    }
}

/* ---- global limit ------------------------------------------------------- */

static void
test_global_limit_holds_extra_connection_until_one_ends(void **state)
{
    const strategy_case *s = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.max_connections = 2;
    limits_server ls;
    start(&ls, s, &ss_tcp, "127.0.0.1:0", &cfg, &echo_handler);

    int first = test_connect(ls.t.srv), second = test_connect(ls.t.srv);
    assert_true(first >= 0 && second >= 0);
    test_expect_echo(first, "one\n");
    test_expect_echo(second, "two\n");
    /* Two requests are running: the third waits, unanswered. */
    int third = test_connect(ls.t.srv);
    assert_true(third >= 0);
    test_send_all(third, "three\n", 6);
    expect_no_answer(third);
    /* One ends: the third is served. */
    finish_client(first);
    char back[6];
    test_recv_exact(third, back, sizeof back);
    assert_memory_equal(back, "three\n", 6);
    /* And a fourth waits again while two run. */
    int fourth = test_connect(ls.t.srv);
    assert_true(fourth >= 0);
    test_send_all(fourth, "four\n", 5);
    expect_no_answer(fourth);
    finish_client(second);
    test_recv_exact(fourth, back, 5);
    assert_memory_equal(back, "four\n", 5);
    finish_client(third);
    finish_client(fourth);
    settle(&ls, s);
    stop(&ls);
    test_expect_baseline(&b);
}

/* ---- per-client limit --------------------------------------------------- */

static void
test_per_client_limit_refuses_extra_connection_from_same_address(void **state)
{
    const strategy_case *s = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.max_connections_per_client = 2;
    cfg.max_connections = 100; /* counted too, so the test can watch */
    bool ipv6 = test_have_ipv6();
    limits_server ls;
    /* Dual-stack when possible: 127.0.0.1 then arrives as
     * ::ffff:127.0.0.1 and must still be the same client. */
    start(&ls, s, &ss_tcp, ipv6 ? "[::]:0" : "127.0.0.1:0", &cfg,
          &echo_handler);
    int port = ss_server_port(ls.t.srv);

    int a1 = served_client(&ls, "127.0.0.1", "127.0.0.1", port, "a1\n");
    int a2 = served_client(&ls, "127.0.0.1", "127.0.0.1", port, "a2\n");
    /* The third from 127.0.0.1: closed at once, reported as -EUSERS. */
    int a3 = connect_from("127.0.0.1", "127.0.0.1", port);
    expect_closed_unanswered(a3);
    close(a3);
    assert_int_equal(next_report(&ls.r, 10.0), -EUSERS);
    /* Other clients still get in. */
    int other = served_client(&ls, "127.0.0.2", "127.0.0.1", port, "other\n");
    int v6 = -1;
    if (ipv6)
        v6 = served_client(&ls, "::1", "::1", port, "v6\n");
    else
        print_message("no IPv6 loopback: ::1 not tried\n");
    /* When one of 127.0.0.1's requests ends, it may have another. */
    finish_client(a1);
    if (!s->in_child) {
        int running = 2 + (v6 >= 0);
        assert_true(test_wait_for(running_at_most,
                                  &(running_check){ls.t.srv, running}, 5.0));
        assert_int_equal(ss__limits_clients(ls.t.srv), running);
    }
    int again = served_client(&ls, "127.0.0.1", "127.0.0.1", port, "again\n");
    finish_client(again);
    finish_client(a2);
    finish_client(other);
    if (v6 >= 0)
        finish_client(v6);
    settle(&ls, s);
    if (!s->in_child)
        assert_int_equal(ls.retries, 0);
    stop(&ls);
    test_expect_baseline(&b);
}

/* A handle_error override sees -EUSERS with a usable request: it can
 * answer (here a line; an HTTP server would send a 503) before the close. */
static void polite_refusal(ss_server *srv, ss_request *req, int error)
{
    if (error == -EUSERS)
        ss_write_all(req, "busy\n", 5);
    report_error(srv, req, error);
}

static void
test_per_client_refusal_can_answer_through_handle_error(void **state)
{
    const strategy_case *s = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.max_connections_per_client = 1;
    limits_server ls;
    start_with(&ls, s, &ss_tcp, "127.0.0.1:0", &cfg, &echo_handler,
               polite_refusal);
    int held = test_connect(ls.t.srv);
    assert_true(held >= 0);
    test_expect_echo(held, "held\n");
    int refused = test_connect(ls.t.srv);
    assert_true(refused >= 0);
    char answer[16];
    assert_int_equal(test_recv_all(refused, answer, sizeof answer), 5);
    assert_memory_equal(answer, "busy\n", 5);
    close(refused);
    assert_int_equal(next_report(&ls.r, 10.0), -EUSERS);
    finish_client(held);
    settle(&ls, s);
    stop(&ls);
    test_expect_baseline(&b);
}

/* ---- counts back to zero ------------------------------------------------ */

/* Rounds of clients, refused ones included, against max_connections 3
 * and 2 per client: every round is admitted the same way — two from
 * 127.0.0.1 served, the third refused, one from 127.0.0.2 served — and at
 * the end nothing is counted. A place that leaked would show as a refusal
 * or a held client in a later round. */
static void test_counts_return_to_zero_after_many_connections(void **state)
{
    const strategy_case *s = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.max_connections = 3;
    cfg.max_connections_per_client = 2;
    limits_server ls;
    start(&ls, s, &ss_tcp, "127.0.0.1:0", &cfg, &echo_handler);
    int port = ss_server_port(ls.t.srv);
    enum { ROUNDS = 25 };
    for (int round = 0; round < ROUNDS; round++) {
        if (!s->concurrent) {
            /* One request at a time: nothing is ever refused or held. */
            int fd = served_client(&ls, "127.0.0.1", "127.0.0.1", port, "x\n");
            finish_client(fd);
            settle(&ls, s);
            continue;
        }
        int a1 = served_client(&ls, "127.0.0.1", "127.0.0.1", port, "a1\n");
        int a2 = served_client(&ls, "127.0.0.1", "127.0.0.1", port, "a2\n");
        int a3 = connect_from("127.0.0.1", "127.0.0.1", port);
        expect_closed_unanswered(a3);
        close(a3);
        assert_int_equal(next_report(&ls.r, 10.0), -EUSERS);
        int b1 = served_client(&ls, "127.0.0.2", "127.0.0.1", port, "b1\n");
        finish_client(a1);
        finish_client(a2);
        finish_client(b1);
        settle(&ls, s);
    }
    if (!s->in_child) {
        assert_int_equal(ss__limits_running(ls.t.srv), 0);
        assert_int_equal(ss__limits_clients(ls.t.srv), 0);
        assert_int_equal(ls.retries, 0);
    } else {
        /* Retries only bridge the moment between a client's end and its
         * place coming back, never a leak: a leak would refuse for good. */
        print_message("%s: %d retries in %d rounds\n", s->name, ls.retries,
                      ROUNDS);
    }
    stop(&ls);
    test_expect_baseline(&b);
}

/* ---- Unix sockets ------------------------------------------------------- */

/* Unix peers have no address to tell them apart: the per-client limit
 * does not apply, the global one does. */
static void test_unix_stream_has_global_but_no_per_client_limit(void **state)
{
    const strategy_case *s = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.max_connections = 2;
    cfg.max_connections_per_client = 1;
    char address[108];
    limits_server ls;
    start(&ls, s, &ss_unix_stream,
          test_unix_address(address, sizeof address, "limits"), &cfg,
          &echo_handler);
    int first = test_connect(ls.t.srv), second = test_connect(ls.t.srv);
    assert_true(first >= 0 && second >= 0);
    test_expect_echo(first, "one\n");
    test_expect_echo(second, "two\n"); /* same "client", not refused */
    int third = test_connect(ls.t.srv);
    assert_true(third >= 0);
    test_send_all(third, "three\n", 6);
    expect_no_answer(third);
    finish_client(first);
    char back[6];
    test_recv_exact(third, back, sizeof back);
    assert_memory_equal(back, "three\n", 6);
    finish_client(second);
    finish_client(third);
    settle(&ls, s);
    stop(&ls);
    test_expect_baseline(&b);
}

/* ---- datagrams ---------------------------------------------------------- */

/* The server's user data for the datagram tests: reports first (what
 * report_error reads), then a pipe a "hold" request announces itself on
 * and one it waits on until the test releases it. */
typedef struct datagram_user {
    reports r;
    int started[2];
    int release[2];
} datagram_user;

static int hold_or_echo(ss_request *req)
{
    datagram_user *u = ss_request_user(req);
    char packet[64];
    ssize_t n = ss_read(req, packet, sizeof packet);
    if (n < 0)
        return (int)n;
    if (n >= 4 && memcmp(packet, "hold", 4) == 0) {
        ssize_t w = write(u->started[1], "s", 1);
        (void)w;
        int rc = ss_wait_fd(req, u->release[0], POLLIN, 20);
        if (rc < 0)
            return rc;
    }
    return ss_write_all(req, packet, (size_t)n) == n ? 0 : -1;
}

static const ss_handler_class hold_handler = {.handle = hold_or_echo};

static int udp_client(const char *source, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct sockaddr_in dst = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET, source, &src.sin_addr), 1);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
    struct timeval tv = {.tv_sec = (time_t)TEST_IO_TIMEOUT_SECONDS};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void expect_reply(int fd, const char *text)
{
    char back[64];
    ssize_t n = recv(fd, back, sizeof back, 0);
    assert_int_equal(n, (ssize_t)strlen(text));
    assert_memory_equal(back, text, (size_t)n);
}

static void wait_started(datagram_user *u)
{
    struct pollfd pfd = {.fd = u->started[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    char c;
    assert_int_equal(read(u->started[0], &c, 1), 1);
}

static void start_datagram(limits_server *ls, datagram_user *u,
                           const strategy_case *s, ss_config *cfg)
{
    memset(ls, 0, sizeof *ls);
    reports_open(&u->r);
    assert_int_equal(pipe2(u->started, O_CLOEXEC), 0);
    assert_int_equal(pipe2(u->release, O_CLOEXEC), 0);
    ls->kind = ss_udp;
    ls->kind.handle_error = report_error;
    cfg->user = u;
    assert_int_equal(test_server_start_with(&ls->t, &ls->kind, s->strategy,
                                            "127.0.0.1:0", &hold_handler, cfg,
                                            0.05),
                     0);
}

static void stop_datagram(limits_server *ls, datagram_user *u)
{
    assert_true(test_server_stop_within(&ls->t, 15.0));
    struct pollfd pfd = {.fd = u->r.pipe[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    reports_close(&u->r);
    for (int i = 0; i < 2; i++) {
        close(u->started[i]);
        close(u->release[i]);
    }
}

/* A datagram is a request too: at max_connections the next one waits in
 * the socket's receive buffer until a request ends. */
static void test_global_limit_holds_datagrams(void **state)
{
    const strategy_case *s = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.max_connections = 1;
    limits_server ls;
    datagram_user u;
    start_datagram(&ls, &u, s, &cfg);
    int port = ss_server_port(ls.t.srv);
    int holder = udp_client("127.0.0.1", port);
    int quick = udp_client("127.0.0.2", port);
    assert_int_equal(send(holder, "hold", 4, 0), 4);
    wait_started(&u);
    assert_int_equal(send(quick, "quick", 5, 0), 5);
    expect_no_answer(quick);
    assert_int_equal(write(u.release[1], "r", 1), 1);
    expect_reply(holder, "hold");
    expect_reply(quick, "quick");
    close(holder);
    close(quick);
    if (!s->in_child)
        assert_true(test_wait_for(nothing_counted, ls.t.srv, 5.0));
    stop_datagram(&ls, &u);
    test_expect_baseline(&b);
}

/* Per client: a second datagram from a client whose request still runs
 * is dropped unanswered and reported; another client's is served. */
static void test_per_client_limit_refuses_datagrams(void **state)
{
    const strategy_case *s = *state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.max_connections_per_client = 1;
    limits_server ls;
    datagram_user u;
    start_datagram(&ls, &u, s, &cfg);
    int port = ss_server_port(ls.t.srv);
    int holder = udp_client("127.0.0.1", port);
    int other = udp_client("127.0.0.2", port);
    assert_int_equal(send(holder, "hold", 4, 0), 4);
    wait_started(&u);
    assert_int_equal(send(holder, "again", 5, 0), 5);
    assert_int_equal(next_report(&u.r, 10.0), -EUSERS);
    assert_int_equal(send(other, "other", 5, 0), 5);
    expect_reply(other, "other");
    assert_int_equal(write(u.release[1], "r", 1), 1);
    expect_reply(holder, "hold"); /* and nothing for "again" */
    expect_no_answer(holder);
    close(holder);
    close(other);
    if (!s->in_child)
        assert_true(test_wait_for(nothing_counted, ls.t.srv, 5.0));
    stop_datagram(&ls, &u);
    test_expect_baseline(&b);
}

/* ---- configuration ------------------------------------------------------ */

static void test_negative_limits_are_refused(void **state)
{
    (void)state;
    test_baseline b = test_take_baseline(true);
    ss_config cfg;
    ss_config_init(&cfg);
    assert_int_equal(cfg.max_connections, 0);
    assert_int_equal(cfg.max_connections_per_client, 0);
    ss_server *srv = (ss_server *)1;
    cfg.max_connections = -1;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &echo_handler, &cfg),
                     -EINVAL);
    assert_null(srv);
    cfg.max_connections = 0;
    cfg.max_connections_per_client = -1;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &echo_handler, &cfg),
                     -EINVAL);
    assert_null(srv);
    test_expect_baseline(&b);
}

/* ---- registration ------------------------------------------------------- */

#define MAX_TESTS 64

static struct CMUnitTest tests[MAX_TESTS];
static char names[MAX_TESTS][128];
static size_t n_tests;

static void add(const char *what, CMUnitTestFunction fn, const strategy_case *s)
{
    if (n_tests == MAX_TESTS)
        abort();
    snprintf(names[n_tests], sizeof names[n_tests], "%s/%s", what,
             s ? s->name : "-");
    tests[n_tests] = (struct CMUnitTest){
        .name = names[n_tests],
        .test_func = fn,
        .initial_state = (void *)s,
    };
    n_tests++;
}

static const strategy_case *find_strategy(const char *name)
{
    for (size_t i = 0; i < N_STRATEGIES; i++)
        if (strcmp(strategies[i].name, name) == 0)
            return &strategies[i];
    abort();
}

/* An optional argument selects tests by name, e.g. '*coro*'. */
int main(int argc, char **argv)
{
    test_start_runtime_threads();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        if (s->concurrent) {
            add("test_global_limit_holds_extra_connection_until_one_ends",
                test_global_limit_holds_extra_connection_until_one_ends, s);
            add("test_per_client_limit_refuses_extra_connection_from_same_"
                "address",
                test_per_client_limit_refuses_extra_connection_from_same_address,
                s);
            add("test_per_client_refusal_can_answer_through_handle_error",
                test_per_client_refusal_can_answer_through_handle_error, s);
        }
        add("test_counts_return_to_zero_after_many_connections",
            test_counts_return_to_zero_after_many_connections, s);
    }
    add("test_unix_stream_has_global_but_no_per_client_limit",
        test_unix_stream_has_global_but_no_per_client_limit,
        find_strategy("thread"));
    add("test_unix_stream_has_global_but_no_per_client_limit",
        test_unix_stream_has_global_but_no_per_client_limit,
        find_strategy("coro"));
    const char *datagram_strategies[] = {"thread", "fork", "coro"};
    for (size_t i = 0; i < 3; i++) {
        const strategy_case *s = find_strategy(datagram_strategies[i]);
        add("test_global_limit_holds_datagrams",
            test_global_limit_holds_datagrams, s);
        add("test_per_client_limit_refuses_datagrams",
            test_per_client_limit_refuses_datagrams, s);
    }
    add("test_negative_limits_are_refused", test_negative_limits_are_refused,
        NULL);
    return _cmocka_run_group_tests("test_limits", tests, n_tests, NULL, NULL);
}
