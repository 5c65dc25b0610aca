/*
 * http_response.c — the response side of the HTTP handler (Python's
 * send_response, send_header, end_headers, send_error, wfile) and the
 * access log (log_request, access_log).
 *
 * A response head is built in one buffer and leaves in one send. The head
 * of a final response is even held back until the first body write: when
 * head and body together are small they go out in a single send, which is
 * most of the cost of a small keep-alive response. Anything that could
 * write around us (sendfile, the raw request, the end of the callback)
 * sends the held-back head first.
 *
 * Nothing taken from the request reaches a response unescaped: header
 * values with CR, LF or NUL are refused, and send_error's HTML escapes its
 * text. The access log escapes control and non-ASCII bytes as \xHH, and
 * the bytes that would end a field early: '"' in the quoted request line,
 * also the space in the unquoted client field.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "http_internal.h"

/* A body write this small is sent together with a held-back head. */
#define COALESCE_LIMIT 16384
/* Longest request line quoted in the access log. */
#define LOG_LINE_LIMIT 8192

/* ---- reason phrases ------------------------------------------------ */

const char *ss__http_reason_or_null(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 102:
        return "Processing";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 207:
        return "Multi-Status";
    case 208:
        return "Already Reported";
    case 226:
        return "IM Used";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 418:
        return "I'm a Teapot";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 423:
        return "Locked";
    case 424:
        return "Failed Dependency";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 506:
        return "Variant Also Negotiates";
    case 507:
        return "Insufficient Storage";
    case 508:
        return "Loop Detected";
    case 510:
        return "Not Extended";
    case 511:
        return "Network Authentication Required";
    default:
        return NULL;
    }
}

const char *ss_http_reason(int status)
{
    const char *r = ss__http_reason_or_null(status);
    return r ? r : "Unknown";
}

size_t ss_http_html_escape(const char *s, char *buf, size_t size)
{
    size_t out = 0;
    for (; *s; s++) {
        const char *rep;
        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#x27;";
            break;
        default:
            rep = NULL;
            break;
        }
        size_t n = rep ? strlen(rep) : 1;
        if (size > 0 && out + n < size)
            memcpy(buf + out, rep ? rep : s, n);
        else if (size > 0 && out < size)
            size = out + 1; /* stop writing; keep counting */
        out += n;
    }
    if (size > 0)
        buf[out < size ? out : size - 1] = '\0';
    return out;
}

/* ---- writing with an idle limit ------------------------------------ */

/* Largest piece handed to one ss_sendfile() call: each call gets its own
 * io_timeout, so a transfer to a client that keeps reading is never cut
 * off; one whose piece timed out after some bytes went out returns a short
 * count, and the core keeps the stall for the next call (request_io.c), so
 * a client that stops reading is dropped io_timeout after the last byte
 * moved, however many pieces or calls that spans. */
#define SENDFILE_PIECE ((size_t)64 * 1024)

/* Send all n bytes. io_timeout limits each wait for progress, not the
 * whole transfer: every ss_write() call starts a fresh deadline and
 * returns as soon as some bytes went out, so a large body to a client that
 * keeps reading never times out, while one that stops reading is dropped
 * after io_timeout. Returns n or a negative errno. */
ssize_t ss__http_send_all(ss_http *h, const void *buf, size_t n)
{
    const char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t sent = ss_write(h->req, p + done, n - done);
        if (sent < 0)
            return sent;
        done += (size_t)sent;
    }
    return (ssize_t)n;
}

/* ---- building the head --------------------------------------------- */

/* n more bytes at the end of the head being built, for the caller to fill
 * (NULL: out of memory). One call per field line: appending name, ": ",
 * value and CRLF one by one was a visible part of a small response. */
static char *out_grab(ss_http *h, size_t n)
{
    if (n > SIZE_MAX / 4 - h->out_len)
        return NULL; /* the doubling below must not wrap around */
    if (h->out_cap - h->out_len < n) {
        size_t cap = h->out_cap ? h->out_cap : 512;
        while (cap - h->out_len < n)
            cap *= 2;
        char *grown = realloc(h->out, cap);
        if (!grown)
            return NULL;
        h->out = grown;
        h->out_cap = cap;
    }
    char *at = h->out + h->out_len;
    h->out_len += n;
    return at;
}

static int out_append(ss_http *h, const char *s, size_t n)
{
    char *at = out_grab(h, n);
    if (!at)
        return -ENOMEM;
    memcpy(at, s, n);
    return 0;
}

