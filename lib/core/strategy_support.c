/*
 * strategy_support.c — what sockserv/strategy.h offers strategy authors
 * beyond the loop and the request: forking a server's process, starting
 * threads, and the few changes a strategy may make to its server.
 *
 * Thread creation and fork() go through here so that every strategy gets
 * the same care (stdio flushed before fork, the child's server made its
 * own) and the test-only fault injection (fault.h) reaches them all.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockserv/access_log.h"

#include "fault.h"
#include "internal.h"

int ss_thread_start(pthread_t *thread, size_t stack_size, bool detached,
                    void *(*fn)(void *arg), void *arg)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return -rc;
    if (detached)
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0 && stack_size > 0)
        rc = pthread_attr_setstacksize(&attr, stack_size);
    if (rc == 0)
        rc = ss__fault_should_fail(SS_FAULT_THREAD_CREATE)
                 ? EAGAIN
                 : pthread_create(thread, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return -rc;
}

/* In a child just forked: the server becomes this process's own. */
static void server_after_fork(ss_server *srv, int flags)
{
    /* An eventfd is shared across fork(): left alone, the parent's
     * ss_shutdown() would wake this child's loop, and this child could
     * drain the wake-up before the parent sees it. The parent's cancel_fd
     * is kept, read-only, so the parent's shutdown still cancels idle
     * waits here; this process's own shutdown gets a descriptor of its own
     * and cancels nothing in its siblings. */
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->parent_cancel_fd >= 0)
        close(srv->parent_cancel_fd);
    srv->parent_cancel_fd = srv->cancel_fd;
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_store(&srv->shutdown_requested, false);
    atomic_store(&srv->stopping, false);
    /* Nobody in this process is serving yet, and the lock may have been
     * held by another thread of the parent at fork time. */
    pthread_mutex_init(&srv->serving_lock, NULL);
    pthread_cond_init(&srv->serving_done, NULL);
    srv->serving = false;
    ss__held_copies_after_fork(srv);
    srv->inflight = NULL; /* the parent's threads' requests */
    srv->inflight_cancelled = false;
    srv->cut_by_parent = false; /* ss_server_fork_request() sets it */
    srv->unlink_path = false; /* the socket file is the parent's */
    ss__lot_forget_in_child(srv);
    ss__limits_after_fork(srv);
    if (!(flags & SS_FORK_KEEP_SIGNALS))
        ss__signals_reset_in_child();
}

pid_t ss_server_fork(ss_server *srv, int flags)
{
    fflush(NULL);
    ss_access_log_flush_all();
    pid_t pid =
        ss__fault_should_fail(SS_FAULT_FORK) ? (errno = EAGAIN, -1) : fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        ss__access_logs_after_fork();
        server_after_fork(srv, flags);
    }
    return pid;
}

pid_t ss_server_fork_request(ss_server *srv, ss_request *req, int flags)
{
    bool hold = ss__can_hold_for_child(srv, req);
    pid_t pid = ss_server_fork(srv, flags);
    if (pid < 0)
        return pid; /* req is still the caller's */
    if (pid == 0) {
        srv->cut_by_parent = hold;
        return 0;
    }
    if (hold)
        ss__hold_for_child(srv, req, pid);
    else
        ss_close_request_copy(srv, req);
    return pid;
}

int ss_server_swap_fd(ss_server *srv, int fd)
{
    int old = srv->fd;
    srv->fd = fd;
    return old;
}

int ss_server_open_twin_socket(ss_server *srv, int *fd)
{
    int own = srv->fd;
    int rc = ss__socket_open(srv); /* sets srv->fd */
    if (rc < 0)
        return rc;
    int twin = srv->fd;
    /* Made the way the server's own was: the kind's own methods, run with
     * srv->fd pointing at the new socket for the moment. */
    rc = srv->kind.server_bind(srv);
    if (rc == 0)
        rc = srv->kind.server_activate(srv);
    srv->fd = own;
    if (rc < 0) {
        close(twin);
        return rc;
    }
    *fd = twin;
    return 0;
}

void ss_server_set_allow_reuse_port(ss_server *srv, bool on)
{
    srv->config.allow_reuse_port = on;
}

void ss_server_set_timeout(ss_server *srv, double seconds)
{
    srv->config.timeout = seconds > 0 ? seconds : 0;
}

int ss_server_switch_strategy(ss_server *srv, const ss_strategy *strategy,
                              const void *options)
{
    if (!strategy || !strategy->process_request)
        return -EINVAL;
    srv->strategy = strategy;
    srv->strategy_data = NULL;
    return strategy->init ? strategy->init(srv, options) : 0;
}

int ss_server_set_transport(ss_server *srv, const ss_transport *transport)
{
    if (!srv || !transport || !transport->recv || !transport->send)
        return -EINVAL;
    if (srv->kind.socket_type != SOCK_STREAM)
        return -EOPNOTSUPP;
    srv->transport = transport;
    return 0;
}

const ss_transport *ss_server_transport(const ss_server *srv)
{
    return srv->transport;
}

void *ss_server_transport_data(const ss_server *srv)
{
    return srv->transport_data;
}

void ss_server_set_transport_data(ss_server *srv, void *data)
{
    srv->transport_data = data;
}
