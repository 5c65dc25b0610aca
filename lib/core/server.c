/*
 * server.c — making, binding, closing and freeing a server, and what a
 * program can ask about it.
 *
 * ss_server_new() does what Python's TCPServer.__init__ does — create the
 * socket, then (by default) server_bind and server_activate — and cleans up
 * everything it made on any failure, so a failed construction leaks no
 * descriptor (CPython's test_tcpserver_bind_leak).
 *
 * The kind is copied into the server, so a user's "subclass" may live on
 * the stack of the function that creates the server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

static bool kind_is_complete(const ss_server_class *k)
{
    return k->server_bind && k->server_activate && k->get_request &&
           k->verify_request && k->finish_request && k->handle_error &&
           k->handle_timeout && k->service_actions && k->shutdown_request &&
           k->close_request &&
           (k->socket_type == SOCK_STREAM || k->socket_type == SOCK_DGRAM);
}

static bool family_fits_kind(int family, const ss_server_class *kind)
{
    if (kind->family == AF_UNSPEC)
        return family == AF_INET || family == AF_INET6;
    return family == kind->family;
}

/* ss_server_new_sockaddr's body. adopted_fd < 0: make a socket and (by
 * default) bind and activate it. adopted_fd >= 0: the socket is already
 * bound to address (socket_activation.c checked it); it becomes the
 * server's only on success, and activating it is left to the caller. */
static int server_new(ss_server **out, const ss_server_class *kind,
                      const ss_strategy *strategy,
                      const struct sockaddr *address, socklen_t address_len,
                      const ss_handler_class *handler, const ss_config *cfg,
                      int adopted_fd)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!kind || !strategy || !strategy->process_request || !handler ||
        !address || address_len < (socklen_t)sizeof(sa_family_t) ||
        address_len > (socklen_t)sizeof(struct sockaddr_storage) ||
        !kind_is_complete(kind))
        return -EINVAL;
    if (!family_fits_kind(address->sa_family, kind))
        return -EAFNOSUPPORT;

    ss_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->kind = *kind;
    srv->strategy = strategy;
    srv->fd = srv->wake_fd = srv->stop_fd = -1;
    srv->transport = &ss_plain_transport;
    atomic_init(&srv->spare_fd, -1);
    srv->cancel_fd = srv->parent_cancel_fd = srv->deferred_fd = -1;
    atomic_init(&srv->requests_alive, 0);
    memcpy(&srv->address, address, address_len);
    srv->address_len = address_len;
    atomic_init(&srv->shutdown_requested, false);
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->shutdown_at, 0);
    if (cfg)
        srv->config = *cfg;
    else
        ss_config_init(&srv->config);

    int rc = ss__config_resolve(srv);
    if (rc < 0)
        goto fail_free;
    rc = ss__handler_resolve(handler, &srv->handler);
    if (rc < 0)
        goto fail_free;
    rc = ss__proxy_configure(srv);
    if (rc < 0)
        goto fail_free;
    rc = ss__limits_init(srv);
    if (rc < 0)
        goto fail_free;
    if (pthread_mutex_init(&srv->serving_lock, NULL) != 0) {
        rc = -ENOMEM;
        goto fail_free;
    }
    if (pthread_cond_init(&srv->serving_done, NULL) != 0) {
        rc = -ENOMEM;
        goto fail_mutex;
    }
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->wake_fd < 0 || srv->cancel_fd < 0) {
        rc = -errno;
        goto fail_wake;
    }
    if (adopted_fd >= 0) {
        srv->fd = adopted_fd;
        srv->bound = true;
        ss__socket_options(srv);
    } else {
        rc = ss__socket_open(srv); /* with the options */
        if (rc < 0)
            goto fail_wake;
    }
    if (strategy->init) {
        rc = strategy->init(srv, srv->config.strategy_options);
        /* The strategy has its copy; the user's may go away. */
        srv->config.strategy_options = NULL;
        if (rc < 0)
            goto fail_socket;
    }
    if (strategy->parking) {
        /* Made now, so the server's descriptors are all there once it
         * exists; without it the loop makes one or parks nothing. */
        (void)ss__lot_create(srv);
    }
    if (adopted_fd < 0 && !srv->config.no_bind_and_activate) {
        rc = ss_server_bind(srv);
        if (rc == 0)
            rc = ss_server_activate(srv);
        if (rc < 0) {
            ss_server_free(srv); /* also undoes strategy init */
            return rc;
        }
    }
    *out = srv;
    return 0;

fail_socket:
    if (adopted_fd < 0)
        close(srv->fd);
fail_wake:
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->cancel_fd >= 0)
        close(srv->cancel_fd);
    if (srv->parent_cancel_fd >= 0)
        close(srv->parent_cancel_fd);
    pthread_cond_destroy(&srv->serving_done);
fail_mutex:
    pthread_mutex_destroy(&srv->serving_lock);
fail_free:
    ss__limits_destroy(srv);
    free(srv);
    return rc;
}

int ss_server_new_sockaddr(ss_server **out, const ss_server_class *kind,
                           const ss_strategy *strategy,
                           const struct sockaddr *address,
                           socklen_t address_len,
                           const ss_handler_class *handler,
                           const ss_config *cfg)
{
    return server_new(out, kind, strategy, address, address_len, handler, cfg,
                      -1);
}

