/*
 * test_lab.c — the lab's programs (examples/lab, docs/lab), run for real.
 *
 * Each test starts one built program (fork + exec) on port 0, reads the
 * port from its first line ("listening on 127.0.0.1:PORT"), talks to it
 * over loopback, and ends it with SIGTERM, expecting exit status 0. What
 * the docs tell the student to observe is what is checked: step 1 serves
 * one client after the other; steps 2 and 3 serve two at once, on threads
 * or in child processes as the strategy says; steps 4 and 5 answer HTTP;
 * step 4 spends a thread per client and step 5 does not. The sources are
 * checked too: step3_forking.c and step5_coroutines.c must stay one word
 * away from the files they are diffed against.
 *
 * A cmocka teardown kills a server left running by a failed assertion, by
 * its PID.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#include "program_run.h"

#if !defined(LAB_BIN_DIR) || !defined(LAB_SOURCE_DIR)
#error "LAB_BIN_DIR and LAB_SOURCE_DIR must name the lab's build and source"
#endif

#define STEP1 LAB_BIN_DIR "/step1_loop_server"
#define STEP2 LAB_BIN_DIR "/step2_thread_per_client"
#define STEP3_THREADING LAB_BIN_DIR "/step3_threading"
#define STEP3_FORKING LAB_BIN_DIR "/step3_forking"
#define STEP4 LAB_BIN_DIR "/step4_httpserver_v2"
#define STEP5 LAB_BIN_DIR "/step5_coroutines"

#define HELLO "Hello, lab!\n" /* 12 bytes */
#define SECRET "SECRET-OUTSIDE-THE-DIRECTORY"

/* ---- the scratch tree steps 4 and 5 serve ------------------------------ */

static char base_dir[64]; /* /tmp/sockserv-lab-XXXXXX */
static char www_dir[128]; /* base_dir/www */

static int write_file(const char *relative, const char *content)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", base_dir, relative);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(content, f);
    return fclose(f);
}

static int build_tree(void **state)
{
    (void)state;
    strcpy(base_dir, "/tmp/sockserv-lab-XXXXXX");
    if (mkdtemp(base_dir) == NULL)
        return -1;
    snprintf(www_dir, sizeof www_dir, "%s/www", base_dir);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/sub", www_dir);
    if (mkdir(www_dir, 0755) != 0 || mkdir(sub, 0755) != 0)
        return -1;
    return write_file("secret.txt", SECRET "\n") |
           write_file("www/index.html", "<h1>lab index</h1>\n") |
           write_file("www/hello.txt", HELLO) |
           write_file("www/.hidden", SECRET "\n") |
           write_file("www/sub/index.html", "<p>sub index</p>\n");
}

static int remove_tree(void **state)
{
    (void)state;
    return test_remove_tree(base_dir);
}

/* ---- the server process ------------------------------------------------ */

typedef struct lab_server {
    pid_t pid; /* 0 once reaped */
    int port;
    int out; /* read end of the program's stdout */
} lab_server;

static lab_server server; /* one per test; the teardown cleans it up */

/* Run program [args…] and read "listening on 127.0.0.1:PORT" from it. */
static void start(const char *program, const char *directory)
{
    int pipe_fds[2];
    assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
    server.out = pipe_fds[0];
    server.pid = fork();
    assert_true(server.pid >= 0);
    if (server.pid == 0) {
        dup2(pipe_fds[1], STDOUT_FILENO);
        execl(program, program, "0", directory, (char *)NULL);
        _exit(127);
    }
    close(pipe_fds[1]);

    /* The first line, a byte at a time so nothing after it is consumed. */
    char line[128];
    size_t len = 0;
    double deadline = test_now() + 10.0;
    while (len == 0 || line[len - 1] != '\n') {
        struct pollfd p = {.fd = server.out, .events = POLLIN};
        int left_ms = (int)((deadline - test_now()) * 1000);
        assert_true(left_ms > 0);
        if (poll(&p, 1, left_ms) <= 0)
            continue;
        assert_int_equal(read(server.out, line + len, 1), 1);
        assert_true(++len < sizeof line);
    }
    line[len] = '\0';
    assert_int_equal(sscanf(line, "listening on 127.0.0.1:%d", &server.port),
                     1);
    assert_true(server.port > 0);
}

