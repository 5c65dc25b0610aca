/*
 * http_request.c — what a method callback asks of its request beyond the
 * head: the decoded path, query parameters, a form body, and route
 * matching with captures. Each is the allocation-free helper of
 * http_target.c applied to the exchange, with its result copied, NUL-
 * terminated, into the exchange's arena (http_exchange.c), so it stays
 * valid until the callback returns and costs nothing afterwards.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

void ss__http_request_reset(ss_http *h)
{
    h->path_copy = NULL;
    h->path_state = 0;
    h->form = NULL;
    h->form_len = 0;
    h->form_read = false;
    h->capture_count = 0;
}

/* A decoded copy of src[0..len) in the arena, or NULL (undecodable, or
 * out of memory). The decoded text is never longer than the input. */
static const char *decoded_copy(ss_http *h, const char *src, size_t len,
                                bool plus_is_space)
{
    char *out = ss__http_alloc(h, len + 1);
    if (!out)
        return NULL;
    return ss_http_percent_decode(src, len, plus_is_space, out, len + 1) < 0
               ? NULL
               : out;
}

const char *ss_http_path(ss_http *h)
{
    if (h->path_state == 0) {
        const ss_http_request *r = &h->parsed;
        /* At most the target's length, or "/" for "http://host". */
        size_t size = r->target_len + 2;
        char *out = ss__http_alloc(h, size);
        h->path_state = -1;
        if (out &&
            ss_http_target_path(r->target, r->target_len, out, size) >= 0) {
            h->path_copy = out;
            h->path_state = 1;
        }
    }
    return h->path_state > 0 ? h->path_copy : NULL;
}

/* A value of form data data[0..len), decoded into the arena. */
static const char *form_value(ss_http *h, const char *data, size_t len,
                              const char *name)
{
    size_t pos = 0;
    ss_http_form_field f;
    char *decoded_name = NULL;
    size_t room = 0;
    while (ss_http_form_next(data, len, &pos, &f)) {
        /* Names are short: compare them decoded, through one scratch copy
         * that grows with the longest name seen. */
        if (f.name_len + 1 > room) {
            room = f.name_len + 1;
            decoded_name = ss__http_alloc(h, room);
            if (!decoded_name)
                return NULL;
        }
        if (ss_http_percent_decode(f.name, f.name_len, true, decoded_name,
                                   room) >= 0 &&
            strcmp(decoded_name, name) == 0)
            return decoded_copy(h, f.value, f.value_len, true);
    }
    return NULL;
}

const char *ss_http_query_string(ss_http *h)
{
    size_t len;
    const char *q =
        ss_http_target_query(h->parsed.target, h->parsed.target_len, &len);
    return q ? ss__http_copy(h, q, len) : "";
}

const char *ss_http_query(ss_http *h, const char *name)
{
    if (!name)
        return NULL;
    size_t len;
    const char *q =
        ss_http_target_query(h->parsed.target, h->parsed.target_len, &len);
    return q ? form_value(h, q, len, name) : NULL;
}

/* Whether the request says its body is a form. Parameters after ';' are
 * allowed ("; charset=utf-8"), as is whitespace before them. */
static bool is_form_content_type(ss_http *h)
{
    const ss_http_header *f = ss_http_header_find(&h->parsed, "Content-Type");
    static const char form[] = "application/x-www-form-urlencoded";
    const size_t n = sizeof form - 1;
    if (!f || f->value_len < n || strncasecmp(f->value, form, n) != 0)
        return false;
    for (size_t i = n; i < f->value_len; i++) {
        if (f->value[i] == ';')
            return true;
        if (f->value[i] != ' ' && f->value[i] != '\t')
            return false;
    }
    return true;
}

int ss_http_read_form(ss_http *h, size_t max_size)
{
    if (h->form_read)
        return (int)h->form_len;
    if (max_size > SS_HTTP_LIMIT_CAP)
        max_size = SS_HTTP_LIMIT_CAP;
    int64_t declared = ss_http_body_length(h);
    bool has_body = h->body_kind != SS_HTTP_BODY_NONE;
    if (has_body && !is_form_content_type(h))
        return ss__http_body_refuse(h, SS_HTTP_E_UNSUPPORTED_MEDIA_TYPE);
    if (declared >= 0 && (uint64_t)declared > max_size)
        return ss__http_body_refuse(h, SS_HTTP_E_BODY_TOO_LARGE);
    /* Content-Length: exactly that; chunked: up to max_size, and one byte
     * more tells that the body is larger. */
    size_t room = declared >= 0 ? (size_t)declared : max_size + 1;
    char *buf = ss__http_alloc(h, room + 1);
    if (!buf)
        return -ENOMEM;
    size_t have = 0;
    for (;;) {
        int got =
            have < room ? ss_http_read_body(h, buf + have, room - have) : 0;
        if (got < 0)
            return got;
        if (got == 0)
            break;
        have += (size_t)got;
        if (have > max_size) /* chunked, past max_size */
            return ss__http_body_refuse(h, SS_HTTP_E_BODY_TOO_LARGE);
    }
    buf[have] = '\0';
    h->form = buf;
    h->form_len = have;
    h->form_read = true;
    return (int)have;
}

const char *ss_http_form(ss_http *h, const char *name)
{
    if (!h->form_read || !name)
        return NULL;
    return form_value(h, h->form, h->form_len, name);
}

bool ss_http_match(ss_http *h, const char *pattern)
{
    const char *path = ss_http_path(h);
    if (!path || !pattern)
        return false;
    ss_http_route_capture found[SS__HTTP_MAX_CAPTURES];
    int n = ss_http_match_route(pattern, path, strlen(path), found,
                                SS__HTTP_MAX_CAPTURES);
    if (n < 0)
        return false;
    h->capture_count = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ss__http_copy(h, found[i].name, found[i].name_len);
        const char *value =
            ss__http_copy(h, found[i].value, found[i].value_len);
        if (!name || !value)
            return false;
        h->captures[i].name = name;
        h->captures[i].value = value;
    }
    h->capture_count = n;
    return true;
}

const char *ss_http_capture(ss_http *h, const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < h->capture_count; i++)
        if (strcmp(h->captures[i].name, name) == 0)
            return h->captures[i].value;
    return NULL;
}
