/*
 * test_blocking_receive.c — the blocking strategies' receive path
 * (lib/core/blocking_receive.c): where a request has a thread of its own,
 * ss_read blocks in recv() instead of poll() + recv(), and a shutdown
 * reaches it through shutdown(SHUT_RD) instead of the cancel descriptor.
 *
 * What must still hold, over real sockets:
 *  - the path is taken (thread, pool, a prefork worker's threads, a
 *    forked child whose parent holds its connection: the socket is in
 *    blocking mode in the handler) and not where nobody could cancel it
 *    (sync, prefork with sync workers);
 *  - a shutdown with clients idle in a read ends promptly under every
 *    blocking strategy, each read ending with -ECANCELED, not EOF — and
 *    so does every later read of the request, ss_read_nowait too, so a
 *    handler can still say goodbye;
 *  - the per-call timeout fires, on the first read and after a round
 *    trip, neither early nor late;
 *  - a read that receives part of what it wants and then waits keeps its
 *    call's deadline (a second recv() must not get a whole new timeout);
 *  - signals (handlers without SA_RESTART) neither end a read early nor
 *    lose bytes.
 * Results are kept in shared memory, so forked children's count too.
 */
#include "hardening.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct shared {
    atomic_int cancelled, eofs, timeouts, others;
    _Atomic int64_t last_elapsed_ns; /* of the read that ended a request */
} shared;
static shared *results;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void record_end(int rc, int64_t began)
{
    atomic_store(&results->last_elapsed_ns, now_ns() - began);
    if (rc == 0)
        atomic_fetch_add(&results->eofs, 1);
    else if (rc == -ECANCELED)
        atomic_fetch_add(&results->cancelled, 1);
    else if (rc == -ETIMEDOUT)
        atomic_fetch_add(&results->timeouts, 1);
    else
        atomic_fetch_add(&results->others, 1);
}

/* Echo; "?" is answered with 'B' when the socket is in blocking mode
 * (the blocking receive path took it), 'N' when not. Returns 0 always:
 * how the last read ended is in results. */
static int echo_handle(ss_request *req)
{
    char buf[256];
    for (;;) {
        int64_t began = now_ns();
        int n = ss_read(req, buf, sizeof buf);
        if (n <= 0) {
            record_end(n, began);
            return 0;
        }
        if (n == 1 && buf[0] == '?') {
            int fl = fcntl(ss_request_fileno(req), F_GETFL);
            buf[0] = fl >= 0 && !(fl & O_NONBLOCK) ? 'B' : 'N';
        }
        if (ss_write_all(req, buf, (size_t)n) < 0)
            return 0;
    }
}

static const ss_handler_class echo_no_timeout = {
    .base = &ss_stream_handler,
    .handle = echo_handle,
};

#define SHORT_TIMEOUT 0.4
static const ss_handler_class echo_short_timeout = {
    .base = &ss_stream_handler,
    .handle = echo_handle,
    .timeout = SHORT_TIMEOUT,
};

/* ss_read_exact of 8 bytes, whose bytes come in two parts. */
#define EXACT_TIMEOUT 1.0
static int exact_handle(ss_request *req)
{
    char buf[8];
    int64_t began = now_ns();
    int n = ss_read_exact(req, buf, sizeof buf);
    record_end(n == SS_EOF ? 0 : n < 0 ? n : 1, began);
    return 0;
}

static const ss_handler_class exact_handler = {
    .base = &ss_stream_handler,
    .handle = exact_handle,
    .timeout = EXACT_TIMEOUT,
};

/* Echo until a read is cancelled by the shutdown; then, as a handler
 * that says goodbye does, look once more without waiting (the ending of
 * that look is what is recorded: it must be -ECANCELED, not the end of
 * the stream that the serve loop's shutdown(SHUT_RD) made) and send
 * "BYE\n". */
