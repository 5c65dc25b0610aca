/*
 * http_handler.c — ss_http_handler, Python's BaseHTTPRequestHandler: the
 * per-connection loop that reads a head, dispatches it to a method
 * callback, finishes the exchange and repeats while the connection stays
 * alive, under the idle, header and I/O deadlines. Guide:
 * docs/http-handler.md ("What the handler does for you").
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define DEFAULT_MAX_BODY_SIZE ((uint64_t)16 << 20)
#define DEFAULT_HEADER_TIMEOUT 10.0
#define DEFAULT_IDLE_TIMEOUT 15.0
#define DEFAULT_IO_TIMEOUT 30.0

void ss_http_config_init(ss_http_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ss_http_limits_init(&cfg->limits);
    cfg->max_body_size = DEFAULT_MAX_BODY_SIZE;
    cfg->header_timeout = DEFAULT_HEADER_TIMEOUT;
    cfg->idle_timeout = DEFAULT_IDLE_TIMEOUT;
    cfg->io_timeout = DEFAULT_IO_TIMEOUT;
}

/* ---- accessors ----------------------------------------------------- */

ss_request *ss_http_request_of(ss_http *h)
{
    /* The caller may write raw bytes next: our held-back head goes first.
     * From here on the callback owns the wire: we cannot know what it
     * wrote, so we add no 500 of our own and close after the exchange. */
    if (h->head_pending)
        (void)ss__http_flush_head(h);
    h->raw_output = true;
    return h->req;
}

ss_server *ss_http_server(const ss_http *h)
{
    return ss_request_server(h->req);
}

const struct sockaddr *ss_http_client_address(const ss_http *h, socklen_t *len)
{
    return ss_request_client_address(h->req, len);
}

int ss_http_client_address_string(const ss_http *h, char *buf, size_t size)
{
    return ss_request_client_address_string(h->req, buf, size);
}

bool ss_http_input_time(const ss_http *h, struct timespec *when)
{
    return ss_request_input_time(h->req, when);
}

void *ss_http_state(const ss_http *h)
{
    return ss_request_state(h->req);
}

const ss_http_config *ss_http_config_of(const ss_http *h)
{
    return &h->cfg;
}

void *ss_http_config_user(const ss_http *h)
{
    return h->cfg.user;
}

void *ss_http_server_user(const ss_http *h)
{
    return ss_request_user(h->req);
}

const ss_http_request *ss_http_parsed(const ss_http *h)
{
    return &h->parsed;
}

const char *ss_http_method_name(const ss_http *h)
{
    return h->method_copy ? h->method_copy : "";
}

const char *ss_http_target(const ss_http *h)
{
    return h->target_copy ? h->target_copy : "";
}

int ss_http_version_minor(const ss_http *h)
{
    return h->parsed.version_minor;
}

const char *ss_http_header_value(ss_http *h, const char *name)
{
    const ss_http_header *f = ss_http_header_find(&h->parsed, name);
    return f ? ss__http_copy(h, f->value, f->value_len) : NULL;
}

void ss_http_close_connection(ss_http *h)
{
    h->close = true;
}

/* ---- connection state ---------------------------------------------- */

static size_t limit_or(size_t value, size_t fallback)
{
    if (value == 0)
        value = fallback;
    return value > SS_HTTP_LIMIT_CAP ? SS_HTTP_LIMIT_CAP : value;
}

static void fill_defaults(ss_http_config *c)
{
    ss_http_limits *l = &c->limits;
    l->max_request_line =
        limit_or(l->max_request_line, SS_HTTP_DEFAULT_MAX_REQUEST_LINE);
    l->max_header_line =
        limit_or(l->max_header_line, SS_HTTP_DEFAULT_MAX_HEADER_LINE);
    l->max_headers = limit_or(l->max_headers, SS_HTTP_DEFAULT_MAX_HEADERS);
    l->max_header_bytes =
        limit_or(l->max_header_bytes, SS_HTTP_DEFAULT_MAX_HEADER_BYTES);
    if (c->max_body_size == 0)
        c->max_body_size = DEFAULT_MAX_BODY_SIZE;
    if (!(c->header_timeout > 0))
        c->header_timeout = DEFAULT_HEADER_TIMEOUT;
    if (!(c->idle_timeout > 0))
        c->idle_timeout = DEFAULT_IDLE_TIMEOUT;
    if (!(c->io_timeout > 0))
        c->io_timeout = DEFAULT_IO_TIMEOUT;
}

