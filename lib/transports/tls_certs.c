/*
 * tls_certs.c — certificate sets: one SSL_CTX per certificate of a
 * snapshot (tls_internal.h), every one with the context's settings, the
 * first one the default and its SNI callback choosing among the rest.
 *
 * Everything is loaded from the snapshot's bytes, never from the files:
 * the process that read the files and every process that builds from the
 * same snapshot later get the same certificates. The settings: TLS 1.2
 * at least, renegotiation off, a peer's EOF without close_notify taken as
 * the end of its stream, partial writes (as send() has them) with a
 * buffer that may move between retries (the core's write buffer does),
 * buffers released while a connection is idle (10,000 idle connections
 * under coroutines cost what the SSL objects cost, not 34 KiB more each),
 * the context's session-ticket keys (so every process resumes every
 * other's sessions), ALPN, client verification, kernel TLS when wanted.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_internal.h"

/* The first error OpenSSL queued, in words ("no start line"), and the
 * queue emptied. */
static const char *openssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (reason)
        snprintf(buf, size, "%s", reason);
    else if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "no PEM data found");
    ERR_clear_error();
    return buf;
}

/* The end of the PEM blocks is the "no start line" of the next read:
 * expected, not an error. */
static bool only_end_of_pem(void)
{
    unsigned long e = ERR_peek_last_error();
    bool end = e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM &&
                          ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    if (end)
        ERR_clear_error();
    return end;
}

/* OpenSSL asks for the key's password through this; NULL userdata (no
 * password file) answers with none, so OpenSSL never prompts. */
