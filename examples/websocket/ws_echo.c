/*
 * sockserv-ws-echo — a WebSocket echo server: every message a client sends
 * comes back as it was, text or binary, whatever its size.
 *
 *   sockserv-ws-echo [-b ADDRESS] [--mode MODE] [--threads N] [--workers N]
 *                    [--max-message BYTES] [--port-file PATH] [-q] [PORT]
 *
 * The handler is the echo of docs/websocket.md, streaming: each part of a
 * message is sent on as it arrives (ss_ws_receive_part, ss_ws_send_part),
 * so a connection holds one small buffer whatever the message's size, and
 * 10,000 idle connections under --mode coro cost little. A GET that is
 * not an upgrade gets a line saying where to connect. The same handler
 * runs under every mode; conformance tests (tests/e2e/ws_conformance.py)
 * and the benchmark (bench/run_ws_bench.py) drive it.
 */
#include <sockserv/http.h>
#include <sockserv/strategy.h>
#include <sockserv/websocket.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/bind_address.h"
#include "../common/cli.h"

/* The largest part moved at once; on a coroutine's stack only the pages a
 * message touches are ever used. */
#define PART 16384

static ss_ws_config ws_config; /* max_message_size from --max-message */

static int do_GET(ss_http *h)
{
    if (!ss_ws_is_upgrade(h)) {
        static const char body[] =
            "sockserv-ws-echo: connect a WebSocket client to this URL\n";
        ss_http_send_response(h, 200, NULL);
        ss_http_send_header(h, "Content-Type", "text/plain");
        ss_http_send_headerf(h, "Content-Length", "%zu", sizeof body - 1);
        ss_http_end_headers(h);
        return ss_http_write(h, body, sizeof body - 1) < 0;
    }
    ss_ws *ws;
    if (ss_ws_accept(h, &ws_config, &ws) < 0)
        return 0; /* refused, and answered (400, 426) */
    char part[PART];
    ss_ws_type type;
    bool final;
    int n;
    while ((n = ss_ws_receive_part(ws, part, sizeof part, &type, &final)) >= 0)
        if (ss_ws_send_part(ws, type, part, (size_t)n, final) < 0)
            break;
    if (n == -ECANCELED) /* the server is stopping */
        ss_ws_close(ws, SS_WS_GOING_AWAY, "server shutting down");
    ss_ws_free(ws);
    return 0;
}

static const ss_http_method methods[] = {{"GET", do_GET}, {NULL, NULL}};

static const struct {
    const char *name;
    const ss_strategy *strategy;
} modes[] = {
    {"thread", &ss_threading}, {"sync", &ss_sync},
    {"fork", &ss_forking},     {"pool", &ss_thread_pool},
    {"prefork", &ss_prefork},  {"coro", &ss_coroutines},
};

static const char usage[] =
    "usage: sockserv-ws-echo [-h] [-b ADDRESS] [--mode MODE] [--threads N]\n"
    "                        [--workers N] [--max-message BYTES]\n"
    "                        [--port-file PATH] [-q] [PORT]\n";
static const char help[] =
    "\nA WebSocket echo server: each message comes back as it was sent.\n\n"
    "positional arguments:\n"
    "  PORT                  bind to this port (default: 8765; 0: any free "
    "port)\n\n"
    "options:\n"
    "  -h, --help            show this help message and exit\n"
    "  -b, --bind ADDRESS    bind to this address (default: 127.0.0.1)\n"
    "  --mode MODE           how connections run: thread (default), sync,\n"
    "                        fork, pool, prefork, coro\n"
    "  --threads N           pool: worker threads; coro: scheduler threads\n"
    "  --workers N           prefork: worker processes\n"
    "  --max-message BYTES   largest message accepted (default: 16 MiB)\n"
    "  --port-file PATH      write the bound port to PATH once listening\n"
    "  -q, --quiet           no access log\n";

enum { OPT_MODE = CLI_LONG_ONLY, OPT_THREADS, OPT_WORKERS, OPT_MAX, OPT_PORT_FILE };

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"bind", required_argument, NULL, 'b'},
    {"quiet", no_argument, NULL, 'q'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"max-message", required_argument, NULL, OPT_MAX},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {0},
};

