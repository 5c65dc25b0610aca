/*
 * test_server_hooks.c — the overridable server methods and the handler
 * life cycle, with the synchronous strategy.
 *
 * Ported from CPython's test_socketserver (ErrorHandlerTest's sync cases,
 * test_shutdown_request_called_if_verify_request_false) and extended to
 * the C-specific parts of the handler contract: per-request state,
 * config.user, and what a handler can learn about its request.
 *
 * Hooks are "subclassed" the documented way: copy ss_tcp, override a
 * pointer, and call the base entry where Python would call super().
 */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* What the hooks of one test saw. Reached through config.user. */
typedef struct record {
    atomic_int setup_calls;
    atomic_int handle_calls;
    atomic_int finish_calls;
    atomic_int error_calls;
    atomic_int verify_calls;
    atomic_int shutdown_calls;
    int last_error;
    bool error_had_request;
    int setup_result;  /* what setup returns */
    int handle_result; /* what handle returns when asked to fail */
    int finish_result; /* what finish returns */
} record;

static record *record_of(ss_request *req)
{
    return ss_request_user(req);
}

static void record_error(ss_server *srv, ss_request *req, int error)
{
    record *r = ss_server_user(srv);
    r->last_error = error;
    r->error_had_request = req != NULL;
    atomic_fetch_add(&r->error_calls, 1);
}

static bool error_reported(void *arg)
{
    return atomic_load(&((record *)arg)->error_calls) > 0;
}

static void start_with_user(test_server *t, const ss_server_class *kind,
                            const char *address, const ss_handler_class *h,
                            void *user)
{
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = user;
    assert_int_equal(test_server_start(t, kind, address, h, &cfg), 0);
}

/* Connect, send text, close the sending side and read to EOF: returns the
 * count of bytes the server sent before closing. */
static size_t exchange_to_eof(ss_server *srv, const char *text, char *reply,
                              size_t size)
{
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, text, strlen(text));
    shutdown(fd, SHUT_WR);
    size_t n = test_recv_all(fd, reply, size);
    close(fd);
    return n;
}

/* ---- Handler failures -------------------------------------------------- */

/* Fails with r->handle_result when the client's first byte is '!',
 * echoes otherwise. */
static int fail_on_bang_handle(ss_request *req)
{
    record *r = record_of(req);
    atomic_fetch_add(&r->handle_calls, 1);
    char c;
    ssize_t n = ss_read(req, &c, 1);
    if (n == 1 && c == '!')
        return r->handle_result;
    if (n == 1 && ss_write_all(req, &c, 1) < 0)
        return -EIO;
    return test_echo_handler.handle(req);
}

static const ss_handler_class fail_on_bang_handler = {
    .handle = fail_on_bang_handle,
};

static void
test_handler_failure_calls_handle_error_once_and_keeps_serving(void **state)
{
    (void)state;
    record r = {.handle_result = 42};
    ss_server_class kind = ss_tcp;
    kind.handle_error = record_error;
    test_server t;
    start_with_user(&t, &kind, "127.0.0.1:0", &fail_on_bang_handler, &r);

    char reply[16];
    /* The failed request is still closed: the client sees EOF. */
    assert_int_equal(exchange_to_eof(t.srv, "!", reply, sizeof reply), 0);
    assert_true(test_wait_for(error_reported, &r, 10.0));

    /* The next client is served normally. */
    assert_int_equal(exchange_to_eof(t.srv, "ok\n", reply, sizeof reply), 3);
    assert_memory_equal(reply, "ok\n", 3);
    test_server_stop(&t);

    assert_int_equal(atomic_load(&r.handle_calls), 2);
    assert_int_equal(atomic_load(&r.error_calls), 1);
    assert_int_equal(r.last_error, 42);
    assert_true(r.error_had_request);
}

/* CPython's ErrorHandlerTest.test_sync_handled: handle_request() with a
 * failing handler reports it and still returns normally. */
