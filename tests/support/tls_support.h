/*
 * tls_support.h — for the TLS tests (built only when the library has TLS):
 * certificates made at test time with OpenSSL's API, and a blocking TLS
 * client over the support.h client sockets.
 *
 * test_tls_make_files() writes into a fresh directory under /tmp:
 *   ca.pem / ca.key         a test CA (ECDSA P-256)
 *   cert.pem / key.pem      the server: CN=localhost, SAN localhost,
 *                           127.0.0.1, ::1; chain = leaf then CA
 *   other.pem / other.key   a second server certificate, SAN other.test
 *   client.pem / client.key a client certificate, CN=alice, O=Test
 *   rogue.pem / rogue.key   a self-signed client certificate (no CA)
 *   enc.key / password.txt  key.pem's key encrypted, and its password
 * All certificates are signed by the CA except rogue's.
 */
#ifndef SOCKSERV_TEST_TLS_SUPPORT_H
#define SOCKSERV_TEST_TLS_SUPPORT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#define TEST_TLS_PATH 128

typedef struct test_tls_files {
    char dir[64];
    char ca_cert[TEST_TLS_PATH], ca_key[TEST_TLS_PATH];
    char cert[TEST_TLS_PATH], key[TEST_TLS_PATH];
    char other_cert[TEST_TLS_PATH], other_key[TEST_TLS_PATH];
    char client_cert[TEST_TLS_PATH], client_key[TEST_TLS_PATH];
    char rogue_cert[TEST_TLS_PATH], rogue_key[TEST_TLS_PATH];
    char encrypted_key[TEST_TLS_PATH], password_file[TEST_TLS_PATH];
} test_tls_files;

/* Make the files above. Returns 0 or -1 (fails the test from cmocka
 * callers through assert). */
int test_tls_make_files(test_tls_files *f);
/* A server certificate and key for common_name (also its SAN DNS name)
 * signed by the CA of f, written to cert_path and key_path (replacing
 * them: for reload tests). Returns 0 or -1. */
int test_tls_write_server_cert(const test_tls_files *f, const char *common_name,
                               const char *cert_path, const char *key_path);
/* Remove the directory and everything in it. */
void test_tls_remove_files(test_tls_files *f);

/* A client context that verifies the server against ca_file (NULL: no
 * verification) and, when cert_file is given, shows that certificate.
 * Fails the running test on error. */
SSL_CTX *test_tls_client_ctx(const char *ca_file, const char *cert_file,
                             const char *key_file);

/* A TLS client on a connected blocking socket (support.h's test_connect:
 * its SO_RCVTIMEO/SO_SNDTIMEO bound every call). */
typedef struct test_tls_client {
    SSL *ssl;
    int fd;
} test_tls_client;

/* SSL_connect on fd with server name sni (NULL: none). Returns 0, or -1
 * after a failed handshake (the client is then still to be closed). */
int test_tls_connect(test_tls_client *c, SSL_CTX *ctx, int fd,
                     const char *sni);
/* Send all n bytes; fails the test on error. */
void test_tls_send_all(test_tls_client *c, const void *buf, size_t n);
/* Receive exactly n bytes; fails the test on error or EOF. */
void test_tls_recv_exact(test_tls_client *c, void *buf, size_t n);
/* Receive until the server's close_notify (true) or EOF/error (false);
 * the bytes (at most n) go to buf, their count to *got. */
bool test_tls_recv_to_close(test_tls_client *c, void *buf, size_t n,
                            size_t *got);
/* Send a close_notify, then shutdown(SHUT_WR). */
void test_tls_shutdown(test_tls_client *c);
/* SSL_free and close the socket. */
void test_tls_close(test_tls_client *c);
/* The subject CN of the certificate the server showed ("" if none). */
void test_tls_server_cn(test_tls_client *c, char *buf, size_t size);

/* The bytes of a client's first flight (its ClientHello) as ctx would
 * send it, into buf; returns the count. */
size_t test_tls_client_hello(SSL_CTX *ctx, unsigned char *buf, size_t size);

#endif /* SOCKSERV_TEST_TLS_SUPPORT_H */
