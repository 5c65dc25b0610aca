/*
 * prefork.c — ss_prefork: a supervisor process keeps worker processes,
 * each running the serve loop with its worker strategy, on one shared
 * listening socket or (ss_prefork_options.reuseport) one SO_REUSEPORT
 * socket per worker slot. Stops workers through a pipe; replaces those
 * that exit. Written against sockserv/strategy.h alone. Design and the
 * shared-vs-reuseport measurements: docs/strategies.md (ss_prefork) and
 * docs/performance.md.
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

#include "sockserv/access_log.h"
#include "sockserv/strategy.h"

#define RESPAWN_DELAY_NS INT64_C(1000000000)

typedef struct prefork {
    ss_prefork_options options;
    /* A copy of the built-in worker strategies' options (the user's may
     * go away before the workers start); options.worker_options points
     * here for those. */
    union {
        ss_threading_options threading;
        ss_thread_pool_options pool;
    } worker_options;
    ss_children children;
    int stop_pipe[2];
    int pending;        /* workers to start */
    int64_t next_spawn; /* not before this time */
    /* Worker slots, while serving: the pid in each (0: free, to be
     * started) and, with options.reuseport, its socket (slot_fd[0] is
     * the server's own; NULL without reuseport: every slot uses that). */
    int nslots;
    pid_t *slot_pid;
    int *slot_fd;
} prefork;

#define DEFAULT_GRACEFUL_TIMEOUT 10.0

static int refuse(const ss_server *srv, const char *line)
{
    ss_server_log(srv, line);
    return -EINVAL;
}

static int prefork_init(ss_server *srv, const void *options)
{
    ss_prefork_options opt = {0};
    if (options)
        opt = *(const ss_prefork_options *)options;
    if (!opt.worker_strategy)
        opt.worker_strategy = &ss_sync;
    if (opt.worker_strategy == &ss_prefork || opt.worker_strategy->serve_forever)
        return refuse(srv, "sockserv: ss_prefork_options.worker_strategy: "
                           "a worker runs the plain loop (not prefork, not "
                           "coroutines)");
    if (opt.workers < 0)
        return refuse(srv, "sockserv: ss_prefork_options.workers: must not "
                           "be negative (0: the CPU count)");
    if (!(opt.graceful_timeout <= 1e9) || opt.graceful_timeout != opt.graceful_timeout)
        return refuse(srv, "sockserv: ss_prefork_options.graceful_timeout: "
                           "at most 1e9 seconds (0: 10 s)");
    if (opt.graceful_timeout == 0)
        opt.graceful_timeout = DEFAULT_GRACEFUL_TIMEOUT;
    if (opt.reuseport) {
        struct sockaddr_storage address;
        socklen_t len = sizeof address;
        ss_server_address(srv, (struct sockaddr *)&address, &len);
        if (address.ss_family != AF_INET && address.ss_family != AF_INET6)
            return -EOPNOTSUPP; /* no SO_REUSEPORT for Unix sockets */
        /* Before server_bind: slot 0, the server's own socket, must be
         * in the group for the other slots to bind the same address. */
        ss_server_set_allow_reuse_port(srv, true);
    }
    prefork *pf = calloc(1, sizeof *pf);
    if (!pf)
        return -ENOMEM;
    pf->options = opt;
    if (opt.worker_options && opt.worker_strategy == &ss_threading) {
        pf->worker_options.threading = *(const ss_threading_options *)opt.worker_options;
        pf->options.worker_options = &pf->worker_options.threading;
    } else if (opt.worker_options && opt.worker_strategy == &ss_thread_pool) {
        pf->worker_options.pool = *(const ss_thread_pool_options *)opt.worker_options;
        pf->options.worker_options = &pf->worker_options.pool;
    }
    pf->stop_pipe[0] = pf->stop_pipe[1] = -1;
    ss_server_set_strategy_data(srv, pf);
    return 0;
}

