/*
 * sockserv-httpd — Python's `python -m http.server`, written with
 * libsockserv: serves the files of a directory over HTTP/1.1, with a small
 * JSON API next to them.
 *
 *   sockserv-httpd [PORT] [-b ADDR] [-d DIR] [--mode MODE] [--workers N]
 *                  [--reuseport] [--threads N] [--max-connections N] [-q]
 *                  [--no-file-cache] [--file-cache-entries N]
 *                  [--file-cache-size BYTES]
 *                  [--port-file PATH] [--proxy-protocol[=v1|v2]]
 *                  [--trusted-proxy ADDRS] [--tls-cert PATH [--tls-key PATH]
 *                  [--tls-password-file PATH]] [--access-log FILE]
 *                  [--access-log-buffer SIZE] [--access-log-flush SECONDS]
 *
 * This file is the program around the handler: the command line (options
 * and PORT in any order, like argparse: getopt_long through
 * ../common/cli.h), the mode table that picks a
 * strategy, the connection limit the descriptor limit leaves room for,
 * the server, HTTPS (Python 3.14's --tls-* flags; SIGHUP reloads the
 * certificates), and Ctrl-C / SIGTERM. It also holds the method
 * callbacks, which only route: paths under /api go to api.c, everything
 * else to static_files.c, after paths.c has made the target safe.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sockserv/strategy.h> /* ss_cpu_count */
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/bind_address.h"
#include "../common/cli.h"
#include "../common/tls_server.h"

/* The largest request body accepted (POST /api/echo); larger → 413. */
#define MAX_BODY_SIZE (64 * 1024)

static httpd_context context;

/* do_GET, do_HEAD and do_POST: one router for all three. */
static int route_request(ss_http *h)
{
    httpd_context *ctx = ss_http_config_user(h);
    atomic_fetch_add(ctx->requests_served, 1);

    httpd_path path;
    int status = httpd_path_parse(ss_http_target(h), &path);
    if (status != 0)
        return ss_http_send_error(h, status, NULL) < 0 ? -1 : 0;
    int rc;
    if (httpd_api_owns(path.relative)) /* decoded: "/%61pi" is /api */
        rc = httpd_api_handle(h, ctx, &path);
    else if (strcmp(ss_http_method_name(h), "POST") == 0)
        /* Python's SimpleHTTPRequestHandler has no do_POST either */
        rc = ss_http_send_error(h, 501, "Unsupported method ('POST')") < 0 ? -1
                                                                           : 0;
    else
        rc = httpd_serve_static(h, ctx, &path);
    httpd_path_free(&path);
    return rc;
}

static const ss_http_method methods[] = {
    {"GET", route_request},
    {"HEAD", route_request},
    {"POST", route_request},
    {NULL, NULL},
};

/* --mode: add a strategy here and it becomes a valid choice. */
static const struct {
    const char *name;
    const ss_strategy *strategy;
} modes[] = {
    {"thread", &ss_threading},    /* a thread per connection (default) */
    {"sync", &ss_sync},           /* one connection at a time */
    {"fork", &ss_forking},        /* a child process per connection */
    {"pool", &ss_thread_pool},    /* --threads worker threads */
    {"prefork", &ss_prefork},     /* --workers processes sharing the socket */
    {"coro", &ss_coroutines},     /* coroutines on --threads epoll loops */
    {"threading", &ss_threading}, /* Python's names for thread and fork */
    {"forking", &ss_forking},
};
#define N_MODES (sizeof modes / sizeof modes[0])

static const char usage[] =
    "usage: sockserv-httpd [-h] [-b ADDRESS] [-d DIRECTORY] [--mode MODE]\n"
    "                      [--workers N] [--reuseport] [--threads N]\n"
    "                      [--max-connections N] [-q] [--port-file PATH]\n"
    "                      [--access-log FILE] [--access-log-buffer SIZE]\n"
    "                      [--access-log-flush SECONDS]\n"
    "                      [--no-file-cache] [--file-cache-entries N]\n"
    "                      [--file-cache-size BYTES]\n"
    "                      [--proxy-protocol[=v1|v2]] [--trusted-proxy ADDRS]\n"
    "                      [--tls-cert PATH] [--tls-key PATH]\n"
    "                      [--tls-password-file PATH] [PORT]\n";
