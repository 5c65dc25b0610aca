/*
 * test_datagram.c — request I/O for the datagram kinds (UDP and Unix
 * datagram), Python's DatagramRequestHandler: the received packet is the
 * request's input, read with ss_read / ss_readline / ss_read_exact, and
 * everything written collects into one reply datagram that is sent to the
 * client after finish — always, even when it is empty.
 *
 * Also the edges: a datagram longer than max_packet_size is cut and
 * flagged (checked exactly at the boundary, where a receive without
 * MSG_TRUNC cannot tell a full buffer from a cut one), and a UDP reply may
 * not grow past 65507 bytes, the largest payload a UDP datagram carries.
 *
 * And the UDP time server a new user writes first (any datagram in, the
 * time out), under ss_sync, ss_threading and ss_coroutines.
 *
 * Every test runs for both kinds. The Unix datagram client is bound to an
 * abstract name by test_connect(), so the reply has somewhere to go.
 * Handlers run on the server thread and record what they saw in `ctx`,
 * which the test reads after test_server_stop() has joined that thread.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UDP_MAX_PAYLOAD 65507

typedef struct dgram_ctx {
    char address[160];
    ssize_t rc[4];
    sem_t handler_ready;
    sem_t test_go;
    int log_lines;
    char last_log[256];
} dgram_ctx;

static dgram_ctx ctx;

static void ctx_reset(void)
{
    memset(&ctx, 0, sizeof ctx);
    sem_init(&ctx.handler_ready, 0, 0);
    sem_init(&ctx.test_go, 0, 0);
}

static void ctx_destroy(void)
{
    sem_destroy(&ctx.handler_ready);
    sem_destroy(&ctx.test_go);
}

static void capture_log(void *user, const char *line)
{
    dgram_ctx *c = user;
    c->log_lines++;
    snprintf(c->last_log, sizeof c->last_log, "%s", line);
}

static bool sem_wait_seconds(sem_t *sem, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + (long long)(seconds * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    int rc;
    do
        rc = sem_timedwait(sem, &ts);
    while (rc < 0 && errno == EINTR);
    return rc == 0;
}

/* True when a datagram (even an empty one) is waiting within ms. */
static bool datagram_arrives_within(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc;
    do
        rc = poll(&pfd, 1, ms);
    while (rc < 0 && errno == EINTR);
    return rc > 0;
}

static void start_server(test_server *t, const ss_server_class *kind,
                         const ss_handler_class *handler,
                         size_t max_packet_size)
{
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &ctx;
    cfg.log = capture_log;
    cfg.unlink_on_close = true;
    if (max_packet_size)
        cfg.max_packet_size = max_packet_size;
    if (kind == &ss_udp)
        snprintf(ctx.address, sizeof ctx.address, "127.0.0.1:0");
    else
        test_unix_address(ctx.address, sizeof ctx.address, "dgram");
    int rc = test_server_start(t, kind, ctx.address, handler, &cfg);
    if (rc < 0)
        fail_msg("starting %s on %s: %s", kind->name, ctx.address,
                 ss_strerror(rc));
}

static void stop_server(test_server *t)
{
    test_server_stop(t);
    if (strncmp(ctx.address, "unix:/", 6) == 0)
        unlink(test_unix_path(ctx.address));
}

static int connect_client(test_server *t)
{
    int fd = test_connect(t->srv);
    if (fd < 0)
        fail_msg("connect: %s", ss_strerror(fd));
    return fd;
}

