/*
 * test_httpd_cache.c — sockserv-httpd's open-file cache is never stale.
 *
 * Each test starts the real binary (fork + exec, port 0, --port-file) on a
 * scratch tree, caches a file by asking for it, changes the file on disk
 * (write, rename over, delete, chmod, a symlink swapped, the parent
 * directory renamed) and asks again: the second answer must be the new
 * truth, on the same keep-alive connection and on a new one, in thread,
 * coro and prefork modes. /api/status shows that the first request
 * really was cached (hits grow), so a cache that silently does nothing
 * cannot pass. When the tests run as root the server runs as nobody, so
 * that chmod applies to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
#include "process.h"
#include "sanitizers.h"

#ifndef SOCKSERV_HTTPD_PATH
#error "SOCKSERV_HTTPD_PATH must name the sockserv-httpd binary"
#endif

#define SECRET "TOP-SECRET-OUTSIDE"

static char base_dir[64]; /* /tmp/sockserv-cache-XXXXXX */
static char www_dir[128];
static char run_dir[128]; /* the port files, writable by anyone */

/* ---- the tree ------------------------------------------------------------ */

static void path_of(char *out, size_t size, const char *relative)
{
    snprintf(out, size, "%s/%s", base_dir, relative);
}

/* Written to a temporary name and renamed over relative: "replace". */
static void replace_file(const char *relative, const char *content)
{
    char path[512], tmp[520];
    path_of(path, sizeof path, relative);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(tmp, 0644), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* Written in place (truncated, the same inode): "modify". */
static void write_file(const char *relative, const char *content)
{
    char path[512];
    path_of(path, sizeof path, relative);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0644), 0);
}

static void make_dir(const char *relative)
{
    char path[512];
    path_of(path, sizeof path, relative);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int build_tree(void **state)
{
    (void)state;
    strcpy(base_dir, "/tmp/sockserv-cache-XXXXXX");
    if (mkdtemp(base_dir) == NULL || chmod(base_dir, 0755) != 0)
        return -1;
    snprintf(www_dir, sizeof www_dir, "%s/www", base_dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", base_dir);
    if (mkdir(run_dir, 0777) != 0 || chmod(run_dir, 01777) != 0)
        return -1;
    FILE *f;
    char path[512];
    path_of(path, sizeof path, "secret.txt");
    if ((f = fopen(path, "w")) == NULL)
        return -1;
    fputs(SECRET "\n", f);
    fclose(f);
    path_of(path, sizeof path, "www");
    return mkdir(path, 0755);
}

static int remove_tree(void **state)
{
    (void)state;
    return test_remove_tree(base_dir);
}

/* ---- the server ------------------------------------------------------------
 */

typedef struct fixture {
    bool prefork;
    pid_t pid;
    int port;
    char port_file[256];
} fixture;

typedef struct server_spec {
    const char *mode;
    const char *extra[5];
} server_spec;

static server_spec thread_server = {.mode = "thread"};
static server_spec coro_server = {.mode = "coro"};
#if !TEST_UNDER_TSAN
static server_spec prefork_server = {.mode = "prefork"};
#endif
static server_spec bounded_server = {
    .mode = "coro",
    .extra = {"--file-cache-entries", "100", "--file-cache-size", "64K"}};
static server_spec tiny_server = {.mode = "thread",
                                  .extra = {"--file-cache-entries", "4"}};
static server_spec tiny_coro = {.mode = "coro",
                                .extra = {"--file-cache-entries", "4"}};
static server_spec uncached_server = {.mode = "thread",
                                      .extra = {"--no-file-cache"}};

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

static int start_server(void **state)
{
    static int counter;
    const server_spec *spec = *state;
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    *state = fx;
    fx->prefork = strcmp(spec->mode, "prefork") == 0;
    snprintf(fx->port_file, sizeof fx->port_file, "%s/port-%d", run_dir,
             ++counter);
    const char *argv[24] = {"sockserv-httpd",
                            "--mode",
                            spec->mode,
                            "0",
                            "-b",
                            "127.0.0.1",
                            "-d",
                            www_dir,
                            "-q",
                            "--workers",
                            "2",
                            "--threads",
                            "2",
                            "--port-file",
                            fx->port_file};
    size_t argc = 15;
    for (size_t i = 0; i < 5 && spec->extra[i] != NULL; i++)
        argv[argc++] = spec->extra[i];
    fx->pid = fork();
    if (fx->pid < 0)
        return -1;
    if (fx->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        close(null);
        /* As nobody when root, so that chmod applies; the port file goes
         * where nobody may write it. */
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
                               setuid(65534) != 0))
            _exit(126);
        execv(SOCKSERV_HTTPD_PATH, (char *const *)argv);
        _exit(127);
    }
    /* pid 0 after: it died before listening. */
    return test_wait_port_file(fx->port_file, &fx->pid, 10.0, &fx->port, 1);
}

