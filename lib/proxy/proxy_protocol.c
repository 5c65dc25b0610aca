/*
 * proxy_protocol.c — HAProxy's PROXY protocol header (v1 text, v2 binary)
 * and the list of proxies trusted to send it, as pure functions: given the
 * bytes received, the answer is "header of N bytes", "need more" or
 * -EPROTO. Strict on purpose, since the header decides which client
 * address the server believes. Guide: docs/deployment.md
 * ("Behind a load balancer").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "proxy_protocol.h"

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_prefix[] = "PROXY ";
#define V1_PREFIX_LEN (sizeof v1_prefix - 1)

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- shared: addresses into struct sockaddr ------------------------- */

static void set_inet(int family, const void *ip, uint16_t port_be,
                     struct sockaddr_storage *addr, socklen_t *len)
{
    memset(addr, 0, sizeof *addr);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, ip, 4);
        in->sin_port = port_be;
        *len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, ip, 16);
        in6->sin6_port = port_be;
        *len = sizeof *in6;
    }
}

/* ---- version 1 ------------------------------------------------------ */

/* "0".."65535": digits only, no leading zero (except "0" itself). */
static int v1_port(const char *text, size_t n)
{
    if (n == 0 || n > 5 || (n > 1 && text[0] == '0'))
        return -1;
    long port = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        port = port * 10 + (text[i] - '0');
    }
    return port <= 65535 ? (int)port : -1;
}

static bool v1_address(int family, const char *text, size_t n, void *ip)
{
    char copy[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof copy)
        return false;
    memcpy(copy, text, n);
    copy[n] = '\0';
    return inet_pton(family, copy, ip) == 1;
}

/* The fields of "TCP4 src dst sport dport" (line without CRLF). */
static int v1_fields(const char *line, size_t n, int family,
                     ss__proxy_header *out)
{
    const char *field[4];
    size_t field_len[4];
    size_t start = 0;
    for (int f = 0; f < 4; f++) {
        size_t end = start;
        while (end < n && line[end] != ' ')
            end++;
        if (end == start)
            return -EPROTO; /* empty field: two spaces, or a missing one */
        field[f] = line + start;
        field_len[f] = end - start;
        if (f < 3 && end == n)
            return -EPROTO; /* too few fields */
        start = end + 1;
    }
    if (start != n + 1)
        return -EPROTO; /* a fifth field, or a trailing space */

    uint8_t src[16], dst[16];
    int sport = v1_port(field[2], field_len[2]);
    int dport = v1_port(field[3], field_len[3]);
    if (!v1_address(family, field[0], field_len[0], src) ||
        !v1_address(family, field[1], field_len[1], dst) || sport < 0 ||
        dport < 0)
        return -EPROTO;
    set_inet(family, src, htons((uint16_t)sport), &out->source,
             &out->source_len);
    set_inet(family, dst, htons((uint16_t)dport), &out->destination,
             &out->destination_len);
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, ss__proxy_header *out)
{
    if (memcmp(buf, v1_prefix, min_size(len, V1_PREFIX_LEN)) != 0)
        return -EPROTO;
    /* Find the CRLF within the first 107 bytes; any byte that is neither
     * printable ASCII nor that CRLF is refused as soon as it is seen. */
    size_t scan = min_size(len, SS__PROXY_V1_MAX);
    size_t cr = 0;
    bool found = false;
    for (size_t i = 0; i < scan && !found; i++) {
        if (buf[i] == '\r') {
            if (i + 2 > SS__PROXY_V1_MAX)
                return -EPROTO;
            if (i + 1 == len)
                return 0; /* the LF is still to come */
            if (buf[i + 1] != '\n')
                return -EPROTO;
            cr = i;
            found = true;
        } else if (buf[i] < 0x20 || buf[i] > 0x7e) {
            return -EPROTO;
        }
    }
    if (!found)
        return len >= SS__PROXY_V1_MAX ? -EPROTO : 0;

    if (cr < V1_PREFIX_LEN)
        return -EPROTO;
    const char *rest = (const char *)buf + V1_PREFIX_LEN;
    size_t rest_len = cr - V1_PREFIX_LEN;
    ss__proxy_header h;
    memset(&h, 0, sizeof h);
    h.version = 1;
    h.transport = SOCK_STREAM;
    int rc;
    if (rest_len >= 7 && memcmp(rest, "UNKNOWN", 7) == 0 &&
        (rest_len == 7 || rest[7] == ' ')) {
        /* The receiver ignores whatever follows UNKNOWN. */
        h.local = true;
        rc = 0;
    } else if (rest_len > 5 && memcmp(rest, "TCP4 ", 5) == 0) {
        rc = v1_fields(rest + 5, rest_len - 5, AF_INET, &h);
    } else if (rest_len > 5 && memcmp(rest, "TCP6 ", 5) == 0) {
        rc = v1_fields(rest + 5, rest_len - 5, AF_INET6, &h);
    } else {
        rc = -EPROTO;
    }
    if (rc < 0)
        return rc;
    *out = h;
    return (int)(cr + 2);
}

