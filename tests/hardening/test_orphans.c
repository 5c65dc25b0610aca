/*
 * test_orphans.c — no orphan and no zombie when a forking or prefork
 * server stops, whether it stops normally (SIGTERM through
 * ss_shutdown_on_signals) or is killed outright (SIGKILL).
 *
 * Each server runs in a process of its own that this test forks (the
 * "server process"), and this test makes itself a child subreaper
 * (PR_SET_CHILD_SUBREAPER): every process the server leaves behind when
 * it dies is re-parented to this test rather than to init. So "nothing is
 * left" is exact: once the server process has been reaped, this process
 * must have no child at all — no worker still running (an orphan) and no
 * exited one that nobody reaped (a zombie).
 *
 * What is proved:
 *  - prefork, supervisor SIGKILLed: every worker exits within 5 s
 *    (PR_SET_PDEATHSIG → SIGTERM), with a request in progress too, for
 *    each worker strategy (sync, threading, thread pool);
 *  - prefork with ss_shutdown_on_signals(): that SIGTERM is a graceful
 *    stop, so an answer in progress is finished before the worker exits;
 *  - forking, parent SIGKILLed: a child finishes the request it is serving
 *    (the client gets the whole answer) and then exits — it does not die
 *    with the parent (Python's ForkingMixIn children do not either). A
 *    child whose client is idle therefore lives as long as that client's
 *    request does: until the client ends it, or the handler's timeout
 *    ends the wait;
 *  - a normal stop (SIGTERM) with requests in progress: the server process
 *    exits 0 having reaped every child; nothing is re-parented to us.
 */
#include "hardening.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATTERN_SEED UINT64_C(0x0DD)
#define HOLD_SIZE (256 * 1024)

/* ---- The server process ---------------------------------------------------
 * Lines: "PID" → "<pid>\n"; "HOLD ms" → half of HOLD_SIZE pattern bytes,
 * ms milliseconds of work, the other half. */

static int send_pattern(ss_request *req, size_t from, size_t to)
{
    char chunk[16384];
    for (size_t pos = from; pos < to;) {
        size_t want = to - pos < sizeof chunk ? to - pos : sizeof chunk;
        hz_pattern(PATTERN_SEED, pos, chunk, want);
        ssize_t w = ss_write_all(req, chunk, want);
        if (w < 0)
            return (int)w;
        pos += want;
    }
    return 0;
}

static int orphan_handle(ss_request *req)
{
    char line[64];
    for (;;) {
        ssize_t n = ss_readline(req, line, sizeof line);
        if (n <= 0)
            return (int)n;
        int ms, rc;
        if (strcmp(line, "PID\n") == 0) {
            rc = ss_writef(req, "%ld\n", (long)getpid()) < 0 ? -EIO : 0;
        } else if (sscanf(line, "HOLD %d", &ms) == 1) {
            rc = send_pattern(req, 0, HOLD_SIZE / 2);
            if (rc == 0)
                ss_run_blocking(req, hz_pause_ms, (void *)(intptr_t)ms);
            if (rc == 0)
                rc = send_pattern(req, HOLD_SIZE / 2, HOLD_SIZE);
        } else {
            rc = -EPROTO;
        }
        if (rc != 0)
            return rc;
    }
}

typedef struct spec {
    const ss_strategy *strategy;
    const ss_strategy *worker_strategy;
    int workers;
    bool signals;           /* ss_shutdown_on_signals() */
    double handler_timeout; /* per-call timeout of the handler */
} spec;

static void quiet_log(void *user, const char *line)
{
    (void)user;
    (void)line;
}

/* In the server process: serve until stopped, then report through the
 * exit status: 0, or 3 if any child of ours is left (even a zombie). No
 * cmocka here. */
