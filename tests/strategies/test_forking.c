/*
 * test_forking.c — ss_forking (Python's ForkingMixIn): a child process per
 * request.
 *
 * What is proved here, over real sockets:
 *  - no zombies: with block_on_close, ss_server_close() returns only when
 *    every child has exited and been reaped, and a busy server reaps as it
 *    goes (active children drop to none while it keeps serving);
 *  - only the server's own children are reaped: a child the program forked
 *    itself keeps its exit status for the program's waitpid() (the
 *    waitpid(-1) bug CPython fixed);
 *  - max_children bounds the children alive at once (counted in shared
 *    memory by the children themselves), and every request is still
 *    served;
 *  - ss_handle_request()'s timeout reaps finished children, as Python's
 *    handle_timeout does;
 *  - the parent's unwritten stdio is not written a second time by a child;
 *  - a thousand connections leave no descriptor and no child behind.
 *
 * Handlers run in child processes: they never call cmocka, they report
 * through shared memory or descriptors and the parent asserts. Clients end
 * their side with shutdown(SHUT_WR): a child holds copies of this
 * process's client sockets, so close() alone would not be seen.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bool no_children(void *arg)
{
    (void)arg;
    return test_child_pids(NULL, 0) == 0;
}

static bool fds_at_most(void *arg)
{
    return test_count_open_fds() <= *(int *)arg;
}

static bool children_at_least(void *arg)
{
    return test_child_pids(NULL, 0) >= *(int *)arg;
}

/* Send a line, half-close, expect the line back and then EOF. */
static void echo_to_eof(ss_server *srv, const char *line)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    size_t n = strlen(line);
    test_send_all(fd, line, n);
    shutdown(fd, SHUT_WR);
    char buf[64];
    assert_int_equal(test_recv_all(fd, buf, sizeof buf), n);
    assert_memory_equal(buf, line, n);
    close(fd);
}

/* ---- Counting children in shared memory -------------------------------- */

/* Lives in a MAP_SHARED mapping made before the server, so every child
 * updates the same counters (lock-free atomics work across processes). */
typedef struct shared_counts {
    atomic_int running;
    atomic_int max_running;
    atomic_int served;
} shared_counts;

static shared_counts *shared;

static void map_shared(void)
{
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    memset(shared, 0, sizeof *shared);
}

static void unmap_shared(void)
{
    munmap(shared, sizeof *shared);
    shared = NULL;
}

/* Echo one line, holding the request for hold_ms while counted as
 * running. */
static int hold_ms = 0;

static int counted_handle(ss_request *req)
{
    int now = atomic_fetch_add(&shared->running, 1) + 1;
    int seen = atomic_load(&shared->max_running);
    while (now > seen &&
           !atomic_compare_exchange_weak(&shared->max_running, &seen, now))
        ;
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof line);
    test_sleep_ms(hold_ms);
    atomic_fetch_sub(&shared->running, 1);
    atomic_fetch_add(&shared->served, 1);
    if (n <= 0)
        return -1;
    return ss_write_all(req, line, (size_t)n) == n ? 0 : -1;
}

static const ss_handler_class counted_handler = {.handle = counted_handle};

/* ---- max_children ------------------------------------------------------ */

static void test_max_children_bounds_live_children_and_serves_all(void **state)
{
    (void)state;
    map_shared();
    hold_ms = 300;
    ss_config cfg;
    ss_config_init(&cfg);
    ss_forking_options forking = {.max_children = 2};
    cfg.strategy_options = &forking;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_forking,
                                            "127.0.0.1:0", &counted_handler,
                                            &cfg, 0.05),
                     0);
    enum { N = 5 };
    int fds[N];
    double start = test_now();
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
        test_send_all(fds[i], "hi\n", 3);
    }
    for (int i = 0; i < N; i++) {
        char reply[3];
        test_recv_exact(fds[i], reply, sizeof reply);
        assert_memory_equal(reply, "hi\n", 3);
        close(fds[i]);
    }
    double elapsed = test_now() - start;
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(atomic_load(&shared->served), N);
    /* Two ran side by side; a third never started before one ended. */
    assert_int_equal(atomic_load(&shared->max_running), 2);
    /* Five requests of 300 ms, two at a time: at least three rounds. */
    assert_true(elapsed >= 0.85);
    assert_int_equal(test_child_pids(NULL, 0), 0);
    unmap_shared();
}

