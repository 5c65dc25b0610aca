/**
 * @file
 * libsockserv — the HTTP/1.1 request parser.
 *
 * The first building block of the HTTP request handler, usable on its own:
 * a parser for the request line and header fields, helpers that read the
 * fields that decide how a request is framed (Content-Length,
 * Transfer-Encoding, Connection, Expect), and a decoder for chunked bodies.
 *
 * In the style of picohttpparser:
 *  - Nothing allocates. Results point into the caller's buffer.
 *  - ss_http_parse_request() keeps no state between calls: when more bytes
 *    arrive, call it again on the whole buffer. It answers "complete, N
 *    bytes", "incomplete" or an error that names the status code to send.
 *  - Limits are checked before the end of a line is seen, so a client that
 *    never sends a newline is refused as soon as it passes the limit.
 *  - The chunked decoder's state is a small struct the caller owns; it
 *    decodes in place.
 *
 * Every function here is thread-safe (no shared state) and async-signal-safe
 * (no locks, no allocation). See docs/http-parser.md.
 */
#ifndef SOCKSERV_HTTP_PARSER_H
#define SOCKSERV_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sockserv/sockserv.h> /* SS_API */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Results and errors
 *
 * Parser functions return a count or 0 on success, SS_HTTP_INCOMPLETE when
 * more bytes are needed, or one of the SS_HTTP_E_* errors below. An error's
 * value encodes the status code to answer with: status = -error / 100
 * (SS_HTTP_E_BAD_METHOD = -40002 → 400). ss_http_error_status() does that
 * arithmetic and ss_http_error_reason() gives a short explanation. The
 * values lie outside the errno range, so they never look like -EINVAL.
 *
 * After answering any of these errors, close the connection: the framing
 * of whatever follows is unknown.
 * --------------------------------------------------------------------- */

/** More bytes are needed; call again when they have arrived. */
#define SS_HTTP_INCOMPLETE (-1)

/** 400 Bad Request: the request line. */
#define SS_HTTP_E_BAD_REQUEST_LINE (-40001) /**< not METHOD SP TARGET SP VER */
#define SS_HTTP_E_BAD_METHOD (-40002)       /**< method is not a token */
#define SS_HTTP_E_BAD_TARGET (-40003)       /**< control character in target */
#define SS_HTTP_E_BAD_VERSION (-40004)      /**< not HTTP/1*DIGIT.1*DIGIT */
#define SS_HTTP_E_MISSING_VERSION (-40005)  /**< "GET /": HTTP/0.9 style */
#define SS_HTTP_E_BAD_LINE_ENDING (-40006)  /**< CR not followed by LF */
/** 400 Bad Request: header fields. */
#define SS_HTTP_E_BAD_HEADER_NAME (-40007)    /**< name is not a token */
#define SS_HTTP_E_EMPTY_HEADER_NAME (-40008)  /**< line starts with ':' */
#define SS_HTTP_E_SPACE_BEFORE_COLON (-40009) /**< "Name : value" */
#define SS_HTTP_E_MISSING_COLON (-40010)      /**< "Name value" */
#define SS_HTTP_E_OBS_FOLD (-40011)           /**< line starts with SP/HT */
#define SS_HTTP_E_BAD_HEADER_VALUE (-40012)   /**< control character in value */
/** 400 Bad Request: body framing (the helpers below). */
#define SS_HTTP_E_BAD_CONTENT_LENGTH (-40013) /**< not 1*DIGIT, overflow */
#define SS_HTTP_E_CONFLICTING_CONTENT_LENGTH (-40014) /**< values differ */
#define SS_HTTP_E_BAD_TRANSFER_ENCODING (-40015) /**< chunked not last/once */
#define SS_HTTP_E_LENGTH_AND_CHUNKED (-40016)    /**< both headers: smuggling? */
#define SS_HTTP_E_TRANSFER_ENCODING_HTTP10 (-40017) /**< in HTTP/1.0 */
/** 400 Bad Request: chunked body. */
#define SS_HTTP_E_BAD_CHUNK_SIZE (-40018)      /**< size line malformed */
#define SS_HTTP_E_CHUNK_SIZE_OVERFLOW (-40019) /**< size beyond 64 bits */
#define SS_HTTP_E_CHUNK_LINE_TOO_LONG (-40020) /**< size line + extensions */
#define SS_HTTP_E_MISSING_CHUNK_CRLF (-40021)  /**< data not followed by CRLF */
#define SS_HTTP_E_BAD_TRAILER (-40022)         /**< control char, bare CR/LF */
/** 413 Content Too Large. */
#define SS_HTTP_E_BODY_TOO_LARGE (-41301)
/** 414 URI Too Long: the request line passed max_request_line. */
#define SS_HTTP_E_REQUEST_LINE_TOO_LONG (-41401)
/** 417 Expectation Failed: an Expect other than 100-continue. */
#define SS_HTTP_E_EXPECTATION_FAILED (-41701)
/** 431 Request Header Fields Too Large. */
#define SS_HTTP_E_HEADER_LINE_TOO_LONG (-43101) /**< max_header_line */
#define SS_HTTP_E_TOO_MANY_HEADERS (-43102)     /**< max_headers */
#define SS_HTTP_E_HEADERS_TOO_LARGE (-43103)    /**< max_header_bytes */
#define SS_HTTP_E_TRAILERS_TOO_LARGE (-43104)   /**< max_trailer_bytes */
/** 415 Unsupported Media Type: ss_http_read_form() of a body whose
 * Content-Type is not application/x-www-form-urlencoded. */
