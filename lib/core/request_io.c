/*
 * request_io.c — how a handler reads and writes: ss_read, ss_readline,
 * ss_write_all and friends (Python's rfile and wfile).
 *
 * The I/O follows the server kind, not the handler class:
 *  - stream: reads are buffered from the connection; writes go straight
 *    out (Python's wbufsize = 0) or through a buffer when the handler class
 *    sets wbufsize;
 *  - datagram: reads come from the received packet, and writes collect the
 *    reply that ss__request_complete_io() sends after finish.
 *
 * A stream's bytes move through the server's transport (the plain socket,
 * lib/transports/plain.c, or a layer such as TLS), whose every call is
 * non-blocking. When it says "would block", the request's wait class
 * waits — poll() or a parked coroutine — with the call's deadline and the
 * shutdown policy. Partial writes are completed by the *_all functions.
 *
 * A deadline is per call, with one exception that makes "the next call
 * reports the error" true of timeouts too: ss_sendfile returns a short
 * count when its wait to send times out after some bytes went out, and a
 * caller that goes on would otherwise get a whole new timeout from its
 * next call (a client that stopped reading held a file server's worker
 * for three timeouts). The stall is remembered instead, and the next call
 * waits to send only for what is left of it (send_cut_short()): however
 * many calls it takes, a request goes no longer than its timeout without
 * a byte moving out.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---- the transport, with waiting ---------------------------------- */

/* Wait through the strategy's wait class, applying the shutdown policy:
 * once the server is stopping, no more waiting for input, and waiting to
 * send only until shutdown_grace has passed. */
int ss__request_wait_io(ss_request *req, short events, int64_t deadline)
{
    ss_server *srv = req->server;
    if (!atomic_load(&srv->stopping)) {
        int rc = req->wait_class->wait(req, req->fd, events, deadline, true);
        if (rc != -ECANCELED)
            return rc;
        /* The parent process's server stopped (a forked child or prefork
         * worker learns it only through the inherited cancel descriptor):
         * from now on this process follows the shutdown policy too. */
        ss__cancelled_wait(req, rc);
    }
    if (events & POLLIN)
        return -ECANCELED;
    int64_t grace_end = atomic_load(&srv->shutdown_at) +
                        (int64_t)(srv->config.shutdown_grace * 1e9);
    bool grace_binds = deadline == SS_NO_DEADLINE || grace_end < deadline;
    if (grace_binds)
        deadline = grace_end;
    int rc = req->wait_class->wait(req, req->fd, events, deadline, false);
    return rc == -ETIMEDOUT && grace_binds ? -ECANCELED : rc;
}

int ss_request_wait(ss_request *req, short events, int64_t deadline)
{
    return ss__request_wait_io(req, events, deadline);
}

ssize_t ss__request_receive(ss_request *req, void *buf, size_t n,
                            int64_t deadline)
{
    return ss__request_receive_via(req, req->server->transport, buf, n,
                                   deadline);
}

/* What a blocking receive (blocking_receive.c) returned, recorded as
 * the transport's would be. */
static ssize_t received_blocking(ss_request *req, ssize_t got, size_t n)
{
    if (got == 0)
        req->eof = true;
    req->wait_before_recv = got > 0 && (size_t)got < n;
    return got;
}

/* An end of input that the serve loop's shutdown(SHUT_RD) made, not the
 * peer (blocking_receive.c): a receive reports it as -ECANCELED, like a
 * cancelled wait, and leaves the request's eof unset — whichever read
 * sees it (ss_read, ss_read_nowait; ss_wait_input_or_fd likewise), so a
 * handler that says goodbye at shutdown is never told that its client
 * left. */
bool ss__input_cut_by_shutdown(const ss_request *req)
{
    return req->may_block_recv &&
           req->server->transport == &ss_plain_transport &&
           ss__stopping_or_cut(req->server);
}

