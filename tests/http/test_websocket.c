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
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
    int efd;                 /* /wait: the eventfd it waits on */
    atomic_int flood_rc;     /* /flood: how its sending ended */
    atomic_int wait_events;  /* /wait: SS_READY_FD seen */
    atomic_int request_readable; /* headers read after ss_ws_accept */
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

/* /flood: send until the peer, who does not read, gets dropped. */
static void flood(ss_ws *ws)
{
    static char big[65536];
    int rc;
    while ((rc = ss_ws_send(ws, SS_WS_BINARY, big, sizeof big)) >= 0) {
    }
    atomic_store(&ctx.flood_rc, rc);
    atomic_store(&ctx.last_rc, rc);
}

/* /wait: the chat room's pattern — the peer, or an eventfd saying that
 * something is to be sent ("tick"). */
static void wait_loop(ss_ws *ws)
{
    char buf[1024];
    ss_ws_type type;
    int rc;
    for (;;) {
        /* Without an eventfd: the peer only, with a 0.3 s timeout. */
        rc = ss_ws_wait(ws, ctx.efd, POLLIN, ctx.efd < 0 ? 0.3 : 0);
        if (rc == -ETIMEDOUT && ctx.efd < 0) {
            if ((rc = ss_ws_send_text(ws, "quiet")) < 0)
                break;
            continue;
        }
        if (rc < 0)
            break;
        if (rc & SS_READY_FD) {
            uint64_t v;
            if (read(ctx.efd, &v, sizeof v) == sizeof v) {
                atomic_fetch_add(&ctx.wait_events, 1);
                if ((rc = ss_ws_send_text(ws, "tick")) < 0)
                    break;
            }
        }
        if (rc & SS_READY_INPUT) {
            if ((rc = ss_ws_receive(ws, buf, sizeof buf, &type)) < 0)
                break;
            if ((rc = ss_ws_send(ws, type, buf, (size_t)rc)) < 0)
                break;
        }
    }
    atomic_store(&ctx.last_rc, rc);
}

/* /shutdown: on -ECANCELED, a last message and close 1001. */
static void until_shutdown(ss_ws *ws)
{
    char buf[256];
    int rc = ss_ws_receive(ws, buf, sizeof buf, NULL);
    atomic_store(&ctx.last_rc, rc);
    if (rc == -ECANCELED) {
        ss_ws_send_text(ws, "going");
        ss_ws_close(ws, SS_WS_GOING_AWAY, "server shutdown");
    }
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
    /* The request stays readable through the WebSocket (its buffers were
     * shrunk by ss_ws_accept). */
    ss_http *req = ss_ws_http(ws);
    const char *host = ss_http_header_value(req, "Host");
    const char *key = ss_http_header_value(req, "Sec-WebSocket-Key");
    if (host && strcmp(host, "x") == 0 && key && strlen(key) == 24 &&
        strcmp(ss_http_method_name(req), "GET") == 0 &&
        ss_http_parsed(req)->request_line_len > 4 &&
        memcmp(ss_http_parsed(req)->request_line, "GET ", 4) == 0)
        atomic_fetch_add(&ctx.request_readable, 1);
    const char *sub = ss_ws_subprotocol(ws);
    if (sub) /* one connection only in the test that offers them */
        snprintf(ctx.subprotocol, sizeof ctx.subprotocol, "%s", sub);
    const char *path = ss_http_path(h);
    if (strcmp(path, "/flood") == 0)
        flood(ws);
    else if (strcmp(path, "/wait") == 0)
        wait_loop(ws);
    else if (strcmp(path, "/bye") == 0)
        atomic_store(&ctx.last_rc, ss_ws_close(ws, 4000, "bye"));
    else if (strcmp(path, "/shutdown") == 0)
        until_shutdown(ws);
    else if (ctx.streaming)
        echo_streaming(ws);
    else
        echo_whole(ws);
    atomic_store(&ctx.close_code, ss_ws_close_code(ws));
    ss_ws_free(ws);
    atomic_fetch_add(&ctx.finished, 1);
    return 0;
}

