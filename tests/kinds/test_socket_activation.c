/*
 * test_socket_activation.c — serving on a socket the program did not make:
 * ss_server_new_fd() and the LISTEN_FDS protocol (ss_listen_fds,
 * ss_listen_fds_with_names), then sockserv-httpd and sockserv-echo started
 * the way a service manager starts them.
 *
 * The protocol tests put real sockets at descriptors 3 and 4 of this
 * process and set the variables as systemd does; whatever sat at those
 * numbers before is moved aside and put back. The end-to-end tests fork,
 * move the sockets to 3, 4… in the child, set LISTEN_FDS, LISTEN_PID (the
 * child's own pid, which exec keeps) and LISTEN_FDNAMES, and exec the
 * built program; they then talk to it over the socket the test made, so
 * a program that bound an address of its own instead would never answer.
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "program_run.h"

/* ---- sockets made the way a service manager makes them ------------------ */

/* An IPv4 socket of type bound to 127.0.0.1 on a free port, listening when
 * asked. Without SOCK_CLOEXEC or SOCK_NONBLOCK, as a passed descriptor
 * arrives, so the tests can see the library set them. */
static int inet_socket(int type, bool listening, int *port)
{
    int fd = socket(AF_INET, type, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/* A Unix socket of type bound to a fresh path (the part after "unix:" of
 * address, which receives "unix:PATH"). */
static int unix_socket(int type, bool listening, char *address, size_t size,
                       const char *tag)
{
    test_unix_address(address, size, tag);
    int fd = socket(AF_UNIX, type, 0);
    assert_true(fd >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s",
             test_unix_path(address));
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void connect_and_echo(ss_server *srv, const char *text)
{
    int c = test_connect(srv);
    assert_true(c >= 0);
    test_expect_echo_to_eof(c, text);
    close(c);
}

/* ---- ss_server_new_fd ---------------------------------------------------- */

static const struct {
    const char *name;
    const ss_strategy *strategy;
} strategies[] = {
    {"sync", &ss_sync},       {"threading", &ss_threading},
    {"forking", &ss_forking}, {"thread_pool", &ss_thread_pool},
    {"prefork", &ss_prefork}, {"coroutines", &ss_coroutines},
};

static void test_adopted_tcp_socket_serves_under_every_strategy(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++) {
        print_message("strategy %s\n", strategies[i].name);
        int fds_before = test_count_open_fds();
        int port;
        int fd = inet_socket(SOCK_STREAM, true, &port);
        ss_config cfg;
        ss_config_init(&cfg);
        test_options opts = {.prefork.workers = 2,
                             .pool.pool_size = 2,
                             .coro.threads = 2};
        test_use_options(&cfg, strategies[i].strategy, &opts);
        test_server t = {0};
        assert_int_equal(ss_server_new_fd(&t.srv, &ss_tcp,
                                          strategies[i].strategy, fd,
                                          &test_echo_handler, &cfg),
                         0);
        assert_int_equal(ss_server_fileno(t.srv), fd);
        assert_int_equal(ss_server_port(t.srv), port);
        assert_int_equal(test_server_run(&t, 0.05), 0);
        connect_and_echo(t.srv, "adopted\n");
        connect_and_echo(t.srv, "and again\n");
        assert_true(test_server_stop_within(&t, 20.0));
        /* The server owned the socket, and closed it with itself. */
        assert_int_equal(test_count_open_fds(), fds_before);
    }
}

static void test_adopted_socket_reports_the_bound_address(void **state)
{
    (void)state;
    int port;
    int fd = inet_socket(SOCK_STREAM, true, &port);
    ss_server *srv;
    assert_int_equal(
        ss_server_new_fd(&srv, &ss_tcp, &ss_sync, fd, &test_echo_handler, NULL),
        0);
    char expected[64], text[64];
    snprintf(expected, sizeof expected, "127.0.0.1:%d", port);
    assert_true(ss_server_address_string(srv, text, sizeof text) > 0);
    assert_string_equal(text, expected);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    assert_int_equal(ss_server_address(srv, (struct sockaddr *)&addr, &len), 0);
    assert_int_equal(addr.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&addr)->sin_port), port);
    ss_server_free(srv);
}

