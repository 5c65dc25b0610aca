/*
 * address.c — the address strings users type, to and from struct sockaddr.
 *
 *   "127.0.0.1:8000"  "[::1]:8000"  "localhost:8000"  ":8000"  "::1"
 *   "unix:/path"      "unix:@abstract"
 *
 * The parser is strict on purpose: a port is 1–5 decimal digits and no
 * more than 65535, with no sign, space or base prefix, because a typo in an
 * address should be an error at startup, not a server quietly listening
 * somewhere else. It writes the result only on success.
 *
 * Literal IP addresses are parsed with inet_pton so they never touch DNS;
 * only something that is not a literal goes to getaddrinfo.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"

#define UNIX_PREFIX "unix:"
/* Longest host name DNS allows, plus room to be sure we reject longer. */
#define MAX_HOST 255

/* "0".."65535", digits only. Returns the port or -EINVAL. */
static int parse_port(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || n > 5)
        return -EINVAL;
    long port = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -EINVAL;
        port = port * 10 + (text[i] - '0');
    }
    return port <= 65535 ? (int)port : -EINVAL;
}

static int parse_unix(const char *path, struct sockaddr_storage *addr,
                      socklen_t *len)
{
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    if (path[0] == '@') {
        /* Linux abstract name: a leading NUL, then the name, counted by
         * length rather than terminated. "@" alone would ask the kernel to
         * autobind, which a server never wants. */
        if (n == 1)
            return -EINVAL;
        if (n > sizeof un.sun_path)
            return -ENAMETOOLONG;
        memcpy(un.sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        if (n >= sizeof un.sun_path)
            return -ENAMETOOLONG;
        memcpy(un.sun_path, path, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    memset(addr, 0, sizeof *addr);
    memcpy(addr, &un, sizeof un);
    return 0;
}

static int set_ip(int family, const void *ip, int port,
                  struct sockaddr_storage *addr, socklen_t *len)
{
    memset(addr, 0, sizeof *addr);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        memcpy(&in->sin_addr, ip, sizeof in->sin_addr);
        *len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        memcpy(&in6->sin6_addr, ip, sizeof in6->sin6_addr);
        *len = sizeof *in6;
    }
    return 0;
}

/* A host name (not a literal): the first result, IPv4 or IPv6. */
static int resolve(const char *host, int port, int socket_type,
                   struct sockaddr_storage *addr, socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socket_type ? socket_type : SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME || rc == EAI_NODATA) {
        /* AI_ADDRCONFIG hides "localhost" on a machine with only
         * loopback configured; ask again without it. */
        hints.ai_flags = 0;
        rc = getaddrinfo(host, NULL, &hints, &res);
    }
    if (rc != 0)
        return rc == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
    int result = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)ai->ai_addr;
            result = set_ip(AF_INET, &in->sin_addr, port, addr, len);
            break;
        }
        if (ai->ai_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ai->ai_addr;
            result = set_ip(AF_INET6, &in6->sin6_addr, port, addr, len);
            break;
        }
    }
    freeaddrinfo(res);
    return result;
}

static int parse_host(const char *host, int port, int socket_type,
                      struct sockaddr_storage *addr, socklen_t *len)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (host[0] == '\0') {
        v4.s_addr = htonl(INADDR_ANY);
        return set_ip(AF_INET, &v4, port, addr, len);
    }
    if (inet_pton(AF_INET, host, &v4) == 1)
        return set_ip(AF_INET, &v4, port, addr, len);
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return set_ip(AF_INET6, &v6, port, addr, len);
    /* Only plausible host names go to the resolver. A name whose last
     * label starts with a digit is a mangled number ("127.1", "010.0.0.1",
     * "0x7f.1"): getaddrinfo would read it by inet_aton's old rules and
     * bind somewhere the user did not mean. No top-level domain starts
     * with a digit, so refusing these loses no real name. */
    const char *last_label = strrchr(host, '.');
    last_label = last_label ? last_label + 1 : host;
    if (*last_label >= '0' && *last_label <= '9')
        return -EINVAL;
    for (const char *p = host; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
        if (!ok)
            return -EINVAL;
    }
    return resolve(host, port, socket_type, addr, len);
}

int ss_address_parse(const char *text, int socket_type,
                     struct sockaddr_storage *addr, socklen_t *len)
{
    if (!text || !addr || !len)
        return -EINVAL;
    if (strncmp(text, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0)
        return parse_unix(text + strlen(UNIX_PREFIX), addr, len);

    char host[MAX_HOST + 1];
    const char *port_text;
    size_t host_len;

    if (text[0] == '[') {
        /* "[v6]:port" — the brackets must hold an IPv6 literal. */
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        host_len = (size_t)(close - text - 1);
        if (host_len == 0 || host_len > MAX_HOST)
            return -EINVAL;
        memcpy(host, text + 1, host_len);
        host[host_len] = '\0';
        struct in6_addr v6;
        if (inet_pton(AF_INET6, host, &v6) != 1)
            return -EINVAL;
        int port = parse_port(close + 2);
        if (port < 0)
            return port;
        return set_ip(AF_INET6, &v6, port, addr, len);
    }

    const char *colon = strrchr(text, ':');
    if (!colon)
        return -EINVAL; /* a host without a port is ambiguous */
    if (colon != strchr(text, ':')) {
        /* More than one colon and no brackets: a bare IPv6 literal. */
        struct in6_addr v6;
        if (strlen(text) > MAX_HOST || inet_pton(AF_INET6, text, &v6) != 1)
            return -EINVAL;
        return set_ip(AF_INET6, &v6, 0, addr, len);
    }
    host_len = (size_t)(colon - text);
    if (host_len > MAX_HOST)
        return -EINVAL;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    port_text = colon + 1;
    int port = parse_port(port_text);
    if (port < 0)
        return port;
    return parse_host(host, port, socket_type, addr, len);
}

int ss_address_format(const struct sockaddr *addr, socklen_t len, char *buf,
                      size_t size)
{
    char text[sizeof(struct sockaddr_un) + 16];
    int n;

    if (!addr || len < (socklen_t)sizeof(sa_family_t))
        return -EINVAL;
    if ((addr->sa_family == AF_INET &&
         len < (socklen_t)sizeof(struct sockaddr_in)) ||
        (addr->sa_family == AF_INET6 &&
         len < (socklen_t)sizeof(struct sockaddr_in6)))
        return -EINVAL;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        n = snprintf(text, sizeof text, "%s:%u", ip, ntohs(in->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        n = snprintf(text, sizeof text, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (addr->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        size_t path_len = len - offsetof(struct sockaddr_un, sun_path);
        if (len > (socklen_t)sizeof *un)
            path_len = sizeof un->sun_path;
        if (path_len == 0) {
            n = snprintf(text, sizeof text, "unix:"); /* unnamed peer */
        } else if (un->sun_path[0] == '\0') {
            /* Abstract: the name is everything after the NUL, by length. */
            n = snprintf(text, sizeof text, "unix:@%.*s", (int)(path_len - 1),
                         un->sun_path + 1);
        } else {
            n = snprintf(text, sizeof text, "unix:%.*s", (int)path_len,
                         un->sun_path);
        }
    } else {
        return -EAFNOSUPPORT;
    }
    if (n < 0)
        return -EINVAL;
    if (size == 0)
        return 0;
    size_t copy = (size_t)n < size - 1 ? (size_t)n : size - 1;
    memcpy(buf, text, copy);
    buf[copy] = '\0';
    return (int)copy;
}
