/*
 * test_graceful_shutdown.c — ss_shutdown() in the middle of a load, under
 * every strategy, checked byte by byte from the client side.
 *
 * Eight keep-alive clients make request after request (answers of 1 to
 * 256 KiB, each a pattern named by the request's id) while one more
 * client's request is held in the middle of its answer: the handler has
 * sent half of 16 MiB, then works 300 ms (ss_run_blocking, which a
 * shutdown does not interrupt) before sending the rest, which takes many
 * waits for the socket to drain. The test calls ss_shutdown() once
 * that client has the first half, lets ss_serve_forever() return, frees
 * the server and then opens one more connection, which must get nothing.
 *
 * What every client checks for every request it sent: the answer came
 * complete and correct, or the connection ended (EOF or reset) before a
 * single byte of it arrived. Any answer that stops in the middle, and any
 * wrong byte, fails the test. The held answer must arrive whole: it was in
 * progress when the shutdown came, and config.shutdown_grace (5 s by
 * default) is for exactly that. Handler failures are counted in shared
 * memory, so those of forked children and prefork workers count too, and
 * there must be none (a request cut short by the shutdown is not one).
 *
 * The same runs over the plain line protocol ("REQ id size pause" →
 * size bytes) and over HTTP/1.1 keep-alive (GET with Content-Length).
 *
 * One more test shows the limit of the promise: a client that stops
 * reading in the middle of an answer during a shutdown holds the server
 * only for shutdown_grace; then the connection is closed with the answer
 * incomplete — the server cannot take back bytes already sent, and the
 * framing (the size the client asked for, Content-Length) tells the client.
 */
#include "hardening.h"

#include <sockserv/http.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOAD_CLIENTS 8
#define MAX_ANSWER (256 * 1024)
/* Its second half cannot fit into the socket buffers (the held client's
 * receive buffer is 16 KiB, a send buffer grows to 4 MiB at most), so
 * after the shutdown the server must wait to send: the grace at work. */
#define HELD_SIZE (16 * 1024 * 1024)
#define HELD_PAUSE_MS 300

/* Shared with forked children and prefork workers. */
typedef struct shared {
    atomic_int handler_errors;
    char first_error[256];
} shared;
static shared *counters;

static void count_error(void *user, const char *line)
{
    (void)user;
    if (atomic_fetch_add(&counters->handler_errors, 1) == 0)
        snprintf(counters->first_error, sizeof counters->first_error, "%s",
                 line);
}

/* ---- Server side --------------------------------------------------------- */

/* Sends pattern bytes [from, to) of answer id through write_fn. */
static int send_range(void *ctx,
                      ssize_t (*write_fn)(void *, const void *, size_t),
                      uint64_t id, size_t from, size_t to)
{
    char chunk[16384];
    for (size_t pos = from; pos < to;) {
        size_t want = to - pos < sizeof chunk ? to - pos : sizeof chunk;
        hz_pattern(id, pos, chunk, want);
        ssize_t w = write_fn(ctx, chunk, want);
        if (w < 0)
            return (int)w;
        pos += want;
    }
    return 0;
}

/* Half the answer, the pause, the other half. Returns 0 or the failed
 * write's negative errno (-ECANCELED after the grace: not reported). */
static int answer(void *ctx, ssize_t (*write_fn)(void *, const void *, size_t),
                  ss_request *req, uint64_t id, size_t size, int pause)
{
    int rc = send_range(ctx, write_fn, id, 0, size / 2);
    if (rc < 0)
        return rc;
    if (pause > 0)
        ss_run_blocking(req, hz_pause_ms, (void *)(intptr_t)pause);
    return send_range(ctx, write_fn, id, size / 2, size);
}

static ssize_t write_request(void *ctx, const void *buf, size_t n)
{
    return ss_write_all(ctx, buf, n);
}

static int line_handle(ss_request *req)
{
    char line[128];
    for (;;) {
        ssize_t n = ss_readline(req, line, sizeof line);
        if (n <= 0)
            return (int)n; /* EOF, or -ECANCELED by the shutdown */
        unsigned long long id, size;
        int pause;
        if (sscanf(line, "REQ %llu %llu %d", &id, &size, &pause) != 3)
            return -EPROTO;
        int rc = answer(req, write_request, req, id, size, pause);
        if (rc < 0)
            return rc;
    }
}

static const ss_handler_class line_handler = {
    .base = &ss_stream_handler,
    .handle = line_handle,
    /* The last piece of an answer must not wait for a delayed ACK: more
     * requests in the test's time. */
    .disable_nagle_algorithm = true,
};