/* ---- a minimal HTTP client (tests/support/http_client.h) ---------------- */

typedef test_http_conn conn;
typedef test_http_response response;

static conn *connect_to(const fixture *fx)
{
    return test_http_connect(fx->port, 20.0);
}

/* GET target on c (keep-alive) and read the answer: every answer of this
 * server has a Content-Length. */
static void get_on(conn *c, const char *target, response *r)
{
    char request[1024];
    snprintf(request, sizeof request,
             "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", target);
    test_http_send(c, request);
    test_http_read_response(c, r, false);
    assert_non_null(test_http_header(r, "Content-Length"));
}

/* GET on a connection of its own. */
static void get(const fixture *fx, const char *target, response *r)
{
    conn *c = connect_to(fx);
    get_on(c, target, r);
    test_http_close(c);
}

/* A number from the "file_cache" object of /api/status. */
static long cache_stat(const fixture *fx, const char *name)
{
    response r;
    get(fx, "/api/status", &r);
    const char *cache = strstr(r.body, "\"file_cache\":{");
    if (cache == NULL)
        fail_msg("no file_cache in /api/status: %s", r.body);
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *field = strstr(cache, key);
    if (field == NULL)
        fail_msg("no %s in /api/status: %s", name, r.body);
    return strtol(field + strlen(key), NULL, 10);
}

/* ---- the staleness cases ------------------------------------------------- */

/* A change, made between two requests. */
typedef struct change {
    const char *name;
    void (*apply)(const char *relative);
    int status;       /* the answer after it */
    const char *body; /* NULL: not checked */
} change;

static char big_new[20001]; /* larger than the in-memory limit: a descriptor */

static void modify(const char *relative)
{
    write_file(relative,
               strstr(relative, "big") ? big_new : "modified, longer");
}
static void modify_same_size(const char *relative)
{
    write_file(relative, strstr(relative, "big") ? big_new : "ORIGINAL");
}
static void replace(const char *relative)
{
    replace_file(relative, strstr(relative, "big") ? big_new : "replaced");
}
static void delete (const char *relative)
{
    char path[512];
    path_of(path, sizeof path, relative);
    assert_int_equal(unlink(path), 0);
}
static void make_unreadable(const char *relative)
{
    char path[512];
    path_of(path, sizeof path, relative);
    assert_int_equal(chmod(path, 0), 0);
}

static const change changes[] = {
    {"modify", modify, 200, NULL},
    {"modify, same size", modify_same_size, 200, NULL},
    {"replace by rename", replace, 200, NULL},
    {"delete", delete, 404, NULL},
    {"chmod 0", make_unreadable, 404, NULL},
};

static char big_old[20001];

/* The content a change leaves (NULL: none). */
static const char *expected(const change *ch, bool big)
{
    if (ch->status != 200)
        return NULL;
    if (big)
        return big_new;
    return ch->apply == modify    ? "modified, longer"
           : ch->apply == replace ? "replaced"
                                  : "ORIGINAL";
}