static void server_main(const spec *sp, int report_fd)
{
    ss_handler_class handler = {
        .base = &ss_stream_handler,
        .handle = orphan_handle,
        .timeout = sp->handler_timeout,
    };
    ss_config cfg;
    ss_config_init(&cfg);
    test_options opts = {.pool.pool_size = 2,
                         .prefork = {.workers = sp->workers,
                                     .worker_strategy = sp->worker_strategy}};
    test_use_options(&cfg, sp->strategy, &opts);
    cfg.log = quiet_log;
    ss_server *srv;
    int port = -1;
    if (ss_server_new(&srv, &ss_tcp, sp->strategy, "127.0.0.1:0", &handler,
                      &cfg) == 0)
        port = ss_server_port(srv);
    if (port > 0 && sp->signals && ss_shutdown_on_signals(srv) < 0)
        port = -1;
    ssize_t w = write(report_fd, &port, sizeof port);
    close(report_fd);
    if (port < 0 || w != (ssize_t)sizeof port)
        _exit(1);
    int rc = ss_serve_forever(srv, 0.05);
    ss_server_free(srv);
    if (rc < 0)
        _exit(2);
    _exit(hz_children_of(getpid(), NULL, 0) == 0 ? 0 : 3);
}

typedef struct server_process {
    pid_t pid;
    int port;
} server_process;

static void spawn_server(const spec *sp, server_process *out)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    out->pid = fork();
    assert_true(out->pid >= 0);
    if (out->pid == 0) {
        close(p[0]);
        server_main(sp, p[1]);
    }
    close(p[1]);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    out->port = -1;
    int ready;
    do
        ready = poll(&pfd, 1, 10000);
    while (ready < 0 && errno == EINTR);
    if (ready == 1 &&
        read(p[0], &out->port, sizeof out->port) != (ssize_t)sizeof out->port)
        out->port = -1;
    close(p[0]);
    if (out->port <= 0) {
        kill(out->pid, SIGKILL);
        waitpid(out->pid, NULL, 0);
        fail_msg("the server process did not start");
    }
}

/* ---- Descendants ----------------------------------------------------------
 */

/* Kill (by pid) and reap every child of this process: after a failed
 * assertion nothing may outlive the test. */
static void kill_all_children(void)
{
    pid_t pids[256];
    int n = hz_children_of(getpid(), pids, 256);
    for (int i = 0; i < n && i < 256; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n && i < 256; i++)
        waitpid(pids[i], NULL, 0);
}

/* Reap every child that has exited; true once none is left. */
static bool no_children_left(void *arg)
{
    (void)arg;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    return hz_children_of(getpid(), NULL, 0) == 0;
}

static void expect_nothing_left_within(double seconds, const char *what)
{
    if (test_wait_for(no_children_left, NULL, seconds))
        return;
    pid_t pids[16];
    int n = hz_children_of(getpid(), pids, 16);
    char list[256] = "";
    for (int i = 0, len = 0; i < n && i < 16; i++)
        len += snprintf(list + len, sizeof list - (size_t)len, " %ld(%c)",
                        (long)pids[i], hz_process_state(pids[i]));
    kill_all_children();
    fail_msg("%s: %d process(es) left after %.1f s:%s", what, n, seconds, list);
}

/* ---- Clients ------------------------------------------------------------- */

/* Connect and learn the pid of the process serving the connection, which
 * stays open. */
static pid_t serving_pid(int port, int *fd_out)
{
    int fd = hz_connect_port(port, 0);
    assert_true(fd >= 0);
    double deadline = test_now() + 10.0;
    assert_int_equal(hz_send_all(fd, "PID\n", 4, deadline), 0);
    char line[32];
    size_t got = 0;
    while (got < sizeof line - 1) {
        ssize_t r = hz_recv(fd, line + got, 1, deadline);
        if (r <= 0)
            fail_msg("no pid from the server (%s)",
                     r < 0 ? ss_strerror((int)r) : "EOF");
        if (line[got++] == '\n')
            break;
    }
    line[got] = '\0';
    *fd_out = fd;
    return (pid_t)strtol(line, NULL, 10);
}

/* Ask for a held answer and read its first half. */
static void start_hold(int fd, int ms)
{
    char request[32];
    int len = snprintf(request, sizeof request, "HOLD %d\n", ms);
    double deadline = test_now() + 10.0;
    assert_int_equal(hz_send_all(fd, request, (size_t)len, deadline), 0);
    static char half[HOLD_SIZE / 2];
    int end;
    assert_int_equal(hz_recv_exact(fd, half, sizeof half, deadline, &end),
                     sizeof half);
    assert_true(hz_pattern_mismatch(PATTERN_SEED, 0, half, sizeof half) < 0);
}