/* ---- Reaping ----------------------------------------------------------- */

static void test_close_waits_for_children_and_leaves_no_zombie(void **state)
{
    (void)state;
    map_shared();
    hold_ms = 300; /* children still running when close is called */
    ss_config cfg;
    ss_config_init(&cfg); /* block_on_close is the default */
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_forking,
                                            "127.0.0.1:0", &counted_handler,
                                            &cfg, 0.05),
                     0);
    enum { N = 3 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
        test_send_all(fds[i], "hi\n", 3);
    }
    int n = N;
    assert_true(test_wait_for(children_at_least, &n, 10.0));
    assert_true(test_server_join_within(&t, 10.0));
    ss_server_close(t.srv);
    /* Returned only after the three handlers ended, and reaped them all:
     * no child of ours is left, not even a zombie. */
    assert_int_equal(atomic_load(&shared->served), N);
    assert_int_equal(test_child_pids(NULL, 0), 0);
    ss_server_free(t.srv);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    unmap_shared();
}

static void test_close_without_block_on_close_does_not_wait(void **state)
{
    (void)state;
    map_shared();
    hold_ms = 500;
    ss_config cfg;
    ss_config_init(&cfg);
    ss_forking_options forking = {.no_block_on_close = true};
    cfg.strategy_options = &forking;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_forking,
                                            "127.0.0.1:0", &counted_handler,
                                            &cfg, 0.05),
                     0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_send_all(fd, "hi\n", 3);
    int one = 1;
    assert_true(test_wait_for(children_at_least, &one, 10.0));
    assert_true(test_server_join_within(&t, 10.0));
    double start = test_now();
    ss_server_free(t.srv);
    assert_true(test_now() - start < 0.4);
    assert_int_equal(atomic_load(&shared->served), 0); /* still running */

    /* The child is not lost: it answers, and being this process's child
     * its exit status is ours to collect. */
    char reply[3];
    test_recv_exact(fd, reply, sizeof reply);
    close(fd);
    pid_t pids[4];
    int count = test_child_pids(pids, 4);
    assert_int_equal(count, 1);
    int status;
    assert_int_equal(waitpid(pids[0], &status, 0), pids[0]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unmap_shared();
}

static void test_busy_server_reaps_children_while_serving(void **state)
{
    (void)state;
    int fds_before = test_count_open_fds();
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_forking,
                                            "127.0.0.1:0", &test_echo_handler,
                                            NULL, 0.05),
                     0);
    int fds_idle = test_count_open_fds(); /* the server's own */
    double start = test_now();
    for (int i = 0; i < 1000; i++)
        echo_to_eof(t.srv, "x\n");
    print_message("fork: 1000 connections in %.2f s\n", test_now() - start);
    /* Still serving: finished children are reaped by the loop itself. */
    assert_true(test_wait_for(no_children, NULL, 5.0));
    /* Nothing per connection or per child is left open. */
    assert_true(test_wait_for(fds_at_most, &fds_idle, 5.0));
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(test_count_open_fds(), fds_before);
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

static bool children_exactly(void *arg)
{
    return test_child_pids(NULL, 0) == *(int *)arg;
}

/* The loop asks the children's pidfds, 64 to a poll(), whether any has
 * exited before it reaps: a child that exits while the first 64 are all
 * still running must be found in the second poll(). */
static void test_a_child_past_the_first_64_is_reaped(void **state)
{
    (void)state;
    enum { RUNNING = 64, ENDING = 6, N = RUNNING + ENDING };
    ss_config cfg;
    ss_config_init(&cfg);
    ss_forking_options forking = {.max_children = N + 10};
    cfg.strategy_options = &forking;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_forking,
                                            "127.0.0.1:0", &test_echo_handler,
                                            &cfg, 0.05),
                     0);
    /* One at a time, each answered before the next: the children are
     * tracked in the order of these connections. */
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
        test_expect_echo(fds[i], "x");
    }
    int all = N, running = RUNNING;
    bool started = test_wait_for(children_exactly, &all, 10.0);
    /* The last six end; the first 64 go on running. */
    for (int i = RUNNING; i < N; i++) {
        shutdown(fds[i], SHUT_WR);
        char buf[8];
        (void)test_recv_all(fds[i], buf, sizeof buf);
        close(fds[i]);
    }
    bool reaped = started && test_wait_for(children_exactly, &running, 10.0);
    /* Asserted only after every connection is ended: each child holds
     * copies of the earlier client sockets, so one left open would keep
     * children (and this program's output pipe) alive after a failure. */
    for (int i = 0; i < RUNNING; i++) {
        shutdown(fds[i], SHUT_WR);
        close(fds[i]);
    }
    assert_true(started);
    assert_true(reaped);
    assert_true(test_wait_for(no_children, NULL, 10.0));
    assert_true(test_server_stop_within(&t, 10.0));
}