static int goodbye_handle(ss_request *req)
{
    char buf[64];
    for (;;) {
        int n = ss_read(req, buf, sizeof buf);
        if (n == -ECANCELED) {
            record_end(ss_read_nowait(req, buf, sizeof buf), now_ns());
            ss_write_all(req, "BYE\n", 4);
            return 0;
        }
        if (n <= 0 || ss_write_all(req, buf, (size_t)n) < 0) {
            atomic_fetch_add(&results->others, 1);
            return 0;
        }
    }
}

static const ss_handler_class goodbye_handler = {
    .base = &ss_stream_handler,
    .handle = goodbye_handle,
};

/* ---- Strategies ---------------------------------------------------------- */

typedef struct case_ {
    hz_strategy s;
    bool blocks; /* the blocking receive path is expected */
    int clients; /* connections that can be in a read at once */
} case_;

static const case_ cases[] = {
    {{"sync", &ss_sync, false, 0, 0, NULL, 1}, false, 1},
    {{"fork", &ss_forking, true, 0, 0, NULL, 0}, true, 6},
    {{"thread", &ss_threading, false, 0, 0, NULL, 0}, true, 6},
    {{"pool4", &ss_thread_pool, false, 4, 0, NULL, 4}, true, 4},
    {{"prefork2", &ss_prefork, true, 0, 2, NULL, 2}, false, 2},
    {{"prefork2+thread", &ss_prefork, true, 0, 2, &ss_threading, 0}, true, 6},
};

static void reset_results(void)
{
    atomic_store(&results->cancelled, 0);
    atomic_store(&results->eofs, 0);
    atomic_store(&results->timeouts, 0);
    atomic_store(&results->others, 0);
    atomic_store(&results->last_elapsed_ns, 0);
}

static void start(test_server *t, const case_ *c, const ss_handler_class *h)
{
    hz_skip_if_unsupported(&c->s);
    reset_results();
    ss_config cfg;
    test_options opts;
    hz_config_for(&c->s, &cfg, &opts);
    assert_int_equal(test_server_start_with(t, &ss_tcp, c->s.strategy,
                                            "127.0.0.1:0", h, &cfg, 0.05),
                     0);
}

/* Send text, expect it back. */
static void echo(int fd, const char *text, char *reply)
{
    size_t n = strlen(text);
    double deadline = test_now() + TEST_IO_TIMEOUT_SECONDS;
    assert_int_equal(hz_send_all(fd, text, n, deadline), 0);
    int end = 0;
    assert_int_equal(hz_recv_exact(fd, reply, n, deadline, &end), n);
}

/* Wait until got() reaches want (the handlers' records arrive a moment
 * after the client sees the connection end). */
static bool reaches(atomic_int *counter, int want)
{
    double deadline = test_now() + TEST_IO_TIMEOUT_SECONDS;
    while (atomic_load(counter) < want && test_now() < deadline)
        test_sleep(0.005);
    if (atomic_load(counter) >= want)
        return true;
    print_message("cancelled %d eofs %d timeouts %d others %d\n",
                  atomic_load(&results->cancelled), atomic_load(&results->eofs),
                  atomic_load(&results->timeouts),
                  atomic_load(&results->others));
    return false;
}

/* ---- The path is taken where it should be -------------------------------- */

static void run_path(const case_ *c)
{
    test_server t;
    start(&t, c, &echo_no_timeout);
    int fd = hz_connect(t.srv, 0);
    assert_true(fd >= 0);
    char reply[8];
    /* The first read receives at once; the second waits, after a short
     * receive: that wait is the blocking recv(). */
    echo(fd, "a", reply);
    echo(fd, "?", reply);
    assert_int_equal(reply[0], c->blocks ? 'B' : 'N');
    /* A forked child holds a copy of this socket too: close() alone
     * would not end the connection. */
    shutdown(fd, SHUT_RDWR);
    close(fd);
    assert_true(reaches(&results->eofs, 1));
    assert_true(test_server_stop_within(&t, TEST_IO_TIMEOUT_SECONDS));
}

/* ---- A shutdown with every client in a read ------------------------------ */

