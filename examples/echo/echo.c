/*
 * sockserv-echo — the echo server of Python's socketserver documentation,
 * written with libsockserv.
 *
 *   sockserv-echo [--udp] [--unix PATH] [--bind ADDR] [--mode MODE]
 *                 [--workers N] [--threads N]
 *                 [--tls-cert PATH [--tls-key PATH]] [PORT]
 *
 * One handler class serves every kind of server, under every strategy: its
 * handle() copies what it reads back to the client until the client is
 * done. For a stream that is end of connection; for a datagram it is the
 * end of the packet, and the library sends what was written as the reply
 * after finish. With --tls-cert the same handler serves TLS: the library
 * moves the bytes through OpenSSL (sockserv/tls.h), the handler does not
 * know.
 */
#include <sockserv/sockserv.h>
#include <sockserv/tls.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
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
    int n;

    /* ss_read/ss_write_all, not readline: every byte comes back as it was,
     * whether or not the data is text with newlines. */
    while ((n = ss_read(req, buf, sizeof buf)) > 0)
        if ((n = ss_write_all(req, buf, (size_t)n)) < 0)
            break;
    return n < 0 ? n : 0; /* non-zero: the server calls handle_error */
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
    "                     [--workers N] [--threads N] [--tls-cert PATH]\n"
    "                     [--tls-key PATH] [PORT]\n";
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
    "  --tls-cert PATH  serve TLS with this PEM certificate chain (streams)\n"
    "  --tls-key PATH   its PEM private key (default: in --tls-cert)\n"
    "  --mode MODE  how requests run (default sync):\n"
    "               ";

/* The command line the way Python's argparse reads it, on getopt_long:
 * options and PORT in any order, --name=VALUE, unambiguous prefixes, and
 * every mistake "usage: ..." then "sockserv-echo: error: ..." on stderr
 * and exit status 2. The same as examples/common/cli.h (which the other
 * example programs include), written out here like bind_address(). */
#define CLI_POSITIONAL 1
#define CLI_LONG_ONLY 256

typedef struct cli {
    const char *prog;              /* "PROG: error: ..." */
    const char *usage;             /* "usage: ...\n" */
    const char *shortopts;         /* "-:" and getopt's letters */
    const struct option *longopts; /* ends with {0} */
    bool rest;                     /* after "--": positional only */
    char extra[256];               /* cli_extra()'s, for cli_finish() */
} cli;

