/*
 * test_wait_input_or_fd.c — ss_wait_input_or_fd(): one wait for the
 * request's own input or a descriptor of the handler's, under every
 * strategy.
 *
 * The handler here takes commands from its client, "wait SECONDS", answers
 * "waiting" and then waits for its input or for the test's pipe; it
 * reports what ended the wait on one line: the result, the byte it read
 * from the pipe (or '-'), the line it read from the client (or '-', or
 * EOF) and the milliseconds it waited. Everything goes over the socket, so
 * the same tests run where the handler lives in another process
 * (ss_forking). Each behaviour runs under sync, threading, the thread
 * pool, forking and coroutines, and under a threading strategy whose io
 * class predates the optional wait_input_or_fd member (the sliced
 * fallback): input first, the descriptor first, a timeout, shutdown
 * cancelling the wait, data already buffered counting as input (with and
 * without the descriptor ready too), and end of stream counting as input.
 *
 * Then what only some cases can show: datagram requests and bad
 * arguments are refused, a coroutine waiting here lets the other
 * coroutines of its thread run, and — a regression test for the
 * coroutine wait path this function shares — a coroutine's earlier wait
 * on a descriptor since closed does not unregister another request's
 * socket that got the same number.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- The waiting handler --------------------------------------------- */

typedef struct wait_ctx {
    int pipe_fds[2]; /* the handler waits on [0], the test writes [1] */
} wait_ctx;

static void strip_newline(char *line)
{
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = '\0';
}

/* One "wait SECONDS" command: wait, then consume what ended the wait and
 * report it. Returns false when the conversation is over. */
static bool run_wait_command(ss_request *req, int pipe_fd, double timeout)
{
    if (ss_write_all(req, "waiting\n", 8) != 8)
        return false;
    int64_t start = ss_now_ns();
    int rc = ss_wait_input_or_fd(req, pipe_fd, POLLIN, timeout);
    long ms = (long)((ss_now_ns() - start) / 1000000);
    char fd_byte = '-';
    char input[64] = "-";
    bool more = rc > 0 || rc == -ETIMEDOUT;
    if (rc > 0 && (rc & SS_READY_FD) && read(pipe_fd, &fd_byte, 1) != 1)
        fd_byte = '!';
    if (rc > 0 && (rc & SS_READY_INPUT)) {
        ssize_t n = ss_readline(req, input, sizeof input);
        if (n <= 0) {
            snprintf(input, sizeof input, "%s", n == 0 ? "EOF" : "ERROR");
            more = false;
        }
        strip_newline(input);
    }
    ss_writef(req, "%d %c %s %ld\n", rc, fd_byte, input, ms);
    return more;
}

static int waiter_handle(ss_request *req)
{
    wait_ctx *ctx = ss_request_user(req);
    char line[64];
    while (ss_readline(req, line, sizeof line) > 0) {
        double timeout;
        if (sscanf(line, "wait %lf", &timeout) != 1)
            return -EINVAL;
        if (!run_wait_command(req, ctx->pipe_fds[0], timeout))
            break;
    }
    return 0; /* -ECANCELED and the end of the client are not failures */
}

static const ss_handler_class waiter_handler = {.handle = waiter_handle};

/* ---- Strategies ------------------------------------------------------ */

/* A blocking wait class as a third party might write it, without the
 * optional wait_input_or_fd: the member is NULL. */
static ss_wait_class legacy_io;
static ss_strategy legacy_threading;

typedef struct strategy_case {
    const char *name;
    const ss_strategy *strategy;
} strategy_case;

static strategy_case strategies[] = {
    {"sync", &ss_sync},
    {"threading", &ss_threading},
    {"pool", &ss_thread_pool},
    {"forking", &ss_forking},
    {"coroutines", &ss_coroutines},
    {"legacy-io", &legacy_threading},
};
#define N_STRATEGIES (sizeof strategies / sizeof strategies[0])

/* ---- Fixture ----------------------------------------------------------- */

typedef struct fixture {
    wait_ctx ctx;
    test_server t;
    int client;
} fixture;

