/*
 * handlers.c — the three base handler classes (Python's BaseRequestHandler,
 * StreamRequestHandler, DatagramRequestHandler) and the walk up a user
 * class's base chain that fills in what it left NULL.
 *
 * Request I/O follows the server kind (see request_io.c), so the bases
 * differ only in their setup: the stream handler applies the class's
 * timeout and TCP_NODELAY, like Python's StreamRequestHandler.setup().
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "internal.h"

#define DEFAULT_RBUFSIZE 8192
/* A base chain deeper than this is almost surely a cycle. */
#define MAX_BASE_DEPTH 32

static int do_nothing(ss_request *req)
{
    (void)req;
    return 0;
}

static int stream_setup(ss_request *req)
{
    const ss__handler *h = &req->server->handler;
    req->timeout = h->timeout;
    /* Linux copies TCP_NODELAY from the listener to the accepted socket:
     * when the library's own accept() took it from a listener it set the
     * option on, the call here would change nothing. */
    if (h->disable_nagle_algorithm && !req->is_datagram &&
        !req->nodelay_inherited) {
        int family = req->server->address.ss_family;
        if (family == AF_INET || family == AF_INET6) {
            int one = 1;
            if (setsockopt(req->fd, IPPROTO_TCP, TCP_NODELAY, &one,
                           sizeof one) < 0)
                return -errno;
        }
    }
    return 0;
}

const ss_handler_class ss_base_handler = {
    .setup = do_nothing,
    .handle = do_nothing,
    .finish = do_nothing,
};

const ss_handler_class ss_stream_handler = {
    .base = &ss_base_handler,
    .setup = stream_setup,
    .handle = do_nothing,
    .finish = do_nothing,
};

const ss_handler_class ss_datagram_handler = {
    .base = &ss_base_handler,
    .setup = do_nothing,
    .handle = do_nothing,
    .finish = do_nothing,
};

/* A class without a base extends ss_base_handler. */
static const ss_handler_class *base_of(const ss_handler_class *c)
{
    if (c->base)
        return c->base;
    return c == &ss_base_handler ? NULL : &ss_base_handler;
}

int ss__handler_resolve(const ss_handler_class *cls, ss__handler *out)
{
    if (!cls)
        return -EINVAL;
    *out = (ss__handler){.state_size = cls->state_size};
    int depth = 0;
    for (const ss_handler_class *c = cls; c; c = base_of(c)) {
        if (++depth > MAX_BASE_DEPTH)
            return -ELOOP;
        if (!out->setup)
            out->setup = c->setup;
        if (!out->handle)
            out->handle = c->handle;
        if (!out->finish)
            out->finish = c->finish;
        if (out->timeout == 0)
            out->timeout = c->timeout;
        if (out->rbufsize == 0)
            out->rbufsize = c->rbufsize;
        if (out->wbufsize == 0)
            out->wbufsize = c->wbufsize;
        out->disable_nagle_algorithm |= c->disable_nagle_algorithm;
        if (!out->first_byte_timeout)
            out->first_byte_timeout = c->first_byte_timeout;
        if (!out->class_data)
            out->class_data = c->class_data;
    }
    /* Sizes far beyond any real use are a mistake; refusing them also
     * keeps the request allocation's arithmetic from overflowing. */
    const size_t limit = (size_t)1 << 30;
    if (out->timeout < 0 || out->state_size > limit || out->rbufsize > limit ||
        out->wbufsize > limit)
        return -EINVAL;
    if (out->rbufsize == 0)
        out->rbufsize = DEFAULT_RBUFSIZE;
    return 0;
}