/* The rest of a held answer: all of it, right. */
static void finish_hold(int fd)
{
    static char rest[HOLD_SIZE / 2];
    int end;
    size_t got = hz_recv_exact(fd, rest, sizeof rest, test_now() + 10.0, &end);
    if (got != sizeof rest)
        fail_msg("the held answer stopped after %zu of its last %zu bytes "
                 "(%s)",
                 got, sizeof rest, ss_strerror(end));
    assert_true(hz_pattern_mismatch(PATTERN_SEED, HOLD_SIZE / 2, rest,
                                    sizeof rest) < 0);
}

static bool count_is(void *arg)
{
    const int *want = arg; /* {pid, count} */
    return hz_children_of((pid_t)want[0], NULL, 0) == want[1];
}

static void kill_server(server_process *sp)
{
    assert_int_equal(kill(sp->pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(sp->pid, &status, 0), sp->pid);
    assert_true(WIFSIGNALED(status));
}

/* ---- Prefork: the supervisor is killed ------------------------------------
 */

static void run_prefork_killed(const ss_strategy *worker_strategy)
{
    if (TEST_UNDER_TSAN && worker_strategy != &ss_sync) {
        print_message("skipped under ThreadSanitizer: threads started in a "
                      "forked worker\n");
        skip();
    }
    spec sp = {.strategy = &ss_prefork,
               .worker_strategy = worker_strategy,
               .workers = 2};
    server_process server;
    spawn_server(&sp, &server);
    int want[2] = {server.pid, 2};
    if (!test_wait_for(count_is, want, 10.0)) {
        kill_all_children();
        fail_msg("the supervisor did not start 2 workers");
    }
    /* A request in progress in a worker when the supervisor dies. */
    int held;
    pid_t worker = serving_pid(server.port, &held);
    start_hold(held, 2000);
    kill_server(&server);
    expect_nothing_left_within(5.0, "prefork after SIGKILL of the supervisor");
    assert_false(hz_process_exists(worker));
    /* The worker was killed mid-answer: the rest never comes. */
    char byte;
    int end;
    assert_int_equal(hz_recv_exact(held, &byte, 1, test_now() + 5.0, &end), 0);
    assert_true(end == SS_EOF || end == -ECONNRESET);
    close(held);
}

static void
test_prefork_sync_workers_exit_when_supervisor_is_killed(void **state)
{
    (void)state;
    run_prefork_killed(&ss_sync);
}

static void
test_prefork_thread_workers_exit_when_supervisor_is_killed(void **state)
{
    (void)state;
    run_prefork_killed(&ss_threading);
}

static void
test_prefork_pool_workers_exit_when_supervisor_is_killed(void **state)
{
    (void)state;
    run_prefork_killed(&ss_thread_pool);
}

/* With ss_shutdown_on_signals() the workers' SIGTERM from the kernel is a
 * graceful stop: the answer in progress is finished, then they exit. */
static void
test_prefork_workers_finish_answers_when_supervisor_is_killed(void **state)
{
    (void)state;
    spec sp = {.strategy = &ss_prefork,
               .worker_strategy = &ss_sync,
               .workers = 2,
               .signals = true};
    server_process server;
    spawn_server(&sp, &server);
    int held;
    serving_pid(server.port, &held);
    start_hold(held, 300);
    kill_server(&server);
    finish_hold(held);
    close(held);
    expect_nothing_left_within(5.0, "prefork (graceful) after SIGKILL");
}

/* ---- Forking: the parent is killed ----------------------------------------
 */

static void
test_forking_child_finishes_its_answer_when_parent_is_killed(void **state)
{
    (void)state;
    spec sp = {.strategy = &ss_forking};
    server_process server;
    spawn_server(&sp, &server);
    int held;
    pid_t child = serving_pid(server.port, &held);
    start_hold(held, 300);
    kill_server(&server);
    finish_hold(held); /* the whole answer, after the parent died */
    assert_true(hz_process_exists(child));
    /* The client ends the request; then the child leaves. */
    shutdown(held, SHUT_WR);
    char byte;
    int end;
    hz_recv_exact(held, &byte, 1, test_now() + 5.0, &end);
    assert_int_equal(end, SS_EOF);
    close(held);
    expect_nothing_left_within(5.0, "forking child after its request");
}

/* A child whose client is idle is still serving that request: it lives on
 * after the parent's death until the request ends. */
static void
test_forking_child_outlives_killed_parent_until_request_ends(void **state)
{
    (void)state;
    spec sp = {.strategy = &ss_forking};
    server_process server;
    spawn_server(&sp, &server);
    int fd;
    pid_t child = serving_pid(server.port, &fd);
    kill_server(&server);
    test_sleep(0.5);
    assert_true(hz_process_exists(child) && hz_process_state(child) != 'Z');
    /* Still serving: a request gets its answer. */
    assert_int_equal(hz_send_all(fd, "PID\n", 4, test_now() + 5.0), 0);
    char line[32];
    int end;
    size_t got = hz_recv_exact(fd, line, 1, test_now() + 5.0, &end);
    assert_int_equal(got, 1);
    close(fd); /* the end of its request: the child exits */
    expect_nothing_left_within(5.0, "forking child after its client left");
}

/* The handler's timeout bounds it: an idle client is dropped after it, and
 * the orphaned child exits by itself. */
static void
test_forking_orphan_with_idle_client_exits_after_handler_timeout(void **state)
{
    (void)state;
    spec sp = {.strategy = &ss_forking, .handler_timeout = 0.5};
    server_process server;
    spawn_server(&sp, &server);
    int fd;
    serving_pid(server.port, &fd);
    kill_server(&server);
    expect_nothing_left_within(0.5 + 3.0, "orphaned forking child, idle "
                                          "client, handler timeout 0.5 s");
    close(fd);
}

/* ---- Normal stop ----------------------------------------------------------
 */

static void run_normal_stop(const spec *sp)
{
    server_process server;
    spawn_server(sp, &server);
    if (sp->workers > 0) {
        int want[2] = {server.pid, sp->workers};
        if (!test_wait_for(count_is, want, 10.0)) {
            kill_all_children();
            fail_msg("the supervisor did not start its workers");
        }
    }
    /* Two connections idle, one answer in progress. */
    int idle[2], held;
    serving_pid(server.port, &idle[0]);
    serving_pid(server.port, &held);
    start_hold(held, 300);
    if (sp->workers == 0)
        serving_pid(server.port, &idle[1]);
    else
        idle[1] = -1; /* prefork sync workers: both are busy already */
    assert_int_equal(kill(server.pid, SIGTERM), 0);
    finish_hold(held);
    int status = test_wait_exit(server.pid, 10.0);
    if (status == -1) {
        kill_all_children();
        fail_msg("the server process did not stop within 10 s of SIGTERM");
    }
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 3)
        fail_msg("the server process still had children after "
                 "ss_server_free()");
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Nothing re-parented to us either. */
    expect_nothing_left_within(0.5, "after a normal stop");
    close(held);
    close(idle[0]);
    if (idle[1] >= 0)
        close(idle[1]);
}