static void test_adopted_socket_is_made_nonblocking_and_cloexec(void **state)
{
    (void)state;
    int port;
    int fd = inet_socket(SOCK_STREAM, true, &port);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    ss_server *srv;
    assert_int_equal(ss_server_new_fd(&srv, &ss_tcp, &ss_threading, fd,
                                      &test_echo_handler, NULL),
                     0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ss_server_free(srv);
}

static void test_bound_socket_not_listening_gets_listened(void **state)
{
    (void)state;
    int port;
    int fd = inet_socket(SOCK_STREAM, false, &port);
    int accepting = -1;
    socklen_t len = sizeof accepting;
    test_server t = {0};
    assert_int_equal(ss_server_new_fd(&t.srv, &ss_tcp, &ss_threading, fd,
                                      &test_echo_handler, NULL),
                     0);
    assert_int_equal(
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len), 0);
    assert_int_equal(accepting, 1);
    assert_int_equal(ss_server_port(t.srv), port);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    connect_and_echo(t.srv, "listened for\n");
    test_server_stop(&t);
}

static void test_adopted_udp_socket_serves(void **state)
{
    (void)state;
    int port;
    int fd = inet_socket(SOCK_DGRAM, false, &port);
    test_server t = {0};
    assert_int_equal(ss_server_new_fd(&t.srv, &ss_udp, &ss_threading, fd,
                                      &test_echo_handler, NULL),
                     0);
    assert_int_equal(ss_server_port(t.srv), port);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    int c = test_connect(t.srv);
    assert_true(c >= 0);
    test_expect_echo(c, "one datagram");
    close(c);
    test_server_stop(&t);
}

static void test_adopted_unix_stream_socket_file_is_not_unlinked(void **state)
{
    (void)state;
    char address[128];
    int fd = unix_socket(SOCK_STREAM, true, address, sizeof address, "adopt");
    ss_config cfg;
    ss_config_init(&cfg);
    cfg.unlink_on_close = true; /* for files the server made; not this one */
    test_server t = {0};
    assert_int_equal(ss_server_new_fd(&t.srv, &ss_unix_stream, &ss_coroutines,
                                      fd, &test_echo_handler, &cfg),
                     0);
    char text[160];
    assert_true(ss_server_address_string(t.srv, text, sizeof text) > 0);
    assert_string_equal(text, address);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    connect_and_echo(t.srv, "over a passed Unix socket\n");
    test_server_stop(&t);
    /* Whoever bound it made the file; removing it is theirs to do. */
    assert_true(path_exists(test_unix_path(address)));
    unlink(test_unix_path(address));
}

static void test_adopted_unix_datagram_socket_serves(void **state)
{
    (void)state;
    char address[128];
    int fd = unix_socket(SOCK_DGRAM, false, address, sizeof address, "dgram");
    test_server t = {0};
    assert_int_equal(ss_server_new_fd(&t.srv, &ss_unix_datagram, &ss_sync, fd,
                                      &test_echo_handler, NULL),
                     0);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    int c = test_connect(t.srv);
    assert_true(c >= 0);
    test_expect_echo(c, "unix datagram");
    close(c);
    test_server_stop(&t);
    unlink(test_unix_path(address));
}

/* ss_server_new_fd must refuse fd with error, leaving it open with its
 * flags as they were, and leak nothing. */
static void expect_refused(const ss_server_class *kind, int fd, int error)
{
    int fds_before = test_count_open_fds();
    int fl = fcntl(fd, F_GETFL), fd_flags = fcntl(fd, F_GETFD);
    ss_server *srv = (ss_server *)&srv; /* must be reset to NULL */
    assert_int_equal(ss_server_new_fd(&srv, kind, &ss_threading, fd,
                                      &test_echo_handler, NULL),
                     error);
    assert_null(srv);
    assert_true(fd_is_open(fd));
    assert_int_equal(fcntl(fd, F_GETFL), fl);
    assert_int_equal(fcntl(fd, F_GETFD), fd_flags);
    assert_int_equal(test_count_open_fds(), fds_before);
}

