/*
 * tls_server.c — --tls-cert, --tls-key and --tls-password-file of the
 * example servers (tls_server.h): a TLS context (sockserv/tls.h) that the
 * server serves every connection through, in whatever mode; the handler
 * does not know. SIGHUP reloads the files (a renewed certificate) without
 * a restart: the signal handler only sets a flag, and the server kind's
 * service_actions hook — run by the serve loop, or by the prefork
 * supervisor — calls ss_tls_context_reload(), which also reaches forked
 * children and prefork workers.
 */
#include "tls_server.h"

#include <sockserv/tls.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static ss_tls_context *tls;
static const char *program;
static const char *cert_path;
static volatile sig_atomic_t reload_requested;
/* The kind tls_server_kind() copied: its service_actions runs first. */
static const ss_server_class *super;

static void on_sighup(int signo)
{
    (void)signo;
    reload_requested = 1;
}

void tls_server_check_args(const cli *c, const tls_server_args *args)
{
    if (args->key && !args->cert)
        cli_error(c, "--tls-key requires --tls-cert to be set");
    if (args->password_file && !args->cert)
        cli_error(c, "--tls-password-file requires --tls-cert to be set");
    /* Said before anything starts, rather than by the library's -ENOTSUP
     * once the port is bound. */
    if (args->cert && !ss_tls_available())
        cli_error(c, "argument --tls-cert: libsockserv was built without TLS "
                     "(OpenSSL; SOCKSERV_TLS=OFF)");
}

int tls_server_open(const char *prog, const tls_server_args *args)
{
    ss_tls_options options = {
        .cert_file = args->cert,
        .key_file = args->key,
        .password_file = args->password_file,
    };
    program = prog;
    int rc = ss_tls_context_new(&tls, &options);
    if (rc < 0) {
        /* The library's own line said which file and why. */
        fprintf(stderr, "%s: cannot serve TLS: %s%s\n", prog, ss_strerror(rc),
                rc == -ENOTSUP ? " (libsockserv was built without OpenSSL)"
                               : "");
        return -1;
    }
    cert_path = args->cert;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

bool tls_server_on(void)
{
    return tls != NULL;
}

int tls_server_attach(ss_server *srv)
{
    if (!tls)
        return 0;
    int rc = ss_server_set_tls(srv, tls);
    if (rc < 0)
        fprintf(stderr, "%s: cannot serve TLS: %s\n", program, ss_strerror(rc));
    return rc < 0 ? -1 : 0;
}

/* After SIGHUP: in the serving process (and in a prefork worker that got
 * the signal too); the others follow through the context. */
static void reload_if_asked(ss_server *srv)
{
    if (super->service_actions)
        super->service_actions(srv); /* super() */
    if (!reload_requested)
        return;
    reload_requested = 0;
    int rc = ss_tls_context_reload(tls);
    if (rc == 0)
        printf("%s: SIGHUP: TLS certificate reloaded from %s\n", program,
               cert_path);
    else
        fprintf(stderr,
                "%s: SIGHUP: TLS reload failed (%s); still serving the "
                "certificate loaded before\n",
                program, ss_strerror(rc));
    fflush(stdout);
}

const ss_server_class *tls_server_kind(const ss_server_class *base)
{
    static ss_server_class kind;
    if (!tls)
        return base;
    super = base;
    kind = *base; /* "subclassing": copy, then override */
    kind.service_actions = reload_if_asked;
    return &kind;
}

void tls_server_close(void)
{
    ss_tls_context_free(tls);
    tls = NULL;
}