static void test_forking_normal_stop_leaves_no_zombie_or_orphan(void **state)
{
    (void)state;
    spec sp = {.strategy = &ss_forking, .signals = true};
    run_normal_stop(&sp);
}

static void test_prefork_normal_stop_leaves_no_zombie_or_orphan(void **state)
{
    (void)state;
    spec sp = {.strategy = &ss_prefork,
               .worker_strategy = &ss_sync,
               .workers = 2,
               .signals = true};
    run_normal_stop(&sp);
}

static int teardown(void **state)
{
    (void)state;
    kill_all_children();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    /* Orphans of the servers we start come to us, not to init. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_prefork_sync_workers_exit_when_supervisor_is_killed, teardown),
        cmocka_unit_test_teardown(
            test_prefork_thread_workers_exit_when_supervisor_is_killed,
            teardown),
        cmocka_unit_test_teardown(
            test_prefork_pool_workers_exit_when_supervisor_is_killed, teardown),
        cmocka_unit_test_teardown(
            test_prefork_workers_finish_answers_when_supervisor_is_killed,
            teardown),
        cmocka_unit_test_teardown(
            test_forking_child_finishes_its_answer_when_parent_is_killed,
            teardown),
        cmocka_unit_test_teardown(
            test_forking_child_outlives_killed_parent_until_request_ends,
            teardown),
        cmocka_unit_test_teardown(
            test_forking_orphan_with_idle_client_exits_after_handler_timeout,
            teardown),
        cmocka_unit_test_teardown(
            test_forking_normal_stop_leaves_no_zombie_or_orphan, teardown),
        cmocka_unit_test_teardown(
            test_prefork_normal_stop_leaves_no_zombie_or_orphan, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
