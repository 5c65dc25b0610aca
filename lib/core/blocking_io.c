/*
 * blocking_io.c — ss_blocking_wait, the wait seam for strategies that
 * give a request a thread or process of its own, and deadlines.
 *
 * Request sockets are always non-blocking. ss_read/ss_write try the system
 * call first and only when it says EAGAIN ask the strategy's wait class
 * to wait. For sync, forking and threading that wait is this poll(); the
 * coroutine strategy swaps in a wait that parks the coroutine instead. That
 * single function is the whole difference, which is how one handler source
 * runs under every strategy.
 *
 * Deadlines are absolute CLOCK_MONOTONIC nanoseconds, so a wait interrupted
 * by a signal resumes with the time that is left rather than starting over.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <time.h>

#include "internal.h"

int64_t ss_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ss_deadline_after(double seconds)
{
    if (!(seconds > 0))
        return SS_NO_DEADLINE;
    /* About 292 years fit in int64 nanoseconds; cap far below that. */
    if (seconds > 1e9)
        seconds = 1e9;
    return ss_now_ns() + (int64_t)(seconds * 1e9);
}

int ss_poll_timeout_ms(int64_t deadline)
{
    if (deadline == SS_NO_DEADLINE)
        return -1;
    int64_t left = deadline - ss_now_ns();
    if (left <= 0)
        return 0;
    /* Round up so we never wake a hair early and spin on a 0 ms poll. */
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

void ss_request_cancel_fds(const ss_request *req, int fds[2])
{
    fds[0] = req->server->cancel_fd;
    fds[1] = req->server->parent_cancel_fd;
}

static int blocking_wait(ss_request *req, int fd, short events,
                         int64_t deadline, bool cancellable)
{
    /* Also watch the server's cancel eventfd, which ss_shutdown() makes
     * readable — unless the caller says the wait is not cancellable (a
     * request using its shutdown grace to send an answer). */
    const ss_server *srv = req->server;
    struct pollfd pfd[3] = {
        {.fd = fd, .events = events},
        {.fd = cancellable ? srv->cancel_fd : -1, .events = POLLIN},
        {.fd = cancellable ? srv->parent_cancel_fd : -1, .events = POLLIN},
    };
    for (;;) {
        int rc = poll(pfd, 3, ss_poll_timeout_ms(deadline));
        if (rc > 0 && pfd[0].revents == 0)
            return -ECANCELED;
        if (rc > 0)
            return 0; /* ready, or an error the next call will report */
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* ss_wait_input_or_fd: one poll() on the request's socket, the handler's
 * descriptor and the cancel descriptors, so whichever comes first ends it. */
static int blocking_wait_input_or_fd(ss_request *req, int fd, short events,
                                     int64_t deadline)
{
    const ss_server *srv = req->server;
    struct pollfd pfd[4] = {
        {.fd = req->fd, .events = POLLIN},
        {.fd = fd, .events = events},
        {.fd = srv->cancel_fd, .events = POLLIN},
        {.fd = srv->parent_cancel_fd, .events = POLLIN},
    };
    for (;;) {
        int rc = poll(pfd, 4, ss_poll_timeout_ms(deadline));
        if (rc > 0) {
            int ready = (pfd[0].revents ? SS_READY_INPUT : 0) |
                        (pfd[1].revents ? SS_READY_FD : 0);
            return ready ? ready : -ECANCELED;
        }
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* poll() is level-triggered: it returns at once when data is already
 * there, so the core's "wait before the next receive after a short one"
 * costs a request/response exchange poll + recv + send instead of
 * recv + poll + recv + send. */
const ss_wait_class ss_blocking_wait = {
    .name = "blocking",
    .wait = blocking_wait,
    .wait_input_or_fd = blocking_wait_input_or_fd,
};
