/*
 * test_http_handler_example.c — the complete example of
 * docs/http-handler.md, compiled from the Markdown itself (CMake extracts
 * its first C block, cmake/extract-doc-example.cmake), run under every
 * strategy, as the page promises it runs.
 *
 * The case that matters is two clients whose POST bodies arrive
 * interleaved while both requests are in progress: under ss_coroutines
 * with one scheduler thread both run on the same thread, so a body kept
 * in static or _Thread_local memory would mix them (issue 18: client A
 * got "BBBBBBBBBBaaaaaaaaaa"). Each client must get back exactly the
 * bytes it sent.
 */
#include "support.h"

#include <sockserv/http.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The documented program, with its main() renamed: the tests use its
 * handler class on servers of their own (port 0, the strategy at hand). */
#define main documented_main
#include "http_handler_example.c"
#undef main

/* Send a request head with Connection: close (and the first part of its
 * body, if any). */
static int open_post(ss_server *srv, size_t body_length, const char *first)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /echo HTTP/1.1\r\nHost: test\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     body_length, first);
    test_send_all(fd, head, (size_t)n);
    return fd;
}

/* Read the whole response (the server closes after it) and check its
 * status and body. */
static void expect_body(int fd, const char *status_line, const char *body)
{
    char response[4096];
    size_t n = test_recv_all(fd, response, sizeof response - 1);
    response[n] = '\0';
    if (strncmp(response, status_line, strlen(status_line)) != 0)
        fail_msg("expected \"%s\", got: %s", status_line, response);
    const char *got = strstr(response, "\r\n\r\n");
    assert_non_null(got);
    assert_string_equal(got + 4, body);
    close(fd);
}

/* A sleep long enough for the server to have read what was sent and to
 * be waiting for the rest. */
#define SETTLE 0.1

/* The documented handler class on a server of the given strategy: TCP,
 * port 0, coroutines on one scheduler thread (so requests share it), a
 * pool of two workers (so two requests run at once). */
static void start_documented(test_server *t, const ss_strategy *strategy)
{
    print_message("under %s\n", strategy->name);
    test_options opts = {.coro.threads = 1, .pool.pool_size = 2};
    ss_config cfg = {0};
    test_use_options(&cfg, strategy, &opts);
    assert_int_equal(test_server_start_with(t, &ss_tcp, strategy, "127.0.0.1:0",
                                            &handler, &cfg, 0.05),
                     0);
}

/* Each test runs under the strategy its state names (main's table). */
static void test_interleaved_bodies_stay_apart(void **state)
{
    test_server t;
    start_documented(&t, *state);
    int a = open_post(t.srv, 20, "aaaaaaaaaa");
    test_sleep(SETTLE); /* A's request has read its first half, waits */
    int b = open_post(t.srv, 20, "bbbbbbbbbb");
    test_sleep(SETTLE); /* so has B's (where they run at once) */
    test_send_all(a, "AAAAAAAAAA", 10);
    expect_body(a, "HTTP/1.1 200 ", "aaaaaaaaaaAAAAAAAAAA");
    test_send_all(b, "BBBBBBBBBB", 10);
    expect_body(b, "HTTP/1.1 200 ", "bbbbbbbbbbBBBBBBBBBB");
    test_server_stop(&t);
}

static void test_documented_get_answers(void **state)
{
    test_server t;
    start_documented(&t, *state);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    static const char get[] = "GET /hello HTTP/1.1\r\nHost: test\r\n"
                              "User-Agent: tester\r\nConnection: close\r\n\r\n";
    test_send_all(fd, get, sizeof get - 1);
    expect_body(fd, "HTTP/1.1 200 ", "hello, tester\n");
    fd = test_connect(t.srv);
    assert_true(fd >= 0);
    static const char missing[] = "GET /nothing HTTP/1.1\r\nHost: test\r\n"
                                  "Connection: close\r\n\r\n";
    test_send_all(fd, missing, sizeof missing - 1);
    char response[64];
    size_t n = test_recv_all(fd, response, sizeof response - 1);
    response[n] = '\0';
    assert_true(strncmp(response, "HTTP/1.1 404 ", 13) == 0);
    close(fd);
    test_server_stop(&t);
}

#define UNDER_EACH_STRATEGY(test)                                              \
    cmocka_unit_test_prestate(test, (void *)&ss_coroutines),                   \
        cmocka_unit_test_prestate(test, (void *)&ss_sync),                     \
        cmocka_unit_test_prestate(test, (void *)&ss_threading),                \
        cmocka_unit_test_prestate(test, (void *)&ss_thread_pool),              \
        cmocka_unit_test_prestate(test, (void *)&ss_forking),                  \
        cmocka_unit_test_prestate(test, (void *)&ss_prefork)

int main(void)
{
    (void)documented_main; /* the program's own main is not run here */
    const struct CMUnitTest tests[] = {
        UNDER_EACH_STRATEGY(test_interleaved_bodies_stay_apart),
        UNDER_EACH_STRATEGY(test_documented_get_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
