/*
 * test_access_log.c — the buffered access log (sockserv/access_log.h),
 * alone and behind the HTTP handler over real sockets.
 *
 * The central test: many client threads send keep-alive requests with
 * distinct targets to an HTTP server under each strategy (thread, pool,
 * coro, fork, prefork), the server stops cleanly, and the file then holds
 * exactly one well-formed Common Log Format line per request — none lost
 * in a thread's, a child's or a worker's buffer, none written twice by a
 * forked child, none torn. The flush interval is set long there, so only
 * the clean stop can have written them. Then: the interval itself, reopen
 * after a rename, a pipe reader under concurrent writers (whole lines in
 * pieces of at most PIPE_BUF), and bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sockserv/access_log.h>
#include <sockserv/http.h>

#include "support.h"

#define CLIENTS 8
#define REQUESTS_PER_CLIENT 25

static char dir[64];

static int make_dir(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/sockserv-access-log-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    return test_remove_tree(dir);
}

static void log_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

/* The whole file, NUL-terminated (free it). */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        *len = 0;
        return strdup("");
    }
    size_t cap = 4096, n = 0;
    char *data = malloc(cap);
    size_t got;
    while ((got = fread(data + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            data = realloc(data, cap *= 2);
    }
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

static int count_lines(const char *path)
{
    size_t len;
    char *data = read_all(path, &len);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    free(data);
    return lines;
}

/* ---- an HTTP server that logs into an ss_access_log ------------------- */

static int do_GET(ss_http *h)
{
    static const char body[] = "ok\n";
    ss_http_send_response(h, 200, NULL);
    ss_http_send_header(h, "Content-Length", "3");
    ss_http_end_headers(h);
    return ss_http_write(h, body, 3) < 0 ? -1 : 0;
}

static const ss_http_method methods[] = {{"GET", do_GET}, {NULL, NULL}};

typedef struct http_server {
    ss_http_config http;
    ss_handler_class handler;
    test_options options;
    test_server server;
} http_server;

static void http_start(http_server *s, const ss_strategy *strategy,
                       ss_access_log *log)
{
    memset(s, 0, sizeof *s);
    ss_http_config_init(&s->http);
    s->http.methods = methods;
    s->http.access_log = log;
    s->handler = ss_http_handler;
    s->handler.class_data = &s->http;
    ss_config cfg;
    ss_config_init(&cfg);
    s->options.prefork.workers = 2;
    s->options.prefork.worker_strategy = &ss_threading;
    s->options.coro.threads = 2;
    s->options.pool.pool_size = CLIENTS;
    test_use_options(&cfg, strategy, &s->options);
    assert_int_equal(test_server_start_with(&s->server, &ss_tcp, strategy,
                                            "127.0.0.1:0", &s->handler, &cfg,
                                            0.05),
                     0);
}

static void http_stop(http_server *s)
{
    assert_true(test_server_stop_within(&s->server, 20));
    ss_server_free(s->server.srv);
}

/* One keep-alive GET of target on fd, and its whole response. */
static void get_on(int fd, const char *target)
{
    char request[256];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    test_send_all(fd, request, (size_t)n);
    char head[512];
    size_t have = 0;
    while (have < 4 || memcmp(head + have - 4, "\r\n\r\n", 4) != 0) {
        assert_true(have < sizeof head);
        test_recv_exact(fd, head + have, 1);
        have++;
    }
    char body[3];
    test_recv_exact(fd, body, 3);
    assert_memory_equal(body, "ok\n", 3);
}

typedef struct burst_state {
    pthread_barrier_t start;
    atomic_int running;
} burst_state;

typedef struct client {
    ss_server *srv;
    int id;
    burst_state *burst;
} client;

/* Threads start together, after all of them exist, and end only after
 * every client is done, when no connection (so, under ss_forking, no
 * fork) is being made any more. Between the two they allocate no
 * memory: a child forked while another thread holds an allocator lock
 * would hang in its first malloc under allocators that do not guard
 * fork() (clang 14's ASan; seen once in CI). */
static void *client_main(void *arg)
{
    client *c = arg;
    pthread_barrier_wait(&c->burst->start);
    int fd = test_connect(c->srv);
    for (int i = 0; i < REQUESTS_PER_CLIENT; i++) {
        char target[64];
        snprintf(target, sizeof target, "/c%d/r%d", c->id, i);
        get_on(fd, target);
    }
    close(fd);
    atomic_fetch_sub(&c->burst->running, 1);
    while (atomic_load(&c->burst->running) > 0)
        test_sleep(0.005);
    return NULL;
}

static void burst(ss_server *srv)
{
    pthread_t threads[CLIENTS];
    client clients[CLIENTS];
    burst_state b;
    assert_int_equal(pthread_barrier_init(&b.start, NULL, CLIENTS), 0);
    atomic_init(&b.running, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = (client){srv, i, &b};
        assert_int_equal(
            pthread_create(&threads[i], NULL, client_main, &clients[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&b.start);
}

/* Every line a well-formed CLF line, and every request's target exactly
 * once. */
static void expect_one_clf_line_per_request(const char *path)
{
    size_t len;
    char *data = read_all(path, &len);
    regex_t clf;
    assert_int_equal(
        regcomp(&clf,
                "^127\\.0\\.0\\.1 - - \\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4} "
                "[0-9]{2}:[0-9]{2}:[0-9]{2}\\] \"GET /c([0-9]+)/r([0-9]+) "
                "HTTP/1\\.1\" 200 3$",
                REG_EXTENDED),
        0);
    int seen[CLIENTS][REQUESTS_PER_CLIENT] = {{0}};
    int lines = 0;
    char *save = NULL;
    assert_true(len > 0 && data[len - 1] == '\n'); /* no torn last line */
    for (char *line = strtok_r(data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        regmatch_t m[3];
        if (regexec(&clf, line, 3, m, 0) != 0)
            fail_msg("not a CLF line: %s", line);
        int c = atoi(line + m[1].rm_so), r = atoi(line + m[2].rm_so);
        assert_true(c < CLIENTS && r < REQUESTS_PER_CLIENT);
        seen[c][r]++;
        lines++;
    }
    assert_int_equal(lines, CLIENTS * REQUESTS_PER_CLIENT);
    for (int c = 0; c < CLIENTS; c++)
        for (int r = 0; r < REQUESTS_PER_CLIENT; r++)
            assert_int_equal(seen[c][r], 1);
    regfree(&clf);
    free(data);
}

/* The burst, the clean stop, and the count — before close for the
 * strategies whose processes are gone by then (their lines must already
 * be out), after it for all. */
static void burst_then_clean_stop(const ss_strategy *strategy,
                                  bool out_before_close)
{
    char path[128];
    log_path(path, sizeof path, strategy->name);
    unlink(path);
    ss_access_log *log;
    /* A flush interval nothing in the test waits for: only the stop
     * writes. */
    ss_access_log_options opt = {.buffer_size = 1 << 20,
                                 .flush_interval = 3600};
    assert_int_equal(ss_access_log_open(&log, path, &opt), 0);
    http_server s;
    http_start(&s, strategy, log);
    burst(s.server.srv);
    http_stop(&s);
    if (out_before_close)
        expect_one_clf_line_per_request(path);
    assert_int_equal(ss_access_log_close(log), 0);
    expect_one_clf_line_per_request(path);
}

static void test_one_line_per_request_under_threading(void **state)
{
    (void)state;
    burst_then_clean_stop(&ss_threading, false);
}

static void test_one_line_per_request_under_thread_pool(void **state)
{
    (void)state;
    burst_then_clean_stop(&ss_thread_pool, false);
}

static void test_one_line_per_request_under_coroutines(void **state)
{
    (void)state;
    burst_then_clean_stop(&ss_coroutines, false);
}

static void test_one_line_per_request_under_forking(void **state)
{
    (void)state;
    if (TEST_UNDER_TSAN)
        skip(); /* children that start threads after fork() */
    burst_then_clean_stop(&ss_forking, true);
}

static void test_one_line_per_request_under_prefork(void **state)
{
    (void)state;
    if (TEST_UNDER_TSAN)
        skip();
    burst_then_clean_stop(&ss_prefork, true);
}

/* ---- buffering and the flush interval --------------------------------- */

static bool has_lines(void *arg)
{
    return count_lines(arg) > 0;
}

static void test_lines_wait_in_the_buffer_until_flushed(void **state)
{
    (void)state;
    char path[128];
    log_path(path, sizeof path, "buffered");
    ss_access_log *log;
    ss_access_log_options opt = {.flush_interval = 3600};
    assert_int_equal(ss_access_log_open(&log, path, &opt), 0);
    assert_int_equal(ss_access_log_write(log, "one", 3), 0);
    test_sleep(0.2);
    assert_int_equal(count_lines(path), 0); /* still in this thread's */
    assert_int_equal(ss_access_log_flush(log), 0);
    assert_int_equal(count_lines(path), 1);
    assert_int_equal(ss_access_log_close(log), 0);
}

static void test_flush_interval_bounds_the_wait(void **state)
{
    (void)state;
    char path[128];
    log_path(path, sizeof path, "interval");
    ss_access_log *log;
    ss_access_log_options opt = {.flush_interval = 0.2};
    assert_int_equal(ss_access_log_open(&log, path, &opt), 0);
    http_server s;
    http_start(&s, &ss_threading, log);
    int fd = test_connect(s.server.srv);
    double sent = test_now();
    get_on(fd, "/c0/r0");
    /* Nobody flushes but the log's thread; generous for a loaded box. */
    assert_true(test_wait_for(has_lines, path, 10));
    double waited = test_now() - sent;
    close(fd);
    http_stop(&s);
    assert_int_equal(ss_access_log_close(log), 0);
    assert_int_equal(count_lines(path), 1);
    assert_true(waited < 10);
}

static void test_a_line_longer_than_the_buffer_is_written_whole(void **state)
{
    (void)state;
    char path[128];
    log_path(path, sizeof path, "long");
    ss_access_log *log;
    ss_access_log_options opt = {.buffer_size = 16, .flush_interval = 3600};
    assert_int_equal(ss_access_log_open(&log, path, &opt), 0);
    char line[100];
    memset(line, 'x', sizeof line);
    assert_int_equal(ss_access_log_write(log, "short", 5), 0);
    assert_int_equal(ss_access_log_write(log, line, sizeof line), 0);
    /* The short one went first, then the long one at once. */
    assert_int_equal(count_lines(path), 2);
    assert_int_equal(ss_access_log_close(log), 0);
    size_t len;
    char *data = read_all(path, &len);
    assert_int_equal(len, 6 + sizeof line + 1);
    assert_memory_equal(data, "short\n", 6);
    free(data);
}

static void test_unbuffered_writes_each_line_at_once(void **state)
{
    (void)state;
    char path[128];
    log_path(path, sizeof path, "unbuffered");
    ss_access_log *log;
    ss_access_log_options opt = {.unbuffered = true};
    assert_int_equal(ss_access_log_open(&log, path, &opt), 0);
    assert_int_equal(ss_access_log_write(log, "a", 1), 0);
    assert_int_equal(count_lines(path), 1);
    assert_int_equal(ss_access_log_close(log), 0);
}

/* ---- reopen (logrotate) ------------------------------------------------ */

static void test_reopen_after_rename_starts_a_new_file(void **state)
{
    (void)state;
    char path[128], rotated[160];
    log_path(path, sizeof path, "rotate");
    snprintf(rotated, sizeof rotated, "%s.1", path);
    ss_access_log *log;
    assert_int_equal(ss_access_log_open(&log, path, NULL), 0);
    /* Still buffered at the rename: it belongs to the rotated file. */
    assert_int_equal(ss_access_log_write(log, "before", 6), 0);
    assert_int_equal(rename(path, rotated), 0);
    ss_access_log_reopen(log); /* what a SIGHUP handler calls */
    assert_int_equal(ss_access_log_write(log, "after", 5), 0);
    assert_int_equal(ss_access_log_close(log), 0);
    size_t len;
    char *old = read_all(rotated, &len);
    assert_string_equal(old, "before\n");
    free(old);
    char *now = read_all(path, &len);
    assert_string_equal(now, "after\n");
    free(now);
}

/* ---- a pipe: whole lines, PIPE_BUF at a time ---------------------------- */

#define PIPE_WRITERS 4
#define PIPE_LINES 300

typedef struct pipe_writer {
    ss_access_log *log;
    int id;
} pipe_writer;

/* Lines of 50 to about 1,500 bytes: "<id> <n> <len> xxx…x." */
static void *pipe_writer_main(void *arg)
{
    pipe_writer *w = arg;
    char line[2048];
    for (int i = 0; i < PIPE_LINES; i++) {
        int len = 50 + (i * 37 + w->id * 101) % 1450;
        int head = snprintf(line, sizeof line, "%d %d %d ", w->id, i, len);
        memset(line + head, 'x', (size_t)(len - head - 1));
        line[len - 1] = '.';
        assert_int_equal(ss_access_log_write(w->log, line, (size_t)len), 0);
    }
    return NULL;
}

static void test_pipe_reader_sees_whole_lines(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    /* Two logs on one pipe stand for two processes writing to it. */
    ss_access_log *logs[2];
    ss_access_log_options opt = {.buffer_size = 3 * PIPE_BUF + 100,
                                 .flush_interval = 0.01};
    assert_int_equal(ss_access_log_open_fd(&logs[0], fds[1], &opt), 0);
    assert_int_equal(ss_access_log_open_fd(&logs[1], fds[1], &opt), 0);
    pthread_t threads[PIPE_WRITERS];
    pipe_writer writers[PIPE_WRITERS];
    for (int i = 0; i < PIPE_WRITERS; i++) {
        writers[i] = (pipe_writer){logs[i % 2], i};
        assert_int_equal(
            pthread_create(&threads[i], NULL, pipe_writer_main, &writers[i]),
            0);
    }
    /* Read while they write (a pipe holds only 64 KiB). */
    size_t cap = 1 << 20, len = 0;
    char *data = malloc(cap);
    int expected = PIPE_WRITERS * PIPE_LINES, lines = 0;
    double deadline = test_now() + 30;
    while (lines < expected && test_now() < deadline) {
        if (cap - len < 65536)
            data = realloc(data, cap *= 2);
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fds[0], data + len, cap - len);
        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            lines += data[len + (size_t)i] == '\n';
        len += (size_t)n;
    }
    for (int i = 0; i < PIPE_WRITERS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(ss_access_log_close(logs[0]), 0);
    assert_int_equal(ss_access_log_close(logs[1]), 0);
    close(fds[1]);
    close(fds[0]);
    assert_int_equal(lines, expected);
    int next[PIPE_WRITERS] = {0};
    char *save = NULL;
    data[len] = '\0';
    for (char *line = strtok_r(data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int id, i, want, head;
        if (sscanf(line, "%d %d %d %n", &id, &i, &want, &head) != 3)
            fail_msg("torn line: %.60s", line);
        assert_true(id >= 0 && id < PIPE_WRITERS);
        assert_int_equal(i, next[id]++); /* one writer's lines in order */
        assert_int_equal((int)strlen(line), want);
        for (int k = head; k < want - 1; k++)
            if (line[k] != 'x')
                fail_msg("line %d of writer %d mixed at %d", i, id, k);
        assert_int_equal(line[want - 1], '.');
    }
    for (int id = 0; id < PIPE_WRITERS; id++)
        assert_int_equal(next[id], PIPE_LINES);
    free(data);
}

/* ---- bad arguments ------------------------------------------------------ */

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    ss_access_log *log;
    char path[128];
    log_path(path, sizeof path, "bad");
    assert_int_equal(ss_access_log_open(NULL, path, NULL), -EINVAL);
    assert_int_equal(ss_access_log_open(&log, NULL, NULL), -EINVAL);
    assert_int_equal(ss_access_log_open(&log, "", NULL), -EINVAL);
    ss_access_log_options negative = {.flush_interval = -1};
    assert_int_equal(ss_access_log_open(&log, path, &negative), -EINVAL);
    ss_access_log_options nan_interval = {.flush_interval = NAN};
    assert_int_equal(ss_access_log_open(&log, path, &nan_interval), -EINVAL);
    ss_access_log_options huge = {.buffer_size = (size_t)1 << 40};
    assert_int_equal(ss_access_log_open(&log, path, &huge), -EINVAL);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    assert_int_equal(ss_access_log_open(&log, missing, NULL), -ENOENT);
    assert_int_equal(ss_access_log_open_fd(&log, -1, NULL), -EBADF);
    assert_int_equal(ss_access_log_open_fd(&log, 1000000, NULL), -EBADF);
    assert_int_equal(ss_access_log_write(NULL, "x", 1), -EINVAL);
    assert_int_equal(ss_access_log_flush(NULL), -EINVAL);
    ss_access_log_reopen(NULL);
    assert_int_equal(ss_access_log_close(NULL), 0);
    /* Nothing was created by the refusals. */
    assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_per_request_under_threading),
        cmocka_unit_test(test_one_line_per_request_under_thread_pool),
        cmocka_unit_test(test_one_line_per_request_under_coroutines),
        cmocka_unit_test(test_one_line_per_request_under_forking),
        cmocka_unit_test(test_one_line_per_request_under_prefork),
        cmocka_unit_test(test_lines_wait_in_the_buffer_until_flushed),
        cmocka_unit_test(test_flush_interval_bounds_the_wait),
        cmocka_unit_test(test_a_line_longer_than_the_buffer_is_written_whole),
        cmocka_unit_test(test_unbuffered_writes_each_line_at_once),
        cmocka_unit_test(test_reopen_after_rename_starts_a_new_file),
        cmocka_unit_test(test_pipe_reader_sees_whole_lines),
        cmocka_unit_test(test_bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
