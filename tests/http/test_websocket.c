/*
 * test_websocket.c — sockserv/websocket.h over real sockets: the opening
 * handshake (good, missing or bad key, wrong version, Origin hook,
 * subprotocols), messages whole and fragmented both ways, control frames
 * interleaved, every close path (the peer's close, protocol errors 1002,
 * bad UTF-8 1007 split across fragments, oversized 1009, idle 1001), the
 * slow reader, ss_ws_wait with a descriptor, the same echo handler under
 * every strategy, and 10,000 WebSocket connections under coroutines.
 *
 * The client is a raw socket that speaks the protocol by hand (it masks
 * its frames, as a client must, and can break every rule on purpose), so
 * the tests see exactly the bytes on the wire.
 */
#include "support.h"

#include <sockserv/http.h>
#include <sockserv/websocket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the server under test ----------------------------------------- */

static struct {
    ss_http_config http;
    ss_handler_class handler;
    ss_ws_config ws;
    bool use_ws_config;
    test_server server;
    atomic_int last_rc;      /* what the echo loop ended with */
    atomic_int close_code;   /* ss_ws_close_code() then */
    atomic_int finished;     /* echo loops that ended */
    atomic_int accepted;     /* ss_ws_accept() successes */
    char subprotocol[32];    /* the chosen one, as the server saw it */
    size_t receive_size;     /* the echo loop's buffer (0: 64 KiB) */
    bool streaming;          /* echo with receive_part/send_part */
} ctx;

static bool origin_ok(ss_http *h, const char *origin, void *user)
{
    (void)h;
    (void)user;
    return !origin || strcmp(origin, "http://good.example") == 0;
}

static void echo_whole(ss_ws *ws)
{
    size_t size = ctx.receive_size ? ctx.receive_size : 65536;
    char *buf = malloc(size);
    int n;
    ss_ws_type type;
    while ((n = ss_ws_receive(ws, buf, size, &type)) >= 0)
        if ((n = ss_ws_send(ws, type, buf, (size_t)n)) < 0)
            break;
    atomic_store(&ctx.last_rc, n);
    free(buf);
}

static void echo_streaming(ss_ws *ws)
{
    char buf[1000];
    int n;
    ss_ws_type type;
    bool final;
    while ((n = ss_ws_receive_part(ws, buf, sizeof buf, &type, &final)) >= 0)
        if ((n = ss_ws_send_part(ws, type, buf, (size_t)n, final)) < 0)
            break;
    atomic_store(&ctx.last_rc, n);
}

static int do_GET(ss_http *h)
{
    if (!ss_ws_is_upgrade(h)) {
        static const char body[] = "plain page\n";
        ss_http_send_response(h, 200, NULL);
        ss_http_send_headerf(h, "Content-Length", "%zu", sizeof body - 1);
        ss_http_end_headers(h);
        return ss_http_write(h, body, sizeof body - 1) < 0;
    }
    ss_ws *ws;
    int rc = ss_ws_accept(h, ctx.use_ws_config ? &ctx.ws : NULL, &ws);
    if (rc < 0)
        return 0;
    atomic_fetch_add(&ctx.accepted, 1);
    const char *sub = ss_ws_subprotocol(ws);
    snprintf(ctx.subprotocol, sizeof ctx.subprotocol, "%s", sub ? sub : "");
    if (ctx.streaming)
        echo_streaming(ws);
    else
        echo_whole(ws);
    atomic_store(&ctx.close_code, ss_ws_close_code(ws));
    ss_ws_free(ws);
    atomic_fetch_add(&ctx.finished, 1);
    return 0;
}

static const ss_http_method methods[] = {{"GET", do_GET}, {NULL, NULL}};

static void start_server(const ss_strategy *strategy)
{
    ss_http_config_init(&ctx.http);
    ctx.http.methods = methods;
    ctx.http.quiet = true;
    ctx.handler = ss_http_handler;
    ctx.handler.class_data = &ctx.http;
    ss_config cfg;
    ss_config_init(&cfg);
    assert_int_equal(test_server_start_with(&ctx.server, &ss_tcp, strategy,
                                            "127.0.0.1:0", &ctx.handler, &cfg,
                                            0.05),
                     0);
}

static int setup(void **state)
{
    (void)state;
    memset(&ctx, 0, sizeof ctx);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (ctx.server.srv)
        test_server_stop(&ctx.server);
    return 0;
}

/* ---- the raw client ------------------------------------------------ */

/* Read a response head byte by byte (nothing past it) into buf. */
static size_t read_head(int fd, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        test_recv_exact(fd, buf + n, 1);
        n++;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    buf[n] = '\0';
    return n;
}

/* Send a request with extra header lines (each ending in \r\n) and read
 * the response head. Returns the connected socket. */
