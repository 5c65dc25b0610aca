/*
 * test_tls_disabled.c — in a library built without TLS
 * (-DSOCKSERV_TLS=OFF), sockserv/tls.h still links and every call says
 * -ENOTSUP; plain servers are untouched.
 */
#include "support.h"

#include <sockserv/tls.h>

#include <errno.h>
#include <unistd.h>

static void test_tls_calls_say_not_supported(void **state)
{
    (void)state;
    assert_false(ss_tls_available());
    ss_tls_context *tls = (ss_tls_context *)&tls;
    ss_tls_options o = {.cert_file = "cert.pem"};
    assert_int_equal(ss_tls_context_new(&tls, &o), -ENOTSUP);
    assert_null(tls);
    assert_int_equal(ss_tls_context_reload(NULL), -ENOTSUP);
    assert_int_equal(ss_tls_context_add_certificate(NULL, "a", NULL, NULL),
                     -ENOTSUP);
    ss_tls_context_free(NULL);

    test_server t;
    assert_int_equal(test_server_start(&t, &ss_tcp, "127.0.0.1:0",
                                       &test_echo_handler, NULL),
                     0);
    assert_int_equal(ss_server_set_tls(t.srv, NULL), -ENOTSUP);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_expect_echo_to_eof(fd, "plain as ever\n");
    close(fd);
    test_server_stop(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_calls_say_not_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