/* Receive one datagram of any length up to n - 1 and NUL-terminate it. */
static size_t recv_reply(int fd, char *buf, size_t n)
{
    if (!datagram_arrives_within(fd, 10000))
        fail_msg("no reply datagram within 10 s");
    ssize_t r;
    do
        r = recv(fd, buf, n - 1, MSG_TRUNC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        fail_msg("recv reply: %s", strerror(errno));
    if ((size_t)r > n - 1)
        fail_msg("reply of %zd bytes is larger than expected", r);
    buf[r] = '\0';
    return (size_t)r;
}

#define FOR_UDP_AND_UNIX(name)                                                 \
    static void test_##name##_over_udp(void **state)                           \
    {                                                                          \
        (void)state;                                                           \
        name(&ss_udp);                                                         \
    }                                                                          \
    static void test_##name##_over_unix(void **state)                          \
    {                                                                          \
        (void)state;                                                           \
        name(&ss_unix_datagram);                                               \
    }

/* ---- reading the packet, writing the reply ---------------------------- */

/* Reads the packet every way a handler can and writes what it saw back,
 * one ss_writef per item: all of them must leave as one datagram. */
static int read_packet_every_way(ss_request *req)
{
    char buf[64];
    ssize_t n;

    n = ss_readline(req, buf, sizeof buf);
    ss_writef(req, "%zd:%s|", n, n > 0 ? buf : "");
    memset(buf, 0, sizeof buf);
    n = ss_read_exact(req, buf, 3);
    ss_writef(req, "%zd:%.3s|", n, buf);
    n = ss_readline(req, buf, sizeof buf);
    ss_writef(req, "%zd:%s|", n, n > 0 ? buf : "");
    memset(buf, 0, sizeof buf);
    n = ss_read(req, buf, 3);
    ss_writef(req, "%zd:%.3s|", n, buf);
    /* The packet ends without '\n': like a stream that ends mid-line. */
    n = ss_readline(req, buf, sizeof buf);
    ss_writef(req, "%zd:%s|", n, n > 0 ? buf : "");
    n = ss_readline(req, buf, sizeof buf);
    ss_writef(req, "%zd|", n);
    n = ss_read(req, buf, sizeof buf);
    ss_writef(req, "%zd|", n);
    n = ss_read_exact(req, buf, 1);
    ss_writef(req, "%zd|", n);
    const char *flag = ss_request_truncated(req) ? "cut" : "whole";
    ss_write(req, flag, strlen(flag));
    return 0;
}

static const ss_handler_class read_every_way_handler = {
    .base = &ss_datagram_handler,
    .handle = read_packet_every_way,
};

static void
handler_reads_packet_and_replies_in_one_datagram(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &read_every_way_handler, 0);
    int fd = connect_client(&t);

    const char *packet = "hello\nworld\npartial";
    test_send_all(fd, packet, strlen(packet));
    char want[256];
    int want_len =
        snprintf(want, sizeof want,
                 "6:hello\n|3:wor|3:ld\n|3:par|4:tial|0|0|%d|whole", SS_EOF);
    /* Exactly one datagram of exactly this length: test_recv_exact sees
     * the real size through MSG_TRUNC. */
    char got[256];
    test_recv_exact(fd, got, (size_t)want_len);
    got[want_len] = '\0';
    assert_string_equal(got, want);

    /* Each datagram is its own request: a second one is read afresh. */
    test_send_all(fd, packet, strlen(packet));
    test_recv_exact(fd, got, (size_t)want_len);
    got[want_len] = '\0';
    assert_string_equal(got, want);

    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.log_lines, 0);
    ctx_destroy();
}
FOR_UDP_AND_UNIX(handler_reads_packet_and_replies_in_one_datagram)

static int write_then_wait(ss_request *req)
{
    ctx.rc[0] = ss_write(req, "reply", 5);
    sem_post(&ctx.handler_ready);
    if (!sem_wait_seconds(&ctx.test_go, 10.0))
        return -ETIMEDOUT;
    return 0;
}

/* What finish writes is part of the reply: it is sent after finish. */
static int finish_appends(ss_request *req)
{
    ctx.rc[1] = ss_write_all(req, "+finish", 7);
    return 0;
}

static const ss_handler_class write_then_wait_handler = {
    .base = &ss_datagram_handler,
    .handle = write_then_wait,
    .finish = finish_appends,
};

