/*
 * hardening.c — the helpers declared in hardening.h.
 *
 * Clients here are written for hostile conditions: a signal may interrupt
 * any call (the EINTR storm delivers one every 100 µs), the server may cut
 * a connection at any moment, and the caller wants to know exactly how a
 * stream ended (EOF, reset, timeout) and after how many bytes — which is
 * what decides whether an answer was partial.
 */
#include "hardening.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- Strategies ------------------------------------------------------- */

void hz_skip_if_unsupported(const hz_strategy *s)
{
    if (TEST_UNDER_TSAN && s->in_child && s->worker_strategy &&
        s->worker_strategy != &ss_sync) {
        print_message("skipped under ThreadSanitizer: threads started in a "
                      "forked worker\n");
        skip();
    }
}

void hz_config_for(const hz_strategy *s, ss_config *cfg, test_options *opts)
{
    ss_config_init(cfg);
    *opts = (test_options){0};
    opts->pool.pool_size = s->pool_size;
    opts->prefork.workers = s->workers;
    opts->prefork.worker_strategy = s->worker_strategy;
    test_use_options(cfg, s->strategy, opts);
}

/* ---- Failures --------------------------------------------------------- */

void hz_failures_init(hz_failures *f)
{
    pthread_mutex_init(&f->lock, NULL);
    f->count = 0;
    f->first[0] = '\0';
}

void hz_fail(hz_failures *f, const char *fmt, ...)
{
    pthread_mutex_lock(&f->lock);
    if (f->count++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->first, sizeof f->first, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&f->lock);
}

void hz_assert_no_failures(hz_failures *f)
{
    pthread_mutex_lock(&f->lock);
    int count = f->count;
    char first[sizeof f->first];
    memcpy(first, f->first, sizeof first);
    pthread_mutex_unlock(&f->lock);
    if (count > 0)
        fail_msg("%d failure(s); the first: %s", count, first);
}

/* ---- Waiting ---------------------------------------------------------- */

static int ms_until(double deadline)
{
    double left = deadline - test_now();
    if (left <= 0)
        return 0;
    double ms = left * 1000.0 + 0.999;
    return ms > 1e9 ? 1000000000 : (int)ms;
}

/* poll() one descriptor until ready or deadline; EINTR resumes. Returns 0
 * (ready, or an error the next call reports) or -ETIMEDOUT. */
static int wait_fd(int fd, short events, double deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&pfd, 1, ms_until(deadline));
        if (rc > 0)
            return 0;
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* ---- Clients ---------------------------------------------------------- */

