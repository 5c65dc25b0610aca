/*
 * test_proxy_protocol.c — the PROXY protocol (ss_config.proxy_protocol):
 * the header parser on its own, then servers over real sockets under every
 * strategy that shares the test's memory (and forking, where only the
 * client's view counts).
 *
 * The parser tests call the internal lib/proxy_protocol.h directly, with
 * each input placed at the very end of a page followed by an inaccessible
 * page (picohttpparser's trick), so a read past the input crashes the test
 * instead of passing. The socket tests play the proxy: they send a header
 * themselves, then the client's data, and the handler answers with the
 * client and peer addresses it sees and echoes the rest.
 */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proxy_protocol.h"

/* ---- parser harness ------------------------------------------------- */

/* ss__proxy_parse on a copy of data that ends exactly at a page boundary
 * with a PROT_NONE page after it. */
static int parse_at_page_end(const void *data, size_t len, int versions,
                             ss__proxy_header *out)
{
    long page = sysconf(_SC_PAGESIZE);
    assert_true(len <= (size_t)page * 2);
    size_t span = (size_t)page * 3;
    uint8_t *area = mmap(NULL, span, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(area != MAP_FAILED);
    assert_int_equal(mprotect(area + page * 2, (size_t)page, PROT_NONE), 0);
    uint8_t *at = area + page * 2 - len;
    memcpy(at, data, len);
    int rc = ss__proxy_parse(at, len, versions, out);
    munmap(area, span);
    return rc;
}

static int parse_text(const char *text, int versions, ss__proxy_header *out)
{
    return parse_at_page_end(text, strlen(text), versions, out);
}

static void format_address(const struct sockaddr_storage *a, socklen_t len,
                           char *buf, size_t size)
{
    assert_true(ss_address_format((const struct sockaddr *)a, len, buf, size) >=
                0);
}

static void assert_source(const ss__proxy_header *h, const char *expected)
{
    char text[160];
    format_address(&h->source, h->source_len, text, sizeof text);
    assert_string_equal(text, expected);
}

static void assert_destination(const ss__proxy_header *h, const char *expected)
{
    char text[160];
    format_address(&h->destination, h->destination_len, text, sizeof text);
    assert_string_equal(text, expected);
}

/* Every proper prefix of a complete header asks for more; the whole of
 * it, and the whole with client data after it, give its length. */
static void assert_needs_more_until_complete(const void *header, size_t len,
                                             int versions)
{
    ss__proxy_header h;
    for (size_t i = 0; i < len; i++)
        assert_int_equal(parse_at_page_end(header, i, versions, &h), 0);
    assert_int_equal(parse_at_page_end(header, len, versions, &h), (int)len);
    uint8_t more[600];
    assert_true(len + 5 <= sizeof more);
    memcpy(more, header, len);
    memcpy(more + len, "HELLO", 5);
    assert_int_equal(parse_at_page_end(more, len + 5, versions, &h), (int)len);
}

/* A v2 header: signature, the two type bytes, the length, then body. */
static size_t v2_build(uint8_t *out, uint8_t version_command,
                       uint8_t family_transport, const void *body,
                       size_t body_len)
{
    static const uint8_t signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(out, signature, 12);
    out[12] = version_command;
    out[13] = family_transport;
    out[14] = (uint8_t)(body_len >> 8);
    out[15] = (uint8_t)body_len;
    if (body_len)
        memcpy(out + 16, body, body_len);
    return 16 + body_len;
}

/* The 12-byte IPv4 block: src, dst, sport, dport (network order). */
static size_t v2_inet_block(uint8_t *out, const char *src, const char *dst,
                            uint16_t sport, uint16_t dport)
{
    assert_int_equal(inet_pton(AF_INET, src, out), 1);
    assert_int_equal(inet_pton(AF_INET, dst, out + 4), 1);
    out[8] = (uint8_t)(sport >> 8), out[9] = (uint8_t)sport;
    out[10] = (uint8_t)(dport >> 8), out[11] = (uint8_t)dport;
    return 12;
}

static size_t v2_inet6_block(uint8_t *out, const char *src, const char *dst,
                             uint16_t sport, uint16_t dport)
{
    assert_int_equal(inet_pton(AF_INET6, src, out), 1);
    assert_int_equal(inet_pton(AF_INET6, dst, out + 16), 1);
    out[32] = (uint8_t)(sport >> 8), out[33] = (uint8_t)sport;
    out[34] = (uint8_t)(dport >> 8), out[35] = (uint8_t)dport;
    return 36;
}

/* ---- parser: version 1 ---------------------------------------------- */

static void test_v1_tcp4_header_names_client_and_destination(void **state)
{
    (void)state;
    const char *line = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80\r\n";
    ss__proxy_header h;
    assert_int_equal(parse_text(line, SS_PROXY_V1, &h), (int)strlen(line));
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    assert_int_equal(h.transport, SOCK_STREAM);
    assert_source(&h, "192.0.2.7:51000");
    assert_destination(&h, "198.51.100.1:80");
    assert_needs_more_until_complete(line, strlen(line), SS_PROXY_ANY);
}

static void test_v1_tcp6_header_names_client_and_destination(void **state)
{
    (void)state;
    const char *line = "PROXY TCP6 2001:db8::7 2001:db8::1 0 65535\r\n";
    ss__proxy_header h;
    assert_int_equal(parse_text(line, SS_PROXY_ANY, &h), (int)strlen(line));
    assert_false(h.local);
    assert_source(&h, "[2001:db8::7]:0");
    assert_destination(&h, "[2001:db8::1]:65535");
    assert_needs_more_until_complete(line, strlen(line), SS_PROXY_V1);
}

static void test_v1_unknown_keeps_the_connection_address(void **state)
{
    (void)state;
    const char *lines[] = {
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        ss__proxy_header h;
        assert_int_equal(parse_text(lines[i], SS_PROXY_V1, &h),
                         (int)strlen(lines[i]));
        assert_true(h.local);
        assert_int_equal(h.version, 1);
    }
}

static void test_v1_line_of_107_bytes_is_the_longest_accepted(void **state)
{
    (void)state;
    char line[200];
    /* "PROXY UNKNOWN " then filler, then CRLF: exactly n bytes. */
    for (size_t n = 105; n <= 108; n++) {
        memset(line, 'x', sizeof line);
        memcpy(line, "PROXY UNKNOWN ", 14);
        memcpy(line + n - 2, "\r\n", 2);
        ss__proxy_header h;
        int rc = parse_at_page_end(line, n, SS_PROXY_V1, &h);
        if (n <= SS__PROXY_V1_MAX)
            assert_int_equal(rc, (int)n);
        else
            assert_int_equal(rc, -EPROTO);
    }
    /* With no CRLF at all, 107 bytes are enough to give up. */
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    ss__proxy_header h;
    assert_int_equal(parse_at_page_end(line, 106, SS_PROXY_V1, &h), 0);
    assert_int_equal(parse_at_page_end(line, 107, SS_PROXY_V1, &h), -EPROTO);
    assert_int_equal(parse_at_page_end(line, 150, SS_PROXY_V1, &h), -EPROTO);
}

static void test_v1_malformed_lines_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80\n",     /* bare LF */
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80\r\r\n", /* CR CR LF */
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80\rX",    /* CR alone */
        "PROXY  TCP4 192.0.2.7 198.51.100.1 51000 80\r\n",  /* two spaces */
        "PROXY TCP4  192.0.2.7 198.51.100.1 51000 80\r\n",
        "PROXY TCP4 192.0.2.7  198.51.100.1 51000 80\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80 \r\n",  /* trailing */
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000\r\n",      /* 3 fields */
        "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80 9\r\n", /* 5 fields */
        "PROXY TCP4\r\n",
        "PROXY TCP4 \r\n",
        "PROXY TCP4 ::1 ::1 51000 80\r\n",           /* IPv6 in TCP4 */
        "PROXY TCP6 192.0.2.7 198.51.100.1 1 2\r\n", /* IPv4 in TCP6 */
        "PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",
        "PROXY TCP4 192.0.2 198.51.100.1 1 2\r\n",
        "PROXY TCP4 192.0.02.7 198.51.100.1 1 2\r\n", /* leading zero */
        "PROXY TCP4 0x7f.0.0.1 198.51.100.1 1 2\r\n",
        "PROXY TCP4 localhost 198.51.100.1 1 2\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 80\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 051000 80\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 +1 80\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 80\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 1x 80\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 123456 80\r\n",
        "PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",
        "PROXY tcp4 192.0.2.7 198.51.100.1 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY \r\n",
        "PROXY\r\n",
        "proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
        "PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n", /* a control */
        "PROXY UNKNOWN \xc3\xa9\r\n",                 /* not ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ss__proxy_header h;
        int rc = parse_text(bad[i], SS_PROXY_ANY, &h);
        if (rc != -EPROTO)
            fail_msg("line %zu (%s) gave %d, not -EPROTO", i, bad[i], rc);
    }
    /* A NUL inside the line (strlen would stop at it). */
    static const char nul_line[] =
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\0\r\n";
    ss__proxy_header h;
    assert_int_equal(
        parse_at_page_end(nul_line, sizeof nul_line - 1, SS_PROXY_ANY, &h),
        -EPROTO);
}

