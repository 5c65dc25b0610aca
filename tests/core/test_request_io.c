/*
 * test_request_io.c — what a stream handler's reads and writes do over real
 * TCP and Unix stream connections: ss_read, ss_read_exact, ss_readline,
 * ss_write, ss_write_all, ss_writef, ss_flush and ss_sendfile, plus the
 * handler-class options that shape them (timeout, wbufsize,
 * disable_nagle_algorithm).
 *
 * Each test runs a small handler class under ss_sync on a background
 * thread (support.h) and drives it with a plain-socket client. Handlers
 * cannot use cmocka assertions (they run on the server thread), so they
 * record what they saw in a shared io_ctx; the test reads it after
 * test_server_stop(), whose pthread_join orders those writes before the
 * reads. Where a test must know what the handler is doing *now* (buffered
 * writes, disconnects) handler and test meet at semaphores, always with a
 * timeout so a broken library fails instead of hanging.
 *
 * The only sleeps are the ~20 ms pauses that split a line across packets
 * and the short "nothing arrives" windows of the buffering tests: those are
 * the behaviour under test, not synchronisation.
 */
#include "send_probe.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Everything a handler and its test share; reset by each test. */
typedef struct io_ctx {
    char address[160];
    char report[2048]; /* what the handler saw, as text */
    size_t report_len;
    ssize_t rc[4]; /* return values the test checks */
    double elapsed[2];
    off_t offsets[3];
    int value; /* e.g. TCP_NODELAY as seen by the handler */
    bool handled;
    /* Inputs for the handler. */
    const char *path;
    size_t size;
    const unsigned char *data;
    /* Handler/test rendezvous. */
    sem_t handler_ready;
    sem_t test_go;
    int log_lines;
    char last_log[256];
} io_ctx;

static io_ctx ctx;

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

/* Handlers append what they saw; the test compares the whole text. */
static void report(const char *fmt, ...) SS_PRINTF(1, 2);
static void report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof ctx.report - ctx.report_len;
    int n = vsnprintf(ctx.report + ctx.report_len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        ctx.report_len += (size_t)n < room ? (size_t)n : room - 1;
}

/* Failed requests are expected in some tests; keep their reports out of
 * the test output but countable. Runs on the server thread, read after
 * the join. */
