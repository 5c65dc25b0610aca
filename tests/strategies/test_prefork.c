/*
 * test_prefork.c — ss_prefork: a supervisor and its worker processes.
 *
 * What is proved here, over real sockets:
 *  - a worker killed with SIGKILL is replaced (and reported through the
 *    log hook) and the server keeps serving with its full set of workers;
 *  - ss_shutdown() on the supervisor stops every worker gracefully — a
 *    request in progress finishes — and reaps them: their pids are gone;
 *  - a worker stuck past graceful_timeout is killed;
 *  - SIGKILL of the supervisor makes the workers exit by themselves;
 *  - two prefork servers in one process stop independently;
 *  - with prefork_reuseport, each worker listens on a socket of its own
 *    (as many listeners as workers, read back from /proc/net), the kernel
 *    spreads connections over them, connections and datagrams hashed to
 *    a killed worker wait for its replacement instead of being lost, a
 *    UDP client stays with its worker, the extra sockets exist exactly
 *    while serving, and Unix kinds and passed sockets without
 *    SO_REUSEPORT are refused.
 *
 * Worker pids are learned from the workers themselves: the handler
 * answers with getpid(). Workers here run the synchronous strategy, so a
 * worker holding one connection cannot take another: two connections held
 * at once are served by two different workers.
 *
 * Workers are child processes of this test: they never call cmocka and
 * only talk through their sockets. Every wait is bounded, and a test that
 * fails kills the processes it knows of by pid before it ends.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Answer "<pid>\n", then wait for the client's end of stream, then say
 * "bye\n": the client decides how long the worker stays busy. */
static int pid_handle(ss_request *req)
{
    if (ss_writef(req, "%ld\n", (long)getpid()) < 0)
        return -1;
    char buf[64];
    ssize_t n;
    while ((n = ss_read(req, buf, sizeof buf)) > 0)
        ;
    if (n < 0)
        return (int)n;
    return ss_write_all(req, "bye\n", 4) == 4 ? 0 : -1;
}

static const ss_handler_class pid_handler = {.handle = pid_handle};

/* Answer "<pid>\n", stay busy for *(int *)config.user milliseconds without
 * touching the socket, then say "bye\n". A stopping server cancels a
 * request's waits for input, not its own work: this handler is busy the
 * way a worker computing an answer is. */
static int busy_pid_handle(ss_request *req)
{
    if (ss_writef(req, "%ld\n", (long)getpid()) < 0)
        return -1;
    test_sleep_ms(*(const int *)ss_request_user(req));
    return ss_write_all(req, "bye\n", 4) == 4 ? 0 : -1;
}

static const ss_handler_class busy_pid_handler = {.handle = busy_pid_handle};

/* Connect and read the worker's pid; the connection stays open and the
 * worker busy until finish_busy(). */
static pid_t connect_busy(int *fd_out, int (*connect_fn)(void *), void *arg)
{
    int fd = connect_fn(arg);
    assert_true(fd >= 0);
    char line[32];
    size_t got = 0;
    while (got < sizeof line - 1) {
        ssize_t r = recv(fd, line + got, 1, 0);
        if (r <= 0)
            fail_msg("no pid line from the worker (%s)",
                     r < 0 ? strerror(errno) : "EOF");
        if (line[got++] == '\n')
            break;
    }
    line[got] = '\0';
    *fd_out = fd;
    return (pid_t)strtol(line, NULL, 10);
}

static int connect_server(void *srv)
{
    return test_connect(srv);
}

static void finish_busy(int fd)
{
    shutdown(fd, SHUT_WR);
    char buf[8];
    assert_int_equal(test_recv_all(fd, buf, sizeof buf), 4);
    assert_memory_equal(buf, "bye\n", 4);
    close(fd);
}

/* Two connections held at once: two distinct workers, whose pids these
 * are. */
static void two_worker_pids(pid_t pids[2], int (*connect_fn)(void *), void *arg)
{
    int fds[2];
    pids[0] = connect_busy(&fds[0], connect_fn, arg);
    pids[1] = connect_busy(&fds[1], connect_fn, arg);
    finish_busy(fds[0]);
    finish_busy(fds[1]);
    assert_true(pids[0] > 0 && pids[1] > 0);
    assert_int_not_equal(pids[0], pids[1]);
}

