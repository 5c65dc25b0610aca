/*
 * parking.c — the parking lot: connections that wait for input without a
 * worker (the event-MPM idea of nginx and Apache's event MPM).
 *
 * A strategy that opts in (ss_strategy.parking) lets the core loop keep
 * idle connections here instead of in a worker: new connections until
 * their first byte (SS_PARK_NEW_CONNECTIONS), and requests whose handler
 * returned ss_park() between two exchanges (SS_PARK_IDLE_REQUESTS). The
 * lot is an epoll set and a min-heap of deadlines; the loop that owns it
 * (ss_serve_core_loop) polls the epoll descriptor beside the listening
 * socket, hands a connection that turns readable back to the strategy's
 * process_request, and ends one whose deadline passed — finish runs, no
 * worker is needed. Workers put requests back from their own threads, so
 * the heap has a lock; epoll_ctl needs none.
 *
 * Each connection is registered once (EPOLLONESHOT, re-armed with MOD on
 * every park), so a keep-alive exchange costs one epoll_ctl to park, and
 * is unregistered when the request is freed. The lot takes connections
 * while the loop runs: opened when it starts, emptied (every parked
 * connection ended) when it stops, so ss_handle_request() and a forked
 * child never park. Its memory stays until ss_server_free(), so a request
 * still running in a worker after the loop stopped may refer to it.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

struct ss__lot {
    int epfd;
    pthread_mutex_t lock;
    ss_request **heap; /* by park_deadline; lot_index is the position */
    size_t len, cap;
    bool closing; /* the loop is stopping: nothing new is parked */
};

#define NOT_PARKED ((size_t)-1)

static int64_t key(const ss_request *req)
{
    return req->park_deadline == SS_NO_DEADLINE ? INT64_MAX
                                                : req->park_deadline;
}

static void heap_set(ss__lot *lot, size_t i, ss_request *req)
{
    lot->heap[i] = req;
    req->lot_index = i;
}

static void sift_up(ss__lot *lot, size_t i)
{
    ss_request *req = lot->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (key(lot->heap[parent]) <= key(req))
            break;
        heap_set(lot, i, lot->heap[parent]);
        i = parent;
    }
    heap_set(lot, i, req);
}

static void sift_down(ss__lot *lot, size_t i)
{
    ss_request *req = lot->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= lot->len)
            break;
        if (child + 1 < lot->len &&
            key(lot->heap[child + 1]) < key(lot->heap[child]))
            child++;
        if (key(req) <= key(lot->heap[child]))
            break;
        heap_set(lot, i, lot->heap[child]);
        i = child;
    }
    heap_set(lot, i, req);
}

/* Called with the lock held; req must be in the heap. */
static void heap_remove(ss__lot *lot, ss_request *req)
{
    size_t i = req->lot_index;
    req->lot_index = NOT_PARKED;
    ss_request *last = lot->heap[--lot->len];
    if (i == lot->len)
        return;
    heap_set(lot, i, last);
    sift_up(lot, i);
    sift_down(lot, last->lot_index);
}

int ss__lot_create(ss_server *srv)
{
    ss__lot *lot = srv->lot;
    if (!lot) {
        lot = calloc(1, sizeof *lot);
        if (!lot)
            return -ENOMEM;
        lot->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (lot->epfd < 0) {
            int rc = -errno;
            free(lot);
            return rc;
        }
        pthread_mutex_init(&lot->lock, NULL);
        lot->closing = true;
        srv->lot = lot;
    }
    return lot->epfd < 0 ? -EBADF : 0;
}

int ss__lot_open(ss_server *srv)
{
    int rc = ss__lot_create(srv);
    if (rc < 0)
        return rc;
    ss__lot *lot = srv->lot;
    pthread_mutex_lock(&lot->lock);
    lot->closing = lot->epfd < 0; /* a forked child's copy stays closed */
    pthread_mutex_unlock(&lot->lock);
    return lot->epfd < 0 ? -EBADF : 0;
}

int ss__lot_fd(const ss_server *srv)
{
    return srv->lot ? srv->lot->epfd : -1;
}

void ss__request_unregister(ss_request *req)
{
    ss__lot *lot = req->registered_in;
    if (lot && lot->epfd >= 0 && req->fd >= 0)
        epoll_ctl(lot->epfd, EPOLL_CTL_DEL, req->fd, NULL);
    req->registered_in = NULL;
}

int ss__lot_park(ss_server *srv, ss_request *req)
{
    ss__lot *lot = srv->lot;
    if (!lot)
        return -ESHUTDOWN;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
        .data.ptr = req,
    };
    pthread_mutex_lock(&lot->lock);
    if (lot->closing) {
        pthread_mutex_unlock(&lot->lock);
        return -ESHUTDOWN;
    }
    if (lot->len == lot->cap) {
        size_t cap = lot->cap ? 2 * lot->cap : 64;
        ss_request **grown = realloc(lot->heap, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&lot->lock);
            return -ENOMEM;
        }
        lot->heap = grown;
        lot->cap = cap;
    }
    /* In the heap before it is armed: the loop may see it ready at once. */
    heap_set(lot, lot->len++, req);
    sift_up(lot, lot->len - 1);
    int rc = 0;
    if (req->registered_in == lot)
        rc = epoll_ctl(lot->epfd, EPOLL_CTL_MOD, req->fd, &ev);
    else if ((rc = epoll_ctl(lot->epfd, EPOLL_CTL_ADD, req->fd, &ev)) == 0)
        req->registered_in = lot;
    if (rc < 0) {
        rc = -errno;
        heap_remove(lot, req);
    }
    pthread_mutex_unlock(&lot->lock);
    return rc;
}

