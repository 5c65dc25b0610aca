/*
 * test_server_kinds.c — the four server kinds over real sockets, with the
 * synchronous strategy.
 *
 * Ported from CPython's test_socketserver (SocketServerTest.run_server and
 * friends, test_tcpserver_bind_leak, test_context_manager) and extended with
 * what Python leaves to subclasses but libsockserv does itself: IPv6 and
 * dual-stack without subclassing, optional unlinking of Unix socket files,
 * CLOEXEC descriptors, errors as values with nothing leaked.
 */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A pointer value no server has: ss_server_new() must overwrite *out with
 * NULL when it fails, so callers never free garbage. */
static char not_set_marker;
#define NOT_SET ((ss_server *)&not_set_marker)

/* CPython's TEST_STR. */
static const char test_str[] = "hello world\n";

#define SKIP_WITHOUT_IPV6()                                                    \
    do {                                                                       \
        if (!test_have_ipv6()) {                                               \
            print_message("skipped: this machine cannot bind ::1\n");          \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* Two socket addresses name the same endpoint. Compared field by field
 * because Unix path lengths may or may not count the trailing NUL. */
static void assert_same_endpoint(const struct sockaddr_storage *a,
                                 socklen_t alen,
                                 const struct sockaddr_storage *b,
                                 socklen_t blen)
{
    assert_int_equal(a->ss_family, b->ss_family);
    switch (a->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        assert_int_equal(ntohs(x->sin_port), ntohs(y->sin_port));
        assert_int_equal(x->sin_addr.s_addr, y->sin_addr.s_addr);
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        assert_int_equal(ntohs(x->sin6_port), ntohs(y->sin6_port));
        assert_memory_equal(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr);
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        assert_true(alen > off);
        assert_true(blen > off);
        if (x->sun_path[0] == '\0') { /* abstract: every byte counts */
            assert_int_equal(alen, blen);
            assert_memory_equal(x->sun_path, y->sun_path, alen - off);
        } else {
            assert_int_equal(strnlen(x->sun_path, alen - off),
                             strnlen(y->sun_path, blen - off));
            assert_memory_equal(x->sun_path, y->sun_path,
                                strnlen(x->sun_path, alen - off));
        }
        break;
    }
    default:
        fail_msg("unexpected address family %d", a->ss_family);
    }
}

/* Python's make_server check: server_address == socket.getsockname(). */
static void assert_address_matches_socket(ss_server *srv)
{
    struct sockaddr_storage reported, actual;
    socklen_t rlen = sizeof reported, alen = sizeof actual;
    assert_int_equal(
        ss_server_address(srv, (struct sockaddr *)&reported, &rlen), 0);
    assert_int_equal(
        getsockname(ss_server_fileno(srv), (struct sockaddr *)&actual, &alen),
        0);
    assert_same_endpoint(&reported, rlen, &actual, alen);
}

/* CPython's run_server: three clients in sequence against one server, each
 * getting its line echoed; then shutdown, close, and fileno() == -1. */
static void run_three_clients(const ss_server_class *kind, const char *address)
{
    test_server t;
    int rc = test_server_start(&t, kind, address, &test_echo_handler, NULL);
    assert_int_equal(rc, 0);
    assert_address_matches_socket(t.srv);
    int before = test_echo_request_count();

    for (int i = 0; i < 3; i++) {
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        test_expect_echo_to_eof(fd, test_str);
        close(fd);
    }

    /* Each client waited for its request to end (stream: the server's
     * close; datagram: the reply, sent after handle), so all three
     * handlers have returned. */
    test_server_join(&t);
    assert_int_equal(t.serve_rc, 0);
    assert_int_equal(test_echo_request_count() - before, 3);
    ss_server_close(t.srv);
    assert_int_equal(ss_server_fileno(t.srv), -1);
    ss_server_free(t.srv);
}

static void test_tcp_ipv4_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    run_three_clients(&ss_tcp, "127.0.0.1:0");
}

static void test_tcp_ipv6_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    SKIP_WITHOUT_IPV6();
    run_three_clients(&ss_tcp, "[::1]:0");
}

static void test_udp_ipv4_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    run_three_clients(&ss_udp, "127.0.0.1:0");
}

static void test_udp_ipv6_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    SKIP_WITHOUT_IPV6();
    run_three_clients(&ss_udp, "[::1]:0");
}

static void test_unix_stream_path_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    char address[108];
    test_unix_address(address, sizeof address, "stream");
    run_three_clients(&ss_unix_stream, address);
    unlink(test_unix_path(address));
}