/* Every change, on a small file (in memory) and a large one (descriptor),
 * asked again on the same connection or on a new one. */
static void check_changes(const fixture *fx, bool keep_alive)
{
    memset(big_old, 'o', sizeof big_old - 1);
    memset(big_new, 'n', sizeof big_new - 1);
    static int round;
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        for (int big = 0; big < 2; big++) {
            const change *ch = &changes[i];
            char relative[64], target[64];
            snprintf(relative, sizeof relative, "www/%s-%d-%zu.txt",
                     big ? "big" : "small", ++round, i);
            snprintf(target, sizeof target, "/%s", relative + 4);
            write_file(relative, big ? big_old : "original");
            conn *c = connect_to(fx);
            response r;
            get_on(c, target, &r); /* cached now */
            assert_int_equal(r.status, 200);
            long hits = cache_stat(fx, "hits");
            get_on(c, target, &r); /* a hit */
            assert_string_equal(r.body, big ? big_old : "original");
            /* (prefork: /api/status may come from another worker) */
            if (!fx->prefork && cache_stat(fx, "hits") <= hits)
                fail_msg("the second request was not a cache hit");
            ch->apply(relative);
            if (!keep_alive) {
                test_http_close(c);
                c = connect_to(fx);
            }
            get_on(c, target, &r);
            if (r.status != ch->status)
                fail_msg("%s (%s): status %d, not %d", ch->name,
                         big ? "large" : "small", r.status, ch->status);
            const char *body = expected(ch, big);
            if (body != NULL && strcmp(r.body, body) != 0)
                fail_msg("%s (%s): stale body \"%.40s\"", ch->name,
                         big ? "large" : "small", r.body);
            test_http_close(c);
        }
    }
}

static void test_changes_on_one_keep_alive_connection(void **state)
{
    check_changes(*state, true);
}

static void test_changes_between_two_connections(void **state)
{
    check_changes(*state, false);
}

/* A cached regular file replaced by a symlink to a file outside the root:
 * the next request is refused (404), never the outside file. */
static void test_file_swapped_for_outside_symlink_is_refused(void **state)
{
    fixture *fx = *state;
    write_file("www/swap.txt", "inside");
    conn *c = connect_to(fx);
    response r;
    get_on(c, "/swap.txt", &r);
    get_on(c, "/swap.txt", &r);
    assert_string_equal(r.body, "inside");
    char link[512], target[512], tmp[520];
    path_of(link, sizeof link, "www/swap.txt");
    path_of(target, sizeof target, "secret.txt");
    snprintf(tmp, sizeof tmp, "%s.lnk", link);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(rename(tmp, link), 0);
    get_on(c, "/swap.txt", &r);
    assert_int_equal(r.status, 404);
    assert_null(strstr(r.body, SECRET));
    test_http_close(c);
}

/* A symlink inside the root, to a file inside, then swapped to point
 * outside (a relative one, as "../secret.txt"): refused the next time. */
static void test_symlink_retargeted_outside_is_refused(void **state)
{
    fixture *fx = *state;
    write_file("www/target.txt", "target");
    char link[512], tmp[520];
    path_of(link, sizeof link, "www/link.txt");
    assert_int_equal(symlink("target.txt", link), 0);
    conn *c = connect_to(fx);
    response r;
    get_on(c, "/link.txt", &r);
    get_on(c, "/link.txt", &r);
    assert_string_equal(r.body, "target");
    snprintf(tmp, sizeof tmp, "%s.lnk", link);
    assert_int_equal(symlink("../secret.txt", tmp), 0);
    assert_int_equal(rename(tmp, link), 0);
    get_on(c, "/link.txt", &r);
    assert_int_equal(r.status, 404);
    assert_null(strstr(r.body, SECRET));
    test_http_close(c);
}

/* The directory of a cached file renamed: the old path is gone (404);
 * another directory moved to its name is what is served. */
