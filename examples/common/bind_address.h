/*
 * bind_address.h — the --bind HOST option of the example servers, checked
 * before the server is made: HOST and PORT become the "HOST:PORT" string
 * the library parses, or a sentence saying what is wrong with HOST.
 *
 * Without the check a user's mistake reaches ss_server_new() and comes
 * back as a bare "Invalid argument", or as an address the program built
 * from the mistake ("[127.0.0.1:80]:8000"). Shared by sockserv-echo,
 * sockserv-httpd, sockserv-fileserver and sockserv-chat, so all four say
 * the same thing; each prints it as its own usage error (exit status 2).
 */
#ifndef SOCKSERV_EXAMPLES_BIND_ADDRESS_H
#define SOCKSERV_EXAMPLES_BIND_ADDRESS_H

#include <sockserv/sockserv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Writes "HOST:PORT" ("[HOST]:PORT" for an IPv6 literal, ":PORT" for ""
 * = all IPv4) into address. HOST is a host only: an IP address, "::1" or
 * "[::1]", or a name, which must resolve. Returns NULL when HOST is good,
 * else why it is not (valid until the next call). socket_type is
 * SOCK_STREAM or SOCK_DGRAM; unix_option names the program's option for
 * Unix sockets, or is NULL when it has none. */
static inline const char *bind_address(char *address, size_t size,
                                       const char *host, int port,
                                       int socket_type, const char *unix_option)
{
    static char why[400];
    char inner[INET6_ADDRSTRLEN];
    size_t n = strlen(host);
    struct in6_addr v6;
    int written;

    if (strncmp(host, "unix:", 5) == 0) {
        if (unix_option)
            snprintf(why, sizeof why,
                     "'%s' is not a host: for a Unix socket use %s", host,
                     unix_option);
        else
            snprintf(why, sizeof why,
                     "'%s' is not a host: this program serves on IP "
                     "addresses only",
                     host);
        return why;
    }
    /* "[::1]" is accepted as "::1": the brackets only matter next to a
     * port, and the port is added here. */
    if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof inner) {
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        if (inet_pton(AF_INET6, inner, &v6) == 1)
            host = inner;
    }
    if (inet_pton(AF_INET6, host, &v6) == 1)
        written = snprintf(address, size, "[%s]:%d", host, port);
    else if (strstr(host, "]:") || (strchr(host, ':') && !strchr(host, '[')))
        written = -1; /* "127.0.0.1:80", "[::1]:80", "localhost:80" */
    else if (strpbrk(host, "[]"))
        written = (int)size; /* "[::1", "[127.0.0.1]": malformed */
    else
        written = snprintf(address, size, "%s:%d", host, port);

    if (written < 0) {
        snprintf(why, sizeof why,
                 "'%s': give the host only; the port is the PORT argument",
                 host);
        return why;
    }
    struct sockaddr_storage parsed;
    socklen_t len;
    /* The library's rule: a last label that starts with a digit is a
     * number ("127.1", "0x7f.1"), never a name to look up. */
    const char *last_label = strrchr(host, '.');
    last_label = last_label ? last_label + 1 : host;
    bool looks_numeric = *last_label >= '0' && *last_label <= '9';
    int rc = (size_t)written >= size
                 ? -EINVAL
                 : ss_address_parse(address, socket_type, &parsed, &len);
    if (rc == -EADDRNOTAVAIL) /* a name the resolver does not know */
        snprintf(why, sizeof why, "host not found: %s", host);
    else if (rc == -EINVAL)
        snprintf(why, sizeof why, "'%s' is not an IP address or host name%s",
                 host,
                 looks_numeric ? " (old forms like 127.1 are refused)" : "");
    else if (rc < 0)
        snprintf(why, sizeof why, "'%s': %s", host, ss_strerror(rc));
    return rc < 0 ? why : NULL;
}

#endif
