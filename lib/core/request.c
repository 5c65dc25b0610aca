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
#include <poll.h>
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
    req->park_deadline = SS_NO_DEADLINE;
    req->lot_index = (size_t)-1;
    *out = req;
    return 0;
}

void ss__request_free(ss_request *req)
{
    if (!req)
        return;
    if (req->limit.counted || req->limit.per_client)
        ss__limits_release(req->server, &req->limit);
    if (req->registered_in)
        ss__request_unregister(req);
    if (req->base_free)
        req->base_free(req->base_data);
    atomic_fetch_sub(&req->server->requests_alive, 1);
    free(req->error_detail);
    free(req->wbuf);
    free(req);
}

/* The end of the handler's part: finish, then the output. */
static int finish_handler(ss_server *srv, ss_request *req, int rc)
{
    /* finish always runs, like Python's try/finally around handle(). */
    int finish_rc = srv->handler.finish(req);
    if (rc == 0)
        rc = finish_rc;
    /* Flush a buffered writer / send the datagram reply, even after a
     * failure: Python's finish() does the same. */
    int io_rc = ss__request_complete_io(req);
    if (rc == 0)
        rc = io_rc;
    return rc;
}

int ss__default_finish_request(ss_server *srv, ss_request *req)
{
    const ss__handler *h = &srv->handler;
    int rc = 0;
    /* A parked request comes back at handle: its setup has run. */
    if (!req->started) {
        req->started = true;
        rc = h->setup(req);
    }
    if (rc == 0)
        rc = h->handle(req);
    if (rc == SS_PARK) {
        /* Nothing may wait in the write buffer while the connection
         * waits for its client. */
        int io_rc = ss_flush(req);
        if (io_rc == 0)
            return SS_PARK;
        rc = io_rc;
    }
    return finish_handler(srv, req, rc);
}

int ss_park(ss_request *req, double timeout)
{
    if (req->is_datagram)
        return -EOPNOTSUPP;
    req->park_deadline = ss_deadline_after(timeout);
    req->park_calls_back = false;
    return SS_PARK;
}

int ss_park_until(ss_request *req, double timeout)
{
    int rc = ss_park(req, timeout);
    req->park_calls_back = rc == SS_PARK;
    return rc;
}

void ss_request_set_base_data(ss_request *req, void *data,
                              void (*free_fn)(void *data))
{
    req->base_data = data;
    req->base_free = free_fn;
}

void *ss_request_base_data(const ss_request *req)
{
    return req->base_data;
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
    /* From here the transport's close is due, whatever the preamble or
     * open say (it frees what open made, if anything). */
    req->transport_open = !req->is_datagram;
    if (srv->preamble) {
        int rc = srv->preamble(req);
        if (rc != 0)
            return rc;
    }
    /* The preamble received through the plain transport, which keeps the
     * arrival stamp; a transport of the server's own may read the socket
     * without it, and a stamp older than the bytes it reads would be
     * wrong, where none is only unknown (ss_request_input_time()). */
    if (!req->is_datagram && srv->transport != &ss_plain_transport)
        req->input_time_ns = 0;
    if (req->is_datagram || !srv->transport->open)
        return 0;
    int rc = srv->transport->open(req, ss_deadline_after(req->timeout));
    /* The preamble's last receive may have said "drained", but the
     * transport has read the socket since: the handler's first read must
     * ask the transport, which may hold bytes already. */
    req->wait_before_recv = false;
    return rc;
}

/* A parked request waits where it runs (its own thread, process or
 * coroutine): 0 once input is there, or why not (-ETIMEDOUT at its
 * deadline, -ECANCELED at shutdown). */