/* ---- version 2 ------------------------------------------------------ */

enum { V2_LOCAL = 0, V2_PROXY = 1 };
enum { V2_UNSPEC = 0, V2_INET = 1, V2_INET6 = 2, V2_UNIX = 3 };

/* A port as sent: network byte order, which is what sin_port holds. */
static uint16_t port_at(const uint8_t *p)
{
    uint16_t port_be;
    memcpy(&port_be, p, sizeof port_be);
    return port_be;
}

static bool v2_byte12_valid(uint8_t b)
{
    return (b >> 4) == 2 && (b & 0x0F) <= V2_PROXY;
}

static bool v2_byte13_valid(uint8_t b)
{
    return (b >> 4) <= V2_UNIX && (b & 0x0F) <= 2;
}

/* Unix addresses are 108 zero-padded bytes. A leading NUL is a Linux
 * abstract name (its trailing zeros cannot be told from padding, so they
 * are dropped); all zeros is an unnamed socket. */
static void set_unix(const uint8_t *raw, struct sockaddr_storage *addr,
                     socklen_t *len)
{
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    size_t n;
    if (raw[0] != 0) {
        n = 0;
        while (n < 108 && raw[n] != 0)
            n++;
        memcpy(un.sun_path, raw, n);
        /* Count the NUL when there is room for it, as the kernel does. */
        if (n < sizeof un.sun_path)
            n++;
    } else {
        n = 108;
        while (n > 0 && raw[n - 1] == 0)
            n--;
        memcpy(un.sun_path, raw, n);
    }
    memset(addr, 0, sizeof *addr);
    memcpy(addr, &un, sizeof un);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* TLVs: type (1 byte), length (2 bytes, big-endian), value. They must
 * fill the space exactly; their contents are not used. */
static bool v2_tlvs_valid(const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (n < 3)
            return false;
        size_t value = (size_t)p[1] << 8 | p[2];
        if (value > n - 3)
            return false;
        p += 3 + value;
        n -= 3 + value;
    }
    return true;
}

static int parse_v2(const uint8_t *buf, size_t len, ss__proxy_header *out)
{
    if (memcmp(buf, v2_signature, min_size(len, sizeof v2_signature)) != 0)
        return -EPROTO;
    if (len > 12 && !v2_byte12_valid(buf[12]))
        return -EPROTO;
    if (len > 13 && !v2_byte13_valid(buf[13]))
        return -EPROTO;
    if (len < 16)
        return 0;
    size_t payload = (size_t)buf[14] << 8 | buf[15];
    if (payload > SS__PROXY_V2_MAX_PAYLOAD)
        return -EPROTO;
    if (len < 16 + payload)
        return 0;

    int command = buf[12] & 0x0F;
    int family = buf[13] >> 4;
    int transport = buf[13] & 0x0F;
    const uint8_t *p = buf + 16;
    ss__proxy_header h;
    memset(&h, 0, sizeof h);
    h.version = 2;
    h.transport = transport == 1   ? SOCK_STREAM
                  : transport == 2 ? SOCK_DGRAM
                                   : 0;
    /* LOCAL: the proxy speaking for itself; the block is skipped whole.
     * UNSPEC: no addresses we could use; the real endpoints stay. */
    if (command == V2_LOCAL || family == V2_UNSPEC) {
        h.local = true;
        *out = h;
        return (int)(16 + payload);
    }
    static const size_t block[] = {0, 12, 36, 216};
    size_t need = block[family];
    if (payload < need || !v2_tlvs_valid(p + need, payload - need))
        return -EPROTO;
    if (family == V2_INET) {
        set_inet(AF_INET, p, port_at(p + 8), &h.source, &h.source_len);
        set_inet(AF_INET, p + 4, port_at(p + 10), &h.destination,
                 &h.destination_len);
    } else if (family == V2_INET6) {
        set_inet(AF_INET6, p, port_at(p + 32), &h.source, &h.source_len);
        set_inet(AF_INET6, p + 16, port_at(p + 34), &h.destination,
                 &h.destination_len);
    } else {
        set_unix(p, &h.source, &h.source_len);
        set_unix(p + 108, &h.destination, &h.destination_len);
    }
    *out = h;
    return (int)(16 + payload);
}