static void capture_log(void *user, const char *line)
{
    io_ctx *c = user;
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

/* A server of the given stream kind on a fresh loopback port or Unix path,
 * with the shared ctx as config.user. */
static void start_server(test_server *t, const ss_server_class *kind,
                         const ss_handler_class *handler)
{
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &ctx;
    cfg.log = capture_log;
    cfg.unlink_on_close = true;
    if (kind->family != AF_UNIX)
        snprintf(ctx.address, sizeof ctx.address, "127.0.0.1:0");
    else
        test_unix_address(ctx.address, sizeof ctx.address, "rio");
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
    if (ss_server_kind(t->srv) == &ss_tcp) {
        /* The client's own Nagle must not merge the pieces a test sends
         * apart on purpose. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Wait until the server closes the connection, discarding nothing: any
 * byte that arrives is a test failure. */
static void expect_eof(int fd)
{
    char byte;
    ssize_t r;
    do
        r = recv(fd, &byte, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r != 0)
        fail_msg("expected EOF from the server, got %zd (%s)", r,
                 r < 0 ? strerror(errno) : "data");
}

/* True when no byte arrives on fd within ms milliseconds. */
static bool nothing_arrives_within(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc;
    do
        rc = poll(&pfd, 1, ms);
    while (rc < 0 && errno == EINTR);
    return rc == 0;
}

/* Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
static void fill_random(unsigned char *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed ? seed : 88172645463325252ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)(x >> 24);
    }
}

/* Each stream test runs once per stream kind. */
#define FOR_TCP_AND_UNIX(name)                                                 \
    static void test_##name##_over_tcp(void **state)                           \
    {                                                                          \
        (void)state;                                                           \
        name(&ss_tcp);                                                         \
    }                                                                          \
    static void test_##name##_over_unix(void **state)                          \
    {                                                                          \
        (void)state;                                                           \
        name(&ss_unix_stream);                                                 \
    }

/* ---- ss_readline ----------------------------------------------------- */

static int readline_three_times(ss_request *req)
{
    char line[64];
    for (int i = 0; i < 3; i++) {
        ssize_t n = ss_readline(req, line, sizeof line);
        report("%zd:%s|", n, n >= 0 ? line : "");
    }
    return 0;
}

static const ss_handler_class readline_three_times_handler = {
    .base = &ss_stream_handler,
    .handle = readline_three_times,
};

static void
readline_joins_lines_split_across_packets(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &readline_three_times_handler);
    int fd = connect_client(&t);

    /* The pauses make each piece a separate segment, so a line is split
     * across reads and one read holds the end of one line and the start of
     * the next. */
    test_send_all(fd, "hel", 3);
    test_sleep_ms(20);
    test_send_all(fd, "lo\nwor", 6);
    test_sleep_ms(20);
    test_send_all(fd, "ld\n", 3);
    shutdown(fd, SHUT_WR);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    assert_string_equal(ctx.report, "6:hello\n|6:world\n|0:|");
    assert_int_equal(ctx.log_lines, 0);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(readline_joins_lines_split_across_packets)

/* size 8: 7 bytes plus the NUL. The line buffer is larger than what is
 * passed, pre-filled, so a write past `size` shows up as changed bytes. */
static int readline_at_limit(ss_request *req)
{
    for (int i = 0; i < 5; i++) {
        char line[16];
        memset(line, '#', sizeof line);
        ssize_t n = ss_readline(req, line, 8);
        line[sizeof line - 1] = '\0';
        bool overrun = strspn(line + 8, "#") != sizeof line - 9;
        report("%zd:%s%s|", n, n == 0 ? "" : line, overrun ? "!OVERRUN" : "");
    }
    return 0;
}

static const ss_handler_class readline_at_limit_handler = {
    .base = &ss_stream_handler,
    .handle = readline_at_limit,
};

static void readline_limit_is_size_minus_one(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &readline_at_limit_handler);
    int fd = connect_client(&t);

    /* "abcdef\n" is exactly size - 1 = 7 bytes: it fits. "ABCDEFG\n" is
     * one byte more: the first 7 bytes come back with -EMSGSIZE and the
     * '\n' is still there to read. */
    const char *input = "abcdef\nABCDEFG\nxyz\n";
    test_send_all(fd, input, strlen(input));
    shutdown(fd, SHUT_WR);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    char want[128];
    snprintf(want, sizeof want, "7:abcdef\n|%d:ABCDEFG|1:\n|4:xyz\n|0:|",
             -EMSGSIZE);
    assert_string_equal(ctx.report, want);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(readline_limit_is_size_minus_one)

static int readline_long_line(ss_request *req)
{
    /* A 20-byte line through an 8-byte buffer: two -EMSGSIZE pieces of 7,
     * then the remaining 6 with the newline; nothing lost or repeated. */
    for (int i = 0; i < 4; i++) {
        char line[8];
        ssize_t n = ss_readline(req, line, sizeof line);
        report("%zd:%s|", n, n == 0 ? "" : line);
    }
    return 0;
}

static const ss_handler_class readline_long_line_handler = {
    .base = &ss_stream_handler,
    .handle = readline_long_line,
};

static void
readline_too_long_line_is_read_in_pieces(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &readline_long_line_handler);
    int fd = connect_client(&t);
    test_send_all(fd, "0123456789", 10);
    test_sleep_ms(20);
    test_send_all(fd, "ABCDEFGHI\n", 10);
    shutdown(fd, SHUT_WR);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    char want[128];
    snprintf(want, sizeof want, "%d:0123456|%d:789ABCD|6:EFGHI\n|0:|",
             -EMSGSIZE, -EMSGSIZE);
    assert_string_equal(ctx.report, want);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(readline_too_long_line_is_read_in_pieces)

static void readline_returns_partial_line_at_eof(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &readline_three_times_handler);
    int fd = connect_client(&t);
    test_send_all(fd, "partial", 7);
    shutdown(fd, SHUT_WR);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    /* No '\n': the peer closed mid-line. Then end of stream, repeatedly. */
    assert_string_equal(ctx.report, "7:partial|0:|0:|");
    ctx_destroy();
}
FOR_TCP_AND_UNIX(readline_returns_partial_line_at_eof)

/* ---- ss_read, ss_read_exact ---------------------------------------- */

static int read_exact_then_eof(ss_request *req)
{
    char buf[16];
    memset(buf, 0, sizeof buf);
    ssize_t n = ss_read_exact(req, buf, 3);
    report("%zd:%.3s|", n, buf);
    memset(buf, 0, sizeof buf);
    n = ss_read_exact(req, buf, 10);
    report("%zd:%.10s|", n, buf);
    n = ss_read(req, buf, sizeof buf);
    report("%zd|", n);
    return 0;
}

static const ss_handler_class read_exact_handler = {
    .base = &ss_stream_handler,
    .handle = read_exact_then_eof,
};

static void
read_exact_reports_eof_when_peer_closes_early(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &read_exact_handler);
    int fd = connect_client(&t);
    test_send_all(fd, "abc", 3);
    test_sleep_ms(20);
    test_send_all(fd, "HELLO", 5);
    shutdown(fd, SHUT_WR);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    /* 3 bytes arrive in full; 10 were asked for but only 5 came: SS_EOF,
     * with the 5 in the buffer; after that the stream is at its end. */
    char want[128];
    snprintf(want, sizeof want, "3:abc|%d:HELLO|0|", SS_EOF);
    assert_string_equal(ctx.report, want);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(read_exact_reports_eof_when_peer_closes_early)

static int read_in_pairs_until_eof(ss_request *req)
{
    char buf[2];
    for (int i = 0; i < 6; i++) {
        ssize_t n = ss_read(req, buf, sizeof buf);
        report("%zd:%.*s|", n, n > 0 ? (int)n : 0, buf);
        if (n <= 0 && i >= 4)
            break;
    }
    return 0;
}

static const ss_handler_class read_pairs_handler = {
    .base = &ss_stream_handler,
    .handle = read_in_pairs_until_eof,
};

static void read_returns_zero_at_eof(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &read_pairs_handler);
    int fd = connect_client(&t);
    test_send_all(fd, "wxyz", 4);
    test_sleep_ms(20);
    test_send_all(fd, "!", 1);
    shutdown(fd, SHUT_WR);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    /* Reads of at most 2: "wx", "yz", "!", then 0 — and 0 again. */
    assert_string_equal(ctx.report, "2:wx|2:yz|1:!|0:|0:|");
    ctx_destroy();
}
FOR_TCP_AND_UNIX(read_returns_zero_at_eof)

/* ---- binary data --------------------------------------------------- */

/* Echo through ss_read and ss_write_all with an odd-sized buffer, so reads
 * straddle the 8192-byte read buffer at shifting offsets. */
static int binary_echo(ss_request *req)
{
    char buf[1000];
    size_t total = 0;
    for (;;) {
        ssize_t n = ss_read(req, buf, sizeof buf);
        if (n < 0) {
            ctx.rc[0] = n;
            return (int)n;
        }
        if (n == 0)
            break;
        ssize_t w = ss_write_all(req, buf, (size_t)n);
        if (w != n) {
            ctx.rc[1] = w;
            return w < 0 ? (int)w : -EIO;
        }
        total += (size_t)n;
    }
    ctx.size = total;
    return 0;
}

static const ss_handler_class binary_echo_handler = {
    .base = &ss_stream_handler,
    .handle = binary_echo,
};

/* Send out and receive the same number of bytes at the same time, so a
 * large echo cannot deadlock on full socket buffers. */
static void exchange(int fd, const unsigned char *out, size_t n,
                     unsigned char *in)
{
    size_t sent = 0, got = 0;
    double deadline = test_now() + 60.0;
    while (got < n) {
        if (test_now() > deadline)
            fail_msg("echo stalled: sent %zu, received %zu of %zu", sent, got,
                     n);
        struct pollfd pfd = {.fd = fd,
                             .events = POLLIN | (sent < n ? POLLOUT : 0)};
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        if (sent < n && (pfd.revents & POLLOUT)) {
            ssize_t w =
                send(fd, out + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                fail_msg("send: %s", strerror(errno));
            if (sent == n)
                shutdown(fd, SHUT_WR);
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, in + got, n - got, MSG_DONTWAIT);
            if (r == 0)
                fail_msg("EOF after %zu of %zu echoed bytes", got, n);
            if (r > 0)
                got += (size_t)r;
            else if (errno != EAGAIN && errno != EINTR)
                fail_msg("recv: %s", strerror(errno));
        }
    }
}

static void echo_is_byte_exact(const ss_server_class *kind,
                               const unsigned char *data, size_t n)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &binary_echo_handler);
    int fd = connect_client(&t);
    unsigned char *back = malloc(n);
    assert_non_null(back);
    exchange(fd, data, n, back);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    if (memcmp(back, data, n) != 0) {
        size_t i = 0;
        while (back[i] == data[i])
            i++;
        fail_msg("echo differs at byte %zu of %zu: sent 0x%02x, got 0x%02x", i,
                 n, data[i], back[i]);
    }
    assert_int_equal(ctx.size, n);
    assert_int_equal(ctx.rc[0], 0);
    assert_int_equal(ctx.rc[1], 0);
    free(back);
    ctx_destroy();
}

