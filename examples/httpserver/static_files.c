/*
 * static_files.c — GET and HEAD for files and directories: Python's
 * SimpleHTTPRequestHandler.send_head() and list_directory(), plus what
 * Python leaves out: ETag / If-None-Match, single byte ranges (206, 416)
 * and sendfile(). The listing itself is listing.c's.
 *
 * Every file is reached through httpd_open_beneath(), so nothing here has
 * to think about where a path leads. The order of decisions follows
 * Python's: a directory without its trailing slash is redirected first,
 * then index.html / index.htm, then the listing; a file asked for with a
 * trailing slash is not found (Python's issue 17324); anything that is
 * neither a regular file nor a directory (FIFO, socket, device) is not
 * found either, and is never read (httpd_open_beneath refuses it).
 */
#include "httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- a growing text buffer, for names and locations --------------------- */

typedef struct text {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory: checked once at the end */
} text;

static void text_add(text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *data = realloc(t->data, cap);
        if (data == NULL) {
            t->failed = true;
            return;
        }
        t->data = data, t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_puts(text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

/* ---- dates, validators, ranges ------------------------------------------ */

/* An IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
static void http_date(time_t when, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* The three date formats HTTP recipients must accept (RFC 9110 §5.6.7).
 * The program never calls setlocale(), so strptime reads English names.
 * Returns false for anything else: an ill-formed If-Modified-Since is
 * ignored, as in Python. */
static bool parse_http_date(const char *s, time_t *out)
{
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT", /* obsolete RFC 850 */
        "%a %b %e %H:%M:%S %Y",      /* asctime() */
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, formats[i], &tm);
        if (end != NULL && end[strspn(end, " \t")] == '\0') {
            *out = timegm(&tm);
            return true;
        }
    }
    return false;
}

/* If-None-Match: "*" or a list of entity tags, compared weakly (W/
 * ignored) as RFC 9110 §13.1.2 asks for GET and HEAD. */
static bool etag_matches(const char *header, const char *etag)
{
    size_t etag_len = strlen(etag);
    for (const char *s = header; *s;) {
        s += strspn(s, " \t,");
        size_t len = strcspn(s, ",");
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == 1 && s[0] == '*')
            return true;
        const char *tag = s;
        if (len >= 2 && tag[0] == 'W' && tag[1] == '/')
            tag += 2, len -= 2;
        if (len == etag_len && memcmp(tag, etag, len) == 0)
            return true;
        s = tag + len;
        s += strcspn(s, ",");
    }
    return false;
}

/* Decimal digits at *s into *value; false if none or on overflow. */
static bool parse_u64(const char **s, uint64_t *value)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *s = p;
    *value = v;
    return true;
}

/* Range: one byte range (RFC 9110 §14.1.2). Returns 1 with the inclusive
 * range in *first..*last, -1 when no byte of it exists (416), 0 to ignore
 * the header and send everything: a syntax we do not understand or several
 * ranges (serving the whole file is always a valid answer). */
static int parse_range(const char *value, uint64_t size, uint64_t *first,
                       uint64_t *last)
{
    if (strncasecmp(value, "bytes=", 6) != 0 || strchr(value, ',') != NULL)
        return 0;
    const char *s = value + 6;
    s += strspn(s, " \t");
    uint64_t a, b;
    if (*s == '-') { /* "-n": the last n bytes */
        s++;
        if (!parse_u64(&s, &b) || s[strspn(s, " \t")] != '\0')
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!parse_u64(&s, &a) || *s++ != '-')
        return 0;
    bool open_ended = !parse_u64(&s, &b);
    if (s[strspn(s, " \t")] != '\0' || (!open_ended && b < a))
        return 0;
    if (a >= size)
        return -1;
    *first = a;
    *last = open_ended || b >= size - 1 ? size - 1 : b;
    return 1;
}

/* ---- responses ------------------------------------------------------------
 */

static int not_found(ss_http *h)
{
    return ss_http_send_error(h, 404, "File not found") < 0 ? -1 : 0;
}