static void reply_is_sent_after_finish(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &write_then_wait_handler, 0);
    int fd = connect_client(&t);

    test_send_all(fd, "request", 7);
    assert_true(sem_wait_seconds(&ctx.handler_ready, 10.0));
    if (datagram_arrives_within(fd, 150))
        fail_msg("the reply left before the handler returned");
    sem_post(&ctx.test_go);
    char got[32];
    test_recv_exact(fd, got, 12);
    assert_memory_equal(got, "reply+finish", 12);

    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.rc[0], 5);
    assert_int_equal(ctx.rc[1], 7);
    ctx_destroy();
}
FOR_UDP_AND_UNIX(reply_is_sent_after_finish)

static int write_nothing(ss_request *req)
{
    (void)req;
    return 0;
}

static const ss_handler_class silent_handler = {
    .base = &ss_datagram_handler,
    .handle = write_nothing,
};

static void empty_reply_is_still_sent(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &silent_handler, 0);
    int fd = connect_client(&t);

    /* Python's DatagramRequestHandler.finish sends wfile's contents
     * unconditionally: the client gets a zero-length datagram. */
    test_send_all(fd, "ping", 4);
    if (!datagram_arrives_within(fd, 10000))
        fail_msg("no (empty) reply datagram arrived");
    char buf[16];
    ssize_t r = recv(fd, buf, sizeof buf, MSG_TRUNC | MSG_DONTWAIT);
    assert_int_equal(r, 0);

    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.log_lines, 0);
    ctx_destroy();
}
FOR_UDP_AND_UNIX(empty_reply_is_still_sent)

/* ---- max_packet_size ------------------------------------------------- */

#define MAX_PACKET 100

/* Reply: '1' or '0' for ss_request_truncated(), then every byte the
 * handler could read from the packet. */
static int echo_with_truncation_flag(ss_request *req)
{
    ss_write(req, ss_request_truncated(req) ? "1" : "0", 1);
    char buf[7]; /* odd size: several reads per packet */
    ssize_t n;
    while ((n = ss_read(req, buf, sizeof buf)) > 0)
        ss_write(req, buf, (size_t)n);
    return n < 0 ? (int)n : 0;
}

static const ss_handler_class truncation_handler = {
    .base = &ss_datagram_handler,
    .handle = echo_with_truncation_flag,
};

static void expect_truncation(int fd, const unsigned char *data, size_t sent,
                              bool truncated)
{
    test_send_all(fd, data, sent);
    size_t seen = sent < MAX_PACKET ? sent : MAX_PACKET;
    char got[MAX_PACKET + 2];
    test_recv_exact(fd, got, 1 + seen);
    if (got[0] != (truncated ? '1' : '0'))
        fail_msg("a %zu-byte datagram with max_packet_size %d: "
                 "ss_request_truncated() is %c",
                 sent, MAX_PACKET, got[0]);
    if (memcmp(got + 1, data, seen) != 0)
        fail_msg("the handler did not see the first %zu bytes of a %zu-byte "
                 "datagram",
                 seen, sent);
}

static void oversized_datagram_is_cut_and_flagged(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &truncation_handler, MAX_PACKET);
    int fd = connect_client(&t);

    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    expect_truncation(fd, data, 150, true);
    /* The boundary: a full buffer is not a cut packet, one byte more is. */
    expect_truncation(fd, data, MAX_PACKET, false);
    expect_truncation(fd, data, MAX_PACKET + 1, true);
    expect_truncation(fd, data, MAX_PACKET - 1, false);
    expect_truncation(fd, data, 0, false);
    expect_truncation(fd, data, sizeof data, true);
    /* The flag belongs to one request, not to the server. */
    expect_truncation(fd, data, 5, false);

    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.log_lines, 0);
    ctx_destroy();
}
FOR_UDP_AND_UNIX(oversized_datagram_is_cut_and_flagged)

/* ---- reply size ------------------------------------------------------ */

static int fill_reply_to_the_limit(ss_request *req)
{
    static char big[UDP_MAX_PAYLOAD + 1];
    memset(big, 'r', sizeof big);
    ctx.rc[0] = ss_write(req, big, UDP_MAX_PAYLOAD);
    ctx.rc[1] = ss_write(req, big, 1);
    ctx.rc[2] = ss_write_all(req, big, 1);
    return 0;
}

static const ss_handler_class fill_reply_handler = {
    .base = &ss_datagram_handler,
    .handle = fill_reply_to_the_limit,
};

