/*
 * test_fileserver.c — end-to-end tests of sockserv-fileserver and its
 * client sockserv-filecli (examples/fileserver).
 *
 * Each test starts the real server binary (fork + exec) on port 0 with
 * --port-file, serving a fresh directory of its own, and talks to it over
 * TCP on loopback: through the real client binary where the point is the
 * user's view (a 10 MiB file back byte for byte, exit statuses), and
 * through a raw socket where the exact protocol bytes are the point
 * (traversal names, an upload cut off halfway, two uploads racing). The
 * core tests run under --mode fork, thread, pool and coro: one handler
 * source, every strategy. The server's log (stderr) goes to a file the
 * tests read to know when the server has dealt with a vanished client,
 * instead of sleeping. A cmocka teardown kills the server by its PID, so a
 * failed assertion never leaves a process behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
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
#include <stddef.h>
#include <cmocka.h>

#include "files.h"
#include "program_run.h"

#ifndef SOCKSERV_FILESERVER_PATH
#error "SOCKSERV_FILESERVER_PATH must name the sockserv-fileserver binary"
#endif
#ifndef SOCKSERV_FILECLI_PATH
#error "SOCKSERV_FILECLI_PATH must name the sockserv-filecli binary"
#endif

#define HELLO "Hello, world!\n" /* 14 bytes */
#define SECRET "TOP-SECRET-OUTSIDE"
#define MIB (1024 * 1024)

/* ---- small file helpers ------------------------------------------------- */

static char base_dir[64]; /* /tmp/sockserv-fileserver-XXXXXX */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The names in dir, sorted, each followed by '\n' — dotfiles and the
 * server's temporary files included. */
static void dir_entries(const char *dir, char *out, size_t size)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            strncat(out, names[i]->d_name, size - strlen(out) - 2);
            strcat(out, "\n");
        }
        free(names[i]);
    }
    free(names);
}

