/*
 * prefork.c — ss_prefork: a supervisor process keeps `workers` worker
 * processes, each running the serve loop with its worker_strategy, on one
 * shared listening socket or (prefork_reuseport) one SO_REUSEPORT socket
 * per worker slot. Stops workers through a pipe; replaces those that exit.
 * Design and the shared-vs-reuseport measurements: docs/strategies.md
 * (ss_prefork) and docs/performance.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "children.h"
#include "fault.h"

#define RESPAWN_DELAY_NS INT64_C(1000000000)

typedef struct prefork {
    ss__children children;
    int stop_pipe[2];
    int pending;        /* workers to start */
    int64_t next_spawn; /* not before this time */
    /* Worker slots, while serving: the pid in each (0: free, to be
     * started) and, with prefork_reuseport, its socket (slot_fd[0] is
     * srv->fd; NULL without reuseport, where every slot uses srv->fd). */
    int nslots;
    pid_t *slot_pid;
    int *slot_fd;
} prefork;

static const ss_strategy *worker_strategy(const ss_server *srv)
{
    return srv->config.worker_strategy ? srv->config.worker_strategy : &ss_sync;
}

static int prefork_init(ss_server *srv)
{
    const ss_strategy *inner = worker_strategy(srv);
    if (inner == &ss_prefork || inner->serve_forever)
        return -EINVAL; /* a worker must run the plain loop */
    if (srv->config.prefork_reuseport) {
        int family = srv->address.ss_family;
        if (family != AF_INET && family != AF_INET6)
            return -EOPNOTSUPP; /* no SO_REUSEPORT for Unix sockets */
        /* Before server_bind: slot 0, the server's own socket, must be
         * in the group for the other slots to bind the same address. */
        srv->config.allow_reuse_port = true;
    }
    prefork *pf = calloc(1, sizeof *pf);
    if (!pf)
        return -ENOMEM;
    pf->stop_pipe[0] = pf->stop_pipe[1] = -1;
    ss_server_set_strategy_data(srv, pf);
    return 0;
}

/* ---- worker slots (and prefork_reuseport's socket per slot) -------- */

/* One more socket of the REUSEPORT group, made the way the server's own
 * was: the kind's server_bind and server_activate, run with srv->fd
 * pointing at it for the moment. */