static ssize_t write_http(void *ctx, const void *buf, size_t n)
{
    return ss_http_write(ctx, buf, n);
}

static int http_get(ss_http *h)
{
    unsigned long long id, size;
    int pause;
    if (sscanf(ss_http_target(h), "/data?id=%llu&size=%llu&pause=%d", &id,
               &size, &pause) != 3)
        return ss_http_send_error(h, 404, NULL) < 0 ? -1 : 0;
    if (ss_http_send_response(h, 200, NULL) < 0 ||
        ss_http_send_headerf(h, "Content-Length", "%llu", size) < 0 ||
        ss_http_end_headers(h) < 0)
        return -1;
    /* ss_run_blocking needs the request; taking it hands the wire to this
     * callback, so the connection closes after this one exchange (only
     * the held client's request pauses). */
    ss_request *req = pause > 0 ? ss_http_request_of(h) : NULL;
    return answer(h, write_http, req, id, (size_t)size, pause) < 0 ? -1 : 0;
}

static const ss_http_method http_methods[] = {{"GET", http_get}, {NULL, NULL}};
static ss_http_config http_config;
static ss_handler_class http_handler;

/* ---- Client side ----------------------------------------------------------
 */

typedef struct run {
    bool http;
    ss_server *srv;
    hz_failures failures;
    _Atomic double shutdown_at; /* 0 until ss_shutdown() */
    atomic_int complete;        /* answers complete and correct */
    atomic_int after_shutdown;  /* of them, finished after the shutdown */
    atomic_int clean_closes;    /* connections closed between answers */
    atomic_bool held_has_half;  /* the held client got its first half */
    atomic_bool held_complete;  /* … and then all of it */
} run;

typedef enum outcome { COMPLETE, CLOSED_CLEAN, BROKEN } outcome;

static void send_request(run *r, int fd, uint64_t id, size_t size, int pause,
                         double deadline, int *end)
{
    char text[160];
    int len;
    if (r->http)
        len = snprintf(text, sizeof text,
                       "GET /data?id=%llu&size=%zu&pause=%d HTTP/1.1\r\n"
                       "Host: t\r\n\r\n",
                       (unsigned long long)id, size, pause);
    else
        len = snprintf(text, sizeof text, "REQ %llu %zu %d\n",
                       (unsigned long long)id, size, pause);
    *end = hz_send_all(fd, text, (size_t)len, deadline);
}

/* Read one answer into buf (size + 8 KiB bytes, allocated before the
 * server started: see hardening.h on fork) and judge it. *first_half is
 * set once half the body is in (for the held client). */
static outcome read_answer(run *r, int fd, uint64_t id, size_t size,
                           double deadline, const char *who,
                           atomic_bool *first_half, char *buf)
{
    size_t head_len = 0, total = 0;
    int end = 0;
    if (r->http) {
        /* The head, then what came with it. */
        char *sep = NULL;
        while (!sep) {
            ssize_t n = hz_recv(fd, buf + total, 8192 - total - 1, deadline);
            if (n <= 0) {
                end = n == 0 ? SS_EOF : (int)n;
                break;
            }
            total += (size_t)n;
            buf[total] = '\0';
            sep = strstr(buf, "\r\n\r\n");
            if (!sep && total >= 8191)
                end = -EMSGSIZE;
            if (end)
                break;
        }
        if (sep) {
            head_len = (size_t)(sep - buf) + 4;
            char expect[64];
            snprintf(expect, sizeof expect, "Content-Length: %zu\r\n", size);
            if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0 ||
                !strstr(buf, expect)) {
                hz_fail(&r->failures, "%s: answer %llu: wrong head: %.60s", who,
                        (unsigned long long)id, buf);
                return BROKEN;
            }
        }
    }
    if (end == 0) {
        size_t want = head_len + size;
        while (total < want) {
            size_t step = want - total;
            if (first_half && total < head_len + size / 2)
                step = head_len + size / 2 - total;
            ssize_t n = hz_recv(fd, buf + total, step, deadline);
            if (n <= 0) {
                end = n == 0 ? SS_EOF : (int)n;
                break;
            }
            total += (size_t)n;
            if (first_half && total >= head_len + size / 2)
                atomic_store(first_half, true);
        }
    }
    if (total == 0 && (end == SS_EOF || end == -ECONNRESET))
        return CLOSED_CLEAN;
    if (end != 0) {
        hz_fail(&r->failures,
                "%s: answer %llu cut after %zu of %zu bytes (%s): a partial "
                "answer",
                who, (unsigned long long)id, total, head_len + size,
                ss_strerror(end));
        return BROKEN;
    }
    long bad = hz_pattern_mismatch(id, 0, buf + head_len, size);
    if (bad >= 0) {
        hz_fail(&r->failures, "%s: answer %llu: byte %ld is wrong", who,
                (unsigned long long)id, bad);
        return BROKEN;
    }
    atomic_fetch_add(&r->complete, 1);
    double at = atomic_load(&r->shutdown_at);
    if (at > 0 && test_now() > at)
        atomic_fetch_add(&r->after_shutdown, 1);
    return COMPLETE;
}