static void test_garbage_is_refused_at_its_first_wrong_byte(void **state)
{
    (void)state;
    ss__proxy_header h;
    assert_int_equal(parse_text("G", SS_PROXY_ANY, &h), -EPROTO);
    assert_int_equal(parse_text("PROX!", SS_PROXY_ANY, &h), -EPROTO);
    assert_int_equal(parse_text("PROXY TCP4 1\n", SS_PROXY_ANY, &h), -EPROTO);
    assert_int_equal(parse_at_page_end("\r\n\r\n\0\r\nX", 8, SS_PROXY_ANY, &h),
                     -EPROTO);
    /* A good beginning is not judged early. */
    assert_int_equal(parse_text("PROX", SS_PROXY_ANY, &h), 0);
    assert_int_equal(parse_at_page_end("\r\n\r\n\0", 5, SS_PROXY_ANY, &h), 0);
}

static void test_version_not_enabled_is_refused_by_the_parser(void **state)
{
    (void)state;
    const char *line = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80\r\n";
    uint8_t block[12], header[64];
    size_t n =
        v2_build(header, 0x21, 0x11, block,
                 v2_inet_block(block, "192.0.2.7", "198.51.100.1", 1, 2));
    ss__proxy_header h;
    assert_int_equal(parse_text(line, SS_PROXY_V2, &h), -EPROTO);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_V1, &h), -EPROTO);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_V2, &h), (int)n);
    assert_int_equal(parse_text(line, SS_PROXY_V1, &h), (int)strlen(line));
}

/* ---- parser: version 2 ---------------------------------------------- */

static void test_v2_proxy_ipv4_names_client_and_destination(void **state)
{
    (void)state;
    uint8_t block[12], header[64];
    size_t n =
        v2_build(header, 0x21, 0x11, block,
                 v2_inet_block(block, "192.0.2.7", "198.51.100.1", 51000, 443));
    ss__proxy_header h;
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_int_equal(h.transport, SOCK_STREAM);
    assert_source(&h, "192.0.2.7:51000");
    assert_destination(&h, "198.51.100.1:443");
    assert_needs_more_until_complete(header, n, SS_PROXY_V2);
}

