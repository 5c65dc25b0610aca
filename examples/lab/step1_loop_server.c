/*
 * Lab step 1 — a loop server: one client at a time.
 *
 *   step1_loop_server [PORT]      (default 8000; 0 = any free port)
 *
 * The service, the same in steps 1 to 3: every byte a client sends comes
 * back in upper case. Try it with `nc 127.0.0.1 8000`.
 *
 * This is the lesson's loop model (循环模型): accept a client, serve it
 * until it leaves, and only then accept the next one. Plain sockets, no
 * library. Connect two clients at once: the second one waits.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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
        serve_client(client); /* the next client waits until this returns */
    }
}
