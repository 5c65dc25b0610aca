/*
 * support.c — the helpers declared in support.h.
 *
 * Everything here uses plain sockets so that the tests check the library
 * against the kernel, not against itself; the only library calls are the
 * public ones needed to start and stop a server and to learn its address.
 * Client sockets carry a 10 s SO_RCVTIMEO/SO_SNDTIMEO so a library bug that
 * never answers turns into a failed assertion rather than a hung ctest.
 */
#include "support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Makes names unique within the process; the pid makes them unique across
 * the test processes ctest may run in parallel. */
static atomic_uint name_counter;

/* ---- Serving thread ---------------------------------------------------- */

static void *serve_thread(void *arg)
{
    test_server *t = arg;
    t->serve_rc = ss_serve_forever(t->srv, t->poll_interval);
    return NULL;
}

int test_server_run(test_server *t, double poll_interval)
{
    t->poll_interval = poll_interval;
    t->serve_rc = 0;
    int rc = pthread_create(&t->thread, NULL, serve_thread, t);
    return rc == 0 ? 0 : -rc;
}

int test_server_start_with(test_server *t, const ss_server_class *kind,
                           const ss_strategy *strategy, const char *address,
                           const ss_handler_class *h, const ss_config *cfg,
                           double poll_interval)
{
    memset(t, 0, sizeof *t);
    int rc = ss_server_new(&t->srv, kind, strategy, address, h, cfg);
    if (rc < 0)
        return rc;
    rc = test_server_run(t, poll_interval);
    if (rc < 0) {
        ss_server_free(t->srv);
        t->srv = NULL;
    }
    return rc;
}

int test_server_start(test_server *t, const ss_server_class *kind,
                      const char *address, const ss_handler_class *h,
                      const ss_config *cfg)
{
    return test_server_start_with(t, kind, &ss_sync, address, h, cfg, 0.05);
}

void test_server_join(test_server *t)
{
    ss_shutdown(t->srv);
    pthread_join(t->thread, NULL);
}

void test_server_stop(test_server *t)
{
    test_server_join(t);
    ss_server_free(t->srv);
    t->srv = NULL;
}

/* ---- Clients ----------------------------------------------------------- */

static void set_io_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = (time_t)TEST_IO_TIMEOUT_SECONDS};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A server bound to the wildcard address is reached through loopback. */
static void wildcard_to_loopback(struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    }
}

/* Unix datagram replies are sent to the client's address, so the client
 * needs one: a unique abstract name, which leaves no file behind. */
static int bind_unix_client(int fd)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int len = snprintf(un.sun_path + 1, sizeof un.sun_path - 1,
                       "sockserv-test-%ld-%u-client", (long)getpid(),
                       atomic_fetch_add(&name_counter, 1));
    socklen_t alen =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    if (bind(fd, (struct sockaddr *)&un, alen) < 0)
        return -errno;
    return 0;
}

static int connect_sockaddr(struct sockaddr_storage *ss, socklen_t len,
                            int socket_type)
{
    wildcard_to_loopback(ss);
    int fd = socket(ss->ss_family, socket_type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    set_io_timeouts(fd);
    if (ss->ss_family == AF_UNIX && socket_type == SOCK_DGRAM) {
        int rc = bind_unix_client(fd);
        if (rc < 0) {
            close(fd);
            return rc;
        }
    }
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)ss, len);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int test_connect(ss_server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = ss_server_address(srv, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return rc;
    return connect_sockaddr(&ss, len, ss_server_kind(srv)->socket_type);
}

int test_connect_address(const char *address, int socket_type)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = ss_address_parse(address, socket_type, &ss, &len);
    if (rc < 0)
        return rc;
    return connect_sockaddr(&ss, len, socket_type);
}

static int socket_type_of(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        fail_msg("getsockopt(SO_TYPE, fd %d): %s", fd, strerror(errno));
    return type;
}