static const ss_http_method methods[] = {{"GET", do_GET}, {NULL, NULL}};

static test_options strategy_opts;

static void start_server(const ss_strategy *strategy)
{
    ss_http_config_init(&ctx.http);
    ctx.http.methods = methods;
    ctx.http.quiet = true;
    ctx.handler = ss_http_handler;
    ctx.handler.class_data = &ctx.http;
    ss_config cfg;
    ss_config_init(&cfg);
    memset(&strategy_opts, 0, sizeof strategy_opts);
    strategy_opts.pool.pool_size = 4;
    strategy_opts.prefork.workers = 2;
    test_use_options(&cfg, strategy, &strategy_opts);
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
static int request_path(const char *path, const char *extra, char *head,
                        size_t size)
{
    int fd = test_connect(ctx.server.srv);
    assert_true(fd >= 0);
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n",
                     path, extra);
    test_send_all(fd, req, (size_t)n);
    read_head(fd, head, size);
    return fd;
}

static int request(const char *extra, char *head, size_t size)
{
    return request_path("/chat", extra, head, size);
}

#define GOOD_UPGRADE                                                           \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                            \
    "Sec-WebSocket-Version: 13\r\n"                                            \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static int ws_connect_path(const char *path)
{
    char head[2048];
    int fd = request_path(path, GOOD_UPGRADE, head, sizeof head);
    if (!strstr(head, "HTTP/1.1 101 "))
        fail_msg("no 101: %s", head);
    return fd;
}

