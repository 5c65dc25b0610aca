/*
 * tls_client.h — the client side of TLS in the example clients
 * (sockserv-filecli and sockserv-chatcli --tls [--cafile PATH]): a small
 * wrapper around OpenSSL on a connected blocking socket. It verifies the
 * server's certificate against --cafile or the system's store, sends the
 * host name as SNI and checks that the certificate names it (a DNS name,
 * or an IP address when the host is one), and ends with close_notify.
 *
 *     char why[256];
 *     tls_client *t = tls_client_open(fd, host, cafile, false, why, sizeof
 * why); if (t == NULL) ... why says what failed ... tls_client_send(t, buf, n);
 * tls_client_recv(t, buf, size); tls_client_close(t);   close_notify; the
 * socket stays open
 *
 * Built with OpenSSL when libsockserv is (SOCKSERV_TLS); otherwise
 * tls_client_open() always fails, saying so.
 */
#ifndef SOCKSERV_EXAMPLES_TLS_CLIENT_H
#define SOCKSERV_EXAMPLES_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tls_client tls_client;

/* Whether the clients were built with TLS. */
bool tls_client_available(void);

/* The TLS handshake on fd (connected, blocking; its SO_RCVTIMEO and
 * SO_SNDTIMEO bound each call) with the server host, verified against
 * cafile (PEM; NULL: the system's certificate store). polled: the caller
 * waits with poll() before each tls_client_recv(), which then returns
 * -EAGAIN rather than blocking when what arrived carried no data (a
 * session ticket). Returns the client, or NULL with the reason in
 * why (size bytes). */
tls_client *tls_client_open(int fd, const char *host, const char *cafile,
                            bool polled, char *why, size_t size);

/* Send all n bytes. Returns 0, or -errno (-EPIPE: the connection is gone;
 * -EPROTO: a TLS error). */
int tls_client_send(tls_client *t, const void *buf, size_t n);

/* Receive up to n bytes. Returns the count, 0 at the end of the stream
 * (the server's close_notify, or its close without one), -EAGAIN (a
 * timeout, or polled and nothing yet), or another -errno. */
ssize_t tls_client_recv(tls_client *t, void *buf, size_t n);

/* Whether received bytes wait inside the TLS layer, where poll() on the
 * socket does not see them. */
bool tls_client_pending(const tls_client *t);

/* Send close_notify (unless the connection failed) and free t; the
 * socket is the caller's to close. NULL is allowed. */
void tls_client_close(tls_client *t);

#endif /* SOCKSERV_EXAMPLES_TLS_CLIENT_H */