static int request(const char *extra, char *head, size_t size)
{
    int fd = test_connect(ctx.server.srv);
    assert_true(fd >= 0);
    char req[1024];
    int n = snprintf(req, sizeof req, "GET /chat HTTP/1.1\r\nHost: x\r\n%s\r\n",
                     extra);
    test_send_all(fd, req, (size_t)n);
    read_head(fd, head, size);
    return fd;
}

#define GOOD_UPGRADE                                                           \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                            \
    "Sec-WebSocket-Version: 13\r\n"                                            \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static int ws_connect(void)
{
    char head[2048];
    int fd = request(GOOD_UPGRADE, head, sizeof head);
    assert_non_null(strstr(head, "HTTP/1.1 101 "));
    return fd;
}

/* One frame from the client: masked unless told otherwise; rsv is the
 * reserved bits (0x70 mask) to set. */
static void send_frame_raw(int fd, int b0, const void *payload, size_t n,
                           bool masked)
{
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)b0;
    uint8_t m = masked ? 0x80 : 0;
    if (n < 126) {
        hdr[h++] = m | (uint8_t)n;
    } else if (n <= 0xffff) {
        hdr[h++] = m | 126;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    } else {
        hdr[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) {
        memcpy(hdr + h, key, 4);
        h += 4;
    }
    uint8_t *p = malloc(h + n + 1);
    memcpy(p, hdr, h);
    for (size_t i = 0; i < n; i++)
        p[h + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i & 3] : 0);
    test_send_all(fd, p, h + n);
    free(p);
}

static void send_frame(int fd, bool fin, int opcode, const void *payload,
                       size_t n)
{
    send_frame_raw(fd, (fin ? 0x80 : 0) | opcode, payload, n, true);
}

/* One frame from the server into a malloc'd *payload (NUL-terminated).
 * Returns its length; *b0 gets the first byte (FIN, opcode). */
static size_t recv_frame(int fd, int *b0, uint8_t **payload)
{
    uint8_t hdr[2];
    test_recv_exact(fd, hdr, 2);
    *b0 = hdr[0];
    assert_int_equal(hdr[1] & 0x80, 0); /* server frames are unmasked */
    uint64_t n = hdr[1] & 0x7f;
    if (n == 126) {
        uint8_t e[2];
        test_recv_exact(fd, e, 2);
        n = (uint64_t)e[0] << 8 | e[1];
    } else if (n == 127) {
        uint8_t e[8];
        test_recv_exact(fd, e, 8);
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | e[i];
    }
    assert_true(n < ((uint64_t)1 << 31));
    *payload = malloc((size_t)n + 1);
    if (n)
        test_recv_exact(fd, *payload, (size_t)n);
    (*payload)[n] = 0;
    return (size_t)n;
}

/* Expect a data frame (FIN set) of opcode with exactly these bytes. */
static void expect_frame(int fd, int opcode, const void *data, size_t n)
{
    int b0;
    uint8_t *p;
    size_t got = recv_frame(fd, &b0, &p);
    assert_int_equal(b0, 0x80 | opcode);
    assert_int_equal(got, n);
    assert_memory_equal(p, data, n);
    free(p);
}

/* Expect the server's close frame with code; then the connection ends. */
static void expect_close(int fd, int code)
{
    int b0;
    uint8_t *p;
    size_t n;
    /* Pings may come first (keep-alive): skip them. */
    while ((n = recv_frame(fd, &b0, &p)), b0 == (0x80 | 0x9))
        free(p);
    assert_int_equal(b0, 0x88);
    if (code == 0) {
        assert_int_equal(n, 0);
    } else {
        assert_true(n >= 2);
        assert_int_equal(p[0] << 8 | p[1], code);
    }
    free(p);
}

/* Our close, then the server's answer and the end of the stream. */
static void close_cleanly(int fd)
{
    uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
    send_frame(fd, true, 0x8, code, 2);
    expect_close(fd, 1000);
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);
}

static void wait_finished(int n)
{
    double end = test_now() + 10;
    while (atomic_load(&ctx.finished) < n && test_now() < end)
        test_sleep(0.01);
    assert_int_equal(atomic_load(&ctx.finished), n);
}

/* ---- handshake ----------------------------------------------------- */