static void
test_socket_that_does_not_fit_the_kind_is_refused_and_kept(void **state)
{
    (void)state;
    int port;
    int udp = inet_socket(SOCK_DGRAM, false, &port);
    int tcp = inet_socket(SOCK_STREAM, true, &port);
    char address[128];
    int unix_stream =
        unix_socket(SOCK_STREAM, true, address, sizeof address, "kind");

    expect_refused(&ss_tcp, udp, -EPROTOTYPE);
    expect_refused(&ss_udp, tcp, -EPROTOTYPE);
    expect_refused(&ss_unix_datagram, unix_stream, -EPROTOTYPE);
    expect_refused(&ss_unix_stream, tcp, -EAFNOSUPPORT);
    expect_refused(&ss_unix_datagram, udp, -EAFNOSUPPORT);
    expect_refused(&ss_tcp, unix_stream, -EAFNOSUPPORT);

    /* Still usable by the caller after every refusal. */
    test_server t = {0};
    assert_int_equal(ss_server_new_fd(&t.srv, &ss_tcp, &ss_sync, tcp,
                                      &test_echo_handler, NULL),
                     0);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    connect_and_echo(t.srv, "still good\n");
    test_server_stop(&t);
    close(udp);
    close(unix_stream);
    unlink(test_unix_path(address));
}

static void test_descriptor_that_is_no_socket_is_refused(void **state)
{
    (void)state;
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    expect_refused(&ss_tcp, pipe_fds[0], -ENOTSOCK);
    int file = open("/dev/null", O_RDONLY);
    assert_true(file >= 0);
    expect_refused(&ss_unix_stream, file, -ENOTSOCK);
    close(file);
    close(pipe_fds[0]);
    /* Closed, and a number that was never a descriptor. */
    ss_server *srv;
    assert_int_equal(ss_server_new_fd(&srv, &ss_tcp, &ss_sync, pipe_fds[0],
                                      &test_echo_handler, NULL),
                     -EBADF);
    assert_int_equal(
        ss_server_new_fd(&srv, &ss_tcp, &ss_sync, -1, &test_echo_handler, NULL),
        -EBADF);
    close(pipe_fds[1]);
}

static void test_unbound_or_connected_socket_is_refused_and_kept(void **state)
{
    (void)state;
    int unbound = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(unbound >= 0);
    expect_refused(&ss_tcp, unbound, -EDESTADDRREQ);
    int unbound_unix = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(unbound_unix >= 0);
    expect_refused(&ss_unix_datagram, unbound_unix, -EDESTADDRREQ);
    close(unbound);
    close(unbound_unix);

    /* A connected client socket is bound but cannot listen: listen()'s
     * error comes back, after the server was half made — and undone. */
    int port;
    int listener = inet_socket(SOCK_STREAM, true, &port);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    int client = test_connect_address(address, SOCK_STREAM);
    assert_true(client >= 0);
    expect_refused(&ss_tcp, client, -EINVAL);
    close(client);
    close(listener);
}

static void test_bad_arguments_are_refused_and_fd_kept(void **state)
{
    (void)state;
    int port;
    int fd = inet_socket(SOCK_STREAM, true, &port);
    int fds_before = test_count_open_fds();
    ss_server *srv;
    assert_int_equal(
        ss_server_new_fd(NULL, &ss_tcp, &ss_sync, fd, &test_echo_handler, NULL),
        -EINVAL);
    assert_int_equal(
        ss_server_new_fd(&srv, NULL, &ss_sync, fd, &test_echo_handler, NULL),
        -EINVAL);
    assert_int_equal(
        ss_server_new_fd(&srv, &ss_tcp, NULL, fd, &test_echo_handler, NULL),
        -EINVAL);
    assert_int_equal(ss_server_new_fd(&srv, &ss_tcp, &ss_sync, fd, NULL, NULL),
                     -EINVAL);
    ss_config cfg;
    ss_config_init(&cfg);
    ss_forking_options forking = {.max_children = -1}; /* invalid */
    cfg.strategy_options = &forking;
    assert_int_equal(ss_server_new_fd(&srv, &ss_tcp, &ss_forking, fd,
                                      &test_echo_handler, &cfg),
                     -EINVAL);
    assert_true(fd_is_open(fd));
    assert_int_equal(test_count_open_fds(), fds_before);
    close(fd);
}

/* ---- the LISTEN_FDS protocol --------------------------------------------- */

/* Descriptors 3 and 4 of this process while a test uses them: what was
 * there before (if anything) waits at a high number. */
static int saved_fd[2] = {-1, -1};
static int saved_flags[2];

