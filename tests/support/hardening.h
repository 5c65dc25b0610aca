/*
 * hardening.h — helpers shared by the hardening tests: hostile clients,
 * EINTR storms, graceful shutdown under load, orphans after a killed
 * parent (test_hostile_clients.c, test_eintr.c, test_graceful_shutdown.c,
 * test_orphans.c).
 *
 * Those tests run many clients on threads of their own while the server
 * serves, so the helpers here never call cmocka: they return a negative
 * errno value, and a client thread records what went wrong in an
 * hz_failures that the main thread asserts on afterwards (a cmocka failure
 * outside the test's own thread would longjmp across threads).
 *
 * Client sockets are non-blocking and every wait is a poll() with an
 * absolute deadline (test_now() seconds), retried after EINTR with the
 * time that is left, so these clients stay correct while a test floods
 * the process with signals, and nothing waits forever.
 */
#ifndef SOCKSERV_TEST_HARDENING_H
#define SOCKSERV_TEST_HARDENING_H

#include "support.h"

#include <stdint.h>
#include <sys/types.h>

/* ---- Strategies ------------------------------------------------------- */

typedef struct hz_strategy {
    const char *name;
    const ss_strategy *strategy;
    bool in_child; /* handlers run in another process (fork, prefork) */
    int pool_size;
    int workers;
    const ss_strategy *worker_strategy;
    /* How many requests can hold a worker at once before the next one has
     * to wait (0: unbounded for the tests' purposes). */
    int holders;
} hz_strategy;

/* ss_config_init plus the strategy's fields. */
/* cfg and opts for s: opts must outlive ss_server_new(). */
void hz_config_for(const hz_strategy *s, ss_config *cfg, test_options *opts);
/* Calls cmocka's skip() (with a word why) for what this build cannot run. */
void hz_skip_if_unsupported(const hz_strategy *s);

/* ---- Failures seen off the main thread -------------------------------- */

typedef struct hz_failures {
    pthread_mutex_t lock;
    int count;
    char first[512];
} hz_failures;

void hz_failures_init(hz_failures *f);
void hz_fail(hz_failures *f, const char *fmt, ...) SS_PRINTF(2, 3);
/* Main thread: fail the test with the first message if any was recorded. */
void hz_assert_no_failures(hz_failures *f);

/* A note on fork(): servers under ss_forking and ss_prefork fork from a
 * thread of the test process while other threads of it run clients. A
 * child forked while another thread holds a lock of the memory allocator
 * hangs in its first malloc() under allocators that do not guard fork()
 * (the sanitizer runtimes of older compilers). So the client helpers here
 * allocate nothing, and the tests start their client threads only once
 * the server has forked what it forks at start (prefork's workers). */

/* ---- Clients ---------------------------------------------------------- */

/* A non-blocking stream or datagram client connected to srv (or to
 * 127.0.0.1:port), CLOEXEC. rcvbuf > 0 sets SO_RCVBUF before connecting
 * (a small one makes a client that does not read stall the server soon).
 * connect() interrupted by a signal is completed, not retried. Returns the
 * fd or a negative errno. */
int hz_connect(ss_server *srv, int rcvbuf);
int hz_connect_port(int port, int rcvbuf);
int hz_connect_sockaddr(const struct sockaddr *sa, socklen_t len, int type,
                        int rcvbuf);

/* Send all n bytes before deadline. Returns 0 or a negative errno
 * (-ETIMEDOUT, -EPIPE, -ECONNRESET…). A datagram socket sends one
 * datagram. */
int hz_send_all(int fd, const void *buf, size_t n, double deadline);
/* One receive of up to n bytes before deadline: the count, 0 at end of
 * stream, or a negative errno (-ETIMEDOUT, -ECONNRESET…). */
ssize_t hz_recv(int fd, void *buf, size_t n, double deadline);
/* Receive exactly n bytes. Returns n, or fewer when the stream ended or
 * failed first; *end then says how (0 when all n came, SS_EOF for end of
 * stream, or a negative errno). end may be NULL. */
size_t hz_recv_exact(int fd, void *buf, size_t n, double deadline, int *end);
/* Receive until end of stream (or error, or cap bytes, or deadline): the
 * count; *end as for hz_recv_exact (0 only if cap was reached). */
size_t hz_recv_until_close(int fd, void *buf, size_t cap, double deadline,
                           int *end);
/* Close with SO_LINGER 0: the peer gets a RST instead of a FIN. */
void hz_reset(int fd);
/* For a TCP client over IPv4 loopback: the state of the server's end of
 * the connection, from /proc/net/tcp (the kernel's view, whichever process
 * holds it) — 1 ESTABLISHED, 4 FIN_WAIT1 once the server has closed while
 * data is still queued, …, or -ENOENT when it is gone. Lets a client that
 * does not read learn that the server has given up on it. */
int hz_server_end_tcp_state(int fd);

/* ---- Time, bytes ------------------------------------------------------ */

/* Sleeping: test_sleep() (process.h), which resumes after signals. */
/* An ss_run_blocking() callback: test_sleep() for (intptr_t)arg
 * milliseconds, then 0. */
int hz_pause_ms(void *arg);
/* xorshift64*: a small deterministic generator for reproducible "random"
 * sizes and garbage. state must not be 0. */
uint64_t hz_rand(uint64_t *state);
void hz_random_bytes(uint64_t *state, void *buf, size_t n);
/* The byte at position pos of the response stream named by seed: what
 * servers in these tests send, and what clients check byte by byte. */
static inline unsigned char hz_pattern_byte(uint64_t seed, uint64_t pos)
{
    uint64_t x = (pos + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ seed;
    x ^= x >> 29;
    return (unsigned char)(x * UINT64_C(0xBF58476D1CE4E5B9) >> 56);
}
void hz_pattern(uint64_t seed, uint64_t pos, void *buf, size_t n);
/* Index of the first byte of buf that differs from the pattern, or -1. */
long hz_pattern_mismatch(uint64_t seed, uint64_t pos, const void *buf,
                         size_t n);

/* A temporary file holding n bytes of hz_pattern(seed, 0); its name is
 * already unlinked. Returns the fd (read-only) or a negative errno. */
int hz_pattern_file(uint64_t seed, size_t n);

/* ---- Processes -------------------------------------------------------- */

/* Every process whose parent is ppid, zombies included (/proc). Stores up
 * to max pids and returns the total count. Allocates nothing, so it may
 * run while a server in this process forks (unlike test_child_pids()). */
int hz_children_of(pid_t ppid, pid_t *pids, int max);
/* pid exists (zombie or not). */
bool hz_process_exists(pid_t pid);
/* 'R', 'S', 'Z'… from /proc/pid/stat, or 0 when it does not exist. */
char hz_process_state(pid_t pid);
/* Waiting for a child to exit: test_wait_exit() (process.h). */

#endif /* SOCKSERV_TEST_HARDENING_H */
