/*
 * sockserv-chat — the chat room (聊天室) of the lesson, on libsockserv.
 *
 *   sockserv-chat [--udp | --tcp] [--mode MODE] [--bind ADDR] [--threads N]
 *                 [--outbox BYTES] [--flood-limit LINES] [--silence SECONDS]
 *                 [--web PORT [--web-origin ORIGIN]...]
 *                 [--port-file FILE] [--no-admin] [--tls-cert PATH
 *                 [--tls-key PATH] [--tls-password-file PATH]] [PORT]
 *
 * Members join with a name, every chat line goes to every other member,
 * joins and leaves are announced, and a line typed on the server's
 * standard input goes to everyone as an admin message. Two rooms:
 *
 *   --tcp (default)  tcp_room.c: a request per member, under threads or
 *                    coroutines; lines reach other members through their
 *                    outboxes (ss_wait_input_or_fd). --tls-cert: over
 *                    TLS (../common/tls_server.c), the room unchanged.
 *   --udp            udp_room.c: the lesson's version, a datagram handler
 *                    and a member table keyed by address; silent members
 *                    are dropped by the server's service_actions.
 *
 * With --web PORT the TCP room has a second door: a second server, HTTP on
 * PORT, in a thread of its own (web_room.c), serving the page and a
 * WebSocket per browser member, in the same room (room.c).
 *
 * This file is the program around them: options, the admin thread that
 * reads standard input, and the server's life. docs/chatroom.md has the
 * protocol and what to watch for.
 */
#include <sockserv/sockserv.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/bind_address.h"
#include "../common/cli.h"
#include "../common/tls_server.h"
#include "chat.h"

#define DEFAULT_OUTBOX (256 * 1024)
#define DEFAULT_FLOOD_LIMIT 100.0
#define DEFAULT_SILENCE 30.0
#define CHAT_WEB_ORIGINS_MAX 16

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
    "                     [--silence SECONDS] [--web PORT]\n"
    "                     [--web-origin ORIGIN] [--port-file FILE] "
    "[--no-admin]\n"
    "                     [--tls-cert PATH] [--tls-key PATH]\n"
    "                     [--tls-password-file PATH] [PORT]\n";
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
    "  --web PORT         TCP: also serve the room to browsers, over HTTP\n"
    "                     and WebSocket on PORT (0 = any free)\n"
    "  --web-origin ORIGIN  also accept browser members from pages of\n"
    "                     ORIGIN (\"https://example.org\"); may be repeated\n"
    "  --port-file FILE   write the port, once listening, to FILE\n"
    "  --no-admin         do not read admin lines from standard input\n"
    "  --tls-cert PATH    TCP: serve TLS with this PEM certificate chain\n"
    "                     (clients: sockserv-chatcli --tls)\n"
    "  --tls-key PATH     its PEM private key (default: in --tls-cert)\n"
    "  --tls-password-file PATH\n"
    "                     the password of an encrypted --tls-key\n";

/* Long-only options: vals that no letter can have. */
enum {
    OPT_UDP = CLI_LONG_ONLY,
    OPT_TCP,
    OPT_MODE,
    OPT_BIND,
    OPT_THREADS,
    OPT_OUTBOX,
    OPT_FLOOD_LIMIT,
    OPT_SILENCE,
    OPT_WEB,
    OPT_WEB_ORIGIN,
    OPT_PORT_FILE,
    OPT_NO_ADMIN,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_PASSWORD_FILE,
};

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"udp", no_argument, NULL, OPT_UDP},
    {"tcp", no_argument, NULL, OPT_TCP},
    {"mode", required_argument, NULL, OPT_MODE},
    {"bind", required_argument, NULL, OPT_BIND},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"outbox", required_argument, NULL, OPT_OUTBOX},
    {"flood-limit", required_argument, NULL, OPT_FLOOD_LIMIT},
    {"silence", required_argument, NULL, OPT_SILENCE},
    {"web", required_argument, NULL, OPT_WEB},
    {"web-origin", required_argument, NULL, OPT_WEB_ORIGIN},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"no-admin", no_argument, NULL, OPT_NO_ADMIN},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-password-file", required_argument, NULL, OPT_TLS_PASSWORD_FILE},
    {NULL, 0, NULL, 0},
};

