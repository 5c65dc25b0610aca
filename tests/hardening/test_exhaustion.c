/*
 * test_exhaustion.c — what a server does when the system says no, proved
 * over real sockets:
 *
 *  - out of descriptors (EMFILE) in accept: no busy loop (CPU time over a
 *    one-second episode stays small), waiting connections are closed at
 *    once while the spare descriptor can take them, or wait in the backlog
 *    when even that is impossible, and service resumes when descriptors
 *    free up — for sync, forking, threading, the pool and coroutines (in
 *    a forked child of this test, whose RLIMIT_NOFILE is lowered, so this
 *    process keeps its own), and for a prefork worker (whose handler
 *    lowers its own limit);
 *  - thread creation, fork, the request allocation and the coroutine stack
 *    failing (the library's test-only fault injection, lib/fault.h): the
 *    request is refused and reported to handle_error with the error, the
 *    next one is served, and nothing leaks; a prefork worker that cannot
 *    be started is tried again.
 *
 * Code that runs in a forked child never calls cmocka (a failed assertion
 * would unwind into a copy of the runner): the EMFILE scenarios check with
 * CHECK(), which prints and _exit()s, and the parent asserts on the exit
 * status. Handlers and handle_error in other processes report through
 * pipes.
 */
#include "support.h"

#include "fault.h"
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* CPU seconds a server may spend during a one-second EMFILE episode. A
 * loop that spins takes most of a core; one that pauses takes almost
 * nothing. Loose on purpose: the machine may be busy. */
#define EPISODE_CPU_LIMIT 0.3

typedef struct strategy_case {
    const char *name;
    const ss_strategy *strategy;
    int pool_size;
    int workers;
    const ss_strategy *worker_strategy;
    int coro_threads;
} strategy_case;

static const strategy_case sync_case = {"sync", &ss_sync, .pool_size = 0};
static const strategy_case fork_case = {"fork", &ss_forking, .pool_size = 0};
static const strategy_case thread_case = {"thread", &ss_threading,
                                          .pool_size = 0};
static const strategy_case pool_case = {"pool", &ss_thread_pool,
                                        .pool_size = 2};
static const strategy_case prefork_case = {"prefork", &ss_prefork, .workers = 1,
                                           .worker_strategy = &ss_sync};
static const strategy_case prefork_thread_case = {
    "prefork+thread", &ss_prefork, .workers = 1,
    .worker_strategy = &ss_threading};
static const strategy_case coro_case = {"coro", &ss_coroutines,
                                        .coro_threads = 2};
/* One scheduler: with two, one may accept into the slot the other just
 * freed by closing the spare, and serve a client the test expects shed.
 * (Two schedulers are covered without a spare, and by the pause.) */
static const strategy_case coro1_case = {"coro1", &ss_coroutines,
                                         .coro_threads = 1};

static void config_for(const strategy_case *s, ss_config *cfg,
                       test_options *opts)
{
    ss_config_init(cfg);
    *opts = (test_options){0};
    opts->pool.pool_size = s->pool_size;
    opts->prefork.workers = s->workers;
    opts->prefork.worker_strategy = s->worker_strategy;
    opts->coro.threads = s->coro_threads;
    opts->prefork.graceful_timeout = 5;
    test_use_options(cfg, s->strategy, opts);
}

/* The echo handler with a timeout: should a test fail half-way, a forked
 * child still serving one of its clients gives up after a while instead of
 * living on (it holds the client's socket too, so it never sees EOF). */
static const ss_handler_class echo_handler = {
    .base = &test_echo_handler,
    .timeout = 30,
};

/* ======================================================================
 * Out of descriptors, in a forked child
 * ==================================================================== */

#define CHECK(cond, what)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            child_fail(__LINE__, #cond, what);                                 \
    } while (0)

static void child_fail(int line, const char *expr, const char *what)
{
    /* dprintf: no descriptor needed, none may be left. */
    dprintf(STDERR_FILENO, "test_exhaustion.c:%d: %s (%s)\n", line, what, expr);
    /* Requests still running in forked children would wait for clients
     * whose sockets they inherited; shutting every socket down ends the
     * connections for all their holders, so nothing outlives us. */
    for (int fd = 3; fd < 4096; fd++)
        shutdown(fd, SHUT_RDWR);
    _exit(2);
}

