/*
 * test_http_parser.c — the HTTP/1.1 request parser, its field helpers and
 * the chunked decoder (include/sockserv/http_parser.h).
 *
 * Table-driven: every case states its input and the exact result. Every
 * input is placed at the very end of a readable page followed by a
 * PROT_NONE page (picohttpparser's trick), so a read one byte past the
 * buffer crashes the test instead of passing by luck. Valid requests are
 * also parsed at every prefix length (all must be SS_HTTP_INCOMPLETE), and
 * chunked bodies are decoded split at every byte boundary.
 */
#include <sockserv/http_parser.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h> /* cmocka.h needs these three first */
#include <cmocka.h>

/* A string literal as (pointer, length): inputs may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

/* ---- Guard page -----------------------------------------------------------
 */

typedef struct guard {
    char *base;  /* start of the writable pages */
    size_t size; /* writable bytes; the PROT_NONE page follows */
    size_t page;
} guard;

static void guard_init(guard *g, size_t capacity)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->size = (capacity + g->page - 1) / g->page * g->page;
    if (g->size == 0)
        g->size = g->page;
    void *m = mmap(NULL, g->size + g->page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    g->base = m;
    assert_int_equal(mprotect(g->base + g->size, g->page, PROT_NONE), 0);
}

/* Copies data so that its last byte is the last readable byte. */
static char *guard_place(guard *g, const void *data, size_t len)
{
    assert_true(len <= g->size);
    char *p = g->base + g->size - len;
    if (len)
        memcpy(p, data, len);
    return p;
}

static void guard_free(guard *g)
{
    munmap(g->base, g->size + g->page);
}

static void assert_slice(const char *p, size_t len, const char *expected)
{
    if (len != strlen(expected) || memcmp(p, expected, len) != 0)
        fail_msg("got \"%.*s\" (%zu bytes), expected \"%s\"", (int)len, p, len,
                 expected);
}

#define MAX_TEST_HEADERS 128

/* Parses input placed at a page end, with room for MAX_TEST_HEADERS. */
static int parse_guarded(guard *g, const char *input, size_t len,
                         const ss_http_limits *limits, ss_http_request *req,
                         ss_http_header *headers)
{
    memset(req, 0x5a, sizeof *req); /* the parser must set every field */
    req->headers = headers;
    req->header_capacity = MAX_TEST_HEADERS;
    return ss_http_parse_request(guard_place(g, input, len), len, limits, req);
}

/* The byte classes of RFC 9110, written independently of the library's
 * table so the two check each other. */
