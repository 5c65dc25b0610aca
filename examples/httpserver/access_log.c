/*
 * access_log.c — sockserv-httpd's access log: --access-log FILE (default
 * stderr), --access-log-buffer SIZE and --access-log-flush SECONDS, made
 * into the library's buffered log (sockserv/access_log.h), and SIGHUP,
 * which reopens FILE after logrotate renamed it.
 *
 * Defaults: 64 KiB per thread, written at least every second, as nginx's
 * `buffer=64k flush=1s`; on a terminal (stderr, nothing given) each line
 * at once, as Python's http.server prints them. -q opens nothing.
 *
 * SIGHUP may also be ../common/tls_server.c's (certificate reload): the
 * handler here calls the one installed before it, so both happen on one
 * signal. The log is made before the server forks, so forked children and
 * prefork workers share it; the reopen reaches them through the log
 * itself.
 */
#include "httpd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ss_access_log *access_log;
static bool sighup_installed;
static struct sigaction previous_sighup;

static void on_sighup(int signo)
{
    ss_access_log_reopen(access_log); /* async-signal-safe */
    if (previous_sighup.sa_handler != SIG_DFL &&
        previous_sighup.sa_handler != SIG_IGN &&
        !(previous_sighup.sa_flags & SA_SIGINFO))
        previous_sighup.sa_handler(signo);
}

int httpd_log_size(const char *text, long *size)
{
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || end == text || value < 0)
        return -1;
    long long unit = 1;
    if (*end == 'k' || *end == 'K')
        unit = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        unit = 1024 * 1024, end++;
    if (*end != '\0' || value > HTTPD_LOG_MAX_BUFFER / unit)
        return -1;
    *size = (long)(value * unit);
    return 0;
}

int httpd_log_open(const char *path, long buffer, double flush,
                   ss_access_log **out)
{
    ss_access_log_options options = {.flush_interval = flush};
    if (buffer == 0 || (buffer < 0 && !path && isatty(STDERR_FILENO)))
        options.unbuffered = true;
    else if (buffer > 0)
        options.buffer_size = (size_t)buffer;
    int rc = path ? ss_access_log_open(&access_log, path, &options)
                  : ss_access_log_open_fd(&access_log, STDERR_FILENO, &options);
    if (rc < 0) {
        fprintf(stderr, "sockserv-httpd: cannot open the access log %s: %s\n",
                path ? path : "(stderr)", ss_strerror(rc));
        return -1;
    }
    if (path) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sighup;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sighup_installed = sigaction(SIGHUP, &sa, &previous_sighup) == 0;
    }
    *out = access_log;
    return 0;
}

void httpd_log_close(void)
{
    if (sighup_installed)
        sigaction(SIGHUP, &previous_sighup, NULL);
    int rc = ss_access_log_close(access_log);
    access_log = NULL;
    if (rc < 0)
        fprintf(stderr, "sockserv-httpd: access log: %s\n", ss_strerror(rc));
}