#define SS_HTTP_E_UNSUPPORTED_MEDIA_TYPE (-41501)
/** 501 Not Implemented: a transfer coding other than chunked. */
#define SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING (-50101)
/** 505 HTTP Version Not Supported: major version 0, or 2 and above. */
#define SS_HTTP_E_VERSION_NOT_SUPPORTED (-50501)

/** The status code to answer an SS_HTTP_E_* error with (400, 413, 414, 415,
 * 417, 431, 501, 505); 0 for anything else (counts, SS_HTTP_INCOMPLETE, errno
 * values). */
SS_API int ss_http_error_status(int rc);

/** A short lower-case explanation of rc ("request line too long"), for
 * logs and error pages. Static, never NULL; for values that are not
 * SS_HTTP_* codes, "not an HTTP parser error". */
SS_API const char *ss_http_error_reason(int rc);

/* ------------------------------------------------------------------------
 * Limits
 * --------------------------------------------------------------------- */

#define SS_HTTP_DEFAULT_MAX_REQUEST_LINE 65536 /**< Python's _MAXLINE */
#define SS_HTTP_DEFAULT_MAX_HEADER_LINE 65536  /**< Python's _MAXLINE */
#define SS_HTTP_DEFAULT_MAX_HEADERS 100        /**< Python's _MAXHEADERS */
#define SS_HTTP_DEFAULT_MAX_HEADER_BYTES 65536 /**< all field lines */
/** Larger limits are treated as this, so counts always fit in an int. */
#define SS_HTTP_LIMIT_CAP (1 << 28)

/** Sizes count every byte of a line including its line ending (CRLF or LF),
 * as Python does. A field left 0 takes its default, so a zeroed struct (or
 * a NULL pointer) means the defaults. */
typedef struct ss_http_limits {
    /** The request line. Longer → SS_HTTP_E_REQUEST_LINE_TOO_LONG (414). */
    size_t max_request_line;
    /** One header field line. Longer → SS_HTTP_E_HEADER_LINE_TOO_LONG. */
    size_t max_header_line;
    /** Header fields. More → SS_HTTP_E_TOO_MANY_HEADERS (431). */
    size_t max_headers;
    /** All header field lines together with the blank line that ends them
     * (the request line is not counted). More → SS_HTTP_E_HEADERS_TOO_LARGE
     * (431). Python has no such bound; this one keeps the cost of parsing
     * again from the start small. */
    size_t max_header_bytes;
} ss_http_limits;

/** Fill *limits with the defaults above. */
SS_API void ss_http_limits_init(ss_http_limits *limits);

/* ------------------------------------------------------------------------
 * The request parser
 * --------------------------------------------------------------------- */

/** One header field, as two slices of the parsed buffer (not
 * NUL-terminated). The value has no leading or trailing SP/HT. */
typedef struct ss_http_header {
    const char *name;  /**< the field name, as sent */
    size_t name_len;   /**< its length in bytes */
    const char *value; /**< the field value, trimmed */
    size_t value_len;  /**< its length in bytes */
} ss_http_header;