int hz_connect_sockaddr(const struct sockaddr *sa, socklen_t len, int type,
                        int rcvbuf)
{
    struct sockaddr_storage ss;
    memcpy(&ss, sa, len);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    int fd = socket(ss.ss_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (ss.ss_family == AF_UNIX && type == SOCK_DGRAM) {
        /* Replies need an address to reach: autobind an abstract name. */
        sa_family_t family = AF_UNIX;
        if (bind(fd, (struct sockaddr *)&family, sizeof family) < 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
    }
    if (connect(fd, (struct sockaddr *)&ss, len) == 0)
        return fd;
    int rc = -errno;
    if (rc == -EINPROGRESS || rc == -EINTR || rc == -EAGAIN) {
        /* Interrupted or pending: the connection goes on by itself; wait
         * for it and ask how it ended. (Calling connect() again would say
         * EALREADY.) A Unix stream connect says EAGAIN when the backlog is
         * full; that one must be retried. */
        if (rc == -EAGAIN) {
            double deadline = test_now() + TEST_IO_TIMEOUT_SECONDS;
            while (rc == -EAGAIN && test_now() < deadline) {
                test_sleep(0.001);
                rc = connect(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
            }
            if (rc == 0 || rc == -EISCONN)
                return fd;
            if (rc != -EINPROGRESS && rc != -EINTR && rc != -EALREADY) {
                close(fd);
                return rc;
            }
        }
        rc = wait_fd(fd, POLLOUT, test_now() + TEST_IO_TIMEOUT_SECONDS);
        if (rc == 0) {
            int error = 0;
            socklen_t elen = sizeof error;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen);
            rc = -error;
        }
        if (rc == 0)
            return fd;
    }
    close(fd);
    return rc;
}

int hz_connect(ss_server *srv, int rcvbuf)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = ss_server_address(srv, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return rc;
    return hz_connect_sockaddr((struct sockaddr *)&ss, len,
                               ss_server_kind(srv)->socket_type, rcvbuf);
}

int hz_connect_port(int port, int rcvbuf)
{
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return hz_connect_sockaddr((struct sockaddr *)&in, sizeof in, SOCK_STREAM,
                               rcvbuf);
}

int hz_send_all(int fd, const void *buf, size_t n, double deadline)
{
    const char *p = buf;
    int type = 0;
    socklen_t tlen = sizeof type;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen);
    bool datagram = type == SOCK_DGRAM;
    do {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w >= 0) {
            if (datagram)
                return (size_t)w == n ? 0 : -EMSGSIZE;
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    } while (n > 0);
    return 0;
}

ssize_t hz_recv(int fd, void *buf, size_t n, double deadline)
{
    for (;;) {
        ssize_t r = recv(fd, buf, n, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

size_t hz_recv_exact(int fd, void *buf, size_t n, double deadline, int *end)
{
    size_t got = 0;
    int how = 0;
    while (got < n) {
        ssize_t r = hz_recv(fd, (char *)buf + got, n - got, deadline);
        if (r <= 0) {
            how = r == 0 ? SS_EOF : (int)r;
            break;
        }
        got += (size_t)r;
    }
    if (end)
        *end = how;
    return got;
}

size_t hz_recv_until_close(int fd, void *buf, size_t cap, double deadline,
                           int *end)
{
    size_t got = 0;
    int how = 0;
    while (got < cap) {
        ssize_t r = hz_recv(fd, (char *)buf + got, cap - got, deadline);
        if (r <= 0) {
            how = r == 0 ? SS_EOF : (int)r;
            break;
        }
        got += (size_t)r;
    }
    if (end)
        *end = how;
    return got;
}

void hz_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

int hz_server_end_tcp_state(int fd)
{
    struct sockaddr_in local, peer;
    socklen_t llen = sizeof local, plen = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
        return -errno;
    if (local.sin_family != AF_INET)
        return -EAFNOSUPPORT;
    unsigned client_port = ntohs(local.sin_port);
    unsigned server_port = ntohs(peer.sin_port);
    /* open/read rather than stdio: no malloc here. A test may call this
     * from a thread while the server forks, and a child forked while
     * another thread holds an allocator lock (as some sanitizer
     * allocators do not guard against) would hang in its first malloc. */
    int pfd = open("/proc/net/tcp", O_RDONLY | O_CLOEXEC);
    if (pfd < 0)
        return -errno;
    char buf[8192];
    size_t have = 0;
    int state = -ENOENT;
    for (;;) {
        ssize_t n = read(pfd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        /* Whole lines: "  sl: LOCALADDR:PORT REMADDR:PORT ST ..." (hex). */
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            unsigned local_port, remote_port, st;
            if (sscanf(line, " %*d: %*x:%x %*x:%x %x", &local_port,
                       &remote_port, &st) == 3 &&
                local_port == server_port && remote_port == client_port)
                state = (int)st;
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (state != -ENOENT)
            break;
    }
    close(pfd);
    return state;
}

/* ---- Time, bytes ------------------------------------------------------ */

int hz_pause_ms(void *arg)
{
    test_sleep((double)(intptr_t)arg / 1000.0);
    return 0;
}

uint64_t hz_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

void hz_random_bytes(uint64_t *state, void *buf, size_t n)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(hz_rand(state) >> 56);
}

void hz_pattern(uint64_t seed, uint64_t pos, void *buf, size_t n)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++)
        p[i] = hz_pattern_byte(seed, pos + i);
}

long hz_pattern_mismatch(uint64_t seed, uint64_t pos, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < n; i++)
        if (p[i] != hz_pattern_byte(seed, pos + i))
            return (long)i;
    return -1;
}

int hz_pattern_file(uint64_t seed, size_t n)
{
    char path[] = "/tmp/sockserv-hardening-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    char chunk[65536];
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < sizeof chunk ? n - done : sizeof chunk;
        hz_pattern(seed, done, chunk, want);
        ssize_t w = write(fd, chunk, want);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int rc = w < 0 ? -errno : -EIO;
            close(fd);
            return rc;
        }
        done += (size_t)w;
    }
    return fd;
}

/* ---- Processes -------------------------------------------------------- */

/* State and parent from /proc/pid/stat; false if it does not exist. */
static bool read_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses. */
    char *close_paren = strrchr(buf, ')');
    if (!close_paren)
        return false;
    long parent;
    if (sscanf(close_paren + 1, " %c %ld", state, &parent) != 2)
        return false;
    *ppid = (pid_t)parent;
    return true;
}

/* getdents64 on a stack buffer rather than opendir(): no malloc, so it is
 * safe to call while a server in this process forks (see hardening.h). */
struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int hz_children_of(pid_t ppid, pid_t *pids, int max)
{
    int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int count = 0;
    char buf[8192] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + off);
            off += e->d_reclen;
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end != '\0' || pid <= 0)
                continue;
            char state;
            pid_t parent;
            if (read_stat((pid_t)pid, &state, &parent) && parent == ppid) {
                if (count < max)
                    pids[count] = (pid_t)pid;
                count++;
            }
        }
    }
    close(dfd);
    return count;
}

bool hz_process_exists(pid_t pid)
{
    return hz_process_state(pid) != 0;
}

char hz_process_state(pid_t pid)
{
    char state;
    pid_t parent;
    return read_stat(pid, &state, &parent) ? state : 0;
}
