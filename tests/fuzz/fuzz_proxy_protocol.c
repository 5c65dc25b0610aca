/*
 * fuzz_proxy_protocol.c — libFuzzer target for the PROXY protocol header
 * parser and the trusted-proxy list (lib/proxy_protocol.c, internal
 * ss__proxy_* functions). The header comes straight from the network:
 * before it is parsed, nothing says the peer is a proxy at all.
 *
 * The input is parsed as received bytes, with each accepted-version mask,
 * always from a heap copy that ends exactly where the given length ends,
 * so that ASan catches any read past it. Properties, each an abort when
 * broken:
 *  - the result is a length in 1..len, 0 (need more) or -EPROTO, and *out
 *    is written only on success;
 *  - v1 success: the input starts "PROXY ", the header ends with the first
 *    CRLF, within SS__PROXY_V1_MAX bytes, and everything before it is
 *    printable ASCII; the addresses, written back out canonically, parse
 *    to the same header;
 *  - v2 success: the 12-byte signature, version 2, and a length of 16 plus
 *    the length field, at most SS__PROXY_MAX_HEADER;
 *  - the parser is prefix-consistent, as a reader that calls it after each
 *    recv needs: every prefix of a header is "need more", every longer
 *    input gives the same header, and once an input is refused every
 *    longer one is refused too (a malformed header is never "need more"
 *    later, and never accepted);
 *  - a version outside the mask is refused.
 * The input, up to its first NUL, is also a trusted-proxy list
 * (ss_config.proxy_trusted): -EINVAL or a list of 1..SS__PROXY_TRUST_MAX
 * networks with prefixes in range, each of which formats and parses back
 * to itself, and matching peers against it is safe.
 */
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "fuzz_check.h"

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Prefixes are checked one by one up to this length, then sampled. */
#define PREFIX_ALL 300

/* Where parse_exact copies its input: a heap block whose last len bytes
 * hold it, so that reading one byte past len reads past the block. One
 * block per fuzz input, sized for the whole input, serves every prefix. */
static uint8_t *arena;
static size_t arena_size;

/* Parse the first len bytes of data, placed at the very end of the arena
 * (len <= arena_size). */
static int parse_exact(const uint8_t *data, size_t len, int versions,
                       ss__proxy_header *out)
{
    CHECK(len <= arena_size);
    uint8_t *copy = arena + (arena_size - len);
    if (len)
        memmove(copy, data, len);
    /* Poison *out: it must be left alone unless the result is > 0. */
    ss__proxy_header before;
    memset(&before, 0xA5, sizeof before);
    memcpy(out, &before, sizeof before);
    int rc = ss__proxy_parse(copy, len, versions, out);
    CHECK(rc == 0 || rc == -EPROTO || (rc > 0 && (size_t)rc <= len));
    if (rc <= 0)
        CHECK(memcmp(out, &before, sizeof before) == 0);
    return rc;
}

static bool same_header(const ss__proxy_header *a, const ss__proxy_header *b)
{
    if (a->version != b->version || a->local != b->local ||
        a->transport != b->transport)
        return false;
    if (a->local)
        return true;
    return a->source_len == b->source_len &&
           a->destination_len == b->destination_len &&
           memcmp(&a->source, &b->source, a->source_len) == 0 &&
           memcmp(&a->destination, &b->destination, a->destination_len) == 0;
}

static socklen_t inet_len(int family)
{
    return family == AF_INET ? sizeof(struct sockaddr_in)
                             : sizeof(struct sockaddr_in6);
}

/* "PROXY TCP4 a b p q\r\n" from a parsed header, in inet_ntop's form. */
static int v1_line(const ss__proxy_header *h, char *line, size_t size)
{
    int family = h->source.ss_family;
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    unsigned sport, dport;
    if (family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&h->source;
        const struct sockaddr_in *d =
            (const struct sockaddr_in *)&h->destination;
        CHECK(inet_ntop(AF_INET, &s->sin_addr, src, sizeof src));
        CHECK(inet_ntop(AF_INET, &d->sin_addr, dst, sizeof dst));
        sport = ntohs(s->sin_port);
        dport = ntohs(d->sin_port);
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&h->source;
        const struct sockaddr_in6 *d =
            (const struct sockaddr_in6 *)&h->destination;
        CHECK(inet_ntop(AF_INET6, &s->sin6_addr, src, sizeof src));
        CHECK(inet_ntop(AF_INET6, &d->sin6_addr, dst, sizeof dst));
        sport = ntohs(s->sin6_port);
        dport = ntohs(d->sin6_port);
    }
    return snprintf(line, size, "PROXY TCP%c %s %s %u %u\r\n",
                    family == AF_INET ? '4' : '6', src, dst, sport, dport);
}