static int ws_connect(void)
{
    return ws_connect_path("/chat");
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

/* The close, skipping text frames sent meanwhile. */
static void expect_close_skipping_text(int fd, int code)
{
    int b0;
    uint8_t *p;
    size_t n;
    while ((n = recv_frame(fd, &b0, &p)), b0 == 0x81)
        free(p);
    assert_int_equal(b0, 0x88);
    assert_true(n >= 2);
    assert_int_equal(p[0] << 8 | p[1], code);
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
    assert_int_equal(atomic_load(&ctx.request_readable), 1);
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


/* ---- fragmentation and control frames ------------------------------ */

static void test_fragments_reassembled_with_control_frames_between(void **state)
{
    (void)state;
    start_server(&ss_threading);
    int fd = ws_connect();
    send_frame(fd, false, 0x1, "hel", 3);
    send_frame(fd, true, 0x9, "p1", 2); /* a ping between fragments */
    send_frame(fd, false, 0x0, "", 0);  /* an empty middle fragment */
    send_frame(fd, true, 0xA, "x", 1);  /* an unsolicited pong: ignored */
    send_frame(fd, true, 0x0, "lo", 2);
    expect_frame(fd, 0xA, "p1", 2); /* the pong, with the ping's payload */
    expect_frame(fd, 0x1, "hello", 5);
    /* Binary in three fragments, a 126-byte-length one among them. */
    uint8_t big[300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    send_frame(fd, false, 0x2, big, 10);
    send_frame(fd, false, 0x0, big + 10, 200);
    send_frame(fd, true, 0x0, big + 210, 90);
    expect_frame(fd, 0x2, big, sizeof big);
    close_cleanly(fd);
    wait_finished(1);
}

static void test_streaming_receive_and_fragmented_send(void **state)
{
    (void)state;
    ctx.streaming = true; /* parts of at most 1000 bytes, echoed as sent */
    start_server(&ss_threading);
    int fd = ws_connect();
    char msg[2500];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)('a' + i % 26);
    send_frame(fd, true, 0x1, msg, sizeof msg);
    /* 1000 + 1000 + 500: text, continuation, continuation with FIN. */
    static const struct {
        int b0;
        size_t n;
    } expect[] = {{0x01, 1000}, {0x00, 1000}, {0x80, 500}};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        int b0;
        uint8_t *p;
        size_t n = recv_frame(fd, &b0, &p);
        assert_int_equal(b0, expect[i].b0);
        assert_int_equal(n, expect[i].n);
        assert_memory_equal(p, msg + off, n);
        off += n;
        free(p);
    }
    /* An empty message: one empty final part. */
    send_frame(fd, true, 0x2, "", 0);
    expect_frame(fd, 0x2, "", 0);
    close_cleanly(fd);
    wait_finished(1);
}

/* ---- protocol errors: 1002 ----------------------------------------- */

static void expect_failure(int fd, int code)
{
    expect_close(fd, code);
    /* The server closes the connection (after a short linger at most). */
    char c[64];
    ssize_t n;
    while ((n = recv(fd, c, sizeof c, 0)) > 0) {
    }
    assert_int_equal(n, 0);
    close(fd);
}

static void test_protocol_errors_close_1002(void **state)
{
    (void)state;
    start_server(&ss_threading);
    static const uint8_t ping126[126] = {0};
    int fd;
    int done = 0;

    fd = ws_connect(); /* unmasked */
    send_frame_raw(fd, 0x81, "hi", 2, false);
    expect_failure(fd, 1002);
    done++;
    for (int rsv = 0x10; rsv <= 0x40; rsv <<= 1) { /* reserved bits */
        fd = ws_connect();
        send_frame_raw(fd, 0x81 | rsv, "hi", 2, true);
        expect_failure(fd, 1002);
        done++;
    }
    static const int bad_ops[] = {0x3, 0x7, 0xB, 0xF};
    for (size_t i = 0; i < 4; i++) { /* reserved opcodes */
        fd = ws_connect();
        send_frame(fd, true, bad_ops[i], "", 0);
        expect_failure(fd, 1002);
        done++;
    }
    fd = ws_connect(); /* fragmented ping */
    send_frame(fd, false, 0x9, "a", 1);
    expect_failure(fd, 1002);
    done++;
    fd = ws_connect(); /* control frame over 125 bytes */
    send_frame(fd, true, 0x9, ping126, sizeof ping126);
    expect_failure(fd, 1002);
    done++;
    fd = ws_connect(); /* continuation with no message */
    send_frame(fd, true, 0x0, "a", 1);
    expect_failure(fd, 1002);
    done++;
    fd = ws_connect(); /* a new message inside a fragmented one */
    send_frame(fd, false, 0x1, "a", 1);
    send_frame(fd, true, 0x1, "b", 1);
    expect_failure(fd, 1002);
    done++;
    fd = ws_connect(); /* close frame of one byte */
    send_frame(fd, true, 0x8, "\x03", 1);
    expect_failure(fd, 1002);
    done++;
    static const int bad_codes[] = {0, 999, 1004, 1005, 1006, 1015, 2999, 5000};
    for (size_t i = 0; i < 8; i++) { /* invalid close codes */
        uint8_t p[2] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i]};
        fd = ws_connect();
        send_frame(fd, true, 0x8, p, 2);
        expect_failure(fd, 1002);
        done++;
    }
    fd = ws_connect(); /* 64-bit length with the top bit set */
    static const uint8_t huge[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1,
                                   1,    2,    3,    4};
    test_send_all(fd, huge, sizeof huge);
    expect_failure(fd, 1002);
    done++;
    wait_finished(done);
    assert_int_equal(atomic_load(&ctx.last_rc), SS_WS_CLOSED);
    assert_int_equal(atomic_load(&ctx.close_code), 1002);
}

/* ---- UTF-8: 1007 --------------------------------------------------- */