/* A short plain-text answer with one header of its own. */
static int send_text(ss_http *h, int status, const char *name,
                     const char *value, const char *body)
{
    size_t len = strlen(body);
    int rc = ss_http_send_response(h, status, NULL);
    if (rc == 0)
        rc = ss_http_send_header(h, name, value);
    if (rc == 0)
        rc =
            ss_http_send_header(h, "Content-Type", "text/plain; charset=utf-8");
    if (rc == 0)
        rc = ss_http_send_headerf(h, "Content-Length", "%zu", len);
    if (rc == 0)
        rc = ss_http_end_headers(h);
    if (rc == 0 && ss_http_write(h, body, len) < 0)
        rc = -1;
    return rc < 0 ? -1 : 0;
}

/* 503 for a server out of descriptors or memory: the file is there, and
 * may be served in a moment. Retry-After asks clients (and caches: a 503
 * is not stored) to come back. */
static int unavailable(ss_http *h)
{
    return send_text(h, 503, "Retry-After", "5",
                     "Out of resources; try again shortly\n");
}

/* The answer when something the request named could not be opened
 * (error: a positive errno). Only "it is not there" is 404: ENOENT and
 * ENOTDIR, a name too long to exist, and what httpd_open_beneath refuses
 * — a path leading outside (ENOENT, ELOOP, EXDEV), no permission on the
 * way (EACCES, EPERM: the same 404 as an unreadable file, as in Python).
 * A server out of descriptors or memory answers 503: a 404 for a file
 * that exists could be cached by a proxy in front. Anything else (EIO…)
 * is the server's fault: 500, as nginx answers. */
static int open_failed(ss_http *h, int error)
{
    switch (error) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
    case EACCES:
    case EPERM:
        return not_found(h);
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN:
        return unavailable(h);
    default:
        return ss_http_send_error(h, 500, strerror(error)) < 0 ? -1 : 0;
    }
}

static bool is_head(ss_http *h)
{
    return strcmp(ss_http_method_name(h), "HEAD") == 0;
}

/* 301 to the same path with a slash, query kept (Python: "doing basically
 * what apache does"). path->raw starts with exactly one '/', so the
 * Location cannot be read as "//host/…"; and a '\' in it is sent as "%5C",
 * since browsers read "/\host" as "//host" too. */
static int redirect_to_slash(ss_http *h, const httpd_path *path)
{
    text location = {0};
    for (const char *s = path->raw; *s;) {
        size_t plain = strcspn(s, "\\");
        text_add(&location, s, plain);
        s += plain;
        if (*s == '\\') {
            text_puts(&location, "%5C");
            s++;
        }
    }
    text_puts(&location, "/");
    if (path->query != NULL) {
        text_puts(&location, "?");
        text_puts(&location, path->query);
    }
    int rc = location.failed ? -ENOMEM : 0;
    if (rc == 0)
        rc = ss_http_send_response(h, 301, NULL);
    if (rc == 0)
        rc = ss_http_send_header(h, "Location", location.data);
    if (rc == 0)
        rc = ss_http_send_header(h, "Content-Length", "0");
    if (rc == 0)
        rc = ss_http_end_headers(h);
    free(location.data);
    return rc < 0 ? -1 : 0;
}

static int send_range_not_satisfiable(ss_http *h, uint64_t size)
{
    char range[48];
    snprintf(range, sizeof range, "bytes */%" PRIu64, size);
    return send_text(h, 416, "Content-Range", range,
                     "Requested range not satisfiable\n");
}

/* A regular file, whole or one range of it, or 304 when the client's copy
 * is current. A file the server may not read is not found, and nothing
 * about it is said first: the conditional and range headers, whose
 * answers carry its size, ETag and date, are looked at only after the
 * file is known to be servable. */
void httpd_file_validators(const struct stat *st, char etag[64],
                           char modified[64])
{
    uint64_t mtime_ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u +
                        (uint64_t)st->st_mtim.tv_nsec;
    snprintf(etag, 64, "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st->st_size,
             mtime_ns);
    http_date(st->st_mtim.tv_sec, modified, 64);
}