int ss__server_new_adopted(ss_server **out, const ss_server_class *kind,
                           const ss_strategy *strategy, int fd,
                           const struct sockaddr *address,
                           socklen_t address_len,
                           const ss_handler_class *handler,
                           const ss_config *cfg)
{
    return server_new(out, kind, strategy, address, address_len, handler, cfg,
                      fd);
}

int ss_server_new(ss_server **out, const ss_server_class *kind,
                  const ss_strategy *strategy, const char *address,
                  const ss_handler_class *handler, const ss_config *cfg)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!kind)
        return -EINVAL;
    struct sockaddr_storage addr;
    socklen_t len;
    int rc = ss_address_parse(address, kind->socket_type, &addr, &len);
    if (rc < 0)
        return rc;
    return ss_server_new_sockaddr(out, kind, strategy, (struct sockaddr *)&addr,
                                  len, handler, cfg);
}

int ss_server_bind(ss_server *srv)
{
    if (!srv || srv->closed || srv->bound)
        return -EINVAL;
    int rc = srv->kind.server_bind(srv);
    if (rc == 0)
        srv->bound = true;
    return rc;
}

int ss_server_activate(ss_server *srv)
{
    if (!srv || srv->closed || !srv->bound || srv->activated)
        return -EINVAL;
    int rc = srv->kind.server_activate(srv);
    if (rc == 0)
        srv->activated = true;
    return rc;
}

/* Closing or freeing a server from inside one of its own handlers would
 * wait for that handler (deadlock) or free memory it is using. */
static bool refuse_from_handler(ss_server *srv, const char *what)
{
    if (!ss__running_request_of(srv))
        return false;
    char line[160];
    snprintf(line, sizeof line,
             "sockserv: %s called from a handler of the same server; "
             "ignored (call ss_shutdown() there instead)",
             what);
    ss_server_log(srv, line);
    return true;
}

void ss_server_close(ss_server *srv)
{
    if (!srv || srv->closed || refuse_from_handler(srv, "ss_server_close"))
        return;
    srv->closed = true;
    /* Stop taking requests first, then let the strategy wait for the
     * ones in flight — Python's order. A datagram socket is different: it
     * is also how requests in flight send their replies, so it closes
     * after them (and, if some are still running, in ss_server_free). */
    bool datagram = srv->kind.socket_type == SOCK_DGRAM;
    if (srv->fd >= 0 && !datagram)
        close(srv->fd);
    if (srv->spare_fd >= 0)
        close(srv->spare_fd);
    srv->spare_fd = -1;
    if (srv->strategy->server_close)
        srv->strategy->server_close(srv);
    if (srv->fd >= 0 && datagram) {
        if (atomic_load(&srv->requests_alive) == 0)
            close(srv->fd);
        else
            srv->deferred_fd = srv->fd;
    }
    srv->fd = -1;
    if (srv->unlink_path && srv->config.unlink_on_close) {
        const struct sockaddr_un *un =
            (const struct sockaddr_un *)&srv->address;
        unlink(un->sun_path);
    }
}

void ss_server_free(ss_server *srv)
{
    if (!srv || refuse_from_handler(srv, "ss_server_free"))
        return;
    ss__signals_forget(srv);
    ss_server_close(srv);
    if (srv->strategy->destroy)
        srv->strategy->destroy(srv);
    ss__release_held_copies(srv); /* children nobody reaped */
    ss__lot_free(srv);
    ss__limits_destroy(srv); /* nothing runs any more to give places back */
    if (srv->deferred_fd >= 0)
        close(srv->deferred_fd);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->cancel_fd >= 0)
        close(srv->cancel_fd);
    pthread_cond_destroy(&srv->serving_done);
    pthread_mutex_destroy(&srv->serving_lock);
    free(srv);
}

int ss_server_fileno(const ss_server *srv)
{
    return srv->fd;
}

int ss_server_address(const ss_server *srv, struct sockaddr *addr,
                      socklen_t *len)
{
    if (!addr || !len)
        return -EINVAL;
    if (*len < srv->address_len)
        return -ENOBUFS;
    memcpy(addr, &srv->address, srv->address_len);
    *len = srv->address_len;
    return 0;
}

int ss_server_port(const ss_server *srv)
{
    const struct sockaddr *sa = (const struct sockaddr *)&srv->address;
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -EAFNOSUPPORT;
}

int ss_server_address_string(const ss_server *srv, char *buf, size_t size)
{
    return ss_address_format((const struct sockaddr *)&srv->address,
                             srv->address_len, buf, size);
}

const ss_server_class *ss_server_kind(const ss_server *srv)
{
    return &srv->kind;
}

const ss_strategy *ss_server_strategy(const ss_server *srv)
{
    return srv->strategy;
}

const ss_config *ss_server_config(const ss_server *srv)
{
    return &srv->config;
}

void *ss_server_user(const ss_server *srv)
{
    return srv->config.user;
}

void *ss_server_strategy_data(const ss_server *srv)
{
    return srv->strategy_data;
}

void ss_server_set_strategy_data(ss_server *srv, void *data)
{
    srv->strategy_data = data;
}