int ss__lot_timeout_ms(const ss_server *srv)
{
    ss__lot *lot = srv->lot;
    if (!lot)
        return -1;
    pthread_mutex_lock(&lot->lock);
    int64_t next = lot->len ? key(lot->heap[0]) : INT64_MAX;
    pthread_mutex_unlock(&lot->lock);
    return next == INT64_MAX ? -1 : ss_poll_timeout_ms(next);
}

/* Take req out of the heap unless someone else did (a deadline and a
 * readiness can meet in one loop turn). */
static bool unpark(ss__lot *lot, ss_request *req)
{
    pthread_mutex_lock(&lot->lock);
    bool was_parked = req->lot_index != NOT_PARKED && lot->heap &&
                      req->lot_index < lot->len &&
                      lot->heap[req->lot_index] == req;
    if (was_parked)
        heap_remove(lot, req);
    pthread_mutex_unlock(&lot->lock);
    return was_parked;
}

/* Back to the strategy, which runs it (again) when it can. */
static void resume(ss_server *srv, ss_request *req)
{
    /* Readiness (or its deadline) is news a wait would have given: the
     * next read must receive at once. */
    req->wait_before_recv = false;
    int rc = srv->strategy->process_request(srv, req);
    if (rc < 0) {
        if (rc != -ESHUTDOWN)
            srv->kind.handle_error(srv, req, rc);
        ss__request_end(srv, req, 0);
    }
}

void ss__lot_service(ss_server *srv)
{
    ss__lot *lot = srv->lot;
    if (!lot)
        return;
    struct epoll_event events[64];
    int n;
    do {
        n = epoll_wait(lot->epfd, events, 64, 0);
        for (int i = 0; i < n; i++) {
            ss_request *req = events[i].data.ptr;
            if (unpark(lot, req))
                resume(srv, req);
        }
    } while (n == 64);
    /* Deadlines: the connection ends without a worker. One that never
     * sent its PROXY header is refused as the header reader would have
     * (-ETIMEDOUT, reported); any other goes quietly. */
    int first_byte_late = srv->config.proxy_protocol ? -ETIMEDOUT : 0;
    int64_t now = ss_now_ns();
    for (;;) {
        pthread_mutex_lock(&lot->lock);
        ss_request *req =
            lot->len && key(lot->heap[0]) <= now ? lot->heap[0] : NULL;
        if (req)
            heap_remove(lot, req);
        pthread_mutex_unlock(&lot->lock);
        if (!req)
            break;
        if (req->park_calls_back) {
            /* Still armed in the epoll set (no event took it out): drop
             * the registration, or input arriving while a worker runs it
             * would report a request that is no longer the lot's. */
            ss__request_unregister(req);
            resume(srv, req); /* ss_park_until: handle answers it */
        } else
            ss__request_end(srv, req, req->started ? 0 : first_byte_late);
    }
}

void ss__lot_close(ss_server *srv)
{
    ss__lot *lot = srv->lot;
    if (!lot)
        return;
    pthread_mutex_lock(&lot->lock);
    lot->closing = true;
    pthread_mutex_unlock(&lot->lock);
    /* Every parked connection ends now: the server is stopping. */
    for (;;) {
        pthread_mutex_lock(&lot->lock);
        ss_request *req = lot->len ? lot->heap[lot->len - 1] : NULL;
        if (req)
            heap_remove(lot, req);
        pthread_mutex_unlock(&lot->lock);
        if (!req)
            break;
        ss__request_end(srv, req, 0);
    }
}

void ss__lot_free(ss_server *srv)
{
    ss__lot *lot = srv->lot;
    if (!lot)
        return;
    if (lot->epfd >= 0)
        close(lot->epfd);
    pthread_mutex_destroy(&lot->lock);
    free(lot->heap);
    free(lot);
    srv->lot = NULL;
}

void ss__lot_forget_in_child(ss_server *srv)
{
    ss__lot *lot = srv->lot;
    if (!lot)
        return;
    /* The parent's parked connections: this process must not hold them
     * open (their clients would not see them close) nor serve them. */
    for (size_t i = 0; i < lot->len; i++) {
        ss_request *req = lot->heap[i];
        if (req->fd >= 0 && !req->is_datagram)
            close(req->fd);
    }
    if (lot->epfd >= 0)
        close(lot->epfd);
    lot->epfd = -1;
    lot->len = 0;
    lot->closing = true;
    /* The lock may have been held by another thread at fork time. */
    pthread_mutex_init(&lot->lock, NULL);
}
