/*
 * sockserv-filecli — the client of sockserv-fileserver.
 *
 *   sockserv-filecli [-t SECONDS] [--tls [--cafile PATH]] HOST PORT COMMAND...
 *   COMMAND: list | get NAME | put FILE
 *
 * The commands run in order on one connection (the protocol allows any
 * number per connection), then the client says QUIT. It stops at the first
 * failure, prints what went wrong — the server's answer line when there is
 * one — and exits with status 1; 2 for a usage error; 0 when everything
 * worked.
 *
 * Options may come anywhere, as with Python's argparse (a file name that
 * starts with '-' goes after "--").
 *
 * A plain blocking socket client: libsockserv is for servers, and a client
 * written without it shows that the protocol is all the two share.
 * With --tls the same bytes go through TLS (../common/tls_client.c), the
 * server verified against --cafile or the system's certificates.
 * Downloads are written to a temporary file next to the target and renamed
 * when complete, so an interrupted `get` never leaves half a file either.
 */
#include "protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/tls_client.h"

#define CHUNK (64 * 1024)

static const char usage[] =
    "usage: sockserv-filecli [-h] [-t SECONDS] [--tls] [--cafile PATH]\n"
    "                        HOST PORT COMMAND...\n"
    "  COMMAND is one of:  list | get NAME | put FILE\n";
static const char help[] =
    "\noptions:\n"
    "  -h, --help            show this help message and exit\n"
    "  -t, --timeout SECONDS give up on a send or receive after this long\n"
    "                        (default: 60)\n"
    "  --tls                 connect over TLS (a server started with\n"
    "                        --tls-cert), verifying its certificate\n"
    "  --cafile PATH         with --tls: trust the CA certificates in PATH\n"
    "                        (PEM) instead of the system's\n";

/* A connection with a read buffer: answers are lines, data follows them
 * in the same stream, so whatever was read past a line is kept here. */
typedef struct conn {
    int fd;
    tls_client *tls; /* NULL: plain TCP */
    bool heard;      /* a byte came from the server */
    size_t pos, len;
    char buf[CHUNK];
} conn;

static const char *program = "sockserv-filecli";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

/* PORT: 1 to 65535, in decimal. (getaddrinfo would also take a service
 * name, and answer anything else with an obscure resolver error.) */
static bool valid_port(const char *text)
{
    size_t digits = strspn(text, "0123456789");
    return digits > 0 && digits <= 5 && text[digits] == '\0' &&
           atoi(text) >= 1 && atoi(text) <= 65535;
}

static int connect_to(conn *c, const char *host, const char *port,
                      double timeout, bool tls, const char *cafile)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0)
        return fail("cannot resolve %s: %s", host, gai_strerror(rc));
    int err = 0;
    c->fd = -1;
    for (struct addrinfo *ai = list; ai != NULL && c->fd < 0;
         ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* Every send and receive gives up after the timeout, so a server
         * that stops answering cannot hang the client. */
        struct timeval tv;
        tv.tv_sec = (time_t)timeout;
        tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            c->fd = fd;
        else {
            err = errno;
            close(fd);
        }
    }
    freeaddrinfo(list);
    if (c->fd < 0)
        return fail("cannot connect to %s port %s: %s", host, port,
                    strerror(err));
    c->pos = c->len = 0;
    c->tls = NULL;
    if (tls) {
        /* The handshake is bounded by the same timeouts. */
        char why[300];
        c->tls = tls_client_open(c->fd, host, cafile, false, why, sizeof why);
        if (c->tls == NULL) {
            close(c->fd);
            return fail("TLS with %s port %s: %s", host, port, why);
        }
    }
    return 0;
}

static const char *io_error(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK ? "timed out" : strerror(err);
}

static int send_all(conn *c, const void *buf, size_t n)
{
    if (c->tls)
        return tls_client_send(c->tls, buf, n);
    const char *p = buf;
    while (n > 0) {
        ssize_t sent = send(c->fd, p, n, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0)
            return -errno;
        p += sent;
        n -= (size_t)sent;
    }
    return 0;
}

