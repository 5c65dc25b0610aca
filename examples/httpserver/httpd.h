/*
 * httpd.h — what the parts of sockserv-httpd share.
 *
 * sockserv-httpd is split by concept: main.c (command line, modes, signals
 * and the method callbacks that route each request), paths.c (turning a
 * request target into a path that cannot leave the served directory, and
 * opening it), static_files.c (files, directories, listings, conditional
 * and range requests), file_cache.c (files kept between requests, never
 * stale), api.c (the JSON routes) and mime.c (content
 * types). --tls-cert and SIGHUP are ../common/tls_server.c, shared with
 * the other example servers.
 * This header is the seam between them; nothing in it is library API.
 */
#ifndef SOCKSERV_HTTPD_H
#define SOCKSERV_HTTPD_H

#include <sockserv/http.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "file_cache.h"

/* Everything a request may need, reachable through ss_http_config_user(). Set up
 * once in main() before the server starts and read-only afterwards, except
 * the counter. */
typedef struct httpd_context {
    int root_fd;              /* the served directory (O_PATH) */
    char root_path[PATH_MAX]; /* its canonical path, for containment */
    size_t root_len;
    const char *mode;    /* "thread", "fork", … for /api/status */
    int max_connections; /* per process; 0: none (for /api/status) */
    bool tls;            /* serving HTTPS, for /api/status */
    int64_t started_ns;  /* ss_now_ns() at start, for the uptime */
    /* Requests answered, in a MAP_SHARED page so that forked children and
     * prefork workers add to the same count as threads do. */
    _Atomic uint64_t *requests_served;
    file_cache *file_cache; /* NULL: --no-file-cache, or --mode fork */
} httpd_context;

/* The request's first header named name, or NULL: the library's getter,
 * named in this one place. */
#define httpd_header(h, name) ss_http_header_value(h, name)

/* ---- paths.c ----------------------------------------------------------- */

/* A request target taken apart. All strings are owned (free with
 * httpd_path_free). */
typedef struct httpd_path {
    char *raw;           /* the path as sent, one leading '/' ("/a%20b/") */
    char *query;         /* what followed '?', or NULL */
    char *relative;      /* decoded, confined: "a b", "a/b", "." for root
                          * (relative and display share raw's block) */
    char *display;       /* decoded, for listings: "/a b/" */
    bool trailing_slash; /* the raw path ended with '/' */
} httpd_path;

/* Parse target (origin form "/p?q", or absolute form "http://h/p?q").
 * Returns 0, or the HTTP status to answer: 400 for a target that is not a
 * path or decodes to a NUL byte, 404 for a segment that can never name a
 * file inside the directory ("..", or one containing an encoded '/'). */
int httpd_path_parse(const char *target, httpd_path *out);
void httpd_path_free(httpd_path *path);

/* Open relative (a confined path from httpd_path_parse, or one built from
 * it) below the served directory, following symlinks only when the file
 * they lead to is inside it. Only regular files and directories are
 * answered. Returns a descriptor and fills *st, or a negative errno:
 * -ENOENT also for anything outside and for FIFOs, sockets and devices
 * (whatever their open said); -ELOOP or -EXDEV for a refused lookup the
 * fallback could not decide; -EMFILE, -ENFILE, -ENOMEM when the server is
 * out of resources (never read as "not there"). The descriptor is open
 * for reading when *readable is true; otherwise (no read permission) it is
 * an O_PATH descriptor, good only for *st. */
int httpd_open_beneath(const httpd_context *ctx, const char *relative,
                       struct stat *st, bool *readable);

/* Percent-encode s for a URL path (everything but A-Z a-z 0-9 - . _ ~ and
 * '/'), Python's urllib.parse.quote. Returns a malloc'ed string or NULL. */
char *httpd_url_quote(const char *s);

/* ---- listing.c ---------------------------------------------------------- */

/* The listing of the directory dir_fd (path as asked for), or 404 when it
 * may not be read. Returns 0 when answered, -1 when the connection failed,
 * or a positive errno when nothing was sent (out of memory or
 * descriptors): the caller answers that as it answers a failed open. */
int httpd_list_directory(ss_http *h, int dir_fd, bool readable,
                         const httpd_path *path);
/* What every page's <head> gets besides its charset and title: the
 * viewport meta and the stylesheet (the error pages too). */
extern const char httpd_page_head[];

/* ---- static_files.c ---------------------------------------------------- */

/* Answer GET or HEAD for a path outside /api. Returns 0 when a response was
 * sent, -1 when the connection must be closed. */
int httpd_serve_static(ss_http *h, httpd_context *ctx, const httpd_path *path);

/* A file's ETag and Last-Modified, as every answer about it spells them
 * (the file cache keeps them ready). */
void httpd_file_validators(const struct stat *st, char etag[64],
                           char modified[64]);

/* ---- api.c ------------------------------------------------------------- */

/* Whether raw (a raw path) belongs to the JSON API: "/api" or "/api/…". */
bool httpd_api_owns(const char *raw);

/* Answer a request for an API path. Returns 0 or -1 like
 * httpd_serve_static. */
int httpd_api_handle(ss_http *h, httpd_context *ctx, const httpd_path *path);

/* access_log.c: --access-log FILE (NULL: stderr), --access-log-buffer
 * (bytes; 0: each line at once; -1: not given) and --access-log-flush
 * (seconds; 0: the default), and SIGHUP reopening FILE. Returns 0 with
 * *log set, or -1 after saying why. */
#define HTTPD_LOG_MAX_BUFFER (16LL * 1024 * 1024)
int httpd_log_open(const char *path, long buffer, double flush,
                   ss_access_log **log);
void httpd_log_close(void);
/* "64k", "1m", "4096" → bytes, at most HTTPD_LOG_MAX_BUFFER; -1 if not. */
int httpd_log_size(const char *text, long *size);

/* ---- mime.c ------------------------------------------------------------ */

/* The Content-Type for a file name, from its extension (case-insensitive);
 * "application/octet-stream" when unknown. */
const char *httpd_guess_type(const char *name);

#endif /* SOCKSERV_HTTPD_H */