static long number(const cli *c, int opt, const char *value, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno || end == value || *end || n < lo || n > hi)
        cli_error(c, "argument %s: invalid value: '%s'", cli_name(c, opt),
                  value);
    return n;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    cli c = {.prog = "sockserv-ws-echo",
             .usage = usage,
             .shortopts = "-:b:hq",
             .longopts = longopts};
    const char *port = NULL, *host = "127.0.0.1", *mode = "thread";
    const char *port_file = NULL;
    int threads = 0, workers = 0;
    bool quiet = false;
    ws_config.max_message_size = (size_t)16 << 20;
    const char *value;
    int opt;
    while ((opt = cli_next(&c, argc, argv, &value)) != -1) {
        switch (opt) {
        case CLI_POSITIONAL:
            if (!port)
                port = value;
            else
                cli_extra(&c, value);
            break;
        case 'h':
            printf("%s%s", usage, help);
            return 0;
        case 'b':
            host = value;
            break;
        case 'q':
            quiet = true;
            break;
        case OPT_MODE:
            mode = value;
            break;
        case OPT_THREADS:
            threads = (int)number(&c, opt, value, 1, 4096);
            break;
        case OPT_WORKERS:
            workers = (int)number(&c, opt, value, 1, 4096);
            break;
        case OPT_MAX:
            ws_config.max_message_size =
                (size_t)number(&c, opt, value, 1, LONG_MAX);
            break;
        case OPT_PORT_FILE:
            port_file = value;
            break;
        default:
            cli_error(&c, "unrecognized arguments");
        }
    }
    cli_finish(&c);
    const ss_strategy *strategy = NULL;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        if (strcmp(mode, modes[m].name) == 0)
            strategy = modes[m].strategy;
    if (!strategy)
        cli_error(&c,
                  "argument --mode: invalid choice: '%s' (choose from thread, "
                  "sync, fork, pool, prefork, coro)",
                  mode);
    int port_number = 8765;
    if (port) { /* named PORT, as the other examples do, not "-?" */
        char *end;
        errno = 0;
        long n = strtol(port, &end, 10);
        if (errno || end == port || *end || n < 0 || n > 65535)
            cli_error(&c, "argument PORT: invalid port: '%s' (0 to 65535)",
                      port);
        port_number = (int)n;
    }
    char address[300];
    const char *why = bind_address(address, sizeof address, host, port_number,
                                   SOCK_STREAM, NULL);
    if (why)
        cli_error(&c, "argument -b/--bind: %s", why);

    /* Long-lived connections: as many as the hard descriptor limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    ss_http_config http;
    ss_http_config_init(&http);
    http.methods = methods;
    http.quiet = quiet;
    ss_handler_class handler = ss_http_handler;
    handler.class_data = &http;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.request_queue_size = 4096;
    ss_thread_pool_options pool = {.pool_size = threads};
    ss_coroutine_options coro = {.threads = threads};
    ss_prefork_options prefork = {.workers = workers};
    if (strategy == &ss_thread_pool)
        cfg.strategy_options = &pool;
    else if (strategy == &ss_coroutines)
        cfg.strategy_options = &coro;
    else if (strategy == &ss_prefork)
        cfg.strategy_options = &prefork;
    ss_server *srv;
    int rc = ss_server_new(&srv, &ss_tcp, strategy, address, &handler, &cfg);
    if (rc < 0) {
        fprintf(stderr, "sockserv-ws-echo: %s: %s\n", address, ss_strerror(rc));
        return 1;
    }
    char where[300];
    ss_server_address_string(srv, where, sizeof where);
    printf("sockserv-ws-echo: ws://%s/ (mode %s)\n", where, mode);
    fflush(stdout);
    if (port_file) {
        rc = write_port_file(port_file, ss_server_port(srv));
        if (rc < 0) {
            fprintf(stderr, "sockserv-ws-echo: %s: %s\n", port_file,
                    ss_strerror(rc));
            ss_server_free(srv);
            return 1;
        }
    }
    ss_shutdown_on_signals(srv);
    rc = ss_serve_forever(srv, 0.5);
    ss_server_free(srv);
    return rc < 0 ? 1 : 0;
}