static void test_v2_proxy_ipv6_names_client_and_destination(void **state)
{
    (void)state;
    uint8_t block[36], header[64];
    size_t n =
        v2_build(header, 0x21, 0x21, block,
                 v2_inet6_block(block, "2001:db8::7", "2001:db8::1", 1, 65535));
    ss__proxy_header h;
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    assert_source(&h, "[2001:db8::7]:1");
    assert_destination(&h, "[2001:db8::1]:65535");
    assert_needs_more_until_complete(header, n, SS_PROXY_ANY);
}

static void test_v2_proxy_unix_addresses(void **state)
{
    (void)state;
    uint8_t block[216], header[300];
    ss__proxy_header h;

    /* A path, and an abstract name. */
    memset(block, 0, sizeof block);
    memcpy(block, "/run/client.sock", 16);
    memcpy(block + 108, "\0server", 7);
    size_t n = v2_build(header, 0x21, 0x31, block, sizeof block);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    assert_int_equal(h.source.ss_family, AF_UNIX);
    assert_source(&h, "unix:/run/client.sock");
    assert_destination(&h, "unix:@server");

    /* All zeros: an unnamed socket. */
    memset(block, 0, sizeof block);
    n = v2_build(header, 0x21, 0x31, block, sizeof block);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    assert_source(&h, "unix:");

    /* A path of all 108 bytes, with no room for a NUL. */
    memset(block, 'p', 108);
    block[0] = '/';
    n = v2_build(header, 0x21, 0x31, block, sizeof block);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    char text[200];
    format_address(&h.source, h.source_len, text, sizeof text);
    assert_int_equal(strlen(text), 5 + 108);
}

static void test_v2_local_and_unspec_keep_the_connection_address(void **state)
{
    (void)state;
    uint8_t header[300], block[216];
    ss__proxy_header h;
    /* LOCAL with no block (HAProxy's health check). */
    size_t n = v2_build(header, 0x20, 0x00, NULL, 0);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), 16);
    assert_true(h.local);
    /* LOCAL with an address block and junk after it: skipped whole. */
    memset(block, 0xAB, sizeof block);
    n = v2_build(header, 0x20, 0x11, block, 7);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    assert_true(h.local);
    /* PROXY with the UNSPEC family: nothing usable, real endpoints. */
    n = v2_build(header, 0x21, 0x00, block, 5);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    assert_true(h.local);
    assert_int_equal(h.transport, 0);
}

static void test_v2_tlvs_are_skipped(void **state)
{
    (void)state;
    uint8_t body[200], header[300];
    size_t n = v2_inet_block(body, "192.0.2.7", "198.51.100.1", 4000, 80);
    /* ALPN "h2", an empty NOOP, and an 8-byte unique id. */
    const uint8_t tlvs[] = {0x01, 0x00, 0x02, 'h',  '2', 0x04, 0x00,
                            0x00, 0x05, 0x00, 0x08, 1,   2,    3,
                            4,    5,    6,    7,    8};
    memcpy(body + n, tlvs, sizeof tlvs);
    n += sizeof tlvs;
    size_t total = v2_build(header, 0x21, 0x12, body, n); /* UDP over it */
    ss__proxy_header h;
    assert_int_equal(parse_at_page_end(header, total, SS_PROXY_ANY, &h),
                     (int)total);
    assert_int_equal(h.transport, SOCK_DGRAM);
    assert_source(&h, "192.0.2.7:4000");
    assert_needs_more_until_complete(header, total, SS_PROXY_V2);
}

