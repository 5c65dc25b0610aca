/*
 * proxy_request.c — ss_config.proxy_protocol on a connection: checking the
 * settings when a server is made, and reading one header into the
 * request's read buffer before the transport opens and finish_request
 * runs, in whatever runs the request and through its own wait, under one
 * deadline. The header is received from the socket itself (it precedes
 * any TLS); bytes past it stay buffered for the transport or the handler. Guide: docs/deployment.md ("Behind a load
 * balancer").
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>

#include "internal.h"

static int proxy_accept(ss_request *req);

int ss__proxy_configure(ss_server *srv)
{
    const ss_config *cfg = &srv->config;
    srv->proxy_trust.count = -1;
    if (cfg->proxy_protocol == 0)
        return 0;
    srv->preamble = proxy_accept;
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

static int proxy_accept(ss_request *req)
{
    ss_server *srv = req->server;
    const struct sockaddr *peer = (const struct sockaddr *)&req->client_address;
    /* Untrusted peers are refused before a byte is read: their header,
     * whatever it says, must not become the client address. */
    if (!ss__proxy_trust_match(&srv->proxy_trust, peer,
                               req->client_address_len))
        return -EACCES;

    int64_t deadline = ss_deadline_after(srv->config.proxy_protocol_timeout);
    ss__proxy_header header;
    int n;
    while ((n = ss__proxy_parse(req->rbuf + req->rpos, req->rlen - req->rpos,
                                srv->config.proxy_protocol, &header)) == 0) {
        /* Cannot happen (the buffer holds the longest header the parser
         * accepts), but never recv() into no space. */
        if (req->rlen == req->rbuf_size)
            return -EPROTO;
        /* Into the free end of the read buffer, from the socket itself:
         * the header comes before any layer the server's transport opens
         * (TLS). What arrives after the header stays in the buffer; such
         * a transport takes it in its open (ss_request_take_buffered). */
        ssize_t got = ss__request_receive_via(
            req, &ss_plain_transport, req->rbuf + req->rlen,
            req->rbuf_size - req->rlen, deadline);
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
