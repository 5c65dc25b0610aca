/*
 * forking.c — ss_forking, a child process per request (Python's
 * ForkingMixIn).
 *
 * Parent: fork, close its copy of the connection (close_request, not
 * shutdown_request — a shutdown() would end the child's connection too),
 * remember the child. Child: close the listening socket, run the request,
 * _exit(0), or _exit(1) after a failure that handle_error reported.
 *
 * stdio: the parent flushes before fork() so the child does not inherit
 * unwritten buffers and print them a second time; the child flushes what
 * it wrote itself and leaves with _exit(), which runs no atexit handlers
 * of the parent's program.
 *
 * Backpressure: at max_children the loop blocks until one child exits.
 * Reaping names our pids only (children.c), so the program's own children
 * keep their exit status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "children.h"
#include "fault.h"

/* Python's ForkingMixIn.timeout, used by ss_handle_request(). */
#define FORKING_DEFAULT_TIMEOUT 300

static int forking_init(ss_server *srv)
{
    ss__children *children = calloc(1, sizeof *children);
    if (!children)
        return -ENOMEM;
    children->server = srv; /* reaping gives back limit places */
    ss_server_set_strategy_data(srv, children);
    if (srv->config.timeout == 0)
        srv->config.timeout = FORKING_DEFAULT_TIMEOUT;
    return 0;
}

/* max_connections: a request is counted until its child is reaped, so at
 * the limit wait here for a child to exit — on the children's pidfds, at
 * once, rather than at the next service_actions — while the connections
 * after it wait in the listen backlog. ss_shutdown() ends the wait. */
static void wait_for_room(ss_server *srv, ss__children *children)
{
    while (ss__limits_full(srv) && children->count > 0) {
        int rc = ss__children_wait_any(children, srv->wake_fd, SS_NO_DEADLINE);
        if (rc == 1) {
            if (atomic_load(&srv->shutdown_requested))
                return;
            ss__drain_wake_fd(srv);
        } else if (rc < 0) {
            return;
        }
        ss__children_reap_finished(children);
    }
}

static int forking_process_request(ss_server *srv, ss_request *req)
{
    ss__children *children = ss_server_strategy_data(srv);
    ss__children_reap_finished(children);
    while (children->count >= srv->config.max_children) {
        /* Also wake for ss_shutdown(): it must not wait for a child. */
        if (ss__children_wait_any(children, srv->wake_fd, SS_NO_DEADLINE) ==
            1) {
            if (atomic_load(&srv->shutdown_requested))
                return -ESHUTDOWN;  /* the request is closed unanswered */
            ss__drain_wake_fd(srv); /* stale wake-up of an earlier run */
        }
        ss__children_reap_finished(children);
    }

    fflush(NULL);
    /* The request's places under the limits go with it to the child, but
     * the parent gives them back, when it reaps the child: clear them
     * before fork() so that the child's copy holds none. */
    ss__limit_ticket ticket = req->limit;
    req->limit = (ss__limit_ticket){0};
    pid_t pid =
        ss__fault_should_fail(SS_FAULT_FORK) ? (errno = EAGAIN, -1) : fork();
    if (pid < 0) {
        int error = errno;
        req->limit = ticket; /* the loop drops the request: given back */
        return -error;
    }
    if (pid == 0) {
        ss__children_forget_in_child(children);
        ss__server_after_fork(srv);
        ss__signals_reset_in_child();
        /* A datagram request answers through the server socket; only a
         * stream child can let go of the listening socket. */
        if (!req->is_datagram && srv->fd >= 0) {
            close(srv->fd);
            srv->fd = -1;
        }
        int rc = ss__run_request(srv, req);
        fflush(NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    /* If tracking fails the child still runs; it is reaped by nobody
     * until the process ends, which beats refusing a running request. Its
     * places are given back at once then, or they would never be. */
    if (ss__children_add(children, pid) == 0)
        children->items[children->count - 1].limit = ticket;
    else
        ss__limits_release(srv, &ticket);
    srv->kind.close_request(srv, req);
    ss__request_free(req);
    wait_for_room(srv, children);
    return 0;
}

static void forking_service_actions(ss_server *srv)
{
    ss__children_reap_finished(ss_server_strategy_data(srv));
}

static void forking_server_close(ss_server *srv)
{
    ss__children *children = ss_server_strategy_data(srv);
    if (srv->config.block_on_close)
        ss__children_wait_all(children);
    else
        ss__children_reap_finished(children);
}

static void forking_destroy(ss_server *srv)
{
    ss__children *children = ss_server_strategy_data(srv);
    if (!children)
        return;
    ss__children_reap_finished(children);
    ss__children_free(children);
    free(children);
    ss_server_set_strategy_data(srv, NULL);
}

const ss_strategy ss_forking = {
    .name = "fork",
    .io = &ss_blocking_io,
    .init = forking_init,
    .process_request = forking_process_request,
    .service_actions = forking_service_actions,
    .server_close = forking_server_close,
    .destroy = forking_destroy,
};