static void clear_environment(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

/* Put fd at descriptor SS_LISTEN_FDS_START + slot (without CLOEXEC, as
 * after exec) and close fd. */
static void place(int fd, int slot)
{
    int target = SS_LISTEN_FDS_START + slot;
    if (saved_fd[slot] < 0 && fd_is_open(target)) {
        saved_flags[slot] = fcntl(target, F_GETFD);
        saved_fd[slot] = fcntl(target, F_DUPFD_CLOEXEC, 100);
        assert_true(saved_fd[slot] >= 0);
    }
    if (fd == target) {
        fcntl(fd, F_SETFD, 0);
        return;
    }
    assert_int_equal(dup2(fd, target), target);
    close(fd);
}

/* A listening TCP socket at descriptor 3 + slot; returns its port. */
static int place_listener(int slot)
{
    int port;
    /* Made above the slots, so making it never takes 3 or 4 itself. */
    int fd = inet_socket(SOCK_STREAM, true, &port);
    int high = fcntl(fd, F_DUPFD, 100);
    assert_true(high >= 0);
    close(fd);
    place(high, slot);
    return port;
}

static void set_pid(pid_t pid)
{
    char text[32];
    snprintf(text, sizeof text, "%ld", (long)pid);
    setenv("LISTEN_PID", text, 1);
}

static int protocol_setup(void **state)
{
    (void)state;
    clear_environment();
    return 0;
}

/* Close what a test placed and put back what was there. */
static int protocol_teardown(void **state)
{
    (void)state;
    clear_environment();
    for (int slot = 0; slot < 2; slot++) {
        int target = SS_LISTEN_FDS_START + slot;
        close(target);
        if (saved_fd[slot] >= 0) {
            dup2(saved_fd[slot], target);
            fcntl(target, F_SETFD, saved_flags[slot]);
            close(saved_fd[slot]);
            saved_fd[slot] = -1;
        }
    }
    return 0;
}

static void test_listen_fds_without_variables_is_not_activation(void **state)
{
    (void)state;
    assert_int_equal(ss_listen_fds(false), 0);
    char **names = (char **)&names;
    assert_int_equal(ss_listen_fds_with_names(false, &names), 0);
    assert_null(names);
    /* LISTEN_FDS alone, without LISTEN_PID, is not for us either. */
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(ss_listen_fds(false), 0);
}

static void test_listen_fds_for_another_process_is_not_activation(void **state)
{
    (void)state;
    place_listener(0);
    set_pid(getppid()); /* inherited from the parent: not ours */
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(ss_listen_fds(false), 0);
    /* Nothing touched: the descriptor is not ours to mark. */
    assert_int_equal(fcntl(SS_LISTEN_FDS_START, F_GETFD) & FD_CLOEXEC, 0);
    assert_non_null(getenv("LISTEN_FDS"));
}

static void
test_listen_fds_counts_passed_sockets_and_marks_cloexec(void **state)
{
    (void)state;
    place_listener(0);
    place_listener(1);
    set_pid(getpid());
    setenv("LISTEN_FDS", "2", 1);
    assert_int_equal(ss_listen_fds(false), 2);
    assert_true(fcntl(SS_LISTEN_FDS_START, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(SS_LISTEN_FDS_START + 1, F_GETFD) & FD_CLOEXEC);
    /* Kept: a second call says the same. */
    assert_non_null(getenv("LISTEN_PID"));
    assert_int_equal(ss_listen_fds(false), 2);
}

static void test_listen_fds_unset_environment_clears_variables(void **state)
{
    (void)state;
    place_listener(0);
    set_pid(getpid());
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "web", 1);
    assert_int_equal(ss_listen_fds(true), 1);
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
    assert_int_equal(ss_listen_fds(true), 0);

    /* Cleared even when the variables were wrong. */
    set_pid(getpid());
    setenv("LISTEN_FDS", "many", 1);
    setenv("LISTEN_FDNAMES", "web", 1);
    assert_int_equal(ss_listen_fds(true), -EINVAL);
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
}

static void test_listen_fds_rejects_malformed_values(void **state)
{
    (void)state;
    place_listener(0);
    static const char *const bad_counts[] = {
        "",   "abc", "1x",  " 1",         "1 ",
        "+1", "-1",  "0x1", "2147483647", "99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad_counts / sizeof bad_counts[0]; i++) {
        print_message("LISTEN_FDS=\"%s\"\n", bad_counts[i]);
        set_pid(getpid());
        setenv("LISTEN_FDS", bad_counts[i], 1);
        assert_int_equal(ss_listen_fds(false), -EINVAL);
    }
    static const char *const bad_pids[] = {"",   "abc", "0",
                                           "-5", "12a", "99999999999999999999"};
    setenv("LISTEN_FDS", "1", 1);
    for (size_t i = 0; i < sizeof bad_pids / sizeof bad_pids[0]; i++) {
        print_message("LISTEN_PID=\"%s\"\n", bad_pids[i]);
        setenv("LISTEN_PID", bad_pids[i], 1);
        assert_int_equal(ss_listen_fds(false), -EINVAL);
    }
    /* Zero passed descriptors is a valid, if useless, message. */
    set_pid(getpid());
    setenv("LISTEN_FDS", "0", 1);
    assert_int_equal(ss_listen_fds(false), 0);
}

static void test_listen_fds_count_past_open_descriptors_is_ebadf(void **state)
{
    (void)state;
    place_listener(0);
    set_pid(getpid());
    setenv("LISTEN_FDS", "5000", 1); /* far more than this process holds */
    assert_int_equal(ss_listen_fds(false), -EBADF);
}

static void test_listen_fds_with_names_returns_one_name_each(void **state)
{
    (void)state;
    place_listener(0);
    place_listener(1);
    set_pid(getpid());
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "web:admin", 1);
    char **names = NULL;
    assert_int_equal(ss_listen_fds_with_names(true, &names), 2);
    assert_non_null(names);
    assert_string_equal(names[0], "web");
    assert_string_equal(names[1], "admin");
    assert_null(names[2]);
    free(names); /* one block */
    assert_null(getenv("LISTEN_FDNAMES"));
}

