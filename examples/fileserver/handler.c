/*
 * handler.c — the file server's protocol (see protocol.h): one handler
 * class, one source, run unchanged by every --mode.
 *
 * handle() reads a command line, answers it, and loops until the client
 * says QUIT, hangs up, or stays silent for longer than the per-call
 * timeout. It never touches the socket itself: ss_readline for command
 * lines (bounded by FS_LINE_MAX), ss_read_exact for upload bodies,
 * ss_sendfile for downloads, ss_write_all for answers. Whether those calls
 * block a process, a thread, or park a coroutine is the strategy's
 * business, which is the library's point.
 *
 * The per-call timeout (--timeout, the handler class's timeout) bounds
 * every wait: an idle client between commands, and each 64 KiB of an
 * upload or 1 MiB of a download. So a client that stalls, or trickles a
 * byte a minute, cannot hold a process or thread for long; a slow client
 * that keeps moving is not cut off.
 *
 * A client that vanishes mid-transfer is a normal event: its upload is
 * thrown away (store.c), and the handler returns the error, which the
 * library reports as one line naming the client. In --mode fork only that
 * child notices; the server goes on.
 */
#include "fileserver.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define UPLOAD_CHUNK (64 * 1024)     /* bytes per ss_read_exact */
#define DOWNLOAD_SLICE (1024 * 1024) /* bytes per ss_sendfile */

typedef struct fs_state {
    char line[FS_LINE_MAX];
    char client[80]; /* "127.0.0.1:51000", for log lines */
    unsigned commands;
} fs_state;

/* One log line on stderr, naming the client and who served it: in fork
 * mode each connection has its own pid, in thread modes its own tid, and
 * in coro mode many connections share a few tids. One write(), so lines
 * of concurrent workers never interleave. */