/* ss_handle_request() with a timeout reaps on timeout (Python's
 * ForkingMixIn.handle_timeout collects children). */
static void test_handle_request_timeout_reaps_finished_children(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.timeout = 0.05;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_forking, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, "x\n", 2);
    shutdown(fd, SHUT_WR);
    assert_int_equal(ss_handle_request(srv), 0);
    char buf[8];
    assert_int_equal(test_recv_all(fd, buf, sizeof buf), 2);
    close(fd);
    /* The child has answered and is exiting: a timed-out
     * ss_handle_request() collects it. Bounded retries, since the exit may
     * lag the answer a little. */
    for (int i = 0; i < 100 && test_child_pids(NULL, 0) > 0; i++)
        assert_int_equal(ss_handle_request(srv), -ETIMEDOUT);
    assert_int_equal(test_child_pids(NULL, 0), 0);
    ss_server_free(srv);
}

/* ---- Foreign children -------------------------------------------------- */

/* The program's own child, already exited (a zombie waiting for us), must
 * keep its exit status through everything the server does: serving,
 * service_actions, waiting at max_children, closing. */
static void test_program_own_child_is_never_reaped_by_server(void **state)
{
    (void)state;
    pid_t own = fork();
    assert_true(own >= 0);
    if (own == 0)
        _exit(7);
    /* Wait until it has exited (without reaping it ourselves). */
    for (int i = 0; i < 5000 && test_process_running(own); i++)
        test_sleep_ms(1);
    assert_false(test_process_running(own));

    map_shared();
    hold_ms = 50;
    ss_config cfg;
    ss_config_init(&cfg);
    /* the loop blocks waiting for a child to exit */
    ss_forking_options forking = {.max_children = 1};
    cfg.strategy_options = &forking;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_forking,
                                            "127.0.0.1:0", &counted_handler,
                                            &cfg, 0.01),
                     0);
    enum { N = 4 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect(t.srv);
        assert_true(fds[i] >= 0);
        test_send_all(fds[i], "hi\n", 3);
    }
    for (int i = 0; i < N; i++) {
        char reply[3];
        test_recv_exact(fds[i], reply, sizeof reply);
        close(fds[i]);
    }
    test_sleep_ms(100); /* many service_actions rounds at 10 ms */
    assert_true(test_server_stop_within(&t, 10.0));
    assert_int_equal(atomic_load(&shared->served), N);

    int status = 0;
    assert_int_equal(waitpid(own, &status, WNOHANG), own);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
    assert_int_equal(test_child_pids(NULL, 0), 0);
    unmap_shared();
}

/* ---- stdio ------------------------------------------------------------- */

/* The parent's buffered, unwritten output must not be copied into each
 * child and written again when the child flushes on its way out. */
static void test_parent_unflushed_stdio_is_written_once(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    FILE *out = fdopen(p[1], "w");
    assert_non_null(out);
    setvbuf(out, NULL, _IOFBF, 4096);
    fputs("written once\n", out); /* sits in the buffer */

    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_forking,
                                            "127.0.0.1:0", &test_echo_handler,
                                            NULL, 0.05),
                     0);
    echo_to_eof(t.srv, "x\n");
    echo_to_eof(t.srv, "y\n");
    assert_true(test_server_stop_within(&t, 10.0));
    fclose(out); /* flushes whatever is still ours to write */

    char buf[256];
    ssize_t n, total = 0;
    while ((n = read(p[0], buf + total, sizeof buf - 1 - (size_t)total)) > 0)
        total += n;
    buf[total] = '\0';
    close(p[0]);
    assert_string_equal(buf, "written once\n");
}

/* ---- a wait cancelled by the parent's shutdown is no error ----------- */