static void
test_handle_request_reports_handler_failure_and_returns_zero(void **state)
{
    (void)state;
    record r = {.handle_result = -ENOTSUP};
    ss_server_class kind = ss_tcp;
    kind.handle_error = record_error;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &r;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &fail_on_bang_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    test_send_all(fd, "!", 1);
    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(atomic_load(&r.handle_calls), 1);
    assert_int_equal(atomic_load(&r.error_calls), 1);
    assert_int_equal(r.last_error, -ENOTSUP);
    close(fd);
    ss_server_free(srv);
}

static int always_fail_handle(ss_request *req)
{
    (void)req;
    return -EIO;
}

static const ss_handler_class always_fail_handler = {
    .handle = always_fail_handle,
};

/* Python prints a traceback naming the client; we log one line. The log
 * hook's user pointer is config.user. */
static void
test_default_handle_error_logs_one_line_naming_the_client(void **state)
{
    (void)state;
    test_log log;
    test_log_init(&log);
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.log = test_log_hook;
    cfg.user = &log;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &always_fail_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    char client[64];
    snprintf(client, sizeof client, "127.0.0.1:%d", ntohs(me.sin_port));

    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(test_log_count(&log), 1);
    char line[TEST_LOG_LINE_SIZE];
    test_log_line(&log, 0, line, sizeof line);
    if (!strstr(line, client))
        fail_msg("report line \"%s\" does not name client %s", line, client);
    assert_null(strchr(line, '\n'));

    /* A successful request logs nothing. */
    close(fd);
    ss_server_free(srv);
    test_log quiet;
    test_log_init(&quiet);
    cfg.user = &quiet;
    test_server t;
    assert_int_equal(
        test_server_start(&t, &ss_tcp, "127.0.0.1:0", &test_echo_handler, &cfg),
        0);
    fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_expect_echo_to_eof(fd, "quiet\n");
    close(fd);
    test_server_stop(&t);
    assert_int_equal(test_log_count(&quiet), 0);
}

/* Without a log hook the report goes to stderr, as one line. */
static void test_default_handle_error_writes_one_line_to_stderr(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &always_fail_handler, NULL),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    char client[64];
    snprintf(client, sizeof client, "127.0.0.1:%d", ntohs(me.sin_port));

    /* Capture fd 2 in an unlinked temporary file for the one call. */
    char path[] = "/tmp/sockserv-test-stderr-XXXXXX";
    int capture = mkstemp(path);
    assert_true(capture >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    dup2(capture, STDERR_FILENO);
    int rc = ss_handle_request(srv);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(rc, 0);

    char text[1024] = {0};
    ssize_t n = pread(capture, text, sizeof text - 1, 0);
    close(capture);
    close(fd);
    ss_server_free(srv);
    assert_true(n > 0);
    if (!strstr(text, client))
        fail_msg("stderr \"%s\" does not name client %s", text, client);
    /* Exactly one line: one newline, at the end. */
    assert_int_equal(text[n - 1], '\n');
    assert_ptr_equal(strchr(text, '\n'), text + n - 1);
}

/* An override that calls the base entry, like super().handle_error(). */
static atomic_int super_error_calls;

static void count_then_super_handle_error(ss_server *srv, ss_request *req,
                                          int error)
{
    atomic_fetch_add(&super_error_calls, 1);
    ss_tcp.handle_error(srv, req, error);
}

static void test_handle_error_override_can_call_the_base_entry(void **state)
{
    (void)state;
    test_log log;
    test_log_init(&log);
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.log = test_log_hook;
    cfg.user = &log;
    ss_server_class kind = ss_tcp;
    kind.handle_error = count_then_super_handle_error;
    atomic_store(&super_error_calls, 0);
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &always_fail_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(atomic_load(&super_error_calls), 1);
    assert_int_equal(test_log_count(&log), 1);
    close(fd);
    ss_server_free(srv);
}

/* ---- verify_request / shutdown_request --------------------------------- */

static bool refuse_all(ss_server *srv, ss_request *req)
{
    (void)req;
    record *r = ss_server_user(srv);
    atomic_fetch_add(&r->verify_calls, 1);
    return false;
}

static bool count_then_accept(ss_server *srv, ss_request *req)
{
    record *r = ss_server_user(srv);
    atomic_fetch_add(&r->verify_calls, 1);
    return ss_tcp.verify_request(srv, req);
}

