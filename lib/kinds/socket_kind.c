/*
 * socket_kind.c — the methods the four server kinds share (Python's
 * BaseServer and TCPServer/UDPServer bodies): bind, listen, accept or
 * receive one request, end a request, and the default server hooks.
 *
 * inet.c and unix.c assemble these into ss_tcp, ss_udp, ss_unix_stream and
 * ss_unix_datagram; a user's "subclass" copies one of those and may call
 * these through the copied pointers, like super().
 *
 * Sockets are created CLOEXEC and non-blocking: non-blocking because the
 * serve loop polls before accepting, and another process (prefork) or
 * thread may take the connection first — accept must then say EAGAIN, not
 * hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int ss__socket_open(ss_server *srv)
{
    int fd = socket(srv->address.ss_family,
                    srv->kind.socket_type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    srv->fd = fd;
    ss__socket_options(srv);
    return 0;
}

static int set_option(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

int ss__server_bind_socket(ss_server *srv)
{
    int family = srv->address.ss_family;
    int rc = 0;
    bool inet = family == AF_INET || family == AF_INET6;
    if (inet && srv->config.allow_reuse_address)
        rc = set_option(srv->fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && inet && srv->config.allow_reuse_port)
        rc = set_option(srv->fd, SOL_SOCKET, SO_REUSEPORT, 1);
    /* Always explicit, so net.ipv6.bindv6only never decides for us. */
    if (rc == 0 && family == AF_INET6)
        rc = set_option(srv->fd, IPPROTO_IPV6, IPV6_V6ONLY,
                        srv->config.ipv6_only ? 1 : 0);
    if (rc < 0)
        return rc;
    if (bind(srv->fd, (struct sockaddr *)&srv->address, srv->address_len) < 0)
        return -errno;
    /* server_address: the real one, e.g. the port chosen for port 0. */
    socklen_t len = sizeof srv->address;
    if (getsockname(srv->fd, (struct sockaddr *)&srv->address, &len) < 0)
        return -errno;
    srv->address_len = len;
    return 0;
}

/* config.defer_accept on a TCP socket. One that already has a defer time
 * (an adopted socket: a service manager's DeferAcceptSec=) keeps it. */
static void defer_accept(ss_server *srv)
{
    int family = srv->address.ss_family;
    if (srv->config.defer_accept <= 0 || srv->kind.socket_type != SOCK_STREAM ||
        (family != AF_INET && family != AF_INET6))
        return;
    int have = 0;
    socklen_t len = sizeof have;
    if (getsockopt(srv->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &have, &len) == 0 &&
        have > 0)
        return;
    /* Whole seconds; a fraction rounds up, so a small value stays on. */
    int seconds = (int)srv->config.defer_accept;
    if (seconds < srv->config.defer_accept)
        seconds++;
    int rc = set_option(srv->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, seconds);
    if (rc < 0) {
        char line[160];
        snprintf(line, sizeof line,
                 "sockserv: ss_config.defer_accept: TCP_DEFER_ACCEPT: %s; "
                 "connections are accepted at once",
                 strerror(-rc));
        ss_server_log(srv, line);
    }
}

void ss__socket_options(ss_server *srv)
{
    ss__input_stamps_enable(srv);
    defer_accept(srv);
}

void ss__listener_nodelay(ss_server *srv)
{
    int family = srv->address.ss_family;
    srv->listener_nodelay =
        srv->handler.disable_nagle_algorithm &&
        (family == AF_INET || family == AF_INET6) &&
        set_option(srv->fd, IPPROTO_TCP, TCP_NODELAY, 1) == 0;
}

int ss__stream_server_activate(ss_server *srv)
{
    if (listen(srv->fd, srv->config.request_queue_size) < 0)
        return -errno;
    ss__listener_nodelay(srv);
    ss__reserve_spare_fd(srv);
    return 0;
}

int ss__datagram_server_activate(ss_server *srv)
{
    (void)srv;
    return 0;
}

/* Most connections closed in one go while out of descriptors. */
#define SHED_BATCH 64

/* Hold the spare descriptor (see shed_waiting_connections below): when a stream
 * server starts listening, and again after it was spent — the first accept
 * that works again (descriptors freed up) is the moment to. */
void ss__reserve_spare_fd(ss_server *srv)
{
    if (atomic_load(&srv->spare_fd) >= 0)
        return;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    int none = -1;
    if (!atomic_compare_exchange_strong(&srv->spare_fd, &none, fd))
        close(fd); /* another thread was quicker */
}

/* Out of descriptors: the connections stay queued and poll() keeps saying
 * "readable", so the loop would spin, and their clients would hang. Free
 * the spare descriptor, take the waiting connections and close them at
 * once (their clients see the connection end instead of a hang), then
 * reserve the spare again — libuv's trick. The spare is taken with an
 * atomic exchange: coroutine schedulers accept on several threads, and
 * only one may close it. Whether or not this helps (another thread may
 * take the freed slot first, or the limit is below the spare's number),
 * the loop then pauses accepting for a while (ss_accept_pause_update). */
static void shed_waiting_connections(ss_server *srv)
{
    int spare = atomic_exchange(&srv->spare_fd, -1);
    if (spare < 0)
        return;
    close(spare);
    for (int i = 0; i < SHED_BATCH; i++) {
        int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0)
            break;
        close(fd);
    }
    ss__reserve_spare_fd(srv);
}