static void test_utf8_checked_across_fragments(void **state)
{
    (void)state;
    start_server(&ss_threading);
    /* A character split between fragments is fine. */
    int fd = ws_connect();
    send_frame(fd, false, 0x1, "ab\xe2\x82", 4);
    send_frame(fd, true, 0x0, "\xac", 1);
    expect_frame(fd, 0x1, "ab\xe2\x82\xac", 5);
    close_cleanly(fd);
    /* A bad continuation in the second fragment: failed as it arrives,
     * before the message ends (no FIN ever comes). */
    fd = ws_connect();
    send_frame(fd, false, 0x1, "ab\xe2\x82", 4);
    send_frame(fd, false, 0x0, "(", 1);
    expect_failure(fd, 1007);
    /* A message that ends inside a character. */
    fd = ws_connect();
    send_frame(fd, false, 0x1, "ab", 2);
    send_frame(fd, true, 0x0, "\xf0\x9f\x98", 3);
    expect_failure(fd, 1007);
    /* Overlong, surrogate, above U+10FFFF. */
    static const char *const bad[] = {"\xc0\xaf", "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80", "\xff"};
    for (size_t i = 0; i < 4; i++) {
        fd = ws_connect();
        send_frame(fd, true, 0x1, bad[i], strlen(bad[i]));
        expect_failure(fd, 1007);
    }
    /* A close reason that is not UTF-8. */
    fd = ws_connect();
    send_frame(fd, true, 0x8, "\x03\xe8\xff", 3);
    expect_failure(fd, 1007);
    wait_finished(8);
    assert_int_equal(atomic_load(&ctx.close_code), 1007);
}

/* ---- limits: 1009 -------------------------------------------------- */

static void test_oversized_messages_close_1009_before_reading(void **state)
{
    (void)state;
    ctx.use_ws_config = true;
    ctx.ws.max_message_size = 1000;
    start_server(&ss_threading);
    /* A header announcing 2^40 bytes: refused from the header alone (the
     * payload never comes). */
    int fd = ws_connect();
    static const uint8_t huge[] = {0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0,
                                   1,    2,    3, 4};
    test_send_all(fd, huge, sizeof huge);
    expect_failure(fd, 1009);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.last_rc), -EMSGSIZE);
    assert_int_equal(atomic_load(&ctx.close_code), 1009);
    /* Fragments that add up to more than the limit. */
    static char part[600];
    fd = ws_connect();
    send_frame(fd, false, 0x2, part, sizeof part);
    send_frame(fd, true, 0x0, part, sizeof part);
    expect_failure(fd, 1009);
    wait_finished(2);
    /* Exactly the limit passes. */
    fd = ws_connect();
    static char exact[1000];
    send_frame(fd, true, 0x2, exact, sizeof exact);
    expect_frame(fd, 0x2, exact, sizeof exact);
    close_cleanly(fd);
    wait_finished(3);
}

static void test_message_over_the_receive_buffer_closes_1009(void **state)
{
    (void)state;
    ctx.receive_size = 100; /* ss_ws_receive's buffer */
    start_server(&ss_threading);
    int fd = ws_connect();
    static char part[60];
    send_frame(fd, false, 0x2, part, sizeof part);
    send_frame(fd, true, 0x0, part, sizeof part);
    expect_failure(fd, 1009);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.last_rc), -EMSGSIZE);
}

/* ---- closing ------------------------------------------------------- */

static void test_close_handshakes(void **state)
{
    (void)state;
    start_server(&ss_threading);
    /* The peer closes with a code and a reason: echoed, reported. */
    int fd = ws_connect();
    send_frame(fd, true, 0x8, "\x0f\xa0see you", 9); /* 4000 */
    expect_close(fd, 4000);
    close(fd);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.close_code), 4000);
    /* A close without a code: answered without one; 1005 reported. */
    fd = ws_connect();
    send_frame(fd, true, 0x8, "", 0);
    expect_close(fd, 0);
    close(fd);
    wait_finished(2);
    assert_int_equal(atomic_load(&ctx.close_code), SS_WS_NO_STATUS);
    /* The server closes (ss_ws_close 4000 "bye"); we answer. */
    fd = ws_connect_path("/bye");
    int b0;
    uint8_t *p;
    size_t n = recv_frame(fd, &b0, &p);
    assert_int_equal(b0, 0x88);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "\x0f\xa0" "bye", 5);
    free(p);
    send_frame(fd, true, 0x8, "\x0f\xa0", 2);
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);
    wait_finished(3);
    assert_int_equal(atomic_load(&ctx.last_rc), 0);
    assert_int_equal(atomic_load(&ctx.close_code), 4000);
    /* The peer just disconnects: SS_WS_CLOSED, code 0. */
    fd = ws_connect();
    close(fd);
    wait_finished(4);
    assert_int_equal(atomic_load(&ctx.last_rc), SS_WS_CLOSED);
    assert_int_equal(atomic_load(&ctx.close_code), 0);
}

