/*
 * test_http_target.c — the allocation-free helpers of http_parser.h that
 * take a request target or a form body apart: percent-decoding, the path,
 * the query, form fields, and route patterns with captures. Table-driven,
 * like test_http_parser.c; every input is copied to the end of a page
 * followed by an inaccessible one (picohttpparser's trick), so a read one
 * byte past the given length crashes instead of passing.
 */
#include "support.h"

#include <sockserv/http_parser.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- input at the very end of a page ------------------------------------ */

static char *guard_area;
static size_t page_size;

static int guard_setup(void **state)
{
    (void)state;
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    guard_area = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_area == MAP_FAILED)
        return -1;
    return mprotect(guard_area + page_size, page_size, PROT_NONE);
}

static int guard_teardown(void **state)
{
    (void)state;
    munmap(guard_area, 2 * page_size);
    return 0;
}

/* text (without its NUL) ending exactly where the readable page ends. */
static const char *at_page_end(const char *text)
{
    size_t n = strlen(text);
    assert_true(n <= page_size);
    char *p = guard_area + page_size - n;
    memcpy(p, text, n);
    return p;
}

/* ---- percent-decoding --------------------------------------------------- */

static void test_percent_decode(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool plus;
        int rc;
        const char *out;
    } cases[] = {
        {"plain", false, 5, "plain"},
        {"a%20b", false, 3, "a b"},
        {"%41%42%43", false, 3, "ABC"},
        {"%e9", false, 1, "\xe9"}, /* a byte, whatever it encodes */
        {"a+b", false, 3, "a+b"},  /* '+' is a space only in forms */
        {"a+b", true, 3, "a b"},
        {"%2B", true, 1, "+"},    /* an encoded '+' stays one */
        {"%zz", false, 3, "%zz"}, /* invalid escapes stay as sent */
        {"100%", false, 4, "100%"},
        {"%4", false, 2, "%4"},
        {"%%41", false, 2, "%A"},
        {"%00", false, -EINVAL, NULL}, /* NUL refused */
        {"a%00b", true, -EINVAL, NULL},
        {"", false, 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        const char *in = at_page_end(cases[i].in);
        int rc = ss_http_percent_decode(in, strlen(cases[i].in), cases[i].plus,
                                        out, sizeof out);
        if (rc != cases[i].rc)
            fail_msg("decode \"%s\": %d, expected %d", cases[i].in, rc,
                     cases[i].rc);
        if (rc >= 0)
            assert_string_equal(out, cases[i].out);
    }
    /* A raw NUL in the input is refused too. */
    char out[8];
    assert_int_equal(ss_http_percent_decode("a\0b", 3, false, out, sizeof out),
                     -EINVAL);
    /* Exactly fitting, one short. */
    assert_int_equal(ss_http_percent_decode("abc", 3, false, out, 4), 3);
    assert_int_equal(ss_http_percent_decode("abc", 3, false, out, 3), -ENOBUFS);
    assert_int_equal(ss_http_percent_decode("%41", 3, false, out, 2), 1);
    assert_int_equal(ss_http_percent_decode("", 0, false, out, 0), -ENOBUFS);
    assert_int_equal(ss_http_percent_decode("x", (size_t)SS_HTTP_LIMIT_CAP + 1,
                                            false, out, sizeof out),
                     -E2BIG);
}

/* ---- path and query ------------------------------------------------------ */

