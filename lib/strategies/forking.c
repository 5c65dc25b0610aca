/*
 * forking.c — ss_forking, a child process per request (Python's
 * ForkingMixIn).
 *
 * Parent: fork (ss_server_fork_request), which keeps the parent's copy
 * of the connection until the child is reaped — so a shutdown can cut
 * the child's input, and the child's reads block in recv() — or closes
 * it; remember the child. Child: close the listening socket, run the request,
 * _exit(0), or _exit(1) after a failure that handle_error reported.
 *
 * stdio: ss_server_fork() flushes before fork() so the child does not
 * inherit unwritten buffers and print them a second time; the child
 * flushes what it wrote itself and leaves with _exit(), which runs no
 * atexit handlers of the parent's program.
 *
 * Backpressure: at max_children the loop blocks until one child exits.
 * Reaping names our pids only (ss_children, children.c), so the program's
 * own children keep their exit status. Written against sockserv/strategy.h
 * alone, as a strategy of yours would be.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sockserv/access_log.h"
#include "sockserv/strategy.h"

/* Python's ForkingMixIn.max_children and .timeout (ss_handle_request). */
#define FORKING_DEFAULT_MAX_CHILDREN 40
#define FORKING_DEFAULT_TIMEOUT 300

typedef struct forking {
    ss_children children;
    ss_forking_options options;
} forking;

static int forking_init(ss_server *srv, const void *options)
{
    ss_forking_options opt = {0};
    if (options)
        opt = *(const ss_forking_options *)options;
    if (opt.max_children < 0) {
        ss_server_log(srv, "sockserv: ss_forking_options.max_children: "
                           "must not be negative (0: 40)");
        return -EINVAL;
    }
    if (opt.max_children == 0)
        opt.max_children = FORKING_DEFAULT_MAX_CHILDREN;
    forking *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->options = opt;
    f->children.server = srv; /* reaping gives back limit places */
    ss_server_set_strategy_data(srv, f);
    if (ss_server_config(srv)->timeout == 0)
        ss_server_set_timeout(srv, FORKING_DEFAULT_TIMEOUT);
    return 0;
}

/* ss_children_wait_any() woke for the server's wake-up descriptor: true
 * when that was a shutdown (else the stale wake-up is drained). */
static bool woken_for_shutdown(ss_server *srv)
{
    if (ss_server_shutdown_requested(srv))
        return true;
    ss_server_drain_wake_fd(srv);
    return false;
}

/* max_connections: a request is counted until its child is reaped, so at
 * the limit wait here for a child to exit — on the children's pidfds, at
 * once, rather than at the next service_actions — while the connections
 * after it wait in the listen backlog. ss_shutdown() ends the wait. */
static void wait_for_room(ss_server *srv, ss_children *children)
{
    while (ss_server_at_capacity(srv) && children->count > 0) {
        int rc = ss_children_wait_any(children, ss_server_wake_fd(srv),
                                      SS_NO_DEADLINE);
        if ((rc == 1 && woken_for_shutdown(srv)) || rc < 0)
            return;
        ss_children_reap_finished(children);
    }
}

static int forking_process_request(ss_server *srv, ss_request *req)
{
    forking *f = ss_server_strategy_data(srv);
    ss_children *children = &f->children;
    ss_children_reap_finished(children);
    while (children->count >= f->options.max_children) {
        /* Also wake for ss_shutdown(): it must not wait for a child. */
        if (ss_children_wait_any(children, ss_server_wake_fd(srv),
                                 SS_NO_DEADLINE) == 1 &&
            woken_for_shutdown(srv))
            return -ESHUTDOWN; /* the request is closed unanswered */
        ss_children_reap_finished(children);
    }

    /* The request's places under the limits go with it to the child, but
     * the parent gives them back when it reaps the child: take them off
     * the request before fork() so that the child's copy holds none. */
    ss_places *places = ss_request_take_places(req);
    /* In the parent, req goes with the fork: held so that a shutdown can
     * cut the child's reads short (then they block in recv()), or closed
     * (close_request, not shutdown_request — a shutdown() would end the
     * child's connection too). */
    pid_t pid = ss_server_fork_request(srv, req, 0);
    if (pid < 0) {
        ss_places_release(srv, places); /* the loop drops the request */
        return (int)pid;
    }
    if (pid == 0) {
        ss_places_release(NULL, places); /* the parent's to give back */
        ss_children_forget(children);
        /* A datagram request answers through the server socket; only a
         * stream child can let go of the listening socket. */
        if (!ss_request_is_datagram(req)) {
            int listener = ss_server_swap_fd(srv, -1);
            if (listener >= 0)
                close(listener);
        }
        int rc = ss_run_request(srv, req);
        fflush(NULL);
        ss_access_log_flush_all();
        _exit(rc == 0 ? 0 : 1);
    }
    /* If tracking fails the child still runs; it is reaped by nobody
     * until the process ends, which beats refusing a running request. Its
     * places are given back at once then, or they would never be. */
    if (ss_children_add(children, pid, places) < 0) {
        ss_places_release(srv, places);
        ss_server_child_reaped(srv, pid); /* nobody would release it */
    }
    wait_for_room(srv, children);
    return 0;
}

static void forking_service_actions(ss_server *srv)
{
    forking *f = ss_server_strategy_data(srv);
    ss_children_reap_finished(&f->children);
}

static void forking_server_close(ss_server *srv)
{
    forking *f = ss_server_strategy_data(srv);
    if (!f->options.no_block_on_close)
        ss_children_wait_all(&f->children);
    else
        ss_children_reap_finished(&f->children);
}

static void forking_destroy(ss_server *srv)
{
    forking *f = ss_server_strategy_data(srv);
    if (!f)
        return;
    ss_children_reap_finished(&f->children);
    ss_children_free(&f->children);
    free(f);
    ss_server_set_strategy_data(srv, NULL);
}

const ss_strategy ss_forking = {
    .name = "fork",
    .wait_class = &ss_blocking_wait,
    .init = forking_init,
    .process_request = forking_process_request,
    .service_actions = forking_service_actions,
    .server_close = forking_server_close,
    .destroy = forking_destroy,
    /* Nothing is forked for a connection that has sent nothing. A child
     * cannot hand its connection back, so an idle request waits in it. */
    .parking = SS_PARK_NEW_CONNECTIONS,
};
