/*
 * fuzz_http_parser.c — libFuzzer target for the HTTP request parser, its
 * field helpers and the chunked decoder (lib/http_parser.c).
 *
 * Beyond "does not crash under ASan/UBSan", each input checks properties
 * the API promises, and aborts when one fails:
 *  - a complete parse consumes at most the input, every slice lies inside
 *    the consumed bytes, names are tokens, values carry no CR/LF and no
 *    surrounding whitespace;
 *  - the parser is stateless and prefix-consistent: one byte less than a
 *    complete request is SS_HTTP_INCOMPLETE, more bytes change nothing;
 *  - every negative result other than SS_HTTP_INCOMPLETE has a status;
 *  - the chunked decoder gives the same data, consumed count and result
 *    whether the input arrives at once, in two pieces or byte by byte.
 *
 * Build with clang and -DSOCKSERV_BUILD_FUZZ=ON (see tests/fuzz/CMakeLists.txt
 * and docs/http-parser.md). Linked with replay_main.c instead of libFuzzer,
 * it replays files, so the corpus runs as a regression test with any
 * compiler.
 */
#include <sockserv/http_parser.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#define MAX_HEADERS 128

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

static int parse(const char *buf, size_t len, const ss_http_limits *lim,
                 ss_http_request *req, ss_http_header *headers)
{
    *req =
        (ss_http_request){.headers = headers, .header_capacity = MAX_HEADERS};
    return ss_http_parse_request(buf, len, lim, req);
}

static void check_request(const char *buf, size_t len,
                          const ss_http_limits *lim)
{
    ss_http_header headers[MAX_HEADERS], again_headers[MAX_HEADERS];
    ss_http_request req, again;
    int rc = parse(buf, len, lim, &req, headers);

    if (rc < 0) {
        CHECK(rc == SS_HTTP_INCOMPLETE || ss_http_error_status(rc) != 0);
        CHECK(req.header_count <= MAX_HEADERS);
        return;
    }
    CHECK(rc > 0 && (size_t)rc <= len);
    size_t used = (size_t)rc;
    CHECK(req.version_major == 1);
    CHECK(req.method_len > 0 && inside(req.method, req.method_len, buf, used));
    CHECK(req.target_len > 0 && inside(req.target, req.target_len, buf, used));
    CHECK(inside(req.request_line, req.request_line_len, buf, used));
    for (size_t i = 0; i < req.method_len; i++)
        CHECK(is_tchar((unsigned char)req.method[i]));
    CHECK(req.header_count <= MAX_HEADERS);
    for (size_t i = 0; i < req.header_count; i++) {
        const ss_http_header *h = &req.headers[i];
        CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, used));
        CHECK(inside(h->value, h->value_len, buf, used));
        for (size_t k = 0; k < h->name_len; k++)
            CHECK(is_tchar((unsigned char)h->name[k]));
        for (size_t k = 0; k < h->value_len; k++)
            CHECK(h->value[k] != '\r' && h->value[k] != '\n' &&
                  h->value[k] != '\0');
        if (h->value_len) {
            CHECK(h->value[0] != ' ' && h->value[0] != '\t');
            CHECK(h->value[h->value_len - 1] != ' ' &&
                  h->value[h->value_len - 1] != '\t');
        }
    }

    /* Stateless and prefix-consistent. */
    CHECK(parse(buf, used - 1, lim, &again, again_headers) ==
          SS_HTTP_INCOMPLETE);
    CHECK(parse(buf, len, lim, &again, again_headers) == rc);
    CHECK(again.header_count == req.header_count);

    /* The helpers read only what the parser produced. */
    uint64_t length = 0;
    int framing = ss_http_body_framing(&req, &length);
    CHECK(framing >= 0 || ss_http_error_status(framing) != 0);
    int cl = ss_http_content_length(&req, &length);
    CHECK(cl == 0 || cl == 1 || ss_http_error_status(cl) == 400);
    int te = ss_http_transfer_chunked(&req);
    CHECK(te == 0 || te == 1 || ss_http_error_status(te) != 0);
    int expect = ss_http_expect_continue(&req);
    CHECK(expect == 0 || expect == 1 || expect == SS_HTTP_E_EXPECTATION_FAILED);
    (void)ss_http_keep_alive(&req);
    (void)ss_http_connection_has(&req, "upgrade");
    (void)ss_http_header_find(&req, "host");
}

/* One decode of input[0..len) as the given pieces, into out. */
typedef struct decoded {
    int rc;
    size_t data_len;
    size_t consumed;
} decoded;

static decoded decode(const char *input, size_t len, size_t piece, char *out,
                      uint64_t max_body)
{
    ss_http_chunked_decoder dec;
    ss_http_chunked_init(&dec);
    dec.max_body_bytes = max_body;
    decoded d = {SS_HTTP_INCOMPLETE, 0, 0};
    char *buf = malloc(piece ? piece : 1);
    CHECK(buf);
    for (size_t start = 0; start < len && d.rc == SS_HTTP_INCOMPLETE;) {
        size_t n = len - start < piece ? len - start : piece;
        memcpy(buf, input + start, n);
        size_t got = n, consumed = 0;
        d.rc = ss_http_chunked_decode(&dec, buf, &got, &consumed);
        CHECK(got <= consumed && consumed <= n);
        if (d.rc == SS_HTTP_INCOMPLETE)
            CHECK(consumed == n);
        else if (d.rc == 0) /* what follows the body is untouched */
            CHECK(memcmp(buf + consumed, input + start + consumed,
                         n - consumed) == 0);
        else
            CHECK(ss_http_error_status(d.rc) != 0);
        memcpy(out + d.data_len, buf, got);
        d.data_len += got;
        d.consumed += consumed;
        CHECK(dec.body_bytes == d.data_len);
        start += n;
    }
    free(buf);
    return d;
}

static void check_chunked(const char *input, size_t len, uint64_t max_body)
{
    char *whole = malloc(len + 1), *split = malloc(len + 1);
    CHECK(whole && split);
    decoded a = decode(input, len, len, whole, max_body);
    size_t pieces[] = {1, 2, 7, len / 2 + 1};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        if (pieces[i] == 1 && len > 4096)
            continue; /* byte by byte is slow on big inputs */
        decoded b = decode(input, len, pieces[i], split, max_body);
        CHECK(a.rc == b.rc);
        CHECK(a.data_len == b.data_len);
        CHECK(memcmp(whole, split, a.data_len) == 0);
        /* On errors the decoder may stop at different points of a piece. */
        if (a.rc >= SS_HTTP_INCOMPLETE)
            CHECK(a.consumed == b.consumed);
    }
    free(whole);
    free(split);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly sized heap copy: ASan flags any read past it. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);

    static const ss_http_limits tight = {.max_request_line = 40,
                                         .max_header_line = 24,
                                         .max_headers = 4,
                                         .max_header_bytes = 64};
    check_request(buf, size, NULL);
    check_request(buf, size, &tight);

    /* A complete request's body, if chunked, through the decoder; and the
     * whole input as a chunked body too, so the fuzzer reaches the decoder
     * without first having to build a request. */
    ss_http_header headers[MAX_HEADERS];
    ss_http_request req;
    int rc = parse(buf, size, NULL, &req, headers);
    uint64_t length;
    if (rc > 0 && ss_http_body_framing(&req, &length) == SS_HTTP_BODY_CHUNKED)
        check_chunked(buf + rc, size - (size_t)rc, 0);
    check_chunked(buf, size, 0);
    check_chunked(buf, size, 16);

    free(buf);
    return 0;
}
