/*
 * sockserv-httpd — Python's `python -m http.server`, written with
 * libsockserv: serves the files of a directory over HTTP/1.1, with a small
 * JSON API next to them.
 *
 *   sockserv-httpd [PORT] [-b ADDR] [-d DIR] [--mode MODE] [--workers N]
 *                  [--reuseport] [--threads N] [-q] [--port-file PATH]
 *                  [--proxy-protocol[=v1|v2]] [--trusted-proxy ADDRS]
 *
 * This file is the program around the handler: the command line (options
 * and PORT in any order, like argparse), the mode table that picks a
 * strategy, the server, and Ctrl-C / SIGTERM. It also holds the method
 * callbacks, which only route: paths under /api go to api.c, everything
 * else to static_files.c, after paths.c has made the target safe.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/bind_address.h"

/* The largest request body accepted (POST /api/echo); larger → 413. */
#define MAX_BODY_SIZE (64 * 1024)

static httpd_context context;

/* do_GET, do_HEAD and do_POST: one router for all three. */
static int route_request(ss_http *h)
{
    httpd_context *ctx = ss_http_user(h);
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
    "                      [--workers N] [--reuseport] [--threads N] [-q]\n"
    "                      [--port-file PATH] [--proxy-protocol[=v1|v2]]\n"
    "                      [--trusted-proxy ADDRS] [PORT]\n";
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
    "  -q, --quiet           no access log\n"
    "  --port-file PATH      write the bound port to PATH once listening\n"
    "                        (for scripts and tests that pass PORT 0)\n"
    "  --proxy-protocol[=v1|v2]\n"
    "                        behind a load balancer: every connection starts\n"
    "                        with a PROXY protocol header (v1, v2, or either\n"
    "                        when no version is given) naming the real client\n"
    "  --trusted-proxy ADDRS only these addresses/networks may send it, e.g.\n"
    "                        '127.0.0.1,10.0.0.0/8' (default: any peer)\n";

/* Like argparse: usage and the reason on stderr, exit status 2. */
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(usage, stderr);
    fputs("sockserv-httpd: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* Matches "--long VALUE", "--long=VALUE" or "-s VALUE" (short may be
 * NULL); on a match *i moves past what was used. */
static bool option(int argc, char **argv, int *i, const char *short_name,
                   const char *long_name, const char **value)
{
    const char *arg = argv[*i];
    size_t len = strlen(long_name);
    if (strncmp(arg, long_name, len) == 0 && arg[len] == '=') {
        *value = arg + len + 1;
        return true;
    }
    if (strcmp(arg, long_name) != 0 &&
        !(short_name && !strcmp(arg, short_name)))
        return false;
    if (*i + 1 >= argc)
        usage_error("argument %s: expected one argument", long_name);
    *value = argv[++*i];
    return true;
}

/* A decimal count in [min, max], or a usage error naming the option. */
static int count_argument(const char *name, const char *text, long min,
                          long max)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || value < min || value > max)
        usage_error("argument %s: invalid value: '%s'", name, text);
    return (int)value;
}