/* ---- worker slots (and options.reuseport's socket per slot) -------- */

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
    if (!pf->options.reuseport)
        return 0;
    /* An adopted socket (ss_server_new_fd) was bound by someone else,
     * perhaps without SO_REUSEPORT; then no other socket can join it. */
    int on = 0;
    socklen_t len = sizeof on;
    int own = ss_server_fileno(srv);
    if (getsockopt(own, SOL_SOCKET, SO_REUSEPORT, &on, &len) < 0 || !on) {
        ss_server_log(srv, "sockserv: ss_prefork_options.reuseport: the socket "
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
    pf->slot_fd[0] = own;
    for (int i = 1; i < nworkers; i++)
        pf->slot_fd[i] = -1;
    for (int i = 1; i < nworkers; i++) {
        int rc = ss_server_open_twin_socket(srv, &pf->slot_fd[i]);
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
        return; /* shared socket: the server's own already */
    for (int i = 1; i < pf->nslots; i++)
        if (i != slot)
            close(pf->slot_fd[i]);
    if (slot > 0) /* close this process's copy of slot 0 */
        close(ss_server_swap_fd(srv, pf->slot_fd[slot]));
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
    ss_children_forget(&pf->children);
    take_slot_socket(srv, pf, slot);
    close(pf->stop_pipe[1]);
    ss_server_set_stop_fd(srv, pf->stop_pipe[0]);
    const ss_strategy *inner = pf->options.worker_strategy;
    int rc = ss_server_switch_strategy(srv, inner, pf->options.worker_options);
    if (rc == 0)
        rc = ss_serve_forever(srv, poll_interval); /* the plain loop */
    ss_server_close(srv);
    if (inner->destroy)
        inner->destroy(srv);
    fflush(NULL);
    ss_access_log_flush_all();
    _exit(rc == 0 ? 0 : 1);
}

static int spawn_worker(ss_server *srv, prefork *pf, double poll_interval)
{
    pid_t supervisor = getpid();
    int slot = free_slot(pf);
    if (slot < 0)
        return -EAGAIN; /* not reached: one slot is free per pending */
    /* The worker keeps the program's ss_shutdown_on_signals() handlers:
     * SIGTERM stops it gracefully. */
    pid_t pid = ss_server_fork(srv, SS_FORK_KEEP_SIGNALS);
    if (pid < 0)
        return (int)pid;
    if (pid == 0)
        run_worker(srv, pf, slot, poll_interval, supervisor);
    int rc = ss_children_add(&pf->children, pid, NULL);
    if (rc < 0) {
        /* Untracked, it could never be replaced or stopped: end it. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    pf->slot_pid[slot] = pid;
    return rc;
}

static void report_exit(ss_server *srv, const ss_child *child, int status)
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
    ss_server_log(srv, line);
}

static void collect_exited_workers(ss_server *srv, prefork *pf)
{
    ss_child child;
    int status;
    while (ss_children_reap_one(&pf->children, &child, &status) > 0) {
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
            ss_server_log(srv, line);
            pf->next_spawn = ss_now_ns() + RESPAWN_DELAY_NS;
            return;
        }
        pf->pending--;
    }
}

static void stop_workers(prefork *pf)
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
    /* graceful_timeout negative: no grace, killed at once */
    int64_t deadline = ss_deadline_after(pf->options.graceful_timeout);
    if (deadline == SS_NO_DEADLINE)
        deadline = ss_now_ns();
    while (pf->children.count > 0) {
        if (ss_children_wait_any(&pf->children, -1, deadline) == -ETIMEDOUT)
            break;
        ss_children_reap_finished(&pf->children);
    }
    ss_children_signal_all(&pf->children, SIGKILL);
    ss_children_wait_all(&pf->children);
    if (pf->stop_pipe[0] >= 0)
        close(pf->stop_pipe[0]);
    pf->stop_pipe[0] = -1;
}

static int prefork_serve_forever(ss_server *srv, double poll_interval)
{
    prefork *pf = ss_server_strategy_data(srv);
    int nworkers = pf->options.workers ? pf->options.workers : ss_cpu_count();
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
    while (!ss_server_shutdown_requested(srv)) {
        int64_t deadline = ss_deadline_after(poll_interval);
        if (pf->pending > 0 && pf->next_spawn < deadline)
            deadline = pf->next_spawn;
        ss_children_wait_any(&pf->children, ss_server_wake_fd(srv), deadline);
        if (ss_server_shutdown_requested(srv))
            break;
        collect_exited_workers(srv, pf);
        spawn_pending(srv, pf, poll_interval);
        ss_server_kind(srv)->service_actions(srv);
    }
    stop_workers(pf);
    /* With options.reuseport this resets connections still queued on the
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
    stop_workers(pf);
    close_slots(pf);
    ss_children_free(&pf->children);
    free(pf);
    ss_server_set_strategy_data(srv, NULL);
}

const ss_strategy ss_prefork = {
    .name = "prefork",
    .wait_class = &ss_blocking_wait,
    .init = prefork_init,
    .process_request = prefork_process_request,
    .destroy = prefork_destroy,
    .serve_forever = prefork_serve_forever,
};