/** A parsed request line and header fields: ss_http_parse_request(). */
typedef struct ss_http_request {
    /** Set by the caller before parsing: where the fields go. At most
     * min(header_capacity, limits->max_headers) are accepted; one more is
     * SS_HTTP_E_TOO_MANY_HEADERS. */
    ss_http_header *headers;
    size_t header_capacity; /**< room in headers, in fields */

    /** Set by the parser. Pointers are into the parsed buffer. */
    const char *method; /**< a token, case-sensitive ("GET") */
    size_t method_len;  /**< 0 until a valid request line was seen */
    const char *target; /**< as sent: "/path?query", "*", "http://h/" */
    size_t target_len;  /**< its length in bytes */
    int version_major;  /**< 1 */
    int version_minor;  /**< 0 or 1 (larger minors are accepted, like Python) */
    /** The request line without its line ending, for logs. */
    const char *request_line;
    size_t request_line_len; /**< its length in bytes */
    size_t header_count;     /**< fields stored in headers */
} ss_http_request;

/** Parse the request line and header fields at the start of buf[0..len).
 *
 * Returns:
 *  > 0  the request is complete: the number of bytes its request line,
 *       fields and blank line took. A body, or the next pipelined request,
 *       starts at buf + that count.
 *  SS_HTTP_INCOMPLETE  more bytes are needed: call again with the whole
 *       buffer (from its start) once more have arrived.
 *  an SS_HTTP_E_* error: answer ss_http_error_status(rc) and close.
 *
 * limits may be NULL for the defaults. On success every field of *req is
 * set. On errors and SS_HTTP_INCOMPLETE, method/target/version and
 * request_line are set (method_len > 0) if the request line was complete
 * and valid, header_count says how many fields were stored, and everything
 * else is zeroed — enough to log the request line of a refused request.
 *
 * Empty lines before the request line are skipped (RFC 9112 §2.2), up to
 * max_request_line bytes of them. Line endings may be CRLF or a bare LF,
 * as Python accepts. The method may be any token: answering 501 for an
 * unknown one is the dispatcher's job. Never reads outside buf[0..len). */
SS_API int ss_http_parse_request(const char *buf, size_t len,
                                 const ss_http_limits *limits,
                                 ss_http_request *req);

/* ------------------------------------------------------------------------
 * Reading header fields (names compare ASCII case-insensitively)
 * --------------------------------------------------------------------- */

/** The first field named name (a NUL-terminated string), or NULL. */
SS_API const ss_http_header *ss_http_header_find(const ss_http_request *req,
                                                 const char *name);

/** The next field named name after *after (one of req->headers), or NULL:
 *     for (h = ss_http_header_find(req, "x"); h;
 *          h = ss_http_header_next(req, "x", h))
 */
SS_API const ss_http_header *ss_http_header_next(const ss_http_request *req,
                                                 const char *name,
                                                 const ss_http_header *after);

/** Content-Length, strictly: 1*DIGIT, no sign, no space inside, no
 * overflow. Several fields, or a comma-separated list, must all carry the
 * same value (RFC 9110 §8.6). Returns 1 and sets *length when present, 0
 * when absent (*length untouched), or SS_HTTP_E_BAD_CONTENT_LENGTH /
 * SS_HTTP_E_CONFLICTING_CONTENT_LENGTH. */
SS_API int ss_http_content_length(const ss_http_request *req, uint64_t *length);

/** Transfer-Encoding, across all its fields. Returns 1 when the codings end
 * with "chunked" (case-insensitive), 0 when there is no Transfer-Encoding
 * field, SS_HTTP_E_BAD_TRANSFER_ENCODING when chunked is not last, appears
 * twice or the list is empty (RFC 9112 §6.3: 400), or
 * SS_HTTP_E_UNSUPPORTED_TRANSFER_CODING for any coding other than chunked
 * (RFC 9112 §6.1: 501; this library decodes only chunked). */
SS_API int ss_http_transfer_chunked(const ss_http_request *req);

/** How the request body is delimited (RFC 9112 §6.3) — the one place that
 * decides, so every caller refuses the same ambiguous requests. */
typedef enum ss_http_body_kind {
    SS_HTTP_BODY_NONE = 0,    /**< no body */
    SS_HTTP_BODY_LENGTH = 1,  /**< *content_length bytes (may be 0) */
    SS_HTTP_BODY_CHUNKED = 2, /**< decode with ss_http_chunked_decode() */
} ss_http_body_kind;

/** Returns an ss_http_body_kind (setting *content_length for
 * SS_HTTP_BODY_LENGTH), or an error: those of ss_http_content_length() and
 * ss_http_transfer_chunked(), SS_HTTP_E_LENGTH_AND_CHUNKED when both
 * fields are present (a request-smuggling pattern; RFC 9112 §6.3 allows
 * refusing it), SS_HTTP_E_TRANSFER_ENCODING_HTTP10 for Transfer-Encoding in
 * an HTTP/1.0 request (RFC 9112 §6.1: faulty framing). */