static void test_v2_malformed_headers_are_refused(void **state)
{
    (void)state;
    uint8_t good_block[12], body[64], header[5000];
    size_t block = v2_inet_block(good_block, "192.0.2.7", "198.51.100.1", 1, 2);
    ss__proxy_header h;
    struct {
        const char *what;
        uint8_t version_command, family_transport;
        size_t body_len; /* of good_block, then tlv bytes */
        const uint8_t *tlv;
        size_t tlv_len;
    } cases[] = {
        {"version 1", 0x11, 0x11, 12, NULL, 0},
        {"version 3", 0x31, 0x11, 12, NULL, 0},
        {"command 2", 0x22, 0x11, 12, NULL, 0},
        {"command 15", 0x2F, 0x11, 12, NULL, 0},
        {"family 4", 0x21, 0x41, 12, NULL, 0},
        {"transport 3", 0x21, 0x13, 12, NULL, 0},
        {"block short for IPv4", 0x21, 0x11, 11, NULL, 0},
        {"block short for IPv6", 0x21, 0x21, 12, NULL, 0},
        {"block short for Unix", 0x21, 0x31, 12, NULL, 0},
        {"TLV longer than the rest", 0x21, 0x11, 12,
         (const uint8_t *)"\x01\x00\x05"
                          "ab",
         5},
        {"two stray bytes", 0x21, 0x11, 12, (const uint8_t *)"\x04\x00", 2},
        {"one stray byte", 0x21, 0x11, 12, (const uint8_t *)"\x04", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(body, 0, sizeof body);
        memcpy(body, good_block, block);
        size_t len = cases[i].body_len;
        if (cases[i].tlv) {
            memcpy(body + len, cases[i].tlv, cases[i].tlv_len);
            len += cases[i].tlv_len;
        }
        size_t n = v2_build(header, cases[i].version_command,
                            cases[i].family_transport, body, len);
        int rc = parse_at_page_end(header, n, SS_PROXY_ANY, &h);
        if (rc != -EPROTO)
            fail_msg("%s: %d, not -EPROTO", cases[i].what, rc);
    }
    /* A bad signature byte is refused as soon as it arrives. */
    size_t n = v2_build(header, 0x21, 0x11, good_block, block);
    header[7] ^= 0x20;
    assert_int_equal(parse_at_page_end(header, 8, SS_PROXY_ANY, &h), -EPROTO);
    header[7] ^= 0x20;
    /* So are bad type bytes, before the length is known. */
    header[12] = 0x11;
    assert_int_equal(parse_at_page_end(header, 13, SS_PROXY_ANY, &h), -EPROTO);
    header[12] = 0x21;
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
}

static void test_v2_length_bound_is_enforced_from_the_fixed_part(void **state)
{
    (void)state;
    static uint8_t header[16 + SS__PROXY_V2_MAX_PAYLOAD + 1];
    uint8_t *body = calloc(1, SS__PROXY_V2_MAX_PAYLOAD + 1);
    assert_non_null(body);
    ss__proxy_header h;
    /* At the bound: an IPv4 block, then one NOOP TLV filling the rest. */
    size_t fill = SS__PROXY_V2_MAX_PAYLOAD - 12 - 3;
    v2_inet_block(body, "192.0.2.7", "198.51.100.1", 1, 2);
    body[12] = 0x04;
    body[13] = (uint8_t)(fill >> 8);
    body[14] = (uint8_t)fill;
    size_t n = v2_build(header, 0x21, 0x11, body, SS__PROXY_V2_MAX_PAYLOAD);
    assert_int_equal(parse_at_page_end(header, n, SS_PROXY_ANY, &h), (int)n);
    assert_int_equal(n, SS__PROXY_MAX_HEADER);
    /* One byte over: refused from the first 16 bytes alone. */
    v2_build(header, 0x21, 0x11, body, SS__PROXY_V2_MAX_PAYLOAD + 1);
    assert_int_equal(parse_at_page_end(header, 16, SS_PROXY_ANY, &h), -EPROTO);
    free(body);
}

/* ---- trusted proxies ------------------------------------------------ */

static bool trusted(const ss__proxy_trust *t, const char *address)
{
    struct sockaddr_storage a;
    socklen_t len;
    assert_int_equal(ss_address_parse(address, SOCK_STREAM, &a, &len), 0);
    return ss__proxy_trust_match(t, (struct sockaddr *)&a, len);
}

static void test_trusted_list_matches_addresses_and_networks(void **state)
{
    (void)state;
    ss__proxy_trust t;
    assert_int_equal(
        ss__proxy_trust_parse("127.0.0.1, 10.0.0.0/8 ::1,fe80::/10 "
                              "172.16.0.0/12",
                              &t),
        0);
    assert_int_equal(t.count, 5);
    assert_true(trusted(&t, "127.0.0.1:1"));
    assert_false(trusted(&t, "127.0.0.2:1"));
    assert_true(trusted(&t, "10.255.1.2:1"));
    assert_false(trusted(&t, "11.0.0.1:1"));
    assert_true(trusted(&t, "172.31.255.255:1"));
    assert_false(trusted(&t, "172.32.0.0:1"));
    assert_true(trusted(&t, "[::1]:1"));
    assert_false(trusted(&t, "[::2]:1"));
    assert_true(trusted(&t, "[fe80::1234]:1"));
    assert_true(trusted(&t, "[febf::1]:1"));
    assert_false(trusted(&t, "[fec0::1]:1"));
    /* A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d. */
    assert_true(trusted(&t, "[::ffff:127.0.0.1]:1"));
    assert_true(trusted(&t, "[::ffff:10.9.9.9]:1"));
    assert_false(trusted(&t, "[::ffff:11.0.0.1]:1"));
    assert_false(trusted(&t, "unix:/tmp/x"));

    assert_int_equal(ss__proxy_trust_parse("unix 0.0.0.0/0", &t), 0);
    assert_true(trusted(&t, "unix:/tmp/x"));
    assert_true(trusted(&t, "203.0.113.9:1"));
    assert_false(trusted(&t, "[2001:db8::1]:1"));

    /* Host bits in a network are masked, as routers do. */
    assert_int_equal(ss__proxy_trust_parse("192.168.1.77/24", &t), 0);
    assert_true(trusted(&t, "192.168.1.1:1"));
    assert_false(trusted(&t, "192.168.2.1:1"));

    /* No list: everyone. */
    assert_int_equal(ss__proxy_trust_parse(NULL, &t), 0);
    assert_int_equal(t.count, -1);
    assert_true(trusted(&t, "198.51.100.1:1"));
}

static void test_malformed_trusted_lists_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",           " , ",        "1.2.3.4/33", "::1/129",     "1.2.3.4/",
        "1.2.3.4/08", "1.2.3.4/-1", "1.2.3",      "1.2.3.4:80",  "[::1]",
        "localhost",  "unix:",      "UNIX",       "1.2.3.4/8/8",
    };
    ss__proxy_trust t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ss__proxy_trust_parse(bad[i], &t) != -EINVAL)
            fail_msg("trusted list '%s' was accepted", bad[i]);
    }
    /* 32 entries fit, 33 do not. */
    char list[1024] = "";
    for (int i = 0; i < SS__PROXY_TRUST_MAX; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "10.0.0.%d,",
                 i);
    assert_int_equal(ss__proxy_trust_parse(list, &t), 0);
    strcat(list, "10.0.1.1");
    assert_int_equal(ss__proxy_trust_parse(list, &t), -EINVAL);
}

/* ---- servers -------------------------------------------------------- */

