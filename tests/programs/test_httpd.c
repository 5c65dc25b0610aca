/*
 * test_httpd.c — end-to-end tests of the sockserv-httpd program.
 *
 * Each test starts the real binary (fork + exec) on port 0 with
 * --port-file, serving a scratch tree built once per group, and talks to
 * it over raw TCP with small hand-written HTTP requests: the exact bytes
 * are the point (traversal spellings, a Location header, a 206 body). The
 * same core tests run under --mode thread, fork and prefork. A cmocka
 * teardown kills the server by its PID, so a failed assertion never leaves
 * a process behind. Some servers run with a small descriptor limit, to
 * run them out of descriptors one at a time, or (when the tests run as
 * root) as nobody, so that file permissions apply to them.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these three first */
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http_client.h"
#include "program_run.h"

#ifndef SOCKSERV_HTTPD_PATH
#error "SOCKSERV_HTTPD_PATH must name the sockserv-httpd binary"
#endif

#define HELLO "Hello, world!\n" /* 14 bytes */
#define SECRET "TOP-SECRET-OUTSIDE"
#define API_DIR_FILE "FILE-IN-API-DIRECTORY"

/* ---- the scratch tree ------------------------------------------------- */

static char base_dir[64]; /* /tmp/sockserv-httpd-XXXXXX */
static char www_dir[128]; /* base_dir/www, what the server serves */
static char run_dir[128]; /* base_dir/run, the port files (any user) */

