/*
 * thread_pool.c — ss_thread_pool: pool_size long-lived worker threads fed
 * by a bounded queue of accepted requests (beyond Python).
 *
 * Compared with a thread per request, the pool pays for thread creation
 * once and caps memory at pool_size stacks. The queue is a fixed ring, so
 * queuing allocates nothing.
 *
 * Policies (documented in docs/strategies.md):
 *  - queue full: the serve loop waits for room, which leaves further
 *    connections in the kernel's listen backlog (backpressure); with
 *    pool_refuse_when_full the new request is closed at once instead.
 *  - workers start on demand — one more whenever a request arrives and no
 *    worker is idle — or all in ss_server_new() with pool_eager_start.
 *  - ss_server_close() drains: requests already queued are still served,
 *    then the workers exit and are joined. Nothing accepted is dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "sockserv/strategy.h"

typedef struct pool {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    ss_request **queue; /* ring of capacity entries */
    int capacity, head, count;
    pthread_t *workers;
    int size, started, idle;
    bool stopping;
    ss_thread_pool_options options;
} pool;

static void *worker_main(void *arg)
{
    ss_server *srv = arg;
    pool *p = ss_server_strategy_data(srv);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->count == 0 && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->not_empty, &p->lock);
            p->idle--;
        }
        if (p->count == 0)
            break; /* stopping, and the queue is drained */
        ss_request *req = p->queue[p->head];
        p->head = (p->head + 1) % p->capacity;
        p->count--;
        pthread_cond_signal(&p->not_full);
        pthread_mutex_unlock(&p->lock);
        ss_run_request(srv, req);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Called with the lock held. */
static int start_worker(ss_server *srv, pool *p)
{
    int rc = ss_thread_start(&p->workers[p->started],
                             p->options.thread_stack_size, false, worker_main,
                             srv);
    if (rc < 0)
        return rc;
    p->started++;
    return 0;
}

static void stop_workers(pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->not_empty);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->workers[i], NULL);
    p->started = 0;
}

static void free_pool(pool *p)
{
    pthread_cond_destroy(&p->not_full);
    pthread_cond_destroy(&p->not_empty);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p->queue);
    free(p);
}

static int pool_init(ss_server *srv, const void *options)
{
    ss_thread_pool_options opt = {0};
    if (options)
        opt = *(const ss_thread_pool_options *)options;
    if (opt.pool_size < 0 || opt.queue_size < 0) {
        ss_server_log(srv, opt.pool_size < 0
                               ? "sockserv: ss_thread_pool_options.pool_size: "
                                 "must not be negative (0: twice the CPUs)"
                               : "sockserv: ss_thread_pool_options.queue_size: "
                                 "must not be negative (0: 4 x pool_size)");
        return -EINVAL;
    }
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->options = opt;
    p->size = opt.pool_size ? opt.pool_size : 2 * ss_cpu_count();
    p->capacity = opt.queue_size ? opt.queue_size : 4 * p->size;
    p->queue = calloc((size_t)p->capacity, sizeof *p->queue);
    p->workers = calloc((size_t)p->size, sizeof *p->workers);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->not_empty, NULL);
    pthread_cond_init(&p->not_full, NULL);
    if (!p->queue || !p->workers) {
        free_pool(p);
        return -ENOMEM;
    }
    ss_server_set_strategy_data(srv, p);
    if (opt.eager_start) {
        pthread_mutex_lock(&p->lock);
        int rc = 0;
        while (rc == 0 && p->started < p->size)
            rc = start_worker(srv, p);
        pthread_mutex_unlock(&p->lock);
        if (rc < 0) {
            stop_workers(p);
            free_pool(p);
            ss_server_set_strategy_data(srv, NULL);
            return rc;
        }
    }
    return 0;
}

static int pool_process_request(ss_server *srv, ss_request *req)
{
    pool *p = ss_server_strategy_data(srv);
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        return -ESHUTDOWN;
    }
    /* Start a worker unless an idle one is there for this request (idle
     * counts workers not yet woken for requests already queued, too). */
    if (p->count >= p->idle && p->started < p->size) {
        int rc = start_worker(srv, p);
        if (rc < 0 && p->started == 0) {
            pthread_mutex_unlock(&p->lock);
            return rc; /* no worker at all to run it */
        }
    }
    while (p->count == p->capacity) {
        if (p->options.refuse_when_full) {
            pthread_mutex_unlock(&p->lock);
            ss_drop_request(srv, req);
            return 0;
        }
        if (!ss_server_cond_wait(srv, &p->not_full, &p->lock) ||
            p->stopping) {
            pthread_mutex_unlock(&p->lock);
            return -ESHUTDOWN;
        }
    }
    p->queue[(p->head + p->count) % p->capacity] = req;
    p->count++;
    pthread_cond_signal(&p->not_empty);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static void pool_server_close(ss_server *srv)
{
    pool *p = ss_server_strategy_data(srv);
    if (p)
        stop_workers(p);
}

static void pool_destroy(ss_server *srv)
{
    pool *p = ss_server_strategy_data(srv);
    if (!p)
        return;
    stop_workers(p);
    free_pool(p);
    ss_server_set_strategy_data(srv, NULL);
}

const ss_strategy ss_thread_pool = {
    .name = "pool",
    .wait_class = &ss_blocking_wait,
    .init = pool_init,
    .process_request = pool_process_request,
    .server_close = pool_server_close,
    .destroy = pool_destroy,
    /* A worker is taken only by a connection that has input to work on:
     * new and idle connections wait in the loop's lot. */
    .parking = SS_PARK_NEW_CONNECTIONS | SS_PARK_IDLE_REQUESTS,
};
