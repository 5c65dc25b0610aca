/*
 * test_config.c — a zeroed ss_config (and a zeroed options struct of any
 * strategy) is the default config; a value out of range is refused with
 * -EINVAL and a log line that names the field.
 */
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What a new user writes: only the field they care about. */
static void test_zeroed_config_serves_under_every_strategy(void **state)
{
    (void)state;
    const ss_strategy *strategies[] = {&ss_sync,        &ss_threading,
                                       &ss_thread_pool, &ss_forking,
                                       &ss_prefork,     &ss_coroutines};
    for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++) {
        ss_config cfg = {.allow_reuse_address = true};
        test_server t;
        assert_int_equal(test_server_start_with(&t, &ss_tcp, strategies[i],
                                                "127.0.0.1:0",
                                                &test_echo_handler, &cfg, 0.05),
                         0);
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        test_send_all(fd, "zero\n", 5);
        shutdown(fd, SHUT_WR);
        char buf[16];
        assert_int_equal(test_recv_all(fd, buf, sizeof buf), 5);
        assert_memory_equal(buf, "zero\n", 5);
        close(fd);
        test_server_stop(&t);
        assert_int_equal(t.serve_rc, 0);
    }
}

static void test_zeroes_resolve_to_the_documented_defaults(void **state)
{
    (void)state;
    ss_config cfg = {0};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_udp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    const ss_config *c = ss_server_config(srv);
    assert_int_equal(c->request_queue_size, SOMAXCONN);
    assert_int_equal(c->max_packet_size, 8192);
    assert_true(c->shutdown_grace == 5.0);
    assert_true(c->proxy_protocol_timeout == 5.0);
    assert_true(c->timeout == 0);
    assert_true(ss_server_fileno(srv) >= 0); /* bound: bind_and_activate */
    ss_server_free(srv);

    /* ss_forking's own default for ss_handle_request(): Python's 300 s. */
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_forking, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    assert_true(ss_server_config(srv)->timeout == 300.0);
    ss_server_free(srv);

    cfg.shutdown_grace = SS_NO_GRACE;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    assert_true(ss_server_config(srv)->shutdown_grace == 0);
    ss_server_free(srv);
}

/* A bad value: -EINVAL, nothing leaked, and one line naming the field. */
static void expect_refused(const ss_strategy *strategy, ss_config *cfg,
                           const char *field)
{
    int fds = test_count_open_fds();
    test_log log;
    test_log_init(&log);
    cfg->log = test_log_hook;
    cfg->user = &log;
    ss_server *srv = (ss_server *)cfg; /* must become NULL */
    assert_int_equal(ss_server_new(&srv, &ss_tcp, strategy, "127.0.0.1:0",
                                   &test_echo_handler, cfg),
                     -EINVAL);
    assert_null(srv);
    assert_int_equal(test_count_open_fds(), fds);
    assert_int_equal(test_log_count(&log), 1);
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(&log, 0, line, sizeof line);
    if (!strstr(line, field))
        fail_msg("'%s' does not name %s", line, field);
}

static void test_refused_config_names_the_field(void **state)
{
    (void)state;
    ss_config cfg = {.max_packet_size = (size_t)32 << 20};
    expect_refused(&ss_sync, &cfg, "ss_config.max_packet_size");
    cfg = (ss_config){.shutdown_grace = 2e6};
    expect_refused(&ss_sync, &cfg, "ss_config.shutdown_grace");
    cfg = (ss_config){.max_connections = -1};
    expect_refused(&ss_sync, &cfg, "ss_config.max_connections");
    cfg = (ss_config){.timeout = -1};
    expect_refused(&ss_sync, &cfg, "ss_config.timeout");
    cfg = (ss_config){.request_queue_size = -5};
    expect_refused(&ss_sync, &cfg, "ss_config.request_queue_size");
}

static void test_refused_strategy_option_names_the_field(void **state)
{
    (void)state;
    ss_threading_options threading = {.max_threads = -1};
    ss_config cfg = {.strategy_options = &threading};
    expect_refused(&ss_threading, &cfg, "ss_threading_options.max_threads");

    ss_thread_pool_options pool = {.pool_size = -1};
    cfg = (ss_config){.strategy_options = &pool};
    expect_refused(&ss_thread_pool, &cfg, "ss_thread_pool_options.pool_size");

    ss_forking_options forking = {.max_children = -3};
    cfg = (ss_config){.strategy_options = &forking};
    expect_refused(&ss_forking, &cfg, "ss_forking_options.max_children");

    ss_prefork_options prefork = {.workers = -1};
    cfg = (ss_config){.strategy_options = &prefork};
    expect_refused(&ss_prefork, &cfg, "ss_prefork_options.workers");
    prefork = (ss_prefork_options){.worker_strategy = &ss_coroutines};
    cfg = (ss_config){.strategy_options = &prefork};
    expect_refused(&ss_prefork, &cfg, "ss_prefork_options.worker_strategy");

    ss_coroutine_options coro = {.threads = -2};
    cfg = (ss_config){.strategy_options = &coro};
    expect_refused(&ss_coroutines, &cfg, "ss_coroutine_options.threads");
}

/* The strategy copies its options: the caller's struct may go away. */
static void test_strategy_options_are_copied(void **state)
{
    (void)state;
    ss_thread_pool_options pool = {.pool_size = 1, .eager_start = true};
    ss_config cfg = {.strategy_options = &pool};
    test_server t;
    assert_int_equal(test_server_start_with(&t, &ss_tcp, &ss_thread_pool,
                                            "127.0.0.1:0", &test_echo_handler,
                                            &cfg, 0.05),
                     0);
    memset(&pool, 0xff, sizeof pool); /* gone, as far as the server knows */
    assert_null(ss_server_config(t.srv)->strategy_options);
    int fd = test_connect(t.srv);
    test_send_all(fd, "x", 1);
    shutdown(fd, SHUT_WR);
    char c;
    assert_int_equal(test_recv_all(fd, &c, 1), 1);
    close(fd);
    test_server_stop(&t);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_config_serves_under_every_strategy),
        cmocka_unit_test(test_zeroes_resolve_to_the_documented_defaults),
        cmocka_unit_test(test_refused_config_names_the_field),
        cmocka_unit_test(test_refused_strategy_option_names_the_field),
        cmocka_unit_test(test_strategy_options_are_copied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
