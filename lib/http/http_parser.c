/*
 * http_parser.c — the HTTP/1.1 request parser (one stateless, allocation-
 * free pass over the caller's buffer, limits enforced before a line ends),
 * the field helpers that decide body framing, and the chunked body decoder
 * (include/sockserv/http_parser.h). Guide: docs/http-parser.md.
 */
#include <limits.h>
#include <string.h>

#include "http_internal.h" /* ss__http_token_length */
#include "sockserv/http_parser.h"

/* ---- Character classes ------------------------------------------------- */

enum {
    C_TCHAR = 1,  /* RFC 9110 token character: method, field name */
    C_TARGET = 2, /* request target: visible ASCII and bytes >= 0x80 */
    C_VALUE = 4,  /* field value: HT, SP, visible ASCII, bytes >= 0x80 */
    C_HEX = 8,    /* hexadecimal digit */
};

/* Generated from the RFC 9110 definitions; tests/test_http_parser.c checks
 * every byte against them. */
/* clang-format off */
static const unsigned char char_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0,  /* 00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 10 */
    4,  7,  6,  7,  7,  7,  7,  7,  6,  6,  7,  7,  6,  7,  7,  6,  /* 20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  6,  6,  6,  6,  6,  /* 30 */
    6,  15, 15, 15, 15, 15, 15, 7,  7,  7,  7,  7,  7,  7,  7,  7,  /* 40 */
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  6,  6,  6,  7,  7,  /* 50 */
    7,  15, 15, 15, 15, 15, 15, 7,  7,  7,  7,  7,  7,  7,  7,  7,  /* 60 */
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  6,  7,  6,  7,  0,  /* 70 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 80 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 90 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* a0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* b0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* c0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* d0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* e0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* f0 */
};
/* clang-format on */

size_t ss__http_token_length(const char *s)
{
    size_t n = 0;
    while (char_class[(unsigned char)s[n]] & C_TCHAR) /* NUL is not one */
        n++;
    return n;
}

static inline unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool ascii_case_equal(const char *a, size_t a_len, const char *b,
                             size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (ascii_lower((unsigned char)a[i]) !=
            ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}

static inline bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* ---- Errors ------------------------------------------------------------ */

static const struct {
    int code;
    const char *reason;
} error_table[] = {
    {SS_HTTP_INCOMPLETE, "incomplete request"},
    {SS_HTTP_E_BAD_REQUEST_LINE, "malformed request line"},
    {SS_HTTP_E_BAD_METHOD, "invalid character in method"},
    {SS_HTTP_E_BAD_TARGET, "invalid character in request target"},
    {SS_HTTP_E_BAD_VERSION, "malformed HTTP version"},
    {SS_HTTP_E_MISSING_VERSION, "request line without HTTP version"},
    {SS_HTTP_E_BAD_LINE_ENDING, "CR not followed by LF"},
    {SS_HTTP_E_BAD_HEADER_NAME, "invalid character in header name"},
    {SS_HTTP_E_EMPTY_HEADER_NAME, "empty header name"},
    {SS_HTTP_E_SPACE_BEFORE_COLON, "whitespace between header name and colon"},
    {SS_HTTP_E_MISSING_COLON, "header line without colon"},
    {SS_HTTP_E_OBS_FOLD, "header line starts with whitespace (line folding)"},
    {SS_HTTP_E_BAD_HEADER_VALUE, "control character in header value"},
    {SS_HTTP_E_BAD_CONTENT_LENGTH, "invalid Content-Length"},
    {SS_HTTP_E_CONFLICTING_CONTENT_LENGTH, "conflicting Content-Length values"},
    {SS_HTTP_E_BAD_TRANSFER_ENCODING,
     "invalid Transfer-Encoding (chunked must be last, once)"},
    {SS_HTTP_E_LENGTH_AND_CHUNKED, "both Content-Length and Transfer-Encoding"},
    {SS_HTTP_E_TRANSFER_ENCODING_HTTP10,
     "Transfer-Encoding in an HTTP/1.0 request"},
    {SS_HTTP_E_BAD_CHUNK_SIZE, "malformed chunk size line"},
    {SS_HTTP_E_CHUNK_SIZE_OVERFLOW, "chunk size too large"},
    {SS_HTTP_E_CHUNK_LINE_TOO_LONG, "chunk size line too long"},
    {SS_HTTP_E_MISSING_CHUNK_CRLF, "chunk data not followed by CRLF"},
    {SS_HTTP_E_BAD_TRAILER, "malformed trailer field"},
    {SS_HTTP_E_BODY_TOO_LARGE, "request body too large"},
    {SS_HTTP_E_REQUEST_LINE_TOO_LONG, "request line too long"},
    {SS_HTTP_E_EXPECTATION_FAILED, "unsupported expectation"},
    {SS_HTTP_E_HEADER_LINE_TOO_LONG, "header line too long"},
    {SS_HTTP_E_TOO_MANY_HEADERS, "too many headers"},
    {SS_HTTP_E_HEADERS_TOO_LARGE, "header section too large"},
    {SS_HTTP_E_TRAILERS_TOO_LARGE, "trailer section too large"},
    {SS_HTTP_E_UNSUPPORTED_MEDIA_TYPE, "form body of another media type"},
    {SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING, "unsupported transfer coding"},
    {SS_HTTP_E_VERSION_NOT_SUPPORTED, "unsupported HTTP version"},
};

static int error_index(int rc)
{
    for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++)
        if (error_table[i].code == rc)
            return (int)i;
    return -1;
}

