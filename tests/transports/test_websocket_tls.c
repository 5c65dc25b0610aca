/*
 * test_websocket_tls.c — WebSocket over TLS (wss://): the handler's I/O
 * goes through the request's transport, so the same echo route runs
 * unchanged on a TLS server, under a thread per connection and under
 * coroutines. The client is OpenSSL's, speaking WebSocket by hand.
 */
#include "support.h"
#include "tls_support.h"

#include <sockserv/http.h>
#include <sockserv/tls.h>
#include <sockserv/websocket.h>

#include <stdlib.h>
#include <string.h>

static test_tls_files files;

static int do_GET(ss_http *h)
{
    ss_ws *ws;
    if (ss_ws_accept(h, NULL, &ws) < 0)
        return 0;
    char buf[70000];
    ss_ws_type type;
    int n;
    while ((n = ss_ws_receive(ws, buf, sizeof buf, &type)) >= 0)
        if (ss_ws_send(ws, type, buf, (size_t)n) < 0)
            break;
    ss_ws_free(ws);
    return 0;
}

static const ss_http_method methods[] = {{"GET", do_GET}, {NULL, NULL}};

static void send_masked(test_tls_client *c, int opcode, const void *data,
                        size_t n)
{
    uint8_t *f = malloc(n + 14);
    size_t h = 0;
    f[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        f[h++] = (uint8_t)(0x80 | n);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(n >> 8);
        f[h++] = (uint8_t)n;
    }
    static const uint8_t key[4] = {9, 8, 7, 6};
    memcpy(f + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        f[h + i] = ((const uint8_t *)data)[i] ^ key[i & 3];
    test_tls_send_all(c, f, h + n);
    free(f);
}

static void expect_echo(test_tls_client *c, int opcode, const void *data,
                        size_t n)
{
    uint8_t hdr[4];
    test_tls_recv_exact(c, hdr, 2);
    assert_int_equal(hdr[0], 0x80 | opcode);
    size_t len = hdr[1];
    if (len == 126) {
        test_tls_recv_exact(c, hdr + 2, 2);
        len = (size_t)hdr[2] << 8 | hdr[3];
    }
    assert_int_equal(len, n);
    uint8_t *p = malloc(n + 1);
    test_tls_recv_exact(c, p, n);
    assert_memory_equal(p, data, n);
    free(p);
}

static void wss_echo(const ss_strategy *strategy)
{
    ss_tls_context *tls;
    ss_tls_options o = {.cert_file = files.cert, .key_file = files.key};
    assert_int_equal(ss_tls_context_new(&tls, &o), 0);
    ss_http_config http;
    ss_http_config_init(&http);
    http.methods = methods;
    http.quiet = true;
    ss_handler_class handler = ss_http_handler;
    handler.class_data = &http;
    ss_config cfg;
    ss_config_init(&cfg);
    test_server t;
    memset(&t, 0, sizeof t);
    assert_int_equal(ss_server_new(&t.srv, &ss_tcp, strategy, "127.0.0.1:0",
                                   &handler, &cfg),
                     0);
    assert_int_equal(ss_server_set_tls(t.srv, tls), 0);
    assert_int_equal(test_server_run(&t, 0.05), 0);

    SSL_CTX *cctx = test_tls_client_ctx(files.ca_cert, NULL, NULL);
    test_tls_client c;
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    assert_int_equal(test_tls_connect(&c, cctx, fd, "localhost"), 0);
    static const char req[] =
        "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    test_tls_send_all(&c, req, sizeof req - 1);
    char head[1024];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        assert_true(n < sizeof head - 1);
        test_tls_recv_exact(&c, head + n++, 1);
    }
    head[n] = 0;
    assert_non_null(strstr(head, "HTTP/1.1 101 "));
    assert_non_null(strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    send_masked(&c, 0x1, "over tls", 8);
    expect_echo(&c, 0x1, "over tls", 8);
    static uint8_t big[40000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31);
    send_masked(&c, 0x2, big, sizeof big);
    expect_echo(&c, 0x2, big, sizeof big);
    send_masked(&c, 0x8, "\x03\xe8", 2);
    expect_echo(&c, 0x8, "\x03\xe8", 2);
    test_tls_close(&c);
    SSL_CTX_free(cctx);
    test_server_stop(&t);
    ss_tls_context_free(tls);
}

static void test_wss_echo_under_threading(void **state)
{
    (void)state;
    wss_echo(&ss_threading);
}

static void test_wss_echo_under_coroutines(void **state)
{
    (void)state;
    wss_echo(&ss_coroutines);
}

static int group_setup(void **state)
{
    (void)state;
    return test_tls_make_files(&files) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    test_tls_remove_files(&files);
    return 0;
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wss_echo_under_threading),
        cmocka_unit_test(test_wss_echo_under_coroutines),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