static void log_line(ss_request *req, const char *fmt, ...) SS_PRINTF(2, 3);
static void log_line(ss_request *req, const char *fmt, ...)
{
    const fs_context *ctx = ss_request_user(req);
    const fs_state *st = ss_request_state(req);
    if (ctx->quiet)
        return;
    char line[FS_ANSWER_MAX + 256];
    int n = snprintf(line, sizeof line, "%s [%s pid %ld tid %ld] ", st->client,
                     ctx->mode, (long)getpid(), (long)gettid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    /* What a client sent (a refused name, an unknown command) may hold
     * control bytes: never let them reach the operator's terminal. */
    for (int i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

/* Send the answer line "CODE TEXT\n". Returns 0 or a negative errno. */
static int answer(ss_request *req, int code, const char *fmt, ...)
    SS_PRINTF(3, 4);
static int answer(ss_request *req, int code, const char *fmt, ...)
{
    char line[FS_ANSWER_MAX];
    int n = snprintf(line, sizeof line, "%03d ", code);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2; /* cut, but still one line */
    line[n++] = '\n';
    int rc = ss_write_all(req, line, (size_t)n);
    return rc < 0 ? rc : 0;
}

/* The answer code for a failed file operation. */
static int code_for(int error)
{
    switch (error) {
    case -ENOENT:
    case -ENOTDIR:
        return FS_NOT_FOUND;
    case -EACCES:
    case -EPERM:
        return FS_FORBIDDEN;
    case -EISDIR:
        return FS_CONFLICT;
    case -ENOSPC:
    case -EDQUOT:
        return FS_NO_SPACE;
    default:
        return FS_SERVER_ERROR;
    }
}

static int do_list(ss_request *req, const fs_context *ctx)
{
    char *text;
    size_t length, count;
    int rc = fs_list(ctx, &text, &length, &count);
    if (rc < 0) {
        log_line(req, "LIST -> %d %s", FS_SERVER_ERROR, strerror(-rc));
        return answer(req, FS_SERVER_ERROR, "cannot list: %s", strerror(-rc));
    }
    log_line(req, "LIST -> %d %zu files", FS_OK, count);
    rc = answer(req, FS_OK, "%zu files", count);
    if (rc == 0 && length > 0) {
        int sent = ss_write_all(req, text, length);
        rc = sent < 0 ? sent : 0;
    }
    free(text);
    return rc;
}

static int do_get(ss_request *req, const fs_context *ctx, const char *name)
{
    const char *problem = fs_name_problem(name);
    if (problem != NULL) {
        log_line(req, "GET %s -> %d %s", name, FS_BAD_REQUEST, problem);
        return answer(req, FS_BAD_REQUEST, "bad name: %s", problem);
    }
    off_t size;
    int fd = fs_open_for_reading(ctx, name, &size);
    if (fd < 0) {
        int code = code_for(fd);
        const char *why = fd == -ENOENT ? "no such file" : strerror(-fd);
        log_line(req, "GET %s -> %d %s", name, code, why);
        return answer(req, code, "%s: %s", why, name);
    }
    int rc = answer(req, FS_OK, "%jd bytes", (intmax_t)size);
    off_t offset = 0;
    while (rc == 0 && offset < size) {
        size_t slice = size - offset < DOWNLOAD_SLICE ? (size_t)(size - offset)
                                                      : DOWNLOAD_SLICE;
        int sent = ss_sendfile(req, fd, &offset, slice);
        if (sent < 0)
            rc = sent; /* the client went away, or stalled */
        else if (sent == 0)
            rc = -EIO; /* the file shrank: the announced size is a lie now */
    }
    close(fd);
    if (rc < 0)
        log_line(req, "GET %s -> %d, lost after %jd of %jd bytes: %s", name,
                 FS_OK, (intmax_t)offset, (intmax_t)size, ss_strerror(rc));
    else
        log_line(req, "GET %s -> %d %jd bytes sent", name, FS_OK,
                 (intmax_t)size);
    return rc;
}

/* Parse "SIZE NAME": SIZE in decimal digits only, one space, the name.
 * Returns the name, or NULL. */
static const char *parse_put(const char *args, unsigned long long *size)
{
    if (args[0] < '0' || args[0] > '9')
        return NULL;
    char *end;
    errno = 0;
    *size = strtoull(args, &end, 10);
    if (errno != 0 || *end != ' ')
        return NULL;
    return end + 1;
}

/* Read the announced body into up, in chunks each bounded by the
 * per-call timeout. A write error (disk full) does not stop the reading:
 * the body is drained so that the connection stays in step and the client
 * gets an answer it can act on. Returns 0 with *write_error set, or the
 * read error (then the connection is unusable). */
static int receive_body(ss_request *req, fs_upload *up, unsigned long long size,
                        int *write_error, unsigned long long *received)
{
    char *chunk = malloc(UPLOAD_CHUNK);
    if (chunk == NULL)
        return -ENOMEM;
    *write_error = 0;
    *received = 0;
    int rc = 0;
    while (*received < size) {
        size_t want = size - *received < UPLOAD_CHUNK
                          ? (size_t)(size - *received)
                          : UPLOAD_CHUNK;
        int got = ss_read_exact(req, chunk, want);
        if (got < 0) {
            rc = got; /* SS_EOF, -ETIMEDOUT, -ECONNRESET, -ECANCELED */
            break;
        }
        if (*write_error == 0)
            *write_error = fs_upload_write(up, chunk, want);
        *received += want;
    }
    free(chunk);
    return rc;
}

static int do_put(ss_request *req, const fs_context *ctx, const char *args)
{
    unsigned long long size;
    const char *name = parse_put(args, &size);
    if (name == NULL) {
        log_line(req, "PUT %s -> %d bad size", args, FS_BAD_REQUEST);
        return answer(req, FS_BAD_REQUEST,
                      "usage: PUT SIZE NAME (SIZE in bytes, decimal)");
    }
    const char *problem = fs_name_problem(name);
    if (problem != NULL) {
        log_line(req, "PUT %s -> %d %s", name, FS_BAD_REQUEST, problem);
        return answer(req, FS_BAD_REQUEST, "bad name: %s", problem);
    }
    if (size > (unsigned long long)ctx->max_size) {
        log_line(req, "PUT %s -> %d %llu bytes", name, FS_TOO_LARGE, size);
        return answer(req, FS_TOO_LARGE, "too large: at most %jd bytes",
                      (intmax_t)ctx->max_size);
    }
    /* The file exists (unnamed) before the client is told to send, so a
     * full or read-only disk is refused before any byte travels. */
    fs_upload up;
    int rc = fs_upload_begin(ctx, &up);
    if (rc < 0) {
        log_line(req, "PUT %s -> %d %s", name, code_for(rc), strerror(-rc));
        return answer(req, code_for(rc), "cannot store: %s", strerror(-rc));
    }
    rc = answer(req, FS_CONTINUE, "send %llu bytes", size);
    int write_error = 0;
    unsigned long long received = 0;
    if (rc == 0)
        rc = receive_body(req, &up, size, &write_error, &received);
    if (rc < 0) {
        fs_upload_abort(ctx, &up);
        log_line(req, "PUT %s -> lost after %llu of %llu bytes: %s", name,
                 received, size, ss_strerror(rc));
        return rc;
    }
    /* fsync may take a while: under coroutines it runs on a helper
     * thread, so other clients of this scheduler go on meanwhile. */
    if (write_error == 0)
        write_error = ss_run_blocking(req, fs_upload_sync, &up);
    if (write_error == 0)
        write_error = fs_upload_commit(ctx, &up, name);
    else
        fs_upload_abort(ctx, &up);
    if (write_error < 0) {
        int code = code_for(write_error);
        const char *why = write_error == -EISDIR ? "a directory has that name"
                                                 : strerror(-write_error);
        log_line(req, "PUT %s -> %d %s", name, code, why);
        return answer(req, code, "cannot store %s: %s", name, why);
    }
    log_line(req, "PUT %s -> %d %llu bytes stored", name, FS_CREATED, size);
    return answer(req, FS_CREATED, "stored %llu bytes as %s", size, name);
}

static const char help_text[] =
    "commands: LIST | GET NAME | PUT SIZE NAME | HELP | QUIT";

/* One command line, '\n' and '\r' removed. Returns 0 to read the next
 * one, 1 to end the connection, or a negative errno (connection lost). */
static int dispatch(ss_request *req, const fs_context *ctx, char *line)
{
    char *args = strchr(line, ' ');
    if (args != NULL)
        *args++ = '\0';
    else
        args = "";
    if (strcasecmp(line, "GET") == 0 && args[0] != '\0')
        return do_get(req, ctx, args);
    if (strcasecmp(line, "PUT") == 0 && args[0] != '\0')
        return do_put(req, ctx, args);
    if (args[0] == '\0' && strcasecmp(line, "LIST") == 0)
        return do_list(req, ctx);
    if (args[0] == '\0' && strcasecmp(line, "HELP") == 0)
        return answer(req, FS_OK, "%s", help_text);
    if (args[0] == '\0' && strcasecmp(line, "QUIT") == 0) {
        int rc = answer(req, FS_OK, "bye");
        return rc < 0 ? rc : 1;
    }
    log_line(req, "unknown command: %.64s", line);
    return answer(req, FS_BAD_REQUEST, "unknown command; %s", help_text);
}

static int fs_handle(ss_request *req)
{
    const fs_context *ctx = ss_request_user(req);
    fs_state *st = ss_request_state(req);
    ss_request_client_address_string(req, st->client, sizeof st->client);
    log_line(req, "connected");

    int rc = 0;
    for (;;) {
        int n = ss_readline(req, st->line, sizeof st->line);
        if (n == 0)
            break; /* the client hung up between commands: fine */
        if (n == -EMSGSIZE) {
            /* The rest of the line is still unread: no way to resync. */
            log_line(req, "line too long, closing");
            rc = answer(req, FS_BAD_REQUEST,
                        "line too long (at most %d bytes), closing",
                        FS_LINE_MAX - 1);
            break;
        }
        if (n == -ETIMEDOUT) {
            log_line(req, "idle too long, closing");
            rc = answer(req, FS_CLOSING, "idle too long, closing");
            break;
        }
        if (n < 0) {
            rc = n;
            break;
        }
        if (st->line[n - 1] != '\n')
            break; /* hung up in mid-line: there is no one to answer */
        st->line[--n] = '\0';
        if (n > 0 && st->line[n - 1] == '\r')
            st->line[--n] = '\0';
        st->commands++;
        if (strlen(st->line) != (size_t)n)
            rc = answer(req, FS_BAD_REQUEST, "NUL byte in command");
        else if (n == 0)
            rc = answer(req, FS_BAD_REQUEST, "empty command; %s", help_text);
        else
            rc = dispatch(req, ctx, st->line);
        if (rc != 0)
            break;
    }
    if (rc == 1)
        rc = 0; /* QUIT */
    if (rc == 0)
        log_line(req, "closed after %u command%s", st->commands,
                 st->commands == 1 ? "" : "s");
    else if (rc == -ECANCELED)
        log_line(req, "closed by the server's shutdown");
    /* Any other error goes on to the library's handle_error, which
     * reports it once, naming the client (like Python's); -ECANCELED at
     * shutdown is not reported. */
    return rc;
}

const ss_handler_class fs_handler = {
    .base = &ss_stream_handler, /* its setup applies timeout and nagle */
    .state_size = sizeof(fs_state),
    .handle = fs_handle,
    .disable_nagle_algorithm = true, /* small answers, sent at once */
    .timeout = 60,
};