typedef struct load_client {
    run *r;
    int index;
    int fd;    /* connected by the main thread, in order */
    char *buf; /* for its answers */
    pthread_barrier_t *start;
} load_client;

static void *load_main(void *arg)
{
    load_client *c = arg;
    run *r = c->r;
    char who[32];
    snprintf(who, sizeof who, "client %d", c->index);
    uint64_t seed = UINT64_C(0x10AD) + (uint64_t)c->index;
    pthread_barrier_wait(c->start);
    double deadline = test_now() + 30.0;
    for (uint64_t n = 0;; n++) {
        uint64_t id = (uint64_t)(c->index + 1) << 32 | n;
        size_t size = 1 + hz_rand(&seed) % MAX_ANSWER;
        int end;
        send_request(r, c->fd, id, size, 0, deadline, &end);
        if (end == -EPIPE || end == -ECONNRESET) {
            atomic_fetch_add(&r->clean_closes, 1); /* closed: nothing sent */
            break;
        }
        if (end < 0) {
            hz_fail(&r->failures, "%s: send: %s", who, ss_strerror(end));
            break;
        }
        outcome o =
            read_answer(r, c->fd, id, size, deadline, who, NULL, c->buf);
        if (o == CLOSED_CLEAN)
            atomic_fetch_add(&r->clean_closes, 1);
        if (o != COMPLETE)
            break;
    }
    close(c->fd);
    return NULL;
}

/* The held client (its first, ordinary request was made by the main
 * thread): a request whose answer pauses half-way for HELD_PAUSE_MS. */
static void *held_main(void *arg)
{
    load_client *c = arg;
    run *r = c->r;
    pthread_barrier_wait(c->start);
    double deadline = test_now() + 30.0;
    int end;
    send_request(r, c->fd, 2, HELD_SIZE, HELD_PAUSE_MS, deadline, &end);
    if (end == 0 && read_answer(r, c->fd, 2, HELD_SIZE, deadline, "held client",
                                &r->held_has_half, c->buf) == COMPLETE)
        atomic_store(&r->held_complete, true);
    if (end != 0)
        hz_fail(&r->failures, "held client: %s", ss_strerror(end));
    atomic_store(&r->held_has_half, true); /* never leave the test waiting */
    close(c->fd);
    return NULL;
}

static bool held_half(void *arg)
{
    return atomic_load(&((run *)arg)->held_has_half);
}

static const hz_strategy strategies[] = {
    {"sync", &ss_sync, false, 0, 0, NULL, 1},
    {"fork", &ss_forking, true, 0, 0, NULL, 0},
    {"thread", &ss_threading, false, 0, 0, NULL, 0},
    {"pool4", &ss_thread_pool, false, 4, 0, NULL, 4},
    {"prefork2", &ss_prefork, true, 0, 2, NULL, 2},
    {"prefork2+thread", &ss_prefork, true, 0, 2, &ss_threading, 0},
    {"coro", &ss_coroutines, false, 0, 0, NULL, 0},
};
#define N_STRATEGIES (sizeof strategies / sizeof strategies[0])

static bool children_exactly(void *arg)
{
    return hz_children_of(getpid(), NULL, 0) == *(int *)arg;
}