/* The command line, checked. */
typedef struct chat_options {
    bool udp, read_admin;
    const char *mode;
    const ss_strategy *strategy;
    int threads; /* 0: not given */
    size_t outbox;
    double flood_limit, silence;
    const char *port_file;
    tls_server_args tls;  /* all NULL: no TLS */
    char address[300];    /* what the library parses: "127.0.0.1:8000" */
    const char *web_port; /* --web, or NULL */
    char web_address[300];
    const char *web_origins[CHAT_WEB_ORIGINS_MAX];
    size_t n_web_origins;
} chat_options;

static long count_argument(const cli *c, const char *name, const char *text,
                           long min, long max)
{
    char *end;
    long n = strtol(text, &end, 10);
    if (end == text || *end != '\0' || n < min || n > max)
        cli_error(c, "argument %s: invalid count: '%s'", name, text);
    return n;
}

/* A number in [min, max] for --silence and --flood-limit. */
static double number_argument(const cli *c, const char *name, const char *text,
                              double min, double max)
{
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value >= min && value <= max))
        cli_error(c, "argument %s: invalid number: '%s'", name, text);
    return value;
}

static const ss_strategy *mode_argument(const cli *c, const char *mode,
                                        bool udp)
{
    for (size_t m = 0; m < N_MODES; m++)
        if (!strcmp(mode, modes[m].name) && (udp ? modes[m].udp : modes[m].tcp))
            return modes[m].strategy;
    cli_error(
        c, "argument --mode: invalid choice for %s: '%s' (choose from %s)",
        udp ? "UDP" : "TCP", mode, udp ? "sync, thread, coro" : "thread, coro");
}

/* --web PORT: on the --bind host, as a stream. */
static void web_port_argument(const cli *c, chat_options *o, const char *host)
{
    const char *port = o->web_port;
    size_t digits = strspn(port, "0123456789");
    if (digits == 0 || digits > 5 || port[digits] != '\0' || atoi(port) > 65535)
        cli_error(c, "argument --web: invalid port: '%s'", port);
    const char *bad = bind_address(o->web_address, sizeof o->web_address, host,
                                   atoi(port), SOCK_STREAM, NULL);
    if (bad)
        cli_error(c, "argument --bind: %s", bad);
}

/* --web-origin: what a browser sends as Origin, "scheme://host[:port]". */
static void web_origin_argument(const cli *c, chat_options *o,
                                const char *origin)
{
    if (strncmp(origin, "http://", 7) != 0 &&
        strncmp(origin, "https://", 8) != 0)
        cli_error(c,
                  "argument --web-origin: '%s' is not an origin "
                  "(http://host[:port] or https://host[:port])",
                  origin);
    if (o->n_web_origins == CHAT_WEB_ORIGINS_MAX)
        cli_error(c, "argument --web-origin: at most %d", CHAT_WEB_ORIGINS_MAX);
    o->web_origins[o->n_web_origins++] = origin;
}

/* Options and PORT in any order, like argparse; every mistake is a usage
 * error (exit status 2). */