void test_send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    if (socket_type_of(fd) == SOCK_DGRAM) {
        ssize_t w;
        do {
            w = send(fd, p, n, MSG_NOSIGNAL);
        } while (w < 0 && errno == EINTR);
        if (w < 0)
            fail_msg("send datagram of %zu bytes: %s", n, strerror(errno));
        if ((size_t)w != n)
            fail_msg("sent %zd of a %zu-byte datagram", w, n);
        return;
    }
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            fail_msg("send (%zu bytes left): %s", n, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

void test_recv_exact(int fd, void *buf, size_t n)
{
    char *p = buf;
    if (socket_type_of(fd) == SOCK_DGRAM) {
        ssize_t r;
        do {
            /* MSG_TRUNC: the real length, so a longer datagram is caught. */
            r = recv(fd, p, n, MSG_TRUNC);
        } while (r < 0 && errno == EINTR);
        if (r < 0)
            fail_msg("recv datagram: %s", strerror(errno));
        if ((size_t)r != n)
            fail_msg("expected a %zu-byte datagram, got %zd bytes", n, r);
        return;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail_msg("recv (%zu of %zu bytes so far): %s", got, n,
                     strerror(errno));
        if (r == 0)
            fail_msg("EOF after %zu of %zu bytes", got, n);
        got += (size_t)r;
    }
}

size_t test_recv_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    if (socket_type_of(fd) == SOCK_DGRAM) {
        ssize_t r;
        do {
            r = recv(fd, p, n, 0);
        } while (r < 0 && errno == EINTR);
        if (r < 0)
            fail_msg("recv datagram: %s", strerror(errno));
        return (size_t)r;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail_msg("recv (%zu bytes so far): %s", got, strerror(errno));
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return got;
}

void test_expect_echo(int fd, const char *text)
{
    size_t n = strlen(text);
    char *back = malloc(n + 1);
    assert_non_null(back);
    test_send_all(fd, text, n);
    test_recv_exact(fd, back, n);
    back[n] = '\0';
    assert_string_equal(back, text);
    free(back);
}

void test_expect_echo_to_eof(int fd, const char *text)
{
    if (socket_type_of(fd) == SOCK_DGRAM) {
        test_expect_echo(fd, text);
        return;
    }
    size_t n = strlen(text);
    char *back = malloc(n + 2);
    assert_non_null(back);
    test_send_all(fd, text, n);
    if (shutdown(fd, SHUT_WR) < 0)
        fail_msg("shutdown(SHUT_WR): %s", strerror(errno));
    /* One byte more than expected, to catch a longer answer. */
    size_t got = test_recv_all(fd, back, n + 1);
    back[got] = '\0';
    assert_string_equal(back, text);
    free(back);
}

/* ---- Descriptors, names, time ------------------------------------------ */

int test_listen_only(ss_server *srv)
{
    return listen(ss_server_fileno(srv), 16) < 0 ? -errno : 0;
}

int test_count_open_fds(void)
{
    int count = test_count_process_fds(getpid());
    return count < 0 ? count : count - 1; /* the listing's own descriptor */
}

/* Socket files handed out, removed at exit so a failed test (which
 * longjmps past its own cleanup) leaves nothing in /tmp. */
static pthread_mutex_t paths_lock = PTHREAD_MUTEX_INITIALIZER;
static char **remembered_paths;
static int remembered_count, remembered_capacity;
static pid_t paths_owner; /* a forked child that calls exit() must not
                             remove its parent's files */

static void remove_remembered_paths(void)
{
    if (getpid() != paths_owner)
        return;
    pthread_mutex_lock(&paths_lock);
    for (int i = 0; i < remembered_count; i++) {
        unlink(remembered_paths[i]);
        free(remembered_paths[i]);
    }
    free(remembered_paths);
    remembered_paths = NULL;
    remembered_count = remembered_capacity = 0;
    pthread_mutex_unlock(&paths_lock);
}

static void remember_path(const char *path)
{
    pthread_mutex_lock(&paths_lock);
    if (paths_owner == 0) {
        paths_owner = getpid();
        atexit(remove_remembered_paths);
    }
    if (remembered_count == remembered_capacity) {
        int capacity = remembered_capacity ? 2 * remembered_capacity : 64;
        char **grown =
            realloc(remembered_paths, (size_t)capacity * sizeof *grown);
        if (grown) {
            remembered_paths = grown;
            remembered_capacity = capacity;
        }
    }
    char *copy = remembered_count < remembered_capacity ? strdup(path) : NULL;
    if (copy)
        remembered_paths[remembered_count++] = copy;
    pthread_mutex_unlock(&paths_lock);
}

const char *test_unix_address(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "unix:/tmp/sockserv-test-%ld-%u-%s", (long)getpid(),
             atomic_fetch_add(&name_counter, 1), tag);
    remember_path(test_unix_path(buf));
    return buf;
}

const char *test_abstract_address(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "unix:@sockserv-test-%ld-%u-%s", (long)getpid(),
             atomic_fetch_add(&name_counter, 1), tag);
    return buf;
}

const char *test_unix_path(const char *address)
{
    return strncmp(address, "unix:", 5) == 0 ? address + 5 : address;
}

bool test_have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&in6, sizeof in6) == 0;
    close(fd);
    return ok;
}

/* ---- Echo handler ------------------------------------------------------ */

static atomic_int echo_requests;

static int echo_handle(ss_request *req)
{
    char buf[4096];
    for (;;) {
        ssize_t n = ss_read(req, buf, sizeof buf);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        ssize_t w = ss_write_all(req, buf, (size_t)n);
        if (w < 0)
            return (int)w;
    }
    atomic_fetch_add(&echo_requests, 1);
    return 0;
}