static void test_listen_fds_without_names_are_unknown(void **state)
{
    (void)state;
    place_listener(0);
    place_listener(1);
    set_pid(getpid());
    setenv("LISTEN_FDS", "2", 1);
    char **names = NULL;
    assert_int_equal(ss_listen_fds_with_names(false, &names), 2);
    assert_string_equal(names[0], "unknown");
    assert_string_equal(names[1], "unknown");
    assert_null(names[2]);
    free(names);
    /* names may be NULL: then it is ss_listen_fds(). */
    assert_int_equal(ss_listen_fds_with_names(false, NULL), 2);
}

static void test_listen_fds_with_wrong_number_of_names_is_einval(void **state)
{
    (void)state;
    place_listener(0);
    place_listener(1);
    set_pid(getpid());
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "a:b:c", 1);
    char **names = (char **)&names;
    assert_int_equal(ss_listen_fds_with_names(false, &names), -EINVAL);
    assert_null(names);
    setenv("LISTEN_FDNAMES", "only-one", 1);
    assert_int_equal(ss_listen_fds_with_names(false, &names), -EINVAL);
    assert_null(names);
}

/* What a socket-activated program does, in this process. */
static void test_passed_socket_serves_through_the_protocol(void **state)
{
    (void)state;
    int port = place_listener(0);
    set_pid(getpid());
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "echo", 1);
    char **names;
    assert_int_equal(ss_listen_fds_with_names(true, &names), 1);
    assert_string_equal(names[0], "echo");
    free(names);
    test_server t = {0};
    assert_int_equal(ss_server_new_fd(&t.srv, &ss_tcp, &ss_coroutines,
                                      SS_LISTEN_FDS_START, &test_echo_handler,
                                      NULL),
                     0);
    assert_int_equal(ss_server_port(t.srv), port);
    assert_int_equal(test_server_run(&t, 0.05), 0);
    connect_and_echo(t.srv, "activated\n");
    test_server_stop(&t);
    assert_false(fd_is_open(SS_LISTEN_FDS_START)); /* the server closed it */
}

/* ---- the programs, started as a service manager starts them ------------- */

#if defined(SOCKSERV_HTTPD_PATH) && defined(SOCKSERV_ECHO_PATH)

/* test_wait_exit(), and a program still running after seconds is
 * killed (and reaped) before -1 is returned. */
static int wait_exit_or_kill(pid_t pid, double seconds)
{
    int status = test_wait_exit(pid, seconds);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return status;
}

typedef struct program {
    pid_t pid;
    char output[64]; /* stdout and stderr of the program */
} program;

/* fork; in the child, sockets[i] goes to descriptor 3 + i, LISTEN_FDS,
 * LISTEN_PID and LISTEN_FDNAMES (NULL: unset) say so, and argv runs. The
 * sockets are closed in this process: only the program holds them. */
