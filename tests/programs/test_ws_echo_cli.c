/*
 * test_ws_echo_cli.c — sockserv-ws-echo's command-line mistakes are usage
 * errors (exit status 2) that name the argument, as the other example
 * programs' are. (Its WebSocket behaviour is tests/e2e/ws_conformance.py.)
 */
#include "program_run.h"

#include <stdio.h>
#include <string.h>

#include <setjmp.h> /* cmocka.h needs these three first */
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static void expect_usage_error(const char *const argv[], const char *message)
{
    char err[4096];
    assert_int_equal(program_run(argv, err, sizeof err), 2);
    if (strstr(err, message) == NULL)
        fail_msg("expected \"%s\" in:\n%s", message, err);
}

/* It said "argument -?: invalid value" for a bad PORT. */
static void test_a_bad_port_names_the_port(void **state)
{
    (void)state;
    const char *big[] = {SOCKSERV_WS_ECHO_PATH, "99999", NULL};
    expect_usage_error(big, "argument PORT: invalid port: '99999'");
    const char *word[] = {SOCKSERV_WS_ECHO_PATH, "abc", NULL};
    expect_usage_error(word, "argument PORT: invalid port: 'abc'");
    const char *negative[] = {SOCKSERV_WS_ECHO_PATH, "--", "-1", NULL};
    expect_usage_error(negative, "argument PORT: invalid port: '-1'");
}

static void test_a_bad_option_value_names_the_option(void **state)
{
    (void)state;
    const char *mode[] = {SOCKSERV_WS_ECHO_PATH, "--mode", "bogus", NULL};
    expect_usage_error(mode, "argument --mode: invalid choice: 'bogus'");
    const char *threads[] = {SOCKSERV_WS_ECHO_PATH, "--threads", "0", NULL};
    expect_usage_error(threads, "argument --threads: invalid value: '0'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_bad_port_names_the_port),
        cmocka_unit_test(test_a_bad_option_value_names_the_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
