/*
 * serve_loop.c — Python's BaseServer loop: serve_forever, handle_request,
 * shutdown.
 *
 * The loop poll()s two descriptors: the listening socket and an eventfd.
 * ss_shutdown() sets a flag and writes the eventfd, so the loop wakes at
 * once instead of after poll_interval (CPython gh-88932). Both steps are
 * async-signal-safe, which is why a signal handler may call ss_shutdown().
 *
 * Order matters where the loop ends: it clears the flag *before* draining
 * the eventfd. A shutdown that lands between the two then leaves the flag
 * set, and the next serve_forever returns at once, as Python's does; the
 * other order could leave a readable eventfd with no flag, and a loop that
 * spins on it.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_POLL_INTERVAL 0.5

void ss__mark_stopping(ss_server *srv)
{
    if (!atomic_exchange(&srv->stopping, true))
        atomic_store(&srv->shutdown_at, ss_now_ns());
}

int ss__cancelled_wait(ss_request *req, int rc)
{
    /* Whichever call waited (a read, ss_sleep, ss_wait_fd…): a wait ended
     * by a shutdown — in a forked child, maybe the parent's, seen only
     * through the inherited cancel descriptor — puts this process's
     * server in the stopping state, so the request's -ECANCELED is not
     * reported as an error. */
    if (rc == -ECANCELED)
        ss__mark_stopping(req->server);
    return rc;
}

bool ss_server_shutdown_requested(const ss_server *srv)
{
    return atomic_load(&srv->shutdown_requested);
}

int ss_server_wake_fd(const ss_server *srv)
{
    return srv->wake_fd;
}

void ss_server_set_stop_fd(ss_server *srv, int fd)
{
    srv->stop_fd = fd;
}

void ss_server_drain_wake_fd(ss_server *srv)
{
    uint64_t count;
    while (read(srv->wake_fd, &count, sizeof count) > 0)
        ;
}

bool ss_server_cond_wait(ss_server *srv, pthread_cond_t *cond,
                         pthread_mutex_t *lock)
{
    /* ss_shutdown() cannot signal a condition variable (that is not
     * async-signal-safe), so look at its flag every few milliseconds. */
    if (atomic_load(&srv->shutdown_requested))
        return false;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 20 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cond, lock, &until);
    return !atomic_load(&srv->shutdown_requested);
}

static void run_service_actions(ss_server *srv)
{
    if (srv->strategy->service_actions)
        srv->strategy->service_actions(srv);
    srv->kind.service_actions(srv);
}

/* No memory for a request. Leaving the connection (or datagram) queued
 * would keep the socket ready and the loop spinning on it, so take it with
 * a bare request on the stack — no buffers, no handler state — report the
 * error for it and close it: the client learns at once. */
static int refuse_without_memory(ss_server *srv, int error)
{
    ss_request req;
    memset(&req, 0, sizeof req);
    req.server = srv;
    req.fd = -1;
    req.is_datagram = srv->kind.socket_type == SOCK_DGRAM;
    req.wait_class = srv->strategy->wait_class ? srv->strategy->wait_class
                                               : &ss_blocking_wait;
    int rc = srv->kind.get_request(srv, &req);
    if (rc < 0)
        return rc;
    srv->kind.handle_error(srv, &req, error);
    srv->kind.shutdown_request(srv, &req);
    free(req.wbuf);         /* should handle_error have written to it */
    free(req.error_detail); /* ...or set a detail */
    return 0;
}

