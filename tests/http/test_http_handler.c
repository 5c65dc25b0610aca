/*
 * test_http_handler.c — ss_http_handler (Python's BaseHTTPRequestHandler)
 * over real sockets: request heads, bodies (Content-Length, chunked,
 * 100-continue, draining), keep-alive and pipelining, the error answers
 * (400, 408, 413, 414, 431, 501, 505), deadlines against slow and idle
 * clients, the response helpers' safety (header injection, escaped error
 * pages) and the access log.
 *
 * Every behaviour runs twice: over TCP under ss_threading and over a Unix
 * stream socket under ss_sync, so neither the server kind nor the strategy
 * is assumed. The client is a plain socket that reads responses itself
 * (status line, headers, Content-Length body), so the tests see exactly the
 * bytes on the wire.
 */
#include "send_probe.h"
#include "support.h"

#include <sockserv/http.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Body I/O returns int, as the callbacks do (sockserv.h: SS_IO_MAX). */
#define RETURNS_INT(call) _Generic((call), int : 1, default : 0)
_Static_assert(RETURNS_INT(ss_http_read_body(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_http_write(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_http_sendfile(NULL, 0, NULL, 0)),
               "HTTP body I/O returns int, as method callbacks do");

/* ---- the server under test ----------------------------------------- */

static struct {
    ss_http_config http;
    ss_handler_class handler;
    ss_server_class kind;
    test_log log;
    atomic_int errors; /* handle_error calls */
    atomic_int last_error;
    atomic_int inject_rc; /* -EINVAL: every bad field was refused */
    bool small_sndbuf;    /* server sockets get a 16 KiB send buffer */
    bool no_config;       /* the handler class has no ss_http_config */
    bool send_probe;      /* the server runs with send_probe.h's probe */
    ss_strategy probed;   /* its strategy then */
    const char *big_file; /* GET /bigfile sends it */
    atomic_int bigfile_done;
    atomic_long bigfile_rc; /* ss_http_sendfile's last return */
    test_server server;
} ctx;

/* ss_config.user of every server here, told apart from
 * ss_http_config.user (&ctx.log). */
static int server_user;

/* GET /big's body: large enough that sending it to a paced reader takes
 * well over io_timeout. */
#define BIG_BODY_SIZE ((size_t)1536 * 1024)
static char big_body[BIG_BODY_SIZE];

static int answer(ss_http *h, int status, const char *text)
{
    size_t n = strlen(text);
    if (ss_http_send_response(h, status, NULL) < 0 ||
        ss_http_send_header(h, "Content-Type", "text/plain") < 0 ||
        ss_http_send_headerf(h, "Content-Length", "%zu", n) < 0 ||
        ss_http_end_headers(h) < 0)
        return -1;
    return ss_http_write(h, text, n) < 0 ? -1 : 0;
}

/* GET and HEAD share it, as in Python's SimpleHTTPRequestHandler. */
/* Field lines a callback must not be able to send: a name that is not a
 * token, a value or reason with CR or LF in it. -EINVAL when every one
 * was refused, else what the first one accepted returned. */
static int send_bad_fields(ss_http *h)
{
    static const char *const names[] = {"",      "Bad Name", "X:Y",
                                        "X\x7f", "\xc3\x84", "X\r\nY"};
    static const char *const values[] = {"a\r\nb", "a\nb", "a\rb", "\n"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        int rc = ss_http_send_header(h, names[i], "v");
        if (rc != -EINVAL)
            return rc;
    }
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        int rc = ss_http_send_header(h, "X", values[i]);
        if (rc != -EINVAL)
            return rc;
    }
    /* Refused without touching the head begun before. */
    int rc = ss_http_send_response(h, 200, "OK\r\nX-Forged: 1");
    return rc == -EINVAL ? -EINVAL : rc;
}

static int do_GET(ss_http *h)
{
    const char *target = ss_http_target(h);
    char text[512];
    if (strcmp(target, "/fail") == 0)
        return -1234;
    if (strncmp(target, "/err", 4) == 0)
        return ss_http_send_error(h, 404, target) < 0 ? -1 : 0;
    if (strcmp(target, "/noclen") == 0) {
        ss_http_send_response(h, 200, NULL);
        ss_http_end_headers(h);
        return ss_http_write(h, "until close", 11) < 0 ? -1 : 0;
    }
    if (ss_http_match(h, "/items/{id}")) {
        /* The request helpers: decoded path, capture, query. */
        const char *q = ss_http_query(h, "q");
        snprintf(text, sizeof text, "path=%s id=%s q=%s\n", ss_http_path(h),
                 ss_http_capture(h, "id"), q ? q : "(none)");
        return answer(h, 200, text);
    }
    if (strncmp(target, "/items/", 7) == 0 && !ss_http_path(h))
        return ss_http_send_error(h, 400, "undecodable path") < 0 ? -1 : 0;
    if (strcmp(target, "/users") == 0) {
        /* Which context is which: the HTTP config's and the server's. */
        snprintf(text, sizeof text, "config:%s server:%s\n",
                 ss_http_config_user(h) == &ctx.log ? "yes" : "no",
                 ss_http_server_user(h) == &server_user ? "yes" : "no");
        return answer(h, 200, text);
    }
    if (strcmp(target, "/count") == 0) {
        /* The connection's own state: requests on it, one after another. */
        int *count = ss_http_state(h);
        snprintf(text, sizeof text, "%d\n", ++*count);
        return answer(h, 200, text);
    }
    if (strcmp(target, "/close") == 0)
        ss_http_close_connection(h);
    if (strcmp(target, "/big") == 0) {
        /* One call: io_timeout must limit waits, not the whole write. */
        ss_http_send_response(h, 200, NULL);
        ss_http_send_headerf(h, "Content-Length", "%zu", sizeof big_body);
        ss_http_end_headers(h);
        return ss_http_write(h, big_body, sizeof big_body) < 0 ? -1 : 0;
    }
    if (strcmp(target, "/bigfile") == 0) {
        /* As a file server does: ss_http_sendfile until the file is sent
         * or a call fails. */
        int fd = open(ctx.big_file, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
            return -1;
        ss_http_send_response(h, 200, NULL);
        ss_http_send_headerf(h, "Content-Length", "%lld",
                             (long long)st.st_size);
        ss_http_end_headers(h);
        off_t offset = 0;
        ssize_t n = 1;
        while (n > 0 && offset < st.st_size)
            n = ss_http_sendfile(h, fd, &offset, (size_t)(st.st_size - offset));
        close(fd);
        atomic_store(&ctx.bigfile_rc, (long)n);
        atomic_store(&ctx.bigfile_done, 1);
        return n < 0 ? (int)n : 0;
    }
    if (strcmp(target, "/raw") == 0) {
        /* The callback answers on the wire itself. */
        static const char raw[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                  "\r\nraw";
        return ss_write_all(ss_http_request_of(h), raw, sizeof raw - 1) < 0 ? -1
                                                                            : 0;
    }
    if (strcmp(target, "/silent") == 0)
        return 0; /* no response at all */
    if (strcmp(target, "/whoami") == 0) {
        /* self.client_address and self.server, without the raw wire. */
        char who[128];
        socklen_t len = 0;
        if (ss_http_client_address(h, &len) == NULL || len == 0 ||
            ss_http_server(h) != ctx.server.srv ||
            ss_http_client_address_string(h, who, sizeof who) < 0)
            return -1;
        return answer(h, 200, "known\n");
    }
    if (strcmp(target, "/short") == 0) {
        /* Promises 10 bytes, sends 3. */
        ss_http_send_response(h, 200, NULL);
        ss_http_send_header(h, "Content-Length", "10");
        ss_http_end_headers(h);
        return ss_http_write(h, "abc", 3) < 0 ? -1 : 0;
    }
    if (strcmp(target, "/keepalive-noclen") == 0) {
        /* Asks for keep-alive, but without a length the server closes. */
        ss_http_send_response(h, 200, NULL);
        ss_http_send_header(h, "Connection", "keep-alive");
        ss_http_end_headers(h);
        return ss_http_write(h, "until close", 11) < 0 ? -1 : 0;
    }
    if (strcmp(target, "/reset") == 0) {
        ss_http_send_response(h, 205, NULL);
        ss_http_end_headers(h);
        /* A 205 has no body: this must not reach the wire. */
        return ss_http_write(h, "oops", 4) < 0 ? -1 : 0;
    }
    if (strcmp(target, "/inject") == 0) {
        ss_http_send_response(h, 200, NULL);
        atomic_store(&ctx.inject_rc, send_bad_fields(h));
        if (ss_http_send_header(h, "X-Ok", "fine") < 0 ||
            ss_http_send_header(h, "Content-Length", "3") < 0 ||
            ss_http_end_headers(h) < 0)
            return -1;
        return ss_http_write(h, "ok\n", 3) < 0 ? -1 : 0;
    }
    const char *agent = ss_http_header_value(h, "user-agent");
    snprintf(text, sizeof text, "hello %s%s%s\n", target, agent ? " " : "",
             agent ? agent : "");
    return answer(h, 200, text);
}

static int do_POST(ss_http *h)
{
    if (strcmp(ss_http_target(h), "/ignore") == 0)
        return answer(h, 200, "ignored\n");
    if (ss_http_match(h, "/form")) {
        int rc = ss_http_read_form(h, 64);
        if (rc < 0)
            return rc; /* 413 or 415, answered by the handler */
        const char *name = ss_http_form(h, "name");
        char text[128];
        snprintf(text, sizeof text, "%d name=%s\n", rc, name ? name : "-");
        return answer(h, 200, text);
    }
    char body[8192];
    size_t have = 0;
    for (;;) {
        ssize_t n = ss_http_read_body(h, body + have, sizeof body - have);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        have += (size_t)n;
    }
    body[have] = '\0';
    return answer(h, 200, body);
}

static const ss_http_method methods[] = {
    {"GET", do_GET}, {"HEAD", do_GET}, {"POST", do_POST}, {NULL, NULL}};

static void count_error(ss_server *srv, ss_request *req, int error)
{
    (void)srv;
    (void)req;
    atomic_fetch_add(&ctx.errors, 1);
    atomic_store(&ctx.last_error, error);
}

typedef struct variant {
    const ss_server_class *kind;
    const ss_strategy *strategy;
} variant;

static const variant over_tcp = {&ss_tcp, &ss_threading};
static const variant over_unix = {&ss_unix_stream, &ss_sync};

/* Defaults, quiet-free logging into ctx.log; tests adjust ctx.http and
 * then call start(). */
static void prepare(void)
{
    memset(&ctx, 0, sizeof ctx);
    ss_http_config_init(&ctx.http);
    ctx.http.methods = methods;
    ctx.http.log_request = test_log_hook;
    test_log_init(&ctx.log);
    ctx.http.user = &ctx.log;
}

/* A small server send buffer, so that what a slow client has not read
 * stays with the server instead of piling up in the kernel. */
static int small_sndbuf_setup(ss_request *req)
{
    int rc = ss_stream_handler.setup(req);
    int size = 16384;
    setsockopt(ss_request_fileno(req), SOL_SOCKET, SO_SNDBUF, &size,
               sizeof size);
    return rc;
}

static void start(const variant *v)
{
    ctx.handler = ss_http_handler;
    ctx.handler.class_data = ctx.no_config ? NULL : &ctx.http;
    ctx.handler.state_size = sizeof(int); /* GET /count */
    if (ctx.small_sndbuf)
        ctx.handler.setup = small_sndbuf_setup;
    ctx.kind = *v->kind;
    ctx.kind.handle_error = count_error;
    char address[160];
    if (v->kind == &ss_tcp)
        snprintf(address, sizeof address, "127.0.0.1:0");
    else
        test_unix_address(address, sizeof address, "http");
    ss_config cfg = {.user = &server_user};
    if (!ctx.send_probe) {
        assert_int_equal(test_server_start_with(&ctx.server, &ctx.kind,
                                                v->strategy, address,
                                                &ctx.handler, &cfg, 0.05),
                         0);
        return;
    }
    test_send_probe_reset();
    test_send_probe_strategy(&ctx.probed, v->strategy);
    assert_int_equal(ss_server_new(&ctx.server.srv, &ctx.kind, &ctx.probed,
                                   address, &ctx.handler, &cfg),
                     0);
    assert_int_equal(
        ss_server_set_transport(ctx.server.srv, test_send_probe_transport()),
        0);
    assert_int_equal(test_server_run(&ctx.server, 0.05), 0);
}

static void stop(void)
{
    assert_true(test_server_stop_within(&ctx.server, 10));
}

/* ---- a client that reads responses off the wire --------------------- */

typedef struct client {
    int fd;
    char buf[1 << 17];
    size_t len;
} client;

typedef struct response {
    int status;
    char head[4096];
    char body[8192];
    size_t body_len;
} response;

static client *client_open(void)
{
    client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = test_connect(ctx.server.srv);
    assert_true(c->fd >= 0);
    return c;
}

static void client_close(client *c)
{
    close(c->fd);
    free(c);
}

static void client_send(client *c, const char *text)
{
    test_send_all(c->fd, text, strlen(text));
}

/* Receive more; false at EOF. */
static bool client_fill(client *c)
{
    assert_true(c->len < sizeof c->buf);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n < 0 && (errno == ECONNRESET))
        return false;
    if (n < 0)
        fail_msg("recv: %s", strerror(errno));
    c->len += (size_t)n;
    return n > 0;
}

static void client_consume(client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* One response; HEAD responses carry no body. Fails the test on EOF
 * before a whole head. */
static void read_response(client *c, response *r, bool head_request)
{
    memset(r, 0, sizeof *r);
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!client_fill(c))
            fail_msg("connection closed before a response head (%zu bytes)",
                     c->len);
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof r->head);
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    client_consume(c, head_len);
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    if (head_request || r->status < 200 || r->status == 204 || r->status == 304)
        return;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl) {
        size_t n = strtoul(cl + 17, NULL, 10);
        assert_true(n < sizeof r->body);
        while (c->len < n)
            assert_true(client_fill(c));
        memcpy(r->body, c->buf, n);
        r->body_len = n;
        client_consume(c, n);
    } else {
        while (client_fill(c))
            ;
        assert_true(c->len < sizeof r->body);
        memcpy(r->body, c->buf, c->len);
        r->body_len = c->len;
        c->len = 0;
    }
    r->body[r->body_len] = '\0';
}

