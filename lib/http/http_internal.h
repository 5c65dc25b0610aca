/*
 * http_internal.h — what the HTTP handler's files share, layered with no
 * cycle: http_handler.c (the connection loop) → http_request.c (path,
 * query, form and route helpers) → http_body.c (request bodies) →
 * http_response.c (responses and the access log) →
 * http_exchange.c (the string arena and a failed peer).
 *
 * One ss_http lives for a whole connection and is reused by every request
 * on it, so a keep-alive request allocates nothing: the head buffer, the
 * header array, the response head buffer and the string arena are kept and
 * only reset between requests.
 */
#ifndef SOCKSERV_HTTP_INTERNAL_H
#define SOCKSERV_HTTP_INTERNAL_H

#include <netinet/in.h> /* INET6_ADDRSTRLEN */
#include <time.h>

#include "sockserv/http.h"

/* Raw body bytes read past the head buffer (chunked framing, draining). Not
 * larger than HEAD_MIN_CAPACITY, so leftovers always fit back there. */
#define SS__HTTP_SCRATCH 8192
#define SS__HTTP_HEAD_MIN_CAPACITY 8192

/* Captures one ss_http_match() keeps (more: the pattern never matches). */
#define SS__HTTP_MAX_CAPTURES 8

/* Bump allocator for the NUL-terminated copies handed to callbacks;
 * blocks never move, so earlier pointers stay valid until the reset. */
typedef struct ss__http_block {
    struct ss__http_block *next;
    size_t size, used;
    char data[];
} ss__http_block;

struct ss_http {
    ss_request *req;
    ss_http_config cfg;        /* the user's, with defaults filled in */
    const char *server_header; /* cfg.server_version or ours */
    size_t server_header_len;  /* strlen(server_header), once */

    /* Request head: buf[0..len) holds bytes read; the current head is
     * buf[0..head_len); buf[pos..len) is body or the next request. */
    char *buf;
    size_t cap, max_cap, len, head_len, pos;
    ss_http_request parsed;
    ss_http_header *headers;
    size_t header_capacity;
    /* read_head: buf[0..parsed_len) was parsed and found incomplete; the
     * next parse is due when a '\n' arrives or len reaches reparse_at,
     * where a limit could first be exceeded. */
    size_t parsed_len, reparse_at;
    /* A head is being read (the connection may park and come back in
     * the middle of one); it is due by head_deadline (0: no byte yet). */
    bool reading_head;
    int64_t head_deadline;

    /* Body. */
    int body_kind;           /* ss_http_body_kind */
    int64_t declared_length; /* -1 unless SS_HTTP_BODY_LENGTH */
    uint64_t body_left;      /* SS_HTTP_BODY_LENGTH: still unread */
    ss_http_chunked_decoder dec;
    bool body_done;
    bool expect_continue; /* client waits for 100 Continue */
    bool continue_sent;
    int body_error;    /* sticky: the body can no longer be read */
    size_t spos, slen; /* raw bytes waiting in scratch */

    /* Per-request copies. */
    const char *method_copy, *target_copy;
    /* http_request.c: the decoded path (path_state: 0 not yet, 1 done, -1
     * refused), a form body read whole, the last route match's captures
     * (NUL-terminated copies). All in the arena. */
    const char *path_copy;
    int path_state;
    const char *form;
    size_t form_len;
    bool form_read;
    int capture_count;
    struct {
        const char *name, *value;
    } captures[SS__HTTP_MAX_CAPTURES];
    bool is_head;
    ss__http_block *arena;

    /* Response. */
    char *out; /* the head being built */
    size_t out_len, out_cap;
    int status;              /* final status sent (0: none yet) */
    int head_status;         /* status of the head being built */
    bool head_open;          /* send_response called, head not ended */
    bool head_pending;       /* final head ended, held back for body */
    bool final_sent;         /* a final head went out (or is pending) */
    bool raw_output;         /* bytes written without our head */
    bool has_length;         /* response declared Content-Length */
    int64_t response_length; /* its value; -1 if not a number */
    bool has_transfer_encoding;
    bool has_connection; /* the callback sent a Connection field */
    bool close;          /* close after this exchange */
    /* What the client's request asked for (ss_http_keep_alive), asked
     * once per exchange: -1 not yet, else 0 or 1. */
    signed char client_keep_alive;
    int peer_error;      /* an I/O error talking to the client */
    uint64_t bytes_sent; /* body bytes, for the access log */
    bool logged;         /* the access-log line was written */
    /* The client as the access log writes it, made on the connection's
     * first line (inet_ntop is a tenth of a log line's cost); 0: not yet,
     * or too long to keep, then made per line. */
    unsigned char log_host_len;
    char log_host[INET6_ADDRSTRLEN + 2];

    /* Date header cache: formatting once a second is plenty. */
    time_t date_second;
    char date[40];

    /* SS__HTTP_SCRATCH bytes, allocated the first time a chunked body is
     * read or a body drained: an idle keep-alive connection holds none. */
    char *scratch;
};

/* http_parser.c */
/* How many bytes at the start of s are RFC 9110 token characters (a
 * field name is valid when that is all of it, and at least one). */
size_t ss__http_token_length(const char *s);

/* http_body.c */
/* Work out framing and expectations for the parsed request: 0, or an
 * SS_HTTP_E_* error to refuse it with. */
int ss__http_body_begin(ss_http *h);
/* After the callback: read and discard what it left of the body. Returns
 * true when the connection can carry another request. */
bool ss__http_body_drain(ss_http *h);
/* The body will not be read (an SS_HTTP_E_* error: too large, wrong
 * media type): recorded as the body's error, so the handler answers its
 * status when the callback passes it on, and the connection closes.
 * Returns error. */
int ss__http_body_refuse(ss_http *h, int error);

/* http_response.c */
/* Write all n bytes to the client, io_timeout being the longest wait
 * without progress (not a bound on the whole call). n or a negative
 * errno. */
ssize_t ss__http_send_all(ss_http *h, const void *buf, size_t n);
/* Send a head held back by ss_http_end_headers(). 0 or a negative errno. */
int ss__http_flush_head(ss_http *h);
/* ss_http_keep_alive() of the current request, worked out once. */
bool ss__http_client_keeps_alive(ss_http *h);
/* An error response for a request refused before or after dispatch; the
 * connection is closed after it. */
void ss__http_refuse(ss_http *h, int status, const char *explain);
/* One access-log line for the exchange (unless quiet). raw_line is used
 * when the request line could not be parsed (may be NULL). */
void ss__http_log_exchange(ss_http *h);
/* The standard reason phrase, or NULL for an unknown code. */
const char *ss__http_reason_or_null(int status);

/* http_request.c: forget the previous exchange's path, form and
 * captures (they lived in the arena, which is being reset). */
void ss__http_request_reset(ss_http *h);

/* http_exchange.c: the arena (n bytes until the next reset; NULL when
 * out of memory), kept one block for the next request by reset */
void *ss__http_alloc(ss_http *h, size_t n);
/* s[0..n) as a NUL-terminated string in the arena, or NULL. */
const char *ss__http_copy(ss_http *h, const char *s, size_t n);
void ss__http_arena_reset(ss_http *h);
void ss__http_arena_free(ss_http *h);
/* Record an I/O failure with the client; returns error. */
int ss__http_peer_failed(ss_http *h, int error);

#endif /* SOCKSERV_HTTP_INTERNAL_H */
