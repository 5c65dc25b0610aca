/*
 * socket_activation.c — serving on a socket opened elsewhere:
 * ss_server_new_fd() (checks that the descriptor fits the server kind, and
 * leaves it untouched on refusal) and systemd's LISTEN_FDS protocol
 * (ss_listen_fds, ss_listen_fds_with_names), read without libsystemd.
 * Guide: docs/deployment.md ("Socket activation").
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/* ---- adopting a descriptor ------------------------------------------- */

static int socket_option(int fd, int name, int *value)
{
    socklen_t len = sizeof *value;
    return getsockopt(fd, SOL_SOCKET, name, value, &len) < 0 ? -errno : 0;
}

/* A socket with no name cannot receive anything (datagram, Unix stream)
 * or would listen on a port the kernel picks at random (TCP): both are a
 * mistake by whoever passed it, better reported than served. */
static bool has_address(const struct sockaddr_storage *addr, socklen_t len)
{
    switch (addr->ss_family) {
    case AF_INET:
        return ((const struct sockaddr_in *)addr)->sin_port != 0;
    case AF_INET6:
        return ((const struct sockaddr_in6 *)addr)->sin6_port != 0;
    case AF_UNIX:
        return len > offsetof(struct sockaddr_un, sun_path);
    default:
        return false;
    }
}

/* Everything that can be checked without changing the descriptor: its
 * type, family, address and whether it listens. */
static int inspect(int fd, const ss_server_class *kind,
                   struct sockaddr_storage *addr, socklen_t *len,
                   bool *listening)
{
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    int type, domain, accepting = 0;
    int rc = socket_option(fd, SO_TYPE, &type);
    if (rc < 0)
        return rc; /* -ENOTSOCK for a file, a pipe, a terminal… */
    if (type != kind->socket_type)
        return -EPROTOTYPE;
    rc = socket_option(fd, SO_DOMAIN, &domain);
    if (rc < 0)
        return rc;
    bool fits = kind->family == AF_UNSPEC
                    ? domain == AF_INET || domain == AF_INET6
                    : domain == kind->family;
    if (!fits)
        return -EAFNOSUPPORT;
    if (type == SOCK_STREAM) {
        rc = socket_option(fd, SO_ACCEPTCONN, &accepting);
        if (rc < 0)
            return rc;
    }
    *listening = accepting != 0;
    memset(addr, 0, sizeof *addr);
    *len = sizeof *addr;
    if (getsockname(fd, (struct sockaddr *)addr, len) < 0)
        return -errno;
    if (!has_address(addr, *len))
        return -EDESTADDRREQ;
    return 0;
}

int ss_server_new_fd(ss_server **out, const ss_server_class *kind,
                     const ss_strategy *strategy, int fd,
                     const ss_handler_class *handler, const ss_config *cfg)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!kind || !strategy || !handler)
        return -EINVAL;
    struct sockaddr_storage addr;
    socklen_t len;
    bool listening;
    int rc = inspect(fd, kind, &addr, &len, &listening);
    if (rc < 0)
        return rc;

    ss_server *srv;
    rc = ss__server_new_adopted(&srv, kind, strategy, fd,
                                (const struct sockaddr *)&addr, len, handler,
                                cfg);
    if (rc < 0)
        return rc;

    if (kind->socket_type == SOCK_STREAM && listening) {
        /* Already listening: keep the backlog the service manager chose
         * (calling listen() again would replace it with ours), and only
         * reserve the spare descriptor that server_activate would. */
        srv->activated = true;
        ss__listener_nodelay(srv);
        ss__reserve_spare_fd(srv);
    } else {
        /* listen() for a stream socket that was only bound; nothing by
         * default for datagrams — and a user's override runs either way. */
        rc = ss_server_activate(srv);
    }
    /* The same flags as the library's own sockets: non-blocking because
     * the loop polls and another worker may take a connection first (see
     * socket_kind.c), close-on-exec so a program the handler runs does not
     * keep the port. */
    if (rc == 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            rc = -errno;
    }
    if (rc < 0) {
        srv->fd = -1; /* still the caller's: ss_server_free must not close */
        ss_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

/* ---- the LISTEN_FDS protocol ----------------------------------------- */

/* A non-negative decimal number with nothing around it, or -EINVAL. Signs,
 * spaces and other bases are not what a service manager writes. */
static long long parse_decimal(const char *text, long long max)
{
    if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text))
        return -EINVAL;
    long long value = 0;
    for (const char *p = text; *p; p++) {
        value = value * 10 + (*p - '0');
        if (value > max)
            return -EINVAL;
    }
    return value;
}

static void unset_all(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

/* The count and the close-on-exec marks, without touching the
 * environment. */
static int count_listen_fds(void)
{
    const char *pid_text = getenv("LISTEN_PID");
    if (pid_text == NULL)
        return 0; /* not started by socket activation */
    long long pid = parse_decimal(pid_text, INT_MAX);
    if (pid <= 0)
        return -EINVAL;
    if (pid != (long long)getpid())
        return 0; /* meant for another process, e.g. our parent */

    const char *fds_text = getenv("LISTEN_FDS");
    if (fds_text == NULL)
        return 0;
    long long n = parse_decimal(fds_text, INT_MAX - SS_LISTEN_FDS_START);
    if (n < 0)
        return (int)n;
    for (int i = 0; i < (int)n; i++) {
        /* A count past the descriptors we hold is a broken environment;
         * the first closed one says so (-EBADF). They are marked
         * close-on-exec as the library's own sockets are: a program
         * started later must not keep the service's ports open. */
        int fd = SS_LISTEN_FDS_START + i;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
            return -errno;
    }
    return (int)n;
}

int ss_listen_fds(bool unset_environment)
{
    int n = count_listen_fds();
    if (unset_environment)
        unset_all();
    return n;
}

int ss_listen_fds_with_names(bool unset_environment, char ***names)
{
    if (names)
        *names = NULL;
    /* Copied first: the count may unset the variable. */
    const char *text = getenv("LISTEN_FDNAMES");
    char *copy = text ? strdup(text) : NULL;
    int rc = text && !copy ? -ENOMEM : 0;
    int n = count_listen_fds();
    if (unset_environment)
        unset_all();
    if (rc == 0)
        rc = n;
    if (rc <= 0 || names == NULL) {
        free(copy);
        return rc;
    }

    /* An unset or empty LISTEN_FDNAMES names nothing: every descriptor is
     * "unknown", as with systemd. Otherwise one name per descriptor. */
    size_t given = 0;
    if (copy && copy[0] != '\0') {
        given = 1;
        for (const char *p = copy; *p; p++)
            given += *p == ':';
    }
    if (given != 0 && given != (size_t)n) {
        free(copy);
        return -EINVAL;
    }
    /* One allocation, so free() releases it: n + 1 pointers, then the
     * strings they point to. */
    size_t text_size = given ? strlen(copy) + 1 : sizeof "unknown";
    char **list = malloc(((size_t)n + 1) * sizeof *list + text_size);
    if (list == NULL) {
        free(copy);
        return -ENOMEM;
    }
    char *strings = (char *)(list + n + 1);
    if (given) {
        memcpy(strings, copy, text_size);
        char *p = strings;
        for (int i = 0; i < n; i++) {
            list[i] = p;
            p += strcspn(p, ":");
            if (*p == ':')
                *p++ = '\0';
        }
    } else {
        memcpy(strings, "unknown", sizeof "unknown");
        for (int i = 0; i < n; i++)
            list[i] = strings;
    }
    list[n] = NULL;
    free(copy);
    *names = list;
    return n;
}
