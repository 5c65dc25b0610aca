/*
 * reference_echo.c — two hand-written TCP echo servers without libsockserv,
 * to tell what the machine allows from what the library costs.
 *
 *   reference-echo --model epoll|thread|fork|prefork [--port P] [--host H]
 *                  [--workers N]
 *
 *  - epoll: one thread, non-blocking sockets, one epoll set. This is the
 *    ceiling of the load generator and kernel on this machine: nothing
 *    sleeps per message, many ready sockets are served per wake-up.
 *  - thread: a detached thread per connection doing blocking recv/send,
 *    the leanest possible version of the thread-per-request model that
 *    ss_threading (and Python's ThreadingMixIn) implement. Whatever this
 *    server cannot beat, no thread-per-request library can.
 *  - fork: a child process per connection doing the same (ss_forking,
 *    Python's ForkingMixIn); children are reaped by SIG_IGN on SIGCHLD.
 *  - prefork: --workers processes (default 2) forked at start, each
 *    accepting on the shared socket and running a thread per connection
 *    (ss_prefork with thread workers, as run_echo_bench.py runs it).
 *
 * Prints "listening on PORT" like the other bench servers and runs until
 * killed. No error reports: it is a yardstick, not a program.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void serve_connection(int fd)
{
    char buf[8192];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t done = 0;
        while (done < (size_t)n) {
            ssize_t sent = send(fd, buf + done, (size_t)n - done, MSG_NOSIGNAL);
            if (sent < 0 && errno == EINTR)
                continue;
            if (sent < 0)
                goto out;
            done += (size_t)sent;
        }
    }
out:
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void *connection_thread(void *arg)
{
    serve_connection((int)(intptr_t)arg);
    return NULL;
}

static _Noreturn void serve_forks(int listener)
{
    signal(SIGCHLD, SIG_IGN); /* children reap themselves */
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pid_t pid = fork();
        if (pid == 0) {
            close(listener);
            serve_connection(fd);
            _exit(0);
        }
        close(fd);
    }
}

static _Noreturn void serve_threads(int listener)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_t thread;
        if (pthread_create(&thread, &attr, connection_thread,
                           (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}

static _Noreturn void serve_epoll(int listener)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    struct epoll_event events[256];
    char buf[8192];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c;
                while ((c = accept4(listener, NULL, NULL,
                                    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            /* An echo of a small message fits the socket buffer; a
             * yardstick need not handle a full one. */
            if (got <= 0 || send(fd, buf, (size_t)got, MSG_NOSIGNAL) < 0) {
                shutdown(fd, SHUT_WR);
                close(fd);
            }
        }
    }
}

/* Workers forked once, each a thread-per-connection server on the shared
 * listening socket; the parent only waits (and ends with its workers:
 * killing the parent's process group is the caller's business). */
static _Noreturn void serve_prefork(int listener, int workers)
{
    for (int i = 0; i < workers; i++)
        if (fork() == 0)
            serve_threads(listener);
    for (;;)
        if (wait(NULL) < 0 && errno == ECHILD)
            _exit(0);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *host = "127.0.0.1";
    int port = 0, workers = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--workers"))
            workers = atoi(argv[i + 1]);
    }
    if (!model || workers < 1 ||
        (strcmp(model, "epoll") && strcmp(model, "thread") &&
         strcmp(model, "fork") && strcmp(model, "prefork"))) {
        fputs("usage: reference-echo --model epoll|thread|fork|prefork "
              "[--port P] [--host IPV4] [--workers N]\n",
              stderr);
        return 2;
    }
    int epoll = !strcmp(model, "epoll");
    int fd = socket(
        AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (epoll ? SOCK_NONBLOCK : 0), 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof addr;
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        perror("reference-echo");
        return 1;
    }
    printf("listening on %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    if (epoll)
        serve_epoll(fd);
    if (!strcmp(model, "fork"))
        serve_forks(fd);
    if (!strcmp(model, "prefork"))
        serve_prefork(fd, workers);
    serve_threads(fd);
}