/* Python's http.server.test(): "Serving HTTP on HOST port PORT (URL) ..." */
static void print_serving(ss_server *srv)
{
    struct sockaddr_storage address;
    socklen_t len = sizeof address;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = ss_server_port(srv);
    if (port < 0) { /* a Unix socket, from socket activation */
        char path[128];
        ss_server_address_string(srv, path, sizeof path);
        printf("Serving HTTP on %s ...\n", path);
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
    printf("Serving HTTP on %s port %d (http://%s%s%s:%d/) ...\n", host, port,
           v6 ? "[" : "", host, v6 ? "]" : "", port);
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
    int rc =
        ss_server_new_fd(srv, domain == AF_UNIX ? &ss_unix_stream : &ss_tcp,
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

int main(int argc, char **argv)
{
    const char *host = NULL, *directory = ".", *mode = "thread", *port = NULL,
               *workers = NULL, *threads = NULL, *port_file = NULL;
    const char *proxy = NULL, *trusted_proxy = NULL;
    bool quiet = false, reuseport = false;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s%s", usage, help);
            return 0;
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (!strcmp(argv[i], "--reuseport")) {
            reuseport = true;
        } else if (!strcmp(argv[i], "--proxy-protocol") ||
                   !strncmp(argv[i], "--proxy-protocol=", 17)) {
            proxy = argv[i][16] == '=' ? argv[i] + 17 : "any"; /* optional */
        } else if (option(argc, argv, &i, "-b", "--bind", &host) ||
                   option(argc, argv, &i, "-d", "--directory", &directory) ||
                   option(argc, argv, &i, NULL, "--mode", &mode) ||
                   option(argc, argv, &i, NULL, "--workers", &workers) ||
                   option(argc, argv, &i, NULL, "--threads", &threads) ||
                   option(argc, argv, &i, NULL, "--port-file", &port_file) ||
                   option(argc, argv, &i, NULL, "--trusted-proxy",
                          &trusted_proxy)) {
            continue;
        } else if ((argv[i][0] == '-' && argv[i][1] != '\0') || port != NULL) {
            usage_error("unrecognized arguments: %s", argv[i]);
        } else {
            port = argv[i];
        }
    }

    const ss_strategy *strategy = NULL;
    for (size_t m = 0; m < N_MODES; m++)
        if (!strcmp(mode, modes[m].name))
            strategy = modes[m].strategy, mode = modes[m].name;
    if (strategy == &ss_threading)
        mode = "thread"; /* one name in /api/status whatever was typed */
    else if (strategy == &ss_forking)
        mode = "fork";
    if (strategy == NULL)
        usage_error("argument --mode: invalid choice: '%s' (choose from "
                    "thread, sync, fork, pool, prefork, coro)",
                    mode);
    int port_number = port ? count_argument("PORT", port, 0, 65535) : 8000;
    /* Default: "[::]:PORT", which is dual-stack (cfg.ipv6_only is false),
     * or all IPv4 interfaces where IPv6 is unavailable (below). */
    char address[300];
    const char *bad =
        bind_address(address, sizeof address, host ? host : "::", port_number,
                     SOCK_STREAM, NULL);
    if (bad)
        usage_error("argument --bind: %s", bad);

    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* http.server's HTTPServer does too */
    if (workers)
        cfg.workers = count_argument("--workers", workers, 1, 4096);
    if (reuseport && strategy != &ss_prefork)
        usage_error("argument --reuseport: needs --mode prefork");
    cfg.prefork_reuseport = reuseport;
    if (threads) {
        int n = count_argument("--threads", threads, 1, 65536);
        cfg.pool_size = n;
        cfg.max_threads = n;
        cfg.coro_threads = n;
    }
    /* A prefork worker running requests one at a time would be held by
     * every idle keep-alive connection; give each worker threads. */
    cfg.worker_strategy = threads ? &ss_thread_pool : &ss_threading;
    /* Behind a load balancer (docs/deployment.md): the access log then
     * names the client the PROXY header gives, not the balancer. */
    if (proxy) {
        cfg.proxy_protocol = !strcmp(proxy, "v1")    ? SS_PROXY_V1
                             : !strcmp(proxy, "v2")  ? SS_PROXY_V2
                             : !strcmp(proxy, "any") ? SS_PROXY_ANY
                                                     : 0;
        if (cfg.proxy_protocol == 0)
            usage_error("argument --proxy-protocol: invalid choice: '%s' "
                        "(choose from v1, v2)",
                        proxy);
        cfg.proxy_trusted = trusted_proxy;
    } else if (trusted_proxy) {
        usage_error("argument --trusted-proxy: needs --proxy-protocol");
    }

    /* The served directory: kept open, and its canonical path kept for
     * the containment check in paths.c. */
    context.root_fd = open(directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (context.root_fd < 0 || realpath(directory, context.root_path) == NULL) {
        fprintf(stderr, "sockserv-httpd: cannot serve %s: %s\n", directory,
                strerror(errno));
        return 1;
    }
    context.root_len = strlen(context.root_path);
    context.mode = mode;
    context.started_ns = ss_now_ns();
    /* Shared with forked children and prefork workers. */
    void *page =
        mmap(NULL, sizeof *context.requests_served, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("sockserv-httpd: mmap");
        return 1;
    }
    context.requests_served = page;
    atomic_init(context.requests_served, 0);

    ss_http_config http;
    ss_http_config_init(&http);
    http.methods = methods;
    http.server_version = "sockserv-httpd/0.1";
    http.max_body_size = MAX_BODY_SIZE;
    http.quiet = quiet;
    http.user = &context;
    ss_handler_class handler = ss_http_handler;
    handler.class_data = &http;

    ss_server *srv;
    int activated =
        serve_passed_socket(&srv, strategy, &handler, &cfg, port || host);
    if (activated < 0)
        return 1;
    int rc = activated ? 0
                       : ss_server_new(&srv, &ss_tcp, strategy, address,
                                       &handler, &cfg);
    if (rc < 0 && host == NULL &&
        (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL)) {
        snprintf(address, sizeof address, ":%d", port_number);
        rc = ss_server_new(&srv, &ss_tcp, strategy, address, &handler, &cfg);
    }
    if (rc < 0) {
        fprintf(stderr, "sockserv-httpd: cannot serve on %s: %s%s\n", address,
                ss_strerror(rc),
                rc == -EINVAL && trusted_proxy
                    ? " (is --trusted-proxy a list of addresses?)"
                    : "");
        return 1;
    }
    /* Ctrl-C and SIGTERM make ss_serve_forever() return. */
    rc = ss_shutdown_on_signals(srv);
    bool reported = false;
    if (rc == 0 && port_file && ss_server_port(srv) >= 0) { /* not Unix */
        rc = write_port_file(port_file, ss_server_port(srv));
        if (rc < 0)
            fprintf(stderr,
                    "sockserv-httpd: cannot write the port file %s: "
                    "%s\n",
                    port_file, ss_strerror(rc));
        reported = rc < 0;
    }
    if (rc == 0) {
        print_serving(srv);
        rc = ss_serve_forever(srv, 0.5);
    }
    if (rc < 0 && !reported)
        fprintf(stderr, "sockserv-httpd: %s\n", ss_strerror(rc));
    else if (!quiet)
        printf("\nShutting down.\n");
    ss_server_free(srv);
    close(context.root_fd);
    munmap(page, sizeof *context.requests_served);
    return rc < 0 ? 1 : 0;
}
