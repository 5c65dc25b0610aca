/*
 * test_address.c — the address strings users type: ss_address_parse() and
 * ss_address_format().
 *
 * The parser is the first thing that sees user input (command lines, config
 * files), so besides every form the header promises, these tests feed it
 * hostile strings: truncated brackets, stray signs and spaces in ports,
 * IPv4 in IPv6 brackets, oversized hosts and paths, non-ASCII bytes. Each
 * must be refused with the documented error, and — as the header promises —
 * a refused string must leave the caller's sockaddr and length untouched,
 * which every failure case checks by pre-filling them with a pattern.
 *
 * Formatting is checked against fixed strings and by round trip: parsing
 * what ss_address_format wrote must give back the same sockaddr.
 */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define PATTERN_BYTE 0xA5
#define PATTERN_LEN ((socklen_t)0x5A5A5A5A)

/* ---- helpers ----------------------------------------------------------- */

/* Parse text, which must fail with one of the allowed errors (the second
 * may be 0 when only one is allowed), and check that neither the sockaddr
 * nor the length was written. */
static void expect_reject2(const char *text, size_t shown, int err1, int err2)
{
    struct sockaddr_storage addr;
    struct sockaddr_storage pattern;
    memset(&addr, PATTERN_BYTE, sizeof addr);
    memset(&pattern, PATTERN_BYTE, sizeof pattern);
    socklen_t len = PATTERN_LEN;

    int rc = ss_address_parse(text, SOCK_STREAM, &addr, &len);
    if (rc != err1 && (err2 == 0 || rc != err2))
        fail_msg("ss_address_parse(\"%.*s\"%s) returned %d (%s), expected "
                 "%d%s",
                 (int)shown, text ? text : "(null)",
                 text && strlen(text) > shown ? "..." : "", rc, ss_strerror(rc),
                 err1, err2 ? " or another listed error" : "");
    if (memcmp(&addr, &pattern, sizeof addr) != 0)
        fail_msg("ss_address_parse(\"%.*s\") failed but wrote the sockaddr",
                 (int)shown, text ? text : "(null)");
    if (len != PATTERN_LEN)
        fail_msg("ss_address_parse(\"%.*s\") failed but wrote the length",
                 (int)shown, text ? text : "(null)");
}

static void expect_reject(const char *text, int err)
{
    expect_reject2(text, 80, err, 0);
}

/* Parse text, which must succeed; returns the result. */
static void parse_ok(const char *text, int socket_type,
                     struct sockaddr_storage *addr, socklen_t *len)
{
    memset(addr, PATTERN_BYTE, sizeof *addr);
    *len = PATTERN_LEN;
    int rc = ss_address_parse(text, socket_type, addr, len);
    if (rc != 0)
        fail_msg("ss_address_parse(\"%s\") returned %d (%s), expected 0", text,
                 rc, ss_strerror(rc));
}

static void expect_ipv4(const char *text, const char *ip, int port)
{
    struct sockaddr_storage addr;
    socklen_t len;
    parse_ok(text, SOCK_STREAM, &addr, &len);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&addr;
    struct in_addr want;
    assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
    if (in->sin_family != AF_INET)
        fail_msg("\"%s\": family %d, expected AF_INET", text, in->sin_family);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(in->sin_port), port);
    if (in->sin_addr.s_addr != want.s_addr)
        fail_msg("\"%s\": address 0x%08x, expected %s", text,
                 ntohl(in->sin_addr.s_addr), ip);
}

static void expect_ipv6(const char *text, const char *ip, int port)
{
    struct sockaddr_storage addr;
    socklen_t len;
    parse_ok(text, SOCK_STREAM, &addr, &len);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
    struct in6_addr want;
    assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
    if (in6->sin6_family != AF_INET6)
        fail_msg("\"%s\": family %d, expected AF_INET6", text,
                 in6->sin6_family);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(in6->sin6_port), port);
    if (memcmp(&in6->sin6_addr, &want, sizeof want) != 0)
        fail_msg("\"%s\": wrong IPv6 address, expected %s", text, ip);
    /* A literal without a scope must not pick up flow info or a scope
     * from uninitialised memory (the pattern fill would show). */
    assert_int_equal(in6->sin6_flowinfo, 0);
    assert_int_equal(in6->sin6_scope_id, 0);
}

/* "unix:/path": sun_path holds the path, NUL-terminated, and the length
 * covers at least the path. */