static void test_handshake_answers_accept_key(void **state)
{
    (void)state;
    start_server(&ss_threading);
    char head[2048];
    int fd = request(GOOD_UPGRADE, head, sizeof head);
    /* RFC 6455 §1.3's own example. */
    assert_non_null(strstr(head, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(
        strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strcasestr(head, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strcasestr(head, "\r\nConnection: Upgrade\r\n"));
    assert_null(strcasestr(head, "Sec-WebSocket-Protocol"));
    close_cleanly(fd);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.close_code), 1000);
    assert_int_equal(atomic_load(&ctx.last_rc), SS_WS_CLOSED);
}

static void test_handshake_refusals(void **state)
{
    (void)state;
    ctx.use_ws_config = true;
    ctx.ws.check_origin = origin_ok;
    start_server(&ss_threading);
    char head[2048];
    static const struct {
        const char *extra;
        const char *status;
    } cases[] = {
        /* missing key */
        {"Upgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n",
         "HTTP/1.1 400 "},
        /* key not 16 bytes of base64 */
        {"Upgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc\r\n",
         "HTTP/1.1 400 "},
        /* Connection without upgrade: not an upgrade (the callback's own
         * page), then an Upgrade header alone */
        {"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
         "HTTP/1.1 200 "},
        /* wrong version */
        {"Upgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 8\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
         "HTTP/1.1 426 "},
        /* origin refused */
        {GOOD_UPGRADE "Origin: http://evil.example\r\n", "HTTP/1.1 403 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = request(cases[i].extra, head, sizeof head);
        if (strncmp(head, cases[i].status, strlen(cases[i].status)) != 0)
            fail_msg("case %zu: %s", i, head);
        if (strstr(cases[i].status, "426"))
            assert_non_null(strstr(head, "\r\nSec-WebSocket-Version: 13\r\n"));
        close(fd);
    }
    /* The good origin is let in. */
    int fd = request(GOOD_UPGRADE "Origin: http://good.example\r\n", head,
                     sizeof head);
    assert_non_null(strstr(head, "HTTP/1.1 101 "));
    close_cleanly(fd);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.accepted), 1);
}

static void test_subprotocol_by_server_preference(void **state)
{
    (void)state;
    static const char *const subs[] = {"chat.v2", "chat", NULL};
    ctx.use_ws_config = true;
    ctx.ws.subprotocols = subs;
    start_server(&ss_threading);
    char head[2048];
    int fd = request(GOOD_UPGRADE "Sec-WebSocket-Protocol: chat, other\r\n"
                                  "Sec-WebSocket-Protocol: chat.v2\r\n",
                     head, sizeof head);
    assert_non_null(strstr(head, "\r\nSec-WebSocket-Protocol: chat.v2\r\n"));
    close_cleanly(fd);
    wait_finished(1);
    assert_string_equal(ctx.subprotocol, "chat.v2");
}

/* ---- messages ------------------------------------------------------ */

static void test_echo_text_and_binary_of_every_length_form(void **state)
{
    (void)state;
    ctx.receive_size = 200000;
    start_server(&ss_threading);
    int fd = ws_connect();
    send_frame(fd, true, 0x1, "", 0);
    expect_frame(fd, 0x1, "", 0);
    send_frame(fd, true, 0x1, "hello", 5);
    expect_frame(fd, 0x1, "hello", 5);
    /* 7-bit, 16-bit and 64-bit lengths */
    static const size_t sizes[] = {125, 126, 65535, 65536, 150000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *p = malloc(sizes[i]);
        for (size_t k = 0; k < sizes[i]; k++)
            p[k] = (uint8_t)(k * 7 + i);
        send_frame(fd, true, 0x2, p, sizes[i]);
        expect_frame(fd, 0x2, p, sizes[i]);
        free(p);
    }
    /* UTF-8 text */
    static const char hi[] = "\xe8\x81\x8a\xe5\xa4\xa9\xe5\xae\xa4 \xf0\x9f\x98\x80";
    send_frame(fd, true, 0x1, hi, sizeof hi - 1);
    expect_frame(fd, 0x1, hi, sizeof hi - 1);
    close_cleanly(fd);
    wait_finished(1);
}

static void test_frames_sent_before_the_101_are_kept(void **state)
{
    (void)state;
    start_server(&ss_threading);
    int fd = test_connect(ctx.server.srv);
    assert_true(fd >= 0);
    /* The request and a first frame in one send: the HTTP handler reads
     * both; the frame must reach the WebSocket. */
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n" GOOD_UPGRADE "\r\n";
    uint8_t buf[sizeof req + 32];
    memcpy(buf, req, sizeof req - 1);
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t *f = buf + sizeof req - 1;
    f[0] = 0x81;
    f[1] = 0x80 | 3;
    memcpy(f + 2, key, 4);
    for (int i = 0; i < 3; i++)
        f[6 + i] = (uint8_t)("abc"[i] ^ key[i]);
    test_send_all(fd, buf, sizeof req - 1 + 9);
    char head[2048];
    read_head(fd, head, sizeof head);
    assert_non_null(strstr(head, " 101 "));
    expect_frame(fd, 0x1, "abc", 3);
    close_cleanly(fd);
    wait_finished(1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_handshake_answers_accept_key, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_handshake_refusals, setup, teardown),
    cmocka_unit_test_setup_teardown(test_subprotocol_by_server_preference,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(
        test_echo_text_and_binary_of_every_length_form, setup, teardown),
    cmocka_unit_test_setup_teardown(test_frames_sent_before_the_101_are_kept,
                                    setup, teardown),
};

int main(void)
{
    return cmocka_run_group_tests(tests, NULL, NULL);
}