static void fixture_start(fixture *fx, const ss_strategy *strategy,
                          const ss_handler_class *h,
                          const ss_server_class *kind, int coro_threads)
{
    assert_int_equal(pipe2(fx->ctx.pipe_fds, O_CLOEXEC | O_NONBLOCK), 0);
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &fx->ctx;
    test_options opts = {.pool.pool_size = 2, .coro.threads = coro_threads};
    test_use_options(&cfg, strategy, &opts);
    int rc = test_server_start_with(&fx->t, kind, strategy, "127.0.0.1:0", h,
                                    &cfg, 0.05);
    if (rc < 0)
        fail_msg("starting the server: %s", ss_strerror(rc));
    fx->client = test_connect(fx->t.srv);
    assert_true(fx->client >= 0);
}

static void fixture_stop(fixture *fx)
{
    if (fx->client >= 0)
        close(fx->client);
    assert_true(test_server_stop_within(&fx->t, 10.0));
    close(fx->ctx.pipe_fds[0]);
    close(fx->ctx.pipe_fds[1]);
}

/* One line from the client socket; fails the test on EOF or after the
 * client's 10 s receive timeout. */
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

static void send_text(int fd, const char *text)
{
    test_send_all(fd, text, strlen(text));
}

/* Send a wait command and read the handler's "waiting". */
static void begin_wait(fixture *fx, const char *command)
{
    send_text(fx->client, command);
    char line[64];
    recv_line(fx->client, line, sizeof line);
    assert_string_equal(line, "waiting\n");
}

/* A moment for the handler to go from "waiting" into the wait itself, so
 * that the interesting path (a real wait woken up) is the usual one. The
 * results do not depend on it. */
static void let_it_park(void)
{
    struct timespec pause = {0, 50 * 1000000};
    nanosleep(&pause, NULL);
}

typedef struct report {
    int rc;
    char fd_byte;
    char input[64];
    long ms;
} report;

static report read_report(fixture *fx)
{
    char line[160];
    recv_line(fx->client, line, sizeof line);
    report r = {0};
    if (sscanf(line, "%d %c %63s %ld", &r.rc, &r.fd_byte, r.input, &r.ms) != 4)
        fail_msg("unexpected report: %s", line);
    return r;
}

/* ---- Behaviour under every strategy ---------------------------------- */

/* Input that arrives while the handler waits ends the wait with
 * SS_READY_INPUT alone, and the line is there to be read at once. */
static void test_input_first_ends_the_wait(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &waiter_handler, &ss_tcp, 1);
    begin_wait(&fx, "wait 5\n");
    let_it_park();
    send_text(fx.client, "hello\n");
    report r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_INPUT);
    assert_int_equal(r.fd_byte, '-');
    assert_string_equal(r.input, "hello");
    /* And the conversation goes on: the next wait works the same. */
    begin_wait(&fx, "wait 5\n");
    let_it_park();
    send_text(fx.client, "again\n");
    r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_INPUT);
    assert_string_equal(r.input, "again");
    fixture_stop(&fx);
}

/* The descriptor becoming readable ends the wait with SS_READY_FD alone. */
static void test_fd_first_ends_the_wait(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &waiter_handler, &ss_tcp, 1);
    begin_wait(&fx, "wait 5\n");
    let_it_park();
    assert_int_equal(write(fx.ctx.pipe_fds[1], "b", 1), 1);
    report r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_FD);
    assert_int_equal(r.fd_byte, 'b');
    assert_string_equal(r.input, "-");
    /* Then input again, on the same connection. */
    begin_wait(&fx, "wait 5\n");
    let_it_park();
    send_text(fx.client, "after\n");
    r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_INPUT);
    assert_string_equal(r.input, "after");
    fixture_stop(&fx);
}