SS_API int ss_http_body_framing(const ss_http_request *req,
                                uint64_t *content_length);

/** True when a Connection field lists token ("close", "keep-alive", …):
 * comma-separated, case-insensitive, across all Connection fields. */
SS_API bool ss_http_connection_has(const ss_http_request *req,
                                   const char *token);

/** Whether the connection stays open after this request: HTTP/1.1 and later
 * unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"
 * (and no close). */
SS_API bool ss_http_keep_alive(const ss_http_request *req);

/** Expect: returns 1 for "100-continue" (case-insensitive) in an HTTP/1.1
 * request — send "100 Continue" before reading the body — 0 when there is
 * no Expect field or the request is HTTP/1.0 (RFC 9110 §10.1.1 says to
 * ignore it then), SS_HTTP_E_EXPECTATION_FAILED (417) for any other
 * expectation. */
SS_API int ss_http_expect_continue(const ss_http_request *req);

/* ------------------------------------------------------------------------
 * Targets, query strings, form bodies and routes
 *
 * What a request handler asks of a target ("/items/a%20b?x=1&y=2") and a
 * form body, done on slices as the parser is: nothing is allocated, the
 * input is never changed and never read past its length, every output
 * goes to a buffer the caller sizes (the result is NUL-terminated), and
 * the work is linear in the input. Inputs longer than SS_HTTP_LIMIT_CAP
 * bytes are refused (-E2BIG), so every count fits the int returned.
 *
 * Percent-decoding follows Python's urllib.parse.unquote and
 * sockserv-httpd: "%XY" with two hex digits is the byte 0xXY, an escape
 * that is not ("%zz", a "%" at the end) stays as it is, and a NUL byte —
 * sent as "%00" or raw — is refused, so a decoded string can be used as a
 * C string without being cut short.
 * --------------------------------------------------------------------- */

/** Percent-decode src[0..len) into out (size bytes, NUL-terminated on
 * success), as described above; with plus_is_space, '+' becomes ' ' (form
 * encoding: query strings and form bodies). Returns the decoded length;
 * -EINVAL when the result would hold a NUL byte; -ENOBUFS when it does not
 * fit in size - 1 bytes (out then holds nothing useful); -E2BIG past
 * SS_HTTP_LIMIT_CAP. */
SS_API int ss_http_percent_decode(const char *src, size_t len,
                                  bool plus_is_space, char *out, size_t size);

/** The path of a request target, percent-decoded, without its query:
 * "/a%20b?x=1" → "/a b". An absolute-form target ("http://host/p?q",
 * http or https, any case) gives its path, "/" when it has none. '+' stays
 * '+' and "%2F" becomes '/' (check segments before decoding where that
 * matters, as sockserv-httpd does for file names). Returns the decoded
 * length; -EINVAL for a target in neither form ("*", "host:443", "x") or
 * whose path would hold a NUL byte; -ENOBUFS, -E2BIG as
 * ss_http_percent_decode(). */
SS_API int ss_http_target_path(const char *target, size_t len, char *out,
                               size_t size);

/** The query of a request target, undecoded: the slice after the first
 * '?' ("x=1&y=2" of "/p?x=1&y=2"), with *query_len its length; NULL (and
 * *query_len 0) when the target has no '?'. query_len may be NULL. */
SS_API const char *ss_http_target_query(const char *target, size_t len,
                                        size_t *query_len);

/** One field of application/x-www-form-urlencoded data, as two undecoded
 * slices of it (decode each with ss_http_percent_decode(), plus_is_space
 * true). */
typedef struct ss_http_form_field {
    const char *name;  /**< before the first '=' */
    size_t name_len;   /**< its length in bytes */
    const char *value; /**< after the first '=' ("" when there is none) */
    size_t value_len;  /**< its length in bytes */
} ss_http_form_field;

/** The next field of form data data[0..len) — a query string or an
 * application/x-www-form-urlencoded body, "a=1&b=two+words&flag" — from
 * *pos (start with 0; advanced past the field). Fields are separated by
 * '&'; empty ones ("a=1&&b=2") are skipped. Returns 1 with *field set, or
 * 0 at the end. */
SS_API int ss_http_form_next(const char *data, size_t len, size_t *pos,
                             ss_http_form_field *field);

/** The value of the first field of form data data[0..len) whose decoded
 * name is name (exactly, case-sensitively: Python's parse_qs), decoded
 * into out (size bytes, NUL-terminated): "b" in "a=1&b=two+words" gives
 * "two words"; a field without '=' has the empty value. Returns the
 * value's length; -ENOENT when no field has that name; -EINVAL when the
 * value would hold a NUL byte; -ENOBUFS, -E2BIG as
 * ss_http_percent_decode(). A field whose name cannot be decoded matches
 * no name. */