/* Answers "<client> <peer> <first line>" and then echoes the rest. */
static int who_handle(ss_request *req)
{
    char line[512];
    ssize_t n = ss_readline(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : 0;
    char client[160], peer[160];
    ss_request_client_address_string(req, client, sizeof client);
    socklen_t len;
    const struct sockaddr *p = ss_request_peer_address(req, &len);
    ss_address_format(p, len, peer, sizeof peer);
    if (ss_writef(req, "%s %s %s", client, peer, line) < 0)
        return -1;
    char buf[3000];
    while ((n = ss_read(req, buf, sizeof buf)) > 0)
        if (ss_write_all(req, buf, (size_t)n) < 0)
            return -1;
    return n < 0 ? (int)n : 0;
}

static atomic_int handled;

static int counting_setup(ss_request *req)
{
    (void)req;
    atomic_fetch_add(&handled, 1);
    return 0;
}

static const ss_handler_class who_handler = {
    .base = &ss_stream_handler,
    .setup = counting_setup,
    .handle = who_handle,
};

/* The same with a tiny read buffer: the header must still fit. */
static const ss_handler_class small_buffer_handler = {
    .base = &who_handler,
    .rbufsize = 16,
};

typedef struct strategy_case {
    const char *name;
    const ss_strategy *strategy;
    bool same_process; /* handler and log hook run in this process */
} strategy_case;

static const strategy_case strategies[] = {
    {"sync", &ss_sync, true},
    {"threading", &ss_threading, true},
    {"thread_pool", &ss_thread_pool, true},
    {"coroutines", &ss_coroutines, true},
    {"forking", &ss_forking, false},
};
#define N_STRATEGIES (sizeof strategies / sizeof strategies[0])

/* verify_request counts accepted connections (and lets every one in), so
 * a test can tell that the server has taken a connection. */
static atomic_int accepted;

static bool counting_verify(ss_server *srv, ss_request *req)
{
    atomic_fetch_add(&accepted, 1);
    return ss_tcp.verify_request(srv, req);
}

typedef struct proxy_options {
    const ss_server_class *kind; /* NULL: a counting copy of ss_tcp */
    const char *address;         /* NULL: 127.0.0.1:0 */
    int versions;                /* 0: SS_PROXY_ANY */
    const char *trusted;         /* NULL: every peer */
    double timeout;              /* 0: the default */
    const ss_handler_class *handler;
} proxy_options;

static void start_proxy_server(test_server *t, const strategy_case *s,
                               const proxy_options *o, test_log *log)
{
    static ss_server_class counting_tcp;
    counting_tcp = ss_tcp;
    counting_tcp.verify_request = counting_verify;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.proxy_protocol = o->versions ? o->versions : SS_PROXY_ANY;
    cfg.proxy_trusted = o->trusted;
    if (o->timeout > 0)
        cfg.proxy_protocol_timeout = o->timeout;
    test_options opts = {.coro.threads = 1, .pool.pool_size = 3};
    test_use_options(&cfg, s->strategy, &opts);
    test_log_init(log);
    cfg.log = test_log_hook;
    cfg.user = log;
    atomic_store(&handled, 0);
    atomic_store(&accepted, 0);
    int rc = test_server_start_with(
        t, o->kind ? o->kind : &counting_tcp, s->strategy,
        o->address ? o->address : "127.0.0.1:0",
        o->handler ? o->handler : &who_handler, &cfg, 0.05);
    if (rc != 0)
        fail_msg("%s: cannot start: %s", s->name, ss_strerror(rc));
}

/* Receive until the server closes; a reset counts as closed (closing a
 * socket with unread input sends one). Returns the byte count. */
static size_t recv_until_closed(int fd, char *buf, size_t size)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, size - 1 - got, 0);
        if (n > 0) {
            got += (size_t)n;
            assert_true(got < size - 1);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != ECONNRESET)
            fail_msg("recv: %s", strerror(errno));
        break;
    }
    buf[got] = '\0';
    return got;
}

/* Connect, send data in one send(), close the sending side, and read the
 * whole answer. */
static size_t exchange(ss_server *srv, const void *data, size_t n, char *reply,
                       size_t size)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, data, n);
    shutdown(fd, SHUT_WR);
    size_t got = recv_until_closed(fd, reply, size);
    close(fd);
    return got;
}

static void local_address_of(int fd, char *buf, size_t size)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    format_address(&a, len, buf, size);
}

static bool log_has_lines(void *arg)
{
    return test_log_count(arg) > 0;
}

static void assert_log_says(test_log *log, const char *name, const char *what)
{
    assert_true(test_wait_for(log_has_lines, log, 10));
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(log, 0, line, sizeof line);
    if (!strstr(line, what))
        fail_msg("%s: log line '%s' lacks '%s'", name, line, what);
}

static void stop(test_server *t)
{
    assert_true(test_server_stop_within(t, 10));
}

static void test_client_address_is_the_one_in_the_header(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        test_server t = {0};
        test_log log;
        proxy_options o = {.trusted = "127.0.0.1"};
        start_proxy_server(&t, s, &o, &log);

        /* Version 1, IPv4. The peer is our own socket. */
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        char me[160], expected[400], reply[1000];
        local_address_of(fd, me, sizeof me);
        const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80\r\nhi\n";
        test_send_all(fd, v1, strlen(v1));
        shutdown(fd, SHUT_WR);
        recv_until_closed(fd, reply, sizeof reply);
        close(fd);
        snprintf(expected, sizeof expected, "192.0.2.7:51000 %s hi\n", me);
        assert_string_equal(reply, expected);

        /* Version 2, IPv6. */
        uint8_t block[36], header[64 + 3];
        size_t n = v2_build(
            header, 0x21, 0x21, block,
            v2_inet6_block(block, "2001:db8::7", "2001:db8::1", 4242, 443));
        memcpy(header + n, "v2\n", 3);
        exchange(t.srv, header, n + 3, reply, sizeof reply);
        assert_int_equal(strncmp(reply, "[2001:db8::7]:4242 127.0.0.1:", 29),
                         0);
        assert_non_null(strstr(reply, " v2\n"));
        if (s->same_process)
            assert_int_equal(test_log_count(&log), 0);
        stop(&t);
    }
}