/* SIGTERM, and the program must exit by itself with status 0. */
static void stop_expect_clean_exit(void)
{
    assert_int_equal(kill(server.pid, SIGTERM), 0);
    int status = test_wait_exit(server.pid, 10.0);
    assert_true(status >= 0); /* -1: still running after 10 s */
    server.pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int reset_server(void **state)
{
    (void)state;
    memset(&server, 0, sizeof server);
    server.out = -1;
    return 0;
}

static int kill_server(void **state)
{
    (void)state;
    if (server.pid > 0) {
        kill(server.pid, SIGKILL);
        waitpid(server.pid, NULL, 0);
    }
    if (server.out >= 0)
        close(server.out);
    return 0;
}

/* "Threads:" of /proc/PID/status, or -1. */
static int thread_count(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    int threads = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &threads) == 1)
            break;
    if (f)
        fclose(f);
    return threads;
}

/* Processes whose parent is pid, zombies included. */
static int child_count(pid_t pid)
{
    DIR *dir = opendir("/proc");
    assert_non_null(dir);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char path[300], text[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        /* "pid (comm) state ppid …": comm may hold spaces, so after ')' */
        const char *close_paren = strrchr(text, ')');
        int ppid;
        if (close_paren && sscanf(close_paren + 1, " %*c %d", &ppid) == 1 &&
            ppid == pid)
            count++;
    }
    closedir(dir);
    return count;
}

/* ---- clients ----------------------------------------------------------- */

static int connect_to_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10}; /* no read or write hangs a test */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)server.port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void expect_text(int fd, const char *expected)
{
    size_t len = strlen(expected), got = 0;
    char buf[256];
    assert_true(len < sizeof buf);
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        assert_true(n > 0); /* 0: closed early; -1: the 10 s timeout */
        got += (size_t)n;
    }
    buf[got] = '\0';
    assert_string_equal(buf, expected);
}

static bool readable_within(int fd, int milliseconds)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, milliseconds) > 0;
}

/* ---- steps 1 to 3: the upper-case service ------------------------------ */

static void
test_step1_serves_the_next_client_only_after_the_first_leaves(void **state)
{
    (void)state;
    start(STEP1, NULL);
    int first = connect_to_server();
    send_text(first, "one\n");
    expect_text(first, "ONE\n");

    /* The kernel completes the second connection (it waits in the listen
     * queue), but the server is busy with the first client. */
    int second = connect_to_server();
    send_text(second, "two\n");
    assert_false(readable_within(second, 300));
    send_text(first, "still me\n");
    expect_text(first, "STILL ME\n");
    assert_false(readable_within(second, 100));

    close(first); /* the first client leaves: now it is the second's turn */
    expect_text(second, "TWO\n");
    close(second);
    stop_expect_clean_exit();
}

/* Two clients connected at once, their exchanges interleaved: the second
 * is answered while the first is still connected, then the first again. */
static void serve_two_clients_at_once(const char *program, int clients[2])
{
    start(program, NULL);
    int first = connect_to_server();
    send_text(first, "one\n");
    expect_text(first, "ONE\n");
    int second = connect_to_server();
    send_text(second, "two\n");
    expect_text(second, "TWO\n");
    send_text(first, "three\n");
    expect_text(first, "THREE\n");
    clients[0] = first;
    clients[1] = second;
}

static void test_step2_serves_two_clients_at_once_on_two_threads(void **state)
{
    (void)state;
    int clients[2];
    serve_two_clients_at_once(STEP2, clients);
    /* The main thread + one per connected client. */
    assert_true(thread_count(server.pid) >= 3);
    close(clients[0]);
    close(clients[1]);
    stop_expect_clean_exit();
}

static void
test_step3_threading_serves_two_clients_at_once_on_two_threads(void **state)
{
    (void)state;
    int clients[2];
    serve_two_clients_at_once(STEP3_THREADING, clients);
    assert_true(thread_count(server.pid) >= 3);
    assert_int_equal(child_count(server.pid), 0);
    close(clients[0]);
    close(clients[1]);
    stop_expect_clean_exit();
}

static bool children_gone(void)
{
    double deadline = test_now() + 5.0;
    while (child_count(server.pid) > 0 && test_now() < deadline)
        usleep(10000);
    return child_count(server.pid) == 0;
}