/* Run scenario(s) in a child process; fail unless it exits 0 in time. */
static void run_in_child(void (*scenario)(const strategy_case *),
                         const strategy_case *s)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        scenario(s);
        _exit(0);
    }
    int status = 0;
    for (double end = test_now() + 60;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            break;
        assert_int_equal(got, 0);
        if (test_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s: the scenario did not finish in 60 s", s->name);
        }
        test_sleep(0.01);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s: the scenario failed (status %#x; see above)", s->name,
                 (unsigned)status);
}

/* The highest descriptor open in this process, found without opening one. */
static int highest_fd(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int highest = -1;
    for (int fd = 0; fd < (int)rl.rlim_cur && fd < 65536; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            highest = fd;
    return highest;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "client socket");
    return fd;
}

static void tcp_connect(int fd, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0, "connect");
}

/* Read what arrives within ms: the count, 0 at EOF, -ETIMEDOUT, or a
 * negative errno (-ECONNRESET). */
static ssize_t read_within(int fd, char *buf, size_t n, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready;
    do
        ready = poll(&pfd, 1, ms);
    while (ready < 0 && errno == EINTR);
    if (ready == 0)
        return -ETIMEDOUT;
    ssize_t got = recv(fd, buf, n, MSG_DONTWAIT);
    return got < 0 ? -errno : got;
}

/* Send text, expect it back within ms, then end the client cleanly. */
static void echo_and_finish(int fd, const char *text, int ms)
{
    size_t n = strlen(text);
    CHECK(send(fd, text, n, MSG_NOSIGNAL) == (ssize_t)n, "send");
    char back[64];
    size_t got = 0;
    while (got < n) {
        ssize_t r = read_within(fd, back + got, n - got, ms);
        CHECK(r > 0, "the echo arrives");
        got += (size_t)r;
    }
    CHECK(memcmp(back, text, n) == 0, "the echo is right");
    shutdown(fd, SHUT_WR);
    CHECK(read_within(fd, back, sizeof back, ms) == 0, "the server ends");
    close(fd);
}

static bool log_mentions(test_log *log, const char *text)
{
    for (int i = 0; i < test_log_count(log) && i < TEST_LOG_MAX_LINES; i++) {
        char line[TEST_LOG_LINE_SIZE];
        test_log_line(log, i, line, sizeof line);
        if (strstr(line, text))
            return true;
    }
    return false;
}

typedef struct child_server {
    test_server t;
    test_log log;
    int port;
} child_server;

static void child_start(child_server *cs, const strategy_case *s)
{
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    test_log_init(&cs->log);
    cfg.log = test_log_hook;
    cfg.user = &cs->log;
    CHECK(test_server_start_with(&cs->t, &ss_tcp, s->strategy, "127.0.0.1:0",
                                 &echo_handler, &cfg, 0.05) == 0,
          "server start");
    cs->port = ss_server_port(cs->t.srv);
    int warm = tcp_socket();
    tcp_connect(warm, cs->port);
    echo_and_finish(warm, "warm\n", 10000);
    /* The server closes its side of a request just after the client sees
     * the end (and a forking server closes the child's pidfd when it
     * reaps it): wait for that, or a slot freed during the episode would
     * let an accept through. */
    double end = test_now() + 10;
    while ((atomic_load(&cs->t.srv->requests_alive) != 0 ||
            test_child_pids(NULL, 0) != 0) &&
           test_now() < end)
        test_sleep(0.005);
    CHECK(atomic_load(&cs->t.srv->requests_alive) == 0 &&
              test_child_pids(NULL, 0) == 0,
          "the warm-up request is gone");
}

#define EPISODE_CLIENTS 3
#define MAX_FILLERS 256

/* The spare descriptor can take waiting connections: they are closed at
 * once, the loop does not spin, and once descriptors are free again a new
 * client is served. */
