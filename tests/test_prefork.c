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
 *  - two prefork servers in one process stop independently.
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

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
    sleep_ms(*(const int *)ss_request_user(req));
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
    cfg.workers = workers;
    cfg.graceful_timeout = graceful_timeout;
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
    cfg.workers = 1;
    cfg.graceful_timeout = graceful_timeout;
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
        sleep_ms(1);
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
    sleep_ms(200);
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
    cfg.workers = 1;
    cfg.graceful_timeout = 5.0;
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
    cfg.workers = 2;
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
            sleep_ms(1);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