static void binary_payloads_echo_byte_exact(const ss_server_class *kind)
{
    /* Every byte value, including NUL, '\n', '\r' and 0xff. */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    echo_is_byte_exact(kind, all, sizeof all);

    size_t n = 1 << 20;
    unsigned char *random_bytes = malloc(n);
    assert_non_null(random_bytes);
    fill_random(random_bytes, n, 0x5eed);
    echo_is_byte_exact(kind, random_bytes, n);
    free(random_bytes);
}
FOR_TCP_AND_UNIX(binary_payloads_echo_byte_exact)

/* ---- per-request timeout ------------------------------------------- */

static int read_with_timeout(ss_request *req)
{
    char buf[16];
    double start = test_now();
    ctx.rc[0] = ss_read(req, buf, sizeof buf);
    ctx.elapsed[0] = test_now() - start;

    /* A changed timeout applies to the next call, also for readline. */
    ss_request_set_timeout(req, 0.1);
    start = test_now();
    ctx.rc[1] = ss_readline(req, buf, sizeof buf);
    ctx.elapsed[1] = test_now() - start;
    return 0;
}

static const ss_handler_class timeout_handler = {
    .base = &ss_stream_handler,
    .handle = read_with_timeout,
    .timeout = 0.2,
};

/* The handler's two reads (read_with_timeout) time out on their own, and
 * the server then closes the connection. */
static void expect_read_timeouts(const ss_server_class *kind,
                                 const ss_handler_class *handler)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, handler);
    int fd = connect_client(&t);
    /* Send nothing; the handler's reads must give up on their own and the
     * server then closes the connection. */
    double start = test_now();
    expect_eof(fd);
    double waited = test_now() - start;
    close(fd);
    stop_server(&t);

    assert_int_equal(ctx.rc[0], -ETIMEDOUT);
    assert_int_equal(ctx.rc[1], -ETIMEDOUT);
    /* Not early (the deadline is 0.2 s; allow clock granularity), and
     * bounded (generous: the machine is shared). */
    if (ctx.elapsed[0] < 0.18 || ctx.elapsed[0] > 3.0)
        fail_msg("ss_read timed out after %.3f s, expected about 0.2 s",
                 ctx.elapsed[0]);
    if (ctx.elapsed[1] < 0.08 || ctx.elapsed[1] > 3.0)
        fail_msg("ss_readline timed out after %.3f s, expected about 0.1 s",
                 ctx.elapsed[1]);
    assert_true(waited < 5.0);
    ctx_destroy();
}

static void
request_timeout_makes_read_fail_with_etimedout(const ss_server_class *kind)
{
    expect_read_timeouts(kind, &timeout_handler);
}
FOR_TCP_AND_UNIX(request_timeout_makes_read_fail_with_etimedout)

/* The class's timeout is the request's from the start, whatever the
 * base: ss_base_handler (no base at all), or a subclass of
 * ss_stream_handler whose setup does not call the base's. */
static int setup_without_super(ss_request *req)
{
    (void)req;
    return 0;
}

static const ss_handler_class timeout_without_base = {
    .handle = read_with_timeout,
    .timeout = 0.2,
};

static const ss_handler_class timeout_setup_overridden = {
    .base = &ss_stream_handler,
    .setup = setup_without_super,
    .handle = read_with_timeout,
    .timeout = 0.2,
};

static void timeout_applies_without_stream_handler(const ss_server_class *kind)
{
    expect_read_timeouts(kind, &timeout_without_base);
    expect_read_timeouts(kind, &timeout_setup_overridden);
}
FOR_TCP_AND_UNIX(timeout_applies_without_stream_handler)

#define NEVER_READ_SIZE ((size_t)64 << 20)

static int write_with_timeout(ss_request *req)
{
    char *big = calloc(1, NEVER_READ_SIZE);
    if (!big)
        return -ENOMEM;
    double start = test_now();
    ctx.rc[0] = ss_write_all(req, big, NEVER_READ_SIZE);
    ctx.elapsed[0] = test_now() - start;
    free(big);
    sem_post(&ctx.handler_ready);
    return 0;
}