static void emfile_with_spare_scenario(const strategy_case *s)
{
    int base_fds = test_count_open_fds();
    child_server cs;
    child_start(&cs, s);
    int clients[EPISODE_CLIENTS], late = tcp_socket();
    for (int i = 0; i < EPISODE_CLIENTS; i++)
        clients[i] = tcp_socket();

    /* A limit just above what is open, then fill every slot below it. */
    struct rlimit saved, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0, "getrlimit");
    low = saved;
    low.rlim_cur = (rlim_t)highest_fd() + 8;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit");
    int fillers[MAX_FILLERS], n_fillers = 0, fd;
    while (n_fillers < MAX_FILLERS &&
           (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        fillers[n_fillers++] = fd;
    CHECK(n_fillers < MAX_FILLERS && errno == EMFILE, "the table is full");

    for (int i = 0; i < EPISODE_CLIENTS; i++) {
        tcp_connect(clients[i], cs.port); /* needs no new descriptor */
        CHECK(send(clients[i], "hi\n", 3, MSG_NOSIGNAL) == 3, "send");
    }
    double cpu = cpu_seconds();
    test_sleep(1.0);
    cpu = cpu_seconds() - cpu;
    if (cpu >= EPISODE_CPU_LIMIT)
        dprintf(STDERR_FILENO, "%s: %.3f s of CPU in a 1 s EMFILE episode\n",
                s->name, cpu);
    CHECK(cpu < EPISODE_CPU_LIMIT, "no busy loop while out of descriptors");
    for (int i = 0; i < EPISODE_CLIENTS; i++) {
        char buf[16];
        ssize_t r = read_within(clients[i], buf, sizeof buf, 10000);
        CHECK(r == 0 || r == -ECONNRESET, "a waiting client was shed");
        close(clients[i]);
    }

    for (int i = 0; i < n_fillers; i++)
        close(fillers[i]);
    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0, "restore the limit");
    tcp_connect(late, cs.port);
    echo_and_finish(late, "late\n", 10000);
    CHECK(log_mentions(&cs.log, "cannot accept connections"),
          "the episode was logged");
    CHECK(test_server_stop_within(&cs.t, 15.0), "server stop");
    CHECK(test_count_open_fds() == base_fds, "no descriptor leaked");
}

/* The spare cannot help (the limit is below every free descriptor number,
 * as when another thread takes each freed slot first): the connections
 * wait in the backlog, the loop pauses instead of spinning, and when the
 * limit is raised every waiting client is served. */
static void emfile_without_spare_scenario(const strategy_case *s)
{
    int base_fds = test_count_open_fds();
    child_server cs;
    child_start(&cs, s);
    int clients[EPISODE_CLIENTS], late = tcp_socket();
    for (int i = 0; i < EPISODE_CLIENTS; i++)
        clients[i] = tcp_socket();

    struct rlimit saved, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0, "getrlimit");
    low = saved;
    low.rlim_cur = 3;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit");
    int fillers[3], n_fillers = 0, fd;
    while (n_fillers < 3 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        fillers[n_fillers++] = fd; /* holes below 3, if any */
    CHECK(open("/dev/null", O_RDONLY | O_CLOEXEC) < 0 && errno == EMFILE,
          "no descriptor can be had");

    for (int i = 0; i < EPISODE_CLIENTS; i++) {
        tcp_connect(clients[i], cs.port);
        CHECK(send(clients[i], "hi\n", 3, MSG_NOSIGNAL) == 3, "send");
    }
    double cpu = cpu_seconds();
    test_sleep(1.0);
    cpu = cpu_seconds() - cpu;
    if (cpu >= EPISODE_CPU_LIMIT)
        dprintf(STDERR_FILENO, "%s: %.3f s of CPU in a 1 s EMFILE episode\n",
                s->name, cpu);
    CHECK(cpu < EPISODE_CPU_LIMIT, "no busy loop while out of descriptors");
    for (int i = 0; i < EPISODE_CLIENTS; i++) {
        char buf[16];
        CHECK(read_within(clients[i], buf, sizeof buf, 0) == -ETIMEDOUT,
              "a waiting client is neither answered nor closed");
    }

    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0, "restore the limit");
    for (int i = 0; i < n_fillers; i++)
        close(fillers[i]);
    /* One at a time: a sync server serves them in turn. */
    for (int i = 0; i < EPISODE_CLIENTS; i++) {
        char back[3];
        size_t got = 0;
        while (got < 3) {
            ssize_t r = read_within(clients[i], back + got, 3 - got, 10000);
            CHECK(r > 0, "a client that waited is served");
            got += (size_t)r;
        }
        CHECK(memcmp(back, "hi\n", 3) == 0, "its echo is right");
        shutdown(clients[i], SHUT_WR);
        CHECK(read_within(clients[i], back, sizeof back, 10000) == 0,
              "the server ends");
        close(clients[i]);
    }
    tcp_connect(late, cs.port);
    echo_and_finish(late, "late\n", 10000);
    CHECK(log_mentions(&cs.log, "cannot accept connections"),
          "the episode was logged");
    CHECK(test_server_stop_within(&cs.t, 15.0), "server stop");
    CHECK(test_count_open_fds() == base_fds, "no descriptor leaked");
}