static int make_base(void **state)
{
    (void)state;
    strcpy(base_dir, "/tmp/sockserv-fileserver-XXXXXX");
    if (mkdtemp(base_dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/secret.txt", base_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(SECRET "\n", f);
    return fclose(f);
}

static int remove_base(void **state)
{
    (void)state;
    return test_remove_tree(base_dir);
}

/* ---- the server process ------------------------------------------------- */

typedef struct options {
    const char *mode;
    const char *max_size; /* --max-size, or NULL */
    const char *timeout;  /* --timeout, or NULL */
} options;

typedef struct fixture {
    const options *opt;
    pid_t pid; /* 0 once reaped */
    int port;
    char dir[192];        /* what the server serves */
    char client_dir[192]; /* a scratch directory for the client side */
    char port_file[192];
    char log[192];       /* the server's stderr */
    char baseline[1024]; /* dir_entries(dir) after setup */
} fixture;

/* The served directory: a file, a hidden file, a directory, a symlink
 * that leads out of it and one that stays inside. */
static int populate(const fixture *fx)
{
    char path[256];
    snprintf(path, sizeof path, "%s/hello.txt", fx->dir);
    write_text(path, HELLO);
    snprintf(path, sizeof path, "%s/.hidden", fx->dir);
    write_text(path, "hidden\n");
    snprintf(path, sizeof path, "%s/sub", fx->dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/escape", fx->dir);
    if (symlink("../../secret.txt", path) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/inside", fx->dir);
    return symlink("hello.txt", path);
}

static int start_server(void **state)
{
    static int counter;
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    fx->opt = *state;
    *state = fx;
    int n = ++counter;
    char test_dir[160];
    snprintf(test_dir, sizeof test_dir, "%s/t%d", base_dir, n);
    snprintf(fx->dir, sizeof fx->dir, "%s/srv", test_dir);
    snprintf(fx->client_dir, sizeof fx->client_dir, "%s/cli", test_dir);
    snprintf(fx->port_file, sizeof fx->port_file, "%s/port", test_dir);
    snprintf(fx->log, sizeof fx->log, "%s/server.log", test_dir);
    if (mkdir(test_dir, 0755) || mkdir(fx->dir, 0755) ||
        mkdir(fx->client_dir, 0755) || populate(fx))
        return -1;
    dir_entries(fx->dir, fx->baseline, sizeof fx->baseline);

    const char *argv[20];
    int argc = 0;
    argv[argc++] = "sockserv-fileserver";
    argv[argc++] = "--mode";
    argv[argc++] = fx->opt->mode;
    argv[argc++] = "-d";
    argv[argc++] = fx->dir;
    argv[argc++] = "-b";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--port-file";
    argv[argc++] = fx->port_file;
    if (fx->opt->max_size) {
        argv[argc++] = "--max-size";
        argv[argc++] = fx->opt->max_size;
    }
    if (fx->opt->timeout) {
        argv[argc++] = "--timeout";
        argv[argc++] = fx->opt->timeout;
    }
    argv[argc++] = "0";
    argv[argc] = NULL;

    fx->pid = fork();
    if (fx->pid < 0)
        return -1;
    if (fx->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        int log = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(null, STDOUT_FILENO); /* the "Serving" line */
        dup2(log, STDERR_FILENO);  /* one line per connection and command */
        execv(SOCKSERV_FILESERVER_PATH, (char *const *)argv);
        _exit(127);
    }
    /* pid 0 after: it died before listening. */
    return test_wait_port_file(fx->port_file, &fx->pid, 10.0, &fx->port, 1);
}

/* Stop the server; the test fails (teardown error) unless it exits with
 * status 0 and its log holds no sanitizer report. */
static int stop_server(void **state)
{
    fixture *fx = *state;
    if (fx == NULL)
        return 0;
    int rc = 0;
    if (fx->pid > 0) {
        kill(fx->pid, SIGTERM);
        int status = test_wait_exit(fx->pid, 15.0);
        if (status == -1) {
            kill(fx->pid, SIGKILL);
            waitpid(fx->pid, NULL, 0);
        }
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "sockserv-fileserver did not exit with 0\n");
            rc = -1;
        }
    }
    char *log = test_read_whole(fx->log, NULL);
    if (log != NULL && test_sanitizer_report(log)) {
        fprintf(stderr, "server log:\n%s\n", log);
        rc = -1;
    }
    free(log);
    free(fx);
    return rc;
}

static bool server_running(const fixture *fx)
{
    return fx->pid > 0 && waitpid(fx->pid, NULL, WNOHANG) == 0;
}

/* Wait (bounded) until the server's log holds text. */
static bool log_has(const fixture *fx, const char *text, double seconds)
{
    double deadline = test_now() + seconds;
    do {
        char *log = test_read_whole(fx->log, NULL);
        bool found = log != NULL && strstr(log, text) != NULL;
        free(log);
        if (found)
            return true;
        usleep(5000);
    } while (test_now() < deadline);
    return false;
}

/* ---- the client binary -------------------------------------------------- */

/* Start sockserv-filecli in cwd with "-t 10 127.0.0.1 PORT" and the given
 * commands (NULL-terminated); its stdout and stderr go to files in cwd. */
static pid_t spawn_client(const fixture *fx, const char *cwd,
                          const char *const *commands)
{
    char port[16];
    snprintf(port, sizeof port, "%d", fx->port);
    const char *argv[32] = {"sockserv-filecli", "-t", "10", "127.0.0.1", port};
    int argc = 5;
    for (int i = 0; commands[i] != NULL && argc < 31; i++)
        argv[argc++] = commands[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(cwd) != 0)
            _exit(126);
        int out = open("client.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open("client.err", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execv(SOCKSERV_FILECLI_PATH, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* The client's stderr in cwd (static buffer). */
static const char *client_errors(const char *cwd)
{
    static char text[4096];
    char path[256];
    snprintf(path, sizeof path, "%s/client.err", cwd);
    char *all = test_read_whole(path, NULL);
    snprintf(text, sizeof text, "%s", all ? all : "");
    free(all);
    return text;
}

/* The exit status (0–255) of the client started in cwd, failing the test
 * if it did not exit by itself within 60 s or a sanitizer reported. */
static int client_status(pid_t pid, const char *cwd)
{
    int status = test_wait_exit(pid, 60.0);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("sockserv-filecli did not finish");
    }
    assert_true(WIFEXITED(status));
    if (test_sanitizer_report(client_errors(cwd)))
        fail_msg("sockserv-filecli: %s", client_errors(cwd));
    return WEXITSTATUS(status);
}

static int run_client(const fixture *fx, const char *cwd,
                      const char *const *commands)
{
    return client_status(spawn_client(fx, cwd, commands), cwd);
}

/* ---- a raw protocol connection ------------------------------------------ */

typedef struct conn {
    int fd;
    size_t pos, len;
    char buf[64 * 1024];
} conn;

static conn *open_conn(const fixture *fx)
{
    conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)fx->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return c;
}

static void close_conn(conn *c)
{
    close(c->fd);
    free(c);
}

static void send_bytes(conn *c, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t sent = send(c->fd, p, n, MSG_NOSIGNAL);
        if (sent < 0)
            fail_msg("send: %s", strerror(errno));
        p += sent;
        n -= (size_t)sent;
    }
}

static void send_line(conn *c, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof line - 1);
    line[n++] = '\n';
    send_bytes(c, line, (size_t)n);
}