static void spawn_activated(program *p, char *const argv[], int *sockets,
                            int count, const char *names)
{
    strcpy(p->output, "/tmp/sockserv-activation-XXXXXX");
    int out = mkostemp(p->output, O_CLOEXEC);
    assert_true(out >= 0);
    fflush(NULL);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        /* First above the target range, so no move overwrites another. */
        int high[8];
        for (int i = 0; i < count; i++)
            high[i] = fcntl(sockets[i], F_DUPFD, 100);
        for (int i = 0; i < count; i++) {
            dup2(high[i], SS_LISTEN_FDS_START + i);
            close(high[i]);
        }
        char text[32];
        snprintf(text, sizeof text, "%d", count);
        setenv("LISTEN_FDS", text, 1);
        snprintf(text, sizeof text, "%ld", (long)getpid());
        setenv("LISTEN_PID", text, 1); /* exec keeps the pid */
        if (names)
            setenv("LISTEN_FDNAMES", names, 1);
        else
            unsetenv("LISTEN_FDNAMES");
        execv(argv[0], argv);
        _exit(127);
    }
    close(out);
    for (int i = 0; i < count; i++)
        close(sockets[i]);
}

/* SIGTERM, and the exit status: the programs leave with 0 after it. */
static int stop_program(program *p)
{
    kill(p->pid, SIGTERM);
    return wait_exit_or_kill(p->pid, 20.0);
}

/* The program's output, NUL-terminated, in a static buffer; the file is
 * removed. */
static const char *program_output(program *p)
{
    static char text[4096];
    FILE *f = fopen(p->output, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(p->output);
    return text;
}

static int connect_tcp(int port)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    int fd = test_connect_address(address, SOCK_STREAM);
    assert_true(fd >= 0);
    return fd;
}

/* One HTTP/1.0 GET over fd; the whole response, NUL-terminated. */
static const char *http_get(int fd, const char *path)
{
    static char response[8192];
    char request[256];
    snprintf(request, sizeof request, "GET %s HTTP/1.0\r\n\r\n", path);
    test_send_all(fd, request, strlen(request));
    size_t n = test_recv_all(fd, response, sizeof response - 1);
    response[n] = '\0';
    close(fd);
    return response;
}

static void assert_http_ok(const char *response)
{
    int status = 0;
    assert_int_equal(sscanf(response, "HTTP/1.%*d %d", &status), 1);
    assert_int_equal(status, 200);
}

/* The directory sockserv-httpd serves: one file. */
static char www_dir[64];