static int wait_parked(ss_request *req)
{
    if (ss__request_has_input(req))
        return 0;
    /* With a thread of its own, the wait is a blocking receive into the
     * empty read buffer: one system call where poll() + recv() were two. */
    if (req->may_block_recv) {
        ssize_t got = ss__blocking_receive(req, req->rbuf, req->rbuf_size,
                                           req->park_deadline);
        if (got != -EAGAIN) {
            req->wait_before_recv = got > 0 && (size_t)got < req->rbuf_size;
            if (got < 0)
                return ss__cancelled_wait(req, (int)got);
            req->rpos = 0;
            req->rlen = (size_t)got;
            req->eof = got == 0;
            return 0;
        }
    }
    /* An edge-triggered wait announces only input that arrives after the
     * socket was drained; unless the last receive drained it, look. */
    if (!req->wait_before_recv && ss__fd_ready_now(req->fd, POLLIN))
        return 0;
    int rc =
        req->wait_class->wait(req, req->fd, POLLIN, req->park_deadline, true);
    /* The wait took the news: the next read receives at once. */
    req->wait_before_recv = false;
    return ss__cancelled_wait(req, rc);
}

/* Hand a parked request to the loop's lot, when its strategy wants that
 * and this process's loop is taking connections; true when it did (the
 * request is the lot's now). Input already buffered is served at once. */
static bool park_in_lot(ss_server *srv, ss_request *req)
{
    if (!(srv->strategy->parking & SS_PARK_IDLE_REQUESTS) || !srv->lot)
        return false;
    if (ss__request_has_input(req))
        return false;
    ss__inflight_leave(srv, req, true);
    if (ss__lot_park(srv, req) == 0)
        return true;
    ss__inflight_enter(srv, req);
    return false;
}

/* Report, shut down and free: the end of every request. Returns rc if it
 * was reported, else 0. */
static int end_request(ss_server *srv, ss_request *req, int rc, bool refused)
{
    if (req->transport_open && srv->transport->close)
        srv->transport->close(req, ss_deadline_after(req->timeout));
    /* A request cut short by shutdown is not an error worth a report, nor
     * is a peer that left before sending a byte (a TCP health check). */
    bool cancelled =
        rc == -ECANCELED && (atomic_load(&srv->stopping) || refused);
    bool left = refused && rc == SS_EOF;
    bool reported = rc != 0 && !cancelled && !left;
    if (reported)
        srv->kind.handle_error(srv, req, rc);
    ss__inflight_leave(srv, req, false);
    srv->kind.shutdown_request(srv, req);
    ss__request_free(req);
    return reported ? rc : 0;
}

int ss_run_request(ss_server *srv, ss_request *req)
{
    ss_server *outer = running_for;
    running_for = srv;
    ss__inflight_enter(srv, req);
    /* A request back from the lot resumes at handle. */
    int rc = req->started ? 0 : open_request(srv, req);
    bool refused = rc != 0;
    if (!refused)
        rc = srv->kind.finish_request(srv, req);
    while (rc == SS_PARK) {
        if (park_in_lot(srv, req)) {
            running_for = outer;
            return 0; /* the lot's now: no longer ours to touch */
        }
        int waited = wait_parked(req);
        if (waited == -ETIMEDOUT && req->park_calls_back)
            waited = 0; /* its deadline: handle answers it */
        if (waited < 0) {
            /* Idle past its deadline, or the server stops: a quiet end. */
            rc = finish_handler(srv, req, 0);
            break;
        }
        rc = srv->kind.finish_request(srv, req);
    }
    running_for = outer;
    return end_request(srv, req, rc, refused);
}

void ss__request_end(ss_server *srv, ss_request *req, int error)
{
    ss_server *outer = running_for;
    running_for = srv;
    int rc = req->started ? finish_handler(srv, req, error) : error;
    running_for = outer;
    (void)end_request(srv, req, rc, false);
}

void ss_drop_request(ss_server *srv, ss_request *req)
{
    /* A request a lot handed back has its transport open (a TLS
     * connection): that is released too. */
    if (req->transport_open && srv->transport->close)
        srv->transport->close(req, ss_deadline_after(req->timeout));
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
