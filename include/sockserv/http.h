/**
 * @file
 * sockserv/http.h — an HTTP/1.1 request handler class for libsockserv:
 * Python's http.server.BaseHTTPRequestHandler, in C.
 *
 * It is an ordinary ss_handler_class (ss_http_handler), so it runs under
 * every server kind that is a stream (TCP, Unix stream) and every strategy.
 * Per connection it reads requests (keep-alive and pipelining included),
 * parses them with ss_http_parse_request(), and calls the method callback
 * you registered for the request's method — do_GET, do_POST, or any other
 * token — with an ss_http exchange. Unknown methods get 501, malformed
 * requests 400/414/431/505, bodies over the limit 413, an HTTP/1.1
 * request without Host or any request with two Host lines 400 (RFC 9112
 * §3.2).
 *
 * Using it:
 *
 *     static int do_GET(ss_http *h)
 *     {
 *         static const char body[] = "hello\n";
 *         ss_http_send_response(h, 200, NULL);
 *         ss_http_send_header(h, "Content-Type", "text/plain");
 *         ss_http_send_headerf(h, "Content-Length", "%zu", sizeof body - 1);
 *         ss_http_end_headers(h);
 *         int n = ss_http_write(h, body, sizeof body - 1);
 *         return n < 0 ? n : 0; // the error, for handle_error
 *     }
 *     static const ss_http_method methods[] = {{"GET", do_GET}, {NULL, NULL}};
 *     static const ss_http_config http = {.methods = methods};
 *     ...
 *     ss_handler_class handler = ss_http_handler;   // copy the class
 *     handler.class_data = &http;                    // its configuration
 *     ss_server_new(&srv, &ss_tcp, &ss_threading, ":8000", &handler, &cfg);
 *
 * (ss_http_config_init() fills the defaults; a config with zero fields
 * takes the defaults for them, as documented per field.)
 *
 * Thread-safety: an ss_http belongs to the thread running its request.
 */
#ifndef SOCKSERV_HTTP_H
#define SOCKSERV_HTTP_H

#include <stdint.h>

#include "sockserv/access_log.h"
#include "sockserv/http_parser.h"
#include "sockserv/sockserv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One request/response exchange on a connection. */
typedef struct ss_http ss_http;

/** A method callback (do_GET, …). Returns 0 when the response was sent
 * (or at least started properly), non-zero on failure: the connection is
 * then closed and the error reported through handle_error, as a Python
 * exception in do_GET would be. If it returns 0 without having sent a
 * response (nor taken the connection with ss_http_request_of()), the
 * handler answers 500. */
typedef int (*ss_http_method_fn)(ss_http *h);

/** One entry of a method table: a method and its callback. */
typedef struct ss_http_method {
    const char *name;     /**< "GET", case-sensitive as HTTP methods are */
    ss_http_method_fn fn; /**< do_GET and friends */
} ss_http_method;

/** Common Log Format line for one request, without newline. */
typedef void (*ss_http_log_fn)(void *user, const char *line);