static int make_www(void **state)
{
    (void)state;
    strcpy(www_dir, "/tmp/sockserv-activation-www-XXXXXX");
    if (mkdtemp(www_dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/hello.txt", www_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs("hello from a passed socket\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

static int remove_www(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/hello.txt", www_dir);
    unlink(path);
    rmdir(www_dir);
    return 0;
}

static void test_httpd_serves_on_passed_socket_in_every_mode(void **state)
{
    (void)state;
    static const char *const modes[] = {"thread", "fork", "prefork", "coro"};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        print_message("mode %s\n", modes[m]);
        int port;
        int sock = inet_socket(SOCK_STREAM, true, &port);
        program p;
        /* "0" and -b would make it bind elsewhere if it ignored the
         * passed socket: then nothing would answer on port. */
        char *argv[] = {SOCKSERV_HTTPD_PATH,
                        "--mode",
                        (char *)modes[m],
                        "--workers",
                        "2",
                        "-d",
                        www_dir,
                        "-q",
                        "-b",
                        "127.0.0.1",
                        "0",
                        NULL};
        spawn_activated(&p, argv, &sock, 1, "http");
        const char *response = http_get(connect_tcp(port), "/hello.txt");
        assert_http_ok(response);
        assert_non_null(strstr(response, "hello from a passed socket\n"));
        int status = stop_program(&p);
        const char *output = program_output(&p);
        print_message("%s", output);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_non_null(strstr(output, "socket activation"));
        assert_non_null(strstr(output, "ignored"));
    }
}

static void test_httpd_serves_on_passed_unix_socket(void **state)
{
    (void)state;
    char address[128];
    int sock = unix_socket(SOCK_STREAM, true, address, sizeof address, "httpd");
    program p;
    char *argv[] = {SOCKSERV_HTTPD_PATH, "-d", www_dir, NULL};
    spawn_activated(&p, argv, &sock, 1, NULL);
    int c = test_connect_address(address, SOCK_STREAM);
    assert_true(c >= 0);
    const char *response = http_get(c, "/hello.txt");
    assert_http_ok(response);
    int status = stop_program(&p);
    const char *output = program_output(&p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(output, address)); /* "Serving HTTP on unix:" */
    assert_null(strstr(output, "ignored"));   /* no address was given */
    assert_true(path_exists(test_unix_path(address))); /* not its file */
    unlink(test_unix_path(address));
}

static void test_httpd_refuses_passed_datagram_socket(void **state)
{
    (void)state;
    int port;
    int sock = inet_socket(SOCK_DGRAM, false, &port);
    program p;
    char *argv[] = {SOCKSERV_HTTPD_PATH, "-d", www_dir, NULL};
    spawn_activated(&p, argv, &sock, 1, "http");
    int status = wait_exit_or_kill(p.pid, 20.0);
    const char *output = program_output(&p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(output, "needs a stream socket"));
}

static void test_echo_serves_on_passed_stream_socket(void **state)
{
    (void)state;
    int port;
    int sock = inet_socket(SOCK_STREAM, true, &port);
    program p;
    char *argv[] = {
        SOCKSERV_ECHO_PATH, "--mode", "coro", "--threads", "2", "0", NULL};
    spawn_activated(&p, argv, &sock, 1, "echo");
    int c = connect_tcp(port);
    test_expect_echo_to_eof(c, "echo over a passed socket\n");
    close(c);
    int status = stop_program(&p);
    const char *output = program_output(&p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(output, "ignored"));
}

static void test_echo_serves_on_passed_udp_socket_with_udp(void **state)
{
    (void)state;
    int port;
    int sock = inet_socket(SOCK_DGRAM, false, &port);
    program p;
    char *argv[] = {SOCKSERV_ECHO_PATH, "--udp", "--mode", "thread", NULL};
    spawn_activated(&p, argv, &sock, 1, NULL);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    int c = test_connect_address(address, SOCK_DGRAM);
    assert_true(c >= 0);
    test_expect_echo(c, "a datagram");
    close(c);
    int status = stop_program(&p);
    program_output(&p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_echo_refuses_socket_of_the_other_type(void **state)
{
    (void)state;
    int port;
    int sock = inet_socket(SOCK_STREAM, true, &port);
    program p;
    char *argv[] = {SOCKSERV_ECHO_PATH, "--udp", NULL};
    spawn_activated(&p, argv, &sock, 1, NULL);
    int status = wait_exit_or_kill(p.pid, 20.0);
    const char *output = program_output(&p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(output, "is a stream socket"));
}

static void test_echo_picks_the_socket_named_echo(void **state)
{
    (void)state;
    int other_port, echo_port;
    int sockets[2] = {inet_socket(SOCK_STREAM, true, &other_port),
                      inet_socket(SOCK_STREAM, true, &echo_port)};
    program p;
    char *argv[] = {SOCKSERV_ECHO_PATH, "--mode", "thread", NULL};
    spawn_activated(&p, argv, sockets, 2, "metrics:echo");
    int c = connect_tcp(echo_port);
    test_expect_echo_to_eof(c, "by name\n");
    close(c);
    int status = stop_program(&p);
    const char *output = program_output(&p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(output, "descriptor 4 (\"echo\")"));
}

static void test_malformed_activation_variables_stop_the_program(void **state)
{
    (void)state;
    int port;
    int sock = inet_socket(SOCK_STREAM, true, &port);
    program p;
    char *argv[] = {SOCKSERV_ECHO_PATH, NULL};
    /* Two names for one descriptor. */
    spawn_activated(&p, argv, &sock, 1, "echo:extra");
    int status = wait_exit_or_kill(p.pid, 20.0);
    const char *output = program_output(&p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(output, "socket activation"));
}

/* Not socket activation, but the program this file already runs: a
 * --bind mistake is a usage error, exit status 2, naming it. */
static void expect_usage_error(const char *const argv[], const char *message)
{
    char err[4096];
    assert_int_equal(program_run(argv, err, sizeof err), 2);
    if (strstr(err, message) == NULL)
        fail_msg("expected \"%s\" in:\n%s", message, err);
}

static void test_echo_bind_address_mistakes_are_usage_errors(void **state)
{
    (void)state;
    const char *old_form[] = {SOCKSERV_ECHO_PATH, "--bind", "127.1", "0", NULL};
    expect_usage_error(old_form, "'127.1' is not an IP address or host name");
    const char *with_port[] = {SOCKSERV_ECHO_PATH, "--bind", "127.0.0.1:80",
                               "0", NULL};
    expect_usage_error(with_port, "give the host only; the port is the PORT");
    const char *unix_path[] = {SOCKSERV_ECHO_PATH, "--bind", "unix:/tmp/x", "0",
                               NULL};
    expect_usage_error(unix_path, "for a Unix socket use --unix PATH");
    /* .invalid never resolves (RFC 6761): a fast answer, no traffic. */
    const char *unknown[] = {SOCKSERV_ECHO_PATH,   "--udp", "--bind",
                             "nosuchhost.invalid", "0",     NULL};
    expect_usage_error(unknown, "host not found: nosuchhost.invalid");
}

#endif /* the programs */

int main(void)
{
    const struct CMUnitTest library[] = {
        cmocka_unit_test(test_adopted_tcp_socket_serves_under_every_strategy),
        cmocka_unit_test(test_adopted_socket_reports_the_bound_address),
        cmocka_unit_test(test_adopted_socket_is_made_nonblocking_and_cloexec),
        cmocka_unit_test(test_bound_socket_not_listening_gets_listened),
        cmocka_unit_test(test_adopted_udp_socket_serves),
        cmocka_unit_test(test_adopted_unix_stream_socket_file_is_not_unlinked),
        cmocka_unit_test(test_adopted_unix_datagram_socket_serves),
        cmocka_unit_test(
            test_socket_that_does_not_fit_the_kind_is_refused_and_kept),
        cmocka_unit_test(test_descriptor_that_is_no_socket_is_refused),
        cmocka_unit_test(test_unbound_or_connected_socket_is_refused_and_kept),
        cmocka_unit_test(test_bad_arguments_are_refused_and_fd_kept),
    };
#define PROTOCOL_TEST(f)                                                       \
    cmocka_unit_test_setup_teardown(f, protocol_setup, protocol_teardown)
    const struct CMUnitTest protocol[] = {
        PROTOCOL_TEST(test_listen_fds_without_variables_is_not_activation),
        PROTOCOL_TEST(test_listen_fds_for_another_process_is_not_activation),
        PROTOCOL_TEST(test_listen_fds_counts_passed_sockets_and_marks_cloexec),
        PROTOCOL_TEST(test_listen_fds_unset_environment_clears_variables),
        PROTOCOL_TEST(test_listen_fds_rejects_malformed_values),
        PROTOCOL_TEST(test_listen_fds_count_past_open_descriptors_is_ebadf),
        PROTOCOL_TEST(test_listen_fds_with_names_returns_one_name_each),
        PROTOCOL_TEST(test_listen_fds_without_names_are_unknown),
        PROTOCOL_TEST(test_listen_fds_with_wrong_number_of_names_is_einval),
        PROTOCOL_TEST(test_passed_socket_serves_through_the_protocol),
    };
    int failed =
        cmocka_run_group_tests_name("ss_server_new_fd", library, NULL, NULL);
    failed += cmocka_run_group_tests_name("LISTEN_FDS", protocol, NULL, NULL);
#if defined(SOCKSERV_HTTPD_PATH) && defined(SOCKSERV_ECHO_PATH)
    const struct CMUnitTest programs[] = {
        cmocka_unit_test(test_httpd_serves_on_passed_socket_in_every_mode),
        cmocka_unit_test(test_httpd_serves_on_passed_unix_socket),
        cmocka_unit_test(test_httpd_refuses_passed_datagram_socket),
        cmocka_unit_test(test_echo_serves_on_passed_stream_socket),
        cmocka_unit_test(test_echo_serves_on_passed_udp_socket_with_udp),
        cmocka_unit_test(test_echo_refuses_socket_of_the_other_type),
        cmocka_unit_test(test_echo_picks_the_socket_named_echo),
        cmocka_unit_test(test_malformed_activation_variables_stop_the_program),
        cmocka_unit_test(test_echo_bind_address_mistakes_are_usage_errors),
    };
    failed +=
        cmocka_run_group_tests_name("programs", programs, make_www, remove_www);
#endif
    return failed;
}