static const char help[] =
    "\nServe the files of a directory over HTTP, with a small JSON API.\n\n"
    "positional arguments:\n"
    "  PORT                  bind to this port (default: 8000; 0: any free "
    "port)\n\n"
    "options:\n"
    "  -h, --help            show this help message and exit\n"
    "  -b, --bind ADDRESS    bind to this address (default: all interfaces,\n"
    "                        IPv6 and IPv4)\n"
    "  -d, --directory DIR   serve this directory (default: current "
    "directory)\n"
    "  --mode MODE           how requests run: thread (default), sync, fork,\n"
    "                        pool, prefork, coro\n"
    "  --workers N           prefork: worker processes (default: CPU count)\n"
    "  --reuseport           prefork: a listening socket per worker\n"
    "                        (SO_REUSEPORT) instead of one shared socket\n"
    "  --threads N           pool: worker threads (default: 2 x CPUs);\n"
    "                        thread: at most N at once (default: unbounded);\n"
    "                        prefork: a pool of N threads in each worker;\n"
    "                        coro: N scheduler threads (default: CPU count)\n"
    "  --max-connections N   connections open at once, per process (0: no\n"
    "                        limit; default: what the descriptor limit leaves\n"
    "                        room for, three descriptors per connection)\n"
    "  --no-file-cache       open every file on every request (by default\n"
    "                        files are cached, never stale: inotify)\n"
    "  --file-cache-entries N\n"
    "                        files the cache holds (default: 4096)\n"
    "  --file-cache-size BYTES\n"
    "                        bytes of small files it holds, K/M/G suffixes\n"
    "                        allowed (default: 64M)\n"
    "  -q, --quiet           no access log\n"
    "  --access-log FILE     append the access log to FILE, reopened on\n"
    "                        SIGHUP (default: stderr)\n"
    "  --access-log-buffer SIZE\n"
    "                        bytes each thread buffers, e.g. 64k (default;\n"
    "                        0 or stderr a terminal: each line at once)\n"
    "  --access-log-flush SECONDS\n"
    "                        longest a line waits in a buffer (default: 1)\n"
    "  --port-file PATH      write the bound port to PATH once listening\n"
    "                        (for scripts and tests that pass PORT 0)\n"
    "  --proxy-protocol[=v1|v2]\n"
    "                        behind a load balancer: every connection starts\n"
    "                        with a PROXY protocol header (v1, v2, or either\n"
    "                        when no version is given) naming the real client\n"
    "  --trusted-proxy ADDRS only these addresses/networks may send it, e.g.\n"
    "                        '127.0.0.1,10.0.0.0/8' (default: any peer)\n"
    "  --tls-cert PATH       serve HTTPS with this PEM certificate chain\n"
    "                        (SIGHUP reloads the files)\n"
    "  --tls-key PATH        its PEM private key (default: in --tls-cert)\n"
    "  --tls-password-file PATH\n"
    "                        the password of an encrypted --tls-key\n";

/* Long-only options: vals that no letter can have. */
enum {
    OPT_MODE = CLI_LONG_ONLY,
    OPT_WORKERS,
    OPT_REUSEPORT,
    OPT_THREADS,
    OPT_MAX_CONNECTIONS,
    OPT_NO_FILE_CACHE,
    OPT_FILE_CACHE_ENTRIES,
    OPT_FILE_CACHE_SIZE,
    OPT_PORT_FILE,
    OPT_PROXY_PROTOCOL,
    OPT_TRUSTED_PROXY,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_PASSWORD_FILE,
    OPT_ACCESS_LOG,
    OPT_ACCESS_LOG_BUFFER,
    OPT_ACCESS_LOG_FLUSH,
};

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"bind", required_argument, NULL, 'b'},
    {"directory", required_argument, NULL, 'd'},
    {"quiet", no_argument, NULL, 'q'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"reuseport", no_argument, NULL, OPT_REUSEPORT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"no-file-cache", no_argument, NULL, OPT_NO_FILE_CACHE},
    {"file-cache-entries", required_argument, NULL, OPT_FILE_CACHE_ENTRIES},
    {"file-cache-size", required_argument, NULL, OPT_FILE_CACHE_SIZE},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"proxy-protocol", optional_argument, NULL, OPT_PROXY_PROTOCOL},
    {"trusted-proxy", required_argument, NULL, OPT_TRUSTED_PROXY},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-password-file", required_argument, NULL, OPT_TLS_PASSWORD_FILE},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"access-log-buffer", required_argument, NULL, OPT_ACCESS_LOG_BUFFER},
    {"access-log-flush", required_argument, NULL, OPT_ACCESS_LOG_FLUSH},
    {NULL, 0, NULL, 0},
};