/* Like argparse's error(): usage and the reason on stderr, exit status 2. */
static inline void cli_error(const cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static inline void cli_error(const cli *c, const char *fmt, ...)
{
    va_list ap;
    fputs(c->usage, stderr);
    fprintf(stderr, "%s: error: ", c->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* An option as argparse names it in messages: "-b/--bind", "--mode", "-t". */
static inline const char *cli_name(const cli *c, int val)
{
    static char name[80];
    const struct option *o = c->longopts;
    while (o->name != NULL && o->val != val)
        o++;
    bool has_short = val > 0 && val < CLI_LONG_ONLY && isalnum(val);
    if (o->name == NULL)
        snprintf(name, sizeof name, "-%c", has_short ? val : '?');
    else if (has_short)
        snprintf(name, sizeof name, "-%c/--%s", val, o->name);
    else
        snprintf(name, sizeof name, "--%s", o->name);
    return name;
}

/* argparse takes a word that starts with '-' for an option, not for the
 * value of the one before it: "--bind --udp" lacks the address. "-" and
 * negative numbers are values. */
static inline bool cli_looks_like_option(const char *word)
{
    if (word[0] != '-' || word[1] == '\0' || strchr(word, ' ') != NULL)
        return false;
    const char *p = word + 1;
    p += strspn(p, "0123456789");
    if (*p == '.')
        p += 1 + strspn(p + 1, "0123456789");
    return *p != '\0' || p == word + 1;
}

/* getopt_long's '?': an unknown option, an ambiguous prefix, or a value
 * given to an option that takes none. */
static inline void cli_refuse(const cli *c, char **argv)
    __attribute__((noreturn));
static inline void cli_refuse(const cli *c, char **argv)
{
    const char *word = argv[optind - 1]; /* long options only */
    bool known = optopt >= CLI_LONG_ONLY ||
                 (optopt > 0 && optopt != ':' && optopt != '-' &&
                  strchr(c->shortopts, optopt) != NULL);
    if (known && strncmp(word, "--", 2) == 0 && strchr(word, '='))
        cli_error(c, "argument %s: ignored explicit argument '%s'",
                  cli_name(c, optopt), strchr(word, '=') + 1);
    if (optopt != 0)
        cli_error(c, "unrecognized arguments: -%c", optopt);
    size_t len = strcspn(word + 2, "=");
    char matches[256] = "";
    int count = 0;
    for (const struct option *o = c->longopts; o->name != NULL; o++)
        if (strncmp(o->name, word + 2, len) == 0 && strlen(matches) < 200)
            snprintf(matches + strlen(matches),
                     sizeof matches - strlen(matches), "%s--%s",
                     count++ ? ", " : "", o->name);
    if (count > 1)
        cli_error(c, "ambiguous option: %.*s could match %s", (int)len + 2,
                  word, matches);
    cli_error(c, "unrecognized arguments: %s", word);
}

/* The next option's val with *value its value (NULL when it takes none),
 * or CLI_POSITIONAL with *value the argument, or -1 at the end. Exits
 * through cli_error() on a mistake. */
static inline int cli_next(cli *c, int argc, char **argv, const char **value)
{
    if (c->rest) {
        *value = optind < argc ? argv[optind++] : NULL;
        return *value ? CLI_POSITIONAL : -1;
    }
    opterr = 0;
    int opt = getopt_long(argc, argv, c->shortopts, c->longopts, NULL);
    *value = optarg;
    if (opt == -1 && optind < argc) { /* after "--" */
        c->rest = true;
        return cli_next(c, argc, argv, value);
    }
    if (opt == ':')
        cli_error(c, "argument %s: expected one argument", cli_name(c, optopt));
    if (opt == '?')
        cli_refuse(c, argv);
    /* "-b VALUE" and "--bind VALUE", not "-bVALUE" or "--bind=VALUE" */
    if (opt != CLI_POSITIONAL && optarg != NULL && optarg == argv[optind - 1] &&
        cli_looks_like_option(optarg))
        cli_error(c, "argument %s: expected one argument", cli_name(c, opt));
    return opt;
}

/* A positional argument the program has no place for. */
static inline void cli_extra(cli *c, const char *arg)
{
    size_t used = strlen(c->extra);
    snprintf(c->extra + used, sizeof c->extra - used, "%s%s", used ? " " : "",
             arg);
}

/* After the loop: argparse names every argument left over. */
static inline void cli_finish(const cli *c)
{
    if (c->extra[0] != '\0')
        cli_error(c, "unrecognized arguments: %s", c->extra);
}

/* Long-only options: vals that no letter can have. */
enum {
    OPT_UDP = CLI_LONG_ONLY,
    OPT_UNIX,
    OPT_BIND,
    OPT_MODE,
    OPT_WORKERS,
    OPT_THREADS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
};

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"udp", no_argument, NULL, OPT_UDP},
    {"unix", required_argument, NULL, OPT_UNIX},
    {"bind", required_argument, NULL, OPT_BIND},
    {"mode", required_argument, NULL, OPT_MODE},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {NULL, 0, NULL, 0},
};

/* The command line, checked. */
typedef struct echo_options {
    const char *unix_path, *host, *port; /* as given, or NULL */
    const char *tls_cert, *tls_key;      /* NULL: no TLS */
    const char *mode;
    const ss_strategy *strategy;
    bool udp;
    int workers, threads; /* 0: not given */
    char address[300];    /* what the library parses */
} echo_options;

/* A positive count for --workers / --threads. */
static int count_argument(const cli *c, const char *name, const char *text)
{
    size_t digits = strspn(text, "0123456789");
    if (digits == 0 || digits > 5 || text[digits] != '\0' || atoi(text) < 1)
        cli_error(c, "argument %s: invalid count: '%s'", name, text);
    return atoi(text);
}

/* "sync, thread, ..." for --help and errors. */
static const char *mode_choices(void)
{
    static char choices[160];
    if (choices[0] == '\0')
        for (size_t m = 0; m < N_MODES; m++)
            snprintf(choices + strlen(choices),
                     sizeof choices - strlen(choices), "%s%s", m ? ", " : "",
                     modes[m].name);
    return choices;
}

static const ss_strategy *mode_argument(const cli *c, const char *mode)
{
    for (size_t m = 0; m < N_MODES; m++)
        if (!strcmp(mode, modes[m].name))
            return modes[m].strategy;
    cli_error(c, "argument --mode: invalid choice: '%s' (choose from %s)", mode,
              mode_choices());
}

/* What the library parses: "unix:PATH", "HOST:PORT", "[IPV6]:PORT". By
 * default only this machine can connect. */
static void address_argument(const cli *c, echo_options *o)
{
    if (o->unix_path && (o->port || o->host))
        cli_error(c, "argument --unix: not allowed with PORT or --bind");
    const char *port = o->port ? o->port : "8000";
    size_t digits = strspn(port, "0123456789");
    if (digits == 0 || digits > 5 || port[digits] != '\0' || atoi(port) > 65535)
        cli_error(c, "argument PORT: invalid port: '%s'", port);
    if (o->unix_path) {
        snprintf(o->address, sizeof o->address, "unix:%s", o->unix_path);
        return;
    }
    const char *bad = bind_address(
        o->address, sizeof o->address, o->host ? o->host : "127.0.0.1",
        atoi(port), o->udp ? SOCK_DGRAM : SOCK_STREAM, "--unix PATH");
    if (bad)
        cli_error(c, "argument --bind: %s", bad);
}

static void parse_options(echo_options *o, int argc, char **argv)
{
    cli c = {.prog = "sockserv-echo",
             .usage = usage,
             .shortopts = "-:h",
             .longopts = longopts};
    *o = (echo_options){.mode = "sync"};
    const char *value;
    int opt;
    while ((opt = cli_next(&c, argc, argv, &value)) != -1) {
        switch (opt) {
        case CLI_POSITIONAL:
            if (o->port == NULL)
                o->port = value;
            else
                cli_extra(&c, value);
            break;
        case 'h':
            printf("%s%s%s\n", usage, help, mode_choices());
            exit(0);
        case OPT_UDP:
            o->udp = true;
            break;
        case OPT_UNIX:
            o->unix_path = value;
            break;
        case OPT_BIND:
            o->host = value;
            break;
        case OPT_MODE:
            o->mode = value;
            break;
        case OPT_WORKERS:
            o->workers = count_argument(&c, "--workers", value);
            break;
        case OPT_THREADS:
            o->threads = count_argument(&c, "--threads", value);
            break;
        case OPT_TLS_CERT:
            o->tls_cert = value;
            break;
        case OPT_TLS_KEY:
            o->tls_key = value;
            break;
        }
    }
    cli_finish(&c);
    if (o->tls_key && !o->tls_cert)
        cli_error(&c, "--tls-key requires --tls-cert to be set");
    if (o->tls_cert && o->udp)
        cli_error(&c, "argument --tls-cert: TLS needs a stream (drop --udp)");
    o->strategy = mode_argument(&c, o->mode);
    address_argument(&c, o);
}

/* Each strategy's own options (ss_config.strategy_options points at the
 * one that fits the strategy); kept beside the config until the server is
 * made. */
typedef struct mode_options {
    ss_threading_options threading;
    ss_thread_pool_options pool;
    ss_prefork_options prefork;
    ss_coroutine_options coro;
} mode_options;

/* How requests run: the strategy's settings from --workers and
 * --threads (0: the strategy's default). */
static void apply_mode_options(ss_config *cfg, mode_options *m,
                               const echo_options *o)
{
    *m = (mode_options){.threading.max_threads = o->threads,
                        .pool.pool_size = o->threads,
                        .prefork.workers = o->workers,
                        .coro.threads = o->threads};
    if (o->strategy == &ss_threading)
        cfg->strategy_options = &m->threading;
    else if (o->strategy == &ss_thread_pool)
        cfg->strategy_options = &m->pool;
    else if (o->strategy == &ss_prefork)
        cfg->strategy_options = &m->prefork;
    else if (o->strategy == &ss_coroutines)
        cfg->strategy_options = &m->coro;
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

/* The passed socket or a socket of its own. Returns 0, or -1 after
 * saying why not. */
static int server_new(ss_server **srv, const char **kind_name,
                      const echo_options *o, const ss_config *cfg)
{
    bool unix_socket = o->unix_path != NULL;
    *kind_name = kinds[unix_socket][o->udp].name;
    int activated = serve_passed_socket(srv, kind_name, o->strategy, o->udp,
                                        cfg, o->port || o->host || unix_socket);
    if (activated != 0)
        return activated < 0 ? -1 : 0;
    int rc = ss_server_new(srv, kinds[unix_socket][o->udp].kind, o->strategy,
                           o->address, &echo_handler, cfg);
    if (rc < 0)
        fprintf(stderr, "sockserv-echo: cannot serve on %s: %s\n", o->address,
                ss_strerror(rc));
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    echo_options o;
    parse_options(&o, argc, argv);

    ss_config cfg;
    ss_config_init(&cfg);
    mode_options strategy_options;
    apply_mode_options(&cfg, &strategy_options, &o);
    cfg.allow_reuse_address = true; /* restart at once after Ctrl-C */
    cfg.unlink_on_close = true;     /* leave no socket file behind */

    /* --tls-cert: a TLS context the server moves every byte through. */
    ss_tls_context *tls = NULL;
    if (o.tls_cert) {
        ss_tls_options tls_options = {.cert_file = o.tls_cert,
                                      .key_file = o.tls_key};
        int rc = ss_tls_context_new(&tls, &tls_options);
        if (rc < 0) {
            fprintf(stderr, "sockserv-echo: cannot serve TLS: %s\n",
                    ss_strerror(rc));
            return 1;
        }
    }

    ss_server *srv;
    const char *kind_name;
    if (server_new(&srv, &kind_name, &o, &cfg) < 0) {
        ss_tls_context_free(tls);
        return 1;
    }
    /* Ctrl-C and SIGTERM make ss_serve_forever() return. */
    int rc = ss_shutdown_on_signals(srv);
    if (rc == 0 && tls)
        rc = ss_server_set_tls(srv, tls);
    if (rc == 0) {
        /* The real address: with port 0 it shows the port the system chose. */
        char address[300];
        ss_server_address_string(srv, address, sizeof address);
        printf("sockserv-echo: serving %s%s on %s (mode %s)\n", kind_name,
               tls ? " over TLS" : "", address, o.mode);
        fflush(stdout);
        rc = ss_serve_forever(srv, 0.5);
    }
    if (rc < 0)
        fprintf(stderr, "sockserv-echo: %s\n", ss_strerror(rc));
    ss_server_free(srv);
    ss_tls_context_free(tls); /* after the server that used it */
    return rc < 0 ? 1 : 0;
}