static void check_v1(const uint8_t *buf, size_t len, int rc,
                     const ss__proxy_header *h)
{
    size_t n = (size_t)rc;
    CHECK(n <= SS__PROXY_V1_MAX && n <= len && n >= 8);
    CHECK(memcmp(buf, "PROXY ", 6) == 0);
    CHECK(buf[n - 2] == '\r' && buf[n - 1] == '\n');
    for (size_t i = 0; i < n - 2; i++)
        CHECK(buf[i] >= 0x20 && buf[i] <= 0x7e); /* no earlier CR or LF */
    CHECK(h->version == 1 && h->transport == SOCK_STREAM);
    if (h->local) {
        CHECK(memcmp(buf + 6, "UNKNOWN", 7) == 0);
        return;
    }
    int family = h->source.ss_family;
    CHECK(family == AF_INET || family == AF_INET6);
    CHECK(h->destination.ss_family == family);
    CHECK(h->source_len == inet_len(family));
    CHECK(h->destination_len == inet_len(family));
    CHECK(memcmp(buf + 6, family == AF_INET ? "TCP4 " : "TCP6 ", 5) == 0);

    /* Written back in canonical form, the line gives the same header. */
    char line[SS__PROXY_V1_MAX + 64];
    int line_len = v1_line(h, line, sizeof line);
    CHECK(line_len > 0 && line_len <= SS__PROXY_V1_MAX);
    ss__proxy_header again;
    CHECK(ss__proxy_parse(line, (size_t)line_len, SS__PROXY_ACCEPT_V1,
                          &again) == line_len);
    CHECK(same_header(h, &again));
}

static void check_v2(const uint8_t *buf, size_t len, int rc,
                     const ss__proxy_header *h)
{
    size_t n = (size_t)rc;
    CHECK(n >= 16 && n <= len && n <= SS__PROXY_MAX_HEADER);
    CHECK(memcmp(buf, v2_signature, sizeof v2_signature) == 0);
    CHECK((buf[12] >> 4) == 2);
    CHECK(n == 16 + ((size_t)buf[14] << 8 | buf[15]));
    CHECK(h->version == 2);
    CHECK(h->transport == 0 || h->transport == SOCK_STREAM ||
          h->transport == SOCK_DGRAM);
    if (h->local)
        return;
    int family = h->source.ss_family;
    CHECK(h->destination.ss_family == family);
    switch (buf[13] >> 4) {
    case 1:
        CHECK(family == AF_INET && n >= 16 + 12);
        CHECK(h->source_len == inet_len(AF_INET));
        break;
    case 2:
        CHECK(family == AF_INET6 && n >= 16 + 36);
        CHECK(h->source_len == inet_len(AF_INET6));
        break;
    case 3:
        CHECK(family == AF_UNIX && n >= 16 + 216);
        CHECK(h->source_len >= offsetof(struct sockaddr_un, sun_path) &&
              h->source_len <= sizeof(struct sockaddr_un));
        CHECK(h->destination_len >= offsetof(struct sockaddr_un, sun_path) &&
              h->destination_len <= sizeof(struct sockaddr_un));
        break;
    default:
        CHECK(!"an address family that is not INET, INET6 or UNIX");
    }
}

/* Every prefix agrees with the whole: see the comment at the top. */
static void check_prefix(const uint8_t *buf, size_t k, int versions, int full,
                         const ss__proxy_header *full_header,
                         int *first_refused)
{
    ss__proxy_header h;
    int rc = parse_exact(buf, k, versions, &h);
    if (full > 0) {
        if (k < (size_t)full) {
            CHECK(rc == 0);
        } else {
            CHECK(rc == full);
            CHECK(same_header(&h, full_header));
        }
    } else if (full == 0) {
        CHECK(rc == 0);
    } else {
        CHECK(rc == 0 || rc == -EPROTO);
        if (rc == -EPROTO && (*first_refused < 0 || (int)k < *first_refused))
            *first_refused = (int)k;
        /* Monotone: a refused prefix is never followed by "need more". */
        if (rc == 0 && *first_refused >= 0)
            CHECK((int)k < *first_refused);
    }
}