static const ss_handler_class write_timeout_handler = {
    .base = &ss_stream_handler,
    .handle = write_with_timeout,
    .timeout = 0.3,
};

static void
request_timeout_makes_write_fail_with_etimedout(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &write_timeout_handler);
    int fd = connect_client(&t);
    /* Never read: 64 MiB cannot fit in the socket buffers, so the write
     * must give up at its deadline instead of blocking forever. */
    bool done = sem_wait_seconds(&ctx.handler_ready, 15.0);
    close(fd);
    stop_server(&t);
    assert_true(done);
    assert_int_equal(ctx.rc[0], -ETIMEDOUT);
    if (ctx.elapsed[0] < 0.28 || ctx.elapsed[0] > 5.0)
        fail_msg("ss_write_all timed out after %.3f s, expected about 0.3 s",
                 ctx.elapsed[0]);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(request_timeout_makes_write_fail_with_etimedout)

/* ---- buffered writes ----------------------------------------------- */

#define WBUFSIZE 4096

static int buffered_small_writes(ss_request *req)
{
    ctx.rc[0] = ss_write_all(req, "first", 5);
    sem_post(&ctx.handler_ready);
    if (!sem_wait_seconds(&ctx.test_go, 10.0))
        return -ETIMEDOUT;
    ctx.rc[1] = ss_flush(req);

    char filler[3000];
    memset(filler, 'a', sizeof filler);
    ctx.rc[2] = ss_write(req, filler, sizeof filler);
    sem_post(&ctx.handler_ready);
    if (!sem_wait_seconds(&ctx.test_go, 10.0))
        return -ETIMEDOUT;
    /* Returning without a flush: the library must send it after finish. */
    return 0;
}

static const ss_handler_class buffered_small_handler = {
    .base = &ss_stream_handler,
    .handle = buffered_small_writes,
    .wbufsize = WBUFSIZE,
};

static void
buffered_writes_wait_for_flush_or_finish(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &buffered_small_handler);
    int fd = connect_client(&t);

    assert_true(sem_wait_seconds(&ctx.handler_ready, 10.0));
    if (!nothing_arrives_within(fd, 150))
        fail_msg("a buffered write reached the client before ss_flush");
    sem_post(&ctx.test_go);
    char buf[3000];
    test_recv_exact(fd, buf, 5);
    assert_memory_equal(buf, "first", 5);

    assert_true(sem_wait_seconds(&ctx.handler_ready, 10.0));
    if (!nothing_arrives_within(fd, 150))
        fail_msg("a buffered write reached the client before finish");
    sem_post(&ctx.test_go);
    size_t n = test_recv_all(fd, buf, sizeof buf);
    assert_int_equal(n, 3000);
    for (size_t i = 0; i < n; i++)
        if (buf[i] != 'a')
            fail_msg("byte %zu of the buffered write is 0x%02x", i,
                     (unsigned char)buf[i]);
    expect_eof(fd);
    close(fd);
    stop_server(&t);

    assert_int_equal(ctx.rc[0], 5);
    assert_int_equal(ctx.rc[1], 0);
    assert_int_equal(ctx.rc[2], 3000);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(buffered_writes_wait_for_flush_or_finish)

#define BUFFERED_TOTAL 10000

static int buffered_many_writes(ss_request *req)
{
    /* 100 writes of 100 bytes through a 4096-byte buffer: the buffer fills
     * and spills along the way, and at most one buffer's worth is left
     * when the handler pauses. */
    unsigned char piece[100];
    for (int i = 0; i < BUFFERED_TOTAL / 100; i++) {
        for (int j = 0; j < 100; j++)
            piece[j] = (unsigned char)(i * 100 + j);
        ssize_t w = ss_write_all(req, piece, sizeof piece);
        if (w != (ssize_t)sizeof piece) {
            ctx.rc[0] = w;
            return -EIO;
        }
    }
    sem_post(&ctx.handler_ready);
    if (!sem_wait_seconds(&ctx.test_go, 10.0))
        return -ETIMEDOUT;
    return 0;
}

static const ss_handler_class buffered_many_handler = {
    .base = &ss_stream_handler,
    .handle = buffered_many_writes,
    .wbufsize = WBUFSIZE,
};

static void buffered_writes_spill_when_full_and_finish_sends_rest(
    const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &buffered_many_handler);
    int fd = connect_client(&t);
    unsigned char buf[BUFFERED_TOTAL + 1];

    assert_true(sem_wait_seconds(&ctx.handler_ready, 10.0));
    /* Take what the full buffers sent; then nothing more may come until
     * the handler finishes. */
    size_t got = 0;
    while (!nothing_arrives_within(fd, 150)) {
        ssize_t r = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (r <= 0)
            fail_msg("recv while the handler pauses: %zd (%s)", r,
                     r < 0 ? strerror(errno) : "EOF");
        got += (size_t)r;
    }
    if (got < BUFFERED_TOTAL - WBUFSIZE || got >= BUFFERED_TOTAL)
        fail_msg("with a %d-byte buffer, %zu of %d written bytes arrived "
                 "before finish",
                 WBUFSIZE, got, BUFFERED_TOTAL);
    sem_post(&ctx.test_go);
    got += test_recv_all(fd, buf + got, sizeof buf - got);
    assert_int_equal(got, BUFFERED_TOTAL);
    for (size_t i = 0; i < BUFFERED_TOTAL; i++)
        if (buf[i] != (unsigned char)i)
            fail_msg("byte %zu is 0x%02x, expected 0x%02x", i, buf[i],
                     (unsigned char)i);
    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.rc[0], 0);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(buffered_writes_spill_when_full_and_finish_sends_rest)

/* ---- ss_writef ----------------------------------------------------- */

#define LONG_ARG 3000

