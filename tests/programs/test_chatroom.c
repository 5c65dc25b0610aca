/*
 * test_chatroom.c — end-to-end tests of the chat room example:
 * sockserv-chat (TCP under --mode thread and coro, UDP under sync) and
 * its client sockserv-chatcli.
 *
 * Each test starts the real server (fork + exec) on port 0 with
 * --port-file, its standard input a pipe the test writes admin lines to,
 * and talks to it over loopback with raw sockets speaking the protocol of
 * docs/chatroom.md, so every line is checked as sent. Several members are
 * connected at once: chat lines must reach every other member exactly
 * once and in each sender's order, names in use are refused, joins and
 * leaves announced, a vanished client dropped (TCP: when its connection
 * ends; UDP: after --silence), a slow reader dropped without holding up
 * its senders, a flooding member slowed down without anyone else being
 * held up, and SIGINT/SIGTERM end the server with status 0 after a BYE to
 * everyone. The client program is run with pipes for its standard
 * input and output. A teardown kills what a failed test left running, by
 * PID.
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
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these three first */
#include <stddef.h>
#include <cmocka.h>

#include "program_run.h"
#include "ws_frame.h"

#ifndef SOCKSERV_CHAT_PATH
#error "SOCKSERV_CHAT_PATH must name the sockserv-chat binary"
#endif
#ifndef SOCKSERV_CHATCLI_PATH
#error "SOCKSERV_CHATCLI_PATH must name the sockserv-chatcli binary"
#endif

/* ---- time and processes ------------------------------------------------ */

static void kill_and_reap(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- the server process -------------------------------------------------- */

typedef struct fixture {
    char mode[16]; /* "thread", "coro", or "udp" */
    bool udp;
    bool web;  /* "thread+web", "coro+web": with --web 0 */
    pid_t pid; /* 0 once reaped */
    int port;
    int web_port; /* the port file's second line, with --web */
    int admin_fd; /* the server's standard input; -1 once closed */
    char port_file[128];
    pid_t client_pid; /* a sockserv-chatcli the test runs, if any */
} fixture;

/* Start sockserv-chat in fx->mode with extra options (NULL-terminated). */
static void start_server(fixture *fx, ...)
{
    static int counter;
    snprintf(fx->port_file, sizeof fx->port_file,
             "/tmp/sockserv-chat-test-%d-%d", (int)getpid(), ++counter);
    unlink(fx->port_file);
    const char *argv[32];
    int argc = 0;
    argv[argc++] = "sockserv-chat";
    if (fx->udp) {
        argv[argc++] = "--udp";
    } else {
        argv[argc++] = "--mode";
        argv[argc++] = fx->mode;
    }
    if (fx->web) {
        argv[argc++] = "--web";
        argv[argc++] = "0";
    }
    argv[argc++] = "--port-file";
    argv[argc++] = fx->port_file;
    va_list ap;
    va_start(ap, fx);
    const char *extra;
    while ((extra = va_arg(ap, const char *)) != NULL && argc < 29)
        argv[argc++] = extra;
    va_end(ap);
    argv[argc++] = "0";
    argv[argc] = NULL;

    int admin[2];
    assert_int_equal(pipe2(admin, O_CLOEXEC), 0);
    fx->pid = fork();
    assert_true(fx->pid >= 0);
    if (fx->pid == 0) {
        dup2(admin[0], STDIN_FILENO);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO); /* the event log */
        execv(SOCKSERV_CHAT_PATH, (char **)argv);
        _exit(127);
    }
    close(admin[0]);
    fx->admin_fd = admin[1];
    /* --web: the web port on a second line. */
    int ports[2];
    int rc = test_wait_port_file(fx->port_file, &fx->pid, 10.0, ports,
                                 fx->web ? 2 : 1);
    if (rc == -ECHILD)
        fail_msg("sockserv-chat exited before listening");
    if (rc == 0) {
        fx->port = ports[0];
        fx->web_port = fx->web ? ports[1] : 0;
        return;
    }
    fail_msg("sockserv-chat did not write its port file");
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->mode, sizeof fx->mode, "%s", (const char *)*state);
    char *plus = strchr(fx->mode, '+');
    if (plus) { /* "coro+web" */
        fx->web = strcmp(plus, "+web") == 0;
        *plus = '\0';
    }
    fx->udp = strcmp(fx->mode, "udp") == 0;
    fx->admin_fd = -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    kill_and_reap(fx->client_pid);
    if (fx->pid > 0) {
        kill(fx->pid, SIGTERM);
        if (test_wait_exit(fx->pid, 10.0) == -1)
            kill_and_reap(fx->pid);
    }
    if (fx->admin_fd >= 0)
        close(fx->admin_fd);
    unlink(fx->port_file);
    free(fx);
    return 0;
}