static void expect_unix_path(const char *text, const char *path)
{
    struct sockaddr_storage addr;
    socklen_t len;
    parse_ok(text, SOCK_STREAM, &addr, &len);
    const struct sockaddr_un *un = (const struct sockaddr_un *)&addr;
    size_t n = strlen(path);
    assert_int_equal(un->sun_family, AF_UNIX);
    assert_memory_equal(un->sun_path, path, n);
    assert_int_equal(un->sun_path[n], '\0');
    assert_true(len >= offsetof(struct sockaddr_un, sun_path) + n);
    assert_true(len <= sizeof(struct sockaddr_un));
}

/* "unix:@name": a leading NUL then the name, and a length that counts
 * exactly the name — the kernel treats every byte inside the length as part
 * of an abstract name, so one byte too many is a different socket. */
static void expect_unix_abstract(const char *text, const char *name)
{
    struct sockaddr_storage addr;
    socklen_t len;
    parse_ok(text, SOCK_DGRAM, &addr, &len);
    const struct sockaddr_un *un = (const struct sockaddr_un *)&addr;
    size_t n = strlen(name);
    assert_int_equal(un->sun_family, AF_UNIX);
    assert_int_equal(un->sun_path[0], '\0');
    assert_memory_equal(un->sun_path + 1, name, n);
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static char *repeat_char(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- accepted forms ---------------------------------------------------- */

static void test_parse_accepts_ipv4_literal_with_port(void **state)
{
    (void)state;
    expect_ipv4("127.0.0.1:8000", "127.0.0.1", 8000);
    expect_ipv4("0.0.0.0:1", "0.0.0.0", 1);
    expect_ipv4("255.255.255.255:65535", "255.255.255.255", 65535);
    expect_ipv4("10.1.2.3:0", "10.1.2.3", 0);
}

static void test_parse_empty_host_means_all_ipv4_interfaces(void **state)
{
    (void)state;
    expect_ipv4(":8000", "0.0.0.0", 8000);
    expect_ipv4(":0", "0.0.0.0", 0);
}

static void test_parse_accepts_bracketed_ipv6_with_port(void **state)
{
    (void)state;
    expect_ipv6("[::1]:8000", "::1", 8000);
    expect_ipv6("[::]:0", "::", 0);
    expect_ipv6("[::]:65535", "::", 65535);
    expect_ipv6("[fe80::1:2]:443", "fe80::1:2", 443);
    expect_ipv6("[1:2:3:4:5:6:7:8]:80", "1:2:3:4:5:6:7:8", 80);
    expect_ipv6("[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80);
}

static void test_parse_bare_ipv6_literal_means_port_zero(void **state)
{
    (void)state;
    expect_ipv6("::1", "::1", 0);
    expect_ipv6("::", "::", 0);
    expect_ipv6("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", 0);
    expect_ipv6("fe80::abcd", "fe80::abcd", 0);
}

static void test_parse_resolves_localhost_to_loopback(void **state)
{
    (void)state;
    int types[] = {SOCK_STREAM, SOCK_DGRAM};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        struct sockaddr_storage addr;
        socklen_t len;
        parse_ok("localhost:8000", types[i], &addr, &len);
        if (addr.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&addr;
            assert_int_equal(len, sizeof *in);
            assert_int_equal(ntohs(in->sin_port), 8000);
            assert_int_equal(ntohl(in->sin_addr.s_addr) >> 24, 127);
        } else if (addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
            assert_int_equal(len, sizeof *in6);
            assert_int_equal(ntohs(in6->sin6_port), 8000);
            assert_true(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
        } else {
            fail_msg("localhost resolved to family %d", addr.ss_family);
        }
    }
}

static void test_parse_accepts_unix_path(void **state)
{
    (void)state;
    expect_unix_path("unix:/tmp/sockserv.sock", "/tmp/sockserv.sock");
    expect_unix_path("unix:relative.sock", "relative.sock");
    /* Any byte but NUL is legal in a path, including spaces, colons and
     * non-ASCII bytes: the parser must pass them through untouched. */
    expect_unix_path("unix:/tmp/with space:and:colons",
                     "/tmp/with space:and:colons");
    expect_unix_path("unix:/tmp/\xff\xfe\xc3\xa9", "/tmp/\xff\xfe\xc3\xa9");
    /* "unix:@" only means abstract as the first character. */
    expect_unix_path("unix:/tmp/@at", "/tmp/@at");
}

static void test_parse_accepts_longest_unix_path_that_fits(void **state)
{
    (void)state;
    /* sun_path is 108 bytes: 107 characters plus the NUL fit. */
    size_t room = sizeof(((struct sockaddr_un *)0)->sun_path);
    char *path = repeat_char('p', room - 1);
    path[0] = '/';
    char *text = malloc(room + 8);
    assert_non_null(text);
    snprintf(text, room + 8, "unix:%s", path);
    expect_unix_path(text, path);
    free(text);
    free(path);
}

static void test_parse_abstract_name_has_exact_length(void **state)
{
    (void)state;
    expect_unix_abstract("unix:@name", "name");
    expect_unix_abstract("unix:@x", "x");
    expect_unix_abstract("unix:@with/slash and space", "with/slash and space");

    /* The longest name: sun_path minus the leading NUL. */
    size_t room = sizeof(((struct sockaddr_un *)0)->sun_path);
    char *name = repeat_char('n', room - 1);
    char *text = malloc(room + 8);
    assert_non_null(text);
    snprintf(text, room + 8, "unix:@%s", name);
    expect_unix_abstract(text, name);
    free(text);
    free(name);
}

/* ---- ports ------------------------------------------------------------- */

static void test_parse_accepts_port_bounds(void **state)
{
    (void)state;
    expect_ipv4("127.0.0.1:0", "127.0.0.1", 0);
    expect_ipv4("127.0.0.1:65535", "127.0.0.1", 65535);
    expect_ipv6("[::1]:0", "::1", 0);
    expect_ipv6("[::1]:65535", "::1", 65535);
}

static void test_parse_rejects_bad_ports(void **state)
{
    (void)state;
    static const char *const ports[] = {
        "65536",
        "-1",
        "+80",
        " 80",
        "80 ",
        "0x50",
        "",
        "8000a",
        "99999",
        "4294967376", /* 2^32 + 80: must not wrap to 80 */
        "18446744073709551696",
        "1e3",
        "80.0",
        "８０", /* full-width */
        "\t80",
        "80\n",
        "0 80",
        "-0",
    };
    const char *const hosts[] = {"127.0.0.1:%s", "[::1]:%s", ":%s",
                                 "localhost:%s"};
    for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++) {
        for (size_t p = 0; p < sizeof ports / sizeof ports[0]; p++) {
            char text[128];
            snprintf(text, sizeof text, hosts[h], ports[p]);
            expect_reject(text, -EINVAL);
        }
    }
}

/* ---- hostile and malformed strings ------------------------------------- */

static void test_parse_rejects_null_arguments(void **state)
{
    (void)state;
    expect_reject(NULL, -EINVAL);

    struct sockaddr_storage addr;
    socklen_t len = PATTERN_LEN;
    assert_int_equal(ss_address_parse("127.0.0.1:80", SOCK_STREAM, NULL, &len),
                     -EINVAL);
    assert_int_equal(len, PATTERN_LEN);
    memset(&addr, PATTERN_BYTE, sizeof addr);
    assert_int_equal(ss_address_parse("127.0.0.1:80", SOCK_STREAM, &addr, NULL),
                     -EINVAL);
}

static void test_parse_rejects_malformed_strings(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ":",
        "[",
        "]",
        "[]",
        "[::1",
        "[::1]",
        "[::1]8000",
        "[::1]:",
        "[]:80",
        "[1.2.3.4]:80",
        "[localhost]:80",
        "[::1]]:80",
        "[[::1]]:80",
        "[::1]:80:80",
        "[::1]:[80]",
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:80:80",
        "localhost",
        "localhost:",
        "unix:",
        "unix:@",
        "::::",
        ":::80",
        ":::::::::80",
        "1:2:3:4:5:6:7:8:9",
        "[1:2:3:4:5:6:7:8:9]:80",
        "1::2::3",
        "[1::2::3]:80",
        "[::1%]:80",
        "[%lo]:80",
        "[::1%%]:80",
        "::1%",
        "[ ::1]:80",
        "[::1 ]:80",
        "[::1] :80",
        "[::1]: 80",
        "[\xff::1]:80",
        "[::g]:80",
        "UNIX:/tmp/x.sock" /* not a host */,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i], -EINVAL);
}