static void run_shutdown(const case_ *c)
{
    test_server t;
    start(&t, c, &echo_no_timeout);
    int fds[8];
    char reply[8];
    for (int i = 0; i < c->clients; i++) {
        fds[i] = hz_connect(t.srv, 0);
        assert_true(fds[i] >= 0);
        /* After this the handler is in (or on its way to) its next read,
         * which has no deadline at all. */
        echo(fds[i], "a", reply);
        echo(fds[i], "bc", reply);
    }
    double began = test_now();
    assert_true(test_server_join_within(&t, 5.0));
    /* Every connection ends, without an answer, promptly. */
    for (int i = 0; i < c->clients; i++) {
        char byte;
        ssize_t got = hz_recv(fds[i], &byte, 1, began + 5.0);
        assert_true(got == 0 || got == -ECONNRESET);
        close(fds[i]);
    }
    double took = test_now() - began;
    ss_server_free(t.srv);
    assert_true(reaches(&results->cancelled, c->clients));
    assert_int_equal(atomic_load(&results->eofs), 0);
    assert_int_equal(atomic_load(&results->others), 0);
    assert_true(took < 3.0);
}

/* A handler that answers a shutdown with a last message: every read
 * after the cancelled one reports the cancellation too (before the fix,
 * ss_read_nowait saw the SHUT_RD as the client's end of stream — the
 * chat room's web members then left as "gone" instead of hearing BYE),
 * and the message reaches the client whole. */
static void run_goodbye(const case_ *c)
{
    test_server t;
    start(&t, c, &goodbye_handler);
    int fd = hz_connect(t.srv, 0);
    assert_true(fd >= 0);
    char reply[8];
    echo(fd, "a", reply);
    echo(fd, "bc", reply); /* the handler is back in its read */
    double began = test_now();
    assert_true(test_server_join_within(&t, 5.0));
    int end = 0;
    assert_int_equal(hz_recv_exact(fd, reply, 4, began + 5.0, &end), 4);
    assert_memory_equal(reply, "BYE\n", 4);
    close(fd);
    ss_server_free(t.srv);
    assert_true(reaches(&results->cancelled, 1));
    assert_int_equal(atomic_load(&results->eofs), 0);
    assert_int_equal(atomic_load(&results->others), 0);
}

/* ---- Timeouts ------------------------------------------------------------ */

static void expect_timeout_near(double seconds)
{
    assert_true(reaches(&results->timeouts, 1));
    double took = (double)atomic_load(&results->last_elapsed_ns) / 1e9;
    if (took < seconds || took > seconds + 1.5)
        fail_msg("the read timed out after %.3f s, not %.3f s", took, seconds);
}

static void run_timeout(const case_ *c, bool after_round_trip)
{
    test_server t;
    start(&t, c, &echo_short_timeout);
    int fd = hz_connect(t.srv, 0);
    assert_true(fd >= 0);
    char reply[8];
    if (after_round_trip)
        echo(fd, "a", reply);
    char byte;
    /* The handler times out and ends the connection. */
    ssize_t got = hz_recv(fd, &byte, 1, test_now() + TEST_IO_TIMEOUT_SECONDS);
    assert_true(got == 0 || got == -ECONNRESET);
    expect_timeout_near(SHORT_TIMEOUT);
    close(fd);
    assert_true(test_server_stop_within(&t, TEST_IO_TIMEOUT_SECONDS));
}

/* Part of what ss_read_exact wants at once, more 0.6 s later, the rest
 * never: the call's deadline (1 s after it began) ends it, not a new
 * timeout of the second recv() (which would end it at 1.6 s). */
static void run_midway(const case_ *c)
{
    test_server t;
    start(&t, c, &exact_handler);
    int fd = hz_connect(t.srv, 0);
    assert_true(fd >= 0);
    double deadline = test_now() + TEST_IO_TIMEOUT_SECONDS;
    assert_int_equal(hz_send_all(fd, "abc", 3, deadline), 0);
    test_sleep(0.6);
    assert_int_equal(hz_send_all(fd, "de", 2, deadline), 0);
    char byte;
    ssize_t got = hz_recv(fd, &byte, 1, deadline);
    assert_true(got == 0 || got == -ECONNRESET);
    assert_true(reaches(&results->timeouts, 1));
    double took = (double)atomic_load(&results->last_elapsed_ns) / 1e9;
    if (took < EXACT_TIMEOUT || took > EXACT_TIMEOUT + 0.45)
        fail_msg("ss_read_exact timed out after %.3f s, not %.3f s", took,
                 EXACT_TIMEOUT);
    close(fd);
    assert_true(test_server_stop_within(&t, TEST_IO_TIMEOUT_SECONDS));
}