SS_API int ss_http_form_find(const char *data, size_t len, const char *name,
                             char *out, size_t size);

/** One capture of ss_http_match_route(): its name in the pattern and the
 * part of the path it matched, as slices (not NUL-terminated). */
typedef struct ss_http_route_capture {
    const char *name;  /**< "id" of "{id}", in the pattern */
    size_t name_len;   /**< its length in bytes */
    const char *value; /**< in the path */
    size_t value_len;  /**< its length in bytes */
} ss_http_route_capture;

/** Whether path[0..len) matches a route pattern, in the spirit of
 * mongoose's mg_http_match_uri() and Go's ServeMux patterns: pattern is a
 * path (NUL-terminated) in which a whole segment "{name}" matches one
 * non-empty segment of the path (anything but '/'), and a last segment
 * "{name...}" matches the rest of the path, '/' included, possibly empty;
 * every other character matches itself exactly ("/items" and "/items/"
 * are two routes). "/api/items/{id}" matches "/api/items/42" with id =
 * "42". Match the decoded path (ss_http_target_path()).
 *
 * Returns the number of captures, stored in captures[0..] in pattern
 * order (0 for a pattern without any), when the path matches; -ENOENT
 * when it does not; -EINVAL for a malformed pattern (a brace that is not
 * a whole "{name}" segment, an empty name, "{name...}" not last);
 * -ENOBUFS when the pattern has more than max_captures captures (captures
 * may be NULL when max_captures is 0). A malformed pattern is refused
 * whatever the path. Unless it returns a count, what captures holds is
 * unspecified. */
SS_API int ss_http_match_route(const char *pattern, const char *path,
                               size_t len, ss_http_route_capture *captures,
                               size_t max_captures);

/* ------------------------------------------------------------------------
 * Chunked body decoder (RFC 9112 §7.1)
 *
 * The caller owns the state; a zeroed struct (or ss_http_chunked_init) is
 * a decoder at the start of a body with the default limits. Feed it the
 * bytes that follow the header section as they arrive; it moves the body's
 * data to the front of the buffer, dropping sizes, extensions, CRLFs and
 * trailer fields. Chunk framing requires CRLF (a bare LF is refused: body
 * framing is where request smuggling hides).
 * --------------------------------------------------------------------- */

#define SS_HTTP_DEFAULT_MAX_CHUNK_LINE 4096     /**< Go's net/http bound */
#define SS_HTTP_DEFAULT_MAX_TRAILER_BYTES 65536 /**< all trailer lines */

/** A chunked body decoder's state, owned by the caller (see above). */
typedef struct ss_http_chunked_decoder {
    /** Limits; 0 takes the default. Set before the first call. */
    size_t max_chunk_line;    /**< size line with extensions and CRLF */
    size_t max_trailer_bytes; /**< trailer fields and the final CRLF */
    uint64_t max_body_bytes;  /**< data bytes; 0 = unlimited. A chunk that
                                 would pass it is refused as soon as its
                                 size is read: SS_HTTP_E_BODY_TOO_LARGE. */
    /** Progress, read-only: data bytes decoded so far. */
    uint64_t body_bytes;
    /** Private. */
    uint64_t chunk_left;
    size_t line_bytes; /**< Private. */
    int state;         /**< Private. */
    int error;         /**< Private. */
} ss_http_chunked_decoder;

/** Reset *dec to the start of a body, with the default limits. */
SS_API void ss_http_chunked_init(ss_http_chunked_decoder *dec);

/** Decode buf[0..*len) in place. On return buf[0..*len) holds the body
 * data decoded by this call (possibly none) and *consumed the number of
 * input bytes used.
 *
 * Returns:
 *  0  the body is complete (last chunk and trailers read). The bytes after
 *     it, buf[*consumed..original *len), are untouched: the next pipelined
 *     request. Further calls return 0 and decode nothing.
 *  SS_HTTP_INCOMPLETE  all input was used and the body goes on: call
 *     again with the next bytes (the state carries over; no need to keep
 *     or re-send anything).
 *  an SS_HTTP_E_* error (400, 413, 431); *len and *consumed say what was
 *     decoded before it. Further calls return the same error. */
SS_API int ss_http_chunked_decode(ss_http_chunked_decoder *dec, char *buf,
                                  size_t *len, size_t *consumed);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_HTTP_PARSER_H */