/* getaddrinfo would read these by inet_aton's rules ("010" is octal,
 * "127.1" is 127.0.0.1): a typo must not bind somewhere unexpected. */
static void test_parse_refuses_inet_aton_number_forms(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "010.0.0.1:80",       "127.1:80",      "2130706433:80", "0x7f.1:80",
        "127.000.000.001:80", "0x7f000001:80", "1.2.3.4.5:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i], -EINVAL);
}

/* Spaces and non-ASCII bytes in a host name: a strict parser rejects them
 * outright (-EINVAL), a lenient one lets the resolver fail
 * (-EADDRNOTAVAIL); either way nothing must be accepted or written. */
static void test_parse_rejects_hosts_with_spaces_or_binary(void **state)
{
    (void)state;
    static const char *const bad[] = {
        " 127.0.0.1:80", "127.0.0.1 :80", "127.0. 0.1:80",
        "local host:80", "\xff\xfe:80",   "h\xc3\xa9llo:80",
        "host\t:80",     "host\n:80",     "127.0.0.1\x01:80",
        "%:80",          "host%lo:80",    "1.2.3.4%eth0:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject2(bad[i], 80, -EINVAL, -EADDRNOTAVAIL);
}

static void test_parse_scoped_ipv6_is_refused_or_exact(void **state)
{
    (void)state;
    /* The header does not promise scope ids. If the parser takes one it
     * must land in sin6_scope_id; otherwise the string is refused. */
    struct sockaddr_storage addr;
    memset(&addr, PATTERN_BYTE, sizeof addr);
    socklen_t len = PATTERN_LEN;
    int rc = ss_address_parse("[fe80::1%lo]:80", SOCK_STREAM, &addr, &len);
    if (rc == 0) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
        assert_int_equal(in6->sin6_family, AF_INET6);
        assert_int_equal(ntohs(in6->sin6_port), 80);
        assert_int_equal(in6->sin6_scope_id, if_nametoindex("lo"));
    } else {
        expect_reject("[fe80::1%lo]:80", -EINVAL);
    }
    expect_reject("[fe80::1%no-such-interface-xyz]:80", -EINVAL);
}