/* ---- Signals ------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
}

static atomic_bool storming;

static void *storm(void *arg)
{
    (void)arg;
    while (atomic_load(&storming)) {
        kill(getpid(), SIGUSR1);
        test_sleep(0.002);
    }
    return NULL;
}

/* A signal storm (no SA_RESTART: every blocked call sees EINTR) while a
 * handler waits in reads: bytes still arrive whole, and the timeout
 * still ends the last read at its time, not before. */
static void run_eintr(const case_ *c)
{
    struct sigaction sa = {.sa_handler = on_signal}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    test_server t;
    start(&t, c, &echo_short_timeout);
    int fd = hz_connect(t.srv, 0);
    assert_true(fd >= 0);
    atomic_store(&storming, true);
    pthread_t stormer;
    assert_int_equal(pthread_create(&stormer, NULL, storm, NULL), 0);
    char reply[8];
    echo(fd, "a", reply);
    test_sleep(0.2); /* the handler waits in a read meanwhile */
    echo(fd, "bcd", reply);
    assert_memory_equal(reply, "bcd", 3);
    char byte;
    ssize_t got = hz_recv(fd, &byte, 1, test_now() + TEST_IO_TIMEOUT_SECONDS);
    atomic_store(&storming, false);
    pthread_join(stormer, NULL);
    assert_true(got == 0 || got == -ECONNRESET);
    expect_timeout_near(SHORT_TIMEOUT);
    close(fd);
    assert_true(test_server_stop_within(&t, TEST_IO_TIMEOUT_SECONDS));
    sigaction(SIGUSR1, &old, NULL);
}

/* ---- A forked child's connection, held by the parent --------------------- */

/* Sockets among pid's descriptors (/proc/pid/fd). */
static int sockets_of(pid_t pid)
{
    char dir[32], link[64], target[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    int count = 0;
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(link, sizeof link, "%s/%d", dir, fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0 && strncmp(target, "socket:", 7) == 0)
            count++;
    }
    return count;
}

static bool back_to(int want_fds)
{
    double deadline = test_now() + TEST_IO_TIMEOUT_SECONDS;
    while (test_now() < deadline) {
        pid_t kids[8];
        if (hz_children_of(getpid(), kids, 8) == 0 &&
            test_count_open_fds() == want_fds)
            return true;
        test_sleep(0.01);
    }
    return false;
}

/* The parent keeps each child's connection (so its shutdown can cut the
 * child's reads) until it reaps the child, and no child keeps another's:
 * with six children in a read, none holds a copy of an older sibling's
 * connection, and once the clients leave and the children are reaped,
 * the parent has the descriptors it had before. */
static void fork_held_copies_are_released(void **state)
{
    (void)state;
    const case_ *c = &cases[1];
    test_server t;
    start(&t, c, &echo_no_timeout);
    int before = test_count_open_fds();
    int sockets_before = sockets_of(getpid());
    int fds[6];
    char reply[8];
    for (int i = 0; i < 6; i++) {
        fds[i] = hz_connect(t.srv, 0);
        assert_true(fds[i] >= 0);
        echo(fds[i], "a", reply);
        echo(fds[i], "?", reply);
        assert_int_equal(reply[0], 'B');
    }
    pid_t kids[8];
    int n = hz_children_of(getpid(), kids, 8);
    assert_int_equal(n, 6);
    /* In the order they were forked. Child i also inherited the clients
     * this process had connected by then (i + 1 of them, its own
     * included): one socket more per child, where the parent's held
     * copies would add two. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && kids[j] < kids[j - 1]; j--) {
            pid_t swap = kids[j];
            kids[j] = kids[j - 1];
            kids[j - 1] = swap;
        }
    int first = sockets_of(kids[0]);
    assert_true(first > 0);
    for (int i = 1; i < n; i++)
        if (sockets_of(kids[i]) != first + i)
            fail_msg("child %d has %d sockets, child 0 has %d", i,
                     sockets_of(kids[i]), first);
    /* The parent: its six copies, besides the clients' sockets here. */
    assert_int_equal(sockets_of(getpid()), sockets_before + 6 + 6);
    for (int i = 0; i < 6; i++) {
        shutdown(fds[i], SHUT_RDWR);
        close(fds[i]);
    }
    assert_true(reaches(&results->eofs, 6));
    assert_true(back_to(before));
    assert_true(test_server_stop_within(&t, TEST_IO_TIMEOUT_SECONDS));
}

