/*
 * blocking_receive.c — a blocking recv() for requests that have a thread
 * of their own, and the shutdown(SHUT_RD) that cancels it.
 *
 * The blocking wait class (blocking_io.c) waits with poll() on the socket
 * and the cancel descriptors, then receives: a request/response exchange
 * costs poll + recv + send where a plain blocking server makes recv +
 * send. Here the receive itself blocks instead, where that is safe:
 *
 *  - Cancellation. A recv() cannot also watch the cancel eventfd, so the
 *    requests that may block are kept in a list (per server, under
 *    serving_lock), and the serve loop's end — the moment a shutdown takes
 *    effect — calls shutdown(SHUT_RD) on each: a blocked recv() returns 0
 *    at once and the core reports it as -ECANCELED. Only a request that
 *    runs on another thread than the serve loop's may block (thread,
 *    pool, a prefork worker's thread or pool): a request on the loop's
 *    own thread (sync, a forked child, a prefork worker with sync) has
 *    nobody to cancel it and keeps poll().
 *  - Deadlines. SO_RCVTIMEO bounds the recv(). It is set only when a new
 *    value is needed (a socket option per distinct timeout, not per
 *    call): a value at most the time left is usable — the recv() wakes
 *    early, and the core looks again — so the value a connection keeps
 *    is the request's timeout, or the shortest deadline seen. A deadline
 *    due soon (or that the value set would overshoot) takes the poll()
 *    path as before. A recv() never ends after its deadline by more than
 *    the clock granularity, and never reports a timeout before it.
 *  - The plain transport only: TLS reads through its own BIO.
 *
 * Blocking mode: the socket's O_NONBLOCK is cleared the first time (one
 * ioctl(FIONBIO), in place of the poll() it saves) and stays cleared while the
 * request runs here; every other call on it passes MSG_DONTWAIT. sendfile()
 * has no such flag: ss_sendfile puts O_NONBLOCK back first, and so does a
 * request handed to the parking lot.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"

/* A deadline closer than this takes the poll() path: a socket option
 * per call would cost what the poll() does. */
#define NEAR_DEADLINE_NS INT64_C(20000000)
/* SO_RCVTIMEO may overshoot the time left by this much (a call's own
 * deadline is a few microseconds nearer than its timeout by the time it
 * receives); the kernel rounds the value up to a clock tick anyway. */
#define SLACK_NS INT64_C(1000000)

/* A stream request of the plain transport that waits the blocking way:
 * the kind whose input a shutdown(SHUT_RD) can cut. */
static bool cuttable(const ss_server *srv, const ss_request *req)
{
    return !req->is_datagram && req->fd >= 0 &&
           srv->transport == &ss_plain_transport &&
           req->wait_class == &ss_blocking_wait;
}

/* Put req at the head of srv->inflight; serving_lock held. */
static void link_locked(ss_server *srv, ss_request *req)
{
    req->inflight_prev = NULL;
    req->inflight_next = srv->inflight;
    if (srv->inflight)
        srv->inflight->inflight_prev = req;
    srv->inflight = req;
    req->inflight_listed = true;
}

void ss__inflight_enter(ss_server *srv, ss_request *req)
{
    req->may_block_recv = false;
    if (!cuttable(srv, req))
        return;
    if (srv->cut_by_parent) {
        /* A child of ss_server_fork_request(): the parent holds a copy of
         * the connection, and its shutdown cuts the input with it. */
        req->may_block_recv = !atomic_load(&srv->stopping);
        return;
    }
    pthread_mutex_lock(&srv->serving_lock);
    if (srv->serving && !srv->inflight_cancelled &&
        !pthread_equal(srv->serving_thread, pthread_self()) &&
        !atomic_load(&srv->stopping)) {
        link_locked(srv, req);
        req->may_block_recv = true;
    }
    pthread_mutex_unlock(&srv->serving_lock);
}

static void unlink_locked(ss_server *srv, ss_request *req)
{
    if (req->inflight_prev)
        req->inflight_prev->inflight_next = req->inflight_next;
    else
        srv->inflight = req->inflight_next;
    if (req->inflight_next)
        req->inflight_next->inflight_prev = req->inflight_prev;
    req->inflight_prev = req->inflight_next = NULL;
    req->inflight_listed = false;
}

/* O_NONBLOCK on or off in one system call (FIONBIO; fcntl would need
 * F_GETFL first). */
static bool set_nonblocking(int fd, bool on)
{
    int value = on;
    return ioctl(fd, FIONBIO, &value) == 0;
}

/* The socket goes back to non-blocking, for whoever has it next. */
static void make_nonblocking(ss_request *req)
{
    if (req->sock_blocking && set_nonblocking(req->fd, true))
        req->sock_blocking = false;
}

void ss__inflight_leave(ss_server *srv, ss_request *req, bool handing_on)
{
    if (!req->may_block_recv)
        return;
    if (req->inflight_listed) {
        pthread_mutex_lock(&srv->serving_lock);
        unlink_locked(srv, req);
        pthread_mutex_unlock(&srv->serving_lock);
    }
    req->may_block_recv = false;
    if (handing_on)
        make_nonblocking(req);
}

void ss__inflight_cancel_locked(ss_server *srv)
{
    srv->inflight_cancelled = true;
    for (ss_request *req = srv->inflight; req; req = req->inflight_next)
        shutdown(req->fd, SHUT_RD);
}

/* ---- a forked child's connection, held by the parent -------------------- */