static void test_parent_directory_renamed(void **state)
{
    fixture *fx = *state;
    make_dir("www/p");
    make_dir("www/p/q");
    write_file("www/p/q/f.txt", "first");
    conn *c = connect_to(fx);
    response r;
    get_on(c, "/p/q/f.txt", &r);
    get_on(c, "/p/q/f.txt", &r);
    assert_string_equal(r.body, "first");
    char from[512], to[512];
    path_of(from, sizeof from, "www/p");
    path_of(to, sizeof to, "www/p-old");
    assert_int_equal(rename(from, to), 0);
    get_on(c, "/p/q/f.txt", &r);
    assert_int_equal(r.status, 404);
    get_on(c, "/p-old/q/f.txt", &r);
    assert_string_equal(r.body, "first");
    make_dir("www/p");
    make_dir("www/p/q2");
    write_file("www/p/q2/f.txt", "second");
    get_on(c, "/p/q2/f.txt", &r); /* cached under p/q2 */
    path_of(from, sizeof from, "www/p/q2");
    path_of(to, sizeof to, "www/p/q");
    assert_int_equal(rename(from, to), 0);
    get_on(c, "/p/q/f.txt", &r);
    assert_string_equal(r.body, "second");
    get_on(c, "/p/q2/f.txt", &r);
    assert_int_equal(r.status, 404);
    /* A directory the file's path crosses made untraversable. */
    path_of(from, sizeof from, "www/p/q");
    assert_int_equal(chmod(from, 0), 0);
    get_on(c, "/p/q/f.txt", &r);
    assert_int_equal(r.status, 404);
    assert_int_equal(chmod(from, 0755), 0);
    get_on(c, "/p/q/f.txt", &r);
    assert_string_equal(r.body, "second");
    test_http_close(c);
}

/* 10,000 distinct files through a cache of 100 entries and 64 KiB: every
 * answer right, and the cache within its bounds (per shard, rounded up:
 * at most 16 x 7 entries) after. */
static void test_bounds_hold_under_ten_thousand_files(void **state)
{
    fixture *fx = *state;
    make_dir("www/many");
    char relative[64], target[64], content[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(relative, sizeof relative, "www/many/%d.txt", i);
        snprintf(content, sizeof content, "file %d\n", i);
        write_file(relative, content);
    }
    conn *c = connect_to(fx);
    response r;
    for (int i = 0; i < 10000; i++) {
        snprintf(target, sizeof target, "/many/%d.txt", i);
        snprintf(content, sizeof content, "file %d\n", i);
        get_on(c, target, &r);
        if (strcmp(r.body, content) != 0)
            fail_msg("%s: \"%s\"", target, r.body);
    }
    test_http_close(c);
    long entries = cache_stat(fx, "entries");
    long bytes = cache_stat(fx, "bytes");
    assert_true(entries > 0 && entries <= 112);
    assert_true(bytes > 0 && bytes <= 16 * 4096);
    assert_true(cache_stat(fx, "evicted") >= 10000 - 112);
    /* Watches go with the entries: the directories and the files kept. */
    assert_true(cache_stat(fx, "watches") <= 112 + 2);
}

/* A directory's index.html is cached as a file: changed, it is served
 * new; deleted, the listing comes back (and changes with the directory:
 * never cached); replaced by a symlink to a file outside, never served. */