/* The command line, checked. */
typedef struct httpd_options {
    const char *host; /* --bind; NULL: every interface */
    const char *directory;
    const ss_strategy *strategy;
    const char *mode; /* one name per strategy, for /api/status */
    const char *port; /* as given, or NULL */
    int port_number;
    int workers, threads; /* 0: not given */
    int max_connections;  /* -1 until decided; 0: no limit */
    bool file_cache;      /* --no-file-cache clears it */
    long cache_entries;   /* --file-cache-entries */
    long long cache_size; /* --file-cache-size, in bytes */
    bool reuseport, quiet;
    const char *port_file;
    int proxy_protocol; /* 0: off, else SS_PROXY_V1, _V2 or _ANY */
    const char *trusted_proxy;
    tls_server_args tls;     /* all NULL: HTTP */
    const char *access_log;  /* NULL: stderr */
    long access_log_buffer;  /* -1: not given */
    double access_log_flush; /* 0: not given */
    char address[300];       /* what the library parses: "[::]:8000", ... */
} httpd_options;

/* A decimal count in [min, max], or a usage error naming the option. */
static int count_argument(const cli *c, const char *name, const char *text,
                          long min, long max)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || value < min || value > max)
        cli_error(c, "argument %s: invalid value: '%s'", name, text);
    return (int)value;
}

/* A byte count with an optional K, M or G (binary) suffix, or a usage
 * error: --file-cache-size. */
static long long size_argument(const cli *c, const char *name,
                               const char *text)
{
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    int shift = *end == 'K' || *end == 'k'   ? 10
                : *end == 'M' || *end == 'm' ? 20
                : *end == 'G' || *end == 'g' ? 30
                                             : 0;
    if (shift)
        end++;
    if (errno || end == text || *end != '\0' || value < 0 ||
        value > (1LL << 40) >> shift)
        cli_error(c, "argument %s: invalid value: '%s'", name, text);
    return value << shift;
}

static const ss_strategy *mode_argument(const cli *c, const char **mode)
{
    for (size_t m = 0; m < N_MODES; m++)
        if (!strcmp(*mode, modes[m].name)) {
            /* one name in /api/status whatever was typed */
            *mode = modes[m].strategy == &ss_threading ? "thread"
                    : modes[m].strategy == &ss_forking ? "fork"
                                                       : modes[m].name;
            return modes[m].strategy;
        }
    cli_error(c,
              "argument --mode: invalid choice: '%s' (choose from thread, "
              "sync, fork, pool, prefork, coro)",
              *mode);
}

static int proxy_argument(const cli *c, const char *version)
{
    if (version == NULL || !strcmp(version, "any")) /* the value is optional */
        return SS_PROXY_ANY;
    if (!strcmp(version, "v1") || !strcmp(version, "v2"))
        return version[1] == '1' ? SS_PROXY_V1 : SS_PROXY_V2;
    cli_error(c,
              "argument --proxy-protocol: invalid choice: '%s' (choose from "
              "v1, v2)",
              version);
}

/* Descriptors a process of the server holds whatever its load: the
 * standard streams, the served directory, the listening socket, the
 * server's eventfds and spare descriptor, a prefork worker's pipe (about
 * ten in all), with room to spare; and a coroutine scheduler's epoll
 * descriptor per thread, counted apart. */
#define RESERVED_DESCRIPTORS 32
/* The most one connection holds at once: its socket, the file or
 * directory it asked for, and one more (the directory's index.html, or
 * the listing's copy of the directory). */