static void parse_options(chat_options *o, int argc, char **argv)
{
    cli c = {.prog = "sockserv-chat",
             .usage = usage,
             .shortopts = "-:h",
             .longopts = longopts};
    *o = (chat_options){.read_admin = true,
                        .outbox = DEFAULT_OUTBOX,
                        .flood_limit = DEFAULT_FLOOD_LIMIT,
                        .silence = DEFAULT_SILENCE};
    const char *host = "127.0.0.1", *port = NULL, *value;
    bool tcp_given = false;
    int opt;
    while ((opt = cli_next(&c, argc, argv, &value)) != -1) {
        switch (opt) {
        case CLI_POSITIONAL:
            if (port == NULL)
                port = value;
            else
                cli_extra(&c, value);
            break;
        case 'h':
            printf("%s%s", usage, help);
            exit(0);
        case OPT_UDP:
            o->udp = true;
            break;
        case OPT_TCP:
            tcp_given = true;
            break;
        case OPT_NO_ADMIN:
            o->read_admin = false;
            break;
        case OPT_MODE:
            o->mode = value;
            break;
        case OPT_BIND:
            host = value;
            break;
        case OPT_PORT_FILE:
            o->port_file = value;
            break;
        case OPT_THREADS:
            o->threads = (int)count_argument(&c, "--threads", value, 1, 100000);
            break;
        case OPT_OUTBOX:
            o->outbox = (size_t)count_argument(&c, "--outbox", value,
                                               CHAT_OUTBOX_MIN, 1 << 30);
            break;
        case OPT_FLOOD_LIMIT:
            o->flood_limit =
                number_argument(&c, "--flood-limit", value, 0, 1e9);
            break;
        case OPT_SILENCE:
            o->silence = number_argument(&c, "--silence", value, 0.1, 86400);
            break;
        case OPT_TLS_CERT:
            o->tls.cert = value;
            break;
        case OPT_TLS_KEY:
            o->tls.key = value;
            break;
        case OPT_TLS_PASSWORD_FILE:
            o->tls.password_file = value;
            break;
        case OPT_WEB:
            o->web_port = value;
            break;
        case OPT_WEB_ORIGIN:
            web_origin_argument(&c, o, value);
            break;
        }
    }
    cli_finish(&c);
    if (o->udp && o->tls.cert) /* TLS needs a stream */
        cli_error(&c, "argument --tls-cert: not allowed with argument --udp");
    tls_server_check_args(&c, &o->tls);

    if (o->udp && tcp_given)
        cli_error(&c, "argument --tcp: not allowed with argument --udp");
    if (o->udp && o->web_port)
        cli_error(&c, "argument --web: not allowed with argument --udp "
                      "(browser members join the TCP room)");
    if (o->n_web_origins > 0 && !o->web_port)
        cli_error(&c, "argument --web-origin: only with argument --web");
    if (!o->mode)
        o->mode = o->udp ? "sync" : "thread";
    o->strategy = mode_argument(&c, o->mode, o->udp);
    if (!port)
        port = "8000";
    size_t digits = strspn(port, "0123456789");
    if (digits == 0 || digits > 5 || port[digits] != '\0' || atoi(port) > 65535)
        cli_error(&c, "argument PORT: invalid port: '%s'", port);
    const char *bad =
        bind_address(o->address, sizeof o->address, host, atoi(port),
                     o->udp ? SOCK_DGRAM : SOCK_STREAM, NULL);
    if (bad)
        cli_error(&c, "argument --bind: %s", bad);
    if (o->web_port)
        web_port_argument(&c, o, host);
}

/* Each strategy's own options (ss_config.strategy_options points at the
 * one that fits the strategy); kept beside the config until the server is
 * made. */
typedef struct mode_options {
    ss_threading_options threading;
    ss_coroutine_options coro;
} mode_options;

/* How requests run: the strategy's settings from --threads. */
static void apply_mode_options(ss_config *cfg, mode_options *m,
                               const chat_options *o)
{
    *m = (mode_options){.threading.max_threads = o->threads,
                        .coro.threads = o->threads};
    if (o->strategy == &ss_threading)
        cfg->strategy_options = &m->threading;
    else if (o->strategy == &ss_coroutines)
        cfg->strategy_options = &m->coro;
}

/* ---- admin messages from standard input ---------------------------------- */

/* A thread of this program, not a request: it never touches a socket of
 * the library's, only the rooms' broadcast functions, which are safe from
 * any thread. */
typedef struct admin {
    pthread_t thread;
    int stop_fd; /* eventfd: main asks the thread to end */
    chat_room *tcp;
    udp_room *udp;
} admin;

static void admin_line(admin *a, char *line)
{
    chat_chomp(line, strlen(line));
    chat_sanitize(line);
    if (line[0] == '\0')
        return;
    if (a->tcp)
        chat_room_admin(a->tcp, line);
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
static int write_port_file(const char *path, int port, int web_port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", port);
    if (web_port > 0)
        fprintf(f, "%d\n", web_port); /* --web: a second line */
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int rc = -errno;
        remove(tmp);
        return rc;
    }
    return 0;
}