int ss_http_error_status(int rc)
{
    /* The status is encoded in the value; the table check keeps arbitrary
     * negative numbers (errno values, typos) from mapping to a status. */
    if (rc == SS_HTTP_INCOMPLETE || error_index(rc) < 0)
        return 0;
    return -rc / 100;
}

const char *ss_http_error_reason(int rc)
{
    int i = error_index(rc);
    return i < 0 ? "not an HTTP parser error" : error_table[i].reason;
}

/* ---- Limits ------------------------------------------------------------ */

void ss_http_limits_init(ss_http_limits *limits)
{
    limits->max_request_line = SS_HTTP_DEFAULT_MAX_REQUEST_LINE;
    limits->max_header_line = SS_HTTP_DEFAULT_MAX_HEADER_LINE;
    limits->max_headers = SS_HTTP_DEFAULT_MAX_HEADERS;
    limits->max_header_bytes = SS_HTTP_DEFAULT_MAX_HEADER_BYTES;
}

/* 0 → the default; above the cap → the cap. With every size at most
 * SS_HTTP_LIMIT_CAP, skipped blank lines + request line + header section
 * stay below 3 × 2^28 < INT_MAX, so the parser's count fits its int. */
static size_t effective_limit(size_t value, size_t fallback)
{
    if (value == 0)
        return fallback;
    return value > SS_HTTP_LIMIT_CAP ? SS_HTTP_LIMIT_CAP : value;
}

/* ---- The request parser ------------------------------------------------ */

/* Leaving the scan window: the line is too long if its limit ended the
 * window, otherwise the data ran out. */
#define OUT_OF_WINDOW(cut, too_long) ((cut) ? (too_long) : SS_HTTP_INCOMPLETE)

/* Parses "1*DIGIT" at *pp (at most 10 digits, Python's bound) into *value,
 * saturating at INT_MAX. Returns 1 when a non-digit follows inside the
 * window, 0 when the window ends first, or SS_HTTP_E_BAD_VERSION. */
