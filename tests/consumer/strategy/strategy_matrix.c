/*
 * strategy_matrix.c — the strategy × kind matrix for a strategy written
 * outside the library (accept_threads), built against the installed
 * headers with pkg-config (CI) and in the tree (ctest). Only public
 * headers: <sockserv/sockserv.h> and <sockserv/strategy.h>.
 *
 * For each of TCP, UDP, Unix stream and Unix datagram: clients get their
 * echo from one server; slow requests run at the same time (so the
 * strategy really runs them on several threads); ss_handle_request()
 * works; ss_shutdown() from another thread ends ss_serve_forever() at
 * once; and a bad option is refused with -EINVAL.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sockserv/strategy.h>

#include "accept_threads.h"

typedef struct kind_case {
    const char *name;
    const ss_server_class *kind;
    bool datagram;
} kind_case;

static const kind_case kinds[] = {
    {"tcp", &ss_tcp, false},
    {"udp", &ss_udp, true},
    {"unix_stream", &ss_unix_stream, false},
    {"unix_datagram", &ss_unix_datagram, true},
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The handler: echo one line (stream) or the datagram; "slow" first
 * sleeps 0.3 s through ss_sleep, so concurrency shows in the time. */
static int echo_handle(ss_request *req)
{
    char line[256];
    int n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? n : 0;
    if (strncmp(line, "slow", 4) == 0) {
        int rc = ss_sleep(req, 0.3);
        if (rc < 0)
            return rc;
    }
    int w = ss_write_all(req, line, (size_t)n);
    return w < 0 ? w : 0;
}

static const ss_handler_class echo_stream = {
    .base = &ss_stream_handler,
    .handle = echo_handle,
};
static const ss_handler_class echo_datagram = {
    .base = &ss_datagram_handler,
    .handle = echo_handle,
};

typedef struct running {
    ss_server *srv;
    pthread_t thread;
    int rc;
} running;

static void *serve(void *arg)
{
    running *r = arg;
    r->rc = ss_serve_forever(r->srv, 0.05);
    return NULL;
}

static void address_for(const kind_case *k, char *buf, size_t size)
{
    static int counter;
    if (k->kind == &ss_tcp || k->kind == &ss_udp)
        snprintf(buf, size, "127.0.0.1:0");
    else
        snprintf(buf, size, "unix:@sockserv-matrix-%d-%d", (int)getpid(),
                 counter++);
}

static ss_server *make_server(const kind_case *k, int threads)
{
    char address[108];
    address_for(k, address, sizeof address);
    accept_threads_options opt = {.threads = threads};
    ss_config cfg = {.strategy_options = &opt};
    ss_server *srv = NULL;
    int rc = ss_server_new(&srv, k->kind, &accept_threads, address,
                           k->datagram ? &echo_datagram : &echo_stream, &cfg);
    assert_int_equal(rc, 0);
    return srv;
}

static void start(running *r)
{
    assert_int_equal(pthread_create(&r->thread, NULL, serve, r), 0);
}

static void stop(running *r)
{
    double t0 = now();
    assert_int_equal(ss_shutdown(r->srv), 0);
    pthread_join(r->thread, NULL);
    assert_true(now() - t0 < 1.0); /* wakes at once, not after polling */
    assert_int_equal(r->rc, 0);
    ss_server_free(r->srv);
}

/* A client socket connected (stream) or aimed (datagram) at srv. */
static int client_for(const kind_case *k, ss_server *srv)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&addr, &len), 0);
    int fd = socket(addr.ss_family, k->datagram ? SOCK_DGRAM : SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (k->datagram && addr.ss_family == AF_UNIX) {
        /* A Unix datagram client needs a name to be answered: autobind. */
        struct sockaddr_un self = {.sun_family = AF_UNIX};
        assert_int_equal(
            bind(fd, (struct sockaddr *)&self, sizeof(sa_family_t)), 0);
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, len), 0);
    return fd;
}