static int out_str(ss_http *h, const char *s)
{
    return out_append(h, s, strlen(s));
}

static char *put_bytes(char *at, const char *s, size_t n)
{
    memcpy(at, s, n);
    return at + n;
}

/* RFC 9110 IMF-fixdate, built by hand: strftime's names follow the
 * locale. Cached for the second it names. */
static const char *date_now(ss_http *h)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != h->date_second || !h->date[0]) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(h->date, sizeof h->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        h->date_second = now;
    }
    return h->date;
}

/* The length of s when it holds no CR or LF (which would end the field
 * line early and let the rest forge fields of its own); else -1. */
static ptrdiff_t field_text_length(const char *s)
{
    size_t n = strcspn(s, "\r\n");
    return s[n] == '\0' ? (ptrdiff_t)n : -1;
}

int ss_http_send_response(ss_http *h, int status, const char *reason)
{
    if (status < 100 || status > 999)
        return -EINVAL;
    if (h->final_sent)
        return -EALREADY;
    if (!reason)
        reason = ss_http_reason(status);
    ptrdiff_t reason_len = field_text_length(reason);
    if (reason_len < 0)
        return -EINVAL;
    /* A head begun but not ended is replaced, not appended to. */
    h->out_len = 0;
    h->has_length = h->has_transfer_encoding = h->has_connection = false;
    /* "HTTP/1.1 NNN reason\r\nServer: ...\r\nDate: ...\r\n" in one
     * piece, by hand: printf was a visible part of a small response's
     * cost. status is three digits (checked above). */
    static const char server[] = "\r\nServer: ", date[] = "\r\nDate: ";
    const char *when = date_now(h);
    size_t server_len = h->server_header_len, when_len = strlen(when);
    char *at = out_grab(h, 13 + (size_t)reason_len + (sizeof server - 1) +
                               server_len + (sizeof date - 1) + when_len + 2);
    if (!at) {
        h->out_len = 0;
        return -ENOMEM;
    }
    at = put_bytes(at, "HTTP/1.1 ", 9);
    *at++ = (char)('0' + status / 100);
    *at++ = (char)('0' + status / 10 % 10);
    *at++ = (char)('0' + status % 10);
    *at++ = ' ';
    at = put_bytes(at, reason, (size_t)reason_len);
    at = put_bytes(at, server, sizeof server - 1);
    at = put_bytes(at, h->server_header, server_len);
    at = put_bytes(at, date, sizeof date - 1);
    at = put_bytes(at, when, when_len);
    put_bytes(at, "\r\n", 2);
    h->head_status = status;
    h->head_open = true;
    return 0;
}

/* Whether a Connection value lists "close" (comma-separated). */
static bool lists_close(const char *value)
{
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p - start == 5 && strncasecmp(start, "close", 5) == 0)
            return true;
    }
    return false;
}

/* A Content-Length value we can hold the body to: 1*DIGIT up to
 * INT64_MAX; else -1. */