static int password_callback(char *buf, int size, int rwflag, void *userdata)
{
    (void)rwflag;
    const char *password = userdata;
    if (!password || size <= 0)
        return 0;
    size_t len = strlen(password);
    if (len > (size_t)size)
        len = (size_t)size;
    memcpy(buf, password, len);
    return (int)len;
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    const ss_tls_context *ctx = arg;
    unsigned char *chosen;
    /* The server's list first: its order decides. */
    if (SSL_select_next_proto(&chosen, outlen, ctx->alpn,
                              (unsigned int)ctx->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* serve without ALPN */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: the first certificate of the set whose names match the client's
 * server name; none matching keeps the default (ctx[0]). */
static int sni_select(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    ss__tls_certs *certs = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || certs->count < 2)
        return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < certs->count; i++) {
        X509 *cert = SSL_CTX_get0_certificate(certs->ctx[i]);
        if (cert && X509_check_host(cert, name, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, certs->ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* The certificate, then its chain, as SSL_CTX_use_certificate_chain_file
 * reads a file. */
static int load_chain(const ss_tls_context *ctx, SSL_CTX *c,
                      const ss__tls_pem *pem)
{
    char why[256];
    BIO *bio = BIO_new_mem_buf(pem->data, (int)pem->len);
    if (!bio)
        return -ENOMEM;
    int rc = 0;
    X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    if (!leaf || SSL_CTX_use_certificate(c, leaf) != 1) {
        ss__tls_log(ctx, "cannot load the certificate chain %s: %s",
                    pem->path, openssl_reason(why, sizeof why));
        rc = -EINVAL;
    }
    X509_free(leaf);
    SSL_CTX_clear_chain_certs(c);
    X509 *ca;
    while (rc == 0 && (ca = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (SSL_CTX_add0_chain_cert(c, ca) != 1) {
            X509_free(ca);
            rc = -ENOMEM;
        }
    }
    if (rc == 0 && !only_end_of_pem()) {
        ss__tls_log(ctx, "cannot load the certificate chain %s: %s",
                    pem->path, openssl_reason(why, sizeof why));
        rc = -EINVAL;
    }
    BIO_free(bio);
    return rc;
}

static int load_key(const ss_tls_context *ctx, SSL_CTX *c,
                    const ss__tls_cert_files *f)
{
    const ss__tls_pem *pem = f->key.data ? &f->key : &f->cert;
    char why[256];
    BIO *bio = BIO_new_mem_buf(pem->data, (int)pem->len);
    if (!bio)
        return -ENOMEM;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, password_callback,
                                            (void *)f->password);
    BIO_free(bio);
    if (!key) {
        unsigned long e = ERR_peek_error();
        /* Which error OpenSSL queues first for an encrypted key without
         * its password varies ("unsupported" in one build): the file's
         * own "ENCRYPTED" marker says it too. */
        bool decrypt = ERR_GET_LIB(e) == ERR_LIB_PEM ||
                       ERR_GET_REASON(e) == EVP_R_BAD_DECRYPT ||
                       memmem(pem->data, pem->len, "ENCRYPTED", 9) != NULL;
        /* OpenSSL 3's decoders say "unsupported" for a file without a
         * key (a certificate alone, as key_file == NULL reads): look. */
        bool none = (ERR_GET_LIB(e) == ERR_LIB_PEM &&
                     ERR_GET_REASON(e) == PEM_R_NO_START_LINE) ||
                    !memmem(pem->data, pem->len, "PRIVATE KEY-----", 16);
        openssl_reason(why, sizeof why);
        ss__tls_log(ctx, "cannot load the private key %s: %s%s", pem->path,
                    none ? "no private key in it" : why,
                    none && !f->key.data
                        ? " (no key file given: the certificate file must "
                          "hold the key too)"
                    : none || !decrypt ? ""
                    : f->password      ? " (wrong password?)"
                                       : " (encrypted? give a password file)");
        return -EINVAL;
    }
    int ok = SSL_CTX_use_PrivateKey(c, key);
    EVP_PKEY_free(key);
    if (ok != 1 || SSL_CTX_check_private_key(c) != 1) {
        ERR_clear_error();
        ss__tls_log(ctx, "the private key %s does not match the certificate %s",
                    pem->path, f->cert.path);
        return -EINVAL;
    }
    return 0;
}

static int name_cmp(const X509_NAME *const *a, const X509_NAME *const *b)
{
    return X509_NAME_cmp(*a, *b);
}

/* The CAs client certificates must chain to, and the names the server
 * sends in its certificate request. */
static int load_client_cas(const ss_tls_context *ctx, SSL_CTX *c,
                           const ss__tls_pem *pem)
{
    char why[256];
    BIO *bio = BIO_new_mem_buf(pem->data, (int)pem->len);
    STACK_OF(X509_INFO) *infos =
        bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new(name_cmp);
    X509_STORE *store = SSL_CTX_get_cert_store(c);
    int found = 0, rc = 0;
    for (int i = 0; infos && names && i < sk_X509_INFO_num(infos); i++) {
        X509 *x = sk_X509_INFO_value(infos, i)->x509;
        if (!x)
            continue;
        found++;
        X509_NAME *name = X509_get_subject_name(x);
        if (X509_STORE_add_cert(store, x) != 1 ||
            (sk_X509_NAME_find(names, name) < 0 &&
             !sk_X509_NAME_push(names, X509_NAME_dup(name)))) {
            rc = -ENOMEM;
            break;
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (rc == 0 && found == 0) {
        ss__tls_log(ctx, "cannot load the client CA file %s: %s", pem->path,
                    infos ? "no certificate in it"
                          : openssl_reason(why, sizeof why));
        rc = -EINVAL;
    }
    if (rc < 0 || !names) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return rc < 0 ? rc : -ENOMEM;
    }
    ERR_clear_error();
    SSL_CTX_set_client_CA_list(c, names); /* takes them */
    int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
    if (ctx->verify_client == SS_TLS_VERIFY_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c, mode, NULL);
    return 0;
}

static int make_ssl_ctx(const ss_tls_context *ctx, const ss__tls_cert_files *f,
                        const ss__tls_pem *ca, SSL_CTX **out)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (!c)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    uint64_t options = SSL_OP_NO_RENEGOTIATION |
                       SSL_OP_CIPHER_SERVER_PREFERENCE |
                       SSL_OP_IGNORE_UNEXPECTED_EOF;
    if (!ctx->tickets)
        options |= SSL_OP_NO_TICKET;
#ifdef SSL_OP_ENABLE_KTLS
    if (ctx->ktls)
        options |= SSL_OP_ENABLE_KTLS;
#endif
    SSL_CTX_set_options(c, options);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    /* One recv() for as many records as have come, instead of two per
     * record (header, then body); what it read ahead is counted by the
     * transport's pending(). */
    SSL_CTX_set_read_ahead(c, 1);
    static const unsigned char session_context[] = "sockserv";
    SSL_CTX_set_session_id_context(c, session_context,
                                   sizeof session_context - 1);
    if (ctx->tickets)
        SSL_CTX_set_tlsext_ticket_keys(c, (void *)ctx->ticket_keys,
                                       SS__TLS_TICKET_KEYS);
    else
        SSL_CTX_set_num_tickets(c, 0);
    if (ctx->alpn_len > 0)
        SSL_CTX_set_alpn_select_cb(c, alpn_select, (void *)ctx);
    int rc = load_chain(ctx, c, &f->cert);
    if (rc == 0)
        rc = load_key(ctx, c, f);
    if (rc == 0 && ctx->verify_client != SS_TLS_VERIFY_NONE)
        rc = load_client_cas(ctx, c, ca);
    if (rc < 0) {
        SSL_CTX_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void certs_free(ss__tls_certs *certs)
{
    for (int i = 0; i < certs->count; i++)
        SSL_CTX_free(certs->ctx[i]);
    free(certs->ctx);
    free(certs);
}

void ss__tls_certs_release(ss__tls_certs *certs)
{
    if (certs && atomic_fetch_sub(&certs->refs, 1) == 1)
        certs_free(certs);
}

int ss__tls_certs_make(const ss_tls_context *ctx, const ss__tls_snapshot *snap,
                       ss__tls_certs **out)
{
    if (ctx->verify_client != SS_TLS_VERIFY_NONE && !snap->ca.data)
        return -EINVAL;
    ss__tls_certs *certs = calloc(1, sizeof *certs);
    if (certs)
        certs->ctx = calloc((size_t)snap->count, sizeof *certs->ctx);
    if (!certs || !certs->ctx) {
        free(certs);
        return -ENOMEM;
    }
    atomic_init(&certs->refs, 1);
    for (int i = 0; i < snap->count; i++) {
        int rc = make_ssl_ctx(ctx, &snap->certs[i], &snap->ca, &certs->ctx[i]);
        if (rc < 0) {
            certs_free(certs);
            return rc;
        }
        certs->count = i + 1;
    }
    if (snap->count > 1) {
        SSL_CTX_set_tlsext_servername_callback(certs->ctx[0], sni_select);
        SSL_CTX_set_tlsext_servername_arg(certs->ctx[0], certs);
    }
    *out = certs;
    return 0;
}
