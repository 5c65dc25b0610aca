/*
 * tls_internal.h — what the two halves of TLS share: the context
 * (tls_context.c: certificates, settings, reload) and the transport
 * (tls.c: one connection's handshake and bytes).
 *
 * A context holds the current "certificate set": one SSL_CTX per
 * certificate (the first answers clients whose SNI matches no other).
 * A connection takes a reference on the set it starts with, so a reload
 * swaps the set for new connections while open ones keep theirs; the
 * last reference frees it.
 */
#ifndef SOCKSERV_TLS_INTERNAL_H
#define SOCKSERV_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <stdatomic.h>

#include "sockserv/strategy.h"
#include "sockserv/tls.h"

typedef struct ss__tls_certs {
    atomic_int refs;
    int count;
    SSL_CTX **ctx; /* count of them; ctx[0] answers by default */
} ss__tls_certs;

/* The set new handshakes use, with a reference for the caller; first
 * reloads it when another process reloaded the context since this one
 * last did. Never NULL. */
ss__tls_certs *ss__tls_certs_acquire(ss_tls_context *ctx);
void ss__tls_certs_release(ss__tls_certs *certs);

/* The context's settings the transport needs. */
double ss__tls_handshake_timeout(const ss_tls_context *ctx);
/* The BIO method of the context's connections (tls.c makes it). */
BIO_METHOD *ss__tls_bio_method(ss_tls_context *ctx);
/* Kernel TLS may be tried: OpenSSL has it, the kernel offers it, and the
 * options did not turn it off. */
bool ss__tls_ktls_wanted(const ss_tls_context *ctx);

/* tls.c: the BIO method the context keeps for its connections. */
BIO_METHOD *ss__tls_bio_method_new(void);

/* tls_alpn.c: "http/1.1,h2" (commas, spaces around names ignored) into
 * ALPN's wire format (length-prefixed names) in out. Returns its length
 * (0 for an empty list) or -EINVAL (an empty or over-long name, a
 * control character, a list longer than size). */
int ss__tls_alpn_wire(const char *list, unsigned char *out, size_t size);

#endif /* SOCKSERV_TLS_INTERNAL_H */
