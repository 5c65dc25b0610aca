/*
 * test_httpd_listing.c — sockserv-httpd's directory listing and error
 * pages, from the real binary over a real socket: each entry's size
 * (human-readable, "-" for a directory) and modification time (UTC),
 * hostile names escaped (<, ", &, a newline) with their hrefs
 * percent-encoded, the order (case-insensitive, directories among the
 * files), the stylesheet on listing and error pages, and a directory of
 * 10,000 entries answered well within a generous bound.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these three first */
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "process.h"

#ifndef SOCKSERV_HTTPD_PATH
#error "SOCKSERV_HTTPD_PATH must name the sockserv-httpd binary"
#endif

#define BIG_ENTRIES 10000

static char dir[64];
static pid_t server_pid = -1;
static int server_port;

/* 2021-02-03 04:05:06 UTC */
#define KNOWN_MTIME 1612325106

static void make_file(const char *name, off_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0); /* sparse: no disk used */
    struct timespec times[2] = {{KNOWN_MTIME, 0}, {KNOWN_MTIME, 0}};
    assert_int_equal(futimens(fd, times), 0);
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/sockserv-listing-XXXXXX");
    if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0)
        return -1;
    make_file("empty.txt", 0);
    make_file("kilo.bin", 1536);       /* 1.5K */
    make_file("Mega.bin", 3 << 20);    /* 3.0M */
    make_file("small.txt", 1000);      /* 1000 */
    make_file("giga.bin", 25LL << 30); /* 25G, sparse */
    make_file("<b>&\"q\".txt", 1);
    make_file("new\nline.txt", 2);
    char path[512];
    snprintf(path, sizeof path, "%s/Dir", dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/link", dir);
    if (symlink("small.txt", path) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/big", dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    for (int i = 0; i < BIG_ENTRIES; i++) {
        snprintf(path, sizeof path, "%s/big/f%05d", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
        close(fd);
    }

    char port_file[128];
    snprintf(port_file, sizeof port_file, "%s.port", dir);
    unlink(port_file);
    server_pid = fork();
    if (server_pid < 0)
        return -1;
    if (server_pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execl(SOCKSERV_HTTPD_PATH, SOCKSERV_HTTPD_PATH, "-q", "-b", "127.0.0.1",
              "-d", dir, "--port-file", port_file, "0", (char *)NULL);
        _exit(127);
    }
    double deadline = test_now() + 20;
    while (test_now() < deadline) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", &server_port);
            fclose(f);
            unlink(port_file);
            return ok == 1 ? 0 : -1;
        }
        test_sleep(0.02);
    }
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    return test_remove_tree(dir);
}

/* GET target on a new connection (Connection: close); the whole response,
 * NUL-terminated (free it), and its status. */
static char *get(const char *target, int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)server_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     target);
    assert_int_equal(send(fd, request, (size_t)n, MSG_NOSIGNAL), n);
    size_t cap = 1 << 16, len = 0;
    char *data = malloc(cap);
    for (;;) {
        if (cap - len < 4096)
            data = realloc(data, cap *= 2);
        ssize_t got = recv(fd, data + len, cap - len - 1, 0);
        assert_true(got >= 0); /* not a timeout */
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    data[len] = '\0';
    assert_int_equal(sscanf(data, "HTTP/1.1 %d", status), 1);
    return data;
}

static void test_listing_shows_size_and_mtime(void **state)
{
    (void)state;
    int status;
    char *page = get("/", &status);
    assert_int_equal(status, 200);
    const char *rows[] = {
        ("<a href=\"empty.txt\">empty.txt</a></td><td class=\"size\">0</td>"
         "<td class=\"date\">2021-02-03 04:05</td>"),
        "<a href=\"kilo.bin\">kilo.bin</a></td><td class=\"size\">1.5K</td>",
        "<a href=\"Mega.bin\">Mega.bin</a></td><td class=\"size\">3.0M</td>",
        "<a href=\"small.txt\">small.txt</a></td><td class=\"size\">1000</td>",
        "<a href=\"giga.bin\">giga.bin</a></td><td class=\"size\">25G</td>",
        /* a directory: no size; Python's slash after it */
        "<a href=\"Dir/\">Dir/</a></td><td class=\"size\">-</td>",
        /* a link: its target's size, Python's "@" */
        "<a href=\"link\">link@</a></td><td class=\"size\">1000</td>",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (strstr(page, rows[i]) == NULL)
            fail_msg("no %s in the listing:\n%s", rows[i], page);
    free(page);
}

static void test_listing_escapes_hostile_names(void **state)
{
    (void)state;
    int status;
    char *page = get("/", &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(page, "<a href=\"%3Cb%3E%26%22q%22.txt\">"
                                 "&lt;b&gt;&amp;&quot;q&quot;.txt</a>"));
    assert_non_null(strstr(page, "<a href=\"new%0Aline.txt\">"));
    assert_null(strstr(page, "<b>")); /* never raw markup from a name */
    assert_null(strstr(page, "\"q\""));
    free(page);
}

/* Python's order: names compared case-insensitively, directories among
 * the files. */
static void test_listing_is_sorted_case_insensitively(void **state)
{
    (void)state;
    int status;
    char *page = get("/", &status);
    assert_int_equal(status, 200);
    const char *order[] = {"href=\"%3Cb%3E",          "href=\"big/\"",
                           "href=\"Dir/\"",           "href=\"empty.txt\"",
                           "href=\"giga.bin\"",       "href=\"kilo.bin\"",
                           "href=\"link\"",           "href=\"Mega.bin\"",
                           "href=\"new%0Aline.txt\"", "href=\"small.txt\""};
    const char *at = page;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *next = strstr(at, order[i]);
        if (next == NULL)
            fail_msg("%s missing or out of order", order[i]);
        at = next;
    }
    free(page);
}

static void test_pages_are_readable_on_a_phone(void **state)
{
    (void)state;
    int status;
    char *page = get("/", &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(page, "<meta name=\"viewport\""));
    assert_non_null(strstr(page, "<style>"));
    assert_non_null(strstr(page, "Directory listing for /"));
    free(page);
    /* The error pages carry the same head. */
    char *error = get("/no-such-file", &status);
    assert_int_equal(status, 404);
    assert_non_null(strstr(error, "<meta name=\"viewport\""));
    assert_non_null(strstr(error, "<style>"));
    assert_non_null(strstr(error, "<p>Error code: 404</p>"));
    free(error);
}

static void test_ten_thousand_entries_are_listed_quickly(void **state)
{
    (void)state;
    int status;
    double start = test_now();
    char *page = get("/big/", &status);
    double took = test_now() - start;
    assert_int_equal(status, 200);
    int rows = 0;
    for (const char *p = page; (p = strstr(p, "<tr><td>")) != NULL; p++)
        rows++;
    assert_int_equal(rows, BIG_ENTRIES);
    assert_non_null(strstr(page, "<a href=\"f00000\">f00000</a>"));
    assert_non_null(strstr(page, "<a href=\"f09999\">f09999</a>"));
    free(page);
    /* About 20 ms here; the bound is for a loaded, sanitized build. */
    if (took > 10)
        fail_msg("10,000 entries took %.1f s", took);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listing_shows_size_and_mtime),
        cmocka_unit_test(test_listing_escapes_hostile_names),
        cmocka_unit_test(test_listing_is_sorted_case_insensitively),
        cmocka_unit_test(test_pages_are_readable_on_a_phone),
        cmocka_unit_test(test_ten_thousand_entries_are_listed_quickly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