int ss_server_accept_request(ss_server *srv)
{
    /* At max_connections the connection stays in the listen backlog; the
     * loops do not even poll for it then (limits.c). */
    ss__limit_ticket ticket = {0};
    if (!ss__limits_reserve(srv, &ticket))
        return -EAGAIN;
    ss_request *req;
    int rc = ss__request_new(srv, &req);
    if (rc < 0) {
        rc = refuse_without_memory(srv, rc);
        ss__limits_release(srv, &ticket);
        return rc;
    }
    req->limit = ticket; /* given back by ss__request_free from here on */
    rc = srv->kind.get_request(srv, req);
    if (rc < 0) {
        ss__request_free(req);
        return rc;
    }
    if (!srv->kind.verify_request(srv, req)) {
        ss_drop_request(srv, req);
        return 0;
    }
    /* max_connections_per_client: a client at its maximum is refused
     * (-EUSERS), reported so that a handle_error override may answer
     * politely before the connection closes. */
    rc = ss__limits_admit_client(srv, req);
    if (rc < 0) {
        srv->kind.handle_error(srv, req, rc);
        ss_drop_request(srv, req);
        return 0;
    }
    /* When the client speaks first, a strategy that parks new
     * connections has them wait for their first byte in the loop's lot,
     * without a worker (parking.c). With the PROXY protocol its header is
     * that first byte, due within proxy_protocol_timeout. */
    if ((srv->strategy->parking & SS_PARK_NEW_CONNECTIONS) && srv->lot &&
        srv->handler.first_byte_timeout && !req->is_datagram) {
        double wait = srv->handler.first_byte_timeout(req);
        if (srv->config.proxy_protocol &&
            (wait == 0 || srv->config.proxy_protocol_timeout < wait))
            wait = srv->config.proxy_protocol_timeout;
        req->park_deadline = ss_deadline_after(wait);
        if (ss__lot_park(srv, req) == 0)
            return 0;
    }
    /* The strategy owns the request now — unless it could not start it
     * (no thread, no fork), in which case it is reported and dropped. */
    rc = srv->strategy->process_request(srv, req);
    if (rc < 0) {
        /* -ESHUTDOWN: refused because the server is stopping, which is
         * no error worth a report. */
        if (rc != -ESHUTDOWN)
            srv->kind.handle_error(srv, req, rc);
        ss_drop_request(srv, req);
    }
    return 0;
}

#define ACCEPT_PAUSE_FIRST_NS INT64_C(10000000) /* 10 ms */
#define ACCEPT_PAUSE_MAX_NS INT64_C(500000000)  /* 500 ms */

void ss_accept_pause_update(ss_server *srv, ss_accept_pause *pause, int rc)
{
    if (rc == 0) {
        pause->delay_ns = 0; /* accepted: the episode is over */
        pause->until = 0;
        return;
    }
    if (rc != -EMFILE && rc != -ENFILE && rc != -ENOBUFS && rc != -ENOMEM)
        return;
    if (pause->delay_ns == 0) {
        pause->delay_ns = ACCEPT_PAUSE_FIRST_NS;
        char line[256];
        snprintf(line, sizeof line,
                 "sockserv: cannot accept connections: %s; pausing, and "
                 "retrying until it works%s",
                 ss_strerror(rc),
                 rc == -EMFILE || rc == -ENFILE
                     ? " (connections found waiting meanwhile are closed)"
                     : "");
        ss_server_log(srv, line);
    } else if (pause->delay_ns < ACCEPT_PAUSE_MAX_NS) {
        pause->delay_ns *= 2;
        if (pause->delay_ns > ACCEPT_PAUSE_MAX_NS)
            pause->delay_ns = ACCEPT_PAUSE_MAX_NS;
    }
    pause->until = ss_now_ns() + pause->delay_ns;
}

int ss_accept_pause_left_ms(ss_accept_pause *pause)
{
    if (pause->until == 0)
        return 0;
    int64_t left = pause->until - ss_now_ns();
    if (left <= 0) {
        pause->until = 0;
        return 0;
    }
    return (int)((left + 999999) / 1000000);
}

int ss__poll_interval_ms(double seconds)
{
    if (!(seconds > 0) || !isfinite(seconds))
        seconds = DEFAULT_POLL_INTERVAL;
    double ms = seconds * 1000.0 + 0.999; /* round up: never spin at 0 ms */
    return ms > 86400000.0 ? 86400000 : (int)ms;
}