ssize_t ss__request_receive_via(ss_request *req, const ss_transport *t,
                                void *buf, size_t n, int64_t deadline)
{
    /* A request with a thread of its own may block in recv() instead of
     * poll() + recv(). */
    bool can_block = req->may_block_recv && t == &ss_plain_transport;
    /* The transport said the last receive drained its source: wait first
     * and skip a receive that would only say "would block" (see the wait
     * contract in sockserv/strategy.h). */
    if (req->wait_before_recv && !atomic_load(&req->server->stopping)) {
        req->wait_before_recv = false;
        ssize_t got =
            can_block ? ss__blocking_receive(req, buf, n, deadline) : -EAGAIN;
        if (got != -EAGAIN)
            return received_blocking(req, got, n);
        int rc = ss__request_wait_io(req, POLLIN, deadline);
        if (rc < 0 && rc != -ECANCELED)
            return rc;
    }
    req->wait_before_recv = false;
    for (;;) {
        short want = 0;
        ssize_t got = t->recv(req, buf, n, &want);
        if (got == 0 && ss__input_cut_by_shutdown(req))
            return -ECANCELED;
        if (got >= 0) {
            if (got == 0)
                req->eof = true;
            req->wait_before_recv =
                got > 0 && (size_t)got < n && (want & POLLIN);
            return got;
        }
        if (got != -EAGAIN)
            return got;
        if (can_block) {
            got = ss__blocking_receive(req, buf, n, deadline);
            if (got != -EAGAIN)
                return received_blocking(req, got, n);
        }
        int rc = ss__request_wait_io(req, want ? want : POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

bool ss__request_has_input(const ss_request *req)
{
    const ss_transport *t = req->server->transport;
    return req->rpos < req->rlen || req->eof || (t->pending && t->pending(req));
}

/* Wait until the transport can send, until deadline — or sooner, while a
 * stall left by an earlier call is pending (req->send_stall_deadline). An
 * error ends the pending stall: it is reported now. */
static int wait_to_send(ss_request *req, short want, int64_t deadline)
{
    int64_t stall = req->send_stall_deadline;
    if (stall != 0 && (deadline == SS_NO_DEADLINE || stall < deadline))
        deadline = stall;
    req->send_wait_began = ss_now_ns();
    int rc = ss__request_wait_io(req, want ? want : POLLOUT, deadline);
    if (rc < 0)
        req->send_stall_deadline = 0;
    return rc;
}

/* Bytes moved out: no stall is pending any more. */
static void sent_some(ss_request *req)
{
    req->send_stall_deadline = 0;
}

/* A call that has sent done bytes meets error (a negative errno) and
 * ends. With nothing sent it returns the error. Otherwise it returns the
 * count, and the error is the next call's to report: a socket error is
 * still there for it, but a timeout must be remembered — output has been
 * stalled since the wait that timed out began, and may stay stalled only
 * for what is left of the timeout, whatever the next call's own deadline.
 * Returns what the call returns. */
static ssize_t send_cut_short(ss_request *req, int error, size_t done)
{
    if (done == 0)
        return error;
    if (error == -ETIMEDOUT && req->timeout > 0)
        req->send_stall_deadline =
            req->send_wait_began + (int64_t)(req->timeout * 1e9);
    return (ssize_t)done;
}

static ssize_t stream_send(ss_request *req, const void *buf, size_t n,
                           int64_t deadline)
{
    for (;;) {
        short want = 0;
        ssize_t sent = req->server->transport->send(req, buf, n, &want);
        if (sent > 0)
            sent_some(req);
        if (sent != -EAGAIN)
            return sent;
        int rc = wait_to_send(req, want, deadline);
        if (rc < 0)
            return rc;
    }
}

static ssize_t stream_send_all(ss_request *req, const char *buf, size_t n,
                               int64_t deadline)
{
    size_t done = 0;
    while (done < n) {
        ssize_t sent = stream_send(req, buf + done, n - done, deadline);
        if (sent < 0)
            return sent;
        done += (size_t)sent;
    }
    return (ssize_t)n;
}

static int64_t call_deadline(const ss_request *req)
{
    return ss_deadline_after(req->timeout);
}

/* ---- reading ------------------------------------------------------- */

static size_t buffered(const ss_request *req)
{
    return req->rlen - req->rpos;
}

static size_t take(ss_request *req, void *buf, size_t n)
{
    size_t avail = buffered(req);
    if (n > avail)
        n = avail;
    memcpy(buf, req->rbuf + req->rpos, n);
    req->rpos += n;
    return n;
}

/* Refill the empty read buffer. Returns bytes now buffered, 0 at EOF. */
static ssize_t fill(ss_request *req, int64_t deadline)
{
    if (req->is_datagram || req->eof)
        return 0;
    ssize_t got = ss__request_receive(req, req->rbuf, req->rbuf_size, deadline);
    req->rpos = 0;
    req->rlen = got > 0 ? (size_t)got : 0;
    return got;
}

static ssize_t read_some(ss_request *req, void *buf, size_t n, int64_t deadline)
{
    if (n == 0)
        return 0;
    if (buffered(req) > 0)
        return (ssize_t)take(req, buf, n);
    if (req->is_datagram || req->eof)
        return 0;
    /* A read at least as big as the buffer skips the copy. */
    if (n >= req->rbuf_size)
        return ss__request_receive(req, buf, n, deadline);
    ssize_t got = fill(req, deadline);
    if (got <= 0)
        return got;
    return (ssize_t)take(req, buf, n);
}

/* Counts are ints (sockserv.h: SS_IO_MAX): a call that may move fewer
 * bytes than asked moves at most SS_IO_MAX; one that must move them all
 * refuses more. */
static size_t at_most_io_max(size_t n)
{
    return n > (size_t)SS_IO_MAX ? (size_t)SS_IO_MAX : n;
}

int ss_read(ss_request *req, void *buf, size_t n)
{
    return (int)read_some(req, buf, at_most_io_max(n), call_deadline(req));
}

int ss_read_nowait(ss_request *req, void *buf, size_t n)
{
    n = at_most_io_max(n);
    if (n == 0)
        return 0;
    if (buffered(req) > 0)
        return (int)take(req, buf, n);
    if (req->is_datagram || req->eof)
        return 0;
    /* On a stopping server, what a request that may block in recv() would
     * receive is the shutdown(SHUT_RD)'s end of input, or nothing yet:
     * either way the shutdown, as every read and wait reports it. */
    if (ss__input_cut_by_shutdown(req))
        return -ECANCELED;
    /* The last receive drained the source and no wait has reported input
     * since: nothing can be there that a wait would not announce (the
     * wait contract), so say so without a system call. */
    if (req->wait_before_recv)
        return -EAGAIN;
    /* As ss_read: a small read fills the read buffer (one receive for a
     * whole request head read a byte at first), a large one skips it. */
    bool direct = n >= req->rbuf_size;
    char *into = direct ? buf : req->rbuf;
    size_t room = direct ? n : req->rbuf_size;
    short want = 0;
    ssize_t got = req->server->transport->recv(req, into, room, &want);
    if (got == 0 && ss__input_cut_by_shutdown(req))
        return -ECANCELED; /* the shutdown began during the receive */
    if (got == 0)
        req->eof = true;
    /* Drained (or nothing there): a read that waits should wait first. */
    req->wait_before_recv =
        (want & POLLIN) && (got == -EAGAIN || (got > 0 && (size_t)got < room));
    if (direct || got <= 0)
        return (int)got;
    req->rpos = 0;
    req->rlen = (size_t)got;
    return (int)take(req, buf, n);
}

int ss_read_exact(ss_request *req, void *buf, size_t n)
{
    if (n > (size_t)SS_IO_MAX)
        return -EINVAL;
    int64_t deadline = call_deadline(req);
    size_t done = 0;
    while (done < n) {
        ssize_t got = read_some(req, (char *)buf + done, n - done, deadline);
        if (got < 0)
            return (int)got;
        if (got == 0)
            return SS_EOF;
        done += (size_t)got;
    }
    return (int)n;
}

int ss_readline(ss_request *req, char *buf, size_t size)
{
    if (!buf || size < 2)
        return -EINVAL;
    if (size > (size_t)SS_IO_MAX + 1)
        size = (size_t)SS_IO_MAX + 1; /* a line's length fits an int */
    int64_t deadline = call_deadline(req);
    size_t limit = size - 1, out = 0;
    for (;;) {
        size_t avail = buffered(req);
        if (avail > limit - out)
            avail = limit - out;
        const char *start = req->rbuf + req->rpos;
        const char *newline = memchr(start, '\n', avail);
        size_t chunk = newline ? (size_t)(newline - start) + 1 : avail;
        memcpy(buf + out, start, chunk);
        req->rpos += chunk;
        out += chunk;
        if (newline)
            break;
        if (out == limit) {
            /* Full. It is still a whole line if the stream ends here. */
            ssize_t more = buffered(req) ? 1 : fill(req, deadline);
            if (more == 0)
                break;
            buf[out] = '\0';
            return more < 0 ? (int)more : -EMSGSIZE;
        }
        ssize_t got = fill(req, deadline);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break; /* EOF: return what we have, maybe a partial line */
    }
    buf[out] = '\0';
    return (int)out;
}

/* ---- writing ------------------------------------------------------- */

/* Datagram replies are limited by UDP's largest payload; Unix datagram
 * sockets allow more and let the kernel judge at send time. */
static size_t reply_limit(const ss_request *req)
{
    int family = req->server->address.ss_family;
    return family == AF_UNIX ? (size_t)16 << 20 : SS__MAX_DATAGRAM;
}

static int reserve(ss_request *req, size_t needed)
{
    if (needed <= req->wbuf_size)
        return 0;
    size_t size = req->wbuf_size ? req->wbuf_size : 1024;
    while (size < needed)
        size *= 2;
    char *grown = realloc(req->wbuf, size);
    if (!grown)
        return -ENOMEM;
    req->wbuf = grown;
    req->wbuf_size = size;
    return 0;
}

static ssize_t append_reply(ss_request *req, const void *buf, size_t n)
{
    if (n > reply_limit(req) - req->wlen)
        return -EMSGSIZE;
    int rc = reserve(req, req->wlen + n);
    if (rc < 0)
        return rc;
    memcpy(req->wbuf + req->wlen, buf, n);
    req->wlen += n;
    return (ssize_t)n;
}

/* Send the write buffer. On failure the part already sent is removed, so
 * a later flush (ours after finish, or the handler's) never sends a byte
 * twice. */
static int flush_stream(ss_request *req, int64_t deadline)
{
    if (req->wlen == 0)
        return 0;
    size_t sent = 0;
    int rc = 0;
    while (sent < req->wlen) {
        ssize_t n =
            stream_send(req, req->wbuf + sent, req->wlen - sent, deadline);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        sent += (size_t)n;
    }
    memmove(req->wbuf, req->wbuf + sent, req->wlen - sent);
    req->wlen -= sent;
    return rc;
}

/* A buffered stream write: fill the buffer, spill it when full, and send
 * writes that would not fit anyway straight through. */
static ssize_t buffered_write(ss_request *req, const void *buf, size_t n,
                              int64_t deadline, bool all)
{
    size_t size = req->server->handler.wbufsize;
    int rc = reserve(req, size);
    if (rc < 0)
        return rc;
    if (req->wlen + n <= size) {
        memcpy(req->wbuf + req->wlen, buf, n);
        req->wlen += n;
        return (ssize_t)n;
    }
    rc = flush_stream(req, deadline);
    if (rc < 0)
        return rc;
    if (n < size) {
        memcpy(req->wbuf, buf, n);
        req->wlen = n;
        return (ssize_t)n;
    }
    return all ? stream_send_all(req, buf, n, deadline)
               : stream_send(req, buf, n, deadline);
}

static ssize_t write_some(ss_request *req, const void *buf, size_t n)
{
    if (req->is_datagram)
        return append_reply(req, buf, n);
    if (n == 0)
        return 0;
    if (req->server->handler.wbufsize > 0)
        return buffered_write(req, buf, n, call_deadline(req), false);
    return stream_send(req, buf, n, call_deadline(req));
}

int ss_write(ss_request *req, const void *buf, size_t n)
{
    return (int)write_some(req, buf, at_most_io_max(n));
}

static ssize_t write_all(ss_request *req, const void *buf, size_t n)
{
    if (req->is_datagram)
        return append_reply(req, buf, n);
    if (n == 0)
        return 0;
    if (req->server->handler.wbufsize > 0)
        return buffered_write(req, buf, n, call_deadline(req), true);
    return stream_send_all(req, buf, n, call_deadline(req));
}

int ss_write_all(ss_request *req, const void *buf, size_t n)
{
    if (n > (size_t)SS_IO_MAX)
        return -EINVAL;
    return (int)write_all(req, buf, n);
}

int ss_writef(ss_request *req, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return ss_write_all(req, small, (size_t)n);

    char *big = malloc((size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = ss_write_all(req, big, (size_t)n);
    free(big);
    return rc;
}

/* What a buffered writer holds, sent within the call's timeout; nothing
 * held, no clock read for a deadline never waited on. */
static int flush_held(ss_request *req)
{
    return req->wlen == 0 ? 0 : flush_stream(req, call_deadline(req));
}

int ss_flush(ss_request *req)
{
    if (req->is_datagram)
        return 0; /* the reply goes out after finish, in one datagram */
    return flush_held(req);
}

/* For descriptors sendfile() cannot read (pipes, some /proc files), and
 * small files. The count and *offset cover exactly the bytes that went
 * out, also when an error cuts a chunk (bytes read from a pipe and not
 * sent are lost: a pipe cannot be read again). */
static ssize_t copy_by_reading(ss_request *req, int fd, off_t *offset,
                               size_t count, int64_t deadline)
{
    char chunk[4096]; /* small: it lives on a coroutine's stack too */
    size_t done = 0;
    while (done < count) {
        size_t want = count - done < sizeof chunk ? count - done : sizeof chunk;
        ssize_t got =
            offset ? pread(fd, chunk, want, *offset) : read(fd, chunk, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return done > 0 ? (ssize_t)done : -errno;
        if (got == 0)
            break;
        for (size_t sent = 0; sent < (size_t)got;) {
            ssize_t rc =
                stream_send(req, chunk + sent, (size_t)got - sent, deadline);
            if (rc < 0)
                return send_cut_short(req, (int)rc, done);
            sent += (size_t)rc;
            done += (size_t)rc;
            if (offset)
                *offset += rc;
        }
    }
    return (ssize_t)done;
}

/* Files this small go out faster as pread + send than through sendfile
 * (whose plain version brackets the call with a signal mask). */
#define SMALL_FILE 4096

static ssize_t sendfile_loop(ss_request *req, int fd, off_t *offset,
                             size_t count, int64_t deadline)
{
    const ss_transport *t = req->server->transport;
    ss__request_before_sendfile(req);
    size_t done = 0;
    while (done < count) {
        size_t want_bytes = count - done;
        if (want_bytes > (size_t)1 << 30)
            want_bytes = (size_t)1 << 30;
        short want = 0;
        ssize_t sent = t->sendfile(req, fd, offset, want_bytes, &want);
        if (sent > 0) {
            sent_some(req);
            done += (size_t)sent;
            continue;
        }
        if (sent == 0)
            break; /* end of file */
        if (sent == -EAGAIN) {
            int rc = wait_to_send(req, want, deadline);
            if (rc < 0)
                return send_cut_short(req, rc, done);
            continue;
        }
        if ((sent == -EINVAL || sent == -ENOSYS) && done == 0)
            return copy_by_reading(req, fd, offset, count, deadline);
        return send_cut_short(req, (int)sent, done);
    }
    return (ssize_t)done;
}

int ss_sendfile(ss_request *req, int fd, off_t *offset, size_t count)
{
    if (req->is_datagram)
        return -EOPNOTSUPP;
    count = at_most_io_max(count);
    int64_t deadline = call_deadline(req);
    int rc = flush_stream(req, deadline);
    if (rc < 0)
        return rc;
    if (count <= SMALL_FILE || !req->server->transport->sendfile)
        return (int)copy_by_reading(req, fd, offset, count, deadline);
    return (int)sendfile_loop(req, fd, offset, count, deadline);
}

/* ---- after finish -------------------------------------------------- */

int ss__request_complete_io(ss_request *req)
{
    if (req->is_datagram)
        return ss__datagram_send_reply(req, call_deadline(req));
    return flush_held(req);
}