static int64_t length_value(const char *value)
{
    if (*value == '\0')
        return -1;
    uint64_t v = 0;
    for (const char *p = value; *p; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (d > 9 || v > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    return (int64_t)v;
}

/* Note the fields that decide how the response is framed. Names are
 * told apart by length first: most fields are none of these. */
static void note_framing_field(ss_http *h, const char *name, size_t name_len,
                               const char *value)
{
    if (name_len == 14 && strcasecmp(name, "Content-Length") == 0) {
        /* Kept to check the body against: a shortfall closes. A second or
         * unreadable value cannot be trusted either (-1). */
        int64_t v = length_value(value);
        h->response_length = h->has_length ? -1 : v;
        h->has_length = true;
    } else if (name_len == 17 && strcasecmp(name, "Transfer-Encoding") == 0) {
        h->has_transfer_encoding = true;
    } else if (name_len == 10 && strcasecmp(name, "Connection") == 0) {
        h->has_connection = true;
        if (lists_close(value))
            h->close = true;
    }
}

int ss_http_send_header(ss_http *h, const char *name, const char *value)
{
    if (!name || !value)
        return -EINVAL;
    size_t name_len = ss__http_token_length(name);
    ptrdiff_t value_len = field_text_length(value);
    if (name_len == 0 || name[name_len] != '\0' || value_len < 0)
        return -EINVAL;
    if (!h->head_open)
        return -EPROTO; /* no send_response first */
    char *at = out_grab(h, name_len + (size_t)value_len + 4);
    if (!at)
        return -ENOMEM;
    at = put_bytes(at, name, name_len);
    at = put_bytes(at, ": ", 2);
    at = put_bytes(at, value, (size_t)value_len);
    put_bytes(at, "\r\n", 2);
    note_framing_field(h, name, name_len, value);
    return 0;
}

int ss_http_send_headerf(ss_http *h, const char *name, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return ss_http_send_header(h, name, small);
    char *big = ss__http_alloc(h, (size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return ss_http_send_header(h, name, big);
}

/* 205 Reset Content must have no content either (RFC 9110 §15.3.6). */
static bool body_allowed(int status)
{
    return status >= 200 && status != 204 && status != 205 && status != 304;
}

/* Remove the callback's Connection field lines from the head being built
 * (each is exactly "Name: value\r\n": send_header refused CR and LF). */
static void drop_connection_fields(ss_http *h)
{
    char *line = memchr(h->out, '\n', h->out_len); /* after the status */
    if (!line)
        return;
    line++;
    char *end = h->out + h->out_len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *next = nl ? nl + 1 : end;
        if ((size_t)(end - line) > 11 &&
            strncasecmp(line, "Connection:", 11) == 0) {
            memmove(line, next, (size_t)(end - next));
            end -= next - line;
        } else {
            line = next;
        }
    }
    h->out_len = (size_t)(end - h->out);
    h->has_connection = false;
}

int ss__http_flush_head(ss_http *h)
{
    if (!h->head_pending)
        return 0;
    h->head_pending = false;
    ssize_t rc = ss__http_send_all(h, h->out, h->out_len);
    h->out_len = 0;
    return rc < 0 ? ss__http_peer_failed(h, (int)rc) : 0;
}

bool ss__http_client_keeps_alive(ss_http *h)
{
    /* Asked by end_headers and again when the exchange ends; the answer
     * walks the Connection fields, so it is kept. */
    if (h->client_keep_alive < 0)
        h->client_keep_alive = ss_http_keep_alive(&h->parsed) ? 1 : 0;
    return h->client_keep_alive == 1;
}

int ss_http_end_headers(ss_http *h)
{
    if (!h->head_open)
        return -EPROTO;
    int status = h->head_status;
    int rc = 0;
    if (status >= 200) {
        bool keep = ss__http_client_keeps_alive(h) && !h->close;
        if (body_allowed(status) && !h->is_head && !h->has_length &&
            !h->has_transfer_encoding) {
            /* The body ends where the connection does. */
            keep = false;
            h->close = true;
        }
        if (status == 205 && !h->has_length && !h->has_transfer_encoding)
            /* Without it an HTTP/1.1 client reads a 205 to the close. */
            rc = out_str(h, "Content-Length: 0\r\n");
        /* "Connection: keep-alive" from the callback would be a lie when
         * we close: ours replaces it. */
        if (!keep && h->has_connection)
            drop_connection_fields(h);
        if (!rc && !h->has_connection) {
            if (!keep)
                rc = out_str(h, "Connection: close\r\n");
            else if (h->parsed.version_minor == 0)
                rc = out_str(h, "Connection: keep-alive\r\n");
        }
        if (!keep)
            h->close = true;
    }
    if (!rc)
        rc = out_append(h, "\r\n", 2);
    h->head_open = false;
    if (rc < 0) {
        h->out_len = 0;
        return rc;
    }
    if (status < 200) {
        /* Interim (100, 103): goes out now; a final response follows. */
        ssize_t sent = ss__http_send_all(h, h->out, h->out_len);
        h->out_len = 0;
        return sent < 0 ? ss__http_peer_failed(h, (int)sent) : 0;
    }
    h->status = status;
    h->final_sent = true;
    h->head_pending = true;
    if (h->is_head || !body_allowed(status))
        return ss__http_flush_head(h);
    return 0;
}

int ss_http_write(ss_http *h, const void *buf, size_t n)
{
    if (n > (size_t)SS_IO_MAX)
        return -EINVAL; /* the count would not fit the int returned */
    if (h->peer_error)
        return h->peer_error;
    if (h->head_open) {
        int rc = ss_http_end_headers(h); /* forgotten: body follows head */
        if (rc < 0)
            return rc;
    }
    if (h->final_sent && (h->is_head || !body_allowed(h->status)))
        return (int)n; /* HEAD, 204, 205, 304: the head only */
    if (h->head_pending) {
        if (n <= COALESCE_LIMIT) {
            int rc = out_append(h, buf, n);
            if (rc < 0)
                return rc;
            h->bytes_sent += n;
            return ss__http_flush_head(h) < 0 ? h->peer_error : (int)n;
        }
        if (ss__http_flush_head(h) < 0)
            return h->peer_error;
    }
    if (!h->final_sent)
        h->raw_output = true;
    ssize_t rc = ss__http_send_all(h, buf, n);
    if (rc < 0)
        return ss__http_peer_failed(h, (int)rc);
    h->bytes_sent += n;
    return (int)n;
}

/* A small file behind a held-back head: read it into the head's buffer
 * and send both at once — one send instead of two (or a send and a
 * sendfile), which on a small keep-alive response is a good part of the
 * cost. A short read is the end of the file, as with sendfile. Returns
 * -EAGAIN, having changed nothing, when the file cannot be read this way
 * (say, a socket or a descriptor open for writing only): the caller then
 * takes the ordinary path, which reports any real error. */
static ssize_t sendfile_with_head(ss_http *h, int fd, off_t *offset,
                                  size_t count)
{
    size_t head_len = h->out_len;
    if (h->out_cap - head_len < count) {
        size_t cap = h->out_cap ? h->out_cap : 512;
        while (cap - head_len < count)
            cap *= 2;
        char *grown = realloc(h->out, cap);
        if (!grown)
            return -EAGAIN;
        h->out = grown;
        h->out_cap = cap;
    }
    size_t got = 0;
    while (got < count) {
        char *to = h->out + head_len + got;
        ssize_t n = offset ? pread(fd, to, count - got, *offset + (off_t)got)
                           : read(fd, to, count - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break; /* end of file */
        if (errno == EINTR)
            continue;
        if (got == 0)
            return -EAGAIN;
        break; /* send what was read; the next call meets the error */
    }
    if (offset)
        *offset += (off_t)got;
    h->out_len = head_len + got;
    h->bytes_sent += got;
    return ss__http_flush_head(h) < 0 ? h->peer_error : (ssize_t)got;
}

int ss_http_sendfile(ss_http *h, int fd, off_t *offset, size_t count)
{
    if (count > (size_t)SS_IO_MAX)
        count = (size_t)SS_IO_MAX; /* a short count: the caller goes on */
    if (h->peer_error)
        return h->peer_error;
    if (h->head_open) {
        int rc = ss_http_end_headers(h);
        if (rc < 0)
            return rc;
    }
    if (h->final_sent && (h->is_head || !body_allowed(h->status))) {
        if (offset)
            *offset += (off_t)count;
        return (int)count;
    }
    if (h->head_pending && count <= COALESCE_LIMIT) {
        ssize_t rc = sendfile_with_head(h, fd, offset, count);
        if (rc != -EAGAIN)
            return (int)rc;
    }
    if (ss__http_flush_head(h) < 0)
        return h->peer_error;
    if (!h->final_sent)
        h->raw_output = true;
    /* In pieces, each with a fresh io_timeout (see SENDFILE_PIECE). A
     * short piece is the end of the file, or an error after some bytes
     * went out — a timeout included, which the core keeps for the next
     * call: either way the count so far is returned, and the next call
     * reports the error. */
    size_t done = 0;
    while (done < count) {
        size_t piece =
            count - done < SENDFILE_PIECE ? count - done : SENDFILE_PIECE;
        int rc = ss_sendfile(h->req, fd, offset, piece);
        if (rc < 0) {
            (void)ss__http_peer_failed(h, rc);
            if (done > 0)
                break; /* the next call reports the error */
            return rc;
        }
        done += (size_t)rc;
        h->bytes_sent += (uint64_t)rc;
        if ((size_t)rc < piece)
            break;
    }
    return (int)done;
}

/* ---- error responses ----------------------------------------------- */

/* Statuses after which the rest of the connection cannot be trusted to
 * be framed as we think (or the server is in trouble): close. */
static bool closes_connection(int status)
{
    switch (status) {
    case 400:
    case 408:
    case 411:
    case 413:
    case 414:
    case 417:
    case 431:
    case 500:
    case 501:
    case 505:
        return true;
    default:
        return false;
    }
}

static int send_error_impl(ss_http *h, int status, const char *explain,
                           bool force_close)
{
    if (status < 100 || status > 999)
        return -EINVAL;
    if (h->final_sent)
        return -EALREADY; /* too late for another status line */
    if (force_close || closes_connection(status))
        h->close = true;
    const char *reason = ss_http_reason(status);
    int rc = ss_http_send_response(h, status, reason);
    if (rc < 0)
        return rc;
    if (h->close)
        rc = ss_http_send_header(h, "Connection", "close");
    if (rc < 0 || !body_allowed(status))
        return rc < 0 ? rc : ss_http_end_headers(h);

    /* Python's DEFAULT_ERROR_MESSAGE, with everything escaped. */
    if (!explain)
        explain = reason;
    size_t reason_len = ss_http_html_escape(reason, NULL, 0);
    size_t explain_len = ss_http_html_escape(explain, NULL, 0);
    const char *head = h->cfg.error_head ? h->cfg.error_head : "";
    size_t size = reason_len + explain_len + strlen(head) + 512;
    char *body = ss__http_alloc(h, size);
    char *esc_reason = ss__http_alloc(h, reason_len + 1);
    char *esc_explain = ss__http_alloc(h, explain_len + 1);
    if (!body || !esc_reason || !esc_explain)
        return -ENOMEM;
    ss_http_html_escape(reason, esc_reason, reason_len + 1);
    ss_http_html_escape(explain, esc_explain, explain_len + 1);
    int n = snprintf(body, size,
                     "<!DOCTYPE HTML>\n"
                     "<html lang=\"en\">\n"
                     "    <head>\n"
                     "        <meta charset=\"utf-8\">\n"
                     "%s"
                     "        <title>Error response</title>\n"
                     "    </head>\n"
                     "    <body>\n"
                     "        <h1>Error response</h1>\n"
                     "        <p>Error code: %d</p>\n"
                     "        <p>Message: %s.</p>\n"
                     "        <p>Error code explanation: %d - %s.</p>\n"
                     "    </body>\n"
                     "</html>\n",
                     head, status, esc_reason, status, esc_explain);
    rc = ss_http_send_header(h, "Content-Type", "text/html;charset=utf-8");
    if (!rc)
        rc = ss_http_send_headerf(h, "Content-Length", "%d", n);
    if (!rc)
        rc = ss_http_end_headers(h);
    if (rc < 0)
        return rc;
    int sent = ss_http_write(h, body, (size_t)n);
    return sent < 0 ? sent : 0;
}

int ss_http_send_error(ss_http *h, int status, const char *explain)
{
    return send_error_impl(h, status, explain, false);
}

void ss__http_refuse(ss_http *h, int status, const char *explain)
{
    if (!h->final_sent)
        (void)send_error_impl(h, status, explain, true);
    (void)ss__http_flush_head(h);
    h->close = true;
    ss__http_log_exchange(h);
}

/* ---- access log ---------------------------------------------------- */

/* Which field an escaped text goes in: the quoted request line, where
 * '"' would end the field early, or the unquoted host, where a space
 * would too (and '"' is escaped there as well, like nginx). */
enum { QUOTED_FIELD, UNQUOTED_FIELD };

static size_t escape_for_log(const char *s, size_t n, char *out, int field);

/* Python's address_string(): the host alone for IP clients. Anything else
 * (a Unix peer's path or abstract name, which the client chooses freely)
 * is escaped like the request line, or it could forge log lines. buf needs
 * room for 4 * CLIENT_TEXT + 1 bytes. */
#define CLIENT_TEXT 128
static void client_host(const ss_http *h, char *buf, size_t size)
{
    socklen_t len;
    const struct sockaddr *sa = ss_request_client_address(h->req, &len);
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
                  (socklen_t)size);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)size);
        else
            inet_ntop(AF_INET6, a, buf, (socklen_t)size);
    } else {
        char raw[CLIENT_TEXT];
        int n = ss_request_client_address_string(h->req, raw, sizeof raw);
        if (n <= 0 || size < 4 * (size_t)n + 1) {
            snprintf(buf, size, "-");
            return;
        }
        buf[escape_for_log(raw, (size_t)n, buf, UNQUOTED_FIELD)] = '\0';
    }
}

