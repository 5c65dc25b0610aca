/*
 * sockserv-echo — the echo server of Python's socketserver documentation,
 * written with libsockserv.
 *
 *   sockserv-echo [--udp] [--unix PATH] [--bind ADDR] [--mode MODE]
 *                 [--workers N] [--threads N] [PORT]
 *
 * One handler class serves every kind of server, under every strategy: its
 * handle() copies what it reads back to the client until the client is
 * done. For a stream that is end of connection; for a datagram it is the
 * end of the packet, and the library sends what was written as the reply
 * after finish.
 */
#include <sockserv/sockserv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Python: class EchoHandler(BaseRequestHandler): def handle(self): ... */
/* The --bind check, the same as examples/common/bind_address.h (which the
 * other example servers include): written out here so that echo.c stays
 * one file you can copy anywhere and build alone (see README.md).
 *
 * Writes "HOST:PORT" ("[HOST]:PORT" for an IPv6 literal, ":PORT" for ""
 * = all IPv4) into address. HOST is a host only: an IP address, "::1" or
 * "[::1]", or a name, which must resolve. Returns NULL when HOST is good,
 * else why it is not (valid until the next call). socket_type is
 * SOCK_STREAM or SOCK_DGRAM; unix_option names the program's option for
 * Unix sockets, or is NULL when it has none. */
static const char *bind_address(char *address, size_t size, const char *host,
                                int port, int socket_type,
                                const char *unix_option)
{
    static char why[400];
    char inner[INET6_ADDRSTRLEN];
    size_t n = strlen(host);
    struct in6_addr v6;
    int written;

    if (strncmp(host, "unix:", 5) == 0) {
        if (unix_option)
            snprintf(why, sizeof why,
                     "'%s' is not a host: for a Unix socket use %s", host,
                     unix_option);
        else
            snprintf(why, sizeof why,
                     "'%s' is not a host: this program serves on IP "
                     "addresses only",
                     host);
        return why;
    }
    /* "[::1]" is accepted as "::1": the brackets only matter next to a
     * port, and the port is added here. */
    if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof inner) {
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        if (inet_pton(AF_INET6, inner, &v6) == 1)
            host = inner;
    }
    if (inet_pton(AF_INET6, host, &v6) == 1)
        written = snprintf(address, size, "[%s]:%d", host, port);
    else if (strstr(host, "]:") || (strchr(host, ':') && !strchr(host, '[')))
        written = -1; /* "127.0.0.1:80", "[::1]:80", "localhost:80" */
    else if (strpbrk(host, "[]"))
        written = (int)size; /* "[::1", "[127.0.0.1]": malformed */
    else
        written = snprintf(address, size, "%s:%d", host, port);

    if (written < 0) {
        snprintf(why, sizeof why,
                 "'%s': give the host only; the port is the PORT argument",
                 host);
        return why;
    }
    struct sockaddr_storage parsed;
    socklen_t len;
    /* The library's rule: a last label that starts with a digit is a
     * number ("127.1", "0x7f.1"), never a name to look up. */
    const char *last_label = strrchr(host, '.');
    last_label = last_label ? last_label + 1 : host;
    bool looks_numeric = *last_label >= '0' && *last_label <= '9';
    int rc = (size_t)written >= size
                 ? -EINVAL
                 : ss_address_parse(address, socket_type, &parsed, &len);
    if (rc == -EADDRNOTAVAIL) /* a name the resolver does not know */
        snprintf(why, sizeof why, "host not found: %s", host);
    else if (rc == -EINVAL)
        snprintf(why, sizeof why, "'%s' is not an IP address or host name%s",
                 host,
                 looks_numeric ? " (old forms like 127.1 are refused)" : "");
    else if (rc < 0)
        snprintf(why, sizeof why, "'%s': %s", host, ss_strerror(rc));
    return rc < 0 ? why : NULL;
}

static int echo_handle(ss_request *req)
{
    char buf[8192];
    ssize_t n;

    /* ss_read/ss_write_all, not readline: every byte comes back as it was,
     * whether or not the data is text with newlines. */
    while ((n = ss_read(req, buf, sizeof buf)) > 0)
        if ((n = ss_write_all(req, buf, (size_t)n)) < 0)
            break;
    return n < 0 ? (int)n : 0; /* non-zero: the server calls handle_error */
}

static const ss_handler_class echo_handler = {
    .base = &ss_base_handler,
    .handle = echo_handle,
};