/* A file to answer with: its descriptor, or (from the file cache) its
 * bytes, and what is said about it. */
typedef struct file_source {
    int fd;            /* for sendfile, when bytes is NULL */
    const char *bytes; /* the whole file, or NULL */
    const struct stat *st;
    const char *etag, *modified, *type;
} file_source;

static int send_file(ss_http *h, const file_source *file);

static int serve_file(ss_http *h, int fd, bool readable, const struct stat *st,
                      const char *name)
{
    if (!readable)
        return not_found(h); /* no read permission: Python says 404 */
    char etag[64], modified[64];
    httpd_file_validators(st, etag, modified);
    file_source file = {.fd = fd,
                        .st = st,
                        .etag = etag,
                        .modified = modified,
                        .type = httpd_guess_type(name)};
    return send_file(h, &file);
}

/* v in decimal, written at the end of digits: a header value without a
 * trip through printf on every file answer. */
static const char *decimal(uint64_t v, char digits[21])
{
    char *p = digits + 20;
    *p = '\0';
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return p;
}

/* The part of serve_file that a cache hit shares. */
static int send_file(ss_http *h, const file_source *file)
{
    char digits[21];
    const struct stat *st = file->st;
    const char *etag = file->etag, *modified = file->modified;
    uint64_t size = (uint64_t)st->st_size;

    /* If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2), as in
     * Python, which ignores If-Modified-Since when both are sent. */
    const char *none_match = httpd_header(h, "If-None-Match");
    const char *modified_since = httpd_header(h, "If-Modified-Since");
    time_t since;
    bool not_modified = none_match
                            ? etag_matches(none_match, etag)
                            : modified_since &&
                                  parse_http_date(modified_since, &since) &&
                                  st->st_mtim.tv_sec <= since;
    int rc;
    if (not_modified) {
        rc = ss_http_send_response(h, 304, NULL);
        if (rc == 0)
            rc = ss_http_send_header(h, "ETag", etag);
        if (rc == 0)
            rc = ss_http_send_header(h, "Last-Modified", modified);
        if (rc == 0)
            rc = ss_http_end_headers(h);
        return rc < 0 ? -1 : 0;
    }

    uint64_t first = 0, last = size ? size - 1 : 0;
    int ranged = 0;
    const char *range = httpd_header(h, "Range");
    const char *if_range = httpd_header(h, "If-Range");
    /* If-Range: the range only applies to the version the client has. */
    if (range &&
        (!if_range || !strcmp(if_range, etag) || !strcmp(if_range, modified)))
        ranged = parse_range(range, size, &first, &last);
    if (ranged < 0)
        return send_range_not_satisfiable(h, size);

    uint64_t length = size ? last - first + 1 : 0;
    rc = ss_http_send_response(h, ranged ? 206 : 200, NULL);
    if (rc == 0)
        rc = ss_http_send_header(h, "Content-Type", file->type);
    if (rc == 0)
        rc = ss_http_send_header(h, "Content-Length", decimal(length, digits));
    if (rc == 0 && ranged)
        rc = ss_http_send_headerf(h, "Content-Range",
                                  "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
                                  first, last, size);
    if (rc == 0)
        rc = ss_http_send_header(h, "Last-Modified", modified);
    if (rc == 0)
        rc = ss_http_send_header(h, "ETag", etag);
    if (rc == 0)
        rc = ss_http_send_header(h, "Accept-Ranges", "bytes");
    if (rc == 0)
        rc = ss_http_end_headers(h);

    /* HEAD: the head is the whole answer. */
    off_t offset = (off_t)first;
    if (rc == 0 && length > 0 && !is_head(h) && file->bytes != NULL)
        return ss_http_write(h, file->bytes + first, (size_t)length) < 0 ? -1
                                                                        : 0;
    while (rc == 0 && length > 0 && !is_head(h)) {
        int n = ss_http_sendfile(h, file->fd, &offset, (size_t)length);
        if (n <= 0) /* 0: the file shrank; the promised length is a lie */
            rc = -1;
        else
            length -= (uint64_t)n;
    }
    return rc < 0 ? -1 : 0;
}

