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
 *   [the preamble: the PROXY header, with config.proxy_protocol] →
 *   [the transport's open: a TLS handshake] →
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
    req->wait_class = srv->strategy->wait_class ? srv->strategy->wait_class
                                                : &ss_blocking_wait;
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
    free(req->error_detail);
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

/* Before the handler: the preamble (the PROXY header) and the transport's
 * open (a TLS handshake), each in the request's own context. */
static int open_request(ss_server *srv, ss_request *req)
{
    if (srv->preamble) {
        int rc = srv->preamble(req);
        if (rc != 0)
            return rc;
    }
    if (req->is_datagram || !srv->transport->open)
        return 0;
    int rc = srv->transport->open(req, ss_deadline_after(req->timeout));
    /* The preamble's last receive may have said "drained", but the
     * transport has read the socket since: the handler's first read must
     * ask the transport, which may hold bytes already. */
    req->wait_before_recv = false;
    return rc;
}

int ss_run_request(ss_server *srv, ss_request *req)
{
    ss_server *outer = running_for;
    running_for = srv;
    int rc = open_request(srv, req);
    bool refused = rc != 0;
    if (!refused)
        rc = srv->kind.finish_request(srv, req);
    if (!req->is_datagram && srv->transport->close)
        srv->transport->close(req, ss_deadline_after(req->timeout));
    running_for = outer;
    /* A request cut short by shutdown is not an error worth a report, nor
     * is a peer that left before sending a byte (a TCP health check). */
    bool cancelled =
        rc == -ECANCELED && (atomic_load(&srv->stopping) || refused);
    bool left = refused && rc == SS_EOF;
    if (rc != 0 && !cancelled && !left)
        srv->kind.handle_error(srv, req, rc);
    srv->kind.shutdown_request(srv, req);
    ss__request_free(req);
    return cancelled || left ? 0 : rc;
}

void ss_drop_request(ss_server *srv, ss_request *req)
{
    srv->kind.shutdown_request(srv, req);
    ss__request_free(req);
}

void ss_close_request_copy(ss_server *srv, ss_request *req)
{
    srv->kind.close_request(srv, req);
    ss__request_free(req);
}

/* ---- for strategies and transports --------------------------------- */

bool ss_request_is_datagram(const ss_request *req)
{
    return req->is_datagram;
}

void *ss_request_strategy_data(const ss_request *req)
{
    return req->strategy_data;
}

void ss_request_set_strategy_data(ss_request *req, void *data)
{
    req->strategy_data = data;
}

void ss_request_set_wait_class(ss_request *req, const ss_wait_class *cls)
{
    req->wait_class = cls ? cls : &ss_blocking_wait;
}

size_t ss_request_buffered(const ss_request *req)
{
    return req->is_datagram ? 0 : req->rlen - req->rpos;
}

size_t ss_request_take_buffered(ss_request *req, void *buf, size_t size)
{
    size_t n = ss_request_buffered(req);
    if (n > size)
        n = size;
    if (n > 0) {
        memcpy(buf, req->rbuf + req->rpos, n);
        req->rpos += n;
    }
    if (req->rpos == req->rlen)
        req->rpos = req->rlen = 0;
    return n;
}

void *ss_request_transport_data(const ss_request *req)
{
    return req->transport_data;
}

void ss_request_set_transport_data(ss_request *req, void *data)
{
    req->transport_data = data;
}

ss_places *ss_request_take_places(ss_request *req)
{
    if (!req->limit.counted && !req->limit.per_client)
        return NULL;
    ss_places *places = malloc(sizeof *places);
    if (places)
        places->ticket = req->limit;
    else
        ss__limits_release(req->server, &req->limit);
    req->limit = (ss__limit_ticket){0};
    return places;
}

void ss_places_release(ss_server *srv, ss_places *places)
{
    if (!places)
        return;
    if (srv)
        ss__limits_release(srv, &places->ticket);
    free(places);
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

void ss_request_set_error_detail(ss_request *req, const char *text)
{
    free(req->error_detail);
    /* No memory: the report goes out without the detail. */
    req->error_detail = text ? strdup(text) : NULL;
}

const char *ss_request_error_detail(const ss_request *req)
{
    return req->error_detail;
}

bool ss_request_truncated(const ss_request *req)
{
    return req->truncated;
}

void ss_request_set_timeout(ss_request *req, double seconds)
{
    req->timeout = seconds > 0 ? seconds : 0;
}
