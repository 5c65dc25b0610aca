/*
 * test_input_time.c — config.input_timestamps and ss_request_input_time():
 * the kernel's arrival stamp of the latest bytes a request received.
 *
 * The handlers answer each line (or datagram) with the stamp they see, in
 * ns, or -1 when it is not known. The client brackets each send with its
 * own CLOCK_REALTIME readings: the stamp must fall between the moment
 * before the send and the moment the answer came back, and a later send
 * must move it. Every strategy that receives differently is covered: the
 * sync loop and coroutines through the transport, threads and the pool
 * and forked children through the blocking recv() path.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t stamp_of(const ss_request *req)
{
    struct timespec ts;
    if (!ss_request_input_time(req, &ts))
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Each line in, the stamp out. */
static int answer_stamps(ss_request *req)
{
    char line[256];
    for (;;) {
        int n = ss_readline(req, line, sizeof line);
        if (n <= 0)
            return n < 0 ? n : 0;
        if (ss_writef(req, "%" PRId64 "\n", stamp_of(req)) < 0)
            return -1;
    }
}

static const ss_handler_class stamp_stream_handler = {
    .base = &ss_stream_handler,
    .handle = answer_stamps,
    .timeout = 10.0,
};

static int answer_datagram_stamp(ss_request *req)
{
    char buf[64];
    if (ss_read(req, buf, sizeof buf) < 0)
        return -1;
    return ss_writef(req, "%" PRId64 "\n", stamp_of(req)) < 0 ? -1 : 0;
}

static const ss_handler_class stamp_datagram_handler = {
    .base = &ss_datagram_handler,
    .handle = answer_datagram_stamp,
};

/* One answer line from a stream, as a number. */
static int64_t read_stamp_line(int fd)
{
    char line[64];
    size_t len = 0;
    while (len < sizeof line - 1) {
        test_recv_exact(fd, line + len, 1);
        if (line[len++] == '\n')
            break;
    }
    line[len] = '\0';
    return strtoll(line, NULL, 10);
}

/* Send text, read one stamp per line in it; the stamps must lie between
 * the moment before the send and the moment the last answer came. */