static void
test_emfile_sheds_waiting_connections_without_busy_loop(void **state)
{
    run_in_child(emfile_with_spare_scenario, *state);
}

static void test_emfile_without_spare_pauses_and_resumes(void **state)
{
    run_in_child(emfile_without_spare_scenario, *state);
}

/* ---- prefork: a worker runs out of descriptors ------------------------ */

typedef struct restore_job {
    struct rlimit saved;
} restore_job;

static void *restore_later(void *arg)
{
    restore_job *job = arg;
    test_sleep(1.5);
    setrlimit(RLIMIT_NOFILE, &job->saved);
    free(job);
    return NULL;
}

/* "lower": this worker process drops its descriptor limit to 3 for 1.5 s
 * and answers its pid; anything else is echoed until EOF. */
static int lower_or_echo(ss_request *req)
{
    char line[64];
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : 0;
    if (strcmp(line, "lower\n") == 0) {
        restore_job *job = malloc(sizeof *job);
        if (!job || getrlimit(RLIMIT_NOFILE, &job->saved) < 0) {
            free(job);
            return -ENOMEM;
        }
        struct rlimit low = job->saved;
        low.rlim_cur = 3;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t thread;
        int rc = pthread_create(&thread, &attr, restore_later, job);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            free(job);
            return -rc;
        }
        setrlimit(RLIMIT_NOFILE, &low);
        return ss_writef(req, "%d\n", (int)getpid()) > 0 ? 0 : -1;
    }
    do {
        if (ss_write_all(req, line, (size_t)n) < 0)
            return -1;
    } while ((n = ss_readline(req, line, sizeof line)) > 0);
    return n < 0 ? (int)n : 0;
}

static const ss_handler_class lower_handler = {.handle = lower_or_echo};

/* utime + stime of a process, in seconds, from /proc. */
static double process_cpu_seconds(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* past the command name */
    assert_non_null(p);
    unsigned long utime = 0, stime = 0;
    /* Fields after ')': state(3) ... utime is field 14, stime 15. */
    int matched =
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &utime, &stime);
    assert_int_equal(matched, 2);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static bool workers_started(void *arg)
{
    return test_child_pids(NULL, 0) >= *(int *)arg;
}

static void test_emfile_in_prefork_worker_pauses_and_resumes(void **state)
{
    (void)state;
    if (TEST_UNDER_TSAN) {
        print_message("skipped under ThreadSanitizer: a thread in a forked "
                      "worker\n");
        skip();
    }
    int base_fds = test_count_open_fds();
    ss_config cfg;
    test_options opts = {0};
    config_for(&prefork_case, &cfg, &opts);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_prefork,
                                            "127.0.0.1:0", &lower_handler, &cfg,
                                            0.05),
                     0);
    int one = 1;
    assert_true(test_wait_for(workers_started, &one, 10.0));
    int control = test_connect(t.srv);
    assert_true(control >= 0);
    test_send_all(control, "lower\n", 6);
    char reply[32] = {0};
    size_t got = test_recv_all(control, reply, sizeof reply - 1);
    close(control);
    assert_true(got > 0);
    pid_t worker = (pid_t)atoi(reply);
    assert_true(worker > 0);

    int clients[EPISODE_CLIENTS];
    for (int i = 0; i < EPISODE_CLIENTS; i++) {
        clients[i] = test_connect(t.srv);
        assert_true(clients[i] >= 0);
        test_send_all(clients[i], "hi\n", 3);
    }
    double cpu = process_cpu_seconds(worker);
    test_sleep(1.0);
    cpu = process_cpu_seconds(worker) - cpu;
    print_message("prefork worker: %.3f s of CPU in 1 s out of "
                  "descriptors\n",
                  cpu);
    assert_true(cpu < EPISODE_CPU_LIMIT);
    /* The limit comes back after 1.5 s: each waiting client is served. */
    for (int i = 0; i < EPISODE_CLIENTS; i++) {
        char back[3];
        test_recv_exact(clients[i], back, 3);
        assert_memory_equal(back, "hi\n", 3);
        shutdown(clients[i], SHUT_WR);
        assert_int_equal(test_recv_all(clients[i], back, sizeof back), 0);
        close(clients[i]);
    }
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(test_count_open_fds(), base_fds);
    assert_int_equal(test_child_pids(NULL, 0), 0);
}