static void
test_unix_stream_abstract_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    char address[108];
    test_abstract_address(address, sizeof address, "stream");
    run_three_clients(&ss_unix_stream, address);
}

static void
test_unix_datagram_path_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    char address[108];
    test_unix_address(address, sizeof address, "dgram");
    run_three_clients(&ss_unix_datagram, address);
    unlink(test_unix_path(address));
}

static void
test_unix_datagram_abstract_echoes_three_clients_in_sequence(void **state)
{
    (void)state;
    char address[108];
    test_abstract_address(address, sizeof address, "dgram");
    run_three_clients(&ss_unix_datagram, address);
}

/* A Unix datagram client without a name cannot be answered (Python: the
 * reply's sendto fails and handle_error reports it). The server must report
 * it once and go on serving named clients. */
static void
test_unix_datagram_unnamed_client_is_reported_not_fatal(void **state)
{
    (void)state;
    char address[108];
    test_abstract_address(address, sizeof address, "unnamed");
    test_log log;
    test_log_init(&log);
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.log = test_log_hook;
    cfg.user = &log;
    test_server t;
    assert_int_equal(test_server_start(&t, &ss_unix_datagram, address,
                                       &test_echo_handler, &cfg),
                     0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(ss_server_address(t.srv, (struct sockaddr *)&ss, &len), 0);
    int unnamed = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(unnamed >= 0);
    assert_int_equal(sendto(unnamed, "lost", 4, 0, (struct sockaddr *)&ss, len),
                     4);

    int fd = test_connect(t.srv); /* a named client is still served */
    assert_true(fd >= 0);
    test_expect_echo(fd, test_str);
    close(fd);
    close(unnamed);
    test_server_stop(&t);
    assert_int_equal(test_log_count(&log), 1);
}

/* The one-call constructors are Python's plain classes: synchronous. */
static void test_one_call_constructors_build_sync_servers(void **state)
{
    (void)state;
    char upath[108], dpath[108];
    test_unix_address(upath, sizeof upath, "ctor-stream");
    test_unix_address(dpath, sizeof dpath, "ctor-dgram");
    struct {
        int (*make)(ss_server **, const char *, const ss_handler_class *,
                    const ss_config *);
        const ss_server_class *kind;
        const char *address;
    } cases[] = {
        {ss_tcp_server_new, &ss_tcp, "127.0.0.1:0"},
        {ss_udp_server_new, &ss_udp, "127.0.0.1:0"},
        {ss_unix_stream_server_new, &ss_unix_stream, upath},
        {ss_unix_datagram_server_new, &ss_unix_datagram, dpath},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_server t = {0};
        assert_int_equal(
            cases[i].make(&t.srv, cases[i].address, &test_echo_handler, NULL),
            0);
        assert_ptr_equal(ss_server_strategy(t.srv), &ss_sync);
        assert_int_equal(ss_server_kind(t.srv)->socket_type,
                         cases[i].kind->socket_type);
        assert_int_equal(test_server_run(&t, 0.05), 0);
        int fd = test_connect(t.srv);
        assert_true(fd >= 0);
        test_expect_echo(fd, test_str);
        close(fd);
        test_server_stop(&t);
    }
    unlink(test_unix_path(upath));
    unlink(test_unix_path(dpath));
}

/* ---- Addresses --------------------------------------------------------- */

static void test_port_zero_reports_the_real_port(void **state)
{
    (void)state;
    const ss_server_class *kinds[] = {&ss_tcp, &ss_udp};
    for (size_t i = 0; i < 2; i++) {
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, kinds[i], &ss_sync, "127.0.0.1:0",
                                       &test_echo_handler, NULL),
                         0);
        struct sockaddr_in actual;
        socklen_t alen = sizeof actual;
        assert_int_equal(getsockname(ss_server_fileno(srv),
                                     (struct sockaddr *)&actual, &alen),
                         0);
        int port = ss_server_port(srv);
        assert_true(port > 0);
        assert_int_equal(port, ntohs(actual.sin_port));

        struct sockaddr_storage reported;
        socklen_t rlen = sizeof reported;
        assert_int_equal(
            ss_server_address(srv, (struct sockaddr *)&reported, &rlen), 0);
        assert_int_equal(rlen, sizeof(struct sockaddr_in));
        assert_same_endpoint(&reported, rlen,
                             (struct sockaddr_storage *)&actual, alen);

        char want[64], text[64];
        snprintf(want, sizeof want, "127.0.0.1:%d", port);
        int n = ss_server_address_string(srv, text, sizeof text);
        assert_int_equal(n, (int)strlen(want));
        assert_string_equal(text, want);
        ss_server_free(srv);
    }
}

