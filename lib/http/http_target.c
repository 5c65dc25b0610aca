/*
 * http_target.c — what a handler asks of a request target and a form body:
 * percent-decoding, the path, the query, form fields and route patterns
 * with captures. Like the parser (http_parser.c) these work on slices:
 * nothing is allocated, nothing is written but the caller's output buffer,
 * nothing is read past a length, and every loop is linear in its input.
 * The exchange-level helpers of http.h (ss_http_path(), ss_http_query(),
 * ss_http_match()…) are built on them in http_request.c. Fuzzed by
 * tests/fuzz/fuzz_http_target.c.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "sockserv/http_parser.h"

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte that starts at src[i] and how many input bytes it takes:
 * "%XY" with two hex digits is one byte of three, anything else (an
 * invalid escape included) is itself. */
static unsigned char decode_at(const char *src, size_t len, size_t i,
                               bool plus_is_space, size_t *taken)
{
    unsigned char c = (unsigned char)src[i];
    *taken = 1;
    if (c == '%' && len - i >= 3) {
        int hi = hex_value((unsigned char)src[i + 1]);
        int lo = hex_value((unsigned char)src[i + 2]);
        if (hi >= 0 && lo >= 0) {
            *taken = 3;
            return (unsigned char)(hi * 16 + lo);
        }
    }
    if (c == '+' && plus_is_space)
        return ' ';
    return c;
}

int ss_http_percent_decode(const char *src, size_t len, bool plus_is_space,
                           char *out, size_t size)
{
    if (len > SS_HTTP_LIMIT_CAP)
        return -E2BIG;
    if (!out || size == 0)
        return -ENOBUFS;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t taken;
        unsigned char c = decode_at(src, len, i, plus_is_space, &taken);
        if (c == '\0')
            return -EINVAL;
        if (n == size - 1)
            return -ENOBUFS;
        out[n++] = (char)c;
        i += taken;
    }
    out[n] = '\0';
    return (int)n;
}

/* The path part of a target: origin form "/p?q", or the path of an
 * absolute form "http://host/p?q" (empty when the target has none).
 * false for any other form. */
static bool path_slice(const char *target, size_t len, const char **path,
                       size_t *path_len)
{
    const char *p = target, *end = target + len;
    if (len > 0 && p[0] == '/') {
        /* origin form */
    } else {
        size_t scheme = len >= 7 && strncasecmp(p, "http://", 7) == 0    ? 7
                        : len >= 8 && strncasecmp(p, "https://", 8) == 0 ? 8
                                                                         : 0;
        if (scheme == 0)
            return false; /* "*", "host:443", "relative" */
        p += scheme;
        while (p < end && *p != '/' && *p != '?' && *p != '#')
            p++; /* the authority is not ours */
    }
    const char *stop = p;
    while (stop < end && *stop != '?' && *stop != '#')
        stop++;
    *path = p;
    *path_len = (size_t)(stop - p);
    return true;
}

int ss_http_target_path(const char *target, size_t len, char *out, size_t size)
{
    if (len > SS_HTTP_LIMIT_CAP)
        return -E2BIG;
    const char *path;
    size_t path_len;
    if (!target || !path_slice(target, len, &path, &path_len))
        return -EINVAL;
    if (path_len == 0) /* "http://host" and "http://host?q" */
        return ss_http_percent_decode("/", 1, false, out, size);
    return ss_http_percent_decode(path, path_len, false, out, size);
}

const char *ss_http_target_query(const char *target, size_t len,
                                 size_t *query_len)
{
    const char *q = target ? memchr(target, '?', len) : NULL;
    size_t n = 0;
    if (q) {
        q++;
        const char *end = target + len;
        const char *hash = memchr(q, '#', (size_t)(end - q));
        n = (size_t)((hash ? hash : end) - q);
    }
    if (query_len)
        *query_len = n;
    return q;
}

int ss_http_form_next(const char *data, size_t len, size_t *pos,
                      ss_http_form_field *field)
{
    size_t i = *pos;
    while (i < len && data[i] == '&')
        i++; /* empty fields */
    if (i >= len) {
        *pos = len;
        return 0;
    }
    const char *start = data + i;
    const char *amp = memchr(start, '&', len - i);
    size_t n = amp ? (size_t)(amp - start) : len - i;
    const char *eq = memchr(start, '=', n);
    field->name = start;
    field->name_len = eq ? (size_t)(eq - start) : n;
    field->value = eq ? eq + 1 : start + n;
    field->value_len = eq ? n - field->name_len - 1 : 0;
    *pos = i + n;
    return 1;
}