/* More bytes into the empty buffer; 0 at end of stream (or reset). Fails
 * the test on a timeout. */
static ssize_t receive(conn *c)
{
    ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
    if (n < 0 && errno == ECONNRESET)
        n = 0;
    if (n < 0)
        fail_msg("recv: %s", strerror(errno));
    c->pos = 0;
    c->len = (size_t)n;
    return n;
}

/* Read one answer line (static buffer, without '\n'); fails at EOF. */
static const char *read_line(conn *c)
{
    static char line[4096];
    size_t n = 0;
    for (;;) {
        if (c->pos == c->len && receive(c) == 0)
            fail_msg("connection closed; line so far: '%.*s'", (int)n, line);
        char ch = c->buf[c->pos++];
        if (ch == '\n')
            break;
        assert_true(n + 1 < sizeof line);
        line[n++] = ch;
    }
    line[n] = '\0';
    return line;
}

/* Read an answer and check its code; returns the line. */
static const char *expect(conn *c, int code)
{
    const char *line = read_line(c);
    if (atoi(line) != code || strlen(line) < 4 || line[3] != ' ')
        fail_msg("expected %d, got '%s'", code, line);
    return line;
}

static void read_exact(conn *c, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        if (c->pos == c->len && receive(c) == 0)
            fail_msg("connection closed with %zu bytes missing", n);
        size_t take = c->len - c->pos < n ? c->len - c->pos : n;
        memcpy(p, c->buf + c->pos, take);
        c->pos += take;
        p += take;
        n -= take;
    }
}

/* The server closes the connection (nothing more arrives). */
static void expect_closed(conn *c)
{
    assert_true(c->pos == c->len);
    assert_int_equal(receive(c), 0);
}

/* PUT the given bytes under name on c and expect 201. */
static void put_bytes(conn *c, const char *name, const void *data, size_t n)
{
    send_line(c, "PUT %zu %s", n, name);
    expect(c, 100);
    send_bytes(c, data, n);
    expect(c, 201);
}

static void expect_entries_unchanged(const fixture *fx)
{
    char now_entries[1024];
    dir_entries(fx->dir, now_entries, sizeof now_entries);
    assert_string_equal(now_entries, fx->baseline);
}

/* While an upload runs: no entry but the server's hidden temporary file
 * (which exists only where the file system lacks O_TMPFILE). */
static void expect_no_visible_new_entries(const fixture *fx)
{
    char now_entries[1024], *line = now_entries;
    dir_entries(fx->dir, now_entries, sizeof now_entries);
    char *out = now_entries;
    while (*line) {
        size_t len = strcspn(line, "\n") + 1;
        if (strncmp(line, ".upload-", 8) != 0) {
            memmove(out, line, len);
            out += len;
        }
        line += len;
    }
    *out = '\0';
    assert_string_equal(now_entries, fx->baseline);
}

/* Whether the file system of dir has O_TMPFILE (most do; overlayfs before
 * Linux 6.6 does not). */
