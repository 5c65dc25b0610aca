/*
 * sockserv-chat — the chat room (聊天室) of the lesson, on libsockserv.
 *
 *   sockserv-chat [--udp | --tcp] [--mode MODE] [--bind ADDR] [--threads N]
 *                 [--outbox BYTES] [--flood-limit LINES] [--silence SECONDS]
 *                 [--port-file FILE] [--no-admin] [PORT]
 *
 * Members join with a name, every chat line goes to every other member,
 * joins and leaves are announced, and a line typed on the server's
 * standard input goes to everyone as an admin message. Two rooms:
 *
 *   --tcp (default)  tcp_room.c: a request per member, under threads or
 *                    coroutines; lines reach other members through their
 *                    outboxes (ss_wait_input_or_fd).
 *   --udp            udp_room.c: the lesson's version, a datagram handler
 *                    and a member table keyed by address; silent members
 *                    are dropped by the server's service_actions.
 *
 * This file is the program around them: options, the admin thread that
 * reads standard input, and the server's life. docs/chatroom.md has the
 * protocol and what to watch for.
 */
#include <sockserv/sockserv.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/bind_address.h"
#include "chat.h"

#define DEFAULT_OUTBOX (256 * 1024)
#define DEFAULT_FLOOD_LIMIT 100.0
#define DEFAULT_SILENCE 30.0

/* --mode, per room. Fork and prefork cannot share the member table (each
 * process would have its own), and sync would run one member at a time;
 * a TCP member holds its request for as long as it stays. */
static const struct {
    const char *name;
    const ss_strategy *strategy;
    bool tcp, udp;
} modes[] = {
    {"thread", &ss_threading, true, true},
    {"threading", &ss_threading, true, true},
    {"coro", &ss_coroutines, true, true},
    {"sync", &ss_sync, false, true},
};
#define N_MODES (sizeof modes / sizeof modes[0])

static const char usage[] =
    "usage: sockserv-chat [-h] [--udp | --tcp] [--mode MODE] [--bind ADDR]\n"
    "                     [--threads N] [--outbox BYTES] [--flood-limit "
    "LINES]\n"
    "                     [--silence SECONDS] [--port-file FILE] [--no-admin]\n"
    "                     [PORT]\n";
static const char help[] =
    "\nA chat room: members join with a name, every line goes to everyone\n"
    "else, and a line typed here goes to all as an admin message.\n\n"
    "  PORT               port to listen on (default 8000; 0 = any free)\n"
    "  -h, --help         show this help message and exit\n"
    "  --tcp              a connection per member (the default)\n"
    "  --udp              datagrams, as in the lesson\n"
    "  --mode MODE        TCP: thread (default) or coro;\n"
    "                     UDP: sync (default), thread or coro\n"
    "  --bind ADDR        default 127.0.0.1; \"\" = all IPv4, :: = all\n"
    "  --threads N        coro: scheduler threads (default: CPU count);\n"
    "                     thread: most requests at once (default: no limit)\n"
    "  --outbox BYTES     TCP: what may wait for a member that reads too\n"
    "                     slowly before it is dropped (default 262144)\n"
    "  --flood-limit LINES  TCP: lines per second a member may send, as a\n"
    "                     burst too; faster input is read later\n"
    "                     (default 100; 0 = no limit)\n"
    "  --silence SECONDS  UDP: a member not heard from for this long is\n"
    "                     dropped (default 30; clients ping every third)\n"
    "  --port-file FILE   write the port, once listening, to FILE\n"
    "  --no-admin         do not read admin lines from standard input\n";

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(usage, stderr);
    fputs("sockserv-chat: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static bool option(int argc, char **argv, int *i, const char *name,
                   const char **value)
{
    if (strcmp(argv[*i], name) != 0)
        return false;
    if (*i + 1 >= argc)
        usage_error("argument %s: expected one argument", name);
    *value = argv[++*i];
    return true;
}

static long count_argument(const char *name, const char *text, long max)
{
    char *end;
    long n = strtol(text, &end, 10);
    long min = strcmp(name, "--outbox") == 0 ? CHAT_OUTBOX_MIN : 1;
    if (end == text || *end != '\0' || n < min || n > max)
        usage_error("argument %s: invalid count: '%s'", name, text);
    return n;
}

/* A number in [min, max] for --silence and --flood-limit. */
static double number_argument(const char *name, const char *text, double min,
                              double max)
{
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value >= min && value <= max))
        usage_error("argument %s: invalid number: '%s'", name, text);
    return value;
}

/* ---- admin messages from standard input ---------------------------------- */

/* A thread of this program, not a request: it never touches a socket of
 * the library's, only the rooms' broadcast functions, which are safe from
 * any thread. */
