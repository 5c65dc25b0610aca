/*
 * canned_http.c — the canned-response epoll loop: the ceiling an HTTP
 * server can reach under wrk on this machine, as reference_echo.c's epoll
 * model is for echo.
 *
 *   canned-http [--port P] [--host IPV4] [--threads N] [--size BYTES]
 *
 * No files and no parsing: every request (counted by its blank line,
 * "\r\n\r\n"; wrk sends no bodies) is answered with the same response of
 * --size body bytes (default 1024). The one concession to HTTP is
 * "Connection: close" anywhere in a request: then the answer says so and
 * the connection is closed after it, as wrk's close workload expects.
 * --threads loops (default 2), each with its own epoll set and its own
 * SO_REUSEPORT listening socket, non-blocking sockets, edge-triggered.
 *
 * Prints "listening on PORT" like the other bench servers and runs until
 * killed. No error reports: a yardstick, not a program.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static char *response, *response_close;
static size_t response_len, response_close_len;

typedef struct conn {
    int fd;
    int matched;      /* bytes of "\r\n\r\n" matched at the end so far */
    bool close_after; /* a request said Connection: close */
    unsigned owed;    /* responses not yet sent in full */
    size_t sent;      /* of the first owed one */
} conn;

static void conn_close(conn *c)
{
    close(c->fd);
    free(c);
}

/* Send what is owed, until the socket is full; false on an error. */
static bool flush_owed(conn *c)
{
    while (c->owed > 0) {
        bool last_closes = c->close_after && c->owed == 1;
        const char *r = last_closes ? response_close : response;
        size_t len = last_closes ? response_close_len : response_len;
        ssize_t n = send(c->fd, r + c->sent, len - c->sent, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        c->sent += (size_t)n;
        if (c->sent == len) {
            c->sent = 0;
            c->owed--;
        }
    }
    return true;
}

/* Count blank lines in buf, carrying a match across receives. */
static unsigned count_requests(conn *c, const char *buf, size_t n)
{
    static const char end[] = "\r\n\r\n";
    unsigned count = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == end[c->matched])
            c->matched++;
        else
            c->matched = buf[i] == '\r' ? 1 : 0;
        if (c->matched == 4) {
            count++;
            c->matched = 0;
        }
    }
    return count;
}

/* Edge-triggered: read until EAGAIN, answer, send until EAGAIN. */
static void on_ready(conn *c)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            c->owed += count_requests(c, buf, (size_t)n);
            if (memmem(buf, (size_t)n, "Connection: close", 17))
                c->close_after = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || errno != EAGAIN) {
            conn_close(c);
            return;
        }
        break;
    }
    if (!flush_owed(c) || (c->close_after && c->owed == 0))
        conn_close(c);
}

static int listen_socket(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof addr;
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        perror("canned-http");
        exit(1);
    }
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    return ntohs(addr.sin_port);
}

static void *loop(void *arg)
{
    int listener = (int)(intptr_t)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (c) {
                on_ready(c);
                continue;
            }
            int fd;
            while ((fd = accept4(listener, NULL, NULL,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conn *nc = calloc(1, sizeof *nc);
                if (!nc) {
                    close(fd);
                    continue;
                }
                nc->fd = fd;
                struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT |
                                                    EPOLLRDHUP | EPOLLET,
                                          .data.ptr = nc};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
            }
        }
    }
    return NULL;
}

static char *make_response(size_t size, bool closes, size_t *len)
{
    char head[256];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: canned\r\n"
                     "Content-Type: text/html\r\nContent-Length: %zu\r\n"
                     "%s\r\n",
                     size, closes ? "Connection: close\r\n" : "");
    char *r = malloc((size_t)h + size);
    if (!r)
        exit(1);
    memcpy(r, head, (size_t)h);
    memset(r + h, 'x', size);
    *len = (size_t)h + size;
    return r;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, threads = 2;
    long size = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            size = atol(argv[i + 1]);
    }
    if (threads < 1 || threads > 64 || size < 0 || size > (1L << 24)) {
        fputs("usage: canned-http [--port P] [--host IPV4] [--threads N] "
              "[--size BYTES]\n",
              stderr);
        return 2;
    }
    response = make_response((size_t)size, false, &response_len);
    response_close = make_response((size_t)size, true, &response_close_len);
    /* The first socket picks the port; the others join it. */
    int first = listen_socket(host, port);
    port = port_of(first);
    for (int i = 1; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, loop,
                       (void *)(intptr_t)listen_socket(host, port));
    }
    printf("listening on %d\n", port);
    fflush(stdout);
    loop((void *)(intptr_t)first);
    return 0;
}
