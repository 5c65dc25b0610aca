/*
 * tls_server.h — the server side of TLS in the example programs, as
 * Python 3.14's http.server spells it: --tls-cert, --tls-key and
 * --tls-password-file. Shared by sockserv-httpd, sockserv-fileserver and
 * sockserv-chat (examples/echo/echo.c has its own few lines, so that it
 * stays one file).
 *
 *     case OPT_TLS_CERT: o->tls.cert = value; break;   ... and so on
 *     tls_server_check_args(&c, &o->tls);              after cli_finish()
 *     ...
 *     if (o.tls.cert && tls_server_open(prog, &o.tls) < 0) exit(1);
 *     ss_server_new(&srv, tls_server_kind(&ss_tcp), ...);
 *     tls_server_attach(srv);
 *     ... serve ...
 *     ss_server_free(srv);
 *     tls_server_close();
 *
 * One TLS context per program (the programs serve one server each).
 * SIGHUP reloads the files (a renewed certificate) without a restart: the
 * signal handler only sets a flag, and the server kind's service_actions
 * hook — run by the serve loop, or by the prefork supervisor — calls
 * ss_tls_context_reload(), which also reaches forked children and prefork
 * workers.
 */
#ifndef SOCKSERV_EXAMPLES_TLS_SERVER_H
#define SOCKSERV_EXAMPLES_TLS_SERVER_H

#include <sockserv/sockserv.h>

#include <stdbool.h>

#include "cli.h"

/* The three options as given; all NULL: no TLS. */
typedef struct tls_server_args {
    const char *cert, *key, *password_file;
} tls_server_args;

/* After cli_finish(): --tls-key and --tls-password-file need --tls-cert,
 * and --tls-cert needs a library built with TLS. Usage errors (exit
 * status 2) otherwise. */
void tls_server_check_args(const cli *c, const tls_server_args *args);

/* The TLS context from args (args->cert set), and SIGHUP set to reload
 * it. prog names the program in its lines. Returns 0, or -1 after saying
 * why. */
int tls_server_open(const char *prog, const tls_server_args *args);
/* Whether tls_server_open() made a context. */
bool tls_server_on(void);
/* Serve srv's connections over TLS (nothing without a context). Returns
 * 0, or -1 after saying why. */
int tls_server_attach(ss_server *srv);
/* The server kind to make the server with: base itself, or with TLS a
 * copy of it whose service_actions (after base's own) reloads the
 * certificate after SIGHUP. base must outlive the server. */
const ss_server_class *tls_server_kind(const ss_server_class *base);
/* Free the context: after ss_server_free(). */
void tls_server_close(void);

#endif /* SOCKSERV_EXAMPLES_TLS_SERVER_H */