static bool children_exactly(void *arg)
{
    return test_child_pids(NULL, 0) == *(int *)arg;
}

static bool is_child(pid_t pid)
{
    pid_t pids[64];
    int n = test_child_pids(pids, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* The pid no longer exists at all: exited and reaped. */
static bool gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

static void start_prefork(test_server *t, int workers, test_log *log,
                          double graceful_timeout)
{
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.workers = workers,
                                  .graceful_timeout = graceful_timeout};
    cfg.strategy_options = &prefork;
    if (log) {
        test_log_init(log);
        cfg.log = test_log_hook;
        cfg.user = log;
    }
    assert_int_equal(test_server_start_with(t, &ss_tcp, &ss_prefork,
                                            "127.0.0.1:0", &pid_handler, &cfg,
                                            0.05),
                     0);
    assert_true(test_wait_for(children_exactly, &workers, 10.0));
}

/* One worker running busy_pid_handler for busy_ms. */
static void start_busy_prefork(test_server *t, const int *busy_ms,
                               double graceful_timeout)
{
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.workers = 1,
                                  .graceful_timeout = graceful_timeout};
    cfg.strategy_options = &prefork;
    cfg.user = (void *)busy_ms;
    assert_int_equal(test_server_start_with(t, &ss_tcp, &ss_prefork,
                                            "127.0.0.1:0", &busy_pid_handler,
                                            &cfg, 0.05),
                     0);
    int workers = 1;
    assert_true(test_wait_for(children_exactly, &workers, 10.0));
}

/* ---- Replacement ------------------------------------------------------- */

static bool log_has(test_log *log, const char *needle)
{
    for (int i = 0; i < test_log_count(log); i++) {
        char line[TEST_LOG_LINE_SIZE];
        test_log_line(log, i, line, sizeof line);
        if (strstr(line, needle))
            return true;
    }
    return false;
}