static void test_ipv6_port_zero_reports_the_real_port(void **state)
{
    (void)state;
    SKIP_WITHOUT_IPV6();
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "[::1]:0",
                                   &test_echo_handler, NULL),
                     0);
    assert_address_matches_socket(srv);
    int port = ss_server_port(srv);
    assert_true(port > 0);
    char want[64], text[64];
    snprintf(want, sizeof want, "[::1]:%d", port);
    ss_server_address_string(srv, text, sizeof text);
    assert_string_equal(text, want);
    ss_server_free(srv);
}

static void test_server_address_too_small_returns_enobufs(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    struct sockaddr_storage ss;
    socklen_t len = 4;
    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&ss, &len),
                     -ENOBUFS);
    ss_server_free(srv);
}

static void test_unix_server_has_no_port(void **state)
{
    (void)state;
    char address[108], text[128];
    test_abstract_address(address, sizeof address, "noport");
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, &ss_unix_stream, &ss_sync, address,
                                   &test_echo_handler, NULL),
                     0);
    assert_int_equal(ss_server_port(srv), -EAFNOSUPPORT);
    ss_server_address_string(srv, text, sizeof text);
    assert_string_equal(text, address);
    assert_address_matches_socket(srv);
    ss_server_free(srv);
}

static void test_dual_stack_server_accepts_ipv4_client(void **state)
{
    (void)state;
    SKIP_WITHOUT_IPV6();
    test_server t;
    /* The default config says ipv6_only = false, whatever the sysctl. */
    assert_int_equal(
        test_server_start(&t, &ss_tcp, "[::]:0", &test_echo_handler, NULL), 0);
    int v6only = -1;
    socklen_t len = sizeof v6only;
    assert_int_equal(getsockopt(ss_server_fileno(t.srv), IPPROTO_IPV6,
                                IPV6_V6ONLY, &v6only, &len),
                     0);
    assert_int_equal(v6only, 0);
    char v4[64];
    snprintf(v4, sizeof v4, "127.0.0.1:%d", ss_server_port(t.srv));
    int fd = test_connect_address(v4, SOCK_STREAM);
    assert_true(fd >= 0);
    test_expect_echo(fd, test_str);
    close(fd);

    fd = test_connect(t.srv); /* and IPv6 clients, through ::1 */
    assert_true(fd >= 0);
    test_expect_echo(fd, test_str);
    close(fd);
    test_server_stop(&t);
}

static void test_ipv6_only_server_refuses_ipv4_client(void **state)
{
    (void)state;
    SKIP_WITHOUT_IPV6();
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.ipv6_only = true;
    ss_server *srv = NULL;
    int port = 0, holder = -1, bound = -1;
    /* The IPv4 side of the port is free: this process can take it (which
     * also keeps any other process from listening there meanwhile)... —
     * unless another socket of the machine (a parallel test's client) has
     * that port as its own IPv4 ephemeral port: then try another port. */
    for (int attempt = 0; attempt < 5 && bound != 0; attempt++) {
        if (srv) {
            close(holder);
            ss_server_free(srv);
        }
        assert_int_equal(ss_server_new(&srv, &ss_tcp, &ss_sync, "[::]:0",
                                       &test_echo_handler, &cfg),
                         0);
        int v6only = 0;
        socklen_t len = sizeof v6only;
        assert_int_equal(getsockopt(ss_server_fileno(srv), IPPROTO_IPV6,
                                    IPV6_V6ONLY, &v6only, &len),
                         0);
        assert_int_equal(v6only, 1);
        port = ss_server_port(srv);
        holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(holder >= 0);
        struct sockaddr_in v4 = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bound = bind(holder, (struct sockaddr *)&v4, sizeof v4);
        if (bound != 0 && errno != EADDRINUSE)
            break;
    }
    assert_int_equal(bound, 0);
    /* ...and an IPv4 client finds no server there. */
    char v4_text[64];
    snprintf(v4_text, sizeof v4_text, "127.0.0.1:%d", port);
    int fd = test_connect_address(v4_text, SOCK_STREAM);
    if (fd >= 0)
        close(fd);
    assert_int_equal(fd, -ECONNREFUSED);
    close(holder);
    ss_server_free(srv);
}

/* ---- Unix socket files ------------------------------------------------- */