static void write_file(const char *relative, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", base_dir, relative);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *relative)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", base_dir, relative);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int build_tree(void **state)
{
    (void)state;
    strcpy(base_dir, "/tmp/sockserv-httpd-XXXXXX");
    if (mkdtemp(base_dir) == NULL)
        return -1;
    snprintf(www_dir, sizeof www_dir, "%s/www", base_dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", base_dir);
    /* An unprivileged server must reach www and write its port file. */
    if (chmod(base_dir, 0755) != 0 || mkdir(run_dir, 0777) != 0 ||
        chmod(run_dir, 01777) != 0)
        return -1;
    write_file("secret.txt", SECRET "\n"); /* outside the served tree */
    make_dir("www");
    write_file("www/hello.txt", HELLO);
    make_dir("www/dir");
    write_file("www/dir/index.html", "<h1>index</h1>\n");
    make_dir("www/list");
    write_file("www/list/<b>&\"x\".txt", "x");
    make_dir("www/list/sub");
    make_dir("www/evil.example");
    make_dir("www/\\evil.example"); /* a name that starts with '\' */
    make_dir("www/api");            /* shadowed by the API, never served */
    write_file("www/api/file.txt", API_DIR_FILE);
    write_file("www/caf\xe9.txt", "latin-1 name\n");
    write_file("www/unreadable.txt", "abc"); /* no one may read it */
    char unreadable[512];
    snprintf(unreadable, sizeof unreadable, "%s/unreadable.txt", www_dir);
    if (chmod(unreadable, 0) != 0)
        return -1;
    char target[512];
    snprintf(target, sizeof target, "%s/escape", www_dir);
    if (symlink("../secret.txt", target) != 0)
        return -1;
    snprintf(target, sizeof target, "%s/inside", www_dir);
    if (symlink("hello.txt", target) != 0)
        return -1;
    return 0;
}

static int remove_tree(void **state)
{
    (void)state;
    return test_remove_tree(base_dir);
}

/* ---- the server process ------------------------------------------------- */

/* How a test's server runs (a cmocka prestate). */
typedef struct server_spec {
    const char *mode;
    rlim_t nofile;        /* its RLIMIT_NOFILE; 0: ours */
    const char *extra[3]; /* more arguments, up to a NULL */
    bool unprivileged;    /* as nobody when we are root */
} server_spec;

static server_spec thread_server = {.mode = "thread"};
static server_spec fork_server = {.mode = "fork"};
static server_spec prefork_server = {.mode = "prefork"};
static server_spec pool_server = {.mode = "pool"};
/* With a small descriptor limit: by default it takes as many connections
 * as that leaves room for; without the limit it runs out of descriptors
 * after about 50. */
static server_spec small_thread_server = {.mode = "thread", .nofile = 64};
static server_spec small_unlimited_server = {
    .mode = "thread",
    .nofile = 64,
    /* A cached file needs no descriptor: these run out of them opening. */
    .extra = {"--max-connections", "0", "--no-file-cache"}};
static server_spec unprivileged_server = {.mode = "thread",
                                          .unprivileged = true};

typedef struct fixture {
    const char *mode;
    pid_t pid; /* 0 once reaped */
    int port;
    char port_file[256];
} fixture;

/* In the child, before exec: the limits and the user the spec asks for. */
static void apply_spec(const server_spec *spec)
{
    if (spec->nofile > 0) {
        struct rlimit limit = {spec->nofile, spec->nofile};
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
            _exit(126);
    }
    if (spec->unprivileged && geteuid() == 0 &&
        (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
        _exit(126);
}

static int start_server_process(fixture *fx, const server_spec *spec);
static int stop_server(void **state);

static int start_server(void **state)
{
    static int counter;
    const server_spec *spec = *state;
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    fx->mode = spec->mode;
    snprintf(fx->port_file, sizeof fx->port_file, "%s/port-%d", run_dir,
             ++counter);
    /* A setup that fails gets no teardown: stop_server(&fx) then. */
    int rc = start_server_process(fx, spec);
    if (rc < 0) {
        void *failed = fx;
        stop_server(&failed);
        *state = NULL;
        return rc;
    }
    *state = fx;
    return 0;
}

static int start_server_process(fixture *fx, const server_spec *spec)
{
    const char *argv[24] = {"sockserv-httpd",
                            "--mode",
                            fx->mode,
                            "0",
                            "-b",
                            "127.0.0.1",
                            "-d",
                            www_dir,
                            "-q",
                            "--workers",
                            "2",
                            "--port-file",
                            fx->port_file};
    size_t argc = 13;
    for (size_t i = 0; i < 3 && spec->extra[i] != NULL; i++)
        argv[argc++] = spec->extra[i];

    fx->pid = fork();
    if (fx->pid < 0)
        return -1;
    if (fx->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO); /* the "Serving HTTP on" line */
        close(null);
        apply_spec(spec);
        execv(SOCKSERV_HTTPD_PATH, (char *const *)argv);
        _exit(127);
    }
    /* pid 0 after: it died before listening. */
    return test_wait_port_file(fx->port_file, &fx->pid, 10.0, &fx->port, 1);
}

static int stop_server(void **state)
{
    fixture *fx = *state;
    if (fx == NULL)
        return 0;
    if (fx->pid > 0) {
        kill(fx->pid, SIGTERM);
        if (test_wait_exit(fx->pid, 15.0) == -1) {
            kill(fx->pid, SIGKILL);
            waitpid(fx->pid, NULL, 0);
        }
    }
    unlink(fx->port_file);
    free(fx);
    return 0;
}

/* ---- a minimal HTTP client (tests/support/http_client.h) ---------------- */

typedef test_http_conn conn;
typedef test_http_response response;

static conn *connect_to(const fixture *fx)
{
    return test_http_connect(fx->port, 10.0);
}

/* One request on its own connection. */
static void fetch(const fixture *fx, const char *request, response *r)
{
    conn *c = connect_to(fx);
    test_http_send(c, request);
    test_http_read_response(c, r, strncmp(request, "HEAD ", 5) == 0);
    test_http_close(c);
}

/* GET target with extra header lines (each ending in \r\n, or ""). */
static void get(const fixture *fx, const char *target, const char *headers,
                response *r)
{
    char request[2048];
    snprintf(
        request, sizeof request,
        "GET %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n",
        target, headers);
    fetch(fx, request, r);
}

/* ---- files and directories ------------------------------------------------
 */

static void test_file_is_served_with_its_type_and_body(void **state)
{
    response r;
    get(*state, "/hello.txt", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(test_http_header(&r, "Content-Type"),
                        "text/plain; charset=utf-8");
    assert_string_equal(test_http_header(&r, "Content-Length"), "14");
    assert_non_null(test_http_header(&r, "Last-Modified"));
    assert_non_null(test_http_header(&r, "ETag"));
    assert_string_equal(r.body, HELLO);
}

static void test_directory_serves_its_index_html(void **state)
{
    response r;
    get(*state, "/dir/", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(test_http_header(&r, "Content-Type"),
                        "text/html; charset=utf-8");
    assert_string_equal(r.body, "<h1>index</h1>\n");
}

static void test_listing_escapes_names_and_encodes_hrefs(void **state)
{
    response r;
    get(*state, "/list/", "", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Directory listing for /list/"));
    assert_non_null(strstr(r.body, "<a href=\"%3Cb%3E%26%22x%22.txt\">"));
    assert_non_null(strstr(r.body, "&lt;b&gt;&amp;"));
    assert_null(strstr(r.body, "<b>")); /* never raw markup from a name */
    assert_non_null(strstr(r.body, "<a href=\"sub/\">sub/</a>"));
}

static void test_directory_without_slash_redirects_keeping_query(void **state)
{
    response r;
    get(*state, "/dir?q=1", "", &r);
    assert_int_equal(r.status, 301);
    assert_string_equal(test_http_header(&r, "Location"), "/dir/?q=1");
}

static void test_redirect_location_never_starts_with_two_slashes(void **state)
{
    static const char *const targets[] = {"//evil.example", "///evil.example",
                                          "//evil.example?x=1"};
    for (size_t i = 0; i < 3; i++) {
        response r;
        get(*state, targets[i], "", &r);
        assert_int_equal(r.status, 301);
        const char *location = test_http_header(&r, "Location");
        assert_non_null(location);
        assert_true(strncmp(location, "//", 2) != 0);
        assert_true(strncmp(location, "/evil.example/", 14) == 0);
    }
}

static void test_redirect_location_encodes_backslash(void **state)
{
    /* Browsers read "/\host" as "//host": the backslash goes out encoded. */
    static const char *const targets[] = {"/\\evil.example",
                                          "/%5Cevil.example"};
    for (size_t i = 0; i < 2; i++) {
        response r;
        get(*state, targets[i], "", &r);
        assert_int_equal(r.status, 301);
        const char *location = test_http_header(&r, "Location");
        assert_non_null(location);
        assert_string_equal(location, "/%5Cevil.example/");
    }
}

static void test_file_with_trailing_slash_is_not_found(void **state)
{
    response r;
    get(*state, "/hello.txt/", "", &r);
    assert_int_equal(r.status, 404);
}

static void test_traversal_attempts_never_escape(void **state)
{
    static const char *const targets[] = {
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/a/..%2f..%2fsecret.txt",
        "/..%5c..",
        "/dir/../../secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/escape",
        "/./../secret.txt",
        "http://x/../secret.txt",
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        response r;
        get(*state, targets[i], "", &r);
        if (r.status != 400 && r.status != 404)
            fail_msg("%s answered %d", targets[i], r.status);
        assert_null(strstr(r.body, SECRET));
        assert_null(strstr(r.body, "root:"));
    }
}

static void test_symlink_inside_is_followed(void **state)
{
    response r;
    get(*state, "/inside", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, HELLO);
}

static void test_nul_byte_is_a_bad_request(void **state)
{
    response r;
    get(*state, "/hello.txt%00.html", "", &r);
    assert_int_equal(r.status, 400);
}

static void test_percent_decoding_reaches_latin1_name(void **state)
{
    response r;
    get(*state, "/caf%E9.txt", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "latin-1 name\n");
}

/* ---- conditional and range requests -------------------------------------- */

static void test_if_modified_since_gives_304(void **state)
{
    response r;
    char header[256];
    get(*state, "/hello.txt", "", &r);
    snprintf(header, sizeof header, "If-Modified-Since: %s\r\n",
             test_http_header(&r, "Last-Modified"));
    get(*state, "/hello.txt", header, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    get(*state, "/hello.txt",
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT\r\n", &r);
    assert_int_equal(r.status, 200);
}

static void test_if_none_match_gives_304(void **state)
{
    response r;
    char header[256];
    get(*state, "/hello.txt", "", &r);
    snprintf(header, sizeof header, "If-None-Match: \"nope\", %s\r\n",
             test_http_header(&r, "ETag"));
    get(*state, "/hello.txt", header, &r);
    assert_int_equal(r.status, 304);
    get(*state, "/hello.txt", "If-None-Match: \"other\"\r\n", &r);
    assert_int_equal(r.status, 200);
}

static void test_range_returns_exact_bytes(void **state)
{
    response r;
    get(*state, "/hello.txt", "Range: bytes=2-5\r\n", &r);
    assert_int_equal(r.status, 206);
    assert_string_equal(test_http_header(&r, "Content-Range"), "bytes 2-5/14");
    assert_string_equal(r.body, "llo,");
    get(*state, "/hello.txt", "Range: bytes=-3\r\n", &r);
    assert_int_equal(r.status, 206);
    assert_string_equal(r.body, "d!\n");
    get(*state, "/hello.txt", "Range: bytes=7-\r\n", &r);
    assert_int_equal(r.status, 206);
    assert_string_equal(r.body, "world!\n");
}

static void test_unsatisfiable_range_is_416(void **state)
{
    response r;
    get(*state, "/hello.txt", "Range: bytes=14-\r\n", &r);
    assert_int_equal(r.status, 416);
    assert_string_equal(test_http_header(&r, "Content-Range"), "bytes */14");
}

/* A file the server may not read is not found, whatever the request asks:
 * nothing about it — validators, size, date — may leak through a 304, a
 * 416 or a HEAD. (The server runs as nobody when the tests run as root,
 * who may read anything.) */
static void test_unreadable_file_reveals_nothing(void **state)
{
    static const char *const headers[] = {
        "",
        "If-None-Match: *\r\n",
        "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
        "Range: bytes=999-\r\n",
        "Range: bytes=0-0\r\n",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        response r;
        get(*state, "/unreadable.txt", headers[i], &r);
        if (r.status != 404)
            fail_msg("\"%.*s\" answered %d", (int)strcspn(headers[i], "\r"),
                     headers[i], r.status);
        assert_null(test_http_header(&r, "ETag"));
        assert_null(test_http_header(&r, "Last-Modified"));
        assert_null(test_http_header(&r, "Content-Range"));
    }
    response r;
    fetch(*state,
          "HEAD /unreadable.txt HTTP/1.1\r\nHost: x\r\n"
          "Connection: close\r\n\r\n",
          &r);
    assert_int_equal(r.status, 404);
    assert_null(test_http_header(&r, "ETag"));
}

/* ---- out of descriptors ------------------------------------------------- */

typedef struct fd_wait {
    pid_t pid;
    int most;
} fd_wait;

static bool fds_at_most(void *arg)
{
    const fd_wait *w = arg;
    int n = test_count_process_fds(w->pid);
    return n >= 0 && n <= w->most;
}

/* Open keep-alive connections one at a time, each asking for target and
 * kept open once answered 200 (with body, when given), until the server,
 * out of descriptors, answers something else: that answer is in *r. Each
 * connection held holds one of the server's descriptors; before the next,
 * wait until the server has closed what the last request opened, so that
 * its descriptors run out one at a time and the first refusal comes from
 * opening a file, never from accepting. */
static void hold_until_refused(const fixture *fx, const char *target,
                               const char *body, response *r)
{
    enum { MOST = 64 };
    conn *held[MOST];
    int n = 0;
    int base = test_count_process_fds(fx->pid);
    assert_true(base > 0);
    char request[256];
    snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
             target);
    for (;;) {
        if (n == MOST)
            fail_msg("%d connections held, and %s still served", n, target);
        conn *c = connect_to(fx);
        test_http_send(c, request);
        test_http_read_response(c, r, false);
        if (r->status != 200) {
            test_http_close(c);
            break;
        }
        if (body != NULL && strcmp(r->body, body) != 0)
            fail_msg("connection %d: %s answered 200 with \"%.60s\"", n + 1,
                     target, r->body);
        held[n++] = c;
        fd_wait w = {fx->pid, base + n};
        assert_true(test_wait_for(fds_at_most, &w, 5.0));
    }
    for (int i = 0; i < n; i++)
        test_http_close(held[i]);
    assert_true(n > 0); /* it did serve, until it ran out */
}

/* A 404 for a file that exists may be cached by a proxy in front. */
static void test_out_of_descriptors_a_file_is_503_not_404(void **state)
{
    response r;
    hold_until_refused(*state, "/hello.txt", HELLO, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(test_http_header(&r, "Retry-After"));
}

/* When index.html cannot be opened for want of a descriptor, the
 * directory's listing must not be shown in its place. */
static void
test_out_of_descriptors_an_index_never_gives_way_to_a_listing(void **state)
{
    response r;
    hold_until_refused(*state, "/dir/", "<h1>index</h1>\n", &r);
    assert_int_equal(r.status, 503);
    assert_null(strstr(r.body, "Directory listing"));
    assert_non_null(test_http_header(&r, "Retry-After"));
}

static bool readable_now(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

/* By default the server takes no more connections than its descriptor
 * limit leaves room for, each with the files it serves (a directory and
 * its index.html at once): the one after them waits in the listen backlog
 * and is served when one of them goes — never refused, never answered
 * 404 or 503, never shed. */
static void test_default_connection_limit_leaves_room_for_files(void **state)
{
    fixture *fx = *state;
    response r;
    get(fx, "/api/status", "", &r);
    const char *field = strstr(r.body, "\"max_connections\":");
    if (field == NULL)
        fail_msg("no max_connections in /api/status: %s", r.body);
    long most = strtol(field + strlen("\"max_connections\":"), NULL, 10);
    /* RLIMIT_NOFILE 64: about 50 would run it out of descriptors. */
    assert_true(most > 0 && most <= 20);

    conn *held[20];
    for (long i = 0; i < most; i++) {
        held[i] = connect_to(fx);
        test_http_send(held[i], "GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n");
        test_http_read_response(held[i], &r, false);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "<h1>index</h1>\n");
    }
    /* Every one of them can still be served a directory's index. */
    for (long i = 0; i < most; i++) {
        test_http_send(held[i], "GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n");
        test_http_read_response(held[i], &r, false);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "<h1>index</h1>\n");
    }
    conn *next = connect_to(fx);
    test_http_send(next, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    test_sleep(0.3); /* time it would take to be (wrongly) answered */
    assert_false(readable_now(next->fd)); /* waiting in the backlog */
    test_http_close(held[0]);
    test_http_read_response(next, &r, false); /* served once a place is free */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, HELLO);
    test_http_close(next);
    for (long i = 1; i < most; i++)
        test_http_close(held[i]);
}

/* ---- methods, keep-alive, API ---------------------------------------------
 */

static void test_head_sends_headers_without_body(void **state)
{
    conn *c = connect_to(*state);
    response r;
    /* HEAD then GET on one connection: had HEAD sent a body, the second
     * response would not start where we look for it. */
    test_http_send(c, "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n");
    test_http_read_response(c, &r, true);
    assert_int_equal(r.status, 200);
    assert_string_equal(test_http_header(&r, "Content-Length"), "14");
    test_http_read_response(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "<h1>index</h1>\n");
    test_http_close(c);
}

static void test_keep_alive_serves_two_requests_on_one_connection(void **state)
{
    conn *c = connect_to(*state);
    response r;
    test_http_send(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    test_http_read_response(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, HELLO);
    test_http_send(c, "GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n");
    test_http_read_response(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "<h1>index</h1>\n");
    test_http_close(c);
}

static unsigned long requests_served(const fixture *fx)
{
    response r;
    get(fx, "/api/status", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(test_http_header(&r, "Content-Type"),
                        "application/json");
    const char *count = strstr(r.body, "\"requests_served\":");
    assert_non_null(count);
    assert_non_null(strstr(r.body, "\"uptime_seconds\":"));
    return strtoul(count + strlen("\"requests_served\":"), NULL, 10);
}

static void test_api_status_reports_mode_and_counts_requests(void **state)
{
    fixture *fx = *state;
    response r;
    char mode[64];
    get(fx, "/api/status", "", &r);
    snprintf(mode, sizeof mode, "\"mode\":\"%s\"", fx->mode);
    assert_non_null(strstr(r.body, mode));
    /* The count is shared by every thread or process of the server. */
    unsigned long before = requests_served(fx);
    get(fx, "/hello.txt", "", &r);
    assert_true(requests_served(fx) >= before + 2);
}

static void test_api_echo_counts_the_posted_body(void **state)
{
    response r;
    fetch(*state,
          "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
          "Connection: close\r\n\r\na\nb\nc",
          &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"length\":5,\"lines\":3}\n");
    fetch(*state,
          "POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
          "Connection: close\r\n\r\n3\r\nab\n\r\n0\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"length\":3,\"lines\":1}\n");
}

/* Route captures, query parameters and form bodies, through the
 * library's request helpers (api.c). */
static void test_api_greet_by_path_query_and_form(void **state)
{
    response r;
    get(*state, "/api/greet/J%C3%BCrgen", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(test_http_header(&r, "Content-Type"),
                        "application/json");
    assert_string_equal(r.body, "{\"greeting\":\"Hello, J\xc3\xbcrgen!\"}\n");
    get(*state, "/api/greet/Ann?greeting=Good+morning", "", &r);
    assert_string_equal(r.body, "{\"greeting\":\"Good morning, Ann!\"}\n");
    get(*state, "/api/greet/%22q%22", "", &r); /* JSON-escaped */
    assert_string_equal(r.body, "{\"greeting\":\"Hello, \\\"q\\\"!\"}\n");
    get(*state, "/api/greet/a%2Fb", "", &r); /* two segments once decoded */
    assert_int_equal(r.status, 404);

    static const char form[] = "greeting=Hi&name=Bo+B";
    char request[256];
    snprintf(request, sizeof request,
             "POST /api/greet HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             sizeof form - 1, form);
    fetch(*state, request, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"greeting\":\"Hi, Bo B!\"}\n");
    fetch(*state,
          "POST /api/greet HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
          "Content-Length: 6\r\nConnection: close\r\n\r\nname=x",
          &r);
    assert_int_equal(r.status, 415);
    get(*state, "/api/greet", "", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(test_http_header(&r, "Allow"), "POST");
}

static void test_api_unknown_route_and_wrong_method(void **state)
{
    response r;
    get(*state, "/api/nope", "", &r);
    assert_int_equal(r.status, 404);
    get(*state, "/api/echo", "", &r);
    assert_int_equal(r.status, 405);
    assert_non_null(test_http_header(&r, "Allow"));
}

static void test_api_prefix_is_decided_on_the_decoded_path(void **state)
{
    /* Every spelling of /api/file.txt is the API's, never the file's. */
    static const char *const targets[] = {
        "/api/file.txt",   "/%61pi/file.txt",         "/./api/file.txt",
        "//api/file.txt",  "/%2e/api/file.txt",       "/%61%70%69/file.txt",
        "/api/./file.txt", "http://x/%61pi/file.txt",
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        response r;
        get(*state, targets[i], "", &r);
        if (strstr(r.body, API_DIR_FILE) != NULL)
            fail_msg("%s served the file (%d)", targets[i], r.status);
        assert_int_equal(r.status, 404);
        assert_string_equal(test_http_header(&r, "Content-Type"),
                            "application/json");
    }
    /* Routes match the decoded path too. */
    response r;
    get(*state, "/%61pi/status", "", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"requests_served\":"));
}

static void test_sigterm_exits_with_status_zero(void **state)
{
    fixture *fx = *state;
    response r;
    get(fx, "/hello.txt", "", &r); /* it has served something */
    assert_int_equal(kill(fx->pid, SIGTERM), 0);
    int status = test_wait_exit(fx->pid, 15.0);
    assert_true(status >= 0);
    fx->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- command-line mistakes: exit status 2 and a message that names them */

static void expect_usage_error(const char *const argv[], const char *message)
{
    char err[4096];
    assert_int_equal(program_run(argv, err, sizeof err), 2);
    if (strstr(err, message) == NULL)
        fail_msg("expected \"%s\" in:\n%s", message, err);
}

static void test_bind_address_mistakes_are_usage_errors(void **state)
{
    (void)state;
    const char *old_form[] = {SOCKSERV_HTTPD_PATH, "-b", "127.1", "0", NULL};
    expect_usage_error(old_form, "'127.1' is not an IP address or host name");
    const char *with_port[] = {SOCKSERV_HTTPD_PATH, "-b", "127.0.0.1:80", "0",
                               NULL};
    expect_usage_error(with_port, "give the host only; the port is the PORT");
    const char *unix_path[] = {SOCKSERV_HTTPD_PATH, "-b", "unix:/tmp/x", "0",
                               NULL};
    expect_usage_error(unix_path, "'unix:/tmp/x' is not a host");
    /* .invalid never resolves (RFC 6761); the answer comes at once, from
     * the resolver or from its absence. */
    const char *unknown[] = {SOCKSERV_HTTPD_PATH, "-b", "nosuchhost.invalid",
                             "0", NULL};
    expect_usage_error(unknown, "host not found: nosuchhost.invalid");
}

static void test_unknown_mode_lists_every_choice(void **state)
{
    (void)state;
    const char *argv[] = {SOCKSERV_HTTPD_PATH, "--mode", "bogus", NULL};
    expect_usage_error(argv, "(choose from thread, sync, fork, pool, "
                             "prefork, coro)");
    const char *negative[] = {SOCKSERV_HTTPD_PATH, "--max-connections", "-1",
                              NULL};
    expect_usage_error(negative,
                       "argument --max-connections: invalid value: '-1'");
}

static void test_unwritable_port_file_is_named(void **state)
{
    (void)state;
    const char *argv[] = {SOCKSERV_HTTPD_PATH,
                          "-q",
                          "-b",
                          "127.0.0.1",
                          "-d",
                          www_dir,
                          "--port-file",
                          "/nonexistent-dir/port",
                          "0",
                          NULL};
    char err[4096];
    assert_int_equal(program_run(argv, err, sizeof err), 1);
    assert_non_null(strstr(err, "cannot write the port file "
                                "/nonexistent-dir/port: No such file"));
}

/* ---- idle and half-sent clients (parking) --------------------------------- */

/* Issue: with --mode pool, 12 browsers' idle keep-alive connections held
 * every pool thread and the 13th client waited for idle_timeout. Sixty
 * idle connections and sixty that sent half a head must not delay a new
 * client: it is answered while all of them are still open. */
static void test_idle_and_half_sent_clients_do_not_delay_a_new_one(void **state)
{
    const fixture *fx = *state;
    enum { EACH = 60 };
    conn *idle[EACH], *partial[EACH];
    for (int i = 0; i < EACH; i++) {
        idle[i] = connect_to(fx);
        test_http_send(idle[i], "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        response r;
        test_http_read_response(idle[i], &r, false);
        assert_int_equal(r.status, 200);
    }
    for (int i = 0; i < EACH; i++) {
        partial[i] = connect_to(fx);
        test_http_send(partial[i], "GET /hello.txt HTTP/1.1\r\nHo");
    }
    response r;
    get(fx, "/hello.txt", "", &r);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, HELLO, strlen(HELLO));
    for (int i = 0; i < EACH; i++) {
        char c;
        assert_true(recv(idle[i]->fd, &c, 1, MSG_DONTWAIT) < 0 &&
                    errno == EAGAIN);
        assert_true(recv(partial[i]->fd, &c, 1, MSG_DONTWAIT) < 0 &&
                    errno == EAGAIN);
        test_http_close(idle[i]);
        test_http_close(partial[i]);
    }
}

#define MODE_TESTS(mode)                                                       \
    cmocka_unit_test_prestate_setup_teardown(                                  \
        test_file_is_served_with_its_type_and_body, start_server, stop_server, \
        mode),                                                                 \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_directory_serves_its_index_html, start_server, stop_server,   \
            mode),                                                             \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_listing_escapes_names_and_encodes_hrefs, start_server,        \
            stop_server, mode),                                                \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_directory_without_slash_redirects_keeping_query,              \
            start_server, stop_server, mode),                                  \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_traversal_attempts_never_escape, start_server, stop_server,   \
            mode),                                                             \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_range_returns_exact_bytes, start_server, stop_server, mode),  \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_head_sends_headers_without_body, start_server, stop_server,   \
            mode),                                                             \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_keep_alive_serves_two_requests_on_one_connection,             \
            start_server, stop_server, mode),                                  \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_api_status_reports_mode_and_counts_requests, start_server,    \
            stop_server, mode),                                                \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_api_echo_counts_the_posted_body, start_server, stop_server,   \
            mode),                                                             \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_api_greet_by_path_query_and_form, start_server, stop_server,  \
            mode),                                                             \
        cmocka_unit_test_prestate_setup_teardown(                              \
            test_sigterm_exits_with_status_zero, start_server, stop_server,    \
            mode)

#define SERVER_TEST(test, spec)                                                \
    cmocka_unit_test_prestate_setup_teardown(test, start_server, stop_server,  \
                                             &spec)
#define THREAD_TEST(test) SERVER_TEST(test, thread_server)

int main(void)
{
    const struct CMUnitTest tests[] = {
        MODE_TESTS(&thread_server),
        MODE_TESTS(&pool_server), /* the JSON API on the thread pool */
        MODE_TESTS(&fork_server),
        MODE_TESTS(&prefork_server),
        SERVER_TEST(test_idle_and_half_sent_clients_do_not_delay_a_new_one,
                    pool_server),
        SERVER_TEST(test_idle_and_half_sent_clients_do_not_delay_a_new_one,
                    prefork_server),
        THREAD_TEST(test_redirect_location_never_starts_with_two_slashes),
        THREAD_TEST(test_file_with_trailing_slash_is_not_found),
        THREAD_TEST(test_symlink_inside_is_followed),
        THREAD_TEST(test_nul_byte_is_a_bad_request),
        THREAD_TEST(test_percent_decoding_reaches_latin1_name),
        THREAD_TEST(test_if_modified_since_gives_304),
        THREAD_TEST(test_if_none_match_gives_304),
        THREAD_TEST(test_unsatisfiable_range_is_416),
        THREAD_TEST(test_api_unknown_route_and_wrong_method),
        THREAD_TEST(test_redirect_location_encodes_backslash),
        THREAD_TEST(test_api_prefix_is_decided_on_the_decoded_path),
        SERVER_TEST(test_unreadable_file_reveals_nothing, unprivileged_server),
        SERVER_TEST(test_out_of_descriptors_a_file_is_503_not_404,
                    small_unlimited_server),
        SERVER_TEST(
            test_out_of_descriptors_an_index_never_gives_way_to_a_listing,
            small_unlimited_server),
        SERVER_TEST(test_default_connection_limit_leaves_room_for_files,
                    small_thread_server),
        cmocka_unit_test(test_bind_address_mistakes_are_usage_errors),
        cmocka_unit_test(test_unknown_mode_lists_every_choice),
        cmocka_unit_test(test_unwritable_port_file_is_named),
    };
    return cmocka_run_group_tests(tests, build_tree, remove_tree);
}
