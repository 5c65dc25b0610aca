/*
 * tls_disabled.c — sockserv/tls.h in a library built without OpenSSL
 * (-DSOCKSERV_TLS=OFF, or AUTO where OpenSSL 3 was not found): every call
 * says -ENOTSUP, so a program can ask ss_tls_available() or simply try,
 * and link the same either way.
 */
#include <errno.h>

#include "sockserv/tls.h"

bool ss_tls_available(void)
{
    return false;
}

int ss_tls_context_new(ss_tls_context **out, const ss_tls_options *options)
{
    (void)options;
    if (out)
        *out = NULL;
    return -ENOTSUP;
}

int ss_tls_context_add_certificate(ss_tls_context *ctx, const char *cert_file,
                                   const char *key_file,
                                   const char *password_file)
{
    (void)ctx;
    (void)cert_file;
    (void)key_file;
    (void)password_file;
    return -ENOTSUP;
}

int ss_tls_context_reload(ss_tls_context *ctx)
{
    (void)ctx;
    return -ENOTSUP;
}

void ss_tls_context_free(ss_tls_context *ctx)
{
    (void)ctx;
}

int ss_server_set_tls(ss_server *srv, ss_tls_context *ctx)
{
    (void)srv;
    (void)ctx;
    return -ENOTSUP;
}

int ss_request_tls_info(const ss_request *req, ss_tls_info *info)
{
    (void)req;
    (void)info;
    return -ENOTSUP;
}

int ss_request_tls_peer_subject(const ss_request *req, char *buf, size_t size)
{
    (void)req;
    (void)buf;
    (void)size;
    return -ENOTSUP;
}