static void test_parse_rejects_very_long_host(void **state)
{
    (void)state;
    /* 300 characters: longer than any DNS name (253). */
    char *host = repeat_char('a', 300);
    char text[400];
    snprintf(text, sizeof text, "%s:80", host);
    expect_reject2(text, 40, -EINVAL, -EADDRNOTAVAIL);
    snprintf(text, sizeof text, "[%s]:80", host);
    expect_reject2(text, 40, -EINVAL, 0);
    free(host);

    /* A 300-character string of colons and digits: a bare IPv6 attempt
     * that must not overflow a fixed buffer. */
    char *colons = repeat_char(':', 300);
    expect_reject2(colons, 40, -EINVAL, 0);
    memset(colons, '1', 299);
    expect_reject2(colons, 40, -EINVAL, 0);
    free(colons);
}

static void test_parse_rejects_100_kb_strings(void **state)
{
    (void)state;
    size_t big = 100 * 1024;
    char *s = malloc(big + 16);
    assert_non_null(s);

    memset(s, 'a', big);
    s[big] = '\0';
    expect_reject2(s, 40, -EINVAL, 0); /* no port at all */

    memcpy(s + big, ":80", 4);
    expect_reject2(s, 40, -EINVAL, -EADDRNOTAVAIL);

    s[0] = '[';
    memcpy(s + big, "]:80", 5);
    expect_reject2(s, 40, -EINVAL, 0);

    memset(s, ':', big);
    s[big] = '\0';
    expect_reject2(s, 40, -EINVAL, 0);

    memset(s, '9', big);
    s[0] = ':';
    expect_reject2(s, 40, -EINVAL, 0); /* a 100 kB port */

    memcpy(s, "unix:/", 6);
    memset(s + 6, 'p', big - 6);
    s[big] = '\0';
    expect_reject2(s, 40, -ENAMETOOLONG, 0);

    memcpy(s, "unix:@", 6);
    expect_reject2(s, 40, -ENAMETOOLONG, 0);
    free(s);
}

static void test_parse_rejects_unix_path_longer_than_sun_path(void **state)
{
    (void)state;
    size_t room = sizeof(((struct sockaddr_un *)0)->sun_path);
    char text[512];

    /* 108 characters leave no room for the NUL. */
    char *path = repeat_char('p', room);
    path[0] = '/';
    snprintf(text, sizeof text, "unix:%s", path);
    expect_reject2(text, 40, -ENAMETOOLONG, 0);
    free(path);

    path = repeat_char('q', 300);
    path[0] = '/';
    snprintf(text, sizeof text, "unix:%s", path);
    expect_reject2(text, 40, -ENAMETOOLONG, 0);
    free(path);

    /* Abstract: 108 name characters plus the leading NUL do not fit. */
    char *name = repeat_char('n', room);
    snprintf(text, sizeof text, "unix:@%s", name);
    expect_reject2(text, 40, -ENAMETOOLONG, 0);
    free(name);
}