/* The server closed the connection (and sent nothing more). */
static void expect_closed(client *c)
{
    assert_false(client_fill(c));
    assert_int_equal(c->len, 0);
}

static void expect_response(client *c, int status, const char *body)
{
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, status);
    if (body)
        assert_string_equal(r.body, body);
}

#define FOR_BOTH(name)                                                         \
    static void test_##name##_over_tcp(void **state)                           \
    {                                                                          \
        (void)state;                                                           \
        name(&over_tcp);                                                       \
    }                                                                          \
    static void test_##name##_over_unix(void **state)                          \
    {                                                                          \
        (void)state;                                                           \
        name(&over_unix);                                                      \
    }

/* ---- the tests ------------------------------------------------------ */

static void config_user_and_server_user_are_told_apart(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /users HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "config:yes server:yes\n");
    client_close(c);
    stop();
}
FOR_BOTH(config_user_and_server_user_are_told_apart)

static void path_query_and_captures_are_decoded(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /items/a%20b?x=1&q=x+y%21 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "path=/items/a b id=a b q=x y!\n");
    client_send(c, "GET /items/7 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "path=/items/7 id=7 q=(none)\n");
    client_send(c, "GET http://x/items/8?q= HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "path=/items/8 id=8 q=\n");
    client_send(c, "GET /items/%00 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 400, NULL); /* NUL refused */
    client_close(c);
    stop();
}
FOR_BOTH(path_query_and_captures_are_decoded)

static void post_form(client *c, const char *type, const char *body)
{
    char request[512];
    snprintf(request, sizeof request,
             "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             type, strlen(body), body);
    client_send(c, request);
}

static void form_bodies_are_read_and_bounded(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    post_form(c, "application/x-www-form-urlencoded", "a=1&name=J%C3%BCrgen+M");
    expect_response(c, 200, "22 name=J\xc3\xbcrgen M\n");
    post_form(c, "application/x-www-form-urlencoded; charset=utf-8", "x=y");
    expect_response(c, 200, "3 name=-\n"); /* kept alive all along */
    /* Chunked works too. */
    client_send(c, "POST /form HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"
                   "5\r\nname=\r\n3\r\nbob\r\n0\r\n\r\n");
    expect_response(c, 200, "8 name=bob\n");
    post_form(c, "text/plain", "name=x");
    expect_response(c, 415, NULL);
    expect_closed(c);
    client_close(c);

    c = client_open(); /* past max_size (64): 413, unread */
    post_form(
        c, "application/x-www-form-urlencoded",
        "name="
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    expect_response(c, 413, NULL);
    expect_closed(c);
    client_close(c);

    c = client_open(); /* the same for a chunked body that grows past it */
    client_send(
        c,
        "POST /form HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "40\r\n"
        "name=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
        "1\r\ny\r\n0\r\n\r\n");
    expect_response(c, 413, NULL);
    expect_closed(c);
    client_close(c);
    assert_int_equal(atomic_load(&ctx.errors), 0); /* the client's fault */
    stop();
}
FOR_BOTH(form_bodies_are_read_and_bounded)

static void state_is_the_connections_own(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /count HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "1\n");
    client_send(c, "GET /count HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "2\n"); /* kept across keep-alive requests */
    client_close(c);
    c = client_open();
    client_send(c, "GET /count HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "1\n"); /* a new connection starts zeroed */
    client_close(c);
    stop();
}
FOR_BOTH(state_is_the_connections_own)

static void get_returns_body_with_date_and_server(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /a%20b?x=1 HTTP/1.1\r\nHost: x\r\n"
                   "User-Agent: t/1\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello /a%20b?x=1 t/1\n");
    assert_non_null(strstr(r.head, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r.head, "\r\nServer: sockserv/"));
    assert_non_null(strstr(r.head, "\r\nDate: "));
    assert_non_null(strstr(r.head, " GMT\r\n"));
    client_close(c);
    stop();
}
FOR_BOTH(get_returns_body_with_date_and_server)

static void head_sends_headers_without_body(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y "
                   "HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, true);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Length: 9\r\n"));
    /* The next bytes are the GET's response, not a HEAD body. */
    expect_response(c, 200, "hello /y\n");
    client_close(c);
    stop();
}
FOR_BOTH(head_sends_headers_without_body)

static void keep_alive_serves_two_requests_on_one_connection(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /1\n");
    client_send(c, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /2\n");
    client_close(c);
    stop();
}
FOR_BOTH(keep_alive_serves_two_requests_on_one_connection)

/* Asking who the client is must not hand over the wire (which closes). */
static void client_address_and_server_keep_the_connection(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "known\n");
    client_send(c, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /2\n");
    client_close(c);
    stop();
}
FOR_BOTH(client_address_and_server_keep_the_connection)

static void pipelined_requests_are_answered_in_order(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(
        c,
        "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect_response(c, 200, "hello /1\n");
    expect_response(c, 200, "hello /2\n");
    expect_response(c, 200, "hello /3\n");
    expect_closed(c);
    client_close(c);
    stop();
}
FOR_BOTH(pipelined_requests_are_answered_in_order)

static void http10_closes_unless_keep_alive_asked(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_string_equal(r.body, "hello /a\n");
    assert_non_null(strstr(r.head, "Connection: keep-alive\r\n"));
    client_send(c, "GET /b HTTP/1.0\r\n\r\n");
    read_response(c, &r, false);
    assert_string_equal(r.body, "hello /b\n");
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    expect_closed(c);
    client_close(c);
    stop();
}
FOR_BOTH(http10_closes_unless_keep_alive_asked)

static void connection_close_is_honoured(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect_response(c, 200, "hello /a\n");
    expect_closed(c);
    client_close(c);
    /* The callback's close_connection does the same. */
    c = client_open();
    client_send(c, "GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    expect_closed(c);
    client_close(c);
    stop();
}
FOR_BOTH(connection_close_is_honoured)

/* Sends raw, expects status and a closed connection. */
static void expect_refusal(const char *request, int status)
{
    client *c = client_open();
    client_send(c, request);
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, status);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    assert_non_null(strstr(r.head, "Content-Type: text/html;charset=utf-8"));
    expect_closed(c);
    client_close(c);
}

static void bad_requests_get_their_status_and_close(const variant *v)
{
    prepare();
    ctx.http.limits.max_request_line = 1024;
    ctx.http.limits.max_headers = 5;
    start(v);
    expect_refusal("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501);
    expect_refusal("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    expect_refusal("GET / HTTP/2.0\r\n\r\n", 505);
    char line[2100];
    memset(line, 'a', sizeof line);
    memcpy(line, "GET /", 5);
    line[sizeof line - 1] = '\0';
    expect_refusal(line, 414); /* refused before the line even ends */
    expect_refusal(
        "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"
        "E: 5\r\nF: 6\r\n\r\n",
        431);
    /* The server is still fine. */
    client *c = client_open();
    client_send(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /ok\n");
    client_close(c);
    assert_int_equal(atomic_load(&ctx.errors), 0);
    stop();
}
FOR_BOTH(bad_requests_get_their_status_and_close)

/* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host and for any
 * request with more than one Host line — two hosts are how a request can
 * mean one site to a proxy in front and another here. HTTP/1.0 needs
 * none. */
static void host_is_required_once_in_http11(const variant *v)
{
    prepare();
    start(v);
    expect_refusal("GET /none HTTP/1.1\r\n\r\n", 400);
    expect_refusal("GET /two HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_refusal("GET /same HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
    expect_refusal("GET /two HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    /* Also with an absolute target, whose authority wins over Host. */
    expect_refusal("GET http://a/x HTTP/1.1\r\n\r\n", 400);
    /* The refusal says why. */
    client *c = client_open();
    client_send(c, "GET /none HTTP/1.1\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "Host"));
    client_close(c);

    c = client_open();
    client_send(c, "GET /ten HTTP/1.0\r\n\r\n"); /* none needed */
    expect_response(c, 200, "hello /ten\n");
    client_close(c);
    c = client_open();
    client_send(c, "GET /one HTTP/1.1\r\nhOsT: a\r\n\r\n"
                   "GET /empty HTTP/1.1\r\nHost:\r\n\r\n");
    expect_response(c, 200, "hello /one\n");
    expect_response(c, 200, "hello /empty\n"); /* empty is allowed */
    client_close(c);
    assert_int_equal(atomic_load(&ctx.errors), 0);
    stop();
}
FOR_BOTH(host_is_required_once_in_http11)

static void big_content_length_gets_413_before_the_body(const variant *v)
{
    prepare();
    ctx.http.max_body_size = 1000;
    start(v);
    /* The body is never sent: the answer must not wait for it. */
    expect_refusal(
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", 413);
    stop();
}
FOR_BOTH(big_content_length_gets_413_before_the_body)

static void post_body_is_echoed(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(
        c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello");
    usleep(20000); /* the rest of the body in a second packet */
    client_send(c, " world");
    expect_response(c, 200, "hello world");
    /* A chunked body, with an extension and a trailer. */
    client_send(
        c,
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;x=y\r\nhello\r\n6\r\n chunk\r\n0\r\nT: 1\r\n\r\n"
        "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello chunk");
    expect_response(c, 200, "hello /after\n");
    client_close(c);
    stop();
}
FOR_BOTH(post_body_is_echoed)

static void expect_100_continue_gets_interim_response(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                   "Expect: 100-continue\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 100);
    assert_string_equal(r.head, "HTTP/1.1 100 Continue\r\n\r\n");
    client_send(c, "ping");
    expect_response(c, 200, "ping");
    client_close(c);
    expect_refusal("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                   "Expect: teapot\r\n\r\nping",
                   417);
    stop();
}
FOR_BOTH(expect_100_continue_gets_interim_response)

static void unread_body_is_drained_before_next_request(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(
        c,
        "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 25\r\n\r\n"
        "GET /smuggled HTTP/1.1\r\n\r\n" /* the body: 25 bytes */
        "POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\n\r\n"
        "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "ignored\n");
    expect_response(c, 200, "ignored\n");
    expect_response(c, 200, "hello /next\n");
    client_close(c);
    stop();
}
FOR_BOTH(unread_body_is_drained_before_next_request)

static void slow_header_is_cut_off_by_whole_head_deadline(const variant *v)
{
    prepare();
    ctx.http.header_timeout = 0.5;
    start(v);
    client *c = client_open();
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    double t0 = test_now();
    bool answered = false;
    while (test_now() - t0 < 5.0) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            answered = true;
            break;
        }
        if (send(c->fd, "a", 1, MSG_NOSIGNAL) < 0)
            break;
    }
    double elapsed = test_now() - t0;
    assert_true(answered);
    assert_true(elapsed < 3.0);
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 408);
    expect_closed(c);
    client_close(c);
    stop();
}
FOR_BOTH(slow_header_is_cut_off_by_whole_head_deadline)

static void idle_keep_alive_connection_is_closed(const variant *v)
{
    prepare();
    ctx.http.idle_timeout = 0.3;
    start(v);
    client *c = client_open();
    client_send(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /a\n");
    double t0 = test_now();
    expect_closed(c); /* quietly: no 408 for a connection between requests */
    assert_true(test_now() - t0 < 3.0);
    client_close(c);
    stop();
}
FOR_BOTH(idle_keep_alive_connection_is_closed)

static void send_error_escapes_what_came_from_the_request(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(
        c, "GET /err<script>alert('x')</script> HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 404);
    assert_null(strstr(r.body, "<script>"));
    assert_non_null(strstr(r.body, "/err&lt;script&gt;alert(&#x27;x&#x27;)"));
    assert_non_null(strstr(r.body, "<p>Error code: 404</p>"));
    assert_non_null(strstr(r.body, "<p>Message: Not Found.</p>"));
    /* A 404 leaves the connection usable. */
    client_send(c, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /again\n");
    client_close(c);
    stop();
}
FOR_BOTH(send_error_escapes_what_came_from_the_request)

static void header_injection_is_refused(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /inject HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_int_equal(atomic_load(&ctx.inject_rc), -EINVAL);
    assert_null(strstr(r.head, "\r\nb"));
    assert_null(strstr(r.head, "Forged"));
    assert_null(strstr(r.head, "\r\nY"));
    assert_null(strstr(r.head, ": v\r\n"));
    /* The field sent after them is there, whole. */
    assert_non_null(strstr(r.head, "\r\nX-Ok: fine\r\n"));
    client_close(c);
    stop();
}
FOR_BOTH(header_injection_is_refused)

/* A handler class without its ss_http_config is a program error: every
 * connection gets a 500 that says so (logged to stderr, the default),
 * the server reports it and carries on, and nothing leaks (ASan). */
static void missing_configuration_is_a_500(const variant *v)
{
    prepare();
    ctx.no_config = true;
    start(v);
    for (int i = 0; i < 2; i++) {
        client *c = client_open();
        client_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        response r;
        read_response(c, &r, false);
        assert_int_equal(r.status, 500);
        assert_non_null(strstr(r.body, "no configuration"));
        assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
        client_close(c);
    }
    stop();
    assert_int_equal(atomic_load(&ctx.last_error), -EINVAL);
}
FOR_BOTH(missing_configuration_is_a_500)

static bool log_has(void *arg)
{
    return test_log_count(&ctx.log) >= *(int *)arg;
}

/* One request answered 200 (with body, unless NULL), then one refused
 * with 400, each logged before the next is sent: ctx.log's lines 0 and 1
 * are theirs, in this order, whichever threads wrote them. */
static void log_answered_then_refused(const char *answered, const char *body,
                                      const char *refused)
{
    client *c = client_open();
    client_send(c, answered);
    expect_response(c, 200, body);
    client_close(c);
    int want = 1;
    assert_true(test_wait_for(log_has, &want, 5.0));
    expect_refusal(refused, 400);
    want = 2;
    assert_true(test_wait_for(log_has, &want, 5.0));
}

static void access_log_uses_common_log_format(const variant *v)
{
    prepare();
    start(v);
    log_answered_then_refused("GET /caf\xc3\xa9\\ HTTP/1.1\r\nHost: x\r\n\r\n",
                              NULL,
                              "GET /\x01\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n");
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(&ctx.log, 0, line, sizeof line);
    if (v->kind == &ss_tcp)
        assert_memory_equal(line, "127.0.0.1 - - [", 15);
    /* [dd/Mon/yyyy hh:mm:ss] */
    const char *open = strchr(line, '[');
    assert_non_null(open);
    assert_int_equal(open[3], '/');
    assert_int_equal(open[7], '/');
    assert_int_equal(open[12], ' ');
    assert_int_equal(open[21], ']');
    assert_non_null(
        strstr(line, "] \"GET /caf\\xc3\\xa9\\\\ HTTP/1.1\" 200 14"));
    test_log_line(&ctx.log, 1, line, sizeof line);
    assert_non_null(strstr(line, "\"GET /\\x01\\x1b[2J HTTP/1.1\" 400 "));
    assert_null(strchr(line, '\x1b'));
    stop();
}
FOR_BOTH(access_log_uses_common_log_format)

/* A quote in the request line (the target may hold one) would end the
 * quoted field early: a log parser would read what follows as the status
 * and the size. It is written as \x22, as nginx does. */
static void access_log_escapes_quotes_in_the_request_line(const variant *v)
{
    prepare();
    start(v);
    /* The second is refused before the request line was understood: the
     * raw line is logged. */
    log_answered_then_refused(
        "GET /a\"b\"c HTTP/1.1\r\nHost: x\r\n\r\n", "hello /a\"b\"c\n",
        "GET /x\" 200 5 \"forged HTTP/1.1\r\nHost: x\r\n\r\n");
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(&ctx.log, 0, line, sizeof line);
    assert_non_null(strstr(line, "] \"GET /a\\x22b\\x22c HTTP/1.1\" 200 "));
    test_log_line(&ctx.log, 1, line, sizeof line);
    assert_non_null(
        strstr(line, "] \"GET /x\\x22 200 5 \\x22forged HTTP/1.1\" 400 "));
    /* Exactly the two quotes that frame the field. */
    for (int i = 0; i < 2; i++) {
        test_log_line(&ctx.log, i, line, sizeof line);
        int quotes = 0;
        for (const char *q = line; (q = strchr(q, '"')) != NULL; q++)
            quotes++;
        assert_int_equal(quotes, 2);
    }
    stop();
}
FOR_BOTH(access_log_escapes_quotes_in_the_request_line)

/* Three requests on one keep-alive connection (the client part of the
 * line is made once per connection): a HEAD, whose size is "-"; a request
 * line longer than the log keeps (8 KiB), cut with "..."; a plain GET. */
static size_t longest_line_len;
static char longest_line_tail[32];

/* The capture keeps the first 512 bytes of a line: this one also keeps
 * the length and the end of the longest. */
static void log_hook_measuring(void *user, const char *line)
{
    size_t n = strlen(line);
    if (n > longest_line_len) {
        longest_line_len = n;
        snprintf(longest_line_tail, sizeof longest_line_tail, "%s",
                 line + n - 20);
    }
    test_log_hook(user, line);
}

static void access_log_fields_on_one_connection(const variant *v)
{
    prepare();
    ctx.http.log_request = log_hook_measuring;
    longest_line_len = 0;
    ctx.http.limits.max_request_line = 16384;
    start(v);
    client *c = client_open();
    response r;
    client_send(c, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
    read_response(c, &r, true);
    assert_int_equal(r.status, 200);
    static char long_get[10000];
    int n = snprintf(long_get, sizeof long_get, "GET /");
    memset(long_get + n, 'a', 9000);
    strcpy(long_get + n + 9000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    client_send(c, long_get);
    read_response(c, &r, false);
    assert_int_equal(r.status, 200);
    client_send(c, "GET /z HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /z\n");
    client_close(c);
    int want = 3;
    assert_true(test_wait_for(log_has, &want, 5.0));

    char line[TEST_LOG_LINE_SIZE], first[TEST_LOG_LINE_SIZE];
    test_log_line(&ctx.log, 0, first, sizeof first);
    assert_non_null(strstr(first, "] \"HEAD /h HTTP/1.1\" 200 -"));
    const char *end = strstr(first, " - - [");
    assert_non_null(end);
    size_t host_len = (size_t)(end - first);
    if (v->kind == &ss_tcp)
        assert_memory_equal(first, "127.0.0.1 - - [", 15);
    for (int i = 1; i < 3; i++) {
        test_log_line(&ctx.log, i, line, sizeof line);
        assert_memory_equal(line, first, host_len + 6); /* same client */
    }
    test_log_line(&ctx.log, 1, line, sizeof line);
    /* 8192 bytes of the request line kept ("GET /" and 8187 'a's), then
     * "...", the status and the size. */
    const char *quote = strstr(line, "] \"GET /aaa");
    assert_non_null(quote);
    size_t kept_from = (size_t)(quote + 3 - line);
    assert_non_null(strstr(longest_line_tail, "aaa...\" 200 "));
    const char *status = strstr(longest_line_tail, "...\" 200 ");
    size_t tail_from = longest_line_len - strlen(longest_line_tail);
    assert_int_equal(
        tail_from + (size_t)(status - longest_line_tail) - kept_from, 8192);
    test_log_line(&ctx.log, 2, line, sizeof line);
    assert_non_null(strstr(line, "] \"GET /z HTTP/1.1\" 200 9"));
    stop();
}
FOR_BOTH(access_log_fields_on_one_connection)

static bool one_error(void *arg)
{
    (void)arg;
    return atomic_load(&ctx.errors) >= 1;
}

static void failing_callback_is_reported_once_and_closes(const variant *v)
{
    prepare();
    ctx.http.quiet = true;
    start(v);
    client *c = client_open();
    client_send(c, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\nGET /never "
                   "HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_closed(c);
    client_close(c);
    assert_true(test_wait_for(one_error, NULL, 5.0));
    stop();
    assert_int_equal(atomic_load(&ctx.errors), 1);
    assert_int_equal(atomic_load(&ctx.last_error), -1234);
    assert_int_equal(test_log_count(&ctx.log), 0); /* quiet */
}
FOR_BOTH(failing_callback_is_reported_once_and_closes)

static void response_without_length_closes_connection(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /noclen HTTP/1.1\r\nHost: x\r\n\r\nGET /never "
                   "HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, false); /* reads to EOF: the body's end */
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    assert_string_equal(r.body, "until close");
    client_close(c);
    stop();
}
FOR_BOTH(response_without_length_closes_connection)

/* ---- regression tests from the security review ---------------------- */

/* Sends text and reads until the server closes, for at most seconds.
 * Returns whether it closed; the bytes received are dropped. */
static bool closes_within(client *c, double seconds)
{
    double t0 = test_now();
    while (test_now() - t0 < seconds) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            c->len = 0;
            if (!client_fill(c))
                return true;
        }
    }
    return false;
}

static void large_unread_body_closes_instead_of_draining(const variant *v)
{
    prepare();
    ctx.http.io_timeout = 5.0; /* what a drain would wait per read */
    start(v);
    client *c = client_open();
    /* A megabyte announced, three bytes sent: reading the rest would wait
     * on the client; the server closes instead. */
    client_send(
        c, "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
           "abc");
    expect_response(c, 200, "ignored\n");
    assert_true(closes_within(c, 2.0));
    client_close(c);
    stop();
}
FOR_BOTH(large_unread_body_closes_instead_of_draining)

static void dribbled_unread_body_is_drained_within_a_deadline(const variant *v)
{
    prepare();
    ctx.http.header_timeout = 0.5; /* the drain's whole deadline */
    ctx.http.io_timeout = 5.0;
    start(v);
    client *c = client_open();
    client_send(
        c, "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n");
    expect_response(c, 200, "ignored\n");
    /* A byte every 50 ms renews any per-read timeout forever. */
    double t0 = test_now();
    bool closed = false;
    while (!closed && test_now() - t0 < 5.0) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            closed = !client_fill(c);
        else if (send(c->fd, "x", 1, MSG_NOSIGNAL) < 0)
            closed = true;
    }
    assert_true(closed);
    assert_true(test_now() - t0 < 3.0);
    assert_int_equal(c->len, 0);
    client_close(c);
    stop();
}
FOR_BOTH(dribbled_unread_body_is_drained_within_a_deadline)

static void large_body_to_a_steady_reader_outlasts_io_timeout(const variant *v)
{
    prepare();
    ctx.http.io_timeout = 0.4;
    ctx.small_sndbuf = true;
    memset(big_body, 'b', sizeof big_body);
    start(v);
    client *c = client_open();
    int size = 16384;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    client_send(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(client_fill(c));
    client_consume(c, (size_t)(end - c->buf) + 4);
    /* About 1.3 MB/s: the body takes around a second, never pausing for
     * more than a few milliseconds. */
    double t0 = test_now();
    size_t got = c->len;
    c->len = 0;
    while (got < BIG_BODY_SIZE) {
        ssize_t n = recv(c->fd, c->buf, 16384, 0);
        if (n <= 0)
            fail_msg("body cut off after %zu of %zu bytes (%.2f s)", got,
                     BIG_BODY_SIZE, test_now() - t0);
        got += (size_t)n;
        usleep(12000);
    }
    assert_int_equal(got, BIG_BODY_SIZE);
    assert_true(test_now() - t0 > 0.5); /* it did outlast io_timeout */
    /* The connection is still good. */
    client_send(c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "hello /after\n");
    client_close(c);
    stop();
}
FOR_BOTH(large_body_to_a_steady_reader_outlasts_io_timeout)

static bool bigfile_done(void *arg)
{
    (void)arg;
    return atomic_load(&ctx.bigfile_done) != 0;
}

/* A client that asks for a large file and never reads: the transfer ends
 * once no byte has moved for io_timeout — however many ss_http_sendfile
 * calls the callback makes (each piece that times out after some bytes
 * went out returns a short count, and the next call must not wait a
 * whole io_timeout again). The send probe checks every wait to send
 * against the last byte sent. */
static void
large_file_to_a_reader_that_stops_ends_after_io_timeout(const variant *v)
{
    prepare();
    ctx.http.io_timeout = 0.3;
    ctx.send_probe = true;
    char path[] = "/tmp/sockserv-test-bigfile-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    assert_int_equal(ftruncate(file, (off_t)64 << 20), 0); /* sparse */
    close(file);
    ctx.big_file = path;
    start(v);
    client *c = client_open();
    int small = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    client_send(c, "GET /bigfile HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Never read. */
    bool done = test_wait_for(bigfile_done, NULL, 15.0);
    client_close(c);
    stop();
    unlink(path);
    assert_true(done);
    assert_int_equal(atomic_load(&ctx.bigfile_rc), -ETIMEDOUT);
    double allowed = test_send_probe_longest_allowance();
    assert_true(allowed > 0);
    /* io_timeout, and the microseconds between the probe's clock reading
     * after the last byte and the library's before its wait. */
    if (allowed > 0.3 + 0.1)
        fail_msg("a wait to send was allowed %.3f s past the last byte sent; "
                 "io_timeout is 0.3 s",
                 allowed);
}
FOR_BOTH(large_file_to_a_reader_that_stops_ends_after_io_timeout)

/* What docs/security.md says of slow clients that keep going: the
 * timeouts are per read, not per body or per connection, so a body
 * dribbled just inside io_timeout, or keep-alive requests just inside
 * idle_timeout, go on for longer than either timeout in all. */
static void
slow_body_and_slow_keep_alive_outlast_their_timeouts(const variant *v)
{
    prepare();
    ctx.http.io_timeout = 1.0;
    ctx.http.idle_timeout = 1.0;
    start(v);
    client *c = client_open();
    double start_at = test_now();
    client_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n"
                   "\r\n");
    for (int i = 0; i < 12; i++) {
        test_sleep(0.1);
        client_send(c, "b");
    }
    expect_response(c, 200, "bbbbbbbbbbbb");
    assert_true(test_now() - start_at > 1.0); /* more than io_timeout */
    start_at = test_now();
    for (int i = 0; i < 4; i++) {
        test_sleep(0.4);
        client_send(c, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
        expect_response(c, 200, "hello /again\n");
    }
    assert_true(test_now() - start_at > 1.0); /* more than idle_timeout */
    client_close(c);
    stop();
}
FOR_BOTH(slow_body_and_slow_keep_alive_outlast_their_timeouts)

static void test_unix_client_name_cannot_forge_log_lines(void **state)
{
    (void)state;
    prepare();
    start(&over_unix);
    struct sockaddr_un server;
    socklen_t server_len = sizeof server;
    assert_int_equal(ss_server_address(ctx.server.srv,
                                       (struct sockaddr *)&server, &server_len),
                     0);
    /* The client picks its own abstract name, newline included. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un me = {.sun_family = AF_UNIX};
    char name[96];
    int n = snprintf(name, sizeof name, "ss-%d\n6.6.6.6 - - [forged]",
                     (int)getpid());
    memcpy(me.sun_path + 1, name, (size_t)n);
    assert_int_equal(
        bind(fd, (struct sockaddr *)&me,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)),
        0);
    assert_int_equal(connect(fd, (struct sockaddr *)&server, server_len), 0);
    client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = fd;
    client_send(c, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect_response(c, 200, "hello /x\n");
    expect_closed(c);
    client_close(c);
    int want = 1;
    assert_true(test_wait_for(log_has, &want, 5.0));
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(&ctx.log, 0, line, sizeof line);
    assert_null(strchr(line, '\n'));
    /* The host field is not quoted: a space in it would split it, so the
     * name's spaces are escaped too. */
    assert_non_null(
        strstr(line, "\\x0a6.6.6.6\\x20-\\x20-\\x20[forged] - - ["));
    stop();
}

static void
raw_response_through_the_request_gets_nothing_appended(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /raw HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 200, "raw");
    expect_closed(c); /* no 500 after it: the framing was the callback's */
    client_close(c);
    stop();
}
FOR_BOTH(raw_response_through_the_request_gets_nothing_appended)

static void silent_callback_gets_500_logged_once(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /silent HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(c, 500, NULL);
    expect_closed(c); /* the exchange, its logging included, is over */
    client_close(c);
    stop();
    assert_int_equal(test_log_count(&ctx.log), 1);
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(&ctx.log, 0, line, sizeof line);
    assert_non_null(strstr(line, "\"GET /silent HTTP/1.1\" 500 "));
}
FOR_BOTH(silent_callback_gets_500_logged_once)

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits until the server has read everything sent so far: on a Unix
 * stream socket SIOCOUTQ counts what the peer has not consumed yet. */
static void wait_until_read(int fd)
{
    double t0 = test_now();
    int queued = 1;
    while (test_now() - t0 < 5.0) {
        assert_int_equal(ioctl(fd, SIOCOUTQ, &queued), 0);
        if (queued == 0)
            return;
        usleep(20);
    }
    fail_msg("the server stopped reading");
}

static void test_dribbled_head_is_not_parsed_again_per_read(void **state)
{
    (void)state;
    prepare();
    ctx.http.limits.max_request_line = 4 << 20;
    ctx.http.quiet = true;
    start(&over_unix);
    client *c = client_open();
    /* A 2 MiB request line, 128 bytes per read: parsing the whole head
     * again after each read scans 17 GB; parsing only when a line may have
     * ended scans it once. */
    double cpu0 = cpu_seconds();
    client_send(c, "GET /");
    char piece[129];
    memset(piece, 'a', 128);
    piece[128] = '\0';
    for (int i = 0; i < 16384; i++) {
        client_send(c, piece);
        wait_until_read(c->fd);
    }
    client_send(c, " HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 200);
    double used = cpu_seconds() - cpu0;
    if (used > 2.0)
        fail_msg("%.2f s of CPU for a dribbled head", used);
    client_close(c);
    stop();
}

/* Limits are still enforced before the end of a line that arrives in
 * pieces (the parser runs again once a piece crosses one). */
static void expect_refusal_dribbled(const char *start_text, int status)
{
    client *c = client_open();
    client_send(c, start_text);
    char piece[101];
    memset(piece, 'a', 100);
    piece[100] = '\0';
    bool answered = false;
    for (int i = 0; i < 40 && !answered; i++) {
        if (send(c->fd, piece, 100, MSG_NOSIGNAL) < 0)
            break;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        answered = poll(&p, 1, 5) > 0;
    }
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, status);
    client_close(c);
}

static void dribbled_lines_are_refused_at_their_limits(const variant *v)
{
    prepare();
    ctx.http.header_timeout = 5.0; /* a miss would be a late 408 */
    ctx.http.limits.max_request_line = 1024;
    ctx.http.limits.max_header_line = 800;
    ctx.http.limits.max_header_bytes = 1000;
    start(v);
    double t0 = test_now();
    expect_refusal_dribbled("GET /", 414);
    expect_refusal_dribbled("GET / HTTP/1.1\r\nHost: x\r\nX: ", 431);
    /* The section's budget, smaller than the line limit, binds. */
    char head[1024];
    char value[301];
    memset(value, 'v', 300);
    value[300] = '\0';
    snprintf(head, sizeof head,
             "\r\nGET / HTTP/1.1\r\nHost: x\r\nA: %s\r\nB: %s\r\nC: ", value,
             value);
    expect_refusal_dribbled(head, 431);
    assert_true(test_now() - t0 < 4.0);
    stop();
}
FOR_BOTH(dribbled_lines_are_refused_at_their_limits)

static void short_body_for_declared_length_closes(const variant *v)
{
    prepare();
    ctx.http.idle_timeout = 3.0;
    start(v);
    client *c = client_open();
    client_send(c, "GET /short HTTP/1.1\r\nHost: x\r\n\r\n");
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(client_fill(c));
    client_consume(c, (size_t)(end - c->buf) + 4);
    /* 3 of the 10 bytes, then the end of the connection, promptly. */
    double t0 = test_now();
    while (client_fill(c))
        ;
    assert_true(test_now() - t0 < 2.0);
    assert_int_equal(c->len, 3);
    assert_memory_equal(c->buf, "abc", 3);
    client_close(c);
    stop();
}
FOR_BOTH(short_body_for_declared_length_closes)

static void callback_keep_alive_is_not_sent_when_closing(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /keepalive-noclen HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, false); /* to EOF: the body's end */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "until close");
    assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
    assert_null(strcasestr(r.head, "keep-alive"));
    client_close(c);
    stop();
}
FOR_BOTH(callback_keep_alive_is_not_sent_when_closing)

static void reset_content_has_no_body_and_keeps_the_connection(const variant *v)
{
    prepare();
    start(v);
    client *c = client_open();
    client_send(c, "GET /reset HTTP/1.1\r\nHost: x\r\n\r\nGET /after "
                   "HTTP/1.1\r\nHost: x\r\n\r\n");
    response r;
    read_response(c, &r, false);
    assert_int_equal(r.status, 205);
    assert_non_null(strstr(r.head, "\r\nContent-Length: 0\r\n"));
    assert_null(strstr(r.head, "Connection: close"));
    assert_int_equal(r.body_len, 0);
    expect_response(c, 200, "hello /after\n"); /* not "oops" first */
    client_close(c);
    stop();
}
FOR_BOTH(reset_content_has_no_body_and_keeps_the_connection)

static void test_reason_phrases_and_html_escape(void **state)
{
    (void)state;
    assert_string_equal(ss_http_reason(200), "OK");
    assert_string_equal(ss_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(ss_http_reason(799), "Unknown");
    char buf[8];
    assert_int_equal(ss_http_html_escape("<a&'\">", buf, sizeof buf), 26);
    assert_string_equal(buf, "&lt;a"); /* cut at a whole entity */
    assert_int_equal(ss_http_html_escape("plain", buf, sizeof buf), 5);
    assert_string_equal(buf, "plain");
}

#define BOTH(name)                                                             \
    cmocka_unit_test(test_##name##_over_tcp),                                  \
        cmocka_unit_test(test_##name##_over_unix)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(config_user_and_server_user_are_told_apart),
        BOTH(state_is_the_connections_own),
        BOTH(path_query_and_captures_are_decoded),
        BOTH(form_bodies_are_read_and_bounded),
        BOTH(get_returns_body_with_date_and_server),
        BOTH(head_sends_headers_without_body),
        BOTH(keep_alive_serves_two_requests_on_one_connection),
        BOTH(client_address_and_server_keep_the_connection),
        BOTH(pipelined_requests_are_answered_in_order),
        BOTH(http10_closes_unless_keep_alive_asked),
        BOTH(connection_close_is_honoured),
        BOTH(bad_requests_get_their_status_and_close),
        BOTH(host_is_required_once_in_http11),
        BOTH(big_content_length_gets_413_before_the_body),
        BOTH(post_body_is_echoed),
        BOTH(expect_100_continue_gets_interim_response),
        BOTH(unread_body_is_drained_before_next_request),
        BOTH(slow_header_is_cut_off_by_whole_head_deadline),
        BOTH(idle_keep_alive_connection_is_closed),
        BOTH(send_error_escapes_what_came_from_the_request),
        BOTH(header_injection_is_refused),
        BOTH(missing_configuration_is_a_500),
        BOTH(access_log_uses_common_log_format),
        BOTH(access_log_escapes_quotes_in_the_request_line),
        BOTH(access_log_fields_on_one_connection),
        BOTH(failing_callback_is_reported_once_and_closes),
        BOTH(response_without_length_closes_connection),
        BOTH(large_unread_body_closes_instead_of_draining),
        BOTH(dribbled_unread_body_is_drained_within_a_deadline),
        BOTH(large_body_to_a_steady_reader_outlasts_io_timeout),
        BOTH(large_file_to_a_reader_that_stops_ends_after_io_timeout),
        BOTH(slow_body_and_slow_keep_alive_outlast_their_timeouts),
        cmocka_unit_test(test_unix_client_name_cannot_forge_log_lines),
        BOTH(raw_response_through_the_request_gets_nothing_appended),
        BOTH(silent_callback_gets_500_logged_once),
        cmocka_unit_test(test_dribbled_head_is_not_parsed_again_per_read),
        BOTH(dribbled_lines_are_refused_at_their_limits),
        BOTH(short_body_for_declared_length_closes),
        BOTH(callback_keep_alive_is_not_sent_when_closing),
        BOTH(reset_content_has_no_body_and_keeps_the_connection),
        cmocka_unit_test(test_reason_phrases_and_html_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
