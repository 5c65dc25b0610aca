/*
 * sockserv-fileserver — the lesson's fork-based file server ("ftp文件服务器")
 * rebuilt on libsockserv: clients list, download and upload the files of
 * one directory over a small line protocol (protocol.h).
 *
 *   sockserv-fileserver [--mode fork|thread|pool|coro|sync] [-d DIR]
 *                       [-b ADDR] [--max-size SIZE] [--timeout SECONDS]
 *                       [-q] [--port-file PATH] [--tls-cert PATH
 *                       [--tls-key PATH] [--tls-password-file PATH]] [PORT]
 *
 * This file is the program around the handler: the command line (options
 * and PORT in any order, like argparse: getopt_long through
 * ../common/cli.h), the mode table that picks the
 * strategy, the server, and Ctrl-C / SIGTERM. The lesson forked a child per
 * client by hand; here that is one row of the mode table, and the same
 * handler (handler.c) runs in every row. With --tls-cert every mode serves
 * TLS (../common/tls_server.c); the handler does not change.
 */
#include "fileserver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/bind_address.h"
#include "../common/cli.h"
#include "../common/tls_server.h"

#define DEFAULT_MAX_SIZE ((off_t)100 * 1024 * 1024)
#define DEFAULT_TIMEOUT 60.0

/* --mode: add a strategy here and it becomes a valid choice. */
static const struct {
    const char *name;
    const ss_strategy *strategy;
} modes[] = {
    {"fork", &ss_forking},     /* a child process per client (default) */
    {"thread", &ss_threading}, /* a thread per client */
    {"pool", &ss_thread_pool}, /* a fixed set of worker threads */
    {"coro", &ss_coroutines},  /* coroutines on a few epoll threads */
    {"sync", &ss_sync},        /* one client at a time */
    {"forking", &ss_forking},  /* Python's names for fork and thread */
    {"threading", &ss_threading},
};
#define N_MODES (sizeof modes / sizeof modes[0])

static const char usage[] =
    "usage: sockserv-fileserver [-h] [--mode MODE] [-d DIR] [-b ADDRESS]\n"
    "                           [--max-size SIZE] [--timeout SECONDS] [-q]\n"
    "                           [--port-file PATH] [--tls-cert PATH]\n"
    "                           [--tls-key PATH] [--tls-password-file PATH]\n"
    "                           [PORT]\n";
static const char help[] =
    "\nList, download and upload the files of one directory (see\n"
    "docs/fileserver.md for the protocol; the client is sockserv-filecli).\n"
    "\npositional arguments:\n"
    "  PORT                  port to listen on (default: 8021; 0: any free "
    "port)\n"
    "\noptions:\n"
    "  -h, --help            show this help message and exit\n"
    "  --mode MODE           how clients are served: fork (default, a "
    "process\n"
    "                        per client), thread, pool, coro, sync\n"
    "  -d, --directory DIR   the directory served (default: the current "
    "one)\n"
    "  -b, --bind ADDRESS    default 127.0.0.1 (this machine only); 0.0.0.0 "
    "or ::\n"
    "                        for every interface\n"
    "  --max-size SIZE       largest upload in bytes, K/M/G suffixes allowed\n"
    "                        (default: 100M)\n"
    "  --timeout SECONDS     longest wait for one read or write of a client\n"
    "                        (default: 60); an idle client is disconnected\n"
    "  -q, --quiet           no log line per connection and command\n"
    "  --port-file PATH      write the bound port to PATH once listening\n"
    "                        (for scripts and tests that pass PORT 0)\n"
    "  --tls-cert PATH       serve TLS with this PEM certificate chain\n"
    "                        (clients: sockserv-filecli --tls)\n"
    "  --tls-key PATH        its PEM private key (default: in --tls-cert)\n"
    "  --tls-password-file PATH\n"
    "                        the password of an encrypted --tls-key\n";

/* Long-only options: vals that no letter can have. */
enum {
    OPT_MODE = CLI_LONG_ONLY,
    OPT_MAX_SIZE,
    OPT_TIMEOUT,
    OPT_PORT_FILE,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_PASSWORD_FILE,
};

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"directory", required_argument, NULL, 'd'},
    {"bind", required_argument, NULL, 'b'},
    {"max-size", required_argument, NULL, OPT_MAX_SIZE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"quiet", no_argument, NULL, 'q'},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-password-file", required_argument, NULL, OPT_TLS_PASSWORD_FILE},
    {NULL, 0, NULL, 0},
};

/* The command line, checked. */
typedef struct fs_options {
    const char *mode; /* one name per strategy, for log lines */
    const ss_strategy *strategy;
    const char *directory, *port_file;
    off_t max_size;
    double timeout;
    bool quiet;
    tls_server_args tls; /* all NULL: plain TCP */
    char address[300]; /* what the library parses: "127.0.0.1:8021" */
} fs_options;

/* "1048576", "512K", "100M", "2G" (binary multiples) -> bytes. */
static off_t size_argument(const cli *c, const char *text)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
        value > ((unsigned long long)INT64_MAX >> shift))
        cli_error(c, "argument --max-size: invalid size: '%s'", text);
    return (off_t)(value << shift);
}

static double seconds_argument(const cli *c, const char *text)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value > 0) ||
        value > 1e6)
        cli_error(c, "argument --timeout: invalid value: '%s'", text);
    return value;
}

