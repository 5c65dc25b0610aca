/*
 * fuzz_http_target.c — libFuzzer target for the request helpers of
 * http_parser.h that take request targets and form bodies apart
 * (lib/http/http_target.c): ss_http_percent_decode, ss_http_target_path,
 * ss_http_target_query, ss_http_form_next, ss_http_form_find and
 * ss_http_match_route. Targets, query strings and form bodies come from
 * the network; route patterns come from the program, but a malformed one
 * must be refused, never misread.
 *
 * An input is "PATTERN\nTEXT": the pattern is the part before the first
 * newline (none: a few fixed patterns), TEXT the rest, copied to a heap
 * block of exactly its length so ASan sees any read past it. Checked:
 *  - decoding: the result fits, is NUL-terminated, holds no NUL, is never
 *    longer than the input; -EINVAL exactly when the input holds a NUL
 *    or a "%00"; one byte less room gives -ENOBUFS, and a decode with the
 *    exact room gives the same bytes;
 *  - the path starts with '/' and is no longer than the target plus one;
 *  - the query is a slice of the target right after its first '?';
 *  - form fields are slices without '&', visited in order, and
 *    ss_http_form_find() of each field's decoded name gives the value of
 *    the first field with that name;
 *  - a route match's captures are slices of the pattern and the path,
 *    segment captures are non-empty and hold no '/', and putting the
 *    captured values back into the pattern gives the path exactly.
 */
#include <sockserv/http_parser.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#define MAX_CAPTURES 8

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

static bool has_nul_or_escaped_nul(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0')
            return true;
        if (s[i] == '%' && len - i >= 3 && s[i + 1] == '0' && s[i + 2] == '0')
            return true;
    }
    return false;
}

static void check_decode(const char *s, size_t len, bool plus)
{
    char *out = malloc(len + 1);
    CHECK(out);
    int rc = ss_http_percent_decode(s, len, plus, out, len + 1);
    if (rc < 0) {
        CHECK(rc == -EINVAL && has_nul_or_escaped_nul(s, len));
        free(out);
        return;
    }
    CHECK(!has_nul_or_escaped_nul(s, len));
    CHECK((size_t)rc <= len && out[rc] == '\0' && strlen(out) == (size_t)rc);
    char *exact = malloc((size_t)rc + 1);
    CHECK(exact);
    CHECK(ss_http_percent_decode(s, len, plus, exact, (size_t)rc + 1) == rc);
    CHECK(memcmp(exact, out, (size_t)rc + 1) == 0);
    if (rc > 0)
        CHECK(ss_http_percent_decode(s, len, plus, exact, (size_t)rc) ==
              -ENOBUFS);
    free(exact);
    free(out);
}

static void check_path_and_query(const char *t, size_t len)
{
    char *out = malloc(len + 2);
    CHECK(out);
    int rc = ss_http_target_path(t, len, out, len + 2);
    CHECK(rc == -EINVAL || rc >= 1);
    if (rc >= 1)
        CHECK(out[0] == '/' && (size_t)rc <= len + 1 && out[rc] == '\0');
    free(out);

    size_t qlen = 12345;
    const char *q = ss_http_target_query(t, len, &qlen);
    if (!q) {
        CHECK(qlen == 0 && memchr(t, '?', len) == NULL);
    } else {
        CHECK(q > t && q[-1] == '?' && memchr(t, '?', len) == q - 1);
        CHECK(inside(q, qlen, t, len));
        CHECK(memchr(q, '#', qlen) == NULL);
    }
}

