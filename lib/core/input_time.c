/*
 * input_time.c — when a request's bytes reached this machine, for
 * config.input_timestamps: the kernel stamps each arriving packet
 * (SO_TIMESTAMPNS) and every receive asks for the stamp with recvmsg().
 *
 * What it is good for: ordering a request after something else that
 * happened on this machine without a system call. sockserv-httpd's file
 * cache skips reading its inotify queue when a read of the queue began
 * after the request's bytes arrived (examples/httpserver/file_cache.c).
 *
 * What the stamp means. A TCP receive reports the stamp of the last
 * packet it took bytes from, and a packet merged into an earlier one in
 * the receive queue passes its newer stamp on. So the stamp is at least
 * the arrival time of the last byte returned. Any byte a client sent
 * after some event arrived after it; the last byte received so far is at
 * or behind the end of every request read so far, so the stamp of the
 * latest receive is never earlier than the arrival of a request that was
 * sent after the event. The stamps are CLOCK_REALTIME (the kernel's
 * software receive time), so comparisons must allow for steps of that
 * clock; the file cache's does.
 *
 * Which sockets give stamps: TCP (accepted connections inherit the
 * listener's option), UDP and Unix datagram sockets. Unix stream
 * sockets accept the option but never stamp, so they are left alone and
 * their requests' time is "not known".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

void ss__input_stamps_enable(ss_server *srv)
{
    srv->input_stamped = false;
    if (!srv->config.input_timestamps || srv->fd < 0)
        return;
    if (srv->address.ss_family == AF_UNIX &&
        srv->kind.socket_type == SOCK_STREAM)
        return;
    int on = 1;
    if (setsockopt(srv->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) {
        /* Only an optimisation's input: serve without it, and say so. */
        char line[160];
        snprintf(line, sizeof line,
                 "sockserv: ss_config.input_timestamps: SO_TIMESTAMPNS: %s; "
                 "input times are not known",
                 strerror(errno));
        ss_server_log(srv, line);
        return;
    }
    srv->input_stamped = true;
}

int64_t ss__input_stamp_of(const struct msghdr *msg)
{
    if (msg->msg_flags & MSG_CTRUNC)
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        }
    }
    return 0;
}

ssize_t ss_request_socket_recv(ss_request *req, void *buf, size_t n, int flags)
{
    if (req->is_datagram) { /* the server's socket: another's datagram */
        errno = EOPNOTSUPP;
        return -1;
    }
    if (!req->server->input_stamped)
        return recv(req->fd, buf, n, flags);
    struct iovec iov = {.iov_base = buf, .iov_len = n};
    union {
        char bytes[SS__INPUT_CONTROL];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.bytes,
        .msg_controllen = sizeof control.bytes,
    };
    ssize_t got = recvmsg(req->fd, &msg, flags);
    /* Only bytes move the time: an end of input or an error says nothing
     * about when the bytes already read arrived. A receive without a
     * stamp makes it unknown rather than leave an older one. */
    if (got > 0)
        req->input_time_ns = ss__input_stamp_of(&msg);
    return got;
}

bool ss_request_input_time(const ss_request *req, struct timespec *when)
{
    if (req == NULL || req->input_time_ns <= 0)
        return false;
    if (when != NULL) {
        when->tv_sec = (time_t)(req->input_time_ns / 1000000000);
        when->tv_nsec = (long)(req->input_time_ns % 1000000000);
    }
    return true;
}