/* ======================================================================
 * Injected failures: thread creation, fork, allocation, coroutine stack
 * ==================================================================== */

typedef struct reports {
    int pipe[2];
} reports;

static void report_error(ss_server *srv, ss_request *req, int error)
{
    (void)req;
    reports *r = ss_server_user(srv);
    ssize_t w;
    do
        w = write(r->pipe[1], &error, sizeof error);
    while (w < 0 && errno == EINTR);
}

static int next_report(reports *r, double seconds)
{
    struct pollfd pfd = {.fd = r->pipe[0], .events = POLLIN};
    if (poll(&pfd, 1, (int)(seconds * 1000)) != 1)
        return 0;
    int error = 0;
    assert_int_equal(read(r->pipe[0], &error, sizeof error),
                     (ssize_t)sizeof error);
    return error;
}

typedef struct fault_case {
    const strategy_case *strategy;
    const ss_server_class *kind;
    unsigned fault;
    int error; /* what handle_error must get */
} fault_case;

/* Arm one failure, connect: the request is refused (closed unanswered,
 * or a datagram dropped) and handle_error gets the error; the next
 * request is served; nothing is left behind. */
static void
test_injected_failure_refuses_request_and_keeps_serving(void **state)
{
    const fault_case *fc = *state;
    const strategy_case *s = fc->strategy;
    if (TEST_UNDER_TSAN && s->workers > 0 && s->worker_strategy != &ss_sync) {
        print_message("skipped under ThreadSanitizer: threads started in a "
                      "forked worker\n");
        skip();
    }
    test_baseline b = test_take_baseline(true);
    reports r;
    assert_int_equal(pipe2(r.pipe, O_CLOEXEC | O_NONBLOCK), 0);
    ss_config cfg;
    test_options opts = {0};
    config_for(s, &cfg, &opts);
    cfg.user = &r;
    ss_server_class kind = *fc->kind;
    kind.handle_error = report_error;
    bool datagram = kind.socket_type == SOCK_DGRAM;
    /* A prefork worker inherits the armed failure: arm before it forks.
     * The supervisor itself never allocates requests or starts threads. */
    bool inherited = s->workers > 0;
    if (inherited)
        ss__fault_arm(fc->fault, 0, 1);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &kind, s->strategy,
                                            "127.0.0.1:0", &echo_handler, &cfg,
                                            0.05),
                     0);
    if (inherited) {
        int one = 1;
        assert_true(test_wait_for(workers_started, &one, 10.0));
    } else {
        ss__fault_arm(fc->fault, 0, 1);
    }

    int refused = test_connect(t.srv);
    assert_true(refused >= 0);
    test_send_all(refused, "a\n", 2);
    if (datagram) {
        struct pollfd pfd = {.fd = refused, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 300), 0); /* no reply */
    } else {
        char buf[8];
        ssize_t n = recv(refused, buf, sizeof buf, 0);
        if (n != 0 && !(n < 0 && errno == ECONNRESET))
            fail_msg("expected the refused connection closed, got %zd (%s)", n,
                     n < 0 ? strerror(errno) : "bytes");
    }
    close(refused);
    int error = next_report(&r, 10.0);
    if (error != fc->error)
        fail_msg("handle_error got %d (%s), expected %s", error,
                 error ? ss_strerror(error) : "no report",
                 ss_strerror(fc->error));
    if (!inherited)
        assert_int_equal(ss__fault_failures(fc->fault), 1);

    int served = test_connect(t.srv);
    assert_true(served >= 0);
    if (datagram) {
        test_expect_echo(served, "b\n");
        close(served);
    } else {
        test_expect_echo_to_eof(served, "b\n");
        close(served);
    }
    ss__fault_disarm_all();
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(next_report(&r, 0), 0); /* reported once */
    close(r.pipe[0]);
    close(r.pipe[1]);
    test_expect_baseline(&b);
}