static bool have_tmpfile(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* ---- transfers in every mode -------------------------------------------- */

static void test_ten_mib_file_round_trips_byte_exact(void **state)
{
    fixture *fx = *state;
    char source[256], stored[256], fetched_dir[256], fetched[320];
    snprintf(source, sizeof source, "%s/big.bin", fx->client_dir);
    snprintf(stored, sizeof stored, "%s/big.bin", fx->dir);
    snprintf(fetched_dir, sizeof fetched_dir, "%s/down", fx->client_dir);
    snprintf(fetched, sizeof fetched, "%s/big.bin", fetched_dir);
    test_write_pattern_file(source, 10 * MIB, 10);
    assert_int_equal(mkdir(fetched_dir, 0755), 0);

    const char *put[] = {"put", "big.bin", NULL};
    int status = run_client(fx, fx->client_dir, put);
    if (status != 0)
        fail_msg("put failed: %s", client_errors(fx->client_dir));
    assert_true(test_files_equal(source, stored));

    const char *get[] = {"get", "big.bin", NULL};
    status = run_client(fx, fetched_dir, get);
    if (status != 0)
        fail_msg("get failed: %s", client_errors(fetched_dir));
    assert_true(test_files_equal(source, fetched));
}

#define CLIENTS 6

static void test_several_clients_are_served_at_once(void **state)
{
    fixture *fx = *state;
    /* One client connects and stays: everyone else is served meanwhile
     * (a server taking one client at a time would stall here until the
     * clients' own 10 s timeouts, and fail). */
    conn *idle = open_conn(fx);
    send_line(idle, "LIST");
    expect(idle, 200);
    read_line(idle); /* "14 hello.txt" */

    pid_t pids[CLIENTS];
    char dirs[CLIENTS][256], names[CLIENTS][32], paths[CLIENTS][320];
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/c%d", fx->client_dir, i);
        assert_int_equal(mkdir(dirs[i], 0755), 0);
        snprintf(names[i], sizeof names[i], "up%d.bin", i);
        snprintf(paths[i], sizeof paths[i], "%s/src/%s", fx->client_dir,
                 names[i]);
    }
    char src[256];
    snprintf(src, sizeof src, "%s/src", fx->client_dir);
    assert_int_equal(mkdir(src, 0755), 0);
    for (int i = 0; i < CLIENTS; i++)
        test_write_pattern_file(paths[i], 512 * 1024 + (size_t)i, 100 + i);
    /* Each client uploads its file from src/ and downloads it back into
     * its own directory, on one connection, all at the same time. */
    for (int i = 0; i < CLIENTS; i++) {
        const char *commands[] = {"put",    paths[i], "get",
                                  names[i], "list",   NULL};
        pids[i] = spawn_client(fx, dirs[i], commands);
    }
    for (int i = 0; i < CLIENTS; i++) {
        int status = client_status(pids[i], dirs[i]);
        if (status != 0)
            fail_msg("client %d failed: %s", i, client_errors(dirs[i]));
        char fetched[320];
        int n = snprintf(fetched, sizeof fetched, "%s/%s", dirs[i], names[i]);
        assert_true(n > 0 && (size_t)n < sizeof fetched);
        assert_true(test_files_equal(paths[i], fetched));
    }
    /* The patient first client is still served, and sees every upload. */
    send_line(idle, "LIST");
    const char *line = expect(idle, 200);
    assert_int_equal(atoi(line + 4), CLIENTS + 1);
    for (int i = 0; i < CLIENTS + 1; i++)
        read_line(idle);
    send_line(idle, "QUIT");
    expect(idle, 200);
    expect_closed(idle);
    close_conn(idle);
}

static void test_interrupted_upload_leaves_nothing_behind(void **state)
{
    fixture *fx = *state;
    static char data[MIB];
    memset(data, 'p', sizeof data);
    conn *c = open_conn(fx);
    send_line(c, "PUT %d part.bin", MIB);
    expect(c, 100);
    send_bytes(c, data, 300 * 1024);
    /* Mid-upload, nothing is visible under the name, nor under another. */
    expect_no_visible_new_entries(fx);
    close_conn(c); /* the client vanishes */
    assert_true(log_has(fx, "PUT part.bin -> lost after", 10.0));
    expect_entries_unchanged(fx);
    assert_true(server_running(fx));

    /* The name is free to use: a complete upload of it works. */
    c = open_conn(fx);
    put_bytes(c, "part.bin", data, sizeof data);
    close_conn(c);
    char stored[256];
    snprintf(stored, sizeof stored, "%s/part.bin", fx->dir);
    struct stat st;
    assert_int_equal(stat(stored, &st), 0);
    assert_int_equal(st.st_size, MIB);
}