/* Whether raw, form-decoded, is exactly name — without a buffer. */
static bool decoded_equals(const char *raw, size_t len, const char *name)
{
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        size_t taken;
        unsigned char c = decode_at(raw, len, i, true, &taken);
        if (c == '\0' || name[j] == '\0' || (unsigned char)name[j] != c)
            return false;
        j++;
        i += taken;
    }
    return name[j] == '\0';
}

int ss_http_form_find(const char *data, size_t len, const char *name, char *out,
                      size_t size)
{
    if (len > SS_HTTP_LIMIT_CAP)
        return -E2BIG;
    if (!name || (!data && len > 0))
        return -EINVAL;
    size_t pos = 0;
    ss_http_form_field f;
    while (ss_http_form_next(data, len, &pos, &f))
        if (decoded_equals(f.name, f.name_len, name))
            return ss_http_percent_decode(f.value, f.value_len, true, out,
                                          size);
    return -ENOENT;
}

/* ---- route patterns ---------------------------------------------------- */

/* One capture segment of a pattern at pattern[i] == '{': its name and
 * whether it is a "{name...}". Returns the index just past the '}', or 0
 * for a malformed one (the caller has checked it starts a segment). */
static size_t parse_capture(const char *pattern, size_t i, const char **name,
                            size_t *name_len, bool *rest)
{
    size_t start = i + 1, j = start;
    while (pattern[j] && pattern[j] != '}' && pattern[j] != '{' &&
           pattern[j] != '/')
        j++;
    if (pattern[j] != '}')
        return 0; /* unclosed, nested, or across a '/' */
    size_t n = j - start;
    *rest = n >= 3 && memcmp(pattern + j - 3, "...", 3) == 0;
    if (*rest)
        n -= 3;
    if (n == 0 || memchr(pattern + start, '.', n))
        return 0; /* "{}", "{...}", dots in the name */
    *name = pattern + start;
    *name_len = n;
    return j + 1;
}

/* Check the pattern: every brace a whole-segment capture, "{name...}"
 * only last. Returns the number of captures or -EINVAL. */
static int check_pattern(const char *pattern)
{
    int count = 0;
    for (size_t i = 0; pattern[i];) {
        if (pattern[i] == '}')
            return -EINVAL;
        if (pattern[i] != '{') {
            i++;
            continue;
        }
        if (i > 0 && pattern[i - 1] != '/')
            return -EINVAL; /* "/a{id}": not a whole segment */
        const char *name;
        size_t name_len;
        bool rest;
        size_t next = parse_capture(pattern, i, &name, &name_len, &rest);
        if (next == 0)
            return -EINVAL;
        if (pattern[next] != '\0' && (rest || pattern[next] != '/'))
            return -EINVAL; /* "{id}x", or "{rest...}" not last */
        if (count == SS_HTTP_LIMIT_CAP)
            return -E2BIG;
        count++;
        i = next;
    }
    return count;
}

int ss_http_match_route(const char *pattern, const char *path, size_t len,
                        ss_http_route_capture *captures, size_t max_captures)
{
    if (!pattern || (!path && len > 0))
        return -EINVAL;
    if (len > SS_HTTP_LIMIT_CAP)
        return -E2BIG;
    int count = check_pattern(pattern);
    if (count < 0)
        return count;
    if ((size_t)count > max_captures)
        return -ENOBUFS;
    /* The pattern is well-formed: literal bytes match exactly, a capture
     * takes one whole segment (or, last, the rest). */
    size_t p = 0, i = 0;
    int found = 0;
    while (pattern[p]) {
        if (pattern[p] != '{') {
            if (i == len || path[i] != pattern[p])
                return -ENOENT;
            p++;
            i++;
            continue;
        }
        ss_http_route_capture c;
        bool rest;
        p = parse_capture(pattern, p, &c.name, &c.name_len, &rest);
        size_t end = i;
        if (rest)
            end = len;
        else
            while (end < len && path[end] != '/')
                end++;
        if (end == i && !rest)
            return -ENOENT; /* a segment capture is never empty */
        c.value = path + i;
        c.value_len = end - i;
        captures[found++] = c;
        i = end;
    }
    return i == len ? found : -ENOENT;
}