static void run_shutdown_under_load(const hz_strategy *s, bool http)
{
    hz_skip_if_unsupported(s);
    atomic_store(&counters->handler_errors, 0);
    load_client clients[LOAD_CLIENTS + 1];
    for (int i = 0; i <= LOAD_CLIENTS; i++) {
        clients[i].buf = malloc((i == 0 ? HELD_SIZE : MAX_ANSWER) + 8192);
        assert_non_null(clients[i].buf);
    }
    ss_config cfg;
    test_options opts = {0};
    hz_config_for(s, &cfg, &opts);
    cfg.log = count_error;
    test_server t;
    assert_int_equal(test_server_start_with(
                         &t, &ss_tcp, s->strategy, "127.0.0.1:0",
                         http ? &http_handler : &line_handler, &cfg, 0.05),
                     0);
    static run r;
    memset(&r, 0, sizeof r);
    r.http = http;
    r.srv = t.srv;
    hz_failures_init(&r.failures);

    /* Everything that forks at start has forked before a client thread
     * exists (hardening.h, on fork): prefork's workers, ... */
    int workers = s->workers;
    if (workers > 0 && !test_wait_for(children_exactly, &workers, 10.0))
        fail_msg("the prefork supervisor did not start %d workers", workers);
    /* The held client first, served (its first request answered) before
     * the others connect, so that a server with one worker (sync) serves
     * it; then the load. */
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, LOAD_CLIENTS + 2);
    for (int i = 0; i <= LOAD_CLIENTS; i++) {
        clients[i].r = &r;
        clients[i].index = i;
        clients[i].start = &start;
        clients[i].fd = hz_connect(t.srv, i == 0 ? 16384 : 0);
        assert_true(clients[i].fd >= 0);
        /* An HTTP connection waits for its first byte without a child
         * (ss_forking parks it): send one — an empty line, which a
         * request may start with — so that its child is forked now. */
        if (i > 0 && http)
            assert_int_equal(
                hz_send_all(clients[i].fd, "\r\n", 2, test_now() + 10.0), 0);
        if (i > 0)
            continue;
        int end;
        send_request(&r, clients[0].fd, 1, 1000, 0, test_now() + 10.0, &end);
        assert_int_equal(end, 0);
        assert_int_equal(read_answer(&r, clients[0].fd, 1, 1000,
                                     test_now() + 10.0, "held client", NULL,
                                     clients[0].buf),
                         COMPLETE);
    }
    /* ... and ss_forking's child for every connection. */
    int children = LOAD_CLIENTS + 1;
    if (s->strategy == &ss_forking &&
        !test_wait_for(children_exactly, &children, 10.0))
        fail_msg("not every connection got its child");
    pthread_t threads[LOAD_CLIENTS + 1];
    for (int i = 0; i <= LOAD_CLIENTS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL,
                                        i == 0 ? held_main : load_main,
                                        &clients[i]),
                         0);
    pthread_barrier_wait(&start);

    /* Shut down while the held answer is half sent and the load runs. */
    assert_true(test_wait_for(held_half, &r, 10.0));
    test_sleep(0.05);
    atomic_store(&r.shutdown_at, test_now());
    double t0 = test_now();
    assert_true(test_server_join_within(&t, 10.0));
    double loop_took = test_now() - t0;

    /* Stopped: a new connection is never answered. (It may still be
     * taken into the listen backlog until the server is closed.) */
    int late = hz_connect(t.srv, 0);
    if (late >= 0)
        hz_send_all(late, "REQ 9 10 0\n", 11, test_now() + 1.0);
    ss_server_free(t.srv);
    t.srv = NULL;
    if (late >= 0) {
        char buf[16];
        int end;
        size_t n =
            hz_recv_until_close(late, buf, sizeof buf, test_now() + 5.0, &end);
        close(late);
        if (n != 0 || (end != SS_EOF && end != -ECONNRESET))
            fail_msg("a connection made after the shutdown got %zu bytes "
                     "(%s)",
                     n, ss_strerror(end));
    }
    for (int i = 0; i <= LOAD_CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        free(clients[i].buf);
    }
    pthread_barrier_destroy(&start);

    print_message("%s/%s: %d complete answers (%d finished after the "
                  "shutdown), %d clean closes; loop stopped in %.3f s\n",
                  http ? "http" : "line", s->name, atomic_load(&r.complete),
                  atomic_load(&r.after_shutdown), atomic_load(&r.clean_closes),
                  loop_took);
    hz_assert_no_failures(&r.failures);
    assert_true(atomic_load(&r.held_complete));
    assert_true(atomic_load(&r.after_shutdown) >= 1);
    if (atomic_load(&counters->handler_errors) > 0)
        fail_msg("%d handler failure(s); the first: %s",
                 atomic_load(&counters->handler_errors), counters->first_error);
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

static void test_line_shutdown_under_load(void **state)
{
    run_shutdown_under_load(*state, false);
}