/* A payload long enough to need several reads, with a recognisable
 * pattern. */
#define PAYLOAD_SIZE (48 * 1024)

static void fill_payload(char *p)
{
    for (size_t i = 0; i < PAYLOAD_SIZE; i++)
        p[i] = (char)('a' + (i * 7 + i / 251) % 26);
}

static void test_data_after_the_header_reaches_the_handler(void **state)
{
    (void)state;
    const char *header = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 80\r\n";
    size_t header_len = strlen(header);
    char *message = malloc(header_len + 6 + PAYLOAD_SIZE);
    char *reply = malloc(PAYLOAD_SIZE + 200);
    assert_non_null(message);
    assert_non_null(reply);
    memcpy(message, header, header_len);
    memcpy(message + header_len, "line\n", 5);
    fill_payload(message + header_len + 5);
    size_t total = header_len + 5 + PAYLOAD_SIZE;

    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        for (int split = 0; split < 2; split++) {
            test_server t = {0};
            test_log log;
            proxy_options o = {0};
            start_proxy_server(&t, s, &o, &log);
            int fd = test_connect(t.srv);
            assert_true(fd >= 0);
            if (split) {
                /* The header in three segments, the last one carrying
                 * the data too. */
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                test_send_all(fd, message, 3);
                test_sleep(0.02);
                test_send_all(fd, message + 3, 20);
                test_sleep(0.02);
                test_send_all(fd, message + 23, total - 23);
            } else {
                test_send_all(fd, message, total); /* all in one send */
            }
            shutdown(fd, SHUT_WR);
            size_t got = recv_until_closed(fd, reply, PAYLOAD_SIZE + 200);
            close(fd);
            const char *line_end = strchr(reply, '\n');
            assert_non_null(line_end);
            assert_int_equal(strncmp(reply, "192.0.2.7:51000 ", 16), 0);
            size_t head = (size_t)(line_end + 1 - reply);
            if (got - head != PAYLOAD_SIZE ||
                memcmp(line_end + 1, message + header_len + 5, PAYLOAD_SIZE) !=
                    0)
                fail_msg("%s (split %d): payload changed (%zu bytes back)",
                         s->name, split, got - head);
            stop(&t);
        }
    }
    free(message);
    free(reply);
}

static void test_header_fits_a_handler_with_a_tiny_read_buffer(void **state)
{
    (void)state;
    test_server t = {0};
    test_log log;
    proxy_options o = {.handler = &small_buffer_handler};
    start_proxy_server(&t, &strategies[0], &o, &log);
    /* A v2 header of 2 KiB (TLVs), then the data, in one send. */
    static uint8_t body[2048], message[4096];
    size_t block = v2_inet_block(body, "192.0.2.8", "198.51.100.1", 7, 8);
    size_t fill = sizeof body - block - 3;
    body[block] = 0x04;
    body[block + 1] = (uint8_t)(fill >> 8);
    body[block + 2] = (uint8_t)fill;
    size_t n = v2_build(message, 0x21, 0x11, body, sizeof body);
    memcpy(message + n, "tiny\nand the rest", 17);
    char reply[512];
    exchange(t.srv, message, n + 17, reply, sizeof reply);
    assert_int_equal(strncmp(reply, "192.0.2.8:7 ", 12), 0);
    assert_non_null(strstr(reply, " tiny\nand the rest"));
    stop(&t);
}

static void test_silent_client_times_out_and_server_keeps_serving(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        test_server t = {0};
        test_log log;
        proxy_options o = {.timeout = 0.3};
        start_proxy_server(&t, s, &o, &log);

        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        double start = test_now();
        char reply[256];
        assert_int_equal(recv_until_closed(fd, reply, sizeof reply), 0);
        double took = test_now() - start;
        close(fd);
        /* Closed by the deadline: not at once, and not by our own 10 s
         * receive timeout (which would have failed recv above). */
        if (took < 0.25 || took > 8)
            fail_msg("%s: silent client closed after %.2f s", s->name, took);
        if (s->same_process) {
            assert_log_says(&log, s->name, "timed out");
            assert_int_equal(atomic_load(&handled), 0);
        }

        const char *good = "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\nok\n";
        exchange(t.srv, good, strlen(good), reply, sizeof reply);
        assert_int_equal(strncmp(reply, "192.0.2.7:1 ", 12), 0);
        stop(&t);
    }
}

static void test_silent_client_does_not_hold_up_others(void **state)
{
    (void)state;
    /* Every strategy but sync, which runs one connection at a time by
     * design (and so waits out proxy_protocol_timeout). */
    for (size_t i = 1; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        test_server t = {0};
        test_log log;
        proxy_options o = {.timeout = 60};
        start_proxy_server(&t, s, &o, &log);
        int silent = test_connect(t.srv);
        assert_true(silent >= 0);
        double start = test_now();
        char reply[256];
        const char *good = "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\nok\n";
        exchange(t.srv, good, strlen(good), reply, sizeof reply);
        assert_int_equal(strncmp(reply, "192.0.2.7:1 ", 12), 0);
        if (test_now() - start > 8)
            fail_msg("%s: a silent client held up another", s->name);
        close(silent); /* left without a byte: no report */
        stop(&t);
        if (s->same_process)
            assert_int_equal(test_log_count(&log), 0);
    }
}

