/*
 * http_body.c — request bodies for the HTTP handler: Content-Length and
 * chunked framing, Expect: 100-continue, the body size limit, and draining
 * what a callback left unread so the next pipelined request starts where it
 * should.
 *
 * Raw body bytes come first from the head buffer (whatever was read past
 * the head), then from the connection. A Content-Length body is read
 * straight into the caller's buffer, never past its end, so nothing of the
 * next request is consumed. A chunked body is read into the connection's
 * scratch buffer and decoded in place there; when it ends, what follows it
 * in scratch is the next request, which the loop moves back to the head
 * buffer. At most one of the two sources holds bytes at a time: scratch is
 * filled only once the head buffer's remainder is used up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Largest unread body remainder drained to keep a connection; a larger
 * one closes it (Go's net/http draws the line at 256 KiB). */
#define DRAIN_LIMIT ((uint64_t)64 * 1024)

int ss__http_body_begin(ss_http *h)
{
    uint64_t length = 0;
    int kind = ss_http_body_framing(&h->parsed, &length);
    if (kind < 0)
        return kind;
    int expect = ss_http_expect_continue(&h->parsed);
    if (expect < 0)
        return expect;
    h->body_kind = kind;
    h->body_done = kind == SS_HTTP_BODY_NONE;
    if (kind == SS_HTTP_BODY_LENGTH) {
        /* Refused before a byte of it is read (or asked for). */
        if (length > h->cfg.max_body_size)
            return SS_HTTP_E_BODY_TOO_LARGE;
        h->declared_length = (int64_t)length;
        h->body_left = length;
        h->body_done = length == 0;
    } else if (kind == SS_HTTP_BODY_CHUNKED) {
        ss_http_chunked_init(&h->dec);
        h->dec.max_body_bytes = h->cfg.max_body_size;
    }
    h->expect_continue = expect == 1 && !h->body_done;
    return 0;
}

int64_t ss_http_body_length(const ss_http *h)
{
    return h->declared_length;
}

/* Record why the body cannot be read further; returns error. */
static ssize_t body_failed(ss_http *h, ssize_t error)
{
    h->body_error = (int)error;
    h->close = true;
    if (ss_http_error_status((int)error) == 0)
        ss__http_peer_failed(h, (int)error);
    return error;
}

int ss__http_body_refuse(ss_http *h, int error)
{
    return (int)body_failed(h, error);
}

static ssize_t read_length(ss_http *h, char *buf, size_t n)
{
    if ((uint64_t)n > h->body_left)
        n = (size_t)h->body_left;
    ssize_t got;
    if (h->pos < h->len) {
        got = (ssize_t)(h->len - h->pos < n ? h->len - h->pos : n);
        memcpy(buf, h->buf + h->pos, (size_t)got);
        h->pos += (size_t)got;
    } else {
        got = ss_read(h->req, buf, n);
        if (got == 0)
            got = SS_EOF; /* closed before the declared length */
        if (got < 0)
            return body_failed(h, got);
    }
    h->body_left -= (uint64_t)got;
    h->body_done = h->body_left == 0;
    return got;
}

static ssize_t read_chunked(ss_http *h, char *buf, size_t n)
{
    for (;;) {
        char *src;
        size_t avail;
        if (h->pos < h->len) {
            src = h->buf + h->pos;
            avail = h->len - h->pos;
        } else {
            if (h->spos == h->slen) {
                if (!h->scratch && !(h->scratch = malloc(SS__HTTP_SCRATCH)))
                    return body_failed(h, -ENOMEM);
                ssize_t got = ss_read(h->req, h->scratch, SS__HTTP_SCRATCH);
                if (got == 0)
                    got = SS_EOF;
                if (got < 0)
                    return body_failed(h, got);
                h->spos = 0;
                h->slen = (size_t)got;
            }
            src = h->scratch + h->spos;
            avail = h->slen - h->spos;
        }
        /* Decoded data never outgrows its input, so feeding at most n
         * bytes keeps the output within the caller's buffer. */
        size_t len = avail < n ? avail : n, consumed = 0;
        int rc = ss_http_chunked_decode(&h->dec, src, &len, &consumed);
        memcpy(buf, src, len);
        if (src == h->buf + h->pos)
            h->pos += consumed;
        else
            h->spos += consumed;
        if (rc == 0)
            h->body_done = true;
        else if (rc != SS_HTTP_INCOMPLETE)
            (void)body_failed(h, rc);
        if (len > 0)
            return (ssize_t)len;
        if (rc != SS_HTTP_INCOMPLETE)
            return rc; /* 0 at the end, or the error */
    }
}

static ssize_t read_body(ss_http *h, void *buf, size_t n)
{
    if (h->body_error)
        return h->body_error;
    if (h->body_done || n == 0)
        return 0;
    if (h->expect_continue && !h->continue_sent && !h->final_sent) {
        /* The client holds the body back until it hears this. */
        h->continue_sent = true;
        ssize_t rc =
            ss__http_send_all(h, continue_line, sizeof continue_line - 1);
        if (rc < 0)
            return body_failed(h, rc);
    }
    if (h->body_kind == SS_HTTP_BODY_LENGTH)
        return read_length(h, buf, n);
    return read_chunked(h, buf, n);
}

int ss_http_read_body(ss_http *h, void *buf, size_t n)
{
    if (n > (size_t)SS_IO_MAX)
        n = (size_t)SS_IO_MAX; /* the count fits the int returned */
    return (int)read_body(h, buf, n);
}

bool ss__http_body_drain(ss_http *h)
{
    if (h->body_error)
        return false;
    if (h->body_done)
        return true;
    /* A client told nothing by "100 Continue" may never send the body, or
     * send it much later: reading it would stall. Close instead. */
    if (h->expect_continue && !h->continue_sent)
        return false;
    /* Draining is only worth it for a small remainder that arrives
     * promptly; the response has gone out, so closing loses nothing but
     * the connection. Anything larger than DRAIN_LIMIT (known up front for
     * Content-Length, counted as it comes for chunked) closes, and the
     * whole drain gets header_timeout — not io_timeout per read, which a
     * client sending a byte at a time would renew for days. */
    if (h->body_kind == SS_HTTP_BODY_LENGTH) {
        uint64_t buffered = h->pos < h->len ? h->len - h->pos : 0;
        if (h->body_left > buffered && h->body_left - buffered > DRAIN_LIMIT)
            return false;
    }
    int64_t deadline = ss_now_ns() + (int64_t)(h->cfg.header_timeout * 1e9);
    uint64_t drained = 0;
    char sink[2048];
    bool ok = false;
    for (;;) {
        double left = (double)(deadline - ss_now_ns()) / 1e9;
        if (left < 1e-6)
            break;
        ss_request_set_timeout(
            h->req, left < h->cfg.io_timeout ? left : h->cfg.io_timeout);
        int got = ss_http_read_body(h, sink, sizeof sink);
        if (got <= 0) {
            ok = got == 0;
            break;
        }
        drained += (uint64_t)got;
        if (drained > DRAIN_LIMIT)
            break;
    }
    ss_request_set_timeout(h->req, h->cfg.io_timeout);
    return ok;
}