static void test_concurrent_uploads_of_one_name_never_interleave(void **state)
{
    fixture *fx = *state;
    enum { SIZE = 4 * MIB, CHUNK = 64 * 1024 };
    static char a[CHUNK], b[CHUNK];
    memset(a, 'A', sizeof a);
    memset(b, 'B', sizeof b);
    conn *x = open_conn(fx), *y = open_conn(fx);
    send_line(x, "PUT %d same.bin", SIZE);
    send_line(y, "PUT %d same.bin", SIZE);
    expect(x, 100);
    expect(y, 100);
    /* Both bodies arrive at the same time, chunk by chunk. */
    for (int sent = 0; sent < SIZE; sent += CHUNK) {
        send_bytes(x, a, CHUNK);
        send_bytes(y, b, CHUNK);
        if (sent == SIZE / 2)
            expect_no_visible_new_entries(fx); /* neither is complete */
    }
    expect(x, 201);
    expect(y, 201);
    close_conn(x);
    close_conn(y);

    /* The file is one upload whole: all A or all B, never a mix. */
    char path[256];
    snprintf(path, sizeof path, "%s/same.bin", fx->dir);
    size_t len;
    char *content = test_read_whole(path, &len);
    assert_non_null(content);
    assert_int_equal(len, SIZE);
    for (size_t i = 1; i < len; i++)
        if (content[i] != content[0])
            fail_msg("byte %zu is '%c' after '%c'", i, content[i], content[0]);
    assert_true(content[0] == 'A' || content[0] == 'B');
    free(content);
    /* And no temporary file is left next to it. */
    char entries[1024], expected[1100];
    dir_entries(fx->dir, entries, sizeof entries);
    snprintf(expected, sizeof expected, "%s", fx->baseline);
    assert_non_null(strstr(entries, "same.bin\n"));
    assert_int_equal(strlen(entries), strlen(expected) + strlen("same.bin\n"));
}

static void test_sigterm_exits_with_status_zero(void **state)
{
    fixture *fx = *state;
    /* An idle client must not keep the server from stopping. */
    conn *c = open_conn(fx);
    send_line(c, "LIST");
    expect(c, 200);
    assert_int_equal(kill(fx->pid, SIGTERM), 0);
    int status = test_wait_exit(fx->pid, 15.0);
    assert_true(status >= 0);
    fx->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close_conn(c);
}

/* ---- confinement --------------------------------------------------------- */

static void test_traversal_attempts_are_refused(void **state)
{
    fixture *fx = *state;
    static const struct {
        const char *name;
        int code;
    } gets[] = {
        {"../secret.txt", 400},
        {"../../secret.txt", 400},
        {"/etc/passwd", 400},
        {"sub/../hello.txt", 400},
        {"..", 400},
        {".", 400},
        {".hidden", 400},
        {"hello.txt/", 400},
        {"./hello.txt", 400},
        {"hel\tlo.txt", 400},
        {"sub", 404},
        {"escape", 404}, /* symlink out */
        {"inside", 404}, /* symlinks are never followed */
        {"%2e%2e", 404}, /* no decoding: just a name */
        {"secret.txt", 404},
    };
    conn *c = open_conn(fx);
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        send_line(c, "GET %s", gets[i].name);
        const char *line = read_line(c);
        if (atoi(line) != gets[i].code)
            fail_msg("GET %s answered '%s'", gets[i].name, line);
        assert_null(strstr(line, SECRET));
    }
    char long_name[300];
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    send_line(c, "GET %s", long_name);
    expect(c, 400);
    send_bytes(c, "GET hello.txt\0.x\n", 17);
    expect(c, 400);
    /* The log shows a refused name without its control bytes. */
    assert_true(log_has(fx, "GET hel?lo.txt -> 400", 10.0));

    /* Uploads cannot leave the directory either. */
    static const char *const bad_puts[] = {"../evil.txt", "/tmp/evil.txt",
                                           "sub/evil.txt", ".evil.txt"};
    for (size_t i = 0; i < 4; i++) {
        send_line(c, "PUT 5 %s", bad_puts[i]);
        expect(c, 400);
    }
    char outside[300];
    snprintf(outside, sizeof outside, "%s/../evil.txt", fx->dir);
    assert_int_equal(access(outside, F_OK), -1);
    snprintf(outside, sizeof outside, "%s/evil.txt", base_dir);
    assert_int_equal(access(outside, F_OK), -1);
    expect_entries_unchanged(fx);

    /* A PUT onto the escaping symlink replaces the link; the file it
     * pointed to is untouched. */
    put_bytes(c, "escape", "owned\n", 6);
    char path[256];
    snprintf(path, sizeof path, "%s/secret.txt", base_dir);
    char *secret = test_read_whole(path, NULL);
    assert_string_equal(secret, SECRET "\n");
    free(secret);
    snprintf(path, sizeof path, "%s/escape", fx->dir);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* A PUT onto a directory's name is refused after the body. */
    send_line(c, "PUT 3 sub");
    expect(c, 100);
    send_bytes(c, "abc", 3);
    expect(c, 409);
    /* LIST shows exactly what GET can fetch. */
    send_line(c, "LIST");
    expect(c, 200);
    assert_string_equal(read_line(c), "6 escape");
    assert_string_equal(read_line(c), "14 hello.txt");
    send_line(c, "QUIT");
    expect(c, 200);
    close_conn(c);
}