static void test_untrusted_peer_is_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        test_server t = {0};
        test_log log;
        proxy_options o = {.trusted = "192.0.2.0/24, ::1"};
        start_proxy_server(&t, s, &o, &log);
        const char *msg = "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\nhi\n";
        char reply[256];
        assert_int_equal(exchange(t.srv, msg, strlen(msg), reply, sizeof reply),
                         0);
        if (s->same_process) {
            assert_log_says(&log, s->name, "Permission denied");
            assert_int_equal(atomic_load(&handled), 0);
        }
        stop(&t);
    }
}

static void
test_malformed_header_is_refused_and_server_keeps_serving(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 99999 80\r\nhi\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\nhi\n",
        "\r\n\r\n\0\r\nQUIT\n\x11\x11\0\0hi\n",
    };
    static const size_t bad_len[] = {0, 0, 0, 19};
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        test_server t = {0};
        test_log log;
        proxy_options o = {0};
        start_proxy_server(&t, s, &o, &log);
        char reply[256];
        for (size_t b = 0; b < 4; b++) {
            size_t len = bad_len[b] ? bad_len[b] : strlen(bad[b]);
            size_t got = exchange(t.srv, bad[b], len, reply, sizeof reply);
            if (got != 0)
                fail_msg("%s: bad header %zu was answered: %s", s->name, b,
                         reply);
        }
        /* A header cut short by the client's close is malformed too. */
        exchange(t.srv, "PROXY TCP4 192.0.2", 18, reply, sizeof reply);
        const char *good = "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\nok\n";
        exchange(t.srv, good, strlen(good), reply, sizeof reply);
        assert_int_equal(strncmp(reply, "192.0.2.7:1 ", 12), 0);
        stop(&t);
        if (s->same_process) {
            /* One report per refused connection, naming the proxy. */
            assert_int_equal(test_log_count(&log), 5);
            assert_log_says(&log, s->name, "from 127.0.0.1:");
            assert_log_says(&log, s->name, "Protocol error");
            assert_int_equal(atomic_load(&handled), 1);
        }
    }
}

static void test_peer_leaving_without_a_byte_is_not_reported(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        test_server t = {0};
        test_log log;
        proxy_options o = {0};
        start_proxy_server(&t, s, &o, &log);
        for (int k = 0; k < 3; k++) {
            int fd = test_connect(t.srv);
            assert_true(fd >= 0);
            close(fd);
        }
        char reply[256];
        const char *good = "PROXY UNKNOWN\r\nok\n";
        exchange(t.srv, good, strlen(good), reply, sizeof reply);
        assert_int_equal(strncmp(reply, "127.0.0.1:", 10), 0);
        stop(&t);
        if (s->same_process)
            assert_int_equal(test_log_count(&log), 0);
    }
}

static void test_v2_local_keeps_the_connection_address(void **state)
{
    (void)state;
    test_server t = {0};
    test_log log;
    proxy_options o = {.versions = SS_PROXY_V2};
    start_proxy_server(&t, &strategies[3], &o, &log); /* coroutines */
    uint8_t message[64];
    size_t n = v2_build(message, 0x20, 0x00, NULL, 0);
    memcpy(message + n, "check\n", 6);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    char me[160], expected[400], reply[400];
    local_address_of(fd, me, sizeof me);
    test_send_all(fd, message, n + 6);
    shutdown(fd, SHUT_WR);
    recv_until_closed(fd, reply, sizeof reply);
    close(fd);
    snprintf(expected, sizeof expected, "%s %s check\n", me, me);
    assert_string_equal(reply, expected);
    stop(&t);
}

static void test_version_not_enabled_is_refused(void **state)
{
    (void)state;
    test_server t = {0};
    test_log log;
    proxy_options o = {.versions = SS_PROXY_V2};
    start_proxy_server(&t, &strategies[1], &o, &log);
    const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\nhi\n";
    char reply[256];
    assert_int_equal(exchange(t.srv, v1, strlen(v1), reply, sizeof reply), 0);
    assert_log_says(&log, "threading", "Protocol error");
    stop(&t);
}

static void test_shutdown_ends_a_header_wait_at_once(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        const strategy_case *s = &strategies[i];
        test_server t = {0};
        test_log log;
        proxy_options o = {.timeout = 60};
        start_proxy_server(&t, s, &o, &log);
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        test_send_all(fd, "PROXY TCP4 ", 11); /* and then nothing */
        for (int k = 0; k < 5000 && atomic_load(&accepted) == 0; k++)
            test_sleep(0.001);
        assert_int_equal(atomic_load(&accepted), 1);
        test_sleep(0.05); /* let the request reach its header wait */
        double start = test_now();
        stop(&t);
        double took = test_now() - start;
        if (took > 5)
            fail_msg("%s: shutdown waited %.2f s for a header", s->name, took);
        char reply[64];
        assert_int_equal(recv_until_closed(fd, reply, sizeof reply), 0);
        close(fd);
        if (s->same_process)
            assert_int_equal(test_log_count(&log), 0);
    }
}

static void test_unix_stream_server_takes_the_header(void **state)
{
    (void)state;
    char address[128];
    test_unix_address(address, sizeof address, "proxy");
    test_server t = {0};
    test_log log;
    proxy_options o = {
        .kind = &ss_unix_stream, .address = address, .trusted = "unix"};
    start_proxy_server(&t, &strategies[0], &o, &log);
    const char *msg = "PROXY TCP4 192.0.2.9 198.51.100.1 1234 80\r\nhi\n";
    char reply[256];
    exchange(t.srv, msg, strlen(msg), reply, sizeof reply);
    assert_string_equal(reply, "192.0.2.9:1234 unix: hi\n");
    stop(&t);
}