static void test_shutdown_cancels_receive(void **state)
{
    (void)state;
    start_server(&ss_threading);
    int fd = ws_connect_path("/shutdown");
    while (atomic_load(&ctx.accepted) < 1)
        test_sleep(0.01);
    ss_shutdown(ctx.server.srv);
    expect_frame(fd, 0x1, "going", 5);
    expect_close(fd, 1001);
    send_frame(fd, true, 0x8, "\x03\xe9", 2);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.last_rc), -ECANCELED);
    close(fd);
}

/* ---- idle and slow peers ------------------------------------------- */

static void test_keepalive_pings_and_idle_timeout(void **state)
{
    (void)state;
    ctx.use_ws_config = true;
    ctx.ws.ping_interval = 0.2;
    ctx.ws.idle_timeout = 0.7;
    start_server(&ss_threading);
    int fd = ws_connect();
    /* Answering pings keeps the connection alive past idle_timeout. */
    double begin = test_now();
    int pings = 0;
    while (test_now() - begin < 1.5) {
        int b0;
        uint8_t *p;
        recv_frame(fd, &b0, &p);
        assert_int_equal(b0, 0x89);
        free(p);
        send_frame(fd, true, 0xA, "", 0);
        pings++;
    }
    assert_true(pings >= 3);
    send_frame(fd, true, 0x1, "still here", 10);
    int b0;
    uint8_t *p;
    while (recv_frame(fd, &b0, &p), b0 == 0x89)
        free(p);
    assert_int_equal(b0, 0x81);
    assert_string_equal((char *)p, "still here");
    free(p);
    /* Then silence: closed 1001 after idle_timeout. */
    begin = test_now();
    expect_failure(fd, 1001);
    assert_true(test_now() - begin < 5);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.last_rc), -ETIMEDOUT);
    assert_int_equal(atomic_load(&ctx.close_code), 1001);
}

static void test_slow_reader_is_dropped(void **state)
{
    (void)state;
    ctx.use_ws_config = true;
    ctx.ws.send_timeout = 0.5;
    start_server(&ss_threading);
    int fd = ws_connect_path("/flood");
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* We read nothing: the server's sends block, then it gives up. */
    double begin = test_now();
    wait_finished(1);
    assert_true(test_now() - begin < 8);
    assert_int_equal(atomic_load(&ctx.flood_rc), SS_WS_CLOSED);
    close(fd);
}

/* ---- ss_ws_wait ---------------------------------------------------- */

static void test_wait_for_peer_or_eventfd(void **state)
{
    (void)state;
    ctx.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(ctx.efd >= 0);
    start_server(&ss_threading);
    int fd = ws_connect_path("/wait");
    /* A ping is answered inside the wait. */
    send_frame(fd, true, 0x9, "w", 1);
    expect_frame(fd, 0xA, "w", 1);
    /* The eventfd wakes it. */
    uint64_t one = 1;
    assert_int_equal(write(ctx.efd, &one, sizeof one), sizeof one);
    expect_frame(fd, 0x1, "tick", 4);
    /* A message, split in fragments that arrive apart. */
    send_frame(fd, false, 0x1, "ec", 2);
    test_sleep(0.05);
    send_frame(fd, true, 0x0, "ho", 2);
    expect_frame(fd, 0x1, "echo", 4);
    assert_int_equal(write(ctx.efd, &one, sizeof one), sizeof one);
    expect_frame(fd, 0x1, "tick", 4);
    close_cleanly(fd);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.wait_events), 2);
    assert_int_equal(atomic_load(&ctx.last_rc), SS_WS_CLOSED);
    close(ctx.efd);
}