static void check_header(const uint8_t *buf, size_t len, int versions,
                         bool prefixes)
{
    ss__proxy_header h;
    int rc = parse_exact(buf, len, versions, &h);
    if (rc > 0) {
        if (buf[0] == 'P') {
            CHECK(versions & SS__PROXY_ACCEPT_V1);
            check_v1(buf, len, rc, &h);
        } else {
            CHECK(versions & SS__PROXY_ACCEPT_V2);
            check_v2(buf, len, rc, &h);
        }
    }
    if (len > 0 && buf[0] == 'P' && !(versions & SS__PROXY_ACCEPT_V1))
        CHECK(rc == -EPROTO);
    if (len > 0 && buf[0] == 0x0D && !(versions & SS__PROXY_ACCEPT_V2))
        CHECK(rc == -EPROTO);

    if (!prefixes)
        return;
    /* Prefixes in increasing length (so "first refused" is the first). */
    int first_refused = -1;
    if (len <= PREFIX_ALL) {
        for (size_t k = 0; k <= len; k++)
            check_prefix(buf, k, versions, rc, &h, &first_refused);
    } else {
        /* Increasing, as above (len > PREFIX_ALL, so len / 2 > 108). */
        size_t picks[] = {0,   1,   12,  13,  15,      16,      17,
                          105, 106, 107, 108, len / 2, len - 1, len};
        for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++)
            check_prefix(buf, picks[i], versions, rc, &h, &first_refused);
        if (rc > 0) {
            check_prefix(buf, (size_t)rc - 1, versions, rc, &h, &first_refused);
            check_prefix(buf, (size_t)rc, versions, rc, &h, &first_refused);
        }
    }
}

/* ---- trusted proxies ------------------------------------------------ */

static void check_trust(const char *text)
{
    ss__proxy_trust t, before;
    memset(&t, 0xA5, sizeof t);
    memcpy(&before, &t, sizeof t);
    int rc = ss__proxy_trust_parse(text, &t);
    if (rc != 0) {
        CHECK(rc == -EINVAL);
        CHECK(memcmp(&t, &before, sizeof t) == 0);
        return;
    }
    CHECK(t.count >= 1 && t.count <= SS__PROXY_TRUST_MAX);
    for (int i = 0; i < t.count; i++) {
        const ss__proxy_net *net = &t.nets[i];
        char entry[INET6_ADDRSTRLEN + 8];
        if (net->family == AF_UNIX) {
            snprintf(entry, sizeof entry, "unix");
        } else {
            CHECK(net->family == AF_INET || net->family == AF_INET6);
            CHECK(net->prefix >= 0 &&
                  net->prefix <= (net->family == AF_INET ? 32 : 128));
            char ip[INET6_ADDRSTRLEN];
            CHECK(inet_ntop(net->family, net->address, ip, sizeof ip));
            snprintf(entry, sizeof entry, "%s/%d", ip, net->prefix);
        }
        ss__proxy_trust one;
        CHECK(ss__proxy_trust_parse(entry, &one) == 0 && one.count == 1);
        CHECK(one.nets[0].family == net->family &&
              one.nets[0].prefix == net->prefix &&
              memcmp(one.nets[0].address, net->address, 16) == 0);
    }

    /* Matching reads only what the peer's length covers. */
    struct sockaddr_in v4 = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    memcpy(mapped.sin6_addr.s6_addr + 10, "\xff\xff\x7f\x00\x00\x01", 6);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    const struct sockaddr *peers[] = {
        (struct sockaddr *)&v4, (struct sockaddr *)&v6,
        (struct sockaddr *)&mapped, (struct sockaddr *)&un};
    socklen_t lens[] = {sizeof v4, sizeof v6, sizeof mapped,
                        sizeof(sa_family_t)};
    for (size_t i = 0; i < 4; i++) {
        void *exact = malloc(lens[i]);
        CHECK(exact);
        memcpy(exact, peers[i], lens[i]);
        (void)ss__proxy_trust_match(&t, exact, lens[i]);
        free(exact);
    }
    /* A dual-stack socket sees IPv4 clients as IPv4-mapped IPv6: whatever
     * trusts the IPv4 peer trusts its mapped form too. */
    if (ss__proxy_trust_match(&t, peers[0], lens[0]))
        CHECK(ss__proxy_trust_match(&t, peers[2], lens[2]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Headers longer than any the parser accepts add nothing. */
    size_t len =
        size < SS__PROXY_MAX_HEADER + 64 ? size : SS__PROXY_MAX_HEADER + 64;
    arena_size = len;
    arena = malloc(len ? len : 1);
    CHECK(arena);
    check_header(data, len, SS__PROXY_ACCEPT_V1 | SS__PROXY_ACCEPT_V2, true);
    check_header(data, len, SS__PROXY_ACCEPT_V1, false);
    check_header(data, len, SS__PROXY_ACCEPT_V2, false);
    free(arena);
    arena = NULL;

    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(text_len + 1);
    CHECK(text);
    memcpy(text, data, text_len);
    text[text_len] = '\0';
    check_trust(text);
    free(text);
    return 0;
}