static bool rfc_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static bool rfc_field_vchar(int c)
{
    return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/* ---- Valid requests ----------------------------------------------------- */

typedef struct valid_case {
    const char *input;
    size_t len;
    size_t after; /* bytes after the blank line (a body) */
    const char *method;
    const char *target;
    int major, minor;
    const char *request_line;
    const char *headers[6][2]; /* name, value; ends at a NULL name */
} valid_case;

/* clang-format off */
static const valid_case valid_cases[] = {
    {S("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1", {{"Host", "example.com"}}},
    {S("GET /index.html HTTP/1.0\r\n\r\n"), 0,
     "GET", "/index.html", 1, 0, "GET /index.html HTTP/1.0", {{0}}},
    /* Bare LF line endings, as Python accepts, alone or mixed. */
    {S("GET / HTTP/1.1\nHost: a\n\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1", {{"Host", "a"}}},
    {S("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1", {{"Host", "a"}, {"X", "b"}}},
    /* Every target form; the parser does not judge them. */
    {S("GET http://example.com/x?y=1&z=%20 HTTP/1.1\r\n\r\n"), 0,
     "GET", "http://example.com/x?y=1&z=%20", 1, 1,
     "GET http://example.com/x?y=1&z=%20 HTTP/1.1", {{0}}},
    {S("OPTIONS * HTTP/1.1\r\n\r\n"), 0,
     "OPTIONS", "*", 1, 1, "OPTIONS * HTTP/1.1", {{0}}},
    {S("CONNECT example.com:443 HTTP/1.1\r\n\r\n"), 0,
     "CONNECT", "example.com:443", 1, 1,
     "CONNECT example.com:443 HTTP/1.1", {{0}}},
    {S("GET /caf\xc3\xa9?q=\xff HTTP/1.1\r\n\r\n"), 0,
     "GET", "/caf\xc3\xa9?q=\xff", 1, 1,
     "GET /caf\xc3\xa9?q=\xff HTTP/1.1", {{0}}},
    /* Any token is a method: 501 for unknown ones is the dispatcher's. */
    {S("M-SEARCH * HTTP/1.1\r\n\r\n"), 0,
     "M-SEARCH", "*", 1, 1, "M-SEARCH * HTTP/1.1", {{0}}},
    {S("!#$%&'*+-.^_`|~09azAZ / HTTP/1.1\r\n\r\n"), 0,
     "!#$%&'*+-.^_`|~09azAZ", "/", 1, 1,
     "!#$%&'*+-.^_`|~09azAZ / HTTP/1.1", {{0}}},
    {S("get / HTTP/1.1\r\n\r\n"), 0,
     "get", "/", 1, 1, "get / HTTP/1.1", {{0}}},
    /* Values: OWS around them trimmed, inside kept; HT, obs-text, colons. */
    {S("GET / HTTP/1.1\r\nFoo:  bar \t baz \t\r\nA:b\r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1",
     {{"Foo", "bar \t baz"}, {"A", "b"}}},
    {S("GET / HTTP/1.1\r\nEmpty:\r\nBlank: \t \r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1", {{"Empty", ""}, {"Blank", ""}}},
    {S("GET / HTTP/1.1\r\nX: a\tb\x80\xff\r\nHost: h:8080\r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1",
     {{"X", "a\tb\x80\xff"}, {"Host", "h:8080"}}},
    {S("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1", {{"!#$%&'*+-.^_`|~09azAZ", "v"}}},
    /* Duplicates are kept, in order. */
    {S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1", {{"A", "1"}, {"B", "2"}, {"a", "3"}}},
    /* Empty lines before the request line are skipped (RFC 9112 §2.2). */
    {S("\r\n\n\r\nGET / HTTP/1.1\r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/1.1", {{0}}},
    /* Versions: 1*DIGIT "." 1*DIGIT, like Python (at most 10 digits). */
    {S("GET / HTTP/1.10\r\n\r\n"), 0,
     "GET", "/", 1, 10, "GET / HTTP/1.10", {{0}}},
    {S("GET / HTTP/01.1\r\n\r\n"), 0,
     "GET", "/", 1, 1, "GET / HTTP/01.1", {{0}}},
    {S("GET / HTTP/0000000001.0000000000\r\n\r\n"), 0,
     "GET", "/", 1, 0, "GET / HTTP/0000000001.0000000000", {{0}}},
    {S("GET / HTTP/1.9999999999\r\n\r\n"), 0,
     "GET", "/", 1, 2147483647, "GET / HTTP/1.9999999999", {{0}}},
    /* The count stops at the blank line: the body is not the parser's. */
    {S("POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), 5,
     "POST", "/form", 1, 1, "POST /form HTTP/1.1", {{"Content-Length", "5"}}},
};
/* clang-format on */

static void check_valid(const valid_case *c, const ss_http_request *req, int rc)
{
    size_t consumed = c->len - c->after;
    if (rc != (int)consumed)
        fail_msg("\"%s\": rc %d (%s), expected %zu", c->input, rc,
                 ss_http_error_reason(rc), consumed);
    assert_slice(req->method, req->method_len, c->method);
    assert_slice(req->target, req->target_len, c->target);
    assert_int_equal(req->version_major, c->major);
    assert_int_equal(req->version_minor, c->minor);
    assert_slice(req->request_line, req->request_line_len, c->request_line);
    size_t n = 0;
    while (n < 6 && c->headers[n][0])
        n++;
    assert_int_equal(req->header_count, n);
    for (size_t i = 0; i < n; i++) {
        assert_slice(req->headers[i].name, req->headers[i].name_len,
                     c->headers[i][0]);
        assert_slice(req->headers[i].value, req->headers[i].value_len,
                     c->headers[i][1]);
    }
}

static void test_valid_requests_parse_to_their_parts(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const valid_case *c = &valid_cases[i];
        int rc = parse_guarded(&g, c->input, c->len, NULL, &req, headers);
        check_valid(c, &req, rc);
    }
    guard_free(&g);
}

static void test_every_prefix_of_a_valid_request_is_incomplete(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const valid_case *c = &valid_cases[i];
        size_t consumed = c->len - c->after;
        for (size_t n = 0; n < consumed; n++) {
            int rc = parse_guarded(&g, c->input, n, NULL, &req, headers);
            if (rc != SS_HTTP_INCOMPLETE)
                fail_msg("\"%s\" cut at %zu: rc %d (%s)", c->input, n, rc,
                         ss_http_error_reason(rc));
        }
        /* Complete from the blank line on, whatever follows. */
        for (size_t n = consumed; n <= c->len; n++)
            check_valid(c, &req,
                        parse_guarded(&g, c->input, n, NULL, &req, headers));
    }
    guard_free(&g);
}

static void test_empty_buffer_is_incomplete(void **state)
{
    (void)state;
    ss_http_header headers[4];
    ss_http_request req = {.headers = headers, .header_capacity = 4};
    assert_int_equal(ss_http_parse_request(NULL, 0, NULL, &req),
                     SS_HTTP_INCOMPLETE);
    assert_int_equal(ss_http_parse_request("", 0, NULL, &req),
                     SS_HTTP_INCOMPLETE);
}

static void test_pipelined_requests_are_consumed_one_at_a_time(void **state)
{
    (void)state;
    static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
                              "abc"
                              "\r\nGET /c HTTP/1.0\n\n";
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req = {.headers = headers,
                           .header_capacity = MAX_TEST_HEADERS};
    const char *buf = guard_place(&g, two, sizeof two - 1);
    size_t len = sizeof two - 1;

    int rc = ss_http_parse_request(buf, len, NULL, &req);
    assert_int_equal(rc, (int)strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_slice(req.target, req.target_len, "/a");
    buf += rc;
    len -= (size_t)rc;

    rc = ss_http_parse_request(buf, len, NULL, &req);
    assert_int_equal(
        rc, (int)strlen("POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\n"));
    assert_slice(req.method, req.method_len, "POST");
    uint64_t body = 0;
    assert_int_equal(ss_http_body_framing(&req, &body), SS_HTTP_BODY_LENGTH);
    assert_int_equal(body, 3);
    assert_memory_equal(buf + rc, "abc", 3);
    buf += rc + 3;
    len -= (size_t)rc + 3;

    /* The stray CRLF after a body (old browsers) is skipped. */
    rc = ss_http_parse_request(buf, len, NULL, &req);
    assert_int_equal((size_t)rc, len);
    assert_slice(req.target, req.target_len, "/c");
    assert_int_equal(req.version_minor, 0);
    guard_free(&g);
}

/* ---- Malformed requests ------------------------------------------------- */

typedef struct error_case {
    const char *input;
    size_t len;
    int expected;
} error_case;

/* clang-format off */
static const error_case error_cases[] = {
    /* Request line shape. */
    {S("GET  / HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_REQUEST_LINE},
    {S(" GET / HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_REQUEST_LINE},
    {S("GET\r\n\r\n"), SS_HTTP_E_BAD_REQUEST_LINE},
    {S("GET \r\n\r\n"), SS_HTTP_E_BAD_REQUEST_LINE},
    {S("GET\t/ HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_REQUEST_LINE},
    {S("GET / HTTP/1.1 \r\n\r\n"), SS_HTTP_E_BAD_REQUEST_LINE},
    {S("GET / HTTP/1.1 extra\r\n\r\n"), SS_HTTP_E_BAD_REQUEST_LINE},
    /* Method. Refused at the first bad byte, before any line end. */
    {S("G(T / HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_METHOD},
    {S("GET/ HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_METHOD},
    {S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), SS_HTTP_E_BAD_METHOD},
    {S("{\"jsonrpc\""), SS_HTTP_E_BAD_METHOD},
    {S("G\x00T / HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_METHOD},
    /* Target. */
    {S("GET /\x01 HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_TARGET},
    {S("GET /a\x7f HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_TARGET},
    {S("GET /\t HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_TARGET},
    {S("GET /a\x00" "b HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_TARGET},
    {S("GET \x0b HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_TARGET},
    /* HTTP/0.9: no version. */
    {S("GET /\r\n\r\n"), SS_HTTP_E_MISSING_VERSION},
    {S("GET /index.html\n"), SS_HTTP_E_MISSING_VERSION},
    /* Version syntax. */
    {S("GET / http/1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTPS/1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / FOO/1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/1.\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/1.x\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/1.1x\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/1.1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/+1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/-1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/1,1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/ 1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/12345678901.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / HTTP/1.12345678901\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    {S("GET / / HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_VERSION},
    /* Well-formed versions we do not speak. */
    {S("GET / HTTP/2.0\r\n\r\n"), SS_HTTP_E_VERSION_NOT_SUPPORTED},
    {S("GET / HTTP/3.0\r\n\r\n"), SS_HTTP_E_VERSION_NOT_SUPPORTED},
    {S("GET / HTTP/10.0\r\n\r\n"), SS_HTTP_E_VERSION_NOT_SUPPORTED},
    {S("GET / HTTP/1234567890.1\r\n\r\n"), SS_HTTP_E_VERSION_NOT_SUPPORTED},
    {S("GET / HTTP/0.9\r\n\r\n"), SS_HTTP_E_VERSION_NOT_SUPPORTED},
    {S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), SS_HTTP_E_VERSION_NOT_SUPPORTED},
    /* Line endings. */
    {S("\rGET / HTTP/1.1\r\n\r\n"), SS_HTTP_E_BAD_LINE_ENDING},
    {S("GET / HTTP/1.1\rX"), SS_HTTP_E_BAD_LINE_ENDING},
    {S("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), SS_HTTP_E_BAD_LINE_ENDING},
    {S("GET / HTTP/1.1\r\nA: b\r\r\n\r\n"), SS_HTTP_E_BAD_LINE_ENDING},
    {S("GET / HTTP/1.1\r\n\rX"), SS_HTTP_E_BAD_LINE_ENDING},
    /* Field names. */
    {S("GET / HTTP/1.1\r\nFo@o: x\r\n\r\n"), SS_HTTP_E_BAD_HEADER_NAME},
    {S("GET / HTTP/1.1\r\nFoo{}: x\r\n\r\n"), SS_HTTP_E_BAD_HEADER_NAME},
    {S("GET / HTTP/1.1\r\nFoo\x01: x\r\n\r\n"), SS_HTTP_E_BAD_HEADER_NAME},
    {S("GET / HTTP/1.1\r\n\x80" "Foo: x\r\n\r\n"), SS_HTTP_E_BAD_HEADER_NAME},
    {S("GET / HTTP/1.1\r\n@: x\r\n\r\n"), SS_HTTP_E_BAD_HEADER_NAME},
    {S("GET / HTTP/1.1\r\nFoo bar: x\r\n\r\n"), SS_HTTP_E_BAD_HEADER_NAME},
    {S("GET / HTTP/1.1\r\nFoo\x00: x\r\n\r\n"), SS_HTTP_E_BAD_HEADER_NAME},
    {S("GET / HTTP/1.1\r\n: x\r\n\r\n"), SS_HTTP_E_EMPTY_HEADER_NAME},
    {S("GET / HTTP/1.1\r\n:\r\n\r\n"), SS_HTTP_E_EMPTY_HEADER_NAME},
    /* Whitespace before the colon: the request smuggling classic. */
    {S("GET / HTTP/1.1\r\nFoo : x\r\n\r\n"), SS_HTTP_E_SPACE_BEFORE_COLON},
    {S("GET / HTTP/1.1\r\nFoo\t: x\r\n\r\n"), SS_HTTP_E_SPACE_BEFORE_COLON},
    {S("GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"),
     SS_HTTP_E_SPACE_BEFORE_COLON},
    {S("GET / HTTP/1.1\r\nContent-Length \t : 5"),
     SS_HTTP_E_SPACE_BEFORE_COLON},
    {S("GET / HTTP/1.1\r\nFoo\r\n\r\n"), SS_HTTP_E_MISSING_COLON},
    {S("GET / HTTP/1.1\r\nFoo \r\n\r\n"), SS_HTTP_E_MISSING_COLON},
    {S("GET / HTTP/1.1\r\nFoo\n\n"), SS_HTTP_E_MISSING_COLON},
    /* Obsolete line folding, and whitespace before the first field. */
    {S("GET / HTTP/1.1\r\nFoo: a\r\n b\r\n\r\n"), SS_HTTP_E_OBS_FOLD},
    {S("GET / HTTP/1.1\r\nFoo: a\r\n\tb\r\n\r\n"), SS_HTTP_E_OBS_FOLD},
    {S("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), SS_HTTP_E_OBS_FOLD},
    /* Controls in values (HT is allowed). */
    {S("GET / HTTP/1.1\r\nFoo: a\x00" "b\r\n\r\n"), SS_HTTP_E_BAD_HEADER_VALUE},
    {S("GET / HTTP/1.1\r\nFoo: a\x01\r\n\r\n"), SS_HTTP_E_BAD_HEADER_VALUE},
    {S("GET / HTTP/1.1\r\nFoo: \x0b\r\n\r\n"), SS_HTTP_E_BAD_HEADER_VALUE},
    {S("GET / HTTP/1.1\r\nFoo: a\x0c\r\n\r\n"), SS_HTTP_E_BAD_HEADER_VALUE},
    {S("GET / HTTP/1.1\r\nFoo: a\x1f\r\n\r\n"), SS_HTTP_E_BAD_HEADER_VALUE},
    {S("GET / HTTP/1.1\r\nFoo: a\x7f\r\n\r\n"), SS_HTTP_E_BAD_HEADER_VALUE},
    {S("GET / HTTP/1.1\r\nFoo: \x1b[31m\r\n\r\n"), SS_HTTP_E_BAD_HEADER_VALUE},
};
/* clang-format on */

static void test_malformed_requests_get_their_exact_error(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const error_case *c = &error_cases[i];
        int rc = parse_guarded(&g, c->input, c->len, NULL, &req, headers);
        if (rc != c->expected)
            fail_msg("case %zu \"%s\": rc %d (%s), expected %d (%s)", i,
                     c->input, rc, ss_http_error_reason(rc), c->expected,
                     ss_http_error_reason(c->expected));
        int status = ss_http_error_status(rc);
        assert_true(status == 400 || status == 505);
    }
    guard_free(&g);
}

/* A stateless parser must not flip-flop: cut anywhere, a bad request is
 * incomplete until its offending byte arrives, then the error for good. */
static void
test_malformed_request_prefixes_are_incomplete_then_error(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const error_case *c = &error_cases[i];
        bool failed = false;
        for (size_t n = 0; n <= c->len; n++) {
            int rc = parse_guarded(&g, c->input, n, NULL, &req, headers);
            if (failed || rc != SS_HTTP_INCOMPLETE) {
                if (rc != c->expected)
                    fail_msg("case %zu cut at %zu: rc %d, expected %d", i, n,
                             rc, c->expected);
                failed = true;
            }
        }
        assert_true(failed);
    }
    guard_free(&g);
}

static void
test_refused_request_keeps_its_request_line_for_the_log(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;

    int rc = parse_guarded(&g, S("GET /x HTTP/1.1\r\nA: 1\r\nB : 2\r\n\r\n"),
                           NULL, &req, headers);
    assert_int_equal(rc, SS_HTTP_E_SPACE_BEFORE_COLON);
    assert_slice(req.request_line, req.request_line_len, "GET /x HTTP/1.1");
    assert_slice(req.method, req.method_len, "GET");
    assert_int_equal(req.header_count, 1);

    rc = parse_guarded(&g, S("GET / HTTP/2.0\r\n\r\n"), NULL, &req, headers);
    assert_int_equal(rc, SS_HTTP_E_VERSION_NOT_SUPPORTED);
    assert_int_equal(req.version_major, 2);
    assert_slice(req.request_line, req.request_line_len, "GET / HTTP/2.0");

    rc = parse_guarded(&g, S("G(T / HTTP/1.1\r\n\r\n"), NULL, &req, headers);
    assert_int_equal(rc, SS_HTTP_E_BAD_METHOD);
    assert_null(req.method);
    assert_int_equal(req.method_len, 0);
    assert_null(req.request_line);
    assert_int_equal(req.header_count, 0);

    rc =
        parse_guarded(&g, S("GET / HTTP/1.1\r\nA: 1\r\n"), NULL, &req, headers);
    assert_int_equal(rc, SS_HTTP_INCOMPLETE);
    assert_int_equal(req.header_count, 1);
    assert_slice(req.target, req.target_len, "/");
    guard_free(&g);
}

/* ---- Every byte value, against the RFC's classes ------------------------ */

static void test_method_accepts_exactly_the_token_bytes(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (int b = 0; b < 256; b++) {
        char in[] = "GxT / HTTP/1.1\r\n\r\n";
        in[1] = (char)b;
        int rc = parse_guarded(&g, in, sizeof in - 1, NULL, &req, headers);
        if ((rc > 0) != rfc_tchar(b))
            fail_msg("method byte 0x%02x: rc %d", b, rc);
    }
    guard_free(&g);
}

static void test_header_name_accepts_exactly_the_token_bytes(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (int b = 0; b < 256; b++) {
        char in[] = "GET / HTTP/1.1\r\nAxB: v\r\n\r\n";
        in[17] = (char)b;
        int rc = parse_guarded(&g, in, sizeof in - 1, NULL, &req, headers);
        /* "A:B: v" is the field A with the value "B: v". */
        if ((rc > 0) != (rfc_tchar(b) || b == ':'))
            fail_msg("field name byte 0x%02x: rc %d", b, rc);
    }
    guard_free(&g);
}

static void test_header_value_accepts_exactly_vchar_sp_ht_obs_text(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (int b = 0; b < 256; b++) {
        char in[] = "GET / HTTP/1.1\r\nA: axb\r\n\r\n";
        in[20] = (char)b;
        int rc = parse_guarded(&g, in, sizeof in - 1, NULL, &req, headers);
        bool ok = rfc_field_vchar(b) || b == ' ' || b == '\t';
        if ((rc > 0) != ok)
            fail_msg("field value byte 0x%02x: rc %d", b, rc);
        if (ok)
            assert_int_equal(req.headers[0].value_len, 3);
    }
    guard_free(&g);
}

static void test_target_accepts_visible_ascii_and_high_bytes(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    for (int b = 0; b < 256; b++) {
        char in[] = "GET /x HTTP/1.1\r\n\r\n";
        in[5] = (char)b;
        int rc = parse_guarded(&g, in, sizeof in - 1, NULL, &req, headers);
        if ((rc > 0) != rfc_field_vchar(b))
            fail_msg("target byte 0x%02x: rc %d", b, rc);
    }
    guard_free(&g);
}

/* ---- Limits ------------------------------------------------------------- */

/* "GET /aaa…a HTTP/1.1" + ending, exactly line_len bytes with its ending. */
static char *request_line_of(size_t line_len, const char *ending,
                             const char *rest, size_t *out_len)
{
    const char *head = "GET /", *tail = " HTTP/1.1";
    size_t fixed = strlen(head) + strlen(tail) + strlen(ending);
    assert_true(line_len > fixed);
    size_t len = line_len + strlen(rest);
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    char *p = buf;
    p = stpcpy(p, head);
    memset(p, 'a', line_len - fixed);
    p += line_len - fixed;
    p = stpcpy(p, tail);
    p = stpcpy(p, ending);
    strcpy(p, rest);
    *out_len = len;
    return buf;
}

static void
test_request_line_at_the_limit_is_accepted_one_more_is_414(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 2 * 65536 + 64);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    size_t len;

    /* The default limit, 65,536 bytes, counts the line ending (Python). */
    char *in = request_line_of(65536, "\r\n", "\r\n", &len);
    assert_int_equal(parse_guarded(&g, in, len, NULL, &req, headers), (int)len);
    assert_int_equal(req.target_len, 65536 - 15);
    /* Still incomplete one byte before the newline that completes it. */
    assert_int_equal(parse_guarded(&g, in, 65535, NULL, &req, headers),
                     SS_HTTP_INCOMPLETE);
    free(in);

    in = request_line_of(65536, "\n", "\n", &len);
    assert_int_equal(parse_guarded(&g, in, len, NULL, &req, headers), (int)len);
    free(in);

    in = request_line_of(65537, "\r\n", "\r\n", &len);
    assert_int_equal(parse_guarded(&g, in, len, NULL, &req, headers),
                     SS_HTTP_E_REQUEST_LINE_TOO_LONG);
    /* Detected before the line ends: 65,536 bytes and no newline yet. */
    assert_int_equal(parse_guarded(&g, in, 65536, NULL, &req, headers),
                     SS_HTTP_E_REQUEST_LINE_TOO_LONG);
    assert_int_equal(parse_guarded(&g, in, 65535, NULL, &req, headers),
                     SS_HTTP_INCOMPLETE);
    assert_int_equal(ss_http_error_status(SS_HTTP_E_REQUEST_LINE_TOO_LONG),
                     414);
    free(in);

    /* A client that never sends a newline is refused at the limit. */
    char *junk = malloc(65536);
    assert_non_null(junk);
    memset(junk, 'A', 65536);
    assert_int_equal(parse_guarded(&g, junk, 65535, NULL, &req, headers),
                     SS_HTTP_INCOMPLETE);
    assert_int_equal(parse_guarded(&g, junk, 65536, NULL, &req, headers),
                     SS_HTTP_E_REQUEST_LINE_TOO_LONG);
    free(junk);
    guard_free(&g);
}

static void test_request_line_limit_is_configurable(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    ss_http_limits lim = {.max_request_line = 16};

    /* "GET / HTTP/1.1\r\n" is 16 bytes. */
    assert_int_equal(
        parse_guarded(&g, S("GET / HTTP/1.1\r\n\r\n"), &lim, &req, headers),
        18);
    assert_int_equal(
        parse_guarded(&g, S("GET / HTTP/1.1\n\n"), &lim, &req, headers), 16);
    assert_int_equal(
        parse_guarded(&g, S("GET /a HTTP/1.1\r\n\r\n"), &lim, &req, headers),
        SS_HTTP_E_REQUEST_LINE_TOO_LONG);
    assert_int_equal(
        parse_guarded(&g, S("GET /a HTTP/1.1\r"), &lim, &req, headers),
        SS_HTTP_E_REQUEST_LINE_TOO_LONG);
    assert_int_equal(
        parse_guarded(&g, S("GET /a HTTP/1.1"), &lim, &req, headers),
        SS_HTTP_INCOMPLETE);
    /* Bare LF: the 16-byte line "GET /a HTTP/1.1\n" fits. */
    assert_int_equal(
        parse_guarded(&g, S("GET /a HTTP/1.1\n\n"), &lim, &req, headers), 17);

    /* Blank lines before the request line are bounded by the same size. */
    assert_int_equal(parse_guarded(&g, S("\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"),
                                   &lim, &req, headers),
                     SS_HTTP_INCOMPLETE);
    assert_int_equal(parse_guarded(&g, S("\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"),
                                   &lim, &req, headers),
                     SS_HTTP_E_BAD_REQUEST_LINE);
    guard_free(&g);
}

/* A request whose header section is "X: vvv…v" + ending lines. */
static char *request_with_header_line(size_t line_len, size_t *out_len)
{
    const char *head = "GET / HTTP/1.1\r\n";
    size_t value_len = line_len - strlen("X: \r\n");
    size_t len = strlen(head) + line_len + 2;
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    char *p = stpcpy(buf, head);
    p = stpcpy(p, "X: ");
    memset(p, 'v', value_len);
    p += value_len;
    strcpy(p, "\r\n\r\n");
    *out_len = len;
    return buf;
}

static void
test_header_line_at_the_limit_is_accepted_one_more_is_431(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 2 * 65536 + 64);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    /* Python's 65,536 per line; the section bound raised out of the way. */
    ss_http_limits lim = {.max_header_bytes = 1 << 20};
    size_t len;

    char *in = request_with_header_line(65536, &len);
    assert_int_equal(parse_guarded(&g, in, len, &lim, &req, headers), (int)len);
    assert_int_equal(req.headers[0].value_len, 65536 - 5);
    free(in);

    in = request_with_header_line(65537, &len);
    assert_int_equal(parse_guarded(&g, in, len, &lim, &req, headers),
                     SS_HTTP_E_HEADER_LINE_TOO_LONG);
    /* Without the newline: refused once the limit is passed... */
    assert_int_equal(parse_guarded(&g, in, 16 + 65536, &lim, &req, headers),
                     SS_HTTP_E_HEADER_LINE_TOO_LONG);
    /* ...and incomplete until then. */
    assert_int_equal(parse_guarded(&g, in, 16 + 65535, &lim, &req, headers),
                     SS_HTTP_INCOMPLETE);
    assert_int_equal(ss_http_error_status(SS_HTTP_E_HEADER_LINE_TOO_LONG), 431);
    free(in);
    guard_free(&g);
}

static void test_header_section_limit_counts_every_field_line(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 2 * 65536 + 64);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    ss_http_limits lim = {.max_header_bytes = 16};

    /* "A: 1\r\n" "B: 22\r\n" "\r\n" = 6 + 7 + 2 = 15 bytes. */
    assert_int_equal(parse_guarded(&g,
                                   S("GET / HTTP/1.1\r\nA: 1\r\nB: 22\r\n\r\n"),
                                   &lim, &req, headers),
                     31);
    assert_int_equal(
        parse_guarded(&g, S("GET / HTTP/1.1\r\nA: 1\r\nB: 333\r\n\r\n"), &lim,
                      &req, headers),
        32);
    assert_int_equal(
        parse_guarded(&g, S("GET / HTTP/1.1\r\nA: 1\r\nB: 4444\r\n\r\n"), &lim,
                      &req, headers),
        SS_HTTP_E_HEADERS_TOO_LARGE);
    assert_int_equal(parse_guarded(&g,
                                   S("GET / HTTP/1.1\r\nA: 1\r\nB: 333\r\n"),
                                   &lim, &req, headers),
                     SS_HTTP_INCOMPLETE);
    assert_int_equal(parse_guarded(&g,
                                   S("GET / HTTP/1.1\r\nA: 1\r\nB: 333\r\nC: "),
                                   &lim, &req, headers),
                     SS_HTTP_E_HEADERS_TOO_LARGE);

    /* The default: 64 KiB for the whole section. */
    size_t len;
    char *in = request_with_header_line(65534, &len);
    assert_int_equal(parse_guarded(&g, in, len, NULL, &req, headers), (int)len);
    free(in);
    in = request_with_header_line(65535, &len);
    assert_int_equal(parse_guarded(&g, in, len, NULL, &req, headers),
                     SS_HTTP_E_HEADERS_TOO_LARGE);
    free(in);
    guard_free(&g);
}

/* The request line, then n fields "H0: v" … "Hn-1: v", then a blank line. */
static char *request_with_n_headers(size_t n, size_t *out_len)
{
    size_t cap = 32 + n * 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "H%zu: v\r\n", i);
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    *out_len = len;
    return buf;
}

static void test_100_headers_are_accepted_101_is_431(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 8192);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    size_t len;

    char *in = request_with_n_headers(100, &len);
    assert_int_equal(parse_guarded(&g, in, len, NULL, &req, headers), (int)len);
    assert_int_equal(req.header_count, 100);
    assert_slice(req.headers[99].name, req.headers[99].name_len, "H99");
    free(in);

    in = request_with_n_headers(101, &len);
    assert_int_equal(parse_guarded(&g, in, len, NULL, &req, headers),
                     SS_HTTP_E_TOO_MANY_HEADERS);
    assert_int_equal(req.header_count, 100);
    assert_int_equal(ss_http_error_status(SS_HTTP_E_TOO_MANY_HEADERS), 431);
    free(in);

    ss_http_limits lim = {.max_headers = 3};
    in = request_with_n_headers(3, &len);
    assert_int_equal(parse_guarded(&g, in, len, &lim, &req, headers), (int)len);
    free(in);
    in = request_with_n_headers(4, &len);
    assert_int_equal(parse_guarded(&g, in, len, &lim, &req, headers),
                     SS_HTTP_E_TOO_MANY_HEADERS);
    free(in);
    guard_free(&g);
}

static void test_header_array_capacity_bounds_the_count_too(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 8192);
    ss_http_header headers[4];
    ss_http_request req = {.headers = headers, .header_capacity = 4};
    size_t len;

    char *in = request_with_n_headers(4, &len);
    const char *buf = guard_place(&g, in, len);
    assert_int_equal(ss_http_parse_request(buf, len, NULL, &req), (int)len);
    free(in);
    in = request_with_n_headers(5, &len);
    buf = guard_place(&g, in, len);
    assert_int_equal(ss_http_parse_request(buf, len, NULL, &req),
                     SS_HTTP_E_TOO_MANY_HEADERS);
    free(in);

    /* No array at all: requests without fields still parse. */
    ss_http_request bare = {0};
    buf = guard_place(&g, S("GET / HTTP/1.1\r\n\r\n"));
    assert_int_equal(ss_http_parse_request(buf, 18, NULL, &bare), 18);
    buf = guard_place(&g, S("GET / HTTP/1.1\r\nA: b\r\n\r\n"));
    assert_int_equal(ss_http_parse_request(buf, 24, NULL, &bare),
                     SS_HTTP_E_TOO_MANY_HEADERS);
    guard_free(&g);
}

static void test_zero_and_huge_limits_mean_default_and_cap(void **state)
{
    (void)state;
    ss_http_limits lim;
    ss_http_limits_init(&lim);
    assert_int_equal(lim.max_request_line, 65536);
    assert_int_equal(lim.max_header_line, 65536);
    assert_int_equal(lim.max_headers, 100);
    assert_int_equal(lim.max_header_bytes, 65536);

    guard g;
    guard_init(&g, 2 * 65536 + 64);
    ss_http_header headers[MAX_TEST_HEADERS];
    ss_http_request req;
    size_t len;
    char *in = request_line_of(65537, "\r\n", "\r\n", &len);
    ss_http_limits zero = {0};
    assert_int_equal(parse_guarded(&g, in, len, &zero, &req, headers),
                     SS_HTTP_E_REQUEST_LINE_TOO_LONG);
    ss_http_limits huge = {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX};
    assert_int_equal(parse_guarded(&g, in, len, &huge, &req, headers),
                     (int)len);
    free(in);
    guard_free(&g);
}

/* ---- Field helpers ------------------------------------------------------ */

/* Parses "GET / HTTP/1.x\r\n" + fields + "\r\n" into *req (static storage:
 * the slices must outlive the call). */
static void parse_fields(ss_http_request *req, int minor, const char *fields)
{
    static char buf[4096];
    static ss_http_header headers[32];
    int n =
        snprintf(buf, sizeof buf, "GET / HTTP/1.%d\r\n%s\r\n", minor, fields);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    *req = (ss_http_request){.headers = headers, .header_capacity = 32};
    int rc = ss_http_parse_request(buf, (size_t)n, NULL, req);
    if (rc != n)
        fail_msg("fields \"%s\": rc %d (%s)", fields, rc,
                 ss_http_error_reason(rc));
}

static void test_header_find_ignores_ascii_case_only(void **state)
{
    (void)state;
    ss_http_request req;
    parse_fields(&req, 1,
                 "Host: a\r\nHostname: b\r\nCONTENT-type: c\r\nhost: d\r\n");
    const ss_http_header *h = ss_http_header_find(&req, "HOST");
    assert_non_null(h);
    assert_slice(h->value, h->value_len, "a");
    h = ss_http_header_next(&req, "HOST", h);
    assert_non_null(h);
    assert_slice(h->value, h->value_len, "d");
    assert_null(ss_http_header_next(&req, "HOST", h));
    h = ss_http_header_find(&req, "Content-Type");
    assert_non_null(h);
    assert_slice(h->value, h->value_len, "c");
    assert_null(ss_http_header_find(&req, "Hos"));
    assert_null(ss_http_header_find(&req, "Content"));
    assert_null(ss_http_header_find(&req, ""));
}

typedef struct length_case {
    const char *fields;
    int expected;
    uint64_t length;
} length_case;

static void test_content_length_is_parsed_strictly(void **state)
{
    (void)state;
    static const length_case cases[] = {
        {"", 0, 0},
        {"Content-Length: 0\r\n", 1, 0},
        {"Content-Length: 42\r\n", 1, 42},
        {"content-length:42  \r\n", 1, 42},
        {"Content-Length: 007\r\n", 1, 7},
        {"Content-Length: 42, 42\r\n", 1, 42},
        {"Content-Length: 42,42 , 42\r\n", 1, 42},
        {"Content-Length: 42\r\nContent-Length: 42\r\n", 1, 42},
        {"Content-Length: 7\r\nContent-Length: 007\r\n", 1, 7},
        {"Content-Length: 9223372036854775807\r\n", 1, INT64_MAX},
        {"Content-Length: 42\r\nContent-Length: 43\r\n",
         SS_HTTP_E_CONFLICTING_CONTENT_LENGTH, 0},
        {"Content-Length: 42, 43\r\n", SS_HTTP_E_CONFLICTING_CONTENT_LENGTH, 0},
        {"Content-Length: 0\r\nContent-Length: 1\r\n",
         SS_HTTP_E_CONFLICTING_CONTENT_LENGTH, 0},
        {"Content-Length:\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: -1\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: +1\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 4 2\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 0x10\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 1e3\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 42,\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: ,42\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 42;q\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: \"42\"\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 9223372036854775808\r\n",
         SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 18446744073709551616\r\n",
         SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 99999999999999999999999999\r\n",
         SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
        {"Content-Length: 5\r\nContent-Length: x\r\n",
         SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_http_request req;
        parse_fields(&req, 1, cases[i].fields);
        uint64_t length = 12345;
        int rc = ss_http_content_length(&req, &length);
        if (rc != cases[i].expected)
            fail_msg("\"%s\": rc %d, expected %d", cases[i].fields, rc,
                     cases[i].expected);
        assert_int_equal(length, rc == 1 ? cases[i].length : 12345);
    }
}

typedef struct te_case {
    const char *fields;
    int expected;
} te_case;

static void test_transfer_encoding_must_end_with_a_single_chunked(void **state)
{
    (void)state;
    static const te_case cases[] = {
        {"", 0},
        {"Transfer-Encoding: chunked\r\n", 1},
        {"Transfer-Encoding: CHUNKED\r\n", 1},
        {"transfer-encoding:chunked \r\n", 1},
        {"Transfer-Encoding: , chunked,\r\n", 1},
        {"Transfer-Encoding: chunked;x=y\r\n", 1},
        {"Transfer-Encoding: chunked ; x=y\r\n", 1},
        {"Transfer-Encoding: gzip, chunked\r\n",
         SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
         SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING},
        {"Transfer-Encoding: chunked, gzip\r\n",
         SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
         SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: chunked, chunked\r\n",
         SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
         SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: identity\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: gzip\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding:\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: ,\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: chunkedx\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: chunked x\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: \"chunked\"\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING},
        {"Transfer-Encoding: x@y, chunked\r\n",
         SS_HTTP_E_BAD_TRANSFER_ENCODING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_http_request req;
        parse_fields(&req, 1, cases[i].fields);
        int rc = ss_http_transfer_chunked(&req);
        if (rc != cases[i].expected)
            fail_msg("\"%s\": rc %d, expected %d", cases[i].fields, rc,
                     cases[i].expected);
    }
    assert_int_equal(
        ss_http_error_status(SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING), 501);
}

typedef struct framing_case {
    int minor;
    const char *fields;
    int expected;
    uint64_t length;
} framing_case;

static void test_body_framing_refuses_ambiguous_requests(void **state)
{
    (void)state;
    static const framing_case cases[] = {
        {1, "", SS_HTTP_BODY_NONE, 0},
        {0, "", SS_HTTP_BODY_NONE, 0},
        {1, "Content-Length: 10\r\n", SS_HTTP_BODY_LENGTH, 10},
        {0, "Content-Length: 0\r\n", SS_HTTP_BODY_LENGTH, 0},
        {1, "Transfer-Encoding: chunked\r\n", SS_HTTP_BODY_CHUNKED, 0},
        {1, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
         SS_HTTP_E_LENGTH_AND_CHUNKED, 0},
        {1, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
         SS_HTTP_E_LENGTH_AND_CHUNKED, 0},
        {0, "Transfer-Encoding: chunked\r\n",
         SS_HTTP_E_TRANSFER_ENCODING_HTTP10, 0},
        {0, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
         SS_HTTP_E_TRANSFER_ENCODING_HTTP10, 0},
        {1, "Transfer-Encoding: gzip\r\n", SS_HTTP_E_BAD_TRANSFER_ENCODING, 0},
        {1, "Transfer-Encoding: gzip, chunked\r\n",
         SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING, 0},
        {1, "Content-Length: 1\r\nContent-Length: 2\r\n",
         SS_HTTP_E_CONFLICTING_CONTENT_LENGTH, 0},
        {1, "Content-Length: x\r\n", SS_HTTP_E_BAD_CONTENT_LENGTH, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_http_request req;
        parse_fields(&req, cases[i].minor, cases[i].fields);
        uint64_t length = 777;
        int rc = ss_http_body_framing(&req, &length);
        if (rc != cases[i].expected)
            fail_msg("HTTP/1.%d \"%s\": rc %d, expected %d", cases[i].minor,
                     cases[i].fields, rc, cases[i].expected);
        if (rc == SS_HTTP_BODY_LENGTH)
            assert_int_equal(length, cases[i].length);
    }
}

typedef struct connection_case {
    int minor;
    const char *fields;
    bool has_close, has_keep_alive, keep_alive;
} connection_case;

static void test_connection_tokens_decide_keep_alive(void **state)
{
    (void)state;
    static const connection_case cases[] = {
        {1, "", false, false, true},
        {0, "", false, false, false},
        {1, "Connection: close\r\n", true, false, false},
        {1, "Connection: CLOSE\r\n", true, false, false},
        {1, "Connection: Keep-Alive\r\n", false, true, true},
        {0, "Connection: keep-alive\r\n", false, true, true},
        {0, "Connection: keep-alive, close\r\n", true, true, false},
        {1, "Connection: upgrade,close\r\n", true, false, false},
        {1, "Connection: upgrade\r\nConnection:  close \r\n", true, false,
         false},
        {1, "Connection: closed, enclose, keep-alive-ish\r\n", false, false,
         true},
        {0, "Connection: keepalive\r\n", false, false, false},
        {1, "Connection: ,, close ,\r\n", true, false, false},
        {1, "Connection:\r\n", false, false, true},
        {1, "X-Connection: close\r\n", false, false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const connection_case *c = &cases[i];
        ss_http_request req;
        parse_fields(&req, c->minor, c->fields);
        if (ss_http_connection_has(&req, "close") != c->has_close ||
            ss_http_connection_has(&req, "keep-alive") != c->has_keep_alive ||
            ss_http_keep_alive(&req) != c->keep_alive)
            fail_msg("HTTP/1.%d \"%s\"", c->minor, c->fields);
    }
}

typedef struct expect_case {
    int minor;
    const char *fields;
    int expected;
} expect_case;

static void test_expect_100_continue_is_recognised_others_are_417(void **state)
{
    (void)state;
    static const expect_case cases[] = {
        {1, "", 0},
        {1, "Expect: 100-continue\r\n", 1},
        {1, "expect: 100-Continue\r\n", 1},
        {1, "Expect: 100-continue, 100-continue\r\n", 1},
        {0, "Expect: 100-continue\r\n", 0},
        {1, "Expect:\r\n", 0},
        {1, "Expect: 200-ok\r\n", SS_HTTP_E_EXPECTATION_FAILED},
        {1, "Expect: 100-continue, foo\r\n", SS_HTTP_E_EXPECTATION_FAILED},
        {1, "Expect: 100-continued\r\n", SS_HTTP_E_EXPECTATION_FAILED},
        {0, "Expect: foo\r\n", SS_HTTP_E_EXPECTATION_FAILED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_http_request req;
        parse_fields(&req, cases[i].minor, cases[i].fields);
        int rc = ss_http_expect_continue(&req);
        if (rc != cases[i].expected)
            fail_msg("HTTP/1.%d \"%s\": rc %d", cases[i].minor, cases[i].fields,
                     rc);
    }
    assert_int_equal(ss_http_error_status(SS_HTTP_E_EXPECTATION_FAILED), 417);
}

/* ---- Error values -------------------------------------------------------- */

static void test_every_error_maps_to_its_status_and_a_reason(void **state)
{
    (void)state;
    static const struct {
        int rc, status;
    } errors[] = {
        {SS_HTTP_E_BAD_REQUEST_LINE, 400},
        {SS_HTTP_E_BAD_METHOD, 400},
        {SS_HTTP_E_BAD_TARGET, 400},
        {SS_HTTP_E_BAD_VERSION, 400},
        {SS_HTTP_E_MISSING_VERSION, 400},
        {SS_HTTP_E_BAD_LINE_ENDING, 400},
        {SS_HTTP_E_BAD_HEADER_NAME, 400},
        {SS_HTTP_E_EMPTY_HEADER_NAME, 400},
        {SS_HTTP_E_SPACE_BEFORE_COLON, 400},
        {SS_HTTP_E_MISSING_COLON, 400},
        {SS_HTTP_E_OBS_FOLD, 400},
        {SS_HTTP_E_BAD_HEADER_VALUE, 400},
        {SS_HTTP_E_BAD_CONTENT_LENGTH, 400},
        {SS_HTTP_E_CONFLICTING_CONTENT_LENGTH, 400},
        {SS_HTTP_E_BAD_TRANSFER_ENCODING, 400},
        {SS_HTTP_E_LENGTH_AND_CHUNKED, 400},
        {SS_HTTP_E_TRANSFER_ENCODING_HTTP10, 400},
        {SS_HTTP_E_BAD_CHUNK_SIZE, 400},
        {SS_HTTP_E_CHUNK_SIZE_OVERFLOW, 400},
        {SS_HTTP_E_CHUNK_LINE_TOO_LONG, 400},
        {SS_HTTP_E_MISSING_CHUNK_CRLF, 400},
        {SS_HTTP_E_BAD_TRAILER, 400},
        {SS_HTTP_E_BODY_TOO_LARGE, 413},
        {SS_HTTP_E_REQUEST_LINE_TOO_LONG, 414},
        {SS_HTTP_E_EXPECTATION_FAILED, 417},
        {SS_HTTP_E_HEADER_LINE_TOO_LONG, 431},
        {SS_HTTP_E_TOO_MANY_HEADERS, 431},
        {SS_HTTP_E_HEADERS_TOO_LARGE, 431},
        {SS_HTTP_E_TRAILERS_TOO_LARGE, 431},
        {SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING, 501},
        {SS_HTTP_E_VERSION_NOT_SUPPORTED, 505},
    };
    const size_t n = sizeof errors / sizeof errors[0];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ss_http_error_status(errors[i].rc), errors[i].status);
        const char *reason = ss_http_error_reason(errors[i].rc);
        assert_non_null(reason);
        assert_true(strlen(reason) > 5);
        assert_string_not_equal(reason, "not an HTTP parser error");
        assert_true(errors[i].rc < -4095); /* never an errno value */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(reason, ss_http_error_reason(errors[j].rc));
    }
    assert_string_equal(ss_http_error_reason(SS_HTTP_E_REQUEST_LINE_TOO_LONG),
                        "request line too long");
    static const int not_errors[] = {
        SS_HTTP_INCOMPLETE, 0, 1, 400, -EINVAL, -4095, -40000, -40099, -99999};
    for (size_t i = 0; i < sizeof not_errors / sizeof not_errors[0]; i++)
        assert_int_equal(ss_http_error_status(not_errors[i]), 0);
    assert_string_equal(ss_http_error_reason(-EINVAL),
                        "not an HTTP parser error");
    assert_string_equal(ss_http_error_reason(SS_HTTP_INCOMPLETE),
                        "incomplete request");
}

/* ---- Chunked decoder ------------------------------------------------------
 */

typedef struct chunked_case {
    const char *input;
    size_t len;
    const char *data; /* decoded body */
    size_t data_len;
    size_t leftover; /* bytes after the body, left untouched */
} chunked_case;

static const chunked_case chunked_cases[] = {
    {S("0\r\n\r\n"), S(""), 0},
    {S("5\r\nhello\r\n0\r\n\r\n"), S("hello"), 0},
    {S("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), S("hello world"), 0},
    {S("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"),
     S("0123456789abcdefghij"), 0},
    {S("0005\r\nhello\r\n000\r\n\r\n"), S("hello"), 0},
    /* Extensions are skipped, with or without whitespace before ";". */
    {S("5;name=value\r\nhello\r\n0;last\r\n\r\n"), S("hello"), 0},
    {S("5 ;a=\"q;\\\" x\"\r\nhello\r\n0\t\r\n\r\n"), S("hello"), 0},
    /* Trailer fields are dropped. */
    {S("3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: a\tb\r\n\r\n"), S("abc"), 0},
    /* Data is opaque: CR, LF and NUL inside are data. */
    {S("6\r\n\r\n\x00\r0\n\r\n0\r\n\r\n"), S("\r\n\x00\r0\n"), 0},
    /* What follows the body is the next request, untouched. */
    {S("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), S("hi"), 18},
    {S("0\r\n\r\n0\r\n\r\n"), S(""), 5},
};

/* Decodes input fed as the given pieces (each placed at a page end, so the
 * decoder's reads and in-place writes are both fenced), collecting data. */
static int decode_pieces(guard *g, const char *input, size_t len,
                         const size_t *cuts, size_t ncuts, char *out,
                         size_t *out_len, size_t *total_consumed)
{
    ss_http_chunked_decoder dec;
    ss_http_chunked_init(&dec);
    size_t start = 0;
    *out_len = *total_consumed = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t stop = i < ncuts ? cuts[i] : len;
        size_t n = stop - start, consumed = 99999;
        char *buf = guard_place(g, input + start, n);
        int rc = ss_http_chunked_decode(&dec, buf, &n, &consumed);
        assert_true(n <= stop - start);
        assert_true(consumed <= stop - start);
        memcpy(out + *out_len, buf, n);
        *out_len += n;
        *total_consumed += consumed;
        assert_int_equal(dec.body_bytes, *out_len);
        if (rc != SS_HTTP_INCOMPLETE) {
            if (rc == 0) /* the rest of this piece is untouched */
                assert_memory_equal(buf + consumed, input + start + consumed,
                                    stop - start - consumed);
            return rc;
        }
        assert_int_equal(consumed, stop - start);
        start = stop;
    }
    return SS_HTTP_INCOMPLETE;
}

static void check_chunked(const chunked_case *c, int rc, const char *out,
                          size_t out_len, size_t consumed, const char *how)
{
    if (rc != 0)
        fail_msg("\"%s\" (%s): rc %d (%s)", c->input, how, rc,
                 ss_http_error_reason(rc));
    assert_int_equal(out_len, c->data_len);
    assert_memory_equal(out, c->data, c->data_len);
    assert_int_equal(consumed, c->len - c->leftover);
}

static void test_chunked_bodies_decode_in_one_call(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    char out[256];
    size_t out_len, consumed;
    for (size_t i = 0; i < sizeof chunked_cases / sizeof chunked_cases[0];
         i++) {
        const chunked_case *c = &chunked_cases[i];
        int rc = decode_pieces(&g, c->input, c->len, NULL, 0, out, &out_len,
                               &consumed);
        check_chunked(c, rc, out, out_len, consumed, "whole");
    }
    guard_free(&g);
}

static void test_chunked_bodies_decode_split_at_every_byte(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    char out[256];
    size_t out_len, consumed;
    for (size_t i = 0; i < sizeof chunked_cases / sizeof chunked_cases[0];
         i++) {
        const chunked_case *c = &chunked_cases[i];
        size_t body_end = c->len - c->leftover;
        /* Two pieces, cut everywhere (the first may end the body). */
        for (size_t cut = 0; cut <= c->len; cut++) {
            int rc = decode_pieces(&g, c->input, c->len, &cut, 1, out, &out_len,
                                   &consumed);
            char how[32];
            snprintf(how, sizeof how, "cut at %zu", cut);
            check_chunked(c, rc, out, out_len, consumed, how);
        }
        /* One byte per call. */
        size_t cuts[256];
        for (size_t k = 0; k < body_end; k++)
            cuts[k] = k + 1;
        int rc = decode_pieces(&g, c->input, c->len, cuts, body_end, out,
                               &out_len, &consumed);
        check_chunked(c, rc, out, out_len, consumed, "byte by byte");
    }
    guard_free(&g);
}

static void test_chunked_prefix_of_a_body_is_incomplete(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 4096);
    char out[256];
    size_t out_len, consumed;
    for (size_t i = 0; i < sizeof chunked_cases / sizeof chunked_cases[0];
         i++) {
        const chunked_case *c = &chunked_cases[i];
        for (size_t n = 0; n < c->len - c->leftover; n++)
            assert_int_equal(decode_pieces(&g, c->input, n, NULL, 0, out,
                                           &out_len, &consumed),
                             SS_HTTP_INCOMPLETE);
    }
    guard_free(&g);
}

typedef struct chunked_error_case {
    const char *input;
    size_t len;
    int expected;
} chunked_error_case;

static void test_malformed_chunked_bodies_get_their_exact_error(void **state)
{
    (void)state;
    static const chunked_error_case cases[] = {
        {S("\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("g\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("-1\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("+1\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S(" 5\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("0x5\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5\rx"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5x\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5 x\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5;a\nb\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5;\x01\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5;\x7f\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("5\r\nhello\r\nz\r\n"), SS_HTTP_E_BAD_CHUNK_SIZE},
        {S("10000000000000000\r\n"), SS_HTTP_E_CHUNK_SIZE_OVERFLOW},
        {S("5\r\nhelloX"), SS_HTTP_E_MISSING_CHUNK_CRLF},
        {S("5\r\nhello\rX"), SS_HTTP_E_MISSING_CHUNK_CRLF},
        {S("5\r\nhello\n0\r\n\r\n"), SS_HTTP_E_MISSING_CHUNK_CRLF},
        {S("5\r\nhello!\r\n"), SS_HTTP_E_MISSING_CHUNK_CRLF},
        {S("0\r\nX: a\n\r\n"), SS_HTTP_E_BAD_TRAILER},
        {S("0\r\n a\r\n\r\n"), SS_HTTP_E_BAD_TRAILER},
        {S("0\r\nX\x01: a\r\n\r\n"), SS_HTTP_E_BAD_TRAILER},
        {S("0\r\nX: \x00\r\n\r\n"), SS_HTTP_E_BAD_TRAILER},
        {S("0\r\n\rX"), SS_HTTP_E_BAD_TRAILER},
        {S("0\r\n\n"), SS_HTTP_E_BAD_TRAILER},
    };
    guard g;
    guard_init(&g, 4096);
    char out[256];
    size_t out_len, consumed;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = decode_pieces(&g, cases[i].input, cases[i].len, NULL, 0, out,
                               &out_len, &consumed);
        if (rc != cases[i].expected)
            fail_msg("case %zu: rc %d (%s), expected %d", i, rc,
                     ss_http_error_reason(rc), cases[i].expected);
        assert_int_equal(ss_http_error_status(rc), 400);
        /* The same error however the input is split. */
        for (size_t cut = 0; cut <= cases[i].len; cut++)
            assert_int_equal(decode_pieces(&g, cases[i].input, cases[i].len,
                                           &cut, 1, out, &out_len, &consumed),
                             cases[i].expected);
    }
    guard_free(&g);
}

static void test_chunked_largest_size_is_accepted(void **state)
{
    (void)state;
    ss_http_chunked_decoder dec = {0}; /* zeroed works as well as init */
    char buf[] = "ffffffffFFFFFFFF\r\nabc";
    size_t len = sizeof buf - 1, consumed;
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                     SS_HTTP_INCOMPLETE);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(dec.body_bytes, 3);
}

static void test_chunked_limits_on_lines_trailers_and_body(void **state)
{
    (void)state;
    ss_http_chunked_decoder dec;
    char buf[8192];
    size_t len, consumed;

    /* Size line exactly 4,096 bytes with its CRLF: fine; one more: not. */
    for (size_t line = 4096; line <= 4097; line++) {
        ss_http_chunked_init(&dec);
        memset(buf, 'x', sizeof buf);
        memcpy(buf, "1;", 2);
        memcpy(buf + line - 2, "\r\nA\r\n0\r\n\r\n", 10);
        len = line + 8;
        int rc = ss_http_chunked_decode(&dec, buf, &len, &consumed);
        assert_int_equal(rc, line == 4096 ? 0 : SS_HTTP_E_CHUNK_LINE_TOO_LONG);
    }
    /* Endless leading zeros are a too-long line, not a loop. */
    ss_http_chunked_init(&dec);
    memset(buf, '0', sizeof buf);
    len = sizeof buf;
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                     SS_HTTP_E_CHUNK_LINE_TOO_LONG);
    assert_int_equal(consumed, 4097);

    /* The line limit restarts with each size line. */
    ss_http_chunked_init(&dec);
    dec.max_chunk_line = 5;
    strcpy(buf, "001\r\na\r\n001\r\nb\r\n000\r\n\r\n");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed), 0);
    assert_int_equal(len, 2);
    ss_http_chunked_init(&dec);
    dec.max_chunk_line = 5;
    strcpy(buf, "0001\r\na\r\n");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                     SS_HTTP_E_CHUNK_LINE_TOO_LONG);

    /* Trailers: "X: 1\r\n" + "\r\n" = 8 bytes. */
    for (size_t max = 7; max <= 8; max++) {
        ss_http_chunked_init(&dec);
        dec.max_trailer_bytes = max;
        strcpy(buf, "0\r\nX: 1\r\n\r\n");
        len = strlen(buf);
        assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                         max == 8 ? 0 : SS_HTTP_E_TRAILERS_TOO_LARGE);
    }

    /* Body: exactly the maximum passes; a chunk that would pass it is
     * refused as soon as its size is read, before its data arrives. */
    ss_http_chunked_init(&dec);
    dec.max_body_bytes = 8;
    strcpy(buf, "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed), 0);
    assert_int_equal(dec.body_bytes, 8);

    ss_http_chunked_init(&dec);
    dec.max_body_bytes = 8;
    strcpy(buf, "5\r\nhello\r\n4\r\n");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                     SS_HTTP_E_BODY_TOO_LARGE);
    assert_int_equal(len, 5); /* what was decoded before it */
    assert_int_equal(ss_http_error_status(SS_HTTP_E_BODY_TOO_LARGE), 413);

    ss_http_chunked_init(&dec);
    dec.max_body_bytes = 1000;
    strcpy(buf, "ffffffffffffffff\r\n");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                     SS_HTTP_E_BODY_TOO_LARGE);
}

static void test_chunked_decoder_stays_done_or_failed(void **state)
{
    (void)state;
    ss_http_chunked_decoder dec;
    ss_http_chunked_init(&dec);
    char buf[64];
    size_t len, consumed;

    strcpy(buf, "1\r\na\r\n0\r\n\r\nNEXT");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed), 0);
    assert_int_equal(consumed, 11);
    assert_memory_equal(buf + consumed, "NEXT", 4);
    strcpy(buf, "5\r\nhello\r\n");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed), 0);
    assert_int_equal(len, 0);
    assert_int_equal(consumed, 0);

    ss_http_chunked_init(&dec);
    strcpy(buf, "zz");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                     SS_HTTP_E_BAD_CHUNK_SIZE);
    strcpy(buf, "0\r\n\r\n");
    len = strlen(buf);
    assert_int_equal(ss_http_chunked_decode(&dec, buf, &len, &consumed),
                     SS_HTTP_E_BAD_CHUNK_SIZE);
    assert_int_equal(len, 0);
    assert_int_equal(consumed, 0);
}

static void test_chunked_hex_digits_are_exactly_0_9_a_f(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        ss_http_chunked_decoder dec = {0};
        char buf[4] = {(char)b, '\r', '\n', 0};
        size_t len = 3, consumed;
        int rc = ss_http_chunked_decode(&dec, buf, &len, &consumed);
        bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') ||
                   (b >= 'A' && b <= 'F');
        assert_int_equal(rc,
                         hex ? SS_HTTP_INCOMPLETE : SS_HTTP_E_BAD_CHUNK_SIZE);
    }
}

/* ---- The harness itself -------------------------------------------------- */

/* Proves the guard page is real: reading one byte past a placed buffer
 * kills the reader (SIGSEGV, or ASan's report and exit under sanitizers). */
static void test_guard_page_catches_reads_past_the_buffer(void **state)
{
    (void)state;
    guard g;
    guard_init(&g, 16);
    volatile const char *p = guard_place(&g, "abc", 3);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The crash is the expected outcome: die of it (cmocka's handler
         * would turn it into a failed test and run the rest of the suite
         * in this child), and keep any sanitizer report out of the log. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        int null_fd = open("/dev/null", O_WRONLY);
        if (null_fd >= 0)
            dup2(null_fd, STDERR_FILENO);
        char c = p[3];
        (void)c;
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status))
        assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
    guard_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_page_catches_reads_past_the_buffer),
        cmocka_unit_test(test_valid_requests_parse_to_their_parts),
        cmocka_unit_test(test_every_prefix_of_a_valid_request_is_incomplete),
        cmocka_unit_test(test_empty_buffer_is_incomplete),
        cmocka_unit_test(test_pipelined_requests_are_consumed_one_at_a_time),
        cmocka_unit_test(test_malformed_requests_get_their_exact_error),
        cmocka_unit_test(
            test_malformed_request_prefixes_are_incomplete_then_error),
        cmocka_unit_test(
            test_refused_request_keeps_its_request_line_for_the_log),
        cmocka_unit_test(test_method_accepts_exactly_the_token_bytes),
        cmocka_unit_test(test_header_name_accepts_exactly_the_token_bytes),
        cmocka_unit_test(
            test_header_value_accepts_exactly_vchar_sp_ht_obs_text),
        cmocka_unit_test(test_target_accepts_visible_ascii_and_high_bytes),
        cmocka_unit_test(
            test_request_line_at_the_limit_is_accepted_one_more_is_414),
        cmocka_unit_test(test_request_line_limit_is_configurable),
        cmocka_unit_test(
            test_header_line_at_the_limit_is_accepted_one_more_is_431),
        cmocka_unit_test(test_header_section_limit_counts_every_field_line),
        cmocka_unit_test(test_100_headers_are_accepted_101_is_431),
        cmocka_unit_test(test_header_array_capacity_bounds_the_count_too),
        cmocka_unit_test(test_zero_and_huge_limits_mean_default_and_cap),
        cmocka_unit_test(test_header_find_ignores_ascii_case_only),
        cmocka_unit_test(test_content_length_is_parsed_strictly),
        cmocka_unit_test(test_transfer_encoding_must_end_with_a_single_chunked),
        cmocka_unit_test(test_body_framing_refuses_ambiguous_requests),
        cmocka_unit_test(test_connection_tokens_decide_keep_alive),
        cmocka_unit_test(test_expect_100_continue_is_recognised_others_are_417),
        cmocka_unit_test(test_every_error_maps_to_its_status_and_a_reason),
        cmocka_unit_test(test_chunked_bodies_decode_in_one_call),
        cmocka_unit_test(test_chunked_bodies_decode_split_at_every_byte),
        cmocka_unit_test(test_chunked_prefix_of_a_body_is_incomplete),
        cmocka_unit_test(test_malformed_chunked_bodies_get_their_exact_error),
        cmocka_unit_test(test_chunked_largest_size_is_accepted),
        cmocka_unit_test(test_chunked_limits_on_lines_trailers_and_body),
        cmocka_unit_test(test_chunked_decoder_stays_done_or_failed),
        cmocka_unit_test(test_chunked_hex_digits_are_exactly_0_9_a_f),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
