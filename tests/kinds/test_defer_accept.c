/*
 * test_defer_accept.c — config.defer_accept: TCP_DEFER_ACCEPT on a TCP
 * listener. A connection that has sent nothing is not handed to the
 * server; its first bytes hand it over at once; one that never sends is
 * handed over after about the configured time all the same. Without the
 * option a connection is handled as soon as it is made (the control).
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

/* Handlers run: counted when handle starts, before any read. */
static atomic_int handled;

static int count_then_echo(ss_request *req)
{
    atomic_fetch_add(&handled, 1);
    char buf[64];
    int n;
    while ((n = ss_read(req, buf, sizeof buf)) > 0)
        if (ss_write_all(req, buf, (size_t)n) < 0)
            return -1;
    return n < 0 ? n : 0;
}

static const ss_handler_class counting_handler = {
    .base = &ss_stream_handler,
    .handle = count_then_echo,
    .timeout = 20.0,
};

static bool handled_at_least(void *arg)
{
    return atomic_load(&handled) >= *(int *)arg;
}

static int listener_defer(ss_server *srv)
{
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(ss_server_fileno(srv), IPPROTO_TCP, TCP_DEFER_ACCEPT, &value,
                   &len) < 0)
        return -errno;
    return value;
}

static void start(test_server *t, double defer, const ss_server_class *kind)
{
    atomic_store(&handled, 0);
    ss_config cfg = {.defer_accept = defer};
    assert_int_equal(test_server_start_with(t, kind, &ss_threading,
                                            "127.0.0.1:0", &counting_handler,
                                            &cfg, 0.05),
                     0);
}

static void test_a_silent_connection_waits_for_its_first_bytes(void **state)
{
    (void)state;
    test_server t;
    start(&t, 1, &ss_tcp);
    assert_true(listener_defer(t.srv) > 0);
    double began = test_now();
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_sleep(0.3);
    /* The kernel hands the connection over after about a second anyway:
     * a test starved for that long proves nothing either way. */
    if (test_now() - began < 0.9)
        assert_int_equal(atomic_load(&handled), 0);
    /* Its bytes hand it over, and it is served as any other. */
    test_expect_echo(fd, "hello");
    assert_int_equal(atomic_load(&handled), 1);
    close(fd);
    test_server_stop(&t);
}

static void test_a_client_that_never_sends_is_handed_over_later(void **state)
{
    (void)state;
    test_server t;
    start(&t, 1, &ss_tcp);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    int one = 1;
    /* The kernel retransmits its SYN-ACK after about a second; the
     * client's answer to it hands the connection over. */
    assert_true(test_wait_for(handled_at_least, &one, 10.0));
    test_expect_echo(fd, "late");
    close(fd);
    test_server_stop(&t);
}

static void test_without_it_a_connection_is_handled_at_once(void **state)
{
    (void)state;
    test_server t;
    start(&t, 0, &ss_tcp);
    assert_int_equal(listener_defer(t.srv), 0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    int one = 1;
    assert_true(test_wait_for(handled_at_least, &one, 5.0));
    close(fd);
    test_server_stop(&t);
}

/* A server_activate of the user's own: the option was set when the
 * socket was made. */
static void test_own_server_activate_keeps_it(void **state)
{
    (void)state;
    ss_server_class own = ss_tcp;
    own.server_activate = test_listen_only;
    test_server t;
    start(&t, 0.2, &own); /* a fraction rounds up to a whole second */
    assert_true(listener_defer(t.srv) > 0);
    test_server_stop(&t);
}

/* An adopted listening socket (socket activation) that already has a
 * defer time, a service manager's DeferAcceptSec=, keeps it; one without
 * gets the config's. */
static int adopted_defer(int preset)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (preset > 0)
        assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &preset,
                                    sizeof preset),
                         0);
    assert_int_equal(listen(fd, 16), 0);
    int before = 0;
    socklen_t len = sizeof before;
    assert_int_equal(
        getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &before, &len), 0);
    ss_config cfg = {.defer_accept = 1};
    ss_server *srv = NULL;
    assert_int_equal(
        ss_server_new_fd(&srv, &ss_tcp, &ss_sync, fd, &counting_handler, &cfg),
        0);
    int after = listener_defer(srv);
    ss_server_free(srv); /* closes fd */
    return preset > 0 ? (after == before ? 1 : 0) : after;
}

static void test_adopted_socket_keeps_its_own(void **state)
{
    (void)state;
    assert_int_equal(adopted_defer(30), 1); /* unchanged */
    assert_true(adopted_defer(0) > 0);      /* the config's */
}

/* Other kinds ignore it: a Unix stream server starts and serves. */
static void test_other_kinds_ignore_it(void **state)
{
    (void)state;
    atomic_store(&handled, 0);
    char address[128];
    ss_config cfg = {.defer_accept = 1};
    test_server t;
    assert_int_equal(
        test_server_start(&t, &ss_unix_stream,
                          test_unix_address(address, sizeof address, "defer"),
                          &counting_handler, &cfg),
        0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_expect_echo(fd, "unix");
    close(fd);
    test_server_stop(&t);
}

static void test_bad_values_are_refused(void **state)
{
    (void)state;
    const double bad[] = {-1, 3601, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ss_config cfg = {.defer_accept = bad[i], .log = test_log_hook};
        test_log log;
        test_log_init(&log);
        cfg.user = &log;
        ss_server *srv = NULL;
        assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                       &counting_handler, &cfg),
                         -EINVAL);
        assert_null(srv);
        char line[TEST_LOG_LINE_SIZE];
        test_log_line(&log, 0, line, sizeof line);
        assert_non_null(strstr(line, "ss_config.defer_accept"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_silent_connection_waits_for_its_first_bytes),
        cmocka_unit_test(test_a_client_that_never_sends_is_handed_over_later),
        cmocka_unit_test(test_without_it_a_connection_is_handled_at_once),
        cmocka_unit_test(test_own_server_activate_keeps_it),
        cmocka_unit_test(test_adopted_socket_keeps_its_own),
        cmocka_unit_test(test_other_kinds_ignore_it),
        cmocka_unit_test(test_bad_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
