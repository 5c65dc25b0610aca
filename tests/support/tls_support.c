/*
 * tls_support.c — the helpers of tls_support.h: a small CA made with
 * OpenSSL's API (no openssl command needed), and a blocking client.
 */
#include "tls_support.h"

#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TEST_TLS_PASSWORD "s3cret words"

/* ---- certificates ------------------------------------------------------ */

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for key with subject "CN=cn[,O=org]", signed by
 * issuer_key (issuer NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *org,
                       X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       const char *san)
{
    static long serial = 1;
    X509 *cert = X509_new();
    if (!cert)
        return NULL;
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), (long)getpid() * 100 + serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    if (org)
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   (const unsigned char *)org, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
    X509 *signer = issuer ? issuer : cert;
    int rc = 0;
    if (ca) {
        rc |= add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
        rc |= add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        rc |= add_ext(cert, signer, NID_basic_constraints, "CA:FALSE");
        rc |= add_ext(cert, signer, NID_key_usage,
                      "critical,digitalSignature,keyAgreement");
        rc |= add_ext(cert, signer, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    rc |= add_ext(cert, signer, NID_subject_key_identifier, "hash");
    if (issuer)
        rc |= add_ext(cert, signer, NID_authority_key_identifier, "keyid");
    if (san)
        rc |= add_ext(cert, signer, NID_subject_alt_name, san);
    if (rc != 0 || !X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256())) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static int write_pem(const char *path, X509 *cert, X509 *chain, EVP_PKEY *key,
                     const char *password)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = 1;
    if (cert)
        ok &= PEM_write_X509(f, cert);
    if (chain)
        ok &= PEM_write_X509(f, chain);
    if (key)
        ok &= password ? PEM_write_PrivateKey(f, key, EVP_aes_256_cbc(), NULL,
                                              0, NULL, (void *)password)
                       : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
                                              NULL);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void path_in(const test_tls_files *f, char *out, const char *name)
{
    snprintf(out, TEST_TLS_PATH, "%s/%s", f->dir, name);
}

/* Load the CA back from its files. */
static int load_ca(const test_tls_files *f, X509 **ca, EVP_PKEY **ca_key)
{
    FILE *c = fopen(f->ca_cert, "r");
    FILE *k = fopen(f->ca_key, "r");
    *ca = c ? PEM_read_X509(c, NULL, NULL, NULL) : NULL;
    *ca_key = k ? PEM_read_PrivateKey(k, NULL, NULL, NULL) : NULL;
    if (c)
        fclose(c);
    if (k)
        fclose(k);
    return *ca && *ca_key ? 0 : -1;
}

static int write_leaf(const test_tls_files *f, const char *cn, const char *org,
                      const char *san, bool self_signed, const char *cert_path,
                      const char *key_path, const char *encrypted_path)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    if (!self_signed && load_ca(f, &ca, &ca_key) < 0)
        return -1;
    EVP_PKEY *key = new_key();
    X509 *cert = key ? make_cert(key, cn, org, ca, ca_key, false, san) : NULL;
    int rc = cert ? 0 : -1;
    if (rc == 0)
        rc = write_pem(cert_path, cert, ca, NULL, NULL);
    if (rc == 0)
        rc = write_pem(key_path, NULL, NULL, key, NULL);
    if (rc == 0 && encrypted_path)
        rc = write_pem(encrypted_path, NULL, NULL, key, TEST_TLS_PASSWORD);
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

int test_tls_write_server_cert(const test_tls_files *f, const char *common_name,
                               const char *cert_path, const char *key_path)
{
    char san[160];
    snprintf(san, sizeof san, "DNS:%s,IP:127.0.0.1,IP:::1", common_name);
    /* Written beside and renamed, as a certificate renewal does. */
    char cert_tmp[TEST_TLS_PATH + 8], key_tmp[TEST_TLS_PATH + 8];
    snprintf(cert_tmp, sizeof cert_tmp, "%s.new", cert_path);
    snprintf(key_tmp, sizeof key_tmp, "%s.new", key_path);
    if (write_leaf(f, common_name, NULL, san, false, cert_tmp, key_tmp, NULL) <
        0)
        return -1;
    return rename(cert_tmp, cert_path) == 0 && rename(key_tmp, key_path) == 0
               ? 0
               : -1;
}