#define DESCRIPTORS_PER_CONNECTION 3
/* Where the limit is unlimited (or huge), a cap all the same. */
#define MAX_DEFAULT_CONNECTIONS (1 << 20)

/* The descriptors of large files the file cache may keep open: a quarter
 * of the descriptor limit, at most one per entry. */
static size_t file_cache_descriptors(const httpd_options *o)
{
    struct rlimit limit;
    size_t most = (size_t)o->cache_entries;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
        limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur / 4 < most)
        most = (size_t)(limit.rlim_cur / 4);
    return most;
}

/* The default of --max-connections: as many connections as the process's
 * descriptor limit (RLIMIT_NOFILE, soft) leaves room for, each with the
 * files it is being served. At that many the server stops accepting, and
 * new connections wait in the listen backlog (backpressure) instead of
 * running the process out of descriptors: out of descriptors, accepting
 * sheds connections and opening a file fails (503). The limit is per
 * process, as the descriptor limit is: each prefork worker and forked
 * child has its own. */
static int default_max_connections(const httpd_options *o)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 ||
        limit.rlim_cur == RLIM_INFINITY)
        return MAX_DEFAULT_CONNECTIONS;
    rlim_t reserved = RESERVED_DESCRIPTORS;
    if (o->strategy == &ss_coroutines)
        reserved += (rlim_t)(o->threads ? o->threads : ss_cpu_count());
    if (limit.rlim_cur < reserved + DESCRIPTORS_PER_CONNECTION)
        return 1; /* a tiny limit: serve one at a time, as well as it can */
    if (o->file_cache && o->strategy != &ss_forking) /* what it may keep */
        reserved += file_cache_descriptors(o);
    if (limit.rlim_cur < reserved + DESCRIPTORS_PER_CONNECTION)
        return 1;
    rlim_t most = (limit.rlim_cur - reserved) / DESCRIPTORS_PER_CONNECTION;
    return most > MAX_DEFAULT_CONNECTIONS ? MAX_DEFAULT_CONNECTIONS : (int)most;
}

/* Options and PORT in any order, like argparse; every mistake is a usage
 * error (exit status 2). */
static void parse_options(httpd_options *o, int argc, char **argv)
{
    cli c = {.prog = "sockserv-httpd",
             .usage = usage,
             .shortopts = "-:b:d:hq",
             .longopts = longopts};
    *o = (httpd_options){
        .directory = ".",
        .mode = "thread",
        .max_connections = -1,
        .access_log_buffer = -1,
        .file_cache = true,
        .cache_entries = 4096,
        .cache_size = 64 << 20};
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
            printf("%s%s", usage, help);
            exit(0);
        case 'b':
            o->host = value;
            break;
        case 'd':
            o->directory = value;
            break;
        case 'q':
            o->quiet = true;
            break;
        case OPT_MODE:
            o->mode = value;
            break;
        case OPT_REUSEPORT:
            o->reuseport = true;
            break;
        case OPT_PORT_FILE:
            o->port_file = value;
            break;
        case OPT_TRUSTED_PROXY:
            o->trusted_proxy = value;
            break;
        case OPT_WORKERS:
            o->workers = count_argument(&c, "--workers", value, 1, 4096);
            break;
        case OPT_THREADS:
            o->threads = count_argument(&c, "--threads", value, 1, 65536);
            break;
        case OPT_NO_FILE_CACHE:
            o->file_cache = false;
            break;
        case OPT_FILE_CACHE_ENTRIES:
            o->cache_entries =
                count_argument(&c, "--file-cache-entries", value, 1, 1 << 24);
            break;
        case OPT_FILE_CACHE_SIZE:
            o->cache_size = size_argument(&c, "--file-cache-size", value);
            break;
        case OPT_MAX_CONNECTIONS:
            o->max_connections =
                count_argument(&c, "--max-connections", value, 0, 1 << 30);
            break;
        case OPT_PROXY_PROTOCOL:
            o->proxy_protocol = proxy_argument(&c, value);
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
        case OPT_ACCESS_LOG:
            o->access_log = value;
            break;
        case OPT_ACCESS_LOG_BUFFER:
            if (httpd_log_size(value, &o->access_log_buffer) < 0)
                cli_error(&c,
                          "argument --access-log-buffer: invalid size: '%s' "
                          "(bytes, k or m, at most 16m)",
                          value);
            break;
        case OPT_ACCESS_LOG_FLUSH: {
            char *end;
            o->access_log_flush = strtod(value, &end);
            if (end == value || *end != '\0' || !(o->access_log_flush > 0) ||
                o->access_log_flush > 86400)
                cli_error(&c,
                          "argument --access-log-flush: invalid value: '%s' "
                          "(seconds, more than 0, at most 86400)",
                          value);
            break;
        }
        }
    }
    cli_finish(&c);

    o->strategy = mode_argument(&c, &o->mode);
    o->port_number =
        o->port ? count_argument(&c, "PORT", o->port, 0, 65535) : 8000;
    /* Default: "[::]:PORT", which is dual-stack (cfg.ipv6_only is false),
     * or all IPv4 interfaces where IPv6 is unavailable (server_new). */
    const char *bad = bind_address(o->address, sizeof o->address,
                                   o->host ? o->host : "::", o->port_number,
                                   SOCK_STREAM, NULL);
    if (bad)
        cli_error(&c, "argument %s: %s", cli_name(&c, 'b'), bad);
    if (o->reuseport && o->strategy != &ss_prefork)
        cli_error(&c, "argument --reuseport: needs --mode prefork");
    if (o->trusted_proxy && !o->proxy_protocol)
        cli_error(&c, "argument --trusted-proxy: needs --proxy-protocol");
    if (o->max_connections < 0)
        o->max_connections = default_max_connections(o);
    /* Python 3.14's http.server says the same. */
    tls_server_check_args(&c, &o->tls);
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