/* Report lines, from whichever process, go down a pipe to the test. */
static void report_to_pipe(void *user, const char *line)
{
    int fd = *(const int *)user;
    ssize_t ignored = write(fd, line, strlen(line));
    ignored = write(fd, "\n", 1);
    (void)ignored;
}

typedef enum { WAIT_SLEEP, WAIT_FD, WAIT_INPUT_OR_FD } wait_kind;
static wait_kind sleepy_wait;

/* Says it is about to wait, then waits for something that never comes
 * (or 30 s): only the shutdown can end it, with -ECANCELED. */
static int sleepy_handle(ss_request *req)
{
    ssize_t n = ss_write_all(req, "w\n", 2);
    if (n < 0)
        return (int)n;
    int never[2];
    if (pipe2(never, O_CLOEXEC) < 0)
        return -errno;
    int rc;
    if (sleepy_wait == WAIT_SLEEP)
        rc = ss_sleep(req, 30);
    else if (sleepy_wait == WAIT_FD)
        rc = ss_wait_fd(req, never[0], POLLIN, 30);
    else
        rc = ss_wait_input_or_fd(req, never[0], POLLIN, 30);
    close(never[0]);
    close(never[1]);
    return rc;
}

static const ss_handler_class sleepy_handler = {.handle = sleepy_handle};

/* Issue: under ss_forking and ss_prefork an ss_sleep (or ss_wait_fd)
 * ended by the parent's shutdown was reported as "error processing
 * request … Operation canceled", where reads were not. */
static void cancelled_wait_in_child_is_not_reported(const ss_strategy *strategy,
                                                    wait_kind kind)
{
    sleepy_wait = kind;
    int reports[2];
    assert_int_equal(pipe2(reports, O_CLOEXEC | O_NONBLOCK), 0);
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.log = report_to_pipe;
    cfg.user = &reports[1];
    ss_prefork_options prefork = {.workers = 1};
    if (strategy == &ss_prefork)
        cfg.strategy_options = &prefork;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, strategy,
                                            "127.0.0.1:0", &sleepy_handler,
                                            &cfg, 0.05),
                     0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    char buf[2];
    assert_int_equal(test_recv_all(fd, buf, 2), 2); /* the child waits */
    double start = test_now();
    test_server_stop(&t); /* shutdown, join, close (waits for the child) */
    assert_true(test_now() - start < 5.0);
    close(fd);
    char line[512];
    ssize_t got = read(reports[0], line, sizeof line - 1);
    if (got > 0) {
        line[got] = '\0';
        fail_msg("reported: %s", line);
    }
    close(reports[0]);
    close(reports[1]);
}

static void test_cancelled_sleep_in_forked_child_is_not_an_error(void **state)
{
    (void)state;
    cancelled_wait_in_child_is_not_reported(&ss_forking, WAIT_SLEEP);
    cancelled_wait_in_child_is_not_reported(&ss_forking, WAIT_FD);
    cancelled_wait_in_child_is_not_reported(&ss_forking, WAIT_INPUT_OR_FD);
}

static void test_cancelled_sleep_in_prefork_worker_is_not_an_error(void **state)
{
    (void)state;
    cancelled_wait_in_child_is_not_reported(&ss_prefork, WAIT_SLEEP);
    cancelled_wait_in_child_is_not_reported(&ss_prefork, WAIT_FD);
    cancelled_wait_in_child_is_not_reported(&ss_prefork, WAIT_INPUT_OR_FD);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_children_bounds_live_children_and_serves_all),
        cmocka_unit_test(test_close_waits_for_children_and_leaves_no_zombie),
        cmocka_unit_test(test_close_without_block_on_close_does_not_wait),
        cmocka_unit_test(test_busy_server_reaps_children_while_serving),
        cmocka_unit_test(test_a_child_past_the_first_64_is_reaped),
        cmocka_unit_test(test_handle_request_timeout_reaps_finished_children),
        cmocka_unit_test(test_program_own_child_is_never_reaped_by_server),
        cmocka_unit_test(test_parent_unflushed_stdio_is_written_once),
        cmocka_unit_test(test_cancelled_sleep_in_forked_child_is_not_an_error),
        cmocka_unit_test(
            test_cancelled_sleep_in_prefork_worker_is_not_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