static void test_index_html_and_listing(void **state)
{
    fixture *fx = *state;
    make_dir("www/site");
    write_file("www/site/index.html", "<p>one</p>");
    conn *c = connect_to(fx);
    response r;
    get_on(c, "/site/", &r);
    long hits = cache_stat(fx, "hits");
    get_on(c, "/site/", &r);
    assert_string_equal(r.body, "<p>one</p>");
    assert_true(cache_stat(fx, "hits") > hits);
    write_file("www/site/index.html", "<p>two</p>");
    get_on(c, "/site/", &r);
    assert_string_equal(r.body, "<p>two</p>");
    char path[512];
    path_of(path, sizeof path, "www/site/index.html");
    assert_int_equal(unlink(path), 0);
    get_on(c, "/site/", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Directory listing for /site/"));
    write_file("www/site/new.txt", "x");
    get_on(c, "/site/", &r);
    assert_non_null(strstr(r.body, "new.txt"));
    char target[512];
    path_of(target, sizeof target, "secret.txt");
    assert_int_equal(symlink(target, path), 0);
    get_on(c, "/site/", &r); /* an index outside is no index: the listing */
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Directory listing for /site/"));
    assert_null(strstr(r.body, SECRET));
    test_http_close(c);
}

/* Clients on four threads ask for the same few files while they are
 * rewritten (replaced by rename: each version whole) and evicted (a cache
 * of 4 entries): every answer is one whole version, never a mix or an
 * error. For TSan: shards, references, the queue and eviction, at once. */
#define STORM_FILES 6
#define STORM_CLIENTS 4
#define STORM_REQUESTS 300

typedef struct storm {
    const fixture *fx;
    int dir; /* www/storm-N, one per run */
    atomic_int bad;
    atomic_bool done;
    char first_bad[128];
} storm;

static bool storm_body_ok(const char *body, size_t len)
{
    /* "v<digits>:" and then that same letter repeated: whole or nothing */
    if (len < 3 || body[0] != 'v')
        return false;
    const char *colon = memchr(body, ':', len);
    if (colon == NULL || colon + 1 >= body + len)
        return false;
    char fill = colon[1];
    for (const char *p = colon + 1; p < body + len; p++)
        if (*p != fill)
            return false;
    return true;
}

static void *storm_client(void *arg)
{
    storm *st = arg;
    conn *c = connect_to(st->fx);
    response *r = malloc(sizeof *r);
    for (int i = 0; r && i < STORM_REQUESTS; i++) {
        char target[32];
        snprintf(target, sizeof target, "/storm-%d/%d.txt", st->dir,
                 i % STORM_FILES);
        get_on(c, target, r);
        if (r->status != 200 || !storm_body_ok(r->body, r->body_len)) {
            if (atomic_fetch_add(&st->bad, 1) == 0)
                snprintf(st->first_bad, sizeof st->first_bad, "%s: %d %.60s",
                         target, r->status, r->body);
        }
    }
    free(r);
    test_http_close(c);
    return NULL;
}

static void storm_write(int dir, int file, int version)
{
    char relative[64], content[20001];
    snprintf(relative, sizeof relative, "www/storm-%d/%d.txt", dir, file);
    int n = snprintf(content, sizeof content, "v%d:", version);
    /* Small and large versions in turn: memory and descriptor entries */
    size_t size = version % 2 ? 100 : 20000;
    memset(content + n, 'a' + version % 26, size - (size_t)n);
    content[size] = '\0';
    replace_file(relative, content);
}

static void test_concurrent_clients_while_files_change(void **state)
{
    fixture *fx = *state;
    static int runs;
    storm st = {.fx = fx, .dir = ++runs};
    char dir[32];
    snprintf(dir, sizeof dir, "www/storm-%d", st.dir);
    make_dir(dir);
    for (int f = 0; f < STORM_FILES; f++)
        storm_write(st.dir, f, 0);
    pthread_t threads[STORM_CLIENTS];
    for (int i = 0; i < STORM_CLIENTS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, storm_client, &st),
                         0);
    for (int v = 1; v < 200; v++)
        storm_write(st.dir, v % STORM_FILES, v);
    for (int i = 0; i < STORM_CLIENTS; i++)
        pthread_join(threads[i], NULL);
    if (atomic_load(&st.bad) > 0)
        fail_msg("%d bad answers; the first: %s", atomic_load(&st.bad),
                 st.first_bad);
    assert_true(cache_stat(fx, "hits") > 0);
}

/* Requests that arrive together, right after a change: the first reads
 * the inotify queue; the others arrived before that read began, so they
 * may skip theirs (the kernel's receive stamps, drain_mark.h) — and every
 * answer is still the new content. */