/* How requests run: the strategy's settings from --workers, --threads and
 * --reuseport (0: the strategy's default). */
static void apply_mode_options(ss_config *cfg, mode_options *m,
                               const httpd_options *o)
{
    *m = (mode_options){
        .threading.max_threads = o->threads,
        .pool.pool_size = o->threads,
        .coro.threads = o->threads,
        /* A prefork worker running requests one at a time would be held
         * by every idle keep-alive connection; give each worker threads
         * (a pool of --threads, or a thread per connection). */
        .prefork = {.workers = o->workers,
                    .reuseport = o->reuseport,
                    .worker_strategy =
                        o->threads ? &ss_thread_pool : &ss_threading}};
    m->prefork.worker_options = o->threads ? (const void *)&m->pool : NULL;
    if (o->strategy == &ss_threading)
        cfg->strategy_options = &m->threading;
    else if (o->strategy == &ss_thread_pool)
        cfg->strategy_options = &m->pool;
    else if (o->strategy == &ss_prefork)
        cfg->strategy_options = &m->prefork;
    else if (o->strategy == &ss_coroutines)
        cfg->strategy_options = &m->coro;
}

/* Python's http.server.test(): "Serving HTTP on HOST port PORT (URL) ...",
 * HTTPS and https:// with --tls-cert. */
static void print_serving(ss_server *srv, bool tls)
{
    const char *protocol = tls ? "HTTPS" : "HTTP";
    struct sockaddr_storage address;
    socklen_t len = sizeof address;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = ss_server_port(srv);
    if (port < 0) { /* a Unix socket, from socket activation */
        char path[128];
        ss_server_address_string(srv, path, sizeof path);
        printf("Serving %s on %s ...\n", protocol, path);
        fflush(stdout);
        return;
    }
    if (ss_server_address(srv, (struct sockaddr *)&address, &len) == 0) {
        if (address.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&address)->sin6_addr,
                      host, sizeof host);
        else
            inet_ntop(AF_INET, &((struct sockaddr_in *)&address)->sin_addr,
                      host, sizeof host);
    }
    bool v6 = strchr(host, ':') != NULL;
    printf("Serving %s on %s port %d (%s://%s%s%s:%d/) ...\n", protocol, host,
           port, tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
           port);
    fflush(stdout);
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static int write_port_file(const char *path, int port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int rc = -errno;
        unlink(tmp);
        return rc;
    }
    return 0;
}