static void expect_echo(int fd, const char *text)
{
    size_t n = strlen(text);
    assert_int_equal(send(fd, text, n, MSG_NOSIGNAL), (ssize_t)n);
    char buf[256];
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_int_equal(got, n);
    assert_memory_equal(buf, text, n);
}

static void test_clients_get_their_echo(void **state)
{
    const kind_case *k = *state;
    running r = {.srv = make_server(k, 3)};
    start(&r);
    for (int i = 0; i < 3; i++) {
        int fd = client_for(k, r.srv);
        char text[64];
        snprintf(text, sizeof text, "hello %s %d\n", k->name, i);
        expect_echo(fd, text);
        close(fd);
    }
    stop(&r);
}

typedef struct slow_client {
    const kind_case *k;
    ss_server *srv;
    pthread_t thread;
} slow_client;

static void *slow_request(void *arg)
{
    slow_client *c = arg;
    int fd = client_for(c->k, c->srv);
    expect_echo(fd, "slow\n");
    close(fd);
    return NULL;
}

static void test_slow_requests_run_at_once(void **state)
{
    const kind_case *k = *state;
    running r = {.srv = make_server(k, 3)};
    start(&r);
    slow_client clients[3];
    double t0 = now();
    for (int i = 0; i < 3; i++) {
        clients[i] = (slow_client){.k = k, .srv = r.srv};
        assert_int_equal(
            pthread_create(&clients[i].thread, NULL, slow_request, &clients[i]),
            0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(clients[i].thread, NULL);
    /* Three 0.3 s requests on three threads: well under 0.9 s. */
    assert_true(now() - t0 < 0.8);
    stop(&r);
}

static void test_handle_request_runs_one(void **state)
{
    const kind_case *k = *state;
    ss_server *srv = make_server(k, 2);
    int fd = client_for(k, srv);
    assert_int_equal(send(fd, "one\n", 4, MSG_NOSIGNAL), 4);
    assert_int_equal(ss_handle_request(srv), 0);
    char buf[16];
    assert_int_equal(recv(fd, buf, sizeof buf, 0), 4);
    assert_memory_equal(buf, "one\n", 4);
    close(fd);
    ss_server_free(srv);
}

static void remember_line(void *user, const char *line)
{
    snprintf(user, 256, "%s", line);
}

static void test_bad_option_is_refused_by_name(void **state)
{
    const kind_case *k = *state;
    char address[108];
    address_for(k, address, sizeof address);
    accept_threads_options opt = {.threads = -1};
    char logged[256] = "";
    ss_config cfg = {
        .strategy_options = &opt, .log = remember_line, .user = logged};
    ss_server *srv = (ss_server *)&cfg; /* must be set to NULL */
    assert_int_equal(ss_server_new(&srv, k->kind, &accept_threads, address,
                                   k->datagram ? &echo_datagram : &echo_stream,
                                   &cfg),
                     -EINVAL);
    assert_null(srv);
    assert_non_null(strstr(logged, "threads: must not be negative"));
}

#define FOR_KIND(test, i, name)                                                \
    {                                                                          \
#test "/" name, test, NULL, NULL, (void *)&kinds[i]                    \
    }
#define ALL_KINDS(test)                                                        \
    FOR_KIND(test, 0, "tcp"), FOR_KIND(test, 1, "udp"),                        \
        FOR_KIND(test, 2, "unix_stream"), FOR_KIND(test, 3, "unix_datagram")

int main(void)
{
    const struct CMUnitTest tests[] = {
        ALL_KINDS(test_clients_get_their_echo),
        ALL_KINDS(test_slow_requests_run_at_once),
        ALL_KINDS(test_handle_request_runs_one),
        ALL_KINDS(test_bad_option_is_refused_by_name),
    };
    return cmocka_run_group_tests_name("accept_threads strategy x kind", tests,
                                       NULL, NULL);
}
