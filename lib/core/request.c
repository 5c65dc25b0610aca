/*
 * request.c — one request's life: allocation, the setup/handle/finish run,
 * and what a handler can ask about its request.
 *
 * A request is one allocation: the struct, then the handler's state, then
 * the read buffer (a stream's buffer or the datagram itself). A stream's
 * write buffer or a datagram's reply is allocated only when first written,
 * because most requests of most handlers never need one.
 *
 * Life cycle (Python's BaseServer, one function per step, all overridable):
 *   get_request → verify_request → strategy.process_request →
 *   [the PROXY header, with config.proxy_protocol: proxy_request.c] →
 *   finish_request (setup, handle, finish) → complete I/O →
 *   handle_error if anything failed → shutdown_request → free
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "internal.h"

#define ALIGN_UP(n) (((n) + 15) & ~(size_t)15)

int ss__request_new(ss_server *srv, ss_request **out)
{
    bool datagram = srv->kind.socket_type == SOCK_DGRAM;
    size_t rbuf_size =
        datagram ? srv->config.max_packet_size : srv->handler.rbufsize;
    /* A PROXY header is read into this buffer, so it must fit whole. */
    if (!datagram && srv->config.proxy_protocol &&
        rbuf_size < SS__PROXY_MAX_HEADER)
        rbuf_size = SS__PROXY_MAX_HEADER;
    size_t head = ALIGN_UP(sizeof(ss_request));
    size_t state = ALIGN_UP(srv->handler.state_size);
    ss_request *req = ss__fault_should_fail(SS_FAULT_ALLOC)
                          ? NULL
                          : calloc(1, head + state + rbuf_size);
    if (!req)
        return -ENOMEM;
    atomic_fetch_add(&srv->requests_alive, 1);
    req->server = srv;
    req->fd = -1;
    req->is_datagram = datagram;
    req->timeout = srv->handler.timeout;
    req->io = srv->strategy->io ? srv->strategy->io : &ss_blocking_io;
    req->state = srv->handler.state_size ? (char *)req + head : NULL;
    req->rbuf = (char *)req + head + state;
    req->rbuf_size = rbuf_size;
    *out = req;
    return 0;
}

void ss__request_free(ss_request *req)
{
    if (!req)
        return;
    if (req->limit.counted || req->limit.per_client)
        ss__limits_release(req->server, &req->limit);
    atomic_fetch_sub(&req->server->requests_alive, 1);
    free(req->wbuf);
    free(req);
}

int ss__default_finish_request(ss_server *srv, ss_request *req)
{
    const ss__handler *h = &srv->handler;
    int rc = h->setup(req);
    if (rc == 0)
        rc = h->handle(req);
    /* finish always runs, like Python's try/finally around handle(). */
    int finish_rc = h->finish(req);
    if (rc == 0)
        rc = finish_rc;
    /* Flush a buffered writer / send the datagram reply, even after a
     * failure: Python's finish() does the same. */
    int io_rc = ss__request_complete_io(req);
    if (rc == 0)
        rc = io_rc;
    return rc;
}

/* The server whose request this thread is running, if any: lets
 * ss_server_close() refuse to pull the server out from under its own
 * handler. */
static _Thread_local ss_server *running_for;

bool ss__running_request_of(const ss_server *srv)
{
    return running_for == srv;
}

ss_server *ss__running_for_swap(ss_server *srv)
{
    ss_server *previous = running_for;
    running_for = srv;
    return previous;
}

int ss__run_request(ss_server *srv, ss_request *req)
{
    ss_server *outer = running_for;
    running_for = srv;
    /* Behind a load balancer the PROXY header comes first, read here in
     * the request's own context (proxy_request.c); the handler runs only
     * when it was good. */
    int rc = srv->config.proxy_protocol ? ss__proxy_accept(req) : 0;
    bool refused = rc != 0;
    if (!refused)
        rc = srv->kind.finish_request(srv, req);
    running_for = outer;
    /* A request cut short by shutdown is not an error worth a report, nor
     * is a peer that left before sending a byte of its header (a TCP
     * health check). */
    bool cancelled =
        rc == -ECANCELED && (atomic_load(&srv->stopping) || refused);
    bool left = refused && rc == SS_EOF;
    if (rc != 0 && !cancelled && !left)
        srv->kind.handle_error(srv, req, rc);
    srv->kind.shutdown_request(srv, req);
    ss__request_free(req);
    return rc;
}

void ss_run_request(ss_server *srv, ss_request *req)
{
    ss__run_request(srv, req);
}

void ss_drop_request(ss_server *srv, ss_request *req)
{
    srv->kind.shutdown_request(srv, req);
    ss__request_free(req);
}

/* ---- what a handler can ask ---------------------------------------- */

ss_server *ss_request_server(const ss_request *req)
{
    return req->server;
}

void *ss_request_state(const ss_request *req)
{
    return req->state;
}

void *ss_request_user(const ss_request *req)
{
    return req->server->config.user;
}

const void *ss_request_class_data(const ss_request *req)
{
    return req->server->handler.class_data;
}

const struct sockaddr *ss_request_client_address(const ss_request *req,
                                                 socklen_t *len)
{
    if (len)
        *len = req->client_address_len;
    return (const struct sockaddr *)&req->client_address;
}

int ss_request_client_address_string(const ss_request *req, char *buf,
                                     size_t size)
{
    return ss_address_format((const struct sockaddr *)&req->client_address,
                             req->client_address_len, buf, size);
}

int ss_request_fileno(const ss_request *req)
{
    return req->fd;
}

bool ss_request_truncated(const ss_request *req)
{
    return req->truncated;
}

void ss_request_set_timeout(ss_request *req, double seconds)
{
    req->timeout = seconds > 0 ? seconds : 0;
}