static void test_parse_unresolvable_name_is_addrnotavail(void **state)
{
    (void)state;
    double start = test_now();
    expect_reject("no-such-host.invalid:80", -EADDRNOTAVAIL);
    /* A generous bound: this only catches a resolver that hangs. */
    assert_true(test_now() - start < 30.0);
}

/* ---- formatting -------------------------------------------------------- */

static void expect_format(const char *text, const char *want)
{
    struct sockaddr_storage addr;
    socklen_t len;
    parse_ok(text, SOCK_STREAM, &addr, &len);
    char buf[256];
    memset(buf, 'X', sizeof buf);
    int n = ss_address_format((struct sockaddr *)&addr, len, buf, sizeof buf);
    if (n < 0)
        fail_msg("ss_address_format(\"%s\") returned %d (%s)", text, n,
                 ss_strerror(n));
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_format_writes_the_parse_syntax(void **state)
{
    (void)state;
    expect_format("127.0.0.1:8000", "127.0.0.1:8000");
    expect_format(":80", "0.0.0.0:80");
    expect_format("[::1]:8000", "[::1]:8000");
    expect_format("::", "[::]:0");
    expect_format("[1:2:3:4:5:6:7:8]:65535", "[1:2:3:4:5:6:7:8]:65535");
    expect_format("unix:/tmp/x.sock", "unix:/tmp/x.sock");
    expect_format("unix:@name", "unix:@name");
}

/* parse(format(parse(s))) must give the same sockaddr, byte for byte over
 * its length. */
static void expect_round_trip(const char *text)
{
    struct sockaddr_storage first, second;
    socklen_t first_len, second_len;
    parse_ok(text, SOCK_STREAM, &first, &first_len);
    char buf[256];
    int n = ss_address_format((struct sockaddr *)&first, first_len, buf,
                              sizeof buf);
    assert_true(n > 0);
    parse_ok(buf, SOCK_STREAM, &second, &second_len);
    if (first_len != second_len || memcmp(&first, &second, first_len) != 0)
        fail_msg("\"%s\" formatted as \"%s\" does not parse back to the same "
                 "address (lengths %u, %u)",
                 text, buf, (unsigned)first_len, (unsigned)second_len);
}

static void test_format_round_trips_through_parse(void **state)
{
    (void)state;
    expect_round_trip("127.0.0.1:8000");
    expect_round_trip("0.0.0.0:0");
    expect_round_trip("255.255.255.255:65535");
    expect_round_trip("[::1]:8000");
    expect_round_trip("[::]:0");
    expect_round_trip("[fe80::1:2]:443");
    expect_round_trip("[::ffff:10.0.0.1]:9");
    expect_round_trip("unix:/tmp/sockserv round trip.sock");
    expect_round_trip("unix:@abstract-round-trip");
    expect_round_trip("unix:@a");

    size_t room = sizeof(((struct sockaddr_un *)0)->sun_path);
    char *name = repeat_char('z', room - 1);
    char text[256];
    snprintf(text, sizeof text, "unix:@%s", name);
    expect_round_trip(text);
    name[0] = '/';
    snprintf(text, sizeof text, "unix:%s", name);
    expect_round_trip(text);
    free(name);
}

static void test_format_of_kernel_style_unix_addresses(void **state)
{
    (void)state;
    char buf[256];

    /* An unnamed peer: only the family. */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int n = ss_address_format((struct sockaddr *)&un, sizeof(sa_family_t), buf,
                              sizeof buf);
    assert_int_equal(n, 5);
    assert_string_equal(buf, "unix:");

    /* accept()/getsockname() report a path socket with the full struct
     * length: the name stops at the NUL. */
    snprintf(un.sun_path, sizeof un.sun_path, "/tmp/k.sock");
    n = ss_address_format((struct sockaddr *)&un, sizeof un, buf, sizeof buf);
    assert_string_equal(buf, "unix:/tmp/k.sock");
    assert_int_equal(n, strlen("unix:/tmp/k.sock"));

    /* A 108-byte path without a NUL (legal for the kernel): no overread
     * past sun_path. */
    memset(un.sun_path, 'w', sizeof un.sun_path);
    un.sun_path[0] = '/';
    n = ss_address_format((struct sockaddr *)&un, sizeof un, buf, sizeof buf);
    assert_int_equal(n, 5 + sizeof un.sun_path);
    assert_int_equal(strlen(buf), 5 + sizeof un.sun_path);
}

static void test_format_truncates_and_terminates(void **state)
{
    (void)state;
    struct sockaddr_storage addr;
    socklen_t len;
    const char *full[] = {"127.0.0.1:8000", "[::1]:8000", "unix:/tmp/t.sock",
                          "unix:@abstract"};
    for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
        parse_ok(full[i], SOCK_STREAM, &addr, &len);
        size_t want_len = strlen(full[i]);
        for (size_t size = 1; size <= want_len + 1; size++) {
            /* The buffer is exactly size bytes, on the heap, so writing
             * one byte too many is caught by ASan. */
            char *buf = malloc(size);
            assert_non_null(buf);
            memset(buf, 'X', size);
            int n = ss_address_format((struct sockaddr *)&addr, len, buf, size);
            size_t expect = size - 1 < want_len ? size - 1 : want_len;
            if (n != (int)expect || strlen(buf) != expect ||
                memcmp(buf, full[i], expect) != 0)
                fail_msg("format \"%s\" into %zu bytes: returned %d, \"%s\"",
                         full[i], size, n, buf);
            free(buf);
        }
    }

    /* Size 0: nothing may be written at all. */
    parse_ok("127.0.0.1:8000", SOCK_STREAM, &addr, &len);
    char guard = 'G';
    int n = ss_address_format((struct sockaddr *)&addr, len, &guard, 0);
    assert_true(n <= 0);
    assert_int_equal(guard, 'G');
}