/* Neither source: -ETIMEDOUT after the timeout, not before. */
static void test_wait_times_out_when_neither_is_ready(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &waiter_handler, &ss_tcp, 1);
    begin_wait(&fx, "wait 0.1\n");
    report r = read_report(&fx);
    assert_int_equal(r.rc, -ETIMEDOUT);
    assert_true(r.ms >= 90);
    /* A timed-out wait leaves nothing behind: the next one still wakes. */
    begin_wait(&fx, "wait 5\n");
    let_it_park();
    assert_int_equal(write(fx.ctx.pipe_fds[1], "c", 1), 1);
    r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_FD);
    assert_int_equal(r.fd_byte, 'c');
    fixture_stop(&fx);
}

/* ss_shutdown() ends a wait without a limit at once, with -ECANCELED. */
static void test_shutdown_cancels_the_wait(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &waiter_handler, &ss_tcp, 1);
    begin_wait(&fx, "wait 0\n"); /* 0: no limit */
    let_it_park();
    double start = test_now();
    ss_shutdown(fx.t.srv);
    report r = read_report(&fx); /* sent during the shutdown grace */
    assert_int_equal(r.rc, -ECANCELED);
    assert_true(test_now() - start < 5.0);
    fixture_stop(&fx);
}

/* Bytes already in the request's read buffer are input: the wait returns
 * at once, though the socket itself has nothing (both lines came in one
 * segment and one recv() took them). */
static void test_buffered_input_counts_without_waiting(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &waiter_handler, &ss_tcp, 1);
    send_text(fx.client, "wait 5\nbuffered\n");
    char line[64];
    recv_line(fx.client, line, sizeof line);
    assert_string_equal(line, "waiting\n");
    report r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_INPUT);
    assert_string_equal(r.input, "buffered");
    assert_true(r.ms < 4000); /* not the 5 s timeout */
    /* With the descriptor ready as well, both bits are reported. */
    assert_int_equal(write(fx.ctx.pipe_fds[1], "d", 1), 1);
    send_text(fx.client, "wait 5\nboth\n");
    recv_line(fx.client, line, sizeof line);
    assert_string_equal(line, "waiting\n");
    r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_INPUT | SS_READY_FD);
    assert_int_equal(r.fd_byte, 'd');
    assert_string_equal(r.input, "both");
    fixture_stop(&fx);
}

/* The client closing its side is input too: the read that follows
 * returns 0 at once. */
static void test_end_of_stream_counts_as_input(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &waiter_handler, &ss_tcp, 1);
    begin_wait(&fx, "wait 5\n");
    let_it_park();
    assert_int_equal(shutdown(fx.client, SHUT_WR), 0);
    report r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_INPUT);
    assert_string_equal(r.input, "EOF");
    assert_true(r.ms < 4000);
    fixture_stop(&fx);
}

/* ---- Edge-triggered bookkeeping ----------------------------------------- */

/* "drain N": after "ready" and a byte on the pipe, read N bytes in small
 * pieces, waiting before each, and report "got N" — or "stuck COUNT RC"
 * when a wait fails. "stale": the sequence described at
 * test_input_read_with_a_later_edge_is_not_reported_again. */
static int edge_handle(ss_request *req)
{
    wait_ctx *ctx = ss_request_user(req);
    int pipe_fd = ctx->pipe_fds[0];
    char line[64], byte;
    long total;
    if (ss_readline(req, line, sizeof line) <= 0)
        return -1;
    if (sscanf(line, "drain %ld", &total) == 1) {
        ss_write_all(req, "ready\n", 6);
        if (ss_wait_fd(req, pipe_fd, POLLIN, 5.0) < 0 ||
            read(pipe_fd, &byte, 1) != 1)
            return -1;
        long count = 0;
        while (count < total) {
            int rc = ss_wait_input_or_fd(req, pipe_fd, POLLIN, 2.0);
            if (rc < 0 || !(rc & SS_READY_INPUT))
                return ss_writef(req, "stuck %ld %d\n", count, rc) < 0;
            char piece[100];
            ssize_t n = ss_read(req, piece, sizeof piece);
            if (n <= 0)
                return -1;
            count += n;
        }
        return ss_writef(req, "got %ld\n", count) < 0 ? -1 : 0;
    }
    if (strcmp(line, "stale\n") != 0)
        return -1;
    ss_write_all(req, "parked\n", 7);
    int first = ss_wait_input_or_fd(req, pipe_fd, POLLIN, 5.0);
    ss_writef(req, "first %d\n", first);
    /* Input arrives while we wait for something else... */
    if (ss_wait_fd(req, pipe_fd, POLLIN, 5.0) < 0 ||
        read(pipe_fd, &byte, 1) != 1)
        return -1;
    /* ...and one read takes both pieces. */
    char data[64];
    ssize_t n = ss_read(req, data, sizeof data);
    ss_writef(req, "read %zd\n", n);
    int second = ss_wait_input_or_fd(req, pipe_fd, POLLIN, 5.0);
    if (second > 0 && (second & SS_READY_FD) && read(pipe_fd, &byte, 1) != 1)
        return -1;
    return ss_writef(req, "second %d\n", second) < 0 ? -1 : 0;
}