/** The HTTP handler's configuration: the class_data of ss_http_handler. */
typedef struct ss_http_config {
    /** Method table, ended by {NULL, NULL}. A method not in it gets 501
     * (Python: "Unsupported method"). */
    const ss_http_method *methods;
    /** "Server:" header. NULL: "sockserv/<version>". */
    const char *server_version;
    /** Parser limits (request line 65,536 → 414; header line, count 100 and
     * total → 431). Zero fields take the parser's defaults. */
    ss_http_limits limits;
    /** Largest request body accepted (Content-Length or chunked) → 413.
     * 0: 16 MiB. */
    uint64_t max_body_size;
    /** Seconds for a whole request head (request line and headers) to
     * arrive, counted from its first byte — a deadline, not per read, so a
     * client dribbling a byte a second is cut off. 0: 10 s. */
    double header_timeout;
    /** Seconds a kept-alive connection may sit idle between requests.
     * 0: 15 s. */
    double idle_timeout;
    /** Seconds each body read may wait, and the longest a response may go
     * without a byte moving out, however many ss_http_write() and
     * ss_http_sendfile() calls it is sent with: a large body to a client
     * that keeps reading is never cut off, one that stops reading is this
     * long after the last byte it took (a call then reports -ETIMEDOUT).
     * 0: 30 s. */
    double io_timeout;
    /** Where access-log lines go (Common Log Format; control characters,
     * non-ASCII bytes and '"' escaped as `\xHH`, so a request cannot end
     * the quoted field early). NULL: access_log, or else stderr, a
     * write(2) per line. */
    ss_http_log_fn log_request;
    /** Turn access logging off entirely. */
    bool quiet;
    /** The HTTP handler's context: ss_http_config_user(h) in a callback.
     * Not to be confused with ss_config.user, the server's context, which
     * a callback reaches with ss_http_server_user(h) (and a plain handler
     * with ss_request_user()). */
    void *user;
    /** A buffered access log (sockserv/access_log.h) for the lines,
     * instead of one write(2) to stderr per request: a request then costs
     * a copy into its thread's buffer. log_request, when set, is used
     * instead; quiet turns both off. It must outlive the server. NULL:
     * none. */
    ss_access_log *access_log;
    /** HTML put as it is (not escaped: the program's own text) into the
     * `head` element of the error pages ss_http_send_error() and the
     * handler's refusals write — a viewport `meta`, a `style` element — so
     * that they look like the program's other pages. Python's
     * error_message_format, narrowed to what cannot break the escaping of the
     * rest. NULL: Python's page as it is. */
    const char *error_head;
} ss_http_config;

/** Fill *cfg with the defaults above (methods NULL, everything else the
 * documented default values). */
SS_API void ss_http_config_init(ss_http_config *cfg);

/** The HTTP handler class. Copy it and set class_data to your
 * ss_http_config (which must outlive the server). A NULL class_data is an
 * error every request reports (500 and close). */
SS_API extern const ss_handler_class ss_http_handler;

/* ---- what a method callback can ask -------------------------------- */

/** The connection (Python: self.request). Named _of because
 * ss_http_request is the parser's struct. A response head still held back
 * by ss_http_end_headers() is sent first, so raw writes stay in order.
 * Calling it hands the wire to the callback: the handler adds no response
 * of its own (no 500) and closes the connection after the exchange, since
 * it cannot know how what was written is framed. */
SS_API ss_request *ss_http_request_of(ss_http *h);
/** What Python's self.server and self.client_address give, without handing
 * over the wire (keep-alive is unaffected). */
SS_API ss_server *ss_http_server(const ss_http *h);
/** The client's address, as ss_request_client_address() gives it. */
SS_API const struct sockaddr *ss_http_client_address(const ss_http *h,
                                                     socklen_t *len);
/** The client's address as text, as ss_request_client_address_string(). */
SS_API int ss_http_client_address_string(const ss_http *h, char *buf,
                                         size_t size);
/** When the latest bytes of the connection arrived, as
 * ss_request_input_time() tells it (config.input_timestamps): for a
 * request being answered, no earlier than its own last byte. */
SS_API bool ss_http_input_time(const ss_http *h, struct timespec *when);
/** The per-connection state of the handler class made from
 * ss_http_handler: its state_size bytes, allocated and zeroed when the
 * connection opens and freed when it closes; NULL when state_size is 0.
 * Python's self: one handler instance per connection, so the requests of
 * a keep-alive connection use it one after another, never at once. The
 * place for what a callback keeps while it waits (a body being read):
 * unlike static or _Thread_local memory it is never shared with a request
 * running at the same time, under any strategy (under ss_coroutines many
 * requests share one thread). The same memory as ss_request_state() of the
 * connection, reached without taking the wire as ss_http_request_of()
 * does. */