const ss_handler_class test_echo_handler = {
    .base = NULL, /* ss_base_handler: I/O follows the server kind */
    .handle = echo_handle,
};

int test_echo_request_count(void)
{
    return atomic_load(&echo_requests);
}

/* ---- Log capture ------------------------------------------------------- */

void test_log_init(test_log *log)
{
    memset(log, 0, sizeof *log);
    pthread_mutex_init(&log->lock, NULL);
}

void test_log_hook(void *user, const char *line)
{
    test_log *log = user;
    pthread_mutex_lock(&log->lock);
    if (log->count < TEST_LOG_MAX_LINES)
        snprintf(log->lines[log->count], TEST_LOG_LINE_SIZE, "%s", line);
    log->count++;
    pthread_mutex_unlock(&log->lock);
}

int test_log_count(test_log *log)
{
    pthread_mutex_lock(&log->lock);
    int n = log->count;
    pthread_mutex_unlock(&log->lock);
    return n;
}

void test_log_line(test_log *log, int i, char *buf, size_t n)
{
    pthread_mutex_lock(&log->lock);
    snprintf(buf, n, "%s",
             i >= 0 && i < log->count && i < TEST_LOG_MAX_LINES ? log->lines[i]
                                                                : "");
    pthread_mutex_unlock(&log->lock);
}

/* ---- Processes and threads --------------------------------------------- */

int test_thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -errno;
    char line[256];
    int threads = -ENOENT;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &threads) == 1)
            break;
    fclose(f);
    return threads;
}

/* Field 4 of /proc/PID/stat (after the command name, which may itself hold
 * spaces and parentheses: parse from the last ')'), and the state. */
static bool read_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    long parent = 0;
    if (!close_paren || sscanf(close_paren + 1, " %c %ld", state, &parent) != 2)
        return false;
    *ppid = (pid_t)parent;
    return true;
}

int test_child_pids(pid_t *pids, int max)
{
    DIR *dir = opendir("/proc");
    if (!dir)
        return -errno;
    pid_t self = getpid();
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        char state;
        pid_t ppid;
        if (read_stat((pid_t)pid, &state, &ppid) && ppid == self) {
            if (count < max)
                pids[count] = (pid_t)pid;
            count++;
        }
    }
    closedir(dir);
    return count;
}

bool test_process_running(pid_t pid)
{
    char state;
    pid_t ppid;
    return read_stat(pid, &state, &ppid) && state != 'Z' && state != 'X';
}

bool test_server_join_within(test_server *t, double seconds)
{
    ss_shutdown(t->srv);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    double whole = (double)(time_t)seconds;
    deadline.tv_sec += (time_t)seconds;
    deadline.tv_nsec += (long)((seconds - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(t->thread, NULL, &deadline) == 0;
}

bool test_server_stop_within(test_server *t, double seconds)
{
    if (!test_server_join_within(t, seconds))
        return false;
    ss_server_free(t->srv);
    t->srv = NULL;
    return true;
}

bool test_threads_at_most(void *arg)
{
    return test_thread_count() <= *(int *)arg;
}

/* ---- Leak baseline ----------------------------------------------------- */

test_baseline test_take_baseline(bool no_children)
{
    if (no_children)
        assert_int_equal(test_child_pids(NULL, 0), 0);
    return (test_baseline){test_count_open_fds(), test_thread_count(),
                           no_children};
}

void test_expect_baseline(const test_baseline *b)
{
    assert_int_equal(test_count_open_fds(), b->fds);
    /* A detached thread may still be on its way out for a moment after
     * it signalled that it is done; give it a bounded while. */
    int threads = b->threads;
    assert_true(test_wait_for(test_threads_at_most, &threads, 5.0));
    /* Every child process was reaped: not even a zombie is left. */
    if (b->no_children)
        assert_int_equal(test_child_pids(NULL, 0), 0);
}

static void *do_nothing(void *arg)
{
    return arg;
}

void test_start_runtime_threads(void)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, do_nothing, NULL) == 0)
        pthread_join(thread, NULL);
}

void test_use_options(ss_config *cfg, const ss_strategy *strategy,
                      test_options *opts)
{
    cfg->strategy_options = NULL;
    if (strategy == &ss_threading)
        cfg->strategy_options = &opts->threading;
    else if (strategy == &ss_thread_pool)
        cfg->strategy_options = &opts->pool;
    else if (strategy == &ss_forking)
        cfg->strategy_options = &opts->forking;
    else if (strategy == &ss_coroutines)
        cfg->strategy_options = &opts->coro;
    else if (strategy == &ss_prefork) {
        ss_prefork_options *p = &opts->prefork;
        if (!p->worker_options && p->worker_strategy == &ss_threading)
            p->worker_options = &opts->threading;
        else if (!p->worker_options && p->worker_strategy == &ss_thread_pool)
            p->worker_options = &opts->pool;
        cfg->strategy_options = p;
    }
}