static int open_slot_socket(ss_server *srv, int *out)
{
    int own = srv->fd;
    int rc = ss__socket_open(srv); /* sets srv->fd */
    if (rc < 0)
        return rc;
    int fd = srv->fd;
    rc = srv->kind.server_bind(srv);
    if (rc == 0)
        rc = srv->kind.server_activate(srv);
    srv->fd = own;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static void close_slots(prefork *pf)
{
    if (pf->slot_fd)
        for (int i = 1; i < pf->nslots; i++)
            if (pf->slot_fd[i] >= 0)
                close(pf->slot_fd[i]);
    free(pf->slot_fd);
    free(pf->slot_pid);
    pf->slot_fd = NULL;
    pf->slot_pid = NULL;
    pf->nslots = 0;
}

static int open_slots(ss_server *srv, prefork *pf, int nworkers)
{
    pf->slot_pid = calloc((size_t)nworkers, sizeof *pf->slot_pid);
    if (!pf->slot_pid)
        return -ENOMEM;
    pf->nslots = nworkers;
    if (!srv->config.prefork_reuseport)
        return 0;
    /* An adopted socket (ss_server_new_fd) was bound by someone else,
     * perhaps without SO_REUSEPORT; then no other socket can join it. */
    int on = 0;
    socklen_t len = sizeof on;
    if (getsockopt(srv->fd, SOL_SOCKET, SO_REUSEPORT, &on, &len) < 0 || !on) {
        ss__log(srv, "sockserv: prefork_reuseport: the server's socket "
                     "lacks SO_REUSEPORT (a passed socket needs it, e.g. "
                     "systemd's ReusePort=yes)");
        close_slots(pf);
        return -EINVAL;
    }
    pf->slot_fd = malloc((size_t)nworkers * sizeof *pf->slot_fd);
    if (!pf->slot_fd) {
        close_slots(pf);
        return -ENOMEM;
    }
    pf->slot_fd[0] = srv->fd;
    for (int i = 1; i < nworkers; i++)
        pf->slot_fd[i] = -1;
    for (int i = 1; i < nworkers; i++) {
        int rc = open_slot_socket(srv, &pf->slot_fd[i]);
        if (rc < 0) {
            close_slots(pf);
            return rc;
        }
    }
    return 0;
}

static int free_slot(const prefork *pf)
{
    for (int i = 0; i < pf->nslots; i++)
        if (pf->slot_pid[i] == 0)
            return i;
    return -1;
}

static void release_slot(prefork *pf, pid_t pid)
{
    for (int i = 0; i < pf->nslots; i++)
        if (pf->slot_pid[i] == pid)
            pf->slot_pid[i] = 0;
}

/* In a worker: keep only its own slot's socket, and serve on it. */
static void take_slot_socket(ss_server *srv, prefork *pf, int slot)
{
    if (!pf->slot_fd)
        return; /* shared socket: srv->fd already */
    for (int i = 1; i < pf->nslots; i++)
        if (i != slot)
            close(pf->slot_fd[i]);
    if (slot > 0) {
        close(srv->fd); /* this process's copy of slot 0 */
        srv->fd = pf->slot_fd[slot];
    }
}

/* In the worker process: become an ordinary server with the inner
 * strategy, serve until the supervisor says stop, and leave. */
static void run_worker(ss_server *srv, prefork *pf, int slot,
                       double poll_interval, pid_t supervisor)
{
    /* If the supervisor dies, SIGTERM: a program that registered
     * ss_shutdown_on_signals() stops gracefully, any other is ended. The
     * check after it closes the race with a supervisor already gone. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != supervisor)
        _exit(0);
    ss__children_forget_in_child(&pf->children);
    ss__server_after_fork(srv);
    take_slot_socket(srv, pf, slot);
    close(pf->stop_pipe[1]);
    srv->parent_fd = pf->stop_pipe[0];
    srv->unlink_path = false; /* the socket file is the supervisor's */
    srv->strategy = worker_strategy(srv);
    ss_server_set_strategy_data(srv, NULL);
    int rc = srv->strategy->init ? srv->strategy->init(srv) : 0;
    if (rc == 0)
        rc = ss_serve_forever(srv, poll_interval); /* the plain loop */
    ss_server_close(srv);
    if (srv->strategy->destroy)
        srv->strategy->destroy(srv);
    fflush(NULL);
    _exit(rc == 0 ? 0 : 1);
}

static int spawn_worker(ss_server *srv, prefork *pf, double poll_interval)
{
    pid_t supervisor = getpid();
    int slot = free_slot(pf);
    if (slot < 0)
        return -EAGAIN; /* not reached: one slot is free per pending */
    fflush(NULL);
    pid_t pid =
        ss__fault_should_fail(SS_FAULT_FORK) ? (errno = EAGAIN, -1) : fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        run_worker(srv, pf, slot, poll_interval, supervisor);
    int rc = ss__children_add(&pf->children, pid);
    if (rc < 0) {
        /* Untracked, it could never be replaced or stopped: end it. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    pf->slot_pid[slot] = pid;
    return rc;
}

static void report_exit(ss_server *srv, const ss__child *child, int status)
{
    char line[160];
    if (WIFSIGNALED(status))
        snprintf(line, sizeof line,
                 "sockserv: prefork worker %d killed by signal %d; "
                 "starting another",
                 (int)child->pid, WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        snprintf(line, sizeof line,
                 "sockserv: prefork worker %d exited with status %d; "
                 "starting another",
                 (int)child->pid, WEXITSTATUS(status));
    else
        return; /* a clean exit (e.g. its own SIGTERM): replace quietly */
    ss__log(srv, line);
}

static void collect_exited_workers(ss_server *srv, prefork *pf)
{
    ss__child child;
    int status;
    while (ss__children_reap_one(&pf->children, &child, &status) > 0) {
        report_exit(srv, &child, status);
        release_slot(pf, child.pid);
        pf->pending++;
        if (ss_now_ns() - child.started_ns < RESPAWN_DELAY_NS)
            pf->next_spawn = ss_now_ns() + RESPAWN_DELAY_NS;
    }
}

static void spawn_pending(ss_server *srv, prefork *pf, double poll_interval)
{
    if (pf->pending == 0 || ss_now_ns() < pf->next_spawn)
        return;
    while (pf->pending > 0) {
        int rc = spawn_worker(srv, pf, poll_interval);
        if (rc < 0) {
            char line[128];
            snprintf(line, sizeof line,
                     "sockserv: cannot start a prefork worker: %s",
                     ss_strerror(rc));
            ss__log(srv, line);
            pf->next_spawn = ss_now_ns() + RESPAWN_DELAY_NS;
            return;
        }
        pf->pending--;
    }
}

static void stop_workers(ss_server *srv, prefork *pf)
{
    /* A byte makes the pipe readable for every worker. Closing alone is
     * not enough: any process forked meanwhile (another server's workers,
     * the program's own children) also holds the write end. */
    if (pf->stop_pipe[1] >= 0) {
        ssize_t ignored = write(pf->stop_pipe[1], "", 1);
        (void)ignored;
        close(pf->stop_pipe[1]);
    }
    pf->stop_pipe[1] = -1;
    int64_t deadline = ss__deadline_after(srv->config.graceful_timeout);
    if (deadline == SS_NO_DEADLINE)
        deadline = ss_now_ns(); /* graceful_timeout 0: no grace */
    while (pf->children.count > 0) {
        if (ss__children_wait_any(&pf->children, -1, deadline) == -ETIMEDOUT)
            break;
        ss__children_reap_finished(&pf->children);
    }
    ss__children_signal_all(&pf->children, SIGKILL);
    ss__children_wait_all(&pf->children);
    if (pf->stop_pipe[0] >= 0)
        close(pf->stop_pipe[0]);
    pf->stop_pipe[0] = -1;
}

static int prefork_serve_forever(ss_server *srv, double poll_interval)
{
    prefork *pf = ss_server_strategy_data(srv);
    int nworkers = srv->config.workers ? srv->config.workers : ss__cpu_count();
    int rc = open_slots(srv, pf, nworkers);
    if (rc < 0)
        return rc;
    if (pipe2(pf->stop_pipe, O_CLOEXEC) < 0) {
        rc = -errno;
        close_slots(pf);
        return rc;
    }
    pf->pending = nworkers;
    pf->next_spawn = 0;
    if (!(poll_interval > 0))
        poll_interval = 0.5;

    spawn_pending(srv, pf, poll_interval);
    while (!atomic_load(&srv->shutdown_requested)) {
        int64_t deadline = ss__deadline_after(poll_interval);
        if (pf->pending > 0 && pf->next_spawn < deadline)
            deadline = pf->next_spawn;
        ss__children_wait_any(&pf->children, srv->wake_fd, deadline);
        if (atomic_load(&srv->shutdown_requested))
            break;
        collect_exited_workers(srv, pf);
        spawn_pending(srv, pf, poll_interval);
        srv->kind.service_actions(srv);
    }
    stop_workers(srv, pf);
    /* With prefork_reuseport this resets connections still queued on the
     * extra slots' sockets: serving is over, and ss_handle_request() on
     * the server's own socket must not leave others stranded. */
    close_slots(pf);
    return 0;
}

/* ss_handle_request() on a prefork server: no workers are involved; the
 * request runs in the calling process, like ss_sync. */
static int prefork_process_request(ss_server *srv, ss_request *req)
{
    ss_run_request(srv, req);
    return 0;
}

static void prefork_destroy(ss_server *srv)
{
    prefork *pf = ss_server_strategy_data(srv);
    if (!pf)
        return;
    stop_workers(srv, pf);
    close_slots(pf);
    ss__children_free(&pf->children);
    free(pf);
    ss_server_set_strategy_data(srv, NULL);
}

const ss_strategy ss_prefork = {
    .name = "prefork",
    .io = &ss_blocking_io,
    .init = prefork_init,
    .process_request = prefork_process_request,
    .destroy = prefork_destroy,
    .serve_forever = prefork_serve_forever,
};