static const ss_handler_class edge_handler = {.handle = edge_handle};

/* More input than one recv() takes (the read buffer is 8 KiB), all there
 * before the handler looks, and nothing after it: every byte must be
 * reported as input. An edge-triggered wait that trusted edges alone
 * would park after the first 8 KiB, with the rest unannounced. */
static void test_input_beyond_a_full_read_is_reported(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &edge_handler, &ss_tcp, 1);
    enum { TOTAL = 30000 };
    send_text(fx.client, "drain 30000\n");
    char line[64];
    recv_line(fx.client, line, sizeof line);
    assert_string_equal(line, "ready\n");
    static char bulk[TOTAL];
    memset(bulk, 'z', sizeof bulk);
    test_send_all(fx.client, bulk, sizeof bulk);
    let_it_park();
    assert_int_equal(write(fx.ctx.pipe_fds[1], "g", 1), 1);
    recv_line(fx.client, line, sizeof line);
    assert_string_equal(line, "got 30000\n");
    fixture_stop(&fx);
}

/* Input that arrives while the handler waits for something else, read
 * later together with earlier input, must not make the next wait report
 * input that is gone: that wait sees the descriptor. */
static void
test_input_read_with_a_later_edge_is_not_reported_again(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &edge_handler, &ss_tcp, 1);
    char line[64], expected[64];
    send_text(fx.client, "stale\n");
    recv_line(fx.client, line, sizeof line);
    assert_string_equal(line, "parked\n");
    let_it_park();
    send_text(fx.client, "one\n");
    recv_line(fx.client, line, sizeof line);
    snprintf(expected, sizeof expected, "first %d\n", SS_READY_INPUT);
    assert_string_equal(line, expected);
    let_it_park(); /* now in ss_wait_fd */
    send_text(fx.client, "two\n");
    let_it_park();
    assert_int_equal(write(fx.ctx.pipe_fds[1], "a", 1), 1);
    recv_line(fx.client, line, sizeof line);
    assert_string_equal(line, "read 8\n");
    let_it_park();
    assert_int_equal(write(fx.ctx.pipe_fds[1], "b", 1), 1);
    recv_line(fx.client, line, sizeof line);
    snprintf(expected, sizeof expected, "second %d\n", SS_READY_FD);
    assert_string_equal(line, expected);
    fixture_stop(&fx);
}

/* ---- Refusals ---------------------------------------------------------- */

static int datagram_handle(ss_request *req)
{
    wait_ctx *ctx = ss_request_user(req);
    int rc = ss_wait_input_or_fd(req, ctx->pipe_fds[0], POLLIN, 5.0);
    return ss_writef(req, "%d", rc) < 0 ? -1 : 0;
}

static const ss_handler_class datagram_waiter = {
    .base = &ss_datagram_handler,
    .handle = datagram_handle,
};

/* A datagram request has no more input to wait for: -EOPNOTSUPP at once
 * (not after the 5 s), under a blocking strategy and under coroutines. */
