/*
 * echo_server.c — the libsockserv side of the echo benchmark.
 *
 *   sockserv-bench-echo --mode sync|fork|thread|pool|prefork [--port P]
 *       [--host H] [--udp] [--workers N] [--worker-mode sync|thread|pool]
 *       [--threads N] [--max-children N] [--reuseport] [--count-file PATH]
 *
 * A deliberately small server with its own copy of the echo handler, so the
 * benchmark measures the library and not whatever options the example
 * program grows. The handler is the one from examples/echo: ss_read and
 * ss_write_all until end of stream (for a datagram: end of the packet, and
 * the reply leaves after finish), on the stream / datagram base classes —
 * the counterparts of the StreamRequestHandler and DatagramRequestHandler
 * that bench/py_echo_server.py uses.
 *
 * --reuseport sets ss_prefork_options.reuseport (a listening socket per
 * prefork worker instead of one shared socket).
 *
 * --count-file PATH, for the prefork fairness measurement: PATH becomes a
 * table shared by every process of the server, one 64-byte entry per
 * process that handles requests (int32 pid, 4 bytes padding, uint64
 * requests, uint64 reads — little-endian on the machines we run), which
 * run_echo_bench.py reads before and after each run to see how the load
 * was spread over the workers. A request is a connection (TCP) or a
 * datagram (UDP); a read is one ss_read() that returned data. Off by
 * default: no counting cost unless asked for.
 *
 * Once listening it prints "listening on PORT" (the real port, so --port 0
 * works) and serves until SIGTERM or SIGINT.
 */
#define _GNU_SOURCE /* ftruncate, O_CLOEXEC, pthread_atfork under -std=c11 */
#include <sockserv/sockserv.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- --count-file: requests and reads per process ----------------------- */

#define COUNT_ENTRIES 256

typedef struct count_entry {
    _Atomic int32_t pid; /* 0: free */
    uint32_t padding;
    _Atomic uint64_t requests;
    _Atomic uint64_t reads;
    char to_cache_line[64 - 24]; /* one line per process: no sharing */
} count_entry;
_Static_assert(sizeof(count_entry) == 64, "run_echo_bench.py reads 64-byte "
                                          "entries");

static count_entry *count_table; /* NULL: not counting */
/* This process's entry; forgotten in a fork child (pthread_atfork), so a
 * worker claims its own. Claimed under a lock: threads of one worker. */
static _Atomic(count_entry *) my_entry;
static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;

static void forget_entry(void)
{
    atomic_store(&my_entry, NULL);
    pthread_mutex_init(&claim_lock, NULL);
}

static count_entry *claim_entry(void)
{
    count_entry *e = atomic_load_explicit(&my_entry, memory_order_acquire);
    if (e)
        return e;
    pthread_mutex_lock(&claim_lock);
    e = atomic_load(&my_entry);
    int32_t pid = (int32_t)getpid();
    for (int i = 0; !e && i < COUNT_ENTRIES; i++) {
        int32_t none = 0;
        if (atomic_compare_exchange_strong(&count_table[i].pid, &none, pid) ||
            none == pid)
            e = &count_table[i];
    }
    if (e)
        atomic_store_explicit(&my_entry, e, memory_order_release);
    pthread_mutex_unlock(&claim_lock);
    return e; /* NULL when the table is full: not counted */
}

static int open_count_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t size = COUNT_ENTRIES * sizeof(count_entry);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        perror(path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        perror(path);
        return -1;
    }
    count_table = p;
    pthread_atfork(NULL, NULL, forget_entry);
    return 0;
}

static int echo_handle(ss_request *req)
{
    count_entry *e = count_table ? claim_entry() : NULL;
    if (e)
        atomic_fetch_add_explicit(&e->requests, 1, memory_order_relaxed);
    char buf[8192];
    int n;
    while ((n = ss_read(req, buf, sizeof buf)) > 0) {
        if (e)
            atomic_fetch_add_explicit(&e->reads, 1, memory_order_relaxed);
        if ((n = ss_write_all(req, buf, (size_t)n)) < 0)
            break;
    }
    return n < 0 ? n : 0;
}

static const ss_handler_class stream_echo = {
    .base = &ss_stream_handler,
    .handle = echo_handle,
};