/* ---- entry point ---------------------------------------------------- */

int ss__proxy_parse(const void *data, size_t len, int versions,
                    ss__proxy_header *out)
{
    const uint8_t *buf = data;
    if (len == 0)
        return 0;
    if (buf[0] == 'P' && (versions & SS__PROXY_ACCEPT_V1))
        return parse_v1(buf, len, out);
    if (buf[0] == v2_signature[0] && (versions & SS__PROXY_ACCEPT_V2))
        return parse_v2(buf, len, out);
    return -EPROTO;
}

/* ---- trusted proxies ------------------------------------------------ */

static int parse_net(const char *text, size_t n, ss__proxy_net *net)
{
    char copy[INET6_ADDRSTRLEN + 8];
    if (n == 0 || n >= sizeof copy)
        return -EINVAL;
    memcpy(copy, text, n);
    copy[n] = '\0';
    memset(net, 0, sizeof *net);
    if (strcmp(copy, "unix") == 0) {
        net->family = AF_UNIX;
        return 0;
    }
    char *slash = strchr(copy, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *digits = slash + 1;
        size_t d = strlen(digits);
        if (d == 0 || d > 3 || (d > 1 && digits[0] == '0'))
            return -EINVAL;
        prefix = 0;
        for (size_t i = 0; i < d; i++) {
            if (digits[i] < '0' || digits[i] > '9')
                return -EINVAL;
            prefix = prefix * 10 + (digits[i] - '0');
        }
    }
    if (inet_pton(AF_INET, copy, net->address) == 1) {
        net->family = AF_INET;
        net->prefix = prefix < 0 ? 32 : (int)prefix;
        return prefix > 32 ? -EINVAL : 0;
    }
    if (inet_pton(AF_INET6, copy, net->address) == 1) {
        net->family = AF_INET6;
        net->prefix = prefix < 0 ? 128 : (int)prefix;
        return prefix > 128 ? -EINVAL : 0;
    }
    return -EINVAL;
}

static bool is_separator(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

int ss__proxy_trust_parse(const char *text, ss__proxy_trust *out)
{
    ss__proxy_trust t;
    memset(&t, 0, sizeof t);
    if (!text) {
        t.count = -1;
        *out = t;
        return 0;
    }
    const char *p = text;
    for (;;) {
        while (is_separator(*p))
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        while (*p && !is_separator(*p))
            p++;
        if (t.count == SS__PROXY_TRUST_MAX)
            return -EINVAL;
        int rc = parse_net(start, (size_t)(p - start), &t.nets[t.count]);
        if (rc < 0)
            return rc;
        t.count++;
    }
    if (t.count == 0)
        return -EINVAL; /* an empty list would refuse every connection */
    *out = t;
    return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    int bytes = bits / 8;
    if (memcmp(a, b, (size_t)bytes) != 0)
        return false;
    int rest = bits % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool ss__proxy_trust_match(const ss__proxy_trust *trust,
                           const struct sockaddr *peer, socklen_t len)
{
    if (trust->count < 0)
        return true;
    const uint8_t *v4 = NULL, *v6 = NULL;
    if (peer->sa_family == AF_INET &&
        len >= (socklen_t)sizeof(struct sockaddr_in)) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
    } else if (peer->sa_family == AF_INET6 &&
               len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)peer)->sin6_addr;
        v6 = (const uint8_t *)a;
        if (IN6_IS_ADDR_V4MAPPED(a))
            v4 = v6 + 12;
    }
    for (int i = 0; i < trust->count; i++) {
        const ss__proxy_net *net = &trust->nets[i];
        if (net->family == AF_UNIX && peer->sa_family == AF_UNIX)
            return true;
        if (net->family == AF_INET && v4 &&
            prefix_equal(net->address, v4, net->prefix))
            return true;
        if (net->family == AF_INET6 && v6 &&
            prefix_equal(net->address, v6, net->prefix))
            return true;
    }
    return false;
}