static void test_wait_for_peer_only_with_timeout(void **state)
{
    (void)state;
    ctx.efd = -1;
    start_server(&ss_coroutines);
    int fd = ws_connect_path("/wait");
    double begin = test_now();
    expect_frame(fd, 0x1, "quiet", 5); /* the wait timed out */
    assert_true(test_now() - begin >= 0.25);
    /* A header that arrives a byte at a time, a ping inside the wait. */
    uint8_t ping[] = {0x89, 0x80, 0, 0, 0, 0};
    for (size_t i = 0; i < sizeof ping; i++) {
        test_send_all(fd, ping + i, 1);
        test_sleep(0.01);
    }
    int b0;
    uint8_t *p;
    while (recv_frame(fd, &b0, &p), b0 == 0x81) /* "quiet" may come */
        free(p);
    assert_int_equal(b0, 0x8A);
    free(p);
    send_frame(fd, true, 0x2, "xyz", 3);
    while (recv_frame(fd, &b0, &p), b0 == 0x81)
        free(p);
    assert_int_equal(b0, 0x82);
    assert_string_equal((char *)p, "xyz");
    free(p);
    /* A bad frame found by the wait itself. */
    send_frame_raw(fd, 0xC1, "x", 1, true);
    expect_close_skipping_text(fd, 1002);
    close(fd);
    wait_finished(1);
    assert_int_equal(atomic_load(&ctx.last_rc), SS_WS_CLOSED);
}

/* ---- every strategy ------------------------------------------------ */

static void echo_under(const ss_strategy *strategy)
{
    ctx.receive_size = 200000;
    start_server(strategy);
    for (int c = 0; c < 3; c++) {
        int fd = ws_connect();
        for (int i = 0; i < 20; i++) {
            char msg[64];
            int n = snprintf(msg, sizeof msg, "%s %d %d", strategy->name, c, i);
            send_frame(fd, true, 0x1, msg, (size_t)n);
            expect_frame(fd, 0x1, msg, (size_t)n);
        }
        static uint8_t big[100000];
        send_frame(fd, true, 0x2, big, sizeof big);
        expect_frame(fd, 0x2, big, sizeof big);
        close_cleanly(fd);
    }
}

static void test_echo_under_threading(void **state)
{
    (void)state;
    echo_under(&ss_threading);
}

static void test_echo_under_thread_pool(void **state)
{
    (void)state;
    echo_under(&ss_thread_pool);
}

static void test_echo_under_forking(void **state)
{
    (void)state;
    echo_under(&ss_forking);
}

static void test_echo_under_prefork(void **state)
{
    (void)state;
    echo_under(&ss_prefork);
}

static void test_echo_under_coroutines(void **state)
{
    (void)state;
    echo_under(&ss_coroutines);
}

static void test_echo_under_sync(void **state)
{
    (void)state;
    echo_under(&ss_sync);
}

/* ---- 10,000 WebSocket connections under coroutines ------------------ */

#define MANY 10000

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

static bool full_io(int fd, void *buf, size_t n, bool sending)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* The forked clients: plain system calls only. Exit status: 0, or the
 * step that failed. */
static _Noreturn void many_clients(const struct sockaddr *addr, socklen_t len,
                                   int report_fd, int go_fd)
{
    static int fds[MANY];
    struct timeval tv = {30, 0};
    static const char req[] = "GET /many HTTP/1.1\r\nHost: x\r\n" GOOD_UPGRADE
                              "\r\n";
    for (int i = 0; i < MANY; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || connect(fds[i], addr, len) < 0)
            _exit(10);
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (!full_io(fds[i], (void *)req, sizeof req - 1, true))
            _exit(11);
    }
    for (int i = 0; i < MANY; i++) {
        /* The 101's head is all the server sends before our message. */
        char head[512];
        size_t n = 0;
        while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
            ssize_t r = recv(fds[i], head + n, sizeof head - 1 - n, 0);
            if (r <= 0)
                _exit(12);
            n += (size_t)r;
        }
        head[n] = 0;
        if (!strstr(head, " 101 "))
            _exit(13);
    }
    char c = 'c';
    if (write(report_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1)
        _exit(14);
    for (int i = 0; i < MANY; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "m%05d", i);
        uint8_t f[6 + 16] = {0x81, (uint8_t)(0x80 | n), 0, 0, 0, 0};
        memcpy(f + 6, msg, (size_t)n); /* a zero mask: the bytes as they are */
        if (!full_io(fds[i], f, 6 + (size_t)n, true))
            _exit(15);
    }
    for (int i = 0; i < MANY; i++) {
        char msg[16], got[2 + 16];
        int n = snprintf(msg, sizeof msg, "m%05d", i);
        if (!full_io(fds[i], got, 2 + (size_t)n, false) ||
            (uint8_t)got[0] != 0x81 || got[1] != n ||
            memcmp(got + 2, msg, (size_t)n) != 0)
            _exit(16);
    }
    for (int i = 0; i < MANY; i++) {
        static const uint8_t close_frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03,
                                              0xe8};
        if (!full_io(fds[i], (void *)close_frame, sizeof close_frame, true))
            _exit(17);
    }
    for (int i = 0; i < MANY; i++) {
        uint8_t answer[4];
        if (!full_io(fds[i], answer, 4, false) || answer[0] != 0x88)
            _exit(18);
        close(fds[i]);
    }
    _exit(0);
}