/* --mode: add a strategy here and it becomes a valid choice. */
static const struct {
    const char *name;
    const ss_strategy *strategy;
} modes[] = {
    {"sync", &ss_sync},           /* one request at a time */
    {"thread", &ss_threading},    /* a thread per request */
    {"fork", &ss_forking},        /* a child process per request */
    {"pool", &ss_thread_pool},    /* --threads worker threads */
    {"prefork", &ss_prefork},     /* --workers processes sharing the socket */
    {"coro", &ss_coroutines},     /* coroutines on --threads epoll loops */
    {"threading", &ss_threading}, /* Python's names for the same two */
    {"forking", &ss_forking},
};
#define N_MODES (sizeof modes / sizeof modes[0])

/* Python's four server classes, picked by [--unix][--udp]. */
static const struct {
    const ss_server_class *kind;
    const char *name;
} kinds[2][2] = {
    {{&ss_tcp, "TCP"}, {&ss_udp, "UDP"}},
    {{&ss_unix_stream, "Unix stream"}, {&ss_unix_datagram, "Unix datagram"}},
};

static const char usage[] =
    "usage: sockserv-echo [-h] [--udp] [--unix PATH] [--bind ADDR] "
    "[--mode MODE]\n"
    "                     [--workers N] [--threads N] [PORT]\n";
static const char help[] =
    "\nEcho every byte back to the client that sent it.\n\n"
    "  PORT         port to listen on (default 8000; 0 = any free port)\n"
    "  -h, --help   show this help message and exit\n"
    "  --udp        datagrams: UDP, or Unix datagrams with --unix\n"
    "  --unix PATH  serve on a Unix socket (@NAME: an abstract name)\n"
    "  --bind ADDR  default 127.0.0.1; \"\" = all IPv4, :: = all\n"
    "  --workers N  prefork: worker processes (default: CPU count)\n"
    "  --threads N  pool: worker threads; thread: most threads at once;\n"
    "               coro: scheduler threads (default: CPU count)\n"
    "  --mode MODE  how requests run (default sync):\n"
    "               ";

