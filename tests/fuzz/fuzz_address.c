/*
 * fuzz_address.c — libFuzzer target for the address strings users type
 * (ss_address_parse) and their formatting (ss_address_format), both in
 * lib/address.c. Addresses come from command lines and configuration
 * files, so the parser takes outside input.
 *
 * Each input is used twice. As a string (up to its first NUL byte):
 *  - a failure is one of the documented errors and leaves *addr and *len
 *    exactly as they were;
 *  - a success gives a length that fits the family, and the address
 *    formats and parses back to the same bytes (the round trip the
 *    header promises: "format an address the way ss_address_parse reads
 *    it"), and formatting into any smaller buffer gives a NUL-terminated
 *    prefix of the same text.
 * As raw struct sockaddr bytes of exactly the input's length (an exactly
 * sized heap copy, so ASan sees a read past the length the caller gave):
 * formatting never reads beyond it, always terminates the text, and an
 * IPv4 or IPv6 address formats to text that parses back to the same
 * address and port.
 *
 * Host names never reach the network: address.c is compiled into this
 * target with getaddrinfo/freeaddrinfo renamed to the stand-ins below
 * (tests/fuzz/CMakeLists.txt), which know "localhost" and
 * "ip6-localhost" and nothing else, and which check that only a
 * plausible host name gets as far as the resolver.
 */
#include <sockserv/sockserv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "fuzz_check.h"

/* ---- the resolver's stand-in ---------------------------------------- */

/* What address.c promises before it calls the resolver: letters, digits,
 * '-', '.', '_' only, and a last label that does not start with a digit. */
static void check_plausible_host(const char *host)
{
    CHECK(host && host[0] != '\0');
    for (const char *p = host; *p; p++) {
        char c = *p;
        CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_');
    }
    const char *last = strrchr(host, '.');
    last = last ? last + 1 : host;
    CHECK(!(*last >= '0' && *last <= '9'));
}

/* Defined under the names address.c calls (see CMakeLists.txt: the macros
 * getaddrinfo and freeaddrinfo rename both the declarations in <netdb.h>
 * and these definitions). */
int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res)
{
    (void)service;
    check_plausible_host(node);
    CHECK(hints != NULL);
    int family;
    if (strcasecmp(node, "localhost") == 0)
        family = AF_INET;
    else if (strcasecmp(node, "ip6-localhost") == 0)
        family = AF_INET6;
    else
        return EAI_NONAME;

    /* One allocation per result, as freeaddrinfo below expects. */
    struct {
        struct addrinfo ai;
        struct sockaddr_storage addr;
    } *r = calloc(1, sizeof *r);
    if (!r)
        return EAI_MEMORY;
    r->ai.ai_family = family;
    r->ai.ai_socktype = hints->ai_socktype;
    r->ai.ai_addr = (struct sockaddr *)&r->addr;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&r->addr;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        r->ai.ai_addrlen = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&r->addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        r->ai.ai_addrlen = sizeof *in6;
    }
    *res = &r->ai;
    return 0;
}

void freeaddrinfo(struct addrinfo *res)
{
    while (res) {
        struct addrinfo *next = res->ai_next;
        free(res);
        res = next;
    }
}

/* ---- strings -------------------------------------------------------- */

static size_t family_len_min(int family)
{
    switch (family) {
    case AF_INET:
        return sizeof(struct sockaddr_in);
    case AF_INET6:
        return sizeof(struct sockaddr_in6);
    case AF_UNIX:
        return offsetof(struct sockaddr_un, sun_path) + 1;
    default:
        return 0;
    }
}

static size_t family_len_max(int family)
{
    return family == AF_UNIX ? sizeof(struct sockaddr_un)
                             : family_len_min(family);
}

/* Formatting into every smaller buffer gives a terminated prefix. */
static void check_truncation(const struct sockaddr *addr, socklen_t len,
                             const char *full, int full_len)
{
    char buf[320];
    size_t sizes[] = {
        0, 1, 2, (size_t)full_len / 2, (size_t)full_len, (size_t)full_len + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i];
        memset(buf, 0x5A, sizeof buf);
        int n = ss_address_format(addr, len, buf, size);
        size_t expect = size == 0                     ? 0
                        : (size_t)full_len < size - 1 ? (size_t)full_len
                                                      : size - 1;
        CHECK(n >= 0 && (size_t)n == expect);
        if (size > 0) {
            CHECK(buf[n] == '\0');
            CHECK(memcmp(buf, full, (size_t)n) == 0);
        }
        CHECK((unsigned char)buf[size] == 0x5A); /* nothing past size */
    }
}