static bool is_socket_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void test_unlink_on_close_removes_the_socket_file(void **state)
{
    (void)state;
    const ss_server_class *kinds[] = {&ss_unix_stream, &ss_unix_datagram};
    for (size_t i = 0; i < 2; i++) {
        char address[108];
        test_unix_address(address, sizeof address, "unlink");
        ss_config cfg;
        ss_config_init(&cfg);
        cfg.unlink_on_close = true;
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, kinds[i], &ss_sync, address,
                                       &test_echo_handler, &cfg),
                         0);
        assert_true(is_socket_file(test_unix_path(address)));
        ss_server_close(srv);
        assert_false(is_socket_file(test_unix_path(address)));
        assert_int_equal(access(test_unix_path(address), F_OK), -1);
        ss_server_free(srv);
    }
}

static void test_socket_file_is_kept_by_default(void **state)
{
    (void)state;
    const ss_server_class *kinds[] = {&ss_unix_stream, &ss_unix_datagram};
    for (size_t i = 0; i < 2; i++) {
        char address[108];
        test_unix_address(address, sizeof address, "keep");
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, kinds[i], &ss_sync, address,
                                       &test_echo_handler, NULL),
                         0);
        ss_server_free(srv);
        /* Python never removes it; neither does the default config. */
        assert_true(is_socket_file(test_unix_path(address)));
        unlink(test_unix_path(address));
    }
}

/* ---- Failures: values, not leaks --------------------------------------- */

/* CPython's test_tcpserver_bind_leak: many failed constructions must not
 * exhaust descriptors. Here bind() really fails, with EADDRINUSE. */
static void test_bind_failure_returns_eaddrinuse_and_leaks_no_fd(void **state)
{
    (void)state;
    ss_server *holder;
    assert_int_equal(ss_server_new(&holder, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", ss_server_port(holder));

    int fds_before = test_count_open_fds();
    assert_true(fds_before > 0);
    for (int i = 0; i < 1024; i++) {
        ss_server *srv = NOT_SET;
        int rc = ss_server_new(&srv, &ss_tcp, &ss_sync, address,
                               &test_echo_handler, NULL);
        if (rc != -EADDRINUSE)
            fail_msg("attempt %d: expected -EADDRINUSE, got %d (%s)", i, rc,
                     ss_strerror(rc));
        assert_null(srv);
    }
    assert_int_equal(test_count_open_fds(), fds_before);
    ss_server_free(holder);
}

static void
test_udp_bind_failure_returns_eaddrinuse_and_leaks_no_fd(void **state)
{
    (void)state;
    ss_server *holder;
    assert_int_equal(ss_server_new(&holder, &ss_udp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, NULL),
                     0);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", ss_server_port(holder));
    int fds_before = test_count_open_fds();
    for (int i = 0; i < 64; i++) {
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, &ss_udp, &ss_sync, address,
                                       &test_echo_handler, NULL),
                         -EADDRINUSE);
        assert_null(srv);
    }
    assert_int_equal(test_count_open_fds(), fds_before);
    ss_server_free(holder);
}

/* An existing socket file is not replaced (Python raises EADDRINUSE). */
static void
test_unix_path_in_use_returns_eaddrinuse_and_leaks_no_fd(void **state)
{
    (void)state;
    char address[108];
    test_unix_address(address, sizeof address, "inuse");
    ss_server *holder;
    assert_int_equal(ss_server_new(&holder, &ss_unix_stream, &ss_sync, address,
                                   &test_echo_handler, NULL),
                     0);
    int fds_before = test_count_open_fds();
    for (int i = 0; i < 64; i++) {
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, &ss_unix_stream, &ss_sync, address,
                                       &test_echo_handler, NULL),
                         -EADDRINUSE);
        assert_null(srv);
    }
    assert_int_equal(test_count_open_fds(), fds_before);
    /* The failed attempts must not have removed the holder's file. */
    assert_true(is_socket_file(test_unix_path(address)));
    ss_server_free(holder);
    unlink(test_unix_path(address));
}

static void
test_bad_address_strings_return_einval_without_fd_growth(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:99999999999999999999",
        "127.0.0.1:-1",
        "127.0.0.1:80x",
        "127.0.0.1:0x50",
        "127.0.0.1:8000:1",
        "[::1",
        "[::1]:",
        "[::1]:65536",
        "[::1]x0",
        "[not-an-address]:80",
    };
    int fds_before = test_count_open_fds();
    for (int round = 0; round < 32; round++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            ss_server *srv = NOT_SET;
            int rc = ss_server_new(&srv, &ss_tcp, &ss_sync, bad[i],
                                   &test_echo_handler, NULL);
            if (rc != -EINVAL)
                fail_msg("\"%s\": expected -EINVAL, got %d (%s)", bad[i], rc,
                         ss_strerror(rc));
            assert_null(srv);
        }
    }
    assert_int_equal(test_count_open_fds(), fds_before);
}