static void test_killed_worker_is_replaced_and_serving_goes_on(void **state)
{
    (void)state;
    test_log log;
    test_server t;
    start_prefork(&t, 2, &log, 10.0);
    pid_t before[2];
    two_worker_pids(before, connect_server, t.srv);
    assert_true(is_child(before[0]) && is_child(before[1]));

    assert_int_equal(kill(before[0], SIGKILL), 0);
    /* Reaped by the supervisor, and a new worker started (a worker that
     * dies young is replaced after a one-second pause). */
    for (int i = 0; i < 5000 && !gone(before[0]); i++)
        test_sleep_ms(1);
    assert_true(gone(before[0]));
    int two = 2;
    assert_true(test_wait_for(children_exactly, &two, 5.0));

    pid_t after[2];
    two_worker_pids(after, connect_server, t.srv);
    for (int i = 0; i < 2; i++)
        assert_int_not_equal(after[i], before[0]);
    assert_true(after[0] == before[1] || after[1] == before[1]);

    char expected[96];
    snprintf(expected, sizeof expected, "worker %ld killed by signal %d",
             (long)before[0], SIGKILL);
    assert_true(log_has(&log, expected));
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

/* ---- Stopping ---------------------------------------------------------- */

static void test_shutdown_stops_and_reaps_every_worker(void **state)
{
    (void)state;
    test_server t;
    start_prefork(&t, 3, NULL, 10.0);
    pid_t pids[3];
    assert_int_equal(test_child_pids(pids, 3), 3);

    double start = test_now();
    assert_true(test_server_join_within(&t, 15.0));
    /* Graceful, not the 10 s graceful_timeout: idle workers leave at
     * once. */
    assert_true(test_now() - start < 3.0);
    for (int i = 0; i < 3; i++)
        assert_true(gone(pids[i]));
    assert_int_equal(test_child_pids(NULL, 0), 0);
    ss_server_free(t.srv);
}

typedef struct stopper {
    test_server *t;
    pthread_t thread;
    bool stopped;
} stopper;

static void *stop_server(void *arg)
{
    stopper *s = arg;
    s->stopped = test_server_join_within(s->t, 20.0);
    return NULL;
}

static bool joined_within(pthread_t thread, double seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    return pthread_timedjoin_np(thread, NULL, &deadline) == 0;
}

static void test_shutdown_lets_running_request_finish(void **state)
{
    (void)state;
    static const int busy_ms = 600;
    test_server t;
    start_busy_prefork(&t, &busy_ms, 10.0);
    int fd;
    pid_t worker = connect_busy(&fd, connect_server, t.srv);

    stopper s = {.t = &t};
    assert_int_equal(pthread_create(&s.thread, NULL, stop_server, &s), 0);
    test_sleep_ms(200);
    assert_true(test_process_running(worker)); /* finishing its request */
    finish_busy(fd); /* the request completes: "bye" arrives */
    assert_true(joined_within(s.thread, 15.0));
    assert_true(s.stopped);
    assert_true(gone(worker));
    ss_server_free(t.srv);
}

static void test_worker_busy_past_graceful_timeout_is_killed(void **state)
{
    (void)state;
    static const int busy_ms = 10000;
    test_server t;
    start_busy_prefork(&t, &busy_ms, 0.3);
    int fd;
    pid_t worker = connect_busy(&fd, connect_server, t.srv);

    double start = test_now();
    assert_true(test_server_join_within(&t, 10.0));
    double took = test_now() - start;
    assert_true(took >= 0.25);
    assert_true(took < 5.0);
    assert_true(gone(worker));
    /* Killed mid-request: the connection ends without "bye". */
    char buf[8];
    assert_int_equal(test_recv_all(fd, buf, sizeof buf), 0);
    close(fd);
    ss_server_free(t.srv);
}

/* Starting B forks B's workers while A's stop pipe exists; stopping A must
 * still stop A's workers at once, not after graceful_timeout. */
static void test_two_prefork_servers_stop_independently(void **state)
{
    (void)state;
    test_server a, b;
    start_prefork(&a, 1, NULL, 5.0);
    pid_t a_worker;
    assert_int_equal(test_child_pids(&a_worker, 1), 1);
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.workers = 1, .graceful_timeout = 5.0};
    cfg.strategy_options = &prefork;
    assert_int_equal(test_server_start_with(&b, &ss_tcp, &ss_prefork,
                                            "127.0.0.1:0", &pid_handler, &cfg,
                                            0.05),
                     0);
    int two = 2;
    assert_true(test_wait_for(children_exactly, &two, 10.0));

    double start = test_now();
    assert_true(test_server_stop_within(&a, 15.0));
    double took = test_now() - start;
    bool a_gone = gone(a_worker);
    assert_true(test_server_stop_within(&b, 15.0));
    assert_true(a_gone);
    if (took >= 2.0)
        fail_msg("stopping A took %.1f s: its worker did not see the stop "
                 "and was killed at graceful_timeout",
                 took);
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

/* ---- The supervisor dies ----------------------------------------------- */

static int connect_port(void *arg)
{
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", *(int *)arg);
    return test_connect_address(address, SOCK_STREAM);
}

/* Runs in a child process: a prefork supervisor that reports its port
 * through the pipe and serves until killed. No cmocka here. */
static void run_supervisor(int report_fd)
{
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.workers = 2};
    cfg.strategy_options = &prefork;
    ss_server *srv;
    int port = -1;
    if (ss_server_new(&srv, &ss_tcp, &ss_prefork, "127.0.0.1:0", &pid_handler,
                      &cfg) == 0)
        port = ss_server_port(srv);
    ssize_t w = write(report_fd, &port, sizeof port);
    if (port < 0 || w != (ssize_t)sizeof port)
        _exit(1);
    close(report_fd);
    ss_serve_forever(srv, 0.05);
    _exit(2); /* not reached: we are killed */
}