/* Socket activation (docs/deployment.md): a service manager that passed
 * listening sockets (LISTEN_FDS) decides the address. Serve the socket
 * named "http" (FileDescriptorName=http), else the first; TCP or Unix
 * stream, whichever it is. Returns 1 with *srv made, 0 when the process
 * was not socket-activated, -1 after saying why it cannot serve. */
static int serve_passed_socket(ss_server **srv, const ss_strategy *strategy,
                               const ss_handler_class *handler,
                               const ss_config *cfg, bool address_given)
{
    char **names;
    int n = ss_listen_fds_with_names(true, &names);
    if (n <= 0) {
        if (n < 0)
            fprintf(stderr, "sockserv-httpd: socket activation: %s\n",
                    ss_strerror(n));
        return n < 0 ? -1 : 0;
    }
    int pick = 0;
    for (int i = n - 1; i >= 0; i--) /* the first one named "http" */
        if (strcmp(names[i], "http") == 0)
            pick = i;
    int fd = SS_LISTEN_FDS_START + pick, domain = AF_UNSPEC;
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &(socklen_t){sizeof(int)});
    int rc = ss_server_new_fd(
        srv, tls_server_kind(domain == AF_UNIX ? &ss_unix_stream : &ss_tcp),
        strategy, fd, handler, cfg);
    if (rc < 0)
        fprintf(stderr,
                "sockserv-httpd: cannot serve on passed descriptor %d "
                "(\"%s\"): %s%s\n",
                fd, names[pick], ss_strerror(rc),
                rc == -EPROTOTYPE ? " (HTTP needs a stream socket)" : "");
    else
        printf("sockserv-httpd: socket activation: serving descriptor %d "
               "(\"%s\")%s\n",
               fd, names[pick],
               address_given ? "; PORT and --bind are ignored" : "");
    free(names);
    return rc < 0 ? -1 : 1;
}

/* The served directory, kept open, and its canonical path kept for the
 * containment check in paths.c; the request counter, in memory shared
 * with forked children and prefork workers. Returns 0, or -1 after saying
 * why. */
static int context_init(httpd_context *ctx, const httpd_options *o)
{
    ctx->root_fd = open(o->directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ctx->root_fd < 0 || realpath(o->directory, ctx->root_path) == NULL) {
        fprintf(stderr, "sockserv-httpd: cannot serve %s: %s\n", o->directory,
                strerror(errno));
        return -1;
    }
    ctx->root_len = strlen(ctx->root_path);
    ctx->mode = o->mode;
    ctx->max_connections = o->max_connections;
    ctx->tls = o->tls.cert != NULL;
    ctx->started_ns = ss_now_ns();
    void *page =
        mmap(NULL, sizeof *ctx->requests_served, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("sockserv-httpd: mmap");
        return -1;
    }
    ctx->requests_served = page;
    atomic_init(ctx->requests_served, 0);
    /* Not under --mode fork: a child lives for one connection, and would
     * fill a cache only to drop it. Each prefork worker gets its own
     * (file_cache.c starts a forked child afresh). */
    if (o->file_cache && o->strategy != &ss_forking &&
        (ctx->file_cache = file_cache_new(
             ctx->root_fd, (size_t)o->cache_entries, (size_t)o->cache_size,
             file_cache_descriptors(o), httpd_file_validators,
             httpd_guess_type)) == NULL) {
        fprintf(stderr, "sockserv-httpd: file cache: out of memory\n");
        return -1;
    }
    return 0;
}

static void context_free(httpd_context *ctx)
{
    file_cache_free(ctx->file_cache);
    close(ctx->root_fd);
    munmap(ctx->requests_served, sizeof *ctx->requests_served);
}

/* The server on the passed socket, the --bind address or, by default,
 * "[::]:PORT" falling back to all IPv4 interfaces where IPv6 is
 * unavailable. Returns 0, or -1 after saying why. */
