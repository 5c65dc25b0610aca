/*
 * sockserv-fileserver — the lesson's fork-based file server ("ftp文件服务器")
 * rebuilt on libsockserv: clients list, download and upload the files of
 * one directory over a small line protocol (protocol.h).
 *
 *   sockserv-fileserver [--mode fork|thread|pool|coro|sync] [-d DIR]
 *                       [-b ADDR] [--max-size SIZE] [--timeout SECONDS]
 *                       [-q] [--port-file PATH] [PORT]
 *
 * This file is the program around the handler: the command line (options
 * and PORT in any order, like argparse), the mode table that picks the
 * strategy, the server, and Ctrl-C / SIGTERM. The lesson forked a child per
 * client by hand; here that is one row of the mode table, and the same
 * handler (handler.c) runs in every row.
 */
#include "fileserver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/bind_address.h"

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
    "                           [--port-file PATH] [PORT]\n";
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
    "                        (for scripts and tests that pass PORT 0)\n";

/* Like argparse: usage and the reason on stderr, exit status 2. */
static void usage_error(const char *fmt, ...) SS_PRINTF(1, 2);
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(usage, stderr);
    fputs("sockserv-fileserver: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* "--long VALUE", "--long=VALUE" or "-s VALUE" (short_name may be NULL);
 * on a match *i moves past what was used. */
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
        (short_name == NULL || strcmp(arg, short_name) != 0))
        return false;
    if (*i + 1 >= argc)
        usage_error("argument %s: expected one argument", long_name);
    *value = argv[++*i];
    return true;
}

/* "1048576", "512K", "100M", "2G" (binary multiples) -> bytes. */
static off_t size_argument(const char *text)
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
        usage_error("argument --max-size: invalid size: '%s'", text);
    return (off_t)(value << shift);
}

static double seconds_argument(const char *text)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value > 0) ||
        value > 1e6)
        usage_error("argument --timeout: invalid value: '%s'", text);
    return value;
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

int main(int argc, char **argv)
{
    const char *mode = "fork", *directory = ".", *host = "127.0.0.1",
               *port = NULL, *max_size = NULL, *timeout = NULL,
               *port_file = NULL;
    bool quiet = false;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s%s", usage, help);
            return 0;
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (option(argc, argv, &i, NULL, "--mode", &mode) ||
                   option(argc, argv, &i, "-d", "--directory", &directory) ||
                   option(argc, argv, &i, "-b", "--bind", &host) ||
                   option(argc, argv, &i, NULL, "--max-size", &max_size) ||
                   option(argc, argv, &i, NULL, "--timeout", &timeout) ||
                   option(argc, argv, &i, NULL, "--port-file", &port_file)) {
            continue;
        } else if ((argv[i][0] == '-' && argv[i][1] != '\0') || port != NULL) {
            usage_error("unrecognized arguments: %s", argv[i]);
        } else {
            port = argv[i];
        }
    }

    const ss_strategy *strategy = NULL;
    for (size_t m = 0; m < N_MODES && strategy == NULL; m++)
        if (!strcmp(mode, modes[m].name))
            strategy = modes[m].strategy;
    if (strategy == NULL)
        usage_error("argument --mode: invalid choice: '%s' (choose from "
                    "fork, thread, pool, coro, sync)",
                    mode);
    mode = strategy == &ss_forking     ? "fork"
           : strategy == &ss_threading ? "thread"
                                       : mode; /* one name in log lines */
    long port_number = FS_DEFAULT_PORT;
    if (port != NULL) {
        char *end;
        errno = 0;
        port_number = strtol(port, &end, 10);
        if (errno || end == port || *end || port_number < 0 ||
            port_number > 65535)
            usage_error("argument PORT: invalid port: '%s'", port);
    }
    char address[300];
    const char *bad = bind_address(address, sizeof address, host,
                                   (int)port_number, SOCK_STREAM, NULL);
    if (bad)
        usage_error("argument --bind: %s", bad);

    fs_context ctx = {
        .max_size = max_size ? size_argument(max_size) : DEFAULT_MAX_SIZE,
        .quiet = quiet,
        .mode = mode,
    };
    /* Kept open for the server's lifetime: every name is resolved
     * relative to this descriptor, never as a path string (store.c). */
    ctx.dir_fd = open(directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
    char shown[PATH_MAX];
    if (ctx.dir_fd < 0 || realpath(directory, shown) == NULL) {
        fprintf(stderr, "sockserv-fileserver: cannot serve %s: %s\n", directory,
                strerror(errno));
        return 1;
    }

    /* Subclassing: copy the class and change one attribute. */
    ss_handler_class handler = fs_handler;
    handler.timeout = timeout ? seconds_argument(timeout) : DEFAULT_TIMEOUT;

    ss_config cfg;
    ss_config_init(&cfg);
    cfg.allow_reuse_address = true; /* restart on the same port at once */
    cfg.user = &ctx;

    ss_server *srv;
    int rc = ss_server_new(&srv, &ss_tcp, strategy, address, &handler, &cfg);
    if (rc < 0) {
        fprintf(stderr, "sockserv-fileserver: cannot serve on %s: %s\n",
                address, ss_strerror(rc));
        close(ctx.dir_fd);
        return 1;
    }
    /* Ctrl-C and SIGTERM make ss_serve_forever() return; in fork mode
     * ss_server_free() then waits for the children, which stop reading
     * at once and get a few seconds to finish an answer. */
    rc = ss_shutdown_on_signals(srv);
    bool reported = false;
    if (rc == 0 && port_file != NULL) {
        rc = write_port_file(port_file, ss_server_port(srv));
        if (rc < 0)
            fprintf(stderr,
                    "sockserv-fileserver: cannot write the port file %s: "
                    "%s\n",
                    port_file, ss_strerror(rc));
        reported = rc < 0;
    }
    if (rc == 0) {
        char bound[128];
        ss_server_address_string(srv, bound, sizeof bound);
        printf("Serving %s on %s (mode %s, pid %ld, uploads up to %jd "
               "bytes) ...\n",
               shown, bound, mode, (long)getpid(), (intmax_t)ctx.max_size);
        fflush(stdout);
        rc = ss_serve_forever(srv, 0.5);
    }
    if (rc < 0 && !reported)
        fprintf(stderr, "sockserv-fileserver: %s\n", ss_strerror(rc));
    else if (!quiet)
        printf("\nShutting down.\n");
    ss_server_free(srv);
    close(ctx.dir_fd);
    return rc < 0 ? 1 : 0;
}