/* ---- Cases ----------------------------------------------------------------
 */

#define CASE(i, name)                                                          \
    static void path_##name(void **state)                                      \
    {                                                                          \
        (void)state;                                                           \
        run_path(&cases[i]);                                                   \
    }                                                                          \
    static void shutdown_##name(void **state)                                  \
    {                                                                          \
        (void)state;                                                           \
        run_shutdown(&cases[i]);                                               \
    }
CASE(0, sync)
CASE(1, fork)
CASE(2, thread)
CASE(3, pool)
CASE(4, prefork)
CASE(5, prefork_thread)

static void timeout_first_read_thread(void **state)
{
    (void)state;
    run_timeout(&cases[2], false);
}

static void timeout_after_round_trip_thread(void **state)
{
    (void)state;
    run_timeout(&cases[2], true);
}

static void timeout_after_round_trip_pool(void **state)
{
    (void)state;
    run_timeout(&cases[3], true);
}

static void timeout_after_round_trip_fork(void **state)
{
    (void)state;
    run_timeout(&cases[1], true);
}

static void midway_timeout_thread(void **state)
{
    (void)state;
    run_midway(&cases[2]);
}

static void midway_timeout_pool(void **state)
{
    (void)state;
    run_midway(&cases[3]);
}

static void timeout_first_read_fork(void **state)
{
    (void)state;
    run_timeout(&cases[1], false);
}

static void midway_timeout_fork(void **state)
{
    (void)state;
    run_midway(&cases[1]);
}

static void goodbye_fork(void **state)
{
    (void)state;
    run_goodbye(&cases[1]);
}

static void goodbye_thread(void **state)
{
    (void)state;
    run_goodbye(&cases[2]);
}

static void goodbye_pool(void **state)
{
    (void)state;
    run_goodbye(&cases[3]);
}

static void eintr_thread(void **state)
{
    (void)state;
    run_eintr(&cases[2]);
}

int main(void)
{
    results = mmap(NULL, sizeof *results, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (results == MAP_FAILED)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_sync),
        cmocka_unit_test(path_fork),
        cmocka_unit_test(path_thread),
        cmocka_unit_test(path_pool),
        cmocka_unit_test(path_prefork),
        cmocka_unit_test(path_prefork_thread),
        cmocka_unit_test(shutdown_sync),
        cmocka_unit_test(shutdown_fork),
        cmocka_unit_test(shutdown_thread),
        cmocka_unit_test(shutdown_pool),
        cmocka_unit_test(shutdown_prefork),
        cmocka_unit_test(shutdown_prefork_thread),
        cmocka_unit_test(timeout_first_read_thread),
        cmocka_unit_test(timeout_after_round_trip_thread),
        cmocka_unit_test(timeout_after_round_trip_pool),
        cmocka_unit_test(timeout_after_round_trip_fork),
        cmocka_unit_test(midway_timeout_thread),
        cmocka_unit_test(midway_timeout_pool),
        cmocka_unit_test(timeout_first_read_fork),
        cmocka_unit_test(midway_timeout_fork),
        cmocka_unit_test(goodbye_fork),
        cmocka_unit_test(fork_held_copies_are_released),
        cmocka_unit_test(goodbye_thread),
        cmocka_unit_test(goodbye_pool),
        cmocka_unit_test(eintr_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