/* Like argparse: usage and the reason on stderr, exit status 2. */
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(usage, stderr);
    fputs("sockserv-echo: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* Matches "--name VALUE"; on a match *i moves past VALUE. */
static bool option(int argc, char **argv, int *i, const char *name,
                   const char **value)
{
    if (strcmp(argv[*i], name) != 0)
        return false;
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
        usage_error("argument %s: expected one argument", name);
    *value = argv[++*i];
    return true;
}

/* A positive count for --workers / --threads. */
static int count_argument(const char *name, const char *text)
{
    size_t digits = strspn(text, "0123456789");
    if (digits == 0 || digits > 5 || text[digits] != '\0' || atoi(text) < 1)
        usage_error("argument %s: invalid count: '%s'", name, text);
    return atoi(text);
}

/* Socket activation (docs/deployment.md): a service manager that passed
 * sockets (LISTEN_FDS) decides the address. Serve the one named "echo"
 * (FileDescriptorName=echo), else the first. Its family (IP or Unix) is
 * whatever was passed; --udp still says which type is expected. Returns 1
 * with *srv and *kind_name set, 0 when not socket-activated, -1 after
 * saying why it cannot serve. */
static int serve_passed_socket(ss_server **srv, const char **kind_name,
                               const ss_strategy *strategy, bool udp,
                               const ss_config *cfg, bool address_given)
{
    char **names;
    int n = ss_listen_fds_with_names(true, &names);
    if (n <= 0) {
        if (n < 0)
            fprintf(stderr, "sockserv-echo: socket activation: %s\n",
                    ss_strerror(n));
        return n < 0 ? -1 : 0;
    }
    int pick = 0;
    for (int i = n - 1; i >= 0; i--) /* the first one named "echo" */
        if (strcmp(names[i], "echo") == 0)
            pick = i;
    int fd = SS_LISTEN_FDS_START + pick;
    struct sockaddr_storage address = {.ss_family = AF_UNSPEC};
    getsockname(fd, (struct sockaddr *)&address, &(socklen_t){sizeof address});
    bool unix_socket = address.ss_family == AF_UNIX;
    *kind_name = kinds[unix_socket][udp].name;
    int rc = ss_server_new_fd(srv, kinds[unix_socket][udp].kind, strategy, fd,
                              &echo_handler, cfg);
    if (rc == -EPROTOTYPE)
        fprintf(stderr,
                "sockserv-echo: passed descriptor %d (\"%s\") is a %s "
                "socket; %s\n",
                fd, names[pick], udp ? "stream" : "datagram",
                udp ? "drop --udp to serve it" : "add --udp to serve it");
    else if (rc < 0)
        fprintf(stderr,
                "sockserv-echo: cannot serve on passed descriptor %d "
                "(\"%s\"): %s\n",
                fd, names[pick], ss_strerror(rc));
    else
        printf("sockserv-echo: socket activation: serving descriptor %d "
               "(\"%s\")%s\n",
               fd, names[pick],
               address_given ? "; PORT, --bind and --unix are ignored" : "");
    free(names);
    return rc < 0 ? -1 : 1;
}

int main(int argc, char **argv)
{
    const char *unix_path = NULL, *host = NULL, *mode = "sync", *port = NULL,
               *workers = NULL, *threads = NULL;
    const ss_strategy *strategy = NULL;
    bool udp = false;
    char choices[160] = ""; /* "sync, threading, ..." for help and errors */
    for (size_t m = 0; m < N_MODES; m++)
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices),
                 "%s%s", m ? ", " : "", modes[m].name);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s%s%s\n", usage, help, choices);
            return 0;
        } else if (!strcmp(argv[i], "--udp")) {
            udp = true;
        } else if (option(argc, argv, &i, "--unix", &unix_path) ||
                   option(argc, argv, &i, "--bind", &host) ||
                   option(argc, argv, &i, "--mode", &mode) ||
                   option(argc, argv, &i, "--workers", &workers) ||
                   option(argc, argv, &i, "--threads", &threads)) {
            continue;
        } else if (argv[i][0] == '-' || port != NULL) {
            usage_error("unrecognized arguments: %s", argv[i]);
        } else {
            port = argv[i];
        }
    }

    for (size_t m = 0; m < N_MODES; m++)
        if (!strcmp(mode, modes[m].name))
            strategy = modes[m].strategy;
    if (strategy == NULL)
        usage_error("argument --mode: invalid choice: '%s' (choose from %s)",
                    mode, choices);
    if (unix_path && (port || host))
        usage_error("argument --unix: not allowed with PORT or --bind");
    bool address_given = port || host || unix_path;
    if (port == NULL)
        port = "8000";
    size_t digits = strspn(port, "0123456789");
    if (digits == 0 || digits > 5 || port[digits] != '\0' || atoi(port) > 65535)
        usage_error("argument PORT: invalid port: '%s'", port);

    /* What the library parses: "unix:PATH", "HOST:PORT", "[IPV6]:PORT". By
     * default only this machine can connect. */
    char address[300];
    if (unix_path) {
        snprintf(address, sizeof address, "unix:%s", unix_path);
    } else {
        const char *bad = bind_address(
            address, sizeof address, host ? host : "127.0.0.1", atoi(port),
            udp ? SOCK_DGRAM : SOCK_STREAM, "--unix PATH");
        if (bad)
            usage_error("argument --bind: %s", bad);
    }

    ss_config cfg;
    ss_config_init(&cfg);
    if (workers)
        cfg.workers = count_argument("--workers", workers);
    if (threads) {
        int n = count_argument("--threads", threads);
        cfg.pool_size = cfg.max_threads = cfg.coro_threads = n;
    }
    cfg.allow_reuse_address = true; /* restart at once after Ctrl-C */
    cfg.unlink_on_close = true;     /* leave no socket file behind */

    ss_server *srv;
    const char *kind_name = kinds[unix_path != NULL][udp].name;
    int activated = serve_passed_socket(&srv, &kind_name, strategy, udp, &cfg,
                                        address_given);
    if (activated < 0)
        return 1;
    int rc = activated ? 0
                       : ss_server_new(&srv, kinds[unix_path != NULL][udp].kind,
                                       strategy, address, &echo_handler, &cfg);
    if (rc < 0) {
        fprintf(stderr, "sockserv-echo: cannot serve on %s: %s\n", address,
                ss_strerror(rc));
        return 1;
    }
    /* Ctrl-C and SIGTERM make ss_serve_forever() return. */
    rc = ss_shutdown_on_signals(srv);
    if (rc == 0) {
        /* The real address: with port 0 it shows the port the system chose. */
        ss_server_address_string(srv, address, sizeof address);
        printf("sockserv-echo: serving %s on %s (mode %s)\n", kind_name,
               address, mode);
        fflush(stdout);
        rc = ss_serve_forever(srv, 0.5);
    }
    if (rc < 0)
        fprintf(stderr, "sockserv-echo: %s\n", ss_strerror(rc));
    ss_server_free(srv);
    return rc < 0 ? 1 : 0;
}