typedef struct admin {
    pthread_t thread;
    int stop_fd; /* eventfd: main asks the thread to end */
    tcp_room *tcp;
    udp_room *udp;
} admin;

static void admin_line(admin *a, char *line)
{
    chat_chomp(line, strlen(line));
    chat_sanitize(line);
    if (line[0] == '\0')
        return;
    if (a->tcp)
        tcp_room_admin(a->tcp, line);
    else
        udp_room_admin(a->udp, line);
    chat_log("admin: %s", line);
}

static void *admin_main(void *arg)
{
    admin *a = arg;
    char buf[CHAT_LINE_MAX];
    size_t len = 0;
    struct pollfd pfd[2] = {
        {.fd = STDIN_FILENO, .events = POLLIN},
        {.fd = a->stop_fd, .events = POLLIN},
    };
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents)
            break;
        ssize_t n = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            /* End of input ends the admin messages, not the server: it
             * stops on SIGINT/SIGTERM only. */
            chat_log("standard input closed: no more admin messages "
                     "(still serving)");
            break;
        }
        len += (size_t)n;
        char *start = buf, *newline;
        while ((newline = memchr(start, '\n', len - (size_t)(start - buf)))) {
            *newline = '\0';
            admin_line(a, start);
            start = newline + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == sizeof buf - 1) { /* a very long line: send it in parts */
            buf[len] = '\0';
            admin_line(a, buf);
            len = 0;
        }
    }
    return NULL;
}

static int admin_start(admin *a)
{
    a->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (a->stop_fd < 0)
        return -errno;
    int rc = pthread_create(&a->thread, NULL, admin_main, a);
    if (rc != 0) {
        close(a->stop_fd);
        a->stop_fd = -1;
        return -rc;
    }
    return 0;
}

static void admin_stop(admin *a)
{
    if (a->stop_fd < 0)
        return;
    uint64_t one = 1;
    ssize_t ignored = write(a->stop_fd, &one, sizeof one);
    (void)ignored;
    pthread_join(a->thread, NULL);
    close(a->stop_fd);
}

/* A terminal's background job that reads it is stopped (SIGTTIN): read
 * admin lines only from a pipe or file, or in the foreground. */
static bool stdin_usable(void)
{
    return !isatty(STDIN_FILENO) || tcgetpgrp(STDIN_FILENO) == getpgrp();
}

/* ---- the UDP room's sweep -------------------------------------------------
 */

/* Python: override service_actions() in the server subclass. */
static void chat_udp_service_actions(ss_server *srv)
{
    ss_udp.service_actions(srv); /* super() */
    udp_room_sweep(ss_server_user(srv));
}

/* A member that vanishes while lines are on their way to it is ordinary
 * in a chat room: no report when the library's last flush meets a closed
 * or reset connection. Anything else, as the default (super()). */
static void chat_tcp_handle_error(ss_server *srv, ss_request *req, int error)
{
    if (error == -EPIPE || error == -ECONNRESET)
        return;
    ss_tcp.handle_error(srv, req, error);
}