static void test_datagram_kinds_refuse_the_proxy_protocol(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.proxy_protocol = SS_PROXY_ANY;
    int before = test_count_open_fds();
    ss_server *srv = (ss_server *)1;
    assert_int_equal(ss_server_new(&srv, &ss_udp, &ss_sync, "127.0.0.1:0",
                                   &ss_datagram_handler, &cfg),
                     -EOPNOTSUPP);
    assert_null(srv);
    char address[128];
    assert_int_equal(
        ss_server_new(&srv, &ss_unix_datagram, &ss_sync,
                      test_abstract_address(address, sizeof address, "pd"),
                      &ss_datagram_handler, &cfg),
        -EOPNOTSUPP);
    assert_int_equal(test_count_open_fds(), before);
}

static void test_bad_proxy_settings_are_refused_without_leaks(void **state)
{
    (void)state;
    int before = test_count_open_fds();
    struct {
        int versions;
        double timeout;
        const char *trusted;
    } cases[] = {
        {4, 5, NULL},
        {-1, 5, NULL},
        {SS_PROXY_V1, -1, NULL},
        {SS_PROXY_V1, 1e7, NULL},
        {SS_PROXY_V2, 5, "nonsense"},
        {SS_PROXY_ANY, 5, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_config cfg;
        ss_config_init(&cfg);
        cfg.proxy_protocol = cases[i].versions;
        cfg.proxy_protocol_timeout = cases[i].timeout;
        cfg.proxy_trusted = cases[i].trusted;
        ss_server *srv;
        int rc = ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                               &who_handler, &cfg);
        if (rc != -EINVAL)
            fail_msg("case %zu: %d, not -EINVAL", i, rc);
    }
    /* A timeout of 0 is the default, 5 s. */
    ss_config zero;
    ss_config_init(&zero);
    zero.proxy_protocol = SS_PROXY_V1;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &who_handler, &zero),
                     0);
    assert_true(ss_server_config(srv)->proxy_protocol_timeout == 5.0);
    ss_server_free(srv);
    /* Off: the other proxy fields are not looked at. */
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.proxy_protocol_timeout = 0;
    cfg.proxy_trusted = "nonsense";
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &who_handler, &cfg),
                     0);
    ss_server_free(srv);
    assert_int_equal(test_count_open_fds(), before);
}

static void test_without_the_proxy_protocol_peer_is_the_client(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    assert_int_equal(cfg.proxy_protocol, 0);
    test_server t = {0};
    assert_int_equal(
        test_server_start(&t, &ss_tcp, "127.0.0.1:0", &who_handler, &cfg), 0);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    char me[160], expected[400], reply[400];
    local_address_of(fd, me, sizeof me);
    /* A PROXY line is just data here. */
    const char *line = "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\n";
    test_send_all(fd, line, strlen(line));
    shutdown(fd, SHUT_WR);
    recv_until_closed(fd, reply, sizeof reply);
    close(fd);
    snprintf(expected, sizeof expected, "%s %s %s", me, me, line);
    assert_string_equal(reply, expected);
    test_server_stop(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4_header_names_client_and_destination),
        cmocka_unit_test(test_v1_tcp6_header_names_client_and_destination),
        cmocka_unit_test(test_v1_unknown_keeps_the_connection_address),
        cmocka_unit_test(test_v1_line_of_107_bytes_is_the_longest_accepted),
        cmocka_unit_test(test_v1_malformed_lines_are_refused),
        cmocka_unit_test(test_garbage_is_refused_at_its_first_wrong_byte),
        cmocka_unit_test(test_version_not_enabled_is_refused_by_the_parser),
        cmocka_unit_test(test_v2_proxy_ipv4_names_client_and_destination),
        cmocka_unit_test(test_v2_proxy_ipv6_names_client_and_destination),
        cmocka_unit_test(test_v2_proxy_unix_addresses),
        cmocka_unit_test(test_v2_local_and_unspec_keep_the_connection_address),
        cmocka_unit_test(test_v2_tlvs_are_skipped),
        cmocka_unit_test(test_v2_malformed_headers_are_refused),
        cmocka_unit_test(test_v2_length_bound_is_enforced_from_the_fixed_part),
        cmocka_unit_test(test_trusted_list_matches_addresses_and_networks),
        cmocka_unit_test(test_malformed_trusted_lists_are_refused),
        cmocka_unit_test(test_client_address_is_the_one_in_the_header),
        cmocka_unit_test(test_data_after_the_header_reaches_the_handler),
        cmocka_unit_test(test_header_fits_a_handler_with_a_tiny_read_buffer),
        cmocka_unit_test(test_silent_client_times_out_and_server_keeps_serving),
        cmocka_unit_test(test_silent_client_does_not_hold_up_others),
        cmocka_unit_test(test_untrusted_peer_is_refused),
        cmocka_unit_test(
            test_malformed_header_is_refused_and_server_keeps_serving),
        cmocka_unit_test(test_peer_leaving_without_a_byte_is_not_reported),
        cmocka_unit_test(test_v2_local_keeps_the_connection_address),
        cmocka_unit_test(test_version_not_enabled_is_refused),
        cmocka_unit_test(test_shutdown_ends_a_header_wait_at_once),
        cmocka_unit_test(test_unix_stream_server_takes_the_header),
        cmocka_unit_test(test_datagram_kinds_refuse_the_proxy_protocol),
        cmocka_unit_test(test_bad_proxy_settings_are_refused_without_leaks),
        cmocka_unit_test(test_without_the_proxy_protocol_peer_is_the_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