static void send_and_check(int fd, const char *text, int lines, int64_t *stamps)
{
    int64_t before = realtime_ns();
    test_send_all(fd, text, strlen(text));
    for (int i = 0; i < lines; i++)
        stamps[i] = read_stamp_line(fd);
    int64_t after = realtime_ns();
    for (int i = 0; i < lines; i++) {
        assert_true(stamps[i] >= before);
        assert_true(stamps[i] <= after);
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* The kernel turns stamping on for the whole machine when the first
 * socket asks, through a work item that runs a moment later: packets
 * that arrive before it has run carry no stamp, and the time is "not
 * known" (-1), never a wrong one. Ask on fd until a stamp comes. */
static void wait_for_stamping(int fd)
{
    for (int i = 0; i < 200; i++) {
        test_send_all(fd, "warm-up\n", 8);
        int64_t stamp = read_stamp_line(fd);
        if (stamp > 0)
            return;
        assert_int_equal(stamp, -1);
        sleep_ms(10);
    }
    fail_msg("no receive stamp after 2 s");
}

/* connections: one after another on the same server (prefork: so that
 * more than one worker's socket is tried). */
static void stream_stamps_with(const ss_server_class *kind,
                               const ss_strategy *strategy, test_options *opts,
                               int connections)
{
    ss_config cfg = {.input_timestamps = true, .allow_reuse_address = true};
    test_use_options(&cfg, strategy, opts);
    test_server t;
    assert_int_equal(test_server_start_with(&t, kind, strategy, "127.0.0.1:0",
                                            &stamp_stream_handler, &cfg, 0.05),
                     0);
    for (int c = 0; c < connections; c++) {
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        wait_for_stamping(fd);
        int64_t first, later, pair[2];
        send_and_check(fd, "one\n", 1, &first);
        sleep_ms(20);
        /* The same connection, later: the stamp is the new bytes'. */
        send_and_check(fd, "two\n", 1, &later);
        assert_true(later >= first + 20 * 1000000LL);
        /* Two lines in one send: one arrival, one stamp for both. */
        send_and_check(fd, "three\nfour\n", 2, pair);
        assert_true(pair[0] > later);
        assert_true(pair[1] == pair[0]);
        close(fd);
    }
    test_server_stop(&t);
}

static void stream_stamps_follow_each_receive(const ss_server_class *kind,
                                              const ss_strategy *strategy)
{
    test_options opts = {0};
    stream_stamps_with(kind, strategy, &opts, 1);
}

static void test_tcp_sync(void **state)
{
    (void)state;
    stream_stamps_follow_each_receive(&ss_tcp, &ss_sync);
}

static void test_tcp_threading(void **state)
{
    (void)state;
    stream_stamps_follow_each_receive(&ss_tcp, &ss_threading);
}

static void test_tcp_thread_pool(void **state)
{
    (void)state;
    stream_stamps_follow_each_receive(&ss_tcp, &ss_thread_pool);
}

static void test_tcp_forking(void **state)
{
    (void)state;
    stream_stamps_follow_each_receive(&ss_tcp, &ss_forking);
}

static void test_tcp_coroutines(void **state)
{
    (void)state;
    stream_stamps_follow_each_receive(&ss_tcp, &ss_coroutines);
}

/* Prefork, one shared socket and a socket per worker (SO_REUSEPORT): the
 * workers' sockets are made as the server's is, with the option. Eight
 * connections: the chance that the kernel hashes all of them to one of
 * the two sockets is 1 in 128. */
static void prefork_stamps(bool reuseport)
{
    test_options opts = {.prefork = {.workers = 2,
                                     .worker_strategy = &ss_threading,
                                     .reuseport = reuseport}};
    stream_stamps_with(&ss_tcp, &ss_prefork, &opts, 8);
}

static void test_tcp_prefork(void **state)
{
    (void)state;
    prefork_stamps(false);
}

static void test_tcp_prefork_reuseport(void **state)
{
    (void)state;
    prefork_stamps(true);
}

/* A server_activate of the user's own: the option is set when the socket
 * is made, so the listener it makes listen still passes it on. */
static void test_tcp_own_server_activate(void **state)
{
    (void)state;
    ss_server_class own = ss_tcp;
    own.server_activate = test_listen_only;
    stream_stamps_follow_each_receive(&own, &ss_threading);
}

/* A transport of the user's own that reads the socket with recv() itself,
 * not through ss_request_socket_recv(), behind a PROXY header (which the
 * core receives, stamped): the time must be "not known", not the
 * header's stamp, which is older than the bytes the transport brings. */
static ssize_t raw_recv(ss_request *req, void *buf, size_t n, short *want)
{
    for (;;) {
        ssize_t got = recv(ss_request_fileno(req), buf, n, MSG_DONTWAIT);
        if (got >= 0)
            return got;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = POLLIN;
            return -EAGAIN;
        }
        return -errno;
    }
}

/* The plain transport with that receive in place of its own (the plain
 * send and sendfile are kept). */
static ss_transport raw_transport;

static void test_own_transport_behind_proxy_header_is_not_known(void **state)
{
    (void)state;
    ss_config cfg = {.input_timestamps = true,
                     .proxy_protocol = SS_PROXY_V1,
                     .no_bind_and_activate = true};
    test_server t = {0};
    assert_int_equal(ss_server_new(&t.srv, &ss_tcp, &ss_threading,
                                   "127.0.0.1:0", &stamp_stream_handler, &cfg),
                     0);
    raw_transport = ss_plain_transport;
    raw_transport.name = "raw";
    raw_transport.recv = raw_recv;
    assert_int_equal(ss_server_set_transport(t.srv, &raw_transport), 0);
    assert_int_equal(ss_server_bind(t.srv), 0);
    assert_int_equal(ss_server_activate(t.srv), 0);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    static const char header[] = "PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n";
    test_send_all(fd, header, sizeof header - 1);
    sleep_ms(20); /* the header alone, in a packet of its own */
    test_send_all(fd, "x\n", 2);
    assert_int_equal(read_stamp_line(fd), -1);
    close(fd);
    test_server_stop(&t);
}

/* Without the option, and on a Unix stream socket (which never stamps),
 * the time is not known — and the requests are served all the same. */
static void expect_unknown(const ss_server_class *kind, const char *address,
                           bool option)
{
    ss_config cfg = {.input_timestamps = option};
    test_server t;
    assert_int_equal(
        test_server_start(&t, kind, address, &stamp_stream_handler, &cfg), 0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_send_all(fd, "x\n", 2);
    assert_int_equal(read_stamp_line(fd), -1);
    close(fd);
    test_server_stop(&t);
}

static void test_off_by_default(void **state)
{
    (void)state;
    expect_unknown(&ss_tcp, "127.0.0.1:0", false);
}

static void test_unix_stream_is_not_stamped(void **state)
{
    (void)state;
    char address[128];
    expect_unknown(&ss_unix_stream,
                   test_unix_address(address, sizeof address, "stamp"), true);
}

static void datagram_is_stamped(const ss_server_class *kind,
                                const char *address)
{
    ss_config cfg = {.input_timestamps = true};
    test_server t;
    assert_int_equal(
        test_server_start(&t, kind, address, &stamp_datagram_handler, &cfg), 0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    /* A datagram that came before stamping was on is stamped when it is
     * received, so there is no warm-up to wait for here. */
    for (int i = 0; i < 2; i++) {
        int64_t before = realtime_ns();
        test_send_all(fd, "d", 1);
        char reply[64] = {0};
        size_t n = test_recv_all(fd, reply, sizeof reply - 1);
        reply[n] = '\0';
        int64_t stamp = strtoll(reply, NULL, 10);
        assert_true(stamp >= before);
        assert_true(stamp <= realtime_ns());
    }
    close(fd);
    test_server_stop(&t);
}

static void test_udp(void **state)
{
    (void)state;
    datagram_is_stamped(&ss_udp, "127.0.0.1:0");
}

static void test_unix_datagram(void **state)
{
    (void)state;
    char address[128];
    datagram_is_stamped(&ss_unix_datagram,
                        test_abstract_address(address, sizeof address, "dg"));
}

/* A datagram server without the option: not known. */
static void test_udp_off(void **state)
{
    (void)state;
    test_server t;
    assert_int_equal(test_server_start(&t, &ss_udp, "127.0.0.1:0",
                                       &stamp_datagram_handler, NULL),
                     0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_send_all(fd, "d", 1);
    char reply[64] = {0};
    test_recv_all(fd, reply, sizeof reply - 1);
    assert_string_equal(reply, "-1\n");
    close(fd);
    test_server_stop(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_sync),
        cmocka_unit_test(test_tcp_threading),
        cmocka_unit_test(test_tcp_thread_pool),
        cmocka_unit_test(test_tcp_forking),
        cmocka_unit_test(test_tcp_coroutines),
#if !TEST_UNDER_TSAN /* prefork workers start threads: die_after_fork */
        cmocka_unit_test(test_tcp_prefork),
        cmocka_unit_test(test_tcp_prefork_reuseport),
#endif
        cmocka_unit_test(test_tcp_own_server_activate),
        cmocka_unit_test(test_own_transport_behind_proxy_header_is_not_known),
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_unix_stream_is_not_stamped),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_unix_datagram),
        cmocka_unit_test(test_udp_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