SS_API void *ss_http_state(const ss_http *h);
/** The ss_http_config in use: the handler class's class_data. */
SS_API const ss_http_config *ss_http_config_of(const ss_http *h);
/** ss_http_config.user: the HTTP handler's context, set in the
 * ss_http_config that is the class's class_data. */
SS_API void *ss_http_config_user(const ss_http *h);
/** ss_config.user: the server's context, the pointer ss_request_user()
 * gives a plain handler (so code moved from one keeps working). */
SS_API void *ss_http_server_user(const ss_http *h);
/** The parsed request line and headers (slices into the request head;
 * valid until the callback returns). */
SS_API const ss_http_request *ss_http_parsed(const ss_http *h);
/** NUL-terminated copies, valid until the callback returns. */
SS_API const char *ss_http_method_name(const ss_http *h); /**< "GET" */
SS_API const char *ss_http_target(const ss_http *h);      /**< "/a%20b?x=1" */
/** HTTP/1.x minor version (0 or 1). */
SS_API int ss_http_version_minor(const ss_http *h);
/** The first header named name (case-insensitive) as a NUL-terminated
 * string valid until the callback returns, or NULL. (Not ss_http_header:
 * that is the parser's field struct.) */
SS_API const char *ss_http_header_value(ss_http *h, const char *name);

/* ---- path, query, form and routes ----------------------------------- */

/* What every handler author writes by hand otherwise (mongoose's
 * mg_http_match_uri, civetweb's mg_get_var). Built on the allocation-free
 * helpers of http_parser.h (ss_http_target_path, ss_http_form_find,
 * ss_http_match_route…); the strings returned are NUL-terminated copies in
 * the exchange's memory, valid until the callback returns, never to be
 * freed. Decoding refuses NUL bytes, so they are whole C strings. */

/** The request's path, percent-decoded, without the query: "/a b" for
 * "/a%20b?x=1" (ss_http_target_path(): absolute-form targets give their
 * path; "%2F" becomes '/'). NULL when the target has no path ("*") or its
 * path would decode to a NUL byte ("%00"), or memory ran out: answer
 * 400. */
SS_API const char *ss_http_path(ss_http *h);
/** The query string as sent, undecoded ("x=1&y=a+b"); "" when there is
 * none (NULL only when memory ran out). */
SS_API const char *ss_http_query_string(ss_http *h);
/** The decoded value of the first query parameter called name ("a b" for
 * y in "?x=1&y=a+b"; "" for "?flag"), or NULL when there is none, when it
 * would decode to a NUL byte, or memory ran out. */
SS_API const char *ss_http_query(ss_http *h, const char *name);
/** Read the request's body whole as an application/x-www-form-urlencoded
 * form (an HTML form's POST), at most max_size bytes (capped at
 * SS_HTTP_LIMIT_CAP), for ss_http_form(). Returns the body's length (0
 * for a request without a body), a second call the same; or
 * SS_HTTP_E_UNSUPPORTED_MEDIA_TYPE when the request has a body of another
 * Content-Type, SS_HTTP_E_BODY_TOO_LARGE beyond max_size (both unread:
 * returned from the callback, they are answered 415 and 413), another
 * error of ss_http_read_body(), or -ENOMEM. The body is kept in the
 * exchange's memory, so max_size bounds what one request may cost. */
SS_API int ss_http_read_form(ss_http *h, size_t max_size);
/** The decoded value of the first field called name of the form read by
 * ss_http_read_form(), as ss_http_query() for the query; NULL before that
 * call (or after it failed). */
SS_API const char *ss_http_form(ss_http *h, const char *name);
/** Whether the request's decoded path (ss_http_path()) matches pattern,
 * as ss_http_match_route() defines it: "/api/items/{id}" matches
 * "/api/items/42". On a match the captures are kept for ss_http_capture()
 * (until the next successful match); a pattern with more than 8 captures,
 * or a malformed one, never matches. */