static void test_target_path(void **state)
{
    (void)state;
    static const struct {
        const char *target;
        int rc;
        const char *path;
    } cases[] = {
        {"/", 1, "/"},
        {"/a%20b?x=1", 4, "/a b"},
        {"/a+b", 4, "/a+b"},
        {"/items/42#frag", 9, "/items/42"},
        {"/a%2Fb", 4, "/a/b"},
        {"/?only=query", 1, "/"},
        {"http://example.com/p/q?x", 4, "/p/q"},
        {"HTTPS://example.com:8443/%7Euser", 6, "/~user"},
        {"http://example.com", 1, "/"},
        {"http://example.com?x=1", 1, "/"},
        {"/nul%00here", -EINVAL, NULL},
        {"*", -EINVAL, NULL},
        {"example.com:443", -EINVAL, NULL},
        {"relative/path", -EINVAL, NULL},
        {"", -EINVAL, NULL},
        {"ftp://example.com/x", -EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        const char *t = at_page_end(cases[i].target);
        int rc =
            ss_http_target_path(t, strlen(cases[i].target), out, sizeof out);
        if (rc != cases[i].rc)
            fail_msg("path of \"%s\": %d, expected %d", cases[i].target, rc,
                     cases[i].rc);
        if (rc >= 0)
            assert_string_equal(out, cases[i].path);
    }
    char small[4];
    assert_int_equal(ss_http_target_path("/abcd", 5, small, sizeof small),
                     -ENOBUFS);
}

static void test_target_query(void **state)
{
    (void)state;
    size_t n = 99;
    const char *t = at_page_end("/p?x=1&y=2");
    const char *q = ss_http_target_query(t, 10, &n);
    assert_non_null(q);
    assert_int_equal(n, 7);
    assert_memory_equal(q, "x=1&y=2", 7);
    t = at_page_end("/p?a=1#frag");
    q = ss_http_target_query(t, 11, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(q, "a=1", 3);
    t = at_page_end("/p?");
    q = ss_http_target_query(t, 3, &n);
    assert_non_null(q);
    assert_int_equal(n, 0);
    t = at_page_end("/p");
    assert_null(ss_http_target_query(t, 2, &n));
    assert_int_equal(n, 0);
    assert_null(ss_http_target_query(t, 2, NULL));
}

/* ---- form data ------------------------------------------------------------
 */

static void test_form_find(void **state)
{
    (void)state;
    static const char data[] =
        "a=1&b=two+words&c=%26%3D&&flag&e=&b=second&n%61me=x&bad=%00&z";
    const char *d = at_page_end(data);
    size_t len = sizeof data - 1;
    static const struct {
        const char *name;
        int rc;
        const char *value;
    } cases[] = {
        {"a", 1, "1"},
        {"b", 9, "two words"}, /* the first of two */
        {"c", 2, "&="},
        {"flag", 0, ""}, /* no '=': the empty value */
        {"e", 0, ""},
        {"name", 1, "x"}, /* names compare decoded */
        {"bad", -EINVAL, NULL},
        {"z", 0, ""}, /* last, no '=' */
        {"missing", -ENOENT, NULL},
        {"A", -ENOENT, NULL}, /* case-sensitive, as parse_qs */
        {"", -ENOENT, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        int rc = ss_http_form_find(d, len, cases[i].name, out, sizeof out);
        if (rc != cases[i].rc)
            fail_msg("form field \"%s\": %d, expected %d", cases[i].name, rc,
                     cases[i].rc);
        if (rc >= 0)
            assert_string_equal(out, cases[i].value);
    }
    char out[4];
    assert_int_equal(ss_http_form_find(d, len, "b", out, sizeof out), -ENOBUFS);
    assert_int_equal(ss_http_form_find(NULL, 0, "a", out, sizeof out), -ENOENT);
}

static void test_form_next_walks_every_field(void **state)
{
    (void)state;
    static const char data[] = "&a=1&&b&c=x=y&";
    const char *d = at_page_end(data);
    size_t len = sizeof data - 1, pos = 0;
    ss_http_form_field f;
    char seen[64] = "";
    while (ss_http_form_next(d, len, &pos, &f))
        snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "[%.*s|%.*s]",
                 (int)f.name_len, f.name, (int)f.value_len, f.value);
    /* Empty fields skipped; the value runs to the next '&' ("x=y"). */
    assert_string_equal(seen, "[a|1][b|][c|x=y]");
    assert_int_equal(pos, len);
    assert_int_equal(ss_http_form_next(d, len, &pos, &f), 0);
}

/* ---- routes ----------------------------------------------------------- */

static void test_match_route(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *path;
        int rc;
        const char *captures; /* "name=value;…" */
    } cases[] = {
        {"/api/status", "/api/status", 0, ""},
        {"/api/status", "/api/status/", -ENOENT, NULL},
        {"/api/status", "/api/stat", -ENOENT, NULL},
        {"/api/items/{id}", "/api/items/42", 1, "id=42;"},
        {"/api/items/{id}", "/api/items/", -ENOENT, NULL}, /* never empty */
        {"/api/items/{id}", "/api/items/4/2", -ENOENT, NULL},
        {"/api/items/{id}", "/api/items", -ENOENT, NULL},
        {"/{a}/x/{b}", "/one/x/two", 2, "a=one;b=two;"},
        {"/{a}/{b}", "/one/two", 2, "a=one;b=two;"},
        {"/files/{path...}", "/files/a/b/c.txt", 1, "path=a/b/c.txt;"},
        {"/files/{path...}", "/files/", 1, "path=;"},
        {"/files/{path...}", "/files", -ENOENT, NULL},
        {"/{id}/edit", "/7/edit", 1, "id=7;"},
        {"/{id}/edit", "/7/view", -ENOENT, NULL},
        {"{all...}", "anything/at/all", 1, "all=anything/at/all;"},
        /* Malformed patterns, whatever the path. */
        {"/a{id}", "/a1", -EINVAL, NULL},
        {"/{id}x", "/1x", -EINVAL, NULL},
        {"/{}", "/x", -EINVAL, NULL},
        {"/{...}", "/x", -EINVAL, NULL},
        {"/{rest...}/x", "/a/x", -EINVAL, NULL},
        {"/{a.b}", "/x", -EINVAL, NULL},
        {"/{open", "/x", -EINVAL, NULL},
        {"/close}", "/close}", -EINVAL, NULL},
        {"/{a{b}}", "/x", -EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_http_route_capture caps[4];
        const char *path = at_page_end(cases[i].path);
        int rc = ss_http_match_route(cases[i].pattern, path,
                                     strlen(cases[i].path), caps, 4);
        if (rc != cases[i].rc)
            fail_msg("\"%s\" against \"%s\": %d, expected %d", cases[i].pattern,
                     cases[i].path, rc, cases[i].rc);
        if (rc < 0)
            continue;
        char got[128] = "";
        for (int c = 0; c < rc; c++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%.*s=%.*s;",
                     (int)caps[c].name_len, caps[c].name,
                     (int)caps[c].value_len, caps[c].value);
        assert_string_equal(got, cases[i].captures);
    }
    /* More captures than room: refused whatever the path. */
    ss_http_route_capture one[1];
    assert_int_equal(ss_http_match_route("/{a}/{b}", "/x/y", 4, one, 1),
                     -ENOBUFS);
    assert_int_equal(ss_http_match_route("/{a}", "/nomatch/x", 10, NULL, 0),
                     -ENOBUFS);
    assert_int_equal(ss_http_match_route("/plain", "/plain", 6, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_target_path),
        cmocka_unit_test(test_target_query),
        cmocka_unit_test(test_form_find),
        cmocka_unit_test(test_form_next_walks_every_field),
        cmocka_unit_test(test_match_route),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