/* ---- vanishing and misbehaving clients ----------------------------------- */

/* The pids whose parent is ppid, from /proc. */
static int children_of(pid_t ppid, pid_t *pids, int max)
{
    DIR *proc = opendir("/proc");
    assert_non_null(proc);
    int n = 0;
    struct dirent *d;
    while ((d = readdir(proc)) != NULL && n < max) {
        char path[300], text[512];
        if (d->d_name[0] < '1' || d->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", d->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        const char *end = strrchr(text, ')');
        int parent;
        if (end && sscanf(end + 1, " %*c %d", &parent) == 1 && parent == ppid)
            pids[n++] = (pid_t)atoi(d->d_name);
    }
    closedir(proc);
    return n;
}

/* pid has exited (a zombie, or gone): its descriptors are released. */
static bool exited(pid_t pid)
{
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    const char *end = strrchr(text, ')');
    return end == NULL || end[2] == 'Z' || end[2] == 'X';
}

static void test_killed_worker_leaves_no_partial_file(void **state)
{
    fixture *fx = *state; /* --mode fork: the worker is a child process */
    if (!have_tmpfile(fx->dir))
        skip(); /* a named temporary file would survive SIGKILL */
    static char data[300 * 1024];
    memset(data, 'k', sizeof data);
    conn *c = open_conn(fx);
    send_line(c, "PUT %d killed.bin", MIB);
    expect(c, 100);
    send_bytes(c, data, sizeof data);
    assert_true(log_has(fx, "connected", 10.0));
    pid_t kids[16];
    int n = children_of(fx->pid, kids, 16);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL); /* no handler code runs: no cleanup */
    double deadline = test_now() + 10.0;
    for (int i = 0; i < n; i++)
        while (!exited(kids[i]) && test_now() < deadline)
            usleep(2000);
    /* The unnamed upload died with its process: not even a temporary
     * file is left (nothing for anyone to clean up). */
    expect_entries_unchanged(fx);
    close_conn(c);
    assert_true(server_running(fx));
    c = open_conn(fx);
    send_line(c, "LIST");
    expect(c, 200);
    close_conn(c);
}

static void
test_client_vanishing_mid_download_leaves_server_serving(void **state)
{
    fixture *fx = *state;
    char stored[256];
    snprintf(stored, sizeof stored, "%s/eight.bin", fx->dir);
    test_write_pattern_file(stored, 8 * MIB, 8);
    static char head[64 * 1024];

    for (int round = 0; round < 3; round++) {
        conn *c = open_conn(fx);
        send_line(c, "GET eight.bin");
        expect(c, 200);
        read_exact(c, head, sizeof head);
        close_conn(c); /* unread data: the kernel resets the connection */
    }
    assert_true(log_has(fx, "GET eight.bin -> 200, lost after", 10.0));
    assert_true(server_running(fx));

    /* Another client gets the whole file, byte exact. */
    char fetched_dir[256], fetched[320];
    snprintf(fetched_dir, sizeof fetched_dir, "%s/down", fx->client_dir);
    assert_int_equal(mkdir(fetched_dir, 0755), 0);
    snprintf(fetched, sizeof fetched, "%s/eight.bin", fetched_dir);
    const char *get[] = {"get", "eight.bin", NULL};
    assert_int_equal(run_client(fx, fetched_dir, get), 0);
    assert_true(test_files_equal(stored, fetched));
}

static void test_stalled_upload_times_out_and_leaves_nothing(void **state)
{
    fixture *fx = *state; /* --timeout 1 */
    conn *c = open_conn(fx);
    send_line(c, "PUT 100000 slow.bin");
    expect(c, 100);
    send_bytes(c, "only a little", 13);
    double start = test_now();
    expect_closed(c); /* the server gives up on its own */
    assert_true(test_now() - start > 0.5);
    assert_true(log_has(fx, "PUT slow.bin -> lost after 0 of 100000", 10.0));
    expect_entries_unchanged(fx);
    close_conn(c);
}

static void test_idle_client_is_disconnected_after_timeout(void **state)
{
    fixture *fx = *state; /* --timeout 1 */
    conn *c = open_conn(fx);
    send_line(c, "LIST");
    expect(c, 200);
    read_line(c);
    double start = test_now();
    expect(c, 421);
    expect_closed(c);
    assert_true(test_now() - start > 0.5);
    close_conn(c);
}

