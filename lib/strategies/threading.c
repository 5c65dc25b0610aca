/*
 * threading.c — ss_threading, a thread per request (Python's
 * ThreadingMixIn).
 *
 * Threads are detached and counted rather than kept in a list: a finished
 * thread leaves nothing behind (CPython bpo-37193 kept every thread object
 * until server_close, so a long-running server grew without bound), and
 * waiting for "all of them" is waiting for the count to reach zero.
 *
 * max_threads (beyond Python) bounds the count: at the limit the serve loop
 * waits for a thread to finish before accepting — backpressure instead of
 * a thread storm.
 *
 * daemon_threads: ss_server_close() does not wait. ss_server_free() must
 * wait anyway, because the threads use the server's memory; a program that
 * wants to leave them running simply exits, as a Python program would.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "sockserv/strategy.h"

typedef struct threading_state {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* running went down */
    int running;
    ss_threading_options options;
} threading_state;

static int threading_init(ss_server *srv, const void *options)
{
    ss_threading_options opt = {0};
    if (options)
        opt = *(const ss_threading_options *)options;
    if (opt.max_threads < 0) {
        ss_server_log(srv, "sockserv: ss_threading_options.max_threads: "
                           "must not be negative (0: no limit)");
        return -EINVAL;
    }
    threading_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->options = opt;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->changed, NULL);
    ss_server_set_strategy_data(srv, st);
    return 0;
}

static void *request_thread(void *arg)
{
    ss_request *req = arg;
    ss_server *srv = ss_request_server(req);
    threading_state *st = ss_server_strategy_data(srv);
    ss_run_request(srv, req);
    pthread_mutex_lock(&st->lock);
    st->running--;
    pthread_cond_broadcast(&st->changed);
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static int threading_process_request(ss_server *srv, ss_request *req)
{
    threading_state *st = ss_server_strategy_data(srv);
    int max = st->options.max_threads;
    pthread_mutex_lock(&st->lock);
    while (max > 0 && st->running >= max) {
        if (!ss_server_cond_wait(srv, &st->changed, &st->lock)) {
            pthread_mutex_unlock(&st->lock);
            return -ESHUTDOWN;
        }
    }
    st->running++;
    pthread_mutex_unlock(&st->lock);

    pthread_t thread;
    int rc = ss_thread_start(&thread, st->options.thread_stack_size, true,
                             request_thread, req);
    if (rc < 0) {
        pthread_mutex_lock(&st->lock);
        st->running--;
        pthread_cond_broadcast(&st->changed);
        pthread_mutex_unlock(&st->lock);
        return rc;
    }
    return 0;
}

static void wait_for_threads(threading_state *st)
{
    pthread_mutex_lock(&st->lock);
    while (st->running > 0)
        pthread_cond_wait(&st->changed, &st->lock);
    pthread_mutex_unlock(&st->lock);
}

static void threading_server_close(ss_server *srv)
{
    threading_state *st = ss_server_strategy_data(srv);
    if (!st->options.no_block_on_close && !st->options.daemon_threads)
        wait_for_threads(st);
}

static void threading_destroy(ss_server *srv)
{
    threading_state *st = ss_server_strategy_data(srv);
    if (!st)
        return;
    wait_for_threads(st);
    pthread_cond_destroy(&st->changed);
    pthread_mutex_destroy(&st->lock);
    free(st);
    ss_server_set_strategy_data(srv, NULL);
}

const ss_strategy ss_threading = {
    .name = "thread",
    .wait_class = &ss_blocking_wait,
    .init = threading_init,
    .process_request = threading_process_request,
    .server_close = threading_server_close,
    .destroy = threading_destroy,
};