static void count_shutdown_request(ss_server *srv, ss_request *req)
{
    record *r = ss_server_user(srv);
    atomic_fetch_add(&r->shutdown_calls, 1);
    ss_tcp.shutdown_request(srv, req);
}

static int count_handle(ss_request *req)
{
    atomic_fetch_add(&record_of(req)->handle_calls, 1);
    return 0;
}

static const ss_handler_class counting_handler = {.handle = count_handle};

/* CPython issue #26309: a refused request is still shut down. */
static void test_refused_request_is_shut_down_once_and_not_handled(void **state)
{
    (void)state;
    record r = {0};
    ss_server_class kind = ss_tcp;
    kind.verify_request = refuse_all;
    kind.shutdown_request = count_shutdown_request;
    kind.handle_error = record_error;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &r;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &counting_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(atomic_load(&r.verify_calls), 1);
    assert_int_equal(atomic_load(&r.shutdown_calls), 1);
    assert_int_equal(atomic_load(&r.handle_calls), 0);
    assert_int_equal(atomic_load(&r.error_calls), 0);
    /* The base shutdown_request really closed the connection. */
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);
    ss_server_free(srv);
}

static void test_accepted_request_is_verified_and_shut_down_once(void **state)
{
    (void)state;
    record r = {0};
    ss_server_class kind = ss_tcp;
    kind.verify_request = count_then_accept;
    kind.shutdown_request = count_shutdown_request;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &r;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &counting_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 0);
    assert_int_equal(atomic_load(&r.verify_calls), 1);
    assert_int_equal(atomic_load(&r.handle_calls), 1);
    assert_int_equal(atomic_load(&r.shutdown_calls), 1);
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);
    ss_server_free(srv);
}

/* ---- setup / handle / finish ------------------------------------------- */

static int lifecycle_setup(ss_request *req)
{
    record *r = record_of(req);
    atomic_fetch_add(&r->setup_calls, 1);
    return r->setup_result;
}

static int lifecycle_handle(ss_request *req)
{
    record *r = record_of(req);
    atomic_fetch_add(&r->handle_calls, 1);
    return r->handle_result;
}

static int lifecycle_finish(ss_request *req)
{
    record *r = record_of(req);
    atomic_fetch_add(&r->finish_calls, 1);
    return r->finish_result;
}

static const ss_handler_class lifecycle_handler = {
    .setup = lifecycle_setup,
    .handle = lifecycle_handle,
    .finish = lifecycle_finish,
};

/* One request through ss_handle_request with the given results. */
static void run_lifecycle(record *r)
{
    ss_server_class kind = ss_tcp;
    kind.handle_error = record_error;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = r;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &lifecycle_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 0);
    close(fd);
    ss_server_free(srv);
}

static void test_finish_runs_even_when_handle_fails(void **state)
{
    (void)state;
    record r = {.handle_result = 7};
    run_lifecycle(&r);
    assert_int_equal(atomic_load(&r.setup_calls), 1);
    assert_int_equal(atomic_load(&r.handle_calls), 1);
    assert_int_equal(atomic_load(&r.finish_calls), 1);
    assert_int_equal(atomic_load(&r.error_calls), 1);
    assert_int_equal(r.last_error, 7);
}

static void
test_first_failure_is_reported_when_handle_and_finish_fail(void **state)
{
    (void)state;
    record r = {.handle_result = 7, .finish_result = 9};
    run_lifecycle(&r);
    assert_int_equal(atomic_load(&r.finish_calls), 1);
    assert_int_equal(atomic_load(&r.error_calls), 1);
    assert_int_equal(r.last_error, 7);
}

static void test_finish_failure_alone_is_reported(void **state)
{
    (void)state;
    record r = {.finish_result = 9};
    run_lifecycle(&r);
    assert_int_equal(atomic_load(&r.handle_calls), 1);
    assert_int_equal(atomic_load(&r.finish_calls), 1);
    assert_int_equal(atomic_load(&r.error_calls), 1);
    assert_int_equal(r.last_error, 9);
}