/* ---- the protocol ---------------------------------------------------------
 */

static void test_commands_share_one_connection(void **state)
{
    fixture *fx = *state;
    conn *c = open_conn(fx);
    send_line(c, "LIST");
    assert_string_equal(expect(c, 200), "200 1 files");
    assert_string_equal(read_line(c), "14 hello.txt");
    put_bytes(c, "new file.txt", "abcde", 5);
    send_line(c, "GET new file.txt");
    assert_string_equal(expect(c, 200), "200 5 bytes");
    char body[6] = {0};
    read_exact(c, body, 5);
    assert_string_equal(body, "abcde");
    send_line(c, "get hello.txt\r"); /* any case, CRLF too */
    expect(c, 200);
    char hello[15] = {0};
    read_exact(c, hello, 14);
    assert_string_equal(hello, HELLO);
    send_line(c, "FETCH hello.txt");
    expect(c, 400);
    send_line(c, "");
    expect(c, 400);
    send_line(c, "HELP");
    expect(c, 200);
    send_line(c, "list");
    assert_string_equal(expect(c, 200), "200 2 files");
    assert_string_equal(read_line(c), "14 hello.txt");
    assert_string_equal(read_line(c), "5 new file.txt");
    put_bytes(c, "empty", "", 0);
    send_line(c, "QUIT");
    assert_string_equal(expect(c, 200), "200 bye");
    expect_closed(c);
    close_conn(c);
}

static void test_upload_over_max_size_is_refused_before_the_body(void **state)
{
    fixture *fx = *state; /* --max-size 1K */
    static char data[1024];
    conn *c = open_conn(fx);
    send_line(c, "PUT 1025 big.bin");
    const char *line = expect(c, 413);
    assert_non_null(strstr(line, "1024"));
    /* Nothing was sent, so the connection is still in step. */
    put_bytes(c, "big.bin", data, sizeof data);
    close_conn(c);
}

static void
test_malformed_commands_are_refused_and_connection_goes_on(void **state)
{
    fixture *fx = *state;
    static const char *const bad[] = {
        "PUT abc x.bin", "PUT -1 x.bin",
        "PUT +5 x.bin",  "PUT 99999999999999999999999 x.bin",
        "PUT 5",         "PUT 5 ",
        "PUT  5 x.bin",  "PUT 5x x.bin",
        "GET",           "LIST all",
        "QUIT now",
    };
    conn *c = open_conn(fx);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        send_line(c, "%s", bad[i]);
        const char *line = read_line(c);
        if (atoi(line) != 400)
            fail_msg("'%s' answered '%s'", bad[i], line);
    }
    send_line(c, "LIST");
    expect(c, 200);
    close_conn(c);
    expect_entries_unchanged(fx);
}

static void test_overlong_line_is_refused_and_closed(void **state)
{
    fixture *fx = *state;
    static char line[5000];
    memset(line, 'A', sizeof line - 1);
    conn *c = open_conn(fx);
    send_line(c, "%s", line);
    const char *answer = expect(c, 400);
    assert_non_null(strstr(answer, "too long"));
    expect_closed(c);
    close_conn(c);
}

/* ---- the client's failures ------------------------------------------------
 */

static void test_client_reports_failures_with_nonzero_status(void **state)
{
    fixture *fx = *state;
    const char *dir = fx->client_dir;

    const char *missing[] = {"get", "missing.txt", NULL};
    assert_int_equal(run_client(fx, dir, missing), 1);
    assert_non_null(strstr(client_errors(dir), "404"));
    assert_non_null(strstr(client_errors(dir), "missing.txt"));

    const char *no_local[] = {"put", "no-such-local-file", NULL};
    assert_int_equal(run_client(fx, dir, no_local), 1);
    assert_non_null(strstr(client_errors(dir), "No such file"));

    char dot[256];
    snprintf(dot, sizeof dot, "%s/.dotfile", dir);
    write_text(dot, "x");
    const char *bad_name[] = {"put", ".dotfile", NULL};
    assert_int_equal(run_client(fx, dir, bad_name), 1);
    assert_non_null(strstr(client_errors(dir), "400"));

    /* The commands stop at the first failure. */
    const char *stops[] = {"get", "missing.txt", "put", ".dotfile", NULL};
    assert_int_equal(run_client(fx, dir, stops), 1);
    assert_null(strstr(client_errors(dir), "400"));

    const char *usage[] = {"fetch", "x", NULL};
    assert_int_equal(run_client(fx, dir, usage), 2);

    /* A port nobody listens on. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&addr, &len), 0);
    fixture closed = *fx;
    closed.port = ntohs(addr.sin_port);
    const char *list[] = {"list", NULL};
    assert_int_equal(run_client(&closed, dir, list), 1);
    assert_non_null(strstr(client_errors(dir), "cannot connect"));
    close(s);

    /* No download left anything behind in the client's directory. */
    char entries[1024];
    dir_entries(dir, entries, sizeof entries);
    assert_string_equal(entries, ".dotfile\nclient.err\nclient.out\n");
}