/* The server for the room (room is the tcp_room or udp_room). Returns 0,
 * or -1 after saying why not. */
static int server_new(ss_server **srv, const chat_options *o, void *room)
{
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* restart at once after Ctrl-C */
    cfg.user = room;
    cfg.max_packet_size = CHAT_LINE_MAX; /* longer is refused, not cut */
    mode_options strategy_options;
    apply_mode_options(&cfg, &strategy_options, o);
    /* Python's way to change a server: a subclass overriding a method —
     * here copies of ss_udp and ss_tcp (see above for each). */
    static ss_server_class udp_kind, tcp_kind;
    udp_kind = ss_udp;
    udp_kind.service_actions = chat_udp_service_actions;
    tcp_kind = ss_tcp;
    tcp_kind.handle_error = chat_tcp_handle_error;

    int rc = ss_server_new(
        srv, o->udp ? &udp_kind : tls_server_kind(&tcp_kind), o->strategy,
        o->address, o->udp ? &chat_udp_handler : &chat_tcp_handler, &cfg);
    if (rc < 0)
        fprintf(stderr, "sockserv-chat: cannot serve on %s: %s\n", o->address,
                ss_strerror(rc));
    else if (tls_server_attach(*srv) < 0) {
        ss_server_free(*srv);
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

/* ---- the web door: a second server, in a thread of its own --------------- */

/* The HTTP server of --web: same strategy and room as the TCP server,
 * its own listening socket, its own ss_serve_forever() in web_main(). The
 * library allows any number of servers in a process; each has its own
 * loop, so the web door's runs on a thread of this program. When either
 * loop ends (a signal stops both; an error only one), the other is told
 * to stop too. */
typedef struct web_door {
    ss_server *srv; /* NULL without --web */
    ss_server *tcp; /* the room's TCP server */
    chat_web web;   /* its config.user */
    pthread_t thread;
    bool started;
    int rc; /* what its ss_serve_forever() returned */
} web_door;

static int web_server_new(web_door *d, const chat_options *o, chat_room *room)
{
    d->web = (chat_web){
        .room = room, .origins = o->web_origins, .n_origins = o->n_web_origins};
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true;
    cfg.user = &d->web;
    mode_options strategy_options;
    apply_mode_options(&cfg, &strategy_options, o);
    static ss_server_class web_kind;
    static ss_handler_class web_handler; /* outlives the server */
    web_kind = ss_tcp;
    web_kind.handle_error = chat_tcp_handle_error;
    chat_web_handler(&web_handler);
    int rc = ss_server_new(&d->srv, &web_kind, o->strategy, o->web_address,
                           &web_handler, &cfg);
    if (rc < 0) {
        d->srv = NULL;
        fprintf(stderr, "sockserv-chat: cannot serve --web on %s: %s\n",
                o->web_address, ss_strerror(rc));
        return -1;
    }
    /* --tls-cert: the web door is https:// and wss:// with the same
     * context (its SIGHUP reload runs from the TCP server's loop). */
    if (tls_server_attach(d->srv) < 0) {
        ss_server_free(d->srv);
        d->srv = NULL;
        return -1;
    }
    return 0;
}

static void *web_main(void *arg)
{
    web_door *d = arg;
    d->rc = ss_serve_forever(d->srv, 0.5);
    ss_shutdown(d->tcp); /* one door closed: close the other */
    return NULL;
}

static int web_start(web_door *d)
{
    if (!d->srv)
        return 0;
    int rc = ss_shutdown_on_signals(d->srv);
    if (rc == 0)
        rc = -pthread_create(&d->thread, NULL, web_main, d);
    d->started = rc == 0;
    return rc;
}

/* Stop and free the web server (after the TCP server's loop ended):
 * waits for its members to say BYE. */
static int web_stop(web_door *d)
{
    if (!d->srv)
        return 0;
    if (d->started) {
        ss_shutdown(d->srv);
        pthread_join(d->thread, NULL);
    }
    ss_server_free(d->srv);
    d->srv = NULL;
    return d->started ? d->rc : 0;
}

/* The address to give a browser: the web server's, with a host a browser
 * can reach when it listens on every interface. */
static void web_url(const web_door *d, char *url, size_t size)
{
    char address[300];
    ss_server_address_string(d->srv, address, sizeof address);
    int port = ss_server_port(d->srv);
    const char *scheme = tls_server_on() ? "https" : "http";
    if (strncmp(address, "0.0.0.0:", 8) == 0 ||
        strncmp(address, "[::]:", 5) == 0)
        snprintf(url, size, "%s://localhost:%d/ (or this machine's address)",
                 scheme, port);
    else
        snprintf(url, size, "%s://%s/", scheme, address);
}

/* Until SIGINT or SIGTERM (exit status 0). *reported: an error was
 * printed already. */
static int serve(ss_server *srv, const chat_options *o, admin *a, web_door *web,
                 bool *reported)
{
    int rc = ss_shutdown_on_signals(srv);
    *reported = false;
    if (rc == 0 && o->port_file) {
        rc = write_port_file(o->port_file, ss_server_port(srv),
                             web->srv ? ss_server_port(web->srv) : 0);
        if (rc < 0)
            fprintf(stderr,
                    "sockserv-chat: cannot write the port file %s: %s\n",
                    o->port_file, ss_strerror(rc));
        *reported = rc < 0;
    }
    if (rc == 0 && o->read_admin && stdin_usable())
        rc = admin_start(a);
    if (rc == 0)
        rc = web_start(web);
    if (rc == 0) {
        char address[300];
        ss_server_address_string(srv, address, sizeof address);
        chat_log("serving %s on %s (mode %s)%s",
                 o->udp            ? "UDP"
                 : tls_server_on() ? "TLS"
                                   : "TCP",
                 address, o->mode,
                 a->stop_fd >= 0 ? "; a line typed here goes to everyone" : "");
        if (web->srv) {
            char url[400];
            web_url(web, url, sizeof url);
            chat_log("the room in a browser: open %s", url);
        }
        /* UDP: the sweep for silent members runs at least this often. */
        double poll_interval = 0.5;
        if (o->udp && o->silence / 4 < poll_interval)
            poll_interval = o->silence / 4;
        rc = ss_serve_forever(srv, poll_interval);
    }
    return rc;
}

int main(int argc, char **argv)
{
    chat_options o;
    parse_options(&o, argc, argv);

    if (o.tls.cert && tls_server_open("sockserv-chat", &o.tls) < 0)
        return 1;
    chat_room *tcp = NULL;
    udp_room *room_udp = NULL;
    int rc = o.udp ? udp_room_new(&room_udp, o.silence)
                   : chat_room_new(&tcp, o.outbox, o.flood_limit);
    if (rc < 0) {
        fprintf(stderr, "sockserv-chat: %s\n", ss_strerror(rc));
        tls_server_close();
        return 1;
    }
    ss_server *srv;
    if (server_new(&srv, &o, o.udp ? (void *)room_udp : (void *)tcp) < 0) {
        udp_room_free(room_udp);
        chat_room_free(tcp);
        tls_server_close();
        return 1;
    }
    if (o.udp)
        udp_room_attach(room_udp, srv);
    web_door web = {.tcp = srv};
    if (o.web_port && web_server_new(&web, &o, tcp) < 0) {
        ss_server_free(srv);
        chat_room_free(tcp);
        return 1;
    }
    admin a = {.stop_fd = -1, .tcp = tcp, .udp = room_udp};
    bool reported;
    rc = serve(srv, &o, &a, &web, &reported);
    int web_rc = web_stop(&web); /* its members say BYE too */
    if (rc == 0)
        rc = web_rc;
    admin_stop(&a); /* before the rooms go: it uses them */
    if (o.udp)
        udp_room_close(room_udp); /* BYE to every member, on the socket
                                     that is still open */
    ss_server_free(srv);          /* waits for the TCP members to say BYE */
    udp_room_free(room_udp);
    chat_room_free(tcp);
    tls_server_close(); /* after the server that used it */
    if (o.port_file)
        unlink(o.port_file);
    if (rc < 0) {
        if (!reported)
            fprintf(stderr, "sockserv-chat: %s\n", ss_strerror(rc));
        return 1;
    }
    chat_log("stopped");
    return 0;
}