static int parse_version_number(const unsigned char **pp,
                                const unsigned char *wend, int *value)
{
    const unsigned char *p = *pp, *start = p;
    uint64_t v = 0;
    while (p < wend && *p >= '0' && *p <= '9') {
        if (p - start == 10)
            return SS_HTTP_E_BAD_VERSION;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *pp = p;
    if (p == wend)
        return 0;
    if (p == start)
        return SS_HTTP_E_BAD_VERSION;
    *value = v > INT_MAX ? INT_MAX : (int)v;
    return 1;
}

/* The request line at *pp, inside buf's remaining avail bytes. On success
 * fills req's request-line fields and advances *pp past the line ending. */
static int parse_request_line(const unsigned char **pp,
                              const unsigned char *end, size_t max_line,
                              ss_http_request *req)
{
    const unsigned char *p = *pp, *line = p;
    size_t avail = (size_t)(end - p);
    bool cut = avail >= max_line;
    const unsigned char *wend = cut ? p + max_line : end;
    const int too_long = SS_HTTP_E_REQUEST_LINE_TOO_LONG;

    /* Method: a token, then exactly one SP. */
    while (p < wend && (char_class[*p] & C_TCHAR))
        p++;
    if (p == wend)
        return OUT_OF_WINDOW(cut, too_long);
    if (*p != ' ' || p == line) {
        if (is_ows(*p) || *p == '\r' || *p == '\n')
            return SS_HTTP_E_BAD_REQUEST_LINE;
        return SS_HTTP_E_BAD_METHOD;
    }
    const unsigned char *method_end = p++;

    /* Target: any visible byte, then exactly one SP. Its syntax (origin,
     * absolute, authority or asterisk form) is the dispatcher's concern. */
    const unsigned char *target = p;
    while (p < wend && (char_class[*p] & C_TARGET))
        p++;
    if (p == wend)
        return OUT_OF_WINDOW(cut, too_long);
    if (*p != ' ' || p == target) {
        if (p == target && (*p == ' ' || *p == '\r' || *p == '\n'))
            return SS_HTTP_E_BAD_REQUEST_LINE;
        if (*p == '\r' || *p == '\n')
            return SS_HTTP_E_MISSING_VERSION; /* HTTP/0.9: "GET /" */
        return SS_HTTP_E_BAD_TARGET;
    }
    const unsigned char *target_end = p++;

    /* Version: "HTTP/" 1*DIGIT "." 1*DIGIT, case-sensitive (RFC 9112 §2.3
     * has one digit each; Python accepts more, so do we). */
    for (const char *h = "HTTP/"; *h; h++, p++) {
        if (p == wend)
            return OUT_OF_WINDOW(cut, too_long);
        if (*p != (unsigned char)*h)
            return SS_HTTP_E_BAD_VERSION;
    }
    int major = 0, minor = 0, rc;
    rc = parse_version_number(&p, wend, &major);
    if (rc <= 0)
        return rc == 0 ? OUT_OF_WINDOW(cut, too_long) : rc;
    if (*p++ != '.')
        return SS_HTTP_E_BAD_VERSION;
    rc = parse_version_number(&p, wend, &minor);
    if (rc <= 0)
        return rc == 0 ? OUT_OF_WINDOW(cut, too_long) : rc;

    const unsigned char *line_end = p;
    if (*p == '\r') {
        if (++p == wend)
            return OUT_OF_WINDOW(cut, too_long);
        if (*p != '\n')
            return SS_HTTP_E_BAD_LINE_ENDING;
    } else if (*p == ' ') {
        return SS_HTTP_E_BAD_REQUEST_LINE; /* a fourth word */
    } else if (*p != '\n') {
        return SS_HTTP_E_BAD_VERSION;
    }
    *pp = p + 1;

    req->method = (const char *)line;
    req->method_len = (size_t)(method_end - line);
    req->target = (const char *)target;
    req->target_len = (size_t)(target_end - target);
    req->version_major = major;
    req->version_minor = minor;
    req->request_line = (const char *)line;
    req->request_line_len = (size_t)(line_end - line);
    /* Major 0 ("HTTP/0.9" spelled out) or 2+: well-formed, not ours. */
    if (major != 1)
        return SS_HTTP_E_VERSION_NOT_SUPPORTED;
    return 0;
}

int ss_http_parse_request(const char *buf, size_t len,
                          const ss_http_limits *limits, ss_http_request *req)
{
    static const ss_http_limits no_limits; /* all 0: all defaults */
    if (!limits)
        limits = &no_limits;
    const size_t max_request_line = effective_limit(
        limits->max_request_line, SS_HTTP_DEFAULT_MAX_REQUEST_LINE);
    const size_t max_header_line = effective_limit(
        limits->max_header_line, SS_HTTP_DEFAULT_MAX_HEADER_LINE);
    const size_t max_header_bytes = effective_limit(
        limits->max_header_bytes, SS_HTTP_DEFAULT_MAX_HEADER_BYTES);
    size_t max_headers =
        limits->max_headers ? limits->max_headers : SS_HTTP_DEFAULT_MAX_HEADERS;
    if (!req->headers || req->header_capacity < max_headers)
        max_headers = req->headers ? req->header_capacity : 0;

    req->method = req->target = req->request_line = NULL;
    req->method_len = req->target_len = req->request_line_len = 0;
    req->version_major = req->version_minor = 0;
    req->header_count = 0;
    if (len == 0)
        return SS_HTTP_INCOMPLETE;

    const unsigned char *start = (const unsigned char *)buf;
    const unsigned char *p = start, *end = start + len;

    /* Empty lines before the request line: RFC 9112 §2.2 says to ignore
     * at least one (clients have sent a CRLF after a POST body). */
    for (;;) {
        if (p == end)
            return SS_HTTP_INCOMPLETE;
        if (*p == '\n') {
            p++;
        } else if (*p == '\r') {
            if (end - p < 2)
                return SS_HTTP_INCOMPLETE;
            if (p[1] != '\n')
                return SS_HTTP_E_BAD_LINE_ENDING;
            p += 2;
        } else {
            break;
        }
        if ((size_t)(p - start) > max_request_line)
            return SS_HTTP_E_BAD_REQUEST_LINE;
    }

    int rc = parse_request_line(&p, end, max_request_line, req);
    if (rc < 0)
        return rc;

    /* Header fields. Each line is scanned inside a window cut at whichever
     * is smaller: the line limit or what is left of the section's. */
    const unsigned char *section = p;
    size_t count = 0;
    for (;;) {
        size_t avail = (size_t)(end - p);
        size_t budget = max_header_bytes - (size_t)(p - section);
        size_t limit = max_header_line < budget ? max_header_line : budget;
        bool cut = avail >= limit;
        const unsigned char *wend = cut ? p + limit : end;
        const int too_long = max_header_line <= budget
                                 ? SS_HTTP_E_HEADER_LINE_TOO_LONG
                                 : SS_HTTP_E_HEADERS_TOO_LARGE;

        if (p == wend)
            return OUT_OF_WINDOW(cut, too_long);
        if (*p == '\n') {
            p++;
            break;
        }
        if (*p == '\r') {
            if (p + 1 == wend)
                return OUT_OF_WINDOW(cut, too_long);
            if (p[1] != '\n')
                return SS_HTTP_E_BAD_LINE_ENDING;
            p += 2;
            break;
        }
        if (count == max_headers)
            return SS_HTTP_E_TOO_MANY_HEADERS;
        /* A continuation line, or whitespace before the first field (RFC
         * 9112 §2.2, §5.2): both refused. */
        if (is_ows(*p))
            return SS_HTTP_E_OBS_FOLD;

        /* Name: a token, then the colon with nothing in between — "Name :"
         * is how requests are smuggled past proxies that accept it. */
        const unsigned char *name = p;
        while (p < wend && (char_class[*p] & C_TCHAR))
            p++;
        if (p == wend)
            return OUT_OF_WINDOW(cut, too_long);
        if (*p != ':') {
            if (p == name)
                return SS_HTTP_E_BAD_HEADER_NAME;
            if (is_ows(*p)) {
                while (p < wend && is_ows(*p))
                    p++;
                if (p == wend)
                    return OUT_OF_WINDOW(cut, too_long);
                if (*p == ':')
                    return SS_HTTP_E_SPACE_BEFORE_COLON;
            }
            if (*p == '\r' || *p == '\n')
                return SS_HTTP_E_MISSING_COLON;
            return SS_HTTP_E_BAD_HEADER_NAME;
        }
        if (p == name)
            return SS_HTTP_E_EMPTY_HEADER_NAME;
        const unsigned char *name_end = p++;

        /* Value: leading and trailing SP/HT are not part of it. */
        while (p < wend && is_ows(*p))
            p++;
        const unsigned char *value = p;
        while (p < wend && (char_class[*p] & C_VALUE))
            p++;
        if (p == wend)
            return OUT_OF_WINDOW(cut, too_long);
        const unsigned char *value_end = p;
        if (*p == '\r') {
            if (++p == wend)
                return OUT_OF_WINDOW(cut, too_long);
            if (*p != '\n')
                return SS_HTTP_E_BAD_LINE_ENDING;
        } else if (*p != '\n') {
            return SS_HTTP_E_BAD_HEADER_VALUE;
        }
        p++;
        while (value_end > value && is_ows(value_end[-1]))
            value_end--;

        ss_http_header *h = &req->headers[count++];
        h->name = (const char *)name;
        h->name_len = (size_t)(name_end - name);
        h->value = (const char *)value;
        h->value_len = (size_t)(value_end - value);
        req->header_count = count;
    }
    return (int)(p - start);
}

/* ---- Reading fields ---------------------------------------------------- */

const ss_http_header *ss_http_header_next(const ss_http_request *req,
                                          const char *name,
                                          const ss_http_header *after)
{
    size_t name_len = strlen(name);
    size_t i = after ? (size_t)(after - req->headers) + 1 : 0;
    for (; i < req->header_count; i++) {
        const ss_http_header *h = &req->headers[i];
        if (ascii_case_equal(h->name, h->name_len, name, name_len))
            return h;
    }
    return NULL;
}

const ss_http_header *ss_http_header_find(const ss_http_request *req,
                                          const char *name)
{
    return ss_http_header_next(req, name, NULL);
}

/* Walks the elements of a comma-separated list (RFC 9110 §5.6.1) spread
 * over every field named name, skipping empty elements and trimming OWS.
 * Quoted strings are not special: no field read here needs them, and a
 * comma inside quotes only makes an element look unknown (refused). */
typedef struct list_cursor {
    const ss_http_request *req;
    const char *name;
    const ss_http_header *field;
    const char *p, *end;
} list_cursor;

static void list_open(list_cursor *c, const ss_http_request *req,
                      const char *name)
{
    c->req = req;
    c->name = name;
    c->field = NULL;
    c->p = c->end = NULL;
}

static bool list_next(list_cursor *c, const char **elem, size_t *elem_len)
{
    for (;;) {
        while (c->p != c->end && (*c->p == ',' || is_ows((unsigned char)*c->p)))
            c->p++;
        if (c->p == c->end) {
            c->field = ss_http_header_next(c->req, c->name, c->field);
            if (!c->field)
                return false;
            c->p = c->field->value;
            c->end = c->p + c->field->value_len;
            continue;
        }
        const char *start = c->p;
        while (c->p != c->end && *c->p != ',')
            c->p++;
        const char *stop = c->p;
        while (stop > start && is_ows((unsigned char)stop[-1]))
            stop--;
        *elem = start;
        *elem_len = (size_t)(stop - start);
        return true;
    }
}

int ss_http_content_length(const ss_http_request *req, uint64_t *length)
{
    bool found = false;
    uint64_t first = 0;
    for (const ss_http_header *h = ss_http_header_find(req, "content-length");
         h; h = ss_http_header_next(req, "content-length", h)) {
        /* Strictly: 1*DIGIT, or "N, N" lists of one value. Empty elements
         * are an error here, unlike in ordinary lists. */
        const char *p = h->value, *end = p + h->value_len;
        for (;;) {
            while (p < end && is_ows((unsigned char)*p))
                p++;
            const char *digits = p;
            uint64_t v = 0;
            while (p < end && *p >= '0' && *p <= '9') {
                unsigned d = (unsigned)(*p - '0');
                if (v > ((uint64_t)INT64_MAX - d) / 10)
                    return SS_HTTP_E_BAD_CONTENT_LENGTH;
                v = v * 10 + d;
                p++;
            }
            if (p == digits)
                return SS_HTTP_E_BAD_CONTENT_LENGTH;
            while (p < end && is_ows((unsigned char)*p))
                p++;
            if (found && v != first)
                return SS_HTTP_E_CONFLICTING_CONTENT_LENGTH;
            found = true;
            first = v;
            if (p == end)
                break;
            if (*p++ != ',')
                return SS_HTTP_E_BAD_CONTENT_LENGTH;
        }
    }
    if (!found)
        return 0;
    *length = first;
    return 1;
}

int ss_http_transfer_chunked(const ss_http_request *req)
{
    if (!ss_http_header_find(req, "transfer-encoding"))
        return 0;
    list_cursor c;
    const char *elem;
    size_t elem_len;
    size_t codings = 0, chunked = 0;
    bool last_chunked = false, malformed = false;
    list_open(&c, req, "transfer-encoding");
    while (list_next(&c, &elem, &elem_len)) {
        /* transfer-coding = token *( OWS ";" OWS transfer-parameter ) */
        size_t n = 0, m;
        while (n < elem_len && (char_class[(unsigned char)elem[n]] & C_TCHAR))
            n++;
        for (m = n; m < elem_len && is_ows((unsigned char)elem[m]); m++)
            ;
        if (n == 0 || (m < elem_len && elem[m] != ';'))
            malformed = true;
        last_chunked = ascii_case_equal(elem, n, "chunked", 7);
        chunked += last_chunked;
        codings++;
    }
    if (codings == 0 || malformed || chunked != 1 || !last_chunked)
        return SS_HTTP_E_BAD_TRANSFER_ENCODING;
    if (codings > 1)
        return SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING; /* gzip, chunked */
    return 1;
}

int ss_http_body_framing(const ss_http_request *req, uint64_t *content_length)
{
    bool has_te = ss_http_header_find(req, "transfer-encoding") != NULL;
    bool has_cl = ss_http_header_find(req, "content-length") != NULL;
    int rc;
    if (has_te) {
        if (req->version_major == 1 && req->version_minor == 0)
            return SS_HTTP_E_TRANSFER_ENCODING_HTTP10;
        if (has_cl)
            return SS_HTTP_E_LENGTH_AND_CHUNKED;
        rc = ss_http_transfer_chunked(req);
        return rc < 0 ? rc : SS_HTTP_BODY_CHUNKED;
    }
    if (has_cl) {
        rc = ss_http_content_length(req, content_length);
        return rc < 0 ? rc : SS_HTTP_BODY_LENGTH;
    }
    return SS_HTTP_BODY_NONE;
}

bool ss_http_connection_has(const ss_http_request *req, const char *token)
{
    list_cursor c;
    const char *elem;
    size_t elem_len, token_len = strlen(token);
    list_open(&c, req, "connection");
    while (list_next(&c, &elem, &elem_len))
        if (ascii_case_equal(elem, elem_len, token, token_len))
            return true;
    return false;
}

bool ss_http_keep_alive(const ss_http_request *req)
{
    if (ss_http_connection_has(req, "close"))
        return false;
    if (req->version_major > 1 ||
        (req->version_major == 1 && req->version_minor >= 1))
        return true;
    return ss_http_connection_has(req, "keep-alive");
}

int ss_http_expect_continue(const ss_http_request *req)
{
    list_cursor c;
    const char *elem;
    size_t elem_len;
    bool wants_continue = false;
    list_open(&c, req, "expect");
    while (list_next(&c, &elem, &elem_len)) {
        if (!ascii_case_equal(elem, elem_len, "100-continue", 12))
            return SS_HTTP_E_EXPECTATION_FAILED;
        wants_continue = true;
    }
    /* RFC 9110 §10.1.1: an HTTP/1.0 client cannot read a 100 response. */
    bool http11 = req->version_major > 1 ||
                  (req->version_major == 1 && req->version_minor >= 1);
    return wants_continue && http11 ? 1 : 0;
}

/* ---- Chunked body decoder ---------------------------------------------- */

/* Where the decoder is; 0 (a zeroed struct) is the start of a body. */
enum {
    CH_SIZE_FIRST = 0, /* first hex digit of a chunk size */
    CH_SIZE,           /* more hex digits */
    CH_SIZE_WS,        /* SP/HT after the size: ";" or CR must follow */
    CH_EXT,            /* chunk extensions, skipped up to CR */
    CH_SIZE_LF,        /* LF ending the size line */
    CH_DATA,           /* chunk_left bytes of data */
    CH_DATA_CR,        /* CR after the data */
    CH_DATA_LF,        /* LF after the data */
    CH_TRAILER_START,  /* start of a trailer line, or the final CRLF */
    CH_TRAILER_LINE,   /* inside a trailer line, up to CR */
    CH_TRAILER_LF,     /* LF ending a trailer line */
    CH_END_LF,         /* LF of the final CRLF */
    CH_DONE,
    CH_ERROR,
};

void ss_http_chunked_init(ss_http_chunked_decoder *dec)
{
    memset(dec, 0, sizeof *dec);
    dec->max_chunk_line = SS_HTTP_DEFAULT_MAX_CHUNK_LINE;
    dec->max_trailer_bytes = SS_HTTP_DEFAULT_MAX_TRAILER_BYTES;
}

static inline unsigned hex_value(unsigned char c)
{
    if (c <= '9')
        return (unsigned)(c - '0');
    return (unsigned)(ascii_lower(c) - 'a' + 10);
}

static inline bool is_ctl_except_ht(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* After the size's digits: whitespace, then ";" and extensions, or CR.
 * CH_ERROR for anything else. */
static inline int after_chunk_size(unsigned char c)
{
    if (is_ows(c))
        return CH_SIZE_WS;
    if (c == ';')
        return CH_EXT;
    if (c == '\r')
        return CH_SIZE_LF;
    return CH_ERROR;
}

int ss_http_chunked_decode(ss_http_chunked_decoder *dec, char *buf, size_t *len,
                           size_t *consumed)
{
    const size_t n = *len;
    size_t in = 0, out = 0;
    int state = dec->state, error = 0;
    *len = *consumed = 0;
    if (state == CH_DONE)
        return 0;
    if (state == CH_ERROR)
        return dec->error;
    const size_t max_line = dec->max_chunk_line
                                ? dec->max_chunk_line
                                : SS_HTTP_DEFAULT_MAX_CHUNK_LINE;
    const size_t max_trailer = dec->max_trailer_bytes
                                   ? dec->max_trailer_bytes
                                   : SS_HTTP_DEFAULT_MAX_TRAILER_BYTES;

    while (in < n) {
        if (state == CH_DATA) {
            size_t take = n - in;
            if (take > dec->chunk_left)
                take = (size_t)dec->chunk_left;
            if (out != in)
                memmove(buf + out, buf + in, take);
            in += take;
            out += take;
            dec->chunk_left -= take;
            dec->body_bytes += take;
            if (dec->chunk_left == 0)
                state = CH_DATA_CR;
            continue;
        }

        unsigned char c = (unsigned char)buf[in++];
        /* Both counters include the byte at hand, so a line of exactly
         * the limit passes and one more byte fails. */
        if (state <= CH_SIZE_LF && ++dec->line_bytes > max_line) {
            error = SS_HTTP_E_CHUNK_LINE_TOO_LONG;
            break;
        }
        if (state >= CH_TRAILER_START && ++dec->line_bytes > max_trailer) {
            error = SS_HTTP_E_TRAILERS_TOO_LARGE;
            break;
        }

        switch (state) {
        case CH_SIZE_FIRST:
        case CH_SIZE:
            if (char_class[c] & C_HEX) {
                if (dec->chunk_left > (UINT64_MAX >> 4))
                    error = SS_HTTP_E_CHUNK_SIZE_OVERFLOW;
                else
                    dec->chunk_left = dec->chunk_left << 4 | hex_value(c);
                state = CH_SIZE;
            } else if (state == CH_SIZE_FIRST) {
                error = SS_HTTP_E_BAD_CHUNK_SIZE;
            } else {
                state = after_chunk_size(c);
            }
            break;
        case CH_SIZE_WS:
            state = after_chunk_size(c);
            break;
        case CH_EXT:
            /* Extensions carry nothing this library uses; they are only
             * checked for bytes that could end or split a line. */
            if (c == '\r')
                state = CH_SIZE_LF;
            else if (is_ctl_except_ht(c))
                error = SS_HTTP_E_BAD_CHUNK_SIZE;
            break;
        case CH_SIZE_LF:
            if (c != '\n') {
                error = SS_HTTP_E_BAD_CHUNK_SIZE;
                break;
            }
            dec->line_bytes = 0;
            if (dec->chunk_left == 0) {
                state = CH_TRAILER_START;
            } else if (dec->max_body_bytes &&
                       dec->chunk_left >
                           dec->max_body_bytes - dec->body_bytes) {
                /* Refused on the size alone, before any of it arrives. */
                error = SS_HTTP_E_BODY_TOO_LARGE;
            } else {
                state = CH_DATA;
            }
            break;
        case CH_DATA_CR:
            if (c == '\r')
                state = CH_DATA_LF;
            else
                error = SS_HTTP_E_MISSING_CHUNK_CRLF;
            break;
        case CH_DATA_LF:
            if (c == '\n')
                state = CH_SIZE_FIRST;
            else
                error = SS_HTTP_E_MISSING_CHUNK_CRLF;
            break;
        case CH_TRAILER_START:
            /* Trailer fields are dropped: nothing may rely on them. A line
             * may not start with whitespace (folding) or a control. */
            if (c == '\r')
                state = CH_END_LF;
            else if (is_ows(c) || is_ctl_except_ht(c))
                error = SS_HTTP_E_BAD_TRAILER;
            else
                state = CH_TRAILER_LINE;
            break;
        case CH_TRAILER_LINE:
            if (c == '\r')
                state = CH_TRAILER_LF;
            else if (is_ctl_except_ht(c))
                error = SS_HTTP_E_BAD_TRAILER;
            break;
        case CH_TRAILER_LF:
            if (c == '\n')
                state = CH_TRAILER_START;
            else
                error = SS_HTTP_E_BAD_TRAILER;
            break;
        case CH_END_LF:
            if (c == '\n')
                state = CH_DONE;
            else
                error = SS_HTTP_E_BAD_TRAILER;
            break;
        }
        if (state == CH_ERROR)
            error = SS_HTTP_E_BAD_CHUNK_SIZE;
        if (error || state == CH_DONE)
            break;
    }

    *len = out;
    *consumed = in;
    if (error) {
        dec->state = CH_ERROR;
        dec->error = error;
        return error;
    }
    dec->state = state;
    return state == CH_DONE ? 0 : SS_HTTP_INCOMPLETE;
}
