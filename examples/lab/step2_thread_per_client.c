/*
 * Lab step 2 — a thread per client, by hand.
 *
 *   step2_thread_per_client [PORT]      (default 8000; 0 = any free port)
 *
 * The service, the same in steps 1 to 3: every byte a client sends comes
 * back in upper case. Try it with `nc 127.0.0.1 8000`.
 *
 * Step 1 plus the lesson's five steps of a threaded server (基于threading
 * 的多线程并发): the main thread only accepts, and each client gets a
 * thread of its own running the same serve_client(). Connect two clients
 * at once: both are served.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Python's sendall(): send() may take only part of the buffer, so loop.
 * MSG_NOSIGNAL: writing to a client that has gone away fails with EPIPE
 * instead of killing the whole server with SIGPIPE. */
static int send_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t sent = send(fd, buf, n, MSG_NOSIGNAL);
        if (sent < 0)
            return -1;
        buf += sent;
        n -= (size_t)sent;
    }
    return 0;
}

/* The service: read, upper-case, send back, until the client disconnects
 * (recv returns 0) or fails (-1). */
static void serve_client(int client)
{
    struct sockaddr_in peer = {0};
    socklen_t len = sizeof peer;
    char who[INET_ADDRSTRLEN] = "?";
    if (getpeername(client, (struct sockaddr *)&peer, &len) == 0)
        inet_ntop(AF_INET, &peer.sin_addr, who, sizeof who);
    int port = ntohs(peer.sin_port);
    printf("%s:%d connected\n", who, port);

    char buf[1024];
    ssize_t n;
    while ((n = recv(client, buf, sizeof buf, 0)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        if (send_all(client, buf, (size_t)n) < 0)
            break;
    }
    printf("%s:%d left\n", who, port);
    close(client);
}

/* What each client's thread runs. The descriptor arrives in the void *
 * argument: pthread_create passes one pointer, and an int fits in one. */
static void *client_thread(void *arg)
{
    serve_client((int)(intptr_t)arg);
    return NULL;
}

/* Ctrl-C or kill: end the process at once, with status 0. The kernel
 * closes the sockets of a process that ends, so there is nothing to clean
 * up by hand. (_exit, not exit: a signal handler may only make
 * async-signal-safe calls.) */
static void on_signal(int sig)
{
    (void)sig;
    _exit(0);
}

/* PORT, the first argument: 0 to 65535 (0: any free port). atoi() would
 * quietly turn "abc" into 0 and 70000 into 4464. */
static int port_argument(const char *text)
{
    char *end;
    long port = strtol(text, &end, 10);
    if (!isdigit((unsigned char)text[0]) || *end != '\0' || port > 65535) {
        fprintf(stderr, "invalid port '%s': give 0 to 65535\n", text);
        exit(2); /* 2: a usage error, as Python's argparse exits */
    }
    return (int)port;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? port_argument(argv[1]) : 8000;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, even to a pipe */

    /* 1. Create the socket, bind it, listen. */
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1; /* restart at once after Ctrl-C, without "in use" errors */
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(listener, 5) < 0) {
        perror("bind");
        return 1;
    }
    socklen_t len = sizeof addr; /* port 0: ask which port we got */
    getsockname(listener, (struct sockaddr *)&addr, &len);
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));

    for (;;) {
        /* 2. Wait for a client. */
        int client = accept(listener, NULL, NULL);
        if (client < 0) {
            perror("accept");
            continue;
        }
        /* 3. Create a new thread to serve this client. */
        pthread_t thread;
        int rc = pthread_create(&thread, NULL, client_thread,
                                (void *)(intptr_t)client);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            close(client);
            continue;
        }
        /* 5. When the client leaves, its thread must be cleaned up. Detach:
         * a detached thread frees itself when it returns. pthread_join()
         * here would wait for this client to leave — step 1 again. */
        pthread_detach(thread);
        /* 4. Meanwhile the main thread goes straight back to accept(). */
    }
}
