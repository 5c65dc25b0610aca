/*
 * program_run.h — run an example program that is expected to stop by
 * itself (a command-line mistake), and collect its exit status and what
 * it wrote to stderr. Header-only, for the tests that spawn the example
 * binaries (test_httpd.c, test_fileserver.c, test_chatroom.c, test_lab.c,
 * test_socket_activation.c). Its clock is test_now() (process.h, in the
 * sockserv_test_support library every test links).
 */
#ifndef SOCKSERV_TESTS_PROGRAM_RUN_H
#define SOCKSERV_TESTS_PROGRAM_RUN_H

#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Runs argv[0] with argv (NULL-terminated), stdin and stdout on
 * /dev/null, and stderr into err (NUL-terminated, cut to size - 1).
 * Returns the exit status, or -1 if it did not exit within 10 s (it is
 * then killed) or was killed by a signal. */
static int program_run(const char *const argv[], char *err, size_t size)
{
    int fds[2];
    err[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    double deadline = test_now() + 10.0;
    for (;;) { /* until EOF: the program has ended (or closed stderr) */
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int left_ms = (int)((deadline - test_now()) * 1000);
        if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0)
            break;
        char buf[512];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0)
            break;
        size_t keep = (size_t)n < size - 1 - len ? (size_t)n : size - 1 - len;
        memcpy(err + len, buf, keep);
        len += keep;
    }
    err[len] = '\0';
    close(fds[0]);
    int status = -1;
    while (test_now() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        usleep(2000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

#endif