static long port_argument(const cli *c, const char *port)
{
    char *end;
    errno = 0;
    long value = strtol(port, &end, 10);
    if (errno || end == port || *end || value < 0 || value > 65535)
        cli_error(c, "argument PORT: invalid port: '%s'", port);
    return value;
}

static const ss_strategy *mode_argument(const cli *c, const char **mode)
{
    for (size_t m = 0; m < N_MODES; m++)
        if (!strcmp(*mode, modes[m].name)) {
            /* one name in log lines whatever was typed */
            *mode = modes[m].strategy == &ss_forking     ? "fork"
                    : modes[m].strategy == &ss_threading ? "thread"
                                                         : modes[m].name;
            return modes[m].strategy;
        }
    cli_error(c,
              "argument --mode: invalid choice: '%s' (choose from fork, "
              "thread, pool, coro, sync)",
              *mode);
}

/* Options and PORT in any order, like argparse; every mistake is a usage
 * error (exit status 2). */
static void parse_options(fs_options *o, int argc, char **argv)
{
    cli c = {.prog = "sockserv-fileserver",
             .usage = usage,
             .shortopts = "-:b:d:hq",
             .longopts = longopts};
    *o = (fs_options){.mode = "fork",
                      .directory = ".",
                      .max_size = DEFAULT_MAX_SIZE,
                      .timeout = DEFAULT_TIMEOUT};
    const char *host = "127.0.0.1", *port = NULL, *value;
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
        case 'b':
            host = value;
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
        case OPT_PORT_FILE:
            o->port_file = value;
            break;
        case OPT_MAX_SIZE:
            o->max_size = size_argument(&c, value);
            break;
        case OPT_TIMEOUT:
            o->timeout = seconds_argument(&c, value);
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
        }
    }
    cli_finish(&c);
    tls_server_check_args(&c, &o->tls);

    o->strategy = mode_argument(&c, &o->mode);
    long port_number = port ? port_argument(&c, port) : FS_DEFAULT_PORT;
    const char *bad = bind_address(o->address, sizeof o->address, host,
                                   (int)port_number, SOCK_STREAM, NULL);
    if (bad)
        cli_error(&c, "argument %s: %s", cli_name(&c, 'b'), bad);
}

/* Written to a temporary name and renamed, so a reader never sees half
 * (sockserv-httpd's convention). */
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

/* Until Ctrl-C or SIGTERM: ss_serve_forever() returns then; in fork mode
 * ss_server_free() then waits for the children, which stop reading at
 * once and get a few seconds to finish an answer. */
static int serve(ss_server *srv, const fs_options *o, const char *shown)
{
    int rc = ss_shutdown_on_signals(srv);
    bool reported = false;
    if (rc == 0 && o->port_file != NULL) {
        rc = write_port_file(o->port_file, ss_server_port(srv));
        if (rc < 0)
            fprintf(stderr,
                    "sockserv-fileserver: cannot write the port file %s: "
                    "%s\n",
                    o->port_file, ss_strerror(rc));
        reported = rc < 0;
    }
    if (rc == 0) {
        char bound[128];
        ss_server_address_string(srv, bound, sizeof bound);
        printf("Serving %s on %s%s (mode %s, pid %ld, uploads up to %jd "
               "bytes) ...\n",
               shown, bound, tls_server_on() ? " over TLS" : "", o->mode,
               (long)getpid(), (intmax_t)o->max_size);
        fflush(stdout);
        rc = ss_serve_forever(srv, 0.5);
    }
    if (rc < 0 && !reported)
        fprintf(stderr, "sockserv-fileserver: %s\n", ss_strerror(rc));
    else if (!o->quiet)
        printf("\nShutting down.\n");
    return rc;
}

int main(int argc, char **argv)
{
    fs_options o;
    parse_options(&o, argc, argv);

    fs_context ctx = {.max_size = o.max_size, .quiet = o.quiet, .mode = o.mode};
    /* Kept open for the server's lifetime: every name is resolved
     * relative to this descriptor, never as a path string (store.c). */
    ctx.dir_fd = open(o.directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
    char shown[PATH_MAX];
    if (ctx.dir_fd < 0 || realpath(o.directory, shown) == NULL) {
        fprintf(stderr, "sockserv-fileserver: cannot serve %s: %s\n",
                o.directory, strerror(errno));
        return 1;
    }

    /* Subclassing: copy the class and change one attribute. */
    ss_handler_class handler = fs_handler;
    handler.timeout = o.timeout;

    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* restart on the same port at once */
    cfg.user = &ctx;

    if (o.tls.cert && tls_server_open("sockserv-fileserver", &o.tls) < 0) {
        close(ctx.dir_fd);
        return 1;
    }
    ss_server *srv;
    int rc = ss_server_new(&srv, tls_server_kind(&ss_tcp), o.strategy,
                           o.address, &handler, &cfg);
    if (rc < 0) {
        fprintf(stderr, "sockserv-fileserver: cannot serve on %s: %s\n",
                o.address, ss_strerror(rc));
    } else {
        rc = tls_server_attach(srv);
        if (rc == 0)
            rc = serve(srv, &o, shown);
        ss_server_free(srv);
    }
    tls_server_close(); /* after the server that used it */
    close(ctx.dir_fd);
    return rc < 0 ? 1 : 0;
}