bool ss__stopping_or_cut(ss_server *srv)
{
    if (atomic_load(&srv->stopping))
        return true;
    if (!srv->cut_by_parent || srv->parent_cancel_fd < 0)
        return false;
    /* The parent's ss_shutdown() writes the cancel descriptor this child
     * inherited before its loop's end cuts the connection: readable, the
     * end of input was that cut (not the client), and this process's
     * server is stopping too, as when a wait sees it (ss__cancelled_wait). */
    struct pollfd p = {.fd = srv->parent_cancel_fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return false;
    ss__mark_stopping(srv);
    return true;
}

bool ss__can_hold_for_child(ss_server *srv, const ss_request *req)
{
    if (!cuttable(srv, req))
        return false;
    /* Only a serving loop's end cuts held connections (end_serving). */
    pthread_mutex_lock(&srv->serving_lock);
    bool ok = srv->serving && !srv->inflight_cancelled &&
              !atomic_load(&srv->stopping);
    pthread_mutex_unlock(&srv->serving_lock);
    return ok;
}

void ss__hold_for_child(ss_server *srv, ss_request *req, pid_t pid)
{
    req->held_for_child = pid;
    pthread_mutex_lock(&srv->serving_lock);
    link_locked(srv, req);
    /* The loop ended for a shutdown since the child was forked (another
     * thread's strategy): the cut it made is due here too. */
    if (srv->inflight_cancelled)
        shutdown(req->fd, SHUT_RD);
    pthread_mutex_unlock(&srv->serving_lock);
}

/* Unlink the held request of child pid (any, when pid is 0); NULL: none. */
static ss_request *take_held(ss_server *srv, pid_t pid)
{
    pthread_mutex_lock(&srv->serving_lock);
    ss_request *req = srv->inflight;
    while (req && !(req->held_for_child > 0 &&
                    (pid == 0 || req->held_for_child == pid)))
        req = req->inflight_next;
    if (req)
        unlink_locked(srv, req);
    pthread_mutex_unlock(&srv->serving_lock);
    return req;
}

void ss_server_child_reaped(ss_server *srv, pid_t pid)
{
    if (srv == NULL || pid <= 0)
        return;
    ss_request *req = take_held(srv, pid);
    if (req)
        ss_close_request_copy(srv, req);
}

void ss__release_held_copies(ss_server *srv)
{
    ss_request *req;
    while ((req = take_held(srv, 0)) != NULL)
        ss_close_request_copy(srv, req);
}

void ss__held_copies_after_fork(ss_server *srv)
{
    /* The parent's copies of its other children's connections: this
     * process must not keep them open (a connection ends only when every
     * copy is closed), and their memory is this process's copy. Nothing
     * else here is the child's: no counters, no limits. */
    ss_request *req = srv->inflight;
    while (req) {
        ss_request *next = req->inflight_next;
        if (req->held_for_child > 0) {
            close(req->fd);
            free(req->error_detail);
            free(req->wbuf);
            free(req);
        }
        req = next;
    }
}

void ss__request_before_sendfile(ss_request *req)
{
    make_nonblocking(req);
}

/* SO_RCVTIMEO in nanoseconds (0: none), when it changed. */
static bool set_rcvtimeo(ss_request *req, int64_t ns)
{
    struct timeval tv = {.tv_sec = ns / 1000000000,
                         .tv_usec = (ns % 1000000000) / 1000};
    if (setsockopt(req->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return false;
    req->rcvtimeo_ns = ns;
    return true;
}

/* Make the socket ready for a recv() that blocks until at most deadline;
 * false: take the poll() path. */
static bool prepare(ss_request *req, int64_t deadline)
{
    if (deadline != SS_NO_DEADLINE) {
        int64_t left = deadline - ss_now_ns();
        if (left < NEAR_DEADLINE_NS)
            return false;
        int64_t have = req->rcvtimeo_ns;
        if (have == 0 || have > left + SLACK_NS) {
            /* The request's timeout when this is a call's deadline, so
             * every call finds it set; else what is left, to the ms. */
            int64_t timeout = (int64_t)(req->timeout * 1e9);
            int64_t want = timeout > 0 && timeout <= left + SLACK_NS
                               ? timeout
                               : left / 1000000 * 1000000;
            if (!set_rcvtimeo(req, want))
                return false;
        }
    }
    /* No deadline: whatever value is set only wakes the recv() early. */
    if (!req->sock_blocking) {
        if (!set_nonblocking(req->fd, false))
            return false;
        req->sock_blocking = true;
    }
    return true;
}

ssize_t ss__blocking_receive(ss_request *req, void *buf, size_t n,
                             int64_t deadline)
{
    ss_server *srv = req->server;
    for (;;) {
        if (atomic_load(&srv->stopping))
            return -ECANCELED;
        if (!prepare(req, deadline))
            return -EAGAIN; /* the caller polls */
        ssize_t got = ss_request_socket_recv(req, buf, n, 0);
        if (got > 0)
            return got;
        if (got == 0) {
            /* The serve loop's shutdown(SHUT_RD), or the peer's end. */
            if (ss__stopping_or_cut(srv))
                return -ECANCELED;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* SO_RCVTIMEO ran out: the deadline, or a value shorter than
             * it (then look again). */
            if (deadline != SS_NO_DEADLINE && ss_now_ns() >= deadline)
                return -ETIMEDOUT;
            continue;
        }
        return -errno;
    }
}