static void test_ten_thousand_connections_under_coroutines(void **state)
{
    (void)state;
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < MANY + 100) {
        print_message("skipped: RLIMIT_NOFILE hard limit %llu is below %d\n",
                      (unsigned long long)saved.rlim_max, MANY + 100);
        skip();
    }
    struct rlimit raised = {saved.rlim_max, saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &raised), 0);
    ctx.receive_size = 64;
    long rss_before = rss_kib();
    start_server(&ss_coroutines);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    assert_int_equal(
        ss_server_address(ctx.server.srv, (struct sockaddr *)&addr, &len), 0);
    int report[2], go[2];
    assert_int_equal(pipe2(report, O_CLOEXEC), 0);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    double begin = test_now();
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        many_clients((struct sockaddr *)&addr, len, report[1], go[0]);
    close(report[1]);
    close(go[0]);
    struct pollfd pfd = {.fd = report[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 90000), 1);
    char c;
    bool connected = read(report[0], &c, 1) == 1;
    double open_after = test_now() - begin;
    long rss_open = rss_kib();
    if (connected)
        assert_int_equal(write(go[1], "g", 1), 1);
    close(go[1]);
    close(report[0]);
    int status = 0;
    double end = test_now() + 90;
    pid_t w;
    while ((w = waitpid(child, &status, WNOHANG)) == 0 && test_now() < end)
        test_sleep(0.05);
    if (w == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        fail_msg("the clients did not finish in time");
    }
    assert_true(connected);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("clients failed at step %d", WEXITSTATUS(status));
    wait_finished(MANY);
    assert_int_equal(atomic_load(&ctx.accepted), MANY);
    print_message("%d WebSockets: open after %.2f s, all done after %.2f s; "
                  "server RSS %ld KiB before, %ld KiB open (%.1f KiB "
                  "each)\n",
                  MANY, open_after, test_now() - begin, rss_before, rss_open,
                  (double)(rss_open - rss_before) / MANY);
    test_server_stop(&ctx.server);
    ctx.server.srv = NULL;
    setrlimit(RLIMIT_NOFILE, &saved);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

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
    T(test_fragments_reassembled_with_control_frames_between),
    T(test_streaming_receive_and_fragmented_send),
    T(test_protocol_errors_close_1002),
    T(test_utf8_checked_across_fragments),
    T(test_oversized_messages_close_1009_before_reading),
    T(test_message_over_the_receive_buffer_closes_1009),
    T(test_close_handshakes),
    T(test_shutdown_cancels_receive),
    T(test_keepalive_pings_and_idle_timeout),
    T(test_slow_reader_is_dropped),
    T(test_wait_for_peer_or_eventfd),
    T(test_wait_for_peer_only_with_timeout),
    T(test_echo_under_sync),
    T(test_echo_under_threading),
    T(test_echo_under_thread_pool),
    T(test_echo_under_forking),
    T(test_echo_under_prefork),
    T(test_echo_under_coroutines),
    T(test_ten_thousand_connections_under_coroutines),
};

int main(void)
{
    return cmocka_run_group_tests(tests, NULL, NULL);
}