/* The pool cannot start another worker while one is running: the request
 * is not refused but queued, and served once the running worker is free. */
static void
test_pool_worker_start_failure_queues_for_running_worker(void **state)
{
    (void)state;
    test_baseline b = test_take_baseline(true);
    reports r;
    assert_int_equal(pipe2(r.pipe, O_CLOEXEC | O_NONBLOCK), 0);
    ss_config cfg;
    test_options opts = {0};
    config_for(&pool_case, &cfg, &opts);
    cfg.user = &r;
    ss_server_class kind = ss_tcp;
    kind.handle_error = report_error;
    test_server t;
    assert_int_equal(test_server_start_with(&t, &kind, &ss_thread_pool,
                                            "127.0.0.1:0", &echo_handler, &cfg,
                                            0.05),
                     0);
    int first = test_connect(t.srv);
    assert_true(first >= 0);
    test_expect_echo(first, "first\n"); /* one worker, busy with it */
    ss__fault_arm(SS_FAULT_THREAD_CREATE, 0, 1);
    int second = test_connect(t.srv);
    assert_true(second >= 0);
    test_send_all(second, "second\n", 7);
    struct pollfd pfd = {.fd = second, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 300), 0); /* queued, not refused */
    test_expect_echo_to_eof(first, "more\n");
    close(first);
    char back[7];
    test_recv_exact(second, back, sizeof back);
    assert_memory_equal(back, "second\n", 7);
    assert_int_equal(ss__fault_failures(SS_FAULT_THREAD_CREATE), 1);
    ss__fault_disarm_all();
    shutdown(second, SHUT_WR);
    assert_int_equal(test_recv_all(second, back, sizeof back), 0);
    close(second);
    assert_true(test_server_stop_within(&t, 15.0));
    assert_int_equal(next_report(&r, 0), 0); /* nothing refused */
    close(r.pipe[0]);
    close(r.pipe[1]);
    test_expect_baseline(&b);
}

static bool log_has_line(void *arg)
{
    return log_mentions(arg, "cannot start a prefork worker");
}

/* The supervisor cannot fork its worker: it logs, keeps running, tries
 * again a second later, and then serves. */
static void test_prefork_worker_that_cannot_fork_is_tried_again(void **state)
{
    (void)state;
    test_baseline b = test_take_baseline(true);
    test_log log;
    test_log_init(&log);
    ss_config cfg;
    test_options opts = {0};
    config_for(&prefork_case, &cfg, &opts);
    cfg.log = test_log_hook;
    cfg.user = &log;
    ss__fault_arm(SS_FAULT_FORK, 0, 1);
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_prefork,
                                            "127.0.0.1:0", &echo_handler, &cfg,
                                            0.05),
                     0);
    assert_true(test_wait_for(log_has_line, &log, 10.0));
    assert_int_equal(ss__fault_failures(SS_FAULT_FORK), 1);
    int one = 1;
    assert_true(test_wait_for(workers_started, &one, 10.0));
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_expect_echo_to_eof(fd, "after the retry\n");
    close(fd);
    ss__fault_disarm_all();
    assert_true(test_server_stop_within(&t, 15.0));
    test_expect_baseline(&b);
}

/* ---- registration ------------------------------------------------------- */

#define MAX_TESTS 64

static struct CMUnitTest tests[MAX_TESTS];
static char names[MAX_TESTS][128];
static fault_case fault_cases[MAX_TESTS];
static size_t n_tests;