static int writef_handler_fn(ss_request *req)
{
    char *long_arg = malloc(LONG_ARG + 1);
    if (!long_arg)
        return -ENOMEM;
    for (size_t i = 0; i < LONG_ARG; i++)
        long_arg[i] = (char)('a' + i % 26);
    long_arg[LONG_ARG] = '\0';
    ctx.rc[0] = ss_writef(req, "n=%05d;x=%x;s=%s;", 42, 255u, "short");
    ctx.rc[1] = ss_writef(req, "<%s>%c%zu\n", long_arg, '!', (size_t)LONG_ARG);
    ctx.rc[2] = ss_writef(req, "%s", "");
    free(long_arg);
    return 0;
}

static const ss_handler_class writef_handler = {
    .base = &ss_stream_handler,
    .handle = writef_handler_fn,
};

static void writef_formats_short_and_long_output(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &writef_handler);
    int fd = connect_client(&t);
    char *got = malloc(2 * LONG_ARG);
    assert_non_null(got);
    size_t n = test_recv_all(fd, got, 2 * LONG_ARG - 1);
    got[n] = '\0';
    close(fd);
    stop_server(&t);

    char *want = malloc(2 * LONG_ARG);
    assert_non_null(want);
    int first = snprintf(want, 2 * LONG_ARG, "n=00042;x=ff;s=short;");
    char *p = want + first;
    *p++ = '<';
    for (size_t i = 0; i < LONG_ARG; i++)
        *p++ = (char)('a' + i % 26);
    int second = snprintf(p, 64, ">!%d\n", LONG_ARG);
    assert_string_equal(got, want);
    assert_int_equal(ctx.rc[0], first);
    assert_int_equal(ctx.rc[1], 1 + LONG_ARG + second);
    assert_int_equal(ctx.rc[2], 0);
    free(got);
    free(want);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(writef_formats_short_and_long_output)

/* ---- ss_sendfile --------------------------------------------------- */

#define FILE_SIZE (3 * 1000 * 1000 + 7)

#define HEADER "HEADER\r\n\r\n"