static void check_form(const char *d, size_t len)
{
    size_t pos = 0, last = 0;
    ss_http_form_field f;
    int fields = 0;
    while (ss_http_form_next(d, len, &pos, &f) && fields < 64) {
        fields++;
        CHECK(pos > last && pos <= len);
        last = pos;
        CHECK(f.name_len + f.value_len > 0 || f.name < f.value);
        CHECK(inside(f.name, f.name_len, d, len));
        CHECK(inside(f.value, f.value_len, d, len));
        CHECK(!memchr(f.name, '&', f.name_len) &&
              !memchr(f.name, '=', f.name_len));
        CHECK(!memchr(f.value, '&', f.value_len));

        char name[256];
        if (f.name_len >= sizeof name ||
            ss_http_percent_decode(f.name, f.name_len, true, name,
                                   sizeof name) < 0)
            continue;
        /* The first field with this decoded name wins. */
        size_t p2 = 0;
        ss_http_form_field first;
        char other[256];
        while (ss_http_form_next(d, len, &p2, &first))
            if (first.name_len < sizeof other &&
                ss_http_percent_decode(first.name, first.name_len, true, other,
                                       sizeof other) >= 0 &&
                strcmp(other, name) == 0)
                break;
        char *want = malloc(first.value_len + 1);
        char *got = malloc(first.value_len + 1);
        CHECK(want && got);
        int a = ss_http_percent_decode(first.value, first.value_len, true, want,
                                       first.value_len + 1);
        int b = ss_http_form_find(d, len, name, got, first.value_len + 1);
        CHECK(a == b);
        if (a >= 0)
            CHECK(strcmp(want, got) == 0);
        free(want);
        free(got);
    }
}

static void check_route(const char *pattern, const char *path, size_t len)
{
    ss_http_route_capture caps[MAX_CAPTURES];
    int rc = ss_http_match_route(pattern, path, len, caps, MAX_CAPTURES);
    CHECK(rc >= 0 || rc == -ENOENT || rc == -EINVAL || rc == -ENOBUFS);
    if (rc < 0)
        return;
    /* Put the values back into the pattern: that is the path. */
    size_t plen = strlen(pattern), at = 0;
    const char *p = pattern;
    for (int i = 0; i < rc; i++) {
        CHECK(inside(caps[i].name, caps[i].name_len, pattern, plen));
        CHECK(inside(caps[i].value, caps[i].value_len, path, len));
        const char *brace = caps[i].name - 1;
        CHECK(brace >= p && *brace == '{');
        size_t literal = (size_t)(brace - p);
        CHECK(at + literal <= len && memcmp(path + at, p, literal) == 0);
        at += literal;
        CHECK(caps[i].value == path + at);
        bool rest = strncmp(caps[i].name + caps[i].name_len, "...}", 4) == 0;
        if (!rest)
            CHECK(caps[i].value_len > 0 &&
                  !memchr(caps[i].value, '/', caps[i].value_len));
        at += caps[i].value_len;
        p = caps[i].name + caps[i].name_len + (rest ? 4 : 1);
    }
    size_t tail = strlen(p);
    CHECK(at + tail == len && memcmp(path + at, p, tail) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    char pattern[256] = "";
    const char *text = (const char *)data;
    size_t len = size;
    if (nl) {
        size_t n = (size_t)(nl - (const char *)data);
        if (n < sizeof pattern && !memchr(data, '\0', n)) {
            memcpy(pattern, data, n);
            pattern[n] = '\0';
        }
        text = nl + 1;
        len = size - n - 1;
    }
    char *t = malloc(len ? len : 1);
    CHECK(t);
    memcpy(t, text, len);

    check_decode(t, len, false);
    check_decode(t, len, true);
    check_path_and_query(t, len);
    check_form(t, len);
    size_t qlen;
    const char *q = ss_http_target_query(t, len, &qlen);
    if (q)
        check_form(q, qlen);

    static const char *const fixed[] = {
        "/api/items/{id}", "/{a}/{b}", "/files/{path...}", "{all...}", "/",
    };
    if (pattern[0])
        check_route(pattern, t, len);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_route(fixed[i], t, len);
    /* And the decoded path, as ss_http_match() does. */
    char *path = malloc(len + 2);
    CHECK(path);
    int n = ss_http_target_path(t, len, path, len + 2);
    if (n > 0) {
        if (pattern[0])
            check_route(pattern, path, (size_t)n);
        check_route(fixed[0], path, (size_t)n);
    }
    free(path);
    free(t);
    return 0;
}
