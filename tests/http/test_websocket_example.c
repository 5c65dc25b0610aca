/*
 * test_websocket_example.c — the echo server of docs/websocket.md,
 * compiled from the Markdown itself (cmake/extract-doc-example.cmake), its
 * handler run under a thread per connection and under coroutines: a text
 * and a binary message come back, and a close is answered.
 */
#include "support.h"

#include <sockserv/http.h>

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The documented program, with its main() renamed: the test serves its
 * method table on servers of its own (port 0, the strategy at hand). */
#define main documented_main
#include "websocket_example.c"
#undef main

static void send_masked(int fd, int opcode, const char *data, size_t n)
{
    uint8_t f[6 + 100] = {(uint8_t)(0x80 | opcode), (uint8_t)(0x80 | n), 1,
                          2, 3, 4};
    for (size_t i = 0; i < n; i++)
        f[6 + i] = (uint8_t)(data[i] ^ f[2 + (i & 3)]);
    test_send_all(fd, f, 6 + n);
}

static void expect_frame(int fd, int opcode, const char *data, size_t n)
{
    uint8_t f[2 + 100];
    test_recv_exact(fd, f, 2 + n);
    assert_int_equal(f[0], 0x80 | opcode);
    assert_int_equal(f[1], n);
    assert_memory_equal(f + 2, data, n);
}

static void run_example(const ss_strategy *strategy)
{
    ss_http_config http;
    ss_http_config_init(&http);
    /* The documented main's table: GET → do_GET. */
    static const ss_http_method table[] = {{"GET", do_GET}, {NULL, NULL}};
    http.methods = table;
    http.quiet = true;
    ss_handler_class handler = ss_http_handler;
    handler.class_data = &http;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, strategy,
                                            "127.0.0.1:0", &handler, NULL,
                                            0.05),
                     0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    test_send_all(fd, req, sizeof req - 1);
    char head[1024];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)
        test_recv_exact(fd, head + n++, 1);
    head[n] = '\0';
    assert_non_null(strstr(head, " 101 "));
    send_masked(fd, 0x1, "hello", 5);
    expect_frame(fd, 0x1, "hello", 5);
    send_masked(fd, 0x2, "\x00\x01\x02", 3);
    expect_frame(fd, 0x2, "\x00\x01\x02", 3);
    send_masked(fd, 0x8, "\x03\xe8", 2);
    expect_frame(fd, 0x8, "\x03\xe8", 2);
    close(fd);
    test_server_stop(&t);
}

static void test_documented_echo_under_threading(void **state)
{
    (void)state;
    run_example(&ss_threading);
}

static void test_documented_echo_under_coroutines(void **state)
{
    (void)state;
    run_example(&ss_coroutines);
}

int main(void)
{
    (void)documented_main;
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_echo_under_threading),
        cmocka_unit_test(test_documented_echo_under_coroutines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