static int begin_serving(ss_server *srv)
{
    pthread_mutex_lock(&srv->serving_lock);
    int rc = 0;
    if (srv->serving) {
        rc = -EBUSY;
    } else {
        srv->serving = true;
        srv->serving_thread = pthread_self();
        srv->inflight_cancelled = false;
        /* A new run: requests may wait for input again — unless a
         * shutdown is already pending, which ends this run at once. */
        if (!atomic_load(&srv->shutdown_requested)) {
            atomic_store(&srv->stopping, false);
            uint64_t count;
            while (read(srv->cancel_fd, &count, sizeof count) > 0)
                ;
        }
    }
    pthread_mutex_unlock(&srv->serving_lock);
    return rc;
}

static void end_serving(ss_server *srv)
{
    atomic_store(&srv->shutdown_requested, false);
    ss_server_drain_wake_fd(srv);
    pthread_mutex_lock(&srv->serving_lock);
    /* Requests blocked in recv() see no cancel descriptor: a shutdown
     * reaches them by shutdown(SHUT_RD) (blocking_receive.c). A loop that
     * ended otherwise leaves them be, and lists none from now on. */
    if (atomic_load(&srv->stopping))
        ss__inflight_cancel_locked(srv);
    srv->serving = false;
    pthread_cond_broadcast(&srv->serving_done);
    pthread_mutex_unlock(&srv->serving_lock);
}

/* What poll() said of the entry at (-1: not polled this turn). */
static short revents(const struct pollfd *fds, int at)
{
    return at >= 0 ? fds[at].revents : 0;
}