static ss_http *conn_new(ss_request *req, const ss_http_config *user_cfg)
{
    ss_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->req = req;
    h->client_keep_alive = -1;
    if (user_cfg)
        h->cfg = *user_cfg;
    else
        ss_http_config_init(&h->cfg);
    fill_defaults(&h->cfg);
    h->server_header =
        h->cfg.server_version ? h->cfg.server_version : "sockserv/0.1.0";
    h->server_header_len = strlen(h->server_header);
    const ss_http_limits *l = &h->cfg.limits;
    /* Blank lines before the request line may take max_request_line bytes
     * of their own (the parser skips that many), hence twice. */
    h->max_cap = 2 * l->max_request_line + l->max_header_bytes + 1;
    /* Every field line takes at least 3 bytes ("a:\n"), so a huge
     * max_headers never needs more slots than the byte limit allows. */
    h->header_capacity = l->max_headers;
    if (h->header_capacity > l->max_header_bytes / 3 + 1)
        h->header_capacity = l->max_header_bytes / 3 + 1;
    /* The buffers come with the first byte of the first request
     * (read_head): a connection that never sends one costs only this. */
    return h;
}

/* ---- buffers: held only while a request is in progress -------------- */

/* An idle keep-alive connection holds no buffers (conn_release_buffers),
 * so each request takes a set when its first byte arrives and gives it
 * back when the exchange is over. Each thread keeps one spare set, so a
 * busy thread hands the same buffers from one request to the next instead
 * of calling malloc and free four times per request: under the coroutine
 * strategy a request usually runs from first byte to last without
 * parking, so one spare per scheduler thread is enough. */
typedef struct spare_buffers {
    char *buf;
    size_t cap;
    ss_http_header *headers;
    size_t header_capacity;
    ss__http_block *arena;
    char *out;
    size_t out_cap;
} spare_buffers;

static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static bool spare_key_ok;

