/*
 * websocket_handshake.c — the opening handshake (RFC 6455 §4.2): checking
 * an upgrade request, choosing a subprotocol, answering 101, or refusing
 * with the status the RFC names (400, 426 with the version we speak, 403
 * from the Origin hook).
 *
 * The 101 goes out through the HTTP handler's own response functions, so
 * the access log shows it; then the wire is taken (ss_http_request_of): the
 * HTTP handler closes the connection after the callback instead of
 * reading another request from it. Bytes the HTTP handler had already
 * read past the request head (a client that sent frames without waiting
 * for the 101) are moved into the WebSocket, to be read first.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "websocket_internal.h"

#define DEFAULT_MAX_MESSAGE ((size_t)1 << 20)
#define DEFAULT_PING_INTERVAL 30.0
#define DEFAULT_IDLE_TIMEOUT 60.0
#define DEFAULT_SEND_TIMEOUT 10.0

/* ---- comma-separated header lists ----------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Calls fn on each element of every field called name (trimmed, empty
 * ones skipped) until it returns true; returns whether one did. */
static bool list_any(const ss_http_request *req, const char *name,
                     bool (*fn)(const char *s, size_t n, void *arg), void *arg)
{
    for (const ss_http_header *f = ss_http_header_find(req, name); f;
         f = ss_http_header_next(req, name, f)) {
        const char *p = f->value, *end = f->value + f->value_len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            const char *s = p;
            while (s < e && is_space(*s))
                s++;
            const char *t = e;
            while (t > s && is_space(t[-1]))
                t--;
            if (t > s && fn(s, (size_t)(t - s), arg))
                return true;
            p = comma ? comma + 1 : end;
        }
    }
    return false;
}

static bool token_is(const char *s, size_t n, void *arg)
{
    const char *token = arg;
    return strlen(token) == n && strncasecmp(s, token, n) == 0;
}

bool ss_ws_is_upgrade(ss_http *h)
{
    if (!h)
        return false;
    const ss_http_request *req = ss_http_parsed(h);
    return req->method_len == 3 && memcmp(req->method, "GET", 3) == 0 &&
           list_any(req, "upgrade", token_is, "websocket") &&
           list_any(req, "connection", token_is, "upgrade");
}

/* ---- refusing ------------------------------------------------------- */

static int refuse(ss_http *h, int status, const char *explain, int error)
{
    (void)ss_http_send_error(h, status, explain);
    return error;
}

/* 426 with the version we speak (§4.4), and a short body saying why. */
static int refuse_version(ss_http *h)
{
    static const char body[] = "WebSocket version 13 is required.\n";
    ss_http_close_connection(h);
    int rc = ss_http_send_response(h, 426, NULL);
    if (!rc)
        rc = ss_http_send_header(h, "Sec-WebSocket-Version", "13");
    if (!rc)
        rc = ss_http_send_header(h, "Content-Type", "text/plain");
    if (!rc)
        rc = ss_http_send_headerf(h, "Content-Length", "%zu", sizeof body - 1);
    if (!rc)
        rc = ss_http_end_headers(h);
    if (!rc)
        rc = ss_http_write(h, body, sizeof body - 1);
    return -EPROTO;
}

/* A Sec-WebSocket-Key is the base64 of 16 bytes (§4.1): 22 characters of
 * the alphabet, then "==". */
static bool key_valid(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return false;
    }
    /* The last character before the padding carries 2 bits: the rest 0. */
    return strchr("AQgw", k[21]) != NULL;
}

/* ---- subprotocols --------------------------------------------------- */

static const char *choose_subprotocol(const ss_http_request *req,
                                      const char *const *ours)
{
    if (!ours)
        return NULL;
    for (; *ours; ours++)
        if (list_any(req, "sec-websocket-protocol", token_is, (void *)*ours))
            return *ours;
    return NULL;
}

/* ---- accepting ------------------------------------------------------ */

static void apply_config(ss_ws *ws, const ss_ws_config *cfg)
{
    ss_ws_config c = {0};
    if (cfg)
        c = *cfg;
    ws->max_message_size =
        c.max_message_size ? c.max_message_size : DEFAULT_MAX_MESSAGE;
    double ping = c.ping_interval == 0 ? DEFAULT_PING_INTERVAL : c.ping_interval;
    double idle = c.idle_timeout == 0 ? DEFAULT_IDLE_TIMEOUT : c.idle_timeout;
    ws->ping_interval_ns = ping > 0 ? (int64_t)(ping * 1e9) : 0;
    ws->idle_timeout_ns = idle > 0 ? (int64_t)(idle * 1e9) : 0;
    ws->send_timeout = c.send_timeout > 0 ? c.send_timeout : DEFAULT_SEND_TIMEOUT;
}

/* Bytes past the request head (a GET has no body): the start of the
 * WebSocket stream. */
static int take_leftover(ss_ws *ws, ss_http *h)
{
    if (!h->buf || h->pos >= h->len)
        return 0;
    size_t n = h->len - h->pos;
    ws->pre = malloc(n);
    if (!ws->pre)
        return -ENOMEM;
    memcpy(ws->pre, h->buf + h->pos, n);
    ws->pre_len = n;
    h->len = h->pos; /* ours now, not the next request's */
    return 0;
}