static const ss_handler_class datagram_echo = {
    .base = &ss_datagram_handler,
    .handle = echo_handle,
};

static const struct {
    const char *name;
    const ss_strategy *strategy;
} modes[] = {
    {"sync", &ss_sync},        {"fork", &ss_forking},
    {"thread", &ss_threading}, {"pool", &ss_thread_pool},
    {"prefork", &ss_prefork},  {"coro", &ss_coroutines},
};

static const ss_strategy *find_mode(const char *name)
{
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(name, modes[i].name) == 0)
            return modes[i].strategy;
    return NULL;
}

static void usage(FILE *to)
{
    fputs("usage: sockserv-bench-echo --mode sync|fork|thread|pool|prefork "
          "[--port P] [--host H]\n"
          "           [--udp] [--workers N] [--worker-mode sync|thread|pool] "
          "[--threads N]\n"
          "           [--max-children N] [--reuseport] [--count-file PATH]\n",
          to);
}

static int to_int(const char *text)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 0 || v > 1000000) {
        fprintf(stderr, "sockserv-bench-echo: not a count: '%s'\n", text);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "0";
    const ss_strategy *strategy = NULL;
    bool udp = false;
    ss_config cfg = {.allow_reuse_address = true};
    /* Each strategy's own options; the one that fits is passed below. */
    ss_thread_pool_options pool = {0};
    ss_forking_options forking = {0};
    ss_prefork_options prefork = {0};

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--udp")) {
            udp = true;
            continue;
        } else if (!strcmp(arg, "--reuseport")) {
            prefork.reuseport = true;
            continue;
        } else if (!value) {
            usage(stderr);
            return 2;
        } else if (!strcmp(arg, "--mode")) {
            if (!(strategy = find_mode(value))) {
                fprintf(stderr, "sockserv-bench-echo: unknown mode '%s'\n",
                        value);
                return 2;
            }
        } else if (!strcmp(arg, "--worker-mode")) {
            prefork.worker_strategy = find_mode(value);
            if (!prefork.worker_strategy ||
                prefork.worker_strategy == &ss_prefork ||
                prefork.worker_strategy == &ss_forking) {
                fprintf(stderr, "sockserv-bench-echo: --worker-mode is "
                                "sync, thread or pool\n");
                return 2;
            }
        } else if (!strcmp(arg, "--port")) {
            port = value;
        } else if (!strcmp(arg, "--host")) {
            host = value;
        } else if (!strcmp(arg, "--workers")) {
            prefork.workers = to_int(value);
        } else if (!strcmp(arg, "--threads")) {
            pool.pool_size = to_int(value);
        } else if (!strcmp(arg, "--max-children")) {
            forking.max_children = to_int(value);
        } else if (!strcmp(arg, "--count-file")) {
            if (open_count_file(value) < 0)
                return 1;
        } else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!strategy) {
        usage(stderr);
        return 2;
    }

    if (strategy == &ss_thread_pool)
        cfg.strategy_options = &pool;
    else if (strategy == &ss_forking)
        cfg.strategy_options = &forking;
    else if (strategy == &ss_prefork) {
        if (prefork.worker_strategy == &ss_thread_pool)
            prefork.worker_options = &pool;
        cfg.strategy_options = &prefork;
    }

    char address[300];
    snprintf(address, sizeof address, strchr(host, ':') ? "[%s]:%s" : "%s:%s",
             host, port);
    ss_server *srv;
    int rc = ss_server_new(&srv, udp ? &ss_udp : &ss_tcp, strategy, address,
                           udp ? &datagram_echo : &stream_echo, &cfg);
    if (rc < 0) {
        fprintf(stderr, "sockserv-bench-echo: %s: %s\n", address,
                ss_strerror(rc));
        return 1;
    }
    rc = ss_shutdown_on_signals(srv);
    if (rc == 0) {
        printf("listening on %d\n", ss_server_port(srv));
        fflush(stdout);
        rc = ss_serve_forever(srv, 0.5);
    }
    if (rc < 0)
        fprintf(stderr, "sockserv-bench-echo: %s\n", ss_strerror(rc));
    ss_server_free(srv);
    return rc < 0 ? 1 : 0;
}