static void test_setup_failure_skips_handle_but_runs_finish(void **state)
{
    (void)state;
    record r = {.setup_result = 5};
    run_lifecycle(&r);
    assert_int_equal(atomic_load(&r.setup_calls), 1);
    assert_int_equal(atomic_load(&r.handle_calls), 0);
    assert_int_equal(atomic_load(&r.finish_calls), 1);
    assert_int_equal(atomic_load(&r.error_calls), 1);
    assert_int_equal(r.last_error, 5);
}

static void test_successful_request_reports_no_error(void **state)
{
    (void)state;
    record r = {0};
    run_lifecycle(&r);
    assert_int_equal(atomic_load(&r.setup_calls), 1);
    assert_int_equal(atomic_load(&r.handle_calls), 1);
    assert_int_equal(atomic_load(&r.finish_calls), 1);
    assert_int_equal(atomic_load(&r.error_calls), 0);
}

/* A handler that sets only finish takes setup and handle from its base. */
static const ss_handler_class finish_only_handler = {
    .base = &lifecycle_handler,
    .finish = count_handle, /* counts into handle_calls: a second count */
};

static void test_unset_handler_methods_come_from_the_base(void **state)
{
    (void)state;
    record r = {0};
    ss_server_class kind = ss_tcp;
    kind.handle_error = record_error;
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.user = &r;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &kind, &ss_sync, "127.0.0.1:0",
                                   &finish_only_handler, &cfg),
                     0);
    int fd = test_connect(srv);
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(srv), 0);
    close(fd);
    ss_server_free(srv);
    assert_int_equal(atomic_load(&r.setup_calls), 1);  /* base's */
    assert_int_equal(atomic_load(&r.handle_calls), 2); /* base + ours */
    assert_int_equal(atomic_load(&r.finish_calls), 0); /* overridden */
    assert_int_equal(atomic_load(&r.error_calls), 0);
}

/* ---- Per-request state ------------------------------------------------- */

typedef struct request_state {
    double d;
    uint64_t words[15];
} request_state;

typedef struct state_record {
    int requests;
    int zeroed;       /* requests whose state was all zero at setup */
    int aligned;      /* ...suitably aligned for any type */
    int same_pointer; /* ...the same pointer in setup, handle, finish */
    int kept_value;   /* ...setup's write still there in handle */
    void *seen;       /* this request's state, from setup */
} state_record;

static int state_setup(ss_request *req)
{
    state_record *s = ss_request_user(req);
    request_state *st = ss_request_state(req);
    s->seen = st;
    s->requests++;
    if (!st)
        return -EFAULT;
    static const request_state zero;
    if (memcmp(st, &zero, sizeof zero) == 0)
        s->zeroed++;
    if ((uintptr_t)st % alignof(max_align_t) == 0)
        s->aligned++;
    st->d = 1.5;
    return 0;
}

static int state_handle(ss_request *req)
{
    state_record *s = ss_request_user(req);
    request_state *st = ss_request_state(req);
    if (st != s->seen)
        return -EFAULT;
    if (st->d == 1.5)
        s->kept_value++;
    /* Dirty every byte so a reused, unzeroed block would show. */
    memset(st, 0xAB, sizeof *st);
    return test_echo_handler.handle(req);
}

static int state_finish(ss_request *req)
{
    state_record *s = ss_request_user(req);
    if (ss_request_state(req) == s->seen)
        s->same_pointer++;
    return 0;
}

static const ss_handler_class state_handler = {
    .state_size = sizeof(request_state),
    .setup = state_setup,
    .handle = state_handle,
    .finish = state_finish,
};

static void
test_request_state_is_zeroed_and_fresh_for_each_request(void **state)
{
    (void)state;
    state_record s = {0};
    test_server t;
    start_with_user(&t, &ss_tcp, "127.0.0.1:0", &state_handler, &s);
    for (int i = 0; i < 5; i++) {
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        test_expect_echo_to_eof(fd, "state\n");
        close(fd);
    }
    test_server_stop(&t); /* all five handlers have finished */
    assert_int_equal(s.requests, 5);
    assert_int_equal(s.zeroed, 5);
    assert_int_equal(s.aligned, 5);
    assert_int_equal(s.kept_value, 5);
    assert_int_equal(s.same_pointer, 5);
}