int test_tls_make_files(test_tls_files *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sockserv-tls-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(f->dir))
        return -1;
    path_in(f, f->ca_cert, "ca.pem");
    path_in(f, f->ca_key, "ca.key");
    path_in(f, f->cert, "cert.pem");
    path_in(f, f->key, "key.pem");
    path_in(f, f->other_cert, "other.pem");
    path_in(f, f->other_key, "other.key");
    path_in(f, f->client_cert, "client.pem");
    path_in(f, f->client_key, "client.key");
    path_in(f, f->rogue_cert, "rogue.pem");
    path_in(f, f->rogue_key, "rogue.key");
    path_in(f, f->encrypted_key, "enc.key");
    path_in(f, f->password_file, "password.txt");

    EVP_PKEY *ca_key = new_key();
    X509 *ca = ca_key ? make_cert(ca_key, "sockserv test CA", "Test", NULL,
                                  NULL, true, NULL)
                      : NULL;
    int rc = ca ? 0 : -1;
    if (rc == 0)
        rc = write_pem(f->ca_cert, ca, NULL, NULL, NULL);
    if (rc == 0)
        rc = write_pem(f->ca_key, NULL, NULL, ca_key, NULL);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    if (rc == 0)
        rc = write_leaf(f, "localhost", NULL,
                        "DNS:localhost,IP:127.0.0.1,IP:::1", false, f->cert,
                        f->key, f->encrypted_key);
    if (rc == 0)
        rc = write_leaf(f, "other.test", NULL, "DNS:other.test", false,
                        f->other_cert, f->other_key, NULL);
    if (rc == 0)
        rc = write_leaf(f, "alice", "Test", NULL, false, f->client_cert,
                        f->client_key, NULL);
    if (rc == 0)
        rc = write_leaf(f, "mallory", "Rogue", NULL, true, f->rogue_cert,
                        f->rogue_key, NULL);
    if (rc == 0) {
        FILE *p = fopen(f->password_file, "w");
        rc = p && fprintf(p, "  %s\n", TEST_TLS_PASSWORD) > 0 ? 0 : -1;
        if (p && fclose(p) != 0)
            rc = -1;
    }
    ERR_clear_error();
    return rc;
}

void test_tls_remove_files(test_tls_files *f)
{
    if (f->dir[0])
        test_remove_tree(f->dir);
    f->dir[0] = '\0';
}

/* ---- the client -------------------------------------------------------- */

SSL_CTX *test_tls_client_ctx(const char *ca_file, const char *cert_file,
                             const char *key_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    if (ca_file) {
        assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca_file, NULL), 1);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (cert_file) {
        assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert_file), 1);
        assert_int_equal(
            SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM), 1);
    }
    return ctx;
}

int test_tls_connect(test_tls_client *c, SSL_CTX *ctx, int fd, const char *sni)
{
    c->fd = fd;
    c->ssl = SSL_new(ctx);
    assert_non_null(c->ssl);
    SSL_set_fd(c->ssl, fd);
    if (sni)
        SSL_set_tlsext_host_name(c->ssl, sni);
    int rc = SSL_connect(c->ssl) == 1 ? 0 : -1;
    ERR_clear_error();
    return rc;
}

void test_tls_send_all(test_tls_client *c, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t sent;
        if (SSL_write_ex(c->ssl, (const char *)buf + done, n - done, &sent) != 1)
            fail_msg("TLS send failed after %zu of %zu bytes (SSL error %d)",
                     done, n, SSL_get_error(c->ssl, 0));
        done += sent;
    }
}

void test_tls_recv_exact(test_tls_client *c, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t got;
        if (SSL_read_ex(c->ssl, (char *)buf + done, n - done, &got) != 1)
            fail_msg("TLS receive failed after %zu of %zu bytes", done, n);
        done += got;
    }
}

bool test_tls_recv_to_close(test_tls_client *c, void *buf, size_t n,
                            size_t *got)
{
    *got = 0;
    char scratch[4096];
    for (;;) {
        size_t room = *got < n ? n - *got : 0;
        char *to = room ? (char *)buf + *got : scratch;
        size_t len = room ? room : sizeof scratch;
        size_t m;
        int rc = SSL_read_ex(c->ssl, to, len, &m);
        if (rc == 1) {
            if (room)
                *got += m;
            continue;
        }
        bool clean = SSL_get_error(c->ssl, rc) == SSL_ERROR_ZERO_RETURN;
        ERR_clear_error();
        return clean;
    }
}

void test_tls_shutdown(test_tls_client *c)
{
    SSL_shutdown(c->ssl);
    ERR_clear_error();
    shutdown(c->fd, SHUT_WR);
}

void test_tls_close(test_tls_client *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
}

void test_tls_server_cn(test_tls_client *c, char *buf, size_t size)
{
    buf[0] = '\0';
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    if (cert)
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName,
                                  buf, (int)size);
}

size_t test_tls_client_hello(SSL_CTX *ctx, unsigned char *buf, size_t size)
{
    SSL *ssl = SSL_new(ctx);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);
    SSL_connect(ssl); /* writes the ClientHello, then wants to read */
    size_t n = 0;
    int got = BIO_read(out, buf, (int)size);
    if (got > 0)
        n = (size_t)got;
    SSL_free(ssl);
    ERR_clear_error();
    return n;
}
