/*
 * test_httpd_log.c — sockserv-httpd's access log, end to end: the real
 * binary, real sockets, real signals.
 *
 * A burst of keep-alive requests from many client threads, then SIGTERM:
 * the log then holds exactly one well-formed Common Log Format line per
 * request, in every mode (thread, pool, coro, fork, prefork) — to a file
 * (--access-log) and to stderr when it is a pipe, whose reader must see
 * whole lines only. The flush interval is long in those runs, so only
 * the clean stop can have written the lines. Then SIGHUP after a rename
 * (logrotate): the lines before it in the renamed file, the lines after
 * it in a new one, under prefork, where the signal reaches only the
 * supervisor; and --access-log-flush bounding how long a line waits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

#define CLIENTS 8
#define REQUESTS_PER_CLIENT 25

static char dir[64];

static int make_dir(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/sockserv-httpd-log-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/hello.txt", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs("hello\n", f);
    return fclose(f);
}

static int remove_dir(void **state)
{
    (void)state;
    return test_remove_tree(dir);
}

/* ---- the server process ------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int port;
    int err; /* read end of its stderr, or -1 */
} server;

static server srv = {.pid = -1, .err = -1};

/* Kill a server a failed test left behind (cmocka teardown). */
static int kill_server(void **state)
{
    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
    }
    if (srv.err >= 0)
        close(srv.err);
    srv = (server){.pid = -1, .err = -1};
    return 0;
}

/* sockserv-httpd --mode MODE -d DIR --port-file … 0 plus extra (up to a
 * NULL); with pipe_stderr its stderr is a pipe we read, else /dev/null. */
static void start_server(const char *mode, const char *const extra[],
                         bool pipe_stderr)
{
    char port_file[128];
    snprintf(port_file, sizeof port_file, "%s/port", dir);
    unlink(port_file);
    const char *argv[24] = {
        SOCKSERV_HTTPD_PATH, "--mode",  mode,        "-d", dir,
        "--port-file",       port_file, "--workers", "2"};
    int argc = 9;
    for (int i = 0; extra && extra[i]; i++)
        argv[argc++] = extra[i];
    argv[argc++] = "0";
    argv[argc] = NULL;
    int fds[2] = {-1, -1};
    if (pipe_stderr)
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    srv.pid = fork();
    assert_true(srv.pid >= 0);
    if (srv.pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(pipe_stderr ? fds[1] : null, STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pipe_stderr) {
        close(fds[1]);
        srv.err = fds[0];
    }
    double deadline = test_now() + 20;
    FILE *f = NULL;
    while (test_now() < deadline) {
        f = fopen(port_file, "r");
        if (f)
            break;
        test_sleep(0.02);
    }
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &srv.port), 1);
    fclose(f);
}

/* A stop signal (SIGTERM, SIGINT) and a clean exit. */
static void stop_server_with(int signo)
{
    assert_int_equal(kill(srv.pid, signo), 0);
    assert_int_equal(test_wait_exit(srv.pid, 20), 0);
    srv.pid = -1;
}

static void stop_server(void)
{
    stop_server_with(SIGTERM);
}

/* ---- clients ------------------------------------------------------------ */

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* A keep-alive GET of /hello.txt?c=C&r=R and its whole response (a
 * 6-byte body). */