static int sendfile_handler_fn(ss_request *req)
{
    int fd = open(ctx.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* A header first (held back by a buffered writer, which ss_sendfile
     * must send before the file: an HTTP response's shape), then the
     * whole file, a slice from the middle, and a request past the end
     * that must come back short. */
    ctx.rc[3] = ss_write_all(req, HEADER, strlen(HEADER));
    off_t offset = 0;
    ctx.rc[0] = ss_sendfile(req, fd, &offset, FILE_SIZE);
    ctx.offsets[0] = offset;
    offset = 1000;
    ctx.rc[1] = ss_sendfile(req, fd, &offset, 5000);
    ctx.offsets[1] = offset;
    offset = FILE_SIZE - 10;
    ctx.rc[2] = ss_sendfile(req, fd, &offset, 100);
    ctx.offsets[2] = offset;
    close(fd);
    return 0;
}

static const ss_handler_class sendfile_handler = {
    .base = &ss_stream_handler,
    .handle = sendfile_handler_fn,
};

static const ss_handler_class buffered_sendfile_handler = {
    .base = &ss_stream_handler,
    .handle = sendfile_handler_fn,
    .wbufsize = WBUFSIZE,
};

static void sendfile_through(const ss_server_class *kind,
                             const ss_handler_class *handler)
{
    ctx_reset();
    char path[] = "/tmp/sockserv-test-sendfile-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    unsigned char *data = malloc(FILE_SIZE);
    assert_non_null(data);
    fill_random(data, FILE_SIZE, 0xf11e);
    size_t written = 0;
    while (written < FILE_SIZE) {
        ssize_t w = write(file, data + written, FILE_SIZE - written);
        assert_true(w > 0);
        written += (size_t)w;
    }
    close(file);
    ctx.path = path;

    test_server t;
    start_server(&t, kind, handler);
    int fd = connect_client(&t);
    size_t header = strlen(HEADER);
    size_t expect = header + FILE_SIZE + 5000 + 10;
    unsigned char *got = malloc(expect + 1);
    assert_non_null(got);
    size_t n = test_recv_all(fd, got, expect + 1);
    close(fd);
    stop_server(&t);
    unlink(path);

    assert_int_equal(ctx.rc[3], header);
    assert_int_equal(ctx.rc[0], FILE_SIZE);
    assert_int_equal(ctx.offsets[0], FILE_SIZE);
    assert_int_equal(ctx.rc[1], 5000);
    assert_int_equal(ctx.offsets[1], 6000);
    assert_int_equal(ctx.rc[2], 10); /* short only at end of file */
    assert_int_equal(ctx.offsets[2], FILE_SIZE);
    assert_int_equal(n, expect);
    assert_memory_equal(got, HEADER, header);
    const unsigned char *body = got + header;
    assert_true(memcmp(body, data, FILE_SIZE) == 0);
    assert_true(memcmp(body + FILE_SIZE, data + 1000, 5000) == 0);
    assert_true(memcmp(body + FILE_SIZE + 5000, data + FILE_SIZE - 10, 10) ==
                0);
    free(got);
    free(data);
    ctx_destroy();
}

static void
sendfile_sends_file_byte_exact_and_advances_offset(const ss_server_class *kind)
{
    sendfile_through(kind, &sendfile_handler);
}

static void sendfile_sends_buffered_data_first(const ss_server_class *kind)
{
    sendfile_through(kind, &buffered_sendfile_handler);
}
FOR_TCP_AND_UNIX(sendfile_sends_buffered_data_first)
FOR_TCP_AND_UNIX(sendfile_sends_file_byte_exact_and_advances_offset)

/* ---- ss_write_all under a storm of signals -------------------------- */

#define STORM_SIZE ((size_t)32 << 20)

static atomic_int signals_caught;
static atomic_bool storm_stop;

static void count_signal(int signo)
{
    (void)signo;
    atomic_fetch_add(&signals_caught, 1);
}

static int write_all_big(ss_request *req)
{
    ctx.rc[0] = ss_write_all(req, ctx.data, ctx.size);
    return 0;
}

static const ss_handler_class write_all_big_handler = {
    .base = &ss_stream_handler,
    .handle = write_all_big,
};

struct storm_target {
    pthread_t thread;
};

static void *signal_storm(void *arg)
{
    struct storm_target *target = arg;
    while (!atomic_load(&storm_stop)) {
        pthread_kill(target->thread, SIGUSR1);
        test_sleep_ms(1);
    }
    return NULL;
}

static void write_all_completes_despite_signals(const ss_server_class *kind)
{
    ctx_reset();
    unsigned char *data = malloc(STORM_SIZE);
    assert_non_null(data);
    fill_random(data, STORM_SIZE, 0x516);
    ctx.data = data;
    ctx.size = STORM_SIZE;

    /* No SA_RESTART: every blocking call on the server thread that the
     * signal interrupts fails with EINTR, which the library must retry
     * without losing or repeating bytes (CPython's test_write). */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&signals_caught, 0);
    atomic_store(&storm_stop, false);

    test_server t;
    start_server(&t, kind, &write_all_big_handler);
    int fd = connect_client(&t);
    /* A small receive buffer keeps the server waiting for room often. */
    int rcvbuf = 32 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    struct storm_target target = {.thread = t.thread};
    pthread_t storm;
    assert_int_equal(pthread_create(&storm, NULL, signal_storm, &target), 0);
    /* Read nothing until the storm has hit the writer, now waiting for
     * room in the full socket: the test proves nothing unless signals
     * really interrupt it, and a reader that drained the data at once
     * could finish first (seen once over Unix in CI's ASan suite). */
    double storm_hits = test_now() + 10.0;
    while (atomic_load(&signals_caught) <= 10 && test_now() < storm_hits)
        test_sleep_ms(1);

    unsigned char *chunk = malloc(65536);
    assert_non_null(chunk);
    size_t got = 0;
    size_t mismatch = SIZE_MAX;
    double deadline = test_now() + 40.0;
    while (test_now() < deadline) {
        ssize_t r = recv(fd, chunk, 65536, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (mismatch == SIZE_MAX && got + (size_t)r <= STORM_SIZE &&
            memcmp(chunk, data + got, (size_t)r) != 0)
            mismatch = got;
        got += (size_t)r;
        /* Read slowly, so the writer keeps finding the socket full. */
        if ((got / 65536) % 4 == 0) {
            struct timespec pause = {.tv_nsec = 200000};
            nanosleep(&pause, NULL);
        }
    }
    atomic_store(&storm_stop, true);
    pthread_join(storm, NULL);
    close(fd);
    stop_server(&t);
    sigaction(SIGUSR1, &old, NULL);
    free(chunk);
    free(data);

    assert_int_equal(got, STORM_SIZE);
    if (mismatch != SIZE_MAX)
        fail_msg("received data differs from what was written at byte %zu",
                 mismatch);
    assert_int_equal(ctx.rc[0], (ssize_t)STORM_SIZE);
    /* The test proves nothing unless signals really hit the writer. */
    assert_true(atomic_load(&signals_caught) > 10);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(write_all_completes_despite_signals)

/* ---- TCP_NODELAY ---------------------------------------------------- */

static int read_nodelay(ss_request *req)
{
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(ss_request_fileno(req), IPPROTO_TCP, TCP_NODELAY, &value,
                   &len) < 0)
        value = -errno;
    ctx.value = value;
    ctx.handled = true;
    return 0;
}

static const ss_handler_class nodelay_handler = {
    .base = &ss_stream_handler,
    .handle = read_nodelay,
    .disable_nagle_algorithm = true,
};

static const ss_handler_class nagle_handler = {
    .base = &ss_stream_handler,
    .handle = read_nodelay,
};

static int nodelay_seen_with(const ss_server_class *kind,
                             const ss_handler_class *handler)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, handler);
    int fd = connect_client(&t);
    expect_eof(fd);
    close(fd);
    stop_server(&t);
    assert_true(ctx.handled);
    assert_int_equal(ctx.log_lines, 0);
    ctx_destroy();
    return ctx.value;
}

static int nodelay_seen_by(const ss_handler_class *handler)
{
    return nodelay_seen_with(&ss_tcp, handler);
}

/* Also with a server_activate of the user's own (test_listen_only): the
 * listener is not the library's to set TCP_NODELAY on, so each connection
 * gets it. */
static void test_disable_nagle_algorithm_sets_tcp_nodelay(void **state)
{
    (void)state;
    assert_int_equal(nodelay_seen_by(&nodelay_handler), 1);
    /* The control: without the option the connection keeps Nagle, so the
     * check above is not passing by accident. */
    assert_int_equal(nodelay_seen_by(&nagle_handler), 0);
    ss_server_class own_listen = ss_tcp;
    own_listen.server_activate = test_listen_only;
    assert_int_equal(nodelay_seen_with(&own_listen, &nodelay_handler), 1);
    assert_int_equal(nodelay_seen_with(&own_listen, &nagle_handler), 0);
}

static void test_disable_nagle_algorithm_is_harmless_on_unix(void **state)
{
    (void)state;
    ctx_reset();
    test_server t;
    start_server(&t, &ss_unix_stream, &nodelay_handler);
    int fd = connect_client(&t);
    expect_eof(fd);
    close(fd);
    stop_server(&t);
    /* setup must not fail the request just because there is no TCP. */
    assert_true(ctx.handled);
    assert_int_equal(ctx.log_lines, 0);
    ctx_destroy();
}

/* ---- peer gone while writing ---------------------------------------- */