static int oversized_reply_in_one_write(ss_request *req)
{
    static char big[UDP_MAX_PAYLOAD + 1];
    memset(big, 's', sizeof big);
    ctx.rc[0] = ss_write(req, big, UDP_MAX_PAYLOAD + 1);
    /* The refused write added nothing: the reply is just this. */
    ctx.rc[1] = ss_write(req, "small", 5);
    return 0;
}

static const ss_handler_class oversized_reply_handler = {
    .base = &ss_datagram_handler,
    .handle = oversized_reply_in_one_write,
};

static void test_udp_reply_larger_than_65507_bytes_is_refused(void **state)
{
    (void)state;
    ctx_reset();
    test_server t;
    start_server(&t, &ss_udp, &fill_reply_handler, 0);
    int fd = connect_client(&t);
    test_send_all(fd, "x", 1);
    char *got = malloc(UDP_MAX_PAYLOAD + 1);
    assert_non_null(got);
    /* The reply that fit is still sent, whole. */
    test_recv_exact(fd, got, UDP_MAX_PAYLOAD);
    for (size_t i = 0; i < UDP_MAX_PAYLOAD; i++)
        if (got[i] != 'r')
            fail_msg("reply byte %zu is 0x%02x", i, (unsigned char)got[i]);
    free(got);
    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.rc[0], UDP_MAX_PAYLOAD);
    assert_int_equal(ctx.rc[1], -EMSGSIZE);
    assert_int_equal(ctx.rc[2], -EMSGSIZE);
    ctx_destroy();

    ctx_reset();
    start_server(&t, &ss_udp, &oversized_reply_handler, 0);
    fd = connect_client(&t);
    test_send_all(fd, "x", 1);
    char small[8];
    test_recv_exact(fd, small, 5);
    assert_memory_equal(small, "small", 5);
    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.rc[0], -EMSGSIZE);
    assert_int_equal(ctx.rc[1], 5);
    ctx_destroy();
}

/* Unix datagram sockets carry more than UDP; the header leaves the reply
 * limit open. Whatever the library accepts must arrive whole, and what it
 * refuses must be refused with -EMSGSIZE and leave the reply unchanged. */
#define UNIX_BIG_REPLY 100000

static int big_unix_reply(ss_request *req)
{
    char *big = malloc(UNIX_BIG_REPLY);
    if (!big)
        return -ENOMEM;
    for (size_t i = 0; i < UNIX_BIG_REPLY; i++)
        big[i] = (char)(i % 251);
    ctx.rc[0] = ss_write(req, big, UNIX_BIG_REPLY);
    free(big);
    return 0;
}

static const ss_handler_class big_unix_reply_handler = {
    .base = &ss_datagram_handler,
    .handle = big_unix_reply,
};

static void
test_unix_datagram_large_reply_arrives_whole_or_is_refused(void **state)
{
    (void)state;
    ctx_reset();
    test_server t;
    start_server(&t, &ss_unix_datagram, &big_unix_reply_handler, 0);
    int fd = connect_client(&t);
    int rcvbuf = 4 * UNIX_BIG_REPLY;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    test_send_all(fd, "x", 1);
    char *got = malloc(UNIX_BIG_REPLY + 1);
    assert_non_null(got);
    size_t n = recv_reply(fd, got, UNIX_BIG_REPLY + 1);
    close(fd);
    stop_server(&t);

    if (ctx.rc[0] == UNIX_BIG_REPLY) {
        assert_int_equal(n, UNIX_BIG_REPLY);
        for (size_t i = 0; i < UNIX_BIG_REPLY; i++)
            if ((unsigned char)got[i] != i % 251)
                fail_msg("reply byte %zu is wrong", i);
    } else {
        assert_int_equal(ctx.rc[0], -EMSGSIZE);
        assert_int_equal(n, 0);
    }
    free(got);
    ctx_destroy();
}

/* ---- stream-only calls ----------------------------------------------- */

