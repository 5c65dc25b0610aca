/*
 * proxy_request.c — the PROXY protocol on a connection: checking the
 * config when a server is made, and reading one header at the start of
 * each connection (ss_config.proxy_protocol).
 *
 * Where the header is read: in ss__run_request(), before finish_request —
 * that is, in whatever runs the request (the serving thread under sync, a
 * thread, a pool worker, a forked child, a prefork worker, a coroutine),
 * through the request's own io class. So a slow proxy parks a coroutine
 * instead of stalling its scheduler, and no strategy needs to know about
 * the header. verify_request runs earlier, in the serve loop, before any
 * byte is read: it sees the connecting peer, i.e. the proxy, which is what
 * a check of "who may connect" wants anyway.
 *
 * How: the bytes go into the request's read buffer (at least
 * SS__PROXY_MAX_HEADER bytes when the feature is on, see request.c), and
 * the parser looks at what has arrived after every recv(). Whatever the
 * same recv() brought after the header stays in the buffer, so the
 * handler's first ss_read() gets it: nothing is lost and nothing is read
 * twice. One deadline (proxy_protocol_timeout) covers the whole header,
 * however it is split, so a client that sends nothing, or a byte a
 * second, cannot hold a worker.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>

#include "internal.h"

int ss__proxy_configure(ss_server *srv)
{
    const ss_config *cfg = &srv->config;
    srv->proxy_trust.count = -1;
    if (cfg->proxy_protocol == 0)
        return 0;
    if (cfg->proxy_protocol < 0 || cfg->proxy_protocol > SS_PROXY_ANY)
        return -EINVAL;
    /* The header arrives on a connection: datagrams have none. */
    if (srv->kind.socket_type != SOCK_STREAM)
        return -EOPNOTSUPP;
    /* Always a real deadline: "no timeout" would let any client that
     * connects and says nothing hold a worker forever. */
    if (!(cfg->proxy_protocol_timeout > 0) ||
        !isfinite(cfg->proxy_protocol_timeout) ||
        cfg->proxy_protocol_timeout > 1e6)
        return -EINVAL;
    return ss__proxy_trust_parse(cfg->proxy_trusted, &srv->proxy_trust);
}

/* recv() into the free end of the read buffer, waiting through the
 * request's io class. Returns the count, 0 at end of stream, or a
 * negative errno (-ETIMEDOUT at the deadline, -ECANCELED at shutdown). */
static ssize_t receive_more(ss_request *req, int64_t deadline)
{
    ss_server *srv = req->server;
    for (;;) {
        ssize_t got = recv(req->fd, req->rbuf + req->rlen,
                           req->rbuf_size - req->rlen, MSG_DONTWAIT);
        if (got >= 0)
            return got;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        /* A stopping server waits for no input, as in request_io.c. */
        if (atomic_load(&srv->stopping))
            return -ECANCELED;
        int rc = req->io->wait(req, req->fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

int ss__proxy_accept(ss_request *req)
{
    ss_server *srv = req->server;
    const struct sockaddr *peer = (const struct sockaddr *)&req->client_address;
    /* Untrusted peers are refused before a byte is read: their header,
     * whatever it says, must not become the client address. */
    if (!ss__proxy_trust_match(&srv->proxy_trust, peer,
                               req->client_address_len))
        return -EACCES;

    int64_t deadline = ss__deadline_after(srv->config.proxy_protocol_timeout);
    ss__proxy_header header;
    int n;
    while ((n = ss__proxy_parse(req->rbuf + req->rpos, req->rlen - req->rpos,
                                srv->config.proxy_protocol, &header)) == 0) {
        /* Cannot happen (the buffer holds the longest header the parser
         * accepts), but never recv() into no space. */
        if (req->rlen == req->rbuf_size)
            return -EPROTO;
        ssize_t got = receive_more(req, deadline);
        if (got < 0)
            return (int)got;
        if (got == 0) {
            req->eof = true;
            /* Gone without a byte (a TCP health check) or mid-header. */
            return req->rlen == req->rpos ? SS_EOF : -EPROTO;
        }
        req->rlen += (size_t)got;
    }
    if (n < 0)
        return n;
    req->rpos += (size_t)n;

    memcpy(&req->peer_address, &req->client_address, sizeof req->peer_address);
    req->peer_address_len = req->client_address_len;
    if (!header.local) {
        memcpy(&req->client_address, &header.source,
               sizeof req->client_address);
        req->client_address_len = header.source_len;
    }
    return 0;
}

const struct sockaddr *ss_request_peer_address(const ss_request *req,
                                               socklen_t *len)
{
    if (req->peer_address_len == 0)
        return ss_request_client_address(req, len);
    if (len)
        *len = req->peer_address_len;
    return (const struct sockaddr *)&req->peer_address;
}