static void test_workers_exit_when_supervisor_is_killed(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t supervisor = fork();
    assert_true(supervisor >= 0);
    if (supervisor == 0) {
        close(p[0]);
        run_supervisor(p[1]);
    }
    close(p[1]);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    int port = -1;
    if (poll(&pfd, 1, 10000) == 1)
        assert_int_equal(read(p[0], &port, sizeof port), (ssize_t)sizeof port);
    close(p[0]);
    if (port <= 0) {
        kill(supervisor, SIGKILL);
        waitpid(supervisor, NULL, 0);
        fail_msg("the supervisor did not report its port");
    }

    pid_t workers[2];
    two_worker_pids(workers, connect_port, &port);

    assert_int_equal(kill(supervisor, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(supervisor, &status, 0), supervisor);
    assert_true(WIFSIGNALED(status));
    /* The orphaned workers notice and exit (whoever adopts them may leave
     * them as zombies for a while: exited is what counts). */
    bool exited = false;
    for (int i = 0; i < 5000 && !exited; i++) {
        exited = !test_process_running(workers[0]) &&
                 !test_process_running(workers[1]);
        if (!exited)
            test_sleep_ms(1);
    }
    if (!exited) {
        kill(workers[0], SIGKILL); /* ours to clean up: we made them */
        kill(workers[1], SIGKILL);
        fail_msg("workers %ld and %ld outlived their supervisor by 5 s",
                 (long)workers[0], (long)workers[1]);
    }
    /* Nobody listens any more. */
    assert_true(connect_port(&port) == -ECONNREFUSED);
}

/* ---- prefork_reuseport: a listening socket per worker ------------------ */

/* Inodes of the sockets in /proc/net/<table> bound to port in state st
 * ("0A": a TCP listener; "07": an unconnected UDP socket). */
static int sockets_on_port(const char *table, int port, const char *st,
                           unsigned long *inodes, int max)
{
    int n = 0;
    const char *suffixes[] = {"", "6"};
    for (int s = 0; s < 2; s++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/net/%s%s", table, suffixes[s]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        char line[512];
        if (!fgets(line, sizeof line, f)) { /* the header */
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof line, f)) {
            char local[64], state[8];
            unsigned long inode;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, "%*s %63s %*s %7s %*s %*s %*s %*s %*s %lu", local,
                       state, &inode) != 3)
                continue;
            const char *colon = strrchr(local, ':');
            if (!colon || strtol(colon + 1, NULL, 16) != port ||
                strcmp(state, st) != 0)
                continue;
            if (n < max)
                inodes[n] = inode;
            n++;
        }
        fclose(f);
    }
    return n;
}

/* How many of pid's descriptors are sockets among inodes; the last one
 * found goes to *which. */
static int sockets_held(pid_t pid, const unsigned long *inodes, int n,
                        unsigned long *which)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
    int held = 0;
    for (int fd = 0; fd < 1024; fd++) {
        char path[96], target[64];
        snprintf(path, sizeof path, "%s/%d", dir, fd);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        unsigned long inode;
        if (sscanf(target, "socket:[%lu]", &inode) != 1)
            continue;
        for (int i = 0; i < n; i++)
            if (inodes[i] == inode) {
                held++;
                *which = inode;
            }
    }
    return held;
}

/* Of two workers, the one whose socket the supervisor opened for it
 * (index 1 after the call), not the server's own (index 0): if the
 * supervisor did not hold that socket, it would close with its worker. */
/* A worker just forked still holds every slot's socket, until it has
 * closed all but its own: wait until each holds exactly one of them. */
typedef struct settling {
    const pid_t *workers;
    int count;
    const unsigned long *inodes;
    int inode_count;
} settling;

static bool each_holds_one(void *arg)
{
    const settling *s = arg;
    unsigned long which;
    for (int i = 0; i < s->count; i++)
        if (sockets_held(s->workers[i], s->inodes, s->inode_count, &which) != 1)
            return false;
    return true;
}

static void wait_until_settled(const pid_t *workers, int count,
                               const unsigned long *inodes, int inode_count)
{
    settling s = {workers, count, inodes, inode_count};
    assert_true(test_wait_for(each_holds_one, &s, 10.0));
}

static void order_by_socket(ss_server *srv, pid_t workers[2], const char *table,
                            const char *state)
{
    unsigned long group[2];
    assert_int_equal(
        sockets_on_port(table, ss_server_port(srv), state, group, 2), 2);
    wait_until_settled(workers, 2, group, 2);
    struct stat st;
    assert_int_equal(fstat(ss_server_fileno(srv), &st), 0);
    unsigned long own = (unsigned long)st.st_ino, which;
    bool first_owns = sockets_held(workers[0], &own, 1, &which) == 1;
    bool second_owns = sockets_held(workers[1], &own, 1, &which) == 1;
    assert_true(first_owns != second_owns);
    if (second_owns) {
        pid_t swap = workers[0];
        workers[0] = workers[1];
        workers[1] = swap;
    }
}

