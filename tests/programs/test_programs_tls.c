/*
 * test_programs_tls.c — the example programs over TLS, end to end:
 * sockserv-fileserver with sockserv-filecli, and sockserv-chat with
 * sockserv-chatcli, each the real binary (fork + exec), with certificates
 * made at test time (support/tls_support.c: a test CA, a server
 * certificate for localhost and 127.0.0.1, one for another name, an
 * encrypted key and its password file; and a second CA that signed none
 * of them).
 *
 * - the file server in every --mode: a 10 MiB upload and download, byte
 *   for byte, through sockserv-filecli --tls --cafile;
 * - a client that trusts another CA, or a certificate that names another
 *   host, is refused by sockserv-filecli (exit status 1, the reason on
 *   stderr); a plaintext client on the TLS port gets no answer, its
 *   connection is closed, and the server goes on serving;
 * - --tls-password-file opens an encrypted key; SIGHUP reloads a renewed
 *   certificate (fork and coro);
 * - chat members over TLS (--mode thread and coro) see each other join,
 *   talk and leave through sockserv-chatcli --tls;
 * - usage errors: sockserv-chat --udp --tls-cert, sockserv-chatcli --udp
 *   --tls, --cafile without --tls, --tls-key without --tls-cert.
 *
 * Built without TLS (SOCKSERV_TLS=OFF: PROGRAMS_TLS_DISABLED), the same
 * file checks only that every TLS option is a clear usage error.
 *
 * Servers log to files the tests read (no sleeps as synchronization); a
 * teardown stops them by PID and fails the test unless they exit with
 * status 0 and without a sanitizer report.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <netinet/in.h>

#include <setjmp.h> /* cmocka.h needs these three first */
#include <stddef.h>
#include <cmocka.h>

#include "files.h"
#include "program_run.h"
#include "support.h"
#ifndef PROGRAMS_TLS_DISABLED
#include "tls_support.h"
#include "ws_frame.h"
#endif

#if !defined(SOCKSERV_FILESERVER_PATH) || !defined(SOCKSERV_FILECLI_PATH) ||   \
    !defined(SOCKSERV_CHAT_PATH) || !defined(SOCKSERV_CHATCLI_PATH)
#error                                                                         \
    "the four programs' paths must be defined (tests/programs/CMakeLists.txt)"
#endif

#define MIB (1024 * 1024)

/* ---- small helpers --------------------------------------------------------
 */

static void expect_usage_error(const char *const argv[], const char *message)
{
    char err[4096];
    int status = program_run(argv, err, sizeof err);
    if (status != 2 || strstr(err, message) == NULL)
        fail_msg("%s: expected exit status 2 and \"%s\", got %d:\n%s", argv[0],
                 message, status, err);
}

#ifndef PROGRAMS_TLS_DISABLED /* up to the usage errors */