static void
test_step3_forking_serves_two_clients_at_once_in_two_children(void **state)
{
    (void)state;
    int clients[2];
    serve_two_clients_at_once(STEP3_FORKING, clients);
    assert_int_equal(child_count(server.pid), 2);
    assert_int_equal(thread_count(server.pid), 1); /* no threads: processes */
    /* The clients leave: their children exit and are reaped (no zombies). */
    close(clients[0]);
    close(clients[1]);
    assert_true(children_gone());
    stop_expect_clean_exit();
}

/* step3_forking.c and step5_coroutines.c are the files before them with
 * one word changed, as docs/lab promises: apply the change, compare. */
static char *read_source(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", LAB_SOURCE_DIR, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buffers[2][1 << 16];
    static int which;
    char *buf = buffers[which++ % 2];
    size_t n = fread(buf, 1, sizeof buffers[0] - 1, f);
    assert_true(n < sizeof buffers[0] - 1);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void expect_one_word_apart(const char *from, const char *to,
                                  const char *word, const char *replacement)
{
    char *a = read_source(from);
    const char *b = read_source(to);
    char *at = strstr(a, word);
    assert_non_null(at);
    assert_null(strstr(at + 1, word)); /* the word occurs once */
    char changed[1 << 16];
    snprintf(changed, sizeof changed, "%.*s%s%s", (int)(at - a), a, replacement,
             at + strlen(word));
    assert_string_equal(changed, b);
}

static void
test_step3_forking_is_step3_threading_with_one_word_changed(void **state)
{
    (void)state;
    expect_one_word_apart("step3_threading.c", "step3_forking.c",
                          "&ss_threading;", "&ss_forking;");
}

static void test_step5_is_step4_with_one_word_changed(void **state)
{
    (void)state;
    expect_one_word_apart("step4_httpserver_v2.c", "step5_coroutines.c",
                          "&ss_threading;", "&ss_coroutines;");
}

/* ---- steps 4 and 5: HTTPServer V2.0 ------------------------------------ */

typedef struct response {
    int status;
    char head[2048]; /* status line and headers */
    char body[4096];
    size_t body_len;
} response;

/* The whole answer: the server closes the connection after it. */
static void read_response(int fd, response *r)
{
    char buf[8192];
    size_t len = 0;
    ssize_t n;
    while ((n = recv(fd, buf + len, sizeof buf - 1 - len, 0)) > 0)
        len += (size_t)n;
    assert_int_equal(n, 0); /* -1: no end within 10 s */
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    size_t head_len = (size_t)(end - buf) + 2;
    assert_true(head_len < sizeof r->head);
    memcpy(r->head, buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    r->body_len = len - head_len - 2;
    assert_true(r->body_len < sizeof r->body);
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
}

static void fetch(const char *request, response *r)
{
    int fd = connect_to_server();
    send_text(fd, request);
    read_response(fd, r);
    close(fd);
}

static void get(const char *path, response *r)
{
    char request[512];
    snprintf(request, sizeof request,
             "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    fetch(request, r);
}

static void http_serves_pages(const char *program)
{
    response r;
    start(program, www_dir);

    get("/", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nContent-Type: text/html"));
    assert_string_equal(r.body, "<h1>lab index</h1>\n");

    get("/hello.txt?x=1", &r); /* a query string is ignored */
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nContent-Type: text/plain"));
    assert_non_null(strstr(r.head, "\r\nContent-Length: 12\r\n"));
    assert_string_equal(r.body, HELLO);

    get("/sub/", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "<p>sub index</p>\n");

    fetch("HEAD /hello.txt HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nContent-Length: 12\r\n"));
    assert_int_equal(r.body_len, 0);
    stop_expect_clean_exit();
}

static void test_step4_serves_pages(void **state)
{
    (void)state;
    http_serves_pages(STEP4);
}

static void test_step5_serves_pages(void **state)
{
    (void)state;
    http_serves_pages(STEP5);
}

static void http_serves_simple_data(const char *program)
{
    response r;
    start(program, www_dir);

    get("/time", &r);
    assert_int_equal(r.status, 200);
    int year, month, day, hour, minute, second;
    assert_int_equal(sscanf(r.body, "%4d-%2d-%2d %2d:%2d:%2d\n", &year, &month,
                            &day, &hour, &minute, &second),
                     6);
    assert_true(year >= 2024);

    fetch("GET /api/hello HTTP/1.1\r\nHost: x\r\nuser-agent:  lab \"test\""
          "\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(r.body, "\"client\": \"127.0.0.1:"));
    /* The header was parsed, trimmed, and made safe for JSON. */
    assert_non_null(strstr(r.body, "\"user_agent\": \"lab ?test?\""));
    stop_expect_clean_exit();
}

static void test_step4_serves_simple_data(void **state)
{
    (void)state;
    http_serves_simple_data(STEP4);
}

static void test_step5_serves_simple_data(void **state)
{
    (void)state;
    http_serves_simple_data(STEP5);
}

static void http_refuses_what_it_should(const char *program)
{
    response r;
    start(program, www_dir);

    get("/missing.html", &r);
    assert_int_equal(r.status, 404);
    get("/sub", &r); /* a directory, not a file */
    assert_int_equal(r.status, 404);

    /* Nothing outside the directory, however it is spelled. */
    const char *escapes[] = {"/../secret.txt",     "/sub/../../secret.txt",
                             "/%2e%2e/secret.txt", "/..%2fsecret.txt",
                             "/.hidden",           "//etc/passwd"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        get(escapes[i], &r);
        if (r.status != 403 && r.status != 404)
            fail_msg("%s: status %d", escapes[i], r.status);
        assert_null(strstr(r.body, SECRET));
        assert_null(strstr(r.body, "root:"));
    }

    /* Other methods: 405 with Allow, even with a body to skip. */
    fetch("POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
          "hello",
          &r);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));

    fetch("garbage\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    fetch("GET / HTTP/1.1\r\nno colon here\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    fetch("GET / FTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    stop_expect_clean_exit();
}

static void test_step4_refuses_missing_and_unsafe_paths(void **state)
{
    (void)state;
    http_refuses_what_it_should(STEP4);
}

static void test_step5_refuses_missing_and_unsafe_paths(void **state)
{
    (void)state;
    http_refuses_what_it_should(STEP5);
}

/* A client that has sent half its request does not hold up another. */
static void http_serves_two_clients_at_once(const char *program)
{
    response r;
    start(program, www_dir);
    int slow = connect_to_server();
    send_text(slow, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n");
    get("/time", &r);
    assert_int_equal(r.status, 200);
    send_text(slow, "\r\n");
    read_response(slow, &r);
    close(slow);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, HELLO);
    stop_expect_clean_exit();
}

/* The access log names what was received even when it is no request: a
 * malformed line is logged as it came (sanitized), not as empty words. */
static void http_logs_a_malformed_request_line(const char *program)
{
    response r;
    start(program, www_dir);
    fetch("hello \"there\"\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    char line[256];
    size_t len = 0;
    double deadline = test_now() + 10.0;
    /* The line after "serving DIR at URL": the client's, in the log. */
    while (len == 0 || line[len - 1] != '\n' ||
           strncmp(line, "serving ", 8) == 0) {
        if (len > 0 && line[len - 1] == '\n')
            len = 0;
        struct pollfd p = {.fd = server.out, .events = POLLIN};
        int left_ms = (int)((deadline - test_now()) * 1000);
        assert_true(left_ms > 0);
        if (poll(&p, 1, left_ms) <= 0)
            continue;
        assert_int_equal(read(server.out, line + len, 1), 1);
        assert_true(++len < sizeof line);
        line[len] = '\0';
    }
    if (strstr(line, " \"hello ?there?\" 400 ") == NULL)
        fail_msg("unexpected log line: %s", line);
    stop_expect_clean_exit();
}

static void test_step4_logs_a_malformed_request_line(void **state)
{
    (void)state;
    http_logs_a_malformed_request_line(STEP4);
}

static void test_step5_logs_a_malformed_request_line(void **state)
{
    (void)state;
    http_logs_a_malformed_request_line(STEP5);
}

/* PORT is checked: atoi() used to read "abc" as 0 (any port) and 70000
 * as 4464. A usage error is exit status 2. */
static void expect_bad_port_refused(const char *program)
{
    const char *words[] = {"abc", "70000", "-1", "8000x", ""};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        const char *argv[] = {program, words[i], NULL};
        char err[1024];
        assert_int_equal(program_run(argv, err, sizeof err), 2);
        assert_non_null(strstr(err, "invalid port"));
    }
}

static void test_steps_1_and_2_refuse_a_bad_port(void **state)
{
    (void)state;
    expect_bad_port_refused(STEP1);
    expect_bad_port_refused(STEP2);
}

static void test_step4_serves_two_clients_at_once(void **state)
{
    (void)state;
    http_serves_two_clients_at_once(STEP4);
}

static void test_step5_serves_two_clients_at_once(void **state)
{
    (void)state;
    http_serves_two_clients_at_once(STEP5);
}

/* Many clients, each with half a request sent: step 4 holds a thread for
 * each, step 5 a few threads for all (the CPU count, plus helpers). Every
 * one is answered once it finishes its request. */
static int many_clients(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = 2 * ((int)cpus + 8) + 16;
    return n < 64 ? 64 : n > 400 ? 400 : n;
}

static void hold_many_clients(const char *program, bool thread_per_client)
{
    start(program, www_dir);
    int count = many_clients();
    int *fds = calloc((size_t)count, sizeof *fds);
    assert_non_null(fds);
    for (int i = 0; i < count; i++) {
        fds[i] = connect_to_server();
        send_text(fds[i], "GET /hello.txt HTTP/1.1\r\n");
    }
    response r;
    get("/time", &r); /* the server keeps up meanwhile */
    assert_int_equal(r.status, 200);

    if (thread_per_client) {
        double deadline = test_now() + 10.0;
        while (thread_count(server.pid) <= count && test_now() < deadline)
            usleep(10000);
        assert_true(thread_count(server.pid) > count);
    } else {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int threads = thread_count(server.pid);
        if (threads < 1 || threads > cpus + 8)
            fail_msg("%d threads for %d clients on %ld CPUs", threads, count,
                     cpus);
    }
    for (int i = 0; i < count; i++)
        send_text(fds[i], "\r\n");
    for (int i = 0; i < count; i++) {
        read_response(fds[i], &r);
        assert_int_equal(r.status, 200);
        close(fds[i]);
    }
    free(fds);
    stop_expect_clean_exit();
}

static void test_step4_holds_a_thread_per_client(void **state)
{
    (void)state;
    hold_many_clients(STEP4, true);
}

static void test_step5_holds_many_clients_on_few_threads(void **state)
{
    (void)state;
    hold_many_clients(STEP5, false);
}

#define LAB_TEST(f)                                                            \
    cmocka_unit_test_setup_teardown(f, reset_server, kill_server)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LAB_TEST(test_step1_serves_the_next_client_only_after_the_first_leaves),
        LAB_TEST(test_step2_serves_two_clients_at_once_on_two_threads),
        LAB_TEST(
            test_step3_threading_serves_two_clients_at_once_on_two_threads),
        LAB_TEST(test_step3_forking_serves_two_clients_at_once_in_two_children),
        cmocka_unit_test(
            test_step3_forking_is_step3_threading_with_one_word_changed),
        cmocka_unit_test(test_step5_is_step4_with_one_word_changed),
        LAB_TEST(test_step4_serves_pages),
        LAB_TEST(test_step5_serves_pages),
        LAB_TEST(test_step4_serves_simple_data),
        LAB_TEST(test_step5_serves_simple_data),
        LAB_TEST(test_step4_refuses_missing_and_unsafe_paths),
        LAB_TEST(test_step5_refuses_missing_and_unsafe_paths),
        LAB_TEST(test_step4_serves_two_clients_at_once),
        LAB_TEST(test_step5_serves_two_clients_at_once),
        LAB_TEST(test_step4_holds_a_thread_per_client),
        LAB_TEST(test_step5_holds_many_clients_on_few_threads),
        LAB_TEST(test_step4_logs_a_malformed_request_line),
        LAB_TEST(test_step5_logs_a_malformed_request_line),
        cmocka_unit_test(test_steps_1_and_2_refuse_a_bad_port),
    };
    return cmocka_run_group_tests(tests, build_tree, remove_tree);
}