static int server_new(ss_server **srv, httpd_options *o,
                      const ss_handler_class *handler)
{
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* http.server's HTTPServer does too */
    cfg.max_connections = o->max_connections;
    /* The kernel's receive stamps: a file cache hit whose request arrived
     * before a read of the inotify queue began skips its own read
     * (file_cache.h). */
    cfg.input_timestamps = o->file_cache && o->strategy != &ss_forking;
    /* The client speaks first: the kernel hands over a connection once
     * its request is there (as h2o and nginx's "deferred" do), a wake-up
     * and an empty receive fewer per connection. */
    cfg.defer_accept = 1;
    mode_options strategy_options;
    apply_mode_options(&cfg, &strategy_options, o);
    /* Behind a load balancer (docs/deployment.md): the access log then
     * names the client the PROXY header gives, not the balancer. */
    if (o->proxy_protocol) {
        cfg.proxy_protocol = o->proxy_protocol;
        cfg.proxy_trusted = o->trusted_proxy;
    }

    int activated = serve_passed_socket(srv, o->strategy, handler, &cfg,
                                        o->port || o->host);
    if (activated != 0)
        return activated < 0 ? -1 : 0;
    int rc = ss_server_new(srv, tls_server_kind(&ss_tcp), o->strategy,
                           o->address, handler, &cfg);
    if (rc < 0 && o->host == NULL &&
        (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL)) {
        snprintf(o->address, sizeof o->address, ":%d", o->port_number);
        rc = ss_server_new(srv, tls_server_kind(&ss_tcp), o->strategy,
                           o->address, handler, &cfg);
    }
    if (rc < 0)
        fprintf(stderr, "sockserv-httpd: cannot serve on %s: %s%s\n",
                o->address, ss_strerror(rc),
                rc == -EINVAL && o->trusted_proxy
                    ? " (is --trusted-proxy a list of addresses?)"
                    : "");
    return rc < 0 ? -1 : 0;
}

/* Until Ctrl-C or SIGTERM: ss_serve_forever() returns then. */
static int serve(ss_server *srv, const httpd_options *o)
{
    int rc = ss_shutdown_on_signals(srv);
    bool reported = false;
    if (rc == 0 && o->port_file && ss_server_port(srv) >= 0) { /* not Unix */
        rc = write_port_file(o->port_file, ss_server_port(srv));
        if (rc < 0)
            fprintf(stderr,
                    "sockserv-httpd: cannot write the port file %s: "
                    "%s\n",
                    o->port_file, ss_strerror(rc));
        reported = rc < 0;
    }
    if (rc == 0) {
        print_serving(srv, tls_server_on());
        rc = ss_serve_forever(srv, 0.5);
    }
    if (rc < 0 && !reported)
        fprintf(stderr, "sockserv-httpd: %s\n", ss_strerror(rc));
    else if (!o->quiet)
        printf("\nShutting down.\n");
    return rc;
}

int main(int argc, char **argv)
{
    httpd_options o;
    parse_options(&o, argc, argv);
    if (context_init(&context, &o) < 0)
        return 1;

    ss_http_config http;
    ss_http_config_init(&http);
    http.methods = methods;
    http.server_version = "sockserv-httpd/0.1";
    http.max_body_size = MAX_BODY_SIZE;
    http.quiet = o.quiet;
    http.user = &context;
    http.error_head = httpd_page_head; /* the listing's stylesheet */
    ss_handler_class handler = ss_http_handler;
    handler.class_data = &http;

    if (o.tls.cert && tls_server_open("sockserv-httpd", &o.tls) < 0) {
        context_free(&context);
        return 1;
    }
    /* After TLS: its SIGHUP handler is then chained to the log's. */
    if (!o.quiet && httpd_log_open(o.access_log, o.access_log_buffer,
                                   o.access_log_flush, &http.access_log) < 0) {
        tls_server_close();
        context_free(&context);
        return 1;
    }
    ss_server *srv;
    int rc = server_new(&srv, &o, &handler);
    if (rc == 0) {
        rc = tls_server_attach(srv);
        if (rc == 0)
            rc = serve(srv, &o);
        ss_server_free(srv);
    }
    tls_server_close();
    if (!o.quiet)
        httpd_log_close(); /* after the server: its last lines */
    context_free(&context);
    return rc < 0 ? 1 : 0;
}