static int write_until_error(ss_request *req)
{
    static char chunk[16 * 1024];
    memset(chunk, 'z', sizeof chunk);
    size_t total = 0;
    ssize_t rc = 0;
    /* The cap only bounds a broken library; a working one fails early. */
    while (total < ((size_t)1 << 30)) {
        rc = ss_write_all(req, chunk, sizeof chunk);
        if (rc < 0)
            break;
        if (total == 0)
            sem_post(&ctx.handler_ready);
        total += (size_t)rc;
    }
    ctx.rc[0] = rc;
    /* Writing again after the failure must fail the same quiet way. */
    ctx.rc[1] = ss_write_all(req, chunk, 16);
    ctx.handled = true;
    return 0;
}

static const ss_handler_class write_until_error_handler = {
    .base = &ss_stream_handler,
    .handle = write_until_error,
    .timeout = 20.0, /* a broken library fails the test, never hangs it */
};

static void
write_to_vanished_client_fails_without_sigpipe(const ss_server_class *kind)
{
    ctx_reset();
    /* The default SIGPIPE disposition kills the process: the library must
     * avoid the signal per call (MSG_NOSIGNAL), not rely on SIG_IGN. */
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);

    test_server t;
    start_server(&t, kind, &write_until_error_handler);
    int fd = connect_client(&t);
    assert_true(sem_wait_seconds(&ctx.handler_ready, 10.0));
    if (kind == &ss_tcp) {
        /* Reset rather than FIN, so the very next send fails. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    stop_server(&t); /* joins: the handler has returned */
    sigaction(SIGPIPE, &old, NULL);

    assert_true(ctx.handled);
    if (ctx.rc[0] != -EPIPE && ctx.rc[0] != -ECONNRESET)
        fail_msg("ss_write_all to a closed peer returned %zd (%s), expected "
                 "-EPIPE or -ECONNRESET",
                 ctx.rc[0], ss_strerror((int)ctx.rc[0]));
    if (ctx.rc[1] != -EPIPE && ctx.rc[1] != -ECONNRESET)
        fail_msg("second ss_write_all returned %zd (%s)", ctx.rc[1],
                 ss_strerror((int)ctx.rc[1]));
    ctx_destroy();
}
FOR_TCP_AND_UNIX(write_to_vanished_client_fails_without_sigpipe)

/* sendfile() cannot take MSG_NOSIGNAL: the library must keep the SIGPIPE
 * it raises from reaching the process. A file bigger than the library's
 * small-file shortcut, so sendfile() itself runs. */
static int sendfile_until_error(ss_request *req)
{
    char path[] = "/tmp/sockserv-test-sendfile-XXXXXX";
    int file = mkstemp(path);
    if (file < 0)
        return -errno;
    unlink(path);
    static char block[64 * 1024];
    memset(block, 'f', sizeof block);
    for (int i = 0; i < 16; i++)
        if (write(file, block, sizeof block) != (ssize_t)sizeof block)
            return -EIO;
    ssize_t rc = 0;
    /* The client closes once this is posted: the transfer below is then
     * blocked on a full socket buffer or about to be. */
    sem_post(&ctx.handler_ready);
    for (int round = 0; round < 4096; round++) {
        off_t offset = 0;
        rc = ss_sendfile(req, file, &offset, 16 * sizeof block);
        if (rc < 0 || rc < (ssize_t)(16 * sizeof block))
            break;
    }
    ctx.rc[0] = rc;
    off_t offset = 0;
    ctx.rc[1] = ss_sendfile(req, file, &offset, 16 * sizeof block);
    close(file);
    ctx.handled = true;
    return 0;
}

static const ss_handler_class sendfile_until_error_handler = {
    .base = &ss_stream_handler,
    .handle = sendfile_until_error,
    .timeout = 20.0,
};

static void
sendfile_to_vanished_client_fails_without_sigpipe(const ss_server_class *kind)
{
    ctx_reset();
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);

    test_server t;
    start_server(&t, kind, &sendfile_until_error_handler);
    int fd = connect_client(&t);
    assert_true(sem_wait_seconds(&ctx.handler_ready, 10.0));
    if (kind == &ss_tcp) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    stop_server(&t);
    sigaction(SIGPIPE, &old, NULL);

    assert_true(ctx.handled);
    /* A short count is allowed when bytes went out before the error; the
     * next call must then report it. */
    if (ctx.rc[1] != -EPIPE && ctx.rc[1] != -ECONNRESET)
        fail_msg("ss_sendfile to a closed peer returned %zd (%s), expected "
                 "-EPIPE or -ECONNRESET",
                 ctx.rc[1], ss_strerror((int)ctx.rc[1]));
    /* No SIGPIPE left pending on this thread either. */
    sigset_t pending;
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
    ctx_destroy();
}
FOR_TCP_AND_UNIX(sendfile_to_vanished_client_fails_without_sigpipe)

/* ---- a stall that spans calls --------------------------------------- */

/* A client that stops reading. ss_sendfile returns a short count when its
 * wait to send times out after some bytes went out ("the next call reports
 * the error"); a caller that goes on, as every file server does, must not
 * get another whole timeout from the next call. However many calls it
 * takes, a request may go no longer than its timeout without a byte
 * moving. The send probe checks the deadline of every wait to send
 * against the last byte sent: no timing threshold, only what the library
 * asked for. */
#define STALL_TIMEOUT 0.3
#define STALL_FILE_SIZE ((off_t)64 << 20) /* more than any socket buffer */