/* A directory asked for with its slash: its index page, or a listing —
 * but only when there is no index (ENOENT): an index that cannot be opened
 * for another reason, out of descriptors say, must not give way to the
 * listing it was meant to hide. */
static int serve_directory(ss_http *h, httpd_context *ctx, int dir_fd,
                           bool dir_readable, const httpd_path *path)
{
    static const char *const indexes[] = {"index.html", "index.htm"};
    for (size_t i = 0; i < 2; i++) {
        text name = {0};
        if (strcmp(path->relative, ".") != 0) {
            text_puts(&name, path->relative);
            text_puts(&name, "/");
        }
        text_puts(&name, indexes[i]);
        if (name.failed) {
            free(name.data);
            return open_failed(h, ENOMEM);
        }
        struct stat st;
        bool readable;
        int fd = httpd_open_beneath(ctx, name.data, &st, &readable);
        free(name.data);
        if (fd == -ENOENT)
            continue;
        if (fd < 0)
            return open_failed(h, -fd);
        int rc = 0;
        bool served = S_ISREG(st.st_mode);
        if (served) /* a directory named index.html is no index */
            rc = serve_file(h, fd, readable, &st, indexes[i]);
        close(fd);
        if (served)
            return rc;
    }
    int rc = httpd_list_directory(h, dir_fd, dir_readable, path);
    return rc > 0 ? open_failed(h, rc) : rc;
}

/* A file from the cache (file_cache.h): what it holds is what a miss
 * would have opened, read and stat'ed. */
static int serve_cached(ss_http *h, const file_cache_file *cached)
{
    file_source file = {.fd = cached->fd,
                        .bytes = cached->bytes,
                        .st = &cached->st,
                        .etag = cached->etag,
                        .modified = cached->modified,
                        .type = cached->type};
    return send_file(h, &file);
}

/* When the request's bytes arrived (main.c turns on the kernel's receive
 * stamps), for the file cache; 0: not known. */
static int64_t arrived_ns(ss_http *h)
{
    struct timespec ts;
    if (!ss_http_input_time(h, &ts))
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int httpd_serve_static(ss_http *h, httpd_context *ctx, const httpd_path *path)
{
    if (ctx->file_cache != NULL) {
        /* A directory's index.html is looked up as the file it is: found
         * (regular, readable, no symlink on the way) it is exactly what
         * serve_directory() would send; anything else, index.htm
         * included, takes the ordinary path, which keeps their order. */
        char index[PATH_MAX];
        const char *name = path->relative;
        if (path->trailing_slash) {
            bool root = strcmp(name, ".") == 0;
            int n = snprintf(index, sizeof index, "%s%sindex.html",
                             root ? "" : name, root ? "" : "/");
            name = n > 0 && (size_t)n < sizeof index ? index : NULL;
        }
        const file_cache_file *cached =
            name ? file_cache_get(ctx->file_cache, name, arrived_ns(h)) : NULL;
        if (cached != NULL) {
            int rc = serve_cached(h, cached);
            file_cache_release(ctx->file_cache, cached);
            return rc;
        }
    }
    struct stat st;
    bool readable;
    int fd = httpd_open_beneath(ctx, path->relative, &st, &readable);
    if (fd < 0)
        return open_failed(h, -fd);
    int rc;
    if (S_ISDIR(st.st_mode))
        rc = path->trailing_slash ? serve_directory(h, ctx, fd, readable, path)
                                  : redirect_to_slash(h, path);
    else if (S_ISREG(st.st_mode) && !path->trailing_slash)
        rc = serve_file(h, fd, readable, &st, path->relative);
    else
        rc = not_found(h);
    close(fd);
    return rc;
}
