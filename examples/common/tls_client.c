/*
 * tls_client.c — the example clients' TLS (tls_client.h): OpenSSL on a
 * connected blocking socket, verifying the server as a browser would
 * (its chain against a CA file or the system's store, and its name).
 * Without OpenSSL (SOCKSERV_TLS=OFF: EXAMPLES_TLS undefined) every
 * connection attempt says that the program was built without it.
 */
#include "tls_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef EXAMPLES_TLS

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <string.h>

struct tls_client {
    SSL_CTX *ctx;
    SSL *ssl;
    bool failed; /* no close_notify after a fatal error */
};

bool tls_client_available(void)
{
    return true;
}

/* OpenSSL's oldest queued error as text, or fallback; clears the queue. */
static void openssl_reason(char *why, size_t size, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        char text[256];
        ERR_error_string_n(e, text, sizeof text);
        snprintf(why, size, "%s", text);
    } else {
        snprintf(why, size, "%s", fallback);
    }
    ERR_clear_error();
}

/* Why SSL_connect() failed, in words a user can act on. */
static void handshake_reason(SSL *ssl, int ret, char *why, size_t size)
{
    long verify = SSL_get_verify_result(ssl);
    int err = SSL_get_error(ssl, ret);
    if (verify != X509_V_OK) {
        snprintf(why, size, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
    } else if (err == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) {
        int e = errno;
        snprintf(why, size, "%s",
                 e == 0 ? "the server closed the connection during the "
                          "handshake (is it serving TLS?)"
                 : e == EAGAIN || e == EWOULDBLOCK ? "handshake timed out"
                                                   : strerror(e));
    } else if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        snprintf(why, size, "handshake timed out");
    } else {
        openssl_reason(why, size, "handshake failed");
    }
}

tls_client *tls_client_open(int fd, const char *host, const char *cafile,
                            bool polled, char *why, size_t size)
{
    /* A write to a connection the server closed must be an error, not
     * the end of the program: OpenSSL writes with write(), not with
     * send(MSG_NOSIGNAL). */
    signal(SIGPIPE, SIG_IGN);
    tls_client *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(why, size, "out of memory");
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL) {
        openssl_reason(why, size, "cannot make a TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    /* A close without close_notify reads as the end of the stream: the
     * protocols above say themselves how much is to come. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    int loaded = cafile ? SSL_CTX_load_verify_locations(t->ctx, cafile, NULL)
                        : SSL_CTX_set_default_verify_paths(t->ctx);
    if (loaded != 1) {
        char reason[200];
        openssl_reason(reason, sizeof reason, "no certificate in it");
        FILE *f = cafile ? fopen(cafile, "r") : NULL;
        if (cafile && f == NULL) /* say why, rather than "system lib" */
            snprintf(reason, sizeof reason, "%s", strerror(errno));
        if (f)
            fclose(f);
        snprintf(why, size, "cannot use %s: %s",
                 cafile ? cafile : "the system's CA certificates", reason);
        goto fail;
    }
    if (polled) /* a record without data must not block SSL_read() */
        SSL_CTX_clear_mode(t->ctx, SSL_MODE_AUTO_RETRY);

    t->ssl = SSL_new(t->ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1) {
        openssl_reason(why, size, "cannot make a TLS connection");
        goto fail;
    }
    /* The certificate must name the host: an IP address when the host is
     * one (then no SNI, which names hosts only), else a DNS name, also
     * sent as SNI for servers with more than one certificate. */
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, host, addr) == 1 ||
                 inet_pton(AF_INET6, host, addr) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host)
                   : SSL_set1_host(t->ssl, host) &&
                         SSL_set_tlsext_host_name(t->ssl, host);
    if (ok != 1) {
        openssl_reason(why, size, "cannot set the server name");
        goto fail;
    }
    ERR_clear_error();
    errno = 0;
    int ret = SSL_connect(t->ssl);
    if (ret != 1) {
        handshake_reason(t->ssl, ret, why, size);
        goto fail;
    }
    return t;
fail:
    t->failed = true;
    tls_client_close(t);
    return NULL;
}

/* -errno for a failed SSL_read/SSL_write that returned ret. */
static int io_error(tls_client *t, int ret)
{
    int err = SSL_get_error(t->ssl, ret);
    int e = errno;
    ERR_clear_error();
    switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -EAGAIN; /* SO_RCVTIMEO/SO_SNDTIMEO, or polled */
    case SSL_ERROR_SYSCALL:
        t->failed = true;
        return e != 0 ? -e : -ECONNRESET;
    default:
        t->failed = true;
        return -EPROTO;
    }
}

int tls_client_send(tls_client *t, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        size_t written;
        errno = 0;
        int ret = SSL_write_ex(t->ssl, p, n, &written);
        if (ret != 1) {
            int rc = io_error(t, ret);
            if (rc == -EINTR)
                continue;
            return rc;
        }
        p += written;
        n -= written;
    }
    return 0;
}

ssize_t tls_client_recv(tls_client *t, void *buf, size_t n)
{
    for (;;) {
        size_t got;
        errno = 0;
        int ret = SSL_read_ex(t->ssl, buf, n, &got);
        if (ret == 1)
            return (ssize_t)got;
        if (SSL_get_error(t->ssl, ret) == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            return 0;
        }
        int rc = io_error(t, ret);
        if (rc != -EINTR)
            return rc;
    }
}

bool tls_client_pending(const tls_client *t)
{
    return SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl);
}

void tls_client_close(tls_client *t)
{
    if (t == NULL)
        return;
    if (t->ssl != NULL && !t->failed) {
        SSL_shutdown(t->ssl); /* our close_notify; theirs is not awaited */
        ERR_clear_error();
    }
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    free(t);
}

#else /* no OpenSSL */

bool tls_client_available(void)
{
    return false;
}

tls_client *tls_client_open(int fd, const char *host, const char *cafile,
                            bool polled, char *why, size_t size)
{
    (void)fd, (void)host, (void)cafile, (void)polled;
    snprintf(why, size,
             "built without TLS (libsockserv configured with "
             "SOCKSERV_TLS=OFF)");
    return NULL;
}

int tls_client_send(tls_client *t, const void *buf, size_t n)
{
    (void)t, (void)buf, (void)n;
    return -ENOTSUP;
}

ssize_t tls_client_recv(tls_client *t, void *buf, size_t n)
{
    (void)t, (void)buf, (void)n;
    return -ENOTSUP;
}

bool tls_client_pending(const tls_client *t)
{
    (void)t;
    return false;
}

void tls_client_close(tls_client *t)
{
    (void)t;
}

#endif
