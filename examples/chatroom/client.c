/*
 * sockserv-chatcli — a terminal client for sockserv-chat.
 *
 *   sockserv-chatcli [--udp | --tls [--cafile PATH]] HOST PORT NAME
 *
 * Joins the room as NAME, sends every line typed as a chat message, and
 * prints what the room says, one line each:
 *
 *     <bob> hello          a member's message
 *     * bob joined         * bob left (quit)
 *     [admin] text         the server's operator
 *     * here: alice bob    the members, after typing /names
 *
 * Notes from this program and the server's errors go to stderr. End of
 * input (Ctrl-D), Ctrl-C or SIGTERM leaves the room politely (QUIT, then
 * the server's BYE). With --udp it also sends a keep-alive PING every
 * third of the silence the server allows (the server says how long in its
 * OK), and retries its JOIN, since a datagram may be lost.
 *
 * With --tls (a server started with --tls-cert) the lines go through TLS
 * (../common/tls_client.c), the server verified against --cafile or the
 * system's certificates.
 *
 * One poll() loop over standard input and the socket; no threads. Exit
 * status: 0 after leaving or when the server says goodbye, 1 when the
 * name is refused or the connection is lost, 2 for bad arguments.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/tls_client.h"
#include "chat.h"

#define JOIN_TRIES 3
#define JOIN_WAIT_MS 2000
#define BYE_WAIT_MS 2000
#define HANDSHAKE_SECONDS 10

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct conn {
    int fd;
    bool udp;
    tls_client *tls;           /* NULL: plain TCP or UDP */
    char in[2 * CHAT_OUT_MAX]; /* received, not yet split into lines */
    size_t in_len;
} conn;

static void note(const char *fmt, ...) SS_PRINTF(1, 2);
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sockserv-chatcli: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* PORT: 1 to 65535, in decimal. (getaddrinfo would also take a service
 * name, and answer anything else with an obscure resolver error.) */
static bool valid_port(const char *text)
{
    size_t digits = strspn(text, "0123456789");
    return digits > 0 && digits <= 5 && text[digits] == '\0' &&
           atoi(text) >= 1 && atoi(text) <= 65535;
}