static void start_reuseport(test_server *t, const ss_server_class *kind,
                            const ss_handler_class *handler, int workers,
                            test_log *log)
{
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.workers = workers, .reuseport = true};
    cfg.strategy_options = &prefork;
    if (log) {
        test_log_init(log);
        cfg.log = test_log_hook;
        cfg.user = log;
    }
    assert_int_equal(test_server_start_with(t, kind, &ss_prefork, "127.0.0.1:0",
                                            handler, &cfg, 0.05),
                     0);
    assert_true(test_wait_for(children_exactly, &workers, 10.0));
}

/* Connect, say nothing (end of stream at once), read "<pid>\nbye\n" to
 * the end: the pid of the worker that served the connection. */
static pid_t served_by(int fd)
{
    char reply[64];
    shutdown(fd, SHUT_WR);
    size_t n = test_recv_all(fd, reply, sizeof reply - 1);
    reply[n] = '\0';
    close(fd);
    long pid;
    char bye[8];
    if (sscanf(reply, "%ld\n%7s", &pid, bye) != 2 || strcmp(bye, "bye") != 0)
        fail_msg("incomplete reply '%s'", reply);
    return (pid_t)pid;
}

static bool contains(const pid_t *pids, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

static void test_reuseport_gives_each_worker_a_listening_socket(void **state)
{
    (void)state;
    enum { WORKERS = 3 };
    test_server t;
    start_reuseport(&t, &ss_tcp, &pid_handler, WORKERS, NULL);
    int port = ss_server_port(t.srv);
    pid_t workers[WORKERS];
    assert_int_equal(test_child_pids(workers, WORKERS), WORKERS);

    /* As many listeners on the port as workers — not one more: the
     * server's own socket is one worker's, not a bystander's. */
    unsigned long listeners[8];
    assert_int_equal(sockets_on_port("tcp", port, "0A", listeners, 8), WORKERS);
    unsigned long own[WORKERS];
    wait_until_settled(workers, WORKERS, listeners, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        assert_int_equal(sockets_held(workers[i], listeners, WORKERS, &own[i]),
                         1);
        for (int j = 0; j < i; j++)
            assert_true(own[i] != own[j]);
    }

    /* The kernel spreads connections over them: every worker serves
     * some of 60 (all missing one worker: odds about 1e-10). */
    pid_t seen[WORKERS] = {0};
    int distinct = 0;
    for (int i = 0; i < 60; i++) {
        pid_t pid = served_by(test_connect(t.srv));
        assert_true(contains(workers, WORKERS, pid));
        if (!contains(seen, distinct, pid))
            seen[distinct++] = pid;
    }
    assert_int_equal(distinct, WORKERS);
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

static void
test_reuseport_connections_to_a_killed_worker_wait_for_its_replacement(
    void **state)
{
    (void)state;
    test_log log;
    test_server t;
    start_reuseport(&t, &ss_tcp, &pid_handler, 2, &log);
    pid_t before[2];
    assert_int_equal(test_child_pids(before, 2), 2);
    order_by_socket(t.srv, before, "tcp", "0A");
    pid_t killed = before[1], survivor = before[0];
    assert_int_equal(kill(killed, SIGKILL), 0);
    for (int i = 0; i < 5000 && !gone(killed); i++)
        test_sleep_ms(1);
    assert_true(gone(killed)); /* reaped: its socket has no worker */

    /* Opened while one slot has no worker (a worker that died young is
     * replaced after a second): about half hash to that slot and wait
     * in its queue, which the supervisor keeps open, until the
     * replacement takes them. None is refused or reset. */
    enum { N = 16 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
    }
    int by_replacement = 0;
    for (int i = 0; i < N; i++) {
        pid_t pid = served_by(fds[i]);
        assert_int_not_equal(pid, killed);
        if (pid != survivor)
            by_replacement++;
    }
    /* All of them missing the dead slot: odds 1 in 65,536. */
    assert_true(by_replacement > 0);

    /* Replaced, two workers again, and every later connection served. */
    int two = 2;
    assert_true(test_wait_for(children_exactly, &two, 5.0));
    pid_t after[2];
    assert_int_equal(test_child_pids(after, 2), 2);
    for (int i = 0; i < 40; i++) {
        pid_t pid = served_by(test_connect(t.srv));
        assert_true(contains(after, 2, pid));
    }
    char expected[96];
    snprintf(expected, sizeof expected, "worker %ld killed by signal %d",
             (long)killed, SIGKILL);
    assert_true(log_has(&log, expected));
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

/* A datagram's reply: the pid of the worker that received it. */
static int udp_pid_handle(ss_request *req)
{
    return ss_writef(req, "%ld", (long)getpid()) < 0 ? -1 : 0;
}

static const ss_handler_class udp_pid_handler = {
    .base = &ss_datagram_handler,
    .handle = udp_pid_handle,
};

static pid_t udp_ask(int fd)
{
    test_send_all(fd, "?", 1);
    char reply[32];
    size_t n = test_recv_all(fd, reply, sizeof reply - 1);
    reply[n] = '\0';
    return (pid_t)strtol(reply, NULL, 10);
}

static void test_reuseport_udp_keeps_each_client_on_its_worker(void **state)
{
    (void)state;
    enum { CLIENTS = 24 };
    test_log log; /* the kill is reported there, not on stderr */
    test_server t;
    start_reuseport(&t, &ss_udp, &udp_pid_handler, 2, &log);
    int port = ss_server_port(t.srv);
    unsigned long bound[4];
    assert_int_equal(sockets_on_port("udp", port, "07", bound, 4), 2);
    pid_t workers[2];
    assert_int_equal(test_child_pids(workers, 2), 2);
    order_by_socket(t.srv, workers, "udp", "07");

    /* A client (its address and port) always reaches the same worker,
     * and the clients are spread over both. */
    int fds[CLIENTS];
    pid_t first[CLIENTS];
    int on_worker1 = 0;
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
        first[i] = udp_ask(fds[i]);
        assert_true(contains(workers, 2, first[i]));
        on_worker1 += first[i] == workers[1];
        for (int k = 0; k < 3; k++)
            assert_int_equal(udp_ask(fds[i]), first[i]);
    }
    assert_true(on_worker1 > 0 && on_worker1 < CLIENTS);

    /* Worker 1 dies: its clients' datagrams wait on its socket and are
     * answered by the replacement; the others stay where they were. */
    assert_int_equal(kill(workers[1], SIGKILL), 0);
    for (int i = 0; i < 5000 && !gone(workers[1]); i++)
        test_sleep_ms(1);
    assert_true(gone(workers[1]));
    pid_t replacement = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pid_t pid = udp_ask(fds[i]);
        if (first[i] == workers[0]) {
            assert_int_equal(pid, workers[0]);
        } else {
            assert_true(pid != workers[0] && pid != workers[1] && pid > 0);
            if (replacement)
                assert_int_equal(pid, replacement);
            replacement = pid;
        }
        close(fds[i]);
    }
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

static bool listeners_on_port(void *arg)
{
    const int *expect = arg; /* {port, count} */
    unsigned long inodes[8];
    return sockets_on_port("tcp", expect[0], "0A", inodes, 8) == expect[1];
}

static void test_reuseport_sockets_live_exactly_as_long_as_serving(void **state)
{
    (void)state;
    int fds_at_start = test_count_open_fds();
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.workers = 3, .reuseport = true};
    cfg.strategy_options = &prefork;
    test_server t;
    assert_int_equal(ss_server_new(&t.srv, &ss_tcp, &ss_prefork, "127.0.0.1:0",
                                   &pid_handler, &cfg),
                     0);
    int port = ss_server_port(t.srv);
    int fds_before_serving = test_count_open_fds();
    int one[2] = {port, 1}, three[2] = {port, 3};
    assert_true(listeners_on_port(one));

    for (int run = 0; run < 2; run++) { /* serving again opens them again */
        assert_int_equal(test_server_run(&t, 0.05), 0);
        int workers = 3;
        assert_true(test_wait_for(children_exactly, &workers, 10.0));
        assert_true(listeners_on_port(three));
        (void)served_by(test_connect(t.srv));
        assert_true(test_server_join_within(&t, 15.0));
        assert_int_equal(t.serve_rc, 0);
        assert_int_equal(test_child_pids(NULL, 0), 0);
        /* Serving is over: the extra sockets are closed, the server's
         * own stays, and no descriptor is left behind. */
        assert_true(listeners_on_port(one));
        assert_int_equal(test_count_open_fds(), fds_before_serving);
    }
    ss_server_free(t.srv);
    assert_int_equal(test_count_open_fds(), fds_at_start);
}

static void test_reuseport_is_refused_for_unix_sockets(void **state)
{
    (void)state;
    int fds = test_count_open_fds();
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.reuseport = true};
    cfg.strategy_options = &prefork;
    char address[128];
    ss_server *srv = NULL;
    assert_int_equal(
        ss_server_new(&srv, &ss_unix_stream, &ss_prefork,
                      test_abstract_address(address, sizeof address, "rp"),
                      &pid_handler, &cfg),
        -EOPNOTSUPP);
    assert_null(srv);
    assert_int_equal(test_count_open_fds(), fds);
    /* Other strategies ignore it, as every prefork field. */
    assert_int_equal(ss_server_new(&srv, &ss_unix_stream, &ss_sync, address,
                                   &pid_handler, &cfg),
                     0);
    ss_server_free(srv);
}