static void get_on(int fd, int c, int r)
{
    char request[128];
    int n =
        snprintf(request, sizeof request,
                 "GET /hello.txt?c=%d&r=%d HTTP/1.1\r\nHost: x\r\n\r\n", c, r);
    assert_int_equal(send(fd, request, (size_t)n, MSG_NOSIGNAL), n);
    char buf[1024];
    size_t have = 0;
    char *end = NULL;
    while (end == NULL || (size_t)(end + 4 - buf) + 6 > have) {
        ssize_t got = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        assert_true(got > 0);
        have += (size_t)got;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    assert_memory_equal(buf, "HTTP/1.1 200", 12);
}

static void *client_main(void *arg)
{
    int c = (int)(intptr_t)arg;
    int fd = connect_server();
    for (int r = 0; r < REQUESTS_PER_CLIENT; r++)
        get_on(fd, c, r);
    close(fd);
    return NULL;
}

static void burst(void)
{
    pthread_t threads[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(
            pthread_create(&threads[i], NULL, client_main, (void *)(intptr_t)i),
            0);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);
}

/* ---- checking the log ---------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0, got;
    char *data = malloc(cap);
    while ((got = fread(data + n, 1, cap - n - 1, f)) > 0)
        if ((n += got) == cap - 1)
            data = realloc(data, cap *= 2);
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

/* Every line well-formed, every request exactly once; the lines that are
 * not access-log lines (none expected) fail too. */
static void expect_one_line_per_request(char *data, size_t len)
{
    regex_t clf;
    assert_int_equal(
        regcomp(&clf,
                "^127\\.0\\.0\\.1 - - \\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4} "
                "[0-9]{2}:[0-9]{2}:[0-9]{2}\\] \"GET "
                "/hello\\.txt\\?c=([0-9]+)&r=([0-9]+) HTTP/1\\.1\" 200 6$",
                REG_EXTENDED),
        0);
    static int seen[CLIENTS][REQUESTS_PER_CLIENT];
    memset(seen, 0, sizeof seen);
    assert_true(len > 0 && data[len - 1] == '\n');
    int lines = 0;
    char *save = NULL;
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
}

static void burst_stop_file(const char *mode, int signo)
{
    char path[128];
    snprintf(path, sizeof path, "%s/access-%s.log", dir, mode);
    unlink(path);
    const char *extra[] = {"--access-log", path, "--access-log-flush", "3600",
                           NULL};
    start_server(mode, extra, false);
    burst();
    stop_server_with(signo);
    size_t len;
    char *data = read_file(path, &len);
    expect_one_line_per_request(data, len);
    free(data);
}

static void test_file_has_one_line_per_request_thread(void **state)
{
    (void)state;
    burst_stop_file("thread", SIGTERM);
}

static void test_file_has_one_line_per_request_pool(void **state)
{
    (void)state;
    burst_stop_file("pool", SIGTERM);
}

static void test_file_has_one_line_per_request_coro(void **state)
{
    (void)state;
    burst_stop_file("coro", SIGTERM);
}

static void test_file_has_one_line_per_request_fork(void **state)
{
    (void)state;
    burst_stop_file("fork", SIGTERM);
}

static void test_file_has_one_line_per_request_prefork(void **state)
{
    (void)state;
    burst_stop_file("prefork", SIGTERM);
}

/* Ctrl-C stops as cleanly. */
static void test_sigint_writes_every_line_coro(void **state)
{
    (void)state;
    burst_stop_file("coro", SIGINT);
}

/* stderr a pipe (the default target): the reader gets whole lines only,
 * although workers write to the one pipe at once. */
static void burst_sigterm_pipe(const char *mode)
{
    const char *extra[] = {"--access-log-flush", "3600", "--access-log-buffer",
                           "16k", NULL};
    start_server(mode, extra, true);
    burst();
    assert_int_equal(kill(srv.pid, SIGTERM), 0);
    size_t cap = 1 << 20, len = 0;
    char *data = malloc(cap);
    double deadline = test_now() + 20;
    for (;;) { /* to EOF: every process holding stderr has ended */
        struct pollfd p = {.fd = srv.err, .events = POLLIN};
        int left = (int)((deadline - test_now()) * 1000);
        assert_true(left > 0);
        if (poll(&p, 1, left) <= 0)
            continue;
        if (cap - len < 65536)
            data = realloc(data, cap *= 2);
        ssize_t n = read(srv.err, data + len, cap - len - 1);
        assert_true(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    data[len] = '\0';
    assert_int_equal(test_wait_exit(srv.pid, 20), 0);
    srv.pid = -1;
    expect_one_line_per_request(data, len);
    free(data);
}

static void test_stderr_pipe_sees_whole_lines_prefork(void **state)
{
    (void)state;
    burst_sigterm_pipe("prefork");
}

static void test_stderr_pipe_sees_whole_lines_pool(void **state)
{
    (void)state;
    burst_sigterm_pipe("pool");
}

/* ---- SIGHUP and the flush interval --------------------------------------- */

static int count_lines(const char *path)
{
    size_t len;
    if (access(path, F_OK) != 0)
        return 0;
    char *data = read_file(path, &len);
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += data[i] == '\n';
    free(data);
    return n;
}

static const char *wanted_path;
static int wanted_lines;

static bool has_wanted_lines(void *arg)
{
    (void)arg;
    return count_lines(wanted_path) >= wanted_lines;
}

static void test_sighup_reopens_after_rename_prefork(void **state)
{
    (void)state;
    char path[128], rotated[160];
    snprintf(path, sizeof path, "%s/rotate.log", dir);
    snprintf(rotated, sizeof rotated, "%s.1", path);
    unlink(path);
    unlink(rotated);
    const char *extra[] = {"--access-log", path, "--access-log-flush", "0.1",
                           NULL};
    start_server("prefork", extra, false);
    int fd = connect_server();
    get_on(fd, 0, 0);
    wanted_path = path;
    wanted_lines = 1;
    assert_true(test_wait_for(has_wanted_lines, NULL, 20));
    assert_int_equal(rename(path, rotated), 0);
    assert_int_equal(kill(srv.pid, SIGHUP), 0); /* the supervisor only */
    /* The worker reopens at its next line, or its next flush; either way
     * the line after the signal is in the new file. */
    test_sleep(0.3);
    get_on(fd, 0, 1);
    close(fd);
    wanted_lines = 1;
    assert_true(test_wait_for(has_wanted_lines, NULL, 20));
    stop_server();
    assert_int_equal(count_lines(rotated), 1);
    assert_int_equal(count_lines(path), 1);
}

static void test_flush_interval_bounds_how_long_a_line_waits(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/interval.log", dir);
    unlink(path);
    const char *extra[] = {"--access-log", path, "--access-log-flush", "0.2",
                           NULL};
    start_server("coro", extra, false);
    int fd = connect_server();
    get_on(fd, 0, 0); /* the connection stays open: only the timer */
    wanted_path = path;
    wanted_lines = 1;
    assert_true(test_wait_for(has_wanted_lines, NULL, 10));
    close(fd);
    stop_server();
    assert_int_equal(count_lines(path), 1);
}

static void test_bad_log_options_are_usage_errors(void **state)
{
    (void)state;
    const char *bad[][3] = {{"--access-log-buffer", "12q", NULL},
                            {"--access-log-buffer", "17m", NULL},
                            {"--access-log-flush", "0", NULL},
                            {"--access-log-flush", "nan", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {SOCKSERV_HTTPD_PATH, bad[i][0], bad[i][1], NULL};
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
        int status = test_wait_exit(pid, 10);
        assert_true(status >= 0 && WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
    }
    /* An unwritable log: a clear error at start, exit status 1. */
    const char *argv[] = {SOCKSERV_HTTPD_PATH, "--access-log",
                          "/nonexistent-dir/x.log", "0", NULL};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = test_wait_exit(pid, 10);
    assert_true(status >= 0 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_file_has_one_line_per_request_thread,
                                  kill_server),
        cmocka_unit_test_teardown(test_file_has_one_line_per_request_pool,
                                  kill_server),
        cmocka_unit_test_teardown(test_file_has_one_line_per_request_coro,
                                  kill_server),
        cmocka_unit_test_teardown(test_file_has_one_line_per_request_fork,
                                  kill_server),
        cmocka_unit_test_teardown(test_file_has_one_line_per_request_prefork,
                                  kill_server),
        cmocka_unit_test_teardown(test_sigint_writes_every_line_coro,
                                  kill_server),
        cmocka_unit_test_teardown(test_stderr_pipe_sees_whole_lines_prefork,
                                  kill_server),
        cmocka_unit_test_teardown(test_stderr_pipe_sees_whole_lines_pool,
                                  kill_server),
        cmocka_unit_test_teardown(test_sighup_reopens_after_rename_prefork,
                                  kill_server),
        cmocka_unit_test_teardown(
            test_flush_interval_bounds_how_long_a_line_waits, kill_server),
        cmocka_unit_test(test_bad_log_options_are_usage_errors),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