SS_API bool ss_http_match(ss_http *h, const char *pattern);
/** The value of the capture called name ("id") in the last pattern
 * ss_http_match() matched ("42"), or NULL. */
SS_API const char *ss_http_capture(ss_http *h, const char *name);

/* ---- request body -------------------------------------------------- */

/** Read up to n bytes (at most SS_IO_MAX) of the request body, decoding
 * Content-Length or chunked framing. Sends "100 Continue" first if the client asked for it.
 * Returns the count, 0 at the end of the body, or a negative error
 * (-ETIMEDOUT, SS_EOF if the client closed early, an SS_HTTP_E_* value for
 * a malformed chunked body or SS_HTTP_E_BODY_TOO_LARGE). A body the
 * callback does not read is drained after it returns when what is left is
 * at most 64 KiB and arrives within header_timeout; otherwise the
 * connection is closed, so pipelined requests stay in step. */
SS_API int ss_http_read_body(ss_http *h, void *buf, size_t n);
/** The declared body length, or -1 when chunked or absent. (Not
 * ss_http_content_length: the parser's header helper has that name.) */
SS_API int64_t ss_http_body_length(const ss_http *h);

/* ---- response ------------------------------------------------------ */

/** Status line and the Server and Date headers (Python:
 * send_response). reason NULL: the standard phrase. Returns 0 or a
 * negative errno. Headers are buffered until ss_http_end_headers(). */
SS_API int ss_http_send_response(ss_http *h, int status, const char *reason);
/** One header line. Names and values with CR, LF or NUL are refused
 * (-EINVAL): no header injection. Content-Length and "Connection: close"
 * are noticed (see ss_http_end_headers); a body that does not match the
 * declared Content-Length closes the connection after the response. */
SS_API int ss_http_send_header(ss_http *h, const char *name, const char *value);
/** ss_http_send_header() with a printf-formatted value. */
SS_API int ss_http_send_headerf(ss_http *h, const char *name, const char *fmt,
                                ...) SS_PRINTF(3, 4);
/** End the head and send it. A response that can have a body but declared
 * no Content-Length gets "Connection: close" added and the connection is
 * closed after it (the body ends where the connection does); whenever the
 * connection will close, a Connection field the callback sent is replaced
 * by "Connection: close". 204, 205 and 304 have no body (writes are
 * dropped); a 205 without a length gets "Content-Length: 0". The head of a
 * final response may be held back until the first ss_http_write() so that
 * a small body leaves in the same send; it is always sent before any other
 * output and before the callback's return is acted on. */
SS_API int ss_http_end_headers(ss_http *h);
/** An error response with a small HTML body that escapes everything that
 * came from the request (Python: send_error). explain may be NULL. The
 * connection is closed after it for 4xx/5xx caused by a bad request.
 * Returns 0 or a negative errno. */
SS_API int ss_http_send_error(ss_http *h, int status, const char *explain);
/** Response body bytes (all of them: at most SS_IO_MAX, else -EINVAL).
 * Returns n or a negative errno. For HEAD requests the body is swallowed,
 * so one callback can serve GET and HEAD. */
SS_API int ss_http_write(ss_http *h, const void *buf, size_t n);
/** Send count bytes of file fd from *offset (advanced) with sendfile()
 * (HEAD: none). Returns the count sent — short at end of file, beyond
 * SS_IO_MAX (call again for the rest), or when an error cut the transfer
 * (the next call reports it) — or a negative errno. */
SS_API int ss_http_sendfile(ss_http *h, int fd, off_t *offset, size_t count);
/** Close the connection after this response (Python: close_connection). */
SS_API void ss_http_close_connection(ss_http *h);

/** "OK", "Not Found", …; "Unknown" for unknown codes. */
SS_API const char *ss_http_reason(int status);

/** Escape s for HTML text and attribute values (&, <, >, ", ') into buf;
 * returns the length the full escape needs (like snprintf). */
SS_API size_t ss_http_html_escape(const char *s, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_HTTP_H */