/* A kind given an address of the wrong family is an error, not a crash or
 * a leak. */
static void test_address_of_wrong_family_fails_cleanly(void **state)
{
    (void)state;
    int fds_before = test_count_open_fds();
    const ss_server_class *kinds[] = {&ss_unix_stream, &ss_unix_datagram};
    for (size_t i = 0; i < 2; i++) {
        ss_server *srv = NOT_SET;
        assert_true(ss_server_new(&srv, kinds[i], &ss_sync, "127.0.0.1:0",
                                  &test_echo_handler, NULL) < 0);
        assert_null(srv);
    }
    /* And the other way round: an IP kind given a Unix address. */
    char address[108];
    test_unix_address(address, sizeof address, "wrongkind");
    ss_server *srv = NOT_SET;
    assert_true(ss_server_new(&srv, &ss_tcp, &ss_sync, address,
                              &test_echo_handler, NULL) < 0);
    assert_null(srv);
    assert_int_equal(access(test_unix_path(address), F_OK), -1);
    assert_int_equal(test_count_open_fds(), fds_before);
}

/* ---- bind_and_activate = false ----------------------------------------- */

static void test_bind_and_activate_false_defers_bind_and_listen(void **state)
{
    (void)state;
    ss_config cfg;
    ss_config_init(&cfg);
    assert_false(cfg.no_bind_and_activate); /* the default */
    cfg.no_bind_and_activate = true;
    test_server t = {0};
    assert_int_equal(ss_server_new(&t.srv, &ss_tcp, &ss_sync, "127.0.0.1:0",
                                   &test_echo_handler, &cfg),
                     0);
    /* The socket exists so the caller can set options on it... */
    int fd = ss_server_fileno(t.srv);
    assert_true(fd >= 0);
    int one = 1;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one),
                     0);
    /* ...but it is neither bound nor listening yet. */
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    assert_int_equal(sin.sin_port, 0);

    assert_int_equal(ss_server_bind(t.srv), 0);
    int port = ss_server_port(t.srv);
    assert_true(port > 0);
    len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    assert_int_equal(ntohs(sin.sin_port), port);
    int listening = -1;
    len = sizeof listening;
    assert_int_equal(
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
    assert_int_equal(listening, 0);

    assert_int_equal(ss_server_activate(t.srv), 0);
    len = sizeof listening;
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
    assert_int_equal(listening, 1);

    assert_int_equal(test_server_run(&t, 0.05), 0);
    int client = test_connect(t.srv);
    assert_true(client >= 0);
    test_expect_echo(client, test_str);
    close(client);
    test_server_stop(&t);
    assert_int_equal(t.serve_rc, 0);
}

static void test_bind_and_activate_false_works_for_unix_datagram(void **state)
{
    (void)state;
    char address[108];
    test_unix_address(address, sizeof address, "deferred");
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.no_bind_and_activate = true;
    cfg.unlink_on_close = true;
    test_server t = {0};
    assert_int_equal(ss_server_new(&t.srv, &ss_unix_datagram, &ss_sync, address,
                                   &test_echo_handler, &cfg),
                     0);
    assert_false(is_socket_file(test_unix_path(address)));
    assert_int_equal(ss_server_bind(t.srv), 0);
    assert_true(is_socket_file(test_unix_path(address)));
    assert_int_equal(ss_server_activate(t.srv), 0);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    int client = test_connect(t.srv);
    assert_true(client >= 0);
    test_expect_echo(client, test_str);
    close(client);
    test_server_stop(&t);
    assert_false(is_socket_file(test_unix_path(address)));
}

/* ---- CLOEXEC ----------------------------------------------------------- */

static bool fd_is_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

typedef struct cloexec_seen {
    int request_fd;
    int request_fd_flags;
} cloexec_seen;

static int record_cloexec_handle(ss_request *req)
{
    cloexec_seen *seen = ss_request_user(req);
    seen->request_fd = ss_request_fileno(req);
    seen->request_fd_flags = fcntl(seen->request_fd, F_GETFD);
    return test_echo_handler.handle(req);
}

