/*
 * accept_threads.c — the accept_threads strategy (see accept_threads.h),
 * written with <sockserv/strategy.h> alone, as any user's strategy would
 * be. docs/strategies.md ("Writing a strategy") walks through it.
 *
 * serve_forever starts `threads` loops (one on the calling thread). Each
 * polls the listening socket and the server's wake-up descriptor, takes a
 * request with ss_server_accept_request(), and — through process_request
 * — runs it right there. A loop that finds the socket already emptied by
 * another just polls again. ss_shutdown() makes the wake-up descriptor
 * readable for all of them at once.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "accept_threads.h"

#define DEFAULT_THREADS 4

typedef struct state {
    accept_threads_options options;
} state;

static int at_init(ss_server *srv, const void *options)
{
    accept_threads_options opt = {0};
    if (options)
        opt = *(const accept_threads_options *)options;
    if (opt.threads < 0) {
        ss_server_log(srv, "accept_threads: threads: must not be negative "
                           "(0: 4)");
        return -EINVAL;
    }
    if (opt.threads == 0)
        opt.threads = DEFAULT_THREADS;
    state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->options = opt;
    ss_server_set_strategy_data(srv, st);
    return 0;
}

/* Each loop's thread runs the requests it accepts (ss_handle_request()
 * runs one on the caller's thread the same way). */
static int at_process_request(ss_server *srv, ss_request *req)
{
    ss_run_request(srv, req);
    return 0;
}

typedef struct loop {
    ss_server *srv;
    double poll_interval;
    bool primary; /* runs the service actions */
    pthread_t thread;
} loop;

static void *run_loop(void *arg)
{
    loop *l = arg;
    ss_server *srv = l->srv;
    ss_accept_pause pause = {0};
    int timeout_ms = (int)(l->poll_interval * 1000);
    while (!ss_server_shutdown_requested(srv)) {
        /* Leave the listening socket alone while the server is full or
         * pausing after EMFILE & co. (poll ignores a negative fd). */
        int pause_ms = ss_accept_pause_left_ms(&pause);
        bool accepting = pause_ms == 0 && !ss_server_at_capacity(srv);
        struct pollfd fds[2] = {
            {.fd = accepting ? ss_server_fileno(srv) : -1, .events = POLLIN},
            {.fd = ss_server_wake_fd(srv), .events = POLLIN},
        };
        int ready = poll(fds, 2, pause_ms > 0 ? pause_ms : timeout_ms);
        if (ss_server_shutdown_requested(srv))
            break;
        if (ready > 0 && fds[0].revents)
            ss_accept_pause_update(srv, &pause, ss_server_accept_request(srv));
        if (l->primary)
            ss_server_kind(srv)->service_actions(srv);
        /* A wake-up that was not a shutdown (a place freed under
         * max_connections) has done its work: the next poll looks. */
        if (ready > 0 && fds[1].revents && l->primary)
            ss_server_drain_wake_fd(srv);
    }
    return NULL;
}

static int at_serve_forever(ss_server *srv, double poll_interval)
{
    state *st = ss_server_strategy_data(srv);
    int n = st->options.threads;
    loop *loops = calloc((size_t)n, sizeof *loops);
    if (!loops)
        return -ENOMEM;
    if (!(poll_interval > 0))
        poll_interval = 0.5;
    int started = 1, rc = 0;
    for (int i = 0; i < n; i++)
        loops[i] = (loop){
            .srv = srv, .poll_interval = poll_interval, .primary = i == 0};
    for (; started < n; started++) {
        rc = ss_thread_start(&loops[started].thread, 0, false, run_loop,
                             &loops[started]);
        if (rc < 0) {
            ss_shutdown(srv); /* could not start them all: stop the rest */
            break;
        }
    }
    run_loop(&loops[0]);
    for (int i = 1; i < started; i++)
        pthread_join(loops[i].thread, NULL);
    free(loops);
    return rc;
}

static void at_destroy(ss_server *srv)
{
    free(ss_server_strategy_data(srv));
    ss_server_set_strategy_data(srv, NULL);
}

const ss_strategy accept_threads = {
    .name = "accept_threads",
    .wait_class = &ss_blocking_wait,
    .init = at_init,
    .process_request = at_process_request,
    .destroy = at_destroy,
    .serve_forever = at_serve_forever,
};
