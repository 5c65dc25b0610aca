/*
 * https.c — sockserv-httpd's HTTPS, as Python 3.14's http.server has it:
 * --tls-cert, --tls-key and --tls-password-file make a TLS context
 * (sockserv/tls.h) that the server serves every connection through, in
 * whatever --mode; the handler does not know. SIGHUP reloads the files
 * (a renewed certificate) without a restart: the signal handler only
 * sets a flag, and the server kind's service_actions hook — run by the
 * serve loop, or by the prefork supervisor — calls ss_tls_context_reload(),
 * which also reaches forked children and prefork workers.
 */
#include "../httpserver/httpd.h"

#include <sockserv/tls.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static ss_tls_context *tls;
static const char *cert_path;
static volatile sig_atomic_t reload_requested;

static void on_sighup(int signo)
{
    (void)signo;
    reload_requested = 1;
}

int httpd_tls_open(const char *cert, const char *key, const char *password_file)
{
    ss_tls_options options = {
        .cert_file = cert,
        .key_file = key,
        .password_file = password_file,
    };
    int rc = ss_tls_context_new(&tls, &options);
    if (rc < 0) {
        /* The library's own line said which file and why. */
        fprintf(stderr, "sockserv-httpd: cannot serve HTTPS: %s%s\n",
                ss_strerror(rc),
                rc == -ENOTSUP ? " (libsockserv was built without OpenSSL)"
                               : "");
        return -1;
    }
    cert_path = cert;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

bool httpd_tls_on(void)
{
    return tls != NULL;
}

int httpd_tls_attach(ss_server *srv)
{
    if (!tls)
        return 0;
    int rc = ss_server_set_tls(srv, tls);
    if (rc < 0)
        fprintf(stderr, "sockserv-httpd: cannot serve HTTPS: %s\n",
                ss_strerror(rc));
    return rc < 0 ? -1 : 0;
}

/* After SIGHUP: in the serving process (and in a prefork worker that got
 * the signal too); the others follow through the context. */
static void reload_if_asked(ss_server *srv)
{
    (void)srv;
    if (!reload_requested)
        return;
    reload_requested = 0;
    int rc = ss_tls_context_reload(tls);
    if (rc == 0)
        printf("sockserv-httpd: SIGHUP: TLS certificate reloaded from %s\n",
               cert_path);
    else
        fprintf(stderr,
                "sockserv-httpd: SIGHUP: TLS reload failed (%s); still "
                "serving the certificate loaded before\n",
                ss_strerror(rc));
    fflush(stdout);
}

const ss_server_class *httpd_kind(const ss_server_class *base)
{
    static ss_server_class tcp, unix_stream;
    if (!tls)
        return base;
    ss_server_class *kind = base == &ss_unix_stream ? &unix_stream : &tcp;
    *kind = *base; /* "subclassing": copy, then override */
    kind->service_actions = reload_if_asked;
    return kind;
}

void httpd_tls_close(void)
{
    ss_tls_context_free(tls);
    tls = NULL;
}