static void test_request_state_works_for_datagrams(void **state)
{
    (void)state;
    state_record s = {0};
    test_server t;
    start_with_user(&t, &ss_udp, "127.0.0.1:0", &state_handler, &s);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    for (int i = 0; i < 3; i++)
        test_expect_echo(fd, "packet");
    close(fd);
    test_server_stop(&t);
    assert_int_equal(s.requests, 3);
    assert_int_equal(s.zeroed, 3);
    assert_int_equal(s.same_pointer, 3);
}

typedef struct null_state_record {
    int calls;
    int null_state;
} null_state_record;

static int expect_null_state(ss_request *req)
{
    null_state_record *n = ss_request_user(req);
    n->calls++;
    if (ss_request_state(req) == NULL)
        n->null_state++;
    return 0;
}

static const ss_handler_class no_state_handler = {
    .handle = expect_null_state,
};

/* state_size is not inherited: the derived class asks for none. */
static const ss_handler_class derived_no_state_handler = {
    .base = &state_handler,
    .setup = expect_null_state,
    .handle = expect_null_state,
    .finish = expect_null_state,
};

static void test_no_state_size_means_null_state(void **state)
{
    (void)state;
    const ss_handler_class *classes[] = {&no_state_handler,
                                         &derived_no_state_handler};
    const int calls_per_request[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        null_state_record n = {0};
        ss_config cfg;
        ss_config_init(&cfg);
        cfg.user = &n;
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                       classes[i], &cfg),
                         0);
        int fd = test_connect(srv);
        assert_true(fd >= 0);
        assert_int_equal(ss_handle_request(srv), 0);
        close(fd);
        ss_server_free(srv);
        assert_int_equal(n.calls, calls_per_request[i]);
        assert_int_equal(n.null_state, calls_per_request[i]);
    }
}

/* ---- What a handler can reach ------------------------------------------ */

typedef struct reach_record {
    int marker;
    void *user_seen;
    void *server_user_seen;
    const void *config_user_seen;
    ss_server *server_seen;
    char client_text[128];
    int client_text_len;
    struct sockaddr_storage client;
    socklen_t client_len;
} reach_record;

static int reach_handle(ss_request *req)
{
    reach_record *r = ss_request_user(req);
    r->user_seen = ss_request_user(req);
    r->server_seen = ss_request_server(req);
    r->server_user_seen = ss_server_user(r->server_seen);
    r->config_user_seen = ss_server_config(r->server_seen)->user;
    r->client_text_len = ss_request_client_address_string(
        req, r->client_text, sizeof r->client_text);
    socklen_t len = 0;
    const struct sockaddr *sa = ss_request_client_address(req, &len);
    if (sa && len <= sizeof r->client) {
        memcpy(&r->client, sa, len);
        r->client_len = len;
    }
    return test_echo_handler.handle(req);
}

static const ss_handler_class reach_handler = {.handle = reach_handle};

static void test_config_user_and_server_are_reachable_from_request(void **state)
{
    (void)state;
    reach_record r = {0};
    test_server t;
    start_with_user(&t, &ss_tcp, "127.0.0.1:0", &reach_handler, &r);
    int fd = test_connect(t.srv);
    assert_true(fd >= 0);
    test_expect_echo(fd, "reach\n");
    close(fd);
    ss_server *srv = t.srv;
    test_server_join(&t);
    assert_ptr_equal(r.user_seen, &r);
    assert_ptr_equal(r.server_user_seen, &r);
    assert_ptr_equal(r.config_user_seen, &r);
    assert_ptr_equal(r.server_seen, srv);
    ss_server_free(srv);
}

/* The client address as this test formats it itself, from the client's
 * getsockname(), independently of the library's formatter. */
static void format_client(const struct sockaddr_storage *ss, socklen_t len,
                          char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%d", host, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%d", host, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_un *un = (const void *)ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        if (len <= off)
            snprintf(buf, size, "unix:");
        else if (un->sun_path[0] == '\0')
            snprintf(buf, size, "unix:@%.*s", (int)(len - off - 1),
                     un->sun_path + 1);
        else
            snprintf(buf, size, "unix:%s", un->sun_path);
    }
}