static void test_http_shutdown_under_load(void **state)
{
    run_shutdown_under_load(*state, true);
}

/* ---- The grace is a bound ------------------------------------------------ */

/* A client asks for 16 MiB and never reads. The shutdown comes while the
 * answer is stalled: after shutdown_grace (0.5 s here) the server gives up
 * and closes, the client has a part of the answer, and the loop and
 * ss_server_free() are done. */
static void run_stalled_reader(const ss_strategy *strategy)
{
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.shutdown_grace = 0.5;
    cfg.log = count_error;
    atomic_store(&counters->handler_errors, 0);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, strategy,
                                            "127.0.0.1:0", &line_handler, &cfg,
                                            0.05),
                     0);
    int fd = hz_connect(t.srv, 4096);
    assert_true(fd >= 0);
    char request[64];
    int len = snprintf(request, sizeof request, "REQ 7 %d 0\n", 16 << 20);
    assert_int_equal(hz_send_all(fd, request, (size_t)len, test_now() + 5.0),
                     0);
    test_sleep(0.2); /* the server is stuck in its write by now */
    double t0 = test_now();
    assert_true(test_server_stop_within(&t, 10.0));
    double took = test_now() - t0;
    static char sink[1 << 16];
    size_t total = 0;
    int end = 0;
    for (;;) {
        ssize_t n = hz_recv(fd, sink, sizeof sink, test_now() + 5.0);
        if (n <= 0) {
            end = n == 0 ? SS_EOF : (int)n;
            break;
        }
        total += (size_t)n;
    }
    close(fd);
    print_message("%s: stopped in %.3f s with the reader stalled; it got "
                  "%zu of %d bytes\n",
                  strategy->name, took, total, 16 << 20);
    assert_true(took >= 0.4);      /* the grace was given */
    assert_true(took < 0.5 + 2.0); /* and it was the bound */
    assert_true(end == SS_EOF || end == -ECONNRESET);
    assert_true(total < (size_t)16 << 20);
    /* Cut short by the shutdown: not reported as a failure. */
    assert_int_equal(atomic_load(&counters->handler_errors), 0);
}

static void
test_thread_stalled_reader_holds_shutdown_only_for_the_grace(void **state)
{
    (void)state;
    run_stalled_reader(&ss_threading);
}

static void
test_coro_stalled_reader_holds_shutdown_only_for_the_grace(void **state)
{
    (void)state;
    run_stalled_reader(&ss_coroutines);
}

static void
test_sync_stalled_reader_holds_shutdown_only_for_the_grace(void **state)
{
    (void)state;
    run_stalled_reader(&ss_sync);
}

/* ---- Registration -----------------------------------------------------------
 */

#define MAX_TESTS 32
static struct CMUnitTest tests[MAX_TESTS];
static char names[MAX_TESTS][64];
static size_t n_tests;

static void add(const char *prefix, const hz_strategy *s, CMUnitTestFunction fn)
{
    snprintf(names[n_tests], sizeof names[n_tests], "%s/%s", prefix, s->name);
    tests[n_tests] = (struct CMUnitTest){
        .name = names[n_tests],
        .test_func = fn,
        .initial_state = (void *)s,
    };
    n_tests++;
}

static int group_setup(void **state)
{
    (void)state;
    counters = mmap(NULL, sizeof *counters, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counters == MAP_FAILED)
        return -1;
    ss_http_config_init(&http_config);
    http_config.methods = http_methods;
    http_config.quiet = true;
    http_handler = ss_http_handler;
    http_handler.class_data = &http_config;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    for (size_t i = 0; i < N_STRATEGIES; i++)
        add("line_shutdown_under_load", &strategies[i],
            test_line_shutdown_under_load);
    for (size_t i = 0; i < N_STRATEGIES; i++)
        add("http_shutdown_under_load", &strategies[i],
            test_http_shutdown_under_load);
    tests[n_tests++] = (struct CMUnitTest)cmocka_unit_test(
        test_thread_stalled_reader_holds_shutdown_only_for_the_grace);
    tests[n_tests++] = (struct CMUnitTest)cmocka_unit_test(
        test_coro_stalled_reader_holds_shutdown_only_for_the_grace);
    tests[n_tests++] = (struct CMUnitTest)cmocka_unit_test(
        test_sync_stalled_reader_holds_shutdown_only_for_the_grace);
    return _cmocka_run_group_tests("graceful shutdown", tests, n_tests,
                                   group_setup, NULL);
}