/* Written whole or not at all, so a reader never sees half a number. */
static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int rc = -errno;
        remove(tmp);
        return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = NULL, *host = NULL, *port = NULL, *threads = NULL,
               *outbox = NULL, *silence = NULL, *flood_limit = NULL,
               *port_file = NULL;
    bool udp = false, tcp_given = false, read_admin = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s%s", usage, help);
            return 0;
        } else if (!strcmp(argv[i], "--udp")) {
            udp = true;
        } else if (!strcmp(argv[i], "--tcp")) {
            tcp_given = true;
        } else if (!strcmp(argv[i], "--no-admin")) {
            read_admin = false;
        } else if (option(argc, argv, &i, "--mode", &mode) ||
                   option(argc, argv, &i, "--bind", &host) ||
                   option(argc, argv, &i, "--threads", &threads) ||
                   option(argc, argv, &i, "--outbox", &outbox) ||
                   option(argc, argv, &i, "--flood-limit", &flood_limit) ||
                   option(argc, argv, &i, "--silence", &silence) ||
                   option(argc, argv, &i, "--port-file", &port_file)) {
            continue;
        } else if (argv[i][0] == '-' || port != NULL) {
            usage_error("unrecognized arguments: %s", argv[i]);
        } else {
            port = argv[i];
        }
    }

    if (udp && tcp_given)
        usage_error("argument --tcp: not allowed with argument --udp");
    if (!mode)
        mode = udp ? "sync" : "thread";
    const ss_strategy *strategy = NULL;
    for (size_t m = 0; m < N_MODES; m++)
        if (!strcmp(mode, modes[m].name) && (udp ? modes[m].udp : modes[m].tcp))
            strategy = modes[m].strategy;
    if (!strategy)
        usage_error("argument --mode: invalid choice for %s: '%s' (choose "
                    "from %s)",
                    udp ? "UDP" : "TCP", mode,
                    udp ? "sync, thread, coro" : "thread, coro");
    if (!port)
        port = "8000";
    size_t digits = strspn(port, "0123456789");
    if (digits == 0 || digits > 5 || port[digits] != '\0' || atoi(port) > 65535)
        usage_error("argument PORT: invalid port: '%s'", port);
    double silence_seconds =
        silence ? number_argument("--silence", silence, 0.1, 86400)
                : DEFAULT_SILENCE;
    double flood_lines =
        flood_limit ? number_argument("--flood-limit", flood_limit, 0, 1e9)
                    : DEFAULT_FLOOD_LIMIT;
    size_t outbox_bytes =
        outbox ? (size_t)count_argument("--outbox", outbox, 1 << 30)
               : DEFAULT_OUTBOX;

    char address[300];
    const char *bad =
        bind_address(address, sizeof address, host ? host : "127.0.0.1",
                     atoi(port), udp ? SOCK_DGRAM : SOCK_STREAM, NULL);
    if (bad)
        usage_error("argument --bind: %s", bad);

    tcp_room *tcp = NULL;
    udp_room *room_udp = NULL;
    int rc = udp ? udp_room_new(&room_udp, silence_seconds)
                 : tcp_room_new(&tcp, outbox_bytes, flood_lines);
    if (rc < 0) {
        fprintf(stderr, "sockserv-chat: %s\n", ss_strerror(rc));
        return 1;
    }

    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* restart at once after Ctrl-C */
    cfg.user = udp ? (void *)room_udp : (void *)tcp;
    cfg.max_packet_size = CHAT_LINE_MAX; /* longer is refused, not cut */
    if (threads) {
        int n = (int)count_argument("--threads", threads, 100000);
        cfg.coro_threads = cfg.max_threads = n;
    }
    /* Python's way to change a server: a subclass overriding a method —
     * here copies of ss_udp and ss_tcp (see below for each). */
    ss_server_class udp_kind = ss_udp;
    udp_kind.service_actions = chat_udp_service_actions;
    ss_server_class tcp_kind = ss_tcp;
    tcp_kind.handle_error = chat_tcp_handle_error;

    ss_server *srv;
    rc = ss_server_new(&srv, udp ? &udp_kind : &tcp_kind, strategy, address,
                       udp ? &chat_udp_handler : &chat_tcp_handler, &cfg);
    if (rc < 0) {
        fprintf(stderr, "sockserv-chat: cannot serve on %s: %s\n", address,
                ss_strerror(rc));
        udp_room_free(room_udp);
        tcp_room_free(tcp);
        return 1;
    }
    if (udp)
        udp_room_attach(room_udp, srv);
    admin a = {.stop_fd = -1, .tcp = tcp, .udp = room_udp};
    rc = ss_shutdown_on_signals(srv); /* SIGINT, SIGTERM: stop, exit 0 */
    bool reported = false;
    if (rc == 0 && port_file) {
        rc = write_port_file(port_file, ss_server_port(srv));
        if (rc < 0)
            fprintf(stderr,
                    "sockserv-chat: cannot write the port file %s: %s\n",
                    port_file, ss_strerror(rc));
        reported = rc < 0;
    }
    if (rc == 0 && read_admin && stdin_usable())
        rc = admin_start(&a);
    if (rc == 0) {
        ss_server_address_string(srv, address, sizeof address);
        chat_log("serving %s on %s (mode %s)%s", udp ? "UDP" : "TCP", address,
                 mode,
                 a.stop_fd >= 0 ? "; a line typed here goes to everyone" : "");
        /* UDP: the sweep for silent members runs at least this often. */
        double poll_interval = 0.5;
        if (udp && silence_seconds / 4 < poll_interval)
            poll_interval = silence_seconds / 4;
        rc = ss_serve_forever(srv, poll_interval);
    }
    admin_stop(&a); /* before the rooms go: it uses them */
    if (udp)
        udp_room_close(room_udp); /* BYE to every member, on the socket
                                     that is still open */
    ss_server_free(srv);          /* waits for the TCP members to say BYE */
    udp_room_free(room_udp);
    tcp_room_free(tcp);
    if (port_file)
        unlink(port_file);
    if (rc < 0) {
        if (!reported)
            fprintf(stderr, "sockserv-chat: %s\n", ss_strerror(rc));
        return 1;
    }
    chat_log("stopped");
    return 0;
}