#define BURST 24

/* Whether this machine reads its clocks as drain_mark.c needs to trust
 * them: three readings within 2 µs, most of the time. Where
 * clock_gettime() is a system call (no vDSO clock source) or runs
 * emulated, the server never skips, and rightly. */
static bool clocks_fast(void)
{
    int fast = 0;
    for (int i = 0; i < 1000; i++) {
        struct timespec a, m, b;
        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC, &m);
        clock_gettime(CLOCK_REALTIME, &b);
        int64_t gap = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 +
                      (b.tv_nsec - a.tv_nsec);
        fast += gap <= 2000;
    }
    return fast > 900;
}

static void test_pipelined_requests_skip_the_queue_read(void **state)
{
    fixture *fx = *state;
    write_file("www/burst.txt", "before");
    conn *c = connect_to(fx);
    response r;
    get_on(c, "/burst.txt", &r); /* cached now */
    assert_string_equal(r.body, "before");
    long reads = cache_stat(fx, "queue_reads");
    long skipped = cache_stat(fx, "queue_reads_skipped");
    write_file("www/burst.txt", "after, longer");
    static const char one[] = "GET /burst.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    char burst[BURST * sizeof one] = "";
    for (int i = 0; i < BURST; i++)
        strcat(burst, one);
    test_http_send(c, burst);
    for (int i = 0; i < BURST; i++) {
        test_http_read_response(c, &r, false);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "after, longer");
    }
    test_http_close(c);
    /* Each lookup either read the queue or skipped it. */
    long new_reads = cache_stat(fx, "queue_reads") - reads;
    long new_skipped = cache_stat(fx, "queue_reads_skipped") - skipped;
    assert_int_equal(new_reads + new_skipped, BURST);
    /* One read serves the burst here; half is a margin for a slow run. */
    if (clocks_fast())
        assert_true(new_skipped >= BURST / 2);
}

/* --no-file-cache: no cache, and files still served fresh. */
static void test_no_file_cache(void **state)
{
    fixture *fx = *state;
    response r;
    get(fx, "/api/status", &r);
    assert_non_null(strstr(r.body, "\"file_cache\":null"));
    write_file("www/plain.txt", "one");
    get(fx, "/plain.txt", &r);
    assert_string_equal(r.body, "one");
}

#define SERVER_TEST(test, spec)                                                \
    cmocka_unit_test_prestate_setup_teardown(test, start_server, stop_server,  \
                                             &spec)

int main(void)
{
    const struct CMUnitTest tests[] = {
        SERVER_TEST(test_changes_on_one_keep_alive_connection, thread_server),
        SERVER_TEST(test_changes_on_one_keep_alive_connection, coro_server),
        SERVER_TEST(test_changes_between_two_connections, thread_server),
        SERVER_TEST(test_changes_between_two_connections, coro_server),
#if !TEST_UNDER_TSAN /* prefork workers run threads: die_after_fork */
        SERVER_TEST(test_changes_between_two_connections, prefork_server),
#endif
        SERVER_TEST(test_file_swapped_for_outside_symlink_is_refused,
                    coro_server),
        SERVER_TEST(test_symlink_retargeted_outside_is_refused, thread_server),
        SERVER_TEST(test_parent_directory_renamed, coro_server),
        SERVER_TEST(test_index_html_and_listing, thread_server),
        SERVER_TEST(test_bounds_hold_under_ten_thousand_files, bounded_server),
        SERVER_TEST(test_concurrent_clients_while_files_change, tiny_server),
        SERVER_TEST(test_concurrent_clients_while_files_change, tiny_coro),
        SERVER_TEST(test_pipelined_requests_skip_the_queue_read, thread_server),
        SERVER_TEST(test_pipelined_requests_skip_the_queue_read, coro_server),
        SERVER_TEST(test_no_file_cache, uncached_server),
    };
    return cmocka_run_group_tests(tests, build_tree, remove_tree);
}