static void test_client_address_in_handler_matches_client_socket(void **state)
{
    (void)state;
    char upath[108], dpath[108];
    test_unix_address(upath, sizeof upath, "peer-stream");
    test_unix_address(dpath, sizeof dpath, "peer-dgram");
    struct {
        const ss_server_class *kind;
        const char *address;
        bool needs_ipv6;
    } cases[] = {
        {&ss_tcp, "127.0.0.1:0", false}, {&ss_tcp, "[::1]:0", true},
        {&ss_udp, "127.0.0.1:0", false}, {&ss_udp, "[::1]:0", true},
        {&ss_unix_stream, upath, false}, {&ss_unix_datagram, dpath, false},
    };
    bool ipv6 = test_have_ipv6();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].needs_ipv6 && !ipv6)
            continue;
        reach_record r = {0};
        ss_config cfg;
        ss_config_init(&cfg);
        cfg.user = &r;
        cfg.unlink_on_close = true;
        test_server t;
        assert_int_equal(test_server_start(&t, cases[i].kind, cases[i].address,
                                           &reach_handler, &cfg),
                         0);
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        struct sockaddr_storage me;
        socklen_t len = sizeof me;
        assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
        test_expect_echo(fd, "who am i\n");
        close(fd);
        test_server_stop(&t);

        char want[128];
        format_client(&me, len, want, sizeof want);
        if (strcmp(r.client_text, want) != 0)
            fail_msg("%s: handler saw client \"%s\", client is \"%s\"",
                     cases[i].kind->name, r.client_text, want);
        assert_int_equal(r.client_text_len, (int)strlen(want));
        assert_int_equal(r.client.ss_family, me.ss_family);
        if (me.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const void *)&r.client;
            const struct sockaddr_in *b = (const void *)&me;
            assert_int_equal(r.client_len, sizeof *a);
            assert_int_equal(a->sin_port, b->sin_port);
            assert_int_equal(a->sin_addr.s_addr, b->sin_addr.s_addr);
        } else if (me.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const void *)&r.client;
            const struct sockaddr_in6 *b = (const void *)&me;
            assert_int_equal(r.client_len, sizeof *a);
            assert_int_equal(a->sin6_port, b->sin6_port);
            assert_memory_equal(&a->sin6_addr, &b->sin6_addr,
                                sizeof a->sin6_addr);
        } else {
            /* Unbound stream client: a family only. Bound datagram
             * client: its abstract name, byte for byte. */
            assert_int_equal(r.client_len, len);
            assert_memory_equal(&r.client, &me, len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_handler_failure_calls_handle_error_once_and_keeps_serving),
        cmocka_unit_test(
            test_handle_request_reports_handler_failure_and_returns_zero),
        cmocka_unit_test(
            test_default_handle_error_logs_one_line_naming_the_client),
        cmocka_unit_test(test_default_handle_error_writes_one_line_to_stderr),
        cmocka_unit_test(test_handle_error_override_can_call_the_base_entry),
        cmocka_unit_test(
            test_refused_request_is_shut_down_once_and_not_handled),
        cmocka_unit_test(test_accepted_request_is_verified_and_shut_down_once),
        cmocka_unit_test(test_finish_runs_even_when_handle_fails),
        cmocka_unit_test(
            test_first_failure_is_reported_when_handle_and_finish_fail),
        cmocka_unit_test(test_finish_failure_alone_is_reported),
        cmocka_unit_test(test_setup_failure_skips_handle_but_runs_finish),
        cmocka_unit_test(test_successful_request_reports_no_error),
        cmocka_unit_test(test_unset_handler_methods_come_from_the_base),
        cmocka_unit_test(
            test_request_state_is_zeroed_and_fresh_for_each_request),
        cmocka_unit_test(test_request_state_works_for_datagrams),
        cmocka_unit_test(test_no_state_size_means_null_state),
        cmocka_unit_test(
            test_config_user_and_server_are_reachable_from_request),
        cmocka_unit_test(test_client_address_in_handler_matches_client_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