/* Python's log_message escaping, applied to bytes: controls, DEL and
 * everything non-ASCII as \xHH, the backslash doubled; and, as nginx
 * does, '"' (and in the unquoted field the space), so a client cannot
 * end the field early and write what a log parser reads as status and
 * size. At most 4 bytes out per byte in. */
static inline bool log_plain(unsigned char c, int field)
{
    if (c > ' ')
        return c < 0x7f && c != '"' && c != '\\';
    return c == ' ' && field == QUOTED_FIELD;
}

static size_t escape_for_log(const char *s, size_t n, char *out, int field)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0;
    for (;;) {
        /* Runs that need nothing are copied whole: a request line
         * usually is one. */
        size_t run = i;
        while (run < n && log_plain((unsigned char)s[run], field))
            run++;
        if (run > i) { /* s may be NULL when n is 0 */
            memcpy(out + o, s + i, run - i);
            o += run - i;
        }
        if (run == n)
            return o;
        unsigned char c = (unsigned char)s[run];
        if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
        i = run + 1;
    }
}

/* The log's timestamp, "06/Dec/2026 18:05:26" in local time, made once
 * a second per thread: localtime_r() takes glibc's time zone lock, which
 * every thread logging a request would otherwise queue on. */
static const char *log_time(void)
{
    static _Thread_local struct {
        time_t second;
        char text[32];
    } cache = {.second = -1};
    time_t now = time(NULL);
    if (now != cache.second) {
        struct tm tm;
        localtime_r(&now, &tm);
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                           "May", "Jun", "Jul", "Aug",
                                           "Sep", "Oct", "Nov", "Dec"};
        snprintf(cache.text, sizeof cache.text, "%02d/%s/%04d %02d:%02d:%02d",
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        cache.second = now;
    }
    return cache.text;
}