/* The exchange lives as long as the WebSocket, which may be hours, idle
 * most of them: give back what only reading and answering HTTP needed.
 * The head buffer shrinks to the head itself (8 KiB to a few hundred
 * bytes) and the header array to the headers there are, with the parsed
 * request's pointers moved along, so ss_ws_http() still reads them; the
 * response buffer goes (the 101 is sent). Nothing is lost if memory is
 * short: a realloc that fails leaves the larger block in place. */
static void compact_exchange(ss_http *h)
{
    ss_http_request *r = &h->parsed;
    size_t n = r->header_count;
    if (n < r->header_capacity) {
        ss_http_header *fewer = realloc(r->headers, (n ? n : 1) * sizeof *fewer);
        if (fewer) {
            r->headers = h->headers = fewer;
            r->header_capacity = h->header_capacity = n ? n : 1;
        }
    }
    free(h->out);
    h->out = NULL;
    h->out_cap = h->out_len = 0;
    size_t keep = h->head_len;
    if (!h->buf || keep == 0 || keep >= h->cap || h->len > keep)
        return;
    /* Offsets first: the old block may be gone after realloc. */
    const char *old = h->buf;
    size_t method = (size_t)(r->method - old);
    size_t target = (size_t)(r->target - old);
    size_t line = (size_t)(r->request_line - old);
    for (size_t i = 0; i < n; i++) {
        r->headers[i].name = (const char *)(uintptr_t)(r->headers[i].name - old);
        r->headers[i].value =
            (const char *)(uintptr_t)(r->headers[i].value - old);
    }
    char *smaller = realloc(h->buf, keep);
    const char *base = smaller ? smaller : h->buf;
    if (smaller) {
        h->buf = smaller;
        h->cap = keep;
    }
    r->method = base + method;
    r->target = base + target;
    r->request_line = base + line;
    for (size_t i = 0; i < n; i++) {
        r->headers[i].name = base + (uintptr_t)r->headers[i].name;
        r->headers[i].value = base + (uintptr_t)r->headers[i].value;
    }
}

int ss_ws_accept(ss_http *h, const ss_ws_config *cfg, ss_ws **out)
{
    if (!h || !out)
        return -EINVAL;
    *out = NULL;
    const ss_http_request *req = ss_http_parsed(h);
    if (!ss_ws_is_upgrade(h))
        return refuse(h, 400, "not a WebSocket upgrade request", -EPROTO);
    if (ss_http_version_minor(h) < 1)
        return refuse(h, 400, "WebSocket needs HTTP/1.1", -EPROTO);
    const ss_http_header *version =
        ss_http_header_find(req, "sec-websocket-version");
    if (!version || version->value_len != 2 ||
        memcmp(version->value, "13", 2) != 0 ||
        ss_http_header_next(req, "sec-websocket-version", version))
        return refuse_version(h);
    const ss_http_header *key = ss_http_header_find(req, "sec-websocket-key");
    if (!key || ss_http_header_next(req, "sec-websocket-key", key) ||
        !key_valid(key->value, key->value_len))
        return refuse(h, 400, "missing or malformed Sec-WebSocket-Key",
                      -EPROTO);
    if (cfg && cfg->check_origin &&
        !cfg->check_origin(h, ss_http_header_value(h, "origin"), cfg->user))
        return refuse(h, 403, "origin not allowed", -EACCES);

    ss_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return refuse(h, 500, "out of memory", -ENOMEM);
    ws->h = h;
    apply_config(ws, cfg);
    ws->subprotocol =
        choose_subprotocol(req, cfg ? cfg->subprotocols : NULL);
    char accept[29];
    ss__ws_accept_key(key->value, key->value_len, accept);

    /* 101 is an interim status to the HTTP handler: end_headers sends it
     * at once, and we record it as the exchange's final answer for the
     * access log. */
    int rc = ss_http_send_response(h, 101, NULL);
    if (!rc)
        rc = ss_http_send_header(h, "Upgrade", "websocket");
    if (!rc)
        rc = ss_http_send_header(h, "Connection", "Upgrade");
    if (!rc)
        rc = ss_http_send_header(h, "Sec-WebSocket-Accept", accept);
    if (!rc && ws->subprotocol)
        rc = ss_http_send_header(h, "Sec-WebSocket-Protocol", ws->subprotocol);
    if (!rc)
        rc = ss_http_end_headers(h);
    if (rc < 0) {
        free(ws);
        return rc;
    }
    h->status = 101;
    h->final_sent = true;
    ws->req = ss_http_request_of(h);
    if (take_leftover(ws, h) < 0) {
        free(ws);
        ss_http_close_connection(h);
        return -ENOMEM;
    }
    compact_exchange(h);
    ws->last_rx = ws->last_ping = ss_now_ns();
    *out = ws;
    return 0;
}

const char *ss_ws_subprotocol(const ss_ws *ws)
{
    return ws ? ws->subprotocol : NULL;
}

ss_http *ss_ws_http(ss_ws *ws)
{
    return ws ? ws->h : NULL;
}
