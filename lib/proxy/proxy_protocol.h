/*
 * proxy_protocol.h — the PROXY protocol (HAProxy's, versions 1 and 2) as
 * pure functions: a header parser and the trusted-proxy list. No I/O, no
 * allocation, no state between calls, so both are table-tested and
 * fuzzable on their own. proxy_request.c does the reading.
 *
 * The parser works like picohttpparser: give it the bytes received so far
 * and it answers "a complete header of N bytes", "need more" or
 * "malformed" — and says "malformed" as early as the bytes allow, so a
 * client that is not a proxy is refused at its first wrong byte rather
 * than after the header deadline.
 */
#ifndef SOCKSERV_PROXY_PROTOCOL_H
#define SOCKSERV_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Version 1 lines are at most 107 bytes, CRLF included (the spec's worst
 * case, "PROXY TCP6" with two full IPv6 addresses and ports). */
#define SS__PROXY_V1_MAX 107
/* Version 2: the 16 fixed bytes, then at most this much more (addresses
 * and TLVs). The spec allows 65535; real proxies send a few dozen bytes,
 * and the whole header has to fit in the request's read buffer. */
#define SS__PROXY_V2_MAX_PAYLOAD 4080
#define SS__PROXY_MAX_HEADER (16 + SS__PROXY_V2_MAX_PAYLOAD)

/* Which versions a server accepts (ss_config.proxy_protocol's values). */
#define SS__PROXY_ACCEPT_V1 1
#define SS__PROXY_ACCEPT_V2 2

typedef struct ss__proxy_header {
    int version; /* 1 or 2 */
    /* No address to use: v1 "UNKNOWN", v2 LOCAL (the proxy's own health
     * check), or v2 PROXY with the UNSPEC family. The connection's own
     * endpoints stay in force. */
    bool local;
    /* v2: SOCK_STREAM, SOCK_DGRAM or 0 (UNSPEC); v1: SOCK_STREAM. */
    int transport;
    /* When !local: the original client and the address it connected to
     * (AF_INET, AF_INET6 or AF_UNIX). */
    struct sockaddr_storage source, destination;
    socklen_t source_len, destination_len;
} ss__proxy_header;

/* Parse the header at the start of buf[0..len). versions is a mask of
 * SS__PROXY_ACCEPT_*. Returns the header's length (> 0; the bytes after it
 * are the client's data), 0 when buf is a valid beginning that needs more
 * bytes, or -EPROTO when it is not a header this server accepts (garbage,
 * a version not in the mask, a line or block too long, bad addresses or
 * ports, a malformed TLV). *out is written only on success. */
int ss__proxy_parse(const void *buf, size_t len, int versions,
                    ss__proxy_header *out);

/* ---- trusted proxies ------------------------------------------------ */

#define SS__PROXY_TRUST_MAX 32

/* One entry: a network (family AF_INET or AF_INET6, the address and a
 * prefix length in bits), or family AF_UNIX for "any Unix-socket peer". */
typedef struct ss__proxy_net {
    int family;
    uint8_t address[16];
    int prefix;
} ss__proxy_net;

typedef struct ss__proxy_trust {
    int count; /* entries used; -1 = no list, every peer is trusted */
    ss__proxy_net nets[SS__PROXY_TRUST_MAX];
} ss__proxy_trust;

/* Parse ss_config.proxy_trusted: entries separated by commas and/or
 * spaces, each an IPv4 or IPv6 address with an optional /prefix, or
 * "unix". NULL means no list (count -1). Returns 0, or -EINVAL for an
 * empty list, a malformed entry or more than SS__PROXY_TRUST_MAX. */
int ss__proxy_trust_parse(const char *text, ss__proxy_trust *out);

/* Whether peer may send a header. An IPv4-mapped IPv6 peer (a dual-stack
 * socket) matches IPv4 entries too. */
bool ss__proxy_trust_match(const ss__proxy_trust *trust,
                           const struct sockaddr *peer, socklen_t len);

#endif /* SOCKSERV_PROXY_PROTOCOL_H */