/* Refill the empty buffer. Returns the count, 0 at EOF, or -errno. */
static ssize_t fill(conn *c)
{
    for (;;) {
        ssize_t got = c->tls ? tls_client_recv(c->tls, c->buf, sizeof c->buf)
                             : recv(c->fd, c->buf, sizeof c->buf, 0);
        if (c->tls && got < 0) {
            errno = (int)-got;
            got = -1;
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        c->pos = 0;
        c->len = (size_t)got;
        c->heard |= got > 0;
        return got;
    }
}

/* One answer line into line (without '\n'); *code gets its number.
 * Returns 0, or -1 after printing why there is no valid answer. */
static int read_answer(conn *c, char *line, size_t size, int *code)
{
    size_t n = 0;
    for (;;) {
        if (c->pos == c->len) {
            ssize_t got = fill(c);
            if (got < 0)
                return fail("no answer from the server: %s",
                            io_error((int)-got));
            if (got == 0 && !c->tls && !c->heard) /* a TLS server, surely */
                return fail("the server closed the connection without an "
                            "answer (if it serves TLS, add --tls)");
            if (got == 0)
                return fail("the server closed the connection");
        }
        char ch = c->buf[c->pos++];
        if (ch == '\n')
            break;
        if (n + 1 < size)
            line[n++] = ch;
    }
    line[n] = '\0';
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    if (n < 4 || line[0] < '1' || line[0] > '5' || line[1] < '0' ||
        line[1] > '9' || line[2] < '0' || line[2] > '9' || line[3] != ' ')
        return fail("not a file server answer: '%.80s'", line);
    *code = atoi(line);
    return 0;
}

/* Send a command line and read its answer. */
static int command(conn *c, const char *text, char *line, size_t size,
                   int *code)
{
    char request[FS_LINE_MAX + 2];
    int n = snprintf(request, sizeof request, "%s\n", text);
    if (n < 0 || (size_t)n >= sizeof request)
        return fail("command too long: %.40s...", text);
    int rc = send_all(c, request, (size_t)n);
    if (rc < 0)
        return fail("cannot send to the server: %s", io_error(-rc));
    return read_answer(c, line, size, code);
}

/* The number that starts the text after "CODE ". */
static bool answer_count(const char *line, unsigned long long *value)
{
    char *end;
    errno = 0;
    *value = strtoull(line + 4, &end, 10);
    return errno == 0 && end != line + 4 && line[4] >= '0' && line[4] <= '9';
}

static int do_list(conn *c)
{
    char line[FS_ANSWER_MAX];
    int code;
    unsigned long long count;
    if (command(c, "LIST", line, sizeof line, &code) < 0)
        return -1;
    if (code != FS_OK)
        return fail("list: %s", line);
    if (!answer_count(line, &count))
        return fail("list: bad answer '%s'", line);
    for (unsigned long long i = 0; i < count; i++) {
        char entry[FS_ANSWER_MAX];
        size_t n = 0;
        for (;;) {
            if (c->pos == c->len) {
                ssize_t got = fill(c);
                if (got <= 0)
                    return fail("list: connection lost after %llu of %llu "
                                "names",
                                i, count);
            }
            char ch = c->buf[c->pos++];
            if (ch == '\n')
                break;
            if (n + 1 < sizeof entry)
                entry[n++] = ch;
        }
        entry[n] = '\0';
        char *name = strchr(entry, ' ');
        if (name == NULL)
            return fail("list: bad entry '%s'", entry);
        *name++ = '\0';
        printf("%12s  %s\n", entry, name);
    }
    return 0;
}

/* Receive exactly size bytes into fd. Returns 0 or -1 (printed). */
static int receive_file(conn *c, int fd, unsigned long long size,
                        const char *name)
{
    unsigned long long done = 0;
    while (done < size) {
        if (c->pos == c->len) {
            ssize_t got = fill(c);
            if (got <= 0)
                return fail("get %s: connection lost after %llu of %llu "
                            "bytes%s%s",
                            name, done, size, got < 0 ? ": " : "",
                            got < 0 ? io_error((int)-got) : "");
        }
        size_t n = c->len - c->pos;
        if (n > size - done)
            n = (size_t)(size - done);
        for (size_t off = 0; off < n;) {
            ssize_t w = write(fd, c->buf + c->pos + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return fail("get %s: cannot write: %s", name, strerror(errno));
            off += (size_t)w;
        }
        c->pos += n;
        done += n;
    }
    return 0;
}

static int do_get(conn *c, const char *name)
{
    char text[FS_LINE_MAX], line[FS_ANSWER_MAX];
    int code;
    unsigned long long size;
    snprintf(text, sizeof text, "GET %s", name);
    if (command(c, text, line, sizeof line, &code) < 0)
        return -1;
    if (code != FS_OK)
        return fail("get %s: %s", name, line);
    if (!answer_count(line, &size))
        return fail("get %s: bad answer '%s'", name, line);

    /* The server accepted the name, so it is one path component. */
    char temp[PATH_MAX];
    snprintf(temp, sizeof temp, ".%s.part-%ld", name, (long)getpid());
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail("get %s: cannot create %s: %s", name, temp,
                    strerror(errno));
    int rc = receive_file(c, fd, size, name);
    if (close(fd) < 0 && rc == 0)
        rc = fail("get %s: cannot write: %s", name, strerror(errno));
    if (rc == 0 && rename(temp, name) < 0)
        rc = fail("get %s: cannot rename %s: %s", name, temp, strerror(errno));
    if (rc < 0) {
        unlink(temp);
        return -1;
    }
    printf("get %s: %llu bytes\n", name, size);
    return 0;
}

static int do_put(conn *c, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return fail("put %s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail("put %s: not a regular file", path);
    }
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    const char *name = basename(copy);

    char text[FS_LINE_MAX + 64], line[FS_ANSWER_MAX];
    int code;
    snprintf(text, sizeof text, "PUT %jd %s", (intmax_t)st.st_size, name);
    int rc = command(c, text, line, sizeof line, &code);
    if (rc == 0 && code != FS_CONTINUE)
        rc = fail("put %s: %s", path, line);
    /* The size was announced: send exactly that many bytes. */
    off_t done = 0;
    char *chunk = rc == 0 ? malloc(CHUNK) : NULL;
    if (rc == 0 && chunk == NULL)
        rc = fail("put %s: out of memory", path);
    while (rc == 0 && done < st.st_size) {
        size_t want =
            st.st_size - done < CHUNK ? (size_t)(st.st_size - done) : CHUNK;
        ssize_t got = pread(fd, chunk, want, done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            /* The file shrank or failed: the server must not store a
             * short file under the name, so break the connection. */
            rc = fail("put %s: cannot read: %s", path,
                      got < 0 ? strerror(errno) : "file shrank");
            break;
        }
        int err = send_all(c, chunk, (size_t)got);
        if (err < 0)
            rc =
                fail("put %s: connection lost after %jd of %jd bytes: %s", path,
                     (intmax_t)done, (intmax_t)st.st_size, io_error(-err));
        done += got;
    }
    free(chunk);
    close(fd);
    if (rc < 0)
        return -1;
    if (read_answer(c, line, sizeof line, &code) < 0)
        return -1;
    if (code != FS_CREATED)
        return fail("put %s: %s", path, line);
    printf("put %s: %jd bytes stored as %s\n", path, (intmax_t)st.st_size,
           name);
    return 0;
}

enum { OPT_TLS = CLI_LONG_ONLY, OPT_CAFILE };

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"timeout", required_argument, NULL, 't'},
    {"tls", no_argument, NULL, OPT_TLS},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {NULL, 0, NULL, 0},
};