static void add(const char *what, const char *variant, CMUnitTestFunction fn,
                void *initial_state)
{
    if (n_tests == MAX_TESTS)
        abort();
    snprintf(names[n_tests], sizeof names[n_tests], "%s/%s", what, variant);
    tests[n_tests] = (struct CMUnitTest){
        .name = names[n_tests],
        .test_func = fn,
        .initial_state = initial_state,
    };
    n_tests++;
}

static void add_fault(const strategy_case *s, const ss_server_class *kind,
                      unsigned fault, int error, const char *fault_name)
{
    fault_case *fc = &fault_cases[n_tests];
    *fc = (fault_case){s, kind, fault, error};
    char variant[96];
    snprintf(variant, sizeof variant, "%s/%s/%s", fault_name, s->name,
             kind == &ss_udp ? "udp" : "tcp");
    add("test_injected_failure_refuses_request_and_keeps_serving", variant,
        test_injected_failure_refuses_request_and_keeps_serving, fc);
}

/* An optional argument selects tests by name, e.g. '*coro*'. */
int main(int argc, char **argv)
{
    test_start_runtime_threads();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const strategy_case *shedding[] = {&sync_case, &fork_case, &thread_case,
                                       &pool_case, &coro1_case};
    for (size_t i = 0; i < sizeof shedding / sizeof shedding[0]; i++)
        add("test_emfile_sheds_waiting_connections_without_busy_loop",
            shedding[i]->name,
            test_emfile_sheds_waiting_connections_without_busy_loop,
            (void *)shedding[i]);
    const strategy_case *episode[] = {&sync_case, &fork_case, &thread_case,
                                      &pool_case, &coro_case};
    for (size_t i = 0; i < sizeof episode / sizeof episode[0]; i++)
        add("test_emfile_without_spare_pauses_and_resumes", episode[i]->name,
            test_emfile_without_spare_pauses_and_resumes, (void *)episode[i]);
    add("test_emfile_in_prefork_worker_pauses_and_resumes", "prefork",
        test_emfile_in_prefork_worker_pauses_and_resumes, NULL);

    add_fault(&thread_case, &ss_tcp, SS_FAULT_THREAD_CREATE, -EAGAIN,
              "thread_create");
    add_fault(&pool_case, &ss_tcp, SS_FAULT_THREAD_CREATE, -EAGAIN,
              "thread_create");
    add_fault(&prefork_thread_case, &ss_tcp, SS_FAULT_THREAD_CREATE, -EAGAIN,
              "thread_create");
    add_fault(&thread_case, &ss_udp, SS_FAULT_THREAD_CREATE, -EAGAIN,
              "thread_create");
    add_fault(&fork_case, &ss_tcp, SS_FAULT_FORK, -EAGAIN, "fork");
    add_fault(&fork_case, &ss_udp, SS_FAULT_FORK, -EAGAIN, "fork");
    const strategy_case *all[] = {
        &sync_case,    &fork_case,           &thread_case, &pool_case,
        &prefork_case, &prefork_thread_case, &coro_case};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        add_fault(all[i], &ss_tcp, SS_FAULT_ALLOC, -ENOMEM, "alloc");
    add_fault(&sync_case, &ss_udp, SS_FAULT_ALLOC, -ENOMEM, "alloc");
    add_fault(&thread_case, &ss_udp, SS_FAULT_ALLOC, -ENOMEM, "alloc");
    add_fault(&coro_case, &ss_udp, SS_FAULT_ALLOC, -ENOMEM, "alloc");
    add_fault(&coro_case, &ss_tcp, SS_FAULT_STACK, -ENOMEM, "stack");
    add_fault(&coro_case, &ss_udp, SS_FAULT_STACK, -ENOMEM, "stack");
    add("test_pool_worker_start_failure_queues_for_running_worker", "pool",
        test_pool_worker_start_failure_queues_for_running_worker, NULL);
    add("test_prefork_worker_that_cannot_fork_is_tried_again", "prefork",
        test_prefork_worker_that_cannot_fork_is_tried_again, NULL);
    return _cmocka_run_group_tests("test_exhaustion", tests, n_tests, NULL,
                                   NULL);
}
