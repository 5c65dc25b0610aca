/*
 * test_version.c — the version API: the SS_VERSION_* macros of the header
 * a program compiles with, and ss_version() / ss_version_string() of the
 * library it runs with.
 *
 * Built twice (tests/CMakeLists.txt): against the static library, and
 * against the shared one as test_version_shared, so the run-time answer
 * really comes from the libsockserv.so the test loaded. CMake passes its
 * project(VERSION) in as SOCKSERV_PROJECT_VERSION, which ties the header's
 * numbers to the ones in the SONAME, sockserv.pc and the CMake package.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sockserv/sockserv.h>

#include <stdio.h>
#include <string.h>

/* The macros must work where feature checks use them: in #if. */
#if !SS_VERSION_AT_LEAST(0, 0, 0)
#error "SS_VERSION_AT_LEAST(0, 0, 0) must hold for every version"
#endif
#if SS_VERSION_AT_LEAST(SS_VERSION_MAJOR + 1, 0, 0)
#error "SS_VERSION_AT_LEAST must be false for the next major version"
#endif
#if SS_VERSION_NUMBER !=                                                       \
    SS_VERSION_ENCODE(SS_VERSION_MAJOR, SS_VERSION_MINOR, SS_VERSION_PATCH)
#error "SS_VERSION_NUMBER must encode the three parts"
#endif

/* What the header says, written out the way the library must write it. */
static void header_version_text(char *buf, size_t size)
{
    snprintf(buf, size, "%d.%d.%d", SS_VERSION_MAJOR, SS_VERSION_MINOR,
             SS_VERSION_PATCH);
}

static void test_runtime_number_equals_the_header_number(void **state)
{
    (void)state;
    assert_int_equal(ss_version(), SS_VERSION_NUMBER);
}

static void test_runtime_string_equals_the_header_string(void **state)
{
    (void)state;
    char expected[32];
    header_version_text(expected, sizeof expected);
    assert_string_equal(SS_VERSION_STRING, expected);
    assert_non_null(ss_version_string());
    assert_string_equal(ss_version_string(), expected);
}

/* "MAJOR.MINOR.PATCH": three decimal numbers, two dots, nothing else — no
 * suffix, no leading zeros, no spaces — so scripts can split it. */
static void test_string_is_three_decimal_numbers(void **state)
{
    (void)state;
    const char *s = ss_version_string();
    int parts = 0;
    while (*s != '\0') {
        size_t digits = strspn(s, "0123456789");
        assert_true(digits > 0);
        assert_false(digits > 1 && s[0] == '0');
        parts++;
        s += digits;
        if (*s == '.') {
            s++;
            assert_true(*s != '\0'); /* "0.1." is not a version */
        } else {
            assert_int_equal(*s, '\0');
        }
    }
    assert_int_equal(parts, 3);
}

static void test_number_decodes_into_major_minor_patch(void **state)
{
    (void)state;
    unsigned v = ss_version();
    assert_int_equal(v >> 16, SS_VERSION_MAJOR);
    assert_int_equal((v >> 8) & 0xff, SS_VERSION_MINOR);
    assert_int_equal(v & 0xff, SS_VERSION_PATCH);
}

/* A later version always encodes to a larger number, whichever part grew. */
static void test_encoding_orders_versions(void **state)
{
    (void)state;
    assert_true(SS_VERSION_ENCODE(0, 1, 1) > SS_VERSION_ENCODE(0, 1, 0));
    assert_true(SS_VERSION_ENCODE(0, 2, 0) > SS_VERSION_ENCODE(0, 1, 255));
    assert_true(SS_VERSION_ENCODE(1, 0, 0) > SS_VERSION_ENCODE(0, 255, 255));
    assert_int_equal(SS_VERSION_ENCODE(1, 2, 3), 0x010203u);
}

static void test_at_least_compares_every_part(void **state)
{
    (void)state;
    const int ma = SS_VERSION_MAJOR, mi = SS_VERSION_MINOR,
              pa = SS_VERSION_PATCH;
    assert_true(SS_VERSION_AT_LEAST(ma, mi, pa));
    assert_false(SS_VERSION_AT_LEAST(ma, mi, pa + 1));
    assert_false(SS_VERSION_AT_LEAST(ma, mi + 1, 0));
    assert_false(SS_VERSION_AT_LEAST(ma + 1, 0, 0));
    if (pa > 0)
        assert_true(SS_VERSION_AT_LEAST(ma, mi, pa - 1));
    if (mi > 0)
        assert_true(SS_VERSION_AT_LEAST(ma, mi - 1, 255));
    if (ma > 0)
        assert_true(SS_VERSION_AT_LEAST(ma - 1, 255, 255));
}

/* The version in the header and the one CMake builds the SONAME, sockserv.pc
 * and the package version file from must be the same. */
static void test_version_equals_the_cmake_project_version(void **state)
{
    (void)state;
    assert_string_equal(ss_version_string(), SOCKSERV_PROJECT_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_number_equals_the_header_number),
        cmocka_unit_test(test_runtime_string_equals_the_header_string),
        cmocka_unit_test(test_string_is_three_decimal_numbers),
        cmocka_unit_test(test_number_decodes_into_major_minor_patch),
        cmocka_unit_test(test_encoding_orders_versions),
        cmocka_unit_test(test_at_least_compares_every_part),
        cmocka_unit_test(test_version_equals_the_cmake_project_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