/* A socket bound by someone else (ss_server_new_fd) can take other
 * sockets into its group only if it has SO_REUSEPORT itself. */
static int bound_socket(bool reuseport, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int on = 1;
    if (reuseport)
        assert_int_equal(
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void test_reuseport_on_a_passed_socket_needs_so_reuseport(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    ss_prefork_options prefork = {.workers = 2, .reuseport = true};
    cfg.strategy_options = &prefork;
    test_log log;
    test_log_init(&log);
    cfg.log = test_log_hook;
    cfg.user = &log;

    int port;
    int fd = bound_socket(false, &port);
    ss_server *srv;
    assert_int_equal(
        ss_server_new_fd(&srv, &ss_tcp, &ss_prefork, fd, &pid_handler, &cfg),
        0);
    int fds = test_count_open_fds();
    assert_int_equal(ss_serve_forever(srv, 0.05), -EINVAL);
    assert_true(log_has(&log, "lacks SO_REUSEPORT"));
    assert_int_equal(test_child_pids(NULL, 0), 0);
    assert_int_equal(test_count_open_fds(), fds);
    ss_server_free(srv);

    fd = bound_socket(true, &port);
    test_server t;
    assert_int_equal(
        ss_server_new_fd(&t.srv, &ss_tcp, &ss_prefork, fd, &pid_handler, &cfg),
        0);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    int two = 2;
    assert_true(test_wait_for(children_exactly, &two, 10.0));
    int expect[2] = {port, 2};
    assert_true(listeners_on_port(expect));
    for (int i = 0; i < 10; i++)
        assert_true(served_by(connect_port(&port)) > 0);
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_worker_is_replaced_and_serving_goes_on),
        cmocka_unit_test(test_shutdown_stops_and_reaps_every_worker),
        cmocka_unit_test(test_shutdown_lets_running_request_finish),
        cmocka_unit_test(test_worker_busy_past_graceful_timeout_is_killed),
        cmocka_unit_test(test_two_prefork_servers_stop_independently),
        cmocka_unit_test(test_workers_exit_when_supervisor_is_killed),
        cmocka_unit_test(test_reuseport_gives_each_worker_a_listening_socket),
        cmocka_unit_test(
            test_reuseport_connections_to_a_killed_worker_wait_for_its_replacement),
        cmocka_unit_test(test_reuseport_udp_keeps_each_client_on_its_worker),
        cmocka_unit_test(
            test_reuseport_sockets_live_exactly_as_long_as_serving),
        cmocka_unit_test(test_reuseport_is_refused_for_unix_sockets),
        cmocka_unit_test(test_reuseport_on_a_passed_socket_needs_so_reuseport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