static int connect_to(const char *host, const char *port, bool udp)
{
    struct addrinfo hints = {.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM};
    struct addrinfo *list;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0) {
        note("%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, error = 0;
    for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            error = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    if (fd < 0)
        note("cannot connect to %s port %s: %s", host, port,
             strerror(error ? error : errno));
    return fd;
}

/* One command: a line on TCP, a datagram on UDP. */
static int send_command(conn *c, const char *fmt, ...) SS_PRINTF(2, 3);
static int send_command(conn *c, const char *fmt, ...)
{
    char buf[CHAT_LINE_MAX + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n > sizeof buf - 2)
        n = (int)(sizeof buf - 2); /* cut: the server refuses longer */
    buf[n++] = '\n';
    if (c->tls)
        return tls_client_send(c->tls, buf, (size_t)n) < 0 ? -1 : 0;
    for (int sent = 0; sent < n;) {
        ssize_t w = send(c->fd, buf + sent, (size_t)(n - sent), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        sent += (int)w;
    }
    return 0;
}

/* What the socket has: one recv() into c->in. Returns > 0, 0 at the end
 * of the connection, or -1 (errno set; EAGAIN: a TLS record without
 * data came, nothing to show). An empty datagram is the server's
 * acknowledgement of a MSG or PING, and adds nothing. */
static ssize_t receive(conn *c)
{
    size_t room = sizeof c->in - c->in_len - 1;
    ssize_t n;
    if (c->tls) {
        n = tls_client_recv(c->tls, c->in + c->in_len, room);
        if (n < 0) {
            errno = (int)-n;
            n = -1;
        }
    } else {
        do
            n = recv(c->fd, c->in + c->in_len, room, 0);
        while (n < 0 && errno == EINTR);
    }
    if (n <= 0)
        return n == 0 && c->udp ? 1 : n;
    c->in_len += (size_t)n;
    if (c->udp && c->in[c->in_len - 1] != '\n')
        c->in[c->in_len++] = '\n'; /* a datagram is a line */
    if (c->in_len == sizeof c->in - 1 && !memchr(c->in, '\n', c->in_len))
        c->in[c->in_len - 1] = '\n'; /* never from our server */
    return n;
}

/* The next complete line from c->in, without its newline. */
static bool take_line(conn *c, char *line, size_t size)
{
    char *newline = memchr(c->in, '\n', c->in_len);
    if (!newline)
        return false;
    size_t len = (size_t)(newline - c->in);
    snprintf(line, size, "%.*s", (int)len, c->in);
    c->in_len -= len + 1;
    memmove(c->in, newline + 1, c->in_len);
    chat_chomp(line, strlen(line));
    chat_sanitize(line); /* trust no server with our terminal */
    return true;
}

/* Wait up to ms for the socket (or a signal). 1 readable, 0 not. */
static int wait_socket(conn *c, int ms)
{
    if (c->tls && tls_client_pending(c->tls))
        return 1; /* inside the TLS layer, where poll() does not look */
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int rc = poll(&pfd, 1, ms);
    return rc > 0 ? 1 : 0;
}

/* JOIN and wait for OK or ERR. Returns the server's silence limit (UDP;
 * 0 for TCP) or -1 when the join failed (reported). */
static double join(conn *c, const char *name)
{
    char line[CHAT_OUT_MAX];
    for (int try = 0; try < (c->udp ? JOIN_TRIES : 1); try++) {
        if (send_command(c, "JOIN %s", name) < 0)
            break;
        long long deadline = now_ms() + JOIN_WAIT_MS;
        while (now_ms() < deadline && !stop_requested) {
            if (!wait_socket(c, (int)(deadline - now_ms())))
                continue;
            ssize_t n = receive(c);
            if (n == 0 && !c->tls && !c->udp) { /* a TLS server, surely */
                note("the server closed the connection without an answer "
                     "(if it serves TLS, add --tls)");
                return -1;
            }
            if (n == 0) {
                note("the server closed the connection");
                return -1;
            }
            if (n < 0 && errno == EAGAIN)
                continue;
            if (n < 0) {
                note("the server is not answering: %s", strerror(errno));
                return -1;
            }
            while (take_line(c, line, sizeof line)) {
                const char *arg;
                size_t len = chat_command(line, &arg);
                if (chat_is(line, len, "ERR")) {
                    note("cannot join as '%s': %s", name, arg);
                    return -1;
                }
                if (chat_is(line, len, "OK")) {
                    const char *silence = strchr(arg, ' ');
                    return silence ? atof(silence + 1) : 0;
                }
            }
        }
        if (stop_requested)
            return -1;
    }
    note("no answer from the server");
    return -1;
}

typedef enum { GO_ON, GOODBYE, LOST } verdict;

/* Print one line from the room. */
static verdict show(const char *line)
{
    const char *arg;
    size_t len = chat_command(line, &arg);
    if (chat_is(line, len, "MSG")) {
        const char *from_end = strchr(arg, ' ');
        int from_len = from_end ? (int)(from_end - arg) : (int)strlen(arg);
        printf("<%.*s> %s\n", from_len, arg, from_end ? from_end + 1 : "");
    } else if (chat_is(line, len, "JOINED")) {
        printf("* %s joined\n", arg);
    } else if (chat_is(line, len, "LEFT")) {
        const char *why = strchr(arg, ' ');
        int name_len = why ? (int)(why - arg) : (int)strlen(arg);
        printf("* %.*s left (%s)\n", name_len, arg, why ? why + 1 : "?");
    } else if (chat_is(line, len, "ADMIN")) {
        printf("[admin] %s\n", arg);
    } else if (chat_is(line, len, "NAMES")) {
        printf("* here: %s\n", arg);
    } else if (chat_is(line, len, "BYE")) {
        if (*arg)
            note("the server said goodbye (%s)", arg);
        return GOODBYE;
    } else if (chat_is(line, len, "ERR")) {
        note("server: %s", arg);
        /* UDP: the server forgot us (we were silent too long). */
        if (!strcmp(arg, "join first"))
            return LOST;
    } else if (line[0] != '\0') {
        printf("%s\n", line);
    }
    fflush(stdout);
    return GO_ON;
}

/* Print the complete lines already received. */
static verdict show_received(conn *c)
{
    char line[CHAT_OUT_MAX];
    while (take_line(c, line, sizeof line)) {
        verdict v = show(line);
        if (v != GO_ON)
            return v;
    }
    return GO_ON;
}

/* Read and print what the socket has. */
static verdict pump(conn *c)
{
    ssize_t n = receive(c);
    if (n == 0) {
        note("the server closed the connection");
        return LOST;
    }
    if (n < 0 && errno == EAGAIN)
        return GO_ON;
    if (n < 0) {
        note("connection lost: %s", strerror(errno));
        return LOST;
    }
    return show_received(c);
}

/* QUIT, then wait a little for BYE, printing what still arrives. */
static int leave(conn *c)
{
    if (send_command(c, "QUIT") < 0)
        return 0;
    long long deadline = now_ms() + BYE_WAIT_MS;
    while (now_ms() < deadline) {
        if (wait_socket(c, (int)(deadline - now_ms())) && pump(c) != GO_ON)
            break;
    }
    return 0;
}

/* Lines typed on standard input become MSG commands. Returns false at the
 * end of input. */
static bool read_input(conn *c, char *buf, size_t *len, size_t size)
{
    ssize_t n = read(STDIN_FILENO, buf + *len, size - 1 - *len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    *len += (size_t)n;
    char *start = buf, *newline;
    while ((newline = memchr(start, '\n', *len - (size_t)(start - buf)))) {
        *newline = '\0';
        chat_chomp(start, (size_t)(newline - start));
        if (!strcmp(start, "/names"))
            send_command(c, "NAMES");
        else if (*start)
            send_command(c, "MSG %s", start);
        start = newline + 1;
    }
    *len -= (size_t)(start - buf);
    memmove(buf, start, *len);
    if (*len == size - 1) { /* longer than a line may be: send it cut */
        buf[*len] = '\0';
        send_command(c, "MSG %s", buf);
        *len = 0;
    }
    return true;
}

static const char usage[] =
    "usage: sockserv-chatcli [-h] [--udp] [--tls] [--cafile PATH] HOST PORT "
    "NAME\n";

enum { OPT_UDP = CLI_LONG_ONLY, OPT_TLS, OPT_CAFILE };

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"udp", no_argument, NULL, OPT_UDP},
    {"tls", no_argument, NULL, OPT_TLS},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {NULL, 0, NULL, 0},
};

/* The command line, checked. */
typedef struct chatcli_options {
    bool udp, tls;
    const char *cafile; /* NULL: the system's CA certificates */
    const char *host, *port, *name;
} chatcli_options;

/* Options, HOST, PORT and NAME in any order, like argparse; every mistake
 * is a usage error (exit status 2). */
static void parse_options(chatcli_options *o, int argc, char **argv)
{
    cli c = {.prog = "sockserv-chatcli",
             .usage = usage,
             .shortopts = "-:h",
             .longopts = longopts};
    *o = (chatcli_options){.udp = false};
    const char **positional[] = {&o->host, &o->port, &o->name};
    int npositional = 0;
    const char *value;
    int opt;
    while ((opt = cli_next(&c, argc, argv, &value)) != -1) {
        if (opt == 'h') {
            printf("%s\nJoin a sockserv-chat room as NAME. Lines typed are "
                   "sent to everyone;\nCtrl-D leaves.\n\noptions:\n"
                   "  -h, --help     show this help message and exit\n"
                   "  --udp          for a server started with --udp\n"
                   "  --tls          for a server started with --tls-cert:\n"
                   "                 TLS, verifying its certificate\n"
                   "  --cafile PATH  with --tls: trust the CA certificates "
                   "in\n"
                   "                 PATH (PEM) instead of the system's\n",
                   usage);
            exit(0);
        } else if (opt == OPT_UDP) {
            o->udp = true;
        } else if (opt == OPT_TLS) {
            o->tls = true;
        } else if (opt == OPT_CAFILE) {
            o->cafile = value;
        } else if (npositional < 3) {
            *positional[npositional++] = value;
        } else {
            cli_extra(&c, value);
        }
    }
    cli_finish(&c);
    if (npositional < 3)
        cli_error(&c, "the following arguments are required: %s",
                  (const char *[]){"HOST, PORT, NAME", "PORT, NAME",
                                   "NAME"}[npositional]);
    if (!valid_port(o->port))
        cli_error(&c, "PORT: 1 to 65535");
    if (!chat_valid_name(o->name))
        cli_error(&c, "NAME: 1 to 32 bytes, no spaces");
    if (o->tls && o->udp)
        cli_error(&c, "argument --tls: not allowed with argument --udp");
    if (o->cafile && !o->tls)
        cli_error(&c, "argument --cafile: needs --tls");
    if (o->tls && !tls_client_available())
        cli_error(&c, "argument --tls: sockserv-chatcli was built without "
                      "TLS (SOCKSERV_TLS=OFF)");
}

/* Set both socket timeouts (0: none). */
static void socket_timeouts(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* The TLS handshake, bounded in time. Returns 0, or -1 after saying
 * why. */
static int start_tls(conn *c, const chatcli_options *o)
{
    char why[300];
    socket_timeouts(c->fd, HANDSHAKE_SECONDS);
    c->tls = tls_client_open(c->fd, o->host, o->cafile, true, why, sizeof why);
    socket_timeouts(c->fd, 0); /* then poll() decides how long to wait */
    if (c->tls == NULL) {
        note("TLS with %s port %s: %s", o->host, o->port, why);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    chatcli_options o;
    parse_options(&o, argc, argv);
    bool udp = o.udp;
    const char *name = o.name;

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    conn c = {.udp = udp};
    c.fd = connect_to(o.host, o.port, udp);
    if (c.fd < 0)
        return 1;
    if (o.tls && start_tls(&c, &o) < 0) {
        close(c.fd);
        return 1;
    }
    double silence = join(&c, name);
    if (silence < 0) {
        tls_client_close(c.tls);
        close(c.fd);
        return 1;
    }
    note("joined as %s; lines you type go to everyone, Ctrl-D leaves", name);
    /* The server drops a UDP member silent for `silence` seconds. */
    long long ping_every =
        udp && silence > 0 ? (long long)(silence * 1000 / 3) : -1;
    if (ping_every == 0)
        ping_every = 1;
    long long next_ping = now_ms() + ping_every;

    char input[CHAT_LINE_MAX - 4]; /* room for "MSG " */
    size_t input_len = 0;
    /* What came with the OK is waiting in our buffer, not on the socket:
     * poll() would not tell. */
    verdict first = show_received(&c);
    if (first != GO_ON) {
        tls_client_close(c.tls);
        close(c.fd);
        return first == LOST ? 1 : 0;
    }
    int status = 0;
    for (;;) {
        if (stop_requested) {
            status = leave(&c);
            break;
        }
        int timeout = -1;
        if (c.tls && tls_client_pending(c.tls))
            timeout = 0; /* lines wait inside the TLS layer: see below */
        else if (ping_every > 0) {
            long long left = next_ping - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        struct pollfd pfd[2] = {
            {.fd = c.fd, .events = POLLIN},
            {.fd = STDIN_FILENO, .events = POLLIN},
        };
        int rc = poll(pfd, 2, timeout);
        if (rc < 0 && errno != EINTR) {
            note("poll: %s", strerror(errno));
            status = 1;
            break;
        }
        if (ping_every > 0 && now_ms() >= next_ping) {
            send_command(&c, "PING");
            next_ping = now_ms() + ping_every;
        }
        if (c.tls && tls_client_pending(c.tls)) {
            pfd[0].revents |= POLLIN;
            rc = 1;
        }
        if (rc <= 0)
            continue;
        if (pfd[0].revents) {
            verdict v = pump(&c);
            if (v != GO_ON) {
                status = v == LOST ? 1 : 0;
                break;
            }
        }
        if (pfd[1].revents &&
            !read_input(&c, input, &input_len, sizeof input)) {
            status = leave(&c);
            break;
        }
    }
    tls_client_close(c.tls); /* close_notify */
    close(c.fd);
    return status;
}