static void test_format_rejects_unknown_family(void **state)
{
    (void)state;
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    addr.ss_family = AF_PACKET;
    char buf[64] = "untouched";
    int n = ss_address_format((struct sockaddr *)&addr, sizeof addr, buf,
                              sizeof buf);
    assert_int_equal(n, -EAFNOSUPPORT);

    /* A length too short for the family's struct must not be read past. */
    unsigned char *raw = malloc(4);
    assert_non_null(raw);
    memset(raw, 0, 4);
    sa_family_t family = AF_INET;
    memcpy(raw, &family, sizeof family);
    n = ss_address_format((struct sockaddr *)raw, 4, buf, sizeof buf);
    assert_true(n < 0);
    free(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_ipv4_literal_with_port),
        cmocka_unit_test(test_parse_empty_host_means_all_ipv4_interfaces),
        cmocka_unit_test(test_parse_accepts_bracketed_ipv6_with_port),
        cmocka_unit_test(test_parse_bare_ipv6_literal_means_port_zero),
        cmocka_unit_test(test_parse_resolves_localhost_to_loopback),
        cmocka_unit_test(test_parse_accepts_unix_path),
        cmocka_unit_test(test_parse_accepts_longest_unix_path_that_fits),
        cmocka_unit_test(test_parse_abstract_name_has_exact_length),
        cmocka_unit_test(test_parse_accepts_port_bounds),
        cmocka_unit_test(test_parse_rejects_bad_ports),
        cmocka_unit_test(test_parse_rejects_null_arguments),
        cmocka_unit_test(test_parse_rejects_malformed_strings),
        cmocka_unit_test(test_parse_rejects_hosts_with_spaces_or_binary),
        cmocka_unit_test(test_parse_scoped_ipv6_is_refused_or_exact),
        cmocka_unit_test(test_parse_rejects_very_long_host),
        cmocka_unit_test(test_parse_rejects_100_kb_strings),
        cmocka_unit_test(test_parse_rejects_unix_path_longer_than_sun_path),
        cmocka_unit_test(test_parse_unresolvable_name_is_addrnotavail),
        cmocka_unit_test(test_format_writes_the_parse_syntax),
        cmocka_unit_test(test_format_round_trips_through_parse),
        cmocka_unit_test(test_format_of_kernel_style_unix_addresses),
        cmocka_unit_test(test_format_truncates_and_terminates),
        cmocka_unit_test(test_format_rejects_unknown_family),
        cmocka_unit_test(test_parse_refuses_inet_aton_number_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
