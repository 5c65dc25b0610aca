/*
 * children.c — keeping track of the child processes a server forked
 * (forking and prefork strategies), and waiting for them.
 *
 * The rule CPython learned the hard way: reap only our own children. A
 * program may fork helpers of its own and expect to collect their exit
 * status; waitpid(-1) would steal it. So every wait here names a pid.
 *
 * To *block* until one of our children exits without waitpid(-1), each
 * child gets a pidfd (Linux 5.3+), which poll() reports readable when the
 * child exits. Where pidfds are missing we fall back to checking every few
 * milliseconds.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "children.h"

#define FALLBACK_POLL_MS 10

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int ss__children_add(ss__children *c, pid_t pid)
{
    if (c->count == c->capacity) {
        int capacity = c->capacity ? c->capacity * 2 : 16;
        ss__child *grown = realloc(c->items, sizeof *grown * (size_t)capacity);
        if (!grown)
            return -ENOMEM;
        c->items = grown;
        c->capacity = capacity;
    }
    c->items[c->count].pid = pid;
    c->items[c->count].pidfd = open_pidfd(pid);
    c->items[c->count].started_ns = ss_now_ns();
    c->items[c->count].limit = (ss__limit_ticket){0};
    c->count++;
    return 0;
}

static void remove_at(ss__children *c, int i)
{
    if (c->server)
        ss__limits_release(c->server, &c->items[i].limit);
    if (c->items[i].pidfd >= 0)
        close(c->items[i].pidfd);
    c->items[i] = c->items[--c->count];
}

int ss__children_reap_one(ss__children *c, ss__child *child, int *status)
{
    for (int i = 0; i < c->count; i++) {
        int st = 0;
        pid_t got = waitpid(c->items[i].pid, &st, WNOHANG);
        if (got == 0)
            continue;
        if (got < 0 && errno == EINTR) {
            i--;
            continue;
        }
        /* got == pid: reaped; ECHILD: someone else reaped it. */
        if (child)
            *child = c->items[i];
        if (status)
            *status = got > 0 ? st : 0;
        remove_at(c, i);
        return 1;
    }
    return 0;
}

void ss__children_reap_finished(ss__children *c)
{
    while (ss__children_reap_one(c, NULL, NULL) > 0)
        ;
}

int ss__children_wait_any(ss__children *c, int extra_fd, int64_t deadline)
{
    struct pollfd small[65];
    struct pollfd *fds = small;
    int n = c->count + 1;
    if (n > (int)(sizeof small / sizeof small[0])) {
        fds = malloc(sizeof *fds * (size_t)n);
        if (!fds)
            return -ENOMEM;
    }
    bool all_pidfds = true;
    for (int i = 0; i < c->count; i++) {
        fds[i] = (struct pollfd){.fd = c->items[i].pidfd, .events = POLLIN};
        all_pidfds &= c->items[i].pidfd >= 0;
    }
    fds[c->count] = (struct pollfd){.fd = extra_fd, .events = POLLIN};
    int rc;
    for (;;) {
        int timeout = ss__poll_timeout_ms(deadline);
        if (!all_pidfds && (timeout < 0 || timeout > FALLBACK_POLL_MS))
            timeout = FALLBACK_POLL_MS;
        rc = poll(fds, (nfds_t)n, timeout);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            rc = -errno;
            break;
        }
        if (rc > 0) {
            rc = extra_fd >= 0 && fds[c->count].revents ? 1 : 0;
            break;
        }
        if (deadline != SS_NO_DEADLINE && ss_now_ns() >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        if (!all_pidfds || c->count == 0) {
            rc = 0; /* no pidfd to wait on: let the caller check waitpid */
            break;
        }
    }
    if (fds != small)
        free(fds);
    return rc;
}

void ss__children_wait_all(ss__children *c)
{
    while (c->count > 0) {
        ss__children_wait_any(c, -1, SS_NO_DEADLINE);
        ss__children_reap_finished(c);
    }
}

void ss__children_signal_all(ss__children *c, int signo)
{
    for (int i = 0; i < c->count; i++)
        kill(c->items[i].pid, signo);
}

void ss__children_forget_in_child(ss__children *c)
{
    for (int i = 0; i < c->count; i++)
        if (c->items[i].pidfd >= 0)
            close(c->items[i].pidfd);
    c->count = 0;
}

void ss__children_free(ss__children *c)
{
    ss__children_forget_in_child(c);
    free(c->items);
    c->items = NULL;
    c->capacity = 0;
}