static void spare_free(void *p)
{
    spare_buffers *s = p;
    for (ss__http_block *b = s->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(s->buf);
    free(s->headers);
    free(s->out);
    free(s);
}

static void spare_key_create(void)
{
    /* Runs at thread exit for each thread that parked a set. */
    spare_key_ok = pthread_key_create(&spare_key, spare_free) == 0;
}

/* The buffers a request needs: the head buffer and the header array (the
 * arena and the response-head buffer come along when the spare has them). */
static int conn_buffers_alloc(ss_http *h)
{
    pthread_once(&spare_once, spare_key_create);
    spare_buffers *s = spare_key_ok ? pthread_getspecific(spare_key) : NULL;
    if (s && s->header_capacity == h->header_capacity) {
        (void)pthread_setspecific(spare_key, NULL);
        h->buf = s->buf;
        h->cap = s->cap;
        h->headers = s->headers;
        h->arena = s->arena;
        h->out = s->out;
        h->out_cap = s->out_cap;
        free(s);
    } else {
        h->headers = malloc(h->header_capacity * sizeof *h->headers);
        h->buf = malloc(SS__HTTP_HEAD_MIN_CAPACITY);
        if (!h->headers || !h->buf) {
            free(h->headers);
            free(h->buf);
            h->headers = NULL;
            h->buf = NULL;
            return -ENOMEM;
        }
        h->cap = SS__HTTP_HEAD_MIN_CAPACITY;
    }
    h->parsed.headers = h->headers;
    h->parsed.header_capacity = h->header_capacity;
    return 0;
}

/* Between keep-alive requests, with nothing of the next one read yet, and
 * when the connection ends: give every buffer back — to this thread's
 * spare slot if it is empty, else to malloc — so an idle connection holds
 * only ss_http and the request (docs/performance.md, memory per idle
 * connection). */
static void conn_release_buffers(ss_http *h)
{
    free(h->scratch); /* rare (chunked bodies, draining): never kept */
    h->scratch = NULL;
    ss__http_arena_reset(h);
    /* Without a head buffer this is no set to keep: only what an answer
     * sent before the first byte was read took (the 500 for a handler
     * without its configuration), freed below. */
    spare_buffers *s = NULL;
    if (h->buf && spare_key_ok && !pthread_getspecific(spare_key) &&
        h->cap == SS__HTTP_HEAD_MIN_CAPACITY && (s = malloc(sizeof *s))) {
        *s = (spare_buffers){h->buf,   h->cap, h->headers, h->header_capacity,
                             h->arena, h->out, h->out_cap};
        if (pthread_setspecific(spare_key, s) != 0) {
            free(s);
            s = NULL;
        }
    }
    if (!s) {
        ss__http_arena_free(h);
        free(h->headers);
        free(h->buf);
        free(h->out);
    }
    h->arena = NULL;
    h->headers = NULL;
    h->buf = NULL;
    h->out = NULL;
    h->cap = h->len = h->out_cap = h->out_len = 0;
}

static void conn_free(void *p)
{
    ss_http *h = p;
    conn_release_buffers(h);
    free(h);
}

static void exchange_reset(ss_http *h)
{
    ss__http_arena_reset(h);
    h->parsed = (ss_http_request){.headers = h->headers,
                                  .header_capacity = h->header_capacity};
    h->head_len = 0;
    h->pos = 0;
    h->parsed_len = h->reparse_at = 0;
    h->body_kind = SS_HTTP_BODY_NONE;
    h->declared_length = -1;
    h->body_left = 0;
    h->body_done = true;
    h->expect_continue = false;
    h->continue_sent = false;
    h->body_error = 0;
    h->method_copy = h->target_copy = NULL;
    ss__http_request_reset(h);
    h->is_head = false;
    h->out_len = 0;
    h->status = h->head_status = 0;
    h->head_open = h->head_pending = h->final_sent = h->raw_output = false;
    h->has_length = h->has_transfer_encoding = h->has_connection = false;
    h->response_length = -1;
    h->close = false;
    h->client_keep_alive = -1;
    h->peer_error = 0;
    h->bytes_sent = 0;
    h->logged = false;
}

/* Move what follows the finished exchange (the next pipelined request) to
 * the start of the head buffer. */
static void keep_leftover(ss_http *h)
{
    if (h->spos < h->slen) {
        /* The body ended inside bytes read into scratch; the head buffer's
         * remainder was used up before scratch was filled. */
        h->len = h->slen - h->spos;
        memcpy(h->buf, h->scratch + h->spos, h->len);
    } else {
        h->len -= h->pos;
        memmove(h->buf, h->buf + h->pos, h->len);
    }
    h->spos = h->slen = 0;
}

/* ---- reading a request head ---------------------------------------- */

#define HEAD_CLOSED 0       /* end the connection quietly */
#define HEAD_TIMED_OUT (-2) /* part of a head came, then the deadline */
#define HEAD_NO_MEMORY (-3) /* the buffers for a new head could not be had */
#define HEAD_IDLE (-4)      /* no byte yet: park until idle_timeout */
#define HEAD_PARTIAL (-5)   /* part of a head: park until its deadline */

static double seconds_until(int64_t deadline)
{
    return (double)(deadline - ss_now_ns()) / 1e9;
}

/* After a parse of buf[0..len) said "incomplete": the smallest length at
 * which the parser could refuse the head without another '\n' arriving —
 * where the line being received reaches its limit (414 for the request
 * line, 431 for a field line or the field section). Mirrors the windows in
 * ss_http_parse_request(). */
static size_t limit_reached_at(const ss_http *h)
{
    const ss_http_limits *l = &h->cfg.limits;
    const char *buf = h->buf;
    size_t len = h->len;
    if (h->parsed.method_len == 0) {
        /* Still in the request line, after any blank lines. */
        size_t p = 0;
        while (p < len) {
            if (buf[p] == '\n')
                p++;
            else if (buf[p] == '\r' && p + 1 < len && buf[p + 1] == '\n')
                p += 2;
            else
                break;
        }
        return p + l->max_request_line;
    }
    /* In the field section: it starts after the request line's '\n'; the
     * line being received starts after the last '\n' so far. */
    size_t rl_end =
        (size_t)(h->parsed.request_line - buf) + h->parsed.request_line_len;
    const char *nl = memchr(buf + rl_end, '\n', len - rl_end);
    size_t section = nl ? (size_t)(nl - buf) + 1 : len;
    size_t line = section;
    for (size_t i = len; i > section; i--)
        if (buf[i - 1] == '\n') {
            line = i;
            break;
        }
    size_t budget = l->max_header_bytes - (line - section);
    return line + (l->max_header_line < budget ? l->max_header_line : budget);
}

/* Whether the bytes read since the last parse can change its answer. The
 * parser is stateless and starts from the buffer's beginning, so parsing
 * after every read would cost O(n^2) for a head dribbled a byte at a time;
 * instead it runs again only when a line may have ended or a limit may
 * have been passed (limits are enforced before the newline arrives). */
static bool parse_due(const ss_http *h)
{
    if (h->parsed_len == 0)
        return true;
    if (h->len >= h->reparse_at)
        return true;
    return memchr(h->buf + h->parsed_len, '\n', h->len - h->parsed_len) != NULL;
}

/* The first byte of a request on an idle connection, which holds no
 * buffers: the byte lands in the request's own small read buffer, with
 * whatever else the same recv() brought, and only then are the head
 * buffer and header array allocated. Returns 1, HEAD_IDLE when nothing
 * has arrived (the connection parks), or HEAD_CLOSED / HEAD_NO_MEMORY. */
static int await_first_byte(ss_http *h)
{
    char first;
    int got = ss_read_nowait(h->req, &first, 1);
    if (got == -EAGAIN)
        return HEAD_IDLE;
    if (got <= 0)
        return HEAD_CLOSED; /* EOF, reset */
    if (conn_buffers_alloc(h) < 0)
        return HEAD_NO_MEMORY;
    h->buf[0] = first;
    h->len = 1;
    return 1;
}

/* Reads what has arrived of a request head, without waiting: the
 * connection parks between reads (ss_park), so a slow or idle client
 * holds no worker under a bounded strategy. Returns the head's length
 * (> 0), HEAD_IDLE or HEAD_PARTIAL (nothing more yet: park), HEAD_CLOSED,
 * HEAD_TIMED_OUT, HEAD_NO_MEMORY, or an SS_HTTP_E_* error. */
static int read_head(ss_http *h)
{
    ss_request *req = h->req;
    if (!h->buf) {
        int rc = await_first_byte(h);
        if (rc <= 0 || rc == HEAD_IDLE)
            return rc;
    }
    /* The whole head is due within header_timeout of its first byte.
     * The deadline is set when a parse first finds the head incomplete:
     * a head that came whole (nearly every one) needs no clock read. */
    for (;;) {
        if (h->len > 0 && parse_due(h)) {
            int rc = ss_http_parse_request(h->buf, h->len, &h->cfg.limits,
                                           &h->parsed);
            if (rc != SS_HTTP_INCOMPLETE)
                return rc;
            h->parsed_len = h->len;
            h->reparse_at = limit_reached_at(h);
            if (h->reparse_at <= h->len) /* cannot happen; never spin */
                h->reparse_at = SIZE_MAX;
        }
        if (h->len == h->cap) {
            /* The limits refuse a head before it can fill max_cap. */
            if (h->cap >= h->max_cap)
                return SS_HTTP_E_HEADERS_TOO_LARGE;
            size_t cap = h->cap * 2 < h->max_cap ? h->cap * 2 : h->max_cap;
            char *grown = realloc(h->buf, cap);
            if (!grown)
                return HEAD_CLOSED;
            h->buf = grown;
            h->cap = cap;
            /* h->parsed points into the old buffer: parse again. */
            h->parsed_len = 0;
        }
        if (h->len > 0) {
            if (h->head_deadline == 0)
                h->head_deadline =
                    ss_now_ns() + (int64_t)(h->cfg.header_timeout * 1e9);
            else if (seconds_until(h->head_deadline) < 1e-6)
                return HEAD_TIMED_OUT;
        }
        int got = ss_read_nowait(req, h->buf + h->len, h->cap - h->len);
        if (got == -EAGAIN)
            return h->len > 0 ? HEAD_PARTIAL : HEAD_IDLE;
        if (got <= 0)
            return HEAD_CLOSED; /* EOF, reset */
        h->len += (size_t)got;
    }
}

/* ---- dispatch ------------------------------------------------------ */

static ss_http_method_fn find_method(const ss_http *h)
{
    const ss_http_method *m = h->cfg.methods;
    if (!m)
        return NULL;
    for (; m->name; m++)
        if (strncmp(m->name, h->parsed.method, h->parsed.method_len) == 0 &&
            m->name[h->parsed.method_len] == '\0')
            return m->fn;
    return NULL;
}

/* RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without
 * a Host field and to any request with more than one Host field line. Two
 * hosts are a routing-confusion vector (a proxy in front may route by one
 * and the callback read the other), so the check is here, for every
 * callback, rather than left to each. Returns why the request is refused,
 * or NULL. */
static const char *host_problem(const ss_http *h)
{
    const ss_http_request *req = &h->parsed;
    const ss_http_header *host = ss_http_header_find(req, "host");
    if (host == NULL)
        return req->version_minor >= 1
                   ? "an HTTP/1.1 request needs a Host field"
                   : NULL;
    if (ss_http_header_next(req, "host", host) != NULL)
        return "more than one Host field";
    return NULL;
}

/* After a callback returned 0: make sure a whole response went out. */
static void complete_response(ss_http *h)
{
    if (h->head_open) /* send_response without end_headers: end it */
        (void)ss_http_end_headers(h);
    if (h->head_pending && ss__http_flush_head(h) < 0)
        return;
    if (!h->final_sent && !h->raw_output) {
        /* Nothing was answered. A body the client sent wrong explains it;
         * otherwise it is the callback's fault: 500, as Python would
         * after an exception. (The refusal logs the exchange.) */
        int status = ss_http_error_status(h->body_error);
        ss__http_refuse(h, status ? status : 500,
                        status ? ss_http_error_reason(h->body_error)
                               : "the handler sent no response");
    }
    if (h->raw_output)
        h->close = true; /* framing unknown to us */
    /* A body shorter or longer than its declared Content-Length leaves the
     * client waiting for bytes that never come, or reading ours as the
     * next response: only closing ends it cleanly. */
    if (h->has_length && h->final_sent && !h->is_head && h->status >= 200 &&
        h->status != 204 && h->status != 205 && h->status != 304 &&
        (h->response_length < 0 ||
         (uint64_t)h->response_length != h->bytes_sent))
        h->close = true;
}

/* The failure is the client's doing when the callback only passed on an
 * error from talking to it (reset, timeout, malformed body). */
static bool client_caused(const ss_http *h)
{
    return h->peer_error != 0 || h->body_error != 0;
}

static int serve_connection(ss_http *h)
{
    ss_request *req = h->req;
    for (;;) {
        /* A connection parked half-way through a head comes back here
         * with the head as it was. */
        if (!h->reading_head) {
            exchange_reset(h);
            h->reading_head = true;
            h->head_deadline = 0;
        }
        int rc = read_head(h);
        if (rc == HEAD_IDLE) {
            /* Idle: no buffers, and (ss_park) no worker under a bounded
             * strategy. handle is called again with the next request's
             * first bytes; after idle_timeout the connection ends
             * quietly. */
            if (h->len == 0)
                conn_release_buffers(h);
            return ss_park(req, h->cfg.idle_timeout);
        }
        if (rc == HEAD_PARTIAL) /* back at the deadline, for the 408 */
            return ss_park_until(req, seconds_until(h->head_deadline));
        h->reading_head = false;
        if (rc == HEAD_CLOSED)
            return 0;
        if (rc == HEAD_NO_MEMORY)
            return -ENOMEM;
        if (rc == HEAD_TIMED_OUT) {
            ss_request_set_timeout(req, h->cfg.io_timeout);
            ss__http_refuse(h, 408, "the request head took too long");
            return 0;
        }
        ss_request_set_timeout(req, h->cfg.io_timeout);
        if (rc < 0) {
            ss__http_refuse(h, ss_http_error_status(rc),
                            ss_http_error_reason(rc));
            return 0;
        }
        h->head_len = h->pos = (size_t)rc;
        h->is_head = h->parsed.method_len == 4 &&
                     memcmp(h->parsed.method, "HEAD", 4) == 0;
        h->method_copy =
            ss__http_copy(h, h->parsed.method, h->parsed.method_len);
        h->target_copy =
            ss__http_copy(h, h->parsed.target, h->parsed.target_len);
        if (!h->method_copy || !h->target_copy) {
            ss__http_refuse(h, 500, "out of memory");
            return -ENOMEM;
        }
        const char *bad_host = host_problem(h);
        if (bad_host) {
            ss__http_refuse(h, 400, bad_host);
            return 0;
        }
        rc = ss__http_body_begin(h);
        if (rc < 0) {
            ss__http_refuse(h, ss_http_error_status(rc),
                            ss_http_error_reason(rc));
            return 0;
        }
        ss_http_method_fn fn = find_method(h);
        if (!fn) {
            ss__http_refuse(h, 501, "Unsupported method");
            return 0;
        }
        rc = fn(h);
        if (rc != 0) {
            /* Like an exception in do_GET: no more requests here. */
            if (h->head_pending)
                (void)ss__http_flush_head(h);
            if (client_caused(h)) {
                int status = ss_http_error_status(h->body_error);
                if (status && !h->final_sent && !h->raw_output)
                    ss__http_refuse(h, status,
                                    ss_http_error_reason(h->body_error));
                else
                    ss__http_log_exchange(h);
                return 0;
            }
            ss__http_log_exchange(h);
            return rc;
        }
        complete_response(h);
        if (!h->close && !ss__http_body_drain(h))
            h->close = true;
        if (!ss__http_client_keeps_alive(h))
            h->close = true;
        ss__http_log_exchange(h);
        if (h->close)
            return 0;
        keep_leftover(h);
        if (h->len == 0)
            conn_release_buffers(h);
    }
}

static double http_first_byte_timeout(const ss_request *req)
{
    const ss_http_config *cfg = ss_request_class_data(req);
    return cfg && cfg->idle_timeout > 0 ? cfg->idle_timeout
                                        : DEFAULT_IDLE_TIMEOUT;
}

static int http_handle(ss_request *req)
{
    const ss_http_config *cfg = ss_request_class_data(req);
    /* The connection's state lives across handle calls: a parked
     * connection comes back here with its next request. */
    ss_http *h = ss_request_base_data(req);
    if (!h) {
        h = conn_new(req, cfg);
        if (!h)
            return -ENOMEM;
        ss_request_set_base_data(req, h, conn_free);
    }
    int rc = 0;
    if (cfg) {
        rc = serve_connection(h);
    } else {
        /* A handler class without its configuration is a program error:
         * answer the first request 500 and report it. */
        exchange_reset(h);
        ss_request_set_timeout(req, h->cfg.io_timeout);
        ss__http_refuse(h, 500, "the HTTP handler has no configuration");
        rc = -EINVAL;
    }
    if (rc != SS_PARK) {
        ss_request_set_base_data(req, NULL, NULL);
        conn_free(h);
    }
    return rc;
}

const ss_handler_class ss_http_handler = {
    .base = &ss_stream_handler,
    .handle = http_handle,
    /* A head and a small body may still leave in two sends; Nagle plus
     * delayed ACKs would hold the second for 40 ms on keep-alive. */
    .disable_nagle_algorithm = true,
    /* A new connection may wait for its first byte without a worker, for
     * as long as an idle keep-alive one. */
    .first_byte_timeout = http_first_byte_timeout,
    /* Heads are read straight into the connection's own head buffer, so
     * the request's read buffer is seldom used: keep it small, as it is
     * held for as long as the connection stays open. */
    .rbufsize = 512,
};