int ss_serve_core_loop(ss_server *srv, double poll_interval)
{
    /* A strategy that parks connections gets the lot (parking.c), polled
     * beside the sockets; without memory for it, nothing is parked. */
    bool parking = srv->strategy->parking != 0 && ss__lot_open(srv) == 0;
    int timeout_ms = ss__poll_interval_ms(poll_interval);
    ss_accept_pause pause = {0};
    int rc = 0;
    while (!atomic_load(&srv->shutdown_requested)) {
        /* Leave the listening socket alone while the server is full
         * (max_connections: a request that ends writes wake_fd) or
         * pausing after EMFILE & co. */
        int wait_ms = timeout_ms;
        int pause_ms = ss_accept_pause_left_ms(&pause);
        if (pause_ms > 0 && pause_ms < wait_ms)
            wait_ms = pause_ms;
        int lot_ms = parking ? ss__lot_timeout_ms(srv) : -1;
        if (lot_ms >= 0 && lot_ms < wait_ms)
            wait_ms = lot_ms;
        bool accepting = pause_ms == 0 && !ss_server_at_capacity(srv);
        /* Only the descriptors in use: poll() refuses more entries than
         * RLIMIT_NOFILE allows (EINVAL), even ones set to -1. stop_fd is
         * set by a strategy (a prefork worker's turns readable when the
         * supervisor stops or dies); the lot's when parking. */
        struct pollfd fds[4];
        nfds_t n = 0;
        int at_listen = accepting ? (int)n++ : -1;
        if (at_listen >= 0)
            fds[at_listen] = (struct pollfd){.fd = srv->fd, .events = POLLIN};
        int at_wake = (int)n++;
        fds[at_wake] = (struct pollfd){.fd = srv->wake_fd, .events = POLLIN};
        int at_stop = srv->stop_fd >= 0 ? (int)n++ : -1;
        if (at_stop >= 0)
            fds[at_stop] =
                (struct pollfd){.fd = srv->stop_fd, .events = POLLIN};
        int at_lot = parking ? (int)n++ : -1;
        if (at_lot >= 0)
            fds[at_lot] =
                (struct pollfd){.fd = ss__lot_fd(srv), .events = POLLIN};
        int ready = poll(fds, n, wait_ms);
        if (ready < 0 && errno == EINVAL && at_listen >= 0) {
            /* More entries than RLIMIT_NOFILE: out of descriptors as
             * surely as EMFILE, so pause the listening socket likewise. */
            ss_accept_pause_update(srv, &pause, -EMFILE);
            continue;
        }
        if (ready < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        /* On EINTR every revents is still the 0 it was made with. */
        if (revents(fds, at_stop))
            ss_shutdown(srv); /* e.g. the prefork supervisor stopped */
        if (atomic_load(&srv->shutdown_requested))
            break;
        if (revents(fds, at_wake) & POLLIN)
            ss_server_drain_wake_fd(
                srv); /* a stale wake-up from an earlier run */
        if (revents(fds, at_listen) & POLLNVAL) {
            rc = -EBADF; /* someone closed our socket under us */
            break;
        }
        if (revents(fds, at_listen) & (POLLIN | POLLERR | POLLHUP))
            ss_accept_pause_update(srv, &pause, ss_server_accept_request(srv));
        if (parking && (revents(fds, at_lot) || lot_ms == 0 || ready <= 0))
            ss__lot_service(srv);
        run_service_actions(srv);
    }
    if (parking)
        ss__lot_close(srv);
    return rc;
}

int ss_serve_forever(ss_server *srv, double poll_interval)
{
    if (!srv || !srv->activated || srv->closed)
        return -EINVAL;
    int rc = begin_serving(srv);
    if (rc < 0)
        return rc;
    if (srv->strategy->serve_forever)
        rc = srv->strategy->serve_forever(srv, poll_interval);
    else
        rc = ss_serve_core_loop(srv, poll_interval);
    end_serving(srv);
    return rc;
}

int ss_handle_request(ss_server *srv)
{
    if (!srv || !srv->activated || srv->closed)
        return -EINVAL;
    int64_t deadline = ss_deadline_after(srv->config.timeout);
    for (;;) {
        /* A shutdown (ss_shutdown(), or SIGINT/SIGTERM through
         * ss_shutdown_on_signals()) ends a handle_request loop, as
         * KeyboardInterrupt leaves Python's: looked at before each wait,
         * and the wake-up descriptor ends the wait itself, whichever
         * thread the signal interrupted. */
        if (atomic_load(&srv->shutdown_requested))
            return SS_SHUTDOWN;
        /* At max_connections, wait for a request to end (it writes
         * wake_fd) before looking at the listening socket again. */
        bool full = ss_server_at_capacity(srv);
        struct pollfd fds[2] = {
            {.fd = full ? -1 : srv->fd, .events = POLLIN},
            {.fd = srv->wake_fd, .events = POLLIN},
        };
        int ready = poll(fds, 2, ss_poll_timeout_ms(deadline));
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (ready == 0) {
            /* Python's ForkingMixIn reaps here too: strategy first. */
            if (srv->strategy->service_actions)
                srv->strategy->service_actions(srv);
            srv->kind.handle_timeout(srv);
            return -ETIMEDOUT;
        }
        if (fds[1].revents) {
            /* A place freed up, or a shutdown: the loop's top tells. */
            ss_server_drain_wake_fd(srv);
            continue;
        }
        int rc = ss_server_accept_request(srv);
        if (rc != -EAGAIN) {
            /* A shutdown while the request ran (its reads were then
             * cancelled, quietly) ends the loop all the same. */
            if (atomic_load(&srv->shutdown_requested))
                return SS_SHUTDOWN;
            return rc < 0 ? rc : 0;
        }
        /* Someone else took it (another process on the same socket). */
    }
}

int ss_shutdown(ss_server *srv)
{
    if (!srv)
        return -EINVAL;
    /* Only async-signal-safe steps: lock-free atomics, clock_gettime()
     * and write(). */
    int saved_errno = errno;
    ss__mark_stopping(srv);
    uint64_t one = 1;
    ssize_t ignored = write(srv->cancel_fd, &one, sizeof one);
    atomic_store(&srv->shutdown_requested, true);
    ignored = write(srv->wake_fd, &one, sizeof one);
    (void)ignored; /* EAGAIN: the counter is already non-zero */
    errno = saved_errno;
    return 0;
}

int ss_shutdown_wait(ss_server *srv)
{
    if (!srv)
        return -EINVAL;
    pthread_mutex_lock(&srv->serving_lock);
    if (srv->serving && pthread_equal(srv->serving_thread, pthread_self())) {
        pthread_mutex_unlock(&srv->serving_lock);
        return -EDEADLK;
    }
    ss_shutdown(srv);
    while (srv->serving)
        pthread_cond_wait(&srv->serving_done, &srv->serving_lock);
    pthread_mutex_unlock(&srv->serving_lock);
    return 0;
}