/* The command line, checked. */
typedef struct filecli_options {
    double timeout;
    bool tls;
    const char *cafile; /* NULL: the system's CA certificates */
    const char *host, *port;
    const char **commands; /* "list", "get", NAME, "put", FILE, ... */
    int ncommands;
} filecli_options;

static double seconds_argument(const cli *c, const char *text)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value > 0) ||
        value >= 1e6)
        cli_error(c, "argument %s: invalid value: '%s'", cli_name(c, 't'),
                  text);
    return value;
}

/* The whole command list is checked before connecting. */
static void check_commands(const cli *c, const filecli_options *o)
{
    for (int j = 0; j < o->ncommands; j++) {
        const char *word = o->commands[j];
        bool get = !strcmp(word, "get"), put = !strcmp(word, "put");
        if (!get && !put && strcmp(word, "list") != 0)
            cli_error(c,
                      "argument COMMAND: invalid choice: '%s' (choose from "
                      "list, get, put)",
                      word);
        if ((get || put) && ++j == o->ncommands)
            cli_error(c, "argument COMMAND: %s needs a %s", word,
                      get ? "NAME" : "FILE");
    }
}

/* Options, HOST, PORT and the commands in any order, like argparse (a
 * file name that starts with '-' goes after "--"); every mistake is a
 * usage error (exit status 2). */