static void kill_and_reap(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- certificates: made once for the whole file ----------------------------
 */

static test_tls_files files;    /* the CA, the servers' certificates */
static test_tls_files stranger; /* another CA, which signed none of them */

static int make_certificates(void **state)
{
    (void)state;
    return test_tls_make_files(&files) == 0 &&
                   test_tls_make_files(&stranger) == 0
               ? 0
               : -1;
}

static int remove_certificates(void **state)
{
    (void)state;
    test_tls_remove_files(&files);
    test_tls_remove_files(&stranger);
    return 0;
}

/* ---- a test's processes ----------------------------------------------------
 */

/* A test's state: the mode it runs in (cmocka's prestate), its scratch
 * directory (srv/ for the file server, cli/ for its client), its server,
 * and the clients it started, so that a failed assertion leaves nothing
 * running. */
typedef struct run {
    const char *mode;
    char dir[64];
    char srv_dir[96], cli_dir[96];
    char port_file[96];
    char log[96]; /* the server's stdout and stderr */
    pid_t server; /* 0: none, or reaped */
    int port;
    int admin_fd; /* the server's standard input; -1: closed */
    pid_t clients[4];
} run;

static int setup(void **state)
{
    run *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -1;
    r->mode = *state;
    r->admin_fd = -1;
    snprintf(r->dir, sizeof r->dir, "/tmp/sockserv-programs-tls-XXXXXX");
    if (mkdtemp(r->dir) == NULL)
        return -1;
    snprintf(r->srv_dir, sizeof r->srv_dir, "%s/srv", r->dir);
    snprintf(r->cli_dir, sizeof r->cli_dir, "%s/cli", r->dir);
    snprintf(r->port_file, sizeof r->port_file, "%s/port", r->dir);
    snprintf(r->log, sizeof r->log, "%s/server.log", r->dir);
    *state = r;
    return mkdir(r->srv_dir, 0755) || mkdir(r->cli_dir, 0755) ? -1 : 0;
}

/* Start path with argv (NULL-terminated; "--port-file F 0" are added)
 * and wait for its port. */
static void server_start(run *r, const char *path, const char *const *argv)
{
    const char *full[40];
    int n = 0;
    for (; argv[n] != NULL && n < 36; n++)
        full[n] = argv[n];
    full[n++] = "--port-file";
    full[n++] = r->port_file;
    full[n++] = "0";
    full[n] = NULL;

    int in[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    r->server = fork();
    assert_true(r->server >= 0);
    if (r->server == 0) {
        int log = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(in[0], STDIN_FILENO);
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        execv(path, (char *const *)full);
        _exit(127);
    }
    close(in[0]);
    r->admin_fd = in[1];
    int rc = test_wait_port_file(r->port_file, &r->server, 15.0, &r->port, 1);
    if (rc == -ECHILD) {
        char *log = test_read_whole(r->log, NULL);
        fail_msg("%s exited before listening:\n%s", argv[0], log ? log : "");
    }
    if (rc < 0)
        fail_msg("%s did not write its port file", argv[0]);
}

/* Wait (bounded) until the server's log holds text. */
static bool server_log_has(const run *r, const char *text, double seconds)
{
    double deadline = test_now() + seconds;
    do {
        char *log = test_read_whole(r->log, NULL);
        bool found = log != NULL && strstr(log, text) != NULL;
        free(log);
        if (found)
            return true;
        test_sleep_ms(5);
    } while (test_now() < deadline);
    return false;
}

static bool server_running(const run *r)
{
    return r->server > 0 && waitpid(r->server, NULL, WNOHANG) == 0;
}

/* Kill what a test left running; the test fails (teardown error) unless
 * the server exits with status 0 after SIGTERM and its log holds no
 * sanitizer report. */
static int teardown(void **state)
{
    run *r = *state;
    int rc = 0;
    for (int i = 0; i < 4; i++)
        kill_and_reap(r->clients[i]);
    if (r->admin_fd >= 0)
        close(r->admin_fd);
    if (r->server > 0) {
        kill(r->server, SIGTERM);
        int status = test_wait_exit(r->server, 15.0);
        if (status == -1)
            kill_and_reap(r->server);
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = -1;
    }
    char *log = test_read_whole(r->log, NULL);
    if (log != NULL && (rc < 0 || test_sanitizer_report(log))) {
        fprintf(stderr, "the server did not exit cleanly; its log:\n%s\n", log);
        rc = -1;
    }
    free(log);
    test_remove_tree(r->dir);
    free(r);
    return rc;
}

/* Start a client: path with argv (NULL-terminated) in cwd; its standard
 * input a pipe (*in, or /dev/null when in is NULL), its standard output
 * and error into out and err (pipes, or NULL: files client.out and
 * client.err in cwd). */
static pid_t client_start(run *r, const char *path, const char *const *argv,
                          const char *cwd, int *in, int *out, int *err)
{
    int pin[2], pout[2], perr[2];
    if (in)
        assert_int_equal(pipe2(pin, O_CLOEXEC), 0);
    if (out)
        assert_int_equal(pipe2(pout, O_CLOEXEC), 0);
    if (err)
        assert_int_equal(pipe2(perr, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(cwd) != 0)
            _exit(126);
        int null = open("/dev/null", O_RDONLY);
        dup2(in ? pin[0] : null, STDIN_FILENO);
        dup2(out ? pout[1]
                 : open("client.out", O_WRONLY | O_CREAT | O_TRUNC, 0644),
             STDOUT_FILENO);
        dup2(err ? perr[1]
                 : open("client.err", O_WRONLY | O_CREAT | O_TRUNC, 0644),
             STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    if (in) {
        close(pin[0]);
        *in = pin[1];
    }
    if (out) {
        close(pout[1]);
        *out = pout[0];
    }
    if (err) {
        close(perr[1]);
        *err = perr[0];
    }
    for (int i = 0; i < 4; i++)
        if (r->clients[i] == 0) {
            r->clients[i] = pid;
            return pid;
        }
    kill_and_reap(pid);
    fail_msg("more than 4 clients at once");
    return -1; /* not reached: fail_msg() does not return */
}

/* The client's exit status, failing the test if it did not exit by
 * itself within 60 s. */
static int client_status(run *r, pid_t pid)
{
    int status = test_wait_exit(pid, 60.0);
    for (int i = 0; i < 4; i++)
        if (r->clients[i] == pid)
            r->clients[i] = 0;
    if (status == -1) {
        kill_and_reap(pid);
        fail_msg("a client did not finish");
    }
    assert_true(status >= 0 && WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* The text of file name in dir (static buffer). */
static const char *file_text(const char *dir, const char *name)
{
    static char text[8192];
    char path[192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *all = test_read_whole(path, NULL);
    snprintf(text, sizeof text, "%s", all ? all : "");
    free(all);
    return text;
}

/* A TCP connection to 127.0.0.1:port (support.h: blocking, with I/O
 * timeouts). */
static int connect_loopback(int port)
{
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    int fd = test_connect_address(address, SOCK_STREAM);
    if (fd < 0)
        fail_msg("connect to %s: %s", address, strerror(-fd));
    return fd;
}

/* A plaintext client sends request to the TLS port: it gets nothing, or
 * a TLS alert record (0x15), never a plaintext answer holding never; its
 * connection is closed within the handshake timeout, the server logs it
 * and goes on running. */
static void plaintext_request_gets_nothing(run *r, int port,
                                           const char *request,
                                           const char *never)
{
    int fd = connect_loopback(port);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t len = strlen(request);
    assert_int_equal(send(fd, request, len, MSG_NOSIGNAL), (ssize_t)len);
    char got[4096];
    size_t n = 0;
    for (;;) { /* until the server closes (or resets) the connection */
        ssize_t k = recv(fd, got + n, sizeof got - 1 - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            fail_msg("the connection stayed open");
        if (k <= 0 || (n += (size_t)k) == sizeof got - 1)
            break;
    }
    got[n] = '\0';
    close(fd);
    assert_true(n == 0 || (unsigned char)got[0] == 0x15);
    assert_null(strstr(got, never));
    assert_true(server_log_has(r, "TLS handshake failed", 10.0));
    assert_true(server_running(r));
}

/* ---- the file server -------------------------------------------------------
 */

/* sockserv-fileserver --mode MODE over TLS with cert and key (and the
 * password file of an encrypted key, or NULL). */
static void fileserver_start(run *r, const char *cert, const char *key,
                             const char *password_file)
{
    const char *argv[20] = {"sockserv-fileserver",
                            "--mode",
                            r->mode,
                            "-d",
                            r->srv_dir,
                            "-b",
                            "127.0.0.1",
                            "--tls-cert",
                            cert,
                            "--tls-key",
                            key};
    int n = 11;
    if (password_file) {
        argv[n++] = "--tls-password-file";
        argv[n++] = password_file;
    }
    argv[n] = NULL;
    server_start(r, SOCKSERV_FILESERVER_PATH, argv);
}

/* sockserv-filecli -t 20 --tls --cafile CA HOST PORT commands... in
 * cwd; returns its exit status (stderr in cwd/client.err). */
static int filecli(run *r, const char *cwd, const char *cafile,
                   const char *host, const char *const *commands)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[24] = {"sockserv-filecli", "-t", "20"};
    int n = 3;
    if (cafile) {
        argv[n++] = "--tls";
        argv[n++] = "--cafile";
        argv[n++] = cafile;
    }
    argv[n++] = host;
    argv[n++] = port;
    for (int i = 0; commands[i] != NULL && n < 23; i++)
        argv[n++] = commands[i];
    argv[n] = NULL;
    pid_t pid =
        client_start(r, SOCKSERV_FILECLI_PATH, argv, cwd, NULL, NULL, NULL);
    int status = client_status(r, pid);
    if (test_sanitizer_report(file_text(cwd, "client.err")))
        fail_msg("sockserv-filecli: %s", file_text(cwd, "client.err"));
    return status;
}

/* 10 MiB up (PUT) and back down (GET) over TLS, byte for byte, then the
 * listing shows it: in every mode of the file server. */
static void test_fileserver_ten_mib_round_trip_over_tls(void **state)
{
    run *r = *state;
    fileserver_start(r, files.cert, files.key, NULL);
    char original[160], stored[160], back_dir[160], back[192];
    snprintf(original, sizeof original, "%s/big.bin", r->cli_dir);
    snprintf(stored, sizeof stored, "%s/big.bin", r->srv_dir);
    snprintf(back_dir, sizeof back_dir, "%s/back", r->cli_dir);
    snprintf(back, sizeof back, "%s/big.bin", back_dir);
    assert_int_equal(mkdir(back_dir, 0755), 0);
    test_write_pattern_file(original, 10 * MIB, 13);

    const char *put[] = {"put", "big.bin", NULL};
    if (filecli(r, r->cli_dir, files.ca_cert, "127.0.0.1", put) != 0)
        fail_msg("put: %s", file_text(r->cli_dir, "client.err"));
    assert_true(test_files_equal(original, stored));

    /* By name this time: "localhost" is checked against the SAN too. */
    const char *get[] = {"get", "big.bin", "list", NULL};
    if (filecli(r, back_dir, files.ca_cert, "localhost", get) != 0)
        fail_msg("get: %s", file_text(back_dir, "client.err"));
    assert_true(test_files_equal(original, back));
    assert_non_null(
        strstr(file_text(back_dir, "client.out"), "    10485760  big.bin"));
}

/* A client that trusts another CA refuses the server (exit status 1,
 * "certificate verify failed"), and the server, which saw the refusal as
 * a failed handshake, goes on serving. */
static void test_filecli_refuses_a_server_its_ca_did_not_sign(void **state)
{
    run *r = *state;
    fileserver_start(r, files.cert, files.key, NULL);
    const char *list[] = {"list", NULL};
    assert_int_equal(
        filecli(r, r->cli_dir, stranger.ca_cert, "127.0.0.1", list), 1);
    const char *err = file_text(r->cli_dir, "client.err");
    if (strstr(err, "certificate verify failed") == NULL)
        fail_msg("unexpected error: %s", err);
    assert_true(server_log_has(r, "TLS handshake failed", 10.0));
    assert_true(server_running(r));
    assert_int_equal(filecli(r, r->cli_dir, files.ca_cert, "127.0.0.1", list),
                     0);
}

/* The certificate must name the host: one for other.test, from the right
 * CA, is refused when the client asked for 127.0.0.1 or localhost. */
static void test_filecli_refuses_a_certificate_for_another_name(void **state)
{
    run *r = *state;
    fileserver_start(r, files.other_cert, files.other_key, NULL);
    const char *list[] = {"list", NULL};
    assert_int_equal(filecli(r, r->cli_dir, files.ca_cert, "127.0.0.1", list),
                     1);
    assert_non_null(strstr(file_text(r->cli_dir, "client.err"),
                           "certificate verify failed"));
    assert_int_equal(filecli(r, r->cli_dir, files.ca_cert, "localhost", list),
                     1);
    assert_non_null(strstr(file_text(r->cli_dir, "client.err"),
                           "certificate verify failed"));
}

/* A plaintext client on the TLS port: its command gets no file server
 * answer, its connection is closed within the handshake timeout, the
 * server logs it and goes on serving TLS. sockserv-filecli without --tls
 * exits 1. */
static void test_plaintext_client_on_the_tls_port_gets_nothing(void **state)
{
    run *r = *state;
    fileserver_start(r, files.cert, files.key, NULL);
    plaintext_request_gets_nothing(r, r->port, "LIST\n", "200");

    const char *cmd[] = {"list", NULL};
    assert_int_equal(filecli(r, r->cli_dir, NULL, "127.0.0.1", cmd), 1);
    /* and says what to do about it */
    const char *err = file_text(r->cli_dir, "client.err");
    if (strstr(err, "if it serves TLS, add --tls") == NULL)
        fail_msg("no hint in: %s", err);
    assert_int_equal(filecli(r, r->cli_dir, files.ca_cert, "127.0.0.1", cmd),
                     0);
}

/* --tls-password-file opens an encrypted --tls-key. */
static void test_encrypted_key_with_password_file(void **state)
{
    run *r = *state;
    fileserver_start(r, files.cert, files.encrypted_key, files.password_file);
    char hello[160];
    snprintf(hello, sizeof hello, "%s/hello.txt", r->cli_dir);
    FILE *f = fopen(hello, "w");
    assert_non_null(f);
    fputs("hello over TLS\n", f);
    assert_int_equal(fclose(f), 0);
    const char *put[] = {"put", "hello.txt", NULL};
    assert_int_equal(filecli(r, r->cli_dir, files.ca_cert, "127.0.0.1", put),
                     0);
    assert_string_equal(file_text(r->srv_dir, "hello.txt"), "hello over TLS\n");
}

/* SIGHUP reads the certificate files again (a renewal), without a
 * restart, and the new certificate serves the next connection — in fork
 * mode too, where the children are made after the reload. A certificate
 * for before.test is replaced by one for localhost: a client asking for
 * localhost is refused before and served after. */
static void test_sighup_reloads_the_certificate(void **state)
{
    run *r = *state;
    char cert[128], key[128];
    snprintf(cert, sizeof cert, "%s/server.pem", r->dir);
    snprintf(key, sizeof key, "%s/server.key", r->dir);
    assert_int_equal(
        test_tls_write_server_cert(&files, "before.test", cert, key), 0);
    fileserver_start(r, cert, key, NULL);
    const char *list[] = {"list", NULL};
    assert_int_equal(filecli(r, r->cli_dir, files.ca_cert, "localhost", list),
                     1);
    assert_non_null(strstr(file_text(r->cli_dir, "client.err"),
                           "certificate verify failed"));

    assert_int_equal(test_tls_write_server_cert(&files, "localhost", cert, key),
                     0);
    assert_int_equal(kill(r->server, SIGHUP), 0);
    assert_true(server_log_has(r, "SIGHUP: TLS certificate reloaded", 10.0));
    if (filecli(r, r->cli_dir, files.ca_cert, "localhost", list) != 0)
        fail_msg("after the reload: %s", file_text(r->cli_dir, "client.err"));
}

/* ---- the chat room ---------------------------------------------------------
 */

static void chat_start(run *r)
{
    const char *argv[] = {"sockserv-chat", "--mode",     r->mode,
                          "--no-admin",    "--tls-cert", files.cert,
                          "--tls-key",     files.key,    NULL};
    server_start(r, SOCKSERV_CHAT_PATH, argv);
}

typedef struct member {
    pid_t pid;
    int in, out, err;
} member;

static member chatcli(run *r, const char *name)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[] = {
        "sockserv-chatcli", "--tls", "--cafile", files.ca_cert,
        "localhost",        port,    name,       NULL};
    member m;
    m.pid = client_start(r, SOCKSERV_CHATCLI_PATH, argv, r->cli_dir, &m.in,
                         &m.out, &m.err);
    return m;
}

/* The next line the client prints on fd; fails after 20 s. */
static void member_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    double deadline = test_now() + 20.0;
    while (n + 1 < size) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)((deadline - test_now()) * 1000);
        if (left <= 0 || poll(&pfd, 1, left) != 1)
            fail_msg("no line from sockserv-chatcli");
        ssize_t k = read(fd, line + n, 1);
        if (k <= 0)
            fail_msg("sockserv-chatcli closed its output (%s)", line);
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
}

static void member_expect(int fd, const char *expected)
{
    char line[1024];
    member_line(fd, line, sizeof line);
    if (strstr(line, expected) == NULL)
        fail_msg("expected \"%s\", got \"%s\"", expected, line);
}

/* Ctrl-D: the client says QUIT, waits for BYE and exits 0. */
static void member_leaves(run *r, member *m)
{
    close(m->in);
    assert_int_equal(client_status(r, m->pid), 0);
    close(m->out);
    close(m->err);
}

/* Two members over TLS see each other join, talk and leave. */
static void test_chat_members_over_tls_see_each_other(void **state)
{
    run *r = *state;
    chat_start(r);
    member alice = chatcli(r, "alice");
    member_expect(alice.err, "joined as alice");
    member bob = chatcli(r, "bob");
    member_expect(bob.err, "joined as bob");
    member_expect(alice.out, "* bob joined");

    assert_int_equal(write(bob.in, "hello alice\n", 12), 12);
    member_expect(alice.out, "<bob> hello alice");
    assert_int_equal(write(alice.in, "hi bob\n", 7), 7);
    member_expect(bob.out, "<alice> hi bob");

    member_leaves(r, &bob);
    member_expect(alice.out, "* bob left (quit)");
    member_leaves(r, &alice);
    assert_true(server_log_has(r, "serving TLS on", 1.0));
    assert_true(server_log_has(r, "alice left (quit)", 10.0));
}

/* sockserv-chatcli without --tls on the TLS port: refused at JOIN, exit
 * status 1, and a hint that names --tls. */
static void test_chatcli_without_tls_on_the_tls_port_says_add_tls(void **state)
{
    run *r = *state;
    chat_start(r);
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[] = {"sockserv-chatcli", "127.0.0.1", port, "mallory",
                          NULL};
    pid_t pid = client_start(r, SOCKSERV_CHATCLI_PATH, argv, r->cli_dir, NULL,
                             NULL, NULL);
    assert_int_equal(client_status(r, pid), 1);
    const char *err = file_text(r->cli_dir, "client.err");
    if (strstr(err, "if it serves TLS, add --tls") == NULL)
        fail_msg("no hint in: %s", err);
    assert_true(server_running(r));
}

/* A burst of long lines reaches the other member whole: the server may
 * send many lines in one TLS record, more than the client's buffer takes
 * at once, and the rest waits inside OpenSSL, where poll() on the socket
 * does not see it; every line must still be printed without more input. */
static void test_chat_burst_of_long_lines_arrives_whole(void **state)
{
    run *r = *state;
    chat_start(r);
    member alice = chatcli(r, "alice");
    member_expect(alice.err, "joined as alice");
    member bob = chatcli(r, "bob");
    member_expect(bob.err, "joined as bob");
    member_expect(alice.out, "* bob joined");

    enum { LINES = 40, LENGTH = 900 };
    static char burst[LINES * (LENGTH + 1)];
    char *p = burst;
    for (int i = 0; i < LINES; i++) {
        p += sprintf(p, "%03d ", i);
        memset(p, 'a' + i % 26, LENGTH - 4);
        p += LENGTH - 4;
        *p++ = '\n';
    }
    assert_int_equal(write(bob.in, burst, (size_t)(p - burst)), p - burst);
    for (int i = 0; i < LINES; i++) {
        char line[2048], expected[16];
        member_line(alice.out, line, sizeof line);
        snprintf(expected, sizeof expected, "<bob> %03d ", i);
        if (strncmp(line, expected, strlen(expected)) != 0 ||
            strlen(line) != 6 + LENGTH)
            fail_msg("line %d: \"%.40s...\" (%zu bytes)", i, line,
                     strlen(line));
    }
    member_leaves(r, &bob);
    member_expect(alice.out, "* bob left (quit)");
    member_leaves(r, &alice);
}

/* ---- the chat room's web door over TLS (--web with --tls-cert) -------------
 */

/* sockserv-chat --web 0 --tls-cert: both doors over TLS; the web door's
 * port is the port file's second line. */
static int chat_web_start(run *r)
{
    const char *argv[] = {
        "sockserv-chat", "--mode",   r->mode,     "--no-admin", "--web", "0",
        "--tls-cert",    files.cert, "--tls-key", files.key,    NULL};
    server_start(r, SOCKSERV_CHAT_PATH, argv);
    int tcp = 0, web = 0;
    double deadline = test_now() + 15.0;
    do { /* the second line may come a moment after the first */
        FILE *f = fopen(r->port_file, "r");
        if (f != NULL) {
            int ok = fscanf(f, "%d %d", &tcp, &web) == 2;
            fclose(f);
            if (ok && web > 0)
                return web;
        }
        test_sleep_ms(5);
    } while (test_now() < deadline);
    fail_msg("no web port in %s", r->port_file);
    return -1; /* not reached */
}

/* A TLS connection to the web door that verifies the server against the
 * test CA, for localhost. */
static void tls_open(test_tls_client *c, SSL_CTX *ctx, int port)
{
    if (test_tls_connect(c, ctx, connect_loopback(port), "localhost") != 0)
        fail_msg("TLS handshake with the web door failed");
}

/* Read into buf until the head's blank line; returns the head's length
 * (what follows it stays in buf after it), 0 if the stream ended first. */
static size_t tls_read_head(test_tls_client *c, char *buf, size_t size,
                            size_t *got)
{
    *got = 0;
    for (;;) {
        buf[*got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL)
            return (size_t)(end + 4 - buf);
        assert_true(*got + 1 < size);
        int n = SSL_read(c->ssl, buf + *got, (int)(size - *got - 1));
        if (n <= 0)
            return 0;
        *got += (size_t)n;
    }
}

/* A web member over wss://: TLS, the upgrade, and the frames' bytes not
 * yet taken. */
typedef struct wss_member {
    test_tls_client tls;
    unsigned char raw[1 << 16];
    size_t raw_len;
} wss_member;

static void wss_open(wss_member *m, SSL_CTX *ctx, int port)
{
    m->raw_len = 0;
    tls_open(&m->tls, ctx, port);
    char host[32], origin[64], request[1024], head[4096];
    snprintf(host, sizeof host, "localhost:%d", port);
    snprintf(origin, sizeof origin, "https://%s", host); /* the page's own */
    test_ws_request(request, sizeof request, host, origin);
    test_tls_send_all(&m->tls, request, strlen(request));
    size_t got, head_len = tls_read_head(&m->tls, head, sizeof head, &got);
    if (head_len == 0 || strncmp(head, "HTTP/1.1 101", 12) != 0)
        fail_msg("no upgrade over TLS: %s", head);
    assert_non_null(strstr(head, "Sec-WebSocket-Accept: " TEST_WS_ACCEPT));
    m->raw_len = got - head_len;
    memcpy(m->raw, head + head_len, m->raw_len);
}

/* A line as one text message. */
static void wss_send(wss_member *m, const char *text)
{
    unsigned char frame[1024];
    size_t n =
        test_ws_client_frame(frame, sizeof frame, 0x1, text, strlen(text));
    test_tls_send_all(&m->tls, frame, n);
}

/* The next text message as a line; fails at a close frame, the end of
 * the stream or after 20 s. */
static void wss_line(wss_member *m, char *line, size_t size)
{
    for (;;) {
        int opcode;
        bool fin;
        uint64_t n;
        size_t header =
            test_ws_frame_header(m->raw, m->raw_len, &opcode, &fin, &n);
        if (header != 0 && m->raw_len >= header + n) {
            assert_true(opcode == 0x1 && fin); /* the room sends no other */
            assert_true(n < size);
            memcpy(line, m->raw + header, n);
            line[n] = '\0';
            m->raw_len -= header + n;
            memmove(m->raw, m->raw + header + n, m->raw_len);
            return;
        }
        assert_true(m->raw_len < sizeof m->raw);
        int k = SSL_read(m->tls.ssl, m->raw + m->raw_len,
                         (int)(sizeof m->raw - m->raw_len));
        if (k <= 0)
            fail_msg("the wss member's stream ended");
        m->raw_len += (size_t)k;
    }
}

static void wss_expect(wss_member *m, const char *expected)
{
    char line[1024];
    wss_line(m, line, sizeof line);
    assert_string_equal(line, expected);
}

/* https://localhost:PORT/ is the page: 200, text/html, over a
 * connection the client verified against the test CA. */
static void test_chat_web_page_over_https(void **state)
{
    run *r = *state;
    int port = chat_web_start(r);
    SSL_CTX *ctx = test_tls_client_ctx(files.ca_cert, NULL, NULL);
    test_tls_client c;
    tls_open(&c, ctx, port);
    assert_int_equal(SSL_get_verify_result(c.ssl), X509_V_OK);
    char request[128];
    snprintf(request, sizeof request,
             "GET / HTTP/1.1\r\nHost: localhost:%d\r\n"
             "Connection: close\r\n\r\n",
             port);
    test_tls_send_all(&c, request, strlen(request));
    static char reply[1 << 17];
    size_t got;
    test_tls_recv_to_close(&c, reply, sizeof reply - 1, &got);
    reply[got] = '\0';
    test_tls_close(&c);
    SSL_CTX_free(ctx);
    if (strncmp(reply, "HTTP/1.1 200", 12) != 0)
        fail_msg("not 200: %.300s", reply);
    assert_non_null(strstr(reply, "Content-Type: text/html"));
    assert_non_null(strstr(reply, "<html"));
}

/* A wss:// member and a sockserv-chatcli --tls member talk both ways:
 * each one's lines reach the other exactly once and in order. */
static void test_chat_wss_and_tls_members_talk_both_ways(void **state)
{
    run *r = *state;
    int port = chat_web_start(r);
    SSL_CTX *ctx = test_tls_client_ctx(files.ca_cert, NULL, NULL);
    static wss_member web;
    wss_open(&web, ctx, port);
    wss_send(&web, "JOIN webby");
    wss_expect(&web, "OK webby");
    member alice = chatcli(r, "alice");
    member_expect(alice.err, "joined as alice");
    wss_expect(&web, "JOINED alice");

    enum { LINES = 50 };
    char text[64], expected[128], line[1024];
    for (int i = 0; i < LINES; i++) { /* interleaved */
        snprintf(text, sizeof text, "MSG web %d", i);
        wss_send(&web, text);
        int n = snprintf(text, sizeof text, "cli %d\n", i);
        assert_int_equal(write(alice.in, text, (size_t)n), n);
    }
    wss_send(&web, "MSG web done");
    assert_int_equal(write(alice.in, "cli done\n", 9), 9);

    /* Each side: the other's lines, in order, then its "done"; nothing
     * lost, repeated or of its own (a repeat or an own line breaks the
     * sequence). */
    for (int i = 0; i <= LINES; i++) {
        wss_line(&web, line, sizeof line);
        if (i < LINES)
            snprintf(expected, sizeof expected, "MSG alice cli %d", i);
        else
            snprintf(expected, sizeof expected, "MSG alice cli done");
        assert_string_equal(line, expected);
    }
    for (int i = 0; i <= LINES; i++) {
        member_line(alice.out, line, sizeof line);
        if (i < LINES)
            snprintf(expected, sizeof expected, "<webby> web %d", i);
        else
            snprintf(expected, sizeof expected, "<webby> web done");
        if (strstr(line, expected) == NULL)
            fail_msg("expected \"%s\", got \"%s\"", expected, line);
    }
    member_leaves(r, &alice);
    wss_expect(&web, "LEFT alice quit");
    wss_send(&web, "QUIT");
    wss_expect(&web, "BYE");
    test_tls_close(&web.tls);
    SSL_CTX_free(ctx);
}

/* A plaintext WebSocket upgrade on the TLS web door gets no 101 (nothing,
 * or a TLS alert), its connection is closed, and the door goes on
 * serving wss:// members. */
static void test_chat_plaintext_websocket_on_the_tls_web_port(void **state)
{
    run *r = *state;
    int port = chat_web_start(r);
    char request[1024], host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    test_ws_request(request, sizeof request, host, NULL);
    plaintext_request_gets_nothing(r, port, request, "101");

    SSL_CTX *ctx = test_tls_client_ctx(files.ca_cert, NULL, NULL);
    static wss_member web;
    wss_open(&web, ctx, port);
    wss_send(&web, "JOIN webby");
    wss_expect(&web, "OK webby");
    wss_send(&web, "QUIT");
    wss_expect(&web, "BYE");
    test_tls_close(&web.tls);
    SSL_CTX_free(ctx);
}

#endif /* !PROGRAMS_TLS_DISABLED */

/* ---- usage errors ------------------------------------------------------- */

/* UDP has no stream for TLS: both programs refuse the mix. */
static void test_chat_udp_refuses_tls(void **state)
{
    (void)state;
    const char *chat[] = {
        SOCKSERV_CHAT_PATH, "--no-admin", "--udp", "--tls-cert",
        "cert.pem",         "0",          NULL};
    expect_usage_error(chat,
                       "argument --tls-cert: not allowed with argument --udp");
    const char *cli[] = {SOCKSERV_CHATCLI_PATH,
                         "--udp",
                         "--tls",
                         "127.0.0.1",
                         "8000",
                         "alice",
                         NULL};
    expect_usage_error(cli, "argument --tls: not allowed with argument --udp");
}

static void test_tls_option_mistakes_are_usage_errors(void **state)
{
    (void)state;
    const char *key_only[] = {SOCKSERV_FILESERVER_PATH, "--tls-key", "k.pem",
                              "0", NULL};
    expect_usage_error(key_only, "--tls-key requires --tls-cert to be set");
    const char *chat_key_only[] = {SOCKSERV_CHAT_PATH,
                                   "--no-admin",
                                   "--tls-password-file",
                                   "p.txt",
                                   "0",
                                   NULL};
    expect_usage_error(chat_key_only,
                       "--tls-password-file requires --tls-cert to be set");
    const char *cafile_only[] = {SOCKSERV_FILECLI_PATH,
                                 "--cafile",
                                 "ca.pem",
                                 "127.0.0.1",
                                 "8021",
                                 "list",
                                 NULL};
    expect_usage_error(cafile_only, "argument --cafile: needs --tls");
    const char *chat_cafile_only[] = {SOCKSERV_CHATCLI_PATH,
                                      "--cafile",
                                      "ca.pem",
                                      "127.0.0.1",
                                      "8000",
                                      "alice",
                                      NULL};
    expect_usage_error(chat_cafile_only, "argument --cafile: needs --tls");
}

#ifdef PROGRAMS_TLS_DISABLED
/* Without TLS in the build, each TLS option says so before anything
 * starts. */
static void test_without_tls_every_option_says_so(void **state)
{
    (void)state;
    const char *fileserver[] = {SOCKSERV_FILESERVER_PATH, "--tls-cert",
                                "cert.pem", "0", NULL};
    expect_usage_error(fileserver, "built without TLS");
    const char *chat[] = {SOCKSERV_CHAT_PATH, "--no-admin", "--tls-cert",
                          "cert.pem",         "0",          NULL};
    expect_usage_error(chat, "built without TLS");
    const char *filecli[] = {
        SOCKSERV_FILECLI_PATH, "--tls", "127.0.0.1", "8021", "list", NULL};
    expect_usage_error(filecli, "built without TLS");
    const char *chatcli[] = {
        SOCKSERV_CHATCLI_PATH, "--tls", "127.0.0.1", "8000", "alice", NULL};
    expect_usage_error(chatcli, "built without TLS");
}
#endif

#define TEST(fn, mode)                                                         \
    {                                                                          \
        mode ": " #fn, fn, setup, teardown, (void *)mode                       \
    }

int main(void)
{
    /* A client killed mid-write must not take the test with it. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest usage_tests[] = {
        cmocka_unit_test(test_chat_udp_refuses_tls),
        cmocka_unit_test(test_tls_option_mistakes_are_usage_errors),
#ifdef PROGRAMS_TLS_DISABLED
        cmocka_unit_test(test_without_tls_every_option_says_so),
#endif
    };
    int failed = cmocka_run_group_tests_name("usage", usage_tests, NULL, NULL);
#ifndef PROGRAMS_TLS_DISABLED
    const struct CMUnitTest tests[] = {
        TEST(test_fileserver_ten_mib_round_trip_over_tls, "fork"),
        TEST(test_fileserver_ten_mib_round_trip_over_tls, "thread"),
        TEST(test_fileserver_ten_mib_round_trip_over_tls, "pool"),
        TEST(test_fileserver_ten_mib_round_trip_over_tls, "coro"),
        TEST(test_fileserver_ten_mib_round_trip_over_tls, "sync"),
        TEST(test_filecli_refuses_a_server_its_ca_did_not_sign, "thread"),
        TEST(test_filecli_refuses_a_certificate_for_another_name, "coro"),
        TEST(test_plaintext_client_on_the_tls_port_gets_nothing, "fork"),
        TEST(test_plaintext_client_on_the_tls_port_gets_nothing, "coro"),
        TEST(test_encrypted_key_with_password_file, "pool"),
        TEST(test_sighup_reloads_the_certificate, "fork"),
        TEST(test_sighup_reloads_the_certificate, "coro"),
        TEST(test_chat_members_over_tls_see_each_other, "thread"),
        TEST(test_chat_members_over_tls_see_each_other, "coro"),
        TEST(test_chat_burst_of_long_lines_arrives_whole, "thread"),
        TEST(test_chat_burst_of_long_lines_arrives_whole, "coro"),
        TEST(test_chat_web_page_over_https, "thread"),
        TEST(test_chat_web_page_over_https, "coro"),
        TEST(test_chat_wss_and_tls_members_talk_both_ways, "thread"),
        TEST(test_chat_wss_and_tls_members_talk_both_ways, "coro"),
        TEST(test_chat_plaintext_websocket_on_the_tls_web_port, "thread"),
        TEST(test_chat_plaintext_websocket_on_the_tls_web_port, "coro"),
        TEST(test_chatcli_without_tls_on_the_tls_port_says_add_tls, "thread"),
    };
    failed += cmocka_run_group_tests_name(
        "programs over TLS", tests, make_certificates, remove_certificates);
#endif
    return failed;
}
