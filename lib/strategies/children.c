/*
 * children.c — ss_children: keeping track of the child processes a
 * strategy forked (ss_forking, ss_prefork, or yours), and waiting for
 * them. Part of sockserv/strategy.h, written against it alone.
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
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sockserv/strategy.h"

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

int ss_children_add(ss_children *c, pid_t pid, ss_places *places)
{
    if (c->count == c->capacity) {
        int capacity = c->capacity ? c->capacity * 2 : 16;
        ss_child *grown = realloc(c->items, sizeof *grown * (size_t)capacity);
        if (!grown)
            return -ENOMEM;
        c->items = grown;
        c->capacity = capacity;
    }
    c->items[c->count].pid = pid;
    c->items[c->count].pidfd = open_pidfd(pid);
    c->items[c->count].started_ns = ss_now_ns();
    c->items[c->count].places = places;
    c->count++;
    return 0;
}

static void remove_at(ss_children *c, int i)
{
    ss_places_release(c->server, c->items[i].places);
    /* A child of ss_server_fork_request(): the parent's copy of its
     * connection goes now. */
    ss_server_child_reaped(c->server, c->items[i].pid);
    if (c->items[i].pidfd >= 0)
        close(c->items[i].pidfd);
    c->items[i] = c->items[--c->count];
}

/* waitpid(WNOHANG) on the child at i, retried after signals: 0 while it
 * runs; its pid once reaped; -1 (ECHILD) when someone else reaped it. */
static pid_t wait_at(const ss_children *c, int i, int *status)
{
    pid_t got;
    do
        got = waitpid(c->items[i].pid, status, WNOHANG);
    while (got < 0 && errno == EINTR);
    return got;
}

int ss_children_reap_one(ss_children *c, ss_child *child, int *status)
{
    for (int i = 0; i < c->count; i++) {
        int st = 0;
        pid_t got = wait_at(c, i, &st);
        if (got == 0)
            continue;
        if (child)
            *child = c->items[i];
        if (status)
            *status = got > 0 ? st : 0;
        remove_at(c, i);
        return 1;
    }
    return 0;
}

/* Whether any child may have exited: one poll() over the pidfds, 64 at a
 * time, instead of a waitpid() per child. True when it cannot tell (a
 * child without a pidfd, poll() failing). */
static bool any_exited(const ss_children *c)
{
    struct pollfd fds[64];
    for (int at = 0; at < c->count; at += 64) {
        int n = c->count - at < 64 ? c->count - at : 64;
        for (int i = 0; i < n; i++) {
            if (c->items[at + i].pidfd < 0)
                return true;
            fds[i] =
                (struct pollfd){.fd = c->items[at + i].pidfd, .events = POLLIN};
        }
        if (poll(fds, (nfds_t)n, 0) != 0)
            return true;
    }
    return false;
}

void ss_children_reap_finished(ss_children *c)
{
    /* Called before every fork in fork mode: with a waitpid() per child
     * each time, accepting n connections cost n * n / 2 system calls. */
    if (c->count == 0 || !any_exited(c))
        return;
    for (int i = 0; i < c->count;) {
        if (wait_at(c, i, NULL) == 0)
            i++;
        else
            remove_at(c, i); /* the last child moves to i, checked next */
    }
}

int ss_children_wait_any(ss_children *c, int extra_fd, int64_t deadline)
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
        int timeout = ss_poll_timeout_ms(deadline);
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

void ss_children_wait_all(ss_children *c)
{
    while (c->count > 0) {
        ss_children_wait_any(c, -1, SS_NO_DEADLINE);
        ss_children_reap_finished(c);
    }
}

void ss_children_signal_all(ss_children *c, int signo)
{
    for (int i = 0; i < c->count; i++)
        kill(c->items[i].pid, signo);
}

void ss_children_forget(ss_children *c)
{
    for (int i = 0; i < c->count; i++) {
        if (c->items[i].pidfd >= 0)
            close(c->items[i].pidfd);
        /* The places are the parent's to give back; here only memory. */
        ss_places_release(NULL, c->items[i].places);
    }
    c->count = 0;
}

void ss_children_free(ss_children *c)
{
    ss_children_forget(c);
    free(c->items);
    c->items = NULL;
    c->capacity = 0;
}