static void test_datagram_requests_are_refused(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &datagram_waiter, &ss_udp, 1);
    double start = test_now();
    test_send_all(fx.client, "x", 1);
    char reply[16];
    char expected[16];
    snprintf(expected, sizeof expected, "%d", -EOPNOTSUPP);
    test_recv_exact(fx.client, reply, strlen(expected));
    reply[strlen(expected)] = '\0';
    assert_string_equal(reply, expected);
    assert_true(test_now() - start < 4.0);
    fixture_stop(&fx);
}

static int bad_arguments_handle(ss_request *req)
{
    int negative = ss_wait_input_or_fd(req, -1, POLLIN, 1.0);
    int own = ss_wait_input_or_fd(req, ss_request_fileno(req), POLLIN, 1.0);
    int server = ss_wait_input_or_fd(
        req, ss_server_fileno(ss_request_server(req)), POLLIN, 1.0);
    return ss_writef(req, "%d %d %d\n", negative, own, server) < 0 ? -1 : 0;
}

static const ss_handler_class bad_arguments_handler = {
    .handle = bad_arguments_handle,
};

/* fd < 0 is -EBADF; the request's own socket or the server's socket is
 * -EINVAL (the first is what the call waits on anyway; the second is the
 * scheduler's under coroutines). */
static void test_bad_descriptors_are_refused(void **state)
{
    const strategy_case *sc = *state;
    fixture fx;
    fixture_start(&fx, sc->strategy, &bad_arguments_handler, &ss_tcp, 1);
    char line[64], expected[64];
    recv_line(fx.client, line, sizeof line);
    snprintf(expected, sizeof expected, "%d %d %d\n", -EBADF, -EINVAL, -EINVAL);
    assert_string_equal(line, expected);
    fixture_stop(&fx);
}

/* ---- Coroutines ------------------------------------------------------- */

/* With one scheduler thread, a coroutine waiting here must park: another
 * client is served (its own wait times out and reports) meanwhile, and
 * the first still wakes on its input afterwards. */
static void test_waiting_coroutine_lets_others_run(void **state)
{
    (void)state;
    fixture fx;
    fixture_start(&fx, &ss_coroutines, &waiter_handler, &ss_tcp, 1);
    begin_wait(&fx, "wait 10\n");
    let_it_park();

    fixture other = fx;
    other.client = test_connect(fx.t.srv);
    assert_true(other.client >= 0);
    begin_wait(&other, "wait 0.05\n");
    report r = read_report(&other);
    assert_int_equal(r.rc, -ETIMEDOUT);
    close(other.client);

    send_text(fx.client, "first\n");
    r = read_report(&fx);
    assert_int_equal(r.rc, SS_READY_INPUT);
    assert_string_equal(r.input, "first");
    fixture_stop(&fx);
}

static int return_seven(void *arg)
{
    (void)arg;
    return 7;
}

/* "block": ss_run_blocking (which waits on an eventfd it then closes);
 * "pipe": ss_wait_fd on the test's pipe, 50 ms; anything else: echoed. */
static int reuse_handle(ss_request *req)
{
    wait_ctx *ctx = ss_request_user(req);
    char line[64];
    ssize_t n;
    while ((n = ss_readline(req, line, sizeof line)) > 0) {
        if (strcmp(line, "block\n") == 0)
            n = ss_writef(req, "%d\n",
                          ss_run_blocking(req, return_seven, NULL));
        else if (strcmp(line, "pipe\n") == 0)
            n = ss_writef(req, "%d\n",
                          ss_wait_fd(req, ctx->pipe_fds[0], POLLIN, 0.05));
        else
            n = ss_write_all(req, line, (size_t)n);
        if (n < 0)
            return (int)n;
    }
    return n < 0 ? (int)n : 0;
}

static const ss_handler_class reuse_handler = {.handle = reuse_handle};

/* A connected socket that was created before the server gave up a
 * descriptor number, connected after. */