/* ---- the list -------------------------------------------------------------
 */

static const options fork_mode = {"fork", NULL, NULL};
static const options thread_mode = {"thread", NULL, NULL};
static const options pool_mode = {"pool", NULL, NULL};
static const options coro_mode = {"coro", NULL, NULL};
static const options short_timeout = {"fork", NULL, "1"};
static const options short_timeout_coro = {"coro", NULL, "1"};
static const options small_max = {"thread", "1K", NULL};

#define WITH(test, opts)                                                       \
    cmocka_unit_test_prestate_setup_teardown(test, start_server, stop_server,  \
                                             (void *)&(opts))

#define MODE_TESTS(opts)                                                       \
    WITH(test_ten_mib_file_round_trips_byte_exact, opts),                      \
        WITH(test_several_clients_are_served_at_once, opts),                   \
        WITH(test_interrupted_upload_leaves_nothing_behind, opts),             \
        WITH(test_concurrent_uploads_of_one_name_never_interleave, opts),      \
        WITH(test_client_vanishing_mid_download_leaves_server_serving, opts),  \
        WITH(test_sigterm_exits_with_status_zero, opts)

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
    const char *old_form[] = {SOCKSERV_FILESERVER_PATH, "-b", "127.1", "0",
                              NULL};
    expect_usage_error(old_form, "'127.1' is not an IP address or host name");
    const char *with_port[] = {SOCKSERV_FILESERVER_PATH, "-b", "127.0.0.1:80",
                               "0", NULL};
    expect_usage_error(with_port, "give the host only; the port is the PORT");
    /* .invalid never resolves (RFC 6761): a fast answer, no traffic. */
    const char *unknown[] = {SOCKSERV_FILESERVER_PATH, "-b",
                             "nosuchhost.invalid", "0", NULL};
    expect_usage_error(unknown, "host not found: nosuchhost.invalid");
}

static void test_client_with_a_bad_port_is_a_usage_error(void **state)
{
    (void)state;
    const char *name[] = {SOCKSERV_FILECLI_PATH, "127.0.0.1", "notaport",
                          "list", NULL};
    expect_usage_error(name, "invalid port: 'notaport'");
    const char *zero[] = {SOCKSERV_FILECLI_PATH, "127.0.0.1", "0", "list",
                          NULL};
    expect_usage_error(zero, "invalid port: '0'");
    const char *big[] = {SOCKSERV_FILECLI_PATH, "127.0.0.1", "70000", "list",
                         NULL};
    expect_usage_error(big, "invalid port: '70000'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_address_mistakes_are_usage_errors),
        cmocka_unit_test(test_client_with_a_bad_port_is_a_usage_error),
        MODE_TESTS(fork_mode),
        MODE_TESTS(thread_mode),
        MODE_TESTS(pool_mode),
        MODE_TESTS(coro_mode),
        WITH(test_traversal_attempts_are_refused, fork_mode),
        WITH(test_killed_worker_leaves_no_partial_file, fork_mode),
        WITH(test_stalled_upload_times_out_and_leaves_nothing, short_timeout),
        WITH(test_stalled_upload_times_out_and_leaves_nothing,
             short_timeout_coro),
        WITH(test_idle_client_is_disconnected_after_timeout, short_timeout),
        WITH(test_commands_share_one_connection, fork_mode),
        WITH(test_upload_over_max_size_is_refused_before_the_body, small_max),
        WITH(test_malformed_commands_are_refused_and_connection_goes_on,
             fork_mode),
        WITH(test_overlong_line_is_refused_and_closed, fork_mode),
        WITH(test_client_reports_failures_with_nonzero_status, fork_mode),
    };
    return cmocka_run_group_tests(tests, make_base, remove_base);
}