/* Signal the server and check that it exits with status 0. */
static void stop_server_expecting_0(fixture *fx, int sig)
{
    kill(fx->pid, sig);
    int status = test_wait_exit(fx->pid, 15.0);
    assert_true(status >= 0);
    fx->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void admin_says(fixture *fx, const char *line)
{
    size_t len = strlen(line);
    assert_int_equal(write(fx->admin_fd, line, len), (ssize_t)len);
}

/* ---- a protocol client ------------------------------------------------- */

typedef struct client {
    int fd;
    bool udp;
    bool ws; /* a web member: a WebSocket, one line per text message */
    char buf[1 << 16];
    size_t len;
    /* ws: bytes received, not yet whole frames; the peer's close code */
    unsigned char raw[1 << 16];
    size_t raw_len;
    int close_code;
} client;

static client *client_open(const fixture *fx, int rcvbuf)
{
    client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->udp = fx->udp;
    c->fd =
        socket(AF_INET, (c->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)fx->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return c;
}

static void client_close(client *c)
{
    close(c->fd);
    free(c);
}

static void ws_send_frame(client *c, int opcode, const void *payload, size_t n);

/* TCP: bytes as given. UDP: one datagram per call. WebSocket: a text
 * message per line, without its '\n' (a last part without one, too). */
static void client_send(client *c, const char *text)
{
    size_t len = strlen(text);
    if (!c->ws) {
        assert_int_equal(send(c->fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
        return;
    }
    while (*text) {
        const char *newline = strchr(text, '\n');
        size_t n = newline ? (size_t)(newline - text) : strlen(text);
        ws_send_frame(c, 0x1, text, n);
        text += n + (newline != NULL);
    }
}

static void client_sendf(client *c, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    client_send(c, text);
}

static bool ws_receive(client *c);

/* More input into c->buf: false at the end of the stream. A UDP datagram
 * becomes a line; empty ones (acknowledgements) are skipped. A WebSocket
 * text message becomes a line; a close frame is the end. */
static bool client_receive(client *c)
{
    if (c->ws)
        return ws_receive(c);
    for (;;) {
        assert_true(c->len + 2 < sizeof c->buf);
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail_msg("recv: %s", strerror(errno)); /* the 10 s timeout */
        if (c->udp && n == 0)
            continue;
        c->len += (size_t)n;
        if (c->udp && c->buf[c->len - 1] != '\n')
            c->buf[c->len++] = '\n';
        return n > 0;
    }
}

/* A complete line already received, without its newline. */
static bool client_buffered_line(client *c, char *line, size_t size)
{
    char *newline = memchr(c->buf, '\n', c->len);
    if (!newline)
        return false;
    size_t len = (size_t)(newline - c->buf);
    assert_true(len < size);
    memcpy(line, c->buf, len);
    line[len] = '\0';
    c->len -= len + 1;
    memmove(c->buf, newline + 1, c->len);
    return true;
}

/* The next line; fails the test at the end of the stream or after 10 s. */
static void client_line(client *c, char *line, size_t size)
{
    while (!client_buffered_line(c, line, size))
        if (!client_receive(c))
            fail_msg("the server closed the connection");
}

static void client_expect(client *c, const char *expected)
{
    char line[2048];
    client_line(c, line, sizeof line);
    assert_string_equal(line, expected);
}

/* True when something (even an empty datagram) arrives within ms. */
static bool readable_within(client *c, int ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    return poll(&pfd, 1, ms) == 1;
}

/* Read until the server closes: true if it does within 10 s. */
static bool client_reaches_eof(client *c)
{
    char line[2048];
    for (;;) {
        while (client_buffered_line(c, line, sizeof line))
            ;
        if (!client_receive(c))
            return true;
    }
}

/* JOIN and the OK (UDP: "OK name SILENCE"). */
static void client_join(client *c, const char *name)
{
    client_sendf(c, "JOIN %s\n", name);
    char line[256], expected[128];
    client_line(c, line, sizeof line);
    snprintf(expected, sizeof expected, "OK %s", name);
    if (c->udp)
        assert_true(strncmp(line, expected, strlen(expected)) == 0 &&
                    line[strlen(expected)] == ' ');
    else
        assert_string_equal(line, expected);
}

/* n members joined in order; each hears of the ones after it. */
static void join_all(client **members, int n, const char **names)
{
    char expected[128];
    for (int i = 0; i < n; i++) {
        client_join(members[i], names[i]);
        snprintf(expected, sizeof expected, "JOINED %s", names[i]);
        for (int j = 0; j < i; j++)
            client_expect(members[j], expected);
    }
}

/* ---- a raw WebSocket client (RFC 6455), for web members ------------------ */

/* What the page at / does in a browser, by hand: the upgrade request, then
 * masked frames out and unmasked frames in. Small on purpose — it speaks
 * just enough to be a chat member and to see what the server sends. */

static int connect_port(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

/* Send request (whole) and read the response head into head; whatever
 * followed it goes into *rest (rest_size bytes at most). Returns the
 * status code, or -1 when the server closed first. */
static int http_exchange(int fd, const char *request, char *head,
                         size_t head_size, unsigned char *rest,
                         size_t *rest_len)
{
    size_t len = strlen(request);
    assert_int_equal(send(fd, request, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        assert_true(got + 1 < head_size);
        ssize_t n = recv(fd, head + got, head_size - got - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
        head[got] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end + 4 - head);
    if (rest) {
        *rest_len = got - head_len;
        memcpy(rest, head + head_len, *rest_len);
    }
    head[head_len] = '\0';
    int status = 0;
    sscanf(head, "HTTP/1.1 %d", &status);
    return status;
}

/* The upgrade request for /ws, with an Origin header unless NULL. */
static void ws_request(char *buf, size_t size, int port, const char *origin)
{
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    test_ws_request(buf, size, host, origin);
}

/* A web member's connection, upgraded, from the page's own origin; rcvbuf
 * > 0 sets a small receive buffer first. */
static client *client_open_web_rcvbuf(const fixture *fx, int rcvbuf)
{
    client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->ws = true;
    c->fd = connect_port(fx->web_port, rcvbuf);
    char origin[64], request[1024], head[4096];
    snprintf(origin, sizeof origin, "http://127.0.0.1:%d", fx->web_port);
    ws_request(request, sizeof request, fx->web_port, origin);
    int status =
        http_exchange(c->fd, request, head, sizeof head, c->raw, &c->raw_len);
    if (status != 101)
        fail_msg("no upgrade: %s", head);
    assert_non_null(
        strstr(head, "Sec-WebSocket-Accept: " TEST_WS_ACCEPT "\r\n"));
    return c;
}

static client *client_open_web(const fixture *fx)
{
    return client_open_web_rcvbuf(fx, 0);
}

/* One client frame: FIN, opcode, masked as a client's must be. */
static void ws_send_frame(client *c, int opcode, const void *payload, size_t n)
{
    unsigned char frame[16 + 4096];
    assert_true(n <= 4096);
    size_t len = test_ws_client_frame(frame, sizeof frame, opcode, payload, n);
    assert_int_equal(send(c->fd, frame, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* A close frame with a code, as a browser closing its tab sends. */
static void ws_send_close(client *c, int code)
{
    unsigned char body[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    ws_send_frame(c, 0x8, body, 2);
}

/* One whole server frame from c->raw into c->buf (a text message becomes a
 * line); pings answered. Returns 1 for a line, -1 for a close frame, 2
 * for another frame taken, 0 when no whole frame is there yet. */
static int ws_take_frame(client *c)
{
    int opcode;
    bool fin;
    uint64_t n;
    size_t header = test_ws_frame_header(c->raw, c->raw_len, &opcode, &fin, &n);
    if (header == 0)
        return 0;
    assert_true(n < sizeof c->raw - 16);
    if (c->raw_len < header + n)
        return 0;
    int result = 2;
    const unsigned char *payload = c->raw + header;
    if (opcode == 0x1 || opcode == 0x0) { /* text, or its continuation */
        assert_true(c->len + n + 2 < sizeof c->buf);
        memcpy(c->buf + c->len, payload, n);
        c->len += n;
        if (fin) {
            c->buf[c->len++] = '\n';
            result = 1;
        }
    } else if (opcode == 0x8) {
        c->close_code = n >= 2 ? payload[0] << 8 | payload[1] : 1005;
        result = -1;
    } else if (opcode == 0x9) {
        ws_send_frame(c, 0xA, payload, n); /* pong */
    } else {
        assert_int_equal(opcode, 0xA); /* nothing else is expected */
    }
    c->raw_len -= header + n;
    memmove(c->raw, c->raw + header + n, c->raw_len);
    return result;
}

/* More lines into c->buf: false at a close frame or the end of the
 * stream. */
static bool ws_receive(client *c)
{
    for (;;) {
        int r;
        while ((r = ws_take_frame(c)) == 2)
            ;
        if (r == 1)
            return true;
        if (r == -1)
            return false;
        ssize_t n =
            recv(c->fd, c->raw + c->raw_len, sizeof c->raw - c->raw_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail_msg("recv: %s", strerror(errno)); /* the 10 s timeout */
        if (n == 0)
            return false;
        c->raw_len += (size_t)n;
    }
}

/* ---- both rooms ------------------------------------------------------------
 */

#define MEMBERS 4
#define TCP_MESSAGES 100
#define UDP_MESSAGES 30 /* datagrams wait in socket buffers: keep it small */

/* Every member sends its numbered lines, interleaved with the others;
 * every member must receive each other member's lines exactly once, in
 * order, and none of its own. "MSG done" ends each sender's series. */
static void test_messages_reach_every_other_member_once_in_order(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    int members = fx->udp ? 3 : MEMBERS;
    int messages = fx->udp ? UDP_MESSAGES : TCP_MESSAGES;
    const char *names[MEMBERS] = {"m0", "m1", "m2", "m3"};
    client *c[MEMBERS];
    for (int i = 0; i < members; i++) /* with --web: every other by web */
        c[i] = fx->web && i % 2 ? client_open_web(fx) : client_open(fx, 0);
    join_all(c, members, names);

    /* TCP: ten lines per write, so one read often holds several. */
    int chunk = fx->udp ? 1 : 10;
    for (int m = 0; m < messages; m += chunk) {
        for (int i = 0; i < members; i++) {
            char text[1024] = "";
            for (int k = m; k < m + chunk && k < messages; k++)
                snprintf(text + strlen(text), sizeof text - strlen(text),
                         "MSG %d\n", k);
            client_send(c[i], text);
        }
    }
    for (int i = 0; i < members; i++)
        client_send(c[i], "MSG done\n");

    for (int i = 0; i < members; i++) {
        int next[MEMBERS] = {0};
        int done = 0;
        while (done < members - 1) {
            char line[256], from[64], text[64];
            client_line(c[i], line, sizeof line);
            assert_int_equal(sscanf(line, "MSG %63s %63s", from, text), 2);
            int sender = from[1] - '0';
            assert_true(sender >= 0 && sender < members && sender != i);
            assert_true(next[sender] <= messages); /* nothing after done */
            if (strcmp(text, "done") == 0) {
                assert_int_equal(next[sender], messages); /* none lost */
                next[sender]++;
                done++;
            } else {
                if (atoi(text) != next[sender])
                    fail_msg("member %d: from %d: %s, expected %d", i, sender,
                             line, next[sender]);
                next[sender]++;
            }
        }
    }
    /* Nothing more for anyone: QUIT brings BYE, after the LEFT lines of
     * those who quit before. */
    char expected[128];
    for (int i = 0; i < members; i++) {
        client_send(c[i], "QUIT\n");
        client_expect(c[i], "BYE");
        snprintf(expected, sizeof expected, "LEFT %s quit", names[i]);
        for (int j = i + 1; j < members; j++)
            client_expect(c[j], expected);
    }
    for (int i = 0; i < members; i++)
        client_close(c[i]);
}

/* A name in use is refused, the client may try another; names with
 * spaces or none at all are refused; nothing but JOIN (or QUIT) is
 * accepted before joining. A name is free again once its member left. */
static void test_names_in_use_and_bad_names_are_refused(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *alice = client_open(fx, 0);
    client *other = client_open(fx, 0);
    client_join(alice, "alice");
    client_send(other, "MSG hello?\n");
    client_expect(other, "ERR join first");
    client_send(other, "NAMES\n");
    client_expect(other, "ERR join first");
    client_send(other, "JOIN alice\n");
    client_expect(other, "ERR name taken");
    client_send(other, "JOIN \n");
    client_expect(other, "ERR bad name");
    client_send(other, "JOIN a\tb\n");
    client_expect(other, "ERR bad name");
    client_send(other, "JOIN 012345678901234567890123456789012\n"); /* 33 */
    client_expect(other, "ERR bad name");
    client_join(other, "bob");
    client_expect(alice, "JOINED bob");
    client_send(other, "JOIN carol\n");
    client_expect(other, "ERR already joined");
    if (!fx->udp) { /* NAMES: every member, in order of joining */
        client_send(other, "NAMES\n");
        client_expect(other, "NAMES alice bob");
    }
    client_send(alice, "QUIT\n");
    client_expect(alice, "BYE");
    client_expect(other, "LEFT alice quit");
    client_close(alice);
    client *again = client_open(fx, 0);
    client_join(again, "alice");
    client_expect(other, "JOINED alice");
    client_close(again);
    client_close(other);
}

/* Admin lines typed on the server's standard input reach every member,
 * and the end of that input does not stop the server. A chat line split
 * over two writes is still one line. */
static void
test_admin_lines_reach_everyone_and_stdin_eof_keeps_serving(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *alice = client_open(fx, 0);
    client *bob = client_open(fx, 0);
    const char *names[] = {"alice", "bob"};
    client *both[] = {alice, bob};
    join_all(both, 2, names);
    admin_says(fx, "the room closes at nine\n");
    client_expect(alice, "ADMIN the room closes at nine");
    client_expect(bob, "ADMIN the room closes at nine");

    close(fx->admin_fd);
    fx->admin_fd = -1;
    test_sleep_ms(100);
    assert_int_equal(waitpid(fx->pid, NULL, WNOHANG), 0); /* still running */
    client *carol = client_open(fx, 0);
    client_join(carol, "carol");
    client_expect(alice, "JOINED carol");
    client_expect(bob, "JOINED carol");
    if (!fx->udp) {
        client_send(alice, "MSG sp");
        test_sleep_ms(50);
        client_send(alice, "lit\n");
    } else {
        client_send(alice, "MSG split");
    }
    client_expect(bob, "MSG alice split");
    client_expect(carol, "MSG alice split");
    client_close(alice);
    client_close(bob);
    client_close(carol);
}

/* SIGINT (TCP) or SIGTERM (UDP): every member hears "BYE shutdown" and
 * the server exits with status 0 (with --web, bob is a web member). */
static void test_signal_says_bye_to_members_and_exits_0(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *alice = client_open(fx, 0);
    client *bob = fx->web ? client_open_web(fx) : client_open(fx, 0);
    const char *names[] = {"alice", "bob"};
    client *both[] = {alice, bob};
    join_all(both, 2, names);
    stop_server_expecting_0(fx, fx->udp ? SIGTERM : SIGINT);
    client_expect(alice, "BYE shutdown");
    client_expect(bob, "BYE shutdown");
    if (!fx->udp) {
        assert_true(client_reaches_eof(alice));
        assert_true(client_reaches_eof(bob));
    }
    client_close(alice);
    client_close(bob);
}

/* ---- TCP only -------------------------------------------------------------
 */

/* A client that closes its connection without QUIT — or whose connection
 * is reset — is dropped at once, announced as "gone", and its name is free
 * again. */
static void test_tcp_vanished_client_is_dropped_at_once(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *alice = client_open(fx, 0);
    client *bob = client_open(fx, 0);
    client *carol = client_open(fx, 0);
    const char *names[] = {"alice", "bob", "carol"};
    client *all[] = {alice, bob, carol};
    join_all(all, 3, names);

    double start = test_now();
    client_close(bob); /* a FIN, no QUIT */
    client_expect(alice, "LEFT bob gone");
    client_expect(carol, "LEFT bob gone");
    assert_true(test_now() - start < 5.0);

    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    setsockopt(carol->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    client_close(carol); /* an RST */
    client_expect(alice, "LEFT carol gone");

    client *bob2 = client_open(fx, 0);
    client_join(bob2, "bob");
    client_expect(alice, "JOINED bob");
    client_close(bob2);
    client_close(alice);
}

/* The slow-reader run both doors share: slow has joined the room with a
 * small receive window; a watcher and a sender join, and the sender sends
 * 900-byte lines in steps of 8, each step read back by the watcher before
 * the next, so the watcher's own outbox never holds more than 8. The room
 * must drop slow ("LEFT slow slow") while the sender goes on. Then slow,
 * once it reads, finds its lines in order and "ERR too slow"; what ends
 * the connection after that is the caller's to check. Closes the
 * watcher and the sender. */
static void slow_reader_run(fixture *fx, client *slow)
{
    client *watcher = client_open(fx, 0);
    client *sender = client_open(fx, 0);
    const char *names[] = {"slow", "watcher", "sender"};
    client *all[] = {slow, watcher, sender};
    join_all(all, 3, names);

    char padding[901];
    memset(padding, 'x', 900);
    padding[900] = '\0';
    bool dropped = false;
    int sent = 0;
    /* In steps of 8 lines, each read back by the watcher before the next,
     * so the watcher's own outbox never holds more than 8. */
    while (!dropped && sent < 4000) {
        char text[8 * 1000] = "";
        for (int k = 0; k < 8; k++, sent++)
            snprintf(text + strlen(text), sizeof text - strlen(text),
                     "MSG %d %s\n", sent, padding);
        client_send(sender, text);
        for (int k = sent - 8; k < sent;) {
            char line[2048], expected[2048];
            client_line(watcher, line, sizeof line);
            if (strcmp(line, "LEFT slow slow") == 0) {
                dropped = true;
                continue;
            }
            snprintf(expected, sizeof expected, "MSG sender %d %s", k++,
                     padding);
            assert_string_equal(line, expected);
        }
    }
    assert_true(dropped);
    client_send(sender, "MSG done\n");
    client_expect(watcher, "MSG sender done");

    /* The slow client: lines in order, then the reason, then the end. */
    char line[2048];
    int next = 0;
    for (;;) {
        client_line(slow, line, sizeof line);
        int k;
        if (sscanf(line, "MSG sender %d", &k) != 1)
            break;
        assert_int_equal(k, next++);
    }
    assert_string_equal(line, "ERR too slow");
    assert_true(next > 0 && next < sent);
    client_close(watcher);
    client_close(sender);
}

/* A member that never reads fills its socket, then its outbox (--outbox
 * 32768, about 34 of these lines; no flood control): it is dropped ("LEFT slow
 * slow") while the sender goes on sending at full speed, and every other member
 * still gets every line in order. The slow client, once it reads, finds its
 * lines and then "ERR too slow", and the connection closes. */
static void
test_tcp_slow_reader_is_dropped_without_blocking_senders(void **state)
{
    fixture *fx = *state;
    start_server(fx, "--outbox", "32768", "--flood-limit", "0", NULL);
    client *slow = client_open(fx, 2048); /* small window: fills early */
    slow_reader_run(fx, slow);
    assert_true(client_reaches_eof(slow));
    client_close(slow);
}

/* --flood-limit 40: 80 lines sent at once reach the others complete and
 * in order, but the second 40 only as the allowance grows back (about a
 * second) — while the flooding member still receives what others say. */
static void test_tcp_flood_control_slows_only_the_flooder(void **state)
{
    fixture *fx = *state;
    start_server(fx, "--flood-limit", "40", NULL);
    client *flooder = client_open(fx, 0);
    client *watcher = client_open(fx, 0);
    const char *names[] = {"flooder", "watcher"};
    client *both[] = {flooder, watcher};
    join_all(both, 2, names);

    char text[80 * 8] = "";
    for (int k = 0; k < 80; k++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "MSG %d\n",
                 k);
    double start = test_now();
    client_send(flooder, text);
    char line[128], expected[128];
    for (int k = 0; k < 40; k++) { /* the burst */
        snprintf(expected, sizeof expected, "MSG flooder %d", k);
        client_expect(watcher, expected);
    }
    client_send(watcher, "MSG slow down");
    client_send(watcher, "\n");
    client_expect(flooder, "MSG watcher slow down");
    double answered = test_now() - start;
    for (int k = 40; k < 80; k++) {
        client_line(watcher, line, sizeof line);
        snprintf(expected, sizeof expected, "MSG flooder %d", k);
        assert_string_equal(line, expected);
    }
    double all = test_now() - start;
    assert_true(all >= 0.5);     /* 40 lines at 40 per second: about 1 s */
    assert_true(answered < all); /* heard the watcher while held back */
    client_close(flooder);
    client_close(watcher);
}

/* ---- UDP only --------------------------------------------------------- */

/* A datagram's JOIN may be retried (its OK was lost): the same name from
 * the same address is OK again, another name is refused, and PING or MSG
 * from an address that has not joined is told to join. */
static void test_udp_join_is_idempotent_and_strangers_must_join(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *alice = client_open(fx, 0);
    client *stranger = client_open(fx, 0);
    client_join(alice, "alice");
    client_join(alice, "alice"); /* a retry */
    client_send(alice, "JOIN alicia\n");
    client_expect(alice, "ERR already joined");
    client_send(stranger, "PING\n");
    client_expect(stranger, "ERR join first");
    client_send(stranger, "MSG hi\n");
    client_expect(stranger, "ERR join first");
    client_send(stranger, "JOIN alice\n");
    client_expect(stranger, "ERR name taken");
    /* The retry announced nobody twice: the next line alice sees is the
     * stranger joining under a free name. */
    client_join(stranger, "bob");
    client_expect(alice, "JOINED bob");
    client_close(alice);
    client_close(stranger);
}

/* --silence 1: a member that sends nothing is dropped after about a
 * second ("LEFT bob timeout" to the others, "BYE timeout" to it), while
 * one that pings stays; the dropped one is told to join when it speaks. */
static void test_udp_silent_member_is_dropped_after_silence(void **state)
{
    fixture *fx = *state;
    start_server(fx, "--silence", "1", NULL);
    client *alice = client_open(fx, 0);
    client *bob = client_open(fx, 0);
    const char *names[] = {"alice", "bob"};
    client *both[] = {alice, bob};
    join_all(both, 2, names);
    double joined = test_now();

    /* Alice pings every 200 ms (each answered by an empty datagram) and
     * waits for news in between. */
    char line[256] = "";
    double next_ping = 0;
    while (line[0] == '\0' && test_now() - joined < 8.0) {
        if (test_now() >= next_ping) {
            client_send(alice, "PING\n");
            next_ping = test_now() + 0.2;
        }
        if (readable_within(alice, 20)) {
            ssize_t n = recv(alice->fd, line, sizeof line - 1, 0);
            assert_true(n >= 0);
            line[n] = '\0';
        }
    }
    assert_string_equal(line, "LEFT bob timeout\n");
    assert_true(test_now() - joined >= 0.9); /* not before the silence */
    client_expect(bob, "BYE timeout");
    client_send(bob, "PING\n");
    client_expect(bob, "ERR join first");
    client_send(alice, "MSG still here\n"); /* alice was not dropped */
    assert_false(readable_within(alice, 100) &&
                 recv(alice->fd, line, sizeof line, 0) > 0);
    client_close(alice);
    client_close(bob);
}

/* ---- the client program ---------------------------------------------------
 */

typedef struct child {
    pid_t pid;
    int in;  /* its standard input */
    int out; /* its standard output */
    int err; /* its standard error */
} child;

static child run_chatcli(fixture *fx, const char *name)
{
    char port[16];
    snprintf(port, sizeof port, "%d", fx->port);
    int in[2], out[2], err[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    child ch = {.pid = fork()};
    assert_true(ch.pid >= 0);
    if (ch.pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        if (fx->udp)
            execl(SOCKSERV_CHATCLI_PATH, "sockserv-chatcli", "--udp",
                  "127.0.0.1", port, name, (char *)NULL);
        else
            execl(SOCKSERV_CHATCLI_PATH, "sockserv-chatcli", "127.0.0.1", port,
                  name, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    ch.in = in[1];
    ch.out = out[0];
    ch.err = err[0];
    fx->client_pid = ch.pid;
    return ch;
}

/* The next line the program prints on fd; fails after 10 s. */
static void child_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    double deadline = test_now() + 10.0;
    while (n + 1 < size) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)((deadline - test_now()) * 1000);
        if (left <= 0 || poll(&pfd, 1, left) != 1)
            fail_msg("no line from sockserv-chatcli");
        ssize_t r = read(fd, line + n, 1);
        if (r <= 0)
            fail_msg("sockserv-chatcli closed its output");
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
}

static int child_exit_status(fixture *fx, child *ch)
{
    int status = test_wait_exit(ch->pid, 10.0);
    assert_true(status >= 0);
    fx->client_pid = 0;
    close(ch->in);
    close(ch->out);
    close(ch->err);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* sockserv-chatcli joins, prints what others say, sends what is typed,
 * and leaves with QUIT at the end of its input, exiting 0. Over UDP with
 * --silence 1 it keeps itself a member by pinging. */
static void test_chatcli_chats_and_leaves_at_end_of_input(void **state)
{
    fixture *fx = *state;
    if (fx->udp)
        start_server(fx, "--silence", "1", NULL);
    else
        start_server(fx, NULL);
    client *bob = client_open(fx, 0);
    client_join(bob, "bob");
    child alice = run_chatcli(fx, "alice");
    client_expect(bob, "JOINED alice");

    if (fx->udp) { /* longer than the silence limit: the pings keep it */
        for (int i = 0; i < 8; i++) {
            client_send(bob, "PING\n");
            test_sleep_ms(200);
        }
    }
    client_send(bob, "MSG hi alice\n");
    char line[512];
    child_line(alice.out, line, sizeof line);
    assert_string_equal(line, "<bob> hi alice");
    admin_says(fx, "welcome\n");
    child_line(alice.out, line, sizeof line);
    assert_string_equal(line, "[admin] welcome");
    client_expect(bob, "ADMIN welcome");

    assert_int_equal(write(alice.in, "hello bob\n", 10), 10);
    client_expect(bob, "MSG alice hello bob");
    if (!fx->udp) {
        assert_int_equal(write(alice.in, "/names\n", 7), 7);
        child_line(alice.out, line, sizeof line);
        assert_string_equal(line, "* here: bob alice");
    }
    close(alice.in);
    alice.in = -1;
    client_expect(bob, "LEFT alice quit");
    assert_int_equal(child_exit_status(fx, &alice), 0);
    client_close(bob);
}

/* A name in use: sockserv-chatcli says so on stderr and exits 1. */
static void test_chatcli_with_a_name_in_use_exits_1(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *bob = client_open(fx, 0);
    client_join(bob, "bob");
    child other = run_chatcli(fx, "bob");
    char line[512];
    child_line(other.err, line, sizeof line);
    assert_non_null(strstr(line, "name taken"));
    assert_int_equal(child_exit_status(fx, &other), 1);
    client_close(bob);
}

/* ---- registration ----------------------------------------------------------
 */

#define TEST(fn, mode)                                                         \
    {                                                                          \
        mode ": " #fn, fn, setup, teardown, (void *)mode                       \
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
    const char *old_form[] = {
        SOCKSERV_CHAT_PATH, "--no-admin", "--bind", "127.1", "0", NULL};
    expect_usage_error(old_form, "'127.1' is not an IP address or host name");
    const char *with_port[] = {SOCKSERV_CHAT_PATH, "--no-admin", "--bind",
                               "127.0.0.1:80",     "0",          NULL};
    expect_usage_error(with_port, "give the host only; the port is the PORT");
    /* .invalid never resolves (RFC 6761): a fast answer, no traffic. */
    const char *unknown[] = {
        SOCKSERV_CHAT_PATH,   "--no-admin", "--udp", "--bind",
        "nosuchhost.invalid", "0",          NULL};
    expect_usage_error(unknown, "host not found: nosuchhost.invalid");
}

static void test_udp_and_tcp_together_are_refused(void **state)
{
    (void)state;
    const char *argv[] = {
        SOCKSERV_CHAT_PATH, "--no-admin", "--udp", "--tcp", "0", NULL};
    expect_usage_error(argv, "argument --tcp: not allowed with argument --udp");
}

static void test_chatcli_with_a_bad_port_is_a_usage_error(void **state)
{
    (void)state;
    const char *name[] = {SOCKSERV_CHATCLI_PATH, "127.0.0.1", "notaport",
                          "alice", NULL};
    expect_usage_error(name, "PORT: 1 to 65535");
    const char *big[] = {
        SOCKSERV_CHATCLI_PATH, "--udp", "127.0.0.1", "70000", "alice", NULL};
    expect_usage_error(big, "PORT: 1 to 65535");
}

/* ---- the web door (--web) ---------------------------------------------- */

/* One name for the whole room: a name a TCP member has is taken for a web
 * member and the other way round, a refused web member may try another on
 * the same WebSocket, and NAMES lists both doors' members in order. */
static void test_web_names_are_unique_across_doors(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *tcp = client_open(fx, 0);
    client *web = client_open_web(fx);
    client_send(web, "MSG too early");
    client_expect(web, "ERR join first");
    client_join(tcp, "alice");
    client_send(web, "JOIN alice");
    client_expect(web, "ERR name taken");
    client_join(web, "bob");
    client_expect(tcp, "JOINED bob");
    client *tcp2 = client_open(fx, 0);
    client_send(tcp2, "JOIN bob\n");
    client_expect(tcp2, "ERR name taken");
    client_send(web, "NAMES");
    client_expect(web, "NAMES alice bob");
    client_send(tcp, "NAMES\n");
    client_expect(tcp, "NAMES alice bob");
    /* Bytes a browser could not take as text arrive as '?'. */
    client_send(tcp, "MSG caf\xc3\xa9 \xff\xfe \xe4\xbd\xa0\xe5\xa5\xbd\n");
    client_expect(web, "MSG alice caf\xc3\xa9 ?? \xe4\xbd\xa0\xe5\xa5\xbd");
    /* An overlong NUL, a surrogate, a code point past U+10FFFF, then a
     * 4-byte character that is fine and a 3-byte one cut off at the end:
     * each bad byte is one '?'. */
    client_send(tcp, "MSG \xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 "
                     "\xf0\x9f\x98\x80 \xe4\xbd\n");
    client_expect(web, "MSG alice ?? ??? ???? \xf0\x9f\x98\x80 ??");
    client_send(web, "QUIT");
    client_expect(web, "BYE");
    assert_false(client_receive(web)); /* then the close frame */
    assert_int_equal(web->close_code, 1000);
    client_expect(tcp, "LEFT bob quit");
    client_close(web);
    client_close(tcp2);
    client_close(tcp);
}

/* The page at /, the WebSocket only at /ws and only for the page's own
 * origin (or none, or --web-origin's): anything else is 403, and a
 * request without an upgrade at /ws is 400. */
static void test_web_serves_the_page_and_refuses_other_origins(void **state)
{
    fixture *fx = *state;
    start_server(fx, "--web-origin", "https://chat.example", NULL);
    char request[1024], head[4096];

    unsigned char rest[sizeof head];
    size_t rest_len;
    int fd = connect_port(fx->web_port, 0);
    snprintf(request, sizeof request,
             "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", fx->web_port);
    assert_int_equal(
        http_exchange(fd, request, head, sizeof head, rest, &rest_len), 200);
    assert_non_null(strstr(head, "Content-Type: text/html; charset=utf-8"));
    long length = 0;
    const char *cl = strstr(head, "Content-Length: ");
    assert_non_null(cl);
    length = atol(cl + 16);
    assert_true(length > 1000);
    /* The page is the one built in: read it and look at it. */
    char *page = calloc(1, (size_t)length + 1);
    assert_non_null(page);
    long got = (long)rest_len;
    assert_true(got <= length);
    memcpy(page, rest, rest_len);
    while (got < length) {
        ssize_t n = recv(fd, page + got, (size_t)(length - got), 0);
        assert_true(n > 0);
        got += n;
    }
    assert_non_null(strstr(page, "<title>"));
    assert_non_null(strstr(page, "new WebSocket("));
    assert_null(strstr(page, "innerHTML")); /* text only, never markup */
    free(page);
    snprintf(request, sizeof request,
             "GET /nothing HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
             fx->web_port);
    assert_int_equal(http_exchange(fd, request, head, sizeof head, NULL, NULL),
                     404);
    close(fd);

    fd = connect_port(fx->web_port, 0);
    snprintf(request, sizeof request,
             "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", fx->web_port);
    assert_int_equal(http_exchange(fd, request, head, sizeof head, NULL, NULL),
                     400);
    close(fd);

    const char *refused[] = {"http://evil.example", "null",
                             "http://127.0.0.1:1", "https://chat.example.evil"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        fd = connect_port(fx->web_port, 0);
        ws_request(request, sizeof request, fx->web_port, refused[i]);
        int status = http_exchange(fd, request, head, sizeof head, NULL, NULL);
        if (status != 403)
            fail_msg("Origin %s: %d, not 403", refused[i], status);
        close(fd);
    }
    const char *accepted[] = {NULL, "https://chat.example"};
    for (size_t i = 0; i < 2; i++) {
        fd = connect_port(fx->web_port, 0);
        ws_request(request, sizeof request, fx->web_port, accepted[i]);
        int status = http_exchange(fd, request, head, sizeof head, NULL, NULL);
        if (status != 101)
            fail_msg("Origin %s: %d, not 101",
                     accepted[i] ? accepted[i] : "(none)", status);
        close(fd);
    }
    /* The room was not touched by any of it. */
    client *alice = client_open(fx, 0);
    client_join(alice, "alice");
    client_send(alice, "NAMES\n");
    client_expect(alice, "NAMES alice");
    client_close(alice);
}

/* A web member whose connection ends without a close frame (a browser
 * killed, a network gone) is dropped at once as "gone"; one that sends a
 * close frame (a tab closed: 1001) leaves as "quit"; both names are free
 * again. */
static void test_web_member_that_vanishes_is_dropped(void **state)
{
    fixture *fx = *state;
    start_server(fx, NULL);
    client *alice = client_open(fx, 0);
    client *bob = client_open_web(fx);
    client *carol = client_open_web(fx);
    const char *names[] = {"alice", "bob", "carol"};
    client *all[] = {alice, bob, carol};
    join_all(all, 3, names);

    double start = test_now();
    client_close(bob); /* a FIN, no close frame */
    client_expect(alice, "LEFT bob gone");
    client_expect(carol, "LEFT bob gone");
    assert_true(test_now() - start < 5.0);

    ws_send_close(carol, 1001);
    client_expect(alice, "LEFT carol quit");
    assert_false(client_receive(carol)); /* the server's close answers */
    client_close(carol);

    client *again = client_open_web(fx);
    client_join(again, "bob");
    client_expect(alice, "JOINED bob");
    client_close(again);
    client_close(alice);
}

/* A web member that never reads is dropped like a terminal one: its
 * socket, then its outbox fill (--outbox 32768, no flood control), the
 * others hear "LEFT slow slow" while the sender goes on at full speed, and
 * the browser, once it reads, finds its lines in order, "ERR too slow"
 * and a close frame (1008, policy). */
static void
test_web_slow_reader_is_dropped_without_blocking_senders(void **state)
{
    fixture *fx = *state;
    start_server(fx, "--outbox", "32768", "--flood-limit", "0", NULL);
    client *slow = client_open_web_rcvbuf(fx, 2048);
    slow_reader_run(fx, slow);
    assert_false(client_receive(slow)); /* the close frame */
    assert_int_equal(slow->close_code, 1008);
    client_close(slow);
}

/* --flood-limit 40 for a web member too: 80 messages sent at once reach
 * the others complete and in order, the second 40 only as the allowance
 * grows back, while the flooding browser still hears the others. */
static void test_web_flood_control_slows_only_the_flooder(void **state)
{
    fixture *fx = *state;
    start_server(fx, "--flood-limit", "40", NULL);
    client *flooder = client_open_web(fx);
    client *watcher = client_open(fx, 0);
    const char *names[] = {"flooder", "watcher"};
    client *both[] = {flooder, watcher};
    join_all(both, 2, names);

    char text[80 * 8] = "";
    for (int k = 0; k < 80; k++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "MSG %d\n",
                 k);
    double start = test_now();
    client_send(flooder, text); /* 80 messages */
    char line[128], expected[128];
    for (int k = 0; k < 40; k++) { /* the burst */
        snprintf(expected, sizeof expected, "MSG flooder %d", k);
        client_expect(watcher, expected);
    }
    client_send(watcher, "MSG slow down\n");
    client_expect(flooder, "MSG watcher slow down");
    double answered = test_now() - start;
    for (int k = 40; k < 80; k++) {
        client_line(watcher, line, sizeof line);
        snprintf(expected, sizeof expected, "MSG flooder %d", k);
        assert_string_equal(line, expected);
    }
    double all = test_now() - start;
    assert_true(all >= 0.5);     /* 40 lines at 40 per second: about 1 s */
    assert_true(answered < all); /* heard the watcher while held back */
    client_close(flooder);
    client_close(watcher);
}

static void test_web_with_udp_is_refused(void **state)
{
    (void)state;
    const char *argv[] = {
        SOCKSERV_CHAT_PATH, "--no-admin", "--udp", "--web", "0", "0", NULL};
    expect_usage_error(argv, "argument --web: not allowed with argument --udp");
    const char *origin[] = {SOCKSERV_CHAT_PATH,  "--no-admin", "--web-origin",
                            "https://a.example", "0",          NULL};
    expect_usage_error(origin,
                       "argument --web-origin: only with argument --web");
    const char *bad[] = {
        SOCKSERV_CHAT_PATH, "--no-admin", "--web", "99999", "0", NULL};
    expect_usage_error(bad, "argument --web: invalid port: '99999'");
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        TEST(test_messages_reach_every_other_member_once_in_order, "thread"),
        TEST(test_messages_reach_every_other_member_once_in_order, "coro"),
        TEST(test_messages_reach_every_other_member_once_in_order, "udp"),
        TEST(test_names_in_use_and_bad_names_are_refused, "thread"),
        TEST(test_names_in_use_and_bad_names_are_refused, "coro"),
        TEST(test_admin_lines_reach_everyone_and_stdin_eof_keeps_serving,
             "thread"),
        TEST(test_admin_lines_reach_everyone_and_stdin_eof_keeps_serving,
             "coro"),
        TEST(test_admin_lines_reach_everyone_and_stdin_eof_keeps_serving,
             "udp"),
        TEST(test_signal_says_bye_to_members_and_exits_0, "thread"),
        TEST(test_signal_says_bye_to_members_and_exits_0, "coro"),
        TEST(test_signal_says_bye_to_members_and_exits_0, "udp"),
        TEST(test_tcp_vanished_client_is_dropped_at_once, "thread"),
        TEST(test_tcp_vanished_client_is_dropped_at_once, "coro"),
        TEST(test_tcp_slow_reader_is_dropped_without_blocking_senders,
             "thread"),
        TEST(test_tcp_slow_reader_is_dropped_without_blocking_senders, "coro"),
        TEST(test_tcp_flood_control_slows_only_the_flooder, "thread"),
        TEST(test_tcp_flood_control_slows_only_the_flooder, "coro"),
        TEST(test_udp_join_is_idempotent_and_strangers_must_join, "udp"),
        TEST(test_udp_silent_member_is_dropped_after_silence, "udp"),
        TEST(test_chatcli_chats_and_leaves_at_end_of_input, "thread"),
        TEST(test_chatcli_chats_and_leaves_at_end_of_input, "udp"),
        TEST(test_chatcli_with_a_name_in_use_exits_1, "coro"),
        cmocka_unit_test(test_bind_address_mistakes_are_usage_errors),
        cmocka_unit_test(test_udp_and_tcp_together_are_refused),
        cmocka_unit_test(test_chatcli_with_a_bad_port_is_a_usage_error),
        TEST(test_messages_reach_every_other_member_once_in_order,
             "thread+web"),
        TEST(test_messages_reach_every_other_member_once_in_order, "coro+web"),
        TEST(test_signal_says_bye_to_members_and_exits_0, "thread+web"),
        TEST(test_signal_says_bye_to_members_and_exits_0, "coro+web"),
        TEST(test_web_names_are_unique_across_doors, "thread+web"),
        TEST(test_web_names_are_unique_across_doors, "coro+web"),
        TEST(test_web_serves_the_page_and_refuses_other_origins, "thread+web"),
        TEST(test_web_member_that_vanishes_is_dropped, "thread+web"),
        TEST(test_web_member_that_vanishes_is_dropped, "coro+web"),
        TEST(test_web_slow_reader_is_dropped_without_blocking_senders,
             "thread+web"),
        TEST(test_web_slow_reader_is_dropped_without_blocking_senders,
             "coro+web"),
        TEST(test_web_flood_control_slows_only_the_flooder, "thread+web"),
        TEST(test_web_flood_control_slows_only_the_flooder, "coro+web"),
        cmocka_unit_test(test_web_with_udp_is_refused),
    };
    /* A server killed mid-test must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