int ss__stream_get_request(ss_server *srv, ss_request *req)
{
    for (;;) {
        req->client_address_len = sizeof req->client_address;
        int fd =
            accept4(srv->fd, (struct sockaddr *)&req->client_address,
                    &req->client_address_len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            req->fd = fd;
            req->nodelay_inherited = srv->listener_nodelay;
            if (atomic_load_explicit(&srv->spare_fd, memory_order_relaxed) < 0)
                ss__reserve_spare_fd(srv); /* spent in an EMFILE episode */
            return 0;
        }
        switch (errno) {
        case EINTR:
            continue;
        case ECONNABORTED: /* the client gave up while queued */
            return -EAGAIN;
        case EMFILE:
        case ENFILE: {
            int error = errno;
            shed_waiting_connections(srv);
            return -error;
        }
        default:
            return -errno;
        }
    }
}

int ss__datagram_get_request(ss_server *srv, ss_request *req)
{
    struct iovec iov = {.iov_base = req->rbuf, .iov_len = req->rbuf_size};
    union {
        char bytes[SS__INPUT_CONTROL];
        struct cmsghdr align;
    } control; /* the arrival stamp (config.input_timestamps) */
    struct msghdr msg = {
        .msg_name = &req->client_address,
        .msg_namelen = sizeof req->client_address,
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = srv->input_stamped ? control.bytes : NULL,
        .msg_controllen = srv->input_stamped ? sizeof control.bytes : 0,
    };
    for (;;) {
        ssize_t got = recvmsg(srv->fd, &msg, MSG_DONTWAIT);
        if (got >= 0) {
            req->fd = srv->fd;
            req->client_address_len = msg.msg_namelen;
            req->rlen = (size_t)got;
            req->truncated = (msg.msg_flags & MSG_TRUNC) != 0;
            req->input_time_ns =
                srv->input_stamped ? ss__input_stamp_of(&msg) : 0;
            return 0;
        }
        if (errno != EINTR)
            return -errno;
    }
}

void ss__stream_shutdown_request(ss_server *srv, ss_request *req)
{
    /* Send FIN explicitly: close() alone would not, while a forked child
     * still holds the descriptor. Errors mean the peer is gone already. */
    if (req->fd >= 0)
        shutdown(req->fd, SHUT_WR);
    srv->kind.close_request(srv, req);
}

void ss__stream_close_request(ss_server *srv, ss_request *req)
{
    (void)srv;
    if (req->fd >= 0)
        close(req->fd);
    req->fd = -1;
}

void ss__datagram_close_request(ss_server *srv, ss_request *req)
{
    /* The datagram socket is the server's; there is nothing to close. */
    (void)srv;
    req->fd = -1;
}

/* ---- default hooks (Python's BaseServer) --------------------------- */

bool ss__default_verify_request(ss_server *srv, ss_request *req)
{
    (void)srv;
    (void)req;
    return true;
}

void ss__default_handle_error(ss_server *srv, ss_request *req, int error)
{
    char client[128];
    char line[512];
    if (ss_request_client_address_string(req, client, sizeof client) < 0)
        snprintf(client, sizeof client, "an unknown client");
    /* The layer that failed may have said why in words (a TLS alert). */
    const char *detail = ss_request_error_detail(req);
    if (error < 0)
        snprintf(line, sizeof line,
                 "sockserv: error processing request from %s: %s%s%s", client,
                 ss_strerror(error), detail ? ": " : "", detail ? detail : "");
    else
        snprintf(line, sizeof line,
                 "sockserv: error processing request from %s: handler "
                 "returned %d%s%s",
                 client, error, detail ? ": " : "", detail ? detail : "");
    ss_server_log(srv, line);
}

void ss__default_handle_timeout(ss_server *srv)
{
    (void)srv;
}

void ss__default_service_actions(ss_server *srv)
{
    (void)srv;
}

void ss_server_log(const ss_server *srv, const char *line)
{
    if (srv->config.log) {
        srv->config.log(srv->config.user, line);
        return;
    }
    /* One write() so lines from concurrent requests never interleave. */
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf) {
        n = sizeof buf - 1;
        buf[n - 1] = '\n';
    }
    ssize_t rc;
    do
        rc = write(STDERR_FILENO, buf, (size_t)n);
    while (rc < 0 && errno == EINTR);
}

/* After finish: a datagram request's reply, always sent (even empty, as
 * Python's DatagramRequestHandler does), through the server's socket. */
int ss__datagram_send_reply(ss_request *req, int64_t deadline)
{
    /* An unnamed Unix datagram client has no address to answer to. An
     * empty reply to it is dropped quietly; a real one is an error. */
    if (req->client_address_len <= (socklen_t)sizeof(sa_family_t))
        return req->wlen == 0 ? 0 : -EDESTADDRREQ;
    for (;;) {
        ssize_t sent = sendto(req->fd, req->wbuf ? req->wbuf : "", req->wlen,
                              MSG_DONTWAIT | MSG_NOSIGNAL,
                              (const struct sockaddr *)&req->client_address,
                              req->client_address_len);
        if (sent >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = ss__request_wait_io(req, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
}