static int connect_late(fixture *fx, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(ss_server_address(fx->t.srv, (struct sockaddr *)&ss, &len),
                     0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return connect(fd, (struct sockaddr *)&ss, len);
}

/* Coroutine A waits on ss_run_blocking's eventfd, which is then closed;
 * connection B, accepted next, gets that descriptor number and registers
 * its socket. When A later waits on another descriptor, the coroutine
 * strategy must not "disarm" A's old number — that would unregister B's
 * socket, and B would never hear of its next input. */
static void
test_closed_wait_descriptor_reused_by_a_socket_stays_watched(void **state)
{
    (void)state;
    fixture fx;
    fixture_start(&fx, &ss_coroutines, &reuse_handler, &ss_tcp, 1);
    /* Created now so that it does not take the number itself. */
    int late = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(late >= 0);
    char line[64];
    send_text(fx.client, "block\n");
    recv_line(fx.client, line, sizeof line);
    assert_string_equal(line, "7\n");

    assert_int_equal(connect_late(&fx, late), 0);
    test_expect_echo(late, "hello\n"); /* B's socket is registered now */
    send_text(fx.client, "pipe\n");
    recv_line(fx.client, line, sizeof line);
    char expected[16];
    snprintf(expected, sizeof expected, "%d\n", -ETIMEDOUT);
    assert_string_equal(line, expected);

    send_text(late, "still there?\n");
    struct pollfd pfd = {.fd = late, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 3000), 1);
    recv_line(late, line, sizeof line);
    assert_string_equal(line, "still there?\n");
    close(late);
    fixture_stop(&fx);
}

/* ---- Registration ------------------------------------------------------ */

#define MAX_TESTS 80
static struct CMUnitTest tests[MAX_TESTS];
static char names[MAX_TESTS][128];
static size_t n_tests;

static void add(const char *what, CMUnitTestFunction fn, strategy_case *sc)
{
    assert_true(n_tests < MAX_TESTS);
    snprintf(names[n_tests], sizeof names[n_tests], "%s%s%s",
             sc ? sc->name : "", sc ? ": " : "", what);
    tests[n_tests] = (struct CMUnitTest){
        .name = names[n_tests],
        .test_func = fn,
        .initial_state = sc,
    };
    n_tests++;
}

static void add_per_strategy(const char *what, CMUnitTestFunction fn)
{
    for (size_t i = 0; i < N_STRATEGIES; i++)
        add(what, fn, &strategies[i]);
}

#define ADD_PER_STRATEGY(fn) add_per_strategy(#fn, fn)

/* An optional argument selects tests by name, e.g. '*coroutines*'. */
int main(int argc, char **argv)
{
    legacy_io = ss_blocking_wait;
    legacy_io.name = "legacy";
    legacy_io.wait_input_or_fd = NULL;
    legacy_threading = ss_threading;
    legacy_threading.wait_class = &legacy_io;

    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    ADD_PER_STRATEGY(test_input_first_ends_the_wait);
    ADD_PER_STRATEGY(test_fd_first_ends_the_wait);
    ADD_PER_STRATEGY(test_wait_times_out_when_neither_is_ready);
    ADD_PER_STRATEGY(test_shutdown_cancels_the_wait);
    ADD_PER_STRATEGY(test_buffered_input_counts_without_waiting);
    ADD_PER_STRATEGY(test_end_of_stream_counts_as_input);
    ADD_PER_STRATEGY(test_input_beyond_a_full_read_is_reported);
    ADD_PER_STRATEGY(test_input_read_with_a_later_edge_is_not_reported_again);
    add("test_datagram_requests_are_refused",
        test_datagram_requests_are_refused, &strategies[0]);
    add("test_datagram_requests_are_refused",
        test_datagram_requests_are_refused, &strategies[4]);
    add("test_bad_descriptors_are_refused", test_bad_descriptors_are_refused,
        &strategies[0]);
    add("test_bad_descriptors_are_refused", test_bad_descriptors_are_refused,
        &strategies[4]);
    add("test_waiting_coroutine_lets_others_run",
        test_waiting_coroutine_lets_others_run, NULL);
    add("test_closed_wait_descriptor_reused_by_a_socket_stays_watched",
        test_closed_wait_descriptor_reused_by_a_socket_stays_watched, NULL);
    return _cmocka_run_group_tests("test_wait_input_or_fd", tests, n_tests,
                                   NULL, NULL);
}