static void check_string(const char *text)
{
    struct sockaddr_storage addr, before;
    socklen_t len, len_before;
    memset(&addr, 0xA5, sizeof addr);
    memset(&len, 0xA5, sizeof len);
    memcpy(&before, &addr, sizeof addr);
    len_before = len;

    int type = strlen(text) % 2 ? SOCK_DGRAM : SOCK_STREAM;
    int rc = ss_address_parse(text, type, &addr, &len);
    if (rc != 0) {
        CHECK(rc == -EINVAL || rc == -ENAMETOOLONG || rc == -EADDRNOTAVAIL ||
              rc == -ENOMEM);
        CHECK(memcmp(&addr, &before, sizeof addr) == 0);
        CHECK(len == len_before);
        return;
    }
    int family = addr.ss_family;
    CHECK(family == AF_INET || family == AF_INET6 || family == AF_UNIX);
    CHECK(len >= family_len_min(family) && len <= family_len_max(family));

    char formatted[300];
    int n = ss_address_format((struct sockaddr *)&addr, len, formatted,
                              sizeof formatted);
    CHECK(n > 0 && (size_t)n < sizeof formatted);
    CHECK(strlen(formatted) == (size_t)n);
    check_truncation((struct sockaddr *)&addr, len, formatted, n);

    struct sockaddr_storage again;
    socklen_t again_len;
    memset(&again, 0x3C, sizeof again);
    rc = ss_address_parse(formatted, type, &again, &again_len);
    if (rc != 0 || again_len != len || memcmp(&addr, &again, len) != 0) {
        fprintf(stderr, "round trip: '%s' -> '%s' -> %d\n", text, formatted,
                rc);
        CHECK(!"the formatted address parses back to the same bytes");
    }
}

/* ---- raw struct sockaddr bytes -------------------------------------- */

static void check_raw(const uint8_t *data, size_t size)
{
    if (size > sizeof(struct sockaddr_storage))
        size = sizeof(struct sockaddr_storage);
    /* Exactly size bytes: any read past len is a heap overflow. malloc's
     * alignment suits every sockaddr type. */
    struct sockaddr *addr = malloc(size ? size : 1);
    CHECK(addr);
    if (size)
        memcpy(addr, data, size);
    socklen_t len = (socklen_t)size;

    char text[300];
    memset(text, 0x5A, sizeof text);
    int n = ss_address_format(addr, len, text, sizeof text);
    if (n < 0) {
        CHECK(n == -EINVAL || n == -EAFNOSUPPORT);
        free(addr);
        return;
    }
    CHECK((size_t)n < sizeof text && text[n] == '\0');
    CHECK(strlen(text) <= (size_t)n); /* a Unix name may hold a NUL */
    check_truncation(addr, len, text, n);

    /* IP addresses come back unchanged (sin_zero, flow info and scope are
     * not part of the text). */
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) {
        struct sockaddr_storage back;
        socklen_t back_len;
        CHECK(ss_address_parse(text, SOCK_STREAM, &back, &back_len) == 0);
        CHECK(back.ss_family == addr->sa_family);
        if (addr->sa_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
            const struct sockaddr_in *b = (const struct sockaddr_in *)&back;
            CHECK(a->sin_port == b->sin_port);
            CHECK(a->sin_addr.s_addr == b->sin_addr.s_addr);
        } else {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
            const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&back;
            CHECK(a->sin6_port == b->sin6_port);
            CHECK(memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0);
        }
    }
    free(addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The string: an exactly sized copy up to the first NUL. */
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(text_len + 1);
    CHECK(text);
    memcpy(text, data, text_len);
    text[text_len] = '\0';
    check_string(text);
    free(text);

    check_raw(data, size);
    return 0;
}