static void parse_options(filecli_options *o, int argc, char **argv)
{
    cli c = {.prog = program,
             .usage = usage,
             .shortopts = "-:ht:",
             .longopts = longopts};
    *o = (filecli_options){.timeout = 60};
    o->commands = calloc((size_t)argc, sizeof *o->commands);
    if (o->commands == NULL) {
        fail("out of memory");
        exit(1);
    }
    const char *value;
    int opt;
    while ((opt = cli_next(&c, argc, argv, &value)) != -1) {
        if (opt == 'h') {
            printf("%s%s", usage, help);
            exit(0);
        } else if (opt == 't') {
            o->timeout = seconds_argument(&c, value);
        } else if (opt == OPT_TLS) {
            o->tls = true;
        } else if (opt == OPT_CAFILE) {
            o->cafile = value;
        } else if (o->host == NULL) {
            o->host = value;
        } else if (o->port == NULL) {
            o->port = value;
        } else {
            o->commands[o->ncommands++] = value;
        }
    }
    if (o->ncommands == 0)
        cli_error(&c, "the following arguments are required: %s%s%s",
                  o->host ? "" : "HOST, ", o->port ? "" : "PORT, ", "COMMAND");
    if (!valid_port(o->port))
        cli_error(&c, "argument PORT: invalid port: '%s' (1 to 65535)",
                  o->port);
    check_commands(&c, o);
    if (o->cafile && !o->tls)
        cli_error(&c, "argument --cafile: needs --tls");
    if (o->tls && !tls_client_available())
        cli_error(&c, "argument --tls: sockserv-filecli was built without "
                      "TLS (SOCKSERV_TLS=OFF)");
}

/* The commands, in order, on one connection. Returns the exit status. */
static int run(const filecli_options *o)
{
    static conn c; /* 64 KiB buffer: not on the stack */
    if (connect_to(&c, o->host, o->port, o->timeout, o->tls, o->cafile) < 0)
        return 1;
    int rc = 0;
    for (int j = 0; j < o->ncommands && rc == 0; j++) {
        if (!strcmp(o->commands[j], "list"))
            rc = do_list(&c);
        else if (!strcmp(o->commands[j], "get"))
            rc = do_get(&c, o->commands[++j]);
        else
            rc = do_put(&c, o->commands[++j]);
        fflush(stdout);
    }
    if (rc == 0 && send_all(&c, "QUIT\n", 5) == 0) {
        /* A polite goodbye, and wait for "200 bye" so that the server
         * closes first; the work is done whatever it answers. */
        while (c.pos < c.len || fill(&c) > 0)
            if (c.buf[c.pos++] == '\n')
                break;
    }
    tls_client_close(c.tls); /* close_notify */
    close(c.fd);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    filecli_options o;
    parse_options(&o, argc, argv);
    int status = run(&o);
    free(o.commands);
    return status;
}