/* n in decimal at out; returns the digits written (at most 20). */
static size_t put_decimal(char *out, uint64_t n)
{
    char digits[20];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < k; i++)
        out[i] = digits[k - 1 - i];
    return k;
}

static size_t put_text(char *out, const char *text, size_t len)
{
    memcpy(out, text, len);
    return len;
}

void ss__http_log_exchange(ss_http *h)
{
    /* Once per exchange, whichever path (refusal, failure, the loop) gets
     * here first. */
    if (h->cfg.quiet || h->logged)
        return;
    h->logged = true;
    const char *line;
    size_t line_len;
    if (h->parsed.method_len > 0) {
        line = h->parsed.request_line;
        line_len = h->parsed.request_line_len;
    } else {
        /* Refused before the request line was understood: quote what the
         * client sent up to the end of its first line, as Python does. */
        line = h->buf;
        const char *nl = h->len ? memchr(h->buf, '\n', h->len) : NULL;
        line_len = nl ? (size_t)(nl - h->buf) : h->len;
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
    }
    bool cut = line_len > LOG_LINE_LIMIT;
    if (cut)
        line_len = LOG_LINE_LIMIT;

    /* The host: made once per connection when it fits the cache. */
    char made[4 * CLIENT_TEXT + INET6_ADDRSTRLEN];
    const char *host = h->log_host;
    size_t host_len = h->log_host_len;
    if (host_len == 0) {
        client_host(h, made, sizeof made);
        host = made;
        host_len = strlen(made);
        if (host_len < sizeof h->log_host) {
            memcpy(h->log_host, made, host_len + 1);
            h->log_host_len = (unsigned char)host_len;
        }
    }
    const char *when = log_time();
    size_t when_len = strlen(when);

    /* Common Log Format, built by hand: snprintf was half of its cost.
     * The 64 spare bytes hold the fixed text, "...", status, size and
     * the newline the stderr path adds. */
    size_t cap = host_len + when_len + 4 * line_len + 64;
    char *out = ss__http_alloc(h, cap);
    if (!out)
        return;
    size_t o = put_text(out, host, host_len);
    o += put_text(out + o, " - - [", 6);
    o += put_text(out + o, when, when_len);
    o += put_text(out + o, "] \"", 3);
    o += escape_for_log(line, line_len, out + o, QUOTED_FIELD);
    if (cut)
        o += put_text(out + o, "...", 3);
    o += put_text(out + o, "\" ", 2);
    if (h->status)
        o += put_decimal(out + o, (uint64_t)(unsigned)h->status);
    else
        out[o++] = '-';
    out[o++] = ' ';
    if (h->bytes_sent)
        o += put_decimal(out + o, h->bytes_sent);
    else
        out[o++] = '-';
    out[o] = '\0'; /* log_request takes a string */

    if (h->cfg.log_request) {
        h->cfg.log_request(h->cfg.user, out);
    } else if (h->cfg.access_log) {
        ss_access_log_write(h->cfg.access_log, out, o);
    } else {
        out[o++] = '\n'; /* room: cap counted the spare bytes */
        ssize_t ignored = write(STDERR_FILENO, out, o);
        (void)ignored;
    }
}