static int try_sendfile(ss_request *req)
{
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    off_t offset = 0;
    ctx.rc[0] = ss_sendfile(req, fd, &offset, 10);
    ctx.rc[1] = offset;
    close(fd);
    return 0;
}

static const ss_handler_class sendfile_handler = {
    .base = &ss_datagram_handler,
    .handle = try_sendfile,
};

static void sendfile_is_not_supported(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &sendfile_handler, 0);
    int fd = connect_client(&t);
    test_send_all(fd, "x", 1);
    char buf[16];
    test_recv_exact(fd, buf, 0); /* the empty reply */
    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.rc[0], -EOPNOTSUPP);
    assert_int_equal(ctx.rc[1], 0);
    ctx_destroy();
}
FOR_UDP_AND_UNIX(sendfile_is_not_supported)

/* ---- the UDP time server a new user writes (issue 18) ----------------- */

/* Any datagram in, the time out: "TIME 1700000000.123\n"; "ISO" asks for
 * the UTC date instead. The reply collects in the request and leaves
 * after finish, like Python's DatagramRequestHandler's wfile. */
static int time_handle(ss_request *req)
{
    char ask[16];
    int n = ss_read(req, ask, sizeof ask - 1);
    if (n < 0)
        return n;
    ask[n] = '\0';
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (strncmp(ask, "ISO", 3) == 0) {
        struct tm tm;
        char text[32];
        strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ",
                 gmtime_r(&now.tv_sec, &tm));
        n = ss_writef(req, "ISO %s\n", text);
    } else {
        n = ss_writef(req, "TIME %lld.%03ld\n", (long long)now.tv_sec,
                      now.tv_nsec / 1000000);
    }
    return n < 0 ? n : 0;
}

static const ss_handler_class time_handler = {
    .base = &ss_datagram_handler,
    .handle = time_handle,
};

static void time_server_answers(const ss_strategy *strategy)
{
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_udp, strategy,
                                            "127.0.0.1:0", &time_handler, NULL,
                                            0.05),
                     0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    for (int i = 0; i < 3; i++) {
        time_t before = time(NULL);
        test_send_all(fd, "now?", 4);
        char reply[64];
        ssize_t n = recv(fd, reply, sizeof reply - 1, 0);
        assert_true(n > 5);
        reply[n] = '\0';
        long long seconds = 0;
        assert_int_equal(sscanf(reply, "TIME %lld.", &seconds), 1);
        assert_true(seconds >= (long long)before &&
                    seconds <= (long long)time(NULL));
    }
    test_send_all(fd, "ISO", 3);
    char reply[64];
    ssize_t n = recv(fd, reply, sizeof reply - 1, 0);
    assert_int_equal(n, (ssize_t)strlen("ISO 2026-01-01T00:00:00Z\n"));
    reply[n] = '\0';
    assert_true(strncmp(reply, "ISO 20", 6) == 0 && reply[n - 2] == 'Z');
    close(fd);
    test_server_stop(&t);
}

static void test_udp_time_server_sync(void **state)
{
    (void)state;
    time_server_answers(&ss_sync);
}

static void test_udp_time_server_threading(void **state)
{
    (void)state;
    time_server_answers(&ss_threading); /* ThreadingUDPServer */
}

static void test_udp_time_server_coroutines(void **state)
{
    (void)state;
    time_server_answers(&ss_coroutines);
}

#define BOTH(name)                                                             \
    cmocka_unit_test(test_##name##_over_udp),                                  \
        cmocka_unit_test(test_##name##_over_unix)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(handler_reads_packet_and_replies_in_one_datagram),
        BOTH(reply_is_sent_after_finish),
        BOTH(empty_reply_is_still_sent),
        BOTH(oversized_datagram_is_cut_and_flagged),
        cmocka_unit_test(test_udp_reply_larger_than_65507_bytes_is_refused),
        cmocka_unit_test(
            test_unix_datagram_large_reply_arrives_whole_or_is_refused),
        BOTH(sendfile_is_not_supported),
        cmocka_unit_test(test_udp_time_server_sync),
        cmocka_unit_test(test_udp_time_server_threading),
        cmocka_unit_test(test_udp_time_server_coroutines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