static const ss_handler_class record_cloexec_handler = {
    .handle = record_cloexec_handle,
};

/* Descriptors open now, as a bitmap over the first 4096 numbers. */
static void snapshot_fds(unsigned char open_fds[4096])
{
    for (int fd = 0; fd < 4096; fd++)
        open_fds[fd] = fcntl(fd, F_GETFD) >= 0;
}

static void test_every_descriptor_is_cloexec(void **state)
{
    (void)state;
    char upath[108], dpath[108];
    test_unix_address(upath, sizeof upath, "cloexec-stream");
    test_unix_address(dpath, sizeof dpath, "cloexec-dgram");
    struct {
        const ss_server_class *kind;
        const char *address;
    } cases[] = {
        {&ss_tcp, "127.0.0.1:0"},
        {&ss_udp, "127.0.0.1:0"},
        {&ss_unix_stream, upath},
        {&ss_unix_datagram, dpath},
    };
    static unsigned char before[4096], after[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cloexec_seen seen = {.request_fd = -1, .request_fd_flags = -1};
        ss_config cfg;
        ss_config_init(&cfg);
        cfg.user = &seen;
        cfg.unlink_on_close = true;

        snapshot_fds(before);
        test_server t;
        assert_int_equal(test_server_start(&t, cases[i].kind, cases[i].address,
                                           &record_cloexec_handler, &cfg),
                         0);
        assert_true(fd_is_cloexec(ss_server_fileno(t.srv)));
        /* Whatever else the server opened (its wake-up descriptor...) too. */
        snapshot_fds(after);
        for (int fd = 0; fd < 4096; fd++)
            if (after[fd] && !before[fd] && !fd_is_cloexec(fd))
                fail_msg("%s: descriptor %d lacks FD_CLOEXEC",
                         cases[i].kind->name, fd);

        int client = test_connect(t.srv);
        assert_true(client >= 0);
        test_expect_echo(client, test_str);
        close(client);
        test_server_stop(&t);

        assert_true(seen.request_fd >= 0);
        assert_true(seen.request_fd_flags >= 0);
        if (!(seen.request_fd_flags & FD_CLOEXEC))
            fail_msg("%s: request descriptor lacks FD_CLOEXEC",
                     cases[i].kind->name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_ipv4_echoes_three_clients_in_sequence),
        cmocka_unit_test(test_tcp_ipv6_echoes_three_clients_in_sequence),
        cmocka_unit_test(test_udp_ipv4_echoes_three_clients_in_sequence),
        cmocka_unit_test(test_udp_ipv6_echoes_three_clients_in_sequence),
        cmocka_unit_test(
            test_unix_stream_path_echoes_three_clients_in_sequence),
        cmocka_unit_test(
            test_unix_stream_abstract_echoes_three_clients_in_sequence),
        cmocka_unit_test(
            test_unix_datagram_path_echoes_three_clients_in_sequence),
        cmocka_unit_test(
            test_unix_datagram_abstract_echoes_three_clients_in_sequence),
        cmocka_unit_test(
            test_unix_datagram_unnamed_client_is_reported_not_fatal),
        cmocka_unit_test(test_one_call_constructors_build_sync_servers),
        cmocka_unit_test(test_port_zero_reports_the_real_port),
        cmocka_unit_test(test_ipv6_port_zero_reports_the_real_port),
        cmocka_unit_test(test_server_address_too_small_returns_enobufs),
        cmocka_unit_test(test_unix_server_has_no_port),
        cmocka_unit_test(test_dual_stack_server_accepts_ipv4_client),
        cmocka_unit_test(test_ipv6_only_server_refuses_ipv4_client),
        cmocka_unit_test(test_unlink_on_close_removes_the_socket_file),
        cmocka_unit_test(test_socket_file_is_kept_by_default),
        cmocka_unit_test(test_bind_failure_returns_eaddrinuse_and_leaks_no_fd),
        cmocka_unit_test(
            test_udp_bind_failure_returns_eaddrinuse_and_leaks_no_fd),
        cmocka_unit_test(
            test_unix_path_in_use_returns_eaddrinuse_and_leaks_no_fd),
        cmocka_unit_test(
            test_bad_address_strings_return_einval_without_fd_growth),
        cmocka_unit_test(test_address_of_wrong_family_fails_cleanly),
        cmocka_unit_test(test_bind_and_activate_false_defers_bind_and_listen),
        cmocka_unit_test(test_bind_and_activate_false_works_for_unix_datagram),
        cmocka_unit_test(test_every_descriptor_is_cloexec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
