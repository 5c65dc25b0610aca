/*
 * send_probe.c — the helpers declared in send_probe.h.
 */
#include "send_probe.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>

static _Atomic int64_t last_progress_ns; /* 0: no byte sent yet */
static _Atomic int64_t longest_ns = -1;
static atomic_int waits;

void test_send_probe_reset(void)
{
    atomic_store(&last_progress_ns, 0);
    atomic_store(&longest_ns, -1);
    atomic_store(&waits, 0);
}

static void progressed(ssize_t sent)
{
    if (sent > 0)
        atomic_store(&last_progress_ns, ss_now_ns());
}

static ssize_t probe_send(ss_request *req, const void *buf, size_t n,
                          short *want)
{
    ssize_t sent = ss_plain_transport.send(req, buf, n, want);
    progressed(sent);
    return sent;
}

static ssize_t probe_sendfile(ss_request *req, int fd, off_t *offset, size_t n,
                              short *want)
{
    ssize_t sent = ss_plain_transport.sendfile(req, fd, offset, n, want);
    progressed(sent);
    return sent;
}

static int probe_wait(ss_request *req, int fd, short events, int64_t deadline,
                      bool cancellable)
{
    int64_t since = atomic_load(&last_progress_ns);
    if ((events & POLLOUT) && fd == ss_request_fileno(req)) {
        atomic_fetch_add(&waits, 1);
        if (since != 0 && deadline != SS_NO_DEADLINE) {
            int64_t allowed = deadline - since;
            int64_t seen = atomic_load(&longest_ns);
            while (allowed > seen &&
                   !atomic_compare_exchange_weak(&longest_ns, &seen, allowed))
                ;
        }
    }
    return ss_blocking_wait.wait(req, fd, events, deadline, cancellable);
}

static const ss_wait_class probe_wait_class = {
    .name = "send probe",
    .wait = probe_wait,
};

const ss_transport *test_send_probe_transport(void)
{
    static ss_transport transport;
    static atomic_bool made;
    if (!atomic_load(&made)) {
        transport = ss_plain_transport;
        transport.name = "send probe";
        transport.send = probe_send;
        transport.sendfile = probe_sendfile;
        atomic_store(&made, true);
    }
    return &transport;
}

void test_send_probe_strategy(ss_strategy *out, const ss_strategy *base)
{
    *out = *base;
    out->wait_class = &probe_wait_class;
}

double test_send_probe_longest_allowance(void)
{
    int64_t ns = atomic_load(&longest_ns);
    return ns < 0 ? -1.0 : (double)ns / 1e9;
}

int test_send_probe_waits(void)
{
    return atomic_load(&waits);
}
