/*
 * coro_blocking.c — the answer to "one blocking call freezes the loop":
 * ss_run_blocking() under ss_coroutines hands the function to a small pool
 * of helper threads and parks the coroutine on an eventfd that the helper
 * writes when the function has returned.
 *
 * The job lives on the coroutine's stack, so the wait for it cannot be
 * cancelled by a shutdown (the helper would write into a finished
 * coroutine's memory): a blocking call started is a blocking call finished.
 * Helpers start on first use, up to coro_blocking_threads.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "coro_blocking.h"

#define DEFAULT_HELPERS 4

typedef struct job {
    int (*fn)(void *arg);
    void *arg;
    int result;
    int done_fd;
    struct job *next;
} job;

typedef struct pool {
    pthread_mutex_t lock;
    pthread_cond_t work;
    job *head, *tail;
    pthread_t *threads;
    int size, started, idle;
    bool stopping;
    ss_coroutine_options options; /* the strategy's, kept here */
} pool;

static void *helper_main(void *arg)
{
    pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
        }
        if (!p->head)
            break;
        job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        j->result = j->fn(j->arg);
        uint64_t one = 1;
        ssize_t ignored = write(j->done_fd, &one, sizeof one);
        (void)ignored;
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int ss__coro_blocking_init(ss_server *srv, const ss_coroutine_options *options)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->options = *options;
    p->size = options->blocking_threads ? options->blocking_threads
                                        : DEFAULT_HELPERS;
    p->threads = calloc((size_t)p->size, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    ss_server_set_strategy_data(srv, p);
    return 0;
}

const ss_coroutine_options *ss__coro_options(const ss_server *srv)
{
    const pool *p = ss_server_strategy_data(srv);
    return &p->options;
}

void ss__coro_blocking_destroy(ss_server *srv)
{
    pool *p = ss_server_strategy_data(srv);
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
    ss_server_set_strategy_data(srv, NULL);
}

int ss__coro_blocking_run(ss_server *srv, ss_request *req, int (*fn)(void *arg),
                          void *arg)
{
    pool *p = ss_server_strategy_data(srv);
    job j = {.fn = fn, .arg = arg};
    j.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (j.done_fd < 0)
        return -errno;

    pthread_mutex_lock(&p->lock);
    if (p->idle == 0 && p->started < p->size &&
        pthread_create(&p->threads[p->started], NULL, helper_main, p) == 0)
        p->started++;
    if (p->started == 0) {
        pthread_mutex_unlock(&p->lock);
        close(j.done_fd);
        return fn(arg); /* no helper at all: better late than never */
    }
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);

    /* Not cancellable: see the top of this file. */
    uint64_t count = 0;
    while (read(j.done_fd, &count, sizeof count) != (ssize_t)sizeof count)
        req->wait_class->wait(req, j.done_fd, POLLIN, SS_NO_DEADLINE, false);
    close(j.done_fd);
    return j.result;
}
