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

#include "fault.h"
#include "internal.h"

typedef struct threading_state {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* running went down */
    int running;
} threading_state;

static int threading_init(ss_server *srv)
{
    threading_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->changed, NULL);
    ss_server_set_strategy_data(srv, st);
    return 0;
}

static void *request_thread(void *arg)
{
    ss_request *req = arg;
    ss_server *srv = req->server;
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
    pthread_mutex_lock(&st->lock);
    while (srv->config.max_threads > 0 &&
           st->running >= srv->config.max_threads) {
        if (!ss__cond_wait_unless_shutdown(srv, &st->changed, &st->lock)) {
            pthread_mutex_unlock(&st->lock);
            return -ESHUTDOWN;
        }
    }
    st->running++;
    pthread_mutex_unlock(&st->lock);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = 0;
    if (srv->config.thread_stack_size > 0)
        rc = pthread_attr_setstacksize(&attr, srv->config.thread_stack_size);
    pthread_t thread;
    if (rc == 0)
        rc = ss__fault_should_fail(SS_FAULT_THREAD_CREATE)
                 ? EAGAIN
                 : pthread_create(&thread, &attr, request_thread, req);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&st->lock);
        st->running--;
        pthread_cond_broadcast(&st->changed);
        pthread_mutex_unlock(&st->lock);
        return -rc;
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
    if (srv->config.block_on_close && !srv->config.daemon_threads)
        wait_for_threads(ss_server_strategy_data(srv));
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
    .io = &ss_blocking_io,
    .init = threading_init,
    .process_request = threading_process_request,
    .server_close = threading_server_close,
    .destroy = threading_destroy,
};