static int sendfile_until_stalled(ss_request *req)
{
    int fd = open(ctx.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    off_t offset = 0;
    ssize_t n;
    int calls = 0;
    do {
        n = ss_sendfile(req, fd, &offset, (size_t)(STALL_FILE_SIZE - offset));
        calls++;
    } while (n > 0 && offset < STALL_FILE_SIZE && calls < 1000);
    close(fd);
    ctx.rc[0] = n;
    ctx.rc[1] = calls;
    sem_post(&ctx.handler_ready);
    return 0;
}

static const ss_handler_class sendfile_until_stalled_handler = {
    .base = &ss_stream_handler,
    .handle = sendfile_until_stalled,
    .timeout = STALL_TIMEOUT,
};

static void
stall_spanning_calls_ends_after_one_timeout(const ss_server_class *kind)
{
    ctx_reset();
    char path[] = "/tmp/sockserv-test-stall-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    assert_int_equal(ftruncate(file, STALL_FILE_SIZE), 0); /* sparse */
    close(file);
    ctx.path = path;

    test_send_probe_reset();
    ss_strategy probed;
    test_send_probe_strategy(&probed, &ss_sync);
    ss_config cfg;
    ss_config_init(&cfg);
    if (kind == &ss_tcp)
        snprintf(ctx.address, sizeof ctx.address, "127.0.0.1:0");
    else
        test_unix_address(ctx.address, sizeof ctx.address, "stall");
    cfg.unlink_on_close = true;
    test_server t;
    memset(&t, 0, sizeof t);
    assert_int_equal(ss_server_new(&t.srv, kind, &probed, ctx.address,
                                   &sendfile_until_stalled_handler, &cfg),
                     0);
    assert_int_equal(
        ss_server_set_transport(t.srv, test_send_probe_transport()), 0);
    assert_int_equal(test_server_run(&t, 0.05), 0);

    int fd = connect_client(&t);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* Never read. */
    bool done = sem_wait_seconds(&ctx.handler_ready, 15.0);
    close(fd);
    stop_server(&t);
    unlink(path);
    assert_true(done);
    assert_int_equal(ctx.rc[0], -ETIMEDOUT);
    double allowed = test_send_probe_longest_allowance();
    print_message("%zd call(s), %d wait(s) to send, at most %.3f s allowed "
                  "without progress (timeout %.1f s)\n",
                  ctx.rc[1], test_send_probe_waits(), allowed, STALL_TIMEOUT);
    assert_true(allowed > 0);
    /* The timeout, and the few microseconds between the probe's clock
     * reading after the last byte and the library's before its wait. */
    if (allowed > STALL_TIMEOUT + 0.1)
        fail_msg("a wait to send was allowed %.3f s past the last byte sent; "
                 "the timeout is %.1f s",
                 allowed, STALL_TIMEOUT);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(stall_spanning_calls_ends_after_one_timeout)
/* ---- one integer type for "a count or an error" ------------------------ */

/* Every request I/O call returns int, the handler's own return type, so
 * the documented pattern compiles without a cast (and without a warning
 * under -Wconversion). Checked at compile time: _Generic does not call. */
#define RETURNS_INT(call) _Generic((call), int: 1, default: 0)
_Static_assert(RETURNS_INT(ss_read(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_read_nowait(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_read_exact(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_readline(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_write(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_write_all(NULL, NULL, 0)) &&
                   RETURNS_INT(ss_writef(NULL, "%d", 0)) &&
                   RETURNS_INT(ss_sendfile(NULL, 0, NULL, 0)),
               "request I/O returns int, as handlers do");

/* The pattern of every example: no cast. Also asks for more than
 * SS_IO_MAX from the calls that must move everything: refused with
 * -EINVAL before a byte moves (buf is never touched). */
static int echo_once_and_probe_io_max(ss_request *req)
{
    char line[64];
    int n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? n : 0;
    ctx.rc[0] = ss_write_all(req, line, (size_t)SS_IO_MAX + 1);
    ctx.rc[1] = ss_read_exact(req, line, (size_t)SS_IO_MAX + 1);
    n = ss_write_all(req, line, (size_t)n);
    return n < 0 ? n : 0;
}

static const ss_handler_class io_max_handler = {
    .base = &ss_stream_handler,
    .handle = echo_once_and_probe_io_max,
};

static void counts_beyond_io_max_are_refused(const ss_server_class *kind)
{
    ctx_reset();
    test_server t;
    start_server(&t, kind, &io_max_handler);
    int fd = connect_client(&t);
    test_expect_echo(fd, "hello\n"); /* nothing else was sent before it */
    close(fd);
    stop_server(&t);
    assert_int_equal(ctx.rc[0], -EINVAL);
    assert_int_equal(ctx.rc[1], -EINVAL);
    assert_int_equal(ctx.log_lines, 0);
    ctx_destroy();
}
FOR_TCP_AND_UNIX(counts_beyond_io_max_are_refused)

#define BOTH(name)                                                             \
    cmocka_unit_test(test_##name##_over_tcp),                                  \
        cmocka_unit_test(test_##name##_over_unix)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(readline_joins_lines_split_across_packets),
        BOTH(readline_limit_is_size_minus_one),
        BOTH(readline_too_long_line_is_read_in_pieces),
        BOTH(readline_returns_partial_line_at_eof),
        BOTH(read_exact_reports_eof_when_peer_closes_early),
        BOTH(read_returns_zero_at_eof),
        BOTH(binary_payloads_echo_byte_exact),
        BOTH(request_timeout_makes_read_fail_with_etimedout),
        BOTH(timeout_applies_without_stream_handler),
        BOTH(request_timeout_makes_write_fail_with_etimedout),
        BOTH(buffered_writes_wait_for_flush_or_finish),
        BOTH(buffered_writes_spill_when_full_and_finish_sends_rest),
        BOTH(writef_formats_short_and_long_output),
        BOTH(sendfile_sends_file_byte_exact_and_advances_offset),
        BOTH(sendfile_sends_buffered_data_first),
        BOTH(write_all_completes_despite_signals),
        cmocka_unit_test(test_disable_nagle_algorithm_sets_tcp_nodelay),
        cmocka_unit_test(test_disable_nagle_algorithm_is_harmless_on_unix),
        BOTH(write_to_vanished_client_fails_without_sigpipe),
        BOTH(sendfile_to_vanished_client_fails_without_sigpipe),
        BOTH(stall_spanning_calls_ends_after_one_timeout),
        BOTH(counts_beyond_io_max_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
