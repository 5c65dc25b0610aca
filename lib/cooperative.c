/*
 * cooperative.c — ss_sleep, ss_yield, ss_wait_fd and ss_run_blocking: what a
 * handler calls instead of sleep(), poll() or a blocking library call, so
 * that it waits without stalling other requests under ss_coroutines — and
 * still simply waits under every other strategy.
 *
 * All of them go through the same seam as ss_read: the request's io class.
 * A wait on fd -1 is a pure timer, which is how sleeping and yielding are
 * expressed without widening that seam.
 */
#include <errno.h>

#include "internal.h"

int ss_sleep(ss_request *req, double seconds)
{
    if (atomic_load(&req->server->stopping))
        return -ECANCELED;
    int64_t deadline = seconds > 0 ? ss__deadline_after(seconds) : ss_now_ns();
    int rc = req->io->wait(req, -1, 0, deadline);
    return rc == -ETIMEDOUT ? 0 : rc;
}

int ss_yield(ss_request *req)
{
    /* Not cancellable: a yield is not a wait for anything, and a handler
     * that yields in a loop during shutdown must still let the others run
     * (and finish their answers). */
    bool was_in_grace = req->in_grace;
    req->in_grace = true;
    int rc = req->io->wait(req, -1, 0, ss_now_ns());
    req->in_grace = was_in_grace;
    return rc == -ETIMEDOUT || rc == -ECANCELED ? 0 : rc;
}

int ss_wait_fd(ss_request *req, int fd, short events, double timeout)
{
    if (fd < 0)
        return -EBADF;
    if (atomic_load(&req->server->stopping))
        return -ECANCELED;
    return req->io->wait(req, fd, events, ss__deadline_after(timeout));
}

int ss_run_blocking(ss_request *req, int (*fn)(void *arg), void *arg)
{
    if (!fn)
        return -EINVAL;
    if (req->io->run_blocking)
        return req->io->run_blocking(req, fn, arg);
    return fn(arg);
}
