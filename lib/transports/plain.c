/*
 * plain.c — ss_plain_transport: a stream request's bytes over the socket
 * itself. The only place that receives (through ss_request_socket_recv(),
 * which also keeps the arrival stamp), sends and calls sendfile() on a
 * request's connection; every other layer goes through the transport
 * vtable (sockserv/strategy.h), so a TLS transport slots in beside this
 * one without a change in any strategy or handler.
 *
 * Every call is non-blocking (MSG_DONTWAIT; request sockets are
 * O_NONBLOCK anyway) and says "would block" as -EAGAIN with the event to
 * wait for. EINTR is retried here. MSG_NOSIGNAL keeps a closed peer from
 * raising SIGPIPE; sendfile() has no such flag, see below.
 */
#include <errno.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include "sigpipe.h"
#include "sockserv/strategy.h"

static ssize_t plain_recv(ss_request *req, void *buf, size_t n, short *want)
{
    for (;;) {
        ssize_t got = ss_request_socket_recv(req, buf, n, MSG_DONTWAIT);
        if (got >= 0) {
            /* A short receive emptied the socket: the next one may wait
             * first instead of spending a recv() on EAGAIN. */
            if ((size_t)got < n)
                *want = POLLIN;
            return got;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = POLLIN;
            return -EAGAIN;
        }
        return -errno;
    }
}

static ssize_t plain_send(ss_request *req, const void *buf, size_t n,
                          short *want)
{
    int fd = ss_request_fileno(req);
    for (;;) {
        ssize_t sent = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent >= 0)
            return sent;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = POLLOUT;
            return -EAGAIN;
        }
        return -errno;
    }
}

/* sendfile() takes no MSG_NOSIGNAL: to a peer that has closed it raises
 * SIGPIPE, which by default kills the process; sigpipe.h keeps it from
 * escaping without touching the process's disposition. */
static ssize_t plain_sendfile(ss_request *req, int fd, off_t *offset, size_t n,
                              short *want)
{
    int saved_errno = errno;
    ss__sigpipe_guard guard;
    ss__sigpipe_block(&guard);
    ssize_t sent;
    do
        sent = sendfile(ss_request_fileno(req), fd, offset, n);
    while (sent < 0 && errno == EINTR);
    int error = sent < 0 ? errno : 0;
    ss__sigpipe_restore(&guard);
    errno = saved_errno;
    if (sent >= 0)
        return sent;
    if (error == EAGAIN || error == EWOULDBLOCK) {
        *want = POLLOUT;
        return -EAGAIN;
    }
    return -error;
}

const ss_transport ss_plain_transport = {
    .name = "plain",
    .recv = plain_recv,
    .send = plain_send,
    .sendfile = plain_sendfile,
};
