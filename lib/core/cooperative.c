/*
 * cooperative.c — ss_sleep, ss_yield, ss_wait_fd, ss_wait_input_or_fd and
 * ss_run_blocking: what a handler calls instead of sleep(), poll() or a
 * blocking library call, so that it waits without stalling other requests
 * under ss_coroutines — and still simply waits under every other strategy.
 *
 * All of them go through the same seam as ss_read: the request's wait class.
 * A wait on fd -1 is a pure timer, which is how sleeping and yielding are
 * expressed without widening that seam. Waiting for the request's input
 * and a descriptor of the handler's at once does need a wider seam (one
 * wait on two descriptors), so the wait class has an optional member for it;
 * classes without it get a sliced fallback here.
 */
#include <errno.h>
#include <poll.h>

#include "internal.h"

int ss_sleep(ss_request *req, double seconds)
{
    if (atomic_load(&req->server->stopping))
        return -ECANCELED;
    int64_t deadline = seconds > 0 ? ss_deadline_after(seconds) : ss_now_ns();
    int rc = req->wait_class->wait(req, -1, 0, deadline, true);
    return rc == -ETIMEDOUT ? 0 : ss__cancelled_wait(req, rc);
}

int ss_yield(ss_request *req)
{
    /* Not cancellable: a yield is not a wait for anything, and a handler
     * that yields in a loop during shutdown must still let the others run
     * (and finish their answers). */
    int rc = req->wait_class->wait(req, -1, 0, ss_now_ns(), false);
    return rc == -ETIMEDOUT || rc == -ECANCELED ? 0 : rc;
}

int ss_wait_fd(ss_request *req, int fd, short events, double timeout)
{
    if (fd < 0)
        return -EBADF;
    if (atomic_load(&req->server->stopping))
        return -ECANCELED;
    int rc = req->wait_class->wait(req, fd, events, ss_deadline_after(timeout),
                                   true);
    return ss__cancelled_wait(req, rc);
}

/* An error or hangup counts as ready, as in wait(): the caller's next call
 * on fd reports it. */
int ss__fd_ready_now(int fd, short events)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc;
    do
        rc = poll(&pfd, 1, 0);
    while (rc < 0 && errno == EINTR);
    return rc > 0 ? SS_READY_FD : 0;
}

/* For a wait class without wait_input_or_fd (one written before it
 * existed): wait for the request's input through the class's own wait()
 * in slices of at most SLICE_NS, and look at fd between slices. Correct
 * under any wait class — nothing here blocks the thread except that wait()
 * — at the price of up to one slice of delay in noticing fd. */
#define SLICE_NS INT64_C(10000000)

static int sliced_wait(ss_request *req, int fd, short events, int64_t deadline)
{
    /* The class may be edge-triggered: after a recv() that filled the
     * buffer, more may be waiting already that no edge will announce.
     * Only the socket itself can say. */
    if (ss__fd_ready_now(req->fd, POLLIN))
        return SS_READY_INPUT | ss__fd_ready_now(fd, events);
    for (;;) {
        int ready = ss__fd_ready_now(fd, events);
        if (ready)
            return ready;
        int64_t slice_end = ss_now_ns() + SLICE_NS;
        bool last = deadline != SS_NO_DEADLINE && deadline <= slice_end;
        int rc = req->wait_class->wait(req, req->fd, POLLIN,
                                       last ? deadline : slice_end, true);
        /* An edge-triggered class may report an edge for input read
         * since: only the socket itself can say. */
        if (rc == 0 && ss__fd_ready_now(req->fd, POLLIN))
            return SS_READY_INPUT | ss__fd_ready_now(fd, events);
        if (rc != 0 && (rc != -ETIMEDOUT || last))
            return rc;
    }
}

int ss_wait_input_or_fd(ss_request *req, int fd, short events, double timeout)
{
    if (fd < 0)
        return -EBADF;
    /* A datagram request's input is its one packet, complete on arrival:
     * there is nothing more to wait for on the shared server socket. */
    if (req->is_datagram)
        return -EOPNOTSUPP;
    if (fd == req->fd || fd == req->server->fd)
        return -EINVAL;
    if (atomic_load(&req->server->stopping))
        return -ECANCELED;
    /* Input already buffered (or the end of the stream already seen) is
     * there for the next read: no waiting, and no system call on the
     * socket. fd is looked at too, so a client that keeps the buffer full
     * cannot hide fd from a handler that serves both. */
    if (ss__request_has_input(req))
        return SS_READY_INPUT | ss__fd_ready_now(fd, events);
    int64_t deadline = ss_deadline_after(timeout);
    const ss_wait_class *w = req->wait_class;
    int rc = w->wait_input_or_fd
                 ? w->wait_input_or_fd(req, fd, events, deadline)
                 : sliced_wait(req, fd, events, deadline);
    /* The wait has taken the news that input arrived (an edge-triggered
     * class will not report it again): the next read must receive at once
     * rather than wait for more (see ss__request_receive). */
    if (rc > 0 && (rc & SS_READY_INPUT))
        req->wait_before_recv = false;
    /* The "input" may be the end of input that the serve loop's
     * shutdown(SHUT_RD) made (blocking_receive.c): that is the shutdown. */
    if (rc > 0 && ss__input_cut_by_shutdown(req))
        rc = -ECANCELED;
    return ss__cancelled_wait(req, rc);
}

int ss_run_blocking(ss_request *req, int (*fn)(void *arg), void *arg)
{
    if (!fn)
        return -EINVAL;
    if (req->wait_class->run_blocking)
        return req->wait_class->run_blocking(req, fn, arg);
    return fn(arg);
}
